/* spawner_pool.c -- spawn requests on the wire, and warm sandboxes built ahead of need.
 *
 * A warm sandbox is an init already cloned into its namespaces with the generic view
 * built (runtime/sandbox_linux.h), waiting on a socketpair. A sandboxed start that fits
 * one (no root file system of its own, not a build) takes it instead of cloning: the
 * spawner opens the function's directory and secrets on the host (fl_sandbox_prepare)
 * and sends them down with the original SPAWN message; the init binds them, drops its
 * privileges and forks the command. The costly part of a start (clone, copying the mount
 * tree, pivot_root, detaching the old root: ~4 ms here) is then already done.
 *
 * The pool itself (how many to keep, when to build, which to take) is the second half of
 * this file; it runs in the spawner process and shares its state (spawner_int.h).
 */
#include "runtime/spawner_int.h"

#include "core/log.h"
#include "core/util.h"
#include "runtime/cgroup.h"
#include "runtime/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SP_WARM_FDS (2 + FL_SANDBOX_MAX_SECRETS) /* tree, namespace, secrets */

int sp_decode_spawn(const struct sp_hdr *h, char *p, size_t len, int netns, struct sp_spawn_req *r)
{
	struct sp_sbwire w = {0};
	size_t want, nstr = 0, i, j;
	char *s;

	memset(r, 0, sizeof(*r));
	if (h->flags & SP_HAS_SANDBOX) {
		if (len < sizeof(w)) {
			fl_warn("spawner",
				"ignoring a spawn request for id %llu without its sandbox",
				(unsigned long long)h->id);
			return -EINVAL;
		}
		memcpy(&w, p, sizeof(w));
		p += sizeof(w);
		len -= sizeof(w);
		if (w.nsecrets > FL_SANDBOX_MAX_SECRETS) {
			fl_warn("spawner", "ignoring a spawn request for id %llu with %u secrets",
				(unsigned long long)h->id, w.nsecrets);
			return -EINVAL;
		}
	}
	s = p;
	for (i = 0; i < len; i++)
		if (p[i] == '\0')
			nstr++;
	want = (size_t)h->argc + h->envc + ((h->flags & SP_HAS_CWD) ? 1 : 0) +
	       ((h->flags & SP_HAS_SANDBOX) ? 4 + (size_t)w.nsecrets : 0);
	if (h->argc == 0 || want != nstr || (len > 0 && p[len - 1] != '\0')) {
		fl_warn("spawner", "ignoring a malformed spawn request for id %llu",
			(unsigned long long)h->id);
		return -EINVAL;
	}
	r->argv = calloc((size_t)h->argc + 1, sizeof(char *));
	r->envp = calloc((size_t)h->envc + 1, sizeof(char *));
	if (r->argv == NULL || r->envp == NULL) {
		sp_spawn_req_free(r);
		return -ENOMEM;
	}
	if (h->flags & SP_HAS_CWD) {
		r->cwd = s;
		s += strlen(s) + 1;
	}
	for (j = 0; j < h->argc; j++, s += strlen(s) + 1)
		r->argv[j] = s;
	for (j = 0; j < h->envc; j++, s += strlen(s) + 1)
		r->envp[j] = s;
	if (h->flags & SP_HAS_SANDBOX) {
		r->has_sb = 1;
		r->sb = (struct fl_sandbox){.name = s,
					    .uid = w.uid,
					    .gid = w.gid,
					    .memory = w.memory,
					    .cpu_millis = w.cpu_millis,
					    .pids = w.pids,
					    .writable_cwd = w.writable_cwd != 0,
					    .zygote = w.zygote != 0};
		s += strlen(s) + 1;
		r->sb.hide = s[0] ? s : NULL;
		s += strlen(s) + 1;
		r->sb.rootfs = s[0] ? s : NULL;
		s += strlen(s) + 1;
		r->sb.code = s[0] ? s : NULL;
		s += strlen(s) + 1;
		for (j = 0; j < w.nsecrets; j++, s += strlen(s) + 1)
			r->secrets[j] = s;
		r->secrets[j] = NULL;
		r->sb.secrets = w.nsecrets ? r->secrets : NULL;
		r->sb.netns = netns > 0 ? netns : 0;
	}
	return 0;
}

void sp_spawn_req_free(struct sp_spawn_req *r)
{
	free(r->argv);
	free(r->envp);
	r->argv = r->envp = NULL;
}

/* ---- in the warm sandbox's init ---- */

/* Says "ready", then waits for the instance: the SPAWN message and its descriptors
 * (tree, namespace, secrets, in that order, as present). */
static int sp_warm_wait(void *arg, struct fl_sandbox_child *c, struct fl_sandbox_fds *f)
{
	static char buf[SP_MAX_MSG];
	static struct sp_spawn_req r;
	union {
		char b[CMSG_SPACE(sizeof(int) * SP_WARM_FDS)];
		struct cmsghdr align;
	} cm;
	struct iovec iov = {buf, sizeof(buf)};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b)};
	int sock = *(int *)arg, fds[SP_WARM_FDS], nfds = 0, next = 0, netns = -1;
	struct sp_hdr h;
	ssize_t n;

	/* It may have been given its instance already, and the spawner's end closed: the
	 * message waits in the socket all the same. */
	while (send(sock, "r", 1, MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < (ssize_t)sizeof(h))
		return -1; /* EOF: the spawner is gone, or the pool let this one go */
	nfds = sp_rights_take(&mh, fds, SP_WARM_FDS);
	close(sock);
	memcpy(&h, buf, sizeof(h));
	f->cwdtree = (h.flags & SP_WARM_TREE) && next < nfds ? fds[next++] : -1;
	if ((h.flags & SP_HAS_NETNS) && next < nfds)
		netns = fds[next++];
	if (sp_decode_spawn(&h, buf + sizeof(h), (size_t)n - sizeof(h), netns, &r) < 0 || !r.has_sb)
		return -1;
	for (f->nsec = 0; r.secrets[f->nsec] && next < nfds; f->nsec++)
		f->secfd[f->nsec] = fds[next++];
	c->sb = &r.sb;
	c->cwd = r.cwd;
	c->argv = r.argv;
	c->envp = r.envp;
	return 0;
}

/* ---- in the spawner ---- */

int sp_warm_new(const char *hide, int self_pidfd, int python, struct sp_warm *w)
{
	int ep[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, st[2] = {-1, -1};
	int sv[2] = {-1, -1}, r, i;
	int *all[] = {ep, out, err, st, sv};
	pid_t pid;

	memset(w, 0, sizeof(*w));
	w->sock = w->ep_r = w->out_r = w->err_r = w->status_r = -1;
	if (pipe2(ep, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
	    pipe2(st, O_CLOEXEC) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		goto fail;
	}
	/* The child's copy of this frame holds sv[1] for sp_warm_wait. */
	pid = fl_sandbox_clone_warm(&(struct fl_sandbox_warm){.hide = hide,
							      .ep_w = ep[1],
							      .out_w = out[1],
							      .err_w = err[1],
							      .status_w = st[1],
							      .parent_pidfd = self_pidfd,
							      .sock = sv[1],
							      .python = python,
							      .wait = sp_warm_wait,
							      .arg = &sv[1]});
	if (pid < 0) {
		r = pid;
		goto fail;
	}
	close(ep[1]);
	close(out[1]);
	close(err[1]);
	close(st[1]);
	close(sv[1]);
	w->pid = pid;
	w->python = python;
	w->sock = sv[0];
	w->ep_r = ep[0];
	w->out_r = out[0];
	w->err_r = err[0];
	w->status_r = st[0];
	w->born_ms = fl_now_ms();
	fcntl(w->sock, F_SETFL, O_NONBLOCK);
	fcntl(w->ep_r, F_SETFL, O_NONBLOCK);
	fcntl(w->out_r, F_SETFL, O_NONBLOCK);
	fcntl(w->err_r, F_SETFL, O_NONBLOCK);
	fcntl(w->status_r, F_SETFL, O_NONBLOCK);
	return 0;
fail:
	for (i = 0; i < (int)(sizeof(all) / sizeof(all[0])); i++) {
		if (all[i][0] >= 0)
			close(all[i][0]);
		if (all[i][1] >= 0)
			close(all[i][1]);
	}
	return r;
}

int sp_warm_give(struct sp_warm *w, const char *msg, size_t len, const struct sp_spawn_req *r,
		 struct fl_sandbox_err *e)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * SP_WARM_FDS)];
		struct cmsghdr align;
	} cm;
	struct iovec iov[2];
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
	struct fl_sandbox_fds f;
	struct sp_hdr h;
	int fds[SP_WARM_FDS], nfds = 0, i;
	ssize_t n;

	if (fl_sandbox_prepare(&r->sb, r->cwd, &f, e) < 0)
		return -1;
	memcpy(&h, msg, sizeof(h));
	if (f.cwdtree >= 0) {
		h.flags |= SP_WARM_TREE;
		fds[nfds++] = f.cwdtree;
	}
	if (r->sb.netns > 0)
		fds[nfds++] = r->sb.netns;
	for (i = 0; i < f.nsec; i++)
		fds[nfds++] = f.secfd[i];
	iov[0] = (struct iovec){&h, sizeof(h)};
	iov[1] = (struct iovec){(char *)msg + sizeof(h), len - sizeof(h)};
	sp_rights_put(&mh, cm.b, fds, nfds);
	/* The socket is empty (one message ever goes down), so this does not block. */
	do
		n = sendmsg(w->sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	fl_sandbox_fds_close(&f);
	if (n < 0) {
		memset(e, 0, sizeof(*e));
		e->step = FL_SB_STEP_SETUP;
		e->err = errno;
		return -1;
	}
	return 0;
}

void sp_warm_close(struct sp_warm *w)
{
	int *fds[] = {&w->sock, &w->ep_r, &w->out_r, &w->err_r, &w->status_r};
	size_t i;

	for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

size_t sp_pool_target(double rate, size_t max)
{
	double want = ceil(rate);

	if (max == 0)
		return 0;
	if (want < 1)
		return 1;
	return want > (double)max ? max : (size_t)want;
}

/* ---- the pool, in the spawner process ---- */

static ssize_t sp_warm_find(const struct sp_state *st, pid_t pid)
{
	size_t i;

	for (i = 0; i < st->nwarm; i++)
		if (st->warm[i].pid == pid)
			return (ssize_t)i;
	return -1;
}

static void sp_warm_remove(struct sp_state *st, size_t i)
{
	st->warm[i] = st->warm[--st->nwarm];
}

/* A warm sandbox has ended: says why if it was not let go on purpose. Returns 0 if pid
 * was not one. */
int sp_warm_reaped(struct sp_state *st, pid_t pid, int status)
{
	ssize_t i = sp_warm_find(st, pid);
	struct sp_warm *w;
	struct fl_sandbox_err e;
	char msg[256];

	if (i < 0)
		return 0;
	w = &st->warm[i];
	sp_record_remove(st, pid);
	if (!w->dying || w->lost) {
		ssize_t n = read(w->ep_r, &e, sizeof(e));
		sp_fail_text(n == (ssize_t)sizeof(e) ? &e : NULL, "a warm sandbox", NULL, msg,
			     sizeof(msg));
		/* Only builds that fail count (three in a row stop the pool): one that ended
		 * while it waited was killed from outside, and is simply replaced. */
		if (w->ready)
			fl_warn("spawner", "a warm sandbox ended while it waited (exit status %d)",
				status);
		else if (++st->warm_failures >= SP_WARM_FAILURES)
			fl_error("spawner",
				 "%s (exit status %d); %d warm sandboxes in a row failed to build, "
				 "starts are built from scratch from now on",
				 msg, status, st->warm_failures);
		else
			fl_warn("spawner", "%s (exit status %d)", msg, status);
	}
	sp_warm_close(w);
	sp_warm_remove(st, (size_t)i);
	return 1;
}

/* Lets one go: its init dies (it is reaped later). */
static void sp_warm_kill(struct sp_warm *w)
{
	w->dying = 1;
	kill(w->pid, SIGKILL);
}

/* Warm sandboxes whose view is still being built. */
static size_t sp_warm_building(const struct sp_state *st)
{
	size_t i, n = 0;

	for (i = 0; i < st->nwarm; i++)
		n += !st->warm[i].ready && !st->warm[i].dying;
	return n;
}

size_t sp_npending(const struct sp_state *st)
{
	size_t i, n = 0;

	/* A warm start's set-up was done beforehand: it takes no slot. */
	for (i = 0; i < st->nkids; i++)
		n += st->kids[i].ep_fd >= 0 && !st->kids[i].warm;
	return n + sp_warm_building(st);
}

/* Keeps the warm sandboxes of one kind (with a Python zygote or not) at target: with
 * refill, one more is built if short (when no request waits and a set-up slot is free);
 * a surplus is let go slowly. Returns 1 if the kind is still short. */
static int sp_warm_fill(struct sp_state *st, int python, size_t target, uint64_t now, int refill)
{
	size_t i, live = 0;

	for (i = 0; i < st->nwarm; i++)
		live += !st->warm[i].dying && st->warm[i].python == python;
	if (live < target && refill && st->qhead == NULL && sp_npending(st) < st->max_pending) {
		struct sp_warm w;
		int r;
		if (st->nwarm == st->capwarm) {
			size_t cap = st->capwarm ? st->capwarm * 2 : 8;
			st->warm = realloc(st->warm, cap * sizeof(*st->warm));
			if (st->warm == NULL)
				abort();
			st->capwarm = cap;
		}
		r = sp_warm_new(st->warm_hide, st->self_pidfd, python, &w);
		if (r < 0) {
			fl_warn("spawner", "cannot build a warm sandbox: %s", strerror(-r));
			st->warm_failures++;
			return 0;
		}
		sp_record_write(st, w.pid);
		st->warm[st->nwarm++] = w;
		live++;
	}
	if (live <= target) {
		st->warm_surplus_ms[python] = 0;
		return live < target;
	}
	if (st->warm_surplus_ms[python] == 0) {
		st->warm_surplus_ms[python] = now;
		return 0;
	}
	if (now - st->warm_surplus_ms[python] < SP_WARM_IDLE_MS)
		return 0;
	for (i = 0; i < st->nwarm; i++)
		if (!st->warm[i].dying && st->warm[i].python == python) {
			sp_warm_kill(&st->warm[i]);
			break;
		}
	st->warm_surplus_ms[python] = now;
	return 0;
}

/* Counts sandboxed starts (and those of the Python template) for the pool's rates, and
 * keeps both kinds of warm sandbox at their targets: one second's worth of starts, at
 * least one (of the Python kind: once one such start was seen), at most warm_max. New
 * ones are built only with refill, which the main loop passes once the spawner has been
 * quiet for SP_WARM_QUIET_MS: a build (a clone and ~4 ms of mount work) must not take the
 * CPU from the start that just emptied a place. st->warm_short says if one is missing. */
void sp_warm_tick(struct sp_state *st, int started, int python, int refill)
{
	uint64_t now = fl_now_ms();
	char why[200];
	int k;

	st->warm_count[0] += started;
	st->warm_count[1] += python;
	st->warm_py_seen |= python;
	if (now - st->warm_window_ms >= 1000) {
		for (k = 0; k < 2; k++) {
			st->warm_rate[k] =
			    0.5 * st->warm_rate[k] +
			    0.5 * st->warm_count[k] * 1000.0 / (double)(now - st->warm_window_ms);
			st->warm_count[k] = 0;
		}
		st->warm_window_ms = now;
	}
	st->warm_short = 0;
	if (st->warm_max == 0 || st->warm_hide == NULL || st->warm_failures >= SP_WARM_FAILURES)
		return;
	/* A warm sandbox carries the compiled filter from the moment it is cloned. */
	if (fl_seccomp_prepare(why, sizeof(why)) < 0)
		return;
	for (k = 1; k >= 0; k--) {
		double rate =
		    st->warm_rate[k] > st->warm_count[k] ? st->warm_rate[k] : st->warm_count[k];
		if (k == 1 && !st->warm_py_seen)
			continue;
		/* One build per tick: the Python kind first (the slower to get ready). */
		if (sp_warm_fill(st, k, sp_pool_target(rate, st->warm_max), now, refill)) {
			st->warm_short = 1;
			refill = 0;
		}
	}
}

/* Reads the "ready" byte of a warm sandbox whose socket is fd. */
void sp_warm_readable(struct sp_state *st, int fd)
{
	size_t i;
	char c;

	for (i = 0; i < st->nwarm; i++) {
		struct sp_warm *w = &st->warm[i];
		ssize_t n;
		if (w->sock != fd)
			continue;
		n = recv(fd, &c, 1, MSG_DONTWAIT);
		if (n == 1) {
			w->ready = 1;
			st->warm_failures = 0; /* they count in a row */
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			w->dying = w->lost = 1; /* gone: reaped soon, with its report */
		}
		return;
	}
}

/* A ready warm sandbox of the kind asked for, else one still being built (it is further
 * along than a new clone), or -1. */
static ssize_t sp_warm_pick(const struct sp_state *st, int python)
{
	ssize_t pick = -1;
	size_t i;

	for (i = 0; i < st->nwarm; i++) {
		if (st->warm[i].dying || st->warm[i].python != python)
			continue;
		if (st->warm[i].ready)
			return (ssize_t)i;
		if (pick < 0)
			pick = (ssize_t)i;
	}
	return pick;
}

/* Joins the children of pid (read from /proc) to instance id's cgroups. */
static int sp_attach_children(uint64_t id, const struct fl_cg_limits *lim, pid_t pid, char *why,
			      size_t whylen)
{
	char path[64], buf[256], *p, *end;
	ssize_t n;
	int fd, r = 0;

	if (!lim->memory && !lim->cpu_millis && !lim->pids)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
		return -errno;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	for (p = buf; r == 0 && *p; p = end) {
		long child = strtol(p, &end, 10);
		if (end == p)
			break;
		if (child > 0)
			r = fl_cgroup_attach(id, lim, (pid_t)child, why, whylen);
	}
	return r;
}

/* Starts the instance of request r (msg is the whole message) in a warm sandbox if one
 * fits. Returns 1 when it did (or reported why it could not), 0 to start it cold. */
int sp_try_warm(struct sp_state *st, uint64_t id, const struct sp_spawn_req *r, const char *msg,
		size_t len)
{
	struct fl_cg_limits lim = {r->sb.memory, r->sb.cpu_millis, r->sb.pids};
	struct fl_sandbox_err e;
	struct sp_child *k;
	struct sp_warm w;
	ssize_t pick = -1;
	char why[200], text[256];
	int cg, rc;

	if (st->warm_hide == NULL || r->sb.hide == NULL || strcmp(st->warm_hide, r->sb.hide) != 0 ||
	    !fl_sandbox_warm_fits(&r->sb) || sp_find(st, id) >= 0 ||
	    fl_seccomp_prepare(why, sizeof(why)) < 0)
		return 0;
	/* The Python template's runtime takes a zygote if there is one. */
	if (r->sb.zygote)
		pick = sp_warm_pick(st, 1);
	if (pick < 0)
		pick = sp_warm_pick(st, 0);
	if (pick < 0)
		return 0;
	if (sp_kids_room(st) < 0)
		return 0; /* the cold path says "out of memory" */
	w = st->warm[pick];
	sp_warm_remove(st, (size_t)pick);
	cg = lim.memory || lim.cpu_millis || lim.pids;
	/* Into its cgroups before it runs anything of the instance's: the init forks the
	 * command only once it has the message. */
	rc = fl_cgroup_create(id, &lim, why, sizeof(why));
	if (rc == 0)
		rc = fl_cgroup_attach(id, &lim, w.pid, why, sizeof(why));
	/* The zygote runs already: it joins them too. */
	if (rc == 0 && w.python && r->sb.zygote)
		rc = sp_attach_children(id, &lim, w.pid, why, sizeof(why));
	if (rc < 0) {
		snprintf(text, sizeof(text), "sandbox: %s", why);
	} else if (sp_warm_give(&w, msg, len, r, &e) < 0) {
		sp_fail_text(&e, r->argv[0], r->cwd, text, sizeof(text));
		rc = -1;
	}
	if (rc < 0) {
		/* It may be in the function's cgroups already: it is not reused. Reaped later
		 * like any failed start, without EXITED. */
		sp_warm_close(&w);
		kill(w.pid, SIGKILL);
		k = &st->kids[st->nkids++];
		*k = (struct sp_child){.id = id,
				       .pid = w.pid,
				       .status_fd = -1,
				       .cg = cg,
				       .ep_fd = -1,
				       .out_fd = -1,
				       .err_fd = -1,
				       .warm_sock = -1,
				       .failed = 1,
				       .warm = 1};
		sp_queue(st, SP_FAILED, id, 0, 0, text, -1, -1);
		return 1;
	}
	k = &st->kids[st->nkids++];
	*k = (struct sp_child){.id = id,
			       .pid = w.pid,
			       .status_fd = w.status_r,
			       .cg = cg,
			       .ep_fd = w.ep_r,
			       .out_fd = w.out_r,
			       .err_fd = w.err_r,
			       .warm_sock = w.sock,
			       .zygote = w.python && r->sb.zygote,
			       .argv0 = fl_xstrdup(r->argv[0]),
			       .cwd = r->cwd ? fl_xstrdup(r->cwd) : NULL,
			       .warm = 1};
	return 1;
}
