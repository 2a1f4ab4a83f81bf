/* cgroup.c -- detects cgroup v1/v2 support and manages one group per instance. */
#include "runtime/cgroup.h"

#include "core/log.h"
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const cg_names[FL_CG_NRES] = {"memory", "cpu", "pids"};

/* A file of each v1 controller that proves the controller is usable in a group. */
static const char *const cg_v1_probe[FL_CG_NRES] = {"memory.limit_in_bytes", "cpu.cfs_quota_us",
						    "pids.max"};
static const char *const cg_v2_probe[FL_CG_NRES] = {"memory.max", "cpu.max", "pids.max"};

static struct fl_cg_layout cg_layout;

/* One cgroup file system mount: where it is mounted and which part of the hierarchy
 * it shows (mount root, "/" unless the mount is itself a bind of a subgroup). */
struct cg_mount {
	int found;
	char point[256];
	char root[256];
};

struct cg_mounts {
	struct cg_mount v1[FL_CG_NRES];
	struct cg_mount v2;
};

/* A control file and the value to write into it. */
struct cg_kv {
	const char *file;
	char value[48];
};

/* ---- pure parsing and formatting (unit-tested) ---- */

/* Whether word is an item of list, whose items are separated by sep characters. */
static int cg_has_word(const char *list, const char *word, const char *sep)
{
	size_t wl = strlen(word);
	const char *p = list;

	while (*p) {
		size_t n = strcspn(p, sep);
		if (n == wl && strncmp(p, word, wl) == 0)
			return 1;
		p += n;
		if (*p)
			p++;
	}
	return 0;
}

/* Copies a mountinfo field of length n into out, decoding the \ooo escapes the kernel
 * uses for spaces and such. Returns 0, or -ENAMETOOLONG. */
static int cg_unescape(const char *s, size_t n, char *out, size_t outlen)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		char c = s[i];
		if (c == '\\' && i + 3 < n && s[i + 1] >= '0' && s[i + 1] <= '7') {
			c = (char)(((s[i + 1] - '0') << 6) | ((s[i + 2] - '0') << 3) |
				   (s[i + 3] - '0'));
			i += 3;
		}
		if (o + 1 >= outlen)
			return -ENAMETOOLONG;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

/* Finds the cgroup mounts in the text of /proc/self/mountinfo: for each of our
 * resources the v1 hierarchy that carries its controller, and the v2 hierarchy.
 * The first mount of a hierarchy wins. */
static void cg_parse_mountinfo(const char *text, struct cg_mounts *m)
{
	const char *line = text;

	memset(m, 0, sizeof(*m));
	while (line && *line) {
		const char *end = strchr(line, '\n'), *f[10], *sep, *p;
		char fstype[32], opts[256];
		size_t len = end ? (size_t)(end - line) : strlen(line), n;
		int nf = 0, r;

		/* Fields: id parent dev root point options [optional...] - fstype source super */
		for (p = line; p < line + len && nf < 5;) {
			while (p < line + len && *p == ' ')
				p++;
			f[nf++] = p;
			while (p < line + len && *p != ' ')
				p++;
		}
		sep = strstr(line, " - ");
		if (nf < 5 || sep == NULL || sep > line + len)
			goto next;
		p = sep + 3;
		n = strcspn(p, " \n");
		if (n >= sizeof(fstype))
			goto next;
		memcpy(fstype, p, n);
		fstype[n] = '\0';
		p += n;
		p += strspn(p, " ");
		p += strcspn(p, " \n"); /* source */
		p += strspn(p, " ");
		n = strcspn(p, " \n");
		if (n >= sizeof(opts))
			goto next;
		memcpy(opts, p, n);
		opts[n] = '\0';
		if (strcmp(fstype, "cgroup2") == 0 && !m->v2.found) {
			r = cg_unescape(f[4], strcspn(f[4], " "), m->v2.point, sizeof(m->v2.point));
			r |= cg_unescape(f[3], strcspn(f[3], " "), m->v2.root, sizeof(m->v2.root));
			m->v2.found = r == 0;
		} else if (strcmp(fstype, "cgroup") == 0) {
			for (int i = 0; i < FL_CG_NRES; i++) {
				struct cg_mount *c = &m->v1[i];
				if (c->found || !cg_has_word(opts, cg_names[i], ","))
					continue;
				r = cg_unescape(f[4], strcspn(f[4], " "), c->point,
						sizeof(c->point));
				r |=
				    cg_unescape(f[3], strcspn(f[3], " "), c->root, sizeof(c->root));
				c->found = r == 0;
			}
		}
	next:
		line = end ? end + 1 : NULL;
	}
}

/* Finds this process's group path in the text of /proc/self/cgroup: for a v1
 * controller (its line lists it), or for v2 with controller NULL (the "0::" line).
 * Returns 0 or -ENOENT. */
static int cg_own_path(const char *text, const char *controller, char *out, size_t outlen)
{
	const char *line = text;

	while (line && *line) {
		const char *end = strchr(line, '\n'), *c1 = strchr(line, ':'), *c2;
		size_t len = end ? (size_t)(end - line) : strlen(line);

		c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c1 && c2 && c2 < line + len) {
			char ctrls[256];
			size_t cl = (size_t)(c2 - c1 - 1), pl = (size_t)(line + len - c2 - 1);
			int match;
			if (cl < sizeof(ctrls)) {
				memcpy(ctrls, c1 + 1, cl);
				ctrls[cl] = '\0';
				if (controller == NULL)
					match = strncmp(line, "0:", 2) == 0 && cl == 0;
				else
					match = cg_has_word(ctrls, controller, ",");
				if (match && pl < outlen) {
					memcpy(out, c2 + 1, pl);
					out[pl] = '\0';
					return 0;
				}
			}
		}
		line = end ? end + 1 : NULL;
	}
	return -ENOENT;
}

/* The directory of the group whose path is own (from /proc/self/cgroup) in mount m:
 * the mount point plus own relative to the mount root. Returns 0, -EXDEV when own is
 * outside what the mount shows, or -ENAMETOOLONG. */
static int cg_own_dir(const struct cg_mount *m, const char *own, char *out, size_t outlen)
{
	size_t rl = strlen(m->root);
	const char *rel = own;
	int n;

	if (strcmp(m->root, "/") != 0) {
		if (strncmp(own, m->root, rl) != 0 || (own[rl] != '\0' && own[rl] != '/'))
			return -EXDEV;
		rel = own + rl;
	}
	while (*rel == '/')
		rel++;
	n = snprintf(out, outlen, "%s%s%s", m->point, *rel ? "/" : "", rel);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* flint's parent group for tag below the group own of mount m: <own dir>/flint/<tag>. */
static int cg_parent_dir(const struct cg_mount *m, const char *own, const char *tag, char *out,
			 size_t outlen)
{
	char base[512];
	int n, e = cg_own_dir(m, own, base, sizeof(base));

	if (e < 0)
		return e;
	n = snprintf(out, outlen, "%s/flint/%s", base, tag);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* The control files and values that set lim for resource r. Returns how many (0 when
 * lim asks nothing of r). */
static int cg_limit_files(enum fl_cg_res r, int v2, int memsw, const struct fl_cg_limits *lim,
			  struct cg_kv out[3])
{
	int n = 0;

	switch (r) {
	case FL_CG_MEMORY:
		if (lim->memory == 0)
			return 0;
		out[n].file = v2 ? "memory.max" : "memory.limit_in_bytes";
		snprintf(out[n++].value, sizeof(out->value), "%llu",
			 (unsigned long long)lim->memory);
		/* Memory plus swap equal to memory: the instance gets no swap to hide in. */
		if (v2) {
			out[n].file = "memory.swap.max";
			snprintf(out[n++].value, sizeof(out->value), "0");
		} else if (memsw) {
			out[n].file = "memory.memsw.limit_in_bytes";
			snprintf(out[n++].value, sizeof(out->value), "%llu",
				 (unsigned long long)lim->memory);
		}
		return n;
	case FL_CG_CPU: {
		unsigned long long quota;
		if (lim->cpu_millis == 0)
			return 0;
		quota = (unsigned long long)lim->cpu_millis * FL_CG_CPU_PERIOD_US / 1000;
		if (quota < 1000)
			quota = 1000; /* the kernel's smallest quota: 1 ms */
		if (v2) {
			out[n].file = "cpu.max";
			snprintf(out[n++].value, sizeof(out->value), "%llu %d", quota,
				 FL_CG_CPU_PERIOD_US);
		} else {
			out[n].file = "cpu.cfs_period_us";
			snprintf(out[n++].value, sizeof(out->value), "%d", FL_CG_CPU_PERIOD_US);
			out[n].file = "cpu.cfs_quota_us";
			snprintf(out[n++].value, sizeof(out->value), "%llu", quota);
		}
		return n;
	}
	case FL_CG_PIDS:
		if (lim->pids == 0)
			return 0;
		out[n].file = "pids.max";
		snprintf(out[n++].value, sizeof(out->value), "%u", lim->pids);
		return n;
	default:
		return 0;
	}
}

static int cg_wants(enum fl_cg_res r, const struct fl_cg_limits *lim)
{
	return r == FL_CG_MEMORY ? lim->memory > 0
	       : r == FL_CG_CPU	 ? lim->cpu_millis > 0
				 : lim->pids > 0;
}

/* ---- file helpers ---- */

static int cg_write(const char *dir, const char *file, const char *value)
{
	char path[700];
	int fd, r;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = fl_write_all(fd, value, strlen(value));
	close(fd);
	return r;
}

static int cg_exists(const char *dir, const char *file)
{
	char path[700];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return access(path, F_OK) == 0;
}

static char *cg_read(const char *dir, const char *file)
{
	char path[700];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return fl_read_file(path, NULL);
}

/* The instance group of resource r: <parent>/i-<id>. */
static void cg_inst_dir(enum fl_cg_res r, uint64_t id, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/i-%llu", cg_layout.res[r].dir, (unsigned long long)id);
}

/* Whether resource r shares its group directory with an earlier resource (v2: one
 * group holds every controller), so that it is created, joined and removed once. */
static int cg_same_as_earlier(enum fl_cg_res r)
{
	for (int i = 0; i < (int)r; i++)
		if (cg_layout.res[i].enforced &&
		    strcmp(cg_layout.res[i].dir, cg_layout.res[r].dir) == 0)
			return 1;
	return 0;
}

/* Kills what a group holds and removes it. 0, -EBUSY while processes are still
 * dying, 0 when it does not exist. */
static int cg_empty_and_remove(const char *dir)
{
	char *procs;
	int killed = 0;

	if (access(dir, F_OK) < 0)
		return 0;
	/* v2 kills a whole subtree in one write; v1 needs the pid list. */
	if (cg_write(dir, "cgroup.kill", "1") < 0) {
		procs = cg_read(dir, "cgroup.procs");
		if (procs) {
			for (char *p = procs, *e; *p; p = e) {
				long pid = strtol(p, &e, 10);
				if (e == p)
					break;
				if (pid > 1 && kill((pid_t)pid, SIGKILL) == 0)
					killed++;
			}
			free(procs);
		}
	}
	if (rmdir(dir) == 0 || errno == ENOENT)
		return 0;
	return errno == EBUSY ? -EBUSY : -errno;
}

/* ---- detection ---- */

/* Makes resource r usable through v2 under own directory base, or says why not. */
static int cg_try_v2(enum fl_cg_res r, const struct cg_mounts *m, const char *cgtext,
		     const char *tag, struct fl_cg_res_state *st)
{
	const char *name = cg_names[r];
	char own[256], base[512], flint[540], *ctrls;
	char plus[32];
	int have;

	if (!m->v2.found || cg_own_path(cgtext, NULL, own, sizeof(own)) < 0 ||
	    cg_own_dir(&m->v2, own, base, sizeof(base)) < 0 ||
	    cg_parent_dir(&m->v2, own, tag, st->dir, sizeof(st->dir)) < 0)
		return -ENOENT;
	ctrls = cg_read(base, "cgroup.controllers");
	have = ctrls && cg_has_word(ctrls, name, " \n");
	free(ctrls);
	if (!have)
		return -ENOENT;
	snprintf(plus, sizeof(plus), "+%s", name);
	snprintf(flint, sizeof(flint), "%s/flint", base);
	ctrls = cg_read(base, "cgroup.subtree_control");
	have = ctrls && cg_has_word(ctrls, name, " \n");
	free(ctrls);
	/* Enabling a controller for children fails when the group itself holds processes
	 * (v2's "no internal processes" rule), unless it is the root. */
	if (!have && cg_write(base, "cgroup.subtree_control", plus) < 0)
		return -EBUSY;
	if (fl_mkdirs(st->dir, 0755) < 0 || cg_write(flint, "cgroup.subtree_control", plus) < 0 ||
	    cg_write(st->dir, "cgroup.subtree_control", plus) < 0 ||
	    !cg_exists(st->dir, cg_v2_probe[r]))
		return -EIO;
	st->v2 = 1;
	st->enforced = 1;
	return 0;
}

static int cg_try_v1(enum fl_cg_res r, const struct cg_mounts *m, const char *cgtext,
		     const char *tag, struct fl_cg_res_state *st)
{
	char own[256], dir[sizeof(st->dir)];
	int e;

	if (!m->v1[r].found || cg_own_path(cgtext, cg_names[r], own, sizeof(own)) < 0 ||
	    cg_parent_dir(&m->v1[r], own, tag, dir, sizeof(dir)) < 0)
		return -ENOENT;
	e = fl_mkdirs(dir, 0755);
	if (e < 0) {
		snprintf(st->why, sizeof(st->why), "cannot create %.100s: %s", dir, strerror(-e));
		return e;
	}
	if (!cg_exists(dir, cg_v1_probe[r])) {
		snprintf(st->why, sizeof(st->why), "%.100s has no %s", dir, cg_v1_probe[r]);
		return -ENOTSUP;
	}
	memcpy(st->dir, dir, sizeof(st->dir));
	st->v2 = 0;
	st->enforced = 1;
	return 0;
}

/* Detection from the two texts; the file system is touched only under the mounts
 * they name (so tests can point them at a directory of their own). */
static void cg_detect(const char *mountinfo, const char *cgtext, const char *tag)
{
	struct cg_mounts m;

	memset(&cg_layout, 0, sizeof(cg_layout));
	cg_parse_mountinfo(mountinfo ? mountinfo : "", &m);
	for (int r = 0; r < FL_CG_NRES; r++) {
		struct fl_cg_res_state *st = &cg_layout.res[r];
		if (cg_try_v2((enum fl_cg_res)r, &m, cgtext ? cgtext : "", tag, st) == 0)
			continue;
		st->dir[0] = '\0';
		if (cg_try_v1((enum fl_cg_res)r, &m, cgtext ? cgtext : "", tag, st) == 0)
			continue;
		st->dir[0] = '\0';
		if (st->why[0] == '\0')
			snprintf(st->why, sizeof(st->why),
				 "neither cgroup v2 nor a cgroup v1 hierarchy offers the %s "
				 "controller",
				 cg_names[r]);
	}
	if (cg_layout.res[FL_CG_MEMORY].enforced && !cg_layout.res[FL_CG_MEMORY].v2)
		cg_layout.memsw =
		    cg_exists(cg_layout.res[FL_CG_MEMORY].dir, "memory.memsw.limit_in_bytes");
}

/* Empties and removes the i-* groups under every parent; returns how many. */
static int cg_reap_leftovers(void)
{
	int count = 0;

	for (int r = 0; r < FL_CG_NRES; r++) {
		const struct fl_cg_res_state *st = &cg_layout.res[r];
		struct dirent *de;
		DIR *d;

		if (!st->enforced || cg_same_as_earlier((enum fl_cg_res)r))
			continue;
		d = opendir(st->dir);
		if (d == NULL)
			continue;
		while ((de = readdir(d)) != NULL) {
			char path[800];
			int tries, e = 0;
			if (strncmp(de->d_name, "i-", 2) != 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", st->dir, de->d_name);
			/* Killed processes take a moment to leave; bounded, at start-up only. */
			for (tries = 0; tries < 200; tries++) {
				struct timespec ts = {0, 10 * 1000 * 1000};
				e = cg_empty_and_remove(path);
				if (e != -EBUSY)
					break;
				nanosleep(&ts, NULL);
			}
			if (e == 0)
				count++;
			else
				fl_warn("cgroup", "cannot remove the leftover group %s: %s", path,
					strerror(-e));
		}
		closedir(d);
	}
	return count;
}

void fl_cgroup_init(const char *tag, int *reaped)
{
	char *mi = fl_read_file("/proc/self/mountinfo", NULL);
	char *cg = fl_read_file("/proc/self/cgroup", NULL);
	int n;

	cg_detect(mi, cg, tag);
	free(mi);
	free(cg);
	n = cg_reap_leftovers();
	if (reaped)
		*reaped = n;
}

const struct fl_cg_layout *fl_cgroup_layout(void)
{
	return &cg_layout;
}

void fl_cgroup_describe(char *out, size_t outlen)
{
	size_t o = 0;

	out[0] = '\0';
	for (int r = 0; r < FL_CG_NRES && o < outlen; r++) {
		const struct fl_cg_res_state *st = &cg_layout.res[r];
		int n;
		if (st->enforced)
			n = snprintf(out + o, outlen - o, "%s%s limited (cgroup %s%s)",
				     r ? "; " : "", cg_names[r], st->v2 ? "v2" : "v1",
				     r == FL_CG_MEMORY && !st->v2 && !cg_layout.memsw
					 ? ", swap not limited"
					 : "");
		else
			n = snprintf(out + o, outlen - o, "%s%s NOT limited: %s", r ? "; " : "",
				     cg_names[r], st->why);
		if (n < 0)
			break;
		o += (size_t)n;
	}
}

/* ---- per instance ---- */

int fl_cgroup_create(uint64_t id, const struct fl_cg_limits *lim, char *err, size_t errlen)
{
	char dir[600];
	int r, e;

	for (r = 0; r < FL_CG_NRES; r++)
		if (cg_wants((enum fl_cg_res)r, lim) && !cg_layout.res[r].enforced) {
			snprintf(err, errlen, "limits.%s cannot be enforced on this host: %s",
				 cg_names[r], cg_layout.res[r].why);
			return -ENOTSUP;
		}
	for (r = 0; r < FL_CG_NRES; r++) {
		struct cg_kv kv[3];
		int n, i;
		if (!cg_wants((enum fl_cg_res)r, lim))
			continue;
		cg_inst_dir((enum fl_cg_res)r, id, dir, sizeof(dir));
		if (!cg_same_as_earlier((enum fl_cg_res)r) && mkdir(dir, 0755) < 0 &&
		    errno != EEXIST) {
			e = -errno;
			snprintf(err, errlen, "cannot create the cgroup %s: %s", dir, strerror(-e));
			goto fail;
		}
		n = cg_limit_files((enum fl_cg_res)r, cg_layout.res[r].v2, cg_layout.memsw, lim,
				   kv);
		for (i = 0; i < n; i++) {
			e = cg_write(dir, kv[i].file, kv[i].value);
			if (e < 0) {
				snprintf(err, errlen, "cannot set %s/%s to %s: %s", dir, kv[i].file,
					 kv[i].value, strerror(-e));
				goto fail;
			}
		}
	}
	return 0;
fail:
	fl_cgroup_remove(id);
	return e;
}

int fl_cgroup_attach(uint64_t id, const struct fl_cg_limits *lim, pid_t pid, char *err,
		     size_t errlen)
{
	char dir[600], text[24];

	snprintf(text, sizeof(text), "%d", (int)pid);
	for (int r = 0; r < FL_CG_NRES; r++) {
		int e;
		if (!cg_wants((enum fl_cg_res)r, lim) || !cg_layout.res[r].enforced)
			continue;
		cg_inst_dir((enum fl_cg_res)r, id, dir, sizeof(dir));
		e = cg_write(dir, "cgroup.procs", text);
		if (e < 0) {
			snprintf(err, errlen, "cannot move process %d into the cgroup %s: %s",
				 (int)pid, dir, strerror(-e));
			return e;
		}
	}
	return 0;
}

int fl_cgroup_remove(uint64_t id)
{
	char dir[600];
	int rc = 0;

	for (int r = 0; r < FL_CG_NRES; r++) {
		int e;
		if (!cg_layout.res[r].enforced || cg_same_as_earlier((enum fl_cg_res)r))
			continue;
		cg_inst_dir((enum fl_cg_res)r, id, dir, sizeof(dir));
		e = cg_empty_and_remove(dir);
		if (e < 0 && rc != -EBUSY)
			rc = e;
	}
	return rc;
}

void fl_cgroup_cleanup(void)
{
	for (int r = 0; r < FL_CG_NRES; r++) {
		const struct fl_cg_res_state *st = &cg_layout.res[r];
		if (st->enforced && !cg_same_as_earlier((enum fl_cg_res)r))
			rmdir(st->dir); /* fails harmlessly while a group is left */
	}
}
