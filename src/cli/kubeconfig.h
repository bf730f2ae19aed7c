// kubeconfig.h - the kubexec CLI's client configuration, found, merged and
// resolved the way kubectl (k8s.io/client-go/tools/clientcmd) does it.
//
// Where the configuration comes from:
//   --kubeconfig FILE      only FILE (KUBECONFIG is then ignored); a FILE that
//                          does not exist is an error ("stat FILE: no such file
//                          or directory");
//   else $KUBECONFIG       a colon-separated list; empty entries and repeated
//                          names are dropped, files that do not exist are
//                          skipped silently;
//   else $HOME/.kube/config (skipped if missing).
// No '~' expansion anywhere (client-go does none; the shell does it).
//
// Merging a list: for the clusters, users and contexts maps the FIRST file that
// defines a name wins and its entry is taken whole (fields are never merged
// across files); current-context is taken from the first file that sets it.
// Relative certificate-authority, client-certificate, client-key and
// tokenFile paths are resolved against the directory of the file that
// defined the entry. A file that fails to parse fails the whole load (other
// files are still read so that every broken file is reported, as kubectl does).
//
// Resolution as clientcmd's DirectClientConfig: --context picks the context;
// --cluster / --user replace the context's; -n beats the context's namespace
// ("default" when neither sets one); --server, --token, --certificate-authority,
// --client-certificate, --client-key, --tls-server-name and
// --insecure-skip-tls-verify override the kubeconfig (an override of
// --insecure-skip-tls-verify or --certificate-authority also drops the file's
// CA and skip setting; --server or --tls-server-name replace the file's
// tls-server-name). A context that names a cluster that does not exist (or a
// cluster without a server, or no configuration at all) resolves to
// http://localhost:8080, exactly like kubectl; connecting then fails the way
// kubectl reports it ("The connection to the server localhost:8080 was refused
// - did you specify the right host or port?"), which is the caller's message.
// As in client-go, TLS material and credentials are only used for an https
// server: for http:// (or a server without a scheme, which means http) the
// ca/cert/key/token fields stay null.
//
// Input format: YAML or JSON, parsed with libyaml's document API. Scalars are
// typed as YAML 1.1 / go-yaml v2 types them, and a scalar of the wrong type is
// an error with kubectl's wording ("json: cannot unmarshal number into Go
// struct field Context.contexts.context.namespace of type string"). *-data
// fields are base64 (padding required, CR/LF ignored, as Go's decoder).
// Aliases are followed; merge keys ("<<") are not supported (ignored like any
// unknown key). Unknown fields are ignored and field names are matched
// case-sensitively, as kubectl 1.33 does: the token file is "tokenFile" (a
// "token-file:" key is ignored by kubectl and here).
//
// Limits: a kubeconfig file over KX_KCFG_MAX_FILE bytes, a file referenced by
// it (CA, certificate, key, token) over KX_KCFG_MAX_REF bytes, and a KUBECONFIG
// list of more than KX_KCFG_MAX_FILES entries are refused with a clear error.
//
// Not supported (clear errors, no silent fallbacks): exec credential plugins
// and auth-provider users when no token or client certificate is set; basic
// auth (username/password) is validated like kubectl but not used; proxy-url
// is ignored; KUBERNETES_MASTER is not consulted.
//
// Error messages: `err` receives the COMPLETE text kubectl prints to stderr for
// the same configuration, including its prefix ("error: ..." or
// "Error in configuration: ..."), without the trailing newline; it may span
// several lines (kubectl's "Error in configuration: \n* a\n* b" list and its
// one-line-per-file list of load errors). The caller prints it followed by
// "\n" and exits 1. Texts were taken from kubectl 1.33; where kubectl's text
// embeds a Go value dump (duplicate names) the dump is left out.
#pragma once

#include <stddef.h>

#include "kubexec/tls.h"

#define KX_KCFG_MAX_FILE (16u << 20)
#define KX_KCFG_MAX_REF (1u << 20)
#define KX_KCFG_MAX_FILES 64

// What the command line said. Every pointer may be null or "" (= not given,
// as kubectl treats an empty flag value). Borrowed: read during kx_kcfg_load.
struct kx_kcfg_flags {
    const char *kubeconfig;            // --kubeconfig
    const char *context;               // --context
    const char *cluster;               // --cluster
    const char *user;                  // --user
    const char *namespace_;            // -n / --namespace
    const char *server;                // -s / --server
    const char *token;                 // --token
    const char *certificate_authority; // --certificate-authority (path, cwd-relative)
    const char *client_certificate;    // --client-certificate (path)
    const char *client_key;            // --client-key (path)
    const char *tls_server_name;       // --tls-server-name
    bool insecure_skip_tls_verify;     // --insecure-skip-tls-verify given (true)
};

// The resolved client configuration. Every pointer is owned (malloc'd) by the
// struct and released by kx_kcfg_free; the PEM buffers also carry a NUL after
// their `len` bytes so they can be handed to text APIs.
struct kx_kcfg {
    char *context_name;    // the context in use; null when none is set
    char *server;          // as in the file or --server, e.g. "https://h:6443/prefix"
    char *namespace_;      // never null: -n, the context's, or "default"
    bool namespace_explicit; // true when it came from -n
    char *ca_pem;          // certificate-authority(-data); null: system store
    size_t ca_len;
    char *cert_pem;        // client-certificate(-data); null if none
    size_t cert_len;
    char *key_pem;         // client-key(-data); set whenever cert_pem is
    size_t key_len;
    bool insecure;         // insecure-skip-tls-verify
    char *tls_server_name; // name to verify and send as SNI instead of the host; may be null
    char *token;           // bearer token (token, or token-file contents trimmed); may be null
};

// Loads, merges and resolves as kubectl does (see the top of this file).
// env_kubeconfig: getenv("KUBECONFIG"); home: getenv("HOME") (both may be
// null; passed in so tests need no environment). On success returns 0 and
// fills *out (which must be freed with kx_kcfg_free). On failure returns <0
// (-ENOENT explicit file missing, -EINVAL bad or unusable configuration,
// -EMSGSIZE over a limit, -EIO read error, -ENOMEM), leaves *out zeroed and
// puts kubectl's message (with its prefix, see above) in err (may be null).
int kx_kcfg_load(const kx_kcfg_flags *f, const char *env_kubeconfig, const char *home,
                 kx_kcfg *out, char *err, size_t errcap);

// Frees every field and zeroes *c (safe on a zeroed struct and twice).
void kx_kcfg_free(kx_kcfg *c);

// Splits a server URL: "https://host:port/prefix", "http://[::1]:8080",
// "host:port" (no scheme = http, as client-go). *https gets the scheme; host
// is copied without IPv6 brackets; *port defaults to 443 (https) or 80 (http);
// prefix gets the path without a trailing '/' ("" for none or "/"); a query or
// fragment is dropped and user info ("user@") is skipped. Returns 0, -EINVAL
// (unknown scheme, empty host, bad port) or -EMSGSIZE (host or prefix does not
// fit; hostcap/prefixcap include the NUL).
int kx_kcfg_server_parts(const char *server, bool *https, char *host, size_t hostcap, int *port,
                         char *prefix, size_t prefixcap);

// A TLS client context for c (kx_tls_client_ctx_pem): the peer is verified
// against ca_pem (every certificate in it), or the system default paths when
// ca_pem is null, unless c->insecure; cert_pem (first certificate = leaf, the
// rest sent as chain) and key_pem are presented when set. Host name checking
// is per connection (kx_tls_new's verify_host: tls_server_name or the host).
// Returns a new context (kx_tls_ctx_free) or null with a kubectl-style message,
// prefix included ("error: tls: failed to find any PEM data in certificate
// input"), in err.
kx_tls_ctx *kx_kcfg_tls_ctx(const kx_kcfg *c, char *err, size_t errcap);
