// Sans-I/O TLS over OpenSSL memory BIOs; see kubexec/tls.h.
//
// The SSL object reads ciphertext from `rbio` (filled by kx_tls_feed) and
// writes ciphertext into `wbio` (drained by kx_tls_take). Both are memory
// BIOs set to report "retry" rather than EOF when empty, so OpenSSL asks for
// more input (SSL_ERROR_WANT_READ) instead of failing. Every entry point calls
// drive(), which pushes the handshake as far as the buffered input allows and
// then flushes plaintext queued before the handshake finished.
#include "kubexec/tls.h"
#include "kubexec/util.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

struct kx_tls {
    SSL *ssl;
    BIO *rbio; // owned by ssl
    BIO *wbio; // owned by ssl
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

SSL_CTX *kx_tls_server_ctx(const char *cert_file, const char *key_file,
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
            return ctx_fail(ctx, err, errlen, "client CA file required to verify client certs");
        if (SSL_CTX_load_verify_locations(ctx, client_ca_file, nullptr) != 1)
            return ctx_fail(ctx, err, errlen, "loading client CA");
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca_file);
        if (!names)
            return ctx_fail(ctx, err, errlen, "reading client CA names");
        SSL_CTX_set_client_CA_list(ctx, names); // takes ownership
        int flags = SSL_VERIFY_PEER;
        if (mode == KX_TLS_REQUIRE_CLIENT_CERT)
            flags |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(ctx, flags, nullptr);
        // Without a session id context, resuming a session that carried a
        // client certificate fails the handshake.
        static const unsigned char sid[] = "kubexec";
        SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    }
    return ctx;
}

SSL_CTX *kx_tls_client_ctx(const char *ca_file, const char *cert_file, const char *key_file,
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
        return ctx_fail(ctx, err, errlen, "loading CA");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (cert_file && !load_pair(ctx, cert_file, key_file, err, errlen)) {
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return nullptr;
    }
    return ctx;
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

// A fresh SSL object with its memory BIOs, set up for t's role and name;
// a client's ClientHello is produced at once (after offering `sess`, if
// any) so kx_tls_take has something to send. 0 or -ENOMEM/-EINVAL.
static int tls_setup(kx_tls *t, SSL_CTX *ctx, SSL_SESSION *sess)
{
    ERR_clear_error();
    t->ssl = SSL_new(ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(t->ssl);
        t->ssl = nullptr;
        t->rbio = t->wbio = nullptr;
        ERR_clear_error();
        return -ENOMEM;
    }
    // Empty BIO = "try again", not EOF.
    BIO_set_mem_eof_return(t->rbio, -1);
    BIO_set_mem_eof_return(t->wbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
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
            SSL_free(t->ssl);   // frees both BIOs
            t->ssl = nullptr;
            t->rbio = t->wbio = nullptr;
            ERR_clear_error();
            return -EINVAL;
        }
    }
    if (sess && SSL_set_session(t->ssl, sess) != 1) {
        SSL_free(t->ssl);
        t->ssl = nullptr;
        t->rbio = t->wbio = nullptr;
        ERR_clear_error();
        return -EINVAL;
    }
    drive(t);
    return 0;
}

kx_tls *kx_tls_new(SSL_CTX *ctx, bool server, const char *verify_host)
{
    if (!ctx || (verify_host && strlen(verify_host) >= sizeof(kx_tls{}.vhost)))
        return nullptr;
    kx_tls *t = static_cast<kx_tls *>(calloc(1, sizeof *t));
    if (!t)
        return nullptr;
    t->server = server;
    if (!server && verify_host)
        kx_strlcpy(t->vhost, verify_host, sizeof t->vhost);
    if (tls_setup(t, ctx, nullptr) < 0) {
        kx_buf_free(&t->queue);
        free(t);
        return nullptr;
    }
    return t;
}

void kx_tls_free(kx_tls *t)
{
    if (!t)
        return;
    SSL_free(t->ssl); // frees both BIOs
    kx_buf_free(&t->queue);
    free(t);
}

int kx_tls_feed(kx_tls *t, const uint8_t *p, size_t n)
{
    if (t->fatal)
        return t->fatal;
    if (n == 0)
        return 0;
    size_t queued = BIO_ctrl_pending(t->rbio);
    if (n > KX_TLS_MAX_QUEUE || queued > KX_TLS_MAX_QUEUE - n)
        return -EMSGSIZE;
    if (BIO_write(t->rbio, p, (int)n) != (int)n) {
        ERR_clear_error();
        return -ENOMEM;
    }
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
    if (!t->wbio)
        return 0;
    int n = BIO_read(t->wbio, buf, (int)cap);
    if (n > 0)
        t->sent = true;
    return n > 0 ? n : 0;
}

size_t kx_tls_pending(const kx_tls *t)
{
    return t->wbio ? BIO_ctrl_pending(t->wbio) : 0;
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

int kx_tls_set_session(kx_tls *t, SSL_SESSION *sess)
{
    // The ClientHello (already made, see tls_setup) must carry the session:
    // as long as none of it left, start over with a new SSL object.
    if (t->server || t->sent || t->hs_done || t->fatal || !sess)
        return -EINVAL;
    SSL_CTX *ctx = SSL_get_SSL_CTX(t->ssl);
    SSL_CTX_up_ref(ctx);
    SSL_free(t->ssl);
    t->ssl = nullptr;
    t->rbio = t->wbio = nullptr;
    int rc = tls_setup(t, ctx, sess);
    if (rc < 0)
        rc = tls_setup(t, ctx, nullptr) < 0 ? -ENOMEM : -EINVAL;
    SSL_CTX_free(ctx);
    if (!t->ssl)
        t->fatal = -ENOMEM;
    return rc;
}

bool kx_tls_session_reused(const kx_tls *t)
{
    return SSL_session_reused(t->ssl) == 1;
}

const char *kx_tls_error(const kx_tls *t)
{
    return t->err;
}
