#!/bin/bash
# 12_cli_latency.sh - the CLI issue's benchmark: `kubexec exec demo -- true`
# against `kubectl exec demo -- true` (1.33, discovery cached), both end to
# end against our own API server and node, ALTERNATED in one run
# (interleave.py), median/p99 and their ratio; then the peak RSS of each
# client (GNU time %M, the largest of R runs). Targets (issue 4): kubexec at
# least 10x faster than kubectl, under 2 MB peak RSS; each line says met or
# missed.
#   ROUNDS=60 WARMUP=5 R=5
# Output: Markdown on stdout; $OUTDIR/cli_latency.tsv, cli_rss.tsv.
set -u
. "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-60}
WARMUP=${WARMUP:-5}
R=${R:-5}
trap bench_down EXIT
bench_up
export KUBECONFIG=$T/api/admin.kubeconfig
ours_cli || die "kubexec ($KUBEXEC) is not built or does not work against this cluster"
KDIR=$T/kcache-1.33
OURS="kubexec exec demo -- true"
KUBECTL="kubectl 1.33 exec demo -- true"
# kubectl >= 1.30 speaks WebSocket, and our node holds a client-go WebSocket
# session's output back 20 ms (more when many start at once) against
# client-go's stream-registration race (src/node/rcx.cc). The same kubectl
# over SPDY has no such delay: its row shows kubectl's own cost.
KUBECTL_SPDY="kubectl 1.33 exec demo -- true (SPDY, no start delay)"
spec=$T/cli_latency.spec
{
	printf '%s\tspawn\t%s exec demo -- true\n' "$OURS" "$KUBEXEC"
	printf '%s\tspawn\t%s --cache-dir=%s exec demo -- true\n' "$KUBECTL" "$KC133" "$KDIR"
	printf '%s\tspawn\tenv KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false %s --cache-dir=%s exec demo -- true\n' \
		"$KUBECTL_SPDY" "$KC133" "$KDIR"
} > "$spec"
echo "## kubexec vs kubectl exec, alternated ($(date -u +%FT%TZ), $ROUNDS rounds, $(load_now) at start)"
echo
mkdir -p "$OUTDIR"
wait_quiet
python3 "$(dirname "$0")/interleave.py" "$spec" "$ROUNDS" --warmup "$WARMUP" --ours "$OURS" \
	--tsv "$OUTDIR/cli_latency.tsv" --target-issue "issue 4" \
	--target "$KUBECTL|ge|10|≥ 10× faster than kubectl exec" \
	--target "$KUBECTL_SPDY|ge|10|≥ 10× faster than kubectl exec over SPDY (no start delay)"
rc=$?
echo
# Peak RSS: the largest of R runs of each, as GNU time reports it (KiB).
peak() {
	local m=0 i v
	for i in $(seq "$R"); do
		/usr/bin/time -o "$T/rss.out" -f '%M' "$@" >/dev/null 2>&1
		v=$(tail -n1 "$T/rss.out")
		[ "$v" -gt "$m" ] 2>/dev/null && m=$v
	done
	echo "$m"
}
ro=$(peak "$KUBEXEC" exec demo -- true)
rk=$(peak "$KC133" --cache-dir="$KDIR" exec demo -- true)
tsv_new cli_rss.tsv client peak_rss_kib
tsv cli_rss.tsv kubexec "$ro"
tsv cli_rss.tsv kubectl-1.33 "$rk"
# Beside it, what each client holds while a session is open (`exec demo --
# sleep 2`, sampled after 1.5 s): PSS (shared library pages divided among
# their users) and private dirty memory (the process's own), from
# /proc/PID/smaps_rollup. RSS counts every library page the process touched
# in full; these say how much of it is really the client's.
held() {
	local pid
	"$@" exec demo -- sleep 2 >/dev/null 2>&1 &
	pid=$!
	sleep 1.5
	awk '/^Pss:/ {p=$2} /^Private_Dirty:/ {d=$2} END {printf "%.1f MiB / %.1f MiB", p/1024, d/1024}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo "n/a"
	wait "$pid"
}
ho=$(held "$KUBEXEC")
hk=$(held "$KC133" --cache-dir="$KDIR")
tsv cli_rss.tsv kubexec-held-pss-private "$ho"
tsv cli_rss.tsv kubectl-1.33-held-pss-private "$hk"
echo "| client | peak RSS (largest of $R) | ratio | PSS / private dirty while a session is held |"
echo "|---|---|---|---|"
awk -v o="$ro" -v k="$rk" -v ho="$ho" -v hk="$hk" 'BEGIN{printf "| kubexec | %.1f MiB | 1 | %s |\n| kubectl 1.33 | %.1f MiB | %.1f× kubexec | %s |\n", o/1024, ho, k/1024, k/o, hk}'
if [ "$ro" -lt 2048 ]; then echo "target: kubexec peak RSS under 2 MB: met ($ro KiB)"
else echo "target: kubexec peak RSS under 2 MB: missed ($ro KiB)"; fi
echo
echo "(load at end: $(load_now); TSV in $OUTDIR/cli_*.tsv)"
exit $rc
