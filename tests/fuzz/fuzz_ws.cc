// libFuzzer target: arbitrary bytes into a server-role channel.k8s.io
// WebSocket session (kx_wsch on kx_ws), once whole and once split in two;
// then the same bytes into a client-role kx_ws session (what the kubexec CLI
// reads from a server), which echoes each message back masked.
// The first byte picks the subprotocol variant (v5 / v4 / base64 / v1) and
// whether a tty is used; the callbacks write output back like an echoing
// process so the send paths run too.
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kubexec/wschannel.h"
#include "kubexec/ws.h"

namespace {

struct ctx {
    kx_wsch_session *s;
    size_t sent;
};

int f_send(void *u, const uint8_t *, size_t hl, const uint8_t *, size_t pl)
{
    ((ctx *)u)->sent += hl + pl;
    return 0;
}

void f_ready(void *) {}

void f_stdin(void *u, const uint8_t *p, size_t n)
{
    ctx *c = (ctx *)u;
    (void)kx_wsch_stdout(c->s, p, n);
    (void)kx_wsch_stderr(c->s, p, n);
}

void f_eof(void *u)
{
    ctx *c = (ctx *)u;
    (void)kx_wsch_finish(c->s, 3, nullptr);
}

void f_resize(void *u, uint16_t cols, uint16_t)
{
    ctx *c = (ctx *)u;
    if (cols == 999)
        (void)kx_wsch_finish(c->s, 0, "resized");
}

void f_goaway(void *) {}

const kx_wsch_callbacks cbs = {f_send, f_ready, f_stdin, f_eof, f_resize, f_goaway};

void run(const uint8_t *data, size_t size, size_t split)
{
    if (size < 1)
        return;
    static const kx_wsch_proto protos[] = {
        {KX_RC_V5, false}, {KX_RC_V4, false}, {KX_RC_V4, true}, {KX_RC_V1, false}};
    uint8_t sel = data[0];
    kx_wsch_opts o = {true, true, true, (sel & 4) != 0, protos[sel & 3]};
    ctx c = {};
    c.s = kx_wsch_new(&o, &cbs, &c);
    if (!c.s)
        return;
    if (sel & 8)
        kx_wsch_start(c.s);
    data++;
    size--;
    if (split > size)
        split = size;
    int rc = kx_wsch_recv(c.s, data, split);
    if (!(sel & 8))
        kx_wsch_start(c.s);
    if (rc == 0)
        rc = kx_wsch_recv(c.s, data + split, size - split);
    (void)rc;
    (void)kx_wsch_finish(c.s, 0, nullptr);
    kx_wsch_free(c.s);
}

struct cctx {
    kx_ws_session *s;
    size_t sent;
};

int c_send(void *u, const uint8_t *, size_t hl, const uint8_t *, size_t pl)
{
    ((cctx *)u)->sent += hl + pl;
    return 0;
}

void c_msg(void *u, int op, const uint8_t *p, size_t n)
{
    cctx *c = (cctx *)u;
    (void)kx_ws_send(c->s, op, p, n > 1 ? 1 : n, p + (n > 1 ? 1 : n), n > 1 ? n - 1 : 0);
}

void c_close(void *, uint16_t) {}

void run_client(const uint8_t *data, size_t size, size_t split)
{
    static const kx_ws_callbacks cb = {c_send, c_msg, c_close};
    cctx c = {};
    c.s = kx_ws_new_client(&cb, &c, 64 * 1024);
    if (!c.s)
        return;
    if (kx_ws_recv(c.s, data, split) == 0)
        (void)kx_ws_recv(c.s, data + split, size - split);
    (void)kx_ws_close(c.s, KX_WS_NORMAL, nullptr);
    kx_ws_free(c.s);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size, size);
    run(data, size, size / 2);
    run_client(data, size, size);
    run_client(data, size, size / 2);
    return 0;
}
