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
//
// Rotation (like the kubelet's containerLogMaxSize/MaxFiles, but with plain
// names and no compression): once the file grows past max_size, the writer
// renames path -> path.1 (path.1 -> path.2, ...; the file that would become
// path.<max_files> is deleted) and continues in a fresh path. A record is never
// split across files. So a run keeps at most max_files files, path being the
// newest; readers take path.<k> ... path.1, path, oldest first.
//
// The reading side (kx_crilog_parse, kx_logopts, kx_logfilter, kx_logcount) is
// sans-I/O: it turns CRI file bytes into what `kubectl logs` shows.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "kubexec/util.h"

enum { KX_CRILOG_MAX_LINE = 16 * 1024 };   // longest unfinished line kept per stream
enum { KX_CRILOG_MAX_FILES = 100 };        // upper bound for max_files (flag validation, cleanup)
// Longest record line a reader accepts (header + KX_CRILOG_MAX_LINE text, with
// room for foreign writers); longer ones are skipped as malformed.
enum { KX_CRILOG_MAX_RECORD = 64 * 1024 };

// Rotation settings used by every kx_crilog_open from now on (process-wide,
// set once at start-up by the daemon; podmgr opens the logs). max_size 0
// disables rotation; max_files is clamped to 2..KX_CRILOG_MAX_FILES. The
// default is 10 MiB and 5 files (the kubelet's defaults).
void kx_crilog_set_default_rotation(uint64_t max_size, int max_files);
void kx_crilog_get_default_rotation(uint64_t *max_size, int *max_files);

struct kx_crilog;

// Opens (creating parent directories 0755 and the file 0640) for appending,
// with the default rotation settings (rotation applies to regular files only).
// NULL on failure with the reason in err.
kx_crilog *kx_crilog_open(const char *path, char *err, size_t errlen);

// Overrides the rotation settings of one log (same rules as the default).
void kx_crilog_set_rotation(kx_crilog *l, uint64_t max_size, int max_files);

// Rotations done so far. A failed rotation (rename/open error) is not
// counted: the writer keeps appending to the file it has and retries after
// another max_size/8 bytes.
uint64_t kx_crilog_rotations(const kx_crilog *l);

// "<path>.<idx>" for idx >= 1, path itself for idx 0. 0 or -ENAMETOOLONG.
int kx_crilog_rotated_path(char *out, size_t cap, const char *path, int idx);

// Deletes path and its rotated files path.1 .. path.KX_CRILOG_MAX_FILES (a run's
// whole log). Missing files are fine. Returns 0 or the first other -errno.
int kx_crilog_remove(const char *path);

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

// Parses an RFC 3339 time: YYYY-MM-DDTHH:MM:SS[.fraction (1-9 digits)](Z|+HH:MM|-HH:MM)
// ('t'/'z' accepted too). n is the length (the string need not be NUL-terminated).
// 0 or -EINVAL.
int kx_crilog_parse_time(const char *s, size_t n, struct timespec *ts);

// --- Reading -----------------------------------------------------------------

struct kx_crilog_record {
    struct timespec ts;
    int stream;            // 1 stdout, 2 stderr
    bool partial;          // P: the line continues in the stream's next record
    const uint8_t *text;   // points into the parsed line
    size_t len;
};

// Parses one record line (without its '\n'): `<time> <stdout|stderr> <F|P> <text>`.
// A record without the tag field (`<time> <stream> <text>`, older writers) is
// a full line. 0, or -EINVAL for anything else.
int kx_crilog_parse(const uint8_t *line, size_t n, kx_crilog_record *r);

// PodLogOptions as the kubelet takes them from the query (protocol.md §6.1/§6.2).
enum { KX_LOG_STDOUT = 1, KX_LOG_STDERR = 2, KX_LOG_ALL = 3 };
struct kx_logopts {
    bool follow, previous, timestamps;
    // Integer options hold the value as given when their have_ flag is set
    // (kx_logopts_validate rejects the out-of-range ones).
    bool have_tail_lines, have_limit_bytes, have_since_seconds;
    int64_t tail_lines;        // lines from the end
    int64_t limit_bytes;       // output bytes
    int64_t since_seconds;     // relative to the reader's clock
    bool have_since_time;
    struct timespec since_time;
    unsigned streams;          // KX_LOG_* bits
};

void kx_logopts_init(kx_logopts *o);
// Applies one decoded query parameter. Booleans are lenient as in Kubernetes
// (absent false; "0"/"false" false; anything else, even "", true). Integers
// are decimal int64. `tail` (legacy: N or "all") is accepted. Unknown keys are
// ignored. 0, or -EINVAL with a message in err (HTTP 400 material).
int kx_logopts_set(kx_logopts *o, const char *key, const char *val, char *err, size_t errlen);
// Cross-field checks as upstream's ValidatePodLogOptions: tailLines >= 0,
// limitBytes > 0, sinceSeconds > 0, not both sinceSeconds and sinceTime.
// 0, or -EINVAL with the message in err (HTTP 422 material).
int kx_logopts_validate(const kx_logopts *o, char *err, size_t errlen);

// Turns CRI file bytes into `kubectl logs` output. Feed the files of a run
// oldest first, split anywhere. A line is the records of one stream up to and
// including an F record; its first record decides whether it is shown (the
// stream is selected, the line's timestamp is not before `since`, the first
// skip_lines lines are skipped). Shown records produce their text, the F record
// a '\n' after it, and with timestamps the line's first record is prefixed
// with its time (9 fractional digits, UTC) and a space. Output stops after
// limit_bytes bytes, cut mid-line if need be. Malformed record lines are
// skipped, like the kubelet does.
struct kx_logfilter {
    bool timestamps;
    unsigned streams;
    bool have_since;
    struct timespec since;
    uint64_t skip_lines;       // lines still to drop (tail)
    int64_t remain;            // output bytes left, -1 unlimited
    bool mid[2];               // per stream: inside a line (last record was P)
    bool drop[2];              // per stream: the current line is not shown
    kx_buf carry;              // an unfinished record line
    bool overlong;             // dropping the rest of an over-long record line
    uint64_t malformed;        // record lines skipped
};

// since may be null (no time filter). skip_lines from kx_logcount.
void kx_logfilter_init(kx_logfilter *f, const kx_logopts *o, const struct timespec *since,
                       uint64_t skip_lines);
// Appends the output for p[0..n) to out (out is grown without limit beyond what
// the input implies: at most n + 32 bytes per record). Returns 0, 1 once the
// byte limit is reached (feed nothing more), or -ENOMEM.
int kx_logfilter_feed(kx_logfilter *f, const uint8_t *p, size_t n, kx_buf *out);
// Bytes of an unfinished record line held back (a writer may be mid-record).
size_t kx_logfilter_pending(const kx_logfilter *f);
void kx_logfilter_free(kx_logfilter *f);

// Counts the lines (F records of the selected streams) in CRI bytes, for
// tailLines: feed one file, then kx_logcount_lines; `final` adds the lines
// that are unfinished at the end (a run's last, unterminated line), which
// counts only for the newest file.
struct kx_logcount {
    unsigned streams;
    uint64_t lines;
    bool mid[2];
    kx_buf carry;
    bool overlong;
};
void kx_logcount_init(kx_logcount *c, unsigned streams);
int kx_logcount_feed(kx_logcount *c, const uint8_t *p, size_t n);   // 0 or -ENOMEM
uint64_t kx_logcount_lines(const kx_logcount *c, bool final);
void kx_logcount_free(kx_logcount *c);
