/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An intrusive chained hash table. Entries embed a struct el_hnode and live
 * wherever their owner puts them (an arena, malloc, a pool): the table only
 * links them, never allocates or frees them. The caller computes the hash,
 * once per operation (a lookup and the insert after a miss share it); the
 * table asks ops->hash again only when it grows, and ops->eq on lookups.
 *
 * Buckets are a power of two, indexed by the hash's low bits; the table
 * doubles when it holds as many entries as buckets (load factor 1). Chains
 * are LIFO. Iteration order is the bucket order: not insertion order, and not
 * stable across growth, so nothing whose output must be reproducible may
 * depend on it.
 */
#ifndef EL_HASHTAB_H
#define EL_HASHTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct el_hnode {
	struct el_hnode *next;
};

struct el_hashtab_ops {
	/* The hash an entry was inserted with (for rehashing on growth). */
	size_t (*hash)(const struct el_hnode *node);
	/* Whether an entry matches a lookup key (the caller's own type). */
	bool (*eq)(const struct el_hnode *node, const void *key);
};

struct el_hashtab {
	const struct el_hashtab_ops *ops;
	struct el_hnode **buckets; /* NULL until the first insert */
	size_t nbuckets;	   /* 0 or a power of two */
	size_t count;
	size_t min_buckets; /* the first allocation (rounded up to a power of two) */
};

/* An empty table; nothing is allocated until the first insert. */
void el_hashtab_init(struct el_hashtab *t, const struct el_hashtab_ops *ops, size_t min_buckets);
/* Frees the buckets, not the entries; the table is empty and reusable. */
void el_hashtab_destroy(struct el_hashtab *t);
/* Hands every entry to release (which may free it), then destroys. */
void el_hashtab_release(struct el_hashtab *t, void (*release)(struct el_hnode *node));

/* The entry with this hash for which ops->eq(entry, key) holds, or NULL. */
struct el_hnode *el_hashtab_find(const struct el_hashtab *t, size_t hash, const void *key);
/* Links node under hash (no duplicate check: look it up first if keys must
 * be unique). Grows first if needed; -ENOMEM leaves the table unchanged. */
int el_hashtab_insert(struct el_hashtab *t, struct el_hnode *node, size_t hash);
/* Unlinks node, inserted under hash; false if it is not in the table. */
bool el_hashtab_remove(struct el_hashtab *t, struct el_hnode *node, size_t hash);

/* Every entry once, in bucket order. The entry returned may be freed or
 * removed before the next call; nothing else may change the table. */
struct el_hashtab_iter {
	const struct el_hashtab *t;
	size_t bucket;
	struct el_hnode *next;
};

void el_hashtab_iter_init(struct el_hashtab_iter *it, const struct el_hashtab *t);
struct el_hnode *el_hashtab_iter_next(struct el_hashtab_iter *it);

/* Fibonacci hashing of an integer key (nids, inode numbers: multiples of
 * small strides, which the multiply spreads over the bits kept). */
static inline size_t el_hash_u64(uint64_t v)
{
	return (size_t)((v * 0x9E3779B97F4A7C15ull) >> 20);
}

#define el_hashtab_entry(node, type, member)                                      \
	((type *)((char *)(node) - offsetof(type, member)))

/*
 * Entries keyed by a 64-bit integer (nids, inode numbers) embed this in
 * place of a bare el_hnode, in a table made with el_hashtab_u64_ops; the
 * helpers hash the key themselves.
 */
struct el_hnode_u64 {
	struct el_hnode node;
	uint64_t key;
};

extern const struct el_hashtab_ops el_hashtab_u64_ops;

struct el_hnode_u64 *el_hashtab_find_u64(const struct el_hashtab *t, uint64_t key);
/* Sets n->key and inserts n (no duplicate check); -ENOMEM. */
int el_hashtab_insert_u64(struct el_hashtab *t, struct el_hnode_u64 *n, uint64_t key);

#endif
