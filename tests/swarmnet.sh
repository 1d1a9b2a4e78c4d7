#!/bin/bash
# SPDX-License-Identifier: ISC
# tests/swarmnet.sh: a Docker swarm of several nodes on one machine, for
# tests/multinode.sh.  Each node is a dockerd in a network namespace of
# its own (and a UTS namespace, so that the nodes' hostnames differ),
# joined by veth pairs to a bridge in the host's namespace; the host
# (where HAProxy and dovetail run, as a load-balancer node outside the
# swarm) reaches node N at 10.99.0.(10+N).
#
#   swarmnet.sh up          3 managers (dtn1..dtn3) + 1 worker (dtn4), the
#                           app image imported into each
#   swarmnet.sh down        everything made here removed (dockerds stopped
#                           by PID, namespaces, links, cgroups, files)
#   swarmnet.sh stop N [kill]   node N's dockerd stopped (SIGTERM, SIGKILL)
#   swarmnet.sh kill N      node N lost: every process in its namespace
#                           killed, dockerd and containers alike
#   swarmnet.sh start N     node N's dockerd started again
#   swarmnet.sh sock N      the path of node N's Docker socket
#
# DTMN_ROOT=<a Debian 13 tree, tests/trixie.sh> runs that tree's dockerd
# in each node instead of the host's; DTMN_BASE must then be under /tmp.
#
# Nothing of the host's own dockerd is touched: each node has its own
# sockets, data and exec roots, pidfile, cgroup parent /dtmnN, an empty
# daemon.json, and its own containerd.  Only processes started here are
# stopped, by PID.
set -u
B=${DTMN_BASE:-/var/tmp/dovetail-multinode}
MANAGERS=${DTMN_MANAGERS:-3}
WORKERS=${DTMN_WORKERS:-1}
NODES=$((MANAGERS + WORKERS))
BR=dtmnbr0
NET=10.99.0
DOCKER=${DOCKER:-/usr/bin/docker}

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
dk() { local n=$1; shift; DOCKER_HOST=unix://$B/n$n/docker.sock "$DOCKER" "$@"; }

# Runs inside "ip netns exec dtnN unshare --uts": ip netns exec remounted /sys
# (so /sys/class/net shows this netns) and thereby dropped /sys/fs/cgroup;
# mount the same cgroup hierarchies again (private to this mount namespace).
node_inner() {
    local n=$1
    mount -t tmpfs -o mode=755 dtmn_cgroup /sys/fs/cgroup
    while read -r dir fstype opts; do
        mkdir -p "$dir"
        if [ "$fstype" = cgroup2 ]; then mount -t cgroup2 cgroup2 "$dir"
        else mount -t cgroup -o "${opts#rw,relatime,}" cgroup "$dir"; fi
    done <"$B/cgroup-mounts"
    hostname "dtn$n"
    local root=
    if [ -n "${DTMN_ROOT:-}" ]; then
        # Debian 13's dockerd, from the tree tests/trixie.sh makes ($B
        # under /tmp, which the tree shares): this node's /sys (its
        # network namespace, the cgroups above) and a /run of its own.
        mount --rbind /sys "$DTMN_ROOT/sys"
        mount -t tmpfs -o mode=755 dtmn_run "$DTMN_ROOT/run"
        root="chroot $DTMN_ROOT"
    fi
    exec $root dockerd --config-file "$B/n$n/daemon.json" \
        -H "unix://$B/n$n/docker.sock" \
        --data-root "$B/n$n/data" --exec-root "$B/n$n/exec" \
        --pidfile "$B/n$n/docker.pid" \
        --iptables=false --storage-driver=vfs \
        --bip "10.99.$((100 + n)).1/24" \
        --default-address-pool "base=10.98.0.0/16,size=24" \
        --cgroup-parent "/dtmn$n"
}

make_image() {
    local r=$B/rootfs
    [ -f "$B/demo.tar" ] && return
    rm -rf "$r"; mkdir -p "$r/bin" "$r/www" "$r/tmp"
    cp /bin/busybox "$r/bin/"
    for a in sh httpd hostname cat echo sleep mkdir printf chmod kill; do ln -sf busybox "$r/bin/$a"; done
    echo hello >"$r/www/index.html"
    tar -C "$r" -cf "$B/demo.tar" .
}

start_node() {
    local n=$1
    log "starting dockerd n$n in netns dtn$n ($NET.$((10 + n)))"
    setsid ip netns exec "dtn$n" unshare --uts "$(readlink -f "$0")" _inner "$n" \
        >>"$B/n$n/dockerd.log" 2>&1 </dev/null &
    echo $! >"$B/n$n/launcher.pid"
}

wait_node() {
    local n=$1 i
    for i in $(seq 1 120); do dk "$n" info >/dev/null 2>&1 && return 0; sleep 0.5; done
    log "dockerd n$n did not answer; see $B/n$n/dockerd.log"; return 1
}

# stop one node's dockerd by its PID (SIGTERM; SIGKILL with "stop N kill")
stop_node() {
    local n=$1 sig=${2:-TERM} p i
    p=$(cat "$B/n$n/docker.pid" 2>/dev/null) || { log "n$n: no pidfile"; return 1; }
    tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- "--pidfile $B/n$n/docker.pid" || { log "n$n: pid $p is not our dockerd"; return 1; }
    [ "$sig" = kill ] && sig=KILL
    log "stopping dockerd n$n pid $p (SIG$sig)"; kill -s "$sig" "$p"
    for i in $(seq 1 60); do [ -d "/proc/$p" ] || return 0; sleep 0.5; done
    log "n$n pid $p still alive after 30 s"; return 1
}

up() {
    local t0=$SECONDS n
    [ -e "$B/up.done" ] && { log "already up (run down first)"; return 1; }
    if ip link show "$BR" >/dev/null 2>&1 || ip netns list | grep -q '^dtn[0-9]'; then
        log "leftovers present, run down first"; return 1; fi
    mkdir -p "$B"
    awk '$3 ~ /^cgroup2?$/ {print $2, $3, $4}' /proc/self/mounts >"$B/cgroup-mounts"
    make_image

    ip link add "$BR" type bridge
    ip addr add "$NET.1/24" dev "$BR"
    ip link set "$BR" up
    for n in $(seq 1 $NODES); do
        mkdir -p "$B/n$n"
        echo '{}' >"$B/n$n/daemon.json"
        ip netns add "dtn$n"
        ip link add "dtmn${n}h" type veth peer name "dtmn${n}c"
        ip link set "dtmn${n}h" master "$BR" up
        ip link set "dtmn${n}c" netns "dtn$n"
        ip -n "dtn$n" link set lo up
        ip -n "dtn$n" link set "dtmn${n}c" name eth0
        ip -n "dtn$n" addr add "$NET.$((10 + n))/24" dev eth0
        ip -n "dtn$n" link set eth0 up
        start_node "$n"
    done
    for n in $(seq 1 $NODES); do
        wait_node "$n" || return 1
        log "dockerd n$n up, pid $(cat "$B/n$n/docker.pid")"
        dk "$n" import - demo:1 <"$B/demo.tar" >/dev/null
    done
    dk 1 swarm init --advertise-addr "$NET.11" --listen-addr "$NET.11:2377" \
        --default-addr-pool 10.97.0.0/16 >/dev/null || return 1
    local mtok wtok
    mtok=$(dk 1 swarm join-token -q manager); wtok=$(dk 1 swarm join-token -q worker)
    for n in $(seq 2 $NODES); do
        local tok=$wtok; [ "$n" -le "$MANAGERS" ] && tok=$mtok
        dk "$n" swarm join --token "$tok" --advertise-addr "$NET.$((10 + n))" \
            --listen-addr "$NET.$((10 + n)):2377" "$NET.11:2377" || return 1
    done
    for i in $(seq 1 60); do
        [ "$(dk 1 node ls --format '{{.Status}}' | grep -c Ready)" -eq "$NODES" ] && break; sleep 1
    done
    dk 1 node ls
    touch "$B/up.done"
    log "up took $((SECONDS - t0)) s"
}

down() {
    local n p pids alive=""
    for n in $(seq 1 9); do
        [ -d "$B/n$n" ] || continue
        p=$(cat "$B/n$n/docker.pid" 2>/dev/null)
        if [ -n "$p" ] && [ -r "/proc/$p/cmdline" ] && tr '\0' ' ' <"/proc/$p/cmdline" | grep -q -- "--pidfile $B/n$n/docker.pid"; then
            log "stopping dockerd n$n pid $p"; kill "$p"; alive="$alive $p"
        fi
    done
    for i in $(seq 1 60); do
        pids=""; for p in $alive; do [ -d "/proc/$p" ] && pids="$pids $p"; done
        [ -z "$pids" ] && break; sleep 0.5
    done
    [ -n "$pids" ] && { log "dockerd pids$pids still alive after 30 s, SIGKILL"; kill -9 $pids; sleep 1; }
    # leftovers we started: containerd/shims whose address is under $B
    pids=$(for d in /proc/[0-9]*; do
        tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -q -- "$B/n[0-9]*/exec/containerd" && echo "${d#/proc/}"; done)
    [ -n "$pids" ] && { log "killing leftover containerd/shim pids: $pids"; kill $pids; sleep 1; }
    for n in $(seq 1 9); do
        ip netns list | grep -q "^dtn$n\b" || continue
        # anything still inside the netns was started by us
        pids=$(ip netns pids "dtn$n" 2>/dev/null)
        [ -n "$pids" ] && { log "killing pids left in dtn$n: $pids"; kill -9 $pids; sleep 0.5; }
        ip netns del "dtn$n"
    done
    for n in $(seq 1 9); do ip link del "dtmn${n}h" 2>/dev/null; done
    ip link del "$BR" 2>/dev/null
    # cgroup parents /dtmnN in every hierarchy (depth-first rmdir)
    for c in /sys/fs/cgroup/*/; do
        for n in $(seq 1 9); do
            [ -d "$c/dtmn$n" ] && find "$c/dtmn$n" -depth -type d -exec rmdir {} + 2>/dev/null
        done
    done
    if grep -q " $B" /proc/self/mounts; then
        grep " $B" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l
    fi
    rm -rf "$B"
    log "down done"
}

# node N lost at once: its dockerd, containerd and containers killed
kill_node() {
    local n=$1 pids
    pids=$(ip netns pids "dtn$n" 2>/dev/null)
    [ -n "$pids" ] || { log "dtn$n: no process"; return 1; }
    log "killing every process of dtn$n: $(echo $pids)"
    kill -9 $pids
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    _inner) node_inner "$2" ;;
    kill) kill_node "$2" ;;
    sock) echo "$B/n$2/docker.sock" ;;
    stop) stop_node "$2" "${3:-TERM}" ;;
    start) start_node "$2"; wait_node "$2" ;;
    *) echo "usage: $0 up|down|stop N [kill]|kill N|start N|sock N" >&2; exit 2 ;;
esac
