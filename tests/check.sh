#!/bin/bash
# Runs every test suite and prints one closing line "N passed, N failed".
#   tests/check.sh ASAN_BUILD_DIR RELEASE_BUILD_DIR
# Unit tests and fuzz-corpus replay come from the sanitizer build; the
# integration tests drive the release binaries with the real kubectl.
set -u
cd "$(dirname "$0")/.."
asan=${1:-build-asan}
rel=${2:-build}
passed=0 failed=0

log=$(mktemp)
meson test -C "$asan" --print-errorlogs --no-rebuild 2>&1 | tee "$log"
ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$log" | tail -1)
bad=0
for k in Fail Unexpected\ Pass Timeout; do
    n=$(sed -n "s/^$k: *\([0-9]*\).*/\1/p" "$log" | tail -1)
    bad=$((bad + ${n:-0}))
done
if [ -z "$ok" ]; then
    echo "check: meson test printed no summary" >&2
    bad=$((bad + 1)); ok=0
fi
passed=$((passed + ok)); failed=$((failed + bad))
rm -f "$log"

log=$(mktemp)
KUBEXEC_BUILD="$rel" tests/integration/run.sh 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
if [ -n "$line" ]; then
    p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
    passed=$((passed + p)); failed=$((failed + f))
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && failed=$((failed + 1))
else
    echo "check: integration tests printed no summary (exit $rc)" >&2
    failed=$((failed + 1))
fi
rm -f "$log"

# The CLI as the sanitizer build makes it (Makefile: -Dcli_tls=openssl, the
# backend the release build does not use) against the release daemons.
tls=$(meson introspect "$asan" --buildoptions 2>/dev/null |
    python3 -c 'import json, sys; print(next((o["value"] for o in json.load(sys.stdin) if o["name"] == "cli_tls"), "?"))' 2>/dev/null)
name="kubexec CLI built with -Dcli_tls=${tls:-?} (ASan): exec, exec -i 1 MiB, cp both ways, session cache"
if out=$(KUBEXEC_BUILD="$rel" timeout -k 10 300 tests/integration/cli_tls_smoke.sh "$asan/src/cli/kubexec" 2>&1); then
    echo "ok - $name"
    passed=$((passed + 1))
else
    echo "not ok - $name"
    printf '%s\n' "$out" | tail -20 | sed 's/^/#   /'
    failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
