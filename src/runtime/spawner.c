/* spawner.c -- the daemon side of the spawner: starting it, sending requests, reading events. */
#include "runtime/spawner.h"

#include "core/log.h"
#include "core/util.h"
#include "runtime/sandbox_linux.h"
#include "runtime/spawner_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define SP_SEND_WAIT_MS 5000 /* how long the daemon waits for room in the socket */

struct fl_spawner {
	int fd;
	pid_t pid;
};

/* ---- the daemon side ---- */

int fl_spawner_start(const char *run_dir, fl_spawner **out, int *reaped)
{
	int sv[2] = {-1, -1}, bufsize = 4 * SP_MAX_MSG, n, r;
	pid_t parent = getpid(), pid;
	fl_spawner *sp;

	*out = NULL;
	if (reaped)
		*reaped = 0;
	if (run_dir == NULL || run_dir[0] == '\0')
		return -EINVAL;
	r = fl_mkdirs(run_dir, 0700);
	if (r < 0) {
		fl_error("spawner", "cannot create the run directory %s: %s", run_dir,
			 strerror(-r));
		return r;
	}
	n = fl_spawner__reap_leftovers(run_dir);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		goto fail;
	/* Room for a few maximal requests whatever the system default is; best effort. */
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof(bufsize));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof(bufsize));
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0)
		goto fail;
	pid = fork();
	if (pid < 0)
		goto fail;
	if (pid == 0) {
		close(sv[0]);
		fl_spawner__main(sv[1], parent, run_dir);
	}
	close(sv[1]);
	sp = fl_xmalloc(sizeof(*sp));
	sp->fd = sv[0];
	sp->pid = pid;
	*out = sp;
	if (reaped)
		*reaped = n;
	return 0;
fail:
	r = -errno;
	fl_error("spawner", "cannot start the spawner: %s", strerror(errno));
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	return r;
}

int fl_spawner_fd(const fl_spawner *sp)
{
	return sp->fd;
}

void sp_rights_put(struct msghdr *mh, void *cbuf, const int *fds, int n)
{
	struct cmsghdr *c;

	if (n <= 0)
		return;
	memset(cbuf, 0, CMSG_SPACE(sizeof(int) * (size_t)n));
	mh->msg_control = cbuf;
	mh->msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
	c = CMSG_FIRSTHDR(mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
}

int sp_rights_take(struct msghdr *mh, int *fds, int max)
{
	struct cmsghdr *c;
	int n = 0;

	for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t k, nfd;
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < nfd; k++) {
			int x;
			memcpy(&x, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
			if (n < max)
				fds[n++] = x;
			else
				close(x);
		}
	}
	return n;
}

/* Sends one request, waiting a bounded time for room: the spawner drains its socket
 * promptly, so a full socket for seconds means it is stuck. */
static int sp_send(fl_spawner *sp, const void *buf, size_t len, int fd)
{
	uint64_t deadline = fl_now_ms() + SP_SEND_WAIT_MS;
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cm;
	struct iovec iov = {(void *)buf, len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	sp_rights_put(&mh, cm.b, &fd, fd >= 0);
	for (;;) {
		ssize_t n = sendmsg(sp->fd, &mh, MSG_NOSIGNAL);
		struct pollfd p = {sp->fd, POLLOUT, 0};
		uint64_t now;

		if (n >= 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EPIPE || errno == ECONNRESET)
			return -EPIPE;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		now = fl_now_ms();
		if (now >= deadline)
			return -EAGAIN;
		if (poll(&p, 1, (int)(deadline - now)) < 0 && errno != EINTR)
			return -errno;
	}
}

int fl_spawner_spawn(fl_spawner *sp, uint64_t id, const char *cwd, char *const argv[],
		     char *const envp[], const struct fl_sandbox *sb)
{
	struct sp_hdr h = {.type = SP_SPAWN, .id = id};
	const char *sbname = "", *sbhide = "", *sbroot = "", *sbcode = "";
	size_t len = sizeof(h), off;
	char *buf;
	int r, i, nsec = 0;

	if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0')
		return -EINVAL;
	if (cwd) {
		h.flags |= SP_HAS_CWD;
		len += strlen(cwd) + 1;
	}
	if (sb) {
		h.flags |= SP_HAS_SANDBOX;
		sbname = sb->name ? sb->name : "";
		sbhide = sb->hide ? sb->hide : "";
		sbroot = sb->rootfs ? sb->rootfs : "";
		sbcode = sb->code ? sb->code : "";
		len += sizeof(struct sp_sbwire) + strlen(sbname) + 1 + strlen(sbhide) + 1 +
		       strlen(sbroot) + 1 + strlen(sbcode) + 1;
		for (; sb->secrets && sb->secrets[nsec]; nsec++)
			len += strlen(sb->secrets[nsec]) + 1;
		if (nsec > FL_SANDBOX_MAX_SECRETS)
			return -E2BIG;
	}
	for (i = 0; argv[i] && len <= SP_MAX_MSG; i++, h.argc++)
		len += strlen(argv[i]) + 1;
	for (i = 0; envp && envp[i] && len <= SP_MAX_MSG; i++, h.envc++)
		len += strlen(envp[i]) + 1;
	if (len > SP_MAX_MSG)
		return -EMSGSIZE;
	buf = fl_xmalloc(len);
	memcpy(buf, &h, sizeof(h));
	off = sizeof(h);
	if (sb) {
		struct sp_sbwire w = {.memory = sb->memory,
				      .cpu_millis = sb->cpu_millis,
				      .pids = sb->pids,
				      .uid = sb->uid,
				      .gid = sb->gid,
				      .writable_cwd = sb->writable_cwd ? 1 : 0,
				      .zygote = sb->zygote ? 1 : 0,
				      .nsecrets = (uint32_t)nsec};
		memcpy(buf + off, &w, sizeof(w));
		off += sizeof(w);
	}
#define SP_PUT(s)                                                                                  \
	do {                                                                                       \
		size_t l_ = strlen(s) + 1;                                                         \
		memcpy(buf + off, (s), l_);                                                        \
		off += l_;                                                                         \
	} while (0)
	if (cwd)
		SP_PUT(cwd);
	for (i = 0; i < (int)h.argc; i++)
		SP_PUT(argv[i]);
	for (i = 0; i < (int)h.envc; i++)
		SP_PUT(envp[i]);
	if (sb) {
		SP_PUT(sbname);
		SP_PUT(sbhide);
		SP_PUT(sbroot);
		SP_PUT(sbcode);
		for (i = 0; i < nsec; i++)
			SP_PUT(sb->secrets[i]);
	}
#undef SP_PUT
	if (sb && sb->netns > 0)
		h.flags |= SP_HAS_NETNS;
	memcpy(buf, &h, sizeof(h));
	r = sp_send(sp, buf, len, (h.flags & SP_HAS_NETNS) ? sb->netns : -1);
	free(buf);
	return r;
}

int fl_spawner_pool(fl_spawner *sp, unsigned max, const char *hide, int python)
{
	struct sp_hdr h = {.type = SP_POOL,
			   .value = (int32_t)(max > 1024 ? 1024 : max),
			   .flags = python ? 1u : 0u};
	size_t n = strlen(hide) + 1;
	char buf[sizeof(h) + 4096];

	if (hide[0] != '/' || n > 4096)
		return -EINVAL;
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), hide, n);
	return sp_send(sp, buf, sizeof(h) + n, -1);
}

int fl_spawner_signal(fl_spawner *sp, uint64_t id, int sig)
{
	struct sp_hdr h = {.type = SP_SIGNAL, .id = id, .value = sig};

	if (sig < 0 || sig >= NSIG)
		return -EINVAL;
	return sp_send(sp, &h, sizeof(h), -1);
}

/* Fills ev from one event message; returns 0, or -EINVAL when it is malformed. */
static int sp_parse_event(const char *buf, size_t n, const int *fds, int nfds,
			  struct fl_spawn_event *ev)
{
	struct sp_hdr h;

	if (n < sizeof(h))
		return -EINVAL;
	memcpy(&h, buf, sizeof(h));
	memset(ev, 0, sizeof(*ev));
	ev->id = h.id;
	ev->pid = h.pid;
	ev->out_fd = ev->err_fd = -1;
	switch (h.type) {
	case SP_STARTED:
		if (nfds != 2)
			return -EINVAL;
		ev->type = FL_SPAWN_STARTED;
		ev->warm = (h.value & 1) != 0;
		ev->zygote = (h.value & 2) != 0;
		ev->queued_us = h.argc;
		ev->out_fd = fds[0];
		ev->err_fd = fds[1];
		return 0;
	case SP_FAILED:
		if (nfds != 0 || n == sizeof(h) || buf[n - 1] != '\0')
			return -EINVAL;
		ev->type = FL_SPAWN_FAILED;
		n = strnlen(buf + sizeof(h), sizeof(ev->msg) - 1);
		memcpy(ev->msg, buf + sizeof(h), n);
		ev->msg[n] = '\0';
		return 0;
	case SP_EXITED:
		if (nfds != 0)
			return -EINVAL;
		ev->type = FL_SPAWN_EXITED;
		ev->status = h.value;
		return 0;
	}
	return -EINVAL;
}

int fl_spawner_read(fl_spawner *sp, struct fl_spawn_event *ev)
{
	char buf[sizeof(struct sp_hdr) + 512];

	/* A readiness callback already queued by the event loop can still run after the
	 * daemon stopped the spawner (and forgot its handle): the spawner is gone. */
	if (sp == NULL)
		return -EPIPE;
	for (;;) {
		union {
			char b[CMSG_SPACE(sizeof(int) * 4)];
			struct cmsghdr align;
		} cm;
		struct iovec iov = {buf, sizeof(buf)};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = cm.b,
				    .msg_controllen = sizeof(cm.b)};
		int fds[4], nfds = 0, i;
		ssize_t n;

		n = recvmsg(sp->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return FL_AGAIN;
			if (errno == ECONNRESET)
				return -EPIPE;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		nfds = sp_rights_take(&mh, fds, 4);
		if (!(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) &&
		    sp_parse_event(buf, (size_t)n, fds, nfds, ev) == 0)
			return 1;
		fl_warn("spawner", "ignoring a malformed event from the spawner");
		for (i = 0; i < nfds; i++)
			close(fds[i]);
	}
}

void fl_spawner_stop(fl_spawner *sp, unsigned grace_ms)
{
	struct sp_hdr h = {.type = SP_STOP,
			   .value = grace_ms > INT32_MAX ? INT32_MAX : (int)grace_ms};

	if (sp == NULL)
		return;
	/* If the request cannot be sent, EOF on the socket stops the spawner instead. */
	if (sp_send(sp, &h, sizeof(h), -1) < 0) {
		close(sp->fd);
		sp->fd = -1;
	}
	while (waitpid(sp->pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (sp->fd >= 0)
		close(sp->fd);
	free(sp);
}
