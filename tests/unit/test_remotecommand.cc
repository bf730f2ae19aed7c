// Unit tests for kubexec/remotecommand.h: a client-role kx_spdy_session plays
// kubectl against a kx_rc_session, with every byte stream fed whole, byte by
// byte and at random split points.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
// cmocka.h has no extern "C" guard of its own.
extern "C" {
#include <cmocka.h>
}

#include "kubexec/remotecommand.h"
#include "kubexec/spdy.h"
#include "kubexec/util.h"

enum feed_mode { WHOLE, BYTES, RANDOM, NMODES };

struct harness {
    int mode;
    kx_rc_session *rc;
    kx_spdy_session *c;  // kubectl
    kx_buf c2s, s2c;
    char clog[4096];     // client-side SPDY events
    size_t clog_len;
    kx_buf cdata[16];    // DATA the client received, per stream id
    char rlog[4096];     // rc events (ready, stdin eof, resize, goaway)
    size_t rlog_len;
    kx_buf in;           // stdin bytes the "process" got
    int finish_in_ready; // if >= 0, on_ready calls kx_rc_finish(exit)
};

static void appendf(char *buf, size_t *len, size_t cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void appendf(char *buf, size_t *len, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < cap - *len);
    *len += (size_t)n;
}
#define CLOG(h, ...) appendf((h)->clog, &(h)->clog_len, sizeof (h)->clog, __VA_ARGS__)
#define RLOG(h, ...) appendf((h)->rlog, &(h)->rlog_len, sizeof (h)->rlog, __VA_ARGS__)

static uint32_t rng_state = 1;
static uint32_t rnd(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

// ---- client (kubectl) callbacks ----

static int c_send(void *u, const uint8_t *h, size_t hl, const uint8_t *p, size_t n)
{
    harness *t = (harness *)u;
    assert_int_equal(kx_buf_append(&t->c2s, h, hl, 1 << 24), 0);
    if (n)
        assert_int_equal(kx_buf_append(&t->c2s, p, n, 1 << 24), 0);
    return 0;
}
static void c_stream(void *u, uint32_t id, const kx_spdy_nv *, size_t n, bool)
{
    CLOG((harness *)u, "S%u/%zu\n", id, n);
}
static void c_reply(void *u, uint32_t id, const kx_spdy_nv *, size_t n, bool fin)
{
    CLOG((harness *)u, "R%u/%zu%s\n", id, n, fin ? "f" : "");
}
static void c_data(void *u, uint32_t id, const uint8_t *p, size_t n)
{
    harness *t = (harness *)u;
    assert_true(id < 16);
    assert_int_equal(kx_buf_append(&t->cdata[id], p, n, 1 << 24), 0);
}
static void c_fin(void *u, uint32_t id)
{
    CLOG((harness *)u, "F%u\n", id);
}
static void c_rst(void *u, uint32_t id, uint32_t st)
{
    CLOG((harness *)u, "X%u:%u\n", id, st);
}
static void c_goaway(void *u, uint32_t last, uint32_t st)
{
    CLOG((harness *)u, "G%u:%u\n", last, st);
}
static const kx_spdy_callbacks client_cb = {c_send, c_stream, c_reply, c_data, c_fin, c_rst, c_goaway};

// ---- rc (node agent) callbacks ----

static int r_send(void *u, const uint8_t *h, size_t hl, const uint8_t *p, size_t n)
{
    harness *t = (harness *)u;
    assert_int_equal(kx_buf_append(&t->s2c, h, hl, 1 << 24), 0);
    if (n)
        assert_int_equal(kx_buf_append(&t->s2c, p, n, 1 << 24), 0);
    return 0;
}
static void r_ready(void *u)
{
    harness *t = (harness *)u;
    RLOG(t, "ready\n");
    if (t->finish_in_ready >= 0)
        assert_int_equal(kx_rc_finish(t->rc, t->finish_in_ready, nullptr), 0);
}
static void r_stdin(void *u, const uint8_t *p, size_t n)
{
    harness *t = (harness *)u;
    assert_true(kx_rc_ready(t->rc));
    assert_true(n > 0);
    assert_int_equal(kx_buf_append(&t->in, p, n, 1 << 24), 0);
}
static void r_eof(void *u)
{
    RLOG((harness *)u, "eof\n");
}
static void r_resize(void *u, uint16_t w, uint16_t h)
{
    RLOG((harness *)u, "resize %ux%u\n", w, h);
}
static void r_goaway(void *u)
{
    RLOG((harness *)u, "goaway\n");
}
static const kx_rc_callbacks rc_cb = {r_send, r_ready, r_stdin, r_eof, r_resize, r_goaway};

static harness *h_new(int mode, kx_rc_opts o)
{
    harness *t = (harness *)calloc(1, sizeof *t);
    assert_non_null(t);
    t->mode = mode;
    t->finish_in_ready = -1;
    t->rc = kx_rc_new(&o, &rc_cb, t);
    assert_non_null(t->rc);
    t->c = kx_spdy_session_new(false, &client_cb, t);
    assert_non_null(t->c);
    rng_state = 777u + (uint32_t)mode;
    return t;
}

static void h_free(harness *t)
{
    kx_rc_free(t->rc);
    kx_spdy_session_free(t->c);
    kx_buf_free(&t->c2s);
    kx_buf_free(&t->s2c);
    kx_buf_free(&t->in);
    for (auto &d : t->cdata)
        kx_buf_free(&d);
    free(t);
}

template <typename F> static int feed_with(F fn, const uint8_t *p, size_t len, int mode)
{
    size_t off = 0;
    while (off < len) {
        size_t n = len - off;
        if (mode == BYTES)
            n = 1;
        else if (mode == RANDOM)
            n = 1 + rnd() % (len / 3 + 1);
        if (n > len - off)
            n = len - off;
        int rc = fn(p + off, n);
        if (rc < 0)
            return rc;
        off += n;
    }
    return 0;
}

// Client -> server bytes; returns kx_rc_recv's result.
static int to_server(harness *t)
{
    kx_buf b = t->c2s;
    t->c2s = kx_buf{};
    int rc = feed_with([t](const uint8_t *p, size_t n) { return kx_rc_recv(t->rc, p, n); }, b.data, b.len, t->mode);
    kx_buf_free(&b);
    return rc;
}

static void to_client(harness *t)
{
    kx_buf b = t->s2c;
    t->s2c = kx_buf{};
    int rc = feed_with([t](const uint8_t *p, size_t n) { return kx_spdy_recv(t->c, p, n); }, b.data, b.len, t->mode);
    kx_buf_free(&b);
    assert_int_equal(rc, 0);
}

static void pump(harness *t)
{
    while (t->c2s.len || t->s2c.len) {
        assert_int_equal(to_server(t), 0);
        to_client(t);
    }
}

static uint32_t open_stream(harness *t, const char *type)
{
    kx_spdy_nv nv = {"streamtype", 10, type, strlen(type)};
    uint32_t id = 0;
    assert_int_equal(kx_spdy_open(t->c, &nv, 1, false, &id), 0);
    return id;
}

static bool log_eq(const char *what, const char *got, size_t len, const char *want)
{
    if (strlen(want) == len && memcmp(got, want, len) == 0)
        return true;
    fprintf(stderr, "%s mismatch\n--- want\n%s--- got\n%.*s---\n", what, want, (int)len, got);
    return false;
}
#define CLOG_IS(t, w) assert_true(log_eq("client log", (t)->clog, (t)->clog_len, (w)))
#define RLOG_IS(t, w) assert_true(log_eq("rc log", (t)->rlog, (t)->rlog_len, (w)))

static bool data_is(const kx_buf *b, const char *want)
{
    size_t n = strlen(want);
    if (b->len == n && (n == 0 || memcmp(b->data, want, n) == 0))
        return true;
    fprintf(stderr, "data mismatch\n--- want\n%s\n--- got\n%.*s\n---\n", want, (int)b->len, b->data ? (const char *)b->data : "");
    return false;
}

static const char success_json[] = "{\"metadata\":{},\"status\":\"Success\"}";
static const char exit42_json[] =
    "{\"metadata\":{},\"status\":\"Failure\",\"message\":\"command terminated with non-zero exit code: exit "
    "status 42\",\"reason\":\"NonZeroExitCode\",\"details\":{\"causes\":[{\"reason\":\"ExitCode\",\"message\":"
    "\"42\"}]}}";
static const char errmsg_json[] =
    "{\"metadata\":{},\"status\":\"Failure\",\"message\":\"Internal error occurred: exec: \\\"nope\\\": not "
    "found\",\"reason\":\"InternalError\",\"details\":{\"causes\":[{\"message\":\"exec: \\\"nope\\\": not "
    "found\"}]},\"code\":500}";

// ---- kubectl exec -i p -- cat (Appendix B) ----

static void exec_stdin_cat(void **)
{
    for (int mode = 0; mode < NMODES; mode++) {
        harness *t = h_new(mode, kx_rc_opts{true, true, true, false, KX_RC_V4});
        // kubectl opens streams one after another, each waiting for its reply.
        const char *types[] = {"error", "stdin", "stdout", "stderr"};
        for (int i = 0; i < 4; i++) {
            assert_false(kx_rc_ready(t->rc));
            assert_int_equal(open_stream(t, types[i]), 1 + 2 * i);
            pump(t);
        }
        // on_ready fired exactly when the 4th reply went out.
        assert_true(kx_rc_ready(t->rc));
        RLOG_IS(t, "ready\n");
        CLOG_IS(t, "R1/0\nR3/0\nR5/0\nR7/0\n");
        t->clog_len = 0;

        // stdin "hi\n" then EOF; kubectl also pings.
        assert_int_equal(kx_spdy_data(t->c, 3, (const uint8_t *)"hi\n", 3, false), 0);
        assert_int_equal(kx_spdy_data(t->c, 3, nullptr, 0, true), 0);
        assert_int_equal(kx_spdy_ping(t->c, 1), 0);
        pump(t);
        assert_true(data_is(&t->in, "hi\n"));
        RLOG_IS(t, "ready\neof\n");

        // The process echoes and exits 0.
        assert_int_equal(kx_rc_stdout(t->rc, (const uint8_t *)"hi\n", 3), 0);
        assert_int_equal(kx_rc_stderr(t->rc, (const uint8_t *)"warn", 4), 0);
        assert_int_equal(kx_rc_finish(t->rc, 0, nullptr), 0);
        // Idempotent and nothing after it.
        size_t sent = t->s2c.len;
        assert_int_equal(kx_rc_finish(t->rc, 3, "x"), 0);
        assert_int_equal(kx_rc_stdout(t->rc, (const uint8_t *)"late", 4), 0);
        assert_int_equal(t->s2c.len, sent);
        to_client(t);
        assert_true(data_is(&t->cdata[5], "hi\n"));
        assert_true(data_is(&t->cdata[7], "warn"));
        assert_true(data_is(&t->cdata[1], success_json));
        // FIN stdout, FIN stderr, status + FIN error, RST stdin (still open on
        // our side), GOAWAY naming the last client stream.
        CLOG_IS(t, "F5\nF7\nF1\nX3:5\nG7:0\n");
        // kubectl then resets its streams and leaves; the agent takes it.
        assert_int_equal(kx_spdy_rst(t->c, 5, KX_SPDY_CANCEL), 0);
        assert_int_equal(kx_spdy_goaway(t->c, 0), 0);
        assert_int_equal(to_server(t), 0);
        RLOG_IS(t, "ready\neof\ngoaway\n");
        assert_int_equal(t->s2c.len, 0);
        h_free(t);
    }
}

// ---- kubectl exec -it p -- sh (tty, resize) ----

static void exec_tty_resize(void **)
{
    static const char resize_stream[] =
        "{\"Width\":120,\"Height\":40}\n"
        "{\"width\":80,\"HEIGHT\":24}\n"
        "{\"Width\":\"x\",\"Height\":5}\n"    // wrong type: ignored
        "nope\n"                                // garbage line: ignored
        "{\"Width\":1.5,\"Height\":5}\n"      // not an integer: ignored
        "{\"Width\":70000,\"Height\":5}\n"    // out of uint16 range: ignored
        "{\"Width\":100,\"Height\":30}{\"Width\":101,\"Height\":31}\n" // merged
        "{\"Other\":\"}{\",\"Width\":9,\"Height\":3}\n";                // braces in strings
    for (int mode = 0; mode < NMODES; mode++) {
        // error=1 is given too, but tty forces stderr off.
        harness *t = h_new(mode, kx_rc_opts{true, true, true, true, KX_RC_V4});
        const char *types[] = {"error", "stdin", "stdout", "resize"};
        for (int i = 0; i < 4; i++) {
            assert_false(kx_rc_ready(t->rc));
            open_stream(t, types[i]);
            pump(t);
        }
        assert_true(kx_rc_ready(t->rc));
        // Initial size right after setup, then more, split across frames.
        size_t n = sizeof resize_stream - 1, cut = 13;
        assert_int_equal(kx_spdy_data(t->c, 7, (const uint8_t *)resize_stream, cut, false), 0);
        assert_int_equal(kx_spdy_data(t->c, 7, (const uint8_t *)resize_stream + cut, n - cut, false), 0);
        // An oversize object is dropped up to its newline; parsing resumes.
        static char big[6000];
        memset(big, ' ', sizeof big);
        big[0] = '{';
        big[sizeof big - 1] = '\n';
        assert_int_equal(kx_spdy_data(t->c, 7, (const uint8_t *)big, sizeof big, false), 0);
        static const char last[] = "{\"Width\":7,\"Height\":8}\n";
        assert_int_equal(kx_spdy_data(t->c, 7, (const uint8_t *)last, sizeof last - 1, false), 0);
        pump(t);
        RLOG_IS(t, "ready\nresize 120x40\nresize 80x24\nresize 100x30\nresize 101x31\nresize 9x3\nresize 7x8\n");

        // No stderr stream with tty: a no-op that sends nothing.
        assert_int_equal(kx_rc_stderr(t->rc, (const uint8_t *)"e", 1), 0);
        assert_int_equal(t->s2c.len, 0);
        // Output bigger than one DATA frame.
        static uint8_t out[70000];
        for (size_t i = 0; i < sizeof out; i++)
            out[i] = (uint8_t)(i * 7);
        assert_int_equal(kx_rc_stdout(t->rc, out, sizeof out), 0);
        assert_int_equal(kx_rc_finish(t->rc, 42, nullptr), 0);
        t->clog_len = 0;
        to_client(t);
        assert_int_equal(t->cdata[5].len, sizeof out);
        assert_memory_equal(t->cdata[5].data, out, sizeof out);
        assert_true(data_is(&t->cdata[1], exit42_json));
        CLOG_IS(t, "F5\nF1\nX3:5\nX7:5\nG7:0\n");
        h_free(t);
    }
}

// ---- non-tty without stdin: error, stdout, stderr; errmsg status ----

static void exec_internal_error(void **)
{
    for (int mode = 0; mode < NMODES; mode++) {
        harness *t = h_new(mode, kx_rc_opts{false, true, true, false, KX_RC_V4});
        open_stream(t, "error");
        pump(t);
        open_stream(t, "stdout");
        pump(t);
        assert_false(kx_rc_ready(t->rc));
        open_stream(t, "stderr");
        pump(t);
        assert_true(kx_rc_ready(t->rc));
        assert_int_equal(kx_rc_close_stdin(t->rc), 0); // no stdin stream: no-op
        assert_int_equal(t->s2c.len, 0);
        assert_int_equal(kx_rc_finish(t->rc, 0, "exec: \"nope\": not found"), 0);
        t->clog_len = 0;
        to_client(t);
        assert_true(data_is(&t->cdata[1], errmsg_json));
        CLOG_IS(t, "F3\nF5\nF1\nG5:0\n");
        h_free(t);
    }
}

// Finishing from inside on_ready (the process could not start) works.
static void finish_inside_ready(void **)
{
    harness *t = h_new(WHOLE, kx_rc_opts{false, true, false, false, KX_RC_V4});
    t->finish_in_ready = 7;
    open_stream(t, "error");
    pump(t);
    open_stream(t, "stdout");
    pump(t);
    RLOG_IS(t, "ready\n");
    assert_true(strstr((const char *)t->cdata[1].data, "\"message\":\"7\"") != nullptr);
    CLOG_IS(t, "R1/0\nR3/0\nF3\nF1\nG3:0\n");
    h_free(t);
}

// ---- early stdin, duplicates, unknown types, client RST/GOAWAY ----

static void early_stdin_is_held_until_ready(void **)
{
    for (int mode = 0; mode < NMODES; mode++) {
        harness *t = h_new(mode, kx_rc_opts{true, true, false, false, KX_RC_V4});
        open_stream(t, "error");
        open_stream(t, "stdin");
        pump(t);
        assert_int_equal(kx_spdy_data(t->c, 3, (const uint8_t *)"ear", 3, false), 0);
        assert_int_equal(kx_spdy_data(t->c, 3, (const uint8_t *)"ly", 2, true), 0);
        // Unknown type: replied, not counted. Duplicate stdin: reset.
        open_stream(t, "bogus");
        open_stream(t, "stdin");
        pump(t);
        assert_false(kx_rc_ready(t->rc));
        RLOG_IS(t, "");
        CLOG_IS(t, "R1/0\nR3/0\nR5/0\nX7:5\n");
        open_stream(t, "stdout");
        pump(t);
        RLOG_IS(t, "ready\neof\n");
        assert_true(data_is(&t->in, "early"));
        h_free(t);
    }
}

static void early_stdin_bound(void **)
{
    harness *t = h_new(WHOLE, kx_rc_opts{true, true, false, false, KX_RC_V4});
    open_stream(t, "error");
    open_stream(t, "stdin");
    pump(t);
    static uint8_t big[KX_RC_MAX_EARLY_STDIN + 1];
    assert_int_equal(kx_spdy_data(t->c, 3, big, sizeof big, false), 0);
    assert_int_equal(to_server(t), -EMSGSIZE);
    assert_int_equal(kx_rc_recv(t->rc, big, 1), -EMSGSIZE); // sticky
    h_free(t);
}

static void client_reset_and_goaway(void **)
{
    for (int mode = 0; mode < NMODES; mode++) {
        harness *t = h_new(mode, kx_rc_opts{true, true, true, false, KX_RC_V4});
        const char *types[] = {"error", "stdin", "stdout", "stderr"};
        for (const char *ty : types) {
            open_stream(t, ty);
            pump(t);
        }
        // Ctrl-C: kubectl resets every stream and sends GOAWAY.
        for (uint32_t id = 1; id <= 7; id += 2)
            assert_int_equal(kx_spdy_rst(t->c, id, KX_SPDY_CANCEL), 0);
        assert_int_equal(kx_spdy_goaway(t->c, 0), 0);
        assert_int_equal(to_server(t), 0);
        RLOG_IS(t, "ready\neof\ngoaway\n");
        // Nothing but the end of the close goes out now.
        assert_int_equal(kx_rc_stdout(t->rc, (const uint8_t *)"x", 1), 0);
        assert_int_equal(kx_rc_stderr(t->rc, (const uint8_t *)"x", 1), 0);
        assert_int_equal(kx_rc_close_stdin(t->rc), 0);
        assert_int_equal(t->s2c.len, 0);
        assert_int_equal(kx_rc_finish(t->rc, 1, nullptr), 0);
        static const uint8_t goaway[] = {0x80, 3, 0, 7, 0, 0, 0, 8, 0, 0, 0, 7, 0, 0, 0, 0};
        assert_int_equal(t->s2c.len, sizeof goaway);
        assert_memory_equal(t->s2c.data, goaway, sizeof goaway);
        h_free(t);
    }
    // RST of stdout alone (kubectl's reader gone) makes stdout a no-op.
    harness *t = h_new(WHOLE, kx_rc_opts{false, true, false, false, KX_RC_V4});
    open_stream(t, "error");
    open_stream(t, "stdout");
    pump(t);
    assert_int_equal(kx_spdy_rst(t->c, 3, KX_SPDY_CANCEL), 0);
    pump(t);
    assert_int_equal(kx_rc_stdout(t->rc, (const uint8_t *)"x", 1), 0);
    assert_int_equal(t->s2c.len, 0);
    assert_int_equal(kx_rc_close_stdin(t->rc), 0);
    assert_int_equal(kx_rc_finish(t->rc, 0, nullptr), 0);
    t->clog_len = 0;
    to_client(t);
    CLOG_IS(t, "F1\nG3:0\n");
    h_free(t);
}

static void server_closes_stdin(void **)
{
    harness *t = h_new(WHOLE, kx_rc_opts{true, true, false, false, KX_RC_V4});
    open_stream(t, "error");
    open_stream(t, "stdin");
    open_stream(t, "stdout");
    pump(t);
    assert_int_equal(kx_rc_close_stdin(t->rc), 0);
    assert_int_equal(kx_rc_close_stdin(t->rc), 0); // once
    t->clog_len = 0;
    to_client(t);
    CLOG_IS(t, "F3\n");
    assert_int_equal(kx_rc_finish(t->rc, 0, nullptr), 0);
    to_client(t);
    CLOG_IS(t, "F3\nF5\nF1\nG5:0\n"); // stdin already FIN'd: no RST
    h_free(t);
}

// ---- protocol versions ----

static void old_versions_status_text(void **)
{
    struct {
        int proto;
        int code;
        const char *err;
        const char *want;
    } cases[] = {
        {KX_RC_V3, 0, nullptr, ""},
        {KX_RC_V3, 3, nullptr, "command terminated with non-zero exit code: exit status 3"},
        {KX_RC_V2, 0, "boom", "boom"},
        {KX_RC_V1, 9, nullptr, "command terminated with non-zero exit code: exit status 9"},
        {KX_RC_V5, 0, nullptr, success_json},
    };
    for (auto &c : cases) {
        harness *t = h_new(WHOLE, kx_rc_opts{false, true, false, true, c.proto});
        open_stream(t, "error");
        open_stream(t, "stdout");
        pump(t);
        // tty: resize expected only from v3 on.
        assert_int_equal(kx_rc_ready(t->rc), c.proto < KX_RC_V3);
        if (c.proto >= KX_RC_V3) {
            open_stream(t, "resize");
            pump(t);
            assert_true(kx_rc_ready(t->rc));
        }
        assert_int_equal(kx_rc_finish(t->rc, c.code, c.err), 0);
        to_client(t);
        assert_true(data_is(&t->cdata[1], c.want));
        h_free(t);
    }
}

// ---- pure helpers ----

static void status_json(void **)
{
    char out[1024];
    assert_int_equal(kx_rc_status_json(out, sizeof out, 0, nullptr), (int)strlen(success_json));
    assert_string_equal(out, success_json);
    assert_int_equal(kx_rc_status_json(out, sizeof out, 42, nullptr), (int)strlen(exit42_json));
    assert_string_equal(out, exit42_json);
    assert_int_equal(kx_rc_status_json(out, sizeof out, 0, "exec: \"nope\": not found"), (int)strlen(errmsg_json));
    assert_string_equal(out, errmsg_json);
    assert_int_equal(kx_rc_status_json(out, 10, 0, nullptr), -EMSGSIZE);
    assert_int_equal(kx_rc_status_json(out, strlen(success_json), 0, nullptr), -EMSGSIZE);
    assert_int_equal(kx_rc_status_json(out, sizeof out, 256, nullptr), -EINVAL);
    assert_int_equal(kx_rc_status_json(out, sizeof out, -1, nullptr), -EINVAL);
    assert_int_equal(kx_rc_status_json(out, sizeof out, 255, nullptr) > 0, 1);
    // A huge errmsg does not fit the helper but kx_rc_finish cuts it down.
    static char huge[20000];
    memset(huge, '"', sizeof huge - 1);
    assert_int_equal(kx_rc_status_json(out, sizeof out, 0, huge), -EMSGSIZE);
    harness *t = h_new(WHOLE, kx_rc_opts{false, true, false, false, KX_RC_V4});
    open_stream(t, "error");
    open_stream(t, "stdout");
    pump(t);
    assert_int_equal(kx_rc_finish(t->rc, 300, nullptr), -EINVAL);
    assert_int_equal(t->s2c.len, 0);
    assert_int_equal(kx_rc_finish(t->rc, 0, huge), 0);
    to_client(t);
    assert_true(t->cdata[1].len > 100 && t->cdata[1].len < KX_RC_MAX_STATUS);
    assert_memory_equal(t->cdata[1].data, "{\"metadata\":{},\"status\":\"Failure\"", 33);
    assert_int_equal(t->cdata[1].data[t->cdata[1].len - 1], '}');
    h_free(t);
}

static void negotiate(void **)
{
    const char *kubectl[] = {"v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                             "channel.k8s.io"};
    assert_int_equal(kx_rc_negotiate(kubectl, 5), KX_RC_V4);
    const char *comma[] = {" v5.channel.k8s.io ,v3.channel.k8s.io,\tv4.channel.k8s.io"};
    assert_int_equal(kx_rc_negotiate(comma, 1), KX_RC_V3); // client order wins
    const char *multi[] = {"", "x, ,y", " channel.k8s.io ", "v4.channel.k8s.io"};
    assert_int_equal(kx_rc_negotiate(multi, 4), KX_RC_V1);
    const char *v2[] = {"v2.channel.k8s.io"};
    assert_int_equal(kx_rc_negotiate(v2, 1), KX_RC_V2);
    const char *v5only[] = {"v5.channel.k8s.io"};
    assert_int_equal(kx_rc_negotiate(v5only, 1), -ENOENT);
    const char *pf[] = {"portforward.k8s.io", "V4.channel.k8s.io", "v4.channel.k8s.io.x"};
    assert_int_equal(kx_rc_negotiate(pf, 3), -ENOENT);
    const char *empty[] = {"", " , ,\t", nullptr};
    assert_int_equal(kx_rc_negotiate(empty, 3), -EINVAL);
    assert_int_equal(kx_rc_negotiate(nullptr, 0), -EINVAL);
    assert_string_equal(kx_rc_proto_name(KX_RC_V4), "v4.channel.k8s.io");
    assert_string_equal(kx_rc_proto_name(KX_RC_V1), "channel.k8s.io");
    assert_string_equal(kx_rc_proto_name(KX_RC_V5), "v5.channel.k8s.io");
    assert_null(kx_rc_proto_name(0));
    assert_null(kx_rc_proto_name(6));
}

static void bad_opts(void **)
{
    kx_rc_opts o = {true, true, true, false, 0};
    assert_null(kx_rc_new(&o, &rc_cb, nullptr));
    o.proto = 6;
    assert_null(kx_rc_new(&o, &rc_cb, nullptr));
    o.proto = KX_RC_V4;
    kx_rc_callbacks none = {};
    assert_null(kx_rc_new(&o, &none, nullptr));
    // A broken peer is fatal and sticky.
    harness *t = h_new(WHOLE, o);
    static const uint8_t junk[] = {0x80, 3, 0, 5, 0, 0, 0, 0};
    assert_int_equal(kx_rc_recv(t->rc, junk, sizeof junk), -EPROTO);
    assert_int_equal(kx_rc_recv(t->rc, junk, 1), -EPROTO);
    h_free(t);
}

// ---- the resize parser itself: buffer only for a split object, bounds ----

static void resize_cb_count(void *u, uint16_t w, uint16_t h)
{
    char *log = (char *)u;
    snprintf(log + strlen(log), 256 - strlen(log), "%ux%u;", w, h);
}

// Feeds n bytes whole (step 0) or in pieces of `step`.
static void resize_feed_steps(kx_rc_resize_parser *r, const char *p, size_t n, size_t step, char *log)
{
    if (step == 0)
        step = n;
    for (size_t off = 0; off < n; off += step)
        kx_rc_resize_feed(r, (const uint8_t *)p + off, n - off < step ? n - off : step,
                          resize_cb_count, log);
}

static void resize_parser_memory_and_bounds(void **)
{
    // An object of exactly KX_RC_MAX_RESIZE_JSON bytes is parsed, one byte
    // longer is dropped up to its newline; split or whole, the same answers.
    static char exact[KX_RC_MAX_RESIZE_JSON + 1], over[KX_RC_MAX_RESIZE_JSON + 2];
    static const char obj[] = "{\"Width\":3,\"Height\":4";
    memset(exact, ' ', sizeof exact);
    memcpy(exact, obj, sizeof obj - 1);
    exact[KX_RC_MAX_RESIZE_JSON - 1] = '}';
    exact[KX_RC_MAX_RESIZE_JSON] = '\n';
    memset(over, ' ', sizeof over);
    memcpy(over, obj, sizeof obj - 1);
    over[KX_RC_MAX_RESIZE_JSON] = '}';
    over[KX_RC_MAX_RESIZE_JSON + 1] = '\n';
    static const char tail[] = "{\"Width\":5,\"Height\":6}\n";
    const size_t steps[] = {0, 1, 7, 4095, 4096, 4097};
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        char log[256] = "";
        kx_rc_resize_parser r = {};
        resize_feed_steps(&r, exact, sizeof exact, steps[k], log);
        resize_feed_steps(&r, over, sizeof over, steps[k], log);
        resize_feed_steps(&r, tail, sizeof tail - 1, steps[k], log);
        assert_string_equal(log, "3x4;5x6;");
        // Nothing is held between complete objects.
        assert_null(r.buf);
        assert_int_equal(r.len, 0);
        // A split object is held (and freed by kx_rc_resize_free).
        resize_feed_steps(&r, tail, 10, 0, log);
        assert_non_null(r.buf);
        assert_int_equal(r.len, 10);
        kx_rc_resize_free(&r);
        assert_null(r.buf);
        assert_int_equal(r.len, 0);
        assert_false(r.skip);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exec_stdin_cat),
        cmocka_unit_test(exec_tty_resize),
        cmocka_unit_test(resize_parser_memory_and_bounds),
        cmocka_unit_test(exec_internal_error),
        cmocka_unit_test(finish_inside_ready),
        cmocka_unit_test(early_stdin_is_held_until_ready),
        cmocka_unit_test(early_stdin_bound),
        cmocka_unit_test(client_reset_and_goaway),
        cmocka_unit_test(server_closes_stdin),
        cmocka_unit_test(old_versions_status_text),
        cmocka_unit_test(status_json),
        cmocka_unit_test(negotiate),
        cmocka_unit_test(bad_opts),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
