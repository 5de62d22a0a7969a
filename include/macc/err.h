/*
 * err.h - macc error codes and error messages.
 *
 * Every function that can fail returns an int: 0 (or a count) on success, a negative code on
 * failure. The code is either -errno (system errors) or one of the MACC_E* values below, which
 * start at -1000 so they never collide with errno. macc_strerror() names both kinds.
 *
 * Codes say *what kind* of failure happened, so callers can count them per reason (the daemon
 * counts rejected peer messages by code). The human detail ("train-images.gz: bad magic 0x0803,
 * expected 0x0803") travels in an optional struct macc_errmsg that the caller owns; pure library
 * code writes into it and never logs. Passing NULL for the errmsg is always allowed.
 */
#ifndef MACC_ERR_H
#define MACC_ERR_H

#include <stddef.h>

enum {
	MACC_EMALFORMED = -1000,   /* input does not parse: bad msgpack, bad syntax, wrong type */
	MACC_EBADSIG = -1001,      /* signature or proof of key possession does not verify */
	MACC_EREPLAY = -1002,      /* old session, already-seen round, or round past the run */
	MACC_EVERSION = -1003,     /* protocol or file format version not supported */
	MACC_ETOOBIG = -1004,      /* frame, message or value larger than the configured limit */
	MACC_EUNKNOWNPEER = -1005, /* public key not in the allow-list / wrong sender */
	MACC_EMODEL = -1006,       /* model spec, hash or parameter count does not match */
	MACC_ECONFIG = -1007,      /* invalid configuration value */
	MACC_EDATA = -1008,        /* invalid data file: bad magic, dims, labels, cells, truncation */
	MACC_ECORRUPT = -1009,     /* checksum mismatch: checkpoint or file corrupted */
	MACC_EGRAPH = -1010,       /* graph not connected, or mixing weights invalid */
	MACC_ESPEC = -1011,        /* unknown or invalid spec string (model, topology, partition...) */
	MACC_ESTATE = -1012,       /* operation not valid in the current state */
	MACC_ECRYPTO = -1013,      /* cryptographic library failure (init, key derivation) */
	MACC_EKEYPERM = -1014,     /* key file readable by group or others */
	MACC_EPERM = -1015,        /* caller not allowed to run a mutating command */
	MACC_EUNKNOWNCMD = -1016,  /* unknown control command */
	MACC_ETIMEOUT = -1017,     /* operation timed out */
	MACC_ECLOSED = -1018,      /* peer or session closed */
	MACC_ENONFINITE = -1019,   /* NaN or infinity in a vector that must be finite */
	MACC_ERATELIMIT = -1020,   /* more requests than the per-second limit allows */
	MACC_EENCRYPT = -1021,     /* peers disagree on session encryption (encrypt = yes/no) */
	MACC_ERANGE = -1022,       /* a value is finite but beyond its bound (state_value_max) */
	MACC_ESLOW = -1023,        /* a peer does not read: its send queue passed the bound */
	MACC_ERR_LAST = -1024
};

/* Name of an error code: "malformed message", "No such file or directory", ... Never NULL. */
const char *macc_strerror(int code);

/* Short stable identifier of an error code, for metrics labels and JSON: "malformed",
 * "bad_signature", "replay", ... For -errno codes: "errno". Never NULL. */
const char *macc_errname(int code);

/*
 * Optional human detail for an error, owned by the caller. Library functions that take a
 * `struct macc_errmsg *err` write one sentence into it on failure (naming the file, line, key,
 * peer or field that was wrong) and leave it untouched on success.
 */
struct macc_errmsg {
	char text[512];
};

/* printf-style; err may be NULL (then nothing happens). Returns `code`, so callers can write
 * `return macc_errf(err, MACC_EDATA, "%s: bad magic", path);`. */
int macc_errf(struct macc_errmsg *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
