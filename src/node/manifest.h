// manifest.h - static pod manifests: loading YAML/JSON files into json-c and
// validating them as v1 Pods.
//
// Errors: functions return 0 or a negative errno value and write a one-line,
// human readable message into err (always NUL-terminated when errlen > 0).
// Nothing here logs; the caller decides where messages go.
#pragma once

#include <stddef.h>
#include <stdbool.h>
#include <json-c/json.h>

// Hard limits on a manifest. A file bigger than KX_MANIFEST_MAX_BYTES is refused
// before parsing (-EFBIG); deeper nesting is refused (-EINVAL) so a hostile file
// cannot exhaust the stack or memory.
enum {
    KX_MANIFEST_MAX_BYTES = 1 << 20,
    KX_MANIFEST_MAX_DEPTH = 64,
    KX_POD_MAX_CONTAINERS = 64,
    KX_CTR_MAX_ARGV = 4096,      // command + args entries, each
    KX_CTR_MAX_ENV = 4096,
};

struct kx_env {
    char *name;
    char *value;                 // "" when the manifest has no value
};

// One spec.containers[] entry. Every string is malloc'd and owned by the
// enclosing kx_pod_spec.
struct kx_container_spec {
    char *name, *image;
    char **command; size_t ncommand;   // spec.containers[].command
    char **args; size_t nargs;         // spec.containers[].args
    kx_env *env; size_t nenv;
    char *working_dir;                  // may be null
    bool tty, stdin_, stdin_once;
};

enum kx_restart { KX_RESTART_ALWAYS, KX_RESTART_ON_FAILURE, KX_RESTART_NEVER };

struct kx_pod_spec {
    char *name, *ns;                    // metadata.namespace defaults to "default"
    json_object *labels, *annotations;  // owned refs (may be null); always JSON objects of strings
    kx_container_spec *containers; size_t ncontainers;
    kx_restart restart_policy;          // default Always
    bool host_network;
};

// Reads a manifest file into a new json-c value (*out, caller json_object_put()s).
//
// Format: `.json` files are parsed as JSON; `.yaml`/`.yml` (and anything else
// whose first non-blank byte is not '{') as YAML through libyaml. YAML typing
// follows the YAML 1.2 core schema, which is what a Kubernetes user expects
// from JSON-compatible YAML: plain scalars `null`/`~`/empty -> null,
// `true`/`false` (also True/TRUE...) -> bool, decimal/0x/0o integers -> int
// (a decimal integer beyond int64 becomes a double), decimals/exponents ->
// double; everything else, and every quoted or block scalar, or one tagged
// !!str, stays a string. YAML 1.1's yes/no/on/off are deliberately strings
// (the "Norway problem"), and so are .inf/.nan, which JSON cannot carry.
//
// Refused (-EINVAL with the reason and a line number): anchors/aliases,
// non-scalar mapping keys, nesting deeper than KX_MANIFEST_MAX_DEPTH, and a
// second non-empty YAML document: a static pod file holds exactly one pod, and
// silently ignoring a second one (as the kubelet does) hides mistakes. Empty
// trailing documents (a final `---`) are fine. A file with no document at all is
// -EINVAL ("empty manifest").
// Other errors: -EFBIG over KX_MANIFEST_MAX_BYTES, -ENOENT/-EACCES/... from
// open/read, -ENOMEM.
int kx_manifest_load(const char *path, json_object **out, char *err, size_t errlen);

// Same as kx_manifest_load for bytes already in memory; `json` selects the JSON
// parser, otherwise YAML. Same limits and errors.
int kx_manifest_parse(const char *data, size_t len, bool json, json_object **out,
                      char *err, size_t errlen);

// Validates a v1 Pod and copies what the node needs into *out (zeroed first;
// on failure nothing is left allocated). Checks, in this order, with the
// Kubernetes-style message naming the field:
//   kind == "Pod", apiVersion == "v1"                 (`kind: Required value`,
//                                                      `apiVersion: Unsupported value: "v2": supported values: "v1"`)
//   metadata.name is a DNS-1123 label (<= 63)         (`metadata.name: Invalid value: "A": a lowercase RFC 1123 label ...`)
//   metadata.namespace, if given, likewise; labels/annotations objects of strings
//   spec.containers non-empty (<= KX_POD_MAX_CONTAINERS)  (`spec.containers: Required value`)
//   each container: name DNS-1123 label and unique     (`spec.containers[1].name: Duplicate value: "a"`)
//                   image present, relative, no ".." component, printable
//                                                      (`spec.containers[0].image: Required value`)
//                   command/args arrays of strings, env [{name, value}] (valueFrom unsupported),
//                   workingDir string, tty/stdin/stdinOnce booleans
//   spec.restartPolicy Always|OnFailure|Never          (`spec.restartPolicy: Unsupported value: ...`)
//   spec.hostNetwork boolean
// Returns 0, -EINVAL (validation, message in err) or -ENOMEM.
int kx_pod_spec_parse(json_object *pod, kx_pod_spec *out, char *err, size_t errlen);

// Frees everything a successful kx_pod_spec_parse allocated and zeroes *s.
// Safe on a zeroed struct.
void kx_pod_spec_free(kx_pod_spec *s);

// True if s is a DNS-1123 label: 1-63 chars of [a-z0-9-], alphanumeric at both ends.
bool kx_is_dns1123_label(const char *s);
