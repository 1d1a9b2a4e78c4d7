#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# One command from a fresh Debian 12 machine (as root) to dovetail routing a
# demo service: installs the packages, builds dovetail, starts a one-node
# swarm (unless a Docker swarm manager already answers), HAProxy in
# master-worker mode and dovetail, deploys a labelled demo service and
# prints a curl that reaches it by Host header.
#
#   packaging/demo.sh          set up and leave it running
#   packaging/demo.sh stop     stop what the demo started
#
# DEMO_DIR (default /tmp/dovetail-demo) holds every file, socket and log;
# DEMO_PORT (default 8080) is HAProxy's HTTP port on 127.0.0.1.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
DEMO_DIR=${DEMO_DIR:-/tmp/dovetail-demo}
DEMO_PORT=${DEMO_PORT:-8080}
# shellcheck source=tests/lab.sh
. "$top/tests/lab.sh"

if [ "${1:-}" = stop ]; then
	lab_init "$DEMO_DIR"
	if [ -f "$DEMO_DIR/dovetail.pid" ]; then
		kill "$(cat "$DEMO_DIR/dovetail.pid")" 2>/dev/null || true
		rm -f "$DEMO_DIR/dovetail.pid"
	fi
	lab_cleanup
	echo "demo stopped"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "demo: run as root (it installs packages and starts dockerd)" >&2
	exit 2
fi
echo "==> installing packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends build-essential autoconf \
	automake libtool pkg-config libcurl4-openssl-dev libjansson-dev libssl-dev \
	libinih-dev libmicrohttpd-dev docker.io haproxy busybox-static socat curl >/dev/null

echo "==> building dovetail"
cd "$top"
./autogen.sh >/dev/null 2>&1
# Its own build directory: the tests build with other flags in build/.
mkdir -p build-demo
(cd build-demo && ../configure -q && make -s -j"$(nproc)")
DOVETAIL=$top/build-demo/src/dovetail

echo "==> Docker swarm"
# Reuse the system's engine when it is a swarm manager.
if [ -z "${DOCKER_HOST:-}" ] && [ -S /var/run/docker.sock ] &&
	[ "$(/usr/bin/docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" = true ]; then
	export DOCKER_HOST=unix:///var/run/docker.sock
fi
lab_init "$DEMO_DIR"
lab_docker_up
lab_image
docker_url=${DOCKER_HOST}

echo "==> HAProxy and dovetail"
BASE=$DEMO_DIR/haproxy.cfg
GEN=$DEMO_DIR/dovetail.cfg
CONF=$DEMO_DIR/dovetail.conf
sed -e "s|/run/haproxy/admin.sock mode 660|$LAB_HX_ADMIN_SOCK mode 600|" \
	"$top/haproxy/haproxy.cfg" >"$BASE"
lab_dovetail_conf "$CONF" "$docker_url" "$GEN" "$BASE" "$DEMO_PORT"
"$DOVETAIL" -c "$CONF" --once
lab_haproxy_up "$BASE" "$GEN"
setsid "$DOVETAIL" -c "$CONF" </dev/null >>"$LAB_LOG_DIR/dovetail.log" 2>&1 &
echo $! >"$DEMO_DIR/dovetail.pid"

echo "==> demo service"
if ! dk service inspect demo >/dev/null 2>&1; then
	lab_demo_service demo 2 --label com.docker.lb.hosts=demo.local \
		--label com.docker.lb.port=8080 >/dev/null
fi
routed() {
	curl -fs --max-time 2 -H 'Host: demo.local' "http://127.0.0.1:$DEMO_PORT/" >/dev/null
}
if ! lab_wait 60 routed; then
	echo "demo: demo.local is not routed after 60 s; see $LAB_LOG_DIR/dovetail.log" >&2
	exit 1
fi
cat <<MSG

dovetail is routing the swarm service "demo" (2 tasks) through HAProxy.
Each request is answered by one task with its container's hostname:

  curl -H 'Host: demo.local' http://127.0.0.1:$DEMO_PORT/

HAProxy's metrics per backend (svc-demo): curl http://127.0.0.1:8405/metrics
(its stats page: http://127.0.0.1:8405/stats)

Try: DOCKER_HOST=$DOCKER_HOST docker service scale demo=5
     (no HAProxy reload: watch $LAB_LOG_DIR/dovetail.log)
Stop everything: $0 stop
MSG
