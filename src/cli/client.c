/* client.c -- the CLI's shared plumbing: options, admin API calls over libcurl,
 * token discovery and error messages. */
#include "cli/client.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"

#define DEFAULT_ADMIN "http://127.0.0.1:8081"

void fl_cli__err(const char *fmt, ...)
{
	va_list ap;
	fputs("flint: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int fl_cli__usage_err(fl_cli__ctx *c, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "flint: %s: ", c->verb);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see `flint %s --help`)\n", c->verb);
	return FL_CLI_USAGE;
}

void fl_cli__args_init(fl_cli__args *a, fl_cli__ctx *ctx, int argc, char **argv,
		       const fl_cli__opt *opts)
{
	*a = (fl_cli__args){.ctx = ctx, .argc = argc, .argv = argv, .i = 1, .opts = opts};
}

static const fl_cli__opt global_opts[] = {
    {"admin", 0, 1, -100},
    {"data", 0, 1, -101},
    {NULL, 0, 0, 0},
};

static const fl_cli__opt *find_long(const fl_cli__opt *t, const char *name, size_t n)
{
	for (; t && t->lng; t++)
		if (strlen(t->lng) == n && strncmp(t->lng, name, n) == 0)
			return t;
	return NULL;
}

static const fl_cli__opt *find_short(const fl_cli__opt *t, char c)
{
	for (; t && t->lng; t++)
		if (t->shrt == c)
			return t;
	return NULL;
}

int fl_cli__next_opt(fl_cli__args *a, const char **val)
{
	for (;;) {
		*val = NULL;
		if (a->i >= a->argc)
			return FL_CLI_ARG_END;
		char *arg = a->argv[a->i++];
		const fl_cli__opt *o;
		const char *inline_val = NULL;

		if (strcmp(arg, "--") == 0) {
			a->rest = a->argv + a->i;
			a->nrest = a->argc - a->i;
			a->i = a->argc;
			return FL_CLI_ARG_END;
		}
		if (arg[0] != '-' || arg[1] == '\0') {
			*val = arg;
			return FL_CLI_ARG_POS;
		}
		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
			return FL_CLI_ARG_HELP;
		if (arg[1] == '-') {
			const char *name = arg + 2;
			const char *eq = strchr(name, '=');
			size_t n = eq ? (size_t)(eq - name) : strlen(name);
			o = find_long(a->opts, name, n);
			if (o == NULL)
				o = find_long(global_opts, name, n);
			if (o == NULL) {
				fl_cli__usage_err(a->ctx, "unknown option --%.*s", (int)n, name);
				return FL_CLI_ARG_ERR;
			}
			if (eq && !o->has_arg) {
				fl_cli__usage_err(a->ctx, "--%s takes no value", o->lng);
				return FL_CLI_ARG_ERR;
			}
			if (eq)
				inline_val = eq + 1;
		} else {
			o = find_short(a->opts, arg[1]);
			if (o == NULL) {
				fl_cli__usage_err(a->ctx, "unknown option %s", arg);
				return FL_CLI_ARG_ERR;
			}
			if (arg[2] != '\0') {
				if (!o->has_arg) {
					fl_cli__usage_err(a->ctx, "unknown option %s", arg);
					return FL_CLI_ARG_ERR;
				}
				inline_val = arg + 2;
			}
		}
		if (o->has_arg) {
			if (inline_val == NULL) {
				if (a->i >= a->argc) {
					fl_cli__usage_err(a->ctx, "--%s needs a value", o->lng);
					return FL_CLI_ARG_ERR;
				}
				inline_val = a->argv[a->i++];
			}
			*val = inline_val;
		}
		if (o->id == -100) {
			free(a->ctx->admin);
			a->ctx->admin = fl_xstrdup(*val);
			continue;
		}
		if (o->id == -101) {
			free(a->ctx->data_dir);
			a->ctx->data_dir = fl_xstrdup(*val);
			continue;
		}
		return o->id;
	}
}

long long fl_cli__num_opt(fl_cli__ctx *c, const char *opt, const char *val)
{
	char *end;
	errno = 0;
	long long v = strtoll(val, &end, 10);
	if (!isdigit((unsigned char)val[0]) || *end != '\0' || errno == ERANGE) {
		fl_cli__usage_err(c, "%s needs a whole number, not \"%s\"", opt, val);
		return -1;
	}
	return v;
}

char *fl_cli__normalize_url(const char *s)
{
	fl_buf b = FL_BUF_INIT;
	if (strstr(s, "://") == NULL)
		fl_buf_puts(&b, "http://");
	fl_buf_puts(&b, s);
	while (b.len > 0 && b.p[b.len - 1] == '/')
		b.p[--b.len] = '\0';
	return fl_buf_steal(&b);
}

char *fl_cli__escape(const char *s)
{
	fl_buf b = FL_BUF_INIT;
	fl_buf_reserve(&b, strlen(s));
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~')
			fl_buf_append(&b, s, 1);
		else
			fl_buf_printf(&b, "%%%02X", ch);
	}
	return fl_buf_steal(&b);
}

/* Removes trailing whitespace (a token file written by hand ends in '\n'). */
static void chomp(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
}

int fl_cli__ctx_finish(fl_cli__ctx *c)
{
	const char *e;

	if (c->admin == NULL) {
		e = getenv("FLINT_ADMIN");
		c->admin = fl_xstrdup(e && *e ? e : DEFAULT_ADMIN);
	}
	char *u = fl_cli__normalize_url(c->admin);
	free(c->admin);
	c->admin = u;

	if (c->data_dir == NULL) {
		e = getenv("FLINT_DATA");
		const char *home = getenv("HOME");
		if (e && *e) {
			c->data_dir = fl_xstrdup(e);
		} else if (geteuid() == 0 || home == NULL || *home == '\0') {
			c->data_dir = fl_xstrdup("/var/lib/flint");
		} else {
			fl_buf b = FL_BUF_INIT;
			fl_buf_printf(&b, "%s/.local/share/flint", home);
			c->data_dir = fl_buf_steal(&b);
		}
	}

	e = getenv("FLINT_TOKEN");
	if (e && *e) {
		c->token = fl_xstrdup(e);
		chomp(c->token);
		c->token_source = fl_xstrdup("FLINT_TOKEN");
		return 0;
	}
	fl_buf path = FL_BUF_INIT;
	fl_buf_printf(&path, "%s/token", c->data_dir);
	c->token_source = fl_buf_steal(&path);
	c->token = fl_read_file(c->token_source, NULL);
	if (c->token)
		chomp(c->token);
	else if (errno != ENOENT)
		c->token_read_err = errno;
	return 0;
}

void fl_cli__ctx_free(fl_cli__ctx *c)
{
	free(c->admin);
	free(c->data_dir);
	free(c->token);
	free(c->token_source);
	memset(c, 0, sizeof *c);
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	fl_cli__http *h = arg;
	size_t len = size * n;
	static const char rid[] = "x-flint-request-id:";

	/* A new status line starts a new response (after a 100 Continue or a
	 * redirect): forget what the previous one said. */
	if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
		const char *sp = memchr(p, ' ', len);
		h->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		h->request_id[0] = '\0';
	} else if (len > sizeof rid - 1 && strncasecmp(p, rid, sizeof rid - 1) == 0) {
		const char *v = p + sizeof rid - 1;
		size_t vn = len - (sizeof rid - 1);
		while (vn > 0 && (*v == ' ' || *v == '\t'))
			v++, vn--;
		while (vn > 0 && isspace((unsigned char)v[vn - 1]))
			vn--;
		if (vn >= sizeof h->request_id)
			vn = sizeof h->request_id - 1;
		memcpy(h->request_id, v, vn);
		h->request_id[vn] = '\0';
	}
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	fl_cli__http *h = arg;
	size_t len = size * n;
	/* Error answers are kept whole so the "error" field can be shown. */
	if (h->sink && h->status >= 200 && h->status < 300)
		return h->sink(p, len, h->sink_arg) == 0 ? len : 0;
	if (fl_buf_append(&h->resp, p, len) < 0)
		return 0;
	return len;
}

/* Loopback must never go through a proxy from the environment: the daemon is
 * nearly always local, and a corporate http_proxy would break every call. */
static char *no_proxy_list(void)
{
	const char *e = getenv("no_proxy");
	if (e == NULL)
		e = getenv("NO_PROXY");
	fl_buf b = FL_BUF_INIT;
	fl_buf_printf(&b, "%s%slocalhost,127.0.0.1,::1", e ? e : "", e && *e ? "," : "");
	return fl_buf_steal(&b);
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	fl_cli__http *h = arg;

	(void)dltotal;
	(void)dlnow;
	h->progress(h->progress_arg, (long long)ulnow, (long long)ultotal);
	return 0;
}

int fl_cli__perform(fl_cli__http *h)
{
	CURL *curl = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	char *noproxy = no_proxy_list();
	int rc = -1;

	h->status = 0;
	h->error[0] = '\0';
	h->request_id[0] = '\0';
	h->unreachable = 0;
	if (curl == NULL) {
		snprintf(h->error, sizeof h->error, "cannot start libcurl");
		goto out;
	}
	/* libcurl would send "Expect: 100-continue" and wait for large bodies. */
	hdrs = curl_slist_append(hdrs, "Expect:");
	for (const char *const *p = h->headers; p && *p; p++)
		hdrs = curl_slist_append(hdrs, *p);

	curl_easy_setopt(curl, CURLOPT_URL, h->url);
	curl_easy_setopt(curl, CURLOPT_NOPROXY, noproxy);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, h);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	if (h->connect_timeout_s > 0)
		curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, (long)h->connect_timeout_s);
	if (h->progress) {
		curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(curl, CURLOPT_XFERINFODATA, h);
		curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	}
	if (strcmp(h->method, "HEAD") == 0) {
		curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
	} else {
		if (h->body) {
			curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)h->body_len);
			curl_easy_setopt(curl, CURLOPT_POSTFIELDS, h->body);
		}
		if (strcmp(h->method, "GET") != 0 || h->body)
			curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, h->method);
	}

	CURLcode cc = curl_easy_perform(curl);
	if (cc == CURLE_OK) {
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &h->status);
		rc = 0;
	} else {
		h->unreachable = cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
				 (cc == CURLE_OPERATION_TIMEDOUT && h->status == 0);
		if (cc == CURLE_WRITE_ERROR)
			snprintf(h->error, sizeof h->error, "the answer could not be written out");
		else
			snprintf(h->error, sizeof h->error, "%s", curl_easy_strerror(cc));
	}
out:
	curl_slist_free_all(hdrs);
	if (curl)
		curl_easy_cleanup(curl);
	free(noproxy);
	return rc;
}

/* Every admin call: adds the token, and unless quiet prints why no answer came. */
static long admin_call(fl_cli__ctx *c, const char *method, const char *path,
		       const char *content_type, const void *body, size_t n, fl_cli__sink sink,
		       void *sink_arg, int quiet, fl_buf *resp)
{
	fl_buf url = FL_BUF_INIT, auth = FL_BUF_INIT, ctype = FL_BUF_INIT;
	const char *hdrs[3] = {NULL, NULL, NULL};
	int nh = 0;

	fl_buf_printf(&url, "%s%s", c->admin, path);
	if (c->token) {
		fl_buf_printf(&auth, "Authorization: Bearer %s", c->token);
		hdrs[nh++] = auth.p;
	}
	if (content_type) {
		fl_buf_printf(&ctype, "Content-Type: %s", content_type);
		hdrs[nh++] = ctype.p;
	}
	fl_cli__http h = {
	    .method = method,
	    .url = url.p,
	    .body = body,
	    .body_len = n,
	    .headers = hdrs,
	    .connect_timeout_s = 5,
	    .sink = sink,
	    .sink_arg = sink_arg,
	    .progress = body ? c->upload_progress : NULL,
	    .progress_arg = c->upload_progress_arg,
	};
	long status = -1;
	if (fl_cli__perform(&h) < 0) {
		if (quiet)
			;
		else if (h.unreachable)
			fl_cli__err(
			    "cannot reach the flint daemon at %s (is `flint serve` running?)",
			    c->admin);
		else if (h.status >= 200 && h.status < 300 && sink)
			fl_cli__err("the connection to the flint daemon at %s broke: %s", c->admin,
				    h.error);
		else
			fl_cli__err("the call %s %s to the flint daemon at %s failed: %s", method,
				    path, c->admin, h.error);
	} else {
		status = h.status;
	}
	*resp = h.resp;
	fl_buf_free(&url);
	fl_buf_free(&auth);
	fl_buf_free(&ctype);
	return status;
}

long fl_cli__admin_raw(fl_cli__ctx *c, const char *method, const char *path,
		       const char *content_type, const void *body, size_t n, fl_buf *resp)
{
	return admin_call(c, method, path, content_type, body, n, NULL, NULL, 0, resp);
}

long fl_cli__admin_stream(fl_cli__ctx *c, const char *path, fl_cli__sink sink, void *arg,
			  fl_buf *resp)
{
	return admin_call(c, "GET", path, NULL, NULL, 0, sink, arg, 0, resp);
}

json_t *fl_cli__admin_quiet(fl_cli__ctx *c, const char *path)
{
	fl_buf resp = FL_BUF_INIT;
	json_t *j = NULL;
	long st = admin_call(c, "GET", path, NULL, NULL, 0, NULL, NULL, 1, &resp);
	if (st >= 200 && st < 300)
		j = json_loadb(resp.p ? resp.p : "", resp.len, 0, NULL);
	fl_buf_free(&resp);
	return j;
}

void fl_cli__report(fl_cli__ctx *c, long status, const fl_buf *resp)
{
	if (status == 401) {
		if (c->token_read_err)
			fl_cli__err("the flint daemon at %s needs a token, and %s cannot be read: "
				    "%s (set FLINT_TOKEN or pass --data DIR)",
				    c->admin, c->token_source, strerror(c->token_read_err));
		else if (c->token == NULL)
			fl_cli__err("the flint daemon at %s needs a token: none in FLINT_TOKEN or "
				    "%s (set FLINT_TOKEN or pass --data DIR)",
				    c->admin, c->token_source);
		else
			fl_cli__err("the flint daemon at %s refused the token from %s (it must "
				    "match DATA/token of that daemon)",
				    c->admin, c->token_source);
		return;
	}
	json_t *j = resp->len ? json_loadb(resp->p, resp->len, 0, NULL) : NULL;
	const char *msg = j ? fl_cli__str(j, "error", NULL) : NULL;
	if (msg)
		fl_cli__err("%s", msg);
	else
		fl_cli__err("the flint daemon answered HTTP %ld", status);
	json_decref(j);
}

int fl_cli__admin_json(fl_cli__ctx *c, const char *method, const char *path, json_t *body,
		       json_t **out)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	fl_buf resp = FL_BUF_INIT;
	int rc = FL_CLI_FAIL;

	if (out)
		*out = NULL;
	long status = fl_cli__admin_raw(c, method, path, text ? "application/json" : NULL, text,
					text ? strlen(text) : 0, &resp);
	if (status < 0)
		goto out;
	if (status < 200 || status >= 300) {
		fl_cli__report(c, status, &resp);
		goto out;
	}
	if (out) {
		json_error_t jerr;
		*out = json_loadb(resp.p ? resp.p : "", resp.len, 0, &jerr);
		if (*out == NULL) {
			fl_cli__err("the flint daemon answered %s %s with invalid JSON: %s", method,
				    path, jerr.text);
			goto out;
		}
	}
	rc = FL_CLI_OK;
out:
	free(text);
	fl_buf_free(&resp);
	return rc;
}

int fl_cli__print_json(json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	return FL_CLI_OK;
}

const char *fl_cli__str(json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : dflt;
}

long long fl_cli__int(json_t *o, const char *key, long long dflt)
{
	json_t *v = json_object_get(o, key);
	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v))
		return (long long)json_real_value(v);
	return dflt;
}

void fl_cli__fmt_time(long long ms, char *out, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (ms <= 0 || localtime_r(&t, &tm) == NULL || strftime(out, n, "%F %T", &tm) == 0)
		snprintf(out, n, "-");
}
