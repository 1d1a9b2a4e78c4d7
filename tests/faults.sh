#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Faults: what a crash, a full disk, a broken Docker, a HAProxy that does
# not answer or checks slowly, and SIGHUP storms do to the routes.  The real dockerd in swarm mode, the real
# HAProxy and the real dovetail; each fault under GET and POST load through
# HAProxy, every request counted.  Traffic goes to 127.0.0.1 only.  Every
# wait is bounded; no assertion is about speed.
#
#   tests/faults.sh [path/to/dovetail]
#
# dovetail reaches Docker through tests/faultproxy.py, which answers 500s,
# garbage, truncated bodies or nothing, or cuts the event stream in the
# middle of an object, while the test drives Docker through its own
# socket.  The files HAProxy loads live on a small tmpfs that the test
# fills.  Prints one "ok"/"not ok" line per assertion and, last,
# "N passed, N failed".
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lab.sh
. "$here/lab.sh"

DOVETAIL=${1:-${DOVETAIL:-$here/../build/src/dovetail}}
DOVETAIL=$(cd "$(dirname "$DOVETAIL")" && pwd)/$(basename "$DOVETAIL")
HTTP_PORT=${FAULTS_HTTP_PORT:-18380}
METRICS_PORT=${FAULTS_METRICS_PORT:-19380}
# shellcheck source=tests/results.sh
. "$here/results.sh"

lab_init "${FAULTS_DIR:-/tmp/dovetail-faults}"
echo "# HAProxy under test: $("$LAB_HAPROXY" -v 2>&1 | sed -n 1p)"
DT_PID=
PROXY_PID=
SILENT_PID=
FILES=$LAB_DIR/files
stop_dovetail() {
	if [ -n "$DT_PID" ] && kill -0 "$DT_PID" 2>/dev/null; then
		kill "$DT_PID"
		wait "$DT_PID" 2>/dev/null
	fi
	DT_PID=
}
stop_pid() {
	if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
		kill "$1" 2>/dev/null
		wait "$1" 2>/dev/null
	fi
}
finish() {
	local rc=$?
	[ -n "${LAB_LOAD_PID:-}" ] && lab_load_stop 2>/dev/null
	stop_dovetail
	stop_pid "$PROXY_PID"
	[ -n "$SILENT_PID" ] && kill -- "-$SILENT_PID" 2>/dev/null
	lab_cleanup
	[ -n "${TREE_FILES:-}" ] && mountpoint -q "$TREE_FILES" && umount "$TREE_FILES"
	mountpoint -q "$FILES" && umount "$FILES"
	return $rc
}
trap finish EXIT

lab_docker_up || { echo "not ok - docker swarm did not start"; echo "0 passed, 1 failed"; exit 1; }
lab_image || exit 1

# ---- set-up ------------------------------------------------------------------

PROXY_SOCK=$LAB_RUN_DIR/faulty-docker.sock
MODE=$LAB_DIR/docker.mode
echo pass >"$MODE"
rm -f "$PROXY_SOCK"
python3 "$here/faultproxy.py" "$PROXY_SOCK" "$LAB_DOCKER_SOCK" "$MODE" \
	>"$LAB_LOG_DIR/faultproxy.log" 2>&1 &
PROXY_PID=$!
lab_wait 10 test -S "$PROXY_SOCK"
docker_mode() { echo "$1" >"$MODE"; }

# The files HAProxy loads, on a tmpfs of 1 MB that the test can fill.
mkdir -p "$FILES"
mountpoint -q "$FILES" && umount "$FILES"
mount -t tmpfs -o size=1m tmpfs "$FILES" || { echo "not ok - a tmpfs for the files"; echo "0 passed, 1 failed"; exit 1; }
# Debian 13's HAProxy runs in a chroot whose /tmp is a bind of this one
# made before the tmpfs: it must see the tmpfs there too (tests/trixie.sh).
TREE_FILES=
if [ -n "${TRIXIE_HAPROXY:-}" ] && [ "$LAB_HAPROXY" = "$TRIXIE_HAPROXY" ]; then
	TREE_FILES=${TRIXIE_HAPROXY%.bin/haproxy}$FILES
	mount --bind "$FILES" "$TREE_FILES" || { echo "not ok - the tmpfs in the Debian 13 tree"; echo "0 passed, 1 failed"; exit 1; }
fi
GEN=$FILES/dovetail.cfg
BASE=$LAB_DIR/base.cfg
CONF=$LAB_DIR/dovetail.conf
LOG=$LAB_LOG_DIR/dovetail.log
: >"$LOG"
lab_haproxy_base "$BASE"
lab_dovetail_conf "$CONF" "unix://$PROXY_SOCK" "$GEN" "$BASE" "$HTTP_PORT"
cat >>"$CONF" <<EOF
[docker]
timeout = 3s
[agent]
poll_interval = 1s
audit_interval = 2s
; every audit_interval, whatever the size of the swarm's replies
audit_rate = 1048576
converge_interval = 100ms
listen = 127.0.0.1:$METRICS_PORT
EOF

start_dovetail() {
	"$DOVETAIL" -v -c "$CONF" "$@" >>"$LOG" 2>&1 &
	DT_PID=$!
}
routes_exactly() { lab_routes_exactly "$HTTP_PORT" "$@"; }
healthz() { curl -s -o "$LAB_DIR/healthz.json" -w '%{http_code}' --max-time "${2:-3}" "http://127.0.0.1:$METRICS_PORT/healthz"; }
healthz_is() { [ "$(healthz)" = "$1" ]; }
healthz_says() { healthz >/dev/null; grep -q -- "$1" "$LAB_DIR/healthz.json"; }
metric() {
	curl -s --max-time 3 "http://127.0.0.1:$METRICS_PORT/metrics" |
		awk -v n="$1" 'index($0, n " ") == 1 { print $2 }'
}
metric_ge() { [ "$(metric "$1")" -ge "$2" ] 2>/dev/null; }
# servers BACKEND: how many servers HAProxy holds in BACKEND.
servers() {
	echo "show servers state $1" | socat - "UNIX-CONNECT:$LAB_HX_ADMIN_SOCK" |
		awk '$1 ~ /^[0-9]+$/ && NF > 10' | wc -l
}
# exactly NAME REPLICAS: HAProxy routes NAME.local to its REPLICAS running
# tasks, and holds no other server for it (none lost, none doubled).
exactly() { routes_exactly "$1.local" "$1" "$2" && [ "$(servers "svc-$1")" -eq "$2" ]; }
file_whole() { "$LAB_HAPROXY" -c -q -f "$BASE" -f "$GEN" >/dev/null 2>&1; }

app() { lab_graceful_service "$@"; }
# Background load on web.local: GETs and POSTs (lab.sh).
load_start() { lab_load_start "$HTTP_PORT" web.local; }
load_stop() { lab_load_stop; }
load_failures() { lab_load_failures; }
load_total() { lab_load_total; }
# under_load NAME: stops the load and checks it lost nothing.
load_checked() {
	load_stop
	check "$1: no request lost ($(load_total) sent, $(load_failures) failed)" \
		test "$(load_total)" -gt 20 -a "$(load_failures)" -eq 0
}

# The first file, written by dovetail --once, then HAProxy on it.
check "dovetail --once writes the first file" "$DOVETAIL" -c "$CONF" --once 2>>"$LOG"
lab_haproxy_up "$BASE" "$GEN" || { echo "not ok - haproxy did not start"; echo "$pass passed, $((fail + 1)) failed"; exit 1; }
start_dovetail
app web 2
check "web is routed to its 2 tasks" lab_wait 60 exactly web 2

# ---- Docker breaks --------------------------------------------------------------
# Each way: the routes stay; a change made meanwhile is applied once Docker
# answers again.

# A task added meanwhile waits for Docker; none is removed meanwhile, as
# no load balancer can drain a task it is not told is stopping.
for fault in 500 garbage truncate silence; do
	load_start
	docker_mode "$fault"
	check "docker $fault: /healthz says Docker is away" \
		lab_wait 20 healthz_says '"docker":{"ok":false'
	check "docker $fault: dovetail answers /healthz meanwhile, within its Docker timeout" \
		sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' --max-time 6 http://127.0.0.1:$METRICS_PORT/healthz)\" = 503 ]"
	dk service scale --detach web=3 >/dev/null
	sleep 3
	# Docker silent for 30 s: ten times the Docker timeout.
	[ "$fault" = silence ] && sleep 27
	check "docker $fault: dovetail runs on" kill -0 "$DT_PID"
	docker_mode pass
	check "docker $fault: once Docker answers, web is routed to its 3 tasks" \
		lab_wait 60 exactly web 3
	check "docker $fault: /healthz is fine again" lab_wait 20 healthz_is 200
	dk service scale --detach web=2 >/dev/null
	check "docker $fault: then scaled back, web is routed to its 2 tasks" \
		lab_wait 60 exactly web 2
	load_checked "docker $fault"
done
check "/metrics counts the Docker errors" metric_ge dovetail_docker_errors_total 4

load_start
app late 1
check "an event stream: a new service is routed" lab_wait 60 exactly late 1
docker_mode cut-events
check "the event stream cut in the middle of an object is logged" \
	lab_wait 20 grep -q "warning: docker: .*event" "$LOG"
dk service scale --detach late=2 >/dev/null
check "cut-events: the change made meanwhile is applied (the full read after the cut)" \
	lab_wait 60 exactly late 2
docker_mode pass
dk service scale --detach late=1 >/dev/null
check "cut-events: with the stream back, changes flow again" lab_wait 60 exactly late 1
load_checked "cut event streams"

# ---- a full disk --------------------------------------------------------------------
# The files HAProxy loads cannot be written: the previous file stays whole,
# the error is in the log, /healthz and /metrics, task changes go on
# through the runtime API; it recovers when space returns.

load_start
cp "$GEN" "$LAB_DIR/before-full.cfg"
dd if=/dev/zero of="$FILES/filler" bs=4k 2>/dev/null
app full 1
check "disk full: the new service's file cannot be written, and the log says so" \
	lab_wait 60 grep -q "warning: files: .*No space left on device" "$LOG"
check "disk full: the previous file stays, whole" cmp -s "$GEN" "$LAB_DIR/before-full.cfg"
check "disk full: ... and passes haproxy -c" file_whole
check "disk full: /healthz is unhealthy, naming the files" \
	lab_wait 10 healthz_says '"files":{"ok":false,"error":"files: '
check "disk full: /metrics counts it" metric_ge dovetail_file_errors_total 1
dk service scale --detach web=4 >/dev/null
check "disk full: task changes go on through the runtime API (web to 4 tasks)" \
	lab_wait 60 exactly web 4
rm -f "$FILES/filler"
check "space back: the new service is routed" lab_wait 60 exactly full 1
check "space back: /healthz is fine again" lab_wait 20 healthz_is 200
check "space back: the log says the files are written again" grep -q "files: written again" "$LOG"
load_checked "a full disk"

# ---- dovetail killed -------------------------------------------------------------------
# kill -9 in the middle of a reload (a new service) and of a runtime batch
# (a scale): the file on disk is never partial; restarted, dovetail
# converges, no server lost or doubled.

load_start
n=0
for delay in 0.05 0.3 0.8 1.5; do
	n=$((n + 1))
	app "k$n" 1
	sleep "$delay"
	kill -9 "$DT_PID"
	wait "$DT_PID" 2>/dev/null
	DT_PID=
	check "kill -9 after ${delay}s of a new service: the file is whole (haproxy -c)" file_whole
	start_dovetail
	check "... restarted, dovetail routes k$n" lab_wait 60 exactly "k$n" 1
done
for to in 8 3; do
	dk service scale --detach "web=$to" >/dev/null
	sleep 0.4
	kill -9 "$DT_PID"
	wait "$DT_PID" 2>/dev/null
	DT_PID=
	check "kill -9 while web scales to $to: the file is whole" file_whole
	start_dovetail
	check "... restarted, web is routed to exactly its $to tasks, none doubled" \
		lab_wait 60 exactly web "$to"
done
load_checked "kill -9 of dovetail"

# ---- HAProxy does not answer ---------------------------------------------------------------
# A runtime socket that accepts and never answers: dovetail does not hang
# (its runtime API time limit), says so, and once the real socket is back
# (SIGHUP with the right configuration) repairs what changed meanwhile.

SILENT=$LAB_RUN_DIR/silent.sock
rm -f "$SILENT"
# -t: socat would close a connection half a second after dovetail's end.
setsid socat -t 600 "UNIX-LISTEN:$SILENT,fork" SYSTEM:'sleep 600' </dev/null >/dev/null 2>&1 &
SILENT_PID=$!
lab_wait 5 test -S "$SILENT"
load_start
cp "$CONF" "$LAB_DIR/good.conf"
sed -i "s|^runtime_socket = .*|runtime_socket = $SILENT|" "$CONF"
kill -HUP "$DT_PID"
check "a silent runtime socket: the time limit is hit and logged" \
	lab_wait 60 grep -q "warning: haproxy: runtime API.*no answer within" "$LOG"
# Scaled up, not down: no task can be drained without the runtime API.
dk service scale --detach web=4 >/dev/null
check "... dovetail keeps running" kill -0 "$DT_PID"
check "... /healthz says HAProxy is away" lab_wait 40 healthz_says '"haproxy":{"ok":false'
cp "$LAB_DIR/good.conf" "$CONF"
kill -HUP "$DT_PID"
check "the socket back: web is routed to exactly its 4 tasks" lab_wait 90 exactly web 4
check "... and /healthz is fine again" lab_wait 30 healthz_is 200
load_checked "a silent runtime socket"

# The master CLI stalls: a new service cannot be reloaded in; the reload's
# time limit is hit and logged, the running HAProxy serves on, and the
# reload happens once the master answers again.
load_start
sed -i "s|^master_socket = .*|master_socket = $SILENT|" "$CONF"
kill -HUP "$DT_PID"
app stall 1
check "a stalled master CLI: the reload fails on its time limit, and the log says so" \
	lab_wait 90 grep -q "warning: haproxy: reload failed: .*no answer within" "$LOG"
# Retried as every other such check: its few requests share the round
# robin with the load, and one pass may miss a server.
check "... while web is still routed to exactly its 4 tasks" lab_wait 20 exactly web 4
check "... and dovetail keeps running" kill -0 "$DT_PID"
cp "$LAB_DIR/good.conf" "$CONF"
kill -HUP "$DT_PID"
check "the master back: the new service is reloaded in" lab_wait 90 exactly stall 1
load_checked "a stalled master CLI"
kill -- "-$SILENT_PID" 2>/dev/null
SILENT_PID=

# HAProxy restarted (stopped, started again on the file) while a batch of
# changes is under way: the servers added at run time are gone from the
# new process until dovetail puts them back.
dk service scale --detach web=5 >/dev/null
sleep 0.3
lab_haproxy_down
lab_haproxy_up "$BASE" "$GEN"
check "HAProxy restarted in the middle of a batch: web ends routed to exactly its 5 tasks" \
	lab_wait 60 exactly web 5
check "... and the other services too" exactly full 1

# ---- a slow check ------------------------------------------------------------------
# haproxy -c held (a wrapper in front of it waits while a file exists):
# the check and reload run beside dovetail's loop, so task changes still
# reach HAProxy meanwhile, nothing of the new service does before its
# reload, and the new services of a burst that arrive meanwhile are loaded
# together by one more reload, not one each.

SLOW=$LAB_DIR/slow-haproxy
HOLD=$LAB_DIR/check.hold
HELD=$LAB_DIR/check.held
cat >"$SLOW" <<EOF
#!/bin/sh
# Held for at most 50 s: dovetail gives a check 60.
if [ -e "$HOLD" ]; then
	touch "$HELD"
	n=0
	while [ -e "$HOLD" ] && [ \$n -lt 250 ]; do sleep 0.2; n=\$((n + 1)); done
fi
exec "$LAB_HAPROXY" "\$@"
EOF
chmod +x "$SLOW"
hups=$(grep -c "SIGHUP: configuration" "$LOG")
sed -i "s|^binary = .*|binary = $SLOW|" "$CONF"
kill -HUP "$DT_PID"
check "a slow haproxy -c: the configuration naming it is taken" \
	lab_wait 30 sh -c "[ \$(grep -c 'SIGHUP: configuration' '$LOG') -gt $hups ]"
reloads_ok() { metric 'dovetail_reloads_total{result="ok"}'; }
before=$(reloads_ok)
load_start
rm -f "$HELD"
touch "$HOLD"
app slow1 1
check "... a new service's check is under way" lab_wait 60 test -e "$HELD"
dk service scale --detach web=2 >/dev/null
check "... meanwhile, web's scale-down reaches HAProxy: exactly its 2 tasks" \
	lab_wait 40 exactly web 2
check "... and nothing of the new service does before its reload" \
	test "$(servers svc-slow1)" -eq 0
app slow2 1
app slow3 1
both_run() { [ -n "$(lab_expected slow2)" ] && [ -n "$(lab_expected slow3)" ]; }
check "... two more new services run while the check is held" lab_wait 40 both_run
check "... and the check is still held" test -e "$HOLD"
rm -f "$HOLD"
check "the check released: slow1 is routed" lab_wait 60 exactly slow1 1
check "... slow2 as well" lab_wait 60 exactly slow2 1
check "... and slow3" lab_wait 60 exactly slow3 1
after=$(reloads_ok)
check "... with at most two reloads for the three new services ($before -> $after)" \
	test "$((after - before))" -ge 1 -a "$((after - before))" -le 2
check "... and web is still routed to exactly its 2 tasks" lab_wait 20 exactly web 2
# Stopped while a check is held: dovetail does not wait for it, and the
# file it was checking is not left behind.
rm -f "$HELD"
touch "$HOLD"
app slow4 1
check "a new service's check held again" lab_wait 60 test -e "$HELD"
kill "$DT_PID"
stopped() { ! kill -0 "$DT_PID" 2>/dev/null; }
check "... dovetail stops without waiting for it" lab_wait 20 stopped
wait "$DT_PID" 2>/dev/null
DT_PID=
check "... the previous file is back: whole, without the new service" \
	sh -c "! grep -q 'backend svc-slow4' '$GEN' && '$LAB_HAPROXY' -c -q -f '$BASE' -f '$GEN'"
rm -f "$HOLD"
start_dovetail
check "... restarted, slow4 is routed" lab_wait 60 exactly slow4 1
load_checked "a slow haproxy -c"

# ---- SIGHUP ------------------------------------------------------------------------------
# A storm of 100 SIGHUPs in a second, then the configuration file replaced
# by garbage between two SIGHUPs: dovetail runs on, refuses the garbage
# with its line and keeps the running configuration, and changes go on.

load_start
hups=$(grep -c "SIGHUP: configuration" "$LOG")
for i in $(seq 100); do
	kill -HUP "$DT_PID"
	sleep 0.01
done
check "100 SIGHUPs in a second: dovetail runs on" kill -0 "$DT_PID"
check "... and takes its configuration again" \
	lab_wait 30 sh -c "[ \$(grep -c 'SIGHUP: configuration' '$LOG') -gt $hups ]"
dk service scale --detach web=3 >/dev/null
check "... web's scale still reaches HAProxy: exactly its 3 tasks" lab_wait 60 exactly web 3
cp "$CONF" "$LAB_DIR/good.conf"
printf '[agent\npoll_interval = = 1s\n\001\002 garbage\n' >"$CONF"
kill -HUP "$DT_PID"
check "a configuration file of garbage: refused with its line, the running one kept" \
	lab_wait 30 grep -q "SIGHUP: $CONF:1: .*keeping the running configuration" "$LOG"
dk service scale --detach web=2 >/dev/null
check "... changes still go through: web routed to exactly its 2 tasks" lab_wait 60 exactly web 2
cp "$LAB_DIR/good.conf" "$CONF"
hups=$(grep -c "SIGHUP: configuration" "$LOG")
kill -HUP "$DT_PID"
check "... the good file back and SIGHUP: taken" \
	lab_wait 30 sh -c "[ \$(grep -c 'SIGHUP: configuration' '$LOG') -gt $hups ]"
check "... dovetail runs on" kill -0 "$DT_PID"
load_checked "a SIGHUP storm and a configuration of garbage"

stop_dovetail
check "dovetail stops cleanly at the end" test -z "$DT_PID"
check "dovetail never crashed (no sanitizer report)" sh -c "! grep -q -e 'ERROR: AddressSanitizer' -e 'runtime error:' '$LOG'"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
