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

/* Compiles the filter into a BPF program kept for the life of the process (done
 * once; later calls return at once). Returns 0, or -errno with a sentence in err. */
int fl_seccomp_prepare(char *err, size_t errlen);

/* Installs the prepared filter in the calling thread, which must have set
 * PR_SET_NO_NEW_PRIVS. Allocates nothing (safe between fork and exec).
 * Returns 0 or -errno (-EINVAL when fl_seccomp_prepare() did not succeed). */
int fl_seccomp_apply(void);

/* The prepared program (struct sock_filter instructions) and its size in bytes, for a
 * process that installs it by itself (the Python zygote); NULL before a successful
 * fl_seccomp_prepare(). */
const void *fl_seccomp_program(size_t *len);

#endif
