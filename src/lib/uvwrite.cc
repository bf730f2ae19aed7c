// Writes with a copy only of what the kernel did not take; see kubexec/uvwrite.h.
#include "kubexec/uvwrite.h"

#include <stdlib.h>
#include <string.h>

struct uvwrite_req {
    uv_write_t req;
    kx_uvwrite_cb done;
    void *user;
    size_t len;
    // data follows
};

static void uvwrite_done(uv_write_t *req, int status)
{
    uvwrite_req *w = (uvwrite_req *)req->data;
    kx_uvwrite_cb done = w->done;
    void *user = w->user;
    size_t len = w->len;
    free(w);
    done(user, len, status);
}

long kx_uv_write_copy(uv_stream_t *s, const uint8_t *p, size_t n, kx_uvwrite_cb done,
                      void *user)
{
    if (n == 0)
        return 0;
    size_t sent = 0;
    if (uv_stream_get_write_queue_size(s) == 0) {
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
        int r = uv_try_write(s, &b, 1);
        if (r > 0)
            sent = (size_t)r;
    }
    if (sent == n)
        return 0;
    size_t rest = n - sent;
    uvwrite_req *w = (uvwrite_req *)malloc(sizeof *w + rest);
    if (!w)
        return sent ? UV_EIO : UV_ENOMEM;
    memcpy(w + 1, p + sent, rest);
    w->done = done;
    w->user = user;
    w->len = rest;
    w->req.data = w;
    uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned)rest);
    int r = uv_write(&w->req, s, &b, 1, uvwrite_done);
    if (r < 0) {
        free(w);
        return sent ? UV_EIO : r;
    }
    return (long)rest;
}
