/* SPDX-License-Identifier: Apache-2.0 */
/*
 * common/hashtab.c: insert many and find them all, misses, growth at load
 * factor 1, collisions through a hash that sends everything to one bucket,
 * removal, iteration (each entry once, freeing as it goes), release and
 * destroy, and the 64-bit integer key helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/hashtab.h"

struct item {
	struct el_hnode hnode;
	uint64_t key;
	unsigned visits;
};

static size_t good_hash(uint64_t key)
{
	return el_hash_u64(key);
}

static size_t item_hash(const struct el_hnode *n)
{
	return good_hash(el_hashtab_entry(n, struct item, hnode)->key);
}

static bool item_eq(const struct el_hnode *n, const void *key)
{
	return el_hashtab_entry(n, struct item, hnode)->key == *(const uint64_t *)key;
}

static const struct el_hashtab_ops good_ops = { item_hash, item_eq };

/* Every key in one bucket: the chains carry everything. */
static size_t bad_hash(const struct el_hnode *n)
{
	(void)n;
	return 42;
}

static const struct el_hashtab_ops bad_ops = { bad_hash, item_eq };

static struct item *find(const struct el_hashtab *t, uint64_t key, size_t hash)
{
	struct el_hnode *n = el_hashtab_find(t, hash, &key);

	return n ? el_hashtab_entry(n, struct item, hnode) : NULL;
}

/* Inserts v[0..n) under the keys 0..n-1. */
static void fill(struct el_hashtab *t, struct item *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		v[i] = (struct item){ .key = i };
		assert_int_equal(el_hashtab_insert(t, &v[i].hnode, good_hash(i)), 0);
	}
}

/* Inserts n malloc'd items under the keys 0..n-1, for the caller to free. */
static void fill_malloced(struct el_hashtab *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct item *x = malloc(sizeof(*x));
		assert_non_null(x);
		*x = (struct item){ .key = i };
		assert_int_equal(el_hashtab_insert(t, &x->hnode, good_hash(i)), 0);
	}
}

static void test_empty(void **state)
{
	struct el_hashtab t;
	struct el_hashtab_iter it;
	uint64_t key = 7;
	struct item x = { .key = 7 };
	(void)state;

	el_hashtab_init(&t, &good_ops, 0);
	assert_null(el_hashtab_find(&t, good_hash(key), &key));
	assert_false(el_hashtab_remove(&t, &x.hnode, good_hash(key)));
	el_hashtab_iter_init(&it, &t);
	assert_null(el_hashtab_iter_next(&it));
	assert_int_equal(t.count, 0);
	assert_null(t.buckets);
	el_hashtab_destroy(&t);
	el_hashtab_destroy(&t); /* twice is fine */
}

static void test_insert_many_lookup(void **state)
{
	enum { N = 100000 };
	struct item *v = calloc(N, sizeof(*v));
	struct el_hashtab t;
	(void)state;

	assert_non_null(v);
	el_hashtab_init(&t, &good_ops, 16);
	for (size_t i = 0; i < N; i++) {
		/* multiples of a stride, as nids are */
		v[i].key = (uint64_t)i * 32;
		assert_int_equal(el_hashtab_insert(&t, &v[i].hnode, good_hash(v[i].key)), 0);
		/* load factor 1: never more entries than buckets */
		assert_true(t.count <= t.nbuckets);
		assert_int_equal(t.nbuckets & (t.nbuckets - 1), 0);
	}
	assert_int_equal(t.count, N);
	assert_true(t.nbuckets >= N && t.nbuckets < 2 * N);
	for (size_t i = 0; i < N; i++)
		assert_ptr_equal(find(&t, v[i].key, good_hash(v[i].key)), &v[i]);
	/* misses: odd keys, keys past the end */
	for (uint64_t k = 1; k < 20000; k += 2)
		assert_null(find(&t, k, good_hash(k)));
	for (uint64_t k = (uint64_t)N * 32; k < (uint64_t)N * 32 + 1000; k += 32)
		assert_null(find(&t, k, good_hash(k)));
	el_hashtab_destroy(&t);
	assert_int_equal(t.count, 0);
	assert_null(find(&t, 0, good_hash(0)));
	free(v);
}

static void test_growth(void **state)
{
	struct item v[1025];
	struct el_hashtab t;
	(void)state;

	el_hashtab_init(&t, &good_ops, 1000); /* rounded up to 1024 */
	assert_int_equal(t.nbuckets, 0);      /* nothing allocated yet */
	for (size_t i = 0; i < 1024; i++) {
		v[i].key = i;
		assert_int_equal(el_hashtab_insert(&t, &v[i].hnode, good_hash(i)), 0);
		assert_int_equal(t.nbuckets, 1024);
	}
	v[1024].key = 1024;
	assert_int_equal(el_hashtab_insert(&t, &v[1024].hnode, good_hash(1024)), 0);
	assert_int_equal(t.nbuckets, 2048);
	/* everything still found after the relinking */
	for (size_t i = 0; i <= 1024; i++)
		assert_ptr_equal(find(&t, i, good_hash(i)), &v[i]);
	el_hashtab_destroy(&t);
}

static void test_collisions(void **state)
{
	enum { N = 2000 };
	struct item *v = calloc(N, sizeof(*v));
	struct el_hashtab t;
	(void)state;

	assert_non_null(v);
	el_hashtab_init(&t, &bad_ops, 1);
	for (size_t i = 0; i < N; i++) {
		v[i].key = i * 7 + 3;
		assert_int_equal(el_hashtab_insert(&t, &v[i].hnode, 42), 0);
	}
	assert_int_equal(t.count, N);
	for (size_t i = 0; i < N; i++)
		assert_ptr_equal(find(&t, v[i].key, 42), &v[i]);
	assert_null(find(&t, 1, 42));
	assert_null(find(&t, 1, 43)); /* another (empty) bucket */
	/* remove every other one out of the single chain: head, middle, tail */
	for (size_t i = 0; i < N; i += 2)
		assert_true(el_hashtab_remove(&t, &v[i].hnode, 42));
	assert_false(el_hashtab_remove(&t, &v[0].hnode, 42));
	assert_int_equal(t.count, N / 2);
	for (size_t i = 0; i < N; i++)
		assert_ptr_equal(find(&t, v[i].key, 42), i % 2 ? &v[i] : NULL);
	el_hashtab_destroy(&t);
	free(v);
}

static void test_remove(void **state)
{
	enum { N = 5000 };
	struct item *v = calloc(N, sizeof(*v));
	struct el_hashtab t;
	(void)state;

	assert_non_null(v);
	el_hashtab_init(&t, &good_ops, 64);
	fill(&t, v, N);
	for (size_t i = 0; i < N; i += 3)
		assert_true(el_hashtab_remove(&t, &v[i].hnode, good_hash(i)));
	for (size_t i = 0; i < N; i++)
		assert_ptr_equal(find(&t, i, good_hash(i)), i % 3 ? &v[i] : NULL);
	/* a removed entry can go back in */
	assert_int_equal(el_hashtab_insert(&t, &v[0].hnode, good_hash(0)), 0);
	assert_ptr_equal(find(&t, 0, good_hash(0)), &v[0]);
	assert_int_equal(t.count, N - (N + 2) / 3 + 1);
	el_hashtab_destroy(&t);
	free(v);
}

static void test_iterate_and_free(void **state)
{
	enum { N = 3000 };
	struct item *v = calloc(N, sizeof(*v));
	struct el_hashtab t;
	struct el_hashtab_iter it;
	struct el_hnode *n;
	size_t seen = 0;
	(void)state;

	assert_non_null(v);
	el_hashtab_init(&t, &good_ops, 8);
	fill(&t, v, N);
	el_hashtab_iter_init(&it, &t);
	while ((n = el_hashtab_iter_next(&it))) {
		el_hashtab_entry(n, struct item, hnode)->visits++;
		seen++;
	}
	assert_int_equal(seen, N);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(v[i].visits, 1);
	el_hashtab_destroy(&t);
	free(v);

	/* entries owned by the caller, freed during the walk (as the users'
	 * free functions do); ASan checks nothing is read after its free */
	el_hashtab_init(&t, &good_ops, 4);
	fill_malloced(&t, 100);
	seen = 0;
	el_hashtab_iter_init(&it, &t);
	while ((n = el_hashtab_iter_next(&it))) {
		free(el_hashtab_entry(n, struct item, hnode));
		seen++;
	}
	assert_int_equal(seen, 100);
	el_hashtab_destroy(&t);
}

static unsigned released;

static void release_item(struct el_hnode *n)
{
	released++;
	free(el_hashtab_entry(n, struct item, hnode));
}

static void test_release(void **state)
{
	struct el_hashtab t;
	(void)state;

	el_hashtab_init(&t, &good_ops, 2);
	fill_malloced(&t, 500);
	released = 0;
	el_hashtab_release(&t, release_item);
	assert_int_equal(released, 500);
	assert_int_equal(t.count, 0);
	assert_null(t.buckets);
	/* reusable after: the same ops, the same first size */
	struct item y = { .key = 9 };
	assert_int_equal(el_hashtab_insert(&t, &y.hnode, good_hash(9)), 0);
	assert_int_equal(t.nbuckets, 2);
	assert_ptr_equal(find(&t, 9, good_hash(9)), &y);
	el_hashtab_destroy(&t);
}

static void test_u64_keys(void **state)
{
	enum { N = 20000 };
	struct el_hnode_u64 *v = calloc(N, sizeof(*v));
	struct el_hashtab t;
	(void)state;

	assert_non_null(v);
	el_hashtab_init(&t, &el_hashtab_u64_ops, 1024);
	for (size_t i = 0; i < N; i++) {
		/* nid-like keys: a stride of 2^k, and 0 and UINT64_MAX as keys */
		uint64_t key = i == N - 1 ? UINT64_MAX : (uint64_t)i << 5;
		assert_int_equal(el_hashtab_insert_u64(&t, &v[i], key), 0);
		assert_int_equal(v[i].key, key);
	}
	assert_int_equal(t.count, N);
	for (size_t i = 0; i < N; i++)
		assert_ptr_equal(el_hashtab_find_u64(&t, v[i].key), &v[i]);
	assert_null(el_hashtab_find_u64(&t, 1));
	assert_null(el_hashtab_find_u64(&t, (uint64_t)N << 5));
	assert_true(el_hashtab_remove(&t, &v[0].node, el_hash_u64(0)));
	assert_null(el_hashtab_find_u64(&t, 0));
	/* the hash spreads a stride over the buckets: no chain is long */
	size_t longest = 0;
	for (size_t b = 0; b < t.nbuckets; b++) {
		size_t len = 0;
		for (struct el_hnode *n = t.buckets[b]; n; n = n->next)
			len++;
		longest = len > longest ? len : longest;
	}
	assert_true(longest <= 12);
	el_hashtab_destroy(&t);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_insert_many_lookup),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_collisions),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_iterate_and_free),
		cmocka_unit_test(test_release),
		cmocka_unit_test(test_u64_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
