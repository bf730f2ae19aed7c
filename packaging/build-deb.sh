#!/bin/bash
# build-deb.sh OUTDIR [VERSION] — build the Debian binary packages (what
# `make deb` runs).
#
# Works on a copy of the tree so the checkout stays clean and a stale build/
# can't leak in: the files git knows (tracked, plus untracked ones that are
# not ignored; a plain tar minus build*/ without git) go to
# OUTDIR/src/kubexec-VERSION/, packaging/debian/ becomes its debian/, and
# `dpkg-buildpackage -us -uc -b` runs there. The .deb, .changes and .buildinfo
# files end up in OUTDIR, lintian's report in OUTDIR/lintian.txt (the build
# fails on a lintian error).
#
# VERSION, if given, is a new top changelog entry in the copy (dch style), for
# building an "upgrade" of the same tree; the checkout's changelog is not
# touched.
#
# The kubexec (CLI) package is built only when the tree builds src/cli (the
# top meson.build has subdir('src/cli')); otherwise it is left out of the
# copy's debian/control with a note, and OUTDIR/cli-missing says so; while
# man/meson.build does not install kubexec.1, the package goes without it
# (OUTDIR/cli-man-missing).
set -euo pipefail

usage() { echo "usage: $0 OUTDIR [VERSION]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
top=$(cd "$(dirname "$0")/.." && pwd)
out=$1
newver=${2:-}

for t in dpkg-buildpackage dh; do
	command -v "$t" >/dev/null || { echo "build-deb: $t missing: make deps-packages" >&2; exit 1; }
done

mkdir -p "$out"
out=$(cd "$out" && pwd)
case $out/ in "$top"/src/*|"$top"/packaging/*|"$top"/) echo "build-deb: OUTDIR inside the sources" >&2; exit 2;; esac
rm -rf "$out/src"
rm -f "$out"/*.deb "$out"/*.ddeb "$out"/*.changes "$out"/*.buildinfo "$out/lintian.txt" "$out/cli-missing" \
	"$out/cli-man-missing"

ver=$(dpkg-parsechangelog -l "$top/packaging/debian/changelog" -S Version)
[ -n "$newver" ] && ver=$newver
src=$out/src/kubexec-$ver
mkdir -p "$src"

# The tree: what git would put in a commit, as it is now in the work tree.
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$top" && git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		tar -cf - --no-recursion --null -T -) | tar -xf - -C "$src"
else
	(cd "$top" && tar -cf - --exclude='./build' --exclude='./build-*' --exclude='.git' .) | tar -xf - -C "$src"
fi
rm -rf "$src/debian"
cp -a "$top/packaging/debian" "$src/debian"

if ! grep -q "^ *subdir('src/cli')" "$src/meson.build"; then
	echo "build-deb: note: meson.build does not build src/cli yet: the kubexec (CLI) package is left out" >&2
	# Drop the "Package: kubexec" paragraph (paragraphs are blank-line separated).
	awk 'BEGIN { RS = ""; ORS = "\n\n" } !/^Package: kubexec\n/' "$src/debian/control" >"$src/debian/control.new"
	mv "$src/debian/control.new" "$src/debian/control"
	rm -f "$src/debian/kubexec.install"
	echo "src/cli is not in the build; kubexec (CLI) not built" >"$out/cli-missing"
elif ! grep -q "kubexec\.1" "$src/man/meson.build"; then
	echo "build-deb: note: man/meson.build does not install kubexec.1 yet: the kubexec package has no man page" >&2
	sed -i '/man1\/kubexec\.1/d' "$src/debian/kubexec.install"
	echo "man/kubexec.1 is not installed by the build; kubexec (CLI) has no man page" >"$out/cli-man-missing"
fi

if [ -n "$newver" ]; then
	{
		printf 'kubexec (%s) unstable; urgency=medium\n\n' "$newver"
		printf '  * Rebuild of the same tree as %s (upgrade test).\n\n' "$newver"
		printf ' -- %s  %s\n\n' "$(dpkg-parsechangelog -l "$src/debian/changelog" -S Maintainer)" "$(date -R)"
		cat "$src/debian/changelog"
	} >"$src/debian/changelog.new"
	mv "$src/debian/changelog.new" "$src/debian/changelog"
fi

echo "build-deb: building kubexec $ver in $src" >&2
(cd "$src" && dpkg-buildpackage -us -uc -b -Jauto) >"$out/build.log" 2>&1 || {
	tail -40 "$out/build.log" >&2
	echo "build-deb: dpkg-buildpackage failed (full log: $out/build.log)" >&2
	exit 1
}
mv "$out"/src/*.deb "$out"/src/*.changes "$out"/src/*.buildinfo "$out"/
ls -1 "$out"/*.deb >&2

if command -v lintian >/dev/null; then
	changes=$(ls "$out"/*.changes)
	# Errors fail the build; warnings are printed (and explained in the README).
	rc=0
	lintian --display-level '>=info' --fail-on error "$changes" >"$out/lintian.txt" 2>&1 || rc=$?
	sed 's/^/lintian: /' "$out/lintian.txt" >&2
	if [ "$rc" -ne 0 ]; then
		echo "build-deb: lintian reported errors (exit $rc)" >&2
		exit 1
	fi
	echo "build-deb: lintian: $(grep -c '^E:' "$out/lintian.txt" || true) errors, $(grep -c '^W:' "$out/lintian.txt" || true) warnings" >&2
else
	echo "build-deb: lintian not installed, not run (make deps-packages)" >&2
fi
