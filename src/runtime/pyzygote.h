/* pyzygote.h -- a pre-imported Python interpreter that becomes one instance of the
 * Python template (see pyzygote.c). Used by warm sandboxes of the Python kind. */
#ifndef FL_PYZYGOTE_H
#define FL_PYZYGOTE_H

#include <stdint.h>
#include <sys/types.h>

/* Whether a command is the Python template's runtime (python3 flint_runtime.py, nothing
 * more) with an environment a zygote honours (envp may be NULL): no PYTHON* variable that
 * only acts when the interpreter starts, other than PYTHONPATH (applied to sys.path),
 * PYTHONUNBUFFERED and PYTHONDONTWRITEBYTECODE (the zygote runs -u -B anyway). */
int fl_pyzygote_fits(char *const argv[], char *const envp[]);

/* Adds a template's own flint_runtime.py (up to FL_PYZYGOTE_RUNTIMES), which zygotes
 * compile while they wait: a function whose runtime is the same, byte for byte, skips
 * compiling it. Call before the spawner is forked. */
#define FL_PYZYGOTE_RUNTIMES 4
void fl_pyzygote_runtime(const char *path);

/* Starts the interpreter (in a warm sandbox's init, still privileged): stdin /dev/null,
 * stdout and stderr out_w and err_w, descriptor 4 ep_w (the exec report: closed once it
 * runs the function, or a struct fl_sandbox_err). *spec_w is where its instance goes
 * (fl_pyzygote_give). Returns its pid or -errno. */
pid_t fl_pyzygote_start(int ep_w, int out_w, int err_w, int *spec_w);

/* Gives the interpreter its instance: identity, working directory (NULL: /tmp), argv
 * (argv[1] is the script run as __main__), environment, and the prepared seccomp
 * program; with netns, it first joins the network namespace of PID 1 (the init, which
 * joined the function's). Closes spec_w. Returns 0 or -errno (-EPIPE: the interpreter is gone). */
int fl_pyzygote_give(int spec_w, uint32_t uid, uint32_t gid, const char *cwd, char *const argv[],
		     char *const envp[], int netns);

#endif
