/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A throwaway snapshotter for the interop test with a real containerd: keeps
 * snapshots in memory and answers Prepare, View, Commit, Stat, Update,
 * List, Usage, Remove and Cleanup. Mounts is left out on purpose so that
 * the test sees containerd carry our UNIMPLEMENTED back to ctr. A test
 * fixture, not the product.
 *
 *   rpc-echo-snapshotter SOCKET
 *
 * Logs one line per call on stdout ("rpc <method> <STATUS> <key>"), and
 * starts with one snapshot containerd does not know ("echo-orphan"), which
 * containerd's garbage collector should find through List and Remove.
 * Stops on SIGTERM or SIGINT.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "containerd-proto.h"
#include "rpc.h"

typedef Containerd__Services__Snapshots__V1__Info Info;
typedef Containerd__Services__Snapshots__V1__Info__LabelsEntry InfoLabel;
typedef Containerd__Services__Snapshots__V1__Kind Kind;
typedef Containerd__Types__Mount Mount;
typedef Google__Protobuf__Timestamp Timestamp;

#define KIND(k) CONTAINERD__SERVICES__SNAPSHOTS__V1__KIND__##k
#define MAX_SNAPSHOTS 1024
#define SERVED_BY "containerd.io/snapshot/echo.served-by"

struct snap {
	char *key;
	char *parent;
	Kind kind;
	int64_t created;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct snap snaps[MAX_SNAPSHOTS];
static size_t n_snaps;

static struct snap *find(const char *key)
{
	for (size_t i = 0; i < n_snaps; i++)
		if (strcmp(snaps[i].key, key) == 0)
			return &snaps[i];
	return NULL;
}

static int add(const char *key, const char *parent, Kind kind)
{
	if (find(key))
		return -EEXIST;
	if (*parent && !find(parent))
		return -ENOENT;
	if (n_snaps == MAX_SNAPSHOTS)
		return -ENOSPC;
	snaps[n_snaps] = (struct snap){
		.key = strdup(key),
		.parent = strdup(parent),
		.kind = kind,
		.created = time(NULL),
	};
	n_snaps++;
	return 0;
}

/* Fills info from s (copies of its strings: the table's may go once the
 * lock is dropped; free them with info_done()). Every reply carries
 * SERVED_BY, so that ctr's output shows the answer came from here. */
struct info_buf {
	Info info;
	Timestamp ts;
	InfoLabel label;
	InfoLabel *labels[1];
};

static void fill_info(struct info_buf *b, const struct snap *s)
{
	Info info = CONTAINERD__SERVICES__SNAPSHOTS__V1__INFO__INIT;
	Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	InfoLabel label = CONTAINERD__SERVICES__SNAPSHOTS__V1__INFO__LABELS_ENTRY__INIT;

	b->info = info;
	b->ts = ts;
	b->label = label;
	b->ts.seconds = s->created;
	b->label.key = SERVED_BY;
	b->label.value = "c-rpc";
	b->labels[0] = &b->label;
	b->info.name = strdup(s->key);
	b->info.parent = strdup(s->parent);
	b->info.kind = s->kind;
	b->info.created_at = &b->ts;
	b->info.updated_at = &b->ts;
	b->info.n_labels = 1;
	b->info.labels = b->labels;
}

static void info_done(struct info_buf *b)
{
	free(b->info.name);
	free(b->info.parent);
}

static void reply_mounts(struct rpc_call *call, const char *key, bool view)
{
	/* Prepare, View and Mounts responses share one layout (mounts = 1). */
	Containerd__Services__Snapshots__V1__PrepareSnapshotResponse resp =
		CONTAINERD__SERVICES__SNAPSHOTS__V1__PREPARE_SNAPSHOT_RESPONSE__INIT;
	Mount m = CONTAINERD__TYPES__MOUNT__INIT;
	Mount *mounts[] = { &m };
	char *opts[] = { view ? "ro" : "rw", "rbind" };
	char source[512];

	snprintf(source, sizeof(source), "/echo/%s", key);
	m.type = "bind";
	m.source = source;
	m.n_options = 2;
	m.options = opts;
	resp.n_mounts = 1;
	resp.mounts = mounts;
	rpc_call_reply(call, &resp.base);
}

static void h_prepare(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	Containerd__Services__Snapshots__V1__PrepareSnapshotRequest *req = (void *)msg;
	bool view = ud != NULL;
	int r;

	pthread_mutex_lock(&lock);
	r = add(req->key, req->parent, view ? KIND(VIEW) : KIND(ACTIVE));
	pthread_mutex_unlock(&lock);
	if (r < 0) {
		rpc_call_error_errno(call, r, "snapshot %s: %s", req->key, strerror(-r));
		return;
	}
	reply_mounts(call, req->key, view);
}

static void h_commit(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	Containerd__Services__Snapshots__V1__CommitSnapshotRequest *req = (void *)msg;
	Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
	struct snap *s;
	int r;

	pthread_mutex_lock(&lock);
	s = find(req->key);
	if (!s)
		r = -ENOENT;
	else if (s->kind != KIND(ACTIVE))
		r = -EBUSY;
	else
		r = add(req->name, s->parent, KIND(COMMITTED));
	pthread_mutex_unlock(&lock);
	if (r < 0) {
		rpc_call_error_errno(call, r, "commit %s → %s: %s", req->key, req->name, strerror(-r));
		return;
	}
	rpc_call_reply(call, &empty.base);
}

static void h_stat(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	Containerd__Services__Snapshots__V1__StatSnapshotRequest *req = (void *)msg;
	Containerd__Services__Snapshots__V1__StatSnapshotResponse resp =
		CONTAINERD__SERVICES__SNAPSHOTS__V1__STAT_SNAPSHOT_RESPONSE__INIT;
	struct info_buf b;
	struct snap *s;

	pthread_mutex_lock(&lock);
	s = find(req->key);
	if (s)
		fill_info(&b, s);
	pthread_mutex_unlock(&lock);
	if (!s) {
		rpc_call_error(call, RPC_NOT_FOUND, "snapshot %s does not exist", req->key);
		return;
	}
	resp.info = &b.info;
	if (b.info.name && b.info.parent)
		rpc_call_reply(call, &resp.base);
	info_done(&b);
}

static void h_update(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	Containerd__Services__Snapshots__V1__UpdateSnapshotRequest *req = (void *)msg;
	Containerd__Services__Snapshots__V1__UpdateSnapshotResponse resp =
		CONTAINERD__SERVICES__SNAPSHOTS__V1__UPDATE_SNAPSHOT_RESPONSE__INIT;
	struct info_buf b;
	struct snap *s;

	if (!req->info) {
		rpc_call_error(call, RPC_INVALID_ARGUMENT, "no info");
		return;
	}
	pthread_mutex_lock(&lock);
	s = find(req->info->name);
	if (s)
		fill_info(&b, s);
	pthread_mutex_unlock(&lock);
	if (!s) {
		rpc_call_error(call, RPC_NOT_FOUND, "snapshot %s does not exist", req->info->name);
		return;
	}
	resp.info = &b.info; /* labels are not kept: echo the served-by one */
	if (b.info.name && b.info.parent)
		rpc_call_reply(call, &resp.base);
	info_done(&b);
}

static void h_usage(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	Containerd__Services__Snapshots__V1__UsageRequest *req = (void *)msg;
	Containerd__Services__Snapshots__V1__UsageResponse resp =
		CONTAINERD__SERVICES__SNAPSHOTS__V1__USAGE_RESPONSE__INIT;
	bool found;

	pthread_mutex_lock(&lock);
	found = find(req->key) != NULL;
	pthread_mutex_unlock(&lock);
	if (!found) {
		rpc_call_error(call, RPC_NOT_FOUND, "snapshot %s does not exist", req->key);
		return;
	}
	resp.size = 4096;
	resp.inodes = 1;
	rpc_call_reply(call, &resp.base);
}

static void h_remove(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	Containerd__Services__Snapshots__V1__RemoveSnapshotRequest *req = (void *)msg;
	Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
	struct snap *s;
	int r = 0;

	pthread_mutex_lock(&lock);
	s = find(req->key);
	if (!s) {
		r = -ENOENT;
	} else {
		for (size_t i = 0; i < n_snaps; i++)
			if (strcmp(snaps[i].parent, s->key) == 0)
				r = -EBUSY; /* has children */
		if (r == 0) {
			free(s->key);
			free(s->parent);
			*s = snaps[--n_snaps];
		}
	}
	pthread_mutex_unlock(&lock);
	if (r < 0) {
		rpc_call_error_errno(call, r, "remove %s: %s", req->key, strerror(-r));
		return;
	}
	printf("removed %s\n", req->key);
	fflush(stdout);
	rpc_call_reply(call, &empty.base);
}

static void h_cleanup(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;

	rpc_call_reply(call, &empty.base);
}

/* List streams in messages of up to 2 infos, to exercise the stream. */
static void h_list(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	struct info_buf *bufs;
	Info **ptrs;
	size_t n;

	pthread_mutex_lock(&lock);
	n = n_snaps;
	bufs = calloc(n ?: 1, sizeof(*bufs));
	ptrs = calloc(n ?: 1, sizeof(*ptrs));
	if (bufs && ptrs)
		for (size_t i = 0; i < n; i++) {
			fill_info(&bufs[i], &snaps[i]);
			ptrs[i] = &bufs[i].info;
		}
	pthread_mutex_unlock(&lock);
	if (!bufs || !ptrs) {
		free(bufs);
		free(ptrs);
		rpc_call_error(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i += 2) {
		Containerd__Services__Snapshots__V1__ListSnapshotsResponse resp =
			CONTAINERD__SERVICES__SNAPSHOTS__V1__LIST_SNAPSHOTS_RESPONSE__INIT;

		resp.n_info = n - i < 2 ? n - i : 2;
		resp.info = &ptrs[i];
		if (rpc_call_send(call, &resp.base) < 0)
			break;
	}
	for (size_t i = 0; i < n; i++)
		info_done(&bufs[i]);
	free(bufs);
	free(ptrs);
	if (!rpc_call_cancelled(call))
		rpc_call_finish(call);
}

static void logger(const char *method, int code, const char *message, uint64_t us, void *ud)
{
	const char *name = strrchr(method, '/');

	printf("rpc %s %s %lluus%s%s\n", name ? name + 1 : method, rpc_status_name(code),
	       (unsigned long long)us, message ? " " : "", message ?: "");
	fflush(stdout);
}

#define SN_DESC(x) (&containerd__services__snapshots__v1__##x##__descriptor)

int main(int argc, char **argv)
{
	struct rpc_server *srv = NULL;
	sigset_t set;
	int sig, r;

	if (argc != 2) {
		fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
		return 2;
	}
	/* Block the stop signals before gRPC starts its threads, so they
	 * inherit the mask and sigwait() below gets them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	add("echo-orphan", "", KIND(COMMITTED));

	r = rpc_server_new(argv[1], 4, &srv);
	if (r < 0) {
		fprintf(stderr, "rpc_server_new %s: %s\n", argv[1], strerror(-r));
		return 1;
	}
	rpc_server_register(srv, SNAPSHOTS_PREPARE, RPC_UNARY, SN_DESC(prepare_snapshot_request),
			    h_prepare, NULL);
	rpc_server_register(srv, SNAPSHOTS_VIEW, RPC_UNARY, SN_DESC(view_snapshot_request),
			    h_prepare, (void *)1);
	rpc_server_register(srv, SNAPSHOTS_COMMIT, RPC_UNARY, SN_DESC(commit_snapshot_request),
			    h_commit, NULL);
	rpc_server_register(srv, SNAPSHOTS_STAT, RPC_UNARY, SN_DESC(stat_snapshot_request), h_stat,
			    NULL);
	rpc_server_register(srv, SNAPSHOTS_UPDATE, RPC_UNARY, SN_DESC(update_snapshot_request),
			    h_update, NULL);
	rpc_server_register(srv, SNAPSHOTS_USAGE, RPC_UNARY, SN_DESC(usage_request), h_usage, NULL);
	rpc_server_register(srv, SNAPSHOTS_REMOVE, RPC_UNARY, SN_DESC(remove_snapshot_request),
			    h_remove, NULL);
	rpc_server_register(srv, SNAPSHOTS_CLEANUP, RPC_UNARY, SN_DESC(cleanup_request),
			    h_cleanup, NULL);
	rpc_server_register(srv, SNAPSHOTS_LIST, RPC_SERVER_STREAM,
			    SN_DESC(list_snapshots_request), h_list, NULL);
	rpc_server_set_logger(srv, logger, NULL);
	r = rpc_server_start(srv);
	if (r < 0) {
		fprintf(stderr, "rpc_server_start %s: %s\n", argv[1], strerror(-r));
		rpc_server_free(srv);
		return 1;
	}
	printf("listening on %s\n", argv[1]);
	fflush(stdout);

	while (sigwait(&set, &sig) != 0)
		;
	rpc_server_shutdown(srv, 2000);
	rpc_server_free(srv);
	for (size_t i = 0; i < n_snaps; i++) {
		free(snaps[i].key);
		free(snaps[i].parent);
	}
	printf("stopped\n");
	return 0;
}
