/*
 * test_audit.c - the audit trail (src/proto/audit.c): signed STATE texts, append (which refuses
 * what does not verify), the line format round trip, rotation and its bound, the evidence bound,
 * listing, and the offline verifier on a good log and on a flipped byte, a wrong key, a swapped
 * evidence body and a truncated file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macc/audit.h"
#include "macc/crypto.h"
#include "macc/proto.h"

#define BODY 3000

struct fx {
	char dir[64];
	struct macc_identity sender, receiver;
	uint8_t body[BODY];
};

static void rm_tree(const char *d)
{
	DIR *dd = opendir(d);
	struct dirent *de;

	if (dd == NULL) {
		return;
	}
	while ((de = readdir(dd)) != NULL) {
		char p[512];
		struct stat sb;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
			continue;
		}
		snprintf(p, sizeof(p), "%s/%s", d, de->d_name);
		if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
			rm_tree(p);
		} else {
			unlink(p);
		}
	}
	closedir(dd);
	rmdir(d);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/macc-test-audit-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(macc_crypto_init(), 0);
	assert_int_equal(macc_identity_generate(&f->sender), 0);
	assert_int_equal(macc_identity_generate(&f->receiver), 0);
	for (size_t i = 0; i < BODY; i++) {
		f->body[i] = (uint8_t)(i * 7 + 1);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	rm_tree(f->dir);
	macc_identity_finish(&f->sender);
	macc_identity_finish(&f->receiver);
	free(f);
	return 0;
}

/* An entry as the daemon makes it: the signed text of (round, body) and its real signature. */
static void make_entry(struct fx *f, uint64_t round, const uint8_t *body, size_t len,
		       struct macc_audit_entry *e)
{
	uint8_t digest[MACC_DIGEST_BYTES], sn[MACC_NONCE_BYTES], rn[MACC_NONCE_BYTES];

	memset(e, 0, sizeof(*e));
	memset(sn, 0x11, sizeof(sn));
	memset(rn, 0x22, sizeof(rn));
	macc_blake2b(digest, sizeof(digest), body, len);
	macc_state_signed_text(&f->sender.pub, &f->receiver.pub, sn, rn, round, digest, e->text);
	macc_sign(&f->sender, e->text, sizeof(e->text), e->sig);
	e->key = f->sender.pub;
	snprintf(e->reason, sizeof(e->reason), "distance");
	snprintf(e->peer, sizeof(e->peer), "bad-peer");
}

static struct macc_audit *open_log(struct fx *f, uint64_t max_bytes, uint32_t files, bool ev,
				   uint64_t ev_max)
{
	struct macc_audit_opts o = {
		.dir = f->dir, .max_bytes = max_bytes, .files = files, .evidence = ev,
		.evidence_max_bytes = ev_max,
	};
	struct macc_audit *l = NULL;
	struct macc_errmsg e;

	assert_int_equal(macc_audit_open(&o, &l, &e), 0);
	return l;
}

static void path_of(const struct fx *f, const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", f->dir, name);
}

static long file_size(const char *p)
{
	struct stat sb;

	return stat(p, &sb) == 0 ? (long)sb.st_size : -1;
}

/* The signed text: layout, verification, and what it refuses. */
static void test_signed_text(void **state)
{
	struct fx *f = *state;
	struct macc_audit_entry e;
	struct macc_errmsg err;
	uint64_t round = 0;

	make_entry(f, 0x0102030405060708ull, f->body, BODY, &e);
	assert_memory_equal(e.text, "macc/2/state", 12);
	assert_memory_equal(e.text + MACC_STATE_SIGNED_SENDER, f->sender.pub.bytes, 32);
	assert_memory_equal(e.text + MACC_STATE_SIGNED_RECEIVER, f->receiver.pub.bytes, 32);
	assert_int_equal(e.text[MACC_STATE_SIGNED_ROUND - 1], MACC_MSG_STATE);
	assert_int_equal(e.text[MACC_STATE_SIGNED_ROUND], 1);
	assert_int_equal(e.text[MACC_STATE_SIGNED_ROUND + 7], 8);
	assert_int_equal(macc_state_signed_verify(&f->sender.pub, e.text, sizeof(e.text), e.sig,
						  f->body, BODY, &round, &err), 0);
	assert_true(round == 0x0102030405060708ull);
	/* without a body: the signature alone */
	assert_int_equal(macc_state_signed_verify(&f->sender.pub, e.text, sizeof(e.text), e.sig,
						  NULL, 0, NULL, &err), 0);
	/* a body that is not the one signed */
	f->body[5] ^= 1;
	assert_int_equal(macc_state_signed_verify(&f->sender.pub, e.text, sizeof(e.text), e.sig,
						  f->body, BODY, NULL, &err), MACC_EBADSIG);
	f->body[5] ^= 1;
	/* another key, a changed text, a short text */
	assert_int_equal(macc_state_signed_verify(&f->receiver.pub, e.text, sizeof(e.text), e.sig,
						  NULL, 0, NULL, &err), MACC_EMALFORMED);
	e.text[MACC_STATE_SIGNED_ROUND + 7] ^= 1;
	assert_int_equal(macc_state_signed_verify(&f->sender.pub, e.text, sizeof(e.text), e.sig,
						  NULL, 0, NULL, &err), MACC_EBADSIG);
	assert_int_equal(macc_state_signed_verify(&f->sender.pub, e.text, 100, e.sig, NULL, 0,
						  NULL, &err), MACC_EMALFORMED);
}

/* Append verifies first: nothing is written for a bad signature or a body that does not match. */
static void test_append_refuses_unverified(void **state)
{
	struct fx *f = *state;
	struct macc_audit *l = open_log(f, 1 << 20, 2, false, 0);
	struct macc_audit_entry e;
	struct macc_errmsg err;
	struct macc_audit_stats st;
	char p[256];

	make_entry(f, 5, f->body, BODY, &e);
	e.sig[0] ^= 0x80;
	assert_int_equal(macc_audit_append(l, &e, f->body, BODY, &err), MACC_EBADSIG);
	make_entry(f, 5, f->body, BODY, &e);
	assert_int_equal(macc_audit_append(l, &e, f->body, BODY - 1, &err), MACC_EBADSIG);
	assert_int_equal(macc_audit_append(l, &e, NULL, 0, &err), MACC_EMALFORMED);
	macc_audit_get_stats(l, &st);
	assert_int_equal(st.entries, 0);
	path_of(f, MACC_AUDIT_FILE, p, sizeof(p));
	assert_true(file_size(p) <= 0);
	assert_int_equal(macc_audit_append(l, &e, f->body, BODY, &err), 0);
	assert_int_equal(e.seq, 1);
	assert_int_equal(e.round, 5);
	assert_true(e.time_ms > 0);
	macc_audit_close(l);
}

/* Format and parse are inverse; the check field catches a changed unsigned field. */
static void test_format_parse(void **state)
{
	struct fx *f = *state;
	struct macc_audit_entry e, back;
	struct macc_errmsg err;
	char line[MACC_AUDIT_LINE_MAX];
	int n;

	make_entry(f, 77, f->body, BODY, &e);
	e.seq = 12;
	e.time_ms = 1700000000123ull;
	e.round = 77;
	e.body_len = BODY;
	snprintf(e.evidence, sizeof(e.evidence), "00000000000000000012.body");
	n = macc_audit_format(&e, line, sizeof(line));
	assert_true(n > 0 && n < MACC_AUDIT_LINE_MAX);
	assert_int_equal(line[n - 1], '\n');
	assert_int_equal(macc_audit_parse(line, (size_t)n, &back, &err), 0);
	assert_memory_equal(&back, &e, sizeof(e));
	/* reason is not signed: the check catches it */
	line[strstr(line, "reason=") - line + 7] = 'e';
	assert_int_equal(macc_audit_parse(line, (size_t)n, &back, &err), MACC_EMALFORMED);
	assert_non_null(strstr(err.text, "check"));
	/* a name the format cannot hold */
	snprintf(e.peer, sizeof(e.peer), "two words");
	assert_int_equal(macc_audit_format(&e, line, sizeof(line)), MACC_EMALFORMED);
	assert_int_equal(macc_audit_format(&e, line, 10), MACC_EMALFORMED);
	snprintf(e.peer, sizeof(e.peer), "ok");
	assert_int_equal(macc_audit_format(&e, line, 10), -ENOSPC);
	assert_int_equal(macc_audit_parse("macc-audit/1 seq=01", 19, &back, &err),
			 MACC_EMALFORMED);
}

/* Writes, rotation, the size bound, numbering across rotations and reopen, listing, verifying. */
static void test_rotate_bound_list(void **state)
{
	struct fx *f = *state;
	const uint64_t max = 4096;
	struct macc_audit *l = open_log(f, max, 3, false, 0);
	struct macc_audit_entry e, *list = NULL;
	struct macc_audit_stats st;
	struct macc_audit_verify v;
	struct macc_errmsg err;
	size_t n = 0;
	uint64_t total = 0, bad = 0;
	char p[256];

	for (uint64_t r = 0; r < 40; r++) {
		make_entry(f, r, f->body, BODY - (size_t)r, &e);
		assert_int_equal(macc_audit_append(l, &e, f->body, BODY - (size_t)r, &err), 0);
		assert_int_equal(e.seq, r + 1);
	}
	macc_audit_get_stats(l, &st);
	assert_int_equal(st.entries, 40);
	assert_true(st.rotations > 0);
	path_of(f, MACC_AUDIT_FILE, p, sizeof(p));
	assert_true(file_size(p) > 0 && file_size(p) <= (long)max);
	path_of(f, MACC_AUDIT_FILE ".1", p, sizeof(p));
	assert_true(file_size(p) > 0 && file_size(p) <= (long)max);
	path_of(f, MACC_AUDIT_FILE ".2", p, sizeof(p));
	assert_true(file_size(p) > 0 && file_size(p) <= (long)max);
	path_of(f, MACC_AUDIT_FILE ".3", p, sizeof(p));
	assert_int_equal(file_size(p), -1); /* 3 files in all */
	macc_audit_close(l);

	/* list: oldest first, the newest entries, the total of what the files still hold */
	assert_int_equal(macc_audit_list(f->dir, 3, 5, &list, &n, &total, &bad, &err), 0);
	assert_int_equal(n, 5);
	assert_int_equal(bad, 0);
	assert_true(total < 40 && total >= 15);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(list[i].seq, 36 + i);
		assert_int_equal(list[i].round, 35 + i);
		assert_string_equal(list[i].peer, "bad-peer");
	}
	free(list);

	/* numbering continues after a reopen */
	l = open_log(f, max, 3, false, 0);
	make_entry(f, 99, f->body, BODY, &e);
	assert_int_equal(macc_audit_append(l, &e, f->body, BODY, &err), 0);
	assert_int_equal(e.seq, 41);
	macc_audit_close(l);

	path_of(f, MACC_AUDIT_FILE, p, sizeof(p));
	assert_int_equal(macc_audit_verify_file(p, NULL, &v, &err), 0);
	assert_true(v.entries > 0);
	path_of(f, MACC_AUDIT_FILE ".2", p, sizeof(p));
	assert_int_equal(macc_audit_verify_file(p, NULL, &v, &err), 0);
}

/* Evidence: stored, checked by the verifier, bounded (oldest pruned), too-big skipped. */
static void test_evidence(void **state)
{
	struct fx *f = *state;
	struct macc_audit *l = open_log(f, 1 << 20, 2, true, 3 * BODY);
	struct macc_audit_entry e;
	struct macc_audit_stats st;
	struct macc_audit_verify v;
	struct macc_errmsg err;
	uint8_t big[4 * BODY];
	char p[600], ev[256];
	long total = 0;
	DIR *d;
	struct dirent *de;

	for (uint64_t r = 0; r < 6; r++) {
		f->body[0] = (uint8_t)r;
		make_entry(f, r, f->body, BODY, &e);
		assert_int_equal(macc_audit_append(l, &e, f->body, BODY, &err), 0);
		assert_true(e.evidence[0] != '\0');
	}
	memset(big, 3, sizeof(big));
	make_entry(f, 6, big, sizeof(big), &e);
	assert_int_equal(macc_audit_append(l, &e, big, sizeof(big), &err), 0);
	assert_string_equal(e.evidence, ""); /* larger than the whole bound */
	macc_audit_get_stats(l, &st);
	assert_int_equal(st.evidence_files, 6);
	assert_int_equal(st.evidence_skipped, 1);
	assert_int_equal(st.pruned, 3);
	macc_audit_close(l);
	path_of(f, MACC_AUDIT_EVIDENCE_DIR, ev, sizeof(ev));
	d = opendir(ev);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.') {
			snprintf(p, sizeof(p), "%s/%s", ev, de->d_name);
			total += file_size(p);
		}
	}
	closedir(d);
	assert_int_equal(total, 3 * BODY);

	path_of(f, MACC_AUDIT_FILE, p, sizeof(p));
	assert_int_equal(macc_audit_verify_file(p, ev, &v, &err), 0);
	assert_int_equal(v.entries, 7);
	assert_int_equal(v.evidence_checked, 3);
	assert_int_equal(v.evidence_missing, 3);

	/* a body swapped for another one of the same length: the digest does not match */
	{
		char a[320], b[320];
		FILE *fa;
		uint8_t other[BODY];

		snprintf(a, sizeof(a), "%s/%020d.body", ev, 6);
		snprintf(b, sizeof(b), "%s/%020d.body", ev, 5);
		fa = fopen(b, "rb");
		assert_non_null(fa);
		assert_int_equal(fread(other, 1, BODY, fa), BODY);
		fclose(fa);
		fa = fopen(a, "wb");
		assert_non_null(fa);
		assert_int_equal(fwrite(other, 1, BODY, fa), BODY);
		fclose(fa);
	}
	assert_int_equal(macc_audit_verify_file(p, ev, &v, &err), MACC_EBADSIG);
	assert_non_null(strstr(err.text, "seq 6"));
	assert_non_null(strstr(err.text, "digest"));
}

/* Copy the log to `dst` with one change applied by fn. */
static void copy_with(const char *src, const char *dst, void (*fn)(char *buf, size_t *len))
{
	static char buf[1 << 16];
	size_t len;
	FILE *f = fopen(src, "rb");

	assert_non_null(f);
	len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	fn(buf, &len);
	f = fopen(dst, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	fclose(f);
}

/* Flip one hex digit of the second entry's signature. */
static void flip_sig(char *buf, size_t *len)
{
	char *second = strchr(buf, '\n') + 1;
	char *sig = strstr(second, " sig=") + 5;

	(void)len;
	*sig = *sig == '0' ? '1' : '0';
}

/* Flip a byte of the signed text's round field (hex digits). */
static void flip_text(char *buf, size_t *len)
{
	char *second = strchr(buf, '\n') + 1;
	char *t = strstr(second, " signed=") + 8 + 2 * MACC_STATE_SIGNED_ROUND + 15;

	(void)len;
	*t = *t == '0' ? '1' : '0';
}

static void cut_tail(char *buf, size_t *len)
{
	(void)buf;
	*len -= 30;
}

static char g_other_key[MACC_KEY_B64_SIZE];

/* Put another (valid) public key on the second entry, and recompute its check, as a forger
 * would: the signature must still fail. */
static void swap_key(char *buf, size_t *len)
{
	char *second = strchr(buf, '\n') + 1;
	char *end = strchr(second, '\n');
	struct macc_audit_entry e;
	char line[MACC_AUDIT_LINE_MAX];
	char rest[1 << 16];
	int n;

	assert_int_equal(macc_audit_parse(second, (size_t)(end + 1 - second), &e, NULL), 0);
	assert_int_equal(macc_pubkey_from_b64(&e.key, g_other_key, NULL), 0);
	n = macc_audit_format(&e, line, sizeof(line));
	assert_true(n > 0);
	snprintf(rest, sizeof(rest), "%.*s", (int)(buf + *len - (end + 1)), end + 1);
	memcpy(second, line, (size_t)n);
	memcpy(second + n, rest, strlen(rest));
	*len = (size_t)(second - buf) + (size_t)n + strlen(rest);
}

static void test_verify_tampered(void **state)
{
	struct fx *f = *state;
	struct macc_audit *l = open_log(f, 1 << 20, 2, false, 0);
	struct macc_audit_entry e;
	struct macc_audit_verify v;
	struct macc_errmsg err;
	char p[256], q[256];

	for (uint64_t r = 10; r < 14; r++) {
		make_entry(f, r, f->body, BODY, &e);
		assert_int_equal(macc_audit_append(l, &e, f->body, BODY, &err), 0);
	}
	macc_audit_close(l);
	path_of(f, MACC_AUDIT_FILE, p, sizeof(p));
	path_of(f, "copy.log", q, sizeof(q));
	assert_int_equal(macc_audit_verify_file(p, NULL, &v, &err), 0);
	assert_int_equal(v.entries, 4);

	copy_with(p, q, flip_sig);
	assert_int_not_equal(macc_audit_verify_file(q, NULL, &v, &err), 0);
	assert_non_null(strstr(err.text, "entry 2 (line 2"));
	assert_int_equal(v.entries, 1);

	copy_with(p, q, flip_text);
	assert_int_not_equal(macc_audit_verify_file(q, NULL, &v, &err), 0);
	assert_non_null(strstr(err.text, "entry 2 (line 2"));

	macc_pubkey_to_b64(&f->receiver.pub, g_other_key);
	copy_with(p, q, swap_key);
	assert_int_equal(macc_audit_verify_file(q, NULL, &v, &err), MACC_EMALFORMED);
	assert_non_null(strstr(err.text, "entry 2 (line 2"));
	assert_non_null(strstr(err.text, "another sender"));

	copy_with(p, q, cut_tail);
	assert_int_equal(macc_audit_verify_file(q, NULL, &v, &err), MACC_EMALFORMED);
	assert_non_null(strstr(err.text, "entry 4 (line 4): truncated"));
	assert_int_equal(v.entries, 3);

	path_of(f, "missing.log", q, sizeof(q));
	assert_int_equal(macc_audit_verify_file(q, NULL, &v, &err), -ENOENT);
	assert_non_null(strstr(err.text, "missing.log"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_signed_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_refuses_unverified, setup, teardown),
		cmocka_unit_test_setup_teardown(test_format_parse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotate_bound_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evidence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_tampered, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
