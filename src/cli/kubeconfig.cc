// Kubeconfig loading and resolution as kubectl does it; see kubeconfig.h.
//
// Shape of the code: every file is parsed (libyaml document API) into arena
// entries; entries of all files are merged first-wins by name with a sort (no
// quadratic look-ups, a 16 MiB file may hold a million names); then
// clientcmd's DirectClientConfig steps are replayed in kubectl's order so the
// first error reported is kubectl's first error:
//   1. without -n, kubectl asks for the namespace first, which runs
//      ConfirmUsable (validation of the context/user/cluster in use);
//   2. ClientConfig: the --user, --context, --cluster named on the command
//      line must exist, then ConfirmUsable again;
//   3. files referenced by the configuration are read (https only).
#include "kubeconfig.h"
#include "kubexec/crypto.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

namespace {

// ---------------------------------------------------------------------------
// Arena: every string and entry of one load; freed in one go at the end.

struct arena {
    void **ptrs;
    size_t n, cap;
    bool oom;
};

void *arena_keep(arena *a, void *p)
{
    if (!p) {
        a->oom = true;
        return nullptr;
    }
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 64;
        void **np = (void **)realloc(a->ptrs, nc * sizeof *np);
        if (!np) {
            free(p);
            a->oom = true;
            return nullptr;
        }
        a->ptrs = np;
        a->cap = nc;
    }
    a->ptrs[a->n++] = p;
    return p;
}

void *arena_alloc(arena *a, size_t n)
{
    return arena_keep(a, calloc(1, n ? n : 1));
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
    char *p = (char *)arena_alloc(a, n + 1);
    if (p)
        memcpy(p, s, n);
    return p;
}

char *arena_fmt(arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *arena_fmt(arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = nullptr;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        s = nullptr;
    return (char *)arena_keep(a, s);
}

void arena_free(arena *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->ptrs[i]);
    free(a->ptrs);
    *a = arena{};
}

// Go's %q for the names kubectl quotes (plain ASCII names pass unchanged).
const char *goq(arena *a, const char *s)
{
    size_t n = strlen(s);
    char *o = (char *)arena_alloc(a, n * 4 + 3);
    if (!o)
        return "\"\"";
    char *w = o;
    *w++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            *w++ = '\\';
            *w++ = (char)*p;
        } else if (*p == '\n') {
            *w++ = '\\';
            *w++ = 'n';
        } else if (*p == '\t') {
            *w++ = '\\';
            *w++ = 't';
        } else if (*p < 0x20 || *p == 0x7f) {
            w += sprintf(w, "\\x%02x", *p);
        } else {
            *w++ = (char)*p;
        }
    }
    *w++ = '"';
    *w = 0;
    return o;
}

const char *nz(const char *s)
{
    return s && *s ? s : nullptr;
}

// Go's text for an errno ("no such file or directory").
const char *go_strerror(arena *a, int e)
{
    char *s = arena_fmt(a, "%s", strerror(e));
    if (!s)
        return "error";
    if (s[0] && isupper((unsigned char)s[0]) && !(s[1] && isupper((unsigned char)s[1])))
        s[0] = (char)tolower((unsigned char)s[0]);
    return s;
}

// ---------------------------------------------------------------------------
// Paths, as Go's path/filepath on Unix (lexical).

// filepath.Clean, into arena memory.
char *path_clean(arena *a, const char *p)
{
    size_t n = strlen(p);
    char *o = (char *)arena_alloc(a, n + 2);
    if (!o)
        return nullptr;
    bool rooted = p[0] == '/';
    size_t w = 0, r = 0, dotdot = 0; // dotdot: where a leading "../" run ends
    if (rooted) {
        o[w++] = '/';
        r = 1;
        dotdot = 1;
    }
    while (r < n) {
        if (p[r] == '/') {
            r++;
        } else if (p[r] == '.' && (r + 1 == n || p[r + 1] == '/')) {
            r++;
        } else if (p[r] == '.' && p[r + 1] == '.' && (r + 2 == n || p[r + 2] == '/')) {
            r += 2;
            if (w > dotdot) {
                w--;
                while (w > dotdot && o[w] != '/')
                    w--;
            } else if (!rooted) {
                if (w > 0)
                    o[w++] = '/';
                o[w++] = '.';
                o[w++] = '.';
                dotdot = w;
            }
        } else {
            if ((rooted && w != 1) || (!rooted && w != 0))
                o[w++] = '/';
            while (r < n && p[r] != '/')
                o[w++] = p[r++];
        }
    }
    if (w == 0)
        o[w++] = '.';
    o[w] = 0;
    return o;
}

// filepath.Abs(filepath.Dir(file)): the directory relative paths in `file`
// are resolved against.
char *abs_dir(arena *a, const char *file)
{
    const char *slash = strrchr(file, '/');
    char *dir;
    if (!slash)
        dir = arena_fmt(a, ".");
    else if (slash == file)
        dir = arena_fmt(a, "/");
    else
        dir = arena_strndup(a, file, (size_t)(slash - file));
    if (!dir)
        return nullptr;
    if (dir[0] != '/') {
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd))
            return path_clean(a, dir); // as-is; the open will report it
        dir = arena_fmt(a, "%s/%s", cwd, dir);
        if (!dir)
            return nullptr;
    }
    return path_clean(a, dir);
}

// ResolvePaths: a non-empty relative reference joined to base.
const char *resolve(arena *a, const char *base, const char *ref)
{
    if (!ref || !*ref || ref[0] == '/' || !base)
        return ref;
    char *j = arena_fmt(a, "%s/%s", base, ref);
    return j ? path_clean(a, j) : nullptr;
}

// ---------------------------------------------------------------------------
// The configuration model (only what kubexec uses or kubectl validates).

struct blob {
    const uint8_t *p;
    size_t n; // n == 0: not set (Go: len(data) == 0)
};

// Common head of the three entry kinds, for sorting and merging by name.
struct entry {
    const char *name;
    size_t pos;  // index in its file's list
    int file;    // index of the file in loading order
};

struct kcluster {
    entry e;
    const char *server, *tls_server_name, *ca_file;
    blob ca_data;
    bool insecure;
};

struct kuser {
    entry e;
    const char *token, *token_file, *cert_file, *key_file, *username, *password;
    blob cert_data, key_data;
    bool exec, auth_provider;
};

struct kcontext {
    entry e;
    const char *cluster, *user, *ns;
};

struct elist {
    entry **v;
    size_t n, cap;
};

bool elist_push(elist *l, entry *e)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        entry **nv = (entry **)realloc(l->v, nc * sizeof *nv);
        if (!nv)
            return false;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = e;
    return true;
}

int entry_cmp(const void *a, const void *b)
{
    const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    if (x->file != y->file)
        return x->file < y->file ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

const entry *elist_find(const elist *l, const char *name)
{
    if (!name)
        return nullptr;
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(l->v[mid]->name, name);
        if (c == 0)
            return l->v[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return nullptr;
}

// The merged configuration of all files.
struct merged {
    elist clusters, users, contexts; // sorted by name, one entry per name
    const char *current_context;
};

// ---------------------------------------------------------------------------
// YAML -> model, with Go's JSON type rules.

enum jtype { JT_NULL, JT_BOOL, JT_NUMBER, JT_STRING, JT_ARRAY, JT_OBJECT };

const char *jtype_name(jtype t)
{
    switch (t) {
    case JT_NULL: return "null";
    case JT_BOOL: return "bool";
    case JT_NUMBER: return "number";
    case JT_STRING: return "string";
    case JT_ARRAY: return "array";
    case JT_OBJECT: return "object";
    }
    return "value";
}

bool in_list(const char *s, size_t n, const char *const *list)
{
    for (; *list; list++)
        if (strlen(*list) == n && memcmp(*list, s, n) == 0)
            return true;
    return false;
}

const char *const yaml_null[] = {"", "~", "null", "Null", "NULL", nullptr};
const char *const yaml_true[] = {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE",
                                 "on", "On", "ON", nullptr};
const char *const yaml_false[] = {"n", "N", "no", "No", "NO", "false", "False", "FALSE",
                                  "off", "Off", "OFF", nullptr};
const char *const yaml_special_float[] = {".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF",
                                          "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf",
                                          "-.INF", nullptr};

// go-yaml v2's number resolution of a plain scalar: strconv.ParseInt(s, 0)
// after dropping '_', or its float pattern [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool yaml_is_number(const char *s, size_t n)
{
    if (n == 0 || !strchr("+-.0123456789", s[0]))
        return false;
    char buf[128];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_')
            continue;
        if (m + 1 >= sizeof buf)
            return false; // far too long for a number anyone writes; a string
        buf[m++] = s[i];
    }
    buf[m] = 0;
    const char *p = buf;
    if (*p == '+' || *p == '-')
        p++;
    if (!*p)
        return false;
    auto all = [](const char *q, const char *set) {
        if (!*q)
            return false;
        for (; *q; q++)
            if (!strchr(set, *q))
                return false;
        return true;
    };
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        return all(p + 2, "0123456789abcdefABCDEF");
    if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O'))
        return all(p + 2, "01234567");
    if (p[0] == '0' && (p[1] == 'b' || p[1] == 'B'))
        return all(p + 2, "01");
    // Float pattern (which also covers every plain decimal integer).
    const char *q = p;
    if (*q == '.') {
        q++;
        if (!isdigit((unsigned char)*q))
            return false;
        while (isdigit((unsigned char)*q))
            q++;
    } else {
        if (!isdigit((unsigned char)*q))
            return false;
        while (isdigit((unsigned char)*q))
            q++;
        if (*q == '.') {
            q++;
            while (isdigit((unsigned char)*q))
                q++;
        }
    }
    if (*q == 'e' || *q == 'E') {
        q++;
        if (*q == '+' || *q == '-')
            q++;
        if (!isdigit((unsigned char)*q))
            return false;
        while (isdigit((unsigned char)*q))
            q++;
    }
    return *q == 0;
}

jtype node_jtype(const yaml_node_t *nd, bool *bval)
{
    if (!nd)
        return JT_NULL;
    if (nd->type == YAML_SEQUENCE_NODE)
        return JT_ARRAY;
    if (nd->type == YAML_MAPPING_NODE)
        return JT_OBJECT;
    if (nd->type != YAML_SCALAR_NODE)
        return JT_NULL;
    const char *s = (const char *)nd->data.scalar.value;
    size_t n = nd->data.scalar.length;
    const char *tag = (const char *)nd->tag;
    if (tag && strcmp(tag, YAML_STR_TAG) != 0) {
        // An explicit tag other than !!str decides the type.
        if (strcmp(tag, YAML_NULL_TAG) == 0)
            return JT_NULL;
        if (strcmp(tag, YAML_BOOL_TAG) == 0) {
            if (bval)
                *bval = in_list(s, n, yaml_true);
            return JT_BOOL;
        }
        if (strcmp(tag, YAML_INT_TAG) == 0 || strcmp(tag, YAML_FLOAT_TAG) == 0)
            return JT_NUMBER;
        return JT_STRING;
    }
    if (nd->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return JT_STRING;
    if (in_list(s, n, yaml_null))
        return JT_NULL;
    if (in_list(s, n, yaml_true)) {
        if (bval)
            *bval = true;
        return JT_BOOL;
    }
    if (in_list(s, n, yaml_false)) {
        if (bval)
            *bval = false;
        return JT_BOOL;
    }
    if (in_list(s, n, yaml_special_float) || yaml_is_number(s, n))
        return JT_NUMBER;
    return JT_STRING;
}

struct pctx {
    arena *a;
    yaml_document_t *doc;
    const char *base; // absolute directory of the file, for relative paths
    int file;
    const char *fail; // first error (Go reports the first one it saved)
};

void pfail(pctx *c, const char *msg)
{
    if (!c->fail)
        c->fail = msg ? msg : "out of memory";
}

void type_err(pctx *c, jtype got, const char *strct, const char *field, const char *gotype)
{
    if (!c->fail)
        pfail(c, arena_fmt(c->a, "json: cannot unmarshal %s into Go struct field %s.%s of type %s",
                           jtype_name(got), strct, field, gotype));
}

yaml_node_t *getnode(pctx *c, int idx)
{
    return yaml_document_get_node(c->doc, idx);
}

// The value of the LAST pair whose key matches: duplicate keys collapse to
// the last one in go-yaml, and kubectl 1.33's decoder matches field names
// case-sensitively ("TOKEN:" is ignored).
yaml_node_t *map_get(pctx *c, const yaml_node_t *m, const char *key)
{
    yaml_node_t *found = nullptr;
    size_t kl = strlen(key);
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = getnode(c, p->key);
        if (k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == kl &&
            memcmp(k->data.scalar.value, key, kl) == 0)
            found = getnode(c, p->value);
    }
    return found;
}

// A string field: null -> unset (nullptr), string -> copy, else a type error.
const char *get_str(pctx *c, const yaml_node_t *m, const char *key, const char *strct,
                    const char *path)
{
    yaml_node_t *v = map_get(c, m, key);
    jtype t = node_jtype(v, nullptr);
    if (t == JT_NULL)
        return nullptr;
    if (t != JT_STRING) {
        type_err(c, t, strct, path, "string");
        return nullptr;
    }
    const char *s = arena_strndup(c->a, (const char *)v->data.scalar.value, v->data.scalar.length);
    if (!s)
        pfail(c, nullptr);
    return s;
}

bool get_bool(pctx *c, const yaml_node_t *m, const char *key, const char *strct, const char *path)
{
    yaml_node_t *v = map_get(c, m, key);
    bool b = false;
    jtype t = node_jtype(v, &b);
    if (t == JT_NULL)
        return false;
    if (t != JT_BOOL) {
        type_err(c, t, strct, path, "bool");
        return false;
    }
    return b;
}

blob get_bytes(pctx *c, const yaml_node_t *m, const char *key, const char *strct,
               const char *path)
{
    yaml_node_t *v = map_get(c, m, key);
    jtype t = node_jtype(v, nullptr);
    if (t == JT_NULL)
        return blob{};
    if (t != JT_STRING) {
        type_err(c, t, strct, path, "[]uint8");
        return blob{};
    }
    size_t n = v->data.scalar.length, bad = 0;
    uint8_t *out = (uint8_t *)arena_alloc(c->a, n / 4 * 3 + 4);
    if (!out) {
        pfail(c, nullptr);
        return blob{};
    }
    long got = kx_base64_decode((const char *)v->data.scalar.value, n, out, &bad);
    if (got < 0) {
        pfail(c, arena_fmt(c->a, "illegal base64 data at input byte %zu", bad));
        return blob{};
    }
    return blob{out, (size_t)got};
}

bool present(pctx *c, const yaml_node_t *m, const char *key)
{
    return node_jtype(map_get(c, m, key), nullptr) != JT_NULL;
}

// One list (clusters/users/contexts): each element an object or null.
// Returns the struct node of each element through cb.
template <typename F>
void walk_list(pctx *c, const yaml_node_t *root, const char *key, const char *named_type,
               const char *inner_key, const char *inner_type, F &&cb)
{
    yaml_node_t *l = map_get(c, root, key);
    jtype t = node_jtype(l, nullptr);
    if (t == JT_NULL)
        return;
    if (t != JT_ARRAY) {
        type_err(c, t, "Config", key, arena_fmt(c->a, "[]v1.%s", named_type));
        return;
    }
    size_t pos = 0;
    for (yaml_node_item_t *it = l->data.sequence.items.start; it < l->data.sequence.items.top;
         it++, pos++) {
        yaml_node_t *el = getnode(c, *it);
        jtype et = node_jtype(el, nullptr);
        if (et != JT_NULL && et != JT_OBJECT) {
            type_err(c, et, "Config", key, arena_fmt(c->a, "v1.%s", named_type));
            continue;
        }
        const char *name = nullptr;
        yaml_node_t *inner = nullptr;
        if (et == JT_OBJECT) {
            name = get_str(c, el, "name", named_type, arena_fmt(c->a, "%s.name", key));
            inner = map_get(c, el, inner_key);
            jtype it2 = node_jtype(inner, nullptr);
            if (it2 != JT_NULL && it2 != JT_OBJECT) {
                type_err(c, it2, named_type, arena_fmt(c->a, "%s.%s", key, inner_key),
                         arena_fmt(c->a, "v1.%s", inner_type));
                inner = nullptr;
            } else if (it2 == JT_NULL) {
                inner = nullptr;
            }
        }
        cb(name ? name : "", pos, inner);
    }
}

struct kfile {
    elist clusters, users, contexts;
    const char *current_context;
};

// Duplicate names inside one file: kubectl's conversion error (without the
// Go value dump kubectl appends). Reports the name whose second occurrence
// comes first in the list.
const char *dup_check(arena *a, elist *l, const char *what)
{
    if (l->n > 1)
        qsort(l->v, l->n, sizeof *l->v, entry_cmp);
    const entry *dup = nullptr;
    for (size_t i = 1; i < l->n; i++)
        if (strcmp(l->v[i]->name, l->v[i - 1]->name) == 0 && (!dup || l->v[i]->pos < dup->pos))
            dup = l->v[i];
    if (!dup)
        return nullptr;
    return arena_fmt(a, "error converting %s: duplicate name %s in list", what,
                     goq(a, dup->name));
}

void parse_config(pctx *c, const yaml_node_t *root, kfile *out)
{
    static const char vk_type[] =
        "struct { APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; "
        "Kind string \"json:\\\"kind,omitempty\\\"\" }";
    jtype rt = node_jtype(root, nullptr);
    if (rt == JT_NULL)
        return;
    if (rt != JT_OBJECT) {
        pfail(c, arena_fmt(c->a,
                           "couldn't get version/kind; json parse error: json: cannot "
                           "unmarshal %s into Go value of type %s",
                           jtype_name(rt), vk_type));
        return;
    }
    // apiVersion/kind first, as the codec does.
    const char *vk[2] = {"apiVersion", "kind"};
    const char *vkv[2] = {};
    for (int i = 0; i < 2; i++) {
        yaml_node_t *v = map_get(c, root, vk[i]);
        jtype t = node_jtype(v, nullptr);
        if (t == JT_STRING) {
            vkv[i] = arena_strndup(c->a, (const char *)v->data.scalar.value,
                                   v->data.scalar.length);
        } else if (t != JT_NULL) {
            pfail(c, arena_fmt(c->a,
                               "couldn't get version/kind; json parse error: json: cannot "
                               "unmarshal %s into Go struct field .%s of type string",
                               jtype_name(t), vk[i]));
            return;
        }
    }
    const char *version = nz(vkv[0]) ? vkv[0] : "v1";
    const char *kind = nz(vkv[1]) ? vkv[1] : "Config";
    if (strcmp(version, "v1") != 0 || strcmp(kind, "Config") != 0) {
        pfail(c, arena_fmt(c->a,
                           "no kind %s is registered for version %s in scheme "
                           "\"k8s.io/client-go/tools/clientcmd/api/latest/latest.go:50\"",
                           goq(c->a, kind), goq(c->a, version)));
        return;
    }

    walk_list(c, root, "clusters", "NamedCluster", "cluster", "Cluster",
              [&](const char *name, size_t pos, const yaml_node_t *m) {
                  kcluster *k = (kcluster *)arena_alloc(c->a, sizeof *k);
                  if (!k || !elist_push(&out->clusters, &k->e)) {
                      pfail(c, nullptr);
                      return;
                  }
                  k->e = entry{name, pos, c->file};
                  if (!m)
                      return;
                  const char *S = "Cluster";
                  k->server = get_str(c, m, "server", S, "clusters.cluster.server");
                  k->tls_server_name =
                      get_str(c, m, "tls-server-name", S, "clusters.cluster.tls-server-name");
                  k->insecure = get_bool(c, m, "insecure-skip-tls-verify", S,
                                         "clusters.cluster.insecure-skip-tls-verify");
                  k->ca_file = resolve(c->a, c->base,
                                       get_str(c, m, "certificate-authority", S,
                                               "clusters.cluster.certificate-authority"));
                  k->ca_data = get_bytes(c, m, "certificate-authority-data", S,
                                         "clusters.cluster.certificate-authority-data");
              });
    walk_list(c, root, "users", "NamedAuthInfo", "user", "AuthInfo",
              [&](const char *name, size_t pos, const yaml_node_t *m) {
                  kuser *k = (kuser *)arena_alloc(c->a, sizeof *k);
                  if (!k || !elist_push(&out->users, &k->e)) {
                      pfail(c, nullptr);
                      return;
                  }
                  k->e = entry{name, pos, c->file};
                  if (!m)
                      return;
                  const char *S = "AuthInfo";
                  k->cert_file = resolve(c->a, c->base,
                                         get_str(c, m, "client-certificate", S,
                                                 "users.user.client-certificate"));
                  k->cert_data = get_bytes(c, m, "client-certificate-data", S,
                                           "users.user.client-certificate-data");
                  k->key_file = resolve(c->a, c->base,
                                        get_str(c, m, "client-key", S, "users.user.client-key"));
                  k->key_data =
                      get_bytes(c, m, "client-key-data", S, "users.user.client-key-data");
                  k->token = get_str(c, m, "token", S, "users.user.token");
                  // The v1 field is spelled "tokenFile"; kubectl 1.33 ignores
                  // "token-file" like any unknown key, and so do we.
                  k->token_file = resolve(c->a, c->base,
                                          get_str(c, m, "tokenFile", S, "users.user.tokenFile"));
                  k->username = get_str(c, m, "username", S, "users.user.username");
                  k->password = get_str(c, m, "password", S, "users.user.password");
                  k->exec = present(c, m, "exec");
                  k->auth_provider = present(c, m, "auth-provider");
              });
    walk_list(c, root, "contexts", "NamedContext", "context", "Context",
              [&](const char *name, size_t pos, const yaml_node_t *m) {
                  kcontext *k = (kcontext *)arena_alloc(c->a, sizeof *k);
                  if (!k || !elist_push(&out->contexts, &k->e)) {
                      pfail(c, nullptr);
                      return;
                  }
                  k->e = entry{name, pos, c->file};
                  if (!m)
                      return;
                  const char *S = "Context";
                  k->cluster = get_str(c, m, "cluster", S, "contexts.context.cluster");
                  k->user = get_str(c, m, "user", S, "contexts.context.user");
                  k->ns = get_str(c, m, "namespace", S, "contexts.context.namespace");
              });
    out->current_context = get_str(c, root, "current-context", "Config", "current-context");
    if (c->fail)
        return;
    const char *d = dup_check(c->a, &out->clusters, "*[]NamedCluster into *map[string]*api.Cluster");
    if (!d)
        d = dup_check(c->a, &out->users, "*[]NamedAuthInfo into *map[string]*api.AuthInfo");
    if (!d)
        d = dup_check(c->a, &out->contexts, "*[]NamedContext into *map[string]*api.Context");
    if (d)
        pfail(c, d);
}

// go-yaml's wording of a libyaml error: "yaml: line N: problem".
const char *yaml_error(arena *a, const yaml_parser_t *p, const char *data, size_t len)
{
    // go-yaml composes documents itself and names the missing anchor.
    if (p->error == YAML_COMPOSER_ERROR && p->problem &&
        strcmp(p->problem, "found undefined alias") == 0 && p->problem_mark.index < len &&
        data[p->problem_mark.index] == '*') {
        const char *name = data + p->problem_mark.index + 1;
        size_t n = 0;
        while (name + n < data + len && !strchr(" \t\r\n,[]{}", name[n]) && name[n])
            n++;
        return arena_fmt(a, "yaml: unknown anchor '%.*s' referenced", (int)n, name);
    }
    size_t line = 0;
    if (p->problem_mark.line != 0) {
        line = p->problem_mark.line;
        if (p->error == YAML_SCANNER_ERROR)
            line++;
    } else if (p->context_mark.line != 0) {
        line = p->context_mark.line;
    }
    const char *problem = p->problem ? p->problem : "unknown problem parsing YAML content";
    if (p->error == YAML_MEMORY_ERROR)
        problem = "out of memory";
    if (line)
        return arena_fmt(a, "yaml: line %zu: %s", line, problem);
    return arena_fmt(a, "yaml: %s", problem);
}

// ---------------------------------------------------------------------------
// Files.

enum read_rc { READ_OK, READ_MISSING, READ_ERR };

// Reads a whole file of at most `limit` bytes. On READ_ERR *why is Go's text
// ("open P: permission denied", "read P: is a directory") or a size error.
read_rc read_file(arena *a, const char *path, size_t limit, char **data, size_t *len,
                  const char **why)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return READ_MISSING;
        *why = arena_fmt(a, "open %s: %s", path, go_strerror(a, e));
        return READ_ERR;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
        int e = S_ISDIR(st.st_mode) ? EISDIR : errno;
        close(fd);
        *why = arena_fmt(a, "read %s: %s", path, go_strerror(a, e));
        return READ_ERR;
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > limit) {
        close(fd);
        *why = arena_fmt(a, "%s is %lld bytes, over kubexec's limit of %zu bytes", path,
                         (long long)st.st_size, limit);
        return READ_ERR;
    }
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536;
    char *buf = (char *)malloc(cap + 1);
    size_t n = 0;
    for (;;) {
        if (!buf) {
            close(fd);
            *why = nullptr;
            return READ_ERR;
        }
        if (n == cap) {
            if (cap > limit) {
                free(buf);
                close(fd);
                *why = arena_fmt(a, "%s is over kubexec's limit of %zu bytes", path, limit);
                return READ_ERR;
            }
            cap = cap * 2 > limit + 1 ? limit + 1 : cap * 2;
            char *nb = (char *)realloc(buf, cap + 1);
            if (!nb)
                free(buf);
            buf = nb;
            continue;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            *why = arena_fmt(a, "read %s: %s", path, go_strerror(a, e));
            return READ_ERR;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n > limit) {
        free(buf);
        *why = arena_fmt(a, "%s is over kubexec's limit of %zu bytes", path, limit);
        return READ_ERR;
    }
    buf[n] = 0;
    if (!arena_keep(a, buf)) {
        *why = nullptr;
        return READ_ERR;
    }
    *data = buf;
    *len = n;
    return READ_OK;
}

// Parses one kubeconfig file. Returns null on success, else the reason
// (without the "error loading config file" wrapper).
const char *load_file(arena *a, const char *path, int file, kfile *out, bool *missing)
{
    char *data = nullptr;
    size_t len = 0;
    const char *why = nullptr;
    *missing = false;
    read_rc rc = read_file(a, path, KX_KCFG_MAX_FILE, &data, &len, &why);
    if (rc == READ_MISSING) {
        *missing = true;
        return nullptr;
    }
    if (rc == READ_ERR)
        return why ? why : "out of memory";
    if (len == 0)
        return nullptr; // client-go: an empty file is an empty config
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return "out of memory";
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    yaml_document_t doc;
    if (!yaml_parser_load(&parser, &doc)) {
        const char *e = yaml_error(a, &parser, data, len);
        yaml_parser_delete(&parser);
        return e ? e : "out of memory";
    }
    yaml_parser_delete(&parser);
    pctx c{a, &doc, abs_dir(a, path), file, nullptr};
    parse_config(&c, yaml_document_get_root_node(&doc), out);
    yaml_document_delete(&doc);
    if (a->oom)
        return "out of memory";
    return c.fail;
}

// Appends the entries of one file, then (after the last file) sorts and keeps
// the first entry of each name: the first file to define a name wins.
bool elist_append(elist *dst, const elist *src)
{
    for (size_t i = 0; i < src->n; i++)
        if (!elist_push(dst, src->v[i]))
            return false;
    return true;
}

void elist_first_wins(elist *l)
{
    if (l->n > 1)
        qsort(l->v, l->n, sizeof *l->v, entry_cmp);
    size_t w = 0;
    for (size_t i = 0; i < l->n; i++)
        if (w == 0 || strcmp(l->v[w - 1]->name, l->v[i]->name) != 0)
            l->v[w++] = l->v[i];
    l->n = w;
}

// ---------------------------------------------------------------------------
// DirectClientConfig.

struct errs {
    const char *v[16];
    int n;
    bool context_not_found; // v[0] is errContextNotFound
};

void errs_add(errs *e, const char *m)
{
    if (e->n < 16)
        e->v[e->n++] = m ? m : "out of memory";
}

struct resolver {
    arena *a;
    const kx_kcfg_flags *f;
    merged *m;
};

struct rcontext {
    const char *cluster, *user, *ns;
};
struct rcluster {
    const char *server, *tls_server_name, *ca_file;
    blob ca_data;
    bool insecure;
};
struct ruser {
    const char *token, *token_file, *cert_file, *key_file, *username, *password;
    blob cert_data, key_data;
    bool exec, auth_provider;
};

const char *context_name(resolver *r, bool *required)
{
    *required = nz(r->f->context) != nullptr;
    return *required ? r->f->context : nz(r->m->current_context);
}

// getContext: 0, or the required-context error (*ctx then empty).
const char *get_context(resolver *r, rcontext *ctx)
{
    bool required;
    const char *name = context_name(r, &required);
    *ctx = rcontext{};
    const kcontext *k = (const kcontext *)elist_find(&r->m->contexts, name);
    if (k) {
        *ctx = rcontext{nz(k->cluster), nz(k->user), nz(k->ns)};
    } else if (required) {
        return arena_fmt(r->a, "context %s does not exist", goq(r->a, name));
    }
    if (nz(r->f->cluster))
        ctx->cluster = r->f->cluster;
    if (nz(r->f->user))
        ctx->user = r->f->user;
    if (nz(r->f->namespace_))
        ctx->ns = r->f->namespace_;
    return nullptr;
}

const char *user_name(resolver *r, bool *required)
{
    *required = nz(r->f->user) != nullptr;
    if (*required)
        return r->f->user;
    rcontext ctx;
    get_context(r, &ctx);
    return ctx.user ? ctx.user : "";
}

const char *cluster_name(resolver *r, bool *required)
{
    *required = nz(r->f->cluster) != nullptr;
    if (*required)
        return r->f->cluster;
    rcontext ctx;
    get_context(r, &ctx);
    return ctx.cluster ? ctx.cluster : "";
}

// getAuthInfo: on a missing required user returns the error and an EMPTY
// user (overrides not applied), as client-go does.
const char *get_user(resolver *r, ruser *u)
{
    bool required;
    const char *name = user_name(r, &required);
    *u = ruser{};
    const kuser *k = (const kuser *)elist_find(&r->m->users, name);
    if (k) {
        *u = ruser{nz(k->token),     nz(k->token_file), nz(k->cert_file), nz(k->key_file),
                   nz(k->username),  nz(k->password),   k->cert_data,     k->key_data,
                   k->exec,          k->auth_provider};
    } else if (required) {
        return arena_fmt(r->a, "auth info %s does not exist", goq(r->a, name));
    }
    const kx_kcfg_flags *f = r->f;
    if (nz(f->token))
        u->token = f->token;
    if (nz(f->client_key)) {
        u->key_file = f->client_key;
        u->key_data = blob{};
    }
    if (nz(f->client_certificate)) {
        u->cert_file = f->client_certificate;
        u->cert_data = blob{};
    }
    return nullptr;
}

// getCluster: starts from kubectl's ClusterDefaults (http://localhost:8080).
const char *get_cluster(resolver *r, rcluster *cl)
{
    bool required;
    const char *name = cluster_name(r, &required);
    *cl = rcluster{"http://localhost:8080", nullptr, nullptr, blob{}, false};
    const kcluster *k = (const kcluster *)elist_find(&r->m->clusters, name);
    if (k) {
        if (nz(k->server))
            cl->server = k->server;
        if (nz(k->tls_server_name))
            cl->tls_server_name = k->tls_server_name;
        if (nz(k->ca_file))
            cl->ca_file = k->ca_file;
        if (k->ca_data.n)
            cl->ca_data = k->ca_data;
        if (k->insecure)
            cl->insecure = true;
    } else if (required) {
        *cl = rcluster{};
        return arena_fmt(r->a, "cluster %s does not exist", goq(r->a, name));
    }
    const kx_kcfg_flags *f = r->f;
    if (nz(f->server))
        cl->server = f->server;
    if (nz(f->tls_server_name))
        cl->tls_server_name = f->tls_server_name;
    if (f->insecure_skip_tls_verify || nz(f->certificate_authority)) {
        cl->insecure = f->insecure_skip_tls_verify;
        cl->ca_file = nz(f->certificate_authority);
        cl->ca_data = blob{};
    }
    if (nz(f->server) || nz(f->tls_server_name))
        cl->tls_server_name = nz(f->tls_server_name);
    return nullptr;
}

// os.Open(path) succeeded? Else the Go error text.
const char *open_err(arena *a, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        return nullptr;
    }
    return arena_fmt(a, "open %s: %s", path, go_strerror(a, errno));
}

void validate_user(arena *a, const char *name, const ruser *u, errs *e)
{
    int methods = 0;
    const char *list[2];
    if (u->token)
        list[methods++] = "token";
    if (u->username || u->password)
        list[methods++] = "basicAuth";
    if (u->cert_file || u->cert_data.n) {
        if (u->cert_file && u->cert_data.n)
            errs_add(e, arena_fmt(a, "client-cert-data and client-cert are both specified for "
                                     "%s. client-cert-data will override.", name));
        if (u->key_file && u->key_data.n)
            errs_add(e, arena_fmt(a, "client-key-data and client-key are both specified for "
                                     "%s; client-key-data will override", name));
        if (!u->key_file && !u->key_data.n)
            errs_add(e, arena_fmt(a, "client-key-data or client-key must be specified for %s "
                                     "to use the clientCert authentication method.", name));
        const char *oe;
        if (u->cert_file && (oe = open_err(a, u->cert_file)))
            errs_add(e, arena_fmt(a, "unable to read client-cert %s for %s due to %s",
                                  u->cert_file, name, oe));
        if (u->key_file && (oe = open_err(a, u->key_file)))
            errs_add(e, arena_fmt(a, "unable to read client-key %s for %s due to %s",
                                  u->key_file, name, oe));
    }
    if (methods > 1)
        errs_add(e, arena_fmt(a, "more than one authentication method found for %s; found "
                                 "[%s %s], only one is allowed", name, list[0], list[1]));
}

void validate_cluster(arena *a, const char *name, const rcluster *cl, errs *e)
{
    if (!nz(cl->server)) {
        if (!*name)
            errs_add(e, "default cluster has no server defined");
        else
            errs_add(e, arena_fmt(a, "no server found for cluster %s", goq(a, name)));
    }
    if (cl->ca_file && cl->ca_data.n)
        errs_add(e, arena_fmt(a, "certificate-authority-data and certificate-authority are "
                                 "both specified for %s. certificate-authority-data will "
                                 "override.", name));
    const char *oe;
    if (cl->ca_file && (oe = open_err(a, cl->ca_file)))
        errs_add(e, arena_fmt(a, "unable to read certificate-authority %s for %s due to %s",
                              cl->ca_file, name, oe));
}

void confirm_usable(resolver *r, errs *e)
{
    *e = errs{};
    bool required;
    const char *cname = context_name(r, &required);
    if (cname && !elist_find(&r->m->contexts, cname)) {
        errs_add(e, arena_fmt(r->a, "context was not found for specified context: %s", cname));
        e->context_not_found = true;
    }
    ruser u;
    get_user(r, &u);
    validate_user(r->a, user_name(r, &required), &u, e);
    rcluster cl;
    get_cluster(r, &cl);
    validate_cluster(r->a, cluster_name(r, &required), &cl, e);
}

// kubectl's rendering of a validation error list. from_namespace: the error
// came out of the namespace look-up (no -n), where kubectl prints a single
// error other than "context was not found" with a plain "error: " prefix.
const char *format_errs(arena *a, const errs *e, bool from_namespace)
{
    if (e->n == 1) {
        if (from_namespace && !e->context_not_found)
            return arena_fmt(a, "error: %s", e->v[0]);
        return arena_fmt(a, "Error in configuration: %s", e->v[0]);
    }
    const char *s = "Error in configuration: ";
    for (int i = 0; i < e->n && s; i++)
        s = arena_fmt(a, "%s\n* %s", s, e->v[i]);
    return s;
}

void set_err(char *err, size_t errcap, const char *msg)
{
    if (err && errcap)
        snprintf(err, errcap, "%s", msg ? msg : "error: out of memory");
}

bool has_prefix_ci(const char *s, const char *p)
{
    return strncasecmp(s, p, strlen(p)) == 0;
}

// A file named by the configuration (CA, certificate, key, token file).
int read_ref(arena *a, const char *path, char **data, size_t *len, const char **why)
{
    read_rc rc = read_file(a, path, KX_KCFG_MAX_REF, data, len, why);
    if (rc == READ_OK)
        return 0;
    if (rc == READ_MISSING) {
        *why = arena_fmt(a, "error: open %s: no such file or directory", path);
        return -ENOENT;
    }
    *why = *why ? arena_fmt(a, "error: %s", *why) : nullptr;
    return *why && strstr(*why, "limit") ? -EMSGSIZE : -EIO;
}

int dup_out(char **dst, size_t *dlen, const void *p, size_t n)
{
    char *m = (char *)malloc(n + 1);
    if (!m)
        return -ENOMEM;
    memcpy(m, p, n);
    m[n] = 0;
    *dst = m;
    if (dlen)
        *dlen = n;
    return 0;
}

int dup_str(char **dst, const char *s)
{
    if (!s)
        return 0;
    return dup_out(dst, nullptr, s, strlen(s));
}

// Material from *-data (preferred, as client-go) or from its file.
int material(arena *a, blob data, const char *file, char **dst, size_t *dlen, const char **why)
{
    if (data.n)
        return dup_out(dst, dlen, data.p, data.n);
    if (!file)
        return 0;
    char *buf;
    size_t n;
    int rc = read_ref(a, file, &buf, &n, why);
    if (rc)
        return rc;
    return dup_out(dst, dlen, buf, n);
}

int build(resolver *r, kx_kcfg *out, const char **why)
{
    arena *a = r->a;
    rcontext ctx;
    ruser u;
    rcluster cl;
    get_context(r, &ctx);
    get_user(r, &u);
    get_cluster(r, &cl);
    bool required;
    const char *cname = context_name(r, &required);
    int rc = 0;
    if ((rc = dup_str(&out->context_name, cname)) || (rc = dup_str(&out->server, cl.server)))
        return rc;
    out->namespace_explicit = nz(r->f->namespace_) != nullptr;
    if ((rc = dup_str(&out->namespace_, ctx.ns ? ctx.ns : "default")))
        return rc;
    // client-go applies TLS and credentials only for an https server.
    if (!has_prefix_ci(cl.server, "https://"))
        return 0;
    if (cl.insecure && (cl.ca_file || cl.ca_data.n)) {
        *why = "error: specifying a root certificates file with the insecure flag is not allowed";
        return -EINVAL;
    }
    const char *uname = user_name(r, &required);
    if ((u.exec || u.auth_provider) && !u.token && !u.token_file && !u.cert_file &&
        !u.cert_data.n) {
        *why = arena_fmt(a, "error: user %s uses %s, which kubexec does not support",
                         goq(a, uname),
                         u.exec ? "an exec credential plugin" : "an auth-provider");
        return -EINVAL;
    }
    out->insecure = cl.insecure;
    if ((rc = dup_str(&out->tls_server_name, cl.tls_server_name)) ||
        (rc = material(a, cl.ca_data, cl.ca_file, &out->ca_pem, &out->ca_len, why)))
        return rc;
    if (u.cert_file || u.cert_data.n) {
        if ((rc = material(a, u.cert_data, u.cert_file, &out->cert_pem, &out->cert_len, why)) ||
            (rc = material(a, u.key_data, u.key_file, &out->key_pem, &out->key_len, why)))
            return rc;
    }
    // client-go reads tokenFile on every request and prefers what it reads
    // over token; token only stands in when the file cannot be read.
    if (u.token_file) {
        char *buf;
        size_t n;
        if ((rc = read_ref(a, u.token_file, &buf, &n, why))) {
            if (!u.token)
                return rc;
            return dup_str(&out->token, u.token);
        }
        // The file token source trims surrounding white space.
        while (n && isspace((unsigned char)buf[n - 1]))
            n--;
        size_t s = 0;
        while (s < n && isspace((unsigned char)buf[s]))
            s++;
        if (n > s)
            rc = dup_out(&out->token, nullptr, buf + s, n - s);
        else if (u.token)
            rc = dup_str(&out->token, u.token);
    } else if (u.token) {
        rc = dup_str(&out->token, u.token);
    }
    return rc;
}

} // namespace

void kx_kcfg_free(kx_kcfg *c)
{
    if (!c)
        return;
    free(c->context_name);
    free(c->server);
    free(c->namespace_);
    free(c->ca_pem);
    free(c->cert_pem);
    if (c->key_pem)
        explicit_bzero(c->key_pem, c->key_len);
    free(c->key_pem);
    free(c->tls_server_name);
    if (c->token)
        explicit_bzero(c->token, strlen(c->token));
    free(c->token);
    *c = kx_kcfg{};
}

int kx_kcfg_load(const kx_kcfg_flags *flags, const char *env_kubeconfig, const char *home,
                 kx_kcfg *out, char *err, size_t errcap)
{
    static const kx_kcfg_flags no_flags{};
    const kx_kcfg_flags *f = flags ? flags : &no_flags;
    if (err && errcap)
        err[0] = 0;
    if (!out)
        return -EINVAL;
    *out = kx_kcfg{};
    arena a{};
    merged m{};
    kfile files[KX_KCFG_MAX_FILES] = {};
    int nfiles = 0;
    const char *paths[KX_KCFG_MAX_FILES];
    int npaths = 0;
    const char *msg = nullptr;
    int rc = 0;
    errs e;
    resolver r{&a, f, &m};

    // 1. Which files.
    if (nz(f->kubeconfig)) {
        struct stat st;
        if (stat(f->kubeconfig, &st) != 0 && errno == ENOENT) {
            msg = arena_fmt(&a, "error: stat %s: no such file or directory", f->kubeconfig);
            rc = -ENOENT;
            goto done;
        }
        paths[npaths++] = f->kubeconfig;
    } else if (nz(env_kubeconfig)) {
        const char *p = env_kubeconfig;
        for (;;) {
            const char *colon = strchr(p, ':');
            size_t n = colon ? (size_t)(colon - p) : strlen(p);
            if (n) {
                char *one = arena_strndup(&a, p, n);
                if (!one) {
                    rc = -ENOMEM;
                    goto done;
                }
                bool seen = false;
                for (int i = 0; i < npaths && !seen; i++)
                    seen = strcmp(paths[i], one) == 0;
                if (!seen) {
                    if (npaths == KX_KCFG_MAX_FILES) {
                        msg = arena_fmt(&a, "error: KUBECONFIG names more than %d files",
                                        KX_KCFG_MAX_FILES);
                        rc = -EMSGSIZE;
                        goto done;
                    }
                    paths[npaths++] = one;
                }
            }
            if (!colon)
                break;
            p = colon + 1;
        }
    } else {
        const char *hf = nz(home) ? arena_fmt(&a, "%s/.kube/config", home) : ".kube/config";
        if (!hf) {
            rc = -ENOMEM;
            goto done;
        }
        paths[npaths++] = path_clean(&a, hf);
    }

    // 2. Load every file; a broken file is reported after all were tried.
    {
        const char *load_errs[KX_KCFG_MAX_FILES];
        int nerr = 0;
        for (int i = 0; i < npaths; i++) {
            bool missing;
            kfile *kf = &files[nfiles];
            const char *why = load_file(&a, paths[i], nfiles, kf, &missing);
            if (a.oom) {
                rc = -ENOMEM;
                goto done;
            }
            if (missing || why) {
                // The slot is reused by the next file.
                free(kf->clusters.v);
                free(kf->users.v);
                free(kf->contexts.v);
                *kf = kfile{};
            }
            if (missing)
                continue;
            if (why) {
                load_errs[nerr++] =
                    arena_fmt(&a, "error loading config file \"%s\": %s", paths[i], why);
                if (strstr(why, "over kubexec's limit"))
                    rc = -EMSGSIZE;
                continue;
            }
            nfiles++;
        }
        if (nerr) {
            msg = nerr == 1 ? arena_fmt(&a, "error: %s", load_errs[0]) : load_errs[0];
            for (int i = 1; i < nerr && msg; i++)
                msg = arena_fmt(&a, "%s\n%s", msg, load_errs[i]);
            if (!rc)
                rc = -EINVAL;
            goto done;
        }
    }

    // 3. Merge: maps first-wins by name, current-context from the first file
    // that sets it.
    for (int i = 0; i < nfiles; i++) {
        if (!elist_append(&m.clusters, &files[i].clusters) ||
            !elist_append(&m.users, &files[i].users) ||
            !elist_append(&m.contexts, &files[i].contexts)) {
            rc = -ENOMEM;
            goto done;
        }
        if (!m.current_context && nz(files[i].current_context))
            m.current_context = files[i].current_context;
    }
    elist_first_wins(&m.clusters);
    elist_first_wins(&m.users);
    elist_first_wins(&m.contexts);

    // 4. kubectl resolves the namespace first (unless -n was given), which
    // validates the configuration in use.
    if (!nz(f->namespace_)) {
        confirm_usable(&r, &e);
        if (e.n) {
            msg = format_errs(&a, &e, true);
            rc = -EINVAL;
            goto done;
        }
    }
    // 5. ClientConfig: names given on the command line must exist.
    {
        rcontext ctx;
        ruser u;
        rcluster cl;
        const char *why = get_user(&r, &u);
        if (!why)
            why = get_context(&r, &ctx);
        if (!why)
            why = get_cluster(&r, &cl);
        if (why) {
            msg = arena_fmt(&a, "error: %s", why);
            rc = -EINVAL;
            goto done;
        }
        confirm_usable(&r, &e);
        if (e.n) {
            msg = format_errs(&a, &e, false);
            rc = -EINVAL;
            goto done;
        }
    }
    // 6. The result, reading the referenced files.
    {
        const char *why = nullptr;
        rc = build(&r, out, &why);
        if (rc) {
            msg = why;
            kx_kcfg_free(out);
        }
    }

done:
    if (rc == 0 && a.oom) {
        kx_kcfg_free(out);
        rc = -ENOMEM;
    }
    if (rc)
        set_err(err, errcap, rc == -ENOMEM ? "error: out of memory" : msg);
    for (int i = 0; i < KX_KCFG_MAX_FILES; i++) {
        free(files[i].clusters.v);
        free(files[i].users.v);
        free(files[i].contexts.v);
    }
    free(m.clusters.v);
    free(m.users.v);
    free(m.contexts.v);
    arena_free(&a);
    return rc;
}

int kx_kcfg_server_parts(const char *server, bool *https, char *host, size_t hostcap, int *port,
                         char *prefix, size_t prefixcap)
{
    if (!server || !https || !host || !port || !prefix || !hostcap || !prefixcap)
        return -EINVAL;
    const char *p = server;
    const char *sep = strstr(p, "://");
    bool tls = false;
    if (sep) {
        size_t sl = (size_t)(sep - p);
        if (sl == 5 && strncasecmp(p, "https", 5) == 0)
            tls = true;
        else if (!(sl == 4 && strncasecmp(p, "http", 4) == 0))
            return -EINVAL;
        p = sep + 3;
    }
    size_t alen = strcspn(p, "/?#");
    const char *auth_end = p + alen;
    // Skip user info.
    const char *at = (const char *)memrchr(p, '@', alen);
    if (at)
        p = at + 1;
    const char *h = p, *h_end;
    const char *port_s = nullptr;
    if (*p == '[') {
        const char *rb = (const char *)memchr(p, ']', (size_t)(auth_end - p));
        if (!rb)
            return -EINVAL;
        h = p + 1;
        h_end = rb;
        if (rb + 1 < auth_end) {
            if (rb[1] != ':')
                return -EINVAL;
            port_s = rb + 2;
        }
    } else {
        const char *colon = (const char *)memchr(p, ':', (size_t)(auth_end - p));
        h_end = colon ? colon : auth_end;
        if (colon)
            port_s = colon + 1;
    }
    if (h_end == h)
        return -EINVAL;
    int pt = tls ? 443 : 80;
    if (port_s && port_s < auth_end) {
        long v = 0;
        for (const char *q = port_s; q < auth_end; q++) {
            if (!isdigit((unsigned char)*q))
                return -EINVAL;
            v = v * 10 + (*q - '0');
            if (v > 65535)
                return -EINVAL;
        }
        if (v == 0)
            return -EINVAL;
        pt = (int)v;
    }
    size_t hl = (size_t)(h_end - h);
    const char *path = auth_end;
    size_t pl = *path == '/' ? strcspn(path, "?#") : 0;
    while (pl && path[pl - 1] == '/')
        pl--;
    if (hl + 1 > hostcap || pl + 1 > prefixcap)
        return -EMSGSIZE;
    memcpy(host, h, hl);
    host[hl] = 0;
    memcpy(prefix, path, pl);
    prefix[pl] = 0;
    *https = tls;
    *port = pt;
    return 0;
}

kx_tls_ctx *kx_kcfg_tls_ctx(const kx_kcfg *c, char *err, size_t errcap)
{
    if (err && errcap)
        err[0] = 0;
    if (!c) {
        set_err(err, errcap, "error: no configuration");
        return nullptr;
    }
    kx_tls_client_pem p = {};
    p.ca = c->ca_pem;
    p.ca_len = c->ca_len;
    p.cert = c->cert_pem;
    p.cert_len = c->cert_len;
    p.key = c->key_pem;
    p.key_len = c->key_len;
    p.insecure = c->insecure;
    kx_tls_pem_error why = KX_TLS_PEM_NOMEM;
    kx_tls_ctx *ctx = kx_tls_client_ctx_pem(&p, &why);
    if (ctx)
        return ctx;
    // client-go's (Go crypto/tls's) words for each failure.
    const char *msg = "error: out of memory";
    switch (why) {
    case KX_TLS_PEM_INSECURE_WITH_CA:
        msg = "error: specifying a root certificates file with the insecure flag is not allowed";
        break;
    case KX_TLS_PEM_BAD_CA:
        msg = "error: unable to load root certificates: unable to parse bytes as PEM block";
        break;
    case KX_TLS_PEM_NO_SYSTEM_CA:
        msg = "error: unable to load the system's root certificates";
        break;
    case KX_TLS_PEM_BAD_CERT:
        msg = "error: tls: failed to find any PEM data in certificate input";
        break;
    case KX_TLS_PEM_BAD_KEY:
        msg = "error: tls: failed to find any PEM data in key input";
        break;
    case KX_TLS_PEM_KEY_MISMATCH:
        msg = "error: tls: private key does not match public key";
        break;
    case KX_TLS_PEM_OK:
    case KX_TLS_PEM_NOMEM:
        break;
    }
    set_err(err, errcap, msg);
    return nullptr;
}
