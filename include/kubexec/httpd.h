// kubexec/httpd.h - an HTTPS/1.1 server on libuv: accepts TLS connections,
// parses requests (kubexec/http1.h) and hands each one to a handler.
//
// A handler answers with kx_httpd_respond (synchronously or later), streams a
// chunked answer (kx_httpd_chunked_*), or takes the connection over for an
// upgrade with kx_httpd_hijack. Until a request is answered the connection
// reads nothing more (no pipelining across an unanswered request).
//
// Idle connections: a connection that has no request being answered must
// bring a complete request within KX_HTTPD_IDLE_MS (counted from the accept
// or from the end of its previous answer; bytes that trickle in do not
// restart the clock), else it is closed. Answers being produced or streamed
// are never cut. kx_httpd_set_idle_ms changes the bound (tests).
//
// Ownership: kx_httpd_req lives inside the connection and is valid from the
// handler call until the response is complete, the connection is hijacked,
// or on_abort tells the handler the client went away.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kubexec/conn.h"
#include "kubexec/http1.h"
#include "kubexec/util.h"

#define KX_HTTPD_MAX_BODY (1024 * 1024)
#define KX_HTTPD_IDLE_MS 60000

struct kx_httpd;
struct kx_httpd_req;

struct kx_httpd_req {
    kx_httpd *srv;
    const kx_http_head *head;
    char path[2048];            // decoded path without the query
    const char *query;          // raw query after '?', "" if none
    const uint8_t *body;        // full body (non-upgrade requests)
    size_t body_len;
    const uint8_t *extra;       // upgrade requests: bytes read past the head
    size_t extra_len;
    char peer_cn[256];          // verified client certificate CN, "" if none
    char peer_orgs[512];        // its O values, comma-separated
    char peer_addr[64];
    // Set by the handler for asynchronous answers: called if the client
    // disconnects before the response completed (the req is dead afterwards).
    void (*on_abort)(kx_httpd_req *req, void *data);
    void *abort_data;
};

typedef void (*kx_httpd_handler)(void *user, kx_httpd_req *req);

// Listens on host:port (port 0 picks one; the chosen port via kx_httpd_port).
// Returns null and fills err on failure.
kx_httpd *kx_httpd_new(uv_loop_t *loop, const char *host, int port, kx_tls_ctx *ctx,
                       kx_httpd_handler handler, void *user, char *err, size_t errlen);
int kx_httpd_port(const kx_httpd *s);
// The idle bound (see the top of this file), in ms; 0 turns it off.
void kx_httpd_set_idle_ms(kx_httpd *s, uint64_t ms);
// The loop the server (and so every request of it) runs on.
uv_loop_t *kx_httpd_loop(const kx_httpd *s);
// Stops listening and closes every connection that is not hijacked; cb runs
// when all handles are closed.
void kx_httpd_close(kx_httpd *s, void (*cb)(void *data), void *data);

// A complete answer. headers may be null. Closes the connection afterwards
// when the request asked for it (or close_after is true).
int kx_httpd_respond(kx_httpd_req *req, int status, const char *content_type,
                     const void *body, size_t len);
// A plain-text answer ("text/plain; charset=utf-8"), as the kubelet gives
// its errors before an upgrade.
int kx_httpd_respond_text(kx_httpd_req *req, int status, const char *msg);
int kx_httpd_respond_hdrs(kx_httpd_req *req, int status, const kx_http_header *hdrs,
                          size_t nhdrs, const void *body, size_t len, bool close_after);
// Chunked streaming answer: start, any number of chunks, end.
int kx_httpd_chunked_start(kx_httpd_req *req, int status, const char *content_type);
int kx_httpd_chunked_write(kx_httpd_req *req, const void *p, size_t n);
int kx_httpd_chunked_end(kx_httpd_req *req);
size_t kx_httpd_queued(const kx_httpd_req *req);

// Serves c (a ready connection made elsewhere: a stream of a kubexec-mux
// connection, kubexec/mux.h) like an accepted one: its requests go to the
// handler, the idle bound and kx_httpd_close apply. The httpd owns c from
// here; it is aborted when the server is closing (-ESHUTDOWN) or out of
// memory (-ENOMEM).
int kx_httpd_adopt(kx_httpd *s, kx_conn *c);
// Takes the connection for an upgraded protocol: the httpd forgets it, the
// caller installs its own callbacks with kx_conn_set_user and owns closing
// it. req->extra must be consumed before returning to the loop.
kx_conn *kx_httpd_hijack(kx_httpd_req *req);
