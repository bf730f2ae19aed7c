#!/bin/bash
# run.sh [NAME...] - runs the bench scripts in order against one build and
# keeps the output; with NAMEs, only the scripts whose file name contains one
# of them (latency, throughput, footprint, peers, startup, concurrency; e.g.
# `bench/run.sh latency` or `make bench BENCH=latency`). All of them: about
# 20 minutes on the 2-vCPU VM. TSV files go to bench/out/ (OUT_DIR=...).
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
	for s in 10_latency.sh 11_latency_peers.sh 12_cli_latency.sh 20_throughput.sh 21_throughput_peers.sh \
		30_footprint.sh 31_footprint_peers.sh 40_startup.sh 50_concurrency.sh; do
		if [ $# -gt 0 ]; then
			want=0
			for n in "$@"; do case $s in *"$n"*) want=1 ;; esac; done
			[ $want = 1 ] || continue
		fi
		echo
		"$here/$s" || { echo "# $s failed"; rc=1; }
	done
} 2>&1 | tee "$OUT"
echo "# output kept in $OUT"
exit $rc
