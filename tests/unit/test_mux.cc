// Unit tests for kubexec/mux.h (kubexec-mux/1).
//
// Part 1, the frame codec: header bytes against hand-written ones; a stream
// of mixed frames parsed whole, split in two at every byte, byte by byte;
// every malformed frame and a failing callback, each sticky.
// Part 2, streams over a real connection: two kx_conns over loopback TCP +
// TLS (client certificate required, as between the API server and a node)
// on one uv loop, a mux on each; data both ways, graceful close, flow control
// with a paused stream next to a moving one, RST, the parent's death, a
// protocol error. Every wait is bounded (run_until's timer), so no test hangs.
//
// The last four tests are the reproducers of bugs this file found in the
// first mux.cc (an empty DATA piece, a close that reset the peer's held
// bytes, a connection close that looked clean, a send buffer that grew
// without bound); each failed before its fix.
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
// cmocka 1.1.5 has no extern "C" guards of its own.
extern "C" {
#include <cmocka.h>
}
#include <arpa/inet.h>
#include <uv.h>

#include "kubexec/conn.h"
#include "kubexec/mux.h"
#include "kubexec/pki.h"
#include "heap_in_use.h"
#include "pki_files.h"
#include "kubexec/tls.h"
#include "kubexec/util.h"

// =========================================================================
// Part 1: the codec
// =========================================================================

// One frame as the callbacks reported it. DATA pieces of one frame are
// gathered into one record; `ends` counts the pieces that had `end` set.
struct rec {
    uint8_t type;
    uint32_t id;
    uint32_t value;
    size_t off, len;    // DATA: where its payload sits in log.data
    int ends;
};

struct flog {
    rec r[64];
    size_t n;
    kx_buf data;
    int calls;          // callbacks made (but empty DATA pieces)
    int empty;          // on_data calls with n == 0
    int fail_at;        // the fail_at-th callback returns fail_with (0: never)
    int fail_with;
};

static void log_reset(flog *l)
{
    kx_buf_free(&l->data);
    memset(l, 0, sizeof *l);
}

static int cb_data(void *u, uint32_t id, const uint8_t *p, size_t n, bool end)
{
    flog *l = (flog *)u;
    if (n == 0) {
        // mux.cc reports a DATA header that ends a buffer as an empty piece
        // (see empty_data_piece); counted apart so the other tests hold.
        assert_false(end);
        l->empty++;
        return 0;
    }
    l->calls++;
    rec *r = l->n ? &l->r[l->n - 1] : nullptr;
    if (!r || r->type != KX_MUX_DATA || r->ends) {
        assert_true(l->n < 64);
        r = &l->r[l->n++];
        memset(r, 0, sizeof *r);
        r->type = KX_MUX_DATA;
        r->id = id;
        r->off = l->data.len;
    }
    assert_int_equal(r->id, id);
    assert_int_equal(kx_buf_append(&l->data, p, n, 1 << 20), 0);
    r->len += n;
    r->ends += end;
    if (l->fail_at && l->calls == l->fail_at)
        return l->fail_with;
    return 0;
}

static int cb_ctrl(void *u, kx_mux_type type, uint32_t id, uint32_t value)
{
    flog *l = (flog *)u;
    l->calls++;
    assert_true(l->n < 64);
    rec *r = &l->r[l->n++];
    memset(r, 0, sizeof *r);
    r->type = type;
    r->id = id;
    r->value = value;
    if (l->fail_at && l->calls == l->fail_at)
        return l->fail_with;
    return 0;
}

static const kx_mux_parse_cb parse_cb = {cb_data, cb_ctrl};

// A frame builder for the tests.
struct wire {
    uint8_t b[256 * 1024];
    size_t n;
};

static void put_frame(wire *w, uint32_t id, uint8_t type, uint32_t len, const uint8_t *payload,
                      size_t plen)
{
    assert_true(w->n + KX_MUX_HEADER + plen <= sizeof w->b);
    kx_mux_put_header(w->b + w->n, id, (kx_mux_type)type, len);
    w->n += KX_MUX_HEADER;
    if (plen)
        memcpy(w->b + w->n, payload, plen);
    w->n += plen;
}

static void put_window(wire *w, uint32_t id, uint32_t inc)
{
    uint8_t v[4];
    kx_put_be32(v, inc);
    put_frame(w, id, KX_MUX_WINDOW, 4, v, 4);
}

static void header_bytes(void **)
{
    uint8_t h[KX_MUX_HEADER];
    kx_mux_put_header(h, 0x01020304, KX_MUX_DATA, 0x0a0b0c);
    const uint8_t want1[] = {0x01, 0x02, 0x03, 0x04, 0x02, 0x0a, 0x0b, 0x0c};
    assert_memory_equal(h, want1, sizeof want1);
    kx_mux_put_header(h, 1, KX_MUX_OPEN, 0);
    const uint8_t want2[] = {0, 0, 0, 1, 1, 0, 0, 0};
    assert_memory_equal(h, want2, sizeof want2);
    kx_mux_put_header(h, 0xfffffffe, KX_MUX_WINDOW, 4);
    const uint8_t want3[] = {0xff, 0xff, 0xff, 0xfe, 5, 0, 0, 4};
    assert_memory_equal(h, want3, sizeof want3);
    kx_mux_put_header(h, 0x80, KX_MUX_DATA, KX_MUX_MAX_DATA);
    const uint8_t want4[] = {0, 0, 0, 0x80, 2, 0, 0xff, 0xf8};   // 65528
    assert_memory_equal(h, want4, sizeof want4);
    kx_mux_put_header(h, 0x7f000000, KX_MUX_RST, 0);
    const uint8_t want5[] = {0x7f, 0, 0, 0, 4, 0, 0, 0};
    assert_memory_equal(h, want5, sizeof want5);
    kx_mux_put_header(h, 9, KX_MUX_FIN, 0);
    const uint8_t want6[] = {0, 0, 0, 9, 3, 0, 0, 0};
    assert_memory_equal(h, want6, sizeof want6);
}

// The mixed stream of the split tests, and what its frames must look like.
static uint8_t big[KX_MUX_MAX_DATA];

static void mixed(wire *w)
{
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 31 + (i >> 8));
    w->n = 0;
    put_frame(w, 1, KX_MUX_OPEN, 0, nullptr, 0);
    put_frame(w, 1, KX_MUX_DATA, 1, (const uint8_t *)"x", 1);
    put_frame(w, 1, KX_MUX_DATA, KX_MUX_MAX_DATA, big, sizeof big);
    put_window(w, 1, 0x7fffffff);
    put_frame(w, 0x01020304, KX_MUX_OPEN, 0, nullptr, 0);
    put_frame(w, 0x01020304, KX_MUX_DATA, 5, (const uint8_t *)"hello", 5);
    put_window(w, 0x01020304, 1);
    put_frame(w, 1, KX_MUX_FIN, 0, nullptr, 0);
    put_frame(w, 0x01020304, KX_MUX_DATA, 2, (const uint8_t *)"\0\xff", 2);
    put_frame(w, 0x01020304, KX_MUX_RST, 0, nullptr, 0);
    put_window(w, 0xffffffff, 0x10000);
}

static void check_mixed(const flog *l)
{
    assert_int_equal(l->n, 11);
    const struct {
        uint8_t type;
        uint32_t id, value;
        size_t len;
    } want[] = {
        {KX_MUX_OPEN, 1, 0, 0},
        {KX_MUX_DATA, 1, 0, 1},
        {KX_MUX_DATA, 1, 0, KX_MUX_MAX_DATA},
        {KX_MUX_WINDOW, 1, 0x7fffffff, 0},
        {KX_MUX_OPEN, 0x01020304, 0, 0},
        {KX_MUX_DATA, 0x01020304, 0, 5},
        {KX_MUX_WINDOW, 0x01020304, 1, 0},
        {KX_MUX_FIN, 1, 0, 0},
        {KX_MUX_DATA, 0x01020304, 0, 2},
        {KX_MUX_RST, 0x01020304, 0, 0},
        {KX_MUX_WINDOW, 0xffffffff, 0x10000, 0},
    };
    for (size_t i = 0; i < 11; i++) {
        assert_int_equal(l->r[i].type, want[i].type);
        assert_int_equal(l->r[i].id, want[i].id);
        assert_int_equal(l->r[i].value, want[i].value);
        assert_int_equal(l->r[i].len, want[i].len);
        // `end` exactly once per DATA frame (on its last piece), never on
        // another frame.
        assert_int_equal(l->r[i].ends, want[i].type == KX_MUX_DATA ? 1 : 0);
    }
    assert_int_equal(l->data.len, 1 + KX_MUX_MAX_DATA + 5 + 2);
    assert_memory_equal(l->data.data, "x", 1);
    assert_memory_equal(l->data.data + 1, big, sizeof big);
    assert_memory_equal(l->data.data + 1 + sizeof big, "hello\0\xff", 7);
}

static wire W1;

static void mixed_stream_whole_split_and_bytewise(void **)
{
    mixed(&W1);
    flog l = {};
    kx_mux_parser p;

    kx_mux_parser_init(&p);
    assert_int_equal(kx_mux_parse(&p, W1.b, W1.n, &parse_cb, &l), 0);
    check_mixed(&l);
    // Nothing held between frames: an empty call is a no-op.
    assert_int_equal(kx_mux_parse(&p, W1.b, 0, &parse_cb, &l), 0);
    assert_int_equal(l.n, 11);
    log_reset(&l);

    for (size_t cut = 0; cut <= W1.n; cut++) {
        kx_mux_parser_init(&p);
        assert_int_equal(kx_mux_parse(&p, W1.b, cut, &parse_cb, &l), 0);
        assert_int_equal(kx_mux_parse(&p, W1.b + cut, W1.n - cut, &parse_cb, &l), 0);
        check_mixed(&l);
        log_reset(&l);
    }

    kx_mux_parser_init(&p);
    for (size_t i = 0; i < W1.n; i++)
        assert_int_equal(kx_mux_parse(&p, W1.b + i, 1, &parse_cb, &l), 0);
    check_mixed(&l);
    // Byte by byte, a DATA frame of n bytes is n pieces, the last one `end`.
    assert_int_equal(l.calls, 1 + 1 + KX_MUX_MAX_DATA + 1 + 1 + 5 + 1 + 1 + 2 + 1 + 1);
    log_reset(&l);
}

// Parses `w` (whole, then byte by byte) and expects `err` after `frames`
// whole frames were reported; the error is sticky and silent afterwards.
static void expect_error(const wire *w, int err, size_t frames)
{
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        flog l = {};
        kx_mux_parser p;
        kx_mux_parser_init(&p);
        int r = 0;
        if (!bytewise) {
            r = kx_mux_parse(&p, w->b, w->n, &parse_cb, &l);
        } else {
            for (size_t i = 0; i < w->n && r == 0; i++)
                r = kx_mux_parse(&p, w->b + i, 1, &parse_cb, &l);
        }
        assert_int_equal(r, err);
        assert_int_equal(l.n, frames);
        int calls = l.calls;
        // Later calls: the same error, no callback, whatever comes.
        wire more;
        more.n = 0;
        put_frame(&more, 7, KX_MUX_OPEN, 0, nullptr, 0);
        put_frame(&more, 7, KX_MUX_DATA, 1, (const uint8_t *)"z", 1);
        assert_int_equal(kx_mux_parse(&p, more.b, more.n, &parse_cb, &l), err);
        assert_int_equal(kx_mux_parse(&p, more.b, 1, &parse_cb, &l), err);
        assert_int_equal(kx_mux_parse(&p, more.b, 0, &parse_cb, &l), err);
        assert_int_equal(l.calls, calls);
        log_reset(&l);
    }
}

static void malformed_frames_are_sticky_errors(void **)
{
    static wire w;
    uint8_t payload[KX_MUX_MAX_DATA + 1] = {};
    struct {
        uint32_t id;
        uint8_t type;
        uint32_t len;
        size_t plen;
    } bad[] = {
        {0, KX_MUX_OPEN, 0, 0},               // id 0
        {0, KX_MUX_DATA, 1, 1},
        {0, KX_MUX_WINDOW, 4, 0},
        {1, 0, 0, 0},                         // unknown types
        {1, 6, 0, 0},
        {1, 255, 0, 0},
        {1, 6, 4, 4},
        {1, KX_MUX_OPEN, 1, 1},               // no payload allowed
        {1, KX_MUX_FIN, 4, 4},
        {1, KX_MUX_RST, 0xffffff, 0},
        {1, KX_MUX_DATA, 0, 0},               // DATA 1..KX_MUX_MAX_DATA
        {1, KX_MUX_DATA, KX_MUX_MAX_DATA + 1, KX_MUX_MAX_DATA + 1},
        {1, KX_MUX_DATA, 0xffffff, 0},
        {1, KX_MUX_WINDOW, 3, 3},             // WINDOW exactly 4
        {1, KX_MUX_WINDOW, 5, 5},
        {1, KX_MUX_WINDOW, 0, 0},
    };
    for (auto &b : bad) {
        // After two good frames, so the error does not undo what came before.
        w.n = 0;
        put_frame(&w, 3, KX_MUX_OPEN, 0, nullptr, 0);
        put_frame(&w, 3, KX_MUX_DATA, 3, (const uint8_t *)"abc", 3);
        put_frame(&w, b.id, b.type, b.len, payload, b.plen);
        expect_error(&w, -EPROTO, 2);
    }
    // WINDOW increments: 0 and 2^31 are errors, 2^31-1 is fine.
    const uint32_t incs[] = {0, 0x80000000u, 0xffffffffu};
    for (uint32_t inc : incs) {
        w.n = 0;
        put_window(&w, 5, 1);
        put_window(&w, 5, inc);
        expect_error(&w, -EPROTO, 1);
    }
    w.n = 0;
    put_window(&w, 5, 0x7fffffff);
    flog l = {};
    kx_mux_parser p;
    kx_mux_parser_init(&p);
    assert_int_equal(kx_mux_parse(&p, w.b, w.n, &parse_cb, &l), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.r[0].value, 0x7fffffff);
    log_reset(&l);
}

static void failing_callback_stops_parsing(void **)
{
    mixed(&W1);
    // Whole: on_ctrl (call 1, the OPEN) and on_data (call 3, the big frame).
    const int fail_at[] = {1, 2, 3, 4, 11};
    for (int f : fail_at) {
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            flog l = {};
            l.fail_at = f;
            l.fail_with = -EPIPE;
            kx_mux_parser p;
            kx_mux_parser_init(&p);
            int r = 0;
            if (!bytewise)
                r = kx_mux_parse(&p, W1.b, W1.n, &parse_cb, &l);
            else
                for (size_t i = 0; i < W1.n && r == 0; i++)
                    r = kx_mux_parse(&p, W1.b + i, 1, &parse_cb, &l);
            assert_int_equal(r, -EPIPE);
            assert_int_equal(l.calls, f);
            assert_int_equal(kx_mux_parse(&p, W1.b, W1.n, &parse_cb, &l), -EPIPE);
            assert_int_equal(kx_mux_parse(&p, W1.b, 0, &parse_cb, &l), -EPIPE);
            assert_int_equal(l.calls, f);
            log_reset(&l);
        }
    }
    // Byte by byte the big DATA frame is many pieces: failing in its middle
    // (a piece without `end`) stops there too.
    flog l = {};
    l.fail_at = 3 + 100;
    l.fail_with = -ECANCELED;
    kx_mux_parser p;
    kx_mux_parser_init(&p);
    int r = 0;
    for (size_t i = 0; i < W1.n && r == 0; i++)
        r = kx_mux_parse(&p, W1.b + i, 1, &parse_cb, &l);
    assert_int_equal(r, -ECANCELED);
    assert_int_equal(l.calls, 103);
    assert_int_equal(l.r[2].len, 101);
    assert_int_equal(l.r[2].ends, 0);
    assert_int_equal(kx_mux_parse(&p, W1.b, W1.n, &parse_cb, &l), -ECANCELED);
    assert_int_equal(l.calls, 103);
    log_reset(&l);
}

// on_data is "a piece of a DATA frame's payload": never an empty one, also
// when a DATA frame's header is the last thing in a buffer (TLS reads are
// gathered 64 KiB at a time and may end right there). The first mux.cc went
// on to the payload step with nothing left and reported on_data(p, 0).
static void empty_data_piece(void **)
{
    uint8_t h[KX_MUX_HEADER];
    kx_mux_put_header(h, 1, KX_MUX_DATA, 3);
    flog l = {};
    kx_mux_parser p;
    kx_mux_parser_init(&p);
    assert_int_equal(kx_mux_parse(&p, h, sizeof h, &parse_cb, &l), 0);
    assert_int_equal(l.empty, 0);
    assert_int_equal(kx_mux_parse(&p, (const uint8_t *)"abc", 3, &parse_cb, &l), 0);
    assert_int_equal(l.empty, 0);
    assert_int_equal(l.calls, 1);
    assert_int_equal(l.r[0].len, 3);
    log_reset(&l);
}

// =========================================================================
// Part 2: streams over a real connection
// =========================================================================

static char dir[64];
static char ca_crt[128], srv_crt[128], srv_key[128], cli_crt[128], cli_key[128];
static kx_tls_ctx *sctx, *cctx;

static int group_setup(void **)
{
    snprintf(dir, sizeof dir, "/tmp/kx-test-mux-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char err[256];
    char *ca_key, *ca, *skey, *scrt, *ckey, *ccrt;
    must(kx_pki_new_key(&ca_key, err, sizeof err), "ca key");
    must(kx_pki_new_ca(ca_key, "kubexec-ca", 30, &ca, err, sizeof err), "ca");
    must(kx_pki_new_key(&skey, err, sizeof err), "server key");
    must(kx_pki_issue(ca, ca_key, skey, "node-1", nullptr, "127.0.0.1\0", KX_PKI_SERVER, 30,
                      &scrt, err, sizeof err),
         "server cert");
    must(kx_pki_new_key(&ckey, err, sizeof err), "client key");
    must(kx_pki_issue(ca, ca_key, ckey, "kubexec-apiserver", nullptr, nullptr, KX_PKI_CLIENT, 30,
                      &ccrt, err, sizeof err),
         "client cert");
    put_file(ca_crt, sizeof ca_crt, dir, "ca.crt", ca);
    put_file(srv_crt, sizeof srv_crt, dir, "server.crt", scrt);
    put_file(srv_key, sizeof srv_key, dir, "server.key", skey);
    put_file(cli_crt, sizeof cli_crt, dir, "client.crt", ccrt);
    put_file(cli_key, sizeof cli_key, dir, "client.key", ckey);
    free(ca_key), free(ca), free(skey), free(scrt), free(ckey), free(ccrt);
    sctx = kx_tls_server_ctx(srv_crt, srv_key, ca_crt, KX_TLS_REQUIRE_CLIENT_CERT, err, sizeof err);
    cctx = kx_tls_client_ctx(ca_crt, cli_crt, cli_key, err, sizeof err);
    if (!sctx || !cctx) {
        fprintf(stderr, "fixture: tls ctx: %s\n", err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **)
{
    kx_tls_ctx_free(sctx);
    kx_tls_ctx_free(cctx);
    const char *files[] = {ca_crt, srv_crt, srv_key, cli_crt, cli_key};
    for (const char *f : files)
        unlink(f);
    rmdir(dir);
    return 0;
}

// Byte i of a test transfer: a 32-bit little-endian counter, so a lost,
// doubled or reordered piece shows.
static uint8_t pattern(size_t i)
{
    return (uint8_t)((i / 4) >> (8 * (i % 4)));
}

// One end of a stream.
struct ep {
    kx_conn *c;
    kx_buf got;          // bytes received (unless counting a pattern)
    bool check_pattern;  // verify against pattern() instead of keeping
    size_t rx;           // bytes received
    size_t bad;          // pattern mismatches
    int ends, end_status, closes, drains;
    bool close_on_end;
    // A writer of `total` pattern bytes that keeps the stream's queue just
    // at KX_CONN_HIGH_WATER, refilling from on_drain (as the API server's
    // proxy relays).
    size_t total, written;
    bool closed_by_end;  // close_on_end closed it
    bool closed, aborted;  // the random test closed / aborted it
};

#define MAX_EP 8

static struct world {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_timer_t timer;
    uv_timer_t tick;              // wakes UV_RUN_ONCE, see run_until
    bool timed_out;
    kx_conn *cparent, *sparent;   // null once the mux took them over or they closed
    int cready, sready;           // on_ready status + 1 (0: not yet)
    kx_mux *cm, *sm;              // null after the mux's on_close
    int cm_closes, sm_closes, cm_status, sm_status;
    ep cli[MAX_EP];
    ep srv[MAX_EP];
    int nsrv;
    bool srv_pause;               // accepted streams start paused
    bool srv_close_on_end;
    int errors;                   // a callback saw something wrong
    size_t heap_base, heap_peak;
} *w;

// Runs the loop until cond() or `ms` passed. Returns cond(). The tick makes
// each UV_RUN_ONCE come back within 5 ms: a condition met by a timer
// callback (a stream delivers held bytes from one) would otherwise be seen
// only after the next I/O or the deadline.
static bool run_until(bool (*cond)(void), unsigned ms = 10000)
{
    w->timed_out = false;
    uv_timer_start(&w->timer, [](uv_timer_t *) { w->timed_out = true; }, ms, 0);
    uv_timer_start(&w->tick, [](uv_timer_t *) {}, 5, 5);
    while (!cond() && !w->timed_out)
        uv_run(&w->loop, UV_RUN_ONCE);
    uv_timer_stop(&w->timer);
    uv_timer_stop(&w->tick);
    return cond();
}

// Runs the loop for `ms` whatever happens (to let frames that should not
// change anything arrive).
static void run_for(unsigned ms)
{
    run_until([] { return false; }, ms);
}

static void sample_heap(void)
{
    size_t h = heap_in_use();
    if (h > w->heap_peak)
        w->heap_peak = h;
}

static void feed(ep *e)
{
    static uint8_t chunk[64 * 1024];
    while (e->c && !kx_conn_closing(e->c) && e->written < e->total &&
           kx_conn_queued(e->c) < KX_CONN_HIGH_WATER) {
        size_t n = e->total - e->written < sizeof chunk ? e->total - e->written : sizeof chunk;
        for (size_t i = 0; i < n; i++)
            chunk[i] = pattern(e->written + i);
        if (kx_conn_write(e->c, chunk, n) != 0) {
            w->errors++;
            return;
        }
        e->written += n;
        sample_heap();
    }
}

// What a stream's user does to a stream (the random test), at once or from
// inside the next on_data of any stream: from a callback, as the API
// server's proxy pauses and resumes one side when the other fills or drains,
// the effect meets more frames of the same read (a resume, for one, hands
// the held bytes on from a later loop phase).
enum ep_op { OP_SEND, OP_PAUSE, OP_RESUME, OP_CLOSE, OP_ABORT };
struct cb_op {
    ep *e;
    ep_op op;
    size_t n;   // OP_SEND: bytes
};
static cb_op g_cb_ops[4 * MAX_EP];
static int g_ncb_ops;

static void apply_op(ep *e, ep_op op, size_t n)
{
    if (!e->c || kx_conn_closing(e->c))
        return;
    switch (op) {
    case OP_SEND:
        e->total += n;
        feed(e);
        break;
    case OP_PAUSE: kx_conn_pause(e->c); break;
    case OP_RESUME: kx_conn_resume(e->c); break;
    case OP_CLOSE:
        e->closed = true;
        kx_conn_close(e->c);
        break;
    case OP_ABORT:
        e->aborted = true;
        kx_conn_abort(e->c);
        break;
    }
}

static void ep_data(kx_conn *c, const uint8_t *p, size_t n)
{
    ep *e = (ep *)kx_conn_user(c);
    while (g_ncb_ops > 0) {
        const cb_op o = g_cb_ops[--g_ncb_ops];
        apply_op(o.e, o.op, o.n);
    }
    if (e->check_pattern) {
        for (size_t i = 0; i < n; i++)
            e->bad += p[i] != pattern(e->rx + i);
        sample_heap();
    } else if (kx_buf_append(&e->got, p, n, 64u << 20) != 0) {
        w->errors++;
    }
    e->rx += n;
}

static void ep_end(kx_conn *c, int status)
{
    ep *e = (ep *)kx_conn_user(c);
    e->ends++;
    e->end_status = status;
    if (e->close_on_end) {
        e->closed_by_end = true;
        kx_conn_close(c);
    }
}

static void ep_drain(kx_conn *c)
{
    ep *e = (ep *)kx_conn_user(c);
    e->drains++;
    feed(e);
}

static void ep_close(kx_conn *c)
{
    ep *e = (ep *)kx_conn_user(c);
    e->closes++;
    e->c = nullptr;
}

static const kx_conn_callbacks ep_cb = {nullptr, ep_data, ep_end, ep_drain, ep_close};

static void srv_stream(kx_mux *m, kx_conn *child)
{
    if (m != w->sm || w->nsrv == MAX_EP) {
        w->errors++;
        kx_conn_abort(child);
        return;
    }
    ep *e = &w->srv[w->nsrv++];
    e->c = child;
    e->close_on_end = w->srv_close_on_end;
    if (!kx_conn_is_stream(child))
        w->errors++;
    kx_conn_set_user(child, e, &ep_cb);
    if (w->srv_pause)
        kx_conn_pause(child);
}

static void srv_mux_close(kx_mux *m, int status)
{
    if (m != w->sm)
        w->errors++;
    w->sm_closes++;
    w->sm_status = status;
    w->sm = nullptr;
    w->sparent = nullptr;   // the mux closed and frees it
}

static void cli_mux_close(kx_mux *m, int status)
{
    if (m != w->cm)
        w->errors++;
    w->cm_closes++;
    w->cm_status = status;
    w->cm = nullptr;
    w->cparent = nullptr;
}

static const kx_mux_callbacks srv_mux_cb = {srv_stream, srv_mux_close};
static const kx_mux_callbacks cli_mux_cb = {nullptr, cli_mux_close};

// The parents' callbacks until the mux takes over.
static void parent_ready(kx_conn *c, int status)
{
    bool server = c == w->sparent;
    (server ? w->sready : w->cready) = status + 1;
    if (status != 0)
        return;
    if (server)
        w->sm = kx_mux_start(c, false, &srv_mux_cb, w, nullptr, 0);
    else
        w->cm = kx_mux_start(c, true, &cli_mux_cb, w, nullptr, 0);
}

static void parent_end(kx_conn *c, int)
{
    kx_conn_close(c);
}

static void parent_close(kx_conn *c)
{
    if (c == w->sparent)
        w->sparent = nullptr;
    if (c == w->cparent)
        w->cparent = nullptr;
}

static const kx_conn_callbacks parent_cb = {parent_ready, nullptr, parent_end, nullptr,
                                            parent_close};

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0 || w->sparent) {
        w->errors++;
        return;
    }
    w->sparent = kx_conn_accept(server, sctx, &parent_cb, nullptr);
    if (!w->sparent)
        w->errors++;
}

// A connected pair with a mux on each end.
static int up(void **)
{
    w = (world *)calloc(1, sizeof *w);
    if (!w || uv_loop_init(&w->loop) != 0)
        return -1;
    uv_timer_init(&w->loop, &w->timer);
    uv_timer_init(&w->loop, &w->tick);
    uv_tcp_init(&w->loop, &w->listener);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    if (uv_tcp_bind(&w->listener, (const struct sockaddr *)&a, 0) != 0 ||
        uv_listen((uv_stream_t *)&w->listener, 8, on_connection) != 0)
        return -1;
    struct sockaddr_in bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&w->listener, (struct sockaddr *)&bound, &len);
    w->cparent = kx_conn_connect(&w->loop, "127.0.0.1", ntohs(bound.sin_port), cctx, "127.0.0.1",
                                 &parent_cb, nullptr);
    if (!w->cparent)
        return -1;
    if (!run_until([] { return (w->cm && w->sm) || w->errors || w->cready > 1 || w->sready > 1; }))
        return -1;
    if (w->errors || w->cready != 1 || w->sready != 1)
        return -1;
    return 0;
}

static bool all_closed(void)
{
    return !w->cm && !w->sm && !w->cparent && !w->sparent;
}

// Closes whatever is left and checks that nothing leaked a handle.
static int down(void **)
{
    if (w->cm)
        kx_mux_close(w->cm);
    if (w->sm)
        kx_mux_close(w->sm);
    bool ok = run_until(all_closed);
    uv_close((uv_handle_t *)&w->listener, nullptr);
    uv_close((uv_handle_t *)&w->timer, nullptr);
    uv_close((uv_handle_t *)&w->tick, nullptr);
    // Stream handles close a loop turn after their mux: drain it all.
    uv_run(&w->loop, UV_RUN_DEFAULT);
    int lc = uv_loop_close(&w->loop);
    for (int i = 0; i < MAX_EP; i++) {
        kx_buf_free(&w->cli[i].got);
        kx_buf_free(&w->srv[i].got);
        if (w->cli[i].c || w->srv[i].c)
            ok = false;   // a stream never got its on_close
    }
    int errors = w->errors;
    free(w);
    w = nullptr;
    if (!ok || lc != 0 || errors) {
        fprintf(stderr, "down: closed %d, loop_close %d, errors %d\n", ok, lc, errors);
        return -1;
    }
    return 0;
}

static kx_conn *open_stream(int i)
{
    kx_conn *c = kx_mux_open(w->cm, &ep_cb, &w->cli[i]);
    assert_non_null(c);
    assert_true(kx_conn_is_stream(c));
    w->cli[i].c = c;
    return c;
}

// Data both ways; the opener closes, the accepting side sees a clean end,
// closes too, and both streams are gone from both muxes.
static void hello_and_close(void **)
{
    assert_false(kx_conn_is_stream(w->cparent));
    w->srv_close_on_end = true;
    kx_conn *c = open_stream(0);
    assert_int_equal(kx_mux_streams(w->cm), 1);
    assert_ptr_equal(kx_mux_user(w->cm), w);
    assert_false(kx_mux_closing(w->cm));
    assert_int_equal(kx_conn_write(c, (const uint8_t *)"hello", 5), 0);
    assert_true(run_until([] { return w->srv[0].rx == 5; }));
    assert_int_equal(w->nsrv, 1);
    assert_memory_equal(w->srv[0].got.data, "hello", 5);
    assert_int_equal(kx_mux_streams(w->sm), 1);
    // Only the opener opens.
    assert_null(kx_mux_open(w->sm, &ep_cb, nullptr));
    // The stream knows its parent's peer (the node authenticates the API
    // server by its certificate on the stream).
    char cn[64], orgs[64];
    assert_int_equal(kx_conn_peer_subject(w->srv[0].c, cn, sizeof cn, orgs, sizeof orgs), 0);
    assert_string_equal(cn, "kubexec-apiserver");

    // Header + payload in one write2, and an empty piece.
    assert_int_equal(kx_conn_write2(w->srv[0].c, (const uint8_t *)"wor", 3,
                                    (const uint8_t *)"ld", 2),
                     0);
    assert_int_equal(kx_conn_write2(w->srv[0].c, (const uint8_t *)"!", 1, nullptr, 0), 0);
    assert_true(run_until([] { return w->cli[0].rx == 6; }));
    assert_memory_equal(w->cli[0].got.data, "world!", 6);

    kx_conn_close(c);
    assert_int_equal(kx_conn_write(c, (const uint8_t *)"late", 4), -EPIPE);
    assert_true(run_until([] { return w->cli[0].closes && w->srv[0].closes; }));
    assert_int_equal(w->srv[0].ends, 1);
    assert_int_equal(w->srv[0].end_status, 0);
    assert_int_equal(w->srv[0].rx, 5);
    assert_int_equal(w->cli[0].ends, 0);
    assert_int_equal(w->cli[0].closes, 1);
    assert_int_equal(kx_mux_streams(w->cm), 0);
    assert_int_equal(kx_mux_streams(w->sm), 0);
    // The connection stays for the next stream.
    run_for(50);
    assert_non_null(w->cm);
    assert_non_null(w->sm);
    c = open_stream(1);
    assert_int_equal(kx_conn_write(c, (const uint8_t *)"again", 5), 0);
    assert_true(run_until([] { return w->srv[1].rx == 5; }));
    assert_memory_equal(w->srv[1].got.data, "again", 5);
    assert_int_equal(w->cm_closes + w->sm_closes, 0);
}

// The accepting side closes first: the opener sees the clean end.
static void accepting_side_closes_first(void **)
{
    kx_conn *c = open_stream(0);
    w->cli[0].close_on_end = true;
    assert_int_equal(kx_conn_write(c, (const uint8_t *)"ping", 4), 0);
    assert_true(run_until([] { return w->srv[0].rx == 4; }));
    assert_int_equal(kx_conn_write(w->srv[0].c, (const uint8_t *)"pong", 4), 0);
    kx_conn_close(w->srv[0].c);
    assert_true(run_until([] { return w->cli[0].closes && w->srv[0].closes; }));
    assert_int_equal(w->cli[0].rx, 4);
    assert_memory_equal(w->cli[0].got.data, "pong", 4);
    assert_int_equal(w->cli[0].ends, 1);
    assert_int_equal(w->cli[0].end_status, 0);
    assert_int_equal(kx_mux_streams(w->cm), 0);
    assert_int_equal(kx_mux_streams(w->sm), 0);
}

static const size_t kBig = 2u << 20;

// A paused stream stops its sender after KX_MUX_STREAM_WINDOW bytes while a
// second stream on the same connection goes on; the resume delivers all.
static void flow_control_per_stream(void **)
{
    w->srv_pause = true;
    kx_conn *c = open_stream(0);
    w->cli[0].total = kBig;
    w->srv[0].check_pattern = true;
    // One write of 2 MiB: the window takes 256 KiB, the rest waits.
    uint8_t *buf = (uint8_t *)malloc(kBig);
    assert_non_null(buf);
    for (size_t i = 0; i < kBig; i++)
        buf[i] = pattern(i);
    assert_int_equal(kx_conn_write(c, buf, kBig), 0);
    free(buf);
    w->cli[0].written = kBig;
    assert_true(kx_conn_queued(c) > KX_CONN_HIGH_WATER);
    // The parent's queue drains; the stream's stays at what the window
    // holds back, exactly.
    assert_true(run_until([] {
        return w->nsrv == 1 && kx_conn_queued(w->cli[0].c) == kBig - KX_MUX_STREAM_WINDOW;
    }));
    run_for(100);
    assert_int_equal(kx_conn_queued(c), kBig - KX_MUX_STREAM_WINDOW);
    assert_int_equal(w->srv[0].rx, 0);

    // Stream 2 is not held up.
    w->srv_pause = false;
    open_stream(1);
    w->cli[1].total = 300 * 1024;   // more than a window: needs WINDOW frames back
    w->srv[1].check_pattern = true;
    feed(&w->cli[1]);
    assert_true(run_until([] { return w->nsrv == 2 && w->srv[1].rx == 300 * 1024; }));
    assert_int_equal(w->srv[1].bad, 0);
    assert_int_equal(w->srv[0].rx, 0);
    assert_int_equal(kx_conn_queued(c), kBig - KX_MUX_STREAM_WINDOW);
    assert_int_equal(w->cli[0].drains, 0);

    kx_conn_resume(w->srv[0].c);
    assert_true(run_until([] { return w->srv[0].rx == kBig && w->cli[0].drains > 0; }));
    assert_int_equal(w->srv[0].bad, 0);
    assert_int_equal(w->srv[0].rx, kBig);
    assert_int_equal(w->cli[0].drains, 1);
    assert_int_equal(kx_conn_queued(c), 0);

    // Pause again mid-transfer and resume: nothing lost or doubled.
    w->cli[0].total = 2 * kBig;
    kx_conn_pause(w->srv[0].c);
    feed(&w->cli[0]);
    run_for(100);
    assert_int_equal(w->srv[0].rx, kBig);
    kx_conn_resume(w->srv[0].c);
    assert_true(run_until([] { return w->srv[0].rx == 2 * kBig; }));
    assert_int_equal(w->srv[0].bad, 0);
}

// kx_conn_abort on one end resets the stream: the other end's on_end has a
// negative status, both close, the connection stays.
static void abort_resets_the_stream(void **)
{
    kx_conn *c = open_stream(0);
    kx_conn *c2 = open_stream(1);
    assert_int_equal(kx_conn_write(c, (const uint8_t *)"x", 1), 0);
    assert_int_equal(kx_conn_write(c2, (const uint8_t *)"y", 1), 0);
    assert_true(run_until([] { return w->srv[0].rx == 1 && w->srv[1].rx == 1; }));

    kx_conn_abort(c);
    assert_true(run_until([] { return w->cli[0].closes && w->srv[0].closes; }));
    assert_int_equal(w->srv[0].ends, 1);
    assert_true(w->srv[0].end_status < 0);
    assert_int_equal(w->cli[0].ends, 0);

    // And from the accepting side.
    kx_conn_abort(w->srv[1].c);
    assert_true(run_until([] { return w->cli[1].closes && w->srv[1].closes; }));
    assert_int_equal(w->cli[1].ends, 1);
    assert_true(w->cli[1].end_status < 0);
    assert_int_equal(kx_mux_streams(w->cm), 0);
    assert_int_equal(kx_mux_streams(w->sm), 0);
    assert_non_null(w->cm);
    assert_non_null(w->sm);
}

static bool all_streams_closed(void)
{
    for (int i = 0; i < 3; i++)
        if (!w->cli[i].closes || !w->srv[i].closes)
            return false;
    return true;
}

static void open_three(void)
{
    for (int i = 0; i < 3; i++)
        assert_int_equal(kx_conn_write(open_stream(i), (const uint8_t *)"abc", 3), 0);
    assert_true(run_until([] {
        return w->nsrv == 3 && w->srv[0].rx == 3 && w->srv[1].rx == 3 && w->srv[2].rx == 3;
    }));
}

static void check_three_reset(void)
{
    for (int i = 0; i < 3; i++) {
        assert_int_equal(w->cli[i].ends, 1);
        assert_true(w->cli[i].end_status < 0);
        assert_int_equal(w->cli[i].closes, 1);
        assert_int_equal(w->srv[i].ends, 1);
        assert_true(w->srv[i].end_status < 0);
        assert_int_equal(w->srv[i].closes, 1);
    }
    assert_int_equal(w->cm_closes, 1);
    assert_int_equal(w->sm_closes, 1);
    assert_true(w->cm_status < 0);
    assert_true(w->sm_status < 0);
}

// The opener's parent connection dies: every stream on both ends ends with
// an error and closes; each mux reports on_close once.
static void parent_abort_ends_every_stream(void **)
{
    open_three();
    kx_conn_abort(w->cparent);
    assert_true(run_until([] { return all_streams_closed() && !w->cm && !w->sm; }));
    run_for(50);
    check_three_reset();
}

// kx_mux_close on the accepting side, whose streams' users do nothing on
// on_end: the same, seen from the other end.
static void mux_close_ends_every_stream(void **)
{
    open_three();
    size_t before = kx_mux_streams(w->sm);
    assert_int_equal(before, 3);
    kx_mux_close(w->sm);
    assert_true(w->sm == nullptr || kx_mux_closing(w->sm));
    assert_true(run_until([] { return all_streams_closed() && !w->cm && !w->sm; }));
    run_for(50);
    check_three_reset();
}

// A protocol error from the peer (here a second OPEN of stream 1, written
// straight to the parent) ends the connection and every stream on both ends.
static void protocol_error_ends_the_connection(void **)
{
    open_three();
    uint8_t h[KX_MUX_HEADER];
    kx_mux_put_header(h, 1, KX_MUX_OPEN, 0);
    assert_int_equal(kx_conn_write(w->cparent, h, sizeof h), 0);
    assert_true(run_until([] { return all_streams_closed() && !w->cm && !w->sm; }));
    check_three_reset();
    for (int i = 0; i < 3; i++)
        assert_int_equal(w->srv[i].end_status, -EPROTO);
    assert_int_equal(w->sm_status, -EPROTO);
}

// ---- the found bugs' reproducers ------------------------------------------

// A graceful kx_conn_close must deliver everything written before it, even
// when the peer is reading slowly. The first mux.cc sent FIN and at once RST
// (the peer's FIN had not come yet), and the RST ended the peer's stream with
// -ECONNRESET, dropping the bytes it held for its paused user: the tail of an
// exec's output or a log whose reader (kubectl) is slow.
static void close_delivers_held_bytes(void **)
{
    w->srv_pause = true;
    kx_conn *c = open_stream(0);
    assert_int_equal(kx_conn_write(c, (const uint8_t *)"tail", 4), 0);
    kx_conn_close(c);
    assert_true(run_until([] { return w->nsrv == 1 && w->cli[0].closes == 1; }));
    run_for(100);   // FIN (and whatever follows) reach the paused stream
    if (w->srv[0].c) {
        kx_conn_resume(w->srv[0].c);
        run_until([] { return w->srv[0].ends > 0; });
    }
    fprintf(stderr, "paused peer after close: rx %zu, ends %d, status %d, closed %d\n",
            w->srv[0].rx, w->srv[0].ends, w->srv[0].end_status, w->srv[0].closes);
    assert_int_equal(w->srv[0].rx, 4);
    assert_int_equal(w->srv[0].ends, 1);
    assert_int_equal(w->srv[0].end_status, 0);
}

// A resume from inside a callback hands the held bytes on from a later loop
// phase; a FIN that arrives in the same read, after the resume, must wait for
// them. Here stream 1's data resumes stream 0 (paused, holding 1000 bytes) and
// stream 0's FIN follows in the same read: stream 0 must see its 1000 bytes,
// then the clean end.
static void fin_after_resume_from_callback_waits_for_held_bytes(void **)
{
    w->srv_pause = true;
    w->srv_close_on_end = true;
    kx_conn *c0 = open_stream(0);
    kx_conn *c1 = open_stream(1);
    w->srv[0].check_pattern = true;
    w->cli[0].total = 1000;
    feed(&w->cli[0]);
    assert_true(run_until([] { return w->nsrv == 2; }));
    run_for(50);   // the 1000 bytes wait in the paused stream 0
    assert_int_equal(w->srv[0].rx, 0);
    kx_conn_resume(w->srv[1].c);
    run_for(20);
    g_cb_ops[0] = {&w->srv[0], OP_RESUME, 0};
    g_ncb_ops = 1;
    // Both frames go out before the loop runs again: one read on the other side.
    assert_int_equal(kx_conn_write(c1, (const uint8_t *)"x", 1), 0);
    kx_conn_close(c0);
    assert_true(run_until([] { return w->srv[0].closes == 1; }));
    fprintf(stderr, "resumed from a callback, FIN in the same read: rx %zu, ends %d (%d)\n",
            w->srv[0].rx, w->srv[0].ends, w->srv[0].end_status);
    assert_int_equal(w->srv[1].rx, 1);
    assert_int_equal(w->srv[0].rx, 1000);
    assert_int_equal(w->srv[0].bad, 0);
    assert_int_equal(w->srv[0].ends, 1);
    assert_int_equal(w->srv[0].end_status, 0);
}

// One side closes while the other still has bytes queued beyond the window
// (a client leaves while the node sends output): the other side takes the
// clean end, closes too, and is gone at once. The first mux.cc kept the
// credit for the bytes the closing side held unread, so the other side's
// queue never moved and its stream lingered until the 10 s close timer
// reset it (found by random_operations_keep_every_stream_whole).
static void close_returns_the_window_it_held(void **)
{
    w->srv_close_on_end = true;
    kx_conn *c = open_stream(0);
    kx_conn_pause(c);
    assert_int_equal(kx_conn_write(c, (const uint8_t *)"hi", 2), 0);
    assert_true(run_until([] { return w->nsrv == 1 && w->srv[0].rx == 2; }));
    w->srv[0].total = 3 * KX_MUX_STREAM_WINDOW;
    feed(&w->srv[0]);
    run_for(100);   // the window's worth waits unread in the paused stream
    assert_int_equal(w->cli[0].rx, 0);
    assert_true(kx_conn_queued(w->srv[0].c) > 0);
    kx_conn_close(c);
    // Well inside the 10 s after which a stuck close is reset.
    bool gone = run_until([] { return w->srv[0].closes == 1 && w->cli[0].closes == 1; }, 3000);
    fprintf(stderr, "peer with %zu bytes queued after our close: ends %d (%d), closed %d\n",
            w->srv[0].written, w->srv[0].ends, w->srv[0].end_status, w->srv[0].closes);
    assert_true(gone);
    assert_int_equal(w->srv[0].ends, 1);
    assert_int_equal(w->srv[0].end_status, 0);
    assert_int_equal(kx_mux_streams(w->cm), 0);
    assert_int_equal(kx_mux_streams(w->sm), 0);
}

// kx_mux_close promises "streams still open are reset", and the peer must
// not mistake a stream cut short for a complete one. A user that closes its
// stream from on_end (what conn.h asks of every user) made the first mux.cc
// send a FIN while the connection was closing, and the peer saw a clean
// on_end(0).
static void mux_close_is_not_a_clean_end(void **)
{
    w->srv_close_on_end = true;
    open_three();
    kx_mux_close(w->sm);
    assert_true(run_until([] { return all_streams_closed() && !w->cm && !w->sm; }));
    for (int i = 0; i < 3; i++) {
        fprintf(stderr, "stream %d after the peer's kx_mux_close: on_end(%d)\n", i,
                w->cli[i].end_status);
        assert_int_equal(w->cli[i].ends, 1);
        assert_true(w->cli[i].end_status < 0);
    }
}

// The bytes waiting for window (`out`): a writer that refills from on_drain
// (queue below KX_CONN_LOW_WATER, never empty) must not make the buffer grow
// by everything the stream carries. The first mux.cc dropped the sent front
// only when the queue emptied: 32 MiB through one stream grew the heap by
// 32 MiB.
static void long_transfer_keeps_memory_bounded(void **)
{
    const size_t total = 32u << 20;
    open_stream(0);
    w->cli[0].total = total;
    w->srv[0].check_pattern = true;   // counted, not kept
    w->heap_base = w->heap_peak = heap_in_use();
    feed(&w->cli[0]);
    assert_true(run_until([] { return w->nsrv == 1 && w->srv[0].rx == 32u << 20; }, 60000));
    assert_int_equal(w->srv[0].bad, 0);
    size_t grew = w->heap_peak - w->heap_base;
    fprintf(stderr, "heap growth during 32 MiB: %zu KiB\n", grew / 1024);
    assert_true(grew < (8u << 20));
}

// Random interleavings of what streams do -- open, send (1 byte to 300 KB),
// pause, resume, close, abort, from either end, at once or from inside a
// stream's on_data -- over one connection. What must hold whatever the order:
//   every byte that arrives is the right byte in the right place, and no end
//   receives more than its peer wrote;
//   an end that sees a clean on_end(0) got everything its peer wrote;
//   an on_end < 0 comes only from the peer's abort, or from bytes sent to a
//   peer that had closed (the connection stays);
//   a peer that closed gracefully gives a clean end to a side that did not
//   close or abort first and sent nothing the peer did not take;
//   every stream is closed exactly once on both sides, and the connection
//   and both muxes outlive them all with no stream left.
static uint64_t g_rng;

static uint32_t rnd(uint32_t n)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng % n);
}

static int g_opened;

static bool random_all_closed(void)
{
    for (int i = 0; i < g_opened; i++)
        if (w->cli[i].c || w->srv[i].c || i >= w->nsrv)
            return false;
    return true;
}

static void random_ops(uint64_t seed)
{
    static const size_t sizes[] = {1, 7, 1000, 4096, KX_MUX_MAX_DATA, 65536, 300000};
    g_rng = seed * 0x9E3779B97F4A7C15ull + 1;
    g_opened = 0;
    g_ncb_ops = 0;
    w->srv_close_on_end = true;
    for (int i = 0; i < MAX_EP; i++)
        w->srv[i].check_pattern = true;
    for (int step = 0; step < 300; step++) {
        uint32_t op = rnd(100);
        if (g_opened < MAX_EP && (g_opened == 0 || op < 6)) {
            w->cli[g_opened].check_pattern = true;
            w->cli[g_opened].close_on_end = true;
            open_stream(g_opened++);
            continue;
        }
        int i = (int)rnd((uint32_t)g_opened);
        ep *e = rnd(2) ? &w->cli[i] : &w->srv[i];
        ep_op what = op < 55 ? OP_SEND : op < 72 ? OP_PAUSE : op < 90 ? OP_RESUME
                     : op < 97 ? OP_CLOSE : OP_ABORT;
        size_t n = sizes[rnd(sizeof sizes / sizeof sizes[0])];
        if (rnd(3) == 0 && g_ncb_ops < (int)(sizeof g_cb_ops / sizeof g_cb_ops[0]))
            g_cb_ops[g_ncb_ops++] = {e, what, n};   // from inside the next on_data
        else
            apply_op(e, what, n);
        for (uint32_t k = rnd(4); k > 0; k--)
            uv_run(&w->loop, UV_RUN_NOWAIT);
        if (rnd(20) == 0)
            run_for(2);
    }
    g_ncb_ops = 0;
}

// The per-stream checks common to both endings. Returns whether they hold
// (and says which did not).
static bool random_check(uint64_t seed, bool done, bool connection_died)
{
    bool all = done;
    for (int i = 0; i < g_opened; i++)
        for (int side = 0; side < 2; side++) {
            const ep *a = side ? &w->srv[i] : &w->cli[i];
            const ep *b = side ? &w->cli[i] : &w->srv[i];
            bool ok = a->bad == 0 && a->rx <= b->written && a->ends <= 1 && a->closes == 1 &&
                      !a->c;
            if (a->ends && a->end_status == 0)
                ok = ok && a->rx == b->written;
            // Data that reaches a stream its side closed is answered with
            // RST (mux.cc, as TCP does): a reset comes from the peer's
            // abort, or from bytes the peer, having closed, did not take --
            // or from the connection's end.
            bool b_graceful = (b->closed || b->closed_by_end) && !b->aborted;
            bool a_overran = a->written > b->rx;
            if (a->ends && a->end_status < 0 && !connection_died)
                ok = ok && (b->aborted || (b_graceful && a_overran));
            if (b_graceful && !a->aborted && !a->closed && !a_overran && !connection_died)
                ok = ok && a->ends == 1 && a->end_status == 0;
            if (!ok || !done)
                fprintf(stderr,
                        "seed %llu stream %d %s: rx %zu of %zu written, bad %zu, ends %d "
                        "(status %d), closes %d; it closed %d by_end %d aborted %d; peer "
                        "closed %d by_end %d aborted %d; all closed %d\n",
                        (unsigned long long)seed, i, side ? "accepting end" : "opening end",
                        a->rx, b->written, a->bad, a->ends, a->end_status, a->closes, a->closed,
                        a->closed_by_end, a->aborted, b->closed, b->closed_by_end, b->aborted,
                        done);
            all = all && ok;
        }
    return all;
}

static void random_run(uint64_t seed)
{
    random_ops(seed);
    // Wind down: everything resumes; each stream still open on the opening
    // side is closed there, and its peer closes on the clean end.
    for (int i = 0; i < g_opened; i++) {
        if (w->srv[i].c && !kx_conn_closing(w->srv[i].c))
            kx_conn_resume(w->srv[i].c);
        if (w->cli[i].c && !kx_conn_closing(w->cli[i].c)) {
            kx_conn_resume(w->cli[i].c);
            w->cli[i].closed = true;
            kx_conn_close(w->cli[i].c);
        }
    }
    // Everything is gone in milliseconds; a close stuck waiting for window
    // would take the 10 s of its reset timer.
    bool done = run_until(random_all_closed, 8000);
    assert_true(random_check(seed, done, false));
    assert_non_null(w->cm);
    assert_non_null(w->sm);
    assert_int_equal(kx_mux_streams(w->cm), 0);
    assert_int_equal(kx_mux_streams(w->sm), 0);
    assert_int_equal(w->cm_closes + w->sm_closes, 0);
    assert_int_equal(w->errors, 0);
}

// The same random phase, then the connection goes in the middle of it all
// (kx_mux_close on either end, or the opener's TLS connection aborted):
// every stream on both sides ends once and closes once, none with a clean
// end it did not earn, and both muxes close.
static void random_run_connection_dies(uint64_t seed)
{
    random_ops(seed);
    switch (seed % 3) {
    case 0: kx_mux_close(w->cm); break;
    case 1: kx_mux_close(w->sm); break;
    default: kx_conn_abort(w->cparent); break;
    }
    bool done = run_until([] { return random_all_closed() && !w->cm && !w->sm; }, 8000);
    assert_true(random_check(seed, done, true));
    assert_int_equal(w->cm_closes, 1);
    assert_int_equal(w->sm_closes, 1);
    assert_true(w->cm_status < 0 || w->sm_status < 0);
}

// 16 seeds in `make check`; KX_MUX_RANDOM_SEEDS=N runs seeds 1..N.
static uint64_t random_seeds(void)
{
    const char *env = getenv("KX_MUX_RANDOM_SEEDS");
    return env && *env ? strtoull(env, nullptr, 10) : 16;
}

// Each seed on a connection of its own.
static void for_each_seed(void **state, void (*run)(uint64_t))
{
    for (uint64_t seed = 1; seed <= random_seeds(); seed++) {
        if (seed > 1) {
            assert_int_equal(down(state), 0);
            assert_int_equal(up(state), 0);
        }
        run(seed);
    }
}

static void random_operations_keep_every_stream_whole(void **state)
{
    for_each_seed(state, random_run);
}

static void random_operations_then_the_connection_goes(void **state)
{
    for_each_seed(state, random_run_connection_dies);
}

int main(void)
{
    // As the daemons: a write to a socket the peer closed is an error
    // return, not a signal.
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(header_bytes),
        cmocka_unit_test(mixed_stream_whole_split_and_bytewise),
        cmocka_unit_test(malformed_frames_are_sticky_errors),
        cmocka_unit_test(failing_callback_stops_parsing),
        cmocka_unit_test(empty_data_piece),
        cmocka_unit_test_setup_teardown(hello_and_close, up, down),
        cmocka_unit_test_setup_teardown(accepting_side_closes_first, up, down),
        cmocka_unit_test_setup_teardown(flow_control_per_stream, up, down),
        cmocka_unit_test_setup_teardown(abort_resets_the_stream, up, down),
        cmocka_unit_test_setup_teardown(parent_abort_ends_every_stream, up, down),
        cmocka_unit_test_setup_teardown(mux_close_ends_every_stream, up, down),
        cmocka_unit_test_setup_teardown(protocol_error_ends_the_connection, up, down),
        cmocka_unit_test_setup_teardown(close_delivers_held_bytes, up, down),
        cmocka_unit_test_setup_teardown(fin_after_resume_from_callback_waits_for_held_bytes, up,
                                        down),
        cmocka_unit_test_setup_teardown(close_returns_the_window_it_held, up, down),
        cmocka_unit_test_setup_teardown(mux_close_is_not_a_clean_end, up, down),
        cmocka_unit_test_setup_teardown(long_transfer_keeps_memory_bounded, up, down),
        cmocka_unit_test_setup_teardown(random_operations_keep_every_stream_whole, up, down),
        cmocka_unit_test_setup_teardown(random_operations_then_the_connection_goes, up, down),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
