/*
 * test_data.c - dataset loaders (IDX, CIFAR-10, CSV, specs), partitions and the batcher.
 *
 * Every malformed-file case writes a crafted file into a fresh mkdtemp() directory and asserts
 * both the error code and that the message names the file and the problem. The real
 * Fashion-MNIST test runs when the dataset directory exists (it does on the dev machines) and
 * is skipped otherwise.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "macc/data.h"
#include "macc/nn.h"
#include "macc/err.h"
#include "macc/log.h"
#include "macc/rng.h"

/* ---- temp files ---- */

static char tmpdir[256];

static int setup_tmp(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/macc-test-data-XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL) {
		return;
	}
	while ((e = readdir(d)) != NULL) {
		char p[1024];
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
			continue;
		}
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
			rm_tree(p);
		} else {
			unlink(p);
		}
	}
	closedir(d);
	rmdir(dir);
}

static int teardown_tmp(void **state)
{
	(void)state;
	rm_tree(tmpdir);
	return 0;
}

/* Path of NAME in the temp dir (a rotating set of static buffers). */
static const char *tpath(const char *name)
{
	static char bufs[8][512];
	static int at;
	char *b = bufs[at++ % 8];

	snprintf(b, 512, "%s/%s", tmpdir, name);
	return b;
}

static const char *write_file(const char *name, const void *data, size_t len)
{
	const char *p = tpath(name);
	FILE *f = fopen(p, "wb");

	assert_non_null(f);
	if (len > 0) {
		assert_int_equal(fwrite(data, 1, len, f), len);
	}
	assert_int_equal(fclose(f), 0);
	return p;
}

static const char *write_gz(const char *name, const void *data, size_t len)
{
	const char *p = tpath(name);
	gzFile g = gzopen(p, "wb");

	assert_non_null(g);
	assert_int_equal(gzwrite(g, data, (unsigned)len), (int)len);
	assert_int_equal(gzclose(g), Z_OK);
	return p;
}

static uint8_t *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc((size_t)n + 1);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return b;
}

/* Assert code and that the message mentions every given substring. */
static void expect_err(int rc, int code, const struct macc_errmsg *e, const char *s1,
		       const char *s2)
{
	if (rc != code || (s1 != NULL && strstr(e->text, s1) == NULL) ||
	    (s2 != NULL && strstr(e->text, s2) == NULL)) {
		print_error("rc %d (want %d), message '%s', want '%s' and '%s'\n", rc, code, e->text,
			    s1 != NULL ? s1 : "", s2 != NULL ? s2 : "");
		fail();
	}
}

/* ---- IDX builders ---- */

static size_t put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return 4;
}

/* IDX images: n x h x w, pixel (i, k) = (i * 7 + k) % 256. Returns length. */
static size_t make_images(uint8_t *buf, uint32_t n, uint32_t h, uint32_t w)
{
	size_t at = 0;

	buf[at++] = 0;
	buf[at++] = 0;
	buf[at++] = 0x08;
	buf[at++] = 3;
	at += put_be32(buf + at, n);
	at += put_be32(buf + at, h);
	at += put_be32(buf + at, w);
	for (uint32_t i = 0; i < n; i++) {
		for (uint32_t k = 0; k < h * w; k++) {
			buf[at++] = (uint8_t)((i * 7 + k) % 256);
		}
	}
	return at;
}

static size_t make_labels(uint8_t *buf, uint32_t n, const uint8_t *labels)
{
	size_t at = 0;

	buf[at++] = 0;
	buf[at++] = 0;
	buf[at++] = 0x08;
	buf[at++] = 1;
	at += put_be32(buf + at, n);
	memcpy(buf + at, labels, n);
	return at + n;
}

static const uint8_t LAB3[3] = {4, 0, 9};

static void check_small_idx(const struct macc_dataset *d)
{
	assert_int_equal(d->n, 3);
	assert_int_equal(d->dim, 16);
	assert_int_equal(d->channels, 1);
	assert_int_equal(d->height, 4);
	assert_int_equal(d->width, 4);
	assert_int_equal(d->nclasses, 10);
	assert_int_equal(d->y[0], 4);
	assert_int_equal(d->y[2], 9);
	for (uint32_t i = 0; i < 3; i++) {
		for (uint32_t k = 0; k < 16; k++) {
			float want = (float)((i * 7 + k) % 256) / 255.0f;

			assert_true(d->x[i * 16 + k] == want);
		}
	}
}

static void test_idx_plain_and_gzip(void **state)
{
	uint8_t img[256], lbl[64];
	size_t il = make_images(img, 3, 4, 4), ll = make_labels(lbl, 3, LAB3);
	struct macc_dataset d = {0}, g = {0};
	struct macc_errmsg e = {{0}};

	(void)state;
	const char *ip = write_file("img.idx", img, il);
	const char *lp = write_file("lbl.idx", lbl, ll);

	assert_int_equal(macc_dataset_load_idx(ip, lp, &d, &e), 0);
	check_small_idx(&d);
	ip = write_gz("img.idx.gz", img, il);
	lp = write_gz("lbl.idx.gz", lbl, ll);
	assert_int_equal(macc_dataset_load_idx(ip, lp, &g, &e), 0);
	check_small_idx(&g);
	assert_memory_equal(d.x, g.x, d.n * d.dim * sizeof(float));
	macc_dataset_finish(&d);
	macc_dataset_finish(&g);
	macc_dataset_finish(NULL);
	macc_dataset_finish(&d); /* zeroed: ok */
}

static void test_idx_bad_magic(void **state)
{
	uint8_t img[256], lbl[64];
	size_t il = make_images(img, 3, 4, 4), ll = make_labels(lbl, 3, LAB3);
	struct macc_dataset d = {0};
	struct macc_errmsg e = {{0}};

	(void)state;
	img[0] = 0x1a; /* not 00 00 */
	const char *ip = write_file("magic-img.idx", img, il);
	const char *lp = write_file("magic-lbl.idx", lbl, ll);

	expect_err(macc_dataset_load_idx(ip, lp, &d, &e), MACC_EDATA, &e, "magic-img.idx",
		   "bad magic");
	assert_null(d.x);
}

static void test_idx_wrong_dimensions(void **state)
{
	uint8_t img[256], lbl[64];
	size_t il = make_images(img, 3, 4, 4), ll = make_labels(lbl, 3, LAB3);
	struct macc_dataset d = {0};
	struct macc_errmsg e = {{0}};

	(void)state;
	/* Labels declared as 2-D. */
	uint8_t l2[64];
	size_t l2n = 0;

	l2[l2n++] = 0;
	l2[l2n++] = 0;
	l2[l2n++] = 8;
	l2[l2n++] = 2;
	l2n += put_be32(l2 + l2n, 3);
	l2n += put_be32(l2 + l2n, 1);
	memcpy(l2 + l2n, LAB3, 3);
	l2n += 3;
	const char *ip = write_file("dim-img.idx", img, il);
	const char *lp = write_file("dim-lbl.idx", l2, l2n);

	expect_err(macc_dataset_load_idx(ip, lp, &d, &e), MACC_EDATA, &e, "dim-lbl.idx",
		   "wrong dimensions");
	/* Images with a zero dimension. */
	put_be32(img + 8, 0);
	ip = write_file("dim0-img.idx", img, il);
	lp = write_file("dim0-lbl.idx", lbl, ll);
	expect_err(macc_dataset_load_idx(ip, lp, &d, &e), MACC_EDATA, &e, "dim0-img.idx",
		   "wrong dimensions");
	/* Images with rank 1. */
	img[3] = 1;
	ip = write_file("rank1-img.idx", img, 8 + 3);
	expect_err(macc_dataset_load_idx(ip, lp, &d, &e), MACC_EDATA, &e, "rank1-img.idx",
		   "wrong dimensions");
	/* Float images are not supported. */
	il = make_images(img, 3, 4, 4);
	img[2] = 0x0D;
	ip = write_file("float-img.idx", img, il);
	expect_err(macc_dataset_load_idx(ip, lp, &d, &e), MACC_EDATA, &e, "float-img.idx",
		   "unsupported image element type");
}

static void test_idx_count_mismatch(void **state)
{
	uint8_t img[256], lbl[64];
	size_t il = make_images(img, 3, 4, 4), ll = make_labels(lbl, 2, LAB3);
	struct macc_dataset d = {0};
	struct macc_errmsg e = {{0}};

	(void)state;
	const char *ip = write_file("cnt-img.idx", img, il);
	const char *lp = write_file("cnt-lbl.idx", lbl, ll);

	expect_err(macc_dataset_load_idx(ip, lp, &d, &e), MACC_EDATA, &e, "count mismatch",
		   "cnt-lbl.idx");
	assert_non_null(strstr(e.text, "cnt-img.idx"));
}

static void test_idx_truncated_and_trailing(void **state)
{
	uint8_t img[256], lbl[64];
	size_t il = make_images(img, 3, 4, 4), ll = make_labels(lbl, 3, LAB3);
	struct macc_dataset d = {0};
	struct macc_errmsg e = {{0}};

	(void)state;
	const char *ip = write_file("trunc-img.idx", img, il - 5);
	const char *lp = write_file("trunc-lbl.idx", lbl, ll);

	expect_err(macc_dataset_load_idx(ip, lp, &d, &e), MACC_EDATA, &e, "trunc-img.idx",
		   "truncated");
	ip = write_file("hdr-img.idx", img, 10); /* inside the dims */
	expect_err(macc_dataset_load_idx(ip, lp, &d, &e), MACC_EDATA, &e, "hdr-img.idx",
		   "truncated");
	ip = write_file("ok-img.idx", img, il);
	lp = write_file("trunc2-lbl.idx", lbl, ll - 1);
	expect_err(macc_dataset_load_idx(ip, lp, &d, &e), MACC_EDATA, &e, "trunc2-lbl.idx",
		   "truncated");
	img[il] = 0;
	ip = write_file("trail-img.idx", img, il + 1);
	lp = write_file("trail-lbl.idx", lbl, ll);
	expect_err(macc_dataset_load_idx(ip, lp, &d, &e), MACC_EDATA, &e, "trail-img.idx",
		   "trailing garbage");
}

static void test_idx_truncated_or_corrupt_gzip(void **state)
{
	uint8_t img[4096], lbl[64];
	size_t il = make_images(img, 10, 16, 16), ll, gl;
	uint8_t labs[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
	struct macc_dataset d = {0};
	struct macc_errmsg e = {{0}};

	(void)state;
	ll = make_labels(lbl, 10, labs);
	const char *lp = write_file("gz-lbl.idx", lbl, ll);
	const char *gp = write_gz("gz-full.idx.gz", img, il);
	uint8_t *gz = read_all(gp, &gl);

	const char *ip = write_file("gz-trunc.idx.gz", gz, gl / 2);

	expect_err(macc_dataset_load_idx(ip, lp, &d, &e), MACC_EDATA, &e, "gz-trunc.idx.gz",
		   "gzip");
	assert_non_null(strstr(e.text, "truncated"));
	gz[gl / 2] ^= 0xff;
	gz[gl / 2 + 1] ^= 0x55;
	ip = write_file("gz-corrupt.idx.gz", gz, gl);
	expect_err(macc_dataset_load_idx(ip, lp, &d, &e), MACC_EDATA, &e, "gz-corrupt.idx.gz",
		   "gzip");
	free(gz);
}

static void test_idx_label_out_of_range(void **state)
{
	uint8_t img[256], lbl[64];
	size_t il = make_images(img, 3, 4, 4), ll = 0;
	struct macc_dataset d = {0};
	struct macc_errmsg e = {{0}};

	(void)state;
	/* int32 labels with a negative one. */
	lbl[ll++] = 0;
	lbl[ll++] = 0;
	lbl[ll++] = 0x0C;
	lbl[ll++] = 1;
	ll += put_be32(lbl + ll, 3);
	ll += put_be32(lbl + ll, 1);
	ll += put_be32(lbl + ll, (uint32_t)-1);
	ll += put_be32(lbl + ll, 2);
	const char *ip = write_file("lab-img.idx", img, il);
	const char *lp = write_file("lab-lbl.idx", lbl, ll);

	expect_err(macc_dataset_load_idx(ip, lp, &d, &e), MACC_EDATA, &e, "lab-lbl.idx",
		   "label -1 of item 1 out of range");
	/* int32 labels that are all fine. */
	put_be32(lbl + 12, 70000);
	lp = write_file("lab2-lbl.idx", lbl, ll);
	expect_err(macc_dataset_load_idx(ip, lp, &d, &e), MACC_EDATA, &e, "lab2-lbl.idx",
		   "out of range");
	put_be32(lbl + 12, 7);
	put_be32(lbl + 16, 3);
	lp = write_file("lab3-lbl.idx", lbl, ll);
	assert_int_equal(macc_dataset_load_idx(ip, lp, &d, &e), 0);
	assert_int_equal(d.nclasses, 8);
	assert_int_equal(d.y[1], 7);
	macc_dataset_finish(&d);
}

static void test_idx_empty_and_missing(void **state)
{
	uint8_t lbl[64];
	size_t ll = make_labels(lbl, 3, LAB3);
	struct macc_dataset d = {0};
	struct macc_errmsg e = {{0}};

	(void)state;
	const char *ip = write_file("empty-img.idx", "", 0);
	const char *lp = write_file("empty-lbl.idx", lbl, ll);

	expect_err(macc_dataset_load_idx(ip, lp, &d, &e), MACC_EDATA, &e, "empty-img.idx",
		   "empty file");
	expect_err(macc_dataset_load_idx(tpath("nope.idx"), lp, &d, &e), -ENOENT, &e, "nope.idx",
		   "cannot open");
	/* An empty gzip member is an empty file too. */
	ip = write_gz("empty.idx.gz", "", 0);
	expect_err(macc_dataset_load_idx(ip, lp, &d, &e), MACC_EDATA, &e, "empty.idx.gz",
		   "empty file");
}

static void test_idx_huge_dims_refused(void **state)
{
	uint8_t img[64], lbl[64];
	size_t il = 0, ll = make_labels(lbl, 3, LAB3);
	struct macc_dataset d = {0};
	struct macc_errmsg e = {{0}};

	(void)state;
	img[il++] = 0;
	img[il++] = 0;
	img[il++] = 8;
	img[il++] = 3;
	il += put_be32(img + il, 0x7fffffff);
	il += put_be32(img + il, 28);
	il += put_be32(img + il, 28);
	memset(img + il, 0, 16);
	il += 16;
	const char *ip = write_file("huge-img.idx", img, il);
	const char *lp = write_file("huge-lbl.idx", lbl, ll);

	expect_err(macc_dataset_load_idx(ip, lp, &d, &e), MACC_EDATA, &e, "huge-img.idx",
		   "too large");
	/* One sample of 65536 x 65536 pixels. */
	put_be32(img + 4, 1);
	put_be32(img + 8, 65536);
	put_be32(img + 12, 65536);
	ip = write_file("huge2-img.idx", img, il);
	expect_err(macc_dataset_load_idx(ip, lp, &d, &e), MACC_EDATA, &e, "huge2-img.idx",
		   "too large");
	/* Labels claiming 4 billion entries. */
	il = make_images(img, 3, 2, 2);
	ip = write_file("huge3-img.idx", img, il);
	put_be32(lbl + 4, 0xffffffffu);
	lp = write_file("huge3-lbl.idx", lbl, ll);
	expect_err(macc_dataset_load_idx(ip, lp, &d, &e), MACC_EDATA, &e, "huge3-lbl.idx",
		   "count mismatch");
}

static void test_gunzip_bomb_and_members(void **state)
{
	size_t big = 8u << 20, gl, outl;
	uint8_t *zeros = calloc(1, big), *out = NULL;
	struct macc_errmsg e = {{0}};

	(void)state;
	assert_non_null(zeros);
	const char *gp = write_gz("bomb.gz", zeros, big);
	uint8_t *gz = read_all(gp, &gl);

	expect_err(macc_dataset_gunzip(gz, gl, "bomb.gz", 1u << 20, &out, &outl, &e), MACC_EDATA,
		   &e, "bomb.gz", "limit");
	assert_null(out);
	assert_int_equal(macc_dataset_gunzip(gz, gl, "bomb.gz", 16u << 20, &out, &outl, &e), 0);
	assert_int_equal(outl, big);
	free(out);
	free(gz);

	/* Two concatenated members read as one stream. */
	size_t l1, l2;
	uint8_t *a = read_all(write_gz("m1.gz", "hello ", 6), &l1);
	uint8_t *b = read_all(write_gz("m2.gz", "world", 5), &l2);
	uint8_t *cat = malloc(l1 + l2 + 1);

	memcpy(cat, a, l1);
	memcpy(cat + l1, b, l2);
	assert_int_equal(macc_dataset_gunzip(cat, l1 + l2, "cat.gz", 1024, &out, &outl, &e), 0);
	assert_int_equal(outl, 11);
	assert_memory_equal(out, "hello world", 11);
	free(out);
	cat[l1 + l2] = 'x';
	expect_err(macc_dataset_gunzip(cat, l1 + l2 + 1, "cat.gz", 1024, &out, &outl, &e),
		   MACC_EDATA, &e, "cat.gz", "trailing garbage");
	free(a);
	free(b);
	free(cat);
	free(zeros);
}

/* ---- CIFAR-10 ---- */

static size_t make_cifar(uint8_t *buf, size_t n, uint8_t first_label)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t *r = buf + i * 3073;

		r[0] = (uint8_t)((first_label + i) % 10);
		for (size_t k = 0; k < 3072; k++) {
			r[1 + k] = (uint8_t)((i + k / 1024 * 50 + k) % 256);
		}
	}
	return n * 3073;
}

static void test_cifar_valid(void **state)
{
	static uint8_t buf[3 * 3073];
	struct macc_dataset d = {0};
	struct macc_errmsg e = {{0}};

	(void)state;
	size_t l1 = make_cifar(buf, 2, 3);
	const char *p1 = write_file("c1.bin", buf, l1);
	size_t l2 = make_cifar(buf, 3, 8);
	const char *p2 = write_gz("c2.bin", buf, l2); /* gzip is detected by magic */
	const char *paths[2] = {p1, p2};

	assert_int_equal(macc_dataset_load_cifar10(paths, 2, &d, &e), 0);
	assert_int_equal(d.n, 5);
	assert_int_equal(d.dim, 3072);
	assert_int_equal(d.channels, 3);
	assert_int_equal(d.height, 32);
	assert_int_equal(d.width, 32);
	assert_int_equal(d.nclasses, 10);
	int32_t want[5] = {3, 4, 8, 9, 0};

	for (int i = 0; i < 5; i++) {
		assert_int_equal(d.y[i], want[i]);
	}
	/* Sample 3 is file 2's record 1: green plane starts at 1024, value (1 + 50 + 1024) % 256. */
	assert_true(d.x[3 * 3072 + 1024] == (float)((1 + 50 + 1024) % 256) / 255.0f);
	assert_true(d.x[0] == 0.0f);
	macc_dataset_finish(&d);
}

static void test_cifar_bad(void **state)
{
	static uint8_t buf[2 * 3073];
	struct macc_dataset d = {0};
	struct macc_errmsg e = {{0}};

	(void)state;
	size_t l = make_cifar(buf, 2, 0);
	const char *p = write_file("ctrunc.bin", buf, l - 5);

	expect_err(macc_dataset_load_cifar10(&p, 1, &d, &e), MACC_EDATA, &e, "ctrunc.bin",
		   "truncated");
	buf[3073] = 10;
	p = write_file("clabel.bin", buf, l);
	expect_err(macc_dataset_load_cifar10(&p, 1, &d, &e), MACC_EDATA, &e, "clabel.bin",
		   "record 1: label 10 out of range");
	p = write_file("cempty.bin", buf, 0);
	expect_err(macc_dataset_load_cifar10(&p, 1, &d, &e), MACC_EDATA, &e, "cempty.bin",
		   "empty file");
	p = tpath("cmissing.bin");
	expect_err(macc_dataset_load_cifar10(&p, 1, &d, &e), -ENOENT, &e, "cmissing.bin", NULL);
	assert_null(d.x);
}

/* ---- CSV ---- */

static void test_csv_valid(void **state)
{
	const char *txt = "f1, f2 ,label\r\n1.5,-2,3\r\n\r\n  \n0,1e2,0\n7,8,1";
	struct macc_dataset d = {0};
	struct macc_errmsg e = {{0}};

	(void)state;
	const char *p = write_file("ok.csv", txt, strlen(txt));

	assert_int_equal(macc_dataset_load_csv(p, -1, &d, &e), 0);
	assert_int_equal(d.n, 3);
	assert_int_equal(d.dim, 2);
	assert_int_equal(d.channels, 1);
	assert_int_equal(d.height, 1);
	assert_int_equal(d.width, 2);
	assert_int_equal(d.nclasses, 4);
	assert_true(d.x[0] == 1.5f && d.x[1] == -2.0f && d.x[2] == 0.0f && d.x[3] == 100.0f);
	assert_int_equal(d.y[0], 3);
	assert_int_equal(d.y[2], 1);
	macc_dataset_finish(&d);

	/* No header, label in the first column. */
	const char *t2 = "2,0.25,0.5\n0,1,1\n";

	p = write_file("first.csv", t2, strlen(t2));
	assert_int_equal(macc_dataset_load_csv(p, 0, &d, &e), 0);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.y[0], 2);
	assert_true(d.x[0] == 0.25f && d.x[1] == 0.5f);
	assert_int_equal(d.nclasses, 3);
	macc_dataset_finish(&d);
}

static void test_csv_bad(void **state)
{
	struct macc_dataset d = {0};
	struct macc_errmsg e = {{0}};
	const char *p;

	(void)state;
	p = write_file("nonnum.csv", "a,b,y\n1,2,0\n3,x7,1\n", 20);
	expect_err(macc_dataset_load_csv(p, -1, &d, &e), MACC_EDATA, &e, "nonnum.csv",
		   "line 3, column 2: non-numeric cell 'x7'");
	p = write_file("ragged.csv", "1,2,0\n3,4,1\n\n5,6\n", 17);
	expect_err(macc_dataset_load_csv(p, -1, &d, &e), MACC_EDATA, &e, "ragged.csv",
		   "line 4: ragged row: 2 columns, expected 3");
	p = write_file("empty.csv", "", 0);
	expect_err(macc_dataset_load_csv(p, -1, &d, &e), MACC_EDATA, &e, "empty.csv",
		   "empty file");
	p = write_file("header.csv", "a,b\n\n", 5);
	expect_err(macc_dataset_load_csv(p, -1, &d, &e), MACC_EDATA, &e, "header.csv",
		   "no data rows");
	p = write_file("neglab.csv", "1,2,0\n3,4,-1\n", 13);
	expect_err(macc_dataset_load_csv(p, -1, &d, &e), MACC_EDATA, &e, "neglab.csv",
		   "line 2, column 3: label '-1' out of range");
	p = write_file("fraclab.csv", "1,2,2.5\n", 8);
	expect_err(macc_dataset_load_csv(p, -1, &d, &e), MACC_EDATA, &e, "fraclab.csv",
		   "label '2.5'");
	p = write_file("nan.csv", "1,nan,0\n", 8);
	expect_err(macc_dataset_load_csv(p, -1, &d, &e), MACC_EDATA, &e, "nan.csv",
		   "column 2: non-numeric cell 'nan'");
	p = write_file("onecol.csv", "1\n2\n", 4);
	expect_err(macc_dataset_load_csv(p, -1, &d, &e), MACC_EDATA, &e, "onecol.csv",
		   "only 1 column");
	p = write_file("labcol.csv", "1,2\n", 4);
	expect_err(macc_dataset_load_csv(p, 5, &d, &e), MACC_EDATA, &e, "labcol.csv",
		   "label column 5 out of range");
	p = write_file("emptycell.csv", "1,,0\n", 5);
	expect_err(macc_dataset_load_csv(p, -1, &d, &e), MACC_EDATA, &e, "emptycell.csv",
		   "line 1, column 2: non-numeric cell ''");
	assert_null(d.x);
}

/* ---- specs ---- */

static void test_spec_csv_idx_cifar(void **state)
{
	struct macc_dataset d = {0};
	struct macc_errmsg e = {{0}};
	char spec[4096];

	(void)state;
	const char *tr = write_file("train.csv", "1,2,0\n3,4,1\n5,6,1\n", 18);
	const char *te = write_file("test.csv", "0,7,8\n", 6);

	snprintf(spec, sizeof(spec), "csv:%s;%s", tr, te);
	assert_int_equal(macc_dataset_load(spec, MACC_SPLIT_TRAIN, &d, &e), 0);
	assert_int_equal(d.n, 3);
	macc_dataset_finish(&d);
	snprintf(spec, sizeof(spec), "csv:%s;%s,label=0", tr, te);
	assert_int_equal(macc_dataset_load(spec, MACC_SPLIT_TEST, &d, &e), 0);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.y[0], 0);
	assert_true(d.x[0] == 7.0f && d.x[1] == 8.0f);
	macc_dataset_finish(&d);
	/* a column name needs a header row */
	snprintf(spec, sizeof(spec), "csv:%s,label=x", tr);
	expect_err(macc_dataset_load(spec, MACC_SPLIT_TRAIN, &d, &e), MACC_EDATA, &e,
		   "label column 'x' is a name but the file has no header row", NULL);

	/* idx:DIR with MNIST names (gzip), both splits; and idx:IMAGES,LABELS. */
	uint8_t img[1024], lbl[64];
	size_t il = make_images(img, 3, 4, 4), ll = make_labels(lbl, 3, LAB3);
	char dir[600];

	snprintf(dir, sizeof(dir), "%s/mn", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	write_gz("mn/train-images-idx3-ubyte.gz", img, il);
	write_gz("mn/train-labels-idx1-ubyte.gz", lbl, ll);
	il = make_images(img, 2, 4, 4);
	ll = make_labels(lbl, 2, LAB3);
	write_file("mn/t10k-images-idx3-ubyte", img, il); /* plain works too */
	write_file("mn/t10k-labels-idx1-ubyte", lbl, ll);
	snprintf(spec, sizeof(spec), "idx:%s", dir);
	assert_int_equal(macc_dataset_load(spec, MACC_SPLIT_TRAIN, &d, &e), 0);
	check_small_idx(&d);
	macc_dataset_finish(&d);
	snprintf(spec, sizeof(spec), "mnist:%s", dir);
	assert_int_equal(macc_dataset_load(spec, MACC_SPLIT_TEST, &d, &e), 0);
	assert_int_equal(d.n, 2);
	macc_dataset_finish(&d);
	snprintf(spec, sizeof(spec), "idx:%s/t10k-images-idx3-ubyte,%s/t10k-labels-idx1-ubyte",
		 dir, dir);
	assert_int_equal(macc_dataset_load(spec, MACC_SPLIT_TEST, &d, &e), 0);
	assert_int_equal(d.n, 2);
	macc_dataset_finish(&d);
	snprintf(spec, sizeof(spec),
		 "idx:%s/t10k-images-idx3-ubyte,%s/t10k-labels-idx1-ubyte;"
		 "%s/train-images-idx3-ubyte.gz,%s/train-labels-idx1-ubyte.gz",
		 dir, dir, dir, dir);
	assert_int_equal(macc_dataset_load(spec, MACC_SPLIT_TEST, &d, &e), 0);
	assert_int_equal(d.n, 3);
	macc_dataset_finish(&d);

	/* fashion-mnist resolves through MACC_FASHION_MNIST_DIR, then MACC_DATA_DIR. */
	char *old1 = getenv("MACC_FASHION_MNIST_DIR"), *old2 = getenv("MACC_DATA_DIR");
	char *s1 = old1 != NULL ? strdup(old1) : NULL, *s2 = old2 != NULL ? strdup(old2) : NULL;

	setenv("MACC_FASHION_MNIST_DIR", dir, 1);
	assert_int_equal(macc_dataset_load("fashion-mnist", MACC_SPLIT_TRAIN, &d, &e), 0);
	assert_int_equal(d.n, 3);
	macc_dataset_finish(&d);
	unsetenv("MACC_FASHION_MNIST_DIR");
	snprintf(spec, sizeof(spec), "%s/fashion-mnist", tmpdir);
	assert_int_equal(symlink(dir, spec), 0);
	setenv("MACC_DATA_DIR", tmpdir, 1);
	assert_int_equal(macc_dataset_load("fashion-mnist", MACC_SPLIT_TEST, &d, &e), 0);
	assert_int_equal(d.n, 2);
	macc_dataset_finish(&d);
	setenv("MACC_DATA_DIR", "/nonexistent-macc", 1);
	expect_err(macc_dataset_load("fashion-mnist", MACC_SPLIT_TEST, &d, &e), -ENOENT, &e,
		   "/nonexistent-macc/fashion-mnist/t10k-images-idx3-ubyte", NULL);
	unsetenv("MACC_DATA_DIR");
	if (s1 != NULL) {
		setenv("MACC_FASHION_MNIST_DIR", s1, 1);
	}
	if (s2 != NULL) {
		setenv("MACC_DATA_DIR", s2, 1);
	}
	free(s1);
	free(s2);

	/* cifar10:DIR, from the parent of cifar-10-batches-bin/. */
	static uint8_t cbuf[2 * 3073];
	char cdir[600];

	snprintf(cdir, sizeof(cdir), "%s/cf", tmpdir);
	assert_int_equal(mkdir(cdir, 0700), 0);
	snprintf(cdir, sizeof(cdir), "%s/cf/cifar-10-batches-bin", tmpdir);
	assert_int_equal(mkdir(cdir, 0700), 0);
	for (int i = 1; i <= 5; i++) {
		char name[64];

		snprintf(name, sizeof(name), "cf/cifar-10-batches-bin/data_batch_%d.bin", i);
		write_file(name, cbuf, make_cifar(cbuf, 2, (uint8_t)i));
	}
	write_file("cf/cifar-10-batches-bin/test_batch.bin", cbuf, make_cifar(cbuf, 1, 0));
	snprintf(spec, sizeof(spec), "cifar10:%s/cf", tmpdir);
	assert_int_equal(macc_dataset_load(spec, MACC_SPLIT_TRAIN, &d, &e), 0);
	assert_int_equal(d.n, 10);
	assert_int_equal(d.y[2], 2);
	macc_dataset_finish(&d);
	assert_int_equal(macc_dataset_load(spec, MACC_SPLIT_TEST, &d, &e), 0);
	assert_int_equal(d.n, 1);
	macc_dataset_finish(&d);

	expect_err(macc_dataset_load("imagenet", MACC_SPLIT_TRAIN, &d, &e), MACC_ESPEC, &e,
		   "unknown dataset spec 'imagenet'", NULL);
	expect_err(macc_dataset_load("idx:onlyone,", MACC_SPLIT_TRAIN, &d, &e), MACC_ESPEC, &e,
		   "IMAGES,LABELS", NULL);
}

/* ---- real Fashion-MNIST ---- */

static void test_fashion_mnist_real(void **state)
{
	const char *dir = getenv("MACC_FASHION_MNIST_DIR");
	const char *base = getenv("MACC_DATA_DIR");
	char buf[1024], probe[1100];
	struct macc_dataset tr = {0}, te = {0};
	struct macc_errmsg e = {{0}};
	struct stat st;

	(void)state;
	if (dir == NULL || *dir == '\0') {
		if (base != NULL && *base != '\0') {
			snprintf(buf, sizeof(buf), "%s/fashion-mnist", base);
			dir = buf;
		} else {
			dir = "/usr/share/datasets/fashion-mnist";
		}
	}
	snprintf(probe, sizeof(probe), "%s/train-images-idx3-ubyte.gz", dir);
	if (stat(dir, &st) != 0 || stat(probe, &st) != 0) {
		skip();
	}
	uint64_t t0 = macc_now_ns();
	int rc = macc_dataset_load("fashion-mnist", MACC_SPLIT_TRAIN, &tr, &e);
	uint64_t t1 = macc_now_ns();

	if (rc != 0) {
		print_error("%s\n", e.text);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(macc_dataset_load("fashion-mnist", MACC_SPLIT_TEST, &te, &e), 0);
	uint64_t t2 = macc_now_ns();

	printf("# fashion-mnist: train %zu x %zu in %.1f ms, test %zu in %.1f ms\n", tr.n, tr.dim,
	       (double)(t1 - t0) / 1e6, te.n, (double)(t2 - t1) / 1e6);
	assert_int_equal(tr.n, 60000);
	assert_int_equal(tr.dim, 784);
	assert_int_equal(tr.height, 28);
	assert_int_equal(tr.width, 28);
	assert_int_equal(tr.nclasses, 10);
	assert_int_equal(te.n, 10000);
	assert_int_equal(te.dim, 784);
	assert_int_equal(tr.y[0], 9); /* the first training image is an ankle boot */
	size_t hist[10] = {0};

	for (size_t i = 0; i < tr.n; i++) {
		assert_true(tr.y[i] >= 0 && tr.y[i] < 10);
		hist[tr.y[i]]++;
	}
	for (int c = 0; c < 10; c++) {
		assert_int_equal(hist[c], 6000);
	}
	for (size_t i = 0; i < te.n; i++) {
		assert_true(te.y[i] >= 0 && te.y[i] < 10);
	}
	float lo = 1.0f, hi = 0.0f;

	for (size_t i = 0; i < tr.n * tr.dim; i++) {
		lo = tr.x[i] < lo ? tr.x[i] : lo;
		hi = tr.x[i] > hi ? tr.x[i] : hi;
	}
	assert_true(lo == 0.0f);
	assert_true(hi == 1.0f);
	macc_dataset_finish(&tr);
	macc_dataset_finish(&te);
}

/* ---- standardisation ---- */

static void test_standardize(void **state)
{
	struct macc_dataset d = {0};
	float mean[3], sd[3];
	struct macc_rng r;

	(void)state;
	d.n = 50;
	d.channels = 3;
	d.height = 2;
	d.width = 2;
	d.dim = 12;
	d.x = malloc(d.n * d.dim * sizeof(float));
	d.y = calloc(d.n, sizeof(int32_t));
	macc_rng_seed(&r, 5, 0);
	for (size_t i = 0; i < d.n; i++) {
		for (size_t k = 0; k < d.dim; k++) {
			d.x[i * d.dim + k] = (float)((double)(k / 4) * 3.0 + macc_rng_uniform(&r));
		}
	}
	macc_dataset_channel_stats(&d, mean, sd);
	assert_true(fabsf(mean[2] - 6.5f) < 0.1f);
	macc_dataset_standardize(&d, mean, sd);
	macc_dataset_channel_stats(&d, mean, sd);
	for (int c = 0; c < 3; c++) {
		assert_true(fabsf(mean[c]) < 1e-4f);
		assert_true(fabsf(sd[c] - 1.0f) < 1e-3f);
	}
	/* Per feature, with one constant feature (std 0 is treated as 1). */
	float fm[12], fs[12];

	for (size_t i = 0; i < d.n; i++) {
		d.x[i * d.dim + 5] = 4.0f;
	}
	macc_dataset_feature_stats(&d, fm, fs);
	assert_true(fs[5] == 0.0f);
	macc_dataset_standardize_features(&d, fm, fs);
	macc_dataset_feature_stats(&d, fm, fs);
	for (int k = 0; k < 12; k++) {
		assert_true(fabsf(fm[k]) < 1e-4f);
		assert_true(k == 5 ? fs[k] == 0.0f : fabsf(fs[k] - 1.0f) < 1e-3f);
	}
	macc_dataset_finish(&d);
}

/* ---- partitions ---- */

static int32_t *make_labels_arr(size_t n, uint32_t nclasses, int balanced, uint64_t seed)
{
	int32_t *y = malloc(n * sizeof(int32_t));
	struct macc_rng r;

	macc_rng_seed(&r, seed, 9);
	for (size_t i = 0; i < n; i++) {
		y[i] = balanced ? (int32_t)(i % nclasses) : (int32_t)macc_rng_below(&r, nclasses);
	}
	return y;
}

static void check_disjoint_covering(const struct macc_partition *p, size_t n)
{
	uint8_t *seen = calloc(n, 1);

	assert_int_equal(p->offsets[0], 0);
	assert_int_equal(p->offsets[p->nagents], n);
	for (uint32_t a = 0; a < p->nagents; a++) {
		assert_true(p->offsets[a + 1] > p->offsets[a]); /* nobody empty */
		for (uint32_t i = p->offsets[a]; i < p->offsets[a + 1]; i++) {
			assert_true(p->indices[i] < n);
			assert_int_equal(seen[p->indices[i]], 0);
			seen[p->indices[i]] = 1;
			if (i > p->offsets[a]) {
				assert_true(p->indices[i] > p->indices[i - 1]);
			}
		}
	}
	free(seen);
}

static const char *const SCHEMES[] = {"iid", "label-shards:2", "label-shards:3",
				      "dirichlet:0.1", "dirichlet:1", "dirichlet:0.5,min=10"};

static void test_partition_disjoint_covering(void **state)
{
	const uint32_t agents[] = {1, 2, 3, 5, 7, 10, 16};
	const size_t sizes[] = {997, 1000};
	struct macc_errmsg e = {{0}};

	(void)state;
	for (size_t si = 0; si < 2; si++) {
		int32_t *y = make_labels_arr(sizes[si], 10, (int)si, 1);

		for (size_t s = 0; s < sizeof(SCHEMES) / sizeof(SCHEMES[0]); s++) {
			for (size_t ai = 0; ai < sizeof(agents) / sizeof(agents[0]); ai++) {
				struct macc_partition p = {0};
				int rc = macc_partition_make(y, sizes[si], 10, agents[ai], SCHEMES[s],
							     42, &p, &e);

				if (rc != 0) {
					print_error("%s N=%u: %s\n", SCHEMES[s], agents[ai], e.text);
				}
				assert_int_equal(rc, 0);
				assert_int_equal(p.nagents, agents[ai]);
				check_disjoint_covering(&p, sizes[si]);
				if (strcmp(SCHEMES[s], "iid") == 0) {
					for (uint32_t a = 0; a < p.nagents; a++) {
						uint32_t c = p.offsets[a + 1] - p.offsets[a];

						assert_true(c == sizes[si] / agents[ai] ||
							    c == sizes[si] / agents[ai] + 1);
					}
				}
				if (strstr(SCHEMES[s], "min=10") != NULL) {
					for (uint32_t a = 0; a < p.nagents; a++) {
						assert_true(p.offsets[a + 1] - p.offsets[a] >= 10);
					}
				}
				macc_partition_finish(&p);
			}
		}
		free(y);
	}
	macc_partition_finish(NULL);
}

static uint32_t distinct_labels(const struct macc_partition *p, const int32_t *y, uint32_t a)
{
	uint8_t seen[64] = {0};
	uint32_t k = 0;

	for (uint32_t i = p->offsets[a]; i < p->offsets[a + 1]; i++) {
		if (!seen[y[p->indices[i]]]) {
			seen[y[p->indices[i]]] = 1;
			k++;
		}
	}
	return k;
}

static void test_partition_label_shards_exact_k(void **state)
{
	const struct {
		uint32_t n, k;
	} cases[] = {{10, 2}, {5, 2}, {20, 1}, {4, 5}, {10, 10}, {2, 5}, {30, 3}};
	struct macc_errmsg e = {{0}};

	(void)state;
	for (int balanced = 0; balanced < 2; balanced++) {
		int32_t *y = make_labels_arr(3000, 10, balanced, 3);

		for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
			struct macc_partition p = {0};
			char scheme[32];

			snprintf(scheme, sizeof(scheme), "label-shards:%u", cases[c].k);
			assert_int_equal(macc_partition_make(y, 3000, 10, cases[c].n, scheme, 7, &p,
							     &e),
					 0);
			check_disjoint_covering(&p, 3000);
			for (uint32_t a = 0; a < p.nagents; a++) {
				assert_int_equal(distinct_labels(&p, y, a), cases[c].k);
			}
			macc_partition_finish(&p);
		}
		free(y);
	}
	/* Uneven (3 agents x 2 shards over 10 classes): still about K classes each. */
	int32_t *y = make_labels_arr(3000, 10, 1, 3);
	struct macc_partition p = {0};

	assert_int_equal(macc_partition_make(y, 3000, 10, 3, "label-shards:2", 7, &p, &e), 0);
	for (uint32_t a = 0; a < 3; a++) {
		uint32_t k = distinct_labels(&p, y, a);

		assert_true(k >= 2 && k <= 6);
	}
	macc_partition_finish(&p);
	free(y);
}

/* Mean over agents of the total-variation distance between the agent's label distribution and
 * the global one: 0 for perfectly IID shards, near 1 - 1/C for single-class shards. */
static double skew(const struct macc_partition *p, const int32_t *y, size_t n, uint32_t nc)
{
	double glob[64] = {0}, tv = 0.0;

	for (size_t i = 0; i < n; i++) {
		glob[y[i]] += 1.0 / (double)n;
	}
	for (uint32_t a = 0; a < p->nagents; a++) {
		double loc[64] = {0}, cnt = p->offsets[a + 1] - p->offsets[a], d = 0.0;

		for (uint32_t i = p->offsets[a]; i < p->offsets[a + 1]; i++) {
			loc[y[p->indices[i]]] += 1.0 / cnt;
		}
		for (uint32_t c = 0; c < nc; c++) {
			d += fabs(loc[c] - glob[c]);
		}
		tv += d / 2.0;
	}
	return tv / p->nagents;
}

static void test_partition_dirichlet_skew(void **state)
{
	const double alphas[] = {0.05, 0.3, 1.0, 10.0, 1000.0};
	double sk[5];
	int32_t *y = make_labels_arr(10000, 10, 1, 4);
	struct macc_errmsg e = {{0}};

	(void)state;
	for (int i = 0; i < 5; i++) {
		struct macc_partition p = {0};
		char scheme[32];

		snprintf(scheme, sizeof(scheme), "dirichlet:%g", alphas[i]);
		assert_int_equal(macc_partition_make(y, 10000, 10, 10, scheme, 11, &p, &e), 0);
		sk[i] = skew(&p, y, 10000, 10);
		printf("# dirichlet alpha %-6g: mean TV distance to global label mix %.3f\n",
		       alphas[i], sk[i]);
		macc_partition_finish(&p);
	}
	for (int i = 0; i < 4; i++) {
		assert_true(sk[i] > sk[i + 1]);
	}
	assert_true(sk[0] > 0.6);
	assert_true(sk[4] < 0.05);
	/* label-shards:1 is as skewed as it gets, iid hardly at all. */
	struct macc_partition p = {0};

	assert_int_equal(macc_partition_make(y, 10000, 10, 10, "label-shards:1", 11, &p, &e), 0);
	assert_true(fabs(skew(&p, y, 10000, 10) - 0.9) < 1e-9);
	macc_partition_finish(&p);
	assert_int_equal(macc_partition_make(y, 10000, 10, 10, "iid", 11, &p, &e), 0);
	assert_true(skew(&p, y, 10000, 10) < 0.05);
	macc_partition_finish(&p);

	/* Tiny alpha with many agents: nobody is left empty, and min=M is honoured. */
	assert_int_equal(macc_partition_make(y, 10000, 10, 100, "dirichlet:0.001", 1, &p, &e), 0);
	check_disjoint_covering(&p, 10000);
	macc_partition_finish(&p);
	assert_int_equal(
		macc_partition_make(y, 10000, 10, 100, "dirichlet:0.001,min=64", 1, &p, &e), 0);
	for (uint32_t a = 0; a < 100; a++) {
		assert_true(p.offsets[a + 1] - p.offsets[a] >= 64);
	}
	macc_partition_finish(&p);
	free(y);
}

static int same_partition(const struct macc_partition *a, const struct macc_partition *b,
			  size_t n)
{
	return memcmp(a->offsets, b->offsets, (a->nagents + 1) * sizeof(uint32_t)) == 0 &&
	       memcmp(a->indices, b->indices, n * sizeof(uint32_t)) == 0;
}

static void test_partition_seeds(void **state)
{
	int32_t *y = make_labels_arr(2000, 10, 0, 5);
	struct macc_errmsg e = {{0}};

	(void)state;
	for (size_t s = 0; s < sizeof(SCHEMES) / sizeof(SCHEMES[0]); s++) {
		struct macc_partition a = {0}, b = {0}, c = {0};

		assert_int_equal(macc_partition_make(y, 2000, 10, 5, SCHEMES[s], 100, &a, &e), 0);
		assert_int_equal(macc_partition_make(y, 2000, 10, 5, SCHEMES[s], 100, &b, &e), 0);
		assert_int_equal(macc_partition_make(y, 2000, 10, 5, SCHEMES[s], 101, &c, &e), 0);
		assert_true(same_partition(&a, &b, 2000));
		assert_false(same_partition(&a, &c, 2000));
		macc_partition_finish(&a);
		macc_partition_finish(&b);
		macc_partition_finish(&c);
	}
	free(y);
}

static void test_partition_errors(void **state)
{
	int32_t y[10] = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
	struct macc_partition p = {0};
	struct macc_errmsg e = {{0}};

	(void)state;
	expect_err(macc_partition_make(y, 10, 3, 2, "random", 1, &p, &e), MACC_ESPEC, &e,
		   "unknown partition scheme 'random'", NULL);
	expect_err(macc_partition_make(y, 10, 3, 2, "label-shards:4", 1, &p, &e), MACC_ESPEC, &e,
		   "K must be", NULL);
	expect_err(macc_partition_make(y, 10, 3, 2, "label-shards:", 1, &p, &e), MACC_ESPEC, &e,
		   "K must be", NULL);
	expect_err(macc_partition_make(y, 10, 3, 2, "dirichlet:-1", 1, &p, &e), MACC_ESPEC, &e,
		   "ALPHA", NULL);
	expect_err(macc_partition_make(y, 10, 3, 2, "dirichlet:1,max=3", 1, &p, &e), MACC_ESPEC,
		   &e, "min=M", NULL);
	expect_err(macc_partition_make(y, 10, 3, 2, "dirichlet:1,min=6", 1, &p, &e), MACC_ESPEC,
		   &e, "cannot give each of 2 agents 6", NULL);
	expect_err(macc_partition_make(y, 10, 3, 11, "iid", 1, &p, &e), MACC_ESPEC, &e,
		   "10 samples cannot give each of 11 agents", NULL);
	expect_err(macc_partition_make(y, 10, 3, 0, "iid", 1, &p, &e), MACC_ESPEC, &e,
		   "no agents", NULL);
	y[4] = 3;
	expect_err(macc_partition_make(y, 10, 3, 2, "label-shards:1", 1, &p, &e), MACC_EDATA, &e,
		   "label 3 of sample 4 out of range", NULL);
	/* Too few samples for the shards: an agent would be empty. */
	int32_t y2[4] = {0, 0, 1, 1};

	expect_err(macc_partition_make(y2, 4, 2, 4, "label-shards:2", 1, &p, &e), MACC_ESPEC, &e,
		   "gets no samples", NULL);
	assert_null(p.offsets);
}

/* ---- batcher ---- */

/* Sample i has x = (i, i + 0.5, ...) and label i % 10, so a batch identifies its samples. */
static void make_seq_data(struct macc_dataset *d, size_t n, size_t dim)
{
	memset(d, 0, sizeof(*d));
	d->n = n;
	d->dim = dim;
	d->channels = 1;
	d->height = 1;
	d->width = (uint32_t)dim;
	d->nclasses = 10;
	d->x = malloc(n * dim * sizeof(float));
	d->y = malloc(n * sizeof(int32_t));
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < dim; k++) {
			d->x[i * dim + k] = (float)i + 0.5f * (float)k;
		}
		d->y[i] = (int32_t)(i % 10);
	}
}

static void test_batcher_epochs(void **state)
{
	struct macc_dataset d;
	struct macc_batcher b;
	uint32_t shard[103];
	float x[8 * 3];
	int32_t y[8];
	uint8_t seen[1000];
	uint32_t first_epoch[96];

	(void)state;
	make_seq_data(&d, 1000, 3);
	for (int i = 0; i < 103; i++) {
		shard[i] = (uint32_t)(i * 9 + 1);
	}
	assert_int_equal(macc_batcher_init(&b, &d, shard, 103, 8, 77, MACC_STREAM_BATCH + 2), 0);
	assert_int_equal(macc_batcher_batches_per_epoch(&b), 12);
	for (int ep = 0; ep < 3; ep++) {
		int differs = 0;

		memset(seen, 0, sizeof(seen));
		for (int bi = 0; bi < 12; bi++) {
			macc_batcher_next(&b, x, y);
			for (int i = 0; i < 8; i++) {
				uint32_t s = (uint32_t)x[i * 3];

				assert_true(s % 9 == 1 && s < 103 * 9); /* in the shard */
				assert_int_equal(seen[s], 0);           /* no repeat in an epoch */
				seen[s] = 1;
				assert_true(x[i * 3 + 2] == (float)s + 1.0f);
				assert_int_equal(y[i], (int32_t)(s % 10));
				if (ep == 0) {
					first_epoch[bi * 8 + i] = s;
				} else {
					differs += first_epoch[bi * 8 + i] != s;
				}
			}
		}
		assert_int_equal(b.epoch, (uint64_t)ep + 1);
		assert_int_equal(b.pos, 0);
		if (ep > 0) {
			assert_true(differs > 50); /* reshuffled */
		}
	}
	macc_batcher_finish(&b);

	/* NULL shard = all samples; errors. */
	assert_int_equal(macc_batcher_init(&b, &d, NULL, 0, 64, 1, 0), 0);
	assert_int_equal(macc_batcher_batches_per_epoch(&b), 15);
	macc_batcher_finish(&b);
	assert_int_equal(macc_batcher_init(&b, &d, shard, 5, 8, 1, 0), MACC_ECONFIG);
	assert_int_equal(macc_batcher_init(&b, &d, shard, 5, 0, 1, 0), -EINVAL);
	shard[3] = 1000;
	assert_int_equal(macc_batcher_init(&b, &d, shard, 10, 2, 1, 0), MACC_EDATA);
	macc_batcher_finish(&b);
	macc_batcher_finish(NULL);
	macc_dataset_finish(&d);
}

static void test_batcher_state_roundtrip(void **state)
{
	struct macc_dataset d;
	struct macc_batcher a, b, c;
	struct macc_batcher_state st;
	enum { B = 16, DIM = 5, MORE = 40 };
	static float xa[MORE][B * DIM], xb[B * DIM];
	static int32_t ya[MORE][B], yb[B];

	(void)state;
	make_seq_data(&d, 500, DIM);
	assert_int_equal(macc_batcher_init(&a, &d, NULL, 0, B, 9, 3), 0);
	size_t bpe = macc_batcher_batches_per_epoch(&a); /* 31 */

	for (size_t i = 0; i < bpe * 5 / 2; i++) {
		macc_batcher_next(&a, xb, yb);
	}
	macc_batcher_get_state(&a, &st);
	assert_int_equal(st.epoch, 2);
	assert_int_equal(st.pos, bpe * 5 / 2 - 2 * bpe);
	for (int i = 0; i < MORE; i++) {
		macc_batcher_next(&a, xa[i], ya[i]);
	}
	/* A fresh batcher with another seed, restored, continues identically. */
	assert_int_equal(macc_batcher_init(&b, &d, NULL, 0, B, 12345, 99), 0);
	assert_int_equal(macc_batcher_set_state(&b, &st), 0);
	for (int i = 0; i < MORE; i++) {
		macc_batcher_next(&b, xb, yb);
		assert_memory_equal(xb, xa[i], sizeof(xb));
		assert_memory_equal(yb, ya[i], sizeof(yb));
	}
	assert_int_equal(a.epoch, b.epoch);
	assert_int_equal(a.pos, b.pos);
	/* Same seed and stream give the same sequence from the start; another stream does not. */
	struct macc_batcher s1, s2;
	float x1[B * DIM], x2[B * DIM];
	int32_t y1[B], y2[B];

	assert_int_equal(macc_batcher_init(&s1, &d, NULL, 0, B, 9, 3), 0);
	assert_int_equal(macc_batcher_init(&s2, &d, NULL, 0, B, 9, 4), 0);
	assert_int_equal(macc_batcher_init(&c, &d, NULL, 0, B, 9, 3), 0);
	int diff = 0;

	for (size_t i = 0; i < bpe * 2; i++) {
		macc_batcher_next(&s1, x1, y1);
		macc_batcher_next(&s2, x2, y2);
		macc_batcher_next(&c, xb, yb);
		assert_memory_equal(x1, xb, sizeof(x1));
		diff += memcmp(x1, x2, sizeof(x1)) != 0;
	}
	assert_true(diff > (int)bpe);
	st.pos = bpe;
	assert_int_equal(macc_batcher_set_state(&c, &st), MACC_ESTATE);
	macc_batcher_finish(&a);
	macc_batcher_finish(&b);
	macc_batcher_finish(&c);
	macc_batcher_finish(&s1);
	macc_batcher_finish(&s2);
	macc_dataset_finish(&d);
}

/* ---- CSV by column name, regression targets, header=, val= split, origin ---- */

static void test_csv_names_targets_header(void **state)
{
	static const char text[] = "temp, \"humidity\",load,label,price\n"
				   "20.5,0.3,1,2,100.5\n"
				   "21,0.4,2,0,101\n"
				   "19,0.5,3,1,99.25\n";
	struct macc_dataset d;
	struct macc_errmsg e = {{0}};
	struct macc_csv_opts o = {.label = "label"};

	(void)state;
	/* label by name: every other column is a feature, in file order */
	assert_int_equal(macc_dataset_parse_csv_opts(text, sizeof(text) - 1, "s.csv", &o, &d, &e),
			 0);
	assert_int_equal(d.n, 3);
	assert_int_equal(d.dim, 4);
	assert_int_equal(d.nclasses, 3);
	assert_int_equal(d.ntargets, 0);
	assert_null(d.t);
	assert_true(d.x[0] == 20.5f && d.x[1] == 0.3f && d.x[2] == 1.0f && d.x[3] == 100.5f);
	assert_true(d.y[0] == 2 && d.y[1] == 0 && d.y[2] == 1);
	macc_dataset_finish(&d);
	/* two regression targets by name and index (quoted header name), order as given */
	o = (struct macc_csv_opts){.targets = "price:humidity"};
	assert_int_equal(macc_dataset_parse_csv_opts(text, sizeof(text) - 1, "s.csv", &o, &d, &e),
			 0);
	assert_int_equal(d.dim, 3);
	assert_int_equal(d.ntargets, 2);
	assert_int_equal(d.nclasses, 0);
	assert_null(d.y);
	assert_true(d.t[0] == 100.5f && d.t[1] == 0.3f && d.t[4] == 99.25f && d.t[5] == 0.5f);
	assert_true(d.x[0] == 20.5f && d.x[1] == 1.0f && d.x[2] == 2.0f);
	macc_dataset_finish(&d);
	o = (struct macc_csv_opts){.targets = "-1"};
	assert_int_equal(macc_dataset_parse_csv_opts(text, sizeof(text) - 1, "s.csv", &o, &d, &e),
			 0);
	assert_true(d.ntargets == 1 && d.t[2] == 99.25f && d.dim == 4);
	macc_dataset_finish(&d);
	/* errors name the file and the column */
	o = (struct macc_csv_opts){.label = "nope"};
	expect_err(macc_dataset_parse_csv_opts(text, sizeof(text) - 1, "s.csv", &o, &d, &e),
		   MACC_EDATA, &e, "s.csv", "label column 'nope': no such name");
	o = (struct macc_csv_opts){.targets = "price:4"};
	expect_err(macc_dataset_parse_csv_opts(text, sizeof(text) - 1, "s.csv", &o, &d, &e),
		   MACC_ESPEC, &e, "target column 4 named twice", NULL);
	o = (struct macc_csv_opts){.targets = "0:1:2:3:4"};
	expect_err(macc_dataset_parse_csv_opts(text, sizeof(text) - 1, "s.csv", &o, &d, &e),
		   MACC_EDATA, &e, "no feature left", NULL);
	/* header=no: the names row is data, and not numeric; header=yes skips a numeric row */
	o = (struct macc_csv_opts){.header = MACC_CSV_HEADER_NO};
	expect_err(macc_dataset_parse_csv_opts(text, sizeof(text) - 1, "s.csv", &o, &d, &e),
		   MACC_EDATA, &e, "line 1, column 1: non-numeric cell 'temp'", NULL);
	static const char nums[] = "1,2,3\n4,5,1\n";

	o = (struct macc_csv_opts){.header = MACC_CSV_HEADER_YES};
	assert_int_equal(macc_dataset_parse_csv_opts(nums, sizeof(nums) - 1, "n.csv", &o, &d, &e),
			 0);
	assert_true(d.n == 1 && d.x[0] == 4.0f && d.y[0] == 1);
	macc_dataset_finish(&d);
	o = (struct macc_csv_opts){.targets = "2", .header = MACC_CSV_HEADER_AUTO};
	assert_int_equal(macc_dataset_parse_csv_opts(nums, sizeof(nums) - 1, "n.csv", &o, &d, &e),
			 0);
	assert_true(d.n == 2 && d.t[0] == 3.0f && d.t[1] == 1.0f);
	macc_dataset_finish(&d);
	/* a bad target cell is an error with its line and column */
	static const char badt[] = "a,b\n1,x\n";

	o = (struct macc_csv_opts){.targets = "b"};
	expect_err(macc_dataset_parse_csv_opts(badt, sizeof(badt) - 1, "t.csv", &o, &d, &e),
		   MACC_EDATA, &e, "line 2, column 2: non-numeric cell 'x'", NULL);
}

static void test_spec_val_split_and_origin(void **state)
{
	char text[4096], spec[1024];
	size_t len = 0;
	struct macc_dataset tr, te, d;
	struct macc_errmsg e = {{0}};

	(void)state;
	len += (size_t)snprintf(text + len, sizeof(text) - len, "x1,x2,y\n");
	for (int i = 0; i < 100; i++) {
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%d,%d,%d.5\n", i, -i, i);
	}
	const char *p = write_file("val.csv", text, len);

	/* without a test file the test split is the training data, and says so */
	snprintf(spec, sizeof(spec), "csv:%s,target=y", p);
	assert_int_equal(macc_dataset_load(spec, MACC_SPLIT_TEST, &te, &e), 0);
	assert_int_equal(te.origin, MACC_ORIGIN_TRAIN);
	assert_non_null(strstr(te.origin_text, "the training data"));
	assert_int_equal(te.n, 100);
	macc_dataset_finish(&te);
	/* val=0.2: 20 rows held out, disjoint from the other 80, both in file order */
	snprintf(spec, sizeof(spec), "csv:%s,target=y,val=0.2:7", p);
	assert_int_equal(macc_dataset_load(spec, MACC_SPLIT_TRAIN, &tr, &e), 0);
	assert_int_equal(macc_dataset_load(spec, MACC_SPLIT_TEST, &te, &e), 0);
	assert_int_equal(tr.n, 80);
	assert_int_equal(te.n, 20);
	assert_int_equal(te.origin, MACC_ORIGIN_VALIDATION);
	assert_non_null(strstr(te.origin_text, "validation split: 20 of 100 rows"));
	assert_int_equal(tr.origin, MACC_ORIGIN_FILE);
	int seen[100] = {0};

	for (size_t i = 0; i < tr.n; i++) {
		seen[(int)tr.x[i * 2]]++;
		assert_true(tr.t[i] == tr.x[i * 2] + 0.5f && tr.x[i * 2 + 1] == -tr.x[i * 2]);
		assert_true(i == 0 || tr.x[i * 2] > tr.x[(i - 1) * 2]);
	}
	for (size_t i = 0; i < te.n; i++) {
		seen[(int)te.x[i * 2]]++;
		assert_true(te.t[i] == te.x[i * 2] + 0.5f);
	}
	for (int i = 0; i < 100; i++) {
		assert_int_equal(seen[i], 1);
	}
	/* the same spec gives the same split; another seed another one */
	assert_int_equal(macc_dataset_load(spec, MACC_SPLIT_TEST, &d, &e), 0);
	assert_memory_equal(d.x, te.x, te.n * 2 * sizeof(float));
	macc_dataset_finish(&d);
	snprintf(spec, sizeof(spec), "csv:%s,target=y,val=0.2:8", p);
	assert_int_equal(macc_dataset_load(spec, MACC_SPLIT_TEST, &d, &e), 0);
	assert_memory_not_equal(d.x, te.x, te.n * 2 * sizeof(float));
	macc_dataset_finish(&d);
	macc_dataset_finish(&tr);
	macc_dataset_finish(&te);
	/* a test file as well, or a fraction outside (0, 1): errors naming the spec */
	snprintf(spec, sizeof(spec), "csv:%s;%s,val=0.2", p, p);
	expect_err(macc_dataset_load(spec, MACC_SPLIT_TEST, &d, &e), MACC_ESPEC, &e,
		   "val= and a test file exclude each other", NULL);
	snprintf(spec, sizeof(spec), "csv:%s,val=1.5", p);
	expect_err(macc_dataset_load(spec, MACC_SPLIT_TEST, &d, &e), MACC_ESPEC, &e,
		   "val=F needs a fraction", NULL);
	snprintf(spec, sizeof(spec), "csv:%s,target=y,val=0.001", p);
	expect_err(macc_dataset_load(spec, MACC_SPLIT_TEST, &d, &e), MACC_ESPEC, &e,
		   "empty validation split", NULL);
	snprintf(spec, sizeof(spec), "csv:%s,label=y,target=x1", p);
	expect_err(macc_dataset_load(spec, MACC_SPLIT_TRAIN, &d, &e), MACC_ESPEC, &e,
		   "exclude each other", NULL);
	snprintf(spec, sizeof(spec), "csv:%s,colour=red", p);
	expect_err(macc_dataset_load(spec, MACC_SPLIT_TRAIN, &d, &e), MACC_ESPEC, &e,
		   "bad option 'colour=red'", NULL);
	/* with a test file: each split is its own file */
	snprintf(spec, sizeof(spec), "csv:%s;%s,header=yes,label=-1", p, p);
	assert_int_equal(macc_dataset_load(spec, MACC_SPLIT_TEST, &d, &e), MACC_EDATA);
	snprintf(spec, sizeof(spec), "csv:%s;%s,header=yes,target=-1", p, p);
	assert_int_equal(macc_dataset_load(spec, MACC_SPLIT_TEST, &d, &e), 0);
	assert_int_equal(d.origin, MACC_ORIGIN_FILE);
	assert_non_null(strstr(d.origin_text, "test set of"));
	macc_dataset_finish(&d);
}

static void test_regression_batcher_partition(void **state)
{
	static const char text[] = "a,b,t\n1,2,3\n4,5,6\n7,8,9\n10,11,12\n";
	struct macc_csv_opts o = {.targets = "t"};
	struct macc_dataset d;
	struct macc_errmsg e = {{0}};
	struct macc_partition p = {0};
	struct macc_batcher b;
	float x[4], t[2];
	int32_t y[2] = {-7, -7};

	(void)state;
	assert_int_equal(macc_dataset_parse_csv_opts(text, sizeof(text) - 1, "r.csv", &o, &d, &e),
			 0);
	assert_int_equal(macc_partition_make(d.y, d.n, d.nclasses, 2, "iid", 1, &p, &e), 0);
	macc_partition_finish(&p);
	expect_err(macc_partition_make(d.y, d.n, d.nclasses, 2, "dirichlet:0.5", 1, &p, &e),
		   MACC_ESPEC, &e, "needs class labels", NULL);
	expect_err(macc_partition_make(d.y, d.n, d.nclasses, 2, "label-shards:1", 1, &p, &e),
		   MACC_ESPEC, &e, "needs class labels", NULL);
	assert_int_equal(macc_batcher_init(&b, &d, NULL, 0, 2, 3, MACC_STREAM_BATCH), 0);
	for (int k = 0; k < 4; k++) {
		macc_batcher_next_t(&b, x, y, t);
		for (int i = 0; i < 2; i++) {
			/* every target travels with its row: t = a + 2 */
			assert_true(t[i] == x[i * 2] + 2.0f && x[i * 2 + 1] == x[i * 2] + 1.0f);
		}
	}
	assert_true(y[0] == -7 && y[1] == -7); /* no labels: y left alone */
	macc_batcher_next(&b, x, y);           /* the classification call is safe too */
	macc_batcher_finish(&b);
	macc_dataset_finish(&d);
}

/* Statistics of shards averaged like consensus does give the global transform. */
static void test_feature_stats_and_standardizer(void **state)
{
	const size_t n = 200, dim = 3;
	struct macc_dataset d = {.n = n, .dim = dim, .channels = 1, .height = 1,
				 .width = (uint32_t)dim};
	double all[7], s1[7], s2[7], avg[7];
	float mean[3], inv[3], gm[3], gi[3];
	uint32_t idx1[150], idx2[50];

	(void)state;
	d.x = malloc(n * dim * sizeof(float));
	assert_non_null(d.x);
	for (size_t i = 0; i < n; i++) {
		d.x[i * dim] = 20.0f + (float)(i % 7);        /* mean 23-ish, var 4-ish */
		d.x[i * dim + 1] = 5.0f;                      /* constant */
		d.x[i * dim + 2] = (float)i * 0.01f - 1.0f;
	}
	assert_int_equal(macc_feature_stats_len(dim), 7);
	macc_feature_stats_compute(&d, NULL, 0, all);
	assert_true(all[0] == 200.0);
	for (size_t i = 0; i < 150; i++) {
		idx1[i] = (uint32_t)i;
	}
	for (size_t i = 0; i < 50; i++) {
		idx2[i] = (uint32_t)(150 + i);
	}
	macc_feature_stats_compute(&d, idx1, 150, s1);
	macc_feature_stats_compute(&d, idx2, 50, s2);
	for (size_t k = 0; k < 7; k++) {
		avg[k] = 0.5 * (s1[k] + s2[k]); /* what average consensus converges to */
	}
	macc_standardizer_from_stats(all, dim, mean, inv);
	macc_standardizer_from_stats(avg, dim, gm, gi);
	for (size_t k = 0; k < dim; k++) {
		assert_true(fabsf(mean[k] - gm[k]) <= 1e-6f * fabsf(mean[k]));
		assert_true(fabsf(inv[k] - gi[k]) <= 1e-6f * inv[k]);
	}
	assert_true(mean[1] == 5.0f && inv[1] == 1.0f); /* zero variance: centred only */
	/* the direct two-pass statistics agree */
	double m0 = 0.0, v0 = 0.0;

	for (size_t i = 0; i < n; i++) {
		m0 += d.x[i * dim];
	}
	m0 /= (double)n;
	for (size_t i = 0; i < n; i++) {
		v0 += (d.x[i * dim] - m0) * (d.x[i * dim] - m0);
	}
	v0 /= (double)n;
	assert_true(fabs(mean[0] - m0) < 1e-5 && fabs(inv[0] - 1.0 / sqrt(v0)) < 1e-5);
	macc_dataset_apply_standardizer(&d, mean, inv);
	macc_feature_stats_compute(&d, NULL, 0, all);
	assert_true(fabs(all[1] / 200.0) < 1e-5 && fabs(all[4] / 200.0 - 1.0) < 1e-4);
	assert_true(fabs(all[2]) < 1e-9 && all[5] == 0.0); /* the constant became 0 */
	/* count 0: the identity */
	memset(all, 0, sizeof(all));
	macc_standardizer_from_stats(all, dim, mean, inv);
	assert_true(mean[0] == 0.0f && inv[0] == 1.0f);
	free(d.x);
}

/* Rows to score: a CSV with label=none (every column a feature, even just one) and an IDX
 * images file without a labels file, by spec and directly. */
static void test_unlabelled(void **state)
{
	uint8_t img[256];
	size_t il = make_images(img, 3, 4, 4);
	struct macc_dataset d = {0};
	struct macc_errmsg e = {{0}};
	char spec[600];
	const char *csv = "a,b,c\n1,2,3\n4,5,6\n";

	(void)state;
	const char *ip = write_file("only-images.idx", img, il);

	assert_int_equal(macc_dataset_load_idx(ip, NULL, &d, &e), 0);
	assert_int_equal(d.n, 3);
	assert_int_equal(d.dim, 16);
	assert_null(d.y);
	assert_int_equal(d.nclasses, 0);
	macc_dataset_finish(&d);
	snprintf(spec, sizeof(spec), "idx:%s", ip);
	assert_int_equal(macc_dataset_load(spec, MACC_SPLIT_TEST, &d, &e), 0);
	assert_int_equal(d.n, 3);
	assert_null(d.y);
	assert_true(d.x[17] == 8.0f / 255.0f);
	macc_dataset_finish(&d);

	const char *cp = write_file("rows.csv", csv, strlen(csv));

	snprintf(spec, sizeof(spec), "csv:%s,label=none", cp);
	assert_int_equal(macc_dataset_load(spec, MACC_SPLIT_TEST, &d, &e), 0);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.dim, 3);
	assert_null(d.y);
	assert_null(d.t);
	assert_int_equal(d.nclasses, 0);
	assert_true(d.x[5] == 6.0f);
	/* rows to score, not to train on: the data check says so */
	struct macc_model *m;

	assert_int_equal(macc_model_create("input:3,dense:2", 1, &m, &e), 0);
	expect_err(macc_model_check_data(m, "input:3,dense:2", &d, NULL, "rows", &e), MACC_EMODEL,
		   &e, "data 'rows' has no labels", "label=none");
	macc_model_destroy(m);
	macc_dataset_finish(&d);
	struct macc_csv_opts o = {.label = "none"};

	assert_int_equal(macc_dataset_parse_csv_opts("7\n8\n", 4, "one.csv", &o, &d, &e), 0);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.dim, 1);
	assert_true(d.x[1] == 8.0f);
	macc_dataset_finish(&d);
	/* without label=none one column is still refused */
	expect_err(macc_dataset_parse_csv_opts("7\n8\n", 4, "one.csv", NULL, &d, &e), MACC_EDATA,
		   &e, "one.csv: line 1", "only 1 column");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idx_plain_and_gzip),
		cmocka_unit_test(test_idx_bad_magic),
		cmocka_unit_test(test_idx_wrong_dimensions),
		cmocka_unit_test(test_idx_count_mismatch),
		cmocka_unit_test(test_idx_truncated_and_trailing),
		cmocka_unit_test(test_idx_truncated_or_corrupt_gzip),
		cmocka_unit_test(test_idx_label_out_of_range),
		cmocka_unit_test(test_idx_empty_and_missing),
		cmocka_unit_test(test_idx_huge_dims_refused),
		cmocka_unit_test(test_gunzip_bomb_and_members),
		cmocka_unit_test(test_cifar_valid),
		cmocka_unit_test(test_cifar_bad),
		cmocka_unit_test(test_csv_valid),
		cmocka_unit_test(test_csv_bad),
		cmocka_unit_test(test_spec_csv_idx_cifar),
		cmocka_unit_test(test_fashion_mnist_real),
		cmocka_unit_test(test_standardize),
		cmocka_unit_test(test_partition_disjoint_covering),
		cmocka_unit_test(test_partition_label_shards_exact_k),
		cmocka_unit_test(test_partition_dirichlet_skew),
		cmocka_unit_test(test_partition_seeds),
		cmocka_unit_test(test_partition_errors),
		cmocka_unit_test(test_batcher_epochs),
		cmocka_unit_test(test_batcher_state_roundtrip),
		cmocka_unit_test(test_csv_names_targets_header),
		cmocka_unit_test(test_spec_val_split_and_origin),
		cmocka_unit_test(test_regression_batcher_partition),
		cmocka_unit_test(test_feature_stats_and_standardizer),
		cmocka_unit_test(test_unlabelled),
	};

	return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
