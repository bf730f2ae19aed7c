// kubexec/pki.h - the cluster PKI: keys, a CA, certificates and CSRs.
//
// Everything is PEM text in and out; the caller owns every returned string
// (free with free()). Keys are ECDSA P-256. Returns 0 or a negative errno
// (-EINVAL for malformed PEM or a CSR whose signature does not verify, -EIO for
// an OpenSSL failure); `err` (may be null) receives a one-line reason.
#pragma once

#include <stddef.h>

// A new private key, PEM (PKCS#8).
int kx_pki_new_key(char **key_pem, char *err, size_t errlen);

// A self-signed CA certificate for key_pem, subject CN=cn, valid `days`.
int kx_pki_new_ca(const char *key_pem, const char *cn, int days, char **cert_pem,
                  char *err, size_t errlen);

// Certificate usage for kx_pki_issue.
enum kx_pki_usage {
    KX_PKI_SERVER = 1, // serverAuth
    KX_PKI_CLIENT = 2, // clientAuth
};

// Issues a certificate for the public half of subject_key_pem (a private key)
// signed by the CA. Subject CN=cn and, when org is non-null, O=org (Kubernetes
// reads O as the group). sans: NUL-separated list ending in an empty string,
// each entry an IP address or a DNS name (e.g. "localhost\0" "127.0.0.1\0"),
// or null. usage is a mask of kx_pki_usage.
int kx_pki_issue(const char *ca_cert_pem, const char *ca_key_pem,
                 const char *subject_key_pem, const char *cn, const char *org,
                 const char *sans, int usage, int days, char **cert_pem,
                 char *err, size_t errlen);

// A certificate signing request for key_pem with subject CN=cn (O=org if
// non-null).
int kx_pki_new_csr(const char *key_pem, const char *cn, const char *org, char **csr_pem,
                   char *err, size_t errlen);

// Verifies the CSR's self-signature and issues a certificate for its public
// key. The subject is taken from the CSR but CN must equal `expect_cn` when
// that is non-null (else -EACCES). usage/sans/days as kx_pki_issue.
int kx_pki_sign_csr(const char *ca_cert_pem, const char *ca_key_pem, const char *csr_pem,
                    const char *expect_cn, const char *sans, int usage, int days,
                    char **cert_pem, char *err, size_t errlen);

// Reads a whole file into a NUL-terminated malloc'd string (limit 1 MiB).
int kx_pki_read_file(const char *path, char **out);
// Writes data to path atomically (temp file + rename) with the given mode.
int kx_pki_write_file(const char *path, const char *data, int mode);

// Base64 of arbitrary bytes (for kubeconfig *-data fields). Caller frees.
int kx_base64(const void *data, size_t len, char **out);
