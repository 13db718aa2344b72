/* SPDX-License-Identifier: Apache-2.0 */
/* erofs-layer diff: the overlay upper directory inside an ext4 image (a
 * container's rwlayer.img, read without mounting it) → an OCI layer tar,
 * plain, gzip or zstd, the way the daemon's Compare makes it. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "erofs-layer/ext4.h"
#include "erofs-layer/upper-tar.h"
#include "common/io.h"
#include "common/macro.h"
#include "common/sha256.h"

static void warn_cb(void *ud, const char *what, uint64_t off, const char *msg)
{
	(void)ud;
	(void)what;
	(void)off;
	fprintf(stderr, "erofs-layer diff: warning: %s\n", msg);
}

static int sink(void *ud, const void *buf, size_t len)
{
	return el_write_full(*(int *)ud, buf, len);
}

static int parse_compression(const char *s, enum el_compression *ret)
{
	if (!strcmp(s, "none"))
		*ret = EL_COMPRESSION_NONE;
	else if (!strcmp(s, "gzip"))
		*ret = EL_COMPRESSION_GZIP;
	else if (!strcmp(s, "zstd"))
		*ret = EL_COMPRESSION_ZSTD;
	else
		return -EINVAL;
	return 0;
}

#define DIFF_USAGE \
	"usage: erofs-layer diff --ext4 IMAGE[:SUBDIR] [--fsck] [--compression gzip|zstd|none] [--level N] [--epoch SECONDS] -o OUT\n"

int cmd_diff(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "ext4", required_argument, NULL, 'e' },
		{ "fsck", no_argument, NULL, 'f' },
		{ "compression", required_argument, NULL, 'c' },
		{ "level", required_argument, NULL, 'l' },
		{ "epoch", required_argument, NULL, 'E' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct el_tarw_opts topts = { .compression = EL_COMPRESSION_GZIP };
	_cleanup_free_ char *image = NULL;
	const char *arg = NULL, *out = NULL, *subdir;
	struct el_tarw_result res;
	struct el_outfile of;
	struct el_error err;
	bool fsck = false;
	char msg[700], hex[65];
	int c, r;

	while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'e': arg = optarg; break;
		case 'f': fsck = true; break;
		case 'c':
			if (parse_compression(optarg, &topts.compression) < 0) {
				fprintf(stderr, "erofs-layer diff: --compression is gzip, zstd or none, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'l': topts.level = atoi(optarg); break;
		case 'E':
			if (parse_epoch("diff", optarg, &topts.epoch) < 0)
				return EXIT_USAGE;
			topts.has_epoch = true;
			break;
		case 'o': out = optarg; break;
		case 'h':
			printf(DIFF_USAGE
			       "  the overlay upper directory in an ext4 image (SUBDIR: default the root,\n"
			       "  e.g. IMAGE:upper), read without mounting it, as an OCI layer tar in OUT;\n"
			       "  --fsck first runs e2fsck -f -p on it, which may repair the image in place;\n"
			       "  --compression (default gzip) and --level N (its level) for OUT;\n"
			       "  --epoch clamps every mtime to SECONDS at most\n");
			return 0;
		default:
			return EXIT_USAGE;
		}
	}
	if (!arg || !out || optind != argc) {
		fprintf(stderr, DIFF_USAGE);
		return EXIT_USAGE;
	}
	if (split_image_subdir(arg, &image, &subdir) < 0)
		return 1;
	el_error_clear(&err);
	if (fsck) {
		r = el_ext4_fsck(image, &err);
		if (r < 0) {
			fprintf(stderr, "erofs-layer diff: %s\n", el_error_format(&err, msg, sizeof(msg)));
			return r == -EUCLEAN || r == -EINVAL ? EXIT_BADINPUT : 1;
		}
	}
	r = el_outfile_open(&of, out, 0644);
	if (r < 0) {
		fprintf(stderr, "erofs-layer diff: cannot create %s: %s\n", out, strerror(-r));
		return 1;
	}
	topts.write = sink;
	topts.write_ud = &of.fd;
	r = el_upper_tar_ext4(image, subdir, &topts, warn_cb, NULL, &res, &err);
	r = el_outfile_finish(&of, r, out, &err);
	if (r < 0) {
		fprintf(stderr, "erofs-layer diff: %s: %s\n", image, el_error_format(&err, msg, sizeof(msg)));
		return r == -EUCLEAN || r == -EINVAL || r == -EOPNOTSUPP || r == -ENOENT ? EXIT_BADINPUT : 1;
	}
	el_hex(res.diffid, 32, hex);
	printf("diffid sha256:%s\n", hex);
	el_hex(res.digest, 32, hex);
	printf("digest sha256:%s\n", hex);
	printf("size %" PRIu64 "\n", res.size);
	printf("uncompressed_size %" PRIu64 "\n", res.uncompressed_size);
	printf("entries %" PRIu64 "\n", res.entries);
	return 0;
}
