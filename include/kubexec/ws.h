// kubexec/ws.h - WebSocket (RFC 6455): the opening handshake checks (server
// role), the client's key and accept check, and a framing session for either
// role (protocol.md §4.2, §4.3).
//
// Sans-I/O like kubexec/spdy.h: bytes read from the socket go into
// kx_ws_recv(), frames for the socket come out of callbacks.send. One session
// per upgraded connection; single-threaded. The library never logs.
//
// Frames are parsed by libwslay's frame layer (wslay_frame_recv, which also
// unmasks); message assembly, the size limit, the control-frame rules and the
// close handshake are ours so that every broken input has a defined close
// code. No extensions are negotiated (permessage-deflate offers are ignored),
// so any RSV bit is a protocol error.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "kubexec/http1.h"

// Opcodes (RFC 6455 §5.2).
enum kx_ws_opcode {
    KX_WS_CONT = 0x0,
    KX_WS_TEXT = 0x1,
    KX_WS_BINARY = 0x2,
    KX_WS_CLOSE = 0x8,
    KX_WS_PING = 0x9,
    KX_WS_PONG = 0xa,
};

// Close codes (RFC 6455 §7.4.1) we send or report.
enum kx_ws_close_code {
    KX_WS_NORMAL = 1000,
    KX_WS_GOING_AWAY = 1001,
    KX_WS_PROTOCOL_ERROR = 1002,
    KX_WS_NO_STATUS = 1005,       // peer's close had no code (never sent)
    KX_WS_ABNORMAL = 1006,        // no close frame at all (never sent)
    KX_WS_INVALID_DATA = 1007,    // bad UTF-8 in a text message / close reason
    KX_WS_POLICY = 1008,
    KX_WS_TOO_BIG = 1009,
    KX_WS_INTERNAL = 1011,
};

// Default bound on one reassembled data message (all its fragments).
inline constexpr size_t KX_WS_MAX_MESSAGE = 1024 * 1024;
// Most bytes kx_ws_send accepts as `prefix` (a channel byte, a SPDY frame
// header for the port-forward tunnel).
inline constexpr size_t KX_WS_MAX_PREFIX = 16;
// Length of a Sec-WebSocket-Accept value (base64 of 20 bytes), without NUL.
inline constexpr size_t KX_WS_ACCEPT_LEN = 28;

// ---- Handshake (server role) -------------------------------------------------

// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) into out
// (NUL-terminated). key is used as sent (RFC 6455 §4.2.2 item 5.4).
// Returns 0, or -EINVAL for a null/empty key.
int kx_ws_accept_key(const char *key, char out[KX_WS_ACCEPT_LEN + 1]);

// Validates a client's opening handshake and computes the Accept value.
// Returns 0, or (with the answer the caller should give):
//   -EOPNOTSUPP       method is not GET                         -> 405
//   -EINVAL           no "Upgrade: websocket" or no "upgrade" token in
//                     Connection                                 -> 400
//   -EPROTONOSUPPORT  Sec-WebSocket-Version is not exactly 13    -> 400 with
//                     "Sec-WebSocket-Version: 13"
//   -EBADMSG          Sec-WebSocket-Key missing, repeated, or not the base64
//                     of 16 bytes                                -> 400
int kx_ws_handshake_check(const kx_http_head *h, char accept[KX_WS_ACCEPT_LEN + 1]);

// Subprotocol choice: `offers` are the raw values of every
// Sec-WebSocket-Protocol line (each a comma-separated list; spaces and tabs
// around tokens are trimmed; null entries skipped). Returns the index in
// `supported` of the FIRST client-offered token that is in `supported`
// (exact, case-sensitive, as RFC 6455 tokens are), -ENOENT if none is,
// -ENODATA if the client offered no token at all.
int kx_ws_choose_protocol(const char *const *offers, size_t n, const char *const *supported,
                          size_t nsupported);

// ---- Handshake (client role) ---------------------------------------------------

// Length of a Sec-WebSocket-Key value (base64 of 16 bytes), without NUL.
inline constexpr size_t KX_WS_KEY_LEN = 24;
// A fresh random Sec-WebSocket-Key (NUL-terminated). 0 or -EIO.
int kx_ws_client_key(char out[KX_WS_KEY_LEN + 1]);
// Checks a server's 101 answer to our upgrade: "Upgrade: websocket",
// "upgrade" in Connection, and Sec-WebSocket-Accept matching key. 0, or
// -EPROTO for any mismatch (the connection must not be used).
int kx_ws_client_check(const kx_http_head *h, const char *key);

// ---- Framing session ---------------------------------------------------------

// Called synchronously from kx_ws_* calls; they must not call kx_ws_recv or
// kx_ws_free, but may call the send functions.
struct kx_ws_callbacks {
    // Bytes for the socket: a frame header and its payload (either may be
    // empty). Return 0 or <0 (fatal, passed back to the caller). Must take
    // all bytes (queue them). Required.
    int (*send)(void *user, const uint8_t *hdr, size_t hl, const uint8_t *payload, size_t pl);
    // One complete data message (fragments joined), opcode KX_WS_TEXT or
    // KX_WS_BINARY; text is valid UTF-8. p is valid only during the call
    // (null when n == 0). Never called after the peer's close or ours.
    void (*on_message)(void *user, int opcode, const uint8_t *p, size_t n);
    // The peer's close frame arrived; code is KX_WS_NO_STATUS when it had
    // none. If we had not sent a close yet, the session has already answered
    // with one (echoing the code, or empty). Fires once. May be null.
    void (*on_close)(void *user, uint16_t code);
};

struct kx_ws_session;

// max_message: bound on one reassembled data message (0 = KX_WS_MAX_MESSAGE).
// Returns null on ENOMEM or null cb/cb->send. cb is copied.
kx_ws_session *kx_ws_new(const kx_ws_callbacks *cb, void *user, size_t max_message);
// Client role: every frame we send is masked with a fresh random key (the
// payload is copied once into a session buffer for that), and a masked frame
// from the peer is a protocol error (1002). Otherwise as kx_ws_new.
kx_ws_session *kx_ws_new_client(const kx_ws_callbacks *cb, void *user, size_t max_message);
void kx_ws_free(kx_ws_session *s);

// Bytes read from the socket after the 101, in any split. Pings are answered
// at once with a pong carrying the same payload; pongs are ignored.
// Returns 0, or <0 after which the connection should be dropped; in each case
// a close frame with the given code was sent first:
//   -EPROTO     protocol error (unmasked frame, RSV bits, reserved opcode,
//               control frame fragmented or > 125 bytes, continuation with no
//               message, data frame inside a fragmented message, a 1-byte or
//               invalid-code close payload, bad 64-bit length)       1002
//   -EILSEQ     text message or close reason that is not UTF-8       1007
//   -EMSGSIZE   data message over max_message                        1009
//   -ENOMEM     out of memory                                        1011
//   or a send error (nothing more can be sent).
// Bytes after the peer's close frame, or after an error, are discarded (0).
// Memory: between frames a session holds no read-ahead buffer, and a
// delivered message's buffer is kept only up to 4 KiB (see ws.cc).
int kx_ws_recv(kx_ws_session *s, const uint8_t *p, size_t n);

// One unfragmented, unmasked data frame (KX_WS_TEXT or KX_WS_BINARY) whose
// payload is prefix followed by p (prefix lets the channel byte travel
// without a copy of the data; either may be empty). Returns 0, -EINVAL for
// another opcode or prefix_len > KX_WS_MAX_PREFIX, -EPIPE once our close
// was sent, or a send error.
int kx_ws_send(kx_ws_session *s, int opcode, const uint8_t *prefix, size_t prefix_len,
               const uint8_t *p, size_t n);
// Ping with up to 125 bytes of payload (-EINVAL beyond). -EPIPE after close.
int kx_ws_ping(kx_ws_session *s, const uint8_t *p, size_t n);
// Sends our close frame with code (1000..4999, not 1004-1006/1015; else
// -EINVAL) and a reason of up to 123 bytes (cut). Idempotent: 0 and nothing
// sent when a close was already sent. Afterwards the data-sending calls
// return -EPIPE and incoming data messages are dropped; the peer's close is
// still reported through on_close.
int kx_ws_close(kx_ws_session *s, uint16_t code, const char *reason);

bool kx_ws_close_sent(const kx_ws_session *s);
bool kx_ws_close_received(const kx_ws_session *s);
