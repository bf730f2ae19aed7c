#!/bin/bash
# run.sh - runs every bench script in order against one build and keeps the
# output. About 5 minutes on the 2-vCPU VM.
#   B=build-bench (release build dir) or BIN=dir-with-both-binaries; T=/tmp/kx-bench
#   OUT=/tmp/kx-bench-results-TIME.txt
# Any script's knobs (RUNS, N, K, SIZE, C, HOLD, V, QUIET) pass through.
set -u
here=$(cd "$(dirname "$0")" && pwd)
command -v hyperfine >/dev/null || { echo "run.sh: hyperfine missing (apt-get install -y hyperfine)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "run.sh: GNU time missing (apt-get install -y time)" >&2; exit 1; }
OUT=${OUT:-/tmp/kx-bench-results-$(date -u +%Y%m%dT%H%M%SZ).txt}
rc=0
{
	echo "# kubexec bench, $(date -u +%FT%TZ), $(nproc) vCPU, $(uname -r)"
	for s in 10_latency.sh 20_throughput.sh 30_footprint.sh; do
		echo
		"$here/$s" || { echo "# $s failed"; rc=1; }
	done
} 2>&1 | tee "$OUT"
echo "# output kept in $OUT"
exit $rc
