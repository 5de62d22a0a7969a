/*
 * buf.h - a growable byte buffer, the unit that codecs write into and sockets send.
 *
 * The codecs append to a struct macc_buf; the daemon hands buf.data to libuv and keeps the buffer
 * alive until the write callback. Growth is geometric; `max` (0 = unlimited) caps it so a
 * misbehaving producer fails with MACC_ETOOBIG instead of eating memory.
 */
#ifndef MACC_BUF_H
#define MACC_BUF_H

#include <stddef.h>
#include <stdint.h>

struct macc_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t max; /* 0 = no limit */
};

void macc_buf_init(struct macc_buf *b, size_t max);
void macc_buf_finish(struct macc_buf *b); /* frees; accepts zeroed storage */

/* Make room for `extra` more bytes; returns 0, -ENOMEM or MACC_ETOOBIG. */
int macc_buf_reserve(struct macc_buf *b, size_t extra);
int macc_buf_append(struct macc_buf *b, const void *p, size_t n);
void macc_buf_reset(struct macc_buf *b); /* len = 0, keeps the allocation */

/* Remove the first n bytes (n <= len). */
void macc_buf_consume(struct macc_buf *b, size_t n);

/* Hand the storage to the caller (who frees it with free()) and reset the buffer. */
uint8_t *macc_buf_steal(struct macc_buf *b, size_t *ret_len);

static inline void macc_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t macc_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

#endif
