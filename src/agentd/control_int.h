/*
 * control_int.h - internal to control*.c: the control server's private state, shared by the
 * connection side (control.c: sockets, clients, limits, replies) and the command dispatch
 * (control_cmd.c). Nothing else may include it; the API is control.h.
 *
 * Ownership is unchanged by the split: control.c creates, links, closes and frees clients and
 * the server; control_cmd.c only reads them, and marks a client as a watcher (`watch`).
 */
#ifndef MACC_AGENTD_CONTROL_INT_H
#define MACC_AGENTD_CONTROL_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "macc/buf.h"
#include "macc/ctl.h"
#include "macc/log.h"

#include "control.h"

struct client {
	uv_pipe_t pipe;
	uv_timer_t timer;
	struct macc_ctl_server *srv;
	struct client *prev, *next;
	struct macc_buf in;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	bool have_cred;
	bool watching;
	uint64_t watch_id;
	bool pending;     /* buffered frames wait for the next turn */
	bool throttled;   /* too many unsent bytes */
	bool reading;
	bool closing;
	bool close_after_write;
	int open_handles;
};

struct macc_ctl_server {
	uv_loop_t *loop;
	uv_pipe_t listener;
	uv_idle_t idle;
	bool idle_active;
	struct client *clients;
	unsigned nclients;
	unsigned nwatchers;
	unsigned nalloc;          /* clients not yet freed (some may be closing) */
	const struct macc_ctl_ops *ops;
	void *ctx;
	char *path;
	char *group;
	char *version;
	uid_t owner_uid;
	gid_t sock_gid;
	uint32_t max_clients;
	uint32_t reserved_clients;
	uint32_t idle_timeout_ms;
	bool closing;
	int open_handles;         /* listener + idle */
	void (*done)(void *arg);
	void *done_arg;
	struct macc_ratelimit rl;
	char rbuf[65536];
};

/* control.c: (re)arm the client's idle timer, or stop it while the client watches. */
void ctl_restart_timer(struct client *c);

/* control_cmd.c: run a decoded, permitted request; fills rep (status, error, data). Buffers
 * allocated for the reply are returned in *ret_free1 and *ret_free2, freed by the caller after the
 * send. */
void ctl_run_command(struct client *c, const struct macc_ctl_request *req,
		     struct macc_ctl_reply *rep, void **ret_free1, void **ret_free2);

#endif
