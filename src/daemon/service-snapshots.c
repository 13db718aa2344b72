/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containerd.services.snapshots.v1.Snapshots over gRPC: decode, call the
 * snapshotter, encode. Errors map to the codes containerd's errdefs read
 * (docs/containerd-contract.md).
 */
#include "service-snapshots.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "filter.h"
#include "google/protobuf/empty.pb-c.h"
#include "log.h"
#include "rpc/rpc.h"
#include "common/macro.h"
#include "snapshots.pb-c.h"
#include "snapshotter.h"

#define SVC "/containerd.services.snapshots.v1.Snapshots/"
#define LIST_BATCH 100 /* infos per List message */

typedef Containerd__Services__Snapshots__V1__Info PbInfo;
typedef Containerd__Services__Snapshots__V1__Info__LabelsEntry PbLabel;
typedef Containerd__Types__Mount PbMount;

static void reply_error(struct rpc_call *call, int r, const struct el_error *err)
{
	rpc_call_error_errno(call, r, "%s", err->code ? err->msg : strerror(-r));
}

/* A map<string,string> on the wire as our labels; the strings are borrowed. */
static struct snap_label *labels_in(void **entries, size_t n)
{
	struct snap_label *l = calloc(n ? n : 1, sizeof(*l));
	if (!l)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		/* every protoc-c map entry has key then value after the base */
		PbLabel *e = entries[i];
		l[i].key = e->key;
		l[i].value = e->value;
	}
	return l;
}

/* ---- encoding ---- */

struct pb_mounts {
	PbMount *v;
	PbMount **p;
	size_t n;
};

static int mounts_out(const struct sn_mounts *m, struct pb_mounts *out)
{
	out->n = m->n;
	out->v = calloc(m->n ? m->n : 1, sizeof(*out->v));
	out->p = calloc(m->n ? m->n : 1, sizeof(*out->p));
	if (!out->v || !out->p)
		return -ENOMEM;
	for (size_t i = 0; i < m->n; i++) {
		containerd__types__mount__init(&out->v[i]);
		out->v[i].type = m->v[i].type;
		out->v[i].source = m->v[i].source;
		out->v[i].target = (char *)"";
		out->v[i].n_options = m->v[i].n_options;
		out->v[i].options = m->v[i].options;
		out->p[i] = &out->v[i];
	}
	return 0;
}

static void pb_mounts_free(struct pb_mounts *m)
{
	free(m->v);
	free(m->p);
}

struct pb_info {
	PbInfo info;
	Google__Protobuf__Timestamp created, updated;
	PbLabel *labels;
	PbLabel **plabels;
};

static int info_out(const struct snap_info *in, struct pb_info *out)
{
	containerd__services__snapshots__v1__info__init(&out->info);
	google__protobuf__timestamp__init(&out->created);
	google__protobuf__timestamp__init(&out->updated);
	out->info.name = in->key;
	out->info.parent = in->parent ? in->parent : (char *)"";
	out->info.kind = (Containerd__Services__Snapshots__V1__Kind)in->kind;
	out->created.seconds = in->created_ns / 1000000000;
	out->created.nanos = (int32_t)(in->created_ns % 1000000000);
	out->updated.seconds = in->updated_ns / 1000000000;
	out->updated.nanos = (int32_t)(in->updated_ns % 1000000000);
	out->info.created_at = &out->created;
	out->info.updated_at = &out->updated;
	out->labels = calloc(in->n_labels ? in->n_labels : 1, sizeof(*out->labels));
	out->plabels = calloc(in->n_labels ? in->n_labels : 1, sizeof(*out->plabels));
	if (!out->labels || !out->plabels)
		return -ENOMEM;
	for (size_t i = 0; i < in->n_labels; i++) {
		containerd__services__snapshots__v1__info__labels_entry__init(&out->labels[i]);
		out->labels[i].key = in->labels[i].key;
		out->labels[i].value = in->labels[i].value;
		out->plabels[i] = &out->labels[i];
	}
	out->info.n_labels = in->n_labels;
	out->info.labels = out->plabels;
	return 0;
}

static void pb_info_free(struct pb_info *p)
{
	free(p->labels);
	free(p->plabels);
}

/* ---- handlers ---- */

static void reply_mounts(struct rpc_call *call, const struct sn_mounts *m,
			 const ProtobufCMessageDescriptor *desc)
{
	struct pb_mounts pm = { 0 };
	/* Prepare, View and Mounts responses share one layout: mounts = 1 */
	Containerd__Services__Snapshots__V1__MountsResponse resp;

	if (mounts_out(m, &pm) < 0) {
		pb_mounts_free(&pm);
		rpc_call_error_errno(call, -ENOMEM, "out of memory");
		return;
	}
	containerd__services__snapshots__v1__mounts_response__init(&resp);
	resp.base.descriptor = desc;
	resp.n_mounts = pm.n;
	resp.mounts = pm.p;
	rpc_call_reply(call, &resp.base);
	pb_mounts_free(&pm);
}

static void do_prepare(struct rpc_call *call, struct snapshotter *sn, enum snap_kind kind,
		       const char *key, const char *parent, void **labels, size_t n_labels,
		       const ProtobufCMessageDescriptor *resp_desc)
{
	struct el_error err;
	struct sn_mounts m = { 0 };
	_cleanup_free_ struct snap_label *l = labels_in(labels, n_labels);
	int r;

	el_error_clear(&err);
	if (!l) {
		rpc_call_error_errno(call, -ENOMEM, "out of memory");
		return;
	}
	r = sn_prepare(sn, kind, key, parent, l, n_labels, &m, &err);
	if (r < 0) {
		reply_error(call, r, &err);
		return;
	}
	reply_mounts(call, &m, resp_desc);
	sn_mounts_free(&m);
}

static void h_prepare(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	Containerd__Services__Snapshots__V1__PrepareSnapshotRequest *req = (void *)msg;
	do_prepare(call, ud, SNAP_KIND_ACTIVE, req->key, req->parent, (void **)req->labels,
		   req->n_labels, &containerd__services__snapshots__v1__prepare_snapshot_response__descriptor);
}

static void h_view(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	Containerd__Services__Snapshots__V1__ViewSnapshotRequest *req = (void *)msg;
	do_prepare(call, ud, SNAP_KIND_VIEW, req->key, req->parent, (void **)req->labels,
		   req->n_labels, &containerd__services__snapshots__v1__view_snapshot_response__descriptor);
}

static void h_mounts(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	Containerd__Services__Snapshots__V1__MountsRequest *req = (void *)msg;
	struct el_error err;
	struct sn_mounts m = { 0 };

	el_error_clear(&err);
	int r = sn_mounts(ud, req->key, &m, &err);
	if (r < 0) {
		reply_error(call, r, &err);
		return;
	}
	reply_mounts(call, &m, &containerd__services__snapshots__v1__mounts_response__descriptor);
	sn_mounts_free(&m);
}

static void reply_empty(struct rpc_call *call)
{
	Google__Protobuf__Empty e;
	google__protobuf__empty__init(&e);
	rpc_call_reply(call, &e.base);
}

static void h_commit(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	Containerd__Services__Snapshots__V1__CommitSnapshotRequest *req = (void *)msg;
	_cleanup_free_ struct snap_label *l = labels_in((void **)req->labels, req->n_labels);
	struct el_error err;

	el_error_clear(&err);
	if (!l) {
		rpc_call_error_errno(call, -ENOMEM, "out of memory");
		return;
	}
	int r = sn_commit_onto(ud, req->name, req->key, req->parent, l, req->n_labels, &err);
	if (r < 0)
		reply_error(call, r, &err);
	else
		reply_empty(call);
}

static void h_remove(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	Containerd__Services__Snapshots__V1__RemoveSnapshotRequest *req = (void *)msg;
	struct el_error err;

	el_error_clear(&err);
	int r = sn_remove(ud, req->key, &err);
	if (r < 0)
		reply_error(call, r, &err);
	else
		reply_empty(call);
}

static void reply_info(struct rpc_call *call, const struct snap_info *info, bool update)
{
	struct pb_info pi = { 0 };

	if (info_out(info, &pi) < 0) {
		pb_info_free(&pi);
		rpc_call_error_errno(call, -ENOMEM, "out of memory");
		return;
	}
	if (update) {
		Containerd__Services__Snapshots__V1__UpdateSnapshotResponse resp;
		containerd__services__snapshots__v1__update_snapshot_response__init(&resp);
		resp.info = &pi.info;
		rpc_call_reply(call, &resp.base);
	} else {
		Containerd__Services__Snapshots__V1__StatSnapshotResponse resp;
		containerd__services__snapshots__v1__stat_snapshot_response__init(&resp);
		resp.info = &pi.info;
		rpc_call_reply(call, &resp.base);
	}
	pb_info_free(&pi);
}

static void h_stat(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	Containerd__Services__Snapshots__V1__StatSnapshotRequest *req = (void *)msg;
	_cleanup_(snap_info_free) struct snap_info info = { 0 };
	struct el_error err;

	el_error_clear(&err);
	int r = sn_stat(ud, req->key, &info, &err);
	if (r < 0)
		reply_error(call, r, &err);
	else
		reply_info(call, &info, false);
}

static void h_update(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	Containerd__Services__Snapshots__V1__UpdateSnapshotRequest *req = (void *)msg;
	_cleanup_(snap_info_free) struct snap_info out = { 0 };
	struct el_error err;

	el_error_clear(&err);
	if (!req->info || !req->info->name || !*req->info->name) {
		rpc_call_error(call, RPC_INVALID_ARGUMENT, "update: no snapshot named");
		return;
	}
	_cleanup_free_ struct snap_label *l = labels_in((void **)req->info->labels,
							 req->info->n_labels);
	if (!l) {
		rpc_call_error_errno(call, -ENOMEM, "out of memory");
		return;
	}
	struct snap_info in = { .key = req->info->name, .labels = l,
				.n_labels = req->info->n_labels };
	size_t n = req->update_mask ? req->update_mask->n_paths : 0;
	const char *const *paths = req->update_mask ? (const char *const *)req->update_mask->paths : NULL;
	int r = sn_update(ud, &in, paths, n, &out, &err);
	if (r < 0)
		reply_error(call, r, &err);
	else
		reply_info(call, &out, true);
}

/* ---- List ---- */

struct list_ctx {
	struct rpc_call *call;
	struct filter *filter;
	struct pb_info batch[LIST_BATCH];
	struct snap_info copies[LIST_BATCH];
	size_t n;
	int send_error;
	char joined[4096 + 64];
};

static const char *info_field(void *ud, const char *const *path, size_t n)
{
	struct snap_info *info = ud;
	static __thread char joined[4200];

	if (n == 0)
		return NULL;
	if (n == 1 && strcmp(path[0], "name") == 0)
		return info->key;
	/* containerd's snapshot adaptor: the parent is always present, "" if none */
	if (n == 1 && strcmp(path[0], "parent") == 0)
		return info->parent ? info->parent : "";
	if (n == 1 && strcmp(path[0], "kind") == 0)
		return snap_kind_to_string(info->kind);
	if (strcmp(path[0], "labels") == 0 && n >= 2) {
		/* containerd joins the rest of the path with dots */
		size_t k = 0;
		for (size_t i = 1; i < n; i++) {
			int w = snprintf(joined + k, sizeof(joined) - k, "%s%s", i > 1 ? "." : "", path[i]);
			if (w < 0 || (size_t)w >= sizeof(joined) - k)
				return NULL;
			k += (size_t)w;
		}
		for (size_t i = 0; i < info->n_labels; i++)
			if (strcmp(info->labels[i].key, joined) == 0)
				return info->labels[i].value;
	}
	return NULL;
}

static int list_flush(struct list_ctx *c)
{
	Containerd__Services__Snapshots__V1__ListSnapshotsResponse resp;
	PbInfo *ptrs[LIST_BATCH];
	int r = 0;

	if (c->n) {
		containerd__services__snapshots__v1__list_snapshots_response__init(&resp);
		for (size_t i = 0; i < c->n; i++)
			ptrs[i] = &c->batch[i].info;
		resp.n_info = c->n;
		resp.info = ptrs;
		r = rpc_call_send(c->call, &resp.base);
	}
	for (size_t i = 0; i < c->n; i++) {
		pb_info_free(&c->batch[i]);
		snap_info_free(&c->copies[i]);
	}
	c->n = 0;
	return r;
}

static int list_one(const struct snap_info *info, void *ud)
{
	struct list_ctx *c = ud;

	if (!filter_match(c->filter, info_field, (void *)info))
		return 0;
	if (snap_info_dup(info, &c->copies[c->n]) < 0)
		return -ENOMEM;
	if (info_out(&c->copies[c->n], &c->batch[c->n]) < 0) {
		snap_info_free(&c->copies[c->n]);
		return -ENOMEM;
	}
	if (++c->n == LIST_BATCH) {
		int r = list_flush(c);
		if (r < 0) {
			c->send_error = r;
			return r;
		}
	}
	return 0;
}

static void h_list(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	Containerd__Services__Snapshots__V1__ListSnapshotsRequest *req = (void *)msg;
	struct list_ctx *c = calloc(1, sizeof(*c));
	struct el_error err;
	char ferr[256] = "";
	int r;

	el_error_clear(&err);
	if (!c) {
		rpc_call_error_errno(call, -ENOMEM, "out of memory");
		return;
	}
	c->call = call;
	r = filter_parse((const char *const *)req->filters, req->n_filters, &c->filter, ferr,
			 sizeof(ferr));
	if (r < 0) {
		rpc_call_error(call, RPC_INVALID_ARGUMENT, "%s", *ferr ? ferr : "bad filter");
		free(c);
		return;
	}
	r = sn_walk(ud, list_one, c, &err);
	if (r == 0)
		r = list_flush(c);
	else
		list_flush(c);
	if (c->send_error)
		; /* the client went away: nothing to answer */
	else if (r < 0)
		reply_error(call, r, &err);
	else
		rpc_call_finish(call);
	filter_free(c->filter);
	free(c);
}

static void h_usage(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	Containerd__Services__Snapshots__V1__UsageRequest *req = (void *)msg;
	Containerd__Services__Snapshots__V1__UsageResponse resp;
	struct el_error err;
	uint64_t size, inodes;

	el_error_clear(&err);
	int r = sn_usage(ud, req->key, &size, &inodes, &err);
	if (r < 0) {
		reply_error(call, r, &err);
		return;
	}
	containerd__services__snapshots__v1__usage_response__init(&resp);
	resp.size = (int64_t)size;
	resp.inodes = (int64_t)inodes;
	rpc_call_reply(call, &resp.base);
}

static void h_cleanup(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	struct el_error err;

	el_error_clear(&err);
	int r = sn_cleanup(ud, &err);
	if (r < 0) {
		reply_error(call, r, &err);
		return;
	}
	if (r > 0)
		log_info("cleanup removed %d snapshot directories", r);
	reply_empty(call);
}

/*
 * Every request names the snapshotter it is meant for (field 1): containerd
 * sends its proxy plugin's name. One that names another snapshotter is
 * refused before anything happens; an empty name is accepted (plain gRPC
 * clients leave it out).
 */
struct method {
	rpc_handler_fn fn;
	struct snapshotter *sn;
	const char *name; /* ours */
};

static void h_checked(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	const struct method *m = ud;
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, "snapshotter");
	const char *name = f ? *(const char *const *)((const char *)msg + f->offset) : NULL;

	if (name && *name && strcmp(name, m->name) != 0) {
		rpc_call_error(call, RPC_INVALID_ARGUMENT,
			       "this is the snapshotter %s, the request is for %s", m->name, name);
		return;
	}
	m->fn(call, msg, m->sn);
}

int service_snapshots_register(struct rpc_server *srv, struct snapshotter *sn, const char *name)
{
	static const struct {
		const char *name;
		enum rpc_kind kind;
		const ProtobufCMessageDescriptor *req;
		rpc_handler_fn fn;
	} methods[] = {
		{ SVC "Prepare", RPC_UNARY, &containerd__services__snapshots__v1__prepare_snapshot_request__descriptor, h_prepare },
		{ SVC "View", RPC_UNARY, &containerd__services__snapshots__v1__view_snapshot_request__descriptor, h_view },
		{ SVC "Mounts", RPC_UNARY, &containerd__services__snapshots__v1__mounts_request__descriptor, h_mounts },
		{ SVC "Commit", RPC_UNARY, &containerd__services__snapshots__v1__commit_snapshot_request__descriptor, h_commit },
		{ SVC "Remove", RPC_UNARY, &containerd__services__snapshots__v1__remove_snapshot_request__descriptor, h_remove },
		{ SVC "Stat", RPC_UNARY, &containerd__services__snapshots__v1__stat_snapshot_request__descriptor, h_stat },
		{ SVC "Update", RPC_UNARY, &containerd__services__snapshots__v1__update_snapshot_request__descriptor, h_update },
		{ SVC "List", RPC_SERVER_STREAM, &containerd__services__snapshots__v1__list_snapshots_request__descriptor, h_list },
		{ SVC "Usage", RPC_UNARY, &containerd__services__snapshots__v1__usage_request__descriptor, h_usage },
		{ SVC "Cleanup", RPC_UNARY, &containerd__services__snapshots__v1__cleanup_request__descriptor, h_cleanup },
	};
	static struct method bound[EL_ARRAY_SIZE(methods)];

	for (size_t i = 0; i < EL_ARRAY_SIZE(methods); i++) {
		bound[i] = (struct method){ methods[i].fn, sn, name };
		int r = rpc_server_register(srv, methods[i].name, methods[i].kind, methods[i].req,
					    h_checked, &bound[i]);
		if (r < 0)
			return r;
	}
	return 0;
}
