/* versions.c -- traffic split between versions of a function (flint traffic):
 * versions other than the current one run beside it as functions named
 * "NAME@vN", built from their stored specs; the gateway draws a version per
 * request by weight, or takes the one X-Flint-Version pins. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/ctl.h"
#include "core/log.h"
#include "core/util.h"

struct find_version {
	uint64_t version;
	char *spec_json;
};

static void find_cb(void *ctx, const struct fl_registry_row *row)
{
	struct find_version *f = ctx;

	if (row->version == f->version && f->spec_json == NULL)
		f->spec_json = fl_xstrdup(row->spec_json);
}

static void traffic_path(fl_ctl *ctl, const char *name, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/traffic/%s.json", ctl->data_dir, name);
}

static void save(fl_ctl *ctl, ctl_fn *fn)
{
	char path[4096], tmp[4200];
	json_t *j;
	char *text;
	int fd, i;

	traffic_path(ctl, fn->name, path, sizeof(path));
	if (fn->nsplit == 0) {
		unlink(path);
		return;
	}
	j = json_object();
	snprintf(tmp, sizeof(tmp), "%s/traffic", ctl->data_dir);
	fl_mkdirs(tmp, 0700);
	for (i = 0; i < fn->nsplit; i++) {
		char k[32];
		snprintf(k, sizeof(k), "%llu", (unsigned long long)fn->split[i].version);
		json_object_set_new(j, k, json_integer(fn->split[i].weight));
	}
	text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || fl_write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0 ||
	    rename(tmp, path) < 0)
		fl_warn("traffic", "cannot save the traffic split of %s in %s", fn->name, path);
	if (fd >= 0)
		close(fd);
	free(text);
}

static ctl_fn *hidden_of(fl_ctl *ctl, const char *name, uint64_t version)
{
	char hn[96];

	snprintf(hn, sizeof(hn), "%s@v%llu", name, (unsigned long long)version);
	return ctl_fn_find(ctl, hn);
}

/* Starts "NAME@vN" from the stored spec of version N. */
static int start_hidden(fl_ctl *ctl, ctl_fn *fn, uint64_t version, char *err, size_t errlen)
{
	struct find_version f = {version, NULL};
	json_error_t jerr;
	json_t *j;
	fl_spec *spec = NULL;
	char hn[96];
	int r;

	if (hidden_of(ctl, fn->name, version))
		return 0;
	fl_registry_versions(ctl->reg, fn->name, find_cb, &f);
	if (f.spec_json == NULL) {
		snprintf(err, errlen, "%s has no version %llu (see flint versions %s)", fn->name,
			 (unsigned long long)version, fn->name);
		return -ENOENT;
	}
	j = json_loads(f.spec_json, 0, &jerr);
	snprintf(hn, sizeof(hn), "%s@v%llu", fn->name, (unsigned long long)version);
	if (j == NULL || fl_spec_parse(j, &spec, err, errlen) < 0) {
		if (j == NULL)
			snprintf(err, errlen, "the stored spec of version %llu is unreadable",
				 (unsigned long long)version);
		json_decref(j);
		free(f.spec_json);
		return -EINVAL;
	}
	json_decref(j);
	free(spec->name);
	spec->name = fl_xstrdup(hn);
	r = ctl_fn_apply(ctl, spec, f.spec_json, version, fn->created_ms, fl_wall_ms(), err,
			 errlen);
	free(f.spec_json);
	return r;
}

int ctl_traffic_set(fl_ctl *ctl, ctl_fn *fn, const struct ctl_split *sp, int n, char *err,
		    size_t errlen)
{
	fl_list *l, *next;
	int i, k;
	uint32_t total = 0;

	if (n < 0 || n > (int)(sizeof(fn->split) / sizeof(fn->split[0]))) {
		snprintf(err, errlen, "at most 8 versions can share traffic");
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		total += sp[i].weight;
		for (k = 0; k < i; k++)
			if (sp[k].version == sp[i].version) {
				snprintf(err, errlen, "version %llu is listed twice",
					 (unsigned long long)sp[i].version);
				return -EINVAL;
			}
	}
	if (n && total == 0) {
		snprintf(err, errlen, "the weights add up to 0: at least one must be positive");
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		if (sp[i].version == fn->version || sp[i].weight == 0)
			continue;
		if (start_hidden(ctl, fn, sp[i].version, err, errlen) < 0)
			return -EINVAL;
	}
	/* One version at 100 % is no split at all. */
	if (n == 1 && sp[0].version == fn->version)
		n = 0;
	for (i = 0; i < n; i++)
		fn->split[i] = sp[i];
	fn->nsplit = n;
	/* Older versions no longer in the split go away. */
	for (l = ctl->fns.next; l != &ctl->fns; l = next) {
		ctl_fn *h = fl_container_of(l, ctl_fn, link);
		size_t nl = strlen(fn->name);
		int used = 0;
		next = l->next;
		if (!h->hidden || h->deleted || strncmp(h->name, fn->name, nl) != 0 ||
		    h->name[nl] != '@')
			continue;
		for (i = 0; i < n; i++)
			if (fn->split[i].version == h->version && fn->split[i].weight > 0)
				used = 1;
		if (!used)
			ctl_fn_remove(ctl, h);
	}
	save(ctl, fn);
	if (n) {
		char buf[160] = "";
		size_t o = 0;
		for (i = 0; i < n && o < sizeof(buf) - 24; i++)
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%sv%llu=%u", i ? " " : "",
					      (unsigned long long)fn->split[i].version,
					      fn->split[i].weight);
		ctl_event(fn, "traffic split: %s", buf);
	} else {
		ctl_event(fn, "traffic: all to version %llu", (unsigned long long)fn->version);
	}
	ctl_publish_now(ctl);
	return 0;
}

void ctl_traffic_reset(fl_ctl *ctl, ctl_fn *fn)
{
	char err[256];

	if (fn->nsplit == 0 && !fn->deleted)
		return;
	fn->nsplit = 0;
	ctl_traffic_set(ctl, fn, NULL, 0, err, sizeof(err));
}

void ctl_traffic_load(fl_ctl *ctl)
{
	fl_list *l;

	for (l = ctl->fns.next; l != &ctl->fns; l = l->next) {
		ctl_fn *fn = fl_container_of(l, ctl_fn, link);
		struct ctl_split sp[8];
		char path[4096], err[256];
		json_error_t jerr;
		json_t *j, *v;
		const char *k;
		int n = 0;

		if (fn->hidden || fn->deleted)
			continue;
		traffic_path(ctl, fn->name, path, sizeof(path));
		if (access(path, F_OK) != 0)
			continue;
		j = json_load_file(path, 0, &jerr);
		json_object_foreach(j, k, v)
		{
			if (n < 8 && json_is_integer(v)) {
				sp[n].version = strtoull(k, NULL, 10);
				sp[n++].weight = (uint32_t)json_integer_value(v);
			}
		}
		json_decref(j);
		if (ctl_traffic_set(ctl, fn, sp, n, err, sizeof(err)) < 0)
			fl_warn("traffic", "cannot restore the traffic split of %s: %s", fn->name,
				err);
	}
}

/* ---- the admin API: versions, traffic, rollback ---- */

struct vlist {
	json_t *arr;
	ctl_fn *fn;
};

static void version_row(void *ctx, const struct fl_registry_row *row)
{
	struct vlist *v = ctx;
	json_error_t jerr;
	json_t *spec = json_loads(row->spec_json, 0, &jerr), *j = json_object();
	uint32_t weight = row->version == v->fn->version && v->fn->nsplit == 0 ? 100 : 0;
	int i;

	for (i = 0; i < v->fn->nsplit; i++)
		if (v->fn->split[i].version == row->version)
			weight = v->fn->split[i].weight;
	json_object_set_new(j, "version", json_integer((json_int_t)row->version));
	json_object_set_new(j, "created_ms", json_integer((json_int_t)row->created_ms));
	json_object_set_new(j, "current", json_boolean(row->version == v->fn->version));
	json_object_set_new(j, "weight", json_integer(weight));
	if (spec && json_object_get(spec, "code"))
		json_object_set(j, "code", json_object_get(spec, "code"));
	json_decref(spec);
	json_array_append_new(v->arr, j);
}

static json_t *traffic_json(ctl_fn *fn)
{
	json_t *j = json_object(), *w = json_object();
	char k[32];
	int i;

	if (fn->nsplit == 0) {
		snprintf(k, sizeof(k), "%llu", (unsigned long long)fn->version);
		json_object_set_new(w, k, json_integer(100));
	}
	for (i = 0; i < fn->nsplit; i++) {
		snprintf(k, sizeof(k), "%llu", (unsigned long long)fn->split[i].version);
		json_object_set_new(w, k, json_integer(fn->split[i].weight));
	}
	json_object_set_new(j, "name", json_string(fn->name));
	json_object_set_new(j, "current", json_integer((json_int_t)fn->version));
	json_object_set_new(j, "weights", w);
	return j;
}

/* Body: {"weights": {"3": 90, "4": 10}} (keys may be written "v3"). */
static void traffic_put(fl_ctl *ctl, ctl_fn *fn, fl_httpd_req *req, fl_httpd_resp *resp)
{
	json_error_t jerr;
	json_t *j = json_loadb(req->body, req->body_len, 0, &jerr), *w, *v;
	struct ctl_split sp[8];
	const char *k;
	char err[300];
	int n = 0;

	w = j ? json_object_get(j, "weights") : NULL;
	if (!json_is_object(w) || json_object_size(w) == 0) {
		fl_httpd_respond_error(resp, 400,
				       "weights: must be an object like {\"3\": 90, \"4\": 10}");
		json_decref(j);
		return;
	}
	json_object_foreach(w, k, v)
	{
		const char *num = (k[0] == 'v' || k[0] == 'V') ? k + 1 : k;
		char *end;
		unsigned long long ver = strtoull(num, &end, 10);
		if (*num == '\0' || *end || ver == 0) {
			fl_httpd_respond_error(resp, 400, "weights.%s: not a version number", k);
			json_decref(j);
			return;
		}
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 1000000) {
			fl_httpd_respond_error(resp, 400,
					       "weights.%s: must be a whole number from 0", k);
			json_decref(j);
			return;
		}
		if (n == 8) {
			fl_httpd_respond_error(resp, 400, "at most 8 versions can share traffic");
			json_decref(j);
			return;
		}
		sp[n].version = ver;
		sp[n++].weight = (uint32_t)json_integer_value(v);
	}
	json_decref(j);
	if (ctl_traffic_set(ctl, fn, sp, n, err, sizeof(err)) < 0) {
		fl_httpd_respond_error(resp, 400, "%s", err);
		return;
	}
	fl_httpd_respond_json(resp, 200, traffic_json(fn));
}

/* Body: {"version": N}, or empty for the version before the current one. The
 * old spec is deployed again as a new version, so the history stays linear. */
static void rollback(fl_ctl *ctl, ctl_fn *fn, fl_httpd_req *req, fl_httpd_resp *resp)
{
	json_error_t jerr;
	json_t *j = req->body_len ? json_loadb(req->body, req->body_len, 0, &jerr) : NULL, *want;
	struct find_version f = {fn->version > 1 ? fn->version - 1 : 0, NULL};
	char err[512], name[128];
	uint64_t version;
	int created, st;

	if (j && (want = json_object_get(j, "version")) != NULL) {
		if (!json_is_integer(want) || json_integer_value(want) < 1) {
			fl_httpd_respond_error(resp, 400, "version: must be a version number");
			json_decref(j);
			return;
		}
		f.version = (uint64_t)json_integer_value(want);
	}
	json_decref(j);
	if (f.version == 0 || f.version == fn->version) {
		fl_httpd_respond_error(
		    resp, 400, "%s is at version %llu: name an older version to roll back to",
		    fn->name, (unsigned long long)fn->version);
		return;
	}
	fl_registry_versions(ctl->reg, fn->name, find_cb, &f);
	if (f.spec_json == NULL) {
		fl_httpd_respond_error(resp, 404, "%s has no version %llu", fn->name,
				       (unsigned long long)f.version);
		return;
	}
	snprintf(name, sizeof(name), "%s", fn->name);
	j = json_loads(f.spec_json, 0, &jerr);
	free(f.spec_json);
	st = j ? ctl_put_spec(ctl, name, j, &version, &created, err, sizeof(err)) : 500;
	json_decref(j);
	if (st != 0) {
		fl_httpd_respond_error(resp, st, "%s", j ? err : "the stored spec is unreadable");
		return;
	}
	j = json_object();
	json_object_set_new(j, "name", json_string(name));
	json_object_set_new(j, "version", json_integer((json_int_t)version));
	json_object_set_new(j, "rolled_back_to", json_integer((json_int_t)f.version));
	fl_httpd_respond_json(resp, 200, j);
}

void ctl_versions_api(fl_ctl *ctl, ctl_fn *fn, fl_httpd_req *req, fl_httpd_resp *resp, int what)
{
	if (what == 0) {
		struct vlist v = {json_array(), fn};
		json_t *j = json_object();
		fl_registry_versions(ctl->reg, fn->name, version_row, &v);
		json_object_set_new(j, "name", json_string(fn->name));
		json_object_set_new(j, "versions", v.arr);
		fl_httpd_respond_json(resp, 200, j);
	} else if (what == 1) {
		fl_httpd_respond_json(resp, 200, traffic_json(fn));
	} else if (what == 2) {
		traffic_put(ctl, fn, req, resp);
	} else {
		rollback(ctl, fn, req, resp);
	}
}
