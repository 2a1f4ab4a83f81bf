/* spawner_int.h -- the spawner's wire format and the calls between its two halves. */
#ifndef FL_SPAWNER_INT_H
#define FL_SPAWNER_INT_H

#include <stdint.h>
#include <sys/types.h>

#define SP_MAX_MSG     65536 /* largest message either way, header included */
#define SP_HAS_CWD     1u
#define SP_HAS_SANDBOX 2u
#define SP_HAS_NETNS   4u /* SPAWN: a network namespace descriptor comes with it */

enum sp_type { SP_SPAWN = 1, SP_SIGNAL, SP_STOP, SP_STARTED, SP_FAILED, SP_EXITED };

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
	uint32_t cpu_millis, pids, uid, gid, writable_cwd, nsecrets;
};

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
