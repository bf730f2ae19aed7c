// /containerLogs/{ns}/{pod}/{ctr}: `kubectl logs` on the node (protocol.md
// §6.2, §8.2). Answers 200 text/plain, chunked, with the container's CRI log
// turned into plain output by kx_logfilter (crilog.h); errors are plain text
// like the kubelet's: 404 `pod "p" does not exist`, 404 `container "c" not
// found in pod "p"`, 400 for a container without logs yet or without a
// previous run, 400/422 for bad options.
//
// Which run's file: as the kubelet's validateContainerLogStatus decides it.
// The current run while it runs or after its final exit; during a restart
// back-off the last run (whose file is still the newest); previous=true the
// run before the current one, or the last run during a back-off.
//
// Reading: the run's files (rotated path.<k> ... path.1, then path) are read
// with plain read(2) from the loop, at most kTickBudget bytes per loop turn,
// and only while the client's write queue is below KX_CONN_HIGH_WATER (else we
// look again after kBackoffMs). Local page-cache reads, like the writer's
// appends (crilog.h). Counting lines for tailLines reads the needed files once
// more, newest first, synchronously before the answer starts.
//
// Follow: at the end of the newest file we poll every kPollMs (the writer is
// on this same loop, so a poll never sees a rotation half done). When the file
// we read is no longer the newest (rotated), we find where its inode went and
// continue with the next newer file. The stream ends once the run is over
// (container not running, or a newer run started) and nothing new arrived for
// kDrainMs, when limitBytes is reached, or when the client goes away
// (on_abort): then the fd and the timer are closed and the session freed.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "crilog.h"
#include "kubexec/http1.h"
#include "node.h"

static const uint64_t kPollMs = 50;          // follow: look for new lines this often
static const uint64_t kBackoffMs = 20;       // client queue high: look again after this
static const uint64_t kDrainMs = 250;        // run over and quiet this long: end of stream
static const size_t kReadChunk = 64 * 1024;
static const size_t kTickBudget = 1024 * 1024;   // file bytes per loop turn
enum { kPathMax = 4096 };

struct log_session {
    kx_node *node;
    kx_httpd_req *req;          // null once the answer ended or the client left
    char ns[254], pod[254], ctr[254];
    char base[kPathMax];        // newest file of the run
    bool follow;
    kx_logfilter filter;
    kx_buf out;
    int fd;                     // file being read, -1 none
    dev_t dev;
    ino_t ino;
    uint64_t quiet_since_ms;    // run over: when it was first seen quiet (0 = not yet)
    uv_timer_t timer;
    bool timer_open;
    uint8_t buf[kReadChunk];
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

// --- which file ------------------------------------------------------------

static json_object *jget(json_object *o, const char *k)
{
    json_object *v = nullptr;
    return o && json_object_object_get_ex(o, k, &v) ? v : nullptr;
}

static const char *jstr(json_object *o, const char *k)
{
    json_object *v = jget(o, k);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : nullptr;
}

static json_object *find_named(json_object *arr, const char *name)
{
    size_t n = arr && json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(arr, i);
        const char *nm = jstr(e, "name");
        if (nm && !strcmp(nm, name))
            return e;
    }
    return nullptr;
}

// Fills path with the log file to read, or returns the HTTP code with the
// kubelet's message in msg.
static int resolve_log(kx_node *n, const char *ns, const char *pod, const char *ctr, bool previous,
                       char *path, size_t cap, char *msg, size_t msgcap)
{
    json_object *pods = kx_podmgr_pods_json(n->pm);
    if (!pods) {
        snprintf(msg, msgcap, "out of memory");
        return 500;
    }
    json_object *p = nullptr;
    size_t np = json_object_array_length(pods);
    for (size_t i = 0; i < np && !p; i++) {
        json_object *e = json_object_array_get_idx(pods, i);
        json_object *md = jget(e, "metadata");
        const char *pns = jstr(md, "namespace"), *pname = jstr(md, "name");
        if (pns && pname && !strcmp(pns, ns) && !strcmp(pname, pod))
            p = e;
    }
    int code = 0;
    json_object *spec = jget(p, "spec"), *status = jget(p, "status");
    json_object *cs = find_named(jget(status, "containerStatuses"), ctr);
    if (!cs)
        cs = find_named(jget(status, "initContainerStatuses"), ctr);
    json_object *state = jget(cs, "state");
    json_object *last_term = jget(jget(cs, "lastState"), "terminated");
    json_object *waiting = jget(state, "waiting");
    bool last_run = false;   // read the run that ended last (restart back-off)
    if (!p) {
        snprintf(msg, msgcap, "pod \"%s\" does not exist", pod);
        code = 404;
    } else if (!find_named(jget(spec, "containers"), ctr) && !find_named(jget(spec, "initContainers"), ctr)) {
        snprintf(msg, msgcap, "container \"%s\" not found in pod \"%s\"", ctr, pod);
        code = 404;
    } else if (!cs) {
        snprintf(msg, msgcap, "container \"%s\" in pod \"%s\" is not available", ctr, pod);
        code = 400;
    } else if (previous) {
        if (!last_term) {
            snprintf(msg, msgcap, "previous terminated container \"%s\" in pod \"%s\" not found", ctr, pod);
            code = 400;
        }
        last_run = waiting != nullptr;
    } else if (waiting && !last_term) {
        const char *reason = jstr(waiting, "reason");
        snprintf(msg, msgcap, "container \"%s\" in pod \"%s\" is waiting to start: %s", ctr, pod,
                 reason && *reason ? reason : "ContainerCreating");
        code = 400;
    }
    json_object_put(pods);
    if (code)
        return code;
    // The podmgr's restartCount is the current (or, in back-off, the last) run.
    int r = kx_podmgr_log_path(n->pm, ns, pod, ctr, previous && !last_run, path, cap);
    if (r < 0) {
        if (previous)
            snprintf(msg, msgcap, "previous terminated container \"%s\" in pod \"%s\" not found", ctr, pod);
        else
            snprintf(msg, msgcap, "container \"%s\" in pod \"%s\" is not available", ctr, pod);
        return 400;
    }
    return 0;
}

// Index of the file with this inode among base, base.1, ... (contiguous),
// -1 if none; *oldest gets the highest existing index (-1: no file at all).
static int locate(const char *base, dev_t dev, ino_t ino, int *oldest)
{
    char p[kPathMax];
    int found = -1;
    *oldest = -1;
    for (int i = 0; i <= KX_CRILOG_MAX_FILES; i++) {
        struct stat st;
        if (kx_crilog_rotated_path(p, sizeof p, base, i) < 0 || stat(p, &st) != 0) {
            if (i == 0)
                continue;   // the newest may be missing for a moment; older ones still count
            break;
        }
        *oldest = i;
        if (found < 0 && st.st_dev == dev && st.st_ino == ino)
            found = i;
    }
    return found;
}

static int open_idx(log_session *ls, int idx)
{
    char p[kPathMax];
    if (kx_crilog_rotated_path(p, sizeof p, ls->base, idx) < 0)
        return -ENAMETOOLONG;
    int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (ls->fd >= 0)
        close(ls->fd);
    ls->fd = fd;
    ls->dev = st.st_dev;
    ls->ino = st.st_ino;
    return 0;
}

// tailLines: counts lines newest file first until there are enough, then
// opens the file to start from and returns how many of its lines to skip.
static uint64_t start_for_tail(log_session *ls, const kx_logopts *o, int oldest)
{
    uint64_t want = (uint64_t)o->tail_lines, have = 0;
    for (int i = 0; i <= oldest; i++) {
        char p[kPathMax];
        if (kx_crilog_rotated_path(p, sizeof p, ls->base, i) < 0)
            break;
        int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
            continue;
        kx_logcount c;
        kx_logcount_init(&c, o->streams);
        ssize_t r;
        while ((r = read(fd, ls->buf, sizeof ls->buf)) > 0)
            if (kx_logcount_feed(&c, ls->buf, (size_t)r) < 0)
                break;
        close(fd);
        uint64_t lines = kx_logcount_lines(&c, i == 0);
        kx_logcount_free(&c);
        if (have + lines >= want) {
            if (open_idx(ls, i) == 0)
                return have + lines - want;
            return 0;
        }
        have += lines;
    }
    // Fewer lines than asked for: everything.
    if (oldest >= 0)
        open_idx(ls, oldest);
    return 0;
}

// --- session ---------------------------------------------------------------

static void session_free_cb(uv_handle_t *h)
{
    log_session *ls = (log_session *)h->data;
    kx_logfilter_free(&ls->filter);
    kx_buf_free(&ls->out);
    free(ls);
}

static void session_close(log_session *ls)
{
    if (ls->req) {
        ls->req->on_abort = nullptr;
        ls->req = nullptr;
    }
    if (ls->fd >= 0) {
        close(ls->fd);
        ls->fd = -1;
    }
    if (ls->timer_open) {
        ls->timer_open = false;
        uv_timer_stop(&ls->timer);
        uv_close((uv_handle_t *)&ls->timer, session_free_cb);
    }
}

// Normal end: terminating chunk, then the session goes.
static void session_end(log_session *ls)
{
    kx_httpd_req *req = ls->req;
    if (req) {
        req->on_abort = nullptr;
        ls->req = nullptr;
        kx_httpd_chunked_end(req);
    }
    session_close(ls);
}

static void on_abort(kx_httpd_req *, void *data)
{
    log_session *ls = (log_session *)data;
    ls->req = nullptr;   // dead now
    session_close(ls);
}

// Sends what the filter produced. -1 when the connection refused it.
static int flush_out(log_session *ls)
{
    if (ls->out.len == 0)
        return 0;
    int r = kx_httpd_chunked_write(ls->req, ls->out.data, ls->out.len);
    ls->out.len = 0;
    return r < 0 ? -1 : 0;
}

// The run we read has ended: the container is not running, or a newer run
// writes another file.
static bool run_over(log_session *ls)
{
    char cur[kPathMax], err[256];
    if (kx_podmgr_log_path(ls->node->pm, ls->ns, ls->pod, ls->ctr, false, cur, sizeof cur) != 0 ||
        strcmp(cur, ls->base) != 0)
        return true;
    kx_container_ref ref;
    return kx_podmgr_find(ls->node->pm, ls->ns, ls->pod, ls->ctr, &ref, err, sizeof err) != 0;
}

static void pump(log_session *ls);

static void on_timer(uv_timer_t *t)
{
    pump((log_session *)t->data);
}

static void schedule(log_session *ls, uint64_t ms)
{
    uv_timer_start(&ls->timer, on_timer, ms, 0);
}

// Reads, filters and sends until the end of the newest file, the tick budget
// or client back-pressure; then either ends the stream or schedules itself.
static void pump(log_session *ls)
{
    size_t budget = kTickBudget;
    bool got_new = false;
    while (ls->req) {
        if (kx_httpd_queued(ls->req) > KX_CONN_HIGH_WATER) {
            schedule(ls, kBackoffMs);
            return;
        }
        if (budget == 0) {
            schedule(ls, 0);
            return;
        }
        ssize_t n = ls->fd >= 0 ? read(ls->fd, ls->buf, sizeof ls->buf) : 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            session_end(ls);   // an unreadable log ends the stream (the kubelet does the same)
            return;
        }
        if (n > 0) {
            got_new = true;
            budget -= (size_t)n < budget ? (size_t)n : budget;
            int r = kx_logfilter_feed(&ls->filter, ls->buf, (size_t)n, &ls->out);
            if (r < 0 || flush_out(ls) < 0) {
                session_end(ls);
                return;
            }
            if (r == 1) {   // limitBytes reached
                session_end(ls);
                return;
            }
            continue;
        }
        // End of this file: is it still the newest one?
        int oldest;
        int idx = ls->fd >= 0 ? locate(ls->base, ls->dev, ls->ino, &oldest) : -1;
        if (ls->fd < 0)
            locate(ls->base, 0, 0, &oldest);
        if (idx > 0) {
            if (open_idx(ls, idx - 1) == 0)
                continue;
        } else if (idx < 0 && oldest >= 0) {
            // Our file is gone (rotated out while we lagged, or never opened):
            // go on with the oldest one that is left.
            if (open_idx(ls, oldest) == 0)
                continue;
        }
        if (!ls->follow) {
            session_end(ls);
            return;
        }
        if (got_new || !run_over(ls)) {
            ls->quiet_since_ms = 0;
        } else {
            uint64_t now = mono_ms();
            if (!ls->quiet_since_ms)
                ls->quiet_since_ms = now;
            else if (now - ls->quiet_since_ms >= kDrainMs) {
                session_end(ls);
                return;
            }
        }
        schedule(ls, kPollMs);
        return;
    }
}

static int parse_opts(kx_httpd_req *req, kx_logopts *o)
{
    char key[64], val[256], err[256];
    kx_logopts_init(o);
    const char *cur = req->query;
    int r;
    while ((r = kx_query_next(&cur, key, sizeof key, val, sizeof val)) > 0) {
        if (kx_logopts_set(o, key, val, err, sizeof err) < 0) {
            kx_httpd_respond_text(req, 400, err);
            return -1;
        }
    }
    if (r < 0) {
        kx_httpd_respond_text(req, 400, "invalid query parameters");
        return -1;
    }
    if (kx_logopts_validate(o, err, sizeof err) < 0) {
        kx_httpd_respond_text(req, 422, err);
        return -1;
    }
    return 0;
}

void kx_node_logs(kx_node *n, kx_httpd_req *req, const char *ns, const char *pod, const char *ctr)
{
    kx_logopts o;
    if (parse_opts(req, &o) < 0)
        return;
    char path[kPathMax], msg[768];
    int code = resolve_log(n, ns, pod, ctr, o.previous, path, sizeof path, msg, sizeof msg);
    if (code) {
        kx_httpd_respond_text(req, code, msg);
        return;
    }
    log_session *ls = (log_session *)calloc(1, sizeof *ls);
    if (!ls) {
        kx_httpd_respond_text(req, 500, "out of memory");
        return;
    }
    ls->node = n;
    ls->fd = -1;
    ls->follow = o.follow;
    kx_strlcpy(ls->ns, ns, sizeof ls->ns);
    kx_strlcpy(ls->pod, pod, sizeof ls->pod);
    kx_strlcpy(ls->ctr, ctr, sizeof ls->ctr);
    kx_strlcpy(ls->base, path, sizeof ls->base);

    struct timespec since, *sincep = nullptr;
    if (o.have_since_time) {
        since = o.since_time;
        sincep = &since;
    } else if (o.have_since_seconds) {
        clock_gettime(CLOCK_REALTIME, &since);
        since.tv_sec -= (time_t)o.since_seconds;
        sincep = &since;
    }
    int oldest;
    locate(ls->base, 0, 0, &oldest);
    uint64_t skip = 0;
    if (o.have_tail_lines)
        skip = start_for_tail(ls, &o, oldest);
    else if (oldest >= 0)
        open_idx(ls, oldest);
    kx_logfilter_init(&ls->filter, &o, sincep, skip);

    if (uv_timer_init(n->loop, &ls->timer) != 0) {
        if (ls->fd >= 0)
            close(ls->fd);
        free(ls);
        kx_httpd_respond_text(req, 500, "cannot start the log stream");
        return;
    }
    ls->timer.data = ls;
    ls->timer_open = true;
    if (kx_httpd_chunked_start(req, 200, "text/plain") < 0) {
        session_close(ls);
        return;
    }
    ls->req = req;
    req->on_abort = on_abort;
    req->abort_data = ls;
    pump(ls);
}
