// registry.h - the API server's in-memory store of Nodes and Pods.
//
// Objects are kept as json-c trees exactly as the node reported them, plus
// the metadata the API server owns (uid, creationTimestamp, resourceVersion).
// Single-threaded: only the loop thread touches a registry. Every function
// takes the wall-clock time in milliseconds since the epoch (now_ms) instead
// of reading a clock, so tests control time.
//
// Ownership: the registry owns every json_object it stores; functions that
// take a json_object* say whether they take a reference. Pointers returned by
// the find functions stay valid until the next call that modifies the
// registry.
#pragma once

#include <stddef.h>
#include <stdint.h>

struct json_object;

// Limits: an over-limit write fails with -EMSGSIZE and changes nothing.
enum {
    KX_REG_MAX_NODES = 1024,
    KX_REG_MAX_PODS = 16384,      // in the whole cluster
    KX_REG_MAX_NODE_PODS = 1024,  // in one node's report
    KX_REG_NAME_MAX = 253,        // DNS-1123 subdomain
};

struct kx_reg_node {
    char name[KX_REG_NAME_MAX + 1];
    json_object *obj;        // the Node, kind/apiVersion/metadata filled in
    uint64_t heartbeat_ms;   // last status write
    uint64_t created_ms;     // first sight (creationTimestamp)
    bool stale;              // heartbeat older than the grace period
};

struct kx_reg_pod {
    char ns[KX_REG_NAME_MAX + 1];
    char name[KX_REG_NAME_MAX + 1];
    char node[KX_REG_NAME_MAX + 1];  // spec.nodeName; never empty for node-reported pods
    json_object *obj;                // the Pod
    json_object *saved_status;       // the reported status while the node is stale, else null
    uint64_t created_ms;
};

struct kx_registry {
    kx_reg_node *nodes;
    size_t n_nodes, cap_nodes;
    kx_reg_pod *pods;   // kept sorted by (ns, name) so lists come out in kubectl's order
    size_t n_pods, cap_pods;
    uint64_t rv;        // last resourceVersion handed out
};

// An empty registry is all zeros; fini frees everything and leaves it empty.
void kx_registry_fini(kx_registry *r);

// True for a DNS-1123 subdomain (lowercase alphanumerics, '-', '.', at most
// 253 characters, starting and ending alphanumeric).
bool kx_registry_valid_name(const char *s);

kx_reg_node *kx_registry_node_find(kx_registry *r, const char *name);
kx_reg_pod *kx_registry_pod_find(kx_registry *r, const char *ns, const char *name);

// Stores a Node written by the node itself (registration or heartbeat).
// Takes the caller's reference to `node` in every case (it is released on
// failure). metadata.name is forced to `name`; creationTimestamp and uid are
// kept from the first sight; resourceVersion is bumped; heartbeat = now_ms.
// A stale node becomes fresh again and its pods get their reported status
// back. Returns 0, -EINVAL (not a JSON object), -EMSGSIZE (too many nodes) or
// -ENOMEM. *created (may be null) tells whether the node was new.
int kx_registry_node_put(kx_registry *r, const char *name, json_object *node, uint64_t now_ms,
                         bool *created);

// Replaces every pod of node `node` with the pods in `pods` (a JSON array of
// v1 Pods; the caller keeps its reference, the registry stores its own).
// spec.nodeName is forced to `node`; metadata.namespace defaults to
// "default"; uid and creationTimestamp are kept for pods seen before (the
// node's own values win when present). All-or-nothing: on failure nothing
// changes. Returns the number of pods stored, or -EINVAL (bad shape; `why`
// says what), -EEXIST (a pod of that name belongs to another node),
// -EMSGSIZE (over a limit) or -ENOMEM.
int kx_registry_node_pods_put(kx_registry *r, const char *node, json_object *pods, uint64_t now_ms,
                              char *why, size_t whylen);

// Marks nodes whose heartbeat is older than grace_ms stale: their Ready
// condition becomes Unknown (reason NodeStatusUnknown) and their pods' phase
// Unknown with condition Ready False. Returns how many nodes changed.
int kx_registry_tick(kx_registry *r, uint64_t now_ms, uint64_t grace_ms);

// RFC 3339 UTC with second precision ("2006-01-02T15:04:05Z") into out (>= 21 bytes).
void kx_registry_time(uint64_t ms, char *out, size_t cap);
