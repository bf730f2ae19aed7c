// kubexec/util.h - small helpers shared by every module.
//
// Error convention (whole project): functions return int, 0 (or a count) on
// success and a negative errno value on failure (-EPROTO for a peer that broke
// a protocol, -EMSGSIZE for an input over its limit, -ENOMEM, ...).
// The library never logs and never aborts on bad input.
#pragma once

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

// A growable byte buffer with a hard cap. Owns `data` (malloc'd).
// Invariant: len <= cap. An empty kx_buf is all zeros.
struct kx_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

// Appends n bytes. Fails with -EMSGSIZE if len + n would exceed `limit`, and
// with -ENOMEM if growing fails; on failure the buffer is unchanged.
int kx_buf_append(kx_buf *b, const void *p, size_t n, size_t limit);
// Drops the first n bytes (n <= len).
void kx_buf_consume(kx_buf *b, size_t n);
// Frees the storage; the buffer is empty and reusable afterwards.
void kx_buf_free(kx_buf *b);

// Big-endian loads and stores.
static inline uint32_t kx_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint32_t kx_get_be24(const uint8_t *p)
{
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}
static inline uint16_t kx_get_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}
static inline void kx_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void kx_put_be24(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 16); p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)v;
}
static inline void kx_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v;
}

// Copies src into dst (size cap), always NUL-terminating. Returns -EMSGSIZE
// (after truncating) if src did not fit.
int kx_strlcpy(char *dst, const char *src, size_t cap);

// Escapes s as the contents of a JSON string (no quotes) into out.
// Returns the length written, or -EMSGSIZE if it does not fit.
int kx_json_escape(char *out, size_t cap, const char *s);
