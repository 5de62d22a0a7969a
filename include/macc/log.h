/*
 * log.h - one-line-per-event logging to stderr for the programs (daemon, ctl, sim).
 *
 * Pure library code (nn, consensus, codecs) never logs; it reports through return codes and
 * struct macc_errmsg. The programs log with macc_log(), which writes
 * "LEVEL [prefix] message\n" to stderr in one write() so lines from threads never interleave.
 * systemd's journal adds timestamps, so none are printed unless MACC_LOG_TIME is set.
 *
 * Messages caused by a remote party (a peer, a control client) go through a struct
 * macc_ratelimit so a hostile peer cannot flood the log: at most `burst` lines per `interval_ms`,
 * then one "N messages suppressed" line when the window reopens.
 *
 * Strings a remote party chose (a HELLO's name, a BYE's text, a control client's command) may
 * hold newlines or terminal escape sequences. macc_log() escapes the prefix and the formatted
 * message with macc_escape() before it writes them, so no call site can forget: one event is
 * always one line, and a peer can neither forge a line ("error: [a1] ...") nor drive the
 * operator's terminal. macc-ctl prints daemon-supplied strings through the same function.
 */
#ifndef MACC_LOG_H
#define MACC_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum macc_log_level {
	MACC_LOG_ERROR = 0,
	MACC_LOG_WARN = 1,
	MACC_LOG_INFO = 2,
	MACC_LOG_DEBUG = 3,
};

/* Process-wide level (the programs are the only users). Default MACC_LOG_INFO. */
void macc_log_set_level(enum macc_log_level level);
enum macc_log_level macc_log_get_level(void);

/* "error", "warn", "info", "debug" -> level; returns 0 or MACC_ESPEC. */
int macc_log_level_parse(const char *name, enum macc_log_level *ret_level);
const char *macc_log_level_name(enum macc_log_level level);

/*
 * Copy the NUL-terminated `src` into dst[cap] (cap >= 1), escaping every byte that is not
 * printable ASCII: a backslash becomes "\\", any byte below 0x20, 0x7f and above becomes
 * "\xHH" (lower-case hex; so UTF-8 shows as its bytes). Truncates at a whole escape so the
 * result is always NUL-terminated and never ends inside one. Returns dst.
 */
char *macc_escape(char *dst, size_t cap, const char *src);

/* Log one line. `prefix` (a peer name, "ctl", ...) may be NULL. Both are escaped (above). */
void macc_log(enum macc_log_level level, const char *prefix, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

struct macc_ratelimit {
	uint64_t interval_ms;
	uint32_t burst;
	uint64_t window_start_ms;
	uint32_t count;
	uint64_t suppressed;
};

void macc_ratelimit_init(struct macc_ratelimit *rl, uint64_t interval_ms, uint32_t burst);

/* Returns true if a message may be logged now (monotonic clock). When a window reopens after
 * suppression, it logs the number of suppressed messages itself. */
bool macc_ratelimit_ok(struct macc_ratelimit *rl, const char *prefix);

/* Monotonic time in milliseconds / nanoseconds. */
uint64_t macc_now_ms(void);
uint64_t macc_now_ns(void);

#define macc_error(prefix, ...) macc_log(MACC_LOG_ERROR, prefix, __VA_ARGS__)
#define macc_warn(prefix, ...) macc_log(MACC_LOG_WARN, prefix, __VA_ARGS__)
#define macc_info(prefix, ...) macc_log(MACC_LOG_INFO, prefix, __VA_ARGS__)
#define macc_debug(prefix, ...)                                                                  \
	do {                                                                                     \
		if (macc_log_get_level() >= MACC_LOG_DEBUG) {                                    \
			macc_log(MACC_LOG_DEBUG, prefix, __VA_ARGS__);                           \
		}                                                                                \
	} while (0)

#endif
