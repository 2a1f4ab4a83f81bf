/* spawner_proc.c -- the spawner process: its poll loop, instances, reaping and crash records. */
#include "runtime/spawner.h"

#include "core/log.h"
#include "core/util.h"
#include "runtime/cgroup.h"
#include "runtime/sandbox_linux.h"
#include "runtime/seccomp.h"
#include "runtime/spawner_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SP_EOF_GRACE_MS 3000 /* grace given to instances when the daemon goes away */
#define SP_CG_RETRY_MS	20   /* how often a group still holding dying processes is retried */
#define SP_CG_TRIES	500  /* ... and for how long (10 s) */
#ifndef SP_PENDING_PER_CPU
/* Starts set up at the same time, per CPU. Unbounded, a burst of starts shares the CPUs
 * (and the kernel's mount locks) evenly and all of them finish late; one per CPU keeps
 * every core busy and the first ones ready early (docs/benchmarks.md). */
#define SP_PENDING_PER_CPU 1
#endif

extern char **environ;

/* ---- /proc and process-group records (also read by the daemon at start-up) ---- */

/* Reads the process group and start time (field 22, clock ticks since boot) of pid.
 * Returns 0, -ENOENT when the process does not exist, or another -errno. */
static int sp_proc_stat(pid_t pid, pid_t *pgrp, unsigned long long *start)
{
	char path[64], buf[2048], *p, *tok, *save = NULL;
	ssize_t n;
	int fd, i;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ESRCH ? -ENOENT : -errno;
	do
		n = read(fd, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -ENOENT;
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: fields resume after the last ')'. */
	p = strrchr(buf, ')');
	if (p == NULL)
		return -EINVAL;
	p++;
	for (i = 3, tok = strtok_r(p, " ", &save); tok; i++, tok = strtok_r(NULL, " ", &save)) {
		if (i == 5)
			*pgrp = (pid_t)strtol(tok, NULL, 10);
		if (i == 22) {
			*start = strtoull(tok, NULL, 10);
			return 0;
		}
	}
	return -EINVAL;
}

/* Whether the group a record describes still exists: its leader with the recorded start
 * time, or, once the leader is gone, members started no earlier than it (workers left
 * behind by a killed leader keep its group id). */
static int sp_group_alive(pid_t pgid, unsigned long long start)
{
	unsigned long long st;
	struct dirent *de;
	pid_t pg;
	DIR *d;
	int r, found = 0;

	r = sp_proc_stat(pgid, &pg, &st);
	if (r == 0)
		return st == start;
	if (r != -ENOENT)
		return 0;
	d = opendir("/proc");
	if (d == NULL)
		return 0;
	while (!found && (de = readdir(d)) != NULL) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end != '\0' || pid <= 0)
			continue;
		if (sp_proc_stat((pid_t)pid, &pg, &st) == 0 && pg == pgid && st >= start)
			found = 1;
	}
	closedir(d);
	return found;
}

/* Kills the groups recorded in run_dir by an earlier spawner and removes every record.
 * Returns how many groups were killed. */
int fl_spawner__reap_leftovers(const char *run_dir)
{
	struct dirent *de;
	int count = 0;
	DIR *d;

	d = opendir(run_dir);
	if (d == NULL) {
		fl_warn("spawner", "cannot read %s: %s", run_dir, strerror(errno));
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		unsigned long long start = 0;
		char buf[64], *end;
		ssize_t n = -1;
		long pid;
		int fd;

		pid = strtol(de->d_name, &end, 10);
		if (de->d_name[0] < '0' || de->d_name[0] > '9' || *end != '\0')
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0) {
			do
				n = read(fd, buf, sizeof(buf) - 1);
			while (n < 0 && errno == EINTR);
			close(fd);
		}
		if (n > 0) {
			buf[n] = '\0';
			start = strtoull(buf, &end, 10);
			if (end == buf)
				n = -1;
		}
		/* Never signal init, everyone (-1) or the group this process belongs to. */
		if (n > 0 && pid > 1 && pid <= INT_MAX && pid != getpgrp() &&
		    sp_group_alive((pid_t)pid, start)) {
			if (kill(-(pid_t)pid, SIGKILL) == 0) {
				fl_info("spawner",
					"killed process group %ld left by an earlier run", pid);
				count++;
			}
		}
		if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
			fl_warn("spawner", "cannot remove %s/%s: %s", run_dir, de->d_name,
				strerror(errno));
	}
	closedir(d);
	return count;
}

void sp_record_write(struct sp_state *st, pid_t pid)
{
	unsigned long long start;
	char path[PATH_MAX], line[32];
	pid_t pg;
	int fd, r;

	r = sp_proc_stat(pid, &pg, &start);
	if (r == 0) {
		snprintf(path, sizeof(path), "%s/%d", st->run_dir, (int)pid);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0) {
			r = -errno;
		} else {
			int len = snprintf(line, sizeof(line), "%llu\n", start);
			r = fl_write_all(fd, line, (size_t)len);
			close(fd);
		}
	}
	if (r < 0)
		fl_warn("spawner", "cannot record process %d in %s (it would survive a crash): %s",
			(int)pid, st->run_dir, strerror(-r));
}

void sp_record_remove(struct sp_state *st, pid_t pid)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%d", st->run_dir, (int)pid);
	if (unlink(path) < 0 && errno != ENOENT)
		fl_warn("spawner", "cannot remove %s: %s", path, strerror(errno));
}

/* ---- the spawner process ---- */

int sp_kids_room(struct sp_state *st)
{
	struct sp_child *k;
	size_t cap;

	if (st->nkids < st->capkids)
		return 0;
	cap = st->capkids ? st->capkids * 2 : 16;
	k = realloc(st->kids, cap * sizeof(*k));
	if (k == NULL)
		return -ENOMEM;
	st->kids = k;
	st->capkids = cap;
	return 0;
}

ssize_t sp_find(const struct sp_state *st, uint64_t id)
{
	size_t i;

	/* A failed start waiting to be reaped no longer holds its id. */
	for (i = 0; i < st->nkids; i++)
		if (st->kids[i].id == id && !st->kids[i].failed)
			return (ssize_t)i;
	return -1;
}

static ssize_t sp_find_pid(const struct sp_state *st, pid_t pid)
{
	size_t i;

	for (i = 0; i < st->nkids; i++)
		if (st->kids[i].pid == pid)
			return (ssize_t)i;
	return -1;
}

/* Sends queued events until the socket is full. The daemon may be slow to read, so the
 * spawner never blocks on it: a blocked spawner could not reap or accept requests. */
static void sp_flush(struct sp_state *st)
{
	while (st->head) {
		struct sp_out *o = st->head;
		union {
			char b[CMSG_SPACE(sizeof(int) * 2)];
			struct cmsghdr align;
		} cm;
		struct iovec iov = {o->data, o->len};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		ssize_t n;
		int i;

		sp_rights_put(&mh, cm.b, o->fds, o->nfds);
		n = sendmsg(st->sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS))
			return;
		/* Any other error means the daemon is gone (EPIPE) or the event cannot be
		 * sent at all; drop it rather than retry forever. EOF arrives on the read side. */
		if (n < 0)
			fl_warn("spawner", "cannot send an event to the daemon: %s",
				strerror(errno));
		for (i = 0; i < o->nfds; i++)
			close(o->fds[i]);
		st->head = o->next;
		if (st->head == NULL)
			st->tail = &st->head;
		free(o);
	}
}

/* Queues an event; takes ownership of out_fd and err_fd (-1 for none). aux goes in the
 * header's argc (STARTED: microseconds the request waited for a set-up slot). */
static void sp_queue_aux(struct sp_state *st, uint32_t type, uint64_t id, pid_t pid, int value,
			 uint32_t aux, const char *text, int out_fd, int err_fd)
{
	size_t tlen = text ? strlen(text) + 1 : 0;
	struct sp_out *o = fl_xmalloc(sizeof(*o) + sizeof(struct sp_hdr) + tlen);
	struct sp_hdr h = {.type = type, .argc = aux, .id = id, .pid = pid, .value = value};

	o->next = NULL;
	o->len = sizeof(h) + tlen;
	memcpy(o->data, &h, sizeof(h));
	if (tlen)
		memcpy(o->data + sizeof(h), text, tlen);
	o->nfds = 0;
	if (out_fd >= 0)
		o->fds[o->nfds++] = out_fd;
	if (err_fd >= 0)
		o->fds[o->nfds++] = err_fd;
	*st->tail = o;
	st->tail = &o->next;
	sp_flush(st);
}

void sp_queue(struct sp_state *st, uint32_t type, uint64_t id, pid_t pid, int value,
	      const char *text, int out_fd, int err_fd)
{
	sp_queue_aux(st, type, id, pid, value, 0, text, out_fd, err_fd);
}

/* Removes the cgroups of an ended instance, or keeps them for a later try while the
 * kernel is still taking its processes away. */
static void sp_cg_remove(struct sp_state *st, uint64_t id)
{
	if (fl_cgroup_remove(id) != -EBUSY)
		return;
	if (st->ncgp == st->capcgp) {
		size_t cap = st->capcgp ? st->capcgp * 2 : 8;
		struct sp_cg_pending *p = realloc(st->cgp, cap * sizeof(*p));
		if (p == NULL) {
			fl_warn("spawner", "out of memory: the cgroups of instance %llu are left",
				(unsigned long long)id);
			return;
		}
		st->cgp = p;
		st->capcgp = cap;
	}
	st->cgp[st->ncgp++] = (struct sp_cg_pending){id, 0};
}

static void sp_cg_retry(struct sp_state *st)
{
	size_t i = 0;

	while (i < st->ncgp) {
		struct sp_cg_pending *p = &st->cgp[i];
		int r = fl_cgroup_remove(p->id);
		if (r == -EBUSY && ++p->tries < SP_CG_TRIES) {
			i++;
			continue;
		}
		if (r < 0)
			fl_warn("spawner", "cannot remove the cgroups of instance %llu: %s",
				(unsigned long long)p->id, strerror(-r));
		st->cgp[i] = st->cgp[--st->ncgp];
	}
}

/* Releases what a pending start holds for its report: pipes and strings. */
static void sp_start_drop(struct sp_child *k)
{
	if (k->ep_fd >= 0)
		close(k->ep_fd);
	if (k->out_fd >= 0)
		close(k->out_fd);
	if (k->err_fd >= 0)
		close(k->err_fd);
	if (k->warm_sock >= 0)
		close(k->warm_sock);
	k->ep_fd = k->out_fd = k->err_fd = k->warm_sock = -1;
	free(k->argv0);
	free(k->cwd);
	k->argv0 = k->cwd = NULL;
}

/* The FAILED sentence for a start that reported e (NULL: it ended before exec without
 * saying why). */
void sp_fail_text(const struct fl_sandbox_err *e, const char *argv0, const char *cwd, char *msg,
		  size_t len)
{
	if (e == NULL)
		snprintf(msg, len, "start %.200s: the process ended before exec", argv0);
	else if (e->step == FL_SB_STEP_CHDIR)
		snprintf(msg, len, "chdir %.200s: %s", cwd ? cwd : "/tmp", strerror(e->err));
	else if (e->step == FL_SB_STEP_EXEC)
		snprintf(msg, len, "exec %.200s: %s", argv0, strerror(e->err));
	else if (e->step == FL_SB_STEP_SANDBOX)
		snprintf(msg, len, "sandbox: cannot %.120s: %s", e->what, strerror(e->err));
	else
		snprintf(msg, len, "start %.200s: %s", argv0, strerror(e->err));
}

/* Reads what the exec-report pipe of a pending start holds and, once it has spoken,
 * reports STARTED (EOF: the command exec'd) or FAILED (a struct fl_sandbox_err, or EOF
 * after part of one). final: the child is dead, so no more will come. A failed child is
 * killed here and reaped later by sp_reap, without EXITED. */
static void sp_start_report(struct sp_state *st, struct sp_child *k, int final)
{
	const struct fl_sandbox_err *e = &k->e;
	char msg[256];

	while (k->got < sizeof(k->e)) {
		ssize_t n = read(k->ep_fd, (char *)&k->e + k->got, sizeof(k->e) - k->got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !final)
			return;
		if (n <= 0)
			break;
		k->got += (size_t)n;
	}
	if (k->got == 0) {
		sp_queue_aux(st, SP_STARTED, k->id, k->pid, k->warm | k->zygote << 1, k->queued_us,
			     NULL, k->out_fd, k->err_fd);
		k->out_fd = k->err_fd = -1;
		sp_start_drop(k);
		return;
	}
	/* When final, sp_reap has reaped it already: its pid may belong to another now. */
	if (!final) {
		kill(-k->pid, SIGKILL);
		kill(k->pid, SIGKILL);
	}
	sp_fail_text(k->got < sizeof(k->e) ? NULL : e, k->argv0, k->cwd, msg, sizeof(msg));
	k->failed = 1;
	sp_start_drop(k);
	sp_queue(st, SP_FAILED, k->id, 0, 0, msg, -1, -1);
}

/* The pending start whose exec-report pipe is fd, or NULL. */
static struct sp_child *sp_find_ep(struct sp_state *st, int fd)
{
	size_t i;

	for (i = 0; i < st->nkids; i++)
		if (st->kids[i].ep_fd == fd)
			return &st->kids[i];
	return NULL;
}

/* Reaps every leader that has exited. The leader is still a zombie when waitid(WNOWAIT)
 * reports it, which keeps its pid (the group id) from being reused, so the rest of its
 * group can be killed safely before it is reaped. */
static void sp_reap(struct sp_state *st, int notify)
{
	for (;;) {
		siginfo_t si;
		ssize_t k;
		pid_t pid;
		int status = 0;

		memset(&si, 0, sizeof(si));
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
			if (errno == EINTR)
				continue;
			return; /* ECHILD: no children at all */
		}
		pid = si.si_pid;
		if (pid == 0)
			return;
		k = sp_find_pid(st, pid);
		if (k >= 0)
			kill(-pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (k < 0) {
			if (!sp_warm_reaped(st, pid, status))
				fl_warn("spawner", "reaped unknown process %d", (int)pid);
			continue;
		}
		sp_record_remove(st, pid);
		/* A start's outcome always goes out before its exit. */
		if (st->kids[k].ep_fd >= 0 && notify)
			sp_start_report(st, &st->kids[k], 1);
		sp_start_drop(&st->kids[k]);
		/* A sandbox's init reports how the command itself ended. */
		if (st->kids[k].status_fd >= 0) {
			int cmd_status;
			if (read(st->kids[k].status_fd, &cmd_status, sizeof(cmd_status)) ==
			    (ssize_t)sizeof(cmd_status))
				status = cmd_status;
			close(st->kids[k].status_fd);
		}
		if (st->kids[k].cg)
			sp_cg_remove(st, st->kids[k].id);
		if (notify && !st->kids[k].failed)
			sp_queue(st, SP_EXITED, st->kids[k].id, pid, status, NULL, -1, -1);
		st->kids[k] = st->kids[--st->nkids];
	}
}

/* Reads what the signalfd holds; returns 1 if SIGTERM was among it. */
static int sp_drain_signals(struct sp_state *st)
{
	struct signalfd_siginfo si;
	int term = 0;
	ssize_t n;

	for (;;) {
		n = read(st->sigfd, &si, sizeof(si));
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(si))
			return term;
		if (si.ssi_signo == SIGTERM)
			term = 1;
	}
}

/* Ends the spawner: SIGTERM to every group, up to grace_ms for the leaders to exit,
 * SIGKILL to the rest, reap, exit. */
__attribute__((noreturn)) static void sp_shutdown(struct sp_state *st, unsigned grace_ms)
{
	uint64_t deadline = fl_now_ms() + grace_ms;
	size_t i;

	/* Warm sandboxes have nothing to drain. */
	for (i = 0; i < st->nwarm; i++) {
		kill(st->warm[i].pid, SIGKILL);
		while (waitpid(st->warm[i].pid, NULL, 0) < 0 && errno == EINTR)
			;
		sp_record_remove(st, st->warm[i].pid);
	}
	st->nwarm = 0;
	for (i = 0; i < st->nkids; i++)
		kill(-st->kids[i].pid, SIGTERM);
	sp_reap(st, 0);
	while (st->nkids > 0) {
		struct pollfd p = {st->sigfd, POLLIN, 0};
		uint64_t now = fl_now_ms();
		if (now >= deadline)
			break;
		if (poll(&p, 1, (int)(deadline - now)) < 0 && errno != EINTR)
			break;
		sp_drain_signals(st);
		sp_reap(st, 0);
	}
	for (i = 0; i < st->nkids; i++) {
		pid_t pid = st->kids[i].pid;
		kill(-pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		sp_record_remove(st, pid);
		if (st->kids[i].cg)
			sp_cg_remove(st, st->kids[i].id);
	}
	/* Bounded: at most SP_CG_TRIES rounds of SP_CG_RETRY_MS. */
	while (st->ncgp > 0) {
		struct timespec ts = {0, SP_CG_RETRY_MS * 1000000L};
		nanosleep(&ts, NULL);
		sp_cg_retry(st);
	}
	fl_cgroup_cleanup();
	_exit(0);
}

/* Runs in a plain (not sandboxed) instance between fork and exec. Every descriptor the
 * spawner owns is close-on-exec, so only 0, 1 and 2 survive the exec. */
__attribute__((noreturn)) static void sp_exec_child(pid_t spawner, const char *cwd, char **argv,
						    char **envp, int out_w, int err_w, int ep)
{
	if (setsid() < 0)
		fl_sandbox_fail(ep, FL_SB_STEP_SETUP, errno, NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		fl_sandbox_fail(ep, FL_SB_STEP_SETUP, errno, NULL);
	/* The spawner may have died before PDEATHSIG was armed. */
	if (getppid() != spawner)
		_exit(127);
	fl_sandbox_exec(cwd, argv, envp, out_w, err_w, ep);
}

/* Starts a plain instance with vfork, as the sandbox's init does (runtime/sandbox_linux.c):
 * no copy of the spawner's page tables on the path of a start. In a function of its own,
 * so that no local of the caller's lives across the vfork. The child points environ at
 * the instance's (to look up argv[0] in its PATH): it is put back here. */
static pid_t sp_vfork_exec(pid_t self, const char *cwd, char **argv, char **envp, int out_w,
			   int err_w, int ep)
{
	char **env = environ;
	pid_t pid = vfork();

	if (pid == 0)
		sp_exec_child(self, cwd, argv, envp, out_w, err_w, ep);
	environ = env;
	return pid;
}

static void sp_close_pair(int p[2])
{
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0)
			close(p[i]);
	p[0] = p[1] = -1;
}

static void sp_spawn(struct sp_state *st, uint64_t id, const char *cwd, char **argv, char **envp,
		     const struct fl_sandbox *sb)
{
	int out[2] = {-1, -1}, err[2] = {-1, -1}, ep[2] = {-1, -1}, sy[2] = {-1, -1};
	int stp[2] = {-1, -1}, cg = 0, r;
	struct fl_cg_limits lim = {0};
	struct sp_child *k;
	char msg[256], why[200];
	pid_t pid, self = getpid();

	if (sp_find(st, id) >= 0) {
		snprintf(msg, sizeof(msg), "start %.200s: instance id %llu is already running",
			 argv[0], (unsigned long long)id);
		goto fail;
	}
	if (sp_kids_room(st) < 0) {
		snprintf(msg, sizeof(msg), "start %.200s: out of memory", argv[0]);
		goto fail;
	}
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0 ||
	    (sb && (pipe2(sy, O_CLOEXEC) < 0 || pipe2(stp, O_CLOEXEC) < 0))) {
		snprintf(msg, sizeof(msg), "start %.200s: cannot create pipes: %s", argv[0],
			 strerror(errno));
		goto fail;
	}
	if (sb) {
		if (fl_seccomp_prepare(why, sizeof(why)) < 0) {
			snprintf(msg, sizeof(msg), "sandbox: %s", why);
			goto fail;
		}
		lim = (struct fl_cg_limits){sb->memory, sb->cpu_millis, sb->pids};
		r = fl_cgroup_create(id, &lim, why, sizeof(why));
		if (r < 0) {
			snprintf(msg, sizeof(msg), "sandbox: %s", why);
			goto fail;
		}
		cg = lim.memory || lim.cpu_millis || lim.pids;
		pid = fl_sandbox_clone(&(struct fl_sandbox_child){
		    .sb = sb,
		    .cwd = cwd,
		    .argv = argv,
		    .envp = envp,
		    .out_w = out[1],
		    .err_w = err[1],
		    .ep_w = ep[1],
		    .sync_r = sy[0],
		    .status_w = stp[1],
		    .parent_pidfd = st->self_pidfd,
		});
		if (pid < 0)
			errno = -pid;
	} else {
		pid = sp_vfork_exec(self, cwd, argv, envp, out[1], err[1], ep[1]);
	}
	if (pid < 0) {
		snprintf(msg, sizeof(msg), "start %.200s: %s: %s", argv[0],
			 sb ? "clone into new namespaces" : "fork", strerror(errno));
		goto fail;
	}
	close(out[1]);
	close(err[1]);
	close(ep[1]);
	out[1] = err[1] = ep[1] = -1;
	k = &st->kids[st->nkids++];
	*k = (struct sp_child){.id = id,
			       .pid = pid,
			       .status_fd = stp[0],
			       .cg = cg,
			       .ep_fd = -1,
			       .out_fd = -1,
			       .err_fd = -1,
			       .warm_sock = -1};
	stp[0] = -1;
	if (sb) {
		close(sy[0]);
		close(stp[1]);
		sy[0] = stp[1] = -1;
		/* Into its cgroups before it runs anything of the instance's: the init waits
		 * for this byte. This is the only step of a start the spawner waits for. */
		r = fl_cgroup_attach(id, &lim, pid, why, sizeof(why));
		if (r == 0 && write(sy[1], "g", 1) != 1)
			r = -errno;
		if (r < 0) {
			/* Reaped later like any failed start, without EXITED. */
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			k->failed = 1;
			sp_record_write(st, pid);
			snprintf(msg, sizeof(msg), "sandbox: %s", why);
			sp_close_pair(out);
			sp_close_pair(err);
			sp_close_pair(ep);
			sp_close_pair(sy);
			sp_close_pair(stp);
			sp_queue(st, SP_FAILED, id, 0, 0, msg, -1, -1);
			return;
		}
		close(sy[1]);
		sy[1] = -1;
	}
	sp_record_write(st, pid);
	/* The outcome is reported when the exec-report pipe has spoken (sp_start_report):
	 * the main loop polls it with everything else. */
	fcntl(ep[0], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(err[0], F_SETFL, O_NONBLOCK);
	if (k->status_fd >= 0)
		fcntl(k->status_fd, F_SETFL, O_NONBLOCK);
	k->ep_fd = ep[0];
	k->out_fd = out[0];
	k->err_fd = err[0];
	k->argv0 = fl_xstrdup(argv[0]);
	k->cwd = cwd ? fl_xstrdup(cwd) : NULL;
	ep[0] = out[0] = err[0] = -1;
	return;
fail:
	if (cg)
		sp_cg_remove(st, id);
	sp_close_pair(out);
	sp_close_pair(err);
	sp_close_pair(ep);
	sp_close_pair(sy);
	sp_close_pair(stp);
	sp_queue(st, SP_FAILED, id, 0, 0, msg, -1, -1);
}

/* Queues a SPAWN request (the whole message, and its descriptor) until a set-up slot is
 * free. */
static void sp_enqueue(struct sp_state *st, const char *msg, size_t n, int fd)
{
	struct sp_req *q = fl_xmalloc(sizeof(*q) + n);

	q->next = NULL;
	q->since_ns = fl_now_ns();
	q->len = n;
	q->fd = fd;
	memcpy(q->data, msg, n);
	*st->qtail = q;
	st->qtail = &q->next;
}

/* Checks and unpacks a SPAWN request (msg, n: the whole message) and starts it: in a warm
 * sandbox when one fits, else now if a set-up slot is free or may_queue is 0, else later
 * (queued). Malformed requests are logged and dropped. netns is the descriptor that came
 * with it (or -1), owned here. */
static void sp_handle_spawn(struct sp_state *st, char *msg, size_t n, int netns, int may_queue,
			    uint64_t since_ns)
{
	struct sp_spawn_req r;
	ssize_t k;
	struct sp_hdr h;
	int rc;

	memcpy(&h, msg, sizeof(h));
	rc = sp_decode_spawn(&h, msg + sizeof(h), n - sizeof(h), netns, &r);
	if (rc == -ENOMEM)
		sp_queue(st, SP_FAILED, h.id, 0, 0, "start: out of memory", -1, -1);
	if (rc < 0)
		goto out;
	if (r.argv[0][0] == '\0')
		sp_queue(st, SP_FAILED, h.id, 0, 0, "start: the command is empty", -1, -1);
	else if ((h.flags & SP_HAS_NETNS) && (!r.has_sb || r.sb.netns == 0))
		sp_queue(st, SP_FAILED, h.id, 0, 0,
			 "sandbox: the network namespace did not arrive with the request", -1, -1);
	else if (r.has_sb && (r.sb.uid == 0 || r.sb.gid == 0))
		sp_queue(st, SP_FAILED, h.id, 0, 0, "sandbox: refusing to run as uid or gid 0", -1,
			 -1);
	else if (r.has_sb && sp_try_warm(st, h.id, &r, msg, n))
		;
	else if (may_queue && (st->qhead || sp_npending(st) >= st->max_pending)) {
		sp_enqueue(st, msg, n, netns);
		netns = -1;
	} else
		sp_spawn(st, h.id, r.cwd, r.argv, r.envp, r.has_sb ? &r.sb : NULL);
	if (since_ns && (k = sp_find(st, h.id)) >= 0) {
		uint64_t us = (fl_now_ns() - since_ns) / 1000;
		st->kids[k].queued_us = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
	}
	if (r.has_sb && may_queue)
		sp_warm_tick(st, 1, r.sb.zygote != 0, 0);
	sp_spawn_req_free(&r);
out:
	if (netns >= 0)
		close(netns);
}

/* Starts queued requests, in order, while there is room. */
static void sp_run_queue(struct sp_state *st)
{
	while (st->qhead && sp_npending(st) < st->max_pending) {
		struct sp_req *q = st->qhead;

		st->qhead = q->next;
		if (st->qhead == NULL)
			st->qtail = &st->qhead;
		sp_handle_spawn(st, q->data, q->len, q->fd, 0, q->since_ns);
		free(q);
	}
}

/* Acts on one request; fd is a descriptor that came with it (or -1), owned here. */
static void sp_dispatch(struct sp_state *st, char *buf, size_t n, int fd)
{
	struct sp_hdr h;
	ssize_t k;

	if (n < sizeof(h)) {
		fl_warn("spawner", "ignoring a %zu-byte message, shorter than a header", n);
		if (fd >= 0)
			close(fd);
		return;
	}
	memcpy(&h, buf, sizeof(h));
	if (fd >= 0 && (h.type != SP_SPAWN || !(h.flags & SP_HAS_NETNS))) {
		close(fd);
		fd = -1;
	}
	switch (h.type) {
	case SP_SPAWN:
		sp_handle_spawn(st, buf, n, fd, 1, 0);
		break;
	case SP_POOL:
		/* The most to keep, and the data directory they hide (NUL-terminated). */
		if (n > sizeof(h) && buf[n - 1] == '\0' && buf[sizeof(h)] == '/') {
			free(st->warm_hide);
			st->warm_hide = fl_xstrdup(buf + sizeof(h));
			st->warm_max = h.value < 0 ? 0 : (size_t)h.value;
			st->warm_py_seen |= (h.flags & 1) != 0;
			st->warm_window_ms = fl_now_ms();
			sp_warm_tick(st, 0, 0, 0);
		} else {
			fl_warn("spawner", "ignoring a malformed pool request");
		}
		break;
	case SP_SIGNAL:
		k = sp_find(st, h.id);
		if (h.value < 0 || h.value >= NSIG)
			fl_warn("spawner", "ignoring signal %d for id %llu: not a signal", h.value,
				(unsigned long long)h.id);
		else if (k >= 0 && kill(-st->kids[k].pid, h.value) < 0)
			fl_warn("spawner", "cannot signal process group %d: %s",
				(int)st->kids[k].pid, strerror(errno));
		break;
	case SP_STOP:
		sp_shutdown(st, h.value < 0 ? 0 : (unsigned)h.value);
	default:
		fl_warn("spawner", "ignoring a message of unknown type %u", h.type);
	}
}

static void sp_handle_requests(struct sp_state *st)
{
	static char buf[SP_MAX_MSG];

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
		ssize_t n = recvmsg(st->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		int fd = -1;

		/* The first descriptor it carried (a network namespace), if any. */
		if (n > 0 && sp_rights_take(&mh, &fd, 1) == 0)
			fd = -1;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* ECONNRESET: the daemon closed with events unread, an EOF too. */
			if (errno != ECONNRESET)
				fl_error("spawner", "reading requests: %s", strerror(errno));
			sp_shutdown(st, SP_EOF_GRACE_MS);
		}
		if (n == 0) {
			/* EOF, unless it was an empty datagram and the daemon is still there. */
			struct pollfd p = {st->sock, POLLRDHUP, 0};
			if (poll(&p, 1, 0) != 0)
				sp_shutdown(st, SP_EOF_GRACE_MS);
			fl_warn("spawner", "ignoring an empty message");
			continue;
		}
		if (mh.msg_flags & MSG_TRUNC) {
			fl_warn("spawner", "ignoring a message longer than %d bytes", SP_MAX_MSG);
			if (fd >= 0)
				close(fd);
			continue;
		}
		sp_dispatch(st, buf, (size_t)n, fd);
	}
}

/* Leaves the spawner with 0, 1, 2 (the daemon's, or /dev/null) and the socket at fd 3:
 * nothing else the daemon had open may leak into instances or be held open by us. */
static int sp_tidy_fds(int sock)
{
	int fd;

	if (sock != 3) {
		if (dup3(sock, 3, O_CLOEXEC) < 0)
			return -1;
		close(sock);
		sock = 3;
	}
	for (fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
			return -1;
	if (close_range(4, ~0U, 0) < 0) {
		DIR *d = opendir("/proc/self/fd");
		struct dirent *de;
		if (d == NULL)
			return -1;
		while ((de = readdir(d)) != NULL) {
			fd = atoi(de->d_name);
			if (fd > 3 && fd != dirfd(d))
				close(fd);
		}
		closedir(d);
	}
	return sock;
}

__attribute__((noreturn)) void fl_spawner__main(int sock, pid_t parent, const char *run_dir)
{
	struct sp_state st = {
	    .sock = -1, .sigfd = -1, .parent = parent, .run_dir = run_dir, .self_pidfd = -1};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	sigset_t set;

	st.tail = &st.head;
	st.qtail = &st.qhead;
	st.max_pending = (size_t)(ncpu > 0 ? ncpu : 1) * SP_PENDING_PER_CPU;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	/* SIGCHLD ignored would make the kernel reap instances behind our back. The
	 * terminal's ^C goes to the whole foreground group: the daemon decides when we end. */
	signal(SIGCHLD, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
		_exit(0);
	prctl(PR_SET_NAME, "flint-spawner");
	st.sock = sp_tidy_fds(sock);
	if (st.sock < 0) {
		fl_error("spawner", "cannot set up descriptors: %s", strerror(errno));
		_exit(1);
	}
	st.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (st.sigfd < 0) {
		fl_error("spawner", "signalfd: %s", strerror(errno));
		_exit(1);
	}
	/* Sandboxed children cannot use getppid() (the spawner is outside their PID
	 * namespace): they poll this descriptor instead. */
	st.self_pidfd = pidfd_open(getpid(), 0);
	if (st.self_pidfd >= 0)
		fcntl(st.self_pidfd, F_SETFD, FD_CLOEXEC);
	for (;;) {
		struct pollfd *p;
		size_t np = 2, nk, i;
		int timeout = -1, quiet;

		if (st.cappfd < st.nkids + st.nwarm + 2) {
			free(st.pfd);
			st.cappfd = st.capkids + st.capwarm + 2;
			st.pfd = fl_xmalloc(st.cappfd * sizeof(*st.pfd));
		}
		p = st.pfd;
		p[0] = (struct pollfd){st.sock, (short)(POLLIN | (st.head ? POLLOUT : 0)), 0};
		p[1] = (struct pollfd){st.sigfd, POLLIN, 0};
		for (i = 0; i < st.nkids; i++)
			if (st.kids[i].ep_fd >= 0)
				p[np++] = (struct pollfd){st.kids[i].ep_fd, POLLIN, 0};
		nk = np;
		for (i = 0; i < st.nwarm; i++)
			if (!st.warm[i].ready && !st.warm[i].dying)
				p[np++] = (struct pollfd){st.warm[i].sock, POLLIN, 0};
		if (st.ncgp > 0) {
			sp_cg_retry(&st);
			timeout = SP_CG_RETRY_MS;
		} else if (st.warm_short) {
			timeout = SP_WARM_QUIET_MS;
		} else if (st.warm_max > 0) {
			timeout = 1000; /* the pool's rate is measured per second */
		}
		quiet = poll(p, np, timeout);
		if (quiet < 0) {
			if (errno == EINTR)
				continue;
			fl_error("spawner", "poll: %s", strerror(errno));
			sp_shutdown(&st, SP_EOF_GRACE_MS);
		}
		/* Reports before reaping and requests: nothing below moves or adds a kid
		 * before every ready report has been read. */
		for (i = 2; i < nk; i++) {
			struct sp_child *k;
			if (p[i].revents == 0 || (k = sp_find_ep(&st, p[i].fd)) == NULL)
				continue;
			sp_start_report(&st, k, 0);
		}
		for (i = nk; i < np; i++)
			if (p[i].revents)
				sp_warm_readable(&st, p[i].fd);
		if (p[1].revents & POLLIN) {
			if (sp_drain_signals(&st))
				sp_shutdown(&st, SP_EOF_GRACE_MS);
			sp_reap(&st, 1);
		}
		sp_run_queue(&st);
		if (p[0].revents & POLLOUT)
			sp_flush(&st);
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
			sp_handle_requests(&st);
		/* Nothing happened for a while: time to build what the pool lacks. */
		sp_warm_tick(&st, 0, 0, quiet == 0);
	}
}
