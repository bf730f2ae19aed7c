#!/bin/bash
# 20_throughput.sh - exec stdout and stdin throughput through
# kubexec-apiserver + kubexec-node, and CPU seconds per GB.
#   K=3 (runs per row), SIZE=1073741824 (bytes per run), VERSIONS="1.33 1.27"
# stdout: kubectl exec demo -- head -c SIZE /dev/zero | wc -c   (count checked)
# stdin:  head -c SIZE /dev/zero | kubectl exec -i demo -- sh -c 'cat > /dev/null'
#         (the count is checked once per version with `wc -c` in the pod)
# CPU s/GB: server = apiserver + node, from /proc/PID/stat utime+stime+
# cutime+cstime deltas (the node reaps the exec'd head/cat, so their CPU is
# in it); client = the measured shell pipeline (GNU time: kubectl, head/wc).
set -u
. "$(dirname "$0")/lib.sh"
K=${K:-3} SIZE=${SIZE:-1073741824} VERSIONS=${VERSIONS:-"1.33 1.27"}
trap bench_down EXIT
bench_up
echo "## exec throughput ($(date -u +%FT%TZ), $SIZE bytes per run, K=$K)"
echo
echo "| direction | kubectl | MB/s median [min..max] | server CPU s/GB (apiserver+node+remote cmd) | client CPU s/GB (kubectl+head/wc) | total CPU s/GB |"
echo "|---|---|---|---|---|---|"
KCF="--kubeconfig=$T/api/admin.kubeconfig"
for dir in stdout stdin; do
	for v in $VERSIONS; do
		kcb=$KC133; [ "$v" = 1.27 ] && kcb=$KC127
		kcmd="$kcb $KCF --cache-dir=$T/kcache-$v"
		if [ $dir = stdout ]; then
			cmd="$kcmd exec demo -- head -c $SIZE /dev/zero | wc -c"
		else
			got=$(head -c "$SIZE" /dev/zero | $kcmd exec -i demo -- wc -c 2>&1)
			[ "$got" = "$SIZE" ] || die "stdin check: pod counted '$got' bytes, want $SIZE"
			cmd="head -c $SIZE /dev/zero | $kcmd exec -i demo -- sh -c 'cat > /dev/null'; echo $SIZE"
		fi
		: > "$T/tp.txt"
		for i in $(seq "$K"); do
			wait_quiet
			a0=$(cpu_ticks "$API_PID") n0=$(cpu_ticks "$NODE_PID")
			got=$(/usr/bin/time -f '%e %U %S' -o "$T/time.txt" bash -c "$cmd")
			a1=$(cpu_ticks "$API_PID") n1=$(cpu_ticks "$NODE_PID")
			[ "$got" = "$SIZE" ] || die "$dir: got '$got' bytes, want $SIZE"
			read -r e u s < "$T/time.txt"
			echo "$e $u $s $((a1 - a0 + n1 - n0))" >> "$T/tp.txt"
		done
		mbs=$(awk -v n="$SIZE" '{print n/1e6/$1}' "$T/tp.txt" | med_range %.0f)
		srv=$(awk -v n="$SIZE" -v hz="$CLK_TCK" '{print $4/hz/(n/1e9)}' "$T/tp.txt" | med_range %.2f)
		cli=$(awk -v n="$SIZE" '{print ($2+$3)/(n/1e9)}' "$T/tp.txt" | med_range %.2f)
		tot=$(awk -v n="$SIZE" -v hz="$CLK_TCK" '{print ($2+$3+$4/hz)/(n/1e9)}' "$T/tp.txt" | med_range %.2f)
		echo "| $dir | $v | $mbs | $srv | $cli | $tot |"
	done
done
