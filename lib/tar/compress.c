/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tar writer's output stage.
 *
 * Plain tar: the bytes go straight into an EL_TARW_CHUNK output buffer that
 * is hashed and handed to the sink when full; that one sha256 is both the
 * diffID and the digest.
 *
 * gzip and zstd: the bytes are copied into a ring of STAGE_SIZE pieces. A
 * full piece goes to a hasher thread (the diffID: sha256 costs about half as
 * much as isa-l's deflate, so on two cores it comes for free) and, on the
 * caller's thread, to the compressor, whose output gathers in the output
 * buffer as above (hashed there: the blob digest). The compressor thus sees
 * the same pieces for the same stream whatever the caller's write sizes:
 * isa-l's output depends on how its input is cut. Should the thread not
 * start, the caller hashes the pieces itself.
 */
#include "compress-internal.h"

#include <errno.h>
#include <isa-l/igzip_lib.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "common/macro.h"
#include "common/sha256.h"

#define OUT_SIZE EL_TARW_CHUNK
#define STAGE_SIZE (256u << 10)
#define NRING 4

struct zout {
	enum el_compression c;
	el_tarw_write_fn write;
	void *ud;
	struct el_sha256 *sha_in; /* NULL for NONE: sha_out serves both */
	struct el_sha256 *sha_out;
	uint8_t *out;
	size_t out_len;
	uint64_t in_bytes;  /* taken from the caller */
	uint64_t out_bytes; /* given to the sink */

	/* compressed forms: piece number n lives in ring[n % NRING] */
	uint8_t *ring[NRING];
	size_t ring_len[NRING]; /* of submitted pieces */
	size_t stage_len;	/* bytes in the piece being filled */
	bool has_lock;
	bool has_hasher;
	pthread_t hasher;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* under lock: */
	uint64_t submitted; /* pieces handed to the hasher */
	uint64_t hashed;    /* pieces it is done with */
	bool quit;

	struct isal_zstream *gz;
	uint8_t *level_buf;
	ZSTD_CCtx *zs;
};

/* RFC 1952 §2.3: ID1 ID2 CM=8 (deflate) FLG=0 MTIME=0 XFL=0 OS=255 */
static const uint8_t gzip_header[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255 };

static int gzip_init(struct zout *z, int level, struct el_error *err)
{
	uint32_t lbsize;

	switch (level) {
	case 0:
	case 1:
		level = 1;
		lbsize = ISAL_DEF_LVL1_DEFAULT;
		break;
	case 2:
		lbsize = ISAL_DEF_LVL2_DEFAULT;
		break;
	case 3:
		lbsize = ISAL_DEF_LVL3_DEFAULT;
		break;
	default:
		return el_error_set(err, -EINVAL, NULL, EL_NO_OFFSET,
				    "gzip level %d is not one of isa-l's levels 1..3", level);
	}
	z->gz = calloc(1, sizeof(*z->gz));
	z->level_buf = malloc(lbsize);
	if (!z->gz || !z->level_buf)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	isal_deflate_init(z->gz);
	z->gz->level = (uint32_t)level;
	z->gz->level_buf = z->level_buf;
	z->gz->level_buf_size = lbsize;
	/* our own member header (fixed bytes), isa-l's CRC32 + ISIZE trailer */
	z->gz->gzip_flag = IGZIP_GZIP_NO_HDR;
	z->gz->flush = NO_FLUSH;
	memcpy(z->out, gzip_header, sizeof(gzip_header));
	z->out_len = sizeof(gzip_header);
	return 0;
}

static int zstd_param(struct zout *z, ZSTD_cParameter p, int v, struct el_error *err)
{
	size_t r = ZSTD_CCtx_setParameter(z->zs, p, v);
	if (ZSTD_isError(r))
		return el_error_set(err, -EINVAL, NULL, EL_NO_OFFSET, "zstd parameter %d=%d: %s",
				    (int)p, v, ZSTD_getErrorName(r));
	return 0;
}

static int zstd_init(struct zout *z, int level, struct el_error *err)
{
	int r;

	if (level == 0)
		level = 3;
	if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
		return el_error_set(err, -EINVAL, NULL, EL_NO_OFFSET,
				    "zstd level %d is outside %d..%d", level, ZSTD_minCLevel(),
				    ZSTD_maxCLevel());
	z->zs = ZSTD_createCCtx();
	if (!z->zs)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	/* nbWorkers stays 0: compression runs on the caller's thread, and the
	 * sink is called from there only */
	if ((r = zstd_param(z, ZSTD_c_compressionLevel, level, err)) < 0 ||
	    (r = zstd_param(z, ZSTD_c_checksumFlag, 1, err)) < 0 ||
	    (r = zstd_param(z, ZSTD_c_contentSizeFlag, 0, err)) < 0 ||
	    (r = zstd_param(z, ZSTD_c_dictIDFlag, 0, err)) < 0)
		return r;
	return 0;
}

static void *hasher_main(void *arg)
{
	struct zout *z = arg;

	pthread_mutex_lock(&z->lock);
	for (;;) {
		while (z->hashed == z->submitted && !z->quit)
			pthread_cond_wait(&z->cond, &z->lock);
		if (z->hashed == z->submitted)
			break;
		size_t slot = (size_t)(z->hashed % NRING), len = z->ring_len[slot];
		pthread_mutex_unlock(&z->lock);
		el_sha256_update(z->sha_in, z->ring[slot], len);
		pthread_mutex_lock(&z->lock);
		z->hashed++;
		pthread_cond_broadcast(&z->cond);
	}
	pthread_mutex_unlock(&z->lock);
	return NULL;
}

/* Waits until the hasher is done with the slot the next piece goes to. */
static void slot_wait(struct zout *z)
{
	if (!z->has_hasher)
		return;
	pthread_mutex_lock(&z->lock);
	while (z->submitted >= z->hashed + NRING)
		pthread_cond_wait(&z->cond, &z->lock);
	pthread_mutex_unlock(&z->lock);
}

/* Hands the current piece to the hasher; returns it. */
static const uint8_t *slot_submit(struct zout *z, size_t len)
{
	size_t slot = (size_t)(z->submitted % NRING);

	if (!z->has_hasher) {
		el_sha256_update(z->sha_in, z->ring[slot], len);
		z->submitted++;
		return z->ring[slot];
	}
	pthread_mutex_lock(&z->lock);
	z->ring_len[slot] = len;
	z->submitted++;
	pthread_cond_broadcast(&z->cond);
	pthread_mutex_unlock(&z->lock);
	return z->ring[slot];
}

static void hasher_stop(struct zout *z)
{
	if (!z->has_hasher)
		return;
	pthread_mutex_lock(&z->lock);
	z->quit = true;
	pthread_cond_broadcast(&z->cond);
	pthread_mutex_unlock(&z->lock);
	pthread_join(z->hasher, NULL);
	z->has_hasher = false;
}

int zout_new(enum el_compression c, int level, el_tarw_write_fn write, void *ud,
	     struct zout **ret, struct el_error *err)
{
	struct zout *z = calloc(1, sizeof(*z));
	int r;

	if (!z)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	z->c = c;
	z->write = write;
	z->ud = ud;
	z->out = malloc(OUT_SIZE);
	z->sha_out = el_sha256_new();
	if (!z->out || !z->sha_out) {
		r = el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
		goto fail;
	}
	switch (c) {
	case EL_COMPRESSION_NONE:
		if (level != 0) {
			r = el_error_set(err, -EINVAL, NULL, EL_NO_OFFSET,
					 "a level (%d) without compression", level);
			goto fail;
		}
		*ret = z;
		return 0;
	case EL_COMPRESSION_GZIP:
	case EL_COMPRESSION_ZSTD:
		break;
	default:
		r = el_error_set(err, -EINVAL, NULL, EL_NO_OFFSET, "unknown compression %d",
				 (int)c);
		goto fail;
	}
	z->sha_in = el_sha256_new();
	if (!z->sha_in) {
		r = el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
		goto fail;
	}
	pthread_mutex_init(&z->lock, NULL);
	pthread_cond_init(&z->cond, NULL);
	z->has_lock = true;
	for (size_t i = 0; i < NRING; i++) {
		z->ring[i] = malloc(STAGE_SIZE);
		if (!z->ring[i]) {
			r = el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
			goto fail;
		}
	}
	r = c == EL_COMPRESSION_GZIP ? gzip_init(z, level, err) : zstd_init(z, level, err);
	if (r < 0)
		goto fail;
	z->has_hasher = pthread_create(&z->hasher, NULL, hasher_main, z) == 0;
	*ret = z;
	return 0;
fail:
	zout_free(z);
	return r;
}

void zout_free(struct zout *z)
{
	if (!z)
		return;
	if (z->has_lock) {
		hasher_stop(z);
		pthread_mutex_destroy(&z->lock);
		pthread_cond_destroy(&z->cond);
	}
	el_sha256_free(z->sha_in);
	el_sha256_free(z->sha_out);
	free(z->out);
	for (size_t i = 0; i < NRING; i++)
		free(z->ring[i]);
	free(z->gz);
	free(z->level_buf);
	ZSTD_freeCCtx(z->zs);
	free(z);
}

static int flush_out(struct zout *z, struct el_error *err)
{
	if (!z->out_len)
		return 0;
	el_sha256_update(z->sha_out, z->out, z->out_len);
	int r = z->write(z->ud, z->out, z->out_len);
	if (r < 0)
		return el_error_set(err, r, NULL, EL_NO_OFFSET,
				    "the output sink failed after %llu bytes: %s",
				    (unsigned long long)z->out_bytes, strerror(-r));
	z->out_bytes += z->out_len;
	z->out_len = 0;
	return 0;
}

static const char *isal_error_name(int code)
{
	switch (code) {
	case INVALID_FLUSH:
		return "invalid flush";
	case INVALID_PARAM:
		return "invalid parameter";
	case ISAL_INVALID_LEVEL:
		return "level not supported (by this build or CPU)";
	case ISAL_INVALID_LEVEL_BUF:
		return "level buffer too small";
	case ISAL_INVALID_STATE:
		return "invalid state";
	default:
		return "unknown error";
	}
}

static int gzip_run(struct zout *z, const uint8_t *in, size_t len, bool end,
		    struct el_error *err)
{
	struct isal_zstream *s = z->gz;

	s->next_in = (uint8_t *)in; /* isa-l does not write to its input */
	s->avail_in = (uint32_t)len;
	s->end_of_stream = end;
	for (;;) {
		uint32_t avail_in = s->avail_in;
		size_t out_before = z->out_len;
		s->next_out = z->out + z->out_len;
		s->avail_out = (uint32_t)(OUT_SIZE - z->out_len);
		int r = isal_deflate(s);
		z->out_len = OUT_SIZE - s->avail_out;
		if (r != COMP_OK)
			return el_error_set(err, -EIO, NULL, EL_NO_OFFSET, "isa-l deflate: %s (%d)",
					    isal_error_name(r), r);
		bool done = end ? s->internal_state.state == ZSTATE_END : s->avail_in == 0;
		if (z->out_len == OUT_SIZE) {
			r = flush_out(z, err);
			if (r < 0)
				return r;
		} else if (!done && s->avail_in == avail_in && z->out_len == out_before) {
			return el_error_set(err, -EIO, NULL, EL_NO_OFFSET,
					    "isa-l deflate made no progress");
		}
		if (done)
			return 0;
	}
}

static int zstd_run(struct zout *z, const uint8_t *in, size_t len, bool end,
		    struct el_error *err)
{
	ZSTD_inBuffer ib = { in, len, 0 };

	for (;;) {
		ZSTD_outBuffer ob = { z->out, OUT_SIZE, z->out_len };
		size_t r = ZSTD_compressStream2(z->zs, &ob, &ib,
						end ? ZSTD_e_end : ZSTD_e_continue);
		z->out_len = ob.pos;
		if (ZSTD_isError(r))
			return el_error_set(err, -EIO, NULL, EL_NO_OFFSET, "zstd: %s",
					    ZSTD_getErrorName(r));
		if (z->out_len == OUT_SIZE) {
			int k = flush_out(z, err);
			if (k < 0)
				return k;
		}
		/* e_end returns what is left to flush; e_continue may keep input
		 * back only while the output buffer is full */
		if (end ? r == 0 : ib.pos == ib.size)
			return 0;
	}
}

/* Hashes (through the hasher) and compresses the piece being filled. */
static int compress_piece(struct zout *z, bool end, struct el_error *err)
{
	size_t len = z->stage_len;
	const uint8_t *in = slot_submit(z, len);

	z->stage_len = 0;
	if (z->c == EL_COMPRESSION_GZIP)
		return gzip_run(z, in, len, end, err);
	return zstd_run(z, in, len, end, err);
}

static int write_plain(struct zout *z, const uint8_t *p, size_t len, struct el_error *err)
{
	while (len) {
		size_t k = EL_MIN(len, OUT_SIZE - z->out_len);
		memcpy(z->out + z->out_len, p, k);
		z->out_len += k;
		p += k;
		len -= k;
		if (z->out_len == OUT_SIZE) {
			int r = flush_out(z, err);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int zout_write(struct zout *z, const void *buf, size_t len, struct el_error *err)
{
	const uint8_t *p = buf;
	int r;

	z->in_bytes += len;
	if (z->c == EL_COMPRESSION_NONE)
		return write_plain(z, p, len, err);

	while (len) {
		if (z->stage_len == 0)
			slot_wait(z);
		uint8_t *stage = z->ring[z->submitted % NRING];
		size_t k = EL_MIN(len, STAGE_SIZE - z->stage_len);
		memcpy(stage + z->stage_len, p, k);
		z->stage_len += k;
		p += k;
		len -= k;
		if (z->stage_len == STAGE_SIZE) {
			r = compress_piece(z, false, err);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int zout_finish(struct zout *z, struct el_error *err)
{
	int r = 0;

	if (z->c != EL_COMPRESSION_NONE) {
		if (z->stage_len == 0)
			slot_wait(z); /* an empty last piece still takes a slot */
		r = compress_piece(z, true, err);
		hasher_stop(z); /* after the last piece: sha_in is ours again */
		if (r < 0)
			return r;
	}
	return flush_out(z, err);
}

void zout_result(struct zout *z, uint8_t diffid[32], uint8_t digest[32],
		 uint64_t *ret_uncompressed, uint64_t *ret_size)
{
	el_sha256_final(z->sha_out, digest);
	if (z->sha_in)
		el_sha256_final(z->sha_in, diffid);
	else
		memcpy(diffid, digest, 32);
	*ret_uncompressed = z->in_bytes;
	*ret_size = z->out_bytes;
}

uint64_t zout_offset(const struct zout *z)
{
	return z->in_bytes;
}
