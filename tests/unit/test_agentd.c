/*
 * test_agentd.c - the daemon's loop-free helpers: checkpoints (round trip, fallback to the
 * previous good one on corruption and truncation, refusal of another model), sd_notify datagrams
 * (path and abstract sockets, watchdog interval) and reconnect backoff bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <zlib.h>

#include "backoff.h"
#include "checkpoint.h"
#include "notify.h"

#define NP 1000

static void fill(struct macc_ckpt *c, float *x, float *v, uint64_t round)
{
	memset(c, 0, sizeof(*c));
	c->config_hash = 0x1111;
	c->model_hash = 0x2222;
	c->round = round;
	c->epoch = round / 10;
	c->batcher.epoch = 3;
	c->batcher.pos = 7;
	c->batcher.epoch_rng.s[2] = 99;
	c->rng.s[0] = 42;
	c->nparams = NP;
	for (int i = 0; i < NP; i++) {
		x[i] = (float)round + (float)i * 0.5f;
		v[i] = -(float)i;
	}
	c->params = x;
	c->momentum = v;
}

static char *mkdir_tmp(void)
{
	char *d = strdup("/tmp/macc-test-ckpt-XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void rm_dir(char *d)
{
	char p[512];
	const char *names[] = {"checkpoint.bin", "checkpoint.prev", "checkpoint.tmp"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", d, names[i]);
		unlink(p);
	}
	rmdir(d);
	free(d);
}

static void test_ckpt_roundtrip(void **state)
{
	(void)state;
	char *d = mkdir_tmp();
	static float x[NP], v[NP], x2[NP], v2[NP];
	struct macc_ckpt c, l;
	struct macc_errmsg e, w;
	char used[512];

	fill(&c, x, v, 5);
	assert_int_equal(macc_ckpt_save(d, &c, &e), 0);
	memset(&l, 0, sizeof(l));
	l.config_hash = 0x1111;
	l.model_hash = 0x2222;
	l.nparams = NP;
	l.params = x2;
	l.momentum = v2;
	assert_int_equal(macc_ckpt_load(d, &l, used, sizeof(used), &w, &e), 0);
	assert_string_equal(w.text, "");
	assert_non_null(strstr(used, "checkpoint.bin"));
	assert_int_equal(l.round, 5);
	assert_int_equal(l.batcher.pos, 7);
	assert_int_equal(l.batcher.epoch_rng.s[2], 99);
	assert_int_equal(l.rng.s[0], 42);
	assert_memory_equal(x, x2, sizeof(x));
	assert_memory_equal(v, v2, sizeof(v));

	/* Another model: refused, buffers untouched. */
	l.model_hash = 0x3333;
	memset(x2, 0, sizeof(x2));
	assert_int_equal(macc_ckpt_load(d, &l, used, sizeof(used), &w, &e), MACC_EMODEL);
	assert_non_null(strstr(e.text, "another model"));
	assert_float_equal(x2[3], 0.0f, 0.0);
	rm_dir(d);
}

static void corrupt_and_check(int truncate_it)
{
	char *d = mkdir_tmp();
	static float x[NP], v[NP], x2[NP], v2[NP];
	struct macc_ckpt c, l;
	struct macc_errmsg e, w;
	char used[512], path[512];

	fill(&c, x, v, 5);
	assert_int_equal(macc_ckpt_save(d, &c, &e), 0);
	fill(&c, x, v, 6);
	assert_int_equal(macc_ckpt_save(d, &c, &e), 0);
	snprintf(path, sizeof(path), "%s/checkpoint.bin", d);
	if (truncate_it) {
		assert_int_equal(truncate(path, 1000), 0);
	} else {
		int fd = open(path, O_WRONLY);
		assert_true(fd >= 0);
		assert_int_equal(pwrite(fd, "\xff\xff", 2, 500), 2);
		close(fd);
	}
	memset(&l, 0, sizeof(l));
	l.config_hash = 0x1111;
	l.model_hash = 0x2222;
	l.nparams = NP;
	l.params = x2;
	l.momentum = v2;
	assert_int_equal(macc_ckpt_load(d, &l, used, sizeof(used), &w, &e), 0);
	assert_int_equal(l.round, 5); /* the previous good one */
	assert_non_null(strstr(used, "checkpoint.prev"));
	assert_non_null(strstr(w.text, truncate_it ? "truncated" : "checksum"));
	assert_float_equal(x2[1], 5.5f, 0.0);

	/* Both bad: an error naming the file, buffers untouched. */
	snprintf(path, sizeof(path), "%s/checkpoint.prev", d);
	assert_int_equal(truncate(path, 10), 0);
	memset(x2, 0, sizeof(x2));
	assert_int_equal(macc_ckpt_load(d, &l, used, sizeof(used), &w, &e), MACC_ECORRUPT);
	assert_non_null(strstr(e.text, "checkpoint"));
	assert_float_equal(x2[1], 0.0f, 0.0);
	rm_dir(d);
}

static void test_ckpt_corrupt(void **state)
{
	(void)state;
	corrupt_and_check(0);
}

static void test_ckpt_truncated(void **state)
{
	(void)state;
	corrupt_and_check(1);
}

static void test_ckpt_missing(void **state)
{
	(void)state;
	char *d = mkdir_tmp();
	static float x2[NP], v2[NP];
	struct macc_ckpt l = {.nparams = NP, .params = x2, .momentum = v2};
	struct macc_errmsg e;

	assert_int_equal(macc_ckpt_load(d, &l, NULL, 0, NULL, &e), -ENOENT);
	rm_dir(d);
}

/* Rewrite the CRC-32 (zlib's) at the end of a checkpoint file after editing it. */
static void refresh_crc(const char *path)
{
	FILE *f = fopen(path, "r+b");
	uint8_t *b;
	long n;
	uint32_t crc;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	b = malloc((size_t)n);
	assert_non_null(b);
	rewind(f);
	assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
	crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)(n - 4));
	memcpy(b + n - 4, &crc, 4);
	rewind(f);
	assert_int_equal(fwrite(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	free(b);
}

static long file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (long)st.st_size;
}

/* The standardiser in the checkpoint: version 2 with it, version 1 (as before) without. */
static void test_ckpt_standardizer(void **state)
{
	(void)state;
	char *d = mkdir_tmp();
	static float x[NP], v[NP], x2[NP], v2[NP];
	float mean[5] = {20, -0.5f, 0, 1e-3f, 7}, inv[5] = {0.25f, 2, 1, 1000, 0.5f};
	float m2[5], i2[5];
	struct macc_ckpt c, l;
	struct macc_errmsg e, w;
	char used[512], path[512];
	uint32_t ver;
	FILE *f;

	snprintf(path, sizeof(path), "%s/checkpoint.bin", d);
	/* Without a standardiser: version 1, 148 + 8n bytes, flags 0: what older readers take. */
	fill(&c, x, v, 5);
	assert_int_equal(macc_ckpt_save(d, &c, &e), 0);
	assert_int_equal(file_size(path), 148 + 8 * NP);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 8, SEEK_SET), 0);
	assert_int_equal(fread(&ver, 4, 1, f), 1);
	fclose(f);
	assert_int_equal(ver, 1);
	memset(&l, 0, sizeof(l));
	l.config_hash = 0x1111;
	l.model_hash = 0x2222;
	l.nparams = NP;
	l.params = x2;
	l.momentum = v2;
	l.std_dim = 5;
	l.std_mean = m2;
	l.std_inv = i2;
	memset(m2, 0x7f, sizeof(m2));
	assert_int_equal(macc_ckpt_load(d, &l, used, sizeof(used), &w, &e), 0);
	assert_false(l.has_std);
	assert_int_equal(l.flags, 0);
	assert_true(m2[0] != 20.0f); /* untouched */

	/* With one: version 2, 148 + 8n + 8 + 8d bytes; it comes back bit for bit. */
	fill(&c, x, v, 6);
	c.has_std = true;
	c.std_dim = 5;
	c.std_mean = mean;
	c.std_inv = inv;
	assert_int_equal(macc_ckpt_save(d, &c, &e), 0);
	assert_int_equal(file_size(path), 148 + 8 * NP + 8 + 8 * 5);
	assert_int_equal(macc_ckpt_load(d, &l, used, sizeof(used), &w, &e), 0);
	assert_true(l.has_std);
	assert_int_equal(l.std_dim, 5);
	assert_int_equal(l.round, 6);
	assert_int_equal(l.flags, MACC_CKPT_F_STANDARDIZER);
	assert_memory_equal(m2, mean, sizeof(mean));
	assert_memory_equal(i2, inv, sizeof(inv));
	assert_memory_equal(x2, x, sizeof(x));
	/* Read without asking for it: the header says so, nothing is copied. */
	{
		struct macc_ckpt h;

		memset(&h, 0, sizeof(h));
		assert_int_equal(macc_ckpt_read_file(path, &h, &e), 0);
		assert_true(h.has_std);
		assert_int_equal(h.std_dim, 5);
		assert_null(h.std_mean);
	}
	/* A model of another input size: refused, not taken for corruption. */
	l.std_dim = 4;
	assert_int_equal(macc_ckpt_load(d, &l, used, sizeof(used), &w, &e), MACC_EMODEL);
	assert_non_null(strstr(e.text, "standardises 5 features"));
	l.std_dim = 5;
	/* A bad save request. */
	c.std_dim = 0;
	assert_int_equal(macc_ckpt_save(d, &c, &e), -EINVAL);
	c.std_dim = 5;

	/* A flipped bit in the standardiser: the checksum catches it, the previous file is used. */
	{
		int fd = open(path, O_WRONLY);

		assert_true(fd >= 0);
		assert_int_equal(pwrite(fd, "\x01", 1, 148 + 8 * NP + 8 + 3), 1);
		close(fd);
	}
	assert_int_equal(macc_ckpt_load(d, &l, used, sizeof(used), &w, &e), 0);
	assert_non_null(strstr(w.text, "checksum"));
	assert_int_equal(l.round, 5);
	assert_false(l.has_std);

	/* Structure errors that a good CRC does not excuse: flags without the bit, a section of
	 * another size, an unknown version. */
	assert_int_equal(macc_ckpt_save(d, &c, &e), 0);
	{
		int fd = open(path, O_WRONLY);
		uint64_t zero = 0, big = 6;
		uint32_t three = 3;

		assert_true(fd >= 0);
		assert_int_equal(pwrite(fd, &zero, 8, 56), 8);
		close(fd);
		refresh_crc(path);
		memset(&w, 0, sizeof(w));
		assert_int_equal(macc_ckpt_read_file(path, &l, &e), MACC_ECORRUPT);
		assert_non_null(strstr(e.text, "standardiser"));
		fd = open(path, O_WRONLY);
		zero = MACC_CKPT_F_STANDARDIZER;
		assert_int_equal(pwrite(fd, &zero, 8, 56), 8);
		assert_int_equal(pwrite(fd, &big, 8, 148 - 4 + 8 * NP), 8);
		close(fd);
		refresh_crc(path);
		assert_int_equal(macc_ckpt_read_file(path, &l, &e), MACC_ECORRUPT);
		fd = open(path, O_WRONLY);
		assert_int_equal(pwrite(fd, &three, 4, 8), 4);
		close(fd);
		refresh_crc(path);
		assert_int_equal(macc_ckpt_read_file(path, &l, &e), MACC_EVERSION);
	}
	rm_dir(d);
}

static int bind_dgram(struct sockaddr_un *sa, socklen_t len)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)sa, len), 0);
	return fd;
}

static void test_notify(void **state)
{
	(void)state;
	struct sockaddr_un sa;
	char buf[256], path[108];
	ssize_t n;
	int fd;

	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(macc_notify("READY=1"), 0);

	/* Path socket. */
	snprintf(path, sizeof(path), "/tmp/macc-notify-%d", (int)getpid());
	unlink(path);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, path);
	fd = bind_dgram(&sa, sizeof(sa));
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(macc_notify("READY=1"), 0);
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	assert_int_equal(n, 7);
	buf[n] = '\0';
	assert_string_equal(buf, "READY=1");
	assert_int_equal(macc_notify_reloading(), 0);
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "RELOADING=1\nMONOTONIC_USEC="));
	close(fd);
	unlink(path);

	/* Abstract socket: "@name". */
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	int len = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "macc-notify-%d",
			   (int)getpid());
	fd = bind_dgram(&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len));
	snprintf(path, sizeof(path), "@%s", sa.sun_path + 1);
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(macc_notify("STOPPING=1"), 0);
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	assert_int_equal(n, 10);
	close(fd);

	setenv("NOTIFY_SOCKET", "relative", 1);
	assert_int_equal(macc_notify("READY=1"), -EINVAL);
	unsetenv("NOTIFY_SOCKET");

	setenv("WATCHDOG_USEC", "10000000", 1);
	unsetenv("WATCHDOG_PID");
	assert_int_equal(macc_notify_watchdog_interval_ms(), 5000);
	setenv("WATCHDOG_PID", "1", 1);
	assert_int_equal(macc_notify_watchdog_interval_ms(), 0);
	unsetenv("WATCHDOG_PID");
	setenv("WATCHDOG_USEC", "junk", 1);
	assert_int_equal(macc_notify_watchdog_interval_ms(), 0);
	unsetenv("WATCHDOG_USEC");
}

static void test_backoff(void **state)
{
	(void)state;
	struct macc_backoff b;
	struct macc_rng r;
	uint64_t prev_hi = 0;

	macc_rng_seed(&r, 1, 7);
	macc_backoff_init(&b, 100, 5000);
	for (int a = 0; a < 20; a++) {
		uint64_t hi = 100;
		for (int i = 0; i < a && hi < 5000; i++) {
			hi *= 2;
		}
		if (hi > 5000) {
			hi = 5000;
		}
		uint64_t d = macc_backoff_next(&b, &r);
		assert_true(d >= 50);
		assert_true(d <= hi);
		assert_true(hi >= prev_hi);
		prev_hi = hi;
	}
	/* Jitter: not every delay at the cap is the same. */
	uint64_t first = macc_backoff_next(&b, &r);
	int differ = 0;
	for (int i = 0; i < 10; i++) {
		differ |= macc_backoff_next(&b, &r) != first;
	}
	assert_true(differ);
	macc_backoff_reset(&b);
	assert_true(macc_backoff_next(&b, &r) <= 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ckpt_roundtrip), cmocka_unit_test(test_ckpt_corrupt),
		cmocka_unit_test(test_ckpt_truncated), cmocka_unit_test(test_ckpt_missing),
		cmocka_unit_test(test_ckpt_standardizer),
		cmocka_unit_test(test_notify),         cmocka_unit_test(test_backoff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
