/* yaml.c -- YAML documents to JSON values, driven by libyaml's event parser. */
#include "core/yaml.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Deep enough for any spec file, shallow enough that hostile input cannot
 * exhaust the stack through recursion. */
#define YAML_MAX_DEPTH 64

#define TAG_STR	  "tag:yaml.org,2002:str"
#define TAG_INT	  "tag:yaml.org,2002:int"
#define TAG_FLOAT "tag:yaml.org,2002:float"
#define TAG_BOOL  "tag:yaml.org,2002:bool"
#define TAG_NULL  "tag:yaml.org,2002:null"

typedef struct yctx {
	yaml_parser_t parser;
	char *err;
	size_t errlen;
	int failed;
} yctx;

static void set_err(yctx *c, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the first error only: later ones are consequences of it. */
static void set_err(yctx *c, size_t line, const char *fmt, ...)
{
	if (c->failed)
		return;
	c->failed = 1;
	if (c->errlen == 0)
		return;
	int n = snprintf(c->err, c->errlen, "line %zu: ", line);
	if (n < 0 || (size_t)n >= c->errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->errlen - n, fmt, ap);
	va_end(ap);
}

/* Pulls the next event; on a syntax error records libyaml's problem with its line. */
static int next_event(yctx *c, yaml_event_t *ev)
{
	if (yaml_parser_parse(&c->parser, ev))
		return 0;
	size_t line = c->parser.problem_mark.line + 1;
	if (c->parser.error == YAML_MEMORY_ERROR)
		set_err(c, line, "out of memory");
	else if (c->parser.problem && c->parser.context)
		set_err(c, line, "%s %s", c->parser.problem, c->parser.context);
	else if (c->parser.problem)
		set_err(c, line, "%s", c->parser.problem);
	else
		set_err(c, line, "the document is not valid YAML");
	return -1;
}

static int is_digits(const char *s, const char *set)
{
	if (*s == '\0')
		return 0;
	return s[strspn(s, set)] == '\0';
}

/* Reads an integer in the YAML 1.2 core schema forms: [-+]?[0-9]+, 0o777, 0xFF.
 * Returns 1 and *out if s is one, -ERANGE if it is one too large for 64 bits,
 * 0 if it is not an integer. */
static int parse_int(const char *s, json_int_t *out)
{
	const char *digits = s;
	int base = 10;
	if (s[0] == '0' && s[1] == 'o') {
		digits = s + 2, base = 8;
		if (!is_digits(digits, "01234567"))
			return 0;
	} else if (s[0] == '0' && s[1] == 'x') {
		digits = s + 2, base = 16;
		if (!is_digits(digits, "0123456789abcdefABCDEF"))
			return 0;
	} else {
		if (*digits == '-' || *digits == '+')
			digits++;
		if (!is_digits(digits, "0123456789"))
			return 0;
	}
	errno = 0;
	char *end;
	long long v = strtoll(base == 10 ? s : digits, &end, base);
	if (*end != '\0')
		return 0;
	if (errno == ERANGE)
		return -ERANGE;
	*out = (json_int_t)v;
	return 1;
}

/* Reads a decimal real: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?.
 * strtod alone would also take "inf", "0x1p3" and leading spaces. */
static int parse_real(const char *s, double *out)
{
	const char *p = s;
	if (*p == '-' || *p == '+')
		p++;
	size_t intpart = strspn(p, "0123456789");
	p += intpart;
	size_t frac = 0;
	if (*p == '.') {
		p++;
		frac = strspn(p, "0123456789");
		p += frac;
	}
	if (intpart == 0 && frac == 0)
		return 0;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '-' || *p == '+')
			p++;
		size_t exp = strspn(p, "0123456789");
		if (exp == 0)
			return 0;
		p += exp;
	}
	if (*p != '\0')
		return 0;
	*out = strtod(s, NULL);
	return isfinite(*out);
}

static int is_one_of(const char *s, const char *a, const char *b, const char *c)
{
	return strcmp(s, a) == 0 || strcmp(s, b) == 0 || strcmp(s, c) == 0;
}

/* Types a plain scalar by the YAML 1.2 core schema. YAML 1.1's yes/no/on/off
 * stay strings on purpose: `country: no` must not turn into false. */
static json_t *plain_scalar(yctx *c, const char *s, size_t line)
{
	json_int_t i;
	double d;
	if (*s == '\0' || is_one_of(s, "~", "null", "Null") || strcmp(s, "NULL") == 0)
		return json_null();
	if (is_one_of(s, "true", "True", "TRUE"))
		return json_true();
	if (is_one_of(s, "false", "False", "FALSE"))
		return json_false();
	int r = parse_int(s, &i);
	if (r > 0)
		return json_integer(i);
	/* Integers too large for 64 bits stay text: that loses no digits, and
	 * whoever reads the field reports its range. */
	if (r < 0)
		return json_string(s);
	if (parse_real(s, &d))
		return json_real(d);
	const char *t = (*s == '-' || *s == '+') ? s + 1 : s;
	if (is_one_of(t, ".inf", ".Inf", ".INF") || is_one_of(s, ".nan", ".NaN", ".NAN")) {
		set_err(c, line, "%s has no JSON form; quote it to keep it as text", s);
		return NULL;
	}
	return json_string(s);
}

static json_t *scalar(yctx *c, yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	const char *tag = (const char *)ev->data.scalar.tag;
	size_t line = ev->start_mark.line + 1;
	json_t *v;

	if (strlen(s) != ev->data.scalar.length) {
		set_err(c, line, "text values may not contain NUL characters");
		return NULL;
	}
	if (tag == NULL || strcmp(tag, "!") == 0) {
		/* Only plain scalars are typed: quoted and block scalars are text. */
		if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && tag == NULL)
			v = plain_scalar(c, s, line);
		else
			v = json_string(s);
	} else if (strcmp(tag, TAG_STR) == 0) {
		v = json_string(s);
	} else if (strcmp(tag, TAG_INT) == 0 || strcmp(tag, TAG_FLOAT) == 0 ||
		   strcmp(tag, TAG_BOOL) == 0 || strcmp(tag, TAG_NULL) == 0) {
		v = plain_scalar(c, s, line);
		int want = strcmp(tag, TAG_INT) == 0	 ? JSON_INTEGER
			   : strcmp(tag, TAG_FLOAT) == 0 ? JSON_REAL
			   : strcmp(tag, TAG_BOOL) == 0	 ? JSON_TRUE
							 : JSON_NULL;
		int got = v ? (int)json_typeof(v) : -1;
		if (got == JSON_FALSE)
			got = JSON_TRUE;
		if (want == JSON_REAL && got == JSON_INTEGER) {
			json_t *r = json_real((double)json_integer_value(v));
			json_decref(v);
			v = r;
			got = JSON_REAL;
		}
		if (v && got != want) {
			set_err(c, line, "\"%s\" does not match its tag %s", s, tag);
			json_decref(v);
			v = NULL;
		}
	} else {
		set_err(c, line, "the tag %s is not supported", tag);
		return NULL;
	}
	if (v == NULL)
		set_err(c, line, "out of memory");
	return v;
}

static json_t *node(yctx *c, yaml_event_t *ev, int depth);

/* Builds a mapping; ev is its MAPPING_START event. Keys must be scalars and
 * unique: a repeated key in a spec file is nearly always a mistake. */
static json_t *mapping(yctx *c, yaml_event_t *start, int depth)
{
	json_t *obj = json_object();
	yaml_event_t ev;
	if (obj == NULL) {
		set_err(c, start->start_mark.line + 1, "out of memory");
		return NULL;
	}
	for (;;) {
		if (next_event(c, &ev) < 0)
			goto fail;
		if (ev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&ev);
			return obj;
		}
		size_t line = ev.start_mark.line + 1;
		if (ev.type == YAML_ALIAS_EVENT) {
			set_err(c, line, "anchors and aliases (*name) are not supported");
			goto fail_ev;
		}
		if (ev.type != YAML_SCALAR_EVENT) {
			set_err(c, line, "mapping keys must be scalars");
			goto fail_ev;
		}
		if (ev.data.scalar.anchor) {
			set_err(c, line, "anchors and aliases (&name) are not supported");
			goto fail_ev;
		}
		const char *key = (const char *)ev.data.scalar.value;
		if (strlen(key) != ev.data.scalar.length) {
			set_err(c, line, "keys may not contain NUL characters");
			goto fail_ev;
		}
		if (strcmp(key, "<<") == 0 && ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
			set_err(c, line, "merge keys (<<) are not supported");
			goto fail_ev;
		}
		if (json_object_get(obj, key)) {
			set_err(c, line, "the key \"%s\" appears twice", key);
			goto fail_ev;
		}
		char *k = strdup(key);
		yaml_event_delete(&ev);
		if (k == NULL) {
			set_err(c, line, "out of memory");
			goto fail;
		}
		if (next_event(c, &ev) < 0) {
			free(k);
			goto fail;
		}
		json_t *v = node(c, &ev, depth + 1);
		yaml_event_delete(&ev);
		if (v == NULL || json_object_set_new(obj, k, v) < 0) {
			free(k);
			set_err(c, line, "out of memory");
			goto fail;
		}
		free(k);
	}
fail_ev:
	yaml_event_delete(&ev);
fail:
	json_decref(obj);
	return NULL;
}

/* Builds a sequence; ev is its SEQUENCE_START event. */
static json_t *sequence(yctx *c, yaml_event_t *start, int depth)
{
	json_t *arr = json_array();
	yaml_event_t ev;
	if (arr == NULL) {
		set_err(c, start->start_mark.line + 1, "out of memory");
		return NULL;
	}
	for (;;) {
		if (next_event(c, &ev) < 0)
			goto fail;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			return arr;
		}
		size_t line = ev.start_mark.line + 1;
		json_t *v = node(c, &ev, depth + 1);
		yaml_event_delete(&ev);
		if (v == NULL || json_array_append_new(arr, v) < 0) {
			set_err(c, line, "out of memory");
			goto fail;
		}
	}
fail:
	json_decref(arr);
	return NULL;
}

/* Converts the node that begins with ev (which the caller still owns). */
static json_t *node(yctx *c, yaml_event_t *ev, int depth)
{
	size_t line = ev->start_mark.line + 1;
	const yaml_char_t *anchor = NULL;

	if (depth > YAML_MAX_DEPTH) {
		set_err(c, line, "nesting is deeper than %d levels", YAML_MAX_DEPTH);
		return NULL;
	}
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		break;
	case YAML_ALIAS_EVENT:
		set_err(c, line, "anchors and aliases (*name) are not supported");
		return NULL;
	default:
		set_err(c, line, "unexpected YAML structure");
		return NULL;
	}
	/* Aliases would let a small file expand into a huge value ("billion
	 * laughs"), and a spec file has no need for them. */
	if (anchor) {
		set_err(c, line, "anchors and aliases (&%s) are not supported",
			(const char *)anchor);
		return NULL;
	}
	if (ev->type == YAML_SCALAR_EVENT)
		return scalar(c, ev);
	if (ev->type == YAML_SEQUENCE_START_EVENT)
		return sequence(c, ev, depth);
	return mapping(c, ev, depth);
}

json_t *fl_yaml_to_json(const char *text, size_t len, char *err, size_t errlen)
{
	yctx c = {.err = err, .errlen = errlen};
	yaml_event_t ev;
	json_t *root = NULL;

	if (errlen)
		err[0] = '\0';
	if (!yaml_parser_initialize(&c.parser)) {
		set_err(&c, 1, "out of memory");
		return NULL;
	}
	yaml_parser_set_input_string(&c.parser, (const unsigned char *)text, len);

	/* STREAM-START, then DOCUMENT-START unless the stream is empty. */
	if (next_event(&c, &ev) < 0)
		goto out;
	yaml_event_delete(&ev);
	if (next_event(&c, &ev) < 0)
		goto out;
	if (ev.type != YAML_DOCUMENT_START_EVENT) {
		set_err(&c, ev.start_mark.line + 1, "the document is empty");
		yaml_event_delete(&ev);
		goto out;
	}
	yaml_event_delete(&ev);
	if (next_event(&c, &ev) < 0)
		goto out;
	root = node(&c, &ev, 0);
	yaml_event_delete(&ev);
	if (root == NULL)
		goto out;
	/* Reading DOCUMENT-END catches trailing garbage after the root node. Later
	 * documents are not read: only the first one counts. */
	if (next_event(&c, &ev) < 0) {
		json_decref(root);
		root = NULL;
		goto out;
	}
	yaml_event_delete(&ev);
out:
	yaml_parser_delete(&c.parser);
	if (root == NULL && !c.failed)
		set_err(&c, 1, "the document is not valid YAML");
	return root;
}
