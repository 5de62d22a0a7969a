/*
 * err.c - names for macc error codes and the errmsg helper.
 *
 * The table is indexed by (-code - 1000) so adding a code means adding one row at the end; a
 * static assertion keeps the table and the enum the same length.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "macc/err.h"

static const struct {
	const char *name;
	const char *text;
} table[] = {
	{"malformed", "malformed input"},
	{"bad_signature", "bad signature"},
	{"replay", "replayed or stale message"},
	{"version", "unsupported version"},
	{"too_big", "too big"},
	{"unknown_peer", "unknown peer"},
	{"model_mismatch", "model mismatch"},
	{"config", "invalid configuration"},
	{"data", "invalid data"},
	{"corrupt", "corrupt file (checksum mismatch)"},
	{"graph", "invalid graph or mixing weights"},
	{"spec", "invalid spec"},
	{"state", "not allowed in the current state"},
	{"crypto", "cryptographic failure"},
	{"key_permissions", "key file is accessible by group or others"},
	{"permission", "permission denied"},
	{"unknown_command", "unknown command"},
	{"timeout", "timed out"},
	{"closed", "connection closed"},
	{"nonfinite", "non-finite value (NaN or infinity)"},
	{"rate_limited", "rate limit exceeded"},
	{"encrypt_mismatch", "session encryption setting differs from the peer's"},
	{"out_of_range", "value beyond its bound"},
	{"slow", "peer does not read (send queue full)"},
};

_Static_assert(sizeof(table) / sizeof(table[0]) == (size_t)(MACC_EMALFORMED - MACC_ERR_LAST),
	       "error table and enum out of sync");

static int index_of(int code)
{
	if (code <= MACC_EMALFORMED && code > MACC_ERR_LAST) {
		return MACC_EMALFORMED - code;
	}
	return -1;
}

const char *macc_strerror(int code)
{
	int i = index_of(code);

	if (i >= 0) {
		return table[i].text;
	}
	if (code < 0 && code > MACC_EMALFORMED) {
		return strerror(-code);
	}
	return code == 0 ? "success" : "unknown error";
}

const char *macc_errname(int code)
{
	int i = index_of(code);

	if (i >= 0) {
		return table[i].name;
	}
	return code == 0 ? "ok" : "errno";
}

int macc_errf(struct macc_errmsg *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL) {
		va_start(ap, fmt);
		vsnprintf(err->text, sizeof(err->text), fmt, ap);
		va_end(ap);
	}
	return code;
}
