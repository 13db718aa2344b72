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
 *  4. mixed: views while other clients Prepare actives (each one writes a
 *     64 MiB sparse rwlayer.img, a copy of the template the daemon made
 *     with mkfs.ext4 at its first one): what a metadata call waits for;
 *  5. teardown: Remove of every view, Cleanup, List empty but for base.
 * --commit-layer puts a layer.erofs beside each extract snapshot's fs/
 * before its Commit, as our differ's Apply does, so that Commit converts
 * nothing (--apply-syncs: the layer made as durable as Apply makes it, see
 * place_layer); --flat prepares those snapshots without a parent, so that Commit
 * merges nothing either (a first layer). --load runs the load test of issue 4 instead (load_main), and
 * --remove-prefix only removes; --snapshotter, --namespace and --lease
 * point it at containerd's own Snapshots service.
 * Latencies are per call, client side (round trip over the unix socket).
 * Any error, or a reply that does not match what was asked, is counted and
 * makes the exit status 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "containerd-proto.h"
#include "rpc.h"

#define SNAP(x) Containerd__Services__Snapshots__V1__##x
#define DESC(x) (&containerd__services__snapshots__v1__##x##__descriptor)
#define TIMEOUT_MS 120000

struct options {
	const char *socket;
	unsigned threads, iterations, views, base_layers, mixed_actives;
	pid_t pid;
	const char *prefix;
	/* containerd's own Snapshots service instead of the daemon's socket */
	const char *snapshotter, *ns, *lease;
	bool commit_layer; /* Commit finds layer.erofs made already (our differ's Apply) */
	bool apply_syncs;  /* ... synced the way Apply does */
	bool flat;	   /* the cycle's extract snapshots have no parent: nothing to merge */
	bool load;	   /* the load test instead of the benchmark */
	unsigned keep_every;
	const char *report;
	const char *remove_prefix;
};

static struct options opt = {
	.threads = 16,
	.iterations = 200,
	.views = 10000,
	.base_layers = 1,
	.mixed_actives = 4,
	.prefix = "bench",
	.snapshotter = "",
	.keep_every = 10,
};

/* metadata of every call: entries with a NULL value are left out */
static struct rpc_metadata md[2] = { { MD_NAMESPACE, NULL }, { MD_LEASE, NULL } };

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
	M_PREPARE_DUP,
	M_PREPARE_ACTIVE,
	M_REMOVE_ACTIVE,
	M_REMOVE_BUSY,
	M_COUNT,
};

static const char *method_names[M_COUNT] = {
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
	[M_PREPARE_ACTIVE_MIXED] = "Prepare (active: rwlayer.img)",
	[M_LIST] = "List (all)",
	[M_CLEANUP] = "Cleanup",
	[M_PREPARE_DUP] = "Prepare (key taken: AlreadyExists)",
	[M_PREPARE_ACTIVE] = "Prepare (active, on the layer)",
	[M_REMOVE_ACTIVE] = "Remove (active)",
	[M_REMOVE_BUSY] = "Remove (has a child: FailedPrecondition)",
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

/* One unary call, timed; returns the response. NULL on error, reported
 * unless it is the gRPC status code expected (then timed too); a success
 * where a refusal was expected is reported. */
static ProtobufCMessage *call_expect(struct local *l, enum method m, const char *path,
				     const ProtobufCMessage *req,
				     const ProtobufCMessageDescriptor *resp_desc, const char *what,
				     int expect)
{
	ProtobufCMessage *resp = NULL;
	struct rpc_status st = { 0 };
	double t0 = now_ms();
	int r = rpc_client_unary(cli, path, md, 2, TIMEOUT_MS, req, resp_desc, &resp, &st);
	double dt = now_ms() - t0;

	if (r < 0) {
		if (expect && st.code == expect) {
			if (l)
				record(l, m, dt);
		} else {
			problem("%s %s: %s (%s: %s)", path + sizeof(SNAPSHOTS_SERVICE) - 1, what,
				strerror(-r), rpc_status_name(st.code), st.message ? st.message : "");
		}
		rpc_status_done(&st);
		if (resp)
			protobuf_c_message_free_unpacked(resp, NULL);
		return NULL;
	}
	rpc_status_done(&st);
	if (expect) {
		problem("%s %s: succeeded, expected %s", path + sizeof(SNAPSHOTS_SERVICE) - 1, what,
			rpc_status_name(expect));
		protobuf_c_message_free_unpacked(resp, NULL);
		return NULL;
	}
	if (l)
		record(l, m, dt);
	return resp;
}

static ProtobufCMessage *call(struct local *l, enum method m, const char *path,
			      const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
			      const char *what)
{
	return call_expect(l, m, path, req, resp_desc, what, 0);
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

/* The value of option name= among a mount's options (malloc'd), or NULL. */
static char *mount_option(const Containerd__Types__Mount *mt, const char *name)
{
	size_t len = strlen(name);
	for (size_t i = 0; i < mt->n_options; i++)
		if (strncmp(mt->options[i], name, len) == 0 && mt->options[i][len] == '=')
			return strdup(mt->options[i] + len + 1);
	return NULL;
}

/* Prepare or View; ret_upper (may be NULL) gets the first mount's upperdir
 * (an extract snapshot's, where a differ writes), ret_source its source. */
static int prepare_x(struct local *l, enum method m, bool view, const char *key, const char *parent,
		     int expect, size_t *ret_n, char **ret_type, char **ret_upper, char **ret_source)
{
	ProtobufCMessage *resp;
	size_t n;
	Containerd__Types__Mount **mounts;

	if (view) {
		SNAP(ViewSnapshotRequest) req = CONTAINERD__SERVICES__SNAPSHOTS__V1__VIEW_SNAPSHOT_REQUEST__INIT;
		req.snapshotter = (char *)opt.snapshotter;
		req.key = (char *)key;
		req.parent = (char *)(parent ? parent : "");
		resp = call_expect(l, m, SNAPSHOTS_VIEW, &req.base, DESC(view_snapshot_response), key,
				   expect);
		if (!resp)
			return -1;
		n = ((SNAP(ViewSnapshotResponse) *)resp)->n_mounts;
		mounts = ((SNAP(ViewSnapshotResponse) *)resp)->mounts;
	} else {
		SNAP(PrepareSnapshotRequest) req = CONTAINERD__SERVICES__SNAPSHOTS__V1__PREPARE_SNAPSHOT_REQUEST__INIT;
		req.snapshotter = (char *)opt.snapshotter;
		req.key = (char *)key;
		req.parent = (char *)(parent ? parent : "");
		resp = call_expect(l, m, SNAPSHOTS_PREPARE, &req.base, DESC(prepare_snapshot_response),
				   key, expect);
		if (!resp)
			return -1;
		n = ((SNAP(PrepareSnapshotResponse) *)resp)->n_mounts;
		mounts = ((SNAP(PrepareSnapshotResponse) *)resp)->mounts;
	}
	if (ret_n)
		*ret_n = n;
	if (ret_type)
		*ret_type = n ? strdup(mounts[0]->type) : NULL;
	if (ret_upper)
		*ret_upper = n ? mount_option(mounts[0], "upperdir") : NULL;
	if (ret_source)
		*ret_source = n ? strdup(mounts[0]->source) : NULL;
	drop(resp);
	return 0;
}

static int prepare(struct local *l, enum method m, bool view, const char *key, const char *parent,
		   size_t *ret_n, char **ret_type)
{
	return prepare_x(l, m, view, key, parent, 0, ret_n, ret_type, NULL, NULL);
}

static int stat_check(struct local *l, enum method m, const char *key, int kind, const char *parent)
{
	SNAP(StatSnapshotRequest) req = CONTAINERD__SERVICES__SNAPSHOTS__V1__STAT_SNAPSHOT_REQUEST__INIT;
	req.snapshotter = (char *)opt.snapshotter;
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
	req.snapshotter = (char *)opt.snapshotter;
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
	req.snapshotter = (char *)opt.snapshotter;
	req.name = (char *)name;
	req.key = (char *)key;
	ProtobufCMessage *resp =
		call(l, M_COMMIT, SNAPSHOTS_COMMIT, &req.base, &google__protobuf__empty__descriptor, key);
	drop(resp);
	return resp ? 0 : -1;
}

static int remove_x(struct local *l, enum method m, const char *key, int expect)
{
	SNAP(RemoveSnapshotRequest) req = CONTAINERD__SERVICES__SNAPSHOTS__V1__REMOVE_SNAPSHOT_REQUEST__INIT;
	req.snapshotter = (char *)opt.snapshotter;
	req.key = (char *)key;
	ProtobufCMessage *resp = call_expect(l, m, SNAPSHOTS_REMOVE, &req.base,
					     &google__protobuf__empty__descriptor, key, expect);
	drop(resp);
	return resp ? 0 : -1;
}

static int remove_key(struct local *l, enum method m, const char *key)
{
	return remove_x(l, m, key, 0);
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

	req.snapshotter = (char *)opt.snapshotter;
	if (filter) {
		req.n_filters = 1;
		req.filters = filters;
	}
	r = rpc_client_server_stream(cli, SNAPSHOTS_LIST, md, 2, TIMEOUT_MS, &req.base, &s);
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
	req.snapshotter = (char *)opt.snapshotter;
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

/* CPU seconds (user + system) the daemon has used so far; -1 without --pid */
static double daemon_cpu_s(void)
{
	char path[64], buf[1024];
	unsigned long ut, st;

	if (opt.pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)opt.pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* the fields after the command name, which may hold spaces */
	char *p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds this process (the clients) has used so far */
static double self_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- files the way a differ writes them ---- */

/* a committed layer's image, for --commit-layer */
static char *layer_bytes;
static size_t layer_len;

static int write_file_at(const char *path, const char *data, size_t len, bool sync)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	for (size_t off = 0; off < len;) {
		ssize_t k = write(fd, data + off, len - off);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			int r = -errno;
			close(fd);
			return r;
		}
		off += (size_t)k;
	}
	int r = sync && fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

static int read_file(const char *path, char **ret, size_t *ret_len)
{
	FILE *f = fopen(path, "re");
	struct stat st;
	if (!f)
		return -errno;
	if (fstat(fileno(f), &st) < 0 || !(*ret = malloc((size_t)st.st_size + 1))) {
		fclose(f);
		return -ENOMEM;
	}
	*ret_len = fread(*ret, 1, (size_t)st.st_size, f);
	fclose(f);
	return *ret_len == (size_t)st.st_size ? 0 : -EIO;
}

static int sync_dir(const char *path, size_t len)
{
	char dir[4200];
	snprintf(dir, sizeof(dir), "%.*s", (int)len, path);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = fd < 0 || fsync(fd) < 0 ? -errno : 0;
	if (fd >= 0)
		close(fd);
	return r;
}

/* What our differ's Apply leaves: layer.erofs beside the extract snapshot's
 * fs/ (the upperdir), published by a rename. With --apply-syncs also as
 * durably as Apply makes it (three syncs: the file, the snapshot's
 * directory, snapshots/); by default not, since those are Apply's cost and
 * this measures the metadata calls (16 clients would otherwise stand for a
 * thousand Applies a second, which no real unpack comes near). */
static int place_layer(const char *upper)
{
	char tmp[4200], final[4200];
	const char *slash = strrchr(upper, '/'), *up;
	if (!slash)
		return -EINVAL;
	snprintf(tmp, sizeof(tmp), "%.*s/.layer.erofs.bench", (int)(slash - upper), upper);
	snprintf(final, sizeof(final), "%.*s/layer.erofs", (int)(slash - upper), upper);
	int r = write_file_at(tmp, layer_bytes, layer_len, opt.apply_syncs);
	if (r == 0 && rename(tmp, final) < 0)
		r = -errno;
	if (r == 0) {
		/* Apply sets the immutable flag (the daemon's default
		 * --set-immutable); the file systems without it ignore it */
		int fd = open(final, O_RDONLY | O_CLOEXEC), flags;
		if (fd >= 0 && ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
			flags |= FS_IMMUTABLE_FL;
			ioctl(fd, FS_IOC_SETFLAGS, &flags);
		}
		if (fd >= 0)
			close(fd);
	}
	if (!opt.apply_syncs)
		return r;
	if (r == 0)
		r = sync_dir(upper, (size_t)(slash - upper));
	for (up = slash - 1; r == 0 && up > upper && *up != '/'; up--)
		;
	if (r == 0)
		r = sync_dir(upper, (size_t)(up - upper));
	return r;
}

/* ---- phases ---- */

struct worker {
	pthread_t t;
	unsigned id;
	struct local l;
};

/* View(parent) as a client looks at an image: one erofs mount, Mounts, then
 * Remove */
static void view_once(struct local *l, const char *view, const char *parent)
{
	size_t n = 0;
	char *type = NULL;

	if (prepare(l, M_VIEW, true, view, parent, &n, &type) != 0)
		return;
	if (n != 1 || !type || strcmp(type, "erofs") != 0)
		problem("View %s: %zu mounts, %s; expected one erofs", view, n, type ? type : "-");
	free(type);
	mounts(l, M_MOUNTS_VIEW, view, "erofs", 1);
	remove_key(l, M_REMOVE_VIEW, view);
}

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

		char *upper = NULL;
		const char *parent = opt.flat ? "" : base_key;
		if (prepare_x(&w->l, M_PREPARE, false, key, parent, 0, &n, &type, &upper, NULL) < 0)
			continue;
		if (n != 1 || !type || strcmp(type, "overlay") != 0 || !upper)
			problem("Prepare %s: %zu mounts, %s; expected one overlay", key, n,
				type ? type : "-");
		free(type);
		if (opt.commit_layer && upper) {
			int r = place_layer(upper);
			if (r < 0)
				problem("%s: cannot write layer.erofs: %s", upper, strerror(-r));
		}
		free(upper);
		stat_check(&w->l, M_STAT, key, CONTAINERD__SERVICES__SNAPSHOTS__V1__KIND__ACTIVE, parent);
		mounts(&w->l, M_MOUNTS, key, "overlay", 1);
		if (commit(&w->l, name, key) < 0) {
			remove_key(NULL, M_REMOVE_COMMITTED, key);
			continue;
		}
		view_once(&w->l, view, base_key);
		remove_key(&w->l, M_REMOVE_COMMITTED, name);
	}
	return NULL;
}

/* --threads workers running fn (on a struct worker each), joined, their
 * samples merged */
static void run_workers(void *(*fn)(void *))
{
	struct worker *w = calloc(opt.threads, sizeof(*w));

	if (!w) {
		problem("out of memory");
		return;
	}
	for (unsigned k = 0; k < opt.threads; k++) {
		w[k].id = k;
		pthread_create(&w[k].t, NULL, fn, &w[k]);
	}
	for (unsigned k = 0; k < opt.threads; k++) {
		pthread_join(w[k].t, NULL);
		merge_local(&w[k].l);
	}
	free(w);
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

/* ---- the load test (issue 4): --load ---- */

/* the file a client writes in round i, reproducible by the checker:
 * "t<t>-r<i>\n" repeated 1 + (31 t + 7 i) % 300 times */
static char *round_content(unsigned t, unsigned i, size_t *ret_len)
{
	char unit[32];
	int u = snprintf(unit, sizeof(unit), "t%u-r%u\n", t, i);
	size_t reps = 1 + (31 * t + 7 * i) % 300;
	char *buf = malloc(reps * (size_t)u + 1);
	if (!buf)
		return NULL;
	for (size_t k = 0; k < reps; k++)
		memcpy(buf + k * (size_t)u, unit, (size_t)u);
	*ret_len = reps * (size_t)u;
	return buf;
}

struct kept {
	char name[256];
	char layer[4200];
	unsigned t, i;
};

static struct kept *kept;
static size_t n_kept;
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;

static void keep(const char *name, const char *upper, unsigned t, unsigned i)
{
	const char *slash = strrchr(upper, '/');
	pthread_mutex_lock(&kept_lock);
	struct kept *p = realloc(kept, (n_kept + 1) * sizeof(*kept));
	if (!p) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	kept = p;
	snprintf(kept[n_kept].name, sizeof(kept[n_kept].name), "%s", name);
	snprintf(kept[n_kept].layer, sizeof(kept[n_kept].layer), "%.*s/layer.erofs",
		 (int)(slash ? slash - upper : 0), upper);
	kept[n_kept].t = t;
	kept[n_kept].i = i;
	n_kept++;
	pthread_mutex_unlock(&kept_lock);
}

/*
 * One client's rounds: Prepare(extract on base) / Stat / Mounts / a file
 * written into the upperdir as the walking differ would / Prepare of the
 * same key again (AlreadyExists) / Commit (converts it, merges the chain)
 * / View(the new layer) / Mounts / Remove(view); every 4th round an active
 * snapshot on the layer (rwlayer.img), a Remove of the layer refused while
 * it has that child, Remove(active); every --keep-every'th layer is kept
 * for the checks after the run, the others removed.
 */
static void *load_main(void *p)
{
	struct worker *w = p;
	unsigned t = w->id;

	for (unsigned i = 0; i < opt.iterations; i++) {
		char key[256], name[256], view[256], act[256], path[4400];
		size_t n = 0, len = 0;
		char *type = NULL, *upper = NULL;

		snprintf(key, sizeof(key), "%s/%u/%u/extract-%u-%u sha256:l%u-%u", opt.prefix, t, i, t,
			 i, t, i);
		snprintf(name, sizeof(name), "%s/%u/%u/sha256:l%u-%u", opt.prefix, t, i, t, i);
		snprintf(view, sizeof(view), "%s/%u/%u/view", opt.prefix, t, i);
		snprintf(act, sizeof(act), "%s/%u/%u/active", opt.prefix, t, i);

		if (prepare_x(&w->l, M_PREPARE, false, key, base_key, 0, &n, &type, &upper, NULL) < 0)
			continue;
		if (n != 1 || !type || strcmp(type, "overlay") != 0 || !upper) {
			problem("Prepare %s: %zu mounts, %s; expected one overlay with an upperdir",
				key, n, type ? type : "-");
			free(type);
			free(upper);
			continue;
		}
		free(type);
		stat_check(&w->l, M_STAT, key, CONTAINERD__SERVICES__SNAPSHOTS__V1__KIND__ACTIVE,
			   base_key);
		mounts(&w->l, M_MOUNTS, key, "overlay", 1);
		char *content = round_content(t, i, &len);
		snprintf(path, sizeof(path), "%s/t%u-r%u", upper, t, i);
		int r = content ? write_file_at(path, content, len, false) : -ENOMEM;
		if (r == 0) {
			snprintf(path, sizeof(path), "%s/d%u", upper, t);
			r = mkdir(path, 0755) < 0 ? -errno : 0;
		}
		if (r == 0) {
			snprintf(path, sizeof(path), "%s/d%u/f%u", upper, t, i);
			r = write_file_at(path, "x\n", 2, false);
		}
		free(content);
		if (r < 0)
			problem("%s: cannot write the layer's files: %s", upper, strerror(-r));
		prepare_x(&w->l, M_PREPARE_DUP, false, key, base_key,
			  6 /* ALREADY_EXISTS */, NULL, NULL, NULL, NULL);
		if (commit(&w->l, name, key) < 0) {
			remove_key(NULL, M_REMOVE_COMMITTED, key);
			free(upper);
			continue;
		}
		view_once(&w->l, view, name);
		if (i % 4 == 0 &&
		    prepare(&w->l, M_PREPARE_ACTIVE, false, act, name, &n, &type) == 0) {
			if (n != 2 || !type || strcmp(type, "erofs") != 0)
				problem("Prepare %s: %zu mounts, %s; expected erofs, ext4", act, n,
					type ? type : "-");
			free(type);
			remove_x(&w->l, M_REMOVE_BUSY, name, 9 /* FAILED_PRECONDITION */);
			remove_key(&w->l, M_REMOVE_ACTIVE, act);
		}
		if (opt.keep_every && i % opt.keep_every == opt.keep_every - 1)
			keep(name, upper, t, i);
		else
			remove_key(&w->l, M_REMOVE_COMMITTED, name);
		free(upper);
	}
	return NULL;
}

/* Names of every snapshot (List), sorted. */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **list_names(size_t *ret_n)
{
	SNAP(ListSnapshotsRequest) req = CONTAINERD__SERVICES__SNAPSHOTS__V1__LIST_SNAPSHOTS_REQUEST__INIT;
	struct rpc_stream *s = NULL;
	struct rpc_status st = { 0 };
	char **v = NULL;
	size_t n = 0;
	int r;

	req.snapshotter = (char *)opt.snapshotter;
	r = rpc_client_server_stream(cli, SNAPSHOTS_LIST, md, 2, TIMEOUT_MS, &req.base, &s);
	while (r == 0) {
		ProtobufCMessage *m = NULL;
		r = rpc_stream_recv(s, DESC(list_snapshots_response), &m);
		if (r <= 0)
			break;
		SNAP(ListSnapshotsResponse) *resp = (void *)m;
		char **p = realloc(v, (n + resp->n_info + 1) * sizeof(*v));
		if (!p) {
			fprintf(stderr, "out of memory\n");
			exit(2);
		}
		v = p;
		for (size_t i = 0; i < resp->n_info; i++)
			v[n++] = strdup(resp->info[i]->name);
		drop(m);
		r = 0;
	}
	int fr = s ? rpc_stream_finish(s, &st) : 0;
	rpc_stream_free(s);
	if (r < 0 || fr < 0) {
		problem("List: %s (%s: %s)", strerror(-(r < 0 ? r : fr)), rpc_status_name(st.code),
			st.message ? st.message : "");
		rpc_status_done(&st);
		*ret_n = 0;
		return v;
	}
	rpc_status_done(&st);
	if (n)
		qsort(v, n, sizeof(*v), cmp_str);
	*ret_n = n;
	return v;
}

static void free_names(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int cmp_kept(const void *a, const void *b)
{
	return strcmp(((const struct kept *)a)->name, ((const struct kept *)b)->name);
}

/* After the load: List holds exactly the base chain and the kept layers,
 * each kept one Stats as committed on base; the report names them. */
static void load_verify(const char *const *base_names, unsigned n_base)
{
	size_t n = 0;
	char **names = list_names(&n);
	size_t want = n_base + n_kept;
	size_t mine = 0;
	size_t plen = strlen(opt.prefix);

	qsort(kept, n_kept, sizeof(*kept), cmp_kept);
	for (size_t i = 0; i < n; i++) {
		if (strncmp(names[i], opt.prefix, plen) != 0 || names[i][plen] != '/')
			continue; /* not ours (another client's, through containerd) */
		mine++;
		struct kept probe;
		snprintf(probe.name, sizeof(probe.name), "%s", names[i]);
		bool known = bsearch(&probe, kept, n_kept, sizeof(*kept), cmp_kept) != NULL;
		for (unsigned b = 0; b < n_base && !known; b++)
			known = strcmp(names[i], base_names[b]) == 0;
		if (!known)
			problem("after the load List has %s, which should be gone", names[i]);
	}
	if (mine != want)
		problem("after the load List has %zu snapshots of ours, expected %zu", mine, want);
	for (size_t k = 0; k < n_kept; k++)
		stat_check(NULL, M_STAT, kept[k].name,
			   CONTAINERD__SERVICES__SNAPSHOTS__V1__KIND__COMMITTED, base_key);
	free_names(names, n);
	if (opt.report) {
		FILE *f = fopen(opt.report, "we");
		if (!f) {
			problem("%s: %s", opt.report, strerror(errno));
			return;
		}
		for (size_t k = 0; k < n_kept; k++)
			fprintf(f, "%u\t%u\t%s\t%s\n", kept[k].t, kept[k].i, kept[k].layer,
				kept[k].name);
		fclose(f);
	}
}

/* --remove-prefix: every snapshot whose name starts with it, children
 * before parents (a refused Remove is tried again in the next pass). */
struct rm_worker {
	pthread_t t;
	char **names;
	size_t from, to;
	unsigned removed;
};

static void *rm_main(void *p)
{
	struct rm_worker *w = p;
	for (size_t i = w->from; i < w->to; i++) {
		SNAP(RemoveSnapshotRequest) req = CONTAINERD__SERVICES__SNAPSHOTS__V1__REMOVE_SNAPSHOT_REQUEST__INIT;
		ProtobufCMessage *resp = NULL;
		struct rpc_status st = { 0 };
		req.snapshotter = (char *)opt.snapshotter;
		req.key = w->names[i];
		int r = rpc_client_unary(cli, SNAPSHOTS_REMOVE, md, 2, TIMEOUT_MS, &req.base,
					 &google__protobuf__empty__descriptor, &resp, &st);
		drop(resp);
		if (r == 0)
			w->removed++;
		else if (st.code != 9 /* FAILED_PRECONDITION: children first */)
			problem("Remove %s: %s (%s: %s)", w->names[i], strerror(-r),
				rpc_status_name(st.code), st.message ? st.message : "");
		rpc_status_done(&st);
	}
	return NULL;
}

static void remove_prefix(const char *prefix)
{
	size_t plen = strlen(prefix);
	for (int pass = 0; pass < 64; pass++) {
		size_t n = 0, m = 0;
		char **names = list_names(&n);
		for (size_t i = 0; i < n; i++) {
			if (strncmp(names[i], prefix, plen) == 0)
				names[m++] = names[i];
			else
				free(names[i]);
		}
		if (!m) {
			free(names);
			return;
		}
		unsigned nt = opt.threads < m ? opt.threads : (unsigned)m;
		struct rm_worker *w = calloc(nt, sizeof(*w));
		size_t per = (m + nt - 1) / nt;
		unsigned removed = 0;
		for (unsigned k = 0; k < nt; k++) {
			w[k].names = names;
			w[k].from = k * per < m ? k * per : m;
			w[k].to = (k + 1) * per < m ? (k + 1) * per : m;
			pthread_create(&w[k].t, NULL, rm_main, &w[k]);
		}
		for (unsigned k = 0; k < nt; k++) {
			pthread_join(w[k].t, NULL);
			removed += w[k].removed;
		}
		free(w);
		free_names(names, m);
		if (!removed) {
			problem("--remove-prefix %s: %zu snapshots left that cannot be removed", prefix, m);
			return;
		}
	}
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
		   "                    [--views N] [--base-layers N] [--mixed-actives N] [--prefix P]\n"
		   "                    [--commit-layer [--apply-syncs]] [--flat] [--snapshotter NAME] [--namespace NS] [--lease ID]\n"
		   "                    [--load [--keep-every N] [--report FILE]] [--remove-prefix P]\n");
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
		{ "commit-layer", no_argument, NULL, 'C' },
		{ "apply-syncs", no_argument, NULL, 'A' },
		{ "flat", no_argument, NULL, 'F' },
		{ "snapshotter", required_argument, NULL, 'S' },
		{ "namespace", required_argument, NULL, 'N' },
		{ "lease", required_argument, NULL, 'L' },
		{ "load", no_argument, NULL, 'l' },
		{ "keep-every", required_argument, NULL, 'k' },
		{ "report", required_argument, NULL, 'r' },
		{ "remove-prefix", required_argument, NULL, 'R' },
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
		case 'C': opt.commit_layer = true; break;
		case 'A': opt.apply_syncs = true; break;
		case 'F': opt.flat = true; break;
		case 'S': opt.snapshotter = optarg; break;
		case 'N': md[0].value = optarg; break;
		case 'L': md[1].value = optarg; break;
		case 'l': opt.load = true; break;
		case 'k': opt.keep_every = (unsigned)atoi(optarg); break;
		case 'r': opt.report = optarg; break;
		case 'R': opt.remove_prefix = optarg; break;
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
	if (opt.commit_layer)
		method_names[M_COMMIT] = opt.flat ? "Commit (layer.erofs made already, no parent)"
						  : "Commit (layer.erofs made already, merge)";
	else if (opt.flat)
		method_names[M_COMMIT] = "Commit (empty upperdir, no parent)";
	if (opt.flat)
		method_names[M_PREPARE] = "Prepare (extract, no parent)";
	if (opt.load)
		method_names[M_COMMIT] = "Commit (converts fs/, merges)";
	if (opt.remove_prefix) {
		remove_prefix(opt.remove_prefix);
		unsigned e = atomic_load(&errors);
		printf("errors: %u\n", e);
		rpc_client_free(cli);
		return e ? 1 : 0;
	}
	long rss_idle = rss_kib();
	struct local main_l = { 0 };

	/* 1. the base chain */
	char parent[256] = "";
	char **base_names = calloc(opt.base_layers, sizeof(*base_names));
	for (unsigned k = 0; k < opt.base_layers; k++) {
		char key[256], name[256], *upper = NULL;
		snprintf(key, sizeof(key), "%s/base/%u/extract-base%u sha256:base%u", opt.prefix, k, k, k);
		snprintf(name, sizeof(name), "%s/base/sha256:base%u", opt.prefix, k);
		if (prepare_x(NULL, M_PREPARE, false, key, parent, 0, NULL, NULL, &upper, NULL) < 0 ||
		    commit(NULL, name, key) < 0) {
			fprintf(stderr, "daemon-bench: cannot make the base chain\n");
			return 1;
		}
		if (k == 0 && opt.commit_layer) {
			/* a layer image to hand to every Commit, as Apply would */
			char path[4200];
			const char *slash = upper ? strrchr(upper, '/') : NULL;
			snprintf(path, sizeof(path), "%.*s/layer.erofs",
				 (int)(slash ? slash - upper : 0), upper ? upper : "");
			r = read_file(path, &layer_bytes, &layer_len);
			if (r < 0) {
				fprintf(stderr, "daemon-bench: %s: %s\n", path, strerror(-r));
				return 1;
			}
		}
		free(upper);
		base_names[k] = strdup(name);
		snprintf(parent, sizeof(parent), "%s", name);
	}
	snprintf(base_key, sizeof(base_key), "%s", parent);

	if (opt.load) {
		printf("daemon-bench: load, %u clients × %u rounds on a base chain of %u layer(s), "
		       "every %u%s layer kept\n",
		       opt.threads, opt.iterations, opt.base_layers, opt.keep_every,
		       opt.keep_every == 1 ? "st" : "th");
		double l0 = now_ms();
		run_workers(load_main);
		double load_s = (now_ms() - l0) / 1e3;
		load_verify((const char *const *)base_names, opt.base_layers);
		print_table();
		printf("\nload: %.1f s for %u rounds (%.0f rounds/s); %zu layers kept\n", load_s,
		       opt.threads * opt.iterations, opt.threads * opt.iterations / load_s, n_kept);
		if (opt.pid > 0)
			printf("RSS (VmRSS) of the daemon: idle %.1f MiB, after the load %.1f MiB\n",
			       rss_idle / 1024.0, rss_kib() / 1024.0);
		unsigned e = atomic_load(&errors);
		printf("errors: %u\n", e);
		free_names(base_names, opt.base_layers);
		free(layer_bytes);
		rpc_client_free(cli);
		return e ? 1 : 0;
	}
	long before = list_count(NULL, NULL, NULL, NULL);
	printf("daemon-bench: %u threads, %u iterations, %u views, base chain of %u layer(s); "
	       "%ld snapshots before\n",
	       opt.threads, opt.iterations, opt.views, opt.base_layers, before);

	/* 2. the unpack-like cycle */
	double t0 = now_ms(), cpu_d0 = daemon_cpu_s(), cpu_c0 = self_cpu_s();
	run_workers(cycle_main);
	double cycle_s = (now_ms() - t0) / 1e3;
	double cycle_cpu_d = daemon_cpu_s() - cpu_d0, cycle_cpu_c = self_cpu_s() - cpu_c0;
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
		printf("CPU of the cycle: daemon %.2f s (%.0f us a cycle), clients %.2f s\n", cycle_cpu_d,
		       cycle_cpu_d * 1e6 / (opt.threads * opt.iterations), cycle_cpu_c);
	if (opt.pid > 0)
		printf("RSS (VmRSS) of the daemon: idle %.1f MiB; after the cycle %.1f MiB; "
		       "with %u views %.1f MiB; after List %.1f MiB; at the end %.1f MiB\n",
		       rss_idle / 1024.0, rss_cycle / 1024.0, opt.views, rss_views / 1024.0,
		       rss_list / 1024.0, rss_end / 1024.0);
	printf("targets: p99 < 5 ms for Prepare %.3f, View %.3f (at scale %.3f), Commit %.3f, "
	       "Remove %.3f / %.3f, Mounts %.3f / %.3f, Stat %.3f; idle RSS < 32 MiB: %.1f MiB\n",
	       p99_of(M_PREPARE), p99_of(M_VIEW), p99_of(M_VIEW_SCALE), p99_of(M_COMMIT),
	       p99_of(M_REMOVE_VIEW), p99_of(M_REMOVE_COMMITTED), p99_of(M_MOUNTS),
	       p99_of(M_MOUNTS_VIEW), p99_of(M_STAT), rss_idle / 1024.0);
	unsigned e = atomic_load(&errors);
	printf("errors: %u\n", e);
	free_names(base_names, opt.base_layers);
	free(layer_bytes);
	rpc_client_free(cli);
	return e ? 1 : 0;
}
