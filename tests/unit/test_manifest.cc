// Unit tests for src/node/manifest.h (manifest loading and Pod validation).
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
extern "C" {
#include <cmocka.h>
}

#include "manifest.h"

struct fixture {
    char dir[64];
};

static int setup(void **state)
{
    fixture *f = (fixture *)calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/kx_manifest_XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = (fixture *)*state;
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static void write_file(const char *path, const char *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    fclose(fp);
}

static json_object *get(json_object *o, const char *k)
{
    json_object *v = NULL;
    assert_true(json_object_object_get_ex(o, k, &v));
    return v;
}

static const char kYamlPod[] =
    "# a static pod\n"
    "apiVersion: v1\n"
    "kind: Pod\n"
    "metadata:\n"
    "  name: web\n"
    "  labels:\n"
    "    app: web\n"
    "    tier: \"3\"\n"
    "  annotations: {kubectl.kubernetes.io/default-container: app}\n"
    "spec:\n"
    "  restartPolicy: OnFailure\n"
    "  hostNetwork: true\n"
    "  containers:\n"
    "  - name: app\n"
    "    image: busybox\n"
    "    command: [/bin/sh, -c]\n"
    "    args:\n"
    "    - |\n"
    "      echo hi\n"
    "      sleep 1\n"
    "    env:\n"
    "    - name: A\n"
    "      value: \"1\"\n"
    "    - name: EMPTY\n"
    "    workingDir: /tmp\n"
    "    tty: true\n"
    "    stdin: true\n"
    "    stdinOnce: false\n"
    "  - name: sidecar\n"
    "    image: library/busybox\n"
    "    args: [sleep, \"3600\"]\n"
    "  x-typed:\n"
    "    int: 42\n"
    "    neg: -7\n"
    "    hex: 0x1F\n"
    "    oct: 0o17\n"
    "    float: 1.5\n"
    "    exp: 1e3\n"
    "    t: True\n"
    "    f: false\n"
    "    n1: ~\n"
    "    n2: null\n"
    "    n3:\n"
    "    yes: yes\n"
    "    qint: \"42\"\n"
    "    sqbool: 'true'\n"
    "    tagged: !!str 12\n"
    "    ver: 1.2.3\n"
    "    inf: .inf\n"
    "    big: 123456789012345678901234567890\n"
    "    nested: [[1, a], {k: [true]}]\n"
    "---\n";

static void yaml_typed_scalars_and_structure(void **state)
{
    fixture *f = (fixture *)*state;
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/web.yaml", f->dir);
    write_file(path, kYamlPod, sizeof kYamlPod - 1);
    json_object *pod = NULL;
    assert_int_equal(kx_manifest_load(path, &pod, err, sizeof err), 0);
    json_object *t = get(get(pod, "spec"), "x-typed");
    assert_true(json_object_is_type(get(t, "int"), json_type_int));
    assert_int_equal(json_object_get_int64(get(t, "int")), 42);
    assert_int_equal(json_object_get_int64(get(t, "neg")), -7);
    assert_int_equal(json_object_get_int64(get(t, "hex")), 31);
    assert_int_equal(json_object_get_int64(get(t, "oct")), 15);
    assert_true(json_object_is_type(get(t, "float"), json_type_double));
    assert_true(json_object_get_double(get(t, "float")) == 1.5);
    assert_true(json_object_get_double(get(t, "exp")) == 1000.0);
    assert_true(json_object_is_type(get(t, "t"), json_type_boolean));
    assert_true(json_object_get_boolean(get(t, "t")));
    assert_false(json_object_get_boolean(get(t, "f")));
    assert_null(get(t, "n1"));
    assert_null(get(t, "n2"));
    assert_null(get(t, "n3"));
    assert_string_equal(json_object_get_string(get(t, "yes")), "yes");
    assert_true(json_object_is_type(get(t, "qint"), json_type_string));
    assert_string_equal(json_object_get_string(get(t, "qint")), "42");
    assert_true(json_object_is_type(get(t, "sqbool"), json_type_string));
    assert_true(json_object_is_type(get(t, "tagged"), json_type_string));
    assert_string_equal(json_object_get_string(get(t, "ver")), "1.2.3");
    assert_true(json_object_is_type(get(t, "inf"), json_type_string));
    assert_true(json_object_is_type(get(t, "big"), json_type_double));
    json_object *nested = get(t, "nested");
    assert_string_equal(json_object_to_json_string_ext(nested, JSON_C_TO_STRING_PLAIN), "[[1,\"a\"],{\"k\":[true]}]");
    // A block scalar keeps its newlines.
    json_object *c0 = json_object_array_get_idx(get(get(pod, "spec"), "containers"), 0);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(get(c0, "args"), 0)),
                        "echo hi\nsleep 1\n");

    kx_pod_spec s;
    assert_int_equal(kx_pod_spec_parse(pod, &s, err, sizeof err), 0);
    assert_string_equal(s.name, "web");
    assert_string_equal(s.ns, "default");
    assert_int_equal(s.restart_policy, KX_RESTART_ON_FAILURE);
    assert_true(s.host_network);
    assert_string_equal(json_object_get_string(get(s.labels, "tier")), "3");
    assert_string_equal(json_object_get_string(get(s.annotations, "kubectl.kubernetes.io/default-container")), "app");
    assert_int_equal(s.ncontainers, 2);
    kx_container_spec *a = &s.containers[0];
    assert_string_equal(a->name, "app");
    assert_string_equal(a->image, "busybox");
    assert_int_equal(a->ncommand, 2);
    assert_string_equal(a->command[0], "/bin/sh");
    assert_string_equal(a->command[1], "-c");
    assert_null(a->command[2]);
    assert_int_equal(a->nargs, 1);
    assert_int_equal(a->nenv, 2);
    assert_string_equal(a->env[0].name, "A");
    assert_string_equal(a->env[0].value, "1");
    assert_string_equal(a->env[1].name, "EMPTY");
    assert_string_equal(a->env[1].value, "");
    assert_string_equal(a->working_dir, "/tmp");
    assert_true(a->tty);
    assert_true(a->stdin_);
    assert_false(a->stdin_once);
    kx_container_spec *b = &s.containers[1];
    assert_string_equal(b->image, "library/busybox");
    assert_int_equal(b->ncommand, 0);
    assert_null(b->command);
    assert_int_equal(b->nargs, 2);
    assert_string_equal(b->args[1], "3600");
    assert_null(b->working_dir);
    assert_false(b->tty);
    kx_pod_spec_free(&s);
    kx_pod_spec_free(&s);   // safe on a zeroed struct
    json_object_put(pod);
}

static void json_pod_and_defaults(void **state)
{
    fixture *f = (fixture *)*state;
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/p.json", f->dir);
    const char *js = "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p1\",\"namespace\":\"ns-a\"},"
                     "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"busybox\",\"args\":[\"true\"]}]}}\n";
    write_file(path, js, strlen(js));
    json_object *pod = NULL;
    assert_int_equal(kx_manifest_load(path, &pod, err, sizeof err), 0);
    kx_pod_spec s;
    assert_int_equal(kx_pod_spec_parse(pod, &s, err, sizeof err), 0);
    assert_string_equal(s.ns, "ns-a");
    assert_int_equal(s.restart_policy, KX_RESTART_ALWAYS);
    assert_false(s.host_network);
    assert_null(s.labels);
    assert_null(s.annotations);
    assert_int_equal(s.containers[0].nenv, 0);
    kx_pod_spec_free(&s);
    json_object_put(pod);

    // The same pod as YAML without namespace: defaults to "default".
    const char *ys = "{apiVersion: v1, kind: Pod, metadata: {name: p2}, spec: {containers: [{name: c, image: i}]}}";
    assert_int_equal(kx_manifest_parse(ys, strlen(ys), false, &pod, err, sizeof err), 0);
    assert_int_equal(kx_pod_spec_parse(pod, &s, err, sizeof err), 0);
    assert_string_equal(s.name, "p2");
    assert_string_equal(s.ns, "default");
    kx_pod_spec_free(&s);
    json_object_put(pod);

    // Unknown extension: sniffed ('{' => JSON).
    snprintf(path, sizeof path, "%s/p.txt", f->dir);
    write_file(path, js, strlen(js));
    assert_int_equal(kx_manifest_load(path, &pod, err, sizeof err), 0);
    json_object_put(pod);
}

struct bad_case {
    const char *yaml;
    const char *msg;
};

#define POD_HEAD "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"

static const bad_case kBad[] = {
    {"[1, 2]", "a Pod must be a JSON/YAML object"},
    {"apiVersion: v1\nmetadata: {name: p}", "kind: Required value"},
    {"kind: Deployment\napiVersion: v1", "kind: Unsupported value: \"Deployment\": supported values: \"Pod\""},
    {"kind: Pod", "apiVersion: Required value"},
    {"kind: Pod\napiVersion: apps/v1", "apiVersion: Unsupported value: \"apps/v1\": supported values: \"v1\""},
    {"kind: Pod\napiVersion: v1", "metadata.name: Required value"},
    {"kind: Pod\napiVersion: v1\nmetadata: {}", "metadata.name: Required value"},
    {"kind: Pod\napiVersion: v1\nmetadata: {name: \"\"}", "metadata.name: Required value"},
    {"kind: Pod\napiVersion: v1\nmetadata: {name: 12}", "metadata.name: Invalid value: 12: must be a string"},
    {"kind: Pod\napiVersion: v1\nmetadata: {name: Web}",
     "metadata.name: Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric "
     "characters or '-', and must start and end with an alphanumeric character"},
    {"kind: Pod\napiVersion: v1\nmetadata: {name: web-}",
     "metadata.name: Invalid value: \"web-\": a lowercase RFC 1123 label must consist of lower case alphanumeric "
     "characters or '-', and must start and end with an alphanumeric character"},
    {"kind: Pod\napiVersion: v1\nmetadata: {name: "
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}",
     "metadata.name: Invalid value: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": must be no "
     "more than 63 characters"},
    {"kind: Pod\napiVersion: v1\nmetadata: {name: p, namespace: a.b}",
     "metadata.namespace: Invalid value: \"a.b\": a lowercase RFC 1123 label must consist of lower case "
     "alphanumeric characters or '-', and must start and end with an alphanumeric character"},
    {"kind: Pod\napiVersion: v1\nmetadata: {name: p, labels: [a]}",
     "metadata.labels: Invalid value: [\"a\"]: must be a map of string keys to string values"},
    {"kind: Pod\napiVersion: v1\nmetadata: {name: p, labels: {a: 1}}",
     "metadata.labels[a]: Invalid value: 1: must be a string"},
    {"kind: Pod\napiVersion: v1\nmetadata: {name: p, annotations: {a: true}}",
     "metadata.annotations[a]: Invalid value: true: must be a string"},
    {POD_HEAD, "spec.containers: Required value"},
    {POD_HEAD "spec: {}", "spec.containers: Required value"},
    {POD_HEAD "spec: {containers: []}", "spec.containers: Required value"},
    {POD_HEAD "spec: {containers: {}}", "spec.containers: Invalid value: {}: must be a list"},
    {POD_HEAD "spec: {containers: [{image: i}]}", "spec.containers[0].name: Required value"},
    {POD_HEAD "spec: {containers: [{name: C_1, image: i}]}",
     "spec.containers[0].name: Invalid value: \"C_1\": a lowercase RFC 1123 label must consist of lower case "
     "alphanumeric characters or '-', and must start and end with an alphanumeric character"},
    {POD_HEAD "spec: {containers: [{name: a}]}", "spec.containers[0].image: Required value"},
    {POD_HEAD "spec: {containers: [{name: a, image: \"\"}]}", "spec.containers[0].image: Required value"},
    {POD_HEAD "spec: {containers: [{name: a, image: i}, {name: a, image: i}]}",
     "spec.containers[1].name: Duplicate value: \"a\""},
    {POD_HEAD "spec: {containers: [{name: a, image: ../etc}]}",
     "spec.containers[0].image: Invalid value: \"../etc\": must be a relative image name without empty, \".\" or "
     "\"..\" path components, spaces or control characters"},
    {POD_HEAD "spec: {containers: [{name: a, image: /abs}]}",
     "spec.containers[0].image: Invalid value: \"/abs\": must be a relative image name without empty, \".\" or "
     "\"..\" path components, spaces or control characters"},
    {POD_HEAD "spec: {containers: [{name: a, image: i, command: sh}]}",
     "spec.containers[0].command: Invalid value: \"sh\": must be a list of strings"},
    {POD_HEAD "spec: {containers: [{name: a, image: i, args: [a, 5]}]}",
     "spec.containers[0].args[1]: Invalid value: 5: must be a string"},
    {POD_HEAD "spec: {containers: [{name: a, image: i, args: [\"a\\0b\"]}]}",
     "spec.containers[0].args[0]: Invalid value: \"a\\u0000b\": must not contain NUL bytes"},
    {POD_HEAD "spec: {containers: [{name: a, image: i, env: {A: b}}]}",
     "spec.containers[0].env: Invalid value: {\"A\":\"b\"}: must be a list of {name, value} objects"},
    {POD_HEAD "spec: {containers: [{name: a, image: i, env: [{value: x}]}]}",
     "spec.containers[0].env[0].name: Required value"},
    {POD_HEAD "spec: {containers: [{name: a, image: i, env: [{name: 1A}]}]}",
     "spec.containers[0].env[0].name: Invalid value: \"1A\": a valid environment variable name must consist of "
     "alphabetic characters, digits, '_', '-', or '.', and must not start with a digit"},
    {POD_HEAD "spec: {containers: [{name: a, image: i, env: [{name: A, valueFrom: {}}]}]}",
     "spec.containers[0].env[0].valueFrom: Unsupported value: valueFrom is not supported"},
    {POD_HEAD "spec: {containers: [{name: a, image: i, env: [{name: A, value: 5}]}]}",
     "spec.containers[0].env[0].value: Invalid value: 5: must be a string"},
    {POD_HEAD "spec: {containers: [{name: a, image: i, workingDir: [x]}]}",
     "spec.containers[0].workingDir: Invalid value: [\"x\"]: must be a string"},
    {POD_HEAD "spec: {containers: [{name: a, image: i, tty: \"yes\"}]}",
     "spec.containers[0].tty: Invalid value: \"yes\": must be a boolean"},
    {POD_HEAD "spec: {containers: [{name: a, image: i, stdin: 1}]}",
     "spec.containers[0].stdin: Invalid value: 1: must be a boolean"},
    {POD_HEAD "spec: {containers: [{name: a, image: i, stdinOnce: x}]}",
     "spec.containers[0].stdinOnce: Invalid value: \"x\": must be a boolean"},
    {POD_HEAD "spec: {containers: [3]}", "spec.containers[0]: Invalid value: 3: must be an object"},
    {POD_HEAD "spec: {restartPolicy: Sometimes, containers: [{name: a, image: i}]}",
     "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""},
    {POD_HEAD "spec: {hostNetwork: \"true\", containers: [{name: a, image: i}]}",
     "spec.hostNetwork: Invalid value: \"true\": must be a boolean"},
};

static void every_validation_error(void **)
{
    for (size_t i = 0; i < sizeof kBad / sizeof kBad[0]; i++) {
        json_object *pod = NULL;
        char err[512] = "";
        int rc = kx_manifest_parse(kBad[i].yaml, strlen(kBad[i].yaml), false, &pod, err, sizeof err);
        if (rc != 0)
            fprintf(stderr, "case %zu: %s\n", i, err);
        assert_int_equal(rc, 0);
        kx_pod_spec s;
        memset(&s, 0x5a, sizeof s);
        assert_int_equal(kx_pod_spec_parse(pod, &s, err, sizeof err), -EINVAL);
        if (strcmp(err, kBad[i].msg) != 0)
            fprintf(stderr, "case %zu: got  %s\n          want %s\n", i, err, kBad[i].msg);
        assert_string_equal(err, kBad[i].msg);
        assert_null(s.containers);   // nothing left allocated on failure
        assert_null(s.name);
        json_object_put(pod);
    }
    // Too many containers.
    char big[8192] = POD_HEAD "spec:\n  containers:\n";
    for (int i = 0; i < KX_POD_MAX_CONTAINERS + 1; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "  - {name: c%d, image: i}\n", i);
    json_object *pod = NULL;
    char err[256];
    assert_int_equal(kx_manifest_parse(big, strlen(big), false, &pod, err, sizeof err), 0);
    kx_pod_spec s;
    assert_int_equal(kx_pod_spec_parse(pod, &s, err, sizeof err), -EINVAL);
    assert_string_equal(err, "spec.containers: Too many: 65: must have at most 64 items");
    json_object_put(pod);
    assert_int_equal(kx_pod_spec_parse(NULL, &s, err, sizeof err), -EINVAL);
}

struct syntax_case {
    bool json;
    const char *text;
    const char *msg;   // prefix of the expected message
};

static const syntax_case kSyntax[] = {
    {false, "", "empty manifest"},
    {false, "# only a comment\n", "empty manifest"},
    {false, "---\n", "empty manifest"},
    {false, "a: [1, 2\n", "yaml: line 2: "},
    {false, "a: &x 1\nb: *x\n", "yaml: line 1: anchors are not supported"},
    {false, "a: 1\na: 2\n", "yaml: line 2: duplicate key \"a\""},
    {false, "? [a]\n: 1\n", "yaml: line 1: mapping keys must be scalars"},
    {false, "a: 1\n---\nb: 2\n", "yaml: line 3: more than one document (a manifest holds one pod)"},
    {true, "", "json: unexpected end of input"},
    {true, "{\"a\": 1", "json: unexpected end of input"},
    {true, "{\"a\": 1} x", "json: offset 9: data after the top-level value"},
    {true, "{\"a\": tru}", "json: offset "},
    {true, "null", "empty manifest"},
};

static void syntax_errors_and_limits(void **state)
{
    fixture *f = (fixture *)*state;
    char err[256];
    json_object *v = NULL;
    for (size_t i = 0; i < sizeof kSyntax / sizeof kSyntax[0]; i++) {
        err[0] = 0;
        int rc = kx_manifest_parse(kSyntax[i].text, strlen(kSyntax[i].text), kSyntax[i].json, &v, err, sizeof err);
        if (rc != -EINVAL || strncmp(err, kSyntax[i].msg, strlen(kSyntax[i].msg)) != 0)
            fprintf(stderr, "case %zu: rc %d err %s\n", i, rc, err);
        assert_int_equal(rc, -EINVAL);
        assert_null(v);
        assert_memory_equal(err, kSyntax[i].msg, strlen(kSyntax[i].msg));
    }
    // An empty trailing document is fine.
    assert_int_equal(kx_manifest_parse("a: 1\n---\n", 9, false, &v, err, sizeof err), 0);
    json_object_put(v);

    // Nesting limits, YAML and JSON.
    char deep[512];
    memset(deep, '[', 200);
    memset(deep + 200, ']', 200);
    assert_int_equal(kx_manifest_parse(deep, 400, false, &v, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "nesting deeper than 64 levels"));
    assert_int_equal(kx_manifest_parse(deep, 400, true, &v, err, sizeof err), -EINVAL);
    assert_null(v);

    // A 2 MiB file is refused before parsing.
    char path[128];
    snprintf(path, sizeof path, "%s/huge.yaml", f->dir);
    size_t n = 2u << 20;
    char *huge = (char *)malloc(n);
    memset(huge, '#', n);
    write_file(path, huge, n);
    assert_int_equal(kx_manifest_load(path, &v, err, sizeof err), -EFBIG);
    assert_string_equal(err, "file too large (2097152 bytes, limit 1048576)");
    assert_null(v);
    assert_int_equal(kx_manifest_parse(huge, n, false, &v, err, sizeof err), -EFBIG);
    free(huge);

    // Missing file and a directory.
    snprintf(path, sizeof path, "%s/missing.yaml", f->dir);
    assert_int_equal(kx_manifest_load(path, &v, err, sizeof err), -ENOENT);
    assert_string_equal(err, "open: No such file or directory");
    assert_int_equal(kx_manifest_load(f->dir, &v, err, sizeof err), -EINVAL);
    assert_string_equal(err, "not a regular file");
}

static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

// Mutated manifests (bytes flipped, cut, duplicated) must give 0 or a negative
// errno with a message, never a crash or a leak (ASan/UBSan in `make check`).
static void mutations_never_crash(void **)
{
    const char *seeds[] = {kYamlPod, "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"},"
                                     "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\",\"env\":[{\"name\":\"A\"}]}]}}"};
    static const char alphabet[] = "{}[]:,-'\"\\\n #&*!|>?%@`\t\x01\xff" "0aZ";
    uint32_t s = 7;
    char buf[4096];
    for (int iter = 0; iter < 3000; iter++) {
        const char *seed = seeds[iter & 1];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int edits = 1 + (int)(rnd(&s) % 8);
        for (int e = 0; e < edits; e++) {
            size_t at = rnd(&s) % n;
            switch (rnd(&s) % 3) {
            case 0:
                buf[at] = alphabet[rnd(&s) % (sizeof alphabet - 1)];
                break;
            case 1:
                n = at;   // truncate
                break;
            case 2:
                if (n + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = alphabet[rnd(&s) % (sizeof alphabet - 1)];
                    n++;
                }
                break;
            }
            if (n == 0)
                break;
        }
        json_object *v = NULL;
        char err[256] = "";
        int rc = kx_manifest_parse(buf, n, iter & 1, &v, err, sizeof err);
        assert_true(rc == 0 || (rc < 0 && err[0]));
        if (rc == 0) {
            kx_pod_spec sp;
            rc = kx_pod_spec_parse(v, &sp, err, sizeof err);
            assert_true(rc == 0 || (rc == -EINVAL && err[0]));
            kx_pod_spec_free(&sp);
            json_object_put(v);
        }
    }
    // A long value of control characters is cut, not overflowed, in messages.
    char doc[1024] = "kind: Pod\napiVersion: v1\nmetadata: {name: \"";
    for (int i = 0; i < 100; i++)
        strcat(doc, "\\x01");
    strcat(doc, "\"}");
    json_object *v = NULL;
    char err[256];
    assert_int_equal(kx_manifest_parse(doc, strlen(doc), false, &v, err, sizeof err), 0);
    kx_pod_spec sp;
    assert_int_equal(kx_pod_spec_parse(v, &sp, err, sizeof err), -EINVAL);
    assert_memory_equal(err, "metadata.name: Invalid value: \"\\u0001\\u0001", 43);
    if (!strstr(err, "...\": must be no more than 63 characters"))
        fprintf(stderr, "got: %s\n", err);
    assert_non_null(strstr(err, "...\": must be no more than 63 characters"));
    json_object_put(v);
}

static void dns_labels(void **)
{
    assert_true(kx_is_dns1123_label("a"));
    assert_true(kx_is_dns1123_label("0-a"));
    assert_true(kx_is_dns1123_label("abc-123"));
    assert_false(kx_is_dns1123_label(""));
    assert_false(kx_is_dns1123_label("-a"));
    assert_false(kx_is_dns1123_label("a-"));
    assert_false(kx_is_dns1123_label("a.b"));
    assert_false(kx_is_dns1123_label("aB"));
    char s[65];
    memset(s, 'a', 64);
    s[64] = 0;
    assert_false(kx_is_dns1123_label(s));
    s[63] = 0;
    assert_true(kx_is_dns1123_label(s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(yaml_typed_scalars_and_structure, setup, teardown),
        cmocka_unit_test_setup_teardown(json_pod_and_defaults, setup, teardown),
        cmocka_unit_test(every_validation_error),
        cmocka_unit_test_setup_teardown(syntax_errors_and_limits, setup, teardown),
        cmocka_unit_test(mutations_never_crash),
        cmocka_unit_test(dns_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
