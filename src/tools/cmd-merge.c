/* SPDX-License-Identifier: Apache-2.0 */
/* erofs-layer merge: layer images (oldest first) → fsmeta.erofs [+ merged.vmdk]. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "erofs-layer/image.h"
#include "erofs-layer/merge.h"
#include "erofs-layer/verity.h"

int cmd_merge(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "vmdk", required_argument, NULL, 'V' },
		{ "flat", no_argument, NULL, 'F' },
		{ "epoch", required_argument, NULL, 'T' },
		{ "dm-verity", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct el_merge_opts opts = { 0 };
	const char *out = NULL, *vmdk = NULL;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			out = optarg;
			break;
		case 'V':
			vmdk = optarg;
			break;
		case 'F':
			opts.flat = true;
			break;
		case 'D':
			opts.verity = true;
			break;
		case 'T':
			if (parse_epoch("merge", optarg, &opts.epoch) < 0)
				return EXIT_USAGE;
			opts.has_epoch = true;
			break;
		case 'h':
			printf("usage: erofs-layer merge -o FSMETA [--vmdk VMDK] [--flat] [--epoch SECONDS] [--dm-verity] LAYER...\n"
			       "  layers with a dm-verity tree count whole in the device table and the VMDK;\n"
			       "  --dm-verity gives FSMETA a tree of its own and writes FSMETA.dmverity\n");
			return 0;
		default:
			return EXIT_USAGE;
		}
	}
	if (!out || optind >= argc) {
		fprintf(stderr, "usage: erofs-layer merge -o FSMETA [--vmdk VMDK] [--flat] LAYER...\n");
		return EXIT_USAGE;
	}
	struct el_error err;
	struct el_merge_result res;
	el_error_clear(&err);
	int r = el_merge((const char *const *)argv + optind, (size_t)(argc - optind), out, vmdk,
			 &opts, &res, &err);
	if (r < 0) {
		char msg[700];
		fprintf(stderr, "erofs-layer merge: %s\n", el_error_format(&err, msg, sizeof(msg)));
		if (r == -EL_EUNMERGEABLE)
			return EXIT_UNMERGEABLE;
		return r == -EFSCORRUPTED ? EXIT_BADINPUT : 1;
	}
	printf("layers %d\n", argc - optind);
	printf("inodes %" PRIu64 "\n", res.inodes);
	printf("fsmeta_blocks %" PRIu64 "\n", res.fsmeta_blocks);
	printf("total_blocks %" PRIu64 "\n", res.total_blocks);
	if (res.verity) {
		char hex[65];
		el_verity_root_hex(&res.verity_info, hex);
		printf("verity_roothash %s\n", hex);
		printf("verity_hashoffset %" PRIu64 "\n", res.verity_info.hash_offset);
	}
	return 0;
}
