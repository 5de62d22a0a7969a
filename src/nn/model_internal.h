/*
 * model_internal.h - internal: the layer stack that a model spec describes (spec.c parses and
 * prints it; model.c compiles it into the ops that run).
 *
 * Not a public interface: nn.h has the contract (struct macc_layer is the public view of one
 * layer of the stack).
 */
#ifndef MACC_NN_MODEL_INTERNAL_H
#define MACC_NN_MODEL_INTERNAL_H

#include <stddef.h>

#include "macc/err.h"
#include "macc/nn.h"

#define NN_MAX_LAYERS 128           /* layers of a stack */
#define NN_MAX_SPEC 1023            /* longest spec written inline */
#define NN_MAX_SPEC_FILE (64 << 10) /* longest model file */
#define NN_MAX_CANON 8192           /* longest canonical spec */
#define NN_MAX_WIDTH (1u << 24)     /* features, channels, sizes of one sample */
#define NN_MAX_PARAMS (1u << 30)    /* 4 GiB of floats per block */

struct nn_stack {
	struct macc_shape input;
	enum macc_loss loss;
	size_t nlayers;
	size_t nparams;
	struct macc_layer layers[NN_MAX_LAYERS];
};

/*
 * Resolve a spec (an alias, "@PATH" or a layer stack) into *st and its canonical spelling
 * (canon, NN_MAX_CANON bytes). Errors: MACC_ESPEC (message names the layer), -errno for an
 * unreadable model file, -ENOMEM.
 */
int nn_spec_resolve(const char *spec, struct nn_stack *st, char *canon,
		    struct macc_errmsg *err);

#endif
