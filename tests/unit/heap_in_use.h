// tests/unit/heap_in_use.h - bytes the process has allocated now, for tests
// that check what a connection or a stream keeps: ASan's own count under
// ASan (gcc or clang), glibc's otherwise. Header-only.
#pragma once

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define KX_HEAP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KX_HEAP_ASAN 1
#endif
#endif

#if defined(KX_HEAP_ASAN)
// Declared here: sanitizer/allocator_interface.h is not always installed.
extern "C" size_t __sanitizer_get_current_allocated_bytes(void);
#else
#include <malloc.h>
#endif

static inline size_t heap_in_use(void)
{
#if defined(KX_HEAP_ASAN)
    return __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#endif
}
