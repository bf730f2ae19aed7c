// libFuzzer target for kubexec/http1.h: arbitrary bytes fed as a request
// stream and as a response stream, whole and in pieces chosen from the input,
// and every head that comes out run through the URL/query/header helpers.
// Invariants checked (abort on violation): feed never consumes more than it
// was given; after an upgrade it consumes nothing; errors are sticky.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kubexec/http1.h"

namespace {

struct sink {
    kx_http_parser *p;
    size_t heads, body_bytes;
    bool pause; // on_head pauses every other head
};

int on_head(void *user, const kx_http_head *h)
{
    sink *s = static_cast<sink *>(user);
    s->heads++;
    // Exercise the helpers on whatever the parser accepted.
    if (h->nheaders > KX_HTTP_MAX_HEADERS)
        abort();
    for (size_t i = 0; i < h->nheaders; i++)
        if (!h->headers[i].name || !h->headers[i].value)
            abort();
    (void)kx_http_get(h, "Host");
    const char *vals[4];
    if (kx_http_get_all(h, "X-Stream-Protocol-Version", vals, 4) > h->nheaders)
        abort();
    (void)kx_http_has_token(h, "Connection", "upgrade");
    char path[256];
    const char *query = nullptr;
    if (kx_url_split(h->url, path, sizeof path, &query) == 0) {
        if (strstr(path, "/../") || strlen(path) >= sizeof path)
            abort();
        char k[64], v[128];
        const char *cur = query;
        for (int i = 0; i < 1000 && kx_query_next(&cur, k, sizeof k, v, sizeof v) == 1; i++) {
            char esc[512];
            (void)kx_url_escape(esc, sizeof esc, v);
        }
    }
    char out[1024];
    (void)kx_http_format_response(out, sizeof out, h->status ? h->status : 200, h->headers,
                                  h->nheaders, h->content_length);
    return s->pause && (s->heads & 1) ? 1 : 0;
}

int on_body(void *user, const uint8_t *, size_t n)
{
    static_cast<sink *>(user)->body_bytes += n;
    return 0;
}

int on_complete(void *)
{
    return 0;
}

const kx_http_callbacks cbs = {on_head, on_body, on_complete};

void run(kx_http_type type, const uint8_t *data, size_t size, size_t step, bool pause,
         bool head_req)
{
    static kx_http_parser p;
    sink s = {&p, 0, 0, pause};
    kx_http_parser_init(&p, type, &cbs, &s);
    kx_http_parser_set_head_request(&p, head_req);
    size_t off = 0;
    int stalls = 0;
    while (off < size) {
        size_t n = step ? step : size - off;
        if (n > size - off)
            n = size - off;
        long r = kx_http_feed(&p, data + off, n);
        if (r < 0) {
            // Sticky.
            if (kx_http_feed(&p, data, size) != r || kx_http_eof(&p) != r)
                abort();
            return;
        }
        if ((size_t)r > n)
            abort();
        off += (size_t)r;
        if ((size_t)r < n) {
            if (kx_http_upgraded(&p)) {
                if (kx_http_feed(&p, data + off, size - off) != 0)
                    abort();
                return;
            }
            // A pause consumes at least the head's last byte, so this ends.
            if (r == 0 && ++stalls > 2)
                abort();
        } else {
            stalls = 0;
        }
    }
    (void)kx_http_eof(&p);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    // First byte picks a piece size and options; the rest is the stream.
    uint8_t ctl = size ? data[0] : 0;
    const uint8_t *d = size ? data + 1 : data;
    size_t n = size ? size - 1 : 0;
    size_t step = ctl & 0x1f; // 0 = whole
    bool pause = ctl & 0x20;
    bool head_req = ctl & 0x40;
    run(KX_HTTP_REQUEST, d, n, step, pause, false);
    run(KX_HTTP_RESPONSE, d, n, step, pause, head_req);
    // And whole, byte by byte, for the same stream.
    run(KX_HTTP_REQUEST, d, n, 0, false, false);
    if (n < 4096) {
        run(KX_HTTP_REQUEST, d, n, 1, false, false);
        run(KX_HTTP_RESPONSE, d, n, 1, false, false);
    }
    return 0;
}
