// rcx: one remotecommand session (exec or attach) on either transport --
// SPDY/3.1 (channel.k8s.io v1-v4, kubexec/remotecommand.h) or WebSocket
// (v5/v4/base64/channel.k8s.io, kubexec/wschannel.h) -- behind one interface,
// so exec.cc and attach.cc don't care which one the client chose.
//
// Lifecycle: kx_rcx_upgrade() answers the HTTP request. On failure it has
// already sent the error answer and returns null. On success it has hijacked
// the connection, sent the 101, and owns the connection until on_closed,
// which is always the last callback; the kx_rcx is freed right after it.
// The caller ends the session with kx_rcx_finish (status, then close) or
// kx_rcx_abort (client gone / shutdown: close without a status).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "kubexec/httpd.h"
#include "kubexec/remotecommand.h"

struct kx_rcx;

struct kx_rcx_callbacks {
    // Every stream the request asked for exists: start (or attach) now.
    void (*on_ready)(void *user);
    void (*on_stdin)(void *user, const uint8_t *p, size_t n);
    void (*on_stdin_eof)(void *user);
    void (*on_resize)(void *user, uint16_t cols, uint16_t rows);
    // The client is leaving (SPDY GOAWAY, WebSocket close, TCP EOF/error)
    // before kx_rcx_finish. Reply with kx_rcx_abort or kx_rcx_finish.
    void (*on_client_gone)(void *user);
    // The output side drained below the low watermark after
    // kx_rcx_queued() was above KX_CONN_HIGH_WATER: resume producing.
    void (*on_drain)(void *user);
    // Last callback: the connection is closed and the kx_rcx is freed
    // right after this returns.
    void (*on_closed)(void *user);
};

// What the request asks for (kubelet query: input/output/error/tty == "1").
struct kx_rcx_request {
    bool in, out, err, tty;
};

// Validates the upgrade headers, negotiates the protocol (SPDY
// X-Stream-Protocol-Version or WebSocket Sec-WebSocket-Protocol), answers
// 101 and takes the connection. Any request bytes already read past the head
// are processed. Returns null after answering with an error (400/403).
kx_rcx *kx_rcx_upgrade(kx_httpd_req *req, const kx_rcx_request *r, const kx_rcx_callbacks *cb,
                       void *user);

int kx_rcx_stdout(kx_rcx *x, const uint8_t *p, size_t n);
int kx_rcx_stderr(kx_rcx *x, const uint8_t *p, size_t n);
// Bytes waiting for the socket; above KX_CONN_HIGH_WATER stop producing
// until on_drain.
size_t kx_rcx_queued(const kx_rcx *x);
// Stops / restarts reading the client (stdin back-pressure).
void kx_rcx_pause_input(kx_rcx *x);
void kx_rcx_resume_input(kx_rcx *x);
// Server-side stdin close (attach with stdinOnce): SPDY FIN on stdin.
int kx_rcx_close_stdin(kx_rcx *x);
// Ends the session: output streams closed, the status (exit_code, or
// errmsg != null for an InternalError) on the error stream/channel, then the
// transport's close (SPDY GOAWAY / WebSocket close 1000), then TCP close.
// Idempotent; no callbacks but on_closed afterwards.
void kx_rcx_finish(kx_rcx *x, int exit_code, const char *errmsg);
// Closes without a status (client gone, shutdown). Idempotent.
void kx_rcx_abort(kx_rcx *x);
// "spdy" or "websocket", and the negotiated protocol name.
const char *kx_rcx_transport(const kx_rcx *x);
const char *kx_rcx_protocol(const kx_rcx *x);
