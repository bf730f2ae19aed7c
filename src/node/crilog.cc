// crilog.cc - CRI-format container log writer. See crilog.h.
#include "crilog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "kubexec/util.h"

struct kx_crilog {
    int fd;
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
    return l;
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
    free(l->pend[0]);
    free(l->pend[1]);
    free(l);
}
