/*
 * data_internal.h - helpers shared by the dataset loaders (dataset.c, idx.c, cifar.c, csv.c).
 *
 * Not a public interface: the loaders' contract is in include/macc/data.h.
 */
#ifndef MACC_DATA_INTERNAL_H
#define MACC_DATA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "macc/data.h"
#include "macc/err.h"

/*
 * Read a whole file into a malloc'ed buffer, inflating it when it starts with the gzip magic.
 * Files (raw or inflated) over MACC_DATA_MAX_BYTES fail with MACC_EDATA; I/O errors with -errno.
 * The message names `path`.
 */
int macc_data_read_file(const char *path, uint8_t **ret_buf, size_t *ret_len,
			struct macc_errmsg *err);

/* n * dim floats fit under MACC_DATA_MAX_BYTES and dim under MACC_DATA_MAX_DIM. */
static inline int macc_data_size_ok(size_t n, size_t dim)
{
	if (dim == 0 || dim > MACC_DATA_MAX_DIM) {
		return 0;
	}
	return n <= MACC_DATA_MAX_BYTES / sizeof(float) / dim && n <= UINT32_MAX;
}

#endif
