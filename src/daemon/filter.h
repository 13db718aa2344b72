/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containerd's filter syntax, as List receives it: each string is a
 * conjunction of `field==value`, `field!=value`, `field~=regexp` or a bare
 * `field` (present), separated by commas; several strings are alternatives.
 * Field paths use dots (`labels."containerd.io/gc.root"`); values may be
 * quoted with " or ' (with backslash escapes) or bare.
 */
#ifndef SES_FILTER_H
#define SES_FILTER_H

#include <stdbool.h>
#include <stddef.h>

struct filter;

/* The adaptor: the value of a field path (path[0..n)), or NULL when absent. */
typedef const char *(*filter_field_fn)(void *ud, const char *const *path, size_t n);

int filter_parse(const char *const *exprs, size_t n, struct filter **ret, char *errbuf,
		 size_t errlen);
bool filter_match(const struct filter *f, filter_field_fn field, void *ud);
void filter_free(struct filter *f);

#endif
