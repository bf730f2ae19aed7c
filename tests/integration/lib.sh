# shellcheck shell=bash
# lib.sh — shared helpers for the kubexec integration tests and scripts/demo.sh.
# Source it from bash; it defines functions and variables only (no side effects).
#
#   start_cluster   temp dir under /tmp, busybox image, kubexec-apiserver and one
#                   kubexec-node on loopback (port 0 = free port), a static pod `demo`;
#                   waits (bounded) until the pod is Running; exports KUBECONFIG.
#   stop_cluster    SIGTERM both daemons, bounded wait, then checks that nothing is
#                   left behind (processes of the node or its pods, mounts), and
#                   removes the temp dir (kept with KX_KEEP=1).
#   ok / fail       TAP-like result lines "ok N - name" / "not ok N - name" + reason,
#                   counted in KX_PASSED / KX_FAILED.
#   use_kubectl / kc / kcr
#                   run one kubectl version with its own HOME and --cache-dir (kubectl
#                   caches discovery per host:port; versions ask for different
#                   discovery formats, so they must not share a cache), always under
#                   `timeout`. The label "kubexec" (kubectl-versions.sh) is our own
#                   CLI, run by the same checks; KX_IS_KUBEXEC=1 while it is current.
#   kx_set_ref / kq / kqr
#                   a real kubectl for the tests' own queries (-o jsonpath, get --raw
#                   /metrics) that are no client's acceptance check and that kubexec
#                   does not implement: kq is kc for a kubectl, the reference kubectl
#                   when the current client is kubexec.
#
# Environment: KUBEXEC_BUILD (build dir, default "build", relative to the repo root),
# KX_KEEP=1 (keep the temp dir and logs), KX_START_TIMEOUT (s, default 30),
# KX_STOP_TIMEOUT (s, default 20), KX_KC_TIMEOUT (s per kubectl call, default 60),
# KX_TMP_PREFIX (temp dir name under /tmp, default kubexec-it).

KX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KX_BUILD=${KUBEXEC_BUILD:-build}
case $KX_BUILD in
/*) ;;
*) KX_BUILD=$KX_ROOT/$KX_BUILD ;;
esac
KX_APISERVER_BIN=$KX_BUILD/src/apiserver/kubexec-apiserver
KX_NODE_BIN=$KX_BUILD/src/node/kubexec-node

KX_START_TIMEOUT=${KX_START_TIMEOUT:-30}
KX_STOP_TIMEOUT=${KX_STOP_TIMEOUT:-20}
KX_KC_TIMEOUT=${KX_KC_TIMEOUT:-60}

# The demo pod's main command. It traps TERM because, as PID 1 of its PID namespace,
# a process without a handler never dies of SIGTERM; this keeps shutdown quick.
KX_DEMO_CMD=(sh -c "trap 'exit 0' TERM; while :; do sleep 1; done")

KX_TMP=
KX_APISERVER_PID=
KX_NODE_PID=
KX_SERVER_URL=
KX_MARKER=
KX_NODE_NAME=${KX_NODE_NAME:-kubexec-it}
KX_TAP=${KX_TAP:-1}        # 0: stop_cluster reports with kx_log instead of ok/fail

KX_TESTNO=0
KX_PASSED=0
KX_FAILED=0

# ---------------------------------------------------------------- reporting

kx_log() { printf '# %s\n' "$*" >&2; }

ok() {
	KX_TESTNO=$((KX_TESTNO + 1))
	KX_PASSED=$((KX_PASSED + 1))
	printf 'ok %d - %s\n' "$KX_TESTNO" "$1"
}

# fail NAME REASON...: each reason argument becomes one "#   " line under the result.
fail() {
	local name=$1 line
	shift
	KX_TESTNO=$((KX_TESTNO + 1))
	KX_FAILED=$((KX_FAILED + 1))
	printf 'not ok %d - %s\n' "$KX_TESTNO" "$name"
	for line in "$@"; do
		printf '%s\n' "$line" | head -n 20 | sed 's/^/#   /'
	done
}

# result NAME STATUS REASON...: ok when STATUS is 0, else fail with the reasons.
result() {
	local name=$1 st=$2
	shift 2
	if [ "$st" -eq 0 ]; then ok "$name"; else fail "$name" "$@"; fi
}

# Reports are ok/fail lines in tests, plain log lines in the demo.
kx_report() { # NAME STATUS REASON...
	if [ "$KX_TAP" = 1 ]; then
		result "$@"
	elif [ "$2" -ne 0 ]; then
		local name=$1
		shift 2
		KX_FAILED=$((KX_FAILED + 1))
		kx_log "FAILED: $name"
		local l
		for l in "$@"; do kx_log "  $l"; done
	fi
}

# ---------------------------------------------------------------- processes

# Start time (clock ticks since boot) of PID, empty if gone: with the pid it names
# one process for good, so a reused pid is not mistaken for a leftover.
kx_starttime() {
	local s f
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	# Fields after "pid (comm) ": state is [0], starttime (field 22) is [19].
	read -r -a f <<<"${s##*) }"
	echo "${f[19]}"
}

# Process state letter of PID (R, S, Z, ...), empty if gone.
kx_state() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	s=${s##*) }
	echo "${s%% *}"
}

# All descendants of PID (children, grandchildren, ...), one "pid stat" per line.
# Processes in child PID namespaces show up with their host pids.
kx_descendants() {
	ps -e -o pid=,ppid=,stat= | awk -v root="$1" '
		{ pid[NR] = $1; ppid[NR] = $2; st[NR] = $3 }
		END {
			want[root] = 1
			do {
				more = 0
				for (i = 1; i <= NR; i++)
					if ((ppid[i] in want) && !(pid[i] in want)) { want[pid[i]] = 1; more = 1 }
			} while (more)
			for (i = 1; i <= NR; i++)
				if (pid[i] != root && (pid[i] in want)) print pid[i], st[i]
		}'
}

# kx_wait_exit PID SECONDS: 0 once PID has exited (gone, or a zombie waiting for us).
kx_wait_exit() {
	local pid=$1 end=$((SECONDS + $2)) st
	while :; do
		st=$(kx_state "$pid")
		[ -z "$st" ] || [ "$st" = Z ] && return 0
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 0.1
	done
}

# kx_fd_count PID: number of open fds.
kx_fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# ---------------------------------------------------------------- kubectl

KX_KVER=   # for callers: the version label of the current kubectl
export KX_KVER
KX_KBIN=
KX_KHOME=

# use_kubectl VERSION PATH: later kc/kcr calls run this kubectl, with a HOME and a
# discovery cache of its own (created on first use, kept for this cluster).
KX_IS_KUBEXEC=0
use_kubectl() {
	KX_KVER=$1
	KX_KBIN=$2
	KX_KHOME=$KX_TMP/home-$1
	case $1 in
	kubexec | kubexec-*) KX_IS_KUBEXEC=1 ;;
	*) KX_IS_KUBEXEC=0 ;;
	esac
	mkdir -p "$KX_KHOME/.kube/cache"
}

# kx_set_ref VERSION_LINES: the reference kubectl is the last kubectl (not kubexec)
# of kubectl-versions.sh's "LABEL PATH" lines, else the kubectl on PATH.
KX_REF_KBIN=kubectl
kx_set_ref() {
	local l
	KX_REF_KBIN=kubectl
	while read -r l; do
		case ${l%% *} in kubexec | kubexec-* | '') ;; *) KX_REF_KBIN=${l#* } ;; esac
	done <<<"$1"
}

# kq ARGS...: like kc, but a kubexec client is replaced by the reference kubectl
# (its own HOME and cache), for queries that are not what the test checks.
kq() {
	if [ "$KX_IS_KUBEXEC" != 1 ]; then
		kc "$@"
		return
	fi
	mkdir -p "$KX_TMP/home-ref/.kube/cache"
	timeout --foreground -k 5 "${KX_KC_TIMEOUT_ONCE:-$KX_KC_TIMEOUT}" env HOME="$KX_TMP/home-ref" \
		KUBECONFIG="$KUBECONFIG" "$KX_REF_KBIN" --cache-dir "$KX_TMP/home-ref/.kube/cache" "$@"
}

# kc ARGS...: run the current kubectl under `timeout` (KX_KC_TIMEOUT, or
# KX_KC_TIMEOUT_ONCE for one call). stdin/stdout/stderr are the caller's.
kc() {
	local t=${KX_KC_TIMEOUT_ONCE:-$KX_KC_TIMEOUT}
	# --foreground: kubectl stays in our process group and gets a terminal's Ctrl-C.
	timeout --foreground -k 5 "$t" env HOME="$KX_KHOME" KUBECONFIG="$KUBECONFIG" \
		"$KX_KBIN" --cache-dir "$KX_KHOME/.kube/cache" "$@"
}

# kcr ARGS...: kc with stdout in $KX_O, stderr in $KX_E (files), exit status in
# KX_RC. stdin is the caller's: redirect it (</dev/null) unless the test feeds it.
KX_RC=0
kcr() {
	KX_O=$KX_TMP/kc.out
	KX_E=$KX_TMP/kc.err
	kc "$@" >"$KX_O" 2>"$KX_E"
	KX_RC=$?
}

# kqr ARGS...: kq with the outputs as kcr keeps them.
kqr() {
	KX_O=$KX_TMP/kc.out
	KX_E=$KX_TMP/kc.err
	kq "$@" >"$KX_O" 2>"$KX_E"
	KX_RC=$?
}

# kx_why: the usual failure detail for the last kcr.
kx_why() {
	local t=""
	[ "$KX_RC" = 124 ] || [ "$KX_RC" = 137 ] && t=" (timed out)"
	printf 'exit %s%s\nstdout: %s\nstderr: %s\n' "$KX_RC" "$t" \
		"$(head -c 400 "$KX_O" | tr '\0' '@' | cat -v)" "$(head -c 600 "$KX_E" | cat -v)"
}

# ---------------------------------------------------------------- cluster

# kx_write_pod FILE NAME CMD...: a one-container busybox pod NAME in default
# running CMD.
kx_write_pod() {
	local f=$1 name=$2 q="" a
	shift 2
	# JSON-quote the command (it may hold quotes and ';').
	for a in "$@"; do
		a=${a//\\/\\\\}
		a=${a//\"/\\\"}
		q="$q${q:+, }\"$a\""
	done
	cat >"$f" <<-EOF
		apiVersion: v1
		kind: Pod
		metadata:
		  name: $name
		  namespace: default
		spec:
		  terminationGracePeriodSeconds: 5
		  containers:
		  - name: main
		    image: busybox
		    command: [$q]
	EOF
}

kx_write_manifests() { # DIR
	kx_write_pod "$1/demo.yaml" demo "${KX_DEMO_CMD[@]}"
}

kx_dump_logs() {
	local f
	for f in "$KX_TMP/apiserver.log" "$KX_TMP/node.log"; do
		[ -f "$f" ] || continue
		kx_log "---- last lines of $f"
		tail -n 30 "$f" | sed 's/^/#   /' >&2
	done
}

# start_cluster [KUBECTL]: KUBECTL (default: kubectl on PATH) is used to wait for the
# pod. Returns 0 when `demo` is Running; on failure prints why (and the daemons' log
# tails) on stderr and returns 1 — the caller still runs stop_cluster.
start_cluster() {
	local waitkc=${1:-kubectl} end line phase
	local -a missing=()
	[ -x "$KX_APISERVER_BIN" ] || missing+=("$KX_APISERVER_BIN")
	[ -x "$KX_NODE_BIN" ] || missing+=("$KX_NODE_BIN")
	if [ ${#missing[@]} -gt 0 ]; then
		kx_log "not built: ${missing[*]} (run make all, or set KUBEXEC_BUILD)"
		return 1
	fi
	KX_TMP=$(mktemp -d "/tmp/${KX_TMP_PREFIX:-kubexec-it}.XXXXXX") || return 1
	chmod 0755 "$KX_TMP"
	mkdir -p "$KX_TMP/images" "$KX_TMP/manifests" "$KX_TMP/apiserver" "$KX_TMP/node"
	"$KX_ROOT/tests/integration/mkimage.sh" "$KX_TMP/images" || return 1
	# A marker only this image has: proves the container's / is the image dir.
	KX_MARKER=kx-$RANDOM$RANDOM
	echo "$KX_MARKER" >"$KX_TMP/images/busybox/kubexec-marker"
	kx_write_manifests "$KX_TMP/manifests"
	# KX_START_HOOK: a function a test sets to add manifests or image files before the
	# node starts (so its pods start at once, not at the next 5 s rescan).
	if [ -n "${KX_START_HOOK:-}" ]; then "$KX_START_HOOK" || return 1; fi

	# setsid: own session and process group, so a terminal's Ctrl-C reaches only the
	# script, which then stops the daemons in order and checks how they exit.
	# (setsid does not fork here — a background job is no group leader — so $! is
	# the daemon's pid.)
	# shellcheck disable=SC2086 # KX_APISERVER_ARGS / KX_NODE_ARGS: extra flags, word-split
	setsid "$KX_APISERVER_BIN" --data-dir "$KX_TMP/apiserver" --listen 127.0.0.1:0 ${KX_APISERVER_ARGS:-} \
		</dev/null >"$KX_TMP/apiserver.log" 2>&1 &
	KX_APISERVER_PID=$!
	end=$((SECONDS + KX_START_TIMEOUT))
	KX_SERVER_URL=
	while [ -z "$KX_SERVER_URL" ]; do
		line=$(grep -m1 -o 'kubexec-apiserver: serving on https://[^ ]*' "$KX_TMP/apiserver.log" 2>/dev/null)
		KX_SERVER_URL=${line#kubexec-apiserver: serving on }
		[ -n "$KX_SERVER_URL" ] && [ -s "$KX_TMP/apiserver/admin.kubeconfig" ] &&
			[ -s "$KX_TMP/apiserver/node-token" ] && break
		KX_SERVER_URL=
		if [ "$(kx_state "$KX_APISERVER_PID")" = Z ] || [ -z "$(kx_state "$KX_APISERVER_PID")" ]; then
			kx_log "kubexec-apiserver exited during start"
			kx_dump_logs
			return 1
		fi
		if [ "$SECONDS" -ge "$end" ]; then
			kx_log "kubexec-apiserver did not report 'serving on' with admin.kubeconfig and node-token within ${KX_START_TIMEOUT}s"
			kx_dump_logs
			return 1
		fi
		sleep 0.1
	done
	export KUBECONFIG=$KX_TMP/apiserver/admin.kubeconfig

	setsid "$KX_NODE_BIN" --server "$KX_SERVER_URL" --token-file "$KX_TMP/apiserver/node-token" \
		--data-dir "$KX_TMP/node" --manifest-dir "$KX_TMP/manifests" \
		--image-dir "$KX_TMP/images" --node-name "$KX_NODE_NAME" --listen 127.0.0.1:0 ${KX_NODE_ARGS:-} \
		</dev/null >"$KX_TMP/node.log" 2>&1 &
	KX_NODE_PID=$!

	# The pod is Running once the node has started it and reported its status.
	mkdir -p "$KX_TMP/home-wait/.kube/cache"
	phase=
	while [ "$phase" != Running ]; do
		phase=$(timeout -k 2 10 env HOME="$KX_TMP/home-wait" "$waitkc" \
			--cache-dir "$KX_TMP/home-wait/.kube/cache" --request-timeout 5s \
			get pod demo -o 'jsonpath={.status.phase}' </dev/null 2>>"$KX_TMP/wait.err")
		[ "$phase" = Running ] && break
		if [ "$(kx_state "$KX_NODE_PID")" = Z ] || [ -z "$(kx_state "$KX_NODE_PID")" ]; then
			kx_log "kubexec-node exited during start"
			kx_dump_logs
			return 1
		fi
		if [ "$SECONDS" -ge "$end" ]; then
			kx_log "pod demo not Running within ${KX_START_TIMEOUT}s (last phase '${phase}'; last kubectl error: $(tail -n1 "$KX_TMP/wait.err" 2>/dev/null))"
			kx_dump_logs
			return 1
		fi
		sleep 0.3
	done
	return 0
}

# kx_stop_one NAME PID: SIGTERM, bounded wait, report "NAME exits 0 on SIGTERM".
kx_stop_one() {
	local name=$1 pid=$2 rc
	[ -n "$pid" ] || return 0
	if [ -z "$(kx_state "$pid")" ]; then
		kx_report "$name exits 0 on SIGTERM" 1 "it was not running any more"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null
	if kx_wait_exit "$pid" "$KX_STOP_TIMEOUT"; then
		wait "$pid" 2>/dev/null
		rc=$?
		kx_report "$name exits 0 on SIGTERM" "$rc" "exit status $rc"
	else
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		kx_report "$name exits 0 on SIGTERM" 1 "still running ${KX_STOP_TIMEOUT}s after SIGTERM; killed"
	fi
}

# stop_cluster: stops what start_cluster started (any part of it) and checks that
# nothing is left behind. Safe to call twice and after a failed start_cluster.
stop_cluster() {
	local snap="" p st left="" mnts cg="" line
	[ -n "$KX_TMP" ] || return 0
	# Everything the node runs (pods, execs, helpers) is its descendant now; after
	# the node exits none of these may survive, wherever they were reparented.
	if [ -n "$KX_NODE_PID" ]; then
		while read -r p _; do
			[ -n "$p" ] && snap="$snap $p:$(kx_starttime "$p")"
			# The agent's cgroup directory (cgroup v2): kubexec/<node>-<hash>.
			line=$(grep -m1 '^0::/kubexec/' "/proc/$p/cgroup" 2>/dev/null)
			[ -z "$cg" ] && [ -n "$line" ] && cg=$(echo "${line#0::}" | cut -d/ -f1-3)
		done < <(kx_descendants "$KX_NODE_PID")
	fi
	kx_stop_one kubexec-node "$KX_NODE_PID"
	kx_stop_one kubexec-apiserver "$KX_APISERVER_PID"
	KX_NODE_PID=
	KX_APISERVER_PID=

	# Leftovers: the snapshot above, plus anything naming our temp dir.
	sleep 0.2
	for p in $snap; do
		st=${p#*:}
		p=${p%%:*}
		if [ -n "$st" ] && [ "$(kx_starttime "$p")" = "$st" ] && [ "$(kx_state "$p")" != Z ]; then
			left="$left$p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"$'\n'
			kill -KILL "$p" 2>/dev/null
		fi
	done
	for p in $(pgrep -f -- "$KX_TMP/"); do
		[ "$p" = "$$" ] || [ "$p" = "$BASHPID" ] && continue
		left="$left$p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"$'\n'
		kill -KILL "$p" 2>/dev/null
	done
	kx_report "no processes left after the node stopped" "$([ -z "$left" ]; echo $?)" "left: ${left%$'\n'}"

	# The node must not leave mounts behind in the host's namespace.
	mnts=$(awk -v t="$KX_TMP/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo)
	kx_report "no mounts left after the node stopped" "$([ -z "$mnts" ]; echo $?)" "mounts: $mnts"
	# Pods ran in a cgroup of this agent's own (two agents on one host may both
	# run default/demo), and it is gone with the node.
	if [ -n "$cg" ]; then
		kx_report "the pods' cgroups were the agent's own ($cg) and went with the node" \
			"$(echo "$cg" | grep -qxE "/kubexec/$KX_NODE_NAME-[0-9a-f]{8}" &&
				[ ! -e "/sys/fs/cgroup$cg" ] && [ ! -e "/sys/fs/cgroup/unified$cg" ]
				echo $?)" "left: $(ls -d "/sys/fs/cgroup$cg" "/sys/fs/cgroup/unified$cg" 2>/dev/null)"
	fi
	for p in $(printf '%s\n' "$mnts" | sort -r); do
		umount -l "$p" 2>/dev/null
	done

	if [ "${KX_KEEP:-0}" = 1 ]; then
		kx_log "kept $KX_TMP"
	else
		# --one-file-system: never descend into something still mounted in there.
		rm -rf --one-file-system "$KX_TMP"
	fi
	KX_TMP=
}
