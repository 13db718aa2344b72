/* SPDX-License-Identifier: Apache-2.0 */
/* erofs-layer convert: a layer tar (plain, gzip or zstd), a directory
 * (--dir), or a directory of an ext4 image read without mounting it (--ext4,
 * after e2fsck with --fsck), to an EROFS image; the directory may be an
 * overlay upper one (--overlay-upper). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "erofs-layer/convert.h"
#include "erofs-layer/dirconv.h"
#include "erofs-layer/ext4.h"
#include "erofs-layer/verity.h"
#include "common/macro.h"
#include "common/sha256.h"

static void warn_cb(void *ud, const char *what, uint64_t off, const char *msg)
{
	(void)ud;
	if (off != EL_NO_OFFSET)
		fprintf(stderr, "erofs-layer convert: warning: %s (at byte %" PRIu64 " of the %s)\n",
			msg, off, what);
	else
		fprintf(stderr, "erofs-layer convert: warning: %s\n", msg);
}

static int parse_uuid(const char *s, uint8_t out[16])
{
	size_t n = 0;

	for (const char *p = s; *p; p++) {
		if (*p == '-')
			continue;
		int hi = -1;
		char c = *p;
		if (c >= '0' && c <= '9')
			hi = c - '0';
		else if (c >= 'a' && c <= 'f')
			hi = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			hi = c - 'A' + 10;
		if (hi < 0 || n >= 32)
			return -EINVAL;
		if (n % 2 == 0)
			out[n / 2] = (uint8_t)(hi << 4);
		else
			out[n / 2] |= (uint8_t)hi;
		n++;
	}
	return n == 32 ? 0 : -EINVAL;
}

static void print_image(const struct el_convert_result *res)
{
	printf("inodes %" PRIu64 "\n", res->image.inodes);
	printf("image_bytes %" PRIu64 "\n", res->image.image_bytes);
	if (res->image.verity) {
		char hex[65];
		el_verity_root_hex(&res->image.verity_info, hex);
		printf("verity_roothash %s\n", hex);
		printf("verity_hashoffset %" PRIu64 "\n", res->image.verity_info.hash_offset);
		printf("file_bytes %" PRIu64 "\n", res->image.file_bytes);
	}
}

/* what convert --dir and --ext4 print: a tree, not a tar, was read */
static void print_tree_result(const struct el_convert_result *res)
{
	printf("entries %" PRIu64 "\n", res->entries);
	printf("data_bytes %" PRIu64 "\n", res->tar_bytes);
	print_image(res);
}

static int convert_dir(const char *dir, const char *out, const struct el_convert_opts *copts,
		       bool overlay_upper)
{
	struct el_dir_opts opts = {
		.overlay_upper = overlay_upper,
		.has_uuid = copts->has_uuid,
		.has_epoch = copts->has_epoch,
		.epoch = copts->epoch,
		.verity = copts->verity,
		.warn = warn_cb,
	};
	struct el_error err;
	struct el_convert_result res;

	memcpy(opts.uuid, copts->uuid, sizeof(opts.uuid));
	el_error_clear(&err);
	int r = el_convert_dir_path(dir, out, &opts, &res, &err);
	if (r < 0) {
		char msg[700];
		fprintf(stderr, "erofs-layer convert: %s: %s\n", dir,
			el_error_format(&err, msg, sizeof(msg)));
		return r == -ENOENT || r == -ENOTDIR || r == -ENAMETOOLONG || r == -EINVAL ||
				       r == -EOPNOTSUPP
			       ? EXIT_BADINPUT
			       : 1;
	}
	print_tree_result(&res);
	return 0;
}

static int convert_ext4(const char *arg, const char *out, const struct el_convert_opts *copts,
			bool overlay_upper, bool fsck)
{
	struct el_dir_opts opts = {
		.overlay_upper = overlay_upper,
		.has_uuid = copts->has_uuid,
		.has_epoch = copts->has_epoch,
		.epoch = copts->epoch,
		.verity = copts->verity,
		.warn = warn_cb,
	};
	_cleanup_free_ char *image = NULL;
	const char *subdir;
	struct el_error err;
	struct el_convert_result res;
	char msg[700];
	int r;

	if (split_image_subdir(arg, &image, &subdir) < 0) {
		fprintf(stderr, "erofs-layer convert: out of memory\n");
		return 1;
	}
	memcpy(opts.uuid, copts->uuid, sizeof(opts.uuid));
	el_error_clear(&err);
	if (fsck) {
		r = el_ext4_fsck(image, &err);
		if (r < 0) {
			fprintf(stderr, "erofs-layer convert: %s\n",
				el_error_format(&err, msg, sizeof(msg)));
			/* e2fsck's refusals and failures are about the image */
			return r == -ENOENT || r == -ENOMEM || r == -EINTR ? 1 : EXIT_BADINPUT;
		}
		printf("fsck %d\n", r);
	}
	r = el_convert_ext4(image, subdir, out, &opts, &res, &err);
	if (r < 0) {
		/* messages about the image as a whole start with its path */
		el_error_format(&err, msg, sizeof(msg));
		if (strncmp(msg, image, strlen(image)) == 0 && msg[strlen(image)] == ':')
			fprintf(stderr, "erofs-layer convert: %s\n", msg);
		else
			fprintf(stderr, "erofs-layer convert: %s: %s\n", image, msg);
		return r == -ENOENT || r == -ENOTDIR || r == -ENAMETOOLONG || r == -EINVAL ||
				       r == -EOPNOTSUPP || r == -EUCLEAN
			       ? EXIT_BADINPUT
			       : 1;
	}
	print_tree_result(&res);
	return 0;
}

int cmd_convert(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "uuid", required_argument, NULL, 'U' },
		{ "epoch", required_argument, NULL, 'T' },
		{ "dir", required_argument, NULL, 'd' },
		{ "overlay-upper", no_argument, NULL, 'O' },
		{ "ext4", required_argument, NULL, 'E' },
		{ "fsck", no_argument, NULL, 'F' },
		{ "dm-verity", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct el_convert_opts opts = { .warn = warn_cb };
	const char *out = NULL, *input = "-", *dir = NULL, *ext4 = NULL;
	bool overlay_upper = false, fsck = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "o:U:T:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'O':
			overlay_upper = true;
			break;
		case 'E':
			ext4 = optarg;
			break;
		case 'F':
			fsck = true;
			break;
		case 'V':
			opts.verity = true;
			break;
		case 'o':
			out = optarg;
			break;
		case 'U':
			if (parse_uuid(optarg, opts.uuid) < 0) {
				fprintf(stderr, "erofs-layer convert: invalid UUID '%s'\n", optarg);
				return EXIT_USAGE;
			}
			opts.has_uuid = true;
			break;
		case 'T':
			if (parse_epoch("convert", optarg, &opts.epoch) < 0)
				return EXIT_USAGE;
			opts.has_epoch = true;
			break;
		case 'h':
			printf("usage: erofs-layer convert [-o OUT] [--uuid UUID] [--epoch SECONDS] [--dm-verity] [INPUT|-]\n"
			       "       erofs-layer convert [-o OUT] [--uuid UUID] [--epoch SECONDS] [--dm-verity] --dir DIR [--overlay-upper]\n"
			       "       erofs-layer convert [-o OUT] [--uuid UUID] [--epoch SECONDS] [--dm-verity] --ext4 IMAGE[:SUBDIR] [--fsck] [--overlay-upper]\n"
			       "  --ext4 reads the ext4 image without mounting it (SUBDIR: default the root, e.g. IMAGE:upper);\n"
			       "  --fsck first runs e2fsck -f -p on it, which may repair the image in place;\n"
			       "  --dm-verity appends a dm-verity hash tree to OUT and writes OUT.dmverity (its root hash)\n");
			return 0;
		default:
			return EXIT_USAGE;
		}
	}
	if (dir && ext4) {
		fprintf(stderr, "erofs-layer convert: give either --dir or --ext4\n");
		return EXIT_USAGE;
	}
	if (fsck && !ext4) {
		fprintf(stderr, "erofs-layer convert: --fsck needs --ext4 IMAGE\n");
		return EXIT_USAGE;
	}
	if (optind < argc && !dir && !ext4)
		input = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "erofs-layer convert: too many arguments\n");
		return EXIT_USAGE;
	}
	if (overlay_upper && !dir && !ext4) {
		fprintf(stderr, "erofs-layer convert: --overlay-upper needs --dir DIR or --ext4 IMAGE\n");
		return EXIT_USAGE;
	}
	if (!out) {
		if (isatty(STDOUT_FILENO)) {
			fprintf(stderr, "erofs-layer convert: give -o OUT (refusing to write an image to a terminal)\n");
			return EXIT_USAGE;
		}
		fprintf(stderr, "erofs-layer convert: -o OUT is required\n");
		return EXIT_USAGE;
	}

	if (dir)
		return convert_dir(dir, out, &opts, overlay_upper);
	if (ext4)
		return convert_ext4(ext4, out, &opts, overlay_upper, fsck);

	_cleanup_close_ int fd = -1;
	if (strcmp(input, "-") == 0) {
		fd = dup(STDIN_FILENO);
	} else {
		fd = open(input, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0) {
		fprintf(stderr, "erofs-layer convert: %s: %s\n", input, strerror(errno));
		return 1;
	}
	struct el_error err;
	struct el_convert_result res;
	el_error_clear(&err);
	int r = el_convert_fd(fd, out, &opts, &res, &err);
	if (r < 0) {
		char msg[700];
		fprintf(stderr, "erofs-layer convert: %s: %s\n", strcmp(input, "-") ? input : "stdin",
			el_error_format(&err, msg, sizeof(msg)));
		return r == -EINVAL || r == -E2BIG || r == -ENAMETOOLONG || r == -ENOENT ||
				       r == -EISDIR || r == -ERANGE || r == -EPROTONOSUPPORT
			       ? EXIT_BADINPUT
			       : 1;
	}
	char hex[65];
	el_hex(res.diffid, 32, hex);
	printf("diffid sha256:%s\n", hex);
	printf("compression %s\n", el_compression_name(res.compression));
	printf("tar_bytes %" PRIu64 "\n", res.tar_bytes);
	printf("entries %" PRIu64 "\n", res.entries);
	print_image(&res);
	return 0;
}
