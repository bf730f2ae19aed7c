// First-start PKI, join token and kubeconfig; see bootstrap.h.
#include "bootstrap.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kubexec/pki.h"
#include "kubexec/util.h"

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int mkdir_p1(const char *path)
{
    if (mkdir(path, 0700) == 0)
        return 0;
    if (errno != EEXIST)
        return -errno;
    struct stat st;
    if (stat(path, &st) != 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? -EINVAL : 0;
}

void kx_bootstrap_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    out[0] = 0;
    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), nullptr) || mdlen != 32)
        return;
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

// Generates key + certificate signed by the CA and writes both.
static int issue_pair(const char *ca_crt, const char *ca_key, const char *crt_path,
                      const char *key_path, const char *cn, const char *org, const char *sans,
                      int usage, char *err, size_t errlen)
{
    char *key = nullptr, *crt = nullptr;
    int rc = kx_pki_new_key(&key, err, errlen);
    if (rc == 0)
        rc = kx_pki_issue(ca_crt, ca_key, key, cn, org, sans, usage, 365, &crt, err, errlen);
    if (rc == 0 && (rc = kx_pki_write_file(key_path, key, 0600)) != 0)
        fail(err, errlen, rc, "write %s: %s", key_path, strerror(-rc));
    if (rc == 0 && (rc = kx_pki_write_file(crt_path, crt, 0644)) != 0)
        fail(err, errlen, rc, "write %s: %s", crt_path, strerror(-rc));
    free(key);
    free(crt);
    return rc;
}

// The serving certificate's SAN list, NUL-separated and ending in an empty
// entry (kx_pki_issue's format). Returns its length including the final NUL.
static size_t serving_sans(const char *listen_host, char *out, size_t cap)
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = 0;
    host[sizeof host - 1] = 0;
    const char *list[4] = {"localhost", "127.0.0.1", nullptr, nullptr};
    int n = 2;
    if (listen_host && *listen_host && strcmp(listen_host, "0.0.0.0") != 0 &&
        strcmp(listen_host, "::") != 0 && strcmp(listen_host, "[::]") != 0)
        list[n++] = listen_host;
    if (*host)
        list[n++] = host;
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        bool dup = false;
        for (int j = 0; j < i; j++)
            dup |= strcmp(list[i], list[j]) == 0;
        size_t l = strlen(list[i]);
        if (dup || l == 0 || len + l + 2 > cap)
            continue;
        memcpy(out + len, list[i], l + 1);
        len += l + 1;
    }
    out[len++] = 0;
    return len;
}

static int new_token(const char *ca_pem, const char *path, char *err, size_t errlen)
{
    uint8_t rnd[16];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return fail(err, errlen, -EIO, "getrandom failed");
    char hash[65], tok[128];
    kx_bootstrap_sha256_hex(ca_pem, strlen(ca_pem), hash);
    int n = snprintf(tok, sizeof tok, "K10%s::node:", hash);
    for (size_t i = 0; i < sizeof rnd; i++)
        n += snprintf(tok + n, sizeof tok - (size_t)n, "%02x", rnd[i]);
    snprintf(tok + n, sizeof tok - (size_t)n, "\n");
    int rc = kx_pki_write_file(path, tok, 0600);
    return rc ? fail(err, errlen, rc, "write %s: %s", path, strerror(-rc)) : 0;
}

int kx_bootstrap(const char *data_dir, const char *listen_host, kx_bootstrap_paths *out,
                 char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!data_dir || !*data_dir || !out)
        return fail(err, errlen, -EINVAL, "no data directory");
    memset(out, 0, sizeof *out);
    char pki[512], sans_path[512];
    if (join(pki, sizeof pki, data_dir, "pki") || join(out->ca_crt, 512, pki, "ca.crt") ||
        join(out->ca_key, 512, pki, "ca.key") || join(out->serving_crt, 512, pki, "apiserver.crt") ||
        join(out->serving_key, 512, pki, "apiserver.key") ||
        join(out->kubelet_client_crt, 512, pki, "apiserver-kubelet-client.crt") ||
        join(out->kubelet_client_key, 512, pki, "apiserver-kubelet-client.key") ||
        join(sans_path, sizeof sans_path, pki, "apiserver.sans") ||
        join(out->admin_kubeconfig, 512, data_dir, "admin.kubeconfig") ||
        join(out->node_token, 512, data_dir, "node-token") ||
        join(out->tokens_csv, 512, data_dir, "tokens.csv"))
        return fail(err, errlen, -EINVAL, "data directory path too long");
    char admin_crt[512], admin_key[512];
    if (join(admin_crt, sizeof admin_crt, pki, "admin.crt") ||
        join(admin_key, sizeof admin_key, pki, "admin.key"))
        return fail(err, errlen, -EINVAL, "data directory path too long");

    int rc = mkdir_p1(data_dir);
    if (rc == 0)
        rc = mkdir_p1(pki);
    if (rc)
        return fail(err, errlen, rc, "mkdir %s: %s", pki, strerror(-rc));

    char *ca_crt = nullptr, *ca_key = nullptr, *sans_old = nullptr;
    bool new_ca = !exists(out->ca_crt) || !exists(out->ca_key);
    if (new_ca) {
        rc = kx_pki_new_key(&ca_key, err, errlen);
        if (rc == 0)
            rc = kx_pki_new_ca(ca_key, "kubexec-ca", 3650, &ca_crt, err, errlen);
        if (rc == 0 && (rc = kx_pki_write_file(out->ca_key, ca_key, 0600)) != 0)
            fail(err, errlen, rc, "write %s: %s", out->ca_key, strerror(-rc));
        if (rc == 0 && (rc = kx_pki_write_file(out->ca_crt, ca_crt, 0644)) != 0)
            fail(err, errlen, rc, "write %s: %s", out->ca_crt, strerror(-rc));
    } else {
        rc = kx_pki_read_file(out->ca_crt, &ca_crt);
        if (rc == 0)
            rc = kx_pki_read_file(out->ca_key, &ca_key);
        if (rc)
            fail(err, errlen, rc, "read the CA in %s: %s", pki, strerror(-rc));
    }

    // The serving cert is reissued when the SAN list changed (new listen
    // address or host name), so clients keep verifying it.
    char sans[1024];
    size_t sans_len = serving_sans(listen_host, sans, sizeof sans);
    char sans_text[1024];
    for (size_t i = 0; i + 1 < sans_len; i++)
        sans_text[i] = sans[i] ? sans[i] : '\n';
    sans_text[sans_len - 1] = 0;
    bool sans_changed = kx_pki_read_file(sans_path, &sans_old) != 0 || strcmp(sans_old, sans_text) != 0;
    if (rc == 0 && (new_ca || sans_changed || !exists(out->serving_crt) || !exists(out->serving_key))) {
        rc = issue_pair(ca_crt, ca_key, out->serving_crt, out->serving_key, "kube-apiserver", nullptr,
                        sans, KX_PKI_SERVER, err, errlen);
        if (rc == 0 && (rc = kx_pki_write_file(sans_path, sans_text, 0644)) != 0)
            fail(err, errlen, rc, "write %s: %s", sans_path, strerror(-rc));
    }
    if (rc == 0 && (new_ca || !exists(out->kubelet_client_crt) || !exists(out->kubelet_client_key)))
        rc = issue_pair(ca_crt, ca_key, out->kubelet_client_crt, out->kubelet_client_key,
                        "kubexec-apiserver", "kubexec:apiservers", nullptr, KX_PKI_CLIENT, err,
                        errlen);
    if (rc == 0 && (new_ca || !exists(admin_crt) || !exists(admin_key)))
        rc = issue_pair(ca_crt, ca_key, admin_crt, admin_key, "admin", "system:masters", nullptr,
                        KX_PKI_CLIENT, err, errlen);
    if (rc == 0 && (new_ca || !exists(out->node_token)))
        rc = new_token(ca_crt, out->node_token, err, errlen);
    free(ca_crt);
    free(ca_key);
    free(sans_old);
    return rc;
}

// Characters a kubeconfig server URL may hold without YAML quoting.
static bool url_ok(const char *s)
{
    // Starting with a scheme rules out YAML's leading indicators; inside a
    // plain block scalar only these characters could still change meaning.
    if (!s || strlen(s) > 400 || (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0))
        return false;
    for (const char *p = s; *p; p++)
        if (*p <= ' ' || *p > '~' || strchr("\"'#\\", *p))
            return false;
    return true;
}

int kx_bootstrap_kubeconfig(const kx_bootstrap_paths *p, const char *server_url, char *err,
                            size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!p || !url_ok(server_url))
        return fail(err, errlen, -EINVAL, "bad server URL");
    char admin_crt[512], admin_key[512];
    // admin.{crt,key} live next to ca.crt.
    const char *slash = strrchr(p->ca_crt, '/');
    size_t dirlen = slash ? (size_t)(slash - p->ca_crt) : 0;
    if (snprintf(admin_crt, sizeof admin_crt, "%.*s%sadmin.crt", (int)dirlen, p->ca_crt,
                 slash ? "/" : "") >= (int)sizeof admin_crt ||
        snprintf(admin_key, sizeof admin_key, "%.*s%sadmin.key", (int)dirlen, p->ca_crt,
                 slash ? "/" : "") >= (int)sizeof admin_key)
        return fail(err, errlen, -EINVAL, "path too long");
    const char *paths[3] = {p->ca_crt, admin_crt, admin_key};
    char *pem[3] = {}, *b64[3] = {};
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        rc = kx_pki_read_file(paths[i], &pem[i]);
        if (rc)
            fail(err, errlen, rc, "read %s: %s", paths[i], strerror(-rc));
        else if ((rc = kx_base64(pem[i], strlen(pem[i]), &b64[i])) != 0)
            fail(err, errlen, rc, "base64: %s", strerror(-rc));
    }
    char *text = nullptr;
    if (rc == 0) {
        int n = asprintf(&text,
                         "apiVersion: v1\n"
                         "kind: Config\n"
                         "clusters:\n"
                         "- name: kubexec\n"
                         "  cluster:\n"
                         "    server: %s\n"
                         "    certificate-authority-data: %s\n"
                         "users:\n"
                         "- name: admin\n"
                         "  user:\n"
                         "    client-certificate-data: %s\n"
                         "    client-key-data: %s\n"
                         "contexts:\n"
                         "- name: kubexec\n"
                         "  context:\n"
                         "    cluster: kubexec\n"
                         "    user: admin\n"
                         "    namespace: default\n"
                         "current-context: kubexec\n"
                         "preferences: {}\n",
                         server_url, b64[0], b64[1], b64[2]);
        if (n < 0) {
            text = nullptr;
            rc = fail(err, errlen, -ENOMEM, "out of memory");
        }
    }
    if (rc == 0 && (rc = kx_pki_write_file(p->admin_kubeconfig, text, 0600)) != 0)
        fail(err, errlen, rc, "write %s: %s", p->admin_kubeconfig, strerror(-rc));
    free(text);
    for (int i = 0; i < 3; i++) {
        free(pem[i]);
        free(b64[i]);
    }
    return rc;
}
