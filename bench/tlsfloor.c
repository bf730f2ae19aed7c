/* tlsfloor.c - the memory floor of a daemon's TLS library on this machine: a
 * process that sets up one TLS server context with a certificate and key
 * (what kubexec-node does before it serves anything) and then waits. Built
 * twice by bench/lib.sh: on the distro's OpenSSL (tlsfloor), which the node
 * uses, and with -DMBEDTLS on its mbedTLS (tlsfloor-mbedtls), which the CLI
 * uses and which has no TLS 1.3 in Debian 12.
 *   tlsfloor CERT KEY   prints "ready" once set up, then sleeps until killed.
 * 31_footprint_peers.sh reads its RSS / PSS / USS beside kubexec-node's. */
#include <stdio.h>
#include <unistd.h>
#ifdef MBEDTLS
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#else
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

#ifdef MBEDTLS
static int setup(const char *cert, const char *key)
{
    static mbedtls_entropy_context entropy;
    static mbedtls_ctr_drbg_context drbg;
    static mbedtls_x509_crt crt;
    static mbedtls_pk_context pk;
    static mbedtls_ssl_config conf;
    static mbedtls_ssl_context ssl;
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_x509_crt_init(&crt);
    mbedtls_pk_init(&pk);
    mbedtls_ssl_config_init(&conf);
    mbedtls_ssl_init(&ssl);
    int r;
    if ((r = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0)) ||
        (r = mbedtls_x509_crt_parse_file(&crt, cert)) ||
        (r = mbedtls_pk_parse_keyfile(&pk, key, NULL)) ||
        (r = mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT)) ||
        (r = mbedtls_ssl_conf_own_cert(&conf, &crt, &pk))) {
        fprintf(stderr, "tlsfloor: mbedTLS error -0x%04x\n", (unsigned)-r);
        return -1;
    }
    mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
    if ((r = mbedtls_ssl_setup(&ssl, &conf))) {
        fprintf(stderr, "tlsfloor: mbedTLS error -0x%04x\n", (unsigned)-r);
        return -1;
    }
    return 0;
}
#else
static int setup(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return -1;
    }
    return 0;
}
#endif

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tlsfloor CERT KEY\n");
        return 2;
    }
    if (setup(argv[1], argv[2]) < 0)
        return 1;
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
}
