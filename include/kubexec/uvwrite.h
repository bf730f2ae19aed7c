// kubexec/uvwrite.h - write a copy of some bytes to a libuv stream without
// an allocation per write when the kernel can take them at once.
//
// The caller's buffer is only borrowed for the call. Whatever the kernel takes
// right away (uv_try_write, only when nothing is queued, so order is kept)
// costs nothing; only the rest is copied into one allocation and queued with
// uv_write. A hard error from the immediate write is not returned: the bytes
// are queued instead, so the error arrives through `done` exactly as it would
// from uv_write.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

// A queued rest of `len` bytes was written (status 0) or failed (< 0,
// UV_ECANCELED when the handle closed). Not called for bytes written at once.
typedef void (*kx_uvwrite_cb)(void *user, size_t len, int status);

// Returns the number of bytes queued (0: all written now; `done` will not be
// called) or a negative libuv error when the rest could not be queued
// (UV_ENOMEM, a closing handle; UV_EIO if a first part was already written):
// the stream is then unusable for this data and the caller should close it.
long kx_uv_write_copy(uv_stream_t *s, const uint8_t *p, size_t n, kx_uvwrite_cb done,
                      void *user);
