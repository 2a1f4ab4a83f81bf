/* cgroup.h -- per-instance memory, CPU and pids limits through cgroups v1 or v2.
 *
 * At start-up the daemon detects, for each resource, which cgroup layout can
 * enforce it: cgroup v2 where the unified hierarchy offers the controller,
 * else the v1 hierarchy that carries it. Groups live below the daemon's own
 * group of each hierarchy, in flint/<tag>/ (tag: a hash of the data directory,
 * so two daemons never touch each other's groups), one child per instance:
 * flint/<tag>/i-<id>. The daemon itself is never put into those groups, so an
 * instance over its memory limit is killed by the kernel's OOM killer and
 * flint is never the victim.
 *
 * Detection happens once, before the spawner is forked; the spawner inherits
 * the result and creates, fills and removes the per-instance groups.
 */
#ifndef FL_CGROUP_H
#define FL_CGROUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum fl_cg_res { FL_CG_MEMORY, FL_CG_CPU, FL_CG_PIDS, FL_CG_NRES };

#define FL_CG_CPU_PERIOD_US 100000 /* the CFS period every CPU limit is expressed in */

/* Limits of one instance; 0 means "no limit" for each. */
struct fl_cg_limits {
	uint64_t memory;     /* bytes of memory (and no swap on top) */
	uint32_t cpu_millis; /* thousandths of one CPU: 200 = 0.2 CPU */
	uint32_t pids;	     /* processes and threads, the init process included */
};

/* What detection found for one resource. */
struct fl_cg_res_state {
	int enforced;  /* 1 when limits of this resource can be set */
	int v2;	       /* through cgroup v2 (else v1) */
	char dir[512]; /* the flint parent group for this resource: .../flint/<tag> */
	char why[160]; /* when not enforced: one sentence saying why */
};

struct fl_cg_layout {
	struct fl_cg_res_state res[FL_CG_NRES];
	int memsw; /* v1: memory.memsw.limit_in_bytes exists, so swap can be limited too */
};

/* Detects what can be enforced and prepares the parent groups, reading
 * /proc/self/mountinfo and /proc/self/cgroup; tag names this daemon's groups
 * (e.g. a hash of the data directory, [A-Za-z0-9_-] only). Instance groups left
 * by an earlier run with the same tag are emptied (their processes SIGKILLed)
 * and removed; their number is stored in *reaped (may be NULL). Never fails:
 * what cannot be enforced is recorded with the reason (fl_cgroup_layout()).
 * Must run before the spawner is forked so that it inherits the result. */
void fl_cgroup_init(const char *tag, int *reaped);

/* The layout found by fl_cgroup_init() (all "not enforced" before it ran). */
const struct fl_cg_layout *fl_cgroup_layout(void);

/* Writes one sentence saying what is enforced and how, e.g. "memory (cgroup v1),
 * cpu (cgroup v1), pids (cgroup v1)", into out (always NUL-terminated). */
void fl_cgroup_describe(char *out, size_t outlen);

/* Creates the group(s) of instance id in every hierarchy a non-zero limit of lim
 * needs, and writes the limits. Returns 0 (also when lim asks for nothing), or
 * -errno with a sentence in err; -ENOTSUP when a limit is asked for that this
 * host cannot enforce. On error nothing is left behind. */
int fl_cgroup_create(uint64_t id, const struct fl_cg_limits *lim, char *err, size_t errlen);

/* Moves process pid into the groups created for instance id (call it before the
 * process runs anything of the instance's). Returns 0 or -errno with a sentence. */
int fl_cgroup_attach(uint64_t id, const struct fl_cg_limits *lim, pid_t pid, char *err,
		     size_t errlen);

/* SIGKILLs every process still in the groups of instance id and removes them.
 * Returns 0 when none is left (or none existed), -EBUSY when a group still
 * holds dying processes (call again a little later), or another -errno. */
int fl_cgroup_remove(uint64_t id);

/* Removes this daemon's (empty) parent groups; best effort, at shutdown. */
void fl_cgroup_cleanup(void);

#endif
