/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Counters and histograms behind one mutex: an observation is a lookup in a
 * short table of methods and a few additions. A scrape copies the table
 * under the mutex and writes it without (the sample callback reads the
 * store and the file system: no lock of ours is held meanwhile).
 */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "common/util.h"

#define P "spin_erofs_"

/* gRPC's canonical status names, by code; one more slot for anything else */
static const char *const code_names[] = {
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED", "UNKNOWN_CODE",
};
#define NCODES EL_ARRAY_SIZE(code_names)

/* the histograms' upper bounds, in microseconds: exact comparisons */
static const uint64_t bound_us[] = {
	1000, 5000, 10000, 50000, 100000, 500000, 1000000, 5000000, 10000000, 30000000, 60000000,
};
#define NBOUNDS EL_ARRAY_SIZE(bound_us)

struct method {
	char *name;
	uint64_t codes[NCODES];
	uint64_t buckets[NBOUNDS + 1]; /* not cumulative; the last is +Inf only */
	uint64_t count, sum_us;
};

struct metrics {
	pthread_mutex_t lock;
	struct method *methods;
	size_t n, cap;
	struct applies {
		uint64_t ok, error, blob_bytes, image_bytes, us;
	} apply;
};

int metrics_new(struct metrics **ret)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	*ret = m;
	return 0;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		free(m->methods[i].name);
	free(m->methods);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* Under the lock. NULL only when out of memory. */
static struct method *method_get(struct metrics *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->methods[i].name, name))
			return &m->methods[i];
	if (m->n >= METRICS_MAX_METHODS) {
		if (strcmp(name, "other"))
			return method_get(m, "other");
		if (m->n > METRICS_MAX_METHODS)
			return NULL; /* not reached: "other" was found above */
	}
	if (el_grow((void **)&m->methods, &m->cap, m->n + 1, sizeof(*m->methods)) < 0)
		return NULL;
	struct method *e = &m->methods[m->n];
	memset(e, 0, sizeof(*e));
	e->name = strdup(name);
	if (!e->name)
		return NULL;
	m->n++;
	return e;
}

void metrics_observe_rpc(struct metrics *m, const char *method, int code, uint64_t us)
{
	size_t b = 0;

	if (!m)
		return;
	while (b < NBOUNDS && us > bound_us[b])
		b++;
	pthread_mutex_lock(&m->lock);
	struct method *e = method_get(m, method ? method : "?");
	if (e) {
		e->codes[code >= 0 && (size_t)code < NCODES - 1 ? (size_t)code : NCODES - 1]++;
		e->buckets[b]++;
		e->count++;
		e->sum_us += us;
	}
	pthread_mutex_unlock(&m->lock);
}

void metrics_observe_apply(struct metrics *m, bool ok, uint64_t blob_bytes,
			   uint64_t image_bytes, uint64_t us)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	if (ok)
		m->apply.ok++;
	else
		m->apply.error++;
	m->apply.blob_bytes += blob_bytes;
	m->apply.image_bytes += image_bytes;
	m->apply.us += us;
	pthread_mutex_unlock(&m->lock);
}

/* ---- rendering ------------------------------------------------------------ */

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP " P "%s %s\n# TYPE " P "%s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and line feed escaped. */
static void label_value(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '"')
			fputs("\\\"", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void seconds(FILE *f, uint64_t us)
{
	fprintf(f, "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
}

static void render_rpcs(FILE *f, const struct method *v, size_t n)
{
	family(f, "rpc_requests_total", "counter",
	       "gRPC requests served, by method and status code.");
	for (size_t i = 0; i < n; i++)
		for (size_t c = 0; c < NCODES; c++) {
			if (!v[i].codes[c])
				continue;
			fputs(P "rpc_requests_total{method=\"", f);
			label_value(f, v[i].name);
			fprintf(f, "\",code=\"%s\"} %" PRIu64 "\n", code_names[c], v[i].codes[c]);
		}

	family(f, "rpc_duration_seconds", "histogram",
	       "Time from a request's arrival to its status, by method.");
	for (size_t i = 0; i < n; i++) {
		uint64_t cum = 0;
		for (size_t b = 0; b <= NBOUNDS; b++) {
			cum += v[i].buckets[b];
			fputs(P "rpc_duration_seconds_bucket{method=\"", f);
			label_value(f, v[i].name);
			if (b < NBOUNDS)
				fprintf(f, "\",le=\"%g\"} %" PRIu64 "\n", (double)bound_us[b] / 1e6, cum);
			else
				fprintf(f, "\",le=\"+Inf\"} %" PRIu64 "\n", cum);
		}
		fputs(P "rpc_duration_seconds_sum{method=\"", f);
		label_value(f, v[i].name);
		fputs("\"} ", f);
		seconds(f, v[i].sum_us);
		fputs("\n" P "rpc_duration_seconds_count{method=\"", f);
		label_value(f, v[i].name);
		fprintf(f, "\"} %" PRIu64 "\n", v[i].count);
	}
}

static void render_applies(FILE *f, const struct applies *c)
{
	family(f, "apply_total", "counter", "Diff Apply calls on our snapshots, by result.");
	fprintf(f, P "apply_total{result=\"ok\"} %" PRIu64 "\n", c->ok);
	fprintf(f, P "apply_total{result=\"error\"} %" PRIu64 "\n", c->error);
	family(f, "apply_bytes_total", "counter", "Layer blob bytes (compressed) Apply read.");
	fprintf(f, P "apply_bytes_total %" PRIu64 "\n", c->blob_bytes);
	family(f, "apply_image_bytes_total", "counter", "layer.erofs bytes Apply wrote.");
	fprintf(f, P "apply_image_bytes_total %" PRIu64 "\n", c->image_bytes);
	family(f, "apply_seconds_total", "counter", "Time spent in Apply calls.");
	fputs(P "apply_seconds_total ", f);
	seconds(f, c->us);
	fputc('\n', f);
}

static void render_sample(FILE *f, const struct metrics_sample *s)
{
	if (s->have_snapshots) {
		family(f, "snapshots", "gauge", "Snapshots in the store, by kind.");
		fprintf(f, P "snapshots{kind=\"committed\"} %" PRIu64 "\n", s->committed);
		fprintf(f, P "snapshots{kind=\"active\"} %" PRIu64 "\n", s->active);
		fprintf(f, P "snapshots{kind=\"view\"} %" PRIu64 "\n", s->view);
	}
	if (s->have_root) {
		family(f, "root_bytes", "gauge", "Bytes of the file system of --root, by kind.");
		fprintf(f, P "root_bytes{kind=\"used\"} %" PRIu64 "\n", s->root_used);
		fprintf(f, P "root_bytes{kind=\"free\"} %" PRIu64 "\n", s->root_free);
	}
}

int metrics_render(struct metrics *m, FILE *f, metrics_sample_fn sample, void *ud)
{
	struct metrics_sample s = { 0 };
	struct applies apply;
	_cleanup_free_ struct method *v = NULL;
	size_t n;

	if (sample)
		sample(&s, ud);

	/* the names stay valid: entries are only added until metrics_free */
	pthread_mutex_lock(&m->lock);
	n = m->n;
	v = malloc((n ? n : 1) * sizeof(*v));
	if (v && n)
		memcpy(v, m->methods, n * sizeof(*v));
	apply = m->apply;
	pthread_mutex_unlock(&m->lock);
	if (!v)
		return -ENOMEM;

	family(f, "up", "gauge", "The daemon answers (always 1).");
	fputs(P "up 1\n", f);
	family(f, "build_info", "gauge", "The daemon's version, as a label (always 1).");
	fputs(P "build_info{version=\"", f);
	label_value(f, EL_VERSION);
	fputs("\"} 1\n", f);
	render_rpcs(f, v, n);
	render_applies(f, &apply);
	render_sample(f, &s);
	return ferror(f) ? -EIO : 0;
}
