// tests/unit/ossl_server.h - for tests of the mbedTLS client backend
// (src/lib/tls_mbedtls.cc): a TLS server made directly with OpenSSL, the
// library the daemons serve with, pumped in memory against a kx_tls client.
// Header-only; include after cmocka.h.
#pragma once

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "kubexec/tls.h"
#include "kubexec/util.h"

// A server context from PEM strings. ca_pem: ask for a client certificate
// and verify it against this CA (null: do not ask).
static inline SSL_CTX *ossl_server_ctx(const char *cert_pem, const char *key_pem, const char *ca_pem)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    BIO *b = BIO_new_mem_buf(cert_pem, -1);
    X509 *x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    b = BIO_new_mem_buf(key_pem, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, k), 1);
    X509_free(x);
    EVP_PKEY_free(k);
    if (ca_pem) {
        b = BIO_new_mem_buf(ca_pem, -1);
        x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
        BIO_free(b);
        X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), x);
        X509_free(x);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        static const unsigned char sid[] = "test";
        SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
    }
    return ctx;
}

struct ossl_server {
    SSL *ssl;
    BIO *rbio, *wbio; // owned by ssl
    kx_buf in;        // plaintext received
    bool done;        // handshake complete
    bool failed;
    bool eof;         // client's close_notify
};

struct ossl_client {
    kx_tls *t;
    kx_buf in;
    int err;          // first fatal kx_tls_read error
    bool eof;
};

static inline void ossl_server_start(ossl_server *s, SSL_CTX *ctx)
{
    memset(s, 0, sizeof *s);
    s->ssl = SSL_new(ctx);
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(s->rbio, -1);
    BIO_set_mem_eof_return(s->wbio, -1);
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    SSL_set_accept_state(s->ssl);
}

static inline void ossl_server_free(ossl_server *s)
{
    SSL_free(s->ssl);
    kx_buf_free(&s->in);
    ERR_clear_error();
}

static inline void ossl_server_step(ossl_server *s)
{
    if (s->failed)
        return;
    if (!s->done) {
        int r = SSL_do_handshake(s->ssl);
        if (r == 1)
            s->done = true;
        else if (SSL_get_error(s->ssl, r) != SSL_ERROR_WANT_READ)
            s->failed = true;
    }
    uint8_t buf[16384];
    while (s->done && !s->eof) {
        size_t n = 0;
        if (SSL_read_ex(s->ssl, buf, sizeof buf, &n) == 1) {
            assert_int_equal(kx_buf_append(&s->in, buf, n, 64u << 20), 0);
            continue;
        }
        int e = SSL_get_error(s->ssl, 0);
        if (e == SSL_ERROR_ZERO_RETURN)
            s->eof = true;
        else if (e != SSL_ERROR_WANT_READ)
            s->failed = true;
        break;
    }
}

// Reads everything readable: 16 KiB at a time, or, with `turn`, with read
// sizes cycling through 1..2999 (so a backend often holds plaintext back).
static inline void ossl_client_drain(ossl_client *c, size_t *turn = nullptr)
{
    uint8_t buf[16384];
    while (!c->err && !c->eof) {
        size_t cap = turn ? 1 + (*turn)++ * 7919 % 2999 : sizeof buf;
        int n = kx_tls_read(c->t, buf, cap);
        if (n > 0) {
            assert_int_equal(kx_buf_append(&c->in, buf, (size_t)n, 64u << 20), 0);
            continue;
        }
        if (n == KX_TLS_EOF)
            c->eof = true;
        else if (n < 0)
            c->err = n;
        return;
    }
}

// Moves ciphertext both ways in pieces of `piece` bytes (0: all at once)
// until neither side has anything to send; the client drains as
// ossl_client_drain(c, turn) does.
static inline void ossl_pump(ossl_client *c, ossl_server *s, size_t piece, size_t *turn = nullptr)
{
    static uint8_t buf[70000];
    ossl_client_drain(c, turn);
    ossl_server_step(s);
    for (int round = 0; round < 100000; round++) {
        size_t moved = 0;
        for (;;) {
            int n = kx_tls_take(c->t, buf, piece ? piece : sizeof buf);
            if (n <= 0)
                break;
            moved += (size_t)n;
            assert_int_equal(BIO_write(s->rbio, buf, n), n);
            ossl_server_step(s);
        }
        for (;;) {
            int n = BIO_read(s->wbio, buf, (int)(piece ? piece : sizeof buf));
            if (n <= 0)
                break;
            moved += (size_t)n;
            if (kx_tls_feed(c->t, buf, (size_t)n) < 0 && !c->err)
                c->err = -EPROTO;
            ossl_client_drain(c, turn);
        }
        if (moved == 0)
            return;
    }
    fail_msg("pump did not settle");
}
