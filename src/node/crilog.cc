// crilog.cc - CRI-format container log writer. See crilog.h.
#include "crilog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "kubexec/util.h"

static uint64_t g_max_size = 10ull * 1024 * 1024;
static int g_max_files = 5;

static int clamp_files(int n)
{
    return n < 2 ? 2 : n > KX_CRILOG_MAX_FILES ? KX_CRILOG_MAX_FILES : n;
}

void kx_crilog_set_default_rotation(uint64_t max_size, int max_files)
{
    g_max_size = max_size;
    g_max_files = clamp_files(max_files);
}

void kx_crilog_get_default_rotation(uint64_t *max_size, int *max_files)
{
    if (max_size)
        *max_size = g_max_size;
    if (max_files)
        *max_files = g_max_files;
}

struct kx_crilog {
    int fd;
    char *path;                // for rotation
    bool regular;              // only regular files rotate
    uint64_t size;             // bytes in the current file
    uint64_t max_size;         // 0: never rotate
    int max_files;
    uint64_t rotations;
    uint64_t fail_streak;      // rotation attempts failed in a row
    uint8_t *pend[2];          // per stream, KX_CRILOG_MAX_LINE bytes each, allocated on first use
    size_t pend_len[2];
    uint64_t dropped;
    void (*now)(void *user, struct timespec *ts);
    void *now_user;
};

int kx_crilog_format_time(char out[40], const struct timespec *ts)
{
    struct tm tm;
    time_t t = ts->tv_sec;
    if (ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L || !gmtime_r(&t, &tm))
        return -EINVAL;
    long year = (long)tm.tm_year + 1900;
    if (year < 0 || year > 9999)
        return -EINVAL;
    int n = snprintf(out, 40, "%04ld-%02d-%02dT%02d:%02d:%02d.%09ldZ", year, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, (long)ts->tv_nsec);
    return n > 0 && n < 40 ? n : -EINVAL;
}

// mkdir -p of the directory part of path.
static int mkparents(const char *path)
{
    char tmp[4096];
    if (kx_strlcpy(tmp, path, sizeof tmp) < 0)
        return -ENAMETOOLONG;
    char *slash = strrchr(tmp, '/');
    if (!slash || slash == tmp)
        return 0;
    *slash = 0;
    for (char *p = tmp + 1; ; p++) {
        if (*p == '/' || *p == 0) {
            char saved = *p;
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -errno;
            *p = saved;
            if (saved == 0)
                break;
        }
    }
    return 0;
}

kx_crilog *kx_crilog_open(const char *path, char *err, size_t errlen)
{
    int rc = mkparents(path);
    if (rc < 0) {
        if (err && errlen)
            snprintf(err, errlen, "create directories for %s: %s", path, strerror(-rc));
        return NULL;
    }
    kx_crilog *l = (kx_crilog *)calloc(1, sizeof *l);
    if (!l) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
    if (l->fd < 0) {
        if (err && errlen)
            snprintf(err, errlen, "open %s: %s", path, strerror(errno));
        free(l);
        return NULL;
    }
    l->path = strdup(path);
    if (!l->path) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        close(l->fd);
        free(l);
        return NULL;
    }
    struct stat st;
    if (fstat(l->fd, &st) == 0 && S_ISREG(st.st_mode)) {
        l->regular = true;
        l->size = (uint64_t)st.st_size;
    }
    l->max_size = g_max_size;
    l->max_files = g_max_files;
    return l;
}

void kx_crilog_set_rotation(kx_crilog *l, uint64_t max_size, int max_files)
{
    l->max_size = max_size;
    l->max_files = clamp_files(max_files);
}

uint64_t kx_crilog_rotations(const kx_crilog *l)
{
    return l ? l->rotations : 0;
}

int kx_crilog_rotated_path(char *out, size_t cap, const char *path, int idx)
{
    int n = idx > 0 ? snprintf(out, cap, "%s.%d", path, idx) : snprintf(out, cap, "%s", path);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int kx_crilog_remove(const char *path)
{
    char p[4096];
    int first = 0;
    for (int i = 0; i <= KX_CRILOG_MAX_FILES; i++) {
        if (kx_crilog_rotated_path(p, sizeof p, path, i) < 0)
            return -ENAMETOOLONG;
        if (unlink(p) != 0 && errno != ENOENT && first == 0)
            first = -errno;
    }
    return first;
}

// path -> path.1 -> ... -> path.<max_files-1>, the oldest dropped; then a fresh
// path. On any failure the writer keeps (or gets back) a usable fd: a failed
// shift leaves the current file in place, a failed reopen renames it back.
static void rotate(kx_crilog *l)
{
    char from[4096], to[4096];
    int last = l->max_files - 1;
    if (kx_crilog_rotated_path(to, sizeof to, l->path, last) < 0)
        goto fail;
    if (unlink(to) != 0 && errno != ENOENT)
        goto fail;
    for (int i = last - 1; i >= 0; i--) {
        if (kx_crilog_rotated_path(from, sizeof from, l->path, i) < 0 ||
            kx_crilog_rotated_path(to, sizeof to, l->path, i + 1) < 0)
            goto fail;
        if (rename(from, to) != 0 && (errno != ENOENT || i == 0))
            goto fail;
    }
    {
        int fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
        if (fd < 0) {
            // to is path.1 here: put the current file back where readers look.
            if (rename(to, l->path) != 0) {
                // Nothing better to do: keep appending to path.1.
            }
            goto fail;
        }
        close(l->fd);
        l->fd = fd;
        l->size = 0;
        l->rotations++;
        l->fail_streak = 0;
        return;
    }
fail:
    l->fail_streak++;
}

static void default_now(void *, struct timespec *ts)
{
    clock_gettime(CLOCK_REALTIME, ts);
}

// Writes one record: header, then up to two text pieces, then '\n'.
static int emit(kx_crilog *l, int stream, char tag, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    struct timespec ts;
    (l->now ? l->now : default_now)(l->now_user, &ts);
    char hdr[64];
    int n = kx_crilog_format_time(hdr, &ts);
    if (n < 0) {
        ts.tv_sec = 0;
        ts.tv_nsec = 0;
        n = kx_crilog_format_time(hdr, &ts);
    }
    n += snprintf(hdr + n, sizeof hdr - (size_t)n, " %s %c ", stream == 1 ? "stdout" : "stderr", tag);
    struct iovec iov[4] = {
        {hdr, (size_t)n},
        {(void *)a, alen},
        {(void *)b, blen},
        {(void *)"\n", 1},
    };
    size_t total = (size_t)n + alen + blen + 1, done = 0;
    int idx = 0;
    while (done < total) {
        ssize_t w = writev(l->fd, iov + idx, 4 - idx);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            l->dropped++;
            return w < 0 ? -errno : -EIO;
        }
        done += (size_t)w;
        l->size += (uint64_t)w;
        size_t left = (size_t)w;
        while (idx < 4 && left >= iov[idx].iov_len) {
            left -= iov[idx].iov_len;
            idx++;
        }
        if (idx < 4) {
            iov[idx].iov_base = (char *)iov[idx].iov_base + left;
            iov[idx].iov_len -= left;
        }
    }
    // Rotate between records, never inside one. After a failed rotation retry
    // only once the file grew by another max_size/8 (no rename storm per record).
    if (l->regular && l->max_size > 0 && l->size > l->max_size) {
        uint64_t retry_at = l->max_size + (l->max_size / 8 + 1) * l->fail_streak;
        if (l->size > retry_at)
            rotate(l);
    }
    return 0;
}

int kx_crilog_write(kx_crilog *l, int stream, const uint8_t *p, size_t n)
{
    if (!l || (stream != 1 && stream != 2))
        return -EINVAL;
    int s = stream - 1, first = 0;
    while (n > 0) {
        size_t room = KX_CRILOG_MAX_LINE - l->pend_len[s];
        size_t look = n < room ? n : room;
        const uint8_t *nl = (const uint8_t *)memchr(p, '\n', look);
        if (nl) {
            size_t take = (size_t)(nl - p);
            int rc = emit(l, stream, 'F', l->pend[s], l->pend_len[s], p, take);
            if (rc < 0 && first == 0)
                first = rc;
            l->pend_len[s] = 0;
            p += take + 1;
            n -= take + 1;
            continue;
        }
        if (n >= room) {
            // The unfinished line reaches the limit: out it goes as P.
            int rc = emit(l, stream, 'P', l->pend[s], l->pend_len[s], p, room);
            if (rc < 0 && first == 0)
                first = rc;
            l->pend_len[s] = 0;
            p += room;
            n -= room;
            continue;
        }
        if (!l->pend[s]) {
            l->pend[s] = (uint8_t *)malloc(KX_CRILOG_MAX_LINE);
            if (!l->pend[s]) {
                // Cannot keep the fragment: write it as a partial record now.
                int rc = emit(l, stream, 'P', NULL, 0, p, n);
                return first ? first : rc;
            }
        }
        memcpy(l->pend[s] + l->pend_len[s], p, n);
        l->pend_len[s] += n;
        n = 0;
    }
    return first;
}

int kx_crilog_flush_partial(kx_crilog *l)
{
    if (!l)
        return -EINVAL;
    int first = 0;
    for (int s = 0; s < 2; s++) {
        if (l->pend_len[s] == 0)
            continue;
        int rc = emit(l, s + 1, 'P', l->pend[s], l->pend_len[s], NULL, 0);
        if (rc < 0 && first == 0)
            first = rc;
        l->pend_len[s] = 0;
    }
    return first;
}

uint64_t kx_crilog_dropped(const kx_crilog *l)
{
    return l ? l->dropped : 0;
}

void kx_crilog_set_clock(kx_crilog *l, void (*now)(void *user, struct timespec *ts), void *user)
{
    l->now = now;
    l->now_user = user;
}

void kx_crilog_close(kx_crilog *l)
{
    if (!l)
        return;
    if (l->fd >= 0)
        close(l->fd);
    free(l->path);
    free(l->pend[0]);
    free(l->pend[1]);
    free(l);
}

// ---------------------------------------------------------------------------
// reading

static int digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int kx_crilog_parse_time(const char *s, size_t n, struct timespec *ts)
{
    // 2006-01-02T15:04:05 is 19 bytes; the zone at least 1 more.
    int Y, M, D, h, m, sec;
    if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':' || digits(s, 4, &Y) || digits(s + 5, 2, &M) || digits(s + 8, 2, &D) ||
        digits(s + 11, 2, &h) || digits(s + 14, 2, &m) || digits(s + 17, 2, &sec))
        return -EINVAL;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || m > 59 || sec > 59)
        return -EINVAL;
    size_t i = 19;
    long nsec = 0;
    if (s[i] == '.') {
        i++;
        size_t start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (i - start >= 9)
                return -EINVAL;
            nsec = nsec * 10 + (s[i] - '0');
            i++;
        }
        if (i == start)
            return -EINVAL;
        for (size_t k = i - start; k < 9; k++)
            nsec *= 10;
    }
    long off = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh, om;
        if (digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return -EINVAL;
        off = (oh * 60L + om) * 60L * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return -EINVAL;
    }
    if (i != n)
        return -EINVAL;
    struct tm tm = {};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (tm.tm_mday != D)   // Feb 29 of a non-leap year rolled over
        return -EINVAL;
    ts->tv_sec = t - off;
    ts->tv_nsec = nsec;
    return 0;
}

int kx_crilog_parse(const uint8_t *line, size_t n, kx_crilog_record *r)
{
    const char *s = (const char *)line;
    const char *sp = (const char *)memchr(s, ' ', n);
    if (!sp || kx_crilog_parse_time(s, (size_t)(sp - s), &r->ts) < 0)
        return -EINVAL;
    size_t i = (size_t)(sp - s) + 1;
    if (n - i >= 7 && memcmp(s + i, "stdout ", 7) == 0)
        r->stream = 1;
    else if (n - i >= 7 && memcmp(s + i, "stderr ", 7) == 0)
        r->stream = 2;
    else
        return -EINVAL;
    i += 7;
    r->partial = false;
    // The tag: "F " or "P " (also "F"/"P" ending the line: empty text).
    // Anything else is an untagged record's text (a full line).
    if (n - i >= 1 && (s[i] == 'F' || s[i] == 'P') && (n - i == 1 || s[i + 1] == ' ')) {
        r->partial = s[i] == 'P';
        i += n - i == 1 ? 1 : 2;
    }
    r->text = line + i;
    r->len = n - i;
    return 0;
}

void kx_logopts_init(kx_logopts *o)
{
    memset(o, 0, sizeof *o);
    o->streams = KX_LOG_ALL;
}

static bool lenient_bool(const char *v)
{
    return strcmp(v, "0") != 0 && strcasecmp(v, "false") != 0;
}

static int parse_i64(const char *v, int64_t *out)
{
    if (!*v)
        return -EINVAL;
    errno = 0;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (*end || errno)
        return -EINVAL;
    *out = x;
    return 0;
}

int kx_logopts_set(kx_logopts *o, const char *key, const char *val, char *err, size_t errlen)
{
    int64_t *ip = nullptr;
    bool *have = nullptr;
    if (!strcmp(key, "follow")) {
        o->follow = lenient_bool(val);
    } else if (!strcmp(key, "previous")) {
        o->previous = lenient_bool(val);
    } else if (!strcmp(key, "timestamps")) {
        o->timestamps = lenient_bool(val);
    } else if (!strcmp(key, "tailLines")) {
        ip = &o->tail_lines;
        have = &o->have_tail_lines;
    } else if (!strcmp(key, "limitBytes")) {
        ip = &o->limit_bytes;
        have = &o->have_limit_bytes;
    } else if (!strcmp(key, "sinceSeconds")) {
        ip = &o->since_seconds;
        have = &o->have_since_seconds;
    } else if (!strcmp(key, "tail")) {
        if (!strcmp(val, "all")) {
            o->have_tail_lines = false;
            return 0;
        }
        ip = &o->tail_lines;
        have = &o->have_tail_lines;
    } else if (!strcmp(key, "sinceTime")) {
        if (kx_crilog_parse_time(val, strlen(val), &o->since_time) < 0) {
            snprintf(err, errlen, "invalid sinceTime %.64s: want RFC 3339", val);
            return -EINVAL;
        }
        o->have_since_time = true;
    } else if (!strcmp(key, "stream")) {
        if (!strcmp(val, "Stdout"))
            o->streams = KX_LOG_STDOUT;
        else if (!strcmp(val, "Stderr"))
            o->streams = KX_LOG_STDERR;
        else if (!strcmp(val, "All"))
            o->streams = KX_LOG_ALL;
        else {
            snprintf(err, errlen, "invalid stream %.64s: want All, Stdout or Stderr", val);
            return -EINVAL;
        }
    }
    if (ip && parse_i64(val, ip) < 0) {
        snprintf(err, errlen, "invalid %s %.64s: want an integer", key, val);
        return -EINVAL;
    }
    if (have)
        *have = true;
    return 0;
}

int kx_logopts_validate(const kx_logopts *o, char *err, size_t errlen)
{
    if (o->have_tail_lines && o->tail_lines < 0) {
        snprintf(err, errlen, "tailLines: Invalid value: %lld: must be greater than or equal to 0",
                 (long long)o->tail_lines);
        return -EINVAL;
    }
    if (o->have_limit_bytes && o->limit_bytes < 1) {
        snprintf(err, errlen, "limitBytes: Invalid value: %lld: must be greater than 0", (long long)o->limit_bytes);
        return -EINVAL;
    }
    if (o->have_since_seconds && o->have_since_time) {
        snprintf(err, errlen, "at most one of `sinceTime` or `sinceSeconds` may be specified");
        return -EINVAL;
    }
    if (o->have_since_seconds && o->since_seconds < 1) {
        snprintf(err, errlen, "sinceSeconds: Invalid value: %lld: must be greater than 0",
                 (long long)o->since_seconds);
        return -EINVAL;
    }
    return 0;
}

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

// Splits fed bytes into record lines, with carry for an unfinished one. Calls
// fn for each complete line (without '\n'); the rest of a line over
// KX_CRILOG_MAX_RECORD is dropped and the line reported once with line = null.
// Returns fn's first non-zero result (stopping there), or -ENOMEM.
typedef int (*line_fn)(void *ctx, const uint8_t *line, size_t n);

static int split_lines(kx_buf *carry, bool *overlong, const uint8_t *p, size_t n, line_fn fn, void *ctx)
{
    while (n > 0) {
        const uint8_t *nl = (const uint8_t *)memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        int r = 0;
        if (*overlong) {
            // Inside an over-long line: dropped up to its end.
        } else if (carry->len + take > KX_CRILOG_MAX_RECORD) {
            *overlong = true;
            carry->len = 0;
        } else if (!nl || carry->len) {
            if (kx_buf_append(carry, p, take, KX_CRILOG_MAX_RECORD) < 0)
                return -ENOMEM;
            if (nl) {
                r = fn(ctx, carry->data, carry->len);
                carry->len = 0;
            }
        } else {
            r = fn(ctx, p, take);
        }
        if (!nl)
            return 0;
        if (*overlong) {
            *overlong = false;
            r = fn(ctx, nullptr, 0);
        }
        if (r)
            return r;
        p += take + 1;
        n -= take + 1;
    }
    return 0;
}

void kx_logfilter_init(kx_logfilter *f, const kx_logopts *o, const struct timespec *since, uint64_t skip_lines)
{
    memset(f, 0, sizeof *f);
    f->timestamps = o->timestamps;
    f->streams = o->streams & KX_LOG_ALL;
    if (since) {
        f->have_since = true;
        f->since = *since;
    }
    f->skip_lines = skip_lines;
    f->remain = o->have_limit_bytes && o->limit_bytes > 0 ? o->limit_bytes : -1;
}

struct filter_ctx {
    kx_logfilter *f;
    kx_buf *out;
};

// Output with the byte limit applied: 1 once the limit is reached.
static int put(kx_logfilter *f, kx_buf *out, const void *p, size_t n)
{
    if (f->remain >= 0 && (int64_t)n > f->remain)
        n = (size_t)f->remain;
    if (n && kx_buf_append(out, p, n, SIZE_MAX) < 0)
        return -ENOMEM;
    if (f->remain >= 0) {
        f->remain -= (int64_t)n;
        if (f->remain == 0)
            return 1;
    }
    return 0;
}

static int filter_line(void *ctx, const uint8_t *line, size_t n)
{
    kx_logfilter *f = ((filter_ctx *)ctx)->f;
    kx_buf *out = ((filter_ctx *)ctx)->out;
    kx_crilog_record r;
    if (!line || kx_crilog_parse(line, n, &r) < 0) {
        f->malformed++;
        return 0;
    }
    int s = r.stream - 1;
    bool selected = (f->streams & (unsigned)r.stream) != 0;
    bool first = !f->mid[s];
    f->mid[s] = r.partial;
    if (first) {
        // The line's first record decides for the whole line. A line to skip
        // for tailLines is counted when it ends.
        f->drop[s] = !selected || (f->have_since && ts_before(&r.ts, &f->since)) || f->skip_lines > 0;
    }
    if (!r.partial && selected && f->drop[s] && f->skip_lines > 0)
        f->skip_lines--;
    if (f->drop[s])
        return 0;
    if (first && f->timestamps) {
        char ts[40];
        int tl = kx_crilog_format_time(ts, &r.ts);
        if (tl < 0) {
            struct timespec zero = {0, 0};
            tl = kx_crilog_format_time(ts, &zero);
        }
        ts[tl++] = ' ';
        int rc = put(f, out, ts, (size_t)tl);
        if (rc)
            return rc;
    }
    int rc = put(f, out, r.text, r.len);
    if (rc)
        return rc;
    return r.partial ? 0 : put(f, out, "\n", 1);
}

int kx_logfilter_feed(kx_logfilter *f, const uint8_t *p, size_t n, kx_buf *out)
{
    if (f->remain == 0)
        return 1;
    filter_ctx ctx = {f, out};
    return split_lines(&f->carry, &f->overlong, p, n, filter_line, &ctx);
}

size_t kx_logfilter_pending(const kx_logfilter *f)
{
    return f->carry.len;
}

void kx_logfilter_free(kx_logfilter *f)
{
    kx_buf_free(&f->carry);
}

void kx_logcount_init(kx_logcount *c, unsigned streams)
{
    memset(c, 0, sizeof *c);
    c->streams = streams & KX_LOG_ALL;
}

static int count_line(void *ctx, const uint8_t *line, size_t n)
{
    kx_logcount *c = (kx_logcount *)ctx;
    kx_crilog_record r;
    if (!line || kx_crilog_parse(line, n, &r) < 0)
        return 0;
    if (!(c->streams & (unsigned)r.stream))
        return 0;
    c->mid[r.stream - 1] = r.partial;
    if (!r.partial)
        c->lines++;
    return 0;
}

int kx_logcount_feed(kx_logcount *c, const uint8_t *p, size_t n)
{
    return split_lines(&c->carry, &c->overlong, p, n, count_line, c);
}

uint64_t kx_logcount_lines(const kx_logcount *c, bool final)
{
    return c->lines + (final ? (uint64_t)c->mid[0] + (uint64_t)c->mid[1] : 0);
}

void kx_logcount_free(kx_logcount *c)
{
    kx_buf_free(&c->carry);
}
