/* SPDX-License-Identifier: Apache-2.0 */
/*
 * erofs-layer check IMAGE: verifies the whole image (el_image_check) and
 * prints a one-line summary. With --verity[=SIDECAR], first every block
 * against the dm-verity tree after the image and the root hash its sidecar
 * names (default IMAGE.dmverity).
 *
 * Exit: 0 when the image is sound, 3 (EXIT_BADINPUT) when it is corrupt or
 * uses what we do not support, 1 when it cannot be read at all (missing file,
 * I/O error), 2 for usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "erofs-layer/error.h"
#include "erofs-layer/image.h"
#include "erofs-layer/verity.h"
#include "common/macro.h"

EL_DEFINE_CLEANUP(struct el_image, el_image_close)

static int fail(const char *image, struct el_error *err, int r)
{
	char buf[700];

	if (!err->code)
		el_error_set(err, r, NULL, EL_NO_OFFSET, "%s", strerror(-r));
	fprintf(stderr, "erofs-layer check: %s: %s\n", image,
		el_error_format(err, buf, sizeof(buf)));
	/* What the image's bytes say is bad input; failing to open or read the
	 * file (or memory) is not. */
	switch (err->code) {
	case -EFSCORRUPTED:
	case -EOPNOTSUPP:
	case -EBADMSG:
		return EXIT_BADINPUT;
	default:
		return EXIT_FAILURE;
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: erofs-layer check [--verity[=SIDECAR]] IMAGE\n"
		   "  --verity checks every block against the image's dm-verity tree and the root hash\n"
		   "  of SIDECAR (default IMAGE.dmverity) first\n");
}

static int check_verity(const char *image, const char *sidecar, struct el_error *err)
{
	struct el_verity_info info;
	uint8_t root[32];
	uint64_t off;
	char hex[65];
	int r;

	r = el_verity_sidecar_read(sidecar ? sidecar : image, root, &off, err);
	if (r < 0)
		return r == -EINVAL ? -EBADMSG : r;
	_cleanup_close_ int fd = open(image, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return el_error_set(err, -errno, NULL, EL_NO_OFFSET, "%m");
	r = el_verity_check(fd, off, root, &info, err);
	if (r < 0)
		return r;
	el_verity_root_hex(&info, hex);
	printf("%s: verity ok, %llu blocks, root hash %s\n", image,
	       (unsigned long long)info.data_blocks, hex);
	return 0;
}

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "verity", optional_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *sidecar = NULL;
	bool verity = false;
	struct el_error err = { .offset = EL_NO_OFFSET };
	_cleanup_(el_image_closep) struct el_image *img = NULL;
	struct el_check_stats st;
	const char *image;
	int c, r;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'v':
			verity = true;
			sidecar = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	image = argv[optind];
	if (verity && (r = check_verity(image, sidecar, &err)) < 0)
		return fail(image, &err, r);

	r = el_image_open(image, &img, &err);
	if (r < 0)
		return fail(image, &err, r);
	r = el_image_check(img, &st, &err);
	if (r < 0)
		return fail(image, &err, r);
	printf("%s: ok, %llu inodes (%llu dirs, %llu files, %llu symlinks, %llu specials), "
	       "%llu bytes of file data, %llu xattrs\n",
	       image, (unsigned long long)st.inodes, (unsigned long long)st.dirs,
	       (unsigned long long)st.files, (unsigned long long)st.symlinks,
	       (unsigned long long)st.specials, (unsigned long long)st.bytes,
	       (unsigned long long)st.xattrs);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "erofs-layer check: write error: %s\n", strerror(errno));
		return EXIT_FAILURE;
	}
	return 0;
}
