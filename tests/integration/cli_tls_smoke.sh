#!/bin/bash
# cli_tls_smoke.sh CLI — the kubexec CLI built with its other TLS backend
# (meson -Dcli_tls=openssl; `make check` builds it in the ASan build) against
# a cluster of the release daemons (KUBEXEC_BUILD): exec with the exit code,
# 1 MiB through exec -i both ways, cp to and from the pod, and the TLS session
# cache written by the first command (with OpenSSL the TLS 1.3 ticket comes
# after the handshake, so this proves the store before close). The integration
# suites run the default (mbedTLS) CLI through every scenario; this keeps the
# other build honest. Exit 0 pass, 1 fail (reasons on stdout).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
CLI=${1:?usage: cli_tls_smoke.sh PATH-TO-KUBEXEC}
KX_TAP=0
KX_TMP_PREFIX=kubexec-clitls
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"

bad=0
no() { echo "FAIL: $*"; bad=1; }
trap 'stop_cluster >/dev/null 2>&1' EXIT
[ -x "$CLI" ] || { echo "FAIL: $CLI is not built"; exit 1; }
start_cluster || { echo "FAIL: cluster did not start"; exit 1; }

export HOME=$KX_TMP/home-clitls XDG_CACHE_HOME=
mkdir -p "$HOME"
k() { timeout -k 5 60 "$CLI" "$@"; }

out=$(k exec demo -- sh -c 'echo hello; echo oops >&2; exit 7' 2>"$KX_TMP/e")
rc=$?
[ "$rc" = 7 ] && [ "$out" = hello ] && grep -qx oops "$KX_TMP/e" &&
	grep -q 'command terminated with exit code 7' "$KX_TMP/e" ||
	no "exec: rc $rc, out '$out', err '$(head -c 300 "$KX_TMP/e")'"
ls "$HOME"/.cache/kubexec/tls/*.tls >/dev/null 2>&1 ||
	no "no session in $HOME/.cache/kubexec/tls after the first command"

head -c 1048576 /dev/urandom >"$KX_TMP/blob"
want=$(sha256sum <"$KX_TMP/blob")
got=$(k exec -i demo -- cat <"$KX_TMP/blob" | sha256sum)
[ "$got" = "$want" ] || no "exec -i: 1 MiB through cat came back as $got"

k cp "$KX_TMP/blob" demo:/tmp/blob 2>"$KX_TMP/e" || no "cp to the pod: $(head -c 300 "$KX_TMP/e")"
k cp demo:/tmp/blob "$KX_TMP/blob.back" 2>"$KX_TMP/e" || no "cp from the pod: $(head -c 300 "$KX_TMP/e")"
[ "$(sha256sum <"$KX_TMP/blob.back" 2>/dev/null)" = "$want" ] || no "cp round trip changed the bytes"

[ "$bad" = 0 ] && echo "exec, exec -i (1 MiB), cp both ways and the session cache work with $CLI"
exit "$bad"
