// kubexec-apiserver internals shared by main.cc, server.cc and proxy.cc.
#pragma once

#include "kubexec/tls.h"
#include <uv.h>

#include "api.h"
#include "kubexec/httpd.h"

struct kx_apiserver {
    uv_loop_t *loop;
    kx_api *api;
    kx_tls_ctx *server_ctx;     // our serving certificate, client certs optional
    kx_tls_ctx *node_ctx;       // client context toward nodes (kubelet-client cert)
    kx_httpd *httpd;
    // Counters for /metrics.
    unsigned long upgrades_spdy, upgrades_websocket, upgrades_refused;
    unsigned long proxied_sessions, active_sessions;
    // Sessions started toward a node: as a stream of its mux connection, or
    // on a connection of their own (none yet, or the node refused the mux).
    unsigned long node_streams_mux, node_streams_conn;
};

// The request handler installed on the httpd.
void kx_apiserver_handle(void *user, kx_httpd_req *req);

// Milliseconds since the epoch (wall clock), as kx_api expects.
uint64_t kx_now_ms(void);

// Starts proxying an upgraded request to the node agent: hijacks the client
// connection, dials node_path on the node and splices the two connections
// only after the node answered 101 (CVE-2018-1002105).
void kx_proxy_start(kx_apiserver *s, kx_httpd_req *req, const struct kx_api_stream_target *t,
                    const char *node_path_and_query);
// pods/log (logproxy.cc): validates, resolves the node, streams its answer.
void kx_logproxy_start(kx_apiserver *s, kx_httpd_req *req, const kx_api_user *user, const char *ns, const char *pod);
// Closes every proxied session (shutdown).
void kx_proxy_close_all(void);

// ---- Warm node connections (nodepool.cc) ----------------------------------------
// A connection to a node whose TLS handshake is done and that carried nothing
// yet, ready for the next proxied request (null if none). The caller owns it
// and must kx_conn_set_user it before returning to the loop.
kx_conn *kx_nodepool_take(kx_apiserver *srv, const char *host, int port);
// Dials a spare connection to host:port unless one exists (one per node; it
// is closed after 10 s unused, or when the node closes or writes on it).
// Called when a proxied session ends; does nothing after close_all.
void kx_nodepool_warm(kx_apiserver *srv, const char *host, int port);
// Shutdown: closes every spare and mux connection, and no more are dialed.
void kx_nodepool_close_all(void);
// A new stream on the node's multiplexed connection (kubexec/mux.h): a
// ready kx_conn with cb/user installed, to be used like a connection that
// has just been dialed. Null when there is none yet (one is then dialed and
// upgraded in the background, for the next session), while it is being set
// up, or when the node refused the upgrade (an older node: asked again after
// a minute); the caller dials as before. Counts the session in
// node_streams_mux or node_streams_conn. A mux connection with no stream for
// kMuxIdleMs is closed.
kx_conn *kx_nodepool_stream(kx_apiserver *srv, const char *host, int port,
                            const kx_conn_callbacks *cb, void *user);
