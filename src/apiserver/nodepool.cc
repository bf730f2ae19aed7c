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

void kx_nodepool_warm(kx_apiserver *srv, const char *host, int port)
{
    if (g_closed || find(host, port) || g_nspares >= kMaxSpares ||
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

void kx_nodepool_close_all(void)
{
    g_closed = true;
    while (g_spares)
        spare_drop(g_spares);
}
