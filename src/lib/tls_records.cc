// TLS 1.2 AES-GCM records through libcrypto loaded at run time; see
// tls_records.h for why.
//
// libcrypto is opened with dlopen, not linked: the CLI's short commands
// (exec true, get) never pay for loading and initialising OpenSSL 3; only a
// connection that carries bulk data does, once per process.
#include "tls_records.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

namespace {

// The few libcrypto entry points used, typed from OpenSSL's own header.
struct evp_api {
    decltype(&EVP_CIPHER_CTX_new) ctx_new;
    decltype(&EVP_CIPHER_CTX_free) ctx_free;
    decltype(&EVP_aes_128_gcm) aes128gcm;
    decltype(&EVP_aes_256_gcm) aes256gcm;
    decltype(&EVP_CipherInit_ex) init;
    decltype(&EVP_CIPHER_CTX_ctrl) ctrl;
    decltype(&EVP_CipherUpdate) update;
    decltype(&EVP_CipherFinal_ex) final;
};

// 0 untried, 1 loaded, -1 unavailable (tried once per process).
int g_state;
evp_api g_evp;

template <typename F> bool sym(void *h, const char *name, F *out)
{
    void *p = dlsym(h, name);
    *out = reinterpret_cast<F>(p);
    return p != nullptr;
}

bool load_evp(void)
{
    if (g_state)
        return g_state > 0;
    g_state = -1;
    // The soname of Debian 12's libssl3 (and of OpenSSL 3 builds elsewhere).
    void *h = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return false;
    evp_api e;
    if (!sym(h, "EVP_CIPHER_CTX_new", &e.ctx_new) || !sym(h, "EVP_CIPHER_CTX_free", &e.ctx_free) ||
        !sym(h, "EVP_aes_128_gcm", &e.aes128gcm) || !sym(h, "EVP_aes_256_gcm", &e.aes256gcm) ||
        !sym(h, "EVP_CipherInit_ex", &e.init) || !sym(h, "EVP_CIPHER_CTX_ctrl", &e.ctrl) ||
        !sym(h, "EVP_CipherUpdate", &e.update) || !sym(h, "EVP_CipherFinal_ex", &e.final)) {
        dlclose(h);
        return false;
    }
    // Kept open for the life of the process: contexts may outlive any one
    // connection, and OpenSSL does not like being unloaded.
    g_evp = e;
    g_state = 1;
    return true;
}

} // namespace

struct kx_tlsrec {
    EVP_CIPHER_CTX *enc, *dec;
    uint8_t wsalt[4], rsalt[4];
    uint64_t wseq, rseq;
    bool broken; // libcrypto failed once: nothing more is sealed
};

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

// Additional data of a record (RFC 5246 §6.2.3.3): seq, type, version,
// plaintext length.
static void make_aad(uint8_t aad[13], uint64_t seq, uint8_t type, size_t plain_len)
{
    put_be64(aad, seq);
    aad[8] = type;
    aad[9] = 3;
    aad[10] = 3;
    aad[11] = (uint8_t)(plain_len >> 8);
    aad[12] = (uint8_t)plain_len;
}

int kx_tlsrec_new(kx_tlsrec **out, const kx_tlsrec_keys *k)
{
    *out = nullptr;
    if (k->key_len != 16 && k->key_len != 32)
        return -EINVAL;
    if (!load_evp())
        return -ENOSYS;
    kx_tlsrec *r = static_cast<kx_tlsrec *>(calloc(1, sizeof *r));
    if (!r)
        return -ENOMEM;
    r->enc = g_evp.ctx_new();
    r->dec = g_evp.ctx_new();
    const EVP_CIPHER *c = k->key_len == 16 ? g_evp.aes128gcm() : g_evp.aes256gcm();
    // The default GCM nonce length is the 12 bytes TLS uses.
    if (!r->enc || !r->dec || !c || g_evp.init(r->enc, c, nullptr, k->write_key, nullptr, 1) != 1 ||
        g_evp.init(r->dec, c, nullptr, k->read_key, nullptr, 0) != 1) {
        kx_tlsrec_free(r);
        return -ENOMEM;
    }
    memcpy(r->wsalt, k->write_salt, 4);
    memcpy(r->rsalt, k->read_salt, 4);
    r->wseq = k->write_seq;
    r->rseq = k->read_seq;
    *out = r;
    return 0;
}

void kx_tlsrec_free(kx_tlsrec *r)
{
    if (!r)
        return;
    // EVP_CIPHER_CTX_free wipes the key schedule.
    g_evp.ctx_free(r->enc);
    g_evp.ctx_free(r->dec);
    free(r);
}

int kx_tlsrec_seal(kx_tlsrec *r, uint8_t type, const uint8_t *p, size_t n, kx_buf *out)
{
    if (r->broken)
        return -EPROTO;
    if (n > KX_TLSREC_MAX_PLAIN)
        return -EINVAL;
    size_t start = out->len;
    size_t body = 8 + n + 16;
    uint8_t head[13] = {type, 3, 3, (uint8_t)(body >> 8), (uint8_t)body};
    put_be64(head + 5, r->wseq); // explicit nonce: the sequence number, as OpenSSL and mbedTLS do
    static const uint8_t zero_tag[16] = {0};
    // Plaintext is copied into place and encrypted there (GCM allows it).
    if (kx_buf_append(out, head, sizeof head, SIZE_MAX) < 0 ||
        kx_buf_append(out, p, n, SIZE_MAX) < 0 ||
        kx_buf_append(out, zero_tag, sizeof zero_tag, SIZE_MAX) < 0) {
        out->len = start;
        return -ENOMEM;
    }
    uint8_t *rec = out->data + start;
    uint8_t iv[12], aad[13];
    memcpy(iv, r->wsalt, 4);
    memcpy(iv + 4, head + 5, 8);
    make_aad(aad, r->wseq, type, n);
    uint8_t *data = rec + 13;
    int len = 0;
    bool ok = g_evp.init(r->enc, nullptr, nullptr, nullptr, iv, 1) == 1 &&
              g_evp.update(r->enc, nullptr, &len, aad, sizeof aad) == 1 &&
              (n == 0 || g_evp.update(r->enc, data, &len, data, (int)n) == 1) &&
              g_evp.final(r->enc, data + n, &len) == 1 &&
              g_evp.ctrl(r->enc, EVP_CTRL_GCM_GET_TAG, 16, data + n) == 1;
    if (!ok) {
        out->len = start;
        r->broken = true;
        return -EPROTO;
    }
    r->wseq++;
    return 0;
}

long kx_tlsrec_next(const uint8_t *p, size_t n)
{
    if (n < 5)
        return 0;
    // Version: TLS 1.2 records only after the handshake.
    if (p[1] != 3 || p[2] != 3)
        return -EPROTO;
    size_t body = kx_get_be16(p + 3);
    if (body > KX_TLSREC_MAX_BODY)
        return -EPROTO;
    return n < 5 + body ? 0 : (long)(5 + body);
}

int kx_tlsrec_open(kx_tlsrec *r, uint8_t *rec, size_t len, uint8_t *type, uint8_t **plain,
                   size_t *plain_len)
{
    if (len < 5 + 8 + 16)
        return -EPROTO;
    size_t n = len - (5 + 8 + 16);
    if (n > KX_TLSREC_MAX_PLAIN)
        return -EPROTO;
    uint8_t iv[12], aad[13];
    memcpy(iv, r->rsalt, 4);
    memcpy(iv + 4, rec + 5, 8);
    make_aad(aad, r->rseq, rec[0], n);
    uint8_t *data = rec + 13;
    int outl = 0;
    bool ok = g_evp.init(r->dec, nullptr, nullptr, nullptr, iv, 0) == 1 &&
              g_evp.update(r->dec, nullptr, &outl, aad, sizeof aad) == 1 &&
              (n == 0 || g_evp.update(r->dec, data, &outl, data, (int)n) == 1) &&
              g_evp.ctrl(r->dec, EVP_CTRL_GCM_SET_TAG, 16, data + n) == 1 &&
              g_evp.final(r->dec, data + n, &outl) == 1;
    if (!ok)
        return -EBADMSG;
    r->rseq++;
    *type = rec[0];
    *plain = data;
    *plain_len = n;
    return 0;
}
