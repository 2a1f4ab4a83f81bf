/* spawner_pool.c -- spawn requests on the wire, and warm sandboxes built ahead of need.
 *
 * A warm sandbox is an init already cloned into its namespaces with the generic view
 * built (runtime/sandbox_linux.h), waiting on a socketpair. A sandboxed start that fits
 * one (no root file system of its own, not a build) takes it instead of cloning: the
 * spawner opens the function's directory and secrets on the host (fl_sandbox_prepare)
 * and sends them down with the original SPAWN message; the init binds them, drops its
 * privileges and forks the command. The costly part of a start (clone, copying the mount
 * tree, pivot_root, detaching the old root: ~4 ms here) is then already done.
 */
#include "runtime/spawner_int.h"

#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
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
	struct cmsghdr *cmsg;
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
	for (cmsg = CMSG_FIRSTHDR(&mh); cmsg; cmsg = CMSG_NXTHDR(&mh, cmsg))
		if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS) {
			nfds = (int)((cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			memcpy(fds, CMSG_DATA(cmsg), sizeof(int) * (size_t)nfds);
		}
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
	struct cmsghdr *c;
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
	if (nfds > 0) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
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
