# bench/lib.sh - shared helpers for the bench scripts (sourced, not run).
#
# Environment (all optional):
#   B       build dir with the binaries (default: /work/main/build-bench, a
#           release build: meson setup build-bench --buildtype=release -Dtests=false)
#   BIN     directory holding kubexec-apiserver and kubexec-node directly
#           (overrides B; used to compare saved "before" binaries)
#   T       scratch dir of the bench cluster (default /tmp/kx-bench)
#   KC133 / KC127   kubectl binaries (default: the Google Cloud SDK copies)
#   QUIET=0 skip waiting for a quiet machine before each measurement
#
# Each script that needs a cluster calls bench_up and traps bench_down; the
# daemons are stopped by the PIDs recorded here, nothing else is touched.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=${B:-$ROOT/build-bench}
T=${T:-/tmp/kx-bench}
if [ -n "${BIN:-}" ]; then
	APISERVER=$BIN/kubexec-apiserver NODE=$BIN/kubexec-node
else
	APISERVER=$B/src/apiserver/kubexec-apiserver NODE=$B/src/node/kubexec-node
fi
KC133=${KC133:-/usr/lib/google-cloud-sdk/bin/kubectl.1.33}
KC127=${KC127:-/usr/lib/google-cloud-sdk/bin/kubectl.1.27}
CLK_TCK=$(getconf CLK_TCK)

die() { echo "bench: $*" >&2; exit 1; }

# kc VERSION ARGS... : kubectl of that version with its own warm discovery cache.
kc() {
	local v=$1; shift
	local bin
	case $v in
	1.33) bin=$KC133 ;;
	1.27) bin=$KC127 ;;
	*) bin=/usr/lib/google-cloud-sdk/bin/kubectl.$v ;;
	esac
	"$bin" --kubeconfig="$T/api/admin.kubeconfig" --cache-dir="$T/kcache-$v" "$@"
}

# Starts apiserver + node in $T with the demo pod; waits until exec works.
bench_up() {
	[ -x "$APISERVER" ] && [ -x "$NODE" ] || die "binaries not found ($APISERVER, $NODE)"
	bench_down
	rm -rf "$T" && mkdir -p "$T/manifests" "$T/images"
	bash "$ROOT/tests/integration/mkimage.sh" "$T/images" >/dev/null 2>&1 || die "mkimage failed"
	cat > "$T/manifests/demo.yaml" <<'Y'
apiVersion: v1
kind: Pod
metadata:
  name: demo
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "i=0; while true; do i=$((i+1)); echo line $i; sleep 1; done"]
Y
	setsid "$APISERVER" --data-dir "$T/api" --listen 127.0.0.1:0 > "$T/api.log" 2>&1 < /dev/null &
	echo $! > "$T/api.pid"
	local i
	for i in $(seq 100); do
		[ -s "$T/api/admin.kubeconfig" ] && grep -q serving "$T/api.log" && break
		sleep 0.1
	done
	local url
	url=$(grep server: "$T/api/admin.kubeconfig" | awk '{print $2}')
	[ -n "$url" ] || die "apiserver did not start (see $T/api.log)"
	setsid "$NODE" --server "$url" --token-file "$T/api/node-token" --data-dir "$T/node" \
		--manifest-dir "$T/manifests" --image-dir "$T/images" --node-name n1 \
		--listen 127.0.0.1:0 > "$T/node.log" 2>&1 < /dev/null &
	echo $! > "$T/node.pid"
	API_PID=$(cat "$T/api.pid") NODE_PID=$(cat "$T/node.pid")
	for i in $(seq 100); do
		kc 1.33 exec demo -- true >/dev/null 2>&1 && kc 1.27 exec demo -- true >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	die "exec never worked (see $T/*.log)"
}

bench_down() {
	local f p
	for f in "$T/node.pid" "$T/api.pid"; do
		[ -s "$f" ] || continue
		p=$(cat "$f")
		# Only our own daemon: the pid must still run one of our binaries.
		if [ -r "/proc/$p/cmdline" ] && tr '\0' ' ' < "/proc/$p/cmdline" | grep -q -- "--data-dir $T/"; then
			kill "$p" 2>/dev/null
			for _ in $(seq 50); do [ -d "/proc/$p" ] || break; sleep 0.1; done
			[ -d "/proc/$p" ] && kill -9 "$p" 2>/dev/null
		fi
		rm -f "$f"
	done
}

# cpu_ticks PID : utime+stime+cutime+cstime (children reaped by PID count too:
# the node reaps the processes it execs, so their CPU lands here).
cpu_ticks() { awk '{print $14+$15+$16+$17}' "/proc/$1/stat"; }

# mem_kib PID : "RSS PSS USS" in KiB from smaps_rollup (USS = private clean+dirty).
mem_kib() {
	awk '/^Rss:/{r=$2} /^Pss:/{p=$2} /^Private_Clean:/{c=$2} /^Private_Dirty:/{d=$2}
	     END{print r, p, c+d}' "/proc/$1/smaps_rollup"
}

# Busy fraction (percent) of all CPUs over 1 s, from /proc/stat.
busy_pct() {
	local a b
	a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
	sleep 1
	b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
	echo "$a $b" | awk '{d=$4-$2; if (d<=0) d=1; printf "%d\n", 100*($3-$1)/d}'
}

# Waits (at most 60 s) for two consecutive 1 s samples at <= 5 % busy, as the
# baselines did; prints a warning when the machine never got quiet.
wait_quiet() {
	[ "${QUIET:-1}" = 0 ] && return 0
	local ok=0 i b
	for i in $(seq 60); do
		b=$(busy_pct)
		if [ "$b" -le 5 ]; then ok=$((ok + 1)); else ok=0; fi
		[ $ok -ge 2 ] && return 0
	done
	echo "# warning: machine not quiet (last sample ${b}% busy)" >&2
}

now() { date +%s.%N; }

# median of numbers on stdin; "median [min..max]" with fmt
med_range() {
	sort -g | awk -v f="${1:-%.1f}" '{a[NR]=$1} END{ if (NR==0) {print "-"; exit}
		m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2;
		printf (f " [" f ".." f "]\n"), m, a[1], a[NR]}'
}

# transport VERSION : how that kubectl's exec reaches us (from its -v=7 log).
transport() {
	local log
	log=$(kc "$1" -v=7 exec demo -- true 2>&1)
	if echo "$log" | grep -q 'RemoteCommand fallback'; then
		echo "WebSocket refused -> SPDY/3.1"
	elif echo "$log" | grep -qi 'Sec-Websocket-Protocol'; then
		echo "WebSocket v5"
	else
		echo "SPDY/3.1"
	fi
}

# descendants PID : every process below PID (children, grandchildren, ...).
descendants() {
	local kids k
	kids=$(ps -e -o pid=,ppid= | awk -v p="$1" '$2 == p { print $1 }')
	for k in $kids; do echo "$k"; descendants "$k"; done
}

# tree_mem PID : "RSS PSS USS NPROC" summed over PID and all its descendants.
tree_mem() {
	local p
	{ mem_kib "$1"; for p in $(descendants "$1"); do mem_kib "$p" 2>/dev/null; done; } |
		awk '{r+=$1; p+=$2; u+=$3; n++} END{print r, p, u, n}'
}
