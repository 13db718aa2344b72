/* SPDX-License-Identifier: Apache-2.0 */
#include "filter.h"

#include <errno.h>
#include <stdint.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

enum op { OP_PRESENT, OP_EQ, OP_NE, OP_MATCH };

struct clause {
	char **path;
	size_t npath, path_cap;
	enum op op;
	char *value;
	regex_t re;
	bool has_re;
};

struct conj {
	struct clause *c;
	size_t n, cap;
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

static int hexdig(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static size_t put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | cp >> 18);
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* A quoted string, containerd style: '"', '/' or '|' delimiters (the last
 * two make regular expressions readable), Go escapes inside. */
static int quoted(struct lexer *lx, char *out, size_t *n)
{
	const char *s = lx->s;
	char q = s[lx->pos++];

	while (s[lx->pos] && s[lx->pos] != q) {
		char c = s[lx->pos++];
		if (c != '\\') {
			out[(*n)++] = c;
			continue;
		}
		c = s[lx->pos++];
		int digits = 0;
		switch (c) {
		case 'a': out[(*n)++] = '\a'; break;
		case 'b': out[(*n)++] = '\b'; break;
		case 'f': out[(*n)++] = '\f'; break;
		case 'n': out[(*n)++] = '\n'; break;
		case 'r': out[(*n)++] = '\r'; break;
		case 't': out[(*n)++] = '\t'; break;
		case 'v': out[(*n)++] = '\v'; break;
		case 'x': digits = 2; break;
		case 'u': digits = 4; break;
		case 'U': digits = 8; break;
		case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
			int v = c - '0';
			for (int k = 0; k < 2; k++) {
				char d = s[lx->pos];
				if (d < '0' || d > '7')
					return fail(lx, "bad octal escape");
				v = v * 8 + (d - '0');
				lx->pos++;
			}
			if (v > 255)
				return fail(lx, "bad octal escape");
			out[(*n)++] = (char)v;
			break;
		}
		case 0:
			return fail(lx, "unterminated quote");
		default:
			/* \\, \", \/, \| and the delimiter itself */
			out[(*n)++] = c;
			break;
		}
		if (digits) {
			uint32_t v = 0;
			for (int k = 0; k < digits; k++) {
				int h = hexdig(s[lx->pos]);
				if (h < 0)
					return fail(lx, "bad hexadecimal escape");
				v = v << 4 | (uint32_t)h;
				lx->pos++;
			}
			if (c == 'x')
				out[(*n)++] = (char)v;
			else if (v > 0x10FFFF)
				return fail(lx, "bad unicode escape");
			else
				*n += put_utf8(out + *n, v);
		}
	}
	if (s[lx->pos] != q)
		return fail(lx, "unterminated quote");
	lx->pos++;
	return 0;
}

static bool field_rune(char c)
{
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A field name ("quoted" or [A-Za-z0-9_]+) or a value (quoted, or a run up
 * to white space or a comma). */
static int token(struct lexer *lx, bool field, char **ret)
{
	const char *s = lx->s;
	char *out = malloc(strlen(s + lx->pos) * 4 + 1);
	size_t n = 0;
	int r = 0;

	if (!out)
		return -ENOMEM;
	skip_ws(lx);
	char c = s[lx->pos];
	if (c == '"' || (!field && (c == '/' || c == '|' || c == '\''))) {
		r = quoted(lx, out, &n);
	} else if (field) {
		while (field_rune(s[lx->pos]))
			out[n++] = s[lx->pos++];
		if (!n)
			r = fail(lx, "expected a field name");
	} else {
		while (s[lx->pos] && s[lx->pos] != ',' && s[lx->pos] != ' ' && s[lx->pos] != '\t')
			out[n++] = s[lx->pos++];
		if (!n)
			r = fail(lx, "expected a value");
	}
	if (r < 0) {
		free(out);
		return r;
	}
	out[n] = 0;
	*ret = out;
	return 0;
}

static int parse_clause(struct lexer *lx, struct clause *c)
{
	int r;

	for (;;) {
		if (el_grow((void **)&c->path, &c->path_cap, c->npath + 1, sizeof(*c->path)) < 0)
			return -ENOMEM;
		r = token(lx, true, &c->path[c->npath]);
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
	r = token(lx, false, &c->value);
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
			if (el_grow((void **)&cj->c, &cj->cap, cj->n + 1, sizeof(*cj->c)) < 0) {
				r = -ENOMEM;
				break;
			}
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
	/* as containerd's filters.selector.Match: an absent field compares and
	 * matches as the empty string (so `parent!=""` skips parentless ones) */
	case OP_NE:
		return strcmp(v ? v : "", c->value) != 0;
	case OP_MATCH:
		return regexec(&c->re, v ? v : "", 0, NULL, 0) == 0;
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
			free(c->path);
			free(c->value);
			if (c->has_re)
				regfree(&c->re);
		}
		free(f->alt[i].c);
	}
	free(f->alt);
	free(f);
}
