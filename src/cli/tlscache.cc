// TLS session resumption across kubexec runs (contract in cli.h).
//
// Why: every kubexec command is a new process and a new TLS connection; a
// full handshake with client certificates costs both ends certificate checks
// and signatures (with mbedTLS on the client ~8 ms of its CPU for P-256), a
// resumed one only symmetric crypto (measured against kubexec-apiserver with
// bench/12_cli_latency.sh). The server's session ticket is kept
// in the user's cache directory, one file per server + identity, as ssh
// keeps its ControlMaster sockets: readable by the user only, holding no
// more than the kubeconfig next to it already grants (the private key), and
// useless once the server forgets its ticket key (a restart) or the ticket
// expires; then the handshake is simply a full one again.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "kubexec/crypto.h"

static const size_t kMaxSessionFile = 8192;

static char g_path[1024];   // "" when the cache is off
static bool g_stored;       // this run wrote its session already

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

// Writes the session after a full handshake. A resumed handshake keeps the
// ticket it used (valid until it expires): most runs touch no file. Called
// when the handshake is done (TLS 1.2, mbedTLS: the ticket came with it),
// after each answer and before a close (TLS 1.3, OpenSSL: tickets come after
// the handshake); the first that has a session writes it.
void kx_cli_tlscache_store(kx_conn *conn)
{
    if (!g_path[0] || g_stored || kx_conn_tls_resumed(conn))
        return;
    uint8_t buf[8192];
    int n = kx_conn_tls_session_save(conn, buf, sizeof buf);
    if (n <= 0)
        return;
    g_stored = true;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.%d", g_path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
        bool ok = kx_cli_write_all(fd, buf, (size_t)n) == 0;
        ok = close(fd) == 0 && ok;
        if (!ok || rename(tmp, g_path) < 0)
            unlink(tmp);
    }
    explicit_bzero(buf, sizeof buf);
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
    // One file per server, CA and client identity: SHA-256 over them, each
    // part ending in a NUL so that no two lists hash the same.
    const char *sni = c->cfg.tls_server_name ? c->cfg.tls_server_name : "";
    kx_buf id = {};
    bool ok = kx_buf_append(&id, c->cfg.server, strlen(c->cfg.server) + 1, SIZE_MAX) == 0 &&
              kx_buf_append(&id, sni, strlen(sni) + 1, SIZE_MAX) == 0 &&
              (!c->cfg.ca_pem || kx_buf_append(&id, c->cfg.ca_pem, c->cfg.ca_len, SIZE_MAX) == 0) &&
              (!c->cfg.cert_pem ||
               kx_buf_append(&id, c->cfg.cert_pem, c->cfg.cert_len, SIZE_MAX) == 0);
    uint8_t md[32];
    ok = ok && kx_sha256(id.data, id.len, nullptr, 0, md) == 0;
    kx_buf_free(&id);
    if (!ok)
        return;
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    // ".tls": the backend's own serialization (not PEM; an older kubexec's
    // ".pem" files are simply never read).
    snprintf(g_path, sizeof g_path, "%s/%s.tls", dir, hex);
}

void kx_cli_tlscache_offer(kx_conn *conn)
{
    if (!g_path[0])
        return;
    int fd = open(g_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return;
    struct stat st;
    uint8_t buf[kMaxSessionFile];
    ssize_t n = -1;
    // Only a small regular file of ours that nobody else can read.
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == getuid() &&
        !(st.st_mode & 077) && (size_t)st.st_size <= sizeof buf)
        n = read(fd, buf, sizeof buf);
    close(fd);
    // Unreadable or expired: a full handshake, whose session replaces it.
    if (n > 0)
        kx_conn_set_tls_session(conn, buf, (size_t)n);
    explicit_bzero(buf, sizeof buf);
}
