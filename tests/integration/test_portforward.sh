#!/bin/bash
# test_portforward.sh — `kubectl port-forward` acceptance checks (protocol.md §5,
# checklist items 33-37 and 50) with every kubectl version from kubectl-versions.sh,
# plus the newest kubectl forced onto SPDY (KUBECTL_PORT_FORWARD_WEBSOCKETS=false), and
# our own CLI `kubexec` (when listed) both ways too, against one real kubexec-apiserver
# + kubexec-node on loopback.
#
# A pod `web` runs `busybox httpd -f -p 8080 -h /www`; every variant keeps one
# `kubectl port-forward pod/web L:8080 L2:8081` (8081 is closed) and checks:
#   transport   SPDY (POST) for <= 1.30 and the forced variant, the WebSocket
#               tunnel (GET, SPDY/3.1+portforward.k8s.io) for >= 1.31 (from
#               kubectl's -v=6 log); kubexec: the tunnel, kubexec-spdy: SPDY (from
#               the API server's /metrics upgrade counters)
#   big         a PF_BIG_MB (default 100) MB file arrives with the same sha256
#   concurrent  PF_CONC (default 20) parallel downloads all complete intact
#   idle        after PF_IDLE_S (default 70) s without traffic the forward serves
#   closed port curl through L2 fails; kubectl reports the node's error; <= 1.30
#               keep forwarding (next request on L works), >= 1.31 exit with
#               `lost connection to pod` (upstream behaviour); kubexec prints
#               "an error occurred forwarding L2 -> 8081: ..." and keeps forwarding
#               (next request on L works) on either transport, by design
# then: a hostNetwork pod is reachable through port-forward, and the node has no
# more open fds than before the forwards once every kubectl is gone.
#
# pf_spdy_probe.py (python3) runs meanwhile: the stream rules kubectl never
# exercises (bad headers, old-client pairing, duplicates, 30 s pair timeout).
#
# Needs root, busybox-static, curl, python3. KUBEXEC_BUILD=build tests/integration/test_portforward.sh
# KUBEXEC_KUBECTL_VERSIONS="1.29 1.33" limits the versions; KX_KEEP=1 keeps logs.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

PF_BIG_MB=${PF_BIG_MB:-100}
PF_CONC=${PF_CONC:-20}
PF_IDLE_S=${PF_IDLE_S:-70}

summary() {
	echo "$KX_PASSED passed, $KX_FAILED failed"
	[ "$KX_FAILED" -eq 0 ]
}

PF_PIDS=()
MAIN_PID=$BASHPID
on_exit() {
	local rc=$? p
	[ "$BASHPID" = "$MAIN_PID" ] || exit $rc
	trap '' INT TERM PIPE
	for p in "${PF_PIDS[@]}"; do kill "$p" 2>/dev/null; done
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

command -v curl >/dev/null || { fail "curl is installed"; summary; exit 1; }

VERSIONS=$("$HERE/kubectl-versions.sh") || { fail "kubectl versions available"; summary; exit 1; }
kx_set_ref "$VERSIONS"

if ! start_cluster "$KX_REF_KBIN"; then
	fail "cluster starts"
	stop_cluster
	summary
	exit 1
fi

# ---------------------------------------------------------------- the web pods
WWW=$KX_TMP/images/busybox/www
mkdir -p "$WWW"
echo hello-from-web >"$WWW/index.html"
head -c $((PF_BIG_MB * 1024 * 1024)) /dev/urandom >"$WWW/big"
head -c $((4 * 1024 * 1024)) /dev/urandom >"$WWW/mid"
BIG_SHA=$(sha256sum <"$WWW/big" | cut -d' ' -f1)
MID_SHA=$(sha256sum <"$WWW/mid" | cut -d' ' -f1)
HOSTNET_PORT=$((30000 + RANDOM % 20000))
cat >"$KX_TMP/manifests/web.yaml" <<EOF
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
cat >"$KX_TMP/manifests/hweb.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: hweb
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 2
  containers:
  - name: httpd
    image: busybox
    command: ["httpd", "-f", "-p", "127.0.0.1:$HOSTNET_PORT", "-h", "/www"]
EOF
read -r V0 B0 <<<"$(head -n1 <<<"$VERSIONS")"
use_kubectl "$V0" "$B0"
end=$((SECONDS + 30))
while :; do
	a=$(kq get pod web -o 'jsonpath={.status.phase}' 2>/dev/null)
	b=$(kq get pod hweb -o 'jsonpath={.status.phase}' 2>/dev/null)
	[ "$a" = Running ] && [ "$b" = Running ] && break
	[ "$SECONDS" -ge "$end" ] && break
	sleep 0.5
done
result "pods web and hweb are Running" "$([ "$a" = Running ] && [ "$b" = Running ]; echo $?)" "web=$a hweb=$b"
# The API server keeps one multiplexed connection to the node (kubexec/mux.h),
# dialed by its first session: the baseline includes it.
kq exec web -- true </dev/null >/dev/null 2>&1
sleep 1
fd_list() { find "/proc/$KX_NODE_PID/fd" -mindepth 1 -printf '%f -> %l\n' 2>/dev/null | sort; }
FD_BEFORE=$(kx_fd_count "$KX_NODE_PID")
fd_list >"$KX_TMP/fd.before"

# ---------------------------------------------------------------- the forwards
# Variants: "label minor bin env"; minor is "-" for kubexec (it branches on its label).
VARIANTS=()
lastk=
kxbin=
while read -r v bin; do
	case $v in
	kubexec) VARIANTS+=("kubexec - $bin -"); kxbin=$bin ;;
	*) VARIANTS+=("$v ${v#1.} $bin -"); lastk="$v $bin" ;;
	esac
done <<<"$VERSIONS"
[ -n "$lastk" ] && VARIANTS+=("${lastk%% *}-spdy 0 ${lastk#* } KUBECTL_PORT_FORWARD_WEBSOCKETS=false")
[ -n "$kxbin" ] && VARIANTS+=("kubexec-spdy - $kxbin KUBECTL_PORT_FORWARD_WEBSOCKETS=false")

wait_forwarding() { # LABEL
	local end=$((SECONDS + 20))
	while ! grep -q "Forwarding from 127.0.0.1:${LPORT[$1]} " "${LOG[$1]}"; do
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 0.2
	done
}

# upgrades: "SPDY WS" from the API server's /metrics (the reference kubectl for
# kubexec). Port-forward upgrades count there per transport, together with exec's.
upgrades() {
	local m
	m=$(kq get --raw /metrics </dev/null 2>/dev/null)
	printf '%s %s\n' \
		"$(awk '$1 == "kubexec_apiserver_upgrades_total{transport=\"spdy\"}" { print $2 }' <<<"$m")" \
		"$(awk '$1 == "kubexec_apiserver_upgrades_total{transport=\"websocket\"}" { print $2 }' <<<"$m")"
}

BASE=$((20000 + RANDOM % 20000))
declare -A LPORT CPORT LOG PID UP_BEFORE UP_AFTER
i=0
for var in "${VARIANTS[@]}"; do
	read -r label minor bin envv <<<"$var"
	use_kubectl "$label" "$bin"
	LPORT[$label]=$((BASE + 2 * i))
	CPORT[$label]=$((BASE + 2 * i + 1))
	LOG[$label]=$KX_TMP/pf-$label.log
	i=$((i + 1))
	[ "$envv" = - ] && envv=KX_PF_NOENV=1
	case $label in
	kubexec | kubexec-spdy)
		# kubexec logs no requests at -v=6: its one upgrade (made before it prints
		# "Forwarding from") is read off /metrics, with nothing else upgrading
		# meanwhile (every forward started before it has made its own).
		for p in "${!PID[@]}"; do wait_forwarding "$p"; done
		UP_BEFORE[$label]=$(upgrades)
		;;
	esac
	# Not through kc: the idle phase needs more than KX_KC_TIMEOUT, and -v=6
	# shows which upgrade kubectl made.
	timeout -k 5 900 env HOME="$KX_KHOME" KUBECONFIG="$KUBECONFIG" "$envv" \
		"$bin" --cache-dir "$KX_KHOME/.kube/cache" -v=6 \
		port-forward pod/web "${LPORT[$label]}:8080" "${CPORT[$label]}:8081" \
		</dev/null >"${LOG[$label]}" 2>&1 &
	PID[$label]=$!
	PF_PIDS+=("$!")
	case $label in
	kubexec | kubexec-spdy)
		wait_forwarding "$label"
		UP_AFTER[$label]=$(upgrades)
		;;
	esac
done

fetch_sha() { # PORT PATH
	curl -sS --max-time 120 "http://127.0.0.1:$1/$2" | sha256sum | cut -d' ' -f1
}

for var in "${VARIANTS[@]}"; do
	read -r label minor bin envv <<<"$var"
	wait_forwarding "$label"
	result "[$label] port-forward starts" $? "$(grep -v round_trippers "${LOG[$label]}" | tail -n 5)"
	# -v=6 shows the upgrade: the tunnel dialer names what it negotiated.
	if [ "$label" = kubexec ] || [ "$label" = kubexec-spdy ]; then
		read -r s0 w0 <<<"${UP_BEFORE[$label]}"
		read -r s1 w1 <<<"${UP_AFTER[$label]}"
		if [ "$label" = kubexec ]; then want="0 1" name="uses the WebSocket tunnel"; else want="1 0" name="uses SPDY"; fi
		result "[$label] $name (/metrics: spdy +$((${s1:-0} - ${s0:-0})), websocket +$((${w1:-0} - ${w0:-0})))" \
			"$([ -n "$s0" ] && [ -n "$s1" ] && [ -n "$w0" ] && [ -n "$w1" ] &&
				[ "$((s1 - s0)) $((w1 - w0))" = "$want" ]; echo $?)" \
			"upgrades_total spdy/websocket before '${UP_BEFORE[$label]}', after '${UP_AFTER[$label]}'; want +$want"
	elif [ "$minor" -ge 31 ]; then
		grep -q 'tunneling_dialer.*negotiated protocol: portforward.k8s.io' "${LOG[$label]}"
		result "[$label] uses the WebSocket tunnel" $? "$(grep -i portforward "${LOG[$label]}" | tail -n 3)"
	else
		! grep -q 'tunneling_dialer' "${LOG[$label]}" &&
			grep -Eq 'POST.*portforward.*101|verb="POST".*portforward.*101' "${LOG[$label]}"
		result "[$label] uses SPDY" $? "$(grep -i portforward "${LOG[$label]}" | tail -n 3)"
	fi
	got=$(fetch_sha "${LPORT[$label]}" big)
	result "[$label] ${PF_BIG_MB} MB download has the same sha256" "$([ "$got" = "$BIG_SHA" ]; echo $?)" \
		"got $got want $BIG_SHA"
	cpids=()
	for j in $(seq "$PF_CONC"); do
		fetch_sha "${LPORT[$label]}" mid >"$KX_TMP/conc-$label-$j" &
		cpids+=("$!")
	done
	for p in "${cpids[@]}"; do wait "$p"; done
	bad=0
	for j in $(seq "$PF_CONC"); do
		[ "$(cat "$KX_TMP/conc-$label-$j")" = "$MID_SHA" ] || bad=$((bad + 1))
	done
	result "[$label] $PF_CONC concurrent downloads complete intact" "$bad" "$bad of $PF_CONC wrong"
done

# The stream rules kubectl never exercises (bad headers, old-client pairing,
# duplicates, the 30 s pair timeout) with a hand-made SPDY client, during the idle time.
python3 "$HERE/pf_spdy_probe.py" "$KUBECONFIG" web 8080 >"$KX_TMP/probe.out" 2>&1 &
PROBE=$!
kx_log "idle for ${PF_IDLE_S}s"
sleep "$PF_IDLE_S"
wait "$PROBE"
probe_rc=$?
while IFS= read -r line; do
	case $line in
	"ok - "*) ok "[probe] ${line#ok - }" ;;
	"not ok - "*) fail "[probe] ${line#not ok - }" ;;
	"#"*) printf '%s\n' "$line" ;;
	esac
done <"$KX_TMP/probe.out"
grep -q '^ok - ' "$KX_TMP/probe.out" || fail "[probe] runs" "exit $probe_rc: $(tail -n 5 "$KX_TMP/probe.out")"

for var in "${VARIANTS[@]}"; do
	read -r label minor bin envv <<<"$var"
	got=$(curl -sS --max-time 20 "http://127.0.0.1:${LPORT[$label]}/index.html" 2>&1)
	result "[$label] serves after ${PF_IDLE_S}s idle" "$([ "$got" = hello-from-web ]; echo $?)" "got: $got"
done

for var in "${VARIANTS[@]}"; do
	read -r label minor bin envv <<<"$var"
	cst=0
	curl -s --max-time 20 "http://127.0.0.1:${CPORT[$label]}/" >/dev/null || cst=1
	result "[$label] a closed pod port fails the local connection" "$((1 - cst))"
	end=$((SECONDS + 10))
	while ! grep -q 'error forwarding port 8081' "${LOG[$label]}" && [ "$SECONDS" -lt "$end" ]; do sleep 0.2; done
	grep -q 'error forwarding port 8081 to pod web' "${LOG[$label]}"
	result "[$label] kubectl shows the node's error" $? "$(grep -v round_trippers "${LOG[$label]}" | tail -n 4)"
	if [ "$label" = kubexec ] || [ "$label" = kubexec-spdy ]; then
		# By design kubexec reports the error and goes on serving (issue 4).
		grep -q "^an error occurred forwarding ${CPORT[$label]} -> 8081: .*error forwarding port 8081 to pod web" "${LOG[$label]}"
		result "[$label] kubexec prints 'an error occurred forwarding ${CPORT[$label]} -> 8081: <the node's error>'" $? \
			"$(tail -n 4 "${LOG[$label]}")"
		got=$(curl -sS --max-time 20 "http://127.0.0.1:${LPORT[$label]}/index.html" 2>&1)
		st=$([ "$got" = hello-from-web ]; echo $?)
		kx_wait_exit "${PID[$label]}" 0 && st=1
		result "[$label] kubexec keeps forwarding: the next connection to the open port works" "$st" \
			"got: $got" "kubexec $([ "$(kx_state "${PID[$label]}")" = Z ] || [ -z "$(kx_state "${PID[$label]}")" ] && echo gone || echo 'still running'): $(tail -n 3 "${LOG[$label]}")"
	elif [ "$minor" -ge 27 ] || [ "$label" != "${label%-spdy}" ]; then
		# Newer clients (seen: 1.27 and later; 1.20 does not) end the session on
		# any error-stream text, on either transport.
		st=0
		kx_wait_exit "${PID[$label]}" 15 || st=1
		grep -q 'lost connection to pod' "${LOG[$label]}" || st=1
		result "[$label] kubectl exits with 'lost connection to pod'" "$st" \
			"$(grep -v round_trippers "${LOG[$label]}" | tail -n 3)"
	else
		got=$(curl -sS --max-time 20 "http://127.0.0.1:${LPORT[$label]}/index.html" 2>&1)
		result "[$label] the next connection to the open port works" "$([ "$got" = hello-from-web ]; echo $?)" "got: $got"
	fi
done

# ---------------------------------------------------------------- hostNetwork
use_kubectl "$V0" "$B0"
HL=$((BASE + 2 * i + 10))
# timeout directly (not kc, a shell function): killing $! must reach kubectl.
timeout -k 5 300 env HOME="$KX_KHOME" KUBECONFIG="$KUBECONFIG" "$B0" --cache-dir "$KX_KHOME/.kube/cache" \
	port-forward pod/hweb "$HL:$HOSTNET_PORT" </dev/null >"$KX_TMP/pf-hweb.log" 2>&1 &
HPID=$!
PF_PIDS+=("$HPID")
end=$((SECONDS + 20))
while ! grep -qs "Forwarding from 127.0.0.1:$HL " "$KX_TMP/pf-hweb.log" && [ "$SECONDS" -lt "$end" ]; do sleep 0.2; done
got=$(curl -sS --max-time 20 "http://127.0.0.1:$HL/index.html" 2>&1)
result "[$V0] hostNetwork pod reachable through port-forward" "$([ "$got" = hello-from-web ]; echo $?)" "got: $got"

# ---------------------------------------------------------------- leaks
for p in "${PF_PIDS[@]}"; do kill "$p" 2>/dev/null; done
for p in "${PF_PIDS[@]}"; do wait "$p" 2>/dev/null; done
PF_PIDS=()
end=$((SECONDS + 15))
while :; do
	FD_AFTER=$(kx_fd_count "$KX_NODE_PID")
	[ "$FD_AFTER" -le "$FD_BEFORE" ] && break
	[ "$SECONDS" -ge "$end" ] && break
	sleep 0.5
done
result "no fd leak on the node (before $FD_BEFORE, after $FD_AFTER)" "$([ "$FD_AFTER" -le "$FD_BEFORE" ]; echo $?)" \
	"$(fd_list | diff "$KX_TMP/fd.before" - | tail -n 10)" \
	"$(for ino in $(fd_list | diff "$KX_TMP/fd.before" - | sed -n 's/.*socket:\[\([0-9]*\)\]/\1/p'); do
		grep -h " $ino " "/proc/$KX_NODE_PID/net/tcp" "/proc/$KX_NODE_PID/net/tcp6" || echo "socket $ino: not a TCP socket of the node's netns"
	done)"

stop_cluster
summary
