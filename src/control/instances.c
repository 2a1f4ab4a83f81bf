/* instances.c -- functions and their instances on the control thread: start
 * through the spawner, readiness checks, logs, crash back-off, build steps,
 * draining, and the snapshot the gateway routes with. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "control/blobs.h"
#include "control/ctl.h"
#include "control/image.h"
#include "control/secrets.h"
#include "control/probe.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/sha256.h"
#include "core/util.h"
#include "events/async.h"
#include "gateway/gateway.h"
#include "net/listen.h"
#include "runtime/netns.h"
#include "runtime/pyzygote.h"
#include "runtime/sandbox_linux.h"

#include <limits.h>

#define STOP_GRACE_MS  10000
#define BACKOFF_MAX_MS 30000

static void inst_maybe_free(ctl_inst *in);
static void fn_maybe_free(fl_ctl *ctl, ctl_fn *fn);
static void inst_drain(fl_ctl *ctl, ctl_inst *in, const char *why);
static void port_mark(fl_ctl *ctl, int port, int used);

const char *ctl_fn_state_name(enum fn_state s)
{
	static const char *n[] = {"idle", "building", "ready", "backoff", "failed"};
	return n[s];
}

const char *ctl_inst_state_name(enum inst_state s)
{
	static const char *n[] = {"starting", "ready", "draining", "stopping"};
	return n[s];
}

void ctl_event(ctl_fn *fn, const char *fmt, ...)
{
	struct ctl_event *e = &fn->events[fn->next_event];
	va_list ap;

	e->time_ms = fl_wall_ms();
	va_start(ap, fmt);
	vsnprintf(e->what, sizeof(e->what), fmt, ap);
	va_end(ap);
	fn->next_event = (fn->next_event + 1) % CTL_EVENTS;
	if (fn->nevents < CTL_EVENTS)
		fn->nevents++;
	fl_info("fn", "%s: %s", fn->name, e->what);
}

ctl_fn *ctl_fn_find(fl_ctl *ctl, const char *name)
{
	fl_list *l;

	for (l = ctl->fns.next; l != &ctl->fns; l = l->next) {
		ctl_fn *fn = fl_container_of(l, ctl_fn, link);
		if (!fn->deleted && strcmp(fn->name, name) == 0)
			return fn;
	}
	return NULL;
}

static ctl_inst *inst_find(fl_ctl *ctl, uint64_t id)
{
	fl_list *l, *k;

	for (l = ctl->fns.next; l != &ctl->fns; l = l->next) {
		ctl_fn *fn = fl_container_of(l, ctl_fn, link);
		for (k = fn->insts.next; k != &fn->insts; k = k->next) {
			ctl_inst *in = fl_container_of(k, ctl_inst, link);
			if (in->id == id)
				return in;
		}
	}
	return NULL;
}

int ctl_count_instances(fl_ctl *ctl)
{
	fl_list *l, *k;
	int n = 0;

	for (l = ctl->fns.next; l != &ctl->fns; l = l->next) {
		ctl_fn *fn = fl_container_of(l, ctl_fn, link);
		for (k = fn->insts.next; k != &fn->insts; k = k->next)
			n += !fl_container_of(k, ctl_inst, link)->job;
	}
	return n;
}

/* ---- logs ---- */

static char log_buf[65536];

static void log_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
	(void)h;
	(void)s;
	b->base = log_buf;
	b->len = sizeof(log_buf);
}

static void pipe_closed(uv_handle_t *h)
{
	ctl_inst *in = h->data;

	in->handles--;
	inst_maybe_free(in);
}

static void on_log(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	ctl_inst *in = s->data;
	fl_ctl *ctl = ctl_of((uv_handle_t *)s);
	const char *stream = s == (uv_stream_t *)&in->out ? "stdout" : "stderr";

	if (n > 0) {
		fl_logstore_feed(ctl->logs, in->fn->name, in->id, stream, b->base, (size_t)n);
	} else if (n < 0) {
		fl_logstore_flush(ctl->logs, in->fn->name, in->id, stream);
		uv_close((uv_handle_t *)s, pipe_closed);
	}
}

static void open_pipe(ctl_inst *in, uv_pipe_t *p, int fd)
{
	fl_ctl *ctl = ctl_of((uv_handle_t *)&in->timer);

	if (fd < 0)
		return;
	uv_pipe_init(ctl->loop, p, 0);
	p->data = in;
	in->handles++;
	if (uv_pipe_open(p, fd) < 0) {
		close(fd);
		uv_close((uv_handle_t *)p, pipe_closed);
		return;
	}
	uv_read_start((uv_stream_t *)p, log_alloc, on_log);
}

/* ---- instance life ---- */

static void timer_closed(uv_handle_t *h)
{
	ctl_inst *in = h->data;

	in->handles--;
	inst_maybe_free(in);
}

static void inst_maybe_free(ctl_inst *in)
{
	ctl_fn *fn = in->fn;
	fl_ctl *ctl;

	if (in->probe) {
		fl_probe_cancel(in->probe);
		in->probe = NULL;
	}
	if (!in->exited || in->handles > 1)
		return;
	if (in->handles == 1) {
		/* Only the timer is left: close it, come back when it is closed. */
		if (!uv_is_closing((uv_handle_t *)&in->timer))
			uv_close((uv_handle_t *)&in->timer, timer_closed);
		return;
	}
	ctl = ctl_of((uv_handle_t *)&fn->backoff_timer);
	fl_list_remove(&in->link);
	if (in->pub) {
		atomic_store(&in->pub->gone, 1);
		fl_inst_unref(in->pub);
	}
	if (in->netns >= 0)
		close(in->netns);
	ctl_probe_fast_remove(in);
	if (in->port > 0)
		port_mark(ctl, in->port, 0);
	free(in);
	fn_maybe_free(ctl, fn);
}

static void backoff_done(uv_timer_t *t)
{
	ctl_fn *fn = t->data;
	fl_ctl *ctl = ctl_of((uv_handle_t *)t);

	if (fn->state == F_BACKOFF) {
		fn->state = F_IDLE;
		ctl_publish_later(ctl);
		ctl_scale(ctl, fn);
	}
}

/* A start failed: record why, back off exponentially. */
void ctl_start_failed(fl_ctl *ctl, ctl_inst *in, const char *why)
{
	ctl_fn *fn = in->fn;
	uint64_t delay;
	int shift;

	fn->failures++;
	shift = fn->failures - 1 < 8 ? fn->failures - 1 : 8;
	delay = 200ull << shift;
	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	snprintf(fn->reason, sizeof(fn->reason), "%s", why);
	fn->state = F_BACKOFF;
	fn->backoff_until_ms = fl_now_ms() + delay;
	uv_timer_start(&fn->backoff_timer, backoff_done, delay, 0);
	fl_logstore_note(ctl->logs, fn->name, "%s; retrying in %llu ms", why,
			 (unsigned long long)delay);
	ctl_event(fn, "start failed (%d in a row): %s", fn->failures, why);
	ctl_publish_later(ctl);
}

static void inst_signal(fl_ctl *ctl, ctl_inst *in, int sig)
{
	/* After shutdown the spawner is gone (and has killed everything). */
	if (!in->exited && in->pid > 0 && ctl->sp)
		fl_spawner_signal(ctl->sp, in->id, sig);
}

static void on_stop_grace(uv_timer_t *t)
{
	ctl_inst *in = t->data;

	inst_signal(ctl_of((uv_handle_t *)t), in, SIGKILL);
}

/* Sends SIGTERM now and SIGKILL after the grace period. */
void ctl_inst_stop(fl_ctl *ctl, ctl_inst *in)
{
	if (in->state == I_STOPPING)
		return;
	in->state = I_STOPPING;
	if (in->pub)
		atomic_store(&in->pub->gone, 1);
	uv_timer_stop(&in->timer);
	ctl_probe_fast_remove(in);
	if (in->exited)
		return;
	if (in->pid <= 0) {
		/* Not started yet: it will be stopped when the spawner reports it. */
		return;
	}
	inst_signal(ctl, in, SIGTERM);
	uv_timer_start(&in->timer, on_stop_grace, STOP_GRACE_MS, 0);
	ctl_publish_later(ctl);
}

static void inst_drain(fl_ctl *ctl, ctl_inst *in, const char *why)
{
	if (in->state == I_DRAINING || in->state == I_STOPPING)
		return;
	if (in->state == I_STARTING || in->pub == NULL) {
		ctl_inst_stop(ctl, in);
		return;
	}
	in->state = I_DRAINING;
	atomic_store(&in->pub->gone, 1);
	ctl_event(in->fn, "draining i-%llu: %s", (unsigned long long)in->id, why);
	ctl_publish_later(ctl);
	/* The tick stops it once its requests are done (see ctl_scale). */
}

void ctl_inst_ready(fl_ctl *ctl, ctl_inst *in)
{
	ctl_fn *fn = in->fn;
	fl_list *l, *next;
	uint64_t us;

	uv_timer_stop(&in->timer);
	ctl_probe_fast_remove(in);
	in->state = I_READY;
	in->ready_ns = fl_now_ns();
	in->ready_ms = fl_wall_ms();
	us = (in->ready_ns - in->spawn_ns) / 1000;
	fl_hist_observe(&fn->stats->cold, us);
	atomic_fetch_add(&fn->stats->cold_starts, 1);
	if (in->exec_ns) {
		uint64_t spawn_us = (in->exec_ns - in->spawn_ns) / 1000;
		fl_hist_observe(&fn->stats->cold_queue, in->queued_us);
		fl_hist_observe(&fn->stats->cold_spawn,
				spawn_us > in->queued_us ? spawn_us - in->queued_us : 0);
		fl_hist_observe(&fn->stats->cold_ready, (in->ready_ns - in->exec_ns) / 1000);
	}
	if (in->warm)
		atomic_fetch_add(&fn->stats->warm_starts, 1);
	if (in->zygote)
		atomic_fetch_add(&fn->stats->zygote_starts, 1);
	in->pub = fl_inst_new(in->id, in->port, fn->spec->concurrency);
	in->pub->reserved = in->reserved;
	if (in->netns >= 0)
		in->pub->netns = fcntl(in->netns, F_DUPFD_CLOEXEC, 0);
	fn->failures = 0;
	fn->reason[0] = '\0';
	fn->state = F_READY;
	ctl_event(fn, "instance i-%llu ready on port %d in %.1f ms%s", (unsigned long long)in->id,
		  in->port, (double)us / 1000,
		  in->zygote ? " (Python zygote)"
		  : in->warm ? " (warm sandbox)"
			     : "");
	/* A new version is ready: older instances drain. */
	for (l = fn->insts.next; l != &fn->insts; l = next) {
		ctl_inst *o = fl_container_of(l, ctl_inst, link);
		next = l->next;
		if (o != in && !o->job && o->stale && o->state == I_READY)
			inst_drain(ctl, o, "replaced by a new version");
	}
	ctl_publish_now(ctl); /* held requests are waiting for exactly this */
	if (fn->spec->liveness_interval_ms) {
		/* While ready, probe_delay_ms counts consecutive liveness failures. */
		in->probe_delay_ms = 0;
		uv_timer_start(&in->timer, ctl_live_now, fn->spec->liveness_interval_ms, 0);
	}
}

static char *subst_port(const char *arg, int port)
{
	fl_buf b = FL_BUF_INIT;
	const char *p = arg;

	while (*p) {
		if (strncmp(p, "${PORT}", 7) == 0) {
			fl_buf_printf(&b, "%d", port);
			p += 7;
		} else if (strncmp(p, "$PORT", 5) == 0 &&
			   !((p[5] >= 'A' && p[5] <= 'Z') || (p[5] >= 'a' && p[5] <= 'z') ||
			     (p[5] >= '0' && p[5] <= '9') || p[5] == '_')) {
			fl_buf_printf(&b, "%d", port);
			p += 5;
		} else {
			fl_buf_append(&b, p, 1);
			p++;
		}
	}
	return fl_buf_steal(&b);
}

/* The ports of flint's own instances, one bit each over --ports (none checked outside). */
static int port_taken(fl_ctl *ctl, int port)
{
	unsigned i = (unsigned)(port - ctl->port_lo);

	return ctl->ports_used && port >= ctl->port_lo && port <= ctl->port_hi &&
	       (ctl->ports_used[i / 8] >> (i % 8) & 1);
}

static void port_mark(fl_ctl *ctl, int port, int used)
{
	unsigned i = (unsigned)(port - ctl->port_lo);

	if (port < ctl->port_lo || port > ctl->port_hi)
		return;
	if (ctl->ports_used == NULL)
		ctl->ports_used = fl_xcalloc((size_t)(ctl->port_hi - ctl->port_lo) / 8 + 1, 1);
	if (used)
		ctl->ports_used[i / 8] |= (uint8_t)(1u << (i % 8));
	else
		ctl->ports_used[i / 8] &= (uint8_t) ~(1u << (i % 8));
}

static void free_strv(char **v)
{
	int i;

	for (i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* Whether the NULL-terminated list v (may be NULL) sets the variable of the entry kv. */
static int env_sets(char *const *v, const char *kv)
{
	size_t kl = strcspn(kv, "=");

	for (; v && *v; v++)
		if (strncmp(*v, kv, kl) == 0 && (*v)[kl] == '=')
			return 1;
	return 0;
}

/* Environment: flint's base, then the image's, then the spec's (each wins over the ones
 * before), then PORT. */
static char **make_env(fl_ctl *ctl, ctl_fn *fn, int port)
{
	char **img = fn->image ? fn->image->env : NULL;
	int nb = 0, ni = 0, i, n = 0;
	char **env;

	while (ctl->base_env[nb])
		nb++;
	while (img && img[ni])
		ni++;
	env = fl_xcalloc((size_t)(nb + ni + fn->spec->nenv + 3), sizeof(char *));
	for (i = 0; i < nb; i++)
		if (!env_sets(fn->spec->env, ctl->base_env[i]) && !env_sets(img, ctl->base_env[i]))
			env[n++] = fl_xstrdup(ctl->base_env[i]);
	for (i = 0; i < ni; i++)
		if (!env_sets(fn->spec->env, img[i]) && strncmp(img[i], "PORT=", 5) != 0)
			env[n++] = fl_xstrdup(img[i]);
	for (i = 0; i < fn->spec->nenv; i++)
		env[n++] = fl_xstrdup(fn->spec->env[i]);
	if (port > 0) {
		env[n] = fl_xmalloc(32);
		snprintf(env[n++], 32, "PORT=%d", port);
	}
	return env;
}

/* The root file system of the function's own (a host directory), or NULL. */
static const char *fn_rootfs(ctl_fn *fn)
{
	return fn->image ? fn->image->rootfs : fn->spec->rootfs;
}

/* Where an instance starts: its uploaded code, else the spec's workdir; in a tree of the
 * function's own, else the image's WorkingDir, else "/". */
static const char *fn_cwd(ctl_fn *fn)
{
	if (fn->codedir)
		return fn->codedir;
	if (fn->spec->workdir)
		return fn->spec->workdir;
	if (fn->image && fn->image->workdir)
		return fn->image->workdir;
	return fn_rootfs(fn) ? "/" : NULL;
}

/* Points the sandbox at the function's own tree, if it has one. cwd is then a path inside
 * the tree, except for uploaded code, which is bound at its own (resolved) path. */
static void sb_rootfs(ctl_fn *fn, struct fl_sandbox *sb, const char **cwd, char *rootbuf,
		      char *codebuf)
{
	const char *root = fn_rootfs(fn);

	if (root == NULL)
		return;
	sb->rootfs = realpath(root, rootbuf) ? rootbuf : root;
	if (fn->codedir) {
		sb->code = realpath(fn->codedir, codebuf) ? codebuf : fn->codedir;
		*cwd = sb->code;
	}
}

static ctl_inst *inst_new(fl_ctl *ctl, ctl_fn *fn)
{
	ctl_inst *in = fl_xcalloc(1, sizeof(*in));

	in->fn = fn;
	in->id = ctl->next_inst_id++;
	uv_timer_init(ctl->loop, &in->timer);
	in->timer.data = in;
	in->handles = 1;
	in->netns = -1;
	in->diag = -1;
	fl_list_insert_tail(&fn->insts, &in->link);
	return in;
}

static void inst_start(fl_ctl *ctl, ctl_fn *fn, int reserved)
{
	ctl_inst *in;
	char **argv, **envp, **secrets = NULL, cwdbuf[PATH_MAX], hide[PATH_MAX];
	char rootbuf[PATH_MAX], codebuf[PATH_MAX], **cmd = fn->spec->argv, **imgcmd = NULL;
	const char *cwd = fn_cwd(fn);
	struct fl_sandbox sb = {0};
	int port = -1, tries, i, r, argc = 0;

	for (tries = 0; tries < 100; tries++) {
		port = fl_pick_port(ctl->port_lo, ctl->port_hi, &ctl->port_cursor);
		if (port < 0 || !port_taken(ctl, port))
			break;
	}
	if (port < 0) {
		snprintf(fn->reason, sizeof(fn->reason), "no free port in %d-%d for a new instance",
			 ctl->port_lo, ctl->port_hi);
		ctl_event(fn, "%s", fn->reason);
		return;
	}

	in = inst_new(ctl, fn);
	in->reserved = reserved;
	in->port = port;
	port_mark(ctl, port, 1);
	in->state = I_STARTING;
	in->spawn_ns = fl_now_ns();
	in->started_ms = fl_wall_ms();
	/* One network namespace per function, made when its first instance starts and kept
	 * while the function stays isolated; each instance holds its own reference. */
	if (fn->spec->net_isolated && fn->netns < 0) {
		r = fl_netns_create();
		if (r < 0) {
			char why[200];
			snprintf(why, sizeof(why),
				 "cannot create the function's network namespace: %s",
				 strerror(-r));
			in->exited = 1;
			ctl_start_failed(ctl, in, why);
			inst_maybe_free(in);
			return;
		}
		fn->netns = r;
	}
	if (fn->spec->net_isolated)
		in->netns = fcntl(fn->netns, F_DUPFD_CLOEXEC, 0);
	/* The spec's command replaces the image's Entrypoint and Cmd (ctl_fn_apply made sure
	 * there is one or the other). */
	if (cmd == NULL && fn->image)
		cmd = imgcmd = fl_image_command(fn->image);
	while (cmd && cmd[argc])
		argc++;
	argv = fl_xcalloc((size_t)argc + 1, sizeof(char *));
	for (i = 0; i < argc; i++)
		argv[i] = subst_port(cmd[i], port);
	free_strv(imgcmd);
	envp = make_env(ctl, fn, port);
	if (fn->spec->sandbox) {
		/* The sandbox binds and hides by path: absolute, without symbolic links. */
		if (fn_rootfs(fn))
			sb_rootfs(fn, &sb, &cwd, rootbuf, codebuf);
		else if (cwd && realpath(cwd, cwdbuf))
			cwd = cwdbuf;
		sb = (struct fl_sandbox){.name = fn->name,
					 .uid = fl_sandbox_uid(fn->name),
					 .gid = fl_sandbox_uid(fn->name),
					 .memory = fn->spec->memory,
					 .cpu_millis = fn->spec->cpu_millis,
					 .pids = fn->spec->pids,
					 .hide = realpath(ctl->data_dir, hide),
					 .rootfs = sb.rootfs,
					 .code = sb.code,
					 .netns = in->netns > 0 ? in->netns : 0,
					 .zygote = !sb.rootfs && fl_pyzygote_fits(argv, envp)};
		for (i = 0; i < fn->spec->nenv && strncmp(fn->spec->env[i], "HOME=", 5) != 0; i++)
			;
		fl_sandbox_home(envp, i < fn->spec->nenv);
		if (fn->spec->nsecrets && sb.hide) {
			/* Copied into the instance's /run/secrets by the sandbox (secrets.h). */
			secrets = fl_xcalloc((size_t)fn->spec->nsecrets + 1, sizeof(char *));
			for (i = 0; i < fn->spec->nsecrets; i++) {
				char d[PATH_MAX + 80];
				fl_secret_dir(sb.hide, fn->spec->secrets[i], d, sizeof(d));
				secrets[i] = fl_xstrdup(d);
			}
			sb.secrets = (const char *const *)secrets;
		}
	}
	r = fl_spawner_spawn(ctl->sp, in->id, cwd, argv, envp, fn->spec->sandbox ? &sb : NULL);
	free_strv(argv);
	free_strv(envp);
	free_strv(secrets);
	if (r < 0) {
		char why[200];
		snprintf(why, sizeof(why), "cannot ask the spawner for an instance: %s",
			 strerror(-r));
		in->exited = 1;
		ctl_start_failed(ctl, in, why);
		inst_maybe_free(in);
		return;
	}
	/* The start deadline is checked by the probe loop (ctl_probe_now). */
	ctl_publish_later(ctl);
}

/* ---- build steps ---- */

static void build_marker(ctl_fn *fn, char *out, size_t outlen)
{
	char hex[65];

	fl_sha256_hex(fn->spec->build, strlen(fn->spec->build), hex);
	snprintf(out, outlen, "%s/.flint-built-%.16s", fn->codedir, hex);
}

static void build_start(fl_ctl *ctl, ctl_fn *fn)
{
	ctl_inst *in = inst_new(ctl, fn);
	char *argv[] = {"/bin/sh", "-c", fn->spec->build, NULL};
	char **envp = make_env(ctl, fn, 0), cwd[PATH_MAX], hide[PATH_MAX];
	char rootbuf[PATH_MAX], codebuf[PATH_MAX];
	const char *dir = realpath(fn->codedir, cwd) ? cwd : fn->codedir;
	struct fl_sandbox sb = {0};
	int r, i;

	in->job = 1;
	in->state = I_STARTING;
	in->spawn_ns = fl_now_ns();
	fn->state = F_BUILDING;
	fn->building = 1;
	ctl_event(fn, "building: %s", fn->spec->build);
	fl_logstore_note(ctl->logs, fn->name, "build: %s", fn->spec->build);
	if (fn->spec->sandbox) {
		/* Sandboxed like the instances, but the code directory is writable (and given
		 * to the function's uid): the build writes its output there. */
		sb = (struct fl_sandbox){.name = fn->name,
					 .uid = fl_sandbox_uid(fn->name),
					 .gid = fl_sandbox_uid(fn->name),
					 .memory = fn->spec->memory,
					 .cpu_millis = fn->spec->cpu_millis,
					 .pids = fn->spec->pids,
					 .hide = realpath(ctl->data_dir, hide),
					 .writable_cwd = 1};
		/* In a tree of the function's own, the build uses the tree's tools. */
		sb_rootfs(fn, &sb, &dir, rootbuf, codebuf);
		for (i = 0; i < fn->spec->nenv && strncmp(fn->spec->env[i], "HOME=", 5) != 0; i++)
			;
		fl_sandbox_home(envp, i < fn->spec->nenv);
	}
	r = fl_spawner_spawn(ctl->sp, in->id, dir, argv, envp, fn->spec->sandbox ? &sb : NULL);
	free_strv(envp);
	if (r < 0) {
		fn->state = F_FAILED;
		fn->building = 0;
		snprintf(fn->reason, sizeof(fn->reason), "cannot start the build: %s",
			 strerror(-r));
		in->exited = 1;
		inst_maybe_free(in);
	}
	ctl_publish_later(ctl);
}

static void build_done(fl_ctl *ctl, ctl_inst *in, int status, const char *failmsg)
{
	ctl_fn *fn = in->fn;
	char marker[4096];
	int fd;

	fn->building = 0;
	if (failmsg == NULL && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		build_marker(fn, marker, sizeof(marker));
		fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0)
			close(fd);
		fn->state = F_IDLE;
		ctl_event(fn, "build succeeded in %.1f ms",
			  (double)(fl_now_ns() - in->spawn_ns) / 1e6);
		ctl_publish_later(ctl);
		ctl_scale(ctl, fn);
		return;
	}
	fn->state = F_FAILED;
	if (failmsg)
		snprintf(fn->reason, sizeof(fn->reason), "build could not start: %s", failmsg);
	else if (WIFEXITED(status))
		snprintf(fn->reason, sizeof(fn->reason),
			 "build step failed with exit status %d (see flint logs %s)",
			 WEXITSTATUS(status), fn->name);
	else
		snprintf(fn->reason, sizeof(fn->reason), "build step was killed by signal %d",
			 WTERMSIG(status));
	ctl_event(fn, "%s", fn->reason);
	fl_logstore_note(ctl->logs, fn->name, "%s", fn->reason);
	ctl_publish_later(ctl);
}

/* ---- spawner events ---- */

static void describe_status(int status, char *out, size_t outlen)
{
	if (WIFEXITED(status))
		snprintf(out, outlen, "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, outlen, "signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(out, outlen, "status %d", status);
}

static void on_exited(fl_ctl *ctl, ctl_inst *in, int status)
{
	ctl_fn *fn = in->fn;
	char st[96], why[256];

	in->exited = 1;
	uv_timer_stop(&in->timer);
	ctl_probe_fast_remove(in);
	if (in->job) {
		build_done(ctl, in, status, NULL);
	} else if (in->state == I_STARTING && !fn->deleted) {
		describe_status(status, st, sizeof(st));
		snprintf(why, sizeof(why), "instance i-%llu exited with %s before it was ready",
			 (unsigned long long)in->id, st);
		ctl_start_failed(ctl, in, why);
	} else if (in->state == I_READY ||
		   (in->failed_stop && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM))) {
		/* Also an instance being replaced because it failed, when it ended on
		 * its own (killed by the kernel, crashed) rather than by our SIGTERM. */
		describe_status(status, st, sizeof(st));
		ctl_event(fn, "instance i-%llu exited unexpectedly with %s",
			  (unsigned long long)in->id, st);
		fl_logstore_note(ctl->logs, fn->name, "instance i-%llu exited unexpectedly with %s",
				 (unsigned long long)in->id, st);
	}
	if (in->pub)
		atomic_store(&in->pub->gone, 1);
	in->state = I_STOPPING;
	ctl_publish_later(ctl);
	inst_maybe_free(in);
	if (!fn->deleted && !ctl->stopping)
		ctl_scale(ctl, fn); /* replace it if it is still wanted */
}

void ctl_spawner_events(fl_ctl *ctl)
{
	struct fl_spawn_event ev;
	int r;

	if (ctl->sp == NULL)
		return; /* shut down */

	while ((r = fl_spawner_read(ctl->sp, &ev)) == 1) {
		ctl_inst *in = inst_find(ctl, ev.id);
		if (in == NULL) {
			if (ev.type == FL_SPAWN_STARTED) {
				close(ev.out_fd);
				close(ev.err_fd);
			}
			continue;
		}
		switch (ev.type) {
		case FL_SPAWN_STARTED:
			in->pid = ev.pid;
			in->warm = ev.warm;
			in->zygote = ev.zygote;
			in->exec_ns = fl_now_ns();
			in->queued_us = ev.queued_us;
			open_pipe(in, &in->out, ev.out_fd);
			open_pipe(in, &in->err, ev.err_fd);
			if (in->state == I_STOPPING) {
				inst_signal(ctl, in, SIGTERM);
				uv_timer_start(&in->timer, on_stop_grace, STOP_GRACE_MS, 0);
			} else if (!in->job) {
				in->probe_delay_ms = 0;
				ctl_probe_now(&in->timer);
			}
			break;
		case FL_SPAWN_FAILED:
			in->exited = 1;
			if (in->job) {
				build_done(ctl, in, 0, ev.msg);
			} else {
				char why[320];
				snprintf(why, sizeof(why), "instance i-%llu could not start: %s",
					 (unsigned long long)in->id, ev.msg);
				ctl_start_failed(ctl, in, why);
			}
			inst_maybe_free(in);
			break;
		case FL_SPAWN_EXITED:
			on_exited(ctl, in, ev.status);
			break;
		}
	}
	if (r == -EPIPE && !ctl->stopping) {
		fl_error("serve", "the spawner process is gone; stopping");
		uv_poll_stop(&ctl->sp_poll);
		uv_kill(getpid(), SIGTERM);
	}
}

/* ---- scaling ---- */

static void scale_fn(fl_ctl *ctl, ctl_fn *fn)
{
	struct fl_as_input in;
	fl_list *l, *next;
	int active = 0, ready = 0, reserved = 0, overloaded = 0;
	uint64_t now_ms = fl_now_ms();
	uint32_t want;
	char why[200] = "";

	/* Shutting down: a timer that fires in the last loop iteration must not
	 * start anything (the spawner may already be gone). */
	if (ctl->stopping)
		return;

	/* Draining instances whose requests are done are stopped. */
	for (l = fn->insts.next; l != &fn->insts; l = next) {
		ctl_inst *i = fl_container_of(l, ctl_inst, link);
		next = l->next;
		if (i->job)
			continue;
		if (i->state == I_DRAINING &&
		    (atomic_load(&i->pub->inflight) == 0 ||
		     fl_now_ns() - i->ready_ns > fn->spec->timeout_ms * 1000000ull * 4))
			ctl_inst_stop(ctl, i);
		if (i->state == I_READY && i->pub && atomic_load(&i->pub->failed)) {
			/* The gateway saw it refuse a connection or cut a request: it is
			 * dying or broken. Replace it; its exit, when it comes, still says
			 * why (on_exited). */
			ctl_event(
			    fn,
			    "instance i-%llu failed a request (refused or cut it); replacing it",
			    (unsigned long long)i->id);
			i->failed_stop = 1;
			ctl_inst_stop(ctl, i);
			continue;
		}
		if (i->stale)
			continue;
		if (i->reserved) {
			/* Reserved instances are kept apart: always there, never scaled. */
			reserved += i->state == I_STARTING || i->state == I_READY;
			continue;
		}
		if (i->state == I_STARTING || i->state == I_READY)
			active++;
		if (i->state == I_READY) {
			ready++;
			overloaded += atomic_load(&i->pub->overloaded_until_ms) > now_ms;
		}
	}
	memset(&in, 0, sizeof(in));
	in.min = fn->spec->min;
	in.max = fn->spec->max;
	in.target = fn->spec->target;
	in.concurrency = fn->spec->concurrency;
	in.idle_timeout_ms = fn->spec->idle_timeout_ms;
	in.load = (double)(atomic_load(&fn->stats->inflight) + atomic_load(&fn->stats->queued));
	in.requests = atomic_load(&fn->stats->requests);
	in.ready = (uint32_t)ready;
	in.overloaded = (uint32_t)overloaded;
	in.now_ms = now_ms;
	want = fl_autoscale(&fn->as, &in, why, sizeof(why));
	if (why[0])
		ctl_event(fn, "%s", why);
	fn->want = want;
	if (want == 0) {
		/* Nothing new will replace the old version's instances: let them go. */
		for (l = fn->insts.next; l != &fn->insts; l = next) {
			ctl_inst *i = fl_container_of(l, ctl_inst, link);
			next = l->next;
			if (i->stale && i->state == I_READY)
				inst_drain(ctl, i, "replaced by a new version");
		}
	}
	if (fn->state == F_BUILDING || fn->state == F_FAILED || fn->state == F_BACKOFF)
		return;
	while ((uint32_t)reserved < fn->spec->reserved) {
		inst_start(ctl, fn, 1);
		reserved++;
		if (fn->state == F_BACKOFF)
			return;
	}
	while ((uint32_t)reserved > fn->spec->reserved) {
		ctl_inst *victim = NULL;
		for (l = fn->insts.prev; l != &fn->insts && victim == NULL; l = l->prev) {
			ctl_inst *i = fl_container_of(l, ctl_inst, link);
			if (i->reserved && !i->stale &&
			    (i->state == I_STARTING || i->state == I_READY))
				victim = i;
		}
		if (victim == NULL)
			break;
		inst_drain(ctl, victim, "fewer reserved instances");
		reserved--;
	}
	while ((uint32_t)active < want) {
		inst_start(ctl, fn, 0);
		active++;
		if (fn->state == F_BACKOFF)
			return;
	}
	/* Too many: stop starting ones first, then the least busy ready ones. */
	while ((uint32_t)active > want) {
		ctl_inst *victim = NULL;
		for (l = fn->insts.prev; l != &fn->insts; l = l->prev) {
			ctl_inst *i = fl_container_of(l, ctl_inst, link);
			if (i->job || i->stale || i->reserved)
				continue;
			if (i->state == I_STARTING) {
				victim = i;
				break;
			}
			if (i->state == I_READY &&
			    (victim == NULL ||
			     atomic_load(&i->pub->inflight) < atomic_load(&victim->pub->inflight)))
				victim = i;
		}
		if (victim == NULL)
			break;
		if (victim->state == I_STARTING)
			ctl_inst_stop(ctl, victim);
		else
			inst_drain(ctl, victim, "scaling down");
		active--;
	}
}

/* A function the periodic evaluation can pass over: nothing running or wanted, and no work
 * since the last evaluation nor for the autoscaler's whole window (6 s), so that the
 * evaluation could only record one more zero and decide zero again. With thousands of
 * functions deployed and few running, evaluating every one every 100 ms was most of the
 * control thread's time. A request for a passed-over function reaches the control thread
 * as a need message, which evaluates it at once; its window then holds fewer zeros than
 * it would have, which can only make the first scale-up quicker. */
static int fn_at_rest(const ctl_fn *fn, uint64_t now_ms)
{
	return fl_list_empty(&fn->insts) && fn->spec->min == 0 && fn->spec->reserved == 0 &&
	       fn->as.desired == 0 && fn->as.last_active_ms &&
	       now_ms - fn->as.last_active_ms >= FL_AS_STABLE_SAMPLES * 100 &&
	       atomic_load(&fn->stats->inflight) == 0 && atomic_load(&fn->stats->queued) == 0 &&
	       atomic_load(&fn->stats->requests) == fn->as.last_requests;
}

static void fn_set_active(fl_ctl *ctl, ctl_fn *fn, int on)
{
	if (fn->active == on)
		return;
	fn->active = on;
	if (on)
		fl_list_insert_tail(&ctl->active, &fn->active_link);
	else
		fl_list_remove(&fn->active_link);
}

void ctl_scale(fl_ctl *ctl, ctl_fn *fn)
{
	fl_list *l, *next;
	uint64_t now_ms = fl_now_ms();

	if (fn) {
		fn_set_active(ctl, fn, !fn->deleted);
		scale_fn(ctl, fn);
		return;
	}
	/* The periodic evaluation visits active functions only: a function at rest leaves
	 * the list, and any evaluation of it alone (a request's need message, a deploy, an
	 * instance's end, a scale call) puts it back. */
	for (l = ctl->active.next; l != &ctl->active; l = next) {
		ctl_fn *f = fl_container_of(l, ctl_fn, active_link);
		next = l->next;
		if (f->deleted || fn_at_rest(f, now_ms))
			fn_set_active(ctl, f, 0);
		else
			scale_fn(ctl, f);
	}
}

/* ---- functions ---- */

int ctl_python_functions(fl_ctl *ctl)
{
	fl_list *l;

	for (l = ctl->fns.next; l != &ctl->fns; l = l->next) {
		ctl_fn *fn = fl_container_of(l, ctl_fn, link);
		if (fn->spec->sandbox && !fn->spec->rootfs && !fn->spec->image && fn->spec->argv &&
		    fl_pyzygote_fits(fn->spec->argv, fn->spec->env))
			return 1;
	}
	return 0;
}

static void fn_free_now(ctl_fn *fn)
{
	ctl_route_drop(fn);
	if (fn->netns >= 0)
		close(fn->netns);
	fl_fnstats_unref(fn->stats);
	fl_spec_free(fn->spec);
	free(fn->spec_json);
	free(fn->codedir);
	fl_image_free(fn->image);
	free(fn->name);
	free(fn);
}

static void backoff_timer_closed(uv_handle_t *h)
{
	fn_free_now(h->data);
}

static void fn_maybe_free(fl_ctl *ctl, ctl_fn *fn)
{
	if (!fn->deleted || !fl_list_empty(&fn->insts))
		return;
	fl_list_remove(&fn->link);
	ctl->nfns--;
	fn_set_active(ctl, fn, 0);
	uv_close((uv_handle_t *)&fn->backoff_timer, backoff_timer_closed);
}

/* ctl->fns is kept in name order: the snapshot is built in that order (publish.c). */
static void fn_insert_sorted(fl_ctl *ctl, ctl_fn *fn)
{
	fl_list *l;

	for (l = ctl->fns.next; l != &ctl->fns; l = l->next)
		if (strcmp(fl_container_of(l, ctl_fn, link)->name, fn->name) > 0)
			break;
	fl_list_insert_tail(l, &fn->link); /* before l */
	ctl->nfns++;
}

int ctl_fn_apply(fl_ctl *ctl, fl_spec *spec, const char *spec_json, uint64_t version,
		 uint64_t created_ms, uint64_t updated_ms, char *err, size_t errlen)
{
	ctl_fn *fn = ctl_fn_find(ctl, spec->name);
	char *codedir = NULL;
	fl_image *image = NULL;
	fl_list *l;

	if (spec->code && fl_blob_unpack(ctl->data_dir, spec->code, &codedir, err, errlen) < 0) {
		fl_spec_free(spec);
		return -EINVAL;
	}
	/* The spec checked these on deploy; a later start (or a rollback) checks again. */
	if (spec->rootfs && !fl_is_dir(spec->rootfs)) {
		snprintf(err, errlen, "rootfs: %s is not a directory on this host", spec->rootfs);
		goto refuse;
	}
	if (spec->image && fl_image_open(ctl->data_dir, spec->image, &image, err, errlen) < 0)
		goto refuse;
	if (image && spec->argv == NULL && image->entrypoint[0] == NULL && image->cmd[0] == NULL) {
		snprintf(err, errlen,
			 "command: is required: the image %s has neither Entrypoint nor Cmd",
			 spec->image);
		goto refuse;
	}
	if (fn == NULL) {
		fn = fl_xcalloc(1, sizeof(*fn));
		fn->name = fl_xstrdup(spec->name);
		fn->stats = fl_fnstats_new();
		fn->netns = -1;
		fl_list_init(&fn->insts);
		uv_timer_init(ctl->loop, &fn->backoff_timer);
		fn->backoff_timer.data = fn;
		fn->created_ms = created_ms;
		fn_insert_sorted(ctl, fn);
		ctl_event(fn, "created at version %llu", (unsigned long long)version);
	} else {
		/* A new version: running instances keep serving until it is ready. */
		fl_spec_free(fn->spec);
		free(fn->spec_json);
		free(fn->codedir);
		fl_image_free(fn->image);
		for (l = fn->insts.next; l != &fn->insts; l = l->next) {
			ctl_inst *i = fl_container_of(l, ctl_inst, link);
			i->stale = 1; /* runs the old version */
			if (i->state == I_STARTING && !i->job)
				ctl_inst_stop(ctl, i);
		}
		uv_timer_stop(&fn->backoff_timer);
		fn->failures = 0;
		fn->reason[0] = '\0';
		ctl_event(fn, "updated to version %llu", (unsigned long long)version);
	}
	/* Instances of the old version keep their own reference to the namespace. */
	if (!spec->net_isolated && fn->netns >= 0) {
		close(fn->netns);
		fn->netns = -1;
	}
	ctl_route_drop(fn);
	fn->spec = spec;
	fn->spec_json = fl_xstrdup(spec_json);
	fn->codedir = codedir;
	fn->image = image;
	fn->version = version;
	fn->updated_ms = updated_ms;
	fn->state = F_IDLE;
	if (fn->codedir && spec->build) {
		char marker[4096];
		build_marker(fn, marker, sizeof(marker));
		if (access(marker, F_OK) != 0)
			build_start(ctl, fn);
	}
	/* With no new instance to wait for, old ones go now. */
	if (fn->state != F_BUILDING) {
		int ready_old = 0;
		for (l = fn->insts.next; l != &fn->insts; l = l->next) {
			ctl_inst *i = fl_container_of(l, ctl_inst, link);
			ready_old += i->stale && i->state == I_READY;
		}
		if (ready_old)
			fn->state = F_READY;
	}
	if (!strchr(spec->name, '@'))
		fl_async_apply_spec(ctl->async, spec); /* triggers belong to the function, not
							  to older versions run beside it */
	else
		fn->hidden = 1;
	ctl_publish_later(ctl);
	ctl_scale(ctl, fn);
	return 0;
refuse:
	fl_image_free(image);
	free(codedir);
	fl_spec_free(spec);
	return -EINVAL;
}

void ctl_fn_remove(fl_ctl *ctl, ctl_fn *fn)
{
	fl_list *l, *next;

	fn->deleted = 1;
	uv_timer_stop(&fn->backoff_timer);
	for (l = fn->insts.next; l != &fn->insts; l = next) {
		ctl_inst *i = fl_container_of(l, ctl_inst, link);
		next = l->next;
		if (!i->job)
			ctl_inst_stop(ctl, i);
	}
	fl_logstore_remove(ctl->logs, fn->name);
	if (!fn->hidden) {
		fl_async_set_function(ctl->async, fn->name, NULL);
		ctl_traffic_reset(ctl, fn);
	}
	ctl_publish_now(ctl);
	fn_maybe_free(ctl, fn);
}

void ctl_stop_all(fl_ctl *ctl)
{
	/* No more spawner events: the last loop pass must not read a stopped spawner. */
	uv_poll_stop(&ctl->sp_poll);
	/* The spawner sends SIGTERM to every process group, waits, then SIGKILLs. */
	fl_spawner_stop(ctl->sp, 5000);
	ctl->sp = NULL;
}
