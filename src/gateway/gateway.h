/* gateway.h -- the data plane: gateway threads, each with its own libuv loop,
 * SO_REUSEPORT listener, client connections and upstream connection pools. */
#ifndef FL_GATEWAY_H
#define FL_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

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
};

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
