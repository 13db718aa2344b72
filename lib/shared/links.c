/* SPDX-License-Identifier: Apache-2.0 */
#include "links.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static size_t link_hash(uint64_t dev, uint64_t ino)
{
	uint64_t h = ino * 0x9e3779b97f4a7c15ull ^ dev * 0xc2b2ae3d27d4eb4full;
	return (size_t)(h ^ (h >> 29));
}

static struct el_link_slot *find(struct el_links *t, uint64_t dev, uint64_t ino)
{
	size_t mask = t->cap - 1;

	for (size_t i = link_hash(dev, ino) & mask;; i = (i + 1) & mask) {
		struct el_link_slot *s = &t->v[i];
		if (!s->path || (s->dev == dev && s->ino == ino))
			return s;
	}
}

static int grow(struct el_links *t)
{
	size_t cap = t->cap ? t->cap * 2 : 256;
	struct el_link_slot *old = t->v;
	size_t oldcap = t->cap;

	t->v = calloc(cap, sizeof(*t->v));
	if (!t->v) {
		t->v = old;
		return -ENOMEM;
	}
	t->cap = cap;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].path)
			*find(t, old[i].dev, old[i].ino) = old[i];
	free(old);
	return 0;
}

int el_links_claim(struct el_links *t, uint64_t dev, uint64_t ino, const char *path, bool dir,
		   struct el_link_slot **ret, bool *ret_seen)
{
	if ((t->n + 1) * 2 > t->cap && grow(t) < 0)
		return -ENOMEM;
	struct el_link_slot *s = find(t, dev, ino);
	*ret = s;
	*ret_seen = s->path != NULL;
	if (*ret_seen)
		return 0;
	s->path = strdup(path);
	if (!s->path)
		return -ENOMEM;
	s->dev = dev;
	s->ino = ino;
	s->dir = dir;
	t->n++;
	return 0;
}

void el_links_free(struct el_links *t)
{
	for (size_t i = 0; i < t->cap; i++)
		free(t->v[i].path);
	free(t->v);
	*t = (struct el_links){ 0 };
}
