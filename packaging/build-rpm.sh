#!/bin/bash
# build-rpm.sh OUTDIR — build the RPMs of packaging/rpm/kubexec.spec with
# rpmbuild (Debian's rpm package is enough).
#
# The source is a tarball kubexec-VERSION.tar.gz of the tree (the files git
# knows, as in build-deb.sh), VERSION from the spec. Debian has no rpm
# database of the build dependencies, so rpmbuild runs with --nodeps (the
# Debian build dependencies of packaging/debian/control are what is used), and
# without a debuginfo package (debug_package %{nil}): Debian's find-debuginfo
# setup is not the Fedora one. The RPMs end up in OUTDIR/RPMS/<arch>/.
# Without subdir('src/cli') in meson.build the spec is built --without cli,
# without kubexec.1 in man/meson.build --without cli_man.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
top=$(cd "$(dirname "$0")/.." && pwd)
command -v rpmbuild >/dev/null || { echo "build-rpm: rpmbuild missing: make deps-packages" >&2; exit 1; }
mkdir -p "$1"
out=$(cd "$1" && pwd)
spec=$top/packaging/rpm/kubexec.spec
ver=$(sed -n 's/^Version: *//p' "$spec")
rm -rf "$out/BUILD" "$out/BUILDROOT" "$out/RPMS" "$out/SOURCES" "$out/SPECS" "$out/SRPMS"
mkdir -p "$out/SOURCES" "$out/SPECS"

stage=$out/stage
rm -rf "$stage"
mkdir -p "$stage/kubexec-$ver"
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$top" && git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		tar -cf - --no-recursion --null -T -) | tar -xf - -C "$stage/kubexec-$ver"
else
	(cd "$top" && tar -cf - --exclude='./build' --exclude='./build-*' --exclude='.git' .) | tar -xf - -C "$stage/kubexec-$ver"
fi
tar -czf "$out/SOURCES/kubexec-$ver.tar.gz" -C "$stage" "kubexec-$ver"
rm -rf "$stage"
cp "$spec" "$out/SPECS/"

with=()
if ! grep -q "^ *subdir('src/cli')" "$top/meson.build"; then
	echo "build-rpm: note: meson.build does not build src/cli yet: building --without cli" >&2
	with=(--without cli)
elif ! grep -q "kubexec\.1" "$top/man/meson.build"; then
	echo "build-rpm: note: man/meson.build does not install kubexec.1 yet: building --without cli_man" >&2
	with=(--without cli_man)
fi
echo "build-rpm: rpmbuild kubexec $ver" >&2
rpmbuild -bb --nodeps "${with[@]}" --define "_topdir $out" --define 'debug_package %{nil}' \
	"$out/SPECS/kubexec.spec" >"$out/build.log" 2>&1 || {
	tail -40 "$out/build.log" >&2
	echo "build-rpm: rpmbuild failed (full log: $out/build.log)" >&2
	exit 1
}
find "$out/RPMS" -name '*.rpm' | sort >&2
