// The upgrade-aware proxy from the API server to a node agent.
//
// Order of events, as upstream's UpgradeAwareHandler: the client's upgrade
// request was validated (authn, authz, pod, container) before we get here;
// we dial the node with our own client certificate, send the translated
// request, and read the node's response head. Only a 101 makes us splice the
// two connections byte for byte (the 101 head and anything read after it go
// to the client first). Any other answer is relayed verbatim and both
// connections are closed: bytes are never piped after a refused upgrade.
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kubexec/heaptrim.h"
#include "kubexec/http1.h"
#include "server.h"

// A refused upgrade's answer is relayed up to this size.
static const size_t kMaxRelayedAnswer = 64 * 1024;

enum proxy_state { P_DIALING, P_WAIT_HEAD, P_RELAY_ERROR, P_SPLICE, P_DONE };

struct proxy {
    proxy *next, **pprev;    // all live proxies, for shutdown
    kx_apiserver *srv;
    kx_conn *client;
    kx_conn *node;
    proxy_state state;
    kx_http_parser *parser;  // the node's response head (~35 KiB: freed at the splice)
    kx_buf node_bytes;       // node bytes until the upgrade decision
    kx_buf client_early;     // client bytes that arrived before the 101
    kx_buf request;          // request head for the node
    bool node_complete;      // error answer fully read
    bool counted;            // spliced: counted in srv->active_sessions
    int node_status;
    bool from_pool;          // p->node is a warm connection (may have died unseen)
    char node_host[256];     // for a second dial when the warm one was dead
    int node_port;
};

static proxy *g_proxies;

static void proxy_maybe_free(proxy *p)
{
    if (p->client || p->node)
        return;
    if (p->pprev) {
        *p->pprev = p->next;
        if (p->next)
            p->next->pprev = p->pprev;
    }
    kx_buf_free(&p->node_bytes);
    kx_buf_free(&p->client_early);
    kx_buf_free(&p->request);
    free(p->parser);
    // The next session to this node will find a connection ready.
    if (p->counted)
        kx_nodepool_warm(p->srv, p->node_host, p->node_port);
    if (p->counted && --p->srv->active_sessions == 0) {
        free(p);
        // Idle again after a burst of sessions: return the freed pages.
        malloc_trim(0);
        return;
    }
    if (p->counted)
        kx_heaptrim_soon(p->srv->loop);   // sessions remain: their pages hold holes
    free(p);
}

static void proxy_close_both(proxy *p)
{
    if (p->client)
        kx_conn_close(p->client);
    if (p->node)
        kx_conn_close(p->node);
}

// Writes a Status answer to the (hijacked) client and closes it.
static void proxy_client_status(proxy *p, int code, const char *reason, const char *msg)
{
    kx_api_response resp = {};
    kx_api_status(&resp, code, reason, msg, nullptr, nullptr);
    kx_http_header h[2] = {{"Content-Type", "application/json"}, {"Connection", "close"}};
    char head[1024];
    int hl = kx_http_format_response(head, sizeof head, code, h, 2, (int64_t)resp.body_len);
    if (p->client && hl > 0)
        kx_conn_write2(p->client, (const uint8_t *)head, (size_t)hl, (const uint8_t *)resp.body,
                       resp.body_len);
    free(resp.body);
    proxy_close_both(p);
}

static void proxy_relay_error(proxy *p)
{
    // Verbatim: status line, headers and body exactly as the node sent them.
    if (p->client)
        kx_conn_write(p->client, p->node_bytes.data, p->node_bytes.len);
    p->state = P_DONE;
    proxy_close_both(p);
}

static int proxy_on_head(void *user, const kx_http_head *h)
{
    proxy *p = (proxy *)user;
    p->node_status = h->status;
    return h->status == 101 ? 1 : 0;
}

static int proxy_on_complete(void *user)
{
    ((proxy *)user)->node_complete = true;
    return 0;
}

static const kx_http_callbacks proxy_parser_cb = {proxy_on_head, nullptr, proxy_on_complete};

static void proxy_start_splice(proxy *p)
{
    p->state = P_SPLICE;
    // Called after kx_http_feed returned: the parser is done for good.
    free(p->parser);
    p->parser = nullptr;
    kx_buf_free(&p->request);
    p->srv->proxied_sessions++;
    p->srv->active_sessions++;
    p->counted = true;
    kx_conn_write(p->client, p->node_bytes.data, p->node_bytes.len);
    kx_buf_free(&p->node_bytes);
    if (p->client_early.len)
        kx_conn_write(p->node, p->client_early.data, p->client_early.len);
    kx_buf_free(&p->client_early);
    kx_conn_resume(p->client);
    // The set-up's garbage (handshakes, heads, parser) is freed by now or
    // soon; what the session keeps is spread over its pages.
    kx_heaptrim_soon(p->srv->loop);
}

static void node_on_data(kx_conn *c, const uint8_t *d, size_t n)
{
    proxy *p = (proxy *)kx_conn_user(c);
    if (p->state == P_SPLICE) {
        if (!p->client)
            return;
        kx_conn_write(p->client, d, n);
        if (kx_conn_queued(p->client) > KX_CONN_HIGH_WATER)
            kx_conn_pause(c);
        return;
    }
    if (p->state != P_WAIT_HEAD && p->state != P_RELAY_ERROR)
        return;
    if (kx_buf_append(&p->node_bytes, d, n, kMaxRelayedAnswer) < 0) {
        proxy_client_status(p, 500, "InternalError",
                            "Internal error occurred: node answer too large");
        return;
    }
    if (p->state == P_RELAY_ERROR) {
        // Keep reading the answer's body; the parser says when it is whole.
        kx_http_feed(p->parser, d, n);
        if (p->node_complete)
            proxy_relay_error(p);
        return;
    }
    long used = kx_http_feed(p->parser, d, n);
    if (used < 0) {
        proxy_client_status(p, 500, "InternalError",
                            "Internal error occurred: invalid upgrade response from node");
        return;
    }
    if (p->node_status == 0)
        return;   // head not complete yet
    if (p->node_status == 101) {
        proxy_start_splice(p);
        return;
    }
    if (p->node_status >= 400) {
        p->state = P_RELAY_ERROR;
        if (p->node_complete)
            proxy_relay_error(p);
        return;
    }
    char msg[128];
    snprintf(msg, sizeof msg, "invalid upgrade response: status code %d", p->node_status);
    proxy_client_status(p, 500, "InternalError", msg);
}

static void node_on_ready(kx_conn *c, int status)
{
    proxy *p = (proxy *)kx_conn_user(c);
    if (status < 0) {
        char msg[256];
        snprintf(msg, sizeof msg, "error dialing backend: %s", uv_strerror(status));
        proxy_client_status(p, 500, "InternalError", msg);
        return;
    }
    p->state = P_WAIT_HEAD;
    kx_conn_write(c, p->request.data, p->request.len);
    // A warm connection may turn out dead: keep the request for one redial.
    if (!p->from_pool)
        kx_buf_free(&p->request);
}

static void redial(proxy *p);

static void node_on_end(kx_conn *c, int)
{
    proxy *p = (proxy *)kx_conn_user(c);
    if (p->state == P_RELAY_ERROR) {
        kx_http_eof(p->parser);
        proxy_relay_error(p);
        return;
    }
    if (p->state == P_WAIT_HEAD && p->from_pool && p->node_bytes.len == 0) {
        // The warm connection died before it was used (the node restarted,
        // or closed it idle): dial a fresh one and send the request again.
        p->from_pool = false;
        kx_conn_set_user(c, nullptr, &kx_conn_no_callbacks);
        kx_conn_close(c);
        redial(p);
        return;
    }
    if (p->state == P_WAIT_HEAD) {
        proxy_client_status(p, 500, "InternalError",
                            "Internal error occurred: node closed the connection");
        return;
    }
    proxy_close_both(p);
}

static void node_on_drain(kx_conn *c)
{
    proxy *p = (proxy *)kx_conn_user(c);
    if (p->state == P_SPLICE && p->client)
        kx_conn_resume(p->client);
}

static void node_on_close(kx_conn *c)
{
    proxy *p = (proxy *)kx_conn_user(c);
    p->node = nullptr;
    if (p->client)
        kx_conn_close(p->client);
    proxy_maybe_free(p);
}

static const kx_conn_callbacks node_cb = {node_on_ready, node_on_data, node_on_end, node_on_drain,
                                          node_on_close};

static void redial(proxy *p)
{
    p->state = P_DIALING;
    p->node = kx_conn_connect(p->srv->loop, p->node_host, p->node_port, p->srv->node_ctx,
                              p->node_host, &node_cb, p);
    if (!p->node)
        proxy_client_status(p, 500, "InternalError",
                            "Internal error occurred: error dialing backend");
}

static void client_on_data(kx_conn *c, const uint8_t *d, size_t n)
{
    proxy *p = (proxy *)kx_conn_user(c);
    if (p->state == P_SPLICE) {
        if (!p->node)
            return;
        kx_conn_write(p->node, d, n);
        if (kx_conn_queued(p->node) > KX_CONN_HIGH_WATER)
            kx_conn_pause(c);
        return;
    }
    // Before the 101 the client should be quiet; keep a bounded amount.
    if (kx_buf_append(&p->client_early, d, n, 64 * 1024) < 0)
        proxy_close_both(p);
    else
        kx_conn_pause(c);
}

static void client_on_end(kx_conn *c, int)
{
    (void)c;
    // The client left: tear down both sides (the node notices and ends the
    // process per its own policy).
    proxy *p = (proxy *)kx_conn_user(c);
    proxy_close_both(p);
}

static void client_on_drain(kx_conn *c)
{
    proxy *p = (proxy *)kx_conn_user(c);
    if (p->state == P_SPLICE && p->node)
        kx_conn_resume(p->node);
}

static void client_on_close(kx_conn *c)
{
    proxy *p = (proxy *)kx_conn_user(c);
    p->client = nullptr;
    if (p->node)
        kx_conn_close(p->node);
    proxy_maybe_free(p);
}

static const kx_conn_callbacks client_cb = {nullptr, client_on_data, client_on_end,
                                            client_on_drain, client_on_close};

static int append_str(kx_buf *b, const char *s)
{
    return kx_buf_append(b, s, strlen(s), KX_HTTP_MAX_HEAD);
}

void kx_proxy_start(kx_apiserver *s, kx_httpd_req *req, const struct kx_api_stream_target *t,
                    const char *node_path_and_query)
{
    proxy *p = (proxy *)calloc(1, sizeof *p);
    if (!p) {
        kx_httpd_respond(req, 500, "text/plain", "out of memory\n", 14);
        return;
    }
    p->srv = s;
    p->parser = (kx_http_parser *)malloc(sizeof *p->parser);
    if (!p->parser) {
        free(p);
        kx_httpd_respond(req, 500, "text/plain", "out of memory\n", 14);
        return;
    }
    kx_http_parser_init(p->parser, KX_HTTP_RESPONSE, &proxy_parser_cb, p);
    p->next = g_proxies;
    if (g_proxies)
        g_proxies->pprev = &p->next;
    g_proxies = p;
    p->pprev = &g_proxies;

    // The request for the node: same method and upgrade headers, our own
    // identity (the client's Authorization never leaves this process).
    const kx_http_head *h = req->head;
    char line[4096];
    int r = 0;
    snprintf(line, sizeof line, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n", h->method,
             node_path_and_query, t->node_host, t->node_port);
    r |= append_str(&p->request, line);
    for (size_t i = 0; i < h->nheaders; i++) {
        const char *n = h->headers[i].name;
        if (strcasecmp(n, "Upgrade") == 0 || strcasecmp(n, "Connection") == 0 ||
            strcasecmp(n, "X-Stream-Protocol-Version") == 0 ||
            strncasecmp(n, "Sec-WebSocket-", 14) == 0 || strcasecmp(n, "User-Agent") == 0 ||
            strncasecmp(n, "Kubectl-", 8) == 0) {
            snprintf(line, sizeof line, "%s: %s\r\n", n, h->headers[i].value);
            r |= append_str(&p->request, line);
        }
    }
    char ip[64];
    kx_strlcpy(ip, req->peer_addr, sizeof ip);
    char *colon = strrchr(ip, ':');
    if (colon)
        *colon = 0;
    snprintf(line, sizeof line, "X-Forwarded-For: %s\r\nContent-Length: 0\r\n\r\n", ip);
    r |= append_str(&p->request, line);
    if (r < 0) {
        proxy_maybe_free(p);
        kx_httpd_respond(req, 400, "text/plain", "request too large\n", 18);
        return;
    }

    const uint8_t *extra = req->extra;
    size_t extra_len = req->extra_len;
    p->client = kx_httpd_hijack(req);
    kx_conn_set_user(p->client, p, &client_cb);
    if (extra_len)
        kx_buf_append(&p->client_early, extra, extra_len, 64 * 1024);
    // Nothing from the client is read until the node has answered.
    kx_conn_pause(p->client);

    p->state = P_DIALING;
    kx_strlcpy(p->node_host, t->node_host, sizeof p->node_host);
    p->node_port = t->node_port;
    // A stream on the node's mux connection needs no dial at all; else a
    // warm connection skips the handshake (the next one is dialed when this
    // session ends).
    p->node = kx_nodepool_stream(s, t->node_host, t->node_port, &node_cb, p);
    if (p->node) {
        p->from_pool = true;   // the mux may have died unseen, like a spare
        node_on_ready(p->node, 0);
        return;
    }
    p->node = kx_nodepool_take(s, t->node_host, t->node_port);
    if (p->node) {
        p->from_pool = true;
        kx_conn_set_user(p->node, p, &node_cb);
        node_on_ready(p->node, 0);
    } else {
        p->node = kx_conn_connect(s->loop, t->node_host, t->node_port, s->node_ctx,
                                  t->node_host, &node_cb, p);
        if (!p->node)
            proxy_client_status(p, 500, "InternalError",
                                "Internal error occurred: error dialing backend");
    }
}

void kx_proxy_close_all(void)
{
    kx_heaptrim_close();
    for (proxy *p = g_proxies; p; p = p->next)
        proxy_close_both(p);
}
