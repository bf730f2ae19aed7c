// Command-line parsing in kubectl's (pflag's) conventions; contract in cli.h.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

// Global flags every command accepts, anywhere on the line (as kubectl's
// persistent flags). --cache-dir and the like are accepted for scripts
// written for kubectl and have no effect here.
static const char *g_ignored;
static bool g_ignored_bool;
static long g_v;

static size_t global_flags(kx_cli *c, kx_flag *out)
{
    kx_kcfg_flags *k = &c->g.kcfg;
    kx_flag f[] = {
        {"kubeconfig", 0, KXF_STRING, &k->kubeconfig},
        {"context", 0, KXF_STRING, &k->context},
        {"cluster", 0, KXF_STRING, &k->cluster},
        {"user", 0, KXF_STRING, &k->user},
        {"namespace", 'n', KXF_STRING, &k->namespace_},
        {"server", 's', KXF_STRING, &k->server},
        {"token", 0, KXF_STRING, &k->token},
        {"certificate-authority", 0, KXF_STRING, &k->certificate_authority},
        {"client-certificate", 0, KXF_STRING, &k->client_certificate},
        {"client-key", 0, KXF_STRING, &k->client_key},
        {"tls-server-name", 0, KXF_STRING, &k->tls_server_name},
        {"insecure-skip-tls-verify", 0, KXF_BOOL, &k->insecure_skip_tls_verify},
        {"request-timeout", 0, KXF_STRING, &c->g.request_timeout},
        {"v", 'v', KXF_INT, &g_v},
        {"cache-dir", 0, KXF_STRING, &g_ignored},
        {"match-server-version", 0, KXF_BOOL, &g_ignored_bool},
        {"warnings-as-errors", 0, KXF_BOOL, &g_ignored_bool},
    };
    memcpy(out, f, sizeof f);
    return sizeof f / sizeof f[0];
}

static const kx_flag *find_long(const kx_flag *f, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(f[i].name) == len && strncmp(f[i].name, name, len) == 0)
            return &f[i];
    return nullptr;
}

static const kx_flag *find_short(const kx_flag *f, size_t n, char ch)
{
    for (size_t i = 0; i < n; i++)
        if (f[i].shorthand == ch)
            return &f[i];
    return nullptr;
}

// Stores a value; 0 or 1 after printing the error.
static int set_value(const kx_flag *f, const char *v, const char *spelled)
{
    switch (f->kind) {
    case KXF_BOOL:
        if (!v || strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "t") == 0 ||
            strcmp(v, "T") == 0 || strcmp(v, "TRUE") == 0 || strcmp(v, "True") == 0)
            *(bool *)f->dst = true;
        else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcmp(v, "f") == 0 ||
                 strcmp(v, "F") == 0 || strcmp(v, "FALSE") == 0 || strcmp(v, "False") == 0)
            *(bool *)f->dst = false;
        else
            return kx_cli_err("invalid argument \"%s\" for \"%s\" flag: strconv.ParseBool: "
                              "parsing \"%s\": invalid syntax",
                              v, spelled, v);
        return 0;
    case KXF_STRING:
        *(const char **)f->dst = v;
        return 0;
    case KXF_INT: {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (!*v || *end || errno)
            return kx_cli_err("invalid argument \"%s\" for \"%s\" flag: strconv.ParseInt: "
                              "parsing \"%s\": invalid syntax",
                              v, spelled, v);
        *(long *)f->dst = n;
        return 0;
    }
    }
    return 1;
}

int kx_cli_parse(kx_cli *c, int argc, char **argv, const kx_flag *flags, size_t nflags,
                 const char **pos, size_t maxpos, size_t *npos, char ***rest, int *nrest)
{
    kx_flag all[64];
    if (nflags > 40)
        return kx_cli_err("internal: too many flags");
    memcpy(all, flags, nflags * sizeof *flags);
    size_t n = nflags + global_flags(c, all + nflags);
    *npos = 0;
    if (rest) {
        *rest = nullptr;
        *nrest = -1;   // no "--"
    }
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            if (!rest)
                return kx_cli_err("unexpected \"--\"");
            *rest = argv + i + 1;
            *nrest = argc - i - 1;
            break;
        }
        if (a[0] == '-' && a[1] == '-') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            const kx_flag *f = find_long(all, n, name, len);
            if (!f)
                return kx_cli_err("unknown flag: --%.*s", (int)len, name);
            char spelled[80];
            snprintf(spelled, sizeof spelled, "--%s", f->name);
            const char *v = eq ? eq + 1 : nullptr;
            if (!v && f->kind != KXF_BOOL) {
                if (i + 1 >= argc)
                    return kx_cli_err("flag needs an argument: --%s", f->name);
                v = argv[++i];
            }
            if (set_value(f, v, spelled))
                return 1;
            continue;
        }
        if (a[0] == '-' && a[1] && strcmp(a, "-") != 0) {
            // A cluster of shorthands: booleans, then at most one taking a value.
            for (const char *p = a + 1; *p; p++) {
                const kx_flag *f = find_short(all, n, *p);
                if (!f)
                    return kx_cli_err("unknown shorthand flag: '%c' in %s", *p, a);
                char spelled[80];
                snprintf(spelled, sizeof spelled, "-%c, --%s", f->shorthand, f->name);
                if (f->kind == KXF_BOOL) {
                    const char *v = nullptr;
                    if (p[1] == '=') {
                        v = p + 2;
                        if (set_value(f, v, spelled))
                            return 1;
                        break;
                    }
                    if (set_value(f, v, spelled))
                        return 1;
                    continue;
                }
                const char *v = p[1] ? p + 1 : nullptr;
                if (v && *v == '=')
                    v++;
                if (!v) {
                    if (i + 1 >= argc)
                        return kx_cli_err("flag needs an argument: '%c' in %s", *p, a);
                    v = argv[++i];
                }
                if (set_value(f, v, spelled))
                    return 1;
                break;
            }
            continue;
        }
        if (*npos >= maxpos)
            return kx_cli_err("unexpected argument \"%s\"", a);
        pos[(*npos)++] = a;
    }
    c->g.v = (int)g_v;
    return 0;
}
