/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containerd.services.diff.v1.Diff over gRPC: decode, read or write the blob
 * through containerd's Content service, call the differ, encode. Mounts that
 * are not ours, and media types we do not know, answer UNIMPLEMENTED so that
 * containerd falls back to the next differ in its list (docs/containerd-contract.md).
 */
#include "service-diff.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "containerd-proto.h"
#include "content.h"
#include "differ.h"
#include "log.h"
#include "metrics.h"
#include "rpc/rpc.h"
#include "common/macro.h"
#include "common/util.h"

typedef Containerd__Types__Descriptor PbDescriptor;

struct diff_service {
	struct rpc_client *content;
	char *default_ns;
	bool set_immutable;
	bool verity;
	bool local_content;
	struct metrics *metrics;
};

static void reply_error(struct rpc_call *call, int r, const struct el_error *err)
{
	char buf[1024];
	rpc_call_error_errno(call, r, "%s",
		       err->code ? el_error_format(err, buf, sizeof(buf)) : strerror(-r));
}

static const char *namespace_of(struct rpc_call *call, const struct diff_service *svc)
{
	const char *ns = rpc_call_metadata(call, MD_NAMESPACE);
	return ns && *ns ? ns : svc->default_ns;
}

/* ---- Apply -------------------------------------------------------------- */

/*
 * The caller going away (containerd cancelled, the deadline passed, the
 * connection broke) stops the work: a small thread turns the call's state
 * into the flag that the converter polls between entries and data pieces and
 * that differ_apply checks before it publishes.
 */
struct cancel_watch {
	struct rpc_call *call;
	atomic_bool flag;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	pthread_t thread;
	bool running;
};

static void *watch_main(void *ud)
{
	struct cancel_watch *w = ud;
	struct timespec t;

	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		if (rpc_call_cancelled(w->call)) {
			atomic_store(&w->flag, true);
			break;
		}
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_nsec += 50 * 1000 * 1000;
		if (t.tv_nsec >= 1000000000) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&w->cond, &w->lock, &t);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static void watch_start(struct cancel_watch *w, struct rpc_call *call)
{
	w->call = call;
	atomic_init(&w->flag, false);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->stop = false;
	w->running = pthread_create(&w->thread, NULL, watch_main, w) == 0;
}

static void watch_stop(struct cancel_watch *w)
{
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (w->running)
		pthread_join(w->thread, NULL);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
}

static long read_content(void *ud, void *buf, size_t len)
{
	return content_reader_read(ud, buf, len);
}

static void millis_since(const struct timespec *t0, char *buf, size_t len)
{
	snprintf(buf, len, "%.1f", el_ms_since(t0));
}

/* The wire's mounts, borrowed, as the differ takes them. */
static struct df_mount *mounts_in(Containerd__Types__Mount **m, size_t n)
{
	struct df_mount *v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++)
		v[i] = (struct df_mount){
			.type = m[i]->type,
			.source = m[i]->source,
			.options = (const char *const *)m[i]->options,
			.n_options = m[i]->n_options,
		};
	return v;
}

static void h_apply(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	Containerd__Services__Diff__V1__ApplyRequest *req = (void *)msg;
	struct diff_service *svc = ud;
	_cleanup_free_ struct df_mount *mounts = NULL;
	_cleanup_free_ char *dir = NULL;
	struct content_reader *reader = NULL;
	struct cancel_watch watch;
	struct df_applied applied = { 0 };
	struct el_error err;
	struct timespec t0;
	int r;

	el_error_clear(&err);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	mounts = mounts_in(req->mounts, req->n_mounts);
	if (!mounts) {
		rpc_call_error_errno(call, -ENOMEM, "out of memory");
		return;
	}
	r = differ_target(mounts, req->n_mounts, &dir, &err);
	if (r < 0) {
		log_debug("apply: %s: leaving it to the next differ", err.msg);
		reply_error(call, r, &err);
		return;
	}
	if (!req->diff) {
		rpc_call_error(call, RPC_INVALID_ARGUMENT, "apply: no descriptor");
		return;
	}
	struct df_blob blob = {
		.media_type = req->diff->media_type,
		.digest = req->diff->digest,
		.size = req->diff->size,
		.read = read_content,
	};
	/* an unknown media type is UNIMPLEMENTED: containerd tries the next differ */
	r = differ_check_blob(&blob, &err);
	if (r < 0) {
		reply_error(call, r, &err);
		return;
	}

	watch_start(&watch, call);
	struct content_ctx ctx = {
		.client = svc->content,
		.ns = namespace_of(call, svc),
		.cancel = &watch.flag,
	};
	/* asked each time: containerd may have restarted with another root */
	_cleanup_free_ char *store = NULL;
	if (svc->local_content && content_store_root(svc->content, &store, &err) < 0) {
		log_debug("apply: %s: reading through the Read stream", err.msg);
		el_error_clear(&err);
	}
	r = content_reader_open(&ctx, blob.digest, store, &reader, &err);
	if (r == 0) {
		blob.read_ud = reader;
		r = differ_apply(dir, &blob, svc->set_immutable, svc->verity, &watch.flag, &applied,
				 &err);
		if (r < 0 && r != -EINVAL && content_reader_error(reader, NULL) < 0) {
			/* containerd's own words about why the read failed */
			el_error_clear(&err);
			r = content_reader_error(reader, &err);
		}
	}
	const char *source = reader && content_reader_local(reader) ? "file" : "stream";
	content_reader_free(reader);
	watch_stop(&watch);
	metrics_observe_apply(svc->metrics, r == 0, r == 0 ? (uint64_t)blob.size : 0,
			      r == 0 ? applied.image_bytes : 0, (uint64_t)(el_ms_since(&t0) * 1e3));
	if (r < 0) {
		log_msg(LOG_WARN, "apply failed", "dir", dir, "digest", blob.digest, "error",
			err.msg, (const char *)NULL);
		reply_error(call, r, &err);
		return;
	}

	char ms[32], sz[32];
	millis_since(&t0, ms, sizeof(ms));
	snprintf(sz, sizeof(sz), "%" PRIu64, applied.size);
	log_msg(LOG_INFO, "applied", "dir", dir, "digest", blob.digest, "diffid", applied.digest,
		"bytes", sz, "read", source, "ms", ms,
		applied.verity ? "roothash" : (const char *)NULL, applied.roothash,
		(const char *)NULL);

	Containerd__Services__Diff__V1__ApplyResponse resp =
		CONTAINERD__SERVICES__DIFF__V1__APPLY_RESPONSE__INIT;
	PbDescriptor d = CONTAINERD__TYPES__DESCRIPTOR__INIT;
	d.media_type = (char *)applied.media_type;
	d.digest = applied.digest;
	d.size = (int64_t)applied.size;
	resp.applied = &d;
	rpc_call_reply(call, &resp.base);
}

/* ---- Diff (Compare) ----------------------------------------------------- */

static int write_content(void *ud, const void *buf, size_t len)
{
	return content_writer_write(ud, buf, len);
}

static void h_diff(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	Containerd__Services__Diff__V1__DiffRequest *req = (void *)msg;
	struct diff_service *svc = ud;
	_cleanup_free_ struct df_mount *left = mounts_in(req->left, req->n_left);
	_cleanup_free_ struct df_mount *right = mounts_in(req->right, req->n_right);
	_cleanup_free_ char *image = NULL, *ref = NULL;
	_cleanup_free_ const char **labels = NULL;
	struct content_writer *writer = NULL;
	enum el_compression compression;
	struct cancel_watch watch;
	struct df_diff d = { 0 };
	struct el_error err;
	struct timespec t0;
	int r;

	el_error_clear(&err);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!left || !right) {
		rpc_call_error_errno(call, -ENOMEM, "out of memory");
		return;
	}
	r = differ_compare_target(left, req->n_left, right, req->n_right, &image, &err);
	if (r < 0) {
		log_debug("diff: %s: leaving it to the next differ", err.msg);
		reply_error(call, r, &err);
		return;
	}
	if (differ_compression(req->media_type, &compression) < 0) {
		rpc_call_error(call, RPC_UNIMPLEMENTED, "diff: unsupported layer media type %s",
			       req->media_type);
		return;
	}
	if (req->ref && *req->ref)
		ref = strdup(req->ref);
	else if (asprintf(&ref, "spin-erofs-diff-%ld-%lx", (long)t0.tv_sec, (long)t0.tv_nsec) < 0)
		ref = NULL;
	/* the caller's labels, then the diffID (filled in below) */
	labels = calloc(2 * req->n_labels + 3, sizeof(*labels));
	if (!ref || !labels) {
		rpc_call_error_errno(call, -ENOMEM, "out of memory");
		return;
	}

	watch_start(&watch, call);
	struct content_ctx ctx = {
		.client = svc->content,
		.ns = namespace_of(call, svc),
		.lease = rpc_call_metadata(call, MD_LEASE),
		.cancel = &watch.flag,
	};
	r = content_writer_open(&ctx, ref, &writer, &err);
	if (r == 0)
		r = differ_compare(image, req->media_type,
				   req->source_date_epoch != NULL,
				   req->source_date_epoch ? req->source_date_epoch->seconds : 0,
				   write_content, writer, &watch.flag, &d, &err);
	if (r < 0 && writer && content_writer_error(writer, NULL) < 0) {
		/* containerd's own words about why the write failed */
		el_error_clear(&err);
		r = content_writer_error(writer, &err);
	}
	if (r == 0) {
		size_t n = 0;
		for (size_t i = 0; i < req->n_labels; i++) {
			labels[n++] = req->labels[i]->key;
			labels[n++] = req->labels[i]->value;
		}
		labels[n++] = "containerd.io/uncompressed";
		labels[n++] = d.diffid;
		r = content_writer_commit(writer, d.size, d.digest, labels, &err);
	}
	content_writer_free(writer);
	watch_stop(&watch);
	if (r < 0) {
		log_msg(LOG_WARN, "diff failed", "image", image, "error", err.msg, (const char *)NULL);
		reply_error(call, r, &err);
		return;
	}

	char ms[32], sz[32];
	millis_since(&t0, ms, sizeof(ms));
	snprintf(sz, sizeof(sz), "%" PRIu64, d.size);
	log_msg(LOG_INFO, "diffed", "image", image, "digest", d.digest, "diffid", d.diffid,
		"bytes", sz, "ms", ms, (const char *)NULL);

	Containerd__Services__Diff__V1__DiffResponse resp =
		CONTAINERD__SERVICES__DIFF__V1__DIFF_RESPONSE__INIT;
	PbDescriptor desc = CONTAINERD__TYPES__DESCRIPTOR__INIT;
	desc.media_type = (char *)d.media_type;
	desc.digest = d.digest;
	desc.size = (int64_t)d.size;
	resp.diff = &desc;
	rpc_call_reply(call, &resp.base);
}

/* ---- registration ------------------------------------------------------- */

static struct diff_service the_service;

int service_diff_register(struct rpc_server *srv, struct rpc_client *content,
			  const struct diff_options *opts)
{
	int r;

	the_service.content = content;
	the_service.set_immutable = opts->set_immutable;
	the_service.verity = opts->verity;
	the_service.local_content = opts->local_content;
	the_service.metrics = opts->metrics;
	the_service.default_ns = strdup(opts->default_namespace);
	if (!the_service.default_ns)
		return -ENOMEM;
	r = rpc_server_register(srv, DIFF_APPLY, RPC_UNARY,
				&containerd__services__diff__v1__apply_request__descriptor, h_apply,
				&the_service);
	if (r == 0)
		r = rpc_server_register(srv, DIFF_DIFF, RPC_UNARY,
					&containerd__services__diff__v1__diff_request__descriptor,
					h_diff, &the_service);
	return r;
}

void service_diff_done(void)
{
	free(the_service.default_ns);
	the_service.default_ns = NULL;
}
