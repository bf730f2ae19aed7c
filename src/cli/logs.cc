// kubexec logs: GET pods/NAME/log with kubectl's flags; the body (chunked
// while following) goes to stdout as it arrives.
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

// Go's time.ParseDuration subset kubectl accepts for --since ("90s", "1h30m",
// "1.5h", "300ms"). Seconds into *out. 0 or -EINVAL.
static int parse_duration(const char *s, double *out)
{
    static const struct {
        const char *unit;
        double secs;
    } units[] = {{"ns", 1e-9}, {"us", 1e-6}, {"µs", 1e-6}, {"ms", 1e-3},
                 {"s", 1},     {"m", 60},    {"h", 3600}};
    double total = 0;
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    if (!*s)
        return -EINVAL;
    while (*s) {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (end == s || errno || v < 0 || *s == '+' || *s == '-')
            return -EINVAL;
        s = end;
        size_t best = 0;
        double mul = 0;
        for (auto &u : units) {
            size_t l = strlen(u.unit);
            if (strncmp(s, u.unit, l) == 0 && l > best) {
                best = l;
                mul = u.secs;
            }
        }
        if (!best)
            return -EINVAL;
        s += best;
        total += v * mul;
    }
    *out = total;
    return 0;
}

static int sink_stdout(void *, const uint8_t *p, size_t n)
{
    int r = kx_cli_write_all(1, p, n);
    if (r == -EPIPE) {
        // As kubectl (Go) does when its reader went away.
        signal(SIGPIPE, SIG_DFL);
        raise(SIGPIPE);
    }
    return r;
}

int kx_cmd_logs(kx_cli *c, int argc, char **argv)
{
    const char *container = nullptr, *since = nullptr, *since_time = nullptr,
               *running_timeout = nullptr, *selector = nullptr;
    bool follow = false, previous = false, timestamps = false, all_containers = false;
    long tail = -1, limit_bytes = 0;
    bool limit_set = false;
    const kx_flag flags[] = {
        {"container", 'c', KXF_STRING, &container},
        {"follow", 'f', KXF_BOOL, &follow},
        {"previous", 'p', KXF_BOOL, &previous},
        {"timestamps", 0, KXF_BOOL, &timestamps},
        {"tail", 0, KXF_INT, &tail},
        {"limit-bytes", 0, KXF_INT, &limit_bytes},
        {"since", 0, KXF_STRING, &since},
        {"since-time", 0, KXF_STRING, &since_time},
        {"pod-running-timeout", 0, KXF_STRING, &running_timeout},
        {"all-containers", 0, KXF_BOOL, &all_containers},
        {"selector", 'l', KXF_STRING, &selector},
    };
    const char *pos[4];
    size_t npos;
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], "--limit-bytes", 13) == 0)
            limit_set = true;
    if (kx_cli_parse(c, argc, argv, flags, sizeof flags / sizeof flags[0], pos, 4, &npos,
                     nullptr, nullptr))
        return 1;
    if (all_containers || selector)
        return kx_cli_err("--all-containers and -l/--selector are not supported by kubexec; "
                          "name the pod and container");
    if (npos == 0)
        return kx_cli_err("expected POD, TYPE/NAME, or TYPE NAME, (at most 2 arguments) saw 0");
    if (npos > 2)
        return kx_cli_err("expected POD, TYPE/NAME, or TYPE NAME, (at most 2 arguments) saw %zu",
                          npos);
    if (npos == 2 && container)
        return kx_cli_err("only one of -c or an inline [CONTAINER] arg is allowed");
    if (npos == 2)
        container = pos[1];
    if (since && since_time)
        return kx_cli_err("at most one of `sinceTime` or `sinceSeconds` may be specified");
    if (limit_set && limit_bytes < 1)
        return kx_cli_err("--limit-bytes must be greater than 0");
    double since_s = 0;
    if (since && parse_duration(since, &since_s) < 0)
        return kx_cli_err("invalid argument \"%s\" for \"--since\" flag: time: invalid duration "
                          "\"%s\"",
                          since, since);
    if (since && since_s <= 0)
        return kx_cli_err("--since must be greater than 0");
    c->logs_errors = true;
    kx_cli_http *h;
    kx_cli_pod pod;
    char ctr[64];
    if (kx_cli_pod_open(c, pos[0], nullptr, container, false, &h, &pod, ctr, sizeof ctr))
        return 1;
    char ectr[300], path[3000];
    kx_cli_qesc(ectr, sizeof ectr, ctr);
    int pl = kx_cli_pod_path(path, sizeof path, pod.ns, pod.name, "log");
    if (pl < 0) {
        kx_cli_http_close(h);
        return kx_cli_err("namespace or pod name too long");
    }
    size_t n = (size_t)pl + (size_t)snprintf(path + pl, sizeof path - (size_t)pl, "?container=%s",
                                             ectr);
    if (follow)
        n += (size_t)snprintf(path + n, sizeof path - n, "&follow=true");
    if (previous)
        n += (size_t)snprintf(path + n, sizeof path - n, "&previous=true");
    if (timestamps)
        n += (size_t)snprintf(path + n, sizeof path - n, "&timestamps=true");
    if (tail >= 0)
        n += (size_t)snprintf(path + n, sizeof path - n, "&tailLines=%ld", tail);
    if (limit_set)
        n += (size_t)snprintf(path + n, sizeof path - n, "&limitBytes=%ld", limit_bytes);
    if (since) {
        // As kubectl: whole seconds, at least one.
        long sec = (long)llround(since_s);
        n += (size_t)snprintf(path + n, sizeof path - n, "&sinceSeconds=%ld", sec < 1 ? 1 : sec);
    }
    if (since_time) {
        char et[200];
        if (kx_cli_qesc(et, sizeof et, since_time) < 0) {
            kx_cli_http_close(h);
            return kx_cli_err("invalid --since-time");
        }
        n += (size_t)snprintf(path + n, sizeof path - n, "&sinceTime=%s", et);
    }
    kx_cli_resp r;
    int rc = kx_cli_http_do(h, "GET", path, nullptr, sink_stdout, nullptr, &r);
    if (rc == 0 && (r.status < 200 || r.status >= 300))
        rc = kx_cli_api_error(&r);
    kx_cli_http_close(h);
    return rc;
}
