// kubexec-apiserver: the Kubernetes API subset kubectl needs for exec, on one
// libuv loop. See man/kubexec-apiserver.8.
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bootstrap.h"
#include "kubexec/http1.h"
#include "kubexec/sdnotify.h"
#include "kubexec/tls.h"
#include "server.h"

#ifndef KUBEXEC_VERSION
#define KUBEXEC_VERSION "0.1.0"
#endif

static const char usage_text[] =
    "Usage: kubexec-apiserver --data-dir DIR [--listen ADDR:PORT] [--node-grace-period SECONDS]\n"
    "\n"
    "Serves the Kubernetes API subset that kubectl exec needs and proxies exec\n"
    "sessions to kubexec-node agents.\n"
    "\n"
    "Options:\n"
    "  --data-dir DIR              state directory: pki/, admin.kubeconfig, node-token (required)\n"
    "  --listen ADDR:PORT          address to serve HTTPS on (default 0.0.0.0:6443; port 0 picks one)\n"
    "  --node-grace-period SECONDS a node silent this long becomes NotReady (default 40)\n"
    "  -h, --help                  show this help\n"
    "  --version                   show the version\n";

static kx_apiserver g_srv;
static uv_signal_t g_sigint, g_sigterm;
static uv_timer_t g_tick;


static void on_tick(uv_timer_t *)
{
    kx_api_tick(g_srv.api, kx_now_ms());
}

static void on_httpd_closed(void *)
{
    uv_close((uv_handle_t *)&g_tick, nullptr);
    uv_close((uv_handle_t *)&g_sigint, nullptr);
    uv_close((uv_handle_t *)&g_sigterm, nullptr);
}

static void on_signal(uv_signal_t *, int signum)
{
    fprintf(stderr, "kubexec-apiserver: %s, shutting down\n", strsignal(signum));
    kx_sd_notify("STOPPING=1");
    uv_timer_stop(&g_tick);
    uv_signal_stop(&g_sigint);
    uv_signal_stop(&g_sigterm);
    kx_proxy_close_all();
    kx_nodepool_close_all();
    if (g_srv.httpd) {
        kx_httpd_close(g_srv.httpd, on_httpd_closed, nullptr);
        g_srv.httpd = nullptr;
    }
}

int main(int argc, char **argv)
{
    const char *data_dir = nullptr;
    const char *listen = "0.0.0.0:6443";
    int grace = 40;
    static const struct option opts[] = {
        {"data-dir", required_argument, nullptr, 'd'},
        {"listen", required_argument, nullptr, 'l'},
        {"node-grace-period", required_argument, nullptr, 'g'},
        {"help", no_argument, nullptr, 'h'},
        {"version", no_argument, nullptr, 'V'},
        {nullptr, 0, nullptr, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, nullptr)) != -1) {
        switch (c) {
        case 'd': data_dir = optarg; break;
        case 'l': listen = optarg; break;
        case 'g': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 86400) {
                fprintf(stderr, "kubexec-apiserver: invalid --node-grace-period %s (1..86400 seconds)\n", optarg);
                return 2;
            }
            grace = (int)v;
            break;
        }
        case 'h': fputs(usage_text, stdout); return 0;
        case 'V': printf("kubexec-apiserver %s (Kubernetes API v1.33)\n", KUBEXEC_VERSION); return 0;
        default: fputs(usage_text, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kubexec-apiserver: unexpected argument %s\n", argv[optind]);
        return 2;
    }
    if (!data_dir) {
        fprintf(stderr, "kubexec-apiserver: --data-dir is required\n%s", usage_text);
        return 2;
    }
    char host[256];
    int port;
    if (kx_hostport_split(listen, host, sizeof host, &port) < 0) {
        fprintf(stderr, "kubexec-apiserver: invalid --listen %s (want ADDR:PORT)\n", listen);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (mkdir(data_dir, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "kubexec-apiserver: cannot create %s: %s\n", data_dir, strerror(errno));
        return 1;
    }

    char err[512];
    kx_bootstrap_paths paths = {};
    if (kx_bootstrap(data_dir, host, &paths, err, sizeof err) < 0) {
        fprintf(stderr, "kubexec-apiserver: bootstrap: %s\n", err);
        return 1;
    }
    g_srv.server_ctx = kx_tls_server_ctx(paths.serving_crt, paths.serving_key, paths.ca_crt,
                                         KX_TLS_OPTIONAL_CLIENT_CERT, err, sizeof err);
    if (!g_srv.server_ctx) {
        fprintf(stderr, "kubexec-apiserver: TLS: %s\n", err);
        return 1;
    }
    g_srv.node_ctx = kx_tls_client_ctx(paths.ca_crt, paths.kubelet_client_crt,
                                       paths.kubelet_client_key, err, sizeof err);
    if (!g_srv.node_ctx) {
        fprintf(stderr, "kubexec-apiserver: TLS client: %s\n", err);
        return 1;
    }
    g_srv.loop = uv_default_loop();
    g_srv.httpd = kx_httpd_new(g_srv.loop, host, port, g_srv.server_ctx, kx_apiserver_handle,
                               &g_srv, err, sizeof err);
    if (!g_srv.httpd) {
        fprintf(stderr, "kubexec-apiserver: %s\n", err);
        return 1;
    }
    port = kx_httpd_port(g_srv.httpd);
    const char *url_host = host;
    if (strcmp(host, "0.0.0.0") == 0)
        url_host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        url_host = "::1";
    char url[300], advertise[300];
    if (strchr(url_host, ':')) {
        snprintf(url, sizeof url, "https://[%s]:%d", url_host, port);
        snprintf(advertise, sizeof advertise, "[%s]:%d", url_host, port);
    } else {
        snprintf(url, sizeof url, "https://%s:%d", url_host, port);
        snprintf(advertise, sizeof advertise, "%s:%d", url_host, port);
    }
    kx_api_config cfg = {};
    cfg.node_grace_seconds = grace;
    cfg.advertise_address = advertise;
    g_srv.api = kx_api_new(&paths, &cfg, err, sizeof err);
    if (!g_srv.api) {
        fprintf(stderr, "kubexec-apiserver: %s\n", err);
        return 1;
    }
    if (kx_bootstrap_kubeconfig(&paths, url, err, sizeof err) < 0) {
        fprintf(stderr, "kubexec-apiserver: kubeconfig: %s\n", err);
        return 1;
    }

    uv_timer_init(g_srv.loop, &g_tick);
    uv_timer_start(&g_tick, on_tick, 1000, 1000);
    uv_signal_init(g_srv.loop, &g_sigint);
    uv_signal_init(g_srv.loop, &g_sigterm);
    uv_signal_start(&g_sigint, on_signal, SIGINT);
    uv_signal_start(&g_sigterm, on_signal, SIGTERM);

    fprintf(stderr, "kubexec-apiserver: serving on %s (kubeconfig %s)\n", url,
            paths.admin_kubeconfig);
    // Ready for systemd (Type=notify): listening, PKI, kubeconfig and node-token written.
    kx_sd_notifyf("READY=1\nSTATUS=serving on %s", url);
    uv_run(g_srv.loop, UV_RUN_DEFAULT);

    kx_api_free(g_srv.api);
    kx_tls_ctx_free(g_srv.server_ctx);
    kx_tls_ctx_free(g_srv.node_ctx);
    int r = uv_loop_close(g_srv.loop);
    if (r != 0)
        fprintf(stderr, "kubexec-apiserver: warning: loop closed with live handles\n");
    fprintf(stderr, "kubexec-apiserver: stopped\n");
    return 0;
}
