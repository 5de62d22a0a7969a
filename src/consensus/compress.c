/*
 * compress.c - compressed exchange with error feedback (CHOCO-gossip, Koloskova et al. 2019;
 * macc-algorithms(7) "Compressed exchange with error feedback").
 *
 * Compressors and their wire blob (consensus.h has the byte layout):
 *   bf16  the top 16 bits of each float after round-to-nearest-even on the low 16: relative
 *         error <= 2^-8 (half an ulp of an 8-bit significand).
 *   int8  blocks of 256 values, scale = max|x| / 127 (float; the decoder refuses scales above
 *         FLT_MAX/127, which no finite input produces, so decoded values stay finite), code =
 *         roundf(x / scale) clamped to [-127, 127] (roundf: ties away from zero, whatever the
 *         FPU rounding mode), value = scale * (float)code: error <= max|x|/254 per block, plus
 *         float rounding. A block whose scale is 0 (all zeros, or max|x| so tiny that
 *         max|x|/127 underflows) sends zeros.
 *   topk  the k = round(F n) (at least 1) entries of largest |x|, ties to the lower index, as
 *         ascending u32 indices and exact f32 values; zeros elsewhere. The k-th largest key is
 *         found by an 8-bit radix select over the bit patterns of |x| (for finite non-negative
 *         floats, integer order is numeric order): 4 passes, 256 counters on the stack, no sort.
 *
 * The decoder is the trust boundary: a blob comes from the network (after its signature checked
 * out, but a peer may still be buggy or hostile). It validates everything before touching the
 * accumulator (validate, then commit), so a bad blob changes nothing.
 *
 * The sender applies its own blob through the same decoder, so its public copy is bit for bit
 * what every receiver holds. The mixhat step forms mixhat(x) (and mixhat(v)) into scratch and
 * then runs macc_consensus_step with self weight 0 and one neighbour of weight 1 carrying them:
 * 0*x + 1*m == m exactly, so the algorithm's update equations are the same code as the
 * uncompressed path. With compressor `none` none of this runs: callers keep today's path.
 *
 * Default gossip steps (gamma) come from the macc-algorithms(7) check reproduced in test_edge.c
 * (8-agent ring, heterogeneous quadratics, dmsgd, beta 0.9): bf16 and int8 run at gamma = 1
 * and end where uncompressed dmsgd ends; topk:0.1 diverges at gamma >= 0.5 and runs at 0.2.
 *
 * This file is built with -ffp-contract=off like algo.c: the sums must round the same way on
 * every host, the simulator's and the daemon's.
 */
#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "macc/consensus.h"

enum {
	BLOCK = MACC_COMPRESS_INT8_BLOCK,
	HDR = MACC_COMPRESS_HEADER,
};

static const float GAMMA_TOPK = 0.2f;

int macc_compress_parse(const char *spec, struct macc_compressor *ret, struct macc_errmsg *err)
{
	struct macc_compressor c = {.kind = MACC_COMPRESS_NONE, .frac = 0.0};

	if (spec == NULL) {
		return macc_errf(err, MACC_ESPEC, "compress: no spec given");
	}
	if (strcmp(spec, "none") == 0) {
		c.kind = MACC_COMPRESS_NONE;
	} else if (strcmp(spec, "bf16") == 0) {
		c.kind = MACC_COMPRESS_BF16;
	} else if (strcmp(spec, "int8") == 0) {
		c.kind = MACC_COMPRESS_INT8;
	} else if (strncmp(spec, "topk:", 5) == 0) {
		char *e = NULL;
		const char *a = spec + 5;
		double f = (*a >= '0' && *a <= '9') || *a == '.' ? strtod(a, &e) : NAN;

		if (e == NULL || *e != '\0' || !(f > 0.0 && f <= 1.0)) {
			return macc_errf(err, MACC_ESPEC, "compress '%s': expected topk:F with "
					 "0 < F <= 1", spec);
		}
		c.kind = MACC_COMPRESS_TOPK;
		c.frac = f;
	} else {
		return macc_errf(err, MACC_ESPEC, "unknown compressor '%s' (none, bf16, int8, "
				 "topk:F)", spec);
	}
	*ret = c;
	return 0;
}

float macc_compress_default_gamma(const struct macc_compressor *c)
{
	return c->kind == MACC_COMPRESS_TOPK ? GAMMA_TOPK : 1.0f;
}

size_t macc_compress_count(const struct macc_compressor *c, size_t n)
{
	if (c->kind != MACC_COMPRESS_TOPK || n == 0) {
		return n;
	}
	double k = floor(c->frac * (double)n + 0.5);

	if (k < 1.0) {
		return 1;
	}
	return k >= (double)n ? n : (size_t)k;
}

size_t macc_compress_size(const struct macc_compressor *c, size_t n)
{
	switch (c->kind) {
	case MACC_COMPRESS_BF16:
		return HDR + 2 * n;
	case MACC_COMPRESS_INT8:
		return HDR + 4 * ((n + BLOCK - 1) / BLOCK) + n;
	case MACC_COMPRESS_TOPK:
		return HDR + 8 * macc_compress_count(c, n);
	default:
		return 0;
	}
}

/* ---- little-endian helpers (the blob is unaligned inside a msgpack bin) ---- */

static void put_u16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put_f32(uint8_t *p, float f)
{
	uint32_t v;

	memcpy(&v, &f, 4);
	put_u32(p, v);
}

static uint16_t get_u16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return le16toh(v);
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static float get_f32(const uint8_t *p)
{
	uint32_t v = get_u32(p);
	float f;

	memcpy(&f, &v, 4);
	return f;
}

static uint32_t f32_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	return u;
}

/* ---- encoder: d_i = a_i - b_i (b NULL: d = a), formed on the fly ---- */

static inline float diff(const float *a, const float *b, size_t i)
{
	return b != NULL ? a[i] - b[i] : a[i];
}

static void bf16_encode(size_t n, const float *a, const float *b, uint8_t *p)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t u = f32_bits(diff(a, b, i));

		put_u16(p + 2 * i, (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16));
	}
}

static void int8_encode(size_t n, const float *a, const float *b, uint8_t *p)
{
	size_t nb = (n + BLOCK - 1) / BLOCK;
	uint8_t *codes = p + 4 * nb;

	for (size_t blk = 0; blk < nb; blk++) {
		size_t lo = blk * BLOCK, hi = lo + BLOCK < n ? lo + BLOCK : n;
		float m = 0.0f, scale;

		for (size_t i = lo; i < hi; i++) {
			float x = fabsf(diff(a, b, i));

			m = x > m ? x : m;
		}
		scale = m / 127.0f;
		put_f32(p + 4 * blk, scale);
		for (size_t i = lo; i < hi; i++) {
			float q = scale > 0.0f ? roundf(diff(a, b, i) / scale) : 0.0f;

			q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
			codes[i] = (uint8_t)(int8_t)q;
		}
	}
}

/* The k-th largest key (1-based k <= n) of |d| bit patterns: radix select, 8 bits per pass. */
static uint32_t topk_threshold(size_t n, const float *a, const float *b, size_t k)
{
	uint32_t prefix = 0;

	for (int shift = 24; shift >= 0; shift -= 8) {
		size_t cnt[256] = {0};

		for (size_t i = 0; i < n; i++) {
			uint32_t key = f32_bits(diff(a, b, i)) & 0x7fffffffu;

			if (shift == 24 || (key >> (shift + 8)) == prefix) {
				cnt[(key >> shift) & 0xffu]++;
			}
		}
		for (int bkt = 255; bkt >= 0; bkt--) {
			if (cnt[bkt] >= k) {
				prefix = (prefix << 8) | (uint32_t)bkt;
				break;
			}
			k -= cnt[bkt];
		}
	}
	return prefix;
}

static void topk_encode(size_t n, const float *a, const float *b, size_t k, uint8_t *p)
{
	uint32_t t = topk_threshold(n, a, b, k);
	size_t gt = 0, out = 0, eq_take;

	for (size_t i = 0; i < n; i++) {
		gt += (f32_bits(diff(a, b, i)) & 0x7fffffffu) > t;
	}
	eq_take = k - gt;
	for (size_t i = 0; i < n && out < k; i++) {
		float d = diff(a, b, i);
		uint32_t key = f32_bits(d) & 0x7fffffffu;

		if (key > t || (key == t && eq_take > 0)) {
			if (key == t) {
				eq_take--;
			}
			put_u32(p + 4 * out, (uint32_t)i);
			put_f32(p + 4 * k + 4 * out, d);
			out++;
		}
	}
}

static ssize_t encode_diff(const struct macc_compressor *c, size_t n, const float *a,
			   const float *b, uint8_t *out, size_t cap, struct macc_errmsg *err)
{
	size_t size = macc_compress_size(c, n), count;

	if (c->kind != MACC_COMPRESS_BF16 && c->kind != MACC_COMPRESS_INT8 &&
	    c->kind != MACC_COMPRESS_TOPK) {
		return macc_errf(err, -EINVAL, "compress: no blob for compressor %d", (int)c->kind);
	}
	if (n > UINT32_MAX) {
		return macc_errf(err, -EINVAL, "compress: %zu values do not fit u32 indices", n);
	}
	if (cap < size) {
		return macc_errf(err, -ENOSPC, "compress: blob needs %zu bytes, buffer has %zu",
				 size, cap);
	}
	for (size_t i = 0; i < n; i++) {
		float d = diff(a, b, i);

		if (!isfinite(d)) {
			return macc_errf(err, -ERANGE, "compress: value %zu is not finite", i);
		}
		/* bf16 rounding of a value near FLT_MAX overflows to infinity */
		uint32_t u = f32_bits(d) & 0x7fffffffu;

		if (c->kind == MACC_COMPRESS_BF16 &&
		    u + 0x7fffu + ((u >> 16) & 1u) >= 0x7f800000u) {
			return macc_errf(err, -ERANGE, "compress: value %zu overflows bf16", i);
		}
	}
	switch (c->kind) {
	case MACC_COMPRESS_BF16:
		count = n;
		bf16_encode(n, a, b, out + HDR);
		break;
	case MACC_COMPRESS_INT8:
		count = (n + BLOCK - 1) / BLOCK;
		int8_encode(n, a, b, out + HDR);
		break;
	default:
		count = macc_compress_count(c, n);
		if (count > 0) {
			topk_encode(n, a, b, count, out + HDR);
		}
		break;
	}
	out[0] = (uint8_t)c->kind;
	out[1] = 0;
	put_u16(out + 2, 0);
	put_u32(out + 4, (uint32_t)n);
	put_u32(out + 8, (uint32_t)count);
	return (ssize_t)size;
}

ssize_t macc_compress_encode(const struct macc_compressor *c, size_t n, const float *d,
			     uint8_t *out, size_t cap, struct macc_errmsg *err)
{
	return encode_diff(c, n, d, NULL, out, cap, err);
}

/* ---- decoder: validate everything, then add ---- */

static int blob_check(const uint8_t *blob, size_t len, size_t n, struct macc_errmsg *err)
{
	uint32_t kind, bn, count;
	uint64_t want;

	if (len < HDR) {
		return macc_errf(err, MACC_EMALFORMED, "compressed vector: %zu bytes, shorter than "
				 "the %d-byte header", len, HDR);
	}
	kind = blob[0];
	if (kind != MACC_COMPRESS_BF16 && kind != MACC_COMPRESS_INT8 &&
	    kind != MACC_COMPRESS_TOPK) {
		return macc_errf(err, MACC_EMALFORMED, "compressed vector: unknown encoding %u",
				 kind);
	}
	if (blob[1] != 0 || get_u16(blob + 2) != 0) {
		return macc_errf(err, MACC_EMALFORMED, "compressed vector: reserved header bytes "
				 "are not zero");
	}
	bn = get_u32(blob + 4);
	count = get_u32(blob + 8);
	if ((uint64_t)bn != (uint64_t)n) {
		return macc_errf(err, MACC_EMALFORMED, "compressed vector: n = %u, expected %zu",
				 bn, n);
	}
	switch (kind) {
	case MACC_COMPRESS_BF16:
		if (count != bn) {
			return macc_errf(err, MACC_EMALFORMED,
					 "compressed vector: bf16 count %u != n %u", count, bn);
		}
		want = HDR + 2 * (uint64_t)bn;
		break;
	case MACC_COMPRESS_INT8:
		if ((uint64_t)count != ((uint64_t)bn + BLOCK - 1) / BLOCK) {
			return macc_errf(err, MACC_EMALFORMED,
					 "compressed vector: int8 block count %u, expected %llu "
					 "for n %u", count,
					 (unsigned long long)(((uint64_t)bn + BLOCK - 1) / BLOCK),
					 bn);
		}
		want = HDR + 4 * (uint64_t)count + bn;
		break;
	default:
		if (count > bn) {
			return macc_errf(err, MACC_EMALFORMED,
					 "compressed vector: top-k count %u > n %u", count, bn);
		}
		want = HDR + 8 * (uint64_t)count;
		break;
	}
	if ((uint64_t)len != want) {
		return macc_errf(err, MACC_EMALFORMED,
				 "compressed vector: %zu bytes, expected %llu", len,
				 (unsigned long long)want);
	}
	const uint8_t *p = blob + HDR;

	switch (kind) {
	case MACC_COMPRESS_BF16:
		for (uint32_t i = 0; i < bn; i++) {
			if ((get_u16(p + 2 * (size_t)i) & 0x7f80u) == 0x7f80u) {
				return macc_errf(err, MACC_EMALFORMED, "compressed vector: bf16 "
						 "value %u is not finite", i);
			}
		}
		break;
	case MACC_COMPRESS_INT8:
		for (uint32_t b = 0; b < count; b++) {
			float s = get_f32(p + 4 * (size_t)b);

			/* scale * 127 must stay finite too */
			if (!isfinite(s) || s < 0.0f || s > FLT_MAX / 127.0f) {
				return macc_errf(err, MACC_EMALFORMED, "compressed vector: int8 "
						 "block %u has scale %g", b, (double)s);
			}
		}
		for (uint32_t i = 0; i < bn; i++) {
			if (p[4 * (size_t)count + i] == 0x80) {
				return macc_errf(err, MACC_EMALFORMED, "compressed vector: int8 "
						 "code -128 at %u (codes are -127..127)", i);
			}
		}
		break;
	default:
		for (uint32_t i = 0; i < count; i++) {
			uint32_t idx = get_u32(p + 4 * (size_t)i);
			float v = get_f32(p + 4 * (size_t)count + 4 * (size_t)i);

			if (idx >= bn || (i > 0 && idx <= get_u32(p + 4 * (size_t)(i - 1)))) {
				return macc_errf(err, MACC_EMALFORMED, "compressed vector: top-k "
						 "index %u at %u is out of range or not ascending",
						 idx, i);
			}
			if (!isfinite(v)) {
				return macc_errf(err, MACC_EMALFORMED, "compressed vector: top-k "
						 "value %u is not finite", i);
			}
		}
		break;
	}
	return (int)kind;
}

int macc_compress_check(const uint8_t *blob, size_t len, size_t n, struct macc_errmsg *err)
{
	int kind = blob_check(blob, len, n, err);

	return kind < 0 ? kind : 0;
}

int macc_compress_decode_add(const uint8_t *blob, size_t len, size_t n, float *acc,
			     enum macc_compress_kind *ret_kind, struct macc_errmsg *err)
{
	int kind = blob_check(blob, len, n, err);
	const uint8_t *p = blob + HDR;

	if (kind < 0) {
		return kind;
	}
	switch (kind) {
	case MACC_COMPRESS_BF16:
		for (size_t i = 0; i < n; i++) {
			uint32_t u = (uint32_t)get_u16(p + 2 * i) << 16;
			float f;

			memcpy(&f, &u, 4);
			acc[i] += f;
		}
		break;
	case MACC_COMPRESS_INT8: {
		size_t nb = (n + BLOCK - 1) / BLOCK;
		const uint8_t *codes = p + 4 * nb;

		for (size_t blk = 0; blk < nb; blk++) {
			size_t lo = blk * BLOCK, hi = lo + BLOCK < n ? lo + BLOCK : n;
			float s = get_f32(p + 4 * blk);

			for (size_t i = lo; i < hi; i++) {
				acc[i] += s * (float)(int8_t)codes[i];
			}
		}
		break;
	}
	default: {
		size_t k = get_u32(blob + 8);

		for (size_t i = 0; i < k; i++) {
			acc[get_u32(p + 4 * i)] += get_f32(p + 4 * k + 4 * i);
		}
		break;
	}
	}
	if (ret_kind != NULL) {
		*ret_kind = (enum macc_compress_kind)kind;
	}
	return 0;
}

/* ---- CHOCO state and step ---- */

void macc_choco_finish(struct macc_choco *c)
{
	if (c == NULL) {
		return;
	}
	free(c->xhat_self);
	free(c->vhat_self);
	free(c->xhat_nb);
	free(c->vhat_nb);
	memset(c, 0, sizeof(*c));
}

int macc_choco_init(struct macc_choco *c, size_t n, size_t nnb, bool mom, const float *x0)
{
	struct macc_choco t = {.n = n, .nnb = nnb, .mom = mom};
	size_t cells = n * (nnb ? nnb : 1);

	if (nnb != 0 && cells / nnb != n) {
		return -ENOMEM;
	}
	t.xhat_self = malloc((n ? n : 1) * sizeof(float));
	t.xhat_nb = malloc((cells ? cells : 1) * sizeof(float));
	if (mom) {
		t.vhat_self = calloc(n ? n : 1, sizeof(float));
		t.vhat_nb = calloc(cells ? cells : 1, sizeof(float));
	}
	if (t.xhat_self == NULL || t.xhat_nb == NULL ||
	    (mom && (t.vhat_self == NULL || t.vhat_nb == NULL))) {
		macc_choco_finish(&t);
		return -ENOMEM;
	}
	memcpy(t.xhat_self, x0, n * sizeof(float));
	for (size_t i = 0; i < nnb; i++) {
		memcpy(t.xhat_nb + i * n, x0, n * sizeof(float));
	}
	*c = t;
	return 0;
}

float *macc_choco_peer_x(const struct macc_choco *c, size_t i)
{
	return c->xhat_nb + i * c->n;
}

float *macc_choco_peer_v(const struct macc_choco *c, size_t i)
{
	return c->vhat_nb != NULL ? c->vhat_nb + i * c->n : NULL;
}

ssize_t macc_choco_send(const struct macc_compressor *c, size_t n, const float *val, float *hat,
			uint8_t *out, size_t cap, struct macc_errmsg *err)
{
	ssize_t len = encode_diff(c, n, val, hat, out, cap, err);
	int rc;

	if (len < 0) {
		return len;
	}
	rc = macc_compress_decode_add(out, (size_t)len, n, hat, NULL, err);
	return rc < 0 ? rc : len;
}

/* m = own + gamma * sum_i w[i] * (hat_i - hat_self), neighbours in order, w == 0 skipped.
 * own == NULL means the dsgd half-step x - alpha * g, formed on the fly. */
static void mixhat(float *m, size_t n, const float *own, const float *x, const float *g,
		   float alpha, float gamma, const float *hat_self, const float *hat_nb,
		   const float *w, size_t nnb)
{
	memset(m, 0, n * sizeof(*m));
	for (size_t k = 0; k < nnb; k++) {
		const float *h = hat_nb + k * n;
		const float wk = w[k];

		if (wk == 0.0f) {
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			m[i] += wk * (h[i] - hat_self[i]);
		}
	}
	for (size_t i = 0; i < n; i++) {
		const float o = own != NULL ? own[i] : x[i] - alpha * g[i];

		m[i] = o + gamma * m[i];
	}
}

void macc_choco_step(enum macc_algo a, const struct macc_hparams *hp, float gamma, size_t n,
		     float *x, float *v, const float *g, const struct macc_choco *c, const float *w,
		     float *scratch)
{
	const bool mix_v = a == MACC_ALGO_DMSGD && hp->omega != 0.0f;
	float *mx = scratch, *mv = scratch + n;
	struct macc_neighbour one = {.w = 1.0f, .x = mx, .v = mix_v ? mv : NULL};

	assert(!mix_v || (c->vhat_self != NULL && c->vhat_nb != NULL)); /* init with mom */
	mixhat(mx, n, a == MACC_ALGO_DSGD ? NULL : x, x, g, hp->alpha, gamma, c->xhat_self,
	       c->xhat_nb, w, c->nnb);
	if (mix_v) {
		mixhat(mv, n, v, x, g, hp->alpha, gamma, c->vhat_self, c->vhat_nb, w, c->nnb);
	}
	macc_consensus_step(a, hp, n, x, v, g, 0.0f, &one, 1, NULL);
}
