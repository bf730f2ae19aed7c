// kubexec-mux/1: streams over one connection; see kubexec/mux.h.
//
// A stream is a kx_conn with F_STREAM (conn_impl.h): the public kx_conn
// calls land here through conn.cc, so the API server's proxy and the node's
// HTTP server and stream handlers use a stream exactly as they use a TLS
// connection. The stream's state lives in the same allocation, after the
// kx_conn's common fields (conn_impl.h).
//
// Ordering and ownership:
// - Bytes a stream's user writes leave as DATA frames while the peer's window
//   allows; the rest waits in `out` (kx_conn_queued counts it, plus the
//   parent's own queue, so the user's back-pressure works unchanged).
// - Received DATA goes straight to the user's on_data, or into `in` while the
//   user has paused the stream; credit (WINDOW) is returned only for bytes the
//   user took, so a paused stream holds at most KX_MUX_STREAM_WINDOW bytes here.
// - kx_conn_close on a stream sends FIN once `out` has drained (bounded by
//   the usual 10 s), then the stream leaves the table: DATA that still comes
//   for it is answered with RST, as TCP answers data for a closed socket.
//   Until then what it held unread and what still arrives is credited at
//   once, so a peer that is sending never waits on a stream that is going.
// - The parent's end ends every stream (on_end with -ECONNRESET) and closes
//   them; kx_mux_callbacks.on_close comes after the parent's own on_close.
#include "kubexec/mux.h"

#include <stdlib.h>
#include <string.h>

#include "conn_impl.h"
#include "kubexec/util.h"

// ---- codec ---------------------------------------------------------------

void kx_mux_put_header(uint8_t *out, uint32_t id, kx_mux_type type, uint32_t len)
{
    kx_put_be32(out, id);
    out[4] = (uint8_t)type;
    out[5] = (uint8_t)(len >> 16);
    out[6] = (uint8_t)(len >> 8);
    out[7] = (uint8_t)len;
}

void kx_mux_parser_init(kx_mux_parser *p)
{
    memset(p, 0, sizeof *p);
}

static const uint32_t kMaxIncrement = 0x7fffffff;

// Checks a complete header; the frame's length must suit its type.
static int header_ok(uint8_t type, uint32_t id, uint32_t len)
{
    if (id == 0)
        return -EPROTO;
    switch (type) {
    case KX_MUX_OPEN:
    case KX_MUX_FIN:
    case KX_MUX_RST:
        return len == 0 ? 0 : -EPROTO;
    case KX_MUX_DATA:
        return len >= 1 && len <= KX_MUX_MAX_DATA ? 0 : -EPROTO;
    case KX_MUX_WINDOW:
        return len == 4 ? 0 : -EPROTO;
    default:
        return -EPROTO;
    }
}

int kx_mux_parse(kx_mux_parser *p, const uint8_t *d, size_t n, const kx_mux_parse_cb *cb,
                 void *user)
{
    while (n > 0 && p->err == 0) {
        if (p->hlen < KX_MUX_HEADER) {
            size_t take = KX_MUX_HEADER - p->hlen;
            if (take > n)
                take = n;
            memcpy(p->hdr + p->hlen, d, take);
            p->hlen = (uint8_t)(p->hlen + take);
            d += take;
            n -= take;
            if (p->hlen < KX_MUX_HEADER)
                break;
            p->id = kx_get_be32(p->hdr);
            p->type = p->hdr[4];
            p->left = kx_get_be24(p->hdr + 5);
            p->vlen = 0;
            int r = header_ok(p->type, p->id, p->left);
            if (r < 0) {
                p->err = r;
                break;
            }
            if (p->left == 0) {
                p->hlen = 0;
                r = cb->on_ctrl(user, (kx_mux_type)p->type, p->id, 0);
                if (r < 0)
                    p->err = r;
                continue;
            }
            if (n == 0)
                break;   // the payload comes with the next call
        }
        size_t take = p->left < n ? p->left : n;
        p->left -= (uint32_t)take;
        if (p->type == KX_MUX_DATA) {
            bool end = p->left == 0;
            if (end)
                p->hlen = 0;
            int r = cb->on_data(user, p->id, d, take, end);
            if (r < 0)
                p->err = r;
        } else {
            memcpy(p->val + p->vlen, d, take);
            p->vlen = (uint8_t)(p->vlen + take);
            if (p->left == 0) {
                p->hlen = 0;
                uint32_t v = kx_get_be32(p->val);
                int r = (v == 0 || v > kMaxIncrement)
                            ? -EPROTO
                            : cb->on_ctrl(user, (kx_mux_type)p->type, p->id, v);
                if (r < 0)
                    p->err = r;
            }
        }
        d += take;
        n -= take;
    }
    return p->err;
}

// ---- streams -------------------------------------------------------------

struct kx_mux_stream {
    kx_mux *mux;            // null once the stream left its mux
    kx_conn *conn;          // the stream's kx_conn (same allocation)
    kx_mux_stream *hnext;   // hash chain
    uint32_t id;
    uint32_t send_window;   // DATA bytes we may still send
    uint32_t recv_window;   // DATA bytes the peer may still send
    uint32_t owed;          // bytes our user took, not yet returned as WINDOW
    kx_buf out;             // written, waiting for window (from out_off)
    size_t out_off;
    kx_buf in;              // received while the user paused the stream
    bool fin_sent;
    bool fin_rcvd;
    bool close_pending;     // kx_conn_close: FIN once out drained
};

struct kx_mux {
    kx_conn *parent;
    kx_mux_callbacks cb;
    void *user;
    bool opener;
    bool closing;           // kx_mux_close or the parent ended
    int status;             // why it ended, for on_close
    uint32_t last_id;
    kx_mux_stream **buckets;
    uint32_t nbuckets;      // power of two
    size_t count;
    kx_mux_parser parser;
};

// Held bytes are handed on from a copy: the user may write, pause or close
// during on_data, which must not move the bytes under the call.
static uint8_t g_chunk[64 * 1024];

static const uint32_t kCreditStep = KX_MUX_STREAM_WINDOW / 4;

static kx_mux_stream *stream_of(const kx_conn *c)
{
    return c->stream;
}

static kx_mux_stream *find(const kx_mux *m, uint32_t id)
{
    for (kx_mux_stream *s = m->buckets[id & (m->nbuckets - 1)]; s; s = s->hnext)
        if (s->id == id)
            return s;
    return nullptr;
}

static int grow(kx_mux *m)
{
    uint32_t nb = m->nbuckets * 2;
    kx_mux_stream **b = (kx_mux_stream **)calloc(nb, sizeof *b);
    if (!b)
        return -ENOMEM;
    for (uint32_t i = 0; i < m->nbuckets; i++) {
        kx_mux_stream *s = m->buckets[i];
        while (s) {
            kx_mux_stream *next = s->hnext;
            s->hnext = b[s->id & (nb - 1)];
            b[s->id & (nb - 1)] = s;
            s = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
    return 0;
}

static void unlink_stream(kx_mux *m, kx_mux_stream *s)
{
    for (kx_mux_stream **pp = &m->buckets[s->id & (m->nbuckets - 1)]; *pp; pp = &(*pp)->hnext)
        if (*pp == s) {
            *pp = s->hnext;
            m->count--;
            return;
        }
}

// Frames are written to the parent's TLS engine without a send; the entry
// points (a user's write or close, the end of a parent read, a held
// delivery) send them with one flush. While the whole connection is going
// away nothing more is said per stream: a FIN then would make a reset stream
// look complete to the peer, which learns of the end from the connection's.
//
// A frame whose payload is a[0..an) then b[0..bn) (the header and the
// start of the payload share a TLS record, see kx__conn_write2_raw).
static int send_frame2(kx_mux *m, uint32_t id, kx_mux_type type, const uint8_t *a, size_t an,
                       const uint8_t *b, size_t bn)
{
    if (m->closing)
        return -EPIPE;
    // Header and a small first piece (a WebSocket or SPDY frame header) go
    // together; the bulk of the payload is not copied here.
    uint8_t head[256];   // within what kx__conn_write2_raw joins with b
    kx_mux_put_header(head, id, type, (uint32_t)(an + bn));
    if (an <= sizeof head - KX_MUX_HEADER) {
        if (an)
            memcpy(head + KX_MUX_HEADER, a, an);
        return kx__conn_write2_raw(m->parent, head, KX_MUX_HEADER + an, b, bn);
    }
    int r = kx__conn_write2_raw(m->parent, head, KX_MUX_HEADER, a, an);
    return r < 0 || !bn ? r : kx__conn_write2_raw(m->parent, b, bn, nullptr, 0);
}

static int send_frame(kx_mux *m, uint32_t id, kx_mux_type type, const uint8_t *p, size_t n)
{
    return send_frame2(m, id, type, p, n, nullptr, 0);
}

static void flush(kx_mux *m)
{
    if (m)
        kx__conn_flush(m->parent);
}

static int send_window(kx_mux *m, uint32_t id, uint32_t inc)
{
    uint8_t v[4];
    kx_put_be32(v, inc);
    return send_frame(m, id, KX_MUX_WINDOW, v, 4);
}

// Returns credit in kCreditStep pieces, not per frame; at_once for bytes
// nobody will read (a closing stream's).
static void credit(kx_mux_stream *s, size_t taken, bool at_once = false)
{
    s->owed += (uint32_t)taken;
    if (!s->mux || !s->owed || (!at_once && s->owed < kCreditStep))
        return;
    if (send_window(s->mux, s->id, s->owed) == 0) {
        s->recv_window += s->owed;
        s->owed = 0;
    }
}

static size_t out_len(const kx_mux_stream *s)
{
    return s->out.len - s->out_off;
}

// Sends what the window allows from p[0..n); returns how much was sent, or
// <0 when the parent refused.
static long send_data(kx_mux_stream *s, const uint8_t *p, size_t n)
{
    size_t sent = 0;
    while (sent < n && s->send_window > 0) {
        size_t k = n - sent;
        if (k > KX_MUX_MAX_DATA)
            k = KX_MUX_MAX_DATA;
        if (k > s->send_window)
            k = s->send_window;
        int r = send_frame(s->mux, s->id, KX_MUX_DATA, p + sent, k);
        if (r < 0)
            return r;
        s->send_window -= (uint32_t)k;
        sent += k;
    }
    return (long)sent;
}

static void finish_close(kx_mux_stream *s)
{
    kx_conn *c = s->conn;
    if (s->mux && !s->fin_sent && send_frame(s->mux, s->id, KX_MUX_FIN, nullptr, 0) == 0)
        s->fin_sent = true;
    flush(s->mux);
    kx__conn_close_handles(c);
}

static void maybe_drain(kx_mux_stream *s)
{
    kx_conn *c = s->conn;
    if ((c->flags & F_HIGH) && !(c->flags & F_CLOSING) && kx__stream_queued(c) < KX_CONN_LOW_WATER) {
        c->flags &= ~F_HIGH;
        if (c->cb.on_drain)
            c->cb.on_drain(c);
    }
}

// Moves `out` onto the wire as far as the window allows.
static void pump(kx_mux_stream *s)
{
    if (!s->mux || out_len(s) == 0)
        return;
    long r = send_data(s, s->out.data + s->out_off, out_len(s));
    if (r < 0) {
        kx__conn_end(s->conn, (int)r);
        kx__conn_close_handles(s->conn);
        return;
    }
    s->out_off += (size_t)r;
    flush(s->mux);   // before the drain check: unsent frames count as queued
    if (out_len(s) == 0) {
        kx_buf_free(&s->out);
        s->out_off = 0;
        if (s->close_pending) {
            finish_close(s);
            return;
        }
    }
    maybe_drain(s);
}

int kx__stream_write2(kx_conn *c, const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    kx_mux_stream *s = stream_of(c);
    if (!s->mux || s->fin_sent || s->mux->closing)
        return -EPIPE;
    const uint8_t *pieces[2] = {a, b};
    size_t lens[2] = {an, bn};
    for (int i = 0; i < 2; i++) {
        const uint8_t *p = pieces[i];
        size_t n = lens[i];
        if (n == 0)
            continue;
        if (out_len(s) == 0) {
            // A header and a small payload go as one frame, not two.
            if (i == 0 && bn && an + bn <= KX_MUX_MAX_DATA && an + bn <= s->send_window) {
                int r = send_frame2(s->mux, s->id, KX_MUX_DATA, a, an, b, bn);
                if (r < 0)
                    return r;
                s->send_window -= (uint32_t)(an + bn);
                break;
            }
            long sent = send_data(s, p, n);
            if (sent < 0)
                return (int)sent;
            p += sent;
            n -= (size_t)sent;
        }
        if (n) {
            // The sent front goes once it is half the buffer: a writer that
            // refills from on_drain never empties it, and copying at most
            // as much as is kept costs O(1) per byte.
            if (s->out_off && s->out_off * 2 >= s->out.len) {
                kx_buf_consume(&s->out, s->out_off);
                s->out_off = 0;
            }
            int r = kx_buf_append(&s->out, p, n, SIZE_MAX);
            if (r < 0)
                return r;
        }
    }
    flush(s->mux);
    if (kx__stream_queued(c) >= KX_CONN_HIGH_WATER)
        c->flags |= F_HIGH;
    return 0;
}

size_t kx__stream_queued(const kx_conn *c)
{
    const kx_mux_stream *s = stream_of(c);
    return out_len(s) + (s->mux ? kx_conn_queued(s->mux->parent) : 0);
}

void kx__stream_pause(kx_conn *c)
{
    c->flags |= F_PAUSED;
}

static void deliver_held(uv_timer_t *t)
{
    kx_conn *c = (kx_conn *)t->data;
    kx_mux_stream *s = stream_of(c);
    while (s->in.len && !(c->flags & (F_PAUSED | F_CLOSING))) {
        size_t k = s->in.len < sizeof g_chunk ? s->in.len : sizeof g_chunk;
        memcpy(g_chunk, s->in.data, k);
        kx_buf_consume(&s->in, k);
        if (c->cb.on_data)
            c->cb.on_data(c, g_chunk, k);
        credit(s, k);
    }
    if (s->in.len == 0)
        kx_buf_free(&s->in);
    flush(s->mux);   // the credit returned
    if (s->in.len == 0 && s->fin_rcvd && !(c->flags & (F_PAUSED | F_CLOSING)))
        kx__conn_end(c, 0);
}

void kx__stream_resume(kx_conn *c)
{
    c->flags &= ~F_PAUSED;
    // From the loop, not from inside the caller's stack (as for TLS).
    uv_timer_start(&c->resume_timer, deliver_held, 0, 0);
}

void kx__stream_close(kx_conn *c)
{
    kx_mux_stream *s = stream_of(c);
    c->flags |= F_CLOSING;
    uv_timer_stop(&c->resume_timer);
    // What the stream holds, and whatever comes until it is gone, is never
    // read: the peer gets that window back at once. Else a peer still
    // sending (it closes on our FIN, with its own bytes queued) waited for
    // credit that never came, 10 s until the reset below.
    if (s->mux && !s->mux->closing) {
        size_t held = s->in.len;
        kx_buf_free(&s->in);
        credit(s, held, true);
    }
    if (s->mux && out_len(s) && !s->mux->closing) {
        s->close_pending = true;
        flush(s->mux);
        uv_timer_start(&c->close_timer, [](uv_timer_t *t) {
            kx__stream_abort((kx_conn *)t->data);
        }, 10000, 0);
        return;
    }
    finish_close(s);
}

void kx__stream_abort(kx_conn *c)
{
    c->flags |= F_CLOSING;
    kx__conn_close_handles(c);   // detach sends the RST
}

void kx__stream_detach(kx_conn *c)
{
    kx_mux_stream *s = stream_of(c);
    kx_mux *m = s->mux;
    if (!m)
        return;
    // Left without a FIN (kx_conn_abort, an error): the peer must not wait
    // for more. After a FIN the peer still gets what it holds; its data that
    // comes later is answered with RST (on_data).
    if (!s->fin_sent && send_frame(m, s->id, KX_MUX_RST, nullptr, 0) == 0)
        flush(m);
    unlink_stream(m, s);
    s->mux = nullptr;
    kx_buf_free(&s->out);
    kx_buf_free(&s->in);
    s->out_off = 0;
}

const kx_conn *kx__stream_parent(const kx_conn *c)
{
    const kx_mux_stream *s = stream_of(c);
    return s->mux ? s->mux->parent : nullptr;
}

static kx_mux_stream *new_stream(kx_mux *m, uint32_t id, const kx_conn_callbacks *cb, void *user)
{
    if (m->count >= m->nbuckets && grow(m) < 0)
        return nullptr;
    kx_conn *c = kx__conn_new_stream(m->parent->tcp.loop, sizeof(kx_mux_stream), cb, user);
    if (!c)
        return nullptr;
    kx_mux_stream *s = (kx_mux_stream *)((char *)c + KX__CONN_STREAM_SIZE);
    c->stream = s;
    s->mux = m;
    s->conn = c;
    s->id = id;
    s->send_window = KX_MUX_STREAM_WINDOW;
    s->recv_window = KX_MUX_STREAM_WINDOW;
    kx_mux_stream **b = &m->buckets[id & (m->nbuckets - 1)];
    s->hnext = *b;
    *b = s;
    m->count++;
    return s;
}

// ---- the parent connection -------------------------------------------------

static void end_all(kx_mux *m, int status)
{
    m->closing = true;
    if (!m->status)
        m->status = status;
    for (uint32_t i = 0; i < m->nbuckets; i++) {
        while (m->buckets[i]) {
            kx_mux_stream *s = m->buckets[i];
            kx_conn *c = s->conn;
            kx__conn_end(c, status < 0 ? status : -ECONNRESET);
            if (s->mux)   // on_end did not close it
                kx__conn_close_handles(c);
        }
    }
}

static int on_ctrl(void *user, kx_mux_type type, uint32_t id, uint32_t value)
{
    kx_mux *m = (kx_mux *)user;
    if (m->closing)
        return 0;
    if (type == KX_MUX_OPEN) {
        if (m->opener || id <= m->last_id)
            return -EPROTO;
        m->last_id = id;
        kx_mux_stream *s = m->count < KX_MUX_MAX_STREAMS ? new_stream(m, id, &kx_conn_no_callbacks, nullptr)
                                                          : nullptr;
        if (!s)
            return send_frame(m, id, KX_MUX_RST, nullptr, 0) < 0 ? -EPIPE : 0;
        if (m->cb.on_stream)
            m->cb.on_stream(m, s->conn);
        else
            kx__stream_abort(s->conn);
        return 0;
    }
    kx_mux_stream *s = find(m, id);
    if (!s)
        return 0;   // a stream we closed or reset: its stragglers are dropped
    kx_conn *c = s->conn;
    switch (type) {
    case KX_MUX_FIN:
        if (s->fin_rcvd)
            return -EPROTO;
        s->fin_rcvd = true;
        if (s->in.len == 0 && !(c->flags & (F_PAUSED | F_CLOSING)))
            kx__conn_end(c, 0);
        return 0;
    case KX_MUX_RST:
        s->fin_sent = s->fin_rcvd = true;   // nothing more to tell the peer
        kx__conn_end(c, -ECONNRESET);
        kx__conn_close_handles(c);
        return 0;
    case KX_MUX_WINDOW:
        if ((uint64_t)s->send_window + value > kMaxIncrement)
            return -EPROTO;
        s->send_window += value;
        pump(s);
        return 0;
    default:
        return -EPROTO;
    }
}

static int on_data(void *user, uint32_t id, const uint8_t *p, size_t n, bool end)
{
    kx_mux *m = (kx_mux *)user;
    if (m->closing)
        return 0;
    kx_mux_stream *s = find(m, id);
    if (!s) {
        if (id > m->last_id)
            return -EPROTO;   // never opened
        // Data for a stream this side closed: reset it, once per frame.
        if (end)
            return send_frame(m, id, KX_MUX_RST, nullptr, 0) < 0 ? -EPIPE : 0;
        return 0;
    }
    if (n > s->recv_window || s->fin_rcvd)
        return -EPROTO;
    s->recv_window -= (uint32_t)n;
    kx_conn *c = s->conn;
    if (c->flags & F_CLOSING) {
        credit(s, n, true);   // nobody reads any more: keep the sender moving
        return 0;
    }
    if ((c->flags & F_PAUSED) || s->in.len) {
        int r = kx_buf_append(&s->in, p, n, KX_MUX_STREAM_WINDOW);
        return r < 0 ? r : 0;
    }
    if (c->cb.on_data)
        c->cb.on_data(c, p, n);
    credit(s, n);
    return 0;
}

static const kx_mux_parse_cb parse_cb = {on_data, on_ctrl};

static void parent_data(kx_conn *pc, const uint8_t *p, size_t n)
{
    kx_mux *m = (kx_mux *)kx_conn_user(pc);
    int r = kx_mux_parse(&m->parser, p, n, &parse_cb, m);
    if (r < 0 && !m->closing) {
        end_all(m, r);
        kx_conn_abort(pc);
        return;
    }
    flush(m);   // WINDOW credit, RSTs and data released by WINDOW, in one send
}

static void parent_end(kx_conn *pc, int status)
{
    kx_mux *m = (kx_mux *)kx_conn_user(pc);
    end_all(m, status < 0 ? status : -ECONNRESET);
    kx_conn_close(pc);
}

static void parent_drain(kx_conn *pc)
{
    kx_mux *m = (kx_mux *)kx_conn_user(pc);
    for (uint32_t i = 0; i < m->nbuckets && !m->closing; i++)
        for (kx_mux_stream *s = m->buckets[i], *next; s; s = next) {
            next = s->hnext;
            maybe_drain(s);
        }
}

static void parent_close(kx_conn *pc)
{
    kx_mux *m = (kx_mux *)kx_conn_user(pc);
    end_all(m, -ECONNRESET);
    if (m->cb.on_close)
        m->cb.on_close(m, m->status);
    free(m->buckets);
    free(m);
}

static const kx_conn_callbacks parent_cb = {nullptr, parent_data, parent_end, parent_drain,
                                            parent_close};

kx_mux *kx_mux_start(kx_conn *parent, bool opener, const kx_mux_callbacks *cb, void *user,
                     const uint8_t *early, size_t early_len)
{
    kx_mux *m = (kx_mux *)calloc(1, sizeof *m);
    if (!m)
        return nullptr;
    m->nbuckets = 16;
    m->buckets = (kx_mux_stream **)calloc(m->nbuckets, sizeof *m->buckets);
    if (!m->buckets) {
        free(m);
        return nullptr;
    }
    m->parent = parent;
    m->cb = *cb;
    m->user = user;
    m->opener = opener;
    kx_mux_parser_init(&m->parser);
    kx_conn_set_user(parent, m, &parent_cb);
    if (early_len)
        parent_data(parent, early, early_len);
    return m;
}

kx_conn *kx_mux_open(kx_mux *m, const kx_conn_callbacks *cb, void *user)
{
    if (!m->opener || m->closing || kx_conn_closing(m->parent) ||
        m->count >= KX_MUX_MAX_STREAMS || m->last_id >= kMaxIncrement)
        return nullptr;
    uint32_t id = m->last_id + 1;
    kx_mux_stream *s = new_stream(m, id, cb, user);
    if (!s)
        return nullptr;
    m->last_id = id;
    // Not flushed: the stream's first bytes follow at once and take it along.
    if (send_frame(m, id, KX_MUX_OPEN, nullptr, 0) < 0) {
        s->fin_sent = true;
        kx_conn_set_user(s->conn, nullptr, &kx_conn_no_callbacks);   // the caller never had it
        kx__stream_abort(s->conn);
        return nullptr;
    }
    return s->conn;
}

void kx_mux_close(kx_mux *m)
{
    if (kx_conn_closing(m->parent))
        return;
    end_all(m, -ECONNRESET);
    kx_conn_close(m->parent);
}

bool kx_mux_closing(const kx_mux *m)
{
    return m->closing || kx_conn_closing(m->parent);
}

size_t kx_mux_streams(const kx_mux *m)
{
    return m->count;
}

void *kx_mux_user(const kx_mux *m)
{
    return m->user;
}
