// The cluster PKI over OpenSSL 3 EVP/X509; see kubexec/pki.h.
//
// Certificates: X.509 v3, SHA-256 over ECDSA P-256, random positive 128-bit
// serials, notBefore one hour in the past (clock skew between the API server
// and nodes must not make a fresh certificate "not yet valid").
#include "kubexec/pki.h"
#include "kubexec/crypto.h"
#include "kubexec/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define KX_PKI_MAX_FILE (1u << 20)
#define KX_PKI_MAX_DAYS 36500
#define KX_PKI_MAX_PEM (64u << 10) // no key, cert or CSR of ours comes near this

static int set_err(char *err, size_t errlen, int code, const char *what)
{
    if (err && errlen) {
        unsigned long e = ERR_peek_last_error();
        if (e) {
            char buf[160];
            ERR_error_string_n(e, buf, sizeof buf);
            snprintf(err, errlen, "%s: %s", what, buf);
        } else {
            snprintf(err, errlen, "%s", what);
        }
    }
    ERR_clear_error();
    return code;
}

// A memory BIO over a PEM string (read-only, no copy).
static BIO *pem_bio(const char *pem)
{
    if (!pem)
        return nullptr;
    size_t n = strnlen(pem, KX_PKI_MAX_PEM + 1);
    if (n == 0 || n > KX_PKI_MAX_PEM)
        return nullptr;
    return BIO_new_mem_buf(pem, (int)n);
}

static EVP_PKEY *load_key(const char *pem)
{
    BIO *b = pem_bio(pem);
    if (!b)
        return nullptr;
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    return k;
}

static X509 *load_cert(const char *pem)
{
    BIO *b = pem_bio(pem);
    if (!b)
        return nullptr;
    X509 *c = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    return c;
}

static X509_REQ *load_csr(const char *pem)
{
    BIO *b = pem_bio(pem);
    if (!b)
        return nullptr;
    X509_REQ *r = PEM_read_bio_X509_REQ(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    return r;
}

// Moves a memory BIO's contents into a malloc'd NUL-terminated string.
static int bio_to_string(BIO *b, char **out)
{
    char *data = nullptr;
    long n = BIO_get_mem_data(b, &data);
    if (n <= 0 || !data)
        return -EIO;
    char *s = static_cast<char *>(malloc((size_t)n + 1));
    if (!s)
        return -ENOMEM;
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    *out = s;
    return 0;
}

int kx_pki_new_key(char **key_pem, char *err, size_t errlen)
{
    *key_pem = nullptr;
    ERR_clear_error();
    EVP_PKEY *k = EVP_EC_gen("P-256");
    if (!k)
        return set_err(err, errlen, -EIO, "generating P-256 key");
    BIO *b = BIO_new(BIO_s_mem());
    int r = -EIO;
    // PEM_write_bio_PrivateKey writes PKCS#8 ("BEGIN PRIVATE KEY").
    if (b && PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr) == 1)
        r = bio_to_string(b, key_pem);
    BIO_free(b);
    EVP_PKEY_free(k);
    if (r < 0)
        return set_err(err, errlen, r, "encoding key");
    return 0;
}

static bool add_name(X509_NAME *nm, int nid, const char *v)
{
    return X509_NAME_add_entry_by_NID(nm, nid, MBSTRING_UTF8,
                                      reinterpret_cast<const unsigned char *>(v), -1, -1,
                                      0) == 1;
}

static bool set_random_serial(X509 *x)
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return false;
    raw[0] &= 0x7f; // positive
    raw[0] |= 0x01; // and full length, never zero
    BIGNUM *bn = BN_bin2bn(raw, sizeof raw, nullptr);
    if (!bn)
        return false;
    bool ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != nullptr;
    BN_free(bn);
    return ok;
}

static bool set_validity(X509 *x, int days)
{
    return X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
           X509_time_adj_ex(X509_getm_notAfter(x), days, 0, nullptr);
}

// Adds one extension from its config-string form (fixed strings only: never
// user data, which goes through add_sans).
static bool add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, nullptr, nullptr, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (!ext)
        return false;
    bool ok = X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

static bool valid_dns(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || (c == '*' && i == 0);
        if (!ok)
            return false;
    }
    return true;
}

// subjectAltName from the NUL-separated list, built as GENERAL_NAMEs so no
// string from the caller is ever parsed as extension config.
static int add_sans(X509 *x, const char *sans)
{
    if (!sans || !*sans)
        return 0;
    GENERAL_NAMES *gens = GENERAL_NAMES_new();
    if (!gens)
        return -ENOMEM;
    int r = 0;
    int count = 0;
    for (const char *s = sans; *s && r == 0; s += strlen(s) + 1) {
        if (++count > 100) {
            r = -EINVAL;
            break;
        }
        GENERAL_NAME *gn = nullptr;
        unsigned char addr[16];
        if (inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1) {
            ASN1_OCTET_STRING *ip = a2i_IPADDRESS(s);
            gn = ip ? GENERAL_NAME_new() : nullptr;
            if (gn)
                GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
            else
                ASN1_OCTET_STRING_free(ip);
        } else if (valid_dns(s, strlen(s))) {
            ASN1_IA5STRING *dns = ASN1_IA5STRING_new();
            if (dns && ASN1_STRING_set(dns, s, (int)strlen(s)) == 1) {
                gn = GENERAL_NAME_new();
                if (gn)
                    GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
                else
                    ASN1_IA5STRING_free(dns);
            } else {
                ASN1_IA5STRING_free(dns);
            }
        } else {
            r = -EINVAL;
            break;
        }
        if (!gn || !sk_GENERAL_NAME_push(gens, gn)) {
            GENERAL_NAME_free(gn);
            r = -ENOMEM;
        }
    }
    if (r == 0 && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, 0) != 1)
        r = -EIO;
    GENERAL_NAMES_free(gens);
    return r;
}

static bool bad_days(int days)
{
    return days <= 0 || days > KX_PKI_MAX_DAYS;
}

static int cert_to_pem(X509 *x, char **out)
{
    BIO *b = BIO_new(BIO_s_mem());
    int r = -EIO;
    if (b && PEM_write_bio_X509(b, x) == 1)
        r = bio_to_string(b, out);
    BIO_free(b);
    return r;
}

int kx_pki_new_ca(const char *key_pem, const char *cn, int days, char **cert_pem, char *err,
                  size_t errlen)
{
    *cert_pem = nullptr;
    ERR_clear_error();
    if (!cn || !*cn || bad_days(days))
        return set_err(err, errlen, -EINVAL, "CA needs a CN and 1..36500 days");
    EVP_PKEY *k = load_key(key_pem);
    if (!k)
        return set_err(err, errlen, -EINVAL, "CA key: malformed PEM");
    X509 *x = X509_new();
    int r = -EIO;
    const char *what = "building CA certificate";
    if (x && X509_set_version(x, 2) && set_random_serial(x) && set_validity(x, days) &&
        X509_set_pubkey(x, k)) {
        X509_NAME *nm = X509_get_subject_name(x);
        if (!add_name(nm, NID_commonName, cn)) {
            r = -EINVAL;
            what = "CA subject";
        } else if (X509_set_issuer_name(x, nm) &&
                   add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") &&
                   add_ext(x, x, NID_key_usage, "critical,digitalSignature,keyCertSign,cRLSign") &&
                   add_ext(x, x, NID_subject_key_identifier, "hash") &&
                   X509_sign(x, k, EVP_sha256()) > 0) {
            r = cert_to_pem(x, cert_pem);
        }
    }
    X509_free(x);
    EVP_PKEY_free(k);
    if (r < 0)
        return set_err(err, errlen, r, what);
    return 0;
}

// Issues a certificate for pub with the given subject, signed by the CA.
static int issue(const char *ca_cert_pem, const char *ca_key_pem, EVP_PKEY *pub,
                 const X509_NAME *subject, const char *sans, int usage, int days,
                 char **cert_pem, char *err, size_t errlen)
{
    *cert_pem = nullptr;
    if (bad_days(days))
        return set_err(err, errlen, -EINVAL, "days must be 1..36500");
    if (usage & ~(KX_PKI_SERVER | KX_PKI_CLIENT))
        return set_err(err, errlen, -EINVAL, "unknown usage bits");
    X509 *ca = load_cert(ca_cert_pem);
    if (!ca)
        return set_err(err, errlen, -EINVAL, "CA certificate: malformed PEM");
    EVP_PKEY *cakey = load_key(ca_key_pem);
    if (!cakey) {
        X509_free(ca);
        return set_err(err, errlen, -EINVAL, "CA key: malformed PEM");
    }
    if (X509_check_private_key(ca, cakey) != 1) {
        X509_free(ca);
        EVP_PKEY_free(cakey);
        return set_err(err, errlen, -EINVAL, "CA key does not match CA certificate");
    }
    int r = -EIO;
    const char *what = "building certificate";
    X509 *x = X509_new();
    if (x && X509_set_version(x, 2) && set_random_serial(x) && set_validity(x, days) &&
        X509_set_pubkey(x, pub) && X509_set_subject_name(x, subject) &&
        X509_set_issuer_name(x, X509_get_subject_name(ca)) &&
        add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") &&
        add_ext(x, ca, NID_key_usage, "critical,digitalSignature,keyEncipherment") &&
        add_ext(x, ca, NID_subject_key_identifier, "hash") &&
        add_ext(x, ca, NID_authority_key_identifier, "keyid")) {
        bool ok = true;
        if (usage) {
            const char *eku = usage == (KX_PKI_SERVER | KX_PKI_CLIENT) ? "serverAuth,clientAuth"
                              : usage == KX_PKI_SERVER                ? "serverAuth"
                                                                      : "clientAuth";
            ok = add_ext(x, ca, NID_ext_key_usage, eku);
        }
        int s = ok ? add_sans(x, sans) : -EIO;
        if (s == -EINVAL) {
            r = -EINVAL;
            what = "bad subjectAltName entry";
        } else if (s == 0 && ok && X509_sign(x, cakey, EVP_sha256()) > 0) {
            r = cert_to_pem(x, cert_pem);
        }
    }
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(cakey);
    if (r < 0)
        return set_err(err, errlen, r, what);
    return 0;
}

int kx_pki_issue(const char *ca_cert_pem, const char *ca_key_pem, const char *subject_key_pem,
                 const char *cn, const char *org, const char *sans, int usage, int days,
                 char **cert_pem, char *err, size_t errlen)
{
    *cert_pem = nullptr;
    ERR_clear_error();
    if (!cn || !*cn)
        return set_err(err, errlen, -EINVAL, "certificate needs a CN");
    EVP_PKEY *k = load_key(subject_key_pem);
    if (!k)
        return set_err(err, errlen, -EINVAL, "subject key: malformed PEM");
    X509_NAME *nm = X509_NAME_new();
    int r;
    if (!nm || (org && !add_name(nm, NID_organizationName, org)) ||
        !add_name(nm, NID_commonName, cn))
        r = set_err(err, errlen, -EINVAL, "certificate subject");
    else
        r = issue(ca_cert_pem, ca_key_pem, k, nm, sans, usage, days, cert_pem, err, errlen);
    X509_NAME_free(nm);
    EVP_PKEY_free(k);
    return r;
}

int kx_pki_new_csr(const char *key_pem, const char *cn, const char *org, char **csr_pem,
                   char *err, size_t errlen)
{
    *csr_pem = nullptr;
    ERR_clear_error();
    if (!cn || !*cn)
        return set_err(err, errlen, -EINVAL, "CSR needs a CN");
    EVP_PKEY *k = load_key(key_pem);
    if (!k)
        return set_err(err, errlen, -EINVAL, "CSR key: malformed PEM");
    X509_REQ *req = X509_REQ_new();
    int r = -EIO;
    const char *what = "building CSR";
    if (req && X509_REQ_set_version(req, 0) && X509_REQ_set_pubkey(req, k)) {
        X509_NAME *nm = X509_REQ_get_subject_name(req);
        if ((org && !add_name(nm, NID_organizationName, org)) ||
            !add_name(nm, NID_commonName, cn)) {
            r = -EINVAL;
            what = "CSR subject";
        } else if (X509_REQ_sign(req, k, EVP_sha256()) > 0) {
            BIO *b = BIO_new(BIO_s_mem());
            if (b && PEM_write_bio_X509_REQ(b, req) == 1)
                r = bio_to_string(b, csr_pem);
            BIO_free(b);
        }
    }
    X509_REQ_free(req);
    EVP_PKEY_free(k);
    if (r < 0)
        return set_err(err, errlen, r, what);
    return 0;
}

// The subject's single CN as UTF-8 into out; false if absent, repeated,
// holding a NUL, or too long.
static bool subject_cn(const X509_NAME *nm, char *out, size_t cap)
{
    int idx = X509_NAME_get_index_by_NID(nm, NID_commonName, -1);
    if (idx < 0 || X509_NAME_get_index_by_NID(nm, NID_commonName, idx) >= 0)
        return false;
    unsigned char *s = nullptr;
    int n = ASN1_STRING_to_UTF8(&s, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, idx)));
    if (n < 0)
        return false;
    bool ok = (size_t)n < cap && !memchr(s, '\0', (size_t)n);
    if (ok) {
        memcpy(out, s, (size_t)n);
        out[n] = '\0';
    }
    OPENSSL_free(s);
    return ok;
}

int kx_pki_sign_csr(const char *ca_cert_pem, const char *ca_key_pem, const char *csr_pem,
                    const char *expect_cn, const char *sans, int usage, int days,
                    char **cert_pem, char *err, size_t errlen)
{
    *cert_pem = nullptr;
    ERR_clear_error();
    X509_REQ *req = load_csr(csr_pem);
    if (!req)
        return set_err(err, errlen, -EINVAL, "CSR: malformed PEM");
    int r;
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
    if (!pub || X509_REQ_verify(req, pub) != 1) {
        r = set_err(err, errlen, -EINVAL, "CSR signature does not verify");
    } else {
        const X509_NAME *nm = X509_REQ_get_subject_name(req);
        char cn[256];
        if (expect_cn && (!subject_cn(nm, cn, sizeof cn) || strcmp(cn, expect_cn) != 0))
            r = set_err(err, errlen, -EACCES, "CSR common name is not the expected one");
        else
            r = issue(ca_cert_pem, ca_key_pem, pub, nm, sans, usage, days, cert_pem, err, errlen);
    }
    X509_REQ_free(req);
    return r;
}

int kx_pki_read_file(const char *path, char **out)
{
    *out = nullptr;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)KX_PKI_MAX_FILE) {
        close(fd);
        return S_ISREG(st.st_mode) ? -EMSGSIZE : -EINVAL;
    }
    // Read up to the limit plus one byte, so a file that grew is caught too.
    size_t cap = (size_t)st.st_size + 1;
    char *buf = static_cast<char *>(malloc(cap + 1));
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    size_t len = 0;
    for (;;) {
        if (len == cap) {
            if (cap > KX_PKI_MAX_FILE) {
                free(buf);
                close(fd);
                return -EMSGSIZE;
            }
            size_t ncap = cap * 2 > KX_PKI_MAX_FILE + 1 ? KX_PKI_MAX_FILE + 1 : cap * 2;
            char *nb = static_cast<char *>(realloc(buf, ncap + 1));
            if (!nb) {
                free(buf);
                close(fd);
                return -ENOMEM;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = -errno;
            free(buf);
            close(fd);
            return e;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    return 0;
}

int kx_pki_write_file(const char *path, const char *data, int mode)
{
    size_t plen = strlen(path);
    if (plen == 0 || plen > PATH_MAX - 16)
        return -ENAMETOOLONG;
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmpXXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = 0;
    // mkostemp made it 0600; set the final mode before any data lands.
    if (fchmod(fd, (mode_t)mode & 07777) != 0)
        r = -errno;
    size_t len = strlen(data), off = 0;
    while (r == 0 && off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;
        } else {
            off += (size_t)n;
        }
    }
    if (r == 0 && fsync(fd) != 0)
        r = -errno;
    if (close(fd) != 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) != 0)
        r = -errno;
    if (r != 0)
        unlink(tmp);
    return r;
}

int kx_base64(const void *data, size_t len, char **out)
{
    *out = nullptr;
    if (len > SIZE_MAX / 4 * 3 - 3)
        return -EMSGSIZE;
    char *s = static_cast<char *>(malloc(4 * ((len + 2) / 3) + 1));
    if (!s)
        return -ENOMEM;
    kx_base64_encode(static_cast<const uint8_t *>(data), len, s);
    *out = s;
    return 0;
}
