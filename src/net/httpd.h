/* httpd.h -- a small HTTP/1.1 server on a libuv loop (llhttp), for the admin API.
 *
 * Requests are read whole (bounded by max_body) before the handler runs; the
 * handler answers at once or later (the response handle stays valid until
 * answered or until the client goes away, see fl_httpd_on_close). Keep-alive,
 * HTTP/1.0 and chunked request bodies are handled. This is the control plane's
 * server; the gateway's proxy path is proto/http1.c.
 *
 * Who frees a response: completing it (fl_httpd_respond*, fl_httpd_stream_end)
 * frees it. If the client goes away first (EOF, error, timeout, fl_httpd_close),
 * the response is orphaned: its on_close callback runs and the response is freed
 * when the callback returns; without a callback it stays allocated until the
 * handler completes it, and that call only frees it. Pipelined requests are
 * answered one at a time, in order. */
#ifndef FL_HTTPD_H
#define FL_HTTPD_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

typedef struct fl_httpd fl_httpd;
typedef struct fl_httpd_resp fl_httpd_resp;

typedef struct fl_httpd_req {
	const char *method; /* "GET", ... */
	const char *path;   /* percent-decoded path without the query, e.g. "/v1/functions/a" */
	const char *query;  /* raw query without '?', "" when none */
	const char *body;   /* NUL-terminated for convenience; body_len bytes */
	size_t body_len;
	const char *peer; /* "127.0.0.1:53412" */
} fl_httpd_req;

/* Called once per request. req and everything it points to are valid until the
 * response is completed (fl_httpd_respond*, or fl_httpd_stream_end) or the
 * client closes. */
typedef void (*fl_httpd_handler)(void *ctx, fl_httpd_req *req, fl_httpd_resp *resp);

/* Starts listening on addr ("127.0.0.1:8081"). Bodies over max_body get 413
 * without calling the handler; malformed requests get 400. Returns 0 and *out,
 * or -errno with a sentence in err. */
int fl_httpd_start(uv_loop_t *loop, const char *addr, size_t max_body, fl_httpd_handler handler,
		   void *ctx, fl_httpd **out, char *err, size_t errlen);

/* Stops listening and closes every connection (pending responses are dropped,
 * their on_close callbacks run). Frees the server once libuv is done with it. */
void fl_httpd_close(fl_httpd *h);

/* A request header's value (case-insensitive name), or NULL. */
const char *fl_httpd_header(const fl_httpd_req *req, const char *name);
/* The value of a query parameter (percent-decoded), or NULL. Valid like req. */
const char *fl_httpd_query(const fl_httpd_req *req, const char *name);

/* Adds a response header before the response starts. */
void fl_httpd_add_header(fl_httpd_resp *r, const char *name, const char *value);

/* Sends a whole response; r is invalid afterwards. */
void fl_httpd_respond(fl_httpd_resp *r, int status, const char *content_type, const char *body,
		      size_t len);
/* Sends j as application/json (pretty enough to read: compact, one trailing
 * newline) and drops the caller's reference (steals j). */
void fl_httpd_respond_json(fl_httpd_resp *r, int status, json_t *j);
/* Sends {"error": "<message>"} with the status. */
void fl_httpd_respond_error(fl_httpd_resp *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Streaming (chunked) responses, e.g. for following logs. */
void fl_httpd_stream_begin(fl_httpd_resp *r, int status, const char *content_type);
/* Queues data as one chunk. Returns 0, or -EPIPE if the client is gone; r then
 * stays valid until fl_httpd_stream_end (unless an on_close callback ran). */
int fl_httpd_stream_write(fl_httpd_resp *r, const char *data, size_t len);
/* Ends the stream; r is invalid afterwards. */
void fl_httpd_stream_end(fl_httpd_resp *r);

/* Registers cb to run if the client disconnects before the response completes;
 * r is invalid after cb returns (calls on r from inside cb do nothing). One
 * callback per response. If the client is already gone, cb runs at once. */
void fl_httpd_on_close(fl_httpd_resp *r, void (*cb)(void *ctx), void *ctx);

#endif
