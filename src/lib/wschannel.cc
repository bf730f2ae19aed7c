// channel.k8s.io over WebSocket, server side. Contract in
// include/kubexec/wschannel.h; wire facts in protocol.md §4.
#include "kubexec/wschannel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kubexec/crypto.h"
#include "kubexec/util.h"
#include "kubexec/ws.h"

enum { CH_STDIN = 0, CH_STDOUT = 1, CH_STDERR = 2, CH_ERROR = 3, CH_RESIZE = 4, CH_CLOSE = 255 };

struct kx_wsch_session {
    kx_wsch_opts o;
    kx_wsch_callbacks cb;
    void *user;
    kx_ws_session *ws;
    int err;                 // first error raised inside a kx_ws callback
    bool started, finished, goaway;
    bool stdin_eof;          // CLOSE signal for stdin seen
    bool eof_delivered;
    kx_buf early;            // stdin before start
    kx_buf scratch;          // base64 in/out
    kx_rc_resize_parser resize;
};

// ---- Negotiation -------------------------------------------------------------

static const char *const kProtos[] = {
    "v5.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io", "v3.channel.k8s.io",
    "v2.channel.k8s.io", "channel.k8s.io",    "base64.channel.k8s.io",
};
static const kx_wsch_proto kProtoVals[] = {
    {KX_RC_V5, false}, {KX_RC_V4, false}, {KX_RC_V4, true}, {KX_RC_V3, false},
    {KX_RC_V2, false}, {KX_RC_V1, false}, {KX_RC_V1, true},
};

int kx_wsch_negotiate(const char *const *offers, size_t n, kx_wsch_proto *out, const char **name)
{
    int i = kx_ws_choose_protocol(offers, n, kProtos, sizeof kProtos / sizeof kProtos[0]);
    if (i == -ENODATA) {
        *out = {KX_RC_V1, false};
        *name = nullptr;
        return -ENODATA;
    }
    if (i < 0)
        return i;
    *out = kProtoVals[i];
    *name = kProtos[i];
    return 0;
}

const char *kx_wsch_supported(void)
{
    return "v5.channel.k8s.io, v4.channel.k8s.io, v4.base64.channel.k8s.io, v3.channel.k8s.io, "
           "v2.channel.k8s.io, channel.k8s.io, base64.channel.k8s.io";
}

static int scratch_reserve(kx_wsch_session *s, size_t n)
{
    if (s->scratch.cap >= n)
        return 0;
    uint8_t *d = (uint8_t *)realloc(s->scratch.data, n);
    if (!d)
        return -ENOMEM;
    s->scratch.data = d;
    s->scratch.cap = n;
    return 0;
}

// ---- Output --------------------------------------------------------------------

static int send_channel(kx_wsch_session *s, uint8_t ch, const uint8_t *p, size_t n)
{
    if (!s->o.proto.base64) {
        uint8_t pre = ch;
        return kx_ws_send(s->ws, KX_WS_BINARY, &pre, 1, p, n);
    }
    int r = scratch_reserve(s, (n + 2) / 3 * 4 + 1);
    if (r < 0)
        return r;
    size_t el = kx_base64_encode(p, n, (char *)s->scratch.data);
    uint8_t pre = (uint8_t)('0' + ch);
    return kx_ws_send(s->ws, KX_WS_TEXT, &pre, 1, s->scratch.data, (size_t)el);
}

static int send_split(kx_wsch_session *s, uint8_t ch, const uint8_t *p, size_t n)
{
    // base64 grows by 4/3: keep the encoded message near the same size.
    size_t max = s->o.proto.base64 ? KX_WSCH_MAX_OUT / 4 * 3 : KX_WSCH_MAX_OUT;
    while (n) {
        size_t k = n < max ? n : max;
        int r = send_channel(s, ch, p, k);
        if (r < 0)
            return r;
        p += k;
        n -= k;
    }
    return 0;
}

int kx_wsch_stdout(kx_wsch_session *s, const uint8_t *p, size_t n)
{
    if (!s->o.out || s->finished || s->goaway || s->err)
        return 0;
    return send_split(s, CH_STDOUT, p, n);
}

int kx_wsch_stderr(kx_wsch_session *s, const uint8_t *p, size_t n)
{
    if (!s->o.err || s->finished || s->goaway || s->err)
        return 0;
    return send_split(s, CH_STDERR, p, n);
}

// ---- Input ---------------------------------------------------------------------

static void set_err(kx_wsch_session *s, uint16_t code, int rc)
{
    if (s->err)
        return;
    s->err = rc;
    int r = kx_ws_close(s->ws, code, nullptr);
    if (r < 0)
        s->err = r;
}

// Resize events: the same JSON stream as over SPDY (kx_rc_resize_feed).
static void on_resize_bytes(kx_wsch_session *s, const uint8_t *p, size_t n)
{
    kx_rc_resize_feed(&s->resize, p, n, s->cb.on_resize, s->user);
}

static void deliver_eof(kx_wsch_session *s)
{
    if (s->eof_delivered)
        return;
    s->eof_delivered = true;
    if (s->cb.on_stdin_eof)
        s->cb.on_stdin_eof(s->user);
}

static void on_channel(kx_wsch_session *s, uint8_t ch, const uint8_t *p, size_t n)
{
    switch (ch) {
    case CH_STDIN:
        if (!s->o.in || s->stdin_eof || n == 0)
            return;
        if (!s->started) {
            if (kx_buf_append(&s->early, p, n, KX_RC_MAX_EARLY_STDIN) < 0)
                set_err(s, KX_WS_POLICY, -EMSGSIZE);
            return;
        }
        if (s->cb.on_stdin)
            s->cb.on_stdin(s->user, p, n);
        return;
    case CH_RESIZE:
        if (s->o.tty)
            on_resize_bytes(s, p, n);
        return;
    default:
        return;   // unknown or server-only channel: discarded, as upstream
    }
}

static void ws_on_message(void *user, int, const uint8_t *p, size_t n)
{
    kx_wsch_session *s = (kx_wsch_session *)user;
    if (s->err || n == 0)
        return;
    if (s->o.proto.base64) {
        if (p[0] < '0' || p[0] > '9') {
            set_err(s, KX_WS_INVALID_DATA, -EILSEQ);
            return;
        }
        if (scratch_reserve(s, (n - 1) / 4 * 3 + 3) < 0) {
            set_err(s, KX_WS_INTERNAL, -ENOMEM);
            return;
        }
        size_t bad;
        long dl = kx_base64_decode((const char *)p + 1, n - 1, s->scratch.data, &bad);
        if (dl < 0)
            dl = -EILSEQ;
        if (dl < 0) {
            set_err(s, KX_WS_INVALID_DATA, -EILSEQ);
            return;
        }
        on_channel(s, (uint8_t)(p[0] - '0'), s->scratch.data, (size_t)dl);
        return;
    }
    if (p[0] == CH_CLOSE && s->o.proto.version >= KX_RC_V5) {
        if (n != 2 || p[1] > CH_RESIZE) {
            set_err(s, KX_WS_PROTOCOL_ERROR, -EPROTO);
            return;
        }
        if (p[1] == CH_STDIN && s->o.in && !s->stdin_eof) {
            s->stdin_eof = true;
            if (s->started)
                deliver_eof(s);
        }
        return;
    }
    on_channel(s, p[0], p + 1, n - 1);
}

static void ws_on_close(void *user, uint16_t)
{
    kx_wsch_session *s = (kx_wsch_session *)user;
    if (s->goaway)
        return;
    s->goaway = true;
    if (s->cb.on_goaway)
        s->cb.on_goaway(s->user);
}

static int ws_send(void *user, const uint8_t *hdr, size_t hl, const uint8_t *payload, size_t pl)
{
    kx_wsch_session *s = (kx_wsch_session *)user;
    return s->cb.send(s->user, hdr, hl, payload, pl);
}

// ---- Lifecycle -----------------------------------------------------------------

kx_wsch_session *kx_wsch_new(const kx_wsch_opts *o, const kx_wsch_callbacks *cb, void *user)
{
    if (!o || !cb || !cb->send || o->proto.version < KX_RC_V1 || o->proto.version > KX_RC_V5)
        return nullptr;
    kx_wsch_session *s = (kx_wsch_session *)calloc(1, sizeof *s);
    if (!s)
        return nullptr;
    s->o = *o;
    if (s->o.tty)
        s->o.err = false;
    s->cb = *cb;
    s->user = user;
    static const kx_ws_callbacks wcb = {ws_send, ws_on_message, ws_on_close};
    s->ws = kx_ws_new(&wcb, s, KX_WSCH_MAX_MESSAGE);
    if (!s->ws) {
        free(s);
        return nullptr;
    }
    return s;
}

void kx_wsch_free(kx_wsch_session *s)
{
    if (!s)
        return;
    kx_ws_free(s->ws);
    kx_buf_free(&s->early);
    free(s->scratch.data);
    kx_rc_resize_free(&s->resize);
    free(s);
}

void kx_wsch_start(kx_wsch_session *s)
{
    if (s->started)
        return;
    s->started = true;
    if (s->cb.on_ready)
        s->cb.on_ready(s->user);
    if (s->early.len && s->cb.on_stdin && !s->goaway)
        s->cb.on_stdin(s->user, s->early.data, s->early.len);
    kx_buf_free(&s->early);
    if (s->stdin_eof)
        deliver_eof(s);
}

int kx_wsch_recv(kx_wsch_session *s, const uint8_t *p, size_t n)
{
    if (s->err)
        return s->err;
    int r = kx_ws_recv(s->ws, p, n);
    if (s->err)
        return s->err;
    return r;
}

int kx_wsch_finish(kx_wsch_session *s, int exit_code, const char *errmsg)
{
    if (s->finished)
        return 0;
    if (!errmsg && (exit_code < 0 || exit_code > 255))
        return -EINVAL;
    s->finished = true;
    if (s->goaway || s->err)
        return kx_ws_close(s->ws, KX_WS_NORMAL, nullptr);

    char status[KX_RC_MAX_STATUS];
    int len = 0;
    if (s->o.proto.version >= KX_RC_V4) {
        char msg[1024];
        if (errmsg)
            kx_strlcpy(msg, errmsg, sizeof msg);
        for (;;) {
            len = kx_rc_status_json(status, sizeof status, exit_code, errmsg ? msg : nullptr);
            if (len != -EMSGSIZE || !errmsg || msg[0] == 0)
                break;
            msg[strlen(msg) / 2] = 0;
        }
    } else if (errmsg) {
        len = snprintf(status, sizeof status, "%s", errmsg);
    } else if (exit_code != 0) {
        len = snprintf(status, sizeof status,
                       "command terminated with non-zero exit code: exit status %d", exit_code);
    }
    if (len > (int)sizeof status - 1)
        len = (int)sizeof status - 1;
    int first = 0;
    if (len > 0)
        first = send_channel(s, CH_ERROR, (const uint8_t *)status, (size_t)len);
    int r = kx_ws_close(s->ws, KX_WS_NORMAL, nullptr);
    return first < 0 ? first : r;
}

int kx_wsch_close(kx_wsch_session *s, uint16_t code)
{
    s->finished = true;
    return kx_ws_close(s->ws, code, nullptr);
}

bool kx_wsch_closed(const kx_wsch_session *s)
{
    return kx_ws_close_sent(s->ws) && kx_ws_close_received(s->ws);
}
