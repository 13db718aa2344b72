/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containerd's Content service, client side: Read as a byte stream (from the
 * blob's file in containerd's local store when we can see it, else the Read
 * stream), Write.
 */
#include "content.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "containerd-proto.h"
#include "rpc/rpc.h"
#include "common/io.h"
#include "common/macro.h"
#include "common/util.h"

typedef Containerd__Services__Content__V1__InfoRequest InfoReq;
typedef Containerd__Services__Content__V1__InfoResponse InfoResp;
typedef Containerd__Services__Introspection__V1__PluginsRequest PluginsReq;
typedef Containerd__Services__Introspection__V1__PluginsResponse PluginsResp;
typedef Containerd__Services__Content__V1__ReadContentRequest ReadReq;
typedef Containerd__Services__Content__V1__ReadContentResponse ReadResp;
typedef Containerd__Services__Content__V1__WriteContentRequest WriteReq;
typedef Containerd__Services__Content__V1__WriteContentResponse WriteResp;
typedef Containerd__Services__Content__V1__WriteContentRequest__LabelsEntry WriteLabel;
#define ACTION(a) CONTAINERD__SERVICES__CONTENT__V1__WRITE_ACTION__##a

/* containerd's own content buffers are 1 MiB */
#define WRITE_CHUNK (1024 * 1024)

static size_t ctx_metadata(const struct content_ctx *ctx, struct rpc_metadata md[2])
{
	md[0] = (struct rpc_metadata){ MD_NAMESPACE, ctx->ns };
	md[1] = (struct rpc_metadata){ MD_LEASE, ctx->lease };
	return 2;
}

static bool ctx_cancelled(const struct content_ctx *ctx)
{
	return ctx->cancel && atomic_load(ctx->cancel);
}

/* A failed call as err: "<prefix>: <STATUS>: <containerd's message>", or
 * strerror(code) when no status came. Releases st; returns code. */
static int status_error(struct el_error *err, int code, struct rpc_status *st, const char *what,
			uint64_t offset, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int status_error(struct el_error *err, int code, struct rpc_status *st, const char *what,
			uint64_t offset, const char *fmt, ...)
{
	char prefix[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	el_error_set(err, code, what, offset, "%s: %s%s%s", prefix,
		     st->code ? rpc_status_name(st->code) : strerror(-code), st->message ? ": " : "",
		     st->message ? st->message : "");
	rpc_status_done(st);
	return code;
}

/* The status of a finished stream as an error: containerd's message, and
 * the errno its code maps to. */
static int stream_error(struct rpc_stream *s, int r, const char *what, const char *name,
			uint64_t offset, struct el_error *err)
{
	struct rpc_status st = { 0 };
	int code = rpc_stream_finish(s, &st);

	if (code == 0 && r < 0)
		code = r;
	if (code == 0)
		code = -EPROTO;
	return status_error(err, code, &st, "content", offset, "%s %s", what, name);
}

/* ---- where containerd keeps its blobs ----------------------------------- */

#define CONTENT_PLUGIN_TYPE "io.containerd.content.v1"

int content_store_root(struct rpc_client *client, char **ret_root, struct el_error *err)
{
	static char *filters[] = { "type==" CONTENT_PLUGIN_TYPE };
	PluginsReq req = CONTAINERD__SERVICES__INTROSPECTION__V1__PLUGINS_REQUEST__INIT;
	PluginsResp *resp = NULL;
	struct rpc_status st = { 0 };
	char *root = NULL;
	int rc;

	req.filters = filters;
	req.n_filters = EL_ARRAY_SIZE(filters);
	rc = rpc_client_unary(client, INTROSPECTION_PLUGINS, NULL, 0, 10000, &req.base,
			      &containerd__services__introspection__v1__plugins_response__descriptor,
			      (ProtobufCMessage **)&resp, &st);
	if (rc < 0)
		return status_error(err, rc, &st, "introspection", EL_NO_OFFSET,
				    "cannot list containerd's plugins");
	rpc_status_done(&st);
	for (size_t i = 0; !root && i < resp->n_plugins; i++) {
		const Containerd__Services__Introspection__V1__Plugin *p = resp->plugins[i];
		if (!p->type || strcmp(p->type, CONTENT_PLUGIN_TYPE) != 0)
			continue;
		for (size_t j = 0; !root && j < p->n_exports; j++)
			if (p->exports[j]->key && !strcmp(p->exports[j]->key, "root") &&
			    p->exports[j]->value && p->exports[j]->value[0] == '/')
				root = strdup(p->exports[j]->value);
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	*ret_root = root;
	return 0;
}

/* ---- reading ------------------------------------------------------------ */

struct content_reader {
	struct content_ctx ctx;
	char *digest;
	int fd; /* the blob's file in containerd's local store, or -1 */
	struct rpc_stream *stream;
	ReadResp *msg; /* the message being consumed */
	size_t pos;    /* bytes of msg->data handed out */
	uint64_t offset;
	bool eof;
	struct el_error err;
};

/* Content.Info: the blob's size, if the namespace holds it. */
static int blob_info(const struct content_ctx *ctx, const char *digest, int64_t *ret_size,
		     struct el_error *err)
{
	InfoReq req = CONTAINERD__SERVICES__CONTENT__V1__INFO_REQUEST__INIT;
	InfoResp *resp = NULL;
	struct rpc_status st = { 0 };
	struct rpc_metadata md[2];
	size_t n_md = ctx_metadata(ctx, md);
	int rc;

	req.digest = (char *)digest;
	rc = rpc_client_unary(ctx->client, CONTENT_INFO, md, n_md, 30000, &req.base,
			      &containerd__services__content__v1__info_response__descriptor,
			      (ProtobufCMessage **)&resp, &st);
	if (rc == 0 && (!resp->info || resp->info->size < 0))
		rc = -EPROTO;
	if (rc == 0)
		*ret_size = resp->info->size;
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	if (rc < 0)
		return status_error(err, rc, &st, "content", EL_NO_OFFSET, "reading blob %s", digest);
	rpc_status_done(&st);
	return 0;
}

/* The blob's file under root (blobs/<algorithm>/<hex>), if it is there
 * with the size containerd knows: -1 otherwise. */
static int open_local(const char *root, const char *digest, int64_t size)
{
	_cleanup_free_ char *path = NULL;
	const char *hex;
	struct stat st;
	int fd;

	/* a path is made of the digest only when it is exactly sha256:<hex> */
	if (!el_has_prefix(digest, "sha256:"))
		return -1;
	hex = digest + strlen("sha256:");
	if (strlen(hex) != 64 || strspn(hex, "0123456789abcdef") != 64)
		return -1;
	if (asprintf(&path, "%s/blobs/sha256/%s", root, hex) < 0)
		return -1;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != size) {
		close(fd);
		return -1;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return fd;
}

int content_reader_open(const struct content_ctx *ctx, const char *digest, const char *local_root,
			struct content_reader **ret, struct el_error *err)
{
	ReadReq req = CONTAINERD__SERVICES__CONTENT__V1__READ_CONTENT_REQUEST__INIT;
	struct rpc_metadata md[2];
	struct content_reader *r;
	size_t n_md = ctx_metadata(ctx, md);
	int rc;

	r = calloc(1, sizeof(*r));
	if (!r || !(r->digest = strdup(digest))) {
		free(r);
		return el_error_set(err, -ENOMEM, "content", EL_NO_OFFSET, "out of memory");
	}
	r->ctx = *ctx;
	r->fd = -1;
	el_error_clear(&r->err);
	if (local_root) {
		/* containerd says whether the namespace holds the blob; the
		 * bytes are checked against the digest as they are read */
		int64_t size = -1;
		rc = blob_info(ctx, digest, &size, err);
		if (rc < 0) {
			content_reader_free(r);
			return rc;
		}
		r->fd = open_local(local_root, digest, size);
		if (r->fd >= 0) {
			*ret = r;
			return 0;
		}
	}
	req.digest = (char *)digest;
	rc = rpc_client_server_stream(ctx->client, CONTENT_READ, md, n_md, 0, &req.base,
				      &r->stream);
	if (rc < 0) {
		el_error_set(err, rc, "content", EL_NO_OFFSET, "cannot read blob %s: %s", digest,
			     strerror(-rc));
		content_reader_free(r);
		return rc;
	}
	*ret = r;
	return 0;
}

bool content_reader_local(const struct content_reader *r)
{
	return r->fd >= 0;
}

static long reader_fail(struct content_reader *r, int code)
{
	return r->err.code ? r->err.code : code;
}

static long read_local(struct content_reader *r, void *buf, size_t len)
{
	ssize_t n = el_read_full(r->fd, buf, len);

	if (n < 0) {
		el_error_set(&r->err, (int)n, "content", r->offset, "reading blob %s from containerd's store: %s",
			     r->digest, strerror((int)-n));
		return n;
	}
	r->offset += (uint64_t)n;
	return n;
}

long content_reader_read(void *ud, void *buf, size_t len)
{
	struct content_reader *r = ud;
	int rc;

	if (r->err.code)
		return r->err.code;
	if (r->fd >= 0)
		return read_local(r, buf, len);
	while (!r->eof && (!r->msg || r->pos == r->msg->data.len)) {
		if (r->msg) {
			protobuf_c_message_free_unpacked(&r->msg->base, NULL);
			r->msg = NULL;
		}
		if (ctx_cancelled(&r->ctx)) {
			el_error_set(&r->err, -ECANCELED, "content", r->offset,
				     "reading blob %s: cancelled", r->digest);
			return -ECANCELED;
		}
		rc = rpc_stream_recv(r->stream,
				     &containerd__services__content__v1__read_content_response__descriptor,
				     (ProtobufCMessage **)&r->msg);
		if (rc < 0) {
			stream_error(r->stream, rc, "reading blob", r->digest, r->offset, &r->err);
			return reader_fail(r, rc);
		}
		if (rc == 0) {
			struct rpc_status st = { 0 };
			r->eof = true;
			rc = rpc_stream_finish(r->stream, &st);
			if (rc < 0)
				return status_error(&r->err, rc, &st, "content", r->offset,
						    "reading blob %s", r->digest);
			rpc_status_done(&st);
			break;
		}
		r->pos = 0;
		/* chunks are numbered from the start of the requested range,
		 * which is the blob's start here */
		if (r->msg->offset < 0 || (uint64_t)r->msg->offset != r->offset) {
			el_error_set(&r->err, -EPROTO, "content", r->offset,
				     "reading blob %s: containerd sent a chunk at offset %lld",
				     r->digest, (long long)r->msg->offset);
			return -EPROTO;
		}
	}
	if (r->eof)
		return 0;
	size_t n = EL_MIN(len, r->msg->data.len - r->pos);
	memcpy(buf, r->msg->data.data + r->pos, n);
	r->pos += n;
	r->offset += n;
	return (long)n;
}

uint64_t content_reader_offset(const struct content_reader *r)
{
	return r->offset;
}

int content_reader_error(const struct content_reader *r, struct el_error *err)
{
	if (!r->err.code)
		return 0;
	if (err)
		*err = r->err;
	return r->err.code;
}

void content_reader_free(struct content_reader *r)
{
	if (!r)
		return;
	if (r->msg)
		protobuf_c_message_free_unpacked(&r->msg->base, NULL);
	rpc_stream_free(r->stream);
	if (r->fd >= 0)
		close(r->fd);
	free(r->digest);
	free(r);
}

/* ---- writing ------------------------------------------------------------ */

struct content_writer {
	struct content_ctx ctx;
	char *ref;
	struct rpc_stream *stream;
	uint8_t *buf;
	size_t fill;
	uint64_t offset; /* bytes containerd acknowledged */
	bool committed;
	struct el_error err;
};

/* One Write exchange: containerd answers every message. */
static int exchange(struct content_writer *w, WriteReq *req, WriteResp **ret)
{
	int r;

	if (ctx_cancelled(&w->ctx))
		return el_error_set(&w->err, -ECANCELED, "content", w->offset,
				    "writing %s: cancelled", w->ref);
	r = rpc_stream_send(w->stream, &req->base);
	if (r == 0)
		r = rpc_stream_recv(w->stream,
				    &containerd__services__content__v1__write_content_response__descriptor,
				    (ProtobufCMessage **)ret);
	if (r == 1)
		return 0;
	return stream_error(w->stream, r, "writing", w->ref, w->offset, &w->err);
}

int content_writer_open(const struct content_ctx *ctx, const char *ref,
			struct content_writer **ret, struct el_error *err)
{
	WriteReq req = CONTAINERD__SERVICES__CONTENT__V1__WRITE_CONTENT_REQUEST__INIT;
	struct rpc_metadata md[2];
	size_t n_md = ctx_metadata(ctx, md);
	struct content_writer *w;
	WriteResp *resp = NULL;
	int r;

	w = calloc(1, sizeof(*w));
	if (!w || !(w->ref = strdup(ref)) || !(w->buf = malloc(WRITE_CHUNK))) {
		content_writer_free(w);
		return el_error_set(err, -ENOMEM, "content", EL_NO_OFFSET, "out of memory");
	}
	w->ctx = *ctx;
	el_error_clear(&w->err);
	r = rpc_client_stream_open(ctx->client, CONTENT_WRITE, md, n_md, 0, &w->stream);
	if (r < 0) {
		el_error_set(err, r, "content", EL_NO_OFFSET, "cannot write %s: %s", ref,
			     strerror(-r));
		content_writer_free(w);
		return r;
	}
	/* STAT first: takes the ingest's lock; a fresh ref starts at 0 */
	req.action = ACTION(STAT);
	req.ref = (char *)ref;
	r = exchange(w, &req, &resp);
	if (r == 0 && resp->offset != 0) {
		/* a leftover ingest of the same ref: start over */
		r = el_error_set(&w->err, -EEXIST, "content", EL_NO_OFFSET,
				 "writing %s: an ingest of that name is at offset %lld", ref,
				 (long long)resp->offset);
	}
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	if (r < 0) {
		*err = w->err;
		content_writer_free(w);
		return r;
	}
	*ret = w;
	return 0;
}

static int flush(struct content_writer *w)
{
	WriteReq req = CONTAINERD__SERVICES__CONTENT__V1__WRITE_CONTENT_REQUEST__INIT;
	WriteResp *resp = NULL;
	int r;

	if (!w->fill)
		return 0;
	req.action = ACTION(WRITE);
	req.ref = w->ref;
	req.offset = (int64_t)w->offset;
	req.data.data = w->buf;
	req.data.len = w->fill;
	r = exchange(w, &req, &resp);
	if (r < 0)
		return r;
	if (resp->offset < 0 || (uint64_t)resp->offset != w->offset + w->fill)
		r = el_error_set(&w->err, -EPROTO, "content", w->offset,
				 "writing %s: containerd is at offset %lld after a write to %llu",
				 w->ref, (long long)resp->offset,
				 (unsigned long long)(w->offset + w->fill));
	else
		w->offset += w->fill;
	w->fill = 0;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return r;
}

int content_writer_write(void *ud, const void *buf, size_t len)
{
	struct content_writer *w = ud;
	const uint8_t *p = buf;

	if (w->err.code)
		return w->err.code;
	while (len) {
		size_t n = EL_MIN(len, (size_t)WRITE_CHUNK - w->fill);
		memcpy(w->buf + w->fill, p, n);
		w->fill += n;
		p += n;
		len -= n;
		if (w->fill == WRITE_CHUNK) {
			int r = flush(w);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int content_writer_commit(struct content_writer *w, uint64_t total, const char *digest,
			  const char *const *labels, struct el_error *err)
{
	WriteReq req = CONTAINERD__SERVICES__CONTENT__V1__WRITE_CONTENT_REQUEST__INIT;
	_cleanup_free_ WriteLabel *lv = NULL;
	_cleanup_free_ WriteLabel **lp = NULL;
	WriteResp *resp = NULL;
	size_t n = 0;
	int r;

	if (w->err.code) {
		*err = w->err;
		return w->err.code;
	}
	r = flush(w);
	if (r < 0) {
		*err = w->err;
		return r;
	}
	while (labels && labels[2 * n])
		n++;
	lv = calloc(n ? n : 1, sizeof(*lv));
	lp = calloc(n ? n : 1, sizeof(*lp));
	if (!lv || !lp)
		return el_error_set(err, -ENOMEM, "content", EL_NO_OFFSET, "out of memory");
	for (size_t i = 0; i < n; i++) {
		lv[i] = (WriteLabel)CONTAINERD__SERVICES__CONTENT__V1__WRITE_CONTENT_REQUEST__LABELS_ENTRY__INIT;
		lv[i].key = (char *)labels[2 * i];
		lv[i].value = (char *)labels[2 * i + 1];
		lp[i] = &lv[i];
	}
	req.action = ACTION(COMMIT);
	req.ref = w->ref;
	req.total = (int64_t)total;
	req.offset = (int64_t)w->offset;
	req.expected = (char *)digest;
	req.n_labels = n;
	req.labels = lp;
	r = exchange(w, &req, &resp);
	if (r == -EEXIST) {
		/* the same content is stored already: that is success */
		el_error_clear(&w->err);
		w->committed = true;
		return 0;
	}
	if (r < 0) {
		*err = w->err;
		return r;
	}
	if (strcmp(resp->digest, digest) != 0)
		r = el_error_set(err, -EPROTO, "content", w->offset,
				 "writing %s: containerd committed %s, %s expected", w->ref,
				 resp->digest, digest);
	else
		w->committed = true;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	if (r == 0) {
		struct rpc_status st = { 0 };
		rpc_stream_close_send(w->stream);
		rpc_stream_finish(w->stream, &st);
		rpc_status_done(&st);
	}
	return r;
}

int content_writer_error(const struct content_writer *w, struct el_error *err)
{
	if (!w->err.code)
		return 0;
	if (err)
		*err = w->err;
	return w->err.code;
}

void content_writer_free(struct content_writer *w)
{
	if (!w)
		return;
	if (w->stream && !w->committed && w->ref) {
		/* cancel the stream, then drop the partial ingest */
		Containerd__Services__Content__V1__AbortRequest req =
			CONTAINERD__SERVICES__CONTENT__V1__ABORT_REQUEST__INIT;
		struct rpc_metadata md[2];
		size_t n_md = ctx_metadata(&w->ctx, md);
		ProtobufCMessage *resp = NULL;
		rpc_stream_free(w->stream);
		w->stream = NULL;
		req.ref = w->ref;
		if (rpc_client_unary(w->ctx.client, CONTENT_ABORT, md, n_md, 10000, &req.base,
				     &google__protobuf__empty__descriptor, &resp, NULL) == 0)
			protobuf_c_message_free_unpacked(resp, NULL);
	}
	rpc_stream_free(w->stream);
	free(w->buf);
	free(w->ref);
	free(w);
}
