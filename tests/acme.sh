#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# End-to-end tests of automatic certificates ([acme], dovetail(8) ACME):
# the real dockerd in swarm mode, two load balancers on it (two HAProxies,
# each with its own dovetail, as on two nodes), and Debian's pebble, the
# ACME test CA, with pebble-challtestsrv as its DNS: shop.local and
# blog.local are 127.0.0.1, and ghost.local is unknown to it.  pebble
# validates HTTP-01 on the second load balancer's HTTP port, so whichever
# dovetail orders, the other's HAProxy must answer the challenge.  All
# traffic stays on 127.0.0.1.  No assertion is about speed.
#
#   tests/acme.sh [path/to/dovetail]
#
# Prints one "ok"/"not ok" line per assertion and, last, "N passed, N failed".
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lab.sh
. "$here/lab.sh"
# shellcheck source=tests/results.sh
. "$here/results.sh"

DOVETAIL=${1:-${DOVETAIL:-$here/../build/src/dovetail}}
DOVETAIL=$(cd "$(dirname "$DOVETAIL")" && pwd)/$(basename "$DOVETAIL")
DOVETAILCTL=$(dirname "$DOVETAIL")/dovetailctl
for tool in pebble pebble-challtestsrv socat openssl curl; do
	command -v "$tool" >/dev/null || {
		echo "not ok - $tool is not installed (apt-get install pebble socat)"
		echo "0 passed, 1 failed"
		exit 1
	}
done
HTTP_A=18480 HTTPS_A=18443 METRICS_A=18490
HTTP_B=18481 HTTPS_B=18444 METRICS_B=18491
ACME_PORT=14100 ACME_MGMT=15100 DNS_PORT=18153 DNS_MGMT=18155
L=com.docker.lb

lab_init "${ACME_TEST_DIR:-/tmp/dovetail-acme}"
echo "# HAProxy under test: $("$LAB_HAPROXY" -v 2>&1 | sed -n 1p)"
echo "# CA: Debian's pebble $(dpkg-query -W -f '${Version}' pebble 2>/dev/null)"
PB=$LAB_DIR/pebble
B_DIR=$LAB_DIR/hxb
B_RUN=$LAB_RUN_DIR/hxb
B_HAPROXY_PID=
DT_A= DT_B= PEBBLE_PID= DNS_PID=
LOG_A=$LAB_LOG_DIR/dovetail-a.log
LOG_B=$LAB_LOG_DIR/dovetail-b.log
: >"$LOG_A"
: >"$LOG_B"

# with_b CMD...: CMD with the lab's HAProxy variables naming the second
# load balancer's HAProxy (its directory and sockets).
with_b() {
	local LAB_HX_DIR=$B_DIR LAB_HX_MASTER_SOCK=$B_RUN/master.sock
	local LAB_HX_ADMIN_SOCK=$B_RUN/admin.sock LAB_HAPROXY_PID=$B_HAPROXY_PID
	local rc=0
	"$@" || rc=$?
	B_HAPROXY_PID=$LAB_HAPROXY_PID
	return $rc
}
stop_pid() {
	if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
		kill "$1"
		wait "$1" 2>/dev/null
	fi
}
stop_dovetails() {
	stop_pid "$DT_A"
	stop_pid "$DT_B"
	DT_A= DT_B=
}
stop_pebble() {
	stop_pid "$PEBBLE_PID"
	PEBBLE_PID=
}
finish() {
	local rc=$?
	stop_dovetails
	stop_pebble
	stop_pid "$DNS_PID"
	with_b lab_haproxy_down >/dev/null 2>&1
	# The store: dovetail's configs, made by this test's dovetails.
	if _lab_docker_answers; then
		dk config ls -q --filter label=com.dovetail.acme 2>/dev/null |
			xargs -r "$LAB_DOCKER" config rm >/dev/null 2>&1
	fi
	lab_cleanup
	return $rc
}
trap finish EXIT
bail() {
	echo "not ok - $*"
	echo "$pass passed, $((fail + 1)) failed"
	exit 1
}

# ---- the CA ------------------------------------------------------------------

rm -rf "$PB"
mkdir -p "$PB"
# pebble's own HTTPS: a CA of this test, and a certificate for 127.0.0.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$PB/ca.key" -out "$PB/ca.crt" -days 2 \
	-subj "/CN=dovetail acme test CA" >/dev/null 2>&1 &&
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$PB/srv.key" -out "$PB/srv.csr" -subj "/CN=127.0.0.1" \
		>/dev/null 2>&1 &&
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$PB/ext" &&
	openssl x509 -req -in "$PB/srv.csr" -CA "$PB/ca.crt" -CAkey "$PB/ca.key" \
		-CAcreateserial -days 2 -extfile "$PB/ext" -out "$PB/srv.crt" \
		>/dev/null 2>&1 || bail "could not make pebble's certificate"
cat >"$PB/pebble.json" <<EOF
{"pebble": {"listenAddress": "127.0.0.1:$ACME_PORT",
 "managementListenAddress": "127.0.0.1:$ACME_MGMT",
 "certificate": "$PB/srv.crt", "privateKey": "$PB/srv.key",
 "httpPort": $HTTP_B, "tlsPort": 18399, "ocspResponderURL": "",
 "externalAccountBindingRequired": false}}
EOF
start_pebble() {
	PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 pebble -config "$PB/pebble.json" \
		-dnsserver "127.0.0.1:$DNS_PORT" >>"$LAB_LOG_DIR/pebble.log" 2>&1 &
	PEBBLE_PID=$!
	lab_wait 20 curl -sf -o /dev/null --cacert "$PB/ca.crt" \
		"https://127.0.0.1:$ACME_PORT/dir"
}
pebble-challtestsrv -dns01 "127.0.0.1:$DNS_PORT" -defaultIPv4 "" \
	-defaultIPv6 "" -http01 "" -https01 "" -tlsalpn01 "" \
	-management "127.0.0.1:$DNS_MGMT" >>"$LAB_LOG_DIR/challtestsrv.log" 2>&1 &
DNS_PID=$!
dns_name() {
	curl -sf -o /dev/null -X POST \
		-d '{"host":"'"$1"'.","addresses":["127.0.0.1"]}' \
		"http://127.0.0.1:$DNS_MGMT/add-a"
}
lab_wait 10 dns_name shop.local && dns_name blog.local ||
	bail "pebble-challtestsrv did not start"
start_pebble || bail "pebble did not start"
# The issuing chain pebble made for this run, to verify what is served.
curl -sf --cacert "$PB/ca.crt" "https://127.0.0.1:$ACME_MGMT/roots/0" \
	>"$PB/root.pem" &&
	curl -sf --cacert "$PB/ca.crt" \
		"https://127.0.0.1:$ACME_MGMT/intermediates/0" >"$PB/inter.pem" ||
	bail "pebble's management interface did not give its chain"
cat "$PB/inter.pem" "$PB/root.pem" >"$PB/chain.pem"

# ---- the swarm, two HAProxies, two dovetails ---------------------------------

lab_docker_up || bail "docker swarm did not start"
while IFS= read -r s; do
	[ -n "$s" ] && dk service rm "$s" >/dev/null 2>&1
done <"$LAB_DIR/services"
: >"$LAB_DIR/services"
dk config ls -q --filter label=com.dovetail.acme | xargs -r "$LAB_DOCKER" config rm >/dev/null 2>&1
lab_image >/dev/null || bail "could not make the lab image"

# The sealing key, the same for both (a Docker secret in production).
openssl rand -base64 48 >"$LAB_DIR/acme.key"
chmod 600 "$LAB_DIR/acme.key"

# node A|B: their files.
setup_node() {
	local n=$1 http=$2 https=$3 metrics=$4 dir=$LAB_DIR/$1
	rm -rf "$dir"
	mkdir -p "$dir"
	lab_haproxy_base "$dir/base.cfg"
	lab_dovetail_conf "$dir/dovetail.conf" "$DOCKER_HOST" "$dir/dovetail.cfg" \
		"$dir/base.cfg" "$http"
	cat >>"$dir/dovetail.conf" <<EOF
https_bind = 127.0.0.1:$https
secrets_dir = $dir
[acme]
enabled = true
directory = https://127.0.0.1:$ACME_PORT/dir
contact = mailto:ops@example.org
ca_bundle = $PB/ca.crt
key_file = $LAB_DIR/acme.key
retry_interval = 5s
timeout = 60s
[agent]
poll_interval = 1s
audit_interval = 5s
; every audit_interval, whatever the size of the swarm's replies
audit_rate = 1048576
converge_interval = 100ms
listen = 127.0.0.1:$metrics
control_socket = $LAB_RUN_DIR/dt-$n.sock
EOF
}
setup_node a "$HTTP_A" "$HTTPS_A" "$METRICS_A"
with_b setup_node b "$HTTP_B" "$HTTPS_B" "$METRICS_B"
check "A: --once writes the first file, [acme] on" "$DOVETAIL" -c "$LAB_DIR/a/dovetail.conf" --once 2>>"$LOG_A"
check "B: --once writes the first file, [acme] on" "$DOVETAIL" -c "$LAB_DIR/b/dovetail.conf" --once 2>>"$LOG_B"
check "the HTTP frontend answers ACME challenges from its map" \
	grep -q 'map(.*dovetail.acme.map) if { path_beg /.well-known/acme-challenge/ }' "$LAB_DIR/a/dovetail.cfg"
lab_haproxy_up "$LAB_DIR/a/base.cfg" "$LAB_DIR/a/dovetail.cfg" || bail "HAProxy A did not start"
with_b lab_haproxy_up "$LAB_DIR/b/base.cfg" "$LAB_DIR/b/dovetail.cfg" || bail "HAProxy B did not start"
start_a() {
	"$DOVETAIL" -v -c "$LAB_DIR/a/dovetail.conf" >>"$LOG_A" 2>&1 &
	DT_A=$!
}
start_b() {
	"$DOVETAIL" -v -c "$LAB_DIR/b/dovetail.conf" >>"$LOG_B" 2>&1 &
	DT_B=$!
}
start_a
start_b

# ---- helpers -----------------------------------------------------------------

reloads_a() { lab_haproxy_reloads; }
reloads_b() { with_b lab_haproxy_reloads; }
# cert_of PORT SNI FILE: the certificate HAProxy on PORT serves for SNI, in
# FILE; prints its SHA-256 fingerprint.
cert_of() {
	timeout 10 openssl s_client -connect "127.0.0.1:$1" -servername "$2" \
		</dev/null 2>/dev/null | openssl x509 >"$3" 2>/dev/null &&
		openssl x509 -noout -fingerprint -sha256 -in "$3" | cut -d= -f2
}
# issued PORT SNI: the certificate served for SNI on PORT is pebble's, for SNI.
issued() {
	local f=$LAB_DIR/served.pem
	cert_of "$1" "$2" "$f" >/dev/null &&
		openssl verify -CAfile "$PB/root.pem" -untrusted "$PB/inter.pem" \
			"$f" >/dev/null 2>&1 &&
		openssl x509 -noout -ext subjectAltName -in "$f" 2>/dev/null |
		grep -q "DNS:$2"
}
both_issued() { issued "$HTTPS_A" "$1" && issued "$HTTPS_B" "$1"; }
# https_status PORT HOST: the status of GET / over HTTPS, verified.
https_status() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$PB/chain.pem" \
		--resolve "$2:$1:127.0.0.1" "https://$2:$1/"
}
# store NAME: dovetail's cert configs in the swarm for a name's id.
certs_in_store() {
	dk config ls --filter label=com.dovetail.acme=cert --format '{{.Name}}' | grep -c .
}
metric() {
	curl -s --max-time 5 "http://127.0.0.1:$1/metrics" |
		awk -v m="$2" '$1 == m { print $2 }'
}
orders_ok() {
	echo $(($(metric "$METRICS_A" 'dovetail_acme_orders_total{result="ok"}') +
		$(metric "$METRICS_B" 'dovetail_acme_orders_total{result="ok"}')))
}
http_status() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Host: $2" \
		"http://127.0.0.1:$1/"
}

# ---- 1. a certificate for a new service, served by both ----------------------

lab_graceful_service shop 1 --label "$L.acme=true"
check "shop is routed over HTTP by both load balancers" \
	lab_wait 60 eval '[ "$(http_status '"$HTTP_A"' shop.local)" = 200 ] && [ "$(http_status '"$HTTP_B"' shop.local)" = 200 ]'
check "shop's certificate is issued by the CA and served for its SNI by A and B" \
	lab_wait 90 both_issued shop.local
FP_A=$(cert_of "$HTTPS_A" shop.local "$LAB_DIR/a.pem")
FP_B=$(cert_of "$HTTPS_B" shop.local "$LAB_DIR/b.pem")
is "A and B serve the same certificate" "$FP_A" "$FP_B"
is "one certificate in the swarm's store for shop's names, not one per node" "$(certs_in_store)" 1
check "exactly one order was made, by one dovetail" lab_wait 10 eval '[ "$(orders_ok)" = 1 ]'
is "a verified HTTPS request to shop on A" "$(https_status "$HTTPS_A" shop.local)" 200
is "a verified HTTPS request to shop on B" "$(https_status "$HTTPS_B" shop.local)" 200
no_challenge_left() {
	[ -z "$(dk config ls -q --filter label=com.dovetail.acme=challenge)" ] &&
		[ -z "$(dk config ls -q --filter label=com.dovetail.acme=lock)" ] &&
		[ -f "$LAB_DIR/a/dovetail.acme.map" ] && [ -f "$LAB_DIR/b/dovetail.acme.map" ] &&
		! grep -q -v '^#' "$LAB_DIR/a/dovetail.acme.map" "$LAB_DIR/b/dovetail.acme.map"
}
check "the challenge and the lock left the store and both challenge maps" lab_wait 30 no_challenge_left
key_in_store=$(dk config ls --filter label=com.dovetail.acme=cert --format '{{.Name}}' |
	head -1 | xargs -r "$LAB_DOCKER" config inspect --format '{{printf "%s" .Spec.Data}}' 2>/dev/null)
check "the store holds the certificate's key sealed, never in the clear" eval \
	'[ -n "$key_in_store" ] && ! printf "%s" "$key_in_store" | grep -q "PRIVATE KEY" &&
	 printf "%s" "$key_in_store" | grep -q "^dtseal1:"'
check "dovetailctl show certs lists shop's ordered certificate" eval \
	'"$DOVETAILCTL" -s "$LAB_RUN_DIR/dt-a.sock" show certs | grep -q "shop"'

# ---- 2. a second service: its certificate goes live without a reload -------

lab_graceful_service blog 1 --label "$L.acme=true"
check "blog is routed over HTTP" \
	lab_wait 60 eval '[ "$(http_status '"$HTTP_A"' blog.local)" = 200 ] && [ "$(http_status '"$HTTP_B"' blog.local)" = 200 ]'
RA=$(reloads_a)
RB=$(reloads_b)
check "blog's certificate is served by A and B" lab_wait 90 both_issued blog.local
is "no reload of A for blog's certificate" "$(reloads_a)" "$RA"
is "no reload of B for blog's certificate" "$(reloads_b)" "$RB"

# ---- 3. renewal under load: no reload, no failed request ---------------------

# A renewal window longer than pebble's certificates: renewed once
# renew_interval has passed since the last one.
for n in a b; do
	printf '[acme]\nrenew_days = 3650\nrenew_interval = 15s\n' >>"$LAB_DIR/$n/dovetail.conf"
done
RA=$(reloads_a)
RB=$(reloads_b)
FP_OLD=$(cert_of "$HTTPS_A" shop.local "$LAB_DIR/old.pem")
rm -f "$LAB_DIR/load.stop"
(
	while [ ! -e "$LAB_DIR/load.stop" ]; do
		for port in "$HTTPS_A" "$HTTPS_B"; do
			printf '%s %s\n' "$port" "$(https_status "$port" shop.local)"
		done
	done
) >"$LAB_DIR/tls-load.out" 2>&1 &
LOAD_PID=$!
kill -HUP "$DT_A" "$DT_B"
renewed() {
	local a b
	a=$(cert_of "$HTTPS_A" shop.local "$LAB_DIR/new-a.pem") &&
		b=$(cert_of "$HTTPS_B" shop.local "$LAB_DIR/new-b.pem") &&
		[ -n "$a" ] && [ "$a" != "$FP_OLD" ] && [ "$a" = "$b" ]
}
check "shop's certificate is renewed, and A and B serve the new one" lab_wait 120 renewed
sleep 2
touch "$LAB_DIR/load.stop"
wait "$LOAD_PID"
total=$(grep -c . "$LAB_DIR/tls-load.out")
failed=$(grep -v -c ' 200$' "$LAB_DIR/tls-load.out")
check "HTTPS requests went on through the renewal ($total)" [ "$total" -ge 20 ]
is "no HTTPS request failed during the renewal" "$failed" 0
is "no reload of A for the renewal" "$(reloads_a)" "$RA"
is "no reload of B for the renewal" "$(reloads_b)" "$RB"
check "the renewed certificate verifies against the CA" issued "$HTTPS_A" shop.local
check "the older certificate left the store" lab_wait 30 eval '[ "$(certs_in_store)" = 2 ]'
# Back to a window shorter than pebble's certificates: no more renewals.
for n in a b; do
	printf '[acme]\nrenew_days = 30\nrenew_interval = 12h\n' >>"$LAB_DIR/$n/dovetail.conf"
done
kill -HUP "$DT_A" "$DT_B"

# ---- 4. a rejected order is that service's alone -----------------------------

lab_graceful_service ghost 1 --label "$L.acme=true"
check "the order for an unknown host fails, logged with the service and the host" \
	lab_wait 90 eval 'grep -h "acme: the order for ghost.local (service ghost) failed at ghost.local" "$LOG_A" "$LOG_B" | grep -q "could not resolve"'
check "/healthz names the failing order" lab_wait 20 eval \
	'curl -s "http://127.0.0.1:$METRICS_A/healthz" "http://127.0.0.1:$METRICS_B/healthz" | grep -q "\"failures\":\[\"ghost: ghost.local"'
failing_sum() {
	local fa fb
	fa=$(metric "$METRICS_A" 'dovetail_acme_certificates{state="failing"}')
	fb=$(metric "$METRICS_B" 'dovetail_acme_certificates{state="failing"}')
	[ -n "$fa" ] && [ -n "$fb" ] && echo $((fa + fb))
}
check "/metrics counts a failing certificate" lab_wait 20 eval '[ "$(failing_sum)" -ge 1 ] 2>/dev/null'
# Its task may start after the order failed: routed once it runs.
check "ghost is routed over HTTP all the same" lab_wait 30 eval \
	'[ "$(http_status "$HTTP_A" ghost.local)" = 200 ]'
is "shop still serves over HTTPS" "$(https_status "$HTTPS_A" shop.local)" 200
is "blog still serves over HTTPS" "$(https_status "$HTTPS_B" blog.local)" 200

# ---- 5. the CA away: what is issued keeps serving ----------------------------

# No renewal runs now (renew_days 30); ghost's order is tried again, and
# fails, now that the CA is away.
stop_pebble
sleep 2
FP_NOW=$(cert_of "$HTTPS_A" shop.local "$LAB_DIR/now.pem")
failed_sum() {
	echo $(($(metric "$METRICS_A" 'dovetail_acme_orders_total{result="failed"}') +
		$(metric "$METRICS_B" 'dovetail_acme_orders_total{result="failed"}')))
}
failed_before=$(failed_sum)
check "an order with the CA away fails and is counted" lab_wait 90 eval '[ "$(failed_sum)" -gt "$failed_before" ]'
check "the CA away, the log says why" eval 'grep -h "acme: the order for ghost.local" "$LOG_A" "$LOG_B" | tail -1 | grep -q -e "$ACME_PORT" -e "onnect"'
is "the CA away, A serves shop's certificate still" "$(cert_of "$HTTPS_A" shop.local "$LAB_DIR/now2.pem")" "$FP_NOW"
is "the CA away, a verified HTTPS request to shop on B" "$(https_status "$HTTPS_B" shop.local)" 200
check "both dovetails still run" kill -0 "$DT_A" "$DT_B"
dk service rm ghost >/dev/null

# ---- 6. a dovetail restarted reads its certificates from the store -----------

stop_pid "$DT_B"
DT_B=
printf '[acme]\nrenew_days = 30\n' >>"$LAB_DIR/b/dovetail.conf"
rm -rf "$LAB_DIR/b/dovetail.certs"
check "B, restarted with --once, writes the ordered certificates from the store" eval \
	'"$DOVETAIL" -c "$LAB_DIR/b/dovetail.conf" --once 2>>"$LOG_B" &&
	 grep -q "BEGIN CERTIFICATE" "$LAB_DIR/b/dovetail.certs/svc-shop.pem"'

stop_dovetails
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
