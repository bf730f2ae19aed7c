// kubexec completion bash: a self-contained bash completion script, and the
// hidden helper it calls for container names.
//
// The script completes commands, each command's flags (the tables in exec.cc,
// logs.cc, portforward.cc, cp.cc, get.cc and args.cc — keep them in step),
// -o values, and names from the cluster: pods (`kubexec get pods -o name`,
// "pod/" stripped, or kept when the word being completed is TYPE/...),
// namespaces, nodes, and the containers of the pod already on the line
// (`kubexec completion __containers POD`). Those calls reuse the connection
// flags typed so far (--kubeconfig, --context, -n, ...), and their errors are
// discarded: completion never prints into the user's line.
//
// Errors as kubectl's `completion`: no shell, more than one argument, or a
// shell other than bash.
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char bash_script[] = R"SH(# bash completion for kubexec                              -*- shell-script -*-
#
# Load it into the current shell:   source <(kubexec completion bash)
# or install it for every shell:    kubexec completion bash > /etc/bash_completion.d/kubexec
#
# Pod, namespace, node and container names come from the cluster: the same
# kubexec runs with the connection flags already typed on the line.

__kubexec_commands="exec attach logs port-forward cp get version completion help"
__kubexec_global_value_flags="--kubeconfig --context --cluster --user --namespace -n --server -s --token --certificate-authority --client-certificate --client-key --tls-server-name --request-timeout --v -v --cache-dir"
__kubexec_global_bool_flags="--insecure-skip-tls-verify --match-server-version --warnings-as-errors -h --help"

# __kubexec_flags CMD: every flag of CMD.
__kubexec_flags() {
    case $1 in
    exec) echo "-c --container -i --stdin -t --tty -q --quiet -f --filename --pod-running-timeout" ;;
    attach) echo "-c --container -i --stdin -t --tty -q --quiet --pod-running-timeout" ;;
    logs) echo "-c --container -f --follow -p --previous --timestamps --tail --limit-bytes --since --since-time --pod-running-timeout --all-containers -l --selector" ;;
    port-forward) echo "--address --pod-running-timeout" ;;
    cp) echo "-c --container --no-preserve --retries" ;;
    get) echo "-o --output -A --all-namespaces -l --selector --field-selector --no-headers --show-labels --show-kind -L --label-columns --ignore-not-found --chunk-size" ;;
    version) echo "--client -o --output" ;;
    esac
}

# __kubexec_value_flags CMD: the flags of CMD that take a value.
__kubexec_value_flags() {
    case $1 in
    exec) echo "-c --container -f --filename --pod-running-timeout" ;;
    attach) echo "-c --container --pod-running-timeout" ;;
    logs) echo "-c --container --tail --limit-bytes --since --since-time --pod-running-timeout -l --selector" ;;
    port-forward) echo "--address --pod-running-timeout" ;;
    cp) echo "-c --container --retries" ;;
    get) echo "-o --output -l --selector --field-selector -L --label-columns --chunk-size" ;;
    version) echo "-o --output" ;;
    esac
}

# __kubexec_in WORD LIST...: true when WORD is one of LIST.
__kubexec_in() {
    local w=$1 x
    shift
    for x in "$@"; do
        [[ $x == "$w" ]] && return 0
    done
    return 1
}

__kubexec_reply() {
    local IFS=$' \t\n'
    # shellcheck disable=SC2207
    COMPREPLY=($(compgen -W "$1" -- "$__kx_cur"))
}

# __kubexec_run ARGS...: kubexec ARGS with the connection flags of the line.
__kubexec_run() {
    local -a conn=()
    local i w v
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
        --kubeconfig | --context | --cluster | --user | --namespace | -n | --server | -s | --token | \
            --certificate-authority | --client-certificate | --client-key | --tls-server-name)
            v=${COMP_WORDS[i + 1]}
            if [[ $v == "=" ]]; then
                v=${COMP_WORDS[i + 2]}
                ((i++))
            fi
            ((i++))
            ((i < COMP_CWORD)) && conn+=("$w" "$v")
            ;;
        --insecure-skip-tls-verify) conn+=("$w") ;;
        esac
    done
    "${COMP_WORDS[0]}" "${conn[@]}" "$@" 2>/dev/null </dev/null
}

# __kubexec_names TYPE: NAME per line (kubexec get TYPE -o name, "type/" cut).
__kubexec_names() {
    local line
    while IFS= read -r line; do
        printf '%s\n' "${line#*/}"
    done < <(__kubexec_run get "$1" -o name)
}

# __kubexec_objects TYPE: names of TYPE; "T/NAME" when the word is "T/...".
__kubexec_objects() {
    local names n out=""
    names=$(__kubexec_names "$1")
    if [[ $__kx_cur == */* ]]; then
        for n in $names; do
            out+="${__kx_cur%%/*}/$n "
        done
        __kubexec_reply "$out"
    else
        __kubexec_reply "$names"
    fi
}

_kubexec() {
    local __kx_cur=${COMP_WORDS[COMP_CWORD]}
    local prev=${COMP_WORDS[COMP_CWORD - 1]}
    local flag="" cmd="" i w dashdash=0 IFS=$' \t\n'
    local -a args=()
    COMPREPLY=()
    # "--flag=value": bash splits the word at '=' (COMP_WORDBREAKS).
    if [[ $__kx_cur == "=" ]]; then
        flag=$prev
        __kx_cur=""
    elif [[ $prev == "=" ]] && ((COMP_CWORD >= 2)); then
        flag=${COMP_WORDS[COMP_CWORD - 2]}
    fi
    # The command word and the positional arguments before the cursor.
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if ((dashdash)); then
            args+=("$w")
            continue
        fi
        if [[ $w == "--" ]]; then
            dashdash=1
            continue
        fi
        # shellcheck disable=SC2086,SC2046 # the lists split into words
        if [[ $w == -* ]]; then
            if [[ ${COMP_WORDS[i + 1]} == "=" ]]; then
                ((i += 2))
            elif __kubexec_in "$w" $__kubexec_global_value_flags $(__kubexec_value_flags "$cmd"); then
                ((i++))
            fi
            continue
        fi
        if [[ -z $cmd ]]; then
            cmd=$w
        else
            args+=("$w")
        fi
    done
    # shellcheck disable=SC2086,SC2046 # the lists split into words
    if [[ -z $flag && $prev == -* ]] &&
        __kubexec_in "$prev" $__kubexec_global_value_flags $(__kubexec_value_flags "$cmd"); then
        flag=$prev
    fi
    if [[ -n $flag ]]; then
        case $flag in
        -n | --namespace) __kubexec_reply "$(__kubexec_names namespaces)" ;;
        -o | --output)
            if [[ $cmd == version ]]; then
                __kubexec_reply "json yaml"
            else
                __kubexec_reply "json name wide yaml"
            fi
            ;;
        -c | --container)
            local pod=${args[0]}
            pod=${pod%%:*}
            [[ -n $pod ]] && __kubexec_reply "$(__kubexec_run completion __containers "$pod")"
            ;;
        --kubeconfig | --certificate-authority | --client-certificate | --client-key | -f | --filename)
            # shellcheck disable=SC2207
            COMPREPLY=($(compgen -f -- "$__kx_cur"))
            ;;
        esac
        return 0
    fi
    if [[ -z $cmd ]]; then
        if [[ $__kx_cur == -* ]]; then
            __kubexec_reply "$__kubexec_global_value_flags $__kubexec_global_bool_flags"
        else
            __kubexec_reply "$__kubexec_commands"
        fi
        return 0
    fi
    ((dashdash)) && return 0   # the remote command's words: bash's default
    if [[ $__kx_cur == -* ]]; then
        __kubexec_reply "$(__kubexec_flags "$cmd") $__kubexec_global_value_flags $__kubexec_global_bool_flags"
        return 0
    fi
    local n=${#args[@]}
    case $cmd in
    exec | attach | logs | port-forward)
        ((n == 0)) && __kubexec_objects pods
        ;;
    cp)
        # POD:PATH or a local path; nothing to offer inside the container.
        if ((n < 2)) && [[ $prev != ":" ]]; then
            local p out=""
            for p in $(__kubexec_names pods); do
                out+="$p: "
            done
            # shellcheck disable=SC2207
            COMPREPLY=($(compgen -W "$out" -- "$__kx_cur") $(compgen -f -- "$__kx_cur"))
            compopt -o nospace 2>/dev/null
        fi
        ;;
    get)
        if ((n == 0)); then
            if [[ $__kx_cur == */* ]]; then
                __kubexec_objects "${__kx_cur%%/*}"
            else
                __kubexec_reply "pods nodes namespaces"
            fi
        elif [[ ${args[0]} != */* ]]; then
            __kubexec_objects "${args[0]%%,*}"
        fi
        ;;
    completion) ((n == 0)) && __kubexec_reply "bash" ;;
    help) ((n == 0)) && __kubexec_reply "$__kubexec_commands" ;;
    esac
    return 0
}

complete -o default -F _kubexec kubexec
)SH";

// Prints the containers of a pod, one per line (for the script's -c).
static int print_containers(kx_cli *c, const char *arg)
{
    char name[256];
    if (kx_cli_pod_name(arg, name, sizeof name))
        return 1;
    kx_cli_http *h;
    if (kx_cli_http_open(c, &h))
        return 1;
    kx_cli_pod pod;
    int rc = kx_cli_pod_get(h, c->cfg.namespace_, name, &pod);
    kx_cli_http_close(h);
    if (rc)
        return 1;
    for (size_t i = 0; i < pod.ncontainers; i++)
        printf("%s\n", pod.containers[i]);
    return 0;
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "error: %s\nSee 'kubexec completion -h' for help and examples\n", msg);
    return 1;
}

int kx_cmd_completion(kx_cli *c, int argc, char **argv)
{
    const char *pos[4];
    size_t npos;
    const kx_flag none[1] = {};   // only the global flags
    if (kx_cli_parse(c, argc, argv, none, 0, pos, 4, &npos, nullptr, nullptr))
        return 1;
    if (npos == 2 && strcmp(pos[0], "__containers") == 0)
        return print_containers(c, pos[1]);
    if (npos == 0)
        return usage_error("Shell not specified.");
    if (npos > 1)
        return usage_error("Too many arguments. Expected only the shell type.");
    if (strcmp(pos[0], "bash") != 0) {
        fprintf(stderr, "error: Unsupported shell type \"%s\".\nSee 'kubexec completion -h' for "
                        "help and examples\n",
                pos[0]);
        return 1;
    }
    fputs(bash_script, stdout);
    return fflush(stdout) == 0 ? 0 : 1;
}
