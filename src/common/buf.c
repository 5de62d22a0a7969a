/*
 * buf.c - growable byte buffer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macc/buf.h"
#include "macc/err.h"

void macc_buf_init(struct macc_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void macc_buf_finish(struct macc_buf *b)
{
	if (b == NULL) {
		return;
	}
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

int macc_buf_reserve(struct macc_buf *b, size_t extra)
{
	size_t need, cap;
	uint8_t *p;

	if (extra > SIZE_MAX - b->len) {
		return MACC_ETOOBIG;
	}
	need = b->len + extra;
	if (b->max != 0 && need > b->max) {
		return MACC_ETOOBIG;
	}
	if (need <= b->cap) {
		return 0;
	}
	cap = b->cap ? b->cap : 256;
	while (cap < need) {
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	}
	if (b->max != 0 && cap > b->max) {
		cap = b->max;
	}
	p = realloc(b->data, cap);
	if (p == NULL) {
		return -ENOMEM;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

int macc_buf_append(struct macc_buf *b, const void *p, size_t n)
{
	int r = macc_buf_reserve(b, n);

	if (r < 0) {
		return r;
	}
	if (n > 0) {
		memcpy(b->data + b->len, p, n);
		b->len += n;
	}
	return 0;
}

void macc_buf_reset(struct macc_buf *b)
{
	b->len = 0;
}

void macc_buf_consume(struct macc_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

uint8_t *macc_buf_steal(struct macc_buf *b, size_t *ret_len)
{
	uint8_t *p = b->data;

	*ret_len = b->len;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}
