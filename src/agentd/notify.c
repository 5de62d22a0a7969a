/*
 * notify.c - sd_notify(3) spoken directly: one AF_UNIX datagram per message.
 *
 * The address comes from $NOTIFY_SOCKET; a leading '@' means the Linux abstract namespace (the
 * '@' becomes a NUL byte and the address length counts exactly the name, no trailing NUL). A
 * socket is opened per message: messages are rare (ready, reload, stop, a watchdog ping every few
 * seconds), and this keeps no state to get wrong across fork or reload.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"

int macc_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	socklen_t salen;
	size_t plen;
	int fd, rc = 0;

	if (path == NULL || path[0] == '\0') {
		return 0;
	}
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sa.sun_path)) {
		return -EINVAL;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, plen);
	if (path[0] == '@') {
		sa.sun_path[0] = '\0';
		salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
	} else {
		salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
	}
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		return -errno;
	}
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0) {
		rc = -errno;
	}
	close(fd);
	return rc;
}

int macc_notify_reloading(void)
{
	struct timespec ts;
	char msg[96];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
	return macc_notify(msg);
}

uint64_t macc_notify_watchdog_interval_ms(void)
{
	const char *usec = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");
	char *end = NULL;
	unsigned long long v;

	if (usec == NULL || usec[0] == '\0') {
		return 0;
	}
	if (pid != NULL && pid[0] != '\0') {
		char *pend = NULL;
		unsigned long long p = strtoull(pid, &pend, 10);
		if (*pend != '\0' || p != (unsigned long long)getpid()) {
			return 0;
		}
	}
	errno = 0;
	v = strtoull(usec, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0) {
		return 0;
	}
	/* Half the interval, as sd_watchdog_enabled(3) recommends; at least 1 ms. */
	v = v / 2000;
	return v == 0 ? 1 : (uint64_t)v;
}
