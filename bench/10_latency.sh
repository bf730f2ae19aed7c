#!/bin/bash
# 10_latency.sh - exec latency through kubexec-apiserver + kubexec-node.
#   RUNS=30 (hyperfine runs per row), N=200 (spdyexec.py execs per row)
# Rows: kubectl start-up alone, `get pod`, `exec demo -- true` for kubectl
# 1.33 (WebSocket v5), 1.33 forced to SPDY, 1.27
# (SPDY only); then the same exec without kubectl (bench/spdyexec.py, one new
# TLS connection per exec) straight to the node and through the API server,
# with the daemons' CPU per exec from /proc/PID/stat.
set -u
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-30} N=${N:-200}
trap bench_down EXIT
bench_up
for v in 1.33 1.27; do kc $v get pod demo -o name >/dev/null; done # warm discovery caches
echo "## exec latency ($(date -u +%FT%TZ), apiserver $APISERVER)"
echo "transport: kubectl 1.33: $(transport 1.33); kubectl 1.27: $(transport 1.27)"
KCF="--kubeconfig=$T/api/admin.kubeconfig"
out=$T/hf-latency.json
wait_quiet
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$out" \
	-n "kubectl 1.33 version --client" "$KC133 $KCF version --client" \
	-n "kubectl 1.33 get pod demo -o name" "$KC133 $KCF --cache-dir=$T/kcache-1.33 get pod demo -o name" \
	-n "kubectl 1.33 exec demo -- true (WebSocket v5)" "$KC133 $KCF --cache-dir=$T/kcache-1.33 exec demo -- true" \
	-n "kubectl 1.33 exec demo -- true (SPDY forced, via env)" "env KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false $KC133 $KCF --cache-dir=$T/kcache-1.33 exec demo -- true" \
	-n "kubectl 1.27 exec demo -- true (SPDY)" "$KC127 $KCF --cache-dir=$T/kcache-1.27 exec demo -- true" \
	>/dev/null 2>&1 || die "hyperfine failed"
echo
echo "| command (hyperfine -N --warmup 5 --runs $RUNS) | median [min..max] | runs | client user+sys (mean) |"
echo "|---|---|---|---|"
"$(dirname "$0")/hf_table.py" "$out"

# Without kubectl: bench/spdyexec.py does N sequential execs of `true`.
NODE_ADDR=$(grep -o 'kubelet API on [0-9.:]*' "$T/node.log" | awk '{print $4}')
API_ADDR=$(grep server: "$T/api/admin.kubeconfig" | sed 's|.*https://||')
P=$T/api/pki
row() { # name, then spdyexec args
	local name=$1; shift
	wait_quiet
	local a0 n0 a1 n1 t
	a0=$(cpu_ticks "$API_PID") n0=$(cpu_ticks "$NODE_PID")
	t=$(python3 "$(dirname "$0")/spdyexec.py" "$@" "$N" --root "$ROOT" | med_range %.2f)
	a1=$(cpu_ticks "$API_PID") n1=$(cpu_ticks "$NODE_PID")
	echo "| $name | $t ms | $N | $(echo "$a0 $a1 $N $CLK_TCK" | awk '{printf "%.2f", ($2-$1)*1000/$4/$3}') ms | $(echo "$n0 $n1 $N $CLK_TCK" | awk '{printf "%.2f", ($2-$1)*1000/$4/$3}') ms |"
}
echo
echo "| exec of \`true\` without kubectl (bench/spdyexec.py, new TLS connection each) | median [min..max] | runs | apiserver CPU/exec | node CPU/exec (incl. the exec'd process) |"
echo "|---|---|---|---|---|"
row "straight to the node (kubelet API, client cert)" "$NODE_ADDR" '/exec/default/demo/main?command=true&output=1&error=1' \
	--cert "$P/apiserver-kubelet-client.crt" --key "$P/apiserver-kubelet-client.key" --ca "$P/ca.crt"
row "through kubexec-apiserver (admin cert)" "$API_ADDR" '/api/v1/namespaces/default/pods/demo/exec?command=true&stdout=true&stderr=true' \
	--cert "$P/admin.crt" --key "$P/admin.key" --ca "$P/ca.crt"
