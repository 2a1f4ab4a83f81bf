/* cmd_deploy.c -- `flint deploy`: a directory with flint.yaml (code packed,
 * uploaded once per content digest) or a bare command, into PUT /v1/functions. */
#include "cli/client.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/sha256.h"
#include "core/util.h"
#include "core/yaml.h"

extern char **environ;

/* What the daemon accepts in POST /v1/blobs (docs/api.md). */
#define MAX_CODE_BYTES (512ull << 20)

static const char deploy_help[] =
    "usage: flint deploy DIR [OPTIONS] [-- CMD ARGS...]\n"
    "       flint deploy --name NAME [OPTIONS] -- CMD ARGS...\n\n"
    "Creates a function or a new version of it. With DIR, reads DIR/flint.yaml and\n"
    "uploads the rest of DIR as the function's code (skipping .git and whatever\n"
    "DIR/.flintignore lists); an unchanged directory is not uploaded again. With\n"
    "only a command, runs that command in the current directory (or --workdir).\n"
    "Options override the file:\n"
    "  --name NAME            function name\n"
    "  --protocol P           http (the default), http2 or grpc\n"
    "  --grpc-service S       a gRPC service it serves (pkg.Service); repeatable\n"
    "  --env K=V              environment variable; repeatable\n"
    "  --min N / --max N      instance bounds\n"
    "  --concurrency N        hard cap of requests in flight per instance\n"
    "  --target N             requests in flight per instance to scale for\n"
    "  --idle-timeout D       scale down after this long without work (60s)\n"
    "  --timeout D            whole-request limit (30s)\n"
    "  --max-body SIZE        request body limit (10m)\n"
    "  --health-path PATH     readiness by HTTP GET PATH instead of TCP connect\n"
    "  --workdir DIR          directory a command-only function runs in\n"
    "  --admin URL, --data DIR  which daemon, and where its token is\n"
    "Single-quote $PORT in commands: flint sets it for each instance.\n";

enum {
	O_NAME = 1,
	O_PROTOCOL,
	O_ENV,
	O_MIN,
	O_MAX,
	O_CONCURRENCY,
	O_TARGET,
	O_IDLE,
	O_TIMEOUT,
	O_MAXBODY,
	O_HEALTH,
	O_WORKDIR,
	O_GRPC_SERVICE,
};

static const fl_cli__opt deploy_opts[] = {
    {"name", 0, 1, O_NAME},
    {"protocol", 0, 1, O_PROTOCOL},
    {"env", 'e', 1, O_ENV},
    {"min", 0, 1, O_MIN},
    {"max", 0, 1, O_MAX},
    {"concurrency", 0, 1, O_CONCURRENCY},
    {"target", 0, 1, O_TARGET},
    {"idle-timeout", 0, 1, O_IDLE},
    {"timeout", 0, 1, O_TIMEOUT},
    {"max-body", 0, 1, O_MAXBODY},
    {"health-path", 0, 1, O_HEALTH},
    {"workdir", 0, 1, O_WORKDIR},
    {"grpc-service", 0, 1, O_GRPC_SERVICE},
    {NULL, 0, 0, 0},
};

/* The options, as JSON fragments to lay over the spec file. */
typedef struct overrides {
	const char *dir;
	json_t *top;	/* name, protocol, workdir, command, health */
	json_t *env;	/* K -> V */
	json_t *scale;	/* min, max, concurrency, target, idle_timeout */
	json_t *limits; /* timeout, max_body */
} overrides;

/* ---- the spec ---- */

/* Makes dir absolute against the current directory, without requiring that it
 * exists here: the daemon may see a different filesystem. */
static char *absolute(const char *dir)
{
	char cwd[PATH_MAX];
	if (dir[0] == '/')
		return fl_xstrdup(dir);
	if (getcwd(cwd, sizeof cwd) == NULL)
		return NULL;
	fl_buf b = FL_BUF_INIT;
	if (strcmp(dir, ".") == 0)
		fl_buf_puts(&b, cwd);
	else
		fl_buf_printf(&b, "%s/%s", cwd, dir);
	return fl_buf_steal(&b);
}

/* Lays the object over spec[key] (creating it); fails if the file has a
 * non-mapping there, since the two cannot be merged. */
static int merge_obj(json_t *spec, const char *key, json_t *over, const char *file)
{
	if (json_object_size(over) == 0)
		return 0;
	json_t *cur = json_object_get(spec, key);
	if (cur == NULL || json_is_null(cur)) {
		json_object_set(spec, key, over);
		return 0;
	}
	if (!json_is_object(cur)) {
		fl_cli__err("%s: %s must be a mapping to combine it with the command-line options",
			    file, key);
		return -1;
	}
	return json_object_update(cur, over);
}

/* env may be a mapping or a list of "K=V" strings; --env adds to either. */
static int merge_env(json_t *spec, json_t *env, const char *file)
{
	json_t *cur = json_object_get(spec, "env");
	const char *k;
	json_t *v;

	if (json_is_array(cur)) {
		json_object_foreach(env, k, v)
		{
			fl_buf b = FL_BUF_INIT;
			fl_buf_printf(&b, "%s=%s", k, json_string_value(v));
			json_array_append_new(cur, json_string(b.p));
			fl_buf_free(&b);
		}
		return 0;
	}
	return merge_obj(spec, "env", env, file);
}

static int apply_overrides(json_t *spec, const overrides *o, const char *file)
{
	if (json_object_update(spec, o->top) < 0 || merge_env(spec, o->env, file) < 0 ||
	    merge_obj(spec, "scale", o->scale, file) < 0 ||
	    merge_obj(spec, "limits", o->limits, file) < 0)
		return -1;
	return 0;
}

/* Reads DIR/flint.yaml (or flint.yml) into *spec; *file gets the name found. */
static int read_spec_file(const char *dir, json_t **spec, const char **file, char **path_out)
{
	static const char *names[] = {"flint.yaml", "flint.yml"};
	fl_buf path = FL_BUF_INIT;
	char err[256];
	char *text = NULL;
	size_t len = 0;
	struct stat st;

	if (stat(dir, &st) < 0) {
		fl_cli__err("cannot open %s: %s", dir, strerror(errno));
		goto fail;
	}
	if (!S_ISDIR(st.st_mode)) {
		fl_cli__err("%s is not a directory: give the directory that holds flint.yaml", dir);
		goto fail;
	}
	for (size_t i = 0; i < 2 && text == NULL; i++) {
		fl_buf_reset(&path);
		fl_buf_printf(&path, "%s/%s", dir, names[i]);
		text = fl_read_file(path.p, &len);
		if (text == NULL && errno != ENOENT) {
			fl_cli__err("cannot read %s: %s", path.p, strerror(errno));
			goto fail;
		}
		*file = names[i];
	}
	if (text == NULL) {
		fl_cli__err("%s has no flint.yaml (write one, or deploy a command with "
			    "`flint deploy --name NAME -- CMD`)",
			    dir);
		goto fail;
	}
	*spec = fl_yaml_to_json(text, len, err, sizeof err);
	if (*spec == NULL) {
		fl_cli__err("%s: %s", path.p, err);
		goto fail;
	}
	if (!json_is_object(*spec)) {
		fl_cli__err("%s must be a mapping of fields (name: ..., command: ...)", path.p);
		json_decref(*spec);
		*spec = NULL;
		goto fail;
	}
	free(text);
	*path_out = fl_buf_steal(&path);
	return 0;
fail:
	free(text);
	fl_buf_free(&path);
	return -1;
}

/* ---- packing the code ---- */

typedef struct pattern {
	char *glob;
	int dir_only; /* "build/": directories only */
	int anchored; /* "/build": relative path only, not any basename */
} pattern;

typedef struct packer {
	const char *root;
	const char *spec_file; /* skipped at the top: it is not code */
	pattern *pats;
	size_t npats;
	char **names;
	size_t nnames, cap;
} packer;

static int read_ignore(packer *p)
{
	fl_buf path = FL_BUF_INIT;
	fl_buf_printf(&path, "%s/.flintignore", p->root);
	char *text = fl_read_file(path.p, NULL);
	if (text == NULL) {
		int e = errno;
		if (e != ENOENT)
			fl_cli__err("cannot read %s: %s", path.p, strerror(e));
		fl_buf_free(&path);
		return e == ENOENT ? 0 : -1;
	}
	fl_buf_free(&path);
	for (char *line = text, *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		size_t n = strlen(line);
		while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		pattern pt = {0};
		if (line[n - 1] == '/') {
			pt.dir_only = 1;
			line[--n] = '\0';
		}
		if (line[0] == '/') {
			pt.anchored = 1;
			line++;
		}
		if (*line == '\0')
			continue;
		pt.glob = fl_xstrdup(line);
		p->pats = realloc(p->pats, (p->npats + 1) * sizeof *p->pats);
		if (p->pats == NULL)
			abort();
		p->pats[p->npats++] = pt;
	}
	free(text);
	return 0;
}

static int ignored(const packer *p, const char *rel, const char *base, int is_dir)
{
	for (size_t i = 0; i < p->npats; i++) {
		const pattern *pt = &p->pats[i];
		if (pt->dir_only && !is_dir)
			continue;
		if (fnmatch(pt->glob, rel, 0) == 0)
			return 1;
		if (!pt->anchored && fnmatch(pt->glob, base, 0) == 0)
			return 1;
	}
	return 0;
}

static void add_name(packer *p, const char *rel)
{
	if (p->nnames == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 64;
		p->names = realloc(p->names, p->cap * sizeof *p->names);
		if (p->names == NULL)
			abort();
	}
	p->names[p->nnames++] = fl_xstrdup(rel);
}

/* Collects the relative paths under rel ("" for the root) that are packed. */
static int walk(packer *p, const char *rel)
{
	fl_buf path = FL_BUF_INIT, child = FL_BUF_INIT;
	int rc = -1;

	fl_buf_printf(&path, "%s%s%s", p->root, *rel ? "/" : "", rel);
	DIR *d = opendir(path.p);
	if (d == NULL) {
		fl_cli__err("cannot read the directory %s: %s", path.p, strerror(errno));
		goto out;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *base = de->d_name;
		struct stat st;
		if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || strcmp(base, ".git") == 0)
			continue;
		if (*rel == '\0' &&
		    (strcmp(base, ".flintignore") == 0 || strcmp(base, p->spec_file) == 0))
			continue;
		fl_buf_reset(&child);
		fl_buf_printf(&child, "%s/%s", path.p, base);
		if (lstat(child.p, &st) < 0) {
			fl_cli__err("cannot read %s: %s", child.p, strerror(errno));
			goto out;
		}
		/* Sockets and fifos are not code; tar would only warn about them. */
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
			continue;
		fl_buf_reset(&child);
		fl_buf_printf(&child, "%s%s%s", rel, *rel ? "/" : "", base);
		if (ignored(p, child.p, base, S_ISDIR(st.st_mode)))
			continue;
		add_name(p, child.p);
		if (S_ISDIR(st.st_mode)) {
			char *sub = fl_buf_steal(&child);
			int r = walk(p, sub);
			free(sub);
			if (r < 0)
				goto out;
		}
	}
	rc = 0;
out:
	if (d)
		closedir(d);
	fl_buf_free(&path);
	fl_buf_free(&child);
	return rc;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs tar over the sorted list so that the same tree always gives the same
 * bytes: fixed order, mtimes, owners, and gzip without a name or time. */
static int run_tar(packer *p, fl_buf *out)
{
	char list[] = "/tmp/flint-files-XXXXXX";
	int lfd = -1, pfd[2] = {-1, -1}, rc = -1;
	pid_t pid = -1;
	posix_spawn_file_actions_t fa;
	int fa_ok = 0;
	fl_buf names = FL_BUF_INIT, tflag = FL_BUF_INIT;

	lfd = mkstemp(list);
	if (lfd < 0) {
		fl_cli__err("cannot create a temporary file in /tmp: %s", strerror(errno));
		goto out;
	}
	/* "./" keeps names starting with '-' from reading as options. */
	for (size_t i = 0; i < p->nnames; i++) {
		fl_buf_printf(&names, "./%s", p->names[i]);
		fl_buf_append(&names, "", 1);
	}
	if (fl_write_all(lfd, names.p, names.len) < 0) {
		fl_cli__err("cannot write %s: %s", list, strerror(errno));
		goto out;
	}
	fl_buf_printf(&tflag, "--files-from=%s", list);
	char *argv[] = {"tar",
			"-C",
			(char *)p->root,
			"--create",
			"--file=-",
			"--format=gnu",
			"--no-recursion",
			"--null",
			"--verbatim-files-from",
			tflag.p,
			"--mtime=@0",
			"--owner=0",
			"--group=0",
			"--numeric-owner",
			"--use-compress-program=gzip -n",
			NULL};
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		fl_cli__err("cannot create a pipe: %s", strerror(errno));
		goto out;
	}
	if (posix_spawn_file_actions_init(&fa) != 0)
		goto out;
	fa_ok = 1;
	posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
	int e = posix_spawnp(&pid, "tar", &fa, NULL, argv, environ);
	if (e != 0) {
		pid = -1;
		fl_cli__err("cannot run tar to pack the code: %s (GNU tar is needed)", strerror(e));
		goto out;
	}
	close(pfd[1]);
	pfd[1] = -1;

	int too_big = 0;
	for (;;) {
		if (fl_buf_reserve(out, 65536) < 0) {
			fl_cli__err("out of memory while packing the code");
			goto out;
		}
		ssize_t n = read(pfd[0], out->p + out->len, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fl_cli__err("cannot read from tar: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		out->len += n;
		if (out->len > MAX_CODE_BYTES) {
			too_big = 1;
			break;
		}
	}
	close(pfd[0]);
	pfd[0] = -1;
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	pid = -1;
	if (too_big) {
		fl_cli__err("the code in %s packs to more than 512 MiB, the most the daemon takes "
			    "(list large files in %s/.flintignore)",
			    p->root, p->root);
		goto out;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fl_cli__err("tar failed while packing %s (its message is above)", p->root);
		goto out;
	}
	rc = 0;
out:
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	if (lfd >= 0) {
		close(lfd);
		unlink(list);
	}
	fl_buf_free(&names);
	fl_buf_free(&tflag);
	return rc;
}

/* Packs dir into out (a tar.gz). Sets *empty when there is nothing besides the
 * spec file, in which case out stays empty. */
static int pack_dir(const char *dir, const char *spec_file, fl_buf *out, int *empty)
{
	packer p = {.root = dir, .spec_file = spec_file};
	int rc = -1;

	*empty = 0;
	if (read_ignore(&p) < 0 || walk(&p, "") < 0)
		goto out;
	if (p.nnames == 0) {
		*empty = 1;
		rc = 0;
		goto out;
	}
	qsort(p.names, p.nnames, sizeof *p.names, cmp_names);
	rc = run_tar(&p, out);
out:
	for (size_t i = 0; i < p.npats; i++)
		free(p.pats[i].glob);
	free(p.pats);
	for (size_t i = 0; i < p.nnames; i++)
		free(p.names[i]);
	free(p.names);
	return rc;
}

/* Uploads over this size show their progress on stderr. */
#define PROGRESS_MIN (1u << 20)

struct progress {
	int last; /* percent last shown, -1 for none */
};

static void progress_line(long long sent, long long total, int pct)
{
	fprintf(stderr, "\ruploading code: %3d%% (%.1f of %.1f MiB)", pct, (double)sent / 1048576.0,
		(double)total / 1048576.0);
	fflush(stderr);
}

/* A terminal sees the line redrawn at each new percent. */
static void on_progress(void *arg, long long sent, long long total)
{
	struct progress *p = arg;
	int pct;

	if (total <= 0)
		return;
	pct = (int)(sent * 100 / total);
	if (pct == p->last)
		return;
	p->last = pct;
	progress_line(sent, total, pct);
}

/* Makes sure the daemon holds the blob; *uploaded says whether it was sent. */
static int upload(fl_cli__ctx *c, const fl_buf *code, const char *digest, int *uploaded)
{
	fl_buf path = FL_BUF_INIT, resp = FL_BUF_INIT;
	int rc = FL_CLI_FAIL;

	*uploaded = 0;
	fl_buf_printf(&path, "/v1/blobs/%s", digest);
	long st = fl_cli__admin_raw(c, "HEAD", path.p, NULL, NULL, 0, &resp);
	if (st < 0)
		goto out;
	if (st == 200) {
		rc = FL_CLI_OK;
		goto out;
	}
	if (st != 404) {
		fl_cli__report(c, st, &resp);
		goto out;
	}
	fl_buf_reset(&resp);
	struct progress prog = {-1};
	int big = code->len > PROGRESS_MIN, tty = big && isatty(STDERR_FILENO);
	if (tty) {
		c->upload_progress = on_progress;
		c->upload_progress_arg = &prog;
	}
	st = fl_cli__admin_raw(c, "POST", "/v1/blobs", "application/gzip", code->p, code->len,
			       &resp);
	c->upload_progress = NULL;
	if (tty && prog.last >= 0)
		fputc('\n', stderr);
	else if (big && st >= 200 && st < 300)
		fprintf(stderr, "uploaded code: %.1f MiB\n", (double)code->len / 1048576.0);
	if (st < 0)
		goto out;
	if (st < 200 || st >= 300) {
		fl_cli__report(c, st, &resp);
		goto out;
	}
	json_t *r = json_loadb(resp.p ? resp.p : "", resp.len, 0, NULL);
	const char *got = fl_cli__str(r, "digest", NULL);
	if (got && strcmp(got, digest) != 0) {
		fl_cli__err("the daemon stored the code as %s, but it is %s (was it changed in "
			    "transit?)",
			    got, digest);
		json_decref(r);
		goto out;
	}
	json_decref(r);
	*uploaded = 1;
	rc = FL_CLI_OK;
out:
	fl_buf_free(&path);
	fl_buf_free(&resp);
	return rc;
}

static void human_size(size_t n, char *out, size_t len)
{
	if (n < 1024)
		snprintf(out, len, "%zu bytes", n);
	else if (n < (1u << 20))
		snprintf(out, len, "%.1f KiB", n / 1024.0);
	else
		snprintf(out, len, "%.1f MiB", n / 1048576.0);
}

/* ---- the verb ---- */

/* Reads the options into o; returns -1 to go on, or an exit status. */
static int parse_deploy(fl_cli__ctx *c, int argc, char **argv, overrides *o)
{
	fl_cli__args a;
	const char *v;
	int id;
	long long n;

	fl_cli__args_init(&a, c, argc, argv, deploy_opts);
	while ((id = fl_cli__next_opt(&a, &v)) != FL_CLI_ARG_END) {
		switch (id) {
		case FL_CLI_ARG_ERR:
			return FL_CLI_USAGE;
		case FL_CLI_ARG_HELP:
			fputs(deploy_help, stdout);
			return FL_CLI_OK;
		case FL_CLI_ARG_POS:
			if (o->dir)
				return fl_cli__usage_err(c,
							 "one directory at a time (got \"%s\" "
							 "and \"%s\"); put a command after --",
							 o->dir, v);
			o->dir = v;
			break;
		case O_NAME:
			json_object_set_new(o->top, "name", json_string(v));
			break;
		case O_PROTOCOL:
			json_object_set_new(o->top, "protocol", json_string(v));
			break;
		case O_HEALTH:
			json_object_set_new(o->top, "health", json_pack("{ss}", "path", v));
			break;
		case O_GRPC_SERVICE: {
			json_t *g = json_object_get(o->top, "grpc");
			if (g == NULL) {
				g = json_pack("{s[]}", "services");
				json_object_set_new(o->top, "grpc", g);
				if (json_object_get(o->top, "protocol") == NULL)
					json_object_set_new(o->top, "protocol",
							    json_string("grpc"));
			}
			json_array_append_new(json_object_get(g, "services"), json_string(v));
			break;
		}
		case O_WORKDIR: {
			char *w = absolute(v);
			if (w == NULL) {
				fl_cli__err("cannot find the current directory: %s",
					    strerror(errno));
				return FL_CLI_FAIL;
			}
			json_object_set_new(o->top, "workdir", json_string(w));
			free(w);
			break;
		}
		case O_ENV: {
			const char *eq = strchr(v, '=');
			if (eq == NULL || eq == v)
				return fl_cli__usage_err(c, "--env takes KEY=VALUE, not \"%s\"", v);
			char *k = fl_xstrndup(v, eq - v);
			json_object_set_new(o->env, k, json_string(eq + 1));
			free(k);
			break;
		}
		case O_MIN:
		case O_MAX:
		case O_CONCURRENCY:
		case O_TARGET: {
			static const char *keys[] = {[O_MIN] = "min",
						     [O_MAX] = "max",
						     [O_CONCURRENCY] = "concurrency",
						     [O_TARGET] = "target"};
			char opt[32];
			snprintf(opt, sizeof opt, "--%s", keys[id]);
			if ((n = fl_cli__num_opt(c, opt, v)) < 0)
				return FL_CLI_USAGE;
			json_object_set_new(o->scale, keys[id], json_integer(n));
			break;
		}
		/* Durations and sizes go as written: the daemon parses and checks them
		 * with the same rules as the file's. */
		case O_IDLE:
			json_object_set_new(o->scale, "idle_timeout", json_string(v));
			break;
		case O_TIMEOUT:
			json_object_set_new(o->limits, "timeout", json_string(v));
			break;
		case O_MAXBODY:
			json_object_set_new(o->limits, "max_body", json_string(v));
			break;
		}
	}
	if (a.rest) {
		if (a.nrest == 0)
			return fl_cli__usage_err(c, "nothing follows --; give the command to run");
		json_t *cmd = json_array();
		for (int i = 0; i < a.nrest; i++)
			json_array_append_new(cmd, json_string(a.rest[i]));
		json_object_set_new(o->top, "command", cmd);
	}
	if (o->dir == NULL && a.rest == NULL)
		return fl_cli__usage_err(c, "give a directory holding flint.yaml (e.g. `flint "
					    "deploy .`) or a command after --");
	if (o->dir == NULL && json_object_get(o->top, "name") == NULL)
		return fl_cli__usage_err(c, "--name is needed to deploy a command");
	return -1;
}

int fl_cli__deploy(fl_cli__ctx *c, int argc, char **argv)
{
	overrides o = {.top = json_object(),
		       .env = json_object(),
		       .scale = json_object(),
		       .limits = json_object()};
	json_t *spec = NULL, *r = NULL;
	fl_buf code = FL_BUF_INIT, path = FL_BUF_INIT;
	char *spec_path = NULL, *enc = NULL;
	const char *spec_file = "flint.yaml";
	char what[160] = "";
	int rc;

	rc = parse_deploy(c, argc, argv, &o);
	if (rc >= 0)
		goto out;
	rc = FL_CLI_FAIL;
	fl_cli__ctx_finish(c);

	if (o.dir) {
		if (read_spec_file(o.dir, &spec, &spec_file, &spec_path) < 0)
			goto out;
	} else {
		spec = json_object();
		spec_path = fl_xstrdup("the command line");
		if (json_object_get(o.top, "workdir") == NULL) {
			char *w = absolute(".");
			if (w == NULL) {
				fl_cli__err("cannot find the current directory: %s",
					    strerror(errno));
				goto out;
			}
			json_object_set_new(o.top, "workdir", json_string(w));
			free(w);
		}
	}
	if (apply_overrides(spec, &o, spec_path) < 0)
		goto out;
	const char *name = fl_cli__str(spec, "name", NULL);
	if (name == NULL) {
		fl_cli__err("%s has no name: add `name: ...` or pass --name", spec_path);
		goto out;
	}

	if (o.dir) {
		int empty, uploaded;
		if (pack_dir(o.dir, spec_file, &code, &empty) < 0)
			goto out;
		if (empty) {
			/* Nothing to upload: the command runs in the directory itself. */
			if (json_object_get(spec, "workdir") == NULL) {
				char *w = absolute(o.dir);
				json_object_set_new(spec, "workdir", json_string(w ? w : o.dir));
				free(w);
			}
			snprintf(what, sizeof what, "no code to upload");
		} else {
			char hex[65], digest[80];
			fl_sha256_hex(code.p, code.len, hex);
			snprintf(digest, sizeof digest, "sha256:%s", hex);
			if (upload(c, &code, digest, &uploaded) != 0)
				goto out;
			json_object_set_new(spec, "code", json_string(digest));
			char size[32];
			human_size(code.len, size, sizeof size);
			snprintf(what, sizeof what, "code sha256:%.12s\u2026, %s%s", hex,
				 uploaded ? "uploaded " : "unchanged", uploaded ? size : "");
		}
	} else {
		snprintf(what, sizeof what, "command only");
	}

	enc = fl_cli__escape(name);
	fl_buf_printf(&path, "/v1/functions/%s", enc);
	if (fl_cli__admin_json(c, "PUT", path.p, spec, &r) != 0)
		goto out;
	printf("deployed %s version %lld (%s%s)\n", name, fl_cli__int(r, "version", 0),
	       json_is_true(json_object_get(r, "created")) ? "new function, " : "", what);
	rc = FL_CLI_OK;
out:
	json_decref(o.top);
	json_decref(o.env);
	json_decref(o.scale);
	json_decref(o.limits);
	json_decref(spec);
	json_decref(r);
	fl_buf_free(&code);
	fl_buf_free(&path);
	free(spec_path);
	free(enc);
	return rc;
}
