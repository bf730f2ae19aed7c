// Small shared helpers; see kubexec/util.h.
#include "kubexec/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kx_buf_append(kx_buf *b, const void *p, size_t n, size_t limit)
{
    if (n == 0)
        return 0;
    if (b->len + n > limit || b->len + n < b->len)
        return -EMSGSIZE;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        if (cap > limit)
            cap = limit;
        uint8_t *d = (uint8_t *)realloc(b->data, cap);
        if (!d)
            return -ENOMEM;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void kx_buf_consume(kx_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void kx_buf_free(kx_buf *b)
{
    free(b->data);
    b->data = nullptr;
    b->len = b->cap = 0;
}

int kx_strlcpy(char *dst, const char *src, size_t cap)
{
    if (cap == 0)
        return -EMSGSIZE;
    size_t n = strlen(src);
    if (n >= cap) {
        memcpy(dst, src, cap - 1);
        dst[cap - 1] = 0;
        return -EMSGSIZE;
    }
    memcpy(dst, src, n + 1);
    return 0;
}

int kx_json_escape(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char tmp[8];
        const char *rep = nullptr;
        size_t rl = 1;
        switch (*p) {
        case '"': rep = "\\\""; rl = 2; break;
        case '\\': rep = "\\\\"; rl = 2; break;
        case '\n': rep = "\\n"; rl = 2; break;
        case '\r': rep = "\\r"; rl = 2; break;
        case '\t': rep = "\\t"; rl = 2; break;
        default:
            if (*p < 0x20) {
                snprintf(tmp, sizeof tmp, "\\u%04x", *p);
                rep = tmp;
                rl = 6;
            }
        }
        if (o + rl + 1 > cap)
            return -EMSGSIZE;
        if (rep)
            memcpy(out + o, rep, rl);
        else
            out[o] = (char)*p;
        o += rl;
    }
    if (o + 1 > cap)
        return -EMSGSIZE;
    out[o] = 0;
    return (int)o;
}
