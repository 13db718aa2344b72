/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon-bench: a load client for a running spin-erofs-snapshotter, speaking
 * containerd's Snapshots API over the daemon's own gRPC client layer
 * (src/daemon/rpc) with the generated messages. bench/daemon-bench.sh starts
 * a daemon on a temporary root, runs this, and stops it; see there for usage.
 *
 * Phases:
 *  1. base: a committed chain of --base-layers layers (extract + Commit of
 *     an empty upperdir), the parent of everything below;
 *  2. cycle: --threads clients, --iterations each, of
 *       Prepare(extract key, base) / Stat / Mounts / Commit / View(base) /
 *       Mounts(view) / Remove(view) / Remove(committed)
 *     the way containerd unpacks a layer and a client looks at an image;
 *  3. scale: --views views on base from every thread, then every key is
 *     Stat-ed (name, kind and parent must match), List must return exactly
 *     what exists (with and without a filter), and the daemon's RSS is read;
 *  4. mixed: views while other clients Prepare actives (each one runs
 *     mkfs.ext4 for its rwlayer.img): what a metadata call waits for;
 *  5. teardown: Remove of every view, Cleanup, List empty but for base.
 * Latencies are per call, client side (round trip over the unix socket).
 * Any error, or a reply that does not match what was asked, is counted and
 * makes the exit status 1.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "containerd-proto.h"
#include "rpc/rpc.h"

#define SNAP(x) Containerd__Services__Snapshots__V1__##x
#define DESC(x) (&containerd__services__snapshots__v1__##x##__descriptor)
#define TIMEOUT_MS 120000

struct options {
	const char *socket;
	unsigned threads, iterations, views, base_layers, mixed_actives;
	pid_t pid;
	const char *prefix;
};

static struct options opt = {
	.threads = 16,
	.iterations = 200,
	.views = 10000,
	.base_layers = 1,
	.mixed_actives = 4,
	.prefix = "bench",
};

static struct rpc_client *cli;
static atomic_uint errors;
static char base_key[256];

/* ---- latency samples ---- */

enum method {
	M_PREPARE,
	M_STAT,
	M_MOUNTS,
	M_MOUNTS_VIEW,
	M_COMMIT,
	M_VIEW,
	M_REMOVE_VIEW,
	M_REMOVE_COMMITTED,
	M_VIEW_SCALE,
	M_STAT_SCALE,
	M_REMOVE_SCALE,
	M_VIEW_MIXED,
	M_PREPARE_ACTIVE_MIXED,
	M_LIST,
	M_CLEANUP,
	M_COUNT,
};

static const char *const method_names[M_COUNT] = {
	[M_PREPARE] = "Prepare (extract, on base)",
	[M_STAT] = "Stat",
	[M_MOUNTS] = "Mounts (extract)",
	[M_MOUNTS_VIEW] = "Mounts (view on base)",
	[M_COMMIT] = "Commit (empty upperdir)",
	[M_VIEW] = "View (on base)",
	[M_REMOVE_VIEW] = "Remove (view)",
	[M_REMOVE_COMMITTED] = "Remove (committed)",
	[M_VIEW_SCALE] = "View, up to N views",
	[M_STAT_SCALE] = "Stat, N views",
	[M_REMOVE_SCALE] = "Remove, N views",
	[M_VIEW_MIXED] = "View, with actives",
	[M_PREPARE_ACTIVE_MIXED] = "Prepare (active, mkfs)",
	[M_LIST] = "List (all)",
	[M_CLEANUP] = "Cleanup",
};

struct samples {
	pthread_mutex_t lock;
	double *v;
	size_t n, cap;
};

static struct samples samples[M_COUNT];

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* per thread: appended locally, merged at the end of a phase */
struct local {
	double *v[M_COUNT];
	size_t n[M_COUNT], cap[M_COUNT];
};

static void record(struct local *l, enum method m, double ms)
{
	if (l->n[m] == l->cap[m]) {
		size_t cap = l->cap[m] ? l->cap[m] * 2 : 256;
		double *p = realloc(l->v[m], cap * sizeof(*p));
		if (!p) {
			fprintf(stderr, "out of memory\n");
			exit(2);
		}
		l->v[m] = p;
		l->cap[m] = cap;
	}
	l->v[m][l->n[m]++] = ms;
}

static void merge_local(struct local *l)
{
	for (int m = 0; m < M_COUNT; m++) {
		struct samples *s = &samples[m];
		pthread_mutex_lock(&s->lock);
		if (s->n + l->n[m] > s->cap) {
			size_t cap = (s->n + l->n[m]) * 2;
			double *p = realloc(s->v, cap * sizeof(*p));
			if (!p) {
				fprintf(stderr, "out of memory\n");
				exit(2);
			}
			s->v = p;
			s->cap = cap;
		}
		if (l->n[m])
			memcpy(s->v + s->n, l->v[m], l->n[m] * sizeof(double));
		s->n += l->n[m];
		pthread_mutex_unlock(&s->lock);
		free(l->v[m]);
	}
	memset(l, 0, sizeof(*l));
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
	if (!n)
		return 0;
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* ---- errors ---- */

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void problem(const char *fmt, ...)
{
	va_list ap;
	unsigned n = atomic_fetch_add(&errors, 1);
	if (n >= 20) {
		if (n == 20)
			fprintf(stderr, "daemon-bench: more errors follow, not shown\n");
		return;
	}
	va_start(ap, fmt);
	fprintf(stderr, "daemon-bench: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* one unary call, timed; returns the response (NULL on error, reported) */
static ProtobufCMessage *call(struct local *l, enum method m, const char *path,
			      const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
			      const char *what)
{
	ProtobufCMessage *resp = NULL;
	struct rpc_status st = { 0 };
	double t0 = now_ms();
	int r = rpc_client_unary(cli, path, NULL, 0, TIMEOUT_MS, req, resp_desc, &resp, &st);
	double dt = now_ms() - t0;

	if (r < 0) {
		problem("%s %s: %s (%s: %s)", path + sizeof(SNAPSHOTS_SERVICE) - 1, what, strerror(-r),
			rpc_status_name(st.code), st.message ? st.message : "");
		rpc_status_done(&st);
		if (resp)
			protobuf_c_message_free_unpacked(resp, NULL);
		return NULL;
	}
	rpc_status_done(&st);
	if (l)
		record(l, m, dt);
	return resp;
}

static void drop(ProtobufCMessage *m)
{
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
}

/* ---- the calls ---- */

static bool mounts_ok(size_t n, Containerd__Types__Mount **mounts, const char *type, size_t want_n,
		      const char *what)
{
	if (n != want_n || (n && strcmp(mounts[0]->type, type) != 0)) {
		problem("%s: %zu mounts, first %s; expected %zu, first %s", what, n,
			n ? mounts[0]->type : "-", want_n, type);
		return false;
	}
	return true;
}

static int prepare(struct local *l, enum method m, bool view, const char *key, const char *parent,
		   size_t *ret_n, char **ret_type)
{
	ProtobufCMessage *resp;
	size_t n;
	Containerd__Types__Mount **mounts;

	if (view) {
		SNAP(ViewSnapshotRequest) req = CONTAINERD__SERVICES__SNAPSHOTS__V1__VIEW_SNAPSHOT_REQUEST__INIT;
		req.key = (char *)key;
		req.parent = (char *)(parent ? parent : "");
		resp = call(l, m, SNAPSHOTS_VIEW, &req.base, DESC(view_snapshot_response), key);
		if (!resp)
			return -1;
		n = ((SNAP(ViewSnapshotResponse) *)resp)->n_mounts;
		mounts = ((SNAP(ViewSnapshotResponse) *)resp)->mounts;
	} else {
		SNAP(PrepareSnapshotRequest) req = CONTAINERD__SERVICES__SNAPSHOTS__V1__PREPARE_SNAPSHOT_REQUEST__INIT;
		req.key = (char *)key;
		req.parent = (char *)(parent ? parent : "");
		resp = call(l, m, SNAPSHOTS_PREPARE, &req.base, DESC(prepare_snapshot_response), key);
		if (!resp)
			return -1;
		n = ((SNAP(PrepareSnapshotResponse) *)resp)->n_mounts;
		mounts = ((SNAP(PrepareSnapshotResponse) *)resp)->mounts;
	}
	if (ret_n)
		*ret_n = n;
	if (ret_type)
		*ret_type = n ? strdup(mounts[0]->type) : NULL;
	drop(resp);
	return 0;
}

static int stat_check(struct local *l, enum method m, const char *key, int kind, const char *parent)
{
	SNAP(StatSnapshotRequest) req = CONTAINERD__SERVICES__SNAPSHOTS__V1__STAT_SNAPSHOT_REQUEST__INIT;
	req.key = (char *)key;
	SNAP(StatSnapshotResponse) *resp =
		(void *)call(l, m, SNAPSHOTS_STAT, &req.base, DESC(stat_snapshot_response), key);
	int r = 0;

	if (!resp)
		return -1;
	if (!resp->info || strcmp(resp->info->name, key) != 0 || (int)resp->info->kind != kind ||
	    strcmp(resp->info->parent, parent) != 0) {
		problem("Stat %s: got name %s kind %d parent %s; expected kind %d parent %s", key,
			resp->info ? resp->info->name : "-", resp->info ? (int)resp->info->kind : -1,
			resp->info ? resp->info->parent : "-", kind, parent);
		r = -1;
	}
	drop(&resp->base);
	return r;
}

static int mounts(struct local *l, enum method m, const char *key, const char *type, size_t want_n)
{
	SNAP(MountsRequest) req = CONTAINERD__SERVICES__SNAPSHOTS__V1__MOUNTS_REQUEST__INIT;
	req.key = (char *)key;
	SNAP(MountsResponse) *resp =
		(void *)call(l, m, SNAPSHOTS_MOUNTS, &req.base, DESC(mounts_response), key);
	if (!resp)
		return -1;
	bool ok = mounts_ok(resp->n_mounts, resp->mounts, type, want_n, key);
	drop(&resp->base);
	return ok ? 0 : -1;
}

static int commit(struct local *l, const char *name, const char *key)
{
	SNAP(CommitSnapshotRequest) req = CONTAINERD__SERVICES__SNAPSHOTS__V1__COMMIT_SNAPSHOT_REQUEST__INIT;
	req.name = (char *)name;
	req.key = (char *)key;
	ProtobufCMessage *resp =
		call(l, M_COMMIT, SNAPSHOTS_COMMIT, &req.base, &google__protobuf__empty__descriptor, key);
	drop(resp);
	return resp ? 0 : -1;
}

static int remove_key(struct local *l, enum method m, const char *key)
{
	SNAP(RemoveSnapshotRequest) req = CONTAINERD__SERVICES__SNAPSHOTS__V1__REMOVE_SNAPSHOT_REQUEST__INIT;
	req.key = (char *)key;
	ProtobufCMessage *resp =
		call(l, m, SNAPSHOTS_REMOVE, &req.base, &google__protobuf__empty__descriptor, key);
	drop(resp);
	return resp ? 0 : -1;
}

/* List with optional filter: how many infos, and how many have prefix */
static long list_count(struct local *l, const char *filter, const char *prefix, long *ret_prefixed)
{
	SNAP(ListSnapshotsRequest) req = CONTAINERD__SERVICES__SNAPSHOTS__V1__LIST_SNAPSHOTS_REQUEST__INIT;
	char *filters[1] = { (char *)filter };
	struct rpc_stream *s = NULL;
	struct rpc_status st = { 0 };
	long n = 0, prefixed = 0;
	double t0 = now_ms();
	int r;

	if (filter) {
		req.n_filters = 1;
		req.filters = filters;
	}
	r = rpc_client_server_stream(cli, SNAPSHOTS_LIST, NULL, 0, TIMEOUT_MS, &req.base, &s);
	if (r < 0) {
		problem("List: %s", strerror(-r));
		rpc_stream_free(s);
		return -1;
	}
	for (;;) {
		ProtobufCMessage *m = NULL;
		r = rpc_stream_recv(s, DESC(list_snapshots_response), &m);
		if (r <= 0)
			break;
		SNAP(ListSnapshotsResponse) *resp = (void *)m;
		n += (long)resp->n_info;
		for (size_t i = 0; i < resp->n_info; i++)
			if (prefix && strncmp(resp->info[i]->name, prefix, strlen(prefix)) == 0)
				prefixed++;
		drop(m);
	}
	int fr = rpc_stream_finish(s, &st);
	rpc_stream_free(s);
	if (r < 0 || fr < 0) {
		problem("List: %s (%s: %s)", strerror(-(r < 0 ? r : fr)), rpc_status_name(st.code),
			st.message ? st.message : "");
		rpc_status_done(&st);
		return -1;
	}
	rpc_status_done(&st);
	if (l && !filter)
		record(l, M_LIST, now_ms() - t0);
	if (ret_prefixed)
		*ret_prefixed = prefixed;
	return n;
}

static int cleanup_call(struct local *l)
{
	SNAP(CleanupRequest) req = CONTAINERD__SERVICES__SNAPSHOTS__V1__CLEANUP_REQUEST__INIT;
	ProtobufCMessage *resp =
		call(l, M_CLEANUP, SNAPSHOTS_CLEANUP, &req.base, &google__protobuf__empty__descriptor, "");
	drop(resp);
	return resp ? 0 : -1;
}

/* ---- RSS ---- */

static long rss_kib(void)
{
	char path[64], line[256];
	long kib = -1;

	if (opt.pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)opt.pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* ---- phases ---- */

struct worker {
	pthread_t t;
	unsigned id;
	struct local l;
};

static void *cycle_main(void *p)
{
	struct worker *w = p;

	for (unsigned i = 0; i < opt.iterations; i++) {
		char key[256], name[256], view[256];
		size_t n = 0;
		char *type = NULL;

		snprintf(key, sizeof(key), "%s/%u/%u/extract-%u-%u sha256:c%u-%u", opt.prefix, w->id, i,
			 w->id, i, w->id, i);
		snprintf(name, sizeof(name), "%s/%u/%u/sha256:c%u-%u", opt.prefix, w->id, i, w->id, i);
		snprintf(view, sizeof(view), "%s/%u/%u/view", opt.prefix, w->id, i);

		if (prepare(&w->l, M_PREPARE, false, key, base_key, &n, &type) < 0)
			continue;
		if (n != 1 || !type || strcmp(type, "overlay") != 0)
			problem("Prepare %s: %zu mounts, %s; expected one overlay", key, n,
				type ? type : "-");
		free(type);
		stat_check(&w->l, M_STAT, key, CONTAINERD__SERVICES__SNAPSHOTS__V1__KIND__ACTIVE, base_key);
		mounts(&w->l, M_MOUNTS, key, "overlay", 1);
		if (commit(&w->l, name, key) < 0) {
			remove_key(NULL, M_REMOVE_COMMITTED, key);
			continue;
		}
		if (prepare(&w->l, M_VIEW, true, view, base_key, &n, &type) == 0) {
			if (n != 1 || !type || strcmp(type, "erofs") != 0)
				problem("View %s: %zu mounts, %s; expected one erofs", view, n,
					type ? type : "-");
			free(type);
			mounts(&w->l, M_MOUNTS_VIEW, view, "erofs", 1);
			remove_key(&w->l, M_REMOVE_VIEW, view);
		}
		remove_key(&w->l, M_REMOVE_COMMITTED, name);
	}
	return NULL;
}

static void view_key(char *buf, size_t len, unsigned i)
{
	snprintf(buf, len, "%s/views/%05u", opt.prefix, i);
}

struct range_worker {
	pthread_t t;
	unsigned from, to;
	struct local l;
	int what; /* 0 create, 1 stat, 2 remove */
};

static void *range_main(void *p)
{
	struct range_worker *w = p;
	for (unsigned i = w->from; i < w->to; i++) {
		char key[128];
		view_key(key, sizeof(key), i);
		switch (w->what) {
		case 0: {
			size_t n = 0;
			char *type = NULL;
			if (prepare(&w->l, M_VIEW_SCALE, true, key, base_key, &n, &type) == 0) {
				if (n != 1 || !type || strcmp(type, "erofs") != 0)
					problem("View %s: %zu mounts, %s", key, n, type ? type : "-");
				free(type);
			}
			break;
		}
		case 1:
			stat_check(&w->l, M_STAT_SCALE, key, CONTAINERD__SERVICES__SNAPSHOTS__V1__KIND__VIEW,
				   base_key);
			break;
		case 2:
			remove_key(&w->l, M_REMOVE_SCALE, key);
			break;
		}
	}
	return NULL;
}

static void run_ranges(int what, unsigned total)
{
	struct range_worker *w = calloc(opt.threads, sizeof(*w));
	unsigned per = (total + opt.threads - 1) / opt.threads;
	for (unsigned k = 0; k < opt.threads; k++) {
		w[k].from = k * per < total ? k * per : total;
		w[k].to = (k + 1) * per < total ? (k + 1) * per : total;
		w[k].what = what;
		pthread_create(&w[k].t, NULL, range_main, &w[k]);
	}
	for (unsigned k = 0; k < opt.threads; k++) {
		pthread_join(w[k].t, NULL);
		merge_local(&w[k].l);
	}
	free(w);
}

struct mixed_worker {
	pthread_t t;
	unsigned id;
	bool active;
	struct local l;
};

static atomic_bool mixed_stop;

static void *mixed_main(void *p)
{
	struct mixed_worker *w = p;
	char key[128];

	if (w->active) {
		for (unsigned i = 0; i < 8; i++) {
			snprintf(key, sizeof(key), "%s/mixed/active-%u-%u", opt.prefix, w->id, i);
			prepare(&w->l, M_PREPARE_ACTIVE_MIXED, false, key, base_key, NULL, NULL);
		}
		return NULL;
	}
	for (unsigned i = 0; !atomic_load(&mixed_stop); i++) {
		snprintf(key, sizeof(key), "%s/mixed/view-%u-%u", opt.prefix, w->id, i);
		if (prepare(&w->l, M_VIEW_MIXED, true, key, base_key, NULL, NULL) == 0)
			remove_key(NULL, M_REMOVE_VIEW, key);
	}
	return NULL;
}

static void run_mixed(void)
{
	unsigned n = opt.threads, na = opt.mixed_actives < n ? opt.mixed_actives : n - 1;
	struct mixed_worker *w = calloc(n, sizeof(*w));

	for (unsigned k = 0; k < n; k++) {
		w[k].id = k;
		w[k].active = k < na;
		pthread_create(&w[k].t, NULL, mixed_main, &w[k]);
	}
	for (unsigned k = 0; k < na; k++)
		pthread_join(w[k].t, NULL);
	atomic_store(&mixed_stop, true);
	for (unsigned k = na; k < n; k++)
		pthread_join(w[k].t, NULL);
	for (unsigned k = 0; k < n; k++)
		merge_local(&w[k].l);
	/* the actives go again */
	for (unsigned k = 0; k < na; k++)
		for (unsigned i = 0; i < 8; i++) {
			char key[128];
			snprintf(key, sizeof(key), "%s/mixed/active-%u-%u", opt.prefix, k, i);
			remove_key(NULL, M_REMOVE_VIEW, key);
		}
	free(w);
}

static void print_table(void)
{
	printf("\n| method | calls | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|\n");
	for (int m = 0; m < M_COUNT; m++) {
		struct samples *s = &samples[m];
		if (!s->n)
			continue;
		qsort(s->v, s->n, sizeof(double), cmp_double);
		printf("| %s | %zu | %.3f | %.3f | %.3f |\n", method_names[m], s->n, pct(s->v, s->n, 50),
		       pct(s->v, s->n, 99), s->v[s->n - 1]);
	}
}

static double p99_of(enum method m)
{
	struct samples *s = &samples[m];
	return s->n ? pct(s->v, s->n, 99) : 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: daemon-bench --socket PATH [--pid PID] [--threads N] [--iterations N]\n"
		   "                    [--views N] [--base-layers N] [--mixed-actives N] [--prefix P]\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "pid", required_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },
		{ "iterations", required_argument, NULL, 'i' },
		{ "views", required_argument, NULL, 'v' },
		{ "base-layers", required_argument, NULL, 'b' },
		{ "mixed-actives", required_argument, NULL, 'm' },
		{ "prefix", required_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 's': opt.socket = optarg; break;
		case 'p': opt.pid = (pid_t)atoi(optarg); break;
		case 't': opt.threads = (unsigned)atoi(optarg); break;
		case 'i': opt.iterations = (unsigned)atoi(optarg); break;
		case 'v': opt.views = (unsigned)atoi(optarg); break;
		case 'b': opt.base_layers = (unsigned)atoi(optarg); break;
		case 'm': opt.mixed_actives = (unsigned)atoi(optarg); break;
		case 'x': opt.prefix = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!opt.socket || !opt.threads || !opt.base_layers) {
		usage(stderr);
		return 2;
	}
	for (int m = 0; m < M_COUNT; m++)
		pthread_mutex_init(&samples[m].lock, NULL);
	int r = rpc_client_new(opt.socket, &cli);
	if (r < 0) {
		fprintf(stderr, "daemon-bench: %s: %s\n", opt.socket, strerror(-r));
		return 2;
	}
	long rss_idle = rss_kib();
	struct local main_l = { 0 };

	/* 1. the base chain */
	char parent[256] = "";
	for (unsigned k = 0; k < opt.base_layers; k++) {
		char key[256], name[256];
		snprintf(key, sizeof(key), "%s/base/%u/extract-base%u sha256:base%u", opt.prefix, k, k, k);
		snprintf(name, sizeof(name), "%s/base/sha256:base%u", opt.prefix, k);
		if (prepare(NULL, M_PREPARE, false, key, parent, NULL, NULL) < 0 ||
		    commit(NULL, name, key) < 0) {
			fprintf(stderr, "daemon-bench: cannot make the base chain\n");
			return 1;
		}
		snprintf(parent, sizeof(parent), "%s", name);
	}
	snprintf(base_key, sizeof(base_key), "%s", parent);
	long before = list_count(NULL, NULL, NULL, NULL);
	printf("daemon-bench: %u threads, %u iterations, %u views, base chain of %u layer(s); "
	       "%ld snapshots before\n",
	       opt.threads, opt.iterations, opt.views, opt.base_layers, before);

	/* 2. the unpack-like cycle */
	double t0 = now_ms();
	struct worker *w = calloc(opt.threads, sizeof(*w));
	for (unsigned k = 0; k < opt.threads; k++) {
		w[k].id = k;
		pthread_create(&w[k].t, NULL, cycle_main, &w[k]);
	}
	for (unsigned k = 0; k < opt.threads; k++) {
		pthread_join(w[k].t, NULL);
		merge_local(&w[k].l);
	}
	free(w);
	double cycle_s = (now_ms() - t0) / 1e3;
	long rss_cycle = rss_kib();
	long after_cycle = list_count(NULL, NULL, NULL, NULL);
	if (after_cycle != before)
		problem("List after the cycle: %ld snapshots, expected %ld", after_cycle, before);

	/* 3. scale */
	t0 = now_ms();
	run_ranges(0, opt.views);
	double views_s = (now_ms() - t0) / 1e3;
	long rss_views = rss_kib();
	run_ranges(1, opt.views);
	long prefixed = 0;
	char prefix[160], filter[320];
	snprintf(prefix, sizeof(prefix), "%s/views/", opt.prefix);
	long total = list_count(&main_l, NULL, prefix, &prefixed);
	if (total != before + (long)opt.views || prefixed != (long)opt.views)
		problem("List: %ld snapshots (%ld views); expected %ld (%u views)", total, prefixed,
			before + (long)opt.views, opt.views);
	snprintf(filter, sizeof(filter), "kind==view,parent==\"%s\"", base_key);
	long filtered = list_count(NULL, filter, prefix, NULL);
	if (filtered != (long)opt.views)
		problem("List %s: %ld, expected %u", filter, filtered, opt.views);
	for (int k = 0; k < 4; k++)
		list_count(&main_l, NULL, NULL, NULL);
	long rss_list = rss_kib();

	/* 4. mixed */
	if (opt.mixed_actives)
		run_mixed();

	/* 5. teardown */
	run_ranges(2, opt.views);
	cleanup_call(&main_l);
	long end = list_count(NULL, NULL, NULL, NULL);
	if (end != before)
		problem("List at the end: %ld snapshots, expected %ld", end, before);
	long rss_end = rss_kib();
	merge_local(&main_l);

	print_table();
	printf("\ncycle: %.1f s for %u iterations (%.0f cycles/s); %u views made in %.1f s (%.0f/s)\n",
	       cycle_s, opt.threads * opt.iterations, opt.threads * opt.iterations / cycle_s,
	       opt.views, views_s, opt.views / views_s);
	if (opt.pid > 0)
		printf("RSS (VmRSS) of the daemon: idle %.1f MiB; after the cycle %.1f MiB; "
		       "with %u views %.1f MiB; after List %.1f MiB; at the end %.1f MiB\n",
		       rss_idle / 1024.0, rss_cycle / 1024.0, opt.views, rss_views / 1024.0,
		       rss_list / 1024.0, rss_end / 1024.0);
	printf("targets: p99 < 5 ms for Stat %.3f, Mounts %.3f / %.3f, View %.3f (at scale %.3f); "
	       "idle RSS < 32 MiB: %.1f MiB\n",
	       p99_of(M_STAT), p99_of(M_MOUNTS), p99_of(M_MOUNTS_VIEW), p99_of(M_VIEW),
	       p99_of(M_VIEW_SCALE),
	       rss_idle / 1024.0);
	unsigned e = atomic_load(&errors);
	printf("errors: %u\n", e);
	rpc_client_free(cli);
	return e ? 1 : 0;
}
