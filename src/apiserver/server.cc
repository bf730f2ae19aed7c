// The API server's request handler: authentication, the streaming
// subresources (handed to the proxy) and every other request (handed to the
// sans-I/O API in api.cc).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kubexec/http1.h"
#include "server.h"

uint64_t kx_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void respond_api(kx_httpd_req *req, kx_api_response *resp)
{
    kx_httpd_respond(req, resp->status, resp->content_type ? resp->content_type : "application/json",
                     resp->body, resp->body_len);
    free(resp->body);
}

static void respond_status(kx_httpd_req *req, int code, const char *reason, const char *msg)
{
    kx_api_response resp = {};
    kx_api_status(&resp, code, reason, msg, nullptr, nullptr);
    respond_api(req, &resp);
}

// Kubernetes' lenient boolean: absent -> false; "0"/"false" -> false;
// anything else, even empty -> true (runtime/conversion.go).
static bool query_bool(const char *v)
{
    return strcmp(v, "0") != 0 && strcasecmp(v, "false") != 0;
}

// /api/v1/namespaces/{ns}/pods/{name}/{sub}: splits into parts; 0 on match.
static int match_pod_sub(const char *path, char *ns, size_t nscap, char *pod, size_t podcap,
                         char *sub, size_t subcap)
{
    static const char prefix[] = "/api/v1/namespaces/";
    if (strncmp(path, prefix, sizeof prefix - 1) != 0)
        return -1;
    const char *p = path + sizeof prefix - 1;
    const char *slash = strchr(p, '/');
    if (!slash || (size_t)(slash - p) >= nscap || slash == p)
        return -1;
    memcpy(ns, p, (size_t)(slash - p));
    ns[slash - p] = 0;
    p = slash;
    if (strncmp(p, "/pods/", 6) != 0)
        return -1;
    p += 6;
    slash = strchr(p, '/');
    if (!slash || (size_t)(slash - p) >= podcap || slash == p)
        return -1;
    memcpy(pod, p, (size_t)(slash - p));
    pod[slash - p] = 0;
    p = slash + 1;
    if (strchr(p, '/') || strlen(p) >= subcap || !*p)
        return -1;
    strcpy(sub, p);
    return 0;
}

// Builds the node-side URL for exec/attach: parameters renamed as upstream
// does (stdin/stdout/stderr/tty=true -> input/output/error/tty=1), keys in
// sorted order, command values form-encoded.
static int node_stream_url(const char *sub, const struct kx_api_stream_target *t, const char *query,
                           char *out, size_t cap)
{
    char key[64], val[4096], enc[3 * 4096 + 1];
    bool in = false, o = false, e = false, tty = false;
    kx_buf cmd = {};
    const char *cur = query;
    int r;
    while ((r = kx_query_next(&cur, key, sizeof key, val, sizeof val)) > 0) {
        if (strcmp(key, "command") == 0) {
            if (kx_url_escape(enc, sizeof enc, val) < 0) {
                kx_buf_free(&cmd);
                return -EMSGSIZE;
            }
            if (kx_buf_append(&cmd, "command=", 8, 64 * 1024) < 0 ||
                kx_buf_append(&cmd, enc, strlen(enc), 64 * 1024) < 0 ||
                kx_buf_append(&cmd, "&", 1, 64 * 1024) < 0) {
                kx_buf_free(&cmd);
                return -EMSGSIZE;
            }
        } else if (strcmp(key, "stdin") == 0) {
            in = query_bool(val);
        } else if (strcmp(key, "stdout") == 0) {
            o = query_bool(val);
        } else if (strcmp(key, "stderr") == 0) {
            e = query_bool(val);
        } else if (strcmp(key, "tty") == 0) {
            tty = query_bool(val);
        }
    }
    if (r < 0) {
        kx_buf_free(&cmd);
        return r;
    }
    int n = snprintf(out, cap, "/%s/%s/%s/%s?%.*s%s%s%s%s", sub, t->ns, t->pod, t->container,
                     (int)cmd.len, cmd.data ? (const char *)cmd.data : "", e ? "error=1&" : "",
                     in ? "input=1&" : "", o ? "output=1&" : "", tty ? "tty=1&" : "");
    kx_buf_free(&cmd);
    if (n < 0 || (size_t)n >= cap)
        return -EMSGSIZE;
    // Drop the trailing '&' (or the lone '?').
    if (out[n - 1] == '&' || out[n - 1] == '?')
        out[n - 1] = 0;
    return 0;
}

static void handle_stream(kx_apiserver *s, kx_httpd_req *req, const kx_api_user *user,
                          const char *ns, const char *pod, const char *sub)
{
    const kx_http_head *h = req->head;
    bool is_get = strcmp(h->method, "GET") == 0;
    if (!is_get && strcmp(h->method, "POST") != 0) {
        respond_status(req, 405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
        return;
    }
    if (!h->upgrade) {
        respond_status(req, 400, "BadRequest", "Upgrade request required");
        return;
    }
    struct kx_api_stream_target t = {};
    kx_api_response resp = {};
    if (kx_api_stream_target(s->api, user, is_get ? "get" : "create", ns, pod, sub, req->query,
                             kx_now_ms(), &t, &resp) != 0) {
        s->upgrades_refused++;
        respond_api(req, &resp);
        return;
    }
    const char *up = kx_http_get(h, "Upgrade");
    if (up && strcasecmp(up, "websocket") == 0) {
        // WebSocket goes to the node unchanged, as upstream's raw proxy does
        // for non-v5 offers: the node answers the handshake (subprotocol
        // choice, Sec-WebSocket-Accept), and a non-101 from it is relayed so
        // kubectl falls back to SPDY (protocol.md §4.5).
        s->upgrades_websocket++;
    } else if (up && strncasecmp(up, "SPDY/3.1", 8) == 0) {
        s->upgrades_spdy++;
    } else {
        s->upgrades_refused++;
        respond_status(req, 400, "BadRequest", "unsupported upgrade protocol");
        return;
    }
    char url[8192];
    if (strcmp(sub, "exec") == 0 || strcmp(sub, "attach") == 0) {
        if (node_stream_url(sub, &t, req->query, url, sizeof url) < 0) {
            respond_status(req, 400, "BadRequest", "invalid query parameters");
            return;
        }
    } else {
        snprintf(url, sizeof url, "/portForward/%s/%s", t.ns, t.pod);
    }
    kx_proxy_start(s, req, &t, url);
}

static void handle_metrics(kx_apiserver *s, kx_httpd_req *req)
{
    char body[2048];
    int n = snprintf(body, sizeof body,
                     "# HELP kubexec_apiserver_upgrades_total Streaming upgrade requests by transport.\n"
                     "# TYPE kubexec_apiserver_upgrades_total counter\n"
                     "kubexec_apiserver_upgrades_total{transport=\"spdy\"} %lu\n"
                     "kubexec_apiserver_upgrades_total{transport=\"websocket\"} %lu\n"
                     "# HELP kubexec_apiserver_upgrades_refused_total Upgrades answered without 101.\n"
                     "# TYPE kubexec_apiserver_upgrades_refused_total counter\n"
                     "kubexec_apiserver_upgrades_refused_total %lu\n"
                     "# HELP kubexec_apiserver_stream_sessions Proxied streaming sessions.\n"
                     "# TYPE kubexec_apiserver_stream_sessions gauge\n"
                     "kubexec_apiserver_stream_sessions %lu\n"
                     "kubexec_apiserver_stream_sessions_total %lu\n"
                     "# HELP kubexec_apiserver_node_sessions_total Sessions sent to nodes: as a stream of the "
                     "node's multiplexed connection, or on a connection of their own.\n"
                     "# TYPE kubexec_apiserver_node_sessions_total counter\n"
                     "kubexec_apiserver_node_sessions_total{via=\"mux\"} %lu\n"
                     "kubexec_apiserver_node_sessions_total{via=\"connection\"} %lu\n",
                     s->upgrades_spdy, s->upgrades_websocket, s->upgrades_refused,
                     s->active_sessions, s->proxied_sessions, s->node_streams_mux,
                     s->node_streams_conn);
    kx_httpd_respond(req, 200, "text/plain; version=0.0.4", body, (size_t)n);
}

void kx_apiserver_handle(void *user, kx_httpd_req *req)
{
    kx_apiserver *s = (kx_apiserver *)user;
    const kx_http_head *h = req->head;
    kx_api_user u = {};
    kx_api_authenticate(s->api, req->peer_cn[0] ? req->peer_cn : nullptr, req->peer_orgs,
                        kx_http_get(h, "Authorization"), &u);

    char ns[254], pod[254], sub[32];
    if (match_pod_sub(req->path, ns, sizeof ns, pod, sizeof pod, sub, sizeof sub) == 0 &&
        (strcmp(sub, "exec") == 0 || strcmp(sub, "attach") == 0 ||
         strcmp(sub, "portforward") == 0)) {
        if (!u.authenticated) {
            respond_status(req, 401, "Unauthorized", "Unauthorized");
            return;
        }
        handle_stream(s, req, &u, ns, pod, sub);
        return;
    }
    if (!h->upgrade && match_pod_sub(req->path, ns, sizeof ns, pod, sizeof pod, sub, sizeof sub) == 0 &&
        strcmp(sub, "log") == 0) {
        kx_logproxy_start(s, req, &u, ns, pod);
        return;
    }
    if (h->upgrade) {
        respond_status(req, 400, "BadRequest", "upgrade not supported on this resource");
        return;
    }
    if (strcmp(req->path, "/metrics") == 0 && u.authenticated) {
        handle_metrics(s, req);
        return;
    }
    kx_api_request ar = {};
    ar.method = h->method;
    ar.path = req->path;
    ar.query = req->query;
    ar.accept = kx_http_get(h, "Accept");
    ar.content_type = kx_http_get(h, "Content-Type");
    ar.body = req->body;
    ar.body_len = req->body_len;
    ar.user = &u;
    kx_api_response resp = {};
    kx_api_handle(s->api, &ar, kx_now_ms(), &resp);
    respond_api(req, &resp);
}
