#!/bin/bash
# kubectl-versions.sh — print one "VERSION PATH" line per kubectl the integration tests
# run against: 1.20 (SPDY only, legacy discovery), 1.27 (SPDY, v2beta1 discovery),
# 1.29 (SPDY v5), 1.32 and 1.33 (WebSocket v5 first). See docs clients.md §1.
# Plus the line "kubexec PATH": our own CLI, $KUBEXEC_BUILD/src/cli/kubexec (build
# dir as run.sh takes it, default "build" under the repo root), run by the same
# checks as the kubectls (issue 4, acceptance 1).
#
# 1.27 … 1.33 are the versioned binaries gcloud ships beside its kubectl dispatcher.
# 1.20 is Debian bookworm's kubernetes-client package, fetched with `apt-get download`
# and unpacked with `dpkg -x` into a cache directory — never installed, so the
# system's /usr/bin/kubectl (the dispatcher) is left alone. `apt-get update` must have
# run (make deps does it). Cache dir: $KUBEXEC_CACHE_DIR, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/kubexec.
#
# A missing version (kubexec included) is an error (exit 1), not a skip: a test run that silently lost a
# client version would claim coverage it does not have.
#
# KUBEXEC_KUBECTL_VERSIONS="1.33 1.20 kubexec" restricts the list (for quick local runs).
# --fetch (what `make deps` passes): the same, but kubexec is skipped (it is built,
# not fetched, and deps run before the build); it exists so the deps step reads as
# "fetch the clients now", while the network (apt) is known to be available.
set -euo pipefail

fetch=0
case ${1:-} in
'') ;;
--fetch) fetch=1 ;;
*) echo "usage: $0 [--fetch]" >&2; exit 2 ;;
esac

WANT=${KUBEXEC_KUBECTL_VERSIONS:-"1.20 1.27 1.29 1.32 1.33 kubexec"}
CACHE=${KUBEXEC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubexec}


# check_version BIN VERSION: the binary runs and reports that minor version.
check_version() {
	local bin=$1 want=$2 got
	[ -x "$bin" ] || return 1
	got=$(timeout 20 "$bin" version --client -o json 2>/dev/null |
		sed -n 's/.*"gitVersion": *"v\([0-9]*\.[0-9]*\)\..*/\1/p' | head -n1)
	[ "$got" = "$want" ]
}

# gcloud's dispatcher lives at …/google-cloud-sdk/bin/kubectl; the versioned
# binaries sit next to the file the symlink chain ends at.
gcloud_dir=
if k=$(command -v kubectl 2>/dev/null); then
	gcloud_dir=$(dirname "$(readlink -f "$k")")
fi

kubectl_120() {
	local dir=$CACHE/kubectl-1.20 bin tmp deb
	bin=$dir/usr/bin/kubectl
	if check_version "$bin" 1.20; then
		echo "$bin"
		return 0
	fi
	command -v apt-get >/dev/null || { echo "apt-get not found" >&2; return 1; }
	mkdir -p "$CACHE"
	tmp=$(mktemp -d "$CACHE/.dl.XXXXXX")
	# _apt (apt's download sandbox user) must be able to write here, else apt warns.
	chmod 0777 "$tmp"
	# Package lists may be missing on a fresh machine (make deps skips `apt-get
	# update` when every package is installed): update once and retry, as root.
	if ! (cd "$tmp" && timeout 300 apt-get -q download kubernetes-client) >"$tmp/log" 2>&1 &&
		! { [ "$(id -u)" = 0 ] && timeout 300 apt-get -q update >>"$tmp/log" 2>&1 &&
			(cd "$tmp" && timeout 300 apt-get -q download kubernetes-client) >>"$tmp/log" 2>&1; }; then
		cat "$tmp/log" >&2
		rm -rf "$tmp"
		echo "apt-get download kubernetes-client failed (did 'apt-get update' run?)" >&2
		return 1
	fi
	deb=$(find "$tmp" -maxdepth 1 -name "kubernetes-client_*.deb" | head -n1)
	rm -rf "$dir.new"
	if [ -z "$deb" ] || ! dpkg -x "$deb" "$dir.new" ||
		! check_version "$dir.new/usr/bin/kubectl" 1.20; then
		echo "apt-get download kubernetes-client gave no usable kubectl 1.20" >&2
		rm -rf "$tmp" "$dir.new"
		return 1
	fi
	rm -rf "$tmp"
	# Swap in whole, so a concurrent or interrupted run never sees half a tree.
	rm -rf "$dir"
	mv "$dir.new" "$dir"
	echo "$bin"
}

rc=0
for v in $WANT; do
	case $v in
	1.20)
		if p=$(kubectl_120); then
			echo "1.20 $p"
		else
			echo "kubectl-versions: kubectl 1.20 unavailable" >&2
			rc=1
		fi
		;;
	1.2[7-9] | 1.3[0-3])
		p=$gcloud_dir/kubectl.$v
		if [ -n "$gcloud_dir" ] && check_version "$p" "$v"; then
			echo "$v $p"
		else
			echo "kubectl-versions: kubectl $v not found or wrong version at ${p:-<no kubectl on PATH>}" >&2
			rc=1
		fi
		;;
	kubexec)
		[ "$fetch" = 1 ] && continue
		root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
		p=${KUBEXEC_BUILD:-build}
		case $p in /*) ;; *) p=$root/$p ;; esac
		p=$p/src/cli/kubexec
		# It must run, not just exist: --help is the one answer that needs no server.
		if [ -x "$p" ] && timeout 20 "$p" --help >/dev/null 2>&1; then
			echo "kubexec $p"
		else
			echo "kubectl-versions: kubexec not built or not runnable at $p (ninja -C \$KUBEXEC_BUILD)" >&2
			rc=1
		fi
		;;
	*)
		echo "kubectl-versions: unsupported version '$v'" >&2
		rc=1
		;;
	esac
done
exit $rc
