// Exec sessions: `kubectl exec` on the node. One exec_session per upgraded
// connection; it owns the remotecommand session (rcx.h: SPDY or WebSocket),
// the process's stdio pipes (libuv) and one timer, and watches the process
// through the reaper.
//
// Data path: pipe -> kx_rcx_stdout -> frames -> TLS -> socket, with
// back-pressure both ways: the pipes stop being read while the socket's write
// queue is above KX_CONN_HIGH_WATER, and the client stops being read while
// the process's stdin pipe has more than kStdinHighWater bytes queued.
//
// A session ends one way (protocol.md §3.5): process exit -> drain stdout and
// stderr -> close them -> status -> transport close. When the client goes
// first, the process gets SIGHUP (tty) or stdin EOF and SIGPIPE (its output
// pipes close), and SIGKILL to its process group after kKillGraceMs; the
// session is freed once the process was reaped and the connection closed.
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "executor.h"
#include "kubexec/heaptrim.h"
#include "kubexec/uvwrite.h"
#include "node.h"
#include "rcx.h"
#include "reaper.h"

static const uint64_t kTtySizeWaitMs = 1000;     // wait this long for the first resize
static const uint64_t kDrainIdleMs = 1000;       // output idle this long after exit: done
static const uint64_t kKillGraceMs = 2000;       // client gone: SIGKILL after this
static const size_t kStdinHighWater = 1024 * 1024;
static const size_t kStdinLowWater = 256 * 1024;

enum timer_purpose { T_NONE, T_TTY_WAIT, T_DRAIN, T_KILL };

struct exec_session {
    kx_node *node;
    exec_session *next, **pprev;
    kx_rcx *x;                  // null once closed
    kx_rcx_request rq;
    // What to start, needed only until session_spawn (then freed: a held
    // session keeps nothing it no longer needs).
    char *target;               // owned: "ns\0pod\0ctr\0"
    char **argv;                // owned, null-terminated
    kx_exec_proc proc;
    int exit_code;
    bool spawned, exited, finished, client_gone;
    bool stdin_eof;             // client sent EOF (applied once queued writes are done)
    bool input_paused, pipes_paused;
    bool out_grown, err_grown;  // pipe enlarged for bulk output (out_read)
    bool in_grown;              // stdin pipe enlarged for bulk input (stdin_write_bytes)
    bool have_size;
    uint16_t cols, rows;
    uv_pipe_t out, err, in;
    bool out_open, err_open, in_open;
    size_t in_queued;           // bytes in the stdin pipe's write queue
    int in_writes;              // write requests in flight
    uv_timer_t timer;
    timer_purpose timer_for;
    int open_handles;           // pipes + timer not yet closed
    bool freeing;
};

static void session_maybe_free(exec_session *s);
static void session_finish(exec_session *s, const char *errmsg);
static void session_client_gone(exec_session *s);

// --- handles ---------------------------------------------------------------

static void handle_closed(uv_handle_t *h)
{
    exec_session *s = (exec_session *)h->data;
    s->open_handles--;
    session_maybe_free(s);
}

static void close_pipe(uv_pipe_t *p, bool *open)
{
    if (!*open)
        return;
    *open = false;
    uv_close((uv_handle_t *)p, handle_closed);
}

static void timer_start(exec_session *s, timer_purpose why, uint64_t ms, uv_timer_cb cb)
{
    s->timer_for = why;
    uv_timer_start(&s->timer, cb, ms, 0);
}

static void timer_stop(exec_session *s)
{
    s->timer_for = T_NONE;
    uv_timer_stop(&s->timer);
}

static void free_spawn_args(exec_session *s)
{
    for (size_t i = 0; s->argv && s->argv[i]; i++)
        free(s->argv[i]);
    free(s->argv);
    s->argv = nullptr;
    free(s->target);
    s->target = nullptr;
}

static bool process_running(const exec_session *s)
{
    return s->spawned && !s->exited;
}

static void session_maybe_free(exec_session *s)
{
    if (s->x || process_running(s) || s->out_open || s->err_open || s->in_open)
        return;
    if (!s->freeing) {
        s->freeing = true;
        timer_stop(s);
        uv_close((uv_handle_t *)&s->timer, handle_closed);
        return;
    }
    if (s->open_handles > 0)
        return;
    if (s->pprev) {
        *s->pprev = s->next;
        if (s->next)
            s->next->pprev = s->pprev;
    }
    // After a burst of sessions the heap is full of freed session buffers;
    // hand the pages back once the node is idle again (small boxes).
    if (--s->node->sessions_active == 0)
        malloc_trim(0);
    free_spawn_args(s);
    free(s);
}

// --- process output --------------------------------------------------------

static void pipes_pause(exec_session *s)
{
    if (s->pipes_paused)
        return;
    s->pipes_paused = true;
    if (s->out_open)
        uv_read_stop((uv_stream_t *)&s->out);
    if (s->err_open)
        uv_read_stop((uv_stream_t *)&s->err);
}

// One read buffer for every session: out_read hands the bytes on before it
// returns (they are copied into the TLS engine), and libuv pairs each
// alloc with its read on this one thread. One SPDY DATA frame / WebSocket
// message worth; 32 KiB per held session otherwise.
static uint8_t g_readbuf[32 * 1024];

// A read that fills g_readbuf means the command writes faster than we send:
// its pipe then gets room for more (the kernel's 64 KiB default becomes
// kBulkPipe), so a lagging node reads it in fewer, fuller pieces -- per
// stdout GiB from busybox `head` (4 KiB writes): node CPU -17 %, +6 % MB/s
// (A/B, three alternated runs). Only bulk pipes grow: a larger pipe holds
// its slot array (~10 KiB for 1 MiB) from the moment it is resized.
static const int kBulkPipe = 1 << 20;

// Gives a bulk pipe kBulkPipe of room, once (*grown). A pty, or a size over
// pipe-max-size: fcntl refuses and it stays as it is.
static void grow_pipe(uv_pipe_t *p, bool *grown)
{
    uv_os_fd_t fd;
    if (!*grown && uv_fileno((uv_handle_t *)p, &fd) == 0) {
        *grown = true;
        (void)fcntl(fd, F_SETPIPE_SZ, kBulkPipe);
    }
}

static void out_alloc(uv_handle_t *, size_t, uv_buf_t *b)
{
    b->base = (char *)g_readbuf;
    b->len = sizeof g_readbuf;
}

static void maybe_finish(exec_session *s)
{
    if (s->exited && !s->finished && !s->out_open && !s->err_open)
        session_finish(s, nullptr);
}

static void drain_timeout(uv_timer_t *t)
{
    exec_session *s = (exec_session *)t->data;
    if (s->finished)
        return;
    if (s->pipes_paused) {
        // Still sending what we have: not idle.
        timer_start(s, T_DRAIN, kDrainIdleMs, drain_timeout);
        return;
    }
    // The command exited but something it left behind keeps the pipes open;
    // don't hang the client on it (a known upstream complaint).
    close_pipe(&s->out, &s->out_open);
    close_pipe(&s->err, &s->err_open);
    session_finish(s, nullptr);
}

static void out_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    exec_session *s = (exec_session *)st->data;
    bool is_err = st == (uv_stream_t *)&s->err;
    if (n < 0) {
        // EOF, or EIO from a pty master whose slave side is gone.
        if (is_err)
            close_pipe(&s->err, &s->err_open);
        else
            close_pipe(&s->out, &s->out_open);
        maybe_finish(s);
        return;
    }
    if (n == 0 || s->finished || !s->x)
        return;
    if (is_err)
        kx_rcx_stderr(s->x, (const uint8_t *)b->base, (size_t)n);
    else
        kx_rcx_stdout(s->x, (const uint8_t *)b->base, (size_t)n);
    if ((size_t)n == sizeof g_readbuf)
        grow_pipe(is_err ? &s->err : &s->out, is_err ? &s->err_grown : &s->out_grown);
    if (s->exited && s->timer_for == T_DRAIN)
        timer_start(s, T_DRAIN, kDrainIdleMs, drain_timeout);
    if (s->x && kx_rcx_queued(s->x) > KX_CONN_HIGH_WATER)
        pipes_pause(s);
}

static void pipes_resume(exec_session *s)
{
    if (!s->pipes_paused)
        return;
    s->pipes_paused = false;
    if (s->out_open)
        uv_read_start((uv_stream_t *)&s->out, out_alloc, out_read);
    if (s->err_open)
        uv_read_start((uv_stream_t *)&s->err, out_alloc, out_read);
}

// --- process input ---------------------------------------------------------

static void stdin_maybe_close(exec_session *s)
{
    if (s->stdin_eof && s->in_writes == 0)
        close_pipe(&s->in, &s->in_open);
}

static void stdin_written(void *user, size_t len, int)
{
    exec_session *s = (exec_session *)user;
    s->in_queued -= len;
    s->in_writes--;
    if (s->input_paused && s->in_queued < kStdinLowWater && s->x) {
        s->input_paused = false;
        kx_rcx_resume_input(s->x);
    }
    stdin_maybe_close(s);
    session_maybe_free(s);
}

static void stdin_write_bytes(exec_session *s, const uint8_t *p, size_t n)
{
    if (!s->in_open || n == 0)
        return;
    long queued = kx_uv_write_copy((uv_stream_t *)&s->in, p, n, stdin_written, s);
    if (queued <= 0)
        return;
    // The pipe is full: the command reads slower than the client sends. A
    // bigger pipe lets it read without waiting for each of our writes: a
    // stdin GiB into busybox `wc -c` (4 KiB reads) went 243-293 -> 325-362
    // MB/s (A/B, three alternated runs). Interactive input never fills it,
    // so its pipe stays small.
    grow_pipe(&s->in, &s->in_grown);
    s->in_writes++;
    s->in_queued += (size_t)queued;
    if (s->in_queued > kStdinHighWater && s->x && !s->input_paused) {
        s->input_paused = true;
        kx_rcx_pause_input(s->x);
    }
}

// --- the process -----------------------------------------------------------

static int open_pipe(exec_session *s, uv_pipe_t *p, int fd, bool *open)
{
    if (fd < 0)
        return 0;
    uv_pipe_init(s->node->loop, p, 0);
    p->data = s;
    s->open_handles++;
    *open = true;
    int r = uv_pipe_open(p, fd);
    if (r < 0) {
        close(fd);
        close_pipe(p, open);
    }
    return r;
}

static void on_process_exit(void *user, pid_t, int wstatus)
{
    exec_session *s = (exec_session *)user;
    s->exited = true;
    s->exit_code = kx_exit_code(wstatus);
    if (s->exit_code < 0)
        s->exit_code = 255;
    if (s->client_gone || s->finished) {
        if (s->timer_for == T_KILL)
            timer_stop(s);
        session_maybe_free(s);
        return;
    }
    if (s->out_open || s->err_open)
        timer_start(s, T_DRAIN, kDrainIdleMs, drain_timeout);
    maybe_finish(s);
}

static void session_spawn(exec_session *s)
{
    timer_stop(s);
    if (!s->target)
        return;   // started already
    char err[512];
    kx_container_ref ref = {};
    const char *ns = s->target, *pod = ns + strlen(ns) + 1, *ctr = pod + strlen(pod) + 1;
    if (kx_podmgr_find(s->node->pm, ns, pod, ctr, &ref, err, sizeof err) != 0) {
        free_spawn_args(s);
        session_finish(s, err);
        return;
    }
    kx_exec_req r = {};
    r.target = ref.pid;
    r.cgroup = ref.cgroup;
    r.argv = (const char *const *)s->argv;
    r.envp = ref.envp;
    r.workdir = ref.spec ? ref.spec->working_dir : nullptr;
    r.tty = s->rq.tty;
    r.in = s->rq.in;
    r.out = s->rq.out;
    r.err = s->rq.err && !s->rq.tty;
    r.cols = s->have_size ? s->cols : 0;
    r.rows = s->have_size ? s->rows : 0;
    int rc = kx_exec_spawn(&r, &s->proc, err, sizeof err);
    free_spawn_args(s);
    if (rc != 0) {
        session_finish(s, err);
        return;
    }
    s->spawned = true;
    kx_reaper_watch(s->proc.pid, on_process_exit, s);
    open_pipe(s, &s->out, s->proc.stdout_fd, &s->out_open);
    open_pipe(s, &s->err, s->proc.stderr_fd, &s->err_open);
    open_pipe(s, &s->in, s->proc.stdin_fd, &s->in_open);
    if (s->out_open)
        uv_read_start((uv_stream_t *)&s->out, out_alloc, out_read);
    if (s->err_open)
        uv_read_start((uv_stream_t *)&s->err, out_alloc, out_read);
    stdin_maybe_close(s);
}

static void tty_wait_timeout(uv_timer_t *t)
{
    session_spawn((exec_session *)t->data);
}

// --- rcx callbacks ---------------------------------------------------------

static void x_on_ready(void *user)
{
    exec_session *s = (exec_session *)user;
    if (s->rq.tty && !s->have_size) {
        // kubectl sends the terminal size right after the streams exist;
        // starting before it arrives would show the command a 0x0 terminal.
        timer_start(s, T_TTY_WAIT, kTtySizeWaitMs, tty_wait_timeout);
        return;
    }
    session_spawn(s);
}

static void x_on_stdin(void *user, const uint8_t *p, size_t n)
{
    exec_session *s = (exec_session *)user;
    stdin_write_bytes(s, p, n);
}

static void x_on_stdin_eof(void *user)
{
    exec_session *s = (exec_session *)user;
    s->stdin_eof = true;
    if (s->spawned)
        stdin_maybe_close(s);
}

static void x_on_resize(void *user, uint16_t cols, uint16_t rows)
{
    exec_session *s = (exec_session *)user;
    s->cols = cols;
    s->rows = rows;
    s->have_size = true;
    if (s->timer_for == T_TTY_WAIT) {
        session_spawn(s);
        return;
    }
    if (s->spawned && !s->exited && s->rq.tty && s->out_open)
        kx_pty_resize(s->proc.stdout_fd, cols, rows);
}

static void x_on_client_gone(void *user)
{
    session_client_gone((exec_session *)user);
}

static void x_on_drain(void *user)
{
    exec_session *s = (exec_session *)user;
    if (!s->finished)
        pipes_resume(s);
}

static void x_on_closed(void *user)
{
    exec_session *s = (exec_session *)user;
    s->x = nullptr;
    if (!s->finished)
        session_client_gone(s);
    session_maybe_free(s);
}

static const kx_rcx_callbacks x_cb = {x_on_ready, x_on_stdin, x_on_stdin_eof, x_on_resize,
                                      x_on_client_gone, x_on_drain, x_on_closed};

// --- session end -----------------------------------------------------------

static void session_finish(exec_session *s, const char *errmsg)
{
    if (s->finished)
        return;
    s->finished = true;
    timer_stop(s);
    close_pipe(&s->out, &s->out_open);
    close_pipe(&s->err, &s->err_open);
    s->stdin_eof = true;
    stdin_maybe_close(s);
    if (s->x)
        kx_rcx_finish(s->x, s->exit_code, errmsg);
    session_maybe_free(s);
}

static void kill_timeout(uv_timer_t *t)
{
    exec_session *s = (exec_session *)t->data;
    if (process_running(s) && s->proc.cmd_pid > 0) {
        kill(-s->proc.cmd_pid, SIGKILL);
        kill(s->proc.cmd_pid, SIGKILL);
    }
}

static void session_client_gone(exec_session *s)
{
    if (s->client_gone)
        return;
    s->client_gone = true;
    s->finished = true;
    timer_stop(s);
    if (s->x)
        kx_rcx_abort(s->x);
    if (process_running(s)) {
        // tty: hang the terminal up (SIGHUP to the session). Pipes: stdin
        // EOF now, SIGPIPE on the next write, SIGKILL after the grace.
        if (s->rq.tty && s->proc.cmd_pid > 0)
            kill(s->proc.cmd_pid, SIGHUP);
        timer_start(s, T_KILL, kKillGraceMs, kill_timeout);
    }
    close_pipe(&s->out, &s->out_open);
    close_pipe(&s->err, &s->err_open);
    s->stdin_eof = true;
    // Pending writes would keep stdin open; the process is going anyway.
    close_pipe(&s->in, &s->in_open);
    session_maybe_free(s);
}

// --- entry points ----------------------------------------------------------

void kx_node_exec(kx_node *node, kx_httpd_req *req, const char *ns, const char *pod,
                  const char *ctr, char **argv, const kx_rcx_request *rq)
{
    size_t nl = strlen(ns) + 1, pl = strlen(pod) + 1, cl = strlen(ctr) + 1;
    exec_session *s = (exec_session *)calloc(1, sizeof *s);
    char *target = (char *)malloc(nl + pl + cl);
    if (!s || !target) {
        for (size_t i = 0; argv[i]; i++)
            free(argv[i]);
        free(argv);
        free(target);
        free(s);
        kx_httpd_respond(req, 500, "text/plain", "out of memory", 13);
        return;
    }
    memcpy(target, ns, nl);
    memcpy(target + nl, pod, pl);
    memcpy(target + nl + pl, ctr, cl);
    s->node = node;
    s->rq = *rq;
    s->argv = argv;
    s->target = target;
    uv_timer_init(node->loop, &s->timer);
    s->timer.data = s;
    s->open_handles = 1;
    s->next = node->sessions;
    if (node->sessions)
        node->sessions->pprev = &s->next;
    node->sessions = s;
    s->pprev = &node->sessions;
    node->sessions_total++;
    node->sessions_active++;
    s->x = kx_rcx_upgrade(req, rq, &x_cb, s);
    if (!s->x) {
        // Answered with an error; nothing started.
        s->finished = true;
        session_maybe_free(s);
    }
}

static void (*g_stop_cb)(void *);
static void *g_stop_data;
static uv_timer_t g_stop_timer;

static void stop_poll(uv_timer_t *t)
{
    kx_node *n = (kx_node *)t->data;
    if (n->sessions)
        return;
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, nullptr);
    if (g_stop_cb)
        g_stop_cb(g_stop_data);
}

void kx_node_stop_sessions(kx_node *n, void (*cb)(void *), void *data)
{
    n->shutting_down = true;
    kx_heaptrim_close();
    for (exec_session *s = n->sessions; s; s = s->next) {
        if (!s->finished)
            session_client_gone(s);
    }
    g_stop_cb = cb;
    g_stop_data = data;
    uv_timer_init(n->loop, &g_stop_timer);
    g_stop_timer.data = n;
    uv_timer_start(&g_stop_timer, stop_poll, 0, 50);
}
