// Sans-I/O TLS client over mbedTLS 2.28; see kubexec/tls.h.
//
// The CLI's backend. mbedTLS reads and writes through two callbacks; ours
// never touch a socket: `recv` hands out ciphertext that kx_tls_feed queued
// (MBEDTLS_ERR_SSL_WANT_READ when there is none), `send` appends to the
// outgoing buffer that kx_tls_take drains (it always takes everything, so
// mbedTLS never sees WANT_WRITE). Every entry point calls drive(), which
// pushes the handshake as far as the queued input allows and then flushes
// plaintext written before the handshake finished -- the same shape as the
// OpenSSL backend (tls.cc).
//
// Client only and TLS 1.2 only (Debian's mbedTLS 2.28 has no TLS 1.3):
// kube-apiservers, ours included, accept TLS 1.2 with the ECDHE + AEAD
// suites offered here, which are Go's own TLS 1.2 defaults.
//
// Name checks: a DNS name goes to mbedTLS (SNI and its SAN / CN matching);
// mbedTLS 2.28 cannot match IP-address SANs, so for an IP the verify
// callback does it (iPAddress entries, RFC 5280 4.2.1.6), as Go and OpenSSL do.
//
// Bulk records: once a connection has moved bulk_after bytes (1 MiB unless
// kx_tls_ctx_bulk_after says otherwise) and mbedTLS holds nothing half-read,
// its records are protected by tls_records.cc (libcrypto's AES-GCM, 20x
// mbedTLS's speed) with the keys mbedTLS exported at the handshake and the
// sequence numbers counted here from the bytes that went through bio_send /
// bio_recv. mbedTLS keeps only the session (kx_tls_session_save). Without
// libcrypto, or for a ChaCha20 suite, mbedTLS carries on.
#include "tls_records.h"

#include "kubexec/crypto.h"
#include "kubexec/tls.h"
#include "kubexec/util.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>
#include <mbedtls/sha1.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

struct kx_tls_ctx {
    mbedtls_ssl_config conf;
    mbedtls_x509_crt ca;
    mbedtls_x509_crt own;   // leaf first, then its chain
    mbedtls_pk_context key;
    size_t bulk_after;      // see "Bulk records" above
    struct kx_tls *driving; // the connection inside mbedtls_ssl_handshake (for export_keys)
};

// Where a byte stream of TLS records stands: the header being collected,
// the body bytes still to come, and the sequence number of the next record
// once a ChangeCipherSpec (type 20) started the protected epoch.
struct rec_count {
    uint8_t hdr[5];
    uint8_t have;  // header bytes collected; 0 = at a record boundary
    size_t left;   // body bytes still to come
    uint64_t seq;
    bool keyed;
};

struct kx_tls {
    mbedtls_ssl_context ssl;
    kx_tls_ctx *ctx;
    kx_buf in;        // ciphertext fed, not yet read by mbedTLS (from in_off)
    size_t in_off;
    kx_buf out;       // ciphertext produced, not yet taken
    kx_buf queue;     // plaintext accepted before the handshake completed
    bool hs_done;
    bool closing;
    bool close_sent;
    bool eof;
    bool sent;        // kx_tls_take handed out bytes (the ClientHello left)
    bool resumed;
    uint8_t offered_id[32]; // session id sent with an offered session
    size_t offered_id_len;
    int fatal;
    bool ip;          // vhost is an address: checked by verify_cb
    uint8_t addr[16];
    size_t addr_len;
    char err[400];    // room for the fixed text and a whole vhost
    char vhost[256];
    // Bulk records
    rec_count rin, rout;  // what mbedTLS read and wrote
    uint64_t moved;       // plaintext bytes read + written
    uint8_t keys[2 * 32 + 2 * 4]; // client key, server key, client salt, server salt
    size_t key_len;       // 0: no usable keys (none yet, or not AES-GCM)
    kx_tlsrec *fast;      // set once libcrypto protects the records
    size_t pt_off, pt_len; // opened plaintext not yet read, inside `in`
    size_t rec_end;       // end of the opened record inside `in`
};

// Past this many bytes a connection is bulk: loading libcrypto (~2 ms once)
// costs less than mbedTLS's AES-GCM on the rest (3.3 ms per MiB).
static const size_t kBulkAfter = 1u << 20;

// Session tickets from servers that give no lifetime hint: trust them for
// the 2 hours OpenSSL and Go servers use by default.
static const uint32_t kDefaultSessionLifetime = 7200;

// Go's crypto/tls TLS 1.2 defaults (ECDHE, AEAD), AES-GCM first: AES-NI
// makes it the fastest here.
static const int kSuites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    0,
};

// Key exchange groups, fastest first. mbedTLS's default list starts with
// the largest NIST curves, and a server that follows the client's order
// picks one: a full handshake cost the CLI 9.1 ms of CPU instead of 6.3
// (perf stat, kubexec exec with the session cache off).
static const mbedtls_ecp_group_id kCurves[] = {
    MBEDTLS_ECP_DP_CURVE25519,
    MBEDTLS_ECP_DP_SECP256R1,
    MBEDTLS_ECP_DP_SECP384R1,
    MBEDTLS_ECP_DP_NONE,
};

static int rng(void *, unsigned char *out, size_t n)
{
    return kx_random(out, n) == 0 ? 0 : MBEDTLS_ERR_ENTROPY_SOURCE_FAILED;
}

static void set_err(char *err, size_t errlen, const char *what, int rc)
{
    if (!err || errlen == 0)
        return;
    if (rc) {
        char lib[160];
        mbedtls_strerror(rc, lib, sizeof lib);
        snprintf(err, errlen, "%s: %s", what, lib);
    } else {
        snprintf(err, errlen, "%s", what);
    }
}

// mbedTLS hands over the key block (RFC 5246 §6.3) of each handshake. Only
// AES-GCM's shape is kept: no MAC keys, 16- or 32-byte keys, 4-byte salts
// (ChaCha20-Poly1305 has 12-byte IVs and stays with mbedTLS).
static int export_keys(void *p, const unsigned char *, const unsigned char *kb, size_t maclen,
                       size_t keylen, size_t ivlen, const unsigned char *, const unsigned char *,
                       mbedtls_tls_prf_types)
{
    kx_tls *t = static_cast<kx_tls_ctx *>(p)->driving;
    if (!t)
        return 0;
    t->key_len = 0;
    if (maclen == 0 && (keylen == 16 || keylen == 32) && ivlen == 4) {
        memcpy(t->keys, kb, 2 * keylen + 2 * ivlen);
        t->key_len = keylen;
    }
    return 0;
}

// A context with no certificates yet: TLS 1.2 client, our suites, verify
// required (callers relax it for insecure).
static kx_tls_ctx *ctx_new(void)
{
    kx_tls_ctx *c = static_cast<kx_tls_ctx *>(calloc(1, sizeof *c));
    if (!c)
        return nullptr;
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_x509_crt_init(&c->ca);
    mbedtls_x509_crt_init(&c->own);
    mbedtls_pk_init(&c->key);
    if (mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) != 0) {
        kx_tls_ctx_free(c);
        return nullptr;
    }
    mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_ciphersuites(&c->conf, kSuites);
    mbedtls_ssl_conf_curves(&c->conf, kCurves);
    mbedtls_ssl_conf_rng(&c->conf, rng, nullptr);
    mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_renegotiation(&c->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    mbedtls_ssl_conf_export_keys_ext_cb(&c->conf, export_keys, c);
    c->bulk_after = kBulkAfter;
    return c;
}

void kx_tls_ctx_bulk_after(kx_tls_ctx *c, size_t bytes)
{
    c->bulk_after = bytes;
}

void kx_tls_ctx_free(kx_tls_ctx *c)
{
    if (!c)
        return;
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->ca);
    mbedtls_x509_crt_free(&c->own);
    mbedtls_pk_free(&c->key);
    free(c);
}

kx_tls_ctx *kx_tls_server_ctx(const char *, const char *, const char *, kx_tls_verify, char *err,
                              size_t errlen)
{
    set_err(err, errlen, "the mbedTLS backend has no server side", 0);
    return nullptr;
}

// The system's trust store: $SSL_CERT_FILE or the directories in
// $SSL_CERT_DIR when set (as OpenSSL and Go read them), else the bundle and
// directory Debian's ca-certificates maintains. 0, or -ENOENT if nothing
// could be read.
static int load_system_ca(mbedtls_x509_crt *ca)
{
    const char *file = getenv("SSL_CERT_FILE");
    const char *dirs = getenv("SSL_CERT_DIR");
    if (file && *file)
        return mbedtls_x509_crt_parse_file(ca, file) >= 0 ? 0 : -ENOENT;
    if (dirs && *dirs) {
        bool any = false;
        char dir[4096];
        for (const char *p = dirs; *p;) {
            size_t n = strcspn(p, ":");
            if (n > 0 && n < sizeof dir) {
                memcpy(dir, p, n);
                dir[n] = '\0';
                any |= mbedtls_x509_crt_parse_path(ca, dir) >= 0;
            }
            p += n + (p[n] == ':');
        }
        return any ? 0 : -ENOENT;
    }
    if (mbedtls_x509_crt_parse_file(ca, "/etc/ssl/certs/ca-certificates.crt") >= 0)
        return 0;
    return mbedtls_x509_crt_parse_path(ca, "/etc/ssl/certs") >= 0 ? 0 : -ENOENT;
}

// Does key belong to the certificate's public key? Compared by value (the
// EC point, or RSA's modulus and exponent), as Go's tls.X509KeyPair does:
// mbedtls_pk_check_pair() proves it with a private-key operation, ~1 ms of
// a CLI run that otherwise takes a few.
static bool key_matches(const mbedtls_pk_context *pub, const mbedtls_pk_context *key)
{
    mbedtls_pk_type_t tp = mbedtls_pk_get_type(pub), tk = mbedtls_pk_get_type(key);
    if ((tp == MBEDTLS_PK_ECKEY || tp == MBEDTLS_PK_ECDSA) && tk == MBEDTLS_PK_ECKEY) {
        const mbedtls_ecp_keypair *a = mbedtls_pk_ec(*pub), *b = mbedtls_pk_ec(*key);
        return a->grp.id == b->grp.id && mbedtls_ecp_point_cmp(&a->Q, &b->Q) == 0;
    }
    if (tp == MBEDTLS_PK_RSA && tk == MBEDTLS_PK_RSA) {
        const mbedtls_rsa_context *a = mbedtls_pk_rsa(*pub), *b = mbedtls_pk_rsa(*key);
        return mbedtls_mpi_cmp_mpi(&a->N, &b->N) == 0 && mbedtls_mpi_cmp_mpi(&a->E, &b->E) == 0;
    }
    return mbedtls_pk_check_pair(pub, key) == 0;
}

kx_tls_ctx *kx_tls_client_ctx(const char *ca_file, const char *cert_file, const char *key_file,
                              char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if ((cert_file == nullptr) != (key_file == nullptr)) {
        set_err(err, errlen, "client certificate and key go together", 0);
        return nullptr;
    }
    kx_tls_ctx *c = ctx_new();
    if (!c) {
        set_err(err, errlen, "out of memory", 0);
        return nullptr;
    }
    int r = ca_file ? mbedtls_x509_crt_parse_file(&c->ca, ca_file) : load_system_ca(&c->ca);
    if (r < 0) {
        set_err(err, errlen, "loading CA", ca_file ? r : 0);
        goto fail;
    }
    mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, nullptr);
    if (cert_file) {
        if ((r = mbedtls_x509_crt_parse_file(&c->own, cert_file)) < 0) {
            set_err(err, errlen, "loading certificate", r);
            goto fail;
        }
        if ((r = mbedtls_pk_parse_keyfile(&c->key, key_file, nullptr)) != 0) {
            set_err(err, errlen, "loading private key", r);
            goto fail;
        }
        if (!key_matches(&c->own.pk, &c->key)) {
            set_err(err, errlen, "private key does not match certificate", 0);
            goto fail;
        }
        if ((r = mbedtls_ssl_conf_own_cert(&c->conf, &c->own, &c->key)) != 0) {
            set_err(err, errlen, "using certificate", r);
            goto fail;
        }
    }
    return c;
fail:
    kx_tls_ctx_free(c);
    return nullptr;
}

// mbedTLS parses PEM only from a NUL-terminated buffer whose length counts
// the NUL; kubeconfig data is not terminated. r: the parser's result.
static int parse_pem(int (*fn)(void *, const unsigned char *, size_t), void *obj, const char *p,
                     size_t n)
{
    char *z = static_cast<char *>(malloc(n + 1));
    if (!z)
        return MBEDTLS_ERR_X509_ALLOC_FAILED;
    memcpy(z, p, n);
    z[n] = '\0';
    int r = fn(obj, reinterpret_cast<const unsigned char *>(z), n + 1);
    explicit_bzero(z, n); // may be a private key
    free(z);
    return r;
}

static int parse_crt(void *o, const unsigned char *p, size_t n)
{
    return mbedtls_x509_crt_parse(static_cast<mbedtls_x509_crt *>(o), p, n);
}

static int parse_key(void *o, const unsigned char *p, size_t n)
{
    return mbedtls_pk_parse_key(static_cast<mbedtls_pk_context *>(o), p, n, nullptr, 0);
}

kx_tls_ctx *kx_tls_client_ctx_pem(const kx_tls_client_pem *p, kx_tls_pem_error *why)
{
    kx_tls_pem_error e = KX_TLS_PEM_NOMEM;
    kx_tls_ctx *c = ctx_new();
    if (!c)
        goto fail;
    if (p->insecure && p->ca) {
        e = KX_TLS_PEM_INSECURE_WITH_CA;
        goto fail;
    }
    if (p->insecure) {
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
    } else {
        // A PEM with some unreadable blocks still counts (r > 0), as
        // client-go's AppendCertsFromPEM keeps what it can read.
        if (p->ca ? parse_pem(parse_crt, &c->ca, p->ca, p->ca_len) < 0 : false) {
            e = KX_TLS_PEM_BAD_CA;
            goto fail;
        }
        if (!p->ca && load_system_ca(&c->ca) < 0) {
            e = KX_TLS_PEM_NO_SYSTEM_CA;
            goto fail;
        }
        mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, nullptr);
    }
    if (p->cert || p->key) {
        if (!p->cert || !p->key) {
            e = p->cert ? KX_TLS_PEM_BAD_KEY : KX_TLS_PEM_BAD_CERT;
            goto fail;
        }
        // The leaf and then the chain sent after it.
        if (parse_pem(parse_crt, &c->own, p->cert, p->cert_len) < 0 || !c->own.raw.p) {
            e = KX_TLS_PEM_BAD_CERT;
            goto fail;
        }
        if (parse_pem(parse_key, &c->key, p->key, p->key_len) != 0) {
            e = KX_TLS_PEM_BAD_KEY;
            goto fail;
        }
        if (!key_matches(&c->own.pk, &c->key)) {
            e = KX_TLS_PEM_KEY_MISMATCH;
            goto fail;
        }
        if (mbedtls_ssl_conf_own_cert(&c->conf, &c->own, &c->key) != 0)
            goto fail;
    }
    *why = KX_TLS_PEM_OK;
    return c;
fail:
    kx_tls_ctx_free(c);
    *why = e;
    return nullptr;
}

// ---- the connection ----------------------------------------------------------------

static void rec_done(rec_count *c)
{
    if (c->hdr[0] == 20) { // ChangeCipherSpec: the next record is number 0
        c->keyed = true;
        c->seq = 0;
    } else if (c->keyed) {
        c->seq++;
    }
    c->have = 0;
}

static void rec_count_bytes(rec_count *c, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (c->have < 5) {
            c->hdr[c->have++] = *p++;
            n--;
            if (c->have == 5 && (c->left = kx_get_be16(c->hdr + 3)) == 0)
                rec_done(c);
            continue;
        }
        size_t k = n < c->left ? n : c->left;
        c->left -= k;
        p += k;
        n -= k;
        if (c->left == 0)
            rec_done(c);
    }
}

static int bio_send(void *p, const unsigned char *buf, size_t n)
{
    kx_tls *t = static_cast<kx_tls *>(p);
    if (n > INT_MAX)
        n = INT_MAX;
    // Unbounded here by contract: the caller watches kx_tls_pending.
    if (kx_buf_append(&t->out, buf, n, SIZE_MAX) < 0)
        return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    rec_count_bytes(&t->rout, buf, n);
    return (int)n;
}

static int bio_recv(void *p, unsigned char *buf, size_t n)
{
    kx_tls *t = static_cast<kx_tls *>(p);
    size_t avail = t->in.len - t->in_off;
    if (avail == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > avail)
        n = avail;
    if (n > INT_MAX)
        n = INT_MAX;
    memcpy(buf, t->in.data + t->in_off, n);
    rec_count_bytes(&t->rin, buf, n);
    t->in_off += n;
    if (t->in_off == t->in.len) {
        t->in.len = 0;
        t->in_off = 0;
    }
    return (int)n;
}

// Is the address in t->addr among the certificate's iPAddress SANs?
static bool ip_san_match(const kx_tls *t, const mbedtls_x509_crt *crt)
{
    for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s && s->buf.p; s = s->next)
        if (s->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) && s->buf.len == t->addr_len &&
            memcmp(s->buf.p, t->addr, t->addr_len) == 0)
            return true;
    return false;
}

static int verify_cb(void *p, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    kx_tls *t = static_cast<kx_tls *>(p);
    if (depth == 0 && t->ip && !ip_san_match(t, crt))
        *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
    return 0;
}

// Records a fatal error, worded as Go's crypto/tls words the common
// certificate failures (what kubectl users know), else mbedTLS's text.
static int set_fatal(kx_tls *t, const char *what, int rc)
{
    uint32_t vf = t->hs_done ? 0 : mbedtls_ssl_get_verify_result(&t->ssl);
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && vf != 0 && vf != (uint32_t)-1) {
        const char *why = nullptr;
        if (vf & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
            why = "x509: certificate signed by unknown authority";
        else if (vf & (MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE))
            why = "x509: certificate has expired or is not yet valid";
        if (why)
            snprintf(t->err, sizeof t->err, "tls: failed to verify certificate: %s", why);
        else if (vf & MBEDTLS_X509_BADCERT_CN_MISMATCH)
            snprintf(t->err, sizeof t->err,
                     "tls: failed to verify certificate: x509: certificate is not valid for %s",
                     t->vhost);
        else {
            char info[200];
            mbedtls_x509_crt_verify_info(info, sizeof info, "", vf);
            info[strcspn(info, "\n")] = '\0';
            snprintf(t->err, sizeof t->err, "tls: failed to verify certificate: %s", info);
        }
    } else {
        set_err(t->err, sizeof t->err, what, rc);
    }
    t->fatal = -EPROTO;
    return t->fatal;
}

static int flush_queue(kx_tls *t)
{
    size_t done = 0;
    while (done < t->queue.len) {
        int w = mbedtls_ssl_write(&t->ssl, t->queue.data + done, t->queue.len - done);
        if (w == MBEDTLS_ERR_SSL_WANT_READ || w == MBEDTLS_ERR_SSL_WANT_WRITE)
            break;
        if (w < 0)
            return set_fatal(t, "write", w);
        done += (size_t)w;
    }
    kx_buf_consume(&t->queue, done);
    if (t->queue.len == 0 && t->queue.data) // release the pre-handshake burst
        kx_buf_free(&t->queue);
    if (t->closing && !t->close_sent && t->queue.len == 0) {
        int r = mbedtls_ssl_close_notify(&t->ssl);
        if (r < 0 && r != MBEDTLS_ERR_SSL_WANT_READ && r != MBEDTLS_ERR_SSL_WANT_WRITE)
            return set_fatal(t, "shutdown", r);
        t->close_sent = true;
    }
    return 0;
}

static int drive(kx_tls *t)
{
    if (t->fatal)
        return t->fatal;
    if (!t->hs_done) {
        t->ctx->driving = t;
        int r = mbedtls_ssl_handshake(&t->ssl);
        t->ctx->driving = nullptr;
        if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
            return 0;
        if (r != 0)
            return set_fatal(t, "handshake", r);
        t->hs_done = true;
        // mbedTLS 2.28 has no "resumed?" accessor: a server that accepts
        // the session echoes the id our ClientHello carried with it.
        const mbedtls_ssl_session *s = t->ssl.session;
        t->resumed = t->offered_id_len && s && s->id_len == t->offered_id_len &&
                     memcmp(s->id, t->offered_id, s->id_len) == 0;
    }
    return flush_queue(t);
}

// (Re)builds the mbedTLS connection for t: name check, callbacks, an
// offered session; then the ClientHello so kx_tls_take has it at once.
static int tls_setup(kx_tls *t, const mbedtls_ssl_session *sess)
{
    mbedtls_ssl_init(&t->ssl);
    t->out.len = 0;
    memset(&t->rin, 0, sizeof t->rin);
    memset(&t->rout, 0, sizeof t->rout);
    if (mbedtls_ssl_setup(&t->ssl, &t->ctx->conf) != 0)
        return -ENOMEM;
    if (t->vhost[0] && !t->ip && mbedtls_ssl_set_hostname(&t->ssl, t->vhost) != 0)
        return -EINVAL;
    mbedtls_ssl_set_verify(&t->ssl, verify_cb, t);
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, nullptr);
    if (sess && mbedtls_ssl_set_session(&t->ssl, sess) != 0)
        return -EINVAL;
    drive(t);
    // The ClientHello is written: with a ticket it carries a fresh random id.
    t->offered_id_len = 0;
    if (sess && t->ssl.session_negotiate && t->ssl.session_negotiate->id_len <= 32) {
        t->offered_id_len = t->ssl.session_negotiate->id_len;
        memcpy(t->offered_id, t->ssl.session_negotiate->id, t->offered_id_len);
    }
    return 0;
}

kx_tls *kx_tls_new(kx_tls_ctx *ctx, bool server, const char *verify_host)
{
    if (!ctx || server || (verify_host && strlen(verify_host) >= sizeof(kx_tls{}.vhost)))
        return nullptr;
    kx_tls *t = static_cast<kx_tls *>(calloc(1, sizeof *t));
    if (!t)
        return nullptr;
    t->ctx = ctx;
    if (verify_host) {
        kx_strlcpy(t->vhost, verify_host, sizeof t->vhost);
        if (inet_pton(AF_INET, verify_host, t->addr) == 1) {
            t->ip = true;
            t->addr_len = 4;
        } else if (inet_pton(AF_INET6, verify_host, t->addr) == 1) {
            t->ip = true;
            t->addr_len = 16;
        }
    }
    if (tls_setup(t, nullptr) < 0) {
        kx_tls_free(t);
        return nullptr;
    }
    return t;
}

void kx_tls_free(kx_tls *t)
{
    if (!t)
        return;
    mbedtls_ssl_free(&t->ssl);
    kx_tlsrec_free(t->fast);
    mbedtls_platform_zeroize(t->keys, sizeof t->keys);
    kx_buf_free(&t->in);
    kx_buf_free(&t->out);
    kx_buf_free(&t->queue);
    free(t);
}

// ---- bulk records ------------------------------------------------------------------

// Hands the record layer to libcrypto when the connection is bulk and the
// hand-over is exact: handshake done, an AES-GCM suite's keys exported,
// nothing queued or closing, and mbedTLS between records both ways (no
// plaintext or partial record inside it). Otherwise it simply stays.
static void maybe_go_fast(kx_tls *t)
{
    if (t->fast || !t->key_len || t->moved < t->ctx->bulk_after || t->closing || t->eof ||
        t->queue.len || !t->hs_done)
        return;
    if (mbedtls_ssl_get_bytes_avail(&t->ssl) || mbedtls_ssl_check_pending(&t->ssl) ||
        t->rin.have || t->rout.have || !t->rin.keyed || !t->rout.keyed)
        return;
    size_t k = t->key_len;
    kx_tlsrec_keys keys = {t->keys, t->keys + k, k, t->keys + 2 * k, t->keys + 2 * k + 4,
                           t->rout.seq, t->rin.seq};
    int r = kx_tlsrec_new(&t->fast, &keys);
    // Tried once either way: without libcrypto mbedTLS carries on.
    mbedtls_platform_zeroize(t->keys, sizeof t->keys);
    t->key_len = 0;
    (void)r;
}

// A fatal alert to the server, then the sticky error.
static int fast_fail(kx_tls *t, uint8_t alert, const char *why)
{
    const uint8_t a[2] = {2, alert};
    kx_tlsrec_seal(t->fast, 21, a, sizeof a, &t->out);
    snprintf(t->err, sizeof t->err, "read: %s", why);
    t->fatal = -EPROTO;
    return t->fatal;
}

static int fast_write(kx_tls *t, uint8_t type, const uint8_t *p, size_t n)
{
    do {
        size_t k = n < KX_TLSREC_MAX_PLAIN ? n : KX_TLSREC_MAX_PLAIN;
        int r = kx_tlsrec_seal(t->fast, type, p, k, &t->out);
        if (r < 0) {
            snprintf(t->err, sizeof t->err, "write: record protection failed");
            t->fatal = r == -ENOMEM ? -ENOMEM : -EPROTO;
            return t->fatal;
        }
        p += k;
        n -= k;
    } while (n > 0);
    return 0;
}

static int fast_read(kx_tls *t, uint8_t *buf, size_t cap)
{
    for (;;) {
        if (t->pt_len) {
            size_t n = t->pt_len < cap ? t->pt_len : cap;
            if (n > INT_MAX)
                n = INT_MAX;
            memcpy(buf, t->in.data + t->pt_off, n);
            t->pt_off += n;
            t->pt_len -= n;
            if (t->pt_len == 0)
                t->in_off = t->rec_end;
            return (int)n;
        }
        if (t->in_off == t->in.len) {
            t->in.len = t->in_off = 0;
            return 0;
        }
        long rl = kx_tlsrec_next(t->in.data + t->in_off, t->in.len - t->in_off);
        if (rl < 0)
            return fast_fail(t, 50, "malformed record"); // decode_error
        if (rl == 0)
            return 0;
        uint8_t type = 0, *pt = nullptr;
        size_t ptn = 0;
        int r = kx_tlsrec_open(t->fast, t->in.data + t->in_off, (size_t)rl, &type, &pt, &ptn);
        if (r == -EBADMSG)
            return fast_fail(t, 20, "bad record MAC"); // bad_record_mac
        if (r < 0)
            return fast_fail(t, 22, "record overflow"); // record_overflow
        size_t end = t->in_off + (size_t)rl;
        if (type == 23) {
            t->pt_off = (size_t)(pt - t->in.data);
            t->pt_len = ptn;
            t->rec_end = end;
            t->in_off = ptn ? t->in_off : end;
            continue;
        }
        if (type == 21 && ptn == 2) {
            t->in_off = end;
            if (pt[1] == 0) { // close_notify
                t->eof = true;
                return KX_TLS_EOF;
            }
            if (pt[0] == 1) // other warnings change nothing
                continue;
            snprintf(t->err, sizeof t->err, "read: received fatal alert %u", pt[1]);
            t->fatal = -EPROTO;
            return t->fatal;
        }
        // A server's HelloRequest: declined with a warning, as mbedTLS does
        // with renegotiation off (RFC 5746 §4.2). Anything else is fatal.
        static const uint8_t hello_request[4] = {0, 0, 0, 0};
        if (type == 22 && ptn == 4 && memcmp(pt, hello_request, 4) == 0) {
            t->in_off = end;
            static const uint8_t no_renegotiation[2] = {1, 100};
            int w = fast_write(t, 21, no_renegotiation, sizeof no_renegotiation);
            if (w < 0)
                return w;
            continue;
        }
        return fast_fail(t, 10, "unexpected record"); // unexpected_message
    }
}


int kx_tls_feed(kx_tls *t, const uint8_t *p, size_t n)
{
    if (t->fatal)
        return t->fatal;
    if (n == 0)
        return 0;
    if (t->in_off) { // compact before growing
        kx_buf_consume(&t->in, t->in_off);
        t->pt_off -= t->pt_len ? t->in_off : 0;
        t->rec_end -= t->pt_len ? t->in_off : 0;
        t->in_off = 0;
    }
    if (n > KX_TLS_MAX_QUEUE || t->in.len > KX_TLS_MAX_QUEUE - n)
        return -EMSGSIZE;
    int r = kx_buf_append(&t->in, p, n, KX_TLS_MAX_QUEUE);
    if (r < 0)
        return r;
    // A handshake failure found here is reported by the next kx_tls_read, so
    // the caller still takes and sends our alert first.
    if (!t->fast)
        drive(t);
    return 0;
}

int kx_tls_read(kx_tls *t, uint8_t *buf, size_t cap)
{
    if (t->fatal)
        return t->fatal;
    if (t->eof)
        return KX_TLS_EOF;
    maybe_go_fast(t);
    if (t->fast) {
        int n = cap ? fast_read(t, buf, cap) : 0;
        t->moved += n > 0 ? (uint64_t)n : 0;
        return n;
    }
    int r = drive(t);
    if (r < 0)
        return r;
    if (!t->hs_done || cap == 0)
        return 0;
    if (cap > INT_MAX)
        cap = INT_MAX;
    r = mbedtls_ssl_read(&t->ssl, buf, cap);
    if (r > 0) {
        t->moved += (uint64_t)r;
        return r;
    }
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
        return 0;
    if (r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || r == 0) {
        t->eof = true;
        return KX_TLS_EOF;
    }
    return set_fatal(t, "read", r);
}

int kx_tls_write(kx_tls *t, const uint8_t *p, size_t n)
{
    if (t->fatal)
        return t->fatal;
    if (t->closing)
        return -EPIPE;
    if (n == 0)
        return t->fast ? 0 : drive(t);
    t->moved += n;
    maybe_go_fast(t);
    if (t->fast)
        return fast_write(t, 23, p, n);
    if (t->hs_done && t->queue.len == 0) {
        // Fast path: straight into records (bio_send takes everything).
        while (n > 0) {
            int w = mbedtls_ssl_write(&t->ssl, p, n);
            if (w == MBEDTLS_ERR_SSL_WANT_READ || w == MBEDTLS_ERR_SSL_WANT_WRITE)
                break; // queue the rest below
            if (w < 0)
                return set_fatal(t, "write", w);
            p += w;
            n -= (size_t)w;
        }
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
    size_t n = t->out.len < cap ? t->out.len : cap;
    if (n > INT_MAX)
        n = INT_MAX;
    if (n == 0)
        return 0;
    memcpy(buf, t->out.data, n);
    kx_buf_consume(&t->out, n);
    t->sent = true;
    return (int)n;
}

size_t kx_tls_peek(const kx_tls *t, const uint8_t **p)
{
    *p = t->out.data;
    return t->out.len;
}

void kx_tls_consume(kx_tls *t, size_t n)
{
    if (n == 0)
        return;
    kx_buf_consume(&t->out, n < t->out.len ? n : t->out.len);
    t->sent = true;
}

size_t kx_tls_pending(const kx_tls *t)
{
    return t->out.len;
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
    if (t->fast) {
        if (t->close_sent)
            return 0;
        static const uint8_t close_notify[2] = {1, 0};
        t->close_sent = true;
        return fast_write(t, 21, close_notify, sizeof close_notify);
    }
    return drive(t);
}

int kx_tls_peer_subject(const kx_tls *, char *cn, size_t cncap, char *orgs, size_t orgcap)
{
    // Only servers authenticate users by their certificate; this backend is
    // a client.
    if (cncap)
        cn[0] = '\0';
    if (orgcap)
        orgs[0] = '\0';
    return -ENOENT;
}

int kx_tls_set_session(kx_tls *t, const uint8_t *p, size_t n)
{
    if (t->sent || t->hs_done || t->fatal || !p || n == 0)
        return -EINVAL;
    mbedtls_ssl_session s;
    mbedtls_ssl_session_init(&s);
    int rc = 0;
    if (mbedtls_ssl_session_load(&s, p, n) != 0) {
        rc = -EINVAL;
    } else {
        uint32_t life = s.ticket_lifetime ? s.ticket_lifetime : kDefaultSessionLifetime;
        time_t now = time(nullptr);
        if (now < s.start || now - s.start >= (time_t)life)
            rc = -ESTALE;
    }
    if (rc == 0) {
        // The ClientHello made in kx_tls_new did not leave: make it again,
        // carrying the session.
        mbedtls_ssl_free(&t->ssl);
        rc = tls_setup(t, &s);
        if (rc < 0) {
            mbedtls_ssl_free(&t->ssl);
            if (tls_setup(t, nullptr) < 0)
                t->fatal = -ENOMEM;
        }
    }
    mbedtls_ssl_session_free(&s);
    return rc;
}

int kx_tls_session_save(const kx_tls *t, uint8_t *buf, size_t cap)
{
    if (!t->hs_done)
        return 0;
    mbedtls_ssl_session s;
    mbedtls_ssl_session_init(&s);
    size_t len = 0;
    int rc = 0;
    if (mbedtls_ssl_get_session(&t->ssl, &s) == 0) {
        int r = mbedtls_ssl_session_save(&s, buf, cap, &len);
        rc = r == 0 ? (len > INT_MAX ? -EMSGSIZE : (int)len)
             : r == MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL ? -EMSGSIZE : 0;
    }
    mbedtls_ssl_session_free(&s);
    return rc;
}

bool kx_tls_bulk_records(const kx_tls *t)
{
    return t->fast != nullptr;
}

bool kx_tls_session_reused(const kx_tls *t)
{
    return t->hs_done && t->resumed;
}

const char *kx_tls_error(const kx_tls *t)
{
    return t->err;
}

// ---- kubexec/crypto.h hashes ----------------------------------------------------

int kx_sha1(const void *a, size_t an, const void *b, size_t bn, uint8_t out[20])
{
    mbedtls_sha1_context c;
    mbedtls_sha1_init(&c);
    int r = mbedtls_sha1_starts_ret(&c);
    if (!r)
        r = mbedtls_sha1_update_ret(&c, static_cast<const unsigned char *>(a), an);
    if (!r && bn)
        r = mbedtls_sha1_update_ret(&c, static_cast<const unsigned char *>(b), bn);
    if (!r)
        r = mbedtls_sha1_finish_ret(&c, out);
    mbedtls_sha1_free(&c);
    return r ? -EIO : 0;
}

int kx_sha256(const void *a, size_t an, const void *b, size_t bn, uint8_t out[32])
{
    mbedtls_sha256_context c;
    mbedtls_sha256_init(&c);
    int r = mbedtls_sha256_starts_ret(&c, 0);
    if (!r)
        r = mbedtls_sha256_update_ret(&c, static_cast<const unsigned char *>(a), an);
    if (!r && bn)
        r = mbedtls_sha256_update_ret(&c, static_cast<const unsigned char *>(b), bn);
    if (!r)
        r = mbedtls_sha256_finish_ret(&c, out);
    mbedtls_sha256_free(&c);
    return r ? -EIO : 0;
}
