#!/bin/bash
# 30_footprint.sh - memory and binary sizes of kubexec-apiserver and
# kubexec-node, per-session cost, and the wall time of concurrent execs.
#   C=50 (concurrent sessions), HOLD=30 (seconds each held session sleeps),
#   V=1.27 (kubectl used for the sessions: SPDY only, so the SPDY engine is
#   what is measured; V=1.33 goes WebSocket-refused -> SPDY as well)
# Per session: C concurrent `kubectl exec demo -- sleep HOLD`; once all C
# `sleep` processes run under the node, the daemons' RSS/PSS/USS
# (smaps_rollup) growth over idle, divided by C. The node forks one helper
# process per session (it supervises the command), which shares pages with
# the node: the node alone can even show falling PSS/USS, so the node row is
# also given summed over its whole process tree.
# Concurrency: C concurrent `kubectl exec demo -- true`, wall time from the
# first start to the last exit (every exit status must be 0).
set -u
. "$(dirname "$0")/lib.sh"
C=${C:-50} HOLD=${HOLD:-30} V=${V:-1.27}
held=()
trap 'kill "${held[@]}" 2>/dev/null; bench_down' EXIT
bench_up
echo "## footprint ($(date -u +%FT%TZ), node $NODE)"
echo
echo "| binary | file size | text | data+bss |"
echo "|---|---|---|---|"
for f in "$APISERVER" "$NODE"; do
	size "$f" | awk -v n="$(basename "$f")" -v fs="$(stat -c %s "$f")" \
		'NR==2 {printf "| %s | %.0f KiB | %.0f KiB | %.0f KiB |\n", n, fs/1024, $1/1024, ($2+$3)/1024}'
done
sleep 2
read -r ar ap au < <(mem_kib "$API_PID")
read -r nr np nu < <(mem_kib "$NODE_PID")
read -r tr tp tu tn < <(tree_mem "$NODE_PID")
echo
echo "| process (idle, after one exec per kubectl version) | RSS | PSS | USS |"
echo "|---|---|---|---|"
echo "| kubexec-apiserver | $ar KiB | $ap KiB | $au KiB |"
echo "| kubexec-node | $nr KiB | $np KiB | $nu KiB |"
echo "| kubexec-node and its children ($tn processes: the pod's processes) | $tr KiB | $tp KiB | $tu KiB |"

count_sleeps() { descendants "$NODE_PID" | while read -r p; do tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null; echo; done | grep -c "^sleep $HOLD $"; }
wait_quiet
for i in $(seq "$C"); do kc "$V" exec demo -- sleep "$HOLD" >/dev/null 2>&1 & held+=($!); done
for i in $(seq 200); do [ "$(count_sleeps)" -ge "$C" ] && break; sleep 0.1; done
n=$(count_sleeps)
sleep 1
read -r ar2 ap2 au2 < <(mem_kib "$API_PID")
read -r nr2 np2 nu2 < <(mem_kib "$NODE_PID")
read -r tr2 tp2 tu2 tn2 < <(tree_mem "$NODE_PID")
echo
echo "| per exec session ($n of $C concurrent \`kubectl $V exec demo -- sleep $HOLD\`) | RSS growth / session | PSS / session | USS / session |"
echo "|---|---|---|---|"
per() { echo "$1 $2 $n" | awk '{ printf "%.1f KiB", ($2-$1)/($3 ? $3 : 1) }'; }
echo "| kubexec-apiserver (proxy: 2 TLS connections per session) | $(per "$ar" "$ar2") | $(per "$ap" "$ap2") | $(per "$au" "$au2") |"
echo "| kubexec-node process alone (TLS + HTTP + SPDY session + pumps) | $(per "$nr" "$nr2") | $(per "$np" "$np2") | $(per "$nu" "$nu2") |"
echo "| kubexec-node tree: node + per-session helper + the \`sleep\` ($(echo "$tn $tn2 $n" | awk '{printf "%.0f", ($2-$1)/$3}') processes/session) | $(per "$tr" "$tr2") | $(per "$tp" "$tp2") | $(per "$tu" "$tu2") |"
wait "${held[@]}"
held=()
sleep 1
read -r nr3 np3 nu3 < <(mem_kib "$NODE_PID")
echo "| kubexec-node after all $C sessions ended (RSS, total) | $nr3 KiB | $np3 KiB | $nu3 KiB |"

wait_quiet
echo
echo "| $C concurrent \`exec demo -- true\` | wall time | failures |"
echo "|---|---|---|"
for v in 1.33 1.27; do
	t0=$(now)
	pids=()
	for i in $(seq "$C"); do kc "$v" exec demo -- true >/dev/null 2>&1 & pids+=($!); done
	bad=0
	for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
	t1=$(now)
	echo "| kubectl $v | $(echo "$t0 $t1" | awk '{printf "%.2f s", $2-$1}') | $bad |"
done
