/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Streaming tar writer for OCI image layers (the differ's Compare, i.e.
 * container commit): entries and file data in, a plain, gzip or zstd tar out
 * to a sink, with both layer digests computed in the same pass:
 *
 *   diffID = sha256 of the uncompressed tar (the rootfs diff_ids entry)
 *   digest = sha256 of the bytes given to the sink (the layer descriptor)
 *
 * Format: POSIX.1-2001 pax ("ustar\0" "00" magic), in the form containerd's
 * archive writer (Go's archive/tar with FormatPAX) gives it, though not byte
 * for byte the same. Each entry is one ustar header, preceded by a pax
 * extended header ('x') only when the ustar fields cannot hold the entry:
 *   - path: longer than 100 bytes and not splittable at a '/' into a prefix
 *     of at most 155 and a name of 1..100 bytes (pax "path");
 *   - link target longer than 100 bytes (pax "linkpath");
 *   - uid or gid above 07777777 = 2097151 (pax "uid", "gid");
 *   - size of 8 GiB or more (pax "size");
 *   - mtime negative or above 077777777777 (pax "mtime", whole seconds);
 *   - xattrs: one "SCHILY.xattr.<name>" record each, sorted by name; values
 *     are copied byte for byte (pax records are length-framed, so NUL bytes
 *     and newlines survive).
 * The ustar field that a pax record overrides holds the first 100 bytes of
 * the path or link target, or 0 for a number (as Go and Python write). The
 * 'x' header itself is named "<dir>/PaxHeaders.0/<base>" (cut to 100 bytes),
 * mode 0644, uid, gid and mtime 0; its records are sorted by key.
 *
 * Determinism: the same entries and data give the same bytes. mtime is cut
 * to whole seconds (mtime_nsec is ignored, as containerd truncates: no pax
 * fraction is ever written); atime and ctime are never written; uname and
 * gname are empty; the archive ends with exactly two zero blocks (no padding
 * to a 10 KiB record). gzip: a fixed 10-byte member header (RFC 1952 §2.3:
 * no flags, MTIME 0, XFL 0, OS 255 "unknown", as Go's compress/gzip), isa-l
 * deflate, CRC32 and ISIZE trailer. zstd: one frame without dictionary ID
 * and without content size, with the XXH64 content checksum.
 *
 * Entry order is the caller's; nothing is sorted, renamed or de-duplicated.
 */
#ifndef EROFS_LAYER_TAR_WRITER_H
#define EROFS_LAYER_TAR_WRITER_H

#include "export.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "entry.h"
#include "error.h"
#include "input.h" /* enum el_compression */

/* Every call of the sink but the last one of an archive gets exactly this
 * many bytes (the last gets 1..EL_TARW_CHUNK), so a sink that forwards each
 * call as one message stays below gRPC's default 4 MiB message limit. */
#define EL_TARW_CHUNK (1u << 20)

/* Consumes len (> 0) bytes of output. Returns 0 (or any value >= 0) on
 * success, or a negative errno: the writer then fails with that code and
 * calls the sink no more. Called only from within el_tarw_add, el_tarw_write,
 * el_tarw_write_zeros and el_tarw_finish, on the caller's thread. */
typedef int (*el_tarw_write_fn)(void *ud, const void *buf, size_t len);

struct el_tarw_opts {
	el_tarw_write_fn write; /* required */
	void *write_ud;
	enum el_compression compression;
	/* 0: the default (gzip 1, zstd 3). gzip: isa-l levels 1..3 (1 is fast
	 * and close to `gzip -1`'s ratio; 3 needs a CPU isa-l supports it on).
	 * zstd: ZSTD_minCLevel()..ZSTD_maxCLevel(). Must be 0 for NONE. */
	int level;
	/* SOURCE_DATE_EPOCH: an mtime later than epoch is written as epoch
	 * (BuildKit's and containerd's rewrite-timestamp rule). Earlier mtimes
	 * are kept. */
	bool has_epoch;
	int64_t epoch;
	/* Checked on every call and between 4 MiB pieces of file data; when
	 * set, the call fails with -ECANCELED (and so does the writer). */
	atomic_bool *cancel;
};

struct el_tarw_result {
	uint8_t diffid[32];	    /* sha256 of the uncompressed tar */
	uint8_t digest[32];	    /* sha256 of all bytes given to the sink */
	uint64_t uncompressed_size; /* bytes of the uncompressed tar */
	uint64_t size;		    /* bytes given to the sink */
	uint64_t entries;	    /* el_tarw_add calls that succeeded */
};

struct el_tarw;

/*
 * A writer for one archive. Fails with -EINVAL for a missing sink, an
 * unknown compression or a level outside the ranges above, -ENOMEM.
 * Nothing is written to the sink before the first el_tarw_add.
 *
 * gzip and zstd writers start one thread that computes the diffID beside
 * the compression (it ends in el_tarw_finish or el_tarw_free; if it cannot
 * start, the caller's thread does that work). Memory: 1 MiB of output
 * buffer, 1 MiB of input pieces when compressing, and the compressor's state
 * (isa-l: 0.4 MiB; zstd: 3.5 MiB at level 3, 90 MiB at level 19, per
 * ZSTD_estimateCStreamSize). A writer is used from one thread at a time.
 */
EL_EXPORT int el_tarw_new(const struct el_tarw_opts *opts, struct el_tarw **ret, struct el_error *err);

/* Frees the writer in any state (NULL is fine). Without a successful
 * el_tarw_finish, what the sink received is not a complete archive. */
EL_EXPORT void el_tarw_free(struct el_tarw *w);

/*
 * Writes the header(s) of e. The fields used, by e->type:
 *   all: path, mode & 07777 (other bits are ignored), uid, gid, mtime
 *        (clamped to the epoch; mtime_nsec is ignored), xattrs;
 *   EL_ENTRY_REG: size, the number of bytes that must follow through
 *        el_tarw_write / el_tarw_write_zeros before the next el_tarw_add
 *        or el_tarw_finish (padding to 512 bytes is added by the writer);
 *   EL_ENTRY_DIR: the path is written with one trailing '/' (added if the
 *        caller's path lacks it);
 *   EL_ENTRY_SYMLINK: link is the target (typeflag '2');
 *   EL_ENTRY_HARDLINK: link is the path of an earlier entry, as written
 *        (typeflag '1', size 0);
 *   EL_ENTRY_CHR, EL_ENTRY_BLK: dev_major (<= 0xfff), dev_minor (<= 0xfffff);
 *   EL_ENTRY_FIFO: nothing more.
 * size is ignored for every type but REG; link for every type but the two
 * link types; e->offset is never used. The path is written as given (no
 * "./" or '/' is added or removed).
 *
 * Errors (-EINVAL unless said otherwise; messages start with the path):
 * empty path; a non-directory path ending in '/'; an empty link target;
 * device numbers out of range (-ERANGE); an unknown type; a size over
 * INT64_MAX (-EFBIG); mtime INT64_MIN (-ERANGE); an xattr with an
 * empty name, a name longer than EL_TAR_MAX_XATTR_NAME or containing '=',
 * the same name twice, a value over EL_TAR_MAX_XATTR_VALUE (-E2BIG), more
 * than EL_TAR_MAX_XATTRS of them (-E2BIG) or a pax header over
 * EL_TAR_MAX_PAX bytes (-E2BIG) (the limits our tar reader enforces);
 * fewer data bytes written for the previous regular file than it declared
 * (the message names that file); -ECANCELED; the sink's error; -ENOMEM.
 *
 * Any error (of this and every call below) aborts the writer: later calls
 * return the first error again, and only el_tarw_free remains useful.
 */
EL_EXPORT int el_tarw_add(struct el_tarw *w, const struct el_entry *e, struct el_error *err);

/*
 * Appends len bytes of the current regular file's data. Writing past the
 * declared size, or with no regular file open (after a non-REG entry, or
 * once its data is complete), is an error naming the path. len 0 is a
 * no-op even then. The data may come in pieces of any size.
 */
EL_EXPORT int el_tarw_write(struct el_tarw *w, const void *buf, size_t len, struct el_error *err);

/* As el_tarw_write with n zero bytes, without a caller buffer (holes of a
 * sparse file: the tar has no sparse form here). */
EL_EXPORT int el_tarw_write_zeros(struct el_tarw *w, uint64_t n, struct el_error *err);

/*
 * Ends the archive (two zero blocks), flushes the compressor and the
 * output buffer to the sink, and fills *res. Fails like el_tarw_add (also
 * when the last regular file is short). After success, every call but
 * el_tarw_free fails with -EINVAL.
 */
EL_EXPORT int el_tarw_finish(struct el_tarw *w, struct el_tarw_result *res, struct el_error *err);

#endif
