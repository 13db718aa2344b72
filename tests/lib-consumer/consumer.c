/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A third party's program: built against the installed headers and
 * libspin-erofs-layer.so through pkg-config only, nothing of the source
 * tree. Converts a tar to an EROFS image, merges it with a second one into
 * fsmeta + VMDK, and reads a file back through the image reader.
 *
 *   consumer LOWER.tar UPPER.tar OUTDIR
 */
#include <erofs-layer/convert.h>
#include <erofs-layer/error.h>
#include <erofs-layer/image.h>
#include <erofs-layer/merge.h>

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int die(const char *what, const struct el_error *err)
{
	char buf[512];
	fprintf(stderr, "consumer: %s: %s\n", what, el_error_format(err, buf, sizeof(buf)));
	return 1;
}

static int convert(const char *tar, const char *out, struct el_error *err)
{
	struct el_convert_opts opts = { 0 };
	struct el_convert_result res;
	int fd = open(tar, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		perror(tar);
		return -1;
	}
	int r = el_convert_fd(fd, out, &opts, &res, err);
	close(fd);
	if (r == 0)
		printf("%s: %llu entries\n", out, (unsigned long long)res.entries);
	return r;
}

int main(int argc, char **argv)
{
	char lower[4096], upper[4096], fsmeta[4096], vmdk[4096];
	struct el_error err;

	if (argc != 4) {
		fprintf(stderr, "usage: consumer LOWER.tar UPPER.tar OUTDIR\n");
		return 2;
	}
	snprintf(lower, sizeof(lower), "%s/lower.erofs", argv[3]);
	snprintf(upper, sizeof(upper), "%s/upper.erofs", argv[3]);
	snprintf(fsmeta, sizeof(fsmeta), "%s/fsmeta.erofs", argv[3]);
	snprintf(vmdk, sizeof(vmdk), "%s/merged.vmdk", argv[3]);
	el_error_clear(&err);
	if (convert(argv[1], lower, &err) < 0 || convert(argv[2], upper, &err) < 0)
		return die("convert", &err);

	const char *layers[] = { lower, upper };
	struct el_merge_opts mopts = { 0 };
	struct el_merge_result mres;
	if (el_merge(layers, 2, fsmeta, vmdk, &mopts, &mres, &err) < 0)
		return die("merge", &err);
	printf("merged: %llu inodes\n", (unsigned long long)mres.inodes);

	struct el_image *img;
	struct el_image_inode ino;
	char data[256] = "";
	if (el_image_open(upper, &img, &err) < 0)
		return die("open", &err);
	if (el_image_lookup(img, "etc/greeting", &ino, &err) < 0)
		return die("lookup", &err);
	ssize_t n = el_image_pread(img, &ino, data, sizeof(data) - 1, 0, &err);
	if (n < 0)
		return die("read", &err);
	el_image_close(img);
	printf("etc/greeting: %s", data);
	return 0;
}
