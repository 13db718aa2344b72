/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The EROFS writer. Image layout:
 *
 *   block 0            superblock at byte 1024, written last (checksummed)
 *   blocks 1..D-1      regular-file data in stream order, FLAT_PLAIN
 *   block D = meta     inodes (slot 0 unused, root first, then breadth-first
 *                      in name order), each with its xattrs and inline tail
 *   ...                shared xattr table (block-aligned)
 *   ...                directory and symlink blocks that are not inline
 *
 * meta_blkaddr = D keeps the root nid at 1 whatever the data size, so the
 * 16-bit root nid limit never bites. Every offset is planned before anything
 * is emitted, and the sink checks that what it emits lands where planned.
 */
#include "erofs-layer/writer.h"
#include "erofs-layer/verity.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "erofs_fs.h"
#include "common/endian.h"
#include "common/hash.h"
#include "common/io.h"
#include "common/macro.h"
#include "common/util.h"
#include "tree-internal.h"

#define BLK EROFS_BLKSIZ
#define WBUF_SIZE (1u << 20)
#define GAP_FILL_MAX (64u << 10)

struct el_writer {
	int fd;
	uint64_t next_blk; /* data allocation cursor */
	/* write combining of the data area: small files arrive back to back */
	uint8_t *wbuf;
	uint64_t wstart;
	size_t wlen;
	uint64_t high;	 /* no byte at or above this was ever written */
	uint64_t kicked; /* writeback was started for the data below this */
	uint64_t dropped; /* the page cache was told to drop the data below this */
	struct el_verity *verity; /* hashes every byte written, when asked */
};

/* Starts writeback of what was written so far, every WRITEBACK_STEP: the
 * final fsync then finds little left to do, and the disk works while we
 * convert instead of after. A hint only: errors surface at fsync. The call
 * blocks while the device's queue is full, so the steps are small: with
 * 64 MiB ones, a layer's Apply on a loop device took 1.51 s instead of
 * 1.35 s (and the same on a plain disk). */
#define WRITEBACK_STEP (16ull << 20)

/* Data two steps behind the writeback kick (written back by then, as a
 * rule) leaves the page cache: the writer never reads it again, the VM
 * that boots the layer reads a small part of it, and a conversion that
 * keeps every page takes fresh memory all the way. In a VM, fresh memory is
 * what the hypervisor faults in page by page: measured here, the sixth
 * 627 MB conversion in a row cost 1.5 s of system time instead of 0.25 s
 * without this, and its wall time went from 2.2 s to 3.1 s. Pages still
 * under writeback are skipped by the kernel; metadata, written last and
 * read again by merges and checks, stays. */

static void kick_writeback(struct el_writer *w)
{
	if (w->high - w->kicked < WRITEBACK_STEP)
		return;
	sync_file_range(w->fd, (off_t)w->kicked, (off_t)(w->high - w->kicked), SYNC_FILE_RANGE_WRITE);
	w->kicked = w->high;
	if (w->kicked - w->dropped >= 3 * WRITEBACK_STEP) {
		uint64_t upto = w->kicked - 2 * WRITEBACK_STEP;
		posix_fadvise(w->fd, (off_t)w->dropped, (off_t)(upto - w->dropped), POSIX_FADV_DONTNEED);
		w->dropped = upto;
	}
}

int el_writer_new(int fd, struct el_writer **ret)
{
	struct el_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->wbuf = malloc(WBUF_SIZE);
	if (!w->wbuf) {
		free(w);
		return -ENOMEM;
	}
	w->fd = fd;
	w->next_blk = 1;
	*ret = w;
	return 0;
}

void el_writer_free(struct el_writer *w)
{
	if (!w)
		return;
	el_verity_free(w->verity);
	free(w->wbuf);
	free(w);
}

int el_writer_verity(struct el_writer *w)
{
	if (w->verity)
		return 0;
	if (w->high)
		return -EINVAL;
	return el_verity_new(&w->verity);
}

/* Every byte of the image goes out through here. */
static int emit(int fd, struct el_verity *v, const void *buf, size_t len, uint64_t off,
		struct el_error *err)
{
	int r = el_pwrite_full(fd, buf, len, off);
	if (r < 0)
		return el_error_set(err, r, "image", off, "write failed: %s", strerror(-r));
	if (v && (r = el_verity_feed(v, off, buf, len)) < 0)
		return el_error_set(err, r, NULL, EL_NO_OFFSET, "out of memory");
	return 0;
}

static int wflush(struct el_writer *w, struct el_error *err)
{
	if (!w->wlen)
		return 0;
	int r = emit(w->fd, w->verity, w->wbuf, w->wlen, w->wstart, err);
	if (r < 0)
		return r;
	w->wlen = 0;
	kick_writeback(w);
	return 0;
}

int el_writer_file_begin(struct el_writer *w, struct el_inode *ino, struct el_error *err)
{
	uint64_t nblocks = EL_DIV_ROUND_UP(ino->size, (uint64_t)BLK);

	if (nblocks == 0) {
		ino->data = 0;
		return 0;
	}
	if (w->next_blk + nblocks > UINT32_MAX)
		return el_error_set(err, -EFBIG, NULL, EL_NO_OFFSET,
				    "image would exceed 2^32 blocks of 4 KiB");
	ino->data = w->next_blk;
	w->next_blk += nblocks;
	return 0;
}

int el_writer_file_write(struct el_writer *w, struct el_inode *ino, const void *buf,
			 size_t len, uint64_t off, struct el_error *err)
{
	uint64_t end;
	int r;

	if (el_add_overflow(off, (uint64_t)len, &end) || end > ino->size)
		return el_error_set(err, -EINVAL, NULL, EL_NO_OFFSET,
				    "file data past the end of the file");
	if (!len)
		return 0;
	uint64_t pos = ino->data * BLK + off;
	uint64_t wend = w->wstart + w->wlen;
	uint64_t high = w->high;

	w->high = EL_MAX(w->high, pos + len);
	/* Zero-filling a gap is safe only where nothing was written before:
	 * pieces may come out of order (the API allows it). */
	if (w->wlen && wend == high && pos >= wend && pos - wend <= GAP_FILL_MAX &&
	    pos + len - w->wstart <= WBUF_SIZE) {
		memset(w->wbuf + w->wlen, 0, (size_t)(pos - wend));
		memcpy(w->wbuf + (pos - w->wstart), buf, len);
		w->wlen = (size_t)(pos + len - w->wstart);
		return 0;
	}
	r = wflush(w, err);
	if (r < 0)
		return r;
	if (len >= WBUF_SIZE / 2) {
		r = emit(w->fd, w->verity, buf, len, pos, err);
		if (r < 0)
			return r;
		kick_writeback(w);
		return 0;
	}
	memcpy(w->wbuf, buf, len);
	w->wstart = pos;
	w->wlen = len;
	return 0;
}

/* ---- planning ---- */

struct plan {
	struct el_tree *tree;
	struct el_inode **order; /* inodes in nid order; order[0] is the root */
	size_t n, cap;
	struct el_xattr **shared;
	size_t nshared;
	uint64_t shared_bytes;
	int64_t epoch;
	uint32_t meta_blkaddr, xattr_blkaddr;
	const struct el_writer_opts *opts;
	uint32_t devt_blk;     /* first block of the device table (0: none) */
	uint64_t *uniaddr;     /* per device: first block in the unified space */
	uint64_t inode_bytes; /* of the nid area */
	uint64_t total_blocks;
	bool any_xattrs;
	bool verity; /* a hash tree follows the image: devices start after it */
};

static int order_push(struct plan *p, struct el_inode *ino)
{
	if (el_grow((void **)&p->order, &p->cap, p->n + 1, sizeof(*p->order)) < 0)
		return -ENOMEM;
	p->order[p->n++] = ino;
	ino->flags |= EL_INODE_PLANNED;
	return 0;
}

static int name_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	int c = memcmp(a, b, EL_MIN(al, bl));
	return c ? c : (al < bl ? -1 : al > bl);
}

static int dentry_cmp(const void *a, const void *b)
{
	const struct el_dentry *x = *(struct el_dentry *const *)a;
	const struct el_dentry *y = *(struct el_dentry *const *)b;
	return name_cmp(x->name, x->name_len, y->name, y->name_len);
}

static bool is_whiteout(const struct el_inode *ino)
{
	return S_ISCHR(ino->mode) && ino->data == 0;
}

/* Breadth-first from the root, children in byte order: the children of a
 * directory get consecutive nids, which keeps `ls -l` local. */
static int plan_order(struct plan *p)
{
	int r = order_push(p, p->tree->root);

	if (r < 0)
		return r;
	p->tree->root->dotdot = p->tree->root;
	for (size_t i = 0; i < p->n; i++) {
		struct el_inode *dir = p->order[i];
		if (!S_ISDIR(dir->mode))
			continue;
		dir->sorted = el_tree_alloc(p->tree, dir->nchildren * sizeof(*dir->sorted));
		if (!dir->sorted && dir->nchildren)
			return -ENOMEM;
		size_t k = 0;
		for (struct el_dentry *d = dir->children; d; d = d->sibling)
			if (d->inode) /* NULL: deleted by a whiteout (merge) */
				dir->sorted[k++] = d;
		qsort(dir->sorted, k, sizeof(*dir->sorted), dentry_cmp);
		dir->nchildren = (uint32_t)k;
		dir->nlink = 2;
		for (size_t j = 0; j < k; j++) {
			struct el_inode *c = dir->sorted[j]->inode;
			if (S_ISDIR(c->mode)) {
				dir->nlink++;
				c->dotdot = dir;
			} else {
				c->nlink++;
			}
			if (!(c->flags & EL_INODE_PLANNED)) {
				r = order_push(p, c);
				if (r < 0)
					return r;
			}
		}
	}
	return 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* The most common whole-second mtime: the most inodes can be compact. */
static int plan_epoch(struct plan *p, const struct el_writer_opts *opts)
{
	if (opts && opts->has_epoch) {
		p->epoch = opts->epoch;
	} else {
		int64_t *t = malloc((p->n + 1) * sizeof(*t));
		size_t m = 0;
		if (!t)
			return -ENOMEM;
		for (size_t i = 0; i < p->n; i++)
			if (!(p->order[i]->flags & EL_INODE_IMPLICIT) && !p->order[i]->mtime_nsec)
				t[m++] = p->order[i]->mtime;
		qsort(t, m, sizeof(*t), cmp_i64);
		p->epoch = 0;
		for (size_t i = 0, best = 0; i < m;) {
			size_t j = i;
			while (j < m && t[j] == t[i])
				j++;
			if (j - i > best) {
				best = j - i;
				p->epoch = t[i];
			}
			i = j;
		}
		free(t);
	}
	for (size_t i = 0; i < p->n; i++) {
		if (p->order[i]->flags & EL_INODE_IMPLICIT) {
			p->order[i]->mtime = p->epoch;
			p->order[i]->mtime_nsec = 0;
		}
	}
	return 0;
}

/* Overlay markers (docs/erofs-format.md): opaque dirs, and origin on dirs with whiteouts
 * so that overlayfs does not iterate them directly. */
static int plan_overlay_xattrs(struct plan *p)
{
	struct el_tree *t = p->tree;
	struct el_xattr *opaque = NULL, *origin = NULL;

	for (size_t i = 0; i < p->n; i++) {
		struct el_inode *dir = p->order[i];
		if (!S_ISDIR(dir->mode))
			continue;
		if (dir->flags & EL_INODE_OPAQUE) {
			if (!opaque)
				opaque = el_tree_intern_xattr(t, EROFS_XATTR_INDEX_TRUSTED,
							      "overlay.opaque", 14, "y", 1);
			if (!opaque || el_inode_set_xattr(t, dir, opaque) < 0)
				return -ENOMEM;
		}
		for (uint32_t j = 0; j < dir->nchildren; j++) {
			if (!is_whiteout(dir->sorted[j]->inode))
				continue;
			if (!origin)
				origin = el_tree_intern_xattr(t, EROFS_XATTR_INDEX_TRUSTED,
							      "overlay.origin", 14, "", 0);
			if (!origin || el_inode_set_xattr(t, dir, origin) < 0)
				return -ENOMEM;
			break;
		}
	}
	return 0;
}

static int xattr_ptr_cmp(const void *a, const void *b)
{
	return el_xattr_cmp(*(struct el_xattr *const *)a, *(struct el_xattr *const *)b);
}

/* An xattr carried by two inodes or more goes to the shared table once; the
 * inodes then hold a 4-byte id instead of the whole entry. */
static int plan_shared_xattrs(struct plan *p)
{
	size_t cand = 0;

	for (size_t i = 0; i < p->n; i++) {
		struct el_xattrs *xs = p->order[i]->xattrs;
		for (uint32_t j = 0; xs && j < xs->count; j++)
			if (xs->x[j]->refs++ == 1)
				cand++;
		if (xs && xs->count)
			p->any_xattrs = true;
	}
	if (!cand)
		return 0;
	p->shared = malloc(cand * sizeof(*p->shared));
	if (!p->shared)
		return -ENOMEM;
	for (size_t i = 0; i < p->n; i++) {
		struct el_xattrs *xs = p->order[i]->xattrs;
		for (uint32_t j = 0; xs && j < xs->count; j++) {
			struct el_xattr *x = xs->x[j];
			if (x->refs >= 2 && x->shared_id == UINT32_MAX) {
				x->shared_id = 0; /* mark: collected */
				p->shared[p->nshared++] = x;
			}
		}
	}
	if (p->nshared) /* qsort(NULL, 0) is undefined */
		qsort(p->shared, p->nshared, sizeof(*p->shared), xattr_ptr_cmp);
	for (size_t i = 0; i < p->nshared; i++) {
		p->shared[i]->shared_id = (uint32_t)(p->shared_bytes / 4);
		p->shared_bytes += el_xattr_entry_size(p->shared[i]);
	}
	if (p->shared_bytes / 4 > UINT32_MAX)
		return -EFBIG;
	return 0;
}

/* The entries of a directory in on-disk order: its children with "." and
 * ".." merged in byte order (names below '.' such as "-x" come first). */
struct dirent_it {
	const struct el_inode *dir;
	uint32_t next;
	bool dot, dotdot;
};

struct dirent_view {
	const char *name;
	unsigned len;
	const struct el_inode *ino;
};

static bool dirent_next(struct dirent_it *it, struct dirent_view *v)
{
	const struct el_dentry *c =
		it->next < it->dir->nchildren ? it->dir->sorted[it->next] : NULL;

	if (!it->dot && (!c || name_cmp(".", 1, c->name, c->name_len) < 0)) {
		it->dot = true;
		*v = (struct dirent_view){ ".", 1, it->dir };
		return true;
	}
	if (!it->dotdot && (!c || name_cmp("..", 2, c->name, c->name_len) < 0)) {
		it->dotdot = true;
		*v = (struct dirent_view){ "..", 2, it->dir->dotdot };
		return true;
	}
	if (!c)
		return false;
	it->next++;
	*v = (struct dirent_view){ c->name, c->name_len, c->inode };
	return true;
}

static uint64_t dir_size(const struct el_inode *dir)
{
	struct dirent_it it = { .dir = dir };
	struct dirent_view v;
	uint64_t full = 0;
	unsigned used = 0;

	while (dirent_next(&it, &v)) {
		unsigned need = (unsigned)sizeof(struct erofs_dirent) + v.len;
		if (used + need > BLK) {
			full++;
			used = 0;
		}
		used += need;
	}
	return full * BLK + used;
}

static unsigned inode_isize(const struct el_inode *ino)
{
	return ino->extended ? sizeof(struct erofs_inode_extended)
			     : sizeof(struct erofs_inode_compact);
}

/* Bytes after the inode's xattrs: the inline tail, or one chunk index,
 * aligned to its size in absolute position (§4.3; inodes are 32-aligned, so
 * only the xattr body can misalign it). */
static unsigned inode_tail_bytes(const struct el_inode *ino)
{
	if (ino->layout == EROFS_INODE_CHUNK_BASED)
		return (ino->xattr_size % 8 ? 4u : 0u) + (unsigned)sizeof(struct erofs_inode_chunk_index);
	return ino->inline_size;
}

static int plan_inodes(struct plan *p, struct el_error *err)
{
	for (size_t i = 0; i < p->n; i++) {
		struct el_inode *ino = p->order[i];
		struct el_xattrs *xs = ino->xattrs;

		ino->ino = (uint32_t)(i + 1);
		ino->xattr_size = 0;
		if (xs && xs->count) {
			uint64_t sz = sizeof(struct erofs_xattr_ibody_header);
			for (uint32_t j = 0; j < xs->count; j++)
				sz += xs->x[j]->shared_id != UINT32_MAX
					      ? 4u
					      : el_xattr_entry_size(xs->x[j]);
			if ((sz - 12) / 4 + 1 > UINT16_MAX)
				return el_error_set(err, -E2BIG, NULL, EL_NO_OFFSET,
						    "an inode carries %llu bytes of xattrs, more than EROFS can hold",
						    (unsigned long long)sz);
			ino->xattr_size = (uint32_t)sz;
		}
		if (S_ISDIR(ino->mode))
			ino->size = dir_size(ino);
		ino->extended = ino->mtime != p->epoch || ino->mtime_nsec != 0 ||
				ino->uid > UINT16_MAX || ino->gid > UINT16_MAX ||
				ino->nlink > UINT16_MAX || ino->size > UINT32_MAX;
		ino->layout = EROFS_INODE_FLAT_PLAIN;
		ino->inline_size = 0;
		ino->meta_nblocks = 0;
		if (S_ISREG(ino->mode) && ino->device && ino->size) {
			if (!p->opts || ino->device > p->opts->ndevices)
				return el_error_set(err, -EINVAL, NULL, EL_NO_OFFSET,
						    "internal error: file on unknown device %u",
						    ino->device);
			if (!p->opts->flat)
				ino->layout = EROFS_INODE_CHUNK_BASED;
		}
		if (S_ISDIR(ino->mode) || S_ISLNK(ino->mode)) {
			unsigned tail = (unsigned)(ino->size % BLK);
			uint64_t head = inode_isize(ino) + (uint64_t)ino->xattr_size;
			if (tail && head + tail <= BLK) {
				ino->layout = EROFS_INODE_FLAT_INLINE;
				ino->inline_size = (uint16_t)tail;
				ino->meta_nblocks = (uint32_t)(ino->size / BLK);
			} else {
				ino->meta_nblocks = (uint32_t)EL_DIV_ROUND_UP(ino->size, (uint64_t)BLK);
			}
		}
	}
	return 0;
}

static int plan_layout(struct plan *p, uint64_t data_end_blk, struct el_error *err)
{
	uint64_t pos = EROFS_SLOTSIZE; /* nid 0 stays unused */
	unsigned ndev = p->opts ? p->opts->ndevices : 0;

	if (ndev && !p->opts->flat) {
		p->devt_blk = (uint32_t)data_end_blk;
		data_end_blk += EL_DIV_ROUND_UP((uint64_t)ndev * sizeof(struct erofs_deviceslot),
						(uint64_t)BLK);
	}
	p->meta_blkaddr = (uint32_t)data_end_blk;
	for (size_t i = 0; i < p->n; i++) {
		struct el_inode *ino = p->order[i];
		uint64_t total = inode_isize(ino) + (uint64_t)ino->xattr_size + inode_tail_bytes(ino);
		pos = EL_ROUND_UP(pos, (uint64_t)EROFS_SLOTSIZE);
		/* an inode with its xattrs and inline tail stays inside one block */
		if (total <= BLK && pos % BLK + total > BLK)
			pos = EL_ROUND_UP(pos, (uint64_t)BLK);
		ino->nid = pos / EROFS_SLOTSIZE;
		pos += total;
	}
	p->inode_bytes = pos;
	uint64_t blk = data_end_blk + EL_DIV_ROUND_UP(pos, (uint64_t)BLK);
	if (p->nshared) {
		p->xattr_blkaddr = (uint32_t)blk;
		blk += EL_DIV_ROUND_UP(p->shared_bytes, (uint64_t)BLK);
	}
	for (size_t i = 0; i < p->n; i++) {
		struct el_inode *ino = p->order[i];
		ino->meta_blk = ino->meta_nblocks ? blk : 0;
		blk += ino->meta_nblocks;
	}
	if (blk > UINT32_MAX)
		return el_error_set(err, -EFBIG, NULL, EL_NO_OFFSET,
				    "image would exceed 2^32 blocks of 4 KiB");
	if (p->order[0]->nid > UINT16_MAX)
		return el_error_set(err, -EFBIG, NULL, EL_NO_OFFSET, "root nid out of range");
	p->total_blocks = blk;
	if (ndev) {
		p->uniaddr = calloc(ndev, sizeof(*p->uniaddr));
		if (!p->uniaddr)
			return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
		if (p->verity)
			blk += el_verity_tree_bytes(blk) / BLK;
		for (unsigned i = 0; i < ndev; i++) {
			p->uniaddr[i] = blk;
			blk += p->opts->devices[i].blocks;
		}
		/* slots hold 32-bit unified addresses; flat files 32-bit blocks */
		if (blk > UINT32_MAX)
			return el_error_set(err, -EFBIG, NULL, EL_NO_OFFSET,
					    "the image and its devices exceed 2^32 blocks of 4 KiB");
	}
	return 0;
}

/* ---- emitting ---- */

struct sink {
	int fd;
	struct el_verity *verity;
	uint8_t *buf;
	size_t len;
	uint64_t start; /* image offset of buf[0] */
	struct el_error *err;
};

static int sink_flush(struct sink *s)
{
	if (!s->len)
		return 0;
	int r = emit(s->fd, s->verity, s->buf, s->len, s->start, s->err);
	if (r < 0)
		return r;
	s->start += s->len;
	s->len = 0;
	return 0;
}

static int sink_write(struct sink *s, const void *data, size_t len)
{
	while (len) {
		size_t k = EL_MIN(len, (size_t)WBUF_SIZE - s->len);
		if (data)
			memcpy(s->buf + s->len, data, k);
		else
			memset(s->buf + s->len, 0, k);
		s->len += k;
		len -= k;
		if (data)
			data = (const uint8_t *)data + k;
		if (s->len == WBUF_SIZE) {
			int r = sink_flush(s);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static uint64_t sink_pos(const struct sink *s)
{
	return s->start + s->len;
}

/* Pads up to a planned offset; landing past it is a planner bug. */
static int sink_seek(struct sink *s, uint64_t off)
{
	if (sink_pos(s) > off)
		return el_error_set(s->err, -EFAULT, "image", off,
				    "internal error: emitted %llu bytes past the planned offset",
				    (unsigned long long)(sink_pos(s) - off));
	return sink_write(s, NULL, off - sink_pos(s));
}


/* The whole content of a directory, block by block (§5.1). */
static uint8_t *build_dir(const struct el_inode *dir)
{
	uint8_t *buf = calloc(1, (size_t)EL_ROUND_UP(dir->size, (uint64_t)BLK));
	struct dirent_it it = { .dir = dir }, blk_it;
	struct dirent_view v;
	uint64_t blk = 0;

	if (!buf)
		return NULL;
	for (bool more = true; more;) {
		/* find how many entries fit in this block */
		blk_it = it;
		unsigned used = 0, count = 0;
		while (true) {
			struct dirent_it peek = it;
			if (!dirent_next(&peek, &v)) {
				more = false;
				break;
			}
			unsigned need = (unsigned)sizeof(struct erofs_dirent) + v.len;
			if (used + need > BLK)
				break;
			used += need;
			count++;
			it = peek;
		}
		if (!count)
			break;
		uint8_t *b = buf + blk * BLK;
		unsigned nameoff = count * (unsigned)sizeof(struct erofs_dirent);
		for (unsigned k = 0; k < count; k++) {
			dirent_next(&blk_it, &v);
			struct erofs_dirent *de = (struct erofs_dirent *)(b + k * sizeof(*de));
			EL_LE_PUT(de, nid, v.ino->nid);
			EL_LE_PUT(de, nameoff, nameoff);
			de->file_type = erofs_ftype_of_mode(v.ino->mode);
			memcpy(b + nameoff, v.name, v.len);
			nameoff += v.len;
		}
		blk++;
	}
	return buf;
}

static unsigned chunk_bits(uint64_t size)
{
	unsigned bits = EROFS_BLKSIZBITS;
	while (bits < EROFS_BLKSIZBITS + 31 && (1ull << bits) < size)
		bits++;
	return bits;
}

static uint32_t inode_i_u(const struct plan *p, const struct el_inode *ino)
{
	switch (ino->mode & S_IFMT) {
	case S_IFREG:
		if (ino->layout == EROFS_INODE_CHUNK_BASED)
			return EROFS_CHUNK_FORMAT_INDEXES | (chunk_bits(ino->size) - EROFS_BLKSIZBITS);
		if (ino->device && ino->size)
			return (uint32_t)(p->uniaddr[ino->device - 1] + ino->data);
		return (uint32_t)ino->data;
	case S_IFCHR:
	case S_IFBLK:
		return (uint32_t)ino->data;
	case S_IFDIR:
	case S_IFLNK:
		return (uint32_t)ino->meta_blk;
	}
	return 0;
}

static int emit_inode(struct sink *s, const struct plan *p, const struct el_inode *ino,
		      const uint8_t *dirbuf)
{
	union {
		struct erofs_inode_compact c;
		struct erofs_inode_extended e;
		uint8_t raw[64];
	} u = { 0 };
	unsigned icount = ino->xattr_size ? (ino->xattr_size - 12) / 4 + 1 : 0;
	int r;

	if (ino->extended) {
		struct erofs_inode_extended *e = &u.e;
		EL_LE_PUT(e, i_format, erofs_i_format(EROFS_INODE_LAYOUT_EXTENDED, ino->layout));
		EL_LE_PUT(e, i_xattr_icount, icount);
		EL_LE_PUT(e, i_mode, ino->mode);
		EL_LE_PUT(e, i_size, ino->size);
		EL_LE_PUT(e, i_u, inode_i_u(p, ino));
		EL_LE_PUT(e, i_ino, ino->ino);
		EL_LE_PUT(e, i_uid, ino->uid);
		EL_LE_PUT(e, i_gid, ino->gid);
		EL_LE_PUT(e, i_mtime, (uint64_t)ino->mtime);
		EL_LE_PUT(e, i_mtime_nsec, ino->mtime_nsec);
		EL_LE_PUT(e, i_nlink, ino->nlink);
	} else {
		struct erofs_inode_compact *c = &u.c;
		EL_LE_PUT(c, i_format, erofs_i_format(EROFS_INODE_LAYOUT_COMPACT, ino->layout));
		EL_LE_PUT(c, i_xattr_icount, icount);
		EL_LE_PUT(c, i_mode, ino->mode);
		EL_LE_PUT(c, i_nb, ino->nlink);
		EL_LE_PUT(c, i_size, ino->size);
		EL_LE_PUT(c, i_mtime, 0); /* mtime == epoch */
		EL_LE_PUT(c, i_u, inode_i_u(p, ino));
		EL_LE_PUT(c, i_ino, ino->ino);
		EL_LE_PUT(c, i_uid, ino->uid);
		EL_LE_PUT(c, i_gid, ino->gid);
	}
	r = sink_write(s, u.raw, inode_isize(ino));
	if (r < 0)
		return r;

	if (ino->xattr_size) {
		const struct el_xattrs *xs = ino->xattrs;
		struct erofs_xattr_ibody_header h = { 0 };
		uint32_t filter = 0;
		uint8_t nshared = 0;
		for (uint32_t j = 0; j < xs->count; j++) {
			const struct el_xattr *x = xs->x[j];
			filter |= 1u << (el_xxh32(x->data, x->name_len,
						  EROFS_XATTR_FILTER_SEED + x->index) &
					 (EROFS_XATTR_FILTER_BITS - 1));
			if (x->shared_id != UINT32_MAX)
				nshared++;
		}
		EL_LE_PUT(&h, h_name_filter, ~filter);
		h.h_shared_count = nshared;
		r = sink_write(s, &h, sizeof(h));
		for (uint32_t j = 0; r == 0 && j < xs->count; j++) {
			uint8_t id[4];
			if (xs->x[j]->shared_id == UINT32_MAX)
				continue;
			el_put_le32(id, xs->x[j]->shared_id);
			r = sink_write(s, id, 4);
		}
		for (uint32_t j = 0; r == 0 && j < xs->count; j++) {
			const struct el_xattr *x = xs->x[j];
			if (x->shared_id != UINT32_MAX)
				continue;
			struct erofs_xattr_entry xe = { .e_name_len = x->name_len,
							.e_name_index = x->index };
			EL_LE_PUT(&xe, e_value_size, x->value_len);
			unsigned sz = el_xattr_entry_size(x);
			r = sink_write(s, &xe, sizeof(xe));
			if (!r)
				r = sink_write(s, x->data, (size_t)x->name_len + x->value_len);
			if (!r)
				r = sink_write(s, NULL, sz - 4u - x->name_len - x->value_len);
		}
		if (r < 0)
			return r;
	}
	if (ino->inline_size) {
		const uint8_t *src = S_ISDIR(ino->mode) ? dirbuf : (const uint8_t *)ino->symlink;
		r = sink_write(s, src + (ino->size - ino->inline_size), ino->inline_size);
		if (r < 0)
			return r;
	}
	if (ino->layout == EROFS_INODE_CHUNK_BASED) {
		/* one chunk covers the whole file: 8 bytes of index per file */
		struct erofs_inode_chunk_index ci = { 0 };
		EL_LE_PUT(&ci, device_id, ino->device);
		EL_LE_PUT(&ci, startblk_lo, ino->data);
		r = sink_write(s, NULL, inode_tail_bytes(ino) - sizeof(ci));
		if (!r)
			r = sink_write(s, &ci, sizeof(ci));
		if (r < 0)
			return r;
	}
	return 0;
}

static int emit_metadata(struct plan *p, int fd, struct el_verity *v, struct el_error *err)
{
	struct sink s = { .fd = fd, .verity = v, .err = err };
	uint64_t base = (uint64_t)p->meta_blkaddr * BLK;
	int r = 0;

	s.buf = malloc(WBUF_SIZE);
	if (!s.buf)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	s.start = base;
	if (p->devt_blk) {
		/* the device table, before the nid area */
		s.start = (uint64_t)p->devt_blk * BLK;
		for (unsigned i = 0; r == 0 && i < p->opts->ndevices; i++) {
			struct erofs_deviceslot slot = { 0 };
			const struct el_writer_device *d = &p->opts->devices[i];
			memcpy(slot.tag, d->tag, strnlen(d->tag, sizeof(slot.tag)));
			EL_LE_PUT(&slot, blocks_lo, d->blocks);
			EL_LE_PUT(&slot, uniaddr_lo, p->uniaddr[i]);
			r = sink_write(&s, &slot, sizeof(slot));
		}
	}

	/* inodes, with xattrs and inline tails */
	for (size_t i = 0; r == 0 && i < p->n; i++) {
		struct el_inode *ino = p->order[i];
		uint8_t *dirbuf = NULL;
		if (S_ISDIR(ino->mode) && ino->inline_size) {
			dirbuf = build_dir(ino);
			if (!dirbuf) {
				r = el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
				break;
			}
		}
		r = sink_seek(&s, base + ino->nid * EROFS_SLOTSIZE);
		if (!r)
			r = emit_inode(&s, p, ino, dirbuf);
		free(dirbuf);
	}
	/* shared xattrs */
	if (!r && p->nshared) {
		r = sink_seek(&s, (uint64_t)p->xattr_blkaddr * BLK);
		for (size_t i = 0; r == 0 && i < p->nshared; i++) {
			const struct el_xattr *x = p->shared[i];
			struct erofs_xattr_entry xe = { .e_name_len = x->name_len,
							.e_name_index = x->index };
			EL_LE_PUT(&xe, e_value_size, x->value_len);
			r = sink_write(&s, &xe, sizeof(xe));
			if (!r)
				r = sink_write(&s, x->data, (size_t)x->name_len + x->value_len);
			if (!r)
				r = sink_write(&s, NULL,
					       el_xattr_entry_size(x) - 4u - x->name_len - x->value_len);
		}
	}
	/* directory and symlink blocks */
	for (size_t i = 0; r == 0 && i < p->n; i++) {
		struct el_inode *ino = p->order[i];
		if (!ino->meta_nblocks)
			continue;
		r = sink_seek(&s, ino->meta_blk * BLK);
		if (r)
			break;
		size_t len = (size_t)ino->meta_nblocks * BLK;
		if (S_ISDIR(ino->mode)) {
			uint8_t *dirbuf = build_dir(ino);
			if (!dirbuf) {
				r = el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
				break;
			}
			r = sink_write(&s, dirbuf, len);
			free(dirbuf);
		} else {
			size_t have = (size_t)EL_MIN(ino->size, (uint64_t)len);
			r = sink_write(&s, ino->symlink, have);
			if (!r)
				r = sink_write(&s, NULL, len - have);
		}
	}
	if (!r)
		r = sink_seek(&s, p->total_blocks * BLK);
	if (!r)
		r = sink_flush(&s);
	free(s.buf);
	return r;
}

static int emit_superblock(struct plan *p, int fd, struct el_verity *v,
			   const struct el_writer_opts *opts, struct el_error *err)
{
	uint8_t blk0[BLK] = { 0 };
	struct erofs_super_block *sb = (struct erofs_super_block *)(blk0 + EROFS_SUPER_OFFSET);
	uint32_t compat = EROFS_FEATURE_COMPAT_SB_CHKSUM | EROFS_FEATURE_COMPAT_MTIME;

	if (p->any_xattrs)
		compat |= EROFS_FEATURE_COMPAT_XATTR_FILTER;
	EL_LE_PUT(sb, magic, EROFS_SUPER_MAGIC_V1);
	EL_LE_PUT(sb, feature_compat, compat);
	sb->blkszbits = EROFS_BLKSIZBITS;
	EL_LE_PUT(sb, rootnid_2b, p->order[0]->nid);
	EL_LE_PUT(sb, inos, p->n);
	EL_LE_PUT(sb, epoch, (uint64_t)p->epoch);
	EL_LE_PUT(sb, blocks_lo, p->total_blocks);
	EL_LE_PUT(sb, meta_blkaddr, p->meta_blkaddr);
	EL_LE_PUT(sb, xattr_blkaddr, p->xattr_blkaddr);
	if (opts && opts->has_uuid)
		memcpy(sb->uuid, opts->uuid, 16);
	if (p->devt_blk) {
		EL_LE_PUT(sb, feature_incompat,
			  EROFS_FEATURE_INCOMPAT_DEVICE_TABLE | EROFS_FEATURE_INCOMPAT_CHUNKED_FILE);
		EL_LE_PUT(sb, extra_devices, p->opts->ndevices);
		EL_LE_PUT(sb, devt_slotoff, (uint64_t)p->devt_blk * BLK / sizeof(struct erofs_deviceslot));
	}
	uint32_t crc = el_crc32c_update(0xFFFFFFFFu, blk0 + EROFS_SUPER_OFFSET,
					BLK - EROFS_SUPER_OFFSET);
	EL_LE_PUT(sb, checksum, crc);
	return emit(fd, v, blk0, BLK, 0, err);
}

int el_writer_finish(struct el_writer *w, struct el_tree *tree,
		     const struct el_writer_opts *opts, struct el_writer_stats *ret_stats,
		     struct el_error *err)
{
	struct plan p = { .tree = tree, .opts = opts, .verity = w->verity != NULL };
	int r;

	r = wflush(w, err);
	if (r < 0)
		return r;
	if ((r = plan_order(&p)) < 0 || (r = plan_epoch(&p, opts)) < 0 ||
	    (r = plan_overlay_xattrs(&p)) < 0 || (r = plan_shared_xattrs(&p)) < 0) {
		el_error_set(err, r, NULL, EL_NO_OFFSET, "cannot plan the image: %s", strerror(-r));
		goto out;
	}
	if ((r = plan_inodes(&p, err)) < 0 || (r = plan_layout(&p, w->next_blk, err)) < 0)
		goto out;
	r = emit_metadata(&p, w->fd, w->verity, err);
	if (r < 0)
		goto out;
	if (ftruncate(w->fd, (off_t)(p.total_blocks * BLK)) < 0) {
		r = el_error_set(err, -errno, "image", p.total_blocks * BLK,
				 "cannot size the image: %m");
		goto out;
	}
	r = emit_superblock(&p, w->fd, w->verity, opts, err);
	if (r < 0)
		goto out;
	struct el_verity_info vinfo = { 0 };
	if (w->verity) {
		r = el_verity_finish(w->verity, w->fd, p.total_blocks * BLK, NULL, &vinfo, err);
		if (r < 0)
			goto out;
	}
	if (ret_stats)
		*ret_stats = (struct el_writer_stats){
			.verity = w->verity != NULL,
			.verity_info = vinfo,
			.file_bytes = w->verity ? vinfo.file_bytes : p.total_blocks * BLK,
			.inodes = p.n,
			.image_bytes = p.total_blocks * BLK,
			.data_blocks = w->next_blk - 1,
			.meta_bytes = (p.total_blocks - p.meta_blkaddr) * BLK,
			.shared_xattrs = p.nshared,
			.uniaddr_first = p.uniaddr ? p.uniaddr[0] : 0,
		};
out:
	free(p.order);
	free(p.shared);
	free(p.uniaddr);
	return r;
}
