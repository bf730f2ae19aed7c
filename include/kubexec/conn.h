// kubexec/conn.h - a TLS connection on a libuv TCP handle.
//
// Binds the sans-I/O TLS engine (kubexec/tls.h) to a uv_tcp_t: ciphertext
// read from the socket is fed to the engine and plaintext is handed to
// on_data; plaintext written with kx_conn_write is encrypted and queued on
// the socket. Used by both daemons for every HTTPS connection, server side
// (kx_conn_accept) and client side (kx_conn_connect).
//
// Ownership: the kx_conn is heap-allocated by this module and freed after
// on_close returned; the user must not touch it afterwards. Every other
// callback may call kx_conn_close (that is the usual reaction to an error),
// after which no further callback but on_close arrives.
//
// Back-pressure: kx_conn_queued() tells how many ciphertext bytes sit in the
// socket's write queue; callers stop producing above their high watermark and
// resume from on_drain, which fires when the queue falls below
// KX_CONN_LOW_WATER after having been above KX_CONN_HIGH_WATER.
#pragma once

#include "kubexec/tls.h"
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define KX_CONN_HIGH_WATER (1024 * 1024)
#define KX_CONN_LOW_WATER (256 * 1024)

struct kx_conn;

struct kx_conn_callbacks {
    // Client side: TCP connected and TLS handshake done (status 0) or failed
    // (status < 0; the connection is closing). Server side: handshake done.
    // May be null.
    void (*on_ready)(kx_conn *c, int status);
    // Decrypted bytes, valid only during the call.
    void (*on_data)(kx_conn *c, const uint8_t *p, size_t n);
    // The peer finished (close_notify or TCP EOF, status 0) or the connection
    // failed (status < 0). The user should kx_conn_close() soon; writes are
    // still possible after a clean EOF from the peer.
    void (*on_end)(kx_conn *c, int status);
    // The write queue fell below KX_CONN_LOW_WATER. May be null.
    void (*on_drain)(kx_conn *c);
    // Last callback; the connection is freed right after it returns.
    void (*on_close)(kx_conn *c);
};

// Accepts one pending connection on `server` (call from its connection
// callback). Returns null on failure (the pending connection is dropped).
kx_conn *kx_conn_accept(uv_stream_t *server, kx_tls_ctx *ctx, const kx_conn_callbacks *cb,
                        void *user);
// Connects to host:port (host is a numeric IPv4/IPv6 address or a name,
// resolved with the libuv resolver) and starts a TLS client handshake that
// verifies the peer against verify_host (may be null: no name check, the
// chain is still verified by ctx). Result through on_ready.
kx_conn *kx_conn_connect(uv_loop_t *loop, const char *host, int port, kx_tls_ctx *ctx,
                         const char *verify_host, const kx_conn_callbacks *cb, void *user);

// Client side, right after kx_conn_connect (the handshake starts once TCP
// is connected): offer an earlier TLS session for resumption; see
// kx_tls_set_session. 0, -EINVAL or -ESTALE.
int kx_conn_set_tls_session(kx_conn *c, const uint8_t *p, size_t n);
// The session to offer next time (after on_ready); see kx_tls_session_save.
int kx_conn_tls_session_save(const kx_conn *c, uint8_t *buf, size_t cap);
// Whether the TLS handshake resumed an earlier session (after on_ready).
bool kx_conn_tls_resumed(const kx_conn *c);

// Queues plaintext. 0, or <0 when the connection is closing or failed.
int kx_conn_write(kx_conn *c, const uint8_t *p, size_t n);
// Two pieces in one TLS write batch (frame header + payload).
int kx_conn_write2(kx_conn *c, const uint8_t *a, size_t an, const uint8_t *b, size_t bn);
size_t kx_conn_queued(const kx_conn *c);
// Stops / restarts reading from the socket (back-pressure toward the peer).
void kx_conn_pause(kx_conn *c);
void kx_conn_resume(kx_conn *c);
// Graceful close: sends close_notify, lets queued bytes drain (bounded by a
// 10 s timer), then closes. Idempotent. on_close follows.
void kx_conn_close(kx_conn *c);
// Immediate close: drops queued bytes.
void kx_conn_abort(kx_conn *c);
bool kx_conn_closing(const kx_conn *c);
// The TLS engine's last error text ("" if none); meaningful in on_ready with
// a failed status (e.g. why the server's certificate was refused).
const char *kx_conn_tls_error(const kx_conn *c);

void *kx_conn_user(const kx_conn *c);
void kx_conn_set_user(kx_conn *c, void *user, const kx_conn_callbacks *cb);
// No callbacks at all: for a connection its user lets go of while it closes
// (kx_conn_set_user(c, nullptr, &kx_conn_no_callbacks)).
extern const kx_conn_callbacks kx_conn_no_callbacks;
// Verified peer certificate subject (see kx_tls_peer_subject).
int kx_conn_peer_subject(const kx_conn *c, char *cn, size_t cncap, char *orgs, size_t orgcap);
// "ip:port" of the peer, for logs and X-Forwarded-For.
int kx_conn_peer_addr(const kx_conn *c, char *out, size_t cap);
