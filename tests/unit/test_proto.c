/*
 * test_proto.c - framing, the peer message codec and session security.
 *
 * Three agents A, B, C with fixed seeds; A and B are each other's allowed peers, C is a stranger
 * (or A's other neighbour, for cross-peer replays). Golden files under tests/data/golden/ pin the
 * exact bytes of every message for a fixed key, nonce and payload (Ed25519 signatures are
 * deterministic), so any wire-format change shows up here; regenerate them deliberately with
 * MACC_UPDATE_GOLDEN=1. Every attack test asserts the exact error code AND that nothing was
 * produced: the output struct keeps its sentinel bytes and the session its last round.
 *
 * Hostile inputs are written by hand with the tiny msgpack writer below (the tests do not link
 * msgpack-c: they check the codec against the format, not against itself).
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

#include "macc/consensus.h"
#include "macc/proto.h"
#include "macc/rng.h"

/* ---------------------------------------------------------------------------------------- */
/* Fixtures                                                                                  */
/* ---------------------------------------------------------------------------------------- */

#define MODEL_HASH 0x1234abcd5678ef01ull
#define ALGO "dmsgd"

struct agents {
	struct macc_identity a, b, c;
	struct macc_pubkey allow_a[2]; /* A's allow-list: B, C */
	struct macc_pubkey allow_b[1]; /* B's allow-list: A */
};

static struct agents ag;

static void make_identity(struct macc_identity *id, uint8_t fill)
{
	uint8_t seed[MACC_SEED_BYTES];

	memset(seed, fill, sizeof(seed));
	assert_int_equal(macc_identity_from_seed(id, seed), 0);
}

static int agents_setup(void **state)
{
	(void)state;
	make_identity(&ag.a, 0x0a);
	make_identity(&ag.b, 0x0b);
	make_identity(&ag.c, 0x0c);
	ag.allow_a[0] = ag.b.pub;
	ag.allow_a[1] = ag.c.pub;
	ag.allow_b[0] = ag.a.pub;
	return 0;
}

static int agents_teardown(void **state)
{
	(void)state;
	macc_identity_finish(&ag.a);
	macc_identity_finish(&ag.b);
	macc_identity_finish(&ag.c);
	return 0;
}

/* Split one encoded frame (length prefix + payload) into its payload, through the stream decoder
 * fed one byte at a time. Returns a malloc'ed payload. */
static uint8_t *unframe(const uint8_t *p, size_t len, size_t *ret_len)
{
	struct macc_frame_decoder d;
	uint8_t *out = NULL;
	size_t used;

	macc_frame_decoder_init(&d, MACC_FRAME_MAX_DEFAULT);
	for (size_t i = 0; i < len; i++) {
		int rc = macc_frame_decoder_feed(&d, p + i, 1, &used);

		assert_int_equal(used, 1);
		assert_int_equal(rc, i + 1 == len ? 1 : 0);
	}
	out = macc_frame_decoder_take(&d, ret_len);
	assert_non_null(out);
	macc_frame_decoder_finish(&d);
	return out;
}

/* Decode a whole frame from a buffer. */
static int decode_frame(const uint8_t *p, size_t len, struct macc_msg *msg,
			struct macc_errmsg *err)
{
	size_t plen;
	uint8_t *payload = unframe(p, len, &plen);
	int rc = macc_msg_decode(payload, plen, 0, msg, err);

	/* STATE pointers would dangle; tests that keep them use decode_keep. */
	free(payload);
	return rc;
}

static void fixed_nonce(uint8_t n[MACC_NONCE_BYTES], uint8_t fill)
{
	for (int i = 0; i < MACC_NONCE_BYTES; i++) {
		n[i] = (uint8_t)(fill + i);
	}
}

/* Full handshake between two sessions: x (identity ix) and y (identity iy). */
static void handshake(struct macc_session *sx, const struct macc_identity *ix, uint8_t nx,
		      struct macc_session *sy, const struct macc_identity *iy, uint8_t ny)
{
	uint8_t nonce_x[32], nonce_y[32];
	struct macc_hello hx, hy;
	struct macc_buf bx, by;
	struct macc_msg m;
	struct macc_pubkey allow_x = iy->pub, allow_y = ix->pub;

	fixed_nonce(nonce_x, nx);
	fixed_nonce(nonce_y, ny);
	macc_session_init(sx, ix, nonce_x);
	macc_session_init(sy, iy, nonce_y);
	macc_hello_init(&hx, ix, nonce_x, MODEL_HASH, 8, ALGO, 0, 2, "x");
	macc_hello_init(&hy, iy, nonce_y, MODEL_HASH, 8, ALGO, 0, 2, "y");
	macc_buf_init(&bx, 0);
	macc_buf_init(&by, 0);
	assert_int_equal(macc_hello_encode(&bx, &hx), 0);
	assert_int_equal(macc_hello_encode(&by, &hy), 0);
	/* y receives x's HELLO and vice versa. */
	assert_int_equal(decode_frame(bx.data, bx.len, &m, NULL), 0);
	assert_int_equal(m.type, MACC_MSG_HELLO);
	assert_int_equal(macc_session_accept_hello(sy, &m.u.hello, &allow_y, 1, NULL, MODEL_HASH,
						   8, ALGO, NULL),
			 0);
	assert_int_equal(decode_frame(by.data, by.len, &m, NULL), 0);
	assert_int_equal(macc_session_accept_hello(sx, &m.u.hello, &allow_x, 1, &allow_x,
						   MODEL_HASH, 8, ALGO, NULL),
			 0);
	macc_buf_reset(&bx);
	macc_buf_reset(&by);
	assert_int_equal(macc_session_ack_encode(sx, &bx), 0);
	assert_int_equal(macc_session_ack_encode(sy, &by), 0);
	assert_int_equal(decode_frame(bx.data, bx.len, &m, NULL), 0);
	assert_int_equal(m.type, MACC_MSG_HELLO_ACK);
	assert_int_equal(macc_session_verify_ack(sy, &m.u.ack, NULL), 0);
	assert_int_equal(decode_frame(by.data, by.len, &m, NULL), 0);
	assert_int_equal(macc_session_verify_ack(sx, &m.u.ack, NULL), 0);
	assert_true(sx->proven);
	assert_true(sy->proven);
	macc_buf_finish(&bx);
	macc_buf_finish(&by);
}

/* A whole STATE frame (prefix + body) from session s into `out`. */
static void state_frame(const struct macc_session *s, uint64_t round, size_t n, const float *x,
			const float *mom, struct macc_buf *out)
{
	struct macc_state_body body = {0};
	struct macc_state_prefix pre;
	struct macc_state_out so = {.round = round, .nparams = n, .x = x, .mom = mom};

	assert_int_equal(macc_state_body_encode(&body, &so), 0);
	assert_int_equal(macc_session_state_prefix(s, &body, &pre), 0);
	macc_buf_reset(out);
	assert_int_equal(macc_buf_append(out, pre.bytes, pre.len), 0);
	assert_int_equal(macc_buf_append(out, body.buf.data, body.buf.len), 0);
	macc_state_body_finish(&body);
}

/* Decode a STATE frame and run it through session s. The message and session must be left
 * untouched on failure. Returns the error code. */
static int receive_state(struct macc_session *s, const uint8_t *frame, size_t len, size_t n,
			 float *ret_x)
{
	struct macc_msg m, sentinel;
	struct macc_session before = *s;
	struct macc_errmsg err = {{0}};
	size_t plen;
	uint8_t *payload;
	int rc;

	if (len < MACC_FRAME_HDR || macc_get_be32(frame) != len - MACC_FRAME_HDR) {
		return -EINVAL;
	}
	payload = malloc(len - MACC_FRAME_HDR + 1);
	assert_non_null(payload);
	plen = len - MACC_FRAME_HDR;
	memcpy(payload, frame + MACC_FRAME_HDR, plen);
	memset(&m, 0x5a, sizeof(m));
	sentinel = m;
	rc = macc_msg_decode(payload, plen, 0, &m, &err);
	if (rc != 0) {
		assert_memory_equal(&m, &sentinel, sizeof(m));
	} else if (m.type != MACC_MSG_STATE) {
		rc = -EPROTO;
	} else {
		rc = macc_session_accept_state(s, &m.u.state, n, &err);
		if (rc == 0 && ret_x != NULL) {
			macc_f32le_load(ret_x, m.u.state.x, n);
		}
	}
	if (rc != 0) {
		assert_memory_equal(&before, s, sizeof(before));
		assert_true(err.text[0] != '\0' || rc == -EPROTO);
	}
	free(payload);
	return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* A tiny msgpack writer for hand-made (hostile) messages                                    */
/* ---------------------------------------------------------------------------------------- */

struct mp {
	uint8_t b[4096];
	size_t n;
};

static void mp_raw(struct mp *m, const void *p, size_t n)
{
	assert_true(m->n + n <= sizeof(m->b));
	memcpy(m->b + m->n, p, n);
	m->n += n;
}

static void mp_byte(struct mp *m, uint8_t v)
{
	mp_raw(m, &v, 1);
}

static void mp_be(struct mp *m, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--) {
		mp_byte(m, (uint8_t)(v >> (8 * i)));
	}
}

static void mp_map(struct mp *m, size_t n)
{
	assert_true(n < 16);
	mp_byte(m, (uint8_t)(0x80 | n));
}

static void mp_str(struct mp *m, const char *s)
{
	size_t n = strlen(s);

	assert_true(n < 32);
	mp_byte(m, (uint8_t)(0xa0 | n));
	mp_raw(m, s, n);
}

static void mp_uint(struct mp *m, uint64_t v)
{
	mp_byte(m, 0xcf);
	mp_be(m, v, 8);
}

static void mp_bin(struct mp *m, const void *p, size_t n)
{
	mp_byte(m, 0xc5);
	mp_be(m, n, 2);
	mp_raw(m, p, n);
}

/* ---------------------------------------------------------------------------------------- */
/* Framing                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static void test_frame_stream(void **state)
{
	struct macc_frame_decoder d;
	struct macc_buf s;
	struct macc_rng rng;
	size_t lens[] = {0, 1, 5, 300, 70000, 3};
	size_t nframes = sizeof(lens) / sizeof(lens[0]);

	(void)state;
	macc_rng_seed(&rng, 42, 0);
	macc_buf_init(&s, 0);
	for (size_t f = 0; f < nframes; f++) {
		assert_int_equal(macc_frame_put_header(&s, lens[f]), 0);
		for (size_t i = 0; i < lens[f]; i++) {
			uint8_t v = (uint8_t)(f * 31 + i);

			assert_int_equal(macc_buf_append(&s, &v, 1), 0);
		}
	}
	/* Chunk sizes 1 (every byte), then random chunks, then all at once. */
	for (int mode = 0; mode < 3; mode++) {
		size_t off = 0, got = 0;

		macc_frame_decoder_init(&d, 100000);
		while (off < s.len) {
			size_t chunk = mode == 0 ? 1 : mode == 1 ? 1 + macc_rng_below(&rng, 5000)
								 : s.len - off;
			size_t used;
			int rc;

			if (chunk > s.len - off) {
				chunk = s.len - off;
			}
			rc = macc_frame_decoder_feed(&d, s.data + off, chunk, &used);
			assert_true(rc == 0 || rc == 1);
			assert_true(used <= chunk);
			off += used;
			if (rc == 1) {
				size_t plen;
				uint8_t *p = macc_frame_decoder_take(&d, &plen);

				assert_non_null(p);
				assert_true(got < nframes);
				assert_int_equal(plen, lens[got]);
				for (size_t i = 0; i < plen; i++) {
					assert_int_equal(p[i], (uint8_t)(got * 31 + i));
				}
				free(p);
				got++;
			} else {
				assert_int_equal(used, chunk);
			}
		}
		assert_int_equal(got, nframes);
		assert_null(macc_frame_decoder_take(&d, &(size_t){0}));
		macc_frame_decoder_finish(&d);
	}
	macc_buf_finish(&s);
}

static void test_frame_limits(void **state)
{
	struct macc_frame_decoder d;
	uint8_t hdr[4] = {0xff, 0xff, 0xff, 0xff};
	uint8_t big[8];
	size_t used;

	(void)state;
	/* 4 GiB length prefix, fed one byte at a time: refused at the 4th byte, nothing
	 * allocated, and the error is sticky. */
	macc_frame_decoder_init(&d, MACC_FRAME_MAX_DEFAULT);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(macc_frame_decoder_feed(&d, hdr + i, 1, &used), 0);
	}
	assert_int_equal(macc_frame_decoder_feed(&d, hdr + 3, 1, &used), MACC_ETOOBIG);
	assert_null(d.payload);
	assert_int_equal(macc_frame_decoder_feed(&d, "x", 1, &used), MACC_ETOOBIG);
	assert_int_equal(used, 0);
	assert_null(macc_frame_decoder_take(&d, &used));
	macc_frame_decoder_finish(&d);

	/* Exactly max is fine, max + 1 is not. */
	macc_frame_decoder_init(&d, 4);
	macc_put_be32(big, 4);
	memcpy(big + 4, "abcd", 4);
	assert_int_equal(macc_frame_decoder_feed(&d, big, 8, &used), 1);
	assert_int_equal(used, 8);
	free(macc_frame_decoder_take(&d, &used));
	macc_put_be32(big, 5);
	assert_int_equal(macc_frame_decoder_feed(&d, big, 8, &used), MACC_ETOOBIG);
	assert_null(d.payload);
	macc_frame_decoder_finish(&d);

	/* The handshake limit, raised once the peer is proven. */
	macc_frame_decoder_init(&d, MACC_FRAME_MAX_HANDSHAKE);
	macc_put_be32(big, 5000);
	assert_int_equal(macc_frame_decoder_feed(&d, big, 4, &used), MACC_ETOOBIG);
	macc_frame_decoder_finish(&d);
	macc_frame_decoder_init(&d, MACC_FRAME_MAX_HANDSHAKE);
	macc_frame_decoder_set_max(&d, 8000);
	assert_int_equal(macc_frame_decoder_feed(&d, big, 4, &used), 0);
	assert_non_null(d.payload);
	macc_frame_decoder_finish(&d);

	/* Truncated frame: no frame is ever produced. */
	macc_frame_decoder_init(&d, 100);
	macc_put_be32(big, 10);
	assert_int_equal(macc_frame_decoder_feed(&d, big, 8, &used), 0);
	assert_int_equal(used, 8);
	assert_null(macc_frame_decoder_take(&d, &used));
	/* A ready frame must be taken before more is consumed. */
	assert_int_equal(macc_frame_decoder_feed(&d, "123456", 6, &used), 1);
	assert_int_equal(used, 6);
	assert_int_equal(macc_frame_decoder_feed(&d, "zz", 2, &used), 1);
	assert_int_equal(used, 0);
	macc_frame_decoder_finish(&d);
	macc_frame_decoder_finish(NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Golden encodings                                                                          */
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

static void test_golden(void **state)
{
	struct macc_session sa, sb;
	struct macc_hello h;
	struct macc_buf out;
	uint8_t nonce[32];
	float x[8], v[8];
	struct macc_ping ping = {.seq = 7, .time_ns = 1234567890123ull};

	(void)state;
	for (int i = 0; i < 8; i++) {
		x[i] = 0.5f * (float)i - 1.0f;
		v[i] = -x[i] / 4;
	}
	macc_buf_init(&out, 0);
	fixed_nonce(nonce, 0xa0);
	macc_hello_init(&h, &ag.a, nonce, MODEL_HASH, 8, ALGO, 42, 2, "agent-a");
	assert_int_equal(macc_hello_encode(&out, &h), 0);
	check_golden("hello.bin", out.data, out.len);

	handshake(&sa, &ag.a, 0xa0, &sb, &ag.b, 0xb0);
	macc_buf_reset(&out);
	assert_int_equal(macc_session_ack_encode(&sa, &out), 0);
	check_golden("hello_ack.bin", out.data, out.len);

	state_frame(&sa, 42, 8, x, v, &out);
	check_golden("state.bin", out.data, out.len);
	state_frame(&sa, 43, 8, x, NULL, &out);
	check_golden("state_nomom.bin", out.data, out.len);

	macc_buf_reset(&out);
	assert_int_equal(macc_ping_encode(&out, MACC_MSG_PING, &ping), 0);
	check_golden("ping.bin", out.data, out.len);
	macc_buf_reset(&out);
	assert_int_equal(macc_ping_encode(&out, MACC_MSG_PONG, &ping), 0);
	check_golden("pong.bin", out.data, out.len);
	macc_buf_reset(&out);
	assert_int_equal(macc_bye_encode(&out, MACC_EMODEL, "model mismatch"), 0);
	check_golden("bye.bin", out.data, out.len);
	macc_buf_finish(&out);
}

/* ---------------------------------------------------------------------------------------- */
/* Round trips                                                                               */
/* ---------------------------------------------------------------------------------------- */

static void test_roundtrip_messages(void **state)
{
	struct macc_hello h;
	struct macc_buf out;
	struct macc_msg m;
	uint8_t nonce[32];
	struct macc_ping p = {.seq = UINT64_MAX, .time_ns = 99};
	char longtext[600];

	(void)state;
	macc_buf_init(&out, 0);
	fixed_nonce(nonce, 3);
	macc_hello_init(&h, &ag.b, nonce, UINT64_MAX, 123456789, "cdmsgd", 1ull << 40, 17,
			"edge-07");
	h.flags = MACC_HELLO_F_SEAL;
	assert_int_equal(macc_hello_encode(&out, &h), 0);
	assert_int_equal(decode_frame(out.data, out.len, &m, NULL), 0);
	assert_int_equal(m.version, MACC_PROTO_VERSION);
	assert_int_equal(m.type, MACC_MSG_HELLO);
	assert_memory_equal(&m.u.hello, &h, sizeof(h));

	for (int t = MACC_MSG_PING; t <= MACC_MSG_PONG; t++) {
		macc_buf_reset(&out);
		assert_int_equal(macc_ping_encode(&out, t, &p), 0);
		assert_int_equal(decode_frame(out.data, out.len, &m, NULL), 0);
		assert_int_equal(m.type, t);
		assert_true(m.u.ping.seq == UINT64_MAX);
		assert_true(m.u.ping.time_ns == 99);
	}
	assert_int_equal(macc_ping_encode(&out, MACC_MSG_BYE, &p), MACC_EMALFORMED);

	macc_buf_reset(&out);
	assert_int_equal(macc_bye_encode(&out, MACC_EUNKNOWNPEER, "unknown key"), 0);
	assert_int_equal(decode_frame(out.data, out.len, &m, NULL), 0);
	assert_int_equal(m.type, MACC_MSG_BYE);
	assert_int_equal(m.u.bye.reason, MACC_EUNKNOWNPEER);
	assert_string_equal(m.u.bye.text, "unknown key");
	/* Long text is truncated by the encoder, never refused. */
	memset(longtext, 'q', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = '\0';
	macc_buf_reset(&out);
	assert_int_equal(macc_bye_encode(&out, 0, longtext), 0);
	assert_int_equal(decode_frame(out.data, out.len, &m, NULL), 0);
	assert_int_equal(strlen(m.u.bye.text), MACC_BYE_TEXT_MAX - 1);
	assert_int_equal(m.u.bye.reason, 0);

	/* A name that does not fit is refused by the encoder. */
	memset(h.name, 'n', sizeof(h.name));
	assert_int_equal(macc_hello_encode(&out, &h), MACC_EMALFORMED);
	macc_buf_finish(&out);
	assert_string_equal(macc_msg_type_name(MACC_MSG_STATE), "state");
	assert_string_equal(macc_msg_type_name(77), "unknown");
}

/* Property test: random sizes, with and without momentum and weight, random float bit patterns
 * (NaNs and denormals included), random chunking through the frame decoder. */
static void test_state_property(void **state)
{
	struct macc_session sa, sb;
	struct macc_rng rng;
	struct macc_buf fr;
	struct macc_frame_decoder d;

	(void)state;
	handshake(&sa, &ag.a, 1, &sb, &ag.b, 2);
	macc_rng_seed(&rng, 7, 1);
	macc_buf_init(&fr, 0);
	macc_frame_decoder_init(&d, macc_state_frame_max(20000, true));
	for (uint64_t round = 1; round <= 40; round++) {
		size_t n = (size_t)macc_rng_below(&rng, round % 5 == 0 ? 20000 : 300);
		bool with_mom = macc_rng_below(&rng, 2) == 1;
		bool with_w = macc_rng_below(&rng, 3) == 0;
		float *x = malloc((n + 1) * sizeof(float));
		float *v = malloc((n + 1) * sizeof(float));
		float *gx = malloc((n + 1) * sizeof(float));
		float *gv = malloc((n + 1) * sizeof(float));
		struct macc_state_body body = {0};
		struct macc_state_prefix pre;
		struct macc_state_out so = {.round = round * 3, .nparams = n, .x = x,
					    .mom = with_mom ? v : NULL, .has_weight = with_w,
					    .weight = 0.125 * (double)round};
		size_t off = 0;
		uint8_t *payload = NULL;
		size_t plen = 0;
		struct macc_msg m;

		assert_non_null(x);
		assert_non_null(v);
		assert_non_null(gx);
		assert_non_null(gv);
		for (size_t i = 0; i < n; i++) {
			uint32_t a = (uint32_t)macc_rng_next(&rng), b = (uint32_t)macc_rng_next(&rng);

			memcpy(&x[i], &a, 4);
			memcpy(&v[i], &b, 4);
		}
		assert_int_equal(macc_state_body_encode(&body, &so), 0);
		assert_int_equal(macc_session_state_prefix(&sa, &body, &pre), 0);
		assert_true(pre.len <= MACC_STATE_PREFIX_MAX);
		assert_true(pre.len + body.buf.len - MACC_FRAME_HDR <=
			    macc_state_frame_max(n, with_mom));
		macc_buf_reset(&fr);
		assert_int_equal(macc_buf_append(&fr, pre.bytes, pre.len), 0);
		assert_int_equal(macc_buf_append(&fr, body.buf.data, body.buf.len), 0);
		while (payload == NULL) {
			size_t chunk = 1 + macc_rng_below(&rng, 700), used;
			int rc;

			if (chunk > fr.len - off) {
				chunk = fr.len - off;
			}
			rc = macc_frame_decoder_feed(&d, fr.data + off, chunk, &used);
			assert_true(rc == 0 || rc == 1);
			off += used;
			if (rc == 1) {
				payload = macc_frame_decoder_take(&d, &plen);
			}
		}
		assert_int_equal(off, fr.len);
		assert_int_equal(macc_msg_decode(payload, plen, 0, &m, NULL), 0);
		assert_int_equal(m.type, MACC_MSG_STATE);
		assert_int_equal(macc_session_accept_state(&sb, &m.u.state, n, NULL), 0);
		{
			/* Plaintext: the signature was checked on receipt. */
			struct macc_state_proof pr;

			macc_session_state_proof(&sb, &m.u.state, &pr);
			assert_true(pr.checked);
			assert_true(pr.round == round * 3);
			assert_int_equal(macc_session_verify_state(&sb, &m.u.state, NULL), 0);
		}
		assert_true(m.u.state.round == round * 3);
		assert_true(m.u.state.nparams == n);
		assert_int_equal(m.u.state.has_weight, with_w);
		if (with_w) {
			assert_true(m.u.state.weight == 0.125 * (double)round);
		}
		macc_f32le_load(gx, m.u.state.x, n);
		assert_memory_equal(gx, x, n * sizeof(float));
		if (with_mom) {
			assert_non_null(m.u.state.mom);
			macc_f32le_load(gv, m.u.state.mom, n);
			assert_memory_equal(gv, v, n * sizeof(float));
		} else {
			assert_null(m.u.state.mom);
		}
		free(payload);
		free(x);
		free(v);
		free(gx);
		free(gv);
		macc_state_body_finish(&body);
	}
	macc_frame_decoder_finish(&d);
	macc_buf_finish(&fr);
	macc_session_finish(&sa);
	macc_session_finish(&sb);
}

/* Encode a STATE with compressor blobs (enc = tag) from session s and decode it: returns what
 * macc_msg_decode returns, with the error text in err. */
static int compressed_roundtrip(struct macc_session *s, uint32_t enc, size_t n,
				const uint8_t *bx, size_t lx, const uint8_t *bv, size_t lv,
				struct macc_msg *m, uint8_t **ret_payload, struct macc_errmsg *err)
{
	struct macc_state_body body = {0};
	struct macc_state_prefix pre;
	struct macc_state_out so = {.round = 5, .nparams = n, .enc = enc, .x_blob = bx,
				    .x_len = lx, .mom_blob = bv, .mom_len = lv};
	struct macc_buf fr;
	int rc;

	macc_buf_init(&fr, 0);
	assert_int_equal(macc_state_body_encode(&body, &so), 0);
	assert_int_equal(macc_session_state_prefix(s, &body, &pre), 0);
	assert_int_equal(macc_buf_append(&fr, pre.bytes, pre.len), 0);
	assert_int_equal(macc_buf_append(&fr, body.buf.data, body.buf.len), 0);
	*ret_payload = malloc(fr.len);
	assert_non_null(*ret_payload);
	memcpy(*ret_payload, fr.data + MACC_FRAME_HDR, fr.len - MACC_FRAME_HDR);
	err->text[0] = '\0';
	rc = macc_msg_decode(*ret_payload, fr.len - MACC_FRAME_HDR, 0, m, err);
	macc_buf_finish(&fr);
	macc_state_body_finish(&body);
	return rc;
}

/* STATE enc bf16 / int8 / topk: the blobs travel byte for byte, the signature covers
 * them, and the decoder refuses blobs whose structure does not fit the body, naming why. */
static void test_state_compressed(void **state)
{
	static const char *const specs[] = { "bf16", "int8", "topk:0.25" };
	const size_t n = 1000;
	struct macc_session sa, sb;
	struct macc_rng rng;
	float *x = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
	uint8_t *bx, *bv, *payload;
	struct macc_compressor c;
	struct macc_errmsg err;
	struct macc_msg m;
	size_t cap;

	(void)state;
	assert_non_null(x);
	assert_non_null(v);
	handshake(&sa, &ag.a, 1, &sb, &ag.b, 2);
	macc_rng_seed(&rng, 11, 1);
	for (size_t i = 0; i < n; i++) {
		x[i] = (float)macc_rng_uniform(&rng) - 0.5f;
		v[i] = 0.01f * ((float)macc_rng_uniform(&rng) - 0.5f);
	}
	cap = macc_compress_size(&(struct macc_compressor){MACC_COMPRESS_TOPK, 1.0}, n);
	bx = malloc(cap);
	bv = malloc(cap);
	assert_non_null(bx);
	assert_non_null(bv);
	for (size_t k = 0; k < sizeof(specs) / sizeof(specs[0]); k++) {
		ssize_t lx, lv;
		uint32_t enc;

		assert_int_equal(macc_compress_parse(specs[k], &c, NULL), 0);
		enc = (uint32_t)c.kind;
		lx = macc_compress_encode(&c, n, x, bx, cap, NULL);
		lv = macc_compress_encode(&c, n, v, bv, cap, NULL);
		assert_true(lx > 0 && lv > 0);
		assert_int_equal((size_t)lx, macc_compress_size(&c, n));
		/* Round trip: enc, lengths, bytes; the session accepts it (signature). */
		assert_int_equal(compressed_roundtrip(&sa, enc, n, bx, (size_t)lx, bv, (size_t)lv,
						      &m, &payload, &err), 0);
		assert_int_equal(m.u.state.enc, enc);
		assert_int_equal(m.u.state.x_len, (size_t)lx);
		assert_int_equal(m.u.state.mom_len, (size_t)lv);
		assert_memory_equal(m.u.state.x, bx, (size_t)lx);
		assert_memory_equal(m.u.state.mom, bv, (size_t)lv);
		assert_int_equal(macc_compress_check(m.u.state.x, m.u.state.x_len, n, NULL), 0);
		sb.have_round = false; /* every body here is round 5 */
		assert_int_equal(macc_session_accept_state(&sb, &m.u.state, n, NULL), 0);
		/* The signature covers the blob: one flipped code bit on the way is refused. */
		((uint8_t *)payload)[m.u.state.x - payload + (size_t)lx - 1] ^= 0x01;
		sb.have_round = false;
		assert_int_equal(macc_session_accept_state(&sb, &m.u.state, n, NULL),
				 MACC_EBADSIG);
		free(payload);
		/* Structure errors, each named. */
		assert_int_equal(compressed_roundtrip(&sa, enc == 1 ? 2 : 1, n, bx, (size_t)lx,
						      NULL, 0, &m, &payload, &err),
				 MACC_EMALFORMED);
		assert_non_null(strstr(err.text, "header tag"));
		free(payload);
		assert_int_equal(compressed_roundtrip(&sa, enc, n + 1, bx, (size_t)lx, NULL, 0, &m,
						      &payload, &err),
				 MACC_EMALFORMED);
		assert_non_null(strstr(err.text, "holds 1000 values"));
		free(payload);
		assert_int_equal(compressed_roundtrip(&sa, enc, n, bx, (size_t)lx - 1, NULL, 0, &m,
						      &payload, &err),
				 MACC_EMALFORMED);
		assert_non_null(strstr(err.text, "do not fit"));
		free(payload);
		assert_int_equal(compressed_roundtrip(&sa, enc, n, bx, 11, NULL, 0, &m, &payload,
						      &err),
				 MACC_EMALFORMED);
		assert_non_null(strstr(err.text, "shorter than a compressed vector header"));
		free(payload);
	}
	/* An unknown encoding is refused by name; the encoder refuses to make one. */
	assert_int_equal(macc_state_body_encode(&(struct macc_state_body){0},
						&(struct macc_state_out){.nparams = n, .enc = 4,
									  .x_blob = bx,
									  .x_len = 12}),
			 MACC_EMALFORMED);
	free(bx);
	free(bv);
	free(x);
	free(v);
	macc_session_finish(&sa);
	macc_session_finish(&sb);
}

/* One body, many neighbours: the body bytes are shared, only the prefix differs, and each
 * neighbour accepts only its own frame. */
static void test_state_shared_body(void **state)
{
	struct macc_session ab, ba, ac, ca;
	struct macc_state_body body = {0};
	struct macc_state_prefix pb, pc;
	float x[16];
	struct macc_state_out so = {.round = 5, .nparams = 16, .x = x};
	struct macc_buf fb, fc;

	(void)state;
	for (int i = 0; i < 16; i++) {
		x[i] = (float)i;
	}
	handshake(&ab, &ag.a, 1, &ba, &ag.b, 2);
	handshake(&ac, &ag.a, 3, &ca, &ag.c, 4);
	assert_int_equal(macc_state_body_encode(&body, &so), 0);
	assert_int_equal(macc_session_state_prefix(&ab, &body, &pb), 0);
	assert_int_equal(macc_session_state_prefix(&ac, &body, &pc), 0);
	assert_int_equal(pb.len, pc.len);
	assert_memory_not_equal(pb.bytes, pc.bytes, pb.len);
	macc_buf_init(&fb, 0);
	macc_buf_init(&fc, 0);
	macc_buf_append(&fb, pb.bytes, pb.len);
	macc_buf_append(&fb, body.buf.data, body.buf.len);
	macc_buf_append(&fc, pc.bytes, pc.len);
	macc_buf_append(&fc, body.buf.data, body.buf.len);
	/* A->B replayed to C (and A->C to B): bad signature. */
	assert_int_equal(receive_state(&ca, fb.data, fb.len, 16, NULL), MACC_EBADSIG);
	assert_int_equal(receive_state(&ba, fc.data, fc.len, 16, NULL), MACC_EBADSIG);
	assert_int_equal(receive_state(&ba, fb.data, fb.len, 16, NULL), 0);
	assert_int_equal(receive_state(&ca, fc.data, fc.len, 16, NULL), 0);
	macc_buf_finish(&fb);
	macc_buf_finish(&fc);
	macc_state_body_finish(&body);
}

/* ---------------------------------------------------------------------------------------- */
/* Attacks                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static void test_attack_bitflips(void **state)
{
	struct macc_session sa, sb;
	struct macc_buf fr;
	float x[4] = {1, 2, 3, 4}, v[4] = {-1, -2, -3, -4}, got[4];
	size_t flips = 0, sig_errs = 0;

	(void)state;
	handshake(&sa, &ag.a, 1, &sb, &ag.b, 2);
	macc_buf_init(&fr, 0);
	state_frame(&sa, 10, 4, x, v, &fr);

	/* Every single bit of the payload, flipped: never accepted, never any state. */
	for (size_t i = MACC_FRAME_HDR; i < fr.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			int rc;

			fr.data[i] ^= (uint8_t)(1u << bit);
			rc = receive_state(&sb, fr.data, fr.len, 4, NULL);
			fr.data[i] ^= (uint8_t)(1u << bit);
			assert_true(rc < 0);
			flips++;
			sig_errs += rc == MACC_EBADSIG;
		}
	}
	assert_true(flips > 1000);
	assert_true(sig_errs > flips / 2);
	assert_false(sb.have_round);

	/* Named cases with their exact errors. The body is the tail of the frame: the last
	 * float of mom is the last 4 bytes; the sig bin is found by its key. */
	fr.data[fr.len - 1] ^= 0x01; /* payload */
	assert_int_equal(receive_state(&sb, fr.data, fr.len, 4, NULL), MACC_EBADSIG);
	fr.data[fr.len - 1] ^= 0x01;
	{
		uint8_t *sig = memmem(fr.data, fr.len, "\xa3sig\xc4\x40", 6);
		uint8_t *from = memmem(fr.data, fr.len, "\xa4" "from\xc4\x20", 7);
		uint8_t *round = memmem(fr.data, fr.len, "\xa5round", 6);

		assert_non_null(sig);
		assert_non_null(from);
		assert_non_null(round);
		sig[6 + 17] ^= 0x80; /* signature */
		assert_int_equal(receive_state(&sb, fr.data, fr.len, 4, NULL), MACC_EBADSIG);
		sig[6 + 17] ^= 0x80;
		from[7 + 3] ^= 0x02; /* header: sender key */
		assert_int_equal(receive_state(&sb, fr.data, fr.len, 4, NULL),
				 MACC_EUNKNOWNPEER);
		from[7 + 3] ^= 0x02;
		round[6] ^= 0x01; /* header inside the body: round 10 -> 11 */
		assert_int_equal(receive_state(&sb, fr.data, fr.len, 4, NULL), MACC_EBADSIG);
		round[6] ^= 0x01;
	}
	assert_int_equal(receive_state(&sb, fr.data, fr.len, 4, got), 0);
	assert_memory_equal(got, x, sizeof(x));
	assert_true(sb.have_round && sb.last_round == 10);
	macc_buf_finish(&fr);
}

static void test_attack_truncated(void **state)
{
	struct macc_session sa, sb;
	struct macc_buf fr;
	float x[4] = {1, 2, 3, 4};
	struct macc_msg m, sentinel;

	(void)state;
	handshake(&sa, &ag.a, 1, &sb, &ag.b, 2);
	macc_buf_init(&fr, 0);
	state_frame(&sa, 10, 4, x, NULL, &fr);
	/* Every truncation of the payload is malformed. */
	for (size_t cut = 0; cut < fr.len - MACC_FRAME_HDR; cut++) {
		memset(&m, 0x77, sizeof(m));
		sentinel = m;
		assert_int_equal(macc_msg_decode(fr.data + MACC_FRAME_HDR, cut, 0, &m, NULL),
				 MACC_EMALFORMED);
		assert_memory_equal(&m, &sentinel, sizeof(m));
	}
	/* Size check comes first. */
	assert_int_equal(macc_msg_decode(fr.data + MACC_FRAME_HDR, fr.len - MACC_FRAME_HDR, 20,
					 &m, NULL),
			 MACC_ETOOBIG);
	/* A trailing byte after the map is malformed too. */
	assert_int_equal(macc_buf_reserve(&fr, 1), 0);
	fr.data[fr.len] = 0xc0;
	assert_int_equal(macc_msg_decode(fr.data + MACC_FRAME_HDR, fr.len - MACC_FRAME_HDR + 1, 0,
					 &m, NULL),
			 MACC_EMALFORMED);
	macc_buf_finish(&fr);
}

static void test_attack_handshake(void **state)
{
	struct macc_session s, s2, sa, sb;
	struct macc_hello h;
	struct macc_buf out;
	struct macc_msg m;
	struct macc_errmsg err = {{0}};
	uint8_t na[32], nb[32];
	struct macc_hello_ack ack_old;

	(void)state;
	fixed_nonce(na, 0x10);
	fixed_nonce(nb, 0x20);
	macc_buf_init(&out, 0);

	/* Unknown key: C is not in B's allow-list. */
	macc_session_init(&s, &ag.b, nb);
	macc_hello_init(&h, &ag.c, na, MODEL_HASH, 8, ALGO, 0, 1, "stranger");
	assert_int_equal(macc_session_accept_hello(&s, &h, ag.allow_b, 1, NULL, MODEL_HASH, 8,
						   ALGO, &err),
			 MACC_EUNKNOWNPEER);
	assert_non_null(strstr(err.text, "stranger"));
	assert_false(s.have_hello);
	/* Allowed, but not the peer this outgoing connection is for. */
	assert_int_equal(macc_session_accept_hello(&s, &h, ag.allow_a, 2, &ag.allow_a[0],
						   MODEL_HASH, 8, ALGO, NULL),
			 MACC_EUNKNOWNPEER);
	assert_false(s.have_hello);

	/* Other model hash, parameter count or algorithm. */
	macc_hello_init(&h, &ag.a, na, MODEL_HASH ^ 1, 8, ALGO, 0, 1, "a");
	assert_int_equal(macc_session_accept_hello(&s, &h, ag.allow_b, 1, NULL, MODEL_HASH, 8,
						   ALGO, &err),
			 MACC_EMODEL);
	assert_non_null(strstr(err.text, "1234abcd5678ef00"));
	macc_hello_init(&h, &ag.a, na, MODEL_HASH, 9, ALGO, 0, 1, "a");
	assert_int_equal(macc_session_accept_hello(&s, &h, ag.allow_b, 1, NULL, MODEL_HASH, 8,
						   ALGO, NULL),
			 MACC_EMODEL);
	macc_hello_init(&h, &ag.a, na, MODEL_HASH, 8, "dsgd", 0, 1, "a");
	assert_int_equal(macc_session_accept_hello(&s, &h, ag.allow_b, 1, NULL, MODEL_HASH, 8,
						   ALGO, NULL),
			 MACC_EMODEL);
	assert_false(s.have_hello);

	/* Reflection: our own nonce echoed back. */
	macc_hello_init(&h, &ag.a, nb, MODEL_HASH, 8, ALGO, 0, 1, "a");
	assert_int_equal(macc_session_accept_hello(&s, &h, ag.allow_b, 1, NULL, MODEL_HASH, 8,
						   ALGO, NULL),
			 MACC_EREPLAY);
	/* Our own key. */
	macc_hello_init(&h, &ag.b, na, MODEL_HASH, 8, ALGO, 0, 1, "b");
	{
		struct macc_pubkey self_allowed = ag.b.pub;

		assert_int_equal(macc_session_accept_hello(&s, &h, &self_allowed, 1, NULL,
							   MODEL_HASH, 8, ALGO, NULL),
				 MACC_EUNKNOWNPEER);
	}
	assert_false(s.have_hello);

	/* ACK and STATE before HELLO. */
	memset(&ack_old, 0, sizeof(ack_old));
	assert_int_equal(macc_session_verify_ack(&s, &ack_old, NULL), MACC_ESTATE);
	assert_int_equal(macc_session_ack_encode(&s, &out), MACC_ESTATE);

	/* Good HELLO, then a second one. */
	macc_hello_init(&h, &ag.a, na, MODEL_HASH, 8, ALGO, 77, 3, "a");
	assert_int_equal(macc_session_accept_hello(&s, &h, ag.allow_b, 1, NULL, MODEL_HASH, 8,
						   ALGO, NULL),
			 0);
	assert_true(s.peer_hello_round == 77);
	assert_int_equal(s.peer_degree, 3);
	assert_int_equal(macc_session_accept_hello(&s, &h, ag.allow_b, 1, NULL, MODEL_HASH, 8,
						   ALGO, NULL),
			 MACC_EREPLAY);

	/* ACKs: from a session with other nonces (old session), forged, wrong key, reflected. */
	handshake(&sa, &ag.a, 0x40, &sb, &ag.b, 0x50);
	assert_int_equal(macc_session_ack_encode(&sa, &out), 0);
	assert_int_equal(decode_frame(out.data, out.len, &m, NULL), 0);
	ack_old = m.u.ack;
	assert_int_equal(macc_session_verify_ack(&s, &ack_old, &err), MACC_EBADSIG);
	assert_false(s.proven);
	m.u.ack.key = ag.c.pub;
	assert_int_equal(macc_session_verify_ack(&s, &m.u.ack, NULL), MACC_EUNKNOWNPEER);
	/* Reflection: B's own ACK fed back to B. */
	macc_buf_reset(&out);
	assert_int_equal(macc_session_ack_encode(&s, &out), 0);
	assert_int_equal(decode_frame(out.data, out.len, &m, NULL), 0);
	assert_int_equal(macc_session_verify_ack(&s, &m.u.ack, NULL), MACC_EUNKNOWNPEER);
	assert_false(s.proven);

	/* The genuine ACK of A in this session verifies, once. */
	macc_session_init(&s2, &ag.a, na);
	macc_hello_init(&h, &ag.b, nb, MODEL_HASH, 8, ALGO, 0, 1, "b");
	assert_int_equal(macc_session_accept_hello(&s2, &h, ag.allow_a, 2, NULL, MODEL_HASH, 8,
						   ALGO, NULL),
			 0);
	macc_buf_reset(&out);
	assert_int_equal(macc_session_ack_encode(&s2, &out), 0);
	assert_int_equal(decode_frame(out.data, out.len, &m, NULL), 0);
	m.u.ack.sig[0] ^= 1;
	assert_int_equal(macc_session_verify_ack(&s, &m.u.ack, NULL), MACC_EBADSIG);
	m.u.ack.sig[0] ^= 1;
	assert_int_equal(macc_session_verify_ack(&s, &m.u.ack, NULL), 0);
	assert_true(s.proven);
	assert_int_equal(macc_session_verify_ack(&s, &m.u.ack, NULL), MACC_EREPLAY);
	macc_buf_finish(&out);
}

static void test_attack_replay(void **state)
{
	struct macc_session sa, sb, sa2, sb2;
	struct macc_buf r5, r4, r6;
	float x[4] = {1, 2, 3, 4};

	(void)state;
	macc_buf_init(&r5, 0);
	macc_buf_init(&r4, 0);
	macc_buf_init(&r6, 0);
	handshake(&sa, &ag.a, 1, &sb, &ag.b, 2);

	/* Not proven yet: a fresh session refuses STATE. */
	{
		struct macc_session fresh;
		uint8_t n[32];

		fixed_nonce(n, 9);
		macc_session_init(&fresh, &ag.b, n);
		state_frame(&sa, 5, 4, x, NULL, &r5);
		assert_int_equal(receive_state(&fresh, r5.data, r5.len, 4, NULL), MACC_ESTATE);
	}

	state_frame(&sa, 5, 4, x, NULL, &r5);
	state_frame(&sa, 4, 4, x, NULL, &r4);
	state_frame(&sa, 6, 4, x, NULL, &r6);
	assert_int_equal(receive_state(&sb, r5.data, r5.len, 4, NULL), 0);
	/* Same round again, an older round: replay. */
	assert_int_equal(receive_state(&sb, r5.data, r5.len, 4, NULL), MACC_EREPLAY);
	assert_int_equal(receive_state(&sb, r4.data, r4.len, 4, NULL), MACC_EREPLAY);
	assert_true(sb.last_round == 5);
	assert_int_equal(receive_state(&sb, r6.data, r6.len, 4, NULL), 0);

	/* A new session between the same agents (fresh nonces): frames of the old one fail. */
	handshake(&sa2, &ag.a, 11, &sb2, &ag.b, 12);
	assert_int_equal(receive_state(&sb2, r6.data, r6.len, 4, NULL), MACC_EBADSIG);
	assert_int_equal(receive_state(&sb2, r4.data, r4.len, 4, NULL), MACC_EBADSIG);
	assert_false(sb2.have_round);
	/* A -> B frame fed back into A's own session with B (reflection): wrong sender. */
	assert_int_equal(receive_state(&sa, r6.data, r6.len, 4, NULL), MACC_EUNKNOWNPEER);
	macc_buf_finish(&r4);
	macc_buf_finish(&r5);
	macc_buf_finish(&r6);
}

static void test_attack_model_size(void **state)
{
	struct macc_session sa, sb;
	struct macc_buf fr;
	float x[12] = {0};

	(void)state;
	handshake(&sa, &ag.a, 1, &sb, &ag.b, 2);
	macc_buf_init(&fr, 0);
	/* Validly signed, but 10 parameters when the model has 12. */
	state_frame(&sa, 1, 10, x, NULL, &fr);
	assert_int_equal(receive_state(&sb, fr.data, fr.len, 12, NULL), MACC_EMODEL);
	assert_false(sb.have_round);
	assert_int_equal(receive_state(&sb, fr.data, fr.len, 10, NULL), 0);
	macc_buf_finish(&fr);
}

/* Hand-written STATE whose body claims n parameters with x of xbytes bytes. */
static void bad_body(struct mp *m, uint64_t n, size_t xbytes, uint64_t enc)
{
	struct mp body = {.n = 0};
	uint8_t zeros[64] = {0};
	uint8_t key[32] = {0}, sig[64] = {0};

	mp_map(&body, 4);
	mp_str(&body, "round");
	mp_uint(&body, 1);
	mp_str(&body, "n");
	mp_uint(&body, n);
	mp_str(&body, "enc");
	mp_uint(&body, enc);
	mp_str(&body, "x");
	mp_bin(&body, zeros, xbytes);
	m->n = 0;
	mp_map(m, 5);
	mp_str(m, "ver");
	mp_uint(m, MACC_PROTO_VERSION);
	mp_str(m, "type");
	mp_uint(m, MACC_MSG_STATE);
	mp_str(m, "from");
	mp_bin(m, key, 32);
	mp_str(m, "sig");
	mp_bin(m, sig, 64);
	mp_str(m, "body");
	mp_bin(m, body.b, body.n);
}

static int decode_mp(const struct mp *m)
{
	struct macc_msg msg, sentinel;
	struct macc_errmsg err = {{0}};
	int rc;

	memset(&msg, 0x33, sizeof(msg));
	sentinel = msg;
	rc = macc_msg_decode(m->b, m->n, 0, &msg, &err);
	if (rc != 0) {
		assert_memory_equal(&msg, &sentinel, sizeof(msg));
		assert_true(err.text[0] != '\0');
	}
	return rc;
}

static void test_attack_malformed(void **state)
{
	struct mp m;

	(void)state;
	/* The hand-written STATE is well-formed (decodes; its signature would fail later). */
	bad_body(&m, 10, 40, 0);
	assert_int_equal(decode_mp(&m), 0);
	/* bin length disagreeing with n, both ways; n*4 overflow; reserved encodings. */
	bad_body(&m, 10, 36, 0);
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
	bad_body(&m, 10, 44, 0);
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
	bad_body(&m, (1ull << 62) + 10, 40, 0);
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
	bad_body(&m, 4, 16, MACC_ENC_BF16);
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);

	/* Version and type. */
	m.n = 0;
	mp_map(&m, 4);
	mp_str(&m, "ver");
	mp_uint(&m, MACC_PROTO_VERSION + 1);
	mp_str(&m, "type");
	mp_uint(&m, MACC_MSG_PING);
	mp_str(&m, "seq");
	mp_uint(&m, 1);
	mp_str(&m, "time");
	mp_uint(&m, 1);
	assert_int_equal(decode_mp(&m), MACC_EVERSION);
	m.b[5 + 8] = 1; /* ver = 1 (last byte of the u64): the protocol before sealing */
	assert_int_equal(decode_mp(&m), MACC_EVERSION);
	m.b[5 + 8] = MACC_PROTO_VERSION;
	assert_int_equal(decode_mp(&m), 0);
	{
		uint8_t *type = memmem(m.b, m.n, "\xa4type\xcf", 6);

		assert_non_null(type);
		type[6 + 7] = 99;
		assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
		type[6 + 7] = MACC_MSG_PING;
	}
	/* Mistyped: seq as a string; missing: no time. */
	m.n = 0;
	mp_map(&m, 4);
	mp_str(&m, "ver");
	mp_uint(&m, MACC_PROTO_VERSION);
	mp_str(&m, "type");
	mp_uint(&m, MACC_MSG_PING);
	mp_str(&m, "seq");
	mp_str(&m, "1");
	mp_str(&m, "time");
	mp_uint(&m, 1);
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
	m.n = 0;
	mp_map(&m, 3);
	mp_str(&m, "ver");
	mp_uint(&m, MACC_PROTO_VERSION);
	mp_str(&m, "type");
	mp_uint(&m, MACC_MSG_PING);
	mp_str(&m, "seq");
	mp_uint(&m, 1);
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
	/* Duplicate key. */
	m.n = 0;
	mp_map(&m, 5);
	mp_str(&m, "ver");
	mp_uint(&m, MACC_PROTO_VERSION);
	mp_str(&m, "type");
	mp_uint(&m, MACC_MSG_PING);
	mp_str(&m, "seq");
	mp_uint(&m, 1);
	mp_str(&m, "time");
	mp_uint(&m, 1);
	mp_str(&m, "seq");
	mp_uint(&m, 2);
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
	/* Not a map at the top; empty input. */
	m.n = 0;
	mp_byte(&m, 0x91);
	mp_byte(&m, 0x01);
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
	m.n = 0;
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
}

/* A PING plus one extra field `junk` whose value is written by the caller. */
static void ping_with_junk(struct mp *m)
{
	m->n = 0;
	mp_map(m, 5);
	mp_str(m, "ver");
	mp_uint(m, MACC_PROTO_VERSION);
	mp_str(m, "type");
	mp_uint(m, MACC_MSG_PING);
	mp_str(m, "seq");
	mp_uint(m, 1);
	mp_str(m, "time");
	mp_uint(m, 1);
	mp_str(m, "junk");
}

static void test_attack_containers(void **state)
{
	struct mp m;

	(void)state;
	/* Unknown fields of every type are ignored, including modest nesting. */
	ping_with_junk(&m);
	mp_byte(&m, 0x92); /* [ {"a": [nil, true]}, 1.5 ] */
	mp_map(&m, 1);
	mp_str(&m, "a");
	mp_byte(&m, 0x92);
	mp_byte(&m, 0xc0);
	mp_byte(&m, 0xc3);
	mp_byte(&m, 0xcb);
	mp_be(&m, 0x3ff8000000000000ull, 8);
	assert_int_equal(decode_mp(&m), 0);
	ping_with_junk(&m);
	mp_byte(&m, 0xd6); /* fixext4 */
	mp_be(&m, 0x0101020304ull, 5);
	assert_int_equal(decode_mp(&m), 0);

	/* Deep nesting: 5 levels fine, 100 refused. */
	ping_with_junk(&m);
	for (int i = 0; i < 5; i++) {
		mp_byte(&m, 0x91);
	}
	mp_byte(&m, 0x01);
	assert_int_equal(decode_mp(&m), 0);
	ping_with_junk(&m);
	for (int i = 0; i < 100; i++) {
		mp_byte(&m, 0x91);
	}
	mp_byte(&m, 0x01);
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);

	/* Huge containers and strings announced by a few bytes: refused at once. */
	ping_with_junk(&m);
	mp_byte(&m, 0xdd); /* array32 of 4G elements */
	mp_be(&m, 0xffffffffull, 4);
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
	ping_with_junk(&m);
	mp_byte(&m, 0xdf); /* map32 */
	mp_be(&m, 0xffffffffull, 4);
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
	ping_with_junk(&m);
	mp_byte(&m, 0xdb); /* str32 of 4 GiB */
	mp_be(&m, 0xffffffffull, 4);
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
	ping_with_junk(&m);
	mp_byte(&m, 0xc9); /* ext32 of 4 GiB */
	mp_be(&m, 0xffffffffull, 4);
	mp_byte(&m, 1);
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
	ping_with_junk(&m);
	mp_byte(&m, 0xc1); /* never used */
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
	/* Top-level map32 with 4G entries; a map of more entries than any message needs. */
	m.n = 0;
	mp_byte(&m, 0xdf);
	mp_be(&m, 0xffffffffull, 4);
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
	m.n = 0;
	mp_byte(&m, 0xde);
	mp_be(&m, 200, 2);
	for (int i = 0; i < 200; i++) {
		char k[8];

		snprintf(k, sizeof(k), "k%d", i);
		mp_str(&m, k);
		mp_byte(&m, 0xc0);
	}
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
}

/*
 * The optional HELLO platform fields (wire.c): a HELLO without them is byte for byte the old
 * one (test_golden's hello.bin); with them they round-trip; from a hostile peer they are
 * truncated and made printable, and a mistyped one is refused.
 */
static void hello_map(struct mp *m, const uint8_t nonce[32], const char *arch,
		      const uint8_t *blas, size_t blas_len)
{
	m->n = 0;
	mp_map(m, 11 + (arch != NULL) + (blas != NULL));
	mp_str(m, "ver");
	mp_uint(m, MACC_PROTO_VERSION);
	mp_str(m, "type");
	mp_uint(m, MACC_MSG_HELLO);
	mp_str(m, "key");
	mp_bin(m, ag.a.pub.bytes, MACC_PUBKEY_BYTES);
	mp_str(m, "nonce");
	mp_bin(m, nonce, MACC_NONCE_BYTES);
	mp_str(m, "model");
	mp_uint(m, MODEL_HASH);
	mp_str(m, "n");
	mp_uint(m, 8);
	mp_str(m, "algo");
	mp_str(m, ALGO);
	mp_str(m, "round");
	mp_uint(m, 0);
	mp_str(m, "degree");
	mp_uint(m, 2);
	mp_str(m, "name");
	mp_str(m, "a");
	mp_str(m, "flags");
	mp_uint(m, 0);
	if (arch != NULL) {
		mp_str(m, "arch");
		mp_str(m, arch);
	}
	if (blas != NULL) {
		mp_str(m, "blas");
		mp_byte(m, 0xd9); /* str 8 */
		mp_byte(m, (uint8_t)blas_len);
		mp_raw(m, blas, blas_len);
	}
}

static void test_hello_platform(void **state)
{
	struct macc_hello h, plain;
	struct macc_buf out, old;
	struct macc_msg msg;
	struct mp m;
	uint8_t nonce[32], longblas[100];
	const uint8_t evil[] = "\x1b]0;pwn\x07 Zen";

	(void)state;
	macc_buf_init(&out, 0);
	macc_buf_init(&old, 0);
	fixed_nonce(nonce, 0xa0);
	macc_hello_init(&plain, &ag.a, nonce, MODEL_HASH, 8, ALGO, 42, 2, "agent-a");
	assert_int_equal(macc_hello_encode(&old, &plain), 0);
	assert_string_equal(plain.arch, "");
	assert_string_equal(plain.blas, "");

	/* Sent and received as set. */
	h = plain;
	snprintf(h.arch, sizeof(h.arch), "aarch64");
	snprintf(h.blas, sizeof(h.blas), "NEOVERSEN1");
	assert_int_equal(macc_hello_encode(&out, &h), 0);
	assert_true(out.len > old.len);
	assert_int_equal(decode_frame(out.data, out.len, &msg, NULL), 0);
	assert_memory_equal(&msg.u.hello, &h, sizeof(h));
	/* A HELLO without them (an older daemon's) decodes to "". */
	assert_int_equal(decode_frame(old.data, old.len, &msg, NULL), 0);
	assert_memory_equal(&msg.u.hello, &plain, sizeof(plain));
	/* Only one of the two. */
	hello_map(&m, nonce, "x86_64", NULL, 0);
	assert_int_equal(macc_msg_decode(m.b, m.n, 0, &msg, NULL), 0);
	assert_string_equal(msg.u.hello.arch, "x86_64");
	assert_string_equal(msg.u.hello.blas, "");
	/* Hostile: control characters become '?', too long is truncated, not refused. */
	hello_map(&m, nonce, "x86_64", evil, sizeof(evil) - 1);
	assert_int_equal(macc_msg_decode(m.b, m.n, 0, &msg, NULL), 0);
	assert_string_equal(msg.u.hello.blas, "??0?pwn??Zen");
	memset(longblas, 'K', sizeof(longblas));
	hello_map(&m, nonce, NULL, longblas, sizeof(longblas));
	assert_int_equal(macc_msg_decode(m.b, m.n, 0, &msg, NULL), 0);
	assert_int_equal(strlen(msg.u.hello.blas), MACC_PLATFORM_MAX - 1);
	assert_string_equal(msg.u.hello.arch, "");
	/* A platform field that is not a str is malformed (named in the error). */
	hello_map(&m, nonce, "x86_64", NULL, 0);
	m.b[m.n - 7] = 0x96; /* the str header of "x86_64" -> an array of 6 fixints */
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
	/* The encoder refuses a platform string without its NUL. */
	memset(h.arch, 'a', sizeof(h.arch));
	assert_int_equal(macc_hello_encode(&out, &h), MACC_EMALFORMED);
	macc_buf_finish(&out);
	macc_buf_finish(&old);
}

/* ---------------------------------------------------------------------------------------- */
/* STATS (the standardisation agreement)                                                     */
/* ---------------------------------------------------------------------------------------- */

/* The example values of the golden STATS: an average-phase vector of d = 3 features. */
static const double STATS_V[7] = {4.0, 8.0, -0.0, 20.0, 20.0, 0.1, 1e300};

static void stats_frame(const struct macc_session *s, uint64_t step, const double *v, size_t n,
			struct macc_buf *out)
{
	struct macc_stats_out so = {.step = step, .avg_steps = 50, .exact_steps = 2,
				    .values = v, .n = n};

	macc_buf_reset(out);
	assert_int_equal(macc_session_stats_encode(s, &so, out), 0);
}

/* Decode a STATS frame and run it through session s; on failure the message and the session
 * are untouched and the error says why. ret_v (7 values) receives the values on success. */
static int receive_stats(struct macc_session *s, const uint8_t *frame, size_t len,
			 double *ret_v)
{
	struct macc_msg m, sentinel;
	struct macc_session before = *s;
	struct macc_errmsg err = {{0}};
	uint8_t *payload;
	size_t plen;
	int rc;

	payload = unframe(frame, len, &plen);
	memset(&m, 0x5a, sizeof(m));
	sentinel = m;
	rc = macc_msg_decode(payload, plen, 0, &m, &err);
	if (rc != 0) {
		assert_memory_equal(&m, &sentinel, sizeof(m));
	} else if (m.type != MACC_MSG_STATS) {
		rc = -EPROTO;
	} else {
		rc = macc_session_accept_stats(s, &m.u.stats, &err);
		if (rc == 0 && ret_v != NULL) {
			assert_int_equal(m.u.stats.n, 7);
			assert_int_equal(m.u.stats.avg_steps, 50);
			assert_int_equal(m.u.stats.exact_steps, 2);
			macc_f64le_load(ret_v, m.u.stats.values, 7);
		}
	}
	if (rc != 0) {
		assert_memory_equal(&before, s, sizeof(before));
		assert_true(err.text[0] != '\0' || rc == -EPROTO);
	}
	free(payload);
	return rc;
}

static void test_stats(void **state)
{
	struct macc_session sa, sb, sa2, sb2, sc, sbc;
	struct macc_buf f3, f4, f2, fc;
	double v[7];
	uint8_t digest[MACC_DIGEST_BYTES], text[MACC_STATE_SIGNED_BYTES];

	(void)state;
	macc_buf_init(&f3, 0);
	macc_buf_init(&f4, 0);
	macc_buf_init(&f2, 0);
	macc_buf_init(&fc, 0);
	/* Before the peer's HELLO there is nothing to sign for. */
	{
		struct macc_session fresh;
		uint8_t n[32];
		struct macc_stats_out so = {.step = 1, .values = STATS_V, .n = 7};

		fixed_nonce(n, 9);
		macc_session_init(&fresh, &ag.a, n);
		assert_int_equal(macc_session_stats_encode(&fresh, &so, &f3), MACC_ESTATE);
		assert_int_equal(f3.len, 0);
	}
	/* The golden frame of macc-protocol(7): A to B on the session of hello_ack.bin. */
	handshake(&sa, &ag.a, 0xa0, &sb, &ag.b, 0xb0);
	stats_frame(&sa, 3, STATS_V, 7, &f3);
	check_golden("stats.bin", f3.data, f3.len);
	assert_int_equal(receive_stats(&sb, f3.data, f3.len, v), 0);
	assert_memory_equal(v, STATS_V, sizeof(v)); /* -0 and 1e300 bit for bit */
	/* The signed text: STATE's layout, its own domain and type; the frame's signature is
	 * A's over it (what a third party checks). */
	{
		struct macc_msg m;
		size_t plen;
		uint8_t *payload = unframe(f3.data, f3.len, &plen);

		assert_int_equal(macc_msg_decode(payload, plen, 0, &m, NULL), 0);
		assert_int_equal(macc_digest(MACC_DIGEST_BLAKE2B256, digest, m.u.stats.body,
					     m.u.stats.body_len),
				 0);
		macc_stats_signed_text(&ag.a.pub, &ag.b.pub, sa.self_nonce, sa.peer_nonce, 3,
				       digest, text);
		assert_memory_equal(text, "macc/2/stats", 12);
		assert_int_equal(text[140], MACC_MSG_STATS);
		assert_int_equal(text[148], 3);
		assert_int_equal(macc_verify(&ag.a.pub, text, sizeof(text), m.u.stats.sig), 0);
		text[148] = 4; /* another step */
		assert_int_not_equal(macc_verify(&ag.a.pub, text, sizeof(text), m.u.stats.sig), 0);
		free(payload);
	}

	/* Freshness: the same step again, an older one; a newer one passes. */
	assert_int_equal(receive_stats(&sb, f3.data, f3.len, NULL), MACC_EREPLAY);
	stats_frame(&sa, 2, STATS_V, 7, &f2);
	assert_int_equal(receive_stats(&sb, f2.data, f2.len, NULL), MACC_EREPLAY);
	stats_frame(&sa, 4, STATS_V, 7, &f4);
	assert_true(sb.last_stats_step == 3);
	/* A flipped bit in the values: the signature fails (plaintext session). */
	f4.data[f4.len - 9] ^= 0x01;
	assert_int_equal(receive_stats(&sb, f4.data, f4.len, NULL), MACC_EBADSIG);
	f4.data[f4.len - 9] ^= 0x01;
	assert_int_equal(receive_stats(&sb, f4.data, f4.len, NULL), 0);
	/* STATS and STATE steps/rounds are counted apart. */
	assert_false(sb.have_round);

	/* Another session of the same agents: the old frames do not verify. */
	handshake(&sa2, &ag.a, 11, &sb2, &ag.b, 12);
	assert_int_equal(receive_stats(&sb2, f4.data, f4.len, NULL), MACC_EBADSIG);
	/* Reflected into the sender's own session, or from C on B's session with A: the
	 * wrong sender. */
	assert_int_equal(receive_stats(&sa, f4.data, f4.len, NULL), MACC_EUNKNOWNPEER);
	handshake(&sc, &ag.c, 21, &sbc, &ag.b, 22);
	stats_frame(&sc, 9, STATS_V, 7, &fc);
	assert_int_equal(receive_stats(&sb, fc.data, fc.len, NULL), MACC_EUNKNOWNPEER);
	assert_int_equal(receive_stats(&sbc, fc.data, fc.len, NULL), 0);
	/* Not proven yet: refused. */
	{
		struct macc_session fresh;
		uint8_t n[32];

		fixed_nonce(n, 9);
		macc_session_init(&fresh, &ag.b, n);
		assert_int_equal(receive_stats(&fresh, f4.data, f4.len, NULL), MACC_ESTATE);
	}
	macc_buf_finish(&f2);
	macc_buf_finish(&f3);
	macc_buf_finish(&f4);
	macc_buf_finish(&fc);
}

/* A hand-made STATS: body {step, avg, exact, n, v: bin(vbytes)}, `skip` leaves one key out. */
static void stats_mp(struct mp *m, uint64_t n, size_t vbytes, const char *skip)
{
	struct mp body = {.n = 0};
	static const uint8_t zeros[64];
	uint8_t key[32] = {0}, sig[64] = {0};
	const char *keys[4] = {"step", "avg", "exact", "n"};
	const uint64_t vals[4] = {1, 50, 2, n};

	mp_map(&body, skip != NULL ? 4 : 5);
	for (int i = 0; i < 4; i++) {
		if (skip == NULL || strcmp(skip, keys[i]) != 0) {
			mp_str(&body, keys[i]);
			mp_uint(&body, vals[i]);
		}
	}
	if (skip == NULL || strcmp(skip, "v") != 0) {
		mp_str(&body, "v");
		mp_bin(&body, zeros, vbytes);
	}
	m->n = 0;
	mp_map(m, 5);
	mp_str(m, "ver");
	mp_uint(m, MACC_PROTO_VERSION);
	mp_str(m, "type");
	mp_uint(m, MACC_MSG_STATS);
	mp_str(m, "from");
	mp_bin(m, key, 32);
	mp_str(m, "sig");
	mp_bin(m, sig, 64);
	mp_str(m, "body");
	mp_bin(m, body.b, body.n);
}

static void test_stats_malformed(void **state)
{
	struct mp m;

	(void)state;
	stats_mp(&m, 7, 56, NULL);
	assert_int_equal(decode_mp(&m), 0);
	stats_mp(&m, 7, 55, NULL); /* the bin does not hold n doubles */
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
	stats_mp(&m, 6, 56, NULL);
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
	stats_mp(&m, MACC_STATS_MAX_VALUES + 1, 8, NULL); /* n beyond the limit (n * 8 wraps) */
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
	stats_mp(&m, (1ull << 61) + 1, 8, NULL);
	assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
	stats_mp(&m, 0, 0, NULL); /* no values: decodes; the agreement refuses it */
	assert_int_equal(decode_mp(&m), 0);
	for (int i = 0; i < 5; i++) {
		static const char *const k[5] = {"step", "avg", "exact", "n", "v"};

		stats_mp(&m, 7, 56, k[i]);
		assert_int_equal(decode_mp(&m), MACC_EMALFORMED);
	}
	{
		/* f64 values survive the codec bit for bit, whatever the host. */
		uint8_t b[16];
		double in[2] = {-0.0, 0.1}, out[2];

		macc_f64le_store(b, in, 2);
		assert_int_equal(b[7], 0x80);
		assert_int_equal(b[8], 0x9a);
		macc_f64le_load(out, b, 2);
		assert_memory_equal(in, out, sizeof(in));
	}
	assert_string_equal(macc_msg_type_name(MACC_MSG_STATS), "stats");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_stream),
		cmocka_unit_test(test_frame_limits),
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_roundtrip_messages),
		cmocka_unit_test(test_hello_platform),
		cmocka_unit_test(test_state_property),
		cmocka_unit_test(test_state_shared_body),
		cmocka_unit_test(test_state_compressed),
		cmocka_unit_test(test_attack_bitflips),
		cmocka_unit_test(test_attack_truncated),
		cmocka_unit_test(test_attack_handshake),
		cmocka_unit_test(test_attack_replay),
		cmocka_unit_test(test_attack_model_size),
		cmocka_unit_test(test_attack_malformed),
		cmocka_unit_test(test_attack_containers),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_stats_malformed),
	};

	return cmocka_run_group_tests(tests, agents_setup, agents_teardown);
}
