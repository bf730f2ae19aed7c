// kubexec/spdy.h - SPDY/3.1 session engine as Kubernetes (spdystream) speaks it.
//
// Sans-I/O: the session never touches a socket. Bytes read from the peer go
// in through kx_spdy_recv(); every frame the session wants written comes out,
// synchronously and in wire order, through callbacks.send. One session is one
// connection; it is not thread-safe and must be driven from one thread.
//
// What is implemented (protocol.md §2): frame parsing and writing, one zlib
// deflate and one inflate context per session primed with the SPDY/3
// dictionary (every block ends with Z_SYNC_FLUSH), stream bookkeeping
// (replied / local FIN / remote FIN), PING echo, RST_STREAM, GOAWAY.
// What is deliberately not: flow control (WINDOW_UPDATE and SETTINGS are
// accepted and ignored, never sent, send windows are infinite), priorities,
// server push, CREDENTIAL; the UNIDIRECTIONAL flag on a received SYN_STREAM
// is ignored (Kubernetes never sets it).
//
// Error convention: 0 or a negative errno. A negative return from
// kx_spdy_recv() is fatal for the connection.
#pragma once

#include <stddef.h>
#include <stdint.h>

// ---- Wire constants ---------------------------------------------------------

inline constexpr uint16_t KX_SPDY_VERSION = 3;
inline constexpr size_t KX_SPDY_FRAME_HEADER_LEN = 8;

enum kx_spdy_type : uint16_t {
    KX_SPDY_SYN_STREAM = 1,
    KX_SPDY_SYN_REPLY = 2,
    KX_SPDY_RST_STREAM = 3,
    KX_SPDY_SETTINGS = 4,
    KX_SPDY_PING = 6,
    KX_SPDY_GOAWAY = 7,
    KX_SPDY_HEADERS = 8,
    KX_SPDY_WINDOW_UPDATE = 9,
};

// Frame flags.
inline constexpr uint8_t KX_SPDY_FLAG_FIN = 0x01;
inline constexpr uint8_t KX_SPDY_FLAG_UNIDIRECTIONAL = 0x02;

// RST_STREAM status codes.
enum kx_spdy_rst_status : uint32_t {
    KX_SPDY_PROTOCOL_ERROR = 1,
    KX_SPDY_INVALID_STREAM = 2,
    KX_SPDY_REFUSED_STREAM = 3,
    KX_SPDY_UNSUPPORTED_VERSION = 4,
    KX_SPDY_CANCEL = 5,
    KX_SPDY_INTERNAL_ERROR = 6,
    KX_SPDY_FLOW_CONTROL_ERROR = 7,
    KX_SPDY_STREAM_IN_USE = 8,
    KX_SPDY_STREAM_ALREADY_CLOSED = 9,
};

// GOAWAY status codes.
inline constexpr uint32_t KX_SPDY_GOAWAY_OK = 0;
inline constexpr uint32_t KX_SPDY_GOAWAY_PROTOCOL_ERROR = 1;
inline constexpr uint32_t KX_SPDY_GOAWAY_INTERNAL_ERROR = 2;

// ---- Limits (every one has a defined answer when broken) ---------------------

// Largest control frame payload we accept; larger -> kx_spdy_recv -EMSGSIZE.
inline constexpr size_t KX_SPDY_MAX_CONTROL_PAYLOAD = 64 * 1024;
// Largest inflated (received) or uncompressed (sent) header block;
// larger -> -EMSGSIZE (fatal on receive, -EMSGSIZE returned on send).
inline constexpr size_t KX_SPDY_MAX_HEADER_BLOCK = 64 * 1024;
// Most name/value pairs in one block; more -> -EMSGSIZE.
inline constexpr size_t KX_SPDY_MAX_HEADERS = 100;
// Most streams alive at once (both directions together). A peer SYN_STREAM
// beyond it gets RST_STREAM REFUSED_STREAM; kx_spdy_open returns -EAGAIN.
// (Also REFUSED_STREAM when no memory is left for a stream slot: slots past
// the first 8 are allocated as needed.)
inline constexpr size_t KX_SPDY_MAX_STREAMS = 128;
// Largest DATA payload we write per frame (what Go's io.Copy uses).
inline constexpr size_t KX_SPDY_MAX_DATA_CHUNK = 32 * 1024;
// Largest stream id.
inline constexpr uint32_t KX_SPDY_MAX_STREAM_ID = 0x7fffffffu;

// The SPDY/3 header-compression dictionary (spdy_dict.cc): 1423 bytes,
// Adler-32 0xE3C6A7C2.
inline constexpr size_t KX_SPDY_DICT_LEN = 1423;
inline constexpr uint32_t KX_SPDY_DICT_ADLER = 0xE3C6A7C2u;
extern const uint8_t kx_spdy_dict[KX_SPDY_DICT_LEN];

// ---- Session ----------------------------------------------------------------

// One header. Names and values are NOT NUL-terminated. Several values for one
// name travel as one value joined by NUL bytes and are kept that way.
struct kx_spdy_nv {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

// All callbacks are called synchronously from inside a kx_spdy_* call. Every
// member except send may be null (the event is then dropped). Callbacks may
// call kx_spdy_reply/open/data/rst/ping/goaway on the same session, but must
// neither call kx_spdy_recv nor free the session.
struct kx_spdy_callbacks {
    // Output. Called synchronously from any kx_spdy_* call with ONE complete
    // frame given as two pieces (8-byte header, payload; payload may be null
    // when payload_len is 0). The callee must copy/queue it before returning.
    // A negative return aborts the call and is returned to the caller; the
    // session is then dead for output (header compression state may no longer
    // match the wire) and every later send returns -EPIPE.
    int (*send)(void *user, const uint8_t *hdr, size_t hdr_len, const uint8_t *payload, size_t payload_len);
    // Peer SYN_STREAM (already inflated); nv valid only during the call. When
    // fin is set, on_fin(id) follows right after.
    void (*on_stream)(void *user, uint32_t id, const kx_spdy_nv *nv, size_t n, bool fin);
    // Peer SYN_REPLY to a stream we opened (client role); same rules as on_stream.
    void (*on_reply)(void *user, uint32_t id, const kx_spdy_nv *nv, size_t n, bool fin);
    // DATA payload. Delivered in pieces as bytes arrive (never buffered to a
    // whole frame); p points into the caller's input of kx_spdy_recv and is
    // valid only during the call. Only for streams that exist and whose peer
    // side is still open; DATA for anything else is silently dropped.
    void (*on_data)(void *user, uint32_t id, const uint8_t *p, size_t n);
    // Peer half-closed the stream (FIN flag on DATA/SYN_STREAM/SYN_REPLY/HEADERS).
    void (*on_fin)(void *user, uint32_t id);
    // Peer reset a stream we know. The stream is already forgotten when this
    // runs (sending on it returns -EINVAL).
    void (*on_rst)(void *user, uint32_t id, uint32_t status);
    // Peer GOAWAY. All input after it is ignored.
    void (*on_goaway)(void *user, uint32_t last_good_id, uint32_t status);
};

struct kx_spdy_session; // opaque

// Creates a session. is_server selects stream-id parity (server opens even ids
// and echoes odd PINGs; client the reverse). cb is copied; user is passed to
// every callback. Returns null on ENOMEM, or when cb or cb->send is null.
// One allocation of ~2.6 KiB; zlib state is added on first use (deflate ~16 KiB,
// inflate ~39 KiB). Only a frame bigger than the inline buffers allocates
// (sized to it, freed once handled).
kx_spdy_session *kx_spdy_session_new(bool is_server, const kx_spdy_callbacks *cb, void *user);
// Frees the session and all stream state. Null is accepted. Sends nothing.
void kx_spdy_session_free(kx_spdy_session *s);

// Frees the header-compression state (~55 KiB with both zlib contexts) of a
// session that will carry no new stream: afterwards a received SYN_STREAM,
// SYN_REPLY or HEADERS frame is fatal (kx_spdy_recv returns -EPROTO) and
// kx_spdy_open/kx_spdy_reply return -EPIPE; DATA, RST_STREAM, PING and
// GOAWAY work as before. Used by remotecommand once its streams are set up.
void kx_spdy_drop_header_state(kx_spdy_session *s);

// Feeds bytes received from the peer; consumes all of them (partial frames are
// kept inside). Returns 0, or a fatal error after which the caller must drop
// the connection (later calls return the same error):
//   -EPROTO   the peer broke the protocol (unknown control type, bad version,
//             wrong fixed length, stream id 0 where one is required, corrupt
//             or not exactly consumed zlib block, malformed name/value block,
//             RST status 0, PING id 0)
//   -EMSGSIZE a control frame, inflated header block or header count over
//             its limit
//   -ENOMEM   no memory for a big frame's buffer or zlib's state
//   any negative value returned by callbacks.send (PING echo, RST_STREAM)
// After a GOAWAY was received, further bytes are ignored (0).
int kx_spdy_recv(kx_spdy_session *s, const uint8_t *data, size_t len);

// Sends SYN_REPLY for a stream the peer opened. nv may be null when n is 0
// (Kubernetes replies with an empty block). With fin, our side is closed.
// Returns 0, -EINVAL (unknown stream, not peer-opened, already replied, bad
// header name: empty, upper-case, or a hop-by-hop name), -EMSGSIZE (block too
// big / too many headers), -EPIPE (GOAWAY sent, or output dead), or a send error.
int kx_spdy_reply(kx_spdy_session *s, uint32_t id, const kx_spdy_nv *nv, size_t n, bool fin);

// Opens a stream with SYN_STREAM (priority 0, no UNIDIRECTIONAL): client ids
// are odd 1,3,5..; server ids even 2,4,6... *id_out receives the id. Returns 0,
// -EINVAL (bad header name), -EMSGSIZE, -EAGAIN (KX_SPDY_MAX_STREAMS streams
// open), -ENOMEM (no memory for more stream slots; nothing was sent), -ENOSPC
// (stream ids exhausted), -EPIPE (GOAWAY sent or received, or output dead), or
// a send error. The caller should wait for on_reply before
// sending DATA: spdystream drops DATA on streams it has not replied to.
int kx_spdy_open(kx_spdy_session *s, const kx_spdy_nv *nv, size_t n, bool fin, uint32_t *id_out);

// Sends len bytes as DATA frames of at most KX_SPDY_MAX_DATA_CHUNK; FIN goes
// on the last one. len==0 && fin -> one empty FIN frame; len==0 && !fin ->
// nothing. Returns 0, -EINVAL (unknown stream, this side already FIN'd, or a
// peer-opened stream not replied yet), -EPIPE, or a send error (frames before
// the failing one were already handed to send).
int kx_spdy_data(kx_spdy_session *s, uint32_t id, const uint8_t *p, size_t len, bool fin);

// Sends RST_STREAM and forgets the stream if we know it (any id is accepted,
// so unknown streams can be refused). Returns 0, -EINVAL (id 0 or above
// KX_SPDY_MAX_STREAM_ID, status 0), -EPIPE, or a send error.
int kx_spdy_rst(kx_spdy_session *s, uint32_t id, uint32_t status);

// Sends PING id (use our own parity so the echo is recognised). Returns 0,
// -EINVAL (id 0), -EPIPE, or a send error. Echoes are not reported.
int kx_spdy_ping(kx_spdy_session *s, uint32_t id);

// Sends GOAWAY(last-good = highest stream id received from the peer, or 0).
// It is the last frame: later sends return -EPIPE, and so does a second
// GOAWAY. Incoming frames are still processed (streams the peer opens after
// it are ignored without a reply). Returns 0, -EPIPE, or a send error.
int kx_spdy_goaway(kx_spdy_session *s, uint32_t status);

// Internal, exposed for tests and fuzzing: parses an UNCOMPRESSED SPDY/3
// name/value block (u32 count, then u32 length-prefixed names and values).
// Fills out[0..*n) with pointers into p (valid while p is). Names must be
// non-empty and contain no upper-case letters or NUL; the block must be
// consumed exactly. Returns 0, -EPROTO (malformed), or -EMSGSIZE (count > max).
int kx_spdy_parse_nv_block(const uint8_t *p, size_t len, kx_spdy_nv *out, size_t max, size_t *n);
