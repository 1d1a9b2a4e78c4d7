#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Builds the Debian package of dovetail from this source tree.
#
#   packaging/build-deb.sh [OUTDIR]
#
# dpkg-buildpackage wants debian/ at the top of the source tree, and this
# tree keeps it in packaging/debian/: so the tree is copied to a temporary
# directory (the files git knows, committed or not, from a checkout; every
# file, from an unpacked `make dist` tarball), packaging/debian is put
# there as debian/, and `dpkg-buildpackage -us -uc -b` runs in it.  The
# .deb (and the .buildinfo and .changes) end up in OUTDIR, by default the
# current directory.  Needs build-essential, debhelper (>= 13) and the
# Build-Depends of packaging/debian/control (`apt-get build-dep` cannot
# read them from here: dpkg-checkbuilddeps, run by dpkg-buildpackage, names
# any that are missing).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-.}
mkdir -p "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/dovetail-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
version=$(sed -n 's/^AC_INIT(\[dovetail\], \[\([^]]*\)\].*/\1/p' "$top/configure.ac")
src=$work/dovetail-$version
mkdir -p "$src"

if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# Tracked and untracked-but-not-ignored files, as they are now; files
	# deleted in the work tree but still in the index are left out.
	(cd "$top" && git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do
			[ -e "$f" ] && printf '%s\0' "$f"
		done | tar --null -T - -cf -) | tar -C "$src" -xf -
else
	(cd "$top" && tar --exclude=./debian -cf - .) | tar -C "$src" -xf -
fi
rm -rf "$src/debian"
cp -a "$top/packaging/debian" "$src/debian"

changelog_version=$(cd "$src" && dpkg-parsechangelog -S Version)
if [ "$changelog_version" != "$version" ]; then
	echo "build-deb: configure.ac says $version, packaging/debian/changelog $changelog_version" >&2
	exit 1
fi

(cd "$src" && dpkg-buildpackage -us -uc -b)
for f in "$work"/dovetail*_"$version"_*.deb "$work"/dovetail_"$version"_*.buildinfo \
	"$work"/dovetail_"$version"_*.changes; do
	[ -e "$f" ] && cp "$f" "$out/"
done
ls "$out"/dovetail_"$version"_*.deb
