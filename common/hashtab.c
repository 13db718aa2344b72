/* SPDX-License-Identifier: Apache-2.0 */
/* The intrusive chained hash table of hashtab.h. */
#include "hashtab.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

void el_hashtab_init(struct el_hashtab *t, const struct el_hashtab_ops *ops, size_t min_buckets)
{
	size_t n = 1;

	while (n < min_buckets && n <= SIZE_MAX / 2)
		n *= 2;
	*t = (struct el_hashtab){ .ops = ops, .min_buckets = n };
}

void el_hashtab_destroy(struct el_hashtab *t)
{
	free(t->buckets);
	el_hashtab_init(t, t->ops, t->min_buckets);
}

void el_hashtab_release(struct el_hashtab *t, void (*release)(struct el_hnode *node))
{
	struct el_hashtab_iter it;
	struct el_hnode *n;

	el_hashtab_iter_init(&it, t);
	while ((n = el_hashtab_iter_next(&it)))
		release(n);
	el_hashtab_destroy(t);
}

struct el_hnode *el_hashtab_find(const struct el_hashtab *t, size_t hash, const void *key)
{
	if (!t->nbuckets)
		return NULL;
	for (struct el_hnode *n = t->buckets[hash & (t->nbuckets - 1)]; n; n = n->next)
		if (t->ops->eq(n, key))
			return n;
	return NULL;
}

/* Doubles the buckets (or makes the first ones) and relinks every entry. */
static int grow(struct el_hashtab *t)
{
	size_t n = t->nbuckets ? t->nbuckets * 2 : t->min_buckets;
	struct el_hnode **b;

	if (n < t->nbuckets)
		return -ENOMEM;
	b = calloc(n, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < t->nbuckets; i++) {
		for (struct el_hnode *e = t->buckets[i], *next; e; e = next) {
			size_t j = t->ops->hash(e) & (n - 1);

			next = e->next;
			e->next = b[j];
			b[j] = e;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
	return 0;
}

int el_hashtab_insert(struct el_hashtab *t, struct el_hnode *node, size_t hash)
{
	struct el_hnode **head;

	if (t->count >= t->nbuckets && grow(t) < 0)
		return -ENOMEM;
	head = &t->buckets[hash & (t->nbuckets - 1)];
	node->next = *head;
	*head = node;
	t->count++;
	return 0;
}

bool el_hashtab_remove(struct el_hashtab *t, struct el_hnode *node, size_t hash)
{
	if (!t->nbuckets)
		return false;
	for (struct el_hnode **p = &t->buckets[hash & (t->nbuckets - 1)]; *p; p = &(*p)->next) {
		if (*p == node) {
			*p = node->next;
			t->count--;
			return true;
		}
	}
	return false;
}

void el_hashtab_iter_init(struct el_hashtab_iter *it, const struct el_hashtab *t)
{
	*it = (struct el_hashtab_iter){ .t = t };
}

struct el_hnode *el_hashtab_iter_next(struct el_hashtab_iter *it)
{
	struct el_hnode *n = it->next;

	while (!n && it->bucket < it->t->nbuckets)
		n = it->t->buckets[it->bucket++];
	if (n)
		it->next = n->next;
	return n;
}

/* ---- 64-bit integer keys ---- */

static size_t u64_hash(const struct el_hnode *n)
{
	return el_hash_u64(el_hashtab_entry(n, struct el_hnode_u64, node)->key);
}

static bool u64_eq(const struct el_hnode *n, const void *key)
{
	return el_hashtab_entry(n, struct el_hnode_u64, node)->key == *(const uint64_t *)key;
}

const struct el_hashtab_ops el_hashtab_u64_ops = { u64_hash, u64_eq };

struct el_hnode_u64 *el_hashtab_find_u64(const struct el_hashtab *t, uint64_t key)
{
	struct el_hnode *n = el_hashtab_find(t, el_hash_u64(key), &key);

	return n ? el_hashtab_entry(n, struct el_hnode_u64, node) : NULL;
}

int el_hashtab_insert_u64(struct el_hashtab *t, struct el_hnode_u64 *n, uint64_t key)
{
	n->key = key;
	return el_hashtab_insert(t, &n->node, el_hash_u64(key));
}
