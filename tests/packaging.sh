#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Tests of the ways dovetail is deployed (packaging/): the systemd unit, the
# notify protocol it relies on, the Debian package (built, linted,
# installed, used and purged here, and installed and run under a real
# systemd booted in systemd-nspawn), the read-only Docker API proxy, the
# container images and the swarm stack.  Real components throughout:
# systemd, dpkg-buildpackage, lintian, apt, a real dockerd in swarm mode
# (tests/lab.sh) and a real HAProxy.  Traffic goes to 127.0.0.1 only; every
# wait is bounded.
#
#   tests/packaging.sh [path/to/dovetail]
#
# The dovetail binary given is the one the notify and proxy tests run; by
# default the one this script builds (without sanitizers) for the unit.
# Installs what it needs (Debian 12, as root) unless DOVETAIL_SKIP_APT=1;
# the Debian system booted under systemd-nspawn comes from the Debian
# archive (mmdebstrap), cached in $PKG_DIR (/tmp/dovetail-pkg).  Installs
# the .deb it builds and purges it again, unless a dovetail package was
# installed before (then those checks are reported as not tested).  Waits
# (up to 15 minutes) while a dockerd it did not start runs: only one can.
# Prints one "ok"/"not ok" line per assertion, "# not tested: ..." for what
# cannot run here, and, last, "N passed, N failed".
#
# No pipefail: "... | grep -q" stops reading at the first match, and the
# writer's SIGPIPE must not turn a match into a failure.
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
# shellcheck source=tests/lab.sh
. "$here/lab.sh"

PKG_DIR=${PKG_DIR:-/tmp/dovetail-pkg}
STACK_PORT=${PKG_STACK_PORT:-18081}
INSTALLED_PORT=${PKG_INSTALLED_PORT:-18083}
NOTIFY_PORT=${PKG_NOTIFY_PORT:-18084}
PROXY_PORT=${PKG_PROXY_PORT:-23761}
STACK=dtpkg
started=$(date +%s)

# shellcheck source=tests/results.sh
. "$here/results.sh"
not_tested() { echo "# not tested: $*"; }
section() { printf '# ---- %s (%ss)\n' "$*" "$(($(date +%s) - started))"; }
finish_early() {
	not_ok "$*"
	echo "$pass passed, $fail failed"
	exit 1
}

if [ "$(id -u)" -ne 0 ]; then
	echo "packaging: run as root (it installs a package and starts dockerd)" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

packages=(build-essential autoconf automake libtool pkg-config
	libcurl4-openssl-dev libjansson-dev libssl-dev libinih-dev libmicrohttpd-dev check debhelper
	dh-autoreconf fakeroot lintian systemd systemd-container mmdebstrap
	adduser python3 docker.io haproxy
	busybox-static socat curl ca-certificates procps util-linux)
if [ "${DOVETAIL_SKIP_APT:-0}" != 1 ]; then
	export DEBIAN_FRONTEND=noninteractive
	missing=()
	for p in "${packages[@]}"; do
		dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		apt-get update -qq &&
			apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null ||
			finish_early "installing ${missing[*]}"
	fi
fi

mkdir -p "$PKG_DIR"
T=$(mktemp -d "$PKG_DIR/run.XXXXXX")
# The dovetail user reads the files the installed-layout test makes here.
chmod 755 "$PKG_DIR" "$T"
PY=$(command -v python3)

# ---- clean-up ------------------------------------------------------------------
DT_PID=
NOTIFY_PID=
HX_PID=
API_PROXY_PID=
INSTALLED_DT_PID=
NSPAWN_PID=
WE_INSTALLED=0
NODE_LABELLED=0
stop_pid() {
	# stop_pid PID: SIGTERM a process this script started, wait up to 15 s.
	local pid=$1
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || return 0
	lab_wait 15 eval '! kill -0 '"$pid"' 2>/dev/null' || kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}
finish() {
	local rc=$?
	stop_pid "$DT_PID"
	stop_pid "$INSTALLED_DT_PID"
	stop_pid "$NOTIFY_PID"
	stop_pid "$API_PROXY_PID"
	stop_pid "$HX_PID"
	stop_pid "$NSPAWN_PID"
	if [ -n "${DOCKER_HOST:-}" ] && dk info >/dev/null 2>&1; then
		dk stack rm "$STACK" >/dev/null 2>&1
		lab_wait 60 eval '[ -z "$(dk ps -aq --filter label=com.docker.stack.namespace='"$STACK"')" ]'
		dk volume rm "${STACK}_dovetail" >/dev/null 2>&1
		# The images this run made (vfs keeps a full copy of each).
		[ -n "${img_dt:-}" ] && dk image rm -f "$img_dt" "$img_hx" >/dev/null 2>&1
		if [ "$NODE_LABELLED" = 1 ]; then
			dk node update --label-rm nodetype "$(dk info --format '{{.Swarm.NodeID}}')" >/dev/null 2>&1
		fi
	fi
	if [ "$WE_INSTALLED" = 1 ] && dpkg-query -W -f '${Status}' dovetail 2>/dev/null | grep -q installed; then
		apt-get purge -y -qq -o DPkg::Lock::Timeout=300 dovetail >/dev/null 2>&1
	fi
	lab_cleanup
	# The network namespace file a dockerd the lab stopped may leave mounted.
	if [ -n "${LAB_RUN_DIR:-}" ] && ! pgrep -x dockerd >/dev/null &&
		grep -q " $LAB_RUN_DIR/dk/exec/netns/" /proc/mounts; then
		umount "$LAB_RUN_DIR/dk/exec/netns/default" 2>/dev/null
	fi
	if [ "$fail" -gt 0 ] || [ "$rc" -ne 0 ]; then
		echo "# logs kept in $T"
	else
		rm -rf "$T"
	fi
	return $rc
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- helpers shared by the routing checks ----------------------------------------
# status PORT HOST: HTTP status of GET / through HAProxy on 127.0.0.1:PORT.
status() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Host: $2" "http://127.0.0.1:$1/"
}
# routes_exactly PORT HOST NAME N: HOST goes to exactly the N running tasks.
routes_exactly() { lab_routes_exactly "$@"; }
status_is() { [ "$(status "$1" "$2")" = "$3" ]; }
# master_reloads SOCKET: the reload count of the master line of `show proc`.
master_reloads() {
	printf 'show proc\n' | socat -t 2 - "UNIX-CONNECT:$1" 2>/dev/null |
		awk '$2 == "master" { print $3; exit }'
}
master_answers() { [ -n "$(master_reloads "$1")" ]; }

# =================================================================================
section "the systemd unit, built with a prefix of its own"
build=$T/build
inst=$T/inst
mkdir -p "$build"
if [ ! -x "$top/configure" ]; then
	(cd "$top" && ./autogen.sh) >"$T/autogen.log" 2>&1 || finish_early "autogen.sh"
fi
if ! (cd "$build" && "$top/configure" -q --prefix="$inst" &&
	make -s -j"$(nproc)" && make -s install) >"$T/build.log" 2>&1; then
	tail -n 30 "$T/build.log" | sed 's/^/# /'
	finish_early "configure, make, make install with --prefix"
fi
unit=$inst/lib/systemd/system/dovetail.service
check "make install puts the unit in PREFIX/lib/systemd/system" test -s "$unit"
check "ExecStart is the configured sbindir and sysconfdir" \
	grep -qx "ExecStart=$inst/sbin/dovetail -c $inst/etc/dovetail/dovetail.conf" "$unit"
check "ExecReload checks the file, then sends SIGHUP" \
	sh -c "grep -qx 'ExecReload=$inst/sbin/dovetail -n -c $inst/etc/dovetail/dovetail.conf' '$unit' &&
		grep -qx 'ExecReload=/bin/kill -HUP \$MAINPID' '$unit'"
check "ReadWritePaths is the configured state directory only" \
	test "$(grep '^ReadWritePaths=' "$unit")" = "ReadWritePaths=$inst/var/lib/dovetail"
check "no @variable@ is left in the generated files" \
	sh -c "! grep -rn '@[a-z]*@' '$unit' '$inst/share/dovetail'"
unit_has() { grep -qx "$1" "$unit"; }
for line in Type=notify Restart=on-failure TimeoutStartSec=2min User=dovetail \
	Group=dovetail SupplementaryGroups=haproxy ProtectSystem=strict ProtectHome=yes \
	PrivateTmp=yes NoNewPrivileges=yes 'Wants=haproxy.service docker.service network-online.target' \
	'After=haproxy.service docker.service network-online.target'; do
	check "the unit says $line" unit_has "$line"
done
verify_unit() { systemd-analyze verify --man=no "$1" >"$T/verify.log" 2>&1; }
if verify_unit "$unit"; then
	ok "systemd-analyze verify accepts the generated unit"
else
	not_ok "systemd-analyze verify accepts the generated unit"
	sed 's/^/# /' "$T/verify.log"
fi
security_ok() { systemd-analyze security --offline=true --threshold=25 "$1" >"$T/security.log" 2>&1; }
if security_ok "$unit"; then
	ok "systemd-analyze security rates the sandbox 2.5 or better (of 10)"
else
	not_ok "systemd-analyze security rates the sandbox 2.5 or better (of 10)"
	tail -n 3 "$T/security.log" | sed 's/^/# /'
fi
# The check can fail: a unit without the sandbox is rated far worse.
grep -v -e '^Protect' -e '^Private' -e '^NoNewPrivileges' -e '^Restrict' \
	-e '^CapabilityBoundingSet' -e '^SystemCall' "$unit" >"$T/bare.service"
lacks_sandbox() { ! security_ok "$1"; }
check "... and a unit without it worse" lacks_sandbox "$T/bare.service"
check "the drop-in loads the state directory's file into HAProxy" \
	grep -qx "Environment=\"EXTRAOPTS=-S /run/haproxy/master.sock,mode,660,group,haproxy -f $inst/var/lib/dovetail/dovetail.cfg\"" \
	"$inst/share/dovetail/haproxy.service.d/dovetail.conf"
check "the configuration for the unit writes into the state directory" \
	grep -qx "config = $inst/var/lib/dovetail/dovetail.cfg" "$inst/share/dovetail/dovetail.conf"
check "... and is otherwise haproxy/dovetail.conf" \
	sh -c "diff '$top/haproxy/dovetail.conf' '$inst/share/dovetail/dovetail.conf' | grep -c '^[<>]' | grep -qx 2"
quiet() { "$@" >/dev/null 2>&1; }
check "dovetail -n accepts that configuration" quiet "$inst/sbin/dovetail" -n -c "$inst/share/dovetail/dovetail.conf"
DOVETAIL=${1:-$inst/sbin/dovetail}

# =================================================================================
section "Debian package"
debout=$T/deb
if packaging_log=$("$top/packaging/build-deb.sh" "$debout" 2>&1); then
	ok "packaging/build-deb.sh builds the package"
else
	not_ok "packaging/build-deb.sh builds the package"
	printf '%s\n' "$packaging_log" | tail -n 30 | sed 's/^/# /'
fi
deb=$(ls "$debout"/dovetail_*_*.deb 2>/dev/null | head -n 1)
check "the .deb is in the output directory" test -n "$deb"
version=$(sed -n 's/^AC_INIT(\[dovetail\], \[\([^]]*\)\].*/\1/p' "$top/configure.ac")
check "its version is configure.ac's ($version)" \
	test "$(dpkg-deb -f "$deb" Version 2>/dev/null)" = "$version"
if [ -n "$deb" ]; then
	chmod 644 "$deb"
	# lintian refuses to run as root unless told; run it as nobody.
	lintian_out=$(cd "$debout" && runuser -u nobody -- lintian -I --pedantic "$deb" 2>&1)
	lintian_rc=$?
	printf '%s\n' "$lintian_out" | grep -E '^[EWIPXN]:' | sed 's/^/# lintian: /'
	check "lintian reports no error" \
		sh -c "[ $lintian_rc -ne 2 ] && ! printf '%s\n' \"\$1\" | grep -q '^E:'" _ "$lintian_out"
	deb_has() { dpkg-deb -c "$deb" | awk '{ print $6 }' | grep -qx "./$1"; }
	for f in usr/sbin/dovetail usr/sbin/dovetailctl etc/dovetail/dovetail.conf \
		lib/systemd/system/dovetail.service \
		lib/systemd/system/haproxy.service.d/dovetail.conf usr/lib/tmpfiles.d/dovetail.conf \
		usr/share/man/man8/dovetail.8.gz usr/share/man/man8/dovetailctl.8.gz \
		usr/share/man/man5/dovetail.conf.5.gz \
		usr/share/man/man7/dovetail-labels.7.gz \
		usr/share/doc/dovetail/haproxy/haproxy.cfg usr/share/doc/dovetail/README.Debian \
		usr/share/doc/dovetail/grafana/dovetail.json; do
		check "the package holds /$f" deb_has "$f"
	done
	check "/etc/dovetail/dovetail.conf is a conffile" \
		sh -c "dpkg-deb --ctrl-tarfile '$deb' | tar -xOf - ./conffiles | grep -qx /etc/dovetail/dovetail.conf"
	lacks() { ! deb_has "$1"; }
	check "the package does not touch /etc/haproxy/haproxy.cfg" lacks etc/haproxy/haproxy.cfg
fi

installed_before=0
dpkg-query -W -f '${Status}' dovetail 2>/dev/null | grep -q 'ok installed' && installed_before=1
if [ -z "$deb" ]; then
	not_tested "installing the package: it was not built"
elif [ "$installed_before" = 1 ]; then
	not_tested "installing the package: a dovetail package is installed already; not replacing it"
else
	if apt-get install -y -qq -o DPkg::Lock::Timeout=300 "$deb" >"$T/apt-install.log" 2>&1; then
		WE_INSTALLED=1
		ok "apt-get install ./dovetail_*.deb"
	else
		not_ok "apt-get install ./dovetail_*.deb"
		tail -n 20 "$T/apt-install.log" | sed 's/^/# /'
	fi
fi
if [ "$WE_INSTALLED" = 1 ]; then
	check "the dovetail system user exists" quiet id dovetail
	check "... as a system user without a login shell" \
		sh -c '[ "$(id -u dovetail)" -lt 1000 ] && getent passwd dovetail | grep -Eq ":(/usr/sbin/nologin|/bin/false)$"'
	check "... in its own group" test "$(id -gn dovetail)" = dovetail
	check "... and in the haproxy group" sh -c "id -Gn dovetail | tr ' ' '\n' | grep -qx haproxy"
	if getent group docker >/dev/null; then
		check "... and in the docker group" sh -c "id -Gn dovetail | tr ' ' '\n' | grep -qx docker"
	else
		not_tested "membership of the docker group: no docker group here"
	fi
	check "dovetail -n accepts the installed configuration (as the dovetail user)" \
		quiet runuser -u dovetail -- /usr/sbin/dovetail -n
	check "the installed configuration writes to /var/lib/dovetail/dovetail.cfg" \
		grep -qx 'config = /var/lib/dovetail/dovetail.cfg' /etc/dovetail/dovetail.conf
	check "/var/lib/dovetail exists, owned by dovetail" \
		test "$(stat -c '%U:%G %a' /var/lib/dovetail 2>/dev/null)" = "dovetail:dovetail 755"
	check "... with a first, empty HAProxy file for HAProxy to start with" \
		sh -c "[ \"\$(stat -c %U /var/lib/dovetail/dovetail.cfg)\" = dovetail ] &&
			! grep -v '^#' /var/lib/dovetail/dovetail.cfg | grep -q ."
	check "the unit is installed but not enabled" \
		sh -c "[ -f /lib/systemd/system/dovetail.service ] &&
			[ ! -e /etc/systemd/system/multi-user.target.wants/dovetail.service ]"
	if verify_unit /lib/systemd/system/dovetail.service; then
		ok "systemd-analyze verify accepts the installed unit"
	else
		not_ok "systemd-analyze verify accepts the installed unit"
		sed 's/^/# /' "$T/verify.log"
	fi
	check "the installed unit runs /usr/sbin/dovetail -c /etc/dovetail/dovetail.conf" \
		grep -qx 'ExecStart=/usr/sbin/dovetail -c /etc/dovetail/dovetail.conf' /lib/systemd/system/dovetail.service
	# What haproxy.service now runs: Debian's ExecStart with the drop-in's
	# EXTRAOPTS.  systemd splits an unbraced $EXTRAOPTS on white space.
	extraopts=$(sed -n 's/^Environment="EXTRAOPTS=\(.*\)"$/\1/p' \
		/lib/systemd/system/haproxy.service.d/dovetail.conf)
	check "haproxy.service's drop-in sets EXTRAOPTS" test -n "$extraopts"
	# shellcheck disable=SC2086
	check "HAProxy accepts the command line the drop-in gives it (haproxy -c)" \
		/usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg -c -q $extraopts
fi

# =================================================================================
section "waiting for the machine's only dockerd slot"
# Only one dockerd can run here (bridges, port 2377).  Reuse one that
# DOCKER_HOST points at; otherwise wait until no other dockerd runs.
if [ -z "${DOCKER_HOST:-}" ] || ! dk info >/dev/null 2>&1; then
	unset DOCKER_HOST
	lab_init "$PKG_DIR/lab"
	other_dockerd() {
		local p
		for p in $(pgrep -x dockerd); do
			[ "$p" = "${LAB_DOCKERD_PID:-}" ] || return 0
		done
		return 1
	}
	waited=0
	while other_dockerd && [ "$waited" -lt 900 ]; do
		[ $((waited % 60)) -eq 0 ] && echo "# another dockerd runs ($(pgrep -x -a dockerd | head -n 1 | cut -c1-100)); waiting"
		sleep 20
		waited=$((waited + 20))
	done
	other_dockerd && finish_early "another dockerd still runs after 15 minutes"
else
	lab_init "$PKG_DIR/lab"
fi
lab_docker_up || finish_early "the lab's docker swarm did not start"
# A reused engine's socket is the one DOCKER_HOST names.
case $DOCKER_HOST in
unix://*) LAB_DOCKER_SOCK=${DOCKER_HOST#unix://} ;;
*) finish_early "DOCKER_HOST=$DOCKER_HOST: these tests need the engine's UNIX socket" ;;
esac
lab_image || finish_early "the lab's demo image"

# =================================================================================
section "systemd notify protocol: READY, RELOADING, STOPPING"
NOTIFY_SOCK=$LAB_RUN_DIR/notify.sock
NOTIFY_LOG=$T/notify.log
rm -f "$NOTIFY_SOCK"
: >"$NOTIFY_LOG"
# Each datagram on one line, its newlines shown as "|".
"$PY" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        out.write(s.recv(65536).decode("utf-8", "replace").replace("\n", "|") + "\n")
' "$NOTIFY_SOCK" "$NOTIFY_LOG" &
NOTIFY_PID=$!
lab_wait 5 test -S "$NOTIFY_SOCK" || not_ok "the notify listener started"

NGEN=$T/notify/dovetail.cfg
NBASE=$T/notify/base.cfg
NCONF=$T/notify/dovetail.conf
NLOG=$T/notify/dovetail.log
mkdir -p "$T/notify"
cat >"$NBASE" <<EOF
global
	stats socket $LAB_HX_ADMIN_SOCK mode 600 level admin expose-fd listeners
	hard-stop-after 30s
defaults
	mode http
	timeout connect 2s
	timeout client 30s
	timeout server 30s
EOF
write_notify_conf() {
	lab_dovetail_conf "$NCONF" "unix://$LAB_DOCKER_SOCK" "$NGEN" "$NBASE" \
		"$NOTIFY_PORT"
	cat >>"$NCONF" <<EOF
[agent]
poll_interval = 1s
$1
EOF
}
write_notify_conf ""
"$DOVETAIL" -c "$NCONF" --once >>"$NLOG" 2>&1 || not_ok "--once writes the first file"
lab_haproxy_up "$NBASE" "$NGEN" || finish_early "the lab's HAProxy did not start"
lab_demo_service pkgnotify 1 --restart-delay 0s --label com.docker.lb.hosts=notify.local \
	--label com.docker.lb.port=8080 >/dev/null
NOTIFY_SOCKET=$NOTIFY_SOCK "$DOVETAIL" -v -c "$NCONF" >>"$NLOG" 2>&1 &
DT_PID=$!
# message_after N PATTERN: a datagram after the first N matches PATTERN
# (an extended regular expression); prints its line number.
message_after() {
	awk -v n="$1" -v re="$2" 'NR > n && $0 ~ re { print NR; found = 1; exit } END { exit !found }' "$NOTIFY_LOG"
}
has_message_after() { message_after "$@" >/dev/null; }
check "READY=1 comes, with a STATUS= line, after the first reconcile" \
	lab_wait 30 has_message_after 0 '^READY=1[|]STATUS='
check "the first message is that READY=1" sh -c "sed -n 1p '$NOTIFY_LOG' | grep -q 'READY=1'"
check "its STATUS= says the host is routed and Docker and HAProxy answer" \
	lab_wait 30 has_message_after 0 'STATUS=1 host[(]s[)], 1 backend[(]s[)].*docker connected, haproxy answering'
check "the service is routed meanwhile" lab_wait 30 routes_exactly "$NOTIFY_PORT" notify.local pkgnotify 1
n=$(wc -l <"$NOTIFY_LOG")
kill -HUP "$DT_PID"
check "SIGHUP: RELOADING=1 with MONOTONIC_USEC=" \
	lab_wait 10 has_message_after "$n" '^RELOADING=1[|]MONOTONIC_USEC=[0-9]+$'
r=$(message_after "$n" '^RELOADING=1' || echo 0)
check "... then READY=1" lab_wait 10 has_message_after "$r" '^READY=1$'
check "... and the log says the configuration was reloaded" \
	lab_wait 10 grep -q "SIGHUP: configuration $NCONF reloaded" "$NLOG"

# An invalid file: refused with its line number, the running one kept.
write_notify_conf 'converge_interval = soon'
bad_line=$(grep -n '^converge_interval = soon$' "$NCONF" | cut -d: -f1)
n=$(wc -l <"$NOTIFY_LOG")
kill -HUP "$DT_PID"
check "SIGHUP with an invalid file: the warning names file and line $bad_line" \
	lab_wait 10 grep -q "SIGHUP: $NCONF:$bad_line: .*keeping the running configuration" "$NLOG"
check "... RELOADING=1 then READY=1 still frame it" \
	sh -c "r=\$(awk -v n=$n 'NR > n && /^RELOADING=1/ { print NR; exit }' '$NOTIFY_LOG'); [ -n \"\$r\" ] &&
		awk -v r=\"\$r\" 'NR > r && /^READY=1\$/ { f = 1 } END { exit !f }' '$NOTIFY_LOG'"
check "... and dovetail keeps running" kill -0 "$DT_PID"
dk service scale --detach pkgnotify=2 >/dev/null
check "... and keeps routing: a scale to 2 is applied" \
	lab_wait 60 routes_exactly "$NOTIFY_PORT" notify.local pkgnotify 2
n=$(wc -l <"$NOTIFY_LOG")
kill -TERM "$DT_PID"
dt_rc=0
wait "$DT_PID" || dt_rc=$?
DT_PID=
check "SIGTERM: STOPPING=1" has_message_after "$n" '^STOPPING=1$'
check "... and exit status 0" test "$dt_rc" = 0
stop_pid "$NOTIFY_PID"
NOTIFY_PID=
dk service rm pkgnotify >/dev/null 2>&1
lab_haproxy_down >/dev/null 2>&1

# =================================================================================
section "the installed package against a real HAProxy and swarm"
if [ "$WE_INSTALLED" != 1 ]; then
	not_tested "the installed layout: the package is not installed by this run"
elif [ -S /run/haproxy/admin.sock ] && printf 'show info\n' |
	socat -t 2 - UNIX-CONNECT:/run/haproxy/admin.sock 2>/dev/null | grep -q '^Name:'; then
	not_tested "the installed layout: a system HAProxy runs on /run/haproxy"
elif [ ! -d /run/haproxy ]; then
	not_tested "the installed layout: /run/haproxy does not exist"
else
	# HAProxy as Debian's haproxy.service starts it with the drop-in, with
	# a base file like the user's plus the stats socket the README asks for.
	ibase=$T/installed-base.cfg
	sed -e 's|^\(\s*stats socket /run/haproxy/admin.sock\).*|\1 mode 660 level admin expose-fd listeners|' \
		/etc/haproxy/haproxy.cfg >"$ibase"
	grep -q 'stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners' "$ibase" ||
		printf 'global\n\tstats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners\n' >>"$ibase"
	# shellcheck disable=SC2086
	setsid /usr/sbin/haproxy -Ws -f "$ibase" -p "$T/installed-haproxy.pid" $extraopts \
		</dev/null >"$T/installed-haproxy.log" 2>&1 &
	HX_PID=$!
	check "HAProxy starts with the drop-in's options and the empty first file" \
		lab_wait 10 master_answers /run/haproxy/master.sock
	check "its master socket is mode 660, group haproxy" \
		test "$(stat -c '%a %G' /run/haproxy/master.sock 2>/dev/null)" = "660 haproxy"
	lab_demo_service pkginst 1 --restart-delay 0s --label com.docker.lb.hosts=installed.local \
		--label com.docker.lb.port=8080 >/dev/null
	ir0=$(master_reloads /run/haproxy/master.sock)
	# The packaged binary and configuration, as the unit runs them (user,
	# groups), with the lab's Docker and a loopback port.
	runuser -u dovetail -- /usr/sbin/dovetail -c /etc/dovetail/dovetail.conf \
		--docker-url "unix://$LAB_DOCKER_SOCK" --haproxy-base-config "$ibase" \
		--routing-http-bind "127.0.0.1:$INSTALLED_PORT" >"$T/installed-dovetail.log" 2>&1 &
	INSTALLED_DT_PID=$!
	check "as the dovetail user, it routes a service through the packaged layout" \
		lab_wait 60 routes_exactly "$INSTALLED_PORT" installed.local pkginst 1
	check "... after reloading HAProxy through /run/haproxy/master.sock" \
		test "$(master_reloads /run/haproxy/master.sock)" -gt "${ir0:-0}"
	check "... with the file and map it wrote in /var/lib/dovetail, owned by it" \
		sh -c '[ "$(stat -c %U /var/lib/dovetail/dovetail.cfg)" = dovetail ] &&
			[ "$(stat -c %U /var/lib/dovetail/dovetail.hosts.map)" = dovetail ] &&
			grep -q "^installed.local/ " /var/lib/dovetail/dovetail.hosts.map'
	ir1=$(master_reloads /run/haproxy/master.sock)
	dk service scale --detach pkginst=3 >/dev/null
	check "... scaling to 3 is routed to exactly the 3 tasks" \
		lab_wait 60 routes_exactly "$INSTALLED_PORT" installed.local pkginst 3
	check "... without a reload" test "$(master_reloads /run/haproxy/master.sock)" = "$ir1"
	check "... and no temporary file is left behind" \
		sh -c "! ls /var/lib/dovetail | grep -q tmp"
	if [ "$fail" -gt 0 ]; then
		tail -n 20 "$T/installed-dovetail.log" | sed 's/^/# dovetail: /'
	fi
	stop_pid "$INSTALLED_DT_PID"
	INSTALLED_DT_PID=
	stop_pid "$HX_PID"
	HX_PID=
	rm -f /run/haproxy/master.sock /run/haproxy/admin.sock
	dk service rm pkginst >/dev/null 2>&1
fi

# =================================================================================
section "the package's unit under a running systemd (systemd-nspawn)"
# systemd is not PID 1 here, so a Debian 12 system (mmdebstrap, cached in
# $PKG_DIR) boots in systemd-nspawn, sharing the host's network, with the
# lab dockerd's socket directory bound in.  The package is installed there
# and HAProxy and dovetail run as Debian's and dovetail's units say.
SD_PORT=${PKG_SYSTEMD_PORT:-18085}
SD_LEADER=
sd() { nsenter --target "$SD_LEADER" --mount --uts --ipc --pid -- "$@"; }
sd_running() {
	local st
	st=$(sd systemctl is-system-running 2>/dev/null)
	[ "$st" = running ] || [ "$st" = degraded ]
}
sock_gid=$(stat -c %g "$LAB_DOCKER_SOCK" 2>/dev/null || echo 0)
# The booted system holds what the package depends on (from the .deb),
# systemd, and what the test runs there; the cache is kept per package set.
sd_packages=systemd,systemd-sysv,dbus,procps,socat
if [ -n "$deb" ]; then
	sd_packages=$sd_packages,$(dpkg-deb -f "$deb" Depends | tr ',' '\n' |
		sed -e 's/[(|].*//' -e 's/ //g' | grep . | paste -sd, -)
fi
sd_cache=$PKG_DIR/systemd-root.$(printf '%s' "$sd_packages" | sha256sum | cut -c1-12).tar
if [ -z "$deb" ]; then
	not_tested "the unit under systemd: the package was not built"
elif ! command -v systemd-nspawn >/dev/null || ! command -v mmdebstrap >/dev/null; then
	not_tested "the unit under systemd: systemd-nspawn or mmdebstrap is missing"
elif [ "$sock_gid" = 0 ]; then
	not_tested "the unit under systemd: the lab's Docker socket has no group to give the dovetail user"
else
	sdroot=$T/sdroot
	mkdir -p "$sdroot"
	if [ ! -s "$sd_cache" ]; then
		find "$PKG_DIR" -maxdepth 1 -name 'systemd-root.*' -exec rm -rf {} +
		timeout 600 mmdebstrap --quiet --format=tar --variant=minbase \
			--include="$sd_packages" \
			bookworm "$sd_cache.part" >"$T/mmdebstrap.log" 2>&1 &&
			mv "$sd_cache.part" "$sd_cache"
	fi
	if [ ! -s "$sd_cache" ]; then
		not_tested "the unit under systemd: mmdebstrap could not make a Debian 12 system (no access to the Debian archive?)"
		tail -n 5 "$T/mmdebstrap.log" 2>/dev/null | sed 's/^/# /'
	else
		tar -C "$sdroot" -xf "$sd_cache"
		# Not /tmp: the booted system mounts a tmpfs there.
		cp "$deb" "$sdroot/srv/dovetail.deb"
		# The docker group of the socket, before the package is installed.
		chroot "$sdroot" groupadd --system --gid "$sock_gid" docker ||
			not_ok "a docker group with the socket's GID $sock_gid in the booted system"
		mkdir -p "$sdroot/srv/labdocker"
		setsid systemd-nspawn --quiet --register=no --keep-unit -D "$sdroot" \
			-M dtpkg --bind="$(dirname "$LAB_DOCKER_SOCK")":/srv/labdocker -b \
			</dev/null >"$T/nspawn.log" 2>&1 &
		NSPAWN_PID=$!
		lab_wait 20 eval '[ -n "$(ps -o pid= --ppid '"$NSPAWN_PID"' | head -n 1)" ]'
		SD_LEADER=$(ps -o pid= --ppid "$NSPAWN_PID" | head -n 1 | tr -d ' ')
		if [ -n "$SD_LEADER" ] && lab_wait 90 sd_running; then
			ok "a Debian 12 system boots under systemd-nspawn"
		else
			not_ok "a Debian 12 system boots under systemd-nspawn"
			tail -n 20 "$T/nspawn.log" | sed 's/^/# nspawn: /'
		fi
	fi
	sd_installed=0
	if [ -s "$sd_cache" ] && [ -n "$SD_LEADER" ] && sd_running; then
		if sd dpkg -i /srv/dovetail.deb >"$T/sd-dpkg.log" 2>&1; then
			ok "dpkg -i installs the package there"
			sd_installed=1
		else
			not_ok "dpkg -i installs the package there"
			tail -n 10 "$T/sd-dpkg.log" | sed 's/^/# /'
		fi
	fi
	if [ "$sd_installed" = 1 ]; then
		check "... and leaves dovetail.service disabled and stopped" \
			sh -c "! nsenter --target $SD_LEADER --mount --uts --ipc --pid -- systemctl -q is-enabled dovetail &&
				! nsenter --target $SD_LEADER --mount --uts --ipc --pid -- systemctl -q is-active dovetail"
		sd sed -i -e "s|^url = .*|url = unix:///srv/labdocker/$(basename "$LAB_DOCKER_SOCK")|" \
			-e "s|^http_bind = .*|http_bind = 127.0.0.1:$SD_PORT|" \
			-e "s|^poll_interval = .*|poll_interval = 1s|" /etc/dovetail/dovetail.conf
		sd sed -i 's|^\(\s*stats socket /run/haproxy/admin.sock\).*|\1 mode 660 level admin expose-fd listeners|' \
			/etc/haproxy/haproxy.cfg
		check "haproxy.service restarts with the drop-in" quiet sd systemctl restart haproxy
		check "... its master CLI is at /run/haproxy/master.sock, group haproxy" \
			test "$(sd stat -c '%a %G' /run/haproxy/master.sock 2>/dev/null)" = "660 haproxy"
		lab_demo_service pkgsd 1 --restart-delay 0s --label com.docker.lb.hosts=systemd.local \
			--label com.docker.lb.port=8080 >/dev/null
		lab_wait 30 eval '[ "$(lab_running_ports pkgsd | wc -l)" -eq 1 ]'
		if timeout 150 nsenter --target "$SD_LEADER" --mount --uts --ipc --pid -- \
			systemctl enable --now dovetail >"$T/sd-start.log" 2>&1; then
			ok "systemctl enable --now dovetail returns (READY=1 reached systemd)"
		else
			not_ok "systemctl enable --now dovetail returns (READY=1 reached systemd)"
			sed 's/^/# /' "$T/sd-start.log"
		fi
		check "... the unit is active (running)" \
			test "$(sd systemctl show -p ActiveState,SubState --value dovetail | tr '\n' ' ')" = "active running "
		check "... systemctl shows dovetail's STATUS= line" \
			sh -c "nsenter --target $SD_LEADER --mount --uts --ipc --pid -- systemctl show -p StatusText --value dovetail |
				grep -q 'host(s), .*docker connected, haproxy answering'"
		check "the service is routed through the HAProxy of haproxy.service" \
			lab_wait 60 routes_exactly "$SD_PORT" systemd.local pkgsd 1
		sd_pid=$(sd systemctl show -p MainPID --value dovetail)
		check "dovetail runs as the dovetail user" \
			test "$(sd ps -o user= -p "$sd_pid" 2>/dev/null)" = dovetail
		check "... with no new privileges and a system-call filter" \
			sh -c "nsenter --target $SD_LEADER --mount --uts --ipc --pid -- cat /proc/$sd_pid/status |
				grep -q '^NoNewPrivs:\s*1' && nsenter --target $SD_LEADER --mount --uts --ipc --pid -- cat /proc/$sd_pid/status |
				grep -q '^Seccomp:\s*2'"
		# Its view of the file system: only /var/lib/dovetail is writable.
		in_unit_ns() { sd nsenter --target "$sd_pid" --mount -- "$@"; }
		read_only() {
			local out
			out=$(in_unit_ns touch /etc/dovetail/probe 2>&1)
			case $out in *'Read-only file system'*) return 0 ;; esac
			return 1
		}
		check "... in a read-only file system (ProtectSystem=strict)" read_only
		check "... but for /var/lib/dovetail (ReadWritePaths=)" \
			quiet in_unit_ns sh -c 'touch /var/lib/dovetail/probe && rm /var/lib/dovetail/probe'
		# /root holds the shell's dot files; the unit sees it empty.
		no_home() {
			[ -n "$(sd ls -A /root)" ] && in_unit_ns test -d /root &&
				[ -z "$(in_unit_ns ls -A /root)" ]
		}
		check "... and without /root (ProtectHome=)" no_home
		sdr0=$(sd sh -c 'printf "show proc\n" | socat -t 2 - UNIX-CONNECT:/run/haproxy/master.sock' |
			awk '$2 == "master" { print $3; exit }')
		check "systemctl reload dovetail succeeds" quiet sd systemctl reload dovetail
		check "... and dovetail logged the reload" \
			lab_wait 10 eval 'nsenter --target '"$SD_LEADER"' --mount --uts --ipc --pid -- journalctl -q -u dovetail | grep -q "SIGHUP: configuration /etc/dovetail/dovetail.conf reloaded"'
		sd sh -c 'printf "poll_interval = sometimes\n" >>/etc/dovetail/dovetail.conf'
		bad_line=$(sd grep -n '^poll_interval = sometimes$' /etc/dovetail/dovetail.conf | cut -d: -f1)
		check "systemctl reload with an invalid file fails" \
			sh -c "! nsenter --target $SD_LEADER --mount --uts --ipc --pid -- systemctl reload dovetail >/dev/null 2>&1"
		check "... naming the file and line $bad_line in the journal" \
			lab_wait 10 eval 'nsenter --target '"$SD_LEADER"' --mount --uts --ipc --pid -- journalctl -q -u dovetail | grep -q "/etc/dovetail/dovetail.conf:'"$bad_line"':"'
		check "... and dovetail keeps running" quiet sd systemctl -q is-active dovetail
		sd sed -i '/^poll_interval = sometimes$/d' /etc/dovetail/dovetail.conf
		dk service scale --detach pkgsd=3 >/dev/null
		check "scaled to 3: routed to exactly the 3 tasks" \
			lab_wait 60 routes_exactly "$SD_PORT" systemd.local pkgsd 3
		sdr1=$(sd sh -c 'printf "show proc\n" | socat -t 2 - UNIX-CONNECT:/run/haproxy/master.sock' |
			awk '$2 == "master" { print $3; exit }')
		check "... without an HAProxy reload" test "${sdr1:-x}" = "${sdr0:-y}"
		check "systemctl stop dovetail stops it cleanly" \
			sh -c "nsenter --target $SD_LEADER --mount --uts --ipc --pid -- systemctl stop dovetail &&
				nsenter --target $SD_LEADER --mount --uts --ipc --pid -- journalctl -q -u dovetail | grep -q 'stopping on signal' &&
				[ \"\$(nsenter --target $SD_LEADER --mount --uts --ipc --pid -- systemctl show -p Result --value dovetail)\" = success ]"
		if [ "$fail" -gt 0 ]; then
			sd journalctl -q -u dovetail -u haproxy --no-pager 2>/dev/null | tail -n 25 | sed 's/^/# journal: /'
		fi
		dk service rm pkgsd >/dev/null 2>&1
		stop_pid "$NSPAWN_PID"
		NSPAWN_PID=
	fi
fi

# =================================================================================
section "the read-only Docker API proxy"
pcfg=$T/docker-api-proxy.cfg
sed -e "s|bind 127.0.0.1:2375|bind 127.0.0.1:$PROXY_PORT|" \
	-e "s|server docker /var/run/docker.sock|server docker $LAB_DOCKER_SOCK|" \
	-e 's|log stdout format raw local0 info|log stderr format raw local0 info|' \
	"$top/packaging/docker-api-proxy.cfg" >"$pcfg"
check "packaging/docker-api-proxy.cfg passes haproxy -c" haproxy -c -q -f "$pcfg"
haproxy -db -f "$pcfg" >"$T/api-proxy.log" 2>&1 &
API_PROXY_PID=$!
lab_wait 10 sh -c "curl -s -o /dev/null http://127.0.0.1:$PROXY_PORT/version"
api() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }
check "it passes GET /version" test "$(api "http://127.0.0.1:$PROXY_PORT/version")" = 200
check "it refuses GET /containers/json" test "$(api "http://127.0.0.1:$PROXY_PORT/v1.41/containers/json")" = 403
check "it refuses POST /services/create" \
	test "$(api -X POST -H 'Content-Type: application/json' -d '{}' "http://127.0.0.1:$PROXY_PORT/v1.41/services/create")" = 403
check "it refuses DELETE /services/ID" test "$(api -X DELETE "http://127.0.0.1:$PROXY_PORT/v1.41/services/x")" = 403
check "it passes GET /_ping" test "$(api "http://127.0.0.1:$PROXY_PORT/_ping")" = 200
check "it passes GET /secrets (names and labels: Docker never lists data)" \
	test "$(api "http://127.0.0.1:$PROXY_PORT/v1.41/secrets")" = 200
check "it refuses GET /secrets/ID" test "$(api "http://127.0.0.1:$PROXY_PORT/v1.41/secrets/x")" = 403
check "it refuses POST /secrets/create" \
	test "$(api -X POST -H 'Content-Type: application/json' -d '{}' "http://127.0.0.1:$PROXY_PORT/v1.41/secrets/create")" = 403
lab_demo_service pkgproxy 1 --label com.docker.lb.hosts=proxy.local --label com.docker.lb.port=8080 >/dev/null
lab_wait 30 eval '[ "$(lab_running_ports pkgproxy | wc -l)" -eq 1 ]'
proxy_once() {
	"$DOVETAIL" -c "$NCONF" --once --docker-url "tcp://127.0.0.1:$PROXY_PORT" \
		--haproxy-runtime-socket "$T/absent.sock" --haproxy-config "$T/proxy/dovetail.cfg" \
		>"$T/proxy-once.log" 2>&1
}
mkdir -p "$T/proxy"
write_notify_conf ""
check "dovetail reads the swarm through it: --once succeeds" proxy_once
check "... and routes the service it read" grep -q '^proxy.local/ ' "$T/proxy/dovetail.hosts.map"
stop_pid "$API_PROXY_PID"
API_PROXY_PID=
dk service rm pkgproxy >/dev/null 2>&1

# =================================================================================
section "container images (make-image.sh)"
img_dt=dovetail-pkgtest:$version
img_hx=dovetail-haproxy-pkgtest:$version
if DOCKER=$LAB_DOCKER "$top/packaging/container/make-image.sh" dovetail "$img_dt" >"$T/image.log" 2>&1; then
	ok "make-image.sh dovetail builds $img_dt"
else
	not_ok "make-image.sh dovetail builds $img_dt"
	tail -n 20 "$T/image.log" | sed 's/^/# /'
fi
if DOCKER=$LAB_DOCKER "$top/packaging/container/make-image.sh" haproxy "$img_hx" >"$T/image-hx.log" 2>&1; then
	ok "make-image.sh haproxy builds $img_hx"
else
	not_ok "make-image.sh haproxy builds $img_hx"
	tail -n 20 "$T/image-hx.log" | sed 's/^/# /'
fi
inspect() { dk image inspect --format "$2" "$1" 2>/dev/null; }
check "the dovetail image runs as the non-root user 10001" test "$(inspect "$img_dt" '{{.Config.User}}')" = 10001:10001
check "... stops with SIGTERM" test "$(inspect "$img_dt" '{{.Config.StopSignal}}')" = SIGTERM
check "... has the health check" \
	test "$(inspect "$img_dt" '{{json .Config.Healthcheck.Test}}')" = '["CMD","/usr/local/bin/dovetail-healthcheck"]'
check "... and the entrypoint and command of the Dockerfile" \
	test "$(inspect "$img_dt" '{{json .Config.Entrypoint}} {{json .Config.Cmd}}')" = '["/usr/sbin/dovetail"] ["-c","/etc/dovetail/dovetail.conf"]'
check "... which match packaging/container/Dockerfile" \
	sh -c "grep -qx 'USER 10001:10001' '$top/packaging/container/Dockerfile' &&
		grep -qx 'STOPSIGNAL SIGTERM' '$top/packaging/container/Dockerfile' &&
		grep -qx 'ENTRYPOINT \[\"/usr/sbin/dovetail\"\]' '$top/packaging/container/Dockerfile' &&
		grep -qx 'CMD \[\"-c\", \"/etc/dovetail/dovetail.conf\"\]' '$top/packaging/container/Dockerfile' &&
		grep -q 'CMD \[\"/usr/local/bin/dovetail-healthcheck\"\]' '$top/packaging/container/Dockerfile'"
run_in() { dk run --rm --network none "$@" >"$T/run-in.log" 2>&1; }
check "dovetail runs in its image: -n accepts the image's configuration" \
	run_in "$img_dt" -n -c /etc/dovetail/dovetail.conf
check "haproxy -c accepts the image's base file, as the non-root user" \
	run_in --entrypoint /usr/sbin/haproxy "$img_dt" -c -q -f /etc/haproxy/haproxy.cfg
check "the HAProxy image's haproxy runs" run_in --entrypoint /usr/sbin/haproxy "$img_hx" -v
check "its stop signal is SIGUSR1 (a soft stop)" test "$(inspect "$img_hx" '{{.Config.StopSignal}}')" = SIGUSR1

# =================================================================================
section "the swarm stack (packaging/stack.yml)"
node=$(dk info --format '{{.Swarm.NodeID}}')
dk node update --label-add nodetype=loadbalancer "$node" >/dev/null && NODE_LABELLED=1
# The stack as shipped, but for what this one-node lab needs:
#  * the swarm's node address is 127.0.0.1, which a container in its own
#    network namespace cannot reach, so both services use the host's
#    network (HAProxy then listens on the host itself, nothing published);
#  * HAProxy listens on 127.0.0.1:$STACK_PORT, not :80;
#  * the lab dockerd's socket is the one mounted into docker-api.
tstack=$T/stack.yml
awk -v sock="$LAB_DOCKER_SOCK" -v port="$STACK_PORT" '
	/^    ports:$/ { skip = 1; next }
	skip && /^      - \{target:/ { next }
	{ skip = 0 }
	/^    init: true$/ { print; print "    networks: [hostnet]"; next }
	/^        source: \/var\/run\/docker.sock$/ { print "        source: " sock; next }
	/^    command: \["-c", "\/etc\/dovetail\/dovetail.conf"\]$/ {
		print "    command: [\"-c\", \"/etc/dovetail/dovetail.conf\", \"--routing-http-bind\", \"127.0.0.1:" port "\", \"--agent-poll-interval\", \"1s\"]"
		next
	}
	{ print }
	END { print "networks:"; print "  hostnet:"; print "    external: true"; print "    name: host" }
' "$top/packaging/stack.yml" >"$tstack"
check "the test variant of the stack differs from stack.yml only where said" \
	sh -c "[ \$(grep -c 'networks: \[hostnet\]' '$tstack') -eq 3 ] &&
		! grep -q 'published:' '$tstack' && grep -q 'source: $LAB_DOCKER_SOCK' '$tstack' &&
		grep -q '127.0.0.1:$STACK_PORT' '$tstack'"
if DOVETAIL_IMAGE=$img_dt DOVETAIL_HAPROXY_IMAGE=$img_hx \
	dk stack deploy --resolve-image never --compose-file "$tstack" "$STACK" >"$T/stack.log" 2>&1; then
	ok "docker stack deploy of the stack"
else
	not_ok "docker stack deploy of the stack"
	sed 's/^/# /' "$T/stack.log"
fi
running_tasks() {
	dk service ps --filter desired-state=running --format '{{.CurrentState}}' "$1" 2>/dev/null |
		grep -c '^Running'
}
check "the haproxy service runs one task on the labelled node" lab_wait 90 eval '[ "$(running_tasks '"$STACK"'_haproxy)" -eq 1 ]'
check "the dovetail service runs one task on the labelled node" lab_wait 90 eval '[ "$(running_tasks '"$STACK"'_dovetail)" -eq 1 ]'
check "the docker-api service runs one task on the labelled node" lab_wait 90 eval '[ "$(running_tasks '"$STACK"'_docker-api)" -eq 1 ]'
volume=$(dk volume inspect --format '{{.Mountpoint}}' "${STACK}_dovetail" 2>/dev/null)
smaster=$volume/master.sock
check "dovetail wrote its file on the shared volume, with no manual step" \
	lab_wait 60 grep -q '^frontend dovetail-http' "$volume/dovetail.cfg"
check "HAProxy's master CLI answers on the shared volume" lab_wait 60 master_answers "$smaster"
check "the files on the volume belong to the dovetail user (10001)" \
	lab_wait 10 eval '[ "$(stat -c %u "$volume/dovetail.cfg")" = 10001 ]'
check "HAProxy answers a host nobody serves with dovetail's 503 page" \
	lab_wait 60 status_is "$STACK_PORT" nobody.local 503
check "the docker-api proxy listens on the volume for the dovetail user (gid 10001)" \
	test "$(stat -c '%F %a %g' "$volume/docker-api.sock" 2>/dev/null)" = "socket 660 10001"
proxy_log_has() { dk service logs --raw "${STACK}_docker-api" 2>/dev/null | grep -q -e "$1"; }
check "dovetail reads the swarm through it" \
	lab_wait 30 proxy_log_has ' 200 .*"GET /v1\.[0-9]*/services?'
check "... and is never refused" sh -c "! '$LAB_DOCKER' service logs --raw '${STACK}_docker-api' 2>/dev/null | grep -q ' 403 '"
lab_demo_service pkgapp 1 --restart-delay 0s --label com.docker.lb.hosts=app.local \
	--label com.docker.lb.port=8080 >/dev/null
check "a labelled service is routed through the stack's HAProxy by Host" \
	lab_wait 60 routes_exactly "$STACK_PORT" app.local pkgapp 1
sr0=$(master_reloads "$smaster")
dk service scale --detach pkgapp=3 >/dev/null
check "scaled to 3: routed to exactly the 3 running tasks" \
	lab_wait 90 routes_exactly "$STACK_PORT" app.local pkgapp 3
check "... with HAProxy's reload count unchanged (show proc)" test "$(master_reloads "$smaster")" = "$sr0"
dk service scale --detach pkgapp=1 >/dev/null
check "scaled back to 1: routed to exactly the running task" \
	lab_wait 90 routes_exactly "$STACK_PORT" app.local pkgapp 1
check "... still without a reload" test "$(master_reloads "$smaster")" = "$sr0"
dt_ctr=$(dk ps -q --filter "label=com.docker.swarm.service.name=${STACK}_dovetail" | head -n 1)
health() { dk inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$dt_ctr" 2>/dev/null; }
check "the dovetail container's health check reports healthy" \
	lab_wait 100 eval '[ "$(health)" = healthy ]'
check "the health check passes when run by hand" \
	dk exec "$dt_ctr" /usr/local/bin/dovetail-healthcheck
check "... and fails when the daemon's file differs from the swarm" \
	sh -c "! '$LAB_DOCKER' exec -e ATTEMPTS=1 -e DOVETAIL_FILE=/etc/haproxy/haproxy.cfg '$dt_ctr' /usr/local/bin/dovetail-healthcheck 2>/dev/null"
# A dovetail that cannot reach Docker (no network, no socket) runs on,
# retrying; its health check must fail.
away=$(dk run -d --network none "$img_dt" -c /etc/dovetail/dovetail.conf \
	--docker-url unix:///var/run/no-docker.sock 2>/dev/null)
check "... and fails for a dovetail that cannot read Docker" \
	sh -c "[ -n '$away' ] && ! '$LAB_DOCKER' exec -e ATTEMPTS=1 '$away' /usr/local/bin/dovetail-healthcheck >/dev/null 2>&1"
[ -n "$away" ] && dk rm -f "$away" >/dev/null 2>&1
if [ "$fail" -gt 0 ]; then
	echo "# stack services:"
	dk service ps --no-trunc "${STACK}_haproxy" "${STACK}_dovetail" 2>&1 | sed 's/^/# /'
	dk service logs --raw "${STACK}_dovetail" 2>&1 | tail -n 20 | sed 's/^/# dovetail: /'
	dk service logs --raw "${STACK}_haproxy" 2>&1 | tail -n 10 | sed 's/^/# haproxy: /'
fi
dk service rm pkgapp >/dev/null 2>&1

# =================================================================================
section "purging the package"
if [ "$WE_INSTALLED" = 1 ]; then
	if apt-get purge -y -qq -o DPkg::Lock::Timeout=300 dovetail >"$T/apt-purge.log" 2>&1; then
		ok "apt-get purge dovetail"
		WE_INSTALLED=0
	else
		not_ok "apt-get purge dovetail"
		tail -n 10 "$T/apt-purge.log" | sed 's/^/# /'
	fi
	gone() { [ ! -e "$1" ]; }
	check "the dovetail user is gone" sh -c '! getent passwd dovetail >/dev/null'
	check "... and its group" sh -c '! getent group dovetail >/dev/null'
	check "/var/lib/dovetail is gone" gone /var/lib/dovetail
	check "/etc/dovetail is gone" gone /etc/dovetail
	check "the HAProxy drop-in is gone" gone /lib/systemd/system/haproxy.service.d/dovetail.conf
	check "the unit is gone" gone /lib/systemd/system/dovetail.service
	check "HAProxy stays installed" sh -c "dpkg-query -W -f '\${Status}' haproxy | grep -q 'ok installed'"
else
	not_tested "purging the package: this run did not install it"
fi

section "done"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
