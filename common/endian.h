/* SPDX-License-Identifier: Apache-2.0 */
/* Little-endian encode/decode at the on-disk boundary. */
#ifndef EL_ENDIAN_H
#define EL_ENDIAN_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t el_get_le16(const void *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static inline uint32_t el_get_le32(const void *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static inline uint64_t el_get_le64(const void *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static inline void el_put_le16(void *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof(v));
}

static inline void el_put_le32(void *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static inline void el_put_le64(void *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

/* Field access by name on a packed on-disk struct. */
#define EL_LE_GET(s, field)                                                       \
	(sizeof((s)->field) == 8   ? el_get_le64(&(s)->field)                         \
	 : sizeof((s)->field) == 4 ? el_get_le32(&(s)->field)                         \
	 : sizeof((s)->field) == 2 ? el_get_le16(&(s)->field)                         \
				   : (uint64_t)*(const uint8_t *)&(s)->field)
#define EL_LE_PUT(s, field, v)                                                    \
	do {                                                                      \
		if (sizeof((s)->field) == 8)                                      \
			el_put_le64(&(s)->field, (uint64_t)(v));                  \
		else if (sizeof((s)->field) == 4)                                 \
			el_put_le32(&(s)->field, (uint32_t)(v));                  \
		else if (sizeof((s)->field) == 2)                                 \
			el_put_le16(&(s)->field, (uint16_t)(v));                  \
		else                                                              \
			*(uint8_t *)&(s)->field = (uint8_t)(v);                   \
	} while (0)

#endif
