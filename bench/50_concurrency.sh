#!/bin/bash
# 50_concurrency.sh - N simultaneous interactive sessions (a shell reading
# stdin each) through the API server, held; then all echo a line.
#   N=1000 OPEN_PARALLEL=64 CLIENT=py (use concurrency.py even if kxconc is built)
# bench/kxconc (C++, built with the daemons: $B/bench/kxconc) or
# bench/concurrency.py opens them (SPDY/3.1, one TLS connection each, as
# kubectl does), measures the daemons' memory (API server + the node's own
# processes: the node and its per-session helpers, not the shells) over idle,
# then sends `echo kxNNNNN` to every one at once and times each answer.
# RLIMIT_NOFILE is raised here (ulimit -n) before the daemons start, so they
# inherit it. Beside it, from 31_footprint_peers.sh / baselines.md: sshd
# spends ~1.1-1.6 MiB per connection.
# Output: Markdown; $OUTDIR/concurrency.tsv.
set -u
. "$(dirname "$0")/lib.sh"
N=${N:-1000} OPEN_PARALLEL=${OPEN_PARALLEL:-64}
ulimit -n "$(ulimit -Hn)" 2>/dev/null
trap bench_down EXIT
bench_up
P=$T/api/pki
API_ADDR=$(grep server: "$T/api/admin.kubeconfig" | sed 's|.*https://||')
echo "## $N concurrent interactive sessions ($(date -u +%FT%TZ), RLIMIT_NOFILE $(ulimit -n), $(load_now))"
mkdir -p "$OUTDIR"
wait_quiet
# The client: bench/kxconc (C++, the project's library, built with the
# daemons) when it is there, else concurrency.py (same exchange, same output;
# its own Python work is a large part of the echo latency it measures:
# CLIENT=py forces it).
CLIENT_BIN=${KXCONC:-$B/bench/kxconc}
if [ "${CLIENT:-}" != py ] && [ -x "$CLIENT_BIN" ]; then CL=("$CLIENT_BIN")
else CL=(python3 "$(dirname "$0")/concurrency.py"); fi
"${CL[@]}" "$API_ADDR" "$N" --cert "$P/admin.crt" --key "$P/admin.key" --ca "$P/ca.crt" \
	--api-pid "$API_PID" --node-pid "$NODE_PID" --node-exe "$NODE" --open-parallel "$OPEN_PARALLEL" \
	--tsv "$OUTDIR/concurrency.tsv" > "$T/conc.txt"
rc=$?
v() { awk -F'\t' -v k="$1" '$1 == k {print $2}' "$T/conc.txt"; }
echo
echo "| measure | ours | target (issue 5) | |"
echo "|---|---|---|---|"
ans=$(v answered); op=$(v opened)
echo "| client | $(v client) | | |"
echo "| sessions opened / answered the echo | $op / $ans of $N (open took $(v open_s) s) | all $N answer | **$( [ "$ans" = "$N" ] && echo met || echo missed)** |"
p99=$(v echo_p99_ms)
# A run that measured nothing (empty, nan) is no success.
echo "| echo latency under load: median / p99 / max | $(v echo_median_ms) / $p99 / $(v echo_max_ms) ms | p99 < 50 ms | **$(awk -v x="$p99" 'BEGIN{print (x ~ /^[0-9.]+$/ && x + 0 < 50) ? "met" : "missed"}')** |"
pss=$(v pss_kib_per_session)
echo "| daemon memory per session (API server + node's own processes), PSS | $pss KiB (RSS $(v rss_kib_per_session), USS $(v uss_kib_per_session) KiB; daemon processes $(v daemon_procs_idle) → $(v daemon_procs_held)) | ≤ 32 KiB (sshd ≈ 1.1 MiB) | **$(awk -v x="$pss" 'BEGIN{print (x ~ /^[0-9.]+$/ && x + 0 <= 32) ? "met" : "missed"}')** |"
[ -n "$(v first_error)" ] && echo "| client-side errors | $(v errors), first: $(v first_error) | | |"
grep -i -E 'too many|EMFILE|limit|refus' "$T/api.log" "$T/node.log" 2>/dev/null | sort | uniq -c | sort -rn | head -5 | sed 's/^/    daemon log: /'
echo
echo "(raw: $T/conc.txt; TSV in $OUTDIR/concurrency.tsv)"
exit $rc
