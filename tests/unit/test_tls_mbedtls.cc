// Unit tests for the mbedTLS backend of kubexec/tls.h (src/lib/tls_mbedtls.cc,
// the CLI's TLS): a kx_tls client pumped in memory against an OpenSSL server
// (tests/unit/ossl_server.h), with certificates made by kubexec/pki.h.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
// cmocka 1.1.5 has no extern "C" guards of its own.
extern "C" {
#include <cmocka.h>
}

#include "crypto_vectors.h"
#include "kubexec/pki.h"
#include "ossl_server.h"

static char *ca, *ca_key, *other_ca, *other_key, *srv_key, *srv_crt, *cli_key, *cli_crt;

static void must(int r, const char *what)
{
    if (r != 0) {
        fprintf(stderr, "fixture: %s failed: %d\n", what, r);
        abort();
    }
}

static int setup(void **)
{
    char e[256];
    must(kx_pki_new_key(&ca_key, e, sizeof e), "ca key");
    must(kx_pki_new_ca(ca_key, "kubexec-ca", 30, &ca, e, sizeof e), "ca");
    must(kx_pki_new_key(&other_key, e, sizeof e), "other key");
    must(kx_pki_new_ca(other_key, "other-ca", 30, &other_ca, e, sizeof e), "other ca");
    must(kx_pki_new_key(&srv_key, e, sizeof e), "server key");
    must(kx_pki_issue(ca, ca_key, srv_key, "kubexec-apiserver", nullptr,
                      "localhost\0" "127.0.0.1\0" "::1\0", KX_PKI_SERVER, 30, &srv_crt, e, sizeof e),
         "server cert");
    must(kx_pki_new_key(&cli_key, e, sizeof e), "client key");
    must(kx_pki_issue(ca, ca_key, cli_key, "admin", "system:masters", nullptr, KX_PKI_CLIENT, 30,
                      &cli_crt, e, sizeof e),
         "client cert");
    return 0;
}

static int teardown(void **)
{
    free(ca), free(ca_key), free(other_ca), free(other_key), free(srv_key), free(srv_crt),
        free(cli_key), free(cli_crt);
    return 0;
}

// A client context from PEM strings (what the CLI builds from a kubeconfig).
static kx_tls_ctx *client_ctx(const char *ca_pem, bool with_cert, bool insecure = false)
{
    kx_tls_client_pem p = {};
    p.ca = ca_pem;
    p.ca_len = ca_pem ? strlen(ca_pem) : 0;
    if (with_cert) {
        p.cert = cli_crt;
        p.cert_len = strlen(cli_crt);
        p.key = cli_key;
        p.key_len = strlen(cli_key);
    }
    p.insecure = insecure;
    kx_tls_pem_error why;
    kx_tls_ctx *c = kx_tls_client_ctx_pem(&p, &why);
    assert_non_null(c);
    assert_int_equal(why, KX_TLS_PEM_OK);
    return c;
}

struct conn {
    SSL_CTX *sctx;
    ossl_server s;
    ossl_client c;
};

static void conn_open(conn *k, kx_tls_ctx *cctx, const char *host, bool ask_client_cert = true)
{
    memset(k, 0, sizeof *k);
    k->sctx = ossl_server_ctx(srv_crt, srv_key, ask_client_cert ? ca : nullptr);
    ossl_server_start(&k->s, k->sctx);
    k->c.t = kx_tls_new(cctx, false, host);
    assert_non_null(k->c.t);
}

static void conn_close(conn *k)
{
    kx_tls_free(k->c.t);
    kx_buf_free(&k->c.in);
    ossl_server_free(&k->s);
    SSL_CTX_free(k->sctx);
}

static uint8_t *pattern(size_t n, uint32_t seed)
{
    uint8_t *p = static_cast<uint8_t *>(malloc(n));
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
    return p;
}

// Handshake (client certificate verified by the server), data both ways,
// close_notify both ways -- with the ciphertext cut into any pieces, and the
// server named by address (an IP SAN, checked by our callback) or by name.
static void handshake_data_close_in_any_pieces(void **)
{
    const size_t pieces[] = {0, 1, 7, 1000};
    const char *hosts[] = {"127.0.0.1", "::1", "localhost"};
    kx_tls_ctx *cctx = client_ctx(ca, true);
    for (const char *host : hosts) {
        for (size_t piece : pieces) {
            conn k;
            conn_open(&k, cctx, host);
            // Written before the handshake: queued, sent after it.
            assert_int_equal(kx_tls_write(k.c.t, (const uint8_t *)"early ", 6), 0);
            ossl_pump(&k.c, &k.s, piece);
            assert_int_equal(k.c.err, 0);
            assert_true(kx_tls_handshake_done(k.c.t));
            assert_true(k.s.done && !k.s.failed);
            X509 *peer = SSL_get1_peer_certificate(k.s.ssl);
            assert_non_null(peer);
            assert_int_equal(SSL_get_verify_result(k.s.ssl), X509_V_OK);
            X509_free(peer);
            assert_false(kx_tls_session_reused(k.c.t));

            size_t n = piece == 1 ? 5000 : 100000;
            uint8_t *up = pattern(n, 1), *down = pattern(n, 2);
            assert_int_equal(kx_tls_write(k.c.t, up, n), 0);
            size_t w = 0;
            assert_int_equal(SSL_write_ex(k.s.ssl, down, n, &w), 1);
            ossl_pump(&k.c, &k.s, piece);
            assert_int_equal(k.s.in.len, 6 + n);
            assert_memory_equal(k.s.in.data, "early ", 6);
            assert_memory_equal(k.s.in.data + 6, up, n);
            assert_int_equal(k.c.in.len, n);
            assert_memory_equal(k.c.in.data, down, n);

            // Client close_notify: the server reads EOF; later writes fail.
            assert_int_equal(kx_tls_close(k.c.t), 0);
            assert_int_equal(kx_tls_write(k.c.t, up, 1), -EPIPE);
            ossl_pump(&k.c, &k.s, piece);
            assert_true(k.s.eof);
            // Server close_notify: the client reads KX_TLS_EOF.
            SSL_shutdown(k.s.ssl);
            ossl_pump(&k.c, &k.s, piece);
            assert_true(k.c.eof);
            uint8_t b[8];
            assert_int_equal(kx_tls_read(k.c.t, b, sizeof b), KX_TLS_EOF);
            free(up);
            free(down);
            conn_close(&k);
        }
    }
    kx_tls_ctx_free(cctx);
}

// Each failure is fatal on the client, with the words Go's crypto/tls uses
// (what kubectl users see), and the server learns it from our alert.
static void verification_failures(void **)
{
    struct {
        const char *ca_pem, *host, *want;
    } cases[] = {
        {nullptr, "127.0.0.1", "x509: certificate signed by unknown authority"}, // other CA
        {ca, "10.1.2.3", "x509: certificate is not valid for 10.1.2.3"},
        {ca, "::2", "x509: certificate is not valid for ::2"},
        {ca, "www.example.com", "x509: certificate is not valid for www.example.com"},
    };
    for (auto &cs : cases) {
        kx_tls_ctx *cctx = client_ctx(cs.ca_pem ? cs.ca_pem : other_ca, true);
        conn k;
        conn_open(&k, cctx, cs.host);
        ossl_pump(&k.c, &k.s, 0);
        assert_int_equal(k.c.err, -EPROTO);
        assert_false(kx_tls_handshake_done(k.c.t));
        assert_non_null(strstr(kx_tls_error(k.c.t), cs.want));
        assert_non_null(strstr(kx_tls_error(k.c.t), "tls: failed to verify certificate"));
        assert_true(k.s.failed);
        // Fatal errors are sticky.
        assert_int_equal(kx_tls_write(k.c.t, (const uint8_t *)"x", 1), -EPROTO);
        assert_int_equal(kx_tls_feed(k.c.t, (const uint8_t *)"x", 1), -EPROTO);
        conn_close(&k);
        kx_tls_ctx_free(cctx);
    }
    // insecure-skip-tls-verify: the same untrusted server is accepted.
    kx_tls_ctx *cctx = client_ctx(nullptr, false, true);
    conn k;
    conn_open(&k, cctx, nullptr, false);
    ossl_pump(&k.c, &k.s, 0);
    assert_int_equal(k.c.err, 0);
    assert_true(kx_tls_handshake_done(k.c.t));
    conn_close(&k);
    kx_tls_ctx_free(cctx);
}

// The CLI's ticket cache: a saved session resumes (no certificate work on
// either side), the server still knows the client certificate; sessions are
// offered only before the ClientHello left; unreadable or expired bytes mean
// a full handshake.
static void resumption(void **)
{
    kx_tls_ctx *cctx = client_ctx(ca, true);
    SSL_CTX *sctx = ossl_server_ctx(srv_crt, srv_key, ca);
    uint8_t saved[8192];
    int saved_len = 0;
    for (int round = 0; round < 3; round++) {
        ossl_server s;
        ossl_server_start(&s, sctx);
        ossl_client c = {};
        c.t = kx_tls_new(cctx, false, "127.0.0.1");
        assert_int_equal(kx_tls_session_save(c.t, saved, sizeof saved), 0); // nothing yet
        if (round > 0)
            assert_int_equal(kx_tls_set_session(c.t, saved, (size_t)saved_len), 0);
        ossl_pump(&c, &s, round == 2 ? 1 : 0);
        assert_int_equal(c.err, 0);
        assert_true(kx_tls_handshake_done(c.t) && s.done);
        assert_int_equal(kx_tls_session_reused(c.t), round > 0);
        assert_int_equal(SSL_session_reused(s.ssl), round > 0);
        X509 *peer = SSL_get1_peer_certificate(s.ssl);
        assert_non_null(peer);
        X509_free(peer);
        if (round == 0) {
            uint8_t tiny[8];
            assert_int_equal(kx_tls_session_save(c.t, tiny, sizeof tiny), -EMSGSIZE);
            saved_len = kx_tls_session_save(c.t, saved, sizeof saved);
            assert_true(saved_len > 0);
        }
        assert_int_equal(kx_tls_set_session(c.t, saved, (size_t)saved_len), -EINVAL); // too late
        kx_tls_free(c.t);
        kx_buf_free(&c.in);
        ossl_server_free(&s);
    }
    // Unreadable bytes, and a session the server cannot resume (another
    // server, other ticket keys): full handshakes.
    for (int i = 0; i < 2; i++) {
        SSL_CTX *sctx2 = i ? ossl_server_ctx(srv_crt, srv_key, ca) : sctx;
        ossl_server s;
        ossl_server_start(&s, sctx2);
        ossl_client c = {};
        c.t = kx_tls_new(cctx, false, "127.0.0.1");
        if (i == 0)
            assert_int_equal(kx_tls_set_session(c.t, (const uint8_t *)"garbage", 7), -EINVAL);
        else
            assert_int_equal(kx_tls_set_session(c.t, saved, (size_t)saved_len), 0);
        ossl_pump(&c, &s, 0);
        assert_int_equal(c.err, 0);
        assert_true(kx_tls_handshake_done(c.t));
        assert_false(kx_tls_session_reused(c.t));
        kx_tls_free(c.t);
        kx_buf_free(&c.in);
        ossl_server_free(&s);
        if (i)
            SSL_CTX_free(sctx2);
    }
    // A ticket whose lifetime (the server's session timeout) is over.
    SSL_CTX_set_timeout(sctx, 1);
    ossl_server s;
    ossl_server_start(&s, sctx);
    ossl_client c = {};
    c.t = kx_tls_new(cctx, false, "127.0.0.1");
    ossl_pump(&c, &s, 0);
    int n = kx_tls_session_save(c.t, saved, sizeof saved);
    assert_true(n > 0);
    kx_tls_free(c.t);
    kx_buf_free(&c.in);
    ossl_server_free(&s);
    sleep(2);
    c.t = kx_tls_new(cctx, false, "127.0.0.1");
    assert_int_equal(kx_tls_set_session(c.t, saved, (size_t)n), -ESTALE);
    kx_tls_free(c.t);
    SSL_CTX_free(sctx);
    kx_tls_ctx_free(cctx);
}

// Moves ciphertext until both sides settle, the client reading with odd
// sizes (ossl_client_drain's `turn`).
static void settle(conn *k, size_t piece, size_t *turn)
{
    ossl_pump(&k->c, &k->s, piece, turn);
}

// Bulk records: after bulk_after bytes the client's records go through
// libcrypto (tls_records.cc) instead of mbedTLS, mid-stream, wherever the
// threshold falls -- the OpenSSL server must not notice: every byte arrives
// both ways in order, in any pieces, and close_notify still works both ways.
// Below the threshold, or with a ChaCha20 suite, mbedTLS carries on.
static void bulk_records_hand_over_mid_stream(void **)
{
    struct {
        size_t after, piece;
        const char *suite; // server's TLS 1.2 cipher list (null: default)
        bool want_fast;
    } cases[] = {
        {0, 0, nullptr, true},          {1, 7, nullptr, true},
        {5000, 1000, nullptr, true},    {70001, 0, nullptr, true},
        // Crossed while reading the server's first chunk: mid-record.
        {33456, 0, nullptr, true},      {33457, 7, nullptr, true},
        {1, 0, "ECDHE-ECDSA-AES256-GCM-SHA384", true},
        {1, 0, "ECDHE-ECDSA-CHACHA20-POLY1305", false},
        {SIZE_MAX, 0, nullptr, false},
    };
    const size_t total = 300000, chunk = 23456;
    uint8_t *up = pattern(total, 3), *down = pattern(total, 4);
    for (auto &tc : cases) {
        kx_tls_ctx *cctx = client_ctx(ca, true);
        kx_tls_ctx_bulk_after(cctx, tc.after);
        conn k;
        conn_open(&k, cctx, "127.0.0.1");
        if (tc.suite)
            assert_int_equal(SSL_set_cipher_list(k.s.ssl, tc.suite), 1);
        size_t turn = 0;
        settle(&k, tc.piece, &turn);
        assert_true(kx_tls_handshake_done(k.c.t));
        // Interleaved chunks each way, settling in between.
        for (size_t off = 0; off < total; off += chunk) {
            size_t n = total - off < chunk ? total - off : chunk;
            assert_int_equal(kx_tls_write(k.c.t, up + off, n), 0);
            size_t w = 0;
            assert_int_equal(SSL_write_ex(k.s.ssl, down + off, n, &w), 1);
            settle(&k, tc.piece, &turn);
            assert_int_equal(k.c.err, 0);
            assert_false(k.s.failed);
        }
        assert_int_equal(k.s.in.len, total);
        assert_memory_equal(k.s.in.data, up, total);
        assert_int_equal(k.c.in.len, total);
        assert_memory_equal(k.c.in.data, down, total);
        assert_int_equal(kx_tls_bulk_records(k.c.t), tc.want_fast);
        // A server's renegotiation request is declined with a warning (as
        // mbedTLS does); OpenSSL takes that as the end (handshake_failure).
        if (tc.want_fast && tc.after == 1 && !tc.suite) {
            assert_int_equal(SSL_renegotiate(k.s.ssl), 1);
            SSL_do_handshake(k.s.ssl);
            ERR_clear_error();
            settle(&k, tc.piece, &turn);
            assert_true(k.s.failed);
            assert_int_equal(ERR_GET_REASON(ERR_peek_last_error()), SSL_R_NO_RENEGOTIATION);
            assert_int_equal(k.c.err, -EPROTO);
            assert_non_null(strstr(kx_tls_error(k.c.t), "alert 40"));
            conn_close(&k);
            kx_tls_ctx_free(cctx);
            continue;
        }
        // close_notify both ways.
        assert_int_equal(kx_tls_close(k.c.t), 0);
        assert_int_equal(kx_tls_write(k.c.t, up, 1), -EPIPE);
        settle(&k, tc.piece, &turn);
        assert_true(k.s.eof);
        SSL_shutdown(k.s.ssl);
        settle(&k, tc.piece, &turn);
        assert_true(k.c.eof);
        uint8_t b[8];
        assert_int_equal(kx_tls_read(k.c.t, b, sizeof b), KX_TLS_EOF);
        conn_close(&k);
        kx_tls_ctx_free(cctx);
    }
    free(up);
    free(down);
}

// kx_tls_peek / kx_tls_consume on this backend: the client's ciphertext
// moved to the server by consuming odd amounts of what peek shows, before
// and after the bulk hand-over, arrives intact.
static void peek_and_consume_are_take(void **)
{
    kx_tls_ctx *cctx = client_ctx(ca, true);
    kx_tls_ctx_bulk_after(cctx, 100000);
    conn k;
    conn_open(&k, cctx, "127.0.0.1");
    size_t turn = 0;
    settle(&k, 0, &turn);
    const size_t len = 300000;
    uint8_t *up = pattern(len, 9);
    for (size_t off = 0; off < len; off += 50000) {
        assert_int_equal(kx_tls_write(k.c.t, up + off, 50000), 0);
        for (;;) {
            const uint8_t *p;
            size_t n = kx_tls_peek(k.c.t, &p);
            assert_int_equal(n, kx_tls_pending(k.c.t));
            if (n == 0)
                break;
            size_t m = 1 + (turn++ * 7919) % 5000;
            if (m > n)
                m = n;
            assert_int_equal(BIO_write(k.s.rbio, p, (int)m), (int)m);
            kx_tls_consume(k.c.t, m);
            ossl_server_step(&k.s);
        }
    }
    assert_true(kx_tls_bulk_records(k.c.t));
    assert_false(k.s.failed);
    assert_int_equal(k.s.in.len, len);
    assert_memory_equal(k.s.in.data, up, len);
    free(up);
    conn_close(&k);
    kx_tls_ctx_free(cctx);
}

// The threshold crossed by a write while mbedTLS holds half a record from
// the server: the hand-over waits for the record's end (else the rest of it
// would be parsed as a new record).
static void bulk_records_wait_for_a_whole_record(void **)
{
    kx_tls_ctx *cctx = client_ctx(ca, true);
    kx_tls_ctx_bulk_after(cctx, 1000);
    conn k;
    conn_open(&k, cctx, "127.0.0.1");
    size_t turn = 0;
    settle(&k, 0, &turn);
    size_t w = 0;
    assert_int_equal(SSL_write_ex(k.s.ssl, "first record", 12, &w), 1);
    uint8_t rec[512];
    int n = BIO_read(k.s.wbio, rec, sizeof rec);
    assert_true(n > 20);
    assert_int_equal(kx_tls_feed(k.c.t, rec, 10), 0);
    uint8_t b[64];
    assert_int_equal(kx_tls_read(k.c.t, b, sizeof b), 0); // mbedTLS took 10 bytes
    uint8_t *up = pattern(5000, 5);
    assert_int_equal(kx_tls_write(k.c.t, up, 5000), 0);
    assert_false(kx_tls_bulk_records(k.c.t));
    assert_int_equal(kx_tls_feed(k.c.t, rec + 10, (size_t)n - 10), 0);
    assert_int_equal(kx_tls_read(k.c.t, b, sizeof b), 12);
    assert_memory_equal(b, "first record", 12);
    assert_int_equal(kx_tls_write(k.c.t, up, 5000), 0);
    assert_true(kx_tls_bulk_records(k.c.t));
    assert_int_equal(SSL_write_ex(k.s.ssl, "second", 6, &w), 1);
    settle(&k, 0, &turn);
    assert_int_equal(k.c.err, 0);
    assert_int_equal(k.c.in.len, 6);
    assert_memory_equal(k.c.in.data, "second", 6);
    assert_int_equal(k.s.in.len, 10000);
    assert_memory_equal(k.s.in.data + 5000, up, 5000);
    free(up);
    conn_close(&k);
    kx_tls_ctx_free(cctx);
}

// After the hand-over a record that does not verify is fatal: the client
// says why, and its alert ends the server's side too. A record whose
// header announces more than TLS allows is refused before any decryption.
static void bulk_records_refuse_tampering(void **)
{
    for (int what = 0; what < 2; what++) {
        kx_tls_ctx *cctx = client_ctx(ca, true);
        kx_tls_ctx_bulk_after(cctx, 0);
        conn k;
        conn_open(&k, cctx, "127.0.0.1");
        size_t turn = 0;
        assert_int_equal(kx_tls_write(k.c.t, (const uint8_t *)"hello", 5), 0);
        settle(&k, 0, &turn);
        assert_int_equal(kx_tls_write(k.c.t, (const uint8_t *)"again", 5), 0);
        settle(&k, 0, &turn);
        assert_true(kx_tls_bulk_records(k.c.t));
        assert_int_equal(k.s.in.len, 10);
        size_t w = 0;
        assert_int_equal(SSL_write_ex(k.s.ssl, "secret", 6, &w), 1);
        uint8_t rec[512];
        int n = BIO_read(k.s.wbio, rec, sizeof rec);
        assert_true(n > 5 + 8 + 16);
        if (what == 0)
            rec[n - 3] ^= 0x20; // inside the tag
        else
            rec[3] = 0x50;      // length 0x50xx > 2^14 + 2048
        assert_int_equal(kx_tls_feed(k.c.t, rec, (size_t)n), 0);
        uint8_t b[64];
        assert_int_equal(kx_tls_read(k.c.t, b, sizeof b), -EPROTO);
        assert_non_null(strstr(kx_tls_error(k.c.t), what == 0 ? "bad record MAC" : "malformed"));
        assert_int_equal(kx_tls_read(k.c.t, b, sizeof b), -EPROTO); // sticky
        assert_int_equal(kx_tls_write(k.c.t, b, 1), -EPROTO);
        n = kx_tls_take(k.c.t, rec, sizeof rec);
        assert_true(n > 0);
        assert_int_equal(BIO_write(k.s.rbio, rec, n), n);
        ossl_server_step(&k.s);
        assert_true(k.s.failed);
        conn_close(&k);
        kx_tls_ctx_free(cctx);
    }
}

static void garbage_and_limits(void **)
{
    kx_tls_ctx *cctx = client_ctx(ca, false);
    kx_tls *t = kx_tls_new(cctx, false, "localhost");
    uint8_t buf[64];
    // The ClientHello is there at once.
    assert_true(kx_tls_pending(t) > 0);
    assert_int_equal(kx_tls_take(t, buf, 0), 0);
    while (kx_tls_take(t, buf, sizeof buf) > 0) {
    }
    assert_int_equal(kx_tls_pending(t), 0);
    // Nothing to read before the handshake; close before it is refused.
    assert_int_equal(kx_tls_read(t, buf, sizeof buf), 0);
    assert_int_equal(kx_tls_close(t), -ENOTCONN);
    // Unread ciphertext is bounded.
    uint8_t *big = static_cast<uint8_t *>(calloc(1, KX_TLS_MAX_QUEUE + 1));
    assert_int_equal(kx_tls_feed(t, big, KX_TLS_MAX_QUEUE + 1), -EMSGSIZE);
    // A complete handshake record of random bytes instead of a ServerHello.
    uint8_t *junk = pattern(5000, 7);
    junk[0] = 0x16, junk[1] = 0x03, junk[2] = 0x03;
    junk[3] = (uint8_t)((5000 - 5) >> 8);
    junk[4] = (uint8_t)((5000 - 5) & 0xff);
    assert_int_equal(kx_tls_feed(t, junk, 5000), 0);
    assert_int_equal(kx_tls_read(t, buf, sizeof buf), -EPROTO);
    assert_true(strlen(kx_tls_error(t)) > 0);
    // Plain HTTP from the "server".
    kx_tls_free(t);
    t = kx_tls_new(cctx, false, "localhost");
    assert_int_equal(kx_tls_feed(t, (const uint8_t *)"HTTP/1.1 400 Bad Request\r\n\r\n", 28), 0);
    assert_int_equal(kx_tls_read(t, buf, sizeof buf), -EPROTO);
    kx_tls_free(t);
    free(big);
    free(junk);
    kx_tls_ctx_free(cctx);
}

static void context_errors(void **)
{
    char err[256] = "";
    // A client backend only.
    assert_null(kx_tls_server_ctx("/x.crt", "/x.key", nullptr, KX_TLS_NO_CLIENT_CERT, err, sizeof err));
    assert_non_null(strstr(err, "no server side"));
    kx_tls_ctx *cctx = client_ctx(ca, false);
    assert_null(kx_tls_new(cctx, true, nullptr));
    assert_null(kx_tls_new(nullptr, false, nullptr));
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    assert_null(kx_tls_new(cctx, false, longname));
    kx_tls_ctx_free(cctx);

    // From files.
    char dir[] = "/tmp/kx-test-mbed-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char caf[64], crtf[64], keyf[64];
    snprintf(caf, sizeof caf, "%s/ca.crt", dir);
    snprintf(crtf, sizeof crtf, "%s/c.crt", dir);
    snprintf(keyf, sizeof keyf, "%s/c.key", dir);
    must(kx_pki_write_file(caf, ca, 0600), "ca");
    must(kx_pki_write_file(crtf, cli_crt, 0600), "crt");
    must(kx_pki_write_file(keyf, cli_key, 0600), "key");
    cctx = kx_tls_client_ctx(caf, crtf, keyf, err, sizeof err);
    assert_non_null(cctx);
    conn k;
    conn_open(&k, cctx, "localhost");
    ossl_pump(&k.c, &k.s, 0);
    assert_true(kx_tls_handshake_done(k.c.t));
    conn_close(&k);
    kx_tls_ctx_free(cctx);
    assert_null(kx_tls_client_ctx(caf, crtf, nullptr, err, sizeof err));
    assert_null(kx_tls_client_ctx("/nonexistent-ca.crt", nullptr, nullptr, err, sizeof err));
    assert_null(kx_tls_client_ctx(caf, crtf, caf, err, sizeof err)); // a cert is no key
    assert_true(strlen(err) > 0);
    // The key of another certificate.
    must(kx_pki_write_file(keyf, srv_key, 0600), "key");
    err[0] = 0;
    assert_null(kx_tls_client_ctx(caf, crtf, keyf, err, sizeof err));
    assert_non_null(strstr(err, "does not match"));
    // No CA: the system store (Debian's ca-certificates).
    cctx = kx_tls_client_ctx(nullptr, nullptr, nullptr, err, sizeof err);
    if (access("/etc/ssl/certs/ca-certificates.crt", R_OK) == 0)
        assert_non_null(cctx);
    kx_tls_ctx_free(cctx);
    unlink(caf), unlink(crtf), unlink(keyf), rmdir(dir);

    // PEM in memory: each reason.
    struct {
        const char *ca, *cert, *key;
        bool insecure;
        kx_tls_pem_error want;
    } bad[] = {
        {"garbage", nullptr, nullptr, false, KX_TLS_PEM_BAD_CA},
        {ca, nullptr, nullptr, true, KX_TLS_PEM_INSECURE_WITH_CA},
        {ca, "garbage", cli_key, false, KX_TLS_PEM_BAD_CERT},
        {ca, cli_crt, "garbage", false, KX_TLS_PEM_BAD_KEY},
        {ca, cli_crt, nullptr, false, KX_TLS_PEM_BAD_KEY},
        {ca, nullptr, cli_key, false, KX_TLS_PEM_BAD_CERT},
        {ca, cli_crt, srv_key, false, KX_TLS_PEM_KEY_MISMATCH},
    };
    for (auto &b : bad) {
        kx_tls_client_pem p = {};
        p.ca = b.ca, p.ca_len = b.ca ? strlen(b.ca) : 0;
        p.cert = b.cert, p.cert_len = b.cert ? strlen(b.cert) : 0;
        p.key = b.key, p.key_len = b.key ? strlen(b.key) : 0;
        p.insecure = b.insecure;
        kx_tls_pem_error why = KX_TLS_PEM_OK;
        assert_null(kx_tls_client_ctx_pem(&p, &why));
        assert_int_equal(why, b.want);
    }
    // A CA bundle with one unreadable block still loads the good one.
    char *bundle = nullptr;
    assert_true(asprintf(&bundle, "%s-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n", ca) > 0);
    kx_tls_ctx *bc = client_ctx(bundle, false);
    conn_open(&k, bc, "localhost", false);
    ossl_pump(&k.c, &k.s, 0);
    assert_true(kx_tls_handshake_done(k.c.t));
    conn_close(&k);
    kx_tls_ctx_free(bc);
    free(bundle);
}

// An RSA key as PEM (kubeadm's clusters use RSA keys and certificates).
static char *rsa_key_pem(void)
{
    EVP_PKEY *k = EVP_RSA_gen(2048);
    assert_non_null(k);
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr), 1);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *out = strndup(data, (size_t)n);
    BIO_free(b);
    EVP_PKEY_free(k);
    return out;
}

// RSA all the way: a server with an RSA certificate (ECDHE-RSA suites) and
// a client presenting an RSA certificate (its key matched by modulus and
// exponent); the key of another RSA certificate is refused.
static void rsa_server_and_client(void **)
{
    char e[256];
    char *skey = rsa_key_pem(), *ckey = rsa_key_pem(), *scrt = nullptr, *ccrt = nullptr;
    must(kx_pki_issue(ca, ca_key, skey, "rsa-server", nullptr, "localhost\0" "127.0.0.1\0",
                      KX_PKI_SERVER, 30, &scrt, e, sizeof e),
         "rsa server cert");
    must(kx_pki_issue(ca, ca_key, ckey, "rsa-admin", "system:masters", nullptr, KX_PKI_CLIENT, 30,
                      &ccrt, e, sizeof e),
         "rsa client cert");
    kx_tls_client_pem p = {};
    p.ca = ca, p.ca_len = strlen(ca);
    p.cert = ccrt, p.cert_len = strlen(ccrt);
    p.key = ckey, p.key_len = strlen(ckey);
    kx_tls_pem_error why;
    kx_tls_ctx *cctx = kx_tls_client_ctx_pem(&p, &why);
    assert_non_null(cctx);
    SSL_CTX *sctx = ossl_server_ctx(scrt, skey, ca);
    ossl_server s;
    ossl_server_start(&s, sctx);
    ossl_client c = {};
    c.t = kx_tls_new(cctx, false, "127.0.0.1");
    assert_int_equal(kx_tls_write(c.t, (const uint8_t *)"ping", 4), 0);
    ossl_pump(&c, &s, 0);
    assert_int_equal(c.err, 0);
    assert_true(kx_tls_handshake_done(c.t) && s.done && !s.failed);
    assert_int_equal(s.in.len, 4);
    X509 *peer = SSL_get1_peer_certificate(s.ssl);
    assert_non_null(peer);
    assert_int_equal(SSL_get_verify_result(s.ssl), X509_V_OK);
    X509_free(peer);
    kx_tls_free(c.t);
    kx_buf_free(&c.in);
    ossl_server_free(&s);
    SSL_CTX_free(sctx);
    kx_tls_ctx_free(cctx);
    // The RSA client certificate with the server's RSA key.
    p.key = skey, p.key_len = strlen(skey);
    assert_null(kx_tls_client_ctx_pem(&p, &why));
    assert_int_equal(why, KX_TLS_PEM_KEY_MISMATCH);
    free(skey), free(ckey), free(scrt), free(ccrt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handshake_data_close_in_any_pieces),
        cmocka_unit_test(verification_failures),
        cmocka_unit_test(resumption),
        cmocka_unit_test(bulk_records_hand_over_mid_stream),
        cmocka_unit_test(bulk_records_wait_for_a_whole_record),
        cmocka_unit_test(peek_and_consume_are_take),
        cmocka_unit_test(bulk_records_refuse_tampering),
        cmocka_unit_test(garbage_and_limits),
        cmocka_unit_test(context_errors),
        cmocka_unit_test(rsa_server_and_client),
        cmocka_unit_test(hashes_and_base64),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
