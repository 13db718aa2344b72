/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containerd's Content service as the differ uses it (docs/containerd-contract.md): read
 * a blob as a byte stream (Apply), write a blob under an expected digest
 * (Compare). Every call carries the namespace header; writes also carry the
 * lease, when the caller had one.
 */
#ifndef SES_CONTENT_H
#define SES_CONTENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "erofs-layer/error.h"

struct rpc_client;

struct content_ctx {
	struct rpc_client *client;
	const char *ns;	   /* containerd-namespace, required */
	const char *lease; /* containerd-lease, NULL for none */
	atomic_bool *cancel; /* polled between messages; NULL for none */
};

/* ---- where containerd keeps its blobs ----------------------------------- */

/*
 * The directory of containerd's local content store, as its content plugin
 * exports it (Introspection.Plugins: "root" of io.containerd.content.v1),
 * or NULL when it exports none.
 */
int content_store_root(struct rpc_client *client, char **ret_root, struct el_error *err);

/* ---- reading ------------------------------------------------------------ */

struct content_reader;

/*
 * Opens the blob named by digest ("sha256:...") for reading, whole. With a
 * local_root (content_store_root), Content.Info first asks containerd
 * whether the namespace holds the blob, and the blob's file there is read
 * when this process can open it with the size containerd gave: the same
 * bytes as the Read stream, without their trip through containerd and
 * gRPC. Otherwise, and without local_root, a Read stream.
 */
int content_reader_open(const struct content_ctx *ctx, const char *digest, const char *local_root,
			struct content_reader **ret, struct el_error *err);
/* Whether the reader reads containerd's file rather than the Read stream. */
bool content_reader_local(const struct content_reader *r);
/*
 * An el_read_fn: copies the next bytes into buf; 0 at the end of the blob,
 * negative errno on failure (the reason is kept for content_reader_error).
 * Checks that each message continues where the last one ended.
 */
long content_reader_read(void *reader, void *buf, size_t len);
/* Bytes read so far. */
uint64_t content_reader_offset(const struct content_reader *r);
/* The error behind a failed read, in the words of the last failure (what =
 * "content", offset = the blob offset). 0 if none. */
int content_reader_error(const struct content_reader *r, struct el_error *err);
void content_reader_free(struct content_reader *r);

/* ---- writing ------------------------------------------------------------ */

struct content_writer;

/*
 * Opens a Write stream under ref (a unique name for the ingest). Bytes given
 * to content_writer_write are sent in messages of up to 1 MiB; commit sends
 * COMMIT with the expected total and digest and the labels (NULL-terminated
 * key, value, key, value, ... array), and waits for containerd's answer.
 * A blob that exists already (AlreadyExists) counts as committed.
 * content_writer_free aborts an ingest that was not committed.
 */
int content_writer_open(const struct content_ctx *ctx, const char *ref,
			struct content_writer **ret, struct el_error *err);
int content_writer_write(void *writer, const void *buf, size_t len);
int content_writer_commit(struct content_writer *w, uint64_t total, const char *digest,
			  const char *const *labels, struct el_error *err);
int content_writer_error(const struct content_writer *w, struct el_error *err);
void content_writer_free(struct content_writer *w);

#endif
