/*
 * mpread.c - the bounded msgpack reader both codecs use (wire.c: the peer protocol; ctlproto.c:
 * the control protocol, as the check before msgpack-c unpacks).
 *
 * It reads a buffer in place and never allocates: every declared length and count is checked
 * against the bytes that remain before anything is read (a count of 4 billion over a 10-byte
 * input fails at once, where msgpack-c's unpacker would size a zone from it), nesting is bounded
 * by the caller's depth, and strings and binaries come back as pointers into the input.
 * Integers are accepted in any encoding whose value fits what is asked for.
 */
#include <stdint.h>
#include <string.h>

#include "macc/err.h"

#include "mpread.h"


static bool need(const struct macc_mp_rd *r, size_t n)
{
	return n <= r->len - r->off;
}

uint64_t macc_mp_be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++) {
		v = v << 8 | p[i];
	}
	return v;
}

/* Read a big-endian length of n bytes following the type byte. */
static int rd_len(struct macc_mp_rd *r, size_t n, size_t *ret)
{
	if (!need(r, n)) {
		return MACC_EMALFORMED;
	}
	*ret = (size_t)macc_mp_be(r->p + r->off, n);
	r->off += n;
	return 0;
}

/* Container header: *ret_count entries (pairs for maps) whose minimum size must fit. */
int macc_mp_container(struct macc_mp_rd *r, bool *ret_is_map, size_t *ret_count)
{
	uint8_t t;
	size_t n;
	int rc;

	if (!need(r, 1)) {
		return MACC_EMALFORMED;
	}
	t = r->p[r->off++];
	if (t >= 0x80 && t <= 0x8f) {
		*ret_is_map = true;
		n = t & 0x0f;
	} else if (t >= 0x90 && t <= 0x9f) {
		*ret_is_map = false;
		n = t & 0x0f;
	} else if (t == 0xdc || t == 0xdd || t == 0xde || t == 0xdf) {
		*ret_is_map = t >= 0xde;
		rc = rd_len(r, (t & 1) ? 4 : 2, &n);
		if (rc != 0) {
			return rc;
		}
	} else {
		return MACC_EMALFORMED;
	}
	/* Each element needs at least one byte: a huge count over a short input fails here. */
	if (n > r->len - r->off || (*ret_is_map && n > (r->len - r->off) / 2)) {
		return MACC_EMALFORMED;
	}
	*ret_count = n;
	return 0;
}

/* Skip one value of any type, validating lengths; depth bounds the recursion. */
int macc_mp_skip(struct macc_mp_rd *r, int depth, int max_depth)
{
	uint8_t t;
	size_t n;
	int rc;

	if (depth > max_depth) {
		return MACC_EMALFORMED;
	}
	if (!need(r, 1)) {
		return MACC_EMALFORMED;
	}
	t = r->p[r->off];
	if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
		r->off++; /* fixint, nil, bool */
		return 0;
	}
	if ((t >= 0x80 && t <= 0x9f) || (t >= 0xdc && t <= 0xdf)) {
		bool is_map;

		rc = macc_mp_container(r, &is_map, &n);
		if (rc != 0) {
			return rc;
		}
		for (size_t i = 0; i < (is_map ? 2 * n : n); i++) {
			rc = macc_mp_skip(r, depth + 1, max_depth);
			if (rc != 0) {
				return rc;
			}
		}
		return 0;
	}
	r->off++;
	if (t >= 0xa0 && t <= 0xbf) {
		n = t & 0x1f; /* fixstr */
	} else {
		switch (t) {
		case 0xcc: case 0xd0: n = 1; break; /* u8/i8 */
		case 0xcd: case 0xd1: n = 2; break;
		case 0xce: case 0xd2: case 0xca: n = 4; break;
		case 0xcf: case 0xd3: case 0xcb: n = 8; break;
		case 0xd4: n = 2; break; /* fixext: type + data */
		case 0xd5: n = 3; break;
		case 0xd6: n = 5; break;
		case 0xd7: n = 9; break;
		case 0xd8: n = 17; break;
		case 0xc4: case 0xd9: /* bin8/str8 */
			rc = rd_len(r, 1, &n);
			if (rc != 0) {
				return rc;
			}
			break;
		case 0xc5: case 0xda:
			rc = rd_len(r, 2, &n);
			if (rc != 0) {
				return rc;
			}
			break;
		case 0xc6: case 0xdb:
			rc = rd_len(r, 4, &n);
			if (rc != 0) {
				return rc;
			}
			break;
		case 0xc7: case 0xc8: case 0xc9: /* ext8/16/32: length, then type byte */
			rc = rd_len(r, t == 0xc7 ? 1 : t == 0xc8 ? 2 : 4, &n);
			if (rc != 0) {
				return rc;
			}
			if (n == SIZE_MAX) {
				return MACC_EMALFORMED;
			}
			n += 1;
			break;
		default: /* 0xc1: never used */
			return MACC_EMALFORMED;
		}
	}
	if (!need(r, n)) {
		return MACC_EMALFORMED;
	}
	r->off += n;
	return 0;
}

/* Read an unsigned integer (any msgpack integer encoding with a non-negative value). */
int macc_mp_uint(struct macc_mp_rd *r, uint64_t *ret)
{
	uint8_t t;
	size_t n;
	bool is_signed;
	uint64_t v;

	if (!need(r, 1)) {
		return MACC_EMALFORMED;
	}
	t = r->p[r->off];
	if (t <= 0x7f) {
		r->off++;
		*ret = t;
		return 0;
	}
	switch (t) {
	case 0xcc: n = 1; is_signed = false; break;
	case 0xcd: n = 2; is_signed = false; break;
	case 0xce: n = 4; is_signed = false; break;
	case 0xcf: n = 8; is_signed = false; break;
	case 0xd0: n = 1; is_signed = true; break;
	case 0xd1: n = 2; is_signed = true; break;
	case 0xd2: n = 4; is_signed = true; break;
	case 0xd3: n = 8; is_signed = true; break;
	default:
		return MACC_EMALFORMED;
	}
	if (!need(r, 1 + n)) {
		return MACC_EMALFORMED;
	}
	v = macc_mp_be(r->p + r->off + 1, n);
	if (is_signed && (v >> (8 * n - 1)) != 0) {
		return MACC_EMALFORMED; /* negative */
	}
	r->off += 1 + n;
	*ret = v;
	return 0;
}

/* Read a signed integer that fits int32 (any encoding). */
int macc_mp_int32(struct macc_mp_rd *r, int32_t *ret)
{
	uint8_t t;
	size_t n;
	int64_t v;

	if (!need(r, 1)) {
		return MACC_EMALFORMED;
	}
	t = r->p[r->off];
	if (t >= 0xe0) {
		r->off++;
		*ret = (int8_t)t;
		return 0;
	}
	if (t >= 0xd0 && t <= 0xd3) {
		uint64_t u;

		n = (size_t)1 << (t - 0xd0);
		if (!need(r, 1 + n)) {
			return MACC_EMALFORMED;
		}
		u = macc_mp_be(r->p + r->off + 1, n);
		/* Sign-extend from n bytes. */
		if (n < 8 && (u >> (8 * n - 1)) != 0) {
			u |= ~(uint64_t)0 << (8 * n);
		}
		memcpy(&v, &u, sizeof(v));
		if (v < INT32_MIN || v > INT32_MAX) {
			return MACC_EMALFORMED;
		}
		r->off += 1 + n;
		*ret = (int32_t)v;
		return 0;
	}
	{
		uint64_t u;
		int rc = macc_mp_uint(r, &u);

		if (rc != 0) {
			return rc;
		}
		if (u > INT32_MAX) {
			return MACC_EMALFORMED;
		}
		*ret = (int32_t)u;
		return 0;
	}
}

int macc_mp_f64(struct macc_mp_rd *r, double *ret)
{
	uint8_t t;
	uint64_t u;

	if (!need(r, 1)) {
		return MACC_EMALFORMED;
	}
	t = r->p[r->off];
	if (t == 0xcb && need(r, 9)) {
		u = macc_mp_be(r->p + r->off + 1, 8);
		memcpy(ret, &u, sizeof(*ret));
		r->off += 9;
		return 0;
	}
	if (t == 0xca && need(r, 5)) {
		uint32_t u32 = (uint32_t)macc_mp_be(r->p + r->off + 1, 4);
		float f;

		memcpy(&f, &u32, sizeof(f));
		*ret = f;
		r->off += 5;
		return 0;
	}
	return MACC_EMALFORMED;
}

/* str (want_bin false) or bin (want_bin true): pointer into the input and length. */
int macc_mp_bytes(struct macc_mp_rd *r, bool want_bin, const uint8_t **ret_p, size_t *ret_n)
{
	uint8_t t;
	size_t n;
	int rc = 0;

	if (!need(r, 1)) {
		return MACC_EMALFORMED;
	}
	t = r->p[r->off++];
	if (!want_bin && t >= 0xa0 && t <= 0xbf) {
		n = t & 0x1f;
	} else if ((want_bin && t == 0xc4) || (!want_bin && t == 0xd9)) {
		rc = rd_len(r, 1, &n);
	} else if ((want_bin && t == 0xc5) || (!want_bin && t == 0xda)) {
		rc = rd_len(r, 2, &n);
	} else if ((want_bin && t == 0xc6) || (!want_bin && t == 0xdb)) {
		rc = rd_len(r, 4, &n);
	} else {
		return MACC_EMALFORMED;
	}
	if (rc != 0) {
		return rc;
	}
	if (!need(r, n)) {
		return MACC_EMALFORMED;
	}
	*ret_p = r->p + r->off;
	*ret_n = n;
	r->off += n;
	return 0;
}
