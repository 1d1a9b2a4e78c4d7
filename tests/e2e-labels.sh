#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# End-to-end tests of the service labels (dovetail-labels(7)): the real
# dockerd in swarm mode, the real HAProxy and the real dovetail, with real
# requests through HAProxy's HTTP and HTTPS ports on 127.0.0.1.  Traffic
# goes to 127.0.0.1 only (host-mode published ports and HAProxy's binds).
# Every wait is bounded; no assertion is about speed.
#
#   tests/e2e-labels.sh [path/to/dovetail]
#
# Prints one "ok"/"not ok" line per assertion and, last, "N passed, N failed".
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lab.sh
. "$here/lab.sh"

DOVETAIL=${1:-${DOVETAIL:-$here/../build/src/dovetail}}
DOVETAIL=$(cd "$(dirname "$DOVETAIL")" && pwd)/$(basename "$DOVETAIL")
HTTP_PORT=${E2E_LABELS_HTTP_PORT:-18280}
HTTPS_PORT=${E2E_LABELS_HTTPS_PORT:-18643}
METRICS_PORT=${E2E_LABELS_METRICS_PORT:-18690}
L=com.docker.lb
# shellcheck source=tests/results.sh
. "$here/results.sh"

lab_init "${E2E_LABELS_DIR:-/tmp/dovetail-e2e-labels}"
echo "# HAProxy under test: $("$LAB_HAPROXY" -v 2>&1 | sed -n 1p)"
DT_PID=
stop_dovetail() {
	if [ -n "$DT_PID" ] && kill -0 "$DT_PID" 2>/dev/null; then
		kill "$DT_PID"
		wait "$DT_PID" 2>/dev/null
	fi
	DT_PID=
}
finish() {
	local rc=$?
	stop_dovetail
	lab_cleanup
	return $rc
}
trap finish EXIT

# ---- set-up ------------------------------------------------------------------

lab_docker_up || { echo "not ok - docker swarm did not start"; echo "0 passed, 1 failed"; exit 1; }
# Services a run that was killed left behind (lab_cleanup empties the list).
while IFS= read -r s; do
	[ -n "$s" ] && dk service rm "$s" >/dev/null 2>&1
done <"$LAB_DIR/services"
: >"$LAB_DIR/services"

# The app: one HTTP exchange per connection (busybox nc -ll -e runs it for
# each), answering "SERVICE HOSTNAME METHOD TARGET xfp=PROTO": the request
# line as the app received it, after HAProxy.  To an Upgrade request it
# answers 101 with the Sec-WebSocket-Accept of its key (HAProxy checks the
# WebSocket handshake) and then echoes what it receives: a tunnel, not
# WebSocket frames, which HAProxy does not look at.  HEAD / (HAProxy's
# health check) gets a 200.
# shellcheck disable=SC2016
APP_SCRIPT='#!/bin/sh
cr=$(printf "\r")
read -r method target version || exit 0
up= xfp= key= rid=
while IFS= read -r line; do
	line=${line%"$cr"}
	[ -z "$line" ] && break
	case $line in
	[Uu]pgrade:*) up=${line#*:} ;;
	[Xx]-[Rr]equest-[Ii][Dd]:*) rid=${line#*: } ;;
	[Xx]-[Ff]orwarded-[Pp]roto:*) xfp=${line#*: } ;;
	[Ss]ec-[Ww]eb[Ss]ocket-[Kk]ey:*) key=${line#*: } ;;
	esac
done
if [ -n "$up" ]; then
	accept=$(printf "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11" "$key" |
		openssl sha1 -binary | openssl base64)
	printf "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" "$accept"
	exec cat
fi
body="$APP $(hostname) $method $target xfp=$xfp rid=$rid"
printf "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" $((${#body} + 1))
[ "$method" = HEAD ] || printf "%s\n" "$body"
'
# The image: busybox with more applets than lab_image's, the app, and
# /usr/bin/openssl with the libraries ldd names (for an app that
# terminates TLS itself).  Named after its content, so a changed script
# makes a new image.
APP_IMAGE=dovetail-labels:$(printf '%s' "$APP_SCRIPT" | cat - /usr/bin/openssl | md5sum | cut -c1-12)
labels_image() {
	if dk image inspect "$APP_IMAGE" >/dev/null 2>&1; then
		return 0
	fi
	local root a lib rc=0
	root=$(mktemp -d "$LAB_DIR/rootfs.XXXX") || return 1
	mkdir -p "$root/bin" "$root/tmp" "$root/app" "$root/usr/bin" \
		"$root/usr/lib/ssl" &&
		cp "$LAB_BUSYBOX" "$root/bin/busybox" &&
		chmod 1777 "$root/tmp" &&
		printf '%s' "$APP_SCRIPT" >"$root/app/http.sh" &&
		chmod 755 "$root/app/http.sh" &&
		cp /usr/bin/openssl "$root/usr/bin/openssl" &&
		cp /usr/lib/ssl/openssl.cnf "$root/usr/lib/ssl/" || rc=1
	for a in sh httpd hostname cat echo sleep mkdir nc printf env ls; do
		ln -sf busybox "$root/bin/$a" || rc=1
	done
	for lib in $(ldd /usr/bin/openssl | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
		mkdir -p "$root$(dirname "$lib")" && cp -L "$lib" "$root$lib" || rc=1
	done
	if [ $rc = 0 ]; then
		tar -C "$root" -c . | dk import - "$APP_IMAGE" >/dev/null || rc=1
	fi
	rm -rf "$root"
	return $rc
}
labels_image || { echo "not ok - could not make the app image"; echo "0 passed, 1 failed"; exit 1; }

# app NAME REPLICAS [docker service create args...]: a service running the
# app on container port 8080, published in host mode (reach it on
# 127.0.0.1), recorded for lab_cleanup.  Labels come with the args.
app() {
	local name=$1 replicas=$2
	shift 2
	printf '%s\n' "$name" >>"$LAB_DIR/services"
	dk service create --detach --quiet --no-resolve-image --name "$name" \
		--replicas "$replicas" --init --restart-delay 0s \
		--publish mode=host,target=8080 --env "APP=$name" \
		"$@" "$APP_IMAGE" nc -ll -p 8080 -e /app/http.sh >/dev/null
}

# Certificates: self-signed, one per host, made here.
CERTS=$LAB_DIR/certs
SECRETS=$LAB_DIR/secrets
rm -rf "$CERTS" "$SECRETS"
mkdir -p "$CERTS" "$SECRETS"
# mkcert NAME HOST [SUBJECT_EXTRA [KEY]]: $CERTS/NAME.crt (and NAME.key
# unless KEY, an existing key, is given).
mkcert() {
	local keyargs=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$CERTS/$1.key")
	[ -n "${4:-}" ] && keyargs=(-key "$4")
	openssl req -x509 "${keyargs[@]}" -days 2 -subj "/CN=$2${3:-}" \
		-addext "subjectAltName=DNS:$2" -out "$CERTS/$1.crt" >/dev/null 2>&1
}
mkcert a a.tls.local
mkcert a2 a.tls.local /O=renewed "$CERTS/a.key"
mkcert b b.tls.local
mkcert c c.tls.local
mkcert pass pass.local
cp "$CERTS/a.crt" "$CERTS/a.key" "$CERTS/b.crt" "$CERTS/b.key" \
	"$CERTS/c.crt" "$CERTS/c.key" "$SECRETS/"
printf 'this is not a certificate\n' >"$SECRETS/garbage.crt"
chmod 644 "$CERTS/pass.key" # read by the app's container
fingerprint() { openssl x509 -noout -fingerprint -sha256 -in "$1" | cut -d= -f2; }
FP_A=$(fingerprint "$CERTS/a.crt")
FP_A2=$(fingerprint "$CERTS/a2.crt")
FP_B=$(fingerprint "$CERTS/b.crt")
FP_C=$(fingerprint "$CERTS/c.crt")
FP_PASS=$(fingerprint "$CERTS/pass.crt")

# backend_mode=vip needs an overlay network.  Its subnet is a loopback one:
# the host cannot reach overlay addresses anyway, and with 127.77.0.0/24
# HAProxy's health checks of the VIP server stay on this host's loopback
# (nothing answers there) instead of going to a 10.x address through the
# default route.  The test itself sends no request to the VIP.
VIP_NET=dovetail-labels-vip
if ! dk network inspect "$VIP_NET" >/dev/null 2>&1; then
	dk network create --driver overlay --subnet 127.77.0.0/24 "$VIP_NET" >/dev/null
fi
if [ "$(dk network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$VIP_NET")" != 127.77.0.0/24 ]; then
	echo "not ok - network $VIP_NET has not the loopback subnet 127.77.0.0/24"
	echo "0 passed, 1 failed"
	exit 1
fi

GEN=$LAB_DIR/dovetail.cfg
HOSTS_MAP=$LAB_DIR/dovetail.hosts.map
SNI_MAP=$LAB_DIR/dovetail.sni.map
REDIRECTS_MAP=$LAB_DIR/dovetail.redirects.map
CRT_LIST=$LAB_DIR/dovetail.crt-list
GENERATED=("$GEN" "$HOSTS_MAP" "$SNI_MAP" "$REDIRECTS_MAP" "$CRT_LIST")
BASE=$LAB_DIR/base.cfg
CONF=$LAB_DIR/dovetail.conf
LOG=$LAB_LOG_DIR/dovetail.log
: >"$LOG"
rm -rf "$GEN" "$LAB_DIR"/dovetail.*.map "$CRT_LIST" "$LAB_DIR/dovetail.certs"
# A short tunnel timeout: an upgraded connection on a path that is not a
# websocket endpoint is cut after 3 s idle.
lab_haproxy_base "$BASE"
printf '\ttimeout tunnel 3s\n' >>"$BASE"
lab_dovetail_conf "$CONF" "$DOCKER_HOST" "$GEN" "$BASE" "$HTTP_PORT"
cat >>"$CONF" <<EOF
response_headers = true
https_bind = 127.0.0.1:$HTTPS_PORT
secrets_dir = $SECRETS
[docker]
timeout = 5s
[agent]
poll_interval = 1s
audit_interval = 3s
; every audit_interval, whatever the size of the swarm's replies
audit_rate = 1048576
converge_interval = 100ms
listen = 127.0.0.1:$METRICS_PORT
EOF

start_dovetail() {
	"$DOVETAIL" -v -c "$CONF" >>"$LOG" 2>&1 &
	DT_PID=$!
}

# ---- helpers -----------------------------------------------------------------

# get HOST PATH [curl args...]: the body of GET PATH for HOST, HTTP port.
get() {
	local host=$1 path=$2
	shift 2
	curl -s --max-time 5 -H "Host: $host" "$@" "http://127.0.0.1:$HTTP_PORT$path"
}
# seen HOST PATH: "SERVICE TARGET", who answered and the path it received.
seen() { get "$1" "$2" | awk '{ print $1, $4 }'; }
seen_is() { [ "$(seen "$1" "$2")" = "$3" ]; }
# redirect HOST PATH: "STATUS LOCATION" of GET PATH for HOST.
redirect() {
	curl -s -o /dev/null -D - --max-time 5 -H "Host: $1" \
		"http://127.0.0.1:$HTTP_PORT$2" | tr -d '\r' |
		awk 'NR == 1 { c = $2 } tolower($1) == "location:" { l = $2 } END { print c, l }'
}
status() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Host: $1" \
		"http://127.0.0.1:$HTTP_PORT$2"
}
status_is() { [ "$(status "$1" "$2")" = "$3" ]; }
# https_get HOST PATH CA [curl args...]: GET https://HOST:HTTPS_PORT/PATH,
# HOST resolved to 127.0.0.1, the certificate checked against CA.
https_get() {
	local host=$1 path=$2 ca=$3
	shift 3
	curl -s --max-time 5 --cacert "$ca" \
		--resolve "$host:$HTTPS_PORT:127.0.0.1" "$@" "https://$host:$HTTPS_PORT$path"
}
# served_cert SNI: "SUBJECT|SHA256 FINGERPRINT" of the certificate the
# HTTPS port presents for SNI (no SNI when empty).
served_cert() {
	local sni=(-servername "$1")
	[ -n "$1" ] || sni=(-noservername)
	timeout 10 openssl s_client -connect "127.0.0.1:$HTTPS_PORT" "${sni[@]}" \
		</dev/null 2>/dev/null |
		openssl x509 -noout -subject -fingerprint -sha256 2>/dev/null |
		sed 's/^subject=//; s/^sha256 Fingerprint=//' | paste -sd '|'
}
# https_seen HOST PATH CA: "SERVICE TARGET" of an HTTPS GET.
https_seen() { https_get "$1" "$2" "$3" | awk '{ print $1, $4 }'; }
https_seen_is() { [ "$(https_seen "$1" "$2" "$3")" = "$4" ]; }
served_fp() { served_cert "$1" | cut -d'|' -f2; }
served_fp_is() { [ "$(served_fp "$1")" = "$2" ]; }
# answers HOST N [curl args...]: the distinct "SERVICE HOSTNAME" of N
# answers for HOST.
answers() {
	local host=$1 n=$2 i
	shift 2
	for ((i = 0; i < n; i++)); do
		get "$host" / "$@" | awk 'NF { print $1, $2 }'
	done | sort -u
}
# tasks NAME: "SERVICE HOSTNAME" of each running task of NAME, sorted; a
# task's hostname is its container's short ID.  (Not asked on published
# ports: when tasks start together, Docker may give a task's IPv4 and IPv6
# bindings different ports, and one task's IPv6 port may be another's IPv4
# port, so ports do not name tasks.)
tasks() {
	local ids
	ids=$(dk service ps --no-trunc --quiet --filter desired-state=running "$1" 2>/dev/null) || return 1
	[ -n "$ids" ] || return 0
	# shellcheck disable=SC2086
	dk inspect --type task --format '{{if and (eq .DesiredState "running") (eq .Status.State "running")}}{{.Status.ContainerStatus.ContainerID}}{{"\n"}}{{end}}' \
		$ids 2>/dev/null | awk -v s="$1" 'NF { print s, substr($1, 1, 12) }' | sort -u
}
tasks_are() { [ "$(tasks "$1" | grep -c .)" -eq "$2" ]; }
# routes_exactly HOST NAME N: HOST goes to exactly the N running tasks of NAME.
routes_exactly() {
	local want
	want=$(tasks "$2")
	[ "$(printf '%s\n' "$want" | grep -c .)" -eq "$3" ] &&
		[ "$(answers "$1" $(($3 * 2 + 2)))" = "$want" ]
}
# count_of SERVICE HOST N: how many of N requests for HOST SERVICE answered.
count_of() {
	local i
	for ((i = 0; i < $3; i++)); do
		get "$2" /
	done | awk -v s="$1" '$1 == s' | wc -l
}
count_of_is() { [ "$(count_of "$1" "$2" "$3")" -eq "$4" ]; }
reloads() { lab_haproxy_reloads; }
# backend_of SERVICE: the backend of the generated file that serves SERVICE.
backend_of() {
	awk -v s=" $1 " '/^backend / { b = $2 } /^\t# services:/ && index($0 " ", s) { print b }' "$GEN"
}
# servers BACKEND: "ADDR:PORT" of each server HAProxy holds in BACKEND.
servers() {
	echo "show servers state $1" | socat - "UNIX-CONNECT:$LAB_HX_ADMIN_SOCK" |
		awk '$1 ~ /^[0-9]+$/ && NF > 10 { print $5 ":" $19 }' | sort
}
# servers_up BACKEND N: HAProxy holds N servers in BACKEND, all up.
servers_up() {
	local out
	out=$(echo "show servers state $1" | socat - "UNIX-CONNECT:$LAB_HX_ADMIN_SOCK" |
		awk '$1 ~ /^[0-9]+$/ && NF > 10 { n++; if ($6 == 2) up++ } END { print n + 0, up + 0 }')
	[ "$out" = "$2 $2" ]
}
# not_in_generated STRING: STRING is in none of the HAProxy file, the maps and the crt-list.
not_in_generated() { ! cat "${GENERATED[@]}" 2>/dev/null | grep -q -F -- "$1"; }
# ws_try PATH IDLE: open an upgraded connection for ws.local PATH, wait
# IDLE seconds, send a line; prints the status line and the echoed line
# (or "closed" when the tunnel was cut).
ws_try() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT" || exit 1
		printf 'GET %s HTTP/1.1\r\nHost: ws.local\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n' "$1" >&3
		IFS= read -r -t 5 line <&3 || { echo "no answer"; exit 0; }
		echo "${line%$'\r'}"
		while IFS= read -r -t 5 line <&3; do
			[ -z "${line%$'\r'}" ] && break
		done
		sleep "$2"
		printf 'ping %s\n' "$1" >&3 2>/dev/null
		if IFS= read -r -t 3 line <&3; then echo "$line"; else echo closed; fi
	) 2>/dev/null
}

# ---- first file, HAProxy, dovetail -------------------------------------------

check "dovetail -n accepts the test configuration" "$DOVETAIL" -n -c "$CONF"
check "--once writes the first file" "$DOVETAIL" -c "$CONF" --once 2>>"$LOG"
check "without a TLS service there is no HTTPS frontend" sh -c "! grep -q 'frontend dovetail-https' '$GEN'"
lab_haproxy_up "$BASE" "$GEN" || { echo "not ok - haproxy did not start"; echo "$pass passed, $((fail + 1)) failed"; exit 1; }
start_dovetail

# ---- the services ------------------------------------------------------------

app ctx-app 1 --label "$L.hosts=ctx.local" --label "$L.port=8080" \
	--label "$L.context_root=/app" --label "$L.context_root_rewrite=true"
app ctx-v2 1 --label "$L.hosts=ctx.local" --label "$L.port=8080" \
	--label "$L.context_root=/app/v2/"
app tls-a 1 --label "$L.hosts=a.tls.local" --label "$L.port=8080" \
	--label "$L.ssl_cert=a.crt" --label "$L.ssl_key=a.key" \
	--label "$L.ssl_redirect=true"
app tls-b 1 --label "$L.hosts=b.tls.local" --label "$L.port=8080"
app redir 1 --label "$L.hosts=redir.local" --label "$L.port=8080" \
	--label "$L.redirects=old.local,http://redir.local:$HTTP_PORT;https://only-tls.local,https://redir.local"
app sticky 3 --label "$L.hosts=sticky.local" --label "$L.port=8080" \
	--label "$L.sticky_session_cookie=SID"
app iph 3 --label "$L.hosts=iph.local" --label "$L.port=8080" \
	--label "$L.ip_hash=true"
app ws 1 --label "$L.hosts=ws.local" --label "$L.port=8080" \
	--label "$L.websocket_endpoints=/ws"
app w-main 1 --label "$L.hosts=w.local" --label "$L.port=8080"
app w-canary 1 --label "$L.hosts=w.local" --label "$L.port=8080" \
	--label "$L.weight=10"
app vip 1 --network "$VIP_NET" --label "$L.hosts=vip.local" \
	--label "$L.port=8080" --label "$L.backend_mode=vip"
# An app that terminates TLS itself: openssl s_server with its own
# certificate (never given to dovetail or HAProxy).
printf '%s\n' pass >>"$LAB_DIR/services"
dk service create --detach --quiet --no-resolve-image --name pass \
	--replicas 1 --init --restart-delay 0s \
	--publish mode=host,target=8443 \
	--mount "type=bind,source=$CERTS,target=/certs,readonly" \
	--label "$L.hosts=pass.local" --label "$L.port=8443" \
	--label "$L.ssl_passthrough=true" --label "$L.ssl_redirect=true" \
	--label "$L.redirects=http://old-pass.local,https://pass.local:$HTTPS_PORT" \
	"$APP_IMAGE" openssl s_server -quiet -accept 8443 \
	-cert /certs/pass.crt -key /certs/pass.key -www >/dev/null

all_running() {
	local s
	for s in ctx-app ctx-v2 tls-a tls-b redir ws w-main w-canary vip pass; do
		tasks_are "$s" 1 || return 1
	done
	tasks_are sticky 3 && tasks_are iph 3
}
check "the services' tasks run" lab_wait 90 all_running
check "a plain service is routed" lab_wait 60 routes_exactly redir.local redir 1

# ---- 1. context_root, context_root_rewrite -----------------------------------

check "context_root: /app/v2/x goes to the /app/v2 service (longest prefix), path kept" \
	lab_wait 30 seen_is ctx.local /app/v2/x "ctx-v2 /app/v2/x"
check "context_root_rewrite: /app/ reaches the /app service as /" lab_wait 30 seen_is ctx.local /app/ "ctx-app /"
is "context_root: /app/v2 itself goes to the /app/v2 service" "$(seen ctx.local /app/v2)" "ctx-v2 /app/v2"
is "context_root_rewrite: /app/x?q=1 reaches the /app service as /x?q=1" "$(seen ctx.local '/app/x?q=1')" "ctx-app /x?q=1"
is "context_root: /app/v2x is not under /app/v2: the /app service gets /v2x" "$(seen ctx.local /app/v2x)" "ctx-app /v2x"
is "context_root_rewrite: /app gets a 301 to /app/" "$(redirect ctx.local /app)" "301 /app/"
is "context_root_rewrite: /app?q=1 gets a 301 to /app/?q=1" "$(redirect ctx.local '/app?q=1')" "301 /app/?q=1"
is "context_root: /apple is not routed to /app (503)" "$(status ctx.local /apple)" 503
is "context_root: a host whose services all have context roots has no / route" "$(status ctx.local /)" 503
is "no default service yet: an unknown host gets the 503 page" "$(status nobody.local /)" 503

# ---- 4. redirects, ssl_redirect ------------------------------------------------

is "redirects: old.local/a/b?x=1 -> 302 to the target with path and query" \
	"$(redirect old.local '/a/b?x=1')" "302 http://redir.local:$HTTP_PORT/a/b?x=1"
followed=$(curl -sL --max-time 5 --resolve "redir.local:$HTTP_PORT:127.0.0.1" \
	-H 'Host: old.local' "http://127.0.0.1:$HTTP_PORT/a/b?x=1" | awk '{ print $1, $4 }')
is "redirects: following it reaches the target service with path and query" "$followed" "redir /a/b?x=1"
is "redirects: the target host itself is not redirected" "$(seen redir.local /c)" "redir /c"
is "redirects: an https:// source is not redirected on the HTTP port" "$(status only-tls.local /)" 503

# ---- 2. ssl_cert, ssl_key ------------------------------------------------------

check "ssl_cert: the HTTPS frontend appears with the first certificate" \
	lab_wait 30 grep -q "frontend dovetail-https" "$GEN"
check "ssl_cert: SNI a.tls.local gets the service's certificate" lab_wait 30 served_fp_is a.tls.local "$FP_A"
is "ssl_cert: its subject is the service's" "$(served_cert a.tls.local | cut -d'|' -f1)" "CN = a.tls.local"
lab_wait 30 https_seen_is a.tls.local / "$CERTS/a.crt" "tls-a /"
body=$(https_get a.tls.local '/s?x=1' "$CERTS/a.crt")
is "ssl_cert: an HTTPS request (certificate verified) gets the app's answer with X-Forwarded-Proto: https" \
	"$(awk '{ print $1, $3, $4, $5 }' <<<"$body")" "tls-a GET /s?x=1 xfp=https"
check "ssl_cert: the combined file is mode 0600" \
	test "$(stat -c %a "$LAB_DIR/dovetail.certs/svc-tls-a.pem" 2>/dev/null)" = 600
is "ssl_redirect: HTTP /p/q?x=1 -> 302 https://host:port/p/q?x=1" \
	"$(redirect a.tls.local '/p/q?x=1')" "302 https://a.tls.local:$HTTPS_PORT/p/q?x=1"
followed=$(curl -sL --max-time 5 --cacert "$CERTS/a.crt" \
	--resolve "a.tls.local:$HTTP_PORT:127.0.0.1" --resolve "a.tls.local:$HTTPS_PORT:127.0.0.1" \
	"http://a.tls.local:$HTTP_PORT/p?x=1" | awk '{ print $1, $4, $5 }')
is "ssl_redirect: following it reaches the app over HTTPS" "$followed" "tls-a /p?x=1 xfp=https"
check "a service without ssl_cert is served over HTTP" lab_wait 30 seen_is b.tls.local / "tls-b /"
check "... and SNI for its host does not get a certificate of its own yet" \
	test "$(served_fp b.tls.local)" != "$FP_B"

# ---- 3. ssl_passthrough ---------------------------------------------------------

check "ssl_passthrough: SNI pass.local gets the app's own certificate" lab_wait 30 served_fp_is pass.local "$FP_PASS"
is "ssl_passthrough: its subject is the app's" "$(served_cert pass.local | cut -d'|' -f1)" "CN = pass.local"
body=$(https_get pass.local / "$CERTS/pass.crt")
case $body in
*"s_server -quiet -accept 8443"*) ok "ssl_passthrough: the app (openssl s_server) answers the HTTPS request itself" ;;
*) not_ok "ssl_passthrough: the app answers the HTTPS request itself: got \"${body:0:200}\"" ;;
esac
check "ssl_passthrough: the same port still terminates a.tls.local with its certificate" served_fp_is a.tls.local "$FP_A"
check "ssl_passthrough: the app's certificate is nowhere in dovetail's files" \
	sh -c "! grep -rqF '$(sed -n 2p "$CERTS/pass.crt")' '$LAB_DIR/dovetail.certs' '$CRT_LIST'"
is "ssl_passthrough + ssl_redirect: HTTP pass.local/x?y=1 -> 302 to https" \
	"$(redirect pass.local '/x?y=1')" "302 https://pass.local:$HTTPS_PORT/x?y=1"
is "ssl_passthrough + redirects: HTTP old-pass.local/a/b?x=1 -> 302 to the target" \
	"$(redirect old-pass.local '/a/b?x=1')" "302 https://pass.local:$HTTPS_PORT/a/b?x=1"
followed=$(curl -sL --max-time 5 --cacert "$CERTS/pass.crt" \
	--resolve "pass.local:$HTTP_PORT:127.0.0.1" --resolve "pass.local:$HTTPS_PORT:127.0.0.1" \
	"http://pass.local:$HTTP_PORT/")
case $followed in
*"s_server -quiet"*) ok "ssl_passthrough: following the HTTP redirect reaches the app over TLS" ;;
*) not_ok "ssl_passthrough: following the HTTP redirect reaches the app over TLS: got \"${followed:0:200}\"" ;;
esac

# ---- 3b. the HTTPS port without passthrough ----------------------------------------

# With a passthrough service, a TCP frontend reads the SNI in front of the
# terminating one; without, the terminating frontend binds the port itself.
check "ssl_passthrough: the HTTPS port reads the SNI in a TCP frontend first" \
	grep -q "^frontend dovetail-https-terminate$" "$GEN"
r0=$(reloads)
dk service rm pass >/dev/null
check "without passthrough services, the terminating frontend binds the HTTPS port itself" \
	lab_wait 60 grep -q "^	bind 127.0.0.1:$HTTPS_PORT ssl crt " "$GEN"
check "... with no TCP frontend in front of it" sh -c "! grep -q '^frontend dovetail-https-terminate$\|^	mode tcp$' '$GEN'"
lab_wait 30 eval '[ "$(($(reloads) - r0))" -ge 1 ]'
sleep 1
is "... which took one reload" "$(($(reloads) - r0))" 1
check "... and SNI a.tls.local still gets the service's certificate" lab_wait 30 served_fp_is a.tls.local "$FP_A"
body=$(https_get a.tls.local '/s?x=2' "$CERTS/a.crt")
is "... and the app's answer with X-Forwarded-Proto: https" \
	"$(awk '{ print $1, $3, $4, $5 }' <<<"$body")" "tls-a GET /s?x=2 xfp=https"
is "... and a name without a certificate gets the default one" \
	"$(served_fp unknown.tls.local)" "$(served_fp "")"

# ---- 5. sticky_session_cookie, ip_hash ----------------------------------------

check "sticky_session_cookie: HAProxy holds the 3 tasks, up" lab_wait 30 servers_up "$(backend_of sticky)" 3
is "sticky_session_cookie: 20 requests with one cookie value reach one task" \
	"$(answers sticky.local 20 -b SID=alice | wc -l)" 1
is "... and so do 20 with another value" "$(answers sticky.local 20 -b SID=bob | wc -l)" 1
spread=$(for v in v01 v02 v03 v04 v05 v06 v07 v08 v09 v10 v11 v12 v13 v14 v15 v16 v17 v18 v19 v20; do
	get sticky.local / -b "SID=$v" | awk 'NF { print $2 }'
done | sort -u | wc -l)
check "sticky_session_cookie: 20 different values spread over several tasks ($spread of 3)" test "$spread" -ge 2
n=$(for i in 1 2 3 4 5 6 7 8 9 10; do status sticky.local /; echo; done | grep -c '^200$')
is "sticky_session_cookie: requests without the cookie are served too" "$n" 10
check "ip_hash: HAProxy holds the 3 tasks, up" lab_wait 30 servers_up "$(backend_of iph)" 3
is "ip_hash: 30 requests from 127.0.0.1 reach one task" "$(answers iph.local 30 | wc -l)" 1

# ---- 6. websocket_endpoints ------------------------------------------------------

check "websocket_endpoints: the ws service is routed" lab_wait 30 routes_exactly ws.local ws 1
ws_try /ws 6 >"$LAB_DIR/ws-endpoint.out" &
ws_endpoint=$!
ws_try /other 6 >"$LAB_DIR/ws-other.out" &
ws_other=$!
wait "$ws_endpoint" "$ws_other"
is "websocket_endpoints: an upgrade on the endpoint gets 101" \
	"$(sed -n 1p "$LAB_DIR/ws-endpoint.out")" "HTTP/1.1 101 Switching Protocols"
is "websocket_endpoints: its tunnel outlives the base file's 3 s tunnel timeout (6 s idle, then echoed)" \
	"$(sed -n 2p "$LAB_DIR/ws-endpoint.out")" "ping /ws"
is "an upgrade on another path gets 101 too" \
	"$(sed -n 1p "$LAB_DIR/ws-other.out")" "HTTP/1.1 101 Switching Protocols"
is "... but its tunnel is cut by the 3 s tunnel timeout" "$(sed -n 2p "$LAB_DIR/ws-other.out")" closed
# A reload while the tunnel is open: the old worker keeps it.
ws_try /ws 4 >"$LAB_DIR/ws-reload.out" &
ws_reload=$!
check "websocket_endpoints: a tunnel is open" lab_wait 10 grep -q "101 Switching" "$LAB_DIR/ws-reload.out"
check "... HAProxy reloads meanwhile" lab_haproxy_reload
wait "$ws_reload"
is "websocket_endpoints: the tunnel survives the reload (echoed after it)" \
	"$(sed -n 2p "$LAB_DIR/ws-reload.out")" "ping /ws"

# ---- 8. weight ---------------------------------------------------------------------

check "weight: both services of w.local are up" lab_wait 30 servers_up "$(backend_of w-main)" 2
n=$(count_of w-canary w.local 200)
check "weight=10: the 1-task canary beside a 1-task service gets $n of 200 (3-25 %)" \
	test "$n" -ge 6 -a "$n" -le 50

# ---- 9. backend_mode=vip -------------------------------------------------------------

VIP=$(dk service inspect -f '{{range .Endpoint.VirtualIPs}}{{.Addr}}{{end}}' vip)
VIP=${VIP%/*}
is "backend_mode=vip: the one server is the service's VIP and port label, not its published port" \
	"$(servers "$(backend_of vip)")" "$VIP:8080"

# ---- no reload from here until the new services of section 10 ------------------------

r0=$(reloads)

# ---- 2. certificates changed live ------------------------------------------------------

# A renewed certificate for the same host, same key: one file changes at
# once (a new cert with a new key in two files could be read half-way).
cp "$CERTS/a2.crt" "$SECRETS/a.crt.new" && mv "$SECRETS/a.crt.new" "$SECRETS/a.crt"
check "ssl_cert: a changed certificate file is served once dovetail reads it" \
	lab_wait 30 served_fp_is a.tls.local "$FP_A2"
is "... the new subject" "$(served_cert a.tls.local | cut -d'|' -f1)" "CN = a.tls.local, O = renewed"
is "... and the app answers through it (verified against the new certificate)" \
	"$(https_seen a.tls.local /renewed "$CERTS/a2.crt")" "tls-a /renewed"
check "... logged" grep -q "service tls-a: certificate svc-tls-a.pem loaded" "$LOG"
is "a changed certificate caused no reload" "$(reloads)" "$r0"

dk service update --detach --label-add "$L.ssl_cert=b.crt" --label-add "$L.ssl_key=b.key" tls-b >/dev/null
check "ssl_cert added to a second service: SNI b.tls.local gets its certificate" \
	lab_wait 30 served_fp_is b.tls.local "$FP_B"
is "... and its app answers over HTTPS" \
	"$(https_get b.tls.local /b "$CERTS/b.crt" | awk '{ print $1, $4, $5 }')" "tls-b /b xfp=https"
check "... while a.tls.local keeps its renewed certificate" served_fp_is a.tls.local "$FP_A2"
check "a client without SNI gets the first TLS service's certificate (no default service has one)" \
	served_fp_is "" "$FP_A2"
is "a second certificate caused no reload" "$(reloads)" "$r0"

# ---- 8. weight changed live ------------------------------------------------------------

dk service update --detach --label-add "$L.weight=0" w-canary >/dev/null
check "weight=0: the canary gets no new request" lab_wait 30 count_of_is w-canary w.local 20 0
is "weight=0: 0 of 200 requests reach it" "$(count_of w-canary w.local 200)" 0
is "a weight change caused no reload" "$(reloads)" "$r0"
dk service update --detach --label-rm "$L.weight" w-canary >/dev/null
dk service scale --detach w-main=4 >/dev/null
distinct_are() { [ "$(answers "$1" 30 | wc -l)" -eq "$2" ]; }
check "no weight, 4 tasks + a 1-task canary: all 5 answer" lab_wait 60 distinct_are w.local 5
n=$(count_of w-canary w.local 200)
check "no weight, 4 + 1 tasks: the canary gets $n of 200 (10-30 %)" test "$n" -ge 20 -a "$n" -le 60
is "removing the weight and scaling caused no reload" "$(reloads)" "$r0"

# ---- 9. vip: scaling changes nothing in HAProxy ---------------------------------------

dk service scale --detach vip=3 >/dev/null
check "backend_mode=vip: scaled to 3 tasks" lab_wait 60 tasks_are vip 3

# ---- 11. a new host and a new path for an existing service: map edits -----------------

dk service update --detach --label-add "$L.hosts=ctx.local,ctx2.local" \
	--label-add "$L.context_root=/app/v3" ctx-v2 >/dev/null
check "a host added to an existing service routes" lab_wait 30 seen_is ctx2.local /app/v3/x "ctx-v2 /app/v3/x"
check "its new context root routes on the old host" lab_wait 10 seen_is ctx.local /app/v3/y "ctx-v2 /app/v3/y"
is "its old context root now falls to the /app service" "$(seen ctx.local /app/v2/x)" "ctx-app /v2/x"
check "the hosts map holds the new entries" grep -q "^ctx2.local/app/v3/ " "$HOSTS_MAP"
is "a new host and context root caused no reload" "$(reloads)" "$r0"
# dovetail has seen the scaled vip service by now (it applied a later change).
is "backend_mode=vip: after scaling to 3, still the one VIP server" \
	"$(servers "$(backend_of vip)")" "$VIP:8080"
is "backend_mode=vip: scaling caused no reload" "$(reloads)" "$r0"

# ---- 7, 10, 2. new services: default backend, hostile labels, bad secrets --------------

# Hostile label values, each on its own service (no task needed: labels are
# read whether tasks run or not).  NAME|LABEL|VALUE|LEAK: VALUE (printf %b:
# \n is a newline) on label LABEL; LEAK, a string that must not reach the
# generated files ("-": nothing beyond the service's name and host).  A
# leak string holds a '.' or a character no task ID has, or is long enough,
# so that it does not match a random [a-z0-9] server name by chance.
long=$(printf 'a%.0s' $(seq 300))
hostile_table="hx-host-space|hosts|bad host.local|bad host
hx-host-semi|hosts|x.local;del map|del map
hx-host-hash|hosts|evil#.local|evil#
hx-host-long|hosts|$long.local|$long
hx-host-quote|hosts|ev\"il.local|ev\"il
hx-port-word|port|80a|-
hx-port-semi|port|8080; reload|8080; reload
hx-ctx-space|context_root|/a b|/a b
hx-ctx-semi|context_root|/a;b|/a;b
hx-ctx-nl|context_root|/a\nbackend evilnl|evilnl
hx-ctx-hash|context_root|/a#evil|/a#evil
hx-ctx-dots|context_root|/x/../evil|/../evil
hx-ctx-quote|context_root|/a\"evil|/a\"evil
hx-ctx-rel|context_root|relative|relative
hx-ctx-long|context_root|/$long|$long
hx-rw-yes|context_root_rewrite|yes|-
hx-rw-True|context_root_rewrite|True|-
hx-pass-on|ssl_passthrough|on|-
hx-sslr-yes|ssl_redirect|yes|-
hx-ip-empty|ip_hash||-
hx-ip-on|ip_hash|on|-
hx-def-blank|default_backend| true|-
hx-def-True|default_backend|True|-
hx-cert-dots|ssl_cert|../a.crt|../a.crt
hx-cert-space|ssl_cert|a evil.crt|a evil.crt
hx-key-dots|ssl_key|../b.key|../b.key
hx-redir-scheme|redirects|http://|-
hx-redir-ftp|redirects|src1.local,ftp://evil1.local|evil1.local
hx-redir-nocomma|redirects|evil2.local|evil2.local
hx-redir-semi|redirects|src3.local,http://ok3.local;x y,http://evil3.local|ok3.local
hx-redir-nl|redirects|src4.local,http://ok4.local\nevil4.local|evil4.local
hx-redir-port|redirects|src5:99.local,http://evil5.local|evil5.local
hx-cookie-space|sticky_session_cookie|sid evil|sid evil
hx-cookie-semi|sticky_session_cookie|sid;evil|sid;evil
hx-cookie-quote|sticky_session_cookie|sid\"evil|sid\"evil
hx-cookie-long|sticky_session_cookie|$long|$long
hx-ws-space|websocket_endpoints|/ws evil6|evil6
hx-ws-rel|websocket_endpoints|ws|-
hx-ws-many|websocket_endpoints|/w1,/w2,/w3,/w4,/w5,/w6,/w7,/w8,/w9,/w10,/w11,/w12,/w13,/w14,/w15,/w16,/w17,/w18,/w19,/w20,/w21,/w22,/w23,/w24,/w25,/w26,/w27,/w28,/w29,/w30,/w31,/w32,/w33,/w34,/w35,/w36,/w37,/w38,/w39,/w40|-
hx-mode-bridge|backend_mode|bridge|bridge
hx-mode-semi|backend_mode|vip;evil|vip;evil
hx-w-101|weight|101|-
hx-w-neg|weight|-1|-
hx-w-frac|weight|1.5|-
hx-w-word|weight|ten|-
hx-net|network|evil net|evil net"
nhostile=0
creating=()
while IFS='|' read -r name label value leak; do
	value=$(printf '%b' "$value")
	args=(--label "$L.$label=$value")
	[ "$label" = hosts ] || args+=(--label "$L.hosts=$name.hostile.local")
	[ "$label" = port ] || args+=(--label "$L.port=8080")
	case $label in
	context_root_rewrite) args+=(--label "$L.context_root=/ok") ;;
	ssl_cert) args+=(--label "$L.ssl_key=a.key") ;;
	ssl_key) args+=(--label "$L.ssl_cert=a.crt") ;;
	esac
	app "$name" 0 "${args[@]}" &
	creating+=($!)
	nhostile=$((nhostile + 1))
done <<<"$hostile_table"
# Certificates that cannot be used: missing files, garbage, a key that is
# not the certificate's.
app tls-missing 0 --label "$L.hosts=missing.tls.local" --label "$L.port=8080" \
	--label "$L.ssl_cert=nothere.crt" --label "$L.ssl_key=nothere.key" &
creating+=($!)
app tls-garbage 0 --label "$L.hosts=garbage.tls.local" --label "$L.port=8080" \
	--label "$L.ssl_cert=garbage.crt" --label "$L.ssl_key=a.key" &
creating+=($!)
app tls-mismatch 0 --label "$L.hosts=mismatch.tls.local" --label "$L.port=8080" \
	--label "$L.ssl_cert=b.crt" --label "$L.ssl_key=a.key" &
creating+=($!)
# More host names than one crt-list line can carry at run time.
many_hosts=$(for i in $(seq 1 1000); do printf 'h%d.many.tls.local,' "$i"; done)
app tls-many 0 --label "$L.hosts=${many_hosts%,}" --label "$L.port=8080" \
	--label "$L.ssl_cert=a.crt" --label "$L.ssl_key=a.key" &
creating+=($!)
app hx-good 1 --label "$L.hosts=good.hostile.local" --label "$L.port=8080" &
creating+=($!)
# A new TLS service: a new backend, so its certificate comes with a reload.
app tls-c 1 --label "$L.hosts=c.tls.local" --label "$L.port=8080" \
	--label "$L.ssl_cert=c.crt" --label "$L.ssl_key=c.key" &
creating+=($!)
# A default service without hosts.
app dflt 1 --label "$L.port=8080" --label "$L.default_backend=true" &
creating+=($!)
wait "${creating[@]}"

check "the good service beside the hostile ones routes" lab_wait 60 routes_exactly good.hostile.local hx-good 1
hostile_logged() { [ "$(grep -c "warning: service hx-" "$LOG")" -ge "$nhostile" ]; }
check "every hostile service is logged" lab_wait 30 hostile_logged
while IFS='|' read -r name label value leak; do
	check "hostile $label=\"${value:0:40}\": a warning names $name and $L.$label" \
		grep -q -F "warning: service $name: label $L.$label: " "$LOG"
	check "hostile $label: $name is not in the generated files" not_in_generated "$name"
	if [ "$leak" != - ]; then
		check "hostile $label: its value is not in the generated files" \
			not_in_generated "$(printf '%b' "$leak")"
	fi
done <<<"$hostile_table"
is "each hostile service is logged once" "$(grep -c 'warning: service hx-' "$LOG")" "$nhostile"
check "the file with the hostile services around passes haproxy -c" "$LAB_HAPROXY" -c -q -f "$BASE" -f "$GEN"

check "ssl_cert: a missing secret file is an error naming the service and $L.ssl_cert" \
	grep -q "warning: service tls-missing: label $L.ssl_cert: cannot read the secret" "$LOG"
check "ssl_cert: a garbage PEM is an error naming the service and $L.ssl_cert" \
	grep -q "warning: service tls-garbage: label $L.ssl_cert: the certificate file holds no PEM certificate" "$LOG"
check "ssl_cert: a key that is not the certificate's is an error naming the service and $L.ssl_cert, with HAProxy's reason" \
	grep -q "warning: service tls-mismatch: label $L.ssl_cert: HAProxy refuses the certificate and key: inconsistencies between private key and certificate" "$LOG"
check "ssl_cert: 1,000 host names on one certificate are an error naming the service and $L.hosts" \
	grep -q "warning: service tls-many: label $L.hosts: 1000 host names (.* bytes) are too many for one TLS certificate" "$LOG"
check "... and the runtime API session is never reset by a payload too large" \
	sh -c "! grep -q 'Connection reset by peer' '$LOG'"
check "ssl_cert: no bad certificate's host is in the crt-list or the maps" \
	sh -c "! grep -q -e missing.tls -e garbage.tls -e mismatch.tls -e many.tls '$CRT_LIST' '$HOSTS_MAP' '$SNI_MAP'"
check "ssl_cert: a TLS service created later gets its certificate" lab_wait 30 served_fp_is c.tls.local "$FP_C"
check "... and its app answers over HTTPS" lab_wait 30 https_seen_is c.tls.local /c "$CERTS/c.crt" "tls-c /c"
check "ssl_cert: the good certificates are still served" served_fp_is a.tls.local "$FP_A2"
check "... both" served_fp_is b.tls.local "$FP_B"
is "... and the good TLS service still answers" \
	"$(https_seen a.tls.local /still "$CERTS/a2.crt")" "tls-a /still"

# ---- network in a stack, service_cluster -------------------------------------------------

# A stack file's network "net" is the swarm's "stk_net": the label says
# "net", as Interlock users write it.
cat >"$LAB_DIR/stack.yml" <<EOF
version: "3.8"
x-app: &app
  image: $APP_IMAGE
  command: ["nc", "-ll", "-p", "8080", "-e", "/app/http.sh"]
  init: true
  networks: [net]
  ports: [{target: 8080, mode: host}]
services:
  good:
    <<: *app
    environment: [APP=stk-good]
    deploy:
      labels:
        $L.hosts: stk.local
        $L.port: "8080"
        $L.network: net
  bad:
    <<: *app
    environment: [APP=stk-bad]
    deploy:
      labels:
        $L.hosts: stkbad.local
        $L.port: "8080"
        $L.network: nope
networks:
  net: {driver: overlay}
EOF
printf 'stk_good\nstk_bad\n' >>"$LAB_DIR/services"
check "docker stack deploy of a stack with a network label" \
	dk stack deploy --resolve-image never -c "$LAB_DIR/stack.yml" stk
app clu 1 --label "$L.hosts=clu.local" --label "$L.port=8080" --label "$L.service_cluster=east"
check "network: in stack stk, the label \"net\" names the stack's stk_net" \
	lab_wait 60 seen_is stk.local /n "stk-good /n"
check "network: a name none of the service's networks has is an error naming the service and label" \
	lab_wait 30 grep -q "service stk_bad: label $L.network: network \"nope\" is not one of the service's networks (stk_net)" "$LOG"
check "... and its host is in none of the generated files" not_in_generated stkbad.local
mkdir -p "$LAB_DIR/east"
east_once() {
	"$DOVETAIL" -c "$CONF" --once --routing-service-cluster east \
		--haproxy-runtime-socket "$LAB_DIR/absent.sock" \
		--haproxy-config "$LAB_DIR/east/dovetail.cfg" >"$LAB_DIR/east.log" 2>&1
}
check "service_cluster: an agent of cluster east writes its file (--once, checked by haproxy -c)" east_once
is "... routing exactly the service of cluster east" \
	"$(grep -v '^#' "$LAB_DIR/east/dovetail.hosts.map")" "clu.local/ svc-clu"
# The test's agent has read the swarm since (a full read after this one,
# which finds it changed or not).
full_reads() { grep -c -E "docker: ([0-9]+ labelled service|the swarm did not change)" "$LOG"; }
syncs=$(full_reads)
check "... while this agent has read the swarm again" \
	lab_wait 10 eval '[ "$(full_reads)" -gt '"$syncs"' ]'
check "service_cluster: this agent (no cluster) leaves the service of cluster east out" \
	not_in_generated clu.local

# ---- 7. default_backend -----------------------------------------------------------------

check "default_backend: an unknown host goes to the default service (it has no hosts label)" \
	lab_wait 30 seen_is nobody.local /x "dflt /x"
is "default_backend: so does a path no context root of a known host matches" "$(seen ctx.local /apple)" "dflt /apple"
is "default_backend: known hosts keep their routes" "$(seen redir.local /r)" "redir /r"
is "default_backend: terminated HTTPS for an unknown name goes to it too" \
	"$(https_get nobody.local /t "$CERTS/a.crt" -k | awk '{ print $1, $4, $5 }')" "dflt /t xfp=https"
check "default_backend: only its own task answers" routes_exactly nobody.local dflt 1
# With a hosts label too, the service comes in both of dovetail's service
# queries: it must still be one service, each task one server.
dk service update --detach --label-add "$L.hosts=dflt.local" dflt >/dev/null
check "default_backend with hosts: its own host is routed" lab_wait 30 seen_is dflt.local /own "dflt /own"
is "... unknown hosts still go to it" "$(seen nobody.local /y)" "dflt /y"
is "... and each backend holds its one task once" \
	"$(awk '/^backend / { b = $2 } /^\tserver / { print b, $2 }' "$GEN" | sort | uniq -d)" ""
check "... in a file haproxy -c accepts" "$LAB_HAPROXY" -c -q -f "$BASE" -f "$GEN"

# ---- 12. a shared swarm: another stack takes nothing of a stack's hosts -------------------
# (dovetail-labels(7), SECURITY.)  The victim, of stack "vic", has two
# hosts and a certificate; services of stack "evil", created after it, each
# try one way to take some of its traffic; the victim keeps answering for
# both hosts, over HTTP and HTTPS with its own certificate, under load; a
# service created after them all is routed.  (A stack is its services'
# com.docker.stack.namespace label, which docker stack deploy sets.)

mkcert vic v.acc.local
mkcert vic-evil v.acc.local /O=evil
cp "$CERTS/vic.crt" "$CERTS/vic.key" "$SECRETS/"
cp "$CERTS/vic-evil.crt" "$CERTS/vic-evil.key" "$SECRETS/"
FP_VIC=$(fingerprint "$CERTS/vic.crt")
S=com.docker.stack.namespace
# The victim's certificate is a Docker secret of its stack, as docker stack
# deploy makes one (dovetail reads the file from secrets_dir, as from a
# secret given to its own service): a service of another stack naming it
# is refused.
# evil-cert's own certificate for the victim's host is a secret of its own
# stack, so that what refuses it is the host's owner.
for f in vic.crt:vic vic.key:vic vic-evil.crt:evil vic-evil.key:evil; do
	dk secret rm "${f%:*}" >/dev/null 2>&1 || true
	dk secret create --label "$S=${f#*:}" "${f%:*}" "$CERTS/${f%:*}" >/dev/null
done
app vic 1 --label "$S=vic" --label "$L.hosts=v.acc.local,v2.acc.local" \
	--label "$L.port=8080" --label "$L.ssl_cert=vic.crt" --label "$L.ssl_key=vic.key"
check "tenancy: the victim is routed on both hosts" lab_wait 60 seen_is v2.acc.local /a "vic /a"
check "... and over HTTPS with its certificate" lab_wait 30 https_seen_is v.acc.local /a "$CERTS/vic.crt" "vic /a"
# A request for each host, over HTTP and HTTPS, again and again while the
# attackers come: every answer must be the victim's.
vic_load() {
	local i=0
	while [ ! -e "$LAB_DIR/vic-load.stop" ]; do
		echo "http $(seen v.acc.local /l)"
		echo "http $(seen v2.acc.local /admin/l)"
		echo "https $(https_seen v.acc.local /l "$CERTS/vic.crt")"
		i=$((i + 1))
	done >"$LAB_DIR/vic-load.out"
}
rm -f "$LAB_DIR/vic-load.stop"
vic_load &
vic_load_pid=$!
r0=$(reloads)
ev=(--label "$S=evil" --label "$L.port=8080")
creating=()
app evil-redir 1 "${ev[@]}" --label "$L.hosts=e.evil.local" \
	--label "$L.redirects=http://v.acc.local,http://elsewhere.local" &
creating+=($!)
app 0evil 1 "${ev[@]}" --label "$L.hosts=v.acc.local" --label "$L.ip_hash=true" &
creating+=($!)
app evil-weight 1 "${ev[@]}" --label "$L.hosts=v.acc.local" --label "$L.weight=100" &
creating+=($!)
app evil-path 1 "${ev[@]}" --label "$L.hosts=v2.acc.local" --label "$L.context_root=/admin" &
creating+=($!)
app evil-pass 1 "${ev[@]}" --label "$L.hosts=v.acc.local" --label "$L.ssl_passthrough=true" &
creating+=($!)
app evil-cert 1 "${ev[@]}" --label "$L.hosts=v2.acc.local" \
	--label "$L.ssl_cert=vic-evil.crt" --label "$L.ssl_key=vic-evil.key" &
creating+=($!)
app evil-default 1 "${ev[@]}" --label "$L.default_backend=true" &
creating+=($!)
# Of no stack: not the victim's group either.
app loose-thief 1 --label "$L.hosts=v.acc.local" --label "$L.port=8080" &
creating+=($!)
# Its own host, the victim's certificate.
app evil-secret 1 "${ev[@]}" --label "$L.hosts=e2.evil.local" \
	--label "$L.ssl_cert=vic.crt" --label "$L.ssl_key=vic.key" &
creating+=($!)
wait "${creating[@]}"
app after-evil 1 --label "$S=late" --label "$L.hosts=late.acc.local" --label "$L.port=8080"
check "tenancy: a service created after the hostile ones is routed" \
	lab_wait 60 seen_is late.acc.local /x "after-evil /x"
refused_is() {
	grep -q -F "warning: service $1: label $L.$2: $3 belongs to service $4, created before it; service not routed" "$LOG"
}
for t in "evil-redir|redirects|host v.acc.local|vic (stack vic)" \
	"0evil|hosts|host v.acc.local|vic (stack vic)" \
	"evil-weight|hosts|host v.acc.local|vic (stack vic)" \
	"evil-path|hosts|host v2.acc.local|vic (stack vic)" \
	"evil-pass|hosts|host v.acc.local|vic (stack vic)" \
	"evil-cert|hosts|host v2.acc.local|vic (stack vic)" \
	"evil-default|default_backend|the default route|dflt (no stack)" \
	"loose-thief|hosts|host v.acc.local|vic (stack vic)"; do
	IFS='|' read -r name label what owner <<<"$t"
	check "tenancy: $name is refused, the warning naming $L.$label, the host and the owner" \
		lab_wait 30 refused_is "$name" "$label" "$what" "$owner"
	check "... and $name is in none of the generated files" not_in_generated "$name"
done
check "tenancy: evil-secret may not use the victim's certificate, and the warning says whose it is" \
	lab_wait 30 grep -q -F "warning: service evil-secret: label $L.ssl_cert: the secret \"vic.crt\" belongs to stack \"vic\"" "$LOG"
check "... and evil-secret is in none of the generated files" not_in_generated evil-secret
is "... and its host gets no crt-list line: the certificate any unknown name gets" "$(served_fp e2.evil.local)" "$(served_fp nobody.local)"
sleep 2
touch "$LAB_DIR/vic-load.stop"
wait "$vic_load_pid"
n=$(grep -c . "$LAB_DIR/vic-load.out")
bad=$(grep -v -c -e '^http vic /l$' -e '^http vic /admin/l$' -e '^https vic /l$' "$LAB_DIR/vic-load.out")
check "tenancy: the victim answered every one of $n requests during the attacks ($bad did not)" \
	test "$n" -ge 30 -a "$bad" -eq 0
check "tenancy: the victim's HTTPS still presents its own certificate" served_fp_is v.acc.local "$FP_VIC"
is "... for v2 too" "$(served_fp v2.acc.local)" "$FP_VIC"
is "tenancy: v.acc.local is not redirected" "$(status v.acc.local /r)" 200
is "tenancy: unknown hosts still go to the first default service" "$(seen nobody.local /z)" "dflt /z"
is "tenancy: only the victim's task serves v.acc.local" "$(answers v.acc.local 8 | awk '{ print $1 }' | sort -u)" vic
metric() { curl -s --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
is "tenancy: /metrics counts the services refused for another group's host" \
	"$(metric 'dovetail_refused_services{reason="host_owner"}')" 8
check "tenancy: /healthz lists their warnings, and stays healthy" sh -c \
	"curl -s --max-time 5 http://127.0.0.1:$METRICS_PORT/healthz | grep -q '\"host_owner\":8,\"haproxy\":0,.*service 0evil: label $L.hosts: host v.acc.local belongs to service vic.*\"status\":\"ok\"'"
is "tenancy: the attackers caused no reload (one, for the service after them)" \
	"$(($(reloads) - r0))" 1

# ---- response headers ----------------------------------------------------------------

# headers HOST [curl args]: the response headers of GET /h for HOST, then the body.
headers() {
	local host=$1
	shift
	curl -s -D - --max-time 5 -H "Host: $host" "$@" "http://127.0.0.1:$HTTP_PORT/h" | tr -d '\r'
}
h=$(headers redir.local)
rid=$(awk 'tolower($1) == "x-request-id:" { print $2 }' <<<"$h")
check "response headers: x-request-id is a new UUID ($rid)" \
	grep -qE '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' <<<"$rid"
check "... and the app received the same X-Request-ID" grep -q "rid=$rid\$" <<<"$h"
check "response headers: x-proxy-id is the LB host name" grep -qix "x-proxy-id: $(hostname)" <<<"$h"
check "response headers: x-server-info names dovetail" grep -qE '^x-server-info: dovetail/[0-9]' <<<"$h"
check "response headers: x-upstream-addr is the task's address and port" \
	grep -qE '^x-upstream-addr: 127\.0\.0\.1:[0-9]+$' <<<"$h"
check "response headers: x-upstream-response-time is in milliseconds" \
	grep -qE '^x-upstream-response-time: [0-9]+$' <<<"$h"
h=$(headers redir.local -H "X-Request-ID: trace-42")
check "response headers: a client's X-Request-ID is kept, to the app and back" \
	grep -qix "x-request-id: trace-42" <<<"$h"
check "... the app saw it" grep -q "rid=trace-42\$" <<<"$h"
no_headers() {
	local h
	h=$(headers redir.local)
	grep -q '^HTTP/1.1 200' <<<"$h" && ! grep -qi '^x-proxy-id:\|^x-server-info:\|^x-upstream-' <<<"$h"
}
sed -i "/^response_headers = true$/d" "$CONF"
kill -HUP "$DT_PID"
check "response_headers left out (SIGHUP): by default responses come without them" lab_wait 30 no_headers

check "dovetail is still running" kill -0 "$DT_PID"
stop_dovetail
check "dovetail stops cleanly on SIGTERM" grep -q "stopping on signal" "$LOG"

if [ "$fail" -gt 0 ]; then
	echo "# dovetail log (last 60 lines):"
	tail -n 60 "$LOG" | sed 's/^/# /'
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
