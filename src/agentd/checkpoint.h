/*
 * checkpoint.h - crash-safe training checkpoints of one agent (internal to macc-agentd).
 *
 * A checkpoint is one file, `<state_dir>/checkpoint.bin`, holding everything needed to resume
 * training exactly where it stopped: parameters, momentum, round, epoch, the batcher's state,
 * the dropout rng, and hashes of the model and of the training config it belongs to. It ends
 * with a CRC-32 over all preceding bytes, so a torn or corrupted file is detected.
 *
 * Writing is atomic: a temporary file is written and fsync'ed, the current checkpoint is
 * hard-linked to `checkpoint.prev` (the previous good one is kept), the temporary is renamed over
 * `checkpoint.bin`, and the directory is fsync'ed. Loading tries `checkpoint.bin` and falls back to
 * `checkpoint.prev` when the former is missing, truncated or corrupt; the caller is told which.
 *
 * Layout (all integers little-endian):
 *   "MACCCKP1"  u32 version  u32 header_len
 *   u64 config_hash  u64 model_hash  u64 nparams  u64 round  u64 epoch  u64 flags
 *   u64 batcher_rng[4]  u64 batcher_epoch  u64 batcher_pos  u64 rng[4]
 *   f32 params[nparams]  f32 momentum[nparams]
 *   version 2 only: u64 std_dim  f32 std_mean[std_dim]  f32 std_inv[std_dim]
 *   u32 crc32(all of the above)
 * Version 1 is a model without a feature standardiser (flags 0); version 2 adds the
 * standardiser (nn.h: the transform agreed before training, agree.h) and sets flags bit 0
 * (MACC_CKPT_F_STANDARDIZER). A checkpoint without a standardiser is still written as version 1,
 * byte for byte as before, so older readers keep reading those; they refuse a version 2 file
 * with a clear version error. This reader takes both.
 */
#ifndef MACC_AGENTD_CHECKPOINT_H
#define MACC_AGENTD_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macc/data.h"
#include "macc/err.h"
#include "macc/rng.h"

#define MACC_CKPT_NAME "checkpoint.bin"
#define MACC_CKPT_PREV "checkpoint.prev"
#define MACC_CKPT_F_STANDARDIZER 1u /* flags: a version 2 file with the standardiser */

struct macc_ckpt {
	uint64_t config_hash;
	uint64_t model_hash;
	uint64_t round;
	uint64_t epoch;
	uint64_t flags;
	struct macc_batcher_state batcher;
	struct macc_rng rng;
	size_t nparams;
	float *params;   /* nparams floats: borrowed by save, caller's buffer for load */
	float *momentum; /* nparams floats, same */
	/* The model's feature standardiser (macc_model_standardizer), when has_std: std_dim (the
	 * model's input size) floats each, borrowed by save. Load: has_std from the file, and
	 * std_dim too when it has one (else the caller's value stays); the vectors are copied into
	 * std_mean / std_inv when the caller passes them (std_dim floats each, with std_dim set to
	 * the model's input size; NULL: not wanted). */
	bool has_std;
	size_t std_dim;
	float *std_mean, *std_inv;
};

/* Write `c` atomically into directory `dir` (which must exist). May block on disk: call it from
 * the worker thread. Returns 0 or -errno with err naming the file and the failing step. */
int macc_ckpt_save(const char *dir, const struct macc_ckpt *c, struct macc_errmsg *err);

/*
 * Load the newest good checkpoint from `dir` into `c`, whose params/momentum point to caller
 * buffers of `c->nparams` floats and whose config_hash/model_hash hold the expected values;
 * std_mean/std_inv may point to buffers of `c->std_dim` floats for the standardiser (then
 * c->has_std says whether the file had one; a standardiser of another size: MACC_EMODEL).
 * Nothing in *c is changed unless 0 is returned. Returns 0 when a checkpoint was loaded
 * (*ret_used = its path, static storage of the caller: a buffer of PATH_MAX), -ENOENT when there
 * is none, MACC_ECORRUPT when every file present is corrupt, MACC_EMODEL when a good checkpoint
 * belongs to another model or config (never silently ignored). `warn` (may be NULL) receives
 * a description of a corrupt primary file even when the fallback succeeded (empty otherwise).
 */
int macc_ckpt_load(const char *dir, struct macc_ckpt *c, char *ret_used, size_t used_size,
		   struct macc_errmsg *warn, struct macc_errmsg *err);

/* Check one checkpoint file (same rules as load, without hash checks); fills header fields of
 * *ret (has_std and std_dim too) and, when params/momentum are non-NULL and nparams matches,
 * the vectors; when std_mean/std_inv are non-NULL and the file has a standardiser of
 * ret->std_dim features, the standardiser (another size: MACC_EMODEL). A file without a
 * standardiser leaves the caller's std buffers alone and has_std false. */
int macc_ckpt_read_file(const char *path, struct macc_ckpt *ret, struct macc_errmsg *err);

#endif
