/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An ext4 image read in user space (libext2fs), never mounted: the writable
 * layer a guest VM wrote (rwlayer.img, docs/vm-runtime-contract.md: `upper/` and `work/` at its
 * root). The image is untrusted: run el_ext4_fsck first, then open it
 * read-only and walk a subdirectory (usually "upper"). The walker is a
 * producer of struct el_entry plus file data, independent of EROFS: the
 * commit converts the walk to an EROFS layer (el_convert_ext4), the differ's
 * Compare to an OCI layer tar.
 *
 * Errors: a negative errno and an el_error with what = "ext4", offset =
 * EL_NO_OFFSET, and a message "PATH: reason (inode N)" (PATH relative to the
 * walked directory, "." for it; messages about the whole image start with
 * the image's path instead). -EUCLEAN: the image is corrupt (a checksum, a
 * structure, a loop, a bad name), or needs e2fsck first (see el_ext4_open);
 * -EOPNOTSUPP: something this reader refuses (encrypted inodes, dirdata,
 * Hurd-made file systems, features libext2fs does not know); -EINVAL: not
 * an ext2/3/4 image at all, or a bad subdir; -ENOENT, -ENOTDIR: subdir
 * not found or not a directory; -ENAMETOOLONG: a path over EL_MAX_PATH or a
 * symlink target over EL_MAX_SYMLINK; -ECANCELED; -EIO, -ENOMEM. Warnings
 * go to the walk's callback with what = "ext4" and offset = EL_NO_OFFSET.
 */
#ifndef EROFS_LAYER_EXT4_H
#define EROFS_LAYER_EXT4_H

#include "export.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "convert.h"
#include "dirconv.h"
#include "entry.h"
#include "error.h"

/*
 * Checks and repairs the image in place with `e2fsck -f -p` (forced full
 * check, "preen": only the repairs e2fsck deems safe without a human, e.g.
 * replaying the journal, finishing orphans, fixing counts and times).
 * Anything worse makes e2fsck stop with status 4, and the image is refused
 * rather than salvaged by -y, which may delete or disconnect files: a
 * commit should fail loudly, not silently lose part of the upper directory.
 *
 * e2fsck is /usr/sbin/e2fsck or /sbin/e2fsck, started with posix_spawn (no
 * fork: callers have threads), stdin from /dev/null, LC_ALL=C; its output is
 * kept in memory and the end of it quoted in the error message. The image
 * must not be in use (no VM running on it): e2fsck writes to it.
 *
 * Returns e2fsck's status when the image is usable: 0 (clean), or 1 to 3
 * (bit 1: errors were corrected; bit 2: "reboot", meaningless for an
 * image). Fails with -EUCLEAN when e2fsck left errors uncorrected (status 4;
 * e2fsck has then also marked the image as having errors), -EIO for an
 * operational error (8: e.g. no such image, or no ext2/3/4 superblock; 128),
 * -ECANCELED (32), -EINVAL (16), -ENOENT (no e2fsck), -EINTR (killed by a
 * signal). The message names the image and e2fsck's status, and quotes the
 * end of e2fsck's output.
 */
EL_EXPORT int el_ext4_fsck(const char *image, struct el_error *err);

/*
 * The same check with `e2fsck -f -n`: nothing is written to the image (no
 * journal replay, no repair), for a reader that does not own it (Compare of
 * a container's writable layer). Returns 0 when e2fsck found nothing to fix;
 * anything it would have fixed fails with -EUCLEAN (status 4), the other
 * failures as el_ext4_fsck. A journal that needs recovery is not replayed:
 * el_ext4_open then refuses the image (-EUCLEAN).
 */
EL_EXPORT int el_ext4_fsck_readonly(const char *image, struct el_error *err);

struct el_ext4;

/*
 * Opens the image read-only (ext2fs_open without EXT2_FLAG_RW: nothing is
 * ever written to it) and checks that it can be read faithfully:
 *   - incompat features libext2fs does not know are refused by it (-EOPNOTSUPP);
 *     so are dirdata (Lustre) and Hurd-made file systems, whose inodes
 *     differ. Unknown ro_compat features are read (by definition they do not
 *     change how the tree reads). Checksums are verified (metadata_csum).
 *   - a journal that needs recovery (the guest did not unmount cleanly, or
 *     did not stop) is refused with -EUCLEAN, and so is a file system marked
 *     as having errors: what the tree says without the journal's last
 *     transactions is stale, and replaying it means writing. el_ext4_fsck
 *     replays it and clears both marks, so after a successful fsck the open
 *     succeeds; this rule is how "no fsck, no read" is enforced without a
 *     flag.
 */
EL_EXPORT int el_ext4_open(const char *image, struct el_ext4 **ret, struct el_error *err);
/* NULL is fine. A handle is used by one thread at a time. */
EL_EXPORT void el_ext4_close(struct el_ext4 *fs);

/* A regular file met by the walk, valid only during its visit. */
struct el_ext4_file;

/* A region of file bytes that holds data: what is not covered by one is a
 * hole (never allocated, or allocated but unwritten: both read as zeros). */
struct el_ext4_extent {
	uint64_t off;
	uint64_t len;
};

/*
 * Called for each entry. file is non-NULL only for EL_ENTRY_REG. Return 0 to
 * go on, or a negative errno to stop the walk, which then returns it (set
 * err with the reason; if it is left unset the walk names the path).
 */
typedef int (*el_ext4_visit_fn)(void *ud, const struct el_entry *e, struct el_ext4_file *file,
				struct el_error *err);

/* What a walk accepts from an image by default (a guest wrote it): see
 * el_ext4_walk_opts. */
#define EL_EXT4_MAX_ENTRIES 10000000u	/* entries, hard links included */
#define EL_EXT4_MAX_DEPTH 1024u		/* directory levels below the walked one */
#define EL_EXT4_MAX_XATTRS 4096u	/* xattrs of one entry */
#define EL_EXT4_MAX_XATTR_BYTES 1048576u /* names and values of one entry's xattrs */

struct el_ext4_walk_opts {
	el_warn_fn warn; /* what = "ext4", offset = EL_NO_OFFSET */
	void *warn_ud;
	atomic_bool *cancel; /* checked between entries and data pieces */
	/*
	 * Limits (0: the EL_EXT4_MAX_* default; max_bytes 0: none). A walk that
	 * goes over one fails with -E2BIG, naming the limit and the path where
	 * it was reached, before that entry is visited. max_bytes bounds the
	 * sum of regular files' sizes, holes included (a sparse file of a
	 * terabyte in a small image would otherwise become a terabyte of tar).
	 */
	uint64_t max_entries;
	uint64_t max_bytes;
	uint32_t max_depth;
	uint32_t max_xattrs;
	uint32_t max_xattr_bytes;
};

/*
 * Walks the tree under subdir (a path from the image's root such as
 * "upper" or "a/b"; NULL, "" or "/" for the root; no component may be a
 * symlink, "." or ".."), depth first, pre-order, each directory's names in
 * byte order (memcmp, shorter first on a common prefix), never following
 * symlinks. The entries:
 *   - the walked directory itself first, with path "."; then paths relative
 *     to it, "a" and "a/b" (no "./" prefix, no trailing '/');
 *   - type; mode & 07777; uid and gid with their high 16 bits; mtime in
 *     seconds (signed 32 bits, plus the epoch bits of the extra field) with
 *     nanoseconds when the inode is large enough to hold them (else 0; a
 *     nanosecond field over 999999999 is read as 0 with a warning); size
 *     (regular files: i_size, holes included; 0 for other types); device
 *     numbers (old 8:8 or new 12:20 encoding, as the kernel reads them);
 *     symlink target in link (fast, in the inode; slow, in blocks; inline);
 *   - xattrs of every index libext2fs names (user., trusted., security.,
 *     system.posix_acl_access/default, system.richacl, gnu., other system.;
 *     an index it does not know gives the bare name) in on-disk order (in-inode first, then the xattr block); POSIX ACLs in
 *     the Linux xattr form (version 2, 8-byte entries, ACL_UNDEFINED_ID for
 *     the entries without an id), as getxattr(2) shows them; the inline-data
 *     store "system.data" is not an xattr and is never reported; a malformed
 *     ACL is dropped with a warning;
 *   - a second path to a non-directory inode already reported is
 *     EL_ENTRY_HARDLINK with link = the first path (as reported), the
 *     inode's mode, owner and mtime, size 0 and no xattrs; character
 *     devices 0:0 (overlay whiteouts, which
 *     overlayfs may link to one inode) are always reported on their own;
 *   - sockets, and inodes of an unknown type, are skipped with a warning.
 * e->offset is always EL_NO_OFFSET. Pointers in e are valid during the
 * visit only.
 *
 * Hostile images: every name, inode number, extent and size is checked
 * before use. A directory met twice (hard-linked, or a loop), a name with
 * '/' or NUL, "." or ".." entries pointing anywhere (they are never
 * followed), a name twice in one directory, a reserved or out-of-range inode
 * number, a deleted inode, an extent outside the image or overlapping the
 * previous one, a size over 2^32 blocks, a path over EL_MAX_PATH: all fail
 * with the path and inode number in the message, never crash, and every
 * loop is bounded by the image's size.
 */
EL_EXPORT int el_ext4_walk(struct el_ext4 *fs, const char *subdir, const struct el_ext4_walk_opts *opts,
			   el_ext4_visit_fn visit, void *ud, struct el_error *err);

/*
 * The data regions of a regular file, in order, not overlapping, merged
 * where adjacent: whole blocks (a region starts on a block boundary and
 * ends on one or at the file's size), so a region may hold zeros (inline-
 * data files: one region of the whole size; an empty or all-hole file:
 * none). *ret stays valid during the visit. Costs one pass over the file's
 * extent tree (or block map), done once per file.
 */
EL_EXPORT int el_ext4_file_extents(struct el_ext4_file *f, const struct el_ext4_extent **ret,
				   size_t *ret_n, struct el_error *err);

/*
 * Reads file bytes [off, off + len) into buf; holes read as zeros. Returns
 * the number of bytes read (len, less only when the range passes the end
 * of the file; 0 at or past it) or a negative errno (-ECANCELED when the
 * walk's cancel flag is set, checked on each call). Reads are fastest in
 * large pieces (1 MiB or more) at block-aligned offsets: runs of contiguous
 * blocks are read from the image with one pread each.
 */
EL_EXPORT int64_t el_ext4_file_read(struct el_ext4_file *f, void *buf, size_t len, uint64_t off,
				    struct el_error *err);

/*
 * Converts the tree under subdir of an ext4 image (see el_ext4_walk; for
 * container commit, "upper" of rwlayer.img after el_ext4_fsck) into an EROFS
 * image published atomically at out_path: on any error nothing is left at
 * out_path nor beside it. Does not run e2fsck (el_ext4_open's rules apply).
 *
 * opts as for el_convert_dir (NULL: defaults): with overlay_upper, exactly
 * its rules (char 0:0 whiteouts and trusted.overlay.opaque kept, other
 * trusted.overlay.* dropped except escaped trusted.overlay.overlay.*,
 * redirect or metacopy refused with -EOPNOTSUPP); xattrs of namespaces EROFS
 * cannot store are dropped with a warning. Warnings of the walk have what =
 * "ext4". Without a UUID, it is derived from a digest of the walked content
 * (in walk order). In *ret: diffid all zeros, tar_bytes = file data bytes
 * read (holes excluded), entries = entries walked (the root included,
 * skipped sockets not), compression NONE.
 */
EL_EXPORT int el_convert_ext4(const char *image, const char *subdir, const char *out_path,
			      const struct el_dir_opts *opts, struct el_convert_result *ret,
			      struct el_error *err);

#endif
