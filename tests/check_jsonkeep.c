/* SPDX-License-Identifier: ISC */
/*
 * jsonkeep.c against jansson: what it keeps must parse to the tree
 * jansson builds with the other members deleted, and the swarm parsed
 * from it must be the one parsed from the whole reply.
 */

#include "config.h"

#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "jnode.h"

static const struct json_keep inner[] = {
	{ "b", NULL }, { "d", NULL }, { NULL, NULL }
};
static const struct json_keep shape[] = {
	{ "a", inner }, { "c", NULL }, { NULL, NULL }
};

/* text kept to shape, or NULL when json_keep refuses it. */
static char *
kept(const char *text, const struct json_keep *sh, size_t *used)
{
	struct buf out;

	buf_init(&out);
	if (json_keep(text, strlen(text), sh, &out, used) == -1) {
		buf_free(&out);
		return NULL;
	}
	return buf_steal(&out);
}

static void
assert_kept(const char *text, const char *want)
{
	size_t used;
	char *got = kept(text, shape, &used);

	ck_assert_msg(got != NULL, "refused: %s", text);
	ck_assert_str_eq(got, want);
	ck_assert_uint_eq(used, strlen(text));
	free(got);
}

static void
assert_refused(const char *text)
{
	size_t used;
	char *got = kept(text, shape, &used);

	ck_assert_msg(got == NULL, "kept %s as %s", text, got);
}

START_TEST(test_json_keep_prunes)
{
	size_t used;
	char *got;

	assert_kept("{\"a\":{\"b\":1,\"x\":[1,{\"y\":2}],\"d\":\"e\"},"
	    "\"z\":true,\"c\":[ 1 , 2 ]}",
	    "{\"a\":{\"b\":1,\"d\":\"e\"},\"c\":[ 1 , 2 ]}");
	/* A shape passes through arrays to their elements. */
	assert_kept("[{\"a\":[{\"b\":1,\"q\":2},3]},{\"q\":{}}]",
	    "[{\"a\":[{\"b\":1},3]},{}]");
	/* A kept scalar where the shape expects an object is kept. */
	assert_kept(" { \"a\" : \"s\" , \"c\" : null }",
	    "{\"a\":\"s\",\"c\":null}");
	assert_kept("{\"z\":\"\\u00e9\\\"\\\\\\/\\b\\f\\n\\r\\t\","
	    "\"c\":-1.5e+3}", "{\"c\":-1.5e+3}");
	/* Bytes above 0x7f are left to jansson. */
	assert_kept("{\"c\":\"caf\xc3\xa9\"}", "{\"c\":\"caf\xc3\xa9\"}");
	assert_kept("[]", "[]");
	assert_kept("{}", "{}");
	/* A value followed by more text: used stops at its end. */
	got = kept("{\"c\":1} ,[", shape, &used);
	ck_assert_str_eq(got, "{\"c\":1}");
	ck_assert_uint_eq(used, 7);
	free(got);
	/* An escaped name of a dropped member deep down is no matter. */
	assert_kept("{\"x\":{\"\\u0061\":1},\"c\":2}", "{\"c\":2}");
}
END_TEST

START_TEST(test_json_keep_refuses)
{
	static const char *const bad[] = {
		"", " ", "{", "[", "{\"c\":1", "{\"c\" 1}", "{\"c\":1,}",
		"[1,]", "{c:1}", "{\"c\":01}", "{\"c\":1.}", "{\"c\":-}",
		"{\"c\":1e}", "{\"c\":.5}", "{\"c\":tru}", "{\"c\":nul}",
		"{\"x\":\"a\x01\"}", "{\"x\":\"\\x\"}", "{\"x\":\"\\u12g4\"}",
		"{\"x\":\"\\u12\"}", "{\"x\":\"open}", "{\"x\":[1 2]}",
		"{\"x\":{\"a\" 1}}", "{\"c\":1]", "[1}", "\"\\",
		/* An escaped name where names are compared: jansson's. */
		"{\"\\u0063\":1}",
	};
	struct buf deep;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_refused(bad[i]);

	buf_init(&deep);
	for (i = 0; i < 300; i++)
		buf_addc(&deep, '[');
	for (i = 0; i < 300; i++)
		buf_addc(&deep, ']');
	assert_refused(deep.data);
	buf_reset(&deep);
	for (i = 0; i < 200; i++)
		buf_addc(&deep, '[');
	for (i = 0; i < 200; i++)
		buf_addc(&deep, ']');
	assert_kept(deep.data, deep.data);
	buf_free(&deep);
}
END_TEST

/* A new tree: v with, in each object under sh, only the members it names. */
static json_t *
prune(json_t *v, const struct json_keep *sh)
{
	const struct json_keep *m;
	const char *key;
	json_t *out, *e;
	size_t i;

	if (sh == NULL || (!json_is_object(v) && !json_is_array(v)))
		return json_deep_copy(v);
	if (json_is_array(v)) {
		out = json_array();
		json_array_foreach(v, i, e)
			json_array_append_new(out, prune(e, sh));
		return out;
	}
	out = json_object();
	json_object_foreach(v, key, e) {
		for (m = sh; m->key != NULL; m++)
			if (strcmp(m->key, key) == 0)
				break;
		if (m->key != NULL)
			json_object_set_new(out, key, prune(e, m->sub));
	}
	return out;
}

static void
assert_like_jansson(const char *text, const struct json_keep *sh,
    const char *what)
{
	json_t *whole, *want, *got;
	size_t used;
	char *k;

	whole = json_loads(text, 0, NULL);
	ck_assert_msg(whole != NULL, "%s: not JSON", what);
	k = kept(text, sh, &used);
	ck_assert_msg(k != NULL, "%s: refused", what);
	got = json_loads(k, 0, NULL);
	ck_assert_msg(got != NULL, "%s: what was kept is not JSON", what);
	want = prune(whole, sh);
	ck_assert_msg(json_equal(got, want), "%s: kept other than jansson",
	    what);
	/* Docker's replies are mostly what dovetail drops. */
	ck_assert_msg(strlen(k) < strlen(text), "%s: nothing dropped", what);
	json_decref(whole);
	json_decref(want);
	json_decref(got);
	free(k);
}

/*
 * The reply text again, each object of the array given first a member
 * with an escaped name: json_keep refuses such an object, so parsing
 * this text takes the whole-object path for every element.
 */
static char *
unkeepable(const char *text)
{
	json_t *arr, *e;
	struct buf b;
	size_t i;
	char *one;

	arr = json_loads(text, 0, NULL);
	ck_assert(json_is_array(arr));
	buf_init(&b);
	buf_addc(&b, '[');
	json_array_foreach(arr, i, e) {
		one = json_dumps(e, JSON_PRESERVE_ORDER);
		ck_assert(one != NULL && one[0] == '{');
		buf_addf(&b, "%s{\"\\u0058\":0%s%s", i > 0 ? "," : "",
		    one[1] == '}' ? "" : ",", one + 1);
		free(one);
	}
	buf_addc(&b, ']');
	json_decref(arr);
	return buf_steal(&b);
}

static void
assert_same_swarm(const char *text, int (*parse)(struct swarm *,
    const char *, size_t, char **), const char *what)
{
	struct swarm *a = swarm_new(), *b = swarm_new();
	char *whole = unkeepable(text), *cause = NULL;

	ck_assert_msg(parse(a, text, strlen(text), &cause) == 0, "%s: %s",
	    what, cause);
	ck_assert_msg(parse(b, whole, strlen(whole), &cause) == 0, "%s: %s",
	    what, cause);
	ck_assert_msg(swarm_same(a, b), "%s: kept and whole differ", what);
	ck_assert_msg(a->nservices + a->ntasks > 0, "%s: empty", what);
	free(whole);
	swarm_free(a);
	swarm_free(b);
}

/* Whether n (jnode.c) is the value jansson parsed as j. */
static int
jnode_is(const struct jnode *n, json_t *j)
{
	const struct jnode *m, *later;
	size_t keys = 0, i;

	switch (n->type) {
	case JNODE_OBJECT:
		if (!json_is_object(j))
			return 0;
		/* A member named twice is its last, as jansson keeps. */
		for (m = n->first; m != NULL; m = m->next) {
			for (later = m->next; later != NULL; later = later->next)
				if (strcmp(later->key, m->key) == 0)
					break;
			if (later != NULL)
				continue;
			keys++;
			if (json_object_get(j, m->key) == NULL ||
			    !jnode_is(m, json_object_get(j, m->key)))
				return 0;
		}
		return keys == json_object_size(j);
	case JNODE_ARRAY:
		if (!json_is_array(j) || n->n != json_array_size(j))
			return 0;
		for (m = n->first, i = 0; m != NULL; m = m->next, i++)
			if (!jnode_is(m, json_array_get(j, i)))
				return 0;
		return 1;
	case JNODE_STRING:
		return json_is_string(j) &&
		    strcmp(n->str, json_string_value(j)) == 0;
	case JNODE_INT:
		return json_is_integer(j) && n->num == json_integer_value(j);
	case JNODE_REAL:
		return json_is_real(j);
	case JNODE_TRUE:
		return json_is_true(j);
	case JNODE_FALSE:
		return json_is_false(j);
	default:
		return json_is_null(j);
	}
}

/* jnode_parse takes what jansson takes, to the same value: 1 if both do. */
static int
assert_jnode_like_jansson(const char *text, size_t len, const char *what)
{
	struct jarena a = { NULL };
	struct jnode *n = jnode_parse(&a, text, len);
	json_t *j = json_loadb(text, len, JSON_DECODE_ANY, NULL);

	ck_assert_msg((n != NULL) == (j != NULL), "%s: jnode %s, jansson %s",
	    what, n != NULL ? "takes it" : "refuses it",
	    j != NULL ? "takes it" : "refuses it");
	if (n != NULL) {
		ck_assert_msg(jnode_is(n, j), "%s: another value", what);
		jarena_reset(&a);
		ck_assert_msg(jnode_is(jnode_from_json(&a, j), j),
		    "%s: converted to another value", what);
	}
	json_decref(j);
	jarena_free(&a);
	return n != NULL;
}

/*
 * Every golden case's Docker replies, kept and whole, and whole as jansson
 * reads them (jnode.c).
 */
START_TEST(test_json_keep_golden_replies)
{
	char *dir, *path, *text;
	struct dirent *de;
	DIR *d;
	int n = 0;

	dir = xasprintf("%s/golden", test_data_dir());
	d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		path = xasprintf("%s/%s/services.json", dir, de->d_name);
		text = test_read_file(path);
		if (text != NULL) {
			assert_like_jansson(text, swarm_service_keep, path);
			assert_same_swarm(text, swarm_parse_services, path);
			assert_jnode_like_jansson(text, strlen(text), path);
			n++;
		}
		free(text);
		free(path);
		path = xasprintf("%s/%s/tasks.json", dir, de->d_name);
		text = test_read_file(path);
		if (text != NULL && strlen(text) > 2) {
			assert_like_jansson(text, swarm_task_keep, path);
			assert_same_swarm(text, swarm_parse_tasks, path);
			assert_jnode_like_jansson(text, strlen(text), path);
			n++;
		}
		free(text);
		free(path);
	}
	closedir(d);
	free(dir);
	ck_assert_int_ge(n, 20);
}
END_TEST

/* A reply json_keep refuses half of is still parsed whole, the same. */
START_TEST(test_json_keep_fallback)
{
	const char *text = "[{\"ID\":\"t1\",\"ServiceID\":\"s\","
	    "\"DesiredState\":\"running\",\"Status\":{\"State\":\"running\"}},"
	    "{\"\\u0049D\":\"t2\",\"ServiceID\":\"s\"}]";
	struct swarm *sw = swarm_new();
	char *cause = NULL;

	ck_assert_int_eq(swarm_parse_tasks(sw, text, strlen(text), &cause),
	    0);
	ck_assert_uint_eq(sw->ntasks, 2);
	ck_assert_str_eq(sw->tasks[1].id, "t2");
	/* The error of a broken reply is jansson's, with its line. */
	ck_assert_int_eq(swarm_parse_tasks(sw, "[{\"ID\":\"t1\",\n\"x\":[}]",
	    20, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "line 2"));
	free(cause);
	swarm_free(sw);
}
END_TEST

START_TEST(test_jnode_like_jansson)
{
	static const char *const texts[] = {
		"{\"a\":1,\"b\":[true,false,null],\"a\":[2,{}],\"c\":{\"d\":"
		    "{\"e\":\"x\"}}}",
		"\"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t\\u00e9\\u20ac"
		    "\\ud83d\\ude00\"",
		"\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
		" [ 1 , -0 , 0 , 1.5e3 , -2E-2 , 10.25 ] ",
		"9223372036854775807", "-9223372036854775808", "[]", "{}",
		"\"\"", "[1e-400]",
		/* refused */
		"9223372036854775808", "-9223372036854775809", "[01]", "[1.]",
		"[-]", "[1e]", "[.5]", "[+1]", "\"\\u0000\"", "\"\\ud800\"",
		"\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\u12g4\"",
		"\"\xc0\x80\"", "\"\xed\xa0\x80\"", "\"\xf5\x80\x80\x80\"",
		"\"\xe2\x82\"", "\"\x80\"", "\"\x01\"", "\"\\x\"", "[1,]",
		"{\"a\"}", "{\"a\":1,}", "{1:2}", "[1] x", "\"abc", "tru",
		"nul", "", "  ", "[1 2]", "{\"a\" 1}", "[1e400]", "[-1E999]",
	};
	struct buf deep;
	size_t i, taken = 0;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		taken += assert_jnode_like_jansson(texts[i], strlen(texts[i]),
		    texts[i]);
	ck_assert_uint_eq(taken, 10);	/* those above "refused" */
	/* jansson's depth: 2,048 values within each other, not one more
	 * (arrays alone, then arrays around a number). */
	for (i = 2047; i <= 2049; i++) {
		buf_init(&deep);
		while (deep.len < i)
			buf_addc(&deep, '[');
		while (deep.len < 2 * i)
			buf_addc(&deep, ']');
		ck_assert_int_eq(assert_jnode_like_jansson(deep.data,
		    deep.len, "deep"), i <= 2048);
		buf_reset(&deep);
		while (deep.len < i - 1)
			buf_addc(&deep, '[');
		buf_addc(&deep, '7');
		while (deep.len < 2 * i - 1)
			buf_addc(&deep, ']');
		ck_assert_int_eq(assert_jnode_like_jansson(deep.data,
		    deep.len, "deep around a number"), i <= 2048);
		buf_free(&deep);
	}
}
END_TEST

Suite *
suite_jsonkeep(void)
{
	Suite *s = suite_create("jsonkeep");
	TCase *tc = tcase_create("jsonkeep");

	tcase_add_test(tc, test_json_keep_prunes);
	tcase_add_test(tc, test_json_keep_refuses);
	tcase_add_test(tc, test_json_keep_golden_replies);
	tcase_add_test(tc, test_json_keep_fallback);
	tcase_add_test(tc, test_jnode_like_jansson);
	suite_add_tcase(s, tc);
	return s;
}
