// conn_impl.h - kx_conn's insides, shared by conn.cc (TLS connections on
// TCP) and mux.cc (streams of a kubexec-mux connection, which are kx_conns
// with no socket of their own). Not installed; nothing else includes it.
#pragma once

#include <stddef.h>
#include <uv.h>

#include "kubexec/conn.h"

struct kx_mux_stream;

enum {
    F_READING = 1 << 0,   // uv_read_start active
    F_PAUSED = 1 << 1,    // user asked us not to deliver data
    F_CLOSING = 1 << 2,   // kx_conn_close/abort called
    F_READY = 1 << 3,     // handshake done and reported
    F_ENDED = 1 << 4,     // on_end delivered
    F_HIGH = 1 << 5,      // write queue went above the high watermark
    F_CLIENT = 1 << 6,
    F_CONNECTED = 1 << 7, // TCP connected (client) / accepted (server)
    F_HANDLES = 1 << 8,   // uv_close issued
    F_RESOLVING = 1 << 9, // uv_getaddrinfo pending: it owns the last word
    F_STREAM = 1 << 10,   // a mux stream: no socket, no TLS (see mux.cc)
};

struct kx_conn {
    kx_tls *tls;              // null for a stream
    kx_conn_callbacks cb;
    void *user;
    unsigned flags;
    int open_handles;
    uv_timer_t close_timer;   // bounds the graceful close
    uv_timer_t resume_timer;  // delivers buffered plaintext after a resume
    kx_mux_stream *stream;    // F_STREAM: the stream's state (mux.cc)
    // TLS connections only: a stream's allocation ends before these (see
    // kx__conn_new_stream), which saves ~0.8 KiB per stream on both daemons.
    // Nothing touches them on a stream: conn.cc hands every call on a stream
    // to mux.cc before it would.
    int port;
    uv_tcp_t tcp;
    uv_getaddrinfo_t gai;
    uv_connect_t connect_req;
    char verify_host[256];
};

// Where a stream's allocation ends (its own state follows, aligned).
#define KX__CONN_STREAM_SIZE ((offsetof(kx_conn, port) + 15) & ~(size_t)15)

// For mux.cc. A stream's kx_conn: resume_timer and close_timer initialized
// (open_handles 2), no TCP handle, no TLS engine; freed like any kx_conn
// once its handles closed (on_close first). The block holds the kx_conn's
// fields up to KX__CONN_STREAM_SIZE, then `extra` zeroed bytes for the
// stream's own state.
kx_conn *kx__conn_new_stream(uv_loop_t *loop, size_t extra, const kx_conn_callbacks *cb,
                             void *user);
// on_end once (unless closing), as for a TLS connection.
void kx__conn_end(kx_conn *c, int status);
// Starts closing the handles; on_close and the free follow from the loop.
void kx__conn_close_handles(kx_conn *c);
// kx_conn_write2 without the send (a small `a`, at most 256 bytes, shares a
// TLS record with the start of `b`): mux.cc writes many frames (and WINDOW
// updates while parsing) and sends them with one kx__conn_flush -- a send
// per 16 KiB frame cost the API server 60 % more CPU on stdin.
// 0 or <0 (closing, engine error).
int kx__conn_write2_raw(kx_conn *c, const uint8_t *a, size_t an, const uint8_t *b, size_t bn);
void kx__conn_flush(kx_conn *c);

// Implemented by mux.cc: what the public kx_conn calls do for a stream.
int kx__stream_write2(kx_conn *c, const uint8_t *a, size_t an, const uint8_t *b, size_t bn);
size_t kx__stream_queued(const kx_conn *c);
void kx__stream_pause(kx_conn *c);
void kx__stream_resume(kx_conn *c);
void kx__stream_close(kx_conn *c);
void kx__stream_abort(kx_conn *c);
// Called when the stream's handles start closing: the stream leaves its mux.
void kx__stream_detach(kx_conn *c);
// The connection the stream rides on (for peer identity and address).
const kx_conn *kx__stream_parent(const kx_conn *c);


