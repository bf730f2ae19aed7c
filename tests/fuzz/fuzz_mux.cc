// libFuzzer target: arbitrary bytes into the kubexec-mux/1 frame parser
// (kubexec/mux.h), checked against a reference decoder written here from the
// header's wire format alone.
//
// The first byte is a selector: its low 7 bits pick a split point (scaled to
// the input), its top bit makes the callbacks fail with -EPIPE on frame
// number (byte 1 % 8) + 1. The rest is parsed four ways -- whole, in two
// pieces at the split, in 7-byte pieces, byte by byte (inputs up to 8 KiB)
// -- and each run
// must report exactly the reference's frames: the same OPEN/FIN/RST/WINDOW
// values, every DATA frame's payload reassembled identical with `end` true
// once on its last piece, a trailing partial DATA frame's bytes delivered
// without `end`, the same final status, the status sticky, and no callback
// after an error.
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kubexec/mux.h"

namespace {


// One frame as seen by the reference or gathered from the callbacks.
struct ev {
    uint8_t type;
    uint32_t id;
    uint32_t value;     // WINDOW increment
    size_t off, len;    // DATA: payload bytes gathered (reference: where in the input)
    bool done;          // DATA: `end` seen (reference: the frame is complete)
};

struct result {
    ev *evs;
    size_t n, cap;
    uint8_t *data;      // gathered DATA payload, frames back to back
    size_t dlen;
    int status;
};

[[noreturn]] void fail()
{
    abort();
}

// Frame completions so far; the fail_at-th one fails with -EPIPE.
struct sink {
    result *r;
    size_t frames;
    size_t fail_at;     // 0: never
    bool stopped;       // an error was returned: no more callbacks allowed
};

ev *push(result *r)
{
    if (r->n == r->cap)
        fail();   // more frames than the input can hold: the parser invented some
    ev *e = &r->evs[r->n++];
    memset(e, 0, sizeof *e);
    return e;
}

int complete(sink *s)
{
    s->frames++;
    if (s->fail_at && s->frames == s->fail_at) {
        s->stopped = true;
        return -EPIPE;
    }
    return 0;
}

int on_data(void *u, uint32_t id, const uint8_t *p, size_t n, bool end)
{
    sink *s = (sink *)u;
    if (s->stopped || n > KX_MUX_MAX_DATA)
        fail();
    if (n == 0)
        fail();   // a DATA header that ends a buffer is no empty piece
    result *r = s->r;
    ev *e = r->n ? &r->evs[r->n - 1] : nullptr;
    if (!e || e->type != KX_MUX_DATA || e->done) {
        e = push(r);
        e->type = KX_MUX_DATA;
        e->id = id;
        e->off = r->dlen;
    } else if (e->id != id) {
        fail();   // a frame's pieces changed stream
    }
    memcpy(r->data + r->dlen, p, n);
    r->dlen += n;
    e->len += n;
    if (e->len > KX_MUX_MAX_DATA)
        fail();
    if (!end)
        return 0;
    e->done = true;
    return complete(s);
}

int on_ctrl(void *u, kx_mux_type type, uint32_t id, uint32_t value)
{
    sink *s = (sink *)u;
    if (s->stopped)
        fail();
    result *r = s->r;
    // A DATA frame left unfinished cannot be followed by another frame.
    if (r->n && r->evs[r->n - 1].type == KX_MUX_DATA && !r->evs[r->n - 1].done)
        fail();
    ev *e = push(r);
    e->type = type;
    e->id = id;
    e->value = value;
    return complete(s);
}

const kx_mux_parse_cb cbs = {on_data, on_ctrl};

uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

// The reference: decodes d[0..n) frame by frame, as mux.h describes it.
void reference(const uint8_t *d, size_t n, size_t fail_at, result *r)
{
    size_t pos = 0, frames = 0;
    r->status = 0;
    while (n - pos >= 8) {
        const uint8_t *h = d + pos;
        uint32_t id = be32(h);
        uint8_t type = h[4];
        uint32_t len = (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
        bool ok = id != 0;
        if (type == KX_MUX_OPEN || type == KX_MUX_FIN || type == KX_MUX_RST)
            ok = ok && len == 0;
        else if (type == KX_MUX_DATA)
            ok = ok && len >= 1 && len <= KX_MUX_MAX_DATA;
        else if (type == KX_MUX_WINDOW)
            ok = ok && len == 4;
        else
            ok = false;
        if (!ok) {
            r->status = -EPROTO;
            return;
        }
        pos += 8;
        if (type == KX_MUX_DATA) {
            size_t have = n - pos < len ? n - pos : len;
            ev *e = push(r);
            e->type = type;
            e->id = id;
            e->off = r->dlen;
            e->len = have;
            memcpy(r->data + r->dlen, d + pos, have);
            r->dlen += have;
            pos += have;
            if (have < len)
                return;   // the input ends inside the payload
            e->done = true;
        } else if (type == KX_MUX_WINDOW) {
            if (n - pos < 4)
                return;
            uint32_t v = be32(d + pos);
            pos += 4;
            if (v == 0 || v > 0x7fffffffu) {
                r->status = -EPROTO;
                return;
            }
            ev *e = push(r);
            e->type = type;
            e->id = id;
            e->value = v;
        } else {
            ev *e = push(r);
            e->type = type;
            e->id = id;
        }
        if (fail_at && ++frames == fail_at) {
            r->status = -EPIPE;
            return;
        }
    }
    // A DATA frame whose header is complete but payload absent has shown
    // nothing yet: the parser only calls on_data with bytes.
}

void result_init(result *r, size_t size)
{
    r->cap = size / 8 + 1;
    r->evs = (ev *)malloc(r->cap * sizeof *r->evs);
    r->data = (uint8_t *)malloc(size + 1);
    if (!r->evs || !r->data)
        fail();
    r->n = r->dlen = 0;
    r->status = 0;
}

void result_free(result *r)
{
    free(r->evs);
    free(r->data);
}

void same(const result *want, const result *got)
{
    // The reference records a DATA frame whose payload has not started
    // (header complete, no byte yet) nowhere; neither may the parser.
    size_t wn = want->n;
    if (wn && want->evs[wn - 1].type == KX_MUX_DATA && want->evs[wn - 1].len == 0)
        wn--;
    if (wn != got->n || want->dlen != got->dlen || want->status != got->status)
        fail();
    for (size_t i = 0; i < wn; i++) {
        const ev *a = &want->evs[i], *b = &got->evs[i];
        if (a->type != b->type || a->id != b->id || a->value != b->value || a->len != b->len ||
            a->done != b->done || a->off != b->off)
            fail();
    }
    if (memcmp(want->data, got->data, want->dlen) != 0)
        fail();
}

// Feeds d[0..n) in pieces of `step` bytes (0: whole), plus the split point
// `split` first when step is 0.
void run(const uint8_t *d, size_t n, size_t split, size_t step, size_t fail_at,
         const result *want)
{
    result got;
    result_init(&got, n);
    sink s = {&got, 0, fail_at, false};
    kx_mux_parser p;
    kx_mux_parser_init(&p);
    int r = 0;
    if (step == 0) {
        r = kx_mux_parse(&p, d, split, &cbs, &s);
        if (r == 0)
            r = kx_mux_parse(&p, d + split, n - split, &cbs, &s);
        else if (kx_mux_parse(&p, d + split, n - split, &cbs, &s) != r)
            fail();
    } else {
        for (size_t i = 0; i < n; i += step) {
            size_t k = n - i < step ? n - i : step;
            int rr = kx_mux_parse(&p, d + i, k, &cbs, &s);
            if (r != 0 && rr != r)
                fail();   // not sticky
            r = rr;
        }
    }
    got.status = r;
    if (r < 0) {
        // Sticky, and silent: no callback may come (the sink aborts if one does).
        s.stopped = true;
        static const uint8_t more[16] = {0, 0, 0, 1, KX_MUX_OPEN, 0, 0, 0,
                                         0, 0, 0, 1, KX_MUX_FIN, 0, 0, 0};
        if (kx_mux_parse(&p, more, sizeof more, &cbs, &s) != r || p.err != r)
            fail();
    }
    same(want, &got);
    result_free(&got);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t sel = data[0];
    size_t fail_at = (sel & 0x80) ? (size_t)(data[1] % 8) + 1 : 0;
    data++;
    size--;
    size_t split = (size_t)(sel & 0x7f) * size / 127;
    result want;
    result_init(&want, size);
    reference(data, size, fail_at, &want);
    run(data, size, size, 0, fail_at, &want);
    run(data, size, split, 0, fail_at, &want);
    if (size <= 8192)
        run(data, size, 0, 1, fail_at, &want);
    run(data, size, 0, 7, fail_at, &want);
    result_free(&want);
    return 0;
}
