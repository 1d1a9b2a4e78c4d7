# shellcheck shell=bash
# SPDX-License-Identifier: ISC
#
# tests/lab.sh - a real single-node Docker swarm and a real HAProxy for the
# end-to-end tests and the demo of dovetail.  See /work/shared/LAB.md for how
# dockerd, swarm and HAProxy run on this kind of machine.
#
# Usage:
#     . tests/lab.sh
#     lab_init "$(mktemp -d /tmp/dovetail-e2e.XXXX)"
#     trap lab_cleanup EXIT
#     lab_docker_up && lab_image
#     lab_demo_service demo 2 --label com.docker.lb.hosts=demo.local \
#         --label com.docker.lb.port=8080 >/dev/null
#     lab_wait 30 eval '[ "$(lab_running_ports demo | wc -l)" -eq 2 ]'
#     lab_haproxy_up base.cfg generated.cfg
#
# Sourcing this file only defines functions and gives variables their
# defaults; it starts nothing.  Every function is safe under `set -u` and
# `set -e`.  Everything the lab creates (pid files, sockets, logs, Docker's
# data-root) lives under $LAB_DIR, except when $LAB_DIR is too long for UNIX
# socket paths (see lab_init).  Processes are only ever stopped by the PID the
# lab recorded when it started them, and only after checking that this PID is
# still the process the lab started.
#
# Only one lab dockerd can run on a machine at a time (each wants the docker0
# and docker_gwbridge bridges and port 2377); to share one between several
# scripts, start it once and export DOCKER_HOST: lab_docker_up then reuses it.
#
# Variables the functions set (after lab_init):
#   LAB_DIR LAB_LOG_DIR        state directory; a directory for tests' own logs
#   LAB_DK_DIR LAB_HX_DIR      $LAB_DIR/dk (dockerd), $LAB_DIR/hx (haproxy)
#   LAB_RUN_DIR                where sockets and Docker's exec-root live:
#                              $LAB_DIR, or a short /tmp/dtlab.XXXX
#   LAB_DOCKER_SOCK            the lab dockerd's socket
#   LAB_HX_MASTER_SOCK         HAProxy master CLI socket
#   LAB_HX_ADMIN_SOCK          suggested path for the base config's
#                              `stats socket` (the lab does not create it)
#   LAB_STARTED_DOCKER         1 when the lab started dockerd, else 0
#   LAB_STARTED_HAPROXY        1 when the lab started haproxy, else 0
#   LAB_DOCKERD_PID LAB_HAPROXY_PID   PIDs the lab started (or empty)
#   DOCKER_HOST                exported by lab_docker_up

# ---- defaults (override before calling the functions) ----------------------
: "${LAB_DOCKER:=/usr/bin/docker}"       # the CLI, fixed for determinism
: "${LAB_DOCKERD:=/usr/sbin/dockerd}"
: "${LAB_HAPROXY:=/usr/sbin/haproxy}"
: "${LAB_SOCAT:=/usr/bin/socat}"
: "${LAB_BUSYBOX:=/bin/busybox}"         # statically linked (busybox-static)
: "${LAB_IMAGE:=dovetail-demo:1}"
: "${LAB_DOCKER_TIMEOUT:=60}"            # seconds: dockerd start + swarm init
: "${LAB_DOCKER_RESTART_TIMEOUT:=90}"    # seconds: lab_docker_start
: "${LAB_STOP_TIMEOUT:=60}"              # seconds: dockerd to exit after TERM
: "${LAB_HAPROXY_TIMEOUT:=10}"           # seconds: master CLI to answer
: "${LAB_STARTED_DOCKER:=0}"
: "${LAB_STARTED_HAPROXY:=0}"
: "${LAB_DOCKERD_PID:=}"
: "${LAB_HAPROXY_PID:=}"
: "${LAB_DIR:=}"

# ---- small helpers ---------------------------------------------------------

# dk ARGS... - the Docker CLI (always $LAB_DOCKER, never whatever is in PATH).
dk() { "$LAB_DOCKER" "$@"; }

_lab_msg() { printf 'lab: %s\n' "$*" >&2; }

_lab_need_init() {
    if [ -z "${LAB_DIR:-}" ] || [ -z "${LAB_DK_DIR:-}" ]; then
        _lab_msg "lab_init DIR must be called first"
        return 1
    fi
}

# _lab_now_us - wall clock in microseconds.
_lab_now_us() {
    local t=${EPOCHREALTIME:-}
    if [ -n "$t" ]; then
        t=${t/[.,]/}
        printf '%s\n' "$((10#$t))"
    else
        printf '%s\n' "$(($(date +%s%N) / 1000))"
    fi
}

# _lab_secs_to_us SECONDS - "2", "0.5", "1.25" -> microseconds.
_lab_secs_to_us() {
    local s=$1 whole frac
    case $s in
        *.*) whole=${s%%.*}; frac=${s#*.} ;;
        *) whole=$s; frac= ;;
    esac
    whole=${whole:-0}
    frac=${frac}000000
    frac=${frac:0:6}
    printf '%s\n' "$((10#$whole * 1000000 + 10#$frac))"
}

# lab_wait TIMEOUT_SECONDS CMD... - run CMD (at once, then every 0.2s) until
# it succeeds: return 0, or 1 once TIMEOUT_SECONDS (may be fractional) have
# passed.  CMD's output is not redirected.
lab_wait() {
    if [ $# -lt 2 ]; then
        _lab_msg "usage: lab_wait TIMEOUT_SECONDS CMD..."
        return 2
    fi
    local deadline
    deadline=$(( $(_lab_now_us) + $(_lab_secs_to_us "$1") ))
    shift
    while :; do
        if "$@"; then
            return 0
        fi
        if [ "$(_lab_now_us)" -ge "$deadline" ]; then
            return 1
        fi
        sleep 0.2
    done
}

# _lab_alive PID [SUBSTRING] - PID exists, is not a zombie, and (if given) its
# command line contains SUBSTRING (guards against PID reuse).
_lab_alive() {
    local pid=${1:-} want=${2:-} stat cmd
    case $pid in '' | *[!0-9]*) return 1 ;; esac
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    case $stat in Z* | X*) return 1 ;; esac
    if [ -n "$want" ]; then
        cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
        case $cmd in *"$want"*) ;; *) return 1 ;; esac
    fi
    return 0
}

# _lab_stop_pid PID SUBSTRING TIMEOUT - SIGTERM the PID (only if its command
# line contains SUBSTRING), wait until it has exited; after TIMEOUT seconds
# SIGKILL it and return 1.  Reaps it when it is a child of this shell.
_lab_stop_pid() {
    local pid=$1 want=$2 timeout=$3
    if ! _lab_alive "$pid" "$want"; then
        wait "$pid" 2>/dev/null || true
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    if lab_wait "$timeout" eval '! _lab_alive '"$pid"; then
        wait "$pid" 2>/dev/null || true
        return 0
    fi
    _lab_msg "PID $pid did not exit within ${timeout}s after SIGTERM; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    lab_wait 10 eval '! _lab_alive '"$pid" || true
    wait "$pid" 2>/dev/null || true
    return 1
}

# _lab_spawn LOGFILE CMD... - start CMD in the background with stdin from
# /dev/null, stdout+stderr appended to LOGFILE and every other inherited file
# descriptor closed (so a harness waiting for EOF on a pipe is not held up by
# a daemon).  Sets _LAB_SPAWNED_PID to its PID ($! - the subshell execs CMD).
_lab_spawn() {
    local log=$1
    shift
    (
        for _lab_fd in "/proc/$BASHPID/fd"/*; do
            _lab_fd=${_lab_fd##*/}
            case $_lab_fd in '' | *[!0-9]*) continue ;; esac
            if [ "$_lab_fd" -gt 2 ]; then
                eval "exec $_lab_fd>&-" || true
            fi
        done
        exec "$@" </dev/null >>"$log" 2>&1
    ) &
    _LAB_SPAWNED_PID=$!
}

_lab_log_tail() {
    if [ -f "$1" ]; then
        _lab_msg "last lines of $1:"
        tail -n "${2:-15}" "$1" >&2 || true
    fi
}

# ---- lab_init ----------------------------------------------------------------

# lab_init DIR - create DIR (mkdir -p) and set LAB_DIR (absolute), LAB_LOG_DIR
# ($LAB_DIR/log), LAB_DK_DIR, LAB_HX_DIR, LAB_RUN_DIR and the socket paths.
#
# UNIX socket paths are limited to 108 bytes, and dockerd makes sockets deep
# inside its exec-root (<exec-root>/containerd/containerd-debug.sock, 41 bytes
# below LAB_RUN_DIR).  So when $LAB_DIR is longer than 60 bytes, the sockets
# (docker.sock, master.sock, admin.sock) and Docker's exec-root go to a short
# directory made with mktemp -d /tmp/dtlab.XXXX (recorded in $LAB_DIR/rundir,
# removed by lab_cleanup); everything else stays under $LAB_DIR.
lab_init() {
    if [ $# -ne 1 ] || [ -z "$1" ]; then
        _lab_msg "usage: lab_init DIR"
        return 2
    fi
    mkdir -p "$1" || return 1
    LAB_DIR=$(cd "$1" && pwd -P) || return 1
    LAB_LOG_DIR=$LAB_DIR/log
    LAB_DK_DIR=$LAB_DIR/dk
    LAB_HX_DIR=$LAB_DIR/hx
    mkdir -p "$LAB_LOG_DIR" "$LAB_DK_DIR" "$LAB_HX_DIR" || return 1
    LAB_RUN_DIR=$LAB_DIR
    if [ "${#LAB_DIR}" -gt 60 ]; then
        LAB_RUN_DIR=
        if [ -f "$LAB_DIR/rundir" ]; then
            LAB_RUN_DIR=$(cat "$LAB_DIR/rundir")
            [ -d "$LAB_RUN_DIR" ] || LAB_RUN_DIR=
        fi
        if [ -z "$LAB_RUN_DIR" ]; then
            LAB_RUN_DIR=$(mktemp -d /tmp/dtlab.XXXX) || return 1
            printf '%s\n' "$LAB_RUN_DIR" >"$LAB_DIR/rundir"
        fi
    fi
    mkdir -p "$LAB_RUN_DIR/dk" "$LAB_RUN_DIR/hx" || return 1
    LAB_DOCKER_SOCK=$LAB_RUN_DIR/dk/docker.sock
    LAB_HX_MASTER_SOCK=$LAB_RUN_DIR/hx/master.sock
    LAB_HX_ADMIN_SOCK=$LAB_RUN_DIR/hx/admin.sock
    # Pick up what an earlier lab_init on the same DIR (maybe in another
    # shell) started and recorded.
    if [ -f "$LAB_DK_DIR/lab-dockerd.pid" ]; then
        LAB_DOCKERD_PID=$(cat "$LAB_DK_DIR/lab-dockerd.pid")
        LAB_STARTED_DOCKER=1
    fi
    if [ -f "$LAB_HX_DIR/lab-haproxy.pid" ]; then
        LAB_HAPROXY_PID=$(cat "$LAB_HX_DIR/lab-haproxy.pid")
        LAB_STARTED_HAPROXY=1
    fi
    touch "$LAB_DIR/services"
    export LAB_DIR LAB_LOG_DIR LAB_DK_DIR LAB_HX_DIR LAB_RUN_DIR \
        LAB_DOCKER_SOCK LAB_HX_MASTER_SOCK LAB_HX_ADMIN_SOCK LAB_DOCKER
}

# ---- Docker ----------------------------------------------------------------

_lab_dockerd_alive() {
    [ -n "${LAB_DOCKERD_PID:-}" ] && _lab_alive "$LAB_DOCKERD_PID" "$LAB_DOCKER_SOCK"
}

_lab_dockerd_spawn() {
    mkdir -p "$LAB_DK_DIR/data" "$LAB_RUN_DIR/dk/exec" || return 1
    rm -f "$LAB_DOCKER_SOCK"
    printf '\n==== lab: dockerd start %s ====\n' "$(date '+%F %T')" \
        >>"$LAB_DK_DIR/dockerd.log"
    _lab_spawn "$LAB_DK_DIR/dockerd.log" "$LAB_DOCKERD" \
        --host "unix://$LAB_DOCKER_SOCK" \
        --data-root "$LAB_DK_DIR/data" \
        --exec-root "$LAB_RUN_DIR/dk/exec" \
        --pidfile "$LAB_DK_DIR/docker.pid" \
        --iptables=false --storage-driver=vfs
    LAB_DOCKERD_PID=$_LAB_SPAWNED_PID
    printf '%s\n' "$LAB_DOCKERD_PID" >"$LAB_DK_DIR/lab-dockerd.pid"
    LAB_STARTED_DOCKER=1
    export DOCKER_HOST=unix://$LAB_DOCKER_SOCK
}

_lab_docker_answers() { dk info --format '{{.ID}}' >/dev/null 2>&1; }

_lab_swarm_ready() {
    [ "$(dk info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" = true ] &&
        dk node ls -q >/dev/null 2>&1
}

# _lab_wait_dockerd TIMEOUT PRED - wait for PRED while our dockerd lives.
_lab_wait_dockerd() {
    local timeout=$1 pred=$2
    if lab_wait "$timeout" eval "$pred"' || ! _lab_dockerd_alive'; then
        if _lab_dockerd_alive; then
            return 0
        fi
        _lab_msg "dockerd (PID $LAB_DOCKERD_PID) exited"
    else
        _lab_msg "dockerd did not get ready within ${timeout}s"
    fi
    _lab_log_tail "$LAB_DK_DIR/dockerd.log"
    return 1
}

# lab_docker_up - make sure an active swarm manager answers and DOCKER_HOST
# (exported) points to it.
#   * DOCKER_HOST set, answering, and a swarm manager: reuse it,
#     LAB_STARTED_DOCKER=0.
#   * the dockerd a previous lab_docker_up on the same LAB_DIR started is still
#     alive: reuse it, LAB_STARTED_DOCKER=1.
#   * otherwise start dockerd (LAB.md flags; socket, data-root, exec-root and
#     pidfile under $LAB_DIR/dk - see lab_init for long paths), wait up to
#     LAB_DOCKER_TIMEOUT s for `docker info`, `docker swarm init
#     --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377` unless the
#     data-root already holds a swarm (then wait for it to come back),
#     LAB_STARTED_DOCKER=1.
# Returns 0 when the swarm manager is usable, 1 otherwise.
# A dockerd killed before it cleaned up can leave an overlay network's
# vxlan interface in the host's namespace, and a later dockerd then fails
# every task on an overlay network of that VNI ("error creating vxlan
# interface: file exists").  Say so, and how to clear it; not done here,
# as the interface may not be this lab's.
_lab_stale_vxlan_warning() {
    local l
    for l in $(ip -o link show type vxlan 2>/dev/null | awk -F': ' '$2 ~ /^vx-/ { print $2 }'); do
        _lab_msg "warning: stale vxlan interface $l in the host namespace:" \
            "overlay networks of its VNI will fail; remove it with: ip link delete $l"
    done
}

lab_docker_up() {
    _lab_need_init || return 1
    if [ -n "${DOCKER_HOST:-}" ] &&
        [ "$(dk info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" = true ]; then
        export DOCKER_HOST
        LAB_STARTED_DOCKER=0
        LAB_DOCKERD_PID=
        _lab_msg "reusing the swarm manager at DOCKER_HOST=$DOCKER_HOST"
        return 0
    fi
    if _lab_dockerd_alive; then
        export DOCKER_HOST=unix://$LAB_DOCKER_SOCK
        LAB_STARTED_DOCKER=1
        _lab_msg "reusing the lab's dockerd (PID $LAB_DOCKERD_PID)"
    else
        _lab_stale_vxlan_warning
        _lab_dockerd_spawn || return 1
    fi
    _lab_wait_dockerd "$LAB_DOCKER_TIMEOUT" _lab_docker_answers || return 1
    local state
    state=$(dk info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null) || state=
    if [ "$state" = inactive ] && [ ! -e "$LAB_DK_DIR/data/swarm/docker-state.json" ]; then
        if ! dk swarm init --advertise-addr 127.0.0.1 \
            --listen-addr 127.0.0.1:2377 >>"$LAB_DK_DIR/swarm-init.log" 2>&1; then
            _lab_msg "docker swarm init failed:"
            _lab_log_tail "$LAB_DK_DIR/swarm-init.log"
            return 1
        fi
    fi
    _lab_wait_dockerd "$LAB_DOCKER_TIMEOUT" _lab_swarm_ready || return 1
}

# lab_docker_stop - stop the lab's dockerd (SIGTERM by recorded PID; wait up
# to LAB_STOP_TIMEOUT s, then SIGKILL it and its containerd and return 1).
# Returns 2 with a message when the lab did not start dockerd.
lab_docker_stop() {
    _lab_need_init || return 1
    if [ "${LAB_STARTED_DOCKER:-0}" != 1 ]; then
        _lab_msg "dockerd was not started by the lab; not stopping it"
        return 2
    fi
    local rc=0 cpid
    if [ -n "${LAB_DOCKERD_PID:-}" ]; then
        _lab_stop_pid "$LAB_DOCKERD_PID" "$LAB_DOCKER_SOCK" "$LAB_STOP_TIMEOUT" || rc=1
    fi
    # dockerd stops its containerd itself; only after a SIGKILL may it linger.
    cpid=$(cat "$LAB_RUN_DIR/dk/exec/containerd/containerd.pid" 2>/dev/null) || cpid=
    if [ -n "$cpid" ] && _lab_alive "$cpid" "$LAB_RUN_DIR/dk/exec/containerd/"; then
        _lab_stop_pid "$cpid" "$LAB_RUN_DIR/dk/exec/containerd/" 20 || rc=1
    fi
    rm -f "$LAB_DK_DIR/lab-dockerd.pid"
    LAB_DOCKERD_PID=
    return $rc
}

# lab_docker_start - start the lab's dockerd again on the same data-root (after
# lab_docker_stop) and wait up to LAB_DOCKER_RESTART_TIMEOUT s until it is an
# active swarm manager again (ControlAvailable=true and `docker node ls`
# works).  Services survive; their tasks are replaced by new ones (new task
# IDs, new containers, possibly different host ports) after the services'
# restart delay (Docker default 5s).  Returns 2 when the lab did not start
# dockerd, 0 when it is already running.
lab_docker_start() {
    _lab_need_init || return 1
    if [ "${LAB_STARTED_DOCKER:-0}" != 1 ]; then
        _lab_msg "dockerd was not started by the lab; not starting it"
        return 2
    fi
    if _lab_dockerd_alive; then
        _lab_msg "the lab's dockerd (PID $LAB_DOCKERD_PID) is already running"
        export DOCKER_HOST=unix://$LAB_DOCKER_SOCK
        return 0
    fi
    _lab_dockerd_spawn || return 1
    _lab_wait_dockerd "$LAB_DOCKER_RESTART_TIMEOUT" _lab_swarm_ready
}

# lab_image - create $LAB_IMAGE (dovetail-demo:1) with `docker import` from a
# busybox rootfs (/bin/busybox and links sh httpd hostname cat echo sleep
# mkdir) unless it exists.
lab_image() {
    _lab_need_init || return 1
    if dk image inspect "$LAB_IMAGE" >/dev/null 2>&1; then
        return 0
    fi
    local root a rc=0
    root=$(mktemp -d "$LAB_DIR/rootfs.XXXX") || return 1
    mkdir -p "$root/bin" "$root/tmp" "$root/www" &&
        cp "$LAB_BUSYBOX" "$root/bin/busybox" &&
        chmod 1777 "$root/tmp" &&
        echo hello >"$root/www/index.html" || rc=1
    for a in sh httpd hostname cat echo sleep mkdir; do
        ln -sf busybox "$root/bin/$a" || rc=1
    done
    if [ $rc = 0 ]; then
        tar -C "$root" -c . | dk import - "$LAB_IMAGE" >/dev/null || rc=1
    fi
    rm -rf "$root"
    [ $rc = 0 ] || _lab_msg "could not create image $LAB_IMAGE"
    return $rc
}

# lab_demo_service NAME REPLICAS [EXTRA docker service create ARGS...] -
# create (without waiting: --detach) a service of $LAB_IMAGE whose tasks
# answer HTTP on container port 8080 with their container hostname (the task
# container's short ID) plus a newline, published in host mode (a new host
# port per task on 0.0.0.0/::, reach it on 127.0.0.1), with --init and
# --no-resolve-image (no registry look-up, no warning).  EXTRA args (labels,
# --restart-delay, --endpoint-mode dnsrr, --network ...) go before the image.
# Prints the service ID.  The name is recorded for lab_cleanup.  Fails if the
# service exists already.  --detach returns in ~0.05s and 2 tasks run ~1s
# later; --detach=false would block ~6s (the CLI's 5s stability check).
# Tip: pass --restart-delay 0s to get tasks back ~1.7s (not ~6s) after
# lab_docker_start or after a task dies.
lab_demo_service() {
    _lab_need_init || return 1
    if [ $# -lt 2 ]; then
        _lab_msg "usage: lab_demo_service NAME REPLICAS [docker service create args...]"
        return 2
    fi
    local name=$1 replicas=$2
    shift 2
    if dk service inspect "$name" >/dev/null 2>&1; then
        _lab_msg "service $name exists already"
        return 1
    fi
    if ! grep -qxF -- "$name" "$LAB_DIR/services" 2>/dev/null; then
        printf '%s\n' "$name" >>"$LAB_DIR/services"
    fi
    dk service create --detach --quiet --no-resolve-image \
        --name "$name" --replicas "$replicas" --init \
        --publish mode=host,target=8080 \
        "$@" "$LAB_IMAGE" \
        sh -c 'mkdir -p /tmp/w && hostname >/tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w'
}

# lab_graceful_service NAME REPLICAS [docker service create args...] - like
# lab_demo_service, routed as NAME.local on port 8080, but the app also
# answers POST /cgi-bin/post, and told to stop it goes on serving for 3 s
# (a user's graceful shutdown within stop-grace-period): a drained task is
# still alive then, so a request HAProxy sent it would be answered.
lab_graceful_service() {
    _lab_need_init || return 1
    local name=$1 replicas=$2
    shift 2
    printf '%s\n' "$name" >>"$LAB_DIR/services"
    dk service create --detach --quiet --no-resolve-image --name "$name" \
        --replicas "$replicas" --init --restart-delay 0s \
        --stop-grace-period 10s --publish mode=host,target=8080 \
        --label "com.docker.lb.hosts=$name.local" \
        --label com.docker.lb.port=8080 "$@" "$LAB_IMAGE" \
        sh -c 'mkdir -p /tmp/w/cgi-bin && hostname >/tmp/w/index.html &&
            printf "#!/bin/sh\\necho Content-Type: text/plain\\necho\\nhostname\\ncat >/dev/null\\n" >/tmp/w/cgi-bin/post &&
            chmod +x /tmp/w/cgi-bin/post &&
            httpd -f -p 8080 -h /tmp/w & pid=$!;
            trap "sleep 3; kill \$pid; exit 0" TERM; wait $pid' >/dev/null
}

# lab_load_start PORT HOST - background load through HAProxy on 127.0.0.1:PORT
# for HOST: a GET of / and a POST to /cgi-bin/post (lab_graceful_service's
# app) in a loop, one "GET 200" or "POST 200" line per request in
# $LAB_DIR/load.out, until lab_load_stop.
lab_load_start() {
    _lab_need_init || return 1
    local port=$1 host=$2
    rm -f "$LAB_DIR/load.stop"
    (
        while [ ! -e "$LAB_DIR/load.stop" ]; do
            curl -s -o /dev/null -w 'GET %{http_code}\n' --max-time 5 \
                -H "Host: $host" "http://127.0.0.1:$port/"
            curl -s -o /dev/null -w 'POST %{http_code}\n' --max-time 5 \
                -H "Host: $host" -d 'x=1' "http://127.0.0.1:$port/cgi-bin/post"
        done
    ) >"$LAB_DIR/load.out" 2>&1 &
    LAB_LOAD_PID=$!
}

# lab_load_stop - stop the load and wait for it.
lab_load_stop() {
    touch "$LAB_DIR/load.stop"
    [ -n "${LAB_LOAD_PID:-}" ] && wait "$LAB_LOAD_PID"
    LAB_LOAD_PID=
}

# lab_load_failures, lab_load_total - the requests of the last load that
# did not get a 200, and all of them.
lab_load_failures() { grep -v -c -E '^(GET|POST) 200$' "$LAB_DIR/load.out"; }
lab_load_total() { grep -c . "$LAB_DIR/load.out"; }

# lab_running_ports NAME - print, one per line, sorted, without duplicates,
# the host-mode published ports of NAME's tasks whose desired state and
# current state are both "running".  Docker lists each host-mode port twice
# in a task's PortStatus, IPv4 first, then IPv6, and the two may differ
# (one task's IPv6 port may even be another's IPv4 port): only the first,
# the one 127.0.0.1 reaches and dovetail routes to, is printed.  Prints nothing
# when no task runs; returns 1 when the service does not exist.
lab_running_ports() {
    if [ $# -ne 1 ]; then
        _lab_msg "usage: lab_running_ports NAME"
        return 2
    fi
    local ids
    ids=$(dk service ps --no-trunc --quiet --filter desired-state=running "$1" 2>/dev/null) || return 1
    [ -n "$ids" ] || return 0
    # shellcheck disable=SC2086
    dk inspect --type task --format '{{if and (eq .DesiredState "running") (eq .Status.State "running") .Status.PortStatus.Ports}}{{with index .Status.PortStatus.Ports 0}}{{if eq .PublishMode "host"}}{{.PublishedPort}}{{"\n"}}{{end}}{{end}}{{end}}' \
        $ids 2>/dev/null | awk 'NF' | sort -n -u
    return 0
}

# lab_dovetail_conf FILE DOCKER_URL GENERATED BASE HTTP_PORT - writes a
# dovetail configuration for this lab's HAProxy sockets, HAProxy binding
# 127.0.0.1:HTTP_PORT.  Callers append more sections ([agent], ...).
lab_dovetail_conf() {
    _lab_need_init || return 1
    cat >"$1" <<EOF
; written by tests/lab.sh
[docker]
url = $2
[haproxy]
runtime_socket = $LAB_HX_ADMIN_SOCK
master_socket = $LAB_HX_MASTER_SOCK
config = $3
base_config = $4
binary = $LAB_HAPROXY
[routing]
http_bind = 127.0.0.1:$5
EOF
}

# lab_haproxy_base FILE - writes a base HAProxy file for this lab's HAProxy:
# the admin socket dovetail needs, bounded old workers, HTTP defaults with
# short timeouts.  Callers append more ("timeout tunnel ...").
lab_haproxy_base() {
    _lab_need_init || return 1
    cat >"$1" <<EOF
global
	stats socket $LAB_HX_ADMIN_SOCK mode 600 level admin expose-fd listeners
	stats timeout 30s
	hard-stop-after 30s
defaults
	mode http
	option idle-close-on-response
	timeout connect 2s
	timeout client 30s
	timeout server 30s
EOF
}

# ---- routing assertions ------------------------------------------------------

# lab_expected NAME - the hostnames of NAME's running tasks, asked of each
# task directly on its published port, sorted.
lab_expected() {
    local p
    for p in $(lab_running_ports "$1"); do
        curl -s --max-time 3 "http://127.0.0.1:$p/"
    done | sort -u
}

# lab_served PORT HOST N - the distinct hostnames that answer N requests for
# HOST through the HAProxy listening on 127.0.0.1:PORT, sorted.
lab_served() {
    local i
    for ((i = 0; i < $3; i++)); do
        curl -s --max-time 3 -H "Host: $2" "http://127.0.0.1:$1/"
        echo
    done | grep -v '^$' | grep -v -i 'html' | sort -u
}

# lab_routes_exactly PORT HOST NAME N - HAProxy on 127.0.0.1:PORT sends HOST
# to exactly the N running tasks of NAME, no more and no fewer.  The tasks
# are asked who they are by lab_expected, or by the function named in
# LAB_EXPECTED (tests/multinode.sh: tasks on other nodes).
lab_routes_exactly() {
    local want got
    want=$("${LAB_EXPECTED:-lab_expected}" "$3")
    [ "$(printf '%s\n' "$want" | grep -c .)" -eq "$4" ] || return 1
    got=$(lab_served "$1" "$2" $(($4 * 2 + 2)))
    [ "$want" = "$got" ]
}

# lab_update_done NAME - the last `docker service update` of NAME completed.
lab_update_done() {
    [ "$(dk service inspect -f '{{.UpdateStatus.State}}' "$1" 2>/dev/null)" = completed ]
}

# lab_admin CMD - send one command to the lab HAProxy's runtime API (the
# admin socket at $LAB_HX_ADMIN_SOCK), print the answer.
lab_admin() {
    printf '%s\n' "$1" | "$LAB_SOCAT" - "UNIX-CONNECT:$LAB_HX_ADMIN_SOCK"
}

# lab_servers_ready BACKEND N - exactly N servers of BACKEND are up and
# ready (operational state 2, no admin flag: not draining, not in
# maintenance).
lab_servers_ready() {
    [ "$(lab_admin "show servers state $1" |
        awk '$1 ~ /^[0-9]+$/ && NF > 10 && $6 == 2 && $7 == 0' | wc -l)" -eq "$2" ]
}

# lab_pools_as_file BACKEND - every server of BACKEND keeps idle
# connections to its task as a server written in the file does ("show
# servers conn": purge_delay 5000, idle_lim -1); HAProxy 2.6 gives a server
# added at run time none unless told.
lab_pools_as_file() {
    lab_admin "show servers conn $1" |
        awk -v b="$1/" 'index($1, b) == 1 { n++; if ($6 == 5000 && $12 == -1) ok++ }
            END { exit !(n > 0 && ok == n) }'
}

# ---- HAProxy -----------------------------------------------------------------

_lab_haproxy_alive() {
    [ -n "${LAB_HAPROXY_PID:-}" ] && _lab_alive "$LAB_HAPROXY_PID" "$LAB_HX_MASTER_SOCK"
}

# lab_haproxy_cmd CMD... - send one command line to the master CLI, print the
# answer.
lab_haproxy_cmd() {
    _lab_need_init || return 1
    printf '%s\n' "$*" | "$LAB_SOCAT" -t 2 - "UNIX-CONNECT:$LAB_HX_MASTER_SOCK" 2>/dev/null
}

_lab_haproxy_answers() {
    local out
    out=$(lab_haproxy_cmd show proc) || return 1
    case $out in *" master "*) return 0 ;; esac
    return 1
}

# _lab_haproxy_master_field N - field N of the `show proc` master line; retries
# up to 5s because the master socket is briefly gone while the master
# re-executes itself during a reload.
_lab_haproxy_master_field() {
    local field=$1 out='' line deadline
    deadline=$(( $(_lab_now_us) + 5000000 ))
    while :; do
        out=$(lab_haproxy_cmd show proc) || out=
        line=$(printf '%s\n' "$out" | awk '$2 == "master" { print; exit }')
        if [ -n "$line" ]; then
            printf '%s\n' "$line" | awk -v f="$field" '{ v = $f; gsub(/[^0-9]/, "", v); print v }'
            return 0
        fi
        [ "$(_lab_now_us)" -lt "$deadline" ] || break
        sleep 0.1
    done
    _lab_msg "the HAProxy master CLI $LAB_HX_MASTER_SOCK does not answer"
    return 1
}

# lab_haproxy_reloads - the master's reload count (`show proc`, master line,
# <reloads> column: from "2742  master  1 [failed: 0] ..." prints 1).  It
# counts failed reloads too.
lab_haproxy_reloads() { _lab_need_init || return 1; _lab_haproxy_master_field 3; }

# lab_haproxy_failed_reloads - the "[failed: N]" number of the master line.
# On HAProxy 2.6 it counts failed reloads since the last successful one (a
# successful reload resets it to 0).
lab_haproxy_failed_reloads() { _lab_need_init || return 1; _lab_haproxy_master_field 5; }

# lab_haproxy_reload - reload through the master CLI and wait (10s) until the
# reload count went up.  Returns 0 if the reload succeeded, 1 if it failed
# (the old worker keeps serving; see $LAB_HX_DIR/haproxy.log).
lab_haproxy_reload() {
    _lab_need_init || return 1
    local before
    before=$(lab_haproxy_reloads) || return 1
    lab_haproxy_cmd reload >/dev/null || true
    # shellcheck disable=SC2016
    if ! lab_wait 10 eval '[ "$(lab_haproxy_reloads 2>/dev/null)" -gt '"$before"' ] 2>/dev/null'; then
        _lab_msg "HAProxy reload count did not increase"
        return 1
    fi
    [ "$(lab_haproxy_failed_reloads)" = 0 ]
}

# lab_haproxy_up BASE_CFG GEN_CFG - start
#   haproxy -W -S $LAB_HX_MASTER_SOCK -p $LAB_HX_DIR/haproxy.pid -f BASE -f GEN
# in the background (master-worker, not daemonised; the master's PID is
# recorded in $LAB_HX_DIR/lab-haproxy.pid and LAB_HAPROXY_PID), output to
# $LAB_HX_DIR/haproxy.log, and wait (LAB_HAPROXY_TIMEOUT s) until the master
# CLI answers `show proc`.  Relative config paths are made absolute.  Returns 1
# if haproxy exits (bad config) or does not answer; 1 if the lab's haproxy
# already runs.
lab_haproxy_up() {
    _lab_need_init || return 1
    if [ $# -ne 2 ]; then
        _lab_msg "usage: lab_haproxy_up BASE_CFG GEN_CFG"
        return 2
    fi
    local base=$1 gen=$2
    case $base in /*) ;; *) base=$PWD/$base ;; esac
    case $gen in /*) ;; *) gen=$PWD/$gen ;; esac
    if _lab_haproxy_alive; then
        _lab_msg "the lab's haproxy (PID $LAB_HAPROXY_PID) already runs"
        return 1
    fi
    mkdir -p "$LAB_HX_DIR" "$LAB_RUN_DIR/hx" || return 1
    rm -f "$LAB_HX_MASTER_SOCK"
    printf '\n==== lab: haproxy start %s ====\n' "$(date '+%F %T')" \
        >>"$LAB_HX_DIR/haproxy.log"
    _lab_spawn "$LAB_HX_DIR/haproxy.log" "$LAB_HAPROXY" -W \
        -S "$LAB_HX_MASTER_SOCK" -p "$LAB_HX_DIR/haproxy.pid" \
        -f "$base" -f "$gen"
    LAB_HAPROXY_PID=$_LAB_SPAWNED_PID
    printf '%s\n' "$LAB_HAPROXY_PID" >"$LAB_HX_DIR/lab-haproxy.pid"
    LAB_STARTED_HAPROXY=1
    if lab_wait "$LAB_HAPROXY_TIMEOUT" eval '! _lab_haproxy_alive || _lab_haproxy_answers'; then
        if _lab_haproxy_alive; then
            return 0
        fi
        _lab_msg "haproxy exited"
    else
        _lab_msg "haproxy master CLI did not answer within ${LAB_HAPROXY_TIMEOUT}s"
    fi
    _lab_log_tail "$LAB_HX_DIR/haproxy.log"
    lab_haproxy_down || true
    return 1
}

# lab_haproxy_down - stop the lab's haproxy master (SIGTERM by recorded PID; it
# stops its workers), wait up to 10s (then SIGKILL, return 1).  Returns 0 when
# there is nothing to stop.
lab_haproxy_down() {
    _lab_need_init || return 1
    local rc=0
    if [ -n "${LAB_HAPROXY_PID:-}" ]; then
        _lab_stop_pid "$LAB_HAPROXY_PID" "$LAB_HX_MASTER_SOCK" 10 || rc=1
    fi
    rm -f "$LAB_HX_DIR/lab-haproxy.pid" "$LAB_HX_MASTER_SOCK"
    LAB_HAPROXY_PID=
    return $rc
}

# ---- clean-up ----------------------------------------------------------------

# lab_cleanup - remove the services lab_demo_service created, stop haproxy and
# dockerd if the lab started them (by PID), remove the short socket directory
# if one was made.  Safe to call twice and as `trap lab_cleanup EXIT` (keeps
# the exit status).
lab_cleanup() {
    local rc=$? s
    if [ -z "${LAB_DIR:-}" ] || [ -z "${LAB_DK_DIR:-}" ]; then
        return $rc
    fi
    if [ -s "$LAB_DIR/services" ] && _lab_docker_answers; then
        while IFS= read -r s; do
            [ -n "$s" ] || continue
            dk service rm "$s" >/dev/null 2>&1 || true
        done <"$LAB_DIR/services"
    fi
    : >"$LAB_DIR/services" 2>/dev/null || true
    lab_haproxy_down || true
    if [ "${LAB_STARTED_DOCKER:-0}" = 1 ]; then
        lab_docker_stop || true
    fi
    if [ "${LAB_RUN_DIR:-}" != "$LAB_DIR" ] && [ -n "${LAB_RUN_DIR:-}" ] &&
        [ -d "$LAB_RUN_DIR" ] && ! _lab_dockerd_alive &&
        ! grep -qF " $LAB_RUN_DIR/" /proc/mounts; then
        case $LAB_RUN_DIR in
            /tmp/dtlab.*) rm -rf "$LAB_RUN_DIR" && rm -f "$LAB_DIR/rundir" ;;
        esac
    fi
    return $rc
}
