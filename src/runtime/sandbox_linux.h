/* sandbox_linux.h -- what a sandboxed instance is, and the code that builds one.
 *
 * A sandboxed instance is cloned by the spawner into new PID, mount, IPC and
 * UTS namespaces. Its first process is a tiny init (PID 1 inside) that sets up
 * the file system view, drops every privilege, forks the real command, forwards
 * SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to it, reaps zombies and ends
 * with it, reporting the command's wait status to the spawner. From the host,
 * the init is the instance's process (and process group leader): killing it
 * ends the PID namespace, which kills everything the instance started.
 *
 * The view: the host's whole tree read-only and nosuid, a private tmpfs on /tmp
 * and /dev/shm, a fresh /proc, the data directory covered by an empty tmpfs,
 * and the working directory bound back at its own path (read-only, or writable
 * for build steps). With a root file system of the function's own, that tree
 * takes the host's place (see struct fl_sandbox's rootfs). Identity: the function's own uid and
 * gid, no supplementary groups, no capabilities (bounding set emptied), no_new_privs, then the
 * seccomp filter of runtime/seccomp.h. Limits: runtime/cgroup.h, joined before the init runs
 * anything.
 */
#ifndef FL_SANDBOX_LINUX_H
#define FL_SANDBOX_LINUX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FL_SANDBOX_UID_BASE  60000 /* per-function uids are BASE .. BASE+COUNT-1 */
#define FL_SANDBOX_UID_COUNT 5000
#define FL_SANDBOX_TMP_SIZE  (64ULL << 20) /* each of /tmp and /dev/shm */

/* How to sandbox one process. Strings are borrowed for the call that takes it. */
struct fl_sandbox {
	const char *name;    /* the function: the hostname inside the sandbox */
	uint32_t uid, gid;   /* unprivileged identity, see fl_sandbox_uid() */
	uint64_t memory;     /* bytes; 0 = no limit */
	uint32_t cpu_millis; /* thousandths of a CPU; 0 = no limit */
	uint32_t pids;	     /* processes and threads; 0 = no limit */
	const char *hide;    /* a directory the instance must not see (the data directory) */
	int writable_cwd;    /* build steps: the working directory is writable (and is
				given to uid first) */
	/* Secrets: host directories (DATA/secrets/NAME, absolute, no symbolic links)
	 * whose regular files are copied into a read-only tmpfs as
	 * /run/secrets/NAME/FILE, mode 0400 and owned by uid; NULL-terminated, or NULL. */
	const char *const *secrets;
	/* A root file system of the function's own: an absolute host directory without
	 * symbolic links, or NULL for the host's tree. With one, the instance's root is that
	 * tree, read-only, nosuid and nodev (flint adds /proc, /dev, /tmp, /dev/shm and
	 * /run/secrets on top without writing into it); the working directory is then a path
	 * inside the tree, and code (if not NULL) is a host directory bound at the same path
	 * inside it, read-only (writable with writable_cwd). */
	const char *rootfs;
	const char *code;
	/* The network namespace to join (`network: isolated`, runtime/netns.h): a descriptor,
	 * or 0 (never a namespace: it is standard input) to stay on the host's network. */
	int netns;
	/* The command is the Python template's runtime (runtime/pyzygote.h): a warm sandbox
	 * with a pre-imported interpreter may run it. */
	int zygote;
};

#define FL_SANDBOX_MAX_SECRETS 64

/* The uid (also used as gid) of a function: FL_SANDBOX_UID_BASE plus a stable hash
 * (FNV-1a) of its name modulo FL_SANDBOX_UID_COUNT. */
uint32_t fl_sandbox_uid(const char *name);

/* Start-up, before the spawner is forked: detects what cgroups can enforce (tag
 * from a hash of data_dir), removes leftover instance groups of an earlier run,
 * compiles the seccomp filter, and logs one line saying what is enforced. */
void fl_sandbox_init(const char *data_dir);

/* Points HOME at /tmp (the only writable place) unless keep_home (the function's
 * spec sets HOME): replaces the HOME entry of envp, or appends one, in which case
 * envp must have room for one more entry. Entries are malloc'd strings; a replaced
 * one is freed. */
void fl_sandbox_home(char **envp, int keep_home);

/* One sentence saying what sandboxed instances get, for `flint info`. */
void fl_sandbox_describe(char *out, size_t outlen);

/* ---- used by the spawner ---- */

/* What a child reports through its close-on-exec pipe when it cannot exec. */
struct fl_sandbox_err {
	int32_t step;	/* FL_SB_STEP_* */
	int32_t err;	/* errno */
	char what[120]; /* FL_SB_STEP_SANDBOX: what could not be done, e.g. "mount proc on /proc" */
};
enum { FL_SB_STEP_SETUP, FL_SB_STEP_CHDIR, FL_SB_STEP_EXEC, FL_SB_STEP_SANDBOX };

/* Everything the cloned child needs; descriptors are the child's ends. */
struct fl_sandbox_child {
	const struct fl_sandbox *sb;
	const char *cwd; /* NULL: /tmp */
	char **argv, **envp;
	int out_w, err_w; /* become the command's stdout and stderr */
	int ep_w;	  /* close-on-exec: a struct fl_sandbox_err if anything fails */
	int sync_r;	  /* one byte arrives once the child is in its cgroups */
	int status_w;	  /* the init writes the command's wait status (an int) here */
	int parent_pidfd; /* the spawner, to notice that it died */
};

/* Clones the sandboxed child (new PID, mount, IPC and UTS namespaces). Returns its
 * pid as the caller sees it, or -errno; in the child it never returns. Every
 * descriptor of the caller must be close-on-exec. */
pid_t fl_sandbox_clone(const struct fl_sandbox_child *c);

/* What is taken from the host before a sandbox's view covers it: a detached copy of the
 * directory bound at its own path (open_tree, with the sandbox's mount attributes), and
 * the secret directories. */
struct fl_sandbox_fds {
	int cwdtree; /* -1: nothing to bind */
	int secfd[FL_SANDBOX_MAX_SECRETS];
	int nsec;
};

/* Takes what sb needs from the host, for bind (a host directory, or NULL). Also makes the
 * mount point /run/secrets in the host's tree when there are secrets and, for a writable
 * working directory, gives bind to the function's uid. Returns 0, or -1 with e saying
 * which step failed (and f empty). */
int fl_sandbox_prepare(const struct fl_sandbox *sb, const char *bind, struct fl_sandbox_fds *f,
		       struct fl_sandbox_err *e);

/* Closes whatever f still holds. */
void fl_sandbox_fds_close(struct fl_sandbox_fds *f);

/* A warm sandbox: an init cloned ahead of need into its namespaces that builds the
 * generic view (read-only host, private /tmp and /dev/shm, /proc, hide covered) and then
 * calls wait, which blocks until the sandbox is given an instance: it fills c's sb, cwd,
 * argv and envp and f (what fl_sandbox_prepare took from the host in the spawner,
 * passed over), or returns -1 to end the init quietly (the pool shrinks). The init then
 * finishes like a cold start (hostname, network namespace, binds, identity, seccomp, the
 * command). Descriptors are the child's ends, as in struct fl_sandbox_child. */
struct fl_sandbox_warm {
	const char *hide;
	int ep_w, out_w, err_w, status_w, parent_pidfd;
	int sock;   /* what wait reads from; every other descriptor is closed in the init */
	int python; /* start a Python zygote (runtime/pyzygote.h) while waiting */
	int (*wait)(void *arg, struct fl_sandbox_child *c, struct fl_sandbox_fds *f);
	void *arg;
};

/* Clones a warm sandbox; returns its pid or -errno, like fl_sandbox_clone. */
pid_t fl_sandbox_clone_warm(const struct fl_sandbox_warm *w);

/* Whether a warm sandbox can become an instance sandboxed as sb: not with a root file
 * system of its own (a different view) nor a writable working directory (a build). */
int fl_sandbox_warm_fits(const struct fl_sandbox *sb);

/* The last steps of every instance, sandboxed or not: default signal handling,
 * stdin from /dev/null, stdout/stderr to out_w/err_w, chdir(cwd) if cwd, exec.
 * Failures are reported through ep and end the process with status 127. */
__attribute__((noreturn)) void fl_sandbox_exec(const char *cwd, char **argv, char **envp, int out_w,
					       int err_w, int ep);

/* Every signal back to its default action and unblocked: what a command starts with,
 * whatever the spawner blocked or ignored. */
void fl_sandbox_default_signals(void);

/* Writes a struct fl_sandbox_err to ep and ends the process with status 127. */
__attribute__((noreturn)) void fl_sandbox_fail(int ep, int step, int err, const char *what);

#endif
