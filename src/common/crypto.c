/*
 * crypto.c - the one place where macc talks to libsodium and OpenSSL's libcrypto.
 *
 * Identities are Ed25519 key pairs. Key files and `macc-ctl genkey` hold the 32-byte seed in
 * standard base64 (44 characters, one line, like wg); the 64-byte expanded secret key is
 * derived from it at load and lives only inside struct macc_identity. Every buffer that held
 * secret material (file contents, decoded seeds, base64 text) is wiped with sodium_memzero
 * before the function returns, on success and on every error path.
 *
 * Key files: load opens with O_NOFOLLOW and checks the mode on the open descriptor (fstat), so
 * the check and the read see the same file; any group or other permission bit is refused.
 * Save creates the file with mode 0600 and also fchmods it, so an existing file with looser
 * permissions is tightened before the secret is written.
 *
 * Bulk AEAD (session sealing) and SHA-256 run on libcrypto's EVP interface, everything else on
 * libsodium.
 * Why, in MB/s (tests/bench/bench_crypto.c: 1.88 MB, one thread, both libraries in one run,
 * on a 2-core AMD EPYC VM with AES-NI, VAES, PCLMULQDQ, AVX2 and SHA extensions):
 *                         libsodium 1.0.18   libcrypto 3.0    macc (seal / open)
 *   XChaCha20-Poly1305          1363              -            2149 / 2198 (libcrypto)
 *   ChaCha20-Poly1305 IETF      1362            2208
 *   AES-256-GCM            1695 / 1480      3988 / 3994        3938 / 3945 (libcrypto)
 *   SHA-256                      309            1594
 *   BLAKE2b-256 / -512           910        843 (-512 only)
 * libcrypto has stitched AVX2/AVX-512/VAES (x86) and NEON/ARMv8-crypto code that libsodium
 * 1.0.18 lacks (its XChaCha20-Poly1305 is a ChaCha20 pass plus a separate Poly1305 pass), and
 * its SHA-256 uses the SHA extensions. The XChaCha suite stays byte-compatible with libsodium:
 * HChaCha20 (libsodium) derives the subkey, ChaCha20-Poly1305 IETF (libcrypto) does the bulk;
 * the unit tests hold it against libsodium's own XChaCha20-Poly1305. With macc's nonces (16
 * zero bytes || counter) the subkey is HChaCha20(key, 0^16), the same for every frame of an
 * epoch; recomputing it costs ~0.1 us, so it is not cached. An EVP context is made per call
 * (~2 us, bench_crypto's small-message rows), so no OpenSSL state outlives a call and sealing
 * may run on any thread with a ticket's key copy (proto.h); messages of at most SMALL_MSG
 * bytes (PING, PONG, BYE) go to libsodium's one-shot functions instead (~0.2 to 0.6 us, the
 * same bytes), so a flood of small frames costs no more than before.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sodium.h>
#if defined(__aarch64__) || defined(__arm__)
#include <sys/auxv.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "macc/crypto.h"

_Static_assert(sizeof(crypto_generichash_state) <= sizeof(((struct macc_blake2b *)0)->opaque),
	       "struct macc_blake2b too small for libsodium's state");
_Static_assert(crypto_sign_PUBLICKEYBYTES == MACC_PUBKEY_BYTES, "pubkey size");
_Static_assert(crypto_sign_SECRETKEYBYTES == MACC_SECRETKEY_BYTES, "secret key size");
_Static_assert(crypto_sign_SEEDBYTES == MACC_SEED_BYTES, "seed size");
_Static_assert(crypto_sign_BYTES == MACC_SIG_BYTES, "signature size");

/* Largest key file accepted: one key line plus generous whitespace. */
#define KEYFILE_MAX 256

int macc_crypto_init(void)
{
	/* sodium_init is thread-safe and idempotent: 0 first time, 1 afterwards. */
	return sodium_init() < 0 ? MACC_ECRYPTO : 0;
}

int macc_identity_from_seed(struct macc_identity *id, const uint8_t seed[MACC_SEED_BYTES])
{
	if (macc_crypto_init() != 0) {
		return MACC_ECRYPTO;
	}
	memset(id, 0, sizeof(*id));
	if (crypto_sign_seed_keypair(id->pub.bytes, id->secret, seed) != 0) {
		sodium_memzero(id, sizeof(*id));
		return MACC_ECRYPTO;
	}
	id->loaded = true;
	return 0;
}

int macc_identity_generate(struct macc_identity *id)
{
	uint8_t seed[MACC_SEED_BYTES];
	int rc;

	if (macc_crypto_init() != 0) {
		return MACC_ECRYPTO;
	}
	randombytes_buf(seed, sizeof(seed));
	rc = macc_identity_from_seed(id, seed);
	sodium_memzero(seed, sizeof(seed));
	return rc;
}

/* Decode one base64 key of exactly 32 bytes, ignoring surrounding whitespace. */
static int key_from_b64(uint8_t out[32], const char *b64, const char *what,
			struct macc_errmsg *err)
{
	const char *end;
	size_t len, bin_len = 0;

	if (b64 == NULL) {
		return macc_errf(err, MACC_EMALFORMED, "%s: missing", what);
	}
	while (*b64 == ' ' || *b64 == '\t' || *b64 == '\n' || *b64 == '\r') {
		b64++;
	}
	end = b64 + strlen(b64);
	while (end > b64 && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' ||
			     end[-1] == '\r')) {
		end--;
	}
	len = (size_t)(end - b64);
	if (len != MACC_KEY_B64_LEN ||
	    sodium_base642bin(out, 32, b64, len, NULL, &bin_len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    bin_len != 32) {
		sodium_memzero(out, 32);
		return macc_errf(err, MACC_EMALFORMED,
				 "%s: not a base64 key of 32 bytes (expected %d characters, got %zu)",
				 what, MACC_KEY_B64_LEN, len);
	}
	return 0;
}

int macc_identity_from_b64(struct macc_identity *id, const char *b64, struct macc_errmsg *err)
{
	uint8_t seed[MACC_SEED_BYTES];
	int rc;

	if (macc_crypto_init() != 0) {
		return macc_errf(err, MACC_ECRYPTO, "libsodium initialisation failed");
	}
	rc = key_from_b64(seed, b64, "secret key", err);
	if (rc == 0) {
		rc = macc_identity_from_seed(id, seed);
	}
	sodium_memzero(seed, sizeof(seed));
	return rc;
}

void macc_identity_to_b64(const struct macc_identity *id, char out[MACC_KEY_B64_SIZE])
{
	/* libsodium's secret key starts with the seed. */
	sodium_bin2base64(out, MACC_KEY_B64_SIZE, id->secret, MACC_SEED_BYTES,
			  sodium_base64_VARIANT_ORIGINAL);
}

int macc_identity_load(struct macc_identity *id, const char *path, struct macc_errmsg *err)
{
	char text[KEYFILE_MAX + 1];
	struct stat st;
	size_t have = 0;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		return macc_errf(err, rc, "%s: cannot open key file: %s", path, strerror(-rc));
	}
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		macc_errf(err, rc, "%s: cannot stat key file: %s", path, strerror(-rc));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = macc_errf(err, MACC_EMALFORMED, "%s: key file is not a regular file", path);
		goto out;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		rc = macc_errf(err, MACC_EKEYPERM,
			       "%s: key file has mode %04o, readable or writable by group or others; "
			       "run chmod 600 on it",
			       path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, text + have, sizeof(text) - 1 - have);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			rc = -errno;
			macc_errf(err, rc, "%s: cannot read key file: %s", path, strerror(-rc));
			goto out;
		}
		if (n == 0) {
			break;
		}
		have += (size_t)n;
		if (have == sizeof(text) - 1) {
			rc = macc_errf(err, MACC_EMALFORMED, "%s: key file too long (over %d bytes)",
				       path, KEYFILE_MAX - 1);
			goto out;
		}
	}
	text[have] = '\0';
	if (memchr(text, '\0', have) != NULL) {
		rc = macc_errf(err, MACC_EMALFORMED, "%s: key file contains a NUL byte", path);
		goto out;
	}
	rc = macc_identity_from_b64(id, text, err);
	if (rc != 0 && err != NULL) {
		/* Prefix the file name to the decoder's message. */
		char tmp[sizeof(err->text)];

		snprintf(tmp, sizeof(tmp), "%s", err->text);
		macc_errf(err, rc, "%s: %s", path, tmp);
	}
out:
	sodium_memzero(text, sizeof(text));
	close(fd);
	return rc;
}

int macc_identity_save(const struct macc_identity *id, const char *path, struct macc_errmsg *err)
{
	char line[MACC_KEY_B64_SIZE + 1];
	size_t off = 0, len;
	int fd, rc = 0;

	if (!id->loaded) {
		return macc_errf(err, MACC_ESTATE, "%s: no identity to save", path);
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		rc = -errno;
		return macc_errf(err, rc, "%s: cannot create key file: %s", path, strerror(-rc));
	}
	if (fchmod(fd, 0600) != 0) {
		rc = -errno;
		macc_errf(err, rc, "%s: cannot chmod key file: %s", path, strerror(-rc));
		goto out;
	}
	macc_identity_to_b64(id, line);
	len = strlen(line);
	line[len++] = '\n';
	while (off < len) {
		ssize_t n = write(fd, line + off, len - off);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			rc = -errno;
			macc_errf(err, rc, "%s: cannot write key file: %s", path, strerror(-rc));
			goto out;
		}
		off += (size_t)n;
	}
	if (fsync(fd) != 0) {
		rc = -errno;
		macc_errf(err, rc, "%s: cannot sync key file: %s", path, strerror(-rc));
	}
out:
	sodium_memzero(line, sizeof(line));
	if (close(fd) != 0 && rc == 0) {
		rc = -errno;
		macc_errf(err, rc, "%s: cannot close key file: %s", path, strerror(-rc));
	}
	return rc;
}

void macc_identity_finish(struct macc_identity *id)
{
	if (id != NULL) {
		sodium_memzero(id, sizeof(*id));
	}
}

void macc_pubkey_to_b64(const struct macc_pubkey *pk, char out[MACC_KEY_B64_SIZE])
{
	sodium_bin2base64(out, MACC_KEY_B64_SIZE, pk->bytes, MACC_PUBKEY_BYTES,
			  sodium_base64_VARIANT_ORIGINAL);
}

int macc_pubkey_from_b64(struct macc_pubkey *ret_pk, const char *b64, struct macc_errmsg *err)
{
	uint8_t key[MACC_PUBKEY_BYTES];
	int rc;

	if (macc_crypto_init() != 0) {
		return macc_errf(err, MACC_ECRYPTO, "libsodium initialisation failed");
	}
	rc = key_from_b64(key, b64, "public key", err);
	if (rc == 0) {
		memcpy(ret_pk->bytes, key, sizeof(key));
	}
	return rc;
}

bool macc_pubkey_equal(const struct macc_pubkey *a, const struct macc_pubkey *b)
{
	return sodium_memcmp(a->bytes, b->bytes, MACC_PUBKEY_BYTES) == 0;
}

int macc_pubkey_find(const struct macc_pubkey *keys, size_t n, const struct macc_pubkey *pk)
{
	for (size_t i = 0; i < n; i++) {
		if (macc_pubkey_equal(&keys[i], pk)) {
			return i > (size_t)0x7fffffff ? MACC_EUNKNOWNPEER : (int)i;
		}
	}
	return MACC_EUNKNOWNPEER;
}

int macc_key_generate_b64(char out[MACC_KEY_B64_SIZE])
{
	struct macc_identity id;
	int rc = macc_identity_generate(&id);

	if (rc == 0) {
		macc_identity_to_b64(&id, out);
	}
	macc_identity_finish(&id);
	return rc;
}

int macc_key_pubkey_from_secret_b64(const char *secret_b64, char out[MACC_KEY_B64_SIZE],
				    struct macc_errmsg *err)
{
	struct macc_identity id;
	int rc;

	memset(&id, 0, sizeof(id));
	rc = macc_identity_from_b64(&id, secret_b64, err);
	if (rc == 0) {
		macc_pubkey_to_b64(&id.pub, out);
	}
	macc_identity_finish(&id);
	return rc;
}

void macc_sign(const struct macc_identity *id, const void *msg, size_t len,
	       uint8_t sig[MACC_SIG_BYTES])
{
	crypto_sign_detached(sig, NULL, msg, len, id->secret);
}

int macc_verify(const struct macc_pubkey *pk, const void *msg, size_t len,
		const uint8_t sig[MACC_SIG_BYTES])
{
	if (macc_crypto_init() != 0) {
		return MACC_ECRYPTO;
	}
	return crypto_sign_verify_detached(sig, msg, len, pk->bytes) == 0 ? 0 : MACC_EBADSIG;
}

const char *macc_digest_name(int alg)
{
	switch (alg) {
	case MACC_DIGEST_BLAKE2B256:
		return "blake2b256";
	case MACC_DIGEST_SHA256:
		return "sha256";
	default:
		return "unknown";
	}
}

int macc_digest(int alg, uint8_t out[MACC_DIGEST_BYTES], const void *in, size_t len)
{
	unsigned n = 0;

	switch (alg) {
	case MACC_DIGEST_BLAKE2B256:
		macc_blake2b(out, MACC_DIGEST_BYTES, in, len);
		return 0;
	case MACC_DIGEST_SHA256:
		/* libcrypto's SHA-256 uses the SHA extensions (libsodium's does not: 5x slower). */
		if (EVP_Digest(in, len, out, &n, EVP_sha256(), NULL) != 1 || n != MACC_DIGEST_BYTES) {
			return MACC_ECRYPTO;
		}
		return 0;
	default:
		return MACC_EMALFORMED;
	}
}

#if defined(__x86_64__) || defined(__i386__)
/* CPUID leaf 1 ECX: PCLMULQDQ bit 1, AES 25, OSXSAVE 27, AVX 28; leaf 7 EBX: SHA 29. Read
 * directly (not __builtin_cpu_supports, whose feature names differ between compilers). */
static bool x86_has(unsigned ecx1_bits, unsigned ebx7_bits)
{
	unsigned a = 0, b = 0, c = 0, d = 0;

	if (!__get_cpuid(1, &a, &b, &c, &d) || (c & ecx1_bits) != ecx1_bits) {
		return false;
	}
	if ((ecx1_bits & (1u << 28)) != 0) {
		/* AVX also needs the OS to save the YMM registers (XCR0 bits 1 and 2). */
		unsigned lo, hi;

		if ((c & (1u << 27)) == 0) {
			return false;
		}
		__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
		(void)hi;
		if ((lo & 6u) != 6u) {
			return false;
		}
	}
	if (ebx7_bits != 0) {
		if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || (b & ebx7_bits) != ebx7_bits) {
			return false;
		}
	}
	return true;
}
#endif

bool macc_sha256_fast(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return x86_has(0, 1u << 29);
#elif defined(__aarch64__) && defined(HWCAP_SHA2)
	return (getauxval(AT_HWCAP) & HWCAP_SHA2) != 0;
#elif defined(__arm__) && defined(HWCAP2_SHA2)
	return (getauxval(AT_HWCAP2) & HWCAP2_SHA2) != 0;
#else
	return false;
#endif
}

int macc_digest_preferred(void)
{
	return macc_sha256_fast() ? MACC_DIGEST_SHA256 : MACC_DIGEST_BLAKE2B256;
}

void macc_blake2b(uint8_t *out, size_t outlen, const void *in, size_t len)
{
	(void)macc_crypto_init(); /* selects the fastest implementation; cannot fail usefully */
	crypto_generichash(out, outlen, in, len, NULL, 0);
}

void macc_blake2b_init(struct macc_blake2b *h, size_t outlen)
{
	(void)macc_crypto_init();
	h->outlen = outlen;
	crypto_generichash_init((crypto_generichash_state *)(void *)h->opaque, NULL, 0, outlen);
}

void macc_blake2b_update(struct macc_blake2b *h, const void *in, size_t len)
{
	crypto_generichash_update((crypto_generichash_state *)(void *)h->opaque, in, len);
}

void macc_blake2b_final(struct macc_blake2b *h, uint8_t *out)
{
	crypto_generichash_final((crypto_generichash_state *)(void *)h->opaque, out, h->outlen);
	sodium_memzero(h, sizeof(*h));
}

void macc_random_bytes(void *p, size_t n)
{
	if (macc_crypto_init() != 0) {
		/* Without a working CSPRNG no nonce or key may be produced: a programming or
		 * platform error that must not be papered over. */
		abort();
	}
	randombytes_buf(p, n);
}

bool macc_ct_equal(const void *a, const void *b, size_t n)
{
	return sodium_memcmp(a, b, n) == 0;
}

void macc_memzero(void *p, size_t n)
{
	sodium_memzero(p, n);
}

/* ---------------------------------------------------------------------------------------- */
/* Session encryption                                                                        */
/* ---------------------------------------------------------------------------------------- */

_Static_assert(crypto_kx_PUBLICKEYBYTES == MACC_KX_PUBKEY_BYTES, "kx public key size");
_Static_assert(crypto_kx_SECRETKEYBYTES == MACC_KX_SECRET_BYTES, "kx secret key size");
_Static_assert(crypto_kx_SEEDBYTES == MACC_KX_SEED_BYTES, "kx seed size");
_Static_assert(crypto_kx_SESSIONKEYBYTES == MACC_AEAD_KEY_BYTES, "kx session key size");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == MACC_AEAD_KEY_BYTES, "aead key");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == MACC_AEAD_NONCE_BYTES, "nonce");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == MACC_AEAD_TAG_BYTES, "tag size");
_Static_assert(crypto_aead_aes256gcm_NPUBBYTES == MACC_AEAD_GCM_NONCE_BYTES, "gcm nonce");
_Static_assert(crypto_aead_aes256gcm_ABYTES == MACC_AEAD_TAG_BYTES, "gcm tag size");
_Static_assert(crypto_kdf_CONTEXTBYTES == MACC_KDF_CTX_BYTES, "kdf context size");
_Static_assert(crypto_kdf_KEYBYTES == MACC_AEAD_KEY_BYTES, "kdf key size");

/* Piece size of the one-pass seal and open: each piece is encrypted and authenticated while it
 * is still in L1/L2 (libcrypto's ChaCha20-Poly1305 runs ChaCha20 over a whole update, then
 * Poly1305 over it). A multiple of 64 (the ChaCha20 block) and of 16 (the GCM block). */
#define SEAL_PIECE 65536

/* Messages up to this size (PING, PONG, BYE, small STATEs) go to libsodium's one-shot AEADs
 * instead: an EVP context costs ~2 us per message, libsodium ~0.3 to 0.9 us, and libcrypto's
 * higher throughput only pays for itself above ~5 KB (bench_crypto's small-message rows). The
 * bytes are the same either way (the unit tests hold both paths against each other). */
#define SMALL_MSG 4096

int macc_kx_keypair(uint8_t pk[MACC_KX_PUBKEY_BYTES], uint8_t sk[MACC_KX_SECRET_BYTES],
		    const uint8_t *seed)
{
	int rc;

	if (macc_crypto_init() != 0) {
		return MACC_ECRYPTO;
	}
	rc = seed != NULL ? crypto_kx_seed_keypair(pk, sk, seed) : crypto_kx_keypair(pk, sk);
	if (rc != 0) {
		sodium_memzero(sk, MACC_KX_SECRET_BYTES);
		return MACC_ECRYPTO;
	}
	return 0;
}

int macc_kx_session_keys(uint8_t rx[MACC_AEAD_KEY_BYTES], uint8_t tx[MACC_AEAD_KEY_BYTES],
			 const uint8_t self_pk[MACC_KX_PUBKEY_BYTES],
			 const uint8_t self_sk[MACC_KX_SECRET_BYTES],
			 const uint8_t peer_pk[MACC_KX_PUBKEY_BYTES])
{
	uint8_t r[MACC_AEAD_KEY_BYTES], t[MACC_AEAD_KEY_BYTES];
	int cmp, rc;

	if (macc_crypto_init() != 0) {
		return MACC_ECRYPTO;
	}
	/* Public values: an ordinary comparison is fine. */
	cmp = memcmp(self_pk, peer_pk, MACC_KX_PUBKEY_BYTES);
	if (cmp == 0) {
		return MACC_ECRYPTO;
	}
	if (cmp < 0) {
		rc = crypto_kx_client_session_keys(r, t, self_pk, self_sk, peer_pk);
	} else {
		rc = crypto_kx_server_session_keys(r, t, self_pk, self_sk, peer_pk);
	}
	if (rc == 0) {
		memcpy(rx, r, sizeof(r));
		memcpy(tx, t, sizeof(t));
	}
	sodium_memzero(r, sizeof(r));
	sodium_memzero(t, sizeof(t));
	return rc == 0 ? 0 : MACC_ECRYPTO;
}

int macc_kdf_derive(uint8_t *out, size_t outlen, uint64_t id, const char ctx[MACC_KDF_CTX_BYTES],
		    const uint8_t key[MACC_AEAD_KEY_BYTES])
{
	uint8_t k[crypto_kdf_KEYBYTES];
	int rc;

	if (macc_crypto_init() != 0) {
		return MACC_ECRYPTO;
	}
	if (outlen < crypto_kdf_BYTES_MIN || outlen > crypto_kdf_BYTES_MAX) {
		return MACC_ECRYPTO;
	}
	memcpy(k, key, sizeof(k)); /* out may alias key */
	rc = crypto_kdf_derive_from_key(out, outlen, id, ctx, k);
	sodium_memzero(k, sizeof(k));
	return rc == 0 ? 0 : MACC_ECRYPTO;
}

const char *macc_aead_name(int aead)
{
	switch (aead) {
	case MACC_AEAD_XCHACHA20POLY1305:
		return "xchacha20poly1305";
	case MACC_AEAD_AES256GCM:
		return "aes256gcm";
	default:
		return "unknown";
	}
}

size_t macc_aead_nonce_bytes(int aead)
{
	switch (aead) {
	case MACC_AEAD_XCHACHA20POLY1305:
		return MACC_AEAD_NONCE_BYTES;
	case MACC_AEAD_AES256GCM:
		return MACC_AEAD_GCM_NONCE_BYTES;
	default:
		return 0;
	}
}

uint64_t macc_aead_max_bytes(int aead)
{
	switch (aead) {
	case MACC_AEAD_XCHACHA20POLY1305:
		return ((uint64_t)1 << 38) - 64; /* 2^32 - 1 blocks of 64 after the Poly1305 key */
	case MACC_AEAD_AES256GCM:
		return ((uint64_t)1 << 36) - 32; /* SP 800-38D: 2^39 - 256 bits */
	default:
		return 0;
	}
}

bool macc_aead_aes_fast(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return x86_has((1u << 25) | (1u << 1) | (1u << 28), 0);
#elif defined(__aarch64__) && defined(HWCAP_AES) && defined(HWCAP_PMULL)
	unsigned long hw = getauxval(AT_HWCAP);

	return (hw & HWCAP_AES) != 0 && (hw & HWCAP_PMULL) != 0;
#elif defined(__arm__) && defined(HWCAP2_AES) && defined(HWCAP2_PMULL)
	unsigned long hw = getauxval(AT_HWCAP2);

	return (hw & HWCAP2_AES) != 0 && (hw & HWCAP2_PMULL) != 0;
#else
	return false;
#endif
}

/*
 * An EVP context keyed for one message of suite `aead` (enc: seal, else open), with the
 * associated data already absorbed. XChaCha20-Poly1305 becomes ChaCha20-Poly1305 IETF under
 * the subkey HChaCha20(key, nonce[0..16)) with the nonce 0^4 || nonce[16..24), which is how the
 * IETF XChaCha construction is defined. NULL on failure. The subkey is wiped here; libcrypto
 * wipes its copy when the context is freed (EVP_CIPHER_CTX_free clears it).
 */
static EVP_CIPHER_CTX *aead_ctx(int aead, bool enc, const uint8_t *nonce,
				const uint8_t key[MACC_AEAD_KEY_BYTES], const void *ad,
				size_t adlen)
{
	uint8_t subkey[crypto_core_hchacha20_OUTPUTBYTES], n12[MACC_AEAD_GCM_NONCE_BYTES];
	const EVP_CIPHER *cipher;
	const uint8_t *k = key, *iv = nonce;
	EVP_CIPHER_CTX *ctx;
	int outl = 0, ok;

	if (aead == MACC_AEAD_XCHACHA20POLY1305) {
		(void)macc_crypto_init();
		crypto_core_hchacha20(subkey, nonce, key, NULL);
		memset(n12, 0, 4);
		memcpy(n12 + 4, nonce + crypto_core_hchacha20_INPUTBYTES, 8);
		k = subkey;
		iv = n12;
		cipher = EVP_chacha20_poly1305();
	} else {
		cipher = EVP_aes_256_gcm();
	}
	ctx = EVP_CIPHER_CTX_new();
	ok = ctx != NULL && adlen <= INT_MAX &&
	     EVP_CipherInit_ex(ctx, cipher, NULL, k, iv, enc ? 1 : 0) == 1 &&
	     (adlen == 0 || EVP_CipherUpdate(ctx, NULL, &outl, ad, (int)adlen) == 1);
	sodium_memzero(subkey, sizeof(subkey));
	if (!ok) {
		EVP_CIPHER_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* Run the cipher of ctx over in[0..len) into out, in pieces of SEAL_PIECE. */
static bool aead_update(EVP_CIPHER_CTX *ctx, uint8_t *out, const uint8_t *in, size_t len)
{
	while (len > 0) {
		size_t n = len < SEAL_PIECE ? len : SEAL_PIECE;
		int outl = 0;

		/* Both suites are stream modes: every byte in gives a byte out at once. */
		if (EVP_CipherUpdate(ctx, out, &outl, in, (int)n) != 1 || (size_t)outl != n) {
			return false;
		}
		out += n;
		in += n;
		len -= n;
	}
	return true;
}

static int aead_check(int aead, uint64_t total)
{
	if (macc_aead_nonce_bytes(aead) == 0) {
		return MACC_EMALFORMED;
	}
	return total > macc_aead_max_bytes(aead) ? MACC_ETOOBIG : 0;
}

/* True when libsodium runs suite `aead` for a message of `len` bytes (see SMALL_MSG). */
static bool aead_small(int aead, uint64_t len)
{
	if (len > SMALL_MSG) {
		return false;
	}
	(void)macc_crypto_init();
	return aead == MACC_AEAD_XCHACHA20POLY1305 || crypto_aead_aes256gcm_is_available() != 0;
}

/* A small message, gathered into one buffer and sealed by libsodium. */
static void seal_small(int aead, uint8_t *c, uint8_t tag[MACC_AEAD_TAG_BYTES],
		       const struct macc_iov *m, size_t nm, size_t total, const void *ad,
		       size_t adlen, const uint8_t *nonce, const uint8_t key[MACC_AEAD_KEY_BYTES])
{
	uint8_t buf[SMALL_MSG];
	size_t off = 0;

	for (size_t i = 0; i < nm; i++) {
		if (m[i].len > 0) {
			memcpy(buf + off, m[i].base, m[i].len);
			off += m[i].len;
		}
	}
	if (aead == MACC_AEAD_XCHACHA20POLY1305) {
		crypto_aead_xchacha20poly1305_ietf_encrypt_detached(c, tag, NULL, buf, total, ad,
								    adlen, NULL, nonce, key);
	} else {
		crypto_aead_aes256gcm_encrypt_detached(c, tag, NULL, buf, total, ad, adlen, NULL,
						       nonce, key);
	}
	sodium_memzero(buf, total);
}

int macc_aead_seal_iov(int aead, uint8_t *c, uint8_t tag[MACC_AEAD_TAG_BYTES],
		       const struct macc_iov *m, size_t nm, const void *ad, size_t adlen,
		       const uint8_t *nonce, const uint8_t key[MACC_AEAD_KEY_BYTES])
{
	EVP_CIPHER_CTX *ctx;
	uint64_t total = 0;
	size_t off = 0;
	int rc, outl = 0;

	for (size_t i = 0; i < nm; i++) {
		total += m[i].len;
		if (total > macc_aead_max_bytes(aead)) {
			break;
		}
	}
	if ((rc = aead_check(aead, total)) != 0) {
		return rc;
	}
	if (aead_small(aead, total)) {
		seal_small(aead, c, tag, m, nm, (size_t)total, ad, adlen, nonce, key);
		return 0;
	}
	ctx = aead_ctx(aead, true, nonce, key, ad, adlen);
	if (ctx == NULL) {
		return MACC_ECRYPTO;
	}
	rc = MACC_ECRYPTO;
	for (size_t i = 0; i < nm; i++) {
		if (!aead_update(ctx, c + off, m[i].base, m[i].len)) {
			goto out;
		}
		off += m[i].len;
	}
	if (EVP_CipherFinal_ex(ctx, c + off, &outl) == 1 && outl == 0 &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, MACC_AEAD_TAG_BYTES, tag) == 1) {
		rc = 0;
	}
out:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int macc_aead_open(int aead, uint8_t *m, const uint8_t *c, size_t len,
		   const uint8_t tag[MACC_AEAD_TAG_BYTES], const void *ad, size_t adlen,
		   const uint8_t *nonce, const uint8_t key[MACC_AEAD_KEY_BYTES])
{
	uint8_t t[MACC_AEAD_TAG_BYTES];
	EVP_CIPHER_CTX *ctx = NULL;
	int rc, outl = 0;

	if ((rc = aead_check(aead, len)) != 0) {
		return rc; /* nothing written */
	}
	if (aead_small(aead, len)) {
		/* libsodium checks the tag before it decrypts anything. */
		rc = aead == MACC_AEAD_XCHACHA20POLY1305
			     ? crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
				       m, NULL, c, len, tag, ad, adlen, nonce, key)
			     : crypto_aead_aes256gcm_decrypt_detached(m, NULL, c, len, tag, ad, adlen,
								      nonce, key);
		rc = rc == 0 ? 0 : MACC_EBADSIG;
		goto out;
	}
	ctx = aead_ctx(aead, false, nonce, key, ad, adlen);
	rc = MACC_ECRYPTO;
	if (ctx == NULL || !aead_update(ctx, m, c, len)) {
		goto out;
	}
	memcpy(t, tag, sizeof(t)); /* the ctrl takes a non-const pointer */
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, MACC_AEAD_TAG_BYTES, t) != 1) {
		goto out;
	}
	/* Decryption ran ahead of the check: on a bad tag the plaintext is wiped below. */
	rc = EVP_CipherFinal_ex(ctx, m + len, &outl) == 1 && outl == 0 ? 0 : MACC_EBADSIG;
out:
	EVP_CIPHER_CTX_free(ctx);
	if (rc != 0) {
		sodium_memzero(m, len);
	}
	return rc;
}

int macc_aead_seal(uint8_t *c, uint8_t tag[MACC_AEAD_TAG_BYTES], const void *m, size_t len,
		   const void *ad, size_t adlen, const uint8_t nonce[MACC_AEAD_NONCE_BYTES],
		   const uint8_t key[MACC_AEAD_KEY_BYTES])
{
	(void)macc_crypto_init();
	crypto_aead_xchacha20poly1305_ietf_encrypt_detached(c, tag, NULL, m, len, ad, adlen, NULL,
							    nonce, key);
	return 0;
}

int macc_aead_seal_ref_aes256gcm(uint8_t *c, uint8_t tag[MACC_AEAD_TAG_BYTES], const void *m,
				 size_t len, const void *ad, size_t adlen,
				 const uint8_t nonce[MACC_AEAD_GCM_NONCE_BYTES],
				 const uint8_t key[MACC_AEAD_KEY_BYTES])
{
	if (macc_crypto_init() != 0 || crypto_aead_aes256gcm_is_available() == 0) {
		return MACC_ECRYPTO;
	}
	crypto_aead_aes256gcm_encrypt_detached(c, tag, NULL, m, len, ad, adlen, NULL, nonce, key);
	return 0;
}
