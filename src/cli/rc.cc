// remotecommand, client side: one exec/attach session over WebSocket v5 or
// SPDY/3.1 v4 (contract in rc.h; wire facts in protocol.md §3-§4).
//
// Local I/O: stdout/stderr are written with plain blocking write(2). A CLI
// has exactly one session, so a slow reader of our stdout simply stops us
// reading the socket, which is the back-pressure we want toward the
// container. stdin is read when poll says it is readable (ttys, pipes,
// sockets) or, for a regular file or /dev/null that epoll refuses, from an
// idle handle; either stops while the socket's write queue is above its high
// watermark and resumes from on_drain.
#include "rc.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "kubexec/spdy.h"
#include "kubexec/ws.h"

static const size_t kReadChunk = 32 * 1024;
// Most bytes of a Status we keep from the error channel.
static const size_t kMaxStatus = 64 * 1024;
// SPDY: how long the server may take to accept our streams (kubectl and the
// kubelet both use 30 s for stream creation).
static const uint64_t kStreamSetupMs = 30000;

// ---- Terminal ----------------------------------------------------------------

static struct termios g_saved_tio;
static int g_raw_fd = -1;

void kx_cli_term_restore(void)
{
    if (g_raw_fd >= 0) {
        tcsetattr(g_raw_fd, TCSADRAIN, &g_saved_tio);
        g_raw_fd = -1;
    }
}

static void term_fatal_signal(int sig)
{
    kx_cli_term_restore();
    signal(sig, SIG_DFL);
    raise(sig);
}

int kx_cli_term_raw(int fd)
{
    struct termios t;
    if (tcgetattr(fd, &t) < 0)
        return -errno;
    g_saved_tio = t;
    cfmakeraw(&t);
    if (tcsetattr(fd, TCSADRAIN, &t) < 0)
        return -errno;
    g_raw_fd = fd;
    static bool hooked;
    if (!hooked) {
        hooked = true;
        atexit(kx_cli_term_restore);
        // In raw mode ^C is a byte for the remote side, so these come only
        // from kill(1) or a hangup: restore the terminal, then die of them.
        int sigs[] = {SIGTERM, SIGHUP, SIGQUIT, SIGINT, SIGABRT, SIGSEGV, SIGBUS};
        for (int s : sigs)
            signal(s, term_fatal_signal);
    }
    return 0;
}

// ---- Session -------------------------------------------------------------------

struct rc_sess {
    kx_cli *c;
    const kx_cli_rc_opts *o;
    kx_conn *conn;
    bool ws;
    kx_ws_session *wss;
    kx_spdy_session *spdy;
    // SPDY stream ids (0 = not opened).
    uint32_t sid_error, sid_in, sid_out, sid_err, sid_resize;
    int replies_missing;
    bool started;            // every stream is set up: stdin may flow
    kx_buf status;           // error channel bytes
    bool status_eof, out_eof, err_eof;
    bool conn_ended, conn_closed, ws_closed_ok;
    int conn_error;
    bool proto_error;
    char proto_msg[200];
    // stdin
    uv_poll_t in_poll;
    uv_idle_t in_idle;
    bool in_poll_init, in_idle_init, in_reading, in_eof_sent, in_is_file;
    uint8_t *inbuf;
    // resize
    uv_signal_t winch;
    bool winch_init;
    // out pipe broken: die of SIGPIPE as kubectl (Go) would
    bool sigpipe;
    uv_timer_t setup_timer;    // SPDY stream setup bound
    bool setup_timer_init;
    uint64_t moved;            // bytes of stdin sent + stdout written
    uv_timer_t progress_timer; // cp's progress line
    bool progress_init, progress_shown;
};

static void progress_print(rc_sess *s, bool last)
{
    double mb = (double)s->moved / 1e6;
    fprintf(stderr, "\r%s: %.1f MB%s", s->o->progress, mb, last ? "\n" : "");
    s->progress_shown = true;
}

static void out_bytes(rc_sess *s, int fd, const uint8_t *p, size_t n)
{
    if (n == 0 || s->sigpipe)
        return;
    if (fd == s->o->out_fd)
        s->moved += n;
    if (kx_cli_write_all(fd, p, n) == -EPIPE)
        s->sigpipe = true;
}

// Output of either engine (WebSocket frames, SPDY frames) to the connection.
static int send_cb(void *user, const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    rc_sess *s = (rc_sess *)user;
    if (s->conn)
        kx_conn_write2(s->conn, a, an, b, bn);
    return 0;
}

// ---- stdin ---------------------------------------------------------------------

static void in_stop(rc_sess *s);
static void in_start(rc_sess *s);

static void send_stdin(rc_sess *s, const uint8_t *p, size_t n)
{
    if (s->ws) {
        static const uint8_t ch0 = 0;
        kx_ws_send(s->wss, KX_WS_BINARY, &ch0, 1, p, n);
    } else {
        kx_spdy_data(s->spdy, s->sid_in, p, n, false);
    }
}

static void send_stdin_eof(rc_sess *s)
{
    if (s->in_eof_sent)
        return;
    s->in_eof_sent = true;
    if (s->ws) {
        static const uint8_t close0[2] = {255, 0};
        kx_ws_send(s->wss, KX_WS_BINARY, nullptr, 0, close0, 2);
    } else {
        kx_spdy_data(s->spdy, s->sid_in, nullptr, 0, true);
    }
}

// Reads one chunk; false when reading should stop (EOF or error).
static bool in_read_once(rc_sess *s)
{
    ssize_t r = read(s->o->in_fd, s->inbuf, kReadChunk);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (r <= 0) {
        in_stop(s);
        send_stdin_eof(s);
        return false;
    }
    send_stdin(s, s->inbuf, (size_t)r);
    s->moved += (uint64_t)r;
    if (s->conn && kx_conn_queued(s->conn) > KX_CONN_HIGH_WATER)
        in_stop(s);
    return true;
}

static void in_poll_cb(uv_poll_t *h, int status, int)
{
    rc_sess *s = (rc_sess *)h->data;
    if (status < 0) {
        in_stop(s);
        send_stdin_eof(s);
        return;
    }
    in_read_once(s);
}

static void in_idle_cb(uv_idle_t *h)
{
    rc_sess *s = (rc_sess *)h->data;
    // A regular file never blocks: read a few chunks per loop turn.
    for (int i = 0; i < 8 && s->in_reading; i++)
        if (!in_read_once(s))
            break;
}

static void in_start(rc_sess *s)
{
    if (s->in_reading || s->in_eof_sent || !s->o->in || !s->started)
        return;
    s->in_reading = true;
    if (s->in_is_file)
        uv_idle_start(&s->in_idle, in_idle_cb);
    else
        uv_poll_start(&s->in_poll, UV_READABLE, in_poll_cb);
}

static void in_stop(rc_sess *s)
{
    if (!s->in_reading)
        return;
    s->in_reading = false;
    if (s->in_is_file)
        uv_idle_stop(&s->in_idle);
    else
        uv_poll_stop(&s->in_poll);
}

// ---- resize --------------------------------------------------------------------

static void send_size(rc_sess *s)
{
    struct winsize ws;
    if (ioctl(s->o->in_fd, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0)
        return;
    char j[64];
    int n = snprintf(j, sizeof j, "{\"Width\":%u,\"Height\":%u}\n", ws.ws_col, ws.ws_row);
    if (s->ws) {
        static const uint8_t ch4 = 4;
        kx_ws_send(s->wss, KX_WS_BINARY, &ch4, 1, (const uint8_t *)j, (size_t)n);
    } else if (s->sid_resize) {
        kx_spdy_data(s->spdy, s->sid_resize, (const uint8_t *)j, (size_t)n, false);
    }
}

static void winch_cb(uv_signal_t *h, int)
{
    send_size((rc_sess *)h->data);
}

static void session_started(rc_sess *s)
{
    s->started = true;
    // A progress line only for a person watching (stderr is a terminal).
    if (s->o->progress && isatty(2)) {
        uv_timer_init(s->c->loop, &s->progress_timer);
        s->progress_timer.data = s;
        s->progress_init = true;
        uv_timer_start(&s->progress_timer, [](uv_timer_t *t) {
            progress_print((rc_sess *)t->data, false);
        }, 500, 500);
    }
    if (s->o->tty && s->o->in) {
        send_size(s);
        uv_signal_init(s->c->loop, &s->winch);
        s->winch.data = s;
        s->winch_init = true;
        uv_signal_start(&s->winch, winch_cb, SIGWINCH);
    }
    in_start(s);
}

// ---- WebSocket -------------------------------------------------------------------


static void ws_message(void *user, int opcode, const uint8_t *p, size_t n)
{
    rc_sess *s = (rc_sess *)user;
    if (opcode != KX_WS_BINARY) {
        s->proto_error = true;
        snprintf(s->proto_msg, sizeof s->proto_msg, "unexpected message type: %d", opcode);
        kx_ws_close(s->wss, KX_WS_PROTOCOL_ERROR, nullptr);
        return;
    }
    if (n == 0)
        return;
    switch (p[0]) {
    case 1: out_bytes(s, s->o->out_fd, p + 1, n - 1); break;
    case 2: out_bytes(s, s->o->err_fd, p + 1, n - 1); break;
    case 3:
        if (kx_buf_append(&s->status, p + 1, n - 1, kMaxStatus) < 0)
            s->status.len = 0;
        break;
    default: break;   // unknown channels are ignored, as kubectl does
    }
}

static void ws_close_cb(void *user, uint16_t code)
{
    rc_sess *s = (rc_sess *)user;
    // 1000 is EOF on every channel; anything else is a failure.
    if (code == KX_WS_NORMAL) {
        s->ws_closed_ok = true;
        s->status_eof = s->out_eof = s->err_eof = true;
    } else {
        s->proto_error = true;
        snprintf(s->proto_msg, sizeof s->proto_msg, "websocket: close %u", code);
    }
    in_stop(s);
    if (s->conn)
        kx_conn_close(s->conn);
}

// ---- SPDY ------------------------------------------------------------------------


static void spdy_reply(void *user, uint32_t, const kx_spdy_nv *, size_t, bool)
{
    rc_sess *s = (rc_sess *)user;
    if (--s->replies_missing == 0)
        session_started(s);
}

static void spdy_stream_eof(rc_sess *s, uint32_t id)
{
    if (id == s->sid_error)
        s->status_eof = true;
    else if (id == s->sid_out)
        s->out_eof = true;
    else if (id == s->sid_err)
        s->err_eof = true;
    else if (id == s->sid_in)
        in_stop(s);   // the server will not read more stdin
}

static void spdy_data(void *user, uint32_t id, const uint8_t *p, size_t n)
{
    rc_sess *s = (rc_sess *)user;
    if (id == s->sid_out)
        out_bytes(s, s->o->out_fd, p, n);
    else if (id == s->sid_err)
        out_bytes(s, s->o->err_fd, p, n);
    else if (id == s->sid_error && kx_buf_append(&s->status, p, n, kMaxStatus) < 0)
        s->status.len = 0;
}

static void spdy_fin(void *user, uint32_t id)
{
    spdy_stream_eof((rc_sess *)user, id);
}

static void spdy_rst(void *user, uint32_t id, uint32_t)
{
    rc_sess *s = (rc_sess *)user;
    // A kubelet resets streams when it closes the connection after the
    // status; a reset error stream with no status at all lost it.
    if (id == s->sid_error && s->status.len == 0 && !s->proto_error) {
        s->proto_error = true;
        snprintf(s->proto_msg, sizeof s->proto_msg,
                 "the server reset the error stream before sending the command's status");
    }
    spdy_stream_eof(s, id);
}

static void spdy_goaway(void *user, uint32_t, uint32_t)
{
    // No more data will come; the error stream counts as ended only if its
    // FIN arrived (a GOAWAY before the status is a lost session, not a
    // success).
    rc_sess *s = (rc_sess *)user;
    s->out_eof = s->err_eof = true;
    in_stop(s);
    if (!s->status_eof && s->conn)
        kx_conn_close(s->conn);
}

// ---- Connection ------------------------------------------------------------------

static void s_data(kx_conn *conn, const uint8_t *p, size_t n)
{
    rc_sess *s = (rc_sess *)kx_conn_user(conn);
    int r = s->ws ? kx_ws_recv(s->wss, p, n) : kx_spdy_recv(s->spdy, p, n);
    if (r < 0 && !s->proto_error) {
        s->proto_error = true;
        snprintf(s->proto_msg, sizeof s->proto_msg, "%s protocol error: %s",
                 s->ws ? "websocket" : "spdy", strerror(-r));
        kx_conn_abort(conn);
    }
}

static void s_end(kx_conn *conn, int status)
{
    rc_sess *s = (rc_sess *)kx_conn_user(conn);
    s->conn_ended = true;
    s->conn_error = status;
    in_stop(s);
    kx_conn_close(conn);
}

static void s_drain(kx_conn *conn)
{
    in_start((rc_sess *)kx_conn_user(conn));
}

static void s_closed(kx_conn *conn)
{
    rc_sess *s = (rc_sess *)kx_conn_user(conn);
    s->conn = nullptr;
    s->conn_closed = true;
    s->conn_ended = true;
    in_stop(s);
}

static const kx_conn_callbacks s_conn_cb = {nullptr, s_data, s_end, s_drain, s_closed};

// ---- Status ------------------------------------------------------------------------

// Decodes the v4/v5 Status as client-go's errorDecoderV4 does; prints and
// returns the exit code.
static int decode_status(rc_sess *s)
{
    if (s->status.len == 0)
        return 0;
    json_object *o = kx_cli_json(s->status.data, s->status.len);
    int rc = 1;
    json_object *st = nullptr, *reason = nullptr, *msg = nullptr, *details = nullptr,
                *causes = nullptr;
    if (!o || !json_object_is_type(o, json_type_object)) {
        fprintf(stderr, "error: error stream protocol error: invalid status in \"%.*s\"\n",
                (int)(s->status.len > 200 ? 200 : s->status.len), (const char *)s->status.data);
        json_object_put(o);
        return 1;
    }
    json_object_object_get_ex(o, "status", &st);
    json_object_object_get_ex(o, "reason", &reason);
    json_object_object_get_ex(o, "message", &msg);
    const char *sts = st ? json_object_get_string(st) : "";
    const char *rs = reason ? json_object_get_string(reason) : "";
    if (strcmp(sts, "Success") == 0) {
        rc = 0;
    } else if (strcmp(sts, "Failure") == 0 && strcmp(rs, "NonZeroExitCode") == 0) {
        long code = -1;
        if (json_object_object_get_ex(o, "details", &details) &&
            json_object_object_get_ex(details, "causes", &causes) &&
            json_object_is_type(causes, json_type_array)) {
            for (size_t i = 0; i < json_object_array_length(causes); i++) {
                json_object *cz = json_object_array_get_idx(causes, i), *cr, *cm;
                if (json_object_object_get_ex(cz, "reason", &cr) &&
                    strcmp(json_object_get_string(cr), "ExitCode") == 0 &&
                    json_object_object_get_ex(cz, "message", &cm)) {
                    char *end;
                    const char *v = json_object_get_string(cm);
                    code = strtol(v, &end, 10);
                    if (*end || end == v || code < 0 || code > 255)
                        code = -2;
                    break;
                }
            }
        }
        if (code == -1) {
            fputs("error: no ExitCode cause given\n", stderr);
        } else if (code == -2) {
            fputs("error: invalid exit code value\n", stderr);
        } else {
            if (!s->o->quiet)
                fprintf(stderr, "command terminated with exit code %ld\n", code);
            rc = (int)code;
        }
    } else if (strcmp(sts, "Failure") == 0) {
        fprintf(stderr, "error: %s\n", msg ? json_object_get_string(msg) : "unknown error");
    } else {
        fputs("error: error stream protocol error: unknown error\n", stderr);
    }
    json_object_put(o);
    return rc;
}

// ---- Upgrade -------------------------------------------------------------------------

// The query both transports carry.
static int build_path(kx_cli *, const kx_cli_rc_opts *o, char *out, size_t cap)
{
    int pl = kx_cli_pod_path(out, cap, o->ns, o->pod, o->subresource);
    if (pl < 0 || (size_t)pl + 11 >= cap)
        return -EMSGSIZE;
    size_t n = (size_t)pl + (size_t)snprintf(out + pl, cap - (size_t)pl, "?container=");
    int ce = kx_cli_qesc(out + n, cap - n, o->container);
    if (ce < 0)
        return -EMSGSIZE;
    n += (size_t)ce;
    for (int i = 0; i < o->ncommand; i++) {
        if (n + 9 >= cap)
            return -EMSGSIZE;
        n += (size_t)snprintf(out + n, cap - n, "&command=");
        int e = kx_cli_qesc(out + n, cap - n, o->command[i]);
        if (e < 0)
            return -EMSGSIZE;
        n += (size_t)e;
    }
    int e = snprintf(out + n, cap - n, "%s%s%s%s", o->in ? "&stdin=true" : "",
                     o->out ? "&stdout=true" : "", o->err && !o->tty ? "&stderr=true" : "",
                     o->tty ? "&tty=true" : "");
    if (e < 0 || (size_t)e >= cap - n)
        return -EMSGSIZE;
    return 0;
}

// Prints the SPDY attempt's refusal as kubectl does (clients.md §6).
static int upgrade_refused(const kx_cli_resp *r)
{
    const char *ct = kx_http_get(r->head, "Content-Type");
    if (ct && strstr(ct, "json"))
        return kx_cli_api_error(r);
    fprintf(stderr, "error: unable to upgrade connection: %.*s\n",
            (int)(r->body_len > 1024 ? 1024 : r->body_len), (const char *)r->body);
    return 1;
}

static int run_session(rc_sess *s)
{
    kx_cli *c = s->c;
    const kx_cli_rc_opts *o = s->o;
    s->inbuf = (uint8_t *)malloc(kReadChunk);
    if (o->in) {
        uv_poll_init(c->loop, &s->in_poll, o->in_fd) == 0 ? (void)(s->in_poll_init = true)
                                                         : (void)0;
        if (!s->in_poll_init) {
            s->in_is_file = true;
            uv_idle_init(c->loop, &s->in_idle);
            s->in_idle_init = true;
            s->in_idle.data = s;
        } else {
            s->in_poll.data = s;
        }
    }
    if (s->ws) {
        session_started(s);
    } else {
        // Streams in kubectl's order; each reply counts down (spdy_reply).
        struct {
            const char *type;
            bool want;
            uint32_t *id;
        } streams[] = {{"error", true, &s->sid_error},
                       {"stdin", o->in, &s->sid_in},
                       {"stdout", o->out, &s->sid_out},
                       {"stderr", o->err && !o->tty, &s->sid_err},
                       {"resize", o->tty, &s->sid_resize}};
        for (auto &st : streams) {
            if (!st.want)
                continue;
            kx_spdy_nv nv = {"streamtype", 10, st.type, strlen(st.type)};
            if (kx_spdy_open(s->spdy, &nv, 1, false, st.id) == 0)
                s->replies_missing++;
        }
        if (!o->err || o->tty)
            s->err_eof = true;
        if (!o->out)
            s->out_eof = true;
        uv_timer_init(c->loop, &s->setup_timer);
        s->setup_timer.data = s;
        s->setup_timer_init = true;
        uv_timer_start(&s->setup_timer, [](uv_timer_t *t) {
            rc_sess *ss = (rc_sess *)t->data;
            if (ss->started || ss->proto_error)
                return;
            ss->proto_error = true;
            snprintf(ss->proto_msg, sizeof ss->proto_msg,
                     "timed out waiting for the server to accept the streams");
            if (ss->conn)
                kx_conn_abort(ss->conn);
        }, kStreamSetupMs, 0);
    }
    if (s->ws) {
        if (!o->out)
            s->out_eof = true;
        if (!o->err || o->tty)
            s->err_eof = true;
    }
    while (!s->conn_closed && !(s->status_eof && s->out_eof && s->err_eof) && !s->sigpipe)
        uv_run(c->loop, UV_RUN_ONCE);
    in_stop(s);
    if (s->progress_init) {
        uv_timer_stop(&s->progress_timer);
        if (s->progress_shown)
            progress_print(s, true);
    }
    int rc;
    if (s->sigpipe) {
        kx_cli_term_restore();
        signal(SIGPIPE, SIG_DFL);
        raise(SIGPIPE);
        rc = 141;
    } else if (s->status_eof && s->out_eof && s->err_eof && !s->proto_error) {
        rc = decode_status(s);
    } else if (s->status.len && !s->proto_error) {
        rc = decode_status(s);   // the Status arrived before the transport broke
    } else {
        kx_cli_term_restore();
        if (s->proto_error)
            fprintf(stderr, "error: %s\n", s->proto_msg);
        else
            fprintf(stderr, "error: lost connection to the server before the command's status "
                            "arrived%s%s\n",
                    s->conn_error < 0 ? ": " : "",
                    s->conn_error < 0 ? strerror(-s->conn_error) : "");
        rc = 1;
    }
    if (s->conn) {
        if (s->ws)
            kx_ws_close(s->wss, KX_WS_NORMAL, nullptr);
        else
            kx_spdy_goaway(s->spdy, KX_SPDY_GOAWAY_OK);
        kx_conn_close(s->conn);
    }
    return rc;
}

int kx_cli_rc_run(kx_cli *c, kx_cli_http *h, const kx_cli_rc_opts *o)
{
    char path[16384];
    if (build_path(c, o, path, sizeof path) < 0) {
        kx_cli_http_close(h);
        return kx_cli_err("command line too long");
    }
    rc_sess s = {};
    s.c = c;
    s.o = o;
    kx_cli_resp r;
    if (kx_cli_ws_enabled("KUBECTL_REMOTE_COMMAND_WEBSOCKETS")) {
        int u = kx_cli_ws_upgrade(c, &h, path, "v5.channel.k8s.io");
        if (u < 0)
            return 1;
        s.ws = u == 1;
    }
    if (!s.ws) {
        static const char hdr[] = "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                                  "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
                                  "Content-Length: 0\r\n";
        if (kx_cli_http_do(h, "POST", path, hdr, nullptr, nullptr, &r)) {
            kx_cli_http_close(h);
            return 1;
        }
        if (r.status != 101) {
            int rc = upgrade_refused(&r);
            kx_cli_http_close(h);
            return rc;
        }
    }
    kx_buf early;
    s.conn = kx_cli_http_take(h, &early);
    kx_conn_set_user(s.conn, &s, &s_conn_cb);
    if (s.ws) {
        static const kx_ws_callbacks wcb = {send_cb, ws_message, ws_close_cb};
        s.wss = kx_ws_new_client(&wcb, &s, 0);
    } else {
        static const kx_spdy_callbacks scb = {send_cb, nullptr, spdy_reply, spdy_data,
                                              spdy_fin, spdy_rst, spdy_goaway};
        s.spdy = kx_spdy_session_new(false, &scb, &s);
    }
    if (!s.wss && !s.spdy) {
        kx_conn_abort(s.conn);
        kx_buf_free(&early);
        return kx_cli_err("out of memory");
    }
    if (o->raw_terminal)
        kx_cli_term_raw(o->in_fd);
    if (early.len)
        s_data(s.conn, early.data, early.len);
    kx_buf_free(&early);
    int rc = run_session(&s);
    kx_cli_term_restore();
    // Let the close frames / GOAWAY leave, bounded by kx_conn's close timer.
    while (!s.conn_closed)
        uv_run(c->loop, UV_RUN_ONCE);
    if (s.winch_init)
        uv_close((uv_handle_t *)&s.winch, nullptr);
    if (s.setup_timer_init)
        uv_close((uv_handle_t *)&s.setup_timer, nullptr);
    if (s.progress_init)
        uv_close((uv_handle_t *)&s.progress_timer, nullptr);
    if (s.in_poll_init)
        uv_close((uv_handle_t *)&s.in_poll, nullptr);
    if (s.in_idle_init)
        uv_close((uv_handle_t *)&s.in_idle, nullptr);
    uv_run(c->loop, UV_RUN_NOWAIT);
    kx_ws_free(s.wss);
    kx_spdy_session_free(s.spdy);
    kx_buf_free(&s.status);
    free(s.inbuf);
    return rc;
}
