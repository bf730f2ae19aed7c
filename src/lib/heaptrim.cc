// Deferred malloc_trim; see kubexec/heaptrim.h.
#include "kubexec/heaptrim.h"

#include <malloc.h>

static uv_timer_t g_timer;
static bool g_inited, g_closed;

static void heaptrim_fire(uv_timer_t *)
{
    malloc_trim(0);
}

void kx_heaptrim_soon(uv_loop_t *loop)
{
    if (g_closed || !loop)
        return;
    if (!g_inited) {
        if (uv_timer_init(loop, &g_timer) < 0)
            return;
        uv_unref((uv_handle_t *)&g_timer);
        g_inited = true;
    }
    if (!uv_is_active((uv_handle_t *)&g_timer))
        uv_timer_start(&g_timer, heaptrim_fire, KX_HEAPTRIM_DELAY_MS, 0);
}

void kx_heaptrim_close(void)
{
    if (g_closed)
        return;
    g_closed = true;
    if (g_inited)
        uv_close((uv_handle_t *)&g_timer, nullptr);
}
