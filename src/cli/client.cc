// The CLI's HTTPS client: setup from the kubeconfig, one request at a time
// on a kx_conn, the 101 handoff, and kubectl-style error messages.
// Contract in cli.h.
#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "kubexec/ws.h"

int kx_cli_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int kx_cli_setup(kx_cli *c)
{
    if (c->cfg_loaded)
        return 0;
    char err[1024] = "";
    // kubeconfig.h's messages carry kubectl's own prefix ("error: ...").
    if (kx_kcfg_load(&c->g.kcfg, getenv("KUBECONFIG"), getenv("HOME"), &c->cfg, err,
                     sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    c->cfg_loaded = true;
    if (kx_kcfg_server_parts(c->cfg.server, &c->https, c->host, sizeof c->host, &c->port,
                             c->prefix, sizeof c->prefix) < 0)
        return kx_cli_err("invalid server URL %s", c->cfg.server);
    if (strchr(c->host, ':'))
        snprintf(c->hostport, sizeof c->hostport, "[%s]:%d", c->host, c->port);
    else
        snprintf(c->hostport, sizeof c->hostport, "%s:%d", c->host, c->port);
    // Strip a trailing '/' so prefix + "/api/..." has one slash.
    size_t pl = strlen(c->prefix);
    if (pl && c->prefix[pl - 1] == '/')
        c->prefix[pl - 1] = '\0';
    if (c->cfg.token) {
        if (strpbrk(c->cfg.token, "\r\n") || strlen(c->cfg.token) > sizeof c->auth - 32)
            return kx_cli_err("the bearer token holds a line break or is too long");
        snprintf(c->auth, sizeof c->auth, "Authorization: Bearer %s\r\n", c->cfg.token);
    }
    if (!c->https)
        return 0;   // refused at connect time with kubectl's message
    c->ssl = kx_kcfg_tls_ctx(&c->cfg, err, sizeof err);
    if (!c->ssl) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    c->verify_host = c->cfg.insecure ? nullptr
                     : c->cfg.tls_server_name ? c->cfg.tls_server_name : c->host;
    kx_cli_tlscache_init(c);
    return 0;
}

// ---- One connection ----------------------------------------------------------

struct kx_cli_http {
    kx_cli *c;
    kx_conn *conn;          // null once closed
    kx_http_parser parser;
    bool ready, failed, done, upgraded, ended;
    int error;              // transport error (negative errno)
    char tls_err[256];
    kx_cli_body_cb sink;
    void *sink_user;
    int sink_rc;
    kx_buf body;
    kx_buf early;           // bytes after a 101 head
    bool free_on_close;
};

static void h_ready(kx_conn *conn, int status)
{
    kx_cli_http *h = (kx_cli_http *)kx_conn_user(conn);
    if (status < 0) {
        h->failed = true;
        h->error = status;
        kx_strlcpy(h->tls_err, kx_conn_tls_error(conn), sizeof h->tls_err);
        return;
    }
    h->ready = true;
}

static void h_data(kx_conn *conn, const uint8_t *p, size_t n)
{
    kx_cli_http *h = (kx_cli_http *)kx_conn_user(conn);
    if (h->upgraded) {
        if (kx_buf_append(&h->early, p, n, KX_CLI_MAX_BODY) < 0) {
            h->failed = true;
            h->error = -EMSGSIZE;
        }
        return;
    }
    long used = kx_http_feed(&h->parser, p, n);
    if (used < 0) {
        h->failed = true;
        h->error = (int)used;
        return;
    }
    if (h->upgraded && (size_t)used < n)
        kx_buf_append(&h->early, p + used, n - (size_t)used, KX_CLI_MAX_BODY);
}

static void h_end(kx_conn *conn, int status)
{
    kx_cli_http *h = (kx_cli_http *)kx_conn_user(conn);
    h->ended = true;
    if (h->done || h->failed)
        return;
    if (status == 0 && kx_http_eof(&h->parser) == 0 && h->done)
        return;
    h->failed = true;
    h->error = status < 0 ? status : -ECONNRESET;
}

static void h_closed(kx_conn *conn)
{
    kx_cli_http *h = (kx_cli_http *)kx_conn_user(conn);
    if (!h)
        return;
    h->conn = nullptr;
    if (h->free_on_close) {
        kx_buf_free(&h->body);
        kx_buf_free(&h->early);
        free(h);
    }
}

static const kx_conn_callbacks h_conn_cb = {h_ready, h_data, h_end, nullptr, h_closed};

static int h_on_head(void *user, const kx_http_head *hd)
{
    kx_cli_http *h = (kx_cli_http *)user;
    if (hd->status == 101)
        h->upgraded = true;
    return 0;
}

static int h_on_body(void *user, const uint8_t *p, size_t n)
{
    kx_cli_http *h = (kx_cli_http *)user;
    const kx_http_head *hd = kx_http_parser_head(&h->parser);
    if (h->sink && hd->status >= 200 && hd->status < 300) {
        int r = h->sink(h->sink_user, p, n);
        if (r < 0)
            h->sink_rc = r;
        return r;
    }
    return kx_buf_append(&h->body, p, n, KX_CLI_MAX_BODY);
}

static int h_on_complete(void *user)
{
    ((kx_cli_http *)user)->done = true;
    return 0;
}

static const kx_http_callbacks h_http_cb = {h_on_head, h_on_body, h_on_complete};

// Runs the loop until *flag or a failure.
static void run_until(kx_cli_http *h, const bool *flag)
{
    while (!*flag && !h->failed) {
        if (uv_run(h->c->loop, UV_RUN_ONCE) == 0 && !*flag && !h->failed) {
            h->failed = true;
            h->error = -EPIPE;
        }
    }
}

// kubectl's wording for a connection that could not be made.
static int connect_error(kx_cli *c, int err, const char *tls_err)
{
    if (err == -ECONNREFUSED) {
        fprintf(stderr,
                "The connection to the server %s was refused - did you specify the right host "
                "or port?\n",
                c->hostport);
        return 1;
    }
    if (tls_err && *tls_err)
        fprintf(stderr, "Unable to connect to the server: %s\n", tls_err);
    else
        fprintf(stderr, "Unable to connect to the server: dial tcp %s: %s\n", c->hostport,
                strerror(-err));
    return 1;
}

// Plain http:// servers (kubectl's no-config default is http://localhost:8080)
// are only dialled to tell "refused" from "there, but we speak HTTPS only".
static int plain_http_probe(kx_cli *c)
{
    uv_tcp_t tcp;
    uv_connect_t req;
    int status = 1;   // pending
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } addr;
    const char *host = strcmp(c->host, "localhost") == 0 ? "127.0.0.1" : c->host;
    if (uv_ip4_addr(host, c->port, &addr.in4) != 0 && uv_ip6_addr(host, c->port, &addr.in6) != 0)
        return kx_cli_err("the server %s is plain HTTP; kubexec speaks HTTPS only", c->cfg.server);
    uv_tcp_init(c->loop, &tcp);
    req.data = &status;
    if (uv_tcp_connect(&req, &tcp, &addr.sa, [](uv_connect_t *r, int st) {
            *(int *)r->data = st;
        }) != 0)
        status = -ECONNREFUSED;
    while (status == 1)
        uv_run(c->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tcp, nullptr);
    uv_run(c->loop, UV_RUN_NOWAIT);
    if (status < 0)
        return connect_error(c, status, nullptr);
    return kx_cli_err("the server %s is plain HTTP; kubexec speaks HTTPS only", c->cfg.server);
}

int kx_cli_http_open(kx_cli *c, kx_cli_http **out)
{
    *out = nullptr;
    if (kx_cli_setup(c))
        return 1;
    if (!c->https)
        return plain_http_probe(c);
    kx_cli_http *h = (kx_cli_http *)calloc(1, sizeof *h);
    if (!h)
        return kx_cli_err("out of memory");
    h->c = c;
    h->conn = kx_conn_connect(c->loop, c->host, c->port, c->ssl, c->verify_host, &h_conn_cb, h);
    if (!h->conn) {
        free(h);
        return connect_error(c, -EHOSTUNREACH, nullptr);
    }
    // An earlier run's session, if any, makes this a resumption (tlscache.cc).
    kx_cli_tlscache_offer(h->conn);
    run_until(h, &h->ready);
    if (!h->ready) {
        int rc = connect_error(c, h->error, h->tls_err);
        kx_cli_http_close(h);
        return rc;
    }
    kx_cli_tlscache_store(h->conn);
    *out = h;
    return 0;
}

void kx_cli_http_close(kx_cli_http *h)
{
    if (!h)
        return;
    if (h->conn) {
        kx_cli_tlscache_store(h->conn);
        h->free_on_close = true;
        kx_conn_close(h->conn);
        return;
    }
    kx_buf_free(&h->body);
    kx_buf_free(&h->early);
    free(h);
}

int kx_cli_http_do(kx_cli_http *h, const char *method, const char *path, const char *extra,
                   kx_cli_body_cb sink, void *sink_user, kx_cli_resp *resp)
{
    kx_cli *c = h->c;
    memset(resp, 0, sizeof *resp);
    if (!h->conn || h->failed)
        return connect_error(c, -ECONNRESET, nullptr);
    h->done = false;
    h->body.len = 0;
    h->sink = sink;
    h->sink_user = sink_user;
    h->sink_rc = 0;
    kx_http_parser_init(&h->parser, KX_HTTP_RESPONSE, &h_http_cb, h);
    kx_buf req = {};
    char line[1024];
    int n = snprintf(line, sizeof line, "%s %s", method, c->prefix);
    if (n < 0 || (size_t)n >= sizeof line ||
        kx_buf_append(&req, line, (size_t)n, SIZE_MAX) < 0 ||
        kx_buf_append(&req, path, strlen(path), SIZE_MAX) < 0)
        return kx_cli_err("request too long");
    n = snprintf(line, sizeof line,
                 " HTTP/1.1\r\nHost: %s\r\nUser-Agent: kubexec/" KX_CLI_VERSION
                 "\r\nAccept-Encoding: identity\r\n",
                 c->hostport);
    kx_buf_append(&req, line, (size_t)n, SIZE_MAX);
    if (c->auth[0])
        kx_buf_append(&req, c->auth, strlen(c->auth), SIZE_MAX);
    if (extra)
        kx_buf_append(&req, extra, strlen(extra), SIZE_MAX);
    if (kx_buf_append(&req, "\r\n", 2, SIZE_MAX) < 0) {
        kx_buf_free(&req);
        return kx_cli_err("out of memory");
    }
    int r = kx_conn_write(h->conn, req.data, req.len);
    kx_buf_free(&req);
    if (r < 0)
        return connect_error(c, r, nullptr);
    run_until(h, &h->done);
    if (!h->done) {
        if (h->sink_rc < 0)
            return 1;   // the sink said why
        if (h->error == -EPROTO || h->error == -EMSGSIZE)
            return kx_cli_err("malformed HTTP response from %s", c->hostport);
        fprintf(stderr, "Unable to connect to the server: %s\n",
                h->ended ? "EOF" : strerror(-h->error));
        return 1;
    }
    // TLS 1.3 tickets (OpenSSL backend) arrive before the first answer.
    if (h->conn)
        kx_cli_tlscache_store(h->conn);
    const kx_http_head *hd = kx_http_parser_head(&h->parser);
    resp->status = hd->status;
    resp->head = hd;
    resp->body = h->body.data;
    resp->body_len = h->body.len;
    return 0;
}

kx_conn *kx_cli_http_take(kx_cli_http *h, kx_buf *early)
{
    kx_conn *conn = h->conn;
    *early = h->early;
    h->early = {};
    kx_conn_set_user(conn, nullptr, &h_conn_cb);   // until the new owner sets its own
    h->conn = nullptr;
    kx_buf_free(&h->body);
    free(h);
    return conn;
}

int kx_cli_get(kx_cli *c, const char *path, kx_cli_resp *resp, kx_cli_http **hold)
{
    kx_cli_http *h;
    *hold = nullptr;
    if (kx_cli_http_open(c, &h))
        return 1;
    if (kx_cli_http_do(h, "GET", path, "Accept: application/json\r\n", nullptr, nullptr, resp)) {
        kx_cli_http_close(h);
        return 1;
    }
    *hold = h;
    return 0;
}

// ---- Errors ------------------------------------------------------------------

json_object *kx_cli_json(const uint8_t *p, size_t n)
{
    if (n == 0 || n > INT32_MAX)
        return nullptr;
    json_tokener *tok = json_tokener_new_ex(256);
    if (!tok)
        return nullptr;
    json_object *o = json_tokener_parse_ex(tok, (const char *)p, (int)n);
    if (o && json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(o);
        o = nullptr;
    }
    json_tokener_free(tok);
    return o;
}

int kx_cli_write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd pf = {fd, POLLOUT, 0};
                poll(&pf, 1, -1);
                continue;
            }
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int kx_cli_api_error(const kx_cli_resp *r)
{
    json_object *o = kx_cli_json(r->body, r->body_len);
    json_object *kind = nullptr, *reason = nullptr, *msg = nullptr;
    if (o && json_object_is_type(o, json_type_object) &&
        json_object_object_get_ex(o, "kind", &kind) &&
        strcmp(json_object_get_string(kind), "Status") == 0 &&
        json_object_object_get_ex(o, "message", &msg)) {
        const char *rs = json_object_object_get_ex(o, "reason", &reason)
                             ? json_object_get_string(reason) : "";
        if (rs && *rs)
            fprintf(stderr, "Error from server (%s): %s\n", rs, json_object_get_string(msg));
        else
            fprintf(stderr, "Error from server: %s\n", json_object_get_string(msg));
    } else if (r->status == 401) {
        fputs("error: You must be logged in to the server (Unauthorized)\n", stderr);
    } else if (r->body_len && r->body_len < 1024) {
        fprintf(stderr, "Error from server: %.*s\n", (int)r->body_len, (const char *)r->body);
    } else {
        fprintf(stderr,
                "error: the server responded with the status code %d but did not return more "
                "information\n",
                r->status);
    }
    json_object_put(o);
    return 1;
}

int kx_cli_qesc(char *out, size_t cap, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        bool plain = isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~';
        if (o + (plain ? 1 : 3) >= cap)
            return -EMSGSIZE;
        if (plain) {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    if (o >= cap)
        return -EMSGSIZE;
    out[o] = '\0';
    return (int)o;
}

// ---- Pods ----------------------------------------------------------------------

int kx_cli_pod_path(char *out, size_t cap, const char *ns, const char *pod, const char *sub)
{
    char ens[600], epod[600];
    if (kx_cli_qesc(ens, sizeof ens, ns) < 0 || kx_cli_qesc(epod, sizeof epod, pod) < 0)
        return -EMSGSIZE;
    int n = snprintf(out, cap, "/api/v1/namespaces/%s/pods/%s%s%s", ens, epod, sub ? "/" : "",
                     sub ? sub : "");
    return n < 0 || (size_t)n >= cap ? -EMSGSIZE : n;
}

int kx_cli_pod_name(const char *arg, char *out, size_t cap)
{
    const char *slash = strchr(arg, '/');
    const char *name = arg;
    if (slash) {
        size_t tl = (size_t)(slash - arg);
        if (!((tl == 3 && strncmp(arg, "pod", 3) == 0) || (tl == 4 && strncmp(arg, "pods", 4) == 0) ||
              (tl == 2 && strncmp(arg, "po", 2) == 0)))
            return kx_cli_err("the server doesn't have a resource type \"%.*s\"", (int)tl, arg);
        name = slash + 1;
    }
    if (!*name)
        return kx_cli_err("arguments in resource/name form must have a single resource and name");
    if (kx_strlcpy(out, name, cap) < 0 || strchr(name, '/'))
        return kx_cli_err("invalid pod name %s", arg);
    return 0;
}

static const char *jstr(json_object *o, const char *k)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return nullptr;
}

static bool jbool(json_object *o, const char *k)
{
    json_object *v;
    return o && json_object_object_get_ex(o, k, &v) && json_object_get_boolean(v);
}

int kx_cli_pod_get(kx_cli_http *h, const char *ns, const char *name, kx_cli_pod *pod)
{
    memset(pod, 0, sizeof *pod);
    char path[1400];
    if (kx_cli_pod_path(path, sizeof path, ns, name, nullptr) < 0)
        return kx_cli_err("namespace or pod name too long");
    kx_cli_resp r;
    if (kx_cli_http_do(h, "GET", path, "Accept: application/json\r\n", nullptr, nullptr, &r))
        return 1;
    if (r.status == 404 && h->c->logs_errors) {
        fprintf(stderr, "error: error from server (NotFound): pods \"%s\" not found in namespace "
                        "\"%s\"\n", name, ns);
        return 1;
    }
    if (r.status != 200)
        return kx_cli_api_error(&r);
    json_object *o = kx_cli_json(r.body, r.body_len);
    if (!o)
        return kx_cli_err("the server returned a pod that is not JSON");
    json_object *meta = nullptr, *spec = nullptr, *status = nullptr, *ctrs = nullptr,
                *ann = nullptr;
    json_object_object_get_ex(o, "metadata", &meta);
    json_object_object_get_ex(o, "spec", &spec);
    json_object_object_get_ex(o, "status", &status);
    kx_strlcpy(pod->name, jstr(meta, "name") ? jstr(meta, "name") : name, sizeof pod->name);
    kx_strlcpy(pod->ns, jstr(meta, "namespace") ? jstr(meta, "namespace") : ns, sizeof pod->ns);
    kx_strlcpy(pod->phase, jstr(status, "phase") ? jstr(status, "phase") : "", sizeof pod->phase);
    if (meta && json_object_object_get_ex(meta, "annotations", &ann)) {
        const char *d = jstr(ann, "kubectl.kubernetes.io/default-container");
        if (d)
            kx_strlcpy(pod->default_container, d, sizeof pod->default_container);
    }
    if (spec && json_object_object_get_ex(spec, "containers", &ctrs) &&
        json_object_is_type(ctrs, json_type_array)) {
        size_t n = json_object_array_length(ctrs);
        for (size_t i = 0; i < n && pod->ncontainers < 16; i++) {
            json_object *ct = json_object_array_get_idx(ctrs, i);
            const char *cn = jstr(ct, "name");
            if (!cn)
                continue;
            kx_strlcpy(pod->containers[pod->ncontainers], cn, sizeof pod->containers[0]);
            pod->tty[pod->ncontainers] = jbool(ct, "tty");
            pod->stdin_[pod->ncontainers] = jbool(ct, "stdin");
            pod->ncontainers++;
        }
    }
    json_object_put(o);
    return 0;
}

int kx_cli_pod_container(const kx_cli_pod *pod, const char *given, bool quiet, char *out,
                         size_t cap)
{
    if (given && *given) {
        kx_strlcpy(out, given, cap);
        return 0;
    }
    if (pod->default_container[0]) {
        kx_strlcpy(out, pod->default_container, cap);
        return 0;
    }
    if (pod->ncontainers == 0)
        return kx_cli_err("pod %s does not have a container", pod->name);
    kx_strlcpy(out, pod->containers[0], cap);
    if (pod->ncontainers > 1 && !quiet) {
        fprintf(stderr, "Defaulted container \"%s\" out of: ", out);
        for (size_t i = 0; i < pod->ncontainers; i++)
            fprintf(stderr, "%s%s", i ? ", " : "", pod->containers[i]);
        fputc('\n', stderr);
    }
    return 0;
}

int kx_cli_pod_open(kx_cli *c, const char *arg, const char *ns, const char *container,
                    bool quiet, kx_cli_http **h, kx_cli_pod *pod, char *ctr, size_t ctrcap)
{
    *h = nullptr;
    char name[256];
    if (kx_cli_pod_name(arg, name, sizeof name))
        return 1;
    kx_cli_http *conn;
    if (kx_cli_http_open(c, &conn))
        return 1;
    if (kx_cli_pod_get(conn, ns ? ns : c->cfg.namespace_, name, pod) ||
        (ctr && kx_cli_pod_container(pod, container, quiet, ctr, ctrcap))) {
        kx_cli_http_close(conn);
        return 1;
    }
    *h = conn;
    return 0;
}

bool kx_cli_ws_enabled(const char *env)
{
    const char *e = getenv(env);
    return !(e && (strcmp(e, "false") == 0 || strcmp(e, "0") == 0));
}

int kx_cli_ws_upgrade(kx_cli *c, kx_cli_http **h, const char *path, const char *protocol)
{
    char key[KX_WS_KEY_LEN + 1], hdr[512];
    if (kx_ws_client_key(key) < 0) {
        kx_cli_http_close(*h);
        *h = nullptr;
        kx_cli_err("no random bytes for the WebSocket key");
        return -1;
    }
    snprintf(hdr, sizeof hdr,
             "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
             "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Protocol: %s\r\n",
             key, protocol);
    kx_cli_resp r;
    if (kx_cli_http_do(*h, "GET", path, hdr, nullptr, nullptr, &r)) {
        kx_cli_http_close(*h);
        *h = nullptr;
        return -1;
    }
    const char *proto = r.status == 101 ? kx_http_get(r.head, "Sec-WebSocket-Protocol") : nullptr;
    if (r.status == 101 && kx_ws_client_check(r.head, key) == 0 && proto &&
        strcmp(proto, protocol) == 0)
        return 1;
    // A refused keep-alive answer leaves the connection reusable; anything
    // else (a 101 we will not use, a closing answer) needs a new one.
    if (r.status != 101 && r.head && r.head->keep_alive)
        return 0;
    kx_cli_http_close(*h);
    *h = nullptr;
    return kx_cli_http_open(c, h) ? -1 : 0;
}
