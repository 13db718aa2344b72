/* SPDX-License-Identifier: Apache-2.0 */
/* Small checksums used by the on-disk format. */
#ifndef EL_HASH_H
#define EL_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Raw Castagnoli CRC update (reflected 0x82F63B78), no pre/post inversion:
 * the superblock checksum is crc32c_update(0xFFFFFFFF, region) (§2.2). */
uint32_t el_crc32c_update(uint32_t crc, const void *buf, size_t len);

/* xxHash32, used for the xattr name bloom filter (§6.1). */
uint32_t el_xxh32(const void *buf, size_t len, uint32_t seed);

#endif
