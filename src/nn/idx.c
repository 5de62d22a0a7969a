/*
 * idx.c - the IDX format of the MNIST family (MNIST, Fashion-MNIST, EMNIST, KMNIST).
 *
 * An IDX file is a 4-byte magic 00 00 TYPE NDIM, NDIM big-endian u32 dimensions, then the
 * elements in row-major order. Images are ubyte (TYPE 0x08) with 2, 3 or 4 dimensions
 * (n, dim), (n, rows, cols) or (n, channels, rows, cols); labels are a 1-dimensional vector of
 * ubyte, signed byte (0x09) or big-endian int32 (0x0C). The header is checked completely
 * (magic, type, rank, non-zero dimensions, size limits) and the payload size must match the
 * declared dimensions exactly before anything is allocated, so a corrupt header fails as
 * "truncated" or "too large" instead of asking for gigabytes.
 *
 * Pixels become floats in one vectorisable loop (p / 255), labels in another.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macc/data.h"

#include "data_internal.h"

struct idx_header {
	uint8_t type;
	uint8_t ndim;
	uint32_t dims[4];
	size_t count;   /* product of dims[1..] (elements per item) */
	size_t off;     /* payload offset */
};

static const char *type_name(uint8_t t)
{
	switch (t) {
	case 0x08:
		return "ubyte";
	case 0x09:
		return "byte";
	case 0x0B:
		return "int16";
	case 0x0C:
		return "int32";
	case 0x0D:
		return "float32";
	case 0x0E:
		return "float64";
	default:
		return "unknown";
	}
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Parse and sanity-check an IDX header; `what` is "images" or "labels" for messages. */
static int parse_header(const uint8_t *b, size_t len, const char *name, const char *what,
			struct idx_header *h, struct macc_errmsg *err)
{
	if (len == 0) {
		return macc_errf(err, MACC_EDATA, "%s: empty file", name);
	}
	if (len < 4) {
		return macc_errf(err, MACC_EDATA, "%s: truncated IDX header (%zu bytes)", name, len);
	}
	if (b[0] != 0 || b[1] != 0) {
		return macc_errf(err, MACC_EDATA,
				 "%s: bad magic 0x%02x%02x%02x%02x, not an IDX %s file "
				 "(expected 0x0000TTNN)",
				 name, b[0], b[1], b[2], b[3], what);
	}
	h->type = b[2];
	h->ndim = b[3];
	if (h->ndim == 0 || h->ndim > 4) {
		return macc_errf(err, MACC_EDATA, "%s: wrong dimensions: %u-dimensional IDX %s file",
				 name, h->ndim, what);
	}
	if (len < 4 + 4 * (size_t)h->ndim) {
		return macc_errf(err, MACC_EDATA, "%s: truncated IDX header (%zu bytes, %u dimensions)",
				 name, len, h->ndim);
	}
	h->count = 1;
	for (unsigned i = 0; i < h->ndim; i++) {
		h->dims[i] = be32(b + 4 + 4 * i);
		if (h->dims[i] == 0) {
			return macc_errf(err, MACC_EDATA, "%s: wrong dimensions: dimension %u is 0",
					 name, i);
		}
	}
	for (unsigned i = 1; i < h->ndim; i++) {
		if (h->count > MACC_DATA_MAX_DIM / h->dims[i]) {
			return macc_errf(err, MACC_EDATA,
					 "%s: declared dimensions too large (sample over %zu values)",
					 name, MACC_DATA_MAX_DIM);
		}
		h->count *= h->dims[i];
	}
	h->off = 4 + 4 * (size_t)h->ndim;
	return 0;
}

/* Payload of `items` elements of `esize` bytes must fill the rest of the file exactly. */
static int check_payload(size_t len, const struct idx_header *h, size_t items, size_t esize,
			 const char *name, struct macc_errmsg *err)
{
	size_t want = items * esize, have = len - h->off;

	if (have < want) {
		return macc_errf(err, MACC_EDATA,
				 "%s: truncated: %u items need %zu bytes of data, file has %zu",
				 name, h->dims[0], want, have);
	}
	if (have > want) {
		return macc_errf(err, MACC_EDATA,
				 "%s: %zu bytes of trailing garbage after %u items", name, have - want,
				 h->dims[0]);
	}
	return 0;
}

/* The labels file of n images (header, type, count, payload) into d->y and d->nclasses. */
static int parse_labels(const uint8_t *lbl, size_t lbl_len, const char *lbl_name,
			const char *img_name, size_t n, struct macc_dataset *d,
			struct macc_errmsg *err)
{
	struct idx_header hl = {0};
	size_t esize;
	int32_t maxlab = -1;
	int rc;

	rc = parse_header(lbl, lbl_len, lbl_name, "labels", &hl, err);
	if (rc < 0) {
		return rc;
	}
	if (hl.ndim != 1) {
		return macc_errf(err, MACC_EDATA,
				 "%s: wrong dimensions: labels file has %u dimensions, expected 1",
				 lbl_name, hl.ndim);
	}
	if (hl.type == 0x08 || hl.type == 0x09) {
		esize = 1;
	} else if (hl.type == 0x0C) {
		esize = 4;
	} else {
		return macc_errf(err, MACC_EDATA,
				 "%s: unsupported label element type 0x%02x (%s), expected ubyte, "
				 "byte or int32",
				 lbl_name, hl.type, type_name(hl.type));
	}
	if (hl.dims[0] != n) {
		return macc_errf(err, MACC_EDATA,
				 "image/label count mismatch: %s has %zu images, %s has %u labels",
				 img_name, n, lbl_name, hl.dims[0]);
	}
	rc = check_payload(lbl_len, &hl, n, esize, lbl_name, err);
	if (rc < 0) {
		return rc;
	}
	d->y = malloc(n * sizeof(int32_t));
	if (d->y == NULL) {
		return macc_errf(err, -ENOMEM, "%s: out of memory for %zu labels", lbl_name, n);
	}
	const uint8_t *lp = lbl + hl.off;

	for (size_t i = 0; i < n; i++) {
		int32_t v;

		if (hl.type == 0x08) {
			v = lp[i];
		} else if (hl.type == 0x09) {
			v = (int8_t)lp[i];
		} else {
			v = (int32_t)be32(lp + 4 * i);
		}
		if (v < 0 || (uint32_t)v >= MACC_DATA_MAX_CLASSES) {
			return macc_errf(err, MACC_EDATA,
					 "%s: label %d of item %zu out of range [0, %u)", lbl_name,
					 v, i, MACC_DATA_MAX_CLASSES);
		}
		d->y[i] = v;
		if (v > maxlab) {
			maxlab = v;
		}
	}
	d->nclasses = (uint32_t)maxlab + 1;
	return 0;
}

int macc_dataset_parse_idx(const uint8_t *img, size_t img_len, const char *img_name,
			   const uint8_t *lbl, size_t lbl_len, const char *lbl_name,
			   struct macc_dataset *ret, struct macc_errmsg *err)
{
	struct idx_header hi = {0};
	struct macc_dataset d;
	size_t n;
	int rc;

	memset(&d, 0, sizeof(d));
	rc = parse_header(img, img_len, img_name, "images", &hi, err);
	if (rc < 0) {
		return rc;
	}
	if (hi.type != 0x08) {
		return macc_errf(err, MACC_EDATA,
				 "%s: unsupported image element type 0x%02x (%s), expected 0x08 ubyte",
				 img_name, hi.type, type_name(hi.type));
	}
	if (hi.ndim < 2) {
		return macc_errf(err, MACC_EDATA,
				 "%s: wrong dimensions: images file has 1 dimension, expected 3 "
				 "(count, rows, columns)",
				 img_name);
	}
	n = hi.dims[0];
	if (!macc_data_size_ok(n, hi.count)) {
		return macc_errf(err, MACC_EDATA,
				 "%s: declared dimensions too large: %zu images of %zu pixels "
				 "exceed the %zu-byte limit",
				 img_name, n, hi.count, MACC_DATA_MAX_BYTES);
	}
	rc = check_payload(img_len, &hi, n * hi.count, 1, img_name, err);
	if (rc < 0) {
		return rc;
	}

	if (lbl != NULL) {
		rc = parse_labels(lbl, lbl_len, lbl_name, img_name, n, &d, err);
		if (rc < 0) {
			goto fail;
		}
	}
	d.n = n;
	d.dim = hi.count;
	if (hi.ndim == 2) {
		d.channels = 1;
		d.height = 1;
		d.width = hi.dims[1];
	} else if (hi.ndim == 3) {
		d.channels = 1;
		d.height = hi.dims[1];
		d.width = hi.dims[2];
	} else {
		d.channels = hi.dims[1];
		d.height = hi.dims[2];
		d.width = hi.dims[3];
	}

	d.x = malloc(n * d.dim * sizeof(float));
	if (d.x == NULL) {
		rc = macc_errf(err, -ENOMEM, "%s: out of memory for %zu x %zu floats", img_name, n,
			       d.dim);
		goto fail;
	}
	const uint8_t *ip = img + hi.off;
	size_t total = n * d.dim;
	float *x = d.x;

	for (size_t i = 0; i < total; i++) {
		x[i] = (float)ip[i] / 255.0f;
	}
	*ret = d;
	return 0;
fail:
	macc_dataset_finish(&d);
	return rc;
}
