/* SPDX-License-Identifier: Apache-2.0 */
/*
 * erofs-layer cat IMAGE PATH: writes a regular file's bytes, or a symlink's
 * target, to stdout. The data is streamed in chunks, so files of any size
 * (beyond 4 GiB too) pass through a fixed buffer.
 *
 * Exit: 0, 1 for a missing path, a non-file or a system error, 2 for usage
 * errors, 3 (EXIT_BADINPUT) for a corrupt or unsupported image.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "erofs-layer/error.h"
#include "erofs-layer/image.h"
#include "common/io.h"
#include "common/macro.h"

#define CAT_CHUNK (1u << 20)

EL_DEFINE_CLEANUP(struct el_image, el_image_close)

static int exit_status(int r)
{
	switch (r) {
	case -EFSCORRUPTED:
	case -EOPNOTSUPP:
	case -EBADMSG:
		return EXIT_BADINPUT;
	default:
		return EXIT_FAILURE;
	}
}

static int fail(const char *image, struct el_error *err, int r)
{
	char buf[700];

	if (!err->code)
		el_error_set(err, r, NULL, EL_NO_OFFSET, "%s", strerror(-r));
	fprintf(stderr, "erofs-layer cat: %s: %s\n", image, el_error_format(err, buf, sizeof(buf)));
	return exit_status(err->code);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: erofs-layer cat IMAGE PATH\n");
}

int cmd_cat(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct el_error err = { .offset = EL_NO_OFFSET };
	_cleanup_(el_image_closep) struct el_image *img = NULL;
	_cleanup_free_ char *buf = NULL;
	struct el_image_inode ino;
	const char *image, *path;
	uint64_t off = 0;
	int c, r;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	image = argv[optind];
	path = argv[optind + 1];

	r = el_image_open(image, &img, &err);
	if (r < 0)
		return fail(image, &err, r);
	r = el_image_lookup(img, path, &ino, &err);
	if (r < 0)
		return fail(image, &err, r);
	if (S_ISDIR(ino.mode))
		return fail(image, &err,
			    el_error_set(&err, -EISDIR, NULL, EL_NO_OFFSET, "%s: is a directory",
					 path));
	if (!S_ISREG(ino.mode) && !S_ISLNK(ino.mode))
		return fail(image, &err,
			    el_error_set(&err, -EINVAL, NULL, EL_NO_OFFSET,
					 "%s: not a regular file or symlink", path));

	buf = malloc(CAT_CHUNK);
	if (!buf)
		return fail(image, &err, -ENOMEM);
	while (off < ino.size) {
		ssize_t n = el_image_pread(img, &ino, buf, CAT_CHUNK, off, &err);

		if (n < 0)
			return fail(image, &err, (int)n);
		/* pread only comes back short at the end of the file. */
		if (n == 0)
			break;
		r = el_write_full(STDOUT_FILENO, buf, (size_t)n);
		if (r < 0) {
			fprintf(stderr, "erofs-layer cat: write error: %s\n", strerror(-r));
			return EXIT_FAILURE;
		}
		off += (uint64_t)n;
	}
	return 0;
}
