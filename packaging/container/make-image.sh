#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# make-image.sh - build the images of Dockerfile without `docker build` or
# a registry: from this machine's own files (Debian 12), with `docker
# import`.
#
#   packaging/container/make-image.sh dovetail [TAG]   (dovetail:VERSION)
#   packaging/container/make-image.sh haproxy [TAG]    (dovetail-haproxy:VERSION)
#
# dovetail: builds dovetail from this source tree (configure --prefix=/usr
# --sysconfdir=/etc --localstatedir=/var, make, make install DESTDIR) in a
# temporary directory.  Both images hold HAProxy (/usr/sbin/haproxy, for
# `haproxy -c` in dovetail's), the shared libraries `ldd` lists for their
# programs and the dynamic loader, busybox (static) for the shell the
# scripts need, the CA certificates, /etc/passwd and /etc/group with root
# and the dovetail user (10001:10001), /var/lib/dovetail owned by it (a
# volume mounted there starts with that owner) and the base HAProxy file
# haproxy.cfg beside this script; HAProxy's also the read-only Docker API
# proxy of packaging/docker-api-proxy.cfg, listening on the shared volume.
# The image is written in the format of `docker save` - one layer, and a
# configuration with the settings of the Dockerfile's stages (user,
# entrypoint, command, stop signal, health check), which `docker import
# --change` cannot all set - and given to `docker load`.
#
# Needs the docker CLI (DOCKER_HOST as usual), busybox-static, haproxy,
# ca-certificates and dovetail's build dependencies.  The build directory is
# removed afterwards unless KEEP_BUILD=1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
what=${1:-}
version=$(sed -n 's/^AC_INIT(\[dovetail\], \[\([^]]*\)\].*/\1/p' "$top/configure.ac")
case $what in
dovetail) tag=${2:-dovetail:$version} ;;
haproxy) tag=${2:-dovetail-haproxy:$version} ;;
*)
	echo "usage: $0 dovetail|haproxy [TAG]" >&2
	exit 2
	;;
esac
: "${DOCKER:=docker}"
: "${BUSYBOX:=/bin/busybox}"
: "${HAPROXY:=/usr/sbin/haproxy}"
: "${CA_BUNDLE:=/etc/ssl/certs/ca-certificates.crt}"
DT_UID=10001

work=$(mktemp -d "${TMPDIR:-/tmp}/dovetail-image.XXXXXX")
cleanup() {
	if [ "${KEEP_BUILD:-0}" = 1 ]; then
		echo "make-image: kept $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
root=$work/root
mkdir -p "$root"
chmod 755 "$root"   # the image's "/", for the non-root user

# copy_with_libs FILE [DEST] - copy FILE to DEST (by default the same path)
# under $root, with the shared libraries it needs (as ldd resolves them
# here) and the dynamic loader.
copy_with_libs() {
	local f=$1 dest=${2:-$1} lib
	install -D -m 755 "$f" "$root$dest"
	# Libraries (mode 644) and the dynamic loader (755: the kernel
	# executes it), each under the name the program asks for (often a
	# symbolic link to a versioned file).
	ldd "$f" | awk '
		$2 == "=>" && $3 ~ /^\// { print "644", $3 }
		$1 ~ /^\// { print "755", $1 }' | while read -r mode lib; do
		[ -e "$root$lib" ] || install -D -m "$mode" "$(readlink -f "$lib")" "$root$lib"
	done
}

# ---- the parts both images share --------------------------------------------
copy_with_libs "$HAPROXY"
mkdir -p "$root/bin" "$root/etc/ssl/certs" "$root/etc/haproxy" \
	"$root/var/lib/dovetail" "$root/tmp" "$root/usr/local/bin"
install -m 755 "$BUSYBOX" "$root/bin/busybox"
for applet in sh cat cmp grep mkdir mktemp mv printf rm sed sleep tail tr; do
	ln -s busybox "$root/bin/$applet"
done
install -m 644 "$CA_BUNDLE" "$root/etc/ssl/certs/ca-certificates.crt"
install -m 644 "$here/haproxy.cfg" "$root/etc/haproxy/haproxy.cfg"
cat >"$root/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/bin/sh
dovetail:x:$DT_UID:$DT_UID:dovetail:/var/lib/dovetail:/bin/false
PASSWD
cat >"$root/etc/group" <<GROUP
root:x:0:
dovetail:x:$DT_UID:
GROUP
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
chmod 1777 "$root/tmp"
chown "$DT_UID:$DT_UID" "$root/var/lib/dovetail"
chmod 775 "$root/var/lib/dovetail"

# JSON of the image settings (see the Dockerfile).
path_env='"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]'
if [ "$what" = dovetail ]; then
	build=$work/build
	mkdir -p "$build"
	if [ ! -x "$top/configure" ]; then
		(cd "$top" && ./autogen.sh) >"$work/autogen.log" 2>&1 ||
			{ cat "$work/autogen.log" >&2; exit 1; }
	fi
	(
		cd "$build" &&
			"$top/configure" -q --prefix=/usr --sysconfdir=/etc \
				--localstatedir=/var &&
			make -s -j"$(nproc)" &&
			make -s install DESTDIR="$work/stage"
	) >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; exit 1; }
	# The freshly built binary, not one that may be installed here.
	copy_with_libs "$work/stage/usr/sbin/dovetail" /usr/sbin/dovetail
	copy_with_libs "$work/stage/usr/sbin/dovetailctl" /usr/sbin/dovetailctl
	install -D -m 644 "$here/dovetail.conf" "$root/etc/dovetail/dovetail.conf"
	install -m 755 "$here/dovetail-healthcheck" "$root/usr/local/bin/dovetail-healthcheck"
	settings='"User":"10001:10001",'$path_env',"Entrypoint":["/usr/sbin/dovetail"],"Cmd":["-c","/etc/dovetail/dovetail.conf"],"StopSignal":"SIGTERM","Healthcheck":{"Test":["CMD","/usr/local/bin/dovetail-healthcheck"],"Interval":30000000000,"Timeout":30000000000,"StartPeriod":60000000000,"Retries":3}'
else
	install -m 755 "$here/haproxy-entrypoint" "$root/usr/local/bin/haproxy-entrypoint"
	sed -f "$here/docker-api-proxy.sed" "$top/packaging/docker-api-proxy.cfg" \
		>"$root/etc/haproxy/docker-api-proxy.cfg"
	grep -q '^\s*bind /var/lib/dovetail/docker-api.sock ' "$root/etc/haproxy/docker-api-proxy.cfg" ||
		{ echo "make-image: docker-api-proxy.sed did not apply" >&2; exit 1; }
	settings=$path_env',"Entrypoint":["/usr/local/bin/haproxy-entrypoint"],"StopSignal":"SIGUSR1"'
fi

# The image, as `docker save` writes it.
image=$work/image
mkdir -p "$image"
tar -C "$root" --numeric-owner --sort=name -cf "$work/layer.tar" .
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
mkdir -p "$image/$diff_id"
mv "$work/layer.tar" "$image/$diff_id/layer.tar"
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
printf '{"architecture":"amd64","os":"linux","created":"%s","config":{%s,"Labels":{"org.opencontainers.image.title":"%s","org.opencontainers.image.version":"%s"}},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"%s","created_by":"packaging/container/make-image.sh %s"}]}' \
	"$created" "$settings" "$what" "$version" "$diff_id" "$created" "$what" >"$work/config.json"
config_id=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mv "$work/config.json" "$image/$config_id.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' \
	"$config_id" "$tag" "$diff_id" >"$image/manifest.json"
tar -C "$image" -cf - . | "$DOCKER" load >/dev/null
echo "$tag"
