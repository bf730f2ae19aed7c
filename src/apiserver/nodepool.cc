// A warm TLS connection to each node the API server recently proxied to;
// see "Warm node connections" in server.h.
//
// Why: every exec/attach/port-forward needs its own connection to the node
// (an upgraded connection cannot be reused), and the TLS handshake on it is
// the largest piece of the API server's share of an exec's latency. Dialing
// the next one when a session ends takes the handshake off the next
// session's critical path (dialing it when a session started made both
// daemons do that handshake while the session's own process was being
// started: 3-5 % slower execs on two cores, bench/interleave.py A/B of 300
// alternated `kubexec exec demo -- true`). One spare per node, dropped after
// kSpareMaxAgeMs unused, so an idle cluster holds nothing.
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kubexec/mux.h"
#include "kubexec/util.h"
#include "server.h"

// Long enough for a script's next exec, short enough that an idle cluster
// holds no connection for long.
static const uint64_t kSpareMaxAgeMs = 10000;
static const size_t kMaxSpares = 64;

struct spare {
    spare *next;
    kx_apiserver *srv;
    kx_conn *conn;          // null once closed
    uv_timer_t timer;
    char host[256];
    int port;
    bool ready;             // handshake done, nothing read, peer not gone
    bool timer_closed;
};

static spare *g_spares;
static size_t g_nspares;
static bool g_closed; // shutting down: sessions that end now dial nothing

static void spare_unlink(spare *s)
{
    for (spare **pp = &g_spares; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            g_nspares--;
            return;
        }
}

static void spare_maybe_free(spare *s)
{
    if (!s->conn && s->timer_closed)
        free(s);
}

// Forgets s: unlinks it, stops its timer; frees it once both handles closed.
// The connection, if any, is closed unless it was taken (conn == null).
static void spare_drop(spare *s)
{
    spare_unlink(s);
    s->ready = false;
    if (s->conn)
        kx_conn_close(s->conn);
    if (!uv_is_closing((uv_handle_t *)&s->timer))
        uv_close((uv_handle_t *)&s->timer, [](uv_handle_t *h) {
            spare *ss = (spare *)h->data;
            ss->timer_closed = true;
            spare_maybe_free(ss);
        });
}

static void spare_ready(kx_conn *c, int status)
{
    spare *s = (spare *)kx_conn_user(c);
    if (status < 0) {
        spare_drop(s);
        return;
    }
    s->ready = true;
}

// A spare never gets data before a request; anything else ends it.
static void spare_data(kx_conn *c, const uint8_t *, size_t)
{
    spare_drop((spare *)kx_conn_user(c));
}

static void spare_end(kx_conn *c, int)
{
    spare_drop((spare *)kx_conn_user(c));
}

static void spare_closed(kx_conn *c)
{
    spare *s = (spare *)kx_conn_user(c);
    s->conn = nullptr;
    spare_unlink(s);
    spare_maybe_free(s);
}

static const kx_conn_callbacks spare_cb = {spare_ready, spare_data, spare_end, nullptr,
                                           spare_closed};

static spare *find(const char *host, int port)
{
    for (spare *s = g_spares; s; s = s->next)
        if (s->port == port && strcmp(s->host, host) == 0)
            return s;
    return nullptr;
}

kx_conn *kx_nodepool_take(kx_apiserver *srv, const char *host, int port)
{
    (void)srv;
    spare *s = find(host, port);
    if (!s || !s->ready || !s->conn || kx_conn_closing(s->conn))
        return nullptr;
    kx_conn *c = s->conn;
    s->conn = nullptr;   // the caller's now; spare_drop leaves it alone
    kx_conn_set_user(c, nullptr, nullptr);
    spare_drop(s);
    return c;
}

static bool mux_covers(const char *host, int port);

void kx_nodepool_warm(kx_apiserver *srv, const char *host, int port)
{
    if (g_closed || mux_covers(host, port) || find(host, port) || g_nspares >= kMaxSpares ||
        strlen(host) >= sizeof(spare{}.host))
        return;
    spare *s = (spare *)calloc(1, sizeof *s);
    if (!s)
        return;
    s->srv = srv;
    kx_strlcpy(s->host, host, sizeof s->host);
    s->port = port;
    uv_timer_init(srv->loop, &s->timer);
    s->timer.data = s;
    s->next = g_spares;
    g_spares = s;
    g_nspares++;
    s->conn = kx_conn_connect(srv->loop, host, port, srv->node_ctx, host, &spare_cb, s);
    if (!s->conn) {
        spare_drop(s);
        return;
    }
    uv_timer_start(&s->timer, [](uv_timer_t *t) { spare_drop((spare *)t->data); },
                   kSpareMaxAgeMs, 0);
}

// ---- multiplexed connections ------------------------------------------------
//
// One TLS connection per node, upgraded with GET /mux to kubexec-mux/1; every
// session is then a stream on it (no dial, no handshake, and on both daemons
// no OpenSSL connection of its own: ~21 KiB less per session). A node that
// answers anything but 101 gets per-session connections (and spares) as
// before, and is asked again after kMuxRetryMs.

static const uint64_t kMuxIdleMs = 30000;
static const uint64_t kMuxRetryMs = 60000;

struct nmux {
    nmux *next;
    kx_apiserver *srv;
    kx_conn *conn;      // dialing / upgrading (null once the mux owns it)
    kx_mux *mux;        // upgraded
    kx_http_parser *parser;   // the node's answer head, while upgrading
    int status;         // its status, 0 until the head is complete
    bool upgraded;      // 101 with "Upgrade: kubexec-mux/1"
    uv_timer_t timer;   // idle close, or the end of a refusal
    char host[256];
    int port;
    bool refused;
    bool timer_closed;
};

static nmux *g_muxes;

static nmux *mux_find(const char *host, int port)
{
    for (nmux *m = g_muxes; m; m = m->next)
        if (m->port == port && strcmp(m->host, host) == 0)
            return m;
    return nullptr;
}

static void nmux_maybe_free(nmux *m)
{
    if (!m->conn && !m->mux && m->timer_closed) {
        free(m->parser);
        free(m);
    }
}

// Forgets m; frees it once its connection and timer are gone.
static void nmux_drop(nmux *m)
{
    for (nmux **pp = &g_muxes; *pp; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    if (m->conn)
        kx_conn_close(m->conn);
    if (m->mux)
        kx_mux_close(m->mux);
    if (!uv_is_closing((uv_handle_t *)&m->timer))
        uv_close((uv_handle_t *)&m->timer, [](uv_handle_t *h) {
            nmux *mm = (nmux *)h->data;
            mm->timer_closed = true;
            nmux_maybe_free(mm);
        });
}

static void mux_closed(kx_mux *x, int)
{
    nmux *m = (nmux *)kx_mux_user(x);
    m->mux = nullptr;
    nmux_drop(m);
    nmux_maybe_free(m);
}

static const kx_mux_callbacks nmux_cb = {nullptr, mux_closed};

// An upgraded connection with no stream for kMuxIdleMs is closed.
static void idle_check(uv_timer_t *t)
{
    nmux *m = (nmux *)t->data;
    if (m->mux && kx_mux_streams(m->mux) == 0)
        nmux_drop(m);
}

static void refuse(nmux *m)
{
    // The node does not speak it (or failed): per-session connections for
    // a while. The entry stays, as a marker, until the timer.
    m->refused = true;
    if (m->conn) {
        kx_conn *c = m->conn;
        m->conn = nullptr;
        kx_conn_set_user(c, nullptr, nullptr);
        kx_conn_close(c);
    }
    free(m->parser);
    m->parser = nullptr;
    uv_timer_start(&m->timer, [](uv_timer_t *t) { nmux_drop((nmux *)t->data); }, kMuxRetryMs, 0);
}

static int up_head(void *user, const kx_http_head *h)
{
    nmux *m = (nmux *)user;
    m->status = h->status;
    const char *up = kx_http_get(h, "Upgrade");
    m->upgraded = h->status == 101 && up && strcasecmp(up, KX_MUX_PROTOCOL) == 0;
    return 1;   // what follows the head is frames (or an error body nobody reads)
}

static const kx_http_callbacks up_parser_cb = {up_head, nullptr, nullptr};

static void up_ready(kx_conn *c, int status)
{
    nmux *m = (nmux *)kx_conn_user(c);
    if (status < 0) {
        nmux_drop(m);   // the connection closes itself; up_closed follows
        return;
    }
    m->parser = (kx_http_parser *)malloc(sizeof *m->parser);
    if (!m->parser) {
        refuse(m);
        return;
    }
    kx_http_parser_init(m->parser, KX_HTTP_RESPONSE, &up_parser_cb, m);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /mux HTTP/1.1\r\nHost: %s:%d\r\nConnection: Upgrade\r\n"
                     "Upgrade: " KX_MUX_PROTOCOL "\r\nContent-Length: 0\r\n\r\n",
                     m->host, m->port);
    if (n <= 0 || (size_t)n >= sizeof req || kx_conn_write(c, (const uint8_t *)req, (size_t)n) < 0)
        refuse(m);
}

static void up_data(kx_conn *c, const uint8_t *d, size_t n)
{
    nmux *m = (nmux *)kx_conn_user(c);
    if (!m->parser)
        return;
    long used = kx_http_feed(m->parser, d, n);
    if (used < 0 || (m->status && !m->upgraded)) {
        refuse(m);   // a malformed answer, or no 101 for kubexec-mux/1
        return;
    }
    if (!m->status)
        return;   // the head is not complete yet
    free(m->parser);
    m->parser = nullptr;
    m->mux = kx_mux_start(c, true, &nmux_cb, m, d + used, n - (size_t)used);
    if (!m->mux) {
        refuse(m);
        return;
    }
    m->conn = nullptr;
    uv_timer_start(&m->timer, idle_check, kMuxIdleMs, 0);
}

static void up_end(kx_conn *c, int)
{
    nmux *m = (nmux *)kx_conn_user(c);
    refuse(m);
}

static void up_closed(kx_conn *c)
{
    nmux *m = (nmux *)kx_conn_user(c);
    if (!m)
        return;   // refuse() let it go
    m->conn = nullptr;
    nmux_drop(m);
    nmux_maybe_free(m);
}

static const kx_conn_callbacks up_cb = {up_ready, up_data, up_end, nullptr, up_closed};

static void mux_dial(kx_apiserver *srv, const char *host, int port)
{
    if (g_closed || strlen(host) >= sizeof(nmux{}.host))
        return;
    nmux *m = (nmux *)calloc(1, sizeof *m);
    if (!m)
        return;
    m->srv = srv;
    kx_strlcpy(m->host, host, sizeof m->host);
    m->port = port;
    uv_timer_init(srv->loop, &m->timer);
    m->timer.data = m;
    m->next = g_muxes;
    g_muxes = m;
    m->conn = kx_conn_connect(srv->loop, host, port, srv->node_ctx, host, &up_cb, m);
    if (!m->conn)
        nmux_drop(m);
}

kx_conn *kx_nodepool_stream(kx_apiserver *srv, const char *host, int port,
                            const kx_conn_callbacks *cb, void *user)
{
    nmux *m = mux_find(host, port);
    if (!m)
        mux_dial(srv, host, port);
    kx_conn *c = m && m->mux && !kx_mux_closing(m->mux) ? kx_mux_open(m->mux, cb, user) : nullptr;
    if (c) {
        uv_timer_stop(&m->timer);
        srv->node_streams_mux++;
    } else {
        srv->node_streams_conn++;
    }
    return c;
}

// After a session: a node with a mux needs no spare; an idle mux is closed
// after a while.
static bool mux_covers(const char *host, int port)
{
    nmux *m = mux_find(host, port);
    if (!m || m->refused)
        return false;
    if (m->mux && kx_mux_streams(m->mux) == 0)
        uv_timer_start(&m->timer, idle_check, kMuxIdleMs, 0);
    return true;
}

void kx_nodepool_close_all(void)
{
    g_closed = true;
    while (g_spares)
        spare_drop(g_spares);
    while (g_muxes)
        nmux_drop(g_muxes);
}
