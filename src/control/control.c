/* control.c -- `flint serve`: start-up order, the control thread's loop,
 * messages from the gateway threads, signals and a draining shutdown. */
#include "control/control.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control/blobs.h"
#include "control/ctl.h"
#include "core/log.h"
#include "core/util.h"
#include "events/async.h"
#include "gateway/gateway.h"
#include "obs/metrics.h"
#include "runtime/pyzygote.h"
#include "runtime/sandbox_linux.h"

static fl_ctl g_ctl;

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: flint serve [--data DIR] [--listen ADDR] [--admin ADDR] [--threads N]\n"
	    "                   [--domain DOMAIN] [--ports LO-HI] [--log-level LEVEL]\n"
	    "                   [--header-timeout DUR] [--idle-timeout DUR] [--warm-pool N]\n"
	    "                   [--readiness kernel|connect]\n"
	    "\n"
	    "Runs the platform: the gateway (default 127.0.0.1:8080), the admin API\n"
	    "(default 127.0.0.1:8081) and the functions' instances.\n"
	    "\n"
	    "  --data DIR       state directory (default: $FLINT_DATA, else /var/lib/flint as\n"
	    "                   root, else ~/.local/share/flint)\n"
	    "  --listen ADDR    gateway address, HOST:PORT\n"
	    "  --admin ADDR     admin API address, HOST:PORT (keep it on loopback)\n"
	    "  --threads N      gateway threads (default: one per core)\n"
	    "  --domain DOMAIN  route Host NAME.DOMAIN to function NAME (default: localhost)\n"
	    "  --ports LO-HI    loopback ports handed to instances (default 20000-29999)\n"
	    "  --log-level L    debug, info, warn or error (default info)\n"
	    "  --header-timeout DUR  a request head must arrive within DUR of its first byte\n"
	    "                   (default 10s; 408 and close after)\n"
	    "  --idle-timeout DUR    keep-alive connections idle this long are closed (default "
	    "60s)\n"
	    "  --warm-pool N    keep up to N sandboxes built ahead of need for fast cold starts\n"
	    "                   (default 8; the number kept follows the start rate; 0: none)\n"
	    "  --readiness HOW  how a starting instance is seen listening: kernel (ask it, the\n"
	    "                   default) or connect (connect to it; the fallback when the kernel\n"
	    "                   cannot say)\n");
}

static char *default_data_dir(void)
{
	const char *e = getenv("FLINT_DATA");
	const char *home = getenv("HOME");
	char buf[4096];

	if (e && *e)
		return fl_xstrdup(e);
	if (geteuid() == 0 || home == NULL)
		return fl_xstrdup("/var/lib/flint");
	snprintf(buf, sizeof(buf), "%s/.local/share/flint", home);
	return fl_xstrdup(buf);
}

/* Reads DATA/token, or creates it (0600) with 32 random bytes in hex. */
static int load_token(fl_ctl *ctl, char *err, size_t errlen)
{
	char path[4096];
	unsigned char raw[32];
	size_t len;
	char *t;
	int fd, i;

	snprintf(path, sizeof(path), "%s/token", ctl->data_dir);
	t = fl_read_file(path, &len);
	if (t) {
		while (len && (t[len - 1] == '\n' || t[len - 1] == '\r'))
			t[--len] = '\0';
		if (len < 16 || len > 64) {
			snprintf(err, errlen, "%s does not hold a token of 16 to 64 characters",
				 path);
			free(t);
			return -EINVAL;
		}
		memcpy(ctl->token, t, len + 1);
		free(t);
		return 0;
	}
	if (fl_random_bytes(raw, sizeof(raw)) < 0) {
		snprintf(err, errlen, "cannot get random bytes for the admin token");
		return -EIO;
	}
	for (i = 0; i < 32; i++)
		sprintf(ctl->token + 2 * i, "%02x", raw[i]);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || fl_write_all(fd, ctl->token, 64) < 0 || fl_write_all(fd, "\n", 1) < 0) {
		snprintf(err, errlen, "cannot write the admin token to %s: %s", path,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -EIO;
	}
	close(fd);
	fl_info("serve", "wrote a new admin token to %s", path);
	return 0;
}

/* Grows this process's descriptor table now, while it has one thread: the kernel grows
 * it by doubling as descriptors are taken, and in a process with threads each growth waits
 * for an RCU grace period (expand_fdtable), which took 10-16 ms here: the thread taking
 * the 64th, 128th, 256th... descriptor (an accept, the pipes of a new instance) stalls that
 * long. The table never shrinks. Up to 65,536 entries (512 KiB of kernel memory); the
 * spawner forked next gets a table sized to what is open, not this. */
static void presize_fd_table(rlim_t limit)
{
	int n = limit < 65536 ? (int)limit : 65536, tmp = -1, src = 2, fd;

	if (n < 2)
		return;
	if (fcntl(src, F_GETFD) < 0)
		src = tmp = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (src < 0)
		return;
	fd = fcntl(src, F_DUPFD_CLOEXEC, n - 1);
	if (fd >= 0)
		close(fd);
	if (tmp >= 0)
		close(tmp);
}

/* ---- messages from gateway threads ---- */

static void need_cb(void *ctx, const char *fn, size_t len)
{
	fl_ctl *ctl = ctx;
	struct ctl_msg *m = malloc(sizeof(*m));

	if (m == NULL)
		return;
	if (len >= sizeof(m->name))
		len = sizeof(m->name) - 1;
	memcpy(m->name, fn, len);
	m->name[len] = '\0';
	pthread_mutex_lock(&ctl->msg_mu);
	m->next = ctl->msgs;
	ctl->msgs = m;
	pthread_mutex_unlock(&ctl->msg_mu);
	uv_async_send(&ctl->msg_async);
}

/* The gateway's offload hook: async requests go to the async thread, the
 * OpenFaaS-compatible /system API to the control thread (copied, queued). */
static void offload_cb(void *ctx, const struct fl_offload_req *req)
{
	fl_ctl *ctl = ctx;
	struct ctl_sysreq *r;

	if (req->kind != FL_OFFLOAD_SYSTEM) {
		fl_async_offload(ctl->async, req);
		return;
	}
	r = fl_xcalloc(1, sizeof(*r));
	r->method = fl_xstrdup(req->method);
	r->target = fl_xstrdup(req->target);
	r->headers = fl_xstrndup(req->headers, req->headers_len);
	r->headers_len = req->headers_len;
	r->body = fl_xmalloc(req->body_len + 1);
	memcpy(r->body, req->body, req->body_len);
	r->body[req->body_len] = '\0';
	r->body_len = req->body_len;
	r->request_id = fl_xstrdup(req->request_id);
	r->cookie = req->cookie;
	r->thread = req->thread;
	pthread_mutex_lock(&ctl->msg_mu);
	r->next = ctl->sysreqs;
	ctl->sysreqs = r;
	pthread_mutex_unlock(&ctl->msg_mu);
	uv_async_send(&ctl->msg_async);
}

static void run_sysreqs(fl_ctl *ctl, struct ctl_sysreq *r)
{
	/* The list is newest first: answer in arrival order. */
	struct ctl_sysreq *rev = NULL, *next;

	for (; r; r = next) {
		next = r->next;
		r->next = rev;
		rev = r;
	}
	for (r = rev; r; r = next) {
		next = r->next;
		if (ctl->stopping) {
			static const char msg[] = "{\"error\": \"flint is shutting down\"}\n";
			fl_gateway_offload_done(r->thread, r->cookie, 503, "application/json", msg,
						sizeof(msg) - 1, NULL);
		} else {
			ctl_openfaas(ctl, r);
		}
		free(r->method);
		free(r->target);
		free(r->headers);
		free(r->body);
		free(r->request_id);
		free(r);
	}
}

static void on_msgs(uv_async_t *a)
{
	fl_ctl *ctl = a->data;
	struct ctl_msg *m, *next;
	struct ctl_sysreq *sys;

	pthread_mutex_lock(&ctl->msg_mu);
	m = ctl->msgs;
	ctl->msgs = NULL;
	sys = ctl->sysreqs;
	ctl->sysreqs = NULL;
	pthread_mutex_unlock(&ctl->msg_mu);
	run_sysreqs(ctl, sys);
	for (; m; m = next) {
		ctl_fn *fn = ctl->stopping ? NULL : ctl_fn_find(ctl, m->name);
		next = m->next;
		/* Several messages for one function cost one evaluation each: cheap. */
		if (fn)
			ctl_scale(ctl, fn);
		free(m);
	}
}

static void on_tick(uv_timer_t *t)
{
	fl_ctl *ctl = t->data;

	if (!ctl->stopping)
		ctl_scale(ctl, NULL);
}

static void on_spawner(uv_poll_t *p, int status, int events)
{
	fl_ctl *ctl = p->data;

	(void)status;
	(void)events;
	ctl_spawner_events(ctl);
}

/* ---- shutdown ---- */

static void finish_stop(fl_ctl *ctl)
{
	uv_timer_stop(&ctl->stop_timer);
	uv_timer_stop(&ctl->tick);
	/* Attempts under way are cut short: they stay queued for the next start. */
	fl_async_stop(ctl->async, 0);
	ctl->async = NULL;
	fl_gateway_stop();
	ctl_stop_all(ctl);
	uv_stop(ctl->loop);
}

static void on_stop_timer(uv_timer_t *t)
{
	fl_ctl *ctl = t->data;
	long active = fl_gateway_active();

	if (active == 0 || fl_now_ms() >= ctl->stop_deadline_ms) {
		if (active)
			fl_warn("serve",
				"%ld requests still under way at the drain deadline; closing them",
				active);
		finish_stop(ctl);
	}
}

static void on_signal(uv_signal_t *s, int sig)
{
	fl_ctl *ctl = s->data;
	uint64_t longest = 0;
	fl_list *l;

	if (ctl->stopping) {
		fl_warn("serve", "second signal: stopping now");
		finish_stop(ctl);
		return;
	}
	ctl->stopping = 1;
	/* Drain: stop accepting, let requests under way finish (up to the longest
	 * function timeout, at most 60 s), then stop the instances. */
	for (l = ctl->fns.next; l != &ctl->fns; l = l->next) {
		ctl_fn *fn = fl_container_of(l, ctl_fn, link);
		if (fn->spec->timeout_ms > longest)
			longest = fn->spec->timeout_ms;
	}
	if (longest > 60000)
		longest = 60000;
	ctl->stop_deadline_ms = fl_now_ms() + longest;
	fl_info("serve", "%s: draining %ld requests under way, then stopping",
		sig == SIGTERM ? "SIGTERM" : "SIGINT", fl_gateway_active());
	fl_gateway_drain();
	fl_async_drain(ctl->async);
	if (ctl->httpd) {
		fl_httpd_close(ctl->httpd);
		ctl->httpd = NULL;
	}
	uv_timer_start(&ctl->stop_timer, on_stop_timer, 0, 20);
}

/* ---- start-up ---- */

static void load_one(void *ctx, const struct fl_registry_row *row)
{
	fl_ctl *ctl = ctx;
	json_error_t jerr;
	json_t *j = json_loads(row->spec_json, 0, &jerr);
	fl_spec *spec = NULL;
	char err[512];

	if (j == NULL || fl_spec_parse(j, &spec, err, sizeof(err)) < 0) {
		fl_error("serve", "stored spec of %s version %llu is invalid, skipping it: %s",
			 row->name, (unsigned long long)row->version, j ? err : jerr.text);
		json_decref(j);
		return;
	}
	json_decref(j);
	if (ctl_fn_apply(ctl, spec, row->spec_json, row->version, row->created_ms, row->updated_ms,
			 err, sizeof(err)) < 0)
		fl_error("serve", "cannot load function %s: %s", row->name, err);
}

static char **make_base_env(void)
{
	static const char *keep[] = {"PATH", "HOME", "LANG",   "LC_ALL",
				     "TZ",   "USER", "TMPDIR", NULL};
	char **env = fl_xcalloc(16, sizeof(char *));
	int i, n = 0;

	for (i = 0; keep[i]; i++) {
		const char *v = getenv(keep[i]);
		if (v) {
			size_t l = strlen(keep[i]) + strlen(v) + 2;
			env[n] = fl_xmalloc(l);
			snprintf(env[n++], l, "%s=%s", keep[i], v);
		}
	}
	if (getenv("PATH") == NULL)
		env[n++] = fl_xstrdup("PATH=/usr/local/bin:/usr/bin:/bin");
	/* Instance output reaches the logs line by line, not at exit. */
	env[n++] = fl_xstrdup("PYTHONUNBUFFERED=1");
	return env;
}

static int parse_ports(const char *s, int *lo, int *hi)
{
	char *end;
	long a = strtol(s, &end, 10), b;

	if (*end != '-')
		return -EINVAL;
	b = strtol(end + 1, &end, 10);
	if (*end || a < 1024 || b > 65535 || a > b)
		return -EINVAL;
	*lo = (int)a;
	*hi = (int)b;
	return 0;
}

int fl_serve_main(int argc, char **argv)
{
	static const struct option longopts[] = {{"data", required_argument, 0, 'd'},
						 {"listen", required_argument, 0, 'l'},
						 {"admin", required_argument, 0, 'a'},
						 {"threads", required_argument, 0, 't'},
						 {"domain", required_argument, 0, 'D'},
						 {"ports", required_argument, 0, 'p'},
						 {"log-level", required_argument, 0, 'L'},
						 {"header-timeout", required_argument, 0, 'H'},
						 {"idle-timeout", required_argument, 0, 'I'},
						 {"warm-pool", required_argument, 0, 'W'},
						 {"readiness", required_argument, 0, 'R'},
						 {"help", no_argument, 0, 'h'},
						 {0, 0, 0, 0}};
	fl_ctl *ctl = &g_ctl;
	struct fl_gw_opts gopts;
	char err[512], rundir[4096], logdir[4096];
	int c, reaped = 0, r;
	fl_snapshot *empty;
	uint64_t header_ms = 10000, idle_ms = 60000;
	long warm_pool = 8;
	int readiness_connect = 0;
	char *end;

	memset(ctl, 0, sizeof(*ctl));
	ctl->listen = "127.0.0.1:8080";
	ctl->admin = "127.0.0.1:8081";
	ctl->domain = "localhost";
	ctl->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
	ctl->port_lo = 20000;
	ctl->port_hi = 29999;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			ctl->data_dir = fl_xstrdup(optarg);
			break;
		case 'l':
			ctl->listen = optarg;
			break;
		case 'a':
			ctl->admin = optarg;
			break;
		case 'D':
			ctl->domain = optarg;
			break;
		case 't':
			ctl->threads = atoi(optarg);
			if (ctl->threads < 1 || ctl->threads > FL_MAX_THREADS) {
				fprintf(stderr, "flint: --threads must be between 1 and %d\n",
					FL_MAX_THREADS);
				return 2;
			}
			break;
		case 'p':
			if (parse_ports(optarg, &ctl->port_lo, &ctl->port_hi) < 0) {
				fprintf(stderr, "flint: --ports must look like 20000-29999 (within "
						"1024-65535)\n");
				return 2;
			}
			break;
		case 'L':
			if (strcmp(optarg, "debug") == 0)
				fl_log_set_level(FL_LOG_DEBUG);
			else if (strcmp(optarg, "info") == 0)
				fl_log_set_level(FL_LOG_INFO);
			else if (strcmp(optarg, "warn") == 0)
				fl_log_set_level(FL_LOG_WARN);
			else if (strcmp(optarg, "error") == 0)
				fl_log_set_level(FL_LOG_ERROR);
			else {
				fprintf(stderr,
					"flint: --log-level must be debug, info, warn or error\n");
				return 2;
			}
			break;
		case 'H':
		case 'I':
			if (fl_parse_duration(optarg, c == 'H' ? &header_ms : &idle_ms) < 0 ||
			    (c == 'H' ? header_ms : idle_ms) < 100) {
				fprintf(stderr,
					"flint: --%s must be a duration of at least 100ms, "
					"e.g. 10s\n",
					c == 'H' ? "header-timeout" : "idle-timeout");
				return 2;
			}
			break;
		case 'W':
			warm_pool = strtol(optarg, &end, 10);
			if (end == optarg || *end != '\0' || warm_pool < 0 || warm_pool > 1024) {
				fprintf(stderr,
					"flint: --warm-pool must be a number from 0 to 1024\n");
				return 2;
			}
			break;
		case 'R':
			if (strcmp(optarg, "kernel") != 0 && strcmp(optarg, "connect") != 0) {
				fprintf(stderr, "flint: --readiness must be kernel or connect\n");
				return 2;
			}
			readiness_connect = strcmp(optarg, "connect") == 0;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "flint: serve takes no arguments, got '%s'\n", argv[optind]);
		return 2;
	}
	if (ctl->threads > FL_MAX_THREADS)
		ctl->threads = FL_MAX_THREADS;
	if (ctl->data_dir == NULL)
		ctl->data_dir = default_data_dir();
	if (fl_mkdirs(ctl->data_dir, 0700) < 0) {
		fprintf(stderr, "flint: cannot create the data directory %s: %s\n", ctl->data_dir,
			strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	{
		/* Every client and upstream connection is a descriptor: take all we may. */
		struct rlimit rl;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
			if (rl.rlim_cur < rl.rlim_max) {
				rl.rlim_cur = rl.rlim_max;
				if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
					getrlimit(RLIMIT_NOFILE, &rl);
			}
			presize_fd_table(rl.rlim_cur);
		}
	}

	/* What sandboxes can enforce is known before the spawner forks, which inherits it. */
	fl_sandbox_init(ctl->data_dir);
	{
		/* Python zygotes compile the templates' runtimes while they wait. */
		static const char *const kinds[] = {"python", "sh"};
		char tdir[PATH_MAX], why[PATH_MAX + 200], rt[PATH_MAX + 40];
		if (fl_templates_dir(tdir, sizeof(tdir), why, sizeof(why)) == 0)
			for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
				snprintf(rt, sizeof(rt), "%s/%s/flint_runtime.py", tdir, kinds[k]);
				if (access(rt, R_OK) == 0)
					fl_pyzygote_runtime(rt);
			}
	}
	/* The spawner first: it must be forked before any thread exists. */
	snprintf(rundir, sizeof(rundir), "%s/run", ctl->data_dir);
	r = fl_spawner_start(rundir, &ctl->sp, &reaped);
	if (r < 0) {
		fprintf(stderr, "flint: cannot start the spawner process: %s\n", strerror(-r));
		return 1;
	}
	if (reaped)
		fl_warn("serve", "stopped %d instance process groups left by an earlier run",
			reaped);

	if (load_token(ctl, err, sizeof(err)) < 0 ||
	    fl_registry_open(ctl->data_dir, &ctl->reg, err, sizeof(err)) < 0 ||
	    fl_blobs_init(ctl->data_dir) < 0) {
		fprintf(stderr, "flint: %s\n", err);
		goto fail;
	}
	snprintf(logdir, sizeof(logdir), "%s/logs", ctl->data_dir);
	ctl->logs = fl_logstore_new(logdir, 1000);
	if (ctl->logs == NULL) {
		fprintf(stderr, "flint: cannot open the log directory %s: %s\n", logdir,
			strerror(errno));
		goto fail;
	}
	ctl->base_env = make_base_env();
	ctl->started_ms = fl_wall_ms();
	{
		/* Start the port search at a random place: several daemons on one host
		 * would otherwise all hand out the bottom of the range first. */
		uint32_t rnd = 0;
		fl_random_bytes(&rnd, sizeof(rnd));
		ctl->port_cursor =
		    ctl->port_lo + (int)(rnd % (uint32_t)(ctl->port_hi - ctl->port_lo + 1));
	}
	ctl->next_inst_id = 1;
	fl_list_init(&ctl->fns);
	fl_list_init(&ctl->active);
	pthread_mutex_init(&ctl->msg_mu, NULL);
	ctl->loop = uv_default_loop();
	ctl->loop->data = ctl;
	uv_timer_init(ctl->loop, &ctl->publish_timer);
	ctl->publish_timer.data = ctl;
	uv_timer_init(ctl->loop, &ctl->tick);
	ctl->tick.data = ctl;
	uv_timer_init(ctl->loop, &ctl->stop_timer);
	ctl->stop_timer.data = ctl;
	uv_async_init(ctl->loop, &ctl->msg_async, on_msgs);
	ctl->msg_async.data = ctl;
	uv_poll_init(ctl->loop, &ctl->sp_poll, fl_spawner_fd(ctl->sp));
	ctl->sp_poll.data = ctl;
	uv_poll_start(&ctl->sp_poll, UV_READABLE, on_spawner);
	ctl_probe_init(ctl);
	if (readiness_connect)
		ctl->diag = -2; /* as if the kernel could not say (readiness.c) */

	/* The async queue before the functions load: they tell it their settings. */
	if (fl_async_start(ctl->data_dir, ctl->listen, &ctl->async, err, sizeof(err)) < 0) {
		fprintf(stderr, "flint: %s\n", err);
		goto fail;
	}
	/* An empty snapshot first, so the gateway always has one. */
	empty = fl_snapshot_new(++ctl->snap_gen);
	fl_snapshot_publish(empty);
	if (fl_registry_list(ctl->reg, load_one, ctl) < 0) {
		fprintf(stderr, "flint: cannot read the registry in %s\n", ctl->data_dir);
		goto fail;
	}
	ctl_traffic_load(ctl);
	/* Sandboxes built ahead of need hide the data directory like every other; with a
	 * function of the Python template deployed, a Python zygote is kept from the start. */
	if (warm_pool > 0 && geteuid() == 0 && realpath(ctl->data_dir, rundir) &&
	    fl_spawner_pool(ctl->sp, (unsigned)warm_pool, rundir, ctl_python_functions(ctl)) == 0)
		fl_info("sandbox", "keeping up to %ld sandboxes built ahead of need", warm_pool);
	ctl_publish_now(ctl);

	memset(&gopts, 0, sizeof(gopts));
	gopts.listen = ctl->listen;
	gopts.domain = ctl->domain;
	gopts.threads = ctl->threads;
	gopts.idle_timeout_ms = idle_ms;
	gopts.header_timeout_ms = header_ms;
	gopts.max_header = 32 * 1024;
	gopts.need = need_cb;
	gopts.ctx = ctl;
	gopts.offload = offload_cb;
	gopts.offload_ctx = ctl;
	fl_metrics_set_extra(fl_async_metrics_hook, ctl->async);
	if (fl_gateway_start(&gopts, err, sizeof(err)) < 0) {
		fprintf(stderr, "flint: %s\n", err);
		goto fail;
	}
	fl_async_resume(ctl->async);
	if (fl_httpd_start(ctl->loop, ctl->admin, 512u << 20, ctl_admin_handle, ctl, &ctl->httpd,
			   err, sizeof(err)) < 0) {
		fprintf(stderr, "flint: admin API: %s\n", err);
		fl_gateway_stop();
		goto fail;
	}
	uv_signal_init(ctl->loop, &ctl->sigterm);
	ctl->sigterm.data = ctl;
	uv_signal_start(&ctl->sigterm, on_signal, SIGTERM);
	uv_signal_init(ctl->loop, &ctl->sigint);
	ctl->sigint.data = ctl;
	uv_signal_start(&ctl->sigint, on_signal, SIGINT);
	uv_timer_start(&ctl->tick, on_tick, 100, 100);

	fl_info("serve", "flint serving: gateway http://%s, admin http://%s, data %s, %d threads",
		ctl->listen, ctl->admin, ctl->data_dir, ctl->threads);
	uv_run(ctl->loop, UV_RUN_DEFAULT);
	fl_info("serve", "stopped");
	fl_registry_close(ctl->reg);
	fl_logstore_free(ctl->logs);
	return 0;
fail:
	fl_spawner_stop(ctl->sp, 1000);
	return 1;
}
