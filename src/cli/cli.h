// src/cli/cli.h - the kubexec CLI's shared pieces: the client context (the
// resolved kubeconfig, the TLS context, the loop), synchronous HTTPS
// requests, the upgrade to WebSocket or SPDY, kubectl-style errors, and the
// command entry points.
//
// The CLI is one process, one libuv loop, one API server. The synchronous
// helpers here run the loop until their own answer is in: a command reads as
// straight-line code (GET the pod, upgrade, stream) while the bytes still move
// through the same non-blocking kx_conn the daemons use.
//
// Exit codes follow kubectl: 0 success, 1 any error (a message on stderr,
// "error: ..." or "Error from server (Reason): ..."), the remote command's
// exit code for exec, 2 never (kubectl uses 1 for usage errors too).
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kubeconfig.h"
#include "kubexec/conn.h"
#include "kubexec/http1.h"
#include "kubexec/util.h"

#define KX_CLI_VERSION "0.1.0"
// Bodies of ordinary API answers (a pod, a list) kept in memory.
#define KX_CLI_MAX_BODY (64u * 1024 * 1024)

// Global flags, in kubectl's spelling (see main.cc for the parser).
struct kx_cli_globals {
    kx_kcfg_flags kcfg;
    const char *request_timeout;   // --request-timeout (kept for kubectl's syntax; 0 = none)
    int v;                         // -v / --v
};

struct kx_cli {
    uv_loop_t *loop;
    kx_cli_globals g;
    kx_kcfg cfg;
    bool cfg_loaded;
    kx_tls_ctx *ssl;
    bool https;
    char host[256];
    int port;
    char prefix[256];      // path prefix of the server URL ("" or "/k8s")
    char hostport[300];    // as kubectl prints it in connection errors
    char auth[8192];       // "Authorization: Bearer ...\r\n" or ""
    const char *verify_host;
    bool logs_errors;      // kubectl logs words a missing pod its own way
};

// Loads the kubeconfig (once) and builds the TLS context. 0, or 1 after
// printing kubectl's message on stderr.
int kx_cli_setup(kx_cli *c);

// ---- TLS session cache (tlscache.cc) ---------------------------------------------
// Resumes the TLS session of an earlier run against the same server and
// identity: $XDG_CACHE_HOME/kubexec/tls/ (else ~/.cache/kubexec/tls/), one
// 0600 file per server + CA + client certificate, rewritten after each full
// handshake. Off with KUBEXEC_TLS_SESSION_CACHE=0, without a home directory,
// and with insecure-skip-tls-verify. Every failure just means a full
// handshake.
void kx_cli_tlscache_init(kx_cli *c);      // after c->ssl exists
// Before the handshake: offer the cached session on conn, if any.
void kx_cli_tlscache_offer(kx_conn *conn);
// After the handshake and before closing: keep conn's session (once per
// run) unless it was a resumption or there is none yet.
void kx_cli_tlscache_store(kx_conn *conn);

// ---- HTTP over one connection --------------------------------------------------

struct kx_cli_http;

// Connects and completes the TLS handshake. 0, or 1 after printing the
// error as kubectl does ("The connection to the server H:P was refused - did
// you specify the right host or port?", "Unable to connect to the server:
// ..."). *out is owned by the caller: kx_cli_http_close it.
int kx_cli_http_open(kx_cli *c, kx_cli_http **out);
void kx_cli_http_close(kx_cli_http *h);

// Response of one exchange. body is owned by the kx_cli_http (valid until the
// next exchange or close). head is the response head (101 included).
struct kx_cli_resp {
    int status;
    const kx_http_head *head;
    const uint8_t *body;
    size_t body_len;
};

// Body sink for streamed answers (logs -f): called per de-chunked piece when
// the status is 2xx; bodies of other statuses are still collected for the
// error message. Return 0 or <0 to stop (the exchange then fails with it).
typedef int (*kx_cli_body_cb)(void *user, const uint8_t *p, size_t n);

// Sends one request (method, path relative to the server prefix, extra header
// lines "Name: value\r\n..." or null) and waits for the whole answer, or for
// the head of a 101. 0, or 1 after printing a transport error. A 101 leaves
// the connection upgraded: take it with kx_cli_http_take.
int kx_cli_http_do(kx_cli_http *h, const char *method, const char *path, const char *extra,
                   kx_cli_body_cb sink, void *sink_user, kx_cli_resp *resp);

// Asks for a WebSocket upgrade of GET path offering one subprotocol (kubectl
// offers exactly one). Returns 1 when the server answered a valid 101 that
// chose it (take the connection with kx_cli_http_take), 0 when it refused in
// any way — *h is then ready for the SPDY attempt (the same connection after
// a keep-alive refusal, else a new one) — or -1 after printing an error, with
// *h closed and null. This is kubectl's fallback rule (protocol.md §4.5).
int kx_cli_ws_upgrade(kx_cli *c, kx_cli_http **h, const char *path, const char *protocol);
// Whether the env variable (KUBECTL_REMOTE_COMMAND_WEBSOCKETS,
// KUBECTL_PORT_FORWARD_WEBSOCKETS) leaves WebSocket on ("false"/"0": off).
bool kx_cli_ws_enabled(const char *env);

// After a 101: the connection (now the caller's, with no callbacks until
// kx_conn_set_user) and the bytes that arrived after the head (copied into
// *early, the caller frees it). The kx_cli_http is freed.
kx_conn *kx_cli_http_take(kx_cli_http *h, kx_buf *early);

// One GET on a new connection; body as above. Convenience for get/version.
int kx_cli_get(kx_cli *c, const char *path, kx_cli_resp *resp, kx_cli_http **hold);

// ---- Errors ------------------------------------------------------------------

// Prints what kubectl prints for a non-2xx API answer: "Error from server
// (Reason): message" from a Status body, or the generic text when the body
// is not a Status. Returns 1 (the exit code).
int kx_cli_api_error(const kx_cli_resp *r);
// Prints "error: " fmt to stderr; returns 1.
int kx_cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// Percent-encodes for a query value into out; -EMSGSIZE if it does not fit.
int kx_cli_qesc(char *out, size_t cap, const char *s);
// "/api/v1/namespaces/NS/pods/POD" and "/SUB" when sub is not null, both
// names escaped. The length, or -EMSGSIZE.
int kx_cli_pod_path(char *out, size_t cap, const char *ns, const char *pod, const char *sub);
// A whole JSON document of n bytes (trailing bytes are an error), or null.
// The caller json_object_put()s it.
struct json_object;
json_object *kx_cli_json(const uint8_t *p, size_t n);
// write(2) until done; waits with poll on EAGAIN (a non-blocking fd shared
// with others). 0 or -errno (-EPIPE: the reader went away).
int kx_cli_write_all(int fd, const uint8_t *p, size_t n);

// ---- Flags ---------------------------------------------------------------------

// A command's flag table (kubectl/pflag conventions: "--name=v", "--name v",
// "-x v", "-xv", "-abc" for booleans, flags anywhere before "--").
enum kx_flag_kind { KXF_BOOL, KXF_STRING, KXF_INT };
struct kx_flag {
    const char *name;      // long name without "--"
    char shorthand;        // 0 if none
    kx_flag_kind kind;
    void *dst;             // bool*, const char**, long*
};

// Parses argv (after the command word) against the command's flags plus the
// global ones. Positional arguments before "--" go to pos (up to maxpos), the
// words after "--" to *rest/*nrest. 0, or 1 after printing kubectl's message
// ("error: unknown flag: --x", "error: flag needs an argument: 'c' in -c").
int kx_cli_parse(kx_cli *c, int argc, char **argv, const kx_flag *flags, size_t nflags,
                 const char **pos, size_t maxpos, size_t *npos, char ***rest, int *nrest);

// ---- Pods ----------------------------------------------------------------------

// What exec/attach/logs/port-forward need from the pod object.
struct kx_cli_pod {
    char name[256];
    char ns[256];
    char phase[32];
    char containers[16][64];   // spec.containers[].name (first 16)
    size_t ncontainers;
    char default_container[64];// kubectl.kubernetes.io/default-container, if set
    bool tty[16], stdin_[16];
};

// "pod/NAME", "pods/NAME", "po/NAME" or "NAME" -> NAME; other types are an
// error (kubectl's message). 0 or 1.
int kx_cli_pod_name(const char *arg, char *out, size_t cap);
// GETs the pod over h (keep-alive: the caller reuses h for the upgrade).
// 0, or 1 after printing the error.
int kx_cli_pod_get(kx_cli_http *h, const char *ns, const char *name, kx_cli_pod *pod);
// Resolves the container: the given one, or the default (annotation, else
// the first; prints kubectl's "Defaulted container" note when there are
// several and quiet is false). 0 or 1.
int kx_cli_pod_container(const kx_cli_pod *pod, const char *given, bool quiet, char *out,
                         size_t cap);

// The start every pod command shares: NAME from a "pod/NAME"-style arg, a
// connection, the pod (GET on it, kept alive for the upgrade that follows)
// and, when ctr is not null, the container (given, else defaulted as
// kx_cli_pod_container does). ns null = the configured namespace. 0 with *h
// open (the caller closes it or hands it to a session), or 1 after printing
// the error with nothing left open.
int kx_cli_pod_open(kx_cli *c, const char *arg, const char *ns, const char *container,
                    bool quiet, kx_cli_http **h, kx_cli_pod *pod, char *ctr, size_t ctrcap);

// ---- Commands (argv after the command word) ---------------------------------

int kx_cmd_exec(kx_cli *c, int argc, char **argv);
int kx_cmd_attach(kx_cli *c, int argc, char **argv);
int kx_cmd_logs(kx_cli *c, int argc, char **argv);
int kx_cmd_port_forward(kx_cli *c, int argc, char **argv);
int kx_cmd_cp(kx_cli *c, int argc, char **argv);
int kx_cmd_get(kx_cli *c, int argc, char **argv);
int kx_cmd_version(kx_cli *c, int argc, char **argv);
int kx_cmd_completion(kx_cli *c, int argc, char **argv);
