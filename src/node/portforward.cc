// Port-forward on the node: /portForward/{ns}/{pod} (protocol.md §5).
//
// One pf_session per upgraded connection. The client speaks SPDY/3.1 with
// the portforward.k8s.io stream protocol, either directly (POST with
// Upgrade: SPDY/3.1) or tunnelled in WebSocket binary messages (kubectl
// >= 1.31: GET with Sec-WebSocket-Protocol SPDY/3.1+portforward.k8s.io),
// where the messages are just a byte stream carrying SPDY frames in both
// directions. The SPDY engine (kubexec/spdy.h, server role) is the same in
// both cases; only the bytes in and out differ.
//
// Each forwarded TCP connection is a pf_pair: an `error` and a `data` stream
// with the same requestid. Once both exist we dial 127.0.0.1:port (then ::1)
// inside the pod's network namespace and relay data <-> socket. The socket is
// created while the daemon's thread is briefly inside the pod's netns (setns
// there and back), then handed to libuv, so dialing never blocks the loop.
//
// Ends of a pair:
//   pod EOF        -> FIN data, FIN error; keep taking client bytes for at most
//                     kLingerMs (or until the client FINs/RSTs data), then close.
//   client FIN     -> shutdown(SHUT_WR) on the pod socket; wait for pod EOF.
//   client RST     -> close the socket, FIN error.
//   dial failure   -> the kubelet-style message on the error stream + FIN,
//                     RST data. (kubectl >= 1.31 ends the whole session on
//                     any error text; 1.20-1.30 log it and go on.)
//   no partner in kPairTimeoutMs -> `timed out waiting for streams` likewise.
//
// Back-pressure: pod sockets stop being read while the client connection's
// write queue is above KX_CONN_HIGH_WATER (resumed from on_drain); the client
// connection stops being read while any pod socket has more than
// kTcpHighWater bytes queued (SPDY has no usable flow control, so one slow
// pod stalls the session, as with spdystream).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kubexec/conn.h"
#include "kubexec/heaptrim.h"
#include "kubexec/http1.h"
#include "kubexec/spdy.h"
#include "kubexec/util.h"
#include "kubexec/uvwrite.h"
#include "kubexec/ws.h"
#include "node.h"

static const char kProto[] = "portforward.k8s.io";
static const char kTunnelProto[] = "SPDY/3.1+portforward.k8s.io";
static const size_t kMaxPairs = KX_SPDY_MAX_STREAMS / 2;   // two streams per forwarded connection
static const uint64_t kPairTimeoutMs = 30000;              // upstream stream creation timeout
static const uint64_t kLingerMs = 1000;                    // after pod EOF (containerd gives 1 s)
static const uint64_t kIdleMs = 4ull * 3600 * 1000;        // kubelet streaming idle timeout
static const uint64_t kTickMs = 1000;
static const size_t kTcpHighWater = 1024 * 1024;
static const size_t kTcpLowWater = 256 * 1024;
static const size_t kMaxPending = 4 * 1024 * 1024;          // client bytes before the dial completes
static const size_t kMaxReqId = 64;

enum pair_state {
    P_WAIT,        // streams missing
    P_DIALING,     // connect in flight
    P_OPEN,        // relaying
    P_LINGER,      // pod side done (data+error FIN'd), still taking client bytes
    P_CLOSED,      // unlinked, socket closing
};

struct pf_session;

struct pf_pair {
    pf_session *s;
    pf_pair *next, **pprev;
    char reqid[kMaxReqId + 1];
    uint16_t port;
    uint32_t err_id, data_id;          // 0 = not (yet) there
    pair_state state;
    uint64_t deadline_ms;              // P_WAIT: pairing; P_LINGER: close
    bool err_done;                     // we FIN'd or it was reset
    bool data_out_done;                // we FIN'd / reset the data stream, or it is gone
    bool data_in_fin;                  // the client FIN'd data
    bool shut_sent;                    // uv_shutdown issued
    bool tcp_init, tcp_reading, over_high;
    int family;                        // AF_INET, then AF_INET6
    char err4[160];                    // the IPv4 dial error, for the final message
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_shutdown_t sreq;
    kx_buf pending;                    // client bytes before the socket is connected
    size_t tcp_queued;                 // bytes in the socket's write queue
};

struct pf_session {
    kx_node *node;
    kx_conn *conn;                     // null once closed
    kx_spdy_session *spdy;
    kx_ws_session *ws;                 // WebSocket tunnel; null for plain SPDY
    char ns[254], pod[254];
    pf_pair *pairs;
    size_t npairs;                     // linked (not P_CLOSED)
    size_t nalive;                     // allocated, incl. closing ones
    size_t nfull;                      // pairs over kTcpHighWater
    uint64_t last_input_ms;
    uv_timer_t tick;
    bool tick_closed, closing, out_paused, in_paused;
};

static uint8_t g_readbuf[KX_SPDY_MAX_DATA_CHUNK];

static void pair_close(pf_pair *p);
static void session_close(pf_session *s);
static void session_maybe_free(pf_session *s);

static uint64_t now_ms(pf_session *s)
{
    return uv_now(s->node->loop);
}

// --- session input back-pressure -------------------------------------------

static void session_update_input(pf_session *s)
{
    if (!s->conn)
        return;
    bool want = s->nfull > 0;
    if (want && !s->in_paused) {
        s->in_paused = true;
        kx_conn_pause(s->conn);
    } else if (!want && s->in_paused) {
        s->in_paused = false;
        kx_conn_resume(s->conn);
    }
}

static void pair_set_queued(pf_pair *p, size_t q)
{
    p->tcp_queued = q;
    if (!p->over_high && q > kTcpHighWater) {
        p->over_high = true;
        p->s->nfull++;
        session_update_input(p->s);
    } else if (p->over_high && q < kTcpLowWater) {
        p->over_high = false;
        p->s->nfull--;
        session_update_input(p->s);
    }
}

// --- stream helpers ---------------------------------------------------------

static void pair_err_text(pf_pair *p, const char *msg)
{
    if (!p->err_id || p->err_done || !p->s->spdy)
        return;
    kx_spdy_data(p->s->spdy, p->err_id, (const uint8_t *)msg, strlen(msg), false);
}

static void pair_err_fin(pf_pair *p)
{
    if (!p->err_id || p->err_done)
        return;
    p->err_done = true;
    kx_spdy_data(p->s->spdy, p->err_id, nullptr, 0, true);
}

static void pair_data_fin(pf_pair *p)
{
    if (!p->data_id || p->data_out_done)
        return;
    p->data_out_done = true;
    kx_spdy_data(p->s->spdy, p->data_id, nullptr, 0, true);
}

static void pair_data_rst(pf_pair *p)
{
    if (!p->data_id)
        return;
    // A stream we FIN'd but the client did not is still open on its side.
    if (!p->data_out_done || !p->data_in_fin)
        kx_spdy_rst(p->s->spdy, p->data_id, KX_SPDY_CANCEL);
    p->data_out_done = true;
}

// Failure: message on the error stream, FIN it, reset data, drop the pair.
static void pair_fail(pf_pair *p, const char *msg)
{
    fprintf(stderr, "kubexec-node: port-forward %s/%s: %s\n", p->s->ns, p->s->pod, msg);
    pair_err_text(p, msg);
    pair_err_fin(p);
    pair_data_rst(p);
    pair_close(p);
}

// --- pod socket -------------------------------------------------------------

static void tcp_alloc(uv_handle_t *, size_t, uv_buf_t *b)
{
    b->base = (char *)g_readbuf;
    b->len = sizeof g_readbuf;
}

static void pair_enter_linger(pf_pair *p)
{
    pair_data_fin(p);
    pair_err_fin(p);
    if (p->data_in_fin || !p->data_id) {
        pair_close(p);
        return;
    }
    p->state = P_LINGER;
    p->deadline_ms = now_ms(p->s) + kLingerMs;
}

static void tcp_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    pf_pair *p = (pf_pair *)st->data;
    pf_session *s = p->s;
    if (p->state != P_OPEN)
        return;
    if (n == UV_EOF) {
        uv_read_stop(st);
        p->tcp_reading = false;
        pair_enter_linger(p);
        return;
    }
    if (n < 0) {
        // Reset by the pod side: nothing more will come; the client's copy
        // sees the reset stream and closes its end.
        pair_err_fin(p);
        pair_data_rst(p);
        pair_close(p);
        return;
    }
    if (n == 0)
        return;
    if (kx_spdy_data(s->spdy, p->data_id, (const uint8_t *)b->base, (size_t)n, false) < 0) {
        pair_err_fin(p);
        pair_close(p);
        return;
    }
    if (s->conn && kx_conn_queued(s->conn) > KX_CONN_HIGH_WATER && !s->out_paused) {
        s->out_paused = true;
        for (pf_pair *q = s->pairs; q; q = q->next)
            if (q->tcp_reading) {
                uv_read_stop((uv_stream_t *)&q->tcp);
                q->tcp_reading = false;
            }
    }
}

static void pair_start_reading(pf_pair *p)
{
    if (p->tcp_reading || p->s->out_paused || p->state != P_OPEN)
        return;
    if (uv_read_start((uv_stream_t *)&p->tcp, tcp_alloc, tcp_read) == 0)
        p->tcp_reading = true;
}

static void shutdown_done(uv_shutdown_t *, int) {}

static void pair_maybe_shutdown(pf_pair *p)
{
    if (!p->data_in_fin || p->shut_sent || p->state != P_OPEN)
        return;
    p->shut_sent = true;
    p->sreq.data = p;
    // Queued behind the pending writes; the pod then reads EOF.
    if (uv_shutdown(&p->sreq, (uv_stream_t *)&p->tcp, shutdown_done) < 0)
        p->shut_sent = true;
}

static void tcp_written(void *user, size_t len, int status)
{
    pf_pair *p = (pf_pair *)user;
    pair_set_queued(p, p->tcp_queued - len);
    if (status < 0 && status != UV_ECANCELED && p->state == P_OPEN) {
        // The pod closed its socket under us (EPIPE/ECONNRESET).
        pair_err_fin(p);
        pair_data_rst(p);
        pair_close(p);
    }
}

static int pair_write_tcp(pf_pair *p, const uint8_t *d, size_t n)
{
    long queued = kx_uv_write_copy((uv_stream_t *)&p->tcp, d, n, tcp_written, p);
    if (queued < 0)
        return (int)queued;
    if (queued > 0)
        pair_set_queued(p, p->tcp_queued + (size_t)queued);
    return 0;
}

static void pair_dial(pf_pair *p);

static void fmt_dial_err(char *out, size_t cap, int family, uint16_t port, int err)
{
    if (family == AF_INET)
        snprintf(out, cap, "dial tcp4 127.0.0.1:%u: connect: %s", port, uv_strerror(err));
    else
        snprintf(out, cap, "dial tcp6 [::1]:%u: connect: %s", port, uv_strerror(err));
}

static void dial_failed(pf_pair *p, int err);

// The close callback of a socket whose IPv4 dial failed: try IPv6.
static void redial_closed(uv_handle_t *h)
{
    pf_pair *p = (pf_pair *)h->data;
    p->tcp_init = false;
    if (p->state != P_DIALING || p->s->closing) {
        // Closed meanwhile (client reset, session end): finish the free.
        p->state = P_CLOSED;
        pair_close(p);
        return;
    }
    pair_dial(p);
}

static void tcp_connected(uv_connect_t *req, int status)
{
    pf_pair *p = (pf_pair *)req->data;
    if (p->state != P_DIALING)
        return;   // cancelled by pair_close; the close callback frees
    if (status < 0) {
        dial_failed(p, status);
        return;
    }
    p->state = P_OPEN;
    if (p->pending.len) {
        int r = pair_write_tcp(p, p->pending.data, p->pending.len);
        pair_set_queued(p, p->tcp_queued - p->pending.len);   // it moved, not grew
        kx_buf_free(&p->pending);
        if (r < 0) {
            pair_err_fin(p);
            pair_data_rst(p);
            pair_close(p);
            return;
        }
    }
    pair_maybe_shutdown(p);
    pair_start_reading(p);
}

static void dial_failed(pf_pair *p, int err)
{
    pf_session *s = p->s;
    if (p->family == AF_INET) {
        fmt_dial_err(p->err4, sizeof p->err4, AF_INET, p->port, err);
        p->family = AF_INET6;
        if (p->tcp_init) {
            uv_close((uv_handle_t *)&p->tcp, redial_closed);
            return;
        }
        pair_dial(p);
        return;
    }
    char e6[160], uid[64], pid_err[64], msg[1400];
    fmt_dial_err(e6, sizeof e6, AF_INET6, p->port, err);
    pid_t pid = 0;
    bool hostnet = false;
    kx_podmgr_pod_net(s->node->pm, s->ns, s->pod, &pid, &hostnet, uid, sizeof uid, pid_err,
                      sizeof pid_err);
    snprintf(msg, sizeof msg,
             "error forwarding port %u to pod %s, uid %s: failed to connect to localhost:%u "
             "inside namespace \"%s/%s\", IPv4: %s IPv6 %s ",
             p->port, s->pod, uid, p->port, s->ns, s->pod, p->err4, e6);
    pair_fail(p, msg);
}

// Opens a TCP socket of `family` inside the network namespace of `pid`
// (0 = ours). Returns the fd or a negative errno.
static int socket_in_netns(pid_t pid, int family)
{
    if (pid <= 0) {
        int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        return fd < 0 ? -errno : fd;
    }
    // Our own namespace, to come back to (opened per dial: no fd is kept).
    int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self < 0)
        return -errno;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
    int nsfd = open(path, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0) {
        int e = errno;
        if (nsfd >= 0)
            close(nsfd);
        close(self);
        return -e;
    }
    close(nsfd);
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int e = errno;
    int back = setns(self, CLONE_NEWNET) < 0 ? errno : 0;
    close(self);
    if (back) {
        // Every later socket of this daemon would land in the pod: unusable.
        fprintf(stderr, "kubexec-node: fatal: cannot return to the node's network namespace: %s\n",
                strerror(back));
        abort();
    }
    return fd < 0 ? -e : fd;
}

static void pair_dial(pf_pair *p)
{
    pf_session *s = p->s;
    char err[256], uid[64];
    pid_t pid = 0;
    bool hostnet = false;
    int r = kx_podmgr_pod_net(s->node->pm, s->ns, s->pod, &pid, &hostnet, uid, sizeof uid, err,
                              sizeof err);
    if (r < 0) {
        char msg[800];
        snprintf(msg, sizeof msg, "error forwarding port %u to pod %s, uid %s: %s", p->port,
                 s->pod, uid, err);
        pair_fail(p, msg);
        return;
    }
    int fd = socket_in_netns(hostnet ? 0 : pid, p->family);
    if (fd < 0) {
        dial_failed(p, uv_translate_sys_error(-fd));
        return;
    }
    p->state = P_DIALING;
    uv_tcp_init(s->node->loop, &p->tcp);
    p->tcp.data = p;
    p->tcp_init = true;
    if ((r = uv_tcp_open(&p->tcp, fd)) < 0) {
        close(fd);
        dial_failed(p, r);
        return;
    }
    struct sockaddr_storage ss = {};
    if (p->family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(p->port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(p->port);
        a->sin6_addr = in6addr_loopback;
    }
    p->creq.data = p;
    if ((r = uv_tcp_connect(&p->creq, &p->tcp, (const struct sockaddr *)&ss, tcp_connected)) < 0)
        dial_failed(p, r);
}

// --- pairs -------------------------------------------------------------------

static void pair_free(pf_pair *p)
{
    pf_session *s = p->s;
    if (p->over_high) {
        p->over_high = false;
        s->nfull--;
        session_update_input(s);
    }
    kx_buf_free(&p->pending);
    free(p);
    s->nalive--;
    session_maybe_free(s);
}

static void pair_tcp_closed(uv_handle_t *h)
{
    pf_pair *p = (pf_pair *)h->data;
    p->tcp_init = false;
    pair_free(p);
}

// Unlinks the pair (its streams are then unknown to the session) and closes
// the socket; freed once libuv is done with it. Safe to call twice.
static void pair_close(pf_pair *p)
{
    pf_session *s = p->s;
    if (p->pprev) {
        *p->pprev = p->next;
        if (p->next)
            p->next->pprev = p->pprev;
        p->pprev = nullptr;
        p->next = nullptr;
        s->npairs--;
    }
    p->state = P_CLOSED;
    if (p->tcp_init) {
        if (!uv_is_closing((uv_handle_t *)&p->tcp))
            uv_close((uv_handle_t *)&p->tcp, pair_tcp_closed);
        return;   // pair_tcp_closed or redial_closed finishes
    }
    pair_free(p);
}

static pf_pair *pair_by_stream(pf_session *s, uint32_t id)
{
    for (pf_pair *p = s->pairs; p; p = p->next)
        if (p->err_id == id || p->data_id == id)
            return p;
    return nullptr;
}

static pf_pair *pair_by_reqid(pf_session *s, const char *reqid)
{
    for (pf_pair *p = s->pairs; p; p = p->next)
        if (strcmp(p->reqid, reqid) == 0)
            return p;
    return nullptr;
}

// --- SPDY callbacks -----------------------------------------------------------

// Plain SPDY: frames straight to the connection. Tunnel: one binary
// WebSocket message per SPDY frame (kubectl reads the messages as one byte
// stream, so any split would do).
static int spdy_send(void *user, const uint8_t *hdr, size_t hl, const uint8_t *payload, size_t pl)
{
    pf_session *s = (pf_session *)user;
    if (!s->conn)
        return -EPIPE;
    if (s->ws)
        return kx_ws_send(s->ws, KX_WS_BINARY, hdr, hl, payload, pl);
    return kx_conn_write2(s->conn, hdr, hl, payload, pl);
}

// Copies a header value (NUL-free, < cap) or returns false.
static bool nv_get(const kx_spdy_nv *nv, size_t n, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < n; i++) {
        if (nv[i].name_len != nl || memcmp(nv[i].name, name, nl) != 0)
            continue;
        if (nv[i].value_len >= cap || memchr(nv[i].value, 0, nv[i].value_len))
            return false;
        memcpy(out, nv[i].value, nv[i].value_len);
        out[nv[i].value_len] = 0;
        return true;
    }
    return false;
}

static bool parse_port(const char *v, uint16_t *out)
{
    if (!*v || strlen(v) > 5)
        return false;
    unsigned long x = 0;
    for (const char *c = v; *c; c++) {
        if (*c < '0' || *c > '9')
            return false;
        x = x * 10 + (unsigned)(*c - '0');
    }
    if (x == 0 || x > 65535)
        return false;
    *out = (uint16_t)x;
    return true;
}

static void on_stream(void *user, uint32_t id, const kx_spdy_nv *nv, size_t n, bool)
{
    pf_session *s = (pf_session *)user;
    if (s->closing)
        return;
    char type[16], portv[16], reqid[kMaxReqId + 1];
    uint16_t port = 0;
    if (!nv_get(nv, n, "streamtype", type, sizeof type) ||
        (strcmp(type, "error") != 0 && strcmp(type, "data") != 0) ||
        !nv_get(nv, n, "port", portv, sizeof portv) || !parse_port(portv, &port)) {
        kx_spdy_rst(s->spdy, id, KX_SPDY_CANCEL);
        return;
    }
    bool is_err = strcmp(type, "error") == 0;
    if (!nv_get(nv, n, "requestid", reqid, sizeof reqid)) {
        // Old clients: the error stream's id names the pair; data is id+2.
        snprintf(reqid, sizeof reqid, "%u", is_err ? id : id - 2);
    }
    pf_pair *p = pair_by_reqid(s, reqid);
    if (!p) {
        if (s->npairs >= kMaxPairs) {
            kx_spdy_rst(s->spdy, id, KX_SPDY_REFUSED_STREAM);
            return;
        }
        p = (pf_pair *)calloc(1, sizeof *p);
        if (!p) {
            kx_spdy_rst(s->spdy, id, KX_SPDY_INTERNAL_ERROR);
            return;
        }
        p->s = s;
        memcpy(p->reqid, reqid, strlen(reqid) + 1);
        p->state = P_WAIT;
        p->family = AF_INET;
        p->deadline_ms = now_ms(s) + kPairTimeoutMs;
        p->next = s->pairs;
        if (s->pairs)
            s->pairs->pprev = &p->next;
        s->pairs = p;
        p->pprev = &s->pairs;
        s->npairs++;
        s->nalive++;
    }
    if ((is_err && p->err_id) || (!is_err && p->data_id)) {
        char msg[160];
        snprintf(msg, sizeof msg, "error processing stream for request %s: %s stream already assigned",
                 reqid, is_err ? "error" : "data");
        kx_spdy_rst(s->spdy, id, KX_SPDY_CANCEL);
        pair_err_text(p, msg);
        return;
    }
    if (kx_spdy_reply(s->spdy, id, nullptr, 0, false) < 0)
        return;
    if (is_err) {
        p->err_id = id;
    } else {
        p->data_id = id;
        p->port = port;   // the data stream's port is the one dialed
    }
    if (p->err_id && p->data_id && p->state == P_WAIT) {
        p->deadline_ms = 0;
        pair_dial(p);
    }
}

static void on_data(void *user, uint32_t id, const uint8_t *d, size_t n)
{
    pf_session *s = (pf_session *)user;
    pf_pair *p = pair_by_stream(s, id);
    if (!p || id != p->data_id || n == 0 || p->data_in_fin)
        return;   // the client never writes on the error stream
    switch (p->state) {
    case P_WAIT:
    case P_DIALING:
        if (kx_buf_append(&p->pending, d, n, kMaxPending) < 0) {
            pair_fail(p, "too much data before the connection to the pod was established");
            return;
        }
        pair_set_queued(p, p->tcp_queued + n);
        break;
    case P_OPEN:
    case P_LINGER:
        if (p->shut_sent)
            break;
        if (pair_write_tcp(p, d, n) < 0) {
            pair_err_fin(p);
            pair_data_rst(p);
            pair_close(p);
        }
        break;
    case P_CLOSED:
        break;
    }
}

static void on_fin(void *user, uint32_t id)
{
    pf_session *s = (pf_session *)user;
    pf_pair *p = pair_by_stream(s, id);
    if (!p || id != p->data_id)
        return;   // the error stream's FIN comes right away: nothing to do
    p->data_in_fin = true;
    if (p->state == P_LINGER) {
        pair_close(p);
        return;
    }
    pair_maybe_shutdown(p);
}

static void on_rst(void *user, uint32_t id, uint32_t)
{
    pf_session *s = (pf_session *)user;
    pf_pair *p = pair_by_stream(s, id);
    if (!p)
        return;
    if (id == p->err_id) {
        p->err_done = true;   // forgotten by the engine
        return;
    }
    p->data_out_done = true;
    p->data_in_fin = true;
    pair_err_fin(p);
    pair_close(p);
}

static void on_goaway(void *user, uint32_t, uint32_t)
{
    session_close((pf_session *)user);
}

static const kx_spdy_callbacks spdy_cb = {spdy_send, on_stream, nullptr, on_data,
                                          on_fin, on_rst, on_goaway};

// --- WebSocket tunnel -------------------------------------------------------------

static int ws_send(void *user, const uint8_t *hdr, size_t hl, const uint8_t *payload, size_t pl)
{
    pf_session *s = (pf_session *)user;
    if (!s->conn)
        return -EPIPE;
    return kx_conn_write2(s->conn, hdr, hl, payload, pl);
}

// Binary payloads are the SPDY byte stream, split anywhere (empty messages
// included); a text message is not part of the tunnel protocol.
static void ws_message(void *user, int opcode, const uint8_t *p, size_t n)
{
    pf_session *s = (pf_session *)user;
    if (s->closing)
        return;
    if (opcode != KX_WS_BINARY) {
        kx_ws_close(s->ws, KX_WS_POLICY, "text messages are not supported");
        session_close(s);
        return;
    }
    if (n && kx_spdy_recv(s->spdy, p, n) < 0)
        session_close(s);
}

static void ws_closed(void *user, uint16_t)
{
    session_close((pf_session *)user);
}

static const kx_ws_callbacks ws_cb = {ws_send, ws_message, ws_closed};

// --- connection ---------------------------------------------------------------

static void c_data(kx_conn *c, const uint8_t *p, size_t n)
{
    pf_session *s = (pf_session *)kx_conn_user(c);
    if (s->closing)
        return;
    s->last_input_ms = now_ms(s);
    int r = s->ws ? kx_ws_recv(s->ws, p, n) : kx_spdy_recv(s->spdy, p, n);
    if (r < 0)
        session_close(s);
}

static void c_end(kx_conn *c, int)
{
    session_close((pf_session *)kx_conn_user(c));
}

static void c_drain(kx_conn *c)
{
    pf_session *s = (pf_session *)kx_conn_user(c);
    if (!s->out_paused || s->closing)
        return;
    s->out_paused = false;
    for (pf_pair *p = s->pairs; p; p = p->next)
        pair_start_reading(p);
}

static void c_close(kx_conn *c)
{
    pf_session *s = (pf_session *)kx_conn_user(c);
    s->conn = nullptr;
    session_close(s);
    session_maybe_free(s);
}

static const kx_conn_callbacks conn_cb = {nullptr, c_data, c_end, c_drain, c_close};

static void on_tick(uv_timer_t *t)
{
    pf_session *s = (pf_session *)t->data;
    if (s->closing)
        return;
    uint64_t now = now_ms(s);
    if (s->node->shutting_down || now - s->last_input_ms > kIdleMs) {
        session_close(s);
        return;
    }
    pf_pair *next;
    for (pf_pair *p = s->pairs; p; p = next) {
        next = p->next;
        if (!p->deadline_ms || now < p->deadline_ms)
            continue;
        if (p->state == P_WAIT) {
            char msg[200];
            snprintf(msg, sizeof msg, "(conn=%p, request=%s) timed out waiting for streams",
                     (void *)s, p->reqid);
            pair_fail(p, msg);
        } else if (p->state == P_LINGER) {
            pair_data_rst(p);
            pair_close(p);
        }
    }
}

static void tick_closed(uv_handle_t *h)
{
    pf_session *s = (pf_session *)h->data;
    s->tick_closed = true;
    session_maybe_free(s);
}

static void session_close(pf_session *s)
{
    if (s->closing)
        return;
    s->closing = true;
    while (s->pairs)
        pair_close(s->pairs);
    uv_close((uv_handle_t *)&s->tick, tick_closed);
    if (s->ws && s->conn)
        kx_ws_close(s->ws, KX_WS_NORMAL, nullptr);   // kubectl reads 1000 as EOF
    if (s->conn)
        kx_conn_close(s->conn);
}

static void session_maybe_free(pf_session *s)
{
    if (s->conn || !s->tick_closed || s->nalive > 0)
        return;
    uv_loop_t *loop = s->node->loop;
    kx_spdy_session_free(s->spdy);
    kx_ws_free(s->ws);
    free(s);
    kx_heaptrim_soon(loop);   // kubexec/heaptrim.h
}

// --- upgrade ------------------------------------------------------------------

// The WebSocket tunnel's handshake (protocol.md §5.2). Returns 0 with
// accept filled, or answers non-101 (kubectl then retries with SPDY).
static int check_tunnel(kx_httpd_req *req, char accept[KX_WS_ACCEPT_LEN + 1])
{
    const kx_http_head *h = req->head;
    int r = kx_ws_handshake_check(h, accept);
    if (r == -EOPNOTSUPP) {
        kx_httpd_respond_text(req, 405, "method not allowed");
        return -1;
    }
    if (r == -EPROTONOSUPPORT) {
        kx_http_header hd[2] = {{"Content-Type", "text/plain; charset=utf-8"},
                                {"Sec-WebSocket-Version", "13"}};
        static const char msg[] = "unable to upgrade: unsupported Sec-WebSocket-Version";
        kx_httpd_respond_hdrs(req, 400, hd, 2, msg, sizeof msg - 1, false);
        return -1;
    }
    if (r < 0) {
        kx_httpd_respond_text(req, 400, "unable to upgrade: invalid WebSocket handshake");
        return -1;
    }
    const char *offers[16];
    size_t n = kx_http_get_all(h, "Sec-WebSocket-Protocol", offers, 16);
    if (n > 16)
        n = 16;
    const char *const supported[] = {kTunnelProto};
    if (kx_ws_choose_protocol(offers, n, supported, 1) != 0) {
        // The legacy channel protocol with ?ports= is not served (kubectl
        // never uses it).
        kx_httpd_respond_text(req, 400, "unable to upgrade: no tunneling spdy protocols provided");
        return -1;
    }
    return 0;
}

void kx_node_portforward(kx_node *n, kx_httpd_req *req, const char *ns, const char *pod)
{
    const kx_http_head *h = req->head;
    if (!h->upgrade || !kx_http_has_token(h, "Connection", "upgrade")) {
        kx_httpd_respond_text(req, 400, "unable to upgrade: missing upgrade headers in request");
        return;
    }
    const char *up = kx_http_get(h, "Upgrade");
    bool tunnel = up && strcasecmp(up, "websocket") == 0;
    char accept[KX_WS_ACCEPT_LEN + 1] = "";
    bool offered = false;
    if (tunnel) {
        if (check_tunnel(req, accept) < 0)
            return;
    } else if (!up || strncasecmp(up, "SPDY/3.1", 8) != 0) {
        kx_httpd_respond_text(req, 400, "unable to upgrade: unsupported protocol (want SPDY/3.1 or websocket)");
        return;
    } else {
        // Like the kubelet: no X-Stream-Protocol-Version at all is an old
        // client (accepted, nothing echoed); offers without ours are refused.
        offered = kx_http_get(h, "X-Stream-Protocol-Version") != nullptr;
        if (offered && !kx_http_has_token(h, "X-Stream-Protocol-Version", kProto)) {
            kx_http_header hd[2] = {{"Content-Type", "text/plain; charset=utf-8"},
                                    {"X-Accepted-Stream-Protocol-Versions", kProto}};
            static const char msg[] = "unable to upgrade: unable to negotiate protocol: "
                                      "server accepts [portforward.k8s.io]";
            kx_httpd_respond_hdrs(req, 403, hd, 2, msg, sizeof msg - 1, false);
            return;
        }
    }
    char err[256];
    pid_t pid;
    bool hostnet;
    if (kx_podmgr_pod_net(n->pm, ns, pod, &pid, &hostnet, nullptr, 0, err, sizeof err) == -ENOENT) {
        kx_httpd_respond_text(req, 404, err);
        return;
    }
    pf_session *s = (pf_session *)calloc(1, sizeof *s);
    if (s)
        s->spdy = kx_spdy_session_new(true, &spdy_cb, s);
    if (s && s->spdy && tunnel)
        s->ws = kx_ws_new(&ws_cb, s, 0);
    if (!s || !s->spdy || (tunnel && !s->ws)) {
        if (s)
            kx_spdy_session_free(s->spdy);
        free(s);
        kx_httpd_respond_text(req, 500, "out of memory");
        return;
    }
    s->node = n;
    kx_strlcpy(s->ns, ns, sizeof s->ns);
    kx_strlcpy(s->pod, pod, sizeof s->pod);
    uv_timer_init(n->loop, &s->tick);
    s->tick.data = s;
    s->last_input_ms = now_ms(s);

    const uint8_t *extra = req->extra;
    size_t extra_len = req->extra_len;
    s->conn = kx_httpd_hijack(req);
    kx_conn_set_user(s->conn, s, &conn_cb);
    char head[512];
    int hl;
    if (tunnel)
        hl = snprintf(head, sizeof head,
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                      "Sec-WebSocket-Protocol: %s\r\n\r\n",
                      accept, kTunnelProto);
    else
        hl = snprintf(head, sizeof head,
                      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                      "Upgrade: SPDY/3.1\r\n%s%s%s\r\n",
                      offered ? "X-Stream-Protocol-Version: " : "", offered ? kProto : "",
                      offered ? "\r\n" : "");
    kx_conn_write(s->conn, (const uint8_t *)head, (size_t)hl);
    uv_timer_start(&s->tick, on_tick, kTickMs, kTickMs);
    kx_heaptrim_soon(n->loop);   // the set-up's freed pages (kubexec/heaptrim.h)
    if (extra_len)
        c_data(s->conn, extra, extra_len);
}
