/* async_api.c -- admin API routes over the async queue and the triggers. */
#include "events/async_api.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const statuses[] = {"queued", "running", "succeeded", "failed", "dead", NULL};

void fl_async_admin(fl_async *a, fl_httpd_req *req, fl_httpd_resp *resp)
{
	const char *p = req->path, *get = "GET";
	char id[64], err[256];
	json_t *j = NULL;
	int r;

	if (a == NULL) {
		fl_httpd_respond_error(resp, 503, "the async queue is not running");
		return;
	}
	if (strcmp(p, "/v1/triggers") == 0) {
		if (strcmp(req->method, get) != 0)
			goto method;
		fl_httpd_respond_json(resp, 200,
				      json_pack("{s:o}", "triggers", fl_async_triggers(a)));
		return;
	}
	if (strcmp(p, "/v1/requests") == 0) {
		const char *fn = fl_httpd_query(req, "fn"), *st = fl_httpd_query(req, "status"),
			   *dead = fl_httpd_query(req, "dead"), *lim = fl_httpd_query(req, "limit");
		unsigned limit = lim ? (unsigned)strtoul(lim, NULL, 10) : 100;
		int i;

		if (strcmp(req->method, get) != 0)
			goto method;
		if (dead && (strcmp(dead, "1") == 0 || strcmp(dead, "true") == 0))
			st = "dead";
		for (i = 0; st && statuses[i] && strcmp(statuses[i], st) != 0; i++)
			;
		if (st && statuses[i] == NULL) {
			fl_httpd_respond_error(
			    resp, 400,
			    "status must be queued, running, succeeded, failed or "
			    "dead, not '%s'",
			    st);
			return;
		}
		if (limit == 0 || limit > 10000)
			limit = 10000;
		if (fl_async_list(a, fn && *fn ? fn : NULL, st, limit, &j) < 0) {
			fl_httpd_respond_error(resp, 500, "cannot read the async queue");
			return;
		}
		fl_httpd_respond_json(resp, 200, json_pack("{s:o}", "requests", j));
		return;
	}
	if (strncmp(p, "/v1/requests/", 13) == 0) {
		const char *s = p + 13, *slash = strchr(s, '/');
		size_t n = slash ? (size_t)(slash - s) : strlen(s);

		if (n == 0 || n >= sizeof(id))
			goto notfound;
		memcpy(id, s, n);
		id[n] = '\0';
		if (slash == NULL) {
			if (strcmp(req->method, get) != 0)
				goto method;
			r = fl_async_get(a, id, &j);
			if (r == -ENOENT)
				fl_httpd_respond_error(resp, 404, "no async request %s", id);
			else if (r < 0)
				fl_httpd_respond_error(resp, 500, "cannot read the async queue");
			else
				fl_httpd_respond_json(resp, 200, j);
			return;
		}
		if (strcmp(slash, "/retry") == 0) {
			if (strcmp(req->method, "POST") != 0)
				goto method;
			r = fl_async_redrive(a, id, err, sizeof(err));
			if (r < 0) {
				fl_httpd_respond_error(resp,
						       r == -ENOENT   ? 404
						       : r == -EINVAL ? 409
								      : 500,
						       "%s", err);
				return;
			}
			if (fl_async_get(a, id, &j) < 0)
				j = json_pack("{s:s, s:s}", "id", id, "status", "queued");
			fl_httpd_respond_json(resp, 202, j);
			return;
		}
	}
notfound:
	fl_httpd_respond_error(resp, 404, "no such API path: %s %s (see docs/api.md)", req->method,
			       p);
	return;
method:
	fl_httpd_respond_error(resp, 405, "%s is not allowed on %s", req->method, p);
}
