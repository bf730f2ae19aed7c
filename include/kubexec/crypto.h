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

// Base64 decoded exactly as Go's base64.StdEncoding.Decode, which both
// kubeconfig *-data fields (encoding/json) and the channel.k8s.io base64
// protocols go through upstream: padding required, '\r' and '\n' skipped
// anywhere. out needs n / 4 * 3 + 3 bytes. Returns the decoded length, or -1
// with *bad set to the offset Go names ("illegal base64 data at input byte N").
long kx_base64_decode(const char *s, size_t n, uint8_t *out, size_t *bad);
