/*
 * test_common.c - err, rng and buf.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "macc/buf.h"
#include "macc/err.h"
#include "macc/log.h"
#include "macc/rng.h"

static void test_strerror_names_every_code(void **state)
{
	(void)state;
	for (int c = MACC_EMALFORMED; c > MACC_ERR_LAST; c--) {
		assert_string_not_equal(macc_strerror(c), "unknown error");
		assert_string_not_equal(macc_errname(c), "errno");
	}
	assert_string_equal(macc_errname(MACC_EBADSIG), "bad_signature");
	assert_string_equal(macc_strerror(-ENOENT), strerror(ENOENT));
	assert_string_equal(macc_strerror(MACC_ERR_LAST), "unknown error");
}

static void test_errf_formats_and_returns_code(void **state)
{
	struct macc_errmsg e = {{0}};

	(void)state;
	assert_int_equal(macc_errf(&e, MACC_EDATA, "%s: bad magic 0x%x", "f.idx", 7), MACC_EDATA);
	assert_string_equal(e.text, "f.idx: bad magic 0x7");
	assert_int_equal(macc_errf(NULL, MACC_EDATA, "x"), MACC_EDATA);
}

static void test_rng_reproducible_and_streams_differ(void **state)
{
	struct macc_rng a, b, c;

	(void)state;
	macc_rng_seed(&a, 42, 1);
	macc_rng_seed(&b, 42, 1);
	macc_rng_seed(&c, 42, 2);
	int same_c = 0;
	for (int i = 0; i < 1000; i++) {
		uint64_t x = macc_rng_next(&a);
		assert_true(x == macc_rng_next(&b));
		same_c += x == macc_rng_next(&c);
	}
	assert_int_equal(same_c, 0);
}

static void test_rng_below_uniform(void **state)
{
	struct macc_rng r;
	int counts[10] = {0};

	(void)state;
	macc_rng_seed(&r, 7, 0);
	for (int i = 0; i < 100000; i++) {
		uint64_t v = macc_rng_below(&r, 10);
		assert_true(v < 10);
		counts[v]++;
	}
	/* Each bucket expects 10000 with sd ~95: 5 sd bounds. */
	for (int i = 0; i < 10; i++) {
		assert_in_range(counts[i], 9500, 10500);
	}
}

static void test_rng_normal_and_gamma_moments(void **state)
{
	struct macc_rng r;
	double s = 0, s2 = 0, g = 0;
	const int n = 200000;

	(void)state;
	macc_rng_seed(&r, 3, 0);
	for (int i = 0; i < n; i++) {
		double x = macc_rng_normal(&r);
		s += x;
		s2 += x * x;
	}
	assert_true(fabs(s / n) < 0.01);
	assert_true(fabs(s2 / n - 1.0) < 0.02);
	for (int i = 0; i < n; i++) {
		g += macc_rng_gamma(&r, 0.5);
	}
	/* Gamma(0.5, 1) has mean 0.5. */
	assert_true(fabs(g / n - 0.5) < 0.01);
}

static void test_rng_shuffle_is_permutation(void **state)
{
	struct macc_rng r;
	uint32_t a[257];
	int seen[257] = {0};

	(void)state;
	for (uint32_t i = 0; i < 257; i++) {
		a[i] = i;
	}
	macc_rng_seed(&r, 9, 0);
	macc_rng_shuffle_u32(&r, a, 257);
	int moved = 0;
	for (uint32_t i = 0; i < 257; i++) {
		seen[a[i]]++;
		moved += a[i] != i;
	}
	for (int i = 0; i < 257; i++) {
		assert_int_equal(seen[i], 1);
	}
	assert_true(moved > 200);
}

static void test_buf_grow_consume_limit(void **state)
{
	struct macc_buf b;
	uint8_t chunk[100];

	(void)state;
	memset(chunk, 0xab, sizeof(chunk));
	macc_buf_init(&b, 1000);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(macc_buf_append(&b, chunk, sizeof(chunk)), 0);
	}
	assert_int_equal(b.len, 1000);
	assert_int_equal(macc_buf_append(&b, chunk, 1), MACC_ETOOBIG);
	assert_int_equal(b.len, 1000);
	b.data[100] = 7;
	macc_buf_consume(&b, 100);
	assert_int_equal(b.len, 900);
	assert_int_equal(b.data[0], 7);
	size_t n;
	uint8_t *p = macc_buf_steal(&b, &n);
	assert_int_equal(n, 900);
	assert_null(b.data);
	free(p);
	macc_buf_finish(&b);
	macc_buf_finish(NULL);
}

static void test_be32(void **state)
{
	uint8_t p[4];

	(void)state;
	macc_put_be32(p, 0x01020304u);
	assert_memory_equal(p, "\x01\x02\x03\x04", 4);
	assert_int_equal(macc_get_be32(p), 0x01020304u);
}

static void test_ratelimit_caps_burst(void **state)
{
	struct macc_ratelimit rl;
	int ok = 0;

	(void)state;
	macc_ratelimit_init(&rl, 60000, 5);
	for (int i = 0; i < 100; i++) {
		ok += macc_ratelimit_ok(&rl, "test");
	}
	assert_int_equal(ok, 5);
	assert_int_equal(rl.suppressed, 95);
}

static void test_log_level_parse(void **state)
{
	enum macc_log_level l;

	(void)state;
	assert_int_equal(macc_log_level_parse("debug", &l), 0);
	assert_int_equal(l, MACC_LOG_DEBUG);
	assert_int_equal(macc_log_level_parse("loud", &l), MACC_ESPEC);
}

/* Peer-chosen strings cannot add lines or escape sequences. */
static void test_escape(void **state)
{
	char b[64];

	(void)state;
	assert_string_equal(macc_escape(b, sizeof(b), "agent-1.x_y"), "agent-1.x_y");
	assert_string_equal(macc_escape(b, sizeof(b), "a\nerror: [a1] x"), "a\\x0aerror: [a1] x");
	assert_string_equal(macc_escape(b, sizeof(b), "\x1b[2J\r\t\x7f"),
			    "\\x1b[2J\\x0d\\x09\\x7f");
	assert_string_equal(macc_escape(b, sizeof(b), "back\\slash"), "back\\\\slash");
	assert_string_equal(macc_escape(b, sizeof(b), "\xc3\xa9\xc2\x9b"),
			    "\\xc3\\xa9\\xc2\\x9b");
	/* Truncation never splits an escape and always terminates. */
	assert_string_equal(macc_escape(b, 6, "ab\ncd"), "ab");
	assert_string_equal(macc_escape(b, 7, "ab\ncd"), "ab\\x0a");
	assert_string_equal(macc_escape(b, 1, "abc"), "");
	assert_string_equal(macc_escape(b, 4, "a\\b"), "a\\\\");
}

/* macc_log writes one escaped line, whatever the message holds. */
static void test_log_escapes_lines(void **state)
{
	int fds[2], saved;
	char out[512];
	ssize_t n;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fds[1], STDERR_FILENO), STDERR_FILENO);
	macc_log(MACC_LOG_WARN, "in:1.2.3.4:5\n", "peer said: %s (%s)",
		 "bye\nerror: [a1] forged\x1b[31m", "x");
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	close(fds[1]);
	n = read(fds[0], out, sizeof(out) - 1);
	close(fds[0]);
	assert_true(n > 0);
	out[n] = '\0';
	assert_string_equal(out, "warn: [in:1.2.3.4:5\\x0a] peer said: "
			    "bye\\x0aerror: [a1] forged\\x1b[31m (x)\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strerror_names_every_code),
		cmocka_unit_test(test_errf_formats_and_returns_code),
		cmocka_unit_test(test_rng_reproducible_and_streams_differ),
		cmocka_unit_test(test_rng_below_uniform),
		cmocka_unit_test(test_rng_normal_and_gamma_moments),
		cmocka_unit_test(test_rng_shuffle_is_permutation),
		cmocka_unit_test(test_buf_grow_consume_limit),
		cmocka_unit_test(test_be32),
		cmocka_unit_test(test_ratelimit_caps_burst),
		cmocka_unit_test(test_log_level_parse),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_log_escapes_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
