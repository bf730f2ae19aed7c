// kubexec: kubectl's streaming commands (exec, attach, logs, port-forward,
// cp) plus get and version, in kubectl's conventions. See man/kubexec.1.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage_text[] =
    "kubexec runs commands in containers of a Kubernetes-compatible cluster, as kubectl does.\n"
    "\n"
    "Commands:\n"
    "  exec          Execute a command in a container\n"
    "  attach        Attach to a running container\n"
    "  logs          Print the logs for a container in a pod\n"
    "  port-forward  Forward one or more local ports to a pod\n"
    "  cp            Copy files and directories to and from containers\n"
    "  get           Display one or many pods or nodes\n"
    "  version       Print the client and server version information\n"
    "  completion    Output shell completion code for bash\n"
    "  help          Help about any command\n"
    "\n"
    "Global flags (anywhere on the line):\n"
    "  --kubeconfig FILE, --context NAME, --cluster NAME, --user NAME, -n/--namespace NS,\n"
    "  -s/--server URL, --token TOKEN, --certificate-authority FILE, --client-certificate FILE,\n"
    "  --client-key FILE, --tls-server-name NAME, --insecure-skip-tls-verify, -v/--v N\n"
    "\n"
    "Usage:\n"
    "  kubexec [flags] [command]\n"
    "\n"
    "Use \"kubexec <command> --help\" for more information about a command; see kubexec(1).\n";

struct command {
    const char *name;
    int (*run)(kx_cli *c, int argc, char **argv);
    const char *usage;
};

static const command commands[] = {
    {"exec", kx_cmd_exec,
     "Execute a command in a container.\n\nUsage:\n  kubexec exec (POD | TYPE/NAME) [-c CONTAINER] "
     "[flags] -- COMMAND [args...]\n\nOptions:\n  -c, --container='': Container name. If "
     "omitted, use the kubectl.kubernetes.io/default-container annotation or the first container\n"
     "  -i, --stdin=false: Pass stdin to the container\n  -q, --quiet=false: Only print output "
     "from the remote session\n  -t, --tty=false: Stdin is a TTY\n"},
    {"attach", kx_cmd_attach,
     "Attach to a process that is already running inside an existing container.\n\nUsage:\n  "
     "kubexec attach (POD | TYPE/NAME) -c CONTAINER [options]\n\nOptions:\n  -c, --container='': "
     "Container name\n  -i, --stdin=false: Pass stdin to the container\n  -q, --quiet=false: Only "
     "print output from the remote session\n  -t, --tty=false: Stdin is a TTY\n"},
    {"logs", kx_cmd_logs,
     "Print the logs for a container in a pod.\n\nUsage:\n  kubexec logs [-f] [-p] (POD | "
     "TYPE/NAME) [-c CONTAINER] [options]\n\nOptions:\n  -c, --container='': Print the logs of "
     "this container\n  -f, --follow=false: Specify if the logs should be streamed\n  "
     "--limit-bytes=0: Maximum bytes of logs to return\n  -p, --previous=false: Print the logs "
     "for the previous instance of the container\n  --since=0s: Only return logs newer than a "
     "relative duration like 5s, 2m, or 3h\n  --since-time='': Only return logs after a specific "
     "date (RFC3339)\n  --tail=-1: Lines of recent log file to display\n  --timestamps=false: "
     "Include timestamps on each line in the log output\n"},
    {"port-forward", kx_cmd_port_forward,
     "Forward one or more local ports to a pod.\n\nUsage:\n  kubexec port-forward TYPE/NAME "
     "[options] [LOCAL_PORT:]REMOTE_PORT [...[LOCAL_PORT_N:]REMOTE_PORT_N]\n\nOptions:\n  "
     "--address=[localhost]: Addresses to listen on (comma separated). Only accepts IP addresses "
     "or localhost as a value.\n"},
    {"cp", kx_cmd_cp,
     "Copy files and directories to and from containers.\n\nUsage:\n  kubexec cp "
     "<file-spec-src> <file-spec-dest> [options]\n\nOptions:\n  -c, --container='': Container "
     "name\n  --no-preserve=false: The copied file/directory's ownership and permissions will not "
     "be preserved in the container\n"},
    {"get", kx_cmd_get,
     "Display one or many resources (pods, nodes, namespaces).\n\nUsage:\n  kubexec get "
     "TYPE[,TYPE...] [NAME...] [options]\n\nOptions:\n  -o, --output='': wide, json, yaml or "
     "name\n  -A, --all-namespaces=false\n  -l, --selector='': label selector\n  "
     "--field-selector=''\n  --no-headers=false\n  --show-labels=false\n  --show-kind=false\n"
     "  -L, --label-columns='': comma-separated label keys\n  --ignore-not-found=false\n  "
     "--chunk-size=500\n"},
    {"version", kx_cmd_version,
     "Print the client and server version information.\n\nUsage:\n  kubexec version [--client] "
     "[-o json|yaml]\n"},
    {"completion", kx_cmd_completion,
     "Output shell completion code for bash.\n\nUsage:\n  kubexec completion bash\n\n  source "
     "<(kubexec completion bash)\n"},
};

static const command *find_command(const char *name)
{
    for (const command &c : commands)
        if (strcmp(c.name, name) == 0)
            return &c;
    return nullptr;
}

// Global flags that take a value in the next word when written without '='.
static bool takes_value(const char *a)
{
    static const char *const names[] = {"--kubeconfig", "--context", "--cluster", "--user",
                                        "--namespace", "-n", "--server", "-s", "--token",
                                        "--certificate-authority", "--client-certificate",
                                        "--client-key", "--tls-server-name",
                                        "--request-timeout", "--v", "-v", "--cache-dir"};
    for (const char *n : names)
        if (strcmp(a, n) == 0)
            return true;
    return false;
}

int main(int argc, char **argv)
{
    // Socket writes must fail with EPIPE rather than kill us; rc.cc restores
    // the default when our own stdout is the broken pipe.
    signal(SIGPIPE, SIG_IGN);
    // Find the command word: the first argument that is neither a flag nor
    // the value of a global flag (kubectl accepts "kubectl -n ns exec ...").
    int ci = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (argv[i][0] == '-') {
            if (takes_value(argv[i]))
                i++;
            continue;
        }
        ci = i;
        break;
    }
    bool want_help = false;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            want_help = true;
    if (ci < 0) {
        // As kubectl: no command prints the help and succeeds.
        fputs(usage_text, stdout);
        return 0;
    }
    const char *word = argv[ci];
    if (strcmp(word, "help") == 0) {
        const command *hc = ci + 1 < argc ? find_command(argv[ci + 1]) : nullptr;
        fputs(hc ? hc->usage : usage_text, stdout);
        return 0;
    }
    const command *cmd = find_command(word);
    if (!cmd) {
        fprintf(stderr, "error: unknown command \"%s\" for \"kubexec\"\n\nRun 'kubexec --help' "
                        "for usage.\n",
                word);
        return 1;
    }
    if (want_help) {
        fputs(cmd->usage, stdout);
        return 0;
    }
    // The command sees every other argument (global flags included).
    char **rest = (char **)calloc((size_t)argc, sizeof *rest);
    if (!rest)
        return 1;
    int n = 0;
    for (int i = 1; i < argc; i++)
        if (i != ci)
            rest[n++] = argv[i];
    kx_cli cli = {};
    cli.loop = uv_default_loop();
    int rc = cmd->run(&cli, n, rest);
    fflush(stdout);
    free(rest);
    kx_kcfg_free(&cli.cfg);
    if (cli.ssl)
        kx_tls_ctx_free(cli.ssl);
    return rc;
}
