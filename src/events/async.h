/* async.h -- durable asynchronous invocations: a queue in SQLite
 * (DATA/async.db, WAL, group commit) owned by one thread of its own, workers
 * that call functions through the gateway, retries with back-off, results,
 * callbacks and a dead letter. Triggers (cron, Redis Streams, NATS) enqueue
 * through the same path. */
#ifndef FL_ASYNC_H
#define FL_ASYNC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/gateway.h"

typedef struct fl_async fl_async;
struct fl_spec;

/* Per-function settings (spec `async: {...}`), in milliseconds. */
struct fl_async_conf {
	uint32_t retries;	 /* attempts after the first; default 3 */
	uint64_t backoff_min_ms; /* default 1 s */
	uint64_t backoff_max_ms; /* default 5 min */
	uint64_t max_age_ms;	 /* give up (dead) after this since enqueue; default 24 h */
	uint64_t timeout_ms;	 /* one attempt; default the function's limits.timeout */
	uint32_t concurrency;	 /* attempts of this function in flight at once; default 10 */
};

/* One request to enqueue. Everything is copied. */
struct fl_async_item {
	const char *fn;
	const char *method;
	const char *target;  /* path and query the instance sees */
	const char *headers; /* "Name: value\r\n"... */
	size_t headers_len;
	const void *body;
	size_t body_len;
	const char *request_id;	  /* NULL: one is made. An id already stored is not stored
				     again (idempotent enqueue): cb gets the existing id. */
	const char *callback_url; /* NULL: none */
	const char *source;	  /* "http", "cron:NAME", "redis:STREAM", "nats:SUBJECT" */
};

/* Called once the item is durable (ok = 0, id set) or could not be stored
 * (ok < 0, id NULL). Runs on the async thread; must be quick and thread-safe. */
typedef void (*fl_async_enqueued_cb)(void *ctx, int ok, const char *id);

/* Starts the async thread: opens DATA/async.db, re-queues requests that were
 * running when flint died (each ran at least once: at-least-once), and calls
 * functions through the gateway at gateway_addr ("127.0.0.1:8080"). Nothing is
 * dispatched before fl_async_resume() (the gateway may not listen yet).
 * Returns 0 or -errno with a sentence in err. */
int fl_async_start(const char *data_dir, const char *gateway_addr, fl_async **out, char *err,
		   size_t errlen);

/* The gateway listens: start calling functions. Thread-safe, idempotent. */
void fl_async_resume(fl_async *a);

/* Thread-safe: enqueue durably (group commit), then cb. Returns 0, or
 * -ESHUTDOWN while stopping (cb is then not called). */
int fl_async_enqueue(fl_async *a, const struct fl_async_item *it, fl_async_enqueued_cb cb,
		     void *ctx);

/* Thread-safe: a function was created/updated (its async settings) or removed
 * (conf NULL, which also stops its triggers). Requests of unknown functions
 * wait, up to their max age. */
void fl_async_set_function(fl_async *a, const char *fn, const struct fl_async_conf *conf);

/* Thread-safe: applies a validated spec's `async` settings and `triggers`
 * (starting, keeping or stopping trigger consumers). NULL a is a no-op. */
void fl_async_apply_spec(fl_async *a, const struct fl_spec *s);

/* The gateway's offload hook (struct fl_gw_opts.offload, ctx = the fl_async):
 * POST /async-function/NAME → 202 {"id"} with X-Flint-Request-Id once durable;
 * GET /requests/ID[/result] → the request's state / stored result. */
void fl_async_offload(void *ctx, const struct fl_offload_req *req);

/* Thread-safe reads for the admin API (their own SQLite connection, under a
 * mutex). fl_async_get: 0 and *out (a new reference), -ENOENT, or -EIO.
 * fl_async_list: requests newest first, filtered by fn / status (NULL: any),
 * at most limit; 0 and *out (a JSON array) or -EIO. */
int fl_async_get(fl_async *a, const char *id, json_t **out);
int fl_async_list(fl_async *a, const char *fn, const char *status, unsigned limit, json_t **out);

/* Re-drives a dead or failed request: queued again with its attempts reset.
 * Waits for the change to be durable. Returns 0, -ENOENT (no such request) or
 * -EINVAL (not dead or failed; err says its status). */
int fl_async_redrive(fl_async *a, const char *id, char *err, size_t errlen);

/* Every trigger with its counters, as a JSON array (new reference). */
json_t *fl_async_triggers(fl_async *a);

/* Appends Prometheus text for the queue to out (a fl_buf *): depth and age of
 * the oldest request per function, attempts, outcomes, dead letters. Thread-safe. */
void fl_async_metrics(fl_async *a, void *out);
/* The same with the fl_async as a void * (for fl_metrics_set_extra). */
void fl_async_metrics_hook(void *ctx, void *out);

/* Starts no new attempts from now on (flint is draining); those under way go
 * on. Thread-safe; NULL is fine. */
void fl_async_drain(fl_async *a);

/* Stops the thread after in-flight attempts end or grace_ms passes (what is
 * unfinished stays queued for the next start) and frees a. */
void fl_async_stop(fl_async *a, unsigned grace_ms);

#endif
