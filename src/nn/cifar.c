/*
 * cifar.c - CIFAR-10 binary batches.
 *
 * A batch file is a sequence of 3073-byte records: one label byte (0..9) and 3072 pixel bytes,
 * the 32x32 red plane, then green, then blue. Samples keep that channel-major layout
 * (channels 3, height 32, width 32) so convolutions read them directly. The train split is the
 * concatenation of data_batch_1..5: the loader reads and checks each file once to count
 * records (so one allocation holds them all), then reads each again to convert it; the second
 * read comes from the page cache and keeps only one raw file in memory at a time.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macc/data.h"

#include "data_internal.h"

#define CIFAR_PIXELS 3072
#define CIFAR_RECORD (CIFAR_PIXELS + 1)
#define CIFAR_CLASSES 10

/* Check a batch file's bytes; returns the record count or MACC_EDATA. */
static int cifar_check(const uint8_t *buf, size_t len, const char *name, size_t *ret_n,
		       struct macc_errmsg *err)
{
	if (len == 0) {
		return macc_errf(err, MACC_EDATA, "%s: empty file", name);
	}
	if (len % CIFAR_RECORD != 0) {
		return macc_errf(err, MACC_EDATA,
				 "%s: truncated: %zu bytes is not a whole number of %d-byte CIFAR-10 "
				 "records (last record has %zu bytes)",
				 name, len, CIFAR_RECORD, len % CIFAR_RECORD);
	}
	size_t n = len / CIFAR_RECORD;

	for (size_t i = 0; i < n; i++) {
		uint8_t l = buf[i * CIFAR_RECORD];

		if (l >= CIFAR_CLASSES) {
			return macc_errf(err, MACC_EDATA, "%s: record %zu: label %u out of range [0, %d)",
					 name, i, l, CIFAR_CLASSES);
		}
	}
	*ret_n = n;
	return 0;
}

static void cifar_convert(const uint8_t *buf, size_t n, float *x, int32_t *y)
{
	for (size_t i = 0; i < n; i++) {
		const uint8_t *r = buf + i * CIFAR_RECORD;
		float *xi = x + i * CIFAR_PIXELS;

		y[i] = r[0];
		for (size_t k = 0; k < CIFAR_PIXELS; k++) {
			xi[k] = (float)r[1 + k] / 255.0f;
		}
	}
}

static void cifar_shape(struct macc_dataset *d)
{
	d->dim = CIFAR_PIXELS;
	d->channels = 3;
	d->height = 32;
	d->width = 32;
	d->nclasses = CIFAR_CLASSES;
}

int macc_dataset_parse_cifar10(const uint8_t *buf, size_t len, const char *name,
			       struct macc_dataset *ret, struct macc_errmsg *err)
{
	struct macc_dataset d;
	size_t n;
	int rc;

	memset(&d, 0, sizeof(d));
	rc = cifar_check(buf, len, name, &n, err);
	if (rc < 0) {
		return rc;
	}
	if (!macc_data_size_ok(n, CIFAR_PIXELS)) {
		return macc_errf(err, MACC_EDATA, "%s: too many records (%zu)", name, n);
	}
	cifar_shape(&d);
	d.n = n;
	d.x = malloc(n * CIFAR_PIXELS * sizeof(float));
	d.y = malloc(n * sizeof(int32_t));
	if (d.x == NULL || d.y == NULL) {
		macc_dataset_finish(&d);
		return macc_errf(err, -ENOMEM, "%s: out of memory for %zu records", name, n);
	}
	cifar_convert(buf, n, d.x, d.y);
	*ret = d;
	return 0;
}

int macc_dataset_load_cifar10(const char *const *paths, size_t npaths, struct macc_dataset *ret,
			      struct macc_errmsg *err)
{
	struct macc_dataset d;
	uint8_t *buf = NULL;
	size_t len, n, total = 0, at = 0;
	int rc;

	memset(&d, 0, sizeof(d));
	if (paths == NULL || npaths == 0) {
		return macc_errf(err, -EINVAL, "cifar10: no batch files given");
	}
	for (size_t f = 0; f < npaths; f++) {
		rc = macc_data_read_file(paths[f], &buf, &len, err);
		if (rc < 0) {
			return rc;
		}
		rc = cifar_check(buf, len, paths[f], &n, err);
		free(buf);
		buf = NULL;
		if (rc < 0) {
			return rc;
		}
		total += n;
		if (!macc_data_size_ok(total, CIFAR_PIXELS)) {
			return macc_errf(err, MACC_EDATA, "%s: too many records in total (%zu)",
					 paths[f], total);
		}
	}
	cifar_shape(&d);
	d.n = total;
	d.x = malloc(total * CIFAR_PIXELS * sizeof(float));
	d.y = malloc(total * sizeof(int32_t));
	if (d.x == NULL || d.y == NULL) {
		rc = macc_errf(err, -ENOMEM, "cifar10: out of memory for %zu records", total);
		goto fail;
	}
	for (size_t f = 0; f < npaths; f++) {
		rc = macc_data_read_file(paths[f], &buf, &len, err);
		if (rc < 0) {
			goto fail;
		}
		/* Re-check: the file may have changed between the two reads. */
		rc = cifar_check(buf, len, paths[f], &n, err);
		if (rc == 0 && n > total - at) {
			rc = macc_errf(err, MACC_EDATA, "%s: file grew while loading", paths[f]);
		}
		if (rc < 0) {
			free(buf);
			goto fail;
		}
		cifar_convert(buf, n, d.x + at * CIFAR_PIXELS, d.y + at);
		at += n;
		free(buf);
	}
	if (at != total) {
		rc = macc_errf(err, MACC_EDATA, "%s: file shrank while loading", paths[npaths - 1]);
		goto fail;
	}
	*ret = d;
	return 0;
fail:
	macc_dataset_finish(&d);
	return rc;
}
