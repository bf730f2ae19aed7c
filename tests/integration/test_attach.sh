#!/bin/bash
# test_attach.sh — the `kubectl attach` acceptance checks, run with every kubectl
# version from kubectl-versions.sh against one real kubexec-apiserver +
# kubexec-node on loopback. Prints one TAP-like "ok N - [VERSION] check" /
# "not ok N - ..." line per check and version, then "N passed, N failed"; exits 1
# on any failure.
#
# Pods (besides lib.sh's demo): ticker (a line a second), ttysh (tty+stdin sh),
# once (stdin+stdinOnce cat, restarts after each use), short (exits 3 after a
# while), flood (1 MB/s, for the slow-attacher check, run once).
#
# Needs root, busybox-static, python3. Run directly:
#   KUBEXEC_BUILD=build tests/integration/test_attach.sh
# KUBEXEC_KUBECTL_VERSIONS="1.20 1.29 kubexec" limits the versions; KX_KEEP=1 keeps logs.
# kubectl >= 1.30 and kubexec (our CLI) try WebSocket first and fall back to SPDY
# when the node refuses it; KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false forces SPDY.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

summary() {
	echo "$KX_PASSED passed, $KX_FAILED failed"
	[ "$KX_FAILED" -eq 0 ]
}

MAIN_PID=$BASHPID
on_exit() {
	local rc=$?
	[ "$BASHPID" = "$MAIN_PID" ] || exit $rc
	trap '' INT TERM PIPE
	if [ -n "$KX_TMP" ]; then
		fail "run completed" "interrupted or aborted (exit status $rc); stopping the cluster"
		stop_cluster
		summary
		exit 1
	fi
	exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers

add_pods() {
	local m=$KX_TMP/manifests
	cat >"$m/ticker.yaml" <<-'EOF'
		apiVersion: v1
		kind: Pod
		metadata: {name: ticker}
		spec:
		  containers:
		  - name: main
		    image: busybox
		    command: [sh, -c, "trap 'exit 0' TERM; i=0; while :; do i=$((i+1)); echo tick $i; sleep 1; done"]
	EOF
	cat >"$m/ttysh.yaml" <<-'EOF'
		apiVersion: v1
		kind: Pod
		metadata: {name: ttysh}
		spec:
		  containers:
		  - {name: main, image: busybox, tty: true, stdin: true, command: [sh]}
	EOF
	cat >"$m/once.yaml" <<-'EOF'
		apiVersion: v1
		kind: Pod
		metadata: {name: once}
		spec:
		  containers:
		  - name: main
		    image: busybox
		    stdin: true
		    stdinOnce: true
		    command: [sh, -c, "cat; echo stdin-closed"]
	EOF
	cat >"$m/short.yaml" <<-'EOF'
		apiVersion: v1
		kind: Pod
		metadata: {name: short}
		spec:
		  restartPolicy: Never
		  containers:
		  - {name: main, image: busybox, command: [sh, -c, "trap 'exit 3' TERM; while [ ! -e /tmp/go ]; do sleep 0.2; done; echo bye; exit 3"]}
	EOF
}

# wait_running POD SECONDS: the node reports the container running.
wait_running() {
	local end=$((SECONDS + $2)) st
	while :; do
		st=$(kq get pod "$1" -o 'jsonpath={.status.containerStatuses[0].state.running.startedAt}' </dev/null 2>/dev/null)
		[ -n "$st" ] && return 0
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 0.3
	done
}

# pid of the main process of POD (its `sh`), from the node's process tree.
ctr_pid() {
	local p
	for p in $(kx_descendants "$KX_NODE_PID" | awk '{print $1}'); do
		if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "HOSTNAME=$1" &&
			[ "$(cat "/proc/$p/comm" 2>/dev/null)" = sh ]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# kc in the background with stdout/stderr in files; sets BG_PID (kubectl's own
# pid). A script's background job starts with SIGINT ignored, and kubectl would
# inherit that: the subshell restores it so `kill -INT` acts like Ctrl-C.
kc_bg() { # OUT ERR ARGS...
	local out=$1 err=$2
	shift 2
	(
		trap - INT
		exec env HOME="$KX_KHOME" KUBECONFIG="$KUBECONFIG" "$KX_KBIN" \
			--cache-dir "$KX_KHOME/.kube/cache" "$@" </dev/null >"$out" 2>"$err"
	) &
	BG_PID=$!
}

# wait_grep FILE REGEX SECONDS
wait_grep() {
	local end=$((SECONDS + $3))
	until grep -qE "$2" "$1" 2>/dev/null; do
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 0.2
	done
}

write_pty_helper() {
	cat >"$KX_TMP/ptyattach.py" <<'EOF'
# ptyattach.py ROWS COLS -- CMD...: run CMD (kubectl attach -it) on a ROWSxCOLS pty,
# wait for kubectl's prompt hint, type commands and wait for their output, then
# SIGKILL the client (a detach that never reaches the shell). Prints the output.
import fcntl, os, pty, re, select, signal, struct, sys, termios, time
rows, cols = int(sys.argv[1]), int(sys.argv[2])
cmd = sys.argv[sys.argv.index('--') + 1:]
pid, fd = pty.fork()
if pid == 0:
    try:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
buf = b''
def pump(pat, t):
    global buf
    end = time.monotonic() + t
    while not re.search(pat, buf):
        left = end - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([fd], [], [], min(left, 0.2))
        if r:
            try:
                d = os.read(fd, 65536)
            except OSError:
                d = b''
            if not d:
                return False
            buf += d
    return True
ok = pump(rb"try pressing enter", 30)
time.sleep(0.5)
# None in a step means: resize the local terminal first (kubectl's SIGWINCH
# handler sends the new size over the resize stream).
steps = [(b"echo $((6*7))x\r", rb"42x"), (b"stty size\r", rb"%d %d" % (rows, cols)),
         (b"tty\r", rb"/dev/pts/\d+"),
         (None, None), (b"stty size\r", rb"%d %d" % (rows + 7, cols + 11))]
for send, want in steps:
    if not ok:
        break
    if send is None:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', rows + 7, cols + 11, 0, 0))
        time.sleep(0.5)
        continue
    os.write(fd, send)
    ok = pump(want, 10)
    if not ok:
        sys.stderr.write('no %r after %r\n' % (want, send))
os.kill(pid, signal.SIGKILL)
os.waitpid(pid, 0)
sys.stdout.write(buf.decode('utf-8', 'replace').replace('\r', ''))
sys.exit(0 if ok else 1)
EOF
}

node_zombies() { kx_descendants "$KX_NODE_PID" | awk '$2 ~ /^Z/ { print $1 }'; }

# ---------------------------------------------------------------- checks

t_follow() {
	local n1
	KX_KC_TIMEOUT_ONCE=4 kcr attach ticker </dev/null
	n1=$(grep -c '^tick [0-9]*$' "$KX_O")
	result "[$1] attach ticker shows new lines (got $n1 in 4 s) and the prompt hint" \
		"$([ "$KX_RC" = 124 ] && [ "$n1" -ge 2 ] && grep -qF "If you don't see a command prompt" "$KX_E"; echo $?)" \
		"$(kx_why)"
}

t_two_and_detach() {
	local a=$KX_TMP/a1 b=$KX_TMP/a2 pa pb pid0 pid1 l1 l2 common
	pid0=$(ctr_pid ticker)
	kc_bg "$a.out" "$a.err" attach ticker
	pa=$BG_PID
	kc_bg "$b.out" "$b.err" attach ticker
	pb=$BG_PID
	sleep 4
	kill -INT "$pa"   # Ctrl-C
	wait "$pa"
	l1=$(tail -n1 "$a.out")
	sleep 3
	kill -KILL "$pb"
	wait "$pb" 2>/dev/null
	l2=$(tail -n1 "$b.out")
	# The lines both saw, in the same order.
	common=$(comm -12 <(sort "$a.out") <(sort "$b.out") | wc -l)
	result "[$1] two attachers see the same lines" \
		"$([ "$common" -ge 2 ] && grep -qxF "$l1" "$b.out"; echo $?)" \
		"a: $(head -c 200 "$a.out" | tr '\n' ' ')" "b: $(head -c 300 "$b.out" | tr '\n' ' ')"
	result "[$1] after one attacher's Ctrl-C the other keeps receiving" \
		"$([ "$l1" != "$l2" ] && [ "${l2#tick }" -gt "${l1#tick }" ]; echo $?)" "last a: $l1, last b: $l2"
	sleep 1.5
	pid1=$(ctr_pid ticker)
	kqr get pod ticker -o 'jsonpath={.status.containerStatuses[0].restartCount}' </dev/null
	result "[$1] Ctrl-C and SIGKILL of attachers leave the container running (same pid, no restart)" \
		"$([ -n "$pid0" ] && [ "$pid0" = "$pid1" ] && [ "$(cat "$KX_O")" = 0 ]; echo $?)" \
		"pid before $pid0, after $pid1, restartCount $(cat "$KX_O")"
}

t_tty() {
	local out st
	out=$(timeout --foreground -k 5 90 python3 "$KX_TMP/ptyattach.py" 33 97 -- \
		env HOME="$KX_KHOME" KUBECONFIG="$KUBECONFIG" "$KX_KBIN" \
		--cache-dir "$KX_KHOME/.kube/cache" attach -it ttysh 2>&1)
	st=$?
	result "[$1] attach -it ttysh under a 33x97 pty: commands run, size applied, /dev/pts/N, a local resize (40x108) reaches the shell" "$st" \
		"helper exit $st; output: $(printf '%s' "$out" | head -c 600 | cat -v)"
	kqr get pod ttysh -o 'jsonpath={.status.containerStatuses[0].restartCount} {.status.phase}' </dev/null
	result "[$1] the shell survives the attacher's SIGKILL" \
		"$([ "$(cat "$KX_O")" = "0 Running" ]; echo $?)" "$(kx_why)"
}

t_tty_mismatch() {
	KX_KC_TIMEOUT_ONCE=3 kcr attach -t ticker </dev/null
	result "[$1] attach -t to a container without a tty still streams" \
		"$(grep -q '^tick' "$KX_O"; echo $?)" "$(kx_why)"
}

t_once() {
	local want="hello-$1-$RANDOM"
	wait_running once 40 || { fail "[$1] pod once running" "not running within 40 s"; return; }
	sleep 0.5
	kcr attach -i once < <(sleep 1; echo "$want"; sleep 1)
	result "[$1] stdinOnce: attach -i once: input echoed, stdin closed at EOF, exit 0 with the run" \
		"$([ "$KX_RC" = 0 ] && grep -qx "$want" "$KX_O" && grep -qx stdin-closed "$KX_O"; echo $?)" \
		"$(kx_why)"
}

t_exit() {
	local rc
	wait_running short 20 || { fail "[$1] pod short running" "not running"; return; }
	kc_bg "$KX_TMP/s.out" "$KX_TMP/s.err" attach short
	sleep 2
	kq exec short -- touch /tmp/go </dev/null >/dev/null 2>&1
	wait "$BG_PID"
	rc=$?
	result "[$1] attach ends with the container's exit: kubectl exits 3" \
		"$([ "$rc" = 3 ] && grep -qx bye "$KX_TMP/s.out"; echo $?)" \
		"exit $rc, out: $(head -c 200 "$KX_TMP/s.out"), err: $(head -c 300 "$KX_TMP/s.err")"
}

t_errors() {
	kcr attach nosuch </dev/null
	result "[$1] attach nosuch: NotFound" \
		"$([ "$KX_RC" = 1 ] && grep -q 'not found' "$KX_E"; echo $?)" "$(kx_why)"
}

t_slow() {
	local fast=$KX_TMP/fast.out pslow pfast s1 s2
	cat >"$KX_TMP/manifests/flood.yaml" <<-'EOF'
		apiVersion: v1
		kind: Pod
		metadata: {name: flood}
		spec:
		  containers:
		  - name: main
		    image: busybox
		    command: [sh, -c, "trap 'exit 0' TERM; while :; do head -c 500000 /dev/zero | tr '\\0' x; echo; sleep 0.5; done"]
	EOF
	wait_running flood 30 || { fail "[$1] pod flood running" "not running"; return; }
	# A client that never reads: its pipe fills, kubectl stops reading the socket.
	# shellcheck disable=SC2016 # expanded by the inner bash
	setsid bash -c 'env HOME="$1" KUBECONFIG="$2" "$3" --cache-dir "$1/.kube/cache" attach flood 2>/dev/null | sleep 90' \
		_ "$KX_KHOME" "$KUBECONFIG" "$KX_KBIN" </dev/null &
	pslow=$!
	kc_bg "$fast" /dev/null attach flood
	pfast=$BG_PID
	wait_grep "$KX_TMP/node.log" 'attach default/flood/main: client too slow, detached' 60
	result "[$1] a client that stops reading is detached (node log)" $? \
		"node log: $(grep -i attach "$KX_TMP/node.log" | tail -n 3)"
	s1=$(stat -c %s "$fast")
	sleep 2
	s2=$(stat -c %s "$fast")
	result "[$1] ... while another attacher keeps receiving" "$([ "$s2" -gt "$s1" ]; echo $?)" \
		"fast attacher output $s1 -> $s2 bytes"
	kill -KILL "$pfast" 2>/dev/null
	kill -KILL -- "-$pslow" 2>/dev/null
	wait "$pfast" "$pslow" 2>/dev/null
	rm -f "$KX_TMP/manifests/flood.yaml"
}

# ---------------------------------------------------------------- main

if [ "$(id -u)" != 0 ]; then
	fail "running as root" "the node needs root for namespaces and mounts"
	summary
	exit 1
fi
if versions=$("$HERE/kubectl-versions.sh" 2>"/tmp/kubexec-kv.$$"); then
	ok "kubectl versions available: $(echo "$versions" | cut -d' ' -f1 | tr '\n' ' ')"
else
	fail "kubectl versions available" "$(cat "/tmp/kubexec-kv.$$")" "$versions"
	rm -f "/tmp/kubexec-kv.$$"
	summary
	exit 1
fi
rm -f "/tmp/kubexec-kv.$$"
mapfile -t vlines <<<"$versions"
kx_set_ref "$versions"

KX_TMP_PREFIX=kubexec-attach
if start_cluster "$KX_REF_KBIN"; then
	ok "cluster starts and pod demo is Running"
else
	fail "cluster starts and pod demo is Running" "see the log lines above"
	stop_cluster
	summary
	exit 1
fi
write_pty_helper
add_pods
use_kubectl "${vlines[0]%% *}" "${vlines[0]#* }"
for p in ticker ttysh once short; do
	wait_running "$p" 40 || fail "pod $p running" "not running within 40 s"
done

# fd baseline of the node: the highest of a few samples (its API connection churns).
base=0
for s in 1 2 3; do
	n=$(kx_fd_count "$KX_NODE_PID")
	[ "$n" -gt "$base" ] && base=$n
	sleep 0.3
done

first=1
for line in "${vlines[@]}"; do
	ver=${line%% *}
	use_kubectl "$ver" "${line#* }"
	t_follow "$ver"
	t_two_and_detach "$ver"
	t_tty "$ver"
	t_tty_mismatch "$ver"
	t_once "$ver"
	t_errors "$ver"
	if [ "$first" = 1 ]; then
		t_exit "$ver"   # short runs once (restartPolicy Never)
		t_slow "$ver"
		first=0
	fi
done

end=$((SECONDS + 15))
while :; do
	zombies=$(node_zombies)
	fds=$(kx_fd_count "$KX_NODE_PID")
	[ -z "$zombies" ] && [ "$fds" -le "$base" ] && break
	[ "$SECONDS" -ge "$end" ] && break
	sleep 0.5
done
result "no zombies under the node after the attaches" "$([ -z "$zombies" ]; echo $?)" "zombies: $zombies"
result "node fd count back to baseline after the attaches" "$([ "$fds" -le "$base" ]; echo $?)" \
	"baseline $base, now $fds: $(find "/proc/$KX_NODE_PID/fd" -mindepth 1 -maxdepth 1 -printf '%l\n' 2>/dev/null | sed 's/:.*//' | sort | uniq -c | sort -rn | head -n 5 | tr '\n' ';')"

stop_cluster
summary
