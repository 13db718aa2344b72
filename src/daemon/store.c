/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metadata store on LMDB (see store.h for the contract).
 *
 * Four named databases in one env file:
 *   meta      "version" → le32 STORE_FORMAT, "next_id" → le64 (first free id)
 *   snapshots kenc(key) → record (below)
 *   ids       be64 id → kenc(key)
 *   parents   be64 parent id ‖ be64 child id → "" (containerd keeps the
 *             same backlink, but keyed by name; by id it survives Commit's
 *             rename untouched, and "has children" is one cursor seek)
 *
 * Ids are big-endian in LMDB keys so that LMDB's bytewise order is numeric
 * order (id walks, the children range scan). Everything in a record value is
 * little-endian.
 *
 * kenc: LMDB keys are at most 511 bytes (mdb_env_get_maxkeysize in Debian's
 * build) and containerd keys may be 4096. A key of up to KEY_INLINE bytes is
 * its own LMDB key; a longer one becomes its first KEY_INLINE bytes, a 0 byte
 * and the SHA-256 of the whole key: KENC_MAX bytes, so it never equals an
 * inline key. Bytewise order is kept except among long keys sharing their
 * first KEY_INLINE bytes (they sort by hash). The format fixes KEY_INLINE,
 * not the LMDB build: the same file reads the same under any build whose
 * key limit is at least KENC_MAX (checked at open). The record repeats the
 * full key, and every read checks it, so a hash collision or a misfiled
 * record is reported as damage, never returned as another key's record.
 *
 * Record, format 1 (all little-endian):
 *   struct rec_hdr (68 bytes), key bytes, parent bytes,
 *   n_labels × { le32 klen, le32 vlen, key bytes, value bytes },
 *   le32 CRC32C of everything before it.
 * Strings carry no NUL. Labels are sorted by key, unique, values non-empty.
 * LMDB checksums nothing, so the CRC is what notices a flipped bit in a
 * value; the structure is still checked field by field after it.
 */
#include "store.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/endian.h"
#include "common/hash.h"
#include "common/macro.h"
#include "common/sha256.h"
#include "common/util.h"

#define STORE_FORMAT	    1
#define REC_VERSION	    1
#define KEY_INLINE	    448
#define KENC_MAX	    (KEY_INLINE + 1 + 32)
#define DEFAULT_MAX_READERS 510

struct rec_hdr {
	uint8_t version;
	uint8_t kind;
	uint16_t reserved; /* 0 */
	uint32_t flags;
	uint64_t id;
	uint64_t parent_id;
	uint64_t created; /* int64 ns, two's complement */
	uint64_t updated;
	uint64_t usage_size;
	uint64_t usage_inodes;
	uint32_t key_len;
	uint32_t parent_len;
	uint32_t n_labels;
} __attribute__((packed));

_Static_assert(sizeof(struct rec_hdr) == 68, "record header size");
_Static_assert(offsetof(struct rec_hdr, flags) == 4, "flags");
_Static_assert(offsetof(struct rec_hdr, id) == 8, "id");
_Static_assert(offsetof(struct rec_hdr, parent_id) == 16, "parent_id");
_Static_assert(offsetof(struct rec_hdr, created) == 24, "created");
_Static_assert(offsetof(struct rec_hdr, updated) == 32, "updated");
_Static_assert(offsetof(struct rec_hdr, usage_size) == 40, "usage_size");
_Static_assert(offsetof(struct rec_hdr, usage_inodes) == 48, "usage_inodes");
_Static_assert(offsetof(struct rec_hdr, key_len) == 56, "key_len");
_Static_assert(offsetof(struct rec_hdr, parent_len) == 60, "parent_len");
_Static_assert(offsetof(struct rec_hdr, n_labels) == 64, "n_labels");

#define REC_MIN (sizeof(struct rec_hdr) + 4)

struct store {
	MDB_env *env;
	MDB_dbi meta, snaps, ids, parents;
	/*
	 * First id not yet handed out by this process, at least the persistent
	 * counter. An aborted create does not advance the persistent counter,
	 * but its directory may already exist; without this the next create
	 * would get the same id. Ids are also reserved outside transactions
	 * (store_reserve_id), hence the lock.
	 */
	pthread_mutex_t id_lock;
	uint64_t id_hwm;
	bool deferred_sync; /* MDB_NOMETASYNC: see store_options */
};

struct store_txn {
	struct store *store;
	MDB_txn *t;
	bool write;
	int poisoned; /* error of a call that failed after it started writing */
	/* nesting: LMDB allows one open child per transaction, and a parent
	 * takes no calls while its child is open */
	struct store_txn *parent, *child;
	char err[512];
};

struct kenc {
	size_t len;
	uint8_t b[KENC_MAX];
};

/* ---- errors ---- */

/* Keys in messages: at most 120 bytes of them. */
#define KFMT	"\"%.*s%s\""
#define KARG(k) (int)EL_MIN(strlen(k), (size_t)120), (k), strlen(k) > 120 ? "..." : ""

static int __attribute__((format(printf, 3, 4)))
txn_errf(struct store_txn *txn, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(txn->err, sizeof(txn->err), fmt, ap);
	va_end(ap);
	return r;
}

static int mdb_errno(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
	case MDB_PAGE_FULL:
		return -ENOSPC;
	case MDB_READERS_FULL:
	case MDB_MAP_RESIZED:
		return -EAGAIN;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_INCOMPATIBLE:
	case MDB_VERSION_MISMATCH:
		return -EUCLEAN;
	case MDB_BAD_VALSIZE:
		return -EINVAL;
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

static int txn_mdb_err(struct store_txn *txn, int rc, const char *what)
{
	return txn_errf(txn, mdb_errno(rc), "%s: %s", what, mdb_strerror(rc));
}

/* A call failing after its first write leaves the transaction uncommittable. */
static int txn_poison(struct store_txn *txn, int r)
{
	if (!txn->poisoned)
		txn->poisoned = r;
	return r;
}

static int txn_usable(struct store_txn *txn, bool write)
{
	if (!txn || !txn->t)
		return -EINVAL;
	if (txn->child)
		return txn_errf(txn, -EBUSY, "transaction used while its child is open");
	if (write && !txn->write)
		return txn_errf(txn, -EROFS, "write through a read-only transaction");
	if (txn->poisoned)
		return txn->poisoned;
	return 0;
}

static int key_check(struct store_txn *txn, const char *key, const char *what)
{
	size_t len;

	if (!key || !*key)
		return txn_errf(txn, -EINVAL, "%s is empty", what);
	len = strnlen(key, STORE_KEY_MAX + 1);
	if (len > STORE_KEY_MAX)
		return txn_errf(txn, -EINVAL, "%s " KFMT " is longer than %d bytes", what,
				KARG(key), STORE_KEY_MAX);
	return 0;
}

/* ---- encodings ---- */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t crc32c(const void *buf, size_t len)
{
	return ~el_crc32c_update(~UINT32_C(0), buf, len);
}

static int kenc_make(const char *key, struct kenc *ret)
{
	size_t len = strlen(key);
	struct el_sha256 *h;

	if (len <= KEY_INLINE) {
		memcpy(ret->b, key, len);
		ret->len = len;
		return 0;
	}
	h = el_sha256_new();
	if (!h)
		return -ENOMEM;
	el_sha256_update(h, key, len);
	memcpy(ret->b, key, KEY_INLINE);
	ret->b[KEY_INLINE] = 0;
	el_sha256_final(h, ret->b + KEY_INLINE + 1);
	el_sha256_free(h);
	ret->len = KENC_MAX;
	return 0;
}

static int kenc_matches(const char *key, const MDB_val *k)
{
	struct kenc ke;
	int r = kenc_make(key, &ke);

	if (r < 0)
		return r;
	return ke.len == k->mv_size && !memcmp(ke.b, k->mv_data, ke.len);
}

static int label_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, EL_MIN(alen, blen));

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/*
 * Encodes v (labels sorted, unique, non-empty: normalised and validated by
 * the caller, which also bounds every length far below UINT32_MAX).
 */
static int rec_encode(const struct snap_info *v, uint8_t **ret_buf, size_t *ret_len)
{
	size_t klen = strlen(v->key), plen = v->parent ? strlen(v->parent) : 0;
	size_t size = sizeof(struct rec_hdr) + klen + plen + 4, off;
	struct rec_hdr h = {};
	uint8_t *buf;

	for (size_t i = 0; i < v->n_labels; i++) {
		size_t l = 8 + strlen(v->labels[i].key) + strlen(v->labels[i].value);

		if (el_add_overflow(size, l, &size))
			return -EOVERFLOW;
	}
	buf = malloc(size);
	if (!buf)
		return -ENOMEM;

	EL_LE_PUT(&h, version, REC_VERSION);
	EL_LE_PUT(&h, kind, v->kind);
	EL_LE_PUT(&h, flags, v->flags);
	EL_LE_PUT(&h, id, v->id);
	EL_LE_PUT(&h, parent_id, v->parent_id);
	EL_LE_PUT(&h, created, (uint64_t)v->created_ns);
	EL_LE_PUT(&h, updated, (uint64_t)v->updated_ns);
	EL_LE_PUT(&h, usage_size, v->usage_size);
	EL_LE_PUT(&h, usage_inodes, v->usage_inodes);
	EL_LE_PUT(&h, key_len, klen);
	EL_LE_PUT(&h, parent_len, plen);
	EL_LE_PUT(&h, n_labels, v->n_labels);
	memcpy(buf, &h, sizeof(h));
	off = sizeof(h);
	memcpy(buf + off, v->key, klen);
	off += klen;
	if (plen)
		memcpy(buf + off, v->parent, plen);
	off += plen;
	for (size_t i = 0; i < v->n_labels; i++) {
		size_t kl = strlen(v->labels[i].key), vl = strlen(v->labels[i].value);

		el_put_le32(buf + off, (uint32_t)kl);
		el_put_le32(buf + off + 4, (uint32_t)vl);
		off += 8;
		memcpy(buf + off, v->labels[i].key, kl);
		off += kl;
		memcpy(buf + off, v->labels[i].value, vl);
		off += vl;
	}
	el_put_le32(buf + off, crc32c(buf, off));
	*ret_buf = buf;
	*ret_len = size;
	return 0;
}

static int __attribute__((format(printf, 3, 4)))
dec_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errbuf && errlen) {
		va_start(ap, fmt);
		vsnprintf(errbuf, errlen, fmt, ap);
		va_end(ap);
	}
	return -EUCLEAN;
}

static bool has_nul(const uint8_t *p, size_t len)
{
	return len && memchr(p, 0, len);
}

/*
 * The record may come from a damaged file: every length is checked against
 * what is left before it is used, in size_t arithmetic on values at most
 * 2^32, so nothing can wrap. The first pass only checks; the second copies
 * into one allocation sized from the first.
 */
int store_record_decode(const void *data, size_t len, struct snap_info *ret_info, char *errbuf,
			size_t errlen)
{
	const uint8_t *buf = data;
	struct rec_hdr h;
	size_t body, off, klen, plen, n, need, prev_k = 0, prev_kl = 0;
	uint32_t crc;
	uint64_t kind, id, pid;
	struct snap_info info = {};
	char *s;

	if (!buf || len < REC_MIN)
		return dec_err(errbuf, errlen, "record of %zu bytes is shorter than %zu", len,
			       REC_MIN);
	body = len - 4;
	crc = el_get_le32(buf + body);
	if (crc != crc32c(buf, body))
		return dec_err(errbuf, errlen,
			       "record checksum mismatch (stored %08x, computed %08x)", crc,
			       crc32c(buf, body));
	memcpy(&h, buf, sizeof(h));
	if (EL_LE_GET(&h, version) != REC_VERSION)
		return dec_err(errbuf, errlen, "unknown record version %u at offset 0",
			       (unsigned)EL_LE_GET(&h, version));
	if (EL_LE_GET(&h, reserved))
		return dec_err(errbuf, errlen, "reserved field is not zero at offset 2");
	kind = EL_LE_GET(&h, kind);
	if (kind != SNAP_KIND_VIEW && kind != SNAP_KIND_ACTIVE && kind != SNAP_KIND_COMMITTED)
		return dec_err(errbuf, errlen, "bad kind %u at offset 1", (unsigned)kind);
	id = EL_LE_GET(&h, id);
	pid = EL_LE_GET(&h, parent_id);
	klen = EL_LE_GET(&h, key_len);
	plen = EL_LE_GET(&h, parent_len);
	n = EL_LE_GET(&h, n_labels);
	if (!id)
		return dec_err(errbuf, errlen, "id 0 at offset 8");
	/* A parent usually has the smaller id, but not always: a snapshot
	 * prepared without parent and committed onto one (containerd 2.2's
	 * rebase) keeps its own, older id. Walks bound their length instead
	 * (store_parent_ids). */
	if (pid == id)
		return dec_err(errbuf, errlen, "snapshot id %llu is its own parent at offset 16",
			       (unsigned long long)id);
	if (!klen || klen > STORE_KEY_MAX)
		return dec_err(errbuf, errlen, "key length %zu out of range at offset 56", klen);
	if (plen > STORE_KEY_MAX)
		return dec_err(errbuf, errlen, "parent length %zu out of range at offset 60", plen);
	if (!plen != !pid)
		return dec_err(errbuf, errlen, "parent key and parent id disagree");

	off = sizeof(h);
	if (klen + plen > body - off)
		return dec_err(errbuf, errlen,
			       "key and parent (%zu bytes) overrun the record at offset %zu",
			       klen + plen, off);
	if (has_nul(buf + off, klen))
		return dec_err(errbuf, errlen, "NUL in key at offset %zu", off);
	if (has_nul(buf + off + klen, plen))
		return dec_err(errbuf, errlen, "NUL in parent at offset %zu", off + klen);
	off += klen + plen;
	/* every label takes 8 bytes at least: bounds n before anything is sized by it */
	if (n > (body - off) / 8)
		return dec_err(errbuf, errlen, "%zu labels cannot fit in %zu bytes at offset 64", n,
			       body - off);
	need = n * sizeof(struct snap_label) + klen + 1 + plen + 1;
	for (size_t i = 0; i < n; i++) {
		size_t kl, vl, at = off;

		if (body - off < 8)
			return dec_err(errbuf, errlen,
				       "label %zu header overruns the record at offset %zu", i,
				       off);
		kl = el_get_le32(buf + off);
		vl = el_get_le32(buf + off + 4);
		off += 8;
		if (kl > body - off || vl > body - off - kl)
			return dec_err(
				errbuf, errlen,
				"label %zu (%zu+%zu bytes) overruns the record at offset %zu", i,
				kl, vl, at);
		if (has_nul(buf + off, kl + vl))
			return dec_err(errbuf, errlen, "NUL in label %zu at offset %zu", i, off);
		if (!vl)
			return dec_err(errbuf, errlen, "label %zu has an empty value at offset %zu",
				       i, at);
		if (i && label_cmp((const char *)buf + prev_k, prev_kl, (const char *)buf + off,
				   kl) >= 0)
			return dec_err(errbuf, errlen, "labels out of order at offset %zu", at);
		prev_k = off;
		prev_kl = kl;
		off += kl + vl;
		need += kl + vl + 2;
	}
	if (off != body)
		return dec_err(errbuf, errlen, "%zu trailing bytes at offset %zu", body - off, off);
	if (!ret_info)
		return 0;

	info.mem = malloc(need);
	if (!info.mem)
		return -ENOMEM;
	info.labels = n ? info.mem : NULL;
	s = (char *)info.mem + n * sizeof(struct snap_label);
	off = sizeof(h);
	info.key = s;
	memcpy(s, buf + off, klen);
	s[klen] = 0;
	s += klen + 1;
	off += klen;
	info.parent = s;
	memcpy(s, buf + off, plen);
	s[plen] = 0;
	s += plen + 1;
	off += plen;
	for (size_t i = 0; i < n; i++) {
		size_t kl = el_get_le32(buf + off), vl = el_get_le32(buf + off + 4);

		off += 8;
		info.labels[i].key = s;
		memcpy(s, buf + off, kl);
		s[kl] = 0;
		s += kl + 1;
		off += kl;
		info.labels[i].value = s;
		memcpy(s, buf + off, vl);
		s[vl] = 0;
		s += vl + 1;
		off += vl;
	}
	info.n_labels = n;
	info.kind = (enum snap_kind)kind;
	info.id = id;
	info.parent_id = pid;
	info.flags = EL_LE_GET(&h, flags);
	info.created_ns = (int64_t)EL_LE_GET(&h, created);
	info.updated_ns = (int64_t)EL_LE_GET(&h, updated);
	info.usage_size = EL_LE_GET(&h, usage_size);
	info.usage_inodes = EL_LE_GET(&h, usage_inodes);
	*ret_info = info;
	return 0;
}

/* ---- snap_info ---- */

void snap_info_free(struct snap_info *info)
{
	if (!info)
		return;
	free(info->mem);
	*info = (struct snap_info){};
}

int snap_info_dup(const struct snap_info *src, struct snap_info *ret)
{
	size_t klen = strlen(src->key), plen = src->parent ? strlen(src->parent) : 0;
	size_t need = src->n_labels * sizeof(struct snap_label) + klen + plen + 2;
	struct snap_info info = *src;
	char *s;

	for (size_t i = 0; i < src->n_labels; i++)
		if (el_add_overflow(need,
				    strlen(src->labels[i].key) + strlen(src->labels[i].value) + 2,
				    &need))
			return -EOVERFLOW;
	info.mem = malloc(need);
	if (!info.mem)
		return -ENOMEM;
	info.labels = src->n_labels ? info.mem : NULL;
	s = (char *)info.mem + src->n_labels * sizeof(struct snap_label);
	info.key = memcpy(s, src->key, klen + 1);
	s += klen + 1;
	info.parent = s;
	memcpy(s, src->parent ? src->parent : "", plen + 1);
	s += plen + 1;
	for (size_t i = 0; i < src->n_labels; i++) {
		size_t kl = strlen(src->labels[i].key) + 1, vl = strlen(src->labels[i].value) + 1;

		info.labels[i].key = memcpy(s, src->labels[i].key, kl);
		s += kl;
		info.labels[i].value = memcpy(s, src->labels[i].value, vl);
		s += vl;
	}
	*ret = info;
	return 0;
}

const char *snap_kind_to_string(enum snap_kind kind)
{
	switch (kind) {
	case SNAP_KIND_VIEW:
		return "view";
	case SNAP_KIND_ACTIVE:
		return "active";
	case SNAP_KIND_COMMITTED:
		return "committed";
	default:
		return "unknown";
	}
}

/* ---- labels ---- */

struct lsort {
	const char *k, *v;
	size_t i;
};

static int lsort_cmp(const void *a, const void *b)
{
	const struct lsort *x = a, *y = b;
	int c = strcmp(x->k, y->k);

	if (c)
		return c;
	return x->i < y->i ? -1 : x->i > y->i;
}

/*
 * Input labels as containerd's map would hold them: sorted, the last of
 * duplicate keys wins (protobuf map semantics), and empty values dropped
 * (boltutil.WriteLabels does not store them). The result borrows the
 * caller's strings.
 */
static int labels_normalize(struct store_txn *txn, const struct snap_label *in, size_t n,
			    struct snap_label **ret, size_t *ret_n)
{
	_cleanup_free_ struct lsort *tmp = NULL;
	_cleanup_free_ struct snap_label *out = NULL;
	size_t m = 0;

	if (!n) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	if (!in)
		return txn_errf(txn, -EINVAL, "labels missing");
	tmp = calloc(n, sizeof(*tmp));
	out = calloc(n, sizeof(*out));
	if (!tmp || !out)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!in[i].key)
			return txn_errf(txn, -EINVAL, "label %zu has no key", i);
		tmp[i] = (struct lsort){ in[i].key, in[i].value ? in[i].value : "", i };
	}
	qsort(tmp, n, sizeof(*tmp), lsort_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && !strcmp(tmp[i].k, tmp[i + 1].k))
			continue;
		if (!*tmp[i].v)
			continue;
		out[m++] = (struct snap_label){ (char *)tmp[i].k, (char *)tmp[i].v };
	}
	*ret = EL_TAKE_PTR(out);
	*ret_n = m;
	return 0;
}

/* containerd's labels.Validate per label, and our cap on the whole set. */
static int labels_validate(struct store_txn *txn, const struct snap_label *l, size_t n)
{
	size_t total = 0;

	for (size_t i = 0; i < n; i++) {
		size_t sz = strlen(l[i].key) + strlen(l[i].value);

		if (sz > STORE_LABEL_MAX)
			return txn_errf(
				txn, -EINVAL,
				"label %.10s: key and value greater than maximum size (%d bytes)",
				l[i].key, STORE_LABEL_MAX);
		total += sz;
		if (total > STORE_LABELS_TOTAL_MAX)
			return txn_errf(txn, -EINVAL,
					"labels greater than maximum size (%u bytes) together",
					STORE_LABELS_TOTAL_MAX);
	}
	return 0;
}

static int labels_prepare(struct store_txn *txn, const struct snap_label *in, size_t n,
			  struct snap_label **ret, size_t *ret_n)
{
	_cleanup_free_ struct snap_label *l = NULL;
	size_t m;
	int r;

	r = labels_normalize(txn, in, n, &l, &m);
	if (r < 0)
		return r;
	r = labels_validate(txn, l, m);
	if (r < 0)
		return r;
	*ret = EL_TAKE_PTR(l);
	*ret_n = m;
	return 0;
}

/* memcpy with a NULL source is undefined even for 0 bytes */
static void labels_copy(struct snap_label *dst, const struct snap_label *src, size_t n)
{
	if (n)
		memcpy(dst, src, n * sizeof(*dst));
}

/* Index of key in sorted l, or -(insertion point) - 1. */
static ptrdiff_t labels_find(const struct snap_label *l, size_t n, const char *key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l[mid].key, key);

		if (!c)
			return (ptrdiff_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(ptrdiff_t)lo - 1;
}

/* ---- record access ---- */

static int meta_get_u64(struct store_txn *txn, const char *name, uint64_t *ret)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	int rc = mdb_get(txn->t, txn->store->meta, &k, &v);

	if (rc == MDB_NOTFOUND)
		return txn_errf(txn, -EUCLEAN, "meta %s missing", name);
	if (rc)
		return txn_mdb_err(txn, rc, "reading meta");
	if (v.mv_size != 8)
		return txn_errf(txn, -EUCLEAN, "meta %s has %zu bytes, not 8", name, v.mv_size);
	*ret = el_get_le64(v.mv_data);
	return 0;
}

static int meta_put_u64(struct store_txn *txn, const char *name, uint64_t val)
{
	uint8_t b[8];
	MDB_val k = { strlen(name), (void *)name }, v = { 8, b };
	int rc;

	el_put_le64(b, val);
	rc = mdb_put(txn->t, txn->store->meta, &k, &v, 0);
	return rc ? txn_mdb_err(txn, rc, "writing meta") : 0;
}

static int rec_decode_txn(struct store_txn *txn, const MDB_val *v, const char *what,
			  struct snap_info *ret)
{
	char msg[256];
	int r = store_record_decode(v->mv_data, v->mv_size, ret, msg, sizeof(msg));

	if (r == -EUCLEAN)
		return txn_errf(txn, r, "damaged record of %s: %s", what, msg);
	return r;
}

/*
 * The record stored under key, checked to be key's: -ENOENT if none. ret may
 * be NULL (existence and integrity only); ret_ke receives kenc(key).
 */
static int snap_load(struct store_txn *txn, const char *key, struct snap_info *ret,
		     struct kenc *ret_ke)
{
	_cleanup_(snap_info_free) struct snap_info info = {};
	struct kenc ke;
	MDB_val k, v;
	int r, rc;

	r = kenc_make(key, &ke);
	if (r < 0)
		return r;
	k = (MDB_val){ ke.len, ke.b };
	rc = mdb_get(txn->t, txn->store->snaps, &k, &v);
	if (rc == MDB_NOTFOUND)
		return txn_errf(txn, -ENOENT, "snapshot " KFMT " does not exist", KARG(key));
	if (rc)
		return txn_mdb_err(txn, rc, "reading snapshot");
	r = rec_decode_txn(txn, &v, "a snapshot", &info);
	if (r < 0)
		return r;
	if (strcmp(info.key, key))
		return txn_errf(txn, -EUCLEAN, "record filed under " KFMT " holds " KFMT, KARG(key),
				KARG(info.key));
	if (ret)
		*ret = info, info = (struct snap_info){};
	if (ret_ke)
		*ret_ke = ke;
	return 0;
}

static int snap_exists(struct store_txn *txn, const char *key)
{
	struct kenc ke;
	MDB_val k, v;
	int r, rc;

	r = kenc_make(key, &ke);
	if (r < 0)
		return r;
	k = (MDB_val){ ke.len, ke.b };
	rc = mdb_get(txn->t, txn->store->snaps, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return txn_mdb_err(txn, rc, "reading snapshot");
	return 1;
}

static int load_by_id(struct store_txn *txn, uint64_t id, struct snap_info *ret)
{
	_cleanup_(snap_info_free) struct snap_info info = {};
	uint8_t idk[8];
	MDB_val k = { 8, idk }, v;
	int r, rc;

	put_be64(idk, id);
	rc = mdb_get(txn->t, txn->store->ids, &k, &v);
	if (rc == MDB_NOTFOUND)
		return txn_errf(txn, -ENOENT, "no snapshot has id %llu", (unsigned long long)id);
	if (rc)
		return txn_mdb_err(txn, rc, "reading id index");
	if (!v.mv_size || v.mv_size > KENC_MAX)
		return txn_errf(txn, -EUCLEAN, "id index entry %llu has %zu bytes",
				(unsigned long long)id, v.mv_size);
	k = v;
	rc = mdb_get(txn->t, txn->store->snaps, &k, &v);
	if (rc == MDB_NOTFOUND)
		return txn_errf(txn, -EUCLEAN, "id %llu points at a missing record",
				(unsigned long long)id);
	if (rc)
		return txn_mdb_err(txn, rc, "reading snapshot");
	r = rec_decode_txn(txn, &v, "an id", &info);
	if (r < 0)
		return r;
	if (info.id != id)
		return txn_errf(txn, -EUCLEAN, "id %llu points at the record of id %llu",
				(unsigned long long)id, (unsigned long long)info.id);
	r = kenc_matches(info.key, &k);
	if (r < 0)
		return r;
	if (!r)
		return txn_errf(txn, -EUCLEAN, "record of id %llu filed under another key",
				(unsigned long long)id);
	if (ret)
		*ret = info, info = (struct snap_info){};
	return 0;
}

static int has_children(struct store_txn *txn, uint64_t id)
{
	MDB_cursor *c;
	uint8_t pk[16] = {};
	MDB_val k = { 16, pk }, v;
	int rc, r;

	rc = mdb_cursor_open(txn->t, txn->store->parents, &c);
	if (rc)
		return txn_mdb_err(txn, rc, "opening parents cursor");
	put_be64(pk, id);
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	if (rc == MDB_NOTFOUND)
		r = 0;
	else if (rc)
		r = txn_mdb_err(txn, rc, "reading parents");
	else
		r = k.mv_size >= 8 && get_be64(k.mv_data) == id;
	mdb_cursor_close(c);
	return r;
}

/* Encodes v and stores it under ke (flags: MDB_NOOVERWRITE or 0). */
static int snap_put(struct store_txn *txn, const struct kenc *ke, const struct snap_info *v,
		    unsigned flags)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	MDB_val k = { ke->len, (void *)ke->b }, val;
	int r, rc;

	r = rec_encode(v, &buf, &len);
	if (r < 0)
		return r;
	val = (MDB_val){ len, buf };
	rc = mdb_put(txn->t, txn->store->snaps, &k, &val, flags);
	if (rc == MDB_KEYEXIST)
		return txn_errf(txn, -EEXIST, "snapshot " KFMT " exists", KARG(v->key));
	return rc ? txn_mdb_err(txn, rc, "writing snapshot") : 0;
}

/* ret_info for a record about to be written: a copy, made before writing so
 * that a failed allocation cannot leave a write behind. */
static int ret_copy(const struct snap_info *v, struct snap_info *ret_info, struct snap_info *tmp)
{
	return ret_info ? snap_info_dup(v, tmp) : 0;
}

/* ---- store ---- */

static int __attribute__((format(printf, 4, 5)))
open_err(char *errbuf, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (errbuf && errlen) {
		va_start(ap, fmt);
		vsnprintf(errbuf, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

static int store_init_dbs(struct store *s, char *errbuf, size_t errlen)
{
	static const struct {
		const char *name;
		size_t off;
	} dbs[] = {
		{ "meta", offsetof(struct store, meta) },
		{ "snapshots", offsetof(struct store, snaps) },
		{ "ids", offsetof(struct store, ids) },
		{ "parents", offsetof(struct store, parents) },
	};
	struct store_txn txn = { .store = s, .write = true };
	MDB_val k, v;
	int rc, r;

	rc = mdb_txn_begin(s->env, NULL, 0, &txn.t);
	if (rc)
		return open_err(errbuf, errlen, mdb_errno(rc), "beginning a transaction: %s",
				mdb_strerror(rc));
	for (size_t i = 0; i < EL_ARRAY_SIZE(dbs); i++) {
		rc = mdb_dbi_open(txn.t, dbs[i].name, MDB_CREATE,
				  (MDB_dbi *)((char *)s + dbs[i].off));
		if (rc) {
			r = open_err(errbuf, errlen, mdb_errno(rc), "opening database %s: %s",
				     dbs[i].name, mdb_strerror(rc));
			goto fail;
		}
	}

	k = (MDB_val){ 7, "version" };
	rc = mdb_get(txn.t, s->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		MDB_stat st;
		uint8_t b[4];

		/* A store with records but no version lost its meta: refuse
		 * rather than restart the id counter over live ids. */
		rc = mdb_stat(txn.t, s->snaps, &st);
		if (rc) {
			r = open_err(errbuf, errlen, mdb_errno(rc), "mdb_stat: %s",
				     mdb_strerror(rc));
			goto fail;
		}
		if (st.ms_entries) {
			r = open_err(errbuf, errlen, -EUCLEAN, "%zu records but no format version",
				     (size_t)st.ms_entries);
			goto fail;
		}
		el_put_le32(b, STORE_FORMAT);
		v = (MDB_val){ 4, b };
		rc = mdb_put(txn.t, s->meta, &k, &v, 0);
		if (rc) {
			r = open_err(errbuf, errlen, mdb_errno(rc), "initialising meta: %s",
				     mdb_strerror(rc));
			goto fail;
		}
		r = meta_put_u64(&txn, "next_id", 1);
		if (r < 0) {
			open_err(errbuf, errlen, r, "initialising meta: %s", txn.err);
			goto fail;
		}
		s->id_hwm = 1;
	} else if (rc) {
		r = open_err(errbuf, errlen, mdb_errno(rc), "reading meta: %s", mdb_strerror(rc));
		goto fail;
	} else if (v.mv_size != 4) {
		r = open_err(errbuf, errlen, -EUCLEAN, "format version has %zu bytes", v.mv_size);
		goto fail;
	} else if (el_get_le32(v.mv_data) != STORE_FORMAT) {
		r = open_err(errbuf, errlen, -EPROTONOSUPPORT,
			     "format version %u, this build reads %u", el_get_le32(v.mv_data),
			     STORE_FORMAT);
		goto fail;
	} else {
		uint64_t next;

		r = meta_get_u64(&txn, "next_id", &next);
		if (r == 0 && next == 0)
			r = txn_errf(&txn, -EUCLEAN, "meta next_id is 0");
		if (r < 0) {
			open_err(errbuf, errlen, r, "%s", txn.err);
			goto fail;
		}
		s->id_hwm = next;
	}
	rc = mdb_txn_commit(txn.t);
	if (!rc && s->deferred_sync)
		rc = mdb_env_sync(s->env, 1);
	if (rc)
		return open_err(errbuf, errlen, mdb_errno(rc), "committing: %s", mdb_strerror(rc));
	return 0;
fail:
	mdb_txn_abort(txn.t);
	return r;
}

int store_open(const char *dir, const struct store_options *opts, struct store **ret_store,
	       char *errbuf, size_t errlen)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ struct store *s = NULL;
	uint64_t map_size = opts && opts->map_size ? opts->map_size : STORE_MAP_SIZE_DEFAULT;
	unsigned readers = opts && opts->max_readers ? opts->max_readers : DEFAULT_MAX_READERS;
	int rc, r, dead = 0;

	if (!dir || !ret_store)
		return open_err(errbuf, errlen, -EINVAL, "no directory");
	if (asprintf(&path, "%s/%s", dir, STORE_DB_NAME) < 0) {
		path = NULL;
		return -ENOMEM;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->id_lock, NULL);
	rc = mdb_env_create(&s->env);
	if (rc)
		return open_err(errbuf, errlen, mdb_errno(rc), "mdb_env_create: %s",
				mdb_strerror(rc));
	if ((rc = mdb_env_set_maxdbs(s->env, 4)) || (rc = mdb_env_set_mapsize(s->env, map_size)) ||
	    (rc = mdb_env_set_maxreaders(s->env, readers))) {
		r = open_err(errbuf, errlen, mdb_errno(rc), "configuring the environment: %s",
			     mdb_strerror(rc));
		goto fail;
	}
	/* MDB_NOTLS: read transactions are owned by their object, not by the
	 * thread, so a worker may hand one on and hold several. */
	s->deferred_sync = opts && opts->deferred_sync;
	rc = mdb_env_open(s->env, path,
			  MDB_NOSUBDIR | MDB_NOTLS | (s->deferred_sync ? MDB_NOMETASYNC : 0), 0600);
	if (rc) {
		r = open_err(errbuf, errlen, mdb_errno(rc), "opening %s: %s", path,
			     mdb_strerror(rc));
		goto fail;
	}
	if (mdb_env_get_maxkeysize(s->env) < KENC_MAX) {
		r = open_err(errbuf, errlen, -ENOTSUP,
			     "LMDB built with keys of at most %d bytes, need %d",
			     mdb_env_get_maxkeysize(s->env), KENC_MAX);
		goto fail;
	}
	/* Reader slots of crashed processes would pin old pages forever. */
	rc = mdb_reader_check(s->env, &dead);
	if (rc) {
		r = open_err(errbuf, errlen, mdb_errno(rc), "checking readers: %s",
			     mdb_strerror(rc));
		goto fail;
	}
	r = store_init_dbs(s, errbuf, errlen);
	if (r < 0)
		goto fail;
	*ret_store = EL_TAKE_PTR(s);
	return 0;
fail:
	mdb_env_close(s->env);
	return r;
}

struct store *store_close(struct store *store)
{
	if (!store)
		return NULL;
	if (store->deferred_sync)
		mdb_env_sync(store->env, 1);
	mdb_env_close(store->env);
	pthread_mutex_destroy(&store->id_lock);
	free(store);
	return NULL;
}

int store_txn_begin(struct store *store, bool write, struct store_txn **ret_txn)
{
	_cleanup_free_ struct store_txn *txn = NULL;
	int rc;

	if (!store || !ret_txn)
		return -EINVAL;
	txn = calloc(1, sizeof(*txn));
	if (!txn)
		return -ENOMEM;
	txn->store = store;
	txn->write = write;
	rc = mdb_txn_begin(store->env, NULL, write ? 0 : MDB_RDONLY, &txn->t);
	if (rc)
		return mdb_errno(rc);
	*ret_txn = EL_TAKE_PTR(txn);
	return 0;
}

int store_txn_begin_nested(struct store_txn *parent, struct store_txn **ret_txn)
{
	_cleanup_free_ struct store_txn *txn = NULL;
	int rc;

	if (!parent || !parent->t || !ret_txn)
		return -EINVAL;
	if (!parent->write || parent->child)
		return -EBUSY;
	/* a poisoned parent is past saving: it will only be aborted */
	if (parent->poisoned)
		return parent->poisoned;
	txn = calloc(1, sizeof(*txn));
	if (!txn)
		return -ENOMEM;
	txn->store = parent->store;
	txn->write = true;
	rc = mdb_txn_begin(parent->store->env, parent->t, 0, &txn->t);
	if (rc)
		return mdb_errno(rc);
	txn->parent = parent;
	parent->child = txn;
	*ret_txn = EL_TAKE_PTR(txn);
	return 0;
}

/* The transaction has ended (LMDB freed it): unlink it from its family. */
static void txn_ended(struct store_txn *txn)
{
	txn->t = NULL;
	if (txn->parent) {
		txn->parent->child = NULL;
		txn->parent = NULL;
	}
}

int store_txn_commit(struct store_txn *txn)
{
	int rc;

	if (!txn || !txn->t)
		return -EINVAL;
	if (txn->child)
		return txn_errf(txn, -EBUSY, "commit while a child transaction is open");
	if (txn->poisoned) {
		store_txn_abort(txn);
		return txn->poisoned;
	}
	if (!txn->write) {
		store_txn_abort(txn);
		return 0;
	}
	/* mdb_txn_commit frees the transaction whatever it returns; a child's
	 * changes move into its parent, which stays usable even if this fails */
	rc = mdb_txn_commit(txn->t);
	txn_ended(txn);
	return rc ? txn_mdb_err(txn, rc, "commit") : 0;
}

int store_sync(struct store *store)
{
	int rc;

	if (!store)
		return -EINVAL;
	rc = mdb_env_sync(store->env, 1);
	return rc ? mdb_errno(rc) : 0;
}

void store_txn_abort(struct store_txn *txn)
{
	if (!txn || !txn->t)
		return;
	/* LMDB aborts an open child with its parent */
	if (txn->child)
		txn_ended(txn->child);
	mdb_txn_abort(txn->t);
	txn_ended(txn);
}

struct store_txn *store_txn_free(struct store_txn *txn)
{
	if (!txn)
		return NULL;
	store_txn_abort(txn);
	free(txn);
	return NULL;
}

const char *store_txn_errmsg(const struct store_txn *txn)
{
	return txn ? txn->err : "";
}

/* ---- operations ---- */

int store_reserve_id(struct store *store, uint64_t *ret_id)
{
	int r = 0;

	if (!store || !ret_id)
		return -EINVAL;
	pthread_mutex_lock(&store->id_lock);
	if (!store->id_hwm || store->id_hwm == UINT64_MAX)
		r = -EOVERFLOW;
	else
		*ret_id = store->id_hwm++;
	pthread_mutex_unlock(&store->id_lock);
	return r;
}

/* The parents index entry pid ‖ id: made, or removed (one already missing
 * is no error: removal reaches the state it wants either way). Failures
 * poison the transaction. */
static int link_put(struct store_txn *txn, uint64_t pid, uint64_t id)
{
	uint8_t pk[16];
	MDB_val k = { 16, pk }, val = { 0, pk }; /* empty, but never a NULL pointer */
	int rc;

	put_be64(pk, pid);
	put_be64(pk + 8, id);
	rc = mdb_put(txn->t, txn->store->parents, &k, &val, 0);
	return rc ? txn_poison(txn, txn_mdb_err(txn, rc, "writing parent link")) : 0;
}

static int link_del(struct store_txn *txn, uint64_t pid, uint64_t id)
{
	uint8_t pk[16];
	MDB_val k = { 16, pk };
	int rc;

	put_be64(pk, pid);
	put_be64(pk + 8, id);
	rc = mdb_del(txn->t, txn->store->parents, &k, NULL);
	return rc && rc != MDB_NOTFOUND ? txn_poison(txn, txn_mdb_err(txn, rc, "deleting parent link")) : 0;
}

static int create(struct store_txn *txn, uint64_t reserved, const char *key, enum snap_kind kind,
		  const char *parent, const struct snap_label *labels, size_t n_labels,
		  struct snap_info *ret_info)
{
	_cleanup_(snap_info_free) struct snap_info pinfo = {}, out = {};
	_cleanup_free_ struct snap_label *l = NULL;
	struct store *s;
	struct snap_info v;
	struct kenc ke;
	uint64_t next, id;
	size_t nl;
	int r, rc;

	r = txn_usable(txn, true);
	if (r < 0)
		return r;
	s = txn->store;
	r = key_check(txn, key, "key");
	if (r < 0)
		return r;
	if (kind != SNAP_KIND_ACTIVE && kind != SNAP_KIND_VIEW)
		return txn_errf(txn, -EINVAL,
				"snapshot type %d invalid; only active or view can be created",
				kind);
	if (parent && !*parent)
		parent = NULL;
	if (parent) {
		r = key_check(txn, parent, "parent");
		if (r < 0)
			return r;
		r = snap_load(txn, parent, &pinfo, NULL);
		if (r == -ENOENT)
			return txn_errf(txn, r, "missing parent " KFMT, KARG(parent));
		if (r < 0)
			return r;
		if (pinfo.kind != SNAP_KIND_COMMITTED)
			return txn_errf(txn, -EINVAL, "parent " KFMT " is not a committed snapshot",
					KARG(parent));
	}
	r = labels_prepare(txn, labels, n_labels, &l, &nl);
	if (r < 0)
		return r;
	r = snap_exists(txn, key);
	if (r < 0)
		return r;
	if (r)
		return txn_errf(txn, -EEXIST, "snapshot " KFMT " already exists", KARG(key));
	r = kenc_make(key, &ke);
	if (r < 0)
		return r;
	r = meta_get_u64(txn, "next_id", &next);
	if (r < 0)
		return r;
	if (reserved) {
		id = reserved;
		/* a parent made after the reservation (removed and made
		 * again meanwhile) would break "parents have smaller ids" */
		if (parent && pinfo.id >= id)
			return txn_errf(txn, -ESTALE,
					"parent " KFMT " (id %llu) is newer than id %llu",
					KARG(parent), (unsigned long long)pinfo.id,
					(unsigned long long)id);
	} else {
		/* claimed now, even if this create fails later: never twice */
		pthread_mutex_lock(&s->id_lock);
		id = EL_MAX(next, s->id_hwm);
		if (id && id != UINT64_MAX)
			s->id_hwm = id + 1;
		pthread_mutex_unlock(&s->id_lock);
	}
	if (!id || id == UINT64_MAX)
		return txn_errf(txn, -EOVERFLOW, "snapshot ids exhausted");

	v = (struct snap_info){
		.key = (char *)key,
		.parent = (char *)parent,
		.kind = kind,
		.id = id,
		.parent_id = parent ? pinfo.id : 0,
		.labels = l,
		.n_labels = nl,
	};
	v.created_ns = v.updated_ns = now_ns();
	r = ret_copy(&v, ret_info, &out);
	if (r < 0)
		return r;

	/* writes: from here on a failure poisons the transaction */
	{
		uint8_t idk[8];
		MDB_val k = { 8, idk }, val = { ke.len, ke.b };

		r = snap_put(txn, &ke, &v, MDB_NOOVERWRITE);
		if (r < 0)
			return txn_poison(txn, r);
		put_be64(idk, id);
		rc = mdb_put(txn->t, s->ids, &k, &val, MDB_NOOVERWRITE);
		if (rc == MDB_KEYEXIST)
			return txn_poison(
				txn, txn_errf(txn, -EUCLEAN,
					      "id %llu is in use although the counter is past it",
					      (unsigned long long)id));
		if (rc)
			return txn_poison(txn, txn_mdb_err(txn, rc, "writing id index"));
		if (parent) {
			r = link_put(txn, pinfo.id, id);
			if (r < 0)
				return r;
		}
		/* reserved ids may commit out of order */
		if (id + 1 > next) {
			r = meta_put_u64(txn, "next_id", id + 1);
			if (r < 0)
				return txn_poison(txn, r);
		}
	}
	if (ret_info)
		*ret_info = out, out = (struct snap_info){};
	return 0;
}

int store_create(struct store_txn *txn, const char *key, enum snap_kind kind, const char *parent,
		 const struct snap_label *labels, size_t n_labels, struct snap_info *ret_info)
{
	return create(txn, 0, key, kind, parent, labels, n_labels, ret_info);
}

int store_create_reserved(struct store_txn *txn, uint64_t id, const char *key, enum snap_kind kind,
			  const char *parent, const struct snap_label *labels, size_t n_labels,
			  struct snap_info *ret_info)
{
	if (!id)
		return -EINVAL;
	return create(txn, id, key, kind, parent, labels, n_labels, ret_info);
}

int store_get(struct store_txn *txn, const char *key, struct snap_info *ret_info)
{
	int r = txn_usable(txn, false);

	if (r < 0)
		return r;
	r = key_check(txn, key, "key");
	if (r < 0)
		return r;
	return snap_load(txn, key, ret_info, NULL);
}

int store_get_by_id(struct store_txn *txn, uint64_t id, struct snap_info *ret_info)
{
	int r = txn_usable(txn, false);

	if (r < 0)
		return r;
	return load_by_id(txn, id, ret_info);
}

int store_update(struct store_txn *txn, const struct snap_info *info, const char *const *fieldpaths,
		 size_t n, struct snap_info *ret_info)
{
	_cleanup_(snap_info_free) struct snap_info cur = {}, out = {};
	_cleanup_free_ struct snap_label *in = NULL, *w = NULL;
	size_t nin, nw;
	struct snap_info v;
	struct kenc ke;
	int r;

	r = txn_usable(txn, true);
	if (r < 0)
		return r;
	if (!info)
		return -EINVAL;
	r = key_check(txn, info->key, "key");
	if (r < 0)
		return r;
	if (n && !fieldpaths)
		return -EINVAL;
	r = snap_load(txn, info->key, &cur, &ke);
	if (r < 0)
		return r;
	r = labels_normalize(txn, info->labels, info->n_labels, &in, &nin);
	if (r < 0)
		return r;

	/* w: the working label set, borrowing strings from cur and in */
	w = calloc(cur.n_labels + nin + 1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	if (!n) {
		labels_copy(w, in, nin);
		nw = nin;
	} else {
		labels_copy(w, cur.labels, cur.n_labels);
		nw = cur.n_labels;
	}
	for (size_t i = 0; i < n; i++) {
		const char *p = fieldpaths[i];
		ptrdiff_t at, src;

		if (p && !strcmp(p, "labels")) {
			labels_copy(w, in, nin);
			nw = nin;
			continue;
		}
		if (!p || strncmp(p, "labels.", 7))
			return txn_errf(txn, -EINVAL,
					"cannot update \"%.64s\" field on snapshot " KFMT,
					p ? p : "(null)", KARG(info->key));
		p += 7;
		src = labels_find(in, nin, p);
		at = labels_find(w, nw, p);
		if (src >= 0 && at >= 0) {
			w[at] = in[src];
		} else if (src >= 0) {
			/* insert: nw < cur.n_labels + nin, since every key
			 * added comes from in and keys in w are unique */
			size_t pos = (size_t)(-at - 1);

			memmove(w + pos + 1, w + pos, (nw - pos) * sizeof(*w));
			w[pos] = in[src];
			nw++;
		} else if (at >= 0) {
			memmove(w + at, w + at + 1, (nw - (size_t)at - 1) * sizeof(*w));
			nw--;
		}
	}
	r = labels_validate(txn, w, nw);
	if (r < 0)
		return r;

	v = cur;
	v.labels = w;
	v.n_labels = nw;
	v.updated_ns = now_ns();
	r = ret_copy(&v, ret_info, &out);
	if (r < 0)
		return r;
	r = snap_put(txn, &ke, &v, 0);
	if (r < 0)
		return txn_poison(txn, r);
	if (ret_info)
		*ret_info = out, out = (struct snap_info){};
	return 0;
}

int store_commit(struct store_txn *txn, const char *key, const char *name, const char *parent,
		 const struct snap_label *labels, size_t n_labels, struct snap_info *ret_info)
{
	_cleanup_(snap_info_free) struct snap_info cur = {}, out = {}, pinfo = {};
	_cleanup_free_ struct snap_label *l = NULL;
	struct kenc ke_old, ke_new;
	struct snap_info v;
	uint8_t idk[8];
	MDB_val k, val;
	size_t nl;
	int r, rc;

	r = txn_usable(txn, true);
	if (r < 0)
		return r;
	r = key_check(txn, key, "key");
	if (r < 0)
		return r;
	r = key_check(txn, name, "name");
	if (r < 0)
		return r;
	r = labels_prepare(txn, labels, n_labels, &l, &nl);
	if (r < 0)
		return r;
	/* containerd's CommitActive creates the target first: an existing
	 * name wins over a missing key */
	r = snap_exists(txn, name);
	if (r < 0)
		return r;
	if (r)
		return txn_errf(txn, -EEXIST, "committed snapshot " KFMT " already exists",
				KARG(name));
	r = snap_load(txn, key, &cur, &ke_old);
	if (r < 0)
		return r;
	if (cur.kind != SNAP_KIND_ACTIVE)
		return txn_errf(txn, -EINVAL, "snapshot " KFMT " is not active", KARG(key));
	if (parent && *parent) {
		r = key_check(txn, parent, "parent");
		if (r < 0)
			return r;
		r = snap_load(txn, parent, &pinfo, NULL);
		if (r == -ENOENT)
			return txn_errf(txn, -ENOENT, "parent " KFMT " does not exist", KARG(parent));
		if (r < 0)
			return r;
		if (pinfo.kind != SNAP_KIND_COMMITTED)
			return txn_errf(txn, -EINVAL, "parent " KFMT " is not a committed snapshot",
					KARG(parent));
	}
	r = kenc_make(name, &ke_new);
	if (r < 0)
		return r;

	v = cur;
	if (pinfo.id) {
		/* rebased: an active snapshot has no children, so the new link
		 * cannot close a loop */
		v.parent = pinfo.key;
		v.parent_id = pinfo.id;
	}
	v.key = (char *)name;
	v.kind = SNAP_KIND_COMMITTED;
	v.labels = l;
	v.n_labels = nl;
	v.created_ns = v.updated_ns = now_ns();
	r = ret_copy(&v, ret_info, &out);
	if (r < 0)
		return r;

	/* the parent link is by id: it stays as it is, unless rebased */
	if (pinfo.id && pinfo.id != cur.parent_id) {
		r = cur.parent_id ? link_del(txn, cur.parent_id, cur.id) : 0;
		if (r == 0)
			r = link_put(txn, pinfo.id, cur.id);
		if (r < 0)
			return r;
	}
	k = (MDB_val){ ke_old.len, ke_old.b };
	rc = mdb_del(txn->t, txn->store->snaps, &k, NULL);
	if (rc)
		return txn_poison(txn, txn_mdb_err(txn, rc, "deleting active snapshot"));
	r = snap_put(txn, &ke_new, &v, MDB_NOOVERWRITE);
	if (r < 0)
		return txn_poison(txn, r);
	put_be64(idk, v.id);
	k = (MDB_val){ 8, idk };
	val = (MDB_val){ ke_new.len, ke_new.b };
	rc = mdb_put(txn->t, txn->store->ids, &k, &val, 0);
	if (rc)
		return txn_poison(txn, txn_mdb_err(txn, rc, "writing id index"));
	if (ret_info)
		*ret_info = out, out = (struct snap_info){};
	return 0;
}

int store_remove(struct store_txn *txn, const char *key, uint64_t *ret_id, enum snap_kind *ret_kind)
{
	_cleanup_(snap_info_free) struct snap_info cur = {};
	struct kenc ke;
	uint8_t pk[16];
	MDB_val k;
	int r, rc;

	r = txn_usable(txn, true);
	if (r < 0)
		return r;
	r = key_check(txn, key, "key");
	if (r < 0)
		return r;
	r = snap_load(txn, key, &cur, &ke);
	if (r < 0)
		return r;
	r = has_children(txn, cur.id);
	if (r < 0)
		return r;
	if (r)
		return txn_errf(txn, -EBUSY, "cannot remove snapshot " KFMT " with child",
				KARG(key));

	/* Index entries already missing are not an error: removal reaches
	 * the state it wants either way. */
	if (cur.parent_id) {
		r = link_del(txn, cur.parent_id, cur.id);
		if (r < 0)
			return r;
	}
	put_be64(pk, cur.id);
	k = (MDB_val){ 8, pk };
	rc = mdb_del(txn->t, txn->store->ids, &k, NULL);
	if (rc && rc != MDB_NOTFOUND)
		return txn_poison(txn, txn_mdb_err(txn, rc, "deleting id index entry"));
	k = (MDB_val){ ke.len, ke.b };
	rc = mdb_del(txn->t, txn->store->snaps, &k, NULL);
	if (rc)
		return txn_poison(txn, txn_mdb_err(txn, rc, "deleting snapshot"));
	if (ret_id)
		*ret_id = cur.id;
	if (ret_kind)
		*ret_kind = cur.kind;
	return 0;
}

static int set_fields(struct store_txn *txn, const char *key, const uint64_t *usage,
		      const uint32_t *flags)
{
	_cleanup_(snap_info_free) struct snap_info cur = {};
	struct kenc ke;
	int r;

	r = txn_usable(txn, true);
	if (r < 0)
		return r;
	r = key_check(txn, key, "key");
	if (r < 0)
		return r;
	r = snap_load(txn, key, &cur, &ke);
	if (r < 0)
		return r;
	if (usage) {
		cur.usage_size = usage[0];
		cur.usage_inodes = usage[1];
	}
	if (flags)
		cur.flags = *flags;
	r = snap_put(txn, &ke, &cur, 0);
	return r < 0 ? txn_poison(txn, r) : 0;
}

int store_set_usage(struct store_txn *txn, const char *key, uint64_t size, uint64_t inodes)
{
	uint64_t u[2] = { size, inodes };

	return set_fields(txn, key, u, NULL);
}

int store_set_flags(struct store_txn *txn, const char *key, uint32_t flags)
{
	return set_fields(txn, key, NULL, &flags);
}

int store_walk(struct store_txn *txn, store_walk_fn fn, void *ud)
{
	MDB_cursor *c = NULL;
	MDB_val k, v;
	int r, rc;

	r = txn_usable(txn, false);
	if (r < 0)
		return r;
	if (!fn)
		return -EINVAL;
	rc = mdb_cursor_open(txn->t, txn->store->snaps, &c);
	if (rc)
		return txn_mdb_err(txn, rc, "opening cursor");
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); !rc;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		_cleanup_(snap_info_free) struct snap_info info = {};

		r = rec_decode_txn(txn, &v, "the walk", &info);
		if (r < 0)
			goto out;
		r = kenc_matches(info.key, &k);
		if (r == 0)
			r = txn_errf(txn, -EUCLEAN, "record " KFMT " filed under another key",
				     KARG(info.key));
		if (r < 0)
			goto out;
		r = fn(&info, ud);
		if (r)
			goto out;
	}
	r = rc == MDB_NOTFOUND ? 0 : txn_mdb_err(txn, rc, "walking snapshots");
out:
	mdb_cursor_close(c);
	return r;
}

int store_children(struct store_txn *txn, const char *parent, store_walk_fn fn, void *ud)
{
	_cleanup_(snap_info_free) struct snap_info p = {};
	MDB_cursor *c = NULL;
	uint8_t pk[16] = {};
	MDB_val k = { 16, pk }, v;
	int r, rc;

	r = txn_usable(txn, false);
	if (r < 0)
		return r;
	if (!fn)
		return -EINVAL;
	r = key_check(txn, parent, "parent");
	if (r < 0)
		return r;
	r = snap_load(txn, parent, &p, NULL);
	if (r < 0)
		return r;
	rc = mdb_cursor_open(txn->t, txn->store->parents, &c);
	if (rc)
		return txn_mdb_err(txn, rc, "opening cursor");
	put_be64(pk, p.id);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); !rc;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		_cleanup_(snap_info_free) struct snap_info info = {};
		uint64_t cid;

		if (k.mv_size != 16) {
			r = txn_errf(txn, -EUCLEAN, "parent link of %zu bytes", k.mv_size);
			goto out;
		}
		if (get_be64(k.mv_data) != p.id)
			break;
		cid = get_be64((const uint8_t *)k.mv_data + 8);
		r = load_by_id(txn, cid, &info);
		if (r == -ENOENT)
			r = txn_errf(txn, -EUCLEAN, "parent link to missing id %llu",
				     (unsigned long long)cid);
		if (r == 0 && info.parent_id != p.id)
			r = txn_errf(txn, -EUCLEAN,
				     "parent link of id %llu disagrees with its record",
				     (unsigned long long)cid);
		if (r < 0)
			goto out;
		r = fn(&info, ud);
		if (r)
			goto out;
	}
	r = rc == 0 || rc == MDB_NOTFOUND ? 0 : txn_mdb_err(txn, rc, "walking parent links");
out:
	mdb_cursor_close(c);
	return r;
}

int store_parent_ids(struct store_txn *txn, const char *key, uint64_t **ret_ids, size_t *ret_n)
{
	_cleanup_(snap_info_free) struct snap_info cur = {};
	_cleanup_free_ uint64_t *ids = NULL;
	size_t n = 0, cap = 0;
	int r;

	r = txn_usable(txn, false);
	if (r < 0)
		return r;
	if (!ret_ids || !ret_n)
		return -EINVAL;
	r = key_check(txn, key, "key");
	if (r < 0)
		return r;
	r = snap_load(txn, key, &cur, NULL);
	if (r < 0)
		return r;
	/* links are only made to committed snapshots that exist, from
	 * snapshots without children, so there is no loop but in a damaged
	 * file: the bound turns one into an error rather than a hang */
	while (cur.parent_id) {
		uint64_t pid = cur.parent_id;

		if (n >= STORE_CHAIN_MAX)
			return txn_errf(txn, -EUCLEAN, "the parent chain of " KFMT " is longer than %d "
					"(a loop?)", KARG(key), STORE_CHAIN_MAX);
		if (el_grow((void **)&ids, &cap, n + 1, sizeof(*ids)) < 0)
			return -ENOMEM;
		ids[n++] = pid;
		snap_info_free(&cur);
		r = load_by_id(txn, pid, &cur);
		if (r == -ENOENT)
			r = txn_errf(txn, -EUCLEAN, "missing parent id %llu",
				     (unsigned long long)pid);
		if (r < 0)
			return r;
	}
	*ret_ids = EL_TAKE_PTR(ids);
	*ret_n = n;
	return 0;
}

int store_ids(struct store_txn *txn, struct store_ids *ret)
{
	_cleanup_free_ uint64_t *v = NULL;
	MDB_cursor *c = NULL;
	MDB_val k, val;
	size_t n = 0, cap = 0;
	uint64_t next;
	int r, rc;

	r = txn_usable(txn, false);
	if (r < 0)
		return r;
	if (!ret)
		return -EINVAL;
	r = meta_get_u64(txn, "next_id", &next);
	if (r < 0)
		return r;
	rc = mdb_cursor_open(txn->t, txn->store->ids, &c);
	if (rc)
		return txn_mdb_err(txn, rc, "opening cursor");
	for (rc = mdb_cursor_get(c, &k, &val, MDB_FIRST); !rc;
	     rc = mdb_cursor_get(c, &k, &val, MDB_NEXT)) {
		if (k.mv_size != 8) {
			r = txn_errf(txn, -EUCLEAN, "id index key of %zu bytes", k.mv_size);
			goto out;
		}
		if (el_grow((void **)&v, &cap, n + 1, sizeof(*v)) < 0) {
			r = -ENOMEM;
			goto out;
		}
		v[n++] = get_be64(k.mv_data);
	}
	if (rc != MDB_NOTFOUND) {
		r = txn_mdb_err(txn, rc, "walking the id index");
		goto out;
	}
	*ret = (struct store_ids){ .v = EL_TAKE_PTR(v), .n = n, .next = next };
	r = 0;
out:
	mdb_cursor_close(c);
	return r;
}

bool store_ids_has(const struct store_ids *ids, uint64_t id)
{
	size_t lo = 0, hi = ids ? ids->n : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ids->v[mid] == id)
			return true;
		if (ids->v[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

void store_ids_free(struct store_ids *ids)
{
	if (!ids)
		return;
	free(ids->v);
	*ids = (struct store_ids){};
}
