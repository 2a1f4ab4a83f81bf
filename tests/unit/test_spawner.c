/* test_spawner.c -- unit tests for the spawner: events, pipes, groups, crash cleanup. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "runtime/cgroup.c"
#include "runtime/sandbox_linux.c"
#include "runtime/netns.c"
#include "runtime/seccomp.c"
#include "runtime/spawner.c"
#include "runtime/spawner_proc.c"
#include "runtime/spawner_pool.c"
#include "runtime/pyzygote.c"

#include <ftw.h>
#include <sys/pidfd.h>

#define WAIT_MS 10000 /* generous bound for any event; tests end as soon as it arrives */

struct fx {
	char dir[64];
	char run[128];
	fl_spawner *sp;
};

static char *path_env[] = {"PATH=/usr/bin:/bin", NULL};

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	int reaped = -1;

	assert_non_null(f);
	strcpy(f->dir, "/tmp/flint-spawner-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->run, sizeof(f->run), "%s/run", f->dir);
	assert_int_equal(fl_spawner_start(f->run, &f->sp, &reaped), 0);
	assert_int_equal(reaped, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->sp)
		fl_spawner_stop(f->sp, 1000);
	nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Waits (poll, bounded) for the next event. */
static void wait_event(fl_spawner *sp, struct fl_spawn_event *ev)
{
	uint64_t deadline = fl_now_ms() + WAIT_MS;

	for (;;) {
		struct pollfd p = {fl_spawner_fd(sp), POLLIN, 0};
		int r = fl_spawner_read(sp, ev);
		uint64_t now;

		if (r == 1)
			return;
		assert_int_equal(r, FL_AGAIN);
		now = fl_now_ms();
		if (now >= deadline)
			fail_msg("no event from the spawner within %d ms", WAIT_MS);
		poll(&p, 1, (int)(deadline - now));
	}
}

/* Reads fd until EOF (stop_at_nl: until the first newline) into buf. */
static size_t read_fd(int fd, char *buf, size_t cap, int stop_at_nl)
{
	uint64_t deadline = fl_now_ms() + WAIT_MS;
	size_t n = 0;

	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		uint64_t now;

		if (r == 0)
			break;
		if (r > 0) {
			n += (size_t)r;
			buf[n] = '\0';
			if ((stop_at_nl && memchr(buf, '\n', n)) || n == cap - 1)
				break;
			continue;
		}
		assert_true(errno == EAGAIN || errno == EINTR);
		now = fl_now_ms();
		if (now >= deadline)
			fail_msg("no output within %d ms", WAIT_MS);
		poll(&p, 1, (int)(deadline - now));
	}
	buf[n] = '\0';
	return n;
}

/* Asserts that pid ends (becomes a zombie or disappears) within the bound. */
static void assert_gone(int pidfd)
{
	struct pollfd p = {pidfd, POLLIN, 0};

	assert_int_equal(poll(&p, 1, WAIT_MS), 1);
	close(pidfd);
}

static int record_exists(const struct fx *f, pid_t pid)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%d", f->run, (int)pid);
	return access(path, F_OK) == 0;
}

static void expect_started(fl_spawner *sp, uint64_t id, struct fl_spawn_event *ev)
{
	wait_event(sp, ev);
	if (ev->type != FL_SPAWN_STARTED)
		fail_msg("expected STARTED, got type %d: %s", ev->type, ev->msg);
	assert_int_equal(ev->id, id);
	assert_true(ev->pid > 0);
	assert_true(ev->out_fd >= 0 && ev->err_fd >= 0);
}

static void expect_exited(fl_spawner *sp, uint64_t id, pid_t pid, struct fl_spawn_event *ev)
{
	wait_event(sp, ev);
	assert_int_equal(ev->type, FL_SPAWN_EXITED);
	assert_int_equal(ev->id, id);
	assert_int_equal(ev->pid, pid);
}

static void test_output_and_exit_status(void **state)
{
	struct fx *f = *state;
	char *argv[] = {"/bin/sh", "-c", "echo out; echo err >&2; exit 3", NULL};
	struct fl_spawn_event ev, ex;
	char buf[64];

	assert_int_equal(fl_spawner_spawn(f->sp, 7, NULL, argv, path_env, NULL), 0);
	expect_started(f->sp, 7, &ev);
	assert_true(fcntl(ev.out_fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(ev.err_fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(ev.out_fd, F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(ev.err_fd, F_GETFD) & FD_CLOEXEC);
	read_fd(ev.out_fd, buf, sizeof(buf), 0);
	assert_string_equal(buf, "out\n");
	read_fd(ev.err_fd, buf, sizeof(buf), 0);
	assert_string_equal(buf, "err\n");
	expect_exited(f->sp, 7, ev.pid, &ex);
	assert_true(WIFEXITED(ex.status));
	assert_int_equal(WEXITSTATUS(ex.status), 3);
	/* The record lives exactly as long as the group. */
	assert_false(record_exists(f, ev.pid));
	close(ev.out_fd);
	close(ev.err_fd);
}

static void test_exec_failure(void **state)
{
	struct fx *f = *state;
	char *argv[] = {"no-such-command-flint", "x", NULL};
	struct fl_spawn_event ev;

	assert_int_equal(fl_spawner_spawn(f->sp, 8, NULL, argv, path_env, NULL), 0);
	wait_event(f->sp, &ev);
	assert_int_equal(ev.type, FL_SPAWN_FAILED);
	assert_int_equal(ev.id, 8);
	assert_int_equal(ev.out_fd, -1);
	assert_string_equal(ev.msg, "exec no-such-command-flint: No such file or directory");
	/* Nothing else follows: no EXITED for a process that never started. */
	assert_int_equal(fl_spawner_read(f->sp, &ev), FL_AGAIN);
}

static void test_chdir_failure(void **state)
{
	struct fx *f = *state;
	char *argv[] = {"pwd", NULL};
	struct fl_spawn_event ev;

	assert_int_equal(fl_spawner_spawn(f->sp, 9, "/nonexistent-flint-dir", argv, path_env, NULL),
			 0);
	wait_event(f->sp, &ev);
	assert_int_equal(ev.type, FL_SPAWN_FAILED);
	assert_string_equal(ev.msg, "chdir /nonexistent-flint-dir: No such file or directory");
}

static void test_cwd(void **state)
{
	struct fx *f = *state;
	char *argv[] = {"pwd", NULL};
	char buf[PATH_MAX + 2], want[PATH_MAX + 2], real[PATH_MAX];
	struct fl_spawn_event ev, ex;

	assert_non_null(realpath(f->dir, real));
	snprintf(want, sizeof(want), "%s\n", real);
	assert_int_equal(fl_spawner_spawn(f->sp, 10, f->dir, argv, path_env, NULL), 0);
	expect_started(f->sp, 10, &ev);
	read_fd(ev.out_fd, buf, sizeof(buf), 0);
	assert_string_equal(buf, want);
	expect_exited(f->sp, 10, ev.pid, &ex);
	assert_int_equal(ex.status, 0);
	close(ev.out_fd);
	close(ev.err_fd);
}

static void test_path_and_env_from_envp(void **state)
{
	struct fx *f = *state;
	char bin[128], script[192], pathvar[160];
	char *argv[] = {"flint-hello", NULL};
	char *envp[] = {pathvar, "GREETING=hi there", NULL};
	struct fl_spawn_event ev, ex;
	char buf[64];
	FILE *fp;

	snprintf(bin, sizeof(bin), "%s/bin", f->dir);
	snprintf(script, sizeof(script), "%s/flint-hello", bin);
	snprintf(pathvar, sizeof(pathvar), "PATH=/nonexistent:%s", bin);
	assert_int_equal(mkdir(bin, 0755), 0);
	fp = fopen(script, "w");
	assert_non_null(fp);
	fputs("#!/bin/sh\necho \"$GREETING\"\n", fp);
	fclose(fp);
	assert_int_equal(chmod(script, 0755), 0);

	assert_int_equal(fl_spawner_spawn(f->sp, 11, NULL, argv, envp, NULL), 0);
	expect_started(f->sp, 11, &ev);
	read_fd(ev.out_fd, buf, sizeof(buf), 0);
	assert_string_equal(buf, "hi there\n");
	expect_exited(f->sp, 11, ev.pid, &ex);
	assert_int_equal(ex.status, 0);
	close(ev.out_fd);
	close(ev.err_fd);

	/* The daemon's PATH plays no part: without bin in envp's PATH it is not found. */
	assert_int_equal(fl_spawner_spawn(f->sp, 12, NULL, argv, path_env, NULL), 0);
	wait_event(f->sp, &ev);
	assert_int_equal(ev.type, FL_SPAWN_FAILED);
	assert_string_equal(ev.msg, "exec flint-hello: No such file or directory");
}

static void test_signal(void **state)
{
	struct fx *f = *state;
	char *argv[] = {"sleep", "100", NULL};
	struct fl_spawn_event ev, ex;

	assert_int_equal(fl_spawner_spawn(f->sp, 13, NULL, argv, path_env, NULL), 0);
	expect_started(f->sp, 13, &ev);
	assert_true(record_exists(f, ev.pid));
	assert_int_equal(getpgid(ev.pid), ev.pid);		     /* a group of its own */
	assert_int_equal(fl_spawner_signal(f->sp, 999, SIGTERM), 0); /* unknown: ignored */
	assert_int_equal(fl_spawner_signal(f->sp, 13, 100000), -EINVAL);
	assert_int_equal(fl_spawner_signal(f->sp, 13, SIGTERM), 0);
	expect_exited(f->sp, 13, ev.pid, &ex);
	assert_true(WIFSIGNALED(ex.status));
	assert_int_equal(WTERMSIG(ex.status), SIGTERM);
	assert_false(record_exists(f, ev.pid));
	close(ev.out_fd);
	close(ev.err_fd);
}

/* Starts `sh -c script` whose first output line is a grandchild's pid. */
static pid_t start_with_grandchild(struct fx *f, uint64_t id, const char *script,
				   struct fl_spawn_event *ev, int *gpidfd)
{
	char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
	char buf[64];
	pid_t g;

	assert_int_equal(fl_spawner_spawn(f->sp, id, NULL, argv, path_env, NULL), 0);
	expect_started(f->sp, id, ev);
	read_fd(ev->out_fd, buf, sizeof(buf), 1);
	g = (pid_t)atoi(buf);
	assert_true(g > 0);
	assert_int_equal(getpgid(g), ev->pid);
	*gpidfd = pidfd_open(g, 0);
	assert_true(*gpidfd >= 0);
	return g;
}

static void test_signal_reaches_grandchild(void **state)
{
	struct fx *f = *state;
	struct fl_spawn_event ev, ex;
	int gfd;

	start_with_grandchild(f, 14, "sleep 100 & echo $!; wait", &ev, &gfd);
	assert_int_equal(fl_spawner_signal(f->sp, 14, SIGTERM), 0);
	expect_exited(f->sp, 14, ev.pid, &ex);
	assert_true(WIFSIGNALED(ex.status));
	assert_gone(gfd);
	close(ev.out_fd);
	close(ev.err_fd);
}

static void test_leader_exit_kills_group(void **state)
{
	struct fx *f = *state;
	struct fl_spawn_event ev, ex;
	int gfd;

	/* The shell exits at once and leaves sleep behind, as a crashed server leaves workers. */
	start_with_grandchild(f, 15, "sleep 100 & echo $!", &ev, &gfd);
	expect_exited(f->sp, 15, ev.pid, &ex);
	assert_true(WIFEXITED(ex.status));
	assert_gone(gfd);
	close(ev.out_fd);
	close(ev.err_fd);
}

static int count_fds(pid_t pid, char *list, size_t cap)
{
	char path[64];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	assert_non_null(d);
	list[0] = '\0';
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		n++;
		strncat(list, de->d_name, cap - strlen(list) - 2);
		strcat(list, " ");
	}
	closedir(d);
	return n;
}

static void test_no_descriptor_leaks(void **state)
{
	struct fx *f = *state;
	/* ls lists the shell's descriptors; no pipeline, whose pipe the shell would hold. */
	char *argv[] = {"/bin/sh", "-c", "ls /proc/$$/fd", NULL};
	struct fl_spawn_event ev, ex;
	fl_spawner *sp2;
	char buf[256], list[256];
	int leak;

	/* A descriptor the daemon forgot to mark close-on-exec reaches neither process. */
	leak = open("/dev/null", O_RDONLY);
	assert_true(leak >= 0);
	assert_int_equal(fl_spawner_start(f->run, &sp2, NULL), 0);
	close(leak);
	assert_int_equal(fl_spawner_spawn(sp2, 16, NULL, argv, path_env, NULL), 0);
	expect_started(sp2, 16, &ev);
	read_fd(ev.out_fd, buf, sizeof(buf), 0);
	assert_string_equal(buf, "0\n1\n2\n");
	expect_exited(sp2, 16, ev.pid, &ex);
	close(ev.out_fd);
	close(ev.err_fd);
	/* The spawner itself: stdin/out/err, its socket, its signalfd and its own pidfd
	 * (which sandboxed children poll). */
	if (count_fds(sp2->pid, list, sizeof(list)) != 6)
		fail_msg("the spawner holds descriptors %s", list);
	fl_spawner_stop(sp2, 1000);
}

static void test_bad_requests_are_ignored(void **state)
{
	struct fx *f = *state;
	int fd = fl_spawner_fd(f->sp);
	struct sp_hdr h = {.type = SP_SPAWN, .argc = 3, .id = 1};
	char msg[sizeof(h) + 8];
	char big[70000];
	char *bigenv[] = {big, NULL};
	char *argv[] = {"true", NULL};
	char *noargv[] = {NULL};
	struct fl_spawn_event ev, ex;

	assert_int_equal(send(fd, "x", 1, 0), 1);
	h.type = 77;
	assert_int_equal(send(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	h.type = SP_SPAWN; /* three arguments announced, one string sent */
	memcpy(msg, &h, sizeof(h));
	memcpy(msg + sizeof(h), "true\0xyz", 8);
	assert_int_equal(send(fd, msg, sizeof(msg), 0), (ssize_t)sizeof(msg));
	h.type = SP_SIGNAL;
	h.value = -5;
	assert_int_equal(send(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(fl_spawner_spawn(f->sp, 17, NULL, argv, bigenv, NULL), -EMSGSIZE);
	assert_int_equal(fl_spawner_spawn(f->sp, 17, NULL, noargv, path_env, NULL), -EINVAL);

	/* The spawner is still serving, and none of the above produced an event. */
	assert_int_equal(fl_spawner_spawn(f->sp, 18, NULL, argv, path_env, NULL), 0);
	expect_started(f->sp, 18, &ev);
	expect_exited(f->sp, 18, ev.pid, &ex);
	assert_int_equal(ex.status, 0);
	close(ev.out_fd);
	close(ev.err_fd);

	/* A second live instance under an id in use is refused, not confused with it. */
	{
		char *sl[] = {"sleep", "100", NULL};
		assert_int_equal(fl_spawner_spawn(f->sp, 19, NULL, sl, path_env, NULL), 0);
		expect_started(f->sp, 19, &ev);
		assert_int_equal(fl_spawner_spawn(f->sp, 19, NULL, sl, path_env, NULL), 0);
		wait_event(f->sp, &ex);
		assert_int_equal(ex.type, FL_SPAWN_FAILED);
		assert_string_equal(ex.msg, "start sleep: instance id 19 is already running");
		close(ev.out_fd);
		close(ev.err_fd);
	}
}

static void test_stop_kills_what_ignores_sigterm(void **state)
{
	struct fx *f = *state;
	char *argv[] = {"/bin/sh", "-c", "trap '' TERM; echo ready; exec sleep 100", NULL};
	struct fl_spawn_event ev;
	char buf[64];
	int pfd;

	assert_int_equal(fl_spawner_spawn(f->sp, 20, NULL, argv, path_env, NULL), 0);
	expect_started(f->sp, 20, &ev);
	read_fd(ev.out_fd, buf, sizeof(buf), 1);
	assert_string_equal(buf, "ready\n");
	pfd = pidfd_open(ev.pid, 0);
	assert_true(pfd >= 0);
	fl_spawner_stop(f->sp, 100);
	f->sp = NULL;
	assert_gone(pfd);
	assert_false(record_exists(f, ev.pid));
	close(ev.out_fd);
	close(ev.err_fd);
}

static void test_eof_and_sigterm_end_spawner(void **state)
{
	struct fx *f = *state;
	char *argv[] = {"sleep", "100", NULL};
	struct fl_spawn_event ev;
	int pfd, status, i;

	for (i = 0; i < 2; i++) {
		fl_spawner *sp = f->sp;
		if (sp == NULL)
			assert_int_equal(fl_spawner_start(f->run, &sp, NULL), 0);
		assert_int_equal(fl_spawner_spawn(sp, 21, NULL, argv, path_env, NULL), 0);
		expect_started(sp, 21, &ev);
		pfd = pidfd_open(ev.pid, 0);
		assert_true(pfd >= 0);
		if (i == 0) {
			close(sp->fd); /* the daemon vanished */
		} else {
			assert_int_equal(kill(sp->pid, SIGTERM), 0);
		}
		assert_int_equal(waitpid(sp->pid, &status, 0), sp->pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
		assert_gone(pfd);
		assert_false(record_exists(f, ev.pid));
		if (i == 1) {
			assert_int_equal(fl_spawner_read(sp, &ev), -EPIPE);
			close(sp->fd);
		}
		free(sp);
		f->sp = NULL;
		close(ev.out_fd);
		close(ev.err_fd);
	}
}

/* Forks a process in a session of its own running sleep; returns once it is set up. */
static pid_t start_session(void)
{
	int p[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setsid();
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		execl("/bin/sleep", "sleep", "100", (char *)NULL);
		_exit(1);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	return pid;
}

static void write_record(const struct fx *f, const char *name, const char *text)
{
	char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", f->run, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static void test_leftovers_are_reaped(void **state)
{
	struct fx *f = *state;
	unsigned long long start;
	char name[256], text[32];
	int reaped = -1, status;
	pid_t victim, bystander, pg;

	fl_spawner_stop(f->sp, 1000);
	f->sp = NULL;
	victim = start_session();
	bystander = start_session();

	assert_int_equal(sp_proc_stat(victim, &pg, &start), 0);
	assert_int_equal(pg, victim);
	snprintf(name, sizeof(name), "%d", (int)victim);
	snprintf(text, sizeof(text), "%llu\n", start);
	write_record(f, name, text);
	/* Same pid, another start time: a reused pid, which must be left alone. */
	assert_int_equal(sp_proc_stat(bystander, &pg, &start), 0);
	snprintf(name, sizeof(name), "%d", (int)bystander);
	snprintf(text, sizeof(text), "%llu\n", start + 1);
	write_record(f, name, text);
	write_record(f, "1", "1\n"); /* never init, whatever the record says */
	write_record(f, "123456789", "garbage");
	write_record(f, "README", "not a record");

	assert_int_equal(fl_spawner_start(f->run, &f->sp, &reaped), 0);
	assert_int_equal(reaped, 1);
	assert_int_equal(waitpid(victim, &status, 0), victim);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	assert_int_equal(waitpid(bystander, &status, WNOHANG), 0);
	assert_false(record_exists(f, victim));
	assert_false(record_exists(f, bystander));
	assert_false(record_exists(f, 1));
	assert_false(record_exists(f, 123456789));
	snprintf(name, sizeof(name), "%s/README", f->run);
	assert_int_equal(access(name, F_OK), 0);
	kill(bystander, SIGKILL);
	waitpid(bystander, &status, 0);
}

static void test_leftover_workers_of_dead_leader(void **state)
{
	struct fx *f = *state;
	unsigned long long start;
	char name[32], text[32];
	int p1[2], p2[2], reaped = -1, status, wfd;
	pid_t leader, worker = 0, pg;

	fl_spawner_stop(f->sp, 1000);
	f->sp = NULL;
	assert_int_equal(pipe2(p1, O_CLOEXEC), 0);
	assert_int_equal(pipe2(p2, O_CLOEXEC), 0);
	leader = fork();
	assert_true(leader >= 0);
	if (leader == 0) {
		pid_t w;
		char c;
		setsid();
		w = fork();
		if (w == 0) {
			execl("/bin/sleep", "sleep", "100", (char *)NULL);
			_exit(1);
		}
		if (write(p1[1], &w, sizeof(w)) != sizeof(w) || read(p2[0], &c, 1) != 1)
			_exit(1);
		_exit(0);
	}
	close(p1[1]);
	close(p2[0]);
	assert_int_equal(read(p1[0], &worker, sizeof(worker)), (ssize_t)sizeof(worker));
	assert_int_equal(sp_proc_stat(leader, &pg, &start), 0);
	wfd = pidfd_open(worker, 0);
	assert_true(wfd >= 0);
	assert_int_equal(write(p2[1], "x", 1), 1);
	assert_int_equal(waitpid(leader, &status, 0), leader);
	close(p1[0]);
	close(p2[1]);

	/* The leader is gone; its worker, orphaned, still carries the group id. */
	assert_int_equal(getpgid(worker), leader);
	snprintf(name, sizeof(name), "%d", (int)leader);
	snprintf(text, sizeof(text), "%llu\n", start);
	write_record(f, name, text);
	assert_int_equal(fl_spawner_start(f->run, &f->sp, &reaped), 0);
	assert_int_equal(reaped, 1);
	assert_gone(wfd);
}

/* ---- sandboxed instances ---- */

struct sbfx {
	char dir[64];  /* plays the data directory: outside /tmp, so it must be covered */
	char code[96]; /* the working directory inside it, bound back read-only */
};

static void sb_dirs(struct sbfx *d)
{
	char path[160];
	FILE *fp;

	strcpy(d->dir, "/var/tmp/flint-sb-XXXXXX");
	assert_non_null(mkdtemp(d->dir));
	snprintf(d->code, sizeof(d->code), "%s/code", d->dir);
	assert_int_equal(mkdir(d->code, 0755), 0);
	snprintf(path, sizeof(path), "%s/token", d->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("secret\n", fp);
	fclose(fp);
	snprintf(path, sizeof(path), "%s/app.txt", d->code);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("code\n", fp);
	fclose(fp);
	assert_int_equal(chmod(path, 0644), 0);
}

/* Runs script sandboxed and returns its stdout in out and its wait status. */
static int sb_run(struct fx *f, uint64_t id, const char *cwd, const struct fl_sandbox *sb,
		  const char *script, char *out, size_t cap, char *err, size_t errcap)
{
	char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
	struct fl_spawn_event ev, ex;

	assert_int_equal(fl_spawner_spawn(f->sp, id, cwd, argv, path_env, sb), 0);
	expect_started(f->sp, id, &ev);
	read_fd(ev.out_fd, out, cap, 0);
	read_fd(ev.err_fd, err, errcap, 0);
	expect_exited(f->sp, id, ev.pid, &ex);
	close(ev.out_fd);
	close(ev.err_fd);
	return ex.status;
}

static void test_sandbox_view_and_identity(void **state)
{
	struct fx *f = *state;
	struct sbfx d;
	struct fl_sandbox sb = {.name = "sbtest", .uid = fl_sandbox_uid("sbtest")};
	char out[2048], err[1024], want[512];
	int status;

	sb_dirs(&d);
	sb.gid = sb.uid;
	sb.hide = d.dir;
	status = sb_run(
	    f, 30, d.code, &sb,
	    "echo pid=$$ uid=$(id -u) gid=$(id -g) groups=$(id -G) host=$(hostname);"
	    "n=$(ls /proc | grep -c '^[0-9]'); [ $n -lt 8 ] && echo few-procs;"
	    "echo cwd=$(pwd) code=$(cat app.txt) home=${HOME:-none};"
	    "cat ../token 2>/dev/null || echo token=hidden;"
	    "touch /usr/flint-x 2>/dev/null && echo usr=rw || echo usr=ro;"
	    "touch app2.txt 2>/dev/null && echo code=rw || echo code=ro;"
	    "echo hi >/tmp/t && echo tmp=$(cat /tmp/t);"
	    "echo null >/dev/null && echo devnull=ok;"
	    "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\t' ' ';"
	    "exit 3",
	    out, sizeof(out), err, sizeof(err));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 3);
	/* The shell is PID 2: the init is 1, and nothing of the host shows in /proc. */
	snprintf(want, sizeof(want),
		 "pid=2 uid=%u gid=%u groups=%u host=sbtest\n"
		 "few-procs\n"
		 "cwd=%s code=code home=none\n"
		 "token=hidden\n"
		 "usr=ro\n"
		 "code=ro\n"
		 "tmp=hi\n"
		 "devnull=ok\n"
		 "CapEff: 0000000000000000\n"
		 "CapBnd: 0000000000000000\n"
		 "NoNewPrivs: 1\n"
		 "Seccomp: 2\n",
		 sb.uid, sb.gid, sb.gid, d.code);
	if (strcmp(out, want) != 0)
		fail_msg("sandboxed output:\n%s\nexpected:\n%s\nstderr:\n%s", out, want, err);
	nftw(d.dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_sandbox_seccomp_denies(void **state)
{
	struct fx *f = *state;
	struct fl_sandbox sb = {.name = "sbsec", .uid = fl_sandbox_uid("sbsec")};
	char out[1024], err[1024];
	int status;

	sb.gid = sb.uid;
	/* unshare(1) and mount(8) exist on Debian; both must be refused by the kernel. */
	status = sb_run(f, 31, NULL, &sb,
			"unshare -U true 2>/dev/null && echo unshare=ok || echo unshare=denied;"
			"mount -t tmpfs x /tmp 2>/dev/null && echo mount=ok || echo mount=denied;"
			"pwd",
			out, sizeof(out), err, sizeof(err));
	assert_int_equal(status, 0);
	assert_string_equal(out, "unshare=denied\nmount=denied\n/tmp\n");
}

static void test_sandbox_signal_reaches_command(void **state)
{
	struct fx *f = *state;
	struct fl_sandbox sb = {.name = "sbsig", .uid = fl_sandbox_uid("sbsig")};
	char *argv[] = {"/bin/sh", "-c", "echo ready; sleep 100 & wait", NULL};
	struct fl_spawn_event ev, ex;
	char buf[64];

	sb.gid = sb.uid;
	assert_int_equal(fl_spawner_spawn(f->sp, 32, NULL, argv, path_env, &sb), 0);
	expect_started(f->sp, 32, &ev);
	read_fd(ev.out_fd, buf, sizeof(buf), 1);
	assert_string_equal(buf, "ready\n");
	/* The init leads the host-side group the daemon signals. */
	assert_int_equal(getpgid(ev.pid), ev.pid);
	assert_true(record_exists(f, ev.pid));
	assert_int_equal(fl_spawner_signal(f->sp, 32, SIGTERM), 0);
	expect_exited(f->sp, 32, ev.pid, &ex);
	/* The command's own end, not the init's. */
	assert_true(WIFSIGNALED(ex.status));
	assert_int_equal(WTERMSIG(ex.status), SIGTERM);
	assert_false(record_exists(f, ev.pid));
	close(ev.out_fd);
	close(ev.err_fd);
}

static void test_sandbox_failures(void **state)
{
	struct fx *f = *state;
	struct fl_sandbox sb = {.name = "sbfail", .uid = fl_sandbox_uid("sbfail")};
	char *argv[] = {"no-such-command-flint", NULL};
	char *pwd[] = {"pwd", NULL};
	struct fl_spawn_event ev;

	sb.gid = sb.uid;
	assert_int_equal(fl_spawner_spawn(f->sp, 33, NULL, argv, path_env, &sb), 0);
	wait_event(f->sp, &ev);
	assert_int_equal(ev.type, FL_SPAWN_FAILED);
	assert_string_equal(ev.msg, "exec no-such-command-flint: No such file or directory");
	assert_int_equal(fl_spawner_spawn(f->sp, 34, "/nonexistent-flint-dir", pwd, path_env, &sb),
			 0);
	wait_event(f->sp, &ev);
	assert_int_equal(ev.type, FL_SPAWN_FAILED);
	assert_string_equal(ev.msg, "chdir /nonexistent-flint-dir: No such file or directory");
	sb.uid = 0;
	assert_int_equal(fl_spawner_spawn(f->sp, 35, NULL, pwd, path_env, &sb), 0);
	wait_event(f->sp, &ev);
	assert_int_equal(ev.type, FL_SPAWN_FAILED);
	assert_string_equal(ev.msg, "sandbox: refusing to run as uid or gid 0");
	assert_int_equal(fl_spawner_read(f->sp, &ev), FL_AGAIN);
}

static void test_sandbox_build_dir_writable(void **state)
{
	struct fx *f = *state;
	struct sbfx d;
	struct fl_sandbox sb = {.name = "sbbuild", .uid = fl_sandbox_uid("sbbuild")};
	char out[256], err[256], path[160];
	struct stat st;

	sb_dirs(&d);
	sb.gid = sb.uid;
	sb.hide = d.dir;
	sb.writable_cwd = 1;
	assert_int_equal(sb_run(f, 36, d.code, &sb, "echo built > out.bin && cat out.bin", out,
				sizeof(out), err, sizeof(err)),
			 0);
	assert_string_equal(out, "built\n");
	snprintf(path, sizeof(path), "%s/out.bin", d.code);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, sb.uid);
	nftw(d.dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Limits need cgroups: the layout is detected for a tag of this test's own, then a
 * spawner started after it inherits it. */
static void test_sandbox_pids_limit(void **state)
{
	struct fx *f = *state;
	struct fl_sandbox sb = {.name = "sbpids", .uid = fl_sandbox_uid("sbpids"), .pids = 8};
	char tag[32], out[256], err[4096], dir[700];
	int reaped = -1;

	snprintf(tag, sizeof(tag), "unit-%d", (int)getpid());
	fl_cgroup_init(tag, &reaped);
	assert_int_equal(reaped, 0);
	if (!fl_cgroup_layout()->res[FL_CG_PIDS].enforced) {
		char why[700];
		fl_cgroup_describe(why, sizeof(why));
		print_message("pids limits are not enforced on this host (%s): skipped\n", why);
		skip();
	}
	fl_spawner_stop(f->sp, 1000);
	assert_int_equal(fl_spawner_start(f->run, &f->sp, NULL), 0);
	sb.gid = sb.uid;
	/* 8 tasks: the init, the shell and at most 6 sleeps. */
	assert_int_equal(sb_run(f, 37, NULL, &sb,
				"n=0; for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 2>/dev/null & "
				"n=$((n+1)); done; kill $(jobs -p) 2>/dev/null",
				out, sizeof(out), err, sizeof(err)) >= 0,
			 1);
	/* Init, shell and 6 sleeps fill the 8: the shell reports the forks that failed. */
	assert_non_null(strstr(err, "fork"));
	snprintf(dir, sizeof(dir), "%s/i-37", fl_cgroup_layout()->res[FL_CG_PIDS].dir);
	/* The group is removed once the instance ended (retried while it empties). */
	for (int i = 0; i < 500 && access(dir, F_OK) == 0; i++)
		poll(NULL, 0, 10);
	assert_int_equal(access(dir, F_OK), -1);
	fl_spawner_stop(f->sp, 1000);
	f->sp = NULL;
	fl_cgroup_cleanup();
	/* Later tests run without limits. */
	memset(&cg_layout, 0, sizeof(cg_layout));
	assert_int_equal(fl_spawner_start(f->run, &f->sp, NULL), 0);
}

/* Starts are not serialized: 20 sandboxes asked for at once all start, a failed exec
 * among them gives exactly one FAILED (and never STARTED or EXITED), each EXITED comes
 * after its STARTED, and a stop while starts are pending still ends them all. */
#define PAR_N	    20
#define PAR_ID	    40
#define PAR_FAIL_ID (PAR_ID + PAR_N)
/* Whether the spawner has a warm sandbox (a child of its named flint-warm). */
static int warm_ready(struct fx *f)
{
	struct dirent *de;
	int found = 0;
	DIR *d = opendir("/proc");

	assert_non_null(d);
	while (!found && (de = readdir(d)) != NULL) {
		char path[300], buf[512], *p;
		int ppid = 0;
		FILE *fp;
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		fp = fopen(path, "r");
		if (fp == NULL)
			continue;
		if (fgets(buf, sizeof(buf), fp) && strstr(buf, "(flint-warm)") &&
		    (p = strrchr(buf, ')')) && sscanf(p + 2, "%*c %d", &ppid) == 1 &&
		    ppid == f->sp->pid)
			found = 1;
		fclose(fp);
	}
	closedir(d);
	return found;
}

/* Waits up to 5 s for a warm sandbox to be built. */
static void wait_warm(struct fx *f)
{
	for (int i = 0; i < 500 && !warm_ready(f); i++)
		poll(NULL, 0, 10);
	assert_true(warm_ready(f));
}

/* Starts from the warm pool: the same view and identity as a cold start, the same
 * sentence when the working directory is missing, and the pool built again (once the
 * spawner is quiet) after each start takes one. */
static void test_sandbox_warm_pool(void **state)
{
	struct fx *f = *state;
	struct sbfx d;
	struct fl_sandbox sb = {.name = "sbwarm", .uid = fl_sandbox_uid("sbwarm")};
	char *argv[] = {
	    "/bin/sh", "-c",
	    "echo pid=$$ uid=$(id -u) host=$(hostname) code=$(cat app.txt);"
	    "cat ../token 2>/dev/null || echo token=hidden;"
	    "touch app2.txt 2>/dev/null && echo code=rw || echo code=ro;"
	    "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\t' ' '",
	    NULL};
	char missing[160], out[1024], want[512];
	struct fl_spawn_event ev, ex;
	int i, warm = 0;

	sb_dirs(&d);
	sb.gid = sb.uid;
	sb.hide = d.dir;
	assert_int_equal(fl_spawner_pool(f->sp, 3, d.dir, 0), 0);
	for (i = 0; i < 6; i++) {
		uint64_t id = 70 + (uint64_t)i;
		wait_warm(f);
		assert_int_equal(fl_spawner_spawn(f->sp, id, d.code, argv, path_env, &sb), 0);
		expect_started(f->sp, id, &ev);
		warm += ev.warm;
		read_fd(ev.out_fd, out, sizeof(out), 0);
		expect_exited(f->sp, id, ev.pid, &ex);
		close(ev.out_fd);
		close(ev.err_fd);
		assert_int_equal(ex.status, 0);
		snprintf(want, sizeof(want),
			 "pid=2 uid=%u host=sbwarm code=code\n"
			 "token=hidden\n"
			 "code=ro\n"
			 "CapEff: 0000000000000000\n"
			 "NoNewPrivs: 1\n"
			 "Seccomp: 2\n",
			 sb.uid);
		assert_string_equal(out, want);
	}
	/* Every start fits the pool, which was built again after each. */
	assert_int_equal(warm, 6);
	snprintf(missing, sizeof(missing), "%s/missing", d.dir);
	assert_int_equal(fl_spawner_spawn(f->sp, 79, missing, argv, path_env, &sb), 0);
	wait_event(f->sp, &ev);
	assert_int_equal(ev.type, FL_SPAWN_FAILED);
	snprintf(want, sizeof(want), "chdir %s: No such file or directory", missing);
	assert_string_equal(ev.msg, want);
	nftw(d.dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_sandbox_parallel_starts(void **state)
{
	struct fx *f = *state;
	struct fl_sandbox sb = {.name = "sbpar", .uid = fl_sandbox_uid("sbpar")};
	char *sleep_argv[] = {"sleep", "100", NULL};
	char *bad_argv[] = {"no-such-command-flint", NULL};
	char *true_argv[] = {"true", NULL};
	int started[PAR_N] = {0}, exited[PAR_N] = {0}, nstarted = 0, nexited = 0, nfailed = 0;
	struct fl_spawn_event ev;
	struct dirent *de;
	char list[256];
	DIR *d;
	int i;

	sb.gid = sb.uid;
	for (i = 0; i < PAR_N; i++) {
		if (i == PAR_N / 2)
			assert_int_equal(
			    fl_spawner_spawn(f->sp, PAR_FAIL_ID, NULL, bad_argv, path_env, &sb), 0);
		assert_int_equal(
		    fl_spawner_spawn(f->sp, PAR_ID + (uint64_t)i, NULL, sleep_argv, path_env, &sb),
		    0);
	}
	while (nstarted < PAR_N || nfailed < 1) {
		wait_event(f->sp, &ev);
		if (ev.id == PAR_FAIL_ID) {
			if (ev.type != FL_SPAWN_FAILED)
				fail_msg("the failing exec gave event type %d", ev.type);
			assert_string_equal(
			    ev.msg, "exec no-such-command-flint: No such file or directory");
			nfailed++;
			continue;
		}
		assert_true(ev.id >= PAR_ID && ev.id < PAR_ID + PAR_N);
		if (ev.type != FL_SPAWN_STARTED)
			fail_msg("instance %llu: expected STARTED, got type %d: %s",
				 (unsigned long long)ev.id, ev.type, ev.msg);
		assert_int_equal(started[ev.id - PAR_ID], 0);
		started[ev.id - PAR_ID] = ev.pid;
		assert_true(record_exists(f, ev.pid));
		close(ev.out_fd);
		close(ev.err_fd);
		nstarted++;
	}
	/* The failed start's id is free again at once. */
	assert_int_equal(fl_spawner_spawn(f->sp, PAR_FAIL_ID, NULL, true_argv, path_env, NULL), 0);
	expect_started(f->sp, PAR_FAIL_ID, &ev);
	close(ev.out_fd);
	close(ev.err_fd);
	expect_exited(f->sp, PAR_FAIL_ID, ev.pid, &ev);
	assert_int_equal(WEXITSTATUS(ev.status), 0);
	for (i = 0; i < PAR_N; i++)
		assert_int_equal(fl_spawner_signal(f->sp, PAR_ID + (uint64_t)i, SIGTERM), 0);
	while (nexited < PAR_N) {
		wait_event(f->sp, &ev);
		if (ev.type != FL_SPAWN_EXITED || ev.id < PAR_ID || ev.id >= PAR_ID + PAR_N)
			fail_msg("expected EXITED of 40-59, got type %d for %llu", ev.type,
				 (unsigned long long)ev.id);
		assert_int_equal(exited[ev.id - PAR_ID], 0);
		assert_int_equal(ev.pid, started[ev.id - PAR_ID]);
		assert_true(WIFSIGNALED(ev.status));
		exited[ev.id - PAR_ID] = 1;
		nexited++;
	}
	assert_int_equal(fl_spawner_read(f->sp, &ev), FL_AGAIN);
	/* Every pipe of every start is closed again once all are reaped (the failed one
	 * may still be going): the spawner is back to its own 6 descriptors. */
	for (i = 0; i < WAIT_MS / 10 && count_fds(f->sp->pid, list, sizeof(list)) != 6; i++)
		poll(NULL, 0, 10);
	if (count_fds(f->sp->pid, list, sizeof(list)) != 6)
		fail_msg("the spawner holds descriptors %s", list);

	/* Stopped while starts are pending: nothing is left behind. */
	for (i = 0; i < PAR_N; i++)
		assert_int_equal(
		    fl_spawner_spawn(f->sp, PAR_ID + (uint64_t)i, NULL, sleep_argv, path_env, &sb),
		    0);
	fl_spawner_stop(f->sp, 1000);
	f->sp = NULL;
	d = opendir(f->run);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			fail_msg("process group %s is still recorded after the stop", de->d_name);
	closedir(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_output_and_exit_status, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exec_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_chdir_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cwd, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_path_and_env_from_envp, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_signal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_signal_reaches_grandchild, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_leader_exit_kills_group, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_descriptor_leaks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_requests_are_ignored, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stop_kills_what_ignores_sigterm, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_eof_and_sigterm_end_spawner, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_leftovers_are_reaped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_leftover_workers_of_dead_leader, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sandbox_view_and_identity, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sandbox_seccomp_denies, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sandbox_signal_reaches_command, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sandbox_failures, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sandbox_build_dir_writable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sandbox_pids_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sandbox_parallel_starts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sandbox_warm_pool, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
