// Unit tests for the kubexec CLI's flag parser (src/cli/args.cc): kubectl's
// (pflag's) spellings, global flags anywhere, "--" ending the flags, and the
// error answers for unknown flags, missing values and bad booleans.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
extern "C" {
#include <cmocka.h>
}

#include <initializer_list>

#include "cli.h"

struct parsed {
    const char *container = nullptr;
    bool in = false, tty = false;
    long tail = -1;
    const char *pos[4] = {};
    size_t npos = 0;
    char **rest = nullptr;
    int nrest = 0;
};

static int parse(kx_cli *c, parsed *p, std::initializer_list<const char *> args)
{
    static char *argv[32];
    int argc = 0;
    for (const char *a : args)
        argv[argc++] = (char *)a;
    const kx_flag flags[] = {
        {"container", 'c', KXF_STRING, &p->container},
        {"stdin", 'i', KXF_BOOL, &p->in},
        {"tty", 't', KXF_BOOL, &p->tty},
        {"tail", 0, KXF_INT, &p->tail},
    };
    return kx_cli_parse(c, argc, argv, flags, 4, p->pos, 4, &p->npos, &p->rest, &p->nrest);
}

static void spellings(void **)
{
    kx_cli c = {};
    parsed p;
    assert_int_equal(parse(&c, &p, {"demo", "-it", "-c", "main", "--", "sh", "-c", "x"}), 0);
    assert_true(p.in && p.tty);
    assert_string_equal(p.container, "main");
    assert_int_equal(p.npos, 1);
    assert_string_equal(p.pos[0], "demo");
    assert_int_equal(p.nrest, 3);
    assert_string_equal(p.rest[1], "-c");   // after "--" nothing is a flag

    parsed q;
    assert_int_equal(parse(&c, &q, {"-cmain", "--tty=false", "--stdin=true", "demo", "--tail=5"}), 0);
    assert_string_equal(q.container, "main");
    assert_false(q.tty);
    assert_true(q.in);
    assert_int_equal(q.tail, 5);
    assert_int_equal(q.nrest, -1);   // no "--"

    parsed r;
    assert_int_equal(parse(&c, &r, {"--container", "x", "-c=y", "demo"}), 0);
    assert_string_equal(r.container, "y");   // the last one wins, as pflag
}

static void global_flags_anywhere(void **)
{
    kx_cli c = {};
    parsed p;
    assert_int_equal(parse(&c, &p, {"-n", "kube-system", "demo", "--context=b", "--kubeconfig",
                                    "/k", "--insecure-skip-tls-verify", "-v", "6",
                                    "--cache-dir", "/tmp/c"}),
                     0);
    assert_string_equal(c.g.kcfg.namespace_, "kube-system");
    assert_string_equal(c.g.kcfg.context, "b");
    assert_string_equal(c.g.kcfg.kubeconfig, "/k");
    assert_true(c.g.kcfg.insecure_skip_tls_verify);
    assert_int_equal(c.g.v, 6);
    assert_int_equal(p.npos, 1);
    parsed q;
    assert_int_equal(parse(&c, &q, {"-nother", "demo"}), 0);
    assert_string_equal(c.g.kcfg.namespace_, "other");
}

static void errors(void **)
{
    kx_cli c = {};
    parsed p;
    assert_int_equal(parse(&c, &p, {"--nosuch"}), 1);
    assert_int_equal(parse(&c, &p, {"-x"}), 1);
    assert_int_equal(parse(&c, &p, {"-c"}), 1);            // needs a value
    assert_int_equal(parse(&c, &p, {"--container"}), 1);
    assert_int_equal(parse(&c, &p, {"--tty=maybe"}), 1);
    assert_int_equal(parse(&c, &p, {"--tail=5x"}), 1);
    assert_int_equal(parse(&c, &p, {"--tail="}), 1);
    assert_int_equal(parse(&c, &p, {"a", "b", "c", "d", "e"}), 1);   // over maxpos
    // "-" alone is a positional (stdin as a file name), not a flag.
    parsed q;
    assert_int_equal(parse(&c, &q, {"-"}), 0);
    assert_int_equal(q.npos, 1);
}

static void pod_names(void **)
{
    char out[64];
    assert_int_equal(kx_cli_pod_name("pod/web", out, sizeof out), 0);
    assert_string_equal(out, "web");
    assert_int_equal(kx_cli_pod_name("pods/web", out, sizeof out), 0);
    assert_int_equal(kx_cli_pod_name("po/web", out, sizeof out), 0);
    assert_int_equal(kx_cli_pod_name("web", out, sizeof out), 0);
    assert_string_equal(out, "web");
    assert_int_equal(kx_cli_pod_name("deploy/web", out, sizeof out), 1);
    assert_int_equal(kx_cli_pod_name("pod/", out, sizeof out), 1);
    assert_int_equal(kx_cli_pod_name("pod/a/b", out, sizeof out), 1);
}

static void query_escape(void **)
{
    char out[64];
    assert_int_equal(kx_cli_qesc(out, sizeof out, "sh -c 'a&b=c'"), 25);
    assert_string_equal(out, "sh%20-c%20%27a%26b%3Dc%27");
    assert_int_equal(kx_cli_qesc(out, 4, "abcd"), -EMSGSIZE);
    assert_int_equal(kx_cli_qesc(out, 6, "a b"), 5);   // "a%20b" and its NUL just fit
    assert_int_equal(kx_cli_qesc(out, 5, "a b"), -EMSGSIZE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spellings),
        cmocka_unit_test(global_flags_anywhere),
        cmocka_unit_test(errors),
        cmocka_unit_test(pod_names),
        cmocka_unit_test(query_escape),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
