/*
 * fuzz_wire_state.c - fuzzes STATE decoding (outer map and nested body) and the session checks.
 *
 * First byte even: the rest is a whole message payload. First byte odd: the rest is used as the
 * STATE *body* inside a well-formed outer map, so the fuzzer reaches the nested body parser
 * directly. A decoded STATE must have bins pointing inside the input (exactly n*4 bytes for enc
 * f32, a compressor blob of x_len / mom_len bytes otherwise), and
 * goes through macc_session_accept_state on an established session, which must refuse it (the
 * signature cannot be right) and leave the session unchanged.
 */
#include <stdlib.h>
#include <string.h>

#include "macc/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t prefix_tmpl[] = {
	0x85, 0xa3, 'v', 'e', 'r', 0x01, 0xa4, 't', 'y', 'p', 'e', 0x03,
	0xa4, 'f', 'r', 'o', 'm', 0xc4, 0x20, /* 32 bytes of key follow */
};

static int check(const uint8_t *p, size_t len)
{
	struct macc_msg m;
	struct macc_session s, before;
	uint8_t nonce[MACC_NONCE_BYTES] = {1};
	static struct macc_identity self;
	int rc = macc_msg_decode(p, len, 0, &m, NULL);

	if (rc > 0) {
		abort();
	}
	if (rc != 0 || m.type != MACC_MSG_STATE) {
		return 0;
	}
	const struct macc_state *st = &m.u.state;
	size_t vb = (size_t)st->nparams * 4;

	if (st->enc == MACC_ENC_F32 && (st->x_len != vb || (st->mom != NULL && st->mom_len != vb))) {
		abort();
	}
	if (st->body < p || st->body + st->body_len > p + len || st->x < st->body ||
	    st->x + st->x_len > st->body + st->body_len ||
	    (st->mom != NULL &&
	     (st->mom < st->body || st->mom + st->mom_len > st->body + st->body_len))) {
		abort();
	}
	/* Session with a peer whose key is the message's own sender, so the sender check passes
	 * and the signature check runs. */
	if (!self.loaded) {
		uint8_t seed[MACC_SEED_BYTES];

		memset(seed, 0x0b, sizeof(seed));
		if (macc_identity_from_seed(&self, seed) != 0) {
			abort();
		}
	}
	macc_session_init(&s, &self, nonce);
	s.peer = st->from;
	s.have_hello = true;
	s.proven = true;
	before = s;
	rc = macc_session_accept_state(&s, st, (size_t)st->nparams, NULL);
	if (rc == 0 || memcmp(&before, &s, sizeof(s)) != 0) {
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0) {
		return 0;
	}
	if ((data[0] & 1) == 0) {
		return check(data + 1, size - 1);
	}
	/* Wrap: prefix, key, "sig" bin64, "body" bin32 of the rest. */
	size_t body = size - 1;
	size_t len = sizeof(prefix_tmpl) + 32 + 4 + 2 + 64 + 5 + 5 + body;
	uint8_t *p = malloc(len);
	uint8_t *q = p;

	if (p == NULL) {
		return 0;
	}
	memcpy(q, prefix_tmpl, sizeof(prefix_tmpl));
	q += sizeof(prefix_tmpl);
	memset(q, 0x11, 32);
	q += 32;
	memcpy(q, "\xa3sig\xc4\x40", 6);
	q += 6;
	memset(q, 0x22, 64);
	q += 64;
	memcpy(q, "\xa4" "body\xc6", 6);
	q += 6;
	macc_put_be32(q, (uint32_t)body);
	q += 4;
	memcpy(q, data + 1, body);
	q += body;
	check(p, (size_t)(q - p));
	free(p);
	return 0;
}
