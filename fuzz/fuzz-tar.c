/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz-tar: the input (plain, gzip or zstd: detected by magic) through the
 * streaming tar reader, every entry and every data piece read, then the end
 * of the stream. Checks the reader's promises to its callers: entry fields
 * within the limits of tar.h, data pieces inside the file's logical size,
 * and an error recorded for every failure.
 */
#include <stdint.h>
#include <string.h>

#include "erofs-layer/input.h"
#include "erofs-layer/tar.h"
#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_entry(const struct el_entry *e)
{
	FUZZ_ASSERT(e->type <= EL_ENTRY_FIFO, "type %d", (int)e->type);
	FUZZ_ASSERT(e->path != NULL, "entry without a path");
	/* Read every byte (a bare strlen() whose result is unused is dropped by
	 * the compiler, and ASan would see nothing). */
	fuzz_touch(e->path, strlen(e->path) + 1);
	if (e->type == EL_ENTRY_SYMLINK || e->type == EL_ENTRY_HARDLINK)
		FUZZ_ASSERT(e->link != NULL, "link entry without a target");
	if (e->link)
		fuzz_touch(e->link, strlen(e->link) + 1);
	FUZZ_ASSERT((e->mode & ~07777u) == 0, "mode 0%o has type bits", e->mode);
	FUZZ_ASSERT(e->mtime_nsec < 1000000000u, "mtime_nsec %u", e->mtime_nsec);
	FUZZ_ASSERT(e->nxattrs <= EL_TAR_MAX_XATTRS, "%zu xattrs", e->nxattrs);
	FUZZ_ASSERT(e->nxattrs == 0 || e->xattrs != NULL, "xattrs NULL");
	for (size_t i = 0; i < e->nxattrs; i++) {
		const struct el_xattr_kv *x = &e->xattrs[i];
		size_t nlen;

		FUZZ_ASSERT(x->name != NULL, "xattr without a name");
		nlen = strlen(x->name);
		fuzz_touch(x->name, nlen + 1);
		FUZZ_ASSERT(nlen > 0 && nlen <= EL_TAR_MAX_XATTR_NAME, "xattr name of %zu bytes",
			    nlen);
		FUZZ_ASSERT(x->value_len <= EL_TAR_MAX_XATTR_VALUE, "xattr value of %zu bytes",
			    x->value_len);
		FUZZ_ASSERT(x->value_len == 0 || x->value != NULL, "xattr value NULL");
		fuzz_touch(x->value, x->value_len);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_src src;
	struct el_input *in = NULL;
	struct el_tar *t = NULL;
	struct el_error err;
	const struct el_entry *e;
	uint64_t entries = 0;
	int r;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	fuzz_src_init(&src, data, size);
	el_error_clear(&err);
	r = el_input_new_reader(fuzz_src_read, &src, &in, &err);
	if (r < 0) {
		fuzz_check_error(r, &err);
		return 0;
	}
	r = el_tar_new(in, fuzz_warn, NULL, &t);
	FUZZ_ASSERT(r == 0, "el_tar_new: %d", r);

	while ((r = el_tar_next(t, &e, &err)) > 0) {
		entries++;
		check_entry(e);
		if (e->type != EL_ENTRY_REG)
			continue;
		/* Leave the data of some entries unread: el_tar_next must skip it. */
		if ((entries + size) % 7 == 0)
			continue;
		const uint8_t *buf;
		size_t len;
		uint64_t off, end, total = 0;
		while ((r = el_tar_data(t, &buf, &len, &off, &err)) > 0) {
			FUZZ_ASSERT(len > 0, "empty data piece");
			FUZZ_ASSERT(!__builtin_add_overflow(off, len, &end) && end <= e->size,
				    "piece [%llu, +%zu) outside a file of %llu bytes",
				    (unsigned long long)off, len, (unsigned long long)e->size);
			total += len;
			FUZZ_ASSERT(total <= e->size, "more data than the file size");
			fuzz_touch(buf, len);
		}
		if (r < 0)
			break;
		/* Asking again after the end keeps returning 0. */
		r = el_tar_data(t, &buf, &len, &off, &err);
		FUZZ_ASSERT(r == 0, "el_tar_data after the end: %d", r);
	}
	if (r == 0) {
		FUZZ_ASSERT(el_tar_entries(t) >= entries, "entry count");
		r = el_tar_finish(t, &err);
	}
	if (r < 0) {
		fuzz_check_error(r, &err);
		el_input_cancel(in);
	} else {
		uint8_t digest[32];

		el_input_digest(in, digest);
		FUZZ_ASSERT(el_input_offset(in) >= (uint64_t)size ||
				    el_input_compression(in) != EL_COMPRESSION_NONE,
			    "plain stream finished after %llu of %zu bytes",
			    (unsigned long long)el_input_offset(in), size);
	}
	el_tar_free(t);
	el_input_free(in);
	return 0;
}
