// kubexec-apiserver request logic; see api.h.
#include "api.h"

#include <errno.h>
#include <json-c/json.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kubexec/labels.h"
#include "kubexec/pki.h"
#include "kubexec/util.h"
#include "registry.h"

namespace {

constexpr int kMaxTokens = 1024;
constexpr int kJsonDepth = 64;
constexpr int kMaxSans = 16;
constexpr const char *kJson = "application/json";
constexpr const char *kText = "text/plain; charset=utf-8";
constexpr int kJsonFlags = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;

struct static_token {
    char token[256];
    char user[256];
    char groups[512];
};

} // namespace

struct kx_api {
    kx_bootstrap_paths paths;
    uint64_t grace_ms;
    char advertise[256];
    char *ca_crt;  // PEM
    char *ca_key;  // PEM
    char node_token[256];
    static_token *tokens;
    int n_tokens;
    kx_registry reg;
    uint64_t born_ms;  // first now_ms seen: the namespaces' creation time
};

// ---------------------------------------------------------------------------
// Small helpers

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

// Compares in time independent of where the strings differ.
static bool secret_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return d == 0 && lb > 0;
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = 0;
    size_t i = 0;
    while (s[i] == ' ' || s[i] == '\t')
        i++;
    memmove(s, s + i, n - i + 1);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

// The first value of `key` in a form-encoded query, decoded ('+' is a space).
// Returns false when absent or longer than cap-1 bytes.
static bool query_get(const char *q, const char *key, char *out, size_t cap)
{
    if (!q)
        return false;
    size_t kl = strlen(key);
    for (const char *p = q; *p;) {
        const char *end = strchr(p, '&');
        if (!end)
            end = p + strlen(p);
        if ((size_t)(end - p) >= kl && strncmp(p, key, kl) == 0 &&
            (p + kl == end || p[kl] == '=')) {
            const char *v = p + kl + (p + kl < end ? 1 : 0);
            size_t o = 0;
            while (v < end) {
                char c = *v++;
                if (c == '+') {
                    c = ' ';
                } else if (c == '%' && end - v >= 2 && hexval(v[0]) >= 0 && hexval(v[1]) >= 0) {
                    c = (char)(hexval(v[0]) << 4 | hexval(v[1]));
                    v += 2;
                }
                if (o + 1 >= cap)
                    return false;
                out[o++] = c;
            }
            out[o] = 0;
            return true;
        }
        p = *end ? end + 1 : end;
    }
    return false;
}

// Kubernetes' lenient boolean: absent/"0"/"false" false, anything else true.
static bool query_bool(const char *q, const char *key)
{
    char v[16];
    if (!query_get(q, key, v, sizeof v))
        return false;
    return strcmp(v, "0") != 0 && strcasecmp(v, "false") != 0;
}

static const char *get_str(json_object *o, const char *key)
{
    json_object *v;
    if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return nullptr;
    return json_object_get_string(v);
}

static json_object *get_obj(json_object *o, const char *key)
{
    json_object *v;
    if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_object))
        return nullptr;
    return v;
}

static json_object *get_arr(json_object *o, const char *key)
{
    json_object *v;
    if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_array))
        return nullptr;
    return v;
}

// json-c builders; a failed allocation makes the whole response fail with
// ENOMEM, which is checked once when the tree is serialized (add_* on a null
// parent or child is a no-op that marks the tree broken).
struct jb {
    bool oom;
};

static json_object *jadd(jb *b, json_object *parent, const char *key, json_object *v)
{
    if (!v || !parent) {
        json_object_put(v);
        b->oom = true;
        return nullptr;
    }
    if (json_object_is_type(parent, json_type_array) ? json_object_array_add(parent, v) != 0
                                                     : json_object_object_add(parent, key, v) != 0) {
        json_object_put(v);
        b->oom = true;
        return nullptr;
    }
    return v;
}
static json_object *jstr(jb *b, json_object *p, const char *k, const char *s)
{
    return jadd(b, p, k, json_object_new_string(s ? s : ""));
}
static json_object *jint(jb *b, json_object *p, const char *k, int64_t v)
{
    return jadd(b, p, k, json_object_new_int64(v));
}
static json_object *jbool(jb *b, json_object *p, const char *k, bool v)
{
    return jadd(b, p, k, json_object_new_boolean(v));
}
static json_object *jobj(jb *b, json_object *p, const char *k)
{
    return jadd(b, p, k, json_object_new_object());
}
static json_object *jarr(jb *b, json_object *p, const char *k)
{
    return jadd(b, p, k, json_object_new_array());
}
// Adds a new reference to an existing object.
static json_object *jref(jb *b, json_object *p, const char *k, json_object *v)
{
    return jadd(b, p, k, json_object_get(v));
}
static void jstrs(jb *b, json_object *p, const char *k, const char *const *list)
{
    json_object *a = jarr(b, p, k);
    for (; *list; list++)
        jstr(b, a, nullptr, *list);
}

static void resp_raw(kx_api_response *resp, int code, const char *ct, const char *body, size_t len)
{
    resp->status = code;
    resp->content_type = ct;
    resp->body = (char *)malloc(len + 1);
    resp->body_len = 0;
    if (!resp->body) {
        resp->status = code >= 400 ? code : 500;
        return;
    }
    memcpy(resp->body, body, len);
    resp->body[len] = 0;
    resp->body_len = len;
}

// Serializes and releases `o` (may be null after an allocation failure).
static int resp_json(kx_api_response *resp, int code, json_object *o, const jb *b)
{
    size_t len = 0;
    const char *s = (o && !b->oom) ? json_object_to_json_string_length(o, kJsonFlags, &len) : nullptr;
    if (!s) {
        json_object_put(o);
        resp->status = 500;
        resp->content_type = kJson;
        resp->body = nullptr;
        resp->body_len = 0;
        return -ENOMEM;
    }
    resp_raw(resp, code, kJson, s, len);
    json_object_put(o);
    return resp->body ? 0 : -ENOMEM;
}

static int resp_text(kx_api_response *resp, int code, const char *text)
{
    resp_raw(resp, code, kText, text, strlen(text));
    return resp->body ? 0 : -ENOMEM;
}

// Status with optional details; with_empty_details adds "details":{} as the
// upstream 404 for unknown paths does.
static int status_full(kx_api_response *resp, int code, const char *reason, const char *message,
                       const char *dname, const char *dkind, const char *cause, bool empty_details)
{
    jb b{};
    json_object *o = json_object_new_object();
    jstr(&b, o, "kind", "Status");
    jstr(&b, o, "apiVersion", "v1");
    jobj(&b, o, "metadata");
    jstr(&b, o, "status", "Failure");
    jstr(&b, o, "message", message);
    jstr(&b, o, "reason", reason);
    if (dname || dkind || cause || empty_details) {
        json_object *d = jobj(&b, o, "details");
        if (dname)
            jstr(&b, d, "name", dname);
        if (dkind)
            jstr(&b, d, "kind", dkind);
        if (cause) {
            json_object *c = jobj(&b, jarr(&b, d, "causes"), nullptr);
            jstr(&b, c, "message", cause);
        }
    }
    jint(&b, o, "code", code);
    return resp_json(resp, code, o, &b);
}

void kx_api_status(kx_api_response *resp, int code, const char *reason, const char *message,
                   const char *details_name, const char *details_kind)
{
    (void)status_full(resp, code, reason ? reason : "", message ? message : "", details_name,
                      details_kind, nullptr, false);
}

static int st_unauthorized(kx_api_response *resp)
{
    return status_full(resp, 401, "Unauthorized", "Unauthorized", nullptr, nullptr, nullptr, false);
}

static int st_not_found_path(kx_api_response *resp)
{
    return status_full(resp, 404, "NotFound", "the server could not find the requested resource",
                       nullptr, nullptr, nullptr, true);
}

static int st_bad_request(kx_api_response *resp, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return status_full(resp, 400, "BadRequest", msg, nullptr, nullptr, nullptr, false);
}

static int st_internal(kx_api_response *resp, const char *fmt, ...)
{
    char cause[768], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cause, sizeof cause, fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof msg, "Internal error occurred: %s", cause);
    return status_full(resp, 500, "InternalError", msg, nullptr, nullptr, cause, false);
}

static int st_method(kx_api_response *resp)
{
    return status_full(resp, 405, "MethodNotAllowed",
                       "the server does not allow this method on the requested resource", nullptr,
                       nullptr, nullptr, false);
}

// `<resource> "<name>" not found`, details {name, kind: resource}.
static int st_obj_not_found(kx_api_response *resp, const char *resource, const char *name)
{
    char msg[600];
    snprintf(msg, sizeof msg, "%s \"%s\" not found", resource, name);
    return status_full(resp, 404, "NotFound", msg, name, resource, nullptr, false);
}

// The upstream RBAC denial message. name may be null (lists, creates); ns null
// means cluster scope.
static int st_forbidden(kx_api_response *resp, const kx_api_user *u, const char *verb,
                        const char *resource, const char *sub, const char *name, const char *ns)
{
    char msg[1400], res[128], who[300];
    snprintf(res, sizeof res, "%s%s%s", resource, sub ? "/" : "", sub ? sub : "");
    if (name)
        snprintf(who, sizeof who, "%s \"%s\"", resource, name);
    else
        snprintf(who, sizeof who, "%s", resource);
    int n = snprintf(msg, sizeof msg,
                     "%s is forbidden: User \"%s\" cannot %s resource \"%s\" in API group \"\"", who,
                     u ? u->name : "", verb, res);
    if (n > 0 && (size_t)n < sizeof msg) {
        if (ns)
            snprintf(msg + n, sizeof msg - (size_t)n, " in the namespace \"%s\"", ns);
        else
            snprintf(msg + n, sizeof msg - (size_t)n, " at the cluster scope");
    }
    return status_full(resp, 403, "Forbidden", msg, name, resource, nullptr, false);
}

// Parses a whole body as one JSON value (null on any error).
static json_object *parse_body(const uint8_t *body, size_t len)
{
    if (!body || len == 0 || len > KX_API_MAX_BODY)
        return nullptr;
    json_tokener *tok = json_tokener_new_ex(kJsonDepth);
    if (!tok)
        return nullptr;
    json_object *o = json_tokener_parse_ex(tok, (const char *)body, (int)len);
    if (o) {
        // Only whitespace may follow the value.
        size_t used = json_tokener_get_parse_end(tok);
        for (size_t i = used; i < len; i++)
            if (body[i] != ' ' && body[i] != '\n' && body[i] != '\r' && body[i] != '\t') {
                json_object_put(o);
                o = nullptr;
                break;
            }
    }
    json_tokener_free(tok);
    return o;
}

// ---------------------------------------------------------------------------
// Construction and authentication

static int load_tokens(kx_api *a, char *err, size_t errlen)
{
    char *text = nullptr;
    int rc = kx_pki_read_file(a->paths.tokens_csv, &text);
    if (rc == -ENOENT)
        return 0;  // the file is optional
    if (rc)
        return fail(err, errlen, "read %s: %s", a->paths.tokens_csv, strerror(-rc));
    a->tokens = (static_token *)calloc(kMaxTokens, sizeof *a->tokens);
    if (!a->tokens) {
        free(text);
        return fail(err, errlen, "out of memory");
    }
    int lineno = 0;
    rc = 0;
    for (char *save = nullptr, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(nullptr, "\n", &save)) {
        lineno++;
        trim(line);
        if (!*line || *line == '#')
            continue;
        if (a->n_tokens >= kMaxTokens) {
            rc = fail(err, errlen, "%s: more than %d tokens", a->paths.tokens_csv, kMaxTokens);
            break;
        }
        // token,user,uid[,"group1,group2"]: the groups field may be quoted
        // because it holds commas.
        char *f[3];
        char *p = line;
        int nf = 0;
        for (; nf < 3 && p; nf++) {
            f[nf] = p;
            p = strchr(p, ',');
            if (p)
                *p++ = 0;
        }
        char *groups = p ? p : (char *)"";
        trim(groups);
        size_t gl = strlen(groups);
        if (gl >= 2 && groups[0] == '"' && groups[gl - 1] == '"') {
            groups[gl - 1] = 0;
            groups++;
        }
        if (nf < 2) {
            rc = fail(err, errlen, "%s:%d: want token,user,uid[,groups]", a->paths.tokens_csv, lineno);
            break;
        }
        trim(f[0]);
        trim(f[1]);
        static_token *t = &a->tokens[a->n_tokens];
        if (!*f[0] || !*f[1] || kx_strlcpy(t->token, f[0], sizeof t->token) ||
            kx_strlcpy(t->user, f[1], sizeof t->user) ||
            kx_strlcpy(t->groups, groups, sizeof t->groups)) {
            rc = fail(err, errlen, "%s:%d: empty or too long field", a->paths.tokens_csv, lineno);
            break;
        }
        a->n_tokens++;
    }
    free(text);
    return rc;
}

kx_api *kx_api_new(const kx_bootstrap_paths *p, const kx_api_config *cfg, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!p) {
        fail(err, errlen, "no paths");
        return nullptr;
    }
    kx_api *a = (kx_api *)calloc(1, sizeof *a);
    if (!a) {
        fail(err, errlen, "out of memory");
        return nullptr;
    }
    a->paths = *p;
    int grace = cfg && cfg->node_grace_seconds > 0 ? cfg->node_grace_seconds : 40;
    a->grace_ms = (uint64_t)grace * 1000;
    if (cfg && cfg->advertise_address)
        kx_strlcpy(a->advertise, cfg->advertise_address, sizeof a->advertise);
    char *tok = nullptr;
    int rc;
    if ((rc = kx_pki_read_file(p->ca_crt, &a->ca_crt)) != 0) {
        fail(err, errlen, "read %s: %s", p->ca_crt, strerror(-rc));
    } else if ((rc = kx_pki_read_file(p->ca_key, &a->ca_key)) != 0) {
        fail(err, errlen, "read %s: %s", p->ca_key, strerror(-rc));
    } else if ((rc = kx_pki_read_file(p->node_token, &tok)) != 0) {
        fail(err, errlen, "read %s: %s", p->node_token, strerror(-rc));
    } else {
        trim(tok);
        if (!*tok || kx_strlcpy(a->node_token, tok, sizeof a->node_token) != 0)
            rc = fail(err, errlen, "%s: empty or too long", p->node_token);
        else
            rc = load_tokens(a, err, errlen);
    }
    free(tok);
    if (rc) {
        kx_api_free(a);
        return nullptr;
    }
    return a;
}

void kx_api_free(kx_api *a)
{
    if (!a)
        return;
    kx_registry_fini(&a->reg);
    if (a->ca_key)
        memset(a->ca_key, 0, strlen(a->ca_key));
    free(a->ca_crt);
    free(a->ca_key);
    free(a->tokens);
    memset(a, 0, sizeof *a);
    free(a);
}

void kx_api_authenticate(kx_api *a, const char *cn, const char *orgs, const char *authorization,
                         kx_api_user *out)
{
    memset(out, 0, sizeof *out);
    if (cn && *cn) {
        if (kx_strlcpy(out->name, cn, sizeof out->name) == 0 &&
            kx_strlcpy(out->groups, orgs ? orgs : "", sizeof out->groups) == 0) {
            out->authenticated = true;
            return;
        }
        memset(out, 0, sizeof *out);
    }
    if (!a || !authorization)
        return;
    const char *p = authorization;
    while (*p == ' ')
        p++;
    if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
        return;
    p += 6;
    while (*p == ' ' || *p == '\t')
        p++;
    char tok[512];
    if (kx_strlcpy(tok, p, sizeof tok) != 0)
        return;
    trim(tok);
    if (!*tok)
        return;
    if (secret_eq(tok, a->node_token)) {
        kx_strlcpy(out->name, "kubexec:join", sizeof out->name);
        out->join_token = true;
        return;
    }
    for (int i = 0; i < a->n_tokens; i++)
        if (secret_eq(tok, a->tokens[i].token)) {
            kx_strlcpy(out->name, a->tokens[i].user, sizeof out->name);
            kx_strlcpy(out->groups, a->tokens[i].groups, sizeof out->groups);
            out->authenticated = true;
            return;
        }
}

// ---------------------------------------------------------------------------
// Authorization

static bool in_group(const kx_api_user *u, const char *g)
{
    size_t gl = strlen(g);
    for (const char *p = u->groups; *p;) {
        while (*p == ' ')
            p++;
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        while (l && p[l - 1] == ' ')
            l--;
        if (l == gl && strncmp(p, g, gl) == 0)
            return true;
        if (!e)
            break;
        p = e + 1;
    }
    return false;
}

static bool is_master(const kx_api_user *u)
{
    return u && u->authenticated && in_group(u, "system:masters");
}

// True when u is the node `name` itself (client cert CN system:node:<name>).
static bool is_node(const kx_api_user *u, const char *name)
{
    return u && u->authenticated && strncmp(u->name, "system:node:", 12) == 0 &&
           strcmp(u->name + 12, name) == 0;
}

// ---------------------------------------------------------------------------
// Rendering

// Upstream's duration.HumanDuration, the AGE column.
static void human_age(uint64_t now_ms, uint64_t then_ms, char *out, size_t cap)
{
    if (then_ms > now_ms + 1000) {
        snprintf(out, cap, "<invalid>");
        return;
    }
    uint64_t s = now_ms > then_ms ? (now_ms - then_ms) / 1000 : 0;
    uint64_t m = s / 60, h = s / 3600, d = h / 24;
    if (s < 120)
        snprintf(out, cap, "%llus", (unsigned long long)s);
    else if (m < 10)
        s % 60 ? snprintf(out, cap, "%llum%llus", (unsigned long long)m, (unsigned long long)(s % 60))
               : snprintf(out, cap, "%llum", (unsigned long long)m);
    else if (m < 180)
        snprintf(out, cap, "%llum", (unsigned long long)m);
    else if (h < 8)
        m % 60 ? snprintf(out, cap, "%lluh%llum", (unsigned long long)h, (unsigned long long)(m % 60))
               : snprintf(out, cap, "%lluh", (unsigned long long)h);
    else if (h < 48)
        snprintf(out, cap, "%lluh", (unsigned long long)h);
    else if (h < 24 * 8)
        h % 24 ? snprintf(out, cap, "%llud%lluh", (unsigned long long)d, (unsigned long long)(h % 24))
               : snprintf(out, cap, "%llud", (unsigned long long)d);
    else if (h < 24 * 365 * 2)
        snprintf(out, cap, "%llud", (unsigned long long)d);
    else if (h < 24 * 365 * 8)
        d % 365 ? snprintf(out, cap, "%lluy%llud", (unsigned long long)(d / 365), (unsigned long long)(d % 365))
                : snprintf(out, cap, "%lluy", (unsigned long long)(d / 365));
    else
        snprintf(out, cap, "%lluy", (unsigned long long)(d / 365));
}

static void column(jb *b, json_object *cols, const char *name, const char *type, const char *format,
                   const char *desc, int priority)
{
    json_object *c = jobj(b, cols, nullptr);
    jstr(b, c, "name", name);
    jstr(b, c, "type", type);
    jstr(b, c, "format", format);
    jstr(b, c, "description", desc);
    jint(b, c, "priority", priority);
}

static json_object *table_new(jb *b, uint64_t rv, json_object **cols, json_object **rows)
{
    json_object *t = json_object_new_object();
    jstr(b, t, "kind", "Table");
    jstr(b, t, "apiVersion", "meta.k8s.io/v1");
    char v[24];
    snprintf(v, sizeof v, "%llu", (unsigned long long)rv);
    jstr(b, jobj(b, t, "metadata"), "resourceVersion", v);
    *cols = jarr(b, t, "columnDefinitions");
    *rows = jarr(b, t, "rows");
    return t;
}

// A row whose object is the PartialObjectMetadata kubectl reads NAMESPACE
// and names from.
static json_object *table_row(jb *b, json_object *rows, json_object *obj, json_object **cells)
{
    json_object *r = jobj(b, rows, nullptr);
    *cells = jarr(b, r, "cells");
    json_object *o = jobj(b, r, "object");
    jstr(b, o, "kind", "PartialObjectMetadata");
    jstr(b, o, "apiVersion", "meta.k8s.io/v1");
    json_object *meta = get_obj(obj, "metadata");
    if (meta)
        jref(b, o, "metadata", meta);
    else
        jobj(b, o, "metadata");
    return r;
}

static const char *pod_status_reason(json_object *pod, char *buf, size_t cap)
{
    json_object *st = get_obj(pod, "status");
    const char *reason = get_str(st, "phase");
    if (!reason)
        reason = "Pending";
    if (get_str(st, "reason") && *get_str(st, "reason"))
        reason = get_str(st, "reason");
    if (reason && strcmp(reason, "Unknown") != 0) {
        json_object *cs = get_arr(st, "containerStatuses");
        size_t n = cs ? json_object_array_length(cs) : 0;
        // Upstream walks the statuses backwards so the first container wins.
        for (size_t i = n; i-- > 0;) {
            json_object *state = get_obj(json_object_array_get_idx(cs, i), "state");
            json_object *w = get_obj(state, "waiting"), *t = get_obj(state, "terminated");
            if (w && get_str(w, "reason") && *get_str(w, "reason")) {
                reason = get_str(w, "reason");
            } else if (t && get_str(t, "reason") && *get_str(t, "reason")) {
                reason = get_str(t, "reason");
            } else if (t) {
                json_object *sig, *code;
                if (json_object_object_get_ex(t, "signal", &sig) && json_object_get_int(sig) != 0)
                    snprintf(buf, cap, "Signal:%d", json_object_get_int(sig));
                else if (json_object_object_get_ex(t, "exitCode", &code))
                    snprintf(buf, cap, "ExitCode:%d", json_object_get_int(code));
                else
                    snprintf(buf, cap, "Terminated");
                reason = buf;
            }
        }
    }
    if (get_str(get_obj(pod, "metadata"), "deletionTimestamp") && strcmp(reason, "Unknown") != 0)
        reason = "Terminating";
    return reason;
}

static void pod_row(jb *b, json_object *rows, const kx_reg_pod *p, uint64_t now_ms)
{
    json_object *cells;
    table_row(b, rows, p->obj, &cells);
    json_object *st = get_obj(p->obj, "status");
    json_object *ctrs = get_arr(get_obj(p->obj, "spec"), "containers");
    json_object *cs = get_arr(st, "containerStatuses");
    int total = ctrs ? (int)json_object_array_length(ctrs) : 0, ready = 0;
    int64_t restarts = 0;
    for (size_t i = 0; cs && i < json_object_array_length(cs); i++) {
        json_object *c = json_object_array_get_idx(cs, i), *v;
        if (json_object_object_get_ex(c, "ready", &v) && json_object_get_boolean(v))
            ready++;
        if (json_object_object_get_ex(c, "restartCount", &v))
            restarts += json_object_get_int64(v);
    }
    if (strcmp(get_str(st, "phase") ? get_str(st, "phase") : "", "Unknown") == 0)
        ready = 0;
    char rd[32], age[32], buf[32];
    snprintf(rd, sizeof rd, "%d/%d", ready, total);
    human_age(now_ms, p->created_ms, age, sizeof age);
    jstr(b, cells, nullptr, p->name);
    jstr(b, cells, nullptr, rd);
    jstr(b, cells, nullptr, pod_status_reason(p->obj, buf, sizeof buf));
    jint(b, cells, nullptr, restarts);
    jstr(b, cells, nullptr, age);
    const char *ip = get_str(st, "podIP");
    jstr(b, cells, nullptr, ip && *ip ? ip : "<none>");
    jstr(b, cells, nullptr, p->node);
    jstr(b, cells, nullptr, "<none>");
    jstr(b, cells, nullptr, "<none>");
}

static const char *node_address(json_object *node, const char *type)
{
    json_object *addrs = get_arr(get_obj(node, "status"), "addresses");
    for (size_t i = 0; addrs && i < json_object_array_length(addrs); i++) {
        json_object *e = json_object_array_get_idx(addrs, i);
        const char *t = get_str(e, "type"), *v = get_str(e, "address");
        if (t && v && *v && strcmp(t, type) == 0)
            return v;
    }
    return nullptr;
}

// "True", "False", "Unknown" or null when the node reported no Ready condition.
static const char *node_ready(json_object *node)
{
    json_object *conds = get_arr(get_obj(node, "status"), "conditions");
    for (size_t i = 0; conds && i < json_object_array_length(conds); i++) {
        json_object *c = json_object_array_get_idx(conds, i);
        const char *t = get_str(c, "type");
        if (t && strcmp(t, "Ready") == 0)
            return get_str(c, "status") ? get_str(c, "status") : "Unknown";
    }
    return nullptr;
}

static void node_row(jb *b, json_object *rows, const kx_reg_node *n, uint64_t now_ms)
{
    json_object *cells;
    table_row(b, rows, n->obj, &cells);
    const char *r = node_ready(n->obj);
    char status[64];
    snprintf(status, sizeof status, "%s", !r ? "Unknown" : strcmp(r, "True") == 0 ? "Ready" : "NotReady");
    json_object *spec = get_obj(n->obj, "spec"), *v;
    if (spec && json_object_object_get_ex(spec, "unschedulable", &v) && json_object_get_boolean(v))
        strncat(status, ",SchedulingDisabled", sizeof status - strlen(status) - 1);
    // ROLES from node-role.kubernetes.io/<role> labels (and kubernetes.io/role).
    char roles[512] = "";
    json_object *labels = get_obj(get_obj(n->obj, "metadata"), "labels");
    if (labels) {
        json_object_object_foreach(labels, key, val)
        {
            const char *role = nullptr;
            if (strncmp(key, "node-role.kubernetes.io/", 24) == 0 && key[24])
                role = key + 24;
            else if (strcmp(key, "kubernetes.io/role") == 0 && json_object_is_type(val, json_type_string))
                role = json_object_get_string(val);
            if (role && strlen(roles) + strlen(role) + 2 < sizeof roles) {
                if (*roles)
                    strcat(roles, ",");
                strcat(roles, role);
            }
        }
    }
    char age[32];
    human_age(now_ms, n->created_ms, age, sizeof age);
    json_object *info = get_obj(get_obj(n->obj, "status"), "nodeInfo");
    const char *iip = node_address(n->obj, "InternalIP"), *eip = node_address(n->obj, "ExternalIP");
    const char *f[] = {get_str(info, "kubeletVersion"), get_str(info, "osImage"),
                       get_str(info, "kernelVersion"), get_str(info, "containerRuntimeVersion")};
    jstr(b, cells, nullptr, n->name);
    jstr(b, cells, nullptr, status);
    jstr(b, cells, nullptr, *roles ? roles : "<none>");
    jstr(b, cells, nullptr, age);
    jstr(b, cells, nullptr, f[0] ? f[0] : "");
    jstr(b, cells, nullptr, iip ? iip : "<none>");
    jstr(b, cells, nullptr, eip ? eip : "<none>");
    jstr(b, cells, nullptr, f[1] && *f[1] ? f[1] : "<unknown>");
    jstr(b, cells, nullptr, f[2] && *f[2] ? f[2] : "<unknown>");
    jstr(b, cells, nullptr, f[3] && *f[3] ? f[3] : "<unknown>");
}

static bool wants_table(const kx_api_request *req)
{
    return req->accept && strstr(req->accept, "as=Table");
}

// fieldSelector terms we understand; anything else is a 400 as upstream.
struct pod_filter {
    char node[KX_REG_NAME_MAX + 1];
    char name[KX_REG_NAME_MAX + 1];
    char ns[KX_REG_NAME_MAX + 1];
    bool has_node, has_name, has_ns;
};

static int parse_field_selector(const char *query, pod_filter *f, char *why, size_t whylen)
{
    memset(f, 0, sizeof *f);
    char sel[1024];
    if (!query_get(query, "fieldSelector", sel, sizeof sel))
        return 0;
    for (char *save = nullptr, *term = strtok_r(sel, ",", &save); term;
         term = strtok_r(nullptr, ",", &save)) {
        char *eq = strchr(term, '=');
        if (!eq || eq == term || eq[-1] == '!') {
            snprintf(why, whylen, "unsupported field selector term \"%s\": only = and == are supported", term);
            return -EINVAL;
        }
        *eq = 0;
        const char *val = eq[1] == '=' ? eq + 2 : eq + 1;
        char *dst;
        bool *has;
        if (strcmp(term, "spec.nodeName") == 0)
            dst = f->node, has = &f->has_node;
        else if (strcmp(term, "metadata.name") == 0)
            dst = f->name, has = &f->has_name;
        else if (strcmp(term, "metadata.namespace") == 0)
            dst = f->ns, has = &f->has_ns;
        else {
            snprintf(why, whylen, "\"%s\" is not a known field selector: only \"metadata.name\", "
                                  "\"metadata.namespace\", \"spec.nodeName\"", term);
            return -EINVAL;
        }
        if (kx_strlcpy(dst, val, KX_REG_NAME_MAX + 1) != 0) {
            snprintf(why, whylen, "field selector value too long");
            return -EINVAL;
        }
        *has = true;
    }
    return 0;
}

// ?labelSelector=: *out is null when there is none (everything matches),
// else a parsed selector the caller frees. Returns false, or true when it
// answered instead (400 with upstream's words for a bad selector, 500 out of
// memory; *rc is then what the handler returns).
static bool label_selector(const kx_api_request *req, kx_lsel **out, kx_api_response *resp,
                           int *rc)
{
    *out = nullptr;
    if (!req->query)
        return false;
    // A value is never longer than the query that carries it. The parsed
    // selector (~40 KiB) is allocated only when there is one to parse.
    size_t cap = strlen(req->query) + 1;
    char *text = static_cast<char *>(malloc(cap));
    kx_lsel *sel = nullptr;
    bool answered = false;
    char why[600];
    if (!text) {
        *rc = st_internal(resp, "out of memory");
        answered = true;
    } else if (query_get(req->query, "labelSelector", text, cap) && text[0]) {
        sel = static_cast<kx_lsel *>(malloc(sizeof *sel));
        if (!sel) {
            *rc = st_internal(resp, "out of memory");
            answered = true;
        } else if (kx_lsel_parse(text, sel, why, sizeof why) < 0) {
            *rc = st_bad_request(resp, "%s", why);
            answered = true;
        } else if (sel->n) {
            *out = sel;
        }
    }
    if (!*out)
        free(sel);
    free(text);
    return answered;
}

static bool labels_match(const kx_lsel *sel, json_object *obj)
{
    return !sel || kx_lsel_match(sel, get_obj(get_obj(obj, "metadata"), "labels"));
}

static bool pod_matches(const kx_reg_pod *p, const char *ns, const pod_filter *f)
{
    return (!ns || strcmp(p->ns, ns) == 0) && (!f->has_ns || strcmp(p->ns, f->ns) == 0) &&
           (!f->has_name || strcmp(p->name, f->name) == 0) &&
           (!f->has_node || strcmp(p->node, f->node) == 0);
}

static void list_meta(jb *b, json_object *o, uint64_t rv)
{
    char v[24];
    snprintf(v, sizeof v, "%llu", (unsigned long long)rv);
    jstr(b, jobj(b, o, "metadata"), "resourceVersion", v);
}

// ---------------------------------------------------------------------------
// Handlers

static int h_version(kx_api_response *resp)
{
#if defined(__x86_64__)
    const char *platform = "linux/amd64";
#elif defined(__aarch64__)
    const char *platform = "linux/arm64";
#elif defined(__arm__)
    const char *platform = "linux/arm";
#else
    const char *platform = "linux/unknown";
#endif
    jb b{};
    json_object *o = json_object_new_object();
    jstr(&b, o, "major", "1");
    // Minor 33 makes gcloud's kubectl dispatcher run kubectl 1.33 (clients.md §0.1).
    jstr(&b, o, "minor", "33");
    jstr(&b, o, "gitVersion", "v1.33.0+kubexec");
    jstr(&b, o, "gitCommit", "");
    jstr(&b, o, "gitTreeState", "clean");
    jstr(&b, o, "buildDate", "2025-01-01T00:00:00Z");
    jstr(&b, o, "goVersion", "none");
    jstr(&b, o, "compiler", "gcc");
    jstr(&b, o, "platform", platform);
    return resp_json(resp, 200, o, &b);
}

// Legacy discovery only: aggregated discovery would break kubectl 1.20, so
// the Accept header is ignored on purpose (clients.md §0.13).
static int h_api(kx_api *a, kx_api_response *resp)
{
    jb b{};
    json_object *o = json_object_new_object();
    jstr(&b, o, "kind", "APIVersions");
    const char *v1[] = {"v1", nullptr};
    jstrs(&b, o, "versions", v1);
    if (a->advertise[0]) {
        json_object *e = jobj(&b, jarr(&b, o, "serverAddressByClientCIDRs"), nullptr);
        jstr(&b, e, "clientCIDR", "0.0.0.0/0");
        jstr(&b, e, "serverAddress", a->advertise);
    }
    return resp_json(resp, 200, o, &b);
}

static int h_apis(kx_api_response *resp)
{
    jb b{};
    json_object *o = json_object_new_object();
    jstr(&b, o, "kind", "APIGroupList");
    jstr(&b, o, "apiVersion", "v1");
    jarr(&b, o, "groups");
    return resp_json(resp, 200, o, &b);
}

static void resource(jb *b, json_object *list, const char *name, const char *singular, bool namespaced,
                     const char *kind, const char *const *verbs, const char *const *short_names)
{
    json_object *r = jobj(b, list, nullptr);
    jstr(b, r, "name", name);
    jstr(b, r, "singularName", singular);
    jbool(b, r, "namespaced", namespaced);
    jstr(b, r, "kind", kind);
    jstrs(b, r, "verbs", verbs);
    if (short_names)
        jstrs(b, r, "shortNames", short_names);
}

static int h_api_v1(kx_api_response *resp)
{
    static const char *const get_list[] = {"get", "list", nullptr};
    static const char *const get_list_watch[] = {"get", "list", "watch", nullptr};
    static const char *const node_verbs[] = {"create", "get", "list", nullptr};
    static const char *const create_get[] = {"create", "get", nullptr};
    static const char *const get[] = {"get", nullptr};
    static const char *const get_update[] = {"get", "update", nullptr};
    static const char *const ns_short[] = {"ns", nullptr};
    static const char *const no_short[] = {"no", nullptr};
    static const char *const po_short[] = {"po", nullptr};
    jb b{};
    json_object *o = json_object_new_object();
    jstr(&b, o, "kind", "APIResourceList");
    jstr(&b, o, "groupVersion", "v1");
    json_object *r = jarr(&b, o, "resources");
    resource(&b, r, "namespaces", "namespace", false, "Namespace", get_list, ns_short);
    resource(&b, r, "nodes", "node", false, "Node", node_verbs, no_short);
    resource(&b, r, "nodes/status", "", false, "Node", get_update, nullptr);
    resource(&b, r, "pods", "pod", true, "Pod", get_list_watch, po_short);
    resource(&b, r, "pods/attach", "", true, "PodAttachOptions", create_get, nullptr);
    resource(&b, r, "pods/exec", "", true, "PodExecOptions", create_get, nullptr);
    resource(&b, r, "pods/log", "", true, "Pod", get, nullptr);
    resource(&b, r, "pods/portforward", "", true, "PodPortForwardOptions", create_get, nullptr);
    resource(&b, r, "pods/status", "", true, "Pod", get, nullptr);
    return resp_json(resp, 200, o, &b);
}

static int h_pods_list(kx_api *a, const kx_api_request *req, const char *ns, uint64_t now_ms,
                       kx_api_response *resp)
{
    pod_filter f;
    char why[512];
    if (parse_field_selector(req->query, &f, why, sizeof why))
        return st_bad_request(resp, "%s", why);
    kx_lsel *sel;
    int rc;
    if (label_selector(req, &sel, resp, &rc))
        return rc;
    jb b{};
    json_object *o;
    if (wants_table(req)) {
        json_object *cols, *rows;
        o = table_new(&b, a->reg.rv, &cols, &rows);
        column(&b, cols, "Name", "string", "name",
               "Name must be unique within a namespace. Is required when creating resources, although some "
               "resources may allow a client to request the generation of an appropriate name automatically.",
               0);
        column(&b, cols, "Ready", "string", "", "The aggregate readiness state of this pod for accepting traffic.", 0);
        column(&b, cols, "Status", "string", "", "The aggregate status of the containers in this pod.", 0);
        column(&b, cols, "Restarts", "integer", "", "The number of times the containers in this pod have been restarted.", 0);
        column(&b, cols, "Age", "string", "", "CreationTimestamp is a timestamp representing the server time when this object was created.", 0);
        column(&b, cols, "IP", "string", "", "IP address allocated to the pod.", 1);
        column(&b, cols, "Node", "string", "", "NodeName is a request to schedule this pod onto a specific node.", 1);
        column(&b, cols, "Nominated Node", "string", "", "nominatedNodeName is set only when this pod preempts other pods on the node.", 1);
        column(&b, cols, "Readiness Gates", "string", "", "If specified, all readiness gates will be evaluated for pod readiness.", 1);
        for (size_t i = 0; i < a->reg.n_pods && !b.oom; i++)
            if (pod_matches(&a->reg.pods[i], ns, &f) && labels_match(sel, a->reg.pods[i].obj))
                pod_row(&b, rows, &a->reg.pods[i], now_ms);
    } else {
        o = json_object_new_object();
        jstr(&b, o, "kind", "PodList");
        jstr(&b, o, "apiVersion", "v1");
        list_meta(&b, o, a->reg.rv);
        json_object *items = jarr(&b, o, "items");
        for (size_t i = 0; i < a->reg.n_pods && !b.oom; i++)
            if (pod_matches(&a->reg.pods[i], ns, &f) && labels_match(sel, a->reg.pods[i].obj))
                jref(&b, items, nullptr, a->reg.pods[i].obj);
    }
    free(sel);
    return resp_json(resp, 200, o, &b);
}

static int h_pod_get(kx_api *a, const kx_api_request *req, const char *ns, const char *name,
                     uint64_t now_ms, kx_api_response *resp)
{
    kx_reg_pod *p = kx_registry_pod_find(&a->reg, ns, name);
    if (!p)
        return st_obj_not_found(resp, "pods", name);
    jb b{};
    if (wants_table(req)) {
        json_object *cols, *rows;
        json_object *o = table_new(&b, a->reg.rv, &cols, &rows);
        column(&b, cols, "Name", "string", "name", "Name must be unique within a namespace.", 0);
        column(&b, cols, "Ready", "string", "", "The aggregate readiness state of this pod for accepting traffic.", 0);
        column(&b, cols, "Status", "string", "", "The aggregate status of the containers in this pod.", 0);
        column(&b, cols, "Restarts", "integer", "", "The number of times the containers in this pod have been restarted.", 0);
        column(&b, cols, "Age", "string", "", "CreationTimestamp is a timestamp representing the server time when this object was created.", 0);
        column(&b, cols, "IP", "string", "", "IP address allocated to the pod.", 1);
        column(&b, cols, "Node", "string", "", "NodeName is a request to schedule this pod onto a specific node.", 1);
        column(&b, cols, "Nominated Node", "string", "", "nominatedNodeName is set only when this pod preempts other pods on the node.", 1);
        column(&b, cols, "Readiness Gates", "string", "", "If specified, all readiness gates will be evaluated for pod readiness.", 1);
        pod_row(&b, rows, p, now_ms);
        return resp_json(resp, 200, o, &b);
    }
    return resp_json(resp, 200, json_object_get(p->obj), &b);
}

static void node_columns(jb *b, json_object *cols)
{
    column(b, cols, "Name", "string", "name", "Name must be unique within a namespace.", 0);
    column(b, cols, "Status", "string", "", "The status of the node", 0);
    column(b, cols, "Roles", "string", "", "The roles of the node", 0);
    column(b, cols, "Age", "string", "", "CreationTimestamp is a timestamp representing the server time when this object was created.", 0);
    column(b, cols, "Version", "string", "", "Kubelet Version reported by the node.", 0);
    column(b, cols, "Internal-IP", "string", "", "List of addresses reachable to the node.", 1);
    column(b, cols, "External-IP", "string", "", "List of addresses reachable to the node.", 1);
    column(b, cols, "OS-Image", "string", "", "OS Image reported by the node from /etc/os-release.", 1);
    column(b, cols, "Kernel-Version", "string", "", "Kernel Version reported by the node.", 1);
    column(b, cols, "Container-Runtime", "string", "", "Container Runtime Version reported by the node.", 1);
}

static int h_nodes(kx_api *a, const kx_api_request *req, const char *name, uint64_t now_ms,
                   kx_api_response *resp)
{
    kx_reg_node *one = nullptr;
    if (name && !(one = kx_registry_node_find(&a->reg, name)))
        return st_obj_not_found(resp, "nodes", name);
    kx_lsel *sel = nullptr;
    int rc;
    if (!one && label_selector(req, &sel, resp, &rc))
        return rc;
    jb b{};
    json_object *o;
    if (wants_table(req)) {
        json_object *cols, *rows;
        o = table_new(&b, a->reg.rv, &cols, &rows);
        node_columns(&b, cols);
        for (size_t i = 0; i < a->reg.n_nodes && !b.oom; i++)
            if ((!one || one == &a->reg.nodes[i]) && labels_match(sel, a->reg.nodes[i].obj))
                node_row(&b, rows, &a->reg.nodes[i], now_ms);
    } else if (one) {
        o = json_object_get(one->obj);
    } else {
        o = json_object_new_object();
        jstr(&b, o, "kind", "NodeList");
        jstr(&b, o, "apiVersion", "v1");
        list_meta(&b, o, a->reg.rv);
        json_object *items = jarr(&b, o, "items");
        for (size_t i = 0; i < a->reg.n_nodes && !b.oom; i++)
            if (labels_match(sel, a->reg.nodes[i].obj))
                jref(&b, items, nullptr, a->reg.nodes[i].obj);
    }
    free(sel);
    return resp_json(resp, 200, o, &b);
}

// Namespaces are not stored: "default", "kube-system" and every namespace a
// pod lives in exist, all Active.
static int h_namespaces(kx_api *a, const kx_api_request *req, const char *name, uint64_t now_ms,
                        kx_api_response *resp)
{
    // Collect distinct names (pods are sorted by namespace).
    const char *fixed[] = {"default", "kube-system"};
    size_t cap = a->reg.n_pods + 2, n = 0;
    const char **names = (const char **)calloc(cap, sizeof *names);
    if (!names)
        return st_internal(resp, "out of memory");
    for (int i = 0; i < 2; i++)
        names[n++] = fixed[i];
    for (size_t i = 0; i < a->reg.n_pods; i++) {
        const char *ns = a->reg.pods[i].ns;
        bool dup = false;
        for (size_t j = 0; j < n && !dup; j++)
            dup = strcmp(names[j], ns) == 0;
        if (!dup)
            names[n++] = ns;
    }
    jb b{};
    json_object *o;
    bool table = wants_table(req), found = !name;
    json_object *cols = nullptr, *rows = nullptr, *items = nullptr;
    if (table) {
        o = table_new(&b, a->reg.rv, &cols, &rows);
        column(&b, cols, "Name", "string", "name", "Name must be unique within a namespace.", 0);
        column(&b, cols, "Status", "string", "", "The status of the namespace", 0);
        column(&b, cols, "Age", "string", "", "CreationTimestamp is a timestamp representing the server time when this object was created.", 0);
    } else if (!name) {
        o = json_object_new_object();
        jstr(&b, o, "kind", "NamespaceList");
        jstr(&b, o, "apiVersion", "v1");
        list_meta(&b, o, a->reg.rv);
        items = jarr(&b, o, "items");
    } else {
        o = nullptr;
    }
    char created[32];
    kx_registry_time(a->born_ms, created, sizeof created);
    for (size_t i = 0; i < n && !b.oom; i++) {
        if (name && strcmp(name, names[i]) != 0)
            continue;
        found = true;
        json_object *ns = json_object_new_object();
        jstr(&b, ns, "kind", "Namespace");
        jstr(&b, ns, "apiVersion", "v1");
        json_object *meta = jobj(&b, ns, "metadata");
        jstr(&b, meta, "name", names[i]);
        jstr(&b, meta, "creationTimestamp", created);
        jstr(&b, jobj(&b, ns, "status"), "phase", "Active");
        if (table) {
            json_object *cells;
            table_row(&b, rows, ns, &cells);
            jstr(&b, cells, nullptr, names[i]);
            jstr(&b, cells, nullptr, "Active");
            char age[32];
            human_age(now_ms, a->born_ms, age, sizeof age);
            jstr(&b, cells, nullptr, age);
            json_object_put(ns);
        } else if (items) {
            jadd(&b, items, nullptr, ns);
        } else {
            o = ns;
        }
    }
    free(names);
    if (!found) {
        json_object_put(o);
        return st_obj_not_found(resp, "namespaces", name);
    }
    return resp_json(resp, 200, o, &b);
}

// PUT /api/v1/nodes/{name}/status and POST /api/v1/nodes.
static int h_node_write(kx_api *a, const kx_api_request *req, const char *name, uint64_t now_ms,
                        kx_api_response *resp)
{
    bool post = !name;
    json_object *body = parse_body(req->body, req->body_len);
    if (!body || !json_object_is_type(body, json_type_object)) {
        json_object_put(body);
        return st_bad_request(resp, "the request body must be a JSON Node object");
    }
    const char *body_name = get_str(get_obj(body, "metadata"), "name");
    char nm[KX_REG_NAME_MAX + 1];
    if (post && (!body_name || kx_strlcpy(nm, body_name, sizeof nm) != 0 || !kx_registry_valid_name(nm))) {
        json_object_put(body);
        if (!is_master(req->user) && !(req->user && strncmp(req->user->name, "system:node:", 12) == 0))
            return st_forbidden(resp, req->user, "create", "nodes", nullptr, nullptr, nullptr);
        return st_bad_request(resp, "metadata.name must be a DNS-1123 subdomain");
    }
    if (!post)
        kx_strlcpy(nm, name, sizeof nm);
    if (!is_master(req->user) && !is_node(req->user, nm)) {
        json_object_put(body);
        return post ? st_forbidden(resp, req->user, "create", "nodes", nullptr, nullptr, nullptr)
                    : st_forbidden(resp, req->user, "update", "nodes", "status", nm, nullptr);
    }
    if (!post && body_name && strcmp(body_name, nm) != 0) {
        char given[KX_REG_NAME_MAX + 1];
        kx_strlcpy(given, body_name, sizeof given);
        json_object_put(body);
        return st_bad_request(resp, "the name of the object (%s) does not match the name on the URL (%s)",
                              given, nm);
    }
    if (!kx_registry_valid_name(nm)) {
        json_object_put(body);
        return st_bad_request(resp, "invalid node name");
    }
    bool created = false;
    int rc = kx_registry_node_put(&a->reg, nm, body, now_ms, &created);
    if (rc == -EMSGSIZE)
        return st_bad_request(resp, "too many nodes (limit %d)", (int)KX_REG_MAX_NODES);
    if (rc)
        return st_internal(resp, "storing node %s: %s", nm, strerror(-rc));
    kx_reg_node *n = kx_registry_node_find(&a->reg, nm);
    jb b{};
    // A POST for a node that exists updates it (200) instead of upstream's
    // 409, so a restarted node agent simply re-registers.
    return resp_json(resp, post && created ? 201 : 200, json_object_get(n->obj), &b);
}

// PUT /kubexec/v1/nodes/{name}/pods
static int h_node_pods(kx_api *a, const kx_api_request *req, const char *name, uint64_t now_ms,
                       kx_api_response *resp)
{
    if (!is_master(req->user) && !is_node(req->user, name))
        return st_forbidden(resp, req->user, "update", "nodes", "pods", name, nullptr);
    if (!kx_registry_valid_name(name))
        return st_bad_request(resp, "invalid node name");
    json_object *body = parse_body(req->body, req->body_len);
    if (!body)
        return st_bad_request(resp, "the request body must be a JSON array of v1 Pods");
    char why[512];
    int rc = kx_registry_node_pods_put(&a->reg, name, body, now_ms, why, sizeof why);
    json_object_put(body);
    if (rc == -EEXIST)
        return status_full(resp, 409, "Conflict", why, nullptr, nullptr, nullptr, false);
    if (rc == -EINVAL || rc == -EMSGSIZE)
        return st_bad_request(resp, "%s", why);
    if (rc < 0)
        return st_internal(resp, "storing pods: %s", strerror(-rc));
    jb b{};
    json_object *o = json_object_new_object();
    jstr(&b, o, "kind", "Status");
    jstr(&b, o, "apiVersion", "v1");
    jobj(&b, o, "metadata");
    jstr(&b, o, "status", "Success");
    char msg[64];
    snprintf(msg, sizeof msg, "%d pods stored", rc);
    jstr(&b, o, "message", msg);
    jint(&b, o, "code", 200);
    return resp_json(resp, 200, o, &b);
}

// The CSR's subject must be exactly CN=system:node:<name> with at most
// O=system:nodes: kx_pki_sign_csr copies the subject, and an O of the
// node's choosing would become its groups (system:masters!).
static bool csr_subject_ok(const char *csr_pem, const char *cn)
{
    BIO *bio = BIO_new_mem_buf(csr_pem, -1);
    if (!bio)
        return false;
    X509_REQ *req = PEM_read_bio_X509_REQ(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (!req)
        return false;
    bool ok = true, seen_cn = false;
    X509_NAME *subj = X509_REQ_get_subject_name(req);
    int n = subj ? X509_NAME_entry_count(subj) : 0;
    for (int i = 0; i < n && ok; i++) {
        X509_NAME_ENTRY *e = X509_NAME_get_entry(subj, i);
        int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
        ASN1_STRING *d = X509_NAME_ENTRY_get_data(e);
        const char *v = (const char *)ASN1_STRING_get0_data(d);
        size_t vl = (size_t)ASN1_STRING_length(d);
        const char *want = nid == NID_commonName ? cn : nid == NID_organizationName ? "system:nodes" : nullptr;
        ok = want && vl == strlen(want) && memcmp(v, want, vl) == 0 && !(nid == NID_commonName && seen_cn);
        seen_cn |= nid == NID_commonName;
    }
    X509_REQ_free(req);
    return ok && seen_cn;
}

static bool san_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':'))
            return false;
    }
    return true;
}

// POST /kubexec/v1/join: {"nodeName","csr","sans"} → {"certificate","ca"}.
static int h_join(kx_api *a, const kx_api_request *req, kx_api_response *resp)
{
    json_object *body = parse_body(req->body, req->body_len);
    const char *node = get_str(body, "nodeName"), *csr = get_str(body, "csr");
    json_object *sans = nullptr;
    int rc = 0;
    char cn[300], san_buf[kMaxSans * 256 + 1];
    size_t sl = 0;
    if (!node || !csr || !kx_registry_valid_name(node)) {
        rc = st_bad_request(resp, "the join request needs nodeName (a DNS-1123 name) and csr");
        goto out;
    }
    // Joining again with the node's own certificate renews it; the token or
    // an admin may join any name.
    if (!req->user->join_token && !is_master(req->user) && !is_node(req->user, node)) {
        rc = st_forbidden(resp, req->user, "create", "nodes", "join", node, nullptr);
        goto out;
    }
    if (json_object_object_get_ex(body, "sans", &sans) && !json_object_is_type(sans, json_type_null)) {
        if (!json_object_is_type(sans, json_type_array) || json_object_array_length(sans) > kMaxSans) {
            rc = st_bad_request(resp, "sans must be an array of at most %d IP addresses or DNS names", kMaxSans);
            goto out;
        }
        for (size_t i = 0; i < json_object_array_length(sans); i++) {
            json_object *e = json_object_array_get_idx(sans, i);
            const char *s = json_object_is_type(e, json_type_string) ? json_object_get_string(e) : nullptr;
            if (!s || !san_ok(s)) {
                rc = st_bad_request(resp, "sans[%zu] is not an IP address or DNS name", i);
                goto out;
            }
            size_t l = strlen(s);
            memcpy(san_buf + sl, s, l + 1);
            sl += l + 1;
        }
    }
    if (sl == 0) {
        // The certificate also serves the node's :10250; its name is the least it needs.
        size_t l = strlen(node);
        memcpy(san_buf, node, l + 1);
        sl = l + 1;
    }
    san_buf[sl] = 0;
    snprintf(cn, sizeof cn, "system:node:%s", node);
    if (!csr_subject_ok(csr, cn)) {
        rc = st_bad_request(resp, "the CSR must be a PEM certificate request with subject CN=%s (and optionally O=system:nodes)", cn);
        goto out;
    }
    {
        char *cert = nullptr, why[256] = "";
        int prc = kx_pki_sign_csr(a->ca_crt, a->ca_key, csr, cn, san_buf, KX_PKI_SERVER | KX_PKI_CLIENT,
                                  365, &cert, why, sizeof why);
        if (prc == -EINVAL || prc == -EACCES) {
            rc = st_bad_request(resp, "invalid CSR: %s", why[0] ? why : "rejected");
        } else if (prc) {
            rc = st_internal(resp, "signing the node certificate: %s", why[0] ? why : strerror(-prc));
        } else {
            jb b{};
            json_object *o = json_object_new_object();
            jstr(&b, o, "certificate", cert);
            jstr(&b, o, "ca", a->ca_crt);
            rc = resp_json(resp, 200, o, &b);
        }
        free(cert);
    }
out:
    json_object_put(body);
    return rc;
}

// Splits path into at most `max` segments (in place in buf). Returns the
// count, or -1 for empty segments, too many or too long paths.
static int split_path(const char *path, char *buf, size_t cap, char **seg, int max)
{
    if (kx_strlcpy(buf, path, cap) != 0 || buf[0] != '/')
        return -1;
    size_t len = strlen(buf);
    if (len > 1 && buf[len - 1] == '/')
        buf[--len] = 0;  // tolerate one trailing slash
    if (len == 1)
        return 0;
    int n = 0;
    for (char *p = buf + 1;;) {
        if (n == max)
            return -1;
        seg[n++] = p;
        char *s = strchr(p, '/');
        if (!s)
            break;
        *s = 0;
        p = s + 1;
    }
    for (int i = 0; i < n; i++)
        if (!*seg[i])
            return -1;
    return n;
}

static bool eq(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

int kx_api_handle(kx_api *a, const kx_api_request *req, uint64_t now_ms, kx_api_response *resp)
{
    memset(resp, 0, sizeof *resp);
    if (!a->born_ms)
        a->born_ms = now_ms;
    const char *m = req->method ? req->method : "";
    const char *path = req->path ? req->path : "/";
    bool get = eq(m, "GET") || eq(m, "HEAD");

    // Unauthenticated endpoints.
    if (eq(path, "/version") || eq(path, "/version/"))
        return get ? h_version(resp) : st_method(resp);
    if (eq(path, "/healthz") || eq(path, "/readyz") || eq(path, "/livez"))
        return get ? resp_text(resp, 200, "ok") : st_method(resp);
    if (eq(path, "/cacerts")) {
        if (!get)
            return st_method(resp);
        resp_raw(resp, 200, kText, a->ca_crt, strlen(a->ca_crt));
        return resp->body ? 0 : -ENOMEM;
    }

    const kx_api_user *u = req->user;
    if (!u || (!u->authenticated && !u->join_token))
        return st_unauthorized(resp);
    if (eq(path, "/kubexec/v1/join"))
        return eq(m, "POST") ? h_join(a, req, resp) : st_method(resp);
    if (!u->authenticated)
        return st_unauthorized(resp);  // the join token is good for nothing else
    if (req->body_len > KX_API_MAX_BODY)
        return status_full(resp, 413, "RequestEntityTooLarge", "the request body is too large", nullptr,
                           nullptr, nullptr, false);

    char buf[2048];
    char *s[8];
    int n = split_path(path, buf, sizeof buf, s, 8);
    if (n < 0)
        return st_not_found_path(resp);
    bool watch = query_bool(req->query, "watch");

    // /api, /apis, /api/v1 ...
    if (n == 1 && eq(s[0], "api"))
        return get ? h_api(a, resp) : st_method(resp);
    if (n == 1 && eq(s[0], "apis"))
        return get ? h_apis(resp) : st_method(resp);
    if (n >= 2 && eq(s[0], "api") && eq(s[1], "v1")) {
        if (n == 2)
            return get ? h_api_v1(resp) : st_method(resp);
        if (watch && get)
            return status_full(resp, 405, "MethodNotAllowed", "watch is not supported by kubexec-apiserver",
                               nullptr, nullptr, nullptr, false);
        if (n == 3 && eq(s[2], "pods"))
            return get ? h_pods_list(a, req, nullptr, now_ms, resp) : st_method(resp);
        if (n == 3 && eq(s[2], "nodes")) {
            if (get)
                return h_nodes(a, req, nullptr, now_ms, resp);
            return eq(m, "POST") ? h_node_write(a, req, nullptr, now_ms, resp) : st_method(resp);
        }
        if ((n == 4 || n == 5) && eq(s[2], "nodes") && (n == 4 || eq(s[4], "status"))) {
            if (get)
                return h_nodes(a, req, s[3], now_ms, resp);
            if (n == 5 && eq(m, "PUT"))
                return h_node_write(a, req, s[3], now_ms, resp);
            return st_method(resp);
        }
        if (n == 3 && eq(s[2], "namespaces"))
            return get ? h_namespaces(a, req, nullptr, now_ms, resp) : st_method(resp);
        if (n == 4 && eq(s[2], "namespaces"))
            return get ? h_namespaces(a, req, s[3], now_ms, resp) : st_method(resp);
        if (n >= 5 && eq(s[2], "namespaces") && eq(s[4], "pods")) {
            if (n == 5)
                return get ? h_pods_list(a, req, s[3], now_ms, resp) : st_method(resp);
            if (n == 6 || (n == 7 && eq(s[6], "status")))
                return get ? h_pod_get(a, req, s[3], s[5], now_ms, resp) : st_method(resp);
            if (n == 7 && (eq(s[6], "exec") || eq(s[6], "attach") || eq(s[6], "portforward"))) {
                // The streaming proxy takes upgrades; anything reaching us was not one.
                return st_bad_request(resp, "Upgrade request required");
            }
        }
        return st_not_found_path(resp);
    }
    if (n == 4 && eq(s[0], "kubexec") && eq(s[1], "v1") && eq(s[2], "nodes"))
        return st_not_found_path(resp);
    if (n == 5 && eq(s[0], "kubexec") && eq(s[1], "v1") && eq(s[2], "nodes") && eq(s[4], "pods"))
        return eq(m, "PUT") ? h_node_pods(a, req, s[3], now_ms, resp) : st_method(resp);
    return st_not_found_path(resp);
}

// ---------------------------------------------------------------------------
// Streaming targets

static bool pod_has_container(json_object *spec, const char *name)
{
    const char *lists[] = {"containers", "initContainers", "ephemeralContainers"};
    for (int l = 0; l < 3; l++) {
        json_object *arr = get_arr(spec, lists[l]);
        for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
            const char *n = get_str(json_object_array_get_idx(arr, i), "name");
            if (n && strcmp(n, name) == 0)
                return true;
        }
    }
    return false;
}

int kx_api_stream_target(kx_api *a, const kx_api_user *u, const char *verb, const char *ns,
                         const char *pod, const char *sub, const char *query, uint64_t now_ms,
                         struct kx_api_stream_target *t, kx_api_response *resp)
{
    (void)now_ms;
    memset(t, 0, sizeof *t);
    memset(resp, 0, sizeof *resp);
    if (!u || !u->authenticated)
        return st_unauthorized(resp) ? -ENOMEM : -EACCES;
    if (!verb || (!eq(verb, "create") && !eq(verb, "get")))
        verb = "get";
    if (!ns || !pod || !sub ||
        !(eq(sub, "exec") || eq(sub, "attach") || eq(sub, "portforward") || eq(sub, "log"))) {
        return st_not_found_path(resp) ? -ENOMEM : -EINVAL;
    }
    // Authorize before looking anything up, as upstream does: a forbidden user
    // learns nothing about which pods exist.
    if (!is_master(u) && !(eq(sub, "log") && eq(verb, "get")))
        return st_forbidden(resp, u, verb, "pods", sub, pod, ns) ? -ENOMEM : -EACCES;
    kx_reg_pod *p = kx_registry_pod_find(&a->reg, ns, pod);
    if (!p)
        return st_obj_not_found(resp, "pods", pod) ? -ENOMEM : -ENOENT;
    json_object *spec = get_obj(p->obj, "spec");
    int rc;
    if (!eq(sub, "portforward")) {
        char c[254];
        bool given = query_get(query, "container", c, sizeof c) && *c;
        if (given) {
            if (!pod_has_container(spec, c)) {
                rc = st_bad_request(resp, "container %s is not valid for pod %s", c, pod);
                return rc ? -ENOMEM : -EINVAL;
            }
        } else {
            json_object *ctrs = get_arr(spec, "containers");
            const char *def = get_str(get_obj(get_obj(p->obj, "metadata"), "annotations"),
                                      "kubectl.kubernetes.io/default-container");
            const char *first = ctrs && json_object_array_length(ctrs)
                                    ? get_str(json_object_array_get_idx(ctrs, 0), "name")
                                    : nullptr;
            if (def && pod_has_container(spec, def))
                kx_strlcpy(c, def, sizeof c);
            else if (first && *first && kx_strlcpy(c, first, sizeof c) == 0)
                ;
            else {
                rc = st_bad_request(resp, "a container name must be specified for pod %s", pod);
                return rc ? -ENOMEM : -EINVAL;
            }
        }
        kx_strlcpy(t->container, c, sizeof t->container);
    }
    const char *node_name = get_str(spec, "nodeName");
    if (!node_name || !*node_name) {
        rc = st_bad_request(resp, "pod %s does not have a host assigned", pod);
        return rc ? -ENOMEM : -EINVAL;
    }
    kx_reg_node *n = kx_registry_node_find(&a->reg, node_name);
    if (!n) {
        rc = st_internal(resp, "nodes \"%s\" not found", node_name);
        return rc ? -ENOMEM : -EHOSTUNREACH;
    }
    const char *ready = node_ready(n->obj);
    if (n->stale || !ready || !eq(ready, "True")) {
        char msg[400];
        snprintf(msg, sizeof msg, "node \"%s\" is not ready", node_name);
        rc = status_full(resp, 503, "ServiceUnavailable", msg, node_name, "nodes", nullptr, false);
        return rc ? -ENOMEM : -EHOSTUNREACH;
    }
    // InternalIP first: an address needs no resolver and is in the node's
    // serving certificate.
    const char *host = node_address(n->obj, "InternalIP");
    if (!host)
        host = node_address(n->obj, "Hostname");
    if (!host || kx_strlcpy(t->node_host, host, sizeof t->node_host) != 0) {
        rc = st_internal(resp, "node \"%s\" reported no usable address", node_name);
        return rc ? -ENOMEM : -EHOSTUNREACH;
    }
    json_object *ke = get_obj(get_obj(get_obj(n->obj, "status"), "daemonEndpoints"), "kubeletEndpoint");
    json_object *port;
    int pn = 0;
    if (ke && json_object_object_get_ex(ke, "Port", &port))
        pn = json_object_get_int(port);
    t->node_port = pn > 0 && pn < 65536 ? pn : 10250;
    kx_strlcpy(t->ns, ns, sizeof t->ns);
    kx_strlcpy(t->pod, pod, sizeof t->pod);
    kx_strlcpy(t->node_name, node_name, sizeof t->node_name);
    return 0;
}

int kx_api_tick(kx_api *a, uint64_t now_ms)
{
    if (!a->born_ms)
        a->born_ms = now_ms;
    return kx_registry_tick(&a->reg, now_ms, a->grace_ms);
}
