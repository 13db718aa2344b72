/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a unit test allocates is registered here, so that a failing
 * assertion (cmocka longjmps out of the test) leaves nothing behind for
 * LeakSanitizer to report and no producer thread running: the teardown
 * releases whatever the test did not.
 */
#ifndef TESTS_UNIT_LIVE_H
#define TESTS_UNIT_LIVE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "erofs-layer/input.h"
#include "erofs-layer/tar.h"
#include "erofs-layer/tree.h"
#include "erofs-layer/writer.h"

/* in release order */
enum live_kind { LIVE_TAR, LIVE_WRITER, LIVE_INPUT, LIVE_TREE, LIVE_FD, LIVE_MEM, LIVE_KINDS };

static struct {
	enum live_kind kind;
	void *p;
	int fd;
	int used;
} live_objs[256];

static inline void live_add(enum live_kind kind, void *p, int fd)
{
	for (size_t i = 0; i < sizeof(live_objs) / sizeof(live_objs[0]); i++)
		if (!live_objs[i].used) {
			live_objs[i].kind = kind;
			live_objs[i].p = p;
			live_objs[i].fd = fd;
			live_objs[i].used = 1;
			return;
		}
	fail_msg("too many live test objects");
}

/* Forgets p (or fd, when p is NULL) without releasing it. */
static inline void live_del(const void *p, int fd)
{
	for (size_t i = 0; i < sizeof(live_objs) / sizeof(live_objs[0]); i++)
		if (live_objs[i].used && (p ? live_objs[i].p == p : live_objs[i].fd == fd) &&
		    (p || live_objs[i].kind == LIVE_FD)) {
			live_objs[i].used = 0;
			return;
		}
}

static inline void *t_alloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);
	assert_non_null(p);
	live_add(LIVE_MEM, p, -1);
	return p;
}

static inline void *t_realloc(void *old, size_t n)
{
	void *p = realloc(old, n);
	assert_non_null(p);
	if (old)
		live_del(old, -1);
	live_add(LIVE_MEM, p, -1);
	return p;
}

static inline void t_free(void *p)
{
	if (p)
		live_del(p, -1);
	free(p);
}

static inline int live_teardown(void **state)
{
	(void)state;
	for (int k = 0; k < LIVE_KINDS; k++)
		for (size_t i = 0; i < sizeof(live_objs) / sizeof(live_objs[0]); i++) {
			if (!live_objs[i].used || (int)live_objs[i].kind != k)
				continue;
			live_objs[i].used = 0;
			switch (live_objs[i].kind) {
			case LIVE_TAR:
				el_tar_free(live_objs[i].p);
				break;
			case LIVE_WRITER:
				el_writer_free(live_objs[i].p);
				break;
			case LIVE_INPUT:
				el_input_free(live_objs[i].p);
				break;
			case LIVE_TREE:
				el_tree_free(live_objs[i].p);
				break;
			case LIVE_FD:
				close(live_objs[i].fd);
				break;
			default:
				free(live_objs[i].p);
				break;
			}
		}
	return 0;
}

#endif
