/* test_yaml.c -- unit tests for YAML to JSON conversion (src/core/yaml.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/yaml.c"

static char err[256];

static json_t *conv(const char *text)
{
	return fl_yaml_to_json(text, strlen(text), err, sizeof err);
}

/* Converts text, which must succeed, and compares the compact JSON encoding. */
static void expect_json(const char *text, const char *want)
{
	json_t *j = conv(text);
	if (j == NULL)
		fail_msg("conversion of %s failed: %s", text, err);
	char *got = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
	json_decref(j);
}

/* Converts text, which must fail with exactly the given message. */
static void expect_error(const char *text, const char *want)
{
	json_t *j = conv(text);
	if (j) {
		char *got = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
		fail_msg("conversion of %s should fail, gave %s", text, got);
	}
	assert_string_equal(err, want);
}

static void test_scalar_typing(void **state)
{
	expect_json("a: 10", "{\"a\":10}");
	expect_json("a: -7", "{\"a\":-7}");
	expect_json("a: 0x1F", "{\"a\":31}");
	expect_json("a: 0o17", "{\"a\":15}");
	expect_json("a: 1.5", "{\"a\":1.5}");
	expect_json("a: 2e3", "{\"a\":2000.0}");
	expect_json("a: 60s", "{\"a\":\"60s\"}");
	expect_json("a: 10m", "{\"a\":\"10m\"}");
	expect_json("a: true\nb: False\nc: TRUE", "{\"a\":true,\"b\":false,\"c\":true}");
	expect_json("a: null\nb: ~\nc:", "{\"a\":null,\"b\":null,\"c\":null}");
	/* YAML 1.1 booleans are text under the 1.2 core schema. */
	expect_json("a: no\nb: on", "{\"a\":\"no\",\"b\":\"on\"}");
	expect_json("a: 1.2.3\nb: 0x\nc: 1e", "{\"a\":\"1.2.3\",\"b\":\"0x\",\"c\":\"1e\"}");
	/* Too large for 64 bits: kept as the digits rather than rounded. */
	expect_json("a: 99999999999999999999", "{\"a\":\"99999999999999999999\"}");
	expect_json("a: 9223372036854775807", "{\"a\":9223372036854775807}");
}

static void test_quoted_strings(void **state)
{
	expect_json("a: \"10\"\nb: '10'", "{\"a\":\"10\",\"b\":\"10\"}");
	expect_json("a: \"true\"\nb: 'null'\nc: ''", "{\"a\":\"true\",\"b\":\"null\",\"c\":\"\"}");
	expect_json("a: \"tab\\there\\u00e9\"", "{\"a\":\"tab\\there\\u00E9\"}");
	expect_json("a: 'it''s'", "{\"a\":\"it's\"}");
	expect_json("a: !!str 10\nb: ! 10", "{\"a\":\"10\",\"b\":\"10\"}");
	expect_json("a: !!int 10\nb: !!float 1", "{\"a\":10,\"b\":1.0}");
	expect_json("a: |\n  line one\n  line two\nb: >\n  folded\n  text\n",
		    "{\"a\":\"line one\\nline two\\n\",\"b\":\"folded text\\n\"}");
	/* $PORT must reach the daemon literally. */
	expect_json("command: gunicorn -b 127.0.0.1:$PORT app:app",
		    "{\"command\":\"gunicorn -b 127.0.0.1:$PORT app:app\"}");
}

static void test_nesting_and_sequences(void **state)
{
	const char *doc = "name: hello-c\n"
			  "protocol: http\n"
			  "command: [\"./hello\"]        # or a string\n"
			  "build: cc -O2 -o hello hello.c\n"
			  "env: {GREETING: hi}\n"
			  "scale: {min: 0, max: 10, concurrency: 50, idle_timeout: 60s}\n"
			  "limits: {timeout: 30s, max_body: 10m}\n"
			  "health: {path: /healthz}\n";
	expect_json(doc,
		    "{\"name\":\"hello-c\",\"protocol\":\"http\",\"command\":[\"./hello\"],"
		    "\"build\":\"cc -O2 -o hello hello.c\",\"env\":{\"GREETING\":\"hi\"},"
		    "\"scale\":{\"min\":0,\"max\":10,\"concurrency\":50,\"idle_timeout\":\"60s\"},"
		    "\"limits\":{\"timeout\":\"30s\",\"max_body\":\"10m\"},"
		    "\"health\":{\"path\":\"/healthz\"}}");
	expect_json("command:\n  - python3\n  - -m\n  - http.server\n  - 8000\n",
		    "{\"command\":[\"python3\",\"-m\",\"http.server\",8000]}");
	expect_json("a:\n  b:\n    c: [1, [2, {d: e}]]\n",
		    "{\"a\":{\"b\":{\"c\":[1,[2,{\"d\":\"e\"}]]}}}");
	expect_json("- 1\n- two\n", "[1,\"two\"]");
	expect_json("just text", "\"just text\"");
	/* Keys are always text, even when they look like numbers. */
	expect_json("10: ten\ntrue: yes", "{\"10\":\"ten\",\"true\":\"yes\"}");
	/* Only the first document counts. */
	expect_json("a: 1\n---\nb: 2\n", "{\"a\":1}");
}

static void test_errors_carry_line_numbers(void **state)
{
	expect_error("name: x\nscale:\n  min: 1\n max: 2\n",
		     "line 4: did not find expected key while parsing a block mapping");
	expect_error("a: 1\nb: [1, 2\n", "line 3: did not find expected ',' or ']' while parsing a "
					 "flow sequence");
	expect_error("a: 1\na: 2\n", "line 2: the key \"a\" appears twice");
	expect_error("a: 1\n? [x]\n: 2\n", "line 2: mapping keys must be scalars");
	expect_error("a: 1\nb: .inf\n",
		     "line 2: .inf has no JSON form; quote it to keep it as text");
	expect_error("\n\na: !!int ten\n", "line 3: \"ten\" does not match its tag "
					   "tag:yaml.org,2002:int");
	expect_error("a: !custom 1\n", "line 1: the tag !custom is not supported");
	expect_error("", "line 1: the document is empty");
	expect_error("# only a comment\n", "line 2: the document is empty");
	expect_error("a: \"unterminated\n", "line 2: found unexpected end of stream while scanning "
					    "a quoted scalar");
}

static void test_aliases_refused(void **state)
{
	expect_error("base: &b {x: 1}\nother: *b\n",
		     "line 1: anchors and aliases (&b) are not supported");
	/* The event parser does not resolve aliases: an undefined one is refused too. */
	expect_error("a: 1\nb: *nowhere\n",
		     "line 2: anchors and aliases (*name) are not supported");
	expect_error("a: 1\n<<: {b: 2}\n", "line 2: merge keys (<<) are not supported");
	expect_error("- &x 1\n", "line 1: anchors and aliases (&x) are not supported");
}

static void test_depth_limit(void **state)
{
	char doc[400];
	size_t n = 0;
	for (int i = 0; i < 100; i++)
		doc[n++] = '[';
	for (int i = 0; i < 100; i++)
		doc[n++] = ']';
	doc[n] = '\0';
	expect_error(doc, "line 1: nesting is deeper than 64 levels");
}

static void test_small_error_buffer(void **state)
{
	char small[8];
	json_t *j = fl_yaml_to_json("a: [", 4, small, sizeof small);
	assert_null(j);
	/* End of input is reported on the line after the last one. */
	assert_string_equal(small, "line 2:");
	/* errlen 0 must not write at all. */
	assert_null(fl_yaml_to_json("a: [", 4, NULL, 0));
	/* Text is counted, not NUL-terminated. */
	j = fl_yaml_to_json("a: 1garbage", 4, err, sizeof err);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "a")), 1);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_scalar_typing),
	    cmocka_unit_test(test_quoted_strings),
	    cmocka_unit_test(test_nesting_and_sequences),
	    cmocka_unit_test(test_errors_carry_line_numbers),
	    cmocka_unit_test(test_aliases_refused),
	    cmocka_unit_test(test_depth_limit),
	    cmocka_unit_test(test_small_error_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
