#!/bin/bash
# test_stream.sh — acceptance checks for every streaming subresource besides plain exec
# (which test_exec.sh covers): exec transport (WebSocket v5 vs SPDY), attach, logs,
# port-forward, kubectl cp, and @kubernetes/client-node exec. Each kubectl version from
# kubectl-versions.sh runs against one real kubexec-apiserver + kubexec-node on loopback.
# Prints one TAP-like "ok N - [VERSION] check" / "not ok N - ..." line per check, then
# "N passed, N failed"; exits 1 on any failure.
#
# Pods (added through lib.sh's KX_START_HOOK, so they start with the node):
#   ticker  prints "tick N" once a second                     (attach)
#   shell   busybox sh with tty: true, stdin: true            (attach -it)
#   logger  container a: "a gG line 01".."20" (G = how many times a has started),
#           then one "a gG late K" per trigger file and exit 3 on another;
#           container b: "b line 01".."20"                    (logs)
#   web     busybox httpd on 8080; 8081 is closed             (port-forward)
#   demo    lib.sh's pod                                       (exec, cp)
# The image dir is the containers' root filesystem (a bind mount), so the test writes
# the trigger files, the served files and the cp sources straight into it, and reads
# what kubectl cp uploaded from there too.
#
# Time: about 4-6 minutes. The port-forward idle check runs for every version at once:
# one forward per version is opened first and used again after PF_IDLE_S seconds.
#
# Needs root, busybox-static, python3 (pty), curl, and for the client-node check
# Node 22 + @kubernetes/client-node (client-node-setup.sh; make deps installs them).
# KUBEXEC_BUILD=build tests/integration/test_stream.sh
# KUBEXEC_KUBECTL_VERSIONS="1.20 1.33 kubexec" limits the versions (kubexec: our CLI,
# checked like kubectl 1.33 except where noted); KX_KEEP=1 keeps logs;
# PF_BIG_MB (100), PF_CONC (20), PF_IDLE_S (70), CP_MB (20) scale the data checks.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

PF_BIG_MB=${PF_BIG_MB:-100}
PF_CONC=${PF_CONC:-20}
PF_IDLE_S=${PF_IDLE_S:-70}
CP_MB=${CP_MB:-20}
KX_TMP_PREFIX=${KX_TMP_PREFIX:-kubexec-it3}

summary() {
	echo "$KX_PASSED passed, $KX_FAILED failed"
	[ "$KX_FAILED" -eq 0 ]
}

BG_PIDS=()   # background kubectl processes (port-forwards, attachers) to end on exit
kill_bg() {
	local p
	for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	BG_PIDS=()
}

MAIN_PID=$BASHPID
on_exit() {
	local rc=$?
	# Only the main shell owns the cluster, never a subshell that inherited the trap.
	[ "$BASHPID" = "$MAIN_PID" ] || exit $rc
	trap '' INT TERM PIPE
	kill_bg
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

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# kc_bg ENV... -- ARGS...: the current kubectl in the background (not under kc's
# timeout: these outlive KX_KC_TIMEOUT), output in the file $BG_OUT; pid in $BG_PID.
kc_bg() {
	local -a envv=()
	while [ "$1" != -- ]; do envv+=("$1"); shift; done
	shift
	timeout -k 5 900 env HOME="$KX_KHOME" KUBECONFIG="$KUBECONFIG" "${envv[@]}" \
		"$KX_KBIN" --cache-dir "$KX_KHOME/.kube/cache" "$@" </dev/null >"$BG_OUT" 2>&1 &
	BG_PID=$!
	BG_PIDS+=("$BG_PID")
}

# wait_file_grep FILE REGEX SECONDS: 0 once FILE has a line matching REGEX (grep -E).
wait_file_grep() {
	local end=$((SECONDS + $3))
	until grep -qE -- "$2" "$1" 2>/dev/null; do
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 0.1
	done
}

# ---------------------------------------------------------------- the pods

IMG=
write_pods() {
	IMG=$KX_TMP/images/busybox
	mkdir -p "$IMG/kxs" "$IMG/www"
	cat >"$KX_TMP/manifests/ticker.yaml" <<-'EOF'
		apiVersion: v1
		kind: Pod
		metadata:
		  name: ticker
		spec:
		  terminationGracePeriodSeconds: 2
		  containers:
		  - name: main
		    image: busybox
		    command:
		    - sh
		    - -c
		    - |
		      trap 'exit 0' TERM
		      i=0
		      while :; do i=$((i+1)); echo "tick $i"; sleep 1; done
	EOF
	cat >"$KX_TMP/manifests/shell.yaml" <<-'EOF'
		apiVersion: v1
		kind: Pod
		metadata:
		  name: shell
		spec:
		  terminationGracePeriodSeconds: 1
		  containers:
		  - name: sh
		    image: busybox
		    tty: true
		    stdin: true
		    command: ["sh"]
	EOF
	# Container a polls for its trigger files every 50 ms; the generation counter
	# lives in the (shared, persistent) image dir so each run's lines differ.
	cat >"$KX_TMP/manifests/logger.yaml" <<-'EOF'
		apiVersion: v1
		kind: Pod
		metadata:
		  name: logger
		spec:
		  terminationGracePeriodSeconds: 2
		  containers:
		  - name: a
		    image: busybox
		    command:
		    - sh
		    - -c
		    - |
		      trap 'exit 0' TERM
		      g=$(( $(cat /kxs/gen-a 2>/dev/null || echo 0) + 1 ))
		      echo $g >/kxs/gen-a
		      i=1
		      while [ $i -le 20 ]; do printf 'a g%d line %02d\n' $g $i; i=$((i+1)); done
		      n=0
		      while :; do
		        if [ -e /kxs/late-a ]; then rm -f /kxs/late-a; n=$((n+1)); echo "a g$g late $n"; fi
		        if [ -e /kxs/die-a ]; then rm -f /kxs/die-a; echo "a g$g dying"; exit 3; fi
		        sleep 0.05
		      done
		  - name: b
		    image: busybox
		    command:
		    - sh
		    - -c
		    - |
		      trap 'exit 0' TERM
		      i=1
		      while [ $i -le 20 ]; do printf 'b line %02d\n' $i; i=$((i+1)); done
		      while :; do sleep 1; done
	EOF
	cat >"$KX_TMP/manifests/web.yaml" <<-'EOF'
		apiVersion: v1
		kind: Pod
		metadata:
		  name: web
		spec:
		  terminationGracePeriodSeconds: 2
		  containers:
		  - name: httpd
		    image: busybox
		    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
	EOF
	echo hello-from-web >"$IMG/www/index.html"
	head -c $((PF_BIG_MB * 1024 * 1024)) /dev/urandom >"$IMG/www/big"
	head -c $((4 * 1024 * 1024)) /dev/urandom >"$IMG/www/mid"
}

# ---------------------------------------------------------------- pty helper
# ptytype.py READY TEXT EXPECT -- CMD...: run CMD on a 40x120 pty; wait (up to 15 s)
# for READY in its output, type TEXT, wait (up to 15 s) for EXPECT, then SIGTERM the
# command (it must not end the remote shell) and print everything it wrote. Exit 0
# when EXPECT showed up.
write_pty_helper() {
	cat >"$KX_TMP/ptytype.py" <<'EOF'
import fcntl, os, pty, re, select, signal, struct, sys, termios, time

args = sys.argv[1:]
sep = args.index('--')
ready, text, expect = (a.encode() for a in args[:sep])
cmd = args[sep + 1:]

pid, fd = pty.fork()
if pid == 0:
    try:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', 40, 120, 0, 0))
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)

buf = b''
def pump(until, secs):
    global buf
    deadline = time.monotonic() + secs
    while True:
        if until is not None and re.search(until, buf):
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([fd], [], [], min(left, 0.1))
        if r:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b''
            if not data:
                return False
            buf += data

pump(ready, 15)
time.sleep(0.5)
os.write(fd, text)
found = pump(expect, 15)
try:
    os.kill(pid, signal.SIGTERM)
except ProcessLookupError:
    pass
end = time.monotonic() + 5
while True:
    p, _ = os.waitpid(pid, os.WNOHANG)
    if p:
        break
    if time.monotonic() > end:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        break
    pump(None, 0.1)
sys.stdout.write(buf.decode('utf-8', 'replace').replace('\r', ''))
sys.exit(0 if found else 1)
EOF
}

# ---------------------------------------------------------------- 1. exec transport

# upgrades: "SPDY WS" from the API server's /metrics (via the current kubectl, or
# the reference kubectl while kubexec is the client: kq).
upgrades() {
	local m
	m=$(kq get --raw /metrics </dev/null 2>/dev/null)
	printf '%s %s\n' \
		"$(awk '$1 == "kubexec_apiserver_upgrades_total{transport=\"spdy\"}" { print $2 }' <<<"$m")" \
		"$(awk '$1 == "kubexec_apiserver_upgrades_total{transport=\"websocket\"}" { print $2 }' <<<"$m")"
}

# check_delta NAME BEFORE AFTER WANT_SPDY WANT_WS
check_delta() {
	local s0 w0 s1 w1
	read -r s0 w0 <<<"$2"
	read -r s1 w1 <<<"$3"
	if [ -z "$s0" ] || [ -z "$w0" ] || [ -z "$s1" ] || [ -z "$w1" ]; then
		fail "$1" "could not read kubexec_apiserver_upgrades_total from /metrics (before '$2', after '$3')"
		return
	fi
	result "$1" "$([ $((s1 - s0)) = "$4" ] && [ $((w1 - w0)) = "$5" ]; echo $?)" \
		"upgrades spdy +$((s1 - s0)) websocket +$((w1 - w0)), want spdy +$4 websocket +$5"
}

# exec_prefers_ws V: 0 when client V tries WebSocket v5 first for exec and attach.
exec_prefers_ws() {
	case $1 in
	kubexec) return 0 ;;            # as kubectl 1.33 (issue 4)
	1.*) [ "${1#1.}" -ge 30 ] ;;
	*) return 1 ;;
	esac
}

t_transport() { # V
	local b a ws=0 sp=1 name
	exec_prefers_ws "$1" && { ws=1; sp=0; }
	name="[$1] exec goes over $([ "$ws" = 1 ] && echo 'WebSocket v5' || echo SPDY) (/metrics upgrades_total)"
	b=$(upgrades)
	kcr exec demo -- echo hello </dev/null
	a=$(upgrades)
	if [ "$KX_RC" != 0 ] || [ "$(cat "$KX_O")" != hello ]; then
		fail "$name" "the exec itself failed: $(kx_why)"
		return
	fi
	check_delta "$name" "$b" "$a" "$sp" "$ws"
}

# t_spdy_forced V: the exec checks again with KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false.
t_spdy_forced() {
	local b a
	b=$(upgrades)
	KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false kcr exec demo -- echo hello </dev/null
	result "[$1 spdy] exec demo -- echo hello" \
		"$([ "$KX_RC" = 0 ] && [ "$(cat "$KX_O")" = hello ]; echo $?)" "$(kx_why)"
	KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false kcr exec demo -- sh -c 'echo out; echo err >&2; exit 42' </dev/null
	result "[$1 spdy] exec sh -c 'echo out; echo err >&2; exit 42': exit 42, out/err split" \
		"$([ "$KX_RC" = 42 ] && [ "$(cat "$KX_O")" = out ] && grep -qx err "$KX_E" &&
			grep -qF 'command terminated with exit code 42' "$KX_E"; echo $?)" "$(kx_why)"
	KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false kcr exec -i demo -- cat < <(echo hi)
	result "[$1 spdy] echo hi | exec -i demo -- cat" \
		"$([ "$KX_RC" = 0 ] && [ "$(cat "$KX_O")" = hi ]; echo $?)" "$(kx_why)"
	a=$(upgrades)
	check_delta "[$1 spdy] KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false: the 3 execs went over SPDY" \
		"$b" "$a" 3 0
}

# ---------------------------------------------------------------- 2. attach

last_tick() { # the newest "tick N" the ticker has logged, as N
	kq logs ticker --tail=1 </dev/null 2>/dev/null | sed -n 's/^tick \([0-9]*\)$/\1/p'
}

# ticks FILE: the tick numbers in FILE, one a line.
ticks() { sed -n 's/^tick \([0-9]*\)\r\{0,1\}$/\1/p' "$1"; }

# consecutive FROM FILE: 0 if FILE holds >= 2 ticks, all > FROM, consecutive.
consecutive() {
	awk -v from="$1" 'BEGIN { n = 0; bad = 0 }
		{ if ($1 <= from) bad = 1; if (n > 0 && $1 != prev + 1) bad = 1; prev = $1; n++ }
		END { exit (bad || n < 2) }' <(ticks "$2")
}

t_attach() {
	local before f1=$KX_TMP/attach1.out f2=$KX_TMP/attach2.out p1 p2 common
	before=$(last_tick)
	[ -n "$before" ] || before=0
	# Two attachers at once for 5 s (timeout ends them): both see new lines only.
	KX_KC_TIMEOUT_ONCE=5 kc attach ticker </dev/null >"$f1" 2>"$f1.err" &
	p1=$!
	KX_KC_TIMEOUT_ONCE=5 kc attach ticker </dev/null >"$f2" 2>"$f2.err" &
	p2=$!
	wait "$p1" "$p2"
	consecutive "$before" "$f1"
	result "[$1] attach ticker shows new lines (after tick $before)" $? \
		"stdout: $(head -c 300 "$f1" | cat -v)" "stderr: $(head -c 300 "$f1.err")"
	common=$(comm -12 <(ticks "$f1" | sort) <(ticks "$f2" | sort) | wc -l)
	result "[$1] two attachers see the same output" \
		"$(consecutive "$before" "$f2" && [ "$common" -ge 2 ]; echo $?)" \
		"$common ticks in common" "first: $(ticks "$f1" | tr '\n' ' ')" \
		"second: $(ticks "$f2" | tr '\n' ' ')" "second's stderr: $(head -c 300 "$f2.err")"
}

t_attach_tty() {
	local out st a=$((RANDOM % 900 + 100)) want
	want=$((a * 7))
	# The typed line holds "$((a*7))", never the product itself: seeing the product
	# proves the shell ran it.
	out=$(timeout --foreground -k 5 60 python3 "$KX_TMP/ptytype.py" \
		"see a command prompt|Defaulting|\\$ |# " "echo kx\$(($a*7))kx"$'\r' "kx${want}kx" -- \
		env HOME="$KX_KHOME" KUBECONFIG="$KUBECONFIG" "$KX_KBIN" \
		--cache-dir "$KX_KHOME/.kube/cache" attach -it shell 2>&1)
	st=$?
	result "[$1] attach -it shell under a pty runs a typed command" "$st" \
		"helper exit $st; output: $(printf '%s' "$out" | tail -c 600 | cat -v)"
}

# ---------------------------------------------------------------- 3. logs

LATE=0          # "late" lines container a's current run has written
GEN=2           # container a's current run (1 is the --previous one)
LAST_TRIG=0     # ms of the last trigger

# trigger NAME: create the trigger file in the image and wait (3 s) until the
# container has taken it.
trigger() {
	local end=$((SECONDS + 3))
	: >"$IMG/kxs/$1"
	LAST_TRIG=$(now_ms)
	while [ -e "$IMG/kxs/$1" ]; do
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 0.02
	done
}

exp_a() { # the current run of container a, line by line
	local i
	for i in $(seq 1 20); do printf 'a g%d line %02d\n' "$GEN" "$i"; done
	for i in $(seq 1 "$LATE"); do printf 'a g%d late %d\n' "$GEN" "$i"; done
}

# same NAME WANT_FILE: result of comparing $KX_O with WANT_FILE byte for byte.
same() {
	result "$1" "$([ "$KX_RC" = 0 ] && cmp -s "$2" "$KX_O"; echo $?)" \
		"want: $(head -c 200 "$2" | tr '\n' '|')" "$(kx_why | tr '\n' '|')"
}

t_logs() {
	local w=$KX_TMP/logs.want f=$KX_TMP/logsf.out t0 t1 d end dt

	exp_a | tail -n 5 >"$w"
	kcr logs logger -c a --tail=5 </dev/null
	same "[$1] logs --tail=5: the last 5 lines" "$w"

	exp_a | tail -n 2 >"$w"
	kcr logs logger -c a --tail=2 --timestamps </dev/null
	result "[$1] logs --timestamps: RFC3339 nanosecond stamp + the line" \
		"$([ "$KX_RC" = 0 ] &&
			[ "$(grep -cE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{9}(Z|[+-][0-9]{2}:[0-9]{2}) ' "$KX_O")" = 2 ] &&
			cut -d' ' -f2- "$KX_O" | cmp -s "$w" -; echo $?)" \
		"want (after the stamp): $(tr '\n' '|' <"$w")" "$(kx_why | tr '\n' '|')"

	exp_a | head -c 100 >"$w"
	kcr logs logger -c a --limit-bytes=100 </dev/null
	same "[$1] logs --limit-bytes=100: exactly the first 100 bytes" "$w"

	printf 'b line %02d\n' $(seq 1 20) >"$w"
	kcr logs logger -c b </dev/null
	same "[$1] logs -c b: container b's lines only" "$w"

	# --since=2s: every line but a fresh one is older than 2 s.
	d=$(($(now_ms) - LAST_TRIG))
	[ "$d" -lt 3000 ] && sleep "$(awk -v d="$d" 'BEGIN { printf "%.3f", (3000 - d) / 1000 }')"
	if trigger late-a; then LATE=$((LATE + 1)); fi
	sleep 0.3
	exp_a | tail -n 1 >"$w"
	kcr logs logger -c a --since=2s </dev/null
	dt=$(($(now_ms) - LAST_TRIG))
	same "[$1] logs --since=2s: only the line written just now (${dt} ms ago)" "$w"

	# -f: once the follower has shown the current last line, a new line must reach
	# it within 1 s of being written.
	exp_a | tail -n 1 >"$w"
	BG_OUT=$f
	kc_bg -- logs -f logger -c a
	if ! wait_file_grep "$f" "^$(cat "$w")\$" 15; then
		fail "[$1] logs -f: a new line arrives within 1 s" "the follower never showed '$(cat "$w")'" \
			"output: $(tail -c 300 "$f")"
	else
		t0=$(now_ms)
		if trigger late-a; then LATE=$((LATE + 1)); fi
		end=$((t0 + 3000))
		t1=
		while [ "$(now_ms)" -lt "$end" ]; do
			if grep -qx "a g$GEN late $LATE" "$f"; then t1=$(now_ms); break; fi
			sleep 0.02
		done
		result "[$1] logs -f: a new line arrives within 1 s ($([ -n "$t1" ] && echo "$((t1 - t0)) ms" || echo "none in 3 s"))" \
			"$([ -n "$t1" ] && [ $((t1 - t0)) -le 1000 ]; echo $?)" \
			"$([ -n "$t1" ] && echo "took $((t1 - t0)) ms" || echo "not within 3 s")" \
			"output: $(tail -c 300 "$f" | tr '\n' '|')"
	fi
	kill "$BG_PID" 2>/dev/null
	wait "$BG_PID" 2>/dev/null

	printf 'a g1 line %02d\n' $(seq 1 20) >"$w"
	echo "a g1 dying" >>"$w"
	kcr logs logger -c a --previous </dev/null
	same "[$1] logs --previous: the old run's lines" "$w"
}

# Container a's first run writes its lines and exits on the die trigger; the second
# run is the "current" one for every version's checks. Once, before the versions.
restart_logger() {
	local end=$((SECONDS + 20)) rc
	wait_logs_line "a g1 line 20" 15 || kx_log "logger: the first run's lines did not show up"
	trigger die-a || kx_log "logger: container a did not take the die trigger"
	while :; do
		rc=$(kq get pod logger -o 'jsonpath={.status.containerStatuses[?(@.name=="a")].restartCount}' </dev/null 2>/dev/null)
		[ "${rc:-0}" -ge 1 ] && break
		[ "$SECONDS" -ge "$end" ] && break
		sleep 0.3
	done
	wait_logs_line "a g2 line 20" 15
	result "logger container a restarted (restartCount ${rc:-?}) and its new run logs" $? \
		"last lines: $(kq logs logger -c a --tail=3 </dev/null 2>&1 | tr '\n' '|')"
}

wait_logs_line() { # LINE SECONDS: the line shows in `logs logger -c a`
	local end=$((SECONDS + $2))
	until kq logs logger -c a </dev/null 2>/dev/null | grep -qxF "$1"; do
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 0.3
	done
}

# ---------------------------------------------------------------- 4. port-forward

PORT_BASE=$((20000 + RANDOM % 20000))
PORT_NEXT=$PORT_BASE
BIG_SHA=
MID_SHA=
declare -A IDLE_PID IDLE_PORT IDLE_LOG

next_port() { PORT=$PORT_NEXT; PORT_NEXT=$((PORT_NEXT + 1)); }

fetch_sha() { # PORT PATH
	curl -sS --max-time 120 "http://127.0.0.1:$1/$2" | sha256sum | cut -d' ' -f1
}

# pf_start LOG PORTSPEC...: port-forward pod/web in the background; 0 once it listens
# on the first local port.
pf_start() {
	local log=$1
	shift
	BG_OUT=$log
	kc_bg -- port-forward pod/web "$@"
	wait_file_grep "$log" "Forwarding from 127.0.0.1:${1%%:*} " 20
}

# The idle forward of each version, opened before the version loop.
pf_idle_open() { # V
	local got
	next_port
	IDLE_PORT[$1]=$PORT
	IDLE_LOG[$1]=$KX_TMP/pf-idle-$1.log
	pf_start "${IDLE_LOG[$1]}" "$PORT:8080"
	IDLE_PID[$1]=$BG_PID
	got=$(curl -sS --max-time 20 "http://127.0.0.1:$PORT/index.html" 2>&1)
	[ "$got" = hello-from-web ] || kx_log "[$1] idle forward: first request got '$got'"
}

pf_idle_check() { # V
	local got
	got=$(curl -sS --max-time 20 "http://127.0.0.1:${IDLE_PORT[$1]}/index.html" 2>&1)
	result "[$1] port-forward serves after ${PF_IDLE_S} s idle" "$([ "$got" = hello-from-web ]; echo $?)" \
		"got: $got" "kubectl $([ -n "$(kx_state "${IDLE_PID[$1]}")" ] && echo 'still running' || echo 'gone'): $(tail -n 5 "${IDLE_LOG[$1]}")"
}

t_portforward() { # V MINOR
	local log=$KX_TMP/pf-$1.log lp cp pid got bad j st
	local -a cpids=()
	next_port
	lp=$PORT
	next_port
	cp=$PORT
	if ! pf_start "$log" "$lp:8080" "$cp:8081"; then
		fail "[$1] port-forward pod/web starts" "$(tail -n 5 "$log")"
		kill "$BG_PID" 2>/dev/null
		return
	fi
	pid=$BG_PID
	got=$(fetch_sha "$lp" big)
	result "[$1] port-forward: ${PF_BIG_MB} MB download has the same sha256" \
		"$([ "$got" = "$BIG_SHA" ]; echo $?)" "got $got want $BIG_SHA" "kubectl: $(tail -n 3 "$log")"
	for j in $(seq "$PF_CONC"); do
		fetch_sha "$lp" mid >"$KX_TMP/conc-$1-$j" 2>&1 &
		cpids+=("$!")
	done
	wait "${cpids[@]}"
	bad=0
	for j in $(seq "$PF_CONC"); do
		[ "$(cat "$KX_TMP/conc-$1-$j")" = "$MID_SHA" ] || bad=$((bad + 1))
	done
	result "[$1] port-forward: $PF_CONC concurrent downloads all complete intact" "$bad" \
		"$bad of $PF_CONC wrong"

	# A closed pod port: the local connection fails and kubectl prints the node's
	# error. kubectl 1.20 then keeps forwarding; from 1.27 on (measured; clients.md
	# §0.14, §5.3) any error-stream text ends the session: `lost connection to pod`.
	# kubexec deliberately keeps forwarding (issue 4): it prints "an error occurred
	# forwarding L -> R: TEXT" and the next connection through it must work.
	st=0
	curl -s --max-time 20 "http://127.0.0.1:$cp/" >/dev/null && st=1
	wait_file_grep "$log" 'error forwarding port 8081' 10 || st=1
	result "[$1] port-forward to a closed port: connection fails, kubectl shows the error" "$st" \
		"kubectl: $(tail -n 4 "$log")"
	if [ "$1" = kubexec ]; then
		grep -q "^an error occurred forwarding $cp -> 8081: .*error forwarding port 8081 to pod web" "$log"
		result "[$1] port-forward to a closed port: 'an error occurred forwarding $cp -> 8081: <the node's error>'" $? \
			"kubexec: $(tail -n 4 "$log")"
		got=$(curl -sS --max-time 20 "http://127.0.0.1:$lp/index.html" 2>&1)
		st=$([ "$got" = hello-from-web ]; echo $?)
		kx_wait_exit "$pid" 0 && st=1
		result "[$1] port-forward: after the closed port, the next connection through the same forward works" \
			"$st" "got: $got" "kubexec $([ "$(kx_state "$pid")" = Z ] || [ -z "$(kx_state "$pid")" ] && echo gone || echo 'still running'): $(tail -n 4 "$log")"
	elif [ "$2" -lt 27 ]; then
		got=$(curl -sS --max-time 20 "http://127.0.0.1:$lp/index.html" 2>&1)
		result "[$1] port-forward: after the closed port, the next connection works" \
			"$([ "$got" = hello-from-web ]; echo $?)" "got: $got" "kubectl: $(tail -n 4 "$log")"
	else
		st=0
		kx_wait_exit "$pid" 15 || st=1
		grep -q 'lost connection to pod' "$log" || st=1
		result "[$1] port-forward: after the closed port kubectl exits with 'lost connection to pod'" \
			"$st" "kubectl: $(tail -n 4 "$log")"
	fi
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

# ---------------------------------------------------------------- 5. kubectl cp

CPD=
prepare_cp() {
	CPD=$KX_TMP/cp
	mkdir -p "$CPD/tree/sub/deeper" "$CPD/tree/empty" "$IMG/tmp/src-tree/x/y" "$IMG/tmp/src-tree/e"
	head -c $((CP_MB * 1024 * 1024)) /dev/urandom >"$CPD/big.bin"
	head -c $((CP_MB * 1024 * 1024)) /dev/urandom >"$IMG/tmp/src-big.bin"
	head -c 12345 /dev/urandom >"$CPD/tree/a.bin"
	echo "text file" >"$CPD/tree/sub/b.txt"
	: >"$CPD/tree/sub/empty-file"
	head -c 300000 /dev/urandom >"$CPD/tree/sub/deeper/c.bin"
	echo "space" >"$CPD/tree/sub/with space.txt"
	head -c 54321 /dev/urandom >"$IMG/tmp/src-tree/a.bin"
	echo "hello tree" >"$IMG/tmp/src-tree/x/b.txt"
	head -c 200000 /dev/urandom >"$IMG/tmp/src-tree/x/y/c.bin"
	: >"$IMG/tmp/src-tree/x/empty-file"
}

# same_tree A B: same files with the same bytes, same directories (empty ones too).
same_tree() {
	diff -r "$1" "$2" >/dev/null &&
		[ "$(cd "$1" && find . -type d | sort)" = "$(cd "$2" && find . -type d | sort)" ]
}

t_cp() { # V
	local dst
	KX_KC_TIMEOUT_ONCE=120 kcr cp "$CPD/big.bin" "demo:/tmp/up-$1.bin" </dev/null
	result "[$1] kubectl cp ${CP_MB} MB host -> pod: byte-identical" \
		"$([ "$KX_RC" = 0 ] && cmp -s "$CPD/big.bin" "$IMG/tmp/up-$1.bin"; echo $?)" \
		"in the pod: $(stat -c %s "$IMG/tmp/up-$1.bin" 2>&1) bytes" "$(kx_why)"
	rm -f "$IMG/tmp/up-$1.bin"

	dst=$CPD/down-$1.bin
	KX_KC_TIMEOUT_ONCE=120 kcr cp "demo:/tmp/src-big.bin" "$dst" </dev/null
	result "[$1] kubectl cp ${CP_MB} MB pod -> host: byte-identical" \
		"$([ "$KX_RC" = 0 ] && cmp -s "$IMG/tmp/src-big.bin" "$dst"; echo $?)" \
		"on the host: $(stat -c %s "$dst" 2>&1) bytes" "$(kx_why)"
	rm -f "$dst"

	KX_KC_TIMEOUT_ONCE=120 kcr cp "$CPD/tree" "demo:/tmp/uptree-$1" </dev/null
	result "[$1] kubectl cp directory tree host -> pod: identical" \
		"$([ "$KX_RC" = 0 ] && same_tree "$CPD/tree" "$IMG/tmp/uptree-$1"; echo $?)" \
		"diff: $(diff -r "$CPD/tree" "$IMG/tmp/uptree-$1" 2>&1 | head -n 5)" "$(kx_why)"
	rm -rf "$IMG/tmp/uptree-$1"

	dst=$CPD/downtree-$1
	KX_KC_TIMEOUT_ONCE=120 kcr cp "demo:/tmp/src-tree" "$dst" </dev/null
	result "[$1] kubectl cp directory tree pod -> host: identical" \
		"$([ "$KX_RC" = 0 ] && same_tree "$IMG/tmp/src-tree" "$dst"; echo $?)" \
		"diff: $(diff -r "$IMG/tmp/src-tree" "$dst" 2>&1 | head -n 5)" "$(kx_why)"
	rm -rf "$dst"
}

# ---------------------------------------------------------------- 6. client-node

t_client_node() {
	local nb dir d=$KX_TMP/client_node b a
	if ! read -r nb dir < <("$HERE/client-node-setup.sh" 2>"$KX_TMP/cn-setup.err"); then
		fail "client-node: Node 22 + @kubernetes/client-node available" "$(cat "$KX_TMP/cn-setup.err")"
		return
	fi
	# The driver resolves @kubernetes/client-node from its own directory.
	mkdir -p "$d"
	cp "$HERE/client_node/exec.mjs" "$d/"
	ln -sfn "$dir/node_modules" "$d/node_modules"
	b=$(upgrades)
	KX_O=$KX_TMP/cn.out
	KX_E=$KX_TMP/cn.err
	timeout -k 5 60 env KUBECONFIG="$KUBECONFIG" "$nb" "$d/exec.mjs" default demo main -- \
		sh -c 'echo out; echo err >&2; exit 42' </dev/null >"$KX_O" 2>"$KX_E"
	KX_RC=$?
	a=$(upgrades)
	result "client-node exec sh -c 'echo out; echo err >&2; exit 42': exit 42, out/err split" \
		"$([ "$KX_RC" = 42 ] && [ "$(cat "$KX_O")" = out ] && [ "$(head -n1 "$KX_E")" = err ]; echo $?)" \
		"$(kx_why)"
	check_delta "client-node exec goes over WebSocket" "$b" "$a" 0 1
	timeout -k 5 60 env KUBECONFIG="$KUBECONFIG" "$nb" "$d/exec.mjs" --stdin default demo main -- \
		sh -c 'cat; echo done >&2' < <(printf 'one\ntwo\n') >"$KX_O" 2>"$KX_E"
	KX_RC=$?
	result "client-node exec with stdin: cat echoes it, stdin EOF ends it, exit 0" \
		"$([ "$KX_RC" = 0 ] && [ "$(cat "$KX_O")" = $'one\ntwo' ] && grep -qx 'done' "$KX_E"; echo $?)" \
		"$(kx_why)"
	timeout -k 5 60 env KUBECONFIG="$KUBECONFIG" "$nb" "$d/exec.mjs" default demo main -- \
		echo hello </dev/null >"$KX_O" 2>"$KX_E"
	KX_RC=$?
	result "client-node exec echo hello: exit 0, stdout hello, no stderr" \
		"$([ "$KX_RC" = 0 ] && [ "$(cat "$KX_O")" = hello ] && [ ! -s "$KX_E" ]; echo $?)" "$(kx_why)"
}

# ---------------------------------------------------------------- main

if [ "$(id -u)" != 0 ]; then
	fail "running as root" "the node needs root for namespaces and mounts"
	summary
	exit 1
fi
for c in curl python3 sha256sum; do
	command -v "$c" >/dev/null || { fail "$c is installed"; summary; exit 1; }
done

if versions=$("$HERE/kubectl-versions.sh" 2>"/tmp/kubexec-kv3.$$"); then
	ok "kubectl versions available: $(echo "$versions" | cut -d' ' -f1 | tr '\n' ' ')"
else
	fail "kubectl versions available" "$(cat "/tmp/kubexec-kv3.$$")" "$versions"
	rm -f "/tmp/kubexec-kv3.$$"
	summary
	exit 1
fi
rm -f "/tmp/kubexec-kv3.$$"
mapfile -t vlines <<<"$versions"
kx_set_ref "$versions"

KX_START_HOOK=write_pods
if start_cluster "$KX_REF_KBIN"; then
	ok "cluster starts and pod demo is Running"
else
	fail "cluster starts and pod demo is Running" "see the log lines above"
	stop_cluster
	summary
	exit 1
fi
write_pty_helper
BIG_SHA=$(sha256sum <"$IMG/www/big" | cut -d' ' -f1)
MID_SHA=$(sha256sum <"$IMG/www/mid" | cut -d' ' -f1)
prepare_cp

use_kubectl "${vlines[-1]%% *}" "${vlines[-1]#* }"
end=$((SECONDS + 30))
while :; do
	notrun=
	for p in ticker shell logger web; do
		[ "$(kq get pod "$p" -o 'jsonpath={.status.phase}' </dev/null 2>/dev/null)" = Running ] ||
			notrun="$notrun $p"
	done
	[ -z "$notrun" ] && break
	[ "$SECONDS" -ge "$end" ] && break
	sleep 0.3
done
result "pods ticker, shell, logger and web are Running" "$([ -z "$notrun" ]; echo $?)" \
	"not Running:$notrun"
restart_logger

# The idle forwards: one per version, all idle at once while the rest runs.
IDLE_START=$SECONDS
for line in "${vlines[@]}"; do
	use_kubectl "${line%% *}" "${line#* }"
	pf_idle_open "${line%% *}"
done

for line in "${vlines[@]}"; do
	ver=${line%% *}
	minor=${ver#1.}   # "kubexec" for kubexec: t_portforward branches on the label first
	use_kubectl "$ver" "${line#* }"
	t_transport "$ver"
	exec_prefers_ws "$ver" && t_spdy_forced "$ver"
	t_attach "$ver"
	t_attach_tty "$ver"
	t_logs "$ver"
	t_portforward "$ver" "$minor"
	t_cp "$ver"
done

t_client_node

left=$((PF_IDLE_S - (SECONDS - IDLE_START)))
if [ "$left" -gt 0 ]; then
	kx_log "waiting ${left}s more for the idle port-forwards"
	sleep "$left"
fi
for line in "${vlines[@]}"; do
	pf_idle_check "${line%% *}"
done

kill_bg
stop_cluster
trap - EXIT
summary
