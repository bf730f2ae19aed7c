// Unit tests for src/cli/kubeconfig.h: kubeconfig files written under a
// mkdtemp directory, loaded, merged and resolved. The expected error texts are
// what kubectl 1.33 printed for the same files (captured by hand, see the
// comments); certificates come from kubexec/pki.h so the test needs nothing
// outside itself.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
// cmocka 1.1.5 has no extern "C" guards of its own.
extern "C" {
#include <cmocka.h>
}

#include "ossl_server.h"

#include "kubeconfig.h"
#include "kubexec/pki.h"

// --- Fixture -------------------------------------------------------------------

static char dir[64];
static char *ca_key, *ca_cert, *srv_key, *srv_cert, *cli_key, *cli_cert, *other_key;
static char *ca_b64, *cli_cert_b64, *cli_key_b64;

static kx_kcfg cfg;
static char err[4096];

static void must(int r, const char *what)
{
    if (r != 0) {
        fprintf(stderr, "fixture: %s failed: %d\n", what, r);
        abort();
    }
}

// Writes dir/name (creating the sub directories name has) and
// returns the full path in a static ring of buffers.
static const char *put(const char *name, const char *data)
{
    static char ring[8][512];
    static int next;
    char *path = ring[next++ % 8];
    snprintf(path, 512, "%s/%s", dir, name);
    for (char *s = path + strlen(dir) + 1; (s = strchr(s, '/')); s++) {
        *s = 0;
        mkdir(path, 0700);
        *s = '/';
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        abort();
    }
    fputs(data, f);
    fclose(f);
    return path;
}

static const char *path_of(const char *name)
{
    static char ring[8][512];
    static int next;
    char *path = ring[next++ % 8];
    snprintf(path, 512, "%s/%s", dir, name);
    return path;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    static char ring[8][65536];
    static int next;
    char *b = ring[next++ % 8];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, sizeof ring[0], f, ap);
    va_end(ap);
    return b;
}

static int setup(void **)
{
    char e[256];
    snprintf(dir, sizeof dir, "/tmp/kx-kcfg-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    must(kx_pki_new_key(&ca_key, e, sizeof e), "ca key");
    must(kx_pki_new_ca(ca_key, "kubexec-ca", 30, &ca_cert, e, sizeof e), "ca");
    must(kx_pki_new_key(&srv_key, e, sizeof e), "srv key");
    must(kx_pki_issue(ca_cert, ca_key, srv_key, "apiserver", nullptr, "localhost\0" "127.0.0.1\0",
                      KX_PKI_SERVER, 30, &srv_cert, e, sizeof e),
         "srv cert");
    must(kx_pki_new_key(&cli_key, e, sizeof e), "cli key");
    must(kx_pki_issue(ca_cert, ca_key, cli_key, "admin", "system:masters", nullptr,
                      KX_PKI_CLIENT, 30, &cli_cert, e, sizeof e),
         "cli cert");
    must(kx_pki_new_key(&other_key, e, sizeof e), "other key");
    must(kx_base64(ca_cert, strlen(ca_cert), &ca_b64), "b64");
    must(kx_base64(cli_cert, strlen(cli_cert), &cli_cert_b64), "b64");
    must(kx_base64(cli_key, strlen(cli_key), &cli_key_b64), "b64");
    return 0;
}

static int teardown(void **)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    char *all[] = {ca_key, ca_cert, srv_key, srv_cert, cli_key, cli_cert, other_key,
                   ca_b64, cli_cert_b64, cli_key_b64};
    for (char *p : all)
        free(p);
    return 0;
}

static int each_teardown(void **)
{
    kx_kcfg_free(&cfg);
    return 0;
}

// Loads with the given flags; env_kc = $KUBECONFIG; home defaults to an empty
// home directory so the developer's ~/.kube/config never leaks in.
static int load(const kx_kcfg_flags *f, const char *env_kc, const char *home = nullptr)
{
    kx_kcfg_free(&cfg);
    err[0] = 0;
    return kx_kcfg_load(f, env_kc, home ? home : path_of("emptyhome"), &cfg, err, sizeof err);
}

static void assert_err(int rc, const char *want)
{
    if (rc == 0 || strcmp(err, want) != 0)
        fprintf(stderr, "rc=%d\n got: [%s]\nwant: [%s]\n", rc, err, want);
    assert_true(rc < 0);
    assert_string_equal(err, want);
}

static void assert_ok(int rc)
{
    if (rc != 0)
        fprintf(stderr, "unexpected error %d: %s\n", rc, err);
    assert_int_equal(rc, 0);
}

// An admin kubeconfig as kubexec-apiserver writes it (src/apiserver/bootstrap.cc).
static const char *admin_kubeconfig(const char *server)
{
    return fmt("apiVersion: v1\n"
               "kind: Config\n"
               "clusters:\n"
               "- name: kubexec\n"
               "  cluster:\n"
               "    server: %s\n"
               "    certificate-authority-data: %s\n"
               "users:\n"
               "- name: admin\n"
               "  user:\n"
               "    client-certificate-data: %s\n"
               "    client-key-data: %s\n"
               "contexts:\n"
               "- name: kubexec\n"
               "  context:\n"
               "    cluster: kubexec\n"
               "    user: admin\n"
               "    namespace: default\n"
               "current-context: kubexec\n"
               "preferences: {}\n",
               server, ca_b64, cli_cert_b64, cli_key_b64);
}

// --- Loading a single file --------------------------------------------------------

static void single_file(void **)
{
    const char *p = put("single/config", admin_kubeconfig("https://127.0.0.1:6443"));
    kx_kcfg_flags f{};
    f.kubeconfig = p;
    assert_ok(load(&f, "/ignored/when/explicit"));
    assert_string_equal(cfg.context_name, "kubexec");
    assert_string_equal(cfg.server, "https://127.0.0.1:6443");
    assert_string_equal(cfg.namespace_, "default");
    assert_false(cfg.namespace_explicit);
    assert_int_equal(cfg.ca_len, strlen(ca_cert));
    assert_memory_equal(cfg.ca_pem, ca_cert, cfg.ca_len);
    assert_int_equal(cfg.ca_pem[cfg.ca_len], 0);
    assert_string_equal(cfg.cert_pem, cli_cert);
    assert_string_equal(cfg.key_pem, cli_key);
    assert_false(cfg.insecure);
    assert_null(cfg.token);
    assert_null(cfg.tls_server_name);

    // The same through $KUBECONFIG, and through $HOME/.kube/config.
    assert_ok(load(nullptr, p));
    assert_string_equal(cfg.server, "https://127.0.0.1:6443");
    put("home/.kube/config", admin_kubeconfig("https://10.1.2.3:443"));
    assert_ok(load(nullptr, nullptr, path_of("home")));
    assert_string_equal(cfg.server, "https://10.1.2.3:443");
    assert_ok(load(nullptr, "", path_of("home"))); // empty KUBECONFIG = unset
    assert_string_equal(cfg.server, "https://10.1.2.3:443");

    // JSON is YAML too.
    p = put("single/config.json",
            "{\"clusters\":[{\"name\":\"c\",\"cluster\":{\"server\":\"https://127.0.0.1:1\","
            "\"insecure-skip-tls-verify\":true}}],\"contexts\":[{\"name\":\"c\",\"context\":"
            "{\"cluster\":\"c\",\"namespace\":\"js\"}}],\"current-context\":\"c\"}");
    assert_ok(load(nullptr, p));
    assert_string_equal(cfg.server, "https://127.0.0.1:1");
    assert_string_equal(cfg.namespace_, "js");
    assert_true(cfg.insecure);
    assert_null(cfg.ca_pem);
}

// --- Two files in KUBECONFIG --------------------------------------------------------

static const char first_file[] =
    "clusters:\n"
    "- name: shared\n"
    "  cluster: {server: 'https://first-shared:6443', insecure-skip-tls-verify: true}\n"
    "- name: c1\n"
    "  cluster: {server: 'https://one:6443', insecure-skip-tls-verify: true}\n"
    "users:\n"
    "- name: shared\n"
    "  user: {token: first-token}\n"
    "contexts:\n"
    "- name: one\n"
    "  context: {cluster: c1, user: shared, namespace: ns-one}\n"
    "- name: both\n"
    "  context: {cluster: shared, user: shared}\n"
    "current-context: one\n";

static const char second_file[] =
    "clusters:\n"
    "- name: shared\n"
    "  cluster: {server: 'https://second-shared:6443', tls-server-name: ignored}\n"
    "- name: c2\n"
    "  cluster: {server: 'https://two:6443', insecure-skip-tls-verify: true}\n"
    "users:\n"
    "- name: shared\n"
    "  user: {token: second-token}\n"
    "- name: u2\n"
    "  user: {token: two-token}\n"
    "contexts:\n"
    "- name: two\n"
    "  context: {cluster: c2, user: u2, namespace: ns-two}\n"
    "- name: both\n"
    "  context: {cluster: c2, user: u2, namespace: never}\n"
    "current-context: two\n";

static void two_file_merge(void **)
{
    const char *a = put("merge/a.yaml", first_file);
    const char *b = put("merge/b.yaml", second_file);
    const char *list = fmt("%s:%s", a, b);
    // current-context: the first file that sets it.
    assert_ok(load(nullptr, list));
    assert_string_equal(cfg.context_name, "one");
    assert_string_equal(cfg.server, "https://one:6443");
    assert_string_equal(cfg.namespace_, "ns-one");
    assert_string_equal(cfg.token, "first-token");

    // A context only the second file has.
    kx_kcfg_flags f{};
    f.context = "two";
    assert_ok(load(&f, list));
    assert_string_equal(cfg.server, "https://two:6443");
    assert_string_equal(cfg.namespace_, "ns-two");
    assert_string_equal(cfg.token, "two-token");

    // Same names in both: the first file's entries win whole (the second
    // file's tls-server-name does not leak into "shared").
    f.context = "both";
    assert_ok(load(&f, list));
    assert_string_equal(cfg.server, "https://first-shared:6443");
    assert_true(cfg.insecure);
    assert_null(cfg.tls_server_name);
    assert_string_equal(cfg.token, "first-token");
    assert_string_equal(cfg.namespace_, "default");

    // Reversed order: the other file wins.
    assert_ok(load(&f, fmt("%s:%s", b, a)));
    assert_string_equal(cfg.server, "https://two:6443");
    assert_string_equal(cfg.namespace_, "never");
    assert_ok(load(nullptr, fmt("%s:%s", b, a)));
    assert_string_equal(cfg.context_name, "two");

    // A first file without current-context lets the second one's through.
    const char *nocur = put("merge/nocur.yaml", "clusters: []\ncurrent-context: \"\"\n");
    assert_ok(load(nullptr, fmt("%s:%s", nocur, b)));
    assert_string_equal(cfg.context_name, "two");

    // Missing files and empty entries are skipped; duplicates read once.
    assert_ok(load(nullptr, fmt("::%s:/nonexistent/x:%s:%s:", path_of("merge/none"), a, a)));
    assert_string_equal(cfg.context_name, "one");
}

// --- Command-line overrides -------------------------------------------------------------

static void overrides(void **)
{
    const char *a = put("ovr/a.yaml", first_file);
    const char *b = put("ovr/b.yaml", second_file);
    const char *list = fmt("%s:%s", a, b);
    kx_kcfg_flags f{};

    f.namespace_ = "explicit";
    assert_ok(load(&f, list));
    assert_string_equal(cfg.namespace_, "explicit");
    assert_true(cfg.namespace_explicit);

    f = kx_kcfg_flags{};
    f.cluster = "c2"; // context "one" with another cluster
    assert_ok(load(&f, list));
    assert_string_equal(cfg.server, "https://two:6443");
    assert_string_equal(cfg.token, "first-token");
    assert_string_equal(cfg.namespace_, "ns-one");

    f = kx_kcfg_flags{};
    f.user = "u2";
    assert_ok(load(&f, list));
    assert_string_equal(cfg.server, "https://one:6443");
    assert_string_equal(cfg.token, "two-token");

    f = kx_kcfg_flags{};
    f.server = "https://override:8443/prefix";
    f.token = "flag-token";
    assert_ok(load(&f, list));
    assert_string_equal(cfg.server, "https://override:8443/prefix");
    assert_string_equal(cfg.token, "flag-token");
    assert_true(cfg.insecure); // the cluster's setting stays

    // --server drops the file's tls-server-name; --tls-server-name sets it.
    const char *t = put("ovr/tls.yaml", fmt("clusters:\n- name: c\n  cluster:\n"
                                            "    server: https://h:1\n"
                                            "    tls-server-name: from-file\n"
                                            "    certificate-authority-data: %s\n"
                                            "contexts:\n- name: c\n  context: {cluster: c}\n"
                                            "current-context: c\n",
                                            ca_b64));
    assert_ok(load(nullptr, t));
    assert_string_equal(cfg.tls_server_name, "from-file");
    assert_non_null(cfg.ca_pem);
    f = kx_kcfg_flags{};
    f.server = "https://other:2";
    assert_ok(load(&f, t));
    assert_null(cfg.tls_server_name);
    f.tls_server_name = "flag-name";
    assert_ok(load(&f, t));
    assert_string_equal(cfg.tls_server_name, "flag-name");

    // --insecure-skip-tls-verify drops the file's CA (else kubectl refuses
    // the combination); --certificate-authority replaces it.
    f = kx_kcfg_flags{};
    f.insecure_skip_tls_verify = true;
    assert_ok(load(&f, t));
    assert_true(cfg.insecure);
    assert_null(cfg.ca_pem);
    f = kx_kcfg_flags{};
    f.certificate_authority = put("ovr/flag-ca.crt", ca_cert);
    assert_ok(load(&f, t));
    assert_false(cfg.insecure);
    assert_string_equal(cfg.ca_pem, ca_cert);

    // --client-certificate/--client-key replace the *-data of the user.
    const char *u = put("ovr/user.yaml", admin_kubeconfig("https://h:1"));
    f = kx_kcfg_flags{};
    f.client_certificate = put("ovr/flag.crt", "CERT");
    f.client_key = put("ovr/flag.key", "KEY");
    assert_ok(load(&f, u));
    assert_string_equal(cfg.cert_pem, "CERT");
    assert_string_equal(cfg.key_pem, "KEY");
}

// --- Files referenced by the kubeconfig -------------------------------------------------

static void relative_paths_and_token_file(void **)
{
    put("rel/pki/ca.crt", ca_cert);
    put("rel/pki/admin.crt", cli_cert);
    put("rel/pki/admin.key", cli_key);
    put("rel/conf/token", "  s3cr3t-token\n\n");
    const char *p = put("rel/conf/config",
                        "clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n"
                        "    certificate-authority: ../pki/ca.crt\n"
                        "users:\n- name: u\n  user:\n"
                        "    client-certificate: ../pki/./admin.crt\n"
                        "    client-key: ../pki/admin.key\n"
                        "    tokenFile: token\n"
                        "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                        "current-context: x\n");
    // Through a relative KUBECONFIG entry too: paths resolve against the
    // file's directory, not the working directory.
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(path_of("rel")), 0);
    const char *kcs[] = {p, "conf/config", "./conf/../conf/config"};
    for (const char *kc : kcs) {
        assert_ok(load(nullptr, kc));
        assert_string_equal(cfg.ca_pem, ca_cert);
        assert_string_equal(cfg.cert_pem, cli_cert);
        assert_string_equal(cfg.key_pem, cli_key);
        assert_string_equal(cfg.token, "s3cr3t-token"); // trimmed
    }
    assert_int_equal(chdir(cwd), 0);

    // With both, tokenFile wins while it can be read (client-go's
    // bearerAuthRoundTripper re-reads it for every request);
    // "token-file" is not a field (kubectl ignores it).
    p = put("rel/conf/tok2",
            "clusters:\n- name: c\n  cluster: {server: 'https://h:1'}\n"
            "users:\n- name: u\n  user: {token: inline, tokenFile: token}\n"
            "- name: v\n  user: {token-file: token}\n"
            "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
            "- name: z\n  context: {cluster: c, user: v}\ncurrent-context: x\n");
    assert_ok(load(nullptr, p));
    assert_string_equal(cfg.token, "s3cr3t-token");
    kx_kcfg_flags f{};
    f.context = "z";
    assert_ok(load(&f, p));
    assert_null(cfg.token);

    // An http server gets no credentials (client-go applies them to https only).
    p = put("rel/conf/http", "clusters:\n- name: c\n  cluster: {server: 'http://h:8080'}\n"
                             "users:\n- name: u\n  user: {tokenFile: /nonexistent}\n"
                             "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                             "current-context: x\n");
    assert_ok(load(nullptr, p));
    assert_null(cfg.token);

    // A missing token file on https is an error.
    p = put("rel/conf/notok", "clusters:\n- name: c\n  cluster: {server: 'https://h:1'}\n"
                              "users:\n- name: u\n  user: {tokenFile: gone}\n"
                              "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                              "current-context: x\n");
    assert_err(load(nullptr, p),
               fmt("error: open %s: no such file or directory", path_of("rel/conf/gone")));
}

// --- What happens without usable configuration ------------------------------------------

static void no_config_is_localhost_8080(void **)
{
    // Nothing at all: kubectl talks to http://localhost:8080 (and then says
    // "The connection to the server localhost:8080 was refused ...").
    assert_ok(load(nullptr, nullptr));
    assert_string_equal(cfg.server, "http://localhost:8080");
    assert_null(cfg.context_name);
    assert_string_equal(cfg.namespace_, "default");
    assert_ok(load(nullptr, fmt("%s:%s", path_of("none1"), path_of("none2"))));
    assert_string_equal(cfg.server, "http://localhost:8080");
    // An empty file is an empty configuration.
    assert_ok(load(nullptr, put("empty/config", "")));
    assert_string_equal(cfg.server, "http://localhost:8080");
    assert_ok(load(nullptr, put("empty/comment", "# nothing\n")));
    assert_string_equal(cfg.server, "http://localhost:8080");
    // A context naming a cluster that does not exist: the same (kubectl 1.33).
    const char *p = put("empty/dangling", "contexts:\n- name: x\n  context: {cluster: gone, "
                                          "user: gone}\ncurrent-context: x\n");
    assert_ok(load(nullptr, p));
    assert_string_equal(cfg.server, "http://localhost:8080");
    assert_string_equal(cfg.context_name, "x");
}

// --- Errors, with kubectl 1.33's texts ---------------------------------------------------

static void explicit_kubeconfig_missing(void **)
{
    kx_kcfg_flags f{};
    f.kubeconfig = "/nonexist";
    // kubectl --kubeconfig=/nonexist get pods
    assert_err(load(&f, nullptr), "error: stat /nonexist: no such file or directory");
    assert_null(cfg.server);
}

static void malformed_yaml(void **)
{
    // kubectl: error: error loading config file "bad.yaml": yaml: line 1: did
    // not find expected ',' or ']'
    const char *p = put("bad/bad.yaml", "clusters: [\n  foo: bar: baz\n");
    assert_err(load(nullptr, p),
               fmt("error: error loading config file \"%s\": yaml: line 1: did not find "
                   "expected ',' or ']'", p));
    // Two broken files: one line each, no prefix (kubectl's aggregate).
    const char *q = put("bad/t1.yaml", "clusters: 5\n");
    assert_err(load(nullptr, fmt("%s:%s", p, q)),
               fmt("error loading config file \"%s\": yaml: line 1: did not find expected "
                   "',' or ']'\nerror loading config file \"%s\": json: cannot unmarshal "
                   "number into Go struct field Config.clusters of type []v1.NamedCluster",
                   p, q));
    // A broken file fails the load even when a good one comes first.
    const char *good = put("bad/good.yaml", first_file);
    assert_true(load(nullptr, fmt("%s:%s", good, p)) < 0);
}

static void wrong_types(void **)
{
    struct {
        const char *yaml, *want;
    } cases[] = {
        {"clusters: 5\n",
         "json: cannot unmarshal number into Go struct field Config.clusters of type "
         "[]v1.NamedCluster"},
        {"clusters:\n- name: c\n  cluster:\n    server: https://x\n"
         "    insecure-skip-tls-verify: \"true\"\n",
         "json: cannot unmarshal string into Go struct field "
         "Cluster.clusters.cluster.insecure-skip-tls-verify of type bool"},
        {"contexts:\n- name: c\n  context:\n    namespace: 123\ncurrent-context: c\n",
         "json: cannot unmarshal number into Go struct field "
         "Context.contexts.context.namespace of type string"},
        {"clusters:\n- name: c\n  cluster:\n    server: 8080\n",
         "json: cannot unmarshal number into Go struct field Cluster.clusters.cluster.server "
         "of type string"},
        {"a: &x 1\nb: *x\ncurrent-context: *x\n",
         "json: cannot unmarshal number into Go struct field Config.current-context of type "
         "string"},
        // YAML 1.1: a context named y is the boolean true (kubectl agrees).
        {"contexts:\n- name: y\n  context: {cluster: c}\n",
         "json: cannot unmarshal bool into Go struct field NamedContext.contexts.name of type "
         "string"},
        {"kind: Pod\n",
         "no kind \"Pod\" is registered for version \"v1\" in scheme "
         "\"k8s.io/client-go/tools/clientcmd/api/latest/latest.go:50\""},
        {"apiVersion: v2\n",
         "no kind \"Config\" is registered for version \"v2\" in scheme "
         "\"k8s.io/client-go/tools/clientcmd/api/latest/latest.go:50\""},
        {"- a\n- b\n",
         "couldn't get version/kind; json parse error: json: cannot unmarshal array into Go "
         "value of type struct { APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; "
         "Kind string \"json:\\\"kind,omitempty\\\"\" }"},
        {"clusters:\n- name: c\n  cluster: {server: \"https://a\"}\n- name: c\n"
         "  cluster: {server: \"https://b\"}\n",
         "error converting *[]NamedCluster into *map[string]*api.Cluster: duplicate name "
         "\"c\" in list"},
        // Go's base64 decoder: the offsets kubectl reported.
        {"clusters:\n- name: c\n  cluster:\n    certificate-authority-data: \"Zm9\"\n",
         "illegal base64 data at input byte 0"},
        {"clusters:\n- name: c\n  cluster:\n    certificate-authority-data: \"Zm9v!\"\n",
         "illegal base64 data at input byte 4"},
        {"clusters:\n- name: c\n  cluster:\n    certificate-authority-data: \"Zm9vYg\"\n",
         "illegal base64 data at input byte 4"},
        {"clusters:\n- name: c\n  cluster:\n    certificate-authority-data: \"Zm 9v\"\n",
         "illegal base64 data at input byte 2"},
        {"clusters:\n- name: c\n  cluster:\n    certificate-authority-data: \"Zm9vYg=\"\n",
         "illegal base64 data at input byte 7"},
        {"clusters:\n- name: c\n  cluster:\n    certificate-authority-data: \"Zm9vYg==x\"\n",
         "illegal base64 data at input byte 8"},
    };
    for (auto &c : cases) {
        const char *p = put("types/config", c.yaml);
        assert_err(load(nullptr, p),
                   fmt("error: error loading config file \"%s\": %s", p, c.want));
    }
    // YAML 1.1 booleans, base64 with line breaks.
    const char *p = put("types/ok", "clusters:\n- name: c\n  cluster:\n    server: https://h\n"
                                    "    insecure-skip-tls-verify: yes\n"
                                    "contexts:\n- name: c\n  context: {cluster: c}\n"
                                    "current-context: c\n");
    assert_ok(load(nullptr, p));
    assert_true(cfg.insecure);
    p = put("types/b64", "clusters:\n- name: c\n  cluster:\n    server: https://h\n"
                         "    certificate-authority-data: |\n      Zm9v\n      YmE=\n"
                         "contexts:\n- name: c\n  context: {cluster: c}\ncurrent-context: c\n");
    assert_ok(load(nullptr, p));
    assert_int_equal(cfg.ca_len, 5);
    assert_memory_equal(cfg.ca_pem, "fooba", 5);
}

static void validation_errors(void **)
{
    const char *p = put("val/a.yaml",
                        "clusters:\n- name: c1\n  cluster: {server: 'https://127.0.0.1:1', "
                        "insecure-skip-tls-verify: true}\n"
                        "users:\n- name: u1\n  user: {token: abc}\n"
                        "contexts:\n- name: ctx1\n  context: {cluster: c1, user: u1, "
                        "namespace: ns1}\ncurrent-context: ctx1\n");
    kx_kcfg_flags f{};
    f.context = "nope";
    assert_err(load(&f, p), "Error in configuration: context was not found for specified "
                            "context: nope");
    f.namespace_ = "x"; // kubectl takes another path with -n
    assert_err(load(&f, p), "error: context \"nope\" does not exist");
    f = kx_kcfg_flags{};
    f.user = "nope";
    assert_err(load(&f, p), "error: auth info \"nope\" does not exist");
    f.namespace_ = "x";
    assert_err(load(&f, p), "error: auth info \"nope\" does not exist");
    f = kx_kcfg_flags{};
    f.cluster = "nope";
    assert_err(load(&f, p), "error: no server found for cluster \"nope\"");
    f.namespace_ = "x";
    assert_err(load(&f, p), "error: cluster \"nope\" does not exist");

    // kubectl --context=a / b / c, see v.yaml in the notes.
    p = put("val/v.yaml", "clusters:\n- name: c1\n  cluster:\n    server: https://127.0.0.1:1\n"
                          "    certificate-authority: ca.crt\n"
                          "users:\n- name: u1\n  user: {token: abc, username: x}\n"
                          "- name: u2\n  user: {token: abc}\n"
                          "contexts:\n- name: a\n  context: {cluster: c1, user: u2}\n"
                          "- name: b\n  context: {cluster: c1, user: u1}\n"
                          "- name: c\n  context: {cluster: c2, user: u1}\n"
                          "current-context: a\n");
    const char *ca = path_of("val/ca.crt");
    assert_err(load(nullptr, p),
               fmt("error: unable to read certificate-authority %s for c1 due to open %s: no "
                   "such file or directory", ca, ca));
    f = kx_kcfg_flags{};
    f.context = "b";
    assert_err(load(&f, p),
               fmt("Error in configuration: \n* more than one authentication method found "
                   "for u1; found [token basicAuth], only one is allowed\n* unable to read "
                   "certificate-authority %s for c1 due to open %s: no such file or directory",
                   ca, ca));
    f.context = "c";
    assert_err(load(&f, p), "error: more than one authentication method found for u1; found "
                            "[token basicAuth], only one is allowed");
    f.namespace_ = "x";
    assert_err(load(&f, p), "Error in configuration: more than one authentication method "
                            "found for u1; found [token basicAuth], only one is allowed");

    // The client-certificate checks (kubectl printed these four lines).
    p = put("val/b.yaml", "clusters:\n- name: c1\n  cluster:\n    server: https://127.0.0.1:1\n"
                          "    certificate-authority: /nonexist/ca.crt\n"
                          "    certificate-authority-data: Zm9v\n"
                          "users:\n- name: u1\n  user:\n    client-certificate: /nonexist/cert\n"
                          "contexts:\n- name: multi\n  context: {cluster: c1, user: u1}\n"
                          "current-context: multi\n");
    assert_err(load(nullptr, p),
               "Error in configuration: \n"
               "* client-key-data or client-key must be specified for u1 to use the "
               "clientCert authentication method.\n"
               "* unable to read client-cert /nonexist/cert for u1 due to open /nonexist/cert: "
               "no such file or directory\n"
               "* certificate-authority-data and certificate-authority are both specified for "
               "c1. certificate-authority-data will override.\n"
               "* unable to read certificate-authority /nonexist/ca.crt for c1 due to open "
               "/nonexist/ca.crt: no such file or directory");

    // Unsupported credentials are refused clearly.
    p = put("val/exec.yaml", "clusters:\n- name: c\n  cluster: {server: 'https://h:1'}\n"
                             "users:\n- name: u\n  user:\n    exec: {command: x}\n"
                             "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                             "current-context: x\n");
    assert_err(load(nullptr, p),
               "error: user \"u\" uses an exec credential plugin, which kubexec does not "
               "support");
}

static void limits(void **)
{
    // A kubeconfig over 16 MiB (sparse) is refused without being read.
    const char *p = put("lim/huge", "");
    assert_int_equal(truncate(p, (off_t)KX_KCFG_MAX_FILE + 1), 0);
    int rc = load(nullptr, p);
    assert_int_equal(rc, -EMSGSIZE);
    assert_non_null(strstr(err, "limit"));
    // Exactly at the limit is read (all spaces: an empty document).
    assert_int_equal(truncate(p, 0), 0);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    static char spaces[1 << 16];
    memset(spaces, ' ', sizeof spaces);
    for (size_t i = 0; i < KX_KCFG_MAX_FILE / sizeof spaces; i++)
        assert_int_equal(fwrite(spaces, 1, sizeof spaces, f), sizeof spaces);
    fclose(f);
    assert_ok(load(nullptr, p));
    // A directory as a kubeconfig.
    kx_kcfg_flags fl{};
    fl.kubeconfig = dir;
    assert_err(load(&fl, nullptr),
               fmt("error: error loading config file \"%s\": read %s: is a directory", dir,
                   dir));
    // Too many KUBECONFIG entries.
    char *list = fmt("%s", "");
    size_t w = 0;
    for (int i = 0; i <= KX_KCFG_MAX_FILES; i++)
        w += (size_t)snprintf(list + w, 65536 - w, "/nonexistent/%d:", i);
    assert_int_equal(load(nullptr, list), -EMSGSIZE);
    // Aliases multiply references, not work: a "billion laughs" document
    // loads in bounded time (only the known schema is walked).
    const char *lol = put("lim/lol",
                          "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                          "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                          "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                          "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                          "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                          "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                          "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
                          "clusters: &cl\n- name: c\n  cluster: &cc {server: 'https://h'}\n"
                          "contexts: [{name: c, context: {cluster: c}}]\n"
                          "current-context: c\n");
    assert_ok(load(nullptr, lol));
    assert_string_equal(cfg.server, "https://h");
}

// --- Server URL parts -----------------------------------------------------------------------

static void server_parts(void **)
{
    struct {
        const char *url;
        int rc;
        bool https;
        const char *host;
        int port;
        const char *prefix;
    } cases[] = {
        {"https://127.0.0.1:6443", 0, true, "127.0.0.1", 6443, ""},
        {"https://example.com", 0, true, "example.com", 443, ""},
        {"http://example.com", 0, false, "example.com", 80, ""},
        {"HTTPS://Example.com:8443/", 0, true, "Example.com", 8443, ""},
        {"https://[::1]:6443", 0, true, "::1", 6443, ""},
        {"https://[fe80::1]", 0, true, "fe80::1", 443, ""},
        {"https://h:6443/k8s/clusters/c-1/", 0, true, "h", 6443, "/k8s/clusters/c-1"},
        {"https://h/prefix?x=1#frag", 0, true, "h", 443, "/prefix"},
        {"https://user:pw@h:1", 0, true, "h", 1, ""},
        {"localhost:8080", 0, false, "localhost", 8080, ""},
        {"http://localhost:8080", 0, false, "localhost", 8080, ""},
        {"ftp://h", -EINVAL, false, "", 0, ""},
        {"https://", -EINVAL, false, "", 0, ""},
        {"https://h:0", -EINVAL, false, "", 0, ""},
        {"https://h:65536", -EINVAL, false, "", 0, ""},
        {"https://h:12x", -EINVAL, false, "", 0, ""},
        {"https://[::1", -EINVAL, false, "", 0, ""},
        {"https://[::1]x", -EINVAL, false, "", 0, ""},
    };
    for (auto &c : cases) {
        bool https = !c.https;
        char host[64] = "", prefix[64] = "";
        int port = -1;
        int rc = kx_kcfg_server_parts(c.url, &https, host, sizeof host, &port, prefix,
                                      sizeof prefix);
        if (rc != c.rc)
            fprintf(stderr, "%s: rc %d\n", c.url, rc);
        assert_int_equal(rc, c.rc);
        if (rc)
            continue;
        assert_int_equal(https, c.https);
        assert_string_equal(host, c.host);
        assert_int_equal(port, c.port);
        assert_string_equal(prefix, c.prefix);
    }
    bool https;
    char small[4], prefix[8];
    int port;
    assert_int_equal(kx_kcfg_server_parts("https://longhost", &https, small, sizeof small, &port,
                                          prefix, sizeof prefix),
                     -EMSGSIZE);
}

// --- The TLS context, checked by a real handshake in memory ---------------------------------

// Runs a TLS handshake between a client over cctx (the CLI's backend,
// mbedTLS) and an OpenSSL server with srv_cert that asks for a client
// certificate. Returns true if both sides completed, and reports whether the
// server saw a verified client certificate.
static bool handshake(kx_tls_ctx *cctx, bool *client_verified, const char *host = "localhost")
{
    SSL_CTX *sctx = ossl_server_ctx(srv_cert, srv_key, ca_cert);
    ossl_server s;
    ossl_server_start(&s, sctx);
    ossl_client c = {};
    c.t = kx_tls_new(cctx, false, host);
    assert_non_null(c.t);
    ossl_pump(&c, &s, 0);
    X509 *peer = SSL_get1_peer_certificate(s.ssl);
    *client_verified = peer && SSL_get_verify_result(s.ssl) == X509_V_OK;
    X509_free(peer);
    bool ok = kx_tls_handshake_done(c.t) && !c.err && s.done && !s.failed;
    kx_tls_free(c.t);
    kx_buf_free(&c.in);
    ossl_server_free(&s);
    SSL_CTX_free(sctx);
    return ok;
}

static void ssl_ctx_from_admin_kubeconfig(void **)
{
    const char *p = put("tls/admin.kubeconfig", admin_kubeconfig("https://127.0.0.1:6443"));
    assert_ok(load(nullptr, p));
    char e[256];
    kx_tls_ctx *ctx = kx_kcfg_tls_ctx(&cfg, e, sizeof e);
    assert_non_null(ctx);
    bool verified = false;
    assert_true(handshake(ctx, &verified));
    assert_true(verified);
    // The server is checked by name and by address (an IP SAN), and a name
    // it does not carry fails.
    assert_true(handshake(ctx, &verified, "127.0.0.1"));
    assert_false(handshake(ctx, &verified, "10.9.8.7"));
    assert_false(handshake(ctx, &verified, "other.example"));
    kx_tls_ctx_free(ctx);

    // Another CA: the server is not trusted.
    char *other_ca = nullptr;
    must(kx_pki_new_ca(other_key, "other", 30, &other_ca, e, sizeof e), "other ca");
    kx_kcfg c2 = cfg;
    c2.ca_pem = other_ca;
    c2.ca_len = strlen(other_ca);
    ctx = kx_kcfg_tls_ctx(&c2, e, sizeof e);
    assert_non_null(ctx);
    assert_false(handshake(ctx, &verified));
    kx_tls_ctx_free(ctx);
    // ... unless verification is off.
    c2.ca_pem = nullptr;
    c2.insecure = true;
    ctx = kx_kcfg_tls_ctx(&c2, e, sizeof e);
    assert_non_null(ctx);
    assert_true(handshake(ctx, &verified));
    kx_tls_ctx_free(ctx);
    free(other_ca);

    // Bad material: kubectl's (Go's) wording.
    struct {
        const char *ca, *cert, *key, *want;
    } bad[] = {
        {"garbage", nullptr, nullptr,
         "error: unable to load root certificates: unable to parse bytes as PEM block"},
        {nullptr, "garbage", cli_key, "error: tls: failed to find any PEM data in certificate input"},
        {nullptr, cli_cert, "garbage", "error: tls: failed to find any PEM data in key input"},
        {nullptr, cli_cert, other_key, "error: tls: private key does not match public key"},
    };
    for (auto &b : bad) {
        kx_kcfg c3{};
        c3.ca_pem = (char *)b.ca;
        c3.ca_len = b.ca ? strlen(b.ca) : 0;
        c3.cert_pem = (char *)b.cert;
        c3.cert_len = b.cert ? strlen(b.cert) : 0;
        c3.key_pem = (char *)b.key;
        c3.key_len = b.key ? strlen(b.key) : 0;
        e[0] = 0;
        assert_null(kx_kcfg_tls_ctx(&c3, e, sizeof e));
        assert_string_equal(e, b.want);
    }
    // No CA: the system store.
    kx_kcfg c4{};
    ctx = kx_kcfg_tls_ctx(&c4, e, sizeof e);
    assert_non_null(ctx);
    kx_tls_ctx_free(ctx);
}

// --- Robustness: every prefix of a valid file, and byte flips ----------------------------

static void truncations_never_crash(void **)
{
    const char *full = fmt("%s", admin_kubeconfig("https://[::1]:6443/prefix"));
    size_t n = strlen(full);
    const char *p = path_of("fuzz/config");
    put("fuzz/config", "");
    int ok = 0, bad = 0;
    for (size_t cut = 0; cut <= n; cut++) {
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        assert_int_equal(fwrite(full, 1, cut, f), cut);
        fclose(f);
        int rc = load(nullptr, p);
        if (rc == 0) {
            ok++;
            assert_non_null(cfg.server);
            assert_non_null(cfg.namespace_);
        } else {
            bad++;
            assert_true(err[0] != 0);
        }
    }
    assert_true(ok > 0);
    assert_true(bad > 0);
    // Deterministic byte substitutions over a shorter file with every field.
    const char *base = "clusters:\n- name: c\n  cluster: {server: 'https://h:1', "
                       "certificate-authority-data: Zm9vYmFy, tls-server-name: n}\n"
                       "users:\n- name: u\n  user: {token: t, client-certificate-data: Zg==, "
                       "client-key-data: Zg==}\n"
                       "contexts:\n- name: x\n  context: {cluster: c, user: u, namespace: n}\n"
                       "current-context: x\n";
    const char subst[] = "\"'[]{}:,-&*!|>%@`#\n \t\0\xff";
    size_t bn = strlen(base);
    char *buf = (char *)malloc(bn);
    unsigned seed = 1;
    for (size_t i = 0; i < bn; i++) {
        memcpy(buf, base, bn);
        seed = seed * 1103515245u + 12345u;
        buf[i] = subst[(seed >> 16) % (sizeof subst - 1)];
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        assert_int_equal(fwrite(buf, 1, bn, f), bn);
        fclose(f);
        int rc = load(nullptr, p);
        assert_true(rc == 0 || err[0] != 0);
    }
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(single_file, each_teardown),
        cmocka_unit_test_teardown(two_file_merge, each_teardown),
        cmocka_unit_test_teardown(overrides, each_teardown),
        cmocka_unit_test_teardown(relative_paths_and_token_file, each_teardown),
        cmocka_unit_test_teardown(no_config_is_localhost_8080, each_teardown),
        cmocka_unit_test_teardown(explicit_kubeconfig_missing, each_teardown),
        cmocka_unit_test_teardown(malformed_yaml, each_teardown),
        cmocka_unit_test_teardown(wrong_types, each_teardown),
        cmocka_unit_test_teardown(validation_errors, each_teardown),
        cmocka_unit_test_teardown(limits, each_teardown),
        cmocka_unit_test(server_parts),
        cmocka_unit_test_teardown(ssl_ctx_from_admin_kubeconfig, each_teardown),
        cmocka_unit_test_teardown(truncations_never_crash, each_teardown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
