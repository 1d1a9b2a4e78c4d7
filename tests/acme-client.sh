#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# The ACME client (src/acme.c) against a real CA: Debian's pebble, with
# pebble-challtestsrv as its DNS server, all on 127.0.0.1.  The HTTP-01
# answers come from a small python3 responder serving the files that
# tests/acme_probe's publish hook writes; it answers nothing for a host
# named fail.*, which makes that host's authorization fail.  pebble
# rejects a tenth of the nonces (PEBBLE_WFE_NONCEREJECT), which the client
# must retry.
#
#   tests/acme-client.sh [path/to/acme_probe]
#
# ACME_KEEP=DIR keeps each run's output there.
# Needs pebble, pebble-challtestsrv, openssl, curl and python3.  Ports are
# ACME_PORT_BASE (24400) + 31..37.  Prints one "ok"/"not ok" line per
# assertion and, last, "N passed, N failed"; exits non-zero on a failure.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
PROBE=${1:-${ACME_PROBE:-./tests/acme_probe}}
# shellcheck source=tests/results.sh
. "$here/results.sh"

for cmd in pebble pebble-challtestsrv openssl curl python3 "$PROBE"; do
	if ! command -v "$cmd" >/dev/null; then
		echo "acme-client.sh: $cmd not found" >&2
		exit 2
	fi
done

base=${ACME_PORT_BASE:-24400}
ACME_PORT=$((base + 31))
MGMT_PORT=$((base + 32))
HTTP_PORT=$((base + 33))
TLS_PORT=$((base + 34))
DNS_PORT=$((base + 35))
CTS_PORT=$((base + 36))
DEAD_PORT=$((base + 37))

work=$(mktemp -d /tmp/acme-client.XXXXXX)
pids=()
finish() {
	local rc=$? pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	rm -rf "$work"
	return $rc
}
trap finish EXIT

# ---- a CA for pebble's own HTTPS, and its server certificate ----------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$work/ca.key" -out "$work/ca.pem" -days 2 \
	-subj "/CN=acme-client.sh test CA" 2>/dev/null || exit 2
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$work/server.key" -out "$work/server.csr" \
	-subj "/CN=localhost" 2>/dev/null || exit 2
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' \
	>"$work/server.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" \
	-CAkey "$work/ca.key" -CAcreateserial -days 2 \
	-extfile "$work/server.ext" -out "$work/server.pem" 2>/dev/null || exit 2
# Another CA, which must not be taken for pebble's.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$work/other.key" -out "$work/other.pem" -days 2 \
	-subj "/CN=someone else" 2>/dev/null || exit 2

cat >"$work/pebble.json" <<EOF
{
  "pebble": {
    "listenAddress": "127.0.0.1:$ACME_PORT",
    "managementListenAddress": "127.0.0.1:$MGMT_PORT",
    "certificate": "$work/server.pem",
    "privateKey": "$work/server.key",
    "httpPort": $HTTP_PORT,
    "tlsPort": $TLS_PORT,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false
  }
}
EOF

# ---- the HTTP-01 responder ---------------------------------------------
mkdir -p "$work/webroot" "$work/out"
cat >"$work/responder.py" <<'EOF'
import http.server, os, re, sys

root, port = sys.argv[1], int(sys.argv[2])
prefix = "/.well-known/acme-challenge/"

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = self.headers.get("Host", "").split(":")[0]
        token = self.path[len(prefix):]
        path = os.path.join(root, token)
        if (host.startswith("fail.") or not self.path.startswith(prefix)
                or not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", token)
                or not os.path.isfile(path)):
            self.send_error(404)
            return
        body = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("responder: %s %s\n" % (self.headers.get("Host"),
                                                 fmt % args))

http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
EOF
python3 "$work/responder.py" "$work/webroot" "$HTTP_PORT" \
	2>"$work/responder.log" &
pids+=($!)

# A server that takes connections and never answers.
python3 -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
time.sleep(120)
' "$DEAD_PORT" &
pids+=($!)

# ---- the DNS server and the CA -----------------------------------------
pebble-challtestsrv -dns01 "127.0.0.1:$DNS_PORT" -defaultIPv4 127.0.0.1 \
	-defaultIPv6 "" -http01 "" -https01 "" -tlsalpn01 "" \
	-management "127.0.0.1:$CTS_PORT" >"$work/challtestsrv.log" 2>&1 &
pids+=($!)
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=10 \
	pebble -config "$work/pebble.json" -dnsserver "127.0.0.1:$DNS_PORT" \
	>"$work/pebble.log" 2>&1 &
pids+=($!)

DIR="https://127.0.0.1:$ACME_PORT/dir"
# listening PORT: something accepts connections on 127.0.0.1:PORT.
listening() {
	timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}
up=0
for _ in $(seq 1 100); do
	if listening "$HTTP_PORT" && listening "$DEAD_PORT" &&
	    listening "$CTS_PORT" &&
	    curl -fsS --cacert "$work/ca.pem" "$DIR" >/dev/null 2>&1; then
		up=1
		break
	fi
	sleep 0.1
done
if [ "$up" != 1 ]; then
	echo "acme-client.sh: pebble, its DNS or a responder did not come up" >&2
	cat "$work/pebble.log" "$work/challtestsrv.log" \
		"$work/responder.log" >&2
	exit 2
fi

# probe NAME ARGS...: runs acme_probe, its output in $work/NAME.out and
# .err, its exit status in $rc and its run time (ms) in $ms.
probe() {
	local name=$1 t0
	shift
	t0=$(date +%s%3N)
	"$PROBE" -v -d "$DIR" -c "$work/ca.pem" -k "$work/account.pem" \
		-w "$work/webroot" -p 200 "$@" >"$work/$name.out" \
		2>"$work/$name.err"
	rc=$?
	ms=$(($(date +%s%3N) - t0))
	if [ -n "${ACME_KEEP:-}" ]; then
		cp "$work/$name.out" "$work/$name.err" "$ACME_KEEP/"
	fi
}
field() { sed -n "s/^$2=//p" "$work/$1.out"; }
show() {
	echo "--- $1:" >&2
	cat "$work/$1.out" >&2
	tail -20 "$work/$1.err" >&2
}

# ---- an order for two hosts --------------------------------------------
probe two -o "$work/out" -t 60000 a.acme.test b.acme.test
is "an order for two hosts succeeds" "$rc" 0
[ "$rc" = 0 ] || show two
is "both tokens published" "$(field two published)" 2
is "both tokens unpublished" "$(field two unpublished)" 2
is "the web root is empty again" "$(ls -A "$work/webroot")" ""
check "an account key was made" test -s "$work/account.pem"

cert=$work/out/cert.pem
key=$work/out/key.pem
sans=$(openssl x509 -in "$cert" -noout -ext subjectAltName 2>/dev/null |
	tail -n +2 | tr -d ' ')
is "the certificate's names are the two hosts" "$sans" \
	"DNS:a.acme.test,DNS:b.acme.test"
check "the reply holds the leaf and its chain" \
	test "$(grep -c 'BEGIN CERTIFICATE' "$cert")" -ge 2
curl -fsS --cacert "$work/ca.pem" \
	"https://127.0.0.1:$MGMT_PORT/roots/0" >"$work/root.pem" &&
	curl -fsS --cacert "$work/ca.pem" \
		"https://127.0.0.1:$MGMT_PORT/intermediates/0" \
		>"$work/intermediate.pem"
verify() { openssl verify "$@" >/dev/null; }
check "the certificate chains to pebble's root" \
	verify -CAfile "$work/root.pem" -untrusted "$work/intermediate.pem" \
	"$cert"
check "the chain sent is the one that verifies" \
	verify -CAfile "$work/root.pem" -untrusted "$cert" "$cert"
check "it does not verify against another CA" \
	bash -c "! openssl verify -CAfile '$work/other.pem' \
	-untrusted '$work/intermediate.pem' '$cert' >/dev/null 2>&1"
is "the key is the certificate's" \
	"$(openssl pkey -in "$key" -pubout 2>/dev/null)" \
	"$(openssl x509 -in "$cert" -noout -pubkey 2>/dev/null)"
check "the key is PKCS#8" grep -q '^-----BEGIN PRIVATE KEY-----$' "$key"
check "the key is P-256" \
	bash -c "openssl pkey -in '$key' -noout -text | grep -q 'NIST CURVE: P-256'"
end=$(openssl x509 -in "$cert" -noout -enddate | sed 's/^notAfter=//')
is "not_after is the certificate's" "$(field two not_after)" \
	"$(date -d "$end" +%s)"

# ---- the same account again: newAccount answers 200, authorizations
# may be reused (skipped when valid) -------------------------------------
probe again -t 60000 b.acme.test a.acme.test
is "a second order with the same account succeeds" "$rc" 0
[ "$rc" = 0 ] || show again

# ---- a host whose challenge is not answered ----------------------------
probe fail -t 60000 ok.acme.test fail.acme.test
is "an order with an unanswered challenge fails" "$rc" 1
is "failed_host names the host" "$(field fail failed_host)" \
	"fail.acme.test"
check "the problem is the CA's" \
	grep -q '^problem=urn:ietf:params:acme:error:' "$work/fail.out"
check "the cause names the host and the problem" \
	grep -q '^cause=.*fail.acme.test.*urn:ietf:params:acme:error:' \
	"$work/fail.out"
is "every token published was unpublished" "$(field fail unpublished)" \
	"$(field fail published)"
is "the web root is empty after the failure" "$(ls -A "$work/webroot")" ""
[ "$(field fail failed_host)" = fail.acme.test ] || show fail

# ---- the CA away, silent, or not the CA it claims ----------------------
probe away -t 5000 -d "https://127.0.0.1:$TLS_PORT/dir" a.acme.test
is "no CA there: the order fails" "$rc" 1
check "no CA there: within the timeout" test "$ms" -lt 6000
check "no CA there: the cause says where" \
	grep -q "^cause=https://127.0.0.1:$TLS_PORT/dir: " "$work/away.out"
is "no CA there: no failed_host" "$(field away failed_host)" ""

probe silent -t 2000 -d "https://127.0.0.1:$DEAD_PORT/dir" a.acme.test
is "a CA that never answers: the order fails" "$rc" 1
check "a CA that never answers: within the timeout ($ms ms)" \
	test "$ms" -ge 1500 -a "$ms" -lt 5000

probe wrongca -t 10000 -c "$work/other.pem" a.acme.test
is "a CA certificate that does not verify: the order fails" "$rc" 1
check "a CA certificate that does not verify: TLS says why" \
	grep -qi 'certificate' "$work/wrongca.out"

# ---- badNonce --------------------------------------------------------
retries=$(cat "$work"/*.err | grep -c 'badNonce, retrying')
if [ "$retries" -gt 0 ]; then
	ok "badNonce answers were retried ($retries times)"
else
	# With one nonce in ten rejected this is rare, not a failure.
	echo "# no badNonce came in this run: the retry was not exercised"
fi
check "no request failed on a badNonce" \
	bash -c "! grep -q badNonce '$work'/*.out"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
