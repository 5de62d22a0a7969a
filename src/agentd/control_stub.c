/*
 * control_stub.c - stand-in for control.c (the ctl helper's control socket server) so the daemon
 * builds before that file lands; meson uses it only when control.c is absent. Without the real
 * server the daemon runs with no control socket.
 */
#include <stdlib.h>
#include <unistd.h>

#include "control.h"

void macc_ctl_server_opts_init(struct macc_ctl_server_opts *o)
{
	o->path = NULL;
	o->mode = 0660;
	o->group = "macc";
	o->owner_uid = geteuid();
	o->max_clients = 64;
	o->idle_timeout_ms = 30000;
	o->version = NULL;
}

int macc_ctl_server_create(uv_loop_t *loop, const struct macc_ctl_server_opts *opts,
			   const struct macc_ctl_ops *ops, void *ctx,
			   struct macc_ctl_server **ret_server, struct macc_errmsg *err)
{
	(void)loop;
	(void)opts;
	(void)ops;
	(void)ctx;
	(void)err;
	*ret_server = NULL;
	return 0;
}

void macc_ctl_server_publish(struct macc_ctl_server *s, const struct macc_ctl_progress *p)
{
	(void)s;
	(void)p;
}

void macc_ctl_server_close(struct macc_ctl_server *s, void (*done)(void *arg), void *arg)
{
	(void)s;
	(void)done;
	(void)arg;
}
