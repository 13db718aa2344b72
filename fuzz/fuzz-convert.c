/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz-convert: the input as a layer stream through el_convert_input into a
 * memfd; when the conversion succeeds, the image is opened and checked. An
 * image we wrote must always pass el_image_check: a failure aborts, since it
 * is a writer (or checker) bug whatever the input was.
 *
 * Sparse entries can declare absurd real sizes; the memfd is sparse, so that
 * costs nothing, but the check of an image above 256 MiB is skipped to keep
 * every run fast.
 */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "erofs-layer/convert.h"
#include "erofs-layer/image.h"
#include "fuzz-common.h"

#define CHECK_MAX_IMAGE ((uint64_t)256 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct el_convert_opts opts = { .warn = fuzz_warn };
	struct el_convert_result res;
	struct fuzz_src src;
	struct el_input *in = NULL;
	struct el_image *img = NULL;
	struct el_check_stats stats;
	struct el_error err;
	struct stat st;
	char buf[700];
	int fd, r;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	/* A fixed epoch on some inputs, so both inode-format choices are used. */
	if (size & 1) {
		opts.has_epoch = true;
		opts.epoch = 0;
	}
	fuzz_src_init(&src, data, size);
	el_error_clear(&err);
	r = el_input_new_reader(fuzz_src_read, &src, &in, &err);
	if (r < 0) {
		fuzz_check_error(r, &err);
		return 0;
	}
	fd = fuzz_memfd(NULL, 0);
	r = el_convert_input(in, fd, &opts, &res, &err);
	if (r < 0) {
		fuzz_check_error(r, &err);
		el_input_cancel(in);
		goto out;
	}
	FUZZ_ASSERT(fstat(fd, &st) == 0, "fstat");
	FUZZ_ASSERT((uint64_t)st.st_size == res.image.image_bytes,
		    "the image is %lld bytes, the writer reports %llu", (long long)st.st_size,
		    (unsigned long long)res.image.image_bytes);
	if ((uint64_t)st.st_size > CHECK_MAX_IMAGE)
		goto out;

	r = el_image_open_fd(fd, &img, &err);
	FUZZ_ASSERT(r == 0, "our image does not open: %s", el_error_format(&err, buf, sizeof(buf)));
	r = el_image_check(img, &stats, &err);
	FUZZ_ASSERT(r == 0, "our image fails the check: %s",
		    el_error_format(&err, buf, sizeof(buf)));
	FUZZ_ASSERT(stats.inodes == res.image.inodes,
		    "check found %llu inodes, the writer wrote %llu",
		    (unsigned long long)stats.inodes, (unsigned long long)res.image.inodes);
	FUZZ_ASSERT(el_image_info(img)->inos == res.image.inodes, "sb inos");
out:
	el_image_close(img);
	close(fd);
	el_input_free(in);
	return 0;
}
