// libFuzzer target: arbitrary bytes into a server-role SPDY session, once
// whole and once split in two halves. The callbacks answer like the node
// agent does (reply, echo data, FIN back, GOAWAY on GOAWAY) so the output
// paths and stream table run too.
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kubexec/spdy.h"

namespace {

struct ctx {
    kx_spdy_session *s;
    size_t sent;
};

int f_send(void *u, const uint8_t *, size_t hl, const uint8_t *, size_t pl)
{
    ((ctx *)u)->sent += hl + pl;
    return 0;
}

void f_stream(void *u, uint32_t id, const kx_spdy_nv *nv, size_t n, bool fin)
{
    ctx *c = (ctx *)u;
    // Echo the peer's headers back (exercises the deflate side); bad names
    // are refused with -EINVAL, which is fine.
    if (kx_spdy_reply(c->s, id, nv, n, fin) < 0)
        (void)kx_spdy_reply(c->s, id, nullptr, 0, false);
    if (id % 3 == 0)
        (void)kx_spdy_rst(c->s, id, KX_SPDY_CANCEL);
}

void f_data(void *u, uint32_t id, const uint8_t *p, size_t n)
{
    ctx *c = (ctx *)u;
    (void)kx_spdy_data(c->s, id, p, n, false);
}

void f_fin(void *u, uint32_t id)
{
    ctx *c = (ctx *)u;
    (void)kx_spdy_data(c->s, id, nullptr, 0, true);
}

void f_rst(void *u, uint32_t, uint32_t)
{
    ctx *c = (ctx *)u;
    uint32_t id;
    (void)kx_spdy_open(c->s, nullptr, 0, false, &id);
}

void f_goaway(void *u, uint32_t, uint32_t)
{
    ctx *c = (ctx *)u;
    (void)kx_spdy_goaway(c->s, KX_SPDY_GOAWAY_OK);
}

const kx_spdy_callbacks cbs = {f_send, f_stream, nullptr, f_data, f_fin, f_rst, f_goaway};

void run(const uint8_t *data, size_t size, size_t split)
{
    ctx c = {};
    c.s = kx_spdy_session_new(true, &cbs, &c);
    if (!c.s)
        return;
    int rc = kx_spdy_recv(c.s, data, split);
    if (rc == 0)
        rc = kx_spdy_recv(c.s, data + split, size - split);
    (void)rc;
    kx_spdy_session_free(c.s);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size, size);
    run(data, size, size / 2);
    return 0;
}
