/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers shared by the libFuzzer targets (and their replay runners): a read
 * callback that hands the input out in pieces of varying size, so that tar
 * headers and PAX records straddle the input windows, and memfd helpers.
 *
 * Everything here is static: each target is one translation unit.
 */
#ifndef EL_FUZZ_COMMON_H
#define EL_FUZZ_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "erofs-layer/error.h"

/* Inputs above this are ignored (a bound keeps each run fast). */
#define FUZZ_MAX_INPUT ((size_t)1 << 20)

/* Aborts with a message: a broken invariant is a finding, not a rejection. */
#define FUZZ_ASSERT(cond, ...)                                                     \
	do {                                                                       \
		if (!(cond)) {                                                     \
			fprintf(stderr, "fuzz invariant failed: %s (%s:%d): ", #cond, \
				__FILE__, __LINE__);                               \
			fprintf(stderr, __VA_ARGS__);                              \
			fputc('\n', stderr);                                       \
			abort();                                                   \
		}                                                                  \
	} while (0)

/* The input as an el_read_fn source. The piece sizes come from a hash of the
 * input, so a given input always splits the same way (reproducible crashes)
 * while different inputs exercise different window boundaries. */
struct fuzz_src {
	const uint8_t *p;
	size_t n, pos;
	uint64_t rng;
	unsigned mode;
};

static __attribute__((unused)) uint64_t fuzz_hash(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static __attribute__((unused)) void fuzz_src_init(struct fuzz_src *s, const uint8_t *p, size_t n)
{
	uint64_t h = fuzz_hash(p, n);

	*s = (struct fuzz_src){ .p = p, .n = n, .rng = h | 1, .mode = (unsigned)(h >> 61) };
}

static __attribute__((unused)) uint64_t fuzz_rng_next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static __attribute__((unused)) long fuzz_src_read(void *ud, void *buf, size_t len)
{
	struct fuzz_src *s = ud;
	size_t k = s->n - s->pos;

	if (k > len)
		k = len;
	switch (s->mode) {
	case 0: /* small random pieces */
	case 1: {
		static const size_t sizes[] = { 1, 3, 100, 511, 512, 513, 1000, 4096, 10000 };
		size_t c = sizes[fuzz_rng_next(&s->rng) % (sizeof(sizes) / sizeof(sizes[0]))];
		if (k > c)
			k = c;
		break;
	}
	case 2: /* odd-sized pieces around a block */
		if (k > 509)
			k = 509;
		break;
	default: /* whole reads */
		break;
	}
	memcpy(buf, s->p + s->pos, k);
	s->pos += k;
	return (long)k;
}

/* A sink the compiler cannot drop, so that reads of returned buffers happen. */
static volatile uint8_t fuzz_sink;

static __attribute__((unused)) void fuzz_touch(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t x = 0;

	for (size_t i = 0; i < n; i++)
		x ^= b[i];
	fuzz_sink ^= x;
}

static __attribute__((unused)) void fuzz_warn(void *ud, const char *what, uint64_t off, const char *msg)
{
	(void)ud;
	(void)off;
	/* Touch the strings: ASan sees a dangling or unterminated one. */
	FUZZ_ASSERT(msg && strlen(msg) < 4096, "warning message");
	fuzz_touch(msg, strlen(msg) + 1);
	if (what)
		fuzz_touch(what, strlen(what) + 1);
}

/* After a failing call: the error must have been recorded and be printable. */
static __attribute__((unused)) void fuzz_check_error(int r, const struct el_error *err)
{
	char buf[700];

	FUZZ_ASSERT(r < 0, "r=%d", r);
	FUZZ_ASSERT(err->code < 0, "call failed with %d but recorded no error", r);
	el_error_format(err, buf, sizeof(buf));
	FUZZ_ASSERT(strlen(buf) < sizeof(buf), "error text");
}

/* A memfd holding data (or empty); -1 on failure. */
static __attribute__((unused)) int fuzz_memfd(const void *data, size_t n)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);
	size_t done = 0;

	if (fd < 0) {
		perror("memfd_create");
		abort(); /* not a finding about the input: stop the run */
	}
	while (done < n) {
		ssize_t w = write(fd, (const uint8_t *)data + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			perror("write memfd");
			abort();
		}
		done += (size_t)w;
	}
	return fd;
}

#endif
