/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An ext4 image, read with libext2fs and never mounted
 * (include/erofs-layer/ext4.h).
 *
 * libext2fs is trusted with the superblock, group descriptors, inode reads
 * and checksums; everything a hostile image could use to make a reader
 * loop, recurse or read out of bounds is parsed or bounded here:
 *   - directory blocks are parsed by this file (every rec_len and name_len
 *     checked against its block), reached through our own block map;
 *   - block maps: the extent tree is walked one step at a time
 *     (ext2fs_extent_get EXT2_EXTENT_NEXT), each level's keys must
 *     increase strictly, leaves must not overlap, the depth is at most 5
 *     and the number of steps at most twice the image's blocks: a tree
 *     whose blocks point back at each other fails instead of being walked
 *     for ever. Block-mapped (ext2/3) files stop at their size and at as many
 *     mapped blocks as the image has;
 *   - xattrs are read raw (XATTR_HANDLE_FLAG_RAW): POSIX ACLs are converted
 *     here, with bounds checks, to the form getxattr(2) gives;
 *   - the walk is an explicit stack (no recursion), every directory inode is
 *     entered at most once, and "." and ".." entries are never followed.
 */
#include "erofs-layer/ext4.h"

#include <errno.h>
#include <et/com_err.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erofs-layer/tree.h"
#include "shared/links.h"
#include "common/macro.h"
#include "common/util.h"

#define WHAT "ext4"
#define SHOW_MAX 320u	      /* bytes of a path shown in a message */
#define MAX_EXTENT_DEPTH 5    /* the kernel's EXT4_MAX_EXTENT_DEPTH */
#define FAST_SYMLINK_MAX 60u  /* sizeof(i_block) */
#define READ_MAX_BLOCKS 2048u /* blocks per pread of file data */

/* ACL tags (linux/posix_acl.h) and the two encodings of an ACL. */
#define ACL_USER_OBJ 0x01
#define ACL_USER 0x02
#define ACL_GROUP_OBJ 0x04
#define ACL_GROUP 0x08
#define ACL_MASK 0x10
#define ACL_OTHER 0x20
#define EXT4_ACL_VERSION 1   /* on disk: short entries without an id */
#define XATTR_ACL_VERSION 2  /* getxattr(2): 8-byte entries */
#define ACL_UNDEFINED_ID 0xffffffffu

struct el_ext4 {
	ext2_filsys fs;
	char *image;
	unsigned blocksize;
	unsigned inode_size;
	uint64_t blocks;	/* blocks in the file system */
	uint64_t first_data;	/* s_first_data_block */
	uint32_t inodes;	/* s_inodes_count */
	uint32_t first_ino;	/* first non-reserved inode */
	bool inline_data;
};

/* A run of file blocks, contiguous on disk. */
struct run {
	uint64_t lblk, pblk, len;
};

struct el_ext4_file {
	struct walk *wk;
	ext2_ino_t ino;
	uint64_t size;
	bool is_inline;
	bool mapped; /* runs and ext are known */
	struct run *runs;
	size_t nruns, runs_cap;
	struct el_ext4_extent *ext;
	size_t next, ext_cap;
	size_t hint; /* run index of the last read */
};

struct dent {
	uint32_t ino;
	uint32_t name; /* offset in the frame's names */
};

/* A directory of the stack: its sorted entries and the next one to visit. */
struct frame {
	size_t plen; /* bytes of its path in wk->path (0 for the walked root) */
	char *names;
	struct dent *ents;
	size_t n, next;
};

struct kv_off {
	size_t name, value;
};

struct walk {
	struct el_ext4 *e4;
	ext2_filsys fs;
	const struct el_ext4_walk_opts *opts;
	struct el_error *err;

	/* the limits in force (opts or the defaults) and what was met so far */
	uint64_t max_entries, max_bytes;
	uint32_t max_depth, max_xattrs, max_xattr_bytes;
	uint64_t entries, bytes;

	struct ext2_inode_large *inode; /* the inode being handled */
	size_t inode_buf;
	ext2_ino_t ino;

	/* xattrs of the inode being handled */
	struct el_xattr_kv *kv;
	size_t nkv, kv_cap;
	struct kv_off *kv_off; /* where names and values are in arena */
	size_t kv_off_cap;
	char *arena;
	size_t arena_len, arena_cap;
	bool has_idata;		/* the inode has a system.data xattr */
	size_t idata_off, idata_len;
	bool xattr_walk_failed;
	errcode_t xattr_err;

	/* inline data (i_block, then system.data) of the inode being handled */
	uint8_t *inl;
	size_t inl_len, inl_cap;

	/* inode → first path (non-directories with links > 1, directories) */
	struct el_links links; /* paths: "." for the walked root */

	struct frame *stack;
	size_t depth, stack_cap;

	/* the directory being listed */
	char *names;
	size_t names_len, names_cap;
	struct dent *ents;
	size_t nents, ents_cap;

	uint8_t *block; /* one block */
	struct el_ext4_file file;
	char path[EL_MAX_PATH + 1];
	char link[EL_MAX_SYMLINK + 1];
	char show_buf[SHOW_MAX + 8];
};

/* ---- messages ---- */

static pthread_once_t et_once = PTHREAD_ONCE_INIT;

static void et_init(void)
{
	initialize_ext2_error_table();
}

/* libext2fs's text for its own codes (com_err), strerror for errnos. */
static const char *et_msg(errcode_t code)
{
	pthread_once(&et_once, et_init);
	if (code > 0 && code < 4096)
		return strerror((int)code);
	return error_message(code);
}

/* A negative errno for a libext2fs error code. */
static int et_errno(errcode_t code)
{
	if (code > 0 && code < 4096)
		return -(int)code;
	switch (code) {
	case EXT2_ET_NO_MEMORY:
		return -ENOMEM;
	case EXT2_ET_MAGIC_EXT2FS_FILSYS:
	case EXT2_ET_BAD_MAGIC:
	case EXT2_ET_UNEXPECTED_BLOCK_SIZE:
		return -EINVAL;
	case EXT2_ET_UNSUPP_FEATURE:
	case EXT2_ET_RO_UNSUPP_FEATURE:
	case EXT2_ET_REV_TOO_HIGH:
	case EXT2_ET_JOURNAL_UNSUPP_VERSION:
		return -EOPNOTSUPP;
	case EXT2_ET_SHORT_READ:
	case EXT2_ET_LLSEEK_FAILED:
		return -EIO;
	default:
		return -EUCLEAN; /* a structure or checksum that does not hold */
	}
}

static const char *show(struct walk *wk, const char *path)
{
	size_t len = strlen(path);

	if (!len)
		return ".";
	if (len <= SHOW_MAX)
		return path;
	snprintf(wk->show_buf, sizeof(wk->show_buf), "%.*s...%s", 96, path,
		 path + len - (SHOW_MAX - 96 - 3));
	return wk->show_buf;
}

/* "PATH: reason (inode N)" */
static int fail(struct walk *wk, int code, const char *path, ext2_ino_t ino, const char *fmt,
		...) __attribute__((format(printf, 5, 6)));
static int fail(struct walk *wk, int code, const char *path, ext2_ino_t ino, const char *fmt,
		...)
{
	char msg[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ino)
		return el_error_set(wk->err, code, WHAT, EL_NO_OFFSET, "%s: %s (inode %" PRIu32 ")",
				    show(wk, path), msg, (uint32_t)ino);
	return el_error_set(wk->err, code, WHAT, EL_NO_OFFSET, "%s: %s", show(wk, path), msg);
}

static int fail_et(struct walk *wk, errcode_t code, const char *path, ext2_ino_t ino,
		   const char *doing)
{
	return fail(wk, et_errno(code), path, ino, "%s: %s", doing, et_msg(code));
}

static void warn(struct walk *wk, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void warn(struct walk *wk, const char *path, const char *fmt, ...)
{
	char msg[320], line[720];
	va_list ap;

	if (!wk->opts->warn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "%s: %s", show(wk, path), msg);
	wk->opts->warn(wk->opts->warn_ud, WHAT, EL_NO_OFFSET, line);
}

static int oom(struct walk *wk)
{
	return el_error_set(wk->err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
}

static bool cancelled(const struct walk *wk)
{
	return wk->opts->cancel && atomic_load(wk->opts->cancel);
}

static int cancel_error(struct walk *wk)
{
	return el_error_set(wk->err, -ECANCELED, NULL, EL_NO_OFFSET, "cancelled");
}

/* ---- open, close ---- */

void el_ext4_close(struct el_ext4 *e4)
{
	int saved = errno;

	if (!e4)
		return;
	if (e4->fs)
		ext2fs_close_free(&e4->fs);
	free(e4->image);
	free(e4);
	errno = saved;
}

EL_DEFINE_CLEANUP(struct el_ext4, el_ext4_close)

int el_ext4_open(const char *image, struct el_ext4 **ret, struct el_error *err)
{
	_cleanup_(el_ext4_closep) struct el_ext4 *e4 = calloc(1, sizeof(*e4));
	errcode_t code;

	*ret = NULL;
	if (!e4 || !(e4->image = strdup(image)))
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	pthread_once(&et_once, et_init);
	/* read-only (no EXT2_FLAG_RW), no FORCE: unknown incompat features
	 * are refused by libext2fs; checksums are verified */
	code = ext2fs_open2(image, NULL, EXT2_FLAG_64BITS | EXT2_FLAG_SKIP_MMP, 0, 0,
			    unix_io_manager, &e4->fs);
	if (code) {
		e4->fs = NULL;
		if (code == EXT2_ET_BAD_MAGIC || code == EXT2_ET_SHORT_READ)
			return el_error_set(err, -EINVAL, WHAT, EL_NO_OFFSET,
					    "%s: not an ext2/3/4 file system%s", image,
					    code == EXT2_ET_SHORT_READ ? " (too short)" : "");
		return el_error_set(err, et_errno(code), WHAT, EL_NO_OFFSET, "%s: cannot open: %s",
				    image, et_msg(code));
	}
	struct ext2_super_block *sb = e4->fs->super;
	if (sb->s_creator_os == EXT2_OS_HURD)
		return el_error_set(err, -EOPNOTSUPP, WHAT, EL_NO_OFFSET,
				    "%s: made by GNU Hurd, whose inodes this reader does not decode",
				    image);
	if (ext2fs_has_feature_dirdata(sb))
		return el_error_set(err, -EOPNOTSUPP, WHAT, EL_NO_OFFSET,
				    "%s: the dirdata feature (Lustre) is not supported", image);
	/* Not replayed here: replaying writes, and without it the tree may be
	 * stale. e2fsck (el_ext4_fsck) replays the journal and clears both
	 * marks below, so this refusal is what "no fsck, no read" amounts to. */
	if (ext2fs_has_feature_journal_needs_recovery(sb))
		return el_error_set(err, -EUCLEAN, WHAT, EL_NO_OFFSET,
				    "%s: the journal needs recovery (not cleanly unmounted): run e2fsck on the image first",
				    image);
	if (sb->s_state & EXT2_ERROR_FS)
		return el_error_set(err, -EUCLEAN, WHAT, EL_NO_OFFSET,
				    "%s: the file system is marked as having errors: run e2fsck on the image first",
				    image);
	e4->blocksize = e4->fs->blocksize;
	e4->inode_size = EXT2_INODE_SIZE(sb);
	e4->blocks = ext2fs_blocks_count(sb);
	e4->first_data = sb->s_first_data_block;
	e4->inodes = sb->s_inodes_count;
	e4->first_ino = EXT2_FIRST_INO(sb);
	e4->inline_data = ext2fs_has_feature_inline_data(sb);
	if (e4->inode_size < EXT2_GOOD_OLD_INODE_SIZE || e4->inode_size > e4->blocksize ||
	    e4->first_ino <= EXT2_ROOT_INO || e4->blocks <= e4->first_data)
		return el_error_set(err, -EUCLEAN, WHAT, EL_NO_OFFSET,
				    "%s: impossible superblock (inode size %u, first inode %u)",
				    image, e4->inode_size, e4->first_ino);
	*ret = EL_TAKE_PTR(e4);
	return 0;
}

/* ---- inodes ---- */

static int read_inode(struct walk *wk, ext2_ino_t ino, const char *path)
{
	struct el_ext4 *e4 = wk->e4;
	errcode_t code;

	wk->ino = 0;
	if (ino == 0 || ino > e4->inodes)
		return fail(wk, -EUCLEAN, path, ino, "inode number out of range (1 to %" PRIu32 ")",
			    e4->inodes);
	if (ino < e4->first_ino && ino != EXT2_ROOT_INO)
		return fail(wk, -EUCLEAN, path, ino, "names a reserved inode");
	memset(wk->inode, 0, wk->inode_buf);
	code = ext2fs_read_inode_full(wk->fs, ino, (struct ext2_inode *)wk->inode,
				      e4->inode_size);
	if (code)
		return fail_et(wk, code, path, ino, "cannot read the inode");
	struct ext2_inode_large *in = wk->inode;
	if (in->i_links_count == 0 || (in->i_mode & LINUX_S_IFMT) == 0)
		return fail(wk, -EUCLEAN, path, ino, "names a deleted or unused inode");
	if (e4->inode_size > EXT2_GOOD_OLD_INODE_SIZE &&
	    (EXT2_GOOD_OLD_INODE_SIZE + (unsigned)in->i_extra_isize > e4->inode_size ||
	     (in->i_extra_isize & 3)))
		return fail(wk, -EUCLEAN, path, ino, "bad extra inode size %u", in->i_extra_isize);
	if (in->i_flags & EXT4_ENCRYPT_FL)
		return fail(wk, -EOPNOTSUPP, path, ino, "encrypted (fscrypt): cannot be read");
	if (in->i_flags & EXT4_EA_INODE_FL)
		return fail(wk, -EUCLEAN, path, ino, "an xattr value inode linked into the tree");
	if ((in->i_flags & EXT4_INLINE_DATA_FL) && !e4->inline_data)
		return fail(wk, -EUCLEAN, path, ino,
			    "inline data flag without the inline_data feature");
	wk->ino = ino;
	return 0;
}

static bool has_extra(const struct walk *wk, size_t field_end)
{
	return wk->e4->inode_size > EXT2_GOOD_OLD_INODE_SIZE &&
	       EXT2_GOOD_OLD_INODE_SIZE + (size_t)wk->inode->i_extra_isize >= field_end;
}

static void entry_from_inode(struct walk *wk, struct el_entry *e, enum el_entry_type type,
			     const char *path)
{
	const struct ext2_inode_large *in = wk->inode;
	int64_t sec = (int32_t)in->i_mtime;
	uint32_t nsec = 0;

	if (has_extra(wk, offsetof(struct ext2_inode_large, i_mtime_extra) +
				  sizeof(in->i_mtime_extra))) {
		uint32_t extra = in->i_mtime_extra;
		/* as the kernel's ext4_decode_extra_time: epoch bits extend
		 * the signed 32-bit seconds */
		sec += (int64_t)(extra & EXT4_EPOCH_MASK) << 32;
		nsec = extra >> EXT4_EPOCH_BITS;
		if (nsec > 999999999u) {
			warn(wk, path, "mtime nanoseconds %" PRIu32 " out of range, read as 0 (inode %" PRIu32 ")",
			     nsec, (uint32_t)wk->ino);
			nsec = 0;
		}
	}
	*e = (struct el_entry){
		.type = type,
		.path = path[0] ? path : ".",
		.mode = in->i_mode & 07777,
		.uid = inode_uid(*in),
		.gid = inode_gid(*in),
		.mtime = sec,
		.mtime_nsec = nsec,
		.offset = EL_NO_OFFSET,
	};
}

/* ---- xattrs ---- */

/* The ext4 on-disk ACL → the getxattr(2) form. 1: converted into out
 * (4 + 8 * entries bytes, *ret_len), 0: an ACL with no entries (the kernel
 * reads it as none), -EINVAL: malformed. */
static int acl_from_disk(const uint8_t *v, size_t len, uint8_t *out, size_t out_cap,
			 size_t *ret_len)
{
	size_t pos = 4, n = 4;

	if (len < 4 || (v[0] | v[1] << 8 | v[2] << 16 | (uint32_t)v[3] << 24) != EXT4_ACL_VERSION)
		return -EINVAL;
	if (out_cap < 4)
		return -EINVAL;
	out[0] = XATTR_ACL_VERSION;
	out[1] = out[2] = out[3] = 0;
	while (pos < len) {
		if (len - pos < 4 || out_cap - n < 8)
			return -EINVAL;
		uint16_t tag = (uint16_t)(v[pos] | v[pos + 1] << 8);
		uint32_t id = ACL_UNDEFINED_ID;
		size_t esz = 4;
		switch (tag) {
		case ACL_USER_OBJ:
		case ACL_GROUP_OBJ:
		case ACL_MASK:
		case ACL_OTHER:
			break;
		case ACL_USER:
		case ACL_GROUP:
			if (len - pos < 8)
				return -EINVAL;
			id = v[pos + 4] | v[pos + 5] << 8 | v[pos + 6] << 16 |
			     (uint32_t)v[pos + 7] << 24;
			esz = 8;
			break;
		default:
			return -EINVAL;
		}
		memcpy(out + n, v + pos, 4); /* tag, perm */
		out[n + 4] = (uint8_t)id;
		out[n + 5] = (uint8_t)(id >> 8);
		out[n + 6] = (uint8_t)(id >> 16);
		out[n + 7] = (uint8_t)(id >> 24);
		n += 8;
		pos += esz;
	}
	*ret_len = n;
	return n > 4 ? 1 : 0;
}

struct xattr_walk {
	struct walk *wk;
	const char *path;
};

static int arena_put(struct walk *wk, const void *p, size_t len, size_t *ret_off)
{
	size_t need;

	if (el_add_overflow(wk->arena_len, len, &need) ||
	    el_grow((void **)&wk->arena, &wk->arena_cap, need, 1) < 0)
		return -ENOMEM;
	if (len)
		memcpy(wk->arena + wk->arena_len, p, len);
	*ret_off = wk->arena_len;
	wk->arena_len = need;
	return 0;
}

static int xattr_one(char *name, char *value, size_t value_len, void *data)
{
	struct xattr_walk *xw = data;
	struct walk *wk = xw->wk;
	size_t noff, voff;
	bool acl = strcmp(name, "system.posix_acl_access") == 0 ||
		   strcmp(name, "system.posix_acl_default") == 0;

	if (!value && value_len)
		return 0;
	size_t nlen = strlen(name);
	if (nlen == 0 || name[nlen - 1] == '.') {
		/* an index without a name, or a namespace alone: no xattr
		 * setxattr(2) could make (found by fuzz/fuzz-ext4.c) */
		warn(wk, xw->path, "dropping an xattr without a name ('%.40s', inode %" PRIu32 ")",
		     name, (uint32_t)wk->ino);
		return 0;
	}
	if (strcmp(name, "system.data") == 0) {
		/* the inline-data store, not an xattr: kept for the data */
		if (arena_put(wk, value, value_len, &wk->idata_off) < 0)
			goto nomem;
		wk->idata_len = value_len;
		wk->has_idata = true;
		return 0;
	}
	if (arena_put(wk, name, strlen(name) + 1, &noff) < 0)
		goto nomem;
	if (acl) {
		/* at most 8 bytes out per 4 bytes in */
		size_t cap = value_len * 2 + 8, n;
		if (el_grow((void **)&wk->arena, &wk->arena_cap, wk->arena_len + cap, 1) < 0)
			goto nomem;
		int r = acl_from_disk((const uint8_t *)value, value_len,
				      (uint8_t *)wk->arena + wk->arena_len, cap, &n);
		if (r < 0) {
			warn(wk, xw->path, "dropping xattr '%s': not a valid ext4 ACL (inode %" PRIu32 ")",
			     name, (uint32_t)wk->ino);
			return 0;
		}
		if (r == 0)
			return 0; /* no entries: no ACL, as the kernel reads it */
		voff = wk->arena_len;
		wk->arena_len += n;
		value_len = n;
	} else if (arena_put(wk, value, value_len, &voff) < 0) {
		goto nomem;
	}
	if (el_grow((void **)&wk->kv, &wk->kv_cap, wk->nkv + 1, sizeof(*wk->kv)) < 0 ||
	    el_grow((void **)&wk->kv_off, &wk->kv_off_cap, wk->nkv + 1, sizeof(*wk->kv_off)) < 0)
		goto nomem;
	wk->kv_off[wk->nkv] = (struct kv_off){ .name = noff, .value = voff };
	wk->kv[wk->nkv].value_len = value_len;
	wk->nkv++;
	return 0;
nomem:
	wk->xattr_walk_failed = true;
	wk->xattr_err = EXT2_ET_NO_MEMORY;
	return XATTR_ABORT;
}

/* Whether the inode holds any xattr: in its body (the magic after the
 * extra fields) or in an xattr block. */
static bool may_have_xattrs(const struct walk *wk)
{
	const struct ext2_inode_large *in = wk->inode;
	size_t at = EXT2_GOOD_OLD_INODE_SIZE + (size_t)in->i_extra_isize;
	uint32_t magic;

	if (ext2fs_file_acl_block(wk->fs, (struct ext2_inode *)wk->inode))
		return true;
	if (wk->e4->inode_size <= EXT2_GOOD_OLD_INODE_SIZE || in->i_extra_isize < 4 ||
	    at + sizeof(magic) > wk->e4->inode_size)
		return false;
	memcpy(&magic, (const uint8_t *)in + at, sizeof(magic));
	return ext2fs_le32_to_cpu(magic) == EXT2_EXT_ATTR_MAGIC;
}

/* Reads the inode's xattrs into wk->kv (and system.data aside). */
static int read_xattrs(struct walk *wk, const char *path)
{
	struct ext2_xattr_handle *h = NULL;
	struct xattr_walk xw = { .wk = wk, .path = path };
	unsigned int flags = XATTR_HANDLE_FLAG_RAW;
	errcode_t code;

	wk->nkv = 0;
	wk->arena_len = 0;
	wk->has_idata = false;
	wk->idata_len = 0;
	wk->xattr_walk_failed = false;
	if (!may_have_xattrs(wk))
		return 0;
	code = ext2fs_xattrs_open(wk->fs, wk->ino, &h);
	if (!code)
		code = ext2fs_xattrs_flags(h, &flags, NULL);
	if (!code)
		code = ext2fs_xattrs_read_inode(h, wk->inode);
	if (!code)
		code = ext2fs_xattrs_iterate(h, xattr_one, &xw);
	if (h)
		ext2fs_xattrs_close(&h);
	if (!code && wk->xattr_walk_failed)
		code = wk->xattr_err;
	if (code)
		return fail_et(wk, code, path, wk->ino, "cannot read the xattrs");
	for (size_t i = 0; i < wk->nkv; i++) {
		wk->kv[i].name = wk->arena + wk->kv_off[i].name;
		wk->kv[i].value = (const uint8_t *)wk->arena + wk->kv_off[i].value;
	}
	return 0;
}

/* i_block then system.data, for an inode with EXT4_INLINE_DATA_FL. */
static int load_inline(struct walk *wk)
{
	size_t len = EXT4_MIN_INLINE_DATA_SIZE + (wk->has_idata ? wk->idata_len : 0);

	if (el_grow((void **)&wk->inl, &wk->inl_cap, len, 1) < 0)
		return oom(wk);
	memcpy(wk->inl, wk->inode->i_block, EXT4_MIN_INLINE_DATA_SIZE);
	if (wk->has_idata && wk->idata_len)
		memcpy(wk->inl + EXT4_MIN_INLINE_DATA_SIZE, wk->arena + wk->idata_off,
		       wk->idata_len);
	wk->inl_len = len;
	return 0;
}

/* ---- block maps ---- */

static int add_run(struct el_ext4_file *f, uint64_t lblk, uint64_t pblk, uint64_t len)
{
	if (f->nruns) {
		struct run *last = &f->runs[f->nruns - 1];
		if (last->lblk + last->len == lblk && last->pblk + last->len == pblk) {
			last->len += len;
			return 0;
		}
	}
	if (el_grow((void **)&f->runs, &f->runs_cap, f->nruns + 1, sizeof(*f->runs)) < 0)
		return -ENOMEM;
	f->runs[f->nruns++] = (struct run){ .lblk = lblk, .pblk = pblk, .len = len };
	return 0;
}

static int map_extents(struct walk *wk, struct el_ext4_file *f, const char *path,
		       uint64_t eof_blocks)
{
	struct el_ext4 *e4 = wk->e4;
	ext2_extent_handle_t h = NULL;
	struct ext2_extent_info info;
	int64_t last[MAX_EXTENT_DEPTH + 1];
	uint64_t next_lblk = 0, steps = 0, budget = 2 * e4->blocks + 64;
	int op = EXT2_EXTENT_ROOT, r = 0;
	errcode_t code;

	for (size_t i = 0; i < EL_ARRAY_SIZE(last); i++)
		last[i] = -1;
	code = ext2fs_extent_open2(wk->fs, f->ino, (struct ext2_inode *)wk->inode, &h);
	if (!code)
		code = ext2fs_extent_get_info(h, &info);
	if (code) {
		r = fail_et(wk, code, path, f->ino, "bad extent tree");
		goto out;
	}
	if (info.max_depth > MAX_EXTENT_DEPTH) {
		r = fail(wk, -EUCLEAN, path, f->ino, "extent tree %d levels deep (at most %d)",
			 info.max_depth, MAX_EXTENT_DEPTH);
		goto out;
	}
	for (;;) {
		struct ext2fs_extent x;

		code = ext2fs_extent_get(h, op, &x);
		op = EXT2_EXTENT_NEXT;
		if (code == EXT2_ET_EXTENT_NO_NEXT)
			break;
		if (code) {
			r = fail_et(wk, code, path, f->ino, "bad extent tree");
			goto out;
		}
		if (++steps > budget) {
			r = fail(wk, -EUCLEAN, path, f->ino,
				 "extent tree larger than the image (a loop?)");
			goto out;
		}
		if (x.e_flags & EXT2_EXTENT_FLAGS_SECOND_VISIT)
			continue;
		code = ext2fs_extent_get_info(h, &info);
		if (code) {
			r = fail_et(wk, code, path, f->ino, "bad extent tree");
			goto out;
		}
		int level = info.curr_level;
		if (level < 0 || level > MAX_EXTENT_DEPTH) {
			r = fail(wk, -EUCLEAN, path, f->ino, "extent tree level %d", level);
			goto out;
		}
		/* keys of one level increase strictly over the whole walk: a
		 * node met twice (a loop, a shared subtree) breaks this */
		if ((int64_t)x.e_lblk <= last[level]) {
			r = fail(wk, -EUCLEAN, path, f->ino,
				 "extent tree out of order at logical block %llu",
				 (unsigned long long)x.e_lblk);
			goto out;
		}
		last[level] = (int64_t)x.e_lblk;
		if (!(x.e_flags & EXT2_EXTENT_FLAGS_LEAF))
			continue;
		if (x.e_len == 0 || x.e_lblk < next_lblk ||
		    x.e_lblk + x.e_len > ((uint64_t)1 << 32)) {
			r = fail(wk, -EUCLEAN, path, f->ino,
				 "bad extent: logical blocks %llu+%u after %llu",
				 (unsigned long long)x.e_lblk, x.e_len,
				 (unsigned long long)next_lblk);
			goto out;
		}
		next_lblk = x.e_lblk + x.e_len;
		if (x.e_pblk < e4->first_data || x.e_pblk >= e4->blocks ||
		    x.e_len > e4->blocks - x.e_pblk) {
			r = fail(wk, -EUCLEAN, path, f->ino,
				 "extent points outside the image: blocks %llu+%u of %llu",
				 (unsigned long long)x.e_pblk, x.e_len,
				 (unsigned long long)e4->blocks);
			goto out;
		}
		if (x.e_flags & EXT2_EXTENT_FLAGS_UNINIT)
			continue; /* allocated, never written: reads as zeros */
		if (x.e_lblk >= eof_blocks)
			continue; /* preallocated past the end */
		uint64_t len = EL_MIN((uint64_t)x.e_len, eof_blocks - x.e_lblk);
		if (add_run(f, x.e_lblk, x.e_pblk, len) < 0) {
			r = oom(wk);
			goto out;
		}
	}
out:
	if (h)
		ext2fs_extent_free(h);
	return r;
}

struct blockmap_ctx {
	struct walk *wk;
	struct el_ext4_file *f;
	uint64_t eof_blocks, count;
	int r;
	const char *why;
	uint64_t bad;
};

static int blockmap_one(ext2_filsys fs, blk64_t *blocknr, e2_blkcnt_t blockcnt, blk64_t ref_blk,
			int ref_offset, void *priv)
{
	struct blockmap_ctx *c = priv;
	struct el_ext4 *e4 = c->wk->e4;

	(void)fs;
	(void)ref_blk;
	(void)ref_offset;
	if (blockcnt < 0)
		return 0;
	if ((uint64_t)blockcnt >= c->eof_blocks)
		return BLOCK_ABORT; /* blocks come in logical order */
	if (++c->count > e4->blocks) {
		c->why = "more mapped blocks than the image has";
		c->r = -EUCLEAN;
		return BLOCK_ABORT;
	}
	if (*blocknr < e4->first_data || *blocknr >= e4->blocks) {
		c->why = "block outside the image";
		c->bad = *blocknr;
		c->r = -EUCLEAN;
		return BLOCK_ABORT;
	}
	if (add_run(c->f, (uint64_t)blockcnt, *blocknr, 1) < 0) {
		c->r = -ENOMEM;
		return BLOCK_ABORT;
	}
	return 0;
}

static int map_blocks(struct walk *wk, struct el_ext4_file *f, const char *path,
		      uint64_t eof_blocks)
{
	struct blockmap_ctx c = { .wk = wk, .f = f, .eof_blocks = eof_blocks };
	errcode_t code;

	if (!ext2fs_inode_has_valid_blocks2(wk->fs, (struct ext2_inode *)wk->inode))
		return 0;
	code = ext2fs_block_iterate3(wk->fs, f->ino, BLOCK_FLAG_READ_ONLY | BLOCK_FLAG_DATA_ONLY,
				     NULL, blockmap_one, &c);
	if (c.r == -ENOMEM)
		return oom(wk);
	if (c.r < 0)
		return fail(wk, c.r, path, f->ino, "bad block map: %s %llu", c.why,
			    (unsigned long long)c.bad);
	if (code)
		return fail_et(wk, code, path, f->ino, "bad block map");
	return 0;
}

/* The file's runs (blocks below its size) and data regions. */
static int file_map(struct walk *wk, struct el_ext4_file *f, const char *path)
{
	uint64_t bs = wk->e4->blocksize;
	uint64_t eof_blocks = f->size / bs + (f->size % bs != 0);

	if (f->mapped)
		return 0;
	f->nruns = 0;
	f->next = 0;
	f->hint = 0;
	if (f->is_inline) {
		if (f->size) {
			if (el_grow((void **)&f->ext, &f->ext_cap, 1, sizeof(*f->ext)) < 0)
				return oom(wk);
			f->ext[f->next++] = (struct el_ext4_extent){ .off = 0, .len = f->size };
		}
		f->mapped = true;
		return 0;
	}
	int r = (wk->inode->i_flags & EXT4_EXTENTS_FL) ? map_extents(wk, f, path, eof_blocks)
							 : map_blocks(wk, f, path, eof_blocks);
	if (r < 0)
		return r;
	for (size_t i = 0; i < f->nruns; i++) {
		uint64_t off = f->runs[i].lblk * bs;
		uint64_t end = EL_MIN((f->runs[i].lblk + f->runs[i].len) * bs, f->size);
		if (f->next && f->ext[f->next - 1].off + f->ext[f->next - 1].len == off) {
			f->ext[f->next - 1].len += end - off;
			continue;
		}
		if (el_grow((void **)&f->ext, &f->ext_cap, f->next + 1, sizeof(*f->ext)) < 0)
			return oom(wk);
		f->ext[f->next++] = (struct el_ext4_extent){ .off = off, .len = end - off };
	}
	f->mapped = true;
	return 0;
}

/* The run holding logical block b, or the first one after it (nruns if
 * none). Sequential reads hit the hint. */
static size_t run_at(struct el_ext4_file *f, uint64_t b)
{
	size_t i = f->hint;

	/* the hint's run, or one of the few after it */
	if (i < f->nruns && f->runs[i].lblk <= b) {
		for (unsigned k = 0; k < 4 && i < f->nruns; k++, i++)
			if (f->runs[i].lblk + f->runs[i].len > b)
				return f->hint = i;
		if (i == f->nruns)
			return f->hint = i;
	}
	size_t lo = 0, hi = f->nruns;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->runs[mid].lblk + f->runs[mid].len <= b)
			lo = mid + 1;
		else
			hi = mid;
	}
	return f->hint = lo;
}

/* Reads file bytes; the file must be mapped. */
static int64_t file_read(struct walk *wk, struct el_ext4_file *f, uint8_t *buf, size_t len,
			 uint64_t off, const char *path)
{
	uint64_t bs = wk->e4->blocksize;

	if (off >= f->size)
		return 0;
	len = (size_t)EL_MIN((uint64_t)len, f->size - off);
	if (f->is_inline) {
		memcpy(buf, wk->inl + off, len);
		return (int64_t)len;
	}
	for (size_t done = 0; done < len;) {
		uint64_t pos = off + done, b = pos / bs, within = pos % bs;
		size_t i = run_at(f, b);
		size_t left = len - done;
		if (i == f->nruns || f->runs[i].lblk > b) {
			/* a hole up to the next run */
			uint64_t hole_end = i == f->nruns ? UINT64_MAX : f->runs[i].lblk * bs;
			size_t n = (size_t)EL_MIN((uint64_t)left, hole_end - pos);
			memset(buf + done, 0, n);
			done += n;
			continue;
		}
		const struct run *rn = &f->runs[i];
		uint64_t phys = rn->pblk + (b - rn->lblk);
		uint64_t run_left = rn->lblk + rn->len - b; /* blocks */
		errcode_t code;
		if (within == 0 && left >= bs) {
			uint64_t nb = EL_MIN(EL_MIN(run_left, (uint64_t)(left / bs)),
					     (uint64_t)READ_MAX_BLOCKS);
			code = io_channel_read_blk64(wk->fs->io, phys, (int)nb, buf + done);
			if (code)
				goto bad;
			done += (size_t)(nb * bs);
			continue;
		}
		code = io_channel_read_blk64(wk->fs->io, phys, 1, wk->block);
		if (code)
			goto bad;
		size_t n = (size_t)EL_MIN((uint64_t)left, bs - within);
		memcpy(buf + done, wk->block + within, n);
		done += n;
		continue;
bad:
		return fail(wk, et_errno(code), path, f->ino,
			    "cannot read block %llu (file byte %llu): %s",
			    (unsigned long long)phys, (unsigned long long)pos, et_msg(code));
	}
	return (int64_t)len;
}

/* ---- the file API ---- */

int el_ext4_file_extents(struct el_ext4_file *f, const struct el_ext4_extent **ret,
			 size_t *ret_n, struct el_error *err)
{
	struct walk *wk = f->wk;
	struct el_error *saved = wk->err;

	wk->err = err;
	int r = file_map(wk, f, wk->path);
	wk->err = saved;
	if (r < 0)
		return r;
	*ret = f->ext;
	*ret_n = f->next;
	return 0;
}

int64_t el_ext4_file_read(struct el_ext4_file *f, void *buf, size_t len, uint64_t off,
			  struct el_error *err)
{
	struct walk *wk = f->wk;
	struct el_error *saved = wk->err;
	int64_t r;

	wk->err = err;
	if (cancelled(wk))
		r = cancel_error(wk);
	else if ((r = file_map(wk, f, wk->path)) >= 0)
		r = file_read(wk, f, buf, len, off, wk->path);
	wk->err = saved;
	return r;
}

/* ---- inode table: first paths ---- */

/* The slot of ino: filled (seen before) or new, claimed for path. */
static int link_claim(struct walk *wk, uint32_t ino, bool dir, const char *path,
		      struct el_link_slot **ret, bool *ret_seen)
{
	if (el_links_claim(&wk->links, 0, ino, path[0] ? path : ".", dir, ret, ret_seen) < 0)
		return oom(wk);
	return 0;
}

/* ---- directories ---- */

static int dent_cmp(const void *a, const void *b, void *names)
{
	const char *n = names;
	return strcmp(n + ((const struct dent *)a)->name, n + ((const struct dent *)b)->name);
}

static int add_name(struct walk *wk, const char *path, ext2_ino_t dir, uint32_t ino,
		    const char *name, size_t nl)
{
	if (nl == 0)
		return fail(wk, -EUCLEAN, path, dir, "a directory entry with an empty name");
	if ((nl == 1 && name[0] == '.') || (nl == 2 && name[0] == '.' && name[1] == '.'))
		return 0; /* never followed, wherever they point */
	if (memchr(name, '/', nl) || memchr(name, 0, nl))
		return fail(wk, -EUCLEAN, path, dir, "a name holding '%s': '%.*s'",
			    memchr(name, '/', nl) ? "/" : "NUL", (int)EL_MIN(nl, (size_t)80),
			    name);
	if (wk->names_len + nl + 1 > UINT32_MAX)
		return fail(wk, -EUCLEAN, path, dir, "directory too large");
	if (el_grow((void **)&wk->names, &wk->names_cap, wk->names_len + nl + 1, 1) < 0 ||
	    el_grow((void **)&wk->ents, &wk->ents_cap, wk->nents + 1, sizeof(*wk->ents)) < 0)
		return oom(wk);
	memcpy(wk->names + wk->names_len, name, nl);
	wk->names[wk->names_len + nl] = 0;
	wk->ents[wk->nents++] = (struct dent){ .ino = ino, .name = (uint32_t)wk->names_len };
	wk->names_len += nl + 1;
	return 0;
}

/* Parses the entries in [buf, buf+len): a directory block, or a region of
 * an inline directory. where names it in messages. */
static int parse_dirents(struct walk *wk, const char *path, ext2_ino_t dir, const uint8_t *buf,
			 size_t len, const char *where, uint64_t where_n)
{
	for (size_t pos = 0; pos < len;) {
		unsigned int rec_len;
		if (len - pos < 8)
			goto bad;
		struct ext2_dir_entry *d = (struct ext2_dir_entry *)(uintptr_t)(buf + pos);
		uint32_t ino;
		memcpy(&ino, buf + pos, sizeof(ino));
		ino = ext2fs_le32_to_cpu(ino);
		if (ext2fs_get_rec_len(wk->fs, d, &rec_len))
			goto bad;
		size_t nl = buf[pos + 6];
		if (rec_len < 8 || (rec_len & 3) || rec_len > len - pos || nl + 8 > rec_len)
			goto bad;
		if (ino) {
			int r = add_name(wk, path, dir, ino, (const char *)buf + pos + 8, nl);
			if (r < 0)
				return r;
		}
		pos += rec_len;
		continue;
bad:
		return fail(wk, -EUCLEAN, path, dir, "bad directory entry at byte %zu of %s %llu",
			    pos, where, (unsigned long long)where_n);
	}
	return 0;
}

/* Lists the directory inode in wk->inode (xattrs read) into wk->names and
 * wk->ents, sorted, checked for duplicates. */
static int list_dir(struct walk *wk, const char *path)
{
	struct el_ext4_file *f = &wk->file;
	ext2_ino_t dir = wk->ino;
	uint64_t size = EXT2_I_SIZE(wk->inode), bs = wk->e4->blocksize;
	int r;

	wk->names_len = 0;
	wk->nents = 0;
	if (wk->inode->i_flags & EXT4_INLINE_DATA_FL) {
		r = load_inline(wk);
		if (r < 0)
			return r;
		/* i_block: the parent's inode number (4 bytes), then entries;
		 * system.data: more entries */
		r = parse_dirents(wk, path, dir, wk->inl + EXT4_INLINE_DATA_DOTDOT_SIZE,
				  EXT4_MIN_INLINE_DATA_SIZE - EXT4_INLINE_DATA_DOTDOT_SIZE,
				  "inline area", 0);
		if (r >= 0 && wk->inl_len > EXT4_MIN_INLINE_DATA_SIZE)
			r = parse_dirents(wk, path, dir, wk->inl + EXT4_MIN_INLINE_DATA_SIZE,
					  wk->inl_len - EXT4_MIN_INLINE_DATA_SIZE,
					  "inline xattr area", 0);
		if (r < 0)
			return r;
	} else {
		if (size > (bs << 32))
			return fail(wk, -EUCLEAN, path, dir, "absurd directory size %llu",
				    (unsigned long long)size);
		*f = (struct el_ext4_file){ .wk = wk, .ino = dir, .size = size,
					    .runs = f->runs, .runs_cap = f->runs_cap,
					    .ext = f->ext, .ext_cap = f->ext_cap };
		r = file_map(wk, f, path);
		if (r < 0)
			return r;
		for (size_t i = 0; i < f->nruns; i++) {
			for (uint64_t k = 0; k < f->runs[i].len; k++) {
				if (cancelled(wk))
					return cancel_error(wk);
				uint64_t pblk = f->runs[i].pblk + k;
				errcode_t code = ext2fs_read_dir_block4(wk->fs, pblk, wk->block, 0, dir);
				if (code)
					return fail(wk, et_errno(code), path, dir,
						    "cannot read directory block %llu: %s",
						    (unsigned long long)pblk, et_msg(code));
				r = parse_dirents(wk, path, dir, wk->block, bs, "block", pblk);
				if (r < 0)
					return r;
			}
		}
		f->mapped = false;
	}
	if (wk->nents > 1)
		qsort_r(wk->ents, wk->nents, sizeof(*wk->ents), dent_cmp, wk->names);
	for (size_t i = 1; i < wk->nents; i++)
		if (strcmp(wk->names + wk->ents[i - 1].name, wk->names + wk->ents[i].name) == 0)
			return fail(wk, -EUCLEAN, path, dir, "the name '%.80s' appears twice",
				    wk->names + wk->ents[i].name);
	return 0;
}

static int push_dir(struct walk *wk, size_t plen)
{
	if (el_grow((void **)&wk->stack, &wk->stack_cap, wk->depth + 1, sizeof(*wk->stack)) < 0)
		return oom(wk);
	struct frame *fr = &wk->stack[wk->depth];
	*fr = (struct frame){ .plen = plen, .n = wk->nents };
	/* the frame takes the lists; the walk starts new ones */
	fr->names = EL_TAKE_PTR(wk->names);
	fr->ents = EL_TAKE_PTR(wk->ents);
	wk->names_cap = wk->ents_cap = 0;
	wk->depth++;
	return 0;
}

static void pop_dir(struct walk *wk)
{
	struct frame *fr = &wk->stack[--wk->depth];
	free(fr->names);
	free(fr->ents);
}

/* ---- entries ---- */

struct visitor {
	el_ext4_visit_fn fn;
	void *ud;
};

/* The limits of el_ext4_walk_opts, checked before an entry is visited. */
static int check_limits(struct walk *wk, const struct el_entry *e)
{
	if (++wk->entries > wk->max_entries)
		return fail(wk, -E2BIG, e->path, wk->ino,
			    "more than %" PRIu64 " entries in the image, the limit", wk->max_entries);
	/* an entry met while DEPTH directories are open is DEPTH levels down */
	if (wk->depth > wk->max_depth)
		return fail(wk, -E2BIG, e->path, wk->ino,
			    "%zu directory levels deep, over the limit of %" PRIu32, wk->depth,
			    wk->max_depth);
	if (e->nxattrs > wk->max_xattrs)
		return fail(wk, -E2BIG, e->path, wk->ino, "%zu xattrs, over the limit of %" PRIu32,
			    (size_t)e->nxattrs, wk->max_xattrs);
	uint64_t xb = 0;
	for (size_t i = 0; i < e->nxattrs; i++)
		xb += strlen(e->xattrs[i].name) + e->xattrs[i].value_len;
	if (xb > wk->max_xattr_bytes)
		return fail(wk, -E2BIG, e->path, wk->ino,
			    "xattrs of %" PRIu64 " bytes, over the limit of %" PRIu32, xb,
			    wk->max_xattr_bytes);
	if (e->type == EL_ENTRY_REG && wk->max_bytes) {
		if (e->size > wk->max_bytes - wk->bytes)
			return fail(wk, -E2BIG, e->path, wk->ino,
				    "a file of %" PRIu64 " bytes takes the regular files over %" PRIu64
				    " bytes, the limit (holes count)",
				    e->size, wk->max_bytes);
		wk->bytes += e->size;
	}
	return 0;
}

static int call(struct walk *wk, const struct visitor *v, const struct el_entry *e,
		struct el_ext4_file *f)
{
	int r = check_limits(wk, e);
	if (r < 0)
		return r;
	r = v->fn(v->ud, e, f, wk->err);
	if (r < 0 && !wk->err->code)
		el_error_set(wk->err, r, WHAT, EL_NO_OFFSET, "%s: stopped: %s", show(wk, e->path),
			     strerror(-r));
	return r < 0 ? r : 0;
}

static int symlink_target(struct walk *wk, const char *path, uint64_t size)
{
	struct ext2_inode_large *in = wk->inode;
	int r;

	if (size == 0 || size > EL_MAX_SYMLINK)
		return fail(wk, size ? -ENAMETOOLONG : -EUCLEAN, path, wk->ino,
			    "symlink target of %llu bytes (1 to %u allowed)",
			    (unsigned long long)size, EL_MAX_SYMLINK);
	if (in->i_flags & EXT4_INLINE_DATA_FL) {
		r = load_inline(wk);
		if (r < 0)
			return r;
		if (size > wk->inl_len)
			return fail(wk, -EUCLEAN, path, wk->ino,
				    "symlink of %llu bytes, %zu stored inline",
				    (unsigned long long)size, wk->inl_len);
		memcpy(wk->link, wk->inl, size);
	} else if (size < FAST_SYMLINK_MAX) {
		/* fast symlink, in i_block: libext2fs's and the kernel's rule
		 * for what ext2fs_symlink and ext4_symlink create */
		memcpy(wk->link, in->i_block, size);
	} else {
		struct el_ext4_file *f = &wk->file;
		*f = (struct el_ext4_file){ .wk = wk, .ino = wk->ino, .size = size,
					    .runs = f->runs, .runs_cap = f->runs_cap,
					    .ext = f->ext, .ext_cap = f->ext_cap };
		r = file_map(wk, f, path);
		if (r < 0)
			return r;
		int64_t n = file_read(wk, f, (uint8_t *)wk->link, size, 0, path);
		f->mapped = false;
		if (n < 0)
			return (int)n;
	}
	wk->link[size] = 0;
	if (strlen(wk->link) != size)
		return fail(wk, -EUCLEAN, path, wk->ino, "symlink target holds a NUL byte");
	return 0;
}

/* Handles the child at wk->path (wk->path holds it, plen its parent's
 * length). Pushes a frame for a directory. */
static int visit(struct walk *wk, const struct visitor *v, uint32_t ino, const char *path)
{
	struct el_entry e;
	int r;

	r = read_inode(wk, ino, path);
	if (r < 0)
		return r;
	struct ext2_inode_large *in = wk->inode;
	uint16_t fmt = in->i_mode & LINUX_S_IFMT;
	uint64_t size = EXT2_I_SIZE(in);

	if (fmt == LINUX_S_IFSOCK) {
		warn(wk, path, "skipped: a socket (an image cannot carry one)");
		return 0;
	}
	if (fmt != LINUX_S_IFREG && fmt != LINUX_S_IFDIR && fmt != LINUX_S_IFLNK &&
	    fmt != LINUX_S_IFCHR && fmt != LINUX_S_IFBLK && fmt != LINUX_S_IFIFO) {
		warn(wk, path, "skipped: unknown file type 0%o (inode %" PRIu32 ")", fmt, ino);
		return 0;
	}
	if (fmt == LINUX_S_IFDIR) {
		struct el_link_slot *s;
		bool seen;
		r = link_claim(wk, ino, true, path, &s, &seen);
		if (r < 0)
			return r;
		if (seen)
			return fail(wk, -EUCLEAN, path, ino,
				    "directory already met at '%.200s' (a directory linked twice, or a loop)",
				    s->path);
		r = read_xattrs(wk, path);
		if (r < 0)
			return r;
		entry_from_inode(wk, &e, EL_ENTRY_DIR, path);
		e.xattrs = wk->kv;
		e.nxattrs = wk->nkv;
		r = call(wk, v, &e, NULL);
		if (r < 0)
			return r;
		r = list_dir(wk, path);
		if (r < 0)
			return r;
		return push_dir(wk, strlen(path));
	}

	uint32_t rdev = 0;
	if (fmt == LINUX_S_IFCHR || fmt == LINUX_S_IFBLK)
		rdev = in->i_block[0] ? in->i_block[0] : in->i_block[1];
	bool whiteout = fmt == LINUX_S_IFCHR && rdev == 0;
	if (in->i_links_count > 1 && !whiteout) {
		struct el_link_slot *s;
		bool seen;
		r = link_claim(wk, ino, false, path, &s, &seen);
		if (r < 0)
			return r;
		if (seen && s->dir)
			return fail(wk, -EUCLEAN, path, ino, "inode met as a directory at '%.200s'",
				    s->path);
		if (seen) {
			entry_from_inode(wk, &e, EL_ENTRY_HARDLINK, path);
			e.link = s->path;
			return call(wk, v, &e, NULL);
		}
	}
	r = read_xattrs(wk, path);
	if (r < 0)
		return r;

	switch (fmt) {
	case LINUX_S_IFREG: {
		struct el_ext4_file *f = &wk->file;
		if (size > ((uint64_t)wk->e4->blocksize << 32))
			return fail(wk, -EUCLEAN, path, ino, "absurd size %llu",
				    (unsigned long long)size);
		*f = (struct el_ext4_file){ .wk = wk, .ino = ino, .size = size,
					    .is_inline = (in->i_flags & EXT4_INLINE_DATA_FL) != 0,
					    .runs = f->runs, .runs_cap = f->runs_cap,
					    .ext = f->ext, .ext_cap = f->ext_cap };
		if (f->is_inline) {
			r = load_inline(wk);
			if (r < 0)
				return r;
			if (size > wk->inl_len)
				return fail(wk, -EUCLEAN, path, ino,
					    "size %llu, but %zu bytes stored inline",
					    (unsigned long long)size, wk->inl_len);
		}
		entry_from_inode(wk, &e, EL_ENTRY_REG, path);
		e.size = size;
		e.xattrs = wk->kv;
		e.nxattrs = wk->nkv;
		r = call(wk, v, &e, f);
		f->mapped = false;
		return r;
	}
	case LINUX_S_IFLNK:
		r = symlink_target(wk, path, size);
		if (r < 0)
			return r;
		entry_from_inode(wk, &e, EL_ENTRY_SYMLINK, path);
		e.link = wk->link;
		break;
	case LINUX_S_IFCHR:
	case LINUX_S_IFBLK:
		entry_from_inode(wk, &e, fmt == LINUX_S_IFCHR ? EL_ENTRY_CHR : EL_ENTRY_BLK, path);
		if (in->i_block[0]) { /* old 8:8 encoding */
			e.dev_major = (rdev >> 8) & 0xff;
			e.dev_minor = rdev & 0xff;
		} else { /* new encoding (new_decode_dev) */
			e.dev_major = (rdev & 0xfff00) >> 8;
			e.dev_minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
		}
		break;
	default:
		entry_from_inode(wk, &e, EL_ENTRY_FIFO, path);
		break;
	}
	e.xattrs = wk->kv;
	e.nxattrs = wk->nkv;
	return call(wk, v, &e, NULL);
}

/* The inode of subdir, each component looked up without following
 * symlinks. */
static int resolve_subdir(struct walk *wk, const char *subdir, ext2_ino_t *ret)
{
	ext2_ino_t ino = EXT2_ROOT_INO;
	char *copy = strdup(subdir ? subdir : "");
	char *save = NULL;
	int r = 0;

	if (!copy)
		return oom(wk);
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (strcmp(c, ".") == 0 || strcmp(c, "..") == 0) {
			r = el_error_set(wk->err, -EINVAL, WHAT, EL_NO_OFFSET,
					 "%s: '%s': '.' and '..' are not allowed in the subdirectory",
					 wk->e4->image, subdir);
			break;
		}
		r = read_inode(wk, ino, subdir);
		if (r < 0)
			break;
		if ((wk->inode->i_mode & LINUX_S_IFMT) != LINUX_S_IFDIR) {
			r = el_error_set(wk->err, -ENOTDIR, WHAT, EL_NO_OFFSET,
					 "%s: '%s': a component before '%s' is not a directory",
					 wk->e4->image, subdir, c);
			break;
		}
		r = read_xattrs(wk, subdir); /* inline directories keep entries there */
		if (r >= 0)
			r = list_dir(wk, subdir);
		if (r < 0)
			break;
		size_t lo = 0, hi = wk->nents;
		ino = 0;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			int c2 = strcmp(wk->names + wk->ents[mid].name, c);
			if (c2 == 0) {
				ino = wk->ents[mid].ino;
				break;
			}
			if (c2 < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (!ino) {
			r = el_error_set(wk->err, -ENOENT, WHAT, EL_NO_OFFSET,
					 "%s: '%s': no '%s' in the image", wk->e4->image, subdir, c);
			break;
		}
	}
	free(copy);
	if (r < 0)
		return r;
	*ret = ino;
	return 0;
}

static void walk_release(struct walk *wk)
{
	int saved = errno;

	while (wk->depth)
		pop_dir(wk);
	free(wk->stack);
	el_links_free(&wk->links);
	free(wk->inode);
	free(wk->kv);
	free(wk->kv_off);
	free(wk->arena);
	free(wk->inl);
	free(wk->names);
	free(wk->ents);
	free(wk->block);
	free(wk->file.runs);
	free(wk->file.ext);
	errno = saved;
}

int el_ext4_walk(struct el_ext4 *e4, const char *subdir, const struct el_ext4_walk_opts *opts,
		 el_ext4_visit_fn visit_fn, void *ud, struct el_error *err)
{
	static const struct el_ext4_walk_opts no_opts;
	_cleanup_(walk_release) struct walk wk = {
		.e4 = e4,
		.fs = e4->fs,
		.opts = opts ? opts : &no_opts,
		.err = err,
	};
	const struct visitor v = { .fn = visit_fn, .ud = ud };
	ext2_ino_t root = 0;
	int r;

	wk.max_entries = wk.opts->max_entries ? wk.opts->max_entries : EL_EXT4_MAX_ENTRIES;
	wk.max_bytes = wk.opts->max_bytes;
	wk.max_depth = wk.opts->max_depth ? wk.opts->max_depth : EL_EXT4_MAX_DEPTH;
	wk.max_xattrs = wk.opts->max_xattrs ? wk.opts->max_xattrs : EL_EXT4_MAX_XATTRS;
	wk.max_xattr_bytes = wk.opts->max_xattr_bytes ? wk.opts->max_xattr_bytes
						      : EL_EXT4_MAX_XATTR_BYTES;
	wk.inode_buf = EL_MAX((size_t)e4->inode_size, sizeof(struct ext2_inode_large));
	wk.inode = calloc(1, wk.inode_buf);
	wk.block = malloc(e4->blocksize);
	if (!wk.inode || !wk.block)
		return oom(&wk);
	wk.file.wk = &wk;

	r = resolve_subdir(&wk, subdir, &root);
	if (r < 0)
		return r;
	/* the walked directory: path "" in wk.path, "." when reported */
	wk.path[0] = 0;
	r = read_inode(&wk, root, "");
	if (r < 0)
		return r;
	if ((wk.inode->i_mode & LINUX_S_IFMT) != LINUX_S_IFDIR)
		return el_error_set(err, -ENOTDIR, WHAT, EL_NO_OFFSET, "%s: '%s' is not a directory",
				    e4->image, subdir);
	if (cancelled(&wk))
		return cancel_error(&wk);
	r = visit(&wk, &v, root, "");
	if (r < 0)
		return r;

	while (wk.depth) {
		struct frame *fr = &wk.stack[wk.depth - 1];
		if (fr->next == fr->n) {
			pop_dir(&wk);
			continue;
		}
		if (cancelled(&wk))
			return cancel_error(&wk);
		const struct dent *d = &fr->ents[fr->next++];
		const char *name = fr->names + d->name;
		size_t nl = strlen(name), len = fr->plen ? fr->plen + 1 + nl : nl;
		if (len > EL_MAX_PATH) {
			wk.path[fr->plen] = 0;
			return fail(&wk, -ENAMETOOLONG, wk.path, 0,
				    "the path of '%.60s%s' would be %zu bytes, over the limit of %u",
				    name, nl > 60 ? "..." : "", len, EL_MAX_PATH);
		}
		if (fr->plen) {
			wk.path[fr->plen] = '/';
			memcpy(wk.path + fr->plen + 1, name, nl + 1);
		} else {
			memcpy(wk.path, name, nl + 1);
		}
		r = visit(&wk, &v, d->ino, wk.path);
		if (r < 0)
			return r;
	}
	return 0;
}
