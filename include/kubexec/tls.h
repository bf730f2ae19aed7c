// kubexec/tls.h - sans-I/O TLS, one API over two backends.
//
// The daemons link src/lib/tls.cc (OpenSSL memory BIOs: server and client).
// The kubexec CLI links src/lib/tls_mbedtls.cc (mbedTLS 2.28, client only,
// TLS 1.2): a CLI process lives for milliseconds, and OpenSSL 3.0 spends
// them setting itself up (provider and decoder tables, relocating
// libcrypto). `kubexec exec demo -- true`, same tree, hyperfine: 9.1 ms and
// 8.0 MiB peak RSS on OpenSSL, 4.6 ms and 3.7 MiB on mbedTLS. The price:
// mbedTLS's AES-GCM moves ~300 MB/s per core, OpenSSL's ~6 GB/s (meson
// -Dcli_tls=openssl builds the CLI on OpenSSL).
// kx_tls_ctx and kx_tls are opaque; nothing outside the backend sees its
// library's types.
//
// A kx_tls never touches a socket. The caller moves bytes:
//   ciphertext from the network -> kx_tls_feed
//   plaintext for the application <- kx_tls_read (until it returns 0)
//   plaintext from the application -> kx_tls_write
//   ciphertext for the network <- kx_tls_take (until it returns 0)
// i.e. the driver loop is: feed -> read until 0 -> take until 0 -> send.
// The handshake progresses from feed/read/write/take alone; a client starts it
// in kx_tls_new, so kx_tls_take right away yields the ClientHello.
//
// Only HTTP/1.1 is spoken: no ALPN is offered or selected (clients that offer
// "h2, http/1.1" get no ALPN, which means HTTP/1.1). TLS 1.2 and 1.3.
//
// Limits: at most KX_TLS_MAX_QUEUE bytes of ciphertext waiting to be read
// (feed) and of plaintext queued before the handshake completes (write),
// else -EMSGSIZE. The outgoing ciphertext is not bounded here: the caller
// watches kx_tls_pending() and stops writing when it is behind.
#pragma once

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

// kx_tls_read: the peer sent close_notify (clean end of the plaintext stream).
#define KX_TLS_EOF (-ESHUTDOWN)
#define KX_TLS_MAX_QUEUE (4u << 20)

enum kx_tls_verify {
    KX_TLS_NO_CLIENT_CERT,       // never ask for a client certificate
    KX_TLS_OPTIONAL_CLIENT_CERT, // ask; a certificate that is sent must verify
    KX_TLS_REQUIRE_CLIENT_CERT,  // ask; the handshake fails without a valid one
};

// Settings shared by any number of connections.
struct kx_tls_ctx;

// Server context from PEM files (cert_file may hold a chain). Client
// certificates, when asked for, are verified against client_ca_file (required
// unless mode is KX_TLS_NO_CLIENT_CERT). Returns null on error with err
// filled (err may be null). Free with kx_tls_ctx_free; one context serves any
// number of kx_tls. The mbedTLS backend has no server side: null, "not
// supported".
kx_tls_ctx *kx_tls_server_ctx(const char *cert_file, const char *key_file,
                           const char *client_ca_file, kx_tls_verify mode, char *err,
                           size_t errlen);

// Client context: verifies the server against ca_file (null: the system
// store); presents cert_file/key_file when both are non-null. It remembers
// the newest session per verify_host (64 hosts) and offers it on the next
// kx_tls_new to that host: daemons that dial the same peers resume (no
// certificate work) without doing anything. (OpenSSL backend; the mbedTLS
// one leaves resumption to kx_tls_set_session.)
kx_tls_ctx *kx_tls_client_ctx(const char *ca_file, const char *cert_file, const char *key_file,
                              char *err, size_t errlen);

// Client context from PEM held in memory, as a kubeconfig carries it. Any of
// the pointers may be null (length 0): no ca = the system store; cert and key
// go together; the cert PEM may continue with its chain. insecure: no server
// verification at all (with a ca: KX_TLS_PEM_INSECURE_WITH_CA). Returns the
// context, or null with *why set to one of the reasons below, so callers can
// word each as they need (kubectl's texts live in the CLI).
enum kx_tls_pem_error {
    KX_TLS_PEM_OK,
    KX_TLS_PEM_NOMEM,
    KX_TLS_PEM_INSECURE_WITH_CA,
    KX_TLS_PEM_BAD_CA,         // no certificate could be read from ca
    KX_TLS_PEM_NO_SYSTEM_CA,   // no ca given and the system store is unusable
    KX_TLS_PEM_BAD_CERT,       // no certificate in cert (or cert without key)
    KX_TLS_PEM_BAD_KEY,        // no private key in key (or key without cert)
    KX_TLS_PEM_KEY_MISMATCH,   // the key is not the certificate's
};
struct kx_tls_client_pem {
    const char *ca;   size_t ca_len;
    const char *cert; size_t cert_len;
    const char *key;  size_t key_len;
    bool insecure;
};
kx_tls_ctx *kx_tls_client_ctx_pem(const kx_tls_client_pem *p, kx_tls_pem_error *why);

void kx_tls_ctx_free(kx_tls_ctx *ctx);

// mbedTLS backend: a connection that has moved `bytes` of plaintext (1 MiB
// by default) has its records protected by OpenSSL's libcrypto from then on,
// loaded at that moment, for its speed (see src/lib/tls_records.h); 0 = as
// soon as possible, SIZE_MAX = never. The OpenSSL backend ignores it.
void kx_tls_ctx_bulk_after(kx_tls_ctx *ctx, size_t bytes);

struct kx_tls;

// A connection over ctx (the ctx must outlive it with mbedTLS; OpenSSL
// counts references, but do not rely on it). verify_host (client only, may be null): the DNS name or IP
// address the server certificate must match; a DNS name is also sent as SNI.
// Returns null on allocation failure or an unusable verify_host.
kx_tls *kx_tls_new(kx_tls_ctx *ctx, bool server, const char *verify_host);
void kx_tls_free(kx_tls *t);

// Ciphertext from the network. 0, -EMSGSIZE (more than KX_TLS_MAX_QUEUE
// unread), or the connection's fatal error.
int kx_tls_feed(kx_tls *t, const uint8_t *p, size_t n);

// Plaintext out: >0 bytes read, 0 = nothing available now, KX_TLS_EOF when
// the peer sent close_notify, other <0 fatal (-EPROTO handshake/verify/record
// failure, text in kx_tls_error). Fatal errors are sticky.
int kx_tls_read(kx_tls *t, uint8_t *buf, size_t cap);

// Plaintext in: accepts all n bytes (queued internally until the handshake is
// done) and returns 0, or fails <0 (-EMSGSIZE queue over limit, -EPIPE after
// kx_tls_close, or the fatal error).
int kx_tls_write(kx_tls *t, const uint8_t *p, size_t n);

// Ciphertext to send: copies up to cap bytes, returns the count (0 = nothing
// pending). Never fails.
int kx_tls_take(kx_tls *t, uint8_t *buf, size_t cap);

// Ciphertext bytes waiting for kx_tls_take.
size_t kx_tls_pending(const kx_tls *t);
// The same bytes in place, for a caller that can send from them directly:
// returns kx_tls_pending(t) and points *p at them (valid until the next call
// on t); kx_tls_consume(t, n) then drops the first n (n <= pending), as a
// kx_tls_take of n would have.
size_t kx_tls_peek(const kx_tls *t, const uint8_t **p);
void kx_tls_consume(kx_tls *t, size_t n);

bool kx_tls_handshake_done(const kx_tls *t);
// Session resumption across processes. kx_tls_session_save serializes the
// client's current session (call it once the handshake is done; with TLS 1.3
// the ticket comes after it, with the first answer): >0 bytes written to buf,
// 0 when there is nothing resumable, -EMSGSIZE when cap is too small (8 KiB is
// plenty). The bytes are backend-specific and secret (they hold the session's
// master key): store them like a private key.
int kx_tls_session_save(const kx_tls *t, uint8_t *buf, size_t cap);
// Client only, before the ClientHello is taken: offer a session saved by
// kx_tls_session_save (same backend) for resumption. 0; -EINVAL (server side,
// handshake under way, unreadable bytes) or -ESTALE (expired): either way the
// connection goes on with a full handshake, as it does when the server does not
// accept the session.
int kx_tls_set_session(kx_tls *t, const uint8_t *p, size_t n);
// Whether the handshake resumed an earlier session.
bool kx_tls_session_reused(const kx_tls *t);
// Whether libcrypto protects t's records now (kx_tls_ctx_bulk_after).
bool kx_tls_bulk_records(const kx_tls *t);

// Queues close_notify (after any queued plaintext). Later writes fail with
// -EPIPE. 0, or -ENOTCONN before the handshake completed (nothing to close
// cleanly: just drop the connection).
int kx_tls_close(kx_tls *t);

// Subject of the verified peer certificate: its CN into cn and all O values
// joined by ',' into orgs (the Kubernetes user and groups). -ENOENT if the
// peer sent no certificate (or before the handshake), -EACCES if it did not
// verify, -EMSGSIZE if a buffer is too small, -EINVAL for a name holding a
// NUL byte.
int kx_tls_peer_subject(const kx_tls *t, char *cn, size_t cncap, char *orgs, size_t orgcap);

// Text of the last fatal error ("" if none). Valid until the next call on t.
const char *kx_tls_error(const kx_tls *t);
