/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The EROFS writer (lib/erofs/writer.c): small trees are written to a memfd
 * and the bytes are checked against the on-disk format directly, with
 * erofs_fs.h and the endian helpers, not with the project's own reader.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "erofs-layer/tree.h"
#include "erofs-layer/writer.h"
#include "erofs/erofs_fs.h"
#include "erofs/tree-internal.h"
#include "live.h"
#include "common/endian.h"
#include "common/hash.h"

#define BLK 4096u
#define EPOCH 1700000000

/* ---- building ---- */

struct build {
	struct el_tree *tree;
	struct el_writer *w;
	int fd;
	struct el_error err;
	uint8_t *img;
	size_t len;
	struct el_writer_stats st;
};

static void b_open(struct build *b)
{
	memset(b, 0, sizeof(*b));
	struct el_tree_opts o = { .oci_whiteouts = true };
	el_error_clear(&b->err);
	b->fd = memfd_create("img", MFD_CLOEXEC);
	assert_true(b->fd >= 0);
	live_add(LIVE_FD, NULL, b->fd);
	assert_int_equal(el_tree_new(&o, &b->tree), 0);
	live_add(LIVE_TREE, b->tree, -1);
	assert_int_equal(el_writer_new(b->fd, &b->w), 0);
	live_add(LIVE_WRITER, b->w, -1);
}

static struct el_entry ent(enum el_entry_type type, const char *path)
{
	return (struct el_entry){ .type = type, .path = path, .link = "", .mode = 0644,
				  .mtime = EPOCH };
}

static struct el_inode *b_add(struct build *b, const struct el_entry *e)
{
	struct el_inode *ino;
	if (el_tree_add(b->tree, e, &ino, &b->err) < 0)
		fail_msg("el_tree_add(%s): %s", e->path, b->err.msg);
	if (ino)
		assert_int_equal(el_writer_file_begin(b->w, ino, &b->err), 0);
	return ino;
}

static void b_file(struct build *b, const char *path, const void *data, size_t len)
{
	struct el_entry e = ent(EL_ENTRY_REG, path);
	e.size = len;
	struct el_inode *ino = b_add(b, &e);
	assert_int_equal(el_writer_file_write(b->w, ino, data, len, 0, &b->err), 0);
}

static void b_finish(struct build *b, const struct el_writer_opts *o)
{
	struct stat st;
	if (el_writer_finish(b->w, b->tree, o, &b->st, &b->err) < 0)
		fail_msg("el_writer_finish: %s", b->err.msg);
	assert_int_equal(fstat(b->fd, &st), 0);
	b->len = (size_t)st.st_size;
	b->img = t_alloc(b->len);
	assert_int_equal(pread(b->fd, b->img, b->len, 0), (ssize_t)b->len);
}

static void b_close(struct build *b)
{
	live_del(b->w, -1);
	live_del(b->tree, -1);
	live_del(NULL, b->fd);
	el_writer_free(b->w);
	el_tree_free(b->tree);
	close(b->fd);
	t_free(b->img);
}

/* ---- reading the image ---- */

static const struct erofs_super_block *sb(const struct build *b)
{
	return (const struct erofs_super_block *)(b->img + EROFS_SUPER_OFFSET);
}

struct dinode {
	size_t off, isize; /* byte offset and size of the on-disk inode */
	bool ext;
	unsigned layout, icount;
	uint32_t mode, u, ino, uid, gid, nlink, nsec, raw_mtime;
	uint64_t size;
	int64_t mtime;
};

static struct dinode inode_at(const struct build *b, uint64_t nid)
{
	struct dinode d = { 0 };
	d.off = (size_t)EL_LE_GET(sb(b), meta_blkaddr) * BLK + nid * EROFS_SLOTSIZE;
	assert_true(d.off + 32 <= b->len);
	const struct erofs_inode_compact *c = (const void *)(b->img + d.off);
	unsigned fmt = (unsigned)EL_LE_GET(c, i_format);
	d.ext = fmt & 1;
	d.layout = (fmt >> 1) & 7;
	assert_int_equal(fmt >> 4, 0);
	d.icount = (unsigned)EL_LE_GET(c, i_xattr_icount);
	d.mode = (uint32_t)EL_LE_GET(c, i_mode);
	if (d.ext) {
		const struct erofs_inode_extended *e = (const void *)c;
		d.isize = 64;
		d.size = EL_LE_GET(e, i_size);
		d.u = (uint32_t)EL_LE_GET(e, i_u);
		d.ino = (uint32_t)EL_LE_GET(e, i_ino);
		d.uid = (uint32_t)EL_LE_GET(e, i_uid);
		d.gid = (uint32_t)EL_LE_GET(e, i_gid);
		d.mtime = (int64_t)EL_LE_GET(e, i_mtime);
		d.nsec = (uint32_t)EL_LE_GET(e, i_mtime_nsec);
		d.nlink = (uint32_t)EL_LE_GET(e, i_nlink);
	} else {
		d.isize = 32;
		d.size = EL_LE_GET(c, i_size);
		d.u = (uint32_t)EL_LE_GET(c, i_u);
		d.ino = (uint32_t)EL_LE_GET(c, i_ino);
		d.uid = (uint32_t)EL_LE_GET(c, i_uid);
		d.gid = (uint32_t)EL_LE_GET(c, i_gid);
		d.raw_mtime = (uint32_t)EL_LE_GET(c, i_mtime);
		d.mtime = (int64_t)EL_LE_GET(sb(b), epoch) + d.raw_mtime;
		d.nlink = (uint32_t)EL_LE_GET(c, i_nb);
	}
	return d;
}

static const uint8_t *xattr_body(const struct build *b, const struct dinode *d)
{
	return b->img + d->off + d->isize;
}

/* Block i of a directory or file's data, and its length. */
static const uint8_t *data_block(const struct build *b, const struct dinode *d, uint64_t i,
				 size_t *ret_len)
{
	uint64_t nblocks = (d->size + BLK - 1) / BLK;
	assert_true(i < nblocks);
	*ret_len = (size_t)(i + 1 < nblocks || d->size % BLK == 0 ? BLK : d->size % BLK);
	if (d->layout == EROFS_INODE_FLAT_INLINE && i + 1 == nblocks) {
		size_t at = d->off + d->isize + erofs_xattr_ibody_size(d->icount);
		/* the inline tail does not cross a block boundary */
		assert_true(at % BLK + *ret_len <= BLK);
		return b->img + at;
	}
	assert_true(d->layout == EROFS_INODE_FLAT_PLAIN || d->layout == EROFS_INODE_FLAT_INLINE);
	assert_true(((uint64_t)d->u + i + 1) * BLK <= b->len);
	return b->img + ((uint64_t)d->u + i) * BLK;
}

struct dent {
	char name[EROFS_NAME_LEN + 1];
	uint64_t nid;
	uint8_t type;
};

/* Lists a directory checking the block rules: each block starts with its
 * dirents (the first nameoff / 12 of them), names follow in increasing
 * nameoff order inside the block, and names increase by memcmp across the
 * whole directory. */
static size_t read_dir(const struct build *b, uint64_t nid, struct dent *out, size_t max,
		       size_t *ret_blocks)
{
	struct dinode d = inode_at(b, nid);
	size_t n = 0;
	uint64_t nblocks = (d.size + BLK - 1) / BLK;

	assert_true(S_ISDIR(d.mode));
	for (uint64_t i = 0; i < nblocks; i++) {
		size_t len;
		const uint8_t *blk = data_block(b, &d, i, &len);
		unsigned first = el_get_le16(blk + 8);
		assert_int_equal(first % 12, 0);
		unsigned count = first / 12;
		assert_true(count >= 1);
		for (unsigned k = 0; k < count; k++) {
			const uint8_t *de = blk + 12 * k;
			unsigned off = el_get_le16(de + 8);
			unsigned end = k + 1 < count ? el_get_le16(de + 12 + 8) : (unsigned)len;
			assert_true(off < end && end <= len);
			size_t nl = strnlen((const char *)blk + off, end - off);
			if (k + 1 < count)
				assert_int_equal(nl, end - off); /* no NUL inside a name */
			assert_true(nl >= 1 && nl <= EROFS_NAME_LEN);
			assert_true(n < max);
			memcpy(out[n].name, blk + off, nl);
			out[n].name[nl] = 0;
			out[n].nid = el_get_le64(de);
			out[n].type = de[10];
			if (n)
				assert_true(strcmp(out[n - 1].name, out[n].name) < 0);
			n++;
		}
	}
	if (ret_blocks)
		*ret_blocks = (size_t)nblocks;
	return n;
}

static uint64_t lookup(const struct build *b, uint64_t dir, const char *name)
{
	struct dent *ents = t_alloc(1024 * sizeof(*ents));
	size_t n = read_dir(b, dir, ents, 1024, NULL);
	uint64_t nid = UINT64_MAX;
	for (size_t i = 0; i < n; i++)
		if (strcmp(ents[i].name, name) == 0)
			nid = ents[i].nid;
	t_free(ents);
	if (nid == UINT64_MAX)
		fail_msg("'%s' not found", name);
	return nid;
}

static uint64_t root_nid(const struct build *b)
{
	return EL_LE_GET(sb(b), rootnid_2b);
}

/* ---- tests ---- */

static void test_superblock_and_root(void **state)
{
	struct build b;
	uint8_t a[5000];
	(void)state;

	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = (uint8_t)(i % 251 + 1);
	b_open(&b);
	b_file(&b, "a", a, sizeof(a));
	b_file(&b, "b", "0123456789", 10);
	b_file(&b, "-x", NULL, 0);
	struct el_entry e = ent(EL_ENTRY_DIR, "+y");
	b_add(&b, &e);
	b_file(&b, "sub/c", "c", 1);
	struct el_writer_opts o = { .has_uuid = true, .has_epoch = true, .epoch = EPOCH };
	memcpy(o.uuid, "0123456789abcdef", 16);
	b_finish(&b, &o);

	const struct erofs_super_block *s = sb(&b);
	assert_int_equal(EL_LE_GET(s, magic), EROFS_SUPER_MAGIC_V1);
	assert_int_equal(s->blkszbits, 12);
	assert_int_equal(EL_LE_GET(s, feature_compat),
			 EROFS_FEATURE_COMPAT_SB_CHKSUM | EROFS_FEATURE_COMPAT_MTIME);
	assert_int_equal(EL_LE_GET(s, feature_incompat), 0);
	assert_int_equal(EL_LE_GET(s, epoch), EPOCH);
	assert_memory_equal(s->uuid, "0123456789abcdef", 16);
	/* §2.2: crc32c (seed ~0, no final xor) of bytes 1024..4095, field zeroed */
	uint8_t blk0[BLK - EROFS_SUPER_OFFSET];
	memcpy(blk0, b.img + EROFS_SUPER_OFFSET, sizeof(blk0));
	memset(blk0 + offsetof(struct erofs_super_block, checksum), 0, 4);
	assert_int_equal(EL_LE_GET(s, checksum), el_crc32c_update(~0u, blk0, sizeof(blk0)));
	/* data: blocks 1-2 (a), 3 (b), 4 (c); metadata from block 5 on... */
	assert_int_equal(EL_LE_GET(s, meta_blkaddr), 5);
	assert_int_equal(root_nid(&b), 1); /* ...with the root first, after nid 0 */
	assert_int_equal(EL_LE_GET(s, inos), 7);
	assert_int_equal(EL_LE_GET(s, xattr_blkaddr), 0);
	assert_int_equal(EL_LE_GET(s, blocks_lo) * (uint64_t)BLK, b.len);
	assert_int_equal(b.st.image_bytes, b.len);
	assert_int_equal(b.st.inodes, 7);
	assert_int_equal(b.st.data_blocks, 4);
	assert_int_equal(b.len % BLK, 0);

	struct dent d[16];
	size_t n = read_dir(&b, 1, d, 16, NULL);
	static const char *const names[] = { "+y", "-x", ".", "..", "a", "b", "sub" };
	static const uint8_t types[] = { EROFS_FT_DIR,	   EROFS_FT_REG_FILE, EROFS_FT_DIR,
					 EROFS_FT_DIR,	   EROFS_FT_REG_FILE, EROFS_FT_REG_FILE,
					 EROFS_FT_DIR };
	assert_int_equal(n, 7);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(d[i].name, names[i]);
		assert_int_equal(d[i].type, types[i]);
	}
	assert_int_equal(d[2].nid, 1);
	assert_int_equal(d[3].nid, 1);

	struct dinode r = inode_at(&b, 1);
	assert_int_equal(r.mode, S_IFDIR | 0755);
	assert_int_equal(r.nlink, 4);
	assert_int_equal(r.layout, EROFS_INODE_FLAT_INLINE);
	assert_int_equal(r.size, 7 * 12 + 2 + 2 + 1 + 2 + 1 + 1 + 3);
	/* the subdirectory's ".." is the root */
	uint64_t sub = lookup(&b, 1, "sub");
	assert_int_equal(lookup(&b, sub, ".."), 1);
	assert_int_equal(lookup(&b, sub, "."), sub);

	/* file data: FLAT_PLAIN from block 1, zero-padded to the block */
	struct dinode fa = inode_at(&b, lookup(&b, 1, "a"));
	assert_int_equal(fa.layout, EROFS_INODE_FLAT_PLAIN);
	assert_int_equal(fa.size, sizeof(a));
	assert_int_equal(fa.u, 1);
	assert_memory_equal(b.img + BLK, a, sizeof(a));
	for (size_t i = BLK + sizeof(a); i < 3 * BLK; i++)
		assert_int_equal(b.img[i], 0);
	struct dinode fb = inode_at(&b, lookup(&b, 1, "b"));
	assert_int_equal(fb.u, 3);
	assert_memory_equal(b.img + 3 * BLK, "0123456789", 10);
	struct dinode fx = inode_at(&b, lookup(&b, 1, "-x"));
	assert_int_equal(fx.size, 0);
	assert_int_equal(fx.u, 0);
	assert_int_equal(fx.nlink, 1);
	b_close(&b);
}

static void test_large_directory(void **state)
{
	struct build b;
	char name[EROFS_NAME_LEN + 1];
	(void)state;

	b_open(&b);
	for (int i = 0; i < 400; i++) {
		/* lengths from 100 to 250 so that blocks end at varied points */
		size_t len = 100 + (size_t)(i * 37) % 151;
		char path[300];
		memset(name, 'a' + i % 26, len);
		snprintf(name, len + 1, "%03d", (i * 7919) % 400);
		name[3] = '-';
		name[len] = 0;
		snprintf(path, sizeof(path), "big/%s", name);
		b_file(&b, path, NULL, 0);
	}
	b_finish(&b, NULL);

	uint64_t big = lookup(&b, root_nid(&b), "big");
	struct dent *d = t_alloc(500 * sizeof(*d));
	size_t nblocks;
	size_t n = read_dir(&b, big, d, 500, &nblocks);
	assert_int_equal(n, 402);
	assert_true(nblocks >= 15);
	assert_string_equal(d[0].name, ".");
	assert_string_equal(d[1].name, "..");
	assert_int_equal(d[0].nid, big);
	assert_int_equal(d[1].nid, root_nid(&b));
	for (size_t i = 2; i < n; i++) {
		char want[24];
		snprintf(want, sizeof(want), "%03zu", i - 2);
		assert_memory_equal(d[i].name, want, 3);
		assert_int_equal(d[i].type, EROFS_FT_REG_FILE);
		struct dinode f = inode_at(&b, d[i].nid);
		assert_int_equal(f.mode, S_IFREG | 0644);
	}
	struct dinode bd = inode_at(&b, big);
	assert_int_equal(bd.nlink, 2);
	assert_true(bd.size > (nblocks - 1) * (uint64_t)BLK);
	t_free(d);
	b_close(&b);
}

static void test_compact_or_extended(void **state)
{
	static const struct {
		const char *name;
		int64_t mtime;
		uint32_t nsec, uid, gid;
		bool ext;
	} cases[] = {
		{ "compact", 1000, 0, 5, 65535, false },
		{ "big-uid", 1000, 0, 70000, 0, true },
		{ "big-gid", 1000, 0, 0, 65536, true },
		{ "other-mtime", 1001, 0, 0, 0, true },
		{ "nsec", 1000, 7, 0, 0, true },
		{ "before-epoch", -5, 0, 0, 0, true },
	};
	struct build b;
	(void)state;

	b_open(&b);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct el_entry e = ent(EL_ENTRY_REG, cases[i].name);
		e.mtime = cases[i].mtime;
		e.mtime_nsec = cases[i].nsec;
		e.uid = cases[i].uid;
		e.gid = cases[i].gid;
		b_add(&b, &e);
	}
	struct el_writer_opts o = { .has_epoch = true, .epoch = 1000 };
	b_finish(&b, &o);
	assert_int_equal(EL_LE_GET(sb(&b), epoch), 1000);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dinode d = inode_at(&b, lookup(&b, root_nid(&b), cases[i].name));
		assert_int_equal(d.ext, cases[i].ext);
		assert_int_equal(d.mtime, cases[i].mtime);
		assert_int_equal(d.nsec, cases[i].nsec);
		assert_int_equal(d.uid, cases[i].uid);
		assert_int_equal(d.gid, cases[i].gid);
		if (!d.ext)
			assert_int_equal(d.raw_mtime, 0);
	}
	/* the implicit root takes the epoch and stays compact */
	struct dinode r = inode_at(&b, root_nid(&b));
	assert_false(r.ext);
	b_close(&b);

	/* without an epoch, the most common whole-second mtime is chosen */
	b_open(&b);
	for (int i = 0; i < 5; i++) {
		char name[8];
		snprintf(name, sizeof(name), "f%d", i);
		struct el_entry e = ent(EL_ENTRY_REG, name);
		e.mtime = i < 3 ? 777 : 888 + i;
		b_add(&b, &e);
	}
	b_finish(&b, NULL);
	assert_int_equal(EL_LE_GET(sb(&b), epoch), 777);
	assert_false(inode_at(&b, lookup(&b, root_nid(&b), "f0")).ext);
	assert_true(inode_at(&b, lookup(&b, root_nid(&b), "f4")).ext);
	b_close(&b);
}

static uint32_t filter_bit(uint8_t index, const char *suffix)
{
	return 1u << (el_xxh32(suffix, strlen(suffix), EROFS_XATTR_FILTER_SEED + index) & 31);
}

static void test_shared_and_inline_xattrs(void **state)
{
	static const struct el_xattr_kv shared = { "user.shared", (const uint8_t *)"v", 1 };
	static const struct el_xattr_kv both[] = {
		{ "user.shared", (const uint8_t *)"v", 1 },
		{ "user.unique", (const uint8_t *)"u", 1 },
	};
	struct build b;
	(void)state;

	b_open(&b);
	for (int i = 0; i < 2; i++) {
		struct el_entry e = ent(EL_ENTRY_REG, i ? "s2" : "s1");
		e.xattrs = &shared;
		e.nxattrs = 1;
		b_add(&b, &e);
	}
	struct el_entry e = ent(EL_ENTRY_REG, "s3");
	e.xattrs = both;
	e.nxattrs = 2;
	b_add(&b, &e);
	b_file(&b, "plain", NULL, 0);
	b_finish(&b, NULL);

	const struct erofs_super_block *s = sb(&b);
	assert_int_equal(EL_LE_GET(s, feature_compat),
			 EROFS_FEATURE_COMPAT_SB_CHKSUM | EROFS_FEATURE_COMPAT_MTIME |
				 EROFS_FEATURE_COMPAT_XATTR_FILTER);
	uint32_t xblk = (uint32_t)EL_LE_GET(s, xattr_blkaddr);
	assert_int_not_equal(xblk, 0);
	assert_true(xblk > EL_LE_GET(s, meta_blkaddr));
	assert_int_equal(b.st.shared_xattrs, 1);
	/* the shared table: one entry, id 0 */
	const uint8_t *x = b.img + (size_t)xblk * BLK;
	assert_int_equal(x[0], 6);
	assert_int_equal(x[1], EROFS_XATTR_INDEX_USER);
	assert_int_equal(el_get_le16(x + 2), 1);
	assert_memory_equal(x + 4, "sharedv", 7);

	for (int i = 0; i < 3; i++) {
		static const char *const n[] = { "s1", "s2", "s3" };
		struct dinode d = inode_at(&b, lookup(&b, root_nid(&b), n[i]));
		const uint8_t *body = xattr_body(&b, &d);
		uint32_t want_filter = filter_bit(EROFS_XATTR_INDEX_USER, "shared");
		assert_int_equal(body[4], 1); /* h_shared_count */
		assert_int_equal(el_get_le32(body + 12), 0);
		if (i < 2) {
			assert_int_equal(d.icount, 2); /* header + one id */
		} else {
			/* plus "unique"="u" inline: 4 + 6 + 1, rounded to 12 */
			assert_int_equal(d.icount, 5);
			const uint8_t *ie = body + 16;
			assert_int_equal(ie[0], 6);
			assert_int_equal(ie[1], EROFS_XATTR_INDEX_USER);
			assert_int_equal(el_get_le16(ie + 2), 1);
			assert_memory_equal(ie + 4, "uniqueu", 7);
			assert_int_equal(ie[11], 0);
			want_filter |= filter_bit(EROFS_XATTR_INDEX_USER, "unique");
		}
		assert_int_equal(el_get_le32(body), ~want_filter);
	}
	assert_int_equal(inode_at(&b, lookup(&b, root_nid(&b), "plain")).icount, 0);
	b_close(&b);
}

static void test_overlay_markers(void **state)
{
	struct build b;
	(void)state;

	b_open(&b);
	struct el_entry e = ent(EL_ENTRY_REG, "d/.wh.gone");
	b_add(&b, &e);
	e = ent(EL_ENTRY_REG, "o/.wh..wh..opq");
	b_add(&b, &e);
	b_finish(&b, NULL);

	uint64_t dn = lookup(&b, root_nid(&b), "d");
	struct dinode w = inode_at(&b, lookup(&b, dn, "gone"));
	assert_int_equal(w.mode, S_IFCHR);
	assert_int_equal(w.u, 0);
	struct dent ents[4];
	assert_int_equal(read_dir(&b, dn, ents, 4, NULL), 3);
	assert_int_equal(ents[2].type, EROFS_FT_CHRDEV);
	/* "d" carries trusted.overlay.origin="", "o" trusted.overlay.opaque="y",
	 * inline (each is on one inode only) */
	struct dinode d = inode_at(&b, dn), o = inode_at(&b, lookup(&b, root_nid(&b), "o"));
	const uint8_t *xd = xattr_body(&b, &d) + 12, *xo = xattr_body(&b, &o) + 12;
	assert_int_equal(xd[1], EROFS_XATTR_INDEX_TRUSTED);
	assert_int_equal(el_get_le16(xd + 2), 0);
	assert_memory_equal(xd + 4, "overlay.origin", xd[0]);
	assert_int_equal(xo[1], EROFS_XATTR_INDEX_TRUSTED);
	assert_int_equal(el_get_le16(xo + 2), 1);
	assert_memory_equal(xo + 4, "overlay.opaquey", 15);
	assert_int_equal(o.nlink, 2);
	b_close(&b);
}

static void test_symlinks_and_devices(void **state)
{
	struct build b;
	char target[4081];
	(void)state;

	memset(target, 't', 4080);
	target[4080] = 0;
	b_open(&b);
	struct el_entry e = ent(EL_ENTRY_SYMLINK, "short");
	e.link = "a/b";
	b_add(&b, &e);
	e = ent(EL_ENTRY_SYMLINK, "long"); /* 32 + 4080 bytes do not fit a block */
	e.link = target;
	b_add(&b, &e);
	e = ent(EL_ENTRY_CHR, "chr");
	e.dev_major = 1;
	e.dev_minor = 0x12345;
	b_add(&b, &e);
	e = ent(EL_ENTRY_BLK, "blk");
	e.dev_major = 8;
	e.dev_minor = 1;
	b_add(&b, &e);
	e = ent(EL_ENTRY_FIFO, "fifo");
	b_add(&b, &e);
	b_finish(&b, NULL);

	struct dinode d = inode_at(&b, lookup(&b, root_nid(&b), "short"));
	size_t len;
	assert_int_equal(d.mode, S_IFLNK | 0644);
	assert_int_equal(d.size, 3);
	assert_int_equal(d.layout, EROFS_INODE_FLAT_INLINE);
	assert_memory_equal(data_block(&b, &d, 0, &len), "a/b", 3);
	assert_int_equal(len, 3);
	d = inode_at(&b, lookup(&b, root_nid(&b), "long"));
	assert_int_equal(d.size, 4080);
	assert_int_equal(d.layout, EROFS_INODE_FLAT_PLAIN);
	assert_true(d.u > EL_LE_GET(sb(&b), meta_blkaddr));
	assert_memory_equal(data_block(&b, &d, 0, &len), target, 4080);
	assert_int_equal(len, 4080);
	/* Linux new_encode_dev: minor low byte, major, then the minor's rest */
	d = inode_at(&b, lookup(&b, root_nid(&b), "chr"));
	assert_int_equal(d.mode, S_IFCHR | 0644);
	assert_int_equal(d.u, 0x45 | (1u << 8) | (0x123u << 20));
	d = inode_at(&b, lookup(&b, root_nid(&b), "blk"));
	assert_int_equal(d.mode, S_IFBLK | 0644);
	assert_int_equal(d.u, 0x801);
	d = inode_at(&b, lookup(&b, root_nid(&b), "fifo"));
	assert_int_equal(d.mode, S_IFIFO | 0644);
	assert_int_equal(d.size, 0);
	struct dent ents[8];
	static const uint8_t types[] = { EROFS_FT_DIR,	   EROFS_FT_DIR,     EROFS_FT_BLKDEV,
					 EROFS_FT_CHRDEV,  EROFS_FT_FIFO,    EROFS_FT_SYMLINK,
					 EROFS_FT_SYMLINK };
	assert_int_equal(read_dir(&b, root_nid(&b), ents, 8, NULL), 7);
	for (int i = 0; i < 7; i++)
		assert_int_equal(ents[i].type, types[i]);
	b_close(&b);
}

static void build_sample(struct build *b)
{
	static const struct el_xattr_kv kv[] = { { "user.k", (const uint8_t *)"val", 3 } };
	char name[64], data[3000];

	b_open(b);
	memset(data, 'q', sizeof(data));
	for (int i = 0; i < 60; i++) {
		snprintf(name, sizeof(name), "dir%d/file-%d", i % 4, i);
		struct el_entry e = ent(EL_ENTRY_REG, name);
		e.size = (uint64_t)i * 50;
		e.mtime = EPOCH + i % 3;
		e.xattrs = i % 5 ? NULL : kv;
		e.nxattrs = i % 5 ? 0 : 1;
		struct el_inode *ino = b_add(b, &e);
		assert_int_equal(el_writer_file_write(b->w, ino, data, e.size, 0, &b->err), 0);
	}
	struct el_entry l = ent(EL_ENTRY_SYMLINK, "dir1/link");
	l.link = "../dir2/file-2";
	b_add(b, &l);
	l = ent(EL_ENTRY_HARDLINK, "hard");
	l.link = "dir3/file-7";
	b_add(b, &l);
	b_finish(b, NULL);
}

static void test_reproducible(void **state)
{
	struct build a, c;
	(void)state;

	build_sample(&a);
	build_sample(&c);
	assert_int_equal(a.len, c.len);
	assert_memory_equal(a.img, c.img, a.len);
	/* and the hard link is one inode with two names */
	uint64_t d3 = lookup(&a, root_nid(&a), "dir3");
	assert_int_equal(lookup(&a, root_nid(&a), "hard"), lookup(&a, d3, "file-7"));
	assert_int_equal(inode_at(&a, lookup(&a, root_nid(&a), "hard")).nlink, 2);
	b_close(&a);
	b_close(&c);
}

static void test_file_write_errors(void **state)
{
	struct build b;
	(void)state;

	b_open(&b);
	struct el_entry e = ent(EL_ENTRY_REG, "f");
	e.size = 100;
	struct el_inode *ino = b_add(&b, &e);
	assert_int_equal(el_writer_file_write(b.w, ino, "x", 1, 100, &b.err), -EINVAL);
	el_error_clear(&b.err);
	assert_int_equal(el_writer_file_write(b.w, ino, "xy", 2, 99, &b.err), -EINVAL);
	el_error_clear(&b.err);
	assert_int_equal(el_writer_file_write(b.w, ino, "x", 1, UINT64_MAX, &b.err), -EINVAL);
	el_error_clear(&b.err);
	assert_int_equal(el_writer_file_write(b.w, ino, "x", 1, 99, &b.err), 0);
	b_finish(&b, NULL);
	b_close(&b);
}

/* writer.h: "pieces may come in any order; what is never written reads as
 * zeros". A piece written before the combining buffer's range must survive
 * a later piece whose gap is zero-filled in the buffer. */
static void test_file_write_any_order(void **state)
{
	struct build b;
	uint8_t x[1000], y[100], z[100];
	(void)state;

	memset(x, 'X', sizeof(x));
	memset(y, 'Y', sizeof(y));
	memset(z, 'Z', sizeof(z));
	b_open(&b);
	struct el_entry e = ent(EL_ENTRY_REG, "f");
	e.size = 10000;
	struct el_inode *ino = b_add(&b, &e);
	assert_int_equal(el_writer_file_write(b.w, ino, x, sizeof(x), 1000, &b.err), 0);
	assert_int_equal(el_writer_file_write(b.w, ino, y, sizeof(y), 0, &b.err), 0);
	assert_int_equal(el_writer_file_write(b.w, ino, z, sizeof(z), 3000, &b.err), 0);
	b_finish(&b, NULL);

	struct dinode f = inode_at(&b, lookup(&b, root_nid(&b), "f"));
	const uint8_t *d = b.img + (size_t)f.u * BLK;
	assert_int_equal(f.size, 10000);
	assert_memory_equal(d, y, sizeof(y));
	assert_memory_equal(d + 3000, z, sizeof(z));
	for (size_t i = 100; i < 1000; i++)
		assert_int_equal(d[i], 0);
	assert_memory_equal(d + 1000, x, sizeof(x));
	b_close(&b);
}

int main(void)
{
#define T(f) cmocka_unit_test_teardown(f, live_teardown)
	const struct CMUnitTest tests[] = {
		T(test_superblock_and_root),
		T(test_large_directory),
		T(test_compact_or_extended),
		T(test_shared_and_inline_xattrs),
		T(test_overlay_markers),
		T(test_symlinks_and_devices),
		T(test_reproducible),
		T(test_file_write_errors),
		T(test_file_write_any_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
