// Attach sessions: `kubectl attach` on the node. One attach_session per
// upgraded connection; it owns the remotecommand session (rcx.h: SPDY or
// WebSocket) and one pod-manager subscription (podmgr.h attach API) to the
// container's main process. Unlike exec there is no process of our own: the
// pod manager owns the main process and its stdio, and keeps reading its
// output whatever we do.
//
// Data path: container output -> pod manager (CRI log, then every attacher)
// -> kx_rcx_stdout/stderr -> socket. We cannot slow the container down, so
// there is no pause on output: the transport's queue is our backlog, and the
// pod manager disconnects us when it passes KX_PODMGR_ATTACH_MAX_BACKLOG (the
// client then sees an error status). Client stdin -> the container's shared
// stdin pipe, with back-pressure toward the client (pause reading it above
// KX_PODMGR_STDIN_HIGH_WATER, resume on on_stdin_drain).
//
// A session ends one of two ways:
//  * the attached run ends (exit, restart, pod removal, node shutdown): status
//    with its exit code on the error stream, then the transport's close --
//    exactly like exec, so kubectl reports `command terminated with exit code N`;
//  * the client leaves (Ctrl-C, killed, connection lost): we unsubscribe and
//    close. The container is never signalled; with stdinOnce the pod manager
//    closes its stdin if we owned it.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"
#include "rcx.h"

struct attach_session {
    kx_node *node;
    kx_rcx *x;                   // null once closed
    kx_rcx_request rq;
    char ns[254], pod[254], ctr[254];
    kx_podmgr_attacher *a;       // null when not subscribed
    bool finished;               // status sent or aborted: no more output
    bool input_paused;
    bool stdin_closed;           // our side FIN'ed the client's stdin stream
};

static void session_maybe_free(attach_session *s)
{
    if (s->x)
        return;
    if (s->a) {
        kx_podmgr_detach(s->a);
        s->a = nullptr;
    }
    free(s);
}

static void close_client_stdin(attach_session *s)
{
    if (s->stdin_closed || !s->rq.in || !s->x)
        return;
    s->stdin_closed = true;
    kx_rcx_close_stdin(s->x);
    if (s->input_paused) {
        s->input_paused = false;
        kx_rcx_resume_input(s->x);   // keep reading: resize, GOAWAY, EOF
    }
}

static void session_finish(attach_session *s, int exit_code, const char *errmsg)
{
    if (s->finished)
        return;
    s->finished = true;
    if (s->a) {
        kx_podmgr_detach(s->a);
        s->a = nullptr;
    }
    if (s->x)
        kx_rcx_finish(s->x, exit_code, errmsg);
}

// --- pod manager callbacks -------------------------------------------------

static size_t pm_on_output(void *user, int stream, const uint8_t *p, size_t n)
{
    attach_session *s = (attach_session *)user;
    if (s->finished || !s->x)
        return 0;
    // stream 2 only exists for a container without a tty. A client that asked
    // for a tty has no stderr stream: its stderr shares stdout, as on a pty.
    if (stream == 2 && s->rq.err)
        kx_rcx_stderr(s->x, p, n);
    else if (s->rq.out && (stream == 1 || s->rq.tty))
        kx_rcx_stdout(s->x, p, n);
    return s->x ? kx_rcx_queued(s->x) : 0;
}

static void pm_on_stdin_drain(void *user)
{
    attach_session *s = (attach_session *)user;
    if (s->input_paused && s->x) {
        s->input_paused = false;
        kx_rcx_resume_input(s->x);
    }
}

static void pm_on_stdin_closed(void *user)
{
    close_client_stdin((attach_session *)user);
}

static void pm_on_end(void *user, int status, int exit_code)
{
    attach_session *s = (attach_session *)user;
    s->a = nullptr;   // freed by the pod manager when we return
    if (status == -ENOBUFS) {
        fprintf(stderr, "kubexec-node: warning: attach %s/%s/%s: client too slow, detached\n", s->ns, s->pod,
                s->ctr);
        char msg[160];
        snprintf(msg, sizeof msg,
                 "attach: the client did not keep up with the container's output (over %d bytes "
                 "queued); detached, the container keeps running",
                 (int)KX_PODMGR_ATTACH_MAX_BACKLOG);
        session_finish(s, 0, msg);
        return;
    }
    session_finish(s, exit_code < 0 || exit_code > 255 ? 255 : exit_code, nullptr);
}

static const kx_podmgr_attach_callbacks pm_cb = {pm_on_output, pm_on_stdin_drain, pm_on_stdin_closed,
                                                 pm_on_end};

// --- rcx callbacks ---------------------------------------------------------

static void x_on_ready(void *user)
{
    attach_session *s = (attach_session *)user;
    char err[512];
    kx_podmgr_attach_info info = {};
    int r = kx_podmgr_attach(s->node->pm, s->ns, s->pod, s->ctr, s->rq.in, &pm_cb, s, &s->a, &info, err,
                             sizeof err);
    if (r != 0) {
        session_finish(s, 0, err);
        return;
    }
    // No stdin to write (no spec.stdin, or stdinOnce already used): tell the
    // client instead of swallowing what it types.
    if (s->rq.in && !info.stdin_ok)
        close_client_stdin(s);
}

static void x_on_stdin(void *user, const uint8_t *p, size_t n)
{
    attach_session *s = (attach_session *)user;
    if (!s->a || s->stdin_closed)
        return;
    int r = kx_podmgr_attach_stdin(s->a, p, n);
    if (r == -EPIPE) {
        close_client_stdin(s);
    } else if (r > KX_PODMGR_STDIN_HIGH_WATER && !s->input_paused && s->x) {
        s->input_paused = true;
        kx_rcx_pause_input(s->x);
    }
    // -ENOBUFS cannot happen while we honour the pause; the bytes are dropped.
}

static void x_on_stdin_eof(void *user)
{
    attach_session *s = (attach_session *)user;
    if (s->a)
        kx_podmgr_attach_stdin_eof(s->a);
}

static void x_on_resize(void *user, uint16_t cols, uint16_t rows)
{
    attach_session *s = (attach_session *)user;
    if (s->a)
        kx_podmgr_attach_resize(s->a, cols, rows);   // not a tty / bad size: ignored
}

static void x_on_client_gone(void *user)
{
    attach_session *s = (attach_session *)user;
    // Detach only; the container is left exactly as it is.
    if (s->a) {
        kx_podmgr_detach(s->a);
        s->a = nullptr;
    }
    s->finished = true;
    if (s->x)
        kx_rcx_abort(s->x);
}

static void x_on_drain(void *)
{
    // Output is never paused (the container cannot wait for us).
}

static void x_on_closed(void *user)
{
    attach_session *s = (attach_session *)user;
    s->x = nullptr;
    s->finished = true;
    session_maybe_free(s);
}

static const kx_rcx_callbacks x_cb = {x_on_ready, x_on_stdin, x_on_stdin_eof, x_on_resize,
                                      x_on_client_gone, x_on_drain, x_on_closed};

// --- entry point -----------------------------------------------------------

void kx_node_attach(kx_node *node, kx_httpd_req *req, const char *ns, const char *pod, const char *ctr,
                    const kx_rcx_request *rq)
{
    attach_session *s = (attach_session *)calloc(1, sizeof *s);
    if (!s) {
        kx_httpd_respond(req, 500, "text/plain", "out of memory", 13);
        return;
    }
    s->node = node;
    s->rq = *rq;
    kx_strlcpy(s->ns, ns, sizeof s->ns);
    kx_strlcpy(s->pod, pod, sizeof s->pod);
    kx_strlcpy(s->ctr, ctr, sizeof s->ctr);
    s->x = kx_rcx_upgrade(req, rq, &x_cb, s);
    if (!s->x)
        free(s);   // answered with an error; nothing subscribed
}
