/* test_cgroup.c -- unit tests for cgroup detection, paths and limit files (on a fake tree). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "runtime/cgroup.c"

#include <ftw.h>

/* This host's layout: v1 controllers each on a mount, v2 alongside without controllers. */
static const char *mountinfo_v1 =
    "25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
    "33 25 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "34 33 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    "35 33 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
    "36 33 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "37 33 0:32 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "38 33 0:33 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n";

static const char *cgroup_v1 = "9:name=systemd:/\n"
			       "8:pids:/\n"
			       "4:memory:/process_api/abc\n"
			       "2:cpu,cpuacct:/\n"
			       "0::/\n";

static void test_parse_mountinfo(void **state)
{
	struct cg_mounts m;

	cg_parse_mountinfo(mountinfo_v1, &m);
	assert_true(m.v2.found);
	assert_string_equal(m.v2.point, "/sys/fs/cgroup/unified");
	assert_true(m.v1[FL_CG_MEMORY].found);
	assert_string_equal(m.v1[FL_CG_MEMORY].point, "/sys/fs/cgroup/memory");
	assert_string_equal(m.v1[FL_CG_MEMORY].root, "/");
	/* "cpu" is a whole word of "cpu,cpuacct"; "cpuset" does not count. */
	assert_string_equal(m.v1[FL_CG_CPU].point, "/sys/fs/cgroup/cpu,cpuacct");
	assert_string_equal(m.v1[FL_CG_PIDS].point, "/sys/fs/cgroup/pids");

	/* Escaped spaces in a mount point; a v2-only host; garbage lines are skipped. */
	cg_parse_mountinfo("garbage\n"
			   "1 2 0:3 /sub /mnt/cg\\040two rw - cgroup2 none rw,nsdelegate\n",
			   &m);
	assert_true(m.v2.found);
	assert_string_equal(m.v2.point, "/mnt/cg two");
	assert_string_equal(m.v2.root, "/sub");
	assert_false(m.v1[FL_CG_MEMORY].found);
	assert_false(m.v1[FL_CG_CPU].found);
}

static void test_own_path(void **state)
{
	char p[256];

	assert_int_equal(cg_own_path(cgroup_v1, "memory", p, sizeof(p)), 0);
	assert_string_equal(p, "/process_api/abc");
	assert_int_equal(cg_own_path(cgroup_v1, "cpu", p, sizeof(p)), 0);
	assert_string_equal(p, "/");
	assert_int_equal(cg_own_path(cgroup_v1, NULL, p, sizeof(p)), 0);
	assert_string_equal(p, "/");
	/* "cpuacct" must not match "cpu" alone, nor "name=systemd" anything. */
	assert_int_equal(cg_own_path("3:cpuacct:/x\n", "cpu", p, sizeof(p)), -ENOENT);
	assert_int_equal(cg_own_path("0::/user.slice/flint.service\n", "pids", p, sizeof(p)),
			 -ENOENT);
	assert_int_equal(cg_own_path("0::/user.slice/flint.service\n", NULL, p, sizeof(p)), 0);
	assert_string_equal(p, "/user.slice/flint.service");
}

static void test_parent_dir(void **state)
{
	struct cg_mount root = {1, "/sys/fs/cgroup/memory", "/"};
	struct cg_mount sub = {1, "/sys/fs/cgroup", "/docker/c1"};
	char d[256];

	assert_int_equal(cg_parent_dir(&root, "/process_api/abc", "t1", d, sizeof(d)), 0);
	assert_string_equal(d, "/sys/fs/cgroup/memory/process_api/abc/flint/t1");
	assert_int_equal(cg_parent_dir(&root, "/", "t1", d, sizeof(d)), 0);
	assert_string_equal(d, "/sys/fs/cgroup/memory/flint/t1");
	/* A container's mount shows only its own subtree: paths are relative to it. */
	assert_int_equal(cg_parent_dir(&sub, "/docker/c1/app", "t1", d, sizeof(d)), 0);
	assert_string_equal(d, "/sys/fs/cgroup/app/flint/t1");
	assert_int_equal(cg_parent_dir(&sub, "/docker/c1", "t1", d, sizeof(d)), 0);
	assert_string_equal(d, "/sys/fs/cgroup/flint/t1");
	assert_int_equal(cg_parent_dir(&sub, "/docker/c10", "t1", d, sizeof(d)), -EXDEV);
	assert_int_equal(cg_parent_dir(&root, "/x", "t1", d, 10), -ENAMETOOLONG);
}

static void test_limit_files(void **state)
{
	struct fl_cg_limits lim = {.memory = 64 << 20, .cpu_millis = 200, .pids = 32};
	struct fl_cg_limits none = {0};
	struct cg_kv kv[3];

	assert_int_equal(cg_limit_files(FL_CG_MEMORY, 0, 1, &lim, kv), 2);
	assert_string_equal(kv[0].file, "memory.limit_in_bytes");
	assert_string_equal(kv[0].value, "67108864");
	assert_string_equal(kv[1].file, "memory.memsw.limit_in_bytes");
	assert_string_equal(kv[1].value, "67108864");
	assert_int_equal(cg_limit_files(FL_CG_MEMORY, 0, 0, &lim, kv), 1);
	assert_int_equal(cg_limit_files(FL_CG_MEMORY, 1, 0, &lim, kv), 2);
	assert_string_equal(kv[0].file, "memory.max");
	assert_string_equal(kv[1].file, "memory.swap.max");
	assert_string_equal(kv[1].value, "0");

	assert_int_equal(cg_limit_files(FL_CG_CPU, 0, 0, &lim, kv), 2);
	assert_string_equal(kv[0].file, "cpu.cfs_period_us");
	assert_string_equal(kv[0].value, "100000");
	assert_string_equal(kv[1].file, "cpu.cfs_quota_us");
	assert_string_equal(kv[1].value, "20000");
	assert_int_equal(cg_limit_files(FL_CG_CPU, 1, 0, &lim, kv), 1);
	assert_string_equal(kv[0].file, "cpu.max");
	assert_string_equal(kv[0].value, "20000 100000");
	lim.cpu_millis = 5; /* below the kernel's 1 ms quota: raised to it */
	assert_int_equal(cg_limit_files(FL_CG_CPU, 1, 0, &lim, kv), 1);
	assert_string_equal(kv[0].value, "1000 100000");
	lim.cpu_millis = 2500;
	assert_int_equal(cg_limit_files(FL_CG_CPU, 0, 0, &lim, kv), 2);
	assert_string_equal(kv[1].value, "250000");

	assert_int_equal(cg_limit_files(FL_CG_PIDS, 0, 0, &lim, kv), 1);
	assert_string_equal(kv[0].file, "pids.max");
	assert_string_equal(kv[0].value, "32");

	for (int r = 0; r < FL_CG_NRES; r++)
		assert_int_equal(cg_limit_files((enum fl_cg_res)r, 0, 1, &none, kv), 0);
}

/* ---- detection against a fake tree ---- */

static char fake[64];

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static void touch(const char *dir, const char *file, const char *text)
{
	char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/* The content of dir/file; valid until the next call. */
static const char *text_of(const char *dir, const char *file)
{
	static char *last;

	free(last);
	last = cg_read(dir, file);
	assert_non_null(last);
	return last;
}

static int setup(void **state)
{
	strcpy(fake, "/tmp/flint-cgroup-XXXXXX");
	assert_non_null(mkdtemp(fake));
	return 0;
}

static int teardown(void **state)
{
	nftw(fake, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	memset(&cg_layout, 0, sizeof(cg_layout));
	return 0;
}

static void test_detect_v1(void **state)
{
	char mi[1024], dir[512], what[700], err[256];
	struct fl_cg_limits lim = {.memory = 8 << 20, .pids = 16};

	/* memory and pids are v1 hierarchies; cpu is on no mount at all; v2 has none. */
	snprintf(mi, sizeof(mi),
		 "1 0 0:1 / %s/v2 rw - cgroup2 cgroup2 rw\n"
		 "2 0 0:2 / %s/memory rw - cgroup cgroup rw,memory\n"
		 "3 0 0:3 / %s/pids rw - cgroup cgroup rw,pids\n",
		 fake, fake, fake);
	snprintf(dir, sizeof(dir), "%s/v2", fake);
	assert_int_equal(fl_mkdirs(dir, 0755), 0);
	touch(dir, "cgroup.controllers", "\n");
	/* A real cgroupfs fills new groups with control files; plant them in advance. */
	snprintf(dir, sizeof(dir), "%s/memory/me/flint/tag", fake);
	assert_int_equal(fl_mkdirs(dir, 0755), 0);
	touch(dir, "memory.limit_in_bytes", "");
	snprintf(dir, sizeof(dir), "%s/pids/flint/tag", fake);
	assert_int_equal(fl_mkdirs(dir, 0755), 0);
	touch(dir, "pids.max", "");

	cg_detect(mi, "4:memory:/me\n3:pids:/\n0::/\n", "tag");
	assert_true(cg_layout.res[FL_CG_MEMORY].enforced);
	assert_false(cg_layout.res[FL_CG_MEMORY].v2);
	snprintf(dir, sizeof(dir), "%s/memory/me/flint/tag", fake);
	assert_string_equal(cg_layout.res[FL_CG_MEMORY].dir, dir);
	assert_false(cg_layout.memsw);
	assert_true(cg_layout.res[FL_CG_PIDS].enforced);
	assert_false(cg_layout.res[FL_CG_CPU].enforced);
	fl_cgroup_describe(what, sizeof(what));
	assert_string_equal(what, "memory limited (cgroup v1, swap not limited); cpu NOT limited: "
				  "neither cgroup v2 nor a cgroup v1 hierarchy offers the cpu "
				  "controller; pids limited (cgroup v1)");

	/* A CPU limit cannot be had here: refused with the reason, nothing created. */
	lim.cpu_millis = 500;
	assert_int_equal(fl_cgroup_create(7, &lim, err, sizeof(err)), -ENOTSUP);
	assert_string_equal(err, "limits.cpu cannot be enforced on this host: neither cgroup v2 "
				 "nor a cgroup v1 hierarchy offers the cpu controller");
	snprintf(dir, sizeof(dir), "%s/memory/me/flint/tag/i-7", fake);
	assert_int_equal(access(dir, F_OK), -1);

	/* Memory and pids: one group per hierarchy, the limits written into it. A real
	 * cgroupfs creates the control files of a new group; the fake tree has them made
	 * in advance (writes never create files). */
	lim.cpu_millis = 0;
	snprintf(dir, sizeof(dir), "%s/memory/me/flint/tag/i-7", fake);
	assert_int_equal(mkdir(dir, 0755), 0);
	touch(dir, "memory.limit_in_bytes", "");
	touch(dir, "cgroup.procs", "");
	snprintf(dir, sizeof(dir), "%s/pids/flint/tag/i-7", fake);
	assert_int_equal(mkdir(dir, 0755), 0);
	touch(dir, "pids.max", "");
	touch(dir, "cgroup.procs", "");
	assert_int_equal(fl_cgroup_create(7, &lim, err, sizeof(err)), 0);
	assert_int_equal(fl_cgroup_attach(7, &lim, 4242, err, sizeof(err)), 0);
	snprintf(dir, sizeof(dir), "%s/memory/me/flint/tag/i-7", fake);
	assert_string_equal(text_of(dir, "memory.limit_in_bytes"), "8388608");
	assert_string_equal(text_of(dir, "cgroup.procs"), "4242");
	snprintf(dir, sizeof(dir), "%s/pids/flint/tag/i-7", fake);
	assert_string_equal(text_of(dir, "pids.max"), "16");
	assert_string_equal(text_of(dir, "cgroup.procs"), "4242");
	/* A limit file that cannot be written fails the create with the file named. */
	lim.memory = 16 << 20;
	snprintf(dir, sizeof(dir), "%s/pids/flint/tag/i-8", fake);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(fl_cgroup_create(8, &lim, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/memory/me/flint/tag/i-8/memory.limit_in_bytes to 16777216: "
				    "No such file or directory"));
}

static void test_detect_v2_preferred(void **state)
{
	char mi[1024], dir[512], what[700], *text;

	snprintf(mi, sizeof(mi),
		 "1 0 0:1 / %s/v2 rw - cgroup2 cgroup2 rw\n"
		 "2 0 0:2 / %s/memory rw - cgroup cgroup rw,memory\n",
		 fake, fake);
	snprintf(dir, sizeof(dir), "%s/v2/svc", fake);
	assert_int_equal(fl_mkdirs(dir, 0755), 0);
	touch(dir, "cgroup.controllers", "cpu memory pids\n");
	touch(dir, "cgroup.subtree_control", "memory pids\n");
	snprintf(dir, sizeof(dir), "%s/v2/svc/flint/t", fake);
	assert_int_equal(fl_mkdirs(dir, 0755), 0);
	touch(dir, "memory.max", "max\n");
	touch(dir, "pids.max", "max\n");
	touch(dir, "cpu.max", "max 100000\n");
	touch(dir, "cgroup.subtree_control", "");
	snprintf(dir, sizeof(dir), "%s/v2/svc/flint", fake);
	touch(dir, "cgroup.subtree_control", "");

	cg_detect(mi, "4:memory:/\n0::/svc\n", "t");
	for (int r = 0; r < FL_CG_NRES; r++) {
		assert_true(cg_layout.res[r].enforced);
		assert_true(cg_layout.res[r].v2);
	}
	/* cpu was missing from the daemon's subtree_control: it was enabled. */
	snprintf(dir, sizeof(dir), "%s/v2/svc", fake);
	text = cg_read(dir, "cgroup.subtree_control");
	assert_non_null(text);
	assert_memory_equal(text, "+cpu", 4);
	free(text);
	fl_cgroup_describe(what, sizeof(what));
	assert_string_equal(what, "memory limited (cgroup v2); cpu limited (cgroup v2); pids "
				  "limited (cgroup v2)");
	/* One v2 group serves every resource. */
	assert_true(cg_same_as_earlier(FL_CG_CPU));
	assert_true(cg_same_as_earlier(FL_CG_PIDS));
}

static void test_nothing_mounted(void **state)
{
	char what[700], err[256];
	struct fl_cg_limits lim = {.pids = 8};

	cg_detect("", "", "t");
	for (int r = 0; r < FL_CG_NRES; r++)
		assert_false(cg_layout.res[r].enforced);
	fl_cgroup_describe(what, sizeof(what));
	assert_non_null(strstr(what, "memory NOT limited"));
	/* No limit asked: nothing to do, not an error. */
	lim.pids = 0;
	assert_int_equal(fl_cgroup_create(1, &lim, err, sizeof(err)), 0);
	assert_int_equal(fl_cgroup_remove(1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_mountinfo),
	    cmocka_unit_test(test_own_path),
	    cmocka_unit_test(test_parent_dir),
	    cmocka_unit_test(test_limit_files),
	    cmocka_unit_test_setup_teardown(test_detect_v1, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_detect_v2_preferred, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_nothing_mounted, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
