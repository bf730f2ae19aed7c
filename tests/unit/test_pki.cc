// Unit tests for kubexec/pki.h: certificates are checked with OpenSSL's own
// verifier and by reading the extensions back.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
// cmocka 1.1.5 has no extern "C" guards of its own.
extern "C" {
#include <cmocka.h>
}

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "kubexec/pki.h"

// One CA for the whole file (key generation is the slow part).
struct fixture {
    char *ca_key;
    char *ca_cert;
    char *key;
};
static fixture fx;

static int setup(void **)
{
    char err[256];
    if (kx_pki_new_key(&fx.ca_key, err, sizeof err) || kx_pki_new_key(&fx.key, err, sizeof err))
        return -1;
    if (kx_pki_new_ca(fx.ca_key, "kubexec-ca", 3650, &fx.ca_cert, err, sizeof err))
        return -1;
    return 0;
}

static int teardown(void **)
{
    free(fx.ca_key);
    free(fx.ca_cert);
    free(fx.key);
    return 0;
}

static X509 *parse_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    return x;
}

// X509_verify_cert of `pem` against the fixture CA for `purpose`.
static int verify(const char *pem, int purpose)
{
    X509 *ca = parse_cert(fx.ca_cert);
    X509 *x = parse_cert(pem);
    assert_non_null(ca);
    assert_non_null(x);
    X509_STORE *st = X509_STORE_new();
    X509_STORE_add_cert(st, ca);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, st, x, nullptr);
    if (purpose)
        X509_STORE_CTX_set_purpose(ctx, purpose);
    int ok = X509_verify_cert(ctx);
    int e = X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    X509_free(x);
    X509_free(ca);
    ERR_clear_error();
    return ok == 1 ? 0 : e;
}

static void subject_field(X509 *x, int nid, char *out, size_t cap)
{
    out[0] = '\0';
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), nid, out, (int)cap);
}

static void key_is_pkcs8_p256(void **)
{
    assert_non_null(strstr(fx.key, "-----BEGIN PRIVATE KEY-----"));
    BIO *b = BIO_new_mem_buf(fx.key, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    assert_non_null(k);
    assert_int_equal(EVP_PKEY_get_id(k), EVP_PKEY_EC);
    char group[64];
    size_t glen = 0;
    assert_int_equal(EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof group, &glen), 1);
    assert_string_equal(group, "prime256v1");
    EVP_PKEY_free(k);
}

static void ca_is_a_ca(void **)
{
    X509 *ca = parse_cert(fx.ca_cert);
    assert_non_null(ca);
    assert_int_equal(X509_check_ca(ca), 1);
    assert_int_equal(X509_get_version(ca), 2);
    char cn[64];
    subject_field(ca, NID_commonName, cn, sizeof cn);
    assert_string_equal(cn, "kubexec-ca");
    // Self-signed and verifies against itself.
    assert_int_equal(X509_check_issued(ca, ca), X509_V_OK);
    // notBefore is about an hour ago.
    int days = 0, secs = 0;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notBefore(ca)), 1);
    assert_int_equal(days, 0);
    assert_true(secs <= -3590 && secs >= -3700);
    // The serial is positive and wide.
    const ASN1_INTEGER *sn = X509_get0_serialNumber(ca);
    BIGNUM *bn = ASN1_INTEGER_to_BN(sn, nullptr);
    assert_false(BN_is_negative(bn));
    assert_true(BN_num_bits(bn) >= 120);
    BN_free(bn);
    X509_free(ca);
    assert_int_equal(verify(fx.ca_cert, 0), 0);
}

static void server_cert_with_sans_verifies(void **)
{
    char err[256] = "";
    char *cert = nullptr;
    static const char sans[] = "localhost\0" "127.0.0.1\0" "::1\0" "node-1.cluster.local\0";
    assert_int_equal(kx_pki_issue(fx.ca_cert, fx.ca_key, fx.key, "kubexec-apiserver", nullptr,
                                  sans, KX_PKI_SERVER, 365, &cert, err, sizeof err),
                     0);
    assert_non_null(cert);
    assert_int_equal(verify(cert, X509_PURPOSE_SSL_SERVER), 0);
    // serverAuth only: not valid as a client certificate.
    assert_int_not_equal(verify(cert, X509_PURPOSE_SSL_CLIENT), 0);

    X509 *x = parse_cert(cert);
    assert_int_equal(X509_check_ca(x), 0);
    assert_int_equal(X509_check_host(x, "localhost", 0, 0, nullptr), 1);
    assert_int_equal(X509_check_host(x, "node-1.cluster.local", 0, 0, nullptr), 1);
    assert_int_equal(X509_check_host(x, "evil.example", 0, 0, nullptr), 0);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "10.0.0.1", 0), 0);

    // Exactly the four SAN entries, in order and of the right kinds.
    GENERAL_NAMES *gens =
        static_cast<GENERAL_NAMES *>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
    assert_non_null(gens);
    assert_int_equal(sk_GENERAL_NAME_num(gens), 4);
    assert_int_equal(sk_GENERAL_NAME_value(gens, 0)->type, GEN_DNS);
    assert_int_equal(sk_GENERAL_NAME_value(gens, 1)->type, GEN_IPADD);
    const ASN1_OCTET_STRING *ip = sk_GENERAL_NAME_value(gens, 1)->d.iPAddress;
    assert_int_equal(ASN1_STRING_length(ip), 4);
    assert_memory_equal(ASN1_STRING_get0_data(ip), "\x7f\x00\x00\x01", 4);
    assert_int_equal(ASN1_STRING_length(sk_GENERAL_NAME_value(gens, 2)->d.iPAddress), 16);
    assert_int_equal(sk_GENERAL_NAME_value(gens, 3)->type, GEN_DNS);
    GENERAL_NAMES_free(gens);

    // keyUsage + extendedKeyUsage present.
    assert_true(X509_get_extension_flags(x) & EXFLAG_KUSAGE);
    assert_true(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE);
    assert_true(X509_get_extended_key_usage(x) & XKU_SSL_SERVER);
    assert_false(X509_get_extended_key_usage(x) & XKU_SSL_CLIENT);
    X509_free(x);
    free(cert);
}

static void client_cert_carries_groups(void **)
{
    char err[256] = "";
    char *cert = nullptr;
    assert_int_equal(kx_pki_issue(fx.ca_cert, fx.ca_key, fx.key, "admin", "system:masters",
                                  nullptr, KX_PKI_CLIENT, 365, &cert, err, sizeof err),
                     0);
    assert_int_equal(verify(cert, X509_PURPOSE_SSL_CLIENT), 0);
    X509 *x = parse_cert(cert);
    char buf[64];
    subject_field(x, NID_commonName, buf, sizeof buf);
    assert_string_equal(buf, "admin");
    subject_field(x, NID_organizationName, buf, sizeof buf);
    assert_string_equal(buf, "system:masters");
    assert_null(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
    X509_free(x);
    free(cert);

    // Both usages.
    assert_int_equal(kx_pki_issue(fx.ca_cert, fx.ca_key, fx.key, "node-1", nullptr, nullptr,
                                  KX_PKI_CLIENT | KX_PKI_SERVER, 1, &cert, err, sizeof err),
                     0);
    assert_int_equal(verify(cert, X509_PURPOSE_SSL_CLIENT), 0);
    assert_int_equal(verify(cert, X509_PURPOSE_SSL_SERVER), 0);
    free(cert);
}

static void issue_rejects_bad_input(void **)
{
    char err[256];
    char *cert = (char *)"untouched";
    assert_int_equal(kx_pki_issue(fx.ca_cert, fx.ca_key, "not a key", "x", nullptr, nullptr,
                                  KX_PKI_SERVER, 1, &cert, err, sizeof err),
                     -EINVAL);
    assert_null(cert);
    assert_true(strlen(err) > 0);
    assert_int_equal(kx_pki_issue("garbage", fx.ca_key, fx.key, "x", nullptr, nullptr,
                                  KX_PKI_SERVER, 1, &cert, err, sizeof err),
                     -EINVAL);
    // CA key that does not belong to the CA certificate.
    assert_int_equal(kx_pki_issue(fx.ca_cert, fx.key, fx.key, "x", nullptr, nullptr,
                                  KX_PKI_SERVER, 1, &cert, err, sizeof err),
                     -EINVAL);
    // A SAN that is neither an IP nor a DNS name (would inject config).
    assert_int_equal(kx_pki_issue(fx.ca_cert, fx.ca_key, fx.key, "x", nullptr,
                                  "ok.example\0bad,DNS:evil\0", KX_PKI_SERVER, 1, &cert, err,
                                  sizeof err),
                     -EINVAL);
    assert_int_equal(kx_pki_issue(fx.ca_cert, fx.ca_key, fx.key, "x", nullptr, nullptr,
                                  KX_PKI_SERVER, 0, &cert, err, sizeof err),
                     -EINVAL);
    assert_int_equal(kx_pki_issue(fx.ca_cert, fx.ca_key, fx.key, "", nullptr, nullptr,
                                  KX_PKI_SERVER, 1, &cert, err, sizeof err),
                     -EINVAL);
    assert_int_equal(kx_pki_issue(fx.ca_cert, fx.ca_key, fx.key, "x", nullptr, nullptr, 8, 1,
                                  &cert, nullptr, 0),
                     -EINVAL);
    assert_int_equal(kx_pki_new_ca("nope", "ca", 1, &cert, err, sizeof err), -EINVAL);
    assert_null(cert);
}

static void csr_round_trip(void **)
{
    char err[256] = "";
    char *csr = nullptr, *cert = nullptr;
    assert_int_equal(kx_pki_new_csr(fx.key, "system:node:node-1", "system:nodes", &csr, err,
                                    sizeof err),
                     0);
    assert_non_null(strstr(csr, "-----BEGIN CERTIFICATE REQUEST-----"));
    static const char sans[] = "10.1.2.3\0node-1\0";
    assert_int_equal(kx_pki_sign_csr(fx.ca_cert, fx.ca_key, csr, "system:node:node-1", sans,
                                     KX_PKI_CLIENT | KX_PKI_SERVER, 30, &cert, err, sizeof err),
                     0);
    assert_int_equal(verify(cert, X509_PURPOSE_SSL_CLIENT), 0);
    X509 *x = parse_cert(cert);
    char buf[64];
    subject_field(x, NID_commonName, buf, sizeof buf);
    assert_string_equal(buf, "system:node:node-1");
    subject_field(x, NID_organizationName, buf, sizeof buf);
    assert_string_equal(buf, "system:nodes");
    assert_int_equal(X509_check_ip_asc(x, "10.1.2.3", 0), 1);
    // The certificate is for the CSR's key.
    BIO *b = BIO_new_mem_buf(fx.key, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    assert_int_equal(X509_check_private_key(x, k), 1);
    EVP_PKEY_free(k);
    X509_free(x);
    free(cert);

    // No expected CN: anything goes.
    assert_int_equal(kx_pki_sign_csr(fx.ca_cert, fx.ca_key, csr, nullptr, nullptr, KX_PKI_CLIENT,
                                     30, &cert, err, sizeof err),
                     0);
    free(cert);

    // Wrong CN.
    cert = nullptr;
    assert_int_equal(kx_pki_sign_csr(fx.ca_cert, fx.ca_key, csr, "system:node:node-2", nullptr,
                                     KX_PKI_CLIENT, 30, &cert, err, sizeof err),
                     -EACCES);
    assert_null(cert);

    // Tampered: flip a byte inside the base64 body of the signed part, so the
    // CSR still parses (or not) but never verifies.
    char *bad = strdup(csr);
    char *body = strchr(bad, '\n') + 1;
    size_t blen = strlen(body);
    int rejected = 0;
    for (size_t off = 40; off + 40 < blen; off += 7) {
        char saved = body[off];
        if (saved == '\n')
            continue;
        body[off] = saved == 'A' ? 'B' : 'A';
        int r = kx_pki_sign_csr(fx.ca_cert, fx.ca_key, bad, nullptr, nullptr, KX_PKI_CLIENT, 30,
                                &cert, err, sizeof err);
        assert_int_equal(r, -EINVAL);
        assert_null(cert);
        rejected++;
        body[off] = saved;
    }
    assert_true(rejected > 10);
    free(bad);
    assert_int_equal(kx_pki_sign_csr(fx.ca_cert, fx.ca_key, "garbage", nullptr, nullptr,
                                     KX_PKI_CLIENT, 30, &cert, err, sizeof err),
                     -EINVAL);
    free(csr);
}

static void csr_with_swapped_key_fails(void **)
{
    // A CSR re-signed... simpler: a CSR whose public key is replaced by
    // another's must fail the self-signature check.
    char err[256];
    char *csr = nullptr, *other = nullptr, *cert = nullptr;
    assert_int_equal(kx_pki_new_csr(fx.key, "n", nullptr, &csr, err, sizeof err), 0);
    assert_int_equal(kx_pki_new_key(&other, err, sizeof err), 0);
    BIO *b = BIO_new_mem_buf(csr, -1);
    X509_REQ *req = PEM_read_bio_X509_REQ(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    b = BIO_new_mem_buf(other, -1);
    EVP_PKEY *ok = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    assert_int_equal(X509_REQ_set_pubkey(req, ok), 1);
    // Re-encode without re-signing (i2d uses the cached encoding unless
    // modified; set_pubkey marks it modified).
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509_REQ(b, req);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *swapped = strndup(data, (size_t)n);
    BIO_free(b);
    assert_int_equal(kx_pki_sign_csr(fx.ca_cert, fx.ca_key, swapped, nullptr, nullptr,
                                     KX_PKI_CLIENT, 30, &cert, err, sizeof err),
                     -EINVAL);
    free(swapped);
    EVP_PKEY_free(ok);
    X509_REQ_free(req);
    free(csr);
    free(other);
    ERR_clear_error();
}

static void files_round_trip_with_mode(void **)
{
    char dir[] = "/tmp/kx-test-pki-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/ca.key", dir);
    assert_int_equal(kx_pki_write_file(path, fx.ca_key, 0600), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    char *back = nullptr;
    assert_int_equal(kx_pki_read_file(path, &back), 0);
    assert_string_equal(back, fx.ca_key);
    free(back);

    // Overwrite atomically with another mode.
    assert_int_equal(kx_pki_write_file(path, "hello\n", 0644), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(kx_pki_read_file(path, &back), 0);
    assert_string_equal(back, "hello\n");
    free(back);

    // Empty file.
    assert_int_equal(kx_pki_write_file(path, "", 0600), 0);
    assert_int_equal(kx_pki_read_file(path, &back), 0);
    assert_string_equal(back, "");
    free(back);

    // Over the 1 MiB limit.
    char big_path[256];
    snprintf(big_path, sizeof big_path, "%s/big", dir);
    char *big = static_cast<char *>(malloc((1u << 20) + 2));
    memset(big, 'x', (1u << 20) + 1);
    big[(1u << 20) + 1] = '\0';
    assert_int_equal(kx_pki_write_file(big_path, big, 0600), 0);
    back = (char *)"untouched";
    assert_int_equal(kx_pki_read_file(big_path, &back), -EMSGSIZE);
    assert_null(back);
    big[1u << 20] = '\0'; // exactly 1 MiB is fine
    assert_int_equal(kx_pki_write_file(big_path, big, 0600), 0);
    assert_int_equal(kx_pki_read_file(big_path, &back), 0);
    assert_int_equal(strlen(back), 1u << 20);
    free(back);
    free(big);

    assert_int_equal(kx_pki_read_file("/nonexistent/kx", &back), -ENOENT);
    assert_int_equal(kx_pki_read_file(dir, &back), -EINVAL);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/no/such/file", dir);
    assert_int_equal(kx_pki_write_file(missing, "x", 0600), -ENOENT);

    // No temp files left behind.
    unlink(path);
    unlink(big_path);
    assert_int_equal(rmdir(dir), 0);
}

static void base64_known_vectors(void **)
{
    char *s = nullptr;
    assert_int_equal(kx_base64("", 0, &s), 0);
    assert_string_equal(s, "");
    free(s);
    assert_int_equal(kx_base64("f", 1, &s), 0);
    assert_string_equal(s, "Zg==");
    free(s);
    assert_int_equal(kx_base64("foob", 4, &s), 0);
    assert_string_equal(s, "Zm9vYg==");
    free(s);
    assert_int_equal(kx_base64("foobar", 6, &s), 0);
    assert_string_equal(s, "Zm9vYmFy");
    free(s);
    // Long input: no line breaks (kubeconfig *-data fields are one line).
    assert_int_equal(kx_base64(fx.ca_cert, strlen(fx.ca_cert), &s), 0);
    assert_null(strchr(s, '\n'));
    assert_int_equal(strlen(s), 4 * ((strlen(fx.ca_cert) + 2) / 3));
    free(s);
    assert_int_equal(kx_base64("\xff\x00\xfe", 3, &s), 0);
    assert_string_equal(s, "/wD+");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_is_pkcs8_p256),
        cmocka_unit_test(ca_is_a_ca),
        cmocka_unit_test(server_cert_with_sans_verifies),
        cmocka_unit_test(client_cert_carries_groups),
        cmocka_unit_test(issue_rejects_bad_input),
        cmocka_unit_test(csr_round_trip),
        cmocka_unit_test(csr_with_swapped_key_fails),
        cmocka_unit_test(files_round_trip_with_mode),
        cmocka_unit_test(base64_known_vectors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
