#!/bin/bash
# test_compose.sh: the Docker Compose demo (deploy/docker) built and run for real, as a non-root
# member of the docker group. Needs a Docker engine (started here if none runs) and
# docker-compose; the base image is imported from the debootstrap base (platform_lib.sh), as
# debian:bookworm and debian:bookworm-slim, so no registry is needed.
#
# Steps, each bounded in time, none depending on how fast the machine trains (a fast CPU ends
# a one-epoch run in seconds, before `up -d` returns: the agents' health checks gate ctl):
#   1. `docker-compose build`, then `up -d` of the five agents (keygen runs first) from a copy
#      of the tree owned by the user; the project is 'macc' whatever the folder (fixed name);
#   2. agent3 is killed while training, after its first checkpoint: agent2 shows it not up;
#      started again, it resumes from its checkpoint (round > 0) and its neighbours see it up
#      again;
#   3. `up -d` of the whole project starts ctl; keygen and ctl have no health check; ctl
#      reports a state for each of the five agents and never logs 'start failed'; every agent
#      finishes, each with test accuracy >= FLOOR;
#   4. `up --build -d` again, with the private keys now in ./fleet (uid 10001, mode 0600, which
#      the user cannot read): the build context excludes them, the build succeeds, and the
#      finished agents come back 'done' with the accuracy they ended with, not nan / '-';
#      the build stage holds no key file;
#   5. `down -v`; no container, volume or network of the project is left; the keys removed
#      with the README's command (New keys). The image macc:latest and the build cache stay.
# Environment: MACC_SRC (source tree); MACC_EPOCHS (default 8 here: 1496 rounds, about a minute
# on a fast 2-core machine, so that agent3 is killed and comes back while its neighbours still
# train); COMPOSE_USER (default macc-ci, created in group docker if missing).
. "$(dirname "$0")/platform_lib.sh"
src=${MACC_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
user=${COMPOSE_USER:-macc-ci}
epochs=${MACC_EPOCHS:-8}
FLOOR=0.75
command -v docker-compose >/dev/null || plat_fail "docker-compose is not installed"
[ "$(id -u)" = 0 ] || plat_fail "run as root (it creates the docker-group user and the engine)"

work=$(mktemp -d /tmp/macc-compose.XXXXXX)
chmod 0755 "$work"
T0=$SECONDS
finish() {
	local rc=$?
	if [ -d "$work/src/deploy/docker" ]; then
		(cd "$work/src/deploy/docker" && dc down -v --remove-orphans) >/dev/null 2>&1 ||
			true
	fi
	# The demo's image macc:latest and the build cache (the apt layers) are kept, like the
	# debootstrap base: the next run rebuilds only what changed.
	docker rmi --no-prune macc-ci-build:latest >/dev/null 2>&1 || true
	rm -rf "$work"
	stop_dockerd
	exit "$rc"
}
trap finish EXIT
step() {
	echo "== compose [$((SECONDS - T0)) s]: $*"
}
# dc ARGS: docker-compose as the unprivileged user, in the demo's folder (the caller's cwd).
dc() {
	runuser -u "$user" -- env HOME="$work/home" MACC_EPOCHS="$epochs" docker-compose "$@"
}
# ctl_json AGENT ARGS: macc-ctl --json ARGS inside the agent's container.
ctl_json() {
	local a=$1
	shift
	dc exec -T "$a" macc-ctl --json "$@"
}
py() {
	python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"
}
# Checks for wait_until.
round_at_least() { # AGENT ROUND
	[ "$(ctl_json "$1" status | py 'd["round"]')" -ge "$2" ]
}
peer_session() { # AGENT PEER: the session state AGENT shows for PEER
	ctl_json "$1" peers | py "[p['session'] for p in d['peers'] if p['name'] == '$2'][0]"
}
peer_is_up() {
	[ "$(peer_session "$1" "$2")" = up ]
}
peer_is_not_up() {
	local s
	s=$(peer_session "$1" "$2") && [ -n "$s" ] && [ "$s" != up ]
}
ctl_exited() {
	[ "$(docker inspect -f '{{.State.Status}}' "$(dc ps -q ctl)")" = exited ]
}
is_done() {
	[ "$(ctl_json "$1" status | py 'd["state"]')" = "done" ]
}
resumed() {
	docker logs "$(dc ps -q "$1")" 2>&1 | grep -q 'resumed from .* at round [1-9]'
}
# wait_until SECONDS CMD...: run CMD every 2 s until it succeeds.
wait_until() {
	local end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 2
	done
}

# Docker's image layers are mounted with a remount of "/", which needs "/" to be a mount point:
# inside a plain chroot (as a fresh-machine check runs the test command) `docker import` fails
# with "remount /, flags: 0x84000: invalid argument". The stage cannot run there: it says so.
if ! mountpoint -q /; then
	echo "SKIP: / is not a mount point (a chroot): Docker cannot import an image here"
	exit 77
fi
ensure_dockerd
getent group docker >/dev/null || plat_fail "no 'docker' group (docker.io creates it)"
if ! id "$user" >/dev/null 2>&1; then
	useradd --system --no-create-home --shell /usr/sbin/nologin --groups docker "$user"
fi
id -nG "$user" | grep -qw docker || usermod -aG docker "$user"
[ "$(id -u "$user")" != 0 ] || plat_fail "$user is root"

step "base image debian:bookworm from the debootstrap base"
tar=$(base_tarball)
# Imported again only when the tarball changed: the same base image keeps Docker's layer cache
# (the Dockerfile's apt-get steps) valid from one run to the next.
base_id=$(stat -c '%s-%Y' "$tar")
for tag in debian:bookworm debian:bookworm-slim; do
	label=$(docker image inspect -f '{{index .Config.Labels "org.macc.ci-base"}}' "$tag" \
		2>/dev/null || true)
	if [ -z "$label" ] && docker image inspect "$tag" >/dev/null 2>&1; then
		echo "  $tag exists and is not ours: used as it is"
		continue
	fi
	[ "$label" != "$base_id" ] || continue
	docker import --change "LABEL org.macc.ci-base=$base_id" --change 'CMD ["/bin/bash"]' \
		"$tar" "$tag" >/dev/null
done

# A copy of the tree, owned by the user (the CI clone may not be readable by it).
mkdir -p "$work/src" "$work/home"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
	git -C "$src" ls-files -z --cached --others --exclude-standard |
		(cd "$src" && tar --null -T - -cf -) | tar -C "$work/src" -xf -
else
	tar -C "$src" --exclude='./build*' -cf - . | tar -C "$work/src" -xf -
fi
chown -R "$user" "$work/src" "$work/home"
cd "$work/src/deploy/docker"

step "docker-compose build, up -d of the five agents (user $user, MACC_EPOCHS=$epochs)"
if ! dc build >"$work/build1.log" 2>&1; then
	tail -n 40 "$work/build1.log"
	plat_fail "docker-compose build failed"
fi
if ! dc up -d agent1 agent2 agent3 agent4 agent5 >"$work/up1.log" 2>&1; then
	tail -n 40 "$work/up1.log"
	plat_fail "up -d of the agents failed"
fi
names=$(docker ps -a --filter label=com.docker.compose.project=macc --format '{{.Names}}' | sort)
echo "$names" | grep -qx 'macc_agent1_1\|macc-agent1-1' ||
	plat_fail "no container macc_agent1_1: the project name is not fixed to 'macc' ($names)"
echo "ok: project 'macc'"

step "training; kill agent3 after its first checkpoint (round 100) and start it again"
wait_until 300 round_at_least agent3 105 ||
	plat_fail "agent3 did not reach round 105 within 300 s"
dc kill agent3 >/dev/null 2>&1
t_kill=$SECONDS
r2a=$(ctl_json agent2 status | py 'd["round"]')
s2a=$(ctl_json agent2 status | py 'd["state"]')
[ "$s2a" = training ] ||
	plat_fail "agent2 is '$s2a' at round $r2a when agent3 is killed: the run is too short" \
		"for this machine (raise MACC_EPOCHS)"
wait_until 60 peer_is_not_up agent2 agent3 ||
	plat_fail "agent2 still shows agent3 up 60 s after it was killed"
state=$(peer_session agent2 agent3)
echo "ok: agent2 shows the killed agent3 as '$state' after $((SECONDS - t_kill)) s"
sleep 3
r2b=$(ctl_json agent2 status | py 'd["round"]')
[ "$r2b" -gt "$r2a" ] ||
	plat_fail "agent2 stayed at round $r2a for $((SECONDS - t_kill)) s without agent3:" \
		"the ring waits for the killed neighbour"
echo "ok: agent2 went from round $r2a to $r2b in $((SECONDS - t_kill)) s without agent3"
dc start agent3 >/dev/null 2>&1
wait_until 60 resumed agent3 ||
	plat_fail "agent3 did not resume from a checkpoint:" \
		"$(docker logs "$(dc ps -q agent3)" 2>&1 |
		grep -E 'checkpoint|resumed' | tail -n 3)"
docker logs "$(dc ps -q agent3)" 2>&1 | grep -o 'resumed from .* at round [0-9]*' | tail -n 1 |
	sed 's/^/ok: agent3 /'
wait_until 60 peer_is_up agent2 agent3 ||
	plat_fail "agent2 does not see agent3 up again within 60 s"
echo "ok: agent3 rejoined (agent2 sees it up)"

step "up -d of the whole project: ctl reports on the agents"
if ! dc up -d >"$work/up2.log" 2>&1; then
	tail -n 40 "$work/up2.log"
	plat_fail "up -d of the project failed"
fi
for s in keygen ctl; do
	c=$(dc ps -q "$s")
	h=$(docker inspect -f \
		'{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$c")
	[ "$h" = none ] || plat_fail "$s has a health check ($h): it inherits the image's"
done
echo "ok: keygen and ctl without health check"

step "waiting for the run to finish"
for i in 1 2 3 4 5; do
	wait_until 900 is_done "agent$i" || plat_fail "agent$i did not finish within 900 s"
done
declare -A acc
for i in 1 2 3 4 5; do
	acc[$i]=$(ctl_json "agent$i" status | py '"%.4f" % d["test_accuracy_ratio"]')
done
echo "final test accuracy: ${acc[*]}"
for i in 1 2 3 4 5; do
	awk -v a="${acc[$i]}" -v f="$FLOOR" 'BEGIN { exit !(a >= f) }' ||
		plat_fail "agent$i ended at ${acc[$i]}, below $FLOOR"
done
# ctl's report: one "agentN: STATE" line per agent (training, or done if the run has ended by
# the time every agent is healthy), then agent1's watch until the run's end.
wait_until 60 ctl_exited ||
	plat_fail "ctl still runs 60 s after every agent is done"
dc logs --no-color ctl >"$work/ctl.log" 2>&1 || true
! grep -q 'start failed' "$work/ctl.log" ||
	plat_fail "ctl logged 'start failed': $(cat "$work/ctl.log")"
for i in 1 2 3 4 5; do
	grep -Eq "^ctl.*\| agent$i: (training|done)\$" "$work/ctl.log" ||
		plat_fail "ctl did not report agent$i: $(head "$work/ctl.log")"
done
grep -Eq '^ctl.*\| done round [0-9]+/[0-9]+ ' "$work/ctl.log" ||
	plat_fail "ctl's watch did not end with the run's last line: $(tail -n 3 "$work/ctl.log")"
echo "ok: every agent >= $FLOOR; ctl reported the agents and followed agent1 without errors"

step "up --build -d again with the keys in ./fleet"
[ -s fleet/agent1/agent.key ] || plat_fail "no generated key in ./fleet"
! runuser -u "$user" -- cat fleet/agent1/agent.key >/dev/null 2>&1 ||
	plat_fail "$user can read the generated key: the check below would prove nothing"
if ! dc up --build -d >"$work/up2.log" 2>&1; then
	tail -n 40 "$work/up2.log"
	plat_fail "second up --build failed"
fi
for i in 1 2 3 4 5; do
	wait_until 120 is_done "agent$i" || plat_fail "agent$i is not done after the second up"
	a=$(ctl_json "agent$i" status |
		py '"null" if d["test_accuracy_ratio"] is None else "%.4f" % d["test_accuracy_ratio"]')
	[ "$a" = "${acc[$i]}" ] ||
		plat_fail "agent$i restarted done shows accuracy $a, it ended with ${acc[$i]}"
done
echo "ok: second up --build as $user; restarted finished agents show their final accuracy"
(cd ../.. && runuser -u "$user" -- env HOME="$work/home" docker build -q --target build \
	-t macc-ci-build:latest -f deploy/docker/Dockerfile .) >/dev/null 2>"$work/build.err" ||
	plat_fail "docker build --target build failed"
keys=$(docker run --rm --entrypoint /bin/sh macc-ci-build:latest -c \
	'find / -xdev \( -name "*.key" -o -path "*/docker/fleet*" \) -print' 2>&1 | head -n 5)
[ -z "$keys" ] || plat_fail "the build stage holds key material: $keys"
echo "ok: no key file in the build stage"

step "down -v"
dc down -v --remove-orphans >/dev/null 2>&1 || plat_fail "down -v failed"
left=$(docker ps -aq --filter label=com.docker.compose.project=macc)
[ -z "$left" ] || plat_fail "containers left after down -v: $left"
left=$(docker volume ls -q --filter label=com.docker.compose.project=macc)
[ -z "$left" ] || plat_fail "volumes left after down -v: $left"
left=$(docker network ls -q --filter label=com.docker.compose.project=macc)
[ -z "$left" ] || plat_fail "networks left after down -v: $left"
dc run --rm --entrypoint rm keygen -rf /fleet/agent1 /fleet/agent2 /fleet/agent3 /fleet/agent4 \
	/fleet/agent5 >/dev/null 2>&1 || plat_fail "the README's key removal command failed"
left=$(find fleet -mindepth 1 2>/dev/null | head -n 3)
[ -z "$left" ] || plat_fail "keys left after the README's removal command: $left"
dc down -v --remove-orphans >/dev/null 2>&1 || true # the run's container and network
echo "ok: nothing of project macc left; total $((SECONDS - T0)) s"
echo "PASS"
