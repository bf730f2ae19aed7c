#!/bin/bash
# tests/packages/run.sh — the distro packages, end to end (`make check-packages`).
#
# 1. `make deb` builds the Debian packages from a copy of the tree
#    (packaging/build-deb.sh -> build-pkg/deb/); lintian reports no error.
# 2. A throwaway Debian 12 root (debootstrap --variant=minbase, plus man-db;
#    the pristine root is cached as a tarball under ~/.cache/kubexec/) gets
#    the packages with `apt-get install ./….deb` in a chroot: apt pulls the
#    runtime libraries from deb.debian.org, every path `dpkg -L` lists exists,
#    the units are enabled, `man kubexec-node` renders.
# 3. systemd does not run there, so the test plays its part: it takes each
#    installed unit's ExecStart= (expanded with its Environment= and
#    EnvironmentFile=, tests/packages/unitexec.py), runs it in the chroot with
#    a $NOTIFY_SOCKET and waits for READY=1 (Type=notify), API server first
#    (After=). The node joins with the shipped defaults; a busybox pod (image
#    made by the shipped examples/mkimage.sh) in /etc/kubexec/manifests/ runs,
#    and the real kubectl execs into it.
# 4. Upgrade to a second build of the same tree with a bumped version: the
#    PKI, node-token, node certificate and manifest are unchanged and the
#    cluster comes back without a new join; remove keeps the state, purge
#    removes it (and the conffiles, enable links).
# 5. The RPM spec builds with rpmbuild (packaging/build-rpm.sh) and its
#    packages hold the binaries, man pages and units (rpm -qlp).
#
# The chroot's mounts (itself bound on itself, proc, sys, dev) live in a
# private mount namespace held by one process, and the daemons run in a
# private network namespace (so 6443/10250, the shipped ports, are free and
# nothing else on the host is touched): killing the holder (by PID, on every
# exit path) drops every mount. Needs root and the network to Debian's mirror.
#
# Prints one "ok N - …" / "not ok N - …" line per check, "# SKIP" for the
# kubexec CLI while the tree does not build src/cli, and "N passed, N failed".
# KX_KEEP=1 keeps the temp dir (daemon logs, the root). KX_PKG_KUBECTL_VERSIONS
# (default "1.33 1.20") picks the kubectl clients (tests/integration/kubectl-versions.sh).
set -u
cd "$(dirname "$0")/../.."
top=$(pwd)

OUT=$top/build-pkg
CACHE=${KUBEXEC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubexec}
MIRROR=${KX_PKG_MIRROR:-http://deb.debian.org/debian}
ROOT_TAR=$CACHE/pkgtest-bookworm-minbase-man-db.tar
KVERS=${KX_PKG_KUBECTL_VERSIONS:-"1.33 1.20"}
POD=pkgtest$$

passed=0 failed=0 n=0
ok() { n=$((n + 1)); passed=$((passed + 1)); printf 'ok %d - %s\n' "$n" "$1"; }
fail() { n=$((n + 1)); failed=$((failed + 1)); printf 'not ok %d - %s\n' "$n" "$1"; [ -n "${2:-}" ] && printf '#   %s\n' "$2" | head -20; return 0; }
skip() { printf 'ok - %s # SKIP %s\n' "$1" "$2"; }
check() { # NAME CMD... : ok if CMD succeeds, else fail with its output
	local name=$1 outp
	shift
	if outp=$("$@" 2>&1); then ok "$name"; else fail "$name" "$(printf '%s' "$outp" | tail -5)"; fi
}
note() { printf '# %s\n' "$*"; }
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ] && exit 0 || exit 1
}

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (debootstrap, chroot, namespaces)" >&2; echo "0 passed, 1 failed"; exit 1; }
for t in debootstrap dpkg-buildpackage lintian rpmbuild rpm unshare nsenter python3 tar; do
	command -v "$t" >/dev/null || { echo "run.sh: $t missing (make deps-packages)" >&2; echo "0 passed, 1 failed"; exit 1; }
done

T=$(mktemp -d /tmp/kubexec-pkg.XXXXXX)
R=$T/root
PIDS=()     # daemons and listeners, killed in reverse order
HOLDER=     # PID 1 of the test's PID namespace, holding its mount + network namespaces
HOLDER_PARENT=  # the unshare process above it (our child)
cleanup() {
	local i
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		kill -TERM "${PIDS[i]}" 2>/dev/null
	done
	# As long as systemd would give the node to stop its pods (TimeoutStopSec).
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		for _ in $(seq 450); do kill -0 "${PIDS[i]}" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "${PIDS[i]}" 2>/dev/null
	done
	stop_holder
	# The mounts lived in the holder's namespace; nothing may be left on the host.
	if grep -q " $T/" /proc/self/mounts; then
		echo "run.sh: mounts left under $T:" >&2
		grep " $T/" /proc/self/mounts >&2
	elif [ "${KX_KEEP:-0}" = 1 ]; then
		echo "run.sh: kept $T" >&2
	else
		rm -rf --one-file-system "$T"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the namespaces and the chroot --------------------------------------------

# start_holder: PID 1 of a new PID namespace, in a new mount namespace
# (private propagation) and a new network namespace with lo up, where the root
# is bound on itself (the runtime's pivot_root needs the root to be a mount
# point) with its own proc, sys and dev. Everything the test runs in the root
# joins that PID namespace, so killing the holder kills whatever is left
# (a daemon, a pod's processes) on any exit path, and drops the mounts.
start_holder() {
	mkfifo "$T/holder.fifo"
	unshare --mount --propagation private --net --pid --fork -- bash -c '
		R=$1
		mount --bind "$R" "$R" && mount -t proc proc "$R/proc" &&
		mount --rbind /sys "$R/sys" && mount --rbind /dev "$R/dev" &&
		ip link set lo up && echo up >"$2" || { echo fail >"$2"; exit 1; }
		exec sleep infinity' holder "$R" "$T/holder.fifo" 2>"$T/holder.err" &
	HOLDER_PARENT=$!
	[ "$(cat "$T/holder.fifo")" = up ] || return 1
	HOLDER=$(ps -o pid= --ppid "$HOLDER_PARENT" | tr -d ' ')
	[ -n "$HOLDER" ]
}
stop_holder() {
	[ -n "$HOLDER_PARENT" ] || return 0
	[ -n "$HOLDER" ] && kill -KILL "$HOLDER" 2>/dev/null
	wait "$HOLDER_PARENT" 2>/dev/null
	HOLDER= HOLDER_PARENT=
	rm -f "$T/holder.fifo"
}
# in_root CMD...: run in the chroot with the host's network (apt).
in_root() { nsenter -t "$HOLDER" -m -p -- chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }
# in_net CMD...: run on the host, in the test's network namespace (kubectl).
in_net() { nsenter -t "$HOLDER" -n -- "$@"; }

# The pristine root: debootstrap once, then reuse the tarball.
make_root() {
	if [ ! -s "$ROOT_TAR" ]; then
		note "debootstrap of Debian 12 (cached as $ROOT_TAR)"
		mkdir -p "$CACHE"
		local d=$T/bootstrap
		debootstrap --variant=minbase --include=man-db bookworm "$d" "$MIRROR" >"$T/debootstrap.log" 2>&1 ||
			{ tail -5 "$T/debootstrap.log" >&2; return 1; }
		rm -rf "$d"/var/cache/apt/archives/*.deb
		tar -C "$d" -cf "$ROOT_TAR.tmp" . && mv "$ROOT_TAR.tmp" "$ROOT_TAR"
		rm -rf --one-file-system "$d"
	fi
	mkdir -p "$R"
	tar -C "$R" -xf "$ROOT_TAR" &&
		cp /etc/resolv.conf "$R/etc/resolv.conf" &&
		echo "deb $MIRROR bookworm main" >"$R/etc/apt/sources.list"
}

# --- the daemons, as systemd would start them ---------------------------------

# start_unit UNIT NOTIFY_ADDR LOG: run the unit's ExecStart in the chroot and
# the test's network and PID namespaces, with NOTIFY_SOCKET=NOTIFY_ADDR. Sets
# START_PID, the daemon (signals go there), and START_WAIT, the nsenter above
# it (our child, exits with the daemon's status: `wait` on it).
# A listener (in the same network namespace, for an abstract address) records
# the notifications in LOG.notify.
start_unit() {
	local unit=$1 addr=$2 log=$3 cmd listen
	START_PID= START_WAIT= LISTEN_PID=
	listen=$addr
	[ "${addr:0:1}" = / ] && listen=$R$addr
	: >"$log.notify"
	# nsenter itself in the background (not a shell function): $! is then the
	# listener's own PID, which cleanup can kill.
	nsenter -t "$HOLDER" -n -- python3 "$top/tests/packages/notify-listen.py" "$listen" "$log.notify" &
	PIDS+=($!)
	LISTEN_PID=$!
	for _ in $(seq 50); do
		if [ "${addr:0:1}" = / ]; then [ -S "$listen" ] && break
		else in_net python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); s.connect("\0"+sys.argv[1][1:])' "$addr" 2>/dev/null && break; fi
		sleep 0.1
	done
	mapfile -d '' cmd < <(python3 "$top/tests/packages/unitexec.py" "$R" "$unit" "NOTIFY_SOCKET=$addr")
	[ ${#cmd[@]} -gt 3 ] || { echo "cannot read ExecStart of $unit" >"$log"; return 1; }
	printf '%q ' "${cmd[@]}" >"$log.cmdline"
	nsenter -t "$HOLDER" -m -n -p -- chroot "$R" "${cmd[@]}" >"$log" 2>&1 </dev/null &
	START_WAIT=$!
	for _ in $(seq 50); do
		START_PID=$(ps -o pid= --ppid "$START_WAIT" | tr -d ' ')
		[ -n "$START_PID" ] && break
		sleep 0.1
	done
	[ -n "$START_PID" ] || { echo "$unit did not start" >>"$log"; return 1; }
	PIDS+=("$START_PID")
}
# wait_notify LOG WORD SECONDS: the notifications in LOG.notify hold WORD.
wait_notify() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -q "^$2" "$1.notify" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
# stop_pid PID WAITPID NAME: SIGTERM to PID, then its exit status, 0, from
# WAITPID (its nsenter, this shell's child: not in a $(...)) within 45 s (the
# unit's TimeoutStopSec); else STOP_MSG says why.
stop_pid() {
	local pid=$1 wpid=$2 rc
	STOP_MSG=
	kill -TERM "$pid" 2>/dev/null || { STOP_MSG="$3 was not running"; return 1; }
	for _ in $(seq 450); do kill -0 "$wpid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$wpid" 2>/dev/null && { kill -KILL "$pid"; STOP_MSG="$3 did not stop within 45 s of SIGTERM"; return 1; }
	wait "$wpid"
	rc=$?
	[ "$rc" -eq 0 ] || { STOP_MSG="$3 exited $rc"; return 1; }
}

# kubectl through the installed apiserver's admin.kubeconfig, in the test netns.
KUBECONFIG_IN_ROOT=/var/lib/kubexec/apiserver/admin.kubeconfig
kc() { # VERSION ARGS...
	local v=$1
	shift
	in_net env HOME="$T/home-$v" timeout 60 "${KUBECTL[$v]}" --kubeconfig "$R$KUBECONFIG_IN_ROOT" \
		--cache-dir "$T/home-$v/cache" "$@"
}
wait_pod_running() { # VERSION SECONDS
	local i phase
	for ((i = 0; i < $2; i++)); do
		phase=$(kc "$1" get pod "$POD" -o 'jsonpath={.status.phase}' 2>/dev/null)
		[ "$phase" = Running ] && return 0
		sleep 1
	done
	echo "pod $POD: phase '${phase:-none}' after $2 s"
	return 1
}

# cluster_up LABEL: apiserver then node from their units; sets API_PID NODE_PID.
cluster_up() {
	local label=$1
	start_unit kubexec-apiserver.service "@kubexec-pkgtest-$$-api" "$T/$label-apiserver.log"
	API_PID=$START_PID API_WAIT=$START_WAIT LISTENERS="$LISTEN_PID"
	if [ -n "${API_PID:-}" ] && wait_notify "$T/$label-apiserver.log" READY=1 20; then
		ok "[$label] kubexec-apiserver from its unit's ExecStart sends READY=1 (abstract \$NOTIFY_SOCKET)"
	else
		fail "[$label] kubexec-apiserver from its unit's ExecStart sends READY=1" "$(tail -3 "$T/$label-apiserver.log")"
		return 1
	fi
	start_unit kubexec-node.service "/run/kubexec-pkgtest-node.sock" "$T/$label-node.log"
	NODE_PID=$START_PID NODE_WAIT=$START_WAIT LISTENERS="$LISTENERS $LISTEN_PID"
	if [ -n "${NODE_PID:-}" ] && wait_notify "$T/$label-node.log" READY=1 60; then
		ok "[$label] kubexec-node from its unit's ExecStart joins with the shipped defaults, READY=1 (path \$NOTIFY_SOCKET)"
	else
		fail "[$label] kubexec-node from its unit's ExecStart joins and sends READY=1" "$(tail -3 "$T/$label-node.log")"
		return 1
	fi
}
# exec_checks LABEL: kubectl exec into the pod with each kubectl version.
exec_checks() {
	local label=$1 v outp rc
	for v in $KVERS; do
		if ! wait_pod_running "$v" 60 >"$T/wait.out" 2>&1; then
			fail "[$label] kubectl $v: pod $POD from /etc/kubexec/manifests is Running" "$(cat "$T/wait.out"; tail -3 "$T/$label-node.log")"
			continue
		fi
		outp=$(kc "$v" exec "$POD" -- sh -c 'echo "hello from $(hostname)"; exit 7' 2>"$T/exec.err")
		rc=$?
		if [ "$rc" -eq 7 ] && [ "$outp" = "hello from $POD" ]; then
			ok "[$label] kubectl $v exec into $POD: stdout 'hello from $POD', exit code 7"
		else
			fail "[$label] kubectl $v exec into $POD: stdout and exit code 7" "exit $rc, stdout: $outp, stderr: $(cat "$T/exec.err")"
		fi
	done
	if [ "$cli" = 1 ]; then
		# The packaged CLI, inside the root, with the installed kubeconfig.
		outp=$(nsenter -t "$HOLDER" -m -n -p -- chroot "$R" timeout 60 kubexec --kubeconfig "$KUBECONFIG_IN_ROOT" \
			exec "$POD" -- sh -c 'echo "hello from $(hostname)"; exit 7' 2>"$T/exec.err")
		rc=$?
		if [ "$rc" -eq 7 ] && [ "$outp" = "hello from $POD" ]; then
			ok "[$label] packaged kubexec (CLI) exec into $POD: stdout 'hello from $POD', exit code 7"
		else
			fail "[$label] packaged kubexec (CLI) exec into $POD: stdout and exit code 7" "exit $rc, stdout: $outp, stderr: $(cat "$T/exec.err")"
		fi
	fi
}
cluster_down() { # LABEL
	local label=$1
	if [ -n "${NODE_PID:-}" ]; then
		if stop_pid "$NODE_PID" "$NODE_WAIT" kubexec-node && grep -q '^STOPPING=1' "$T/$label-node.log.notify"; then
			ok "[$label] kubexec-node: SIGTERM -> STOPPING=1, stops its pods, exits 0"
		else
			fail "[$label] kubexec-node: SIGTERM -> STOPPING=1, stops its pods, exits 0" "${STOP_MSG:-no STOPPING=1}"
		fi
	fi
	if [ -n "${API_PID:-}" ]; then
		if stop_pid "$API_PID" "$API_WAIT" kubexec-apiserver && grep -q '^STOPPING=1' "$T/$label-apiserver.log.notify"; then
			ok "[$label] kubexec-apiserver: SIGTERM -> STOPPING=1, exits 0"
		else
			fail "[$label] kubexec-apiserver: SIGTERM -> STOPPING=1, exits 0" "${STOP_MSG:-no STOPPING=1}"
		fi
	fi
	local l
	for l in ${LISTENERS:-}; do kill -TERM "$l" 2>/dev/null; wait "$l" 2>/dev/null; done
	NODE_PID= API_PID= LISTENERS=
}

# State that must survive an upgrade: sha256 of each file.
state_sums() {
	(cd "$R" && sha256sum var/lib/kubexec/apiserver/pki/* var/lib/kubexec/apiserver/node-token \
		var/lib/kubexec/apiserver/admin.kubeconfig var/lib/kubexec/node/pki/* \
		"etc/kubexec/manifests/$POD.yaml" 2>&1)
}

# --- 1. build ------------------------------------------------------------------

echo "# 1. make deb, lintian"
t0=$(date +%s)
if make -s deb >"$T/make-deb.log" 2>&1; then
	ok "make deb builds the packages from a copy of the tree ($(($(date +%s) - t0)) s)"
else
	fail "make deb builds the packages" "$(tail -15 "$T/make-deb.log")"
	finish
fi
DEB=$OUT/deb
VER=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
NEXT=$VER+pkgtest1
cli=1
if [ -e "$DEB/cli-missing" ]; then
	cli=0
	skip "kubexec (CLI) package built" "meson.build does not build src/cli yet"
fi
pkgs=(kubexec-apiserver kubexec-node)
[ "$cli" = 1 ] && pkgs+=(kubexec)
missing=
for p in "${pkgs[@]}"; do
	[ -s "$DEB/${p}_${VER}_$(dpkg --print-architecture).deb" ] || missing="$missing $p"
done
[ -z "$missing" ] && ok "packages built: ${pkgs[*]} ($VER)" || fail "packages built: ${pkgs[*]}" "missing:$missing"
nE=$(grep -c '^E:' "$DEB/lintian.txt")
nW=$(grep -c '^W:' "$DEB/lintian.txt")
[ "$nE" -eq 0 ] && ok "lintian: no errors ($nW warnings, $(grep -c '^I:' "$DEB/lintian.txt") info)" ||
	fail "lintian: no errors" "$(grep '^E:' "$DEB/lintian.txt")"
grep '^[EWI]:' "$DEB/lintian.txt" | sed 's/^/#   lintian /'

t0=$(date +%s)
if packaging/build-deb.sh "$OUT/deb-next" "$NEXT" >"$T/build-next.log" 2>&1; then
	ok "second build of the tree as $NEXT, for the upgrade ($(($(date +%s) - t0)) s)"
else
	fail "second build of the tree as $NEXT" "$(tail -15 "$T/build-next.log")"
	finish
fi

# --- 2. install in a fresh Debian 12 --------------------------------------------

echo "# 2. apt-get install ./….deb in a debootstrapped Debian 12"
t0=$(date +%s)
if make_root && start_holder; then
	ok "throwaway Debian 12 root and namespaces ready ($(($(date +%s) - t0)) s)"
else
	fail "throwaway Debian 12 root" "$(tail -n 5 "$T/debootstrap.log" "$T/holder.err" 2>/dev/null)"
	finish
fi
if in_root apt-get update >"$T/apt-update.log" 2>&1; then :; else
	fail "apt-get update in the root" "$(tail -5 "$T/apt-update.log")"
	finish
fi
in_root dpkg-query -W -f '${Package}\n' | sort >"$T/before.list"
mkdir -p "$R/tmp/debs" "$R/tmp/debs-next"
debs=() debs_next=()
for p in "${pkgs[@]}"; do
	cp "$DEB/${p}_${VER}_"*.deb "$R/tmp/debs/" && debs+=("$(basename "$DEB/${p}_${VER}_"*.deb)")
	cp "$OUT/deb-next/${p}_${NEXT}_"*.deb "$R/tmp/debs-next/" && debs_next+=("$(basename "$OUT/deb-next/${p}_${NEXT}_"*.deb)")
done
t0=$(date +%s)
if in_root apt-get install -y $(printf './tmp/debs/%s ' "${debs[@]}") >"$T/apt-install.log" 2>&1; then
	ok "apt-get install ./….deb of ${pkgs[*]} ($(($(date +%s) - t0)) s)"
else
	fail "apt-get install ./….deb" "$(tail -10 "$T/apt-install.log")"
	finish
fi
in_root dpkg-query -W -f '${Package}\n' | sort >"$T/after.list"
pulled=$(comm -13 "$T/before.list" "$T/after.list" | tr '\n' ' ')
note "apt added: $pulled"
bad=
for p in "${pkgs[@]}"; do
	# Every package named in Depends: (first alternative) is now installed.
	for d in $(in_root dpkg-query -W -f '${Depends}' "$p" | tr ',' '\n' | sed 's/|.*//; s/(.*//; s/ //g'); do
		in_root dpkg-query -W -f '${Status}' "$d" 2>/dev/null | grep -q 'install ok installed' || bad="$bad $p->$d"
	done
done
for lib in libuv1 libhttp-parser2.9 libjson-c5 libyaml-0-2 libwslay1 libmbedtls14; do
	grep -qx "$lib" "$T/before.list" && bad="$bad $lib-was-already-there"
	grep -qx "$lib" "$T/after.list" || bad="$bad $lib-not-installed"
done
[ -z "$bad" ] && ok "apt pulled the runtime dependencies (libuv1, libhttp-parser2.9, libjson-c5, libyaml-0-2, libwslay1, libmbedtls14, ...)" ||
	fail "apt pulled the runtime dependencies" "$bad"

bad= nfiles=0
for p in "${pkgs[@]}"; do
	while IFS= read -r f; do
		case $f in /.) continue ;; esac
		nfiles=$((nfiles + 1))
		[ -e "$R$f" ] || [ -L "$R$f" ] || bad="$bad $f"
	done < <(in_root dpkg -L "$p")
done
[ -z "$bad" ] && [ "$nfiles" -gt 20 ] && ok "every path dpkg -L lists exists ($nfiles paths)" || fail "every path dpkg -L lists exists" "missing:$bad"
want="/usr/sbin/kubexec-apiserver /usr/sbin/kubexec-node /usr/share/man/man8/kubexec-apiserver.8.gz
/usr/share/man/man8/kubexec-node.8.gz /lib/systemd/system/kubexec-apiserver.service
/lib/systemd/system/kubexec-node.service /etc/kubexec/apiserver.env /etc/kubexec/node.env
/etc/kubexec/manifests /var/lib/kubexec/images /usr/share/doc/kubexec-node/examples/mkimage.sh"
[ "$cli" = 1 ] && want="$want /usr/bin/kubexec"
[ "$cli" = 1 ] && [ ! -e "$DEB/cli-man-missing" ] && want="$want /usr/share/man/man1/kubexec.1.gz"
bad=
for f in $want; do in_root dpkg -S "$f" >/dev/null 2>&1 || bad="$bad $f"; done
[ -z "$bad" ] && ok "binaries, man pages, units, conffiles, dirs are where dpkg -S says" || fail "expected paths owned by the packages" "$bad"
conff=$(in_root dpkg-query -W -f '${Conffiles}\n' kubexec-apiserver kubexec-node | awk 'NF {print $1}' | sort | tr '\n' ' ')
[ "$conff" = "/etc/kubexec/apiserver.env /etc/kubexec/node.env " ] && ok "conffiles: $conff" || fail "conffiles" "got: $conff"
bad=
for u in kubexec-apiserver kubexec-node; do
	[ -L "$R/etc/systemd/system/multi-user.target.wants/$u.service" ] || bad="$bad $u"
done
[ -z "$bad" ] && ok "units enabled on install (multi-user.target.wants links)" || fail "units enabled on install" "not enabled:$bad"
if command -v systemd-analyze >/dev/null; then
	# The host's systemd checks the installed unit files (the root has no
	# systemd); the binaries and man pages it looks for are in the root, not here.
	outp=$(systemd-analyze verify "$R/lib/systemd/system/kubexec-apiserver.service" \
		"$R/lib/systemd/system/kubexec-node.service" 2>&1 |
		grep -v "Command /usr/sbin/kubexec-[a-z]* is not executable\|Command 'man kubexec-[a-z]*(8)' failed" || true)
	[ -z "$outp" ] && ok "systemd-analyze verify of the installed units: clean" || fail "systemd-analyze verify" "$outp"
fi
vers=$(in_root kubexec-node --version 2>&1; in_root kubexec-apiserver --version 2>&1)
[ -n "$vers" ] && ok "installed binaries run: $(echo $vers)" || fail "installed binaries run" "$vers"
for m in kubexec-node kubexec-apiserver; do
	outp=$(in_root env MANPAGER=cat MANWIDTH=80 man "$m" 2>&1)
	if printf '%s' "$outp" | grep -q '^NAME' && printf '%s' "$outp" | grep -q "$m"; then
		ok "man $m renders ($(printf '%s\n' "$outp" | wc -l) lines)"
	else
		fail "man $m renders" "$(printf '%s' "$outp" | head -3)"
	fi
done
if [ "$cli" = 1 ]; then
	check "kubexec (CLI) runs: kubexec --help" in_root kubexec --help
	if [ -e "$DEB/cli-man-missing" ]; then
		skip "man kubexec renders" "man/meson.build does not install kubexec.1 yet"
	else
		outp=$(in_root env MANPAGER=cat MANWIDTH=80 man 1 kubexec 2>&1)
		printf '%s' "$outp" | grep -q '^NAME' && ok "man kubexec renders" || fail "man kubexec renders" "$(printf '%s' "$outp" | head -3)"
	fi
else
	skip "kubexec (CLI) installed and man kubexec" "meson.build does not build src/cli yet"
fi

# --- 3. the cluster from the units' ExecStart ------------------------------------

echo "# 3. the units' ExecStart lines bring a cluster up; kubectl exec"
declare -A KUBECTL
for v in $KVERS; do
	KUBECTL[$v]=$(KUBEXEC_KUBECTL_VERSIONS=$v tests/integration/kubectl-versions.sh 2>/dev/null | awk '{print $2}')
	[ -x "${KUBECTL[$v]:-}" ] || { fail "kubectl $v found (tests/integration/kubectl-versions.sh)"; unset "KUBECTL[$v]"; }
	mkdir -p "$T/home-$v"
done
KVERS=${!KUBECTL[*]}
if in_root apt-get install -y --no-install-recommends busybox-static >"$T/apt-busybox.log" 2>&1 &&
	in_root /usr/share/doc/kubexec-node/examples/mkimage.sh /var/lib/kubexec/images >"$T/mkimage.log" 2>&1 &&
	[ -x "$R/var/lib/kubexec/images/busybox/bin/sh" ]; then
	ok "shipped examples/mkimage.sh makes /var/lib/kubexec/images/busybox (busybox-static from apt)"
else
	fail "shipped examples/mkimage.sh makes the busybox image" "$(tail -n 3 "$T/apt-busybox.log" "$T/mkimage.log")"
fi
cat >"$R/etc/kubexec/manifests/$POD.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $POD
spec:
  containers:
  - name: main
    image: busybox
    command: ["sleep", "1000000"]
EOF
note "node command line: $(python3 tests/packages/unitexec.py "$R" kubexec-node.service | tr '\0' ' ' | sed 's/.*PATH=[^ ]* //')"
up=0 NODE_PID= API_PID=
if cluster_up v1; then
	up=1
	exec_checks v1
	# Logs: where the kubelet keeps them (the unit's --pod-log-dir).
	ls "$R"/var/log/pods/default_"$POD"/main/0.log >/dev/null 2>&1 &&
		ok "pod logs in /var/log/pods/default_$POD/main/0.log" || fail "pod logs in /var/log/pods/default_$POD/main/"
fi
cluster_down v1
sums_before=$(state_sums)

# --- 4. upgrade, remove, purge ----------------------------------------------------

echo "# 4. upgrade to $NEXT, remove, purge"
if in_root apt-get install -y $(printf './tmp/debs-next/%s ' "${debs_next[@]}") >"$T/apt-upgrade.log" 2>&1; then
	got=$(in_root dpkg-query -W -f '${Version} ' "${pkgs[@]}")
	[ "$got" = "$(printf "$NEXT %.0s" "${pkgs[@]}")" ] && ok "apt-get install ./….deb upgrades to $NEXT" ||
		fail "upgrade to $NEXT" "versions: $got"
else
	fail "apt-get install ./….deb upgrades to $NEXT" "$(tail -10 "$T/apt-upgrade.log")"
fi
sums_after=$(state_sums)
if [ "$sums_before" = "$sums_after" ] && ! printf '%s' "$sums_after" | grep -q 'No such file'; then
	ok "upgrade keeps PKI, node-token, admin.kubeconfig, node certificate, manifest ($(printf '%s\n' "$sums_after" | wc -l) files)"
else
	fail "upgrade keeps the state" "$(diff <(echo "$sums_before") <(echo "$sums_after") | head -5)"
fi
bad=
for u in kubexec-apiserver kubexec-node; do
	[ -L "$R/etc/systemd/system/multi-user.target.wants/$u.service" ] || bad="$bad $u"
done
[ -z "$bad" ] && ok "units still enabled after the upgrade" || fail "units still enabled after the upgrade" "$bad"
if in_root apt-get install -y --reinstall $(printf './tmp/debs-next/%s ' "${debs_next[@]}") >"$T/apt-reinstall.log" 2>&1; then
	ok "reinstall (maintainer scripts run again): fine"
else
	fail "reinstall" "$(tail -5 "$T/apt-reinstall.log")"
fi
if [ "$up" = 1 ]; then
	if cluster_up v2; then
		grep -q 'joined the cluster' "$T/v2-node.log" && fail "node kept its identity across the upgrade (no new join)" ||
			ok "node kept its identity across the upgrade (no new join)"
		exec_checks v2
	fi
	cluster_down v2
fi

if in_root apt-get remove -y "${pkgs[@]}" >"$T/apt-remove.log" 2>&1; then
	bad=
	for f in /usr/sbin/kubexec-apiserver /usr/sbin/kubexec-node; do [ -e "$R$f" ] && bad="$bad $f-still-there"; done
	for f in /var/lib/kubexec/apiserver/node-token /var/lib/kubexec/apiserver/pki/ca.crt /var/lib/kubexec/node/pki/node.crt \
		/var/lib/kubexec/images/busybox/bin/busybox /etc/kubexec/node.env /etc/kubexec/apiserver.env; do
		[ -e "$R$f" ] || bad="$bad $f-gone"
	done
	st=$(in_root dpkg-query -W -f '${db:Status-Abbrev}' kubexec-node)
	[ -z "$bad" ] && ok "remove: binaries gone, state and conffiles kept (status '$st')" || fail "remove keeps state" "$bad"
else
	fail "apt-get remove" "$(tail -5 "$T/apt-remove.log")"
fi
if in_root apt-get purge -y "${pkgs[@]}" >"$T/apt-purge.log" 2>&1; then
	bad=
	for f in /var/lib/kubexec/apiserver /var/lib/kubexec/node /var/lib/kubexec/images /var/log/pods /etc/kubexec/node.env \
		/etc/kubexec/apiserver.env /etc/systemd/system/multi-user.target.wants/kubexec-node.service \
		/etc/systemd/system/multi-user.target.wants/kubexec-apiserver.service; do
		[ -e "$R$f" ] && bad="$bad $f"
	done
	[ -z "$bad" ] && ok "purge removes /var/lib/kubexec/{apiserver,node,images}, /var/log/pods, conffiles, enable links" ||
		fail "purge removes the state" "left:$bad"
	[ -e "$R/etc/kubexec/manifests/$POD.yaml" ] && note "purge left the administrator's /etc/kubexec/manifests/$POD.yaml (by design)"
	in_root dpkg --purge "${pkgs[@]}" >"$T/purge-again.log" 2>&1 && ok "purge again: a no-op" ||
		fail "purge again" "$(tail -3 "$T/purge-again.log")"
else
	fail "apt-get purge" "$(tail -5 "$T/apt-purge.log")"
fi
# Only the holder (PID 1) and `ls` itself may be left in the PID namespace:
# the daemons stopped every pod (nested PID namespaces count here too).
left=$(in_root ls /proc | grep -E '^[0-9]+$' | grep -vx 1 | wc -l)
[ "$left" -le 1 ] && ok "no process left behind by the daemons (PID namespace empty)" ||
	fail "no process left behind by the daemons" "$(in_root ps -e 2>&1 | head -5)"
stop_holder
grep -q " $T/" /proc/self/mounts && fail "no mounts left under $T" "$(grep " $T/" /proc/self/mounts | head -3)" ||
	ok "no mounts left on the host"

# --- 5. RPM -------------------------------------------------------------------------

echo "# 5. rpmbuild of packaging/rpm/kubexec.spec"
t0=$(date +%s)
if packaging/build-rpm.sh "$OUT/rpm" >"$T/build-rpm.log" 2>&1; then
	ok "rpmbuild -bb --nodeps builds the spec ($(($(date +%s) - t0)) s)"
	bad=
	rver=$(sed -n 's/^Version: *//p' packaging/rpm/kubexec.spec)
	[ "$rver" = "$VER" ] || bad="$bad spec-Version-$rver-vs-debian-$VER"
	for x in "kubexec-apiserver /usr/sbin/kubexec-apiserver /usr/share/man/man8/kubexec-apiserver.8 /usr/lib/systemd/system/kubexec-apiserver.service /etc/kubexec/apiserver.env" \
		"kubexec-node /usr/sbin/kubexec-node /usr/share/man/man8/kubexec-node.8 /usr/lib/systemd/system/kubexec-node.service /etc/kubexec/node.env /etc/kubexec/manifests"; do
		set -- $x
		r=$(ls "$OUT"/rpm/RPMS/*/"$1-$rver"-*.rpm 2>/dev/null | head -1)
		[ -n "$r" ] || { bad="$bad no-$1.rpm"; continue; }
		l=$(rpm -qlp "$r" 2>/dev/null)
		shift
		for f; do printf '%s\n' "$l" | grep -q "^$f" || bad="$bad $f"; done
	done
	if [ "$cli" = 1 ]; then
		r=$(ls "$OUT"/rpm/RPMS/*/"kubexec-$rver"-*.rpm 2>/dev/null | head -1)
		[ -n "$r" ] && rpm -qlp "$r" | grep -q '^/usr/bin/kubexec$' || bad="$bad kubexec-cli-rpm"
	else
		skip "kubexec (CLI) rpm" "meson.build does not build src/cli yet"
	fi
	[ -z "$bad" ] && ok "rpm -qlp: binaries, man pages, units, config in the RPMs" || fail "rpm -qlp contents" "$bad"
else
	fail "rpmbuild builds the spec" "$(tail -10 "$T/build-rpm.log")"
fi

finish
