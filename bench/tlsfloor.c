/* tlsfloor.c - the memory floor of a daemon built on the distro's OpenSSL:
 * a process that sets up one TLS server context with a certificate and key
 * (what kubexec-node does before it serves anything) and then waits.
 *   tlsfloor CERT KEY   prints "ready" once set up, then sleeps until killed.
 * 31_footprint_peers.sh reads its RSS / PSS / USS beside kubexec-node's. */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tlsfloor CERT KEY\n");
        return 2;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, argv[1]) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
}
