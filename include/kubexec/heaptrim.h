// kubexec/heaptrim.h - hand freed heap pages back to the kernel shortly
// after sessions were set up or ended.
//
// Why: setting a session up (TLS handshake, HTTP head, SPDY/WebSocket
// negotiation) allocates and frees far more than the session keeps. With
// sessions set up side by side, what they keep ends up spread over heap
// pages whose other bytes are free, and glibc returns only the top of the
// heap by itself. Measured with 200 held SPDY exec sessions: ~1.9 MB of such
// pages in each daemon (~9.5 KiB per session per daemon, a fifth of what
// the sessions really use). malloc_trim(0) returns every whole free page
// (MADV_DONTNEED); a page is faulted back in, zeroed, when it is used again.
//
// kx_heaptrim_soon arms a one-shot timer of KX_HEAPTRIM_DELAY_MS unless one
// is armed already, so a burst of N sessions costs one trim, not N. The
// timer does not keep the loop alive. One loop per process (both daemons
// have one); the first call's loop is used.
#pragma once

#include <stdint.h>
#include <uv.h>

inline constexpr uint64_t KX_HEAPTRIM_DELAY_MS = 500;

void kx_heaptrim_soon(uv_loop_t *loop);
// Shutdown: closes the timer (so uv_loop_close finds no live handle); later
// kx_heaptrim_soon calls do nothing. Idempotent.
void kx_heaptrim_close(void);
