// Unit tests for the API server logic: bootstrap, registry, handlers,
// authentication/authorization and Status bodies.
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
// cmocka 1.1.5 has no extern "C" guards of its own.
extern "C" {
#include <cmocka.h>
}

#include <json-c/json.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "api.h"
#include "bootstrap.h"
#include "kubexec/pki.h"
#include "registry.h"

// 2025-01-01T00:00:00Z
static const uint64_t T0 = 1735689600000ull;

static const char *AGG =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
static const char *TABLE =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
    "application/json";

// ---------------------------------------------------------------------------
// Fixture: one bootstrapped data dir shared by the tests of a group.

struct fixture {
    char dir[256];
    kx_bootstrap_paths paths;
    kx_api *api;
    kx_api_user admin, bob, node1, node2, anon, join;
};

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", dir);
}

static void make_user(kx_api_user *u, const char *name, const char *groups)
{
    memset(u, 0, sizeof *u);
    snprintf(u->name, sizeof u->name, "%s", name);
    snprintf(u->groups, sizeof u->groups, "%s", groups);
    u->authenticated = true;
}

static char *slurp(const char *path)
{
    char *s = nullptr;
    return kx_pki_read_file(path, &s) == 0 ? s : nullptr;
}

static int setup(void **state)
{
    fixture *f = (fixture *)calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/kx-test-api-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    char err[256];
    if (kx_bootstrap(f->dir, "127.0.0.1", &f->paths, err, sizeof err) != 0) {
        fprintf(stderr, "bootstrap: %s\n", err);
        return -1;
    }
    // A static token file: bob is an ordinary user, root-token an admin.
    char csv[600];
    snprintf(csv, sizeof csv, "%s/tokens.csv", f->dir);
    if (kx_pki_write_file(csv, "bob-token,bob,1001\nroot-token,root,0,\"system:masters,ops\"\n", 0600))
        return -1;
    kx_api_config cfg = {30, "127.0.0.1:6443"};
    f->api = kx_api_new(&f->paths, &cfg, err, sizeof err);
    if (!f->api) {
        fprintf(stderr, "api: %s\n", err);
        return -1;
    }
    make_user(&f->admin, "admin", "system:masters");
    make_user(&f->bob, "bob", "");
    make_user(&f->node1, "system:node:n1", "system:nodes");
    make_user(&f->node2, "system:node:n2", "system:nodes");
    memset(&f->anon, 0, sizeof f->anon);
    memset(&f->join, 0, sizeof f->join);
    f->join.join_token = true;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = (fixture *)*state;
    kx_api_free(f->api);
    rm_rf(f->dir);
    free(f);
    return 0;
}

// One request; returns the response (caller frees body).
static kx_api_response call(fixture *f, const kx_api_user *u, const char *method, const char *path,
                            const char *query = "", const char *accept = "application/json, */*",
                            const char *body = nullptr, uint64_t now = T0)
{
    kx_api_request req = {};
    req.method = method;
    req.path = path;
    req.query = query;
    req.accept = accept;
    req.content_type = "application/json";
    req.body = (const uint8_t *)body;
    req.body_len = body ? strlen(body) : 0;
    req.user = u;
    kx_api_response r;
    assert_int_equal(kx_api_handle(f->api, &req, now, &r), 0);
    assert_non_null(r.body);
    assert_int_equal(strlen(r.body), r.body_len);
    return r;
}

static json_object *parse(const kx_api_response &r)
{
    json_object *o = json_tokener_parse(r.body);
    assert_non_null(o);
    return o;
}

static const char *jpath(json_object *o, const char *p1, const char *p2 = nullptr,
                         const char *p3 = nullptr)
{
    const char *ps[] = {p1, p2, p3};
    for (const char *p : ps) {
        if (!p)
            break;
        json_object *v;
        if (!o || !json_object_object_get_ex(o, p, &v))
            return nullptr;
        o = v;
    }
    return o ? json_object_get_string(o) : nullptr;
}

static const char *NODE1 =
    "{\"metadata\":{\"name\":\"n1\",\"labels\":{\"node-role.kubernetes.io/edge\":\"\"}},"
    "\"status\":{\"addresses\":[{\"type\":\"Hostname\",\"address\":\"n1-host\"},"
    "{\"type\":\"InternalIP\",\"address\":\"10.0.0.5\"}],"
    "\"daemonEndpoints\":{\"kubeletEndpoint\":{\"Port\":10443}},"
    "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\"}],"
    "\"nodeInfo\":{\"kubeletVersion\":\"v1.33.0-kubexec\",\"osImage\":\"Debian\"}}}";

static const char *PODS1 =
    "[{\"metadata\":{\"name\":\"web\",\"namespace\":\"default\","
    "\"labels\":{\"app\":\"web\",\"tier\":\"front\",\"replicas\":\"3\"}},"
    "\"spec\":{\"containers\":[{\"name\":\"app\"},{\"name\":\"sidecar\"}]},"
    "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.1.0.2\",\"containerStatuses\":["
    "{\"name\":\"app\",\"ready\":true,\"restartCount\":2,\"state\":{\"running\":{}}},"
    "{\"name\":\"sidecar\",\"ready\":true,\"restartCount\":1,\"state\":{\"running\":{}}}]}},"
    " {\"metadata\":{\"name\":\"db\",\"namespace\":\"prod\",\"labels\":{\"app\":\"db\"},\"annotations\":"
    "{\"kubectl.kubernetes.io/default-container\":\"main\"}},"
    "\"spec\":{\"containers\":[{\"name\":\"init-like\"},{\"name\":\"main\"}]},"
    "\"status\":{\"phase\":\"Running\"}},"
    " {\"metadata\":{\"name\":\"crash\"},"
    "\"spec\":{\"containers\":[{\"name\":\"c\"}],\"nodeName\":\"elsewhere\"},"
    "\"status\":{\"phase\":\"Running\",\"containerStatuses\":[{\"name\":\"c\",\"ready\":false,"
    "\"restartCount\":5,\"state\":{\"waiting\":{\"reason\":\"CrashLoopBackOff\"}}}]}}]";

// Registers n1 with three pods at T0.
static void populate(fixture *f)
{
    kx_api_response r = call(f, &f->node1, "PUT", "/api/v1/nodes/n1/status", "", "application/json", NODE1);
    assert_int_equal(r.status, 200);
    free(r.body);
    r = call(f, &f->node1, "PUT", "/kubexec/v1/nodes/n1/pods", "", "application/json", PODS1);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"status\":\"Success\""));
    free(r.body);
}

// ---------------------------------------------------------------------------
// Bootstrap

static bool file_mode_is(const char *path, mode_t mode)
{
    struct stat st;
    return stat(path, &st) == 0 && (st.st_mode & 0777) == mode;
}

static X509 *load_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    return x;
}

static void subject_field(X509 *x, int nid, char *out, size_t cap)
{
    out[0] = 0;
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), nid, out, (int)cap);
}

// Does the cert carry this SAN (DNS name or IP text)?
static bool has_san(X509 *x, const char *want)
{
    GENERAL_NAMES *names = (GENERAL_NAMES *)X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr);
    bool found = false;
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && !found; i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type == GEN_DNS) {
            const char *s = (const char *)ASN1_STRING_get0_data(g->d.dNSName);
            found = strcmp(s, want) == 0;
        } else if (g->type == GEN_IPADD && ASN1_STRING_length(g->d.iPAddress) == 4) {
            const unsigned char *ip = ASN1_STRING_get0_data(g->d.iPAddress);
            char txt[32];
            snprintf(txt, sizeof txt, "%u.%u.%u.%u", ip[0], ip[1], ip[2], ip[3]);
            found = strcmp(txt, want) == 0;
        }
    }
    GENERAL_NAMES_free(names);
    return found;
}

static void bootstrap_creates_then_reuses(void **)
{
    char dir[] = "/tmp/kx-test-boot-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[300];
    snprintf(sub, sizeof sub, "%s/data", dir);  // a directory that does not exist yet
    kx_bootstrap_paths p;
    char err[256];
    assert_int_equal(kx_bootstrap(sub, "192.168.7.9", &p, err, sizeof err), 0);

    const char *keys[] = {p.ca_key, p.serving_key, p.kubelet_client_key, p.node_token};
    for (const char *k : keys)
        assert_true(file_mode_is(k, 0600));
    assert_true(file_mode_is(p.ca_crt, 0644));
    char admin_key[600];
    snprintf(admin_key, sizeof admin_key, "%s/pki/admin.key", sub);
    assert_true(file_mode_is(admin_key, 0600));

    char *ca1 = slurp(p.ca_crt), *tok1 = slurp(p.node_token), *srv1 = slurp(p.serving_crt);
    assert_non_null(ca1);
    assert_non_null(tok1);
    // K10<sha256(ca.crt)>::node:<32 hex>
    char hash[65];
    kx_bootstrap_sha256_hex(ca1, strlen(ca1), hash);
    assert_int_equal(strncmp(tok1, "K10", 3), 0);
    assert_int_equal(strncmp(tok1 + 3, hash, 64), 0);
    assert_int_equal(strncmp(tok1 + 67, "::node:", 7), 0);
    assert_int_equal(strspn(tok1 + 74, "0123456789abcdef"), 32);

    // The certificates carry the agreed identities and SANs.
    X509 *ca = load_cert(ca1), *srv = load_cert(srv1);
    char *kc = slurp(p.kubelet_client_crt);
    X509 *kcx = load_cert(kc);
    assert_non_null(ca);
    assert_non_null(srv);
    assert_non_null(kcx);
    char buf[256];
    subject_field(ca, NID_commonName, buf, sizeof buf);
    assert_string_equal(buf, "kubexec-ca");
    subject_field(kcx, NID_commonName, buf, sizeof buf);
    assert_string_equal(buf, "kubexec-apiserver");
    subject_field(kcx, NID_organizationName, buf, sizeof buf);
    assert_string_equal(buf, "kubexec:apiservers");
    assert_true(has_san(srv, "localhost"));
    assert_true(has_san(srv, "127.0.0.1"));
    assert_true(has_san(srv, "192.168.7.9"));
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    if (*host)
        assert_true(has_san(srv, host));
    X509_free(ca);
    X509_free(srv);
    X509_free(kcx);
    free(kc);

    // Second start: everything reused byte for byte.
    assert_int_equal(kx_bootstrap(sub, "192.168.7.9", &p, err, sizeof err), 0);
    char *ca2 = slurp(p.ca_crt), *tok2 = slurp(p.node_token), *srv2 = slurp(p.serving_crt);
    assert_string_equal(ca1, ca2);
    assert_string_equal(tok1, tok2);
    assert_string_equal(srv1, srv2);
    free(ca2);
    free(tok2);
    free(srv2);

    // A missing leaf is recreated, the CA stays; a new listen address reissues the serving cert.
    assert_int_equal(unlink(admin_key), 0);
    assert_int_equal(kx_bootstrap(sub, "0.0.0.0", &p, err, sizeof err), 0);
    assert_true(file_mode_is(admin_key, 0600));
    ca2 = slurp(p.ca_crt);
    srv2 = slurp(p.serving_crt);
    assert_string_equal(ca1, ca2);
    assert_string_not_equal(srv1, srv2);
    srv = load_cert(srv2);
    assert_false(has_san(srv, "192.168.7.9"));
    assert_true(has_san(srv, "127.0.0.1"));
    X509_free(srv);
    free(ca2);
    free(srv2);

    // Kubeconfig: right URL, embedded CA, 0600; bad URLs refused.
    assert_int_equal(kx_bootstrap_kubeconfig(&p, "https://127.0.0.1:40123", err, sizeof err), 0);
    assert_true(file_mode_is(p.admin_kubeconfig, 0600));
    char *kcfg = slurp(p.admin_kubeconfig);
    char *b64 = nullptr;
    assert_int_equal(kx_base64(ca1, strlen(ca1), &b64), 0);
    char line[4096];
    snprintf(line, sizeof line, "    certificate-authority-data: %s\n", b64);
    assert_non_null(strstr(kcfg, line));
    assert_non_null(strstr(kcfg, "\n    server: https://127.0.0.1:40123\n"));
    assert_non_null(strstr(kcfg, "\ncurrent-context: kubexec\n"));
    assert_non_null(strstr(kcfg, "\n    namespace: default\n"));
    assert_non_null(strstr(kcfg, "\n    client-certificate-data: "));
    assert_non_null(strstr(kcfg, "\n    client-key-data: "));
    assert_int_equal(strncmp(kcfg, "apiVersion: v1\nkind: Config\n", 28), 0);
    // YAML-ish: no tabs, every line "key: value", "- name: x", or a bare "key:".
    assert_null(strchr(kcfg, '\t'));
    for (char *save = nullptr, *l = strtok_r(kcfg, "\n", &save); l; l = strtok_r(nullptr, "\n", &save))
        assert_non_null(strchr(l, ':'));
    free(kcfg);
    free(b64);
    assert_int_equal(kx_bootstrap_kubeconfig(&p, "https://x y", err, sizeof err), -EINVAL);
    assert_int_equal(kx_bootstrap_kubeconfig(&p, "127.0.0.1:6443", err, sizeof err), -EINVAL);
    assert_int_equal(kx_bootstrap_kubeconfig(&p, "https://a\n#b", err, sizeof err), -EINVAL);
    assert_int_equal(kx_bootstrap(nullptr, nullptr, &p, err, sizeof err), -EINVAL);

    free(ca1);
    free(tok1);
    free(srv1);
    rm_rf(dir);
}

// ---------------------------------------------------------------------------
// Unauthenticated endpoints, discovery, errors

static void version_and_health_need_no_auth(void **state)
{
    fixture *f = (fixture *)*state;
    kx_api_response r = call(f, nullptr, "GET", "/version", "timeout=5s");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json");
    json_object *o = parse(r);
    assert_string_equal(jpath(o, "major"), "1");
    assert_string_equal(jpath(o, "minor"), "33");
    assert_string_equal(jpath(o, "gitVersion"), "v1.33.0+kubexec");
    assert_string_equal(jpath(o, "goVersion"), "none");
    assert_non_null(jpath(o, "platform"));
    json_object_put(o);
    free(r.body);

    const char *ok[] = {"/healthz", "/readyz", "/livez"};
    for (const char *p : ok) {
        r = call(f, &f->anon, "GET", p);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "ok");
        free(r.body);
    }
    r = call(f, nullptr, "GET", "/cacerts");
    assert_int_equal(r.status, 200);
    char *ca = slurp(f->paths.ca_crt);
    assert_string_equal(r.body, ca);
    assert_int_equal(strncmp(r.content_type, "text/plain", 10), 0);
    free(ca);
    free(r.body);
}

static void unauthenticated_gets_401_status(void **state)
{
    fixture *f = (fixture *)*state;
    const char *paths[] = {"/api", "/apis", "/api/v1/namespaces/default/pods", "/nope"};
    for (const char *p : paths) {
        kx_api_response r = call(f, &f->anon, "GET", p);
        assert_int_equal(r.status, 401);
        assert_string_equal(r.content_type, "application/json");
        assert_string_equal(r.body, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                                    "\"status\":\"Failure\",\"message\":\"Unauthorized\","
                                    "\"reason\":\"Unauthorized\",\"code\":401}");
        free(r.body);
    }
    // The join token is not a user.
    kx_api_response r = call(f, &f->join, "GET", "/api/v1/pods");
    assert_int_equal(r.status, 401);
    free(r.body);
}

static void discovery_is_legacy_json(void **state)
{
    fixture *f = (fixture *)*state;
    kx_api_response r = call(f, &f->bob, "GET", "/api", "timeout=32s", AGG);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json");
    json_object *o = parse(r);
    assert_string_equal(jpath(o, "kind"), "APIVersions");
    json_object *v = json_object_object_get(o, "versions");
    assert_int_equal(json_object_array_length(v), 1);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(v, 0)), "v1");
    json_object *cidr = json_object_array_get_idx(json_object_object_get(o, "serverAddressByClientCIDRs"), 0);
    assert_string_equal(jpath(cidr, "serverAddress"), "127.0.0.1:6443");
    json_object_put(o);
    free(r.body);

    r = call(f, &f->bob, "GET", "/apis", "timeout=32s", AGG);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"kind\":\"APIGroupList\",\"apiVersion\":\"v1\",\"groups\":[]}");
    free(r.body);

    r = call(f, &f->bob, "GET", "/api/v1", "", AGG);
    assert_int_equal(r.status, 200);
    o = parse(r);
    assert_string_equal(jpath(o, "kind"), "APIResourceList");
    assert_string_equal(jpath(o, "groupVersion"), "v1");
    json_object *res = json_object_object_get(o, "resources");
    bool pods = false, exec = false, nodes = false;
    for (size_t i = 0; i < json_object_array_length(res); i++) {
        json_object *e = json_object_array_get_idx(res, i);
        const char *name = jpath(e, "name");
        if (strcmp(name, "pods") == 0) {
            pods = true;
            assert_true(json_object_get_boolean(json_object_object_get(e, "namespaced")));
            assert_string_equal(jpath(e, "kind"), "Pod");
            assert_string_equal(jpath(e, "singularName"), "pod");
            assert_string_equal(json_object_get_string(json_object_array_get_idx(
                                    json_object_object_get(e, "shortNames"), 0)), "po");
        } else if (strcmp(name, "pods/exec") == 0) {
            exec = true;
            assert_string_equal(jpath(e, "kind"), "PodExecOptions");
        } else if (strcmp(name, "nodes") == 0) {
            nodes = true;
            assert_false(json_object_get_boolean(json_object_object_get(e, "namespaced")));
            assert_string_equal(json_object_get_string(json_object_array_get_idx(
                                    json_object_object_get(e, "shortNames"), 0)), "no");
        }
    }
    assert_true(pods && exec && nodes);
    json_object_put(o);
    free(r.body);
}

static void not_found_bodies(void **state)
{
    fixture *f = (fixture *)*state;
    kx_api_response r = call(f, &f->bob, "GET", "/apis/apps/v1");
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                                "\"status\":\"Failure\",\"message\":\"the server could not find the "
                                "requested resource\",\"reason\":\"NotFound\",\"details\":{},\"code\":404}");
    free(r.body);
    r = call(f, &f->bob, "GET", "/api/v1/namespaces/default/pods/mypod");
    assert_int_equal(r.status, 404);
    assert_string_equal(r.content_type, "application/json");
    assert_string_equal(r.body, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                                "\"status\":\"Failure\",\"message\":\"pods \\\"mypod\\\" not found\","
                                "\"reason\":\"NotFound\",\"details\":{\"name\":\"mypod\",\"kind\":\"pods\"},"
                                "\"code\":404}");
    free(r.body);
    r = call(f, &f->bob, "GET", "/api/v1/nodes/ghost");
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "nodes \\\"ghost\\\" not found"));
    free(r.body);
    // Non-upgrade exec and unsupported methods.
    r = call(f, &f->admin, "POST", "/api/v1/namespaces/default/pods/web/exec", "command=date");
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"message\":\"Upgrade request required\",\"reason\":\"BadRequest\""));
    free(r.body);
    r = call(f, &f->admin, "DELETE", "/api/v1/namespaces/default/pods/web");
    assert_int_equal(r.status, 405);
    assert_non_null(strstr(r.body, "\"reason\":\"MethodNotAllowed\""));
    free(r.body);
}

static void status_helper_shape(void **)
{
    kx_api_response r;
    kx_api_status(&r, 500, "InternalError", "boom \"x\"", nullptr, nullptr);
    assert_int_equal(r.status, 500);
    assert_string_equal(r.content_type, "application/json");
    assert_string_equal(r.body, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                                "\"status\":\"Failure\",\"message\":\"boom \\\"x\\\"\","
                                "\"reason\":\"InternalError\",\"code\":500}");
    free(r.body);
    kx_api_status(&r, 403, "Forbidden", "no", "web", "pods");
    assert_non_null(strstr(r.body, "\"details\":{\"name\":\"web\",\"kind\":\"pods\"},\"code\":403}"));
    free(r.body);
}

// ---------------------------------------------------------------------------
// Nodes and pods

static void pods_get_list_and_table(void **state)
{
    fixture *f = (fixture *)*state;
    populate(f);

    kx_api_response r = call(f, &f->bob, "GET", "/api/v1/namespaces/default/pods/web");
    assert_int_equal(r.status, 200);
    assert_int_equal(strncmp(r.body, "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{", 41), 0);
    json_object *o = parse(r);
    assert_string_equal(jpath(o, "kind"), "Pod");
    assert_string_equal(jpath(o, "apiVersion"), "v1");
    assert_string_equal(jpath(o, "metadata", "name"), "web");
    assert_string_equal(jpath(o, "metadata", "namespace"), "default");
    assert_string_equal(jpath(o, "metadata", "creationTimestamp"), "2025-01-01T00:00:00Z");
    assert_int_equal(strlen(jpath(o, "metadata", "uid")), 36);
    assert_non_null(jpath(o, "metadata", "resourceVersion"));
    assert_string_equal(jpath(o, "spec", "nodeName"), "n1");
    assert_string_equal(jpath(o, "status", "phase"), "Running");
    json_object_put(o);
    free(r.body);

    // The namespace defaults to "default" and nodeName is forced to the reporter.
    r = call(f, &f->bob, "GET", "/api/v1/namespaces/default/pods/crash");
    o = parse(r);
    assert_string_equal(jpath(o, "spec", "nodeName"), "n1");
    json_object_put(o);
    free(r.body);

    r = call(f, &f->bob, "GET", "/api/v1/namespaces/default/pods", "limit=500");
    assert_int_equal(r.status, 200);
    o = parse(r);
    assert_string_equal(jpath(o, "kind"), "PodList");
    json_object *items = json_object_object_get(o, "items");
    assert_int_equal(json_object_array_length(items), 2);
    assert_string_equal(jpath(json_object_array_get_idx(items, 0), "metadata", "name"), "crash");
    assert_string_equal(jpath(json_object_array_get_idx(items, 1), "metadata", "name"), "web");
    json_object_put(o);
    free(r.body);

    r = call(f, &f->bob, "GET", "/api/v1/pods");
    o = parse(r);
    assert_int_equal(json_object_array_length(json_object_object_get(o, "items")), 3);
    json_object_put(o);
    free(r.body);

    r = call(f, &f->bob, "GET", "/api/v1/pods", "fieldSelector=spec.nodeName%3Dn1%2Cmetadata.namespace%3Dprod");
    o = parse(r);
    items = json_object_object_get(o, "items");
    assert_int_equal(json_object_array_length(items), 1);
    assert_string_equal(jpath(json_object_array_get_idx(items, 0), "metadata", "name"), "db");
    json_object_put(o);
    free(r.body);
    r = call(f, &f->bob, "GET", "/api/v1/pods", "fieldSelector=status.phase%3DRunning");
    assert_int_equal(r.status, 400);
    free(r.body);

    // labelSelector: lists keep only what matches, in their usual order; a
    // bad selector is a 400 in upstream's words, never a full list.
    struct {
        const char *q;
        const char *names; // in list order: namespace, then name; "" = none
    } sels[] = {
        {"labelSelector=app%3Dweb", "web"},
        {"labelSelector=app", "web,db"},
        {"labelSelector=!app", "crash"},
        {"labelSelector=app!%3Dweb", "crash,db"},
        {"labelSelector=app+in+(db,+web),tier", "web"},
        {"labelSelector=app+notin+(web)", "crash,db"},
        {"labelSelector=replicas%3E2", "web"},
        {"labelSelector=replicas%3C2", ""},
        {"labelSelector=app%3D%3Dnothing", ""},
        {"labelSelector=", "crash,web,db"},
        {"labelSelector=app%3Ddb&fieldSelector=metadata.namespace%3Dprod", "db"},
    };
    for (auto &c : sels) {
        r = call(f, &f->bob, "GET", "/api/v1/pods", c.q);
        assert_int_equal(r.status, 200);
        o = parse(r);
        items = json_object_object_get(o, "items");
        char got[64] = "";
        for (size_t i = 0; i < json_object_array_length(items); i++) {
            const char *n = jpath(json_object_array_get_idx(items, i), "metadata", "name");
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? "," : "", n);
        }
        assert_string_equal(got, c.names);
        json_object_put(o);
        free(r.body);
    }
    r = call(f, &f->bob, "GET", "/api/v1/namespaces/default/pods", "labelSelector=tier%3Dfront",
             TABLE, nullptr, T0);
    o = parse(r);
    assert_int_equal(json_object_array_length(json_object_object_get(o, "rows")), 1);
    json_object_put(o);
    free(r.body);
    const char *bad[] = {"labelSelector=app+in+web", "labelSelector=%3Dx", "labelSelector=a,,b",
                         "labelSelector=replicas%3Ex"};
    for (const char *q : bad) {
        r = call(f, &f->bob, "GET", "/api/v1/pods", q);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(r.body, "unable to parse requirement: "));
        free(r.body);
    }
    r = call(f, &f->bob, "GET", "/api/v1/nodes", "labelSelector=node-role.kubernetes.io%2Fedge");
    o = parse(r);
    assert_int_equal(json_object_array_length(json_object_object_get(o, "items")), 1);
    json_object_put(o);
    free(r.body);
    r = call(f, &f->bob, "GET", "/api/v1/nodes", "labelSelector=!node-role.kubernetes.io%2Fedge");
    o = parse(r);
    assert_int_equal(json_object_array_length(json_object_object_get(o, "items")), 0);
    json_object_put(o);
    free(r.body);

    // Table, 5 minutes and 3 seconds later.
    r = call(f, &f->bob, "GET", "/api/v1/namespaces/default/pods", "limit=500", TABLE, nullptr,
             T0 + 303000);
    assert_int_equal(r.status, 200);
    o = parse(r);
    assert_string_equal(jpath(o, "kind"), "Table");
    assert_string_equal(jpath(o, "apiVersion"), "meta.k8s.io/v1");
    json_object *cols = json_object_object_get(o, "columnDefinitions");
    const char *want[] = {"Name", "Ready", "Status", "Restarts", "Age"};
    for (int i = 0; i < 5; i++) {
        json_object *c = json_object_array_get_idx(cols, (size_t)i);
        assert_string_equal(jpath(c, "name"), want[i]);
        assert_int_equal(json_object_get_int(json_object_object_get(c, "priority")), 0);
    }
    json_object *rows = json_object_object_get(o, "rows");
    assert_int_equal(json_object_array_length(rows), 2);
    json_object *crash = json_object_array_get_idx(rows, 0), *web = json_object_array_get_idx(rows, 1);
    json_object *cells = json_object_object_get(web, "cells");
    assert_string_equal(json_object_get_string(json_object_array_get_idx(cells, 0)), "web");
    assert_string_equal(json_object_get_string(json_object_array_get_idx(cells, 1)), "2/2");
    assert_string_equal(json_object_get_string(json_object_array_get_idx(cells, 2)), "Running");
    assert_int_equal(json_object_get_int(json_object_array_get_idx(cells, 3)), 3);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(cells, 4)), "5m3s");
    assert_string_equal(jpath(web, "object", "kind"), "PartialObjectMetadata");
    assert_string_equal(jpath(web, "object", "metadata", "namespace"), "default");
    assert_string_equal(jpath(web, "object", "metadata", "creationTimestamp"), "2025-01-01T00:00:00Z");
    cells = json_object_object_get(crash, "cells");
    assert_string_equal(json_object_get_string(json_object_array_get_idx(cells, 1)), "0/1");
    assert_string_equal(json_object_get_string(json_object_array_get_idx(cells, 2)), "CrashLoopBackOff");
    json_object_put(o);
    free(r.body);

    // Nodes as a list and a Table.
    r = call(f, &f->bob, "GET", "/api/v1/nodes/n1");
    o = parse(r);
    assert_string_equal(jpath(o, "kind"), "Node");
    assert_string_equal(jpath(o, "metadata", "creationTimestamp"), "2025-01-01T00:00:00Z");
    json_object_put(o);
    free(r.body);
    r = call(f, &f->bob, "GET", "/api/v1/nodes", "", TABLE, nullptr, T0 + 3 * 3600 * 1000);
    o = parse(r);
    cols = json_object_object_get(o, "columnDefinitions");
    const char *nwant[] = {"Name", "Status", "Roles", "Age", "Version"};
    for (int i = 0; i < 5; i++)
        assert_string_equal(jpath(json_object_array_get_idx(cols, (size_t)i), "name"), nwant[i]);
    cells = json_object_object_get(json_object_array_get_idx(json_object_object_get(o, "rows"), 0), "cells");
    const char *ncells[] = {"n1", "Ready", "edge", "3h", "v1.33.0-kubexec", "10.0.0.5"};
    for (int i = 0; i < 6; i++)
        assert_string_equal(json_object_get_string(json_object_array_get_idx(cells, (size_t)i)), ncells[i]);
    json_object_put(o);
    free(r.body);

    // Namespaces derive from the pods.
    r = call(f, &f->bob, "GET", "/api/v1/namespaces");
    assert_non_null(strstr(r.body, "\"name\":\"prod\""));
    free(r.body);
    r = call(f, &f->bob, "GET", "/api/v1/namespaces/prod");
    assert_int_equal(r.status, 200);
    free(r.body);
    r = call(f, &f->bob, "GET", "/api/v1/namespaces/nope");
    assert_int_equal(r.status, 404);
    free(r.body);

    // A second report replaces the node's pods and keeps the identity of survivors.
    r = call(f, &f->bob, "GET", "/api/v1/namespaces/default/pods/web");
    o = parse(r);
    char uid[64];
    snprintf(uid, sizeof uid, "%s", jpath(o, "metadata", "uid"));
    json_object_put(o);
    free(r.body);
    r = call(f, &f->node1, "PUT", "/kubexec/v1/nodes/n1/pods", "", "application/json",
             "[{\"metadata\":{\"name\":\"web\"},\"spec\":{\"containers\":[{\"name\":\"app\"}]}}]",
             T0 + 60000);
    assert_int_equal(r.status, 200);
    free(r.body);
    r = call(f, &f->bob, "GET", "/api/v1/namespaces/default/pods/web");
    o = parse(r);
    assert_string_equal(jpath(o, "metadata", "uid"), uid);
    assert_string_equal(jpath(o, "metadata", "creationTimestamp"), "2025-01-01T00:00:00Z");
    json_object_put(o);
    free(r.body);
    r = call(f, &f->bob, "GET", "/api/v1/namespaces/prod/pods/db");
    assert_int_equal(r.status, 404);
    free(r.body);
    // Restore the full set for later tests.
    populate(f);
}

static void node_writes_are_authorized(void **state)
{
    fixture *f = (fixture *)*state;
    kx_api_response r = call(f, &f->node2, "PUT", "/api/v1/nodes/n1/status", "", "application/json", NODE1);
    assert_int_equal(r.status, 403);
    assert_string_equal(r.body, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                                "\"status\":\"Failure\",\"message\":\"nodes \\\"n1\\\" is forbidden: User "
                                "\\\"system:node:n2\\\" cannot update resource \\\"nodes/status\\\" in API "
                                "group \\\"\\\" at the cluster scope\",\"reason\":\"Forbidden\","
                                "\"details\":{\"name\":\"n1\",\"kind\":\"nodes\"},\"code\":403}");
    free(r.body);
    r = call(f, &f->bob, "PUT", "/kubexec/v1/nodes/n1/pods", "", "application/json", "[]");
    assert_int_equal(r.status, 403);
    free(r.body);
    r = call(f, &f->node2, "POST", "/api/v1/nodes", "", "application/json", NODE1);
    assert_int_equal(r.status, 403);
    free(r.body);
    // n2 registers itself with POST (201), again (200), and cannot steal n1's pod names.
    const char *n2 = "{\"metadata\":{\"name\":\"n2\"},\"status\":{\"addresses\":[{\"type\":\"Hostname\","
                     "\"address\":\"n2-host\"}],\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}";
    r = call(f, &f->node2, "POST", "/api/v1/nodes", "", "application/json", n2);
    assert_int_equal(r.status, 201);
    free(r.body);
    r = call(f, &f->node2, "POST", "/api/v1/nodes", "", "application/json", n2);
    assert_int_equal(r.status, 200);
    free(r.body);
    r = call(f, &f->node2, "PUT", "/kubexec/v1/nodes/n2/pods", "", "application/json",
             "[{\"metadata\":{\"name\":\"web\",\"namespace\":\"default\"},\"spec\":{\"containers\":[]}}]");
    assert_int_equal(r.status, 409);
    free(r.body);
    // Malformed bodies are 400s, never crashes.
    const char *bad[] = {"", "{", "[1,2]", "{\"a\":1} x", "[{\"metadata\":{\"name\":\"UPPER\"},\"spec\":{\"containers\":[]}}]",
                         "[{\"metadata\":{\"name\":\"a\"},\"spec\":{}}]",
                         ("[{\"metadata\":{\"name\":\"a\"},\"spec\":{\"containers\":[]}},"
                          "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"containers\":[]}}]")};
    for (const char *b : bad) {
        r = call(f, &f->node2, "PUT", "/kubexec/v1/nodes/n2/pods", "", "application/json", b);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(r.body, "\"reason\":\"BadRequest\""));
        free(r.body);
    }
    r = call(f, &f->node1, "PUT", "/api/v1/nodes/n1/status", "", "application/json",
             "{\"metadata\":{\"name\":\"n9\"}}");
    assert_int_equal(r.status, 400);
    free(r.body);
    // Deep nesting is refused by the parser's depth limit.
    static char deep[4096];
    memset(deep, '[', 2000);
    deep[2000] = 0;
    r = call(f, &f->node2, "PUT", "/kubexec/v1/nodes/n2/pods", "", "application/json", deep);
    assert_int_equal(r.status, 400);
    free(r.body);
    // The node may read.
    r = call(f, &f->node2, "GET", "/api/v1/pods");
    assert_int_equal(r.status, 200);
    free(r.body);
}

// ---------------------------------------------------------------------------
// Authentication

static void authenticate_cert_and_tokens(void **state)
{
    fixture *f = (fixture *)*state;
    kx_api_user u;
    kx_api_authenticate(f->api, "system:node:n1", "system:nodes", "Bearer bob-token", &u);
    assert_true(u.authenticated);
    assert_string_equal(u.name, "system:node:n1");  // the certificate wins
    assert_string_equal(u.groups, "system:nodes");

    kx_api_authenticate(f->api, nullptr, nullptr, "Bearer bob-token", &u);
    assert_true(u.authenticated);
    assert_string_equal(u.name, "bob");
    kx_api_authenticate(f->api, nullptr, nullptr, "bearer   root-token  ", &u);
    assert_true(u.authenticated);
    assert_string_equal(u.name, "root");
    assert_string_equal(u.groups, "system:masters,ops");

    char *tok = slurp(f->paths.node_token);
    char hdr[300];
    snprintf(hdr, sizeof hdr, "Bearer %s", tok);  // the file's trailing newline is trimmed
    kx_api_authenticate(f->api, nullptr, nullptr, hdr, &u);
    assert_true(u.join_token);
    assert_false(u.authenticated);
    free(tok);

    const char *bad[] = {"Bearer nope", "Bearer ", "Basic Ym9iOng=", "Bearerbob-token", "", "Bearer bob-token2"};
    for (const char *b : bad) {
        kx_api_authenticate(f->api, nullptr, nullptr, b, &u);
        assert_false(u.authenticated);
        assert_false(u.join_token);
    }
    kx_api_authenticate(f->api, nullptr, nullptr, nullptr, &u);
    assert_false(u.authenticated);
}

// ---------------------------------------------------------------------------
// Join

static kx_api_response join_req(fixture *f, const kx_api_user *u, const char *node, const char *csr,
                                const char *sans)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "nodeName", json_object_new_string(node));
    json_object_object_add(o, "csr", json_object_new_string(csr));
    if (sans)
        json_object_object_add(o, "sans", json_tokener_parse(sans));
    kx_api_response r = call(f, u, "POST", "/kubexec/v1/join", "", "application/json",
                             json_object_to_json_string(o));
    json_object_put(o);
    return r;
}

static void join_issues_node_certificate(void **state)
{
    fixture *f = (fixture *)*state;
    char *key = nullptr, *csr = nullptr, *evil = nullptr, *wrong = nullptr;
    assert_int_equal(kx_pki_new_key(&key, nullptr, 0), 0);
    assert_int_equal(kx_pki_new_csr(key, "system:node:n1", "system:nodes", &csr, nullptr, 0), 0);
    assert_int_equal(kx_pki_new_csr(key, "system:node:n1", "system:masters", &evil, nullptr, 0), 0);
    assert_int_equal(kx_pki_new_csr(key, "system:node:n2", "system:nodes", &wrong, nullptr, 0), 0);

    kx_api_response r = join_req(f, &f->join, "n1", csr, "[\"127.0.0.1\",\"n1-host\"]");
    assert_int_equal(r.status, 200);
    json_object *o = parse(r);
    char *ca = slurp(f->paths.ca_crt);
    assert_string_equal(jpath(o, "ca"), ca);
    X509 *x = load_cert(jpath(o, "certificate"));
    assert_non_null(x);
    char buf[256];
    subject_field(x, NID_commonName, buf, sizeof buf);
    assert_string_equal(buf, "system:node:n1");
    subject_field(x, NID_organizationName, buf, sizeof buf);
    assert_string_equal(buf, "system:nodes");
    assert_true(has_san(x, "127.0.0.1"));
    assert_true(has_san(x, "n1-host"));
    // Signed by our CA.
    X509 *cax = load_cert(ca);
    EVP_PKEY *capub = X509_get_pubkey(cax);
    assert_int_equal(X509_verify(x, capub), 1);
    EVP_PKEY_free(capub);
    X509_free(cax);
    X509_free(x);
    json_object_put(o);
    free(r.body);
    free(ca);

    // Unauthenticated (a wrong token authenticates as nobody) → 401.
    kx_api_user nobody;
    kx_api_authenticate(f->api, nullptr, nullptr, "Bearer K10deadbeef::node:00", &nobody);
    r = join_req(f, &nobody, "n1", csr, nullptr);
    assert_int_equal(r.status, 401);
    free(r.body);
    // Bad CSRs → 400.
    const char *garbage = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
    const char *bad_csrs[] = {garbage, "", evil, wrong};
    for (const char *c : bad_csrs) {
        r = join_req(f, &f->join, "n1", c, nullptr);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(r.body, "\"reason\":\"BadRequest\""));
        free(r.body);
    }
    r = join_req(f, &f->join, "n1", csr, "[\"bad host!\"]");
    assert_int_equal(r.status, 400);
    free(r.body);
    r = join_req(f, &f->join, "n1", csr, "[\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
                                        "\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"]");
    assert_int_equal(r.status, 400);
    free(r.body);
    r = join_req(f, &f->join, "N1!", csr, nullptr);
    assert_int_equal(r.status, 400);
    free(r.body);
    // Another node cannot join under n1's name; n1 itself may renew.
    r = join_req(f, &f->node2, "n1", csr, nullptr);
    assert_int_equal(r.status, 403);
    free(r.body);
    r = join_req(f, &f->node1, "n1", csr, nullptr);
    assert_int_equal(r.status, 200);
    free(r.body);
    // GET is not allowed.
    r = call(f, &f->join, "GET", "/kubexec/v1/join");
    assert_int_equal(r.status, 405);
    free(r.body);
    free(key);
    free(csr);
    free(evil);
    free(wrong);
}

// ---------------------------------------------------------------------------
// Streaming targets

static int target(fixture *f, const kx_api_user *u, const char *verb, const char *ns, const char *pod,
                  const char *sub, const char *query, struct kx_api_stream_target *t, kx_api_response *r,
                  uint64_t now = T0 + 1000)
{
    return kx_api_stream_target(f->api, u, verb, ns, pod, sub, query, now, t, r);
}

static void stream_target_cases(void **state)
{
    fixture *f = (fixture *)*state;
    populate(f);
    struct kx_api_stream_target t;
    kx_api_response r;

    // Explicit container.
    assert_int_equal(target(f, &f->admin, "create", "default", "web", "exec",
                            "command=date&container=sidecar&stderr=true&stdout=true", &t, &r), 0);
    assert_string_equal(t.container, "sidecar");
    assert_string_equal(t.node_host, "10.0.0.5");
    assert_int_equal(t.node_port, 10443);
    assert_string_equal(t.node_name, "n1");
    assert_string_equal(t.ns, "default");
    assert_string_equal(t.pod, "web");
    // First container by default; the annotation wins when it names one.
    assert_int_equal(target(f, &f->admin, "get", "default", "web", "exec", "command=ls", &t, &r), 0);
    assert_string_equal(t.container, "app");
    assert_int_equal(target(f, &f->admin, "get", "prod", "db", "attach", "", &t, &r), 0);
    assert_string_equal(t.container, "main");
    assert_int_equal(target(f, &f->admin, "get", "prod", "db", "portforward", nullptr, &t, &r), 0);
    assert_string_equal(t.container, "");
    // Encoded container names are decoded.
    assert_int_equal(target(f, &f->admin, "get", "prod", "db", "exec", "container=ma%69n", &t, &r), 0);
    assert_string_equal(t.container, "main");

    // Bad container.
    assert_int_equal(target(f, &f->admin, "create", "default", "web", "exec", "container=c", &t, &r), -EINVAL);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                                "\"status\":\"Failure\",\"message\":\"container c is not valid for pod web\","
                                "\"reason\":\"BadRequest\",\"code\":400}");
    free(r.body);
    // Unknown pod.
    assert_int_equal(target(f, &f->admin, "create", "default", "nope", "exec", "", &t, &r), -ENOENT);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "\"message\":\"pods \\\"nope\\\" not found\""));
    free(r.body);
    // Forbidden: exactly the upstream message, before any lookup.
    assert_int_equal(target(f, &f->bob, "create", "default", "web", "exec", "", &t, &r), -EACCES);
    assert_int_equal(r.status, 403);
    assert_string_equal(r.body, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                                "\"status\":\"Failure\",\"message\":\"pods \\\"web\\\" is forbidden: User "
                                "\\\"bob\\\" cannot create resource \\\"pods/exec\\\" in API group \\\"\\\" "
                                "in the namespace \\\"default\\\"\",\"reason\":\"Forbidden\","
                                "\"details\":{\"name\":\"web\",\"kind\":\"pods\"},\"code\":403}");
    free(r.body);
    assert_int_equal(target(f, &f->node1, "get", "default", "ghost", "portforward", "", &t, &r), -EACCES);
    assert_non_null(strstr(r.body, "cannot get resource \\\"pods/portforward\\\""));
    free(r.body);
    // Logs only need authentication; unauthenticated gets 401.
    assert_int_equal(target(f, &f->bob, "get", "default", "web", "log", "container=app", &t, &r), 0);
    assert_int_equal(target(f, &f->anon, "get", "default", "web", "log", "", &t, &r), -EACCES);
    assert_int_equal(r.status, 401);
    free(r.body);
    assert_int_equal(target(f, &f->admin, "get", "default", "web", "bogus", "", &t, &r), -EINVAL);
    assert_int_equal(r.status, 404);
    free(r.body);

    // No node: pods reported for a node that never registered.
    kx_api_user n3;
    make_user(&n3, "system:node:n3", "system:nodes");
    r = call(f, &n3, "PUT", "/kubexec/v1/nodes/n3/pods", "", "application/json",
             "[{\"metadata\":{\"name\":\"orphan\"},\"spec\":{\"containers\":[{\"name\":\"x\"}]}}]");
    assert_int_equal(r.status, 200);
    free(r.body);
    assert_int_equal(target(f, &f->admin, "create", "default", "orphan", "exec", "", &t, &r), -EHOSTUNREACH);
    assert_int_equal(r.status, 500);
    assert_non_null(strstr(r.body, "\"reason\":\"InternalError\""));
    assert_non_null(strstr(r.body, "Internal error occurred: nodes \\\"n3\\\" not found"));
    free(r.body);

    // No containers at all.
    r = call(f, &n3, "PUT", "/kubexec/v1/nodes/n3/pods", "", "application/json",
             "[{\"metadata\":{\"name\":\"empty\"},\"spec\":{\"containers\":[]}}]");
    free(r.body);
    assert_int_equal(target(f, &f->admin, "create", "default", "empty", "exec", "", &t, &r), -EINVAL);
    assert_non_null(strstr(r.body, "a container name must be specified for pod empty"));
    free(r.body);
}

static void tick_marks_nodes_not_ready(void **state)
{
    fixture *f = (fixture *)*state;
    populate(f);  // heartbeat at T0, grace 30 s
    assert_int_equal(kx_api_tick(f->api, T0 + 30000), 0);
    assert_int_equal(kx_api_tick(f->api, T0 + 30001), 2);  // n1, and n2 registered at T0 earlier
    assert_int_equal(kx_api_tick(f->api, T0 + 31000), 0);  // only once

    kx_api_response r = call(f, &f->bob, "GET", "/api/v1/nodes/n1");
    json_object *o = parse(r);
    json_object *conds = json_object_object_get(json_object_object_get(o, "status"), "conditions");
    json_object *ready = json_object_array_get_idx(conds, 0);
    assert_string_equal(jpath(ready, "type"), "Ready");
    assert_string_equal(jpath(ready, "status"), "Unknown");
    assert_string_equal(jpath(ready, "reason"), "NodeStatusUnknown");
    json_object_put(o);
    free(r.body);

    r = call(f, &f->bob, "GET", "/api/v1/namespaces/default/pods/web");
    o = parse(r);
    assert_string_equal(jpath(o, "status", "phase"), "Unknown");
    conds = json_object_object_get(json_object_object_get(o, "status"), "conditions");
    bool found = false;
    for (size_t i = 0; i < json_object_array_length(conds); i++) {
        json_object *c = json_object_array_get_idx(conds, i);
        if (strcmp(jpath(c, "type"), "Ready") == 0) {
            assert_string_equal(jpath(c, "status"), "False");
            found = true;
        }
    }
    assert_true(found);
    json_object_put(o);
    free(r.body);

    r = call(f, &f->bob, "GET", "/api/v1/nodes", "", TABLE, nullptr, T0 + 40000);
    assert_non_null(strstr(r.body, "\"n1\",\"NotReady\""));
    free(r.body);
    r = call(f, &f->bob, "GET", "/api/v1/namespaces/default/pods/web", "", TABLE);
    assert_non_null(strstr(r.body, "\"web\",\"0/2\",\"Unknown\""));
    free(r.body);

    // Exec to a NotReady node: 503.
    struct kx_api_stream_target t;
    assert_int_equal(kx_api_stream_target(f->api, &f->admin, "create", "default", "web", "exec", "",
                                          T0 + 40000, &t, &r), -EHOSTUNREACH);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "\"reason\":\"ServiceUnavailable\""));
    free(r.body);

    // A heartbeat brings the node and its pods back.
    r = call(f, &f->node1, "PUT", "/api/v1/nodes/n1/status", "", "application/json", NODE1, T0 + 50000);
    assert_int_equal(r.status, 200);
    free(r.body);
    r = call(f, &f->bob, "GET", "/api/v1/namespaces/default/pods/web");
    o = parse(r);
    assert_string_equal(jpath(o, "status", "phase"), "Running");
    json_object_put(o);
    free(r.body);
    assert_int_equal(kx_api_stream_target(f->api, &f->admin, "create", "default", "web", "exec", "",
                                          T0 + 50000, &t, &r), 0);
    assert_int_equal(kx_api_tick(f->api, T0 + 60000), 0);
}

// ---------------------------------------------------------------------------
// Robustness: odd requests never crash and always produce a body.

static void odd_requests_are_answered(void **state)
{
    fixture *f = (fixture *)*state;
    const char *paths[] = {"", "/", "//", "/api/", "/api/v1/", "/api/v1//pods", "/api/v1/namespaces",
                           "/api/v1/namespaces/default/pods/web/status", "/api/v1/namespaces/default/pods/web/log",
                           "/api/v1/namespaces/default/pods/web/exec/x", "/kubexec/v1/nodes/n1",
                           "/api/v1/nodes/n1/status/x", "/a/b/c/d/e/f/g/h/i/j/k",
                           "relative", "/api/v1/namespaces/default/pods/\xff"};
    const char *methods[] = {"GET", "PUT", "POST", "DELETE", "PATCH", "", nullptr};
    const char *queries[] = {"", nullptr, "watch=true", "fieldSelector=%", "fieldSelector=a", "limit=x&&&=",
                             "fieldSelector=spec.nodeName!%3Dx"};
    for (const char *p : paths)
        for (const char *m : methods)
            for (const char *q : queries) {
                kx_api_request req = {};
                req.method = m;
                req.path = p;
                req.query = q;
                req.user = &f->admin;
                req.body = (const uint8_t *)"{}";
                req.body_len = 2;
                kx_api_response r;
                assert_int_equal(kx_api_handle(f->api, &req, T0, &r), 0);
                assert_non_null(r.body);
                assert_true(r.status >= 200 && r.status < 600);
                free(r.body);
            }
    kx_api_response r = call(f, &f->admin, "GET", "/api/v1/pods", "watch=1");
    assert_int_equal(r.status, 405);
    free(r.body);
    // A long path is a 404, not an overflow.
    static char longp[5000];
    memset(longp, 'a', sizeof longp - 1);
    longp[0] = '/';
    r = call(f, &f->admin, "GET", longp);
    assert_int_equal(r.status, 404);
    free(r.body);
}

static void api_new_rejects_bad_files(void **state)
{
    fixture *f = (fixture *)*state;
    kx_bootstrap_paths p = f->paths;
    char err[256];
    snprintf(p.node_token, sizeof p.node_token, "%s/missing-token", f->dir);
    assert_null(kx_api_new(&p, nullptr, err, sizeof err));
    assert_non_null(strstr(err, "missing-token"));
    p = f->paths;
    snprintf(p.tokens_csv, sizeof p.tokens_csv, "%s/bad.csv", f->dir);
    assert_int_equal(kx_pki_write_file(p.tokens_csv, "onlytoken\n", 0600), 0);
    assert_null(kx_api_new(&p, nullptr, err, sizeof err));
    snprintf(p.tokens_csv, sizeof p.tokens_csv, "%s/none.csv", f->dir);
    kx_api *a = kx_api_new(&p, nullptr, err, sizeof err);  // optional file
    assert_non_null(a);
    kx_api_free(a);
}

int main(void)
{
    const struct CMUnitTest boot[] = {
        cmocka_unit_test(bootstrap_creates_then_reuses),
        cmocka_unit_test(status_helper_shape),
    };
    const struct CMUnitTest api[] = {
        cmocka_unit_test(version_and_health_need_no_auth),
        cmocka_unit_test(unauthenticated_gets_401_status),
        cmocka_unit_test(discovery_is_legacy_json),
        cmocka_unit_test(not_found_bodies),
        cmocka_unit_test(authenticate_cert_and_tokens),
        cmocka_unit_test(pods_get_list_and_table),
        cmocka_unit_test(node_writes_are_authorized),
        cmocka_unit_test(join_issues_node_certificate),
        cmocka_unit_test(stream_target_cases),
        cmocka_unit_test(tick_marks_nodes_not_ready),
        cmocka_unit_test(odd_requests_are_answered),
        cmocka_unit_test(api_new_rejects_bad_files),
    };
    int rc = cmocka_run_group_tests_name("bootstrap", boot, nullptr, nullptr);
    rc += cmocka_run_group_tests_name("api", api, setup, teardown);
    return rc;
}
