// libFuzzer target for SPDY name/value header blocks. Byte 0 picks a mode,
// the rest is the blob:
//   0: the blob is an uncompressed NV block for kx_spdy_parse_nv_block;
//   1: the blob is a compressed block inside a SYN_STREAM (the inflater);
//   2: the blob is deflated with the SPDY dictionary first, so arbitrary
//      plain content reaches the parser through a valid zlib stream; it is
//      sent twice (two SYN_STREAMs) to use the shared history.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "kubexec/spdy.h"
#include "kubexec/util.h"

namespace {

int h_send(void *, const uint8_t *, size_t, const uint8_t *, size_t)
{
    return 0;
}

volatile size_t sink;

void touch(const kx_spdy_nv *nv, size_t n)
{
    // Read every byte so ASan checks that the pointers stay in bounds.
    size_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < nv[i].name_len; k++)
            sum += (unsigned char)nv[i].name[k];
        for (size_t k = 0; k < nv[i].value_len; k++)
            sum += (unsigned char)nv[i].value[k];
    }
    sink = sum;
}

void h_stream(void *, uint32_t, const kx_spdy_nv *nv, size_t n, bool)
{
    touch(nv, n);
}

const kx_spdy_callbacks cbs = {h_send, h_stream, nullptr, nullptr, nullptr, nullptr, nullptr};

// Wraps a compressed block in a SYN_STREAM and feeds it.
int feed_block(kx_spdy_session *s, uint32_t id, const uint8_t *block, size_t n)
{
    if (n > KX_SPDY_MAX_CONTROL_PAYLOAD - 10)
        return -EMSGSIZE;
    uint8_t h[18] = {0x80, 0x03, 0x00, 0x01};
    kx_put_be24(h + 5, (uint32_t)(10 + n));
    kx_put_be32(h + 8, id);
    int rc = kx_spdy_recv(s, h, sizeof h);
    if (rc == 0)
        rc = kx_spdy_recv(s, block, n);
    return rc;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0] % 3;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if (mode == 0) {
        static kx_spdy_nv nv[KX_SPDY_MAX_HEADERS];
        size_t count = 0;
        if (kx_spdy_parse_nv_block(p, n, nv, KX_SPDY_MAX_HEADERS, &count) == 0)
            touch(nv, count);
        return 0;
    }
    kx_spdy_session *s = kx_spdy_session_new(true, &cbs, nullptr);
    if (!s)
        return 0;
    if (mode == 1) {
        (void)feed_block(s, 1, p, n);
    } else if (n <= KX_SPDY_MAX_HEADER_BLOCK) {
        z_stream z = {};
        size_t cap = n + n / 8 + 256;
        uint8_t *out = (uint8_t *)malloc(cap);
        if (out && deflateInit(&z, 9) == Z_OK) {
            deflateSetDictionary(&z, kx_spdy_dict, KX_SPDY_DICT_LEN);
            for (uint32_t id = 1; id <= 3; id += 2) {
                z.next_in = (Bytef *)p;
                z.avail_in = (uInt)n;
                z.next_out = out;
                z.avail_out = (uInt)cap;
                if (deflate(&z, Z_SYNC_FLUSH) != Z_OK || z.avail_in)
                    break;
                if (feed_block(s, id, out, cap - z.avail_out) < 0)
                    break;
            }
            deflateEnd(&z);
        }
        free(out);
    }
    kx_spdy_session_free(s);
    return 0;
}
