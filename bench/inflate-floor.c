/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The raw inflate floor of a .gz layer: isa-l's isal_inflate (the inflater
 * erofs-layer uses) from the file to /dev/null, one thread, nothing else.
 * convert-bench.sh compares our gzip conversion speed with it.
 *
 *   gcc -O2 -o inflate-floor inflate-floor.c -lisal
 *   inflate-floor FILE.gz    →  "<uncompressed bytes> <seconds> <MB/s>"
 *
 * Concatenated gzip members are inflated one after the other, as the layer
 * reader does. MB are 10^6 bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <isa-l/igzip_lib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IN_SIZE (256u << 10) /* what erofs-layer reads at a time */
#define OUT_SIZE (1u << 20)

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static uint8_t in[IN_SIZE], out[OUT_SIZE];
	struct inflate_state st;
	struct timespec t0, t1;
	size_t in_len = 0, in_pos = 0;
	uint64_t total = 0;
	int eof = 0, member = 0, fd, null;

	if (argc != 2) {
		fprintf(stderr, "usage: %s FILE.gz\n", argv[0]);
		return 2;
	}
	fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || null < 0) {
		perror(argv[1]);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		/* refill, keeping what is not consumed */
		if (in_pos > 0) {
			memmove(in, in + in_pos, in_len - in_pos);
			in_len -= in_pos;
			in_pos = 0;
		}
		while (!eof && in_len < IN_SIZE) {
			ssize_t n = read(fd, in + in_len, IN_SIZE - in_len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				perror("read");
				return 1;
			}
			if (n == 0)
				eof = 1;
			in_len += (size_t)n;
			break;
		}
		if (!member) {
			if (in_len == 0 && eof)
				break;
			if (in_len < 2 && !eof)
				continue;
			if (in_len < 2 || in[0] != 0x1f || in[1] != 0x8b) {
				fprintf(stderr, "%s: not gzip (or trailing garbage)\n", argv[1]);
				return 1;
			}
			isal_inflate_init(&st);
			st.crc_flag = ISAL_GZIP;
			member = 1;
		}
		st.next_in = in;
		st.avail_in = (uint32_t)in_len;
		st.next_out = out;
		st.avail_out = OUT_SIZE;
		int r = isal_inflate(&st);
		in_pos = in_len - st.avail_in;
		size_t produced = OUT_SIZE - st.avail_out;
		if (r != ISAL_DECOMP_OK) {
			fprintf(stderr, "%s: isal_inflate failed (%d)\n", argv[1], r);
			return 1;
		}
		if (produced && write_all(null, out, produced) < 0) {
			perror("write");
			return 1;
		}
		total += produced;
		if (st.block_state == ISAL_BLOCK_FINISH)
			member = 0;
		else if (!produced && !in_pos && eof) {
			fprintf(stderr, "%s: truncated gzip stream\n", argv[1]);
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("%llu %.3f %.1f\n", (unsigned long long)total, s, s > 0 ? (double)total / s / 1e6 : 0.0);
	return 0;
}
