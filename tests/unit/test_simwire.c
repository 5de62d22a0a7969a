/*
 * test_simwire.c - macc-sim's STATE frame sizes (src/sim/wiresize.c) equal what the protocol's
 * encoder really writes (src/proto/wire.c: macc_state_body_encode and
 * macc_session_state_prefix), across every msgpack size class of the round number, the
 * parameter count and the bin lengths, with and without momentum and push-sum weight.
 * So macc-sim's bytes_per_agent is exactly the daemon's traffic for uncompressed runs; for
 * compressed runs the same layout carries the blob in place of the float32 bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macc/crypto.h"
#include "macc/proto.h"
#include "../../src/sim/wiresize.h"

#define MODEL_HASH 0x1234567890abcdefULL

struct fixture {
	struct macc_identity self, peer;
	struct macc_session sess;
};

/* A session with the peer's HELLO accepted (enough for macc_session_state_prefix). */
static void session_for(struct fixture *f, uint64_t nparams)
{
	uint8_t seed[32], nonce_s[MACC_NONCE_BYTES], nonce_p[MACC_NONCE_BYTES];
	struct macc_hello h;

	memset(seed, 1, sizeof(seed));
	assert_int_equal(macc_identity_from_seed(&f->self, seed), 0);
	memset(seed, 2, sizeof(seed));
	assert_int_equal(macc_identity_from_seed(&f->peer, seed), 0);
	memset(nonce_s, 3, sizeof(nonce_s));
	memset(nonce_p, 4, sizeof(nonce_p));
	macc_session_init(&f->sess, &f->self, nonce_s);
	macc_hello_init(&h, &f->peer, nonce_p, MODEL_HASH, nparams, "dmsgd", 0, 2, "peer");
	assert_int_equal(macc_session_accept_hello(&f->sess, &h, &f->peer.pub, 1, NULL, MODEL_HASH,
						   nparams, "dmsgd", NULL),
			 0);
}

static void fixture_finish(struct fixture *f)
{
	macc_session_finish(&f->sess);
	macc_identity_finish(&f->self);
	macc_identity_finish(&f->peer);
}

/* Encode one STATE for real and compare both sizes with wiresize's. */
static void check_one(struct fixture *f, const float *x, size_t n, uint64_t round, bool mom,
		      bool weight)
{
	struct macc_state_body body;
	struct macc_state_prefix prefix;
	struct macc_state_out st = {
		.round = round,
		.nparams = n,
		.x = x,
		.mom = mom ? x : NULL,
		.has_weight = weight,
		.weight = 0.625,
	};
	size_t want_body, want_frame;

	memset(&body, 0, sizeof(body));
	assert_int_equal(macc_state_body_encode(&body, &st), 0);
	want_body = sim_wire_state_body(round, n, MACC_ENC_F32, 4 * n, mom, 4 * n, weight);
	if (body.buf.len != want_body) {
		print_error("n=%zu round=%llu mom=%d weight=%d: body %zu bytes, wiresize %zu\n", n,
			    (unsigned long long)round, mom, weight, body.buf.len, want_body);
	}
	assert_int_equal(body.buf.len, want_body);
	assert_int_equal(macc_session_state_prefix(&f->sess, &body, &prefix), 0);
	want_frame = sim_wire_state_frame(body.buf.len);
	if (prefix.len + body.buf.len != want_frame) {
		print_error("n=%zu body=%zu: frame %zu bytes, wiresize says %zu\n", n, body.buf.len,
			    prefix.len + body.buf.len, want_frame);
	}
	assert_int_equal(prefix.len + body.buf.len, want_frame);
	macc_state_body_finish(&body);
}

static void test_sizes_match_encoder(void **state)
{
	/* Parameter counts around the bin8/bin16/bin32 and uint size boundaries (4n bytes). */
	static const size_t ns[] = {1, 10, 63, 64, 65, 127, 128, 16383, 16384, 16385, 70000};
	static const uint64_t rounds[] = {0,     1,     127,        128,        255,
					  256,   65535, 65536,      4294967295, 4294967296ULL,
					  UINT64_MAX};
	float *x = calloc(70000, sizeof(float));

	(void)state;
	assert_non_null(x);
	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		struct fixture f;

		session_for(&f, ns[i]);
		for (size_t r = 0; r < sizeof(rounds) / sizeof(rounds[0]); r++) {
			for (int k = 0; k < 4; k++) {
				check_one(&f, x, ns[i], rounds[r], k & 1, k & 2);
			}
		}
		fixture_finish(&f);
	}
	free(x);
}

/* The hand-computed frame of the integration test (mlp:784-256-128-10, dmsgd, round 0). */
static void test_mlp_frame(void **state)
{
	const size_t p = 235146;
	size_t body = sim_wire_state_body(0, p, MACC_ENC_F32, 4 * p, true, 4 * p, false);
	float *x = calloc(p, sizeof(float));
	struct fixture f;

	(void)state;
	assert_non_null(x);
	assert_int_equal(body, 1881204);
	assert_int_equal(sim_wire_state_frame(body), 1881339);
	session_for(&f, p);
	check_one(&f, x, p, 0, true, false);
	check_one(&f, x, p, 300, false, true);
	fixture_finish(&f);
	free(x);
}

static void test_uint_and_bin_classes(void **state)
{
	(void)state;
	assert_int_equal(sim_wire_uint_size(0), 1);
	assert_int_equal(sim_wire_uint_size(127), 1);
	assert_int_equal(sim_wire_uint_size(128), 2);
	assert_int_equal(sim_wire_uint_size(256), 3);
	assert_int_equal(sim_wire_uint_size(65536), 5);
	assert_int_equal(sim_wire_uint_size(4294967296ULL), 9);
	assert_int_equal(sim_wire_bin_header(255), 2);
	assert_int_equal(sim_wire_bin_header(256), 3);
	assert_int_equal(sim_wire_bin_header(65536), 5);
	/* A compressed blob changes only the bin: int8 of 1000 values is 12 + 4*4 + 1000 bytes. */
	assert_int_equal(sim_wire_state_body(5, 1000, MACC_ENC_INT8, 1028, false, 0, false),
			 sim_wire_state_body(5, 1000, MACC_ENC_F32, 1028, false, 0, false));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uint_and_bin_classes),
		cmocka_unit_test(test_mlp_frame),
		cmocka_unit_test(test_sizes_match_encoder),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
