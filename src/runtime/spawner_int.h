/* spawner_int.h -- the spawner's wire format and the calls between its two halves. */
#ifndef FL_SPAWNER_INT_H
#define FL_SPAWNER_INT_H

#include <stddef.h>
#include <stdint.h>
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
	int dying;  /* killed to shrink the pool; reaped later */
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
