/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz-ext4: the input as an ext4 image a guest wrote (rwlayer.img), read on
 * the host as container commit and Compare read it, without the e2fsck that
 * runs before them in production (the walker must hold on its own):
 *   - el_ext4_open, then el_ext4_walk of the whole image with every file's
 *     extents and up to 64 KiB of its data read through el_ext4_file_read;
 *   - el_upper_tar_ext4 of "upper" into a sink that counts bytes;
 *   - el_convert_ext4 of "upper" with the overlay-upper rules into a file
 *     of /dev/shm, which, when the conversion succeeds, must open and pass
 *     el_image_check (abort otherwise: a walker or writer bug).
 * Whatever the bytes, nothing may crash, hang or read out of bounds.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erofs-layer/dirconv.h"
#include "erofs-layer/ext4.h"
#include "erofs-layer/image.h"
#include "erofs-layer/upper-tar.h"
#include "fuzz-common.h"

#define READ_MAX ((size_t)64 << 10) /* bytes read per file */
#define MIN_INPUT 2048u		     /* no ext4 superblock fits in less */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t buf[READ_MAX];

static int visit(void *ud, const struct el_entry *e, struct el_ext4_file *f, struct el_error *err)
{
	const struct el_ext4_extent *ext;
	size_t n;
	(void)ud;

	FUZZ_ASSERT(e->path && e->path[0], "an entry without a path");
	for (size_t i = 0; i < e->nxattrs; i++)
		FUZZ_ASSERT(e->xattrs[i].name && e->xattrs[i].name[0], "an xattr without a name");
	if (!f)
		return 0;
	int r = el_ext4_file_extents(f, &ext, &n, err);
	if (r < 0)
		return r;
	uint64_t end = 0;
	for (size_t i = 0; i < n; i++) {
		FUZZ_ASSERT(ext[i].len > 0 && ext[i].off >= end, "extents out of order at %zu", i);
		FUZZ_ASSERT(ext[i].off + ext[i].len <= e->size, "an extent past the size");
		end = ext[i].off + ext[i].len;
	}
	size_t want = (size_t)(e->size < READ_MAX ? e->size : READ_MAX);
	int64_t got = el_ext4_file_read(f, buf, want, 0, err);
	if (got < 0)
		return (int)got;
	FUZZ_ASSERT((size_t)got == want, "short read: %lld of %zu", (long long)got, want);
	return 0;
}

static int count_sink(void *ud, const void *p, size_t len)
{
	(void)p;
	*(uint64_t *)ud += len;
	return 0;
}

static void walk_all(const char *path)
{
	struct el_error err;
	struct el_ext4 *fs = NULL;

	el_error_clear(&err);
	int r = el_ext4_open(path, &fs, &err);
	if (r < 0) {
		fuzz_check_error(r, &err);
		return;
	}
	el_error_clear(&err);
	r = el_ext4_walk(fs, "", NULL, visit, NULL, &err);
	if (r < 0)
		fuzz_check_error(r, &err);
	el_ext4_close(fs);
}

static void upper_tar(const char *path)
{
	struct el_error err;
	uint64_t bytes = 0;
	struct el_tarw_opts topts = { .write = count_sink, .write_ud = &bytes };
	struct el_tarw_result res;

	el_error_clear(&err);
	int r = el_upper_tar_ext4(path, "upper", &topts, NULL, NULL, &res, &err);
	if (r < 0) {
		fuzz_check_error(r, &err);
		return;
	}
	FUZZ_ASSERT(res.size == bytes, "the result says %llu bytes, the sink got %llu",
		    (unsigned long long)res.size, (unsigned long long)bytes);
}

static void convert(const char *path, const char *out)
{
	struct el_error err;
	struct el_dir_opts opts = { .overlay_upper = true, .has_uuid = true, .has_epoch = true };
	struct el_convert_result res;
	struct el_image *img = NULL;
	struct el_check_stats st;

	el_error_clear(&err);
	int r = el_convert_ext4(path, "upper", out, &opts, &res, &err);
	if (r < 0) {
		fuzz_check_error(r, &err);
		FUZZ_ASSERT(access(out, F_OK) < 0, "a failed conversion left %s", out);
		return;
	}
	el_error_clear(&err);
	r = el_image_open(out, &img, &err);
	FUZZ_ASSERT(r == 0, "the converted image does not open: %s", err.msg);
	r = el_image_check(img, &st, &err);
	FUZZ_ASSERT(r == 0, "the converted image fails el_image_check: %s", err.msg);
	el_image_close(img);
	unlink(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char out[64];
	char path[64];

	if (size < MIN_INPUT || size > FUZZ_MAX_INPUT)
		return 0;
	if (!out[0])
		snprintf(out, sizeof(out), "/dev/shm/fuzz-ext4-%d.erofs", (int)getpid());
	int fd = fuzz_memfd(data, size);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	walk_all(path);
	upper_tar(path);
	convert(path, out);
	close(fd);
	return 0;
}
