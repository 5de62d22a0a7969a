/*
 * frame.c - stream framing: u32 big-endian payload length + payload.
 *
 * The decoder is a two-state machine fed arbitrary chunks of a TCP stream: it first collects the
 * 4 header bytes (possibly one at a time), then checks the announced length against the
 * configured maximum BEFORE allocating, then collects exactly that many payload bytes into one
 * allocation of that size. A length over the maximum is a sticky MACC_ETOOBIG: after it the
 * stream has lost synchronisation and the connection must be dropped, so every later call fails
 * the same way. feed() stops at the end of each frame so the caller handles frames one by one
 * and never needs more than one payload buffer per connection.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macc/proto.h"

void macc_frame_decoder_init(struct macc_frame_decoder *d, size_t max)
{
	memset(d, 0, sizeof(*d));
	d->max = max;
}

void macc_frame_decoder_finish(struct macc_frame_decoder *d)
{
	if (d == NULL) {
		return;
	}
	free(d->payload);
	memset(d, 0, sizeof(*d));
}

void macc_frame_decoder_set_max(struct macc_frame_decoder *d, size_t max)
{
	d->max = max;
}

int macc_frame_decoder_feed(struct macc_frame_decoder *d, const void *data, size_t len,
			    size_t *ret_used)
{
	const uint8_t *p = data;
	size_t used = 0;

	*ret_used = 0;
	if (d->error != 0) {
		return d->error;
	}
	if (d->ready) {
		/* The caller must take the frame first; consuming nothing keeps the stream intact. */
		return 1;
	}
	if (d->hdr_have < MACC_FRAME_HDR) {
		size_t n = MACC_FRAME_HDR - d->hdr_have;

		if (n > len) {
			n = len;
		}
		memcpy(d->hdr + d->hdr_have, p, n);
		d->hdr_have += n;
		used += n;
		if (d->hdr_have < MACC_FRAME_HDR) {
			*ret_used = used;
			return 0;
		}
		d->need = macc_get_be32(d->hdr);
		if (d->need > d->max) {
			d->error = MACC_ETOOBIG;
			*ret_used = used;
			return d->error;
		}
		/* At least one byte so that a zero-length frame still yields a non-NULL buffer. */
		d->payload = malloc(d->need > 0 ? d->need : 1);
		if (d->payload == NULL) {
			d->error = -ENOMEM;
			*ret_used = used;
			return d->error;
		}
		d->have = 0;
	}
	if (d->have < d->need) {
		size_t n = d->need - d->have;

		if (n > len - used) {
			n = len - used;
		}
		memcpy(d->payload + d->have, p + used, n);
		d->have += n;
		used += n;
	}
	*ret_used = used;
	if (d->have == d->need) {
		d->ready = true;
		return 1;
	}
	return 0;
}

uint8_t *macc_frame_decoder_take(struct macc_frame_decoder *d, size_t *ret_len)
{
	uint8_t *p;

	if (!d->ready) {
		return NULL;
	}
	p = d->payload;
	*ret_len = d->need;
	d->payload = NULL;
	d->ready = false;
	d->hdr_have = 0;
	d->need = 0;
	d->have = 0;
	return p;
}

int macc_frame_put_header(struct macc_buf *out, size_t len)
{
	uint8_t hdr[MACC_FRAME_HDR];

	if (len > UINT32_MAX) {
		return MACC_ETOOBIG;
	}
	macc_put_be32(hdr, (uint32_t)len);
	return macc_buf_append(out, hdr, sizeof(hdr));
}
