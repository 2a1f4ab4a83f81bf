/* sandbox_linux.c -- namespaces, mounts, identity and the init of sandboxed instances. */
#include "runtime/sandbox_linux.h"

#include "core/log.h"
#include "core/sha256.h"
#include "core/util.h"
#include "runtime/cgroup.h"
#include "runtime/netns.h"
#include "runtime/pyzygote.h"
#include "runtime/seccomp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Where the new root is assembled, on a small tmpfs laid over /tmp of the new mount
 * namespace only; it disappears with the old root after pivot_root. */
#define SB_STAGE "/tmp"
#define SB_ROOT	 "/tmp/r"

/* Signals the init passes on to the command; it handles them to be able to receive
 * them at all (a PID namespace's init ignores signals it has no handler for). */
static const int sb_forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

uint32_t fl_sandbox_uid(const char *name)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return FL_SANDBOX_UID_BASE + h % FL_SANDBOX_UID_COUNT;
}

void fl_sandbox_init(const char *data_dir)
{
	char real[PATH_MAX], hex[65], tag[16], what[700], err[160];
	int reaped = 0;

	if (realpath(data_dir, real) == NULL)
		snprintf(real, sizeof(real), "%s", data_dir);
	fl_sha256_hex(real, strlen(real), hex);
	snprintf(tag, sizeof(tag), "%.12s", hex);
	fl_cgroup_init(tag, &reaped);
	if (reaped)
		fl_warn("sandbox", "removed %d instance cgroups left by an earlier run", reaped);
	if (fl_netns_init() < 0)
		fl_warn("sandbox",
			"cannot open this process's network namespace (%s): functions "
			"with \"network\": \"isolated\" cannot be reached",
			strerror(errno));
	if (fl_seccomp_prepare(err, sizeof(err)) < 0)
		fl_error("sandbox", "%s; sandboxed instances cannot start", err);
	/* Namespaces, other uids and mounts need root; say so once instead of per start. */
	if (geteuid() != 0)
		fl_warn("sandbox",
			"flint is not running as root: sandboxed instances will fail to "
			"start; run flint as root, or deploy functions with \"sandbox\": false");
	fl_cgroup_describe(what, sizeof(what));
	fl_info("sandbox",
		"instances run in pid/mount/ipc/uts namespaces as uid %d-%d without "
		"capabilities, with no_new_privs and seccomp; limits: %s",
		FL_SANDBOX_UID_BASE, FL_SANDBOX_UID_BASE + FL_SANDBOX_UID_COUNT - 1, what);
}

void fl_sandbox_describe(char *out, size_t outlen)
{
	char what[700];

	fl_cgroup_describe(what, sizeof(what));
	snprintf(out, outlen,
		 "namespaces (pid, mount, ipc, uts); read-only view of the host with a private "
		 "/tmp, the data directory hidden; an unprivileged uid per function; a network "
		 "namespace of its own with \"network\": \"isolated\"; no "
		 "capabilities; no_new_privs; seccomp filter; limits: %s "
		 "(functions with \"sandbox\": false run as plain processes)",
		 what);
}

/* ---- in the child (no logging: stderr is the daemon's) ---- */

__attribute__((noreturn)) void fl_sandbox_fail(int ep, int step, int err, const char *what)
{
	struct fl_sandbox_err e;

	memset(&e, 0, sizeof(e));
	e.step = step;
	e.err = err;
	if (what)
		snprintf(e.what, sizeof(e.what), "%s", what);
	while (write(ep, &e, sizeof(e)) < 0 && errno == EINTR)
		;
	_exit(127);
}

void fl_sandbox_default_signals(void)
{
	struct sigaction sa;
	sigset_t none;
	int i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (i = 1; i < NSIG; i++)
		if (i != SIGKILL && i != SIGSTOP)
			sigaction(i, &sa, NULL); /* fails harmlessly for the libc-reserved ones */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

__attribute__((noreturn)) void fl_sandbox_exec(const char *cwd, char **argv, char **envp, int out_w,
					       int err_w, int ep)
{
	int nul;

	fl_sandbox_default_signals();
	nul = open("/dev/null", O_RDONLY);
	if (nul < 0)
		fl_sandbox_fail(ep, FL_SB_STEP_SETUP, errno, NULL);
	if (dup2(nul, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
		fl_sandbox_fail(ep, FL_SB_STEP_SETUP, errno, NULL);
	if (nul > 2)
		close(nul);
	if (cwd && chdir(cwd) < 0)
		fl_sandbox_fail(ep, FL_SB_STEP_CHDIR, errno, NULL);
	/* execvpe searches the PATH of environ, not of envp: make them the same so the
	 * instance's own PATH decides (glibc falls back to /bin:/usr/bin without one). */
	environ = envp;
	execvpe(argv[0], argv, envp);
	fl_sandbox_fail(ep, FL_SB_STEP_EXEC, errno, NULL);
}

/* Reports a failed sandbox step "what path" with errno and ends the child. */
__attribute__((noreturn)) static void sb_die(int ep, const char *what, const char *path)
{
	char text[120];

	snprintf(text, sizeof(text), "%s%s%.80s", what, path ? " " : "", path ? path : "");
	fl_sandbox_fail(ep, FL_SB_STEP_SANDBOX, errno, text);
}

/* mkdir -p of path, which must end up a directory (existing ones are fine even on a
 * read-only file system: mkdir reports EEXIST before EROFS). */
static int sb_mkdirs(const char *path)
{
	char p[PATH_MAX];
	size_t i, n = strlen(path);

	if (n >= sizeof(p))
		return -1;
	memcpy(p, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		p[i] = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -1;
		p[i] = i == n ? '\0' : '/';
	}
	return 0;
}

static int sb_is_dir(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static uid_t sb_chown_uid;
static gid_t sb_chown_gid;

static int sb_chown_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	/* Never through a symbolic link: lchown changes the link itself. */
	return lchown(path, sb_chown_uid, sb_chown_gid) < 0 ? -1 : 0;
}

/* Copies one secret's regular files from the host directory fd (closed here) into dir,
 * each mode 0400 and owned by the function; dir itself becomes 0500, the function's. */
static void sb_copy_secret(const struct fl_sandbox *sb, int fd, const char *dir, int ep)
{
	char path[PATH_MAX], buf[8192];
	struct dirent *e;
	DIR *d;

	if (mkdir(dir, 0500) < 0 || chown(dir, sb->uid, sb->gid) < 0)
		sb_die(ep, "create", dir);
	if ((d = fdopendir(fd)) == NULL)
		sb_die(ep, "read a secret directory for", dir);
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		int in, out;
		ssize_t n;

		if (e->d_name[0] == '.' || fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		in = openat(fd, e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
		if (in < 0 || out < 0 || fchown(out, sb->uid, sb->gid) < 0 || fchmod(out, 0400) < 0)
			sb_die(ep, "copy the secret file", path);
		while ((n = read(in, buf, sizeof(buf))) != 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 || fl_write_all(out, buf, (size_t)n) < 0)
				sb_die(ep, "copy the secret file", path);
		}
		explicit_bzero(buf, sizeof(buf));
		close(in);
		close(out);
	}
	closedir(d);
}

/* Puts every secret into a fresh tmpfs on /run/secrets of the (already entered) new root,
 * then makes it read-only. fds are the secret directories, opened before anything covered
 * them. */
static void sb_secrets(const struct fl_sandbox *sb, const int *fds, int n, int ep)
{
	char dir[PATH_MAX], opts[64];
	const unsigned long fl = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	int i;

	/* Room for each secret at its largest, plus the directories. */
	snprintf(opts, sizeof(opts), "size=%llu,mode=0755",
		 (unsigned long long)n * (1ULL << 20) + (64ULL << 10));
	if (mount("tmpfs", "/run/secrets", "tmpfs", fl, opts) < 0)
		sb_die(ep, "mount a tmpfs on", "/run/secrets");
	for (i = 0; i < n; i++) {
		const char *slash = strrchr(sb->secrets[i], '/');
		snprintf(dir, sizeof(dir), "/run/secrets/%s", slash ? slash + 1 : sb->secrets[i]);
		sb_copy_secret(sb, fds[i], dir, ep);
	}
	if (mount(NULL, "/run/secrets", NULL, MS_REMOUNT | MS_RDONLY | fl, NULL) < 0)
		sb_die(ep, "make /run/secrets read-only", NULL);
}

/* Assembles SB_ROOT from the function's own tree: a read-only overlay of the tree under a
 * small skeleton of flint's mount points (so none has to exist in the tree, and nothing is
 * written into it), with the host's /dev (read-only) on its /dev. bind is the host
 * directory that will be bound at its own path inside, or NULL. */
static void sb_own_root(int tree, int devtree, const char *bind, int nsec, int ep)
{
	static const char *const points[] = {"/proc", "/dev", "/tmp", "/run"};
	char path[PATH_MAX + 16];
	size_t i;

	if (mkdir(SB_STAGE "/t", 0755) < 0 ||
	    move_mount(tree, "", AT_FDCWD, SB_STAGE "/t", MOVE_MOUNT_F_EMPTY_PATH) < 0)
		sb_die(ep, "attach the function's root file system at", SB_STAGE "/t");
	close(tree);
	for (i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
		snprintf(path, sizeof(path), "%s/s%s", SB_STAGE, points[i]);
		if (sb_mkdirs(path) < 0)
			sb_die(ep, "create the mount point", points[i]);
	}
	if (nsec && mkdir(SB_STAGE "/s/run/secrets", 0755) < 0)
		sb_die(ep, "create the mount point", "/run/secrets");
	if (bind) {
		snprintf(path, sizeof(path), "%s/s%s", SB_STAGE, bind);
		if (sb_mkdirs(path) < 0)
			sb_die(ep, "create the mount point of", bind);
	}
	/* Lower layers only: the overlay itself cannot be written. The tree's own
	 * overlay attributes, if any, are not followed. */
	if (mount("overlay", SB_ROOT, "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV,
		  "lowerdir=" SB_STAGE "/s:" SB_STAGE "/t,redirect_dir=nofollow,metacopy=off") < 0)
		sb_die(ep, "mount the function's root file system (overlay) at", SB_ROOT);
	if (move_mount(devtree, "", AT_FDCWD, SB_ROOT "/dev", MOVE_MOUNT_F_EMPTY_PATH) < 0)
		sb_die(ep, "bind the host's /dev at", "/dev");
	close(devtree);
}

/* The function's uid must reach its working directory even when a parent on
 * the host is closed to others (a checkout under /root, mode 0700): each such
 * parent is covered, in the new view, by an empty tmpfs open to all, in which
 * the rest of the path is then made. What else the parent held stays hidden,
 * which is what the sandbox wants anyway (the data directory's cover included,
 * when it lies below such a parent). Runs in the new root. */
static void sb_open_ancestors(const char *dir, int ep)
{
	char path[PATH_MAX];
	struct stat st;
	size_t i;

	snprintf(path, sizeof(path), "%s", dir);
	for (i = 1; path[i]; i++) {
		if (path[i] != '/')
			continue;
		path[i] = '\0';
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode) && !(st.st_mode & S_IXOTH) &&
		    mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755") < 0)
			sb_die(ep, "open a path to the working directory at", path);
		path[i] = '/';
	}
}

/* Fills e with a failed step. */
static int sb_err(struct fl_sandbox_err *e, int step, const char *what, const char *path)
{
	e->step = step;
	e->err = errno;
	snprintf(e->what, sizeof(e->what), "%s%s%.80s", what, path ? " " : "", path ? path : "");
	return -1;
}

int fl_sandbox_prepare(const struct fl_sandbox *sb, const char *bind, struct fl_sandbox_fds *f,
		       struct fl_sandbox_err *e)
{
	struct mount_attr cw = {.attr_set =
				    MOUNT_ATTR_NOSUID | (sb->writable_cwd ? 0 : MOUNT_ATTR_RDONLY)};
	int r = 0;

	memset(e, 0, sizeof(*e));
	f->cwdtree = -1;
	for (f->nsec = 0; sb->secrets && sb->secrets[f->nsec] && f->nsec < FL_SANDBOX_MAX_SECRETS;
	     f->nsec++) {
		f->secfd[f->nsec] =
		    open(sb->secrets[f->nsec], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (f->secfd[f->nsec] < 0) {
			r = sb_err(e, FL_SB_STEP_SANDBOX, "open the secret",
				   strrchr(sb->secrets[f->nsec], '/'));
			goto fail;
		}
	}
	/* The mount point of /run/secrets must exist in the host's tree before it is copied;
	 * an empty directory is all it takes. */
	if (f->nsec && !sb->rootfs && sb_mkdirs("/run/secrets") < 0) {
		r = sb_err(e, FL_SB_STEP_SANDBOX, "create the mount point", "/run/secrets");
		goto fail;
	}
	if (bind && sb->writable_cwd) {
		sb_chown_uid = sb->uid;
		sb_chown_gid = sb->gid;
		if (nftw(bind, sb_chown_one, 16, FTW_PHYS) != 0) {
			r = sb_err(e, FL_SB_STEP_SANDBOX,
				   "give the build directory to the function's uid:", bind);
			goto fail;
		}
	}
	if (bind) {
		/* A copy taken before anything covers it (it may lie in the data directory or
		 * /tmp). Without a tree of its own, it is the working directory: say chdir. */
		f->cwdtree =
		    open_tree(AT_FDCWD, bind, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		if (f->cwdtree < 0) {
			r = sb->rootfs
				? sb_err(e, FL_SB_STEP_SANDBOX, "open the code directory", bind)
				: sb_err(e, FL_SB_STEP_CHDIR, "", NULL);
			goto fail;
		}
		if (mount_setattr(f->cwdtree, "", AT_EMPTY_PATH | AT_RECURSIVE, &cw, sizeof(cw)) <
		    0) {
			r = sb_err(e, FL_SB_STEP_SANDBOX,
				   "set the attributes of the working directory", NULL);
			goto fail;
		}
	}
	return 0;
fail:
	fl_sandbox_fds_close(f);
	return r;
}

void fl_sandbox_fds_close(struct fl_sandbox_fds *f)
{
	int i;

	if (f->cwdtree >= 0)
		close(f->cwdtree);
	f->cwdtree = -1;
	for (i = 0; i < f->nsec; i++)
		if (f->secfd[i] >= 0)
			close(f->secfd[i]);
	f->nsec = 0;
}

/* Builds the generic view and moves into it: the host's tree (or the function's own,
 * rootfs) read-only, private /tmp and /dev/shm, a fresh /proc, the data directory hide
 * covered by an empty tmpfs (still writable by root, so that mount points can be made in
 * it; the instance's uid cannot). bind and nsec only shape the skeleton of a tree of the
 * function's own. Returns 1 if hide was covered. */
static int sb_view(const char *rootfs, const char *hide, const char *bind, int nsec, int ep)
{
	struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
					    (rootfs ? MOUNT_ATTR_NODEV : 0)};
	struct mount_attr dev = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID};
	char path[PATH_MAX + 16], opts[64];
	int tree, devtree = -1, hidden = 0;

	tree = open_tree(AT_FDCWD, rootfs ? rootfs : "/",
			 OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
	if (tree < 0)
		sb_die(ep, rootfs ? "open the root file system" : "copy the mount tree", rootfs);
	if (rootfs) {
		devtree =
		    open_tree(AT_FDCWD, "/dev", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		if (devtree < 0 ||
		    mount_setattr(devtree, "", AT_EMPTY_PATH | AT_RECURSIVE, &dev, sizeof(dev)) < 0)
			sb_die(ep, "copy the host's /dev", NULL);
	}
	if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &ro, sizeof(ro)) < 0)
		sb_die(ep, "make the host's tree read-only", NULL);
	if (mount("tmpfs", SB_STAGE, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0700") < 0)
		sb_die(ep, "mount a staging tmpfs on", SB_STAGE);
	if (mkdir(SB_ROOT, 0755) < 0)
		sb_die(ep, "create", SB_ROOT);
	if (rootfs) {
		sb_own_root(tree, devtree, bind, nsec, ep);
	} else {
		if (move_mount(tree, "", AT_FDCWD, SB_ROOT, MOVE_MOUNT_F_EMPTY_PATH) < 0)
			sb_die(ep, "attach the read-only tree at", SB_ROOT);
		close(tree);
	}

	snprintf(opts, sizeof(opts), "size=%llu,mode=1777",
		 (unsigned long long)FL_SANDBOX_TMP_SIZE);
	if (mount("tmpfs", SB_ROOT "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
		sb_die(ep, "mount a tmpfs on", "/tmp");
	if (sb_is_dir(SB_ROOT "/dev/shm") &&
	    mount("tmpfs", SB_ROOT "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
		sb_die(ep, "mount a tmpfs on", "/dev/shm");
	/* This process is PID 1 of the new namespace: the new proc shows only it and its
	 * descendants. */
	if (mount("proc", SB_ROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		sb_die(ep, "mount proc on", "/proc");
	if (hide && hide[0] == '/') {
		snprintf(path, sizeof(path), "%s%s", SB_ROOT, hide);
		/* Under /tmp it is already gone with the host's /tmp. */
		if (sb_is_dir(path)) {
			if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
				  "size=64k,mode=0755") < 0)
				sb_die(ep, "cover the data directory", hide);
			hidden = 1;
		}
	}
	/* pivot_root(".", ".") stacks the old root on the new one; detaching it leaves the
	 * new root alone, with no path back to the host's tree. */
	if (chdir(SB_ROOT) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
		sb_die(ep, "pivot_root to the new root", NULL);
	if (umount2(".", MNT_DETACH) < 0)
		sb_die(ep, "detach the old root", NULL);
	if (chdir("/") < 0)
		sb_die(ep, "chdir to the new root", NULL);
	return hidden;
}

/* The function's part of the view, in the new root: its working directory (or code) bound
 * at its own path, the data directory's cover made read-only, its secrets. Consumes f. */
static void sb_bind(const struct fl_sandbox *sb, const char *bind, struct fl_sandbox_fds *f,
		    int hidden, int ep)
{
	if (bind) {
		sb_open_ancestors(bind, ep);
		if (sb_mkdirs(bind) < 0)
			sb_die(ep, "create the mount point of", bind);
		if (move_mount(f->cwdtree, "", AT_FDCWD, bind, MOVE_MOUNT_F_EMPTY_PATH) < 0)
			sb_die(ep, "bind the working directory at", bind);
		close(f->cwdtree);
		f->cwdtree = -1;
	}
	/* Gone (ENOENT) or not a mount point any more (EINVAL) when a parent closed to others
	 * was covered above: then the cover is hidden along with what it covered. */
	if (hidden &&
	    mount(NULL, sb->hide, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
		  NULL) < 0 &&
	    errno != EINVAL && errno != ENOENT)
		sb_die(ep, "make the cover of the data directory read-only", NULL);
	if (f->nsec) {
		sb_secrets(sb, f->secfd, f->nsec, ep);
		f->nsec = 0; /* sb_copy_secret closed them */
	}
}

/* What an init can give up before it knows its instance (for a warm one, while it
 * waits): the capability bounding set (what an exec may gain; the init's own
 * capabilities stay until sb_drop) and the early part of the seccomp filter, all of it
 * but what the init still needs (seccomp.h). Together ~0.2 ms, no longer on a start's
 * path. */
static void sb_early(int ep)
{
	int cap;

	/* Capabilities are numbered without gaps: the first EINVAL is past the last. */
	for (cap = 0; cap < 64; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			if (errno == EINVAL)
				break;
			sb_die(ep, "drop capabilities from the bounding set", NULL);
		}
	errno = -fl_seccomp_apply(FL_SECCOMP_EARLY);
	if (errno)
		sb_die(ep, "install the seccomp filter", NULL);
}

/* Drops every privilege left: the function's uid and gid, no groups, no capabilities,
 * no_new_privs; then closes the seccomp filter with its late part. */
static void sb_drop(const struct fl_sandbox *sb, int ep)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];

	if (setgroups(0, NULL) < 0)
		sb_die(ep, "clear the supplementary groups", NULL);
	if (setresgid(sb->gid, sb->gid, sb->gid) < 0)
		sb_die(ep, "switch to the function's gid", NULL);
	if (setresuid(sb->uid, sb->uid, sb->uid) < 0)
		sb_die(ep, "switch to the function's uid", NULL);
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capset, &h, d) < 0)
		sb_die(ep, "clear the capabilities", NULL);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		sb_die(ep, "clear the ambient capabilities", NULL);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		sb_die(ep, "set no_new_privs", NULL);
	errno = -fl_seccomp_apply(FL_SECCOMP_LATE);
	if (errno)
		sb_die(ep, "install the seccomp filter", NULL);
}

static void sb_nothing(int sig)
{
	(void)sig;
}

/* The init: forwards signals to the command's process group, reaps everything, and
 * ends when the command does, reporting its wait status through status_w. */
__attribute__((noreturn)) static void sb_init_loop(pid_t cmd, const sigset_t *set, int status_w)
{
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(set, &si), status;
		pid_t w;

		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			if (kill(-cmd, sig) < 0)
				kill(cmd, sig);
			continue;
		}
		while ((w = waitpid(-1, &status, WNOHANG)) > 0) {
			if (w != cmd)
				continue;
			while (write(status_w, &status, sizeof(status)) < 0 && errno == EINTR)
				;
			/* Leaving ends the namespace: the kernel kills whatever is left. */
			_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		}
	}
}

/* The end of every sandboxed start, once the generic view is built: the function's part
 * of the view, its identity, then the command forked and the init's loop. zygote > 0 is
 * a Python zygote already running (pyzygote.h), given the instance on spec_w instead. */
__attribute__((noreturn)) static void sb_finish(const struct fl_sandbox_child *c,
						struct fl_sandbox_fds *f, const char *bind,
						int hidden, pid_t zygote, int spec_w)
{
	struct sigaction sa;
	struct pollfd pp = {c->parent_pidfd, POLLIN, 0};
	sigset_t set;
	char **env;
	pid_t cmd;
	size_t i;

	if (c->sb->name && sethostname(c->sb->name, strlen(c->sb->name)) < 0)
		sb_die(c->ep_w, "set the hostname", NULL);
	if (c->sb->netns > 0) {
		errno = -fl_netns_enter(c->sb->netns);
		if (errno)
			sb_die(c->ep_w, "join the function's network namespace", NULL);
		close(c->sb->netns);
	}
	sb_bind(c->sb, bind, f, hidden, c->ep_w);
	sb_drop(c->sb, c->ep_w);
	/* Changing uid cleared the parent-death signal; arm it again, then make sure the
	 * spawner did not die before (its pidfd is readable once it has). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		fl_sandbox_fail(c->ep_w, FL_SB_STEP_SETUP, errno, NULL);
	if (poll(&pp, 1, 0) != 0)
		_exit(127);

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sb_nothing;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(sb_forwarded) / sizeof(sb_forwarded[0]); i++)
		sigaddset(&set, sb_forwarded[i]);
	sigprocmask(SIG_BLOCK, &set, NULL);
	for (i = 0; i < sizeof(sb_forwarded) / sizeof(sb_forwarded[0]); i++)
		sigaction(sb_forwarded[i], &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);

	if (zygote > 0) {
		/* It joins the network namespace through /proc/1 (this process, joined above)
		 * and drops its privileges itself. */
		signal(SIGPIPE, SIG_IGN);
		errno = -fl_pyzygote_give(spec_w, c->sb->uid, c->sb->gid, c->cwd, c->argv, c->envp,
					  c->sb->netns > 0);
		if (errno) {
			kill(zygote, SIGKILL);
			fl_sandbox_fail(c->ep_w, FL_SB_STEP_SETUP, errno, NULL);
		}
		cmd = zygote;
		goto started;
	}
	/* vfork: the command shares the init's memory until it execs, and the init waits.
	 * A fork copies the init's page tables, which costs ~0.8 ms on this kind of VM; the
	 * child only changes per-task state (group, signal) and environ, which the init does
	 * not use, and never returns from here. It inherits the init's seccomp filter. */
	env = environ;
	cmd = vfork();
	environ = env; /* the child pointed it at the instance's (runs after it exec'd) */
	if (cmd < 0)
		fl_sandbox_fail(c->ep_w, FL_SB_STEP_SETUP, errno, NULL);
	if (cmd == 0) {
		/* A group of its own, so forwarded signals reach its workers too. */
		if (setpgid(0, 0) < 0)
			fl_sandbox_fail(c->ep_w, FL_SB_STEP_SETUP, errno, NULL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fl_sandbox_exec(c->cwd ? c->cwd : "/tmp", c->argv, c->envp, c->out_w, c->err_w,
				c->ep_w);
	}
started:
	/* Only the command holds these now: EOF on ep means it exec'ed. */
	close(c->ep_w);
	close(c->out_w);
	close(c->err_w);
	if (c->sync_r >= 0)
		close(c->sync_r);
	close(c->parent_pidfd);
	sb_init_loop(cmd, &set, c->status_w);
}

/* The first steps of every init: a session of its own, death with the spawner, and
 * mounts that never propagate back to the host's. */
static void sb_begin(int ep, const char *name)
{
	if (setsid() < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		fl_sandbox_fail(ep, FL_SB_STEP_SETUP, errno, NULL);
	prctl(PR_SET_NAME, name);
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		sb_die(ep, "make the mounts private", NULL);
}

/* PID 1 of the new namespaces, built for one instance from the start. */
__attribute__((noreturn)) static void sb_child(const struct fl_sandbox_child *c)
{
	/* The host directory bound back at its own path: the working directory, or with a
	 * tree of the function's own, its uploaded code. */
	const char *bind = c->sb->rootfs ? c->sb->code : c->cwd;
	struct fl_sandbox_fds f;
	struct fl_sandbox_err e;
	int hidden;
	char go;

	sb_begin(c->ep_w, "flint-init");
	/* The spawner puts this process into its cgroups, then says go. */
	while (read(c->sync_r, &go, 1) < 0 && errno == EINTR)
		;
	if (fl_sandbox_prepare(c->sb, bind, &f, &e) < 0)
		fl_sandbox_fail(c->ep_w, e.step, e.err, e.what);
	hidden = sb_view(c->sb->rootfs, c->sb->hide, bind, f.nsec, c->ep_w);
	sb_early(c->ep_w);
	sb_finish(c, &f, bind, hidden, 0, -1);
}

static int sb_int_cmp(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Closes every descriptor above 2 but the n in keep (which it sorts). */
static void sb_keep_fds(int *keep, size_t n)
{
	unsigned lo = 3;
	size_t i;

	qsort(keep, n, sizeof(*keep), sb_int_cmp);
	for (i = 0; i < n; i++) {
		if (keep[i] < (int)lo)
			continue;
		if ((unsigned)keep[i] > lo)
			close_range(lo, (unsigned)keep[i] - 1, 0);
		lo = (unsigned)keep[i] + 1;
	}
	close_range(lo, ~0U, 0);
}

/* PID 1 of a warm sandbox: the generic view first, then whatever instance it is told. */
__attribute__((noreturn)) static void sb_warm_child(const struct fl_sandbox_warm *w)
{
	int keep[] = {w->ep_w, w->out_w, w->err_w, w->status_w, w->parent_pidfd, w->sock};
	struct fl_sandbox_child c;
	struct fl_sandbox_fds f;
	int hidden, spec_w = -1;
	pid_t zygote = 0;

	/* It lives long: it must not hold the spawner's other descriptors (the ends of other
	 * instances' pipes, other warm sandboxes' sockets) meanwhile. */
	sb_keep_fds(keep, sizeof(keep) / sizeof(keep[0]));
	/* Built at the lowest priority: a start under way comes first. */
	setpriority(PRIO_PROCESS, 0, 19);
	sb_begin(w->ep_w, "flint-warm");
	hidden = sb_view(NULL, w->hide, NULL, 0, w->ep_w);
	if (w->python) {
		zygote = fl_pyzygote_start(w->ep_w, w->out_w, w->err_w, &spec_w);
		if (zygote < 0) {
			errno = -zygote;
			sb_die(w->ep_w, "start the Python zygote", NULL);
		}
	}
	/* After the zygote's exec: it needs its capabilities (it drops them itself). */
	sb_early(w->ep_w);
	memset(&c, 0, sizeof(c));
	if (w->wait(w->arg, &c, &f) < 0)
		_exit(0);
	setpriority(PRIO_PROCESS, 0, 0); /* an instance now, like any other */
	/* An instance the zygote cannot run gets a command of its own. */
	if (zygote > 0 && !c.sb->zygote) {
		kill(zygote, SIGKILL);
		waitpid(zygote, NULL, 0);
		close(spec_w);
		zygote = 0;
	}
	prctl(PR_SET_NAME, "flint-init");
	c.ep_w = w->ep_w;
	c.out_w = w->out_w;
	c.err_w = w->err_w;
	c.status_w = w->status_w;
	c.parent_pidfd = w->parent_pidfd;
	c.sync_r = -1;
	sb_finish(&c, &f, c.cwd, hidden, zygote, spec_w);
}

/* A raw clone behaves like fork (same stack, copied) and, unlike unshare, leaves the
 * spawner's own PID namespace for its later children unchanged. */
static long sb_clone(void)
{
	return syscall(SYS_clone,
		       CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD, NULL,
		       NULL, NULL, NULL);
}

pid_t fl_sandbox_clone(const struct fl_sandbox_child *c)
{
	long pid = sb_clone();

	if (pid < 0)
		return -errno;
	if (pid == 0)
		sb_child(c);
	return (pid_t)pid;
}

pid_t fl_sandbox_clone_warm(const struct fl_sandbox_warm *w)
{
	long pid = sb_clone();

	if (pid < 0)
		return -errno;
	if (pid == 0)
		sb_warm_child(w);
	return (pid_t)pid;
}

int fl_sandbox_warm_fits(const struct fl_sandbox *sb)
{
	/* A tree of its own replaces the whole view; a build writes its directory. */
	return sb->rootfs == NULL && !sb->writable_cwd;
}

void fl_sandbox_home(char **envp, int keep_home)
{
	size_t i;

	if (keep_home)
		return;
	for (i = 0; envp[i]; i++)
		if (strncmp(envp[i], "HOME=", 5) == 0)
			break;
	free(envp[i]); /* NULL when appending */
	envp[i] = fl_xstrdup("HOME=/tmp");
}
