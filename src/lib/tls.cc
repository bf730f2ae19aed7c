// Sans-I/O TLS over OpenSSL memory BIOs; see kubexec/tls.h.
//
// The SSL object reads ciphertext from `in` (filled by kx_tls_feed) and
// writes ciphertext into `out` (drained by kx_tls_take) through a BIO of our
// own ("Ciphertext buffers" below) that reports "retry" rather than EOF when
// `in` is empty, so OpenSSL asks for more input (SSL_ERROR_WANT_READ) instead
// of failing. Every entry point calls drive(), which pushes the handshake as
// far as the buffered input allows and then flushes plaintext queued before
// the handshake finished.
#include "kubexec/tls.h"
#include "kubexec/crypto.h"
#include "kubexec/util.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

// kx_tls_ctx is an SSL_CTX under another name: the header stays free of
// OpenSSL's types.
static SSL_CTX *octx(kx_tls_ctx *c)
{
    return reinterpret_cast<SSL_CTX *>(c);
}
static kx_tls_ctx *kctx(SSL_CTX *c)
{
    return reinterpret_cast<kx_tls_ctx *>(c);
}

struct kx_tls {
    SSL *ssl;
    kx_buf in;      // ciphertext fed, not yet read by OpenSSL (from in_off)
    size_t in_off;
    kx_buf out;     // ciphertext OpenSSL wrote, not yet taken (from out_off)
    size_t out_off;
    kx_buf queue; // plaintext accepted by kx_tls_write, not yet given to SSL_write
    bool server;
    bool hs_done;
    bool closing;     // kx_tls_close called
    bool close_sent;  // close_notify queued
    bool eof;         // peer's close_notify seen
    int fatal;        // sticky error, 0 if none
    bool sent;        // kx_tls_take handed out bytes (the ClientHello left)
    char err[256];
    char vhost[256];  // client: the name or address to verify ("" for none)
};

static void fill_err(char *err, size_t errlen, const char *what)
{
    if (!err || errlen == 0)
        return;
    unsigned long e = ERR_peek_last_error();
    if (e) {
        char buf[200];
        ERR_error_string_n(e, buf, sizeof buf);
        snprintf(err, errlen, "%s: %s", what, buf);
    } else {
        snprintf(err, errlen, "%s", what);
    }
}

static SSL_CTX *ctx_fail(SSL_CTX *ctx, char *err, size_t errlen, const char *what)
{
    fill_err(err, errlen, what);
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return nullptr;
}

static SSL_CTX *ctx_common(const SSL_METHOD *m, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(m);
    if (!ctx) {
        fill_err(err, errlen, "SSL_CTX_new");
        return nullptr;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    // Renegotiation is an attack surface we do not need.
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    // The queue's storage moves (kx_buf_consume/realloc) between retries.
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // Most sessions are idle most of the time (a shell waiting for input):
    // give the ~34 KiB of record buffers back between records.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

static bool load_pair(SSL_CTX *ctx, const char *cert_file, const char *key_file, char *err,
                      size_t errlen)
{
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        fill_err(err, errlen, "loading certificate");
        return false;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        fill_err(err, errlen, "loading private key");
        return false;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        fill_err(err, errlen, "private key does not match certificate");
        return false;
    }
    return true;
}

// Sessions to resume are kept here, in memory, not sent out as tickets.
// A ticket comes back as bytes that OpenSSL 3.0 must decode again, the
// client certificate inside it included, and decoding its public key goes
// through the provider decoders: that was a sixth of the API server's and a
// fifth of the node's CPU per resumed `exec` (perf, 200 execs). A cached
// session is looked up by id and shares the certificate parsed at the full
// handshake. The price is memory kept after a connection ends, hence the
// bound: a client that never resumes (kubectl) only churns the cache.
static const long kServerSessCache = 128;

static void server_sessions(SSL_CTX *ctx)
{
    // Without a session id context, resuming a session that carried a
    // client certificate fails the handshake.
    static const unsigned char sid[] = "kubexec";
    SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
    // TLS 1.3 then sends "stateful tickets": ids of cached sessions.
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, kServerSessCache);
    // One ticket per handshake is all a client here uses (OpenSSL sends 2).
    SSL_CTX_set_num_tickets(ctx, 1);
}

kx_tls_ctx *kx_tls_server_ctx(const char *cert_file, const char *key_file,
                              const char *client_ca_file, kx_tls_verify mode, char *err,
                              size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!cert_file || !key_file) {
        fill_err(err, errlen, "server certificate and key are required");
        return nullptr;
    }
    SSL_CTX *ctx = ctx_common(TLS_server_method(), err, errlen);
    if (!ctx)
        return nullptr;
    if (!load_pair(ctx, cert_file, key_file, err, errlen)) {
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return nullptr;
    }
    if (mode != KX_TLS_NO_CLIENT_CERT) {
        if (!client_ca_file)
            return kctx(ctx_fail(ctx, err, errlen, "client CA file required to verify client certs"));
        if (SSL_CTX_load_verify_locations(ctx, client_ca_file, nullptr) != 1)
            return kctx(ctx_fail(ctx, err, errlen, "loading client CA"));
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca_file);
        if (!names)
            return kctx(ctx_fail(ctx, err, errlen, "reading client CA names"));
        SSL_CTX_set_client_CA_list(ctx, names); // takes ownership
        int flags = SSL_VERIFY_PEER;
        if (mode == KX_TLS_REQUIRE_CLIENT_CERT)
            flags |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(ctx, flags, nullptr);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    }
    server_sessions(ctx);
    return kctx(ctx);
}

// ---- Client session memory -----------------------------------------------------------
//
// A daemon dials the same peers again and again (the API server its nodes,
// a node its API server): each client context keeps the newest session per
// verified host name and offers it on the next connection to that host, so
// the handshake skips certificate checks and signatures (TLS 1.3 PSK with a
// fresh ECDHE). The server decides; a refused session is a full handshake.
static const int kSessSlots = 64;

struct sess_cache {
    struct {
        char host[256];
        SSL_SESSION *sess;
    } slot[kSessSlots];
    int next; // round-robin victim once all slots are used
};

static int g_cache_idx = -1;

static void cache_free(void *, void *ptr, CRYPTO_EX_DATA *, int, long, void *)
{
    sess_cache *c = static_cast<sess_cache *>(ptr);
    if (!c)
        return;
    for (auto &s : c->slot)
        SSL_SESSION_free(s.sess);
    free(c);
}

static sess_cache *cache_of(SSL_CTX *ctx)
{
    return g_cache_idx < 0 ? nullptr
                           : static_cast<sess_cache *>(SSL_CTX_get_ex_data(ctx, g_cache_idx));
}

static SSL_SESSION *cache_get(SSL_CTX *ctx, const char *host)
{
    sess_cache *c = cache_of(ctx);
    if (!c || !host[0])
        return nullptr;
    for (auto &s : c->slot)
        if (s.sess && strcmp(s.host, host) == 0)
            return s.sess;
    return nullptr;
}

// OpenSSL's new-session callback: one call per ticket the server sends.
static int cache_put(SSL *ssl, SSL_SESSION *sess)
{
    const kx_tls *t = static_cast<const kx_tls *>(SSL_get_app_data(ssl));
    sess_cache *c = cache_of(SSL_get_SSL_CTX(ssl));
    if (!t || !c || !t->vhost[0] || !SSL_SESSION_is_resumable(sess))
        return 0;
    int victim = -1;
    for (int i = 0; i < kSessSlots && victim < 0; i++)
        if (c->slot[i].sess && strcmp(c->slot[i].host, t->vhost) == 0)
            victim = i;
    for (int i = 0; i < kSessSlots && victim < 0; i++)
        if (!c->slot[i].sess)
            victim = i;
    if (victim < 0) {
        victim = c->next;
        c->next = (c->next + 1) % kSessSlots;
    }
    SSL_SESSION_free(c->slot[victim].sess);
    c->slot[victim].sess = sess;
    kx_strlcpy(c->slot[victim].host, t->vhost, sizeof c->slot[victim].host);
    return 1; // the reference is ours now
}

// Attaches an empty session memory to a client context. false on ENOMEM.
static bool cache_attach(SSL_CTX *ctx)
{
    if (g_cache_idx < 0)
        g_cache_idx = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, cache_free);
    sess_cache *c = static_cast<sess_cache *>(calloc(1, sizeof *c));
    if (g_cache_idx < 0 || !c || SSL_CTX_set_ex_data(ctx, g_cache_idx, c) != 1) {
        free(c);
        return false;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, cache_put);
    return true;
}

kx_tls_ctx *kx_tls_client_ctx(const char *ca_file, const char *cert_file, const char *key_file,
                              char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if ((cert_file == nullptr) != (key_file == nullptr)) {
        fill_err(err, errlen, "client certificate and key go together");
        return nullptr;
    }
    SSL_CTX *ctx = ctx_common(TLS_client_method(), err, errlen);
    if (!ctx)
        return nullptr;
    int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, nullptr)
                     : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1)
        return kctx(ctx_fail(ctx, err, errlen, "loading CA"));
    if (!cache_attach(ctx))
        return kctx(ctx_fail(ctx, err, errlen, "out of memory"));
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (cert_file && !load_pair(ctx, cert_file, key_file, err, errlen)) {
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return nullptr;
    }
    return kctx(ctx);
}

kx_tls_ctx *kx_tls_client_ctx_pem(const kx_tls_client_pem *p, kx_tls_pem_error *why)
{
    kx_tls_pem_error e = KX_TLS_PEM_NOMEM;
    BIO *bio = nullptr;
    X509 *x = nullptr;
    EVP_PKEY *key = nullptr;
    SSL_CTX *ctx = ctx_common(TLS_client_method(), nullptr, 0);
    if (!ctx)
        goto fail;
    if (p->insecure && p->ca) {
        e = KX_TLS_PEM_INSECURE_WITH_CA;
        goto fail;
    }
    if (p->insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        if (p->ca) {
            X509_STORE *store = SSL_CTX_get_cert_store(ctx);
            int added = 0;
            bio = BIO_new_mem_buf(p->ca, (int)p->ca_len);
            while (bio && (x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr))) {
                if (X509_STORE_add_cert(store, x) == 1)
                    added++;
                X509_free(x);
                x = nullptr;
            }
            BIO_free(bio);
            bio = nullptr;
            if (!added) {
                e = KX_TLS_PEM_BAD_CA;
                goto fail;
            }
        } else if (!SSL_CTX_set_default_verify_paths(ctx)) {
            e = KX_TLS_PEM_NO_SYSTEM_CA;
            goto fail;
        }
    }
    if (p->cert || p->key) {
        if (!p->cert || !p->key) {
            e = p->cert ? KX_TLS_PEM_BAD_KEY : KX_TLS_PEM_BAD_CERT;
            goto fail;
        }
        bio = BIO_new_mem_buf(p->cert, (int)p->cert_len);
        x = bio ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr;
        if (!x || SSL_CTX_use_certificate(ctx, x) != 1) {
            e = KX_TLS_PEM_BAD_CERT;
            goto fail;
        }
        X509_free(x);
        x = nullptr;
        // The rest of the PEM is the chain sent after the leaf.
        while ((x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr))) {
            if (SSL_CTX_add1_chain_cert(ctx, x) != 1)
                goto fail;
            X509_free(x);
            x = nullptr;
        }
        BIO_free(bio);
        bio = BIO_new_mem_buf(p->key, (int)p->key_len);
        key = bio ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr) : nullptr;
        if (!key) {
            e = KX_TLS_PEM_BAD_KEY;
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
            e = KX_TLS_PEM_KEY_MISMATCH;
            goto fail;
        }
        EVP_PKEY_free(key);
        BIO_free(bio);
    }
    ERR_clear_error(); // PEM read loops end with a "no start line" error
    *why = KX_TLS_PEM_OK;
    return kctx(ctx);
fail:
    X509_free(x);
    EVP_PKEY_free(key);
    BIO_free(bio);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    *why = e;
    return nullptr;
}

void kx_tls_ctx_bulk_after(kx_tls_ctx *, size_t)
{
    // OpenSSL's own records are already fast.
}

void kx_tls_ctx_free(kx_tls_ctx *ctx)
{
    SSL_CTX_free(octx(ctx));
}

// Records a fatal error with OpenSSL's reason (and the certificate verify
// result, which is usually the interesting part).
static int set_fatal(kx_tls *t, const char *what)
{
    long vr = SSL_get_verify_result(t->ssl);
    unsigned long e = ERR_peek_last_error();
    char lib[160] = "";
    if (e)
        ERR_error_string_n(e, lib, sizeof lib);
    if (vr != X509_V_OK)
        snprintf(t->err, sizeof t->err, "%s: certificate verify failed: %s (%s)", what,
                 X509_verify_cert_error_string(vr), lib);
    else
        snprintf(t->err, sizeof t->err, "%s: %s", what, lib[0] ? lib : "protocol error");
    ERR_clear_error();
    t->fatal = -EPROTO;
    return t->fatal;
}

static int flush_queue(kx_tls *t)
{
    while (t->queue.len > 0) {
        size_t n = t->queue.len > INT_MAX ? INT_MAX : t->queue.len;
        size_t w = 0;
        ERR_clear_error();
        if (SSL_write_ex(t->ssl, t->queue.data, n, &w) != 1) {
            int e = SSL_get_error(t->ssl, 0);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0;
            return set_fatal(t, "write");
        }
        kx_buf_consume(&t->queue, w);
    }
    if (t->queue.data) // release the pre-handshake burst
        kx_buf_free(&t->queue);
    if (t->closing && !t->close_sent) {
        ERR_clear_error();
        int r = SSL_shutdown(t->ssl);
        if (r < 0) {
            int e = SSL_get_error(t->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                return set_fatal(t, "shutdown");
        }
        t->close_sent = true;
    }
    return 0;
}

// Advances the handshake and flushes queued plaintext. 0 or the fatal error.
static int drive(kx_tls *t)
{
    if (t->fatal)
        return t->fatal;
    if (!t->hs_done) {
        ERR_clear_error();
        int r = SSL_do_handshake(t->ssl);
        if (r != 1) {
            int e = SSL_get_error(t->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0;
            return set_fatal(t, "handshake");
        }
        t->hs_done = true;
    }
    return flush_queue(t);
}

// ---- Ciphertext buffers -------------------------------------------------------------
//
// OpenSSL reads and writes ciphertext through one BIO of ours over t->in and
// t->out. Memory BIOs did it before, and cost a quarter of the API server's
// CPU while it relayed a bulk stream (perf): each grows by reallocating and
// cleansing the old block, and the only way to give an idle one's memory back
// was to swap it for a fresh BIO, whose freeing cleanses it all again. Here a
// buffer that empties is simply freed, so an idle connection holds no
// ciphertext buffer at all (130 KiB per connection after a burst before
// memory BIOs were swapped: heaptrack, 30 sessions that each moved 1 MiB),
// and the next feed allocates what it needs at once (glibc serves it from
// the chunk just freed).
static void buf_emptied(kx_buf *b, size_t *off)
{
    *off = 0;
    kx_buf_free(b);
}

static int bio_read_cb(BIO *b, char *buf, int len)
{
    kx_tls *t = static_cast<kx_tls *>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    size_t avail = t->in.len - t->in_off;
    if (avail == 0 || len <= 0) {
        BIO_set_retry_read(b); // not EOF: more may be fed
        return -1;
    }
    size_t n = avail < (size_t)len ? avail : (size_t)len;
    memcpy(buf, t->in.data + t->in_off, n);
    t->in_off += n;
    if (t->in_off == t->in.len)
        buf_emptied(&t->in, &t->in_off);
    return (int)n;
}

static int bio_write_cb(BIO *b, const char *buf, int len)
{
    kx_tls *t = static_cast<kx_tls *>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    // Unbounded here as before: callers watch kx_tls_pending.
    if (kx_buf_append(&t->out, buf, (size_t)len, SIZE_MAX) < 0)
        return -1;
    return len;
}

static long bio_ctrl_cb(BIO *b, int cmd, long, void *)
{
    const kx_tls *t = static_cast<const kx_tls *>(BIO_get_data(b));
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return (long)(t->in.len - t->in_off);
    case BIO_CTRL_WPENDING:
        return (long)(t->out.len - t->out_off);
    default:
        return 0; // no kTLS, no EOF, nothing else
    }
}

static int bio_create_cb(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

// The BIO type, made once per process (the daemons are single-threaded).
static BIO_METHOD *bio_method(void)
{
    static BIO_METHOD *m;
    if (!m) {
        m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "kubexec buffers");
        if (m && (!BIO_meth_set_read(m, bio_read_cb) || !BIO_meth_set_write(m, bio_write_cb) ||
                  !BIO_meth_set_ctrl(m, bio_ctrl_cb) || !BIO_meth_set_create(m, bio_create_cb))) {
            BIO_meth_free(m);
            m = nullptr;
        }
    }
    return m;
}

// A fresh SSL object over t's buffers, set up for t's role and name;
// a client's ClientHello is produced at once (after offering `sess`, if
// any) so kx_tls_take has something to send. 0 or -ENOMEM/-EINVAL.
static int tls_setup(kx_tls *t, SSL_CTX *ctx, SSL_SESSION *sess)
{
    ERR_clear_error();
    // A ClientHello made earlier did not leave (kx_tls_set_session).
    kx_buf_free(&t->out);
    t->out_off = 0;
    BIO_METHOD *m = bio_method();
    t->ssl = SSL_new(ctx);
    BIO *bio = m ? BIO_new(m) : nullptr;
    if (!t->ssl || !bio) {
        BIO_free(bio);
        SSL_free(t->ssl);
        t->ssl = nullptr;
        ERR_clear_error();
        return -ENOMEM;
    }
    BIO_set_data(bio, t);
    SSL_set_bio(t->ssl, bio, bio); // one reference, owned by ssl
    SSL_set_app_data(t->ssl, t);
    if (t->server) {
        SSL_set_accept_state(t->ssl);
        return 0;
    }
    SSL_set_connect_state(t->ssl);
    if (t->vhost[0]) {
        unsigned char addr[16];
        bool ip = inet_pton(AF_INET, t->vhost, addr) == 1 || inet_pton(AF_INET6, t->vhost, addr) == 1;
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), t->vhost)
                    : SSL_set1_host(t->ssl, t->vhost) && SSL_set_tlsext_host_name(t->ssl, t->vhost);
        if (ok != 1) {
            SSL_free(t->ssl);   // frees the BIO
            t->ssl = nullptr;
            ERR_clear_error();
            return -EINVAL;
        }
    }
    if (!sess)
        sess = cache_get(ctx, t->vhost);
    if (sess && SSL_set_session(t->ssl, sess) != 1) {
        SSL_free(t->ssl);
        t->ssl = nullptr;
        ERR_clear_error();
        return -EINVAL;
    }
    drive(t);
    return 0;
}

kx_tls *kx_tls_new(kx_tls_ctx *ctx, bool server, const char *verify_host)
{
    if (!ctx || (verify_host && strlen(verify_host) >= sizeof(kx_tls{}.vhost)))
        return nullptr;
    kx_tls *t = static_cast<kx_tls *>(calloc(1, sizeof *t));
    if (!t)
        return nullptr;
    t->server = server;
    if (!server && verify_host)
        kx_strlcpy(t->vhost, verify_host, sizeof t->vhost);
    if (tls_setup(t, octx(ctx), nullptr) < 0) {
        kx_buf_free(&t->queue);
        kx_buf_free(&t->out);
        free(t);
        return nullptr;
    }
    return t;
}

void kx_tls_free(kx_tls *t)
{
    if (!t)
        return;
    // OpenSSL forgets the session of a connection freed before close_notify
    // went both ways, so one side hanging up first (the normal end of an
    // exec) would cost the next connection a full handshake. Since TLS 1.1
    // (RFC 4346 §7.2.1) an unclean close no longer requires that; a fatal
    // error has already made the session unusable.
    if (t->ssl && t->hs_done && !t->fatal)
        SSL_set_shutdown(t->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(t->ssl); // frees the BIO
    kx_buf_free(&t->queue);
    kx_buf_free(&t->in);
    kx_buf_free(&t->out);
    free(t);
}

int kx_tls_feed(kx_tls *t, const uint8_t *p, size_t n)
{
    if (t->fatal)
        return t->fatal;
    if (n == 0)
        return 0;
    size_t queued = t->in.len - t->in_off;
    if (n > KX_TLS_MAX_QUEUE || queued > KX_TLS_MAX_QUEUE - n)
        return -EMSGSIZE;
    // Read bytes go before the buffer would have to grow (a partial record
    // at most moves down).
    if (t->in_off && t->in.len + n > t->in.cap) {
        kx_buf_consume(&t->in, t->in_off);
        t->in_off = 0;
    }
    if (kx_buf_append(&t->in, p, n, SIZE_MAX) < 0)
        return -ENOMEM;
    // A handshake failure found here is reported by the next kx_tls_read, so
    // the caller still takes and sends our alert first.
    drive(t);
    return 0;
}

int kx_tls_read(kx_tls *t, uint8_t *buf, size_t cap)
{
    if (t->fatal)
        return t->fatal;
    if (t->eof)
        return KX_TLS_EOF;
    int r = drive(t);
    if (r < 0)
        return r;
    if (!t->hs_done || cap == 0)
        return 0;
    if (cap > INT_MAX)
        cap = INT_MAX;
    size_t got = 0;
    ERR_clear_error();
    if (SSL_read_ex(t->ssl, buf, cap, &got) == 1)
        return (int)got;
    int e = SSL_get_error(t->ssl, 0);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        t->eof = true;
        return KX_TLS_EOF;
    default:
        return set_fatal(t, "read");
    }
}

int kx_tls_write(kx_tls *t, const uint8_t *p, size_t n)
{
    if (t->fatal)
        return t->fatal;
    if (t->closing)
        return -EPIPE;
    if (n == 0)
        return drive(t);
    if (t->hs_done && t->queue.len == 0) {
        // Fast path: straight into the record layer (the memory BIO takes
        // everything, so a success writes all of it).
        size_t done = 0;
        while (done < n) {
            size_t chunk = n - done > INT_MAX ? INT_MAX : n - done;
            size_t w = 0;
            ERR_clear_error();
            if (SSL_write_ex(t->ssl, p + done, chunk, &w) != 1) {
                int e = SSL_get_error(t->ssl, 0);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    return set_fatal(t, "write");
                break; // queue the rest below
            }
            done += w;
        }
        p += done;
        n -= done;
        if (n == 0)
            return 0;
    }
    int r = kx_buf_append(&t->queue, p, n, KX_TLS_MAX_QUEUE);
    if (r < 0)
        return r;
    return drive(t);
}

int kx_tls_take(kx_tls *t, uint8_t *buf, size_t cap)
{
    if (cap == 0)
        return 0;
    if (cap > INT_MAX)
        cap = INT_MAX;
    size_t avail = t->out.len - t->out_off;
    size_t n = avail < cap ? avail : cap;
    if (n == 0)
        return 0;
    memcpy(buf, t->out.data + t->out_off, n);
    t->out_off += n;
    if (t->out_off == t->out.len)
        buf_emptied(&t->out, &t->out_off);
    t->sent = true;
    return (int)n;
}

size_t kx_tls_peek(const kx_tls *t, const uint8_t **p)
{
    *p = t->out.data + t->out_off;
    return t->out.len - t->out_off;
}

void kx_tls_consume(kx_tls *t, size_t n)
{
    size_t avail = t->out.len - t->out_off;
    if (n > avail)
        n = avail;
    if (n == 0)
        return;
    t->out_off += n;
    if (t->out_off == t->out.len)
        buf_emptied(&t->out, &t->out_off);
    t->sent = true;
}

size_t kx_tls_pending(const kx_tls *t)
{
    return t->out.len - t->out_off;
}

bool kx_tls_handshake_done(const kx_tls *t)
{
    return t->hs_done;
}

int kx_tls_close(kx_tls *t)
{
    if (t->fatal)
        return t->fatal;
    if (!t->hs_done)
        return -ENOTCONN;
    t->closing = true;
    return drive(t);
}

static int name_entry_utf8(const X509_NAME_ENTRY *ent, char *out, size_t cap, size_t *len)
{
    unsigned char *s = nullptr;
    int n = ASN1_STRING_to_UTF8(&s, X509_NAME_ENTRY_get_data(ent));
    if (n < 0) {
        ERR_clear_error();
        return -EINVAL;
    }
    int r = 0;
    if (memchr(s, '\0', (size_t)n))
        r = -EINVAL;
    else if ((size_t)n >= cap)
        r = -EMSGSIZE;
    else {
        memcpy(out, s, (size_t)n);
        out[n] = '\0';
        *len = (size_t)n;
    }
    OPENSSL_free(s);
    return r;
}

int kx_tls_peer_subject(const kx_tls *t, char *cn, size_t cncap, char *orgs, size_t orgcap)
{
    if (cncap == 0 || orgcap == 0)
        return -EMSGSIZE;
    cn[0] = '\0';
    orgs[0] = '\0';
    if (!t->hs_done)
        return -ENOENT;
    X509 *c = SSL_get0_peer_certificate(t->ssl);
    if (!c)
        return -ENOENT;
    if (SSL_get_verify_result(t->ssl) != X509_V_OK)
        return -EACCES;
    const X509_NAME *nm = X509_get_subject_name(c);
    size_t len = 0;
    int idx = X509_NAME_get_index_by_NID(nm, NID_commonName, -1);
    if (idx >= 0) {
        int r = name_entry_utf8(X509_NAME_get_entry(nm, idx), cn, cncap, &len);
        if (r < 0) {
            cn[0] = '\0';
            return r;
        }
    }
    size_t used = 0;
    for (idx = -1; (idx = X509_NAME_get_index_by_NID(nm, NID_organizationName, idx)) >= 0;) {
        if (used > 0) {
            if (used + 1 >= orgcap)
                return -EMSGSIZE;
            orgs[used++] = ',';
            orgs[used] = '\0';
        }
        int r = name_entry_utf8(X509_NAME_get_entry(nm, idx), orgs + used, orgcap - used, &len);
        if (r < 0) {
            orgs[0] = '\0';
            return r;
        }
        used += len;
    }
    return 0;
}

int kx_tls_set_session(kx_tls *t, const uint8_t *p, size_t n)
{
    // The ClientHello (already made, see tls_setup) must carry the session:
    // as long as none of it left, start over with a new SSL object.
    if (t->server || t->sent || t->hs_done || t->fatal || !p || n == 0 || n > LONG_MAX)
        return -EINVAL;
    const unsigned char *q = p;
    SSL_SESSION *sess = d2i_SSL_SESSION(nullptr, &q, (long)n);
    ERR_clear_error();
    if (!sess)
        return -EINVAL;
    if (!SSL_SESSION_is_resumable(sess) ||
        (uint64_t)SSL_SESSION_get_time(sess) + (uint64_t)SSL_SESSION_get_timeout(sess) <=
            (uint64_t)time(nullptr)) {
        SSL_SESSION_free(sess);
        return -ESTALE;
    }
    SSL_CTX *ctx = SSL_get_SSL_CTX(t->ssl);
    SSL_CTX_up_ref(ctx);
    SSL_free(t->ssl);
    t->ssl = nullptr;
    int rc = tls_setup(t, ctx, sess);
    if (rc < 0)
        rc = tls_setup(t, ctx, nullptr) < 0 ? -ENOMEM : -EINVAL;
    SSL_CTX_free(ctx);
    SSL_SESSION_free(sess);
    if (!t->ssl)
        t->fatal = -ENOMEM;
    return rc;
}

int kx_tls_session_save(const kx_tls *t, uint8_t *buf, size_t cap)
{
    if (t->server || !t->hs_done)
        return 0;
    SSL_SESSION *sess = SSL_get_session(t->ssl);
    if (!sess || !SSL_SESSION_is_resumable(sess))
        return 0;
    int n = i2d_SSL_SESSION(sess, nullptr);
    if (n <= 0)
        return 0;
    if ((size_t)n > cap || n > INT_MAX)
        return -EMSGSIZE;
    unsigned char *q = buf;
    return i2d_SSL_SESSION(sess, &q);
}

bool kx_tls_bulk_records(const kx_tls *)
{
    return false;
}

bool kx_tls_session_reused(const kx_tls *t)
{
    return SSL_session_reused(t->ssl) == 1;
}

const char *kx_tls_error(const kx_tls *t)
{
    return t->err;
}

// ---- kubexec/crypto.h hashes ----------------------------------------------------

static int digest2(const EVP_MD *md, const void *a, size_t an, const void *b, size_t bn,
                   uint8_t *out, unsigned int outlen)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    unsigned int got = 0;
    bool ok = m && EVP_DigestInit_ex(m, md, nullptr) == 1 && EVP_DigestUpdate(m, a, an) == 1 &&
              (bn == 0 || EVP_DigestUpdate(m, b, bn) == 1) &&
              EVP_DigestFinal_ex(m, out, &got) == 1 && got == outlen;
    EVP_MD_CTX_free(m);
    ERR_clear_error();
    return ok ? 0 : -EIO;
}

int kx_sha1(const void *a, size_t an, const void *b, size_t bn, uint8_t out[20])
{
    return digest2(EVP_sha1(), a, an, b, bn, out, 20);
}

int kx_sha256(const void *a, size_t an, const void *b, size_t bn, uint8_t out[32])
{
    return digest2(EVP_sha256(), a, an, b, bn, out, 32);
}
