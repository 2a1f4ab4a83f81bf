/* test_seccomp.c -- the instances' filter, whole and in its two stacked parts, installed
 * in forked children (root: the early part goes in before no_new_privs, as in an init). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "runtime/seccomp.c"

#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>

enum { ALLOWED = 1, DENIED = 2 };

/* What each probe returns: DENIED when the call failed with EPERM. Every probe is built
 * to fail harmlessly otherwise (a bad descriptor, a missing path, no flags). */
static int probe(int which)
{
	int r;

	switch (which) {
	case 0:
		r = mount("none", "/nonexistent-flint-test", "tmpfs", 0, NULL);
		break;
	case 1:
		r = setns(-1, 0);
		break;
	case 2:
		r = move_mount(-1, "", -1, "", 0);
		break;
	case 3:
		r = unshare(0);
		break;
	case 4:
		r = open_tree(-1, "/nonexistent-flint-test", 0);
		break;
	default:
		r = (int)syscall(SYS_bpf, -1, NULL, 0);
		break;
	}
	return r < 0 && errno == EPERM ? DENIED : ALLOWED;
}

#define NPROBES 6

/* Installs the parts (a mask of 1 << part) in a child; returns the probes' verdicts. */
static void run_parts(unsigned parts, int nnp, int out[NPROBES])
{
	int p[2];
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int v[NPROBES];
		if (nnp)
			prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		for (int part = 0; part < 3; part++)
			if ((parts & (1u << part)) &&
			    fl_seccomp_apply((enum fl_seccomp_part)part) < 0)
				_exit(2);
		for (int i = 0; i < NPROBES; i++)
			v[i] = probe(i);
		if (write(p[1], v, sizeof(v)) != (ssize_t)sizeof(v))
			_exit(3);
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(read(p[0], out, sizeof(int) * NPROBES), (ssize_t)sizeof(int) * NPROBES);
	close(p[0]);
	{
		int st;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
}

static void test_parts_stack_to_the_whole(void **state)
{
	char err[256];
	int none[NPROBES], all[NPROBES], early[NPROBES], late[NPROBES], both[NPROBES];

	(void)state;
	if (geteuid() != 0) {
		print_message("needs root (the early part is installed without no_new_privs)\n");
		fail();
	}
	assert_int_equal(fl_seccomp_prepare(err, sizeof(err)), 0);
	run_parts(0, 0, none);
	run_parts(1u << FL_SECCOMP_ALL, 1, all);
	run_parts(1u << FL_SECCOMP_EARLY, 0, early);
	run_parts(1u << FL_SECCOMP_LATE, 1, late);
	run_parts(1u << FL_SECCOMP_EARLY | 1u << FL_SECCOMP_LATE, 1, both);
	for (int i = 0; i < NPROBES; i++) {
		/* Without a filter, root gets past the permission check of every probe. */
		assert_int_equal(none[i], ALLOWED);
		assert_int_equal(all[i], DENIED);
		assert_int_equal(both[i], all[i]);
	}
	/* What an init still needs once it knows its instance is only in the late part. */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(early[i], ALLOWED);
		assert_int_equal(late[i], DENIED);
	}
	for (int i = 3; i < NPROBES; i++) {
		assert_int_equal(early[i], DENIED);
		assert_int_equal(late[i], ALLOWED);
	}
	/* The late part is a small fraction of the whole: that is the point of it. */
	assert_true(sc_progs[FL_SECCOMP_LATE].len * 4 < sc_progs[FL_SECCOMP_ALL].len);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parts_stack_to_the_whole),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
