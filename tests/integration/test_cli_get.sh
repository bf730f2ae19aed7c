#!/bin/bash
# test_cli_get.sh — `kubexec get`, `kubexec version` and `kubexec completion` against
# kubectl 1.33, both run with the SAME kubeconfig against one real kubexec-apiserver +
# kubexec-node on loopback (issue 4: get's table columns, -o wide|json|yaml|name, -A,
# -l, errors; acceptance 2: a merged two-file KUBECONFIG with several contexts).
#
# Most checks want kubectl's stdout, stderr and exit code byte for byte. The one
# part of kubectl's output that is not deterministic is the AGE cell (the server
# formats it from its clock): AGE cells are replaced by "<age>" in both outputs
# before comparing, and a pair whose AGE cells changed width between the two runs
# (a second boundary: 9s -> 10s moves the columns) is run again, up to 3 times.
# -o json and -o yaml are also parsed (python3 json / yaml) and compared as objects.
#
# -l: kubexec sends labelSelector as kubectl does (and filters the answer again,
# a no-op against our API server, which filters lists by labelSelector): kubectl's
# and kubexec's answers are compared, and kubectl must not list a pod that does
# not match.
#
# Pods (lib.sh's KX_START_HOOK): demo (lib.sh), web in default (labels app=web,
# tier=front; containers a and b), odd in team (labels app=odd; annotations with
# every kind of string go-yaml quotes, folds or escapes).
#
# Prints TAP-like "ok N - ..." / "not ok N - ..." lines, then "N passed, N failed";
# exits 1 on any failure. Runtime: about 30 s. Needs root, busybox-static, python3
# (python3-yaml for the parsed YAML comparison; without it YAML is compared as bytes
# only, and the test says so).
# KUBEXEC_BUILD=build tests/integration/test_cli_get.sh   (KX_KEEP=1 keeps the logs)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

KX_TMP_PREFIX=${KX_TMP_PREFIX:-kubexec-itget}
T0=$SECONDS

summary() {
	echo "$KX_PASSED passed, $KX_FAILED failed"
	[ "$KX_FAILED" -eq 0 ]
}

MAIN_PID=$BASHPID
on_exit() {
	local rc=$?
	[ "$BASHPID" = "$MAIN_PID" ] || exit $rc
	trap '' INT TERM PIPE
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

# ---------------------------------------------------------------- pods

write_pods() {
	local m=$KX_TMP/manifests keep="trap 'exit 0' TERM; while :; do sleep 1; done"
	cat >"$m/web.yaml" <<-EOF
		apiVersion: v1
		kind: Pod
		metadata:
		  name: web
		  namespace: default
		  labels:
		    app: web
		    tier: front
		spec:
		  terminationGracePeriodSeconds: 5
		  containers:
		  - name: a
		    image: busybox
		    command: ["sh", "-c", "$keep"]
		  - name: b
		    image: busybox
		    command: ["sh", "-c", "$keep"]
	EOF
	cat >"$m/odd.yaml" <<-EOF
		apiVersion: v1
		kind: Pod
		metadata:
		  name: odd
		  namespace: team
		  labels:
		    app: odd
		  annotations:
		    "a10": "true"
		    "a2": "1"
		    "a_b": "1.5"
		    "aB": "0x1F"
		    "a.b": "08"
		    "A": "1:20"
		    "_x": "2026-01-01"
		    "1": "2026-13-01"
		    "01": "- x"
		    "10": ": x"
		    "2": "#x"
		    "k1": "a: b"
		    "k2": "multi\nline\n"
		    "k3": "trailing space "
		    "k4": " leading"
		    "k5": "ünïcödé €"
		    "k6": "<html>&amp;"
		    "k7": "tab\there"
		    "k8": "2026-01-01T10:00:00Z"
		    "k9": "2026-1-1 1:2:3.5"
		    "k10": "null"
		    "k11": "~"
		    "k12": "@x"
		    "k13": "%x"
		    "k14": "!x"
		    "k15": "*x"
		    "k16": "|x"
		    "k17": "'q'"
		    "k18": "\"q\""
		    "k19": "[x]"
		    "k20": "{x}"
		    "k21": "x,y"
		    "k22": "-"
		    "k23": ".5"
		    "k24": "+1"
		    "k25": "-.inf"
		    "k26": "1e3"
		    "k27": "1_000"
		    "k28": "0b101"
		    "k29": "y"
		    "k30": "on"
		    "k31": "2024-02-29"
		    "k32": "2026-02-29"
		    "k33": "multi\nline no trailing"
		    "k34": "  indented\nblock"
		    "k35": "12:30:45"
		    "k36": "x\u2028y"
		    "k37": "a long annotation value with many words that goes on and on well past the eighty column limit of the emitter"
		    "Ü": "umlaut key"
		spec:
		  terminationGracePeriodSeconds: 5
		  containers:
		  - name: main
		    image: busybox
		    command: ["sh", "-c", "$keep"]
	EOF
}

# ---------------------------------------------------------------- comparing

KRC=0
XRC=0
# run_pair: kubectl "${KA[@]}" and kubexec "${XA[@]}", back to back, same KUBECONFIG.
run_pair() {
	kc "${KA[@]}" >"$KX_TMP/k.out" 2>"$KX_TMP/k.err" </dev/null
	KRC=$?
	timeout -k 5 60 env KUBECONFIG="$KUBECONFIG" "$XBIN" "${XA[@]}" >"$KX_TMP/x.out" \
		2>"$KX_TMP/x.err" </dev/null
	XRC=$?
}

# AGE cells ("7s", "5m3s", "2d", ...) -> "<age>".
norm_age() {
	sed -E 's/(^| )[0-9]+[smhdy]([0-9]+[smhdy])?( |$)/\1<age>\3/g' "$1"
}

pair_same() {
	[ "$KRC" = "$XRC" ] &&
		cmp -s <(norm_age "$KX_TMP/k.out") <(norm_age "$KX_TMP/x.out") &&
		cmp -s <(norm_age "$KX_TMP/k.err") <(norm_age "$KX_TMP/x.err")
}

pair_why() {
	printf 'exit: kubectl %s, kubexec %s\n' "$KRC" "$XRC"
	diff <(norm_age "$KX_TMP/k.out") <(norm_age "$KX_TMP/x.out") | head -n 12 | sed 's/^/stdout /'
	diff <(norm_age "$KX_TMP/k.err") <(norm_age "$KX_TMP/x.err") | head -n 6 | sed 's/^/stderr /'
}

# check NAME: KA and XA give the same stdout, stderr and exit code (AGE normalised).
check() {
	local _
	for _ in 1 2 3; do
		run_pair
		if pair_same; then
			ok "$1"
			return 0
		fi
		sleep 0.5
	done
	fail "$1" "$(pair_why)"
	return 1
}

# same ARGS...: kubectl ARGS vs kubexec ARGS.
same() {
	KA=("$@")
	XA=("$@")
	check "get: kubexec $* = kubectl $*"
}

# parsed KIND (json|yaml) NAME: the last pair's stdouts are the same object.
parsed() {
	local st
	python3 - "$1" "$KX_TMP/k.out" "$KX_TMP/x.out" <<-'EOF' >"$KX_TMP/parsed.err" 2>&1
		import json, sys
		kind, a, b = sys.argv[1:]
		if kind == "json":
		    load = json.load
		else:
		    import yaml
		    # YAML 1.1 timestamps off: go-yaml leaves "2026-02-29" plain (not a date),
		    # PyYAML would try to make a date of it and fail.
		    class Loader(yaml.SafeLoader):
		        pass
		    Loader.yaml_implicit_resolvers = {
		        k: [r for r in v if r[0] != "tag:yaml.org,2002:timestamp"]
		        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
		    load = lambda f: yaml.load(f, Loader=Loader)
		with open(a) as fa, open(b) as fb:
		    oa, ob = load(fa), load(fb)
		if oa != ob:
		    print("objects differ")
		    sys.exit(1)
		if not oa:
		    print("empty document")
		    sys.exit(1)
	EOF
	st=$?
	result "$2" "$st" "$(cat "$KX_TMP/parsed.err")"
}

# ---------------------------------------------------------------- checks

t_tables() {
	same get pods
	same get pods -o wide
	same get pods -o name
	same get nodes
	same get nodes -o wide
	same get nodes -o name
	same get pods -A
	same get pods -A -o wide
	same get pods --all-namespaces --no-headers
	same get pods -A --show-labels
	same get pods -L app,tier
	same get pods,nodes
	same get pods,nodes -A
	same get nodes,pods -A
	same get pod/demo "node/$KX_NODE_NAME"
	same get pods demo web
	same get po demo -o wide
	same get namespaces
	same get ns default
	same get pods -n team
	same get pods -n team --show-kind
}

t_generic() {
	same get pod demo -o json
	parsed json "get: kubexec get pod demo -o json parses to kubectl's object"
	same get pods -o json
	parsed json "get: kubexec get pods -o json parses to kubectl's object"
	same get pods -A -o json
	same get nodes -o json
	same get pod demo -o yaml
	[ "$HAVE_YAML" = 1 ] && parsed yaml "get: kubexec get pod demo -o yaml parses to kubectl's object"
	same get pods -A -o yaml
	[ "$HAVE_YAML" = 1 ] && parsed yaml "get: kubexec get pods -A -o yaml parses to kubectl's object"
	same get pod odd -n team -o yaml
	[ "$HAVE_YAML" = 1 ] && parsed yaml "get: kubexec get pod odd -n team -o yaml (odd strings) parses to kubectl's object"
	same get pod odd -n team -o json
	same get node "$KX_NODE_NAME" -o yaml
	same get pods demo web -o yaml
	same get pod/demo pod/web -o name
	same get pods -n nothing -o json
	same get pods -n nothing -o yaml
	same get pods -n nothing -o name
}

t_errors() {
	same get pods nosuch
	same get pods nosuch1 nosuch2
	same get pods demo nosuch
	same get pods demo nosuch -o name
	same get pods nosuch -o json
	same get pods nosuch --ignore-not-found
	same get pods -n nothing
	same get nodes nosuch
	same get services
	same get pods demo -A
	same get pods demo -l app=web
	same get pod/demo,node/x
	same get pods,
	# kubexec lists only the output formats it has.
	KA=(get pods -o jsn)
	XA=(get pods -o jsn)
	run_pair
	result "get: -o jsn: kubectl's error up to its list of formats, exit 1" \
		"$([ "$KRC" = 1 ] && [ "$XRC" = 1 ] &&
			cmp -s <(sed 's/formats are: .*//' "$KX_TMP/k.err") <(sed 's/formats are: .*//' "$KX_TMP/x.err")
			echo $?)" "$(pair_why)"
	# kubexec's text names kubexec where kubectl names its own binary, and lists only
	# the formats it has.
	KA=(get pods pod/demo)
	XA=(get pods pod/demo)
	run_pair
	result "get: TYPE NAME mixed with TYPE/NAME: kubectl's error (binary name aside), exit 1" \
		"$([ "$KRC" = 1 ] && [ "$XRC" = 1 ] &&
			cmp -s <(sed -E 's/kubectl[.0-9]*/X/g' "$KX_TMP/k.err") <(sed 's/kubexec/X/g' "$KX_TMP/x.err")
			echo $?)" "$(pair_why)"
	XA=(get)
	KA=(get)
	run_pair
	result "get: no resource type: exit 1, 'error: Required resource not specified.'" \
		"$([ "$XRC" = 1 ] && [ "$KRC" = 1 ] && grep -qxF 'error: Required resource not specified.' "$KX_TMP/x.err"
			echo $?)" "$(pair_why)"
}

t_selectors() {
	kc get pods -l app=web -o name </dev/null >"$KX_TMP/k.out" 2>"$KX_TMP/k.err"
	result "get: the API server filters by labelSelector: kubectl get pods -l app=web lists pod/web alone" \
		"$([ "$(cat "$KX_TMP/k.out")" = pod/web ]; echo $?)" "got: $(head -c 300 "$KX_TMP/k.out") $(head -c 300 "$KX_TMP/k.err")"
	kc get pods -l 'app in web' </dev/null >"$KX_TMP/k.out" 2>"$KX_TMP/k.err"
	result "get: a malformed labelSelector is the server's 400 (unable to parse requirement), not a list" \
		"$(grep -q 'Error from server (BadRequest).*unable to parse requirement' "$KX_TMP/k.err" && [ ! -s "$KX_TMP/k.out" ]
			echo $?)" "stdout: $(head -c 300 "$KX_TMP/k.out"); stderr: $(head -c 300 "$KX_TMP/k.err")"
	KA=(get pods -l app=web)
	XA=(get pods -l app=web)
	check "get: kubexec get pods -l app=web = kubectl"
	KA=(get pods -l 'tier in (front,back)' -o wide)
	XA=(get pods -l 'tier in (front,back)' -o wide)
	check "get: kubexec get pods -l 'tier in (front,back)' -o wide = kubectl"
	KA=(get pods -l '!app')
	XA=(get pods -l '!app')
	check "get: kubexec get pods -l '!app' = kubectl"
	# Across namespaces: the names kubectl's JSON says carry an app label.
	kc get pods -A -o json </dev/null >"$KX_TMP/all.json" 2>/dev/null
	python3 -c '
import json, sys
for it in json.load(open(sys.argv[1]))["items"]:
    if "app" in it["metadata"].get("labels", {}):
        print("pod/" + it["metadata"]["name"])' "$KX_TMP/all.json" >"$KX_TMP/want.names"
	timeout 60 "$XBIN" get pods -A -l app -o name </dev/null >"$KX_TMP/x.out" 2>"$KX_TMP/x.err"
	XRC=$?
	result "get: kubexec get pods -A -l app -o name = the labelled pods of kubectl's -A -o json" \
		"$([ "$XRC" = 0 ] && [ -s "$KX_TMP/want.names" ] && cmp -s "$KX_TMP/want.names" "$KX_TMP/x.out"
			echo $?)" "want: $(tr '\n' ' ' <"$KX_TMP/want.names")" "got (exit $XRC): $(tr '\n' ' ' <"$KX_TMP/x.out") $(head -c 300 "$KX_TMP/x.err")"
	timeout 60 "$XBIN" get pods -l app=nosuch </dev/null >"$KX_TMP/x.out" 2>"$KX_TMP/x.err"
	XRC=$?
	result "get: kubexec get pods -l app=nosuch: 'No resources found in default namespace.', exit 0" \
		"$([ "$XRC" = 0 ] && [ ! -s "$KX_TMP/x.out" ] &&
			[ "$(cat "$KX_TMP/x.err")" = "No resources found in default namespace." ]
			echo $?)" "exit $XRC; stdout $(head -c 200 "$KX_TMP/x.out"); stderr $(head -c 200 "$KX_TMP/x.err")"
}

# Acceptance 2: a merged two-file KUBECONFIG with several contexts.
t_kubeconfig() {
	local admin=$KUBECONFIG second=$KX_TMP/second.kubeconfig server ca cert key
	server=$(awk '$1 == "server:" { print $2; exit }' "$admin")
	ca=$(awk '$1 == "certificate-authority-data:" { print $2; exit }' "$admin")
	cert=$(awk '$1 == "client-certificate-data:" { print $2; exit }' "$admin")
	key=$(awk '$1 == "client-key-data:" { print $2; exit }' "$admin")
	# "kubexec" is also the admin file's context: the first file that names it wins.
	cat >"$second" <<-EOF
		apiVersion: v1
		kind: Config
		clusters:
		- name: kubexec2
		  cluster:
		    server: $server
		    certificate-authority-data: $ca
		users:
		- name: admin2
		  user:
		    client-certificate-data: $cert
		    client-key-data: $key
		contexts:
		- name: team
		  context:
		    cluster: kubexec2
		    user: admin2
		    namespace: team
		- name: empty
		  context:
		    cluster: kubexec2
		    user: admin2
		    namespace: nothing
		- name: kubexec
		  context:
		    cluster: kubexec2
		    user: admin2
		    namespace: team
		current-context: team
	EOF
	local lists=("$admin:$second" "$second:$admin") l args
	for l in "${lists[@]}"; do
		KUBECONFIG=$l
		local tag="KUBECONFIG=${l//$KX_TMP\//}"
		for args in "" "--context team" "--context empty" "--context kubexec" "--context kubexec -n default" "--context team -o wide"; do
			# shellcheck disable=SC2206 # the flags split into words on purpose
			KA=(get pods $args)
			XA=("${KA[@]}")
			check "kubeconfig: $tag: kubexec get pods $args = kubectl"
		done
	done
	KUBECONFIG=$admin
}

t_version() {
	local kv xv
	timeout 60 "$XBIN" version </dev/null >"$KX_TMP/x.out" 2>"$KX_TMP/x.err"
	XRC=$?
	kv=$(kc version </dev/null 2>/dev/null | grep '^Server Version: ')
	xv=$(grep '^Server Version: ' "$KX_TMP/x.out")
	result "version: 'Client Version: v…' then kubectl's 'Server Version' line" \
		"$([ "$XRC" = 0 ] && head -n1 "$KX_TMP/x.out" | grep -qE '^Client Version: v[0-9]+\.[0-9]+\.[0-9]+$' &&
			[ -n "$kv" ] && [ "$kv" = "$xv" ]; echo $?)" \
		"exit $XRC; kubectl: $kv; kubexec: $(head -c 300 "$KX_TMP/x.out") $(head -c 300 "$KX_TMP/x.err")"
	kc version -o json </dev/null >"$KX_TMP/k.out" 2>/dev/null
	timeout 60 "$XBIN" version -o json </dev/null >"$KX_TMP/x.out" 2>"$KX_TMP/x.err"
	XRC=$?
	python3 - "$KX_TMP/k.out" "$KX_TMP/x.out" <<-'EOF' >"$KX_TMP/parsed.err" 2>&1
		import json, sys
		k, x = (json.load(open(p)) for p in sys.argv[1:])
		assert k["serverVersion"] == x["serverVersion"], "serverVersion differs"
		assert sorted(x["clientVersion"]) == sorted(k["clientVersion"]), "clientVersion fields differ"
		assert x["clientVersion"]["gitVersion"].startswith("v"), "no gitVersion"
	EOF
	result "version -o json: kubectl's shape, the same serverVersion" "$?" \
		"exit $XRC; $(cat "$KX_TMP/parsed.err")"
	timeout 60 "$XBIN" version --client </dev/null >"$KX_TMP/x.out" 2>&1
	XRC=$?
	result "version --client: one 'Client Version' line" \
		"$([ "$XRC" = 0 ] && [ "$(wc -l <"$KX_TMP/x.out")" = 1 ] && grep -q '^Client Version: v' "$KX_TMP/x.out"
			echo $?)" "exit $XRC: $(head -c 300 "$KX_TMP/x.out")"
	KA=(version -o xml)
	XA=(version -o xml)
	check "version -o xml: kubectl's error, exit 1"
}

t_completion() {
	local st
	timeout 20 "$XBIN" completion bash </dev/null >"$KX_TMP/comp.sh" 2>"$KX_TMP/x.err"
	XRC=$?
	bash -n "$KX_TMP/comp.sh" 2>>"$KX_TMP/x.err"
	st=$?
	result "completion bash: a script bash accepts" "$([ "$XRC" = 0 ] && [ "$st" = 0 ]; echo $?)" \
		"exit $XRC, bash -n $st: $(head -c 300 "$KX_TMP/x.err")"
	# Drive the completion function the way bash does.
	cat >"$KX_TMP/comptest.sh" <<-'EOF'
		source "$1"
		shift
		COMP_WORDS=("$@")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		_kubexec
		printf '%s\n' "${COMPREPLY[@]}"
	EOF
	local got
	got=$(KUBECONFIG=$KUBECONFIG bash "$KX_TMP/comptest.sh" "$KX_TMP/comp.sh" "$XBIN" exec "" | tr '\n' ' ')
	result "completion: 'kubexec exec <TAB>' offers the pods of the namespace" \
		"$([ "$got" = "demo web " ]; echo $?)" "got: $got"
	got=$(KUBECONFIG=$KUBECONFIG bash "$KX_TMP/comptest.sh" "$KX_TMP/comp.sh" "$XBIN" exec -n team "" | tr '\n' ' ')
	result "completion: 'kubexec exec -n team <TAB>' offers team's pods" \
		"$([ "$got" = "odd " ]; echo $?)" "got: $got"
	got=$(KUBECONFIG=$KUBECONFIG bash "$KX_TMP/comptest.sh" "$KX_TMP/comp.sh" "$XBIN" logs web -c "" | tr '\n' ' ')
	result "completion: 'kubexec logs web -c <TAB>' offers web's containers" \
		"$([ "$got" = "a b " ]; echo $?)" "got: $got"
	got=$(KUBECONFIG=$KUBECONFIG bash "$KX_TMP/comptest.sh" "$KX_TMP/comp.sh" "$XBIN" get "" | tr '\n' ' ')
	result "completion: 'kubexec get <TAB>' offers the resource types" \
		"$([ "$got" = "pods nodes namespaces " ]; echo $?)" "got: $got"
	got=$(KUBECONFIG=$KUBECONFIG bash "$KX_TMP/comptest.sh" "$KX_TMP/comp.sh" "$XBIN" "" | tr '\n' ' ')
	result "completion: 'kubexec <TAB>' offers the commands" \
		"$([ "$got" = "exec attach logs port-forward cp get version completion help " ]; echo $?)" "got: $got"
	KA=(completion zsh2)
	XA=(completion zsh2)
	run_pair
	result "completion zsh2: kubectl's 'Unsupported shell type' error (binary name aside), exit 1" \
		"$([ "$KRC" = 1 ] && [ "$XRC" = 1 ] && cmp -s <(sed 's/kubectl/X/g' "$KX_TMP/k.err") <(sed 's/kubexec/X/g' "$KX_TMP/x.err")
			echo $?)" "$(pair_why)"
	KA=(completion)
	XA=(completion)
	run_pair
	result "completion without a shell: kubectl's error (binary name aside), exit 1" \
		"$([ "$KRC" = 1 ] && [ "$XRC" = 1 ] && cmp -s <(sed 's/kubectl/X/g' "$KX_TMP/k.err") <(sed 's/kubexec/X/g' "$KX_TMP/x.err")
			echo $?)" "$(pair_why)"
}

# ---------------------------------------------------------------- main

if [ "$(id -u)" != 0 ]; then
	fail "run as root (the node needs namespaces and mounts)"
	summary
	exit 1
fi
if versions=$(KUBEXEC_KUBECTL_VERSIONS="1.33 kubexec" "$HERE/kubectl-versions.sh" 2>"/tmp/kubexec-kvget.$$"); then
	ok "kubectl 1.33 and kubexec available"
else
	fail "kubectl 1.33 and kubexec available" "$(cat "/tmp/kubexec-kvget.$$")" "$versions"
	rm -f "/tmp/kubexec-kvget.$$"
	summary
	exit 1
fi
rm -f "/tmp/kubexec-kvget.$$"
KBIN=$(sed -n 's/^1\.33 //p' <<<"$versions")
XBIN=$(sed -n 's/^kubexec //p' <<<"$versions")
HAVE_YAML=0
if python3 -c 'import yaml' 2>/dev/null; then
	HAVE_YAML=1
else
	kx_log "python3-yaml is not installed: -o yaml is compared byte for byte only"
fi

KX_START_HOOK=write_pods
if start_cluster "$KBIN"; then
	ok "cluster starts and pod demo is Running"
else
	fail "cluster starts and pod demo is Running" "see the log lines above"
	stop_cluster
	summary
	exit 1
fi
use_kubectl 1.33 "$KBIN"
end=$((SECONDS + 30))
while :; do
	notrun=
	for p in "default web" "team odd"; do
		# shellcheck disable=SC2086 # "NAMESPACE POD"
		set -- $p
		[ "$(kc get pod "$2" -n "$1" -o 'jsonpath={.status.phase}' </dev/null 2>/dev/null)" = Running ] ||
			notrun="$notrun $2"
	done
	[ -z "$notrun" ] && break
	[ "$SECONDS" -ge "$end" ] && break
	sleep 0.3
done
result "pods web and odd are Running" "$([ -z "$notrun" ]; echo $?)" "not Running:$notrun"

t_tables
t_generic
t_errors
t_selectors
t_kubeconfig
t_version
t_completion

stop_cluster
trap - EXIT
kx_log "runtime $((SECONDS - T0)) s"
summary
