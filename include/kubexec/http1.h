// kubexec/http1.h - sans-I/O HTTP/1.1 message parsing (requests and
// responses) plus the small URL, query and formatting helpers every HTTP
// endpoint needs.
//
// The parser wraps the system http-parser (2.9); src/lib/http1.cc is the only
// file that sees <http_parser.h>, so swapping it for llhttp touches one file.
//
// Model: the caller owns a kx_http_parser (embeddable, no allocation), feeds
// it bytes as they arrive and gets callbacks: on_head once the request or
// status line and headers are complete, on_body for de-chunked body bytes,
// on_complete when the message ends. Keep-alive and pipelining work: after
// on_complete the same parser parses the next message, even within one feed.
//
// Upgrade handoff: a request with "Connection: upgrade" and an Upgrade header
// (or a CONNECT), and any 101 response, ends at its head. kx_http_feed then
// returns exactly the number of bytes up to and including the blank line; the
// rest of the buffer belongs to the next protocol (SPDY, WebSocket) and the
// parser consumes nothing more. An upgrade message that announces a body
// (Content-Length > 0 or chunked) is refused with -EPROTO: no client we
// serve sends one, and guessing where the new protocol starts is how request
// smuggling happens.
//
// Limits: the head (request/status line plus headers) is at most
// KX_HTTP_MAX_HEAD bytes with at most KX_HTTP_MAX_HEADERS header lines, else
// -EMSGSIZE. (Counted as sent with single spaces: extra optional whitespace
// is not counted; http-parser caps the raw head at 80 KiB.) Body size is not limited here: the caller sees every on_body
// call and decides.
#pragma once

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define KX_HTTP_MAX_HEAD 16384 // bytes of request/response head (line + headers)
#define KX_HTTP_MAX_HEADERS 64

enum kx_http_type { KX_HTTP_REQUEST, KX_HTTP_RESPONSE };

// One header line. Both strings are NUL-terminated and point into the owning
// kx_http_head's storage. Names keep the case they were sent in.
struct kx_http_header {
    const char *name;
    const char *value;
};

// A parsed head. Owns its strings (storage), so it can be copied by value
// only if the pointers are not used afterwards; keep it where it is.
struct kx_http_head {
    char method[16];   // requests: "GET", "POST", ...; "" for responses
    const char *url;   // requests: the request target as sent; "" for responses
    int status;        // responses; 0 for requests
    int http_major, http_minor;
    kx_http_header headers[KX_HTTP_MAX_HEADERS]; // in order, repeats kept as separate entries
    size_t nheaders;
    bool upgrade;      // requests: Connection: upgrade + Upgrade present, or CONNECT;
                       // responses: status 101. The message ends at the head.
    bool keep_alive;   // the connection may carry another message after this one
    int64_t content_length; // -1 if absent
    bool chunked;      // Transfer-Encoding: chunked
    char storage[KX_HTTP_MAX_HEAD + 256]; // owns the strings above
};

struct kx_http_callbacks {
    // Head complete (h stays valid until the next message's head completes).
    // Return 0 to go on, >0 to pause parsing right after the head (kx_http_feed
    // then returns the bytes consumed so far, head included; the next feed
    // resumes with the body), <0 to fail (kx_http_feed returns that value).
    int (*on_head)(void *user, const kx_http_head *h);
    // Body bytes, already de-chunked. 0 to go on, <0 to fail. May be null.
    int (*on_body)(void *user, const uint8_t *p, size_t n);
    // Message complete (keep-alive: the parser is ready for the next message).
    // Also called for an upgrade message, right after on_head (whose >0
    // "pause" changes nothing there: the handoff stops parsing anyway).
    // 0 or <0. May be null.
    int (*on_complete)(void *user);
};

// Internal phases of kx_http_parser (not for callers).
enum kx_http_phase {
    KX_HTTP_PH_IDLE,     // between messages
    KX_HTTP_PH_HEAD,     // inside a head
    KX_HTTP_PH_BODY,     // head delivered, body or end pending
    KX_HTTP_PH_UPGRADED, // handed off; consumes nothing more
    KX_HTTP_PH_FAILED,   // sticky error in err
};

// Embeddable parser state. Fields are private to http1.cc; the struct is
// public only so callers can embed it without an allocation. About 35 KiB.
struct kx_http_parser {
    alignas(8) unsigned char hp[64]; // the http_parser, opaque outside http1.cc
    const kx_http_callbacks *cb;
    void *user;
    kx_http_type type;
    kx_http_phase phase;
    int err;            // sticky error once phase == FAILED
    bool head_request;  // responses: the request was HEAD (no body follows)
    bool resume_lf;     // paused after the head: the head's final LF is owed to http-parser
    bool in_cb;         // re-entrancy guard
    bool closed;        // a message without keep-alive completed: no more messages
    int last;           // piece being built: 0 none, 1 header name, 2 value, 3 url
    size_t used;        // bytes used in scratch
    size_t head_bytes;  // size of the head so far (see http1.cc)
    uint32_t url_off;
    uint32_t name_off[KX_HTTP_MAX_HEADERS];
    uint32_t value_off[KX_HTTP_MAX_HEADERS];
    size_t nbuild;
    char scratch[KX_HTTP_MAX_HEAD + 256]; // the head being built
    kx_http_head head;  // the last completed head
};

// Initializes (or resets) a parser. cb must outlive the parser.
void kx_http_parser_init(kx_http_parser *p, kx_http_type type, const kx_http_callbacks *cb,
                         void *user);

// Responses only: the request this response answers was HEAD, so no body
// follows its head whatever Content-Length says. Set before feeding the
// response; cleared again by the next kx_http_parser_init. (A 101 always ends
// the message at its head; nothing to set for that.)
void kx_http_parser_set_head_request(kx_http_parser *p, bool was_head);

// Feeds bytes. Returns the number of bytes consumed: len normally; less when a
// head ended with an upgrade (the rest belongs to the next protocol) or when
// on_head paused. After an upgrade head the parser consumes nothing more
// (returns 0). Errors (sticky: every later call returns the same):
// -EPROTO malformed, -EMSGSIZE head over KX_HTTP_MAX_HEAD or too many headers,
// or the negative value a callback returned.
long kx_http_feed(kx_http_parser *p, const uint8_t *data, size_t len);

// The peer closed the connection. Completes a response whose body runs until
// EOF (on_body/on_complete may be called). Returns 0 when the stream ended at a
// message boundary, -EPROTO when it was cut inside a message.
int kx_http_eof(kx_http_parser *p);

// True once an upgrade head was parsed (the handoff happened).
bool kx_http_upgraded(const kx_http_parser *p);

// The last completed head (all fields zero/empty before the first one).
const kx_http_head *kx_http_parser_head(const kx_http_parser *p);

// --- Helpers ---------------------------------------------------------------

// First value of header `name` (case-insensitive), or null.
const char *kx_http_get(const kx_http_head *h, const char *name);
// All values of `name` in order; stores up to max pointers, returns the total
// count (may exceed max).
size_t kx_http_get_all(const kx_http_head *h, const char *name, const char **out, size_t max);
// Whether any line of `name` holds `token` in its comma-separated list
// (case-insensitive, spaces/tabs trimmed), e.g. Connection: keep-alive, Upgrade.
bool kx_http_has_token(const kx_http_head *h, const char *name, const char *token);

// Splits a request target "/a/b?x=1" into a %-decoded path and a pointer into
// target at the raw query (after '?', or "" if none; a '#fragment' is cut off
// the path and ignored). The path must start with '/'; a decoded NUL, a bad
// %XX or a ".." segment gives -EINVAL; a path over path_cap-1 bytes
// -EMSGSIZE. %2F decodes to '/' like any other escape (the ".." check runs on
// the decoded path).
int kx_url_split(const char *target, char *path, size_t path_cap, const char **query);

// Iterates form-encoded query pairs "k=v&k2=v2": decodes %XX and '+' as space.
// Returns 1 with key/val filled (val "" for a bare "k"), 0 at the end,
// -EINVAL malformed (%zz, decoded NUL), -EMSGSIZE key or value too long.
// Empty pairs ("a=1&&b") are skipped. *cursor advances past the pair on 1
// and is left unchanged on error.
int kx_query_next(const char **cursor, char *key, size_t kcap, char *val, size_t vcap);

// Form-encodes like Go's url.QueryEscape (space -> '+', A-Za-z0-9-_.~ kept,
// else %XX uppercase). Writes a NUL-terminated string; returns its length or
// -EMSGSIZE if it does not fit in cap.
int kx_url_escape(char *out, size_t cap, const char *s);

// Reason phrase for a status code ("OK", "Switching Protocols", "Not Found",
// ...); "Unknown" for codes we do not name.
const char *kx_http_reason(int status);

// Formats "HTTP/1.1 <code> <reason>\r\n", each header as "Name: value\r\n",
// then "Content-Length: N\r\n" if content_length >= 0, then "\r\n".
// NUL-terminates. Returns the length, -EMSGSIZE if it does not fit, -EINVAL
// for a status outside 100..999 or a header name/value holding CR, LF or NUL
// or a name holding ':' (header injection).
int kx_http_format_response(char *out, size_t cap, int status, const kx_http_header *h,
                            size_t n, int64_t content_length);

// Formats "<METHOD> <target> HTTP/1.1\r\n", headers, optional Content-Length,
// "\r\n" (for the client side, e.g. the API server dialing a node). Same
// return values; -EINVAL also for a method or target holding spaces or
// control characters.
int kx_http_format_request(char *out, size_t cap, const char *method, const char *target,
                           const kx_http_header *h, size_t n, int64_t content_length);

// Splits "host:port" or "[v6]:port" (port 0..65535, host non-empty) as given
// to --listen flags. Returns 0 or -EINVAL.
int kx_hostport_split(const char *s, char *host, size_t hostcap, int *port);
