/*
 * reload.c - a new configuration for a running agent (SIGHUP, `macc-ctl reload`), in two steps.
 *
 * Plan: everything that can fail, with nothing live touched. The file is parsed and checked as
 * at start-up (own key, peers), compared with the running one (a key that needs a restart
 * refuses the reload), the mixing rule is checked (edge_check_reload), and every new object is
 * built: the new peer list, the allow-list, a struct peer for each added neighbour (memory
 * only, no handle yet) and room in the graveyard for the removed ones. A failure frees what the
 * plan built and leaves the agent as it was.
 *
 * Commit: cannot fail. Kept peers take their new name, endpoint, weight and max_rate (a moved
 * endpoint redials, a new rate applies to live sessions: peers_set_rates); added peers get
 * their timer and are dialed; removed peers say BYE and go to the graveyard (freed once their
 * handles closed, agent_finish); the peer list is swapped and sorted; the running
 * configuration becomes the new one (the control socket stays: it is not reopened); a changed
 * robust rule is taken by the mixer at the next step (edge_inbound, a round boundary: a step in
 * flight keeps the rule and the peers it was queued with).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "check.h"
#include "notify.h"

/* What a reload will do, built by plan_reload and applied by commit_reload. */
struct reload_plan {
	struct macc_config nc;
	struct macc_config_diff d;
	struct peer **np;          /* the new peer list: kept peers and added ones */
	bool *added;               /* np[i] was created by this plan */
	size_t nn;
	struct macc_pubkey *nallow;
	struct macc_robust_cfg nrcfg;
	bool nrobust;
};

static struct peer *find_peer(const struct macc_agent *a, const struct macc_pubkey *key)
{
	for (size_t j = 0; j < a->npeers; j++) {
		if (macc_pubkey_equal(&a->peers[j]->key, key)) {
			return a->peers[j];
		}
	}
	return NULL;
}

static int check_new(struct macc_agent *a, struct reload_plan *pl, struct macc_errmsg *err)
{
	struct macc_config *nc = &pl->nc;
	int rc;

	if (a->opts.socket_path != NULL) { /* -s holds over the file, as at start-up */
		snprintf(nc->control_socket, sizeof(nc->control_socket), "%s", a->opts.socket_path);
	}
	rc = macc_config_check_own_key(nc, &a->id.pub, err);
	if (rc == 0) {
		rc = agentd_check_peers(nc, err); /* no [peer] left: as at start-up */
	}
	if (rc < 0) {
		return rc;
	}
	rc = macc_config_diff(&a->cfg, nc, &pl->d);
	if (rc < 0) {
		return macc_errf(err, rc, "out of memory");
	}
	if (pl->d.restart_key[0] != '\0') {
		return macc_errf(err, MACC_ECONFIG, "%s: key '%s' changed, which needs a restart; "
				 "keeping the running configuration", nc->file, pl->d.restart_key);
	}
	rc = edge_check_reload(a, nc, &pl->nrcfg, &pl->nrobust, err);
	if (rc < 0) {
		return rc;
	}
	for (size_t i = 0; i < pl->d.nchanges && (a->edge.compressed || a->cfg.topology[0] != '\0');
	     i++) {
		if (pl->d.changes[i].kind & (MACC_PEER_ADDED | MACC_PEER_REMOVED)) {
			/* Agent numbers and public copies are laid out per configured peer. */
			return macc_errf(err, MACC_ECONFIG, "%s: peers added or removed with "
					 "topology or compress set, which needs a restart; keeping "
					 "the running configuration", nc->file);
		}
	}
	return 0;
}

/* The new peer list: kept peers by key, new ones built (memory only). */
static int plan_peers(struct macc_agent *a, struct reload_plan *pl, struct macc_errmsg *err)
{
	const struct macc_config *nc = &pl->nc;
	struct peer **g;

	pl->np = calloc(nc->npeers + 1, sizeof(*pl->np));
	pl->added = calloc(nc->npeers + 1, sizeof(*pl->added));
	pl->nallow = calloc(nc->npeers + 1, sizeof(*pl->nallow));
	/* Room for every running peer in the graveyard, so that the commit cannot fail. */
	g = realloc(a->graveyard, (a->ngraveyard + a->npeers + 1) * sizeof(*g));
	if (g != NULL) {
		a->graveyard = g;
	}
	if (pl->np == NULL || pl->added == NULL || pl->nallow == NULL || g == NULL) {
		return macc_errf(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < nc->npeers; i++) {
		const struct macc_config_peer *cp = &nc->peers[i];
		struct peer *p = find_peer(a, &cp->public_key);

		if (p == NULL) {
			p = peer_new(a, cp);
			if (p == NULL) {
				return macc_errf(err, -ENOMEM, "out of memory for peer %s", cp->name);
			}
			pl->added[pl->nn] = true;
		}
		pl->np[pl->nn++] = p;
	}
	return 0;
}

static void plan_finish(struct reload_plan *pl)
{
	for (size_t i = 0; i < pl->nn && pl->np != NULL; i++) {
		if (pl->added[i]) {
			peer_free(pl->np[i]); /* built by the plan, never attached */
		}
	}
	free(pl->np);
	free(pl->added);
	free(pl->nallow);
	macc_config_diff_finish(&pl->d);
	macc_config_finish(&pl->nc);
}

static void commit_kept(struct peer *p, const struct macc_config_peer *cp)
{
	bool moved = strcmp(p->endpoint.host, cp->endpoint.host) != 0 ||
		     p->endpoint.port != cp->endpoint.port;

	if (p->cfg_weight != cp->weight || p->has_weight != cp->has_weight) {
		macc_info(p->name, "weight changed");
	}
	snprintf(p->name, sizeof(p->name), "%s", cp->name);
	p->endpoint = cp->endpoint;
	p->cfg_weight = cp->weight;
	p->has_weight = cp->has_weight;
	p->max_rate = cp->max_rate; /* applied by peers_set_rates (commit_reload) */
	if (moved) {
		macc_info(p->name, "endpoint changed: reconnecting");
		peer_reconnect(p);
	}
}

static void commit_reload(struct macc_agent *a, struct reload_plan *pl)
{
	char sock[MACC_CONFIG_SOCKET_MAX];

	for (size_t i = 0; i < pl->nn; i++) {
		if (pl->added[i]) {
			peer_attach(pl->np[i]);
			macc_info(pl->np[i]->name, "peer added (%s)", pl->nc.peers[i].public_key_b64);
			pl->added[i] = false; /* the agent's now */
		} else {
			commit_kept(pl->np[i], &pl->nc.peers[i]);
		}
	}
	for (size_t j = 0; j < a->npeers; j++) {
		bool kept = false;

		for (size_t i = 0; i < pl->nn; i++) {
			kept |= pl->np[i] == a->peers[j];
		}
		if (!kept) {
			a->graveyard[a->ngraveyard++] = a->peers[j]; /* room made by the plan */
			macc_info(a->peers[j]->name, "peer removed");
			peer_remove(a->peers[j]);
		}
	}
	free(a->peers);
	free(a->allow);
	a->peers = pl->np;
	a->allow = pl->nallow;
	a->npeers = pl->nn;
	pl->np = NULL;
	pl->nallow = NULL;
	pl->nn = 0;
	peers_sort(a);
	for (size_t i = 0; i < a->npeers; i++) {
		if (a->peers[i]->conn == NULL) {
			peer_start(a->peers[i]);
		}
	}
	if (pl->d.log_level_changed && !a->opts.have_log_level) {
		macc_log_set_level(pl->nc.log_level);
	}
	/* Swap: the running config is the new one (peers were copied into struct peer). */
	snprintf(sock, sizeof(sock), "%s", a->cfg.control_socket);
	macc_config_finish(&a->cfg);
	a->cfg = pl->nc;
	snprintf(a->cfg.control_socket, sizeof(a->cfg.control_socket), "%s", sock);
	memset(&pl->nc, 0, sizeof(pl->nc));
	if (memcmp(&pl->nrcfg, &a->rcfg, sizeof(pl->nrcfg)) != 0 || pl->nrobust != a->robust) {
		/* From the next step on (the mixer takes it then, edge_inbound); learned distances
		 * and quarantines are kept. */
		a->rcfg = pl->nrcfg;
		a->robust = pl->nrobust;
		a->edge.robust_dirty = true;
		agent_log_robust(a);
	}
	peers_set_rates(a); /* max_rate, live sessions too: the next slice goes at the new rate */
	macc_info(NULL, "reloaded: %zu peers (%zu changes)", a->npeers, pl->d.nchanges);
}

int agent_reload(struct macc_agent *a, struct macc_errmsg *err)
{
	struct reload_plan pl;
	int rc;

	memset(&pl, 0, sizeof(pl));
	macc_notify_reloading();
	macc_info(NULL, "reloading %s", a->opts.config_path);
	rc = macc_config_load(a->opts.config_path, &pl.nc, err);
	if (rc < 0) {
		macc_notify("READY=1");
		return rc;
	}
	rc = check_new(a, &pl, err);
	if (rc == 0) {
		rc = plan_peers(a, &pl, err);
	}
	if (rc == 0) {
		commit_reload(a, &pl);
	}
	plan_finish(&pl);
	macc_notify("READY=1");
	agent_post(a, EV_CHECK_ROUND);
	return rc;
}
