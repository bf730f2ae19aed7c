// libFuzzer target: the bulk record layer of the CLI's TLS (tls_records.h).
// Arbitrary bytes are parsed as a stream of TLS 1.2 records and opened (all
// must fail cleanly: the fuzzer cannot forge a GCM tag); then the same bytes
// are sealed into records and opened by a second protector holding the same
// keys, which must give them back exactly, record by record.
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../src/lib/tls_records.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
    static const uint8_t salt[4] = {0xde, 0xad, 0xbe, 0xef};
    size_t key_len = size && (data[0] & 1) ? 32 : 16;
    kx_tlsrec_keys k = {key, key, key_len, salt, salt, 5, 5};
    kx_tlsrec *a = nullptr, *b = nullptr;
    if (kx_tlsrec_new(&a, &k) != 0 || kx_tlsrec_new(&b, &k) != 0) {
        kx_tlsrec_free(a);
        return 0; // no libcrypto: nothing to test
    }
    kx_buf in = {};
    if (kx_buf_append(&in, data, size, SIZE_MAX) == 0) {
        size_t off = 0;
        for (;;) {
            long n = kx_tlsrec_next(in.data + off, in.len - off);
            if (n <= 0)
                break;
            uint8_t type, *pt;
            size_t ptn;
            if (kx_tlsrec_open(b, in.data + off, (size_t)n, &type, &pt, &ptn) == 0)
                __builtin_trap(); // a forged record opened
            off += (size_t)n;
        }
    }
    kx_buf_free(&in);
    // Round trip, 3000-byte plaintexts (several records per input).
    for (size_t off = 0; off < size || off == 0; off += 3000) {
        size_t n = size - off < 3000 ? size - off : 3000;
        kx_buf out = {};
        if (kx_tlsrec_seal(a, 23, data + off, n, &out) != 0)
            __builtin_trap();
        if (kx_tlsrec_next(out.data, out.len) != (long)out.len)
            __builtin_trap();
        uint8_t type, *pt;
        size_t ptn;
        if (kx_tlsrec_open(b, out.data, out.len, &type, &pt, &ptn) != 0 || type != 23 ||
            ptn != n || (n && memcmp(pt, data + off, n) != 0))
            __builtin_trap();
        kx_buf_free(&out);
        if (size == 0)
            break;
    }
    kx_tlsrec_free(a);
    kx_tlsrec_free(b);
    return 0;
}
