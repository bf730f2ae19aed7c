// crilog.h - container log files in the CRI format the kubelet reads:
//
//   <RFC3339Nano UTC, always 9 fractional digits> <stdout|stderr> <F|P> <text>\n
//   2016-10-06T00:17:09.669794202Z stdout F hello
//
// F = the text is a full line (its '\n' is the record's own terminator);
// P = partial: the text continues in the next record of the same stream (a
// line longer than KX_CRILOG_MAX_LINE, or an unterminated last line at exit).
//
// Writes are small, synchronous write(2)s on a local O_APPEND file: a conscious
// choice. Each record goes out in one writev, so records never interleave and
// readers (logs --follow) never see half a record in the normal case; the page
// cache absorbs them in microseconds. A stalled disk would stall the node's
// loop, which is accepted for now (the alternative, uv_fs with a queue, would
// need a bound and a drop policy anyway).
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum { KX_CRILOG_MAX_LINE = 16 * 1024 };   // longest unfinished line kept per stream

struct kx_crilog;

// Opens (creating parent directories 0755 and the file 0640) for appending.
// NULL on failure with the reason in err.
kx_crilog *kx_crilog_open(const char *path, char *err, size_t errlen);

// Feeds n bytes of a stream's output (1 stdout, 2 stderr). Each '\n'-terminated
// line becomes an F record; bytes after the last '\n' are kept (per stream) until
// the line completes. An unfinished line reaching KX_CRILOG_MAX_LINE bytes is
// written at once as a P record of exactly that many bytes, so the records do not
// depend on how the input was split into calls.
// Returns 0, -EINVAL (bad stream), or the first write error (-errno); on a write
// error the remaining input is still processed (those records are lost and
// counted in kx_crilog_dropped).
int kx_crilog_write(kx_crilog *l, int stream, const uint8_t *p, size_t n);

// At process exit: writes each stream's pending unfinished line as a P record.
// Returns 0 or the first write error.
int kx_crilog_flush_partial(kx_crilog *l);

// Records that could not be written so far.
uint64_t kx_crilog_dropped(const kx_crilog *l);

// Replaces the clock (default clock_gettime(CLOCK_REALTIME)); for tests.
void kx_crilog_set_clock(kx_crilog *l, void (*now)(void *user, struct timespec *ts), void *user);

// Closes the file. Pending partial lines are NOT written (call
// kx_crilog_flush_partial first if they should be). NULL is a no-op.
void kx_crilog_close(kx_crilog *l);

// Formats ts as `2016-10-06T00:17:09.669794202Z` (UTC, 9 fractional digits).
// Returns the length (30 for years 0-9999) or -EINVAL for an unrepresentable time.
int kx_crilog_format_time(char out[40], const struct timespec *ts);
