/* seccomp.c -- builds the instances' system-call filter with libseccomp, once. */
#include "runtime/seccomp.h"

#include "core/util.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

const char *const fl_seccomp_denied[] = {
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "mount_setattr",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "keyctl",
    "add_key",
    "request_key",
    "unshare",
    "setns",
    "reboot",
    "swapon",
    "swapoff",
    "perf_event_open",
    "open_by_handle_at",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "acct",
    NULL,
};

/* What an init still does once it knows its instance (join the function's network
 * namespace, bind its directory and secrets): denied by the second, small filter, which
 * it installs only then. */
static const char *const sc_late[] = {"mount", "move_mount", "setns", NULL};

struct sc_prog {
	struct sock_filter *insns;
	unsigned short len;
};

static struct sc_prog sc_progs[3]; /* indexed by enum fl_seccomp_part */

static int sc_is_late(const char *name)
{
	for (int i = 0; sc_late[i]; i++)
		if (strcmp(sc_late[i], name) == 0)
			return 1;
	return 0;
}

/* Adds one rule; a system call this libseccomp or kernel does not know is skipped. */
static int sc_rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n,
		   const struct scmp_arg_cmp *args)
{
	int nr = seccomp_syscall_resolve_name(name);

	if (nr == __NR_SCMP_ERROR)
		return 0;
	return seccomp_rule_add_array(ctx, action, nr, n, args);
}

static int sc_build(scmp_filter_ctx ctx, enum fl_seccomp_part part)
{
	static const unsigned long ns_flags[] = {CLONE_NEWNS,	 CLONE_NEWUTS, CLONE_NEWIPC,
						 CLONE_NEWUSER,	 CLONE_NEWPID, CLONE_NEWNET,
						 CLONE_NEWCGROUP};
	const uint32_t deny = SCMP_ACT_ERRNO(EPERM);
	int r = 0, i;

	for (i = 0; fl_seccomp_denied[i] && r == 0; i++)
		if (part == FL_SECCOMP_ALL ||
		    (part == FL_SECCOMP_LATE) == sc_is_late(fl_seccomp_denied[i]))
			r = sc_rule(ctx, deny, fl_seccomp_denied[i], 0, NULL);
	if (part == FL_SECCOMP_LATE)
		return r;
	/* clone3 passes its flags in memory, which a filter cannot read: ENOSYS makes
	 * glibc fall back to clone, whose flags are checked below. */
	if (r == 0)
		r = sc_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL);
	for (i = 0; i < (int)(sizeof(ns_flags) / sizeof(ns_flags[0])) && r == 0; i++) {
		struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]);
		r = sc_rule(ctx, deny, "clone", 1, &a);
	}
	if (r == 0) {
		struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_EQ, AF_PACKET);
		r = sc_rule(ctx, deny, "socket", 1, &a);
	}
	/* Netlink: only NETLINK_ROUTE, which getaddrinfo() and getifaddrs() need. */
	if (r == 0) {
		struct scmp_arg_cmp a[2] = {SCMP_A0(SCMP_CMP_EQ, AF_NETLINK),
					    SCMP_A2(SCMP_CMP_NE, NETLINK_ROUTE)};
		r = sc_rule(ctx, deny, "socket", 2, a);
	}
	for (i = 0; i < 2 && r == 0; i++) {
		struct scmp_arg_cmp a[2] = {SCMP_A0(SCMP_CMP_EQ, i ? AF_INET6 : AF_INET),
					    SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_RAW)};
		r = sc_rule(ctx, deny, "socket", 2, a);
	}
	return r;
}

/* Compiles one part into sc_progs[part]. */
static int sc_compile(enum fl_seccomp_part part, char *err, size_t errlen)
{
	scmp_filter_ctx ctx;
	char *prog = NULL;
	size_t len = 0;
	int fd = -1, r;

	ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (ctx == NULL) {
		snprintf(err, errlen, "cannot create a seccomp filter");
		return -ENOMEM;
	}
	r = sc_build(ctx, part);
	if (r < 0) {
		snprintf(err, errlen, "cannot build the seccomp filter: %s", strerror(-r));
		goto out;
	}
	/* libseccomp 2.5 exports BPF only to a descriptor: go through a memfd. */
	fd = memfd_create("flint-seccomp", MFD_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "memfd_create: %s", strerror(errno));
		goto out;
	}
	r = seccomp_export_bpf(ctx, fd);
	if (r < 0) {
		snprintf(err, errlen, "cannot export the seccomp filter: %s", strerror(-r));
		goto out;
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		r = -errno;
		goto out;
	}
	{
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		prog = fl_read_file(path, &len);
	}
	if (prog == NULL || len == 0 || len % sizeof(struct sock_filter) != 0 ||
	    len / sizeof(struct sock_filter) > BPF_MAXINSNS) {
		r = -EINVAL;
		snprintf(err, errlen, "the exported seccomp filter is malformed (%zu bytes)", len);
		goto out;
	}
	sc_progs[part].insns = (struct sock_filter *)prog;
	sc_progs[part].len = (unsigned short)(len / sizeof(struct sock_filter));
	prog = NULL;
	r = 0;
out:
	free(prog);
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return r;
}

int fl_seccomp_prepare(char *err, size_t errlen)
{
	int r = 0;

	for (int part = 0; part < 3 && r == 0; part++)
		if (sc_progs[part].insns == NULL)
			r = sc_compile((enum fl_seccomp_part)part, err, errlen);
	return r;
}

int fl_seccomp_apply(enum fl_seccomp_part part)
{
	struct sock_fprog p = {.len = sc_progs[part].len, .filter = sc_progs[part].insns};

	if (p.filter == NULL)
		return -EINVAL;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p, 0, 0) < 0)
		return -errno;
	return 0;
}

const void *fl_seccomp_program(size_t *len)
{
	const struct sc_prog *p = &sc_progs[FL_SECCOMP_ALL];

	*len = p->insns ? p->len * sizeof(*p->insns) : 0;
	return p->insns;
}
