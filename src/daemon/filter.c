/* SPDX-License-Identifier: Apache-2.0 */
#include "filter.h"

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PATH_PARTS 8

enum op { OP_PRESENT, OP_EQ, OP_NE, OP_MATCH };

struct clause {
	char *path[MAX_PATH_PARTS];
	size_t npath;
	enum op op;
	char *value;
	regex_t re;
	bool has_re;
};

struct conj {
	struct clause *c;
	size_t n;
};

struct filter {
	struct conj *alt;
	size_t n;
};

struct lexer {
	const char *s;
	size_t pos;
	char *err;
	size_t errlen;
};

static int fail(struct lexer *lx, const char *what)
{
	snprintf(lx->err, lx->errlen, "filter '%s': %s at position %zu", lx->s, what, lx->pos);
	return -EINVAL;
}

static void skip_ws(struct lexer *lx)
{
	while (lx->s[lx->pos] == ' ' || lx->s[lx->pos] == '\t')
		lx->pos++;
}

/* A quoted string or a bare token (up to a delimiter). */
static int token(struct lexer *lx, const char *delims, char **ret)
{
	const char *s = lx->s;
	size_t cap = strlen(s + lx->pos) + 1, n = 0;
	char *out = malloc(cap);

	if (!out)
		return -ENOMEM;
	skip_ws(lx);
	if (s[lx->pos] == '"' || s[lx->pos] == '\'') {
		char q = s[lx->pos++];
		while (s[lx->pos] && s[lx->pos] != q) {
			if (s[lx->pos] == '\\' && s[lx->pos + 1])
				lx->pos++;
			out[n++] = s[lx->pos++];
		}
		if (s[lx->pos] != q) {
			free(out);
			return fail(lx, "unterminated quote");
		}
		lx->pos++;
	} else {
		while (s[lx->pos] && !strchr(delims, s[lx->pos]))
			out[n++] = s[lx->pos++];
		while (n && (out[n - 1] == ' ' || out[n - 1] == '\t'))
			n--;
		if (n == 0) {
			free(out);
			return fail(lx, "empty field or value");
		}
	}
	out[n] = 0;
	*ret = out;
	return 0;
}

static int parse_clause(struct lexer *lx, struct clause *c)
{
	int r;

	for (;;) {
		if (c->npath == MAX_PATH_PARTS)
			return fail(lx, "field path too deep");
		r = token(lx, ".=!~, \t", &c->path[c->npath]);
		if (r < 0)
			return r;
		c->npath++;
		skip_ws(lx);
		if (lx->s[lx->pos] != '.')
			break;
		lx->pos++;
	}
	const char *s = lx->s + lx->pos;
	if (!*s || *s == ',') {
		c->op = OP_PRESENT;
		return 0;
	}
	if (strncmp(s, "==", 2) == 0)
		c->op = OP_EQ;
	else if (strncmp(s, "!=", 2) == 0)
		c->op = OP_NE;
	else if (strncmp(s, "~=", 2) == 0)
		c->op = OP_MATCH;
	else
		return fail(lx, "expected ==, != or ~=");
	lx->pos += 2;
	r = token(lx, ",", &c->value);
	if (r < 0)
		return r;
	if (c->op == OP_MATCH) {
		if (regcomp(&c->re, c->value, REG_EXTENDED | REG_NOSUB) != 0)
			return fail(lx, "bad regular expression");
		c->has_re = true;
	}
	return 0;
}

int filter_parse(const char *const *exprs, size_t n, struct filter **ret, char *errbuf,
		 size_t errlen)
{
	struct filter *f = calloc(1, sizeof(*f));
	int r = 0;

	if (!f)
		return -ENOMEM;
	f->alt = calloc(n ? n : 1, sizeof(*f->alt));
	if (!f->alt) {
		free(f);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n && r == 0; i++) {
		struct lexer lx = { exprs[i], 0, errbuf, errlen };
		struct conj *cj = &f->alt[f->n++];
		skip_ws(&lx);
		if (!exprs[i][lx.pos]) {
			/* an empty filter matches everything */
			continue;
		}
		for (;;) {
			void *p = realloc(cj->c, (cj->n + 1) * sizeof(*cj->c));
			if (!p) {
				r = -ENOMEM;
				break;
			}
			cj->c = p;
			memset(&cj->c[cj->n], 0, sizeof(cj->c[0]));
			r = parse_clause(&lx, &cj->c[cj->n++]);
			if (r < 0)
				break;
			skip_ws(&lx);
			if (!lx.s[lx.pos])
				break;
			if (lx.s[lx.pos] != ',') {
				r = fail(&lx, "expected ','");
				break;
			}
			lx.pos++;
		}
	}
	if (r < 0) {
		filter_free(f);
		return r;
	}
	*ret = f;
	return 0;
}

static bool clause_match(const struct clause *c, filter_field_fn field, void *ud)
{
	const char *v = field(ud, (const char *const *)c->path, c->npath);

	switch (c->op) {
	case OP_PRESENT:
		return v != NULL;
	case OP_EQ:
		return v && strcmp(v, c->value) == 0;
	case OP_NE:
		return !v || strcmp(v, c->value) != 0;
	case OP_MATCH:
		return v && regexec(&c->re, v, 0, NULL, 0) == 0;
	}
	return false;
}

bool filter_match(const struct filter *f, filter_field_fn field, void *ud)
{
	if (!f || f->n == 0)
		return true;
	for (size_t i = 0; i < f->n; i++) {
		bool all = true;
		for (size_t j = 0; j < f->alt[i].n && all; j++)
			all = clause_match(&f->alt[i].c[j], field, ud);
		if (all)
			return true;
	}
	return false;
}

void filter_free(struct filter *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++) {
		for (size_t j = 0; j < f->alt[i].n; j++) {
			struct clause *c = &f->alt[i].c[j];
			for (size_t k = 0; k < c->npath; k++)
				free(c->path[k]);
			free(c->value);
			if (c->has_re)
				regfree(&c->re);
		}
		free(f->alt[i].c);
	}
	free(f->alt);
	free(f);
}
