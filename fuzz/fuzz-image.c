/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz-image: the input as an EROFS image (in a memfd): open, el_image_check,
 * then a bounded breadth-first walk from the root with every reader entry
 * point: read_inode, readdir, xattrs, pread, map, file_extent and lookup.
 * Whatever the bytes, nothing may crash, hang or read out of bounds.
 *
 * Checksum rejection is skipped, so that the fuzzer gets past it. When the superblock asks for a
 * checksum, the right one is written into the copy before opening it, so
 * that mutations of block 0 reach the code behind the checksum.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "erofs-layer/image.h"
#include "fuzz-common.h"
#include "common/hash.h"

#define WALK_MAX_INODES 256u
#define WALK_MAX_DIRENTS 4096u /* per directory */
#define READ_MAX ((size_t)64 << 10) /* bytes read per file */
#define LOOKUP_MAX 32u
#define PATH_LEN 1024u

/* Superblock fields used for the checksum fix-up (docs/erofs-format.md §2.2). */
#define SB_OFF 1024u
#define SB_MAGIC 0xE0F5E1E2u
#define SB_CHECKSUM (SB_OFF + 4)
#define SB_COMPAT (SB_OFF + 8)
#define SB_BLKSZBITS (SB_OFF + 12)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct walk {
	struct el_image *img;
	uint64_t queue[WALK_MAX_INODES];
	char path[WALK_MAX_INODES][PATH_LEN]; /* "" when too long to keep */
	size_t nqueue;
	size_t cur; /* the directory being read */
	bool check_ok; /* el_image_check passed: the reader must agree */
	unsigned dirents;
	uint8_t buf[READ_MAX];
};

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* Writes the superblock checksum the image asks for into the copy. */
static void fix_checksum(uint8_t *img, size_t size)
{
	uint32_t blksz, len;

	if (size < SB_OFF + 128 || get_le32(img + SB_OFF) != SB_MAGIC ||
	    !(get_le32(img + SB_COMPAT) & 1u) || img[SB_BLKSZBITS] < 9 || img[SB_BLKSZBITS] > 12)
		return;
	blksz = 1u << img[SB_BLKSZBITS];
	len = blksz > SB_OFF ? blksz - SB_OFF : blksz;
	if (size < SB_OFF + len)
		return;
	put_le32(img + SB_CHECKSUM, 0);
	put_le32(img + SB_CHECKSUM, el_crc32c_update(0xFFFFFFFFu, img + SB_OFF, len));
}

static int on_xattr(void *ud, const struct el_image_xattr *xa)
{
	(void)ud;
	FUZZ_ASSERT(memchr(xa->name, 0, sizeof(xa->name)) != NULL, "xattr name not terminated");
	FUZZ_ASSERT(xa->prefix_len <= strlen(xa->name), "prefix_len %u", xa->prefix_len);
	fuzz_touch(xa->value, xa->value_len);
	return 0;
}

static bool queued(const struct walk *w, uint64_t nid)
{
	for (size_t i = 0; i < w->nqueue; i++)
		if (w->queue[i] == nid)
			return true;
	return false;
}

static int on_dirent(void *ud, const struct el_image_dirent *de)
{
	struct walk *w = ud;

	FUZZ_ASSERT(de->name_len <= 255 && de->name[de->name_len] == '\0', "dirent name_len %u",
		    de->name_len);
	if (++w->dirents > WALK_MAX_DIRENTS)
		return 1; /* stop this directory */
	if (strcmp(de->name, ".") == 0 || strcmp(de->name, "..") == 0)
		return 0;
	if (w->nqueue < WALK_MAX_INODES && !queued(w, de->nid)) {
		const char *parent = w->path[w->cur];
		size_t i = w->nqueue++;

		w->queue[i] = de->nid;
		size_t plen = strlen(parent);
		if ((w->cur == 0 || plen) && plen + 1 + de->name_len < sizeof(w->path[i])) {
			memcpy(w->path[i], parent, plen);
			w->path[i][plen] = '/';
			memcpy(w->path[i] + plen + 1, de->name, de->name_len + 1u);
		}
	}
	return 0;
}

static void read_file(struct walk *w, const struct el_image_inode *ino)
{
	struct el_image_extent ext;
	struct el_error err;
	uint64_t blk, nblk;
	size_t want;
	ssize_t n;

	el_error_clear(&err);
	want = ino->size < READ_MAX ? (size_t)ino->size : READ_MAX;
	n = el_image_pread(w->img, ino, w->buf, want, 0, &err);
	if (n < 0) {
		fuzz_check_error((int)n, &err);
		/* A checked image is readable, except for data elsewhere. */
		FUZZ_ASSERT(!w->check_ok || n == -ENXIO || n == -EOPNOTSUPP,
			    "pread of a checked image failed: %zd (%s)", n, err.msg);
	} else
		FUZZ_ASSERT((size_t)n <= want, "pread returned %zd for %zu", n, want);
	if (ino->size > 1) {
		/* A piece straddling the last block boundary, and the tail. */
		uint64_t off = ino->size > 4097 ? ino->size - 4097 : 1;
		el_error_clear(&err);
		n = el_image_pread(w->img, ino, w->buf, 4097 + 10, off, &err);
		if (n >= 0)
			FUZZ_ASSERT((uint64_t)n <= ino->size - off, "pread past EOF: %zd", n);
	}
	el_error_clear(&err);
	n = el_image_pread(w->img, ino, w->buf, 16, ino->size, &err);
	if (n >= 0)
		FUZZ_ASSERT(n == 0, "pread at EOF returned %zd", n);
	if (ino->size) {
		el_error_clear(&err);
		if (el_image_map(w->img, ino, 0, &ext, &err) == 0)
			FUZZ_ASSERT(ext.logical == 0 && ext.length > 0, "map(0) gave [%llu, +%llu)",
				    (unsigned long long)ext.logical, (unsigned long long)ext.length);
		el_error_clear(&err);
		if (el_image_map(w->img, ino, ino->size - 1, &ext, &err) == 0)
			FUZZ_ASSERT(ext.logical <= ino->size - 1 &&
					    ino->size - 1 - ext.logical < ext.length,
				    "map(size-1) gave [%llu, +%llu)",
				    (unsigned long long)ext.logical, (unsigned long long)ext.length);
	}
	el_error_clear(&err);
	(void)el_image_file_extent(w->img, ino, &blk, &nblk, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct el_image_inode ino;
	struct el_check_stats stats;
	struct el_error err;
	struct walk *w;
	uint8_t *copy;
	int fd, r;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	copy = malloc(size ? size : 1);
	w = calloc(1, sizeof(*w));
	FUZZ_ASSERT(copy && w, "out of memory");
	memcpy(copy, data, size);
	fix_checksum(copy, size);
	fd = fuzz_memfd(copy, size);
	free(copy);

	el_error_clear(&err);
	r = el_image_open_fd(fd, &w->img, &err);
	close(fd);
	if (r < 0) {
		fuzz_check_error(r, &err);
		free(w);
		return 0;
	}
	const struct el_image_info *info = el_image_info(w->img);
	size_t ndevs;
	const struct el_image_device *devs = el_image_devices(w->img, &ndevs);
	FUZZ_ASSERT(ndevs == info->extra_devices && (ndevs == 0 || devs), "device table");
	for (size_t i = 0; i < ndevs; i++)
		FUZZ_ASSERT(strlen(devs[i].tag) <= 64, "device tag");

	el_error_clear(&err);
	r = el_image_check(w->img, &stats, &err);
	if (r < 0)
		fuzz_check_error(r, &err);
	w->check_ok = r == 0;

	w->queue[w->nqueue++] = info->root_nid;
	for (size_t i = 0; i < w->nqueue; i++) {
		el_error_clear(&err);
		r = el_image_read_inode(w->img, w->queue[i], &ino, &err);
		if (r < 0) {
			fuzz_check_error(r, &err);
			FUZZ_ASSERT(!w->check_ok, "nid %llu of a checked image: %s",
				    (unsigned long long)w->queue[i], err.msg);
			continue;
		}
		el_error_clear(&err);
		(void)el_image_xattrs(w->img, &ino, on_xattr, NULL, &err);
		switch (ino.mode & S_IFMT) {
		case S_IFDIR:
			w->cur = i;
			w->dirents = 0;
			el_error_clear(&err);
			r = el_image_readdir(w->img, &ino, on_dirent, w, &err);
			if (r < 0)
				fuzz_check_error(r, &err);
			FUZZ_ASSERT(!w->check_ok || r >= 0,
				    "readdir of a checked image failed: %s", err.msg);
			break;
		case S_IFREG:
		case S_IFLNK:
			read_file(w, &ino);
			break;
		default:
			break;
		}
	}
	/* Lookups of the paths the walk took. On a corrupt image they may fail
	 * (a lookup reads other bytes than readdir does); on an image that passed
	 * the check each must land on the nid readdir gave. */
	for (size_t i = 1, n = 0; i < w->nqueue && n < LOOKUP_MAX; i++) {
		if (!w->path[i][0])
			continue;
		n++;
		el_error_clear(&err);
		r = el_image_lookup(w->img, w->path[i], &ino, &err);
		if (r < 0)
			fuzz_check_error(r, &err);
		FUZZ_ASSERT(!w->check_ok || (r == 0 && ino.nid == w->queue[i]),
			    "lookup of %s in a checked image: r=%d nid %llu, readdir said %llu (%s)",
			    w->path[i], r, (unsigned long long)(r == 0 ? ino.nid : 0),
			    (unsigned long long)w->queue[i], err.msg);
	}
	el_error_clear(&err);
	(void)el_image_lookup(w->img, "/", &ino, &err);
	el_error_clear(&err);
	(void)el_image_lookup(w->img, "a/../b/./c//d", &ino, &err);

	el_image_close(w->img);
	free(w);
	return 0;
}
