/* cmd_secret.c -- `flint secret create|ls|rm`: the secrets functions read from /run/secrets. */
#include "cli/client.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/util.h"

static const char secret_help[] =
    "usage: flint secret create NAME (--from-literal K=V ... | --from-file PATH ...)\n"
    "       flint secret ls [-o json]\n"
    "       flint secret rm NAME\n\n"
    "Secrets are stored by the daemon (mode 0600) and appear inside the sandbox of each\n"
    "function that lists them in its spec (secrets: [NAME]) as files\n"
    "/run/secrets/NAME/KEY, mode 0400. Their values are never shown again.\n"
    "  --from-literal K=V   a key and its value (repeatable)\n"
    "  --from-file PATH     a file, stored under its base name (repeatable)\n"
    "`create` replaces every key of an existing secret; running instances keep the copy\n"
    "they started with.\n";

static int secret_create(fl_cli__ctx *c, const char *name, json_t *str, json_t *data)
{
	json_t *body = json_object(), *r = NULL;
	char *en = fl_cli__escape(name);
	fl_buf path = FL_BUF_INIT;
	int rc;

	if (json_object_size(str))
		json_object_set(body, "stringData", str);
	if (json_object_size(data))
		json_object_set(body, "data", data);
	fl_buf_printf(&path, "/v1/secrets/%s", en);
	rc = fl_cli__admin_json(c, "PUT", path.p, body, &r);
	if (rc == 0) {
		printf("%s secret %s (%zu key%s)\n",
		       json_is_true(json_object_get(r, "created")) ? "created" : "replaced", name,
		       json_array_size(json_object_get(r, "keys")),
		       json_array_size(json_object_get(r, "keys")) == 1 ? "" : "s");
		json_decref(r);
	}
	json_decref(body);
	fl_buf_free(&path);
	free(en);
	return rc;
}

static int secret_ls(fl_cli__ctx *c, int json)
{
	json_t *r = NULL, *arr, *s;
	size_t i, k;
	int rc;

	if ((rc = fl_cli__admin_json(c, "GET", "/v1/secrets", NULL, &r)) != 0)
		return rc;
	if (json) {
		fl_cli__print_json(r);
		json_decref(r);
		return FL_CLI_OK;
	}
	arr = json_object_get(r, "secrets");
	if (json_array_size(arr) == 0) {
		fprintf(stderr, "no secrets yet; create one with `flint secret create NAME "
				"--from-literal K=V`\n");
		json_decref(r);
		return FL_CLI_OK;
	}
	printf("%-24s %-32s %s\n", "NAME", "KEYS", "USED BY");
	json_array_foreach(arr, i, s)
	{
		fl_buf keys = FL_BUF_INIT, users = FL_BUF_INIT;
		json_t *v;
		json_array_foreach(json_object_get(s, "keys"), k, v)
		    fl_buf_printf(&keys, "%s%s", k ? "," : "", json_string_value(v));
		json_array_foreach(json_object_get(s, "used_by"), k, v)
		    fl_buf_printf(&users, "%s%s", k ? "," : "", json_string_value(v));
		printf("%-24s %-32s %s\n", fl_cli__str(s, "name", "?"), keys.p ? keys.p : "-",
		       users.p ? users.p : "-");
		fl_buf_free(&keys);
		fl_buf_free(&users);
	}
	json_decref(r);
	return FL_CLI_OK;
}

int fl_cli__secret(fl_cli__ctx *c, int argc, char **argv)
{
	static const fl_cli__opt opts[] = {
	    {"from-literal", 0, 1, 'l'},
	    {"from-file", 0, 1, 'f'},
	    {"output", 'o', 1, 'o'},
	    {NULL, 0, 0, 0},
	};
	json_t *str = json_object(), *data = json_object();
	const char *sub = NULL, *name = NULL, *v;
	fl_cli__args a;
	int id, json = 0, rc = FL_CLI_USAGE;

	fl_cli__args_init(&a, c, argc, argv, opts);
	while ((id = fl_cli__next_opt(&a, &v)) != FL_CLI_ARG_END) {
		if (id == FL_CLI_ARG_ERR)
			goto out;
		if (id == FL_CLI_ARG_HELP) {
			fputs(secret_help, stdout);
			rc = FL_CLI_OK;
			goto out;
		}
		if (id == FL_CLI_ARG_POS) {
			if (sub == NULL) {
				sub = v;
			} else if (name == NULL) {
				name = v;
			} else {
				rc = fl_cli__usage_err(c, "unexpected argument \"%s\"", v);
				goto out;
			}
		} else if (id == 'o') {
			if (strcmp(v, "json") != 0 && strcmp(v, "text") != 0) {
				rc = fl_cli__usage_err(c, "-o takes json or text, not \"%s\"", v);
				goto out;
			}
			json = strcmp(v, "json") == 0;
		} else if (id == 'l') {
			const char *eq = strchr(v, '=');
			char *k;
			if (eq == NULL || eq == v) {
				rc = fl_cli__usage_err(
				    c, "--from-literal takes KEY=VALUE, not \"%s\"", v);
				goto out;
			}
			k = fl_xstrndup(v, (size_t)(eq - v));
			if (json_object_get(str, k) || json_object_get(data, k)) {
				rc = fl_cli__usage_err(c, "key \"%s\" is given twice", k);
				free(k);
				goto out;
			}
			json_object_set_new(str, k, json_string(eq + 1));
			free(k);
		} else if (id == 'f') {
			size_t len;
			char *content = fl_read_file(v, &len), *copy = fl_xstrdup(v), *b64;
			const char *base = basename(copy);
			if (content == NULL) {
				fl_cli__err("cannot read %s: %s", v, strerror(errno));
				free(copy);
				rc = FL_CLI_FAIL;
				goto out;
			}
			if (json_object_get(str, base) || json_object_get(data, base)) {
				rc = fl_cli__usage_err(c, "key \"%s\" is given twice", base);
				free(content);
				free(copy);
				goto out;
			}
			/* Any bytes, so base64 ("data"), as Kubernetes does. */
			b64 = fl_base64_encode(content, len);
			json_object_set_new(data, base, json_string(b64));
			free(b64);
			free(content);
			free(copy);
		}
	}
	if (a.rest) {
		rc = fl_cli__usage_err(c, "takes no command after --");
		goto out;
	}
	if (sub == NULL) {
		rc = fl_cli__usage_err(c, "which action? create, ls or rm");
		goto out;
	}
	if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0) {
		if (name) {
			rc = fl_cli__usage_err(c, "ls takes no NAME");
			goto out;
		}
		fl_cli__ctx_finish(c);
		rc = secret_ls(c, json);
		goto out;
	}
	if (strcmp(sub, "create") != 0 && strcmp(sub, "rm") != 0) {
		rc = fl_cli__usage_err(c, "unknown action \"%s\": use create, ls or rm", sub);
		goto out;
	}
	if (name == NULL) {
		rc = fl_cli__usage_err(c, "which secret? Give its NAME");
		goto out;
	}
	if (!fl_valid_name(name)) {
		rc = fl_cli__usage_err(c,
				       "\"%s\" is not a valid secret name (1-63 characters of a-z, "
				       "0-9 and '-', not starting or ending with '-')",
				       name);
		goto out;
	}
	fl_cli__ctx_finish(c);
	if (strcmp(sub, "create") == 0) {
		if (json_object_size(str) + json_object_size(data) == 0) {
			rc = fl_cli__usage_err(c, "create needs --from-literal K=V or --from-file "
						  "PATH");
			goto out;
		}
		rc = secret_create(c, name, str, data);
	} else {
		char *en = fl_cli__escape(name);
		fl_buf path = FL_BUF_INIT;
		fl_buf_printf(&path, "/v1/secrets/%s", en);
		rc = fl_cli__admin_json(c, "DELETE", path.p, NULL, NULL);
		if (rc == 0)
			printf("deleted secret %s\n", name);
		fl_buf_free(&path);
		free(en);
	}
out:
	json_decref(str);
	json_decref(data);
	return rc;
}
