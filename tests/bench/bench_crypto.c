/*
 * bench_crypto.c - single-thread throughput of every candidate primitive of the network path.
 *
 * The table that decides which library runs which primitive (crypto.c): for one buffer of the
 * size of the MLP STATE body (mlp:784-256-128-10 with momentum: 2 * 235146 float32 = 1.88 MB;
 * `bench_crypto BYTES` for another size), on one thread, it times
 *   memcpy                         the floor: one copy
 *   AEADs, seal and open           libsodium and OpenSSL (libcrypto, EVP) each:
 *                                  XChaCha20-Poly1305 (libsodium only; OpenSSL has no
 *                                  XChaCha), ChaCha20-Poly1305 IETF and AES-256-GCM (libsodium's
 *                                  only where its AES-NI code runs), and libsodium's ChaCha20
 *                                  and Poly1305 alone (what the previous one-pass seal used)
 *   macc's suites                  macc_aead_seal_iov / macc_aead_open of each suite of
 *                                  crypto.h, with the STATE's two segments (prefix, body): what
 *                                  the daemon really runs
 *   hashes                         BLAKE2b-256 (libsodium, macc's STATE digest), BLAKE2b-512
 *                                  (OpenSSL: 3.0 has no other length), SHA-256 and SHA-512
 *                                  (libsodium and OpenSSL), SHA-512/256 and SHA3-256 (OpenSSL)
 * and prints MB/s (10^6 bytes per second) and the time per buffer, the best of REPS passes over
 * a warm buffer (so a shared, busy machine disturbs it less). The CPU flags that decide the
 * fast paths (AES, PCLMUL, VAES, VPCLMULQDQ, AVX2, AVX-512, SHA) are printed first.
 *
 * This benchmark is the one place outside crypto.c that calls libsodium and libcrypto directly:
 * it measures the libraries themselves, including the candidates macc does not use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "macc/crypto.h"
#include "macc/log.h"

#define REPS 15
/* mlp:784-256-128-10 parameters, x and momentum as float32 */
#define MLP_PARAMS 235146u

static void die(const char *what)
{
	fprintf(stderr, "bench_crypto: %s failed\n", what);
	exit(1);
}

struct bench {
	uint8_t *in, *out;
	size_t len;
	uint8_t key[32], nonce[24], tag[16];
	uint8_t digest[64];
};

typedef void (*bench_fn)(struct bench *b);

static double run(struct bench *b, bench_fn fn)
{
	double best = 1e30;

	fn(b); /* warm up: page in the buffers, initialise tables */
	for (int r = 0; r < REPS; r++) {
		uint64_t t0 = macc_now_ns();

		fn(b);
		double t = (double)(macc_now_ns() - t0) * 1e-9;

		best = t < best ? t : best;
	}
	return best;
}

static void row(const char *lib, const char *name, struct bench *b, bench_fn fn)
{
	double t = run(b, fn);

	printf("| %-9s | %-36s | %8.0f | %7.3f |\n", lib, name, (double)b->len / t / 1e6, t * 1e3);
	fflush(stdout);
}

/* ---- copies ---------------------------------------------------------------------------- */

static void f_memcpy(struct bench *b)
{
	memcpy(b->out, b->in, b->len);
}

/* ---- libsodium ------------------------------------------------------------------------- */

static void s_xchacha_seal(struct bench *b)
{
	crypto_aead_xchacha20poly1305_ietf_encrypt_detached(b->out, b->tag, NULL, b->in, b->len,
							    b->nonce, 4, NULL, b->nonce, b->key);
}

static void s_xchacha_open(struct bench *b)
{
	if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(b->in, NULL, b->out, b->len, b->tag,
								 b->nonce, 4, b->nonce,
								 b->key) != 0) {
		die("libsodium xchacha open");
	}
}

static void s_chacha_seal(struct bench *b)
{
	crypto_aead_chacha20poly1305_ietf_encrypt_detached(b->out, b->tag, NULL, b->in, b->len,
							   b->nonce, 4, NULL, b->nonce, b->key);
}

static void s_chacha_open(struct bench *b)
{
	if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(b->in, NULL, b->out, b->len, b->tag,
								b->nonce, 4, b->nonce,
								b->key) != 0) {
		die("libsodium chacha open");
	}
}

static void s_aesgcm_seal(struct bench *b)
{
	crypto_aead_aes256gcm_encrypt_detached(b->out, b->tag, NULL, b->in, b->len, b->nonce, 4,
					       NULL, b->nonce, b->key);
}

static void s_aesgcm_open(struct bench *b)
{
	if (crypto_aead_aes256gcm_decrypt_detached(b->in, NULL, b->out, b->len, b->tag, b->nonce, 4,
						   b->nonce, b->key) != 0) {
		die("libsodium aes256gcm open");
	}
}

static void s_chacha20(struct bench *b)
{
	crypto_stream_chacha20_ietf_xor(b->out, b->in, b->len, b->nonce, b->key);
}

static void s_poly1305(struct bench *b)
{
	crypto_onetimeauth_poly1305(b->tag, b->in, b->len, b->key);
}

static void s_blake2b256(struct bench *b)
{
	crypto_generichash(b->digest, 32, b->in, b->len, NULL, 0);
}

static void s_sha256(struct bench *b)
{
	crypto_hash_sha256(b->digest, b->in, b->len);
}

static void s_sha512(struct bench *b)
{
	crypto_hash_sha512(b->digest, b->in, b->len);
}

/* ---- OpenSSL (EVP) --------------------------------------------------------------------- */

/* One AEAD message through EVP: seal in -> out (tag into b->tag), or open out -> in with that
 * tag (so each open row follows the seal row of the same cipher, and must verify). */
static void o_aead(struct bench *b, const EVP_CIPHER *cipher, bool seal)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	const uint8_t *src = seal ? b->in : b->out;
	uint8_t *dst = seal ? b->out : b->in;
	int n = 0;

	if (ctx == NULL || EVP_CipherInit_ex(ctx, cipher, NULL, b->key, b->nonce, seal) != 1 ||
	    EVP_CipherUpdate(ctx, NULL, &n, b->nonce, 4) != 1 ||
	    EVP_CipherUpdate(ctx, dst, &n, src, (int)b->len) != 1) {
		die("openssl aead");
	}
	if (seal) {
		if (EVP_CipherFinal_ex(ctx, dst + n, &n) != 1 ||
		    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, b->tag) != 1) {
			die("openssl aead seal");
		}
	} else if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, b->tag) != 1 ||
		   EVP_CipherFinal_ex(ctx, dst + n, &n) != 1) {
		die("openssl aead open");
	}
	EVP_CIPHER_CTX_free(ctx);
}

static void o_aesgcm_seal(struct bench *b)
{
	o_aead(b, EVP_aes_256_gcm(), true);
}

static void o_aesgcm_open(struct bench *b)
{
	o_aead(b, EVP_aes_256_gcm(), false);
}

static void o_chacha_seal(struct bench *b)
{
	o_aead(b, EVP_chacha20_poly1305(), true);
}

static void o_chacha_open(struct bench *b)
{
	o_aead(b, EVP_chacha20_poly1305(), false);
}

static void o_md(struct bench *b, const EVP_MD *md)
{
	unsigned n = 0;

	if (EVP_Digest(b->in, b->len, b->digest, &n, md, NULL) != 1) {
		die("openssl digest");
	}
}

static void o_blake2b512(struct bench *b)
{
	o_md(b, EVP_blake2b512());
}

static void o_sha256(struct bench *b)
{
	o_md(b, EVP_sha256());
}

static void o_sha512(struct bench *b)
{
	o_md(b, EVP_sha512());
}

static void o_sha512_256(struct bench *b)
{
	o_md(b, EVP_sha512_256());
}

static void o_sha3_256(struct bench *b)
{
	o_md(b, EVP_sha3_256());
}

/* ---- macc's suites (crypto.h): a STATE is a small prefix and the shared body -------------- */

static void m_seal(struct bench *b, int suite)
{
	size_t pre = b->len < 240 ? b->len / 2 : 120; /* a STATE's prefix is ~120 bytes */
	struct macc_iov iov[2] = {{b->in, pre}, {b->in + pre, b->len - pre}};

	if (macc_aead_seal_iov(suite, b->out, b->tag, iov, 2, b->nonce, 4, b->nonce, b->key) != 0) {
		die("macc seal");
	}
}

/* Opens what the seal row before it sealed (out -> in), in pieces like the daemon's frames. */
static void m_open(struct bench *b, int suite)
{
	if (macc_aead_open(suite, b->in, b->out, b->len, b->tag, b->nonce, 4, b->nonce, b->key) !=
	    0) {
		die("macc open");
	}
}

static void m_xchacha_seal(struct bench *b)
{
	m_seal(b, MACC_AEAD_XCHACHA20POLY1305);
}

static void m_xchacha_open(struct bench *b)
{
	m_open(b, MACC_AEAD_XCHACHA20POLY1305);
}

static void m_aesgcm_seal(struct bench *b)
{
	m_seal(b, MACC_AEAD_AES256GCM);
}

static void m_aesgcm_open(struct bench *b)
{
	m_open(b, MACC_AEAD_AES256GCM);
}

static void m_blake2b(struct bench *b)
{
	macc_blake2b(b->digest, 32, b->in, b->len);
}

/* Per-message cost of small frames (a PING is ~40 bytes): what an EVP context per call costs
 * next to libsodium. Times `len` = 64 in a loop of SMALL_N calls. */
#define SMALL_N 20000

static void small_row(const char *lib, const char *name, struct bench *b, bench_fn fn)
{
	size_t saved = b->len;
	double best = 1e30;

	b->len = 64;
	for (int r = 0; r < 5; r++) {
		uint64_t t0 = macc_now_ns();

		for (int i = 0; i < SMALL_N; i++) {
			fn(b);
		}
		double t = (double)(macc_now_ns() - t0) * 1e-9 / SMALL_N;

		best = t < best ? t : best;
	}
	b->len = saved;
	printf("| %-9s | %-36s | %8s | %7.2f us/message |\n", lib, name, "64 B", best * 1e6);
	fflush(stdout);
}

static void small_rows(struct bench *b)
{
	small_row("libsodium", "XChaCha20-Poly1305 seal", b, s_xchacha_seal);
	small_row("libsodium", "XChaCha20-Poly1305 open", b, s_xchacha_open);
	if (crypto_aead_aes256gcm_is_available()) {
		small_row("libsodium", "AES-256-GCM seal", b, s_aesgcm_seal);
	}
	small_row("macc", "xchacha20poly1305 seal", b, m_xchacha_seal);
	small_row("macc", "xchacha20poly1305 open", b, m_xchacha_open);
	small_row("macc", "aes256gcm seal", b, m_aesgcm_seal);
	small_row("macc", "aes256gcm open", b, m_aesgcm_open);
}

/* The CPU features that decide the fast paths, from /proc/cpuinfo (x86 "flags", ARM
 * "Features"). */
static void cpu_flags(void)
{
	static const char *const names[] = {"aes",    "pclmulqdq", "vaes",   "vpclmulqdq", "avx2",
					    "avx512f", "sha_ni",   "pmull", "sha2"};
	char line[4096];
	FILE *f = fopen("/proc/cpuinfo", "r");

	printf("CPU:");
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "flags", 5) != 0 && strncmp(line, "Features", 8) != 0) {
			continue;
		}
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			char word[32];

			snprintf(word, sizeof(word), " %s", names[i]);
			const char *p = strstr(line, word);
			bool has = p != NULL && (p[strlen(word)] == ' ' || p[strlen(word)] == '\n');

			printf(" %s%s", has ? "+" : "-", names[i]);
		}
		break;
	}
	if (f != NULL) {
		fclose(f);
	}
	printf("\n");
	printf("macc offers AES-256-GCM on this CPU: %s; signs STATEs with %s\n",
	       macc_aead_aes_fast() ? "yes" : "no", macc_digest_name(macc_digest_preferred()));
}

int main(int argc, char **argv)
{
	struct bench b;
	size_t len = (size_t)MLP_PARAMS * 2 * 4;

	if (argc > 1) {
		len = strtoull(argv[1], NULL, 10);
		if (len < 256) {
			fprintf(stderr, "usage: bench_crypto [BYTES >= 256]\n");
			return 2;
		}
	}
	if (sodium_init() < 0) {
		die("sodium_init");
	}
	b.len = len;
	b.in = malloc(len);
	b.out = malloc(len + 64);
	if (b.in == NULL || b.out == NULL) {
		die("malloc");
	}
	for (size_t i = 0; i < len; i++) {
		b.in[i] = (uint8_t)(i * 131u + (i >> 9));
	}
	randombytes_buf(b.key, sizeof(b.key));
	memset(b.nonce, 0, sizeof(b.nonce));
	b.nonce[23] = 1;
	cpu_flags();
	printf("libsodium %s, %s\n", sodium_version_string(), OpenSSL_version(OPENSSL_VERSION));
	printf("buffer %zu bytes, best of %d, one thread\n\n", len, REPS);
	printf("| library   | primitive                            |     MB/s | ms/buf  |\n");
	printf("|-----------|--------------------------------------|----------|---------|\n");
	row("-", "memcpy", &b, f_memcpy);
	row("libsodium", "XChaCha20-Poly1305 seal", &b, s_xchacha_seal);
	row("libsodium", "XChaCha20-Poly1305 open", &b, s_xchacha_open);
	row("libsodium", "ChaCha20-Poly1305 IETF seal", &b, s_chacha_seal);
	row("libsodium", "ChaCha20-Poly1305 IETF open", &b, s_chacha_open);
	if (crypto_aead_aes256gcm_is_available()) {
		row("libsodium", "AES-256-GCM seal", &b, s_aesgcm_seal);
		row("libsodium", "AES-256-GCM open", &b, s_aesgcm_open);
	} else {
		printf("| libsodium | AES-256-GCM: not available here   |        - |       - |\n");
	}
	row("libsodium", "ChaCha20 (stream only)", &b, s_chacha20);
	row("libsodium", "Poly1305 (MAC only)", &b, s_poly1305);
	row("OpenSSL", "ChaCha20-Poly1305 seal", &b, o_chacha_seal);
	row("OpenSSL", "ChaCha20-Poly1305 open", &b, o_chacha_open);
	row("OpenSSL", "AES-256-GCM seal", &b, o_aesgcm_seal);
	row("OpenSSL", "AES-256-GCM open", &b, o_aesgcm_open);
	row("macc", "xchacha20poly1305 seal (2 segments)", &b, m_xchacha_seal);
	row("macc", "xchacha20poly1305 open", &b, m_xchacha_open);
	row("macc", "aes256gcm seal (2 segments)", &b, m_aesgcm_seal);
	row("macc", "aes256gcm open", &b, m_aesgcm_open);
	small_rows(&b);
	row("libsodium", "BLAKE2b-256", &b, s_blake2b256);
	row("macc", "macc_blake2b (STATE digest)", &b, m_blake2b);
	row("OpenSSL", "BLAKE2b-512", &b, o_blake2b512);
	row("libsodium", "SHA-256", &b, s_sha256);
	row("OpenSSL", "SHA-256", &b, o_sha256);
	row("libsodium", "SHA-512", &b, s_sha512);
	row("OpenSSL", "SHA-512", &b, o_sha512);
	row("OpenSSL", "SHA-512/256", &b, o_sha512_256);
	row("OpenSSL", "SHA3-256", &b, o_sha3_256);
	free(b.in);
	free(b.out);
	return 0;
}
