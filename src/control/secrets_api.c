/* secrets_api.c -- /v1/secrets on the admin API: store, list (names and keys) and delete
 * secrets. Values go in and never come out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/ctl.h"
#include "control/secrets.h"
#include "core/base64.h"
#include "core/buf.h"
#include "core/util.h"

/* The functions (not deleted) whose spec lists secret name, as a JSON array. */
static json_t *used_by(fl_ctl *ctl, const char *name)
{
	json_t *arr = json_array();
	fl_list *l;

	for (l = ctl->fns.next; l != &ctl->fns; l = l->next) {
		ctl_fn *fn = fl_container_of(l, ctl_fn, link);
		if (fn->deleted)
			continue;
		for (int i = 0; i < fn->spec->nsecrets; i++)
			if (strcmp(fn->spec->secrets[i], name) == 0)
				json_array_append_new(arr, json_string(fn->name));
	}
	return arr;
}

static json_t *secret_json(fl_ctl *ctl, const char *name, json_t *keys)
{
	json_t *j = json_object();

	json_object_set_new(j, "name", json_string(name));
	json_object_set_new(j, "keys", keys);
	json_object_set_new(j, "used_by", used_by(ctl, name));
	return j;
}

/* Collects the keys of body's "data" (base64) and "stringData" (text) into kv;
 * values are decoded into *bufs (freed by the caller). Returns 0, or 400 with err. */
static int collect(const json_t *body, struct fl_secret_kv *kv, unsigned char **bufs, int *n,
		   char *err, size_t errlen)
{
	static const char *const fields[] = {"data", "stringData"};
	size_t total = 0;
	const char *k, *f;
	json_t *o, *v;

	json_object_foreach((json_t *)body, f, v)
	{
		if (strcmp(f, "data") != 0 && strcmp(f, "stringData") != 0) {
			snprintf(err, errlen,
				 "unknown field \"%s\" (a secret has \"data\" and \"stringData\")",
				 f);
			return 400;
		}
	}
	for (int fi = 0; fi < 2; fi++) {
		if ((o = json_object_get(body, fields[fi])) == NULL || json_is_null(o))
			continue;
		if (!json_is_object(o)) {
			snprintf(err, errlen, "%s: must be an object of KEY: value pairs",
				 fields[fi]);
			return 400;
		}
		json_object_foreach(o, k, v)
		{
			int i;
			if (!fl_secret_valid_key(k)) {
				snprintf(
				    err, errlen,
				    "%s.%s: keys are file names: 1-255 characters of A-Z, a-z, "
				    "0-9, '.', '_' and '-', not starting with '.'",
				    fields[fi], k);
				return 400;
			}
			for (i = 0; i < *n; i++)
				if (strcmp(kv[i].key, k) == 0) {
					snprintf(err, errlen, "%s.%s: the key is given twice",
						 fields[fi], k);
					return 400;
				}
			if (*n >= FL_SECRET_MAX_KEYS) {
				snprintf(err, errlen, "a secret has at most %d keys",
					 FL_SECRET_MAX_KEYS);
				return 400;
			}
			if (!json_is_string(v)) {
				snprintf(err, errlen, "%s.%s: must be a string", fields[fi], k);
				return 400;
			}
			kv[*n].key = k;
			if (fi == 0) {
				bufs[*n] = fl_base64_decode(json_string_value(v),
							    json_string_length(v), &kv[*n].len);
				if (bufs[*n] == NULL) {
					snprintf(err, errlen, "data.%s: must be base64", k);
					return 400;
				}
				kv[*n].val = bufs[*n];
			} else {
				kv[*n].val = (const unsigned char *)json_string_value(v);
				kv[*n].len = json_string_length(v);
			}
			total += kv[*n].len;
			(*n)++;
		}
	}
	if (*n == 0) {
		snprintf(err, errlen,
			 "a secret needs at least one key in \"data\" or \"stringData\"");
		return 400;
	}
	if (total > FL_SECRET_MAX_BYTES) {
		snprintf(err, errlen, "the values of a secret may hold at most %u bytes together",
			 FL_SECRET_MAX_BYTES);
		return 400;
	}
	return 0;
}

static void put_secret(fl_ctl *ctl, const char *name, fl_httpd_req *req, fl_httpd_resp *resp)
{
	struct fl_secret_kv kv[FL_SECRET_MAX_KEYS];
	unsigned char *bufs[FL_SECRET_MAX_KEYS] = {0};
	json_error_t jerr;
	json_t *body;
	char err[512];
	int n = 0, created = 0, st, r, i;

	body = json_loadb(req->body, req->body_len, 0, &jerr);
	if (body == NULL || !json_is_object(body)) {
		fl_httpd_respond_error(
		    resp, 400,
		    "the body must be a JSON object like {\"stringData\": {\"KEY\": "
		    "\"value\"}} or {\"data\": {\"KEY\": \"BASE64\"}}");
		json_decref(body);
		return;
	}
	st = collect(body, kv, bufs, &n, err, sizeof(err));
	if (st != 0) {
		fl_httpd_respond_error(resp, st, "%s", err);
		goto out;
	}
	r = fl_secret_put(ctl->data_dir, name, kv, n, &created);
	if (r < 0) {
		fl_httpd_respond_error(resp, 500, "cannot store secret %s: %s", name, strerror(-r));
		goto out;
	}
	{
		json_t *j = secret_json(ctl, name, fl_secret_keys(ctl->data_dir, name));
		json_object_set_new(j, "created", json_boolean(created));
		fl_httpd_respond_json(resp, created ? 201 : 200, j);
	}
out:
	/* Decoded values are wiped before they are freed; jansson's copies are not ours. */
	for (i = 0; i < FL_SECRET_MAX_KEYS; i++)
		if (bufs[i]) {
			explicit_bzero(bufs[i], kv[i].len);
			free(bufs[i]);
		}
	json_decref(body);
}

void ctl_secrets_admin(fl_ctl *ctl, fl_httpd_req *req, fl_httpd_resp *resp)
{
	const char *m = req->method, *name;
	json_t *keys;

	if (strcmp(req->path, "/v1/secrets") == 0) {
		json_t *names, *arr, *v, *j;
		size_t i;
		if (strcmp(m, "GET") != 0) {
			fl_httpd_respond_error(resp, 405, "%s is not allowed on %s", m, req->path);
			return;
		}
		names = fl_secret_names(ctl->data_dir);
		arr = json_array();
		json_array_foreach(names, i, v)
		{
			const char *nm = json_string_value(v);
			if (fl_valid_name(nm) && (keys = fl_secret_keys(ctl->data_dir, nm)) != NULL)
				json_array_append_new(arr, secret_json(ctl, nm, keys));
		}
		json_decref(names);
		j = json_object();
		json_object_set_new(j, "secrets", arr);
		fl_httpd_respond_json(resp, 200, j);
		return;
	}
	name = req->path + strlen("/v1/secrets/");
	if (!fl_valid_name(name)) {
		fl_httpd_respond_error(
		    resp, 400,
		    "'%s' is not a valid secret name (1-63 characters of a-z, 0-9 "
		    "and '-', not starting or ending with '-')",
		    name);
		return;
	}
	if (strcmp(m, "PUT") == 0) {
		put_secret(ctl, name, req, resp);
		return;
	}
	if (strcmp(m, "GET") == 0) {
		keys = fl_secret_keys(ctl->data_dir, name);
		if (keys == NULL)
			fl_httpd_respond_error(resp, 404, "no secret named %s", name);
		else
			fl_httpd_respond_json(resp, 200, secret_json(ctl, name, keys));
		return;
	}
	if (strcmp(m, "DELETE") == 0) {
		json_t *users = used_by(ctl, name), *v, *j;
		size_t i;
		int r;
		if (!fl_secret_exists(ctl->data_dir, name)) {
			json_decref(users);
			fl_httpd_respond_error(resp, 404, "no secret named %s", name);
			return;
		}
		if (json_array_size(users)) {
			/* Removing it would make the next instance of those functions fail to
			 * start. */
			fl_buf b = FL_BUF_INIT;
			json_array_foreach(users, i, v)
			    fl_buf_printf(&b, "%s%s", i ? ", " : "", json_string_value(v));
			fl_httpd_respond_error(
			    resp, 409,
			    "secret %s is used by %s: remove it from their specs "
			    "(or delete them) first",
			    name, b.p);
			fl_buf_free(&b);
			json_decref(users);
			return;
		}
		json_decref(users);
		r = fl_secret_remove(ctl->data_dir, name);
		if (r < 0) {
			fl_httpd_respond_error(resp, 500, "cannot delete secret %s: %s", name,
					       strerror(-r));
			return;
		}
		j = json_object();
		json_object_set_new(j, "deleted", json_string(name));
		fl_httpd_respond_json(resp, 200, j);
		return;
	}
	fl_httpd_respond_error(resp, 405, "%s is not allowed on %s", m, req->path);
}
