/*
 * json.c - a minimal streaming JSON writer for macc-ctl --json.
 *
 * Enough for one well-formed document: nested objects and arrays with comma tracking, strings
 * escaped per RFC 8259 (quotes, backslash, control characters as \u00XX), invalid UTF-8
 * replaced by U+FFFD so a hostile peer name cannot break the document, and non-finite numbers
 * written as null (JSON has no NaN).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void json_init(struct json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
	j->first[0] = true;
}

/* Length of the valid UTF-8 sequence at p[0..n) (no overlongs, no surrogates, at most
 * U+10FFFF), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned char ch = p[0];
	size_t len = 0;

	if (ch >= 0xc2 && ch <= 0xdf) {
		len = 2;
	} else if (ch >= 0xe0 && ch <= 0xef) {
		len = 3;
	} else if (ch >= 0xf0 && ch <= 0xf4) {
		len = 4;
	}
	if (len == 0 || len > n) {
		return 0;
	}
	for (size_t k = 1; k < len; k++) {
		if ((p[k] & 0xc0) != 0x80) {
			return 0;
		}
	}
	if ((ch == 0xe0 && p[1] < 0xa0) || (ch == 0xed && p[1] >= 0xa0) ||
	    (ch == 0xf0 && p[1] < 0x90) || (ch == 0xf4 && p[1] >= 0x90)) {
		return 0;
	}
	return len;
}

static void put_control(FILE *f, unsigned char ch)
{
	switch (ch) {
	case '\n':
		fputs("\\n", f);
		break;
	case '\t':
		fputs("\\t", f);
		break;
	case '\r':
		fputs("\\r", f);
		break;
	default:
		fprintf(f, "\\u%04x", ch);
		break;
	}
}

static void put_escaped(FILE *f, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	fputc('"', f);
	while (i < n) {
		unsigned char ch = p[i];
		size_t len;

		if (ch == '"' || ch == '\\') {
			fputc('\\', f);
			fputc(ch, f);
			i++;
		} else if (ch < 0x20 || ch == 0x7f) {
			put_control(f, ch);
			i++;
		} else if (ch < 0x80) {
			fputc(ch, f);
			i++;
		} else if ((len = utf8_len(p + i, n - i)) > 0) {
			fwrite(p + i, 1, len, f);
			i += len;
		} else {
			fputs("\\ufffd", f); /* invalid UTF-8: one replacement per bad byte */
			i++;
		}
	}
	fputc('"', f);
}

/* Comma and key before a value. */
static void pre(struct json *j, const char *key)
{
	if (!j->first[j->depth]) {
		fputc(',', j->f);
	}
	j->first[j->depth] = false;
	if (key != NULL) {
		put_escaped(j->f, key, strlen(key));
		fputc(':', j->f);
	}
}

static void open_(struct json *j, const char *key, char ch)
{
	pre(j, key);
	fputc(ch, j->f);
	if (j->depth + 1 < (int)(sizeof(j->first) / sizeof(j->first[0]))) {
		j->depth++;
	}
	j->first[j->depth] = true;
}

void json_obj(struct json *j, const char *key)
{
	open_(j, key, '{');
}

void json_end_obj(struct json *j)
{
	fputc('}', j->f);
	if (j->depth > 0) {
		j->depth--;
	}
}

void json_arr(struct json *j, const char *key)
{
	open_(j, key, '[');
}

void json_end_arr(struct json *j)
{
	fputc(']', j->f);
	if (j->depth > 0) {
		j->depth--;
	}
}

void json_strn(struct json *j, const char *key, const char *v, size_t n)
{
	pre(j, key);
	put_escaped(j->f, v, n);
}

void json_str(struct json *j, const char *key, const char *v)
{
	json_strn(j, key, v, strlen(v));
}

void json_num(struct json *j, const char *key, double v)
{
	pre(j, key);
	if (!isfinite(v)) {
		fputs("null", j->f);
	} else {
		/* Shortest of %.15g / %.17g that reads back exactly. */
		char buf[40];

		snprintf(buf, sizeof(buf), "%.15g", v);
		if (strtod(buf, NULL) != v) {
			snprintf(buf, sizeof(buf), "%.17g", v);
		}
		fputs(buf, j->f);
	}
}

void json_u64(struct json *j, const char *key, uint64_t v)
{
	pre(j, key);
	fprintf(j->f, "%llu", (unsigned long long)v);
}

void json_i64(struct json *j, const char *key, int64_t v)
{
	pre(j, key);
	fprintf(j->f, "%lld", (long long)v);
}

void json_bool(struct json *j, const char *key, bool v)
{
	pre(j, key);
	fputs(v ? "true" : "false", j->f);
}

void json_null(struct json *j, const char *key)
{
	pre(j, key);
	fputs("null", j->f);
}

void json_done(struct json *j)
{
	fputc('\n', j->f);
	fflush(j->f);
}
