/* client.h -- what the CLI's verb files share: argument parsing, the admin API
 * client (libcurl) and error reporting. Private to src/cli. */
#ifndef FL_CLI_CLIENT_H
#define FL_CLI_CLIENT_H

#include <jansson.h>
#include <stddef.h>

#include "core/buf.h"

/* Exit statuses of every verb. */
#define FL_CLI_OK    0
#define FL_CLI_FAIL  1
#define FL_CLI_USAGE 2

/* Where the admin API is and how to authenticate; filled by the global options. */
typedef struct fl_cli__ctx {
	const char *verb;   /* "deploy", ... for messages */
	char *admin;	    /* base URL without trailing '/', e.g. http://127.0.0.1:8081 */
	char *data_dir;	    /* where the token file is looked for */
	char *token;	    /* NULL when none was found */
	char *token_source; /* "FLINT_TOKEN" or the token file's path */
	int token_read_err; /* errno from reading the token file, 0 if read or absent */
	/* If set, told how much of each admin request body was sent (for a progress line). */
	void (*upload_progress)(void *arg, long long sent, long long total);
	void *upload_progress_arg;
} fl_cli__ctx;

/* One command-line option of a verb. has_arg: 0 flag, 1 needs a value. */
typedef struct fl_cli__opt {
	const char *lng; /* without "--" */
	char shrt;	 /* 0 if none */
	int has_arg;
	int id; /* returned by fl_cli__next_opt, > 0 */
} fl_cli__opt;

/* Iterator over a verb's arguments. */
typedef struct fl_cli__args {
	fl_cli__ctx *ctx;
	int argc;
	char **argv;
	int i;
	const fl_cli__opt *opts; /* terminated by an entry with lng == NULL */
	char **rest;		 /* what followed "--", or NULL */
	int nrest;
} fl_cli__args;

#define FL_CLI_ARG_POS	0  /* a positional argument, in *val */
#define FL_CLI_ARG_END	-1 /* no more arguments */
#define FL_CLI_ARG_ERR	-2 /* bad usage; the message was printed */
#define FL_CLI_ARG_HELP -3 /* -h or --help */

/* Starts iterating over argv (argv[0] is the verb). */
void fl_cli__args_init(fl_cli__args *a, fl_cli__ctx *ctx, int argc, char **argv,
		       const fl_cli__opt *opts);
/* Returns the next option's id with its value in *val (NULL for flags), a
 * positional argument (FL_CLI_ARG_POS), FL_CLI_ARG_END, FL_CLI_ARG_HELP or
 * FL_CLI_ARG_ERR. The global options --admin and --data are consumed here.
 * "--" ends the options; what follows it is left in a->rest. */
int fl_cli__next_opt(fl_cli__args *a, const char **val);

/* Resolves the admin URL, data directory and token (after the options were
 * read). Returns 0. */
int fl_cli__ctx_finish(fl_cli__ctx *c);
/* Frees what the context holds. */
void fl_cli__ctx_free(fl_cli__ctx *c);

/* Prints "flint: " + message + newline to stderr. */
void fl_cli__err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints a usage error ("flint VERB: message; see flint VERB --help") and
 * returns FL_CLI_USAGE. */
int fl_cli__usage_err(fl_cli__ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a whole non-negative number for option opt; prints a usage error and
 * returns -1 if val is not one. */
long long fl_cli__num_opt(fl_cli__ctx *c, const char *opt, const char *val);

/* Turns "host:port" into "http://host:port" and drops trailing slashes. The
 * caller frees the result. */
char *fl_cli__normalize_url(const char *s);

/* Percent-encodes a path segment (a function name). The caller frees it. */
char *fl_cli__escape(const char *s);

/* Streaming receiver of a response body; return 0 to go on, -1 to abort. */
typedef int (*fl_cli__sink)(const char *p, size_t n, void *arg);

/* One HTTP exchange. */
typedef struct fl_cli__http {
	/* in */
	const char *method; /* "GET", "HEAD", ... */
	const char *url;
	const void *body; /* NULL for none */
	size_t body_len;
	const char *const *headers; /* NULL-terminated "K: V" lines, or NULL */
	int connect_timeout_s;	    /* 0: libcurl's default */
	fl_cli__sink sink;	    /* called with the body of 2xx answers as it arrives */
	void *sink_arg;
	void (*progress)(void *arg, long long sent, long long total); /* upload, or NULL */
	void *progress_arg;
	/* out */
	long status;	      /* 0 if no answer came */
	fl_buf resp;	      /* the body when not given to sink; caller frees */
	char request_id[128]; /* X-Flint-Request-Id, or "" */
	char error[256];      /* why no (complete) answer came */
	int unreachable;      /* the connection could not be made */
} fl_cli__http;

/* Performs the exchange described by h. Returns 0 when a whole answer came
 * (whatever its status), -1 otherwise with h->error set. h->resp must be
 * freed by the caller either way. */
int fl_cli__perform(fl_cli__http *h);

/* Calls the admin API at path ("/v1/functions"). Authorization is added. On
 * -1 (no answer) the reason was printed. Returns the HTTP status otherwise,
 * with the body in resp (which the caller frees). */
long fl_cli__admin_raw(fl_cli__ctx *c, const char *method, const char *path,
		       const char *content_type, const void *body, size_t n, fl_buf *resp);

/* Like fl_cli__admin_raw for a GET whose 2xx body is handed to sink as it
 * arrives (error bodies still land in resp). */
long fl_cli__admin_stream(fl_cli__ctx *c, const char *path, fl_cli__sink sink, void *arg,
			  fl_buf *resp);

/* GETs path and returns the parsed 2xx JSON body, or NULL, printing nothing:
 * for optional lookups. The caller decrefs. */
json_t *fl_cli__admin_quiet(fl_cli__ctx *c, const char *path);

/* Prints why a non-2xx answer is an error: the token for 401, else the
 * "error" field of the JSON body, else the status. */
void fl_cli__report(fl_cli__ctx *c, long status, const fl_buf *resp);

/* The common case: sends body (JSON, may be NULL) and parses a 2xx answer into
 * *out (if out is not NULL; caller decrefs). Returns 0, or FL_CLI_FAIL after
 * printing the error. */
int fl_cli__admin_json(fl_cli__ctx *c, const char *method, const char *path, json_t *body,
		       json_t **out);

/* Writes j to stdout as indented JSON and a newline. Returns FL_CLI_OK. */
int fl_cli__print_json(json_t *j);

/* Small readers of JSON fields with defaults. */
const char *fl_cli__str(json_t *o, const char *key, const char *dflt);
long long fl_cli__int(json_t *o, const char *key, long long dflt);

/* Formats a wall-clock time in ms as local "YYYY-MM-DD HH:MM:SS". */
void fl_cli__fmt_time(long long ms, char *out, size_t n);

/* The verbs. Each takes argv with argv[0] the verb, returns an exit status. */
int fl_cli__deploy(fl_cli__ctx *c, int argc, char **argv);
int fl_cli__ls(fl_cli__ctx *c, int argc, char **argv);
int fl_cli__describe(fl_cli__ctx *c, int argc, char **argv);
int fl_cli__rm(fl_cli__ctx *c, int argc, char **argv);
int fl_cli__scale(fl_cli__ctx *c, int argc, char **argv);
int fl_cli__info(fl_cli__ctx *c, int argc, char **argv);
int fl_cli__logs(fl_cli__ctx *c, int argc, char **argv);
int fl_cli__invoke(fl_cli__ctx *c, int argc, char **argv);
int fl_cli__requests(fl_cli__ctx *c, int argc, char **argv);
int fl_cli__versions(fl_cli__ctx *c, int argc, char **argv);
int fl_cli__rollback(fl_cli__ctx *c, int argc, char **argv);
int fl_cli__traffic(fl_cli__ctx *c, int argc, char **argv);
int fl_cli__triggers(fl_cli__ctx *c, int argc, char **argv);
int fl_cli__new(fl_cli__ctx *c, int argc, char **argv);
int fl_cli__templates(fl_cli__ctx *c, int argc, char **argv);
int fl_cli__completion(fl_cli__ctx *c, int argc, char **argv);
int fl_cli__secret(fl_cli__ctx *c, int argc, char **argv);
int fl_cli__top(fl_cli__ctx *c, int argc, char **argv);

#endif
