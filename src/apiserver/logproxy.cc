// GET /api/v1/namespaces/{ns}/pods/{name}/log: the API server's pods/log
// (protocol.md §6.1, §6.2, §8.2; upstream pkg/registry/core/pod/rest/log.go
// with the generic LocationStreamer and response checker).
//
// Order: validate the PodLogOptions (400 for undecodable values, 422 Invalid
// for out-of-range ones), resolve pod, container and node (kx_api_stream_target:
// 401/403/404/400; no node assigned -> 204 No Content), dial the node with our
// kubelet-client certificate and send GET /containerLogs/{ns}/{pod}/{ctr} with
// the options re-encoded in sorted key order. The node's answer:
//   200     -> 200 text/plain, chunked; every piece the node sends is written
//              to the client at once (kubectl -f prints lines as they come).
//              Back-pressure: while the client's queue is above
//              KX_CONN_HIGH_WATER we stop reading the node, and look again
//              every kBackoffMs until it is below KX_CONN_LOW_WATER.
//   400     -> BadRequest Status with the node's text
//   500     -> InternalError Status ("Internal error occurred: <text>")
//   other   -> the generic Status upstream builds for that code, the node's
//              text in details.causes (NewGenericServerResponse)
// The client going away (on_abort) closes the node connection; the node's
// connection ending ends the chunked answer.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "kubexec/http1.h"
#include "server.h"

static const size_t kMaxErrorBody = 50000;   // upstream reads this much of an error answer
static const uint64_t kBackoffMs = 20;

struct logproxy {
    kx_apiserver *srv;
    kx_httpd_req *req;         // null once answered or the client left
    kx_conn *node;             // null once closed
    uv_timer_t timer;          // back-pressure re-check
    bool timer_open;           // not yet being closed
    bool timer_live;           // its close callback has not run yet
    bool paused;
    kx_http_parser parser;
    int status;                // node's status, 0 until its head
    bool streaming;            // 200: chunked answer started
    bool done;                 // node answer complete
    kx_buf request;            // request for the node
    kx_buf errbody;            // non-200 answer body
    bool on_mux;               // node is a stream of the node's mux connection
    bool got_bytes;            // the node said something
    char node_host[256];       // for a dial when the mux turns out dead
    int node_port;
    char pod[254];
};

// --- Status answers ----------------------------------------------------------

static void respond_json(kx_httpd_req *req, int code, json_object *st)
{
    const char *body = json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN);
    kx_httpd_respond(req, code, "application/json", body, strlen(body));
}

// metav1.Status; details (name + kind) and one cause only when given.
// cause_field non-null: the cause is a field error (kubectl prints
// `The <kind> "<name>" is invalid: <field>: <cause>` for reason Invalid).
static void respond_status_field(kx_httpd_req *req, int code, const char *reason, const char *msg,
                                 const char *dname, const char *dkind, const char *cause, const char *cause_field)
{
    json_object *st = json_object_new_object();
    json_object_object_add(st, "kind", json_object_new_string("Status"));
    json_object_object_add(st, "apiVersion", json_object_new_string("v1"));
    json_object_object_add(st, "metadata", json_object_new_object());
    json_object_object_add(st, "status", json_object_new_string("Failure"));
    json_object_object_add(st, "message", json_object_new_string(msg));
    if (reason && *reason)
        json_object_object_add(st, "reason", json_object_new_string(reason));
    if (dname || cause) {
        json_object *d = json_object_new_object();
        if (dname)
            json_object_object_add(d, "name", json_object_new_string(dname));
        if (dkind)
            json_object_object_add(d, "kind", json_object_new_string(dkind));
        if (cause) {
            json_object *c = json_object_new_object(), *arr = json_object_new_array();
            if (cause_field && !strncmp(cause, "Forbidden: ", 11))
                json_object_object_add(c, "reason", json_object_new_string("FieldValueForbidden"));
            else if (cause_field && !strncmp(cause, "Unsupported value: ", 19))
                json_object_object_add(c, "reason", json_object_new_string("FieldValueNotSupported"));
            else if (cause_field)
                json_object_object_add(c, "reason", json_object_new_string("FieldValueInvalid"));
            json_object_object_add(c, "message", json_object_new_string(cause));
            if (cause_field)
                json_object_object_add(c, "field", json_object_new_string(cause_field));
            json_object_array_add(arr, c);
            json_object_object_add(d, "causes", arr);
        }
        json_object_object_add(st, "details", d);
    }
    json_object_object_add(st, "code", json_object_new_int(code));
    respond_json(req, code, st);
    json_object_put(st);
}

static void respond_status(kx_httpd_req *req, int code, const char *reason, const char *msg,
                           const char *dname, const char *dkind, const char *cause)
{
    respond_status_field(req, code, reason, msg, dname, dkind, cause, nullptr);
}

// 422 as upstream's NewInvalid for PodLogOptions with one field error.
static void respond_invalid(kx_httpd_req *req, const char *pod, const char *field, const char *detail)
{
    char msg[700];
    if (*field)
        snprintf(msg, sizeof msg, "PodLogOptions \"%s\" is invalid: %s: %s", pod, field, detail);
    else
        snprintf(msg, sizeof msg, "PodLogOptions \"%s\" is invalid: %s", pod, detail);
    respond_status_field(req, 422, "Invalid", msg, pod, "PodLogOptions", detail, field);
}

// The node's non-2xx answer as upstream's GenericHttpResponseChecker turns it
// into a Status for pods/log.
static void respond_node_error(kx_httpd_req *req, int code, const char *text, const char *pod)
{
    char msg[1024];
    if (code == 400) {
        respond_status(req, 400, "BadRequest", text, nullptr, nullptr, nullptr);
        return;
    }
    if (code == 500) {
        snprintf(msg, sizeof msg, "Internal error occurred: %s", text);
        respond_status(req, 500, "InternalError", msg, nullptr, nullptr, text);
        return;
    }
    const char *reason = "", *base = nullptr;
    char generic[600];
    switch (code) {
    case 401: reason = "Unauthorized"; base = "the server has asked for the client to provide credentials"; break;
    case 403: reason = "Forbidden"; base = "the server does not allow access to the requested resource"; break;
    case 404: reason = "NotFound"; base = "the server could not find the requested resource"; break;
    case 405: reason = "MethodNotAllowed"; base = "the server does not allow this method on the requested resource"; break;
    case 409: reason = "Conflict"; base = "the server reported a conflict"; break;
    case 422: reason = "Invalid"; base = "the server rejected our request due to an error in our request"; break;
    case 429: reason = "TooManyRequests"; base = "the server has received too many requests and has asked us to try again later"; break;
    case 503: reason = "ServiceUnavailable"; base = "the server is currently unable to handle the request"; break;
    case 504: reason = "Timeout"; base = "the server was unable to return a response in the time allotted, but may still be processing the request"; break;
    default:
        if (code >= 500) {
            reason = "InternalError";
            snprintf(generic, sizeof generic,
                     "an error on the server (\"%.500s\") has prevented the request from succeeding", text);
        } else {
            snprintf(generic, sizeof generic,
                     "the server responded with the status code %d but did not return more information", code);
        }
        base = generic;
    }
    // Upstream appends "(<verb> <resource> <name>)" with an empty verb.
    snprintf(msg, sizeof msg, "%s ( pods/log %s)", base, pod);
    respond_status(req, code, reason, msg, pod, "pods/log", text);
}

// --- options -----------------------------------------------------------------

static bool query_bool(const char *v)
{
    return strcmp(v, "0") != 0 && strcasecmp(v, "false") != 0;
}

static int parse_int(const char *v, long long *out)
{
    if (!*v)
        return -EINVAL;
    errno = 0;
    char *end;
    *out = strtoll(v, &end, 10);
    return *end || errno ? -EINVAL : 0;
}

// A RFC 3339 shape check (the node parses the value; we only refuse junk).
static bool looks_rfc3339(const char *v)
{
    size_t n = strlen(v);
    if (n < 20 || n > 40 || v[4] != '-' || v[7] != '-' || (v[10] != 'T' && v[10] != 't') || v[13] != ':')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789-:.TtZz+", v[i]))
            return false;
    return true;
}

// Translates the client's query into the node's (sorted keys, as upstream's
// url.Values.Encode). 0, or answers the request (400/422) and returns -1.
static int node_query(kx_httpd_req *req, const char *pod, char *out, size_t cap)
{
    char key[64], val[256], msg[512];
    bool follow = false, previous = false, timestamps = false;
    bool have_since = false, have_tail = false, have_limit = false, have_time = false;
    long long since = 0, tail = 0, limit = 0;
    char since_time[64] = "", stream[16] = "";
    const char *cur = req->query;
    int r;
    while ((r = kx_query_next(&cur, key, sizeof key, val, sizeof val)) > 0) {
        long long *ip = nullptr;
        bool *have = nullptr;
        if (!strcmp(key, "follow"))
            follow = query_bool(val);
        else if (!strcmp(key, "previous"))
            previous = query_bool(val);
        else if (!strcmp(key, "timestamps"))
            timestamps = query_bool(val);
        else if (!strcmp(key, "sinceSeconds"))
            ip = &since, have = &have_since;
        else if (!strcmp(key, "tailLines"))
            ip = &tail, have = &have_tail;
        else if (!strcmp(key, "limitBytes"))
            ip = &limit, have = &have_limit;
        else if (!strcmp(key, "sinceTime")) {
            if (!looks_rfc3339(val)) {
                snprintf(msg, sizeof msg, "parsing time \"%.64s\" as RFC 3339: invalid time", val);
                respond_status(req, 400, "BadRequest", msg, nullptr, nullptr, nullptr);
                return -1;
            }
            kx_strlcpy(since_time, val, sizeof since_time);
            have_time = true;
        } else if (!strcmp(key, "stream")) {
            if (strcmp(val, "All") && strcmp(val, "Stdout") && strcmp(val, "Stderr")) {
                snprintf(msg, sizeof msg,
                         "Unsupported value: \"%.32s\": supported values: \"All\", \"Stderr\", \"Stdout\"", val);
                respond_invalid(req, pod, "stream", msg);
                return -1;
            }
            kx_strlcpy(stream, val, sizeof stream);
        }
        if (ip) {
            if (parse_int(val, ip) < 0) {
                snprintf(msg, sizeof msg, "strconv.ParseInt: parsing \"%.64s\": invalid syntax", val);
                respond_status(req, 400, "BadRequest", msg, nullptr, nullptr, nullptr);
                return -1;
            }
            *have = true;
        }
    }
    if (r < 0) {
        respond_status(req, 400, "BadRequest", "invalid query parameters", nullptr, nullptr, nullptr);
        return -1;
    }
    // ValidatePodLogOptions.
    const char *field = nullptr;
    char detail[256];
    if (have_tail && tail < 0) {
        snprintf(detail, sizeof detail, "Invalid value: %lld: must be greater than or equal to 0", tail);
        field = "tailLines";
    } else if (have_limit && limit < 1) {
        snprintf(detail, sizeof detail, "Invalid value: %lld: must be greater than 0", limit);
        field = "limitBytes";
    } else if (have_since && have_time) {
        snprintf(detail, sizeof detail, "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified");
        field = "";
    } else if (have_since && since < 1) {
        snprintf(detail, sizeof detail, "Invalid value: %lld: must be greater than 0", since);
        field = "sinceSeconds";
    }
    if (field) {
        respond_invalid(req, pod, field, detail);
        return -1;
    }
    char enc[200];
    kx_url_escape(enc, sizeof enc, since_time);
    // Sorted: follow, limitBytes, previous, sinceSeconds, sinceTime, stream, tailLines, timestamps.
    int n = snprintf(out, cap, "%s", follow ? "&follow=true" : "");
    if (have_limit)
        n += snprintf(out + n, cap - (size_t)n, "&limitBytes=%lld", limit);
    if (previous)
        n += snprintf(out + n, cap - (size_t)n, "&previous=true");
    if (have_since)
        n += snprintf(out + n, cap - (size_t)n, "&sinceSeconds=%lld", since);
    if (have_time)
        n += snprintf(out + n, cap - (size_t)n, "&sinceTime=%s", enc);
    if (stream[0])
        n += snprintf(out + n, cap - (size_t)n, "&stream=%s", stream);
    if (have_tail)
        n += snprintf(out + n, cap - (size_t)n, "&tailLines=%lld", tail);
    if (timestamps)
        n += snprintf(out + n, cap - (size_t)n, "&timestamps=true");
    if (n > 0)
        out[0] = '?';   // the leading '&'
    return 0;
}

// --- the node side -------------------------------------------------------------

static void lp_maybe_free(logproxy *lp)
{
    if (lp->req || lp->node || lp->timer_live)
        return;
    kx_buf_free(&lp->request);
    kx_buf_free(&lp->errbody);
    lp->srv->active_sessions--;
    free(lp);
}

static void timer_closed(uv_handle_t *h)
{
    logproxy *lp = (logproxy *)h->data;
    lp->timer_live = false;
    lp_maybe_free(lp);
}

// Everything goes: the client's answer (if still open) is ended, the node
// connection closed, the timer closed.
static void lp_finish(logproxy *lp)
{
    kx_httpd_req *req = lp->req;
    if (req) {
        lp->req = nullptr;
        req->on_abort = nullptr;
        if (lp->streaming)
            kx_httpd_chunked_end(req);
        else if (lp->status && lp->status != 200) {
            kx_buf_append(&lp->errbody, "", 1, kMaxErrorBody + 1);   // NUL
            char *text = lp->errbody.data ? (char *)lp->errbody.data : (char *)"";
            // The kubelet's text ends with a newline at most; keep the message clean.
            size_t tl = strlen(text);
            while (tl && (text[tl - 1] == '\n' || text[tl - 1] == '\r'))
                text[--tl] = 0;
            respond_node_error(req, lp->status, text, lp->pod);
        } else {
            respond_status(req, 500, "InternalError",
                           "Internal error occurred: the node closed the connection without an answer", nullptr,
                           nullptr, "the node closed the connection without an answer");
        }
    }
    if (lp->node)
        kx_conn_close(lp->node);
    if (lp->timer_open) {
        lp->timer_open = false;
        uv_timer_stop(&lp->timer);
        uv_close((uv_handle_t *)&lp->timer, timer_closed);
    }
}

static int on_head(void *user, const kx_http_head *h)
{
    logproxy *lp = (logproxy *)user;
    lp->status = h->status;
    if (h->status < 200 || h->status > 206 || !lp->req)
        return 0;
    if (kx_httpd_chunked_start(lp->req, 200, "text/plain") < 0)
        return -EIO;
    lp->streaming = true;
    return 0;
}

static int on_body(void *user, const uint8_t *p, size_t n)
{
    logproxy *lp = (logproxy *)user;
    if (lp->streaming) {
        if (!lp->req || kx_httpd_chunked_write(lp->req, p, n) < 0)
            return -EIO;
        return 0;
    }
    // Error text: keep what upstream would read, drop the rest.
    size_t room = kMaxErrorBody > lp->errbody.len ? kMaxErrorBody - lp->errbody.len : 0;
    kx_buf_append(&lp->errbody, p, n < room ? n : room, kMaxErrorBody);
    return 0;
}

static int on_complete(void *user)
{
    ((logproxy *)user)->done = true;
    return 0;
}

static const kx_http_callbacks parser_cb = {on_head, on_body, on_complete};

static void on_timer(uv_timer_t *t)
{
    logproxy *lp = (logproxy *)t->data;
    if (!lp->req || !lp->node || !lp->paused)
        return;
    if (kx_httpd_queued(lp->req) < KX_CONN_LOW_WATER) {
        lp->paused = false;
        kx_conn_resume(lp->node);
        return;
    }
    uv_timer_start(&lp->timer, on_timer, kBackoffMs, 0);
}

static void node_on_ready(kx_conn *c, int status)
{
    logproxy *lp = (logproxy *)kx_conn_user(c);
    if (status < 0) {
        if (lp->req) {
            char msg[300];
            snprintf(msg, sizeof msg, "Internal error occurred: error dialing backend: %s", uv_strerror(status));
            kx_httpd_req *req = lp->req;
            lp->req = nullptr;
            req->on_abort = nullptr;
            respond_status(req, 500, "InternalError", msg, nullptr, nullptr, msg + 25);
        }
        lp_finish(lp);
        return;
    }
    kx_conn_write(c, lp->request.data, lp->request.len);
    // A mux stream may find the connection dead: keep the request for a dial.
    if (!lp->on_mux)
        kx_buf_free(&lp->request);
}

static void node_on_data(kx_conn *c, const uint8_t *d, size_t n)
{
    logproxy *lp = (logproxy *)kx_conn_user(c);
    if (!lp->got_bytes) {
        lp->got_bytes = true;
        kx_buf_free(&lp->request);
    }
    if (lp->done)
        return;
    long used = kx_http_feed(&lp->parser, d, n);
    if (used < 0 || lp->done || !lp->req) {
        lp_finish(lp);
        return;
    }
    if (lp->streaming && kx_httpd_queued(lp->req) > KX_CONN_HIGH_WATER && !lp->paused) {
        lp->paused = true;
        kx_conn_pause(c);
        uv_timer_start(&lp->timer, on_timer, kBackoffMs, 0);
    }
}

static bool dial_node(logproxy *lp);

static void node_on_end(kx_conn *c, int)
{
    logproxy *lp = (logproxy *)kx_conn_user(c);
    if (lp->on_mux && !lp->got_bytes && lp->req) {
        // The mux connection died before the node answered (a node restart
        // the API server had not seen yet): ask again on a connection of our own.
        lp->on_mux = false;
        kx_conn_set_user(c, nullptr, &kx_conn_no_callbacks);
        kx_conn_close(c);
        if (dial_node(lp))
            return;
    }
    if (!lp->done)
        kx_http_eof(&lp->parser);   // a body that runs until EOF completes here
    lp_finish(lp);
}

static void node_on_close(kx_conn *c)
{
    logproxy *lp = (logproxy *)kx_conn_user(c);
    lp->node = nullptr;
    if (lp->req)
        lp_finish(lp);   // the node went away before its answer was done
    lp_maybe_free(lp);
}

static const kx_conn_callbacks node_cb = {node_on_ready, node_on_data, node_on_end, nullptr, node_on_close};

// A connection of the log request's own to the node; false if it cannot start.
static bool dial_node(logproxy *lp)
{
    lp->node = kx_conn_connect(lp->srv->loop, lp->node_host, lp->node_port, lp->srv->node_ctx,
                               lp->node_host, &node_cb, lp);
    return lp->node != nullptr;
}

static void client_on_abort(kx_httpd_req *, void *data)
{
    logproxy *lp = (logproxy *)data;
    lp->req = nullptr;   // dead now
    lp_finish(lp);
    lp_maybe_free(lp);
}

void kx_logproxy_start(kx_apiserver *s, kx_httpd_req *req, const kx_api_user *user, const char *ns,
                       const char *pod)
{
    if (strcmp(req->head->method, "GET") != 0) {
        respond_status(req, 405, "MethodNotAllowed", "the server does not allow this method on the requested resource",
                       nullptr, nullptr, nullptr);
        return;
    }
    struct kx_api_stream_target t = {};
    kx_api_response resp = {};
    int r = kx_api_stream_target(s->api, user, "get", ns, pod, "log", req->query, kx_now_ms(), &t, &resp);
    if (r == -EINVAL && resp.body && strstr(resp.body, "does not have a host assigned")) {
        // Upstream answers logs of an unscheduled pod with an empty 204.
        free(resp.body);
        kx_httpd_respond(req, 204, "text/plain", "", 0);
        return;
    }
    if (r != 0) {
        kx_httpd_respond(req, resp.status, resp.content_type ? resp.content_type : "application/json", resp.body,
                         resp.body_len);
        free(resp.body);
        return;
    }
    char query[1024];
    if (node_query(req, pod, query, sizeof query) < 0)
        return;

    logproxy *lp = (logproxy *)calloc(1, sizeof *lp);
    if (!lp) {
        kx_httpd_respond(req, 500, "text/plain", "out of memory\n", 14);
        return;
    }
    lp->srv = s;
    kx_strlcpy(lp->pod, pod, sizeof lp->pod);
    kx_http_parser_init(&lp->parser, KX_HTTP_RESPONSE, &parser_cb, lp);
    char target[2048], host[300];
    snprintf(target, sizeof target, "/containerLogs/%s/%s/%s%s", t.ns, t.pod, t.container, query);
    snprintf(host, sizeof host, strchr(t.node_host, ':') ? "[%s]:%d" : "%s:%d", t.node_host, t.node_port);
    const char *ua = kx_http_get(req->head, "User-Agent");
    kx_http_header hs[3] = {{"Host", host}, {"User-Agent", ua ? ua : "kubexec-apiserver"}, {"Connection", "close"}};
    char head[4096];
    int hl = kx_http_format_request(head, sizeof head, "GET", target, hs, 3, -1);
    if (hl < 0 || kx_buf_append(&lp->request, head, (size_t)hl, sizeof head) < 0) {
        free(lp);
        respond_status(req, 400, "BadRequest", "request too large", nullptr, nullptr, nullptr);
        return;
    }
    if (uv_timer_init(s->loop, &lp->timer) != 0) {
        kx_buf_free(&lp->request);
        free(lp);
        kx_httpd_respond(req, 500, "text/plain", "cannot start the log stream\n", 28);
        return;
    }
    lp->timer.data = lp;
    lp->timer_open = lp->timer_live = true;
    lp->req = req;
    req->on_abort = client_on_abort;
    req->abort_data = lp;
    s->proxied_sessions++;
    s->active_sessions++;
    kx_strlcpy(lp->node_host, t.node_host, sizeof lp->node_host);
    lp->node_port = t.node_port;
    // Like exec: a stream of the node's mux connection when there is one.
    lp->node = kx_nodepool_stream(s, t.node_host, t.node_port, &node_cb, lp);
    if (lp->node) {
        lp->on_mux = true;
        node_on_ready(lp->node, 0);
        return;
    }
    if (!dial_node(lp)) {
        req->on_abort = nullptr;
        lp->req = nullptr;
        respond_status(req, 500, "InternalError", "Internal error occurred: error dialing backend", nullptr, nullptr,
                       "error dialing backend");
        lp_finish(lp);
    }
}
