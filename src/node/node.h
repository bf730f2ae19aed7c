// kubexec-node internals shared by main.cc and stream.cc.
#pragma once

#include "kubexec/tls.h"
#include <uv.h>

#include "kubexec/httpd.h"
#include "podmgr.h"

// The only client identity allowed on the streaming endpoints: the API
// server's kubelet-client certificate (CN), signed by the cluster CA.
#define KX_NODE_ALLOWED_CLIENT_CN "kubexec-apiserver"

struct exec_session;

struct kx_node {
    uv_loop_t *loop;
    kx_podmgr *pm;
    kx_httpd *httpd;
    kx_tls_ctx *server_ctx;
    exec_session *sessions;       // live exec sessions (for shutdown)
    unsigned long sessions_total, sessions_active;
    bool shutting_down;
    bool no_mux;   // --no-mux: GET /mux is a 404, as on a node that predates it
};

// Request handler for the kubelet-style endpoints (stream.cc): checks the
// client identity, parses the route and query, then calls one of these.
void kx_node_handle(void *user, kx_httpd_req *req);

struct kx_rcx_request;
// exec.cc: argv (malloc'd, null-terminated, ownership passes) in the container.
void kx_node_exec(kx_node *n, kx_httpd_req *req, const char *ns, const char *pod, const char *ctr,
                  char **argv, const kx_rcx_request *rq);
// attach.cc: the container's main process stdio.
void kx_node_attach(kx_node *n, kx_httpd_req *req, const char *ns, const char *pod,
                    const char *ctr, const kx_rcx_request *rq);
// portforward.cc: /portForward/{ns}/{pod} (SPDY portforward.k8s.io, or SPDY
// tunnelled in WebSocket).
void kx_node_portforward(kx_node *n, kx_httpd_req *req, const char *ns, const char *pod);
// logs.cc: /containerLogs/{ns}/{pod}/{ctr} with the PodLogOptions query.
void kx_node_logs(kx_node *n, kx_httpd_req *req, const char *ns, const char *pod, const char *ctr);
// Ends every exec session (clients get EOF, processes are killed after the
// grace period); cb runs once all are gone.
void kx_node_stop_sessions(kx_node *n, void (*cb)(void *), void *data);
// stream.cc: closes the API server's mux connections (their streams are
// reset); for the shutdown, once the sessions are gone.
void kx_node_close_muxes(kx_node *n);
