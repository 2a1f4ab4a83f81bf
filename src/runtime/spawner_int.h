/* spawner_int.h -- the spawner's wire format, its process state, the calls between its files. */
#ifndef FL_SPAWNER_INT_H
#define FL_SPAWNER_INT_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "runtime/sandbox_linux.h"

#define SP_MAX_MSG     65536 /* largest message either way, header included */
#define SP_HAS_CWD     1u
#define SP_HAS_SANDBOX 2u
#define SP_HAS_NETNS   4u /* SPAWN: a network namespace descriptor comes with it */

/* POOL: value is the most warm sandboxes to keep (0: none). STARTED: value has bit 0 set
 * when the instance came from a warm sandbox, bit 1 when from a Python zygote; argc is
 * the microseconds its request waited in the spawner for a set-up slot. */
enum sp_type { SP_SPAWN = 1, SP_SIGNAL, SP_STOP, SP_STARTED, SP_FAILED, SP_EXITED, SP_POOL };

/* Every message starts with this header. SPAWN is followed, if SP_HAS_SANDBOX, by a
 * struct sp_sbwire, then by NUL-terminated strings (the directory if SP_HAS_CWD, then
 * argc arguments, then envc environment entries, then if SP_HAS_SANDBOX the function
 * name, the directory to hide, the root file system and the code directory, each
 * possibly empty, then nsecrets secret directories); FAILED by one NUL-terminated
 * sentence; STARTED carries two descriptors, SPAWN with SP_HAS_NETNS one. */
struct sp_hdr {
	uint32_t type;
	uint32_t argc;
	uint32_t envc;
	uint32_t flags;
	uint64_t id;
	int32_t pid;
	int32_t value; /* SIGNAL: the signal; STOP: grace in ms; EXITED: wait status */
};

/* The fixed part of a sandbox description on the wire. */
struct sp_sbwire {
	uint64_t memory;
	uint32_t cpu_millis, pids, uid, gid, writable_cwd, nsecrets, zygote;
};

#define SP_WARM_TREE                                                                               \
	8u /* SPAWN handed to a warm sandbox: a detached working-directory tree                    \
	      comes first among its descriptors */

/* A decoded SPAWN request; its strings point into the message. */
struct sp_spawn_req {
	const char *cwd;
	char **argv, **envp; /* malloc'd arrays, NULL-terminated */
	struct fl_sandbox sb;
	int has_sb;
	const char *secrets[FL_SANDBOX_MAX_SECRETS + 1];
};

/* Decodes the body of a SPAWN request (what follows the header); netns is the namespace
 * descriptor that came with it, or -1. Returns 0 (free r with sp_spawn_req_free),
 * -EINVAL when it is malformed (logged), or -ENOMEM. */
int sp_decode_spawn(const struct sp_hdr *h, char *p, size_t len, int netns, struct sp_spawn_req *r);
void sp_spawn_req_free(struct sp_spawn_req *r);

/* A warm sandbox (runtime/sandbox_linux.h) held by the spawner, with the spawner's ends
 * of the pipes it will use as an instance. */
struct sp_warm {
	pid_t pid;
	int sock; /* one byte comes up once its view is built; its instance goes down */
	int ep_r, out_r, err_r, status_r;
	int ready;  /* its view is built */
	int python; /* it holds a Python zygote (runtime/pyzygote.h) */
	int dying;  /* killed to shrink the pool, or lost; reaped later */
	int lost;   /* it ended by itself (its socket closed): reaped with its report */
	uint64_t born_ms;
};

/* Clones a warm sandbox that hides hide (the data directory). Returns 0 with w filled,
 * or -errno. */
int sp_warm_new(const char *hide, int self_pidfd, int python, struct sp_warm *w);

/* Hands the instance of the SPAWN message msg (header included; r is its decoded form)
 * to w: takes what it needs from the host (fl_sandbox_prepare) and sends it all down.
 * Returns 0, after which w belongs to the instance (keep w->sock open until the start
 * has its outcome: closing it while its "ready" byte is unread would reset the
 * connection under the message, and the init would see ECONNRESET instead); or
 * -1 with e saying why (w is then unchanged if e->step is not FL_SB_STEP_SETUP, else it
 * is unusable and must be killed). */
int sp_warm_give(struct sp_warm *w, const char *msg, size_t len, const struct sp_spawn_req *r,
		 struct fl_sandbox_err *e);

/* Closes every descriptor w still holds. */
void sp_warm_close(struct sp_warm *w);

/* How many warm sandboxes to keep for a rate of sandboxed starts per second: enough for
 * one second of starts, at least one, at most max. */
size_t sp_pool_target(double rate, size_t max);

/* ---- the spawner process's state (spawner_proc.c), shared with the pool (spawner_pool.c) ---- */

#define SP_WARM_IDLE_MS	 30000 /* a pool above its target shrinks by one after this long */
#define SP_WARM_FAILURES 3     /* warm sandboxes that failed to build before the pool stops */
#define SP_WARM_QUIET_MS 3     /* builds wait for this long without spawner activity */

struct sp_child {
	uint64_t id;
	pid_t pid;     /* also the process group id: every instance calls setsid() */
	int status_fd; /* sandboxed: the init reports the command's wait status here; else -1 */
	int cg;	       /* sandboxed with limits: its cgroups must be removed */
	/* A start is pending until its exec-report pipe reaches EOF (STARTED) or carries a
	 * struct fl_sandbox_err (FAILED). Meanwhile the spawner keeps serving other starts:
	 * set-ups run in parallel instead of one after the other. */
	int ep_fd;		 /* read end of the exec-report pipe while pending; else -1 */
	int out_fd, err_fd;	 /* handed over with STARTED; -1 after */
	size_t got;		 /* bytes of report received */
	struct fl_sandbox_err e; /* the report */
	char *argv0, *cwd;	 /* for the FAILED sentence; freed once reported */
	int failed;		 /* FAILED sent: reaped without EXITED, its id free again */
	int warm;		 /* it was a warm sandbox: its start set-up was done before */
	int warm_sock;		 /* ... and this its socket, closed with the start's outcome */
	int zygote;		 /* ... and it held a Python zygote that runs the instance */
	uint32_t queued_us;	 /* how long its request waited for a set-up slot */
};

/* A cgroup of an ended instance that still held dying processes. */
struct sp_cg_pending {
	uint64_t id;
	int tries;
};

/* An event waiting for room in the socket; it owns its descriptors until sent. */
struct sp_out {
	struct sp_out *next;
	size_t len;
	int fds[2];
	int nfds;
	char data[];
};

/* A spawn request waiting for a pending start to end. */
struct sp_req {
	struct sp_req *next;
	uint64_t since_ns; /* when it came */
	size_t len;
	int fd;	     /* the network namespace that came with it, or -1 */
	char data[]; /* the whole message, header included */
};

struct sp_state {
	int sock;
	int sigfd;
	pid_t parent;
	const char *run_dir;
	struct sp_child *kids;
	size_t nkids, capkids;
	struct sp_out *head, **tail;
	int self_pidfd; /* inherited by sandboxed children to notice the spawner's death */
	struct sp_cg_pending *cgp;
	size_t ncgp, capcgp;
	struct pollfd *pfd; /* the main loop's poll set: socket, signals, pending starts */
	size_t cappfd;
	size_t max_pending; /* starts set up at once; further ones wait in the queue below */
	struct sp_req *qhead, **qtail;
	/* The warm pool (spawner_pool.c): sandboxes built ahead of need. */
	struct sp_warm *warm;
	size_t nwarm, capwarm;
	size_t warm_max; /* 0: no pool */
	char *warm_hide; /* the data directory they hide */
	/* [0]: every sandboxed start; [1]: those of the Python template (pyzygote.h) */
	double warm_rate[2];	     /* starts per second, smoothed over seconds */
	unsigned warm_count[2];	     /* starts in the current second */
	uint64_t warm_surplus_ms[2]; /* since when a kind has been above its target, or 0 */
	int warm_py_seen;	     /* a start of the Python template came */
	uint64_t warm_window_ms;     /* when the current second began */
	int warm_failures; /* builds that failed in a row; the pool stops at SP_WARM_FAILURES */
	int warm_short;	   /* a kind is below its target: build when quiet */
};

/* spawner_proc.c */
void sp_record_write(struct sp_state *st, pid_t pid); /* for a crash: DATA/run/PID */
void sp_record_remove(struct sp_state *st, pid_t pid);
ssize_t sp_find(const struct sp_state *st, uint64_t id); /* a live kid by id, or -1 */
int sp_kids_room(struct sp_state *st);			 /* room for one more kid: 0, or -ENOMEM */
/* Queues an event; takes ownership of out_fd and err_fd (-1 for none). */
void sp_queue(struct sp_state *st, uint32_t type, uint64_t id, pid_t pid, int value,
	      const char *text, int out_fd, int err_fd);
/* The FAILED sentence for a start that reported e (NULL: it ended before exec). */
void sp_fail_text(const struct fl_sandbox_err *e, const char *argv0, const char *cwd, char *msg,
		  size_t len);

/* spawner_pool.c: the warm pool in the spawner process */
/* A warm sandbox has ended: says why unless it was let go. Returns 0 if pid is not one. */
int sp_warm_reaped(struct sp_state *st, pid_t pid, int status);
/* Set-ups under way (cold starts and warm builds), against max_pending. */
size_t sp_npending(const struct sp_state *st);
/* Counts starts for the pool's rates; with refill builds what it lacks (see the file). */
void sp_warm_tick(struct sp_state *st, int started, int python, int refill);
/* A warm sandbox's socket is readable: its "ready" byte, or its end. */
void sp_warm_readable(struct sp_state *st, int fd);
/* Starts request r (msg: the whole message) in a warm sandbox if one fits: 1 when it did
 * or reported why not, 0 to start it cold. */
int sp_try_warm(struct sp_state *st, uint64_t id, const struct sp_spawn_req *r, const char *msg,
		size_t len);

/* spawner.c: descriptors passed with a message (SCM_RIGHTS), on both sides. */
/* Attaches n descriptors (0: none) to mh, its control data in cbuf, which holds at least
 * CMSG_SPACE(n * sizeof(int)) bytes and is aligned for a struct cmsghdr. */
void sp_rights_put(struct msghdr *mh, void *cbuf, const int *fds, int n);
/* The descriptors a received message carried, in order: up to max into fds, any beyond
 * closed. Returns how many were stored. */
int sp_rights_take(struct msghdr *mh, int *fds, int max);

/* Kills the process groups recorded in run_dir by an earlier spawner (checked against
 * each process's start time, so a reused pid is left alone) and removes every record.
 * Runs in the daemon before the spawner is forked. Returns how many groups were killed. */
int fl_spawner__reap_leftovers(const char *run_dir);

/* The spawner process's body, run in the child right after fork(): sock is its end of
 * the socketpair (it takes ownership), parent the daemon's pid, run_dir where it keeps
 * its process-group records (borrowed for the life of the process). Never returns: the
 * process exits when the daemon asks it to stop or goes away. */
__attribute__((noreturn)) void fl_spawner__main(int sock, pid_t parent, const char *run_dir);

#endif
