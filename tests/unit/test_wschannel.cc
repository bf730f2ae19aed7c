// Unit tests for kubexec/wschannel.h: channel.k8s.io over WebSocket, the way
// kubectl (v5), the JS/python clients (v4, base64) and old clients (v1) use
// it. Client frames are masked; inputs are fed whole, byte by byte and at
// random splits.
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
#include "kubexec/wschannel.h"

enum feed_mode { WHOLE, BYTES, RANDOM, NMODES };

static size_t cframe(uint8_t *out, bool fin, int op, const void *payload, size_t n)
{
    static const uint8_t key[4] = {0xa1, 0x02, 0xc3, 0x44};
    size_t l = 0;
    out[l++] = (uint8_t)((fin ? 0x80 : 0) | op);
    if (n < 126) {
        out[l++] = (uint8_t)(0x80 | n);
    } else {
        out[l++] = 0x80 | 126;
        kx_put_be16(out + l, (uint16_t)n);
        l += 2;
    }
    memcpy(out + l, key, 4);
    l += 4;
    const uint8_t *p = (const uint8_t *)payload;
    for (size_t i = 0; i < n; i++)
        out[l + i] = (uint8_t)(p[i] ^ key[i % 4]);
    return l + n;
}

struct sframe {
    int op;
    uint8_t data[40000];
    size_t len;
};

static bool next_sframe(const kx_buf *b, size_t *off, sframe *f)
{
    size_t o = *off;
    if (b->len - o < 2)
        return false;
    const uint8_t *p = b->data + o;
    assert_int_equal(p[0] & 0x80, 0x80);
    assert_int_equal(p[1] & 0x80, 0);
    f->op = p[0] & 0xf;
    size_t len = p[1] & 0x7f, hl = 2;
    if (len == 126) {
        len = kx_get_be16(p + 2);
        hl = 4;
    }
    assert_true(len != 127);
    if (b->len - o < hl + len)
        return false;
    memcpy(f->data, p + hl, len);
    f->len = len;
    *off = o + hl + len;
    return true;
}

struct harness {
    kx_wsch_session *s;
    kx_buf out;
    kx_buf in;            // stdin the "process" got
    char log[4096];
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
    assert_int_equal(kx_buf_append(&h->out, hdr, hl, 1 << 24), 0);
    if (pl)
        assert_int_equal(kx_buf_append(&h->out, p, pl, 1 << 24), 0);
    return 0;
}
static void h_ready(void *u)
{
    logf((harness *)u, "ready;");
}
static void h_stdin(void *u, const uint8_t *p, size_t n)
{
    harness *h = (harness *)u;
    assert_int_equal(kx_buf_append(&h->in, p, n, 1 << 24), 0);
}
static void h_eof(void *u)
{
    harness *h = (harness *)u;
    logf(h, "eof@%zu;", h->in.len);
}
static void h_resize(void *u, uint16_t c, uint16_t r)
{
    logf((harness *)u, "resize %ux%u;", c, r);
}
static void h_goaway(void *u)
{
    logf((harness *)u, "goaway;");
}

static const kx_wsch_callbacks hcb = {h_send, h_ready, h_stdin, h_eof, h_resize, h_goaway};

static void h_init(harness *h, bool in, bool out, bool err, bool tty, int ver, bool b64)
{
    memset(h, 0, sizeof *h);
    kx_wsch_opts o = {in, out, err, tty, {ver, b64}};
    h->s = kx_wsch_new(&o, &hcb, h);
    assert_non_null(h->s);
}

static void h_free(harness *h)
{
    kx_wsch_free(h->s);
    kx_buf_free(&h->out);
    kx_buf_free(&h->in);
}

static int feed(harness *h, const uint8_t *p, size_t n, int mode)
{
    if (mode == WHOLE)
        return kx_wsch_recv(h->s, p, n);
    for (size_t off = 0; off < n;) {
        size_t k = mode == BYTES ? 1 : 1 + (size_t)rand() % 9;
        if (k > n - off)
            k = n - off;
        int r = kx_wsch_recv(h->s, p + off, k);
        if (r < 0)
            return r;
        off += k;
    }
    return 0;
}

static void negotiate(void **)
{
    kx_wsch_proto p;
    const char *name;
    const char *k[] = {"v5.channel.k8s.io"};
    assert_int_equal(kx_wsch_negotiate(k, 1, &p, &name), 0);
    assert_int_equal(p.version, KX_RC_V5);
    assert_false(p.base64);
    assert_string_equal(name, "v5.channel.k8s.io");
    const char *cn[] = {"v5.channel.k8s.io,v4.channel.k8s.io,v3.channel.k8s.io,v2.channel.k8s.io,channel.k8s.io"};
    assert_int_equal(kx_wsch_negotiate(cn, 1, &p, &name), 0);
    assert_string_equal(name, "v5.channel.k8s.io");
    const char *py[] = {"v4.base64.channel.k8s.io", "v4.channel.k8s.io"};
    assert_int_equal(kx_wsch_negotiate(py, 2, &p, &name), 0);
    assert_int_equal(p.version, KX_RC_V4);
    assert_true(p.base64);
    assert_string_equal(name, "v4.base64.channel.k8s.io");
    const char *b1[] = {"base64.channel.k8s.io"};
    assert_int_equal(kx_wsch_negotiate(b1, 1, &p, &name), 0);
    assert_int_equal(p.version, KX_RC_V1);
    assert_true(p.base64);
    const char *pf[] = {"SPDY/3.1+portforward.k8s.io"};
    assert_int_equal(kx_wsch_negotiate(pf, 1, &p, &name), -ENOENT);
    assert_int_equal(kx_wsch_negotiate(nullptr, 0, &p, &name), -ENODATA);
    assert_int_equal(p.version, KX_RC_V1);
    assert_null(name);
}

// kubectl ≥ 1.30: stdin (some before start), [255,0], output, status, close.
static void v5_exec_session(void **)
{
    for (int mode = 0; mode < NMODES; mode++) {
        harness h;
        h_init(&h, true, true, true, false, KX_RC_V5, false);
        uint8_t in[4096];
        size_t n = cframe(in, true, KX_WS_BINARY, "\x00" "early ", 7);
        assert_int_equal(feed(&h, in, n, mode), 0);
        assert_int_equal(h.in.len, 0);            // held until start
        kx_wsch_start(h.s);
        kx_wsch_start(h.s);                        // idempotent
        assert_string_equal(h.log, "ready;");
        assert_int_equal(h.in.len, 6);
        n = cframe(in, true, KX_WS_BINARY, "\x00" "hello\n", 7);
        n += cframe(in + n, true, KX_WS_BINARY, "", 0);            // ignored
        n += cframe(in + n, true, KX_WS_BINARY, "\x04{\"Width\":1,\"Height\":2}\n", 25); // no tty: ignored
        n += cframe(in + n, true, KX_WS_BINARY, "\x09zz", 3);      // unknown channel
        n += cframe(in + n, true, KX_WS_BINARY, "\xff\x04", 2);    // close resize: ignored
        n += cframe(in + n, true, KX_WS_BINARY, "\xff\x00", 2);    // stdin EOF
        n += cframe(in + n, true, KX_WS_BINARY, "\x00late", 5);    // after EOF: dropped
        n += cframe(in + n, true, KX_WS_PING, "pp", 2);
        assert_int_equal(feed(&h, in, n, mode), 0);
        assert_string_equal(h.log, "ready;eof@12;");
        assert_int_equal(h.in.len, 12);
        assert_memory_equal(h.in.data, "early hello\n", 12);

        assert_int_equal(kx_wsch_stdout(h.s, (const uint8_t *)"out", 3), 0);
        assert_int_equal(kx_wsch_stderr(h.s, (const uint8_t *)"err", 3), 0);
        static uint8_t big[40000];
        memset(big, 'b', sizeof big);
        assert_int_equal(kx_wsch_stdout(h.s, big, sizeof big), 0);
        assert_int_equal(kx_wsch_finish(h.s, 42, nullptr), 0);
        assert_int_equal(kx_wsch_finish(h.s, 0, nullptr), 0);      // idempotent
        assert_int_equal(kx_wsch_stdout(h.s, (const uint8_t *)"x", 1), 0);  // dropped

        size_t off = 0;
        static sframe f;
        assert_true(next_sframe(&h.out, &off, &f));
        assert_int_equal(f.op, KX_WS_PONG);
        assert_true(next_sframe(&h.out, &off, &f));
        assert_int_equal(f.op, KX_WS_BINARY);
        assert_memory_equal(f.data, "\x01out", 4);
        assert_true(next_sframe(&h.out, &off, &f));
        assert_memory_equal(f.data, "\x02" "err", 4);
        assert_true(next_sframe(&h.out, &off, &f));           // 32 KiB + 1
        assert_int_equal(f.len, KX_WSCH_MAX_OUT + 1);
        assert_int_equal(f.data[0], 1);
        assert_true(next_sframe(&h.out, &off, &f));
        assert_int_equal(f.len, sizeof big - KX_WSCH_MAX_OUT + 1);
        assert_true(next_sframe(&h.out, &off, &f));
        assert_int_equal(f.op, KX_WS_BINARY);
        char want[KX_RC_MAX_STATUS];
        int wl = kx_rc_status_json(want, sizeof want, 42, nullptr);
        assert_int_equal(f.len, (size_t)wl + 1);
        assert_int_equal(f.data[0], 3);
        assert_memory_equal(f.data + 1, want, (size_t)wl);
        assert_true(next_sframe(&h.out, &off, &f));
        assert_int_equal(f.op, KX_WS_CLOSE);
        assert_int_equal(f.len, 2);
        assert_int_equal(kx_get_be16(f.data), 1000);
        assert_false(next_sframe(&h.out, &off, &f));
        assert_false(kx_wsch_closed(h.s));
        // The client answers the close.
        n = cframe(in, true, KX_WS_CLOSE, "\x03\xe8", 2);
        assert_int_equal(feed(&h, in, n, mode), 0);
        assert_true(kx_wsch_closed(h.s));
        assert_string_equal(h.log, "ready;eof@12;goaway;");
        assert_false(next_sframe(&h.out, &off, &f));          // no second close
        h_free(&h);
    }
}

static void tty_resize_split(void **)
{
    for (int mode = 0; mode < NMODES; mode++) {
        harness h;
        h_init(&h, true, true, true, true, KX_RC_V5, false);
        kx_wsch_start(h.s);
        uint8_t in[1024];
        size_t n = cframe(in, true, KX_WS_BINARY, "\x04{\"Width\":", 10);
        n += cframe(in + n, true, KX_WS_BINARY, "\x04" "80,\"height\":24}\n{\"Width\":100,", 31);
        n += cframe(in + n, true, KX_WS_BINARY, "\x04\"Height\":0}\n", 14);  // zero: ignored
        n += cframe(in + n, true, KX_WS_BINARY, "\x04garbage\n{\"Width\":120,\"Height\":40}\n", 36);
        n += cframe(in + n, true, KX_WS_BINARY, "\x04{\"Width\":-1,\"Height\":5}\n", 26);
        assert_int_equal(feed(&h, in, n, mode), 0);
        assert_string_equal(h.log, "ready;resize 80x24;resize 120x40;");
        // With tty there is no stderr channel.
        assert_int_equal(kx_wsch_stderr(h.s, (const uint8_t *)"e", 1), 0);
        assert_int_equal(h.out.len, 0);
        h_free(&h);
    }
}

// v4 (python/JS clients): 255 is just an unknown channel, no EOF signal.
static void v4_no_close_signal(void **)
{
    harness h;
    h_init(&h, true, true, false, false, KX_RC_V4, false);
    kx_wsch_start(h.s);
    uint8_t in[256];
    size_t n = cframe(in, true, KX_WS_BINARY, "\xff\x00", 2);
    n += cframe(in + n, true, KX_WS_BINARY, "\xff\x00\x01", 3);
    n += cframe(in + n, true, KX_WS_BINARY, "\x00" "abc", 4);
    assert_int_equal(kx_wsch_recv(h.s, in, n), 0);
    assert_string_equal(h.log, "ready;");
    assert_int_equal(h.in.len, 3);
    assert_int_equal(kx_wsch_stderr(h.s, (const uint8_t *)"e", 1), 0);  // not requested
    assert_int_equal(h.out.len, 0);
    assert_int_equal(kx_wsch_finish(h.s, 0, nullptr), 0);
    size_t off = 0;
    static sframe f;
    assert_true(next_sframe(&h.out, &off, &f));
    assert_int_equal(f.data[0], 3);
    assert_memory_equal(f.data + 1, "{\"metadata\":{},\"status\":\"Success\"}", f.len - 1);
    assert_true(next_sframe(&h.out, &off, &f));
    assert_int_equal(f.op, KX_WS_CLOSE);
    h_free(&h);
}

static void v5_bad_close_signal(void **)
{
    const char *bad[] = {"\xff", "\xff\x00\x00", "\xff\x05"};
    const size_t len[] = {1, 3, 2};
    for (int i = 0; i < 3; i++) {
        harness h;
        h_init(&h, true, true, true, false, KX_RC_V5, false);
        kx_wsch_start(h.s);
        uint8_t in[64];
        size_t n = cframe(in, true, KX_WS_BINARY, bad[i], len[i]);
        assert_int_equal(kx_wsch_recv(h.s, in, n), -EPROTO);
        size_t off = 0;
        static sframe f;
        assert_true(next_sframe(&h.out, &off, &f));
        assert_int_equal(f.op, KX_WS_CLOSE);
        assert_int_equal(kx_get_be16(f.data), 1002);
        assert_int_equal(kx_wsch_recv(h.s, in, n), -EPROTO);   // stays failed
        h_free(&h);
    }
}

static void base64_variant(void **)
{
    for (int mode = 0; mode < NMODES; mode++) {
        harness h;
        h_init(&h, true, true, true, false, KX_RC_V4, true);
        kx_wsch_start(h.s);
        uint8_t in[256];
        size_t n = cframe(in, true, KX_WS_TEXT, "0aGk=", 5);         // "hi"
        n += cframe(in + n, true, KX_WS_TEXT, "0IQ==", 5);           // "!"
        n += cframe(in + n, true, KX_WS_TEXT, "0", 1);               // empty
        assert_int_equal(feed(&h, in, n, mode), 0);
        assert_int_equal(h.in.len, 3);
        assert_memory_equal(h.in.data, "hi!", 3);
        assert_int_equal(kx_wsch_stdout(h.s, (const uint8_t *)"hi", 2), 0);
        assert_int_equal(kx_wsch_stderr(h.s, (const uint8_t *)"abc", 3), 0);
        assert_int_equal(kx_wsch_finish(h.s, 0, nullptr), 0);
        size_t off = 0;
        static sframe f;
        assert_true(next_sframe(&h.out, &off, &f));
        assert_int_equal(f.op, KX_WS_TEXT);
        assert_int_equal(f.len, 5);
        assert_memory_equal(f.data, "1aGk=", 5);
        assert_true(next_sframe(&h.out, &off, &f));
        assert_memory_equal(f.data, "2YWJj", 5);
        assert_true(next_sframe(&h.out, &off, &f));
        assert_int_equal(f.op, KX_WS_TEXT);
        // base64 of {"metadata":{},"status":"Success"}
        const char want[] = "3eyJtZXRhZGF0YSI6e30sInN0YXR1cyI6IlN1Y2Nlc3MifQ==";
        assert_int_equal(f.len, sizeof want - 1);
        assert_memory_equal(f.data, want, sizeof want - 1);
        assert_true(next_sframe(&h.out, &off, &f));
        assert_int_equal(f.op, KX_WS_CLOSE);
        h_free(&h);
    }
    const char *bad[] = {"x", "0a", "0a=Gk", "0!!!!"};
    for (int i = 0; i < 4; i++) {
        harness h;
        h_init(&h, true, true, true, false, KX_RC_V4, true);
        kx_wsch_start(h.s);
        uint8_t in[64];
        size_t n = cframe(in, true, KX_WS_TEXT, bad[i], strlen(bad[i]));
        assert_int_equal(kx_wsch_recv(h.s, in, n), -EILSEQ);
        size_t off = 0;
        static sframe f;
        assert_true(next_sframe(&h.out, &off, &f));
        assert_int_equal(kx_get_be16(f.data), 1007);
        h_free(&h);
    }
}

static void v1_text_status(void **)
{
    harness h;
    h_init(&h, false, true, true, false, KX_RC_V1, false);
    kx_wsch_start(h.s);
    assert_int_equal(kx_wsch_finish(h.s, 256, nullptr), -EINVAL);
    assert_int_equal(h.out.len, 0);
    assert_int_equal(kx_wsch_finish(h.s, 3, nullptr), 0);
    size_t off = 0;
    static sframe f;
    assert_true(next_sframe(&h.out, &off, &f));
    const char want[] = "\x03" "command terminated with non-zero exit code: exit status 3";
    assert_int_equal(f.len, sizeof want - 1);
    assert_memory_equal(f.data, want, sizeof want - 1);
    h_free(&h);
    // Success: no status at all, just the close.
    h_init(&h, false, true, true, false, KX_RC_V2, false);
    assert_int_equal(kx_wsch_finish(h.s, 0, nullptr), 0);
    off = 0;
    assert_true(next_sframe(&h.out, &off, &f));
    assert_int_equal(f.op, KX_WS_CLOSE);
    h_free(&h);
}

static void errmsg_status_and_client_close(void **)
{
    harness h;
    h_init(&h, true, true, true, false, KX_RC_V5, false);
    kx_wsch_start(h.s);
    static char longmsg[3000];
    memset(longmsg, 'm', sizeof longmsg - 1);
    assert_int_equal(kx_wsch_finish(h.s, 0, longmsg), 0);
    size_t off = 0;
    static sframe f;
    assert_true(next_sframe(&h.out, &off, &f));
    assert_int_equal(f.data[0], 3);
    assert_true(f.len < KX_RC_MAX_STATUS + 1);
    assert_non_null(memmem(f.data, f.len, "InternalError", 13));
    h_free(&h);

    // Client leaves first (client-node v4 closes at stdin EOF): goaway, the
    // close is echoed, finish then sends nothing more.
    h_init(&h, true, true, true, false, KX_RC_V4, false);
    kx_wsch_start(h.s);
    uint8_t in[32];
    size_t n = cframe(in, true, KX_WS_CLOSE, "", 0);
    assert_int_equal(kx_wsch_recv(h.s, in, n), 0);
    assert_string_equal(h.log, "ready;goaway;");
    assert_true(kx_wsch_closed(h.s));
    size_t before = h.out.len;
    assert_int_equal(kx_wsch_stdout(h.s, (const uint8_t *)"x", 1), 0);
    assert_int_equal(kx_wsch_finish(h.s, 1, nullptr), 0);
    assert_int_equal(h.out.len, before);
    h_free(&h);
}

static void early_stdin_limit(void **)
{
    harness h;
    h_init(&h, true, true, false, false, KX_RC_V5, false);
    static uint8_t msg[KX_RC_MAX_EARLY_STDIN / 2 + 8];
    static uint8_t in[sizeof msg + 16];
    size_t n = cframe(in, true, KX_WS_BINARY, msg, sizeof msg);
    assert_int_equal(kx_wsch_recv(h.s, in, n), 0);
    assert_int_equal(kx_wsch_recv(h.s, in, n), -EMSGSIZE);
    size_t off = 0;
    static sframe f;
    assert_true(next_sframe(&h.out, &off, &f));
    assert_int_equal(kx_get_be16(f.data), 1008);
    h_free(&h);
    kx_wsch_opts o = {true, true, true, false, {6, false}};
    assert_null(kx_wsch_new(&o, &hcb, nullptr));
}

int main(void)
{
    srand(7);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(negotiate),
        cmocka_unit_test(v5_exec_session),
        cmocka_unit_test(tty_resize_split),
        cmocka_unit_test(v4_no_close_signal),
        cmocka_unit_test(v5_bad_close_signal),
        cmocka_unit_test(base64_variant),
        cmocka_unit_test(v1_text_status),
        cmocka_unit_test(errmsg_status_and_client_close),
        cmocka_unit_test(early_stdin_limit),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
