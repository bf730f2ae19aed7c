// Unit tests for src/node/crilog.h (CRI log records).
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
extern "C" {
#include <cmocka.h>
}

#include "crilog.h"

struct fixture {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    fixture *f = (fixture *)calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/kx_crilog_XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/a/b/0.log", f->dir);
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

// A clock that starts at 2016-10-06T00:17:09.669794202Z and advances 1 ns per
// record, so records are distinguishable yet deterministic.
struct fake_clock {
    long n;
};
static void fake_now(void *user, struct timespec *ts)
{
    fake_clock *c = (fake_clock *)user;
    ts->tv_sec = 1475713029;
    ts->tv_nsec = 669794202 + c->n++;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = (char *)malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, fp);
    fclose(fp);
    buf[got] = 0;
    *len = got;
    return buf;
}

static void format_time_nine_digits(void **)
{
    char out[40];
    struct timespec ts = {1475713029, 669794202};
    assert_int_equal(kx_crilog_format_time(out, &ts), 30);
    assert_string_equal(out, "2016-10-06T00:17:09.669794202Z");
    ts = {0, 0};
    assert_int_equal(kx_crilog_format_time(out, &ts), 30);
    assert_string_equal(out, "1970-01-01T00:00:00.000000000Z");
    ts = {1700000000, 5};
    assert_int_equal(kx_crilog_format_time(out, &ts), 30);
    assert_string_equal(out, "2023-11-14T22:13:20.000000005Z");
    ts = {1, 1000000000};
    assert_int_equal(kx_crilog_format_time(out, &ts), -EINVAL);
    ts = {1, -1};
    assert_int_equal(kx_crilog_format_time(out, &ts), -EINVAL);
}

static void f_and_p_records_exact(void **state)
{
    fixture *f = (fixture *)*state;
    char err[256];
    kx_crilog *l = kx_crilog_open(f->path, err, sizeof err);   // creates a/b/
    assert_non_null(l);
    fake_clock c = {};
    kx_crilog_set_clock(l, fake_now, &c);
    assert_int_equal(kx_crilog_write(l, 1, (const uint8_t *)"hello\nwor", 9), 0);
    assert_int_equal(kx_crilog_write(l, 2, (const uint8_t *)"oops", 4), 0);
    assert_int_equal(kx_crilog_write(l, 1, (const uint8_t *)"ld\n\n", 4), 0);
    assert_int_equal(kx_crilog_write(l, 2, (const uint8_t *)"!\n", 2), 0);
    assert_int_equal(kx_crilog_write(l, 1, (const uint8_t *)"tail", 4), 0);
    assert_int_equal(kx_crilog_write(l, 3, (const uint8_t *)"x", 1), -EINVAL);
    assert_int_equal(kx_crilog_flush_partial(l), 0);
    assert_int_equal(kx_crilog_flush_partial(l), 0);   // nothing left: no record
    kx_crilog_close(l);
    size_t len;
    char *got = slurp(f->path, &len);
    assert_non_null(got);
    assert_string_equal(got,
                        "2016-10-06T00:17:09.669794202Z stdout F hello\n"
                        "2016-10-06T00:17:09.669794203Z stdout F world\n"
                        "2016-10-06T00:17:09.669794204Z stdout F \n"
                        "2016-10-06T00:17:09.669794205Z stderr F oops!\n"
                        "2016-10-06T00:17:09.669794206Z stdout P tail\n");
    free(got);

    // Reopening appends.
    l = kx_crilog_open(f->path, err, sizeof err);
    assert_non_null(l);
    c.n = 0;
    kx_crilog_set_clock(l, fake_now, &c);
    assert_int_equal(kx_crilog_write(l, 2, (const uint8_t *)"x\n", 2), 0);
    kx_crilog_close(l);
    got = slurp(f->path, &len);
    assert_non_null(strstr(got, "stdout P tail\n2016-10-06T00:17:09.669794202Z stderr F x\n"));
    free(got);
}

static void long_lines_split_at_16k(void **state)
{
    fixture *f = (fixture *)*state;
    char err[256];
    kx_crilog *l = kx_crilog_open(f->path, err, sizeof err);
    assert_non_null(l);
    fake_clock c = {};
    kx_crilog_set_clock(l, fake_now, &c);
    size_t n = 2 * KX_CRILOG_MAX_LINE + 10;
    uint8_t *big = (uint8_t *)malloc(n + 1);
    memset(big, 'a', n);
    big[n] = '\n';
    assert_int_equal(kx_crilog_write(l, 1, big, n + 1), 0);
    // Exactly 16 KiB then newline: one P with 16 KiB and an empty F.
    assert_int_equal(kx_crilog_write(l, 2, big, KX_CRILOG_MAX_LINE), 0);
    assert_int_equal(kx_crilog_write(l, 2, (const uint8_t *)"\n", 1), 0);
    kx_crilog_close(l);
    free(big);

    size_t len;
    char *got = slurp(f->path, &len);
    const size_t hdr = 30 + strlen(" stdout P ");
    assert_int_equal(len, 3 * hdr + n + 3 + hdr + KX_CRILOG_MAX_LINE + 1 + hdr + 1);
    char *p = got;
    const char *tags[] = {"stdout P ", "stdout P ", "stdout F ", "stderr P ", "stderr F "};
    size_t sizes[] = {KX_CRILOG_MAX_LINE, KX_CRILOG_MAX_LINE, 10, KX_CRILOG_MAX_LINE, 0};
    for (int i = 0; i < 5; i++) {
        assert_memory_equal(p + 31, tags[i], 9);
        char *nl = strchr(p, '\n');
        assert_int_equal((size_t)(nl - p), hdr + sizes[i]);
        for (size_t k = 0; k < sizes[i]; k++)
            assert_int_equal(p[hdr + k], 'a');
        p = nl + 1;
    }
    assert_int_equal((size_t)(p - got), len);
    free(got);
}

// Deterministic pseudo-random generator (xorshift).
static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

enum { FEED_WHOLE, FEED_BYTES, FEED_RANDOM };

static char *run_feed(const char *path, const uint8_t *in, size_t n, int mode, uint32_t seed, size_t *outlen)
{
    unlink(path);
    char err[256];
    kx_crilog *l = kx_crilog_open(path, err, sizeof err);
    if (!l)
        return NULL;
    fake_clock c = {};
    kx_crilog_set_clock(l, fake_now, &c);
    size_t off = 0;
    // Alternate streams per call in a way that does not depend on the split:
    // stream is fixed for the first and second half of the input.
    while (off < n) {
        size_t chunk = n - off;
        if (mode == FEED_BYTES)
            chunk = 1;
        else if (mode == FEED_RANDOM)
            chunk = 1 + rnd(&seed) % 40000;
        if (off < n / 2 && off + chunk > n / 2)
            chunk = n / 2 - off;
        if (chunk > n - off)
            chunk = n - off;
        int stream = off < n / 2 ? 1 : 2;
        if (kx_crilog_write(l, stream, in + off, chunk) != 0)
            break;
        off += chunk;
    }
    kx_crilog_flush_partial(l);
    kx_crilog_close(l);
    return slurp(path, outlen);
}

static void splits_produce_identical_files(void **state)
{
    fixture *f = (fixture *)*state;
    // Mixed input: short lines, empty lines, a 40000-byte line, a line of
    // exactly 16 KiB, and an unterminated tail.
    size_t cap = 200000, n = 0;
    uint8_t *in = (uint8_t *)malloc(cap);
    uint32_t s = 12345;
    while (n < 150000) {
        uint32_t kind = rnd(&s) % 10;
        size_t len = kind == 0 ? 40000 : kind == 1 ? (size_t)KX_CRILOG_MAX_LINE : kind == 2 ? 0 : rnd(&s) % 100;
        if (n + len + 1 > cap)
            break;
        for (size_t i = 0; i < len; i++)
            in[n++] = (uint8_t)('a' + rnd(&s) % 26);
        in[n++] = '\n';
    }
    memcpy(in + n, "unterminated", 12);
    n += 12;

    size_t l1, l2, l3;
    char *whole = run_feed(f->path, in, n, FEED_WHOLE, 0, &l1);
    char *bytes = run_feed(f->path, in, n, FEED_BYTES, 0, &l2);
    assert_non_null(whole);
    assert_non_null(bytes);
    assert_int_equal(l1, l2);
    assert_memory_equal(whole, bytes, l1);
    for (uint32_t seed = 1; seed <= 20; seed++) {
        char *r = run_feed(f->path, in, n, FEED_RANDOM, seed * 2654435761u, &l3);
        assert_non_null(r);
        assert_int_equal(l1, l3);
        assert_memory_equal(whole, r, l1);
        free(r);
    }
    // Sanity: the output holds every input byte, and ends with the P tail.
    assert_true(l1 > n);
    assert_non_null(strstr(whole, " stderr P unterminated\n"));
    free(whole);
    free(bytes);
    free(in);
}

static void write_errors_are_counted(void **)
{
    char err[256];
    kx_crilog *l = kx_crilog_open("/dev/full", err, sizeof err);
    if (!l) {
        skip();
        return;
    }
    assert_int_equal(kx_crilog_write(l, 1, (const uint8_t *)"a\nb\nc", 5), -ENOSPC);
    assert_int_equal(kx_crilog_dropped(l), 2);
    assert_int_equal(kx_crilog_flush_partial(l), -ENOSPC);
    assert_int_equal(kx_crilog_dropped(l), 3);
    kx_crilog_close(l);
}

static void open_failure_reports(void **)
{
    char err[256] = "";
    assert_null(kx_crilog_open("/proc/nonexistent-dir/x/0.log", err, sizeof err));
    assert_true(strlen(err) > 0);
}


static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static void rotation_by_size_and_count(void **state)
{
    fixture *f = (fixture *)*state;
    char err[256], p[200];
    kx_crilog *l = kx_crilog_open(f->path, err, sizeof err);
    assert_non_null(l);
    fake_clock c = {};
    kx_crilog_set_clock(l, fake_now, &c);
    // Each record "…Z stdout F xxxxxxxxx\n" is 30 + 10 + 9 + 1 = 50 bytes.
    kx_crilog_set_rotation(l, 120, 3);
    for (int i = 0; i < 10; i++) {
        char line[16];
        snprintf(line, sizeof line, "line%05d\n", i);
        assert_int_equal(kx_crilog_write(l, 1, (const uint8_t *)line, 10), 0);
    }
    // 150 bytes > 120 after every third record: rotations after records 3, 6, 9.
    assert_int_equal(kx_crilog_rotations(l), 3);
    kx_crilog_close(l);
    size_t len;
    char *cur = slurp(f->path, &len);
    assert_int_equal(len, 50);
    assert_non_null(strstr(cur, "line00009"));
    free(cur);
    snprintf(p, sizeof p, "%s.1", f->path);
    char *r1 = slurp(p, &len);
    assert_int_equal(len, 150);
    assert_non_null(strstr(r1, "line00006\n"));
    assert_non_null(strstr(r1, "line00008\n"));
    free(r1);
    snprintf(p, sizeof p, "%s.2", f->path);
    char *r2 = slurp(p, &len);
    assert_non_null(strstr(r2, "line00003\n"));
    free(r2);
    snprintf(p, sizeof p, "%s.3", f->path);   // max_files 3: the oldest (lines 0-2) was dropped
    assert_false(exists(p));

    // kx_crilog_remove takes the whole run.
    assert_int_equal(kx_crilog_remove(f->path), 0);
    assert_false(exists(f->path));
    snprintf(p, sizeof p, "%s.1", f->path);
    assert_false(exists(p));
    assert_int_equal(kx_crilog_remove(f->path), 0);   // nothing left: fine
}

static void rotation_default_and_disabled(void **state)
{
    fixture *f = (fixture *)*state;
    uint64_t size;
    int files;
    kx_crilog_get_default_rotation(&size, &files);
    assert_int_equal(size, 10 * 1024 * 1024);
    assert_int_equal(files, 5);
    kx_crilog_set_default_rotation(60, 1);   // files clamped to 2
    kx_crilog_get_default_rotation(&size, &files);
    assert_int_equal(files, 2);
    char err[256], p[200];
    kx_crilog *l = kx_crilog_open(f->path, err, sizeof err);
    assert_non_null(l);
    for (int i = 0; i < 5; i++)
        assert_int_equal(kx_crilog_write(l, 2, (const uint8_t *)"abcdefghijklmnopqrstuvwxyz\n", 27), 0);
    assert_int_equal(kx_crilog_rotations(l), 5);   // every 67-byte record exceeds 60
    kx_crilog_close(l);
    snprintf(p, sizeof p, "%s.1", f->path);
    assert_true(exists(p));
    snprintf(p, sizeof p, "%s.2", f->path);
    assert_false(exists(p));
    // 0 disables rotation.
    kx_crilog_set_default_rotation(0, 5);
    kx_crilog_remove(f->path);
    l = kx_crilog_open(f->path, err, sizeof err);
    for (int i = 0; i < 50; i++)
        kx_crilog_write(l, 1, (const uint8_t *)"abcdefghijklmnopqrstuvwxyz\n", 27);
    assert_int_equal(kx_crilog_rotations(l), 0);
    kx_crilog_close(l);
    kx_crilog_set_default_rotation(10 * 1024 * 1024, 5);
}

static void rotated_path_names(void **)
{
    char out[32];
    assert_int_equal(kx_crilog_rotated_path(out, sizeof out, "/d/0.log", 0), 0);
    assert_string_equal(out, "/d/0.log");
    assert_int_equal(kx_crilog_rotated_path(out, sizeof out, "/d/0.log", 12), 0);
    assert_string_equal(out, "/d/0.log.12");
    assert_int_equal(kx_crilog_rotated_path(out, 8, "/d/0.log", 1), -ENAMETOOLONG);
}

static void parse_time_forms(void **)
{
    struct timespec ts;
    const char *a = "2016-10-06T00:17:09.669794202Z";
    assert_int_equal(kx_crilog_parse_time(a, strlen(a), &ts), 0);
    assert_int_equal(ts.tv_sec, 1475713029);
    assert_int_equal(ts.tv_nsec, 669794202);
    const char *b = "2016-10-06T02:17:09.5+02:00";
    assert_int_equal(kx_crilog_parse_time(b, strlen(b), &ts), 0);
    assert_int_equal(ts.tv_sec, 1475713029);
    assert_int_equal(ts.tv_nsec, 500000000);
    const char *c = "2016-10-05T23:17:09-01:00";
    assert_int_equal(kx_crilog_parse_time(c, strlen(c), &ts), 0);
    assert_int_equal(ts.tv_sec, 1475713029);
    assert_int_equal(ts.tv_nsec, 0);
    const char *bad[] = {"2016-10-06T00:17:09", "2016-10-06 00:17:09Z", "2016-13-06T00:17:09Z",
                         "2015-02-29T00:00:00Z", "2016-10-06T00:17:09.Z", "2016-10-06T00:17:09.1234567890Z",
                         "2016-10-06T00:17:09Zx", "2016-10-06T00:17:09+0200", "x016-10-06T00:17:09Z"};
    for (const char *s : bad)
        assert_int_equal(kx_crilog_parse_time(s, strlen(s), &ts), -EINVAL);
    const char *leap = "2016-02-29T00:00:00Z";
    assert_int_equal(kx_crilog_parse_time(leap, strlen(leap), &ts), 0);
}

static void parse_records(void **)
{
    kx_crilog_record r;
    const char *a = "2016-10-06T00:17:09.669794202Z stdout F hello world";
    assert_int_equal(kx_crilog_parse((const uint8_t *)a, strlen(a), &r), 0);
    assert_int_equal(r.stream, 1);
    assert_false(r.partial);
    assert_int_equal(r.len, 11);
    assert_memory_equal(r.text, "hello world", 11);
    const char *b = "2016-10-06T00:17:09.669794202Z stderr P ";
    assert_int_equal(kx_crilog_parse((const uint8_t *)b, strlen(b), &r), 0);
    assert_int_equal(r.stream, 2);
    assert_true(r.partial);
    assert_int_equal(r.len, 0);
    const char *c = "2016-10-06T00:17:09.669794202Z stdout F";   // empty full line
    assert_int_equal(kx_crilog_parse((const uint8_t *)c, strlen(c), &r), 0);
    assert_int_equal(r.len, 0);
    assert_false(r.partial);
    const char *d = "2016-10-06T00:17:09.669794202Z stdout Full text";   // untagged
    assert_int_equal(kx_crilog_parse((const uint8_t *)d, strlen(d), &r), 0);
    assert_false(r.partial);
    assert_int_equal(r.len, 9);
    const char *bad[] = {"", "garbage", "2016-10-06T00:17:09.669794202Z", "2016-10-06T00:17:09.669794202Z stdin F x",
                         "2016-10-06T00:17:09.669794202Z stdout", "not-a-time stdout F x"};
    for (const char *s : bad)
        assert_int_equal(kx_crilog_parse((const uint8_t *)s, strlen(s), &r), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(format_time_nine_digits),
        cmocka_unit_test_setup_teardown(f_and_p_records_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(long_lines_split_at_16k, setup, teardown),
        cmocka_unit_test_setup_teardown(splits_produce_identical_files, setup, teardown),
        cmocka_unit_test(write_errors_are_counted),
        cmocka_unit_test(open_failure_reports),
        cmocka_unit_test_setup_teardown(rotation_by_size_and_count, setup, teardown),
        cmocka_unit_test_setup_teardown(rotation_default_and_disabled, setup, teardown),
        cmocka_unit_test(rotated_path_names),
        cmocka_unit_test(parse_time_forms),
        cmocka_unit_test(parse_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
