// kubexec/mux.h - many streams over one connection between the API server
// and a node ("kubexec-mux/1").
//
// Why: every exec, attach and port-forward used to cost the API server a TLS
// connection of its own to the node, and the node one more on its side: two
// OpenSSL connection objects (~10 KiB each with their ciphers and buffers),
// two sockets and a handshake per session. With the mux the API server keeps
// one connection per node, upgraded once (GET /mux, "Upgrade:
// kubexec-mux/1"), and each session is a stream on it that both ends treat as
// an ordinary kx_conn: the node's HTTP server parses the stream's request and
// upgrades it exactly as it does a TLS connection's.
//
// Wire format: frames of an 8-byte header and a payload.
//   u32 stream id (big-endian, never 0) | u8 type | u24 payload length
//   OPEN   (1) len 0   the API server opens stream `id` (ids increase)
//   DATA   (2) len 1..KX_MUX_MAX_DATA   stream bytes
//   FIN    (3) len 0   the sender will send no more DATA on the stream
//   RST    (4) len 0   the stream is abandoned in both directions
//   WINDOW (5) len 4   u32 increment (1..2^31-1) of the sender's window
// Flow control is per stream and direction: a sender may have at most
// KX_MUX_STREAM_WINDOW unacknowledged DATA bytes; the receiver returns credit
// (WINDOW) as its user takes the bytes (or at once for bytes it will never
// read: a closing stream's), so a paused stream stops its sender without
// stopping the others. A protocol error (bad type or length, DATA over
// the window, an OPEN not above the last) ends the whole connection.
//
// Limits: a DATA payload is at most KX_MUX_MAX_DATA bytes (64 KiB with its
// header: a bulk stream's 64 KiB read reaches the other end's user in one
// piece; 16 KiB frames cost the node 10 % more CPU on stdin, one call into
// the WebSocket engine and one pipe write per frame); at most KX_MUX_MAX_STREAMS
// streams are open on one connection (an OPEN beyond it is answered with RST).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "kubexec/conn.h"

#define KX_MUX_HEADER 8
#define KX_MUX_MAX_DATA (65536 - KX_MUX_HEADER)
#define KX_MUX_STREAM_WINDOW (256 * 1024)
#define KX_MUX_MAX_STREAMS 65536
#define KX_MUX_PROTOCOL "kubexec-mux/1"

enum kx_mux_type : uint8_t {
    KX_MUX_OPEN = 1,
    KX_MUX_DATA = 2,
    KX_MUX_FIN = 3,
    KX_MUX_RST = 4,
    KX_MUX_WINDOW = 5,
};

// ---- the frame codec (sans-I/O) -------------------------------------------

// Writes a frame header into out[0..KX_MUX_HEADER).
void kx_mux_put_header(uint8_t *out, uint32_t id, kx_mux_type type, uint32_t len);

struct kx_mux_parse_cb {
    // A piece of a DATA frame's payload (a frame may arrive in several
    // pieces; `end` is true on its last one). Return <0 to stop parsing.
    int (*on_data)(void *user, uint32_t id, const uint8_t *p, size_t n, bool end);
    // A whole OPEN / FIN / RST frame (value 0) or WINDOW frame (value = the
    // increment, already checked to be 1..2^31-1). Return <0 to stop.
    int (*on_ctrl)(void *user, kx_mux_type type, uint32_t id, uint32_t value);
};

struct kx_mux_parser {
    uint8_t hdr[KX_MUX_HEADER];
    uint8_t hlen;      // header bytes held
    uint8_t type;      // current frame's type (header complete)
    uint8_t val[4];    // a WINDOW frame's payload so far
    uint8_t vlen;
    uint32_t id;
    uint32_t left;     // payload bytes still to come
    int err;           // sticky: <0 once a frame was malformed or a callback failed
};

void kx_mux_parser_init(kx_mux_parser *p);
// Consumes all of d[0..n) (frames may straddle calls). Returns 0, -EPROTO
// for a malformed frame (unknown type, id 0, bad length, WINDOW of 0 or over
// 2^31-1), or a callback's negative return; every later call returns the
// same error.
int kx_mux_parse(kx_mux_parser *p, const uint8_t *d, size_t n, const kx_mux_parse_cb *cb,
                 void *user);

// ---- streams over a kx_conn ----------------------------------------------

struct kx_mux;

struct kx_mux_callbacks {
    // Accepting side: a stream was opened; `child` is a ready kx_conn whose
    // callbacks the user installs with kx_conn_set_user before returning
    // (until then bytes for it are held). Null on the opening side.
    void (*on_stream)(kx_mux *m, kx_conn *child);
    // The connection is gone (peer closed, error, or kx_mux_close); every
    // stream has been ended (on_end with a negative status unless it had
    // finished) and closed. The kx_mux is freed right after this returns.
    void (*on_close)(kx_mux *m, int status);
};

// Takes over `parent` (ready, its upgrade done: bytes after the 101 are
// frames) and replaces its callbacks. `opener`: this side opens streams
// (the API server). Bytes already read past the upgrade go in `early`.
// Returns null (parent untouched) when out of memory.
kx_mux *kx_mux_start(kx_conn *parent, bool opener, const kx_mux_callbacks *cb, void *user,
                     const uint8_t *early, size_t early_len);
// Opening side: a new stream, ready at once (no round trip: the OPEN frame
// goes first, the request bytes right behind it). Null when the mux is
// closing, the stream limit is reached, or out of memory.
kx_conn *kx_mux_open(kx_mux *m, const kx_conn_callbacks *cb, void *user);
// Graceful close of the whole connection; streams still open are reset.
void kx_mux_close(kx_mux *m);
bool kx_mux_closing(const kx_mux *m);
size_t kx_mux_streams(const kx_mux *m);
void *kx_mux_user(const kx_mux *m);
// Whether c is a stream of some mux (a virtual kx_conn).
bool kx_conn_is_stream(const kx_conn *c);
