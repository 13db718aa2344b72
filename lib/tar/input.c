/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The layer byte stream. A producer thread reads (and, for gzip or zstd,
 * decompresses) into a small ring of windows; the consumer takes them one at
 * a time with el_input_next. With two cores, decompression runs beside the
 * parsing and writing instead of before it.
 *
 * The sha256 of the uncompressed stream is computed on the side that has the
 * spare time: the producer for plain tar (a read is cheaper than a write), the
 * consumer for compressed input (inflate is the slowest stage). A plain tar
 * in a regular file is read too, not mapped: in a VM, the faults and TLB
 * misses of a mapping cost more than the copy (converting a 3.3 GB tar took
 * 7.5-8 s of CPU mapped, 4.0-4.3 s read, and less wall time; RSS 37 MiB
 * instead of 50-64).
 *
 * Compressed input is read by a third thread, the fetcher, into a ring of
 * chunks that the producer inflates in place: the producer does nothing but
 * inflate, and whatever the source costs (a gRPC stream, the blob's own
 * digest in the daemon's read function) runs beside it.
 */
#include "erofs-layer/input.h"

#include <errno.h>
#include <fcntl.h>
#include <isa-l/igzip_lib.h>
#include <pthread.h>
#include <sys/stat.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "common/io.h"
#include "common/macro.h"
#include "common/sha256.h"

#define WINDOW_SIZE (1u << 20)
#define NWINDOWS 4
#define CHUNK_SIZE (256u << 10)
#define CHUNK_KEEP 16 /* room in front of a chunk for the previous one's tail */
#define NCHUNKS 8

struct window {
	uint8_t *buf;
	size_t len;
};

struct chunk {
	uint8_t *buf; /* CHUNK_KEEP bytes of room, then up to CHUNK_SIZE of data */
	size_t len;
};

struct el_input {
	int fd;
	el_read_fn read_fn;
	void *read_ud;
	enum el_compression compression;

	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct window win[NWINDOWS];
	unsigned head, count; /* filled windows: [head, head+count) */
	bool held;	      /* the consumer holds win[head] */
	bool eof, cancelled;
	struct el_error perr; /* producer's error, delivered after its data */

	/* The raw (compressed) bytes: chunk[0] holds what detect() read; for
	 * compressed input the fetcher fills the ring [chunk_head,
	 * chunk_head+chunk_count), whose first chunk the producer holds. */
	pthread_t fetch_thread;
	bool fetching;
	pthread_mutex_t chunk_lock;
	pthread_cond_t chunk_cond;
	struct chunk chunk[NCHUNKS];
	unsigned chunk_head, chunk_count;
	bool fetch_done; /* no chunk will follow: the end, or fetch_code */
	int fetch_code;

	/* producer-only state: the held chunk's bytes */
	uint8_t *raw;
	size_t raw_len, raw_pos;
	uint64_t raw_off; /* compressed bytes consumed before raw[0] */
	bool raw_eof;

	uint64_t offset; /* uncompressed bytes handed to the consumer */
	struct el_sha256 *sha;
	bool producer_hashes;
};

const char *el_compression_name(enum el_compression c)
{
	switch (c) {
	case EL_COMPRESSION_GZIP:
		return "gzip";
	case EL_COMPRESSION_ZSTD:
		return "zstd";
	default:
		return "none";
	}
}

static long raw_read(struct el_input *in, void *buf, size_t len)
{
	if (in->read_fn)
		return in->read_fn(in->read_ud, buf, len);
	ssize_t n = el_read_full(in->fd, buf, len);
	return n;
}

/* Set under lock, read under either lock. */
static bool is_cancelled(struct el_input *in)
{
	return __atomic_load_n(&in->cancelled, __ATOMIC_ACQUIRE);
}

/* The fetcher: reads the raw bytes into free chunks until the end, an error
 * or cancellation. */
static void *fetcher(void *arg)
{
	struct el_input *in = arg;
	long n = 1;

	while (n > 0) {
		struct chunk *c;
		size_t len = 0;

		pthread_mutex_lock(&in->chunk_lock);
		while (in->chunk_count == NCHUNKS && !is_cancelled(in))
			pthread_cond_wait(&in->chunk_cond, &in->chunk_lock);
		if (is_cancelled(in)) {
			pthread_mutex_unlock(&in->chunk_lock);
			break;
		}
		c = &in->chunk[(in->chunk_head + in->chunk_count) % NCHUNKS];
		pthread_mutex_unlock(&in->chunk_lock);

		while (len < CHUNK_SIZE && (n = raw_read(in, c->buf + CHUNK_KEEP + len, CHUNK_SIZE - len)) > 0)
			len += (size_t)n;

		pthread_mutex_lock(&in->chunk_lock);
		c->len = len;
		if (len)
			in->chunk_count++;
		if (n <= 0) {
			in->fetch_done = true;
			in->fetch_code = (int)n;
		}
		pthread_cond_broadcast(&in->chunk_cond);
		pthread_mutex_unlock(&in->chunk_lock);
	}
	return NULL;
}

/* The producer, before raw_eof, moves on to the next chunk, carrying the
 * unconsumed tail of the held one (fewer than CHUNK_KEEP bytes: a split gzip
 * magic) in front of it. Returns the bytes now available (at the end:
 * raw_eof is set and the tail stays), -ECANCELED or the read error. */
static long raw_next(struct el_input *in)
{
	size_t keep = in->raw_len - in->raw_pos;
	struct chunk *next;
	int code;

	pthread_mutex_lock(&in->chunk_lock);
	while (in->chunk_count < 2 && !in->fetch_done && !is_cancelled(in))
		pthread_cond_wait(&in->chunk_cond, &in->chunk_lock);
	if (in->chunk_count < 2) {
		code = is_cancelled(in) ? -ECANCELED : in->fetch_code;
		pthread_mutex_unlock(&in->chunk_lock);
		if (code < 0)
			return code;
		in->raw_eof = true;
		return (long)keep;
	}
	next = &in->chunk[(in->chunk_head + 1) % NCHUNKS];
	pthread_mutex_unlock(&in->chunk_lock);

	memcpy(next->buf + CHUNK_KEEP - keep, in->raw + in->raw_pos, keep);
	in->raw_off += in->raw_pos;
	in->raw = next->buf + CHUNK_KEEP - keep;
	in->raw_len = keep + next->len;
	in->raw_pos = 0;

	pthread_mutex_lock(&in->chunk_lock);
	in->chunk_head = (in->chunk_head + 1) % NCHUNKS;
	in->chunk_count--;
	pthread_cond_broadcast(&in->chunk_cond);
	pthread_mutex_unlock(&in->chunk_lock);
	return (long)in->raw_len;
}

/* A failed raw_next as the producer's error; cancellation is no error. */
static int raw_failed(struct el_input *in, long r)
{
	if (r == -ECANCELED && is_cancelled(in))
		return 0;
	return el_error_set(&in->perr, (int)r, "compressed stream", in->raw_off + in->raw_len,
			    "read failed: %s", strerror((int)-r));
}

/* Wait for a free window; returns NULL when cancelled. */
static struct window *window_get(struct el_input *in)
{
	struct window *w = NULL;

	pthread_mutex_lock(&in->lock);
	while (in->count == NWINDOWS && !in->cancelled)
		pthread_cond_wait(&in->cond, &in->lock);
	if (!in->cancelled) {
		w = &in->win[(in->head + in->count) % NWINDOWS];
		w->len = 0;
	}
	pthread_mutex_unlock(&in->lock);
	return w;
}

static void window_put(struct el_input *in, struct window *w)
{
	if (in->producer_hashes)
		el_sha256_update(in->sha, w->buf, w->len);
	pthread_mutex_lock(&in->lock);
	in->count++;
	pthread_cond_broadcast(&in->cond);
	pthread_mutex_unlock(&in->lock);
}

static int produce_plain(struct el_input *in)
{
	/* The bytes already read for magic detection come first. */
	for (;;) {
		struct window *w = window_get(in);
		if (!w)
			return 0;
		size_t pre = EL_MIN(in->raw_len - in->raw_pos, (size_t)WINDOW_SIZE);
		memcpy(w->buf, in->raw + in->raw_pos, pre);
		in->raw_pos += pre;
		w->len = pre;
		if (w->len < WINDOW_SIZE && !in->raw_eof) {
			long n = raw_read(in, w->buf + w->len, WINDOW_SIZE - w->len);
			if (n < 0)
				return el_error_set(&in->perr, (int)n, "tar stream",
						    in->raw_off + in->raw_len, "read failed: %s",
						    strerror((int)-n));
			if (n == 0)
				in->raw_eof = true;
			w->len += (size_t)n;
			in->raw_off += (uint64_t)n;
		}
		if (w->len == 0)
			return 0;
		window_put(in, w);
	}
}

static const char *isal_error_name(int code)
{
	switch (code) {
	case ISAL_INVALID_BLOCK:
		return "invalid deflate block";
	case ISAL_INVALID_SYMBOL:
		return "invalid deflate symbol";
	case ISAL_INVALID_LOOKBACK:
		return "invalid back-reference distance";
	case ISAL_INVALID_WRAPPER:
		return "invalid gzip header or trailer";
	case ISAL_UNSUPPORTED_METHOD:
		return "unsupported compression method in the gzip header";
	case ISAL_INCORRECT_CHECKSUM:
		return "gzip CRC32 or length mismatch";
	default:
		return "inflate failed";
	}
}

static int produce_gzip(struct el_input *in)
{
	struct inflate_state st;
	struct window *w = NULL;
	bool member_done = true;

	for (;;) {
		size_t avail = in->raw_len - in->raw_pos;

		if (!in->raw_eof && (avail == 0 || (member_done && avail < 2))) {
			long r = raw_next(in);
			if (r < 0)
				return raw_failed(in, r);
			continue;
		}
		if (member_done) {
			if (avail == 0)
				break; /* clean end after a whole member */
			if (avail < 2 || in->raw[in->raw_pos] != 0x1f || in->raw[in->raw_pos + 1] != 0x8b)
				return el_error_set(&in->perr, -EINVAL, "compressed stream",
						    in->raw_off + in->raw_pos,
						    "trailing garbage after gzip member");
			isal_inflate_init(&st);
			st.crc_flag = ISAL_GZIP;
			member_done = false;
		}
		if (!w) {
			w = window_get(in);
			if (!w)
				return 0;
		}
		st.next_in = in->raw + in->raw_pos;
		st.avail_in = (uint32_t)avail;
		st.next_out = w->buf + w->len;
		st.avail_out = (uint32_t)(WINDOW_SIZE - w->len);
		uint32_t in_before = st.avail_in, out_before = st.avail_out;
		int ret = isal_inflate(&st);
		in->raw_pos += in_before - st.avail_in;
		w->len += out_before - st.avail_out;
		if (ret != ISAL_DECOMP_OK)
			return el_error_set(&in->perr, -EINVAL, "compressed stream",
					    in->raw_off + in->raw_pos,
					    "corrupt gzip data: %s", isal_error_name(ret));
		if (st.block_state == ISAL_BLOCK_FINISH)
			member_done = true;
		else if (in_before == st.avail_in && out_before == st.avail_out && in->raw_eof)
			return el_error_set(&in->perr, -EINVAL, "compressed stream",
					    in->raw_off + in->raw_len,
					    "truncated gzip stream");
		if (w->len == WINDOW_SIZE) {
			window_put(in, w);
			w = NULL;
		}
	}
	if (w && w->len)
		window_put(in, w);
	return 0;
}

static int produce_zstd(struct el_input *in)
{
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	struct window *w = NULL;
	size_t last = 0; /* 0: between frames, all flushed */
	int ret = 0;

	if (!dctx)
		return el_error_set(&in->perr, -ENOMEM, "compressed stream", EL_NO_OFFSET,
				    "out of memory");
	for (;;) {
		bool drained = in->raw_pos == in->raw_len;

		if (drained && !in->raw_eof) {
			long r = raw_next(in);
			if (r < 0) {
				ret = raw_failed(in, r);
				break;
			}
			continue;
		}
		if (drained && last == 0)
			break; /* clean end after whole frames */
		if (!w) {
			w = window_get(in);
			if (!w)
				break;
		}
		ZSTD_inBuffer ib = { in->raw + in->raw_pos, in->raw_len - in->raw_pos, 0 };
		ZSTD_outBuffer ob = { w->buf, WINDOW_SIZE, w->len };
		last = ZSTD_decompressStream(dctx, &ob, &ib);
		in->raw_pos += ib.pos;
		if (ZSTD_isError(last)) {
			ret = el_error_set(&in->perr, -EINVAL, "compressed stream",
					   in->raw_off + in->raw_pos, "corrupt zstd data: %s",
					   ZSTD_getErrorName(last));
			break;
		}
		/* at the end of the input a frame may still have output to
		 * flush: only a call that moves nothing means a cut stream */
		if (drained && ob.pos == w->len) {
			ret = el_error_set(&in->perr, -EINVAL, "compressed stream",
					   in->raw_off + in->raw_len, "truncated zstd stream");
			break;
		}
		w->len = ob.pos;
		if (w->len == WINDOW_SIZE) {
			window_put(in, w);
			w = NULL;
		}
	}
	if (w && w->len && ret == 0)
		window_put(in, w);
	ZSTD_freeDCtx(dctx);
	return ret;
}

static void *producer(void *arg)
{
	struct el_input *in = arg;

	switch (in->compression) {
	case EL_COMPRESSION_GZIP:
		produce_gzip(in);
		break;
	case EL_COMPRESSION_ZSTD:
		produce_zstd(in);
		break;
	default:
		produce_plain(in);
		break;
	}
	pthread_mutex_lock(&in->lock);
	in->eof = true;
	pthread_cond_broadcast(&in->cond);
	pthread_mutex_unlock(&in->lock);
	return NULL;
}

static int detect(struct el_input *in, struct el_error *err)
{
	static const uint8_t zstd_magic[4] = { 0x28, 0xb5, 0x2f, 0xfd };

	/* Read enough to see a magic number, however the source splits reads. */
	while (in->raw_len < 6 && !in->raw_eof) {
		long n = raw_read(in, in->raw + in->raw_len, CHUNK_SIZE - in->raw_len);
		if (n < 0)
			return el_error_set(err, (int)n, "input", in->raw_len, "read failed: %s",
					    strerror((int)-n));
		if (n == 0)
			in->raw_eof = true;
		in->raw_len += (size_t)n;
	}
	const uint8_t *p = in->raw;
	if (in->raw_len >= 2 && p[0] == 0x1f && p[1] == 0x8b)
		in->compression = EL_COMPRESSION_GZIP;
	else if (in->raw_len >= 4 && memcmp(p, zstd_magic, 4) == 0)
		in->compression = EL_COMPRESSION_ZSTD;
	else if (in->raw_len >= 6 && memcmp(p, "\xfd" "7zXZ\0", 6) == 0)
		return el_error_set(err, -EPROTONOSUPPORT, "input", 0,
				    "xz-compressed input is not supported (use gzip or zstd)");
	else if (in->raw_len >= 3 && memcmp(p, "BZh", 3) == 0)
		return el_error_set(err, -EPROTONOSUPPORT, "input", 0,
				    "bzip2-compressed input is not supported (use gzip or zstd)");
	else
		in->compression = EL_COMPRESSION_NONE;
	in->producer_hashes = in->compression == EL_COMPRESSION_NONE;
	in->chunk[0].len = in->raw_len;
	in->chunk_count = 1;
	return 0;
}

/* Compressed input that is not all read yet gets the fetcher. */
static int start_fetcher(struct el_input *in, struct el_error *err)
{
	int r;

	if (in->compression == EL_COMPRESSION_NONE || in->raw_eof)
		return 0;
	for (unsigned i = 1; i < NCHUNKS; i++) {
		in->chunk[i].buf = malloc(CHUNK_KEEP + CHUNK_SIZE);
		if (!in->chunk[i].buf)
			return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	}
	r = pthread_create(&in->fetch_thread, NULL, fetcher, in);
	if (r)
		return el_error_set(err, -r, NULL, EL_NO_OFFSET, "cannot start a thread");
	in->fetching = true;
	return 0;
}

static int input_start(struct el_input *in, struct el_input **ret, struct el_error *err)
{
	int r;

	pthread_mutex_init(&in->lock, NULL);
	pthread_cond_init(&in->cond, NULL);
	pthread_mutex_init(&in->chunk_lock, NULL);
	pthread_cond_init(&in->chunk_cond, NULL);
	in->sha = el_sha256_new();
	in->chunk[0].buf = malloc(CHUNK_KEEP + CHUNK_SIZE);
	in->raw = in->chunk[0].buf ? in->chunk[0].buf + CHUNK_KEEP : NULL;
	if (!in->sha || !in->raw) {
		r = el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < NWINDOWS; i++) {
		in->win[i].buf = malloc(WINDOW_SIZE);
		if (!in->win[i].buf) {
			r = el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
			goto fail;
		}
	}
	r = detect(in, err);
	if (r < 0)
		goto fail;
	r = start_fetcher(in, err);
	if (r < 0)
		goto fail;
	r = pthread_create(&in->thread, NULL, producer, in);
	if (r) {
		r = el_error_set(err, -r, NULL, EL_NO_OFFSET, "cannot start a thread");
		goto fail;
	}
	in->started = true;
	*ret = in;
	return 0;
fail:
	el_input_free(in);
	return r;
}

int el_input_new_fd(int fd, struct el_input **ret, struct el_error *err)
{
	struct el_input *in = calloc(1, sizeof(*in));
	if (!in)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	el_error_clear(&in->perr);
	in->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (in->fd < 0) {
		int r = -errno;
		free(in);
		return el_error_set(err, r, NULL, EL_NO_OFFSET, "cannot duplicate input fd");
	}
	posix_fadvise(in->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return input_start(in, ret, err);
}

int el_input_new_reader(el_read_fn fn, void *ud, struct el_input **ret, struct el_error *err)
{
	struct el_input *in = calloc(1, sizeof(*in));
	if (!in)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	el_error_clear(&in->perr);
	in->fd = -1;
	in->read_fn = fn;
	in->read_ud = ud;
	return input_start(in, ret, err);
}

int el_input_next(struct el_input *in, const uint8_t **ret_buf, size_t *ret_len,
		  struct el_error *err)
{
	struct window *w;

	pthread_mutex_lock(&in->lock);
	if (in->held) {
		in->head = (in->head + 1) % NWINDOWS;
		in->count--;
		in->held = false;
		pthread_cond_broadcast(&in->cond);
	}
	while (in->count == 0 && !in->eof)
		pthread_cond_wait(&in->cond, &in->lock);
	if (in->count == 0) {
		pthread_mutex_unlock(&in->lock);
		if (in->perr.code) {
			*err = in->perr;
			return in->perr.code;
		}
		*ret_buf = NULL;
		*ret_len = 0;
		return 0;
	}
	w = &in->win[in->head];
	in->held = true;
	pthread_mutex_unlock(&in->lock);
	if (!in->producer_hashes)
		el_sha256_update(in->sha, w->buf, w->len);
	in->offset += w->len;
	*ret_buf = w->buf;
	*ret_len = w->len;
	return 0;
}

enum el_compression el_input_compression(const struct el_input *in)
{
	return in->compression;
}

uint64_t el_input_offset(const struct el_input *in)
{
	return in->offset;
}

void el_input_digest(struct el_input *in, uint8_t ret_digest[32])
{
	el_sha256_final(in->sha, ret_digest);
}

void el_input_cancel(struct el_input *in)
{
	pthread_mutex_lock(&in->lock);
	__atomic_store_n(&in->cancelled, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&in->cond);
	pthread_mutex_unlock(&in->lock);
	pthread_mutex_lock(&in->chunk_lock);
	pthread_cond_broadcast(&in->chunk_cond);
	pthread_mutex_unlock(&in->chunk_lock);
}

void el_input_free(struct el_input *in)
{
	if (!in)
		return;
	if (in->started || in->fetching)
		el_input_cancel(in);
	if (in->started)
		pthread_join(in->thread, NULL);
	if (in->fetching)
		pthread_join(in->fetch_thread, NULL);
	for (unsigned i = 0; i < NWINDOWS; i++)
		free(in->win[i].buf);
	for (unsigned i = 0; i < NCHUNKS; i++)
		free(in->chunk[i].buf);
	el_sha256_free(in->sha);
	if (in->fd >= 0)
		close(in->fd);
	pthread_mutex_destroy(&in->lock);
	pthread_cond_destroy(&in->cond);
	pthread_mutex_destroy(&in->chunk_lock);
	pthread_cond_destroy(&in->chunk_cond);
	free(in);
}
