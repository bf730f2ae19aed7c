// kubexec exec / attach: kubectl's flags, checks and messages, then one
// remotecommand session (rc.cc).
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rc.h"

// kubectl's StreamOptions.SetupTTY: a TTY needs -i and a terminal on stdin.
static bool setup_tty(bool in, bool tty, bool quiet)
{
    if (!in || !tty)
        return false;
    if (!isatty(0)) {
        if (!quiet)
            fputs("Unable to use a TTY - input is not a terminal or the right kind of file\n",
                  stderr);
        return false;
    }
    return true;
}

// A session on the process's own stdin/stdout/stderr (stderr merged into
// the terminal with a tty).
static kx_cli_rc_opts terminal_opts(const char *sub, const kx_cli_pod *pod, const char *ctr,
                                    bool in, bool tty, bool quiet)
{
    kx_cli_rc_opts o = {};
    o.subresource = sub;
    o.ns = pod->ns;
    o.pod = pod->name;
    o.container = ctr;
    o.in = in;
    o.out = true;
    o.err = !tty;
    o.tty = tty;
    o.in_fd = 0;
    o.out_fd = 1;
    o.err_fd = 2;
    o.quiet = quiet;
    return o;
}

int kx_cmd_exec(kx_cli *c, int argc, char **argv)
{
    const char *container = nullptr, *filename = nullptr, *running_timeout = nullptr;
    bool in = false, tty = false, quiet = false;
    const kx_flag flags[] = {
        {"container", 'c', KXF_STRING, &container},
        {"stdin", 'i', KXF_BOOL, &in},
        {"tty", 't', KXF_BOOL, &tty},
        {"quiet", 'q', KXF_BOOL, &quiet},
        {"filename", 'f', KXF_STRING, &filename},
        {"pod-running-timeout", 0, KXF_STRING, &running_timeout},
    };
    const char *pos[8];
    size_t npos;
    char **cmd;
    int ncmd;
    if (kx_cli_parse(c, argc, argv, flags, sizeof flags / sizeof flags[0], pos, 8, &npos, &cmd,
                     &ncmd))
        return 1;
    if (filename)
        return kx_cli_err("-f/--filename is not supported by kubexec; name the pod");
    if (npos == 0)
        return kx_cli_err("pod, type/name or --filename must be specified");
    if (npos > 1)
        return kx_cli_err("exec [POD] [COMMAND] is not supported anymore. Use exec [POD] -- "
                          "[COMMAND] instead\nSee 'kubexec exec -h' for help and examples");
    if (ncmd <= 0)
        return kx_cli_err("you must specify at least one command for the container");
    kx_cli_http *h;
    kx_cli_pod pod;
    char ctr[64];
    if (kx_cli_pod_open(c, pos[0], nullptr, container, quiet, &h, &pod, ctr, sizeof ctr))
        return 1;
    if (strcmp(pod.phase, "Succeeded") == 0 || strcmp(pod.phase, "Failed") == 0) {
        kx_cli_http_close(h);
        return kx_cli_err("cannot exec into a container in a completed pod; current phase is %s",
                          pod.phase);
    }
    bool t = setup_tty(in, tty, quiet);
    kx_cli_rc_opts o = terminal_opts("exec", &pod, ctr, in, t, quiet);
    o.command = cmd;
    o.ncommand = ncmd;
    o.raw_terminal = t;
    return kx_cli_rc_run(c, h, &o);
}

int kx_cmd_attach(kx_cli *c, int argc, char **argv)
{
    const char *container = nullptr, *running_timeout = nullptr;
    bool in = false, tty = false, quiet = false;
    const kx_flag flags[] = {
        {"container", 'c', KXF_STRING, &container},
        {"stdin", 'i', KXF_BOOL, &in},
        {"tty", 't', KXF_BOOL, &tty},
        {"quiet", 'q', KXF_BOOL, &quiet},
        {"pod-running-timeout", 0, KXF_STRING, &running_timeout},
    };
    const char *pos[4];
    size_t npos;
    if (kx_cli_parse(c, argc, argv, flags, sizeof flags / sizeof flags[0], pos, 4, &npos,
                     nullptr, nullptr))
        return 1;
    if (npos == 0)
        return kx_cli_err("at least 1 argument is required for attach");
    if (npos > 1)
        return kx_cli_err("expected POD, TYPE/NAME, or TYPE NAME, (at most 2 arguments) saw %zu",
                          npos);
    kx_cli_http *h;
    kx_cli_pod pod;
    char ctr[64];
    if (kx_cli_pod_open(c, pos[0], nullptr, container, quiet, &h, &pod, ctr, sizeof ctr))
        return 1;
    if (strcmp(pod.phase, "Succeeded") == 0 || strcmp(pod.phase, "Failed") == 0) {
        kx_cli_http_close(h);
        return kx_cli_err("cannot attach a container in a completed pod; current phase is %s",
                          pod.phase);
    }
    bool ctr_tty = false, found = false;
    for (size_t i = 0; i < pod.ncontainers; i++)
        if (strcmp(pod.containers[i], ctr) == 0) {
            ctr_tty = pod.tty[i];
            found = true;
        }
    bool t = setup_tty(in, tty, quiet);
    if (found && t && !ctr_tty) {
        t = false;
        if (!quiet)
            fprintf(stderr, "error: Unable to use a TTY - container %s did not allocate one\n",
                    ctr);
    } else if (found && !t && ctr_tty) {
        // The container has a terminal: the server insists on tty=true.
        t = true;
    }
    // kubectl 1.33 prints the hint for every attach, terminal or not.
    if (!quiet)
        fputs("If you don't see a command prompt, try pressing enter.\n", stderr);
    kx_cli_rc_opts o = terminal_opts("attach", &pod, ctr, in, t, quiet);
    o.raw_terminal = t && in && isatty(0);
    int rc = kx_cli_rc_run(c, h, &o);
    if (in && t && !quiet)
        fprintf(stderr,
                "Session ended, resume using 'kubexec attach %s -c %s -i -t' command when the pod "
                "is running\n",
                pod.name, ctr);
    return rc;
}
