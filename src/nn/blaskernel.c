/*
 * blaskernel.c - the name of the BLAS kernel this process computes with, for the HELLO platform
 * field and `macc-ctl status` / `peers` (OpenBLAS is used only in src/nn, so its query lives
 * here too).
 *
 * OpenBLAS picks its kernel (Haswell, SkylakeX, Zen, ARMV8, NeoverseN1, ...) once, when the
 * library is loaded, from the CPU it runs on and OPENBLAS_CORETYPE; openblas_get_corename()
 * reports that choice. Two agents with different kernels (or architectures) compute the same
 * maths with different rounding, so their digests are not comparable bit for bit: showing the
 * kernel is how an operator tells "mixed fleet" from "corrupted state".
 *
 * Stop-gap: the kernel-selection work adds src/nn/blas.c with its own macc_nn_blas_kernel();
 * when it lands, this file goes (and its line in meson.build).
 */
#include <cblas.h>

#include "macc/nn.h"

const char *macc_nn_blas_kernel(void)
{
	const char *k = openblas_get_corename();

	return k != NULL ? k : "unknown";
}
