/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dm-verity trees (lib/erofs/verity.c). Two judges from outside the library:
 * a tree computed here from the kernel's description (level by level,
 * sha256(salt || block), top level first), and cryptsetup's veritysetup,
 * which must accept every file the library writes. Sizes cover no tree
 * level (1 block), one level (2, 128), two (129, 16384) and three (16385).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "erofs-layer/verity.h"
#include "common/sha256.h"

#define BLK 4096u

static uint8_t *pattern(uint64_t blocks, uint32_t seed)
{
	uint8_t *p = malloc(blocks * BLK);
	uint32_t x = seed * 2654435761u + 1;

	assert_non_null(p);
	for (uint64_t i = 0; i < blocks * BLK; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
	/* some whole zero blocks (holes, padding) among the data */
	if (blocks > 3)
		memset(p + 2 * BLK, 0, BLK);
	return p;
}

static int memfd_with(const uint8_t *data, uint64_t bytes)
{
	int fd = memfd_create("verity", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)bytes), 0);
	assert_int_equal(pwrite(fd, data, bytes, 0), (ssize_t)bytes);
	return fd;
}

/* The reference: digests of data, then of each level's blocks, to the root. */
static void ref_root(const uint8_t *data, uint64_t n, uint8_t root[32])
{
	static const uint8_t salt[32];
	struct el_sha256 *h = el_sha256_new();
	uint8_t *cur = malloc(n * 32);

	for (uint64_t i = 0; i < n; i++)
		el_sha256_two(h, salt, 32, data + i * BLK, BLK, cur + i * 32);
	while (n > 1) {
		uint64_t blocks = (n + 127) / 128;
		uint8_t *lvl = calloc(blocks, BLK);
		memcpy(lvl, cur, n * 32);
		free(cur);
		cur = malloc(blocks * 32);
		for (uint64_t j = 0; j < blocks; j++)
			el_sha256_two(h, salt, 32, lvl + j * BLK, BLK, cur + j * 32);
		free(lvl);
		n = blocks;
	}
	memcpy(root, cur, 32);
	free(cur);
	el_sha256_free(h);
}

static bool veritysetup_accepts(int fd, const struct el_verity_info *info)
{
	char cmd[512], path[64], hex[65];

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)getpid(), fd);
	el_verity_root_hex(info, hex);
	snprintf(cmd, sizeof(cmd),
		 "veritysetup verify %s %s %s --hash-offset=%llu >/dev/null 2>&1", path, path, hex,
		 (unsigned long long)info->hash_offset);
	int st = system(cmd);
	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void check_file(int fd, const uint8_t *data, uint64_t n, const struct el_verity_info *info)
{
	uint8_t want[32];
	struct el_error err;
	struct el_verity_info got;
	struct stat st;

	ref_root(data, n, want);
	assert_memory_equal(info->root, want, 32);
	assert_int_equal(info->data_blocks, n);
	assert_int_equal(info->hash_offset, n * BLK);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal((uint64_t)st.st_size, info->file_bytes);
	el_error_clear(&err);
	assert_int_equal(el_verity_check(fd, info->hash_offset, want, &got, &err), 0);
	assert_memory_equal(got.root, want, 32);
	assert_true(veritysetup_accepts(fd, info));
}

static const uint64_t sizes[] = { 1, 2, 128, 129, 16384, 16385 };

/* The writer's way: pieces of odd sizes in order, a hole left unwritten,
 * block 0 last; the result equals the reference and appending to the file. */
static void test_streamed(void **state)
{
	(void)state;
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		uint64_t n = sizes[s];
		uint8_t *data = pattern(n, (uint32_t)n);
		int fd = memfd_with(data, n * BLK);
		struct el_verity *v;
		struct el_verity_info info, app;
		struct el_error err;

		assert_int_equal(el_verity_new(&v), 0);
		uint64_t pos = n > 1 ? BLK : 0, step = 1;
		while (pos < n * BLK) {
			uint64_t k = step * 1237 % (3 * BLK) + 1;
			if (pos + k > n * BLK)
				k = n * BLK - pos;
			/* block 2 is a hole: never fed */
			if (!(n > 3 && pos >= 2 * BLK && pos < 3 * BLK))
				assert_int_equal(el_verity_feed(v, pos, data + pos, k), 0);
			else
				k = 3 * BLK - pos;
			pos += k;
			step++;
		}
		if (n > 1)
			assert_int_equal(el_verity_feed(v, 0, data, BLK), 0);
		el_error_clear(&err);
		assert_int_equal(el_verity_finish(v, fd, n * BLK, NULL, &info, &err), 0);
		el_verity_free(v);
		check_file(fd, data, n, &info);

		int fd2 = memfd_with(data, n * BLK);
		assert_int_equal(el_verity_append(fd2, NULL, &app, &err), 0);
		assert_memory_equal(app.root, info.root, 32);
		check_file(fd2, data, n, &app);
		close(fd2);
		close(fd);
		free(data);
	}
}

/* A piece that goes back into a block half hashed: the file is read instead. */
static void test_out_of_order(void **state)
{
	(void)state;
	uint64_t n = 300;
	uint8_t *data = pattern(n, 7);
	int fd = memfd_with(data, n * BLK);
	struct el_verity *v;
	struct el_verity_info info;
	struct el_error err;

	assert_int_equal(el_verity_new(&v), 0);
	assert_int_equal(el_verity_feed(v, 100 * BLK, data + 100 * BLK, 10), 0);
	assert_int_equal(el_verity_feed(v, 5 * BLK + 3, data + 5 * BLK + 3, 100), 0);
	el_error_clear(&err);
	assert_int_equal(el_verity_finish(v, fd, n * BLK, NULL, &info, &err), 0);
	el_verity_free(v);
	check_file(fd, data, n, &info);
	close(fd);
	free(data);
}

/* A flipped byte is found and named: in the data, in the tree, in the
 * superblock; a file cut short; a root that is not the tree's. */
static void test_tamper(void **state)
{
	(void)state;
	uint64_t n = 16385;
	uint8_t *data = pattern(n, 3);
	int fd = memfd_with(data, n * BLK);
	struct el_verity_info info;
	struct el_error err;
	uint8_t b, other[32];

	el_error_clear(&err);
	assert_int_equal(el_verity_append(fd, NULL, &info, &err), 0);

	/* data block 9000 */
	assert_int_equal(pread(fd, &b, 1, 9000 * BLK + 17), 1);
	b ^= 1;
	assert_int_equal(pwrite(fd, &b, 1, 9000 * BLK + 17), 1);
	el_error_clear(&err);
	assert_int_equal(el_verity_check(fd, info.hash_offset, info.root, NULL, &err), -EBADMSG);
	assert_int_equal(err.offset, 9000 * BLK);
	assert_non_null(strstr(err.msg, "data block 9000 "));
	assert_false(veritysetup_accepts(fd, &info));
	b ^= 1;
	assert_int_equal(pwrite(fd, &b, 1, 9000 * BLK + 17), 1);

	/* the top level, first after the superblock */
	uint64_t top = info.hash_offset + BLK;
	assert_int_equal(pread(fd, &b, 1, top + 5), 1);
	b ^= 0x80;
	assert_int_equal(pwrite(fd, &b, 1, top + 5), 1);
	el_error_clear(&err);
	assert_int_equal(el_verity_check(fd, info.hash_offset, info.root, NULL, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "level 2"));
	assert_int_equal(err.offset, top + 5);
	b ^= 0x80;
	assert_int_equal(pwrite(fd, &b, 1, top + 5), 1);

	/* the superblock's algorithm */
	assert_int_equal(pwrite(fd, "sha1\0\0", 6, info.hash_offset + 32), 6);
	el_error_clear(&err);
	assert_int_equal(el_verity_check(fd, info.hash_offset, info.root, NULL, &err), -EBADMSG);
	assert_int_equal(err.offset, info.hash_offset + 32);
	assert_non_null(strstr(err.msg, "sha1"));
	assert_int_equal(pwrite(fd, "sha256", 6, info.hash_offset + 32), 6);

	memcpy(other, info.root, 32);
	other[31] ^= 1;
	el_error_clear(&err);
	assert_int_equal(el_verity_check(fd, info.hash_offset, other, NULL, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "root hash"));

	assert_int_equal(ftruncate(fd, (off_t)info.file_bytes - 1), 0);
	el_error_clear(&err);
	assert_int_equal(el_verity_check(fd, info.hash_offset, info.root, NULL, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "ends before its hash tree"));
	assert_int_equal(ftruncate(fd, (off_t)info.file_bytes), 0);
	b = 0;
	assert_int_equal(pwrite(fd, &b, 1, info.file_bytes - 1), 1);
	el_error_clear(&err);
	assert_int_equal(el_verity_check(fd, info.hash_offset, info.root, NULL, &err), 0);
	close(fd);
	free(data);
}

static void test_sidecar(void **state)
{
	(void)state;
	struct el_verity_info info = { .hash_offset = 8192 };
	char buf[256];
	uint8_t root[32];
	uint64_t off;
	struct el_error err;

	for (int i = 0; i < 32; i++)
		info.root[i] = (uint8_t)(i * 7);
	int n = el_verity_sidecar_format(&info, buf, sizeof(buf));
	el_error_clear(&err);
	assert_int_equal(el_verity_sidecar_parse(buf, (size_t)n, root, &off, &err), 0);
	assert_memory_equal(root, info.root, 32);
	assert_int_equal(off, 8192);

	static const struct {
		const char *text;
		uint64_t at;
		const char *says;
	} bad[] = {
		{ "", 0, "expected an object" },
		{ "{\"hashoffset\": 4096}", 20, "no \"roothash\"" },
		{ "{\"roothash\": \"00\", \"hashoffset\": 4096}", 14, "64 lowercase hex" },
		{ "{\"roothash\": \"" "0000000000000000000000000000000000000000000000000000000000000000"
		  "\", \"hashoffset\": 4095}", 95, "multiple of 4096" },
		{ "{\"roothash\": \"" "000000000000000000000000000000000000000000000000000000000000000A"
		  "\", \"hashoffset\": 4096}", 14, "64 lowercase hex" },
		{ "{\"hashoffset\": 4096, \"hashoffset\": 4096}", 34, "twice" },
		{ "{\"x\": 1}", 1, "unknown key" },
		{ "{\"hashoffset\": 4096} x", 21, "trailing" },
		{ "{\"hashoffset\": 99999999999999999999}", 15, "too large" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		el_error_clear(&err);
		assert_int_equal(el_verity_sidecar_parse(bad[i].text, strlen(bad[i].text), root, &off,
							 &err),
				 -EINVAL);
		if (!strstr(err.msg, bad[i].says) || err.offset != bad[i].at)
			fail_msg("%s: got \"%s\" at %llu", bad[i].text, err.msg,
				 (unsigned long long)err.offset);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_streamed),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_tamper),
		cmocka_unit_test(test_sidecar),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
