/* flint.h -- what a handler of flint's C template sees: the request, the response
 * being built, and small helpers for headers, query parameters and JSON. */
#ifndef FLINT_H
#define FLINT_H

#include <stddef.h>
#include <stdio.h>

struct fl_header {
	const char *name;  /* as the client sent it; compare with strcasecmp */
	const char *value; /* without surrounding blanks */
};

/* One request. Everything it points to lives until handle() returns. */
struct fl_req {
	const char *method; /* "GET", "POST", ... */
	const char *path;   /* "/items/1", without the query, not percent-decoded */
	const char *query;  /* "a=1&b=2" without '?', "" when there is none */
	const struct fl_header *headers;
	size_t nheaders;
	const char *body; /* the whole body, followed by a NUL that is not counted */
	size_t body_len;
};

/* The answer being built. Set status directly; use the functions below for the rest. */
struct fl_resp {
	int status; /* 200 unless changed */
	char *body; /* owned by the framework */
	size_t body_len, body_cap;
	char *headers; /* "Name: value\r\n" lines, owned by the framework */
	size_t headers_len, headers_cap;
	char error[512]; /* set by fl_fail */
};

/* The handler, written by the user: fills resp and returns 0, or returns nonzero
 * (see fl_fail) for a 500 answer. Called on many threads at once. */
int handle(const struct fl_req *req, struct fl_resp *resp);

/* The value of header name (any case), or NULL. */
const char *fl_req_header(const struct fl_req *req, const char *name);

/* Copies the percent-decoded value of query parameter key into out (NUL-terminated,
 * cut to n-1 bytes). Returns its length, or -1 when the parameter is absent. */
int fl_req_query(const struct fl_req *req, const char *key, char *out, size_t n);

/* Adds a response header. Content-Length and Connection are set by the framework;
 * without a Content-Type, the answer is sent as text/plain. */
void fl_resp_header(struct fl_resp *resp, const char *name, const char *value);

/* Appends bytes / formatted text to the response body. */
void fl_resp_write(struct fl_resp *resp, const void *p, size_t n);
void fl_resp_printf(struct fl_resp *resp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends s as a JSON string literal, quotes included and special characters
 * escaped: fl_resp_printf(r, "{\"msg\": "); fl_resp_json_str(r, s); ... */
void fl_resp_json_str(struct fl_resp *resp, const char *s);

/* Finds the top-level member key of the JSON object in json[0..len) and copies its
 * value, when it is a string, unescaped into out (cut to n-1 bytes; \u escapes are
 * decoded to UTF-8). Returns the length, or -1 when the body is not an object, the
 * key is absent or its value is not a string. */
int fl_json_string(const char *json, size_t len, const char *key, char *out, size_t n);

/* Like fl_json_string for a number. Returns 0, or -1. */
int fl_json_number(const char *json, size_t len, const char *key, double *out);

/* Records why the handler failed and returns -1: `return fl_fail(resp, "no %s", x);`.
 * The client gets 500 with {"error": MESSAGE}; the message goes to the logs. */
int fl_fail(struct fl_resp *resp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
