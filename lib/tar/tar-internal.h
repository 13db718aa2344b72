/* SPDX-License-Identifier: Apache-2.0 */
#ifndef EL_TAR_INTERNAL_H
#define EL_TAR_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "erofs-layer/entry.h"
#include "erofs-layer/error.h"

#define TAR_BLOCK 512u

/* A bump allocator whose memory lives until the next entry. */
struct tar_arena {
	struct arena_chunk *chunks;
};
void *tar_arena_alloc(struct tar_arena *a, size_t len);
void tar_arena_reset(struct tar_arena *a);

struct sparse_seg {
	uint64_t off, len;
};

/* What the headers of one entry (ustar fields, then global and local PAX
 * records, then GNU long names) say about it, gathered before it is built. */
struct tar_attrs {
	const char *path, *link;
	bool has_size, has_uid, has_gid, has_mtime, has_major, has_minor;
	uint64_t size;
	uint32_t uid, gid, major, minor;
	int64_t mtime;
	uint32_t mtime_nsec;

	struct el_xattr_kv *xattrs;
	size_t nxattrs, xattrs_cap;

	/* GNU sparse in PAX form */
	int sparse_major, sparse_minor; /* -1 when absent */
	bool sparse;
	const char *sparse_name;
	bool has_realsize;
	uint64_t realsize;
	struct sparse_seg *segs;
	size_t nsegs, segs_cap;
	bool seg_pending_off; /* 0.0: an offset waiting for its numbytes */
};

/* Parses a PAX payload and applies each record to attrs, in order.
 * base: stream offset of the payload, for messages. */
int pax_apply(const char *payload, size_t len, uint64_t base, struct tar_attrs *attrs,
	      struct tar_arena *arena, struct el_error *err);
int sparse_push(struct tar_attrs *attrs, uint64_t off, uint64_t len, uint64_t where,
		struct el_error *err);
/* Parses decimal "N" or "N.FFF" (possibly negative) seconds. */
int pax_parse_time(const char *s, size_t len, int64_t *ret_sec, uint32_t *ret_nsec);
int pax_parse_u64(const char *s, size_t len, uint64_t *ret);

#endif
