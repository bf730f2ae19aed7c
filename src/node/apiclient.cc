// One-shot HTTPS client requests; see apiclient.h.
#include "apiclient.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kubexec/conn.h"
#include "kubexec/http1.h"
#include "kubexec/util.h"

static const size_t kMaxResponseBody = 4 * 1024 * 1024;

struct api_req {
    kx_conn *conn;
    uv_timer_t timer;
    kx_http_parser parser;
    kx_buf out;        // the request bytes
    kx_buf body;       // response body
    kx_apiclient_cb cb;
    void *user;
    int status;        // HTTP status once the head arrived
    int result;        // what the callback gets
    bool complete;
    bool called;
    bool conn_closed, timer_closed;
};

static void req_maybe_free(api_req *r)
{
    if (!r->conn_closed || !r->timer_closed)
        return;
    kx_buf_free(&r->out);
    kx_buf_free(&r->body);
    free(r);
}

static void req_finish(api_req *r, int result)
{
    if (r->called)
        return;
    r->called = true;
    uv_timer_stop(&r->timer);
    uint8_t nul = 0;
    kx_buf_append(&r->body, &nul, 1, kMaxResponseBody + 1);
    r->cb(r->user, result, r->body.data ? (const char *)r->body.data : "",
          r->body.len ? r->body.len - 1 : 0);
    if (r->conn)
        kx_conn_close(r->conn);
    if (!uv_is_closing((uv_handle_t *)&r->timer))
        uv_close((uv_handle_t *)&r->timer, [](uv_handle_t *h) {
            api_req *rr = (api_req *)h->data;
            rr->timer_closed = true;
            req_maybe_free(rr);
        });
}

static int on_head(void *user, const kx_http_head *h)
{
    ((api_req *)user)->status = h->status;
    return 0;
}

static int on_body(void *user, const uint8_t *p, size_t n)
{
    api_req *r = (api_req *)user;
    return kx_buf_append(&r->body, p, n, kMaxResponseBody) < 0 ? -EMSGSIZE : 0;
}

static int on_complete(void *user)
{
    ((api_req *)user)->complete = true;
    return 0;
}

static const kx_http_callbacks parser_cb = {on_head, on_body, on_complete};

static void c_ready(kx_conn *c, int status)
{
    api_req *r = (api_req *)kx_conn_user(c);
    if (status < 0) {
        req_finish(r, status);
        return;
    }
    kx_conn_write(c, r->out.data, r->out.len);
}

static void c_data(kx_conn *c, const uint8_t *p, size_t n)
{
    api_req *r = (api_req *)kx_conn_user(c);
    if (r->called)
        return;
    long used = kx_http_feed(&r->parser, p, n);
    if (used < 0) {
        req_finish(r, (int)used);
        return;
    }
    if (r->complete)
        req_finish(r, r->status);
}

static void c_end(kx_conn *c, int status)
{
    api_req *r = (api_req *)kx_conn_user(c);
    if (!r->called && status == 0 && kx_http_eof(&r->parser) == 0 && r->status > 0) {
        req_finish(r, r->status);
        return;
    }
    req_finish(r, status < 0 ? status : -ECONNRESET);
}

static void c_close(kx_conn *c)
{
    api_req *r = (api_req *)kx_conn_user(c);
    r->conn = nullptr;
    r->conn_closed = true;
    req_finish(r, -ECONNRESET);
    req_maybe_free(r);
}

static const kx_conn_callbacks conn_cb = {c_ready, c_data, c_end, nullptr, c_close};

static void on_timeout(uv_timer_t *t)
{
    req_finish((api_req *)t->data, -ETIMEDOUT);
}

int kx_apiclient_request(uv_loop_t *loop, kx_tls_ctx *ctx, const char *host, int port,
                         const char *verify_host, const char *method, const char *path,
                         const char *bearer, const char *content_type, const char *body,
                         size_t body_len, kx_apiclient_cb cb, void *user)
{
    api_req *r = (api_req *)calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->cb = cb;
    r->user = user;
    kx_http_parser_init(&r->parser, KX_HTTP_RESPONSE, &parser_cb, r);
    char head[2048];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: kubexec-node/0.1\r\n"
                     "Accept: application/json\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n%s%s%s%s%s%s\r\n",
                     method, path, host, port, body_len, bearer ? "Authorization: Bearer " : "",
                     bearer ? bearer : "", bearer ? "\r\n" : "",
                     content_type ? "Content-Type: " : "", content_type ? content_type : "",
                     content_type ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof head ||
        kx_buf_append(&r->out, head, (size_t)n, SIZE_MAX) < 0 ||
        kx_buf_append(&r->out, body, body_len, SIZE_MAX) < 0) {
        kx_buf_free(&r->out);
        free(r);
        return -EMSGSIZE;
    }
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    r->conn = kx_conn_connect(loop, host, port, ctx, verify_host, &conn_cb, r);
    if (!r->conn) {
        r->conn_closed = true;
        r->called = true;
        uv_close((uv_handle_t *)&r->timer, [](uv_handle_t *h) {
            api_req *rr = (api_req *)h->data;
            rr->timer_closed = true;
            req_maybe_free(rr);
        });
        return -ENOMEM;
    }
    uv_timer_start(&r->timer, on_timeout, 15000, 0);
    return 0;
}

int kx_parse_https_url(const char *url, char *host, size_t hostcap, int *port)
{
    if (strncmp(url, "https://", 8) != 0)
        return -EINVAL;
    const char *p = url + 8;
    const char *end = p + strcspn(p, "/");
    const char *hend;
    const char *colon = nullptr;
    if (*p == '[') {
        const char *rb = (const char *)memchr(p, ']', (size_t)(end - p));
        if (!rb)
            return -EINVAL;
        p++;
        hend = rb;
        if (rb + 1 < end && rb[1] == ':')
            colon = rb + 1;
    } else {
        colon = (const char *)memchr(p, ':', (size_t)(end - p));
        hend = colon ? colon : end;
    }
    if (hend == p || (size_t)(hend - p) >= hostcap)
        return -EINVAL;
    memcpy(host, p, (size_t)(hend - p));
    host[hend - p] = 0;
    *port = 443;
    if (colon) {
        char *e;
        long v = strtol(colon + 1, &e, 10);
        if (e != end || v <= 0 || v > 65535)
            return -EINVAL;
        *port = (int)v;
    }
    return 0;
}
