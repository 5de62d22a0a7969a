/*
 * control.c - the daemon's control socket server (placeholder while being written: every
 * function fails cleanly with -ENOSYS so the daemon links).
 */
#include <errno.h>
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
	(void)ret_server;
	return macc_errf(err, -ENOSYS, "control server not implemented yet");
}

void macc_ctl_server_publish(struct macc_ctl_server *s, const struct macc_ctl_progress *p)
{
	(void)s;
	(void)p;
}

unsigned macc_ctl_server_nclients(const struct macc_ctl_server *s)
{
	(void)s;
	return 0;
}

unsigned macc_ctl_server_nwatchers(const struct macc_ctl_server *s)
{
	(void)s;
	return 0;
}

void macc_ctl_server_close(struct macc_ctl_server *s, void (*done)(void *arg), void *arg)
{
	(void)s;
	(void)done;
	(void)arg;
}

bool macc_ctl_caller_allowed(uid_t uid, const gid_t *groups, size_t ngroups, uid_t owner_uid,
			     gid_t sock_gid)
{
	if (uid == 0 || uid == owner_uid) {
		return true;
	}
	for (size_t i = 0; i < ngroups; i++) {
		if (groups[i] == sock_gid) {
			return true;
		}
	}
	return false;
}
