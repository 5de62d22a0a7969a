/*
 * log.c - stderr logging with levels, rate limiting and escaping.
 *
 * The level is one process-wide atomic: the daemon changes it at run time through the control
 * socket (`macc-ctl log-level debug`) while the worker thread may be logging.
 *
 * Escaping happens here, once, for every line: the message is formatted into a scratch buffer
 * and copied into the line through macc_escape(), so a string from a peer or a control client
 * can never add a line or an escape sequence to the log, whatever the call site passed.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "macc/err.h"
#include "macc/log.h"

static _Atomic int current_level = MACC_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void macc_log_set_level(enum macc_log_level level)
{
	atomic_store(&current_level, (int)level);
}

enum macc_log_level macc_log_get_level(void)
{
	return (enum macc_log_level)atomic_load(&current_level);
}

int macc_log_level_parse(const char *name, enum macc_log_level *ret_level)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*ret_level = (enum macc_log_level)i;
			return 0;
		}
	}
	return MACC_ESPEC;
}

const char *macc_log_level_name(enum macc_log_level level)
{
	if ((int)level < 0 || (int)level > 3) {
		return "unknown";
	}
	return level_names[level];
}

char *macc_escape(char *dst, size_t cap, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)src; *p != '\0'; p++) {
		unsigned char ch = *p;
		size_t need = ch == '\\' ? 2 : (ch < 0x20 || ch >= 0x7f) ? 4 : 1;

		if (o + need >= cap) {
			break;
		}
		if (need == 1) {
			dst[o++] = (char)ch;
		} else if (need == 2) {
			dst[o++] = '\\';
			dst[o++] = '\\';
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[ch >> 4];
			dst[o++] = hex[ch & 15];
		}
	}
	dst[o] = '\0';
	return dst;
}

void macc_log(enum macc_log_level level, const char *prefix, const char *fmt, ...)
{
	char line[1024], raw[1024], esc[256];
	size_t n = 0;
	va_list ap;

	if ((int)level > atomic_load(&current_level)) {
		return;
	}
	if (getenv("MACC_LOG_TIME") != NULL) {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n += strftime(line, sizeof(line), "%H:%M:%S", &tm);
		n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ld ", ts.tv_nsec / 1000000);
	}
	n += (size_t)snprintf(line + n, sizeof(line) - n, "%s: ", macc_log_level_name(level));
	if (prefix != NULL && n < sizeof(line)) {
		n += (size_t)snprintf(line + n, sizeof(line) - n, "[%s] ",
				      macc_escape(esc, sizeof(esc), prefix));
	}
	if (n < sizeof(line)) {
		va_start(ap, fmt);
		vsnprintf(raw, sizeof(raw), fmt, ap);
		va_end(ap);
		macc_escape(line + n, sizeof(line) - n, raw);
		n += strlen(line + n);
	}
	if (n >= sizeof(line) - 1) {
		n = sizeof(line) - 2;
	}
	line[n++] = '\n';
	/* One write() per line: lines from different threads never interleave. */
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}

uint64_t macc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t macc_now_ms(void)
{
	return macc_now_ns() / 1000000u;
}

void macc_ratelimit_init(struct macc_ratelimit *rl, uint64_t interval_ms, uint32_t burst)
{
	memset(rl, 0, sizeof(*rl));
	rl->interval_ms = interval_ms;
	rl->burst = burst;
}

bool macc_ratelimit_ok(struct macc_ratelimit *rl, const char *prefix)
{
	uint64_t now = macc_now_ms();

	if (rl->window_start_ms == 0 || now - rl->window_start_ms >= rl->interval_ms) {
		if (rl->suppressed > 0) {
			macc_log(MACC_LOG_WARN, prefix, "%llu similar messages suppressed",
				 (unsigned long long)rl->suppressed);
		}
		rl->window_start_ms = now;
		rl->count = 0;
		rl->suppressed = 0;
	}
	if (rl->count < rl->burst) {
		rl->count++;
		return true;
	}
	rl->suppressed++;
	return false;
}
