// Backend-neutral parts of kubexec/crypto.h: kernel randomness and base64.
// The hashes are in the TLS backends (tls.cc, tls_mbedtls.cc).
#include "kubexec/crypto.h"

#include <errno.h>
#include <sys/random.h>

int kx_random(void *buf, size_t n)
{
    uint8_t *p = static_cast<uint8_t *>(buf);
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

size_t kx_base64_encode(const uint8_t *p, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = abc[(v >> 18) & 63];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = i + 1 < n ? abc[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? abc[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

// Base64 exactly as Go's base64.StdEncoding.Decode (which encoding/json uses
// for []byte): padding required, '\r' and '\n' skipped anywhere, first error
// reported as "illegal base64 data at input byte N".

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long kx_base64_decode(const char *s, size_t n, uint8_t *out, size_t *bad)
{
    size_t si = 0, w = 0;
    for (;;) {
        int q[4];
        int j = 0;
        bool end = false;
        while (j < 4) {
            if (si == n) {
                if (j == 0)
                    return (long)w;
                *bad = si - (size_t)j;
                return -1;
            }
            unsigned char c = (unsigned char)s[si++];
            if (c == '\n' || c == '\r')
                continue;
            int v = b64val(c);
            if (v >= 0) {
                q[j++] = v;
                continue;
            }
            if (c != '=' || j < 2) {
                *bad = si - 1;
                return -1;
            }
            if (j == 2) {
                while (si < n && (s[si] == '\n' || s[si] == '\r'))
                    si++;
                if (si == n) {
                    *bad = n;
                    return -1;
                }
                if (s[si] != '=') {
                    *bad = si - 1;
                    return -1;
                }
                si++;
            }
            while (si < n && (s[si] == '\n' || s[si] == '\r'))
                si++;
            if (si < n) {
                *bad = si;
                return -1;
            }
            end = true;
            break;
        }
        uint32_t v = 0;
        for (int i = 0; i < j; i++)
            v |= (uint32_t)q[i] << (18 - 6 * i);
        out[w++] = (uint8_t)(v >> 16);
        if (j > 2)
            out[w++] = (uint8_t)(v >> 8);
        if (j > 3)
            out[w++] = (uint8_t)v;
        if (end)
            return (long)w;
    }
}
