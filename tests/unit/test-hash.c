/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/shared/hash.c and el_hex: published test vectors, plus a bit-by-bit
 * CRC32C and a from-the-spec xxHash32 written here independently of the
 * library's table-driven and unrolled versions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/hash.h"
#include "common/sha256.h"

/* ---- independent references ---- */

/* Bitwise reflected CRC32C (Castagnoli, 0x82F63B78), no pre/post inversion. */
static uint32_t ref_crc32c(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
	}
	return crc;
}

/* xxHash32 as the specification (xxhash_spec.md, "XXH32 algorithm") states
 * it: stripes of 16 bytes into four lanes, convergence, length, remaining
 * 4-byte words and bytes, avalanche. */
#define P1 2654435761u
#define P2 2246822519u
#define P3 3266489917u
#define P4 668265263u
#define P5 374761393u

static uint32_t rol(uint32_t v, unsigned r)
{
	return (v << r) | (v >> (32 - r));
}

static uint32_t le32(const uint8_t *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t ref_xxh32(const uint8_t *in, size_t len, uint32_t seed)
{
	uint32_t acc;
	size_t i = 0;

	if (len >= 16) {
		uint32_t lane[4] = { seed + P1 + P2, seed + P2, seed + 0, seed - P1 };
		size_t stripes = len / 16;
		for (size_t s = 0; s < stripes; s++)
			for (int l = 0; l < 4; l++) {
				lane[l] = lane[l] + le32(in + 16 * s + 4 * l) * P2;
				lane[l] = rol(lane[l], 13) * P1;
			}
		i = stripes * 16;
		acc = rol(lane[0], 1) + rol(lane[1], 7) + rol(lane[2], 12) + rol(lane[3], 18);
	} else {
		acc = seed + P5;
	}
	acc = acc + (uint32_t)len;
	for (; len - i >= 4; i += 4)
		acc = rol(acc + le32(in + i) * P3, 17) * P4;
	for (; i < len; i++)
		acc = rol(acc + in[i] * P5, 11) * P1;
	acc ^= acc >> 15;
	acc *= P2;
	acc ^= acc >> 13;
	acc *= P3;
	acc ^= acc >> 16;
	return acc;
}

/* ---- CRC32C ---- */

static void test_crc32c_check_value(void **state)
{
	(void)state;
	/* The catalogued check value of CRC-32C is 0xE3069283 (init and final
	 * xor 0xFFFFFFFF); el_crc32c_update does no final xor. */
	uint32_t c = el_crc32c_update(0xFFFFFFFFu, "123456789", 9);
	assert_int_equal(c ^ 0xFFFFFFFFu, 0xE3069283u);
	assert_int_equal(c, 0x1CF96D7Cu);
}

static void test_crc32c_rfc3720(void **state)
{
	/* RFC 3720, B.4: 32-byte patterns (iSCSI uses the same init/xor) */
	uint8_t buf[32];
	(void)state;

	memset(buf, 0, sizeof(buf));
	assert_int_equal(el_crc32c_update(~0u, buf, 32) ^ ~0u, 0x8A9136AAu);
	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(el_crc32c_update(~0u, buf, 32) ^ ~0u, 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(el_crc32c_update(~0u, buf, 32) ^ ~0u, 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	assert_int_equal(el_crc32c_update(~0u, buf, 32) ^ ~0u, 0x113FDB5Cu);
}

static void test_crc32c_empty_and_split(void **state)
{
	uint8_t buf[300];
	(void)state;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	assert_int_equal(el_crc32c_update(0x12345678u, buf, 0), 0x12345678u);
	assert_int_equal(el_crc32c_update(0, NULL, 0), 0);
	/* every length and split point against the bitwise reference, so the
	 * slicing-by-8 loop and its byte tail both get covered */
	for (size_t len = 0; len <= 64; len++) {
		uint32_t want = ref_crc32c(0xFFFFFFFFu, buf + 3, len);
		assert_int_equal(el_crc32c_update(0xFFFFFFFFu, buf + 3, len), want);
		for (size_t cut = 0; cut <= len; cut++) {
			uint32_t c = el_crc32c_update(0xFFFFFFFFu, buf + 3, cut);
			c = el_crc32c_update(c, buf + 3 + cut, len - cut);
			assert_int_equal(c, want);
		}
	}
	assert_int_equal(el_crc32c_update(0, buf, sizeof(buf)), ref_crc32c(0, buf, sizeof(buf)));
}

/* ---- xxHash32 ---- */

static void test_xxh32_published_vectors(void **state)
{
	(void)state;
	assert_int_equal(el_xxh32("", 0, 0), 0x02CC5D05u);
	assert_int_equal(el_xxh32("a", 1, 0), 0x550D7456u);
	assert_int_equal(el_xxh32("abc", 3, 0), 0x32D153FFu);
	assert_int_equal(el_xxh32("foo", 3, 0), 0xE20F0DD9u);
	/* 39 bytes: the four-lane stripe loop, then 4-byte words and bytes */
	assert_int_equal(el_xxh32("Nobody inspects the spammish repetition", 39, 0),
			 0xE2293B2Fu);
}

static void test_xxh32_reference_matches_vectors(void **state)
{
	(void)state;
	/* the reference must agree with the published vectors before it can
	 * vouch for anything else */
	assert_int_equal(ref_xxh32((const uint8_t *)"", 0, 0), 0x02CC5D05u);
	assert_int_equal(ref_xxh32((const uint8_t *)"a", 1, 0), 0x550D7456u);
	assert_int_equal(ref_xxh32((const uint8_t *)"abc", 3, 0), 0x32D153FFu);
	assert_int_equal(
		ref_xxh32((const uint8_t *)"Nobody inspects the spammish repetition", 39, 0),
		0xE2293B2Fu);
}

static void test_xxh32_seeded_against_reference(void **state)
{
	uint8_t buf[100];
	(void)state;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 37 + 11);
	/* the xattr name filter's seed (EROFS_XATTR_FILTER_SEED + index) */
	uint32_t want = ref_xxh32(buf, 100, 0x25BBE08Fu);
	assert_int_equal(el_xxh32(buf, 100, 0x25BBE08Fu), want);
	assert_int_not_equal(want, ref_xxh32(buf, 100, 0x25BBE090u));
	for (size_t len = 0; len <= sizeof(buf); len++)
		for (uint32_t seed = 0x25BBE08Fu; seed < 0x25BBE08Fu + 7; seed += 3)
			assert_int_equal(el_xxh32(buf, len, seed), ref_xxh32(buf, len, seed));
	/* unaligned start */
	assert_int_equal(el_xxh32(buf + 1, 63, 0), ref_xxh32(buf + 1, 63, 0));
	/* a seed near the top wraps the lane initialisation */
	assert_int_equal(el_xxh32(buf, 64, 0xFFFFFFFFu), ref_xxh32(buf, 64, 0xFFFFFFFFu));
}

/* ---- el_hex ---- */

static void test_hex(void **state)
{
	static const uint8_t in[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff };
	char out[2 * sizeof(in) + 2];
	(void)state;

	memset(out, 'X', sizeof(out));
	el_hex(in, sizeof(in), out);
	assert_string_equal(out, "00017f80abcdefff");
	assert_int_equal(out[16], 0);
	assert_int_equal(out[17], 'X'); /* nothing written past the NUL */

	memset(out, 'X', sizeof(out));
	el_hex(in, 0, out);
	assert_int_equal(out[0], 0);
	assert_int_equal(out[1], 'X');
}

static void test_sha256_helper(void **state)
{
	/* FIPS 180-2 "abc" */
	struct el_sha256 *h = el_sha256_new();
	uint8_t d[32], d2[32];
	char hex[65];
	(void)state;

	assert_non_null(h);
	el_sha256_update(h, "a", 1);
	el_sha256_update(h, "", 0);
	el_sha256_update(h, "bc", 2);
	el_sha256_final(h, d);
	el_hex(d, 32, hex);
	assert_string_equal(hex,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	el_sha256_final(h, d2); /* finalises once */
	assert_memory_equal(d, d2, 32);
	el_sha256_free(h);
	el_sha256_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_check_value),
		cmocka_unit_test(test_crc32c_rfc3720),
		cmocka_unit_test(test_crc32c_empty_and_split),
		cmocka_unit_test(test_xxh32_published_vectors),
		cmocka_unit_test(test_xxh32_reference_matches_vectors),
		cmocka_unit_test(test_xxh32_seeded_against_reference),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_sha256_helper),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
