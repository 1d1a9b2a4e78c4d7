#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Installs what the tests need (Debian 12, as root) and runs them all:
#   1. the build, warning-free under -Werror, with ASan/UBSan;
#   2. the unit and golden tests (make check), and again under valgrind
#      (memcheck: no invalid access, no definite leak) in a build without
#      sanitizers, with which the daemon also runs under valgrind on the
#      real swarm (tests/e2e-valgrind.sh, in step 6);
#   3. mandoc -Tlint on the man pages;
#   4. every golden HAProxy file through haproxy -c;
#   5. make distcheck, after a short run of every libFuzzer target
#      (tests/fuzz.sh: the regressions, then FUZZ_SECONDS, default 10, each);
#   6. the end-to-end suites on a real swarm and a real HAProxy: routing
#      (tests/e2e.sh), the service labels (tests/e2e-labels.sh) and the
#      faults (tests/faults.sh), with Debian 12's HAProxy 2.6 and Docker
#      20.10, then again with Debian 13's HAProxy 3.0 and Docker 26 (from a
#      trixie tree made with mmdebstrap, tests/trixie.sh); and, with
#      each, a swarm of four nodes in network namespaces
#      (tests/multinode.sh);
#   7. the packaging tests: systemd unit and notify protocol, Debian
#      package, container images, swarm stack (tests/packaging.sh);
#   8. a short run of bench/churn, checking that no request is lost and
#      nothing reloads while tasks churn.
# The last line is the total: "total: N passed, N failed".
#
# DOVETAIL_SKIP_APT=1 skips the package installation.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

packages=(build-essential autoconf automake libtool pkg-config
	libcurl4-openssl-dev libjansson-dev libssl-dev libinih-dev libmicrohttpd-dev check mandoc
	pebble
	docker.io haproxy busybox-static socat curl openssl iproute2 procps python3
	mmdebstrap clang valgrind chromium)
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

step "the unit and golden tests under valgrind (a build without sanitizers)"
valgrind_units() {
	mkdir -p "$top/build-valgrind"
	(cd "$top/build-valgrind" && "$top/configure" -q CFLAGS="-O1 -g" &&
		make -s -j"$(nproc)" tests/check_dovetail src/dovetail \
		src/dovetailctl) >"$tmp_vg/build.log" 2>&1 ||
		{ tail -n 20 "$tmp_vg/build.log"; return 1; }
	CK_FORK=no DOVETAIL_TEST_DATA="$top/tests/data" valgrind -q \
		--leak-check=full --errors-for-leak-kinds=definite --error-exitcode=1 \
		"$top/build-valgrind/tests/check_dovetail" >"$tmp_vg/valgrind.log" 2>&1 ||
		{ tail -n 40 "$tmp_vg/valgrind.log"; return 1; }
	grep -E '^[0-9]+%: Checks' "$tmp_vg/valgrind.log"
}
tmp_vg=$(mktemp -d)
record valgrind_units
rm -rf "$tmp_vg"

step "man pages"
record mandoc -Tlint -Wwarning "$top/man/dovetail.8" "$top/man/dovetail.conf.5" \
	"$top/man/dovetail-labels.7" "$top/man/dovetailctl.8"

step "golden HAProxy files pass haproxy -c"
tmp=$(mktemp -d)
# shellcheck source=tests/trixie.sh
. "$top/tests/trixie.sh"
trap 'trixie_down; rm -rf "$tmp"' EXIT
for dir in "$top"/tests/data/golden/*/; do
	case=$(basename "$dir")
	mkdir -p "$tmp/$case/dovetail.certs"
	cp "$dir/hosts.map" "$tmp/$case/dovetail.hosts.map"
	: >"$tmp/$case/dovetail.sni.map"
	: >"$tmp/$case/dovetail.redirects.map"
	: >"$tmp/$case/dovetail.acme.map"
	: >"$tmp/$case/dovetail.crt-list"
	# The default certificate: any pair of the case's secrets.
	if [ -d "$dir/secrets" ]; then
		cat "$dir/secrets/"*.crt "$dir/secrets/"*.key \
			>"$tmp/$case/dovetail.certs/default.pem"
	fi
	sed "s|/etc/haproxy/dovetail\.|$tmp/$case/dovetail.|g; s|bind :80|bind 127.0.0.1:18999|; s|bind :443|bind 127.0.0.1:18998|" \
		"$dir/haproxy.cfg" >"$tmp/$case.cfg"
	record haproxy -c -q -f "$top/haproxy/haproxy.cfg" -f "$tmp/$case.cfg"
done

step "fuzzing: the regressions, then every libFuzzer target for ${FUZZ_SECONDS:-10} s"
record env FUZZ_SECONDS="${FUZZ_SECONDS:-10}" "$top/tests/fuzz.sh"

step "make distcheck"
distcheck() {
	if ! make -s distcheck DISTCHECK_CONFIGURE_FLAGS="CFLAGS=-Werror" \
		>"$tmp/distcheck.log" 2>&1; then
		tail -n 40 "$tmp/distcheck.log"
		return 1
	fi
}
record distcheck

# run_suite NAME CMD...: runs a suite whose last line is "N passed, N
# failed" and adds its counts; a suite that fails without such a line
# counts as one failure.
suite_passed=0
suite_failed=0
summary=
run_suite() {
	local name=$1 out=$tmp/$1.out rc=0 line p f
	shift
	"$@" | tee "$out" || rc=$?
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 || true)
	p=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line")
	f=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")
	p=${p:-0}
	f=${f:-1}
	[ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || f=1
	suite_passed=$((suite_passed + p))
	suite_failed=$((suite_failed + f))
	summary="$summary; $name: $p passed, $f failed"
}

step "the ACME client against pebble (no Docker)"
run_suite acme-client "$top/tests/acme-client.sh" "$top/build/tests/acme_probe"

step "end-to-end: real swarm, real HAProxy"
run_suite e2e "$top/tests/e2e.sh" "$top/build/src/dovetail"

step "end-to-end: service labels through HAProxy (HTTP, TLS, passthrough)"
run_suite e2e-labels "$top/tests/e2e-labels.sh" "$top/build/src/dovetail"

step "automatic certificates: pebble, two load balancers on one swarm"
run_suite acme "$top/tests/acme.sh" "$top/build/src/dovetail"

step "faults: Docker broken, a full disk, kill -9, HAProxy not answering, a slow check"
run_suite faults "$top/tests/faults.sh" "$top/build/src/dovetail"

step "a swarm of four nodes (network namespaces): drain, a node lost, manager failover"
run_suite multinode "$top/tests/multinode.sh" "$top/build/src/dovetail"

step "the daemon under valgrind on the real swarm (the build without sanitizers)"
run_suite e2e-valgrind "$top/tests/e2e-valgrind.sh" "$top/build-valgrind/src/dovetail"

step "end-to-end again with Debian 13's HAProxy 3.0 and Docker 26"
if trixie_up; then
	# sed, not head: head would stop reading and pipefail would end the run (SIGPIPE)
	"$TRIXIE_HAPROXY" -v | sed -n 1p
	"$TRIXIE_DOCKERD" --version
	export LAB_HAPROXY=$TRIXIE_HAPROXY LAB_DOCKERD=$TRIXIE_DOCKERD
	run_suite e2e-debian13 "$top/tests/e2e.sh" "$top/build/src/dovetail"
	run_suite e2e-labels-debian13 "$top/tests/e2e-labels.sh" "$top/build/src/dovetail"
	run_suite acme-debian13 "$top/tests/acme.sh" "$top/build/src/dovetail"
	run_suite faults-debian13 "$top/tests/faults.sh" "$top/build/src/dovetail"
	# Each node's dockerd from the tree, which sees the host's /tmp.
	export DTMN_ROOT=$TRIXIE_ROOT MULTINODE_BASE=/tmp/dovetail-multinode13
	run_suite multinode-debian13 "$top/tests/multinode.sh" "$top/build/src/dovetail"
	unset LAB_HAPROXY LAB_DOCKERD DTMN_ROOT MULTINODE_BASE
	trixie_down
else
	suite_failed=$((suite_failed + 1))
	summary="$summary; Debian 13: the trixie tree could not be made"
fi

step "packaging: systemd unit, notify, Debian package, images, swarm stack"
run_suite packaging "$top/tests/packaging.sh" "$top/build/src/dovetail"

step "bench/churn --short: no request lost, no reload while tasks churn"
# Only its zero-failure and reload figures are checked, never latencies.
record "$top/bench/churn" --short --check --out "$tmp/churn"

passed=$((unit_passed + other_passed + suite_passed))
failed=$((unit_failed + other_failed + suite_failed))
echo
echo "unit: $unit_passed passed, $unit_failed failed; checks: $other_passed passed, $other_failed failed$summary"
echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
