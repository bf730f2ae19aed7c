// The kubelet-style streaming endpoints of kubexec-node: /exec over SPDY/3.1
// (channel.k8s.io v1-v4).
//
// One exec_session per upgraded connection. It owns the remotecommand engine,
// the process's stdio pipes (libuv), one timer and, through the reaper, the
// process. Data path: pipe -> kx_rc_stdout -> SPDY DATA -> TLS -> socket, with
// back-pressure both ways: the pipes stop being read while the socket's write
// queue is above its high watermark, and the socket stops being read while the
// process's stdin pipe has more than kStdinHighWater bytes queued.
//
// A session ends one way (protocol.md §3.5): process exit -> drain stdout and
// stderr -> FIN them -> status on the error stream -> GOAWAY -> close. When
// the client goes first, the process gets SIGHUP (tty: its pty closes) or
// stdin EOF and SIGPIPE (its output pipes close), and SIGKILL after
// kKillGraceMs; the session is freed once the process was reaped.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "executor.h"
#include "kubexec/http1.h"
#include "kubexec/remotecommand.h"
#include "node.h"
#include "reaper.h"

static const uint64_t kStreamCreationMs = 30000; // upstream DefaultStreamCreationTimeout
static const uint64_t kTtySizeWaitMs = 1000;     // wait this long for the first resize
static const uint64_t kDrainIdleMs = 1000;       // output idle this long after exit: done
static const uint64_t kKillGraceMs = 2000;       // client gone: SIGKILL after this
static const size_t kStdinHighWater = 1024 * 1024;
static const size_t kStdinLowWater = 256 * 1024;
static const size_t kMaxArgs = 1024;

enum timer_purpose { T_NONE, T_CREATE, T_TTY_WAIT, T_DRAIN, T_KILL };

struct exec_session {
    kx_node *node;
    exec_session *next, **pprev;
    kx_conn *conn;              // null once closed
    kx_rc_session *rc;
    kx_rc_opts opts;
    char ns[254], pod[254], ctr[254];
    char **argv;                // owned, null-terminated
    kx_exec_proc proc;
    int exit_code;
    bool spawned, exited, finished, client_gone;
    bool stdin_eof;             // client sent EOF (apply once queued writes are done)
    bool conn_paused, pipes_paused;
    bool have_size;
    uint16_t cols, rows;
    uv_pipe_t out, err, in;
    bool out_open, err_open, in_open;
    size_t in_queued;           // bytes in the stdin pipe's write queue
    int in_writes;              // write requests in flight
    kx_buf early_stdin;         // stdin that arrived before the process started
    uv_timer_t timer;
    timer_purpose timer_for;
    int open_handles;           // pipes + timer not yet closed
    bool freeing;
    uint8_t readbuf[32 * 1024]; // one SPDY DATA frame's worth
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

static void close_pipe(exec_session *, uv_pipe_t *p, bool *open)
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

static bool process_running(const exec_session *s)
{
    return s->spawned && !s->exited;
}

static void session_maybe_free(exec_session *s)
{
    if (s->conn || process_running(s) || s->out_open || s->err_open || s->in_open)
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
    s->node->sessions_active--;
    kx_rc_free(s->rc);
    for (size_t i = 0; s->argv && s->argv[i]; i++)
        free(s->argv[i]);
    free(s->argv);
    kx_buf_free(&s->early_stdin);
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

static void out_alloc(uv_handle_t *h, size_t, uv_buf_t *b)
{
    exec_session *s = (exec_session *)h->data;
    b->base = (char *)s->readbuf;
    b->len = sizeof s->readbuf;
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
    close_pipe(s, &s->out, &s->out_open);
    close_pipe(s, &s->err, &s->err_open);
    session_finish(s, nullptr);
}

static void out_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    exec_session *s = (exec_session *)st->data;
    bool is_err = st == (uv_stream_t *)&s->err;
    if (n < 0) {
        // EOF, or EIO from a pty master whose slave side is gone.
        if (is_err)
            close_pipe(s, &s->err, &s->err_open);
        else
            close_pipe(s, &s->out, &s->out_open);
        maybe_finish(s);
        return;
    }
    if (n == 0 || s->finished)
        return;
    if (is_err)
        kx_rc_stderr(s->rc, (const uint8_t *)b->base, (size_t)n);
    else
        kx_rc_stdout(s->rc, (const uint8_t *)b->base, (size_t)n);
    if (s->exited && s->timer_for == T_DRAIN)
        timer_start(s, T_DRAIN, kDrainIdleMs, drain_timeout);
    if (s->conn && kx_conn_queued(s->conn) > KX_CONN_HIGH_WATER)
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

struct stdin_write {
    uv_write_t req;
    exec_session *s;
    size_t len;
};

static void stdin_maybe_close(exec_session *s)
{
    if (s->stdin_eof && s->in_writes == 0)
        close_pipe(s, &s->in, &s->in_open);
}

static void stdin_written(uv_write_t *req, int)
{
    stdin_write *w = (stdin_write *)req->data;
    exec_session *s = w->s;
    s->in_queued -= w->len;
    s->in_writes--;
    free(w);
    if (s->conn_paused && s->in_queued < kStdinLowWater && s->conn) {
        s->conn_paused = false;
        kx_conn_resume(s->conn);
    }
    stdin_maybe_close(s);
    session_maybe_free(s);
}

static void stdin_write_bytes(exec_session *s, const uint8_t *p, size_t n)
{
    if (!s->in_open || n == 0)
        return;
    stdin_write *w = (stdin_write *)malloc(sizeof *w + n);
    if (!w)
        return;
    memcpy(w + 1, p, n);
    w->s = s;
    w->len = n;
    w->req.data = w;
    uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&s->in, &b, 1, stdin_written) < 0) {
        free(w);
        return;
    }
    s->in_writes++;
    s->in_queued += n;
    if (s->in_queued > kStdinHighWater && s->conn && !s->conn_paused) {
        s->conn_paused = true;
        kx_conn_pause(s->conn);
    }
}

// --- remotecommand callbacks -----------------------------------------------

static int rc_send(void *user, const uint8_t *hdr, size_t hl, const uint8_t *payload, size_t pl)
{
    exec_session *s = (exec_session *)user;
    if (!s->conn)
        return -EPIPE;
    return kx_conn_write2(s->conn, hdr, hl, payload, pl);
}

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
        close_pipe(s, p, open);
    }
    return r;
}

static void on_process_exit(void *user, pid_t, int wstatus)
{
    exec_session *s = (exec_session *)user;
    s->exited = true;
    s->exit_code = kx_exit_code(wstatus);
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
    char err[512];
    kx_container_ref ref = {};
    if (kx_podmgr_find(s->node->pm, s->ns, s->pod, s->ctr, &ref, err, sizeof err) != 0) {
        session_finish(s, err);
        return;
    }
    kx_exec_req r = {};
    r.target = ref.pid;
    r.cgroup = ref.cgroup;
    r.argv = (const char *const *)s->argv;
    r.envp = ref.envp;
    r.workdir = ref.spec ? ref.spec->working_dir : nullptr;
    r.tty = s->opts.tty;
    r.in = s->opts.in;
    r.out = s->opts.out;
    r.err = s->opts.err && !s->opts.tty;
    r.cols = s->have_size ? s->cols : 0;
    r.rows = s->have_size ? s->rows : 0;
    if (kx_exec_spawn(&r, &s->proc, err, sizeof err) != 0) {
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
    if (s->early_stdin.len)
        stdin_write_bytes(s, s->early_stdin.data, s->early_stdin.len);
    kx_buf_free(&s->early_stdin);
    if (!s->opts.in && s->in_open)
        s->stdin_eof = true;
    stdin_maybe_close(s);
}

static void tty_wait_timeout(uv_timer_t *t)
{
    session_spawn((exec_session *)t->data);
}

static void rc_on_ready(void *user)
{
    exec_session *s = (exec_session *)user;
    timer_stop(s);
    if (s->opts.tty && s->opts.proto >= KX_RC_V3 && !s->have_size) {
        // kubectl sends the terminal size right after the streams exist;
        // starting before it arrives would show the command a 0x0 terminal.
        timer_start(s, T_TTY_WAIT, kTtySizeWaitMs, tty_wait_timeout);
        return;
    }
    session_spawn(s);
}

static void rc_on_stdin(void *user, const uint8_t *p, size_t n)
{
    exec_session *s = (exec_session *)user;
    if (s->spawned) {
        stdin_write_bytes(s, p, n);
        return;
    }
    if (kx_buf_append(&s->early_stdin, p, n, kStdinHighWater) < 0 && s->conn && !s->conn_paused) {
        // Too much before the process exists: stop reading until it does.
        s->conn_paused = true;
        kx_conn_pause(s->conn);
    }
}

static void rc_on_stdin_eof(void *user)
{
    exec_session *s = (exec_session *)user;
    s->stdin_eof = true;
    // A pty has no half-close: its stdin end is just our dup of the master.
    if (s->spawned)
        stdin_maybe_close(s);
}

static void rc_on_resize(void *user, uint16_t cols, uint16_t rows)
{
    exec_session *s = (exec_session *)user;
    s->cols = cols;
    s->rows = rows;
    s->have_size = true;
    if (s->timer_for == T_TTY_WAIT) {
        session_spawn(s);
        return;
    }
    if (s->spawned && !s->exited && s->opts.tty && s->out_open)
        kx_pty_resize(s->proc.stdout_fd, cols, rows);
}

static void rc_on_goaway(void *user)
{
    exec_session *s = (exec_session *)user;
    if (!s->finished)
        session_client_gone(s);
}

static const kx_rc_callbacks rc_cb = {rc_send, rc_on_ready, rc_on_stdin, rc_on_stdin_eof,
                                      rc_on_resize, rc_on_goaway};

// --- session end -----------------------------------------------------------

static void session_finish(exec_session *s, const char *errmsg)
{
    if (s->finished)
        return;
    s->finished = true;
    timer_stop(s);
    close_pipe(s, &s->out, &s->out_open);
    close_pipe(s, &s->err, &s->err_open);
    s->stdin_eof = true;
    stdin_maybe_close(s);
    if (s->conn) {
        kx_rc_finish(s->rc, s->exit_code, errmsg);
        kx_conn_close(s->conn);
    }
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
    if (s->conn)
        kx_conn_close(s->conn);
    if (process_running(s)) {
        // tty: closing the master hangs the terminal up (SIGHUP to the
        // session). Pipes: stdin EOF, and SIGPIPE on the next write.
        if (s->opts.tty && s->proc.cmd_pid > 0)
            kill(s->proc.cmd_pid, SIGHUP);
        timer_start(s, T_KILL, kKillGraceMs, kill_timeout);
    }
    close_pipe(s, &s->out, &s->out_open);
    close_pipe(s, &s->err, &s->err_open);
    s->stdin_eof = true;
    if (s->in_open && s->in_writes > 0) {
        // Pending writes would keep stdin open; the process is going anyway.
        close_pipe(s, &s->in, &s->in_open);
    }
    stdin_maybe_close(s);
    session_maybe_free(s);
}

// --- connection callbacks --------------------------------------------------

static void sc_data(kx_conn *c, const uint8_t *p, size_t n)
{
    exec_session *s = (exec_session *)kx_conn_user(c);
    if (kx_rc_recv(s->rc, p, n) < 0) {
        // A peer that breaks SPDY gets no more of our time.
        session_client_gone(s);
    }
}

static void sc_end(kx_conn *c, int)
{
    exec_session *s = (exec_session *)kx_conn_user(c);
    if (!s->finished)
        session_client_gone(s);
    else
        kx_conn_close(c);
}

static void sc_drain(kx_conn *c)
{
    exec_session *s = (exec_session *)kx_conn_user(c);
    if (!s->finished)
        pipes_resume(s);
}

static void sc_close(kx_conn *c)
{
    exec_session *s = (exec_session *)kx_conn_user(c);
    s->conn = nullptr;
    if (!s->finished)
        session_client_gone(s);
    session_maybe_free(s);
}

static const kx_conn_callbacks session_conn_cb = {nullptr, sc_data, sc_end, sc_drain, sc_close};

static void create_timeout(uv_timer_t *t)
{
    exec_session *s = (exec_session *)t->data;
    fprintf(stderr, "kubexec-node: exec %s/%s/%s: timed out waiting for client to create streams\n",
            s->ns, s->pod, s->ctr);
    session_client_gone(s);
}

// --- request handling ------------------------------------------------------

static void respond_text(kx_httpd_req *req, int code, const char *msg)
{
    kx_httpd_respond(req, code, "text/plain; charset=utf-8", msg, strlen(msg));
}

static int split_path(const char *path, const char *prefix, char parts[][254], int maxparts)
{
    size_t pl = strlen(prefix);
    if (strncmp(path, prefix, pl) != 0)
        return -1;
    const char *p = path + pl;
    int n = 0;
    while (*p && n < maxparts) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || len >= 254)
            return -1;
        memcpy(parts[n], p, len);
        parts[n][len] = 0;
        n++;
        if (!slash)
            return n;
        p = slash + 1;
    }
    return *p ? -1 : n;
}

static void free_argv(char **argv)
{
    for (size_t i = 0; argv && argv[i]; i++)
        free(argv[i]);
    free(argv);
}

static void handle_exec(kx_node *node, kx_httpd_req *req, const char *ns, const char *pod,
                        const char *ctr)
{
    const kx_http_head *h = req->head;
    kx_rc_opts opts = {};
    char key[64];
    static char val[64 * 1024];
    char **argv = (char **)calloc(kMaxArgs + 1, sizeof *argv);
    size_t argc = 0;
    if (!argv) {
        respond_text(req, 500, "out of memory");
        return;
    }
    const char *cur = req->query;
    int r;
    while ((r = kx_query_next(&cur, key, sizeof key, val, sizeof val)) > 0) {
        if (strcmp(key, "command") == 0) {
            if (argc == kMaxArgs) {
                r = -E2BIG;
                break;
            }
            argv[argc++] = strdup(val);
        } else if (strcmp(key, "input") == 0) {
            opts.in = strcmp(val, "1") == 0;
        } else if (strcmp(key, "output") == 0) {
            opts.out = strcmp(val, "1") == 0;
        } else if (strcmp(key, "error") == 0) {
            opts.err = strcmp(val, "1") == 0;
        } else if (strcmp(key, "tty") == 0) {
            opts.tty = strcmp(val, "1") == 0;
        }
    }
    if (r < 0) {
        free_argv(argv);
        respond_text(req, 400, "invalid query parameters");
        return;
    }
    if (!opts.in && !opts.out && !opts.err) {
        free_argv(argv);
        respond_text(req, 400, "you must specify at least 1 of stdin, stdout, stderr");
        return;
    }
    if (argc == 0) {
        free_argv(argv);
        respond_text(req, 400, "command is required");
        return;
    }
    char err[512];
    kx_container_ref ref = {};
    r = kx_podmgr_find(node->pm, ns, pod, ctr, &ref, err, sizeof err);
    if (r == -ENOENT) {
        free_argv(argv);
        respond_text(req, 404, err);
        return;
    }
    if (r != 0) {
        free_argv(argv);
        respond_text(req, 500, err);
        return;
    }
    if (!h->upgrade || !kx_http_has_token(h, "Connection", "upgrade")) {
        free_argv(argv);
        respond_text(req, 400, "unable to upgrade: missing upgrade headers in request");
        return;
    }
    const char *up = kx_http_get(h, "Upgrade");
    if (!up || strcasestr(up, "spdy/3.1") == nullptr) {
        // WebSocket is not served yet (the API server refuses it before us).
        free_argv(argv);
        respond_text(req, 400, "unable to upgrade: only SPDY/3.1 is supported");
        return;
    }
    const char *offers[32];
    size_t noffers = kx_http_get_all(h, "X-Stream-Protocol-Version", offers, 32);
    if (noffers > 32)
        noffers = 32;
    int proto = kx_rc_negotiate(offers, noffers);
    if (proto == -EINVAL || noffers == 0) {
        free_argv(argv);
        respond_text(req, 400, "unable to upgrade: header X-Stream-Protocol-Version is required");
        return;
    }
    if (proto < 0) {
        free_argv(argv);
        kx_http_header hd[5] = {{"Content-Type", "text/plain; charset=utf-8"},
                                {"X-Accepted-Stream-Protocol-Versions", "v4.channel.k8s.io"},
                                {"X-Accepted-Stream-Protocol-Versions", "v3.channel.k8s.io"},
                                {"X-Accepted-Stream-Protocol-Versions", "v2.channel.k8s.io"},
                                {"X-Accepted-Stream-Protocol-Versions", "channel.k8s.io"}};
        static const char msg[] = "unable to upgrade: unable to negotiate protocol";
        kx_httpd_respond_hdrs(req, 403, hd, 5, msg, sizeof msg - 1, false);
        return;
    }
    opts.proto = proto;

    exec_session *s = (exec_session *)calloc(1, sizeof *s);
    if (!s) {
        free_argv(argv);
        respond_text(req, 500, "out of memory");
        return;
    }
    s->node = node;
    s->opts = opts;
    s->argv = argv;
    kx_strlcpy(s->ns, ns, sizeof s->ns);
    kx_strlcpy(s->pod, pod, sizeof s->pod);
    kx_strlcpy(s->ctr, ctr, sizeof s->ctr);
    s->rc = kx_rc_new(&opts, &rc_cb, s);
    if (!s->rc) {
        free_argv(argv);
        free(s);
        respond_text(req, 500, "out of memory");
        return;
    }
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

    const uint8_t *extra = req->extra;
    size_t extra_len = req->extra_len;
    s->conn = kx_httpd_hijack(req);
    kx_conn_set_user(s->conn, s, &session_conn_cb);
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                      "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: %s\r\n\r\n",
                      kx_rc_proto_name(proto));
    kx_conn_write(s->conn, (const uint8_t *)head, (size_t)hl);
    timer_start(s, T_CREATE, kStreamCreationMs, create_timeout);
    if (extra_len && kx_rc_recv(s->rc, extra, extra_len) < 0)
        session_client_gone(s);
}

void kx_node_handle(void *user, kx_httpd_req *req)
{
    kx_node *node = (kx_node *)user;
    if (strcmp(req->peer_cn, KX_NODE_ALLOWED_CLIENT_CN) != 0) {
        respond_text(req, 403, "Forbidden: only the API server may use this endpoint");
        return;
    }
    if (node->shutting_down) {
        respond_text(req, 503, "node is shutting down");
        return;
    }
    const char *m = req->head->method;
    char parts[4][254];
    int n;
    if ((n = split_path(req->path, "/exec/", parts, 4)) == 3 || n == 4) {
        if (strcmp(m, "GET") != 0 && strcmp(m, "POST") != 0) {
            respond_text(req, 405, "method not allowed");
            return;
        }
        // /exec/{ns}/{pod}/{uid}/{container} carries the uid we ignore.
        handle_exec(node, req, parts[0], parts[1], n == 4 ? parts[3] : parts[2]);
        return;
    }
    if (strcmp(req->path, "/healthz") == 0) {
        respond_text(req, 200, "ok");
        return;
    }
    respond_text(req, 404, "404 page not found");
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
