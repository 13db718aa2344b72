/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The List filter (filter.c) against containerd's filters package: the
 * corpus of containerd's filters/filter_test.go (1.6), then snapshot infos
 * through an adaptor that answers as containerd's snapshot adaptor does
 * (metadata/adaptors.go: name, parent, kind, labels joined with dots).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "filter.h"

#define MAX_LABELS 4

struct entry {
	const char *name, *other, *parent, *kind;
	struct {
		const char *key, *value;
	} labels[MAX_LABELS];
};

static const char *field(void *ud, const char *const *path, size_t n)
{
	const struct entry *e = ud;
	static char joined[512];

	if (n == 0)
		return NULL;
	if (strcmp(path[0], "name") == 0)
		return n == 1 && e->name && *e->name ? e->name : NULL;
	if (strcmp(path[0], "other") == 0)
		return n == 1 && e->other && *e->other ? e->other : NULL;
	if (strcmp(path[0], "parent") == 0)
		return n == 1 ? (e->parent ? e->parent : "") : NULL;
	if (strcmp(path[0], "kind") == 0)
		return n == 1 ? e->kind : NULL;
	if (strcmp(path[0], "labels") == 0 && n >= 2) {
		size_t k = 0;
		for (size_t i = 1; i < n; i++)
			k += (size_t)snprintf(joined + k, sizeof(joined) - k, "%s%s", i > 1 ? "." : "",
					      path[i]);
		for (size_t i = 0; i < MAX_LABELS && e->labels[i].key; i++)
			if (strcmp(e->labels[i].key, joined) == 0)
				return e->labels[i].value;
	}
	return NULL;
}

/* containerd's filters/filter_test.go corpus */
static const struct entry corpus[] = {
	{ .name = "foo", .labels = { { "foo", "true" } } },
	{ .name = "bar" },
	{ .name = "foo", .labels = { { "foo", "present" }, { "more complex label", "present" } } },
	{ .name = "bar", .labels = { { "bar", "true" } } },
	{ .name = "fooer", .labels = { { "more complex label with \\ and \"", "present" } } },
	{ .name = "fooer", .labels = { { "more complex label with \\ and \".post", "present" } } },
	{ .name = "baz", .other = "too complex, yo" },
	{ .name = "bazo", .other = "abc" },
	{ .name = "compound", .labels = { { "foo", "omg_asdf.asdf-qwer" } } },
};
#define NCORPUS (sizeof(corpus) / sizeof(corpus[0]))

/* snapshots as containerd's List sees them */
static const struct entry snaps[] = {
	{ .name = "default/1/sha256:a", .kind = "committed",
	  .labels = { { "containerd.io/gc.root", "2023" }, { "containerd.io/snapshot.ref", "sha256:a" } } },
	{ .name = "default/2/sha256:b", .kind = "committed", .parent = "default/1/sha256:a",
	  .labels = { { "containerd.io/snapshot/cri.layer-digest", "sha256:l" } } },
	{ .name = "default/3/extract-1 sha256:c", .kind = "active", .parent = "default/2/sha256:b",
	  .labels = { { "a.b", "v" } } },
	{ .name = "default/4/view", .kind = "view", .labels = { { "a", "x" } } },
};
#define NSNAPS (sizeof(snaps) / sizeof(snaps[0]))

/* "0,2,8": which entries of set[0..n) match the filters */
static void matches(const struct entry *set, size_t n, const char *const *exprs, size_t nexprs,
		    char *out, size_t outlen)
{
	struct filter *f = NULL;
	char err[256] = "";
	int r = filter_parse(exprs, nexprs, &f, err, sizeof(err));
	size_t k = 0;

	if (r < 0)
		fail_msg("filter_parse '%s'%s: %s: %s", nexprs ? exprs[0] : "",
			 nexprs > 1 ? " ..." : "", strerror(-r), err);
	out[0] = 0;
	for (size_t i = 0; i < n; i++)
		if (filter_match(f, field, (void *)&set[i]))
			k += (size_t)snprintf(out + k, outlen - k, "%s%zu", k ? "," : "", i);
	filter_free(f);
}

static void expect1(const struct entry *set, size_t n, const char *expr, const char *want)
{
	char got[128];
	matches(set, n, &expr, 1, got, sizeof(got));
	if (strcmp(got, want) != 0)
		fail_msg("filter %s matched [%s], containerd matches [%s]", expr, got, want);
}

static void expect_error(const char *expr)
{
	struct filter *f = NULL;
	char err[256] = "";
	int r = filter_parse(&expr, 1, &f, err, sizeof(err));

	if (r != -EINVAL) {
		filter_free(f);
		fail_msg("filter %s: got %d, expected a syntax error (-EINVAL)", expr, r);
	}
	assert_null(f);
	assert_true(err[0] != 0);
}

/* ---- containerd's own cases ---- */

static void test_containerd_corpus(void **state)
{
	(void)state;
	expect1(corpus, NCORPUS, "", "0,1,2,3,4,5,6,7,8");
	expect1(corpus, NCORPUS, "name", "0,1,2,3,4,5,6,7,8");
	expect1(corpus, NCORPUS, "labels.foo", "0,2,8");
	expect1(corpus, NCORPUS, "labels.foo,name", "0,2,8");
	expect1(corpus, NCORPUS, "labels.foo==true", "0");
	expect1(corpus, NCORPUS, "labels.foo==omg_asdf.asdf-qwer", "8");
	expect1(corpus, NCORPUS, "name==bar", "1,3");
	expect1(corpus, NCORPUS, "name!=bar", "0,2,4,5,6,7,8");
	expect1(corpus, NCORPUS, "name==bar,labels.bar", "3");
	expect1(corpus, NCORPUS, "other==\"too complex, yo\"", "6");
	expect1(corpus, NCORPUS, "other~=[abc]+,name!=foo", "6,7");
	expect1(corpus, NCORPUS, "name==bar,labels.bar==true", "3");
	expect1(corpus, NCORPUS, "name==bar,labels.bar==wrong", "");
	expect1(corpus, NCORPUS, "name==foo,labels.\"more complex label\"", "2");
	expect1(corpus, NCORPUS, "labels.\"more complex label with \\\\ and \\\"\"==present", "4");
	expect1(corpus, NCORPUS, "labels.\"more complex label with \\\\ and \\\"\".post==present", "5");
}

static void test_containerd_errors(void **state)
{
	(void)state;
	expect_error("labels.?\"more complex label with \\\\ and \\\"\".post==present");
	expect_error("name==foo,");
	expect_error("labels.");
	expect_error("image~=,id?=?fbaq");
}

/* containerd quotes regular expressions with / or | after ~= (filters/quote.go,
 * "other~=/[abc]+/" in its tests), and unquotes with Go's string syntax
 * (\t, \x41, \u00e9). */
static void test_containerd_quoting(void **state)
{
	(void)state;
	expect1(corpus, NCORPUS, "other~=/[abc]+/,name!=foo", "6,7");
	expect1(corpus, NCORPUS, "other~=/[abc]{1,2}/,name!=foo", "6,7");
	expect1(corpus, NCORPUS, "other~=|[abc]+|,name!=foo", "6,7");
	/* valid syntax that matches nothing ("RegexpQuotedValueGarbage") */
	expect1(corpus, NCORPUS, "other~=/[abc]{0,1}\"\\//,name!=foo", "");
}

static void test_containerd_go_escapes(void **state)
{
	(void)state;
	expect1(corpus, NCORPUS, "name==\"\\x62ar\"", "1,3");
	expect1(corpus, NCORPUS, "other==\"too\\x20complex, yo\"", "6");
	expect1(corpus, NCORPUS, "other==\"too\\u0020complex, yo\"", "6");
}

/* containerd's fields are [A-Za-z0-9_]+ or quoted: anything else is a syntax
 * error, not a field of another name (a mistyped operator would otherwise
 * turn into a presence test that silently matches nothing) */
static void test_field_charset(void **state)
{
	(void)state;
	expect_error("name<x");
	expect_error("name>=x");
	expect_error("name?=x");
	expect_error("labels.ns/key==value");
	expect_error("labels.|foo|==omg_asdf.asdf-qwer");
}

/* containerd takes field paths of any depth; label keys are often dotted */
static void test_deep_label_path(void **state)
{
	(void)state;
	static const struct entry deep[] = {
		{ .name = "x", .labels = { { "io.kubernetes.cri.some.very.deep.label.v1", "1" } } },
	};
	expect1(deep, 1, "labels.\"io.kubernetes.cri.some.very.deep.label.v1\"==1", "0");
	expect1(deep, 1, "labels.io.kubernetes.cri.some.very.deep.label.v1==1", "0");
}

/* ---- the filters containerd and its clients send for snapshots ---- */

static void test_snapshot_fields(void **state)
{
	(void)state;
	expect1(snaps, NSNAPS, "name==default/1/sha256:a", "0");
	expect1(snaps, NSNAPS, "name==\"default/4/view\"", "3");
	expect1(snaps, NSNAPS, "parent==default/1/sha256:a", "1");
	expect1(snaps, NSNAPS, "parent!=default/1/sha256:a", "0,2,3");
	/* containerd's adaptor: parent is always present, "" without one */
	expect1(snaps, NSNAPS, "parent", "0,1,2,3");
	expect1(snaps, NSNAPS, "parent!=\"\"", "1,2");
	expect1(snaps, NSNAPS, "parent==\"\"", "0,3");
	expect1(snaps, NSNAPS, "kind==committed", "0,1");
	expect1(snaps, NSNAPS, "kind!=committed", "2,3");
	expect1(snaps, NSNAPS, "kind==view", "3");
	expect1(snaps, NSNAPS, "kind==active,parent!=\"\"", "2");
	expect1(snaps, NSNAPS, "kind == view", "3");
	expect1(snaps, NSNAPS, " kind==committed , parent!=\"\" ", "1");
}

static void test_labels(void **state)
{
	(void)state;
	/* a quoted path element, or dotted elements joined back */
	expect1(snaps, NSNAPS, "labels.\"a.b\"==v", "2");
	expect1(snaps, NSNAPS, "labels.a.b==v", "2");
	expect1(snaps, NSNAPS, "labels.a.b", "2");
	expect1(snaps, NSNAPS, "labels.a", "3");
	expect1(snaps, NSNAPS, "labels.a==x", "3");
	expect1(snaps, NSNAPS, "labels.a!=x", "0,1,2"); /* absent compares as "" */
	expect1(snaps, NSNAPS, "labels.nothing~=^$", "0,1,2,3");
	/* containerd's own label keys */
	expect1(snaps, NSNAPS, "labels.\"containerd.io/gc.root\"", "0");
	expect1(snaps, NSNAPS, "labels.\"containerd.io/gc.root\"==2023", "0");
	expect1(snaps, NSNAPS, "labels.\"containerd.io/snapshot/cri.layer-digest\"==sha256:l", "1");
	expect1(snaps, NSNAPS, "labels.\"containerd.io/snapshot.ref\"~=^sha256:", "0");
	expect1(snaps, NSNAPS, "labels.nothing", "");
}

static void test_regex(void **state)
{
	(void)state;
	expect1(snaps, NSNAPS, "name~=^default/[12]/", "0,1");
	expect1(snaps, NSNAPS, "name~=\"extract-[0-9]+ \"", "2");
	expect1(snaps, NSNAPS, "name~=view$", "3");
	expect1(snaps, NSNAPS, "name~=sha256", "0,1,2");
	expect1(snaps, NSNAPS, "kind~=^(view|active)$", "2,3");
	expect1(snaps, NSNAPS, "parent~=.", "1,2");
	expect_error("name~=[");
	expect_error("name~=(a");
}

static void test_and_or(void **state)
{
	(void)state;
	/* a comma is AND */
	expect1(snaps, NSNAPS, "kind==committed,labels.\"containerd.io/gc.root\"", "0");
	expect1(snaps, NSNAPS, "kind==committed,kind==view", "");
	/* several filters are OR */
	char got[64];
	const char *two[] = { "kind==view", "labels.a.b==v" };
	matches(snaps, NSNAPS, two, 2, got, sizeof(got));
	assert_string_equal(got, "2,3");
	const char *three[] = { "name==nope", "kind==committed,parent!=\"\"", "kind==view" };
	matches(snaps, NSNAPS, three, 3, got, sizeof(got));
	assert_string_equal(got, "1,3");
	/* no filter, or an empty one among others: everything */
	matches(snaps, NSNAPS, NULL, 0, got, sizeof(got));
	assert_string_equal(got, "0,1,2,3");
	const char *empty[] = { "kind==view", "" };
	matches(snaps, NSNAPS, empty, 2, got, sizeof(got));
	assert_string_equal(got, "0,1,2,3");
	/* one bad filter among good ones fails the whole list */
	const char *bad[] = { "kind==view", "kind=view" };
	struct filter *f = NULL;
	char err[256] = "";
	assert_int_equal(filter_parse(bad, 2, &f, err, sizeof(err)), -EINVAL);
	assert_null(f);
	assert_non_null(strstr(err, "kind=view"));
	/* filter_match on no filter at all */
	assert_true(filter_match(NULL, field, (void *)&snaps[0]));
}

static void test_quotes(void **state)
{
	(void)state;
	expect1(snaps, NSNAPS, "name==\"default/3/extract-1 sha256:c\"", "2");
	expect1(snaps, NSNAPS, "labels.\"a.b\"==\"v\"", "2");
	expect1(snaps, NSNAPS, "name!=\"\"", "0,1,2,3");
	expect1(corpus, NCORPUS, "other==\"too complex, yo\",name==baz", "6");
	expect1(corpus, NCORPUS, "labels.\"more complex label\"==\"present\"", "2");
	/* a quote inside a value, escaped */
	expect1(corpus, NCORPUS, "labels.\"more complex label with \\\\ and \\\"\"", "4");
}

static void test_syntax_errors(void **state)
{
	(void)state;
	expect_error("name==");
	expect_error("name!=");
	expect_error("==x");
	expect_error("name=x");
	expect_error("name=!x");
	expect_error(",name");
	expect_error("name==x,,kind");
	expect_error("name==x,");
	expect_error("labels..a");
	expect_error(".name");
	expect_error("labels.\"unterminated");
	expect_error("name==\"unterminated");
	expect_error("name==\"a\"b");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_containerd_corpus),
		cmocka_unit_test(test_containerd_errors),
		cmocka_unit_test(test_containerd_quoting),
		cmocka_unit_test(test_containerd_go_escapes),
		cmocka_unit_test(test_field_charset),
		cmocka_unit_test(test_deep_label_path),
		cmocka_unit_test(test_snapshot_fields),
		cmocka_unit_test(test_labels),
		cmocka_unit_test(test_regex),
		cmocka_unit_test(test_and_or),
		cmocka_unit_test(test_quotes),
		cmocka_unit_test(test_syntax_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
