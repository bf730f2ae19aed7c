// src/cli/rc.h - the client side of remotecommand (exec, attach, and the
// exec under cp): WebSocket v5 first, SPDY/3.1 v4 when the server refuses the
// WebSocket, as kubectl >= 1.30 does (protocol.md §3, §4).
#pragma once

#include "cli.h"

struct kx_cli_rc_opts {
    const char *subresource;   // "exec" or "attach"
    const char *ns, *pod, *container;
    char *const *command;      // exec: argv (ncommand words)
    int ncommand;
    bool in, out, err, tty;    // what the session carries (err is forced off by tty)
    int in_fd, out_fd, err_fd; // local ends (the terminal, or cp's pipes)
    bool raw_terminal;         // put in_fd in raw mode for the session (tty on a terminal)
    bool quiet;                // -q: no "command terminated" line
    const char *progress;      // cp: label of a progress line on stderr (a
                               // terminal only), null for none
};

// Runs one session on h (a connection that answered the pod GET; it is
// consumed). Returns the process's exit code for exec (0, N from a
// NonZeroExitCode Status), or 1 after printing the error as kubectl does.
// KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false skips the WebSocket attempt, as
// with kubectl.
int kx_cli_rc_run(kx_cli *c, kx_cli_http *h, const kx_cli_rc_opts *o);

// Puts the terminal on fd in raw mode and restores it at exit, on fatal
// signals and on kx_cli_term_restore. 0 or <0.
int kx_cli_term_raw(int fd);
void kx_cli_term_restore(void);
