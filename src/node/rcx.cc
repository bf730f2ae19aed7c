// rcx: a remotecommand session on SPDY/3.1 or WebSocket; see rcx.h.
#include "rcx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kubexec/conn.h"
#include "kubexec/heaptrim.h"
#include "kubexec/http1.h"
#include "kubexec/util.h"
#include "kubexec/ws.h"
#include "kubexec/wschannel.h"

static const uint64_t kStreamCreationMs = 30000; // upstream DefaultStreamCreationTimeout
// WebSocket: nothing is started (so nothing is sent) this long after the 101.
// client-go's WebSocket executor starts its read loop before it registers
// its streams; output that arrives within ~1 ms of the 101 can be dropped as
// "Unknown stream id" (clients.md §0.15). Input is paused meanwhile. The
// window is a few goroutine steps after the 101, no I/O, but a loaded
// machine stretches it: 5 ms was enough only while an exec itself took
// ~15 ms; once exec took 3 ms, 1 of 50 concurrent kubectl 1.32 execs on 2
// vCPUs lost its output ("Unknown stream id 1"), and so did 1 of 100 with
// 20 ms: the window is however long the client's goroutine waits for a CPU.
// So the delay is kWsStartDelayMs, plus kWsBurstStepMs for every other
// WebSocket session still waiting out its own delay (sessions that start
// together are what starves clients running beside each other; one after
// the other they add nothing), up to kWsStartDelayMaxMs. 50 ms for every
// exec (what clients.md measured with) would cost 50 ms each.
// Our own client (User-Agent kubexec/) has no such race and gets no delay.
static const uint64_t kWsStartDelayMs = 20;
static const uint64_t kWsBurstStepMs = 4;
static const uint64_t kWsStartDelayMaxMs = 200;
// WebSocket: after our status and close frame, how long we wait for the
// client's close frame before closing TCP anyway.
static const uint64_t kWsCloseWaitMs = 2000;
// Request bytes read past the WebSocket upgrade head that we keep until the
// session starts (a client sends nothing before the 101, so this is slack).
static const size_t kWsMaxEarly = 64 * 1024;

enum rcx_transport { RCX_SPDY, RCX_WEBSOCKET };

struct kx_rcx {
    kx_conn *conn;             // null once closed
    kx_rcx_callbacks cb;
    void *user;
    rcx_transport transport;
    int proto;
    kx_rc_session *rc;         // SPDY
    kx_wsch_session *wsch;     // WebSocket
    const char *proto_name;    // WebSocket: negotiated subprotocol (static)
    kx_buf ws_early;           // WebSocket: bytes read with the head, fed at start
    uv_timer_t timer;          // SPDY: stream creation timeout; WebSocket:
                               // start delay, then the wait for the client's close
    bool timer_closed;
    bool ready, finished, gone_reported;
    bool ws_waiting;           // counted in g_ws_waiting (start delay running)
};

static void ws_waiting_done(kx_rcx *x);

static void rcx_maybe_free(kx_rcx *x)
{
    if (x->conn || !x->timer_closed)
        return;
    uv_loop_t *loop = x->timer.loop;
    ws_waiting_done(x);
    x->cb.on_closed(x->user);
    kx_rc_free(x->rc);
    kx_wsch_free(x->wsch);
    kx_buf_free(&x->ws_early);
    free(x);
    // Other sessions' pages are left with holes (kubexec/heaptrim.h).
    kx_heaptrim_soon(loop);
}

static void rcx_client_gone(kx_rcx *x)
{
    if (x->finished || x->gone_reported)
        return;
    x->gone_reported = true;
    x->cb.on_client_gone(x->user);
}

// --- SPDY ------------------------------------------------------------------

static int rc_send(void *user, const uint8_t *hdr, size_t hl, const uint8_t *payload, size_t pl)
{
    kx_rcx *x = (kx_rcx *)user;
    if (!x->conn)
        return -EPIPE;
    return kx_conn_write2(x->conn, hdr, hl, payload, pl);
}

static void rc_on_ready(void *user)
{
    kx_rcx *x = (kx_rcx *)user;
    x->ready = true;
    uv_timer_stop(&x->timer);
    uv_loop_t *loop = x->timer.loop;
    x->cb.on_ready(x->user);
    // Set-up done (handshake, head, streams): return its freed pages.
    kx_heaptrim_soon(loop);
}

static void rc_on_stdin(void *user, const uint8_t *p, size_t n)
{
    kx_rcx *x = (kx_rcx *)user;
    x->cb.on_stdin(x->user, p, n);
}

static void rc_on_stdin_eof(void *user)
{
    kx_rcx *x = (kx_rcx *)user;
    x->cb.on_stdin_eof(x->user);
}

static void rc_on_resize(void *user, uint16_t cols, uint16_t rows)
{
    kx_rcx *x = (kx_rcx *)user;
    x->cb.on_resize(x->user, cols, rows);
}

static void rc_on_goaway(void *user)
{
    rcx_client_gone((kx_rcx *)user);
}

static const kx_rc_callbacks rc_cb = {rc_send, rc_on_ready, rc_on_stdin, rc_on_stdin_eof,
                                      rc_on_resize, rc_on_goaway};

// --- WebSocket -------------------------------------------------------------

static void ws_on_ready(void *user)
{
    kx_rcx *x = (kx_rcx *)user;
    x->ready = true;
    uv_loop_t *loop = x->timer.loop;
    x->cb.on_ready(x->user);
    kx_heaptrim_soon(loop);   // as rc_on_ready
}

static void ws_on_goaway(void *user)
{
    kx_rcx *x = (kx_rcx *)user;
    // After kx_rcx_finish this is the answer to our close: x_data closes TCP.
    rcx_client_gone(x);
}

static const kx_wsch_callbacks wsch_cb = {rc_send, ws_on_ready, rc_on_stdin, rc_on_stdin_eof,
                                          rc_on_resize, ws_on_goaway};

// --- connection ------------------------------------------------------------

static void x_data(kx_conn *c, const uint8_t *p, size_t n)
{
    kx_rcx *x = (kx_rcx *)kx_conn_user(c);
    int r = 0;
    if (x->transport == RCX_SPDY) {
        r = kx_rc_recv(x->rc, p, n);
    } else {
        r = kx_wsch_recv(x->wsch, p, n);
        if (r == 0 && x->finished && x->conn && kx_wsch_closed(x->wsch)) {
            // Close handshake complete.
            uv_timer_stop(&x->timer);
            kx_conn_close(x->conn);
            return;
        }
    }
    if (r < 0) {
        // A peer that breaks the protocol gets no more of our time.
        rcx_client_gone(x);
        kx_rcx_abort(x);
    }
}

static void x_end(kx_conn *c, int)
{
    kx_rcx *x = (kx_rcx *)kx_conn_user(c);
    rcx_client_gone(x);
    kx_conn_close(c);
}

static void x_drain(kx_conn *c)
{
    kx_rcx *x = (kx_rcx *)kx_conn_user(c);
    if (!x->finished && x->cb.on_drain)
        x->cb.on_drain(x->user);
}

static void x_close(kx_conn *c)
{
    kx_rcx *x = (kx_rcx *)kx_conn_user(c);
    x->conn = nullptr;
    rcx_client_gone(x);
    x->finished = true;
    if (!uv_is_closing((uv_handle_t *)&x->timer))
        uv_close((uv_handle_t *)&x->timer, [](uv_handle_t *h) {
            kx_rcx *xx = (kx_rcx *)h->data;
            xx->timer_closed = true;
            rcx_maybe_free(xx);
        });
}

static const kx_conn_callbacks x_conn_cb = {nullptr, x_data, x_end, x_drain, x_close};

static void creation_timeout(uv_timer_t *t)
{
    kx_rcx *x = (kx_rcx *)t->data;
    if (x->ready)
        return;
    fprintf(stderr, "kubexec-node: timed out waiting for client to create streams\n");
    rcx_client_gone(x);
    kx_rcx_abort(x);
}

// --- upgrade ---------------------------------------------------------------

static kx_rcx *rcx_new(kx_httpd_req *req, const kx_rcx_callbacks *cb, void *user)
{
    kx_rcx *x = (kx_rcx *)calloc(1, sizeof *x);
    if (!x)
        return nullptr;
    x->cb = *cb;
    x->user = user;
    uv_timer_init(kx_httpd_loop(req->srv), &x->timer);
    x->timer.data = x;
    return x;
}

static void ws_close_wait_timeout(uv_timer_t *t)
{
    kx_rcx *x = (kx_rcx *)t->data;
    if (x->conn)
        kx_conn_close(x->conn);
}

static void ws_start(uv_timer_t *t)
{
    kx_rcx *x = (kx_rcx *)t->data;
    ws_waiting_done(x);
    if (x->finished || !x->conn)
        return;
    kx_wsch_start(x->wsch);
    if (x->finished || !x->conn)
        return;
    kx_conn_resume(x->conn);
    if (x->ws_early.len) {
        kx_buf early = x->ws_early;
        x->ws_early = {};
        x_data(x->conn, early.data, early.len);
        kx_buf_free(&early);
    }
}

// WebSocket sessions waiting out their start delay right now (see
// kWsStartDelayMs); x->ws_waiting says whether x is counted.
static unsigned g_ws_waiting;

static uint64_t ws_start_delay(void)
{
    uint64_t d = kWsStartDelayMs + kWsBurstStepMs * g_ws_waiting;
    return d < kWsStartDelayMaxMs ? d : kWsStartDelayMaxMs;
}

static void ws_waiting_done(kx_rcx *x)
{
    if (x->ws_waiting) {
        x->ws_waiting = false;
        g_ws_waiting--;
    }
}

static kx_rcx *upgrade_ws(kx_httpd_req *req, const kx_rcx_request *r, const kx_rcx_callbacks *cb,
                          void *user)
{
    const kx_http_head *h = req->head;
    char accept[KX_WS_ACCEPT_LEN + 1];
    int rc = kx_ws_handshake_check(h, accept);
    if (rc == -EOPNOTSUPP) {
        kx_httpd_respond_text(req, 405, "unable to upgrade: WebSocket upgrade requires GET");
        return nullptr;
    }
    if (rc == -EPROTONOSUPPORT) {
        kx_http_header hd[2] = {{"Content-Type", "text/plain; charset=utf-8"},
                                {"Sec-WebSocket-Version", "13"}};
        static const char msg[] = "unable to upgrade: unsupported Sec-WebSocket-Version";
        kx_httpd_respond_hdrs(req, 400, hd, 2, msg, sizeof msg - 1, false);
        return nullptr;
    }
    if (rc < 0) {
        kx_httpd_respond_text(req, 400, "unable to upgrade: invalid WebSocket handshake");
        return nullptr;
    }
    const char *offers[32];
    size_t noffers = kx_http_get_all(h, "Sec-WebSocket-Protocol", offers, 32);
    if (noffers > 32)
        noffers = 32;
    kx_wsch_proto pr = {};
    const char *name = nullptr;
    rc = kx_wsch_negotiate(offers, noffers, &pr, &name);
    if (rc == -ENOENT) {
        // Any non-101 makes kubectl fall back to SPDY (protocol.md §4.5).
        char msg[512];
        snprintf(msg, sizeof msg,
                 "unable to upgrade: unable to negotiate protocol: server supports %s",
                 kx_wsch_supported());
        kx_httpd_respond_text(req, 403, msg);
        return nullptr;
    }
    // -ENODATA: no subprotocol offered; like the kubelet, speak
    // channel.k8s.io and (RFC 6455 §4.2.2) name none in the 101.
    kx_rcx *x = rcx_new(req, cb, user);
    kx_wsch_opts o = {r->in, r->out, r->err && !r->tty, r->tty, pr};
    if (x)
        x->wsch = kx_wsch_new(&o, &wsch_cb, x);
    const uint8_t *extra = req->extra;
    size_t extra_len = req->extra_len;
    if (x && x->wsch && extra_len && kx_buf_append(&x->ws_early, extra, extra_len, kWsMaxEarly) < 0) {
        kx_wsch_free(x->wsch);
        x->wsch = nullptr;
    }
    if (!x || !x->wsch) {
        if (x) {
            kx_buf_free(&x->ws_early);
            uv_close((uv_handle_t *)&x->timer, [](uv_handle_t *hh) { free(hh->data); });
        }
        kx_httpd_respond_text(req, 500, "out of memory");
        return nullptr;
    }
    x->transport = RCX_WEBSOCKET;
    x->proto = pr.version;
    x->proto_name = name ? name : "channel.k8s.io";
    x->conn = kx_httpd_hijack(req);
    kx_conn_set_user(x->conn, x, &x_conn_cb);
    // Nothing is read until the session starts (see kWsStartDelayMs).
    kx_conn_pause(x->conn);
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
                      accept, name ? "Sec-WebSocket-Protocol: " : "", name ? name : "",
                      name ? "\r\n" : "");
    kx_conn_write(x->conn, (const uint8_t *)head, (size_t)hl);
    // Our own CLI reads every byte after the 101 in order, in the same
    // buffer as the head: it has no demux race to wait out.
    const char *ua = kx_http_get(h, "User-Agent");
    bool own_client = ua && strncmp(ua, "kubexec/", 8) == 0;
    uint64_t delay = own_client ? 0 : ws_start_delay();
    if (delay) {
        x->ws_waiting = true;
        g_ws_waiting++;
    }
    uv_timer_start(&x->timer, ws_start, delay, 0);
    return x;
}

static kx_rcx *upgrade_spdy(kx_httpd_req *req, const kx_rcx_request *r, const kx_rcx_callbacks *cb,
                            void *user)
{
    const kx_http_head *h = req->head;
    const char *offers[32];
    size_t noffers = kx_http_get_all(h, "X-Stream-Protocol-Version", offers, 32);
    if (noffers > 32)
        noffers = 32;
    int proto = noffers ? kx_rc_negotiate(offers, noffers) : -EINVAL;
    if (proto == -EINVAL) {
        kx_httpd_respond_text(req, 400, "unable to upgrade: header X-Stream-Protocol-Version is required");
        return nullptr;
    }
    if (proto < 0) {
        kx_http_header hd[5] = {{"Content-Type", "text/plain; charset=utf-8"},
                                {"X-Accepted-Stream-Protocol-Versions", "v4.channel.k8s.io"},
                                {"X-Accepted-Stream-Protocol-Versions", "v3.channel.k8s.io"},
                                {"X-Accepted-Stream-Protocol-Versions", "v2.channel.k8s.io"},
                                {"X-Accepted-Stream-Protocol-Versions", "channel.k8s.io"}};
        static const char msg[] = "unable to upgrade: unable to negotiate protocol";
        kx_httpd_respond_hdrs(req, 403, hd, 5, msg, sizeof msg - 1, false);
        return nullptr;
    }
    kx_rcx *x = rcx_new(req, cb, user);
    kx_rc_opts o = {r->in, r->out, r->err && !r->tty, r->tty, proto};
    if (x)
        x->rc = kx_rc_new(&o, &rc_cb, x);
    if (!x || !x->rc) {
        if (x) {
            uv_close((uv_handle_t *)&x->timer, [](uv_handle_t *hh) { free(hh->data); });
        }
        kx_httpd_respond_text(req, 500, "out of memory");
        return nullptr;
    }
    x->transport = RCX_SPDY;
    x->proto = proto;
    const uint8_t *extra = req->extra;
    size_t extra_len = req->extra_len;
    x->conn = kx_httpd_hijack(req);
    kx_conn_set_user(x->conn, x, &x_conn_cb);
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                      "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: %s\r\n\r\n",
                      kx_rc_proto_name(proto));
    kx_conn_write(x->conn, (const uint8_t *)head, (size_t)hl);
    uv_timer_start(&x->timer, creation_timeout, kStreamCreationMs, 0);
    if (extra_len)
        x_data(x->conn, extra, extra_len);
    return x;
}

kx_rcx *kx_rcx_upgrade(kx_httpd_req *req, const kx_rcx_request *r, const kx_rcx_callbacks *cb,
                       void *user)
{
    const kx_http_head *h = req->head;
    if (!h->upgrade || !kx_http_has_token(h, "Connection", "upgrade")) {
        kx_httpd_respond_text(req, 400, "unable to upgrade: missing upgrade headers in request");
        return nullptr;
    }
    const char *up = kx_http_get(h, "Upgrade");
    if (up && strcasestr(up, "spdy/3.1"))
        return upgrade_spdy(req, r, cb, user);
    if (kx_http_has_token(h, "Upgrade", "websocket"))
        return upgrade_ws(req, r, cb, user);
    kx_httpd_respond_text(req, 400, "unable to upgrade: unsupported protocol (want SPDY/3.1 or websocket)");
    return nullptr;
}

// --- operations ------------------------------------------------------------

int kx_rcx_stdout(kx_rcx *x, const uint8_t *p, size_t n)
{
    if (x->finished || !x->conn)
        return -EPIPE;
    if (x->transport == RCX_WEBSOCKET)
        return kx_wsch_stdout(x->wsch, p, n);
    return kx_rc_stdout(x->rc, p, n);
}

int kx_rcx_stderr(kx_rcx *x, const uint8_t *p, size_t n)
{
    if (x->finished || !x->conn)
        return -EPIPE;
    if (x->transport == RCX_WEBSOCKET)
        return kx_wsch_stderr(x->wsch, p, n);
    return kx_rc_stderr(x->rc, p, n);
}

size_t kx_rcx_queued(const kx_rcx *x)
{
    return x->conn ? kx_conn_queued(x->conn) : 0;
}

void kx_rcx_pause_input(kx_rcx *x)
{
    if (x->conn)
        kx_conn_pause(x->conn);
}

void kx_rcx_resume_input(kx_rcx *x)
{
    if (x->conn)
        kx_conn_resume(x->conn);
}

int kx_rcx_close_stdin(kx_rcx *x)
{
    if (x->finished || !x->conn)
        return -EPIPE;
    if (x->transport == RCX_WEBSOCKET)
        return 0;   // channel.k8s.io over WebSocket has no server-side stdin close
    return kx_rc_close_stdin(x->rc);
}

void kx_rcx_finish(kx_rcx *x, int exit_code, const char *errmsg)
{
    if (x->finished)
        return;
    x->finished = true;
    uv_timer_stop(&x->timer);
    if (!x->conn)
        return;
    if (x->transport == RCX_WEBSOCKET) {
        // Status on channel 3, close 1000, then wait (bounded) for the
        // client's close: kubectl needs the 1000 to see EOF (clients.md §0.8).
        kx_wsch_finish(x->wsch, exit_code, errmsg);
        if (kx_wsch_closed(x->wsch)) {
            kx_conn_close(x->conn);
            return;
        }
        kx_conn_resume(x->conn);   // read the client's close even if paused
        uv_timer_start(&x->timer, ws_close_wait_timeout, kWsCloseWaitMs, 0);
        return;
    }
    kx_rc_finish(x->rc, exit_code, errmsg);
    kx_conn_close(x->conn);
}

void kx_rcx_abort(kx_rcx *x)
{
    x->finished = true;
    uv_timer_stop(&x->timer);
    if (!x->conn)
        return;
    // WebSocket: a close frame if none was sent yet (the client's close was
    // already echoed, a protocol error already carried its code).
    if (x->transport == RCX_WEBSOCKET)
        kx_wsch_close(x->wsch, KX_WS_GOING_AWAY);
    kx_conn_close(x->conn);
}

const char *kx_rcx_transport(const kx_rcx *x)
{
    return x->transport == RCX_SPDY ? "spdy" : "websocket";
}

const char *kx_rcx_protocol(const kx_rcx *x)
{
    if (x->proto_name)
        return x->proto_name;
    return kx_rc_proto_name(x->proto);
}
