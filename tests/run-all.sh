#!/usr/bin/env bash
# Installs what the tests need (Debian 12, as root) and runs them all:
#   1. the build, warning-free under -Werror, with ASan/UBSan;
#   2. the unit and golden tests (make check);
#   3. mandoc -Tlint on the man pages;
#   4. every golden HAProxy file through haproxy -c;
#   5. make distcheck;
#   6. the end-to-end suite on a real swarm and a real HAProxy.
# The last line is the total: "total: N passed, N failed".
#
# DOVETAIL_SKIP_APT=1 skips the package installation.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

packages=(build-essential autoconf automake libtool pkg-config
	libcurl4-openssl-dev libjansson-dev libinih-dev libmicrohttpd-dev check mandoc
	docker.io haproxy busybox-static socat curl openssl iproute2 procps)
if [ "${DOVETAIL_SKIP_APT:-0}" != 1 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "run-all: run as root (it installs packages and starts dockerd)" >&2
		exit 2
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

step() { printf '\n==> %s\n' "$*"; }

step "build (-Werror, sanitizers)"
./autogen.sh >/dev/null 2>&1
mkdir -p build
cd build
../configure -q --enable-sanitizers CFLAGS="-O1 -g -Werror"
# Objects built earlier with other flags would be kept by make: start clean.
make -s clean
make -s -j"$(nproc)"

step "unit and golden tests"
unit_rc=0
make -s check >/dev/null 2>&1 || unit_rc=$?
cat tests/check_dovetail.log
unit_line=$(grep -E '^[0-9]+%: Checks:' tests/check_dovetail.log || true)
unit_total=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$unit_line")
unit_failed=$(sed -E 's/.*Failures: ([0-9]+), Errors: ([0-9]+).*/\1+\2/' <<<"$unit_line")
unit_failed=$((${unit_failed:-1}))
[ "$unit_rc" -eq 0 ] || [ "$unit_failed" -gt 0 ] || unit_failed=1
unit_passed=$((${unit_total:-0} - unit_failed))

other_passed=0
other_failed=0
record() {
	if "$@"; then
		echo "ok - $*"
		other_passed=$((other_passed + 1))
	else
		echo "not ok - $*"
		other_failed=$((other_failed + 1))
	fi
}

step "man pages"
record mandoc -Tlint -Wwarning "$top/man/dovetail.8" "$top/man/dovetail.conf.5"

step "golden HAProxy files pass haproxy -c"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for dir in "$top"/tests/data/golden/*/; do
	case=$(basename "$dir")
	cp "$dir/hosts.map" "$tmp/$case.map"
	sed "s|/etc/haproxy/dovetail.hosts.map|$tmp/$case.map|; s|bind :80|bind 127.0.0.1:18999|" \
		"$dir/haproxy.cfg" >"$tmp/$case.cfg"
	record haproxy -c -q -f "$top/haproxy/haproxy.cfg" -f "$tmp/$case.cfg"
done

step "make distcheck"
distcheck() {
	if ! make -s distcheck DISTCHECK_CONFIGURE_FLAGS="CFLAGS=-Werror" \
		>"$tmp/distcheck.log" 2>&1; then
		tail -n 40 "$tmp/distcheck.log"
		return 1
	fi
}
record distcheck

step "end-to-end: real swarm, real HAProxy"
e2e_out=$tmp/e2e.out
e2e_rc=0
"$top/tests/e2e.sh" "$top/build/src/dovetail" | tee "$e2e_out" || e2e_rc=$?
e2e_line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$e2e_out" | tail -n 1 || true)
e2e_passed=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$e2e_line")
e2e_failed=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$e2e_line")
e2e_passed=${e2e_passed:-0}
e2e_failed=${e2e_failed:-1}
[ "$e2e_rc" -eq 0 ] || [ "$e2e_failed" -gt 0 ] || e2e_failed=1

passed=$((unit_passed + other_passed + e2e_passed))
failed=$((unit_failed + other_failed + e2e_failed))
echo
echo "unit: $unit_passed passed, $unit_failed failed; checks: $other_passed passed, $other_failed failed; e2e: $e2e_passed passed, $e2e_failed failed"
echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
