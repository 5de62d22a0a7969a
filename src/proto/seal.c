/*
 * seal.c - the sealing layer between framing and the message codec (proto.h, section 2).
 *
 * A sealed session keeps one struct macc_seal_dir per direction: the current epoch's key, the
 * frame counter that is the AEAD nonce, and the bytes and frames under the current key. The
 * sender and the receiver of a direction run the same bookkeeping over the same frames in the
 * same order (TCP), so they step to the next key at the same frame without any message: the
 * frame that reaches the schedule is the last one under the old key. The counter is never sent,
 * which is what makes a replayed, reordered, dropped or foreign frame fail to open: it would be
 * opened with the wrong nonce (or the wrong key), and the tag does not match.
 *
 * Suites: the AEAD is chosen once per session in the handshake (wire.c, from both HELLOs'
 * flags) and recorded in both directions; every frame of the session, either way, uses it. The
 * nonce is the direction's frame counter, big-endian, at the end of the suite's nonce length.
 *
 * Copies: small frames are sealed in place in the buffer the encoder wrote them to. A STATE is
 * encrypted straight from the per-neighbour prefix and the shared body into the per-neighbour
 * output buffer by macc_aead_seal_iov, one pass, no intermediate plaintext. Received frames are
 * opened in place in the buffer the frame decoder allocated.
 *
 * Secrets: keys live in the session (wiped by macc_session_finish), an old key is wiped at the
 * rekey that replaces it, a ticket's key copy when it is run or discarded, and a frame that
 * fails to open is wiped before the error returns.
 */
#include <errno.h>
#include <string.h>

#include "macc/proto.h"

static const char kdf_rekey_ctx[MACC_KDF_CTX_BYTES] = {'m', 'a', 'c', 'c', 'r', 'k', 'e', 'y'};

/* The AEAD nonce of frame number `counter` under suite `aead`: zero bytes || u64 BE counter, of
 * the suite's nonce length (24 or 12). Returns a pointer into `buf` to that nonce. */
static const uint8_t *make_nonce(uint8_t buf[MACC_AEAD_NONCE_BYTES], int aead, uint64_t counter)
{
	size_t n = macc_aead_nonce_bytes(aead);

	memset(buf, 0, MACC_AEAD_NONCE_BYTES);
	for (int i = 0; i < 8; i++) {
		buf[MACC_AEAD_NONCE_BYTES - 1 - i] = (uint8_t)(counter >> (8 * i));
	}
	/* An unknown suite (n == 0) is refused by the AEAD itself. */
	return buf + MACC_AEAD_NONCE_BYTES - (n != 0 ? n : MACC_AEAD_NONCE_BYTES);
}

/* Account for one frame of `plen` plaintext bytes in direction d and step the key if the
 * schedule is reached. Called only after the frame was sealed (its slot reserved) or opened. */
static int advance(struct macc_seal_dir *d, size_t plen)
{
	int rc;

	d->counter++;
	d->frames++;
	d->bytes += plen;
	if ((d->limits.frames != 0 && d->frames >= d->limits.frames) ||
	    (d->limits.bytes != 0 && d->bytes >= d->limits.bytes)) {
		/* In place: macc_kdf_derive copies the old key first and the call overwrites it. */
		rc = macc_kdf_derive(d->key, sizeof(d->key), d->epoch + 1, kdf_rekey_ctx, d->key);
		if (rc != 0) {
			return rc;
		}
		d->epoch++;
		d->frames = 0;
		d->bytes = 0;
	}
	return 0;
}

int macc_session_enable_seal(struct macc_session *s, const struct macc_seal_limits *rekey,
			     const uint8_t *eph_seed)
{
	uint8_t pk[MACC_KX_PUBKEY_BYTES], sk[MACC_KX_SECRET_BYTES];
	int rc;

	if (s->have_hello) {
		return MACC_ESTATE;
	}
	rc = macc_kx_keypair(pk, sk, eph_seed);
	if (rc != 0) {
		return rc;
	}
	memcpy(s->self_eph, pk, sizeof(pk));
	memcpy(s->eph_secret, sk, sizeof(sk));
	macc_memzero(sk, sizeof(sk));
	if (rekey != NULL) {
		s->self_rekey = *rekey;
	} else {
		s->self_rekey.bytes = MACC_SEAL_REKEY_BYTES_DEFAULT;
		s->self_rekey.frames = MACC_SEAL_REKEY_FRAMES_DEFAULT;
	}
	s->self_flags |= MACC_HELLO_F_SEAL;
	if (macc_aead_aes_fast()) {
		s->self_flags |= MACC_HELLO_F_AES256GCM;
	}
	s->seal = true;
	return 0;
}

int macc_session_seal_offer_aes(struct macc_session *s, bool offer)
{
	if (!s->seal || s->have_hello) {
		return MACC_ESTATE;
	}
	if (offer) {
		s->self_flags |= MACC_HELLO_F_AES256GCM;
	} else {
		s->self_flags &= ~(uint32_t)MACC_HELLO_F_AES256GCM;
	}
	return 0;
}

int macc_session_aead(const struct macc_session *s)
{
	return s->seal && s->have_hello ? s->aead : MACC_ESTATE;
}

void macc_session_hello_prepare(const struct macc_session *s, struct macc_hello *h)
{
	h->flags = s->self_flags;
	if (s->seal) {
		memcpy(h->eph, s->self_eph, sizeof(h->eph));
		h->rekey = s->self_rekey;
	} else {
		memset(h->eph, 0, sizeof(h->eph));
		memset(&h->rekey, 0, sizeof(h->rekey));
	}
}

bool macc_session_tx_sealed(const struct macc_session *s)
{
	return s->seal && s->tx.on;
}

bool macc_session_rx_sealed(const struct macc_session *s)
{
	return s->seal && s->rx.on;
}

int macc_session_seal_reserve(struct macc_session *s, size_t plen, struct macc_seal_ticket *t)
{
	struct macc_seal_dir next;
	int rc;

	memset(t, 0, sizeof(*t));
	if (!macc_session_tx_sealed(s)) {
		return MACC_ESTATE;
	}
	if (plen > UINT32_MAX - MACC_SEAL_OVERHEAD) {
		return MACC_ETOOBIG;
	}
	/* Validate into a temporary (the rekey may fail), then commit. */
	next = s->tx;
	memcpy(t->key, s->tx.key, sizeof(t->key));
	t->aead = s->tx.aead;
	t->counter = s->tx.counter;
	t->plen = plen;
	rc = advance(&next, plen);
	if (rc != 0) {
		macc_memzero(&next, sizeof(next));
		macc_memzero(t, sizeof(*t));
		return rc;
	}
	s->tx = next;
	macc_memzero(&next, sizeof(next));
	t->valid = true;
	return 0;
}

void macc_seal_ticket_discard(struct macc_seal_ticket *t)
{
	if (t != NULL) {
		macc_memzero(t, sizeof(*t));
	}
}

int macc_seal_ticket_run(struct macc_seal_ticket *t, const struct macc_iov *m, size_t nm,
			 struct macc_buf *out)
{
	uint8_t nonce[MACC_AEAD_NONCE_BYTES], hdr[MACC_FRAME_HDR];
	size_t total = 0, start = out->len;
	uint8_t *c;
	int rc;

	if (!t->valid) {
		return MACC_ESTATE;
	}
	for (size_t i = 0; i < nm; i++) {
		total += m[i].len;
	}
	if (total != t->plen) {
		rc = MACC_EMALFORMED;
		goto out;
	}
	rc = macc_buf_reserve(out, MACC_FRAME_HDR + total + MACC_SEAL_OVERHEAD);
	if (rc != 0) {
		goto out;
	}
	macc_put_be32(hdr, (uint32_t)(total + MACC_SEAL_OVERHEAD));
	c = out->data + start;
	memcpy(c, hdr, sizeof(hdr));
	rc = macc_aead_seal_iov(t->aead, c + MACC_FRAME_HDR, c + MACC_FRAME_HDR + total, m, nm, hdr,
				sizeof(hdr), make_nonce(nonce, t->aead, t->counter), t->key);
	if (rc == 0) {
		out->len = start + MACC_FRAME_HDR + total + MACC_SEAL_OVERHEAD;
	}
out:
	macc_memzero(t, sizeof(*t));
	return rc;
}

int macc_session_seal_frame(struct macc_session *s, struct macc_buf *out, size_t start)
{
	struct macc_seal_ticket t;
	uint8_t nonce[MACC_AEAD_NONCE_BYTES];
	struct macc_iov iov;
	uint8_t *f;
	size_t plen;
	int rc;

	if (!macc_session_tx_sealed(s)) {
		return 0;
	}
	if (start > out->len || out->len - start < MACC_FRAME_HDR ||
	    macc_get_be32(out->data + start) != out->len - start - MACC_FRAME_HDR) {
		out->len = start <= out->len ? start : out->len;
		return MACC_EMALFORMED;
	}
	plen = out->len - start - MACC_FRAME_HDR;
	/* Room for the tag first, so that a failure leaves the counters alone. */
	rc = macc_buf_reserve(out, MACC_SEAL_OVERHEAD);
	if (rc == 0) {
		rc = macc_session_seal_reserve(s, plen, &t);
	}
	if (rc != 0) {
		out->len = start;
		return rc;
	}
	f = out->data + start;
	macc_put_be32(f, (uint32_t)(plen + MACC_SEAL_OVERHEAD));
	iov.base = f + MACC_FRAME_HDR;
	iov.len = plen;
	rc = macc_aead_seal_iov(t.aead, f + MACC_FRAME_HDR, f + MACC_FRAME_HDR + plen, &iov, 1, f,
				MACC_FRAME_HDR, make_nonce(nonce, t.aead, t.counter), t.key);
	macc_seal_ticket_discard(&t);
	if (rc != 0) {
		/* The slot is spent (the peer expects that frame): the caller closes. */
		out->len = start;
		return rc;
	}
	out->len += MACC_SEAL_OVERHEAD;
	return 0;
}

int macc_session_seal_state(struct macc_session *s, const struct macc_state_body *body,
			    struct macc_buf *out)
{
	struct macc_state_prefix pre;
	struct macc_seal_ticket t;
	struct macc_iov iov[2];
	int rc;

	if (!macc_session_tx_sealed(s)) {
		return MACC_ESTATE;
	}
	rc = macc_session_state_prefix(s, body, &pre);
	if (rc != 0) {
		return rc;
	}
	/* The prefix starts with the plaintext frame header, which the sealed frame replaces. */
	iov[0].base = pre.bytes + MACC_FRAME_HDR;
	iov[0].len = pre.len - MACC_FRAME_HDR;
	iov[1].base = body->buf.data;
	iov[1].len = body->buf.len;
	/* Reserve the output before the nonce, so -ENOMEM leaves the session usable. */
	rc = macc_buf_reserve(out, MACC_FRAME_HDR + iov[0].len + iov[1].len + MACC_SEAL_OVERHEAD);
	if (rc == 0) {
		rc = macc_session_seal_reserve(s, iov[0].len + iov[1].len, &t);
	}
	if (rc == 0) {
		rc = macc_seal_ticket_run(&t, iov, 2, out);
	}
	return rc;
}

int macc_session_open(struct macc_session *s, uint8_t *payload, size_t len, size_t *ret_len,
		      struct macc_errmsg *err)
{
	uint8_t nonce[MACC_AEAD_NONCE_BYTES], hdr[MACC_FRAME_HDR];
	struct macc_seal_dir *d = &s->rx;
	size_t plen;
	int rc;

	if (!macc_session_rx_sealed(s)) {
		*ret_len = len;
		return 0;
	}
	if (d->error != 0) {
		return macc_errf(err, d->error, "sealed stream already failed: %s",
				 macc_strerror(d->error));
	}
	if (len < MACC_SEAL_OVERHEAD || len > UINT32_MAX) {
		macc_memzero(payload, len);
		d->error = MACC_EMALFORMED;
		return macc_errf(err, d->error, "sealed frame of %zu bytes is shorter than its "
				 "%d-byte tag", len, MACC_SEAL_OVERHEAD);
	}
	plen = len - MACC_SEAL_OVERHEAD;
	macc_put_be32(hdr, (uint32_t)len);
	rc = macc_aead_open(d->aead, payload, payload, plen, payload + plen, hdr, sizeof(hdr),
			    make_nonce(nonce, d->aead, d->counter), d->key);
	if (rc == MACC_ECRYPTO) {
		macc_memzero(payload + plen, MACC_SEAL_OVERHEAD);
		d->error = rc;
		return macc_errf(err, rc, "sealed frame %llu (%zu bytes): the AEAD library failed",
				 (unsigned long long)d->counter, len);
	}
	if (rc != 0) {
		macc_memzero(payload + plen, MACC_SEAL_OVERHEAD);
		d->error = MACC_EBADSIG;
		return macc_errf(err, d->error,
				 "sealed frame %llu (%zu bytes, %s) does not open: tampered, "
				 "truncated, replayed, reordered or from another session",
				 (unsigned long long)d->counter, len, macc_aead_name(d->aead));
	}
	rc = advance(d, plen);
	if (rc != 0) {
		d->error = rc;
		return macc_errf(err, rc, "rekey after frame %llu failed",
				 (unsigned long long)(d->counter - 1));
	}
	*ret_len = plen;
	return 0;
}
