// WebSocket (RFC 6455): handshake checks and a framing session, server role
// (the daemons) and client role (the kubexec CLI).
// Contract in include/kubexec/ws.h; wire facts in protocol.md §4.
//
// Incoming frames are cut and unmasked by libwslay's frame layer
// (wslay_frame_recv fed from the caller's buffer through its recv callback).
// Its context carries a 4 KiB read-ahead buffer, so an idle session does not
// keep one: it is freed whenever every byte wslay took has been handed back
// as whole frames (nothing half-read inside it) and made again by the next
// kx_ws_recv. Likewise a reassembled message's buffer over kMsgKeep bytes is
// freed once the message was delivered.
// Everything above the single frame (fragment reassembly, limits, control
// frame rules, the close handshake) is here, so each violation maps to one
// close code. Outgoing frames are unmasked server frames whose header we
// write ourselves: that lets a frame leave as one (header, payload) pair
// through callbacks.send without copying the payload. Client frames must be
// masked (RFC 6455 §5.3), which needs the payload XORed into a scratch buffer
// owned by the session: one copy, no allocation once the buffer has grown to
// the largest frame sent.
#include "kubexec/ws.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#include "kubexec/crypto.h"
#include "kubexec/util.h"

// ---- Handshake ---------------------------------------------------------------

static const char kGuid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int kx_ws_accept_key(const char *key, char out[KX_WS_ACCEPT_LEN + 1])
{
    if (!key || !*key)
        return -EINVAL;
    uint8_t digest[20];
    if (kx_sha1(key, strlen(key), kGuid, sizeof kGuid - 1, digest) < 0)
        return -EINVAL;
    kx_base64_encode(digest, sizeof digest, out);
    return 0;
}

static bool is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

// The base64 of 16 bytes: 22 alphabet characters then "==".
static bool key_ok(const char *k)
{
    if (strlen(k) != 24 || k[22] != '=' || k[23] != '=')
        return false;
    for (int i = 0; i < 22; i++)
        if (!is_b64(k[i]))
            return false;
    return true;
}

int kx_ws_handshake_check(const kx_http_head *h, char accept[KX_WS_ACCEPT_LEN + 1])
{
    if (strcmp(h->method, "GET") != 0)
        return -EOPNOTSUPP;
    const char *up = kx_http_get(h, "Upgrade");
    if (!up || !kx_http_has_token(h, "Upgrade", "websocket") ||
        !kx_http_has_token(h, "Connection", "upgrade"))
        return -EINVAL;
    const char *v = kx_http_get(h, "Sec-WebSocket-Version");
    if (!v || strcmp(v, "13") != 0)
        return -EPROTONOSUPPORT;
    const char *keys[2];
    size_t nk = kx_http_get_all(h, "Sec-WebSocket-Key", keys, 2);
    if (nk != 1 || !key_ok(keys[0]))
        return -EBADMSG;
    return kx_ws_accept_key(keys[0], accept) < 0 ? -EBADMSG : 0;
}

int kx_ws_choose_protocol(const char *const *offers, size_t n, const char *const *supported,
                          size_t nsupported)
{
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        const char *p = offers[i];
        if (!p)
            continue;
        while (*p) {
            while (*p == ' ' || *p == '\t' || *p == ',')
                p++;
            const char *b = p;
            while (*p && *p != ',')
                p++;
            const char *e = p;
            while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if (e == b)
                continue;
            any = true;
            size_t len = (size_t)(e - b);
            for (size_t j = 0; j < nsupported; j++) {
                if (supported[j] && strlen(supported[j]) == len && memcmp(supported[j], b, len) == 0)
                    return (int)j;
            }
        }
    }
    return any ? -ENOENT : -ENODATA;
}

int kx_ws_client_key(char out[KX_WS_KEY_LEN + 1])
{
    uint8_t raw[16];
    if (kx_random(raw, sizeof raw) < 0)
        return -EIO;
    kx_base64_encode(raw, sizeof raw, out);
    return 0;
}

int kx_ws_client_check(const kx_http_head *h, const char *key)
{
    if (h->status != 101)
        return -EPROTO;
    const char *up = kx_http_get(h, "Upgrade");
    if (!up || strcasecmp(up, "websocket") != 0 || !kx_http_has_token(h, "Connection", "upgrade"))
        return -EPROTO;
    char want[KX_WS_ACCEPT_LEN + 1];
    const char *acc = kx_http_get(h, "Sec-WebSocket-Accept");
    if (kx_ws_accept_key(key, want) < 0 || !acc || strcmp(acc, want) != 0)
        return -EPROTO;
    return 0;
}

// ---- Framing -----------------------------------------------------------------

struct kx_ws_session {
    kx_ws_callbacks cb;
    void *user;
    size_t max;
    wslay_frame_context_ptr fr;
    const uint8_t *in;         // caller's bytes not yet handed to wslay
    size_t in_len;
    // Bytes wslay took through fr_recv, and the bytes of the frames it has
    // finished (header + payload): equal means wslay holds nothing.
    uint64_t fed, done;
    // The frame being read.
    bool in_frame;
    uint64_t frame_len, frame_off;
    uint8_t frame_op;
    bool frame_fin;
    // The data message being assembled (msg_op 0: none).
    uint8_t msg_op;
    kx_buf msg;
    // The control frame being read (<= 125 bytes, enforced by wslay).
    uint8_t ctl[125];
    size_t ctl_len;
    bool close_sent, close_recv, dead;
    bool client;               // we mask what we send and refuse masked input
    kx_buf mask_buf;           // client: the masked frame being sent
    uint8_t mask_pool[256];    // client: random bytes for masking keys
    size_t mask_pool_off;
};

// A delivered message's buffer is kept for the next one up to this size.
static const size_t kMsgKeep = 4096;

static ssize_t fr_recv(uint8_t *buf, size_t len, int, void *user)
{
    kx_ws_session *s = (kx_ws_session *)user;
    if (s->in_len == 0)
        return -1;   // wslay turns this into WSLAY_ERR_WANT_READ
    size_t n = s->in_len < len ? s->in_len : len;
    memcpy(buf, s->in, n);
    s->in += n;
    s->in_len -= n;
    s->fed += n;
    return (ssize_t)n;
}

static ssize_t fr_send(const uint8_t *, size_t, int, void *)
{
    return -1;   // unused: we write our own (unmasked) frames
}

static int fr_genmask(uint8_t *, size_t, void *)
{
    return -1;   // server frames are never masked
}

static int fr_make(kx_ws_session *s)
{
    static const wslay_frame_callbacks fcb = {fr_send, fr_recv, fr_genmask};
    return wslay_frame_context_init(&s->fr, &fcb, s);
}

// Size of a frame header as wslay accepts it (minimal length encoding only).
static uint64_t frame_header_len(uint64_t payload_len, bool masked)
{
    return 2 + (payload_len < 126 ? 0 : payload_len < 65536 ? 2 : 8) + (masked ? 4 : 0);
}

kx_ws_session *kx_ws_new(const kx_ws_callbacks *cb, void *user, size_t max_message)
{
    if (!cb || !cb->send)
        return nullptr;
    kx_ws_session *s = (kx_ws_session *)calloc(1, sizeof *s);
    if (!s)
        return nullptr;
    s->cb = *cb;
    s->user = user;
    s->max = max_message ? max_message : KX_WS_MAX_MESSAGE;
    if (fr_make(s) != 0) {
        free(s);
        return nullptr;
    }
    return s;
}

kx_ws_session *kx_ws_new_client(const kx_ws_callbacks *cb, void *user, size_t max_message)
{
    kx_ws_session *s = kx_ws_new(cb, user, max_message);
    if (s) {
        s->client = true;
        s->mask_pool_off = sizeof s->mask_pool;
    }
    return s;
}

void kx_ws_free(kx_ws_session *s)
{
    if (!s)
        return;
    if (s->fr)
        wslay_frame_context_free(s->fr);
    kx_buf_free(&s->msg);
    kx_buf_free(&s->mask_buf);
    free(s);
}

// A fresh 4-byte masking key from a pool refilled with getrandom (one call
// per 64 frames rather than per frame).
static int next_mask(kx_ws_session *s, uint8_t key[4])
{
    if (s->mask_pool_off + 4 > sizeof s->mask_pool) {
        if (kx_random(s->mask_pool, sizeof s->mask_pool) < 0)
            return -EIO;
        s->mask_pool_off = 0;
    }
    memcpy(key, s->mask_pool + s->mask_pool_off, 4);
    s->mask_pool_off += 4;
    return 0;
}

// One frame: header (+ prefix) and payload in one send call. Server frames
// are unmasked and leave without a copy; client frames are masked into
// mask_buf (the prefix and the payload both, since the mask covers the whole
// payload) and leave as one piece.
static int send_frame(kx_ws_session *s, uint8_t op, const uint8_t *prefix, size_t pl,
                      const uint8_t *p, size_t n)
{
    uint8_t hdr[14 + KX_WS_MAX_PREFIX];
    if (pl > KX_WS_MAX_PREFIX)
        return -EINVAL;
    uint64_t len = (uint64_t)pl + n;
    uint8_t maskbit = s->client ? 0x80 : 0;
    size_t hl = 0;
    hdr[hl++] = (uint8_t)(0x80 | op);
    if (len < 126) {
        hdr[hl++] = (uint8_t)(maskbit | len);
    } else if (len <= 0xffff) {
        hdr[hl++] = (uint8_t)(maskbit | 126);
        kx_put_be16(hdr + hl, (uint16_t)len);
        hl += 2;
    } else {
        hdr[hl++] = (uint8_t)(maskbit | 127);
        kx_put_be32(hdr + hl, (uint32_t)(len >> 32));
        kx_put_be32(hdr + hl + 4, (uint32_t)len);
        hl += 8;
    }
    if (!s->client) {
        if (pl)
            memcpy(hdr + hl, prefix, pl);
        return s->cb.send(s->user, hdr, hl + pl, n ? p : nullptr, n);
    }
    uint8_t key[4];
    int rc = next_mask(s, key);
    if (rc < 0)
        return rc;
    memcpy(hdr + hl, key, 4);
    hl += 4;
    s->mask_buf.len = 0;
    if (len > s->mask_buf.cap) {
        uint8_t *nb = (uint8_t *)realloc(s->mask_buf.data, len);
        if (!nb)
            return -ENOMEM;
        s->mask_buf.data = nb;
        s->mask_buf.cap = len;
    }
    uint8_t *out = s->mask_buf.data;
    for (size_t i = 0; i < pl; i++)
        out[i] = prefix[i] ^ key[i & 3];
    // The data part: 8 bytes at a time with the key repeated to 64 bits,
    // starting at the right key phase.
    size_t i = 0;
    uint8_t k8[8];
    for (int j = 0; j < 8; j++)
        k8[j] = key[(pl + (size_t)j) & 3];
    uint64_t k64;
    memcpy(&k64, k8, 8);
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        v ^= k64;
        memcpy(out + pl + i, &v, 8);
    }
    for (; i < n; i++)
        out[pl + i] = p[i] ^ k8[i & 7];
    return s->cb.send(s->user, hdr, hl, len ? out : nullptr, (size_t)len);
}

static bool close_code_ok(unsigned c)
{
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

static int send_close(kx_ws_session *s, uint16_t code, const char *reason)
{
    if (s->close_sent)
        return 0;
    s->close_sent = true;
    uint8_t pl[125];
    size_t n = 0;
    if (code) {
        kx_put_be16(pl, code);
        n = 2;
        if (reason) {
            size_t rl = strlen(reason);
            if (rl > 123)
                rl = 123;
            // Do not cut inside a UTF-8 sequence.
            while (rl > 0 && rl < strlen(reason) && ((uint8_t)reason[rl] & 0xc0) == 0x80)
                rl--;
            memcpy(pl + 2, reason, rl);
            n += rl;
        }
    }
    return send_frame(s, KX_WS_CLOSE, nullptr, 0, pl, n);
}

// Close with code and mark the session dead; returns err (or the send error).
static int fail(kx_ws_session *s, uint16_t code, int err)
{
    int r = send_close(s, code, nullptr);
    s->dead = true;
    return r < 0 ? r : err;
}

// RFC 3629 UTF-8: no overlongs, no surrogates, nothing above U+10FFFF.
static bool utf8_ok(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            need = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            need = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i - 1 < need)
            return false;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += need + 1;
    }
    return true;
}

static int on_control(kx_ws_session *s)
{
    switch (s->frame_op) {
    case KX_WS_PING:
        if (s->close_sent)
            return 0;
        return send_frame(s, KX_WS_PONG, nullptr, 0, s->ctl, s->ctl_len);
    case KX_WS_PONG:
        return 0;
    case KX_WS_CLOSE: {
        uint16_t code = KX_WS_NO_STATUS;
        if (s->ctl_len == 1)
            return fail(s, KX_WS_PROTOCOL_ERROR, -EPROTO);
        if (s->ctl_len >= 2) {
            code = kx_get_be16(s->ctl);
            if (!close_code_ok(code))
                return fail(s, KX_WS_PROTOCOL_ERROR, -EPROTO);
            if (!utf8_ok(s->ctl + 2, s->ctl_len - 2))
                return fail(s, KX_WS_INVALID_DATA, -EILSEQ);
        }
        s->close_recv = true;
        int r = send_close(s, code == KX_WS_NO_STATUS ? 0 : code, nullptr);
        if (s->cb.on_close)
            s->cb.on_close(s->user, code);
        return r;
    }
    default:
        return fail(s, KX_WS_PROTOCOL_ERROR, -EPROTO);
    }
}

static int on_chunk(kx_ws_session *s, const wslay_frame_iocb *io)
{
    if (!s->in_frame) {
        s->in_frame = true;
        s->frame_len = io->payload_length;
        s->frame_off = 0;
        s->frame_op = io->opcode;
        s->frame_fin = io->fin;
        // Clients mask every frame, servers none (RFC 6455 §5.1).
        if (io->rsv || io->mask == s->client)
            return fail(s, KX_WS_PROTOCOL_ERROR, -EPROTO);
        if (io->opcode & 0x8) {
            // wslay already refused fragmented or > 125-byte control frames.
            if (io->opcode != KX_WS_CLOSE && io->opcode != KX_WS_PING && io->opcode != KX_WS_PONG)
                return fail(s, KX_WS_PROTOCOL_ERROR, -EPROTO);
            s->ctl_len = 0;
        } else if (io->opcode == KX_WS_CONT) {
            if (!s->msg_op)
                return fail(s, KX_WS_PROTOCOL_ERROR, -EPROTO);
        } else if (io->opcode == KX_WS_TEXT || io->opcode == KX_WS_BINARY) {
            if (s->msg_op)
                return fail(s, KX_WS_PROTOCOL_ERROR, -EPROTO);
            s->msg_op = io->opcode;
            s->msg.len = 0;
        } else {
            return fail(s, KX_WS_PROTOCOL_ERROR, -EPROTO);
        }
        if (!(io->opcode & 0x8) && s->frame_len > s->max - s->msg.len)
            return fail(s, KX_WS_TOO_BIG, -EMSGSIZE);
    }
    if (io->data_length) {
        if (s->frame_op & 0x8) {
            memcpy(s->ctl + s->ctl_len, io->data, io->data_length);
            s->ctl_len += io->data_length;
        } else if (!s->close_sent &&
                   kx_buf_append(&s->msg, io->data, io->data_length, s->max) < 0) {
            return fail(s, KX_WS_INTERNAL, -ENOMEM);
        }
        s->frame_off += io->data_length;
    }
    if (s->frame_off < s->frame_len)
        return 0;
    s->in_frame = false;
    if (s->frame_op & 0x8)
        return on_control(s);
    if (!s->frame_fin)
        return 0;
    uint8_t op = s->msg_op;
    s->msg_op = 0;
    if (s->close_sent)
        return 0;
    if (op == KX_WS_TEXT && !utf8_ok(s->msg.data, s->msg.len))
        return fail(s, KX_WS_INVALID_DATA, -EILSEQ);
    if (s->cb.on_message)
        s->cb.on_message(s->user, op, s->msg.len ? s->msg.data : nullptr, s->msg.len);
    s->msg.len = 0;
    if (s->msg.cap > kMsgKeep)
        kx_buf_free(&s->msg);
    return 0;
}

int kx_ws_recv(kx_ws_session *s, const uint8_t *p, size_t n)
{
    if (s->dead || s->close_recv)
        return 0;
    if (n == 0)
        return 0;
    if (!s->fr && fr_make(s) != 0)
        return fail(s, KX_WS_INTERNAL, -ENOMEM);
    s->in = p;
    s->in_len = n;
    int rc = 0;
    while (!s->dead && !s->close_recv) {
        wslay_frame_iocb io;
        memset(&io, 0, sizeof io);
        ssize_t r = wslay_frame_recv(s->fr, &io);
        if (r == WSLAY_ERR_WANT_READ)
            break;
        if (r < 0) {
            // WSLAY_ERR_PROTO: bad control frame or extended length.
            rc = fail(s, KX_WS_PROTOCOL_ERROR, -EPROTO);
            break;
        }
        rc = on_chunk(s, &io);
        if (rc < 0) {
            s->dead = true;
            break;
        }
        if (!s->in_frame)   // that chunk ended its frame
            s->done += frame_header_len(io.payload_length, io.mask) + io.payload_length;
    }
    s->in = nullptr;
    s->in_len = 0;
    if (!s->dead && !s->close_recv && !s->in_frame && s->fed == s->done) {
        // Between frames with nothing read ahead: drop the 4 KiB context.
        wslay_frame_context_free(s->fr);
        s->fr = nullptr;
    }
    return rc;
}

int kx_ws_send(kx_ws_session *s, int opcode, const uint8_t *prefix, size_t prefix_len,
               const uint8_t *p, size_t n)
{
    if (opcode != KX_WS_TEXT && opcode != KX_WS_BINARY)
        return -EINVAL;
    if (s->close_sent)
        return -EPIPE;
    return send_frame(s, (uint8_t)opcode, prefix, prefix_len, p, n);
}

int kx_ws_ping(kx_ws_session *s, const uint8_t *p, size_t n)
{
    if (n > 125)
        return -EINVAL;
    if (s->close_sent)
        return -EPIPE;
    return send_frame(s, KX_WS_PING, nullptr, 0, p, n);
}

int kx_ws_close(kx_ws_session *s, uint16_t code, const char *reason)
{
    if (!close_code_ok(code))
        return -EINVAL;
    return send_close(s, code, reason);
}

bool kx_ws_close_sent(const kx_ws_session *s)
{
    return s->close_sent;
}

bool kx_ws_close_received(const kx_ws_session *s)
{
    return s->close_recv;
}
