// Unit tests for kubexec/labels.h: the selector grammar of
// k8s.io/apimachinery/pkg/labels, its error texts, its limits, and matching.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// cmocka 1.1.5 has no extern "C" guards of its own.
extern "C" {
#include <cmocka.h>
}
#include <json-c/json.h>

#include "kubexec/labels.h"
#include "kubexec/util.h"

static kx_lsel sel;

static bool matches(const char *selector, const char *labels_json)
{
    char why[600];
    assert_int_equal(kx_lsel_parse(selector, &sel, why, sizeof why), 0);
    json_object *l = labels_json ? json_tokener_parse(labels_json) : nullptr;
    bool m = kx_lsel_match(&sel, l);
    json_object_put(l);
    return m;
}

static void grammar_and_matching(void **)
{
    const char *L = "{\"app\":\"web\",\"tier\":\"front\",\"n\":\"7\",\"empty\":\"\"}";
    struct {
        const char *s;
        bool want;
    } cases[] = {
        {"", true},
        {"app", true},
        {"!app", false},
        {"!nope", true},
        {"app=web", true},
        {"app==web", true},
        {"app!=web", false},
        {"app=db", false},
        {"nope!=x", true},          // absent differs from every value
        {"empty=", true},           // = with nothing after: the empty value
        {"app in (db, web)", true},
        {"app in (db)", false},
        {"app notin (db)", true},
        {"nope notin (db)", true},
        {"nope in (db)", false},
        {"n>5", true},
        {"n<5", false},
        {"app>5", false},           // not a number: never greater
        {"app=web,tier=front", true},
        {"app=web,tier=back", false},
        {"  app = web , tier ", true},
        {"app in (web,)", true},    // a trailing comma adds the empty value
    };
    for (auto &c : cases) {
        if (matches(c.s, L) != c.want)
            fail_msg("selector \"%s\": want %d", c.s, c.want);
    }
    // No labels at all.
    assert_true(matches("!app", nullptr));
    assert_false(matches("app", nullptr));
    assert_true(matches("", nullptr));
    // Label values that are not strings never match.
    assert_false(matches("app=1", "{\"app\":1}"));
}

static void errors_in_upstream_words(void **)
{
    struct {
        const char *s, *why;
    } cases[] = {
        {"app in web", "unable to parse requirement: found 'web', expected: '('"},
        {"=x", "unable to parse requirement: found '=', expected: !, identifier"},
        {"a,,b", "unable to parse requirement: found ',', expected: !, identifier"},
        {"!a=b", "unable to parse requirement: found 'a', expected: ',' or 'end of string'"},
        {"a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"},
        {"n>x", "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer"},
        {"a in (x y)", "unable to parse requirement: found 'y', expected: ',', ')' or identifier"},
        {"a=b c", "unable to parse requirement: found 'c', expected: ',' or 'end of string'"},
    };
    char why[600];
    for (auto &c : cases) {
        assert_int_equal(kx_lsel_parse(c.s, &sel, why, sizeof why), -EINVAL);
        assert_string_equal(why, c.why);
    }
    // A tiny buffer is truncated, not overrun; none at all is allowed.
    char tiny[8];
    assert_int_equal(kx_lsel_parse("a in b", &sel, tiny, sizeof tiny), -EINVAL);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
    assert_int_equal(kx_lsel_parse("a in b", &sel, nullptr, 0), -EINVAL);
}

static void limits(void **)
{
    char why[600];
    static char s[3 * KX_LSEL_MAX_LEN];
    // Length.
    memset(s, 'a', KX_LSEL_MAX_LEN);
    s[KX_LSEL_MAX_LEN] = '\0';
    assert_int_equal(kx_lsel_parse(s, &sel, why, sizeof why), 0);
    s[KX_LSEL_MAX_LEN] = 'a';
    s[KX_LSEL_MAX_LEN + 1] = '\0';
    assert_int_equal(kx_lsel_parse(s, &sel, why, sizeof why), -EMSGSIZE);
    assert_non_null(strstr(why, "longer than 4096"));
    // Requirements.
    s[0] = '\0';
    for (int i = 0; i < KX_LSEL_MAX_REQS; i++)
        snprintf(s + strlen(s), sizeof s - strlen(s), "%sk%d", i ? "," : "", i);
    assert_int_equal(kx_lsel_parse(s, &sel, why, sizeof why), 0);
    assert_int_equal(sel.n, (size_t)KX_LSEL_MAX_REQS);
    strcat(s, ",one_more");
    assert_int_equal(kx_lsel_parse(s, &sel, why, sizeof why), -EMSGSIZE);
    assert_non_null(strstr(why, "more than 64 requirements"));
    // Values in one set.
    strcpy(s, "k in (");
    for (int i = 0; i < KX_LSEL_MAX_VALS; i++)
        snprintf(s + strlen(s), sizeof s - strlen(s), "%sv%d", i ? "," : "", i);
    strcat(s, ")");
    assert_int_equal(kx_lsel_parse(s, &sel, why, sizeof why), 0);
    assert_int_equal(sel.reqs[0].nvals, (size_t)KX_LSEL_MAX_VALS);
    s[strlen(s) - 1] = '\0';
    strcat(s, ",v64)");
    assert_int_equal(kx_lsel_parse(s, &sel, why, sizeof why), -EMSGSIZE);
    assert_non_null(strstr(why, "more than 64 values"));
    // Every pool byte fits: the longest selector made of one-byte tokens.
    for (int i = 0; i < KX_LSEL_MAX_LEN; i++)
        s[i] = i % 2 ? ',' : 'a';
    s[KX_LSEL_MAX_LEN - 1] = 'a';
    s[KX_LSEL_MAX_LEN] = '\0';
    assert_int_equal(kx_lsel_parse(s, &sel, why, sizeof why), -EMSGSIZE); // > 64 requirements
    for (int i = 0; i < KX_LSEL_MAX_LEN; i++)
        s[i] = "(,)"[i % 3];
    s[KX_LSEL_MAX_LEN] = '\0';
    assert_int_equal(kx_lsel_parse(s, &sel, why, sizeof why), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grammar_and_matching),
        cmocka_unit_test(errors_in_upstream_words),
        cmocka_unit_test(limits),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
