/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metrics (metrics.c) as a Prometheus scraper reads them: render after
 * a few RPCs and Applies, parse the text back, check the counters, the
 * histograms (cumulative buckets, +Inf = _count), label escaping, one HELP
 * and TYPE per family; and --metrics-address's checks (metrics-http.c).
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

#include "metrics.h"
#include "metrics-http.h"

#define PREPARE "/containerd.services.snapshots.v1.Snapshots/Prepare"
#define COMMIT "/containerd.services.snapshots.v1.Snapshots/Commit"

static void sample(struct metrics_sample *s, void *ud)
{
	(void)ud;
	*s = (struct metrics_sample){ .have_snapshots = true, .committed = 3, .active = 2, .view = 1,
				      .have_root = true, .root_used = 1000, .root_free = 24 };
}

static char *render(struct metrics *m, metrics_sample_fn fn)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(metrics_render(m, f, fn, NULL), 0);
	assert_int_equal(fclose(f), 0);
	return buf;
}

/* The value of the sample whose name and labels are exactly series
 * ("name{l=\"v\"}" or "name"); fails when it is missing or repeated. */
static double value(const char *text, const char *series)
{
	size_t n = strlen(series);
	const char *found = NULL;

	for (const char *l = text; *l; l = strchr(l, '\n') + 1) {
		if (!strncmp(l, series, n) && l[n] == ' ') {
			if (found)
				fail_msg("%s appears twice", series);
			found = l + n + 1;
		}
		if (!strchr(l, '\n'))
			break;
	}
	if (!found)
		fail_msg("no sample %s in:\n%s", series, text);
	return strtod(found, NULL);
}

static bool has(const char *text, const char *s)
{
	return strstr(text, s) != NULL;
}

static struct metrics *observed(void)
{
	struct metrics *m = NULL;

	assert_int_equal(metrics_new(&m), 0);
	metrics_observe_rpc(m, PREPARE, 0, 500);	     /* le 0.001 */
	metrics_observe_rpc(m, PREPARE, 0, 1000);	     /* le 0.001: bounds are inclusive */
	metrics_observe_rpc(m, PREPARE, 6, 20000);	     /* ALREADY_EXISTS, le 0.05 */
	metrics_observe_rpc(m, COMMIT, 0, 70 * 1000000ull); /* beyond 60: +Inf only */
	metrics_observe_rpc(m, COMMIT, 99, 3);		     /* an unknown code */
	metrics_observe_apply(m, true, 100, 4096, 1500000);
	metrics_observe_apply(m, true, 50, 8192, 250000);
	metrics_observe_apply(m, false, 0, 0, 1000);
	return m;
}

static void test_counters(void **state)
{
	(void)state;
	struct metrics *m = observed();
	char *t = render(m, sample);

	assert_int_equal(value(t, "spin_erofs_up"), 1);
	assert_true(has(t, "\nspin_erofs_build_info{version=\"" EL_VERSION "\"} 1\n"));
	assert_int_equal(value(t, "spin_erofs_rpc_requests_total{method=\"" PREPARE "\",code=\"OK\"}"), 2);
	assert_int_equal(value(t, "spin_erofs_rpc_requests_total{method=\"" PREPARE
				  "\",code=\"ALREADY_EXISTS\"}"), 1);
	assert_int_equal(value(t, "spin_erofs_rpc_requests_total{method=\"" COMMIT "\",code=\"OK\"}"), 1);
	assert_int_equal(value(t, "spin_erofs_rpc_requests_total{method=\"" COMMIT
				  "\",code=\"UNKNOWN_CODE\"}"), 1);
	/* codes never seen are left out */
	assert_false(has(t, PREPARE "\",code=\"INTERNAL\""));

	assert_int_equal(value(t, "spin_erofs_rpc_duration_seconds_bucket{method=\"" PREPARE
				  "\",le=\"0.001\"}"), 2);
	assert_int_equal(value(t, "spin_erofs_rpc_duration_seconds_bucket{method=\"" PREPARE
				  "\",le=\"0.01\"}"), 2);
	assert_int_equal(value(t, "spin_erofs_rpc_duration_seconds_bucket{method=\"" PREPARE
				  "\",le=\"0.05\"}"), 3);
	assert_int_equal(value(t, "spin_erofs_rpc_duration_seconds_bucket{method=\"" COMMIT
				  "\",le=\"60\"}"), 1);
	assert_int_equal(value(t, "spin_erofs_rpc_duration_seconds_bucket{method=\"" COMMIT
				  "\",le=\"+Inf\"}"), 2);
	assert_float_equal(value(t, "spin_erofs_rpc_duration_seconds_sum{method=\"" PREPARE "\"}"),
			   0.0215, 1e-9);
	assert_float_equal(value(t, "spin_erofs_rpc_duration_seconds_sum{method=\"" COMMIT "\"}"),
			   70.000003, 1e-9);

	assert_int_equal(value(t, "spin_erofs_apply_total{result=\"ok\"}"), 2);
	assert_int_equal(value(t, "spin_erofs_apply_total{result=\"error\"}"), 1);
	assert_int_equal(value(t, "spin_erofs_apply_bytes_total"), 150);
	assert_int_equal(value(t, "spin_erofs_apply_image_bytes_total"), 12288);
	assert_float_equal(value(t, "spin_erofs_apply_seconds_total"), 1.751, 1e-9);

	assert_int_equal(value(t, "spin_erofs_snapshots{kind=\"committed\"}"), 3);
	assert_int_equal(value(t, "spin_erofs_snapshots{kind=\"active\"}"), 2);
	assert_int_equal(value(t, "spin_erofs_snapshots{kind=\"view\"}"), 1);
	assert_int_equal(value(t, "spin_erofs_root_bytes{kind=\"used\"}"), 1000);
	assert_int_equal(value(t, "spin_erofs_root_bytes{kind=\"free\"}"), 24);
	free(t);

	/* counters only grow */
	metrics_observe_rpc(m, PREPARE, 0, 1);
	t = render(m, sample);
	assert_int_equal(value(t, "spin_erofs_rpc_requests_total{method=\"" PREPARE "\",code=\"OK\"}"), 3);
	free(t);
	metrics_free(m);
}

/* Every histogram: le ascending, counts cumulative, +Inf = _count. */
static void test_histograms(void **state)
{
	(void)state;
	struct metrics *m = observed();
	char *t = render(m, sample);
	const char *methods[] = { PREPARE, COMMIT };
	const char *pre = "spin_erofs_rpc_duration_seconds_bucket{method=\"";

	for (size_t i = 0; i < 2; i++) {
		double last_le = -1, last = 0, inf = -1;
		int buckets = 0;
		char head[256];
		snprintf(head, sizeof(head), "%s%s\",le=\"", pre, methods[i]);
		for (const char *l = strstr(t, head); l; l = strstr(l + 1, head)) {
			const char *le = l + strlen(head);
			double count = strtod(strchr(le, ' ') + 1, NULL);
			assert_true(count >= last);
			last = count;
			buckets++;
			if (!strncmp(le, "+Inf\"", 5)) {
				inf = count;
				continue;
			}
			double b = strtod(le, NULL);
			assert_true(b > last_le);
			assert_true(inf < 0); /* +Inf comes last */
			last_le = b;
		}
		assert_int_equal(buckets, 12);
		char count_name[256];
		snprintf(count_name, sizeof(count_name), "spin_erofs_rpc_duration_seconds_count{method=\"%s\"}",
			 methods[i]);
		assert_true(inf >= 0);
		assert_float_equal(inf, value(t, count_name), 0);
	}
	free(t);
	metrics_free(m);
}

/* Each family: one HELP and one TYPE line, before its first sample. */
static void test_help_type(void **state)
{
	(void)state;
	struct metrics *m = observed();
	char *t = render(m, sample);
	static const struct {
		const char *name, *type;
	} families[] = {
		{ "spin_erofs_up", "gauge" },
		{ "spin_erofs_build_info", "gauge" },
		{ "spin_erofs_rpc_requests_total", "counter" },
		{ "spin_erofs_rpc_duration_seconds", "histogram" },
		{ "spin_erofs_apply_total", "counter" },
		{ "spin_erofs_apply_bytes_total", "counter" },
		{ "spin_erofs_apply_image_bytes_total", "counter" },
		{ "spin_erofs_apply_seconds_total", "counter" },
		{ "spin_erofs_snapshots", "gauge" },
		{ "spin_erofs_root_bytes", "gauge" },
	};

	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		char help[128], type[128];
		snprintf(help, sizeof(help), "# HELP %s ", families[i].name);
		snprintf(type, sizeof(type), "# TYPE %s %s\n", families[i].name, families[i].type);
		const char *h = strstr(t, help), *ty = strstr(t, type);
		assert_non_null(h);
		assert_non_null(ty);
		assert_null(strstr(h + 1, help));
		assert_null(strstr(ty + 1, type));
		assert_true(h < ty);
		/* the first line naming the family after TYPE is a sample */
		const char *next = strchr(ty, '\n') + 1;
		assert_int_equal(strncmp(next, families[i].name, strlen(families[i].name)), 0);
	}
	/* every line is a comment or a sample "name[{...}] value" */
	for (const char *l = t; *l;) {
		const char *e = strchr(l, '\n');
		assert_non_null(e); /* the text ends with a line feed */
		assert_true(e > l);
		if (*l != '#') {
			assert_int_equal(strncmp(l, "spin_erofs_", 11), 0);
			const char *sp = memrchr(l, ' ', (size_t)(e - l));
			assert_non_null(sp);
			char *end;
			strtod(sp + 1, &end);
			assert_ptr_equal(end, e);
		}
		l = e + 1;
	}
	free(t);
	metrics_free(m);
}

static void test_escaping(void **state)
{
	(void)state;
	struct metrics *m = NULL;

	assert_int_equal(metrics_new(&m), 0);
	/* nothing observed yet: the families are there, without samples */
	char *t = render(m, NULL);
	assert_true(has(t, "# TYPE spin_erofs_rpc_requests_total counter\n# HELP"));
	assert_false(has(t, "spin_erofs_rpc_duration_seconds_bucket"));
	free(t);

	metrics_observe_rpc(m, "/a\"b\\c\nd", 0, 1);
	t = render(m, NULL);
	assert_int_equal(value(t, "spin_erofs_rpc_requests_total{method=\"/a\\\"b\\\\c\\nd\",code=\"OK\"}"), 1);
	assert_int_equal(value(t, "spin_erofs_rpc_duration_seconds_count{method=\"/a\\\"b\\\\c\\nd\"}"), 1);
	/* no sample: the sampled families are left out, the rest stays */
	assert_false(has(t, "spin_erofs_snapshots"));
	assert_false(has(t, "spin_erofs_root_bytes"));
	assert_int_equal(value(t, "spin_erofs_apply_total{result=\"ok\"}"), 0);
	free(t);
	metrics_free(m);
}

/* Names come from clients: past METRICS_MAX_METHODS they fold into "other". */
static void test_other(void **state)
{
	(void)state;
	struct metrics *m = NULL;
	char name[32];

	assert_int_equal(metrics_new(&m), 0);
	for (int i = 0; i < METRICS_MAX_METHODS + 10; i++) {
		snprintf(name, sizeof(name), "/m%d", i);
		metrics_observe_rpc(m, name, 12, 1);
	}
	metrics_observe_rpc(m, "/m0", 12, 1);
	char *t = render(m, NULL);
	assert_int_equal(value(t, "spin_erofs_rpc_requests_total{method=\"/m0\",code=\"UNIMPLEMENTED\"}"), 2);
	snprintf(name, sizeof(name), "/m%d", METRICS_MAX_METHODS - 1);
	assert_true(has(t, name));
	snprintf(name, sizeof(name), "\"/m%d\"", METRICS_MAX_METHODS);
	assert_false(has(t, name));
	assert_int_equal(value(t, "spin_erofs_rpc_requests_total{method=\"other\",code=\"UNIMPLEMENTED\"}"), 10);
	free(t);
	metrics_free(m);
}

static void test_address(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"/run/x/metrics.sock", "127.0.0.1:9100", "127.1.2.3:1", "[::1]:9100",
		"localhost:9100", "127.0.0.1:0", "localhost:65535",
	};
	static const char *const bad[] = {
		"10.0.0.1:9100", "0.0.0.0:9100", "[::]:9100", "example.com:9100", ":9100",
		"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:9x",
		"[::2]:1", "metrics.sock", "",
	};
	struct el_error err;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		el_error_clear(&err);
		if (metrics_address_check(ok[i], &err) != 0)
			fail_msg("%s refused: %s", ok[i], err.msg);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		el_error_clear(&err);
		if (metrics_address_check(bad[i], &err) != -EINVAL)
			fail_msg("%s accepted", bad[i]);
		assert_non_null(strstr(err.msg, "--metrics-address"));
	}
	el_error_clear(&err);
	metrics_address_check("10.0.0.1:9100", &err);
	assert_non_null(strstr(err.msg, "loopback"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counters),
		cmocka_unit_test(test_histograms),
		cmocka_unit_test(test_help_type),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_other),
		cmocka_unit_test(test_address),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
