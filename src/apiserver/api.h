// api.h - kubexec-apiserver's request logic, sans-I/O: authentication,
// authorization, the REST handlers for discovery/nodes/pods/join, the
// streaming-subresource lookup and Status JSON.
//
// The libuv server (server.cc/proxy.cc) parses HTTP and TLS and calls in here
// with plain structs; nothing in this module touches a socket or a clock.
// Time is passed as now_ms (wall clock, milliseconds since the epoch).
// Single-threaded: one kx_api belongs to the loop thread.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "bootstrap.h"

// Largest request body kx_api_handle accepts (413 above it). The glue should
// stop reading at this size too.
enum { KX_API_MAX_BODY = 4 << 20 };

struct kx_api_config {
    int node_grace_seconds;          // <= 0 means the default, 40
    const char *advertise_address;   // "host:port" for /api serverAddressByClientCIDRs; may be null
};

// Owns the registry, the CA (to sign node CSRs) and the tokens.
struct kx_api;

// Reads the CA, the node token and the optional tokens.csv named in p (the
// strings are copied). Returns null with a reason in err on a missing/bad CA
// or token file, a malformed tokens.csv, or ENOMEM.
kx_api *kx_api_new(const kx_bootstrap_paths *p, const kx_api_config *cfg, char *err, size_t errlen);
void kx_api_free(kx_api *a);

struct kx_api_user {
    char name[256];
    char groups[512];    // comma-separated
    bool authenticated;  // a user (not the join token)
    bool join_token;     // the node join token: may only call POST /kubexec/v1/join
};

// cn/orgs: subject of the TLS peer certificate, passed ONLY when the TLS layer
// verified the chain against our CA (null when there is none); orgs is the
// comma-separated O values (may be null). authorization: the Authorization
// header or null. A verified certificate wins over a bearer token (as
// kube-apiserver's union authenticator tries x509 first). "Bearer <node token>"
// sets join_token; "Bearer <t>" listed in tokens.csv gives that user and
// groups; anything else leaves *out unauthenticated. Never fails.
void kx_api_authenticate(kx_api *a, const char *cn, const char *orgs, const char *authorization,
                         kx_api_user *out);

struct kx_api_request {
    const char *method;        // "GET", "PUT", ...
    const char *path;          // percent-decoded path, no query
    const char *query;         // raw query without '?', may be "" or null
    const char *accept;        // may be null
    const char *content_type;  // may be null
    const uint8_t *body;
    size_t body_len;
    const kx_api_user *user;   // null = unauthenticated
};

struct kx_api_response {
    int status;                // HTTP status code
    const char *content_type;  // static string
    char *body;                // malloc'd, NUL-terminated; the caller frees it
    size_t body_len;
};

// Every non-streaming request. Always fills resp (body JSON or text; errors
// are metav1.Status with Content-Type application/json). Returns 0, or -ENOMEM
// when even the response could not be built (resp then is a bodyless 500).
// Unauthenticated requests other than /version, /healthz, /readyz, /livez and
// /cacerts get 401 reason Unauthorized, message "Unauthorized".
int kx_api_handle(kx_api *a, const kx_api_request *req, uint64_t now_ms, kx_api_response *resp);

// Where a streaming subresource request goes. The function below has the
// same name, so C++ code must spell the type `struct kx_api_stream_target`.
struct kx_api_stream_target {
    char node_host[256];  // InternalIP if the node reported one, else Hostname
    int node_port;        // daemonEndpoints.kubeletEndpoint.Port, default 10250
    char ns[254];
    char pod[254];
    char container[254];  // empty for portforward
    char node_name[254];
};

// Authorizes and resolves a pod subresource: sub is "exec", "attach",
// "portforward" or "log"; verb "create" (POST/SPDY) or "get" (GET/WebSocket);
// query is the client's raw query (for container=). exec/attach/portforward
// need group system:masters; log needs only authentication.
// Returns 0 with *t filled, or a negative errno with resp holding the Status
// to send (the caller frees resp->body):
//   -EACCES  401 Unauthorized, or 403 `pods "web" is forbidden: User "bob"
//            cannot create resource "pods/exec" in API group "" in the namespace "default"`
//   -ENOENT  404 `pods "web" not found`
//   -EINVAL  400 `container c is not valid for pod web`, `a container name must
//            be specified for pod web`, `pod web does not have a host
//            assigned`; an unknown sub gets the 404 `the server could not find
//            the requested resource`
//   -EHOSTUNREACH  500 the node is unknown or has no address;
//                  503 the node is NotReady
//   -ENOMEM
// Container choice without container=: the kubectl.kubernetes.io/default-container
// annotation when it names a container, else the first container.
int kx_api_stream_target(kx_api *a, const kx_api_user *u, const char *verb, const char *ns,
                         const char *pod, const char *sub, const char *query, uint64_t now_ms,
                         struct kx_api_stream_target *t, kx_api_response *resp);

// Called every second: nodes whose last heartbeat is older than the grace
// period become NotReady (Ready condition Unknown, reason NodeStatusUnknown)
// and their pods' phase Unknown (condition Ready False). Returns how many
// nodes changed.
int kx_api_tick(kx_api *a, uint64_t now_ms);

// Fills resp with a Failure Status (protocol.md §7.3). details_name and
// details_kind may be null (no details). Frees nothing: resp->body must not
// hold an allocation yet. On ENOMEM resp is a bodyless response with `code`.
void kx_api_status(kx_api_response *resp, int code, const char *reason, const char *message,
                   const char *details_name, const char *details_kind);
