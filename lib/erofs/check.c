/* SPDX-License-Identifier: Apache-2.0 */
/*
 * el_image_check: a full walk of an EROFS image from its root, checking what
 * the kernel would trip over and what a correct writer must guarantee. §
 * numbers: docs/erofs-format.md.
 *
 * Superblock: magic, block size, dirblkbits, incompat bits (at open), the
 * checksum when SB_CHKSUM is set, no compression configs or long xattr
 * prefixes (which the kernel parses at mount and we cannot vouch for),
 * blocks_lo against the file size, the device table clear of the superblock,
 * inos against the inodes found.
 * Inodes: i_format (bits 4-15 clear, known layout), i_nb of extended inodes
 * clear (6.15+ kernels read it as start block bits), layout allowed for the
 * type, sizes (devices/fifos/sockets 0, symlinks 1..4095), nanoseconds below
 * 10^9, inode + xattrs inside the image, data blocks (whole ones, as the
 * kernel reads blocks) inside the image, or inside the device slot a chunk
 * index names, or inside a slot's unified range; inline tail within one
 * block, chunk index arrays inside the image.
 * Xattrs: icount != 1, entries in bounds, shared ids in bounds, known name
 * indexes (1..6; 0, how mkfs 1.9.3 stores names with unknown prefixes, is
 * tolerated), no NUL in names, non-empty names, and with compat XATTR_FILTER
 * a name filter that hides none of the inode's names.
 * Directories: nameoff0 a multiple of 12 in [12, blksz), names of 1..255
 * bytes with no '/' or NUL, a NUL after each block's last name when the
 * block is stored whole, strict memcmp order across the whole directory,
 * one "." to itself and one ".." to the parent, file types matching the
 * target inodes, no directory reached twice (no hard links to directories,
 * no cycles), nlink = 2 + subdirectories; other inodes: nlink = number of
 * dirents naming them.
 *
 * The walk is iterative (explicit stack), and every inode is validated once,
 * so the work is bounded by the image size whatever its contents.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "erofs/image-internal.h"
#include "common/endian.h"
#include "common/hash.h"
#include "common/hashtab.h"
#include "common/util.h"

#define SYMLINK_MAX 4095u
#define CHUNK_BATCH 4096u /* bytes of chunk indexes read at a time */

/* ---- a set of nids with link counts ---- */

struct nid_entry {
	struct el_hnode_u64 nid; /* key: the nid */
	uint64_t inode_off;
	uint32_t nlink; /* as stored in the inode */
	uint32_t seen;  /* dirents naming it so far */
	bool dir;
};

/* The entries, allocated a block at a time: one per inode of the image. */
struct nid_block {
	struct nid_block *next;
	size_t used;
	struct nid_entry e[1024];
};

struct nid_table {
	struct el_hashtab tab;
	struct nid_block *blocks;
};

static struct nid_entry *nid_find(const struct nid_table *t, uint64_t nid)
{
	struct el_hnode_u64 *n = el_hashtab_find_u64(&t->tab, nid);

	return n ? el_hashtab_entry(n, struct nid_entry, nid) : NULL;
}

/* Inserts nid, which must be absent; returns the new entry or NULL. */
static struct nid_entry *nid_insert(struct nid_table *t, uint64_t nid)
{
	struct nid_block *b = t->blocks;
	struct nid_entry *e;

	if (!b || b->used == EL_ARRAY_SIZE(b->e)) {
		b = malloc(sizeof(*b));
		if (!b)
			return NULL;
		b->next = t->blocks;
		b->used = 0;
		t->blocks = b;
	}
	e = &b->e[b->used];
	*e = (struct nid_entry){ 0 };
	if (el_hashtab_insert_u64(&t->tab, &e->nid, nid) < 0)
		return NULL;
	b->used++;
	return e;
}

static void nid_table_free(struct nid_table *t)
{
	for (struct nid_block *b = t->blocks, *next; b; b = next) {
		next = b->next;
		free(b);
	}
	el_hashtab_destroy(&t->tab);
}

/* ---- the walk ---- */

struct dir_todo {
	uint64_t nid;
	uint64_t parent;
};

struct checker {
	struct el_image *img;
	struct el_error *err;
	struct el_check_stats stats;
	struct nid_table nids;
	struct dir_todo *stack;
	size_t depth, stack_cap;
	/* xattr pass of the inode under validation */
	const struct el_image_inode *ino;
	uint32_t name_filter;
	bool use_filter;
};

static int oom(struct checker *c)
{
	return el_error_set(c->err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
}

static int push_dir(struct checker *c, uint64_t nid, uint64_t parent)
{
	if (el_grow((void **)&c->stack, &c->stack_cap, c->depth + 1, sizeof(*c->stack)) < 0)
		return oom(c);
	c->stack[c->depth++] = (struct dir_todo){ .nid = nid, .parent = parent };
	return 0;
}

static int namecmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int r = memcmp(a, b, EL_MIN(alen, blen));

	if (r)
		return r;
	return alen < blen ? -1 : alen > blen;
}

/*
 * Device-0 data must be in this image or, with unified addressing (§8.2),
 * wholly inside one slot's range. The kernel reads whole blocks, so the
 * last block of a range must be complete too (§4.1 zero padding).
 */
static bool primary_range_ok(const struct el_image *img, uint64_t phys, uint64_t len)
{
	uint64_t nblk = EL_DIV_ROUND_UP(len, (uint64_t)img->blksz);

	if (el_image_in_bounds(img, phys, nblk << img->blkszbits))
		return true;
	return el_image_unified_device(img, phys >> img->blkszbits, nblk) >= 0;
}

static int check_chunks(struct checker *c, const struct el_image_inode *ino)
{
	struct el_image *img = c->img;
	uint8_t buf[CHUNK_BATCH];
	uint64_t pos, nchunks, bytes;
	unsigned unit, chunkbits;
	int r;

	r = el_image_chunk_array(img, ino, &pos, &unit, &chunkbits, c->err);
	if (r < 0)
		return r;
	nchunks = ino->size ? ((ino->size - 1) >> chunkbits) + 1 : 0;
	/* nchunks < 2^55 and unit <= 8: no overflow. The array must be in the
	 * image, which bounds the loop below by the image size. */
	bytes = nchunks * unit;
	if (!el_image_in_bounds(img, pos, bytes))
		return el_image_corrupt(c->err, pos,
					"inode %llu: %llu chunk entries run past the end of the image",
					(unsigned long long)ino->nid,
					(unsigned long long)nchunks);

	for (uint64_t done = 0; done < bytes;) {
		size_t n = (size_t)EL_MIN(bytes - done, (uint64_t)CHUNK_BATCH);

		r = el_image_read_at(img, buf, n, pos + done, c->err);
		if (r < 0)
			return r;
		for (size_t o = 0; o < n; o += unit) {
			uint64_t chunknr = (done + o) / unit;
			uint64_t logical = chunknr << chunkbits;
			uint64_t len = EL_MIN(ino->size - logical, (uint64_t)1 << chunkbits);
			uint64_t eoff = pos + done + o, phys, nblk;
			unsigned dev = 0, hi = 0;
			uint32_t blk;

			if (unit == sizeof(uint32_t)) {
				blk = el_get_le32(buf + o);
			} else {
				const struct erofs_inode_chunk_index *ci = (const void *)(buf + o);

				hi = EL_LE_GET(ci, startblk_hi);
				dev = EL_LE_GET(ci, device_id);
				blk = EL_LE_GET(ci, startblk_lo);
			}
			if (hi)
				return el_image_corrupt(c->err, eoff,
							"inode %llu: chunk %llu has startblk_hi %u without 48-bit addressing",
							(unsigned long long)ino->nid,
							(unsigned long long)chunknr, hi);
			if (dev > img->ndevs)
				return el_image_corrupt(c->err, eoff,
							"inode %llu: chunk %llu names device %u of %zu",
							(unsigned long long)ino->nid,
							(unsigned long long)chunknr, dev, img->ndevs);
			if (blk == EROFS_NULL_ADDR)
				continue;
			phys = (uint64_t)blk << img->blkszbits;
			nblk = EL_DIV_ROUND_UP(len, (uint64_t)img->blksz);
			/* Leniency: erofs-utils 1.5 --blobdev leaves a slot's
			 * block count at 0 (unknown); only a known count can
			 * bound the chunk. */
			if (!dev) {
				if (!primary_range_ok(img, phys, len))
					return el_image_corrupt(c->err, eoff,
								"inode %llu: chunk %llu at block %u lies outside the image",
								(unsigned long long)ino->nid,
								(unsigned long long)chunknr, blk);
			} else if (img->devs[dev - 1].blocks &&
				   (uint64_t)blk + nblk > img->devs[dev - 1].blocks) {
				return el_image_corrupt(c->err, eoff,
							"inode %llu: chunk %llu at block %u runs past the %llu blocks of device %u",
							(unsigned long long)ino->nid,
							(unsigned long long)chunknr, blk,
							(unsigned long long)img->devs[dev - 1].blocks,
							dev);
			}
		}
		done += n;
	}
	return 0;
}

static int check_data(struct checker *c, const struct el_image_inode *ino)
{
	struct el_image *img = c->img;
	struct el_image_extent ext;
	uint64_t phys;
	int r;

	switch (ino->datalayout) {
	case EROFS_INODE_FLAT_PLAIN:
		if (!ino->size)
			return 0;
		/* §3.4: kernels before 6.15 would read block 0xFFFFFFFF. */
		if (ino->raw_u == EROFS_NULL_ADDR)
			return el_image_corrupt(c->err, ino->inode_off,
						"inode %llu: FLAT_PLAIN data of %llu bytes at the NULL block",
						(unsigned long long)ino->nid,
						(unsigned long long)ino->size);
		phys = (uint64_t)ino->raw_u << img->blkszbits;
		if (!primary_range_ok(img, phys, ino->size))
			return el_image_corrupt(c->err, ino->inode_off,
						"inode %llu: %llu bytes of data at block %u lie outside the image",
						(unsigned long long)ino->nid,
						(unsigned long long)ino->size, ino->raw_u);
		return 0;
	case EROFS_INODE_FLAT_INLINE:
		if (!ino->size)
			return 0;
		/* Mapping the last byte checks that the tail stays in its block. */
		r = el_image_map(img, ino, ino->size - 1, &ext, c->err);
		if (r < 0)
			return r;
		if (!el_image_in_bounds(img, ext.physical, ext.length))
			return el_image_corrupt(c->err, ext.physical,
						"inode %llu: inline data runs past the end of the image",
						(unsigned long long)ino->nid);
		if (ext.logical) {
			phys = (uint64_t)ino->raw_u << img->blkszbits;
			if (ino->raw_u == EROFS_NULL_ADDR ||
			    !primary_range_ok(img, phys, ext.logical))
				return el_image_corrupt(c->err, ino->inode_off,
							"inode %llu: %llu bytes of data at block %u lie outside the image",
							(unsigned long long)ino->nid,
							(unsigned long long)ext.logical, ino->raw_u);
		}
		return 0;
	case EROFS_INODE_CHUNK_BASED:
		return check_chunks(c, ino);
	default:
		return el_error_set(c->err, -EOPNOTSUPP, EL_IMAGE_WHAT, ino->inode_off,
				    "inode %llu: compressed data (layout %u) is not supported",
				    (unsigned long long)ino->nid, ino->datalayout);
	}
}

static int check_one_xattr(void *ud, const struct el_image_xattr *xa)
{
	struct checker *c = ud;
	const char *suffix = xa->name + xa->prefix_len;
	size_t slen = strlen(suffix);
	unsigned idx = xa->name_index;

	switch (idx) {
	case 0:
		/* Leniency: mkfs 1.9.3 stores names with an unknown prefix
		 * whole, under index 0 (§6.1); the kernel ignores them. */
		if (!slen)
			return el_image_corrupt(c->err, xa->offset, "xattr with an empty name");
		break;
	case EROFS_XATTR_INDEX_POSIX_ACL_ACCESS:
	case EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT:
		if (slen)
			return el_image_corrupt(c->err, xa->offset,
						"POSIX ACL xattr \"%s\" has a name suffix", xa->name);
		break;
	case EROFS_XATTR_INDEX_USER:
	case EROFS_XATTR_INDEX_TRUSTED:
	case EROFS_XATTR_INDEX_LUSTRE:
	case EROFS_XATTR_INDEX_SECURITY:
		if (!slen)
			return el_image_corrupt(c->err, xa->offset,
						"xattr \"%s\" has an empty name after its prefix",
						xa->name);
		break;
	default:
		return el_image_corrupt(c->err, xa->offset, "xattr with unknown name index %u",
					idx);
	}
	/* §6.1: a set bit means "no such name here"; the kernel then answers
	 * ENODATA without looking, so a set bit for a present name hides it. */
	if (c->use_filter && idx) {
		uint32_t bit = el_xxh32(suffix, slen, EROFS_XATTR_FILTER_SEED + idx) &
			       (EROFS_XATTR_FILTER_BITS - 1);

		if (c->name_filter & (1u << bit))
			return el_image_corrupt(c->err, xa->offset,
						"inode %llu: the xattr name filter hides \"%s\"",
						(unsigned long long)c->ino->nid, xa->name);
	}
	c->stats.xattrs++;
	return 0;
}

static int check_xattrs(struct checker *c, const struct el_image_inode *ino)
{
	struct el_image *img = c->img;
	int r;

	if (!ino->xattr_icount)
		return 0;
	c->ino = ino;
	c->use_filter = (img->info.feature_compat & EROFS_FEATURE_COMPAT_XATTR_FILTER) &&
			!img->xattr_filter_reserved;
	if (c->use_filter) {
		uint8_t hdr[sizeof(struct erofs_xattr_ibody_header)];

		r = el_image_read_at(img, hdr, sizeof(hdr), ino->inode_off + ino->inode_isize,
				     c->err);
		if (r < 0)
			return r;
		c->name_filter = el_get_le32(hdr);
	}
	return el_image_xattrs(img, ino, check_one_xattr, c, c->err);
}

/* Checks everything about one inode that does not depend on who names it;
 * called once per inode. */
static int check_inode(struct checker *c, const struct el_image_inode *ino)
{
	unsigned layout = ino->datalayout;
	bool ok;
	int r;

	switch (ino->mode & S_IFMT) {
	case S_IFREG:
		c->stats.files++;
		/* Sparse chunk-based files can be huge: saturate. */
		if (el_add_overflow(c->stats.bytes, ino->size, &c->stats.bytes))
			c->stats.bytes = UINT64_MAX;
		ok = layout == EROFS_INODE_FLAT_PLAIN || layout == EROFS_INODE_FLAT_INLINE ||
		     layout == EROFS_INODE_CHUNK_BASED;
		break;
	case S_IFDIR:
		c->stats.dirs++;
		ok = layout == EROFS_INODE_FLAT_PLAIN || layout == EROFS_INODE_FLAT_INLINE ||
		     layout == EROFS_INODE_CHUNK_BASED;
		break;
	case S_IFLNK:
		c->stats.symlinks++;
		ok = layout == EROFS_INODE_FLAT_PLAIN || layout == EROFS_INODE_FLAT_INLINE ||
		     layout == EROFS_INODE_CHUNK_BASED;
		if (ino->size < 1 || ino->size > SYMLINK_MAX)
			return el_image_corrupt(c->err, ino->inode_off,
						"symlink %llu: target of %llu bytes (1..%u allowed)",
						(unsigned long long)ino->nid,
						(unsigned long long)ino->size, SYMLINK_MAX);
		break;
	default:
		c->stats.specials++;
		/* Devices, fifos and sockets have no data; i_u is the rdev. */
		ok = layout == EROFS_INODE_FLAT_PLAIN || layout == EROFS_INODE_FLAT_INLINE;
		if (ino->size)
			return el_image_corrupt(c->err, ino->inode_off,
						"special file %llu has size %llu",
						(unsigned long long)ino->nid,
						(unsigned long long)ino->size);
		break;
	}
	c->stats.inodes++;
	if (layout == EROFS_INODE_COMPRESSED_FULL || layout == EROFS_INODE_COMPRESSED_COMPACT)
		return el_error_set(c->err, -EOPNOTSUPP, EL_IMAGE_WHAT, ino->inode_off,
				    "inode %llu: compressed data (layout %u) is not supported",
				    (unsigned long long)ino->nid, layout);
	if (!ok)
		return el_image_corrupt(c->err, ino->inode_off,
					"inode %llu: data layout %u not allowed for mode 0%o",
					(unsigned long long)ino->nid, layout, ino->mode);
	if (ino->mtime_nsec >= 1000000000u)
		return el_image_corrupt(c->err, ino->inode_off,
					"inode %llu: mtime nanoseconds %u out of range",
					(unsigned long long)ino->nid, ino->mtime_nsec);
	if (!S_ISCHR(ino->mode) && !S_ISBLK(ino->mode) && !S_ISFIFO(ino->mode) &&
	    !S_ISSOCK(ino->mode)) {
		r = check_data(c, ino);
		if (r < 0)
			return r;
	}
	return check_xattrs(c, ino);
}

static uint64_t dirent_off(const struct el_dirblock *db, unsigned i,
			   const struct el_image_inode *dir)
{
	return db->phys != EL_NO_OFFSET ? db->phys + i * sizeof(struct erofs_dirent)
					: dir->inode_off;
}

static int check_entry(struct checker *c, const struct el_image_inode *dir, uint64_t eoff,
		       const struct el_dirblock_entry *e, const char *name,
		       uint32_t *subdirs)
{
	struct el_image_inode child;
	struct nid_entry *ent;
	uint8_t ft;
	int r;

	ent = nid_find(&c->nids, e->nid);
	if (ent && ent->dir)
		return el_image_corrupt(c->err, eoff,
					"directory %llu: \"%s\" names directory %llu, already reached elsewhere",
					(unsigned long long)dir->nid, name,
					(unsigned long long)e->nid);
	r = el_image_read_inode(c->img, e->nid, &child, c->err);
	if (r < 0)
		return r;
	ft = erofs_ftype_of_mode(child.mode);
	if (e->file_type != ft)
		return el_image_corrupt(c->err, eoff,
					"directory %llu: \"%s\" has file type %u, its inode %llu calls for %u",
					(unsigned long long)dir->nid, name, e->file_type,
					(unsigned long long)e->nid, ft);
	if (ent) {
		ent->seen++;
		return 0;
	}
	ent = nid_insert(&c->nids, e->nid);
	if (!ent)
		return oom(c);
	ent->inode_off = child.inode_off;
	ent->nlink = child.nlink;
	ent->seen = 1;
	ent->dir = S_ISDIR(child.mode);
	r = check_inode(c, &child);
	if (r < 0)
		return r;
	if (ent->dir) {
		(*subdirs)++;
		return push_dir(c, e->nid, dir->nid);
	}
	return 0;
}

/*
 * readdir ends a block's last name at a NUL or at i_size, but lookup (kernel
 * namei) reads it up to a NUL or the end of the block buffer. When the block
 * is stored whole (not an inline tail, which the kernel pads with zeros), the
 * byte after the name must be NUL or the two would disagree.
 */
static int check_last_name(struct checker *c, const struct el_image_inode *dir,
			   const struct el_dirblock *db)
{
	const struct el_dirblock_entry *last = &db->ents[db->count - 1];
	uint32_t end = (uint32_t)last->nameoff + last->namelen;
	uint8_t b;
	int r;

	if (end < db->len || end >= c->img->blksz || db->kind != EL_EXTENT_DATA ||
	    db->phys == EL_NO_OFFSET)
		return 0;
	/* check_data made sure that the whole block is in the image. */
	r = el_image_read_at(c->img, &b, 1, db->phys + end, c->err);
	if (r < 0)
		return r;
	if (b)
		return el_image_corrupt(c->err, db->phys + end,
					"directory %llu: no NUL after the last name of a block before the block's end",
					(unsigned long long)dir->nid);
	return 0;
}

static int check_dir(struct checker *c, uint64_t nid, uint64_t parent, struct el_dirblock *db)
{
	struct el_image *img = c->img;
	struct el_image_inode dir;
	uint8_t prev[EROFS_NAME_LEN];
	size_t prevlen = 0;
	bool have_prev = false;
	unsigned dots = 0, dotdots = 0;
	uint32_t subdirs = 0;
	uint64_t nblocks;
	int r;

	r = el_image_read_inode(img, nid, &dir, c->err);
	if (r < 0)
		return r;
	r = el_image_dir_nblocks(img, &dir, &nblocks, c->err);
	if (r < 0)
		return r;

	for (uint64_t b = 0; b < nblocks; b++) {
		unsigned nameoff0;

		r = el_image_dirblock(img, &dir, b, db, c->err);
		if (r < 0)
			return r;
		r = check_last_name(c, &dir, db);
		if (r < 0)
			return r;
		nameoff0 = db->ents[0].nameoff;
		if (nameoff0 % sizeof(struct erofs_dirent))
			return el_image_corrupt(c->err, dirent_off(db, 0, &dir),
						"directory %llu: block %llu has nameoff0 %u, not a multiple of 12",
						(unsigned long long)nid, (unsigned long long)b,
						nameoff0);
		for (unsigned i = 0; i < db->count; i++) {
			const struct el_dirblock_entry *e = &db->ents[i];
			const uint8_t *name = db->buf + e->nameoff;
			uint64_t eoff = dirent_off(db, i, &dir);
			char cname[EROFS_NAME_LEN + 1];

			if (memchr(name, '/', e->namelen) || memchr(name, '\0', e->namelen))
				return el_image_corrupt(c->err, eoff,
							"directory %llu: a name holds '/' or NUL",
							(unsigned long long)nid);
			memcpy(cname, name, e->namelen);
			cname[e->namelen] = '\0';
			/* §5.1: lookups binary-search, so order is load-bearing. */
			if (have_prev && namecmp(prev, prevlen, name, e->namelen) >= 0)
				return el_image_corrupt(c->err, eoff,
							"directory %llu: \"%s\" is out of order or repeated",
							(unsigned long long)nid, cname);
			memcpy(prev, name, e->namelen);
			prevlen = e->namelen;
			have_prev = true;

			if (!strcmp(cname, ".") || !strcmp(cname, "..")) {
				bool dot = cname[1] == '\0';
				uint64_t want = dot ? nid : parent;

				if (dot)
					dots++;
				else
					dotdots++;
				if (e->nid != want)
					return el_image_corrupt(c->err, eoff,
								"directory %llu: \"%s\" points to %llu instead of %llu",
								(unsigned long long)nid, cname,
								(unsigned long long)e->nid,
								(unsigned long long)want);
				if (e->file_type != EROFS_FT_DIR)
					return el_image_corrupt(c->err, eoff,
								"directory %llu: \"%s\" has file type %u",
								(unsigned long long)nid, cname,
								e->file_type);
				continue;
			}
			r = check_entry(c, &dir, eoff, e, cname, &subdirs);
			if (r < 0)
				return r;
		}
	}
	if (dots != 1 || dotdots != 1)
		return el_image_corrupt(c->err, dir.inode_off,
					"directory %llu has %u \".\" and %u \"..\" entries (1 each expected)",
					(unsigned long long)nid, dots, dotdots);
	if ((uint64_t)dir.nlink != 2u + (uint64_t)subdirs)
		return el_image_corrupt(c->err, dir.inode_off,
					"directory %llu has nlink %u but %u subdirectories",
					(unsigned long long)nid, dir.nlink, subdirs);
	return 0;
}

static int check_superblock(struct checker *c)
{
	struct el_image *img = c->img;
	const struct el_image_info *info = &img->info;
	struct erofs_super_block sb;
	uint32_t compr;
	uint64_t need;
	int r;

	if (!info->checksum_ok)
		return el_error_set(c->err, -EBADMSG, EL_IMAGE_WHAT,
				    EROFS_SUPER_OFFSET + offsetof(struct erofs_super_block, checksum),
				    "superblock checksum mismatch");
	r = el_image_read_at(img, &sb, sizeof(sb), EROFS_SUPER_OFFSET, c->err);
	if (r < 0)
		return r;
	/* The kernel parses compression configs and long prefixes at mount;
	 * we cannot vouch for either. ZERO_PADDING alone changes nothing for
	 * uncompressed inodes (mkfs -z sets it even when nothing compressed). */
	compr = info->feature_incompat &
		(EROFS_FEATURE_INCOMPAT_COMPR_CFGS | EROFS_FEATURE_INCOMPAT_ZTAILPACKING |
		 EROFS_FEATURE_INCOMPAT_FRAGMENTS);
	if (compr)
		return el_error_set(c->err, -EOPNOTSUPP, EL_IMAGE_WHAT,
				    EROFS_SUPER_OFFSET +
					    offsetof(struct erofs_super_block, feature_incompat),
				    "compression features 0x%x are not supported", compr);
	if (sb.xattr_prefix_count)
		return el_error_set(c->err, -EOPNOTSUPP, EL_IMAGE_WHAT,
				    EROFS_SUPER_OFFSET +
					    offsetof(struct erofs_super_block, xattr_prefix_count),
				    "%u long xattr name prefixes: not supported",
				    sb.xattr_prefix_count);
	/* Trailing bytes are fine (a concatenated fsmeta + layers disk), a
	 * truncated image is not. */
	need = info->blocks << img->blkszbits;
	if (need > img->size)
		return el_image_corrupt(c->err,
					EROFS_SUPER_OFFSET + offsetof(struct erofs_super_block, blocks_lo),
					"superblock counts %llu blocks, the image holds only %llu bytes",
					(unsigned long long)info->blocks,
					(unsigned long long)img->size);
	if (img->ndevs) {
		uint64_t pos, sb_end;

		pos = (uint64_t)EL_LE_GET(&sb, devt_slotoff) * sizeof(struct erofs_deviceslot);
		sb_end = EROFS_SUPER_OFFSET + sizeof(sb) + 16u * sb.sb_extslots;
		if (pos < sb_end)
			return el_image_corrupt(c->err, pos,
						"device table overlaps the superblock");
	}
	return 0;
}

int el_image_check(struct el_image *img, struct el_check_stats *ret, struct el_error *err)
{
	struct checker c = { .img = img, .err = err };
	_cleanup_free_ struct el_dirblock *db = NULL;
	struct el_image_inode root;
	struct nid_entry *ent;
	struct el_hashtab_iter it;
	struct el_hnode *n;
	uint64_t root_nid = img->info.root_nid;
	int r;

	el_hashtab_init(&c.nids.tab, &el_hashtab_u64_ops, 1024);
	r = check_superblock(&c);
	if (r < 0)
		goto out;
	db = malloc(sizeof(*db));
	if (!db) {
		r = oom(&c);
		goto out;
	}

	r = el_image_read_inode(img, root_nid, &root, err);
	if (r < 0)
		goto out;
	ent = nid_insert(&c.nids, root_nid);
	if (!ent) {
		r = oom(&c);
		goto out;
	}
	ent->dir = true;
	ent->seen = 1;
	ent->nlink = root.nlink;
	ent->inode_off = root.inode_off;
	r = check_inode(&c, &root);
	if (r < 0)
		goto out;
	/* The root's ".." points to itself (§5.1). */
	r = push_dir(&c, root_nid, root_nid);
	if (r < 0)
		goto out;

	while (c.depth) {
		struct dir_todo t = c.stack[--c.depth];

		r = check_dir(&c, t.nid, t.parent, db);
		if (r < 0)
			goto out;
	}

	el_hashtab_iter_init(&it, &c.nids.tab);
	while ((n = el_hashtab_iter_next(&it))) {
		const struct nid_entry *e = el_hashtab_entry(n, struct nid_entry, nid.node);

		if (e->dir || e->seen == e->nlink)
			continue;
		r = el_image_corrupt(err, e->inode_off,
				     "inode %llu has nlink %u but %u directory entries",
				     (unsigned long long)e->nid.key, e->nlink, e->seen);
		goto out;
	}
	if (img->info.inos != c.stats.inodes) {
		r = el_image_corrupt(err,
				     EROFS_SUPER_OFFSET + offsetof(struct erofs_super_block, inos),
				     "superblock counts %llu inodes, the tree holds %llu",
				     (unsigned long long)img->info.inos,
				     (unsigned long long)c.stats.inodes);
		goto out;
	}
	*ret = c.stats;
	r = 0;
out:
	nid_table_free(&c.nids);
	free(c.stack);
	return r;
}
