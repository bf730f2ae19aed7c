// tests/unit/pki_files.h - for tests that need certificates and keys on disk
// (kx_tls_ctx_new reads files): a fixture step that must succeed, and a PEM
// written into the test's temporary directory. Header-only.
#pragma once

#include <stdio.h>
#include <stdlib.h>

#include "kubexec/pki.h"

// A fixture step that failed leaves nothing to test: stop the binary at once.
static inline void must(int r, const char *what)
{
    if (r != 0) {
        fprintf(stderr, "fixture: %s failed: %d\n", what, r);
        abort();
    }
}

// Writes data to dir/name (mode 0600); its path is left in path[0..cap).
static inline void put_file(char *path, size_t cap, const char *dir, const char *name,
                            const char *data)
{
    snprintf(path, cap, "%s/%s", dir, name);
    must(kx_pki_write_file(path, data, 0600), name);
}
