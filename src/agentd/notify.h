/*
 * notify.h - the systemd readiness protocol without libsystemd (internal to macc-agentd).
 *
 * When $NOTIFY_SOCKET is set (a path, or "@name" for an abstract socket), state changes are sent
 * as one datagram each: "READY=1", "RELOADING=1\nMONOTONIC_USEC=...", "STOPPING=1",
 * "WATCHDOG=1", "STATUS=...". When it is unset every call is a no-op returning 0.
 */
#ifndef MACC_AGENTD_NOTIFY_H
#define MACC_AGENTD_NOTIFY_H

#include <stdint.h>

/* Send `state` (one or more "KEY=VALUE" lines) to $NOTIFY_SOCKET. Returns 0 (also when unset)
 * or -errno. Non-blocking: a full socket drops the message. */
int macc_notify(const char *state);

/* "RELOADING=1" with the MONOTONIC_USEC field systemd's Type=notify-reload expects. */
int macc_notify_reloading(void);

/* Interval at which to send WATCHDOG=1: half of $WATCHDOG_USEC in milliseconds, or 0 when the
 * watchdog is off (unset, unparsable, or $WATCHDOG_PID names another process). */
uint64_t macc_notify_watchdog_interval_ms(void);

#endif
