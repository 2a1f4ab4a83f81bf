/* ctl.h -- the control thread's state, shared by control.c, instances.c and
 * admin_api.c; not for use outside src/control. Everything here is touched by
 * the control thread only. */
#ifndef FL_CTL_H
#define FL_CTL_H

#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "control/autoscaler.h"
#include "control/logstore.h"
#include "control/registry.h"
#include "control/spec.h"
#include "gateway/snapshot.h"
#include "net/httpd.h"
#include "runtime/spawner.h"

#define CTL_EVENTS 16

enum inst_state { I_STARTING, I_READY, I_DRAINING, I_STOPPING };
enum fn_state { F_IDLE, F_BUILDING, F_READY, F_BACKOFF, F_FAILED };

typedef struct ctl_fn ctl_fn;

typedef struct ctl_inst {
	fl_list link; /* fn->insts */
	ctl_fn *fn;
	uint64_t id;
	pid_t pid;
	int port;
	enum inst_state state;
	int job;    /* a build step, not an instance */
	int exited; /* the spawner reported its end */
	uint64_t spawn_ns, exec_ns, ready_ns, started_ms, ready_ms;
	uint32_t queued_us; /* of its start, waiting in the spawner */
	uv_pipe_t out, err; /* stdout/stderr, while open */
	int pipes_open;
	uv_timer_t timer; /* probe back-off, start deadline, stop grace */
	int handles;
	struct fl_probe *probe; /* readiness check under way */
	uint64_t probe_delay_ms;
	fl_inst *pub; /* what the gateway sees, while ready */
	int stale;
	int reserved;
	int failed_stop;   /* being replaced because the gateway saw it fail */
	int netns;	   /* its network namespace (a reference of its own), or -1: host's */
	int warm;	   /* it started in a sandbox built ahead of need */
	int zygote;	   /* ... holding a pre-imported Python interpreter */
	fl_list fast_link; /* ctl->probe_fast, while fast is set */
	int fast;
	unsigned fast_skip; /* ticks to let pass before its next connecting check */
	int diag;	    /* its own sock_diag socket (isolated network), or -1 */
	int diag_off;	    /* sock_diag cannot tell for it: connect */
	/* kept warm, the gateway's last choice (scale.reserved) */ /* runs an older version of
								       the function */
} ctl_inst;

struct ctl_event {
	uint64_t time_ms;
	char what[160];
};

struct ctl_fn {
	/* What publishing (publish.c) and the periodic evaluation read of every function,
	 * together at the start: with thousands of functions, each one they visit costs a
	 * cache miss or two. */
	fl_list link; /* ctl->fns */
	char *name;
	uint64_t version;
	fl_fnstats *stats;
	fl_list insts;
	struct fl_route_fn *route; /* as last published (a reference), or NULL (publish.c) */
	enum fn_state state;
	int failures; /* consecutive start failures */
	int deleted;
	int nsplit;
	fl_list active_link; /* ctl->active, while active is set (instances.c: ctl_scale) */
	int active;

	fl_spec *spec;		/* replaced only after ctl_route_drop (publish.c) */
	char *spec_json;	/* normalized */
	char *codedir;		/* unpacked code, or NULL */
	struct fl_image *image; /* spec->image resolved and unpacked (control/image.h), or NULL */
	uint64_t created_ms, updated_ms;
	char reason[256];
	uint64_t backoff_until_ms;
	uv_timer_t backoff_timer;
	struct fl_as_state as;
	uint32_t want; /* instances wanted now */
	int building;
	struct ctl_event events[CTL_EVENTS];
	int nevents, next_event;
	/* Traffic split (public functions): versions and weights (nsplit of them, above);
	 * 0 entries = all traffic to the current version. See versions.c. */
	struct ctl_split {
		uint64_t version;
		uint32_t weight;
	} split[8];
	int hidden; /* an older version run beside the current one: "NAME@vN" */
	int netns;  /* network: isolated: the instances' network namespace (made at the first
		       start, runtime/netns.h), else -1 */
};

struct ctl_msg {
	struct ctl_msg *next;
	char name[64];
};

/* A /system/... request from the gateway (the OpenFaaS-compatible API), copied
 * for the control thread; answered with fl_gateway_offload_done(thread, cookie). */
struct ctl_sysreq {
	struct ctl_sysreq *next;
	char *method, *target, *headers, *body, *request_id;
	size_t headers_len, body_len;
	void *cookie;
	int thread;
};

typedef struct fl_ctl {
	uv_loop_t *loop;
	char *data_dir;
	char *listen, *admin, *domain;
	int threads;
	char token[65];
	fl_registry *reg;
	fl_logstore *logs;
	fl_spawner *sp;
	uv_poll_t sp_poll;
	fl_httpd *httpd;
	fl_list fns;
	int nfns;	/* in fns, deleted ones included */
	fl_list active; /* the functions the periodic evaluation visits (not at rest) */
	uint64_t next_inst_id;
	uint64_t snap_gen;
	int snap_dirty;
	uv_timer_t publish_timer;
	uv_timer_t tick;
	uv_async_t msg_async;
	pthread_mutex_t msg_mu;
	struct ctl_msg *msgs;
	struct ctl_sysreq *sysreqs;
	uv_signal_t sigterm, sigint;
	int stopping;
	uint64_t stop_deadline_ms;
	uv_timer_t stop_timer;
	int port_cursor, port_lo, port_hi;
	uint8_t *ports_used; /* a bit per port of --ports held by an instance (instances.c) */
	uint64_t started_ms;
	char **base_env;
	struct fl_async *async; /* the async queue and triggers (events/async.h) */
	/* Readiness checks of instances in the first milliseconds of their start run every
	 * PROBE_TICK_US or more, finer than libuv's millisecond timers: a timerfd the loop
	 * polls, armed (probe_armed: its period in us) while probe_fast (ctl_inst.fast_link)
	 * is not empty. -1: no timerfd. diag: the host's sock_diag socket (-1: not opened
	 * yet, -2: unusable). */
	int probe_tfd;
	uv_poll_t probe_poll;
	fl_list probe_fast;
	unsigned probe_armed;
	int diag;
} fl_ctl;

/* instances.c */
ctl_fn *ctl_fn_find(fl_ctl *ctl, const char *name);
/* Applies a stored spec: creates the function or updates it in place (new
 * instances get the new spec; old ones drain). Takes ownership of spec. */
int ctl_fn_apply(fl_ctl *ctl, fl_spec *spec, const char *spec_json, uint64_t version,
		 uint64_t created_ms, uint64_t updated_ms, char *err, size_t errlen);
/* Removes a function: drains and stops its instances, forgets it. */
void ctl_fn_remove(fl_ctl *ctl, ctl_fn *fn);
/* Runs the autoscaler for one function (or all with NULL) and acts on it. */
void ctl_scale(fl_ctl *ctl, ctl_fn *fn);
/* The daemon of a handle on the control loop. */
static inline fl_ctl *ctl_of(uv_handle_t *h)
{
	return h->loop->data;
}

/* instances.c, for readiness.c: an instance passed its readiness check; a start failed
 * (recorded, backing off); stop an instance (SIGTERM, then SIGKILL after a grace). */
void ctl_inst_ready(fl_ctl *ctl, ctl_inst *in);
void ctl_start_failed(fl_ctl *ctl, ctl_inst *in, const char *why);
void ctl_inst_stop(fl_ctl *ctl, ctl_inst *in);

/* readiness.c */
/* Sets up the fine-grained readiness checks (ctl->probe_*). */
void ctl_probe_init(fl_ctl *ctl);
/* A readiness check of the starting instance whose timer is t, now (t->data is it);
 * rechecked on its schedule until ready or its start deadline. */
void ctl_probe_now(uv_timer_t *t);
/* A liveness check of the ready instance whose timer is t. */
void ctl_live_now(uv_timer_t *t);
/* Takes in off the fine-grained schedule (it is ready, stopping or gone). */
void ctl_probe_fast_remove(ctl_inst *in);
/* Handles everything the spawner reported. */
void ctl_spawner_events(fl_ctl *ctl);
/* Builds and publishes a snapshot soon (coalesced). */
void ctl_publish_later(fl_ctl *ctl);
void ctl_publish_now(fl_ctl *ctl);
/* Lets go of the route fn was last published with. */
void ctl_route_drop(ctl_fn *fn);
void ctl_event(ctl_fn *fn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *ctl_fn_state_name(enum fn_state s);
const char *ctl_inst_state_name(enum inst_state s);
/* Stops every instance (drain first when graceful). */
void ctl_stop_all(fl_ctl *ctl);
int ctl_count_instances(fl_ctl *ctl);
/* Whether a function of the Python template runs sandboxed (a Python zygote can run it). */
int ctl_python_functions(fl_ctl *ctl);

/* versions.c: traffic split between versions of a function. */
/* Sets fn's split (n entries; n == 0 clears it), starting "NAME@vN" functions
 * for versions other than the current one and removing those no longer used;
 * persists it in DATA/traffic/NAME.json. Returns 0, or -EINVAL/-ENOENT with a
 * sentence in err. */
int ctl_traffic_set(fl_ctl *ctl, ctl_fn *fn, const struct ctl_split *sp, int n, char *err,
		    size_t errlen);
/* The admin API's /versions (what 0), GET /traffic (1), PUT /traffic (2) and
 * /rollback (3) of fn. */
void ctl_versions_api(fl_ctl *ctl, ctl_fn *fn, fl_httpd_req *req, fl_httpd_resp *resp, int what);
/* Restores every saved split at start-up (after the functions are loaded). */
void ctl_traffic_load(fl_ctl *ctl);
/* A new version was deployed, or the function removed: drop its split. */
void ctl_traffic_reset(fl_ctl *ctl, ctl_fn *fn);

/* openfaas.c: answers one /system/... request (OpenFaaS's JSON field names). */
void ctl_openfaas(fl_ctl *ctl, const struct ctl_sysreq *r);

/* admin_api.c */
void ctl_admin_handle(void *ctx, fl_httpd_req *req, fl_httpd_resp *resp);
/* Validates the spec JSON j (whose "name", if any, the caller checked against name)
 * and stores it as a new version of function name, creating the function if needed;
 * the admin API's PUT and the OpenFaaS deploy share it. Returns 0 with *version and
 * *created set, or an HTTP status (400, 409, 500) with one sentence in err. j is not
 * modified or retained. */
int ctl_put_spec(fl_ctl *ctl, const char *name, const json_t *j, uint64_t *version, int *created,
		 char *err, size_t errlen);
/* Sets fn's instance bounds without a new version. Returns 0, or an HTTP status
 * (400 bad bounds, 500 store failed) with one sentence in err. */
int ctl_set_scale(fl_ctl *ctl, ctl_fn *fn, long long mn, long long mx, char *err, size_t errlen);

/* secrets_api.c: GET/PUT/DELETE /v1/secrets[/NAME] (values are never answered). */
void ctl_secrets_admin(fl_ctl *ctl, fl_httpd_req *req, fl_httpd_resp *resp);

#endif
