#!/bin/bash
# 31_footprint_peers.sh - memory of ours beside containerd + shim and sshd,
# all measured in this run; stripped binary sizes; client peak RSS.
#   C=20 (concurrent held sessions per side), HOLD=20 (seconds they sleep)
# Per session: C concurrent `kubexec exec demo -- sleep HOLD` (kubectl 1.33 if
# the CLI does not work) vs C concurrent `ssh bench 'exec sleep HOLD'` (new
# connections). Daemon side = the daemons' own processes (the node's
# per-session helpers and sshd's per-connection processes included, the
# `sleep`s excluded): growth over idle / C.
# Output: Markdown; $OUTDIR/footprint.tsv (what, rss_kib, pss_kib, uss_kib, note).
set -u
. "$(dirname "$0")/lib.sh"
C=${C:-20} HOLD=${HOLD:-20}
held=()
trap 'kill "${held[@]}" 2>/dev/null; ctd_down; sshd_down; bench_down' EXIT
bench_up
build_helpers
sshd_up
ctd_up
export KUBECONFIG=$T/api/admin.kubeconfig
if ours_cli; then CLIENT="$KUBEXEC"; CL="kubexec"; else CLIENT="$KC133 --cache-dir=$T/kcache-1.33"; CL="kubectl 1.33 (FALLBACK: no kubexec CLI)"; fi
SSHD_EXE=$(readlink "/proc/$SSHD_PID/exe")
tsv_new footprint.tsv what rss_kib pss_kib uss_kib note
echo "## footprint beside the peers ($(date -u +%FT%TZ), $(load_now))"
echo
echo "| binary | stripped size | target |"
echo "|---|---|---|"
mkdir -p "$T/strip"
for f in "$APISERVER" "$NODE" "$KUBEXEC"; do
	[ -x "$f" ] || continue
	strip -o "$T/strip/$(basename "$f")" "$f"
	s=$(stat -c %s "$T/strip/$(basename "$f")")
	tgt="≤ 2 MiB: $( [ "$s" -le 2097152 ] && echo '**met**' || echo '**missed**')"
	echo "| $(basename "$f") | $(awk -v s="$s" 'BEGIN{printf "%.0f KiB", s/1024}') | $tgt |"
	tsv footprint.tsv "stripped $(basename "$f")" "" "" "" "$s bytes"
done
echo "| (dynamic: $(ldd "$NODE" | awk '{print $1}' | grep -v -e vdso -e ld-linux | sed 's/\.so.*//' | tr '\n' ' '))| | |"

sleep 2
echo
echo "| process, idle (1 pod / 1 container) | RSS | PSS | USS | target |"
echo "|---|---|---|---|---|"
line() { # what RSS PSS USS [target text]
	echo "| $1 | $(awk -v k="$2" 'BEGIN{printf "%.1f MiB", k/1024}') | $(awk -v k="$3" 'BEGIN{printf "%.1f MiB", k/1024}') | $(awk -v k="$4" 'BEGIN{printf "%.1f MiB", k/1024}') | ${5:-} |"
	tsv footprint.tsv "$1" "$2" "$3" "$4" "${5:-}"
}
read -r ar ap au < <(mem_kib "$API_PID")
read -r nr np nu < <(mem_kib "$NODE_PID")
read -r dr dp du dn < <(tree_mem_exe "$NODE_PID" "$NODE")
read -r cr cp cu < <(mem_kib "$CTD_PID")
read -r hr hp hu < <(mem_kib "$SHIM_PID")
read -r sr sp su < <(mem_kib "$SSHD_PID")
line "kubexec-apiserver" "$ar" "$ap" "$au" "RSS ≤ 8 MiB: $( [ "$ar" -le 8192 ] && echo '**met**' || echo '**missed**')"
line "kubexec-node" "$nr" "$np" "$nu" "RSS ≤ 4 MiB: $( [ "$nr" -le 4096 ] && echo '**met**' || echo '**missed**')"
# What a TLS library alone costs a process on this machine: the node's RSS in
# libcrypto + libssl, and a process that only sets up one TLS server context
# with the node's certificate and key (bench/tlsfloor.c), on the distro's
# OpenSSL (the node's) and on its mbedTLS (the CLI's; no TLS 1.3 in Debian 12).
lr=$(awk '/^[0-9a-f]+-/{lib = ($6 ~ /\/lib(crypto|ssl)\.so/)} /^Rss:/ && lib {k += $2} END{print k + 0}' "/proc/$NODE_PID/smaps")
echo "| kubexec-node: of its RSS, in libcrypto + libssl | $(awk -v k="$lr" 'BEGIN{printf "%.1f MiB", k/1024}') | | | |"
tsv footprint.tsv "kubexec-node RSS in libcrypto + libssl" "$lr" "" "" ""
floor_line() { # helper label
	"$HELPERS/$1" "$T/node/pki/node.crt" "$T/node/pki/node.key" > "$T/tlsfloor.out" & FLOOR_PID=$!
	for _ in $(seq 100); do grep -q ready "$T/tlsfloor.out" 2>/dev/null && break; sleep 0.05; done
	grep -q ready "$T/tlsfloor.out" || die "$1 did not start"
	read -r fr fp fu < <(mem_kib "$FLOOR_PID")
	kill "$FLOOR_PID"; wait "$FLOOR_PID" 2>/dev/null
	line "$2" "$fr" "$fp" "$fu" "$( [ "$fr" -gt 4096 ] && echo 'above the node target of 4 MiB by itself')"
}
floor_line tlsfloor "floor: one OpenSSL TLS server context, nothing else (tlsfloor.c)"
floor_line tlsfloor-mbedtls "floor: one mbedTLS TLS server context, nothing else (tlsfloor.c -DMBEDTLS)"
line "kubexec-node + its per-pod helper ($dn processes, pod processes excluded)" "$dr" "$dp" "$du"
line "containerd 1.6 (CRI off)" "$cr" "$cp" "$cu"
line "containerd-shim-runc-v2 (per container)" "$hr" "$hp" "$hu"
line "containerd + shim" "$((cr + hr))" "$((cp + hp))" "$((cu + hu))"
line "sshd listener" "$sr" "$sp" "$su"

echo
echo "| client, peak RSS (GNU time %M, exec demo -- true) | peak RSS |"
echo "|---|---|"
for c in "$KUBEXEC" "$KC133 --cache-dir=$T/kcache-1.33"; do
	[ -x "${c%% *}" ] || continue
	m=$(/usr/bin/time -f %M $c exec demo -- true 2>&1 >/dev/null | tail -1)
	echo "| $(basename "${c%% *}") | $(awk -v k="$m" 'BEGIN{printf "%.1f MiB", k/1024}') |"
	tsv footprint.tsv "client peak $(basename "${c%% *}")" "$m" "" "" "GNU time %M"
done
m=$(/usr/bin/time -f %M ssh -F "$SSHCFG" bench true 2>&1 >/dev/null | tail -1)
echo "| ssh (new connection) | $(awk -v k="$m" 'BEGIN{printf "%.1f MiB", k/1024}') |"
tsv footprint.tsv "client peak ssh" "$m" "" "" "GNU time %M"

# Per session, ours then sshd (one side at a time so neither skews the other).
# (a process may end between the listing and the read: the redirection's error is silenced too)
count_cmd() { descendants "$1" | while read -r p; do { tr '\0' ' ' < "/proc/$p/cmdline"; } 2>/dev/null; echo; done | grep -c "^sleep $HOLD $"; }
wait_quiet
read -r a0r a0p a0u < <(mem_kib "$API_PID")
read -r n0r n0p n0u n0n < <(tree_mem_exe "$NODE_PID" "$NODE")
for i in $(seq "$C"); do $CLIENT exec demo -- sleep "$HOLD" >/dev/null 2>&1 & held+=($!); done
for i in $(seq 300); do [ "$(count_cmd "$NODE_PID")" -ge "$C" ] && break; sleep 0.1; done
n=$(count_cmd "$NODE_PID"); sleep 1
read -r a1r a1p a1u < <(mem_kib "$API_PID")
read -r n1r n1p n1u n1n < <(tree_mem_exe "$NODE_PID" "$NODE")
wait "${held[@]}"; held=()
wait_quiet
s0=$(tree_mem_exe "$SSHD_PID" "$SSHD_EXE"); read -r s0r s0p s0u s0n <<< "$s0"
for i in $(seq "$C"); do ssh -F "$SSHCFG" bench "exec sleep $HOLD" >/dev/null 2>&1 & held+=($!); done
for i in $(seq 300); do [ "$(count_cmd "$SSHD_PID")" -ge "$C" ] && break; sleep 0.1; done
m=$(count_cmd "$SSHD_PID"); sleep 1
read -r s1r s1p s1u s1n < <(tree_mem_exe "$SSHD_PID" "$SSHD_EXE")
read -r t1r t1p t1u t1n < <(tree_mem "$SSHD_PID")
read -r t0r t0p t0u t0n <<< "$s0"
wait "${held[@]}"; held=()
per() { echo "$1 $2 $3" | awk '{ printf "%.0f", ($2-$1)/($3 ? $3 : 1) }'; }
echo
echo "| per held session ($C concurrent, \`sleep $HOLD\`) | sessions up | RSS growth/session | PSS/session | USS/session |"
echo "|---|---|---|---|---|"
prow() { echo "| $1 | $2 | $3 KiB | $4 KiB | $5 KiB |"; tsv footprint.tsv "per session: $1" "$3" "$4" "$5" "$2 sessions"; }
prow "ours: kubexec-apiserver ($CL)" "$n" "$(per "$a0r" "$a1r" "$n")" "$(per "$a0p" "$a1p" "$n")" "$(per "$a0u" "$a1u" "$n")"
prow "ours: kubexec-node + per-session helpers ($(per "$n0n" "$n1n" "$n") proc/session)" "$n" "$(per "$n0r" "$n1r" "$n")" "$(per "$n0p" "$n1p" "$n")" "$(per "$n0u" "$n1u" "$n")"
prow "ours: apiserver + node (daemon side)" "$n" "$(per "$((a0r + n0r))" "$((a1r + n1r))" "$n")" "$(per "$((a0p + n0p))" "$((a1p + n1p))" "$n")" "$(per "$((a0u + n0u))" "$((a1u + n1u))" "$n")"
prow "sshd, per connection (sshd processes only)" "$m" "$(per "$s0r" "$s1r" "$m")" "$(per "$s0p" "$s1p" "$m")" "$(per "$s0u" "$s1u" "$m")"
prow "sshd, per connection incl. the remote sleep" "$m" "$(per "$t0r" "$t1r" "$m")" "$(per "$t0p" "$t1p" "$m")" "$(per "$t0u" "$t1u" "$m")"
echo
echo "(TSV in $OUTDIR/footprint.tsv; the 1000-session figure is 50_concurrency.sh)"
