/*
 * fuzz_idx.c - fuzzes the IDX parser, macc_dataset_parse_idx(), and the in-memory gunzip.
 *
 * Input layout: two bytes (big-endian) give the length of the images part, the rest is the
 * labels part (a short input gives a short or empty images part). A part that starts with the
 * gzip magic is inflated first, with a 4 MiB cap, as the file loader would. Whatever the bytes,
 * the parser must return 0 or a negative code; on success every label must be in
 * [0, nclasses) and every pixel in [0, 1], else the harness aborts so the fuzzer reports it.
 */
#include <stdint.h>
#include <stdlib.h>

#include "macc/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inflate a gzip part in place of the original; returns the buffer to free (or NULL). */
static uint8_t *maybe_gunzip(const uint8_t **p, size_t *len)
{
	uint8_t *out = NULL;
	size_t olen;

	if (*len >= 2 && (*p)[0] == 0x1f && (*p)[1] == 0x8b) {
		if (macc_dataset_gunzip(*p, *len, "fuzz.gz", 4u << 20, &out, &olen, NULL) == 0) {
			*p = out;
			*len = olen;
		}
	}
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct macc_dataset d = {0};
	struct macc_errmsg err;
	const uint8_t *img, *lbl;
	size_t split, il, ll;
	uint8_t *gi, *gl;
	int rc;

	if (size < 2) {
		return 0;
	}
	split = (size_t)data[0] << 8 | data[1];
	data += 2;
	size -= 2;
	if (split > size) {
		split = size;
	}
	img = data;
	il = split;
	lbl = data + split;
	ll = size - split;
	gi = maybe_gunzip(&img, &il);
	gl = maybe_gunzip(&lbl, &ll);
	rc = macc_dataset_parse_idx(img, il, "img", lbl, ll, "lbl", &d, &err);
	if (rc > 0) {
		abort();
	}
	if (rc == 0) {
		if (d.n == 0 || d.dim == 0 || d.dim != (size_t)d.channels * d.height * d.width) {
			abort();
		}
		for (size_t i = 0; i < d.n; i++) {
			if (d.y[i] < 0 || (uint32_t)d.y[i] >= d.nclasses) {
				abort();
			}
		}
		for (size_t i = 0; i < d.n * d.dim; i++) {
			if (!(d.x[i] >= 0.0f && d.x[i] <= 1.0f)) {
				abort();
			}
		}
	}
	macc_dataset_finish(&d);
	free(gi);
	free(gl);
	return 0;
}
