#!/bin/bash
# demo.sh — what `make demo` runs after building: a one-node kubexec cluster on
# loopback with a busybox pod `demo`, two `kubectl exec` calls to show it works, then
# the cluster stays up for you to try kubectl yourself until Ctrl-C.
#
#   KUBEXEC_BUILD  build dir with the daemons (default "build")
#   DEMO_EXIT=1    stop right after the showcase; exit 0 only if both commands behaved
#
# Uses the `kubectl` on PATH. On this machine that is gcloud's dispatcher: it asks our
# /version (1.33) and runs kubectl.1.33. Needs root: the node makes namespaces.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export KUBEXEC_BUILD=${KUBEXEC_BUILD:-build}
export KX_TAP=0             # lib.sh: report shutdown problems as log lines, not TAP
export KX_TMP_PREFIX=kubexec-demo KX_NODE_NAME=kubexec-demo
# shellcheck source=tests/integration/lib.sh
. "$ROOT/tests/integration/lib.sh"

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
	echo "demo: run as root (kubexec-node creates namespaces and mounts)" >&2
	exit 1
fi
if ! command -v kubectl >/dev/null; then
	echo "demo: kubectl not found on PATH" >&2
	exit 1
fi

MAIN_PID=$BASHPID
cleanup() {
	local rc=$?
	# Only the main shell owns the cluster, never a subshell that inherited the trap.
	[ "$BASHPID" = "$MAIN_PID" ] || exit $rc
	# Ignore further Ctrl-Cs: an interrupted cleanup would leave the daemons running
	# (they have their own sessions). Stopping is bounded (KX_STOP_TIMEOUT per daemon).
	trap '' INT TERM
	trap - EXIT
	if [ -n "$KX_TMP" ]; then
		say "Stopping the node and the apiserver ..."
		stop_cluster
		if [ "$KX_FAILED" -gt 0 ]; then
			echo "demo: shutdown was not clean (see above)" >&2
			rc=1
		else
			echo "Stopped cleanly."
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "Starting kubexec-apiserver and kubexec-node on 127.0.0.1 with a busybox pod 'demo' ..."
if ! start_cluster kubectl; then
	echo "demo: the cluster did not come up (logs above)" >&2
	exit 1
fi
echo "apiserver: $KX_SERVER_URL (pid $KX_APISERVER_PID), node: $KX_NODE_NAME (pid $KX_NODE_PID)"
echo "state and logs: $KX_TMP"
timeout 30 kubectl get pods </dev/null

say "\$ kubectl exec demo -- uname -a"
out=$(timeout 60 kubectl exec demo -- uname -a </dev/null)
rc1=$?
printf '%s\n' "$out"
echo "exit code: $rc1"

say "\$ kubectl exec demo -- sh -c 'exit 3'; echo \"exit code: \$?\""
timeout 60 kubectl exec demo -- sh -c 'exit 3' </dev/null
rc2=$?
echo "exit code: $rc2"

good=0
[ "$rc1" = 0 ] && printf '%s' "$out" | grep -q '^Linux ' || good=1
[ "$rc2" = 3 ] || good=1
if [ "$good" != 0 ]; then
	echo "demo: the showcase did not behave (want exit 0 with a Linux uname, then exit code 3)" >&2
fi

if [ "${DEMO_EXIT:-0}" = 1 ]; then
	exit "$good"
fi

say "The cluster stays up until you press Ctrl-C. In another shell, try:"
cat <<EOT
  export KUBECONFIG=$KUBECONFIG
  kubectl get pods
  kubectl exec -it demo -- sh
EOT

trap 'exit 0' INT TERM
while :; do
	sleep 1 &
	wait $! 2>/dev/null
	for p in "$KX_APISERVER_PID" "$KX_NODE_PID"; do
		st=$(kx_state "$p")
		if [ -z "$st" ] || [ "$st" = Z ]; then
			echo "demo: pid $p exited; see $KX_TMP/*.log" >&2
			export KX_KEEP=1     # keep the logs for a look
			exit 1
		fi
	done
done
