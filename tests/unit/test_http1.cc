// Unit tests for kubexec/http1.h. Every message is fed whole, byte by byte
// and at random split points; the callback log must be identical each time.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
// cmocka 1.1.5 has no extern "C" guards of its own.
extern "C" {
#include <cmocka.h>
}

#include "kubexec/http1.h"

// --- A recorder: everything the callbacks see, as text ----------------------

struct rec {
    char log[1 << 16];
    size_t len;
    int heads, bodies, completes;
    int on_head_ret;   // returned by on_head
    int on_body_ret;   // returned by on_body
    bool count_only;   // count body bytes instead of logging them
    size_t body_bytes;
    kx_http_parser *parser;
};

static void rec_put(rec *r, const char *s, size_t n)
{
    assert_true(r->len + n < sizeof r->log);
    memcpy(r->log + r->len, s, n);
    r->len += n;
    r->log[r->len] = '\0';
}

static void rec_str(rec *r, const char *s)
{
    rec_put(r, s, strlen(s));
}

static int cb_head(void *user, const kx_http_head *h)
{
    rec *r = static_cast<rec *>(user);
    char line[20000];
    snprintf(line, sizeof line, "H %s %s %d %d.%d up=%d ka=%d cl=%lld ch=%d\n", h->method,
             h->url, h->status, h->http_major, h->http_minor, h->upgrade, h->keep_alive,
             (long long)h->content_length, h->chunked);
    rec_str(r, line);
    for (size_t i = 0; i < h->nheaders; i++) {
        snprintf(line, sizeof line, " %s=%s\n", h->headers[i].name, h->headers[i].value);
        rec_str(r, line);
    }
    // The head handed to on_head is the parser's "last completed head".
    if (r->parser)
        assert_ptr_equal(kx_http_parser_head(r->parser), h);
    r->heads++;
    return r->on_head_ret;
}

static int cb_body(void *user, const uint8_t *p, size_t n)
{
    rec *r = static_cast<rec *>(user);
    assert_true(n > 0);
    r->body_bytes += n;
    if (!r->count_only)
        rec_put(r, reinterpret_cast<const char *>(p), n);
    r->bodies++;
    return r->on_body_ret;
}

static int cb_complete(void *user)
{
    rec *r = static_cast<rec *>(user);
    rec_str(r, "|C\n");
    r->completes++;
    return 0;
}

static const kx_http_callbacks cbs = {cb_head, cb_body, cb_complete};

enum mode { WHOLE, BYTES, RANDOM };

static uint32_t rng_state;
static uint32_t rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

// Feeds data in pieces chosen by mode. Returns the total consumed, stopping
// at an upgrade handoff (consumed < fed and parser upgraded); a pause
// (consumed < fed, not upgraded) re-feeds the rest, as a caller would. A
// negative return is the parser's error.
static long feed_mode(kx_http_parser *p, const char *data, size_t len, mode m, uint32_t seed,
                      int *pauses)
{
    rng_state = seed;
    size_t off = 0;
    while (off < len) {
        size_t chunk = len - off;
        if (m == BYTES)
            chunk = 1;
        else if (m == RANDOM)
            chunk = 1 + rng() % (chunk < 40 ? chunk : 40);
        long r = kx_http_feed(p, reinterpret_cast<const uint8_t *>(data) + off, chunk);
        if (r < 0)
            return r;
        assert_true((size_t)r <= chunk);
        off += (size_t)r;
        if ((size_t)r < chunk) {
            if (kx_http_upgraded(p))
                return (long)off;
            if (pauses)
                (*pauses)++;
        }
    }
    return (long)off;
}

struct run_result {
    long consumed;
    int pauses;
};

// Runs one input in every mode; checks the log and the consumed count are the
// same in all of them and returns the log of the whole run in `out`.
static run_result run_all(kx_http_type type, const char *data, size_t len, rec *out,
                          int on_head_ret = 0, bool eof = false, int eof_expect = 0)
{
    static rec r;
    run_result first = {0, 0};
    for (int i = 0; i < 2 + 30; i++) {
        mode m = i == 0 ? WHOLE : i == 1 ? BYTES : RANDOM;
        memset(&r, 0, sizeof r);
        r.on_head_ret = on_head_ret;
        static kx_http_parser p;
        kx_http_parser_init(&p, type, &cbs, &r);
        r.parser = &p;
        int pauses = 0;
        long c = feed_mode(&p, data, len, m, 1000u + (uint32_t)i, &pauses);
        if (eof && c >= 0)
            assert_int_equal(kx_http_eof(&p), eof_expect);
        if (i == 0) {
            *out = r;
            first.consumed = c;
            first.pauses = pauses;
        } else {
            if (c != first.consumed || strcmp(r.log, out->log) != 0)
                fail_msg("mode %d seed %d differs: consumed %ld vs %ld\n%s\n---\n%s", m, i, c,
                         first.consumed, r.log, out->log);
        }
    }
    return first;
}

#define S(lit) lit, sizeof(lit) - 1

// --- Requests ---------------------------------------------------------------

static const char spdy_upgrade[] =
    "POST /api/v1/namespaces/default/pods/mypod/exec?command=sh&command=-c&command=exit+42"
    "&container=main&stderr=true&stdout=true HTTP/1.1\r\n"
    "Host: 127.0.0.1:16443\r\n"
    "User-Agent: kubectl/v1.32.4 (linux/amd64) kubernetes/9894294\r\n"
    "Content-Length: 0\r\n"
    "Authorization: Bearer fake-token\r\n"
    "Connection: Upgrade\r\n"
    "Kubectl-Command: kubectl exec\r\n"
    "Kubectl-Session: 284f8fad-0000\r\n"
    "Upgrade: SPDY/3.1\r\n"
    "X-Stream-Protocol-Version: v5.channel.k8s.io\r\n"
    "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
    "X-Stream-Protocol-Version: v3.channel.k8s.io\r\n"
    "X-Stream-Protocol-Version: v2.channel.k8s.io\r\n"
    "X-Stream-Protocol-Version: channel.k8s.io\r\n"
    "\r\n";

// A SPDY/3 SYN_STREAM frame header and some payload that must not be eaten.
static const char spdy_bytes[] = "\x80\x03\x00\x01\x00\x00\x00\x0a\x00\x00\x00\x01GET / HTTP";

static void spdy_upgrade_hands_off_exactly_at_head(void **)
{
    char buf[4096];
    size_t hl = sizeof spdy_upgrade - 1;
    memcpy(buf, spdy_upgrade, hl);
    memcpy(buf + hl, spdy_bytes, sizeof spdy_bytes - 1);
    size_t total = hl + sizeof spdy_bytes - 1;

    static rec r;
    run_result res = run_all(KX_HTTP_REQUEST, buf, total, &r);
    assert_int_equal(res.consumed, (long)hl);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.completes, 1);
    assert_int_equal(r.bodies, 0);

    // Whole buffer at once, checked against the parsed head.
    static kx_http_parser p;
    static rec r2;
    memset(&r2, 0, sizeof r2);
    kx_http_parser_init(&p, KX_HTTP_REQUEST, &cbs, &r2);
    assert_int_equal(kx_http_feed(&p, (const uint8_t *)buf, total), (long)hl);
    assert_true(kx_http_upgraded(&p));
    // After the handoff nothing more is consumed.
    assert_int_equal(kx_http_feed(&p, (const uint8_t *)buf + hl, total - hl), 0);
    assert_int_equal(kx_http_eof(&p), 0);
    const kx_http_head *h = kx_http_parser_head(&p);
    assert_string_equal(h->method, "POST");
    assert_string_equal(h->url, "/api/v1/namespaces/default/pods/mypod/exec?command=sh&command="
                                "-c&command=exit+42&container=main&stderr=true&stdout=true");
    assert_int_equal(h->http_major, 1);
    assert_int_equal(h->http_minor, 1);
    assert_true(h->upgrade);
    assert_int_equal(h->content_length, 0);
    assert_false(h->chunked);
    assert_int_equal(h->nheaders, 13);
    assert_string_equal(kx_http_get(h, "upgrade"), "SPDY/3.1");
    assert_string_equal(kx_http_get(h, "AUTHORIZATION"), "Bearer fake-token");
    assert_null(kx_http_get(h, "Sec-WebSocket-Key"));
    assert_true(kx_http_has_token(h, "connection", "upgrade"));
    const char *v[8];
    assert_int_equal(kx_http_get_all(h, "x-stream-protocol-version", v, 8), 5);
    assert_string_equal(v[0], "v5.channel.k8s.io");
    assert_string_equal(v[1], "v4.channel.k8s.io");
    assert_string_equal(v[4], "channel.k8s.io");
    assert_int_equal(kx_http_get_all(h, "x-stream-protocol-version", v, 2), 5);
    // Header names keep their case.
    assert_string_equal(h->headers[0].name, "Host");
    assert_string_equal(h->headers[0].value, "127.0.0.1:16443");
}

static const char ws_upgrade[] =
    "GET /api/v1/namespaces/default/pods/mypod/exec?command=sh&container=main&stdin=true"
    "&stdout=true&tty=true HTTP/1.1\r\n"
    "Host: 127.0.0.1:16443\r\n"
    "User-Agent: kubectl.1.32/v1.32.5 (linux/amd64) kubernetes/9894294\r\n"
    "Authorization: Bearer fake-token\r\n"
    "Connection: Upgrade\r\n"
    "Kubectl-Command: kubectl exec\r\n"
    "Kubectl-Session: 284f8fad-1111\r\n"
    "Sec-WebSocket-Key: Din3xiLkZs7zyOsLlNmkjw==\r\n"
    "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Upgrade: websocket\r\n"
    "\r\n";

static void websocket_upgrade_without_content_length(void **)
{
    char buf[4096];
    size_t hl = sizeof ws_upgrade - 1;
    memcpy(buf, ws_upgrade, hl);
    memcpy(buf + hl, "\x82\x85\x01\x02\x03\x04hello", 11);
    static rec r;
    run_result res = run_all(KX_HTTP_REQUEST, buf, hl + 11, &r);
    assert_int_equal(res.consumed, (long)hl);
    assert_non_null(strstr(r.log, "H GET /api/v1/namespaces/default/pods/mypod/exec?command=sh"));
    assert_non_null(strstr(r.log, "up=1 ka=0 cl=-1 ch=0\n"));
    assert_non_null(strstr(r.log, " Sec-WebSocket-Protocol=v5.channel.k8s.io\n"));
}

static void pipelined_keep_alive_requests(void **)
{
    static const char in[] =
        "GET /api?timeout=32s HTTP/1.1\r\nHost: a\r\nAccept: application/json\r\n\r\n"
        "GET /apis?timeout=32s HTTP/1.1\r\nHost: a\r\n\r\n"
        "POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: a\r\n"
        "Content-Length: 11\r\n\r\n{\"kind\":1}\n"
        "GET /api/v1/namespaces/default/pods?limit=500 HTTP/1.1\r\nHost: a\r\n\r\n";
    static rec r;
    run_result res = run_all(KX_HTTP_REQUEST, S(in), &r);
    assert_int_equal(res.consumed, (long)sizeof in - 1);
    assert_int_equal(r.heads, 4);
    assert_int_equal(r.completes, 4);
    assert_string_equal(r.log,
                        "H GET /api?timeout=32s 0 1.1 up=0 ka=1 cl=-1 ch=0\n"
                        " Host=a\n Accept=application/json\n|C\n"
                        "H GET /apis?timeout=32s 0 1.1 up=0 ka=1 cl=-1 ch=0\n Host=a\n|C\n"
                        "H POST /api/v1/namespaces/default/pods 0 1.1 up=0 ka=1 cl=11 ch=0\n"
                        " Host=a\n Content-Length=11\n{\"kind\":1}\n|C\n"
                        "H GET /api/v1/namespaces/default/pods?limit=500 0 1.1 up=0 ka=1 cl=-1 "
                        "ch=0\n Host=a\n|C\n");
}

static void chunked_request_body_is_dechunked(void **)
{
    static const char in[] = "POST /upload HTTP/1.1\r\n"
                             "Transfer-Encoding: chunked\r\n"
                             "X-Empty:\r\n"
                             "\r\n"
                             "5\r\nhello\r\n"
                             "7;ext=1\r\n, world\r\n"
                             "0\r\nTrailer-Field: ignored\r\n\r\n"
                             "GET /next HTTP/1.1\r\n\r\n";
    static rec r;
    run_result res = run_all(KX_HTTP_REQUEST, S(in), &r);
    assert_int_equal(res.consumed, (long)sizeof in - 1);
    assert_string_equal(r.log, "H POST /upload 0 1.1 up=0 ka=1 cl=-1 ch=1\n"
                               " Transfer-Encoding=chunked\n X-Empty=\n"
                               "hello, world|C\n"
                               "H GET /next 0 1.1 up=0 ka=1 cl=-1 ch=0\n|C\n");
}

static void http10_and_connection_close(void **)
{
    static const char in[] = "GET / HTTP/1.0\r\nHost: x\r\n\r\n";
    static rec r;
    run_all(KX_HTTP_REQUEST, S(in), &r);
    assert_non_null(strstr(r.log, "1.0 up=0 ka=0"));

    // Bytes after a Connection: close message are a protocol error.
    static const char in2[] = "GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    run_result res = run_all(KX_HTTP_REQUEST, S(in2), &r);
    assert_int_equal(res.consumed, -EPROTO);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.completes, 1);
}

static void folded_and_spaced_values(void **)
{
    // Header tokens are trimmed by has_token; values lose leading spaces.
    static const char in[] = "GET / HTTP/1.1\r\n"
                             "Connection:   keep-alive ,  Upgrade\r\n"
                             "Upgrade:\twebsocket\r\n"
                             "\r\n";
    static kx_http_parser p;
    static rec r;
    memset(&r, 0, sizeof r);
    kx_http_parser_init(&p, KX_HTTP_REQUEST, &cbs, &r);
    assert_int_equal(kx_http_feed(&p, (const uint8_t *)in, sizeof in - 1), (long)sizeof in - 1);
    const kx_http_head *h = kx_http_parser_head(&p);
    assert_true(h->upgrade);
    assert_true(kx_http_has_token(h, "Connection", "UPGRADE"));
    assert_true(kx_http_has_token(h, "Connection", "keep-alive"));
    assert_false(kx_http_has_token(h, "Connection", "keep"));
    assert_false(kx_http_has_token(h, "Connection", ""));
    assert_false(kx_http_has_token(h, "Upgrade-X", "websocket"));
}

// --- Responses --------------------------------------------------------------

static void response_101_hands_off(void **)
{
    char buf[1024];
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Connection: Upgrade\r\n"
                               "Upgrade: SPDY/3.1\r\n"
                               "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
                               "Date: Thu, 26 Nov 2026 10:00:00 GMT\r\n"
                               "\r\n";
    size_t hl = sizeof head - 1;
    memcpy(buf, head, hl);
    memcpy(buf + hl, spdy_bytes, sizeof spdy_bytes - 1);
    static rec r;
    run_result res = run_all(KX_HTTP_RESPONSE, buf, hl + sizeof spdy_bytes - 1, &r);
    assert_int_equal(res.consumed, (long)hl);
    assert_non_null(strstr(r.log, "H   101 1.1 up=1"));
    assert_non_null(strstr(r.log, "|C\n"));

    // A 101 without the upgrade headers still ends at its head.
    static const char bare[] = "HTTP/1.1 101 Switching Protocols\r\n\r\n\x80\x03";
    res = run_all(KX_HTTP_RESPONSE, S(bare), &r);
    assert_int_equal(res.consumed, (long)sizeof bare - 3);
}

static void responses_with_bodies(void **)
{
    static const char in[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Content-Length: 2\r\n\r\n{}"
                             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "a\r\n2026-11-26\r\n1\r\n\n\r\n0\r\n\r\n"
                             "HTTP/1.1 204 No Content\r\n\r\n"
                             "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found";
    static rec r;
    run_result res = run_all(KX_HTTP_RESPONSE, S(in), &r);
    assert_int_equal(res.consumed, (long)sizeof in - 1);
    assert_string_equal(r.log, "H   200 1.1 up=0 ka=1 cl=2 ch=0\n"
                               " Content-Type=application/json\n Content-Length=2\n{}|C\n"
                               "H   200 1.1 up=0 ka=1 cl=-1 ch=1\n Transfer-Encoding=chunked\n"
                               "2026-11-26\n|C\n"
                               "H   204 1.1 up=0 ka=1 cl=-1 ch=0\n|C\n"
                               "H   404 1.1 up=0 ka=1 cl=9 ch=0\n Content-Length=9\nnot found|C\n");
}

static void response_body_until_eof(void **)
{
    static const char in[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nstreamed log line\n";
    static rec r;
    run_all(KX_HTTP_RESPONSE, S(in), &r, 0, true, 0);
    assert_string_equal(r.log, "H   200 1.1 up=0 ka=0 cl=-1 ch=0\n Connection=close\n"
                               "streamed log line\n|C\n");

    // EOF inside a Content-Length body is a truncated message.
    static const char cut[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    run_all(KX_HTTP_RESPONSE, S(cut), &r, 0, true, -EPROTO);
    // EOF inside a head too.
    static const char cut2[] = "HTTP/1.1 200 OK\r\nContent-Le";
    run_all(KX_HTTP_RESPONSE, S(cut2), &r, 0, true, -EPROTO);
}

static void response_to_head_has_no_body(void **)
{
    static const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
                             "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    static kx_http_parser p;
    static rec r;
    memset(&r, 0, sizeof r);
    kx_http_parser_init(&p, KX_HTTP_RESPONSE, &cbs, &r);
    kx_http_parser_set_head_request(&p, true);
    assert_int_equal(kx_http_feed(&p, (const uint8_t *)in, sizeof in - 1), (long)sizeof in - 1);
    assert_int_equal(r.heads, 2);
    assert_int_equal(r.completes, 2);
    assert_int_equal(r.bodies, 0);
    assert_true(kx_http_parser_head(&p)->keep_alive);
}

// --- Pausing and callback errors ----------------------------------------------

static void on_head_pause_stops_after_head(void **)
{
    static const char in[] = "POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                             "GET /y HTTP/1.1\r\n\r\n";
    size_t head1 = strlen("POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
    static kx_http_parser p;
    static rec r;
    memset(&r, 0, sizeof r);
    r.on_head_ret = 1;
    kx_http_parser_init(&p, KX_HTTP_REQUEST, &cbs, &r);
    long c = kx_http_feed(&p, (const uint8_t *)in, sizeof in - 1);
    assert_int_equal(c, (long)head1);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.bodies, 0);
    assert_false(kx_http_upgraded(&p));
    // Resume: the body follows, then the next head pauses again.
    long c2 = kx_http_feed(&p, (const uint8_t *)in + c, sizeof in - 1 - (size_t)c);
    assert_int_equal(c2, (long)(sizeof in - 1 - head1));
    assert_int_equal(r.heads, 2);
    assert_int_equal(r.completes, 1);
    assert_string_equal(kx_http_parser_head(&p)->url, "/y");
    // An empty feed resumes too and completes the bodiless GET.
    assert_int_equal(kx_http_feed(&p, nullptr, 0), 0);
    assert_int_equal(r.completes, 2);

    // Pausing gives the same log in every split mode.
    static rec all;
    run_result res = run_all(KX_HTTP_REQUEST, S(in), &all, 1);
    assert_int_equal(res.consumed, (long)sizeof in - 1);
    assert_int_equal(res.pauses, 1); // the second head ends the buffer
    assert_string_equal(all.log, "H POST /x 0 1.1 up=0 ka=1 cl=5 ch=0\n Content-Length=5\n"
                                 "hello|C\nH GET /y 0 1.1 up=0 ka=1 cl=-1 ch=0\n");
}

static void callback_errors_propagate(void **)
{
    static const char in[] = "POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
    static kx_http_parser p;
    static rec r;
    memset(&r, 0, sizeof r);
    r.on_head_ret = -EACCES;
    kx_http_parser_init(&p, KX_HTTP_REQUEST, &cbs, &r);
    assert_int_equal(kx_http_feed(&p, (const uint8_t *)in, sizeof in - 1), -EACCES);
    // Sticky.
    assert_int_equal(kx_http_feed(&p, (const uint8_t *)"GET", 3), -EACCES);
    assert_int_equal(kx_http_eof(&p), -EACCES);

    memset(&r, 0, sizeof r);
    r.on_body_ret = -ENOSPC;
    kx_http_parser_init(&p, KX_HTTP_REQUEST, &cbs, &r);
    assert_int_equal(kx_http_feed(&p, (const uint8_t *)in, sizeof in - 1), -ENOSPC);

    // Null body/complete callbacks are allowed.
    static const kx_http_callbacks only_head = {cb_head, nullptr, nullptr};
    memset(&r, 0, sizeof r);
    kx_http_parser_init(&p, KX_HTTP_REQUEST, &only_head, &r);
    assert_int_equal(kx_http_feed(&p, (const uint8_t *)in, sizeof in - 1), (long)sizeof in - 1);
    assert_int_equal(r.heads, 1);
}

// --- Malformed input and limits -----------------------------------------------

static void expect_error(kx_http_type type, const char *in, size_t len, long err)
{
    static rec r;
    run_result res = run_all(type, in, len, &r);
    assert_int_equal(res.consumed, err);
}

static void malformed_input_is_eproto(void **)
{
    expect_error(KX_HTTP_REQUEST, S("GET / HTTP/1.1\r\nBad Header\r\n\r\n"), -EPROTO);
    expect_error(KX_HTTP_REQUEST, S("G@T / HTTP/1.1\r\n\r\n"), -EPROTO);
    expect_error(KX_HTTP_REQUEST, S("GET / HTTP/x.1\r\n\r\n"), -EPROTO);
    expect_error(KX_HTTP_REQUEST, S("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), -EPROTO);
    expect_error(KX_HTTP_REQUEST,
                 S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n"), -EPROTO);
    expect_error(KX_HTTP_REQUEST, S("POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n"), -EPROTO);
    expect_error(KX_HTTP_REQUEST,
                 S("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
                 -EPROTO);
    expect_error(KX_HTTP_RESPONSE, S("HTTP/1.1 2000 OK\r\n\r\n"), -EPROTO);
    expect_error(KX_HTTP_RESPONSE, S("SPDY/3.1 200 OK\r\n\r\n"), -EPROTO);
    // An upgrade that announces a body is refused (no smuggling past a 101).
    expect_error(KX_HTTP_REQUEST,
                 S("POST /x HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                   "Content-Length: 4\r\n\r\nabcd"),
                 -EPROTO);
    expect_error(KX_HTTP_REQUEST,
                 S("POST /x HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
                 -EPROTO);
}

static void head_limits_are_emsgsize(void **)
{
    static char big[KX_HTTP_MAX_HEAD + 4096];
    // One huge header value.
    int n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nX-Big: ");
    memset(big + n, 'a', KX_HTTP_MAX_HEAD);
    n += KX_HTTP_MAX_HEAD;
    n += snprintf(big + n, sizeof big - (size_t)n, "\r\n\r\n");
    expect_error(KX_HTTP_REQUEST, big, (size_t)n, -EMSGSIZE);

    // A huge URL.
    memcpy(big, "GET /", 5);
    memset(big + 5, 'u', KX_HTTP_MAX_HEAD + 10);
    n = 5 + KX_HTTP_MAX_HEAD + 10;
    n += snprintf(big + n, sizeof big - (size_t)n, " HTTP/1.1\r\n\r\n");
    expect_error(KX_HTTP_REQUEST, big, (size_t)n, -EMSGSIZE);

    // Too many headers.
    n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < KX_HTTP_MAX_HEADERS + 1; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "X-%d: v\r\n", i);
    n += snprintf(big + n, sizeof big - (size_t)n, "\r\n");
    expect_error(KX_HTTP_REQUEST, big, (size_t)n, -EMSGSIZE);

    // Exactly the maximum number of headers is fine.
    n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < KX_HTTP_MAX_HEADERS; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "X-%d: v\r\n", i);
    n += snprintf(big + n, sizeof big - (size_t)n, "\r\n");
    static rec r;
    run_result res = run_all(KX_HTTP_REQUEST, big, (size_t)n, &r);
    assert_int_equal(res.consumed, n);
    assert_int_equal(r.heads, 1);

    // A large body is not limited here.
    static char body[200000];
    n = snprintf(body, sizeof body, "POST / HTTP/1.1\r\nContent-Length: 150000\r\n\r\n");
    memset(body + n, 'b', 150000);
    n += 150000;
    static kx_http_parser p;
    memset(&r, 0, sizeof r);
    kx_http_parser_init(&p, KX_HTTP_REQUEST, &cbs, &r);
    r.count_only = true;
    assert_int_equal(kx_http_feed(&p, (const uint8_t *)body, (size_t)n), n);
    assert_int_equal(r.completes, 1);
    assert_int_equal(r.body_bytes, 150000);
}

static void head_survives_next_message(void **)
{
    // The last completed head stays intact while the next one is half parsed.
    static const char in[] = "GET /first HTTP/1.1\r\nA: 1\r\n\r\nGET /second HTTP/1.1\r\nB: ";
    static kx_http_parser p;
    static rec r;
    memset(&r, 0, sizeof r);
    kx_http_parser_init(&p, KX_HTTP_REQUEST, &cbs, &r);
    assert_int_equal(kx_http_feed(&p, (const uint8_t *)in, sizeof in - 1), (long)sizeof in - 1);
    const kx_http_head *h = kx_http_parser_head(&p);
    assert_string_equal(h->url, "/first");
    assert_int_equal(h->nheaders, 1);
    assert_string_equal(h->headers[0].name, "A");
    assert_string_equal(h->headers[0].value, "1");
}

// --- Helpers ----------------------------------------------------------------

static void url_split_cases(void **)
{
    char path[64];
    const char *q;
    assert_int_equal(kx_url_split("/api/v1/namespaces/default/pods/mypod/exec?command=date&"
                                  "container=main",
                                  path, sizeof path, &q),
                     0);
    assert_string_equal(path, "/api/v1/namespaces/default/pods/mypod/exec");
    assert_string_equal(q, "command=date&container=main");
    assert_int_equal(kx_url_split("/version", path, sizeof path, &q), 0);
    assert_string_equal(path, "/version");
    assert_string_equal(q, "");
    assert_int_equal(kx_url_split("/a%20b/c%2Fd?", path, sizeof path, &q), 0);
    assert_string_equal(path, "/a b/c/d");
    assert_string_equal(q, "");
    assert_int_equal(kx_url_split("/a+b", path, sizeof path, &q), 0);
    assert_string_equal(path, "/a+b");
    assert_int_equal(kx_url_split("/a#frag", path, sizeof path, &q), 0);
    assert_string_equal(path, "/a");
    assert_int_equal(kx_url_split("/a/./b", path, sizeof path, &q), 0);
    assert_int_equal(kx_url_split("/..a/b..", path, sizeof path, &q), 0);

    assert_int_equal(kx_url_split("/a/../etc", path, sizeof path, &q), -EINVAL);
    assert_int_equal(kx_url_split("/a/..", path, sizeof path, &q), -EINVAL);
    assert_int_equal(kx_url_split("/a/%2e%2E/b", path, sizeof path, &q), -EINVAL);
    assert_int_equal(kx_url_split("/a/..%2fb", path, sizeof path, &q), -EINVAL);
    assert_int_equal(kx_url_split("/a%00b", path, sizeof path, &q), -EINVAL);
    assert_int_equal(kx_url_split("/a%zz", path, sizeof path, &q), -EINVAL);
    assert_int_equal(kx_url_split("/a%2", path, sizeof path, &q), -EINVAL);
    assert_int_equal(kx_url_split("a/b", path, sizeof path, &q), -EINVAL);
    assert_int_equal(kx_url_split("http://host/a", path, sizeof path, &q), -EINVAL);
    assert_int_equal(kx_url_split("", path, sizeof path, &q), -EINVAL);
    assert_int_equal(kx_url_split("/abcdefgh", path, 9, &q), -EMSGSIZE);
    assert_int_equal(kx_url_split("/abcdefg", path, 9, &q), 0);
}

static void query_iteration(void **)
{
    char k[32], v[32];
    // kubectl: sorted, '+' for spaces.
    const char *c = "command=sh&command=-c&command=exit+42&container=main&stderr=true&stdout=true";
    const char *want[][2] = {{"command", "sh"},     {"command", "-c"},    {"command", "exit 42"},
                             {"container", "main"}, {"stderr", "true"},   {"stdout", "true"}};
    for (auto &w : want) {
        assert_int_equal(kx_query_next(&c, k, sizeof k, v, sizeof v), 1);
        assert_string_equal(k, w[0]);
        assert_string_equal(v, w[1]);
    }
    assert_int_equal(kx_query_next(&c, k, sizeof k, v, sizeof v), 0);
    assert_int_equal(kx_query_next(&c, k, sizeof k, v, sizeof v), 0);

    // client-node: %20 and every boolean; empty pairs, bare keys.
    c = "stdout=true&&command=exit%2042&tty&x=a%3Db&";
    assert_int_equal(kx_query_next(&c, k, sizeof k, v, sizeof v), 1);
    assert_string_equal(k, "stdout");
    assert_int_equal(kx_query_next(&c, k, sizeof k, v, sizeof v), 1);
    assert_string_equal(v, "exit 42");
    assert_int_equal(kx_query_next(&c, k, sizeof k, v, sizeof v), 1);
    assert_string_equal(k, "tty");
    assert_string_equal(v, "");
    assert_int_equal(kx_query_next(&c, k, sizeof k, v, sizeof v), 1);
    assert_string_equal(k, "x");
    assert_string_equal(v, "a=b");
    assert_int_equal(kx_query_next(&c, k, sizeof k, v, sizeof v), 0);

    c = "a=%zz&b=1";
    const char *before = c;
    assert_int_equal(kx_query_next(&c, k, sizeof k, v, sizeof v), -EINVAL);
    assert_ptr_equal(c, before);
    c = "a=%00";
    assert_int_equal(kx_query_next(&c, k, sizeof k, v, sizeof v), -EINVAL);
    c = "a=0123456789";
    assert_int_equal(kx_query_next(&c, k, sizeof k, v, 10), -EMSGSIZE);
    c = "0123456789=1";
    assert_int_equal(kx_query_next(&c, k, 10, v, sizeof v), -EMSGSIZE);
    c = "a=1#frag";
    assert_int_equal(kx_query_next(&c, k, sizeof k, v, sizeof v), 1);
    assert_string_equal(v, "1");
    assert_int_equal(kx_query_next(&c, k, sizeof k, v, sizeof v), 0);
    c = "";
    assert_int_equal(kx_query_next(&c, k, sizeof k, v, sizeof v), 0);
}

static void url_escape_like_go(void **)
{
    char out[64];
    assert_int_equal(kx_url_escape(out, sizeof out, "exit 42"), 7);
    assert_string_equal(out, "exit+42");
    assert_int_equal(kx_url_escape(out, sizeof out, "a/b?c=d&e"), 17);
    assert_string_equal(out, "a%2Fb%3Fc%3Dd%26e");
    assert_int_equal(kx_url_escape(out, sizeof out, "Az09-_.~"), 8);
    assert_string_equal(out, "Az09-_.~");
    assert_int_equal(kx_url_escape(out, sizeof out, "\xc3\xa9+"), 9);
    assert_string_equal(out, "%C3%A9%2B");
    assert_int_equal(kx_url_escape(out, sizeof out, ""), 0);
    assert_string_equal(out, "");
    assert_int_equal(kx_url_escape(out, 4, "abcd"), -EMSGSIZE);
    assert_int_equal(kx_url_escape(out, 5, "abcd"), 4);
    assert_int_equal(kx_url_escape(out, 3, "/"), -EMSGSIZE);
    assert_int_equal(kx_url_escape(out, 0, ""), -EMSGSIZE);

    // Round trip through the query decoder.
    const char *src = "sh -c 'echo $HOME && ls /tmp' #%+";
    assert_true(kx_url_escape(out, sizeof out, src) > 0);
    char q[80], k[8], v[64];
    snprintf(q, sizeof q, "c=%s", out);
    const char *c = q;
    assert_int_equal(kx_query_next(&c, k, sizeof k, v, sizeof v), 1);
    assert_string_equal(v, src);
}

static void reasons_and_formatting(void **)
{
    assert_string_equal(kx_http_reason(200), "OK");
    assert_string_equal(kx_http_reason(101), "Switching Protocols");
    assert_string_equal(kx_http_reason(400), "Bad Request");
    assert_string_equal(kx_http_reason(401), "Unauthorized");
    assert_string_equal(kx_http_reason(403), "Forbidden");
    assert_string_equal(kx_http_reason(404), "Not Found");
    assert_string_equal(kx_http_reason(405), "Method Not Allowed");
    assert_string_equal(kx_http_reason(500), "Internal Server Error");
    assert_string_equal(kx_http_reason(799), "Unknown");

    char out[256];
    const kx_http_header h[] = {{"Connection", "Upgrade"},
                                {"Upgrade", "SPDY/3.1"},
                                {"X-Stream-Protocol-Version", "v4.channel.k8s.io"}};
    static const char want101[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                  "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                                  "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n";
    assert_int_equal(kx_http_format_response(out, sizeof out, 101, h, 3, -1),
                     (int)sizeof want101 - 1);
    assert_string_equal(out, want101);

    const kx_http_header ct[] = {{"Content-Type", "application/json"}};
    static const char want200[] =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n";
    assert_int_equal(kx_http_format_response(out, sizeof out, 200, ct, 1, 2),
                     (int)sizeof want200 - 1);
    assert_string_equal(out, want200);
    assert_int_equal(kx_http_format_response(out, sizeof out, 404, nullptr, 0, 0), 45);
    assert_string_equal(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");

    // Exactly fitting vs one byte short (the NUL needs room too).
    assert_int_equal(kx_http_format_response(out, sizeof want200, 200, ct, 1, 2),
                     (int)sizeof want200 - 1);
    assert_int_equal(kx_http_format_response(out, sizeof want200 - 1, 200, ct, 1, 2), -EMSGSIZE);
    assert_int_equal(kx_http_format_response(out, 0, 200, ct, 1, 2), -EMSGSIZE);

    // Header injection is refused.
    const kx_http_header bad1[] = {{"X", "a\r\nSet-Cookie: x"}};
    assert_int_equal(kx_http_format_response(out, sizeof out, 200, bad1, 1, -1), -EINVAL);
    const kx_http_header bad2[] = {{"X: y", "a"}};
    assert_int_equal(kx_http_format_response(out, sizeof out, 200, bad2, 1, -1), -EINVAL);
    const kx_http_header bad3[] = {{"", "a"}};
    assert_int_equal(kx_http_format_response(out, sizeof out, 200, bad3, 1, -1), -EINVAL);
    assert_int_equal(kx_http_format_response(out, sizeof out, 42, nullptr, 0, -1), -EINVAL);

    // Requests, and a formatted request parses back.
    const kx_http_header rh[] = {{"Host", "node:10250"},
                                 {"Connection", "Upgrade"},
                                 {"Upgrade", "SPDY/3.1"},
                                 {"X-Stream-Protocol-Version", "v4.channel.k8s.io"}};
    int n = kx_http_format_request(out, sizeof out, "POST", "/exec/default/web/app?command=ls&output=1",
                                   rh, 4, 0);
    assert_true(n > 0);
    assert_memory_equal(out, "POST /exec/default/web/app?command=ls&output=1 HTTP/1.1\r\nHost: ",
                        62);
    static kx_http_parser p;
    static rec r;
    memset(&r, 0, sizeof r);
    kx_http_parser_init(&p, KX_HTTP_REQUEST, &cbs, &r);
    assert_int_equal(kx_http_feed(&p, (const uint8_t *)out, (size_t)n), n);
    assert_true(kx_http_parser_head(&p)->upgrade);
    assert_int_equal(kx_http_parser_head(&p)->content_length, 0);
    assert_int_equal(kx_http_format_request(out, sizeof out, "GET", "/a b", nullptr, 0, -1),
                     -EINVAL);
    assert_int_equal(kx_http_format_request(out, sizeof out, "", "/", nullptr, 0, -1), -EINVAL);
}

static void hostport_split(void **)
{
    char host[64];
    int port = -1;
    assert_int_equal(kx_hostport_split("127.0.0.1:6443", host, sizeof host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6443);
    assert_int_equal(kx_hostport_split("[::1]:0", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    assert_int_equal(kx_hostport_split("0.0.0.0:10250", host, sizeof host, &port), 0);
    assert_int_equal(port, 10250);
    const char *bad[] = {"6443", ":6443", "host:", "host:65536", "host:-1", "host:12x",
                         "[::1]6443", "[::1", "[]:1"};
    for (const char *b : bad)
        assert_int_equal(kx_hostport_split(b, host, sizeof host, &port), -EINVAL);
    char tiny[4];
    assert_int_equal(kx_hostport_split("localhost:1", tiny, sizeof tiny, &port), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spdy_upgrade_hands_off_exactly_at_head),
        cmocka_unit_test(websocket_upgrade_without_content_length),
        cmocka_unit_test(pipelined_keep_alive_requests),
        cmocka_unit_test(chunked_request_body_is_dechunked),
        cmocka_unit_test(http10_and_connection_close),
        cmocka_unit_test(folded_and_spaced_values),
        cmocka_unit_test(response_101_hands_off),
        cmocka_unit_test(responses_with_bodies),
        cmocka_unit_test(response_body_until_eof),
        cmocka_unit_test(response_to_head_has_no_body),
        cmocka_unit_test(on_head_pause_stops_after_head),
        cmocka_unit_test(callback_errors_propagate),
        cmocka_unit_test(malformed_input_is_eproto),
        cmocka_unit_test(head_limits_are_emsgsize),
        cmocka_unit_test(head_survives_next_message),
        cmocka_unit_test(url_split_cases),
        cmocka_unit_test(query_iteration),
        cmocka_unit_test(url_escape_like_go),
        cmocka_unit_test(reasons_and_formatting),
        cmocka_unit_test(hostport_split),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
