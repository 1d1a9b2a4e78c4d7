#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# A real swarm of several nodes: three managers and a worker, each a
# dockerd in a network namespace this test makes (tests/swarmnet.sh), and
# on the host, as a load-balancer node outside the swarm, the real HAProxy
# and dovetail, given all three managers' sockets.  Every other suite runs
# one node, where every task is at 127.0.0.1; here tasks run on other
# nodes and are reached at their node's address and published port.
# Under GET and POST load through HAProxy, every request counted:
#   - a service spread over the four nodes is routed to each task at its
#     node's address;
#   - a node drained: its task leaves HAProxy, the one started elsewhere
#     comes in;
#   - a node lost (every process of its namespace killed at once);
#   - manager failover: the manager dovetail talks to, which is also the
#     leader, stopped; dovetail moves to another manager and follows the
#     swarm's changes there.
# Traffic goes to 127.0.0.1 and to the namespaces' addresses only.  Every
# wait is bounded; no assertion is about speed.
#
#   tests/multinode.sh [path/to/dovetail]
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lab.sh
. "$here/lab.sh"
# shellcheck source=tests/results.sh
. "$here/results.sh"

DOVETAIL=${1:-${DOVETAIL:-$here/../build/src/dovetail}}
DOVETAIL=$(cd "$(dirname "$DOVETAIL")" && pwd)/$(basename "$DOVETAIL")
HTTP_PORT=${MULTINODE_HTTP_PORT:-18580}
SN=$here/swarmnet.sh
export DTMN_BASE=${MULTINODE_BASE:-/var/tmp/dovetail-multinode}
DOCKER_CLI=${DOCKER:-/usr/bin/docker}

lab_init "${MULTINODE_DIR:-/tmp/dovetail-multinode-lab}"
echo "# HAProxy under test: $("$LAB_HAPROXY" -v 2>&1 | sed -n 1p)"
echo "# Docker: $(${DTMN_ROOT:+chroot "$DTMN_ROOT"} dockerd --version)"
DT_PID=
finish() {
	local rc=$?
	[ -n "${LAB_LOAD_PID:-}" ] && lab_load_stop 2>/dev/null
	if [ -n "$DT_PID" ] && kill -0 "$DT_PID" 2>/dev/null; then
		kill "$DT_PID"
		wait "$DT_PID" 2>/dev/null
	fi
	lab_cleanup
	"$SN" down >>"$LAB_LOG_DIR/swarmnet.log" 2>&1
	return $rc
}
trap finish EXIT

# The manager asked about the swarm: the first one still running.
MGR=1
sock() { echo "$DTMN_BASE/n$1/docker.sock"; }
mdk() { DOCKER_HOST=unix://$(sock "$MGR") "$DOCKER_CLI" "$@"; }
api() { curl -s --max-time 10 --unix-socket "$(sock "$MGR")" -G "http://docker$1" "${@:2}"; }

# task_addrs NAME: "ADDR:PORT" of each running task of NAME, its node's
# address and its host-mode published port, sorted.
task_addrs() {
	local tasks nodes
	tasks=$(api /tasks --data-urlencode "filters={\"service\":[\"$1\"],\"desired-state\":[\"running\"]}") || return 1
	nodes=$(api /nodes) || return 1
	python3 -c '
import json, sys
tasks, nodes = json.loads(sys.argv[1]), json.loads(sys.argv[2])
addr = {n["ID"]: n.get("Status", {}).get("Addr", "") for n in nodes}
out = set()
for t in tasks:
    if t.get("Status", {}).get("State") != "running":
        continue
    for p in t["Status"].get("PortStatus", {}).get("Ports", []) or []:
        out.add("%s:%d" % (addr.get(t.get("NodeID"), "?"), p["PublishedPort"]))
print("\n".join(sorted(out)))
' "$tasks" "$nodes"
}
# expected NAME: the hostnames of NAME's running tasks, each asked at its
# node's address and published port, sorted.
expected() {
	local a
	for a in $(task_addrs "$1"); do
		curl -s --max-time 3 "http://$a/"
		echo
	done | grep -v '^$' | sort -u
}
# routes_exactly NAME N: HAProxy sends NAME.local to exactly the N running
# tasks of NAME, wherever they run.
LAB_EXPECTED=expected
routes_exactly() { lab_routes_exactly "$HTTP_PORT" "$1.local" "$1" "$2"; }
# haproxy_addrs BACKEND: "ADDR:PORT" of BACKEND's servers, sorted.
haproxy_addrs() {
	lab_admin "show servers state $1" |
		awk '$1 ~ /^[0-9]+$/ && NF > 10 { print $5 ":" $19 }' | sort
}
# servers_are NAME: HAProxy's servers for NAME are exactly its running
# tasks' node addresses and published ports.
servers_are() {
	local want
	want=$(task_addrs "$1")
	[ -n "$want" ] && [ "$(haproxy_addrs "svc-$1")" = "$want" ]
}
node_addrs_of() { task_addrs "$1" | cut -d: -f1 | sort -u; }
on_node() { node_addrs_of "$1" | grep -qx "$2"; }
node_status_is() { mdk node ls --format '{{.Hostname}} {{.Status}}' | grep -q "^$1 $2$"; }
distinct_nodes() { [ "$(node_addrs_of "$1" | grep -c .)" -eq "$2" ]; }
not_on() { ! node_addrs_of "$1" | grep -qx "$2" && ! haproxy_addrs "svc-$1" | grep -q "^$2:"; }
connected_to() { grep "docker: connected to" "$LAB_LOG_DIR/dovetail.log" | tail -n 1 | grep -q "/n$1/docker.sock"; }
leader_is_not() {
	mdk node ls --format '{{.Hostname}} {{.ManagerStatus}}' 2>/dev/null |
		awk '$2 == "Leader" { print $1 }' | grep -q -v "^dtn$1$"
}
load_checked() {
	lab_load_stop
	check "$1: no request lost ($(lab_load_total) sent, $(lab_load_failures) failed)" \
		test "$(lab_load_total)" -gt 20 -a "$(lab_load_failures)" -eq 0
}

# ---- the swarm -----------------------------------------------------------------

"$SN" down >"$LAB_LOG_DIR/swarmnet.log" 2>&1
if ! "$SN" up >>"$LAB_LOG_DIR/swarmnet.log" 2>&1; then
	not_ok "a swarm of 3 managers and a worker, each a dockerd in its own network namespace (see $LAB_LOG_DIR/swarmnet.log)"
	echo "$pass passed, $fail failed"
	exit 1
fi
ok "a swarm of 3 managers and a worker, each a dockerd in its own network namespace"
check "... its 4 nodes are Ready" test "$(mdk node ls --format '{{.Status}}' | grep -c Ready)" -eq 4
# The daemon each node runs is the one asked for (Debian 13's under DTMN_ROOT).
want=$(${DTMN_ROOT:+chroot "$DTMN_ROOT"} dockerd --version | sed -n 's/^Docker version \([^,]*\),.*/\1/p')
nodes_run() {
	local n v
	for n in 1 2 3 4; do
		v=$(DOCKER_HOST=unix://$(sock "$n") "$DOCKER_CLI" version --format '{{.Server.Version}}' 2>/dev/null)
		[ -n "$want" ] && [ "$v" = "$want" ] || return 1
	done
}
check "... each node runs Docker $want" nodes_run

# ---- dovetail and HAProxy on the host ----------------------------------------------

GEN=$LAB_DIR/dovetail.cfg
BASE=$LAB_DIR/base.cfg
CONF=$LAB_DIR/dovetail.conf
lab_haproxy_base "$BASE"
lab_dovetail_conf "$CONF" "unix://$(sock 1), unix://$(sock 2), unix://$(sock 3)" \
	"$GEN" "$BASE" "$HTTP_PORT"
cat >>"$CONF" <<EOF
[docker]
timeout = 3s
[agent]
poll_interval = 1s
converge_interval = 100ms
EOF
"$DOVETAIL" -c "$CONF" --once >>"$LAB_LOG_DIR/dovetail.log" 2>&1
lab_haproxy_up "$BASE" "$GEN" || { not_ok "haproxy did not start"; echo "$pass passed, $fail failed"; exit 1; }
"$DOVETAIL" -v -c "$CONF" >>"$LAB_LOG_DIR/dovetail.log" 2>&1 &
DT_PID=$!
check "dovetail talks to the first manager" lab_wait 30 connected_to 1

# The lab's app (tests/lab.sh lab_graceful_service), on every node.
mdk service create --detach --quiet --no-resolve-image --name web \
	--replicas 4 --init --restart-delay 0s --stop-grace-period 10s \
	--publish mode=host,target=8080 \
	--label com.docker.lb.hosts=web.local --label com.docker.lb.port=8080 \
	demo:1 sh -c 'mkdir -p /tmp/w/cgi-bin && hostname >/tmp/w/index.html &&
		printf "#!/bin/sh\necho Content-Type: text/plain\necho\nhostname\ncat >/dev/null\n" >/tmp/w/cgi-bin/post &&
		chmod +x /tmp/w/cgi-bin/post &&
		httpd -f -p 8080 -h /tmp/w & pid=$!;
		trap "sleep 3; kill \$pid; exit 0" TERM; wait $pid' >/dev/null
check "web's 4 tasks run on 4 different nodes" lab_wait 120 distinct_nodes web 4
check "web is routed to exactly its 4 tasks, on 4 nodes" lab_wait 60 routes_exactly web 4
check "... each server at its task's node address and published port" lab_wait 30 servers_are web
echo "# web's servers: $(haproxy_addrs svc-web | tr '\n' ' ')"

# ---- a node drained -----------------------------------------------------------------

lab_load_start "$HTTP_PORT" web.local
mdk node update --availability drain dtn4 >/dev/null
check "dtn4 drained: web's task leaves it, in Docker and in HAProxy" lab_wait 60 not_on web "10.99.0.14"
check "... and web is routed to exactly its 4 tasks elsewhere" lab_wait 60 routes_exactly web 4
check "... at their nodes' addresses" lab_wait 30 servers_are web
load_checked "a node drained"
mdk node update --availability active dtn4 >/dev/null

# ---- a node lost ------------------------------------------------------------------------

# A fifth task goes to dtn4, the node with the fewest.
mdk service scale --detach web=5 >/dev/null
check "web scaled to 5: a task on dtn4 again" lab_wait 120 on_node web 10.99.0.14
check "... routed to exactly its 5 tasks" lab_wait 60 routes_exactly web 5
lab_load_start "$HTTP_PORT" web.local
sleep 1
"$SN" kill 4 >>"$LAB_LOG_DIR/swarmnet.log" 2>&1
check "dtn4 lost (every process killed): Docker sees it down" \
	lab_wait 120 node_status_is dtn4 Down
check "... its task replaced, and web routed to exactly its 5 tasks" lab_wait 120 routes_exactly web 5
check "... none at dtn4's address" lab_wait 30 not_on web "10.99.0.14"
load_checked "a node lost"

# ---- manager failover ----------------------------------------------------------------------

leads() { mdk node ls --format '{{.Hostname}} {{.ManagerStatus}}' | grep -q "^$1 Leader"; }
check "dtn1 leads the swarm" leads dtn1
check "... and dovetail talks to it" connected_to 1
lab_load_start "$HTTP_PORT" web.local
sleep 1
"$SN" stop 1 kill >>"$LAB_LOG_DIR/swarmnet.log" 2>&1
MGR=2
check "dtn1 stopped: another manager leads" lab_wait 120 leader_is_not 1
moved() { connected_to 2 || connected_to 3; }
check "... dovetail moved to another manager" lab_wait 120 moved
mdk service scale --detach web=3 >/dev/null
check "web scaled to 3 through the new leader: routed to exactly its 3 tasks" \
	lab_wait 120 routes_exactly web 3
check "... at their nodes' addresses" lab_wait 30 servers_are web
load_checked "manager failover"

check "dovetail kept running" kill -0 "$DT_PID"
kill "$DT_PID"
wait "$DT_PID" 2>/dev/null
DT_PID=
check "dovetail never crashed (no sanitizer report)" sh -c "! grep -q -e 'ERROR: AddressSanitizer' -e 'runtime error:' '$LAB_LOG_DIR/dovetail.log'"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
