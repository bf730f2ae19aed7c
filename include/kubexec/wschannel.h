// kubexec/wschannel.h - server side of channel.k8s.io (exec/attach) over a
// WebSocket (protocol.md §4.1, §4.3): the node agent's side after answering
// the WebSocket 101.
//
// Sans-I/O on top of kx_ws_session, with the same callback shape as kx_rc
// (kubexec/remotecommand.h) so rcx can put either behind one interface.
// Messages are [channel][payload]: 0 stdin, 1 stdout, 2 stderr, 3 status,
// 4 resize, and (v5 only) 255 = CLOSE signal [255, channel]. The base64
// variants send text messages whose first byte is '0' + channel and whose
// rest is standard base64 (padded) of the payload, both ways.
// Single-threaded; the library never logs.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "kubexec/remotecommand.h"

// Bound on one client message (reassembled); more -> close 1009.
inline constexpr size_t KX_WSCH_MAX_MESSAGE = 1024 * 1024;
// Output is split into messages of at most this many payload bytes (before
// base64), like the 32 KiB SPDY DATA frames; kubectl reads with 32 KiB.
inline constexpr size_t KX_WSCH_MAX_OUT = 32 * 1024;

// A negotiated subprotocol: channel.k8s.io version (kx_rc_proto) and framing.
struct kx_wsch_proto {
    int version;     // KX_RC_V1 .. KX_RC_V5
    bool base64;     // text frames, ASCII channel digit, base64 payload
};

// Subprotocol choice (protocol.md §4.1/§4.2): `offers` are the raw values of
// every Sec-WebSocket-Protocol line (comma-separated, trimmed). Picks the
// first token in the CLIENT's order among: v5.channel.k8s.io,
// v4.channel.k8s.io, v4.base64.channel.k8s.io, v3.channel.k8s.io,
// v2.channel.k8s.io, channel.k8s.io, base64.channel.k8s.io.
// Returns 0 and fills *out and *name (static storage, the exact token to echo
// in the 101); -ENOENT when the client offered tokens but none of ours;
// -ENODATA when it offered none (the kubelet then speaks channel.k8s.io with
// no Sec-WebSocket-Protocol in its 101; *out is set to that, *name to null).
int kx_wsch_negotiate(const char *const *offers, size_t n, kx_wsch_proto *out,
                      const char **name);
// Every token we accept, comma-separated (for error answers). Static storage.
const char *kx_wsch_supported(void);

// From the kubelet query (input/output/error/tty == "1"); with tty, err is
// forced off by kx_wsch_new.
struct kx_wsch_opts {
    bool in, out, err, tty;
    kx_wsch_proto proto;
};

// Called synchronously from kx_wsch_* calls; they must not call kx_wsch_recv
// or kx_wsch_free, but may call kx_wsch_stdout/stderr/finish.
struct kx_wsch_callbacks {
    // Bytes for the socket (same contract as kx_ws_callbacks.send). Required.
    int (*send)(void *user, const uint8_t *hdr, size_t hl, const uint8_t *payload, size_t pl);
    // Fired by kx_wsch_start (a WebSocket has no per-stream setup): start the
    // process now. Once.
    void (*on_ready)(void *user);
    // stdin bytes (channel 0), in order; only when opts.in. Never before
    // on_ready: earlier bytes are held (up to KX_RC_MAX_EARLY_STDIN) and
    // delivered right after it. p is valid only during the call.
    void (*on_stdin)(void *user, const uint8_t *p, size_t n);
    // v5 CLOSE signal [255, 0]; once, after all stdin, never before on_ready.
    void (*on_stdin_eof)(void *user);
    // Channel 4 JSON stream, parsed as kx_rc does ({"Width":W,"Height":H},
    // objects split/merged across messages, newline separated; bad objects,
    // values outside 0..65535 and zero sizes are ignored). Only with tty.
    void (*on_resize)(void *user, uint16_t cols, uint16_t rows);
    // The client's close frame arrived (it is leaving, or it answers our
    // close after kx_wsch_finish). Once. Afterwards output is dropped.
    void (*on_goaway)(void *user);
};

struct kx_wsch_session;

// o and cb are copied. Returns null on ENOMEM, null cb/cb->send, or a
// version outside V1..V5.
kx_wsch_session *kx_wsch_new(const kx_wsch_opts *o, const kx_wsch_callbacks *cb, void *user);
void kx_wsch_free(kx_wsch_session *s);

// Fires on_ready, then replays held stdin (and EOF). Idempotent.
void kx_wsch_start(kx_wsch_session *s);

// Bytes read from the socket after the 101. Returns 0, or <0 (drop the
// connection; a close frame was sent where possible): the kx_ws_recv errors,
// -EPROTO for a v5 CLOSE signal whose length is not 2 or whose channel is
// not 0..4 (close 1002), -EILSEQ for a base64 message that does not decode or
// has no channel digit (close 1007), -EMSGSIZE for more than
// KX_RC_MAX_EARLY_STDIN held before start (close 1008), or a send error.
// Empty messages and messages on channels that are not in use are ignored.
int kx_wsch_recv(kx_wsch_session *s, const uint8_t *p, size_t n);

// Process output on channel 1 / 2, in messages of <= KX_WSCH_MAX_OUT bytes.
// No-op (0) when that channel was not requested (stderr with tty), after
// finish, or after the client's close. Returns 0 or a send error.
int kx_wsch_stdout(kx_wsch_session *s, const uint8_t *p, size_t n);
int kx_wsch_stderr(kx_wsch_session *s, const uint8_t *p, size_t n);

// Ends the session: the status on channel 3 (v4/v5: kx_rc_status_json, a
// long errmsg cut until it fits; v1-v3: nothing on success, else the text
// "command terminated with non-zero exit code: exit status N" or errmsg),
// then a close frame with code 1000. After the client's close only the close
// frame is sent (if not already). Idempotent. Returns 0, -EINVAL (exit_code
// outside 0..255 without errmsg; nothing sent), or the first send error.
int kx_wsch_finish(kx_wsch_session *s, int exit_code, const char *errmsg);
// Close frame with `code` (e.g. 1001 at shutdown) and no status. Idempotent.
int kx_wsch_close(kx_wsch_session *s, uint16_t code);

// Both close frames exchanged: the TCP connection can go.
bool kx_wsch_closed(const kx_wsch_session *s);
