// Unit tests for kubexec/util.h.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
extern "C" {
#include <cmocka.h>
}

#include "kubexec/util.h"

static void buf_append_respects_limit(void **)
{
    kx_buf b = {};
    assert_int_equal(kx_buf_append(&b, "hello", 5, 8), 0);
    assert_int_equal(kx_buf_append(&b, "world", 5, 8), -EMSGSIZE);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "hello", 5);
    kx_buf_consume(&b, 2);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "llo", 3);
    assert_int_equal(kx_buf_append(&b, "world", 5, 8), 0);
    assert_memory_equal(b.data, "lloworld", 8);
    kx_buf_free(&b);
    assert_null(b.data);
}

static void json_escape_quotes_and_controls(void **)
{
    char out[64];
    assert_int_equal(kx_json_escape(out, sizeof out, "a\"b\\c\n\x01"), 15);
    assert_string_equal(out, "a\\\"b\\\\c\\n\\u0001");
    assert_int_equal(kx_json_escape(out, 4, "abcd"), -EMSGSIZE);
}

static void be_roundtrip(void **)
{
    uint8_t b[4];
    kx_put_be32(b, 0x80030001u);
    assert_int_equal(b[0], 0x80);
    assert_int_equal(kx_get_be32(b), 0x80030001u);
    kx_put_be24(b, 0x123456);
    assert_int_equal(kx_get_be24(b), 0x123456);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf_append_respects_limit),
        cmocka_unit_test(json_escape_quotes_and_controls),
        cmocka_unit_test(be_roundtrip),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
