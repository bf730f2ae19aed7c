// kubexec-node: the kubelet's role on a small node. Joins the cluster with a
// token, registers its Node, runs static pods, serves the streaming endpoints
// to the API server, and reports status. One libuv loop. See
// man/kubexec-node.8.
//
// Join (k3s style): the token is K10<sha256 of the CA certificate>::node:<secret>.
// The node fetches /cacerts without verification, accepts it only if its hash
// matches the token, then sends a CSR for its own key (generated here, never
// leaving the node) with the token as bearer and gets a certificate signed by
// the cluster CA. That certificate is both its client identity toward the API
// server and its serving certificate.
#include <arpa/inet.h>
#include <getopt.h>
#include <stdarg.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <openssl/evp.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "apiclient.h"
#include "crilog.h"
#include "kubexec/pki.h"
#include "kubexec/crypto.h"
#include "kubexec/http1.h"
#include "kubexec/sdnotify.h"
#include "kubexec/tls.h"
#include "node.h"
#include "reaper.h"

#ifndef KUBEXEC_VERSION
#define KUBEXEC_VERSION "0.1.0"
#endif

static const char usage_text[] =
    "Usage: kubexec-node --server URL --token-file FILE --data-dir DIR --manifest-dir DIR\n"
    "                    --image-dir DIR [--node-name NAME] [--listen ADDR:PORT]\n"
    "\n"
    "Runs static pods and serves kubectl exec for them, as the kubelet of a\n"
    "kubexec cluster.\n"
    "\n"
    "Options:\n"
    "  --server URL          the API server, https://HOST:PORT (required)\n"
    "  --token-file FILE     file holding the cluster's node-token (required)\n"
    "  --data-dir DIR        node state: pki/, pod logs unless --pod-log-dir (required)\n"
    "  --manifest-dir DIR    static pod manifests, YAML or JSON v1 Pod (required)\n"
    "  --image-dir DIR       images: IMAGE_DIR/<image>/ is a root filesystem (required)\n"
    "  --node-name NAME      node name (default: the host name)\n"
    "  --listen ADDR:PORT    streaming endpoint address (default 0.0.0.0:10250; port 0 picks one)\n"
    "  --pod-log-dir DIR     container logs as DIR/<ns>_<pod>/<container>/<n>.log\n"
    "                        (default DATA_DIR/pods; the kubelet's is /var/log/pods)\n"
    "  --heartbeat SECONDS   status report interval (default 10)\n"
    "  --container-log-max-size SIZE  rotate a container log beyond SIZE (default 10Mi; 0: never)\n"
    "  --container-log-max-files N    log files kept per container run, 2..100 (default 5)\n"
    "  --no-mux              refuse the API server's kubexec-mux/1 upgrade (each\n"
    "                        session then comes on a TLS connection of its own)\n"
    "  -h, --help            show this help\n"
    "  --version             show the version\n";

struct node_cfg {
    const char *server, *token_file, *data_dir, *manifest_dir, *image_dir, *listen;
    const char *log_dir;   // --pod-log-dir, or null
    char node_name[64];
    int heartbeat_s;
};

static node_cfg g_cfg;
static kx_node g_node;
static char g_token[512];
static char g_server_host[256];
static int g_server_port;
static char g_listen_host[256];
static int g_listen_port;
static char g_addr[64];       // address reported to the API server
static char g_pki[3][700];    // ca.crt, node.key, node.crt
static kx_tls_ctx *g_client_ctx; // verified, with our client certificate
static kx_tls_ctx *g_insecure_ctx;
static uv_signal_t g_sigint, g_sigterm;
static uv_timer_t g_heartbeat, g_report;
static uv_timer_t g_retry;    // first join: retry while the API server is unreachable
static int g_retry_s = 1;
static void retry_join(int status);
static char *g_last_pods;     // last pod JSON sent
static bool g_report_busy, g_hb_busy, g_registered, g_stopping;
static int g_exit_code;


static void nlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void nlog(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kubexec-node: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}


static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), nullptr);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

// The address the API server should dial: the listen address, or for a
// wildcard listen the first non-loopback IPv4 address, else 127.0.0.1.
static void pick_address(void)
{
    if (strcmp(g_listen_host, "0.0.0.0") != 0 && strcmp(g_listen_host, "::") != 0) {
        kx_strlcpy(g_addr, g_listen_host, sizeof g_addr);
        return;
    }
    kx_strlcpy(g_addr, "127.0.0.1", sizeof g_addr);
    struct ifaddrs *ifa = nullptr;
    if (getifaddrs(&ifa) != 0)
        return;
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) ||
            !(i->ifa_flags & IFF_UP))
            continue;
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, g_addr, sizeof g_addr);
        break;
    }
    freeifaddrs(ifa);
}

// --- status reports --------------------------------------------------------

static void start_server(void);

static json_object *node_object(void)
{
    char now[40];
    time_t t = time(nullptr);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
    struct utsname un;
    uname(&un);

    json_object *n = json_object_new_object();
    json_object_object_add(n, "kind", json_object_new_string("Node"));
    json_object_object_add(n, "apiVersion", json_object_new_string("v1"));
    json_object *md = json_object_new_object();
    json_object_object_add(md, "name", json_object_new_string(g_cfg.node_name));
    json_object *labels = json_object_new_object();
    json_object_object_add(labels, "kubernetes.io/hostname", json_object_new_string(g_cfg.node_name));
    json_object_object_add(labels, "kubernetes.io/os", json_object_new_string("linux"));
    json_object_object_add(md, "labels", labels);
    json_object_object_add(n, "metadata", md);
    json_object_object_add(n, "spec", json_object_new_object());

    json_object *st = json_object_new_object();
    json_object *addrs = json_object_new_array();
    json_object *a = json_object_new_object();
    json_object_object_add(a, "type", json_object_new_string("InternalIP"));
    json_object_object_add(a, "address", json_object_new_string(g_addr));
    json_object_array_add(addrs, a);
    a = json_object_new_object();
    json_object_object_add(a, "type", json_object_new_string("Hostname"));
    json_object_object_add(a, "address", json_object_new_string(g_cfg.node_name));
    json_object_array_add(addrs, a);
    json_object_object_add(st, "addresses", addrs);
    json_object *de = json_object_new_object();
    json_object *ke = json_object_new_object();
    json_object_object_add(ke, "Port", json_object_new_int(g_listen_port));
    json_object_object_add(de, "kubeletEndpoint", ke);
    json_object_object_add(st, "daemonEndpoints", de);
    json_object *conds = json_object_new_array();
    json_object *c = json_object_new_object();
    json_object_object_add(c, "type", json_object_new_string("Ready"));
    json_object_object_add(c, "status", json_object_new_string("True"));
    json_object_object_add(c, "reason", json_object_new_string("KubeletReady"));
    json_object_object_add(c, "message", json_object_new_string("kubexec-node is posting ready status"));
    json_object_object_add(c, "lastHeartbeatTime", json_object_new_string(now));
    json_object_array_add(conds, c);
    json_object_object_add(st, "conditions", conds);
    json_object *info = json_object_new_object();
    json_object_object_add(info, "kubeletVersion", json_object_new_string("v1.33.0-kubexec"));
    json_object_object_add(info, "kernelVersion", json_object_new_string(un.release));
    json_object_object_add(info, "operatingSystem", json_object_new_string("linux"));
    json_object_object_add(info, "architecture", json_object_new_string("amd64"));
    json_object_object_add(info, "containerRuntimeVersion", json_object_new_string("kubexec://" KUBEXEC_VERSION));
    json_object_object_add(info, "osImage", json_object_new_string(un.sysname));
    json_object_object_add(st, "nodeInfo", info);
    json_object_object_add(n, "status", st);
    return n;
}

static void on_heartbeat_done(void *, int status, const char *body, size_t)
{
    g_hb_busy = false;
    if (status == 200 || status == 201) {
        if (!g_registered)
            nlog("registered node %s (%s:%d)", g_cfg.node_name, g_addr, g_listen_port);
        g_registered = true;
        return;
    }
    nlog("heartbeat failed: %s%s", status < 0 ? strerror(-status) : "HTTP error ",
         status < 0 ? "" : body);
}

static void send_heartbeat(uv_timer_t *)
{
    if (g_hb_busy || g_stopping)
        return;
    json_object *n = node_object();
    const char *s = json_object_to_json_string_ext(n, JSON_C_TO_STRING_PLAIN);
    char path[300];
    snprintf(path, sizeof path, "/api/v1/nodes/%s/status", g_cfg.node_name);
    if (kx_apiclient_request(g_node.loop, g_client_ctx, g_server_host, g_server_port,
                             g_server_host, "PUT", path, nullptr, "application/json", s,
                             strlen(s), on_heartbeat_done, nullptr) == 0)
        g_hb_busy = true;
    json_object_put(n);
}

static void on_report_done(void *data, int status, const char *body, size_t)
{
    char *sent = (char *)data;
    g_report_busy = false;
    if (status == 200 || status == 201) {
        free(g_last_pods);
        g_last_pods = sent;
        return;
    }
    free(sent);
    nlog("pod status report failed: %s%s", status < 0 ? strerror(-status) : "HTTP error ",
         status < 0 ? "" : body);
}

// Pod status goes out when it changed (checked every second) and with every
// heartbeat, so the API server's view is never more than a second behind.
static void send_report(bool force)
{
    if (g_report_busy || g_stopping || !g_node.pm)
        return;
    json_object *pods = kx_podmgr_pods_json(g_node.pm);
    if (!pods)
        return;
    const char *s = json_object_to_json_string_ext(pods, JSON_C_TO_STRING_PLAIN);
    if (!force && g_last_pods && strcmp(s, g_last_pods) == 0) {
        json_object_put(pods);
        return;
    }
    char *copy = strdup(s);
    json_object_put(pods);
    if (!copy)
        return;
    char path[300];
    snprintf(path, sizeof path, "/kubexec/v1/nodes/%s/pods", g_cfg.node_name);
    if (kx_apiclient_request(g_node.loop, g_client_ctx, g_server_host, g_server_port,
                             g_server_host, "PUT", path, nullptr, "application/json", copy,
                             strlen(copy), on_report_done, copy) == 0)
        g_report_busy = true;
    else
        free(copy);
}

static void on_report_tick(uv_timer_t *)
{
    send_report(false);
}

static void on_heartbeat_tick(uv_timer_t *t)
{
    send_heartbeat(t);
    send_report(true);
}

// --- join ------------------------------------------------------------------

static void on_join_done(void *, int status, const char *body, size_t)
{
    if (status < 0 && !g_stopping) {
        retry_join(status);
        return;
    }
    if (status != 200) {
        nlog("join refused by %s: %s%s", g_cfg.server,
             status < 0 ? strerror(-status) : "HTTP ", status < 0 ? "" : body);
        g_exit_code = 1;
        uv_stop(g_node.loop);
        return;
    }
    json_object *o = json_tokener_parse(body);
    json_object *cert = nullptr;
    if (!o || !json_object_object_get_ex(o, "certificate", &cert) ||
        !json_object_is_type(cert, json_type_string)) {
        nlog("join: malformed answer from the API server");
        json_object_put(o);
        g_exit_code = 1;
        uv_stop(g_node.loop);
        return;
    }
    if (kx_pki_write_file(g_pki[2], json_object_get_string(cert), 0644) < 0) {
        nlog("cannot write %s: %s", g_pki[2], strerror(errno));
        json_object_put(o);
        g_exit_code = 1;
        uv_stop(g_node.loop);
        return;
    }
    json_object_put(o);
    nlog("joined the cluster as system:node:%s", g_cfg.node_name);
    start_server();
}

static void send_join(void)
{
    char err[256];
    char *key = nullptr;
    if (kx_pki_read_file(g_pki[1], &key) < 0) {
        if (kx_pki_new_key(&key, err, sizeof err) < 0 ||
            kx_pki_write_file(g_pki[1], key, 0600) < 0) {
            nlog("cannot create the node key: %s", err);
            free(key);
            g_exit_code = 1;
            uv_stop(g_node.loop);
            return;
        }
    }
    char cn[128];
    snprintf(cn, sizeof cn, "system:node:%s", g_cfg.node_name);
    char *csr = nullptr;
    if (kx_pki_new_csr(key, cn, "system:nodes", &csr, err, sizeof err) < 0) {
        nlog("cannot create a CSR: %s", err);
        free(key);
        g_exit_code = 1;
        uv_stop(g_node.loop);
        return;
    }
    free(key);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "nodeName", json_object_new_string(g_cfg.node_name));
    json_object_object_add(o, "csr", json_object_new_string(csr));
    json_object *sans = json_object_new_array();
    json_object_array_add(sans, json_object_new_string(g_addr));
    if (strcmp(g_addr, "127.0.0.1") != 0)
        json_object_array_add(sans, json_object_new_string("127.0.0.1"));
    json_object_array_add(sans, json_object_new_string("localhost"));
    json_object_array_add(sans, json_object_new_string(g_cfg.node_name));
    json_object_object_add(o, "sans", sans);
    free(csr);
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    int r = kx_apiclient_request(g_node.loop, g_client_ctx, g_server_host, g_server_port,
                                 g_server_host, "POST", "/kubexec/v1/join", g_token,
                                 "application/json", s, strlen(s), on_join_done, nullptr);
    json_object_put(o);
    if (r < 0) {
        nlog("join: %s", strerror(-r));
        g_exit_code = 1;
        uv_stop(g_node.loop);
    }
}

static void fetch_cacerts(uv_timer_t *);

// The API server may come up after us (boot order on a small box): keep
// trying with a backoff while it can't be reached; a refusal is final.
static void retry_join(int status)
{
    nlog("API server %s unreachable (%s); retrying in %d s", g_cfg.server, strerror(-status),
         g_retry_s);
    kx_sd_notifyf("STATUS=joining: API server %s unreachable, retrying", g_cfg.server);
    uv_timer_start(&g_retry, fetch_cacerts, (uint64_t)g_retry_s * 1000, 0);
    g_retry_s = g_retry_s * 2 > 30 ? 30 : g_retry_s * 2;
}

static void on_cacerts(void *, int status, const char *body, size_t len)
{
    if (status < 0 && !g_stopping) {
        retry_join(status);
        return;
    }
    if (status != 200) {
        nlog("cannot fetch the cluster CA from %s: %s", g_cfg.server,
             status < 0 ? strerror(-status) : body);
        g_exit_code = 1;
        uv_stop(g_node.loop);
        return;
    }
    char hex[65];
    sha256_hex(body, len, hex);
    if (strncmp(g_token + 3, hex, 64) != 0) {
        nlog("the API server's CA does not match the token (wrong server or token?)");
        g_exit_code = 1;
        uv_stop(g_node.loop);
        return;
    }
    if (kx_pki_write_file(g_pki[0], body, 0644) < 0) {
        nlog("cannot write %s: %s", g_pki[0], strerror(errno));
        g_exit_code = 1;
        uv_stop(g_node.loop);
        return;
    }
    char err[256];
    g_client_ctx = kx_tls_client_ctx(g_pki[0], nullptr, nullptr, err, sizeof err);
    if (!g_client_ctx) {
        nlog("TLS: %s", err);
        g_exit_code = 1;
        uv_stop(g_node.loop);
        return;
    }
    send_join();
}

static void fetch_cacerts(uv_timer_t *)
{
    if (g_stopping)
        return;
    if (kx_apiclient_request(g_node.loop, g_insecure_ctx, g_server_host, g_server_port, nullptr,
                             "GET", "/cacerts", nullptr, nullptr, nullptr, 0, on_cacerts,
                             nullptr) < 0)
        retry_join(-ENOMEM);
}

// The stored CA still matches the token and a certificate is there: no join.
static bool have_identity(void)
{
    char *ca = nullptr, *crt = nullptr;
    bool ok = false;
    if (kx_pki_read_file(g_pki[0], &ca) == 0 && kx_pki_read_file(g_pki[2], &crt) == 0 &&
        access(g_pki[1], R_OK) == 0) {
        char hex[65];
        sha256_hex(ca, strlen(ca), hex);
        ok = strncmp(g_token + 3, hex, 64) == 0;
    }
    free(ca);
    free(crt);
    return ok;
}

// --- serving ---------------------------------------------------------------

static void start_server(void)
{
    char err[512];
    kx_tls_ctx_free(g_client_ctx);
    g_client_ctx = kx_tls_client_ctx(g_pki[0], g_pki[2], g_pki[1], err, sizeof err);
    g_node.server_ctx = kx_tls_server_ctx(g_pki[2], g_pki[1], g_pki[0],
                                          KX_TLS_REQUIRE_CLIENT_CERT, err, sizeof err);
    if (!g_client_ctx || !g_node.server_ctx) {
        nlog("TLS: %s", err);
        g_exit_code = 1;
        uv_stop(g_node.loop);
        return;
    }
    g_node.httpd = kx_httpd_new(g_node.loop, g_listen_host, g_listen_port, g_node.server_ctx,
                                kx_node_handle, &g_node, err, sizeof err);
    if (!g_node.httpd) {
        nlog("%s", err);
        g_exit_code = 1;
        uv_stop(g_node.loop);
        return;
    }
    g_listen_port = kx_httpd_port(g_node.httpd);

    char logs[600], cg[160];
    snprintf(logs, sizeof logs, "%s", g_cfg.data_dir);
    // cgroup v2: unified at /sys/fs/cgroup, or under unified/ on hybrid
    // hosts; without it the pods simply run without their own cgroup.
    const char *v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0 ? "/sys/fs/cgroup"
                     : access("/sys/fs/cgroup/unified/cgroup.controllers", F_OK) == 0
                         ? "/sys/fs/cgroup/unified"
                         : nullptr;
    cg[0] = 0;
    if (v2) {
        // One directory per agent: two agents on one host (two clusters, or
        // tests side by side) may both run default/demo. The node name says
        // whose it is; a hash of the data directory (unique per agent, stable
        // across restarts) tells apart agents that share a name.
        char real[PATH_MAX];
        const char *dd = realpath(g_cfg.data_dir, real) ? real : g_cfg.data_dir;
        uint8_t h[32];
        kx_sha256(dd, strlen(dd), nullptr, 0, h);
        bool plain = g_cfg.node_name[0] && g_cfg.node_name[0] != '.';
        for (const char *q = g_cfg.node_name; *q && plain; q++)
            plain = (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '-' || *q == '.';
        snprintf(cg, sizeof cg, "%s/kubexec/%s-%02x%02x%02x%02x", v2, plain ? g_cfg.node_name : "node",
                 h[0], h[1], h[2], h[3]);
    }
    kx_podmgr_config pc = {};
    pc.manifest_dir = g_cfg.manifest_dir;
    pc.image_dir = g_cfg.image_dir;
    pc.data_dir = logs;
    pc.log_dir = g_cfg.log_dir;
    pc.node_name = g_cfg.node_name;
    pc.cgroup_root = cg[0] ? cg : nullptr;
    g_node.pm = kx_podmgr_new(g_node.loop, &pc);
    if (!g_node.pm || kx_podmgr_start(g_node.pm) < 0) {
        nlog("cannot start the pod manager");
        g_exit_code = 1;
        uv_stop(g_node.loop);
        return;
    }
    nlog("serving the kubelet API on %s:%d", g_listen_host, g_listen_port);
    // Ready for systemd (Type=notify): joined, serving, pods starting.
    kx_sd_notifyf("READY=1\nSTATUS=serving the kubelet API on %s:%d", g_listen_host, g_listen_port);
    uv_timer_start(&g_heartbeat, on_heartbeat_tick, 0, (uint64_t)g_cfg.heartbeat_s * 1000);
    uv_timer_start(&g_report, on_report_tick, 1000, 1000);
}

// --- shutdown --------------------------------------------------------------

static void on_pods_stopped(void *)
{
    uv_close((uv_handle_t *)&g_heartbeat, nullptr);
    uv_close((uv_handle_t *)&g_report, nullptr);
    uv_close((uv_handle_t *)&g_retry, nullptr);
    uv_close((uv_handle_t *)&g_sigint, nullptr);
    uv_close((uv_handle_t *)&g_sigterm, nullptr);
    kx_reaper_close();
}

static void on_sessions_stopped(void *)
{
    kx_node_close_muxes(&g_node);
    if (g_node.httpd) {
        kx_httpd_close(g_node.httpd, nullptr, nullptr);
        g_node.httpd = nullptr;
    }
    if (g_node.pm)
        kx_podmgr_shutdown(g_node.pm, on_pods_stopped, nullptr);
    else
        on_pods_stopped(nullptr);
}

static void on_signal(uv_signal_t *, int signum)
{
    if (g_stopping)
        return;
    g_stopping = true;
    nlog("%s, stopping pods", strsignal(signum));
    kx_sd_notify("STOPPING=1");
    uv_timer_stop(&g_heartbeat);
    uv_timer_stop(&g_report);
    uv_timer_stop(&g_retry);
    uv_signal_stop(&g_sigint);
    uv_signal_stop(&g_sigterm);
    kx_node_stop_sessions(&g_node, on_sessions_stopped, nullptr);
}

static int parse_args(int argc, char **argv)
{
    static const struct option opts[] = {
        {"server", required_argument, nullptr, 's'},
        {"token-file", required_argument, nullptr, 't'},
        {"data-dir", required_argument, nullptr, 'd'},
        {"manifest-dir", required_argument, nullptr, 'm'},
        {"image-dir", required_argument, nullptr, 'i'},
        {"node-name", required_argument, nullptr, 'n'},
        {"listen", required_argument, nullptr, 'l'},
        {"heartbeat", required_argument, nullptr, 'b'},
        {"pod-log-dir", required_argument, nullptr, 'L'},
        {"container-log-max-size", required_argument, nullptr, 'S'},
        {"container-log-max-files", required_argument, nullptr, 'F'},
        {"no-mux", no_argument, nullptr, 'X'},
        {"help", no_argument, nullptr, 'h'},
        {"version", no_argument, nullptr, 'V'},
        {nullptr, 0, nullptr, 0},
    };
    g_cfg.listen = "0.0.0.0:10250";
    g_cfg.heartbeat_s = 10;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, nullptr)) != -1) {
        switch (c) {
        case 's': g_cfg.server = optarg; break;
        case 't': g_cfg.token_file = optarg; break;
        case 'd': g_cfg.data_dir = optarg; break;
        case 'L': g_cfg.log_dir = optarg; break;
        case 'm': g_cfg.manifest_dir = optarg; break;
        case 'i': g_cfg.image_dir = optarg; break;
        case 'n':
            if (kx_strlcpy(g_cfg.node_name, optarg, sizeof g_cfg.node_name) < 0) {
                fprintf(stderr, "kubexec-node: --node-name too long\n");
                return 2;
            }
            break;
        case 'l': g_cfg.listen = optarg; break;
        case 'X': g_node.no_mux = true; break;
        case 'b': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 3600) {
                fprintf(stderr, "kubexec-node: invalid --heartbeat %s (1..3600 seconds)\n", optarg);
                return 2;
            }
            g_cfg.heartbeat_s = (int)v;
            break;
        }
        case 'S': case 'F': {
            // Rotation is process-wide in crilog (podmgr opens the logs).
            uint64_t size;
            int files;
            kx_crilog_get_default_rotation(&size, &files);
            char *end;
            if (c == 'S') {
                unsigned long long v = strtoull(optarg, &end, 10);
                static const struct { const char *sfx; unsigned long long mul; } units[] = {
                    {"", 1}, {"Ki", 1ull << 10}, {"Mi", 1ull << 20}, {"Gi", 1ull << 30},
                    {"K", 1000}, {"k", 1000}, {"M", 1000000}, {"G", 1000000000}};
                unsigned long long mul = 0;
                for (const auto &u : units)
                    if (!strcmp(end, u.sfx))
                        mul = u.mul;
                if (end == optarg || *optarg == '-' || !mul || v > (1ull << 40) / mul) {
                    fprintf(stderr, "kubexec-node: invalid --container-log-max-size %s (e.g. 10Mi)\n", optarg);
                    return 2;
                }
                size = v * mul;
            } else {
                long v = strtol(optarg, &end, 10);
                if (*end || end == optarg || v < 2 || v > KX_CRILOG_MAX_FILES) {
                    fprintf(stderr, "kubexec-node: invalid --container-log-max-files %s (2..%d)\n", optarg,
                            KX_CRILOG_MAX_FILES);
                    return 2;
                }
                files = (int)v;
            }
            kx_crilog_set_default_rotation(size, files);
            break;
        }
        case 'h': fputs(usage_text, stdout); exit(0);
        case 'V': printf("kubexec-node %s\n", KUBEXEC_VERSION); exit(0);
        default: fputs(usage_text, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kubexec-node: unexpected argument %s\n", argv[optind]);
        return 2;
    }
    const char *missing = !g_cfg.server ? "--server" : !g_cfg.token_file ? "--token-file"
                          : !g_cfg.data_dir ? "--data-dir" : !g_cfg.manifest_dir ? "--manifest-dir"
                          : !g_cfg.image_dir ? "--image-dir" : nullptr;
    if (missing) {
        fprintf(stderr, "kubexec-node: %s is required\n%s", missing, usage_text);
        return 2;
    }
    if (kx_parse_https_url(g_cfg.server, g_server_host, sizeof g_server_host, &g_server_port) < 0) {
        fprintf(stderr, "kubexec-node: invalid --server %s (want https://HOST:PORT)\n", g_cfg.server);
        return 2;
    }
    if (kx_hostport_split(g_cfg.listen, g_listen_host, sizeof g_listen_host, &g_listen_port) < 0) {
        fprintf(stderr, "kubexec-node: invalid --listen %s (want ADDR:PORT)\n", g_cfg.listen);
        return 2;
    }
    if (!g_cfg.node_name[0]) {
        if (gethostname(g_cfg.node_name, sizeof g_cfg.node_name) != 0)
            kx_strlcpy(g_cfg.node_name, "node", sizeof g_cfg.node_name);
        for (char *p = g_cfg.node_name; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    }
    for (const char *p = g_cfg.node_name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.')) {
            fprintf(stderr, "kubexec-node: invalid node name %s (lower-case DNS name)\n",
                    g_cfg.node_name);
            return 2;
        }
    }
    return 0;
}

static int check_dir(const char *flag, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "kubexec-node: %s %s: not a directory\n", flag, path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int r = parse_args(argc, argv);
    if (r)
        return r;
    signal(SIGPIPE, SIG_IGN);
    if (check_dir("--manifest-dir", g_cfg.manifest_dir) < 0 ||
        check_dir("--image-dir", g_cfg.image_dir) < 0)
        return 2;
    char *tok = nullptr;
    if (kx_pki_read_file(g_cfg.token_file, &tok) < 0) {
        fprintf(stderr, "kubexec-node: cannot read --token-file %s: %s\n", g_cfg.token_file,
                strerror(errno));
        return 1;
    }
    size_t tl = strcspn(tok, "\r\n");
    tok[tl] = 0;
    if (tl < 3 + 64 + 2 || strncmp(tok, "K10", 3) != 0 || strncmp(tok + 67, "::", 2) != 0 ||
        kx_strlcpy(g_token, tok, sizeof g_token) < 0) {
        fprintf(stderr, "kubexec-node: %s does not hold a kubexec node token (K10<hash>::node:<secret>)\n",
                g_cfg.token_file);
        free(tok);
        return 1;
    }
    free(tok);
    if (strlen(g_cfg.data_dir) > 500) {
        fprintf(stderr, "kubexec-node: --data-dir path too long\n");
        return 2;
    }
    char pkidir[600];
    snprintf(pkidir, sizeof pkidir, "%s/pki", g_cfg.data_dir);
    if ((mkdir(g_cfg.data_dir, 0700) < 0 && errno != EEXIST) ||
        (mkdir(pkidir, 0700) < 0 && errno != EEXIST)) {
        fprintf(stderr, "kubexec-node: cannot create %s: %s\n", pkidir, strerror(errno));
        return 1;
    }
    snprintf(g_pki[0], sizeof g_pki[0], "%s/ca.crt", pkidir);
    snprintf(g_pki[1], sizeof g_pki[1], "%s/node.key", pkidir);
    snprintf(g_pki[2], sizeof g_pki[2], "%s/node.crt", pkidir);
    pick_address();

    g_node.loop = uv_default_loop();
    if (kx_reaper_init(g_node.loop) < 0) {
        fprintf(stderr, "kubexec-node: cannot watch child processes\n");
        return 1;
    }
    uv_timer_init(g_node.loop, &g_heartbeat);
    uv_timer_init(g_node.loop, &g_report);
    uv_timer_init(g_node.loop, &g_retry);
    uv_signal_init(g_node.loop, &g_sigint);
    uv_signal_init(g_node.loop, &g_sigterm);
    uv_signal_start(&g_sigint, on_signal, SIGINT);
    uv_signal_start(&g_sigterm, on_signal, SIGTERM);

    if (have_identity()) {
        start_server();
    } else {
        // First contact: nothing is trusted yet, the token's hash decides.
        kx_tls_client_pem insecure = {};
        insecure.insecure = true;
        kx_tls_pem_error why;
        g_insecure_ctx = kx_tls_client_ctx_pem(&insecure, &why);
        if (!g_insecure_ctx) {
            fprintf(stderr, "kubexec-node: out of memory\n");
            return 1;
        }
        fetch_cacerts(nullptr);
    }
    uv_run(g_node.loop, UV_RUN_DEFAULT);
    if (g_exit_code) {
        // Failed start: tear down what exists without waiting on it.
        if (g_node.pm)
            kx_podmgr_shutdown(g_node.pm, nullptr, nullptr);
        return g_exit_code;
    }
    if (g_node.pm)
        kx_podmgr_free(g_node.pm);
    kx_tls_ctx_free(g_client_ctx);
    kx_tls_ctx_free(g_insecure_ctx);
    kx_tls_ctx_free(g_node.server_ctx);
    free(g_last_pods);
    nlog("stopped");
    return 0;
}
