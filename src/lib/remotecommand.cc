// channel.k8s.io remotecommand stream set over SPDY, server side (the kubelet
// role). Contract in include/kubexec/remotecommand.h; wire facts in
// protocol.md §3.
#include "kubexec/remotecommand.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kubexec/spdy.h"
#include "kubexec/util.h"

namespace {

enum slot_index { SL_ERROR, SL_STDIN, SL_STDOUT, SL_STDERR, SL_RESIZE, SL_COUNT };

const char *const slot_names[SL_COUNT] = {"error", "stdin", "stdout", "stderr", "resize"};

struct slot {
    uint32_t id;    // 0 = stream not (yet) created
    bool gone;      // the client reset it: send nothing more
    bool local_fin; // we FIN'd (or reset) it
};

} // namespace

struct kx_rc_session {
    kx_rc_opts o;
    kx_rc_callbacks cb;
    void *user;
    kx_spdy_session *spdy;
    int err;                 // first error raised inside a SPDY callback
    bool want[SL_COUNT];
    slot sl[SL_COUNT];
    int expected, count;
    bool ready;
    bool finished;
    bool peer_goaway;
    bool eof_pending, eof_done;
    kx_buf early;            // stdin received before on_ready
    kx_rc_resize_parser resize;
};

// ---- Negotiation ----------------------------------------------------------------

static const char *const proto_names[] = {nullptr, "channel.k8s.io", "v2.channel.k8s.io",
                                          "v3.channel.k8s.io", "v4.channel.k8s.io",
                                          "v5.channel.k8s.io"};

const char *kx_rc_proto_name(int proto)
{
    if (proto < KX_RC_V1 || proto > KX_RC_V5)
        return nullptr;
    return proto_names[proto];
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

int kx_rc_negotiate(const char *const *offers, size_t n)
{
    bool any = false;
    for (size_t i = 0; offers && i < n; i++) {
        const char *p = offers[i];
        if (!p)
            continue;
        while (*p) {
            const char *end = strchr(p, ',');
            if (!end)
                end = p + strlen(p);
            const char *a = p, *b = end;
            while (a < b && is_space(*a))
                a++;
            while (b > a && is_space(b[-1]))
                b--;
            if (b > a) {
                any = true;
                // v5 is deliberately absent: real kubelets answer v4 over SPDY.
                for (int v = KX_RC_V4; v >= KX_RC_V1; v--) {
                    const char *name = proto_names[v];
                    if ((size_t)(b - a) == strlen(name) && memcmp(a, name, (size_t)(b - a)) == 0)
                        return v;
                }
            }
            p = *end ? end + 1 : end;
        }
    }
    return any ? -ENOENT : -EINVAL;
}

// ---- Status ---------------------------------------------------------------------

int kx_rc_status_json(char *out, size_t cap, int exit_code, const char *errmsg)
{
    int len;
    if (errmsg) {
        char esc[KX_RC_MAX_STATUS];
        if (kx_json_escape(esc, sizeof esc, errmsg) < 0)
            return -EMSGSIZE;
        len = snprintf(out, cap,
                       "{\"metadata\":{},\"status\":\"Failure\",\"message\":\"Internal error occurred: %s\","
                       "\"reason\":\"InternalError\",\"details\":{\"causes\":[{\"message\":\"%s\"}]},"
                       "\"code\":500}",
                       esc, esc);
    } else if (exit_code < 0 || exit_code > 255) {
        return -EINVAL;
    } else if (exit_code == 0) {
        len = snprintf(out, cap, "{\"metadata\":{},\"status\":\"Success\"}");
    } else {
        len = snprintf(out, cap,
                       "{\"metadata\":{},\"status\":\"Failure\",\"message\":\"command terminated with "
                       "non-zero exit code: exit status %d\",\"reason\":\"NonZeroExitCode\","
                       "\"details\":{\"causes\":[{\"reason\":\"ExitCode\",\"message\":\"%d\"}]}}",
                       exit_code, exit_code);
    }
    if (len < 0 || (size_t)len >= cap)
        return -EMSGSIZE;
    return len;
}

// ---- Stream events ----------------------------------------------------------------

static void set_err(kx_rc_session *s, int rc)
{
    if (rc < 0 && s->err == 0)
        s->err = rc;
}

static int slot_of(const kx_rc_session *s, uint32_t id)
{
    for (int i = 0; i < SL_COUNT; i++)
        if (s->sl[i].id == id && id)
            return i;
    return -1;
}

static void stdin_eof(kx_rc_session *s)
{
    if (s->eof_done || s->eof_pending)
        return;
    if (!s->ready) {
        s->eof_pending = true;
        return;
    }
    s->eof_done = true;
    if (s->cb.on_stdin_eof)
        s->cb.on_stdin_eof(s->user);
}

static void become_ready(kx_rc_session *s)
{
    s->ready = true;
    // Every stream the client will open is open: the header-compression
    // state is dead weight from here on (kubectl never opens more).
    kx_spdy_drop_header_state(s->spdy);
    if (s->cb.on_ready)
        s->cb.on_ready(s->user);
    if (s->early.len && s->cb.on_stdin)
        s->cb.on_stdin(s->user, s->early.data, s->early.len);
    kx_buf_free(&s->early);
    if (s->eof_pending) {
        s->eof_pending = false;
        stdin_eof(s);
    }
}

static void on_stream(void *user, uint32_t id, const kx_spdy_nv *nv, size_t n, bool)
{
    kx_rc_session *s = (kx_rc_session *)user;
    int type = -1;
    for (size_t i = 0; i < n; i++) {
        if (nv[i].name_len != 10 || memcmp(nv[i].name, "streamtype", 10) != 0)
            continue;
        for (int t = 0; t < SL_COUNT; t++)
            if (nv[i].value_len == strlen(slot_names[t]) && memcmp(nv[i].value, slot_names[t], nv[i].value_len) == 0)
                type = t;
        break;
    }
    if (type >= 0 && s->want[type] && s->sl[type].id) {
        set_err(s, kx_spdy_rst(s->spdy, id, KX_SPDY_CANCEL));
        return;
    }
    int rc = kx_spdy_reply(s->spdy, id, nullptr, 0, false);
    if (rc < 0) {
        set_err(s, rc);
        return;
    }
    if (type < 0 || !s->want[type])
        return; // replied but not counted, like the kubelet
    s->sl[type].id = id;
    s->count++;
    if (s->count == s->expected && !s->ready)
        become_ready(s);
}

// --- resize events ----------------------------------------------------------
// A stream of JSON objects {"Width":W,"Height":H}, newline separated, split
// or merged across frames in any way. Shared with the WebSocket channel
// transport (wschannel.cc).

// One complete JSON object; bad ones are ignored (Go's decoder would error
// on them and the kubelet drops the event).
static void resize_object(const char *p, size_t n, kx_rc_resize_cb cb, void *user)
{
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return;
    json_object *obj = json_tokener_parse_ex(tok, p, (int)n);
    bool ok = obj && json_tokener_get_error(tok) == json_tokener_success && json_object_is_type(obj, json_type_object);
    int64_t w = 0, h = 0;
    if (ok) {
        json_object_iterator it = json_object_iter_begin(obj), end = json_object_iter_end(obj);
        for (; ok && !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
            const char *k = json_object_iter_peek_name(&it);
            json_object *v = json_object_iter_peek_value(&it);
            int64_t *dst = strcasecmp(k, "width") == 0 ? &w : strcasecmp(k, "height") == 0 ? &h : nullptr;
            if (!dst)
                continue;
            if (!json_object_is_type(v, json_type_int)) {
                ok = false;
                break;
            }
            *dst = json_object_get_int64(v);
            if (*dst < 0 || *dst > 65535)
                ok = false;
        }
    }
    if (obj)
        json_object_put(obj);
    json_tokener_free(tok);
    if (ok && w > 0 && h > 0 && cb)
        cb(user, (uint16_t)w, (uint16_t)h);
}

// Length of the complete object at the start of buf (buf[0] == '{'), or 0.
static size_t object_end(const char *buf, size_t n)
{
    int depth = 0;
    bool str = false, esc = false;
    for (size_t i = 0; i < n; i++) {
        char c = buf[i];
        if (str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                str = false;
            continue;
        }
        if (c == '"')
            str = true;
        else if (c == '{' || c == '[')
            depth++;
        else if ((c == '}' || c == ']') && --depth == 0)
            return i + 1;
    }
    return 0;
}

// Parses the complete objects at the start of b[0..len), skipping what the
// stream format says to skip, and drops an object whose first
// KX_RC_MAX_RESIZE_JSON bytes do not complete it (up to the next newline).
// Returns how many bytes were used up: the rest (if any) is the start of an
// object not complete yet, shorter than the bound.
static size_t resize_scan(kx_rc_resize_parser *r, const char *b, size_t len, kx_rc_resize_cb cb,
                          void *user)
{
    size_t off = 0;
    for (;;) {
        if (r->skip) {
            const char *nl = (const char *)memchr(b + off, '\n', len - off);
            if (!nl)
                return len;
            off = (size_t)(nl - b) + 1;
            r->skip = false;
        }
        while (off < len && (is_space(b[off]) || b[off] == '\n' || b[off] == '\r'))
            off++;
        if (off == len)
            return len;
        if (b[off] != '{') {
            r->skip = true;
            continue;
        }
        size_t avail = len - off;
        size_t e = object_end(b + off, avail < KX_RC_MAX_RESIZE_JSON ? avail : KX_RC_MAX_RESIZE_JSON);
        if (e == 0) {
            if (avail < KX_RC_MAX_RESIZE_JSON)
                return off;
            r->skip = true;   // longer than the bound
            off += KX_RC_MAX_RESIZE_JSON;
            continue;
        }
        resize_object(b + off, e, cb, user);
        off += e;
    }
}

void kx_rc_resize_free(kx_rc_resize_parser *r)
{
    free(r->buf);
    *r = {};
}

void kx_rc_resize_feed(kx_rc_resize_parser *r, const uint8_t *p, size_t n, kx_rc_resize_cb cb,
                       void *user)
{
    const size_t cap = KX_RC_MAX_RESIZE_JSON;
    while (n) {
        if (r->len == 0) {
            // Nothing held: parse in place, keep only an unfinished object.
            size_t off = resize_scan(r, (const char *)p, n, cb, user);
            size_t rest = n - off;   // < cap
            if (rest == 0)
                return;
            if (!r->buf && !(r->buf = (char *)malloc(cap))) {
                r->skip = true;   // out of memory: as if too long
                return;
            }
            memcpy(r->buf, p + off, rest);
            r->len = rest;
            return;
        }
        size_t take = cap - r->len;
        if (take > n)
            take = n;
        memcpy(r->buf + r->len, p, take);
        r->len += take;
        p += take;
        n -= take;
        size_t off = resize_scan(r, r->buf, r->len, cb, user);
        memmove(r->buf, r->buf + off, r->len - off);
        r->len -= off;
        if (r->len == 0) {
            free(r->buf);
            r->buf = nullptr;
        }
    }
}

static void on_resize_bytes(kx_rc_session *s, const uint8_t *p, size_t n)
{
    kx_rc_resize_feed(&s->resize, p, n, s->cb.on_resize, s->user);
}

static void on_data(void *user, uint32_t id, const uint8_t *p, size_t n)
{
    kx_rc_session *s = (kx_rc_session *)user;
    int t = slot_of(s, id);
    if (t == SL_STDIN) {
        if (s->ready) {
            if (s->cb.on_stdin)
                s->cb.on_stdin(s->user, p, n);
        } else {
            set_err(s, kx_buf_append(&s->early, p, n, KX_RC_MAX_EARLY_STDIN));
        }
    } else if (t == SL_RESIZE) {
        on_resize_bytes(s, p, n);
    }
}

static void on_fin(void *user, uint32_t id)
{
    kx_rc_session *s = (kx_rc_session *)user;
    if (slot_of(s, id) == SL_STDIN)
        stdin_eof(s);
}

static void on_rst(void *user, uint32_t id, uint32_t)
{
    kx_rc_session *s = (kx_rc_session *)user;
    int t = slot_of(s, id);
    if (t < 0)
        return;
    s->sl[t].gone = true;
    if (t == SL_STDIN)
        stdin_eof(s);
}

// The SPDY session's user pointer is the rc session; the caller's send wants
// the caller's user pointer.
static int send_out(void *user, const uint8_t *hdr, size_t hl, const uint8_t *payload, size_t pl)
{
    kx_rc_session *s = (kx_rc_session *)user;
    return s->cb.send(s->user, hdr, hl, payload, pl);
}

static void on_goaway(void *user, uint32_t, uint32_t)
{
    kx_rc_session *s = (kx_rc_session *)user;
    s->peer_goaway = true;
    if (s->cb.on_goaway)
        s->cb.on_goaway(s->user);
}

// ---- Public API -------------------------------------------------------------------

kx_rc_session *kx_rc_new(const kx_rc_opts *o, const kx_rc_callbacks *cb, void *user)
{
    if (!o || !cb || !cb->send || o->proto < KX_RC_V1 || o->proto > KX_RC_V5)
        return nullptr;
    kx_rc_session *s = (kx_rc_session *)calloc(1, sizeof *s);
    if (!s)
        return nullptr;
    s->o = *o;
    if (s->o.tty)
        s->o.err = false;
    s->cb = *cb;
    s->user = user;
    s->want[SL_ERROR] = true;
    s->want[SL_STDIN] = s->o.in;
    s->want[SL_STDOUT] = s->o.out;
    s->want[SL_STDERR] = s->o.err;
    s->want[SL_RESIZE] = s->o.tty && s->o.proto >= KX_RC_V3;
    for (int i = 0; i < SL_COUNT; i++)
        s->expected += s->want[i];
    kx_spdy_callbacks scb = {};
    scb.send = send_out;
    scb.on_stream = on_stream;
    scb.on_data = on_data;
    scb.on_fin = on_fin;
    scb.on_rst = on_rst;
    scb.on_goaway = on_goaway;
    s->spdy = kx_spdy_session_new(true, &scb, s);
    if (!s->spdy) {
        free(s);
        return nullptr;
    }
    return s;
}

void kx_rc_free(kx_rc_session *s)
{
    if (!s)
        return;
    kx_spdy_session_free(s->spdy);
    kx_buf_free(&s->early);
    kx_rc_resize_free(&s->resize);
    free(s);
}

int kx_rc_recv(kx_rc_session *s, const uint8_t *p, size_t n)
{
    if (!s)
        return -EINVAL;
    if (s->err)
        return s->err;
    int rc = kx_spdy_recv(s->spdy, p, n);
    if (rc < 0)
        return rc;
    return s->err;
}

bool kx_rc_ready(const kx_rc_session *s)
{
    return s && s->ready;
}

static bool can_write(const kx_rc_session *s, int t)
{
    const slot &x = s->sl[t];
    return x.id && !x.gone && !x.local_fin && !s->finished && !s->peer_goaway;
}

static int write_slot(kx_rc_session *s, int t, const uint8_t *p, size_t n)
{
    if (!s)
        return -EINVAL;
    if (!can_write(s, t) || n == 0)
        return 0;
    return kx_spdy_data(s->spdy, s->sl[t].id, p, n, false);
}

int kx_rc_stdout(kx_rc_session *s, const uint8_t *p, size_t n)
{
    return write_slot(s, SL_STDOUT, p, n);
}

int kx_rc_stderr(kx_rc_session *s, const uint8_t *p, size_t n)
{
    return write_slot(s, SL_STDERR, p, n);
}

static int fin_slot(kx_rc_session *s, int t)
{
    if (!s->sl[t].id || s->sl[t].gone || s->sl[t].local_fin)
        return 0;
    s->sl[t].local_fin = true;
    return kx_spdy_data(s->spdy, s->sl[t].id, nullptr, 0, true);
}

int kx_rc_close_stdin(kx_rc_session *s)
{
    if (!s)
        return -EINVAL;
    if (s->finished || s->peer_goaway)
        return 0;
    return fin_slot(s, SL_STDIN);
}

int kx_rc_finish(kx_rc_session *s, int exit_code, const char *errmsg)
{
    if (!s)
        return -EINVAL;
    if (s->finished)
        return 0;
    if (!errmsg && (exit_code < 0 || exit_code > 255))
        return -EINVAL;
    s->finished = true;
    if (s->peer_goaway)
        return kx_spdy_goaway(s->spdy, KX_SPDY_GOAWAY_OK);

    int first = 0;
    auto note = [&first](int rc) {
        if (rc < 0 && first == 0)
            first = rc;
    };
    note(fin_slot(s, SL_STDOUT));
    note(fin_slot(s, SL_STDERR));

    char status[KX_RC_MAX_STATUS];
    int len = 0;
    if (s->o.proto >= KX_RC_V4) {
        // A long errmsg is cut until the JSON fits.
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
        len = snprintf(status, sizeof status, "command terminated with non-zero exit code: exit status %d", exit_code);
    }
    if (len > (int)sizeof status - 1)
        len = (int)sizeof status - 1;
    slot &e = s->sl[SL_ERROR];
    if (len > 0 && e.id && !e.gone && !e.local_fin)
        note(kx_spdy_data(s->spdy, e.id, (const uint8_t *)status, (size_t)len, false));
    note(fin_slot(s, SL_ERROR));

    // What spdystream's Close does before GOAWAY: reset what we never closed.
    static const int reset_slots[] = {SL_STDIN, SL_RESIZE};
    for (int t : reset_slots) {
        if (s->sl[t].id && !s->sl[t].gone && !s->sl[t].local_fin) {
            s->sl[t].local_fin = true;
            note(kx_spdy_rst(s->spdy, s->sl[t].id, KX_SPDY_CANCEL));
        }
    }
    note(kx_spdy_goaway(s->spdy, KX_SPDY_GOAWAY_OK));
    return first;
}
