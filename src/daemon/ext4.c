/* SPDX-License-Identifier: Apache-2.0 */
#include "ext4.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/endian.h"
#include "common/hash.h"
#include "common/io.h"
#include "common/macro.h"
#include "common/spawn.h"
#include "common/util.h"

/* mkfs is chatty on stdout; the daemon's stdout is not a log */
static int run(char *const argv[])
{
	int status, r = el_spawn_wait(argv[0], argv, NULL, -1, &status);

	if (r < 0)
		return r;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* Creates `name` in dirfd (dir_path) atomically (a temporary name, then
 * rename): a sparse file of `size` bytes formatted by mkfs.ext4, with
 * upper/ and work/ at its root. The template's source. */
static int ext4_create_image(int dirfd, const char *dir_path, const char *name, uint64_t size)
{
	/* every cleanup variable is declared before the first goto */
	_cleanup_free_ char *tmpl = NULL, *tmpimg = NULL, *upper = NULL, *work = NULL,
			    *imgpath = NULL;
	_cleanup_close_ int fd = -1;
	int r;

	if (asprintf(&tmpl, "%s/.%s.tmpl", dir_path, name) < 0 ||
	    asprintf(&tmpimg, ".%s.tmp", name) < 0)
		return -ENOMEM;
	/* a template tree for mkfs.ext4 -d: upper/ and work/ owned by root */
	if (asprintf(&upper, "%s/upper", tmpl) < 0 || asprintf(&work, "%s/work", tmpl) < 0)
		return -ENOMEM;
	if ((mkdir(tmpl, 0755) < 0 && errno != EEXIST) || (mkdir(upper, 0755) < 0 && errno != EEXIST) ||
	    (mkdir(work, 0755) < 0 && errno != EEXIST)) {
		r = -errno;
		goto out;
	}
	fd = openat(dirfd, tmpimg, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		r = -errno;
		goto out;
	}
	if (asprintf(&imgpath, "%s/%s", dir_path, tmpimg) < 0) {
		r = -ENOMEM;
		goto out;
	}
	/* metadata_csum_seed: checksums do not depend on the UUID, so copies
	 * of a template can each get their own (ext4_template_write) */
	char *argv[] = { "mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "metadata_csum_seed",
			 "-d", tmpl, "-E", "root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1",
			 imgpath, NULL };
	r = run(argv);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && renameat(dirfd, tmpimg, dirfd, name) < 0)
		r = -errno;
out:
	if (r < 0)
		unlinkat(dirfd, tmpimg, 0);
	rmdir(upper);
	rmdir(work);
	rmdir(tmpl);
	return r;
}

int ext4_image_loop_device(const char *path, char *dev, size_t dev_size)
{
	struct stat img, st;
	struct dirent *de;
	int found = 0;
	DIR *d;

	if (stat(path, &img) < 0)
		return -errno;
	d = opendir("/sys/block");
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while (!found && (de = readdir(d))) {
		char attr[300], back[PATH_MAX + 16];
		if (strncmp(de->d_name, "loop", 4) != 0)
			continue;
		snprintf(attr, sizeof(attr), "/sys/block/%s/loop/backing_file", de->d_name);
		int fd = open(attr, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue; /* not attached */
		ssize_t n = read(fd, back, sizeof(back) - 1);
		close(fd);
		if (n <= 0)
			continue;
		back[n] = 0;
		back[strcspn(back, "\n")] = 0;
		/* the same inode, whatever path it was attached by */
		if (stat(back, &st) == 0 && st.st_dev == img.st_dev && st.st_ino == img.st_ino) {
			snprintf(dev, dev_size, "%s", de->d_name);
			found = 1;
		}
	}
	closedir(d);
	return found;
}

int file_allocated_bytes(int dirfd, const char *name, uint64_t *ret)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	*ret = (uint64_t)st.st_blocks * 512;
	return 0;
}

/* ---- templates ---- */

#define BLK 4096u

/* ext4 superblock fields (Documentation/filesystems/ext4/super.rst) */
#define SB_OFFSET	  1024u
#define SB_MAGIC	  0x38 /* le16 0xEF53 */
#define SB_BLOCKS_PER_GRP 0x20 /* le32 */
#define SB_LOG_BLOCK_SIZE 0x18 /* le32: block size 1024 << n */
#define SB_FIRST_DATA_BLK 0x14 /* le32 */
#define SB_BLOCKS_LO	  0x04 /* le32 */
#define SB_RO_COMPAT	  0x64 /* le32 */
#define SB_INCOMPAT	  0x60 /* le32 */
#define SB_UUID		  0x68 /* 16 bytes */
#define SB_BLOCKS_HI	  0x150 /* le32 */
#define SB_CHECKSUM	  0x3FC /* le32: crc32c of the bytes before it */
#define RO_COMPAT_GDT_CSUM	0x0010
#define RO_COMPAT_METADATA_CSUM 0x0400
#define INCOMPAT_64BIT		0x0080
#define INCOMPAT_CSUM_SEED	0x2000

struct tmpl_extent {
	uint64_t off; /* in the image */
	size_t len;
	size_t at; /* in data */
};

struct ext4_template {
	uint64_t size;
	uint8_t *data;
	size_t data_len;
	struct tmpl_extent *ext;
	size_t n_ext;
	/* byte offsets (in data) of every superblock copy, when UUIDs may
	 * change; n_sb == 0 keeps the template's UUID */
	size_t *sb;
	size_t n_sb;
	bool sb_csum; /* metadata_csum: each copy has its own checksum */
};

void ext4_template_free(struct ext4_template *t)
{
	if (!t)
		return;
	free(t->data);
	free(t->ext);
	free(t->sb);
	free(t);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Appends the image's block at off to the template, merging with the last
 * extent when adjacent. */
static int tmpl_add_block(struct ext4_template *t, uint64_t off, const uint8_t *blk,
			  size_t *cap_data, size_t *cap_ext)
{
	if (el_grow((void **)&t->data, cap_data, t->data_len + BLK, 1) < 0)
		return -ENOMEM;
	memcpy(t->data + t->data_len, blk, BLK);
	struct tmpl_extent *last = t->n_ext ? &t->ext[t->n_ext - 1] : NULL;
	if (last && last->off + last->len == off) {
		last->len += BLK;
	} else {
		if (el_grow((void **)&t->ext, cap_ext, t->n_ext + 1, sizeof(*t->ext)) < 0)
			return -ENOMEM;
		t->ext[t->n_ext++] =
			(struct tmpl_extent){ .off = off, .len = BLK, .at = t->data_len };
	}
	t->data_len += BLK;
	return 0;
}

/* Where the image's bytes [off, off + len) lie in data, if within one extent. */
static size_t tmpl_find(const struct ext4_template *t, uint64_t off, size_t len, bool *found)
{
	for (size_t i = 0; i < t->n_ext; i++) {
		const struct tmpl_extent *e = &t->ext[i];
		if (off >= e->off && off + len <= e->off + e->len) {
			*found = true;
			return e->at + (size_t)(off - e->off);
		}
	}
	*found = false;
	return 0;
}

/* Finds every superblock copy (the primary, and a backup at the start of
 * each group that has one) when the UUID may change. */
static int tmpl_find_superblocks(struct ext4_template *t)
{
	bool found;
	size_t p = tmpl_find(t, SB_OFFSET, 1024, &found);

	if (!found || el_get_le16(t->data + p + SB_MAGIC) != 0xEF53)
		return -EINVAL; /* not what mkfs.ext4 makes */
	const uint8_t *sb = t->data + p;
	uint32_t ro = el_get_le32(sb + SB_RO_COMPAT), incompat = el_get_le32(sb + SB_INCOMPAT);
	bool csum = ro & RO_COMPAT_METADATA_CSUM;
	t->sb_csum = csum;
	/* gdt_csum (crc16 over the UUID) or metadata_csum without a stored
	 * seed: checksums follow the UUID; keep it */
	if ((ro & RO_COMPAT_GDT_CSUM) || (csum && !(incompat & INCOMPAT_CSUM_SEED)))
		return 0;
	uint32_t log = el_get_le32(sb + SB_LOG_BLOCK_SIZE);
	if (log > 6)
		return -EINVAL;
	uint64_t bsize = UINT64_C(1024) << log;
	uint64_t per_group = el_get_le32(sb + SB_BLOCKS_PER_GRP);
	uint64_t first = el_get_le32(sb + SB_FIRST_DATA_BLK);
	uint64_t blocks = el_get_le32(sb + SB_BLOCKS_LO);
	if (incompat & INCOMPAT_64BIT)
		blocks |= (uint64_t)el_get_le32(sb + SB_BLOCKS_HI) << 32;
	if (!per_group)
		return -EINVAL;
	uint8_t uuid[16];
	memcpy(uuid, sb + SB_UUID, 16);
	uint64_t groups = (blocks - first + per_group - 1) / per_group;
	t->sb = calloc(groups + 1, sizeof(*t->sb));
	if (!t->sb)
		return -ENOMEM;
	t->sb[t->n_sb++] = p;
	for (uint64_t g = 1; g < groups; g++) {
		uint64_t off = (first + g * per_group) * bsize;
		size_t q = tmpl_find(t, off, 1024, &found);
		/* a backup carries the primary's UUID; groups without one hold
		 * other data or nothing (a hole) */
		if (found && el_get_le16(t->data + q + SB_MAGIC) == 0xEF53 &&
		    memcmp(t->data + q + SB_UUID, uuid, 16) == 0)
			t->sb[t->n_sb++] = q;
	}
	return 0;
}

int ext4_template_new(int dirfd, const char *dir_path, uint64_t size, struct ext4_template **ret)
{
	static const char scratch[] = "rwlayer-template.img";
	struct ext4_template *t = calloc(1, sizeof(*t));
	_cleanup_free_ uint8_t *blk = malloc(BLK);
	_cleanup_close_ int fd = -1;
	size_t cap_data = 0, cap_ext = 0;
	int r;

	if (!t || !blk) {
		free(t);
		return -ENOMEM;
	}
	t->size = size;
	r = ext4_create_image(dirfd, dir_path, scratch, size);
	if (r < 0)
		goto fail;
	fd = openat(dirfd, scratch, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	/* only the data extents, and of them only non-zero blocks */
	for (off_t data = 0;;) {
		data = lseek(fd, data, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				break;
			r = -errno;
			goto fail;
		}
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0) {
			r = -errno;
			goto fail;
		}
		for (uint64_t off = (uint64_t)data & ~(uint64_t)(BLK - 1); off < (uint64_t)hole;
		     off += BLK) {
			size_t want = (size_t)EL_MIN((uint64_t)BLK, size - off);
			memset(blk, 0, BLK);
			r = el_pread_full(fd, blk, want, off);
			if (r < 0)
				goto fail;
			if (!all_zero(blk, BLK)) {
				r = tmpl_add_block(t, off, blk, &cap_data, &cap_ext);
				if (r < 0)
					goto fail;
			}
		}
		data = hole;
	}
	r = tmpl_find_superblocks(t);
	if (r < 0)
		goto fail;
	unlinkat(dirfd, scratch, 0);
	*ret = t;
	return 0;
fail:
	unlinkat(dirfd, scratch, 0);
	ext4_template_free(t);
	return r;
}

int ext4_template_write(const struct ext4_template *t, int dirfd, const char *name)
{
	_cleanup_free_ uint8_t *data = NULL;
	_cleanup_close_ int fd = -1;
	int r = 0;

	if (t->n_sb) {
		uint8_t uuid[16];
		if (getrandom(uuid, sizeof(uuid), 0) != sizeof(uuid))
			return -errno ? -errno : -EIO;
		uuid[6] = (uuid[6] & 0x0F) | 0x40; /* RFC 4122 version 4 */
		uuid[8] = (uuid[8] & 0x3F) | 0x80;
		data = malloc(t->data_len);
		if (!data)
			return -ENOMEM;
		memcpy(data, t->data, t->data_len);
		for (size_t i = 0; i < t->n_sb; i++) {
			uint8_t *sb = data + t->sb[i];
			memcpy(sb + SB_UUID, uuid, 16);
			if (t->sb_csum)
				el_put_le32(sb + SB_CHECKSUM,
					    el_crc32c_update(~UINT32_C(0), sb, SB_CHECKSUM));
		}
	}
	fd = openat(dirfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)t->size) < 0)
		r = -errno;
	for (size_t i = 0; i < t->n_ext && r == 0; i++)
		r = el_pwrite_full(fd, (data ? data : t->data) + t->ext[i].at, t->ext[i].len,
				   t->ext[i].off);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(dirfd, name, 0);
	return r;
}
