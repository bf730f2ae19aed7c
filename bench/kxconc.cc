// kxconc - N interactive exec sessions through the API server, held at
// once, then every one echoes a line (issue 5's concurrency benchmark).
//
// The same exchange as bench/concurrency.py (one TLS connection per session
// as kubectl opens it, SPDY/3.1, `sh` reading stdin), in C++ on the project's
// own library and one libuv loop: the Python client's own work (~20 ms just
// to write 1000 TLS records) was a large part of the echo latency it
// measured. Prints "key<TAB>value" lines, the keys concurrency.py prints.
//
//   kxconc HOST:PORT N --cert F --key F --ca F --api-pid P --node-pid P
//          --node-exe PATH [--open-parallel 64] [--settle 2] [--open-timeout 120]
//          [--echo-timeout 30] [--tsv FILE]
// KXCONC_WARM_ROUNDS=R sends R extra echo bursts before the measured one
// (to profile the daemons in a steady state: perf record -a meanwhile).
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "kubexec/conn.h"
#include "kubexec/spdy.h"
#include "kubexec/tls.h"
#include "kubexec/util.h"

struct sess {
    int i;
    kx_conn *c;
    kx_spdy_session *sp;
    char head[4096];
    size_t head_len;
    bool upgraded, replied, answered, failed;
    int replies;
    uint32_t sid_in, sid_out;
    char token[32];
    char tail[64];   // last bytes of stdout seen (the token may arrive in pieces)
    size_t tail_len;
    uint64_t t_sent, lat_ns;
};

static uv_loop_t *g_loop;
static sess *g_s;
static size_t g_n;
static const char *g_host;
static int g_port;
static kx_tls_ctx *g_ctx;
static size_t g_next, g_inflight, g_opened, g_answered, g_errors, g_parallel = 64;
static char g_first_error[200];
static bool g_echoing;

static void error(sess *s, const char *why)
{
    if (s->failed)
        return;
    s->failed = true;
    g_errors++;
    if (!g_first_error[0])
        snprintf(g_first_error, sizeof g_first_error, "session %d: %s", s->i, why);
    if (!s->replied && g_inflight)
        g_inflight--;
}

static void open_more(void);

static int send_cb(void *user, const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    sess *s = (sess *)user;
    if (s->c)
        kx_conn_write2(s->c, a, an, b, bn);
    return 0;
}

static void on_reply(void *user, uint32_t, const kx_spdy_nv *, size_t, bool)
{
    sess *s = (sess *)user;
    if (++s->replies == 4 && !s->replied) {
        s->replied = true;
        g_opened++;
        g_inflight--;
        open_more();
    }
}

static void on_sdata(void *user, uint32_t id, const uint8_t *p, size_t n)
{
    sess *s = (sess *)user;
    if (id != s->sid_out || !g_echoing || s->answered)
        return;
    // Look for the token across the piece boundary: keep the last bytes.
    size_t tl = strlen(s->token);
    char buf[sizeof s->tail + 4096];
    size_t keep = s->tail_len, take = n > 4096 ? 4096 : n;
    memcpy(buf, s->tail, keep);
    memcpy(buf + keep, p + n - take, take);
    size_t len = keep + take;
    if (memmem(buf, len, s->token, tl)) {
        s->lat_ns = uv_hrtime() - s->t_sent;
        s->answered = true;
        g_answered++;
        return;
    }
    size_t t = len < sizeof s->tail ? len : sizeof s->tail;
    memcpy(s->tail, buf + len - t, t);
    s->tail_len = t;
}

static const kx_spdy_callbacks k_spdy = {send_cb, nullptr, on_reply, on_sdata,
                                         nullptr, nullptr, nullptr};

static void c_ready(kx_conn *c, int status)
{
    sess *s = (sess *)kx_conn_user(c);
    if (status < 0) {
        error(s, "connect/TLS failed");
        open_more();
        return;
    }
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /api/v1/namespaces/default/pods/demo/exec?command=sh&stdin=true&stdout="
                     "true&stderr=true HTTP/1.1\r\nHost: %s:%d\r\nConnection: Upgrade\r\n"
                     "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n",
                     g_host, g_port);
    kx_conn_write(c, (const uint8_t *)req, (size_t)n);
}

static void c_data(kx_conn *c, const uint8_t *p, size_t n)
{
    sess *s = (sess *)kx_conn_user(c);
    if (!s->upgraded) {
        size_t room = sizeof s->head - 1 - s->head_len, take = n < room ? n : room;
        memcpy(s->head + s->head_len, p, take);
        s->head_len += take;
        s->head[s->head_len] = 0;
        char *end = strstr(s->head, "\r\n\r\n");
        if (!end) {
            if (s->head_len == sizeof s->head - 1)
                error(s, "response head too long");
            return;
        }
        if (strncmp(s->head, "HTTP/1.1 101", 12) != 0) {
            error(s, "no upgrade");
            kx_conn_close(c);
            open_more();
            return;
        }
        s->upgraded = true;
        s->sp = kx_spdy_session_new(false, &k_spdy, s);
        static const char *types[] = {"error", "stdin", "stdout", "stderr"};
        for (int k = 0; k < 4 && s->sp; k++) {
            kx_spdy_nv nv = {"streamtype", 10, types[k], strlen(types[k])};
            uint32_t id = 0;
            kx_spdy_open(s->sp, &nv, 1, false, &id);
            if (k == 1)
                s->sid_in = id;
            if (k == 2)
                s->sid_out = id;
        }
        size_t used = (size_t)(end + 4 - s->head) - (s->head_len - take);
        p += used;
        n -= used;
    }
    if (n && s->sp && kx_spdy_recv(s->sp, p, n) < 0)
        error(s, "SPDY protocol error");
}

static void c_end(kx_conn *c, int)
{
    sess *s = (sess *)kx_conn_user(c);
    if (!s->replied || (g_echoing && !s->answered))
        error(s, "connection ended");
    kx_conn_close(c);
}

static void c_closed(kx_conn *c)
{
    sess *s = (sess *)kx_conn_user(c);
    s->c = nullptr;
}

static const kx_conn_callbacks k_conn = {c_ready, c_data, c_end, nullptr, c_closed};

static void open_more(void)
{
    while (g_inflight < g_parallel && g_next < g_n) {
        sess *s = &g_s[g_next++];
        s->c = kx_conn_connect(g_loop, g_host, g_port, g_ctx, nullptr, &k_conn, s);
        if (!s->c) {
            s->failed = true;
            g_errors++;
            continue;
        }
        g_inflight++;
    }
}

// ---- memory of the daemons, as concurrency.py measures it -------------------------

static void mem_kib(int pid, long *rss, long *pss, long *uss)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    long v;
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        v = strtol(colon + 1, nullptr, 10);
        *colon = 0;
        if (strcmp(line, "Rss") == 0)
            *rss += v;
        else if (strcmp(line, "Pss") == 0)
            *pss += v;
        else if (strcmp(line, "Private_Clean") == 0 || strcmp(line, "Private_Dirty") == 0)
            *uss += v;
    }
    fclose(f);
}

struct mem { long rss, pss, uss, procs; };

// The API server plus the node's own processes (its descendants running the
// node's executable; not the pods' shells).
static mem daemon_mem(int api, int node, const char *node_exe)
{
    mem m = {0, 0, 0, 1};
    mem_kib(api, &m.rss, &m.pss, &m.uss);
    // (pid, ppid) of every process, then the node's descendants.
    size_t np = 0, cap = 4096;
    int (*pp)[2] = (int (*)[2])malloc(cap * sizeof *pp);
    DIR *d = opendir("/proc");
    while (struct dirent *e = (d && pp) ? readdir(d) : nullptr) {
        int pid = atoi(e->d_name);
        if (pid <= 0)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        char *rp = strrchr(buf, ')');
        int ppid = 0;
        if (!rp || sscanf(rp + 2, "%*c %d", &ppid) != 1)
            continue;
        if (np == cap) {
            int (*bigger)[2] = (int (*)[2])realloc(pp, 2 * cap * sizeof *pp);
            if (!bigger)
                break;
            pp = bigger;
            cap *= 2;
        }
        pp[np][0] = pid;
        pp[np][1] = ppid;
        np++;
    }
    if (d)
        closedir(d);
    int *tree = (int *)malloc((np + 1) * sizeof *tree);
    size_t nt = 0, done = 0;
    if (tree)
        tree[nt++] = node;
    while (tree && done < nt) {   // breadth-first: tree[done] is the next parent
        int p = tree[done++];
        for (size_t k = 0; k < np && nt <= np; k++)
            if (pp[k][1] == p)
                tree[nt++] = pp[k][0];
    }
    for (size_t k = 0; k < nt; k++) {
        int p = tree[k];
        char path[64], exe[PATH_MAX];
        snprintf(path, sizeof path, "/proc/%d/exe", p);
        ssize_t n = readlink(path, exe, sizeof exe - 1);
        if (n < 0)
            continue;
        exe[n] = 0;
        if (strcmp(exe, node_exe) != 0)
            continue;
        mem_kib(p, &m.rss, &m.pss, &m.uss);
        m.procs++;
    }
    free(tree);
    free(pp);
    return m;
}

// ---- driving ----------------------------------------------------------------------

static void run_until(bool (*done)(void), double seconds)
{
    uint64_t end = uv_hrtime() + (uint64_t)(seconds * 1e9);
    uv_timer_t t;
    uv_timer_init(g_loop, &t);
    uv_timer_start(&t, [](uv_timer_t *) {}, 10, 10);   // wake up to check the clock
    while (!done() && uv_hrtime() < end)
        uv_run(g_loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, nullptr);
    uv_run(g_loop, UV_RUN_NOWAIT);
}

static bool all_opened(void)
{
    return g_opened + g_errors >= g_n;
}

static bool all_answered(void)
{
    return g_answered + g_errors >= g_opened;
}

static bool never(void)
{
    return false;
}

int main(int argc, char **argv)
{
    const char *cert = nullptr, *key = nullptr, *ca = nullptr, *node_exe = "", *tsv = nullptr;
    int api = 0, node = 0;
    double settle = 2, open_timeout = 120, echo_timeout = 30;
    if (argc < 3) {
        fprintf(stderr, "usage: kxconc HOST:PORT N --cert F --key F --ca F --api-pid P "
                        "--node-pid P --node-exe PATH [--open-parallel N]\n");
        return 2;
    }
    static char host[256];
    const char *colon = strrchr(argv[1], ':');
    if (!colon || (size_t)(colon - argv[1]) >= sizeof host) {
        fprintf(stderr, "kxconc: HOST:PORT expected, got %s\n", argv[1]);
        return 2;
    }
    memcpy(host, argv[1], (size_t)(colon - argv[1]));
    g_host = host;
    g_port = atoi(colon + 1);
    long n = atol(argv[2]);
    if (n <= 0 || n > 100000) {
        fprintf(stderr, "kxconc: N must be 1..100000\n");
        return 2;
    }
    for (int i = 3; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--cert")) cert = v;
        else if (!strcmp(k, "--key")) key = v;
        else if (!strcmp(k, "--ca")) ca = v;
        else if (!strcmp(k, "--api-pid")) api = atoi(v);
        else if (!strcmp(k, "--node-pid")) node = atoi(v);
        else if (!strcmp(k, "--node-exe")) node_exe = v;
        else if (!strcmp(k, "--open-parallel")) g_parallel = (size_t)atol(v);
        else if (!strcmp(k, "--settle")) settle = atof(v);
        else if (!strcmp(k, "--open-timeout")) open_timeout = atof(v);
        else if (!strcmp(k, "--echo-timeout")) echo_timeout = atof(v);
        else if (!strcmp(k, "--tsv")) tsv = v;
        else {
            fprintf(stderr, "kxconc: unknown option %s\n", k);
            return 2;
        }
    }
    char err[256];
    g_ctx = kx_tls_client_ctx(ca, cert, key, err, sizeof err);
    if (!g_ctx) {
        fprintf(stderr, "kxconc: %s\n", err);
        return 1;
    }
    g_loop = uv_default_loop();
    g_n = (size_t)n;
    g_s = (sess *)calloc(g_n, sizeof *g_s);
    double *lat = (double *)calloc(g_n, sizeof *lat);
    if (!g_s || !lat) {
        fprintf(stderr, "kxconc: out of memory\n");
        return 1;
    }
    for (long i = 0; i < n; i++) {
        g_s[i].i = (int)i;
        snprintf(g_s[i].token, sizeof g_s[i].token, "kx%05ld", i);
    }
    mem base = daemon_mem(api, node, node_exe);
    uint64_t t0 = uv_hrtime();
    open_more();
    run_until(all_opened, open_timeout);
    double open_s = (double)(uv_hrtime() - t0) / 1e9;
    run_until(never, settle);
    mem held = daemon_mem(api, node, node_exe);

    // Extra bursts first (KXCONC_WARM_ROUNDS, for profiling a steady state),
    // then the measured one.
    for (long r = atol(getenv("KXCONC_WARM_ROUNDS") ? getenv("KXCONC_WARM_ROUNDS") : "0"); r > 0; r--) {
        g_echoing = true;
        g_answered = 0;
        for (size_t i = 0; i < g_n; i++) {
            sess *s = &g_s[i];
            s->answered = false;
            s->tail_len = 0;
            snprintf(s->token, sizeof s->token, "kx%05zuw%d", i % 100000, (int)(r % 1000));
            if (s->replied && !s->failed && s->sp) {
                char line[64];
                int len = snprintf(line, sizeof line, "echo %s\n", s->token);
                s->t_sent = uv_hrtime();
                kx_spdy_data(s->sp, s->sid_in, (const uint8_t *)line, (size_t)len, false);
            }
        }
        run_until(all_answered, echo_timeout);
        g_echoing = false;
        run_until(never, 0.1);
    }
    g_answered = 0;
    for (size_t i = 0; i < g_n; i++) {
        g_s[i].answered = false;
        g_s[i].tail_len = 0;
        snprintf(g_s[i].token, sizeof g_s[i].token, "kx%05zu", i);
    }
    // Every one echoes a line, all at once.
    g_echoing = true;
    for (size_t i = 0; i < g_n; i++) {
        sess *s = &g_s[i];
        if (!s->replied || s->failed || !s->sp)
            continue;
        char line[64];
        int len = snprintf(line, sizeof line, "echo %s\n", s->token);
        s->t_sent = uv_hrtime();
        kx_spdy_data(s->sp, s->sid_in, (const uint8_t *)line, (size_t)len, false);
    }
    run_until(all_answered, echo_timeout);
    size_t nlat = 0;
    for (size_t i = 0; i < g_n; i++)
        if (g_s[i].answered)
            lat[nlat++] = (double)g_s[i].lat_ns / 1e6;
    qsort(lat, nlat, sizeof *lat, [](const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
    });
    // stdin EOF: the shells exit and the sessions end.
    for (size_t i = 0; i < g_n; i++)
        if (g_s[i].sp && g_s[i].c)
            kx_spdy_data(g_s[i].sp, g_s[i].sid_in, nullptr, 0, true);
    run_until(never, 1.0);
    for (size_t i = 0; i < g_n; i++)
        if (g_s[i].c)
            kx_conn_close(g_s[i].c);
    uv_run(g_loop, UV_RUN_NOWAIT);

    // Percentile as concurrency.py takes it (nearest rank).
    auto pct = [&](double q) {
        long k = (long)(q / 100 * (double)nlat + 0.5 + 0.5) - 1;
        k = k < 0 ? 0 : k > (long)nlat - 1 ? (long)nlat - 1 : k;
        return lat[k];
    };
    size_t opened = g_opened ? g_opened : 1;
    char k[24][32], v[24][200];
    int nk = 0;
    auto put = [&](const char *key, const char *fmt, double x) {
        snprintf(k[nk], sizeof k[nk], "%s", key);
        if (fmt)
            snprintf(v[nk], sizeof v[nk], fmt, x);
        nk++;
    };
    put("client", nullptr, 0);
    snprintf(v[nk - 1], sizeof v[0], "kxconc (C++, libuv, the kx library)");
    put("sessions", "%.0f", (double)n);
    put("opened", "%.0f", (double)g_opened);
    put("open_s", "%.2f", open_s);
    put("answered", "%.0f", (double)nlat);
    put("echo_median_ms", nlat ? "%.2f" : "nan", nlat ? pct(50) : 0);
    put("echo_p99_ms", nlat ? "%.2f" : "nan", nlat ? pct(99) : 0);
    put("echo_max_ms", nlat ? "%.2f" : "nan", nlat ? lat[nlat - 1] : 0);
    put("rss_kib_per_session", "%.2f", (double)(held.rss - base.rss) / (double)opened);
    put("pss_kib_per_session", "%.2f", (double)(held.pss - base.pss) / (double)opened);
    put("uss_kib_per_session", "%.2f", (double)(held.uss - base.uss) / (double)opened);
    put("daemon_procs_idle", "%.0f", (double)base.procs);
    put("daemon_procs_held", "%.0f", (double)held.procs);
    put("pss_idle_kib", "%.0f", (double)base.pss);
    put("pss_held_kib", "%.0f", (double)held.pss);
    put("errors", "%.0f", (double)g_errors);
    if (g_first_error[0]) {
        put("first_error", nullptr, 0);
        snprintf(v[nk - 1], sizeof v[0], "%s", g_first_error);
    }
    for (int i = 0; i < nk; i++)
        printf("%s\t%s\n", k[i], v[i]);
    if (tsv) {
        FILE *f = fopen(tsv, "w");
        for (int i = 0; f && i < nk; i++)
            fprintf(f, "%s%c", k[i], i + 1 < nk ? '\t' : '\n');
        for (int i = 0; f && i < nk; i++)
            fprintf(f, "%s%c", v[i], i + 1 < nk ? '\t' : '\n');
        if (f)
            fclose(f);
    }
    kx_tls_ctx_free(g_ctx);
    bool all = nlat == g_opened && g_opened == g_n;
    for (size_t i = 0; i < g_n; i++)
        kx_spdy_session_free(g_s[i].sp);
    free(g_s);
    free(lat);
    return all ? 0 : 1;
}
