// TLS connections on libuv TCP handles; see kubexec/conn.h.
//
// The read path uses one static 64 KiB buffer for ciphertext and one for
// plaintext: the loop is single-threaded and every byte is handed on before
// the callback returns, so nothing per read is allocated. The write path
// tries uv_try_write first and only allocates for the part the kernel did not
// take at once.
#include "kubexec/conn.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "conn_impl.h"
#include "kubexec/tls.h"
#include "kubexec/util.h"

struct conn_write {
    uv_write_t req;
    kx_conn *conn;
    size_t len;
    // data follows
};

static uint8_t g_cipher[64 * 1024];
static uint8_t g_plain[64 * 1024];
// kx_conn_write2's small header and the start of its payload, joined so they
// leave in one TLS record (one record's worth: 16 KiB of plaintext).
static const size_t kJoinHead = 256;
static uint8_t g_join[16 * 1024];

static void conn_finish_close(kx_conn *c);
static void conn_flush(kx_conn *c);
static void conn_deliver(kx_conn *c);

static void conn_handle_closed(uv_handle_t *h)
{
    kx_conn *c = (kx_conn *)h->data;
    if (--c->open_handles > 0)
        return;
    if (c->cb.on_close)
        c->cb.on_close(c);
    kx_tls_free(c->tls);
    free(c);
}

static void conn_close_handles(kx_conn *c)
{
    if (c->flags & F_HANDLES)
        return;
    c->flags |= F_HANDLES | F_CLOSING;
    if (c->flags & F_STREAM) {
        kx__stream_detach(c);
        uv_close((uv_handle_t *)&c->close_timer, conn_handle_closed);
        uv_close((uv_handle_t *)&c->resume_timer, conn_handle_closed);
        return;
    }
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->close_timer, conn_handle_closed);
    uv_close((uv_handle_t *)&c->resume_timer, conn_handle_closed);
}

static void conn_end(kx_conn *c, int status)
{
    if (c->flags & (F_ENDED | F_CLOSING))
        return;
    c->flags |= F_ENDED;
    if (c->cb.on_end)
        c->cb.on_end(c, status);
}

void kx__conn_end(kx_conn *c, int status)
{
    conn_end(c, status);
}

void kx__conn_close_handles(kx_conn *c)
{
    conn_close_handles(c);
}

kx_conn *kx__conn_new_stream(uv_loop_t *loop, size_t extra, const kx_conn_callbacks *cb,
                             void *user)
{
    kx_conn *c = (kx_conn *)calloc(1, KX__CONN_STREAM_SIZE + extra);
    if (!c)
        return nullptr;
    c->cb = *cb;
    c->user = user;
    uv_timer_init(loop, &c->close_timer);
    uv_timer_init(loop, &c->resume_timer);
    c->close_timer.data = c->resume_timer.data = c;
    c->open_handles = 2;
    c->flags = F_STREAM | F_CONNECTED | F_READY;
    return c;
}

static void conn_fail(kx_conn *c, int status)
{
    if ((c->flags & F_CLIENT) && !(c->flags & F_READY)) {
        c->flags |= F_READY | F_ENDED;
        if (c->cb.on_ready)
            c->cb.on_ready(c, status);
        kx_conn_abort(c);
        return;
    }
    conn_end(c, status);
    kx_conn_abort(c);
}

static void conn_write_done(uv_write_t *req, int status)
{
    conn_write *w = (conn_write *)req->data;
    kx_conn *c = w->conn;
    free(w);
    if (c->flags & F_HANDLES)
        return;
    if (status < 0) {
        conn_fail(c, status);
        return;
    }
    size_t q = c->tcp.write_queue_size;
    if (c->flags & F_CLOSING) {
        if (q == 0)
            conn_finish_close(c);
        return;
    }
    if ((c->flags & F_HIGH) && q < KX_CONN_LOW_WATER) {
        c->flags &= ~F_HIGH;
        if (c->cb.on_drain)
            c->cb.on_drain(c);
    }
}

// Moves pending ciphertext from the TLS engine to the socket.
static void conn_flush(kx_conn *c)
{
    if ((c->flags & F_HANDLES) || !(c->flags & F_CONNECTED))
        return;
    for (;;) {
        size_t pending = kx_tls_pending(c->tls);
        if (pending == 0)
            break;
        if (c->tcp.write_queue_size == 0) {
            // Straight from the engine's buffer; only what the socket does
            // not take now is copied, for uv_write.
            const uint8_t *p;
            size_t n = kx_tls_peek(c->tls, &p);
            if (n > INT_MAX)
                n = INT_MAX;
            uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
            int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
            if (w < 0 && w != UV_EAGAIN) {
                conn_fail(c, w);
                return;
            }
            size_t done = w > 0 ? (size_t)w : 0;
            if (done == n) {
                kx_tls_consume(c->tls, done);
                continue;
            }
            size_t rest = n - done;
            conn_write *cw = (conn_write *)malloc(sizeof *cw + rest);
            if (!cw) {
                conn_fail(c, -ENOMEM);
                return;
            }
            memcpy(cw + 1, p + done, rest);
            kx_tls_consume(c->tls, n);
            cw->conn = c;
            cw->len = rest;
            cw->req.data = cw;
            b = uv_buf_init((char *)(cw + 1), (unsigned)rest);
            int r = uv_write(&cw->req, (uv_stream_t *)&c->tcp, &b, 1, conn_write_done);
            if (r < 0) {
                free(cw);
                conn_fail(c, r);
                return;
            }
            continue;
        }
        conn_write *cw = (conn_write *)malloc(sizeof *cw + pending);
        if (!cw) {
            conn_fail(c, -ENOMEM);
            return;
        }
        int n = kx_tls_take(c->tls, (uint8_t *)(cw + 1), pending);
        if (n <= 0) {
            free(cw);
            break;
        }
        cw->conn = c;
        cw->len = (size_t)n;
        cw->req.data = cw;
        uv_buf_t b = uv_buf_init((char *)(cw + 1), (unsigned)n);
        int r = uv_write(&cw->req, (uv_stream_t *)&c->tcp, &b, 1, conn_write_done);
        if (r < 0) {
            free(cw);
            conn_fail(c, r);
            return;
        }
    }
    if (c->tcp.write_queue_size >= KX_CONN_HIGH_WATER)
        c->flags |= F_HIGH;
}

static void conn_check_ready(kx_conn *c)
{
    if (!(c->flags & F_READY) && kx_tls_handshake_done(c->tls)) {
        c->flags |= F_READY;
        if (c->cb.on_ready)
            c->cb.on_ready(c, 0);
    }
}

// Pulls plaintext out of the TLS engine and hands it to the user until the
// engine is empty, the user pauses, or the connection closes.
// TLS hands out one record per read: every record read is gathered into
// g_plain before on_data, so a relay (the API server's proxy) writes them
// on in one piece -- one record and one send where the peer's framing made
// many small ones (a WebSocket header record, then its payload's).
static void conn_deliver(kx_conn *c)
{
    while (!(c->flags & (F_CLOSING | F_PAUSED))) {
        size_t got = 0;
        int n;
        do {
            n = kx_tls_read(c->tls, g_plain + got, sizeof g_plain - got);
            if (n > 0)
                got += (size_t)n;
        } while (n > 0 && got < sizeof g_plain);
        conn_flush(c);
        if (c->flags & F_CLOSING)
            return;
        conn_check_ready(c);
        if (c->flags & F_CLOSING)
            return;
        if (got && c->cb.on_data) {
            c->cb.on_data(c, g_plain, got);
            if (c->flags & F_CLOSING)
                return;
        }
        if (n == 0 && got < sizeof g_plain)
            return; // the engine is empty
        if (n == KX_TLS_EOF) {
            conn_end(c, 0);
            return;
        }
        if (n < 0) {
            conn_fail(c, n);
            return;
        }
    }
}

static void conn_alloc(uv_handle_t *, size_t, uv_buf_t *buf)
{
    buf->base = (char *)g_cipher;
    buf->len = sizeof g_cipher;
}

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    kx_conn *c = (kx_conn *)s->data;
    if (c->flags & F_HANDLES)
        return;
    if (nread < 0) {
        uv_read_stop(s);
        c->flags &= ~F_READING;
        if (nread == UV_EOF) {
            if (!(c->flags & F_READY)) {
                conn_fail(c, -ECONNRESET);
                return;
            }
            // Deliver whatever plaintext is still inside the engine first.
            conn_deliver(c);
            conn_end(c, 0);
        } else {
            conn_fail(c, (int)nread);
        }
        return;
    }
    if (nread == 0)
        return;
    int r = kx_tls_feed(c->tls, (const uint8_t *)buf->base, (size_t)nread);
    if (r < 0) {
        conn_fail(c, r);
        return;
    }
    conn_deliver(c);
    conn_flush(c);
}

static int conn_start_reading(kx_conn *c)
{
    if (c->flags & (F_READING | F_CLOSING))
        return 0;
    int r = uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
    if (r == 0)
        c->flags |= F_READING;
    return r;
}

static kx_conn *conn_new(uv_loop_t *loop, kx_tls_ctx *ctx, bool server, const char *verify_host,
                         const kx_conn_callbacks *cb, void *user)
{
    kx_conn *c = (kx_conn *)calloc(1, sizeof *c);
    if (!c)
        return nullptr;
    c->tls = kx_tls_new(ctx, server, verify_host);
    if (!c->tls) {
        free(c);
        return nullptr;
    }
    c->cb = *cb;
    c->user = user;
    uv_tcp_init(loop, &c->tcp);
    uv_timer_init(loop, &c->close_timer);
    uv_timer_init(loop, &c->resume_timer);
    c->tcp.data = c->close_timer.data = c->resume_timer.data = c;
    c->open_handles = 3;
    return c;
}

kx_conn *kx_conn_accept(uv_stream_t *server, kx_tls_ctx *ctx, const kx_conn_callbacks *cb,
                        void *user)
{
    kx_conn *c = conn_new(server->loop, ctx, true, nullptr, cb, user);
    if (!c)
        return nullptr;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close_handles(c);
        return nullptr;
    }
    c->flags |= F_CONNECTED;
    uv_tcp_nodelay(&c->tcp, 1);
    if (conn_start_reading(c) != 0) {
        conn_close_handles(c);
        return nullptr;
    }
    return c;
}

static void conn_connected(uv_connect_t *req, int status)
{
    kx_conn *c = (kx_conn *)req->data;
    if (c->flags & F_HANDLES)
        return;
    if (status < 0) {
        conn_fail(c, status);
        return;
    }
    c->flags |= F_CONNECTED;
    uv_tcp_nodelay(&c->tcp, 1);
    if (conn_start_reading(c) != 0) {
        conn_fail(c, -EIO);
        return;
    }
    // Reading from the engine produces the ClientHello.
    int n = kx_tls_read(c->tls, g_plain, sizeof g_plain);
    if (n < 0 && n != KX_TLS_EOF) {
        conn_fail(c, n);
        return;
    }
    conn_flush(c);
}

static void conn_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    kx_conn *c = (kx_conn *)req->data;
    c->flags &= ~F_RESOLVING;
    if (c->flags & F_CLOSING) {
        uv_freeaddrinfo(res);
        if (!(c->flags & F_HANDLES))
            conn_close_handles(c);
        return;
    }
    if (status < 0 || !res) {
        uv_freeaddrinfo(res);
        conn_fail(c, status < 0 ? status : -EHOSTUNREACH);
        return;
    }
    c->connect_req.data = c;
    int r = uv_tcp_connect(&c->connect_req, &c->tcp, res->ai_addr, conn_connected);
    uv_freeaddrinfo(res);
    if (r < 0)
        conn_fail(c, r);
}

kx_conn *kx_conn_connect(uv_loop_t *loop, const char *host, int port, kx_tls_ctx *ctx,
                         const char *verify_host, const kx_conn_callbacks *cb, void *user)
{
    kx_conn *c = conn_new(loop, ctx, false, verify_host, cb, user);
    if (!c)
        return nullptr;
    c->flags |= F_CLIENT;
    c->port = port;
    if (verify_host)
        kx_strlcpy(c->verify_host, verify_host, sizeof c->verify_host);
    // A numeric address needs no resolver: skipping it keeps the libuv
    // thread pool (and its threads) out of a short-lived client.
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } addr;
    if (uv_ip4_addr(host, port, &addr.in4) == 0 || uv_ip6_addr(host, port, &addr.in6) == 0) {
        c->connect_req.data = c;
        int r = uv_tcp_connect(&c->connect_req, &c->tcp, &addr.sa, conn_connected);
        if (r < 0) {
            conn_close_handles(c);
            return nullptr;
        }
        return c;
    }
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    c->gai.data = c;
    c->flags |= F_RESOLVING;
    int r = uv_getaddrinfo(loop, &c->gai, conn_resolved, host, portstr, &hints);
    if (r < 0) {
        c->flags &= ~F_RESOLVING;
        conn_close_handles(c);
        return nullptr;
    }
    return c;
}

int kx_conn_write(kx_conn *c, const uint8_t *p, size_t n)
{
    return kx_conn_write2(c, p, n, nullptr, 0);
}

int kx_conn_write2(kx_conn *c, const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    if (c->flags & F_CLOSING)
        return -EPIPE;
    if (c->flags & F_STREAM)
        return kx__stream_write2(c, a, an, b, bn);
    int r = kx__conn_write2_raw(c, a, an, b, bn);
    if (r < 0)
        return r;
    conn_flush(c);
    return (c->flags & F_HANDLES) ? -EPIPE : 0;
}

int kx__conn_write2_raw(kx_conn *c, const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    if (c->flags & (F_CLOSING | F_STREAM))
        return -EPIPE;
    int r = 0;
    if (an && bn && an <= kJoinHead) {
        // Each TLS write is a record of its own: a frame header alone would
        // cost a record (22-29 bytes, an AEAD pass) and often a send.
        size_t first = bn < sizeof g_join - an ? bn : sizeof g_join - an;
        memcpy(g_join, a, an);
        memcpy(g_join + an, b, first);
        r = kx_tls_write(c->tls, g_join, an + first);
        b += first;
        bn -= first;
        an = 0;
    }
    if (r >= 0 && an)
        r = kx_tls_write(c->tls, a, an);
    if (r >= 0 && bn)
        r = kx_tls_write(c->tls, b, bn);
    return r < 0 ? r : 0;
}

void kx__conn_flush(kx_conn *c)
{
    if (!(c->flags & F_STREAM))
        conn_flush(c);
}

size_t kx_conn_queued(const kx_conn *c)
{
    if (c->flags & F_STREAM)
        return kx__stream_queued(c);
    return c->tcp.write_queue_size + kx_tls_pending(c->tls);
}

void kx_conn_pause(kx_conn *c)
{
    if (c->flags & F_STREAM) {
        kx__stream_pause(c);
        return;
    }
    c->flags |= F_PAUSED;
    if (c->flags & F_READING) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->flags &= ~F_READING;
    }
}

static void conn_resume_cb(uv_timer_t *t)
{
    kx_conn *c = (kx_conn *)t->data;
    if (c->flags & (F_CLOSING | F_PAUSED))
        return;
    conn_deliver(c);
    if (!(c->flags & (F_CLOSING | F_PAUSED | F_ENDED)))
        conn_start_reading(c);
}

void kx_conn_resume(kx_conn *c)
{
    if (!(c->flags & F_PAUSED) || (c->flags & F_CLOSING))
        return;
    if (c->flags & F_STREAM) {
        kx__stream_resume(c);
        return;
    }
    c->flags &= ~F_PAUSED;
    // Plaintext may still sit in the engine; deliver it from the loop, not
    // from inside the caller's stack.
    uv_timer_start(&c->resume_timer, conn_resume_cb, 0, 0);
}

static void conn_finish_close(kx_conn *c)
{
    conn_close_handles(c);
}

static void conn_close_timeout(uv_timer_t *t)
{
    conn_close_handles((kx_conn *)t->data);
}

void kx_conn_close(kx_conn *c)
{
    if (c->flags & F_CLOSING)
        return;
    if (c->flags & F_STREAM) {
        kx__stream_close(c);
        return;
    }
    c->flags |= F_CLOSING;
    if (c->flags & F_READING) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->flags &= ~F_READING;
    }
    if ((c->flags & F_CONNECTED) && kx_tls_handshake_done(c->tls)) {
        kx_tls_close(c->tls);
        // conn_flush refuses to run once closing handles; it only checks
        // F_HANDLES, so the close_notify still goes out here.
        conn_flush(c);
    }
    if (!(c->flags & F_CONNECTED) && !(c->flags & F_CLIENT)) {
        conn_close_handles(c);
        return;
    }
    if (!(c->flags & F_CONNECTED)) {
        // A client still resolving or connecting. A pending getaddrinfo
        // always calls back (possibly cancelled), and conn_resolved closes
        // the handles then; a pending connect is cancelled by closing.
        if (c->flags & F_RESOLVING)
            uv_cancel((uv_req_t *)&c->gai);
        else
            conn_close_handles(c);
        return;
    }
    if (c->tcp.write_queue_size == 0) {
        conn_close_handles(c);
        return;
    }
    uv_timer_start(&c->close_timer, conn_close_timeout, 10000, 0);
}

void kx_conn_abort(kx_conn *c)
{
    if (c->flags & F_STREAM) {
        kx__stream_abort(c);
        return;
    }
    if (c->flags & F_RESOLVING) {
        // conn_resolved runs later and closes the handles; freeing now
        // would leave it a dangling request.
        c->flags |= F_CLOSING;
        uv_cancel((uv_req_t *)&c->gai);
        return;
    }
    conn_close_handles(c);
}

int kx_conn_set_tls_session(kx_conn *c, const uint8_t *p, size_t n)
{
    if (!(c->flags & F_CLIENT) || (c->flags & (F_READY | F_STREAM)))
        return -EINVAL;
    return kx_tls_set_session(c->tls, p, n);
}

int kx_conn_tls_session_save(const kx_conn *c, uint8_t *buf, size_t cap)
{
    if (c->flags & F_STREAM)
        c = kx__stream_parent(c);
    if (!c)
        return -ENOTCONN;
    return kx_tls_session_save(c->tls, buf, cap);
}

bool kx_conn_tls_resumed(const kx_conn *c)
{
    if (c->flags & F_STREAM)
        c = kx__stream_parent(c);
    if (!c)
        return false;
    return kx_tls_session_reused(c->tls);
}

const char *kx_conn_tls_error(const kx_conn *c)
{
    if (c->flags & F_STREAM)
        c = kx__stream_parent(c);
    if (!c)
        return "";
    return kx_tls_error(c->tls);
}

bool kx_conn_closing(const kx_conn *c)
{
    return (c->flags & F_CLOSING) != 0;
}

bool kx_conn_is_stream(const kx_conn *c)
{
    return (c->flags & F_STREAM) != 0;
}

void *kx_conn_user(const kx_conn *c)
{
    return c->user;
}

const kx_conn_callbacks kx_conn_no_callbacks = {nullptr, nullptr, nullptr, nullptr, nullptr};

void kx_conn_set_user(kx_conn *c, void *user, const kx_conn_callbacks *cb)
{
    c->user = user;
    if (cb)
        c->cb = *cb;
}

int kx_conn_peer_subject(const kx_conn *c, char *cn, size_t cncap, char *orgs, size_t orgcap)
{
    if (c->flags & F_STREAM)
        c = kx__stream_parent(c);
    if (!c)
        return -ENOTCONN;
    return kx_tls_peer_subject(c->tls, cn, cncap, orgs, orgcap);
}

int kx_conn_peer_addr(const kx_conn *c, char *out, size_t cap)
{
    if (c->flags & F_STREAM)
        c = kx__stream_parent(c);
    if (!c)
        return -ENOTCONN;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    int r = uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len);
    if (r < 0)
        return r;
    char ip[64];
    int port;
    if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else {
        uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    snprintf(out, cap, "%s:%d", ip, port);
    return 0;
}
