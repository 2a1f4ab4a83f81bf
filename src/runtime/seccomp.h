/* seccomp.h -- the system-call filter every sandboxed instance runs under.
 *
 * Default allow; calls a function has no business making fail with EPERM:
 * mounting, tracing other processes, loading kernel code or modules, BPF, key
 * rings, new namespaces (unshare, setns, clone with CLONE_NEW*), reboot, swap,
 * perf events, file handles, userfaultfd, io_uring, and packet, raw and most
 * netlink sockets. clone3 fails with ENOSYS (its flags are out of the filter's
 * reach, and C libraries fall back to clone). Other architectures' system
 * calls (i386 through int 0x80, x32) kill the process.
 */
#ifndef FL_SECCOMP_H
#define FL_SECCOMP_H

#include <stddef.h>

/* The system calls denied outright, NULL-terminated (clone, clone3 and socket are
 * filtered by their arguments in addition). */
extern const char *const fl_seccomp_denied[];

/* The filter comes whole, or in two parts that, stacked, deny exactly what it does.
 * A sandbox's init installs the early part (nearly all of it) while it waits for an
 * instance, and the late part (mount, move_mount, setns: what it still needs once it
 * knows the function) just before the command: loading a filter costs about a
 * microsecond per instruction here, and the late part is a few instructions. */
enum fl_seccomp_part {
	FL_SECCOMP_ALL,
	FL_SECCOMP_EARLY,
	FL_SECCOMP_LATE,
};

/* Compiles the filter and its parts into BPF programs kept for the life of the process
 * (done once; later calls return at once). Returns 0, or -errno with a sentence in err. */
int fl_seccomp_prepare(char *err, size_t errlen);

/* Installs a prepared program in the calling thread, which must have set
 * PR_SET_NO_NEW_PRIVS or hold CAP_SYS_ADMIN. Allocates nothing (safe between fork and
 * exec). Returns 0 or -errno (-EINVAL when fl_seccomp_prepare() did not succeed). */
int fl_seccomp_apply(enum fl_seccomp_part part);

/* The prepared program (struct sock_filter instructions) and its size in bytes, for a
 * process that installs it by itself (the Python zygote); NULL before a successful
 * fl_seccomp_prepare(). */
const void *fl_seccomp_program(size_t *len);

#endif
