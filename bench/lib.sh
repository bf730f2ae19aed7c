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

# ---------------------------------------------------------------------------
# Peers and floors (the other side of every comparison). Everything lives in
# $T and is stopped by PID / container id in peers_down; nothing outside $T is
# touched (the private mount namespaces keep /run and /sys/fs/cgroup/unified
# changes to themselves; LIBMOUNT_UTAB keeps mount(8) out of /run/mount).
# Needs `make bench-deps` (crun runc openssh-server containerd hyperfine time).

export LIBMOUNT_UTAB=${T}.utab
OUTDIR=${OUT_DIR:-$ROOT/bench/out}
HELPERS=$T.bin # compiled helpers survive bench_up's rm -rf "$T"
KUBEXEC=${KUBEXEC:-$B/src/cli/kubexec}

# tsv FILE FIELDS... : appends one tab-separated row to $OUTDIR/FILE.
tsv() {
	local f=$OUTDIR/$1; shift
	mkdir -p "$OUTDIR"
	(IFS=$'\t'; echo "$*") >> "$f"
}
# tsv_new FILE HEADER... : starts FILE afresh with a header row.
tsv_new() { mkdir -p "$OUTDIR"; : > "$OUTDIR/$1"; tsv "$@"; }

# load : "load average (1 min), busy % over 1 s" for the record.
load_now() { echo "load $(cut -d' ' -f1 /proc/loadavg), $(busy_pct)% busy"; }

# Compiles bench/floor.c, rawbench.c and tlsfloor.c (twice) into $HELPERS when stale.
build_helpers() {
	mkdir -p "$HELPERS"
	local s
	for s in floor rawbench tlsfloor tlsfloor-mbedtls; do
		local src=${s%-mbedtls} libs=
		if [ ! -x "$HELPERS/$s" ] || [ "$ROOT/bench/$src.c" -nt "$HELPERS/$s" ]; then
			case $s in
			*-mbedtls) libs="-DMBEDTLS -lmbedtls -lmbedx509 -lmbedcrypto" ;;
			floor) ;;
			*) libs="-lssl -lcrypto" ;;
			esac
			cc -O2 -Wall -Wextra -Werror -o "$HELPERS/$s" "$ROOT/bench/$src.c" $libs || die "cc $src.c failed"
		fi
	done
}

# pod_pid : host PID of the demo pod's container init (its `sh -c ... sleep 1` loop).
pod_pid() {
	local p
	for p in $(descendants "$NODE_PID"); do
		tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q '^sh -c i=0' && { echo "$p"; return 0; }
	done
	return 1
}

# ours_cli : 0 when $KUBEXEC exists and `kubexec exec demo -- true` works.
ours_cli() {
	[ -x "$KUBEXEC" ] || return 1
	KUBECONFIG=$T/api/admin.kubeconfig timeout 10 "$KUBEXEC" exec demo -- true >/dev/null 2>&1
}

# nopriv_mnt CMD... : CMD in a private mount namespace where cgroup2 at
# /sys/fs/cgroup/unified is hidden, so crun 1.8 sees plain cgroup v1 (it
# refuses this host's hybrid layout, baselines.md §2).
hide_unified() {
	unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"' sh "$@"
}

OCI=$T.oci
# oci_bundle NAME : an OCI bundle over the same busybox rootfs as the pod,
# running `sleep 100000`, no terminal, read-only root.
oci_bundle() {
	local b=$OCI/$1
	mkdir -p "$b"
	[ -d "$OCI/img/busybox/bin" ] || bash "$ROOT/tests/integration/mkimage.sh" "$OCI/img" >/dev/null || die "mkimage"
	(cd "$b" && rm -f config.json && crun spec >/dev/null) || die "crun spec"
	jq --arg r "$OCI/img/busybox" '.process.args=["/bin/sleep","100000"] | .process.terminal=false |
		.root.path=$r | .root.readonly=true | .hostname="bench"' "$b/config.json" > "$b/config.json.new" &&
		mv "$b/config.json.new" "$b/config.json"
}

crun_up() {
	command -v crun >/dev/null || die "crun missing (make bench-deps)"
	crun_down
	oci_bundle crun
	hide_unified crun --root "$OCI/crun-state" run -d --bundle "$OCI/crun" kxbench-crun </dev/null >/dev/null 2>"$OCI/crun.err" ||
		die "crun run failed: $(cat "$OCI/crun.err")"
}
crun_down() {
	[ -d "$OCI/crun-state/kxbench-crun" ] || return 0
	hide_unified crun --root "$OCI/crun-state" delete -f kxbench-crun >/dev/null 2>&1
}
runc_up() {
	command -v runc >/dev/null || die "runc missing (make bench-deps)"
	runc_down
	oci_bundle runc
	runc --root "$OCI/runc-state" run -d --bundle "$OCI/runc" kxbench-runc </dev/null >/dev/null 2>"$OCI/runc.err" ||
		die "runc run failed: $(cat "$OCI/runc.err")"
}
runc_down() {
	[ -d "$OCI/runc-state/kxbench-runc" ] || return 0
	runc --root "$OCI/runc-state" delete -f kxbench-runc >/dev/null 2>&1
}

# sshd on 127.0.0.1:$SSH_PORT with throwaway keys, in a private mount
# namespace (tmpfs /run for the privsep dir; an /etc/passwd copy giving root
# /bin/sh so root's ~/.bashrc, which runs pyenv here, stays out of every command).
SSHD=$T.ssh
SSHCFG=$SSHD/ssh_config
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sshd_up() {
	[ -x /usr/sbin/sshd ] || die "sshd missing (make bench-deps)"
	sshd_down
	rm -rf "$SSHD" && mkdir -p "$SSHD" && chmod 700 "$SSHD"
	ssh-keygen -q -t ed25519 -N '' -f "$SSHD/host_key" && ssh-keygen -q -t ed25519 -N '' -f "$SSHD/id" || die "ssh-keygen"
	cp "$SSHD/id.pub" "$SSHD/authorized_keys"
	sed 's|^root:\([^:]*\):\([^:]*\):\([^:]*\):\([^:]*\):\([^:]*\):.*|root:\1:\2:\3:\4:\5:/bin/sh|' /etc/passwd > "$SSHD/passwd"
	SSH_PORT=$(free_port)
	cat > "$SSHD/sshd_config" <<S
ListenAddress 127.0.0.1
Port $SSH_PORT
HostKey $SSHD/host_key
PidFile none
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
StrictModes no
AuthorizedKeysFile $SSHD/authorized_keys
MaxStartups 2000
MaxSessions 2000
S
	cat > "$SSHCFG" <<S
Host bench bench-mux
  HostName 127.0.0.1
  Port $SSH_PORT
  User root
  IdentityFile $SSHD/id
  IdentitiesOnly yes
  BatchMode yes
  StrictHostKeyChecking no
  UserKnownHostsFile $SSHD/known_hosts
  LogLevel ERROR
Host bench-mux
  ControlMaster auto
  ControlPersist yes
  ControlPath $SSHD/cm-%C
S
	setsid unshare -m --propagation private sh -c '
		mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/sshd && mount --bind "$1/passwd" /etc/passwd &&
		exec /usr/sbin/sshd -D -e -f "$1/sshd_config"' sh "$SSHD" </dev/null >"$SSHD/sshd.log" 2>&1 &
	SSHD_PID=$!
	echo "$SSHD_PID" > "$SSHD/sshd.pid"
	local i
	for i in $(seq 50); do ssh -F "$SSHCFG" bench true 2>/dev/null && break; sleep 0.2; done
	ssh -F "$SSHCFG" bench true || die "sshd did not come up (see $SSHD/sshd.log)"
	ssh -F "$SSHCFG" -fN bench-mux || die "ssh ControlMaster failed"
}
sshd_down() {
	[ -f "$SSHCFG" ] && ssh -F "$SSHCFG" -O exit bench-mux >/dev/null 2>&1
	local p
	[ -s "$SSHD/sshd.pid" ] || return 0
	p=$(cat "$SSHD/sshd.pid")
	if [ -r "/proc/$p/cmdline" ] && tr '\0' ' ' < "/proc/$p/cmdline" | grep -q -- "$SSHD/sshd_config"; then
		kill "$p" 2>/dev/null
	fi
	rm -f "$SSHD/sshd.pid"
}

# pidtree_cpu PID... : utime+stime+cutime+cstime ticks summed over the PIDs.
pidtree_cpu() { local p s=0; for p in "$@"; do s=$((s + $(cpu_ticks "$p"))); done; echo $s; }

# containerd 1.6 (CRI plugin off) + shim-runc-v2 + runc with one container
# from the same busybox rootfs, in a private mount namespace with a tmpfs on
# /run (the shim socket and ctr FIFO directories are hard-wired there).
CTD=$T.ctd
ctd_up() {
	command -v containerd >/dev/null || die "containerd missing (make bench-deps)"
	ctd_down
	rm -rf "$CTD" && mkdir -p "$CTD"
	[ -d "$OCI/img/busybox/bin" ] || bash "$ROOT/tests/integration/mkimage.sh" "$OCI/img" >/dev/null || die "mkimage"
	cat > "$CTD/config.toml" <<C
version = 2
root = "$CTD/root"
state = "$CTD/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTD/ctd.sock"
C
	CTD_CG_NEW=$([ -d /sys/fs/cgroup/memory/default ] && echo 0 || echo 1)
	echo "$CTD_CG_NEW" > "$CTD/cg_new"
	setsid unshare -m --propagation private sh -c 'mount -t tmpfs -o mode=755 tmpfs /run && exec containerd --config "$1"' sh "$CTD/config.toml" \
		</dev/null >"$CTD/containerd.log" 2>&1 &
	CTD_PID=$!
	echo "$CTD_PID" > "$CTD/pid"
	local i
	for i in $(seq 100); do [ -S "$CTD/ctd.sock" ] && break; sleep 0.1; done
	ctr_ run -d --rootfs "$OCI/img/busybox" kxbench-ctd /bin/sleep 100000 >/dev/null 2>"$CTD/ctr.err" || die "ctr run failed: $(cat "$CTD/ctr.err")"
	SHIM_PID=$(ps -e -o pid=,args= | awk -v a="$CTD/ctd.sock" 'index($0, "containerd-shim") && index($0, a) {print $1; exit}')
}
ctr_() { nsenter -t "$CTD_PID" -m ctr --address "$CTD/ctd.sock" "$@"; }
ctd_down() {
	[ -s "$CTD/pid" ] || return 0
	CTD_PID=$(cat "$CTD/pid")
	if [ -r "/proc/$CTD_PID/cmdline" ] && tr '\0' ' ' < "/proc/$CTD_PID/cmdline" | grep -q -- "$CTD/config.toml"; then
		ctr_ task kill -s KILL kxbench-ctd >/dev/null 2>&1; sleep 0.3
		ctr_ task delete kxbench-ctd >/dev/null 2>&1
		ctr_ container delete kxbench-ctd >/dev/null 2>&1
		kill "$CTD_PID"
		for _ in $(seq 30); do [ -d "/proc/$CTD_PID" ] || break; sleep 0.1; done
	fi
	local s # a shim left behind (its container gone) serves only our socket
	for s in $(ps -e -o pid=,args= | awk -v a="$CTD/ctd.sock" 'index($0, "containerd-shim") && index($0, a) {print $1}'); do
		kill "$s" 2>/dev/null
	done
	if [ "$(cat "$CTD/cg_new" 2>/dev/null)" = 1 ]; then # the empty "default" parents ctr made
		rmdir /sys/fs/cgroup/*/default 2>/dev/null
	fi
	rm -f "$CTD/pid"
}

# tree_mem_exe PID EXE : "RSS PSS USS NPROC" over PID and its descendants that
# run EXE (daemon-side processes only: the commands they run are left out).
tree_mem_exe() {
	local p
	for p in "$1" $(descendants "$1"); do
		[ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$2" ] && mem_kib "$p" 2>/dev/null
	done | awk '{r+=$1; p+=$2; u+=$3; n++} END{print r+0, p+0, u+0, n+0}'
}
