// Unit tests for kubexec/tls.h: a client and a server kx_tls pumped against
// each other in memory, with certificates made by kubexec/pki.h.
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

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "crypto_vectors.h"
#include "kubexec/pki.h"
#include "heap_in_use.h"
#include "pki_files.h"
#include "kubexec/tls.h"
#include "kubexec/util.h"

// This is the OpenSSL backend's test (tls.cc), whose kx_tls_ctx is an
// SSL_CTX: the test may tune it (protocol versions) through OpenSSL.
static SSL_CTX *ossl(kx_tls_ctx *c)
{
    return reinterpret_cast<SSL_CTX *>(c);
}

// --- Fixture: a PKI on disk -----------------------------------------------------

static char dir[64];
static char ca_crt[128], other_ca_crt[128], srv_crt[128], srv_key[128], cli_crt[128],
    cli_key[128], multi_crt[128];

// A client certificate with two O values (kx_pki_issue takes one), built
// directly with OpenSSL and signed by the CA.
static char *issue_multi_org(const char *ca_pem, const char *ca_key_pem, const char *key_pem)
{
    BIO *b = BIO_new_mem_buf(ca_pem, -1);
    X509 *ca = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    b = BIO_new_mem_buf(ca_key_pem, -1);
    EVP_PKEY *cakey = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    b = BIO_new_mem_buf(key_pem, -1);
    EVP_PKEY *key = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *nm = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_UTF8, (const unsigned char *)"system:masters",
                               -1, -1, 0);
    X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_UTF8, (const unsigned char *)"devs", -1, -1, 0);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8, (const unsigned char *)"alice", -1, -1,
                               0);
    X509_set_issuer_name(x, X509_get_subject_name(ca));
    X509_sign(x, cakey, EVP_sha256());
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *out = strndup(data, (size_t)n);
    BIO_free(b);
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(cakey);
    EVP_PKEY_free(key);
    return out;
}

static int setup(void **)
{
    snprintf(dir, sizeof dir, "/tmp/kx-test-tls-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char err[256];
    char *ca_key, *ca, *okey, *oca, *skey, *scrt, *ckey, *ccrt, *mcrt;
    must(kx_pki_new_key(&ca_key, err, sizeof err), "ca key");
    must(kx_pki_new_ca(ca_key, "kubexec-ca", 30, &ca, err, sizeof err), "ca");
    must(kx_pki_new_key(&okey, err, sizeof err), "other key");
    must(kx_pki_new_ca(okey, "other-ca", 30, &oca, err, sizeof err), "other ca");
    must(kx_pki_new_key(&skey, err, sizeof err), "server key");
    must(kx_pki_issue(ca, ca_key, skey, "kubexec-apiserver", nullptr,
                      "localhost\0" "127.0.0.1\0", KX_PKI_SERVER, 30, &scrt, err, sizeof err),
         "server cert");
    must(kx_pki_new_key(&ckey, err, sizeof err), "client key");
    must(kx_pki_issue(ca, ca_key, ckey, "admin", "system:masters", nullptr, KX_PKI_CLIENT, 30,
                      &ccrt, err, sizeof err),
         "client cert");
    mcrt = issue_multi_org(ca, ca_key, ckey);
    put_file(ca_crt, sizeof ca_crt, dir, "ca.crt", ca);
    put_file(other_ca_crt, sizeof other_ca_crt, dir, "other-ca.crt", oca);
    put_file(srv_crt, sizeof srv_crt, dir, "server.crt", scrt);
    put_file(srv_key, sizeof srv_key, dir, "server.key", skey);
    put_file(cli_crt, sizeof cli_crt, dir, "client.crt", ccrt);
    put_file(cli_key, sizeof cli_key, dir, "client.key", ckey);
    put_file(multi_crt, sizeof multi_crt, dir, "multi.crt", mcrt);
    free(ca_key), free(ca), free(okey), free(oca), free(skey), free(scrt), free(ckey),
        free(ccrt), free(mcrt);
    return 0;
}

static int teardown(void **)
{
    const char *files[] = {ca_crt, other_ca_crt, srv_crt, srv_key, cli_crt, cli_key, multi_crt};
    for (const char *f : files)
        unlink(f);
    rmdir(dir);
    return 0;
}

// --- The pump -------------------------------------------------------------------

struct peer {
    kx_tls *t;
    kx_buf in; // plaintext received
    int err;   // first fatal read error
    bool eof;
};

static uint32_t rng_state = 1;
static uint32_t rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

static void drain(peer *p)
{
    static uint8_t buf[16384];
    for (;;) {
        if (p->err || p->eof)
            return;
        int n = kx_tls_read(p->t, buf, sizeof buf);
        if (n > 0) {
            assert_int_equal(kx_buf_append(&p->in, buf, (size_t)n, 64u << 20), 0);
            continue;
        }
        if (n == KX_TLS_EOF)
            p->eof = true;
        else if (n < 0)
            p->err = n;
        return;
    }
}

// Moves ciphertext from -> to in pieces of `piece` bytes (0 = random 1..600).
// Returns the bytes moved.
static size_t step(peer *from, peer *to, size_t piece)
{
    static uint8_t buf[70000];
    size_t moved = 0;
    for (;;) {
        size_t want = piece ? piece : 1 + rng() % 600;
        int n = kx_tls_take(from->t, buf, want);
        if (n == 0)
            break;
        assert_true(n > 0 && (size_t)n <= want);
        moved += (size_t)n;
        int r = kx_tls_feed(to->t, buf, (size_t)n);
        if (r < 0) {
            to->err = to->err ? to->err : r;
            break;
        }
        drain(to);
    }
    return moved;
}

static void pump(peer *a, peer *b, size_t piece)
{
    drain(a);
    drain(b);
    for (int i = 0; i < 100000; i++) {
        size_t m = step(a, b, piece) + step(b, a, piece);
        if (m == 0)
            return;
    }
    fail_msg("pump did not settle");
}

static void peer_free(peer *p)
{
    kx_tls_free(p->t);
    kx_buf_free(&p->in);
    memset(p, 0, sizeof *p);
}

// Client and server over fresh contexts.
static void make_pair(peer *c, peer *s, const char *client_ca, const char *ccert, const char *ckey,
                      kx_tls_verify mode, const char *host, int max_version = 0)
{
    char err[256];
    kx_tls_ctx *sctx = kx_tls_server_ctx(srv_crt, srv_key, ca_crt, mode, err, sizeof err);
    if (!sctx)
        fail_msg("server ctx: %s", err);
    kx_tls_ctx *cctx = kx_tls_client_ctx(client_ca, ccert, ckey, err, sizeof err);
    if (!cctx)
        fail_msg("client ctx: %s", err);
    if (max_version) {
        SSL_CTX_set_max_proto_version(ossl(sctx), max_version);
        SSL_CTX_set_max_proto_version(ossl(cctx), max_version);
    }
    memset(c, 0, sizeof *c);
    memset(s, 0, sizeof *s);
    c->t = kx_tls_new(cctx, false, host);
    s->t = kx_tls_new(sctx, true, nullptr);
    assert_non_null(c->t);
    assert_non_null(s->t);
    // The connections hold their own references.
    kx_tls_ctx_free(sctx);
    kx_tls_ctx_free(cctx);
}

// --- Tests ----------------------------------------------------------------------

static void handshake_and_data_in_any_pieces(void **)
{
    const size_t pieces[] = {65536, 1, 7, 0};
    const int versions[] = {0, TLS1_2_VERSION};
    for (int v : versions) {
        for (size_t piece : pieces) {
            peer c, s;
            make_pair(&c, &s, ca_crt, cli_crt, cli_key, KX_TLS_REQUIRE_CLIENT_CERT, "127.0.0.1",
                      v);
            // The client starts the handshake by itself.
            assert_true(kx_tls_pending(c.t) > 0);
            assert_false(kx_tls_handshake_done(c.t));
            // Writes before the handshake are queued, not lost.
            assert_int_equal(kx_tls_write(c.t, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18), 0);
            assert_int_equal(kx_tls_write(c.t, (const uint8_t *)"", 0), 0);
            char cn[64], orgs[128];
            assert_int_equal(kx_tls_peer_subject(s.t, cn, sizeof cn, orgs, sizeof orgs),
                             -ENOENT);
            pump(&c, &s, piece);
            assert_int_equal(c.err, 0);
            assert_int_equal(s.err, 0);
            assert_true(kx_tls_handshake_done(c.t));
            assert_true(kx_tls_handshake_done(s.t));
            assert_int_equal(s.in.len, 18);
            assert_memory_equal(s.in.data, "GET / HTTP/1.1\r\n\r\n", 18);

            // The server sees the client certificate's CN and O.
            assert_int_equal(kx_tls_peer_subject(s.t, cn, sizeof cn, orgs, sizeof orgs), 0);
            assert_string_equal(cn, "admin");
            assert_string_equal(orgs, "system:masters");
            // The client sees the server's.
            assert_int_equal(kx_tls_peer_subject(c.t, cn, sizeof cn, orgs, sizeof orgs), 0);
            assert_string_equal(cn, "kubexec-apiserver");
            assert_string_equal(orgs, "");
            assert_int_equal(kx_tls_peer_subject(s.t, cn, 3, orgs, sizeof orgs), -EMSGSIZE);

            assert_int_equal(kx_tls_write(s.t, (const uint8_t *)"HTTP/1.1 200 OK\r\n\r\n", 19), 0);
            pump(&c, &s, piece);
            assert_int_equal(c.in.len, 19);
            assert_memory_equal(c.in.data, "HTTP/1.1 200 OK\r\n\r\n", 19);
            assert_string_equal(kx_tls_error(c.t), "");
            peer_free(&c);
            peer_free(&s);
        }
    }
}

static void one_mebibyte_both_ways(void **)
{
    const size_t len = 1u << 20;
    uint8_t *a = static_cast<uint8_t *>(malloc(len));
    uint8_t *b = static_cast<uint8_t *>(malloc(len));
    for (size_t i = 0; i < len; i++) {
        a[i] = (uint8_t)(i * 7 + 3);
        b[i] = (uint8_t)(i * 13 + (i >> 12));
    }
    const size_t pieces[] = {65536, 0};
    for (size_t piece : pieces) {
        peer c, s;
        make_pair(&c, &s, ca_crt, cli_crt, cli_key, KX_TLS_OPTIONAL_CLIENT_CERT, "localhost");
        // One big write before the handshake, one after.
        assert_int_equal(kx_tls_write(c.t, a, len), 0);
        pump(&c, &s, piece);
        assert_int_equal(kx_tls_write(s.t, b, len), 0);
        pump(&c, &s, piece);
        assert_int_equal(s.in.len, len);
        assert_memory_equal(s.in.data, a, len);
        assert_int_equal(c.in.len, len);
        assert_memory_equal(c.in.data, b, len);
        // Interleaved small writes in both directions.
        for (int i = 0; i < 100; i++) {
            assert_int_equal(kx_tls_write(c.t, a + i * 100, 100), 0);
            assert_int_equal(kx_tls_write(s.t, b + i * 100, 100), 0);
        }
        pump(&c, &s, piece);
        assert_int_equal(s.in.len, len + 10000);
        assert_memory_equal(s.in.data + len, a, 10000);
        assert_memory_equal(c.in.data + len, b, 10000);
        peer_free(&c);
        peer_free(&s);
    }
    free(a);
    free(b);
}

// After a burst, an idle connection gives its grown buffers back: 1 MiB
// each way (written at once, so the outgoing buffer holds all of it) leaves
// the pair holding no more than before, give or take 32 KiB.
// kx_tls_peek / kx_tls_consume hand out the same bytes as kx_tls_take, in
// place: 300 KB moved client -> server by consuming odd amounts of what peek
// shows (kx_conn sends straight from it) arrive intact; peek shows what
// pending says; consuming more than pending drops only what is there.
static void peek_and_consume_are_take(void **)
{
    peer c, s;
    make_pair(&c, &s, ca_crt, cli_crt, cli_key, KX_TLS_REQUIRE_CLIENT_CERT, "localhost");
    pump(&c, &s, 0);
    const size_t len = 300000;
    uint8_t *a = static_cast<uint8_t *>(malloc(len));
    for (size_t i = 0; i < len; i++)
        a[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(kx_tls_write(c.t, a, len), 0);
    size_t turn = 0;
    for (;;) {
        const uint8_t *p;
        size_t n = kx_tls_peek(c.t, &p);
        assert_int_equal(n, kx_tls_pending(c.t));
        if (n == 0)
            break;
        size_t k = 1 + (turn++ * 7919) % 5000;
        if (k > n)
            k = n;
        assert_int_equal(kx_tls_feed(s.t, p, k), 0);
        kx_tls_consume(c.t, k);
        drain(&s);
    }
    assert_int_equal(s.err, 0);
    assert_int_equal(s.in.len, len);
    assert_memory_equal(s.in.data, a, len);
    assert_int_equal(kx_tls_write(c.t, a, 10), 0);
    size_t n = kx_tls_pending(c.t);
    kx_tls_consume(c.t, n + 100);
    assert_int_equal(kx_tls_pending(c.t), 0);
    peer_free(&c);
    peer_free(&s);
    free(a);
}

static void idle_after_a_burst_keeps_no_buffers(void **)
{
    const size_t len = 1u << 20;
    uint8_t *a = static_cast<uint8_t *>(calloc(1, len));
    peer c, s;
    make_pair(&c, &s, ca_crt, cli_crt, cli_key, KX_TLS_OPTIONAL_CLIENT_CERT, "localhost");
    assert_int_equal(kx_tls_write(c.t, a, 100), 0);
    assert_int_equal(kx_tls_write(s.t, a, 100), 0);
    pump(&c, &s, 65536);
    kx_buf_free(&c.in);
    kx_buf_free(&s.in);
    size_t before = heap_in_use();
    assert_int_equal(kx_tls_write(c.t, a, len), 0);
    assert_int_equal(kx_tls_write(s.t, a, len), 0);
    pump(&c, &s, 65536);
    assert_int_equal(c.in.len, len);
    assert_int_equal(s.in.len, len);
    kx_buf_free(&c.in);
    kx_buf_free(&s.in);
    size_t after = heap_in_use();
    if (after > before + 32 * 1024)
        fail_msg("the idle pair holds %zu bytes more than before the burst", after - before);
    peer_free(&c);
    peer_free(&s);
    free(a);
}

static void subject_joins_all_orgs(void **)
{
    peer c, s;
    make_pair(&c, &s, ca_crt, multi_crt, cli_key, KX_TLS_REQUIRE_CLIENT_CERT, "localhost");
    pump(&c, &s, 65536);
    assert_int_equal(s.err, 0);
    char cn[64], orgs[128];
    assert_int_equal(kx_tls_peer_subject(s.t, cn, sizeof cn, orgs, sizeof orgs), 0);
    assert_string_equal(cn, "alice");
    assert_string_equal(orgs, "system:masters,devs");
    assert_int_equal(kx_tls_peer_subject(s.t, cn, sizeof cn, orgs, 15), -EMSGSIZE);
    assert_int_equal(kx_tls_peer_subject(s.t, cn, sizeof cn, orgs, 20), 0);
    peer_free(&c);
    peer_free(&s);
}

static void wrong_ca_fails_verification(void **)
{
    peer c, s;
    make_pair(&c, &s, other_ca_crt, nullptr, nullptr, KX_TLS_NO_CLIENT_CERT, "localhost");
    pump(&c, &s, 65536);
    assert_int_equal(c.err, -EPROTO);
    assert_false(kx_tls_handshake_done(c.t));
    assert_non_null(strstr(kx_tls_error(c.t), "certificate verify failed"));
    // The client's alert reached the server, which fails too.
    assert_int_equal(s.err, -EPROTO);
    // Sticky: every call reports it.
    uint8_t buf[16];
    assert_int_equal(kx_tls_read(c.t, buf, sizeof buf), -EPROTO);
    assert_int_equal(kx_tls_write(c.t, buf, 1), -EPROTO);
    assert_int_equal(kx_tls_feed(c.t, buf, 1), -EPROTO);
    assert_int_equal(kx_tls_close(c.t), -EPROTO);
    peer_free(&c);
    peer_free(&s);
}

static void wrong_host_fails_verification(void **)
{
    peer c, s;
    make_pair(&c, &s, ca_crt, nullptr, nullptr, KX_TLS_NO_CLIENT_CERT, "evil.example");
    pump(&c, &s, 65536);
    assert_int_equal(c.err, -EPROTO);
    assert_non_null(strstr(kx_tls_error(c.t), "certificate verify failed"));
    peer_free(&c);
    peer_free(&s);
    make_pair(&c, &s, ca_crt, nullptr, nullptr, KX_TLS_NO_CLIENT_CERT, "10.9.9.9");
    pump(&c, &s, 65536);
    assert_int_equal(c.err, -EPROTO);
    peer_free(&c);
    peer_free(&s);
}

static void close_notify_is_eof(void **)
{
    peer c, s;
    make_pair(&c, &s, ca_crt, cli_crt, cli_key, KX_TLS_REQUIRE_CLIENT_CERT, "127.0.0.1");
    assert_int_equal(kx_tls_close(c.t), -ENOTCONN); // nothing to close cleanly yet
    pump(&c, &s, 65536);
    assert_int_equal(kx_tls_write(c.t, (const uint8_t *)"last", 4), 0);
    assert_int_equal(kx_tls_close(c.t), 0);
    assert_int_equal(kx_tls_write(c.t, (const uint8_t *)"x", 1), -EPIPE);
    pump(&c, &s, 3);
    // Data before the close_notify arrives first, then EOF.
    assert_int_equal(s.in.len, 4);
    assert_memory_equal(s.in.data, "last", 4);
    assert_true(s.eof);
    assert_int_equal(s.err, 0);
    uint8_t buf[8];
    assert_int_equal(kx_tls_read(s.t, buf, sizeof buf), KX_TLS_EOF);
    // Half-close: the server may still send before its own close_notify.
    assert_int_equal(kx_tls_write(s.t, (const uint8_t *)"bye", 3), 0);
    assert_int_equal(kx_tls_close(s.t), 0);
    pump(&c, &s, 65536);
    assert_int_equal(c.err, 0);
    assert_int_equal(c.in.len, 3);
    assert_memory_equal(c.in.data, "bye", 3);
    assert_true(c.eof);
    assert_int_equal(kx_tls_read(c.t, buf, sizeof buf), KX_TLS_EOF);
    peer_free(&c);
    peer_free(&s);
}

static void required_client_cert_is_enforced(void **)
{
    const int versions[] = {0, TLS1_2_VERSION};
    for (int v : versions) {
        peer c, s;
        make_pair(&c, &s, ca_crt, nullptr, nullptr, KX_TLS_REQUIRE_CLIENT_CERT, "localhost", v);
        assert_int_equal(kx_tls_write(c.t, (const uint8_t *)"hi", 2), 0);
        pump(&c, &s, 65536);
        assert_int_equal(s.err, -EPROTO);
        assert_false(kx_tls_handshake_done(s.t));
        assert_int_equal(s.in.len, 0);
        assert_true(strlen(kx_tls_error(s.t)) > 0);
        // The client learns it from the server's alert (with TLS 1.3 after
        // its own handshake already looked done).
        assert_int_equal(c.err, -EPROTO);
        peer_free(&c);
        peer_free(&s);
    }

    // A client certificate from another CA is rejected as well.
    char err[256];
    kx_tls_ctx *sctx =
        kx_tls_server_ctx(srv_crt, srv_key, other_ca_crt, KX_TLS_OPTIONAL_CLIENT_CERT, err,
                          sizeof err);
    kx_tls_ctx *cctx = kx_tls_client_ctx(ca_crt, cli_crt, cli_key, err, sizeof err);
    assert_non_null(sctx);
    assert_non_null(cctx);
    peer c = {}, s = {};
    c.t = kx_tls_new(cctx, false, "localhost");
    s.t = kx_tls_new(sctx, true, nullptr);
    pump(&c, &s, 65536);
    assert_int_equal(s.err, -EPROTO);
    assert_non_null(strstr(kx_tls_error(s.t), "certificate verify failed"));
    peer_free(&c);
    peer_free(&s);
    kx_tls_ctx_free(sctx);
    kx_tls_ctx_free(cctx);
}

static void optional_and_no_client_cert(void **)
{
    peer c, s;
    char cn[64], orgs[64];
    make_pair(&c, &s, ca_crt, nullptr, nullptr, KX_TLS_OPTIONAL_CLIENT_CERT, "localhost");
    pump(&c, &s, 65536);
    assert_int_equal(s.err, 0);
    assert_true(kx_tls_handshake_done(s.t));
    assert_int_equal(kx_tls_peer_subject(s.t, cn, sizeof cn, orgs, sizeof orgs), -ENOENT);
    peer_free(&c);
    peer_free(&s);

    // Not asked for: a client that has a certificate does not send it.
    make_pair(&c, &s, ca_crt, cli_crt, cli_key, KX_TLS_NO_CLIENT_CERT, "localhost");
    pump(&c, &s, 65536);
    assert_int_equal(s.err, 0);
    assert_int_equal(kx_tls_peer_subject(s.t, cn, sizeof cn, orgs, sizeof orgs), -ENOENT);
    peer_free(&c);
    peer_free(&s);
}

// Session resumption across processes: a session saved from a first
// connection (kx_tls_session_save, after the tickets came with the first
// data), offered with kx_tls_set_session on a new client before its
// ClientHello left, resumes; the server still sees the client certificate's
// subject; offering after bytes left, on a server, or unreadable bytes is
// refused; a session from another server context is simply not resumed.
static void resumption(void **)
{
    char err[256];
    kx_tls_ctx *sctx = kx_tls_server_ctx(srv_crt, srv_key, ca_crt, KX_TLS_REQUIRE_CLIENT_CERT, err,
                                         sizeof err);
    kx_tls_ctx *cctx = kx_tls_client_ctx(ca_crt, cli_crt, cli_key, err, sizeof err);
    assert_non_null(sctx);
    assert_non_null(cctx);
    uint8_t saved[8192];
    int saved_len = 0;
    for (int round = 0; round < 3; round++) {
        peer c, s;
        memset(&c, 0, sizeof c);
        memset(&s, 0, sizeof s);
        c.t = kx_tls_new(cctx, false, "localhost");
        s.t = kx_tls_new(sctx, true, nullptr);
        assert_int_equal(kx_tls_session_save(c.t, saved + 0, sizeof saved), 0); // none yet
        if (round > 0) {
            assert_true(saved_len > 0);
            assert_int_equal(kx_tls_set_session(c.t, saved, (size_t)saved_len), 0);
        }
        // The server only sends its tickets after the handshake; a byte of
        // application data each way makes sure the client read them.
        pump(&c, &s, 0);
        assert_int_equal(kx_tls_write(c.t, (const uint8_t *)"a", 1), 0);
        assert_int_equal(kx_tls_write(s.t, (const uint8_t *)"b", 1), 0);
        pump(&c, &s, 0);
        assert_int_equal(c.err, 0);
        assert_int_equal(s.err, 0);
        assert_true(kx_tls_handshake_done(c.t) && kx_tls_handshake_done(s.t));
        assert_int_equal(kx_tls_session_reused(c.t), round > 0);
        assert_int_equal(kx_tls_session_reused(s.t), round > 0);
        char cn[128], orgs[256];
        assert_int_equal(kx_tls_peer_subject(s.t, cn, sizeof cn, orgs, sizeof orgs), 0);
        assert_true(cn[0] != 0);
        if (round == 0) {
            uint8_t tiny[8];
            assert_int_equal(kx_tls_session_save(c.t, tiny, sizeof tiny), -EMSGSIZE);
            saved_len = kx_tls_session_save(c.t, saved, sizeof saved);
            assert_true(saved_len > 0);
        }
        // Too late once the ClientHello left; never on a server.
        assert_int_equal(kx_tls_set_session(c.t, saved, (size_t)saved_len), -EINVAL);
        assert_int_equal(kx_tls_set_session(s.t, saved, (size_t)saved_len), -EINVAL);
        kx_tls_close(c.t);
        pump(&c, &s, 0);
        peer_free(&c);
        peer_free(&s);
    }
    // Unreadable bytes: refused, and the connection goes on with a full
    // handshake (a fresh context: cctx would offer the session it keeps).
    kx_tls_ctx *fresh = kx_tls_client_ctx(ca_crt, cli_crt, cli_key, err, sizeof err);
    peer c, s;
    memset(&c, 0, sizeof c);
    memset(&s, 0, sizeof s);
    c.t = kx_tls_new(fresh, false, "localhost");
    s.t = kx_tls_new(sctx, true, nullptr);
    assert_int_equal(kx_tls_set_session(c.t, (const uint8_t *)"not a session", 13), -EINVAL);
    pump(&c, &s, 0);
    assert_int_equal(c.err, 0);
    assert_true(kx_tls_handshake_done(c.t));
    assert_false(kx_tls_session_reused(c.t));
    peer_free(&c);
    peer_free(&s);
    kx_tls_ctx_free(fresh);
    // Another server (other ticket keys): a full handshake, not an error.
    kx_tls_ctx *sctx2 = kx_tls_server_ctx(srv_crt, srv_key, ca_crt, KX_TLS_REQUIRE_CLIENT_CERT, err,
                                          sizeof err);
    memset(&c, 0, sizeof c);
    memset(&s, 0, sizeof s);
    c.t = kx_tls_new(cctx, false, "localhost");
    s.t = kx_tls_new(sctx2, true, nullptr);
    assert_int_equal(kx_tls_set_session(c.t, saved, (size_t)saved_len), 0);
    pump(&c, &s, 0);
    assert_int_equal(c.err, 0);
    assert_true(kx_tls_handshake_done(c.t));
    assert_false(kx_tls_session_reused(c.t));
    peer_free(&c);
    peer_free(&s);
    kx_tls_ctx_free(sctx2);
    kx_tls_ctx_free(sctx);
    kx_tls_ctx_free(cctx);
}

// One connection of cctx to sctx as "host": handshake, a byte each way (TLS
// 1.3 tickets come after the handshake), no error, the server sees the
// client certificate's "admin". Returns whether the client resumed; c and s
// are left open for the caller to end.
static bool connect_once(kx_tls_ctx *cctx, kx_tls_ctx *sctx, const char *host, peer *c, peer *s)
{
    memset(c, 0, sizeof *c);
    memset(s, 0, sizeof *s);
    c->t = kx_tls_new(cctx, false, host);
    s->t = kx_tls_new(sctx, true, nullptr);
    pump(c, s, 0);
    assert_int_equal(kx_tls_write(c->t, (const uint8_t *)"a", 1), 0);
    assert_int_equal(kx_tls_write(s->t, (const uint8_t *)"b", 1), 0);
    pump(c, s, 0);
    assert_int_equal(c->err, 0);
    assert_int_equal(s->err, 0);
    char cn[128], orgs[256];
    assert_int_equal(kx_tls_peer_subject(s->t, cn, sizeof cn, orgs, sizeof orgs), 0);
    assert_string_equal(cn, "admin");
    assert_int_equal(kx_tls_session_reused(s->t), kx_tls_session_reused(c->t));
    return kx_tls_session_reused(c->t);
}

// A client context remembers the newest session per host: the next
// connection to the same name resumes by itself, another name does not,
// and a server that restarted (new ticket keys) costs a full handshake.
static void client_context_remembers_sessions(void **)
{
    char err[256];
    kx_tls_ctx *sctx = kx_tls_server_ctx(srv_crt, srv_key, ca_crt, KX_TLS_REQUIRE_CLIENT_CERT, err,
                                         sizeof err);
    kx_tls_ctx *cctx = kx_tls_client_ctx(ca_crt, cli_crt, cli_key, err, sizeof err);
    assert_non_null(sctx);
    assert_non_null(cctx);
    struct {
        const char *host;
        bool new_server, want_reused;
    } steps[] = {
        {"localhost", false, false}, {"localhost", false, true}, {"127.0.0.1", false, false},
        {"127.0.0.1", false, true},  {"localhost", false, true}, {"localhost", true, false},
        {"localhost", false, true},
    };
    for (auto &st : steps) {
        if (st.new_server) {
            kx_tls_ctx_free(sctx);
            sctx = kx_tls_server_ctx(srv_crt, srv_key, ca_crt, KX_TLS_REQUIRE_CLIENT_CERT, err,
                                     sizeof err);
        }
        peer c, s;
        assert_int_equal(connect_once(cctx, sctx, st.host, &c, &s), st.want_reused);
        // As kx_conn does: close_notify (OpenSSL forgets a session whose
        // connection ended without it, and the next handshake is full).
        kx_tls_close(c.t);
        pump(&c, &s, 0);
        peer_free(&c);
        peer_free(&s);
    }
    kx_tls_ctx_free(sctx);
    kx_tls_ctx_free(cctx);
}

// The usual end of an exec: one side hangs up without a close_notify from
// the other. The session stays resumable on both ends (the server keeps it
// in memory: no ticket), in TLS 1.3 and in TLS 1.2 (the CLI's mbedTLS).
// A connection that ended on a fatal error leaves nothing to resume.
static void unclean_end_keeps_the_session(void **)
{
    char err[256];
    for (int v12 = 0; v12 < 2; v12++) {
        kx_tls_ctx *sctx = kx_tls_server_ctx(srv_crt, srv_key, ca_crt, KX_TLS_REQUIRE_CLIENT_CERT,
                                             err, sizeof err);
        kx_tls_ctx *cctx = kx_tls_client_ctx(ca_crt, cli_crt, cli_key, err, sizeof err);
        assert_non_null(sctx);
        assert_non_null(cctx);
        if (v12)
            SSL_CTX_set_max_proto_version(ossl(cctx), TLS1_2_VERSION);
        for (int round = 0; round < 3; round++) {
            peer c, s;
            assert_int_equal(connect_once(cctx, sctx, "localhost", &c, &s), round > 0);
            peer_free(&c); // no close_notify either way
            peer_free(&s);
        }
        // A record that fails to decrypt is fatal on the server: its
        // session goes, and the next connection is a full handshake.
        peer c, s;
        memset(&c, 0, sizeof c);
        memset(&s, 0, sizeof s);
        c.t = kx_tls_new(cctx, false, "localhost");
        s.t = kx_tls_new(sctx, true, nullptr);
        pump(&c, &s, 0);
        assert_true(kx_tls_session_reused(s.t));
        assert_int_equal(kx_tls_write(c.t, (const uint8_t *)"abc", 3), 0);
        uint8_t rec[256];
        int n = kx_tls_take(c.t, rec, sizeof rec);
        assert_true(n > 8);
        rec[n - 1] ^= 1;
        assert_true(kx_tls_feed(s.t, rec, (size_t)n) < 0 || kx_tls_read(s.t, rec, sizeof rec) < 0);
        peer_free(&c);
        peer_free(&s);
        kx_tls_ctx *fresh = kx_tls_client_ctx(ca_crt, cli_crt, cli_key, err, sizeof err);
        memset(&c, 0, sizeof c);
        memset(&s, 0, sizeof s);
        c.t = kx_tls_new(cctx, false, "localhost");
        s.t = kx_tls_new(sctx, true, nullptr);
        pump(&c, &s, 0);
        assert_int_equal(c.err, 0);
        assert_false(kx_tls_session_reused(s.t));
        peer_free(&c);
        peer_free(&s);
        kx_tls_ctx_free(fresh);
        kx_tls_ctx_free(sctx);
        kx_tls_ctx_free(cctx);
    }
}

static void garbage_and_limits(void **)
{
    peer c, s;
    make_pair(&c, &s, ca_crt, nullptr, nullptr, KX_TLS_NO_CLIENT_CERT, "localhost");
    // Plain HTTP at a TLS server.
    assert_int_equal(kx_tls_feed(s.t, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18), 0);
    uint8_t buf[64];
    assert_int_equal(kx_tls_read(s.t, buf, sizeof buf), -EPROTO);
    assert_true(strlen(kx_tls_error(s.t)) > 0);
    // Unread ciphertext is bounded.
    uint8_t *big = static_cast<uint8_t *>(calloc(1, KX_TLS_MAX_QUEUE + 1));
    assert_int_equal(kx_tls_feed(c.t, big, KX_TLS_MAX_QUEUE + 1), -EMSGSIZE);
    // Random bytes at a client waiting for the ServerHello.
    RAND_bytes(big, 5000);
    big[0] = 0x16; // looks like a handshake record
    big[1] = 0x03;
    big[2] = 0x03;
    // ... whose length covers exactly the rest, so the garbage is a complete
    // record and must be refused now (a random length could leave OpenSSL
    // waiting for more bytes, or refuse it as too long, depending on luck).
    big[3] = (uint8_t)((5000 - 5) >> 8);
    big[4] = (uint8_t)((5000 - 5) & 0xff);
    assert_int_equal(kx_tls_feed(c.t, big, 5000), 0);
    assert_int_equal(kx_tls_read(c.t, buf, sizeof buf), -EPROTO);
    // take never fails.
    while (kx_tls_take(c.t, buf, sizeof buf) > 0) {
    }
    assert_int_equal(kx_tls_take(c.t, buf, 0), 0);
    free(big);
    peer_free(&c);
    peer_free(&s);
}

static void context_errors(void **)
{
    char err[256];
    err[0] = '\0';
    assert_null(kx_tls_server_ctx("/nonexistent.crt", srv_key, nullptr, KX_TLS_NO_CLIENT_CERT,
                                  err, sizeof err));
    assert_true(strlen(err) > 0);
    err[0] = '\0';
    assert_null(kx_tls_server_ctx(srv_crt, cli_key, nullptr, KX_TLS_NO_CLIENT_CERT, err,
                                  sizeof err));
    // OpenSSL already refuses the key that does not belong to the cert.
    assert_non_null(strstr(err, "private key"));
    assert_null(kx_tls_server_ctx(srv_crt, srv_key, nullptr, KX_TLS_REQUIRE_CLIENT_CERT, err,
                                  sizeof err));
    assert_null(kx_tls_client_ctx(ca_crt, cli_crt, nullptr, err, sizeof err));
    assert_null(kx_tls_client_ctx("/nonexistent-ca.crt", nullptr, nullptr, err, sizeof err));
    kx_tls_ctx *ok = kx_tls_client_ctx(nullptr, nullptr, nullptr, err, sizeof err);
    assert_non_null(ok);
    kx_tls_ctx_free(ok);
    assert_null(kx_tls_new(nullptr, true, nullptr));
    ERR_clear_error();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handshake_and_data_in_any_pieces),
        cmocka_unit_test(one_mebibyte_both_ways),
        cmocka_unit_test(peek_and_consume_are_take),
        cmocka_unit_test(idle_after_a_burst_keeps_no_buffers),
        cmocka_unit_test(subject_joins_all_orgs),
        cmocka_unit_test(wrong_ca_fails_verification),
        cmocka_unit_test(wrong_host_fails_verification),
        cmocka_unit_test(close_notify_is_eof),
        cmocka_unit_test(required_client_cert_is_enforced),
        cmocka_unit_test(optional_and_no_client_cert),
        cmocka_unit_test(resumption),
        cmocka_unit_test(client_context_remembers_sessions),
        cmocka_unit_test(unclean_end_keeps_the_session),
        cmocka_unit_test(hashes_and_base64),
        cmocka_unit_test(garbage_and_limits),
        cmocka_unit_test(context_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
