// In-memory Node/Pod store; see registry.h.
#include "registry.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "kubexec/util.h"

void kx_registry_time(uint64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

// Parses the RFC 3339 timestamps Kubernetes writes (fraction and offset
// allowed). Returns false when s is not one.
static bool parse_time(const char *s, uint64_t *ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return false;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    long off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int h = (p[1] - '0') * 10 + (p[2] - '0'), m = (p[4] - '0') * 10 + (p[5] - '0');
        off = (h * 60 + m) * 60 * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return false;
    }
    if (*p)
        return false;
    time_t t = timegm(&tm);
    if (t < 0)
        return false;
    *ms = (uint64_t)(t - off) * 1000;
    return true;
}

bool kx_registry_valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > KX_REG_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !((c == '-' || c == '.') && i > 0 && i + 1 < n))
            return false;
    }
    return true;
}

// A random version-4 UUID.
static void new_uid(char out[37])
{
    uint8_t b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        // Uniqueness is all that matters here; fall back to time and address.
        uint64_t x = (uint64_t)time(nullptr) ^ (uint64_t)(uintptr_t)out;
        for (int i = 0; i < 16; i++)
            b[i] = (uint8_t)(x >> (i % 8 * 8)) ^ (uint8_t)(i * 37);
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}

static const char *get_str(json_object *o, const char *key)
{
    json_object *v;
    if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return nullptr;
    return json_object_get_string(v);
}

// The object under `key`, created (and replacing a non-object) when missing.
static json_object *ensure_obj(json_object *o, const char *key)
{
    json_object *v;
    if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_object))
        return v;
    v = json_object_new_object();
    if (!v || json_object_object_add(o, key, v) != 0) {
        json_object_put(v);
        return nullptr;
    }
    return v;
}

static int set_str(json_object *o, const char *key, const char *val)
{
    json_object *s = json_object_new_string(val);
    if (!s || json_object_object_add(o, key, s) != 0) {
        json_object_put(s);
        return -ENOMEM;
    }
    return 0;
}

// Returns a new object with kind and apiVersion first (as the API server
// writes them) followed by o's other members; releases the caller's o. Null
// on ENOMEM.
static json_object *with_kind(json_object *o, const char *kind)
{
    json_object *n = json_object_new_object();
    bool ok = n && set_str(n, "kind", kind) == 0 && set_str(n, "apiVersion", "v1") == 0;
    if (ok) {
        json_object_object_foreach(o, key, val)
        {
            if (strcmp(key, "kind") == 0 || strcmp(key, "apiVersion") == 0)
                continue;
            if (json_object_object_add(n, key, json_object_get(val)) != 0) {
                json_object_put(val);
                ok = false;
                break;
            }
        }
    }
    json_object_put(o);
    if (!ok) {
        json_object_put(n);
        return nullptr;
    }
    return n;
}

static int set_rv(kx_registry *r, json_object *meta)
{
    if (!meta)
        return -ENOMEM;
    char rv[24];
    snprintf(rv, sizeof rv, "%llu", (unsigned long long)++r->rv);
    return set_str(meta, "resourceVersion", rv);
}

kx_reg_node *kx_registry_node_find(kx_registry *r, const char *name)
{
    for (size_t i = 0; i < r->n_nodes; i++)
        if (strcmp(r->nodes[i].name, name) == 0)
            return &r->nodes[i];
    return nullptr;
}

static int pod_cmp(const char *ns, const char *name, const kx_reg_pod *p)
{
    int c = strcmp(ns, p->ns);
    return c ? c : strcmp(name, p->name);
}

// Index of (ns, name) or of where it would be inserted.
static size_t pod_lower_bound(const kx_registry *r, const char *ns, const char *name)
{
    size_t lo = 0, hi = r->n_pods;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pod_cmp(ns, name, &r->pods[mid]) > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

kx_reg_pod *kx_registry_pod_find(kx_registry *r, const char *ns, const char *name)
{
    size_t i = pod_lower_bound(r, ns, name);
    if (i < r->n_pods && pod_cmp(ns, name, &r->pods[i]) == 0)
        return &r->pods[i];
    return nullptr;
}

static void pod_release(kx_reg_pod *p)
{
    json_object_put(p->obj);
    json_object_put(p->saved_status);
    p->obj = p->saved_status = nullptr;
}

void kx_registry_fini(kx_registry *r)
{
    for (size_t i = 0; i < r->n_nodes; i++)
        json_object_put(r->nodes[i].obj);
    for (size_t i = 0; i < r->n_pods; i++)
        pod_release(&r->pods[i]);
    free(r->nodes);
    free(r->pods);
    memset(r, 0, sizeof *r);
}

// Sets condition `type` in status.conditions (adding it when missing).
static int set_condition(json_object *status, const char *type, const char *st, const char *reason,
                         const char *message, uint64_t now_ms)
{
    json_object *conds;
    if (!json_object_object_get_ex(status, "conditions", &conds) ||
        !json_object_is_type(conds, json_type_array)) {
        conds = json_object_new_array();
        if (!conds || json_object_object_add(status, "conditions", conds) != 0) {
            json_object_put(conds);
            return -ENOMEM;
        }
    }
    json_object *c = nullptr;
    for (size_t i = 0; i < json_object_array_length(conds); i++) {
        json_object *e = json_object_array_get_idx(conds, i);
        const char *t = get_str(e, "type");
        if (t && strcmp(t, type) == 0) {
            c = e;
            break;
        }
    }
    if (!c) {
        c = json_object_new_object();
        if (!c || json_object_array_add(conds, c) != 0) {
            json_object_put(c);
            return -ENOMEM;
        }
        if (set_str(c, "type", type))
            return -ENOMEM;
    }
    char ts[32];
    kx_registry_time(now_ms, ts, sizeof ts);
    const char *old = get_str(c, "status");
    bool changed = !old || strcmp(old, st) != 0;
    if (set_str(c, "status", st) || (changed && set_str(c, "lastTransitionTime", ts)) ||
        set_str(c, "reason", reason) || set_str(c, "message", message))
        return -ENOMEM;
    return 0;
}

// Overlays "node unreachable" on a pod: keeps the reported status aside and
// shows phase Unknown with Ready False, as the node lifecycle controller does.
static int pod_mark_unknown(kx_reg_pod *p, uint64_t now_ms)
{
    json_object *status = ensure_obj(p->obj, "status");
    if (!status)
        return -ENOMEM;
    if (!p->saved_status) {
        json_object *copy = nullptr;
        if (json_object_deep_copy(status, &copy, nullptr) != 0)
            return -ENOMEM;
        p->saved_status = copy;
    }
    if (set_str(status, "phase", "Unknown"))
        return -ENOMEM;
    return set_condition(status, "Ready", "False", "NodeNotReady",
                         "Node is not ready: kubelet stopped posting node status.", now_ms);
}

static void pod_restore(kx_reg_pod *p)
{
    if (!p->saved_status)
        return;
    // object_add drops the overlaid status and takes the saved reference.
    if (json_object_object_add(p->obj, "status", p->saved_status) != 0)
        json_object_put(p->saved_status);
    p->saved_status = nullptr;
}

int kx_registry_node_put(kx_registry *r, const char *name, json_object *node, uint64_t now_ms,
                         bool *created)
{
    if (created)
        *created = false;
    if (!node || !json_object_is_type(node, json_type_object) || !kx_registry_valid_name(name)) {
        json_object_put(node);
        return -EINVAL;
    }
    kx_reg_node *n = kx_registry_node_find(r, name);
    if (!n) {
        if (r->n_nodes >= KX_REG_MAX_NODES) {
            json_object_put(node);
            return -EMSGSIZE;
        }
        if (r->n_nodes == r->cap_nodes) {
            size_t cap = r->cap_nodes ? r->cap_nodes * 2 : 8;
            kx_reg_node *nn = (kx_reg_node *)realloc(r->nodes, cap * sizeof *nn);
            if (!nn) {
                json_object_put(node);
                return -ENOMEM;
            }
            r->nodes = nn;
            r->cap_nodes = cap;
        }
    }
    node = with_kind(node, "Node");
    json_object *meta = node ? ensure_obj(node, "metadata") : nullptr;
    if (!meta || set_str(meta, "name", name)) {
        json_object_put(node);
        return -ENOMEM;
    }
    // uid and creationTimestamp belong to the API server: keep the first ones.
    char uid[37], ts[32];
    const char *old_uid = n ? get_str(json_object_object_get(n->obj, "metadata"), "uid") : nullptr;
    if (old_uid)
        kx_strlcpy(uid, old_uid, sizeof uid);
    else
        new_uid(uid);
    uint64_t created_ms = n ? n->created_ms : now_ms;
    kx_registry_time(created_ms, ts, sizeof ts);
    if (set_str(meta, "uid", uid) || set_str(meta, "creationTimestamp", ts) || set_rv(r, meta)) {
        json_object_put(node);
        return -ENOMEM;
    }
    if (!n) {
        n = &r->nodes[r->n_nodes++];
        memset(n, 0, sizeof *n);
        kx_strlcpy(n->name, name, sizeof n->name);
        n->created_ms = now_ms;
        if (created)
            *created = true;
    } else {
        json_object_put(n->obj);
    }
    n->obj = node;
    n->heartbeat_ms = now_ms;
    if (n->stale) {
        n->stale = false;
        for (size_t i = 0; i < r->n_pods; i++)
            if (strcmp(r->pods[i].node, name) == 0)
                pod_restore(&r->pods[i]);
    }
    return 0;
}

// One validated entry of a node's pod report, before it is committed.
struct staged_pod {
    const char *ns, *name;
    json_object *obj;  // our own deep copy
    uint64_t created_ms;
};

static int stage_cmp(const void *a, const void *b)
{
    const staged_pod *x = (const staged_pod *)a, *y = (const staged_pod *)b;
    int c = strcmp(x->ns, y->ns);
    return c ? c : strcmp(x->name, y->name);
}

int kx_registry_node_pods_put(kx_registry *r, const char *node, json_object *pods, uint64_t now_ms,
                              char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = 0;
    if (!kx_registry_valid_name(node)) {
        snprintf(why, whylen, "invalid node name");
        return -EINVAL;
    }
    if (!pods || !json_object_is_type(pods, json_type_array)) {
        snprintf(why, whylen, "body must be a JSON array of pods");
        return -EINVAL;
    }
    size_t n = json_object_array_length(pods);
    if (n > KX_REG_MAX_NODE_PODS) {
        snprintf(why, whylen, "more than %d pods", (int)KX_REG_MAX_NODE_PODS);
        return -EMSGSIZE;
    }
    staged_pod *st = (staged_pod *)calloc(n ? n : 1, sizeof *st);
    if (!st)
        return -ENOMEM;
    int rc = 0;
    size_t staged = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *src = json_object_array_get_idx(pods, i);
        if (!src || !json_object_is_type(src, json_type_object)) {
            snprintf(why, whylen, "pods[%zu] is not an object", i);
            rc = -EINVAL;
            break;
        }
        json_object *copy = nullptr;
        if (json_object_deep_copy(src, &copy, nullptr) != 0 || !(copy = with_kind(copy, "Pod"))) {
            rc = -ENOMEM;
            break;
        }
        st[staged++].obj = copy;
        json_object *meta = ensure_obj(copy, "metadata");
        json_object *spec = ensure_obj(copy, "spec");
        if (!meta || !spec) {
            rc = -ENOMEM;
            break;
        }
        const char *name = get_str(meta, "name");
        if (!get_str(meta, "namespace") && set_str(meta, "namespace", "default")) {
            rc = -ENOMEM;
            break;
        }
        const char *ns = get_str(meta, "namespace");
        if (!kx_registry_valid_name(name) || !kx_registry_valid_name(ns) || strlen(ns) > 63) {
            snprintf(why, whylen, "pods[%zu]: metadata.name and metadata.namespace must be DNS-1123 names", i);
            rc = -EINVAL;
            break;
        }
        json_object *ctrs;
        if (!json_object_object_get_ex(spec, "containers", &ctrs) ||
            !json_object_is_type(ctrs, json_type_array)) {
            snprintf(why, whylen, "pods[%zu]: spec.containers must be an array", i);
            rc = -EINVAL;
            break;
        }
        if (set_str(spec, "nodeName", node)) {
            rc = -ENOMEM;
            break;
        }
        st[i].ns = ns;
        st[i].name = name;
        kx_reg_pod *old = kx_registry_pod_find(r, ns, name);
        if (old && strcmp(old->node, node) != 0) {
            snprintf(why, whylen, "pod %s/%s already belongs to node %s", ns, name, old->node);
            rc = -EEXIST;
            break;
        }
        // Keep the identity the pod already had; the node's own values win.
        json_object *old_meta = old ? json_object_object_get(old->obj, "metadata") : nullptr;
        char uid[37];
        const char *u = get_str(meta, "uid");
        if (!u || !*u) {
            const char *ou = get_str(old_meta, "uid");
            if (ou)
                kx_strlcpy(uid, ou, sizeof uid);
            else
                new_uid(uid);
            if (set_str(meta, "uid", uid)) {
                rc = -ENOMEM;
                break;
            }
        }
        const char *ct = get_str(meta, "creationTimestamp");
        uint64_t cms;
        if (!ct || !parse_time(ct, &cms)) {
            cms = old ? old->created_ms : now_ms;
            char ts[32];
            kx_registry_time(cms, ts, sizeof ts);
            if (set_str(meta, "creationTimestamp", ts)) {
                rc = -ENOMEM;
                break;
            }
        }
        st[i].created_ms = cms;
    }
    if (rc == 0 && staged > 1) {
        qsort(st, staged, sizeof *st, stage_cmp);
        for (size_t i = 1; i < staged; i++)
            if (stage_cmp(&st[i - 1], &st[i]) == 0) {
                snprintf(why, whylen, "pod %s/%s is listed twice", st[i].ns, st[i].name);
                rc = -EINVAL;
                break;
            }
    }
    // Count what the cluster holds after the swap.
    size_t others = 0;
    for (size_t i = 0; rc == 0 && i < r->n_pods; i++)
        if (strcmp(r->pods[i].node, node) != 0)
            others++;
    if (rc == 0 && others + staged > KX_REG_MAX_PODS) {
        snprintf(why, whylen, "cluster pod limit reached");
        rc = -EMSGSIZE;
    }
    kx_reg_pod *merged = nullptr;
    size_t cap = others + staged;
    if (rc == 0) {
        merged = (kx_reg_pod *)calloc(cap ? cap : 1, sizeof *merged);
        if (!merged)
            rc = -ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < staged; i++)
        if (set_rv(r, json_object_object_get(st[i].obj, "metadata")))
            rc = -ENOMEM;
    if (rc != 0) {
        for (size_t i = 0; i < staged; i++)
            json_object_put(st[i].obj);
        free(st);
        free(merged);
        return rc;
    }
    // Commit: merge the other nodes' pods (sorted) with the staged ones (sorted).
    kx_reg_node *nd = kx_registry_node_find(r, node);
    size_t a = 0, b = 0, m = 0;
    while (a < r->n_pods || b < staged) {
        while (a < r->n_pods && strcmp(r->pods[a].node, node) == 0) {
            pod_release(&r->pods[a]);
            a++;
        }
        bool take_old = a < r->n_pods &&
                        (b >= staged || pod_cmp(st[b].ns, st[b].name, &r->pods[a]) > 0);
        if (take_old) {
            merged[m++] = r->pods[a++];
        } else if (b < staged) {
            kx_reg_pod *p = &merged[m++];
            kx_strlcpy(p->ns, st[b].ns, sizeof p->ns);
            kx_strlcpy(p->name, st[b].name, sizeof p->name);
            kx_strlcpy(p->node, node, sizeof p->node);
            p->obj = st[b].obj;
            p->created_ms = st[b].created_ms;
            p->saved_status = nullptr;
            if (nd && nd->stale)
                (void)pod_mark_unknown(p, now_ms);
            b++;
        }
    }
    free(r->pods);
    free(st);
    r->pods = merged;
    r->n_pods = m;
    r->cap_pods = cap;
    return (int)staged;
}

int kx_registry_tick(kx_registry *r, uint64_t now_ms, uint64_t grace_ms)
{
    int changed = 0;
    for (size_t i = 0; i < r->n_nodes; i++) {
        kx_reg_node *n = &r->nodes[i];
        if (n->stale || now_ms < n->heartbeat_ms || now_ms - n->heartbeat_ms <= grace_ms)
            continue;
        n->stale = true;
        changed++;
        json_object *status = ensure_obj(n->obj, "status");
        if (status)
            (void)set_condition(status, "Ready", "Unknown", "NodeStatusUnknown",
                                "Kubelet stopped posting node status.", now_ms);
        (void)set_rv(r, ensure_obj(n->obj, "metadata"));
        for (size_t j = 0; j < r->n_pods; j++) {
            if (strcmp(r->pods[j].node, n->name) != 0)
                continue;
            (void)pod_mark_unknown(&r->pods[j], now_ms);
            (void)set_rv(r, ensure_obj(r->pods[j].obj, "metadata"));
        }
    }
    return changed;
}
