// Unit tests for the reading side of src/node/crilog.h: PodLogOptions parsing
// (kx_logopts), CRI bytes -> `kubectl logs` output (kx_logfilter) and line
// counting for tailLines (kx_logcount). Every filter case is run on the whole
// input and on every two-way split, plus byte by byte.
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
extern "C" {
#include <cmocka.h>
}

#include "crilog.h"

// 2016-10-06T00:17:09Z + n seconds.
#define T(n) "2016-10-06T00:17:" #n ".000000000Z"

static const char kLog[] =
    T(10) " stdout F one\n"
    T(11) " stderr F err one\n"
    T(12) " stdout P tw\n"
    T(13) " stdout F o\n"
    T(14) " stderr P err \n"
    T(15) " stdout F three\n"
    T(16) " stderr F two\n"
    "garbage line\n"
    T(17) " stdout F \n"
    T(18) " stdout P unterminated\n";

// Runs the filter over in, split at `split` (SIZE_MAX: one byte per feed).
static int run(const kx_logopts *o, const struct timespec *since, uint64_t skip, const char *in, size_t split,
               char **out, size_t *outlen)
{
    kx_logfilter f;
    kx_logfilter_init(&f, o, since, skip);
    kx_buf b = {};
    size_t n = strlen(in);
    int rc = 0;
    if (split == SIZE_MAX) {
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = kx_logfilter_feed(&f, (const uint8_t *)in + i, 1, &b);
    } else {
        rc = kx_logfilter_feed(&f, (const uint8_t *)in, split, &b);
        if (rc == 0)
            rc = kx_logfilter_feed(&f, (const uint8_t *)in + split, n - split, &b);
    }
    kx_logfilter_free(&f);
    kx_buf_append(&b, "", 1, SIZE_MAX);
    *out = (char *)b.data;
    *outlen = b.len - 1;
    return rc;
}

// The filter's output must not depend on how the input was split.
static void expect(const kx_logopts *o, const struct timespec *since, uint64_t skip, const char *in,
                   const char *want, int want_rc)
{
    size_t n = strlen(in);
    for (size_t split = 0; split <= n + 1; split++) {
        size_t s = split == n + 1 ? SIZE_MAX : split;
        char *got;
        size_t len;
        int rc = run(o, since, skip, in, s, &got, &len);
        if (strcmp(got, want) != 0 || rc != want_rc) {
            fprintf(stderr, "split %zu: rc %d, got [%s]\nwant [%s]\n", split, rc, got, want);
            free(got);
            fail();
        }
        free(got);
    }
}

static void plain_output_joins_partials(void **)
{
    kx_logopts o;
    kx_logopts_init(&o);
    expect(&o, nullptr, 0, kLog, "one\nerr one\ntwo\nerr three\ntwo\n\nunterminated", 0);
}

static void timestamps_prefix_first_record_of_line(void **)
{
    kx_logopts o;
    kx_logopts_init(&o);
    o.timestamps = true;
    expect(&o, nullptr, 0, kLog,
           T(10) " one\n" T(11) " err one\n" T(12) " two\n" T(14) " err " T(15) " three\ntwo\n" T(17) " \n" T(18)
                 " unterminated",
           0);
}

static void stream_selection(void **)
{
    kx_logopts o;
    kx_logopts_init(&o);
    o.streams = KX_LOG_STDOUT;
    expect(&o, nullptr, 0, kLog, "one\ntwo\nthree\n\nunterminated", 0);
    o.streams = KX_LOG_STDERR;
    expect(&o, nullptr, 0, kLog, "err one\nerr two\n", 0);
}

static void since_filters_whole_lines(void **)
{
    kx_logopts o;
    kx_logopts_init(&o);
    struct timespec since = {1475713029 + 4, 0};   // 00:17:13: "tw"+"o" started at :12, so dropped
    expect(&o, &since, 0, kLog, "err three\ntwo\n\nunterminated", 0);
    since.tv_sec = 1475713029 + 100;
    expect(&o, &since, 0, kLog, "", 0);
}

static void skip_lines_for_tail(void **)
{
    kx_logopts o;
    kx_logopts_init(&o);
    // 6 full lines (one, err one, two, three, err two, empty) + 1 unterminated.
    // The stderr line "err two" starts right after the third line ended.
    expect(&o, nullptr, 3, kLog, "err three\ntwo\n\nunterminated", 0);
    expect(&o, nullptr, 6, kLog, "unterminated", 0);
    o.streams = KX_LOG_STDOUT;   // skips count only the selected stream's lines
    expect(&o, nullptr, 2, kLog, "three\n\nunterminated", 0);
}

static void limit_bytes_cuts_exactly(void **)
{
    kx_logopts o;
    kx_logopts_init(&o);
    o.have_limit_bytes = true;
    o.limit_bytes = 10;
    expect(&o, nullptr, 0, kLog, "one\nerr on", 1);
    o.limit_bytes = 4;
    expect(&o, nullptr, 0, kLog, "one\n", 1);
    o.limit_bytes = 1000;
    expect(&o, nullptr, 0, kLog, "one\nerr one\ntwo\nerr three\ntwo\n\nunterminated", 0);
    o.timestamps = true;
    o.limit_bytes = 33;
    expect(&o, nullptr, 0, kLog, T(10) " on", 1);
    // After the limit nothing more comes out.
    kx_logfilter f;
    o.limit_bytes = 2;
    kx_logfilter_init(&f, &o, nullptr, 0);
    kx_buf b = {};
    assert_int_equal(kx_logfilter_feed(&f, (const uint8_t *)kLog, strlen(kLog), &b), 1);
    assert_int_equal(kx_logfilter_feed(&f, (const uint8_t *)kLog, strlen(kLog), &b), 1);
    assert_int_equal(b.len, 2);
    kx_buf_free(&b);
    kx_logfilter_free(&f);
}

static void pending_and_overlong_records(void **)
{
    kx_logopts o;
    kx_logopts_init(&o);
    kx_logfilter f;
    kx_logfilter_init(&f, &o, nullptr, 0);
    kx_buf b = {};
    const char *half = T(10) " stdout F hal";
    assert_int_equal(kx_logfilter_feed(&f, (const uint8_t *)half, strlen(half), &b), 0);
    assert_int_equal(b.len, 0);
    assert_int_equal(kx_logfilter_pending(&f), strlen(half));
    assert_int_equal(kx_logfilter_feed(&f, (const uint8_t *)"f\n", 2, &b), 0);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "half\n", 5);
    assert_int_equal(kx_logfilter_pending(&f), 0);
    // A record line longer than KX_CRILOG_MAX_RECORD is skipped, the next one is fine.
    size_t big = KX_CRILOG_MAX_RECORD + 100;
    char *line = (char *)malloc(big + 1);
    memset(line, 'x', big);
    memcpy(line, T(11) " stdout F ", 40);
    line[big] = '\n';
    for (size_t i = 0; i <= big; i += 1000)
        assert_int_equal(kx_logfilter_feed(&f, (const uint8_t *)line + i, big + 1 - i < 1000 ? big + 1 - i : 1000, &b), 0);
    free(line);
    const char *next = T(12) " stdout F next\n";
    assert_int_equal(kx_logfilter_feed(&f, (const uint8_t *)next, strlen(next), &b), 0);
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data + 5, "next\n", 5);
    assert_int_equal(f.malformed, 1);
    kx_buf_free(&b);
    kx_logfilter_free(&f);
}

static void count_lines(void **)
{
    kx_logcount c;
    kx_logcount_init(&c, KX_LOG_ALL);
    size_t n = strlen(kLog);
    for (size_t i = 0; i < n; i += 7)
        assert_int_equal(kx_logcount_feed(&c, (const uint8_t *)kLog + i, n - i < 7 ? n - i : 7), 0);
    assert_int_equal(kx_logcount_lines(&c, false), 6);
    assert_int_equal(kx_logcount_lines(&c, true), 7);   // + the unterminated last line
    kx_logcount_free(&c);
    kx_logcount_init(&c, KX_LOG_STDERR);
    assert_int_equal(kx_logcount_feed(&c, (const uint8_t *)kLog, n), 0);
    assert_int_equal(kx_logcount_lines(&c, true), 2);
    kx_logcount_free(&c);
}

static void options_parse_and_validate(void **)
{
    kx_logopts o;
    char err[256];
    kx_logopts_init(&o);
    assert_int_equal(kx_logopts_set(&o, "follow", "true", err, sizeof err), 0);
    assert_int_equal(kx_logopts_set(&o, "previous", "", err, sizeof err), 0);   // lenient: "" is true
    assert_int_equal(kx_logopts_set(&o, "timestamps", "False", err, sizeof err), 0);
    assert_int_equal(kx_logopts_set(&o, "tailLines", "5", err, sizeof err), 0);
    assert_int_equal(kx_logopts_set(&o, "limitBytes", "100", err, sizeof err), 0);
    assert_int_equal(kx_logopts_set(&o, "sinceTime", "2016-10-06T00:17:09Z", err, sizeof err), 0);
    assert_int_equal(kx_logopts_set(&o, "stream", "Stderr", err, sizeof err), 0);
    assert_int_equal(kx_logopts_set(&o, "insecureSkipTLSVerifyBackend", "true", err, sizeof err), 0);
    assert_true(o.follow && o.previous && !o.timestamps);
    assert_true(o.have_tail_lines && o.tail_lines == 5);
    assert_true(o.have_limit_bytes && o.limit_bytes == 100);
    assert_true(o.have_since_time && o.since_time.tv_sec == 1475713029);
    assert_int_equal(o.streams, KX_LOG_STDERR);
    assert_int_equal(kx_logopts_validate(&o, err, sizeof err), 0);

    assert_int_equal(kx_logopts_set(&o, "tailLines", "x", err, sizeof err), -EINVAL);
    assert_int_equal(kx_logopts_set(&o, "limitBytes", "", err, sizeof err), -EINVAL);
    assert_int_equal(kx_logopts_set(&o, "sinceTime", "yesterday", err, sizeof err), -EINVAL);
    assert_int_equal(kx_logopts_set(&o, "stream", "stdout", err, sizeof err), -EINVAL);
    assert_int_equal(kx_logopts_set(&o, "sinceSeconds", "99999999999999999999", err, sizeof err), -EINVAL);

    // Both since forms: refused.
    assert_int_equal(kx_logopts_set(&o, "sinceSeconds", "10", err, sizeof err), 0);
    assert_int_equal(kx_logopts_validate(&o, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "at most one of"));

    kx_logopts_init(&o);
    assert_int_equal(kx_logopts_set(&o, "tailLines", "-1", err, sizeof err), 0);
    assert_int_equal(kx_logopts_validate(&o, err, sizeof err), -EINVAL);
    assert_string_equal(err, "tailLines: Invalid value: -1: must be greater than or equal to 0");
    kx_logopts_init(&o);
    assert_int_equal(kx_logopts_set(&o, "limitBytes", "0", err, sizeof err), 0);
    assert_int_equal(kx_logopts_validate(&o, err, sizeof err), -EINVAL);
    kx_logopts_init(&o);
    assert_int_equal(kx_logopts_set(&o, "sinceSeconds", "0", err, sizeof err), 0);
    assert_int_equal(kx_logopts_validate(&o, err, sizeof err), -EINVAL);
    // Legacy tail=all / tail=N.
    kx_logopts_init(&o);
    assert_int_equal(kx_logopts_set(&o, "tail", "7", err, sizeof err), 0);
    assert_true(o.have_tail_lines && o.tail_lines == 7);
    assert_int_equal(kx_logopts_set(&o, "tail", "all", err, sizeof err), 0);
    assert_false(o.have_tail_lines);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_output_joins_partials),
        cmocka_unit_test(timestamps_prefix_first_record_of_line),
        cmocka_unit_test(stream_selection),
        cmocka_unit_test(since_filters_whole_lines),
        cmocka_unit_test(skip_lines_for_tail),
        cmocka_unit_test(limit_bytes_cuts_exactly),
        cmocka_unit_test(pending_and_overlong_records),
        cmocka_unit_test(count_lines),
        cmocka_unit_test(options_parse_and_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
