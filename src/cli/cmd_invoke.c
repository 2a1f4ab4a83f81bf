/* cmd_invoke.c -- `flint invoke NAME`: one request to a function through the gateway. */
#include "cli/client.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"

#define DEFAULT_GATEWAY "127.0.0.1:8080"

static const char invoke_help[] =
    "usage: flint invoke NAME [-d DATA | -d @FILE] [-H 'K: V']... [--path /p]\n"
    "                         [--method M] [--gateway URL] [-v]\n\n"
    "Sends one HTTP request to http://GATEWAY/function/NAME/PATH and writes the\n"
    "answer's body to stdout. Exits 0 for a 2xx answer, 1 otherwise.\n"
    "  -d, --body DATA      request body; @FILE reads a file, @- standard input\n"
    "  -H, --header 'K: V'  request header; repeatable\n"
    "  --path PATH          path below the function, query included\n"
    "  -X, --method M       default POST with a body, else GET\n"
    "  --gateway URL        default: $FLINT_GATEWAY, else what the daemon reports,\n"
    "                       else 127.0.0.1:8080\n"
    "  -v, --verbose        print the status and X-Flint-Request-Id to stderr\n";

static int to_stdout(const char *p, size_t n, void *arg)
{
	return fwrite(p, 1, n, stdout) == n ? 0 : -1;
}

/* Reads all of standard input into b. */
static int read_stdin(fl_buf *b)
{
	for (;;) {
		if (fl_buf_reserve(b, 65536) < 0)
			return -ENOMEM;
		ssize_t n = read(STDIN_FILENO, b->p + b->len, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		b->len += n;
	}
}

/* A listen address reported by the daemon ("0.0.0.0:8080", ":8080",
 * "[::]:8080") made into one a client can connect to. */
static char *connectable(const char *listen)
{
	const char *colon = strrchr(listen, ':');
	fl_buf b = FL_BUF_INIT;
	if (colon == NULL)
		return fl_xstrdup(listen);
	size_t hl = colon - listen;
	if (hl == 0 || (hl == 7 && strncmp(listen, "0.0.0.0", 7) == 0) ||
	    (hl == 4 && strncmp(listen, "[::]", 4) == 0) ||
	    (hl == 2 && strncmp(listen, "::", 2) == 0))
		fl_buf_printf(&b, "127.0.0.1%s", colon);
	else
		fl_buf_puts(&b, listen);
	return fl_buf_steal(&b);
}

/* Where the gateway is: the option, the environment, the daemon, the default. */
static char *find_gateway(fl_cli__ctx *c, const char *opt)
{
	const char *e = getenv("FLINT_GATEWAY");
	char *raw;
	if (opt) {
		raw = fl_xstrdup(opt);
	} else if (e && *e) {
		raw = fl_xstrdup(e);
	} else {
		fl_cli__ctx_finish(c);
		json_t *info = fl_cli__admin_quiet(c, "/v1/info");
		const char *gw = fl_cli__str(info, "gateway", NULL);
		raw = gw && *gw ? connectable(gw) : fl_xstrdup(DEFAULT_GATEWAY);
		json_decref(info);
	}
	char *url = fl_cli__normalize_url(raw);
	free(raw);
	return url;
}

static int has_header(char **hdrs, int n, const char *name)
{
	size_t len = strlen(name);
	for (int i = 0; i < n; i++)
		if (strncasecmp(hdrs[i], name, len) == 0 && hdrs[i][len] == ':')
			return 1;
	return 0;
}

int fl_cli__invoke(fl_cli__ctx *c, int argc, char **argv)
{
	static const fl_cli__opt opts[] = {
	    {"body", 'd', 1, 'd'},   {"header", 'H', 1, 'H'}, {"path", 0, 1, 'p'},
	    {"method", 'X', 1, 'X'}, {"gateway", 0, 1, 'g'},  {"verbose", 'v', 0, 'v'},
	    {NULL, 0, 0, 0},
	};
	fl_cli__args a;
	const char *name = NULL, *v, *data = NULL, *upath = "", *method = NULL, *gwopt = NULL;
	char **hdrs = NULL, *gw = NULL, *en = NULL, *meth = NULL, *ctype = NULL;
	int nh = 0, verbose = 0, id, rc = FL_CLI_USAGE;
	fl_buf body = FL_BUF_INIT, url = FL_BUF_INIT;
	int have_body = 0;

	hdrs = fl_xcalloc(argc + 2, sizeof *hdrs);
	fl_cli__args_init(&a, c, argc, argv, opts);
	while ((id = fl_cli__next_opt(&a, &v)) != FL_CLI_ARG_END) {
		switch (id) {
		case FL_CLI_ARG_ERR:
			goto out;
		case FL_CLI_ARG_HELP:
			fputs(invoke_help, stdout);
			rc = FL_CLI_OK;
			goto out;
		case FL_CLI_ARG_POS:
			if (name) {
				rc = fl_cli__usage_err(c, "unexpected argument \"%s\"", v);
				goto out;
			}
			name = v;
			break;
		case 'd':
			data = v;
			break;
		case 'H':
			if (strchr(v, ':') == NULL || v[0] == ':') {
				rc = fl_cli__usage_err(c, "-H takes 'Name: value', not \"%s\"", v);
				goto out;
			}
			hdrs[nh++] = (char *)v;
			break;
		case 'p':
			upath = v;
			break;
		case 'X':
			method = v;
			break;
		case 'g':
			gwopt = v;
			break;
		case 'v':
			verbose = 1;
			break;
		}
	}
	if (a.rest) {
		rc = fl_cli__usage_err(c, "takes no command after --");
		goto out;
	}
	if (name == NULL) {
		rc = fl_cli__usage_err(c, "which function? Give its NAME");
		goto out;
	}
	/* --data is the global data-directory option; curl users reach for it to
	 * send a body, which would otherwise silently turn into a GET. */
	if (c->data_dir && !fl_is_dir(c->data_dir)) {
		rc = fl_cli__usage_err(c, "--data names flint's data directory; send a body "
					  "with -d or --body");
		goto out;
	}
	rc = FL_CLI_FAIL;

	if (data && data[0] == '@') {
		int e = 0;
		if (strcmp(data, "@-") == 0) {
			e = read_stdin(&body);
		} else {
			size_t n;
			char *text = fl_read_file(data + 1, &n);
			if (text == NULL)
				e = -errno;
			else {
				fl_buf_append(&body, text, n);
				free(text);
			}
		}
		if (e < 0) {
			fl_cli__err("cannot read %s: %s",
				    strcmp(data, "@-") == 0 ? "standard input" : data + 1,
				    strerror(-e));
			goto out;
		}
		have_body = 1;
	} else if (data) {
		fl_buf_puts(&body, data);
		have_body = 1;
	}
	meth = fl_xstrdup(method ? method : have_body ? "POST" : "GET");
	for (char *p = meth; *p; p++)
		*p = toupper((unsigned char)*p);
	/* Without a Content-Type libcurl would claim a form; JSON is the common
	 * case for functions, and anything else is plain bytes. */
	if (have_body && !has_header(hdrs, nh, "content-type")) {
		json_t *j = json_loadb(body.p ? body.p : "", body.len, JSON_DECODE_ANY, NULL);
		ctype = fl_xstrdup(j ? "Content-Type: application/json"
				     : "Content-Type: application/octet-stream");
		json_decref(j);
		hdrs[nh++] = ctype;
	}

	gw = find_gateway(c, gwopt);
	en = fl_cli__escape(name);
	fl_buf_printf(&url, "%s/function/%s%s%s", gw, en, upath[0] && upath[0] != '/' ? "/" : "",
		      upath);
	fl_cli__http h = {
	    .method = meth,
	    .url = url.p,
	    .body = have_body ? (body.p ? body.p : "") : NULL,
	    .body_len = body.len,
	    .headers = (const char *const *)hdrs,
	    .connect_timeout_s = 5,
	    .sink = to_stdout,
	};
	int ok = fl_cli__perform(&h);
	fflush(stdout);
	if (verbose && h.status)
		fprintf(stderr, "HTTP %ld, request id %s\n", h.status,
			h.request_id[0] ? h.request_id : "(none)");
	if (ok < 0) {
		if (h.unreachable)
			fl_cli__err(
			    "cannot reach the flint gateway at %s (is `flint serve` running?)", gw);
		else
			fl_cli__err("the request to %s failed: %s", name, h.error);
	} else if (h.status >= 200 && h.status < 300) {
		rc = FL_CLI_OK;
	} else {
		json_t *j = h.resp.len ? json_loadb(h.resp.p, h.resp.len, 0, NULL) : NULL;
		const char *msg = fl_cli__str(j, "error", NULL);
		if (msg) {
			fl_cli__err("%s answered %ld: %s", name, h.status, msg);
		} else {
			fl_cli__err("%s answered %ld", name, h.status);
			if (h.resp.len) {
				fwrite(h.resp.p, 1, h.resp.len, stderr);
				if (h.resp.p[h.resp.len - 1] != '\n')
					fputc('\n', stderr);
			}
		}
		json_decref(j);
	}
	fl_buf_free(&h.resp);
out:
	free(hdrs);
	free(gw);
	free(en);
	free(meth);
	free(ctype);
	fl_buf_free(&body);
	fl_buf_free(&url);
	return rc;
}
