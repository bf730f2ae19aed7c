// kubexec/labels.h - Kubernetes label selectors (the syntax of
// k8s.io/apimachinery/pkg/labels.Parse): requirements joined by ',', each
//   key | !key | key=v | key==v | key!=v | key in (v,...) | key notin (v,...)
//   | key>n | key<n
// The API server filters lists with them (?labelSelector=), the CLI checks
// `-l` before asking (and filters again, harmless against a server that did).
//
// Limits: KX_LSEL_MAX_LEN bytes of text, KX_LSEL_MAX_REQS requirements,
// KX_LSEL_MAX_VALS values in one set; past them parsing fails (-EMSGSIZE).
#pragma once

#include <stddef.h>

struct json_object;

#define KX_LSEL_MAX_REQS 64
#define KX_LSEL_MAX_VALS 64
#define KX_LSEL_MAX_LEN 4096

enum kx_lsel_op {
    KX_LSEL_EXISTS, KX_LSEL_NOT_EXISTS, KX_LSEL_EQ, KX_LSEL_NEQ, KX_LSEL_IN, KX_LSEL_NOTIN,
    KX_LSEL_GT, KX_LSEL_LT
};

struct kx_lsel_req {
    const char *key;            // into the selector's pool
    kx_lsel_op op;
    const char *vals[KX_LSEL_MAX_VALS];
    size_t nvals;
    long long num;              // KX_LSEL_GT / KX_LSEL_LT
};

// A parsed selector: self-contained (~40 KiB; heap-allocate it in a daemon).
// An empty selector (no requirements) matches everything.
struct kx_lsel {
    kx_lsel_req reqs[KX_LSEL_MAX_REQS];
    size_t n;
    char pool[2 * KX_LSEL_MAX_LEN + 2]; // token texts, NUL-separated
    size_t used;
};

// Parses s (NUL-terminated) into sel. 0; -EINVAL for a syntax error, with
// `why` holding upstream's words ("unable to parse requirement: found ',',
// expected: identifier"); -EMSGSIZE over a limit (why says which).
int kx_lsel_parse(const char *s, kx_lsel *sel, char *why, size_t whylen);

// Whether an object whose metadata.labels is `labels` (a JSON object of
// strings, or null for none) satisfies every requirement.
bool kx_lsel_match(const kx_lsel *sel, json_object *labels);
