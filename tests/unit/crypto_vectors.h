// tests/unit/crypto_vectors.h - kubexec/crypto.h checked against published
// vectors (FIPS 180 SHA-1/SHA-256 "abc", RFC 4648 base64), shared by the
// tests of both TLS backends (each provides the hashes). Include after
// cmocka.h; register hashes_and_base64 as a test.
#pragma once

#include <stdio.h>
#include <string.h>

#include "kubexec/crypto.h"

static inline void hashes_and_base64(void **)
{
    uint8_t d1[20], d2[32];
    char hex[65], b64[64];
    assert_int_equal(kx_sha1("ab", 2, "c", 1, d1), 0);
    for (int i = 0; i < 20; i++)
        snprintf(hex + 2 * i, 3, "%02x", d1[i]);
    assert_string_equal(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_int_equal(kx_sha256("abc", 3, nullptr, 0, d2), 0);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d2[i]);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(kx_base64_encode((const uint8_t *)in[i], strlen(in[i]), b64), strlen(out[i]));
        assert_string_equal(b64, out[i]);
    }
    uint8_t r1[32] = {}, r2[32] = {};
    assert_int_equal(kx_random(r1, sizeof r1), 0);
    assert_int_equal(kx_random(r2, sizeof r2), 0);
    assert_memory_not_equal(r1, r2, sizeof r1);
}

