#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# The daemon under valgrind (memcheck) on a real swarm and a real HAProxy:
# a short run of what it does most (a service created, scaled, its labels
# changed, so a reload; a bad label; SIGHUP; dovetailctl, /metrics,
# /healthz and the status page asked), then SIGTERM.  valgrind must report
# no invalid access, no use of uninitialised memory and no definite or
# indirect leak.  Needs a build without sanitizers (valgrind and ASan do
# not mix): build-valgrind/ from tests/run-all.sh.
#
#   tests/e2e-valgrind.sh [path/to/dovetail]
#
# Prints one "ok"/"not ok" line per assertion and, last, "N passed, N failed".
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lab.sh
. "$here/lab.sh"

DOVETAIL=${1:-${DOVETAIL:-$here/../build-valgrind/src/dovetail}}
DOVETAIL=$(cd "$(dirname "$DOVETAIL")" && pwd)/$(basename "$DOVETAIL")
DOVETAILCTL=${DOVETAILCTL:-$(dirname "$DOVETAIL")/dovetailctl}
HTTP_PORT=${VG_HTTP_PORT:-18580}
METRICS_PORT=${VG_METRICS_PORT:-19580}
# shellcheck source=tests/results.sh
. "$here/results.sh"

lab_init "${VG_DIR:-/tmp/dovetail-valgrind}"
DT_PID=
finish() {
	local rc=$?
	if [ -n "$DT_PID" ] && kill -0 "$DT_PID" 2>/dev/null; then
		kill "$DT_PID"
		wait "$DT_PID" 2>/dev/null
	fi
	lab_cleanup
	return $rc
}
trap finish EXIT

if [ ! -x "$DOVETAIL" ]; then
	echo "not ok - $DOVETAIL is built"
	echo "0 passed, 1 failed"
	exit 1
fi
if ! command -v valgrind >/dev/null; then
	echo "not ok - valgrind is installed"
	echo "0 passed, 1 failed"
	exit 1
fi
if nm "$DOVETAIL" 2>/dev/null | grep -q __asan_init; then
	echo "not ok - $DOVETAIL is built without AddressSanitizer (valgrind cannot run it)"
	echo "0 passed, 1 failed"
	exit 1
fi
lab_docker_up || { echo "not ok - docker swarm did not start"; echo "0 passed, 1 failed"; exit 1; }
lab_image || exit 1

GEN=$LAB_DIR/dovetail.cfg
BASE=$LAB_DIR/base.cfg
CONF=$LAB_DIR/dovetail.conf
LOG=$LAB_LOG_DIR/dovetail.log
VG=$LAB_LOG_DIR/valgrind.log
: >"$LOG"
lab_haproxy_base "$BASE"
lab_dovetail_conf "$CONF" "unix://$LAB_DOCKER_SOCK" "$GEN" "$BASE" "$HTTP_PORT"
cat >>"$CONF" <<EOF
[docker]
timeout = 20s
[agent]
poll_interval = 1s
audit_interval = 2s
; every audit_interval, whatever the size of the swarm's replies
audit_rate = 1048576
converge_interval = 200ms
listen = 127.0.0.1:$METRICS_PORT
control_socket = $LAB_DIR/dovetail.sock
EOF

check "dovetail --once writes the first file" "$DOVETAIL" -c "$CONF" --once 2>>"$LOG"
lab_haproxy_up "$BASE" "$GEN" || { echo "not ok - haproxy did not start"; echo "$pass passed, $((fail + 1)) failed"; exit 1; }
valgrind -q --error-exitcode=99 --leak-check=full \
	--show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
	--track-origins=yes --log-file="$VG" "$DOVETAIL" -v -c "$CONF" >>"$LOG" 2>&1 &
DT_PID=$!

routes_exactly() { lab_routes_exactly "$HTTP_PORT" "$@"; }
check "under valgrind, dovetail answers /healthz" \
	lab_wait 120 sh -c "curl -s --max-time 5 http://127.0.0.1:$METRICS_PORT/healthz | grep -q '\"status\":\"ok\"'"
lab_demo_service vg 1 --label com.docker.lb.hosts=vg.local \
	--label com.docker.lb.port=8080 >/dev/null
check "a new service is routed (a reload)" lab_wait 120 routes_exactly vg.local vg 1
dk service scale --detach vg=3 >/dev/null
check "scaled to 3 (runtime API)" lab_wait 120 routes_exactly vg.local vg 3
dk service update --detach --label-add com.docker.lb.hosts=vg.local,vg2.local vg >/dev/null
check "a second host (a map edit)" lab_wait 120 routes_exactly vg2.local vg 3
lab_demo_service vgbad 1 --label com.docker.lb.hosts=vgbad.local \
	--label com.docker.lb.port=80a >/dev/null
check "a bad label is refused" lab_wait 120 grep -q "service vgbad: label com.docker.lb.port" "$LOG"
kill -HUP "$DT_PID"
check "SIGHUP is read" lab_wait 60 grep -q "SIGHUP: configuration" "$LOG"
check "dovetailctl show routes answers" sh -c "'$DOVETAILCTL' -s '$LAB_DIR/dovetail.sock' show routes | grep -q '^vg.local/'"
check "/metrics, /healthz and / answer" sh -c \
	"curl -sf --max-time 10 http://127.0.0.1:$METRICS_PORT/metrics >/dev/null &&
	 curl -s --max-time 10 http://127.0.0.1:$METRICS_PORT/healthz >/dev/null &&
	 curl -sf --max-time 10 http://127.0.0.1:$METRICS_PORT/ | grep -q '<!DOCTYPE html>'"
dk service scale --detach vg=1 >/dev/null
check "scaled back to 1 (drained, removed)" lab_wait 120 routes_exactly vg.local vg 1
dk service rm vg vgbad >/dev/null
check "removed (a reload)" lab_wait 120 grep -q "backend svc-vg removed" "$LOG"
kill "$DT_PID"
wait "$DT_PID"
rc=$?
DT_PID=
check "dovetail exits 0 on SIGTERM under valgrind (valgrind found nothing: $rc)" test "$rc" -eq 0
check "valgrind reports no error and no leak" sh -c "! grep -q -E 'Invalid|uninitialised|definitely lost|indirectly lost|ERROR SUMMARY: [1-9]' '$VG'"
if [ "$fail" -gt 0 ]; then
	echo "# valgrind log (last 40 lines):"
	tail -n 40 "$VG" | sed 's/^/# /'
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
