/*
 * mpread.h - the bounded msgpack reader of src/proto (mpread.c), shared by the peer codec
 * (wire.c) and the control codec (ctlproto.c). Internal to src/proto.
 *
 * Every reader returns 0 and advances r->off past the value, or MACC_EMALFORMED (r->off then
 * says nothing useful): a wrong type, a value out of range, or a length or count beyond the
 * bytes that remain.
 */
#ifndef MACC_PROTO_MPREAD_H
#define MACC_PROTO_MPREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct macc_mp_rd {
	const uint8_t *p;
	size_t len;
	size_t off;
};

/* The big-endian unsigned value of p[0..n), n <= 8. */
uint64_t macc_mp_be(const uint8_t *p, size_t n);
/* A map or array header: *ret_count entries (pairs for maps), each known to fit. */
int macc_mp_container(struct macc_mp_rd *r, bool *ret_is_map, size_t *ret_count);
/* Skip one value of any type, validating every length; containers nest at most max_depth
 * below `depth`. */
int macc_mp_skip(struct macc_mp_rd *r, int depth, int max_depth);
/* A non-negative integer (any integer encoding). */
int macc_mp_uint(struct macc_mp_rd *r, uint64_t *ret);
/* An integer that fits int32 (any integer encoding). */
int macc_mp_int32(struct macc_mp_rd *r, int32_t *ret);
/* A float64 or float32. */
int macc_mp_f64(struct macc_mp_rd *r, double *ret);
/* A str (want_bin false) or bin (want_bin true): a pointer into the input and its length. */
int macc_mp_bytes(struct macc_mp_rd *r, bool want_bin, const uint8_t **ret_p, size_t *ret_n);

#endif
