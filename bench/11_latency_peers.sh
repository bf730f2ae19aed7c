#!/bin/bash
# 11_latency_peers.sh - exec latency of ours beside the floor and the peers,
# measured ALTERNATELY in one run (bench/interleave.py: every round runs each
# row once in a fresh random order), median and p99, ratios, issue-5 targets.
#   ROUNDS=150 WARMUP=5
# Rows: /bin/true (spawn cost), floor (bench/floor.c: fork, setns into the
# demo pod's namespaces, chroot, fork, exec /bin/true, wait), nsenter -a,
# crun exec and runc exec (containers from the same busybox rootfs), ssh (new
# connection; ControlMaster multiplexed), kubectl 1.33 exec against our API
# server, and ours: `kubexec exec demo -- true` ($KUBEXEC) when it works,
# always also the in-process protocol client (bench/spdyexec.py, no client
# start-up) through the API server and straight to the node.
# Output: Markdown on stdout; $OUTDIR/latency.tsv, latency_targets.tsv, latency_raw.tsv.
set -u
. "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-150} WARMUP=${WARMUP:-5}
trap 'sshd_down; crun_down; runc_down; bench_down' EXIT
bench_up
build_helpers
crun_up
runc_up
sshd_up
POD=$(pod_pid) || die "demo pod process not found"
kc 1.33 get pod demo -o name >/dev/null
export KUBECONFIG=$T/api/admin.kubeconfig
P=$T/api/pki
NODE_ADDR=$(grep -o 'kubelet API on [0-9.:]*' "$T/node.log" | awk '{print $4}')
API_ADDR=$(grep server: "$T/api/admin.kubeconfig" | sed 's|.*https://||')
spec=$T/latency.spec
{
	printf '/bin/true (spawn cost of every spawned row)\tspawn\t/bin/true\n'
	printf 'floor: fork+setns+chroot+fork+exec true (bench/floor.c)\tspawn\t%s %s /bin/true\n' "$HELPERS/floor" "$POD"
	printf 'nsenter -t PID -a true\tspawn\tnsenter -t %s -a true\n' "$POD"
	printf 'crun exec\tspawn\tcrun --root %s exec kxbench-crun /bin/true\n' "$OCI/crun-state"
	printf 'runc exec\tspawn\trunc --root %s exec kxbench-runc /bin/true\n' "$OCI/runc-state"
	printf 'ssh, new connection (default KEX, cipher)\tspawn\tssh -F %s bench true\n' "$SSHCFG"
	printf 'ssh, multiplexed (ControlMaster)\tspawn\tssh -F %s bench-mux true\n' "$SSHCFG"
	printf 'kubectl 1.33 exec (our apiserver)\tspawn\t%s --kubeconfig=%s --cache-dir=%s exec demo -- true\n' "$KC133" "$KUBECONFIG" "$T/kcache-1.33"
	if ours_cli; then
		OURS="ours: kubexec exec demo -- true"
		printf '%s\tspawn\t%s exec demo -- true\n' "$OURS" "$KUBEXEC"
	else
		OURS="ours (FALLBACK, no working kubexec CLI): spdyexec.py in-process via apiserver"
		echo "# note: $KUBEXEC missing or not working: the ours row is bench/spdyexec.py in-process (no process spawn)" >&2
	fi
	printf '%s\tspdy\t{"addr":"%s","path":"/api/v1/namespaces/default/pods/demo/exec?command=true&stdout=true&stderr=true","cert":"%s","key":"%s","ca":"%s"}\n' \
		"$( [ "${OURS#ours (FALLBACK}" != "$OURS" ] && echo "$OURS" || echo 'protocol only: spdyexec.py in-process via apiserver')" "$API_ADDR" "$P/admin.crt" "$P/admin.key" "$P/ca.crt"
	printf 'protocol only: spdyexec.py in-process straight to node\tspdy\t{"addr":"%s","path":"/exec/default/demo/main?command=true&output=1&error=1","cert":"%s","key":"%s","ca":"%s"}\n' \
		"$NODE_ADDR" "$P/apiserver-kubelet-client.crt" "$P/apiserver-kubelet-client.key" "$P/ca.crt"
} > "$spec"
echo "## exec latency, alternated ($(date -u +%FT%TZ), $ROUNDS rounds, $(load_now) at start)"
echo
mkdir -p "$OUTDIR"
wait_quiet
python3 "$(dirname "$0")/interleave.py" "$spec" "$ROUNDS" --warmup "$WARMUP" --ours "$OURS" \
	--tsv "$OUTDIR/latency.tsv" --raw "$OUTDIR/latency_raw.tsv" --target-tsv "$OUTDIR/latency_targets.tsv" \
	--target 'crun exec|le|1|≤ crun exec' \
	--target 'floor: fork+setns+chroot+fork+exec true (bench/floor.c)|le|5|≤ 5× the floor' \
	--target 'kubectl 1.33 exec (our apiserver)|ge|15|≥ 15× faster than kubectl exec' \
	--target 'ssh, new connection (default KEX, cipher)|ge|30|≥ 30× faster than a new ssh connection'
rc=$?
echo
echo "(load at end: $(load_now); TSV in $OUTDIR/latency*.tsv)"
exit $rc
