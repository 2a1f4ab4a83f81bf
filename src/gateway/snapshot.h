/* snapshot.h -- the immutable routing snapshot the gateway threads read.
 *
 * The control thread is the only writer: it builds a whole new snapshot
 * (functions, their ready instances, their limits) and publishes it with one
 * pointer swap. Gateway threads pick it up when told (uv_async) and keep using
 * the old one for requests already under way, so no lock is taken per request.
 *
 * Two kinds of objects outlive a snapshot and are shared by reference:
 * fl_inst (one ready instance: address, in-flight counter, per-thread idle
 * upstream connections) and fl_fnstats (per-function counters that the
 * gateway threads bump, shared or in per-thread shards, and /metrics, the
 * admin API and the autoscaler read). */
#ifndef FL_SNAPSHOT_H
#define FL_SNAPSHOT_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define FL_MAX_THREADS 64

/* Latency histogram bucket upper bounds, in seconds (Prometheus "le"). */
#define FL_HIST_BUCKETS 14
extern const double fl_hist_bounds[FL_HIST_BUCKETS];

typedef struct fl_hist {
	atomic_uint_fast64_t count[FL_HIST_BUCKETS + 1]; /* last one is +Inf */
	atomic_uint_fast64_t sum_us;
} fl_hist;

/* What a reader sees of one histogram (or of several, summed). */
struct fl_hist_sum {
	uint64_t count[FL_HIST_BUCKETS + 1];
	uint64_t sum_us;
};

/* Adds one observation of `us` microseconds (any thread). */
void fl_hist_observe(fl_hist *h, uint64_t us);
/* The same for a histogram that only the calling thread writes (a shard's):
 * plain loads and stores, no locked instruction. */
void fl_hist_observe_own(fl_hist *h, uint64_t us);
/* Adds h's buckets and sum to out (which the caller zeroes first). */
void fl_hist_read(const fl_hist *h, struct fl_hist_sum *out);

/* Adds n to a counter that only the calling thread writes; readers on other
 * threads load it atomically, so they see a whole value, a moment late. */
static inline void fl_ctr_add_own(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* A list head for intrusive doubly linked lists. */
typedef struct fl_list {
	struct fl_list *prev, *next;
} fl_list;

static inline void fl_list_init(fl_list *l)
{
	l->prev = l->next = l;
}
static inline int fl_list_empty(const fl_list *l)
{
	return l->next == l;
}
static inline void fl_list_insert_tail(fl_list *head, fl_list *e)
{
	e->prev = head->prev;
	e->next = head;
	head->prev->next = e;
	head->prev = e;
}
static inline void fl_list_remove(fl_list *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->prev = e->next = e;
}
#define fl_container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

/* Per-function counters, alive as long as the function exists (and any
 * snapshot still points at it). Gateway threads update them; readers tolerate
 * counters that are a moment apart.
 *
 * Counters that are only ever incremented on the request path live in one
 * shard per gateway thread (fl_fnshard), so threads do not take turns owning
 * the same cache lines; readers sum the shards (fl_fnstats_read). Counters that
 * decisions read (in-flight, queued: the dispatcher, the queue bound, the
 * autoscaler; requests: the autoscaler's idle clock) stay shared and exact. */

/* Per-method counters of one function (gRPC methods, Thrift method names):
 * a small open-addressed table whose slots are claimed once, lock-free. */
#define FL_METHOD_SLOTS 32
struct fl_method_stat {
	_Atomic(char *) name;		/* claimed once (compare-and-swap), freed with the stats */
	atomic_uint_fast64_t count[17]; /* by gRPC status, or Thrift outcome 0..2 */
};

/* Status codes with a slot in a shard: the registered ones (and 499). Other
 * codes are counted in the shared fl_fnstats.codes_rare. */
#define FL_SHARD_CODES 64
extern const uint16_t fl_shard_codes[FL_SHARD_CODES];

/* One gateway thread's counters of one function. Written only by that thread
 * (fl_ctr_add_own, fl_hist_observe_own), read by any; a whole number of cache
 * lines, so no two threads' shards share one. */
typedef struct fl_fnshard {
	_Alignas(64) atomic_uint_fast64_t status[6]; /* by class: [1]=1xx ... [5]=5xx,
							[0]=no response */
	atomic_uint_fast64_t codes[FL_SHARD_CODES];  /* by code: fl_shard_codes[k] */
	fl_hist latency;			     /* request duration, head to response end */
	fl_hist stream;				     /* HTTP/2 stream duration */
	atomic_uint_fast64_t grpc[17];		     /* gRPC answers by grpc-status */
	atomic_uint_fast64_t thrift[3]; /* Thrift calls: reply, exception, flint's error */
} fl_fnshard;

typedef struct fl_fnstats {
	/* Shared, read for decisions: one cache line that every request touches
	 * anyway (in-flight goes up and down once per request). */
	_Alignas(64) atomic_long inflight; /* requests at instances now */
	atomic_uint_fast64_t requests;	   /* finished requests */
	atomic_long queued;		   /* requests held waiting for room now */
	atomic_int refs;
	/* Per gateway thread (fl_gw.idx), made by that thread on its first count
	 * for this function: a thread that never serves it costs a pointer. */
	_Atomic(fl_fnshard *) shards[FL_MAX_THREADS];
	/* Shared, rare: */
	atomic_uint_fast64_t codes_rare[600]; /* codes without a shard slot */
	atomic_uint_fast64_t cold_starts;     /* instances started (control) */
	fl_hist cold;			      /* instance spawn -> ready (control) */
	/* ... in phases: waiting in the spawner's queue, set-up to exec, exec to ready */
	fl_hist cold_queue, cold_spawn, cold_ready;
	atomic_uint_fast64_t warm_starts;   /* of cold_starts: in a warm sandbox ... */
	atomic_uint_fast64_t zygote_starts; /* ... holding a Python zygote */
	struct fl_method_stat methods[FL_METHOD_SLOTS];
	atomic_uint_fast64_t methods_other; /* calls of methods past the table's size */
	atomic_uint_fast64_t spills;	    /* requests that went to a reserved instance */
	atomic_uint_fast64_t overloads;	    /* overload signals from instances */
	atomic_uint_fast64_t held;	    /* requests that waited for room */
} fl_fnstats;

/* New counters (one reference), every one zero, no shard yet. Aborts when out
 * of memory, like fl_xcalloc. */
fl_fnstats *fl_fnstats_new(void);
/* Counts one call of method (counted string) with outcome code (0..16). */
void fl_fnstats_method(fl_fnstats *s, const char *method, size_t len, int code);
void fl_fnstats_ref(fl_fnstats *s);
/* Drops a reference; the last one frees the counters, their shards and method names. */
void fl_fnstats_unref(fl_fnstats *s);

/* fl_fnstats_shard's slow path: makes, publishes and returns the thread's shard. */
fl_fnshard *fl_fnstats__shard_new(fl_fnstats *s, int thread);
/* The counters of gateway thread `thread` (0..FL_MAX_THREADS-1) for s, made on
 * first use (aborts when out of memory). Only that thread may call this and
 * write what it returns, and only with fl_ctr_add_own/fl_hist_observe_own. */
static inline fl_fnshard *fl_fnstats_shard(fl_fnstats *s, int thread)
{
	fl_fnshard *sh = atomic_load_explicit(&s->shards[thread], memory_order_relaxed);

	return sh ? sh : fl_fnstats__shard_new(s, thread);
}
/* Counts one answer with status (100..599; anything else counts as 0, no
 * response) in sh, the calling thread's shard of s. */
void fl_fnstats_status(fl_fnstats *s, fl_fnshard *sh, int status);

/* Every thread's shard of s, summed: what /metrics and the admin API show. */
typedef struct fl_fncounts {
	uint64_t status[6];
	uint64_t codes[600]; /* by exact code, shard slots and codes_rare together */
	struct fl_hist_sum latency, stream;
	uint64_t grpc[17];
	uint64_t thrift[3];
} fl_fncounts;
/* Fills out (every field) from s's shards, each a moment apart from the others. */
void fl_fnstats_read(const fl_fnstats *s, fl_fncounts *out);

/* One upstream-capable instance. The control thread creates it when the
 * instance is ready and sets `gone` when it must get no new requests. */
typedef struct fl_inst {
	atomic_int refs;
	uint64_t id;
	int port;
	uint32_t concurrency;	 /* hard cap (0 = none), copied from the spec */
	struct sockaddr_in addr; /* 127.0.0.1:port */
	atomic_int inflight;
	atomic_int gone;
	atomic_int failed; /* a gateway saw it refuse or reset: control checks */
	int reserved;	   /* a reserved instance: the last choice */
	int netns;	   /* its function's network namespace (`network: isolated`), a
			      descriptor this object owns; -1: the host's */
	atomic_uint_fast64_t overloaded_until_ms; /* it said it was overloaded: steer away */
	fl_list idle[FL_MAX_THREADS];		  /* per gateway thread: idle upstream connections;
						     each thread touches only its own slot */
	fl_list h2[FL_MAX_THREADS];		  /* per gateway thread: HTTP/2 connections to it */
} fl_inst;

/* A new instance record (one reference) on the host's network; set netns (a descriptor it
 * will own) for an isolated function. */
fl_inst *fl_inst_new(uint64_t id, int port, uint32_t concurrency);
void fl_inst_ref(fl_inst *i);
/* Drops a reference; the last one frees it (its idle lists must be empty). */
void fl_inst_unref(fl_inst *i);

enum fl_fn_state {
	FL_FN_OK,      /* instances are ready or can be started */
	FL_FN_FAILING, /* starts keep failing or its build failed: answer 503 with reason */
};

/* What an instance speaks. */
enum fl_proto {
	FL_PROTO_HTTP,	 /* HTTP/1.1 */
	FL_PROTO_HTTP2,	 /* HTTP/2 without TLS (h2c, prior knowledge) */
	FL_PROTO_GRPC,	 /* gRPC: HTTP/2 with services routed by :path */
	FL_PROTO_THRIFT, /* Thrift: framed/THeader/TTHeader calls routed by service */
};

/* One function as the gateway sees it. Immutable once in a snapshot, and shared by
 * reference between consecutive snapshots while nothing about it changes (so publishing
 * a change to one function does not rebuild the others). */
typedef struct fl_route_fn {
	/* First what a publish compares (control/publish.c), on one cache line. */
	uint64_t version;
	fl_fnstats *stats;
	enum fl_fn_state state;
	int nsplit;
	int n_starting, n_ready, n_draining; /* for metrics and fl_gw__need */
	int n_reserved;			     /* of the ready ones, reserved */
	int ninst;
	fl_inst **inst; /* ready instances, not gone */
	atomic_int refs;
	char *name;
	enum fl_proto proto;
	char **services; /* gRPC or Thrift services it declares, owned */
	int thrift_port; /* Thrift: its dedicated port, 0 = none */
	/* Traffic split between versions (flint traffic): each entry names the
	 * function that serves that version -- NAME itself for the current one,
	 * "NAME@vN" for an older one run beside it. nsplit == 0: no split. */
	struct fl_split {
		char *target;
		uint64_t version;
		uint32_t weight; /* cumulative, out of split_total */
	} * split;
	uint32_t split_total;
	int nservices;
	char *reason;	      /* FL_FN_FAILING: why, one sentence */
	uint32_t concurrency; /* per instance, 0 = none */
	uint64_t timeout_ms;
	uint64_t max_body; /* 0 = none */
	uint32_t queue_max;
	uint64_t queue_timeout_ms;
} fl_route_fn;

struct fl_svc {
	const char *name; /* points into the function's services */
	fl_route_fn *fn;
};

typedef struct fl_snapshot {
	atomic_int refs;
	uint64_t gen;
	int sorted; /* the builder added the functions in name order */
	int nfn, cap;
	fl_route_fn **fns; /* sorted by name */
	int nsvc;
	struct fl_svc *svcs; /* gRPC services, sorted by name (built by seal) */
} fl_snapshot;

/* Builder API (control thread). fl_snapshot_new returns an empty snapshot with
 * one reference; fl_route_fn_new a function with one reference, which owns its stats
 * and inst references; fl_snapshot_add_fn takes over one reference to fn;
 * fl_snapshot_seal sorts the functions by name (unless the builder set `sorted`: it
 * added them in that order) and indexes their services. */
fl_snapshot *fl_snapshot_new(uint64_t gen);
fl_route_fn *fl_route_fn_new(const char *name);
void fl_route_fn_ref(fl_route_fn *fn);
/* Drops a reference; the last one frees fn and what it owns. */
void fl_route_fn_unref(fl_route_fn *fn);
void fl_snapshot_add_fn(fl_snapshot *s, fl_route_fn *fn);
/* Makes room for n functions in all (to add them without growing the array each time). */
void fl_snapshot_reserve(fl_snapshot *s, int n);
void fl_snapshot_seal(fl_snapshot *s);

/* Looks a function up by name (counted string). NULL if absent. */
fl_route_fn *fl_snapshot_find(const fl_snapshot *s, const char *name, size_t len);
/* The function that serves one request for fn: fn itself without a traffic
 * split; with one, the version pinned by pin (the X-Flint-Version value, may be
 * NULL) or a draw weighted by the split (rnd: a random number). NULL if pin
 * names a version that receives no traffic (or is not a number). */
fl_route_fn *fl_snapshot_pick_version(const fl_snapshot *s, fl_route_fn *fn, const char *pin,
				      size_t pinlen, uint64_t rnd);

/* The function declaring gRPC service name (counted string), or NULL. */
fl_route_fn *fl_snapshot_find_service(const fl_snapshot *s, const char *name, size_t len);

void fl_snapshot_ref(fl_snapshot *s);
void fl_snapshot_unref(fl_snapshot *s);

/* Publishes s as the current snapshot (taking the caller's reference) and
 * drops the reference to the previous one. Control thread only. */
void fl_snapshot_publish(fl_snapshot *s);
/* Returns the current snapshot with a new reference (never NULL once one has
 * been published; NULL before). Takes a mutex: call it on snapshot change, not
 * per request. */
fl_snapshot *fl_snapshot_acquire(void);
/* The generation of the snapshot published last: one atomic load, for a thread to see
 * cheaply whether its own is still the newest. */
uint64_t fl_snapshot_current_gen(void);

#endif
