// Routes of kubexec-node's HTTPS server (the kubelet API subset):
//   /exec/{ns}/{pod}/{ctr}        exec        (exec.cc)
//   /attach/{ns}/{pod}/{ctr}      attach      (attach.cc)
//   /portForward/{ns}/{pod}       port-forward (portforward.cc)
//   /containerLogs/{ns}/{pod}/{ctr} logs      (logs.cc)
// Only the API server's client certificate is accepted. Errors before an
// upgrade are plain text, as the kubelet answers them; the API server relays
// them verbatim.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kubexec/http1.h"
#include "kubexec/mux.h"
#include "node.h"
#include "rcx.h"

static const size_t kMaxArgs = 1024;

// Splits the rest of `path` after `prefix` into '/'-separated parts.
// Returns the number of parts, or -1 if malformed / too many.
static int split_path(const char *path, const char *prefix, char parts[][254], int maxparts)
{
    size_t pl = strlen(prefix);
    if (strncmp(path, prefix, pl) != 0)
        return -1;
    const char *p = path + pl;
    int n = 0;
    while (*p && n < maxparts) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || len >= 254)
            return -1;
        memcpy(parts[n], p, len);
        parts[n][len] = 0;
        n++;
        if (!slash)
            return n;
        p = slash + 1;
    }
    return *p ? -1 : n;
}

static void free_argv(char **argv)
{
    for (size_t i = 0; argv && argv[i]; i++)
        free(argv[i]);
    free(argv);
}

// Parses the kubelet stream query (command=..., input/output/error/tty=1).
// argv may be null (attach). Returns 0 or answers the request and returns -1.
static int parse_stream_query(kx_httpd_req *req, kx_rcx_request *rq, char ***argv_out)
{
    char key[64];
    static char val[64 * 1024];
    // argv lives as long as the session: sized for what the query holds
    // (grown by doubling, null-terminated throughout), not for kMaxArgs.
    char **argv = nullptr;
    size_t argc = 0, cap = 0;
    if (argv_out) {
        cap = 4;
        argv = (char **)calloc(cap + 1, sizeof *argv);
        if (!argv) {
            kx_httpd_respond_text(req, 500, "out of memory");
            return -1;
        }
    }
    const char *cur = req->query;
    int r;
    while ((r = kx_query_next(&cur, key, sizeof key, val, sizeof val)) > 0) {
        if (strcmp(key, "command") == 0 && argv) {
            if (argc == kMaxArgs) {
                r = -E2BIG;
                break;
            }
            if (argc == cap) {
                size_t ncap = cap * 2 < kMaxArgs ? cap * 2 : kMaxArgs;
                char **nv = (char **)realloc(argv, (ncap + 1) * sizeof *argv);
                if (!nv) {
                    r = -ENOMEM;
                    break;
                }
                argv = nv;
                memset(argv + cap, 0, (ncap + 1 - cap) * sizeof *argv);
                cap = ncap;
            }
            if (!(argv[argc++] = strdup(val))) {
                r = -ENOMEM;
                break;
            }
        } else if (strcmp(key, "input") == 0) {
            rq->in = strcmp(val, "1") == 0;
        } else if (strcmp(key, "output") == 0) {
            rq->out = strcmp(val, "1") == 0;
        } else if (strcmp(key, "error") == 0) {
            rq->err = strcmp(val, "1") == 0;
        } else if (strcmp(key, "tty") == 0) {
            rq->tty = strcmp(val, "1") == 0;
        }
    }
    if (r < 0) {
        free_argv(argv);
        if (r == -ENOMEM)   // ours, not the request's fault
            kx_httpd_respond_text(req, 500, "out of memory");
        else
            kx_httpd_respond_text(req, 400, r == -E2BIG ? "too many command arguments"
                                                        : "invalid query parameters");
        return -1;
    }
    if (!rq->in && !rq->out && !rq->err) {
        free_argv(argv);
        kx_httpd_respond_text(req, 400, "you must specify at least 1 of stdin, stdout, stderr");
        return -1;
    }
    if (argv_out && argc == 0) {
        free_argv(argv);
        kx_httpd_respond_text(req, 400, "command is required");
        return -1;
    }
    // With a tty there is no separate stderr (the kubelet forces it off).
    if (rq->tty)
        rq->err = false;
    if (argv_out)
        *argv_out = argv;
    return 0;
}

// The container must exist and run; answers like the kubelet otherwise.
static int check_container(kx_node *node, kx_httpd_req *req, const char *ns, const char *pod,
                           const char *ctr)
{
    char err[512];
    kx_container_ref ref = {};
    int r = kx_podmgr_find(node->pm, ns, pod, ctr, &ref, err, sizeof err);
    if (r == 0)
        return 0;
    kx_httpd_respond_text(req, r == -ENOENT ? 404 : 500, err);
    return -1;
}

static bool method_ok(kx_httpd_req *req)
{
    const char *m = req->head->method;
    if (strcmp(m, "GET") == 0 || strcmp(m, "POST") == 0)
        return true;
    kx_httpd_respond_text(req, 405, "method not allowed");
    return false;
}

// --- the API server's multiplexed connection (kubexec/mux.h) ---------------

struct node_mux {
    node_mux *next, **pprev;
    kx_node *node;
    kx_mux *mux;
};
static node_mux *g_muxes;

static void mux_on_stream(kx_mux *m, kx_conn *child)
{
    node_mux *nm = (node_mux *)kx_mux_user(m);
    // A stream is a connection of its own to the HTTP server: its request is
    // routed, authorized (the parent's certificate) and upgraded as usual.
    if (nm->node->httpd)
        kx_httpd_adopt(nm->node->httpd, child);   // aborts it when it cannot
    else
        kx_conn_abort(child);
}

static void node_mux_free(node_mux *nm)
{
    *nm->pprev = nm->next;
    if (nm->next)
        nm->next->pprev = nm->pprev;
    free(nm);
}

static void mux_on_close(kx_mux *m, int)
{
    node_mux_free((node_mux *)kx_mux_user(m));
}

static const kx_mux_callbacks node_mux_cb = {mux_on_stream, mux_on_close};

// GET /mux with "Upgrade: kubexec-mux/1": the connection becomes a mux whose
// streams are served like connections.
static void serve_mux(kx_node *node, kx_httpd_req *req)
{
    const char *up = kx_http_get(req->head, "Upgrade");
    if (strcmp(req->head->method, "GET") != 0 || !req->head->upgrade || !up ||
        strcasecmp(up, KX_MUX_PROTOCOL) != 0) {
        kx_httpd_respond_text(req, 400, "mux: GET with \"Upgrade: " KX_MUX_PROTOCOL "\" expected");
        return;
    }
    node_mux *nm = (node_mux *)calloc(1, sizeof *nm);
    if (!nm) {
        kx_httpd_respond_text(req, 500, "out of memory");
        return;
    }
    // req->extra belongs to the request: the frames in it are parsed before
    // this returns (kx_mux_start).
    const uint8_t *extra = req->extra;
    size_t extra_len = req->extra_len;
    kx_conn *c = kx_httpd_hijack(req);
    static const char ok[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                             "Upgrade: " KX_MUX_PROTOCOL "\r\n\r\n";
    kx_conn_write(c, (const uint8_t *)ok, sizeof ok - 1);
    nm->node = node;
    nm->next = g_muxes;
    if (g_muxes)
        g_muxes->pprev = &nm->next;
    g_muxes = nm;
    nm->pprev = &g_muxes;
    nm->mux = kx_mux_start(c, false, &node_mux_cb, nm, extra, extra_len);
    if (!nm->mux) {
        node_mux_free(nm);
        kx_conn_abort(c);
    }
}

void kx_node_close_muxes(kx_node *)
{
    for (node_mux *nm = g_muxes; nm; nm = nm->next)
        kx_mux_close(nm->mux);
}

void kx_node_handle(void *user, kx_httpd_req *req)
{
    kx_node *node = (kx_node *)user;
    if (strcmp(req->peer_cn, KX_NODE_ALLOWED_CLIENT_CN) != 0) {
        kx_httpd_respond_text(req, 403, "Forbidden: only the API server may use this endpoint");
        return;
    }
    if (node->shutting_down) {
        kx_httpd_respond_text(req, 503, "node is shutting down");
        return;
    }
    if (!node->no_mux && strcmp(req->path, "/mux") == 0) {
        serve_mux(node, req);
        return;
    }
    char parts[4][254];
    int n;
    // /exec/{ns}/{pod}/{ctr} and /exec/{ns}/{pod}/{uid}/{ctr} (uid ignored).
    if ((n = split_path(req->path, "/exec/", parts, 4)) == 3 || n == 4) {
        const char *ctr = n == 4 ? parts[3] : parts[2];
        kx_rcx_request rq = {};
        char **argv = nullptr;
        if (!method_ok(req) || parse_stream_query(req, &rq, &argv) < 0)
            return;
        if (check_container(node, req, parts[0], parts[1], ctr) < 0) {
            free_argv(argv);
            return;
        }
        kx_node_exec(node, req, parts[0], parts[1], ctr, argv, &rq);
        return;
    }
    if ((n = split_path(req->path, "/attach/", parts, 4)) == 3 || n == 4) {
        const char *ctr = n == 4 ? parts[3] : parts[2];
        kx_rcx_request rq = {};
        if (!method_ok(req) || parse_stream_query(req, &rq, nullptr) < 0)
            return;
        if (check_container(node, req, parts[0], parts[1], ctr) < 0)
            return;
        kx_node_attach(node, req, parts[0], parts[1], ctr, &rq);
        return;
    }
    if ((n = split_path(req->path, "/portForward/", parts, 3)) == 2 || n == 3) {
        if (!method_ok(req))
            return;
        kx_node_portforward(node, req, parts[0], parts[1]);
        return;
    }
    if ((n = split_path(req->path, "/containerLogs/", parts, 3)) == 3) {
        if (strcmp(req->head->method, "GET") != 0) {
            kx_httpd_respond_text(req, 405, "method not allowed");
            return;
        }
        kx_node_logs(node, req, parts[0], parts[1], parts[2]);
        return;
    }
    if (strcmp(req->path, "/healthz") == 0) {
        kx_httpd_respond_text(req, 200, "ok");
        return;
    }
    kx_httpd_respond_text(req, 404, "404 page not found");
}
