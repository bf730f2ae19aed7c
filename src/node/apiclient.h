// One-shot HTTPS requests from the node agent to the API server (join,
// registration, heartbeats, pod status). Each request uses its own
// connection ("Connection: close"): they are rare (seconds apart), and a
// fresh connection never leaves a half-read response behind.
#pragma once

#include "kubexec/tls.h"
#include <stddef.h>
#include <uv.h>

// status: the HTTP status, or a negative errno for transport failures
// (-ETIMEDOUT after 15 s). body is NUL-terminated, valid during the call.
typedef void (*kx_apiclient_cb)(void *user, int status, const char *body, size_t len);

// Starts a request. bearer (may be null) becomes "Authorization: Bearer ...".
// Returns 0 (the callback will run exactly once) or a negative errno.
int kx_apiclient_request(uv_loop_t *loop, kx_tls_ctx *ctx, const char *host, int port,
                         const char *verify_host, const char *method, const char *path,
                         const char *bearer, const char *content_type, const char *body,
                         size_t body_len, kx_apiclient_cb cb, void *user);

// Parses "https://host:port" (port defaults to 443; "[v6]" accepted).
int kx_parse_https_url(const char *url, char *host, size_t hostcap, int *port);
