// kubexec port-forward: local TCP listeners, one SPDY/3.1 portforward.k8s.io
// session to the pod (tunnelled in WebSocket first, plain SPDY when the
// server refuses, as kubectl >= 1.31), a pair of streams per local
// connection (protocol.md §5).
//
// Unlike kubectl >= 1.23, an error on one connection's error stream (say,
// nothing listens on the remote port) is reported and ends only that
// connection; the forward goes on serving the next ones.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kubexec/spdy.h"
#include "kubexec/uvwrite.h"
#include "kubexec/ws.h"

static const size_t kMaxPorts = 16;
static const size_t kMaxConns = 1024;
// Local socket's write queue above which we stop reading the session.
static const size_t kLocalHighWater = 1024 * 1024;
// SPDY PING interval inside the session (kubectl pings every 5-10 s), so
// idle forwards stay alive through proxies with idle timeouts.
static const uint64_t kPingMs = 10000;
static const size_t kMaxErrorText = 4096;

struct pf_sess;

struct pf_listener {
    uv_tcp_t tcp;
    pf_sess *s;
    int local, remote;
};

struct pf_conn {
    uv_tcp_t tcp;
    pf_sess *s;
    pf_conn *next;
    int local, remote;
    uint32_t sid_err, sid_data;
    bool data_ready;         // SYN_REPLY for the data stream arrived
    bool local_eof, remote_eof, err_eof, closing;
    size_t queued;           // bytes queued on the local socket
    kx_buf err_text;
};

struct pf_sess {
    kx_cli *c;
    kx_conn *conn;
    bool ws;
    kx_ws_session *wss;
    kx_spdy_session *spdy;
    pf_listener *listeners[2 * kMaxPorts];
    size_t nlisteners;
    pf_conn *conns;
    size_t nconns;
    uint32_t next_request;
    uint32_t ping_id;
    uv_timer_t ping;
    uv_signal_t sigint, sigterm;
    bool lost, stopped, paused;
};

static pf_conn *find_conn(pf_sess *s, uint32_t id)
{
    for (pf_conn *p = s->conns; p; p = p->next)
        if (p->sid_err == id || p->sid_data == id)
            return p;
    return nullptr;
}

static void conn_write(pf_sess *s, const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    if (!s->conn)
        return;
    if (s->ws)
        kx_ws_send(s->wss, KX_WS_BINARY, a, an, b, bn);
    else
        kx_conn_write2(s->conn, a, an, b, bn);
}

// ---- Local connections ------------------------------------------------------------

static void local_closed(uv_handle_t *h)
{
    pf_conn *p = (pf_conn *)h->data;
    kx_buf_free(&p->err_text);
    free(p);
}

static void pf_conn_close(pf_conn *p)
{
    if (p->closing)
        return;
    p->closing = true;
    pf_sess *s = p->s;
    for (pf_conn **pp = &s->conns; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    s->nconns--;
    if (s->spdy && s->conn) {
        if (!p->remote_eof || !p->local_eof)
            kx_spdy_rst(s->spdy, p->sid_data, KX_SPDY_CANCEL);
        if (!p->err_eof)
            kx_spdy_rst(s->spdy, p->sid_err, KX_SPDY_CANCEL);
    }
    uv_close((uv_handle_t *)&p->tcp, local_closed);
}

static void maybe_done(pf_conn *p)
{
    if (p->local_eof && p->remote_eof && p->queued == 0)
        pf_conn_close(p);
}

static void local_alloc(uv_handle_t *, size_t, uv_buf_t *b)
{
    static char buf[32 * 1024];
    b->base = buf;
    b->len = sizeof buf;
}

static void local_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    pf_conn *p = (pf_conn *)st->data;
    pf_sess *s = p->s;
    if (n == 0)
        return;
    if (n < 0) {
        uv_read_stop(st);
        if (n != UV_EOF) {
            pf_conn_close(p);
            return;
        }
        p->local_eof = true;
        if (s->spdy)
            kx_spdy_data(s->spdy, p->sid_data, nullptr, 0, true);
        maybe_done(p);
        return;
    }
    kx_spdy_data(s->spdy, p->sid_data, (const uint8_t *)b->base, (size_t)n, false);
    if (s->conn && kx_conn_queued(s->conn) > KX_CONN_HIGH_WATER) {
        // Stop every local reader until the session drains (s_drain).
        for (pf_conn *q = s->conns; q; q = q->next)
            if (q->data_ready && !q->local_eof)
                uv_read_stop((uv_stream_t *)&q->tcp);
    }
}

static void local_start_reading(pf_conn *p)
{
    if (p->data_ready && !p->local_eof && !p->closing)
        uv_read_start((uv_stream_t *)&p->tcp, local_alloc, local_read);
}

static void session_flow(pf_sess *s);

static void local_wrote(void *user, size_t len, int status)
{
    pf_conn *p = (pf_conn *)user;
    p->queued -= len;
    if (status < 0) {
        pf_conn_close(p);
        return;
    }
    if (!p->closing) {
        session_flow(p->s);
        maybe_done(p);
    }
}

// Resumes reading the session once no local socket is far behind.
static void session_flow(pf_sess *s)
{
    bool behind = false;
    for (pf_conn *p = s->conns; p; p = p->next)
        if (p->queued > kLocalHighWater)
            behind = true;
    if (!s->conn)
        return;
    if (behind && !s->paused) {
        s->paused = true;
        kx_conn_pause(s->conn);
    } else if (!behind && s->paused) {
        s->paused = false;
        kx_conn_resume(s->conn);
    }
}

static void on_accept(uv_stream_t *server, int status)
{
    pf_listener *l = (pf_listener *)server->data;
    pf_sess *s = l->s;
    if (status < 0)
        return;
    pf_conn *p = (pf_conn *)calloc(1, sizeof *p);
    if (!p)
        return;
    uv_tcp_init(s->c->loop, &p->tcp);
    p->tcp.data = p;
    p->s = s;
    p->local = l->local;
    p->remote = l->remote;
    if (uv_accept(server, (uv_stream_t *)&p->tcp) != 0 || !s->conn || s->nconns >= kMaxConns) {
        p->closing = true;
        uv_close((uv_handle_t *)&p->tcp, local_closed);
        return;
    }
    uv_tcp_nodelay(&p->tcp, 1);
    printf("Handling connection for %d\n", l->local);
    fflush(stdout);
    char port[16], req[16];
    int pl = snprintf(port, sizeof port, "%d", l->remote);
    int rl = snprintf(req, sizeof req, "%u", s->next_request++);
    kx_spdy_nv nv[3] = {{"streamtype", 10, "error", 5},
                        {"port", 4, port, (size_t)pl},
                        {"requestid", 9, req, (size_t)rl}};
    // The error stream is read-only for us: half-close it at once.
    if (kx_spdy_open(s->spdy, nv, 3, true, &p->sid_err) < 0) {
        p->closing = true;
        uv_close((uv_handle_t *)&p->tcp, local_closed);
        return;
    }
    nv[0] = {"streamtype", 10, "data", 4};
    if (kx_spdy_open(s->spdy, nv, 3, false, &p->sid_data) < 0) {
        kx_spdy_rst(s->spdy, p->sid_err, KX_SPDY_CANCEL);
        p->closing = true;
        uv_close((uv_handle_t *)&p->tcp, local_closed);
        return;
    }
    p->next = s->conns;
    s->conns = p;
    s->nconns++;
}

// ---- SPDY session --------------------------------------------------------------

static int spdy_send(void *user, const uint8_t *hdr, size_t hl, const uint8_t *p, size_t pl)
{
    conn_write((pf_sess *)user, hdr, hl, p, pl);
    return 0;
}

static void spdy_reply(void *user, uint32_t id, const kx_spdy_nv *, size_t, bool)
{
    pf_sess *s = (pf_sess *)user;
    pf_conn *p = find_conn(s, id);
    if (p && id == p->sid_data) {
        p->data_ready = true;
        local_start_reading(p);
    }
}

static void spdy_data(void *user, uint32_t id, const uint8_t *d, size_t n)
{
    pf_sess *s = (pf_sess *)user;
    pf_conn *p = find_conn(s, id);
    if (!p || p->closing)
        return;
    if (id == p->sid_err) {
        kx_buf_append(&p->err_text, d, n, kMaxErrorText);
        return;
    }
    long q = kx_uv_write_copy((uv_stream_t *)&p->tcp, d, n, local_wrote, p);
    if (q < 0) {
        pf_conn_close(p);
        return;
    }
    p->queued += (size_t)q;
    if (p->queued > kLocalHighWater)
        session_flow(s);
}

static void remote_done(pf_sess *s, pf_conn *p, uint32_t id)
{
    if (id == p->sid_err) {
        p->err_eof = true;
        if (p->err_text.len) {
            fprintf(stderr, "an error occurred forwarding %d -> %d: %.*s\n", p->local, p->remote,
                    (int)p->err_text.len, (const char *)p->err_text.data);
            pf_conn_close(p);
        }
        return;
    }
    p->remote_eof = true;
    if (!p->local_eof) {
        // The pod's side is done: stop reading ours, close once written.
        uv_read_stop((uv_stream_t *)&p->tcp);
        p->local_eof = true;
    }
    (void)s;
    maybe_done(p);
}

static void spdy_fin(void *user, uint32_t id)
{
    pf_sess *s = (pf_sess *)user;
    pf_conn *p = find_conn(s, id);
    if (p && !p->closing)
        remote_done(s, p, id);
}

static void spdy_rst(void *user, uint32_t id, uint32_t)
{
    pf_sess *s = (pf_sess *)user;
    pf_conn *p = find_conn(s, id);
    if (!p || p->closing)
        return;
    if (id == p->sid_err) {
        remote_done(s, p, id);
        return;
    }
    p->remote_eof = true;
    pf_conn_close(p);
}

static void spdy_goaway(void *user, uint32_t, uint32_t)
{
    pf_sess *s = (pf_sess *)user;
    s->lost = true;
    if (s->conn)
        kx_conn_close(s->conn);
}

// ---- Connection to the server ------------------------------------------------------

static int ws_send(void *user, const uint8_t *hdr, size_t hl, const uint8_t *p, size_t pl)
{
    pf_sess *s = (pf_sess *)user;
    if (s->conn)
        kx_conn_write2(s->conn, hdr, hl, p, pl);
    return 0;
}

static void ws_message(void *user, int opcode, const uint8_t *p, size_t n)
{
    pf_sess *s = (pf_sess *)user;
    if (opcode != KX_WS_BINARY || kx_spdy_recv(s->spdy, p, n) < 0) {
        s->lost = true;
        kx_conn_abort(s->conn);
    }
}

static void ws_closed(void *user, uint16_t)
{
    pf_sess *s = (pf_sess *)user;
    s->lost = true;
    if (s->conn)
        kx_conn_close(s->conn);
}

static void s_data(kx_conn *conn, const uint8_t *p, size_t n)
{
    pf_sess *s = (pf_sess *)kx_conn_user(conn);
    int r = s->ws ? kx_ws_recv(s->wss, p, n) : kx_spdy_recv(s->spdy, p, n);
    if (r < 0) {
        s->lost = true;
        kx_conn_abort(conn);
    }
}

static void s_end(kx_conn *conn, int)
{
    pf_sess *s = (pf_sess *)kx_conn_user(conn);
    s->lost = true;
    kx_conn_close(conn);
}

static void s_drain(kx_conn *conn)
{
    pf_sess *s = (pf_sess *)kx_conn_user(conn);
    for (pf_conn *p = s->conns; p; p = p->next)
        local_start_reading(p);
}

static void s_closed(kx_conn *conn)
{
    pf_sess *s = (pf_sess *)kx_conn_user(conn);
    s->conn = nullptr;
    if (!s->stopped)
        s->lost = true;
}

static const kx_conn_callbacks s_cb = {nullptr, s_data, s_end, s_drain, s_closed};

static void ping_cb(uv_timer_t *t)
{
    pf_sess *s = (pf_sess *)t->data;
    if (s->spdy && s->conn) {
        s->ping_id += 2;
        kx_spdy_ping(s->spdy, s->ping_id);
    }
}

static void stop_cb(uv_signal_t *h, int)
{
    pf_sess *s = (pf_sess *)h->data;
    s->stopped = true;
    uv_stop(s->c->loop);
}

// ---- Command ------------------------------------------------------------------------

struct port_map {
    int local, remote;
};

static int parse_port(const char *s, int *out, bool allow_zero)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < (allow_zero ? 0 : 1) || v > 65535)
        return -EINVAL;
    *out = (int)v;
    return 0;
}

static int parse_mapping(const char *spec, port_map *m)
{
    const char *colon = strchr(spec, ':');
    char local[16] = "";
    const char *remote = spec;
    if (colon) {
        size_t l = (size_t)(colon - spec);
        if (l >= sizeof local)
            return -EINVAL;
        memcpy(local, spec, l);
        local[l] = '\0';
        remote = colon + 1;
    }
    if (parse_port(remote, &m->remote, false) < 0)
        return -EINVAL;
    if (!colon) {
        m->local = m->remote;
    } else if (!local[0]) {
        m->local = 0;
    } else if (parse_port(local, &m->local, true) < 0) {
        return -EINVAL;
    }
    return 0;
}

static int listen_on(pf_sess *s, const char *ip, port_map *m, bool required)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } a;
    bool v6 = strchr(ip, ':') != nullptr;
    if ((v6 ? uv_ip6_addr(ip, m->local, &a.in6) : uv_ip4_addr(ip, m->local, &a.in4)) != 0)
        return kx_cli_err("%s is not a valid IP", ip);
    if (s->nlisteners >= sizeof s->listeners / sizeof s->listeners[0])
        return kx_cli_err("too many listeners: at most %zu ports times addresses",
                          sizeof s->listeners / sizeof s->listeners[0]);
    pf_listener *l = (pf_listener *)calloc(1, sizeof *l);
    if (!l)
        return kx_cli_err("out of memory");
    uv_tcp_init(s->c->loop, &l->tcp);
    l->tcp.data = l;
    l->s = s;
    l->remote = m->remote;
    int r = uv_tcp_bind(&l->tcp, &a.sa, v6 ? UV_TCP_IPV6ONLY : 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&l->tcp, 128, on_accept);
    if (r != 0) {
        uv_close((uv_handle_t *)&l->tcp, [](uv_handle_t *h) { free(h->data); });
        if (!required)
            return 0;
        return kx_cli_err("unable to listen on port %d: Listeners failed to create with the "
                          "following errors: [unable to create listener: Error listen tcp%s "
                          "%s%s%s:%d: bind: %s]",
                          m->local, v6 ? "6" : "4", v6 ? "[" : "", ip, v6 ? "]" : "", m->local,
                          uv_strerror(r));
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &blen);
    l->local = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    if (m->local == 0)
        m->local = l->local;   // the IPv6 listener takes the same port
    printf("Forwarding from %s%s%s:%d -> %d\n", v6 ? "[" : "", ip, v6 ? "]" : "", l->local,
           m->remote);
    fflush(stdout);
    s->listeners[s->nlisteners++] = l;
    return 0;
}

int kx_cmd_port_forward(kx_cli *c, int argc, char **argv)
{
    const char *address = "localhost", *running_timeout = nullptr;
    const kx_flag flags[] = {
        {"address", 0, KXF_STRING, &address},
        {"pod-running-timeout", 0, KXF_STRING, &running_timeout},
    };
    const char *pos[kMaxPorts + 1];
    size_t npos;
    if (kx_cli_parse(c, argc, argv, flags, sizeof flags / sizeof flags[0], pos, kMaxPorts + 1,
                     &npos, nullptr, nullptr))
        return 1;
    if (npos < 2)
        return kx_cli_err("TYPE/NAME and list of ports are required for port-forward");
    port_map maps[kMaxPorts];
    size_t nmaps = npos - 1;
    for (size_t i = 0; i < nmaps; i++) {
        const char *colon = strrchr(pos[i + 1], ':');
        const char *remote = colon ? colon + 1 : pos[i + 1];
        if (*remote && strspn(remote, "0123456789") != strlen(remote))
            return kx_cli_err("named remote ports (%s) are not supported by kubexec; give the "
                              "port number",
                              remote);
        if (parse_mapping(pos[i + 1], &maps[i]) < 0)
            return kx_cli_err("Error parsing local port '%s': must be a port number 0-65535 and "
                              "a remote port 1-65535",
                              pos[i + 1]);
    }
    kx_cli_http *h;
    kx_cli_pod pod;
    if (kx_cli_pod_open(c, pos[0], nullptr, nullptr, false, &h, &pod, nullptr, 0))
        return 1;
    if (strcmp(pod.phase, "Running") != 0) {
        kx_cli_http_close(h);
        return kx_cli_err("unable to forward port because pod is not running. Current status=%s",
                          pod.phase);
    }
    char path[1400];
    kx_cli_pod_path(path, sizeof path, pod.ns, pod.name, "portforward");   // fits: the GET did
    pf_sess *s = (pf_sess *)calloc(1, sizeof *s);
    s->c = c;
    s->ping_id = 1;   // client pings are odd
    kx_cli_resp r;
    if (kx_cli_ws_enabled("KUBECTL_PORT_FORWARD_WEBSOCKETS")) {
        int u = kx_cli_ws_upgrade(c, &h, path, "SPDY/3.1+portforward.k8s.io");
        if (u < 0)
            return 1;
        s->ws = u == 1;
    }
    if (!s->ws) {
        static const char hdr[] = "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                                  "X-Stream-Protocol-Version: portforward.k8s.io\r\n"
                                  "Content-Length: 0\r\n";
        if (kx_cli_http_do(h, "POST", path, hdr, nullptr, nullptr, &r)) {
            kx_cli_http_close(h);
            return 1;
        }
        if (r.status != 101) {
            const char *ct = kx_http_get(r.head, "Content-Type");
            kx_cli_http_close(h);
            if (ct && strstr(ct, "json"))
                return kx_cli_api_error(&r);
            return kx_cli_err("error upgrading connection: unable to upgrade connection: %.*s",
                              (int)(r.body_len > 1024 ? 1024 : r.body_len), (const char *)r.body);
        }
    }
    kx_buf early;
    s->conn = kx_cli_http_take(h, &early);
    kx_conn_set_user(s->conn, s, &s_cb);
    static const kx_spdy_callbacks scb = {spdy_send,  nullptr, spdy_reply, spdy_data,
                                          spdy_fin,   spdy_rst, spdy_goaway};
    s->spdy = kx_spdy_session_new(false, &scb, s);
    if (s->ws) {
        static const kx_ws_callbacks wcb = {ws_send, ws_message, ws_closed};
        s->wss = kx_ws_new_client(&wcb, s, 0);
    }
    if (!s->spdy || (s->ws && !s->wss))
        return kx_cli_err("out of memory");
    if (early.len)
        s_data(s->conn, early.data, early.len);
    kx_buf_free(&early);
    // Listeners: "localhost" is 127.0.0.1 and ::1 (the latter best effort).
    char addrs[512];
    kx_strlcpy(addrs, address, sizeof addrs);
    for (size_t i = 0; i < nmaps; i++) {
        char *save = nullptr;
        char tmp[512];
        kx_strlcpy(tmp, addrs, sizeof tmp);
        for (char *a = strtok_r(tmp, ",", &save); a; a = strtok_r(nullptr, ",", &save)) {
            int rc;
            if (strcmp(a, "localhost") == 0) {
                rc = listen_on(s, "127.0.0.1", &maps[i], true);
                if (!rc)
                    rc = listen_on(s, "::1", &maps[i], false);
            } else {
                rc = listen_on(s, a, &maps[i], true);
            }
            if (rc)
                return 1;
        }
    }
    uv_timer_init(c->loop, &s->ping);
    s->ping.data = s;
    uv_timer_start(&s->ping, ping_cb, kPingMs, kPingMs);
    uv_signal_init(c->loop, &s->sigint);
    uv_signal_init(c->loop, &s->sigterm);
    s->sigint.data = s->sigterm.data = s;
    uv_signal_start(&s->sigint, stop_cb, SIGINT);
    uv_signal_start(&s->sigterm, stop_cb, SIGTERM);
    while (!s->lost && !s->stopped)
        uv_run(c->loop, UV_RUN_ONCE);
    if (s->stopped)
        return 0;   // Ctrl-C: kubectl exits 0 too
    fputs("error: lost connection to pod\n", stderr);
    return 1;
}
