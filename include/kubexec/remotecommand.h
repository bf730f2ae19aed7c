// kubexec/remotecommand.h - server side of channel.k8s.io (exec/attach) over
// SPDY, i.e. what the node agent speaks after answering 101 (protocol.md §3).
//
// Sans-I/O on top of kx_spdy_session: bytes from the socket go into
// kx_rc_recv(), frames for the socket come out of callbacks.send. One session
// per upgraded connection; single-threaded. The library never logs.
#pragma once

#include <stddef.h>
#include <stdint.h>

enum kx_rc_proto { KX_RC_V1 = 1, KX_RC_V2, KX_RC_V3, KX_RC_V4, KX_RC_V5 };

// Bound on stdin bytes that arrive before on_ready (they are held and replayed
// right after on_ready); more -> kx_rc_recv returns -EMSGSIZE.
inline constexpr size_t KX_RC_MAX_EARLY_STDIN = 64 * 1024;
// Bound on one resize JSON object; a longer one is discarded up to the next
// newline.
inline constexpr size_t KX_RC_MAX_RESIZE_JSON = 4096;
// Size of the buffer kx_rc_finish uses for the status payload; kx_rc_finish
// cuts a long errmsg (at any byte, not at a UTF-8 boundary) until it fits.
inline constexpr size_t KX_RC_MAX_STATUS = 4096;

// The resize stream's parser (both transports): a stream of JSON objects
// {"Width":W,"Height":H} (keys case-insensitive, as Go decodes them), newline
// separated, split or merged across frames/messages in any way. Malformed
// objects, zero sizes and values over 65535 are ignored; an object longer
// than KX_RC_MAX_RESIZE_JSON is dropped up to the next newline. Embeddable;
// zero-initialise it, release it with kx_rc_resize_free.
// Memory: a whole object in one feed is parsed in place; only the piece of
// an object split across feeds is kept, in a heap buffer freed as soon as
// the object is complete, so an idle session holds no buffer (non-tty
// sessions never had a use for one). When that buffer cannot be allocated
// the partial object is dropped up to the next newline, as if too long.
struct kx_rc_resize_parser {
    bool skip;                          // dropping bytes up to the next '\n'
    size_t len;                         // bytes held in buf
    char *buf;                          // null or KX_RC_MAX_RESIZE_JSON bytes
};
typedef void (*kx_rc_resize_cb)(void *user, uint16_t cols, uint16_t rows);
// Feeds bytes; calls cb (may be null) once per complete valid object.
void kx_rc_resize_feed(kx_rc_resize_parser *r, const uint8_t *p, size_t n, kx_rc_resize_cb cb,
                       void *user);
// Frees a held partial object (the parser stays usable, zeroed).
void kx_rc_resize_free(kx_rc_resize_parser *r);

// Negotiation (protocol.md §2.1): `offers` are the raw values of every
// X-Stream-Protocol-Version header line (each may hold a comma-separated
// list; spaces and tabs around tokens are trimmed; null entries are skipped).
// Chooses the first protocol in the CLIENT's order that we support: v4, v3,
// v2 and channel.k8s.io. v5 is never picked over SPDY (skipped, so kubectl
// gets v4 as from a real kubelet). Returns the kx_rc_proto, -ENOENT if none
// in common, -EINVAL if there is no non-empty token at all.
int kx_rc_negotiate(const char *const *offers, size_t n);
// "channel.k8s.io", "v2.channel.k8s.io" ... "v5.channel.k8s.io"; null for
// anything else. Static storage.
const char *kx_rc_proto_name(int proto);

// From the kubelet query (input/output/error/tty == "1"). With tty, err is
// forced off by kx_rc_new. proto is a kx_rc_proto.
struct kx_rc_opts {
    bool in, out, err, tty;
    int proto;
};

// Called synchronously from kx_rc_* calls; must not call kx_rc_recv or
// kx_rc_free. They may call kx_rc_stdout/stderr/close_stdin/finish.
struct kx_rc_callbacks {
    // Bytes for the socket (same contract as kx_spdy_callbacks.send). Required.
    int (*send)(void *user, const uint8_t *hdr, size_t hl, const uint8_t *payload, size_t pl);
    // All expected streams exist and were replied: start the process now.
    // Fires at most once.
    void (*on_ready)(void *user);
    // stdin bytes, in order. Never called before on_ready: earlier bytes are
    // held (up to KX_RC_MAX_EARLY_STDIN) and delivered right after on_ready.
    // p is valid only during the call.
    void (*on_stdin)(void *user, const uint8_t *p, size_t n);
    // FIN or RST on the stdin stream; once, after all stdin bytes, never
    // before on_ready (deferred like the data).
    void (*on_stdin_eof)(void *user);
    // From the {"Width":W,"Height":H} JSON stream (keys case-insensitive,
    // objects split/merged across frames, newline separated). Malformed
    // objects, values outside 0..65535, and sizes with a zero are ignored.
    void (*on_resize)(void *user, uint16_t cols, uint16_t rows);
    // Peer sent GOAWAY (client is leaving). Afterwards stdout/stderr writes
    // are dropped and kx_rc_finish sends only our GOAWAY.
    void (*on_goaway)(void *user);
};

struct kx_rc_session;

// Creates a session for one upgraded connection; o and cb are copied.
// expected streams = 1 (error) + in + out + err + (tty && proto >= V3).
// Returns null on ENOMEM, null cb/cb->send, or proto outside V1..V5.
kx_rc_session *kx_rc_new(const kx_rc_opts *o, const kx_rc_callbacks *cb, void *user);
// Frees everything; sends nothing (call kx_rc_finish first for a clean end).
void kx_rc_free(kx_rc_session *s);

// Bytes read from the socket after the 101. Every SYN_STREAM is replied at
// once with an empty header block and filed by its `streamtype` header
// (error, stdin, stdout, stderr, resize). Types that are unknown or not
// expected under the opts are replied and then ignored (not counted); a second
// stream of an expected type is reset with CANCEL. Returns 0, or <0 fatal
// (drop the connection): the kx_spdy_recv errors, -EMSGSIZE for too much
// early stdin, or a send error.
int kx_rc_recv(kx_rc_session *s, const uint8_t *p, size_t n);

// Process output. No-op (0) when that stream does not exist, was reset by the
// client, was already FIN'd, or after finish/peer GOAWAY; kx_rc_stderr is
// also a no-op with tty. Split into <=32 KiB DATA frames. Returns 0 or a send
// error.
int kx_rc_stdout(kx_rc_session *s, const uint8_t *p, size_t n);
int kx_rc_stderr(kx_rc_session *s, const uint8_t *p, size_t n);
// Server FIN on stdin (e.g. stdinOnce); kubectl then half-closes its side
// too. No-op (0) when there is no open stdin stream. Returns 0 or a send error.
int kx_rc_close_stdin(kx_rc_session *s);

// Ends the session as protocol.md §3.5 recommends: FIN stdout and stderr,
// then the status on the error stream, then FIN the error stream, then
// RST_STREAM CANCEL on stdin/resize if still open (what spdystream's Close
// does), then GOAWAY.
// Status: v4/v5 metav1.Status JSON (kx_rc_status_json). v1-v3: nothing on
// success; plain text on failure, "command terminated with non-zero exit
// code: exit status N" or errmsg.
// After a peer GOAWAY only our GOAWAY is sent. Idempotent: later calls
// return 0 and send nothing. Returns 0, -EINVAL (exit_code outside 0..255
// without errmsg; nothing sent), or the first send error.
int kx_rc_finish(kx_rc_session *s, int exit_code, const char *errmsg);
bool kx_rc_ready(const kx_rc_session *s);

// Pure helper used by kx_rc_finish, exposed for tests and the WebSocket
// transport: writes the v4 status JSON (NUL-terminated) into out and returns
// its length, -EMSGSIZE if it does not fit, -EINVAL for exit_code outside
// 0..255 when errmsg is null. errmsg (non-null) wins over exit_code:
//   exit 0:  {"metadata":{},"status":"Success"}
//   exit N:  {"metadata":{},"status":"Failure","message":"command terminated with
//            non-zero exit code: exit status N","reason":"NonZeroExitCode",
//            "details":{"causes":[{"reason":"ExitCode","message":"N"}]}}
//   errmsg:  {"metadata":{},"status":"Failure","message":"Internal error occurred:
//            E","reason":"InternalError","details":{"causes":[{"message":"E"}]},
//            "code":500}
int kx_rc_status_json(char *out, size_t cap, int exit_code, const char *errmsg);
