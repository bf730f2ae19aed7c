// bootstrap.h - first-start PKI, node join token and admin kubeconfig.
//
// Blocking file I/O and key generation: call before the loop starts.
#pragma once

#include <stddef.h>

// Absolute (or data-dir relative, as given) paths of everything bootstrap
// manages. Filled by kx_bootstrap.
struct kx_bootstrap_paths {
    char ca_crt[512], ca_key[512];
    char serving_crt[512], serving_key[512];
    char kubelet_client_crt[512], kubelet_client_key[512];
    char admin_kubeconfig[512];
    char node_token[512];
    char tokens_csv[512];  // optional static tokens (kube-apiserver --token-auth-file format)
};

// Creates what is missing under data_dir (the directory itself with mode 0700):
//   pki/ca.crt, pki/ca.key                         CA, CN "kubexec-ca", 10 years
//   pki/apiserver.crt, pki/apiserver.key           serving cert, SANs localhost,
//        127.0.0.1, listen_host (unless empty, 0.0.0.0 or ::) and gethostname()
//   pki/apiserver-kubelet-client.{crt,key}         CN "kubexec-apiserver",
//        O "kubexec:apiservers" (the only identity nodes accept)
//   pki/admin.crt, pki/admin.key                   CN "admin", O "system:masters"
//   node-token   "K10<sha256 hex of ca.crt>::node:<32 random hex>"
// Keys, the token and the kubeconfig are 0600, certificates 0644. Existing
// files are reused; a new CA reissues every certificate and the token, and a
// changed SAN list (recorded in pki/apiserver.sans) reissues the serving cert.
// Leaf certificates are valid 365 days.
// Returns 0, or a negative errno with a one-line reason in err (may be null):
// -EINVAL (bad argument, data_dir path too long), -EIO/-EACCES/... from the
// file system, or the kx_pki error.
int kx_bootstrap(const char *data_dir, const char *listen_host, kx_bootstrap_paths *out,
                 char *err, size_t errlen);

// (Re)writes admin_kubeconfig (0600) for server_url (e.g.
// "https://127.0.0.1:6443"): cluster "kubexec" with certificate-authority-data,
// user "admin" with client-certificate-data/client-key-data, context "kubexec"
// (namespace default) and current-context kubexec. Call on every start (port 0
// picks a new port). Returns 0, -EINVAL (server_url empty, too long or holding
// characters that would need YAML quoting), or a file/pki error.
int kx_bootstrap_kubeconfig(const kx_bootstrap_paths *p, const char *server_url, char *err,
                            size_t errlen);

// The SHA-256 of data as 64 lowercase hex characters plus NUL.
void kx_bootstrap_sha256_hex(const void *data, size_t len, char out[65]);
