/*
 * audit.h - the audit trail of excluded STATE messages: an append-only, bounded,
 * rotated log in the agent's state directory, and its offline verifier.
 *
 * What goes in. When robust mixing excludes a neighbour's state because it failed screening
 * (non-finite values, too far from the agent's own state), and `audit = yes`, the daemon appends
 * one entry: the sender's public key, the STATE's signed text exactly as signed (proto.h,
 * MACC_STATE_SIGNED_BYTES: domain prefix, both keys, both session nonces, type, round, BLAKE2b
 * digest of the body), the Ed25519 signature, the reason, the round and the time; and, with
 * `audit_evidence = yes`, the body bytes themselves in a bounded evidence directory. Anyone with
 * the sender's public key can then check what it sent (macc-ctl verify-audit). An entry is only
 * ever written after macc_audit_append has checked the signature (and the body's digest) itself
 * at that moment: the log never holds a claim it did not verify.
 *
 * File format (one entry per line, US-ASCII, fields in this order, separated by one space):
 *   macc-audit/1 seq=S time_ms=T round=R reason=WHY peer=NAME key=B64 signed=HEX sig=HEX
 *   body_len=N evidence=FILE check=HEX
 * seq: entry number, increasing across rotations; time_ms: wall clock, ms since the epoch;
 * round: the round in the signed text; reason: "nonfinite" or "distance"; peer: the sender's
 * configured name ([A-Za-z0-9._-]); key: base64 of the sender's 32-byte public key; signed:
 * hex of the 181-byte signed text; sig: hex of the 64-byte signature; body_len: bytes of the
 * body; evidence: the body's file name inside the evidence directory, or "-"; check: hex of the
 * 16-byte BLAKE2b of everything before " check=" (catches accidental damage to the fields the
 * signature does not cover; it is not a security property, the signature is).
 *
 * Bounds. audit.log grows to at most max_bytes, then is renamed audit.log.1 (audit.log.1 to
 * .2, ...), keeping `files` files in all (the oldest is deleted). Evidence files
 * (audit-evidence/SEQ.body, 20-digit seq) are kept within evidence_max_bytes in total, oldest
 * deleted first; a body larger than the whole bound is not stored (evidence=-). Writes are one
 * write(2) per line on an O_APPEND descriptor; a failed write is cut back (ftruncate) so the
 * file stays whole lines. Nothing here blocks on anything but the local disk, and every failure
 * is returned, never fatal: the caller counts it and goes on.
 *
 * Layering: in src/proto next to the codecs (it uses the signed STATE layout of proto.h and
 * crypto.h's verify and BLAKE2b); no msgpack, no libuv. Not thread-safe: one writer.
 */
#ifndef MACC_AUDIT_H
#define MACC_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macc/crypto.h"
#include "macc/err.h"
#include "macc/proto.h"

#define MACC_AUDIT_FILE "audit.log"
#define MACC_AUDIT_EVIDENCE_DIR "audit-evidence"
#define MACC_AUDIT_LINE_MAX 1024 /* an entry's line, newline included, is shorter */

struct macc_audit_entry {
	uint64_t seq;
	uint64_t time_ms;
	uint64_t round;
	char reason[16];   /* "nonfinite", "distance" */
	char peer[64];     /* the sender's configured name */
	struct macc_pubkey key;
	uint8_t text[MACC_STATE_SIGNED_BYTES]; /* the signed text, exactly as signed */
	uint8_t sig[MACC_SIG_BYTES];
	uint64_t body_len;
	char evidence[32]; /* file name in the evidence directory, "" = not stored */
};

struct macc_audit_opts {
	const char *dir;             /* the state directory (must exist) */
	uint64_t max_bytes;          /* per file, >= MACC_AUDIT_LINE_MAX */
	uint32_t files;              /* files kept, audit.log included, >= 1 */
	bool evidence;               /* store bodies in dir/audit-evidence */
	uint64_t evidence_max_bytes; /* total bytes of stored bodies */
};

struct macc_audit_stats {
	uint64_t entries;        /* appended since open */
	uint64_t evidence_files; /* bodies stored since open */
	uint64_t evidence_skipped; /* bodies not stored: larger than the bound, or a write failed */
	uint64_t pruned;         /* evidence files deleted to stay within the bound */
	uint64_t rotations;
};

struct macc_audit;

/*
 * Prepare the log in o->dir (strings copied). Reads the newest existing entry's seq so numbering
 * continues, and the evidence directory's contents (created when evidence is on). Files are
 * opened on first append. Returns 0, -ENOMEM, -EINVAL (bad options), or -errno creating the
 * evidence directory (err names the path).
 */
int macc_audit_open(const struct macc_audit_opts *o, struct macc_audit **ret,
		    struct macc_errmsg *err);
/* Close and free; NULL ok. */
void macc_audit_close(struct macc_audit *l);

/*
 * Append one entry. First checks, now, that e->sig is a valid signature by e->key over e->text
 * and that body[0..body_len) hashes to the digest in e->text (macc_state_signed_verify):
 * MACC_EBADSIG / MACC_EMALFORMED and nothing written otherwise. Then sets e->seq, e->round (from
 * the text), e->time_ms (when 0), e->body_len and e->evidence, stores the body when evidence is
 * on, rotates when due and appends the line. Returns 0 or -errno (err names the file; the log
 * is left whole and the next append tries again).
 */
int macc_audit_append(struct macc_audit *l, struct macc_audit_entry *e, const uint8_t *body,
		      size_t body_len, struct macc_errmsg *err);

/* Counters since open. */
void macc_audit_get_stats(const struct macc_audit *l, struct macc_audit_stats *ret);

/* Format an entry as its line (with the newline and check) into buf; returns the length, or
 * -ENOSPC, or MACC_EMALFORMED (a name with characters the format does not allow). */
int macc_audit_format(const struct macc_audit_entry *e, char *buf, size_t cap);

/* Parse one line (with or without its newline) strictly: every field, in order, check
 * verified. 0 or MACC_EMALFORMED (err says which field); *ret written only on success. */
int macc_audit_parse(const char *line, size_t len, struct macc_audit_entry *ret,
		     struct macc_errmsg *err);

/*
 * The last `limit` entries over the rotated files and audit.log of `dir`, oldest first, in a
 * malloc'ed array (*ret NULL when none); *ret_total = entries found in all files, *ret_bad =
 * lines that did not parse (skipped). Missing files are fine. 0, -ENOMEM or -errno reading.
 */
int macc_audit_list(const char *dir, uint32_t files, size_t limit, struct macc_audit_entry **ret,
		    size_t *ret_n, uint64_t *ret_total, uint64_t *ret_bad, struct macc_errmsg *err);

/* What macc_audit_verify_file found. */
struct macc_audit_verify {
	uint64_t entries;         /* entries verified */
	uint64_t evidence_checked; /* entries whose body was found and matched its digest */
	uint64_t evidence_missing; /* entries naming an evidence file that is gone (pruned) */
};

/*
 * Verify every entry of one log file offline: whole lines (a last line without its newline is
 * a truncated file), the format and check field, seq increasing, the signature by the entry's
 * key over its signed text, the round in the text, and, when evidence_dir is not NULL and the
 * entry's evidence file exists there, its length and digest. Returns 0, or the first failure:
 * MACC_EMALFORMED / MACC_EBADSIG with err naming the entry ("entry 3 (line 3, seq 17): ..."),
 * or -errno opening the file. *ret (may be NULL) counts what was checked up to there.
 */
int macc_audit_verify_file(const char *path, const char *evidence_dir,
			   struct macc_audit_verify *ret, struct macc_errmsg *err);

#endif
