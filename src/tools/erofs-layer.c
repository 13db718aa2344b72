/* SPDX-License-Identifier: Apache-2.0 */
/* erofs-layer: the library on the command line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
} commands[] = {
	{ "convert", cmd_convert, "convert [-o OUT] [--uuid UUID] [--epoch SECONDS] [--dm-verity] [INPUT|-|--dir DIR|--ext4 IMAGE[:SUBDIR] [--fsck]] [--overlay-upper]" },
	{ "ls", cmd_ls, "ls [-l] [-R] [-x] IMAGE [PATH]" },
	{ "cat", cmd_cat, "cat IMAGE PATH" },
	{ "check", cmd_check, "check [--verity[=SIDECAR]] IMAGE" },
	{ "diff", cmd_diff, "diff --ext4 IMAGE[:SUBDIR] [--fsck] [--compression gzip|zstd|none] [--level N] [--epoch SECONDS] -o OUT" },
	{ "merge", cmd_merge, "merge -o FSMETA [--vmdk VMDK] [--flat] [--epoch SECONDS] [--dm-verity] LAYER..." },
};

int parse_epoch(const char *cmd, const char *arg, int64_t *ret)
{
	char *end;

	errno = 0;
	long long v = strtoll(arg, &end, 10);
	if (errno || !*arg || *end) {
		fprintf(stderr, "erofs-layer %s: invalid --epoch '%s'\n", cmd, arg);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

int split_image_subdir(const char *arg, char **ret_image, const char **ret_subdir)
{
	const char *colon = strrchr(arg, ':');
	struct stat st;

	if (!colon || stat(arg, &st) == 0) {
		*ret_image = strdup(arg);
		*ret_subdir = "";
	} else {
		*ret_image = strndup(arg, (size_t)(colon - arg));
		*ret_subdir = colon + 1;
	}
	return *ret_image ? 0 : -ENOMEM;
}

static void usage(FILE *f)
{
	fprintf(f, "usage:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  erofs-layer %s\n", commands[i].usage);
	fprintf(f, "  erofs-layer --version\n"
		   "erofs-layer COMMAND --help: the command's options\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("erofs-layer %s\n", EL_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "erofs-layer: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
