#!/bin/bash
# 21_throughput_peers.sh - stream throughput and CPU per GB of ours beside ssh
# and the raw limits (pipe, one loopback TCP stream, one TLS 1.3 AES-128-GCM
# stream), rows ALTERNATED: each of K rounds runs every row once, shuffled.
#   K=3 SIZE=2147483648 ROWS="..." (a subset of the row names below, ';'-separated)
# MB/s = SIZE / wall (port-forward: the read only, after both ends are up);
# CPU s/GB = user+sys of everything on both ends: the measured command tree
# (GNU time: clients, local head/wc, the ssh/kubexec/kubectl port-forward
# process, host-side sender) + deltas of utime+stime+cutime+cstime of the API
# server, the node (which reaps the in-pod commands) and the sshd listener
# (which reaps its per-connection children). Every byte count is checked.
# Output: Markdown; $OUTDIR/throughput.tsv (every run), throughput_summary.tsv,
# throughput_targets.tsv.
set -u
. "$(dirname "$0")/lib.sh"
K=${K:-3} SIZE=${SIZE:-2147483648}
trap 'sshd_down; bench_down' EXIT
bench_up
build_helpers
sshd_up
POD=$(pod_pid) || die "demo pod process not found"
kc 1.33 get pod demo -o name >/dev/null
export KUBECONFIG=$T/api/admin.kubeconfig
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/tls.key" -out "$T/tls.crt" \
	-subj /CN=bench -days 1 2>/dev/null || die "openssl req"
CLI=0; ours_cli && CLI=1
KCMD="$KC133 --kubeconfig=$KUBECONFIG --cache-dir=$T/kcache-1.33"
API_ADDR=$(grep server: "$KUBECONFIG" | sed 's|.*https://||')
export SIZE HELPERS T SSHCFG KUBEXEC KCMD POD API_ADDR ROOT
AES="-c aes128-gcm@openssh.com"
# The pod's commands are busybox's, which move 4 KiB per call and cost ~1.5
# CPU s/GB of user time (GNU head/wc: ~0.05); the "same programs" ssh rows
# run that very busybox on the host, so the comparison is of transports.
BB=$T/images/busybox/bin/busybox
[ -x "$BB" ] || die "no busybox in the pod image at $BB"
export BB

# Each row prints "BYTES" or "BYTES SECONDS" (SECONDS: the transfer alone).
declare -A ROW
ROW[raw pipe]='$HELPERS/rawbench pipe $SIZE | awk "{print \$3}"'
ROW[raw TCP, 1 stream]='$HELPERS/rawbench tcp $SIZE | awk "{print \$3}"'
ROW[raw TLS 1.3 AES-128-GCM, 1 stream]='$HELPERS/rawbench tls $SIZE $T/tls.crt $T/tls.key | awk "{print \$3}"'
ROW[stdout: ssh, default cipher]='ssh -F $SSHCFG bench "head -c $SIZE /dev/zero" | wc -c'
ROW[stdout: ssh aes128-gcm]="ssh -F \$SSHCFG $AES bench \"head -c \$SIZE /dev/zero\" | wc -c"
ROW[stdout: ssh aes128-gcm, same programs (busybox head)]="ssh -F \$SSHCFG $AES bench \"\$BB head -c \$SIZE /dev/zero\" | wc -c"
ROW[stdout: kubectl 1.33 exec]='$KCMD exec demo -- head -c $SIZE /dev/zero | wc -c'
ROW[stdin: ssh, default cipher]='head -c $SIZE /dev/zero | ssh -F $SSHCFG bench "wc -c"'
ROW[stdin: ssh aes128-gcm]="head -c \$SIZE /dev/zero | ssh -F \$SSHCFG $AES bench 'wc -c'"
# \$BB inside double quotes: the row's shell puts the path in (single quotes
# left it to the remote shell, where BB is unset: GNU wc ran, until 2026-11-27).
ROW[stdin: ssh aes128-gcm, same programs (busybox wc)]="head -c \$SIZE /dev/zero | ssh -F \$SSHCFG $AES bench \"\$BB wc -c\""
ROW[stdin: kubectl 1.33 exec -i]='head -c $SIZE /dev/zero | $KCMD exec -i demo -- wc -c'
if [ $CLI = 1 ]; then
	OUT_ROW="stdout: ours (kubexec exec)"; IN_ROW="stdin: ours (kubexec exec -i)"; PF_ROW="port-forward: ours (kubexec port-forward)"
	ROW[$OUT_ROW]='$KUBEXEC exec demo -- head -c $SIZE /dev/zero | wc -c'
	ROW[$IN_ROW]='head -c $SIZE /dev/zero | $KUBEXEC exec -i demo -- wc -c'
	ROW[$PF_ROW]='pf_pod "$KUBEXEC"'
else
	OUT_ROW="stdout: ours (FALLBACK, no kubexec CLI: spdyexec.py via apiserver)"
	IN_ROW="stdin: kubectl 1.33 exec -i"; PF_ROW="port-forward: kubectl 1.33"
	ROW[$OUT_ROW]='python3 $ROOT/bench/spdyexec.py $API_ADDR "/api/v1/namespaces/default/pods/demo/exec?command=head&command=-c&command=$SIZE&command=/dev/zero&stdout=true&stderr=true" 1 --bytes --cert $T/api/pki/admin.crt --key $T/api/pki/admin.key --ca $T/api/pki/ca.crt'
	echo "# note: no working kubexec CLI at $KUBEXEC: ours = spdyexec.py (stdout), kubectl (stdin, port-forward)" >&2
fi
ROW[port-forward: kubectl 1.33]='pf_pod "$KCMD"'
ROW[port-forward: ssh -L aes128-gcm]='pf_ssh head'
ROW[port-forward: ssh -L aes128-gcm, same programs (busybox head)]='pf_ssh "$BB head"'
# Ceilings: the pod's own programs with no transport between them and the
# reader (busybox head into a pipe; busybox wc from one; busybox nc -e head
# into a loopback TCP connection inside the pod's network namespace). No
# transport can deliver more than these, so a target above a ceiling cannot
# be met with this pod (tp_report.py says which).
ROW[ceiling: pod program alone (busybox head into a pipe)]='$BB head -c $SIZE /dev/zero | wc -c'
ROW[ceiling: pod program alone (busybox wc from a pipe)]='head -c $SIZE /dev/zero | $BB wc -c'
ROW[ceiling: pod program alone (busybox nc -e head over loopback TCP)]='pf_alone'

# pf_pod CLIENT : CLIENT port-forward to a one-shot sender in the pod
# (busybox nc -l -e head -c SIZE /dev/zero), read until EOF on the local port.
pf_pod() {
	local lp s f n t0 t1
	lp=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	$1 exec demo -- nc -l -p 9000 -e head -c "$SIZE" /dev/zero >/dev/null 2>&1 & s=$!
	$1 port-forward demo "$lp:9000" >/dev/null 2>&1 & f=$!
	for _ in $(seq 100); do nsenter -t "$POD" -n ss -Hltn 'sport = :9000' | grep -q . && ss -Hltn "sport = :$lp" | grep -q . && break; sleep 0.05; done
	t0=$(date +%s.%N); n=$(wc -c < "/dev/tcp/127.0.0.1/$lp"); t1=$(date +%s.%N)
	kill "$f"; wait "$f"; wait "$s"
	echo "$n $(echo "$t0 $t1" | awk '{print $2-$1}')"
}
# pf_ssh HEAD : the same through `ssh -L` (new connection, aes128-gcm) to a
# host-side sender running HEAD ("head" or "$BB head").
pf_ssh() {
	local lp rp s f n t0 t1
	lp=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	rp=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	# like `nc -l -e head ...` in the pod (busybox nc here cannot bind 127.0.0.1 only)
	python3 -c 'import os, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); c, _ = s.accept(); s.close()
os.dup2(c.fileno(), 1); cmd = sys.argv[3].split() + ["-c", sys.argv[2], "/dev/zero"]; os.execvp(cmd[0], cmd)' "$rp" "$SIZE" "$1" & s=$!
	ssh -F "$SSHCFG" -c aes128-gcm@openssh.com -N -L "$lp:127.0.0.1:$rp" bench & f=$!
	for _ in $(seq 100); do ss -Hltn "sport = :$rp" | grep -q . && ss -Hltn "sport = :$lp" | grep -q . && break; sleep 0.05; done
	t0=$(date +%s.%N); n=$(wc -c < "/dev/tcp/127.0.0.1/$lp"); t1=$(date +%s.%N)
	kill "$f"; wait "$f"; wait "$s"
	echo "$n $(echo "$t0 $t1" | awk '{print $2-$1}')"
}
# pf_alone : the pod's sender (busybox nc -l -e head) read straight from
# loopback inside the pod's network namespace, no port-forward in between.
pf_alone() {
	local s n t0 t1
	nsenter -t "$POD" -n "$BB" nc -l -p 9001 -e "$BB" head -c "$SIZE" /dev/zero >/dev/null 2>&1 & s=$!
	for _ in $(seq 100); do nsenter -t "$POD" -n ss -Hltn 'sport = :9001' | grep -q . && break; sleep 0.05; done
	t0=$(date +%s.%N); n=$(nsenter -t "$POD" -n bash -c 'wc -c < /dev/tcp/127.0.0.1/9001'); t1=$(date +%s.%N)
	wait "$s"
	echo "$n $(echo "$t0 $t1" | awk '{print $2-$1}')"
}
export -f pf_pod pf_ssh pf_alone

names=("${!ROW[@]}")
if [ -n "${ROWS:-}" ]; then
	# Names separated by ';' (some names hold a comma), or by ',' when there is no ';'.
	sep=','
	case $ROWS in *';'*) sep=';' ;; esac
	IFS=$sep read -r -a names <<< "$ROWS"
	for n in "${names[@]}"; do [ -n "${ROW[$n]+x}" ] || die "ROWS: no row named '$n'"; done
fi
echo "## stream throughput, alternated ($(date -u +%FT%TZ), $SIZE bytes per run, K=$K, $(load_now) at start)"
tsv_new throughput.tsv row round bytes seconds mb_s cpu_client_s cpu_server_s cpu_s_per_gb cpu_machine_s_per_gb
# A cross-check of the per-process sums: every CPU's busy time (/proc/stat)
# over the run, on a machine waited quiet before each row. It needs no
# knowledge of who reaps whom (sshd's per-connection processes, the pod's).
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
for r in $(seq "$K"); do
	mapfile -t order < <(printf '%s\n' "${names[@]}" | shuf)
	for name in "${order[@]}"; do
		cmd=${ROW[$name]}
		wait_quiet
		s0=$(pidtree_cpu "$API_PID" "$NODE_PID" "$SSHD_PID")
		m0=$(busy_ticks)
		t0=$(now)
		got=$(/usr/bin/time -f '%e %U %S' -o "$T/time.txt" bash -c "$cmd" 2>"$T/row.err")
		t1=$(now)
		sleep 0.3 # let sshd / the node reap the per-session processes
		s1=$(pidtree_cpu "$API_PID" "$NODE_PID" "$SSHD_PID")
		m1=$(busy_ticks)
		read -r n secs <<< "$got"
		[ "$n" = "$SIZE" ] || die "$name: got '$got' bytes, want $SIZE ($(head -c 300 "$T/row.err"))"
		[ -n "${secs:-}" ] || secs=$(echo "$t0 $t1" | awk '{print $2-$1}')
		read -r e u s < "$T/time.txt"
		tsv throughput.tsv "$name" "$r" "$n" "$secs" \
			"$(echo "$n $secs" | awk '{printf "%.1f", $1/1e6/$2}')" \
			"$(echo "$u $s" | awk '{printf "%.2f", $1+$2}')" \
			"$(echo "$s0 $s1 $CLK_TCK" | awk '{printf "%.2f", ($2-$1)/$3}')" \
			"$(echo "$u $s $s0 $s1 $CLK_TCK $n" | awk '{printf "%.3f", ($1+$2+($4-$3)/$5)/($6/1e9)}')" \
			"$(echo "$m0 $m1 $CLK_TCK $n" | awk '{printf "%.3f", ($2-$1)/$3/($4/1e9)}')"
	done
done
python3 "$(dirname "$0")/tp_report.py" "$OUTDIR/throughput.tsv" "$OUTDIR" "$OUT_ROW" "$IN_ROW" "$PF_ROW"
echo
echo "(load at end: $(load_now); TSV in $OUTDIR/throughput*.tsv)"
