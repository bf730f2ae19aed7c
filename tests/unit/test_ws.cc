// Unit tests for kubexec/ws.h: the handshake helpers and the framing
// session. Client frames are built masked, as a browser or gorilla sends
// them, and every input is fed whole, byte by byte and at random splits.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
extern "C" {
#include <cmocka.h>
}

#include "kubexec/util.h"
#include "kubexec/ws.h"

enum feed_mode { WHOLE, BYTES, RANDOM, NMODES };

// ---- helpers -------------------------------------------------------------------

// A client frame: masked unless `unmasked`; rsv in bits 4..6 of byte 0.
static size_t cframe(uint8_t *out, bool fin, int op, const void *payload, size_t n,
                     bool unmasked = false, int rsv = 0)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t l = 0;
    out[l++] = (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | op);
    uint8_t m = unmasked ? 0 : 0x80;
    if (n < 126) {
        out[l++] = (uint8_t)(m | n);
    } else if (n <= 0xffff) {
        out[l++] = m | 126;
        kx_put_be16(out + l, (uint16_t)n);
        l += 2;
    } else {
        out[l++] = m | 127;
        kx_put_be32(out + l, 0);
        kx_put_be32(out + l + 4, (uint32_t)n);
        l += 8;
    }
    if (!unmasked) {
        memcpy(out + l, key, 4);
        l += 4;
    }
    const uint8_t *p = (const uint8_t *)payload;
    for (size_t i = 0; i < n; i++)
        out[l + i] = unmasked ? p[i] : (uint8_t)(p[i] ^ key[i % 4]);
    return l + n;
}

struct sframe {
    int op;
    bool fin;
    uint8_t data[70000];
    size_t len;
};

// Parses the next server frame from b at *off; false when none is complete.
static bool next_sframe(const kx_buf *b, size_t *off, sframe *f)
{
    size_t o = *off;
    if (b->len - o < 2)
        return false;
    const uint8_t *p = b->data + o;
    assert_int_equal(p[1] & 0x80, 0);  // servers never mask
    f->fin = p[0] & 0x80;
    f->op = p[0] & 0xf;
    uint64_t len = p[1] & 0x7f;
    size_t hl = 2;
    if (len == 126) {
        len = kx_get_be16(p + 2);
        hl = 4;
    } else if (len == 127) {
        len = ((uint64_t)kx_get_be32(p + 2) << 32) | kx_get_be32(p + 6);
        hl = 10;
    }
    if (b->len - o < hl + len)
        return false;
    assert_true(len <= sizeof f->data);
    memcpy(f->data, p + hl, len);
    f->len = len;
    *off = o + hl + len;
    return true;
}

struct harness {
    kx_ws_session *s;
    kx_buf out;                 // bytes the server sent
    char log[8192];             // messages and closes, as text
    size_t log_len;
};

static void logf(harness *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf(harness *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(h->log + h->log_len, sizeof h->log - h->log_len, fmt, ap);
    va_end(ap);
    if (n > 0)
        h->log_len += (size_t)n;
    if (h->log_len >= sizeof h->log)
        h->log_len = sizeof h->log - 1;
}

static int h_send(void *u, const uint8_t *hdr, size_t hl, const uint8_t *p, size_t pl)
{
    harness *h = (harness *)u;
    assert_int_equal(kx_buf_append(&h->out, hdr, hl, 1 << 26), 0);
    if (pl)
        assert_int_equal(kx_buf_append(&h->out, p, pl, 1 << 26), 0);
    return 0;
}

static void h_msg(void *u, int op, const uint8_t *p, size_t n)
{
    harness *h = (harness *)u;
    // Up to 40 bytes, non-printables as '.'.
    char shown[41];
    size_t k = n > 40 ? 40 : n;
    for (size_t i = 0; i < k; i++)
        shown[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '.';
    shown[k] = 0;
    logf(h, "msg%d:%zu:%s;", op, n, shown);
}

static void h_close(void *u, uint16_t code)
{
    logf((harness *)u, "close:%u;", code);
}

static const kx_ws_callbacks hcb = {h_send, h_msg, h_close};

static void h_init(harness *h, size_t max = 0)
{
    memset(h, 0, sizeof *h);
    h->s = kx_ws_new(&hcb, h, max);
    assert_non_null(h->s);
}

static void h_free(harness *h)
{
    kx_ws_free(h->s);
    kx_buf_free(&h->out);
}

// Feeds in the given mode; returns the first error (feeding stops there).
static int feed(harness *h, const uint8_t *p, size_t n, int mode)
{
    if (mode == WHOLE)
        return kx_ws_recv(h->s, p, n);
    size_t off = 0;
    while (off < n) {
        size_t k = mode == BYTES ? 1 : 1 + (size_t)rand() % 7;
        if (k > n - off)
            k = n - off;
        int r = kx_ws_recv(h->s, p + off, k);
        if (r < 0)
            return r;
        off += k;
    }
    return 0;
}

// The close code of the last frame the server sent (must be a close), or 0
// for a close without code.
static int last_close_code(harness *h)
{
    size_t off = 0;
    static sframe f;
    int code = -1;
    while (next_sframe(&h->out, &off, &f)) {
        if (f.op == KX_WS_CLOSE)
            code = f.len >= 2 ? kx_get_be16(f.data) : 0;
        else
            code = -1;
    }
    return code;
}

// ---- handshake -----------------------------------------------------------------

static void accept_key(void **)
{
    char out[KX_WS_ACCEPT_LEN + 1];
    assert_int_equal(kx_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(kx_ws_accept_key("", out), -EINVAL);
    assert_int_equal(kx_ws_accept_key(nullptr, out), -EINVAL);
}

static void set_head(kx_http_head *h, const char *method, const kx_http_header *hd, size_t n)
{
    memset(h, 0, sizeof *h);
    snprintf(h->method, sizeof h->method, "%s", method);
    h->url = "/exec/default/demo/main?output=1";
    for (size_t i = 0; i < n; i++)
        h->headers[i] = hd[i];
    h->nheaders = n;
    h->upgrade = true;
}

static void handshake(void **)
{
    static kx_http_head h;
    char acc[KX_WS_ACCEPT_LEN + 1];
    kx_http_header good[] = {{"Upgrade", "websocket"},
                             {"Connection", "keep-alive, Upgrade"},
                             {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                             {"Sec-WebSocket-Version", "13"},
                             {"Sec-WebSocket-Protocol", "v5.channel.k8s.io"}};
    set_head(&h, "GET", good, 5);
    assert_int_equal(kx_ws_handshake_check(&h, acc), 0);
    assert_string_equal(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

    set_head(&h, "POST", good, 5);
    assert_int_equal(kx_ws_handshake_check(&h, acc), -EOPNOTSUPP);

    kx_http_header v8[] = {{"Upgrade", "WebSocket"}, {"Connection", "upgrade"},
                           {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                           {"Sec-WebSocket-Version", "8"}};
    set_head(&h, "GET", v8, 4);
    assert_int_equal(kx_ws_handshake_check(&h, acc), -EPROTONOSUPPORT);

    kx_http_header nokey[] = {{"Upgrade", "websocket"}, {"Connection", "upgrade"},
                              {"Sec-WebSocket-Version", "13"}};
    set_head(&h, "GET", nokey, 3);
    assert_int_equal(kx_ws_handshake_check(&h, acc), -EBADMSG);

    kx_http_header badkey[] = {{"Upgrade", "websocket"}, {"Connection", "upgrade"},
                               {"Sec-WebSocket-Key", "short=="}, {"Sec-WebSocket-Version", "13"}};
    set_head(&h, "GET", badkey, 4);
    assert_int_equal(kx_ws_handshake_check(&h, acc), -EBADMSG);

    kx_http_header twokeys[] = {{"Upgrade", "websocket"}, {"Connection", "upgrade"},
                                {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                                {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                                {"Sec-WebSocket-Version", "13"}};
    set_head(&h, "GET", twokeys, 5);
    assert_int_equal(kx_ws_handshake_check(&h, acc), -EBADMSG);

    kx_http_header spdy[] = {{"Upgrade", "SPDY/3.1"}, {"Connection", "upgrade"},
                             {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                             {"Sec-WebSocket-Version", "13"}};
    set_head(&h, "GET", spdy, 4);
    assert_int_equal(kx_ws_handshake_check(&h, acc), -EINVAL);

    kx_http_header noconn[] = {{"Upgrade", "websocket"}, {"Connection", "keep-alive"},
                               {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                               {"Sec-WebSocket-Version", "13"}};
    set_head(&h, "GET", noconn, 4);
    assert_int_equal(kx_ws_handshake_check(&h, acc), -EINVAL);
}

static void choose_protocol(void **)
{
    const char *sup[] = {"v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"};
    const char *cn[] = {"v5.channel.k8s.io,v4.channel.k8s.io,v3.channel.k8s.io,v2.channel.k8s.io,channel.k8s.io"};
    assert_int_equal(kx_ws_choose_protocol(cn, 1, sup, 3), 0);
    // Client order wins over ours; several lines; spaces trimmed.
    const char *lines[] = {nullptr, " foo ,\tchannel.k8s.io ", "v5.channel.k8s.io"};
    assert_int_equal(kx_ws_choose_protocol(lines, 3, sup, 3), 2);
    const char *none[] = {"xyz, v9.channel.k8s.io"};
    assert_int_equal(kx_ws_choose_protocol(none, 1, sup, 3), -ENOENT);
    const char *empty[] = {" , ,", ""};
    assert_int_equal(kx_ws_choose_protocol(empty, 2, sup, 3), -ENODATA);
    assert_int_equal(kx_ws_choose_protocol(nullptr, 0, sup, 3), -ENODATA);
    // Tokens are exact: no prefix or case match.
    const char *pre[] = {"V5.channel.k8s.io, v5.channel.k8s"};
    assert_int_equal(kx_ws_choose_protocol(pre, 1, sup, 3), -ENOENT);
}

// ---- framing -------------------------------------------------------------------

static void messages_any_split(void **)
{
    static uint8_t in[200000];
    static uint8_t big[70000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)('a' + i % 26);
    for (int mode = 0; mode < NMODES; mode++) {
        harness h;
        h_init(&h);
        size_t n = 0;
        n += cframe(in + n, true, KX_WS_BINARY, "\x00hello", 6);
        n += cframe(in + n, true, KX_WS_TEXT, "h\xc3\xa9", 3);    // UTF-8 text
        n += cframe(in + n, true, KX_WS_BINARY, "", 0);           // empty message
        n += cframe(in + n, true, KX_WS_BINARY, big, 300);        // 16-bit length
        n += cframe(in + n, true, KX_WS_BINARY, big, sizeof big); // 64-bit length
        assert_int_equal(feed(&h, in, n, mode), 0);
        char want[512];
        snprintf(want, sizeof want, "msg2:6:.hello;msg1:3:h..;msg2:0:;msg2:300:%.40s;msg2:70000:%.40s;",
                 (const char *)big, (const char *)big);
        assert_string_equal(h.log, want);
        assert_int_equal(h.out.len, 0);   // nothing to answer
        h_free(&h);
    }
}

static void fragments_and_ping(void **)
{
    for (int mode = 0; mode < NMODES; mode++) {
        harness h;
        h_init(&h);
        uint8_t in[512];
        size_t n = 0;
        n += cframe(in + n, false, KX_WS_BINARY, "\x00" "ab", 3);
        n += cframe(in + n, true, KX_WS_PING, "p1", 2);           // interleaved control
        n += cframe(in + n, false, KX_WS_CONT, "cd", 2);
        n += cframe(in + n, true, KX_WS_PONG, "", 0);             // ignored
        n += cframe(in + n, true, KX_WS_CONT, "ef", 2);
        n += cframe(in + n, true, KX_WS_PING, "", 0);
        assert_int_equal(feed(&h, in, n, mode), 0);
        assert_string_equal(h.log, "msg2:7:.abcdef;");
        size_t off = 0;
        static sframe f;
        assert_true(next_sframe(&h.out, &off, &f));
        assert_int_equal(f.op, KX_WS_PONG);
        assert_true(f.fin);
        assert_int_equal(f.len, 2);
        assert_memory_equal(f.data, "p1", 2);
        assert_true(next_sframe(&h.out, &off, &f));
        assert_int_equal(f.op, KX_WS_PONG);
        assert_int_equal(f.len, 0);
        assert_false(next_sframe(&h.out, &off, &f));
        h_free(&h);
    }
}

static void close_handshake_client_first(void **)
{
    for (int mode = 0; mode < NMODES; mode++) {
        harness h;
        h_init(&h);
        uint8_t in[256];
        size_t n = cframe(in, true, KX_WS_CLOSE, "\x03\xe8" "bye", 5);
        n += cframe(in + n, true, KX_WS_BINARY, "\x00late", 5);   // after close: dropped
        assert_int_equal(feed(&h, in, n, mode), 0);
        assert_string_equal(h.log, "close:1000;");
        assert_true(kx_ws_close_received(h.s));
        assert_true(kx_ws_close_sent(h.s));
        assert_int_equal(last_close_code(&h), 1000);   // echoed
        assert_int_equal(kx_ws_send(h.s, KX_WS_BINARY, nullptr, 0, (const uint8_t *)"x", 1), -EPIPE);
        assert_int_equal(kx_ws_close(h.s, 1000, nullptr), 0);
        h_free(&h);
    }
    // No code: reported as 1005, answered with an empty close.
    harness h;
    h_init(&h);
    uint8_t in[16];
    size_t n = cframe(in, true, KX_WS_CLOSE, "", 0);
    assert_int_equal(kx_ws_recv(h.s, in, n), 0);
    assert_string_equal(h.log, "close:1005;");
    assert_int_equal(last_close_code(&h), 0);
    h_free(&h);
}

static void close_handshake_server_first(void **)
{
    harness h;
    h_init(&h);
    assert_int_equal(kx_ws_send(h.s, KX_WS_BINARY, (const uint8_t *)"\x03", 1,
                                (const uint8_t *)"{}", 2), 0);
    assert_int_equal(kx_ws_close(h.s, 1000, "done"), 0);
    assert_int_equal(kx_ws_close(h.s, 1000, "again"), 0);   // idempotent
    assert_int_equal(kx_ws_close(h.s, 1005, nullptr), -EINVAL);
    size_t off = 0;
    static sframe f;
    assert_true(next_sframe(&h.out, &off, &f));
    assert_int_equal(f.op, KX_WS_BINARY);
    assert_memory_equal(f.data, "\x03{}", 3);
    assert_true(next_sframe(&h.out, &off, &f));
    assert_int_equal(f.op, KX_WS_CLOSE);
    assert_memory_equal(f.data, "\x03\xe8" "done", 6);
    assert_false(next_sframe(&h.out, &off, &f));
    // Data after our close is dropped, pings are not answered; the peer's
    // close is still reported and not answered again.
    uint8_t in[64];
    size_t n = cframe(in, true, KX_WS_BINARY, "zz", 2);
    n += cframe(in + n, true, KX_WS_PING, "p", 1);
    n += cframe(in + n, true, KX_WS_CLOSE, "\x03\xe8", 2);
    assert_int_equal(kx_ws_recv(h.s, in, n), 0);
    assert_string_equal(h.log, "close:1000;");
    assert_false(next_sframe(&h.out, &off, &f));
    h_free(&h);
}

static void expect_error(const uint8_t *in, size_t n, int err, int code, size_t max = 0)
{
    for (int mode = 0; mode < NMODES; mode++) {
        harness h;
        h_init(&h, max);
        assert_int_equal(feed(&h, in, n, mode), err);
        assert_int_equal(last_close_code(&h), code);
        // Dead afterwards: more input is discarded.
        uint8_t more[16];
        size_t m = cframe(more, true, KX_WS_PING, "x", 1);
        size_t before = h.out.len;
        assert_int_equal(kx_ws_recv(h.s, more, m), 0);
        assert_int_equal(h.out.len, before);
        h_free(&h);
    }
}

static void protocol_errors(void **)
{
    uint8_t in[512];
    size_t n;
    n = cframe(in, true, KX_WS_BINARY, "hi", 2, true);                   // unmasked
    expect_error(in, n, -EPROTO, 1002);
    n = cframe(in, true, KX_WS_CONT, "hi", 2);                           // no message
    expect_error(in, n, -EPROTO, 1002);
    n = cframe(in, false, KX_WS_BINARY, "a", 1);                         // data inside fragmented
    n += cframe(in + n, true, KX_WS_TEXT, "b", 1);
    expect_error(in, n, -EPROTO, 1002);
    n = cframe(in, false, KX_WS_PING, "a", 1);                           // fragmented control
    expect_error(in, n, -EPROTO, 1002);
    static uint8_t big[200];
    memset(big, 'x', sizeof big);
    n = cframe(in, true, KX_WS_PING, big, 126);                          // control > 125
    expect_error(in, n, -EPROTO, 1002);
    n = cframe(in, true, KX_WS_BINARY, "a", 1, false, 4);                // RSV1 (no extension)
    expect_error(in, n, -EPROTO, 1002);
    n = cframe(in, true, 0x3, "a", 1);                                   // reserved opcode
    expect_error(in, n, -EPROTO, 1002);
    n = cframe(in, true, 0xb, "a", 1);                                   // reserved control
    expect_error(in, n, -EPROTO, 1002);
    n = cframe(in, true, KX_WS_CLOSE, "\x03", 1);                        // 1-byte close
    expect_error(in, n, -EPROTO, 1002);
    n = cframe(in, true, KX_WS_CLOSE, "\x03\xed", 2);                    // 1005 on the wire
    expect_error(in, n, -EPROTO, 1002);
    n = cframe(in, true, KX_WS_TEXT, "\xc3\x28", 2);                     // bad UTF-8
    expect_error(in, n, -EILSEQ, 1007);
    n = cframe(in, true, KX_WS_TEXT, "\xed\xa0\x80", 3);                 // surrogate
    expect_error(in, n, -EILSEQ, 1007);
    n = cframe(in, true, KX_WS_CLOSE, "\x03\xe8\xff", 3);                // bad reason
    expect_error(in, n, -EILSEQ, 1007);
    // 64-bit length with the top bit set.
    uint8_t huge[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
    expect_error(huge, sizeof huge, -EPROTO, 1002);
}

static void too_big(void **)
{
    uint8_t in[512];
    static uint8_t big[100];
    size_t n = cframe(in, true, KX_WS_BINARY, big, 17);
    expect_error(in, n, -EMSGSIZE, 1009, 16);
    // Fragments count together.
    n = cframe(in, false, KX_WS_BINARY, big, 10);
    n += cframe(in + n, true, KX_WS_CONT, big, 7);
    expect_error(in, n, -EMSGSIZE, 1009, 16);
    // Exactly the limit is fine.
    harness h;
    h_init(&h, 16);
    n = cframe(in, false, KX_WS_BINARY, big, 10);
    n += cframe(in + n, true, KX_WS_CONT, big, 6);
    assert_int_equal(kx_ws_recv(h.s, in, n), 0);
    assert_int_equal(h.log_len, strlen("msg2:16:") + 16 + 1);
    h_free(&h);
    // A header announcing a huge frame fails with its first payload byte
    // (wslay reports a frame with its data), before anything is buffered.
    uint8_t hdr[] = {0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4, 'x'};
    expect_error(hdr, sizeof hdr, -EMSGSIZE, 1009);
}

static void send_lengths(void **)
{
    static uint8_t data[70000];
    const size_t sizes[] = {0, 1, 124, 125, 126, 65535, 65536, 69999};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        harness h;
        h_init(&h);
        size_t n = sizes[si];
        for (size_t i = 0; i < n; i++)
            data[i] = (uint8_t)i;
        assert_int_equal(kx_ws_send(h.s, KX_WS_BINARY, (const uint8_t *)"\x01", 1, data, n), 0);
        size_t off = 0;
        static sframe f;
        assert_true(next_sframe(&h.out, &off, &f));
        assert_int_equal(off, h.out.len);
        assert_int_equal(f.len, n + 1);
        assert_int_equal(f.data[0], 1);
        assert_memory_equal(f.data + 1, data, n);
        // Minimal length encoding.
        size_t hl = h.out.len - f.len;
        assert_int_equal(hl, n + 1 < 126 ? 2 : n + 1 <= 0xffff ? 4 : 10);
        h_free(&h);
    }
    harness h;
    h_init(&h);
    assert_int_equal(kx_ws_send(h.s, KX_WS_PING, nullptr, 0, nullptr, 0), -EINVAL);
    assert_int_equal(kx_ws_ping(h.s, data, 126), -EINVAL);
    assert_int_equal(kx_ws_ping(h.s, (const uint8_t *)"k", 1), 0);
    size_t off = 0;
    static sframe f;
    assert_true(next_sframe(&h.out, &off, &f));
    assert_int_equal(f.op, KX_WS_PING);
    h_free(&h);
}

static int fail_send(void *, const uint8_t *, size_t, const uint8_t *, size_t)
{
    return -EPIPE;
}

static void send_errors_propagate(void **)
{
    kx_ws_callbacks cb = {fail_send, nullptr, nullptr};
    kx_ws_session *s = kx_ws_new(&cb, nullptr, 0);
    assert_non_null(s);
    uint8_t in[32];
    size_t n = cframe(in, true, KX_WS_PING, "a", 1);
    assert_int_equal(kx_ws_recv(s, in, n), -EPIPE);
    kx_ws_free(s);
    kx_ws_callbacks bad = {nullptr, nullptr, nullptr};
    assert_null(kx_ws_new(&bad, nullptr, 0));
    assert_null(kx_ws_new(nullptr, nullptr, 0));
}

// ---- client role ----------------------------------------------------------------

// What a client session sends, fed to a server session (whole, byte by byte,
// random splits): prefix + payload arrive intact for every length class, and
// every frame on the wire is masked with a key that differs between frames.
static void client_to_server_any_split(void **)
{
    static uint8_t big[70000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7 + 3);
    const size_t lens[] = {0, 1, 7, 8, 9, 124, 125, 126, 65535, 65536, 69999};
    for (int mode = 0; mode < NMODES; mode++) {
        harness cl, sv;
        memset(&cl, 0, sizeof cl);
        cl.s = kx_ws_new_client(&hcb, &cl, 0);
        assert_non_null(cl.s);
        h_init(&sv);
        const uint8_t ch = 1;
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
            assert_int_equal(kx_ws_send(cl.s, KX_WS_BINARY, &ch, 1, big, lens[li]), 0);
        // Masked, and not all with the same key.
        size_t off = 0, frames = 0;
        uint8_t first_key[4] = {0};
        bool keys_differ = false;
        while (off < cl.out.len) {
            const uint8_t *q = cl.out.data + off;
            assert_int_equal(q[1] & 0x80, 0x80);
            uint64_t len = q[1] & 0x7f;
            size_t hl = 2;
            if (len == 126) {
                len = kx_get_be16(q + 2);
                hl = 4;
            } else if (len == 127) {
                len = ((uint64_t)kx_get_be32(q + 2) << 32) | kx_get_be32(q + 6);
                hl = 10;
            }
            if (frames == 0)
                memcpy(first_key, q + hl, 4);
            else if (memcmp(first_key, q + hl, 4) != 0)
                keys_differ = true;
            off += hl + 4 + len;
            frames++;
        }
        assert_int_equal(off, cl.out.len);
        assert_int_equal(frames, sizeof lens / sizeof lens[0]);
        assert_true(keys_differ);
        assert_int_equal(feed(&sv, cl.out.data, cl.out.len, mode), 0);
        // Every message: channel byte then the first len bytes of big.
        char want[8192] = "";
        size_t wl = 0;
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            char shown[41];
            size_t n = lens[li] + 1, k = n > 40 ? 40 : n;
            for (size_t i = 0; i < k; i++) {
                uint8_t b = i == 0 ? 1 : big[i - 1];
                shown[i] = b >= 0x20 && b < 0x7f ? (char)b : '.';
            }
            shown[k] = 0;
            wl += (size_t)snprintf(want + wl, sizeof want - wl, "msg2:%zu:%s;", n, shown);
        }
        assert_string_equal(sv.log, want);
        kx_ws_free(cl.s);
        kx_buf_free(&cl.out);
        h_free(&sv);
    }
}

// What a server session sends reaches a client session intact in any split;
// the client answers a ping with a masked pong and a close with a masked close.
static void server_to_client_any_split(void **)
{
    for (int mode = 0; mode < NMODES; mode++) {
        harness cl, sv;
        h_init(&sv);
        memset(&cl, 0, sizeof cl);
        cl.s = kx_ws_new_client(&hcb, &cl, 0);
        const uint8_t ch = 3;
        assert_int_equal(kx_ws_send(sv.s, KX_WS_BINARY, &ch, 1, (const uint8_t *)"status", 6), 0);
        assert_int_equal(kx_ws_ping(sv.s, (const uint8_t *)"pp", 2), 0);
        assert_int_equal(kx_ws_close(sv.s, KX_WS_NORMAL, "bye"), 0);
        assert_int_equal(feed(&cl, sv.out.data, sv.out.len, mode), 0);
        assert_string_equal(cl.log, "msg2:7:.status;close:1000;");
        assert_true(kx_ws_close_received(cl.s));
        // The client's answers (pong, close) are valid client frames.
        harness sv2;
        h_init(&sv2);
        assert_int_equal(feed(&sv2, cl.out.data, cl.out.len, mode), 0);
        assert_string_equal(sv2.log, "close:1000;");
        kx_ws_free(cl.s);
        kx_buf_free(&cl.out);
        h_free(&sv);
        h_free(&sv2);
    }
}

// A client refuses masked frames (RFC 6455 5.1) with close 1002.
static void client_refuses_masked(void **)
{
    harness cl;
    memset(&cl, 0, sizeof cl);
    cl.s = kx_ws_new_client(&hcb, &cl, 0);
    uint8_t in[64];
    size_t n = cframe(in, true, KX_WS_BINARY, "\x01hi", 3);   // masked
    assert_int_equal(kx_ws_recv(cl.s, in, n), -EPROTO);
    assert_string_equal(cl.log, "");
    // Its close frame is itself masked: a server session accepts it.
    harness sv;
    h_init(&sv);
    assert_int_equal(kx_ws_recv(sv.s, cl.out.data, cl.out.len), 0);
    assert_string_equal(sv.log, "close:1002;");
    kx_ws_free(cl.s);
    kx_buf_free(&cl.out);
    h_free(&sv);
}

// The client's key and the check of the server's 101.
static void client_handshake(void **)
{
    char key[KX_WS_KEY_LEN + 1], key2[KX_WS_KEY_LEN + 1], acc[KX_WS_ACCEPT_LEN + 1];
    assert_int_equal(kx_ws_client_key(key), 0);
    assert_int_equal(kx_ws_client_key(key2), 0);
    assert_int_equal(strlen(key), KX_WS_KEY_LEN);
    assert_string_not_equal(key, key2);
    assert_int_equal(kx_ws_accept_key(key, acc), 0);
    kx_http_head h;
    kx_http_header ok[] = {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
                           {"Sec-WebSocket-Accept", acc}};
    set_head(&h, "", ok, 3);
    h.status = 101;
    assert_int_equal(kx_ws_client_check(&h, key), 0);
    h.status = 200;
    assert_int_equal(kx_ws_client_check(&h, key), -EPROTO);
    kx_http_header wrong[] = {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
                              {"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}};
    set_head(&h, "", wrong, 3);
    h.status = 101;
    assert_int_equal(kx_ws_client_check(&h, key), -EPROTO);
    kx_http_header noup[] = {{"Connection", "Upgrade"}, {"Sec-WebSocket-Accept", acc}};
    set_head(&h, "", noup, 2);
    h.status = 101;
    assert_int_equal(kx_ws_client_check(&h, key), -EPROTO);
}

int main(void)
{
    srand(42);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accept_key),
        cmocka_unit_test(handshake),
        cmocka_unit_test(choose_protocol),
        cmocka_unit_test(messages_any_split),
        cmocka_unit_test(fragments_and_ping),
        cmocka_unit_test(close_handshake_client_first),
        cmocka_unit_test(close_handshake_server_first),
        cmocka_unit_test(protocol_errors),
        cmocka_unit_test(too_big),
        cmocka_unit_test(send_lengths),
        cmocka_unit_test(send_errors_propagate),
        cmocka_unit_test(client_to_server_any_split),
        cmocka_unit_test(server_to_client_any_split),
        cmocka_unit_test(client_refuses_masked),
        cmocka_unit_test(client_handshake),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
