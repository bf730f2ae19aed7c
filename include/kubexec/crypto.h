// kubexec/crypto.h - the few primitives outside TLS: hashes from whichever
// TLS backend the program links (see tls.h: OpenSSL in the daemons, mbedTLS
// in the CLI), randomness from the kernel, base64.
#pragma once

#include <stddef.h>
#include <stdint.h>

// SHA-1 / SHA-256 of a followed by b (b may be null with bn 0). 0, or -EIO if
// the backend failed (OpenSSL can fail to fetch an algorithm).
int kx_sha1(const void *a, size_t an, const void *b, size_t bn, uint8_t out[20]);
int kx_sha256(const void *a, size_t an, const void *b, size_t bn, uint8_t out[32]);

// n bytes from getrandom(2) (blocks only before the kernel's pool is
// initialised at boot). 0 or -errno.
int kx_random(void *buf, size_t n);

// Standard padded base64 of n bytes into out (4 * ((n + 2) / 3) characters
// plus a NUL: size out for that). Returns the length without the NUL.
size_t kx_base64_encode(const uint8_t *p, size_t n, char *out);
