#!/bin/bash
# run.sh — run the integration tests against already built binaries.
#
# Builds nothing: point KUBEXEC_BUILD at a build dir (default "build", relative to the
# repo root; `make all` makes it). Needs root, busybox-static, python3, and apt access
# once to fetch kubectl 1.20 (kubectl-versions.sh). Prints the TAP-like lines of every
# check, then exactly "N passed, N failed" as the last line; exits 1 on any failure.
#
# KX_TOTAL_TIMEOUT (s, default 1800) bounds the whole run.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${KUBEXEC_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
export KUBEXEC_BUILD=$BUILD

passed=0
failed=0
log=$(mktemp /tmp/kubexec-it-run.XXXXXX)
trap 'rm -f "$log"' EXIT

# pre: these are failures too (not skips): a run that cannot test must not look green.
pre_fail() { echo "not ok - $1"; failed=$((failed + 1)); }
[ "$(id -u)" = 0 ] || pre_fail "run as root (the node needs namespaces and mounts)"
for b in "$BUILD/src/apiserver/kubexec-apiserver" "$BUILD/src/node/kubexec-node"; do
	[ -x "$b" ] || pre_fail "$b is built (run make all)"
done
for c in python3 timeout pgrep ps sha256sum; do
	command -v "$c" >/dev/null || pre_fail "$c is installed"
done
if [ "$failed" -gt 0 ]; then
	echo "0 passed, $failed failed"
	exit 1
fi

# The test prints its own "N passed, N failed"; we recount from the result lines so a
# test script that dies halfway still yields an honest total.
# --foreground: stay in our process group, so Ctrl-C reaches test_exec.sh, which then
# stops the cluster and checks it (its EXIT trap). -k 60 leaves that cleanup time
# before a SIGKILL (timeout also forwards Ctrl-C to it as SIGTERM).
# The readers ignore INT/TERM so they outlive a Ctrl-C and still show the cleanup's
# results (and test_exec.sh does not die of SIGPIPE halfway through it).
timeout --foreground -k 60 "${KX_TOTAL_TIMEOUT:-1800}" "$HERE/test_exec.sh" 2>&1 |
	(
		trap '' INT TERM
		grep --line-buffered -v -E '^[0-9]+ passed, [0-9]+ failed$' | tee "$log"
	)
rc=${PIPESTATUS[0]}
# The other streaming subresources (transport, attach, logs, port-forward, cp,
# client-node), counted the same way.
timeout --foreground -k 60 "${KX_TOTAL_TIMEOUT:-1800}" "$HERE/test_stream.sh" 2>&1 |
	(
		trap '' INT TERM
		grep --line-buffered -v -E '^[0-9]+ passed, [0-9]+ failed$' | tee -a "$log"
	)
rc_stream=${PIPESTATUS[0]}

# attach in depth: several attachers, detaching, stdinOnce, a tty shell that
# survives its client, slow attachers.
timeout --foreground -k 60 "${KX_TOTAL_TIMEOUT:-1800}" "$HERE/test_attach.sh" 2>&1 |
	(
		trap '' INT TERM
		grep --line-buffered -v -E '^[0-9]+ passed, [0-9]+ failed$' | tee -a "$log"
	)
rc_attach=${PIPESTATUS[0]}

# port-forward in depth: every transport (SPDY, the WebSocket tunnel, forced
# SPDY), hostNetwork pods, and a raw SPDY probe for the stream rules.
timeout --foreground -k 60 "${KX_TOTAL_TIMEOUT:-1800}" "$HERE/test_portforward.sh" 2>&1 |
	(
		trap '' INT TERM
		grep --line-buffered -v -E '^[0-9]+ passed, [0-9]+ failed$' | tee -a "$log"
	)
rc_pf=${PIPESTATUS[0]}

# kubexec get / version / completion against kubectl 1.33's output, and the
# merged two-file KUBECONFIG (issue 4, acceptance 2).
timeout --foreground -k 60 "${KX_TOTAL_TIMEOUT:-1800}" "$HERE/test_cli_get.sh" 2>&1 |
	(
		trap '' INT TERM
		grep --line-buffered -v -E '^[0-9]+ passed, [0-9]+ failed$' | tee -a "$log"
	)
rc_get=${PIPESTATUS[0]}

# The runtime and pod-manager smoke tests (real namespaces, mounts, cgroups,
# restarts, bad manifests) and `make demo`'s script, each one check.
extra() {
	local name=$1 out
	shift
	if out=$(timeout -k 10 300 "$@" 2>&1); then
		echo "ok - $name"
	else
		echo "not ok - $name"
		printf '%s\n' "$out" | tail -25 | sed 's/^/#   /'
	fi
}
{
	extra "runtime smoke test (sandbox, container, executor)" "$HERE/rt_smoke.sh" "$BUILD"
	extra "pod manager smoke test (manifests, restarts, logs, status)" "$BUILD/src/node/pm_smoke"
	extra "DEMO_EXIT=1 scripts/demo.sh" env DEMO_EXIT=1 KUBEXEC_BUILD="$BUILD" "$ROOT/scripts/demo.sh"
} | tee -a "$log"

passed=$(grep -c '^ok ' "$log")
failed=$(grep -c '^not ok ' "$log")
if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
	echo "not ok - test_exec.sh exited with status $rc without reporting a failure"
	failed=1
fi
if [ "$rc_stream" != 0 ] && [ "$failed" = 0 ]; then
	echo "not ok - test_stream.sh exited with status $rc_stream without reporting a failure"
	failed=1
fi
if [ "$rc_attach" != 0 ] && [ "$failed" = 0 ]; then
	echo "not ok - test_attach.sh exited with status $rc_attach without reporting a failure"
	failed=1
fi
if [ "$rc_pf" != 0 ] && [ "$failed" = 0 ]; then
	echo "not ok - test_portforward.sh exited with status $rc_pf without reporting a failure"
	failed=1
fi
if [ "$rc_get" != 0 ] && [ "$failed" = 0 ]; then
	echo "not ok - test_cli_get.sh exited with status $rc_get without reporting a failure"
	failed=1
fi
if [ "$passed" = 0 ] && [ "$failed" = 0 ]; then
	echo "not ok - test_exec.sh reported no results"
	failed=1
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
