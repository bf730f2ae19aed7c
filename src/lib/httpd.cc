// HTTPS/1.1 server connections; see kubexec/httpd.h.
#include "kubexec/httpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kx_httpd {
    uv_loop_t *loop;
    uv_tcp_t listener;
    kx_tls_ctx *ctx;
    kx_httpd_handler handler;
    void *user;
    int port;
    int nconns;
    bool closing;
    void (*close_cb)(void *);
    void *close_data;
    struct httpd_conn *conns;   // list of live, not hijacked connections
    uv_timer_t sweep;           // closes idle connections (see httpd.h)
    bool sweep_closed;
    uint64_t idle_ms;
};

struct httpd_conn {
    kx_httpd *srv;
    kx_conn *conn;
    httpd_conn *next, **pprev;
    kx_http_parser parser;
    kx_buf body;
    kx_httpd_req req;
    bool head_done;
    bool dispatched;       // a request is waiting for its answer
    bool chunked;          // the answer is a chunked stream
    bool close_after;
    bool too_large;
    uint64_t idle_since;   // loop time of the accept / the end of the last answer
};

static void httpd_maybe_done(kx_httpd *s);

static void hc_unlink(httpd_conn *hc)
{
    if (hc->pprev) {
        *hc->pprev = hc->next;
        if (hc->next)
            hc->next->pprev = hc->pprev;
        hc->pprev = nullptr;
        hc->next = nullptr;
    }
}

static void hc_free(httpd_conn *hc)
{
    kx_httpd *s = hc->srv;
    hc_unlink(hc);
    kx_buf_free(&hc->body);
    free(hc);
    s->nconns--;
    httpd_maybe_done(s);
}

static void hc_on_close(kx_conn *c)
{
    httpd_conn *hc = (httpd_conn *)kx_conn_user(c);
    if (hc->dispatched && hc->req.on_abort) {
        void (*abort_cb)(kx_httpd_req *, void *) = hc->req.on_abort;
        hc->req.on_abort = nullptr;
        abort_cb(&hc->req, hc->req.abort_data);
    }
    hc_free(hc);
}

static void hc_dispatch(httpd_conn *hc, const uint8_t *extra, size_t extra_len)
{
    const kx_http_head *h = kx_http_parser_head(&hc->parser);
    kx_httpd_req *r = &hc->req;
    r->srv = hc->srv;
    r->head = h;
    r->on_abort = nullptr;
    r->abort_data = nullptr;
    r->body = hc->body.data;
    r->body_len = hc->body.len;
    r->extra = extra;
    r->extra_len = extra_len;
    hc->dispatched = true;
    hc->chunked = false;
    hc->close_after = !h->keep_alive;
    if (hc->too_large) {
        kx_httpd_respond(r, 413, "text/plain", "request body too large\n", 23);
        return;
    }
    if (kx_url_split(h->url, r->path, sizeof r->path, &r->query) < 0) {
        kx_httpd_respond(r, 400, "text/plain", "bad request target\n", 19);
        return;
    }
    hc->srv->handler(hc->srv->user, r);
}

static int hc_on_head(void *user, const kx_http_head *h)
{
    httpd_conn *hc = (httpd_conn *)user;
    hc->head_done = true;
    hc->too_large = false;
    hc->body.len = 0;
    // An upgrade is handed over at the head: whatever follows is the next
    // protocol's, so parsing pauses here.
    return h->upgrade ? 1 : 0;
}

static int hc_on_body(void *user, const uint8_t *p, size_t n)
{
    httpd_conn *hc = (httpd_conn *)user;
    if (kx_buf_append(&hc->body, p, n, KX_HTTPD_MAX_BODY) < 0)
        hc->too_large = true;
    return 0;
}

static int hc_on_complete(void *user)
{
    httpd_conn *hc = (httpd_conn *)user;
    const kx_http_head *h = kx_http_parser_head(&hc->parser);
    if (h->upgrade)
        return 0;
    hc->head_done = false;
    hc_dispatch(hc, nullptr, 0);
    return 0;
}

static const kx_http_callbacks hc_parser_cb = {hc_on_head, hc_on_body, hc_on_complete};

static void hc_on_data(kx_conn *c, const uint8_t *p, size_t n)
{
    httpd_conn *hc = (httpd_conn *)kx_conn_user(c);
    while (n > 0) {
        if (hc->dispatched) {
            // Bytes for a later request while one is unanswered: push back
            // is not possible, so this client pipelines; refuse politely.
            kx_conn_close(c);
            return;
        }
        long used = kx_http_feed(&hc->parser, p, n);
        if (used < 0) {
            static const char msg[] =
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n"
                "Connection: close\r\n\r\nbad request\n";
            kx_conn_write(c, (const uint8_t *)msg, sizeof msg - 1);
            kx_conn_close(c);
            return;
        }
        const kx_http_head *h = kx_http_parser_head(&hc->parser);
        if (hc->head_done && h->upgrade) {
            hc->head_done = false;
            hc_dispatch(hc, p + used, n - (size_t)used);
            return;   // hijacked or answered; the rest was handed over
        }
        if (hc->dispatched && (size_t)used < n) {
            kx_conn_pause(c);
        }
        p += used;
        n -= (size_t)used;
        if (kx_conn_closing(c))
            return;
        if (used == 0)
            break;
    }
    if (hc->dispatched && !hc->chunked)   // a streamed answer keeps reading (chunked_start)
        kx_conn_pause(c);
}

static void hc_on_end(kx_conn *c, int)
{
    kx_conn_close(c);
}

static void hc_on_ready(kx_conn *c, int status)
{
    if (status < 0)
        return;
    httpd_conn *hc = (httpd_conn *)kx_conn_user(c);
    if (kx_conn_peer_subject(c, hc->req.peer_cn, sizeof hc->req.peer_cn, hc->req.peer_orgs,
                             sizeof hc->req.peer_orgs) < 0) {
        hc->req.peer_cn[0] = 0;
        hc->req.peer_orgs[0] = 0;
    }
    kx_conn_peer_addr(c, hc->req.peer_addr, sizeof hc->req.peer_addr);
}

static void hc_on_drain(kx_conn *)
{
}

static const kx_conn_callbacks hc_conn_cb = {hc_on_ready, hc_on_data, hc_on_end, hc_on_drain,
                                             hc_on_close};

// Registers hc (conn set) with s and starts serving it.
static void hc_add(kx_httpd *s, httpd_conn *hc)
{
    s->nconns++;
    hc->next = s->conns;
    if (s->conns)
        s->conns->pprev = &hc->next;
    s->conns = hc;
    hc->pprev = &s->conns;
}

static httpd_conn *hc_new(kx_httpd *s)
{
    httpd_conn *hc = (httpd_conn *)calloc(1, sizeof *hc);
    if (!hc)
        return nullptr;
    hc->srv = s;
    hc->idle_since = uv_now(s->loop);
    kx_http_parser_init(&hc->parser, KX_HTTP_REQUEST, &hc_parser_cb, hc);
    return hc;
}

int kx_httpd_adopt(kx_httpd *s, kx_conn *c)
{
    httpd_conn *hc = s->closing ? nullptr : hc_new(s);
    if (!hc) {
        kx_conn_abort(c);
        return s->closing ? -ESHUTDOWN : -ENOMEM;
    }
    hc->conn = c;
    kx_conn_set_user(c, hc, &hc_conn_cb);
    hc_add(s, hc);
    hc_on_ready(c, 0);
    return 0;
}

static void httpd_on_connection(uv_stream_t *server, int status)
{
    kx_httpd *s = (kx_httpd *)server->data;
    if (status < 0 || s->closing)
        return;
    httpd_conn *hc = hc_new(s);
    if (!hc)
        return;
    hc->conn = kx_conn_accept(server, s->ctx, &hc_conn_cb, hc);
    if (!hc->conn) {
        free(hc);
        return;
    }
    hc_add(s, hc);
}

static void httpd_sweep(uv_timer_t *t)
{
    kx_httpd *s = (kx_httpd *)t->data;
    if (!s->idle_ms)
        return;
    uint64_t now = uv_now(s->loop);
    for (httpd_conn *hc = s->conns; hc; hc = hc->next)
        if (!hc->dispatched && now - hc->idle_since >= s->idle_ms && !kx_conn_closing(hc->conn))
            kx_conn_close(hc->conn);   // on_close comes later, from the loop
}

void kx_httpd_set_idle_ms(kx_httpd *s, uint64_t ms)
{
    s->idle_ms = ms;
    if (ms && ms < 5000 && !uv_is_closing((uv_handle_t *)&s->sweep))
        uv_timer_start(&s->sweep, httpd_sweep, ms / 2 + 1, ms / 2 + 1);
}

kx_httpd *kx_httpd_new(uv_loop_t *loop, const char *host, int port, kx_tls_ctx *ctx,
                       kx_httpd_handler handler, void *user, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
        snprintf(err, errlen, "invalid listen address %s", host);
        return nullptr;
    }
    kx_httpd *s = (kx_httpd *)calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return nullptr;
    }
    s->loop = loop;
    s->ctx = ctx;
    s->handler = handler;
    s->user = user;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    int r = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&s->listener, 128, httpd_on_connection);
    if (r < 0) {
        snprintf(err, errlen, "listen on %s:%d: %s", host, port, uv_strerror(r));
        uv_close((uv_handle_t *)&s->listener, [](uv_handle_t *h) { free(h->data); });
        return nullptr;
    }
    // Idle sweep: a check every few seconds is precise enough for a bound of
    // a minute, and one timer serves every connection. Unreferenced: it
    // never keeps the loop alive on its own.
    s->idle_ms = KX_HTTPD_IDLE_MS;
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    uv_timer_start(&s->sweep, httpd_sweep, 5000, 5000);
    uv_unref((uv_handle_t *)&s->sweep);
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    return s;
}

int kx_httpd_port(const kx_httpd *s)
{
    return s->port;
}

uv_loop_t *kx_httpd_loop(const kx_httpd *s)
{
    return s->loop;
}

static void httpd_maybe_done(kx_httpd *s)
{
    if (!s->closing || s->nconns > 0 || s->listener.data || !s->sweep_closed)
        return;
    void (*cb)(void *) = s->close_cb;
    void *data = s->close_data;
    free(s);
    if (cb)
        cb(data);
}

static void httpd_listener_closed(uv_handle_t *h)
{
    kx_httpd *s = (kx_httpd *)h->data;
    s->listener.data = nullptr;
    httpd_maybe_done(s);
}

void kx_httpd_close(kx_httpd *s, void (*cb)(void *data), void *data)
{
    if (s->closing)
        return;
    s->closing = true;
    s->close_cb = cb;
    s->close_data = data;
    for (httpd_conn *hc = s->conns; hc; hc = hc->next)
        kx_conn_abort(hc->conn);
    uv_close((uv_handle_t *)&s->sweep, [](uv_handle_t *h) {
        kx_httpd *ss = (kx_httpd *)h->data;
        ss->sweep_closed = true;
        httpd_maybe_done(ss);
    });
    uv_close((uv_handle_t *)&s->listener, httpd_listener_closed);
}

static httpd_conn *req_conn(kx_httpd_req *req)
{
    return (httpd_conn *)((char *)req - offsetof(httpd_conn, req));
}

static void hc_request_done(httpd_conn *hc)
{
    hc->dispatched = false;
    hc->idle_since = uv_now(hc->srv->loop);
    hc->req.on_abort = nullptr;
    hc->body.len = 0;
    if (hc->close_after) {
        kx_conn_close(hc->conn);
        return;
    }
    kx_conn_resume(hc->conn);
}

int kx_httpd_respond_hdrs(kx_httpd_req *req, int status, const kx_http_header *hdrs,
                          size_t nhdrs, const void *body, size_t len, bool close_after)
{
    httpd_conn *hc = req_conn(req);
    if (!hc->dispatched)
        return -EINVAL;
    if (close_after)
        hc->close_after = true;
    kx_http_header all[KX_HTTP_MAX_HEADERS];
    size_t n = 0;
    for (size_t i = 0; i < nhdrs && n < KX_HTTP_MAX_HEADERS - 2; i++)
        all[n++] = hdrs[i];
    if (hc->close_after)
        all[n++] = {"Connection", "close"};
    char head[4096];
    int hl = kx_http_format_response(head, sizeof head, status, all, n, (int64_t)len);
    if (hl < 0)
        return hl;
    int r = kx_conn_write2(hc->conn, (const uint8_t *)head, (size_t)hl, (const uint8_t *)body, len);
    hc_request_done(hc);
    return r;
}

int kx_httpd_respond(kx_httpd_req *req, int status, const char *content_type, const void *body,
                     size_t len)
{
    kx_http_header h[1] = {{"Content-Type", content_type ? content_type : "text/plain"}};
    return kx_httpd_respond_hdrs(req, status, h, 1, body, len, false);
}

int kx_httpd_respond_text(kx_httpd_req *req, int status, const char *msg)
{
    return kx_httpd_respond(req, status, "text/plain; charset=utf-8", msg, strlen(msg));
}

int kx_httpd_chunked_start(kx_httpd_req *req, int status, const char *content_type)
{
    httpd_conn *hc = req_conn(req);
    if (!hc->dispatched || hc->chunked)
        return -EINVAL;
    kx_http_header h[2] = {{"Content-Type", content_type ? content_type : "text/plain"},
                           {"Transfer-Encoding", "chunked"}};
    char head[1024];
    int hl = kx_http_format_response(head, sizeof head, status, h, 2, -1);
    if (hl < 0)
        return hl;
    hc->chunked = true;
    // A streamed answer can last long (logs -f): keep reading so a client
    // that goes away is noticed (EOF -> close -> on_abort); a client that
    // sends more while we stream is closed like any pipelining one.
    kx_conn_resume(hc->conn);
    return kx_conn_write(hc->conn, (const uint8_t *)head, (size_t)hl);
}

int kx_httpd_chunked_write(kx_httpd_req *req, const void *p, size_t n)
{
    httpd_conn *hc = req_conn(req);
    if (!hc->chunked)
        return -EINVAL;
    if (n == 0)
        return 0;
    char size[24];
    int sl = snprintf(size, sizeof size, "%zx\r\n", n);
    int r = kx_conn_write2(hc->conn, (const uint8_t *)size, (size_t)sl, (const uint8_t *)p, n);
    if (r == 0)
        r = kx_conn_write(hc->conn, (const uint8_t *)"\r\n", 2);
    return r;
}

int kx_httpd_chunked_end(kx_httpd_req *req)
{
    httpd_conn *hc = req_conn(req);
    if (!hc->chunked)
        return -EINVAL;
    int r = kx_conn_write(hc->conn, (const uint8_t *)"0\r\n\r\n", 5);
    hc->chunked = false;
    hc_request_done(hc);
    return r;
}

size_t kx_httpd_queued(const kx_httpd_req *req)
{
    return kx_conn_queued(req_conn((kx_httpd_req *)req)->conn);
}

kx_conn *kx_httpd_hijack(kx_httpd_req *req)
{
    httpd_conn *hc = req_conn(req);
    kx_conn *c = hc->conn;
    // The req (and its head) must stay valid while the caller reads it, so
    // the httpd_conn is freed only after the caller returned to the loop.
    hc->dispatched = false;
    kx_conn_set_user(c, nullptr, nullptr);
    hc_unlink(hc);
    hc->srv->nconns--;
    uv_loop_t *loop = hc->srv->loop;
    uv_timer_t *t = (uv_timer_t *)malloc(sizeof *t);
    if (t) {
        uv_timer_init(loop, t);
        t->data = hc;
        uv_timer_start(t, [](uv_timer_t *tt) {
            httpd_conn *old = (httpd_conn *)tt->data;
            kx_buf_free(&old->body);
            free(old);
            uv_close((uv_handle_t *)tt, [](uv_handle_t *h) { free(h); });
        }, 0, 0);
    }
    httpd_maybe_done(hc->srv);
    return c;
}
