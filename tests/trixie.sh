# shellcheck shell=bash
# SPDX-License-Identifier: ISC
#
# tests/trixie.sh - Debian 13's HAProxy 3.0 beside Debian 12's 2.6, for the
# end-to-end suites and the benchmarks.  Debian 13's packages cannot be
# installed on a Debian 12 host, so they run from a trixie tree made with
# mmdebstrap (cached in $TRIXIE_ROOT, about 30 s the first time) and entered
# with chroot.  The host's /tmp is bind-mounted at the tree's /tmp, so the
# files and sockets a test keeps under /tmp have the same path inside and
# out: the host's dovetail and the tree's HAProxy share them as they are.
#
#     . tests/trixie.sh
#     trixie_up || exit 1          # sets TRIXIE_HAPROXY and TRIXIE_DOCKERD,
#     trap trixie_down EXIT        # wrappers
#     LAB_HAPROXY=$TRIXIE_HAPROXY  # then as with Debian 12's
#     LAB_DOCKERD=$TRIXIE_DOCKERD  # Docker 26 (API 1.45) instead of 20.10
#
# dockerd wants the tree's / to be a mount point, and /sys and a /run of its
# own: the tree is bind-mounted on itself first (LAB.md).
#
# Only what trixie_up mounted is unmounted by trixie_down, so two scripts
# may share the tree.

: "${TRIXIE_ROOT:=/var/tmp/dovetail-trixie}"
: "${TRIXIE_PACKAGES:=haproxy,docker.io,busybox-static,ca-certificates}"
TRIXIE_HAPROXY=
TRIXIE_DOCKERD=
_trixie_mounted=()

_trixie_msg() { printf 'trixie: %s\n' "$*" >&2; }

# _trixie_mount TARGET MOUNT-ARGS... - mount unless TARGET is a mount point.
_trixie_mount() {
	local target=$1
	shift
	mountpoint -q "$target" && return 0
	mount "$@" "$target" || return 1
	_trixie_mounted+=("$target")
}

trixie_up() {
	local r=$TRIXIE_ROOT
	if [ ! -x "$r/usr/sbin/haproxy" ]; then
		if ! command -v mmdebstrap >/dev/null; then
			_trixie_msg "mmdebstrap is needed (apt-get install mmdebstrap)"
			return 1
		fi
		rm -rf "$r.new"
		_trixie_msg "making a Debian 13 tree in $r (once)"
		if ! mmdebstrap --quiet --variant=apt \
			--include="$TRIXIE_PACKAGES" trixie "$r.new" \
			>"$r.log" 2>&1; then
			_trixie_msg "mmdebstrap failed; see $r.log"
			tail -n 5 "$r.log" >&2
			return 1
		fi
		rm -rf "$r"
		mv "$r.new" "$r" || return 1
	fi
	_trixie_mount "$r" --bind "$r" || return 1
	mount --make-private "$r" || return 1
	_trixie_mount "$r/proc" -t proc proc || return 1
	# Slaves: an unmount under the tree never reaches the host's /dev.
	_trixie_mount "$r/dev" --rbind /dev || return 1
	mount --make-rslave "$r/dev" || return 1
	_trixie_mount "$r/sys" --rbind /sys || return 1
	mount --make-rslave "$r/sys" || return 1
	_trixie_mount "$r/run" -t tmpfs tmpfs || return 1
	_trixie_mount "$r/tmp" --bind /tmp || return 1
	mkdir -p "$r.bin" || return 1
	for b in haproxy dockerd; do
		printf '#!/bin/sh\n# %s of the Debian 13 tree %s\nexec chroot %s /usr/sbin/%s "$@"\n' \
			"$b" "$r" "$r" "$b" >"$r.bin/$b" || return 1
		chmod 755 "$r.bin/$b"
	done
	TRIXIE_HAPROXY=$r.bin/haproxy
	TRIXIE_DOCKERD=$r.bin/dockerd
	if ! "$TRIXIE_HAPROXY" -v >/dev/null 2>&1; then
		_trixie_msg "the tree's haproxy does not run"
		trixie_down
		return 1
	fi
	export TRIXIE_HAPROXY TRIXIE_DOCKERD
}

trixie_down() {
	local i
	for ((i = ${#_trixie_mounted[@]} - 1; i >= 0; i--)); do
		umount -R "${_trixie_mounted[$i]}" 2>/dev/null ||
			umount -R -l "${_trixie_mounted[$i]}" 2>/dev/null || true
	done
	_trixie_mounted=()
}
