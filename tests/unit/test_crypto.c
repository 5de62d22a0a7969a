/*
 * test_crypto.c - identities, key text and key files, signatures, BLAKE2b, and the session
 * encryption primitives (X25519 key exchange, KDF, the AEAD suites XChaCha20-Poly1305 and
 * AES-256-GCM).
 *
 * Known-answer tests use published vectors (RFC 8032 test 1 for Ed25519, RFC 7693 "abc" for
 * BLAKE2b-512), so a wrong algorithm or parameter cannot pass. Key-file tests work in a fresh
 * temporary directory and check the modes on disk, and that loose modes are refused with a
 * message naming the file and its mode.
 *
 * The one-pass scattered seal (macc_aead_seal_iov, on OpenSSL's libcrypto) is held against
 * libsodium's own one-shot implementation of each suite (macc_aead_seal for XChaCha20-Poly1305,
 * macc_aead_seal_ref_aes256gcm for AES-256-GCM where libsodium runs it) byte for byte, over
 * every way of splitting messages of awkward lengths into segments, and opened again; published
 * vectors (draft-irtf-cfrg-xchacha A.3.1, GCM test case 16) pin both suites independently of
 * either library.
 */
#include <errno.h>
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

#include "macc/crypto.h"

static void hex(uint8_t *out, const char *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		sscanf(h + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
}

static const char rfc_seed[] = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char rfc_pub[] = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
static const char rfc_sig[] = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555f"
			      "b8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

static void test_ed25519_known_answer(void **state)
{
	uint8_t seed[32], pub[32], sig[64], got[64];
	struct macc_identity id;

	(void)state;
	hex(seed, rfc_seed, 32);
	hex(pub, rfc_pub, 32);
	hex(sig, rfc_sig, 64);
	assert_int_equal(macc_identity_from_seed(&id, seed), 0);
	assert_true(id.loaded);
	assert_memory_equal(id.pub.bytes, pub, 32);
	macc_sign(&id, "", 0, got);
	assert_memory_equal(got, sig, 64);
	assert_int_equal(macc_verify(&id.pub, "", 0, got), 0);
	got[10] ^= 0x04;
	assert_int_equal(macc_verify(&id.pub, "", 0, got), MACC_EBADSIG);
	macc_identity_finish(&id);
	assert_false(id.loaded);
	for (size_t i = 0; i < sizeof(id.secret); i++) {
		assert_int_equal(id.secret[i], 0);
	}
}

static void test_sign_verify(void **state)
{
	struct macc_identity a, b;
	uint8_t msg[1000], sig[64];

	(void)state;
	assert_int_equal(macc_identity_generate(&a), 0);
	assert_int_equal(macc_identity_generate(&b), 0);
	assert_false(macc_pubkey_equal(&a.pub, &b.pub));
	macc_random_bytes(msg, sizeof(msg));
	macc_sign(&a, msg, sizeof(msg), sig);
	assert_int_equal(macc_verify(&a.pub, msg, sizeof(msg), sig), 0);
	assert_int_equal(macc_verify(&b.pub, msg, sizeof(msg), sig), MACC_EBADSIG);
	msg[999] ^= 1;
	assert_int_equal(macc_verify(&a.pub, msg, sizeof(msg), sig), MACC_EBADSIG);
	macc_identity_finish(&a);
	macc_identity_finish(&b);
}

static void test_blake2b(void **state)
{
	uint8_t want[64], got[64], inc[64];
	struct macc_blake2b h;
	uint8_t big[100000];

	(void)state;
	hex(want,
	    "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5"
	    "de4533cc9518d38aa8dbf1925ab92386edd4009923",
	    64);
	macc_blake2b(got, 64, "abc", 3);
	assert_memory_equal(got, want, 64);

	for (size_t i = 0; i < sizeof(big); i++) {
		big[i] = (uint8_t)(i * 7 + 3);
	}
	macc_blake2b(got, 32, big, sizeof(big));
	macc_blake2b_init(&h, 32);
	macc_blake2b_update(&h, big, 1);
	macc_blake2b_update(&h, big + 1, 4095);
	macc_blake2b_update(&h, big + 4096, sizeof(big) - 4096);
	macc_blake2b_final(&h, inc);
	assert_memory_equal(got, inc, 32);
	big[5] ^= 1;
	macc_blake2b(inc, 32, big, sizeof(big));
	assert_memory_not_equal(got, inc, 32);
}

static void test_b64_roundtrip(void **state)
{
	char sk[MACC_KEY_B64_SIZE], pk[MACC_KEY_B64_SIZE], pk2[MACC_KEY_B64_SIZE];
	char line[80];
	struct macc_identity id, id2;
	struct macc_pubkey pub;
	struct macc_errmsg err = {{0}};

	(void)state;
	assert_int_equal(macc_key_generate_b64(sk), 0);
	assert_int_equal(strlen(sk), MACC_KEY_B64_LEN);
	assert_int_equal(macc_identity_from_b64(&id, sk, NULL), 0);
	macc_pubkey_to_b64(&id.pub, pk);
	assert_int_equal(strlen(pk), MACC_KEY_B64_LEN);

	/* `macc-ctl pubkey` reads a line from stdin: trailing newline allowed. */
	snprintf(line, sizeof(line), "  %s\n", sk);
	assert_int_equal(macc_key_pubkey_from_secret_b64(line, pk2, NULL), 0);
	assert_string_equal(pk, pk2);

	assert_int_equal(macc_pubkey_from_b64(&pub, pk, NULL), 0);
	assert_true(macc_pubkey_equal(&pub, &id.pub));

	/* Secret text round trip. */
	macc_identity_to_b64(&id, line);
	assert_string_equal(line, sk);
	assert_int_equal(macc_identity_from_b64(&id2, line, NULL), 0);
	assert_memory_equal(id2.secret, id.secret, sizeof(id.secret));

	/* Malformed inputs. */
	assert_int_equal(macc_pubkey_from_b64(&pub, "abc", &err), MACC_EMALFORMED);
	assert_non_null(strstr(err.text, "not a base64 key"));
	snprintf(line, sizeof(line), "%s", pk);
	line[5] = '*';
	assert_int_equal(macc_pubkey_from_b64(&pub, line, NULL), MACC_EMALFORMED);
	snprintf(line, sizeof(line), "%sAAAA", pk);
	assert_int_equal(macc_pubkey_from_b64(&pub, line, NULL), MACC_EMALFORMED);
	assert_int_equal(macc_key_pubkey_from_secret_b64("", pk2, NULL), MACC_EMALFORMED);
	assert_int_equal(macc_identity_from_b64(&id2, NULL, NULL), MACC_EMALFORMED);

	macc_memzero(sk, sizeof(sk));
	macc_identity_finish(&id);
	macc_identity_finish(&id2);
}

static void test_pubkey_find(void **state)
{
	struct macc_pubkey keys[3];
	struct macc_pubkey other;

	(void)state;
	for (int i = 0; i < 3; i++) {
		memset(keys[i].bytes, i + 1, 32);
	}
	memset(other.bytes, 9, 32);
	assert_int_equal(macc_pubkey_find(keys, 3, &keys[2]), 2);
	assert_int_equal(macc_pubkey_find(keys, 3, &keys[0]), 0);
	assert_int_equal(macc_pubkey_find(keys, 3, &other), MACC_EUNKNOWNPEER);
	assert_int_equal(macc_pubkey_find(keys, 0, &keys[0]), MACC_EUNKNOWNPEER);
	assert_true(macc_ct_equal("abcd", "abcd", 4));
	assert_false(macc_ct_equal("abcd", "abce", 4));
}

/* A fresh temporary directory per test. */
static int tmpdir_setup(void **state)
{
	char *dir = strdup("/tmp/macc-test-crypto-XXXXXX");

	if (dir == NULL || mkdtemp(dir) == NULL) {
		free(dir);
		return -1;
	}
	*state = dir;
	return 0;
}

static int tmpdir_teardown(void **state)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", (char *)*state);
	free(*state);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_keyfile(void **state)
{
	const char *dir = *state;
	char path[256], link[256];
	struct macc_identity id, back;
	struct macc_errmsg err = {{0}};
	struct stat st;
	FILE *f;

	snprintf(path, sizeof(path), "%s/agent.key", dir);
	assert_int_equal(macc_identity_generate(&id), 0);
	assert_int_equal(macc_identity_save(&id, path, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, MACC_KEY_B64_LEN + 1);
	assert_int_equal(macc_identity_load(&back, path, &err), 0);
	assert_memory_equal(back.secret, id.secret, sizeof(id.secret));
	assert_true(macc_pubkey_equal(&back.pub, &id.pub));
	macc_identity_finish(&back);

	/* Group- or world-accessible: refused, the message names the file and the mode. */
	assert_int_equal(chmod(path, 0640), 0);
	memset(&back, 0, sizeof(back));
	assert_int_equal(macc_identity_load(&back, path, &err), MACC_EKEYPERM);
	assert_non_null(strstr(err.text, path));
	assert_non_null(strstr(err.text, "0640"));
	assert_false(back.loaded);
	assert_int_equal(chmod(path, 0604), 0);
	assert_int_equal(macc_identity_load(&back, path, &err), MACC_EKEYPERM);
	assert_non_null(strstr(err.text, "0604"));

	/* Saving over a loose file tightens it. */
	assert_int_equal(macc_identity_save(&id, path, NULL), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* A symlink is not followed. */
	snprintf(link, sizeof(link), "%s/link.key", dir);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(macc_identity_load(&back, link, &err), -ELOOP);
	assert_non_null(strstr(err.text, link));

	/* Missing file, garbage content, too long. */
	snprintf(link, sizeof(link), "%s/missing.key", dir);
	assert_int_equal(macc_identity_load(&back, link, &err), -ENOENT);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("not a key\n", f);
	fclose(f);
	assert_int_equal(macc_identity_load(&back, path, &err), MACC_EMALFORMED);
	assert_non_null(strstr(err.text, path));
	f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < 300; i++) {
		fputc('A', f);
	}
	fclose(f);
	assert_int_equal(macc_identity_load(&back, path, &err), MACC_EMALFORMED);
	assert_false(back.loaded);
	macc_identity_finish(&id);
	macc_identity_finish(NULL);
}

/* --- session encryption primitives ------------------------------------------------------ */

static void test_kx(void **state)
{
	uint8_t apk[32], ask[32], bpk[32], bsk[32], seed[32];
	uint8_t arx[32], atx[32], brx[32], btx[32], zero[32] = {0};
	uint8_t apk2[32], ask2[32];

	(void)state;
	memset(seed, 1, sizeof(seed));
	assert_int_equal(macc_kx_keypair(apk, ask, seed), 0);
	assert_int_equal(macc_kx_keypair(apk2, ask2, seed), 0); /* deterministic from a seed */
	assert_memory_equal(apk, apk2, 32);
	assert_memory_equal(ask, ask2, 32);
	assert_int_equal(macc_kx_keypair(bpk, bsk, NULL), 0);   /* random */
	assert_memory_not_equal(apk, bpk, 32);
	/* Both sides agree whichever is the client: our tx is the peer's rx. */
	assert_int_equal(macc_kx_session_keys(arx, atx, apk, ask, bpk), 0);
	assert_int_equal(macc_kx_session_keys(brx, btx, bpk, bsk, apk), 0);
	assert_memory_equal(atx, brx, 32);
	assert_memory_equal(arx, btx, 32);
	assert_memory_not_equal(atx, arx, 32);
	assert_memory_not_equal(atx, zero, 32);
	/* A reflected key and a low-order point are refused, and nothing is written. */
	memset(arx, 0x77, 32);
	assert_int_equal(macc_kx_session_keys(arx, atx, apk, ask, apk), MACC_ECRYPTO);
	assert_int_equal(macc_kx_session_keys(arx, atx, apk, ask, zero), MACC_ECRYPTO);
	for (int i = 0; i < 32; i++) {
		assert_int_equal(arx[i], 0x77);
	}
	macc_memzero(ask, 32);
	macc_memzero(bsk, 32);
}

static void test_kdf(void **state)
{
	uint8_t k[32], a[32], b[32], c[32];

	(void)state;
	for (int i = 0; i < 32; i++) {
		k[i] = (uint8_t)i;
	}
	assert_int_equal(macc_kdf_derive(a, 32, 1, "maccrkey", k), 0);
	assert_int_equal(macc_kdf_derive(b, 32, 2, "maccrkey", k), 0);
	assert_int_equal(macc_kdf_derive(c, 32, 1, "maccseal", k), 0);
	assert_memory_not_equal(a, b, 32); /* the id matters */
	assert_memory_not_equal(a, c, 32); /* the context matters */
	/* In place gives the same as out of place. */
	assert_int_equal(macc_kdf_derive(k, 32, 1, "maccrkey", k), 0);
	assert_memory_equal(k, a, 32);
	assert_int_equal(macc_kdf_derive(a, 8, 1, "maccrkey", k), MACC_ECRYPTO); /* too short */
}

/* The reference of a suite: libsodium's own implementation (an independent one for both). */
static int aead_ref(int aead, uint8_t *c, uint8_t *tag, const uint8_t *m, size_t len,
		    const uint8_t *ad, size_t adlen, const uint8_t *nonce, const uint8_t *key)
{
	if (aead == MACC_AEAD_XCHACHA20POLY1305) {
		return macc_aead_seal(c, tag, m, len, ad, adlen, nonce, key);
	}
	return macc_aead_seal_ref_aes256gcm(c, tag, m, len, ad, adlen, nonce, key);
}

/* Every suite against its reference, byte for byte, over every way of splitting messages of
 * awkward lengths into segments. */
static void aead_iov_suite(int aead)
{
	/* Around the blocks, the 4 KB switch from libsodium to libcrypto and the 64 KB pieces. */
	static const size_t lens[] = {0,     1,     15,    16,    63,    64,    65,    127,
				      1000,  4095,  4096,  4097,  16383, 16384, 65535, 65536,
				      65537, 70000};
	const size_t max = 70000;
	uint8_t key[32], nonce[24], ad[4] = {0, 0, 1, 2};
	uint8_t *m = malloc(max), *ref = malloc(max), *c = malloc(max), *back = malloc(max);
	uint8_t tref[16], t[16];
	size_t nlen = macc_aead_nonce_bytes(aead);

	assert_non_null(m);
	assert_non_null(ref);
	assert_non_null(c);
	assert_non_null(back);
	for (int i = 0; i < 32; i++) {
		key[i] = (uint8_t)(0x80 + i);
	}
	for (int i = 0; i < 24; i++) {
		nonce[i] = (uint8_t)(0x40 + i);
	}
	for (size_t i = 0; i < max; i++) {
		m[i] = (uint8_t)(i * 7 + (i >> 8));
	}
	if (aead_ref(aead, ref, tref, m, 16, ad, 4, nonce, key) != 0) {
		/* libsodium has no AES-GCM without AES-NI: the known answers below still run. */
		print_message("no reference implementation of %s on this CPU\n",
			      macc_aead_name(aead));
		goto out;
	}
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		size_t len = lens[li];

		for (size_t adlen = 0; adlen <= 4; adlen += 4) {
			assert_int_equal(
				aead_ref(aead, ref, tref, m, len, ad, adlen, nonce, key), 0);
			/* Every split point into two and three segments (a stride keeps the long
			 * ones fast). */
			for (size_t s1 = 0; s1 <= len; s1 += len > 200 ? 997 : 1) {
				size_t s2 = s1 + (len - s1) / 3;
				struct macc_iov v2[2] = {{m, s1}, {m + s1, len - s1}};
				struct macc_iov v3[3] = {
					{m, s1}, {m + s1, s2 - s1}, {m + s2, len - s2}};

				memset(c, 0xee, len);
				assert_int_equal(macc_aead_seal_iov(aead, c, t, v2, 2, ad, adlen,
								    nonce, key),
						 0);
				assert_memory_equal(c, ref, len);
				assert_memory_equal(t, tref, 16);
				memset(c, 0xee, len);
				assert_int_equal(macc_aead_seal_iov(aead, c, t, v3, 3, ad, adlen,
								    nonce, key),
						 0);
				assert_memory_equal(c, ref, len);
				assert_memory_equal(t, tref, 16);
			}
			/* It opens, out of place and in place. */
			assert_int_equal(macc_aead_open(aead, back, ref, len, tref, ad, adlen,
							nonce, key),
					 0);
			assert_memory_equal(back, m, len);
			memcpy(c, ref, len);
			assert_int_equal(
				macc_aead_open(aead, c, c, len, tref, ad, adlen, nonce, key), 0);
			assert_memory_equal(c, m, len);
		}
	}
	/* In place with one segment, and refusals, below and above the 4 KB switch. */
	for (size_t n = 1000; n <= 70000; n += 69000) {
		struct macc_iov v = {c, n};

		memcpy(c, m, n);
		assert_int_equal(macc_aead_seal_iov(aead, c, t, &v, 1, ad, 4, nonce, key), 0);
		assert_int_equal(aead_ref(aead, ref, tref, m, n, ad, 4, nonce, key), 0);
		assert_memory_equal(c, ref, n);
		assert_memory_equal(t, tref, 16);
		/* Any change of key, nonce, associated data, ciphertext or tag: refused, output
		 * wiped. */
		for (int what = 0; what < 5; what++) {
			uint8_t k2[32], n2[24], a2[4], t2[16];

			memcpy(k2, key, 32);
			memcpy(n2, nonce, 24);
			memcpy(a2, ad, 4);
			memcpy(t2, tref, 16);
			memcpy(c, ref, n);
			switch (what) {
			case 0: k2[5] ^= 1; break;
			case 1: n2[nlen - 1] ^= 1; break;
			case 2: a2[3] ^= 0x80; break;
			case 3: c[n - 1] ^= 0x10; break;
			default: t2[0] ^= 1; break;
			}
			memset(back, 0x55, n);
			assert_int_equal(macc_aead_open(aead, back, c, n, t2, a2, 4, n2, k2),
					 MACC_EBADSIG);
			for (size_t i = 0; i < n; i++) {
				assert_int_equal(back[i], 0);
			}
		}
	}
out:
	free(m);
	free(ref);
	free(c);
	free(back);
}

static void test_aead_iov(void **state)
{
	(void)state;
	aead_iov_suite(MACC_AEAD_XCHACHA20POLY1305);
	aead_iov_suite(MACC_AEAD_AES256GCM);
}

/* Published vectors, so neither suite depends on one library agreeing with another. */
static void test_aead_known_answer(void **state)
{
	/* draft-irtf-cfrg-xchacha-03, A.3.1 (AEAD_XChaCha20_Poly1305). */
	static const char xpt[] = "Ladies and Gentlemen of the class of '99: If I could offer you "
				  "only one tip for the future, sunscreen would be it.";
	static const char xct[] =
		"bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
		"731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
		"2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
		"21f9664c97637da9768812f615c68b13b52e";
	/* The GCM specification (McGrew and Viega), test case 16 (AES-256, 60 bytes, 20 of AD). */
	static const char gk[] = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
	static const char gpt[] = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
				  "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
	static const char gad[] = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
	static const char giv[] = "cafebabefacedbaddecaf888";
	static const char gct[] = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
				  "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662";
	uint8_t key[32], nonce[24], ad[20], want[114], got[114], pt[114], tag[16], wtag[16];
	struct macc_iov v;

	(void)state;
	for (int i = 0; i < 32; i++) {
		key[i] = (uint8_t)(0x80 + i);
	}
	for (int i = 0; i < 24; i++) {
		nonce[i] = (uint8_t)(0x40 + i);
	}
	hex(ad, "50515253c0c1c2c3c4c5c6c7", 12);
	hex(want, xct, 114);
	hex(wtag, "c0875924c1c7987947deafd8780acf49", 16);
	assert_int_equal(sizeof(xpt) - 1, 114);
	v = (struct macc_iov){xpt, 114};
	assert_int_equal(macc_aead_seal_iov(MACC_AEAD_XCHACHA20POLY1305, got, tag, &v, 1, ad, 12,
					    nonce, key),
			 0);
	assert_memory_equal(got, want, 114);
	assert_memory_equal(tag, wtag, 16);
	assert_int_equal(macc_aead_open(MACC_AEAD_XCHACHA20POLY1305, pt, got, 114, tag, ad, 12,
					nonce, key),
			 0);
	assert_memory_equal(pt, xpt, 114);

	hex(key, gk, 32);
	hex(nonce, giv, 12);
	hex(ad, gad, 20);
	hex(pt, gpt, 60);
	hex(want, gct, 60);
	hex(wtag, "76fc6ece0f4e1768cddf8853bb2d551b", 16);
	v = (struct macc_iov){pt, 60};
	assert_int_equal(
		macc_aead_seal_iov(MACC_AEAD_AES256GCM, got, tag, &v, 1, ad, 20, nonce, key), 0);
	assert_memory_equal(got, want, 60);
	assert_memory_equal(tag, wtag, 16);
	assert_int_equal(
		macc_aead_open(MACC_AEAD_AES256GCM, got, got, 60, tag, ad, 20, nonce, key), 0);
	assert_memory_equal(got, pt, 60);
}

/* STATE digests: SHA-256 against FIPS 180-2's "abc" vector, BLAKE2b-256 against macc_blake2b
 * (whose BLAKE2b-512 has its own known answer above), names and refusals. */
static void test_digest(void **state)
{
	uint8_t want[32], got[32], b2[32], big[5000];

	(void)state;
	hex(want, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 32);
	assert_int_equal(macc_digest(MACC_DIGEST_SHA256, got, "abc", 3), 0);
	assert_memory_equal(got, want, 32);
	for (size_t i = 0; i < sizeof(big); i++) {
		big[i] = (uint8_t)(i * 31);
	}
	assert_int_equal(macc_digest(MACC_DIGEST_BLAKE2B256, got, big, sizeof(big)), 0);
	macc_blake2b(b2, 32, big, sizeof(big));
	assert_memory_equal(got, b2, 32);
	assert_int_equal(macc_digest(MACC_DIGEST_SHA256, got, big, sizeof(big)), 0);
	assert_memory_not_equal(got, b2, 32);
	memset(got, 0x77, sizeof(got));
	assert_int_equal(macc_digest(2, got, "abc", 3), MACC_EMALFORMED);
	assert_int_equal(got[0], 0x77);
	assert_string_equal(macc_digest_name(MACC_DIGEST_BLAKE2B256), "blake2b256");
	assert_string_equal(macc_digest_name(MACC_DIGEST_SHA256), "sha256");
	assert_string_equal(macc_digest_name(-1), "unknown");
}

/* Names, nonce sizes, limits and refusals that happen before any byte is touched. */
static void test_aead_suites(void **state)
{
	uint8_t key[32] = {1}, nonce[24] = {0}, tag[16], b[16] = {7};
	struct macc_iov big[2] = {{b, 0}, {b, 0}};

	(void)state;
	assert_string_equal(macc_aead_name(MACC_AEAD_XCHACHA20POLY1305), "xchacha20poly1305");
	assert_string_equal(macc_aead_name(MACC_AEAD_AES256GCM), "aes256gcm");
	assert_string_equal(macc_aead_name(7), "unknown");
	assert_int_equal(macc_aead_nonce_bytes(MACC_AEAD_XCHACHA20POLY1305), 24);
	assert_int_equal(macc_aead_nonce_bytes(MACC_AEAD_AES256GCM), 12);
	assert_int_equal(macc_aead_nonce_bytes(-1), 0);
	assert_int_equal(macc_aead_seal_iov(2, b, tag, big, 1, NULL, 0, nonce, key),
			 MACC_EMALFORMED);
	assert_int_equal(macc_aead_open(2, b, b, 16, tag, NULL, 0, nonce, key), MACC_EMALFORMED);
	assert_int_equal(b[0], 7); /* refused before anything was written */
#if SIZE_MAX > 0xffffffffu
	/* Past a suite's limit (segments that add up to it are not read: the lengths are
	 * checked first). */
	big[0].len = (size_t)1 << 35;
	big[1].len = (size_t)1 << 35;
	assert_int_equal(
		macc_aead_seal_iov(MACC_AEAD_AES256GCM, b, tag, big, 2, NULL, 0, nonce, key),
		MACC_ETOOBIG);
	big[0].len = (size_t)1 << 37;
	big[1].len = (size_t)1 << 37;
	assert_int_equal(macc_aead_seal_iov(MACC_AEAD_XCHACHA20POLY1305, b, tag, big, 2, NULL, 0,
					    nonce, key),
			 MACC_ETOOBIG);
	assert_int_equal(macc_aead_open(MACC_AEAD_AES256GCM, b, b, (size_t)1 << 36, tag, NULL, 0,
					nonce, key),
			 MACC_ETOOBIG);
	assert_int_equal(b[0], 7);
#endif
#if defined(__x86_64__)
	/* Offered exactly where libcrypto's fast AES-GCM can run (CPUID as the compiler reads it),
	 * and SHA-256 preferred only where the kernel sees the SHA extensions. Only that way round:
	 * an emulator such as valgrind may hide a feature from CPUID (then libcrypto does not use
	 * it either), never add one. */
	{
		char line[8192];
		FILE *f = fopen("/proc/cpuinfo", "r");
		bool aes = false, pcl = false, avx = false, sha = false;

		__builtin_cpu_init();
		assert_int_equal(macc_aead_aes_fast(), __builtin_cpu_supports("aes") &&
							       __builtin_cpu_supports("pclmul") &&
							       __builtin_cpu_supports("avx"));
		while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
			if (strncmp(line, "flags", 5) == 0) {
				aes = strstr(line, " aes ") != NULL;
				pcl = strstr(line, " pclmulqdq ") != NULL;
				avx = strstr(line, " avx ") != NULL;
				sha = strstr(line, " sha_ni ") != NULL;
				break;
			}
		}
		if (f != NULL) {
			fclose(f);
			assert_true(!macc_aead_aes_fast() || (aes && pcl && avx));
			assert_true(!macc_sha256_fast() || sha);
		}
		assert_int_equal(macc_digest_preferred(), macc_sha256_fast()
								  ? MACC_DIGEST_SHA256
								  : MACC_DIGEST_BLAKE2B256);
	}
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ed25519_known_answer),
		cmocka_unit_test(test_sign_verify),
		cmocka_unit_test(test_blake2b),
		cmocka_unit_test(test_b64_roundtrip),
		cmocka_unit_test(test_pubkey_find),
		cmocka_unit_test(test_kx),
		cmocka_unit_test(test_kdf),
		cmocka_unit_test(test_aead_iov),
		cmocka_unit_test(test_aead_known_answer),
		cmocka_unit_test(test_aead_suites),
		cmocka_unit_test(test_digest),
		cmocka_unit_test_setup_teardown(test_keyfile, tmpdir_setup, tmpdir_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
