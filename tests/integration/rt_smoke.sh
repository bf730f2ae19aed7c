#!/bin/bash
# rt_smoke.sh [BUILD_DIR] — build the busybox image and run the runtime smoke test
# (real namespaces, mounts and cgroups: needs root). Exit 0 pass, 1 fail, 77 skip.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
bin=$build/src/node/rt_smoke
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: rt_smoke needs root"
	exit 77
fi
[ -x "$bin" ] || { echo "rt_smoke.sh: $bin not built (ninja -C $build src/node/rt_smoke)" >&2; exit 1; }
img=$(mktemp -d /tmp/kx-rt-img.XXXXXX)
trap 'rm -rf "$img"' EXIT
"$here/mkimage.sh" "$img" >/dev/null
timeout 60 "$bin" "$img"
