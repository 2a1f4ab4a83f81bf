/* gateway.h -- the data plane: gateway threads, each with its own libuv loop,
 * SO_REUSEPORT listener, client connections and upstream connection pools. */
#ifndef FL_GATEWAY_H
#define FL_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

/* Requests the gateway does not proxy but hands whole to another part of
 * flint (the async queue): the request, read completely (body bounded by the
 * function's limits.max_body, or 1 MiB for queries), and the way back. */
enum fl_offload_kind {
	FL_OFFLOAD_ASYNC,  /* POST|any /async-function/NAME[/rest]: enqueue, answer 202 */
	FL_OFFLOAD_QUERY,  /* GET /requests/ID[/result]: read the async queue */
	FL_OFFLOAD_SYSTEM, /* /system/...: the OpenFaaS-compatible API (control thread) */
};

struct fl_offload_req {
	enum fl_offload_kind kind;
	const char *fn;	     /* ASYNC: function name (NUL-terminated) */
	const char *method;  /* "POST", ... */
	const char *target;  /* ASYNC: path and query as the instance must see them
				("/rest?q"); QUERY: the request's path and query */
	const char *headers; /* request header lines "Name: value\r\n" as received,
				without hop-by-hop fields; includes X-Callback-Url */
	size_t headers_len;
	const char *body;
	size_t body_len;
	const char *request_id; /* X-Flint-Request-Id chosen (or accepted) by the gateway */
	void *cookie;		/* give it back to fl_gateway_offload_done */
	int thread;		/* the gateway thread that asked */
};

struct fl_gw_opts {
	const char *listen;	    /* "127.0.0.1:8080" */
	const char *domain;	    /* Host routing domain: NAME.<domain>; NULL/"" = off */
	int threads;		    /* gateway threads, 1..FL_MAX_THREADS */
	uint64_t idle_timeout_ms;   /* keep-alive connections idle this long are closed */
	uint64_t header_timeout_ms; /* a request head must arrive within this */
	size_t max_header;	    /* bytes of request head before 431 */
	/* Called on a gateway thread when a request is held because no instance
	 * has room; must be thread-safe and cheap (it posts to the control thread). */
	void (*need)(void *ctx, const char *fn, size_t fn_len);
	void *ctx;
	/* Called on a gateway thread with a whole offloaded request; everything in
	 * req is valid only during the call (copy what is kept). The answer comes
	 * later, from any thread, through fl_gateway_offload_done(). NULL: such
	 * paths answer 404. */
	void (*offload)(void *ctx, const struct fl_offload_req *req);
	void *offload_ctx;
};

/* Answers an offloaded request: status, content type, body (copied), and extra
 * header lines ("Name: value\r\n...", may be NULL). Thread-safe; the client
 * may have gone meanwhile, which is fine. */
void fl_gateway_offload_done(int thread, void *cookie, int status, const char *ctype,
			     const char *body, size_t len, const char *headers);

/* Creates every listener (so a busy port is reported here, with err set to a
 * sentence) and starts the threads. The options are copied. Returns 0 or -errno. */
int fl_gateway_start(const struct fl_gw_opts *o, char *err, size_t errlen);

/* A new snapshot was published: every thread picks it up and retries the
 * requests it holds. Thread-safe, coalescing. */
void fl_gateway_notify(void);
/* Capacity may have been freed on some instance: threads retry held requests. */
void fl_gateway_kick(void);

/* Stops accepting; connections close once their current exchange ends. */
void fl_gateway_drain(void);
/* Requests under way across all threads (held or at an instance). */
long fl_gateway_active(void);
/* Closes every connection now, ends the threads and joins them. */
void fl_gateway_stop(void);

#endif
