/* pyzygote.c -- a Python interpreter with the template's runtime imported, held in a warm
 * sandbox until it becomes an instance.
 *
 * The Python template's command (python3 flint_runtime.py) spends most of its cold start
 * starting the interpreter and importing http.server and what it pulls in (~40 ms on this
 * machine, against ~3 ms for the sandbox). A warm sandbox of the Python kind starts
 * /usr/bin/python3 -I with the script below while it waits: the interpreter imports the
 * runtime's modules, then blocks on descriptor 3. When the sandbox is given an instance,
 * its init sends the instance (identity, directory, argv, environment) and the seccomp
 * program; the interpreter drops every privilege exactly as the init does for a native
 * command (bounding set, groups, gid, uid, ambient and inheritable capabilities,
 * no_new_privs, the filter), closes its exec-report descriptor (the spawner's STARTED)
 * and runs the function's own flint_runtime.py as __main__. Until then it is root inside
 * the sandbox's namespaces and has run nothing but the host's standard library.
 *
 * It does not fork: one interpreter becomes one instance, so each instance keeps
 * namespaces and cgroups of its own, as every other sandboxed instance does.
 */
#include "runtime/pyzygote.h"

#include "core/util.h"
#include "runtime/sandbox_linux.h"
#include "runtime/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ZY_PYTHON "/usr/bin/python3"

/* Descriptors in the interpreter: 3 the instance comes on, 4 the exec report. */
static const char zy_script[] =
    "import ctypes, json, os, struct, sys\n"
    "import io, time, traceback, socket, threading, email.utils, http.server, urllib.parse\n"
    "import socketserver, runpy\n"
    /* While it waits: the template's runtime compiled (a third of a start otherwise: the
     * first compile in a process costs ~4 ms here, a later one ~2 ms), kept by source, so
     * that a function whose flint_runtime.py is the template's own runs it without
     * compiling; and one thread started, as the first request's will be. */
    "CODE = {}\n"
    "def warm():\n"
    "    for path in sys.argv[1:]:\n"
    "        try:\n"
    "            with open(path, 'rb') as f:\n"
    "                src = f.read()\n"
    "            CODE[src] = compile(src, 'flint_runtime.py', 'exec')\n"
    "        except (OSError, SyntaxError, ValueError):\n"
    "            pass\n"
    "    t = threading.Thread(target=int)\n"
    "    t.start()\n"
    "    t.join()\n"
    "warm()\n"
    "def run(path):\n"
    "    with open(path, 'rb') as f:\n"
    "        src = f.read()\n"
    "    code = CODE.pop(src, None)\n"
    "    CODE.clear()\n"
    "    if code is None or path != 'flint_runtime.py' or not hasattr(runpy, '_run_module_code'):\n"
    "        runpy.run_path(path, run_name='__main__')\n"
    "        return\n"
    "    runpy._run_module_code(code, None, '__main__', pkg_name='', script_name=path)\n"
    "def main():\n"
    "    f = os.fdopen(3, 'rb', buffering=0)\n"
    "    def take(n):\n"
    "        b = b''\n"
    "        while len(b) < n:\n"
    "            c = f.read(n - len(b))\n"
    "            if not c:\n"
    "                os._exit(0)\n"
    "            b += c\n"
    "        return b\n"
    "    spec = json.loads(take(struct.unpack('=I', take(4))[0]))\n"
    "    prog = take(struct.unpack('=I', take(4))[0])\n"
    "    f.close()\n"
    "    os.setpriority(os.PRIO_PROCESS, 0, 0)\n"
    "    libc = ctypes.CDLL(None, use_errno=True)\n"
    "    def fail(what, err=None):\n"
    "        err = err or ctypes.get_errno() or 1\n"
    "        os.write(4, struct.pack('=ii120s', 3, err, what.encode()[:119]))\n"
    "        os._exit(127)\n"
    "    def prctl(what, *a):\n"
    "        a = list(a) + [0] * (4 - len(a))\n"
    "        return libc.prctl(what, *[ctypes.c_ulong(x) for x in a])\n"
    "    if spec['netns']:\n"
    "        fd = os.open('/proc/1/ns/net', os.O_RDONLY)\n"
    "        if libc.setns(fd, 0x40000000) < 0:\n"
    "            fail('join the function\\'s network namespace')\n"
    "        os.close(fd)\n"
    "    try:\n"
    "        os.setpgid(0, 0)\n"
    "    except OSError as e:\n"
    "        fail('start a process group', e.errno)\n"
    "    prctl(1, 9)\n"
    "    for cap in range(64):\n"
    "        if prctl(24, cap) < 0 and ctypes.get_errno() != 22:\n"
    "            fail('drop capabilities from the bounding set')\n"
    "    try:\n"
    "        os.setgroups([])\n"
    "        os.setresgid(spec['gid'], spec['gid'], spec['gid'])\n"
    "        os.setresuid(spec['uid'], spec['uid'], spec['uid'])\n"
    "    except OSError as e:\n"
    "        fail('switch to the function\\'s uid and gid', e.errno)\n"
    "    hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)\n"
    "    data = (ctypes.c_uint32 * 6)()\n"
    "    if libc.capset(hdr, data) < 0:\n"
    "        fail('clear the capabilities')\n"
    "    prctl(47, 4)\n"
    "    if prctl(38, 1) < 0:\n"
    "        fail('set no_new_privs')\n"
    "    prctl(1, 9)\n"
    "    class Prog(ctypes.Structure):\n"
    "        _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.c_void_p)]\n"
    "    buf = ctypes.create_string_buffer(prog, len(prog))\n"
    "    p = Prog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))\n"
    "    if libc.prctl(22, ctypes.c_ulong(2), ctypes.byref(p), ctypes.c_ulong(0),\n"
    "                  ctypes.c_ulong(0)) < 0:\n"
    "        fail('install the seccomp filter')\n"
    "    try:\n"
    "        os.chdir(spec['cwd'])\n"
    "    except OSError as e:\n"
    "        os.write(4, struct.pack('=ii120s', 1, e.errno, b''))\n"
    "        os._exit(127)\n"
    "    os.environ.clear()\n"
    "    os.environ.update(spec['env'])\n"
    "    sys.argv = spec['argv'][1:]\n"
    "    sys.path.insert(0, spec['cwd'])\n"
    "    extra = [p for p in spec['env'].get('PYTHONPATH', '').split(':') if p]\n"
    "    sys.path[1:1] = [os.path.join(spec['cwd'], p) for p in extra]\n"
    "    os.close(4)\n"
    "    run(sys.argv[0])\n"
    "main()\n";

int fl_pyzygote_fits(char *const argv[], char *const envp[])
{
	static const char *const ok[] = {
	    "PYTHONPATH=", "PYTHONUNBUFFERED=", "PYTHONDONTWRITEBYTECODE=", NULL};
	size_t i, k;

	if (!(argv[0] && argv[1] && !argv[2] &&
	      (strcmp(argv[0], "python3") == 0 || strcmp(argv[0], ZY_PYTHON) == 0) &&
	      strcmp(argv[1], "flint_runtime.py") == 0))
		return 0;
	for (i = 0; envp && envp[i]; i++) {
		if (strncmp(envp[i], "PYTHON", 6) != 0)
			continue;
		for (k = 0; ok[k] && strncmp(envp[i], ok[k], strlen(ok[k])) != 0; k++)
			;
		if (ok[k] == NULL)
			return 0; /* PYTHONHASHSEED, PYTHONOPTIMIZE, ...: the interpreter must start
				   */
	}
	return 1;
}

/* The templates' flint_runtime.py files, NULL-terminated. */
static char *zy_runtimes[FL_PYZYGOTE_RUNTIMES + 1];

void fl_pyzygote_runtime(const char *path)
{
	size_t i;

	for (i = 0; i < FL_PYZYGOTE_RUNTIMES && zy_runtimes[i]; i++)
		;
	if (i < FL_PYZYGOTE_RUNTIMES)
		zy_runtimes[i] = fl_xstrdup(path);
}

pid_t fl_pyzygote_start(int ep_w, int out_w, int err_w, int *spec_w)
{
	char *argv[6 + FL_PYZYGOTE_RUNTIMES + 1] = {"python3", "-I", "-u",
						    "-B",      "-c", (char *)zy_script};
	size_t k;

	for (k = 0; zy_runtimes[k]; k++)
		argv[6 + k] = zy_runtimes[k];
	argv[6 + k] = NULL;
	char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", NULL};
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	/* vfork: see sb_finish. Only dup2 and exec run in the child. */
	pid = vfork();
	if (pid == 0) {
		/* Each to its place: first all out of the way (any may sit on 0-4 now), then
		 * dup2 to a different number, which also clears close-on-exec. */
		int src[5] = {open("/dev/null", O_RDONLY | O_CLOEXEC), out_w, err_w, p[0], ep_w};
		int i, hi[5];
		fl_sandbox_default_signals();
		for (i = 0; i < 5; i++)
			if (src[i] < 0 || (hi[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 10)) < 0)
				_exit(127);
		for (i = 0; i < 5; i++)
			if (dup2(hi[i], i) < 0)
				_exit(127);
		execve(ZY_PYTHON, argv, envp);
		_exit(127);
	}
	close(p[0]);
	if (pid < 0) {
		close(p[1]);
		return -errno;
	}
	*spec_w = p[1];
	return pid;
}

int fl_pyzygote_give(int spec_w, uint32_t uid, uint32_t gid, const char *cwd, char *const argv[],
		     char *const envp[], int netns)
{
	json_t *j = json_object(), *a = json_array(), *e = json_object();
	const void *prog;
	size_t plen, i;
	uint32_t n;
	char *text;
	int r = 0;

	for (i = 0; argv[i]; i++)
		json_array_append_new(a, json_string(argv[i]));
	for (i = 0; envp[i]; i++) {
		const char *eq = strchr(envp[i], '=');
		if (eq)
			json_object_setn_new(e, envp[i], (size_t)(eq - envp[i]),
					     json_string(eq + 1));
	}
	json_object_set_new(j, "uid", json_integer(uid));
	json_object_set_new(j, "gid", json_integer(gid));
	json_object_set_new(j, "cwd", json_string(cwd ? cwd : "/tmp"));
	json_object_set_new(j, "netns", json_boolean(netns));
	json_object_set_new(j, "argv", a);
	json_object_set_new(j, "env", e);
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	prog = fl_seccomp_program(&plen);
	if (text == NULL || prog == NULL)
		r = -EINVAL;
	n = text ? (uint32_t)strlen(text) : 0;
	if (r == 0 && (r = fl_write_all(spec_w, &n, 4)) == 0)
		r = fl_write_all(spec_w, text, n);
	n = (uint32_t)plen;
	if (r == 0 && (r = fl_write_all(spec_w, &n, 4)) == 0)
		r = fl_write_all(spec_w, prog, plen);
	free(text);
	close(spec_w);
	return r;
}
