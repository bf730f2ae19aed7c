// kubexec-node internals shared by main.cc and stream.cc.
#pragma once

#include <openssl/ssl.h>
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
    SSL_CTX *server_ctx;
    exec_session *sessions;       // live exec sessions (for shutdown)
    unsigned long sessions_total, sessions_active;
    bool shutting_down;
};

// Request handler for the kubelet-style endpoints.
void kx_node_handle(void *user, kx_httpd_req *req);
// Ends every exec session (clients get EOF, processes are killed after the
// grace period); cb runs once all are gone.
void kx_node_stop_sessions(kx_node *n, void (*cb)(void *), void *data);
