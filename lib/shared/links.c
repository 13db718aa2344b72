/* SPDX-License-Identifier: Apache-2.0 */
#include "links.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct link_key {
	uint64_t dev, ino;
};

static size_t link_hash(uint64_t dev, uint64_t ino)
{
	uint64_t h = ino * 0x9e3779b97f4a7c15ull ^ dev * 0xc2b2ae3d27d4eb4full;
	return (size_t)(h ^ (h >> 29));
}

static size_t slot_hash(const struct el_hnode *n)
{
	const struct el_link_slot *s = el_hashtab_entry(n, struct el_link_slot, hnode);

	return link_hash(s->dev, s->ino);
}

static bool slot_eq(const struct el_hnode *n, const void *key)
{
	const struct el_link_slot *s = el_hashtab_entry(n, struct el_link_slot, hnode);
	const struct link_key *k = key;

	return s->dev == k->dev && s->ino == k->ino;
}

static const struct el_hashtab_ops link_ops = { slot_hash, slot_eq };

int el_links_claim(struct el_links *t, uint64_t dev, uint64_t ino, const char *path, bool dir,
		   struct el_link_slot **ret, bool *ret_seen)
{
	struct link_key k = { dev, ino };
	size_t h = link_hash(dev, ino);
	struct el_hnode *n;
	struct el_link_slot *s;
	size_t len = strlen(path);

	if (!t->tab.ops)
		el_hashtab_init(&t->tab, &link_ops, 256);
	n = el_hashtab_find(&t->tab, h, &k);
	*ret_seen = n != NULL;
	if (n) {
		*ret = el_hashtab_entry(n, struct el_link_slot, hnode);
		return 0;
	}
	s = malloc(sizeof(*s) + len + 1);
	if (!s)
		return -ENOMEM;
	s->dev = dev;
	s->ino = ino;
	s->dir = dir;
	memcpy(s->path, path, len + 1);
	if (el_hashtab_insert(&t->tab, &s->hnode, h) < 0) {
		free(s);
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

static void slot_free(struct el_hnode *n)
{
	free(el_hashtab_entry(n, struct el_link_slot, hnode));
}

void el_links_free(struct el_links *t)
{
	el_hashtab_release(&t->tab, slot_free);
	*t = (struct el_links){ 0 };
}
