/*
 * test_seal.c - sealed sessions: the encrypting handshake and the sealing layer.
 *
 * Two agents A and B with fixed identities run the real handshake through the encoder, the
 * stream decoder and the decoder, with sealing enabled on both sides, and then exchange sealed
 * frames. Attacks are replayed against a copy of the receiving session taken before the frame,
 * so each one starts from the same state: bit flips anywhere in a sealed frame (header,
 * ciphertext, tag), a replayed frame, two frames swapped, a dropped frame, a re-framed
 * (truncated) frame, a frame from another session of the same two agents, an ephemeral key
 * swapped in transit. Each must fail to open (or to verify) with the exact error code, and a
 * receiver that saw a bad frame stays failed. Rekeying is checked at the exact frame that
 * reaches the schedule, in both directions, by frames and by bytes. Golden files pin the bytes
 * of a sealed HELLO, PING and STATE for fixed keys, ephemeral seeds and nonces
 * (MACC_UPDATE_GOLDEN=1 rewrites them).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macc/proto.h"
#include "macc/rng.h"

#define MODEL_HASH 0x1234abcd5678ef01ull
#define ALGO "dmsgd"
#define NPARAMS 8

static struct macc_identity ida, idb;

static int setup(void **state)
{
	uint8_t seed[MACC_SEED_BYTES];

	(void)state;
	memset(seed, 0x0a, sizeof(seed));
	assert_int_equal(macc_identity_from_seed(&ida, seed), 0);
	memset(seed, 0x0b, sizeof(seed));
	assert_int_equal(macc_identity_from_seed(&idb, seed), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	macc_identity_finish(&ida);
	macc_identity_finish(&idb);
	return 0;
}

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		if (b[i] != 0) {
			return false;
		}
	}
	return true;
}

/* Pass one whole frame through a stream decoder (in chunks of 7 bytes) and return the payload
 * (malloc'ed). */
static uint8_t *unframe(const uint8_t *p, size_t len, size_t *ret_len)
{
	struct macc_frame_decoder d;
	uint8_t *out = NULL;
	size_t off = 0, used;
	int rc = 0;

	macc_frame_decoder_init(&d, MACC_FRAME_MAX_DEFAULT);
	while (off < len) {
		size_t n = len - off < 7 ? len - off : 7;

		rc = macc_frame_decoder_feed(&d, p + off, n, &used);
		assert_true(rc == 0 || rc == 1);
		off += used;
	}
	assert_int_equal(rc, 1);
	out = macc_frame_decoder_take(&d, ret_len);
	assert_non_null(out);
	macc_frame_decoder_finish(&d);
	return out;
}

/* Receive one frame on session s: unframe, open, decode. Returns the first error. The payload
 * is returned in *ret_payload (caller frees) so STATE pointers stay valid. */
static int receive(struct macc_session *s, const uint8_t *frame, size_t len, struct macc_msg *m,
		   uint8_t **ret_payload, struct macc_errmsg *err)
{
	size_t plen, n;
	uint8_t *payload = unframe(frame, len, &plen);
	int rc = macc_session_open(s, payload, plen, &n, err);

	if (rc == 0) {
		rc = macc_msg_decode(payload, n, 0, m, err);
	}
	if (ret_payload != NULL) {
		*ret_payload = payload;
	} else {
		free(payload);
	}
	return rc;
}

struct pair {
	struct macc_session a, b;
};

/* How a handshake between A and B goes. seal_*: enable sealing on that side; eph_*: fixed
 * ephemeral seed fill (0: random); lim_*: rekey schedules (NULL: defaults); aes_*: offer
 * AES-256-GCM (1), do not (0), or leave macc_session_enable_seal's choice for this CPU (-1);
 * flip_a: HELLO flag bits a man in the middle flips in A's HELLO on its way to B; dig_*: 0 no
 * macc_session_set_digest (an agent from before SHA-256 digests), else set_digest(dig - 1). */
struct hs {
	bool seal_a, seal_b;
	uint8_t eph_a, eph_b;
	const struct macc_seal_limits *lim_a, *lim_b;
	int aes_a, aes_b;
	uint32_t flip_a;
	int dig_a, dig_b;
};

static void hs_enable(struct macc_session *s, const struct macc_seal_limits *lim, uint8_t eph,
		      int aes)
{
	uint8_t seed[32];

	memset(seed, eph, sizeof(seed));
	assert_int_equal(macc_session_enable_seal(s, lim, eph != 0 ? seed : NULL), 0);
	if (aes >= 0) {
		assert_int_equal(macc_session_seal_offer_aes(s, aes != 0), 0);
	}
}

/* Full handshake; returns the first error of the handshake (0 when established). */
static int handshake_hs(struct pair *p, const struct hs *o)
{
	uint8_t na[MACC_NONCE_BYTES], nb[MACC_NONCE_BYTES];
	struct macc_hello ha, hb;
	struct macc_buf fa, fb;
	struct macc_msg m;
	int rc;

	memset(na, 0xa0, sizeof(na));
	memset(nb, 0xb0, sizeof(nb));
	macc_session_init(&p->a, &ida, na);
	macc_session_init(&p->b, &idb, nb);
	if (o->seal_a) {
		hs_enable(&p->a, o->lim_a, o->eph_a, o->aes_a);
	}
	if (o->seal_b) {
		hs_enable(&p->b, o->lim_b, o->eph_b, o->aes_b);
	}
	if (o->dig_a != 0) {
		assert_int_equal(macc_session_set_digest(&p->a, o->dig_a - 1), 0);
	}
	if (o->dig_b != 0) {
		assert_int_equal(macc_session_set_digest(&p->b, o->dig_b - 1), 0);
	}
	macc_hello_init(&ha, &ida, na, MODEL_HASH, NPARAMS, ALGO, 0, 1, "a");
	macc_hello_init(&hb, &idb, nb, MODEL_HASH, NPARAMS, ALGO, 0, 1, "b");
	macc_session_hello_prepare(&p->a, &ha);
	macc_session_hello_prepare(&p->b, &hb);
	ha.flags ^= o->flip_a;
	macc_buf_init(&fa, 0);
	macc_buf_init(&fb, 0);
	assert_int_equal(macc_hello_encode(&fa, &ha), 0);
	assert_int_equal(macc_hello_encode(&fb, &hb), 0);
	/* HELLOs travel in plaintext. */
	assert_int_equal(receive(&p->b, fa.data, fa.len, &m, NULL, NULL), 0);
	assert_int_equal(m.type, MACC_MSG_HELLO);
	rc = macc_session_accept_hello(&p->b, &m.u.hello, &ida.pub, 1, NULL, MODEL_HASH, NPARAMS,
				       ALGO, NULL);
	if (rc < 0) {
		goto out;
	}
	assert_int_equal(receive(&p->a, fb.data, fb.len, &m, NULL, NULL), 0);
	rc = macc_session_accept_hello(&p->a, &m.u.hello, &idb.pub, 1, &idb.pub, MODEL_HASH,
				       NPARAMS, ALGO, NULL);
	if (rc < 0) {
		goto out;
	}
	/* So do the ACKs; each switches its sender's tx on. */
	macc_buf_reset(&fa);
	macc_buf_reset(&fb);
	assert_false(macc_session_tx_sealed(&p->a));
	assert_int_equal(macc_session_ack_encode(&p->a, &fa), 0);
	assert_int_equal(macc_session_ack_encode(&p->b, &fb), 0);
	assert_int_equal(macc_session_tx_sealed(&p->a), o->seal_a);
	assert_false(macc_session_rx_sealed(&p->b));
	assert_int_equal(receive(&p->b, fa.data, fa.len, &m, NULL, NULL), 0);
	assert_int_equal(m.type, MACC_MSG_HELLO_ACK);
	rc = macc_session_verify_ack(&p->b, &m.u.ack, NULL);
	if (rc < 0) {
		goto out;
	}
	assert_int_equal(receive(&p->a, fb.data, fb.len, &m, NULL, NULL), 0);
	rc = macc_session_verify_ack(&p->a, &m.u.ack, NULL);
	if (rc < 0) {
		goto out;
	}
	assert_int_equal(macc_session_rx_sealed(&p->b), o->seal_b);
	rc = 0;
out:
	macc_buf_finish(&fa);
	macc_buf_finish(&fb);
	return rc;
}

/* The tests' usual handshake: XChaCha20-Poly1305 on every machine unless a test asks for
 * another suite, so every byte is the same wherever the tests run. */
static int handshake(struct pair *p, bool seal_a, bool seal_b, uint8_t eph_a, uint8_t eph_b,
		     const struct macc_seal_limits *lim_a, const struct macc_seal_limits *lim_b)
{
	struct hs o = {seal_a, seal_b, eph_a, eph_b, lim_a, lim_b, 0, 0, 0, 0, 0};

	return handshake_hs(p, &o);
}

/* A sealed pair on suite `aead` (both offer AES-256-GCM for it, neither for XChaCha). */
static void sealed_pair(struct pair *p, int aead, uint8_t eph_a, uint8_t eph_b,
			const struct macc_seal_limits *lim_a, const struct macc_seal_limits *lim_b)
{
	int aes = aead == MACC_AEAD_AES256GCM;
	struct hs o = {true, true, eph_a, eph_b, lim_a, lim_b, aes, aes, 0, 0, 0};

	assert_int_equal(handshake_hs(p, &o), 0);
	assert_int_equal(macc_session_aead(&p->a), aead);
	assert_int_equal(macc_session_aead(&p->b), aead);
}

/* The suite a parametrised test runs (cmocka_unit_test_prestate). */
static int suite_of(void **state)
{
	return *(const int *)*state;
}

static void pair_finish(struct pair *p)
{
	macc_session_finish(&p->a);
	macc_session_finish(&p->b);
}

/* Append one (sealed, if tx is) PING with sequence number `seq` to out. */
static void ping(struct macc_session *s, uint64_t seq, struct macc_buf *out)
{
	struct macc_ping pg = {.seq = seq, .time_ns = 1000 + seq};
	size_t start = out->len;

	assert_int_equal(macc_ping_encode(out, MACC_MSG_PING, &pg), 0);
	assert_int_equal(macc_session_seal_frame(s, out, start), 0);
}

/* Receive a PING and check its sequence number. */
static void expect_ping(struct macc_session *s, const uint8_t *f, size_t len, uint64_t seq)
{
	struct macc_errmsg err = {{0}};
	struct macc_msg m;

	assert_int_equal(receive(s, f, len, &m, NULL, &err), 0);
	assert_int_equal(m.type, MACC_MSG_PING);
	assert_int_equal(m.u.ping.seq, seq);
	assert_int_equal(m.u.ping.time_ns, 1000 + seq);
}

/* ---------------------------------------------------------------------------------------- */

static void test_handshake_keys(void **state)
{
	struct pair p;

	(void)state;
	sealed_pair(&p, suite_of(state), 0, 0, NULL, NULL);
	/* Forward secrecy: the ephemeral secrets are gone once the keys exist. */
	assert_true(all_zero(p.a.eph_secret, sizeof(p.a.eph_secret)));
	assert_true(all_zero(p.b.eph_secret, sizeof(p.b.eph_secret)));
	/* Directional keys agree across the pair and differ between directions. */
	assert_memory_equal(p.a.tx.key, p.b.rx.key, MACC_AEAD_KEY_BYTES);
	assert_memory_equal(p.a.rx.key, p.b.tx.key, MACC_AEAD_KEY_BYTES);
	assert_memory_not_equal(p.a.tx.key, p.a.rx.key, MACC_AEAD_KEY_BYTES);
	assert_false(all_zero(p.a.tx.key, MACC_AEAD_KEY_BYTES));
	/* Each side's rx schedule is what the peer announced. */
	assert_int_equal(p.b.rx.limits.bytes, MACC_SEAL_REKEY_BYTES_DEFAULT);
	assert_int_equal(p.b.rx.limits.frames, MACC_SEAL_REKEY_FRAMES_DEFAULT);
	/* Key wiping: finish leaves no key, secret or counter behind. */
	pair_finish(&p);
	assert_true(all_zero(p.a.tx.key, sizeof(p.a.tx.key)));
	assert_true(all_zero(p.a.rx.key, sizeof(p.a.rx.key)));
	assert_true(all_zero(p.b.tx.key, sizeof(p.b.tx.key)));
	assert_true(all_zero(p.b.rx.key, sizeof(p.b.rx.key)));
	assert_true(all_zero(&p.a, sizeof(p.a)));
	assert_true(all_zero(&p.b, sizeof(p.b)));
	macc_session_finish(NULL);

	/* A session that never completed its handshake wipes its ephemeral secret too. */
	{
		struct macc_session s;
		uint8_t n[MACC_NONCE_BYTES] = {1};

		macc_session_init(&s, &ida, n);
		assert_int_equal(macc_session_enable_seal(&s, NULL, NULL), 0);
		assert_false(all_zero(s.eph_secret, sizeof(s.eph_secret)));
		macc_session_finish(&s);
		assert_true(all_zero(&s, sizeof(s)));
	}
}

static void test_roundtrip(void **state)
{
	struct pair p;
	struct macc_buf out, plain;
	struct macc_msg m;
	uint8_t *payload;
	struct macc_ping pg = {.seq = 5, .time_ns = 1005};

	(void)state;
	sealed_pair(&p, suite_of(state), 0, 0, NULL, NULL);
	macc_buf_init(&out, 0);
	macc_buf_init(&plain, 0);
	/* Both directions, interleaved, many frames. */
	for (uint64_t i = 0; i < 50; i++) {
		macc_buf_reset(&out);
		ping(&p.a, i, &out);
		expect_ping(&p.b, out.data, out.len, i);
		macc_buf_reset(&out);
		ping(&p.b, 100 + i, &out);
		expect_ping(&p.a, out.data, out.len, 100 + i);
	}
	assert_int_equal(p.a.tx.counter, 50);
	assert_int_equal(p.b.rx.counter, 50);
	/* A sealed frame is the plaintext frame + 16 bytes, and does not contain it. */
	assert_int_equal(macc_ping_encode(&plain, MACC_MSG_PING, &pg), 0);
	macc_buf_reset(&out);
	ping(&p.a, 5, &out);
	assert_int_equal(out.len, plain.len + MACC_SEAL_OVERHEAD);
	assert_int_equal(macc_get_be32(out.data), plain.len - MACC_FRAME_HDR + MACC_SEAL_OVERHEAD);
	assert_null(memmem(out.data, out.len, "\xa4type", 5));
	expect_ping(&p.b, out.data, out.len, 5);
	/* BYE, sealed. */
	macc_buf_reset(&out);
	assert_int_equal(macc_bye_encode(&out, MACC_EMODEL, "going away"), 0);
	assert_int_equal(macc_session_seal_frame(&p.b, &out, 0), 0);
	assert_int_equal(receive(&p.a, out.data, out.len, &m, &payload, NULL), 0);
	assert_int_equal(m.type, MACC_MSG_BYE);
	assert_string_equal(m.u.bye.text, "going away");
	free(payload);
	/* Two frames in one buffer: the second is sealed where it starts. */
	macc_buf_reset(&out);
	ping(&p.a, 7, &out);
	{
		size_t first = out.len;

		ping(&p.a, 8, &out);
		expect_ping(&p.b, out.data, first, 7);
		expect_ping(&p.b, out.data + first, out.len - first, 8);
	}
	/* Not one whole frame: refused, removed, counters unchanged. */
	macc_buf_reset(&out);
	assert_int_equal(macc_buf_append(&out, "\0\0\0\x09xyz", 7), 0);
	{
		uint64_t c = p.a.tx.counter;

		assert_int_equal(macc_session_seal_frame(&p.a, &out, 0), MACC_EMALFORMED);
		assert_int_equal(out.len, 0);
		assert_int_equal(p.a.tx.counter, c);
	}
	macc_buf_finish(&out);
	macc_buf_finish(&plain);
	pair_finish(&p);
}

static void test_state(void **state)
{
	struct pair p;
	struct macc_buf out;
	struct macc_state_body body = {0};
	struct macc_msg m;
	struct macc_errmsg err = {{0}};
	struct macc_rng rng;
	float x[NPARAMS], v[NPARAMS], got[NPARAMS];
	uint8_t *payload;

	(void)state;
	macc_rng_seed(&rng, 7, 0);
	sealed_pair(&p, suite_of(state), 0, 0, NULL, NULL);
	macc_buf_init(&out, 0);
	for (uint64_t round = 1; round <= 5; round++) {
		struct macc_state_out so = {.round = round, .nparams = NPARAMS, .x = x, .mom = v};

		for (int i = 0; i < NPARAMS; i++) {
			x[i] = (float)macc_rng_uniform(&rng) - 0.5f;
			v[i] = (float)round * 0.25f - (float)i;
		}
		assert_int_equal(macc_state_body_encode(&body, &so), 0);
		macc_buf_reset(&out);
		assert_int_equal(macc_session_seal_state(&p.a, &body, &out), 0);
		/* Header + prefix + body + tag, the body not readable in it. */
		assert_true(out.len > body.buf.len + MACC_SEAL_OVERHEAD + MACC_FRAME_HDR);
		assert_null(memmem(out.data, out.len, body.buf.data + body.buf.len - 16, 16));
		assert_int_equal(receive(&p.b, out.data, out.len, &m, &payload, &err), 0);
		assert_int_equal(m.type, MACC_MSG_STATE);
		/* Still signed inside the encryption: the AEAD authenticated it on receipt, and the
		 * signature verifies when checked explicitly (proof for a third party). */
		assert_int_equal(macc_session_accept_state(&p.b, &m.u.state, NPARAMS, &err), 0);
		assert_int_equal(macc_session_verify_state(&p.b, &m.u.state, &err), 0);
		{
			struct macc_state_proof pr;

			macc_session_state_proof(&p.b, &m.u.state, &pr);
			assert_false(pr.checked);
			assert_int_equal(pr.round, round);
			assert_memory_equal(pr.sig, m.u.state.sig, MACC_SIG_BYTES);
			assert_memory_equal(pr.sender_nonce, p.a.self_nonce, MACC_NONCE_BYTES);
			assert_memory_equal(pr.receiver_nonce, p.b.self_nonce, MACC_NONCE_BYTES);
		}
		macc_f32le_load(got, m.u.state.x, NPARAMS);
		assert_memory_equal(got, x, sizeof(x));
		macc_f32le_load(got, m.u.state.mom, NPARAMS);
		assert_memory_equal(got, v, sizeof(v));
		free(payload);
	}
	/* A STATE whose signature does not verify (signed for another receiver, C) that A seals
	 * to B: the AEAD proves it is A's, so B takes it on receipt without hashing the body, but
	 * the explicit check (what the audit trail runs before it records a proof) refuses it. A
	 * replay of an earlier round is still refused first. */
	{
		struct macc_session forged = p.a;
		struct macc_state_out so = {.round = 6, .nparams = NPARAMS, .x = x, .mom = v};
		struct macc_state_proof pr;
		uint8_t seed[MACC_SEED_BYTES];
		struct macc_identity c;

		memset(seed, 0x0c, sizeof(seed));
		assert_int_equal(macc_identity_from_seed(&c, seed), 0);
		forged.peer = c.pub;
		assert_int_equal(macc_state_body_encode(&body, &so), 0);
		macc_buf_reset(&out);
		assert_int_equal(macc_session_seal_state(&forged, &body, &out), 0);
		p.a.tx = forged.tx; /* A's counter stays in step with what B sees */
		assert_int_equal(receive(&p.b, out.data, out.len, &m, &payload, &err), 0);
		assert_int_equal(macc_session_verify_state(&p.b, &m.u.state, &err), MACC_EBADSIG);
		assert_int_equal(macc_session_accept_state(&p.b, &m.u.state, NPARAMS, &err), 0);
		macc_session_state_proof(&p.b, &m.u.state, &pr);
		assert_false(pr.checked);
		assert_int_equal(macc_session_accept_state(&p.b, &m.u.state, NPARAMS, &err),
				 MACC_EREPLAY);
		free(payload);
		macc_identity_finish(&c);
		macc_session_finish(&forged);
	}
	/* A STATE of 80 KB (above the size where crypto.c moves from libsodium to libcrypto):
	 * opens, and does not open with any one bit flipped in its ciphertext or tag. */
	{
		enum { BIG = 10000 };
		float *bx = calloc(BIG, sizeof(float)), *bv = calloc(BIG, sizeof(float));
		float *got2 = calloc(BIG, sizeof(float));
		struct macc_state_out so = {.round = 7, .nparams = BIG, .x = bx, .mom = bv};
		struct macc_state_body big = {0};
		struct pair q;
		size_t bits[] = {8 * 4, 8 * 40000 + 3, 0};

		assert_non_null(bx);
		assert_non_null(bv);
		assert_non_null(got2);
		for (int i = 0; i < BIG; i++) {
			bx[i] = (float)i * 0.25f;
			bv[i] = -(float)i;
		}
		sealed_pair(&q, suite_of(state), 0, 0, NULL, NULL);
		assert_int_equal(macc_state_body_encode(&big, &so), 0);
		macc_buf_reset(&out);
		assert_int_equal(macc_session_seal_state(&q.a, &big, &out), 0);
		bits[2] = 8 * out.len - 1; /* the last bit of the tag */
		for (size_t k = 0; k < 3; k++) {
			struct macc_session rx = q.b;

			out.data[bits[k] / 8] ^= (uint8_t)(1u << (bits[k] % 8));
			assert_int_equal(receive(&rx, out.data, out.len, &m, NULL, NULL),
					 MACC_EBADSIG);
			out.data[bits[k] / 8] ^= (uint8_t)(1u << (bits[k] % 8));
			macc_session_finish(&rx);
		}
		assert_int_equal(receive(&q.b, out.data, out.len, &m, &payload, &err), 0);
		assert_int_equal(macc_session_accept_state(&q.b, &m.u.state, BIG, &err), 0);
		macc_f32le_load(got2, m.u.state.mom, BIG);
		assert_memory_equal(got2, bv, BIG * sizeof(float));
		free(payload);
		macc_state_body_finish(&big);
		pair_finish(&q);
		free(bx);
		free(bv);
		free(got2);
	}
	/* On a session that does not seal, seal_state refuses (send prefix + body instead). */
	{
		struct pair q;

		assert_int_equal(handshake(&q, false, false, 0, 0, NULL, NULL), 0);
		assert_int_equal(macc_session_seal_state(&q.a, &body, &out), MACC_ESTATE);
		pair_finish(&q);
	}
	macc_state_body_finish(&body);
	macc_buf_finish(&out);
	pair_finish(&p);
}

/* Every single-bit flip of a sealed frame, in header, ciphertext or tag, fails: either the
 * stream never yields a frame of that length, or the frame does not open. */
static void test_tamper(void **state)
{
	struct pair p;
	struct macc_buf f1, stream;
	size_t flips = 0, opened_fail = 0;

	(void)state;
	sealed_pair(&p, suite_of(state), 0, 0, NULL, NULL);
	macc_buf_init(&f1, 0);
	macc_buf_init(&stream, 0);
	ping(&p.a, 1, &f1);
	for (size_t bit = 0; bit < 8 * f1.len; bit++) {
		struct macc_session rx = p.b;
		struct macc_frame_decoder d;
		struct macc_errmsg err = {{0}};
		size_t used, off = 0, plen, n;
		uint8_t *payload = NULL;
		int rc = 0;

		/* The tampered frame, followed by 64 more bytes of stream. */
		macc_buf_reset(&stream);
		assert_int_equal(macc_buf_append(&stream, f1.data, f1.len), 0);
		for (int i = 0; i < 64; i++) {
			assert_int_equal(macc_buf_append(&stream, "\x42", 1), 0);
		}
		stream.data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		macc_frame_decoder_init(&d, 1024);
		while (off < stream.len) {
			rc = macc_frame_decoder_feed(&d, stream.data + off, stream.len - off,
						     &used);
			off += used;
			if (rc != 0) {
				break;
			}
		}
		flips++;
		if (rc == 1) {
			payload = macc_frame_decoder_take(&d, &plen);
			rc = macc_session_open(&rx, payload, plen, &n, &err);
			assert_true(rc == MACC_EBADSIG || rc == MACC_EMALFORMED);
			assert_true(err.text[0] != '\0');
			assert_true(all_zero(payload, plen)); /* nothing of the forgery released */
			/* The receiver stays failed, even for the genuine frame. */
			free(payload);
			payload = malloc(f1.len);
			assert_non_null(payload);
			memcpy(payload, f1.data + MACC_FRAME_HDR, f1.len - MACC_FRAME_HDR);
			plen = f1.len - MACC_FRAME_HDR;
			assert_int_equal(macc_session_open(&rx, payload, plen, &n, NULL), rc);
			opened_fail++;
			free(payload);
		} else {
			assert_true(rc == 0 || rc == MACC_ETOOBIG);
		}
		macc_frame_decoder_finish(&d);
	}
	assert_int_equal(flips, 8 * f1.len);
	/* All ciphertext and tag flips reach the AEAD; only length flips stay in the decoder. */
	assert_true(opened_fail >= 8 * (f1.len - MACC_FRAME_HDR));
	/* And the untouched frame still opens on the untouched session. */
	expect_ping(&p.b, f1.data, f1.len, 1);
	macc_buf_finish(&f1);
	macc_buf_finish(&stream);
	pair_finish(&p);
}

/* Open a frame on session s, expecting failure with `want`. */
static void expect_fail(struct macc_session *s, const uint8_t *f, size_t len, int want)
{
	struct macc_errmsg err = {{0}};
	struct macc_msg m;

	assert_int_equal(receive(s, f, len, &m, NULL, &err), want);
	assert_true(err.text[0] != '\0');
}

static void test_replay_reorder_truncate(void **state)
{
	struct pair p;
	struct macc_buf f1, f2, t;
	struct macc_session rx;

	(void)state;
	sealed_pair(&p, suite_of(state), 0, 0, NULL, NULL);
	macc_buf_init(&f1, 0);
	macc_buf_init(&f2, 0);
	macc_buf_init(&t, 0);
	ping(&p.a, 1, &f1);
	ping(&p.a, 2, &f2);

	/* Replay: frame 1 twice. */
	rx = p.b;
	expect_ping(&rx, f1.data, f1.len, 1);
	expect_fail(&rx, f1.data, f1.len, MACC_EBADSIG);
	/* Reordering: frame 2 first. */
	rx = p.b;
	expect_fail(&rx, f2.data, f2.len, MACC_EBADSIG);
	/* Dropped frame (truncation of the stream at a frame boundary, then more): frame 2 is
	 * opened where frame 1 was expected. */
	rx = p.b;
	expect_fail(&rx, f2.data, f2.len, MACC_EBADSIG);
	/* Truncated and re-framed: last byte cut, header fixed to match. */
	rx = p.b;
	assert_int_equal(macc_buf_append(&t, f1.data, f1.len - 1), 0);
	macc_put_be32(t.data, (uint32_t)(t.len - MACC_FRAME_HDR));
	expect_fail(&rx, t.data, t.len, MACC_EBADSIG);
	/* Lengthened: a byte appended, header fixed. */
	rx = p.b;
	macc_buf_reset(&t);
	assert_int_equal(macc_buf_append(&t, f1.data, f1.len), 0);
	assert_int_equal(macc_buf_append(&t, "\0", 1), 0);
	macc_put_be32(t.data, (uint32_t)(t.len - MACC_FRAME_HDR));
	expect_fail(&rx, t.data, t.len, MACC_EBADSIG);
	/* Shorter than a tag. */
	rx = p.b;
	macc_buf_reset(&t);
	assert_int_equal(macc_buf_append(&t, f1.data, MACC_FRAME_HDR + 15), 0);
	macc_put_be32(t.data, 15);
	expect_fail(&rx, t.data, t.len, MACC_EMALFORMED);
	/* A plaintext frame after the handshake (downgrade in mid-session). */
	rx = p.b;
	macc_buf_reset(&t);
	{
		struct macc_ping pg = {.seq = 1, .time_ns = 1001};

		assert_int_equal(macc_ping_encode(&t, MACC_MSG_PING, &pg), 0);
	}
	expect_fail(&rx, t.data, t.len, MACC_EBADSIG);
	/* In order, everything opens on the untouched session. */
	expect_ping(&p.b, f1.data, f1.len, 1);
	expect_ping(&p.b, f2.data, f2.len, 2);
	macc_buf_finish(&f1);
	macc_buf_finish(&f2);
	macc_buf_finish(&t);
	pair_finish(&p);
}

static void test_other_session(void **state)
{
	struct pair p, q;
	struct macc_buf f;

	(void)state;
	/* Same agents, same session nonces, different ephemeral keys: a frame of one session, at
	 * the same counter, does not open in the other. */
	sealed_pair(&p, suite_of(state), 0x11, 0x22, NULL, NULL);
	sealed_pair(&q, suite_of(state), 0x33, 0x44, NULL, NULL);
	macc_buf_init(&f, 0);
	ping(&p.a, 1, &f);
	expect_fail(&q.b, f.data, f.len, MACC_EBADSIG);
	expect_ping(&p.b, f.data, f.len, 1);
	/* The reverse direction of the same session does not open it either (own frame
	 * reflected back). */
	macc_buf_reset(&f);
	ping(&p.a, 2, &f);
	expect_fail(&p.a, f.data, f.len, MACC_EBADSIG);
	macc_buf_finish(&f);
	pair_finish(&p);
	pair_finish(&q);
}

static void test_rekey(void **state)
{
	/* A rekeys its tx every 3 frames; B every 100 plaintext bytes (a PING payload is ~30
	 * bytes, so every 4th frame). */
	struct macc_seal_limits la = {.bytes = 0, .frames = 3};
	struct macc_seal_limits lb = {.bytes = 100, .frames = 0};
	struct pair p;
	struct macc_buf f, old;
	uint8_t key0[MACC_AEAD_KEY_BYTES];
	uint64_t bytes = 0, epoch_b = 0;

	(void)state;
	sealed_pair(&p, suite_of(state), 0, 0, &la, &lb);
	assert_int_equal(p.b.rx.limits.frames, 3);
	assert_int_equal(p.a.rx.limits.bytes, 100);
	macc_buf_init(&f, 0);
	macc_buf_init(&old, 0);
	memcpy(key0, p.a.tx.key, sizeof(key0));
	for (uint64_t i = 1; i <= 20; i++) {
		macc_buf_reset(&f);
		ping(&p.a, i, &f);
		/* The sender stepped exactly at the boundary; the receiver not yet. */
		assert_int_equal(p.a.tx.epoch, i / 3);
		assert_int_equal(p.b.rx.epoch, (i - 1) / 3);
		expect_ping(&p.b, f.data, f.len, i);
		assert_int_equal(p.b.rx.epoch, i / 3);
		assert_memory_equal(p.a.tx.key, p.b.rx.key, MACC_AEAD_KEY_BYTES);
		if (i == 2) {
			assert_memory_equal(p.a.tx.key, key0, sizeof(key0));
		}
		if (i == 3) {
			/* The old key is gone from both sides. */
			assert_memory_not_equal(p.a.tx.key, key0, sizeof(key0));
			assert_memory_not_equal(p.b.rx.key, key0, sizeof(key0));
		}

		macc_buf_reset(&f);
		ping(&p.b, 1000 + i, &f);
		bytes += f.len - MACC_FRAME_HDR - MACC_SEAL_OVERHEAD;
		if (bytes >= 100) {
			epoch_b++;
			bytes = 0;
		}
		assert_int_equal(p.b.tx.epoch, epoch_b);
		assert_int_equal(p.b.tx.bytes, bytes);
		expect_ping(&p.a, f.data, f.len, 1000 + i);
		assert_int_equal(p.a.rx.epoch, epoch_b);
		assert_memory_equal(p.b.tx.key, p.a.rx.key, MACC_AEAD_KEY_BYTES);
	}
	assert_true(epoch_b >= 4);
	/* A frame sealed under the old key after the receiver moved on does not open: frame 21 is
	 * sealed by a copy of A from before the last rekey... */
	{
		struct macc_session a_old = p.a;

		macc_buf_reset(&f);
		ping(&p.a, 21, &f);     /* frame 21: the last of its epoch */
		macc_buf_reset(&old);
		ping(&a_old, 21, &old); /* same frame, same key: identical bytes */
		assert_int_equal(f.len, old.len);
		assert_memory_equal(f.data, old.data, f.len);
		expect_ping(&p.b, f.data, f.len, 21);
		/* Frame 22 by the real A is under the new key; a copy that missed the rekey (its
		 * key replaced by the one before) produces a frame B refuses. */
		memcpy(a_old.tx.key, key0, sizeof(key0));
		macc_buf_reset(&old);
		ping(&a_old, 22, &old);
		expect_fail(&p.b, old.data, old.len, MACC_EBADSIG);
		macc_session_finish(&a_old);
	}
	macc_buf_finish(&f);
	macc_buf_finish(&old);
	pair_finish(&p);
}

static void test_mismatch(void **state)
{
	struct pair p;
	uint8_t na[MACC_NONCE_BYTES], nb[MACC_NONCE_BYTES];
	struct macc_session before;
	struct macc_hello ha, hb;
	struct macc_errmsg err = {{0}};
	struct macc_buf f;
	struct macc_msg m;

	(void)state;
	/* Encryption on one side only: refused with MACC_EENCRYPT by both, naming the settings. */
	assert_int_equal(handshake(&p, true, false, 0, 0, NULL, NULL), MACC_EENCRYPT);
	pair_finish(&p);
	assert_int_equal(handshake(&p, false, true, 0, 0, NULL, NULL), MACC_EENCRYPT);
	pair_finish(&p);
	memset(na, 0xa0, sizeof(na));
	memset(nb, 0xb0, sizeof(nb));
	macc_session_init(&p.a, &ida, na);
	macc_session_init(&p.b, &idb, nb);
	assert_int_equal(macc_session_enable_seal(&p.a, NULL, NULL), 0);
	macc_hello_init(&ha, &ida, na, MODEL_HASH, NPARAMS, ALGO, 0, 1, "a");
	macc_hello_init(&hb, &idb, nb, MODEL_HASH, NPARAMS, ALGO, 0, 1, "b");
	macc_session_hello_prepare(&p.a, &ha);
	macc_session_hello_prepare(&p.b, &hb);
	before = p.a;
	assert_int_equal(macc_session_accept_hello(&p.a, &hb, &idb.pub, 1, NULL, MODEL_HASH,
						   NPARAMS, ALGO, &err),
			 MACC_EENCRYPT);
	assert_non_null(strstr(err.text, "peer 'b' has encrypt = no, we have encrypt = yes"));
	assert_memory_equal(&before, &p.a, sizeof(before));
	assert_int_equal(macc_session_accept_hello(&p.b, &ha, &ida.pub, 1, NULL, MODEL_HASH,
						   NPARAMS, ALGO, &err),
			 MACC_EENCRYPT);
	assert_non_null(strstr(err.text, "peer 'a' has encrypt = yes, we have encrypt = no"));
	assert_string_equal(macc_errname(MACC_EENCRYPT), "encrypt_mismatch");
	/* Enabling sealing after the peer's HELLO is too late. */
	assert_int_equal(macc_session_enable_seal(&p.b, NULL, NULL), 0);
	macc_session_hello_prepare(&p.b, &hb);
	assert_true(macc_session_accept_hello(&p.b, &ha, &ida.pub, 1, NULL, MODEL_HASH, NPARAMS,
					      ALGO, NULL) >= 0);
	assert_int_equal(macc_session_enable_seal(&p.b, NULL, NULL), MACC_ESTATE);

	/* A sealing HELLO without its ephemeral key does not decode. */
	macc_buf_init(&f, 0);
	assert_int_equal(macc_hello_encode(&f, &ha), 0);
	{
		uint8_t *e = memmem(f.data, f.len, "\xa3" "eph", 4);

		assert_non_null(e);
		e[1] = 'x'; /* rename the key: "eph" is missing now */
		assert_int_equal(macc_msg_decode(f.data + 4, f.len - 4, 0, &m, &err),
				 MACC_EMALFORMED);
		assert_non_null(strstr(err.text, "eph"));
	}
	/* A reflected ephemeral key (our own) and a low-order one are refused. */
	{
		struct macc_session s = before;
		struct macc_hello h = hb;

		macc_session_hello_prepare(&p.b, &h); /* flags: seal */
		memcpy(h.eph, before.self_eph, sizeof(h.eph));
		assert_int_equal(macc_session_accept_hello(&s, &h, &idb.pub, 1, NULL, MODEL_HASH,
							   NPARAMS, ALGO, &err),
				 MACC_ECRYPTO);
		memset(h.eph, 0, sizeof(h.eph));
		assert_int_equal(macc_session_accept_hello(&s, &h, &idb.pub, 1, NULL, MODEL_HASH,
							   NPARAMS, ALGO, &err),
				 MACC_ECRYPTO);
		assert_memory_equal(&s, &before, sizeof(s));
		macc_session_finish(&s);
	}
	macc_buf_finish(&f);
	macc_session_finish(&before);
	pair_finish(&p);
}

/* A man in the middle who swaps A's ephemeral key in A's HELLO for its own: B accepts the HELLO
 * (it cannot know), but A refuses B's HELLO_ACK, whose proof covers the key B saw. Likewise a
 * changed rekey schedule or stripped flag bits in transit. */
static void test_mitm_ephemeral(void **state)
{
	for (int what = 0; what < 3; what++) {
		uint8_t na[MACC_NONCE_BYTES], nb[MACC_NONCE_BYTES];
		struct macc_hello ha, hb;
		struct macc_buf f;
		struct macc_msg m;
		struct pair p;
		uint8_t mpk[32], msk[32];

		(void)state;
		memset(na, 0xa0, sizeof(na));
		memset(nb, 0xb0, sizeof(nb));
		macc_session_init(&p.a, &ida, na);
		macc_session_init(&p.b, &idb, nb);
		assert_int_equal(macc_session_enable_seal(&p.a, NULL, NULL), 0);
		assert_int_equal(macc_session_enable_seal(&p.b, NULL, NULL), 0);
		macc_hello_init(&ha, &ida, na, MODEL_HASH, NPARAMS, ALGO, 0, 1, "a");
		macc_hello_init(&hb, &idb, nb, MODEL_HASH, NPARAMS, ALGO, 0, 1, "b");
		macc_session_hello_prepare(&p.a, &ha);
		macc_session_hello_prepare(&p.b, &hb);
		assert_int_equal(macc_kx_keypair(mpk, msk, NULL), 0);
		if (what == 0) {
			memcpy(ha.eph, mpk, sizeof(mpk));
		} else if (what == 1) {
			ha.rekey.frames = 0;
			ha.rekey.bytes = UINT64_MAX;
		} else {
			ha.flags |= 0x80; /* an unknown flag bit: ignored, but signed */
		}
		macc_memzero(msk, sizeof(msk));
		assert_true(macc_session_accept_hello(&p.b, &ha, &ida.pub, 1, NULL, MODEL_HASH,
						      NPARAMS, ALGO, NULL) >= 0);
		assert_true(macc_session_accept_hello(&p.a, &hb, &idb.pub, 1, NULL, MODEL_HASH,
						      NPARAMS, ALGO, NULL) >= 0);
		macc_buf_init(&f, 0);
		assert_int_equal(macc_session_ack_encode(&p.b, &f), 0);
		assert_int_equal(macc_msg_decode(f.data + 4, f.len - 4, 0, &m, NULL), 0);
		assert_int_equal(macc_session_verify_ack(&p.a, &m.u.ack, NULL), MACC_EBADSIG);
		assert_false(p.a.proven);
		assert_false(macc_session_rx_sealed(&p.a));
		macc_buf_finish(&f);
		pair_finish(&p);
	}
}

static void test_ticket(void **state)
{
	struct pair p;
	struct macc_seal_ticket t1, t2;
	struct macc_buf plain, out;
	struct macc_iov iov;
	struct macc_ping pg1 = {.seq = 1, .time_ns = 1001}, pg2 = {.seq = 2, .time_ns = 1002};
	size_t len1;

	(void)state;
	sealed_pair(&p, suite_of(state), 0, 0, NULL, NULL);
	macc_buf_init(&plain, 0);
	macc_buf_init(&out, 0);
	assert_int_equal(macc_ping_encode(&plain, MACC_MSG_PING, &pg1), 0);
	len1 = plain.len;
	assert_int_equal(macc_ping_encode(&plain, MACC_MSG_PING, &pg2), 0);
	/* Reserve two slots in order, seal them in the opposite order (as two worker threads
	 * might), write them in reservation order. */
	assert_int_equal(macc_session_seal_reserve(&p.a, len1 - 4, &t1), 0);
	assert_int_equal(macc_session_seal_reserve(&p.a, plain.len - len1 - 4, &t2), 0);
	assert_int_equal(p.a.tx.counter, 2);
	{
		struct macc_buf o2;

		macc_buf_init(&o2, 0);
		iov = (struct macc_iov){plain.data + len1 + 4, plain.len - len1 - 4};
		assert_int_equal(macc_seal_ticket_run(&t2, &iov, 1, &o2), 0);
		assert_true(all_zero(&t2, sizeof(t2))); /* the key copy is wiped */
		iov = (struct macc_iov){plain.data + 4, len1 - 4};
		assert_int_equal(macc_seal_ticket_run(&t1, &iov, 1, &out), 0);
		assert_int_equal(macc_seal_ticket_run(&t1, &iov, 1, &out), MACC_ESTATE); /* used */
		expect_ping(&p.b, out.data, out.len, 1);
		expect_ping(&p.b, o2.data, o2.len, 2);
		macc_buf_finish(&o2);
	}
	/* The segments must add up to what was reserved; a discarded ticket is wiped. */
	assert_int_equal(macc_session_seal_reserve(&p.a, 10, &t1), 0);
	iov = (struct macc_iov){plain.data, 9};
	assert_int_equal(macc_seal_ticket_run(&t1, &iov, 1, &out), MACC_EMALFORMED);
	assert_true(all_zero(&t1, sizeof(t1)));
	assert_int_equal(macc_session_seal_reserve(&p.a, 10, &t1), 0);
	macc_seal_ticket_discard(&t1);
	assert_true(all_zero(&t1, sizeof(t1)));
	/* Not sealed: reserve refuses; seal_frame is a no-op and open a pass-through. */
	{
		struct pair q;
		size_t n;

		assert_int_equal(handshake(&q, false, false, 0, 0, NULL, NULL), 0);
		assert_int_equal(macc_session_seal_reserve(&q.a, 10, &t1), MACC_ESTATE);
		macc_buf_reset(&out);
		assert_int_equal(macc_buf_append(&out, plain.data, len1), 0);
		assert_int_equal(macc_session_seal_frame(&q.a, &out, 0), 0);
		assert_int_equal(out.len, len1);
		assert_memory_equal(out.data, plain.data, len1);
		assert_int_equal(macc_session_open(&q.b, out.data + 4, len1 - 4, &n, NULL), 0);
		assert_int_equal(n, len1 - 4);
		pair_finish(&q);
	}
	macc_buf_finish(&plain);
	macc_buf_finish(&out);
	pair_finish(&p);
}

/* Open frame f (as sealed by a session whose tx key was `key` at frame 0) with the AEAD
 * primitive directly: the wire layout of proto.h section 2 (AD = header, nonce = zeros ||
 * u64 BE 0, ciphertext || tag), independent of the session code. */
static int open_raw(int aead, const uint8_t *f, size_t len, const uint8_t *key)
{
	uint8_t nonce[MACC_AEAD_NONCE_BYTES] = {0}, *m;
	size_t clen = len - MACC_FRAME_HDR - MACC_SEAL_OVERHEAD;
	int rc;

	m = malloc(clen + 1);
	assert_non_null(m);
	rc = macc_aead_open(aead, m, f + MACC_FRAME_HDR, clen, f + len - MACC_SEAL_OVERHEAD, f,
			    MACC_FRAME_HDR, nonce, key);
	free(m);
	return rc;
}

/* The suite both HELLOs choose, and what a man in the middle cannot do about it. */
static void test_negotiate(void **state)
{
	static const struct {
		int aes_a, aes_b, want;
	} cases[] = {
		{1, 1, MACC_AEAD_AES256GCM},
		{1, 0, MACC_AEAD_XCHACHA20POLY1305},
		{0, 1, MACC_AEAD_XCHACHA20POLY1305},
		{0, 0, MACC_AEAD_XCHACHA20POLY1305},
	};
	struct pair p, q;
	struct macc_buf f;
	struct macc_msg m;

	(void)state;
	macc_buf_init(&f, 0);
	/* Both offer it: AES-256-GCM; one or neither: XChaCha20-Poly1305. Frames flow both
	 * ways either way, and the HELLO carries the bit exactly when its side offers it. */
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hs o = {
			true, true, 0x11, 0x22, NULL, NULL, cases[i].aes_a, cases[i].aes_b, 0, 0, 0};

		assert_int_equal(handshake_hs(&p, &o), 0);
		assert_int_equal(macc_session_aead(&p.a), cases[i].want);
		assert_int_equal(macc_session_aead(&p.b), cases[i].want);
		assert_int_equal(p.a.tx.aead, cases[i].want);
		assert_int_equal(p.b.rx.aead, cases[i].want);
		assert_int_equal((p.a.self_flags & MACC_HELLO_F_AES256GCM) != 0, cases[i].aes_a);
		assert_int_equal((p.b.peer_flags & MACC_HELLO_F_AES256GCM) != 0, cases[i].aes_a);
		macc_buf_reset(&f);
		ping(&p.a, 1, &f);
		/* The frame is what the suite's primitive makes, under the session's key. */
		assert_int_equal(open_raw(cases[i].want, f.data, f.len, p.b.rx.key), 0);
		assert_int_equal(open_raw(1 - cases[i].want, f.data, f.len, p.b.rx.key),
				 MACC_EBADSIG);
		expect_ping(&p.b, f.data, f.len, 1);
		macc_buf_reset(&f);
		ping(&p.b, 2, &f);
		expect_ping(&p.a, f.data, f.len, 2);
		pair_finish(&p);
	}
	/* The same ephemeral keys under the two suites give different keys (a KDF context per
	 * suite), so a frame of one session does not open in the other. */
	{
		struct hs g = {true, true, 0x11, 0x22, NULL, NULL, 1, 1, 0, 0, 0};
		struct hs x = {true, true, 0x11, 0x22, NULL, NULL, 0, 0, 0, 0, 0};

		assert_int_equal(handshake_hs(&p, &g), 0);
		assert_int_equal(handshake_hs(&q, &x), 0);
		assert_memory_not_equal(p.a.tx.key, q.a.tx.key, MACC_AEAD_KEY_BYTES);
		assert_memory_not_equal(p.a.rx.key, q.a.rx.key, MACC_AEAD_KEY_BYTES);
		macc_buf_reset(&f);
		ping(&p.a, 1, &f);
		expect_fail(&q.b, f.data, f.len, MACC_EBADSIG);
		expect_ping(&p.b, f.data, f.len, 1);
		pair_finish(&p);
		pair_finish(&q);
	}
	/* A man in the middle strips the bit from A's HELLO (to force the other suite), or adds
	 * it to a HELLO that lacks it. B takes the HELLO as it arrives, so the two sides choose
	 * different suites, but neither accepts the other's proof: the handshake fails. */
	for (int add = 0; add <= 1; add++) {
		struct hs o = {true, true, 0x11, 0x22, NULL, NULL, !add, 1, MACC_HELLO_F_AES256GCM, 0, 0};
		struct macc_errmsg err = {{0}};

		assert_int_equal(handshake_hs(&p, &o), MACC_EBADSIG); /* B refuses A's ACK */
		assert_false(p.b.proven);
		assert_false(macc_session_rx_sealed(&p.b));
		assert_int_not_equal(macc_session_aead(&p.a), macc_session_aead(&p.b));
		/* ... and A refuses B's. */
		macc_buf_reset(&f);
		assert_int_equal(macc_session_ack_encode(&p.b, &f), 0);
		assert_int_equal(macc_msg_decode(f.data + 4, f.len - 4, 0, &m, NULL), 0);
		assert_int_equal(macc_session_verify_ack(&p.a, &m.u.ack, &err), MACC_EBADSIG);
		assert_false(p.a.proven);
		assert_false(macc_session_rx_sealed(&p.a));
		pair_finish(&p);
	}
	/* The offer is made before the HELLO, on a sealing session only. */
	{
		struct hs o = {true, true, 0, 0, NULL, NULL, -1, -1, 0, 0, 0};
		struct macc_session s;
		uint8_t n[MACC_NONCE_BYTES] = {3};

		assert_int_equal(handshake_hs(&p, &o), 0);
		/* Left to enable_seal, a side offers AES-256-GCM exactly where it is fast. */
		assert_int_equal((p.a.self_flags & MACC_HELLO_F_AES256GCM) != 0,
				 macc_aead_aes_fast());
		assert_int_equal(macc_session_aead(&p.a), macc_aead_aes_fast()
								 ? MACC_AEAD_AES256GCM
								 : MACC_AEAD_XCHACHA20POLY1305);
		assert_int_equal(macc_session_seal_offer_aes(&p.a, false), MACC_ESTATE);
		pair_finish(&p);
		macc_session_init(&s, &ida, n);
		assert_int_equal(macc_session_seal_offer_aes(&s, true), MACC_ESTATE);
		assert_int_equal(macc_session_aead(&s), MACC_ESTATE);
		macc_session_finish(&s);
		assert_int_equal(handshake(&p, false, false, 0, 0, NULL, NULL), 0);
		assert_int_equal(macc_session_aead(&p.a), MACC_ESTATE);
		pair_finish(&p);
	}
	macc_buf_finish(&f);
}

/* Under AES-256-GCM no key seals more than MACC_SEAL_GCM_REKEY_BYTES_MAX bytes, whatever the
 * sender announced; both sides apply the cap, so they still step together. */
static void test_gcm_rekey_cap(void **state)
{
	struct macc_seal_limits never = {.bytes = 0, .frames = 5};
	struct macc_seal_limits huge = {.bytes = (uint64_t)1 << 40, .frames = 0};
	struct macc_seal_limits small = {.bytes = 1000, .frames = 0};
	struct pair p;

	(void)state;
	{
		struct hs o = {true, true, 0, 0, &never, &huge, 1, 1, 0, 0, 0};

		assert_int_equal(handshake_hs(&p, &o), 0);
		assert_int_equal(p.a.tx.limits.bytes, MACC_SEAL_GCM_REKEY_BYTES_MAX);
		assert_int_equal(p.a.tx.limits.frames, 5);
		assert_int_equal(p.b.rx.limits.bytes, MACC_SEAL_GCM_REKEY_BYTES_MAX);
		assert_int_equal(p.b.tx.limits.bytes, MACC_SEAL_GCM_REKEY_BYTES_MAX);
		assert_int_equal(p.a.rx.limits.bytes, MACC_SEAL_GCM_REKEY_BYTES_MAX);
		/* What was announced (and signed) is unchanged. */
		assert_int_equal(p.a.self_rekey.bytes, 0);
		assert_int_equal(p.b.peer_rekey.bytes, 0);
		pair_finish(&p);
	}
	{
		struct hs o = {true, true, 0, 0, &small, &never, 1, 1, 0, 0, 0};

		assert_int_equal(handshake_hs(&p, &o), 0);
		assert_int_equal(p.a.tx.limits.bytes, 1000); /* below the cap: as announced */
		pair_finish(&p);
	}
	{
		struct hs o = {true, true, 0, 0, &never, &huge, 0, 0, 0, 0, 0};

		assert_int_equal(handshake_hs(&p, &o), 0);
		assert_int_equal(p.a.tx.limits.bytes, 0); /* XChaCha20-Poly1305: no cap */
		assert_int_equal(p.b.tx.limits.bytes, (uint64_t)1 << 40);
		pair_finish(&p);
	}
}

/* ---------------------------------------------------------------------------------------- */
/* STATE digests: BLAKE2b-256 or SHA-256, per direction                                      */
/* ---------------------------------------------------------------------------------------- */

/* A STATE of `round` from p->a to p->b encoded with body digest `alg`, as the session sends it
 * (sealed or not), received by B: returns accept_state's result; *ret_payload holds the frame
 * (caller frees) for further checks of m. */
static int send_state(struct pair *p, int alg, uint64_t round, struct macc_msg *m,
		      uint8_t **ret_payload, struct macc_buf *frame)
{
	float x[NPARAMS];
	struct macc_state_out so = {.round = round, .nparams = NPARAMS, .x = x, .digest_alg = alg};
	struct macc_state_body body = {0};
	struct macc_state_prefix pre;
	struct macc_errmsg err = {{0}};
	int rc;

	for (int i = 0; i < NPARAMS; i++) {
		x[i] = (float)round - (float)i;
	}
	assert_int_equal(macc_state_body_encode(&body, &so), 0);
	assert_int_equal(body.digest_alg, alg);
	macc_buf_reset(frame);
	if (macc_session_tx_sealed(&p->a)) {
		assert_int_equal(macc_session_seal_state(&p->a, &body, frame), 0);
	} else {
		assert_int_equal(macc_session_state_prefix(&p->a, &body, &pre), 0);
		assert_int_equal(macc_buf_append(frame, pre.bytes, pre.len), 0);
		assert_int_equal(macc_buf_append(frame, body.buf.data, body.buf.len), 0);
	}
	assert_int_equal(receive(&p->b, frame->data, frame->len, m, ret_payload, &err), 0);
	rc = macc_session_accept_state(&p->b, &m->u.state, NPARAMS, &err);
	macc_state_body_finish(&body);
	return rc;
}

/* The signed text of a received STATE, rebuilt off the session as the audit trail does, and
 * checked with macc_state_signed_verify (which reads the digest from the text's domain). */
static int check_offline(const struct pair *p, const struct macc_msg *m, int alg)
{
	uint8_t digest[MACC_DIGEST_BYTES], text[MACC_STATE_SIGNED_BYTES];
	const struct macc_state *st = &m->u.state;
	struct macc_state_proof pr;
	uint64_t round = 0;
	int rc;

	macc_session_state_proof(&p->b, st, &pr);
	assert_int_equal(pr.digest_alg, alg);
	assert_int_equal(macc_digest(pr.digest_alg, digest, st->body, st->body_len), 0);
	macc_state_signed_text_alg(pr.digest_alg, &ida.pub, &idb.pub, pr.sender_nonce,
				   pr.receiver_nonce, pr.round, digest, text);
	assert_memory_equal(text, alg == MACC_DIGEST_SHA256 ? "macc/2/stsha" : "macc/2/state", 12);
	rc = macc_state_signed_verify(&ida.pub, text, sizeof(text), pr.sig, st->body, st->body_len,
				      &round, NULL);
	if (rc == 0) {
		assert_int_equal(round, st->round);
	}
	return rc;
}

static void test_digest(void **state)
{
	/* dig_a, dig_b (0: older agent, 1: BLAKE2b-256, 2: SHA-256), the digests of A->B and
	 * B->A, the digest A's body is encoded with. */
	static const struct {
		int dig_a, dig_b, a_to_b, b_to_a, body;
	} cases[] = {
		{2, 2, MACC_DIGEST_SHA256, MACC_DIGEST_SHA256, MACC_DIGEST_SHA256},
		{2, 1, MACC_DIGEST_SHA256, MACC_DIGEST_BLAKE2B256, MACC_DIGEST_SHA256},
		{1, 2, MACC_DIGEST_BLAKE2B256, MACC_DIGEST_SHA256, MACC_DIGEST_BLAKE2B256},
		/* B predates SHA-256 digests: A falls back to BLAKE2b-256 for it, computing it for
		 * the prefix although its body was digested with SHA-256. */
		{2, 0, MACC_DIGEST_BLAKE2B256, MACC_DIGEST_BLAKE2B256, MACC_DIGEST_SHA256},
		{0, 2, MACC_DIGEST_BLAKE2B256, MACC_DIGEST_BLAKE2B256, MACC_DIGEST_BLAKE2B256},
		{0, 0, MACC_DIGEST_BLAKE2B256, MACC_DIGEST_BLAKE2B256, MACC_DIGEST_BLAKE2B256},
	};
	struct macc_buf f;
	struct macc_msg m;
	struct pair p;
	uint8_t *payload;

	(void)state;
	macc_buf_init(&f, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int seal = 0; seal <= 1; seal++) {
			struct hs o = {seal, seal, 0, 0, NULL, NULL, 0, 0, 0, cases[i].dig_a,
				       cases[i].dig_b};

			assert_int_equal(handshake_hs(&p, &o), 0);
			assert_int_equal(p.a.tx_digest, cases[i].a_to_b);
			assert_int_equal(p.b.rx_digest, cases[i].a_to_b);
			assert_int_equal(p.b.tx_digest, cases[i].b_to_a);
			assert_int_equal(p.a.rx_digest, cases[i].b_to_a);
			/* Plain: B checks the signature on receipt; sealed: not, but the explicit
			 * check and the offline one (the audit trail's) pass either way. */
			assert_int_equal(send_state(&p, cases[i].body, 1, &m, &payload, &f), 0);
			assert_int_equal(macc_session_verify_state(&p.b, &m.u.state, NULL), 0);
			assert_int_equal(check_offline(&p, &m, cases[i].a_to_b), 0);
			free(payload);
			pair_finish(&p);
		}
	}
	/* A body that is not what A signed: refused on a plain session under either digest, and
	 * by the offline check; a text claiming the other digest does not verify. */
	for (int dig = 1; dig <= 2; dig++) {
		struct hs o = {false, false, 0, 0, NULL, NULL, 0, 0, 0, dig, dig};
		struct macc_state_body body = {0};
		float x[NPARAMS] = {1, 2, 3};
		struct macc_state_out so = {.round = 5, .nparams = NPARAMS, .x = x,
					    .digest_alg = dig - 1};
		struct macc_state_prefix pre;
		struct macc_errmsg err = {{0}};
		uint8_t digest[MACC_DIGEST_BYTES], text[MACC_STATE_SIGNED_BYTES];
		struct macc_state_proof pr;

		assert_int_equal(handshake_hs(&p, &o), 0);
		assert_int_equal(macc_state_body_encode(&body, &so), 0);
		assert_int_equal(macc_session_state_prefix(&p.a, &body, &pre), 0);
		macc_buf_reset(&f);
		assert_int_equal(macc_buf_append(&f, pre.bytes, pre.len), 0);
		assert_int_equal(macc_buf_append(&f, body.buf.data, body.buf.len), 0);
		f.data[f.len - 1] ^= 0x01; /* the last byte of x */
		assert_int_equal(receive(&p.b, f.data, f.len, &m, &payload, &err), 0);
		assert_int_equal(macc_session_accept_state(&p.b, &m.u.state, NPARAMS, &err),
				 MACC_EBADSIG);
		assert_int_equal(check_offline(&p, &m, dig - 1), MACC_EBADSIG);
		/* The untouched body, checked as the other digest's text: refused. */
		f.data[f.len - 1] ^= 0x01;
		macc_session_state_proof(&p.b, &m.u.state, &pr);
		assert_int_equal(macc_digest(2 - dig, digest, m.u.state.body, m.u.state.body_len), 0);
		macc_state_signed_text_alg(2 - dig, &ida.pub, &idb.pub, pr.sender_nonce,
					   pr.receiver_nonce, pr.round, digest, text);
		assert_int_equal(macc_state_signed_verify(&ida.pub, text, sizeof(text), pr.sig,
							  m.u.state.body, m.u.state.body_len, NULL,
							  &err),
				 MACC_EBADSIG);
		free(payload);
		macc_state_body_finish(&body);
		pair_finish(&p);
	}
	/* A man in the middle who adds or strips either digest bit in A's HELLO: the proof fails. */
	{
		static const uint32_t flips[] = {MACC_HELLO_F_SHA256, MACC_HELLO_F_SHA256_OK};

		for (size_t i = 0; i < 2; i++) {
			for (int dig = 0; dig <= 2; dig++) {
				struct hs o = {true, true, 0, 0, NULL, NULL, 0, 0, flips[i], dig, 2};

				assert_int_equal(handshake_hs(&p, &o), MACC_EBADSIG);
				assert_false(p.b.proven);
				pair_finish(&p);
			}
		}
	}
	/* Refusals: an unknown digest, or set after the peer's HELLO. */
	{
		struct hs o = {false, false, 0, 0, NULL, NULL, 0, 0, 0, 2, 2};
		struct macc_state_body body = {0};
		float x[NPARAMS] = {0};
		struct macc_state_out so = {.round = 1, .nparams = NPARAMS, .x = x, .digest_alg = 2};

		assert_int_equal(macc_state_body_encode(&body, &so), MACC_EMALFORMED);
		assert_int_equal(body.buf.len, 0);
		macc_state_body_finish(&body);
		assert_int_equal(handshake_hs(&p, &o), 0);
		assert_int_equal(macc_session_set_digest(&p.a, MACC_DIGEST_BLAKE2B256), MACC_ESTATE);
		pair_finish(&p);
		macc_session_init(&p.a, &ida, (const uint8_t *)"0123456789abcdef0123456789abcdef");
		assert_int_equal(macc_session_set_digest(&p.a, 7), MACC_EMALFORMED);
		assert_int_equal(macc_session_set_digest(&p.a, MACC_DIGEST_SHA256), 0);
		assert_int_equal(p.a.self_flags, MACC_HELLO_F_SHA256_OK | MACC_HELLO_F_SHA256);
		assert_int_equal(macc_session_set_digest(&p.a, MACC_DIGEST_BLAKE2B256), 0);
		assert_int_equal(p.a.self_flags, MACC_HELLO_F_SHA256_OK);
		macc_session_finish(&p.a);
	}
	macc_buf_finish(&f);
}

/* ---------------------------------------------------------------------------------------- */
/* Golden sealed frames                                                                      */
/* ---------------------------------------------------------------------------------------- */

static void check_golden(const char *name, const uint8_t *p, size_t len)
{
	const char *dir = getenv("MACC_TESTDATA");
	char path[1024];
	uint8_t *want;
	long n;
	FILE *f;

	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/golden/%s", dir, name);
	if (getenv("MACC_UPDATE_GOLDEN") != NULL) {
		f = fopen(path, "wb");
		assert_non_null(f);
		assert_int_equal(fwrite(p, 1, len, f), len);
		fclose(f);
		return;
	}
	f = fopen(path, "rb");
	if (f == NULL) {
		fail_msg("%s: missing golden file (MACC_UPDATE_GOLDEN=1 creates it)", path);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	want = malloc((size_t)n + 1);
	assert_non_null(want);
	assert_int_equal(fread(want, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	if ((size_t)n != len || memcmp(want, p, len) != 0) {
		size_t i = 0;

		while (i < len && i < (size_t)n && want[i] == p[i]) {
			i++;
		}
		free(want);
		fail_msg("%s: encoding changed (%zu bytes, golden %ld, first difference at %zu)",
			 name, len, n, i);
	}
	free(want);
}

/* The golden frames of one suite: a sealed HELLO, PING and STATE (the STATE the first frame
 * under a stepped key). */
static void golden_suite(int aead, const char *hello, const char *ping_name, const char *state)
{
	struct macc_seal_limits lim = {.bytes = 4096, .frames = 2};
	struct pair p;
	struct macc_hello h;
	struct macc_buf out;
	struct macc_state_body body = {0};
	float x[NPARAMS], v[NPARAMS];
	struct macc_state_out so = {.round = 42, .nparams = NPARAMS, .x = x, .mom = v};
	uint8_t nonce[MACC_NONCE_BYTES];

	for (int i = 0; i < NPARAMS; i++) {
		x[i] = 0.5f * (float)i - 1.0f;
		v[i] = -x[i] / 4;
	}
	macc_buf_init(&out, 0);
	/* Fixed identities, session nonces and ephemeral seeds: every byte is deterministic. */
	sealed_pair(&p, aead, 0x5a, 0x5b, &lim, &lim);
	memset(nonce, 0xa0, sizeof(nonce));
	macc_hello_init(&h, &ida, nonce, MODEL_HASH, NPARAMS, ALGO, 0, 1, "a");
	macc_session_hello_prepare(&p.a, &h);
	assert_int_equal(macc_hello_encode(&out, &h), 0);
	check_golden(hello, out.data, out.len);
	macc_buf_reset(&out);
	ping(&p.a, 9, &out);
	check_golden(ping_name, out.data, out.len);
	expect_ping(&p.b, out.data, out.len, 9);
	/* Frame 2 ends epoch 0; the STATE is frame 3, the first under the stepped key. */
	macc_buf_reset(&out);
	ping(&p.a, 10, &out);
	expect_ping(&p.b, out.data, out.len, 10);
	assert_int_equal(p.a.tx.epoch, 1);
	assert_int_equal(macc_state_body_encode(&body, &so), 0);
	macc_buf_reset(&out);
	assert_int_equal(macc_session_seal_state(&p.a, &body, &out), 0);
	check_golden(state, out.data, out.len);
	{
		struct macc_msg m;
		uint8_t *payload;

		assert_int_equal(receive(&p.b, out.data, out.len, &m, &payload, NULL), 0);
		assert_int_equal(macc_session_accept_state(&p.b, &m.u.state, NPARAMS, NULL), 0);
		free(payload);
	}
	macc_state_body_finish(&body);
	macc_buf_finish(&out);
	pair_finish(&p);
}

static void test_golden(void **state)
{
	(void)state;
	/* XChaCha20-Poly1305: the bytes of the first sealed protocol, unchanged now that the
	 * suite runs on libcrypto and AES-256-GCM can be negotiated (a side that does not offer
	 * it sends the same HELLO as before). */
	golden_suite(MACC_AEAD_XCHACHA20POLY1305, "hello_sealed.bin", "sealed_ping.bin",
		     "sealed_state.bin");
	golden_suite(MACC_AEAD_AES256GCM, "hello_sealed_gcm.bin", "sealed_ping_gcm.bin",
		     "sealed_state_gcm.bin");
	/* A plaintext STATE signed over a SHA-256 digest ("macc/2/stsha"), and the HELLO that
	 * announces it (flags MACC_HELLO_F_SHA256_OK | MACC_HELLO_F_SHA256). */
	{
		struct hs o = {false, false, 0, 0, NULL, NULL, 0, 0, 0, 2, 2};
		struct macc_state_body body = {0};
		float x[NPARAMS], v[NPARAMS];
		struct macc_state_out so = {.round = 42, .nparams = NPARAMS, .x = x, .mom = v,
					    .digest_alg = MACC_DIGEST_SHA256};
		struct macc_state_prefix pre;
		struct macc_hello h;
		struct macc_buf out;
		uint8_t nonce[MACC_NONCE_BYTES];
		struct pair p;

		for (int i = 0; i < NPARAMS; i++) {
			x[i] = 0.5f * (float)i - 1.0f;
			v[i] = -x[i] / 4;
		}
		macc_buf_init(&out, 0);
		assert_int_equal(handshake_hs(&p, &o), 0);
		memset(nonce, 0xa0, sizeof(nonce));
		macc_hello_init(&h, &ida, nonce, MODEL_HASH, NPARAMS, ALGO, 0, 1, "a");
		macc_session_hello_prepare(&p.a, &h);
		assert_int_equal(macc_hello_encode(&out, &h), 0);
		check_golden("hello_sha256.bin", out.data, out.len);
		assert_int_equal(macc_state_body_encode(&body, &so), 0);
		assert_int_equal(macc_session_state_prefix(&p.a, &body, &pre), 0);
		macc_buf_reset(&out);
		assert_int_equal(macc_buf_append(&out, pre.bytes, pre.len), 0);
		assert_int_equal(macc_buf_append(&out, body.buf.data, body.buf.len), 0);
		check_golden("state_sha256.bin", out.data, out.len);
		macc_state_body_finish(&body);
		macc_buf_finish(&out);
		pair_finish(&p);
	}
}

/* ---------------------------------------------------------------------------------------- */
/* The daemon's way: two byte streams, random read sizes, open() on every frame               */
/* ---------------------------------------------------------------------------------------- */

struct endpoint {
	const struct macc_identity *id;
	const struct macc_identity *peer;
	struct macc_session s;
	struct macc_frame_decoder dec;
	struct macc_buf out;  /* bytes written to the socket, not yet read by the peer */
	struct macc_state_body body;
	uint64_t round;       /* last STATE round sent */
	int states_rx, pongs;
	size_t plain_before_ack; /* frames received while rx was not sealed yet */
};

static void ep_init(struct endpoint *e, const struct macc_identity *id,
		    const struct macc_identity *peer, uint8_t nfill, int aead)
{
	struct macc_seal_limits lim = {.bytes = 0, .frames = 3};
	uint8_t nonce[MACC_NONCE_BYTES];
	struct macc_hello h;

	memset(e, 0, sizeof(*e));
	e->id = id;
	e->peer = peer;
	memset(nonce, nfill, sizeof(nonce));
	macc_session_init(&e->s, id, nonce);
	assert_int_equal(macc_session_enable_seal(&e->s, &lim, NULL), 0);
	assert_int_equal(macc_session_seal_offer_aes(&e->s, aead == MACC_AEAD_AES256GCM), 0);
	macc_frame_decoder_init(&e->dec, MACC_FRAME_MAX_HANDSHAKE);
	macc_buf_init(&e->out, 0);
	/* Connect: HELLO, and a PING right away (plaintext: our ACK is not sent yet). */
	macc_hello_init(&h, id, nonce, MODEL_HASH, NPARAMS, ALGO, 0, 1, "x");
	macc_session_hello_prepare(&e->s, &h);
	assert_int_equal(macc_hello_encode(&e->out, &h), 0);
	ping(&e->s, 77, &e->out);
}

static void ep_finish(struct endpoint *e)
{
	macc_frame_decoder_finish(&e->dec);
	macc_buf_finish(&e->out);
	macc_state_body_finish(&e->body);
	macc_session_finish(&e->s);
}

static void ep_send_state(struct endpoint *e)
{
	float x[NPARAMS];
	struct macc_state_out so = {.round = ++e->round, .nparams = NPARAMS, .x = x};

	for (int i = 0; i < NPARAMS; i++) {
		x[i] = (float)e->round + (float)i;
	}
	assert_int_equal(macc_state_body_encode(&e->body, &so), 0);
	assert_int_equal(macc_session_seal_state(&e->s, &e->body, &e->out), 0);
}

/* Handle one frame payload as the daemon would. */
static void ep_frame(struct endpoint *e, uint8_t *payload, size_t len)
{
	struct macc_errmsg err = {{0}};
	struct macc_msg m;
	size_t n;
	float x[NPARAMS];

	if (!macc_session_rx_sealed(&e->s)) {
		e->plain_before_ack++;
	}
	assert_int_equal(macc_session_open(&e->s, payload, len, &n, &err), 0);
	assert_int_equal(macc_msg_decode(payload, n, 0, &m, &err), 0);
	switch (m.type) {
	case MACC_MSG_HELLO:
		assert_true(macc_session_accept_hello(&e->s, &m.u.hello, &e->peer->pub, 1, NULL,
						      MODEL_HASH, NPARAMS, ALGO, &err) >= 0);
		assert_int_equal(macc_session_ack_encode(&e->s, &e->out), 0);
		/* Everything after our ACK is sealed. */
		ep_send_state(e);
		ping(&e->s, 1, &e->out);
		break;
	case MACC_MSG_HELLO_ACK:
		assert_int_equal(macc_session_verify_ack(&e->s, &m.u.ack, &err), 0);
		macc_frame_decoder_set_max(&e->dec, macc_state_frame_max(NPARAMS, true));
		break;
	case MACC_MSG_STATE:
		assert_int_equal(macc_session_accept_state(&e->s, &m.u.state, NPARAMS, &err), 0);
		macc_f32le_load(x, m.u.state.x, NPARAMS);
		assert_true(x[1] == (float)m.u.state.round + 1.0f);
		if (++e->states_rx < 6) {
			ep_send_state(e);
		}
		break;
	case MACC_MSG_PING: {
		struct macc_ping pg = m.u.ping;
		size_t start = e->out.len;

		assert_int_equal(macc_ping_encode(&e->out, MACC_MSG_PONG, &pg), 0);
		assert_int_equal(macc_session_seal_frame(&e->s, &e->out, start), 0);
		break;
	}
	case MACC_MSG_PONG:
		e->pongs++;
		break;
	default:
		fail_msg("unexpected %s", macc_msg_type_name(m.type));
	}
}

/* Move a random number of bytes from `from`'s socket to `to`'s decoder. */
static bool pump(struct endpoint *from, struct endpoint *to, struct macc_rng *rng)
{
	size_t chunk, off = 0;

	if (from->out.len == 0) {
		return false;
	}
	chunk = 1 + macc_rng_below(rng, 300);
	chunk = chunk < from->out.len ? chunk : from->out.len;
	while (off < chunk) {
		size_t used, plen;
		int rc = macc_frame_decoder_feed(&to->dec, from->out.data + off, chunk - off,
						 &used);

		assert_true(rc == 0 || rc == 1);
		off += used;
		if (rc == 1) {
			uint8_t *payload = macc_frame_decoder_take(&to->dec, &plen);

			ep_frame(to, payload, plen);
			free(payload);
		}
	}
	macc_buf_consume(&from->out, chunk);
	return true;
}

static void test_stream(void **state)
{
	struct endpoint a, b;
	struct macc_rng rng;

	(void)state;
	for (uint64_t seed = 1; seed <= 20; seed++) {
		macc_rng_seed(&rng, seed, 0);
		ep_init(&a, &ida, &idb, 0xa0, suite_of(state));
		ep_init(&b, &idb, &ida, 0xb0, suite_of(state));
		for (int steps = 0; steps < 100000; steps++) {
			bool moved = macc_rng_below(&rng, 2) == 0 ? pump(&a, &b, &rng)
								 : pump(&b, &a, &rng);

			if (!moved && a.out.len == 0 && b.out.len == 0) {
				break;
			}
		}
		/* Both got every STATE and every PING was answered, across several rekeys. */
		assert_int_equal(a.states_rx, 6);
		assert_int_equal(b.states_rx, 6);
		assert_int_equal(a.pongs, 2);
		assert_int_equal(b.pongs, 2);
		assert_int_equal(a.plain_before_ack, 3); /* HELLO, early PING, ACK */
		assert_int_equal(b.plain_before_ack, 3);
		assert_true(a.s.tx.epoch >= 3 && b.s.tx.epoch >= 3);
		assert_int_equal(a.s.tx.epoch, b.s.rx.epoch);
		assert_int_equal(b.s.tx.epoch, a.s.rx.epoch);
		ep_finish(&a);
		ep_finish(&b);
	}
}

int main(void)
{
	static const int x = MACC_AEAD_XCHACHA20POLY1305, g = MACC_AEAD_AES256GCM;
	/* Tests of the sealing layer run under both suites. */
#define BOTH(f) cmocka_unit_test_prestate(f, (void *)&x), cmocka_unit_test_prestate(f, (void *)&g)
	const struct CMUnitTest tests[] = {
		BOTH(test_handshake_keys),
		BOTH(test_roundtrip),
		BOTH(test_state),
		BOTH(test_tamper),
		BOTH(test_replay_reorder_truncate),
		BOTH(test_other_session),
		BOTH(test_rekey),
		cmocka_unit_test(test_mismatch),
		cmocka_unit_test(test_mitm_ephemeral),
		BOTH(test_ticket),
		cmocka_unit_test(test_negotiate),
		cmocka_unit_test(test_gcm_rekey_cap),
		cmocka_unit_test(test_digest),
		cmocka_unit_test(test_golden),
		BOTH(test_stream),
	};
#undef BOTH

	return cmocka_run_group_tests(tests, setup, teardown);
}
