/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rpc layer against itself, over a unix socket in a temp directory:
 * unary, server streaming and bidi calls, metadata, error statuses,
 * UNIMPLEMENTED, messages over gRPC's default 4 MiB, concurrency, slow
 * handlers, deadlines, cancellation, shutdown with calls in flight, and the
 * socket file rules.
 *
 * Handlers run on the server's worker threads, where cmocka's assertions
 * must not be used: they record what they saw in atomics that the test
 * threads check.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "containerd-proto.h"
#include "rpc.h"

typedef Containerd__Services__Snapshots__V1__StatSnapshotRequest StatReq;
typedef Containerd__Services__Snapshots__V1__StatSnapshotResponse StatResp;
typedef Containerd__Services__Snapshots__V1__Info Info;
typedef Containerd__Services__Snapshots__V1__Info__LabelsEntry InfoLabel;
typedef Containerd__Services__Snapshots__V1__ListSnapshotsRequest ListReq;
typedef Containerd__Services__Snapshots__V1__ListSnapshotsResponse ListResp;
typedef Containerd__Services__Snapshots__V1__UsageRequest UsageReq;
typedef Containerd__Services__Snapshots__V1__UsageResponse UsageResp;
typedef Containerd__Services__Snapshots__V1__PrepareSnapshotRequest PrepReq;
typedef Containerd__Services__Snapshots__V1__PrepareSnapshotRequest__LabelsEntry PrepLabel;
typedef Containerd__Services__Snapshots__V1__PrepareSnapshotResponse PrepResp;
typedef Containerd__Services__Snapshots__V1__RemoveSnapshotRequest RemoveReq;
typedef Containerd__Types__Mount Mount;
typedef Containerd__Services__Content__V1__WriteContentRequest WriteReq;
typedef Containerd__Services__Content__V1__WriteContentResponse WriteResp;

#define STAT_DESC (&containerd__services__snapshots__v1__stat_snapshot_request__descriptor)
#define STAT_RESP_DESC (&containerd__services__snapshots__v1__stat_snapshot_response__descriptor)
#define LIST_DESC (&containerd__services__snapshots__v1__list_snapshots_request__descriptor)
#define LIST_RESP_DESC (&containerd__services__snapshots__v1__list_snapshots_response__descriptor)
#define USAGE_DESC (&containerd__services__snapshots__v1__usage_request__descriptor)
#define USAGE_RESP_DESC (&containerd__services__snapshots__v1__usage_response__descriptor)
#define PREP_DESC (&containerd__services__snapshots__v1__prepare_snapshot_request__descriptor)
#define PREP_RESP_DESC (&containerd__services__snapshots__v1__prepare_snapshot_response__descriptor)
#define REMOVE_DESC (&containerd__services__snapshots__v1__remove_snapshot_request__descriptor)
#define EMPTY_DESC (&google__protobuf__empty__descriptor)
#define WRITE_DESC (&containerd__services__content__v1__write_content_request__descriptor)
#define WRITE_RESP_DESC (&containerd__services__content__v1__write_content_response__descriptor)

static char tmpdir[] = "/tmp/test-rpc.XXXXXX";
static char sock_path[256];
static struct rpc_server *srv;
static struct rpc_client *cli;

/* What handlers saw. */
static atomic_int seen_cancel;	     /* a handler observed rpc_call_cancelled() */
static atomic_int handler_errors;    /* a handler-side check failed */
static atomic_int calls_logged;
static atomic_int logged_unimplemented;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- handlers ----------------------------------------------------------- */

/* Stat: Info named after the key, the namespace and lease metadata echoed
 * as labels; "missing" is NOT_FOUND. */
static void h_stat(struct rpc_call *call, ProtobufCMessage *m, void *ud)
{
	StatReq *req = (StatReq *)m;
	const char *ns = rpc_call_metadata(call, "containerd-namespace");
	const char *lease = rpc_call_metadata(call, "containerd-lease");
	StatResp resp = CONTAINERD__SERVICES__SNAPSHOTS__V1__STAT_SNAPSHOT_RESPONSE__INIT;
	Info info = CONTAINERD__SERVICES__SNAPSHOTS__V1__INFO__INIT;
	InfoLabel l_ns = CONTAINERD__SERVICES__SNAPSHOTS__V1__INFO__LABELS_ENTRY__INIT;
	InfoLabel l_lease = CONTAINERD__SERVICES__SNAPSHOTS__V1__INFO__LABELS_ENTRY__INIT;
	InfoLabel *labels[] = { &l_ns, &l_lease };

	if (strcmp(rpc_call_method(call), SNAPSHOTS_STAT) != 0)
		atomic_fetch_add(&handler_errors, 1);
	if (strcmp(req->key, "missing") == 0) {
		rpc_call_error(call, RPC_NOT_FOUND, "snapshot %s does not exist", req->key);
		return;
	}
	if (strcmp(req->key, "long-error") == 0) {
		rpc_call_error_errno(call, -EBUSY, "%0*d", 20000, 7);
		return;
	}
	l_ns.key = "ns";
	l_ns.value = (char *)(ns ?: "(none)");
	l_lease.key = "lease";
	l_lease.value = (char *)(lease ?: "(none)");
	info.name = req->key;
	info.parent = "parent-of-key";
	info.kind = CONTAINERD__SERVICES__SNAPSHOTS__V1__KIND__ACTIVE;
	info.n_labels = 2;
	info.labels = labels;
	resp.info = &info;
	if (rpc_call_reply(call, &resp.base) < 0)
		atomic_fetch_add(&handler_errors, 1);
}

/* List: filters "n=<messages>", "per=<infos>", "fail=<after k>",
 * "forever" (until the client goes). */
static void h_list(struct rpc_call *call, ProtobufCMessage *m, void *ud)
{
	ListReq *req = (ListReq *)m;
	unsigned n = 1, per = 1, fail = ~0u;
	bool forever = false;

	for (size_t i = 0; i < req->n_filters; i++) {
		sscanf(req->filters[i], "n=%u", &n);
		sscanf(req->filters[i], "per=%u", &per);
		sscanf(req->filters[i], "fail=%u", &fail);
		if (strcmp(req->filters[i], "forever") == 0)
			forever = true;
	}
	for (unsigned i = 0; forever || i < n; i++) {
		ListResp resp = CONTAINERD__SERVICES__SNAPSHOTS__V1__LIST_SNAPSHOTS_RESPONSE__INIT;
		Info *infos = calloc(per, sizeof(*infos));
		Info **ptrs = calloc(per, sizeof(*ptrs));
		char(*names)[32] = calloc(per, 32);
		int r;

		if (i == fail) {
			free(infos);
			free(ptrs);
			free(names);
			rpc_call_error(call, RPC_FAILED_PRECONDITION, "failed after %u", fail);
			return;
		}
		for (unsigned j = 0; j < per; j++) {
			Info init = CONTAINERD__SERVICES__SNAPSHOTS__V1__INFO__INIT;

			infos[j] = init;
			snprintf(names[j], 32, "snap-%u-%u", i, j);
			infos[j].name = names[j];
			infos[j].kind = CONTAINERD__SERVICES__SNAPSHOTS__V1__KIND__COMMITTED;
			ptrs[j] = &infos[j];
		}
		resp.n_info = per;
		resp.info = ptrs;
		r = rpc_call_send(call, &resp.base);
		free(infos);
		free(ptrs);
		free(names);
		if (r < 0) {
			if (forever && rpc_call_cancelled(call))
				atomic_fetch_add(&seen_cancel, 1);
			return; /* the client is gone: no status owed */
		}
		if (forever)
			sleep_ms(10);
	}
	rpc_call_finish(call);
}

/* Usage: key "sleep:<ms>" answers after that long; "wait-cancel" polls
 * rpc_call_cancelled() for up to 30 s. */
static void h_usage(struct rpc_call *call, ProtobufCMessage *m, void *ud)
{
	UsageReq *req = (UsageReq *)m;
	UsageResp resp = CONTAINERD__SERVICES__SNAPSHOTS__V1__USAGE_RESPONSE__INIT;
	unsigned ms = 0;

	if (strcmp(req->key, "wait-cancel") == 0) {
		for (int i = 0; i < 3000; i++) {
			if (rpc_call_cancelled(call)) {
				atomic_fetch_add(&seen_cancel, 1);
				/* Sending now fails: the call is gone. */
				if (rpc_call_reply(call, &resp.base) == 0)
					atomic_fetch_add(&handler_errors, 1);
				return;
			}
			sleep_ms(10);
		}
		rpc_call_error(call, RPC_INTERNAL, "never cancelled");
		return;
	}
	sscanf(req->key, "sleep:%u", &ms);
	sleep_ms(ms);
	if (rpc_call_cancelled(call))
		atomic_fetch_add(&seen_cancel, 1);
	resp.size = ms;
	resp.inodes = 42;
	rpc_call_reply(call, &resp.base);
}

/* Prepare: echoes the "big" label as the mount source (large messages). */
static void h_prepare(struct rpc_call *call, ProtobufCMessage *m, void *ud)
{
	PrepReq *req = (PrepReq *)m;
	PrepResp resp = CONTAINERD__SERVICES__SNAPSHOTS__V1__PREPARE_SNAPSHOT_RESPONSE__INIT;
	Mount mount = CONTAINERD__TYPES__MOUNT__INIT;
	Mount *mounts[] = { &mount };

	mount.type = "echo";
	mount.source = "";
	for (size_t i = 0; i < req->n_labels; i++)
		if (strcmp(req->labels[i]->key, "big") == 0)
			mount.source = req->labels[i]->value;
	resp.n_mounts = 1;
	resp.mounts = mounts;
	rpc_call_reply(call, &resp.base);
}

/* Remove: forgets to answer. */
static void h_remove(struct rpc_call *call, ProtobufCMessage *m, void *ud)
{
}

/* Content.Write-like bidi: answers each message with the running offset;
 * COMMIT ends the stream with the byte count as "digest". */
static void h_write(struct rpc_call *call, ProtobufCMessage *first, void *ud)
{
	ProtobufCMessage *m = first;
	int64_t total = 0;
	bool owned = false;

	for (;;) {
		WriteReq *req = (WriteReq *)m;
		WriteResp resp = CONTAINERD__SERVICES__CONTENT__V1__WRITE_CONTENT_RESPONSE__INIT;
		char digest[64];
		bool commit;
		int r;

		if (!m) { /* the client closed without committing */
			rpc_call_error(call, RPC_FAILED_PRECONDITION, "no commit");
			return;
		}
		if (req->offset != total) {
			rpc_call_error(call, RPC_INVALID_ARGUMENT, "offset %lld, expected %lld",
				       (long long)req->offset, (long long)total);
			if (owned)
				protobuf_c_message_free_unpacked(m, NULL);
			return;
		}
		total += (int64_t)req->data.len;
		commit = req->action == CONTAINERD__SERVICES__CONTENT__V1__WRITE_ACTION__COMMIT;
		resp.action = req->action;
		resp.offset = total;
		resp.total = req->total;
		if (commit) {
			snprintf(digest, sizeof(digest), "len:%lld", (long long)total);
			resp.digest = digest;
		}
		if (owned)
			protobuf_c_message_free_unpacked(m, NULL);
		r = rpc_call_send(call, &resp.base);
		if (r < 0)
			return;
		if (commit) {
			rpc_call_finish(call);
			return;
		}
		r = rpc_call_recv(call, &m);
		if (r < 0)
			return;
		if (r == 0)
			m = NULL;
		owned = true;
	}
}

static void logger(const char *method, int code, const char *msg, uint64_t us, void *ud)
{
	atomic_fetch_add(&calls_logged, 1);
	if (code == RPC_UNIMPLEMENTED)
		atomic_fetch_add(&logged_unimplemented, 1);
}

static int server_up(const char *path, unsigned nworkers, struct rpc_server **ret)
{
	struct rpc_server *s;
	int r;

	r = rpc_server_new(path, nworkers, &s);
	if (r < 0)
		return r;
	if (rpc_server_register(s, SNAPSHOTS_STAT, RPC_UNARY, STAT_DESC, h_stat, NULL) < 0 ||
	    rpc_server_register(s, SNAPSHOTS_LIST, RPC_SERVER_STREAM, LIST_DESC, h_list, NULL) < 0 ||
	    rpc_server_register(s, SNAPSHOTS_USAGE, RPC_UNARY, USAGE_DESC, h_usage, NULL) < 0 ||
	    rpc_server_register(s, SNAPSHOTS_PREPARE, RPC_UNARY, PREP_DESC, h_prepare, NULL) < 0 ||
	    rpc_server_register(s, SNAPSHOTS_REMOVE, RPC_UNARY, REMOVE_DESC, h_remove, NULL) < 0 ||
	    rpc_server_register(s, CONTENT_WRITE, RPC_BIDI_STREAM, WRITE_DESC, h_write, NULL) < 0) {
		rpc_server_free(s);
		return -EINVAL;
	}
	rpc_server_set_logger(s, logger, NULL);
	r = rpc_server_start(s);
	if (r < 0) {
		rpc_server_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

/* ---- client helpers ----------------------------------------------------- */

static int stat_call(struct rpc_client *c, const char *key, const struct rpc_metadata *md,
		     size_t n_md, uint64_t timeout_ms, StatResp **ret, struct rpc_status *st)
{
	StatReq req = CONTAINERD__SERVICES__SNAPSHOTS__V1__STAT_SNAPSHOT_REQUEST__INIT;

	req.key = (char *)key;
	return rpc_client_unary(c, SNAPSHOTS_STAT, md, n_md, timeout_ms, &req.base,
				STAT_RESP_DESC, (ProtobufCMessage **)ret, st);
}

static int usage_call(struct rpc_client *c, const char *key, uint64_t timeout_ms,
		      struct rpc_status *st)
{
	UsageReq req = CONTAINERD__SERVICES__SNAPSHOTS__V1__USAGE_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	int r;

	req.key = (char *)key;
	r = rpc_client_unary(c, SNAPSHOTS_USAGE, NULL, 0, timeout_ms, &req.base, USAGE_RESP_DESC,
			     &resp, st);
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	return r;
}

static const char *label(const Info *info, const char *key)
{
	for (size_t i = 0; i < info->n_labels; i++)
		if (strcmp(info->labels[i]->key, key) == 0)
			return info->labels[i]->value;
	return NULL;
}

/* ---- tests -------------------------------------------------------------- */

static void test_unary_metadata(void **state)
{
	struct rpc_metadata md[] = {
		{ "containerd-namespace", "k8s.io" },
		{ "containerd-lease", NULL }, /* skipped */
	};
	struct rpc_metadata md2[] = {
		{ "containerd-lease", "lease-1" },
	};
	struct rpc_status st = { 0 };
	StatResp *resp = NULL;

	assert_int_equal(stat_call(cli, "ns/1/extract-1 sha256:abc", md, 2, 5000, &resp, &st), 0);
	assert_int_equal(st.code, RPC_OK);
	assert_null(st.message);
	assert_non_null(resp);
	assert_non_null(resp->info);
	assert_string_equal(resp->info->name, "ns/1/extract-1 sha256:abc");
	assert_string_equal(resp->info->parent, "parent-of-key");
	assert_int_equal(resp->info->kind, CONTAINERD__SERVICES__SNAPSHOTS__V1__KIND__ACTIVE);
	assert_string_equal(label(resp->info, "ns"), "k8s.io");
	assert_string_equal(label(resp->info, "lease"), "(none)");
	protobuf_c_message_free_unpacked(&resp->base, NULL);

	/* No namespace header: the handler sees NULL. */
	assert_int_equal(stat_call(cli, "k", md2, 1, 5000, &resp, NULL), 0);
	assert_string_equal(label(resp->info, "ns"), "(none)");
	assert_string_equal(label(resp->info, "lease"), "lease-1");
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	rpc_status_done(&st);
}

static void test_unary_errors(void **state)
{
	struct rpc_status st = { 0 };
	StatResp *resp = NULL;
	RemoveReq rm = CONTAINERD__SERVICES__SNAPSHOTS__V1__REMOVE_SNAPSHOT_REQUEST__INIT;
	ProtobufCMessage *out = NULL;
	int before = atomic_load(&logged_unimplemented);

	assert_int_equal(stat_call(cli, "missing", NULL, 0, 5000, &resp, &st), -ENOENT);
	assert_null(resp);
	assert_int_equal(st.code, RPC_NOT_FOUND);
	assert_string_equal(st.message, "snapshot missing does not exist");
	rpc_status_done(&st);

	/* A runaway message is cut to fit a trailer; errno maps to a code. */
	assert_int_equal(stat_call(cli, "long-error", NULL, 0, 5000, &resp, &st), -EBUSY);
	assert_int_equal(st.code, RPC_FAILED_PRECONDITION);
	assert_int_equal(strlen(st.message), 4096);
	assert_string_equal(st.message + 4093, "...");
	rpc_status_done(&st);

	/* A handler that returns without a status: INTERNAL, not a hang. */
	rm.key = "x";
	assert_int_equal(rpc_client_unary(cli, SNAPSHOTS_REMOVE, NULL, 0, 5000, &rm.base,
					  EMPTY_DESC, &out, &st),
			 -EIO);
	assert_int_equal(st.code, RPC_INTERNAL);
	assert_non_null(strstr(st.message, "no status"));
	rpc_status_done(&st);

	/* Registered nowhere: a method of a known service, and a service. */
	assert_int_equal(rpc_client_unary(cli, SNAPSHOTS_COMMIT, NULL, 0, 5000, &rm.base,
					  EMPTY_DESC, &out, &st),
			 -EOPNOTSUPP);
	assert_int_equal(st.code, RPC_UNIMPLEMENTED);
	assert_string_equal(st.message, "unknown method " SNAPSHOTS_COMMIT);
	rpc_status_done(&st);
	assert_int_equal(rpc_client_unary(cli, "/no.such.Service/Call", NULL, 0, 5000, &rm.base,
					  EMPTY_DESC, &out, &st),
			 -EOPNOTSUPP);
	assert_int_equal(st.code, RPC_UNIMPLEMENTED);
	rpc_status_done(&st);
	assert_null(out);
	/* The log hook runs when the call is freed, just after the client
	 * got its status. */
	for (int i = 0; i < 200 && atomic_load(&logged_unimplemented) < before + 2; i++)
		sleep_ms(10);
	assert_int_equal(atomic_load(&logged_unimplemented), before + 2);

	/* A request that is not the registered message type. */
	{
		ListReq bad = CONTAINERD__SERVICES__SNAPSHOTS__V1__LIST_SNAPSHOTS_REQUEST__INIT;
		char *filters[] = { "x" };

		/* filters (field 2, repeated string) parses as Stat's key (field
		 * 2, string): still valid protobuf. Send garbage instead via a
		 * message whose field 1 has the wrong wire type. */
		UsageResp wrong = CONTAINERD__SERVICES__SNAPSHOTS__V1__USAGE_RESPONSE__INIT;

		bad.n_filters = 1;
		bad.filters = filters;
		assert_int_equal(rpc_client_unary(cli, SNAPSHOTS_STAT, NULL, 0, 5000, &bad.base,
						  STAT_RESP_DESC, &out, &st),
				 0);
		protobuf_c_message_free_unpacked(out, NULL);
		out = NULL;
		rpc_status_done(&st);

		wrong.size = 7; /* field 1 as varint, Stat expects a string */
		assert_int_equal(rpc_client_unary(cli, SNAPSHOTS_STAT, NULL, 0, 5000, &wrong.base,
						  STAT_RESP_DESC, &out, &st),
				 -EINVAL);
		assert_int_equal(st.code, RPC_INVALID_ARGUMENT);
		rpc_status_done(&st);
	}
}

static int list_call(const char *const *filters, size_t n, unsigned read_max,
		     unsigned *ret_msgs, unsigned *ret_infos, struct rpc_status *st)
{
	ListReq req = CONTAINERD__SERVICES__SNAPSHOTS__V1__LIST_SNAPSHOTS_REQUEST__INIT;
	struct rpc_stream *s = NULL;
	unsigned msgs = 0, infos = 0;
	int r;

	req.n_filters = n;
	req.filters = (char **)filters;
	r = rpc_client_server_stream(cli, SNAPSHOTS_LIST, NULL, 0, 10000, &req.base, &s);
	if (r < 0)
		return r;
	while (msgs < read_max) {
		ListResp *resp = NULL;
		char want[64];

		r = rpc_stream_recv(s, LIST_RESP_DESC, (ProtobufCMessage **)&resp);
		if (r <= 0)
			break;
		for (size_t j = 0; j < resp->n_info; j++) {
			snprintf(want, sizeof(want), "snap-%u-%zu", msgs, j);
			if (strcmp(resp->info[j]->name, want) != 0)
				r = -EBADMSG;
		}
		infos += resp->n_info;
		msgs++;
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		if (r < 0)
			break;
	}
	if (r >= 0)
		r = rpc_stream_finish(s, st);
	rpc_stream_free(s);
	*ret_msgs = msgs;
	*ret_infos = infos;
	return r;
}

static void test_server_stream(void **state)
{
	const char *all[] = { "n=5", "per=50" };
	const char *fail[] = { "n=5", "per=2", "fail=2" };
	const char *none[] = { "n=0" };
	struct rpc_status st = { 0 };
	unsigned msgs, infos;

	assert_int_equal(list_call(all, 2, ~0u, &msgs, &infos, &st), 0);
	assert_int_equal(msgs, 5);
	assert_int_equal(infos, 250);
	assert_int_equal(st.code, RPC_OK);
	rpc_status_done(&st);

	/* Stop reading after 2: finish drains the rest before the status. */
	assert_int_equal(list_call(all, 2, 2, &msgs, &infos, &st), 0);
	assert_int_equal(msgs, 2);
	assert_int_equal(st.code, RPC_OK);
	rpc_status_done(&st);

	/* An empty stream. */
	assert_int_equal(list_call(none, 1, ~0u, &msgs, &infos, &st), 0);
	assert_int_equal(msgs, 0);
	rpc_status_done(&st);

	/* An error after two messages: both arrive, then the status. */
	assert_int_equal(list_call(fail, 3, ~0u, &msgs, &infos, &st), -EBUSY);
	assert_int_equal(msgs, 2);
	assert_int_equal(st.code, RPC_FAILED_PRECONDITION);
	assert_string_equal(st.message, "failed after 2");
	rpc_status_done(&st);
}

/* The client leaves in the middle of an endless stream: the server's
 * sends fail and the handler sees the cancellation. */
static void test_client_cancel(void **state)
{
	ListReq req = CONTAINERD__SERVICES__SNAPSHOTS__V1__LIST_SNAPSHOTS_REQUEST__INIT;
	char *filters[] = { "forever", "per=1" };
	struct rpc_stream *s = NULL;
	int before = atomic_load(&seen_cancel);

	req.n_filters = 2;
	req.filters = filters;
	assert_int_equal(rpc_client_server_stream(cli, SNAPSHOTS_LIST, NULL, 0, 0, &req.base, &s),
			 0);
	for (int i = 0; i < 3; i++) {
		ProtobufCMessage *m = NULL;

		assert_int_equal(rpc_stream_recv(s, LIST_RESP_DESC, &m), 1);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	rpc_stream_free(s); /* cancels */
	for (int i = 0; i < 500 && atomic_load(&seen_cancel) == before; i++)
		sleep_ms(10);
	assert_int_equal(atomic_load(&seen_cancel), before + 1);
}

static void test_bidi(void **state)
{
	struct rpc_metadata md[] = { { "containerd-namespace", "default" } };
	static uint8_t chunk[300000];
	struct rpc_status st = { 0 };
	struct rpc_stream *s = NULL;
	int64_t off = 0;

	memset(chunk, 'x', sizeof(chunk));
	assert_int_equal(rpc_client_stream_open(cli, CONTENT_WRITE, md, 1, 10000, &s), 0);
	for (int i = 0; i < 4; i++) {
		WriteReq req = CONTAINERD__SERVICES__CONTENT__V1__WRITE_CONTENT_REQUEST__INIT;
		WriteResp *resp = NULL;

		req.action = i == 3 ? CONTAINERD__SERVICES__CONTENT__V1__WRITE_ACTION__COMMIT
				    : CONTAINERD__SERVICES__CONTENT__V1__WRITE_ACTION__WRITE;
		req.ref = "ref-1";
		req.total = 4 * (int64_t)sizeof(chunk);
		req.offset = off;
		req.data.data = chunk;
		req.data.len = sizeof(chunk);
		assert_int_equal(rpc_stream_send(s, &req.base), 0);
		assert_int_equal(rpc_stream_recv(s, WRITE_RESP_DESC, (ProtobufCMessage **)&resp), 1);
		off += sizeof(chunk);
		assert_int_equal(resp->offset, off);
		assert_int_equal(resp->action, req.action);
		if (i == 3)
			assert_string_equal(resp->digest, "len:1200000");
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	assert_int_equal(rpc_stream_recv(s, WRITE_RESP_DESC, NULL), 0);
	assert_int_equal(rpc_stream_finish(s, &st), 0);
	assert_int_equal(st.code, RPC_OK);
	rpc_stream_free(s);
	rpc_status_done(&st);

	/* A server-side error in the middle: the send or the next recv fails,
	 * finish gives the status. */
	assert_int_equal(rpc_client_stream_open(cli, CONTENT_WRITE, NULL, 0, 10000, &s), 0);
	{
		WriteReq req = CONTAINERD__SERVICES__CONTENT__V1__WRITE_CONTENT_REQUEST__INIT;
		ProtobufCMessage *m = NULL;

		req.action = CONTAINERD__SERVICES__CONTENT__V1__WRITE_ACTION__WRITE;
		req.offset = 5; /* wrong */
		assert_int_equal(rpc_stream_send(s, &req.base), 0);
		assert_int_equal(rpc_stream_recv(s, WRITE_RESP_DESC, &m), 0);
	}
	assert_int_equal(rpc_stream_finish(s, &st), -EINVAL);
	assert_int_equal(st.code, RPC_INVALID_ARGUMENT);
	assert_string_equal(st.message, "offset 5, expected 0");
	rpc_stream_free(s);
	rpc_status_done(&st);

	/* Close without sending anything: the handler gets req == NULL. */
	assert_int_equal(rpc_client_stream_open(cli, CONTENT_WRITE, NULL, 0, 10000, &s), 0);
	assert_int_equal(rpc_stream_close_send(s), 0);
	assert_int_equal(rpc_stream_finish(s, &st), -EBUSY);
	assert_string_equal(st.message, "no commit");
	rpc_stream_free(s);
	rpc_status_done(&st);
}

/* Over gRPC's default 4 MiB limit, both directions. */
static void test_large_message(void **state)
{
	PrepReq req = CONTAINERD__SERVICES__SNAPSHOTS__V1__PREPARE_SNAPSHOT_REQUEST__INIT;
	PrepLabel big = CONTAINERD__SERVICES__SNAPSHOTS__V1__PREPARE_SNAPSHOT_REQUEST__LABELS_ENTRY__INIT;
	PrepLabel *labels[] = { &big };
	size_t len = 12 * 1024 * 1024;
	char *value = malloc(len + 1);
	struct rpc_status st = { 0 };
	PrepResp *resp = NULL;

	assert_non_null(value);
	for (size_t i = 0; i < len; i++)
		value[i] = (char)('a' + i % 26);
	value[len] = '\0';
	big.key = "big";
	big.value = value;
	req.key = "k";
	req.n_labels = 1;
	req.labels = labels;
	assert_int_equal(rpc_client_unary(cli, SNAPSHOTS_PREPARE, NULL, 0, 20000, &req.base,
					  PREP_RESP_DESC, (ProtobufCMessage **)&resp, &st),
			 0);
	assert_int_equal(resp->n_mounts, 1);
	assert_int_equal(strlen(resp->mounts[0]->source), len);
	assert_memory_equal(resp->mounts[0]->source, value, len);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	rpc_status_done(&st);
	free(value);
}

struct worker_arg {
	int thread;
	int ok;
	int failed;
};

static void *stat_worker(void *p)
{
	struct worker_arg *a = p;
	char key[64], ns[32];

	snprintf(ns, sizeof(ns), "ns-%d", a->thread);
	for (int i = 0; i < 200; i++) {
		struct rpc_metadata md[] = { { "containerd-namespace", ns } };
		StatResp *resp = NULL;

		snprintf(key, sizeof(key), "t%d-call%d", a->thread, i);
		if (stat_call(cli, key, md, 1, 10000, &resp, NULL) == 0 &&
		    strcmp(resp->info->name, key) == 0 && strcmp(label(resp->info, "ns"), ns) == 0)
			a->ok++;
		else
			a->failed++;
		if (resp)
			protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	return NULL;
}

static void test_concurrency(void **state)
{
	pthread_t th[16];
	struct worker_arg args[16];
	int ok = 0, failed = 0;
	uint64_t t0 = now_ms();

	/* Sequential first: the per-call latency, for the record. */
	for (int i = 0; i < 500; i++) {
		StatResp *resp = NULL;

		assert_int_equal(stat_call(cli, "seq", NULL, 0, 5000, &resp, NULL), 0);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	print_message("500 sequential unary calls: %llu us each\n",
		      (unsigned long long)((now_ms() - t0) * 1000 / 500));

	t0 = now_ms();
	for (int i = 0; i < 16; i++) {
		args[i] = (struct worker_arg){ .thread = i };
		assert_int_equal(pthread_create(&th[i], NULL, stat_worker, &args[i]), 0);
	}
	for (int i = 0; i < 16; i++) {
		pthread_join(th[i], NULL);
		ok += args[i].ok;
		failed += args[i].failed;
	}
	print_message("16 threads x 200 calls: %llu ms\n", (unsigned long long)(now_ms() - t0));
	assert_int_equal(failed, 0);
	assert_int_equal(ok, 16 * 200);
	assert_int_equal(atomic_load(&handler_errors), 0);
}

struct slow_arg {
	const char *key;
	uint64_t timeout_ms;
	int r;
	int code;
	uint64_t ms;
};

static void *slow_worker(void *p)
{
	struct slow_arg *a = p;
	struct rpc_status st = { 0 };
	uint64_t t0 = now_ms();

	a->r = usage_call(cli, a->key, a->timeout_ms, &st);
	a->code = st.code;
	a->ms = now_ms() - t0;
	rpc_status_done(&st);
	return NULL;
}

/* The suite's server runs 2 workers: three 2-second calls in flight must
 * not hold up quick ones (the pool grows). */
static void test_slow_does_not_block(void **state)
{
	struct slow_arg slow[3];
	pthread_t th[3];
	uint64_t t0;

	for (int i = 0; i < 3; i++) {
		slow[i] = (struct slow_arg){ .key = "sleep:2000" };
		assert_int_equal(pthread_create(&th[i], NULL, slow_worker, &slow[i]), 0);
	}
	sleep_ms(200);
	t0 = now_ms();
	for (int i = 0; i < 50; i++) {
		StatResp *resp = NULL;

		assert_int_equal(stat_call(cli, "quick", NULL, 0, 5000, &resp, NULL), 0);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	/* Well under the 1.8 s the slow calls still have to run. */
	assert_true(now_ms() - t0 < 1500);
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(slow[i].r, 0);
		assert_true(slow[i].ms >= 1900);
	}
}

/* A client deadline: DEADLINE_EXCEEDED, and the handler sees the cancel. */
static void test_deadline(void **state)
{
	struct slow_arg a = { .key = "wait-cancel", .timeout_ms = 300 };
	int before = atomic_load(&seen_cancel);

	slow_worker(&a);
	assert_int_equal(a.r, -ETIMEDOUT);
	assert_int_equal(a.code, RPC_DEADLINE_EXCEEDED);
	assert_true(a.ms < 2000);
	for (int i = 0; i < 300 && atomic_load(&seen_cancel) == before; i++)
		sleep_ms(10);
	assert_int_equal(atomic_load(&seen_cancel), before + 1);
	assert_int_equal(atomic_load(&handler_errors), 0);
}

static void test_unreachable(void **state)
{
	struct rpc_client *c = NULL;
	struct rpc_status st = { 0 };
	char path[300];

	snprintf(path, sizeof(path), "%s/nobody.sock", tmpdir);
	assert_int_equal(rpc_client_new(path, &c), 0);
	assert_int_equal(stat_call(c, "k", NULL, 0, 5000, NULL, &st), -ECONNREFUSED);
	assert_int_equal(st.code, RPC_UNAVAILABLE);
	rpc_status_done(&st);
	rpc_client_free(c);
}

static void test_socket_rules(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct rpc_server *s2 = NULL;
	char path[300];
	struct stat st;
	int fd;

	/* The suite's server is up: its socket answers, so no second one. */
	assert_int_equal(rpc_server_new(sock_path, 2, &s2), -EADDRINUSE);
	assert_int_equal(stat(sock_path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);

	/* Not a socket: refused, left alone. */
	snprintf(path, sizeof(path), "%s/regular", tmpdir);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(rpc_server_new(path, 2, &s2), -EEXIST);
	assert_int_equal(stat(path, &st), 0);

	/* A stale socket (bound, nobody listening) is replaced. */
	snprintf(path, sizeof(path), "%s/stale.sock", tmpdir);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(server_up(path, 1, &s2), 0);
	{
		struct rpc_client *c = NULL;
		StatResp *resp = NULL;

		assert_int_equal(rpc_client_new(path, &c), 0);
		assert_int_equal(stat_call(c, "k", NULL, 0, 5000, &resp, NULL), 0);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		rpc_client_free(c);
	}
	assert_int_equal(rpc_server_shutdown(s2, 5000), 0);
	assert_int_equal(rpc_server_shutdown(s2, 5000), 0); /* idempotent */
	rpc_server_free(s2);
	/* gRPC removes its socket file when the listener goes. */
	assert_int_equal(access(path, F_OK), -1);

	snprintf(path, sizeof(path), "%s/%0200d", tmpdir, 0);
	assert_int_equal(rpc_server_new(path, 2, &s2), -ENAMETOOLONG);

	/* A server made and never started frees cleanly; registration rules. */
	snprintf(path, sizeof(path), "%s/never.sock", tmpdir);
	assert_int_equal(rpc_server_new(path, 2, &s2), 0);
	assert_int_equal(rpc_server_register(s2, SNAPSHOTS_STAT, RPC_UNARY, STAT_DESC, h_stat, NULL),
			 0);
	assert_int_equal(rpc_server_register(s2, SNAPSHOTS_STAT, RPC_UNARY, STAT_DESC, h_stat, NULL),
			 -EEXIST);
	assert_int_equal(rpc_server_register(s2, "Stat", RPC_UNARY, STAT_DESC, h_stat, NULL), -EINVAL);
	rpc_server_free(s2);

	/* Two servers made for one path: the second to start finds the first
	 * answering there, fails, and still frees cleanly. */
	{
		struct rpc_server *s3 = NULL;
		struct rpc_client *c = NULL;
		StatResp *resp = NULL;

		snprintf(path, sizeof(path), "%s/race.sock", tmpdir);
		assert_int_equal(rpc_server_new(path, 1, &s2), 0);
		assert_int_equal(rpc_server_new(path, 1, &s3), 0);
		assert_int_equal(rpc_server_register(s2, SNAPSHOTS_STAT, RPC_UNARY, STAT_DESC, h_stat,
						     NULL),
				 0);
		assert_int_equal(rpc_server_start(s2), 0);
		assert_int_equal(rpc_server_register(s2, SNAPSHOTS_LIST, RPC_SERVER_STREAM, LIST_DESC,
						     h_list, NULL),
				 -EINVAL); /* too late */
		assert_int_equal(rpc_server_start(s3), -EADDRINUSE);
		rpc_server_free(s3);
		/* The first one still serves. */
		assert_int_equal(rpc_client_new(path, &c), 0);
		assert_int_equal(stat_call(c, "k", NULL, 0, 5000, &resp, NULL), 0);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		rpc_client_free(c);
		rpc_server_free(s2);
	}
}

/* Shutdown while a call is in flight: it completes, then shutdown returns. */
static void test_shutdown_in_flight(void **state)
{
	struct rpc_server *s = NULL;
	struct rpc_client *c = NULL;
	struct rpc_client *saved = cli;
	struct slow_arg a = { .key = "sleep:1500" };
	char path[300];
	pthread_t th;
	uint64_t t0, took;

	snprintf(path, sizeof(path), "%s/inflight.sock", tmpdir);
	assert_int_equal(server_up(path, 2, &s), 0);
	assert_int_equal(rpc_client_new(path, &c), 0);
	cli = c;
	assert_int_equal(pthread_create(&th, NULL, slow_worker, &a), 0);
	sleep_ms(300);
	t0 = now_ms();
	assert_int_equal(rpc_server_shutdown(s, 10000), 0);
	took = now_ms() - t0;
	pthread_join(th, NULL);
	cli = saved;
	assert_int_equal(a.r, 0);
	assert_int_equal(a.code, RPC_OK);
	assert_true(took >= 1000); /* it waited for the call... */
	assert_true(took < 8000);  /* ...not for the grace period */

	/* Nothing listens any more. */
	{
		struct rpc_status st = { 0 };

		assert_int_equal(stat_call(c, "k", NULL, 0, 3000, NULL, &st), -ECONNREFUSED);
		rpc_status_done(&st);
	}
	rpc_client_free(c);
	rpc_server_free(s);
}

/* A call still running when the grace period ends is cancelled; its handler
 * notices and returns; shutdown completes. */
static void test_shutdown_grace(void **state)
{
	struct rpc_server *s = NULL;
	struct rpc_client *c = NULL;
	struct rpc_client *saved = cli;
	struct slow_arg a = { .key = "wait-cancel" };
	char path[300];
	pthread_t th;
	uint64_t t0, took;
	int before = atomic_load(&seen_cancel);

	snprintf(path, sizeof(path), "%s/grace.sock", tmpdir);
	assert_int_equal(server_up(path, 2, &s), 0);
	assert_int_equal(rpc_client_new(path, &c), 0);
	cli = c;
	assert_int_equal(pthread_create(&th, NULL, slow_worker, &a), 0);
	sleep_ms(300);
	t0 = now_ms();
	assert_int_equal(rpc_server_shutdown(s, 500), 0);
	took = now_ms() - t0;
	pthread_join(th, NULL);
	cli = saved;
	assert_true(took >= 400);
	assert_true(took < 5000);
	assert_int_equal(atomic_load(&seen_cancel), before + 1);
	assert_true(a.r < 0);
	assert_true(a.code == RPC_CANCELLED || a.code == RPC_UNAVAILABLE);
	assert_int_equal(atomic_load(&handler_errors), 0);
	rpc_client_free(c);
	rpc_server_free(s);
}

static void test_status_maps(void **state)
{
	/* every errno the daemon answers with, as containerd's errdefs reads
	 * the code (errgrpc.ToNative): one row per kind of error */
	static const struct {
		int err, code;
	} map[] = {
		{ 0, RPC_OK },
		{ -ENOENT, RPC_NOT_FOUND },	     { -ENOTDIR, RPC_NOT_FOUND },
		{ EEXIST, RPC_ALREADY_EXISTS },	     { -EEXIST, RPC_ALREADY_EXISTS },
		{ -EINVAL, RPC_INVALID_ARGUMENT },   { -ENAMETOOLONG, RPC_INVALID_ARGUMENT },
		{ -EBADMSG, RPC_INVALID_ARGUMENT },  { -E2BIG, RPC_INVALID_ARGUMENT },
		{ -EFBIG, RPC_INVALID_ARGUMENT },    { -EBUSY, RPC_FAILED_PRECONDITION },
		{ -ENOTEMPTY, RPC_FAILED_PRECONDITION }, { -EROFS, RPC_FAILED_PRECONDITION },
		{ -EOPNOTSUPP, RPC_UNIMPLEMENTED },  { -ENOSYS, RPC_UNIMPLEMENTED },
		{ -ECANCELED, RPC_CANCELLED },	     { -ETIMEDOUT, RPC_DEADLINE_EXCEEDED },
		{ -EAGAIN, RPC_UNAVAILABLE },	     { -ECONNREFUSED, RPC_UNAVAILABLE },
		{ -ESHUTDOWN, RPC_UNAVAILABLE },     { -EACCES, RPC_PERMISSION_DENIED },
		{ -EPERM, RPC_PERMISSION_DENIED },   { -ENOSPC, RPC_RESOURCE_EXHAUSTED },
		{ -EDQUOT, RPC_RESOURCE_EXHAUSTED }, { -ENOMEM, RPC_RESOURCE_EXHAUSTED },
		{ -ERANGE, RPC_OUT_OF_RANGE },	     { -EIO, RPC_INTERNAL },
		{ -EUCLEAN, RPC_INTERNAL },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		int got = rpc_status_from_errno(map[i].err);
		if (got != map[i].code)
			fail_msg("errno %d (%s): status %s, expected %s", map[i].err,
				 strerror(abs(map[i].err)), rpc_status_name(got),
				 rpc_status_name(map[i].code));
	}
	/* and back: every status a client receives is a negative errno that
	 * maps to the same status again */
	for (int code = 0; code <= 16; code++) {
		int err = rpc_errno_from_status(code);

		assert_true(code == 0 ? err == 0 : err < 0);
		if (code != RPC_UNKNOWN && code != RPC_UNAUTHENTICATED && code != RPC_ABORTED &&
		    code != RPC_DATA_LOSS)
			assert_int_equal(rpc_status_from_errno(err), code);
	}
	assert_string_equal(rpc_status_name(RPC_UNIMPLEMENTED), "UNIMPLEMENTED");
	assert_string_equal(rpc_status_name(99), "UNKNOWN_CODE");
}

static int setup(void **state)
{
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(sock_path, sizeof(sock_path), "%s/rpc.sock", tmpdir);
	if (server_up(sock_path, 2, &srv) < 0)
		return -1;
	return rpc_client_new(sock_path, &cli);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	rpc_client_free(cli);
	rpc_server_free(srv);
	/* No system("rm -rf"): gRPC runs threads, keep to plain calls. */
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_maps),
		cmocka_unit_test(test_unary_metadata),
		cmocka_unit_test(test_unary_errors),
		cmocka_unit_test(test_server_stream),
		cmocka_unit_test(test_client_cancel),
		cmocka_unit_test(test_bidi),
		cmocka_unit_test(test_large_message),
		cmocka_unit_test(test_concurrency),
		cmocka_unit_test(test_slow_does_not_block),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_socket_rules),
		cmocka_unit_test(test_shutdown_in_flight),
		cmocka_unit_test(test_shutdown_grace),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
