/* spawner.h -- the small single-threaded process that starts and stops instances.
 *
 * flint forks the spawner at start-up, before any thread exists, because forking
 * a threaded process is unsafe. The daemon talks to it over a SOCK_SEQPACKET
 * socketpair: requests go down (spawn, signal), events come up (started with the
 * instance's stdout/stderr pipes passed as SCM_RIGHTS, failed, exited).
 *
 * Every instance runs in a process group of its own (setsid) with
 * PR_SET_PDEATHSIG, so it cannot outlive the spawner; the spawner in turn dies
 * with the daemon (PR_SET_PDEATHSIG plus EOF on the socket) after killing every
 * process group it started. Process groups still alive are recorded as files
 * under RUN_DIR so that a spawner started after a crash kills what an earlier
 * one left behind (checked against the process start time, never a reused pid).
 */
#ifndef FL_SPAWNER_H
#define FL_SPAWNER_H

#include <stdint.h>
#include <sys/types.h>

typedef struct fl_spawner fl_spawner;
struct fl_sandbox; /* runtime/sandbox_linux.h */

enum fl_spawn_event_type {
	FL_SPAWN_STARTED, /* the process exists: pid, out_fd, err_fd are set */
	FL_SPAWN_FAILED,  /* it could not be started (exec failed, ...): msg says why */
	FL_SPAWN_EXITED,  /* it ended: status is a waitpid() status */
};

struct fl_spawn_event {
	enum fl_spawn_event_type type;
	uint64_t id; /* the caller's id from fl_spawner_spawn() */
	pid_t pid;
	int out_fd; /* STARTED: read end of the child's stdout, O_NONBLOCK|O_CLOEXEC; caller owns */
	int err_fd; /* STARTED: read end of the child's stderr, likewise; caller owns */
	int status; /* EXITED */
	int warm;   /* STARTED: it came from a warm sandbox */
	int zygote; /* STARTED: ... holding a pre-imported Python interpreter */
	uint32_t queued_us; /* STARTED: how long the request waited for a set-up slot */
	char msg[256]; /* FAILED: one sentence, e.g. "exec gunicorn: No such file or directory" */
};

/* Forks the spawner. Must be called before any thread is created. run_dir is a
 * directory the spawner may write its process-group records into (created if
 * missing); leftovers found there from an earlier run are killed first and the
 * number killed is stored in *reaped (may be NULL). On success *out is the
 * daemon-side handle. Returns 0 or -errno. */
int fl_spawner_start(const char *run_dir, fl_spawner **out, int *reaped);

/* The daemon-side socket, non-blocking: poll it for readability (uv_poll). */
int fl_spawner_fd(const fl_spawner *sp);

/* Asks for a process: argv[0] is looked up in PATH; envp is the whole
 * environment; cwd is where it starts (NULL: the daemon's, or /tmp when
 * sandboxed). sb NULL runs a plain process; otherwise the process is sandboxed
 * as sb describes (runtime/sandbox_linux.h): its pid in events is then that of
 * the sandbox's init, and EXITED carries the command's own wait status. Nothing
 * is borrowed after the call returns. The outcome arrives later as an event with
 * the same id (FAILED says "sandbox: ..." when the sandbox could not be built).
 * Returns 0, or -errno if the request could not be sent (for example -EMSGSIZE
 * past 64 KiB of arguments and environment). */
int fl_spawner_spawn(fl_spawner *sp, uint64_t id, const char *cwd, char *const argv[],
		     char *const envp[], const struct fl_sandbox *sb);

/* Keeps up to max warm sandboxes (runtime/sandbox_linux.h) built ahead of need, hiding
 * hide (the data directory: absolute, without symbolic links, as in struct fl_sandbox),
 * so that sandboxed starts that fit one skip the costly part of their set-up. How many
 * are kept adapts to the rate of sandboxed starts (one second's worth, at least one);
 * max 0 keeps none (the default). python: keep a Python zygote (runtime/pyzygote.h) ready
 * from now on, not only once the first Python template start came. Returns 0 or -errno. */
int fl_spawner_pool(fl_spawner *sp, unsigned max, const char *hide, int python);

/* Sends sig to the whole process group of instance id. Unknown ids are ignored. */
int fl_spawner_signal(fl_spawner *sp, uint64_t id, int sig);

/* Reads one event if one is waiting. Returns 1 with *ev filled, FL_AGAIN when
 * nothing is waiting, or -EPIPE when the spawner is gone (also for sp == NULL,
 * a spawner already stopped). */
int fl_spawner_read(fl_spawner *sp, struct fl_spawn_event *ev);

/* Ends the spawner: it sends SIGTERM to every process group, waits up to
 * grace_ms for them, SIGKILLs what is left, and exits; this call waits for it.
 * Frees sp. */
void fl_spawner_stop(fl_spawner *sp, unsigned grace_ms);

#endif
