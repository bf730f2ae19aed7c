#!/bin/bash
# test_exec.sh — the `kubectl exec` acceptance checks, run with every kubectl version
# from kubectl-versions.sh against one real kubexec-apiserver + kubexec-node on
# loopback. Prints one TAP-like "ok N - [VERSION] check" / "not ok N - ..." line per
# check and version, then "N passed, N failed"; exits 1 on any failure.
#
# Needs root (the node makes namespaces), busybox-static, python3 (pty checks).
# Run it through run.sh, or directly: KUBEXEC_BUILD=build tests/integration/test_exec.sh
# KUBEXEC_KUBECTL_VERSIONS="1.33" limits the versions; KX_KEEP=1 keeps logs.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

BIG_BYTES=$((50 * 1024 * 1024))
CONCURRENT=50

summary() {
	echo "$KX_PASSED passed, $KX_FAILED failed"
	[ "$KX_FAILED" -eq 0 ]
}

MAIN_PID=$BASHPID
PROXY_PID=
on_exit() {
	local rc=$?
	# Only the main shell owns the cluster, never a subshell that inherited the trap.
	[ "$BASHPID" = "$MAIN_PID" ] || exit $rc
	# A second signal (run.sh's `timeout` turns Ctrl-C into a SIGTERM for us too) must
	# not cut the cleanup short: the daemons run in their own sessions and would stay.
	# Nor may a reader that went away (SIGPIPE).
	trap '' INT TERM PIPE
	[ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null
	# Reached only when something aborted the run: still stop and check everything.
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

# ---------------------------------------------------------------- pty helper
# Python's pty module gives kubectl a real terminal (kubectl uses a TTY only when
# its stdin is one). Modes:
#   size   ROWS COLS -- CMD...           run CMD on a ROWSxCOLS pty, print what it wrote
#   resize ROWS COLS R2 C2 -- CMD...     wait for "ready", set R2xC2 on the master
#                                        (the kernel sends SIGWINCH to kubectl), wait
#                                        for "R2 C2" in the output, then ^C
write_pty_helper() {
	cat >"$KX_TMP/ptyrun.py" <<'EOF'
import fcntl, os, pty, re, select, signal, struct, sys, termios, time

def winsz(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))

args = sys.argv[1:]
sep = args.index('--')
opts, cmd = args[:sep], args[sep + 1:]
mode, rows, cols = opts[0], int(opts[1]), int(opts[2])
timeout = float(os.environ.get('PTY_TIMEOUT', '60'))

pid, fd = pty.fork()
if pid == 0:
    try:
        winsz(0, rows, cols)   # before exec: kubectl reads the size at start
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)

buf = b''
def pump(until, deadline):
    """Read until the pattern shows up, EOF, or the deadline. True if found."""
    global buf
    while True:
        if until is not None and re.search(until, buf):
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([fd], [], [], min(left, 0.2))
        if r:
            try:
                data = os.read(fd, 65536)
            except OSError:   # EIO: the child closed the terminal
                data = b''
            if not data:
                return until is None
            buf += data

def reap(wait):
    end = time.monotonic() + wait
    while time.monotonic() < end:
        p, st = os.waitpid(pid, os.WNOHANG)
        if p:
            return os.waitstatus_to_exitcode(st)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -9

rc = 0
if mode == 'size':
    pump(None, time.monotonic() + timeout)
    code = reap(5)
    rc = 0 if code == 0 else 1
elif mode == 'resize':
    r2, c2 = int(opts[3]), int(opts[4])
    if not pump(rb'ready', time.monotonic() + timeout):
        sys.stderr.write('no "ready" from the command\n')
        rc = 1
    else:
        time.sleep(0.3)
        winsz(fd, r2, c2)
        if not pump(rb'\b%d %d\b' % (r2, c2), time.monotonic() + 10):
            sys.stderr.write('no "%d %d" after the resize\n' % (r2, c2))
            rc = 1
    try:
        os.write(fd, b'\x03')   # raw mode: ^C reaches the remote terminal
    except OSError:
        pass
    pump(None, time.monotonic() + 5)
    reap(3)
sys.stdout.write(buf.decode('utf-8', 'replace').replace('\r', ''))
sys.exit(rc)
EOF
}

# ---------------------------------------------------------------- checks
# Each takes the version label V for the check names; the current kubectl is set
# by use_kubectl.

t_get() {
	kcr get pod demo </dev/null
	result "[$1] kubectl get pod demo shows Running" \
		"$([ "$KX_RC" = 0 ] && grep -qw Running "$KX_O"; echo $?)" "$(kx_why)"
}

t_echo() {
	kcr exec demo -- echo hello </dev/null
	result "[$1] exec demo -- echo hello" \
		"$([ "$KX_RC" = 0 ] && [ "$(cat "$KX_O")" = hello ]; echo $?)" "$(kx_why)"
}

t_exit42() {
	kcr exec demo -- sh -c 'echo out; echo err >&2; exit 42' </dev/null
	result "[$1] exec sh -c 'echo out; echo err >&2; exit 42': exit 42, out/err split" \
		"$([ "$KX_RC" = 42 ] && [ "$(cat "$KX_O")" = out ] && grep -qx err "$KX_E" &&
			grep -qF 'command terminated with exit code 42' "$KX_E"; echo $?)" "$(kx_why)"
}

t_big() {
	local in=$KX_TMP/big.in want got
	[ -f "$in" ] || head -c "$BIG_BYTES" /dev/urandom >"$in"
	want=$(sha256sum <"$in" | cut -d' ' -f1)
	KX_KC_TIMEOUT_ONCE=180 kcr exec -i demo -- cat <"$in"
	got=$(sha256sum <"$KX_O" | cut -d' ' -f1)
	result "[$1] 50 MB through exec -i demo -- cat: same sha256" \
		"$([ "$KX_RC" = 0 ] && [ "$got" = "$want" ]; echo $?)" \
		"exit $KX_RC, sent $BIG_BYTES bytes sha256 $want, got $(stat -c %s "$KX_O") bytes sha256 $got" \
		"stderr: $(head -c 600 "$KX_E")"
}

t_stdin() {
	# Process substitution, not a pipe: kcr must run in this shell to set KX_RC.
	kcr exec -i demo -- cat < <(echo hi)
	result "[$1] echo hi | exec -i demo -- cat" \
		"$([ "$KX_RC" = 0 ] && [ "$(cat "$KX_O")" = hi ]; echo $?)" "$(kx_why)"
}

t_errors() {
	kcr exec nosuch -- true </dev/null
	result "[$1] exec nosuch: NotFound, exit 1" \
		"$([ "$KX_RC" = 1 ] && grep -qxF 'Error from server (NotFound): pods "nosuch" not found' "$KX_E"; echo $?)" \
		"$(kx_why)"
	kcr exec demo -c nosuch -- true </dev/null
	result "[$1] exec -c nosuch: error names the container, exit 1" \
		"$([ "$KX_RC" = 1 ] && grep -q nosuch "$KX_E"; echo $?)" "$(kx_why)"
	kcr exec demo -- /nonexistent </dev/null
	result "[$1] exec demo -- /nonexistent: error names it, non-zero exit" \
		"$([ "$KX_RC" != 0 ] && [ "$KX_RC" != 124 ] && [ "$KX_RC" != 137 ] &&
			grep -q /nonexistent "$KX_E"; echo $?)" "$(kx_why)"
}

t_tty() {
	local out st
	out=$(PTY_TIMEOUT=60 timeout --foreground -k 5 90 python3 "$KX_TMP/ptyrun.py" size 37 101 -- \
		env HOME="$KX_KHOME" KUBECONFIG="$KUBECONFIG" "$KX_KBIN" \
		--cache-dir "$KX_KHOME/.kube/cache" exec -it demo -- sh -c 'stty size; tty' 2>&1)
	st=$?
	result "[$1] exec -it under a 37x101 pty: stty size and /dev/pts/N" \
		"$([ "$st" = 0 ] && printf '%s\n' "$out" | grep -qx '37 101' &&
			printf '%s\n' "$out" | grep -qx '/dev/pts/[0-9]*'; echo $?)" \
		"helper exit $st; output: $(printf '%s' "$out" | head -c 600 | cat -v)"
}

t_resize() {
	local out st
	out=$(PTY_TIMEOUT=60 timeout --foreground -k 5 90 python3 "$KX_TMP/ptyrun.py" resize 37 101 50 150 -- \
		env HOME="$KX_KHOME" KUBECONFIG="$KUBECONFIG" "$KX_KBIN" \
		--cache-dir "$KX_KHOME/.kube/cache" exec -it demo -- \
		sh -c 'trap "stty size" WINCH; echo ready; while :; do sleep 0.1; done' 2>&1)
	st=$?
	result "[$1] exec -it: resize of the local terminal reaches the process (50 150)" "$st" \
		"helper exit $st; output: $(printf '%s' "$out" | head -c 600 | cat -v)"
}

t_container() {
	local want
	kcr exec demo -- hostname </dev/null
	result "[$1] hostname in the container is demo" \
		"$([ "$KX_RC" = 0 ] && [ "$(cat "$KX_O")" = demo ]; echo $?)" "$(kx_why)"

	kcr exec demo -- cat /proc/1/cmdline </dev/null
	want=$KX_TMP/cmdline.want
	printf '%s\0' "${KX_DEMO_CMD[@]}" >"$want"
	result "[$1] /proc/1/cmdline is the container's main command" \
		"$([ "$KX_RC" = 0 ] && cmp -s "$want" "$KX_O"; echo $?)" \
		"want: $(tr '\0' '@' <"$want")" "$(kx_why)"

	kcr exec demo -- sh -c 'ls /; test -x /bin/busybox && test ! -e /usr/lib/x86_64-linux-gnu && cat /kubexec-marker' </dev/null
	result "[$1] / is the image root (busybox, marker, no host /usr/lib)" \
		"$([ "$KX_RC" = 0 ] && grep -qx bin "$KX_O" && grep -qx "$KX_MARKER" "$KX_O"; echo $?)" \
		"marker $KX_MARKER" "$(kx_why)"
}

node_zombies() { kx_descendants "$KX_NODE_PID" | awk '$2 ~ /^Z/ { print $1 }'; }

t_concurrent() {
	local i base n s bad="" zombies fds end
	local -a pids=()
	# fd baseline: the highest of a few samples, so the node's normal churn (its
	# API connection) does not count as a leak.
	base=0
	for s in 1 2 3; do
		n=$(kx_fd_count "$KX_NODE_PID")
		[ "$n" -gt "$base" ] && base=$n
		sleep 0.3
	done
	mkdir -p "$KX_TMP/conc"
	for i in $(seq 1 "$CONCURRENT"); do
		KX_KC_TIMEOUT_ONCE=120 kc exec demo -- echo "$i" </dev/null \
			>"$KX_TMP/conc/$i.out" 2>"$KX_TMP/conc/$i.err" &
		pids[i]=$!
	done
	for i in $(seq 1 "$CONCURRENT"); do
		wait "${pids[i]}"
		s=$?
		if [ "$s" != 0 ] || [ "$(cat "$KX_TMP/conc/$i.out")" != "$i" ]; then
			bad="${bad}exec $i: exit $s, stdout '$(head -c 100 "$KX_TMP/conc/$i.out")', stderr '$(head -c 200 "$KX_TMP/conc/$i.err")'"$'\n'
		fi
	done
	result "[$1] $CONCURRENT concurrent execs all succeed with the right output" \
		"$([ -z "$bad" ]; echo $?)" "$bad"

	end=$((SECONDS + 10))
	while :; do
		zombies=$(node_zombies)
		fds=$(kx_fd_count "$KX_NODE_PID")
		[ -z "$zombies" ] && [ "$fds" -le "$base" ] && break
		[ "$SECONDS" -ge "$end" ] && break
		sleep 0.5
	done
	result "[$1] no zombies under the node after the execs" "$([ -z "$zombies" ]; echo $?)" \
		"zombies: $zombies"
	result "[$1] node fd count back to baseline after the execs" "$([ "$fds" -le "$base" ]; echo $?)" \
		"baseline $base, now $fds: $(find "/proc/$KX_NODE_PID/fd" -mindepth 1 -maxdepth 1 -printf '%l\n' 2>/dev/null | sed 's/:.*//' | sort | uniq -c | sort -rn | head -n 5 | tr '\n' ';')"
}

t_sigkill() {
	local n=$2 kpid found="" end left
	# Not through `timeout`: the SIGKILL must hit kubectl itself (env execs it).
	env HOME="$KX_KHOME" KUBECONFIG="$KUBECONFIG" "$KX_KBIN" --cache-dir "$KX_KHOME/.kube/cache" \
		exec demo -- sleep "$n" </dev/null >/dev/null 2>&1 &
	kpid=$!
	end=$((SECONDS + 30))
	while [ "$SECONDS" -lt "$end" ]; do
		found=$(pgrep -f "^sleep $n\$")
		[ -n "$found" ] && break
		if [ -z "$(kx_state "$kpid")" ] || [ "$(kx_state "$kpid")" = Z ]; then break; fi
		sleep 0.2
	done
	if [ -z "$found" ]; then
		kill -KILL "$kpid" 2>/dev/null
		wait "$kpid" 2>/dev/null
		fail "[$1] SIGKILL of kubectl: the exec'd process goes away within 5 s" \
			"'sleep $n' never showed up in the container"
		return
	fi
	kill -KILL "$kpid"
	wait "$kpid" 2>/dev/null
	end=$((SECONDS + 5))
	while :; do
		left=$(pgrep -f "^sleep $n\$")
		[ -z "$left" ] && break
		[ "$SECONDS" -ge "$end" ] && break
		sleep 0.2
	done
	result "[$1] SIGKILL of kubectl: the exec'd process goes away within 5 s" \
		"$([ -z "$left" ]; echo $?)" "still running after 5 s: pid $left"
	# Do not let a leftover disturb the next version's checks.
	# shellcheck disable=SC2086
	[ -n "$left" ] && kill -KILL $left 2>/dev/null
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

# Short heartbeat and grace period so the NotReady check below is quick.
export KX_APISERVER_ARGS="--node-grace-period 4" KX_NODE_ARGS="--heartbeat 1"

# A node that stops heartbeating goes NotReady and its pods' phase becomes
# Unknown; when it comes back, both recover.
t_notready() {
	local st ph end
	kill -STOP "$KX_NODE_PID"
	end=$((SECONDS + 15))
	while :; do
		st=$(kq get node "$KX_NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)
		ph=$(kq get pod demo -o 'jsonpath={.status.phase}' 2>/dev/null)
		[ "$st" = Unknown ] && [ "$ph" = Unknown ] && break
		[ "$SECONDS" -ge "$end" ] && break
		sleep 0.5
	done
	result "[$1] a silent node goes NotReady and its pod Unknown" \
		"$([ "$st" = Unknown ] && [ "$ph" = Unknown ] && echo 0 || echo 1)" \
		"node Ready=$st pod phase=$ph after the node stopped"
	kill -CONT "$KX_NODE_PID"
	end=$((SECONDS + 15))
	while :; do
		st=$(kq get node "$KX_NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)
		ph=$(kq get pod demo -o 'jsonpath={.status.phase}' 2>/dev/null)
		[ "$st" = True ] && [ "$ph" = Running ] && break
		[ "$SECONDS" -ge "$end" ] && break
		sleep 0.5
	done
	result "[$1] the node and its pod recover when heartbeats resume" \
		"$([ "$st" = True ] && [ "$ph" = Running ] && echo 0 || echo 1)" \
		"node Ready=$st pod phase=$ph after the node resumed"
}

# Wait for the pod with the newest kubectl of the list.
if start_cluster "$KX_REF_KBIN"; then
	ok "cluster starts and pod demo is Running"
else
	fail "cluster starts and pod demo is Running" "see the log lines above"
	stop_cluster
	summary
	exit 1
fi
write_pty_helper

vi=0
for line in "${vlines[@]}"; do
	ver=${line%% *}
	use_kubectl "$ver" "${line#* }"
	vi=$((vi + 1))
	t_get "$ver"
	t_echo "$ver"
	t_exit42 "$ver"
	t_big "$ver"
	t_stdin "$ver"
	t_errors "$ver"
	t_tty "$ver"
	t_resize "$ver"
	t_container "$ver"
	t_concurrent "$ver"
	t_sigkill "$ver" "$((1234000 + vi))"
done
# kubectl >= 1.30 and kubexec took the WebSocket path above; run every check again
# with KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false, which must go over SPDY, and check
# the transport through the API server's /metrics upgrade counters.
upgrades() { # prints "SPDY WEBSOCKET"
	kq get --raw /metrics </dev/null 2>/dev/null | awk '
		/^kubexec_apiserver_upgrades_total\{transport="spdy"\}/ { s = $2 }
		/^kubexec_apiserver_upgrades_total\{transport="websocket"\}/ { w = $2 }
		END { print s + 0, w + 0 }'
}
for line in "${vlines[@]}"; do
	ver=${line%% *}
	case $ver in
	kubexec | 1.3*) ;;      # WebSocket v5 first, SPDY when told (or refused)
	*) continue ;;          # SPDY only: the main loop covered it
	esac
	use_kubectl "$ver-spdy" "${line#* }"
	vi=$((vi + 1))
	read -r s0 w0 <<<"$(upgrades)"
	export KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false
	tag="$ver, KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false"
	t_echo "$tag"
	t_exit42 "$tag"
	t_big "$tag"
	t_stdin "$tag"
	t_errors "$tag"
	t_tty "$tag"
	t_resize "$tag"
	t_container "$tag"
	t_concurrent "$tag"
	t_sigkill "$tag" "$((1234000 + vi))"
	unset KUBECTL_REMOTE_COMMAND_WEBSOCKETS
	read -r s1 w1 <<<"$(upgrades)"
	result "[$tag] all of the above went over SPDY (/metrics: spdy +$((s1 - s0)), websocket +$((w1 - w0)))" \
		"$([ "$((w1 - w0))" = 0 ] && [ "$((s1 - s0))" -ge 50 ]; echo $?)" \
		"upgrades counted by the API server: spdy $s0 -> $s1, websocket $w0 -> $w1"
done

# Issue 4, acceptance 3: against a server that refuses WebSocket, exec falls back
# to SPDY and works. ws_refuse_proxy.py stands in front of the API server (its own
# serving certificate, so only --server changes) and answers every WebSocket
# upgrade with a 400 Status. kubexec is the subject; kubectl >= 1.30 runs the same
# checks as the reference for what "falls back" means.
t_ws_refused() { # V
	local pre="[$1] server refusing WebSocket:" s0 w0 s1 w1 r0 r1 srv
	srv=https://127.0.0.1:$PROXY_PORT
	read -r s0 w0 <<<"$(upgrades)"
	r0=$(grep -c '^refused websocket upgrade: ' "$KX_TMP/proxy.out")
	kcr --server "$srv" exec demo -- sh -c 'echo out; echo err >&2; exit 42' </dev/null
	result "$pre exec sh -c 'echo out; echo err >&2; exit 42': exit 42, out/err split" \
		"$([ "$KX_RC" = 42 ] && [ "$(cat "$KX_O")" = out ] && grep -qx err "$KX_E" &&
			grep -qF 'command terminated with exit code 42' "$KX_E"; echo $?)" "$(kx_why)"
	kcr --server "$srv" exec -i demo -- cat < <(echo hi)
	result "$pre echo hi | exec -i demo -- cat" \
		"$([ "$KX_RC" = 0 ] && [ "$(cat "$KX_O")" = hi ]; echo $?)" "$(kx_why)"
	read -r s1 w1 <<<"$(upgrades)"
	r1=$(grep -c '^refused websocket upgrade: ' "$KX_TMP/proxy.out")
	result "$pre both execs tried WebSocket first (refused $((r1 - r0))), then went over SPDY (/metrics: spdy +$((s1 - s0)), websocket +$((w1 - w0)))" \
		"$([ "$((r1 - r0))" = 2 ] && [ "$((s1 - s0))" = 2 ] && [ "$((w1 - w0))" = 0 ]; echo $?)" \
		"want 2 refused WebSocket upgrades, spdy +2, websocket +0" \
		"proxy: $(tail -n 3 "$KX_TMP/proxy.out")"
}

need_proxy=0
for line in "${vlines[@]}"; do
	case ${line%% *} in kubexec | 1.3*) need_proxy=1 ;; esac
done
if [ "$need_proxy" = 1 ]; then
	pki=$KX_TMP/apiserver/pki
	python3 "$HERE/ws_refuse_proxy.py" "${KX_SERVER_URL#https://}" "$pki/apiserver.crt" \
		"$pki/apiserver.key" "$pki/admin.crt" "$pki/admin.key" "$pki/ca.crt" \
		</dev/null >"$KX_TMP/proxy.out" 2>&1 &
	PROXY_PID=$!
	end=$((SECONDS + 10))
	PROXY_PORT=
	while [ -z "$PROXY_PORT" ] && [ "$SECONDS" -lt "$end" ]; do
		PROXY_PORT=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$KX_TMP/proxy.out")
		[ -n "$PROXY_PORT" ] || sleep 0.1
	done
	if [ -z "$PROXY_PORT" ]; then
		fail "WebSocket-refusing proxy starts" "$(head -c 600 "$KX_TMP/proxy.out")"
	else
		for line in "${vlines[@]}"; do
			ver=${line%% *}
			case $ver in
			kubexec | 1.3*) ;;   # they try WebSocket first
			*) continue ;;       # SPDY only: nothing to fall back from
			esac
			use_kubectl "$ver" "${line#* }"
			t_ws_refused "$ver"
		done
	fi
	kill "$PROXY_PID" 2>/dev/null
	wait "$PROXY_PID" 2>/dev/null
	PROXY_PID=
fi

# The API server carries its sessions to the node as streams of one
# connection (kubexec/mux.h): five sessions held at once, one connection
# between the daemons, and each session gets its own output and exit code.
# node_sessions: "MUX CONNECTION", the API server's node session counters
# (0 for one it does not report: every check expects them to grow).
node_sessions() {
	kq get --raw /metrics </dev/null 2>/dev/null | awk -F'} ' '
		/^kubexec_apiserver_node_sessions_total\{via="mux"/ {m = $2}
		/^kubexec_apiserver_node_sessions_total\{via="connection"/ {c = $2}
		END {print m + 0, c + 0}'
}

# five_sessions POD TAG BASE DIR PORT: five concurrent execs in POD, each
# printing TAG-I and exiting BASE+I; sets n (established connections to the
# node's PORT while they run) and bad (the sessions with a wrong output or
# exit code, empty when all are right).
five_sessions() {
	local i rc pids=()
	bad=""
	for i in 1 2 3 4 5; do
		kc exec "$1" -- sh -c "sleep 2; echo $2-$i; exit $(($3 + i))" </dev/null \
			>"$4/$2-$i.out" 2>"$4/$2-$i.err" &
		pids+=("$!")
	done
	sleep 1.2
	n=$(ss -Htn state established "( sport = :$5 )" | wc -l)
	for i in 1 2 3 4 5; do
		wait "${pids[$((i - 1))]}"
		rc=$?
		{ [ "$rc" = $(($3 + i)) ] && [ "$(cat "$4/$2-$i.out")" = "$2-$i" ]; } ||
			bad="$bad $i(exit $rc, out '$(head -c 80 "$4/$2-$i.out")')"
	done
}

t_mux() {
	local port n bad m0 m1
	port=$(sed -n 's/.*serving the kubelet API on [^ ]*:\([0-9]*\)$/\1/p' "$KX_TMP/node.log" | head -n1)
	kc exec demo -- true </dev/null >/dev/null 2>&1   # the first session also dials the mux
	sleep 0.5
	read -r m0 _ < <(node_sessions)
	five_sessions demo mux 10 "$KX_TMP" "$port"
	read -r m1 _ < <(node_sessions)
	result "[$1] five sessions at once ride one API server → node connection, each with its own output and exit code" \
		"$([ -n "$port" ] && [ "$n" = 1 ] && [ -z "$bad" ] && [ -n "$m0" ] && [ -n "$m1" ] &&
			[ "$((m1 - m0))" = 5 ]; echo $?)" \
		"node port '$port', connections to it: $n; /metrics mux sessions ${m0:-?} -> ${m1:-?}; wrong:$bad"
}
t_mux "$ver"

# The mux connection dies under the API server (here: its socket destroyed
# on the node's side with `ss -K`, as a reset or a node restart would):
# the next session still works (on a connection of its own while the API
# server dials a new mux), and the one after rides the new mux.
t_mux_lost() {
	local port n m0 m1 c0 c1 ok1 ok2
	port=$(sed -n 's/.*serving the kubelet API on [^ ]*:\([0-9]*\)$/\1/p' "$KX_TMP/node.log" | head -n1)
	kc exec demo -- true </dev/null >/dev/null 2>&1
	sleep 0.3
	ss -K -Htn state established "( sport = :$port )" >/dev/null 2>&1
	sleep 0.3
	n=$(ss -Htn state established "( sport = :$port )" | wc -l)
	if [ "$n" != 0 ]; then
		ok "[$1] a lost mux connection: the next sessions work # SKIP ss -K cannot destroy sockets on this kernel"
		return
	fi
	read -r m0 c0 < <(node_sessions)
	kcr exec demo -- echo after-loss </dev/null
	ok1=$([ "$KX_RC" = 0 ] && [ "$(cat "$KX_O")" = after-loss ]; echo $?)
	sleep 0.5
	kcr exec demo -- echo on-new-mux </dev/null
	ok2=$([ "$KX_RC" = 0 ] && [ "$(cat "$KX_O")" = on-new-mux ]; echo $?)
	read -r m1 c1 < <(node_sessions)
	result "[$1] a lost mux connection: the next session works on a connection of its own, the one after on a new mux" \
		"$([ "$ok1" = 0 ] && [ "$ok2" = 0 ] && [ -n "$m0" ] && [ -n "$m1" ] &&
			[ "$((c1 - c0))" = 1 ] && [ "$((m1 - m0))" = 1 ]; echo $?)" \
		"outputs ok: $ok1 $ok2; /metrics via=connection ${c0:-?} -> ${c1:-?}, via=mux ${m0:-?} -> ${m1:-?}" "$(kx_why)"
}
t_mux_lost "$ver"

# A node that predates the mux answers GET /mux with a 404, as
# `kubexec-node --no-mux` does: the API server gives that node's sessions
# connections of their own (never a mux), while the node that has a mux keeps
# using it. A second node joins for this, runs a pod of its own, and stops.
t_mux_refused() {
	local d=$KX_TMP/node-nomux pid port ph end n bad m0 c0 m1 c1 ok1 ok2
	mkdir -p "$d/manifests"
	kx_write_pod "$d/manifests/old.yaml" nomux sh -c "while true; do sleep 1; done"
	setsid "$KX_NODE_BIN" --server "$KX_SERVER_URL" --token-file "$KX_TMP/apiserver/node-token" \
		--data-dir "$d/data" --manifest-dir "$d/manifests" --image-dir "$KX_TMP/images" \
		--node-name "$KX_NODE_NAME-nomux" --listen 127.0.0.1:0 --no-mux </dev/null >"$d/node.log" 2>&1 &
	pid=$!
	end=$((SECONDS + KX_START_TIMEOUT))
	until ph=$(kq get pod nomux -o 'jsonpath={.status.phase}' 2>/dev/null) && [ "$ph" = Running ]; do
		[ "$SECONDS" -ge "$end" ] || [ -z "$(kx_state "$pid")" ] && break
		sleep 0.3
	done
	port=$(sed -n 's/.*serving the kubelet API on [^ ]*:\([0-9]*\)$/\1/p' "$d/node.log" | head -n1)
	if [ "$ph" != Running ] || [ -z "$port" ]; then
		fail "[$1] a node that refuses the mux: it joins and runs its pod" \
			"pod phase '$ph', port '$port'; node log: $(tail -n 5 "$d/node.log" | tr '\n' ' ')"
		kx_stop_one "kubexec-node --no-mux" "$pid"
		return
	fi
	read -r m0 c0 < <(node_sessions)
	kcr exec nomux -- echo first </dev/null   # the API server also asks this node for a mux
	ok1=$([ "$KX_RC" = 0 ] && [ "$(cat "$KX_O")" = first ]; echo $?)
	sleep 0.5
	five_sessions nomux nomux 20 "$d" "$port"
	kcr exec demo -- echo on-the-mux </dev/null   # the other node: still its mux
	ok2=$([ "$KX_RC" = 0 ] && [ "$(cat "$KX_O")" = on-the-mux ]; echo $?)
	read -r m1 c1 < <(node_sessions)
	result "[$1] a node that refuses the mux (404): its sessions each get a connection of their own with their own output and exit code; the other node keeps its mux" \
		"$([ "$ok1" = 0 ] && [ "$ok2" = 0 ] && [ -z "$bad" ] && [ "$n" -ge 5 ] && [ -n "$m0" ] && [ -n "$m1" ] &&
			[ "$((c1 - c0))" = 6 ] && [ "$((m1 - m0))" = 1 ]; echo $?)" \
		"outputs ok: $ok1 $ok2; connections to the --no-mux node while 5 sessions ran: $n; wrong:$bad; /metrics via=connection ${c0:-?} -> ${c1:-?}, via=mux ${m0:-?} -> ${m1:-?}" "$(kx_why)"
	kx_stop_one "kubexec-node --no-mux" "$pid"
}
t_mux_refused "$ver"

t_notready "$ver"

# Last, as it ends the node: a node that dies without stopping its pods
# (SIGKILL, a crash) takes them along -- the pod's processes and an exec'd
# command -- rather than leaving them running unowned beside the pods a
# restarted node would start again.
t_node_sigkill() {
	local kp p st cmd left end found=0
	local -a pids=() sts=() cmds=()
	kq exec demo -- sh -c 'exec sleep 321' </dev/null >/dev/null 2>&1 &
	kp=$!
	end=$((SECONDS + 10))
	while [ "$found" = 0 ] && [ "$SECONDS" -lt "$end" ]; do
		sleep 0.2
		pids=() sts=() cmds=()
		while read -r p _; do
			cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | head -c 60)
			pids+=("$p") sts+=("$(kx_starttime "$p")") cmds+=("$cmd")
			case $cmd in "sleep 321"*) found=1 ;; esac
		done < <(kx_descendants "$KX_NODE_PID")
	done
	# The agent's cgroup directory: a SIGKILLed node cannot remove it (a restarted
	# one would reuse it); this test's data dir goes away, so the test does.
	local cg="" line
	for p in "${pids[@]}"; do
		line=$(grep -m1 '^0::/kubexec/' "/proc/$p/cgroup" 2>/dev/null) && cg=$(echo "${line#0::}" | cut -d/ -f1-3) && break
	done
	kill -KILL "$KX_NODE_PID"
	wait "$KX_NODE_PID" 2>/dev/null
	KX_NODE_PID=
	end=$((SECONDS + 5))
	while :; do
		left=""
		for i in "${!pids[@]}"; do
			st=$(kx_starttime "${pids[$i]}")
			[ -n "$st" ] && [ "$st" = "${sts[$i]}" ] && [ "$(kx_state "${pids[$i]}")" != Z ] &&
				left="$left ${pids[$i]}(${cmds[$i]})"
		done
		[ -z "$left" ] || [ "$SECONDS" -ge "$end" ] && break
		sleep 0.2
	done
	result "[$1] SIGKILL of the node: its pods' processes and exec'd commands are gone within 5 s" \
		"$([ "$found" = 1 ] && [ "${#pids[@]}" -ge 3 ] && [ -z "$left" ]; echo $?)" \
		"exec'd sleep seen: $found; node descendants before: ${#pids[@]}; still running after 5 s:$left"
	for i in "${!pids[@]}"; do   # what the failure left (same process: same start time)
		[ "$(kx_starttime "${pids[$i]}")" = "${sts[$i]}" ] && kill -KILL "${pids[$i]}" 2>/dev/null
	done
	wait "$kp" 2>/dev/null
	if [ -n "$cg" ]; then
		for d in "/sys/fs/cgroup$cg" "/sys/fs/cgroup/unified$cg"; do
			[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
		done
	fi
}
t_node_sigkill "$ver"

stop_cluster
trap - EXIT
summary
