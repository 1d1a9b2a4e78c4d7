#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# End-to-end tests: the real dockerd in swarm mode, the real HAProxy and the
# real dovetail, with real services created, scaled, updated and removed.
# Traffic goes to 127.0.0.1 only (host-mode published ports and HAProxy's
# own bind).  Every wait is bounded; no assertion is about speed.
#
#   tests/e2e.sh [path/to/dovetail]
#
# Prints one "ok"/"not ok" line per assertion and, last, "N passed, N failed".
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lab.sh
. "$here/lab.sh"

DOVETAIL=${1:-${DOVETAIL:-$here/../build/src/dovetail}}
DOVETAIL=$(cd "$(dirname "$DOVETAIL")" && pwd)/$(basename "$DOVETAIL")
# dovetailctl is built beside dovetail.
DOVETAILCTL=${DOVETAILCTL:-$(dirname "$DOVETAIL")/dovetailctl}
HTTP_PORT=${E2E_HTTP_PORT:-18080}
METRICS_PORT=${E2E_METRICS_PORT:-19180}
STATS_PORT=${E2E_STATS_PORT:-19405}
# shellcheck source=tests/results.sh
. "$here/results.sh"

lab_init "${E2E_DIR:-/tmp/dovetail-e2e}"
echo "# HAProxy under test: $("$LAB_HAPROXY" -v 2>&1 | sed -n 1p)"
DT_PID=
PROXY_PID=
stop_dovetail() {
	if [ -n "$DT_PID" ] && kill -0 "$DT_PID" 2>/dev/null; then
		kill "$DT_PID"
		wait "$DT_PID" 2>/dev/null
	fi
	DT_PID=
}
stop_proxy() {
	# socat forks a child per connection: stop the whole group we made.
	if [ -n "$PROXY_PID" ]; then
		kill -- "-$PROXY_PID" 2>/dev/null
		wait "$PROXY_PID" 2>/dev/null
	fi
	PROXY_PID=
}
finish() {
	local rc=$?
	stop_dovetail
	stop_proxy
	lab_cleanup
	return $rc
}
trap finish EXIT

# ---- set-up ------------------------------------------------------------------

lab_docker_up || { echo "not ok - docker swarm did not start"; echo "0 passed, 1 failed"; exit 1; }
lab_image || exit 1

# dovetail reaches Docker through a socket proxy so a test can take Docker
# away from dovetail while the containers (and so the traffic) stay up.
PROXY_SOCK=$LAB_RUN_DIR/docker-proxy.sock
start_proxy() {
	rm -f "$PROXY_SOCK"
	setsid socat "UNIX-LISTEN:$PROXY_SOCK,fork,unlink-early" \
		"UNIX-CONNECT:$LAB_DOCKER_SOCK" </dev/null >/dev/null 2>&1 &
	PROXY_PID=$!
	lab_wait 5 test -S "$PROXY_SOCK"
}
start_proxy

GEN=$LAB_DIR/dovetail.cfg
MAP=$LAB_DIR/dovetail.hosts.map
BASE=$LAB_DIR/base.cfg
CONF=$LAB_DIR/dovetail.conf
LOG=$LAB_LOG_DIR/dovetail.log
: >"$LOG"
lab_haproxy_base "$BASE"
# The shipped base file's stats frontend (HAProxy's Prometheus exporter),
# on this run's port.
sed -n '/^frontend stats$/,/^$/p' "$here/../haproxy/haproxy.cfg" |
	sed "s|bind 127.0.0.1:8405|bind 127.0.0.1:$STATS_PORT|" >>"$BASE"
# An operator's own backend whose name dovetail's file would use too (the
# shipped base file says to keep svc-* free): HAProxy refuses the pair.
printf '\nbackend svc-clash\n\tmode http\n' >>"$BASE"
lab_dovetail_conf "$CONF" "unix://$PROXY_SOCK" "$GEN" "$BASE" "$HTTP_PORT"
cat >>"$CONF" <<EOF
[docker]
timeout = 5s
[agent]
poll_interval = 1s
converge_interval = 100ms
listen = 127.0.0.1:$METRICS_PORT
EOF

start_dovetail() {
	"$DOVETAIL" -v -c "$CONF" >>"$LOG" 2>&1 &
	DT_PID=$!
}

# status HOST: the HTTP status of GET / through HAProxy.
status() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
		-H "Host: $1" "http://127.0.0.1:$HTTP_PORT/"
}
# served HOST N: the distinct hostnames that answer N requests through HAProxy.
served() { lab_served "$HTTP_PORT" "$@"; }
# routes_exactly HOST NAME REPLICAS: HAProxy sends HOST to exactly the
# REPLICAS running tasks of NAME, no more and no fewer.
routes_exactly() { lab_routes_exactly "$HTTP_PORT" "$@"; }
# servers BACKEND: the number of servers HAProxy holds in BACKEND.
servers() {
	echo "show servers state $1" | socat - "UNIX-CONNECT:$LAB_HX_ADMIN_SOCK" |
		awk '$1 ~ /^[0-9]+$/ && NF > 10' | wc -l
}
reloads() { lab_haproxy_reloads; }
healthz() { curl -s -o "$LAB_DIR/healthz.json" -w '%{http_code}' --max-time 3 "http://127.0.0.1:$METRICS_PORT/healthz"; }
healthz_is() { [ "$(healthz)" = "$1" ]; }
# metric NAME: the value of one sample of /metrics (the whole line after the name).
metric() {
	curl -s --max-time 3 "http://127.0.0.1:$METRICS_PORT/metrics" |
		awk -v n="$1" 'index($0, n " ") == 1 { print $2 }'
}
metric_ge() { [ "$(metric "$1")" -ge "$2" ] 2>/dev/null; }
metric_is() { [ "$(metric "$1")" = "$2" ]; }
# Predicates for lab_wait, which re-runs its command: a "$(...)" in its
# arguments would be expanded only once, before the first try.
status_is() { [ "$(status "$1")" = "$2" ]; }
servers_are() { [ "$(servers "$1")" -eq "$2" ]; }
reloads_are() { [ "$(reloads)" -eq "$1" ]; }
ports_are() { [ "$(lab_running_ports "$1" | wc -l)" -eq "$2" ]; }

# ---- first file, HAProxy, dovetail -------------------------------------------

check "dovetail -n accepts the test configuration" "$DOVETAIL" -n -c "$CONF"
check "--once without HAProxy succeeds" "$DOVETAIL" -c "$CONF" --once 2>>"$LOG"
check "--once without HAProxy writes the file and the map" test -s "$GEN" -a -f "$MAP"
check "the written file passes haproxy -c" "$LAB_HAPROXY" -c -q -f "$BASE" -f "$GEN"
# Docker over TCP with TLS: a TLS proxy in front of the Docker socket that
# demands a client certificate from a CA this test makes.
TLS=$LAB_DIR/tls
TLS_PORT=${E2E_TLS_PORT:-23760}
TLS_PID=
mkdir -p "$TLS"
(
	cd "$TLS" &&
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=e2e-ca \
		-keyout ca.key -out ca.pem &&
	openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
		-keyout server.key -out server.csr &&
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext &&
	openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key \
		-CAcreateserial -days 1 -extfile san.ext -out server.pem &&
	openssl req -newkey rsa:2048 -nodes -subj /CN=dovetail \
		-keyout client.key -out client.csr &&
	openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key \
		-CAcreateserial -days 1 -out client.pem
) >/dev/null 2>&1
setsid socat "OPENSSL-LISTEN:$TLS_PORT,bind=127.0.0.1,reuseaddr,fork,cert=$TLS/server.pem,key=$TLS/server.key,cafile=$TLS/ca.pem,verify=1" \
	"UNIX-CONNECT:$LAB_DOCKER_SOCK" </dev/null >/dev/null 2>&1 &
TLS_PID=$!
lab_wait 5 sh -c "socat -u OPEN:/dev/null TCP:127.0.0.1:$TLS_PORT >/dev/null 2>&1"
once_tls() {
	"$DOVETAIL" -c "$CONF" --once --docker-url "tcp://127.0.0.1:$TLS_PORT" \
		--docker-tls-ca "$TLS/ca.pem" \
		--haproxy-runtime-socket "$LAB_DIR/absent.sock" \
		--haproxy-config "$LAB_DIR/tls-once.cfg" "$@" 2>"$LAB_DIR/tls.log"
}
check "Docker over TLS with a client certificate: --once succeeds" \
	once_tls --docker-tls-cert "$TLS/client.pem" --docker-tls-key "$TLS/client.key"
check "... and says it connected to the TLS endpoint" \
	grep -q "connected to tcp://127.0.0.1:$TLS_PORT, a swarm manager" "$LAB_DIR/tls.log"
no_client_cert() { ! once_tls; }
check "Docker over TLS without the client certificate fails" no_client_cert
check "... with a message naming the endpoint" grep -q "docker: tcp://127.0.0.1:$TLS_PORT" "$LAB_DIR/tls.log"
# dovetail's own client certificate and key sit in the secrets directory
# here, as Docker secrets would: a service naming them gets nothing.
dk service create --detach --quiet --no-resolve-image --name cred --replicas 0 \
	--label com.docker.lb.hosts=cred.local --label com.docker.lb.port=80 \
	--label com.docker.lb.ssl_cert=client.pem --label com.docker.lb.ssl_key=client.key \
	"$LAB_IMAGE" true >/dev/null
printf 'cred\n' >>"$LAB_DIR/services"
once_tls --docker-tls-cert "$TLS/client.pem" --docker-tls-key "$TLS/client.key" \
	--routing-secrets-dir "$TLS" --routing-https-bind 127.0.0.1:18643
check "a label naming dovetail's own Docker client key is refused, naming the service" \
	grep -q "service cred: label com.docker.lb.ssl_[a-z]*: the secret is dovetail's own Docker client credential" "$LAB_DIR/tls.log"
check "... and the key is in none of the files dovetail wrote" \
	sh -c "! grep -rq -F -e \"\$(sed -n 2p '$TLS/client.key')\" '$LAB_DIR'/tls-once.*"
dk service rm cred >/dev/null
kill -- "-$TLS_PID" 2>/dev/null

# A file haproxy -c refuses is not kept: the previous one stays.
printf '# the previous file\n' >"$LAB_DIR/refused.cfg"
refused_once() {
	! "$DOVETAIL" -c "$CONF" --once --haproxy-binary /bin/false \
		--haproxy-runtime-socket "$LAB_DIR/absent.sock" \
		--haproxy-config "$LAB_DIR/refused.cfg" 2>"$LAB_DIR/refused.log"
}
check "a refused check makes --once fail" refused_once
check "... and keeps the previous file" test "$(cat "$LAB_DIR/refused.cfg")" = "# the previous file"
check "... and says why" grep -q "refused the configuration; keeping the previous file" "$LAB_DIR/refused.log"

lab_haproxy_up "$BASE" "$GEN" || { echo "not ok - haproxy did not start"; echo "$pass passed, $((fail + 1)) failed"; exit 1; }
start_dovetail

check "an unknown host gets the 503 page" lab_wait 10 status_is nobody.local 503
body=$(curl -s -H 'Host: nobody.local' "http://127.0.0.1:$HTTP_PORT/")
case $body in *"No service is routed"*) ok "the 503 page is dovetail's" ;; *) not_ok "the 503 page is dovetail's: $body" ;; esac

# ---- create, scale, remove ---------------------------------------------------

lab_demo_service demo 1 --restart-delay 0s \
	--label com.docker.lb.hosts=demo.local,Demo2.Local \
	--label com.docker.lb.port=8080 >/dev/null
check "a new service is routed by its host" lab_wait 30 routes_exactly demo.local demo 1
check "its second host, case-folded, routes too" lab_wait 10 routes_exactly demo2.local demo 1
check "a Host header with a port routes" test "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: demo.local:8080' "http://127.0.0.1:$HTTP_PORT/")" = 200
check "the change is logged naming service, backend and server" \
	grep -q "service demo: backend svc-demo: server .* added at 127.0.0.1:" "$LOG"
r0=$(reloads)
check "/healthz is 200 when Docker and HAProxy answer" lab_wait 10 healthz_is 200
check "/metrics counts the routed service's servers" lab_wait 10 metric_is dovetail_servers 1
check "/metrics counts Docker events" metric_ge dovetail_docker_events_total 1
check "/metrics counts runtime commands" metric_ge 'dovetail_runtime_commands_total{result="ok"}' 3
check "/metrics counts the reload" metric_ge 'dovetail_reloads_total{result="ok"}' 1
check "/metrics has convergence lags" metric_ge dovetail_convergence_seconds_count 1

# ---- HAProxy's metrics and the Grafana dashboard -------------------------------

# hx_metric NAME: one sample of HAProxy's exporter (NAME with its labels).
hx_metric() {
	curl -s --max-time 3 "http://127.0.0.1:$STATS_PORT/metrics" |
		awk -v n="$1" 'index($0, n " ") == 1 { print $2 }'
}
hx_metric_ge() { [ "$(hx_metric "$1")" -ge "$2" ] 2>/dev/null; }
check "the test's base file has the shipped stats frontend" \
	grep -q "bind 127.0.0.1:$STATS_PORT" "$BASE"
status demo.local >/dev/null
check "HAProxy's exporter counts the service's requests on its backend" \
	hx_metric_ge 'haproxy_backend_http_requests_total{proxy="svc-demo"}' 1
check "... and its one server up" \
	lab_wait 10 hx_metric_ge 'haproxy_backend_active_servers{proxy="svc-demo"}' 1
check "HAProxy's stats page answers" \
	test "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$STATS_PORT/stats")" = 200
# dashboard_scraped: tests/dashboard.sh on both scrapes, its lines as comments.
dashboard_scraped() {
	"$here/dashboard.sh" "$here/../packaging/grafana/dovetail.json" \
		"http://127.0.0.1:$METRICS_PORT/metrics" "http://127.0.0.1:$STATS_PORT/metrics" 2>&1 |
		sed 's/^/# /'
	return "${PIPESTATUS[0]}"
}
check "every metric the Grafana dashboard queries is in dovetail's and HAProxy's scrapes" \
	dashboard_scraped

dk service scale --detach demo=5 >/dev/null
check "scale 1 -> 5: routed to exactly the 5 running tasks" lab_wait 60 routes_exactly demo.local demo 5
check "scale 1 -> 5: the servers added at run time keep idle connections as the file's do" lab_pools_as_file svc-demo
dk service scale --detach demo=1 >/dev/null
check "scale 5 -> 1: routed to exactly the 1 running task" lab_wait 60 routes_exactly demo.local demo 1
check "scale 5 -> 1: HAProxy holds exactly 1 server" lab_wait 30 servers_are svc-demo 1
check "scaling caused no reload" test "$(reloads)" -eq "$r0"
check "drained servers are logged" grep -q "backend svc-demo: server .* drained" "$LOG"

dk service scale --detach demo=40 >/dev/null
check "scale 1 -> 40: HAProxy holds 40 servers" lab_wait 180 servers_are svc-demo 40
check "scale 1 -> 40: routed to exactly the 40 running tasks" lab_wait 60 routes_exactly demo.local demo 40
dk service scale --detach demo=2 >/dev/null
check "scale 40 -> 2: routed to exactly the 2 running tasks" lab_wait 120 routes_exactly demo.local demo 2
check "scale 40 -> 2: HAProxy holds 2 servers" lab_wait 60 servers_are svc-demo 2
check "growing to 40 and back caused no reload" test "$(reloads)" -eq "$r0"

dk service update --detach --force --update-parallelism 1 demo >/dev/null
# Docker's own pace first (the 38 tasks of the scale-down may still be
# stopping on a loaded machine), then dovetail's.
check "the rolling update completes in Docker" lab_wait 300 lab_update_done demo
check "a rolling update ends routed to exactly the new tasks" lab_wait 60 routes_exactly demo.local demo 2
check "the rolling update caused no reload" test "$(reloads)" -eq "$r0"

dk service update --detach --label-add com.docker.lb.hosts=demo.local,demo3.local demo >/dev/null
check "a host added to an existing service routes" lab_wait 30 routes_exactly demo3.local demo 2
check "a host removed from a service gets the 503 page" lab_wait 30 status_is demo2.local 503
dk service update --detach --label-add com.docker.lb.hosts=demo.local,demo3.local,demo4.local demo >/dev/null
check "a third host routes" lab_wait 30 routes_exactly demo4.local demo 2
check "changing a service's hosts caused no reload" test "$(reloads)" -eq "$r0"

# Changed by hand while dovetail is idle (an idle poll that finds HAProxy
# as it left it stops before parsing it): put back at the next poll.
sleep 3
srv=$(lab_admin "show servers state svc-demo" | awk '$1 ~ /^[0-9]+$/ && NF > 10 { print $4; exit }')
check "a server put in maintenance by hand (HAProxy took it)" \
	test -n "$srv" -a -z "$(lab_admin "set server svc-demo/$srv state maint")"
check "... is ready again" lab_wait 10 lab_servers_ready svc-demo 2
check "a route deleted by hand from the map (HAProxy took it)" \
	test -z "$(lab_admin "del map $MAP demo4.local/")"
check "... is back" lab_wait 10 routes_exactly demo4.local demo 2
check "putting them back caused no reload" test "$(reloads)" -eq "$r0"

dk service rm demo >/dev/null
check "a removed service's host gets the 503 page" lab_wait 30 status_is demo.local 503
check "removing the service reloaded HAProxy once" lab_wait 10 reloads_are $((r0 + 1))
check "/metrics counts both reloads" metric_ge 'dovetail_reloads_total{result="ok"}' 2
check "/metrics: no service routed any more" lab_wait 10 metric_is dovetail_services 0
check "its backend is gone from the file" lab_wait 10 sh -c "! grep -q 'backend svc-demo' '$GEN'"

# A service without dovetail's labels: its events are looked at once and
# followed no further (no task polls, no reconcile of its own).
lab_demo_service plain 1 >/dev/null
plain_id=$(dk service inspect -f '{{.ID}}' plain)
check "a service without labels is not followed (logged once it is seen)" \
	lab_wait 30 grep -q "docker: service $plain_id has no com.docker.lb.hosts or com.docker.lb.default_backend label: not followed" "$LOG"
dk service scale --detach plain=2 >/dev/null
check "... its tasks run" lab_wait 60 eval '[ "$(dk service ps --filter desired-state=running --format "{{.CurrentState}}" plain | grep -c ^Running)" = 2 ]'
is "... its service and container events led to no task poll" \
	"$(grep -c "docker: service $plain_id settled" "$LOG")" 0
dk service rm plain >/dev/null

# ---- bad labels ---------------------------------------------------------------

lab_demo_service good 2 --restart-delay 0s --label com.docker.lb.hosts=good.local \
	--label com.docker.lb.port=8080 >/dev/null
lab_demo_service badport 1 --label com.docker.lb.hosts=badport.local \
	--label com.docker.lb.port=80a >/dev/null
lab_demo_service badhost 1 --label 'com.docker.lb.hosts=x.local;del map' \
	--label com.docker.lb.port=8080 >/dev/null
lab_demo_service badnet 1 --label com.docker.lb.hosts=badnet.local \
	--label com.docker.lb.port=9999 --label com.docker.lb.network=nowhere >/dev/null
check "a good service beside bad ones routes" lab_wait 30 routes_exactly good.local good 2
check "the bad port is logged naming service and label" lab_wait 10 \
	grep -q "service badport: label com.docker.lb.port: \"80a\"" "$LOG"
check "the bad host is logged naming service and label" lab_wait 10 \
	grep -q "service badhost: label com.docker.lb.hosts:" "$LOG"
check "the missing network is logged naming service and label" lab_wait 10 \
	grep -q "service badnet: label com.docker.lb.network: network \"nowhere\"" "$LOG"
check "each bad service is logged once" test "$(grep -c 'service badport: label' "$LOG")" -eq 1
check "nothing of a bad label reaches the file" sh -c "! grep -q -e 'del map' -e badport -e badnet '$GEN' '$MAP'"
check "a bad service's host is not routed" test "$(status badport.local)" = 503

# ---- dovetailctl ------------------------------------------------------------------

CTL_SOCK=$LAB_DIR/dovetail.sock
ctl() { "$DOVETAILCTL" -c "$CONF" "$@"; }
# ctl_status CMD...: dovetailctl's exit status, its output dropped.
ctl_status() { ctl "$@" >/dev/null 2>&1; echo $?; }
# ctl_raw BYTES-FILE: what the control socket answers to those bytes.
ctl_raw() { socat -t 5 - "UNIX-CONNECT:$CTL_SOCK" <"$1" 2>/dev/null; }
# ctl_routes_up HOST NAME: every running task of NAME is a line of HOST's
# route in "show routes", on its node, UP in HAProxy; no other line.
ctl_routes_up() {
	local out tasks t n=0
	out=$(ctl show routes | grep "^$1/ ")
	tasks=$(dk service ps -q --no-trunc --filter desired-state=running "$2")
	[ -n "$tasks" ] || return 1
	for t in $tasks; do
		printf '%s\n' "$out" | grep -Eq "^$1/ +http +$2 +svc-$2 +$t +[^ ]+ +127\.0\.0\.1:[0-9]+ +UP\$" || return 1
		n=$((n + 1))
	done
	[ "$(printf '%s\n' "$out" | grep -c .)" -eq "$n" ]
}
# ctl_json_service NAME FIELD: one field of NAME in "show services json".
ctl_json_service() {
	ctl -j show services | python3 -c 'import json, sys
for s in json.load(sys.stdin)["services"]:
    if s["service"] == sys.argv[1]:
        print(s[sys.argv[2]])' "$1" "$2"
}
# ctl_says CMD ARG REGEX: the reply has a line matching REGEX (whatever the
# exit status, which says whether every service is routed).
ctl_says() { local out; out=$(ctl "$1" "$2"); printf '%s\n' "$out" | grep -Eq "$3"; }

check "the control socket is beside the file, mode 660" \
	test "$(stat -c '%F %a' "$CTL_SOCK")" = "socket 660"
check "show routes: good.local's route lists each running task, UP" \
	lab_wait 15 ctl_routes_up good.local good
# ctl_route_nodes HOST: the NODE column of HOST's lines, one per line.
ctl_route_nodes() { ctl show routes | awk -v r="$1/" '$1 == r { print $6 }' | sort -u; }
is "show routes: ... with the node the tasks run on" \
	"$(ctl_route_nodes good.local)" "$(dk node ls --format '{{.Hostname}}' | head -n 1)"
check "show services: good is routed with 2 servers" \
	ctl_says show services '^good +routed +svc-good +2 +- +-$'
check "show services: badport is refused, naming the label and the value" \
	ctl_says show services '^badport +refused +- +- +com\.docker\.lb\.port +"80a"'
check "show services: badnet is refused, naming the network label" \
	ctl_says show services '^badnet +refused +- +- +com\.docker\.lb\.network +network "nowhere"'
is "show services json: badport's state" "$(ctl_json_service badport state)" refused
is "show services json: badport's label" "$(ctl_json_service badport label)" com.docker.lb.port
is "dovetailctl exits 1 while some service is refused" "$(ctl_status show services)" 1
check "show reloads: the reloads so far, with their reason" \
	ctl_says show reloads '^[0-9T:-]+Z +ok +[0-9]+ms +frontends or backends changed'
check "show certs answers (no TLS service here)" ctl_says show certs '^FILE +SERVICE'
is "reload exits 0" "$(ctl_status reload)" 0
check "... and dovetail reads its configuration again, as on SIGHUP" \
	lab_wait 10 grep -q "SIGHUP: configuration $CONF reloaded" "$LOG"
is "log brief exits 0" "$(ctl_status log brief)" 0
check "... and is logged" lab_wait 5 grep -q "control: uid [0-9]* sets logging brief" "$LOG"
is "log verbose exits 0" "$(ctl_status log verbose)" 0
printf 'bogus request\n' >"$LAB_DIR/ctl-bogus"
check "a garbage request gets an error line" \
	sh -c "socat -t 5 - 'UNIX-CONNECT:$CTL_SOCK' <'$LAB_DIR/ctl-bogus' | grep -qx 'error: unknown command \"bogus request\".*'"
is "dovetailctl exits 2 on an unknown command" "$(ctl_status frobnicate)" 2
head -c 4096 /dev/urandom >"$LAB_DIR/ctl-noise"
ctl_raw "$LAB_DIR/ctl-noise" >/dev/null
head -c 300 /dev/zero | tr '\0' a >"$LAB_DIR/ctl-long"
check "a request longer than 255 bytes gets an error line" \
	sh -c "socat -t 5 - 'UNIX-CONNECT:$CTL_SOCK' <'$LAB_DIR/ctl-long' | grep -qx 'error: request longer than 255 bytes'"
# Ten clients that say nothing hold the 8 slots for 5 s at most.
idle_pids=
for i in 1 2 3 4 5 6 7 8 9 10; do
	sleep 8 | socat - "UNIX-CONNECT:$CTL_SOCK" >/dev/null 2>&1 &
	idle_pids="$idle_pids $!"
done
is "with silent clients holding every slot, a request is answered within 10 s" \
	"$(timeout 10 "$DOVETAILCTL" -c "$CONF" show services >/dev/null 2>&1; echo $?)" 1
for p in $idle_pids; do wait "$p" 2>/dev/null; done
check "after garbage and silent clients, dovetail keeps answering" \
	ctl_says show services '^good +routed'
check "... and keeps routing" routes_exactly good.local good 2
is "dovetailctl without a daemon's socket exits 2" \
	"$("$DOVETAILCTL" -s "$LAB_DIR/nothing.sock" show routes >/dev/null 2>&1; echo $?)" 2

# ---- the status page in a browser -------------------------------------------------

# A refused service whose label value holds every character HTML gives a
# meaning to (a service name cannot): the page must show it as text.
lab_demo_service badhtml 1 --label 'com.docker.lb.hosts=<b>x</b>&"'"'"'.local' \
	--label com.docker.lb.port=8080 >/dev/null
check "a label value with <>&\"' is refused" lab_wait 30 \
	ctl_says show services '^badhtml +refused +- +- +com\.docker\.lb\.hosts'
# Debian's Chromium, headless; installed when missing (run-all.sh lists it).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		-o DPkg::Lock::Timeout=300 --no-install-recommends chromium \
		>"$LAB_DIR/chromium-install.log" 2>&1
fi
STATUS_URL=http://127.0.0.1:$METRICS_PORT/
# browser ARGS...: headless Chromium on the status page, its own profile.
browser() {
	timeout 60 chromium --headless --no-sandbox --disable-gpu \
		--hide-scrollbars --user-data-dir="$LAB_DIR/chromium" "$@" \
		"$STATUS_URL" 2>>"$LAB_LOG_DIR/chromium.log"
}
# page_shows REGEX: the DOM Chromium built from the page matches (ERE).
page_shows() { browser --dump-dom >"$LAB_DIR/status.dom" && grep -Eq -- "$1" "$LAB_DIR/status.dom"; }
# page_servers_up HOST NAME: each running task of NAME is a server of
# HOST's route on the page, UP.
page_servers_up() {
	local t tasks
	tasks=$(dk service ps -q --no-trunc --filter desired-state=running "$2")
	[ -n "$tasks" ] || return 1
	browser --dump-dom >"$LAB_DIR/status.dom" || return 1
	grep -q "<code>$1/</code>" "$LAB_DIR/status.dom" || return 1
	for t in $tasks; do
		grep -Eq "<span class=\"ok\">UP</span> <code>127\.0\.0\.1:[0-9]+</code> task <code>$t</code>" \
			"$LAB_DIR/status.dom" || return 1
	done
}
check "GET / is the status page, HTML, with a policy that allows no script" \
	sh -c "curl -s -D - -o '$LAB_DIR/status.html' --max-time 5 '$STATUS_URL' |
		tr -d '\r' | grep -qi '^content-security-policy: default-src .none.' &&
		grep -q '^<!DOCTYPE html>' '$LAB_DIR/status.html'"
if command -v chromium >/dev/null 2>&1; then
	check "Chromium loads the status page" page_shows '<title>dovetail status</title>'
	check "the page shows good.local's route with each running task as a server, UP" \
		lab_wait 15 page_servers_up good.local good
	check "the page shows the routed service with its backend" \
		page_shows '<td data-label="Service">good</td><td data-label="State" class="ok">routed</td><td data-label="Backend">svc-good</td>'
	check "the page shows badport refused, with its label and reason" \
		page_shows '<td data-label="Service">badport</td><td data-label="State" class="bad">refused</td>.*<code>com\.docker\.lb\.port</code></td><td data-label="Reason">"80a" is not a port'
	check "the page shows the label value with <>&\"' as text" \
		page_shows '<td data-label="Service">badhtml</td>.*<td data-label="Reason">"&lt;b&gt;x&lt;/b&gt;&amp;'
	check "... and no element came from it" sh -c "! grep -q '<b>x</b>' '$LAB_DIR/status.dom'"
	check "the page lists the reloads" page_shows '<td data-label="Reason">frontends or backends changed</td>'
	# A phone's screen; E2E_SCREENSHOT=docs/status.png refreshes the README's.
	shot=${E2E_SCREENSHOT:-$LAB_LOG_DIR/status.png}
	# screenshot_is_phone: a 412x900 PNG (width and height from its IHDR).
	screenshot_is_phone() {
		rm -f "$shot"
		timeout 60 chromium --headless --no-sandbox --disable-gpu \
			--hide-scrollbars --user-data-dir="$LAB_DIR/chromium" \
			--screenshot="$shot" --window-size=412,900 "$STATUS_URL" \
			2>>"$LAB_LOG_DIR/chromium.log" || return 1
		[ "$(python3 -c 'import struct, sys
h = open(sys.argv[1], "rb").read(24)
assert h[:8] == b"\x89PNG\r\n\x1a\n" and h[12:16] == b"IHDR"
print(*struct.unpack(">II", h[16:24]))' "$shot")" = "412 900" ]
	}
	check "a phone-size screenshot of the page is a 412x900 PNG" screenshot_is_phone
else
	check "chromium is installed for the status page test" false
fi

# ---- a service HAProxy refuses: left out, the others go on -------------------

lab_demo_service clash 1 --label com.docker.lb.hosts=clash.local \
	--label com.docker.lb.port=8080 >/dev/null
check "a service whose backend HAProxy refuses is left out, with HAProxy's reason" \
	lab_wait 30 grep -q "warning: service clash: HAProxy refuses its part of the file (line [0-9]*): backend 'svc-clash' has the same name as backend 'svc-clash' declared at $BASE:[0-9]*\\.; service not routed" "$LOG"
check "... and the refused check's warning quotes HAProxy's alert" \
	grep -q "HAProxy said: Parsing \\[$GEN:[0-9]*\\]: backend 'svc-clash'" "$LOG"
lab_demo_service after-clash 1 --label com.docker.lb.hosts=after-clash.local \
	--label com.docker.lb.port=8080 >/dev/null
check "a service created after it is routed" lab_wait 60 routes_exactly after-clash.local after-clash 1
check "... and the good service keeps routing" routes_exactly good.local good 2
check "/metrics counts it as refused by HAProxy" \
	lab_wait 10 metric_is 'dovetail_refused_services{reason="haproxy"}' 1
dk service update --detach --label-add com.docker.lb.hosts=clash2.local clash >/dev/null
check "its labels changed, it is tried again" \
	lab_wait 30 grep -q "service clash: labels changed, trying it again" "$LOG"
check "... and refused again, once more named" lab_wait 30 eval \
	'[ "$(grep -c "warning: service clash: HAProxy refuses its part" "$LOG")" = 2 ]'
check "... while the service after it still routes" routes_exactly after-clash.local after-clash 1
check "dovetailctl shows it quarantined, with HAProxy's reason" \
	ctl_says show services "^clash +quarantined +- +- +- +HAProxy refuses its part of the file"
dk service rm clash after-clash >/dev/null
dk service rm badport badhost badnet badhtml >/dev/null
check "with the bad services gone, dovetailctl exits 0: every labelled service is routed" \
	lab_wait 30 eval '[ "$(ctl_status show services)" = 0 ]'

# ---- draining, retries, health checks -----------------------------------------

graceful_service() { lab_graceful_service "$@"; }
# Background load: GETs and POSTs in a loop (lab.sh).
load_start() { lab_load_start "$HTTP_PORT" "$1"; }
load_stop() { lab_load_stop; }
load_failures() { lab_load_failures; }
load_total() { lab_load_total; }

graceful_service calm 2
check "a graceful service is routed" lab_wait 30 routes_exactly calm.local calm 2
r2=$(reloads)
# Which task goes away on scale-down is swarm's choice: watch both.
ports=$(lab_running_ports calm)
dk service scale --detach calm=1 >/dev/null
lab_wait 30 ports_are calm 1
lab_wait 30 grep -q "service calm: backend svc-calm: server .* drained" "$LOG"
gone=
for p in $ports; do
	lab_running_ports calm | grep -qx "$p" || gone=$p
done
alive=$(curl -s --max-time 2 "http://127.0.0.1:$gone/")
check "the stopping task is still alive during its grace period" test -n "$alive"
served_after=$(served calm.local 20)
case $served_after in *"$alive"*) not_ok "no new request reaches a drained task ($alive answered)" ;;
*) ok "no new request reaches a drained task" ;; esac
check "draining caused no reload" test "$(reloads)" -eq "$r2"

dk service scale --detach calm=2 >/dev/null
lab_wait 30 routes_exactly calm.local calm 2
load_start calm.local
dk service update --detach --force --update-order stop-first --update-parallelism 1 calm >/dev/null
lab_wait 60 sh -c "[ \"\$(DOCKER_HOST=$DOCKER_HOST $LAB_DOCKER service inspect -f '{{.UpdateStatus.State}}' calm)\" = completed ]"
sleep 1
load_stop
check "a stop-first rolling update under load loses no request ($(load_total) sent)" \
	test "$(load_failures)" -eq 0
load_start calm.local
dk service update --detach --force --update-order start-first --update-parallelism 1 calm >/dev/null
lab_wait 60 sh -c "[ \"\$(DOCKER_HOST=$DOCKER_HOST $LAB_DOCKER service inspect -f '{{.UpdateStatus.State}}' calm)\" = completed ]"
sleep 1
load_stop
check "a start-first rolling update under load loses no request ($(load_total) sent)" \
	test "$(load_failures)" -eq 0
check "rolling updates caused no reload" test "$(reloads)" -eq "$r2"

# A container killed outright, while dovetail is frozen: HAProxy's own
# checks and retries keep GETs whole.
lab_wait 30 routes_exactly calm.local calm 2
kill -STOP "$DT_PID"
victim=$(dk ps -q --filter label=com.docker.swarm.service.name=calm | head -n 1)
load_start calm.local
dk kill "$victim" >/dev/null
sleep 3
load_stop
# Before dovetail wakes up and deletes the dead task's server.
check "HAProxy's checks took the dead task out" sh -c \
	"echo 'show servers state svc-calm' | socat - UNIX-CONNECT:$LAB_HX_ADMIN_SOCK | awk '\$1 ~ /^[0-9]+\$/ && \$6 == 0' | grep -q ."
kill -CONT "$DT_PID"
check "a killed task loses no GET while dovetail is frozen ($(load_total) sent)" \
	test "$(grep -v -c -E '^(GET 200|POST .*)$' "$LAB_DIR/load.out")" -eq 0
check "dovetail heard of the killed container on this node" lab_wait 10 \
	grep -q "docker: container of task .*: \(kill\|die\)" "$LOG"
check "the replacement task is routed" lab_wait 30 routes_exactly calm.local calm 2
# A signal that does not stop the container (WINCH: the app ignores it, as
# apps reloaded by HUP keep running) must not take the task out.
drains_before=$(grep -c ' drained$' "$LOG")
dk kill -s WINCH "$(dk ps -q --filter label=com.docker.swarm.service.name=calm | head -n 1)" >/dev/null
sleep 2
check "a non-stopping signal drains nothing" test "$(grep -c ' drained$' "$LOG")" -eq "$drains_before"
check "... and the task stays routed" routes_exactly calm.local calm 2
dk service rm calm >/dev/null

# ---- HAProxy restarts -----------------------------------------------------------

lab_haproxy_down
check "/healthz is 503 while HAProxy is away" lab_wait 10 healthz_is 503
check "... and says HAProxy is the problem" grep -q '"haproxy":{"ok":false' "$LAB_DIR/healthz.json"
dk service scale --detach good=3 >/dev/null
lab_wait 30 ports_are good 3
lab_haproxy_up "$BASE" "$GEN"
check "after an HAProxy restart, routes come back with changes made meanwhile" \
	lab_wait 30 routes_exactly good.local good 3
check "dovetail logged HAProxy's absence" grep -q "haproxy: runtime API" "$LOG"

# ---- Docker away ------------------------------------------------------------------

r1=$(reloads)
stop_proxy
check "while dovetail cannot reach Docker, HAProxy keeps serving" \
	routes_exactly good.local good 3
sleep 3
check "... and still serves after a few polls" routes_exactly good.local good 3
check "dovetail logs that Docker is away" grep -q "docker: .*retrying" "$LOG"
check "Docker being away caused no reload" test "$(reloads)" -eq "$r1"
check "/healthz is 503 while Docker is away" lab_wait 10 healthz_is 503
check "... and says Docker is the problem" grep -q '"docker":{"ok":false' "$LAB_DIR/healthz.json"
check "/metrics counts Docker errors" metric_ge dovetail_docker_errors_total 1
dk service scale --detach good=2 >/dev/null
lab_wait 30 ports_are good 2
start_proxy
check "Docker back: the change made meanwhile is picked up" lab_wait 40 routes_exactly good.local good 2
check "dovetail says Docker is back" lab_wait 10 grep -q "docker: reachable again" "$LOG"
check "/healthz is 200 again" lab_wait 10 healthz_is 200

# A real Docker restart: tasks are replaced, with new ports.
if [ "${LAB_STARTED_DOCKER:-0}" = 1 ]; then
	stop_proxy
	lab_docker_stop
	lab_docker_start
	start_proxy
	check "after dockerd restarts, the replaced tasks are routed" lab_wait 90 routes_exactly good.local good 2
else
	echo "# dockerd restart not tested: this run reuses a Docker engine it did not start"
fi

check "dovetail is still running" kill -0 "$DT_PID"
stop_dovetail
check "dovetail stops cleanly on SIGTERM" grep -q "stopping on signal" "$LOG"

if [ "$fail" -gt 0 ]; then
	echo "# dovetail log (last 60 lines):"
	tail -n 60 "$LOG" | sed 's/^/# /'
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
