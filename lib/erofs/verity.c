/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dm-verity hash trees (docs/verity.md): built while an image streams out of
 * the writer, appended to a finished image, checked, and the sidecar that
 * names the root hash.
 *
 * The tree is the kernel's (drivers/md/dm-verity-target.c) with cryptsetup's
 * superblock in front: level 0 holds the digest of every data block, 128 to
 * a 4096-byte hash block (zero-padded); level i+1 the digests of level i's
 * blocks; the top level is one block, and its digest is the root hash. Every
 * digest is sha256(salt || block) (hash type 1). On disk the top level comes
 * first: level i starts after all the levels above it.
 */
#include "erofs-layer/verity.h"
#include "verity-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/endian.h"
#include "common/io.h"
#include "common/macro.h"
#include "common/sha256.h"
#include "common/util.h"

#define BLK EL_VERITY_BLOCK
#define DIGEST 32u
#define PER_BLOCK (BLK / DIGEST) /* 128 digests in a hash block */
#define PER_BLOCK_BITS 7u
#define MAX_LEVELS 10		 /* 128^10 blocks: more than 2^64 bytes */
#define READ_CHUNK (1u << 20)

static const uint8_t salt[EL_VERITY_SALT_SIZE]; /* containerd's: 32 zero bytes */
static const uint8_t zero_block[BLK];

/* cryptsetup's verity superblock, little-endian, 512 bytes at hash_offset */
struct verity_sb {
	uint8_t signature[8]; /* "verity\0\0" */
	uint32_t version;     /* 1 */
	uint32_t hash_type;   /* 1: salt first, digests padded to a power of two */
	uint8_t uuid[16];
	uint8_t algorithm[32]; /* "sha256" */
	uint32_t data_block_size;
	uint32_t hash_block_size;
	uint64_t data_blocks;
	uint16_t salt_size;
	uint8_t pad1[6];
	uint8_t salt[256];
	uint8_t pad2[168];
} __attribute__((packed));
_Static_assert(sizeof(struct verity_sb) == 512, "the verity superblock is 512 bytes");

/*
 * The writer's bytes are hashed on a thread of their own, beside the
 * conversion: feed copies them into a ring of 1 MiB slots (a piece that
 * continues the last slot waiting goes into it) and the worker hashes the
 * slots in order. Hashing on the writer's thread cost 16% of a 1.1 GB
 * conversion here (sha256 with SHA-NI: 1.4 GB/s).
 */
#define QSLOTS 4
#define QSLOT (1u << 20)

struct slot {
	uint64_t pos;
	size_t len;
	uint8_t *data;
};

struct hash_queue {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a slot filled, a slot freed, stop */
	struct slot slots[QSLOTS];
	unsigned head, count; /* slots[head] is the oldest; count are filled */
	bool busy;	      /* the worker is hashing slots[head] */
	bool stop;
	int error;
};

struct el_verity {
	struct hash_queue *q; /* NULL: hashed on the caller's thread */
	struct el_sha256 *h;
	uint8_t *leaves; /* the digest of each block hashed so far */
	size_t cap;	 /* in digests */
	uint64_t next;	 /* blocks [0, next) are hashed */
	uint8_t carry[BLK]; /* the first carry_len bytes of block next */
	size_t carry_len;
	bool reread; /* fed out of order: finish hashes the image from its file */
	uint8_t zero_digest[DIGEST];
};

void el_verity_root_hex(const struct el_verity_info *info, char out[65])
{
	el_hex(info->root, DIGEST, out);
}

static int feed_now(struct el_verity *v, uint64_t pos, const void *buf, size_t len);

static void *hash_worker(void *arg)
{
	struct el_verity *v = arg;
	struct hash_queue *q = v->q;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->count && !q->stop)
			pthread_cond_wait(&q->cond, &q->lock);
		if (!q->count)
			break;
		struct slot sl = q->slots[q->head];
		q->busy = true;
		pthread_mutex_unlock(&q->lock);
		int r = q->error ? 0 : feed_now(v, sl.pos, sl.data, sl.len);
		pthread_mutex_lock(&q->lock);
		if (r < 0 && !q->error)
			q->error = r;
		q->busy = false;
		q->head = (q->head + 1) % QSLOTS;
		q->count--;
		pthread_cond_broadcast(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

static void queue_free(struct hash_queue *q)
{
	for (unsigned i = 0; i < QSLOTS; i++)
		free(q->slots[i].data);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q);
}

static int queue_start(struct el_verity *v)
{
	struct hash_queue *q = calloc(1, sizeof(*q));

	if (!q)
		return -ENOMEM;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	for (unsigned i = 0; i < QSLOTS; i++) {
		if (!(q->slots[i].data = malloc(QSLOT))) {
			queue_free(q);
			return -ENOMEM;
		}
	}
	v->q = q;
	int r = pthread_create(&q->thread, NULL, hash_worker, v);
	if (r) {
		v->q = NULL;
		queue_free(q);
		return -r;
	}
	return 0;
}

/* Waits for the worker to hash everything queued and end; its error. */
static int queue_stop(struct el_verity *v)
{
	struct hash_queue *q = v->q;
	int r;

	if (!q)
		return 0;
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	r = q->error;
	v->q = NULL;
	queue_free(q);
	return r;
}

static void enqueue(struct hash_queue *q, uint64_t pos, const uint8_t *p, size_t len)
{
	pthread_mutex_lock(&q->lock);
	while (len) {
		struct slot *tail = q->count ? &q->slots[(q->head + q->count - 1) % QSLOTS] : NULL;
		bool tail_free = tail && !(q->busy && q->count == 1);
		size_t k;
		if (tail_free && tail->pos + tail->len == pos && tail->len < QSLOT) {
			k = EL_MIN(len, QSLOT - tail->len);
			memcpy(tail->data + tail->len, p, k);
			tail->len += k;
		} else {
			while (q->count == QSLOTS)
				pthread_cond_wait(&q->cond, &q->lock);
			struct slot *sl = &q->slots[(q->head + q->count) % QSLOTS];
			k = EL_MIN(len, (size_t)QSLOT);
			memcpy(sl->data, p, k);
			sl->pos = pos;
			sl->len = k;
			q->count++;
			pthread_cond_broadcast(&q->cond);
		}
		pos += k;
		p += k;
		len -= k;
	}
	pthread_mutex_unlock(&q->lock);
}

static int verity_new(bool threaded, struct el_verity **ret)
{
	struct el_verity *v = calloc(1, sizeof(*v));
	int r;

	if (!v || !(v->h = el_sha256_new())) {
		free(v);
		return -ENOMEM;
	}
	el_sha256_two(v->h, salt, sizeof(salt), zero_block, BLK, v->zero_digest);
	if (threaded && (r = queue_start(v)) < 0) {
		el_verity_free(v);
		return r;
	}
	*ret = v;
	return 0;
}

int el_verity_new(struct el_verity **ret)
{
	return verity_new(true, ret);
}

void el_verity_free(struct el_verity *v)
{
	if (!v)
		return;
	queue_stop(v);
	el_sha256_free(v->h);
	free(v->leaves);
	free(v);
}

static uint8_t *leaf(struct el_verity *v, uint64_t blk)
{
	return v->leaves + blk * DIGEST;
}

/* Room for the digest of block next. */
static int reserve(struct el_verity *v)
{
	if (v->next >= SIZE_MAX / DIGEST)
		return -EFBIG;
	return el_grow((void **)&v->leaves, &v->cap, (size_t)v->next + 1, DIGEST);
}

static int push(struct el_verity *v, const uint8_t *block)
{
	int r = reserve(v);
	if (r < 0)
		return r;
	if (block)
		el_sha256_two(v->h, salt, sizeof(salt), block, BLK, leaf(v, v->next));
	else
		memcpy(leaf(v, v->next), v->zero_digest, DIGEST);
	v->next++;
	return 0;
}

/* Zeros from the current position up to pos (never written: a hole). */
static int advance(struct el_verity *v, uint64_t pos)
{
	int r;

	if (v->carry_len) {
		uint64_t end = EL_MIN(pos, (v->next + 1) * BLK);
		size_t k = (size_t)(end - (v->next * BLK + v->carry_len));
		memset(v->carry + v->carry_len, 0, k);
		v->carry_len += k;
		if (v->carry_len < BLK)
			return 0;
		v->carry_len = 0;
		if ((r = push(v, v->carry)) < 0)
			return r;
	}
	while ((v->next + 1) * BLK <= pos)
		if ((r = push(v, NULL)) < 0)
			return r;
	v->carry_len = (size_t)(pos - v->next * BLK);
	memset(v->carry, 0, v->carry_len);
	return 0;
}

/* Whole blocks written again below the cursor (block 0, written last). */
static int refeed(struct el_verity *v, uint64_t pos, const uint8_t *p, size_t len)
{
	if (pos % BLK || len % BLK || pos + len > v->next * BLK) {
		v->reread = true;
		return 0;
	}
	for (size_t i = 0; i < len / BLK; i++)
		el_sha256_two(v->h, salt, sizeof(salt), p + i * BLK, BLK, leaf(v, pos / BLK + i));
	return 0;
}

int el_verity_feed(struct el_verity *v, uint64_t pos, const void *buf, size_t len)
{
	if (!v->q)
		return feed_now(v, pos, buf, len);
	if (len)
		enqueue(v->q, pos, buf, len);
	return 0;
}

static int feed_now(struct el_verity *v, uint64_t pos, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t cur = v->next * BLK + v->carry_len;
	int r;

	if (v->reread || !len)
		return 0;
	if (pos < cur)
		return refeed(v, pos, p, len);
	if (pos > cur && (r = advance(v, pos)) < 0)
		return r;
	if (v->carry_len) {
		size_t k = EL_MIN(len, BLK - v->carry_len);
		memcpy(v->carry + v->carry_len, p, k);
		v->carry_len += k;
		p += k;
		len -= k;
		if (v->carry_len < BLK)
			return 0;
		v->carry_len = 0;
		if ((r = push(v, v->carry)) < 0)
			return r;
	}
	for (; len >= BLK; p += BLK, len -= BLK)
		if ((r = push(v, p)) < 0)
			return r;
	memcpy(v->carry, p, len);
	v->carry_len = len;
	return 0;
}

/* Hashes [0, bytes) of fd from scratch. */
static int feed_from(struct el_verity *v, int fd, uint64_t bytes, struct el_error *err)
{
	_cleanup_free_ uint8_t *buf = malloc(READ_CHUNK);
	int r;

	if (!buf)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	v->next = 0;
	v->carry_len = 0;
	v->reread = false;
	for (uint64_t off = 0; off < bytes; off += READ_CHUNK) {
		size_t k = (size_t)EL_MIN((uint64_t)READ_CHUNK, bytes - off);
		r = el_pread_full(fd, buf, k, off);
		if (r < 0)
			return el_error_set(err, r, "image", off, "cannot read the image: %s",
					    strerror(-r));
		if ((r = feed_now(v, off, buf, k)) < 0)
			return el_error_set(err, r, NULL, EL_NO_OFFSET, "out of memory");
	}
	return 0;
}

/* ---- the tree ---- */

struct layout {
	unsigned levels;
	uint64_t blocks[MAX_LEVELS]; /* hash blocks of level i */
	uint64_t off[MAX_LEVELS];    /* byte offset of level i */
	uint64_t end;
};

static void plan_tree(uint64_t data_blocks, uint64_t hash_offset, struct layout *l)
{
	uint64_t pos = hash_offset + BLK;

	*l = (struct layout){ 0 };
	while (l->levels < MAX_LEVELS && ((data_blocks - 1) >> (PER_BLOCK_BITS * l->levels)))
		l->levels++;
	for (unsigned i = 0; i < l->levels; i++) {
		unsigned sh = PER_BLOCK_BITS * (i + 1);
		l->blocks[i] = sh >= 64 ? 1 : (data_blocks + (1ull << sh) - 1) >> sh;
	}
	for (unsigned i = l->levels; i-- > 0;) {
		l->off[i] = pos;
		pos += l->blocks[i] * BLK;
	}
	l->end = pos;
}

bool el_verity_present(int fd, uint64_t hash_offset)
{
	char sig[8];

	return el_pread_full(fd, sig, sizeof(sig), hash_offset) == 0 &&
	       !memcmp(sig, "verity\0\0", 8);
}

uint64_t el_verity_tree_bytes(uint64_t data_blocks)
{
	struct layout l;

	if (!data_blocks)
		return 0;
	plan_tree(data_blocks, 0, &l);
	return l.end;
}

/* What becomes of each level's bytes: written, or compared with the file. */
struct tree_out {
	int fd;
	bool check;
	uint64_t bad; /* check: byte offset of the first mismatch */
	unsigned bad_level;
};

static int level_out(struct tree_out *o, const uint8_t *buf, uint64_t len, uint64_t off,
		     unsigned level, struct el_error *err)
{
	if (!o->check) {
		int r = el_pwrite_full(o->fd, buf, len, off);
		return r < 0 ? el_error_set(err, r, "image", off, "cannot write the hash tree: %s",
					    strerror(-r))
			     : 0;
	}
	_cleanup_free_ uint8_t *have = malloc(READ_CHUNK);
	if (!have)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	for (uint64_t at = 0; at < len; at += READ_CHUNK) {
		size_t k = (size_t)EL_MIN((uint64_t)READ_CHUNK, len - at);
		int r = el_pread_full(o->fd, have, k, off + at);
		if (r < 0)
			return el_error_set(err, r, "image", off + at,
					    "cannot read the hash tree: %s", strerror(-r));
		if (memcmp(have, buf + at, k)) {
			size_t i = 0;
			while (have[i] == buf[at + i])
				i++;
			o->bad = off + at + i;
			o->bad_level = level;
			return 1;
		}
	}
	return 0;
}

/*
 * Level by level from the leaves up, each level out once complete; the root
 * into root. digests holds n digests and room for a whole number of blocks'
 * worth (reused as the first level). Returns 1 when a check found a
 * mismatch.
 */
static int build_tree(struct el_sha256 *h, uint8_t **digests, size_t *cap, uint64_t n,
		      const struct layout *l, struct tree_out *o, uint8_t root[DIGEST],
		      struct el_error *err)
{
	uint8_t *cur = *digests;
	uint64_t count = n;
	int r = 0;

	if (l->levels == 0) {
		memcpy(root, cur, DIGEST);
		return 0;
	}
	for (unsigned i = 0; i < l->levels; i++) {
		uint64_t bytes = l->blocks[i] * BLK;
		if (i == 0) {
			if (el_grow((void **)digests, cap, (size_t)(bytes / DIGEST), DIGEST) < 0)
				return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
			cur = *digests;
		}
		memset(cur + count * DIGEST, 0, (size_t)(bytes - count * DIGEST));
		r = level_out(o, cur, bytes, l->off[i], i, err);
		if (r != 0)
			break;
		uint8_t *up = malloc((size_t)EL_ROUND_UP(l->blocks[i], (uint64_t)PER_BLOCK) * DIGEST);
		if (!up) {
			r = el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
			break;
		}
		for (uint64_t j = 0; j < l->blocks[i]; j++)
			el_sha256_two(h, salt, sizeof(salt), cur + j * BLK, BLK, up + j * DIGEST);
		if (cur != *digests)
			free(cur);
		cur = up;
		count = l->blocks[i];
	}
	if (r == 0)
		memcpy(root, cur, DIGEST);
	if (cur != *digests)
		free(cur);
	return r;
}

static void sb_fill(struct verity_sb *sb, uint64_t data_blocks, const uint8_t uuid[16])
{
	memset(sb, 0, sizeof(*sb));
	memcpy(sb->signature, "verity\0\0", 8);
	sb->version = htole32(1);
	sb->hash_type = htole32(1);
	memcpy(sb->uuid, uuid, 16);
	memcpy(sb->algorithm, "sha256", 6);
	sb->data_block_size = htole32(BLK);
	sb->hash_block_size = htole32(BLK);
	sb->data_blocks = htole64(data_blocks);
	sb->salt_size = htole16(EL_VERITY_SALT_SIZE);
	memcpy(sb->salt, salt, sizeof(salt));
}

static int write_tree(struct el_verity *v, int fd, uint64_t image_bytes, const uint8_t *uuid,
		      struct el_verity_info *ret, struct el_error *err)
{
	struct el_verity_info info = { .data_blocks = v->next, .hash_offset = image_bytes };
	struct tree_out o = { .fd = fd };
	struct layout l;
	uint8_t blk[BLK] = { 0 };
	int r;

	if (!v->next)
		return el_error_set(err, -EINVAL, NULL, EL_NO_OFFSET,
				    "an empty image has no hash tree");
	plan_tree(v->next, image_bytes, &l);
	r = build_tree(v->h, &v->leaves, &v->cap, v->next, &l, &o, info.root, err);
	if (r < 0)
		return r;
	if (uuid)
		memcpy(info.uuid, uuid, 16);
	else
		el_uuid_from_name("dm-verity", info.root, DIGEST, info.uuid);
	sb_fill((struct verity_sb *)blk, v->next, info.uuid);
	r = el_pwrite_full(fd, blk, BLK, image_bytes);
	if (r < 0)
		return el_error_set(err, r, "image", image_bytes,
				    "cannot write the verity superblock: %s", strerror(-r));
	info.file_bytes = l.end;
	*ret = info;
	return 0;
}

int el_verity_finish(struct el_verity *v, int fd, uint64_t image_bytes, const uint8_t *uuid,
		     struct el_verity_info *ret, struct el_error *err)
{
	int r;

	if (image_bytes % BLK)
		return el_error_set(err, -EINVAL, "image", image_bytes,
				    "the image does not end on a 4096-byte block");
	if ((r = queue_stop(v)) < 0)
		return el_error_set(err, r, NULL, EL_NO_OFFSET, "cannot hash the image: %s",
				    strerror(-r));
	if (v->next * BLK + v->carry_len > image_bytes)
		v->reread = true; /* fed past the end: trust the file */
	if (v->reread)
		r = feed_from(v, fd, image_bytes, err);
	else if ((r = advance(v, image_bytes)) < 0)
		r = el_error_set(err, r, NULL, EL_NO_OFFSET, "out of memory");
	if (r < 0)
		return r;
	return write_tree(v, fd, image_bytes, uuid, ret, err);
}

int el_verity_append(int fd, const uint8_t *uuid, struct el_verity_info *ret,
		     struct el_error *err)
{
	struct el_verity *v = NULL;
	struct stat st;
	int r;

	if (fstat(fd, &st) < 0)
		return el_error_set(err, -errno, NULL, EL_NO_OFFSET, "cannot stat the image: %m");
	if ((r = verity_new(false, &v)) < 0)
		return el_error_set(err, r, NULL, EL_NO_OFFSET, "out of memory");
	/* the image is padded to a whole block: dm-verity covers blocks */
	uint64_t bytes = EL_ROUND_UP((uint64_t)st.st_size, (uint64_t)BLK);
	r = feed_from(v, fd, (uint64_t)st.st_size, err);
	if (r == 0 && (r = advance(v, bytes)) < 0)
		r = el_error_set(err, r, NULL, EL_NO_OFFSET, "out of memory");
	if (r == 0)
		r = write_tree(v, fd, bytes, uuid, ret, err);
	el_verity_free(v);
	return r;
}

/* ---- checking ---- */

static int sb_check(const struct verity_sb *sb, uint64_t hash_offset, struct el_error *err)
{
#define BAD(field, ...)                                                                    \
	el_error_set(err, -EBADMSG, "image", hash_offset + offsetof(struct verity_sb, field), \
		     "verity superblock: " __VA_ARGS__)
	if (memcmp(sb->signature, "verity\0\0", 8))
		return BAD(signature, "no \"verity\" signature");
	if (le32toh(sb->version) != 1)
		return BAD(version, "version %u, expected 1", le32toh(sb->version));
	if (le32toh(sb->hash_type) != 1)
		return BAD(hash_type, "hash type %u, expected 1", le32toh(sb->hash_type));
	if (strncmp((const char *)sb->algorithm, "sha256", sizeof(sb->algorithm)))
		return BAD(algorithm, "algorithm \"%.32s\", expected sha256",
			   (const char *)sb->algorithm);
	if (le32toh(sb->data_block_size) != BLK || le32toh(sb->hash_block_size) != BLK)
		return BAD(data_block_size, "block sizes %u/%u, expected 4096/4096",
			   le32toh(sb->data_block_size), le32toh(sb->hash_block_size));
	if (le16toh(sb->salt_size) != EL_VERITY_SALT_SIZE ||
	    memcmp(sb->salt, salt, sizeof(salt)))
		return BAD(salt_size, "not the salt of 32 zero bytes");
	uint64_t n = le64toh(sb->data_blocks);
	if (!n || n > hash_offset / BLK)
		return BAD(data_blocks, "%llu data blocks, the hash area starts at block %llu",
			   (unsigned long long)n, (unsigned long long)(hash_offset / BLK));
	return 0;
#undef BAD
}

static void report(const struct tree_out *o, const struct layout *l, uint64_t data_blocks,
		   struct el_error *err)
{
	uint64_t blk = o->bad_level == 0 ? (o->bad - l->off[0]) / DIGEST : 0;

	if (o->bad_level == 0 && blk < data_blocks) {
		el_error_set(err, -EBADMSG, "image", blk * BLK,
			     "data block %llu does not match its hash (hash tree byte %llu)",
			     (unsigned long long)blk, (unsigned long long)o->bad);
	} else if (o->bad_level == 0) {
		el_error_set(err, -EBADMSG, "image", o->bad,
			     "the padding of the hash tree's last leaf block is not zero");
	} else {
		el_error_set(err, -EBADMSG, "image", o->bad,
			     "the hash tree's level %u does not match the level below it",
			     o->bad_level);
	}
}

int el_verity_check(int fd, uint64_t hash_offset, const uint8_t root[32],
		    struct el_verity_info *ret, struct el_error *err)
{
	union {
		struct verity_sb sb;
		uint8_t raw[BLK];
	} u;
	struct el_verity_info info = { .hash_offset = hash_offset };
	struct el_verity *v = NULL;
	struct layout l;
	int r;

	struct stat st;

	if (hash_offset % BLK)
		return el_error_set(err, -EINVAL, NULL, EL_NO_OFFSET,
				    "hash offset %llu is not a multiple of 4096",
				    (unsigned long long)hash_offset);
	if (fstat(fd, &st) < 0)
		return el_error_set(err, -errno, NULL, EL_NO_OFFSET, "cannot stat the image: %m");
	if ((uint64_t)st.st_size < hash_offset + BLK)
		return el_error_set(err, -EBADMSG, "image", (uint64_t)st.st_size,
				    "the file ends before its verity superblock (at byte %llu)",
				    (unsigned long long)hash_offset);
	r = el_pread_full(fd, u.raw, BLK, hash_offset);
	if (r < 0)
		return el_error_set(err, r, "image", hash_offset,
				    "cannot read the verity superblock: %s", strerror(-r));
	if ((r = sb_check(&u.sb, hash_offset, err)) < 0)
		return r;
	info.data_blocks = le64toh(u.sb.data_blocks);
	memcpy(info.uuid, u.sb.uuid, 16);
	plan_tree(info.data_blocks, hash_offset, &l);
	if ((uint64_t)st.st_size < l.end)
		return el_error_set(err, -EBADMSG, "image", (uint64_t)st.st_size,
				    "the file ends before its hash tree does (at byte %llu)",
				    (unsigned long long)l.end);
	if ((r = verity_new(false, &v)) < 0)
		return el_error_set(err, r, NULL, EL_NO_OFFSET, "out of memory");
	r = feed_from(v, fd, info.data_blocks * BLK, err);
	if (r == 0) {
		struct tree_out o = { .fd = fd, .check = true };
		r = build_tree(v->h, &v->leaves, &v->cap, v->next, &l, &o, info.root, err);
		if (r == 1) {
			report(&o, &l, info.data_blocks, err);
			r = -EBADMSG;
		}
		info.file_bytes = l.end;
	}
	el_verity_free(v);
	if (r < 0)
		return r;
	if (memcmp(info.root, root, DIGEST)) {
		char want[65], got[65];
		el_hex(root, DIGEST, want);
		el_hex(info.root, DIGEST, got);
		return el_error_set(err, -EBADMSG, "image", hash_offset,
				    "the tree's root hash is %s, expected %s", got, want);
	}
	if (ret)
		*ret = info;
	return 0;
}

/* ---- the sidecar ---- */

int el_verity_sidecar_format(const struct el_verity_info *info, char *buf, size_t len)
{
	char hex[65];

	el_verity_root_hex(info, hex);
	return snprintf(buf, len, "{\n  \"roothash\": \"%s\",\n  \"hashoffset\": %llu\n}\n", hex,
			(unsigned long long)info->hash_offset);
}

struct json {
	const char *s;
	size_t len, pos;
	struct el_error *err;
};

static void ws(struct json *j)
{
	while (j->pos < j->len && strchr(" \t\r\n", j->s[j->pos]))
		j->pos++;
}

static int json_bad(struct json *j, const char *what)
{
	return el_error_set(j->err, -EINVAL, "sidecar", j->pos, "dm-verity sidecar: %s", what);
}

static bool json_eat(struct json *j, char c)
{
	ws(j);
	if (j->pos < j->len && j->s[j->pos] == c) {
		j->pos++;
		return true;
	}
	return false;
}

/* A string without escapes (keys and hex are plain ASCII): [*start, +*n). */
static int json_string(struct json *j, size_t *start, size_t *n)
{
	if (!json_eat(j, '"'))
		return json_bad(j, "expected a string");
	*start = j->pos;
	while (j->pos < j->len && j->s[j->pos] != '"') {
		if (j->s[j->pos] == '\\' || (unsigned char)j->s[j->pos] < 0x20)
			return json_bad(j, "escapes and control characters are not expected");
		j->pos++;
	}
	if (j->pos >= j->len)
		return json_bad(j, "unterminated string");
	*n = j->pos - *start;
	j->pos++;
	return 0;
}

static int json_uint(struct json *j, uint64_t *ret)
{
	uint64_t v = 0;
	size_t start;

	ws(j);
	start = j->pos;
	while (j->pos < j->len && j->s[j->pos] >= '0' && j->s[j->pos] <= '9') {
		if (el_mul_overflow(v, (uint64_t)10, &v) ||
		    el_add_overflow(v, (uint64_t)(j->s[j->pos] - '0'), &v)) {
			j->pos = start;
			return json_bad(j, "number too large");
		}
		j->pos++;
	}
	if (j->pos == start || (j->pos - start > 1 && j->s[start] == '0'))
		return json_bad(j, "expected a non-negative integer");
	*ret = v;
	return 0;
}

static int unhex(const char *s, size_t n, uint8_t *out)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return -1;
		out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] | d : d << 4);
	}
	return 0;
}

int el_verity_sidecar_parse(const char *text, size_t len, uint8_t root[32], uint64_t *hash_offset,
			    struct el_error *err)
{
	struct json j = { .s = text, .len = len, .err = err };
	bool have_root = false, have_off = false;
	int r;

	if (!json_eat(&j, '{'))
		return json_bad(&j, "expected an object");
	if (!json_eat(&j, '}')) {
		do {
			size_t k, kn;
			if ((r = json_string(&j, &k, &kn)) < 0)
				return r;
			if (!json_eat(&j, ':'))
				return json_bad(&j, "expected ':'");
			if (kn == 8 && !memcmp(text + k, "roothash", 8)) {
				size_t v, vn;
				if (have_root)
					return json_bad(&j, "\"roothash\" twice");
				if ((r = json_string(&j, &v, &vn)) < 0)
					return r;
				if (vn != 2 * DIGEST || unhex(text + v, vn, root) < 0) {
					j.pos = v;
					return json_bad(&j, "\"roothash\" is not 64 lowercase hex digits");
				}
				have_root = true;
			} else if (kn == 10 && !memcmp(text + k, "hashoffset", 10)) {
				if (have_off)
					return json_bad(&j, "\"hashoffset\" twice");
				size_t at = (ws(&j), j.pos);
				if ((r = json_uint(&j, hash_offset)) < 0)
					return r;
				if (*hash_offset % BLK || !*hash_offset) {
					j.pos = at;
					return json_bad(&j, "\"hashoffset\" is not a positive multiple of 4096");
				}
				have_off = true;
			} else {
				j.pos = k - 1;
				return json_bad(&j, "unknown key");
			}
		} while (json_eat(&j, ','));
		if (!json_eat(&j, '}'))
			return json_bad(&j, "expected ',' or '}'");
	}
	ws(&j);
	if (j.pos != len)
		return json_bad(&j, "trailing bytes after the object");
	if (!have_root)
		return json_bad(&j, "no \"roothash\"");
	if (!have_off)
		return json_bad(&j, "no \"hashoffset\"");
	return 0;
}

#define SIDECAR_SUFFIX ".dmverity"
#define SIDECAR_MAX 4096 /* ours is about 110 bytes */

int el_verity_sidecar_write(const char *image, const struct el_verity_info *info,
			    struct el_error *err)
{
	_cleanup_free_ char *path = NULL;
	struct el_outfile of;
	char buf[256];
	int n, r;

	if (asprintf(&path, "%s" SIDECAR_SUFFIX, image) < 0)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	n = el_verity_sidecar_format(info, buf, sizeof(buf));
	r = el_outfile_create(&of, path, 0644, err);
	if (r < 0)
		return r;
	r = el_write_full(of.fd, buf, (size_t)n);
	if (r < 0)
		r = el_error_set(err, r, NULL, EL_NO_OFFSET, "cannot write %s: %s", path, strerror(-r));
	return el_outfile_finish(&of, r, path, err);
}

int el_verity_sidecar_read(const char *path, uint8_t root[32], uint64_t *hash_offset,
			   struct el_error *err)
{
	_cleanup_free_ char *owned = NULL;
	size_t n = strlen(path), sn = strlen(SIDECAR_SUFFIX);
	char buf[SIDECAR_MAX + 1];
	ssize_t got;
	int r;

	if (n < sn || strcmp(path + n - sn, SIDECAR_SUFFIX)) {
		if (asprintf(&owned, "%s" SIDECAR_SUFFIX, path) < 0)
			return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
		path = owned;
	}
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return el_error_set(err, -errno, NULL, EL_NO_OFFSET, "cannot open %s: %m", path);
	got = el_read_full(fd, buf, sizeof(buf));
	if (got < 0)
		return el_error_set(err, (int)got, NULL, EL_NO_OFFSET, "cannot read %s: %s", path,
				    strerror((int)-got));
	if (got > SIDECAR_MAX)
		return el_error_set(err, -EINVAL, NULL, EL_NO_OFFSET,
				    "%s: larger than %u bytes, not a dm-verity sidecar", path,
				    SIDECAR_MAX);
	r = el_verity_sidecar_parse(buf, (size_t)got, root, hash_offset, err);
	if (r < 0) {
		/* the file's name in front of what was wrong */
		size_t pn = EL_MIN(strlen(path) + 2, sizeof(err->msg) - 1);
		memmove(err->msg + pn, err->msg, sizeof(err->msg) - pn - 1);
		err->msg[sizeof(err->msg) - 1] = 0;
		memcpy(err->msg, path, pn - 2);
		memcpy(err->msg + pn - 2, ": ", 2);
	}
	return r;
}

int el_publish_image(struct el_outfile *of, int r, const char *path,
		     const struct el_writer_stats *st, struct el_error *err)
{
	bool side = false;

	if (r >= 0 && st && st->verity) {
		r = el_verity_sidecar_write(path, &st->verity_info, err);
		side = r >= 0;
	}
	r = el_outfile_finish(of, r, path, err);
	if (r < 0 && side) {
		_cleanup_free_ char *p = NULL;
		if (asprintf(&p, "%s" SIDECAR_SUFFIX, path) >= 0)
			unlink(p);
	}
	return r;
}
