#!/bin/bash
# 40_startup.sh - time from starting the daemons to the first successful exec.
#   R=5 (repetitions)
# Ours: start kubexec-apiserver, wait for its kubeconfig, start kubexec-node
# (it joins, starts the demo pod), then retry `kubexec exec demo -- true`
# (kubectl 1.33 if the CLI does not work) until it succeeds; the image is
# built before the clock starts. Beside it: sshd start -> first `ssh bench true`
# (a new connection, ~0.2 s of it is ssh's own handshake, also counted).
# Output: Markdown; $OUTDIR/startup.tsv.
set -u
. "$(dirname "$0")/lib.sh"
R=${R:-5}
trap 'sshd_down; bench_down' EXIT
bench_up # once: builds the image, checks that everything works
export KUBECONFIG=$T/api/admin.kubeconfig
if ours_cli; then CLIENT=("$KUBEXEC"); CL=kubexec; else CLIENT=("$KC133" --cache-dir="$T/kcache-1.33"); CL="kubectl 1.33 (FALLBACK)"; fi
cp -a "$T/images" "$T.images"
tsv_new startup.tsv what run seconds apiserver_ready_s tries
echo "## start-up to first exec ($(date -u +%FT%TZ), R=$R, $(load_now))"
ours=() ssh=()
for r in $(seq "$R"); do
	bench_down
	rm -rf "$T" && mkdir -p "$T/manifests" && cp -a "$T.images" "$T/images"
	cat > "$T/manifests/demo.yaml" <<'Y'
apiVersion: v1
kind: Pod
metadata:
  name: demo
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "i=0; while true; do i=$((i+1)); echo line $i; sleep 1; done"]
Y
	wait_quiet
	t0=$(now)
	setsid "$APISERVER" --data-dir "$T/api" --listen 127.0.0.1:0 > "$T/api.log" 2>&1 < /dev/null &
	echo $! > "$T/api.pid"
	until [ -s "$T/api/admin.kubeconfig" ] && grep -q serving "$T/api.log"; do sleep 0.005; done
	ta=$(now)
	url=$(grep server: "$T/api/admin.kubeconfig" | awk '{print $2}')
	setsid "$NODE" --server "$url" --token-file "$T/api/node-token" --data-dir "$T/node" \
		--manifest-dir "$T/manifests" --image-dir "$T/images" --node-name n1 \
		--listen 127.0.0.1:0 > "$T/node.log" 2>&1 < /dev/null &
	echo $! > "$T/node.pid"
	tries=0
	until "${CLIENT[@]}" exec demo -- true >/dev/null 2>&1; do
		tries=$((tries + 1)); [ $tries -lt 3000 ] || die "no exec after 3000 tries"
		sleep 0.005
	done
	t1=$(now)
	s=$(echo "$t0 $t1" | awk '{printf "%.3f", $2-$1}')
	ours+=("$s")
	tsv startup.tsv "ours ($CL)" "$r" "$s" "$(echo "$t0 $ta" | awk '{printf "%.3f", $2-$1}')" "$tries"
done
bench_down
sshd_up >/dev/null # keys and config (not timed)
sshd_down
for r in $(seq "$R"); do
	wait_quiet
	t0=$(now)
	setsid unshare -m --propagation private sh -c '
		mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/sshd && mount --bind "$1/passwd" /etc/passwd &&
		exec /usr/sbin/sshd -D -e -f "$1/sshd_config"' sh "$SSHD" </dev/null >"$SSHD/sshd.log" 2>&1 &
	SSHD_PID=$!; echo "$SSHD_PID" > "$SSHD/sshd.pid"
	until ssh -F "$SSHCFG" -o ConnectTimeout=2 bench true 2>/dev/null; do sleep 0.005; done
	t1=$(now)
	sshd_down
	s=$(echo "$t0 $t1" | awk '{printf "%.3f", $2-$1}')
	ssh+=("$s")
	tsv startup.tsv "sshd" "$r" "$s" "" ""
done
echo
echo "| start → first successful exec | median [min..max] s | runs |"
echo "|---|---|---|"
echo "| ours: kubexec-apiserver + kubexec-node → \`$CL exec demo -- true\` | $(printf '%s\n' "${ours[@]}" | med_range %.3f) | $R |"
echo "| sshd → \`ssh bench true\` (new connection, incl. its ~0.2 s handshake) | $(printf '%s\n' "${ssh[@]}" | med_range %.3f) | $R |"
rm -rf "$T.images"
