// podmgr.cc - static pods: manifest scanning, sandbox + container lifecycle,
// restarts with backoff, CRI logs, pod status JSON. See podmgr.h.
//
// Ownership: kx_podmgr owns a singly linked list of pm_pod; a pod owns its
// containers (pm_ctr array), their processes (watched through the reaper with
// the pm_ctr/pm_pod as user pointer), and every libuv handle it opened (counted
// in pod->handles). A pod is freed only when it is stopping, its processes are
// reaped and all its handles are closed, so no callback can see a freed pod.
#include "podmgr.h"

#include <dirent.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <termios.h>

#include "crilog.h"
#include "executor.h"
#include "kubexec/util.h"
#include "kubexec/uvwrite.h"
#include "reaper.h"
#include "runtime.h"

enum {
    PM_RESCAN_MS = 5000,
    PM_KILL_GRACE_MS = 2000,
    PM_BACKOFF_MIN_MS = 1000,
    PM_BACKOFF_MAX_MS = 30000,
    PM_BACKOFF_RESET_MS = 10000,
    PM_READ_BUF = 64 * 1024,
    PM_PATH = 4096,
};

static const char kDefaultPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

enum ctr_state { CS_WAITING, CS_RUNNING, CS_TERMINATED };

struct term_info {
    bool set;
    int exit_code;
    char reason[32];
    char message[256];
    struct timespec started, finished;
};

struct pm_pod;

struct pm_ctr {
    pm_pod *pod;
    const kx_container_spec *spec;    // points into pod->spec
    char **envp;                       // owned, NULL-terminated
    char *cgroup;                      // owned, may be null
    pid_t pid;                         // running main process, 0 when none
    int stdin_fd;                      // our end of stdin (spec.stdin), -1 otherwise
    uv_pipe_t *pipes[2];               // stdout/stderr readers, null when closed
    int open_pipes;
    kx_crilog *log;
    uint64_t log_dropped;
    int restart_count;
    ctr_state state;
    char wait_reason[32];
    char wait_message[256];
    struct timespec started_at;
    uint64_t started_mono_ms;
    term_info term;                    // latest termination
    term_info last;                    // lastState.terminated
    bool exit_pending;                 // exited; waiting for the pipes to drain
    bool final;                        // terminated for good (no restart)
    uv_timer_t *timer;                 // restart backoff (lazily created)
    uint64_t backoff_ms;
    // attach (podmgr.h): subscribers of the current run, and its stdin
    kx_podmgr_attacher *attachers;
    int nattachers;                    // not counting those marked gone
    int iterating;                     // > 0 while walking attachers: unlinking is deferred
    uv_pipe_t *in_pipe;                // the run's stdin (spec.stdin), adopted from stdin_fd
    size_t in_queued;                  // bytes in in_pipe's write queue
    bool in_over_high;                 // a write went above KX_PODMGR_STDIN_HIGH_WATER
    bool in_closing;                   // stdinOnce ended it: close once the queue is written
    kx_podmgr_attacher *stdin_owner;   // stdinOnce: the first attacher with stdin
    bool stdin_done;                   // stdinOnce: consumed for this run
};

struct kx_podmgr_attacher {
    kx_podmgr_attacher *next;
    pm_ctr *c;
    kx_podmgr_attach_callbacks cb;
    void *user;
    bool stdin_ok;                     // may write the container's stdin
    bool gone;                         // detached/ended; freed once nobody iterates
};

struct pm_pod {
    pm_pod *next;
    kx_podmgr *pm;
    char *file;                        // name inside manifest_dir
    int64_t mtime_ns;
    int64_t size;
    uint64_t ino;
    bool seen;
    json_object *json;                 // loaded manifest (null if unreadable)
    kx_pod_spec spec;
    bool have_spec;
    bool listed;                       // visible in pods_json/find
    char name[64], ns[64];
    char uid[40];
    struct timespec created, start_time;
    bool failed;                       // static failure: bad manifest, sandbox error
    char reason[64];
    char message[512];
    kx_sandbox sb;
    bool sb_killed;
    char *cgroup_dir;                  // owned, may be null
    pm_ctr *ctrs;
    size_t nctrs;
    bool stopping;
    uv_timer_t *kill_timer;
    int handles;                       // open libuv handles owned by this pod
};

struct kx_podmgr {
    uv_loop_t *loop;
    char *manifest_dir, *image_dir, *log_dir, *node_name, *cgroup_root;
    pm_pod *pods;
    uv_timer_t scan_timer;
    bool started, owns_reaper, shutting_down, scan_closed, too_many_logged, dir_err_logged;
    void (*shutdown_cb)(void *user);
    void *shutdown_user;
    char host_ip[INET_ADDRSTRLEN];
    char readbuf[PM_READ_BUF];
};

// A libuv handle owned by a pod (pipe or timer) plus what its callbacks need.
struct pm_handle {
    union {
        uv_handle_t handle;
        uv_pipe_t pipe;
        uv_timer_t timer;
    } u;
    pm_pod *pod;
    pm_ctr *ctr;     // null for pod-level handles
    int stream;      // 1 stdout, 2 stderr, PM_STDIN; 0 for timers
};

enum { PM_STDIN = 3 };

static void pod_maybe_finish(pm_pod *pod);
static void ctr_start(pm_ctr *c);
static void ctr_after_exit(pm_ctr *c);
static void att_deliver(pm_ctr *c, int stream, const uint8_t *p, size_t n);
static void att_end_all(pm_ctr *c, int exit_code);

// ---------------------------------------------------------------------------
// small helpers

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "kubexec-node: %s\n", line);
}

static uint64_t mono_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static struct timespec wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts;
}

// RFC 3339 with second precision, as Kubernetes object timestamps are.
static void fmt_time(char out[32], const struct timespec *ts)
{
    struct tm tm;
    time_t t = ts->tv_sec;
    if (!gmtime_r(&t, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        kx_strlcpy(out, "1970-01-01T00:00:00Z", 32);
}

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

// Stable per (node, manifest file): 128 bits of two FNV-1a passes, printed as a
// UUID (version 4 layout bits set so tools accept it).
static void make_uid(char out[40], const char *node, const char *file)
{
    uint64_t h[2] = {0xcbf29ce484222325ull, 0x84222325cbf29ce4ull};
    for (int k = 0; k < 2; k++) {
        const char *parts[3] = {node, "/", file};
        for (int p = 0; p < 3; p++)
            for (const unsigned char *s = (const unsigned char *)parts[p]; *s; s++) {
                h[k] ^= *s;
                h[k] *= 0x100000001b3ull;
            }
    }
    uint8_t b[16];
    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)(h[0] >> (8 * i));
        b[8 + i] = (uint8_t)(h[1] >> (8 * i));
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 40, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
             b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static void detect_host_ip(char out[INET_ADDRSTRLEN])
{
    kx_strlcpy(out, "127.0.0.1", INET_ADDRSTRLEN);
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) != 0)
        return;
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) ||
            !(i->ifa_flags & IFF_UP))
            continue;
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, out, INET_ADDRSTRLEN);
        break;
    }
    freeifaddrs(ifa);
}

static int ctr_log_path(const kx_podmgr *pm, const pm_pod *pod, const char *ctr, int n, char *out, size_t cap)
{
    int w = snprintf(out, cap, "%s/%s_%s/%s/%d.log", pm->log_dir, pod->ns, pod->name, ctr, n);
    return w < 0 || (size_t)w >= cap ? -ENAMETOOLONG : 0;
}

// ---------------------------------------------------------------------------
// handles

static void handle_closed(uv_handle_t *h)
{
    pm_handle *ph = (pm_handle *)h->data;
    pm_pod *pod = ph->pod;
    pm_ctr *c = ph->ctr;
    int stream = ph->stream;
    if (c && stream == PM_STDIN) {
        c->in_pipe = NULL;
    } else if (c && stream) {
        c->pipes[stream - 1] = NULL;
        c->open_pipes--;
    } else if (c) {
        c->timer = NULL;
    } else {
        pod->kill_timer = NULL;
    }
    pod->handles--;
    free(ph);
    if (c && stream && stream != PM_STDIN)
        ctr_after_exit(c);   // may finish the pod
    else
        pod_maybe_finish(pod);
}

static uv_timer_t *pod_timer_new(pm_pod *pod, pm_ctr *c)
{
    pm_handle *ph = (pm_handle *)calloc(1, sizeof *ph);
    if (!ph)
        return NULL;
    uv_timer_init(pod->pm->loop, &ph->u.timer);
    ph->u.timer.data = ph;
    ph->pod = pod;
    ph->ctr = c;
    pod->handles++;
    return &ph->u.timer;
}

static void close_handle(uv_handle_t *h)
{
    if (h && !uv_is_closing(h))
        uv_close(h, handle_closed);
}

static int uv_fileno_fd(uv_pipe_t *p)
{
    uv_os_fd_t fd = -1;
    return uv_fileno((uv_handle_t *)p, &fd) == 0 ? fd : -1;
}

// ---------------------------------------------------------------------------
// container output

static void on_alloc(uv_handle_t *h, size_t, uv_buf_t *buf)
{
    pm_handle *ph = (pm_handle *)h->data;
    kx_podmgr *pm = ph->pod->pm;
    // One shared buffer: the read callback consumes it synchronously.
    *buf = uv_buf_init(pm->readbuf, sizeof pm->readbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    pm_handle *ph = (pm_handle *)s->data;
    pm_ctr *c = ph->ctr;
    if (nread > 0) {
        // Synchronous local append; a failed write is dropped and counted so
        // the container's output never backs up into its pipe.
        if (!c->log || kx_crilog_write(c->log, ph->stream, (const uint8_t *)buf->base, (size_t)nread) != 0)
            c->log_dropped++;
        if (c->attachers)
            att_deliver(c, ph->stream, (const uint8_t *)buf->base, (size_t)nread);
        return;
    }
    if (nread < 0) {
        // EOF, or EIO from a pty master once the container side is gone.
        uv_read_stop(s);
        close_handle((uv_handle_t *)s);
    }
}

// Takes ownership of fd in every case.
static int ctr_pipe_open(pm_ctr *c, int fd, int stream)
{
    pm_pod *pod = c->pod;
    pm_handle *ph = (pm_handle *)calloc(1, sizeof *ph);
    if (!ph) {
        close(fd);
        return -ENOMEM;
    }
    int rc = uv_pipe_init(pod->pm->loop, &ph->u.pipe, 0);
    if (rc != 0) {
        free(ph);
        close(fd);
        return rc;
    }
    ph->u.pipe.data = ph;
    ph->pod = pod;
    ph->ctr = c;
    ph->stream = stream;
    pod->handles++;
    c->pipes[stream - 1] = &ph->u.pipe;
    c->open_pipes++;
    rc = uv_pipe_open(&ph->u.pipe, fd);
    if (rc != 0) {
        close(fd);   // not adopted by the handle
        close_handle((uv_handle_t *)&ph->u.pipe);
        return rc;
    }
    rc = uv_read_start((uv_stream_t *)&ph->u.pipe, on_alloc, on_read);
    if (rc != 0)
        close_handle((uv_handle_t *)&ph->u.pipe);   // closes fd too
    return rc;
}

// ---------------------------------------------------------------------------
// container lifecycle

static bool pod_wants_restart(const pm_pod *pod, int exit_code)
{
    switch (pod->spec.restart_policy) {
    case KX_RESTART_ALWAYS:
        return true;
    case KX_RESTART_ON_FAILURE:
        return exit_code != 0;
    case KX_RESTART_NEVER:
        return false;
    }
    return false;
}

static void ctr_close_stdin(pm_ctr *c)
{
    if (c->stdin_fd >= 0) {
        close(c->stdin_fd);
        c->stdin_fd = -1;
    }
    // Pending writes are cancelled (their callbacks run before the close's).
    close_handle((uv_handle_t *)c->in_pipe);
}

// Adopts the run's stdin write end into a pipe handle so attachers can write
// it without blocking the loop. On failure the raw fd is kept (the process
// must not see EOF just because we cannot write), and attach gets no stdin.
static void ctr_stdin_open(pm_ctr *c, int fd)
{
    pm_pod *pod = c->pod;
    c->in_queued = 0;
    c->in_over_high = c->in_closing = false;
    pm_handle *ph = (pm_handle *)calloc(1, sizeof *ph);
    if (!ph || uv_pipe_init(pod->pm->loop, &ph->u.pipe, 0) != 0) {
        free(ph);
        c->stdin_fd = fd;
        return;
    }
    ph->u.pipe.data = ph;
    ph->pod = pod;
    ph->ctr = c;
    ph->stream = PM_STDIN;
    pod->handles++;
    c->in_pipe = &ph->u.pipe;
    if (uv_pipe_open(&ph->u.pipe, fd) != 0) {
        c->stdin_fd = fd;
        close_handle((uv_handle_t *)&ph->u.pipe);
    }
}

// Once every container is done for good, the sandbox has nothing left to hold.
static void pod_check_all_final(pm_pod *pod)
{
    for (size_t i = 0; i < pod->nctrs; i++)
        if (!pod->ctrs[i].final)
            return;
    if (pod->sb.pid > 0 && !pod->sb_killed) {
        pod->sb_killed = true;
        kx_sandbox_kill(&pod->sb);
    }
}

static void on_restart_timer(uv_timer_t *t)
{
    pm_handle *ph = (pm_handle *)t->data;
    pm_ctr *c = ph->ctr;
    if (c->pod->stopping)
        return;
    c->restart_count++;
    ctr_start(c);
}

// Called when the process is gone and (for a started process) its pipes are
// drained: closes the log, then restarts per policy or marks it final.
static void ctr_after_exit(pm_ctr *c)
{
    pm_pod *pod = c->pod;
    if (!c->exit_pending || c->open_pipes > 0) {
        pod_maybe_finish(pod);
        return;
    }
    c->exit_pending = false;
    if (c->log) {
        if (kx_crilog_flush_partial(c->log) != 0)
            c->log_dropped++;
        kx_crilog_close(c->log);
        c->log = NULL;
    }
    // The run is over and its output delivered: attach sessions end with it.
    att_end_all(c, c->term.exit_code);
    if (pod->stopping) {
        c->final = true;
        pod_maybe_finish(pod);
        return;
    }
    if (!pod_wants_restart(pod, c->term.exit_code)) {
        c->final = true;
        c->state = CS_TERMINATED;
        pod_check_all_final(pod);
        return;
    }
    uint64_t ran = mono_ms() - c->started_mono_ms;
    if (c->term.reason[0] && strcmp(c->term.reason, "StartError") != 0 && ran >= PM_BACKOFF_RESET_MS)
        c->backoff_ms = PM_BACKOFF_MIN_MS;
    uint64_t delay = c->backoff_ms;
    c->backoff_ms = c->backoff_ms * 2 > (uint64_t)PM_BACKOFF_MAX_MS ? (uint64_t)PM_BACKOFF_MAX_MS : c->backoff_ms * 2;
    c->last = c->term;
    c->state = CS_WAITING;
    kx_strlcpy(c->wait_reason, "CrashLoopBackOff", sizeof c->wait_reason);
    snprintf(c->wait_message, sizeof c->wait_message, "back-off %llus restarting failed container=%s pod=%s_%s",
             (unsigned long long)(delay / 1000), c->spec->name, pod->ns, pod->name);
    if (!c->timer)
        c->timer = pod_timer_new(pod, c);
    if (!c->timer) {
        logmsg("warning: pod %s/%s container %s: cannot schedule a restart: out of memory", pod->ns, pod->name,
               c->spec->name);
        c->final = true;
        return;
    }
    uv_timer_start(c->timer, on_restart_timer, delay, 0);
}

static void on_ctr_exit(void *user, pid_t pid, int wstatus)
{
    pm_ctr *c = (pm_ctr *)user;
    if (c->pid != pid)
        return;
    c->pid = 0;
    ctr_close_stdin(c);
    int code = kx_exit_code(wstatus);
    c->term.set = true;
    c->term.exit_code = code;
    c->term.started = c->started_at;
    c->term.finished = wall_now();
    c->term.message[0] = 0;
    kx_strlcpy(c->term.reason, code == 0 ? "Completed" : "Error", sizeof c->term.reason);
    c->state = CS_TERMINATED;
    c->exit_pending = true;
    ctr_after_exit(c);
}

static void ctr_start_failed(pm_ctr *c, const char *msg)
{
    pm_pod *pod = c->pod;
    logmsg("warning: pod %s/%s container %s: %s", pod->ns, pod->name, c->spec->name, msg);
    c->term.set = true;
    c->term.exit_code = 128;
    c->term.started = c->term.finished = wall_now();
    kx_strlcpy(c->term.reason, "StartError", sizeof c->term.reason);
    kx_strlcpy(c->term.message, msg, sizeof c->term.message);
    c->state = CS_TERMINATED;
    c->started_mono_ms = mono_ms();
    c->exit_pending = true;
    ctr_after_exit(c);
}

// rootfs = image_dir/<image>; "name:tag" falls back to image_dir/<name>.
static void resolve_rootfs(const kx_podmgr *pm, const char *image, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", pm->image_dir, image);
    struct stat st;
    if (stat(out, &st) == 0)
        return;
    const char *slash = strrchr(image, '/');
    const char *colon = strrchr(slash ? slash : image, ':');
    if (colon) {
        char alt[PM_PATH];
        snprintf(alt, sizeof alt, "%s/%.*s", pm->image_dir, (int)(colon - image), image);
        if (stat(alt, &st) == 0)
            kx_strlcpy(out, alt, cap);
    }
}

static int ensure_sandbox(pm_pod *pod, char *err, size_t errlen);

static void ctr_start(pm_ctr *c)
{
    pm_pod *pod = c->pod;
    kx_podmgr *pm = pod->pm;
    const kx_container_spec *s = c->spec;
    char err[512] = "";

    // argv: command + args, or args alone; the image has no config to fall back on.
    size_t argc = s->ncommand + s->nargs;
    if (argc == 0) {
        ctr_start_failed(c, "no command specified");
        return;
    }
    const char **argv = (const char **)calloc(argc + 1, sizeof *argv);
    if (!argv) {
        ctr_start_failed(c, "out of memory");
        return;
    }
    for (size_t i = 0; i < s->ncommand; i++)
        argv[i] = s->command[i];
    for (size_t i = 0; i < s->nargs; i++)
        argv[s->ncommand + i] = s->args[i];

    if (ensure_sandbox(pod, err, sizeof err) != 0) {
        free(argv);
        ctr_start_failed(c, err);
        return;
    }

    char rootfs[PM_PATH];
    resolve_rootfs(pm, s->image, rootfs, sizeof rootfs);

    kx_ctr_start st = {};
    st.sandbox_pid = pod->sb.pid;
    st.rootfs = rootfs;
    st.argv = argv;
    st.envp = (const char *const *)c->envp;
    st.workdir = s->working_dir;
    st.cgroup = c->cgroup;
    st.tty = s->tty;
    st.open_stdin = s->stdin_;
    kx_ctr_proc proc;
    int rc = kx_container_start(&st, &proc, err, sizeof err);
    if (rc < 0 && c->cgroup && strstr(err, "cgroup")) {
        logmsg("warning: pod %s/%s container %s: %s; running without a cgroup", pod->ns, pod->name, s->name, err);
        free(c->cgroup);
        c->cgroup = NULL;
        st.cgroup = NULL;
        rc = kx_container_start(&st, &proc, err, sizeof err);
    }
    free(argv);
    if (rc < 0) {
        ctr_start_failed(c, err[0] ? err : strerror(-rc));
        return;
    }

    c->pid = proc.pid;
    c->started_at = wall_now();
    c->started_mono_ms = mono_ms();
    c->state = CS_RUNNING;
    c->final = false;
    c->term.set = false;
    if (kx_reaper_watch(proc.pid, on_ctr_exit, c) != 0) {
        // Cannot track it: do not leave an untracked container behind. It is
        // still reaped (silently) by the reaper.
        kill(proc.pid, SIGKILL);
        if (proc.stdin_fd >= 0)
            close(proc.stdin_fd);
        if (proc.stdout_fd >= 0)
            close(proc.stdout_fd);
        if (proc.stderr_fd >= 0)
            close(proc.stderr_fd);
        c->pid = 0;
        ctr_start_failed(c, "cannot watch the container process");
        return;
    }
    c->stdin_fd = -1;
    c->stdin_owner = NULL;
    c->stdin_done = false;
    if (proc.stdin_fd >= 0)
        ctr_stdin_open(c, proc.stdin_fd);

    // A fresh log file per run; keep only this run's and the previous one.
    char path[PM_PATH];
    if (ctr_log_path(pm, pod, s->name, c->restart_count, path, sizeof path) == 0) {
        kx_crilog_remove(path);   // with its rotated files (path.1, ...)
        c->log = kx_crilog_open(path, err, sizeof err);
        if (!c->log)
            logmsg("warning: pod %s/%s container %s: log: %s", pod->ns, pod->name, s->name, err);
    }
    if (c->restart_count >= 2 &&
        ctr_log_path(pm, pod, s->name, c->restart_count - 2, path, sizeof path) == 0)
        kx_crilog_remove(path);

    if (proc.stdout_fd >= 0 && ctr_pipe_open(c, proc.stdout_fd, 1) != 0)
        logmsg("warning: pod %s/%s container %s: cannot read stdout", pod->ns, pod->name, s->name);
    if (proc.stderr_fd >= 0 && ctr_pipe_open(c, proc.stderr_fd, 2) != 0)
        logmsg("warning: pod %s/%s container %s: cannot read stderr", pod->ns, pod->name, s->name);
}

// ---------------------------------------------------------------------------
// pods

static void on_sandbox_exit(void *user, pid_t pid, int)
{
    pm_pod *pod = (pm_pod *)user;
    if (pod->sb.pid != pid)
        return;
    pod->sb.pid = 0;
    if (!pod->stopping && !pod->sb_killed)
        logmsg("warning: pod %s/%s: sandbox process %d exited", pod->ns, pod->name, (int)pid);
    pod->sb_killed = false;
    pod_maybe_finish(pod);
}

// A sandbox is needed for a container start. It is (re)created when missing
// and no container of the pod runs (a running one still holds the namespaces
// the new container should share, which we could not join any more).
static int ensure_sandbox(pm_pod *pod, char *err, size_t errlen)
{
    if (pod->sb.pid > 0 && !pod->sb_killed)
        return 0;
    if (pod->sb.pid > 0)
        return snprintf(err, errlen, "pod sandbox is being torn down"), -EAGAIN;
    for (size_t i = 0; i < pod->nctrs; i++)
        if (pod->ctrs[i].pid > 0)
            return snprintf(err, errlen, "pod sandbox exited while containers still run"), -ESRCH;
    int rc = kx_sandbox_create(pod->name, pod->spec.host_network, &pod->sb, err, errlen);
    if (rc < 0) {
        pod->sb.pid = 0;
        return rc;
    }
    rc = kx_reaper_watch(pod->sb.pid, on_sandbox_exit, pod);
    if (rc < 0) {
        kx_sandbox_kill(&pod->sb);
        pod->sb.pid = 0;
        return snprintf(err, errlen, "cannot watch the sandbox process: %s", strerror(-rc)), rc;
    }
    return 0;
}

static void pod_kill_all(pm_pod *pod)
{
    for (size_t i = 0; i < pod->nctrs; i++)
        if (pod->ctrs[i].pid > 0)
            kill(pod->ctrs[i].pid, SIGKILL);
    if (pod->sb.pid > 0) {
        pod->sb_killed = true;
        kx_sandbox_kill(&pod->sb);
    }
}

static void on_kill_timer(uv_timer_t *t)
{
    pod_kill_all(((pm_handle *)t->data)->pod);
}

static void pod_free_now(pm_pod *pod);

// Frees the pod once it is stopping and nothing of it is left; otherwise moves
// the teardown one step on (kill the sandbox, close the timers).
static void pod_maybe_finish(pm_pod *pod)
{
    if (!pod->stopping)
        return;
    for (size_t i = 0; i < pod->nctrs; i++)
        if (pod->ctrs[i].pid > 0 || pod->ctrs[i].open_pipes > 0)
            return;
    if (pod->sb.pid > 0) {
        if (!pod->sb_killed) {
            pod->sb_killed = true;
            kx_sandbox_kill(&pod->sb);
        }
        return;
    }
    if (pod->handles > 0) {
        for (size_t i = 0; i < pod->nctrs; i++) {
            close_handle((uv_handle_t *)pod->ctrs[i].timer);
            close_handle((uv_handle_t *)pod->ctrs[i].in_pipe);
        }
        close_handle((uv_handle_t *)pod->kill_timer);
        return;
    }
    pod_free_now(pod);
}

static void pod_stop(pm_pod *pod)
{
    if (pod->stopping)
        return;
    pod->stopping = true;
    bool any = false;
    for (size_t i = 0; i < pod->nctrs; i++) {
        pm_ctr *c = &pod->ctrs[i];
        if (c->timer)
            uv_timer_stop(c->timer);
        if (c->pid > 0) {
            kill(c->pid, SIGTERM);
            any = true;
        }
    }
    // The timer repeats until the pod is gone: it also keeps the loop alive
    // while we wait for the reaper, whose signal handle is unreferenced.
    if (any || pod->sb.pid > 0) {
        pod->kill_timer = pod_timer_new(pod, NULL);
        if (pod->kill_timer)
            uv_timer_start(pod->kill_timer, on_kill_timer, PM_KILL_GRACE_MS, PM_KILL_GRACE_MS / 2);
        else
            pod_kill_all(pod);
    }
    pod_maybe_finish(pod);
}

static void scan_soon(kx_podmgr *pm);
static void maybe_finish_shutdown(kx_podmgr *pm);

static void pod_unlink(pm_pod *pod)
{
    for (pm_pod **pp = &pod->pm->pods; *pp; pp = &(*pp)->next) {
        if (*pp == pod) {
            *pp = pod->next;
            return;
        }
    }
}

// Frees the memory of an unlinked pod whose processes and handles are gone.
static void pod_release(pm_pod *pod)
{
    for (size_t i = 0; i < pod->nctrs; i++) {
        pm_ctr *c = &pod->ctrs[i];
        ctr_close_stdin(c);
        kx_crilog_close(c->log);
        att_end_all(c, c->term.exit_code);   // normally ended with their run already
        if (c->envp) {
            for (char **e = c->envp; *e; e++)
                free(*e);
            free(c->envp);
        }
        if (c->cgroup) {
            rmdir(c->cgroup);
            free(c->cgroup);
        }
    }
    if (pod->cgroup_dir) {
        rmdir(pod->cgroup_dir);
        free(pod->cgroup_dir);
    }
    free(pod->ctrs);
    kx_pod_spec_free(&pod->spec);
    json_object_put(pod->json);
    free(pod->file);
    free(pod);
}

static void pod_free_now(pm_pod *pod)
{
    kx_podmgr *pm = pod->pm;
    pod_unlink(pod);
    if (pod->listed) {
        // Files ignored as duplicates of this pod get their chance on the
        // rescan below (they own no processes or handles).
        for (;;) {
            pm_pod *dup = NULL;
            for (pm_pod *p = pm->pods; p && !dup; p = p->next)
                if (!p->listed && !strcmp(p->reason, "Duplicate") && !strcmp(p->ns, pod->ns) &&
                    !strcmp(p->name, pod->name))
                    dup = p;
            if (!dup)
                break;
            pod_unlink(dup);
            pod_release(dup);
        }
    }
    pod_release(pod);
    if (pm->shutting_down)
        maybe_finish_shutdown(pm);
    else
        scan_soon(pm);   // a changed manifest waits for its old pod to be gone
}

// Full environment: spec env (last duplicate wins), then HOSTNAME, a default
// PATH and, for a tty, TERM=xterm unless the spec set them.
static char **build_env(const pm_pod *pod, const kx_container_spec *s)
{
    size_t n = 0;
    char **env = (char **)calloc(s->nenv + 4, sizeof *env);
    if (!env)
        return NULL;
    bool have_path = false, have_host = false, have_term = false;
    for (size_t i = 0; i < s->nenv; i++) {
        bool later = false;
        for (size_t j = i + 1; j < s->nenv; j++)
            if (!strcmp(s->env[i].name, s->env[j].name))
                later = true;
        if (later)
            continue;
        have_path |= !strcmp(s->env[i].name, "PATH");
        have_host |= !strcmp(s->env[i].name, "HOSTNAME");
        have_term |= !strcmp(s->env[i].name, "TERM");
        if (asprintf(&env[n], "%s=%s", s->env[i].name, s->env[i].value) < 0)
            goto fail;
        n++;
    }
    if (!have_host) {
        if (asprintf(&env[n], "HOSTNAME=%s", pod->name) < 0)
            goto fail;
        n++;
    }
    if (!have_path && !(env[n++] = strdup(kDefaultPath)))
        goto fail;
    if (s->tty && !have_term && !(env[n++] = strdup("TERM=xterm")))
        goto fail;
    return env;
fail:
    for (size_t i = 0; i < n; i++)
        free(env[i]);
    free(env);
    return NULL;
}

// Reads a displayable name/namespace from a manifest that failed validation.
static bool readable_name(json_object *j, char name[64], char ns[64])
{
    json_object *meta, *v;
    if (!j || !json_object_object_get_ex(j, "metadata", &meta) || !json_object_is_type(meta, json_type_object))
        return false;
    if (!json_object_object_get_ex(meta, "name", &v) || !json_object_is_type(v, json_type_string) ||
        !kx_is_dns1123_label(json_object_get_string(v)))
        return false;
    kx_strlcpy(name, json_object_get_string(v), 64);
    kx_strlcpy(ns, "default", 64);
    if (json_object_object_get_ex(meta, "namespace", &v) && json_object_is_type(v, json_type_string) &&
        kx_is_dns1123_label(json_object_get_string(v)))
        kx_strlcpy(ns, json_object_get_string(v), 64);
    return true;
}

static pm_pod *find_listed(kx_podmgr *pm, const char *ns, const char *name, const pm_pod *except)
{
    for (pm_pod *p = pm->pods; p; p = p->next)
        if (p != except && p->listed && !strcmp(p->ns, ns) && !strcmp(p->name, name))
            return p;
    return NULL;
}

static void pod_set_cgroups(pm_pod *pod)
{
    kx_podmgr *pm = pod->pm;
    if (!pm->cgroup_root)
        return;
    char dir[PM_PATH / 2];
    if (snprintf(dir, sizeof dir, "%s/%s_%s", pm->cgroup_root, pod->ns, pod->name) >= (int)sizeof dir) {
        logmsg("warning: cgroup root %s: path too long; running without cgroups", pm->cgroup_root);
        return;
    }
    // The root's parent (…/kubexec, shared by the agents of a host) too.
    char parent[PM_PATH / 2];
    kx_strlcpy(parent, pm->cgroup_root, sizeof parent);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent)
        *slash = '\0';
    if ((slash && slash != parent && mkdir(parent, 0755) != 0 && errno != EEXIST) ||
        (mkdir(pm->cgroup_root, 0755) != 0 && errno != EEXIST) || (mkdir(dir, 0755) != 0 && errno != EEXIST)) {
        logmsg("warning: cgroup %s: %s; running pod %s/%s without cgroups", dir, strerror(errno), pod->ns,
               pod->name);
        return;
    }
    pod->cgroup_dir = strdup(dir);
    if (!pod->cgroup_dir)
        return;
    for (size_t i = 0; i < pod->nctrs; i++) {
        char cdir[PM_PATH];
        snprintf(cdir, sizeof cdir, "%s/%s", dir, pod->ctrs[i].spec->name);
        pod->ctrs[i].cgroup = strdup(cdir);
    }
}

// Marks a pod that cannot run; it stays listed (if it has a name) as Failed.
static void pod_fail(pm_pod *pod, const char *reason, const char *msg)
{
    pod->failed = true;
    kx_strlcpy(pod->reason, reason, sizeof pod->reason);
    kx_strlcpy(pod->message, msg, sizeof pod->message);
}

// Loads the manifest and starts the pod. Returns NULL when the pod must wait
// (its old incarnation is still stopping) or on ENOMEM.
static pm_pod *pod_create(kx_podmgr *pm, const char *file, const struct stat *st)
{
    pm_pod *pod = (pm_pod *)calloc(1, sizeof *pod);
    if (!pod)
        return NULL;
    pod->pm = pm;
    pod->file = strdup(file);
    if (!pod->file) {
        free(pod);
        return NULL;
    }
    pod->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    pod->size = (int64_t)st->st_size;
    pod->ino = (uint64_t)st->st_ino;
    pod->seen = true;
    pod->created = wall_now();
    make_uid(pod->uid, pm->node_name, file);

    char path[PM_PATH], err[512];
    snprintf(path, sizeof path, "%s/%s", pm->manifest_dir, file);
    int rc = kx_manifest_load(path, &pod->json, err, sizeof err);
    if (rc == 0) {
        rc = kx_pod_spec_parse(pod->json, &pod->spec, err, sizeof err);
        pod->have_spec = rc == 0;
    }
    if (pod->have_spec) {
        kx_strlcpy(pod->name, pod->spec.name, sizeof pod->name);
        kx_strlcpy(pod->ns, pod->spec.ns, sizeof pod->ns);
        pod->listed = true;
    } else {
        pod->listed = readable_name(pod->json, pod->name, pod->ns);
    }

    if (pod->listed) {
        pm_pod *other = find_listed(pm, pod->ns, pod->name, NULL);
        if (other && other->stopping) {
            // Same pod still shutting down (renamed file): start it afterwards.
            kx_pod_spec_free(&pod->spec);
            json_object_put(pod->json);
            free(pod->file);
            free(pod);
            return NULL;
        }
        if (other) {
            logmsg("manifest %s: pod %s/%s is already defined by %s; ignored", file, pod->ns, pod->name,
                   other->file);
            pod->listed = false;
            pod_fail(pod, "Duplicate", "duplicate pod");
            pod->next = pm->pods;
            pm->pods = pod;
            return pod;
        }
    }
    pod->next = pm->pods;
    pm->pods = pod;

    if (!pod->have_spec) {
        logmsg("manifest %s: %s", file, err);
        pod_fail(pod, "InvalidManifest", err);
        return pod;
    }

    pod->ctrs = (pm_ctr *)calloc(pod->spec.ncontainers, sizeof *pod->ctrs);
    if (!pod->ctrs) {
        pod_fail(pod, "InternalError", "out of memory");
        return pod;
    }
    pod->nctrs = pod->spec.ncontainers;
    for (size_t i = 0; i < pod->nctrs; i++) {
        pm_ctr *c = &pod->ctrs[i];
        c->pod = pod;
        c->spec = &pod->spec.containers[i];
        c->stdin_fd = -1;
        c->backoff_ms = PM_BACKOFF_MIN_MS;
        c->state = CS_WAITING;
        kx_strlcpy(c->wait_reason, "ContainerCreating", sizeof c->wait_reason);
        c->envp = build_env(pod, c->spec);
        if (!c->envp) {
            pod_fail(pod, "InternalError", "out of memory");
            return pod;
        }
    }
    pod_set_cgroups(pod);

    pod->start_time = wall_now();
    if (ensure_sandbox(pod, err, sizeof err) != 0) {
        logmsg("warning: pod %s/%s: sandbox: %s", pod->ns, pod->name, err);
        for (size_t i = 0; i < pod->nctrs; i++)
            kx_strlcpy(pod->ctrs[i].wait_reason, "CreatePodSandboxError", sizeof pod->ctrs[i].wait_reason);
        pod_fail(pod, "CreatePodSandboxError", err);
        return pod;
    }
    for (size_t i = 0; i < pod->nctrs; i++)
        ctr_start(&pod->ctrs[i]);
    return pod;
}

// ---------------------------------------------------------------------------
// scanning

static bool manifest_name(const char *n)
{
    return n[0] != '.' && (has_suffix(n, ".yaml") || has_suffix(n, ".yml") || has_suffix(n, ".json"));
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void scan(kx_podmgr *pm)
{
    if (pm->shutting_down)
        return;
    for (pm_pod *p = pm->pods; p; p = p->next)
        p->seen = false;
    bool complete = true;   // only a complete listing may stop pods
    DIR *d = opendir(pm->manifest_dir);
    if (!d) {
        int e = errno;
        if (!pm->dir_err_logged)
            logmsg("warning: manifest directory %s: %s", pm->manifest_dir, strerror(e));
        pm->dir_err_logged = true;
        if (e != ENOENT)
            return;   // transient trouble: keep the pods we have
    } else {
        pm->dir_err_logged = false;
        // Sorted, so which of two files defining the same pod wins does not
        // depend on directory order.
        char **names = NULL;
        size_t nnames = 0, cap = 0;
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (!manifest_name(de->d_name))
                continue;
            if (nnames == cap) {
                size_t ncap = cap ? cap * 2 : 32;
                char **nn = cap < 4 * KX_PODMGR_MAX_PODS ? (char **)realloc(names, ncap * sizeof *nn) : NULL;
                if (!nn) {
                    complete = false;
                    break;
                }
                names = nn;
                cap = ncap;
            }
            if (!(names[nnames] = strdup(de->d_name))) {
                complete = false;
                break;
            }
            nnames++;
        }
        closedir(d);
        if (nnames > 1)
            qsort(names, nnames, sizeof *names, cmp_names);
        size_t count = 0;
        for (size_t ni = 0; ni < nnames; ni++) {
            const char *fname = names[ni];
            char path[PM_PATH];
            struct stat st;
            if (snprintf(path, sizeof path, "%s/%s", pm->manifest_dir, fname) >= (int)sizeof path ||
                stat(path, &st) != 0 || !S_ISREG(st.st_mode))
                continue;
            pm_pod *active = NULL, *dying = NULL;
            for (pm_pod *p = pm->pods; p; p = p->next) {
                if (strcmp(p->file, fname) != 0)
                    continue;
                p->seen = true;
                if (p->stopping)
                    dying = p;
                else
                    active = p;
            }
            if (active) {
                int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
                if (active->mtime_ns != mt || active->size != (int64_t)st.st_size ||
                    active->ino != (uint64_t)st.st_ino)
                    pod_stop(active);   // restarts once fully stopped (pod_free_now rescans)
                count++;
                continue;
            }
            if (dying)
                continue;
            if (count >= KX_PODMGR_MAX_PODS) {
                if (!pm->too_many_logged)
                    logmsg("warning: more than %d manifests; %s and later ones ignored", KX_PODMGR_MAX_PODS,
                           fname);
                pm->too_many_logged = true;
                continue;
            }
            if (pod_create(pm, fname, &st))
                count++;
        }
        for (size_t ni = 0; ni < nnames; ni++)
            free(names[ni]);
        free(names);
    }
    pm_pod *next;
    for (pm_pod *p = pm->pods; p; p = next) {
        next = p->next;
        if (complete && !p->seen && !p->stopping)
            pod_stop(p);   // may free p
    }
}

static void on_scan_timer(uv_timer_t *t)
{
    scan((kx_podmgr *)t->data);
}

static void scan_soon(kx_podmgr *pm)
{
    if (pm->started && !pm->shutting_down)
        uv_timer_start(&pm->scan_timer, on_scan_timer, 0, PM_RESCAN_MS);
}

void kx_podmgr_rescan(kx_podmgr *pm)
{
    scan_soon(pm);
}

// ---------------------------------------------------------------------------
// public API

kx_podmgr *kx_podmgr_new(uv_loop_t *loop, const kx_podmgr_config *cfg)
{
    if (!loop || !cfg || !cfg->manifest_dir || !cfg->image_dir || !cfg->data_dir)
        return NULL;
    kx_podmgr *pm = (kx_podmgr *)calloc(1, sizeof *pm);
    if (!pm)
        return NULL;
    pm->loop = loop;
    pm->manifest_dir = xstrdup(cfg->manifest_dir);
    pm->image_dir = xstrdup(cfg->image_dir);
    if (cfg->log_dir && *cfg->log_dir) {
        pm->log_dir = xstrdup(cfg->log_dir);
    } else {
        size_t n = strlen(cfg->data_dir) + sizeof "/pods";
        pm->log_dir = (char *)malloc(n);
        if (pm->log_dir)
            snprintf(pm->log_dir, n, "%s/pods", cfg->data_dir);
    }
    pm->node_name = xstrdup(cfg->node_name ? cfg->node_name : "localhost");
    pm->cgroup_root = xstrdup(cfg->cgroup_root);
    if (!pm->manifest_dir || !pm->image_dir || !pm->log_dir || !pm->node_name ||
        (cfg->cgroup_root && !pm->cgroup_root)) {
        kx_podmgr_free(pm);
        return NULL;
    }
    detect_host_ip(pm->host_ip);
    return pm;
}

int kx_podmgr_start(kx_podmgr *pm)
{
    if (pm->started)
        return -EALREADY;
    int rc = kx_reaper_init(pm->loop);
    if (rc == 0)
        pm->owns_reaper = true;
    else if (rc != -EALREADY)
        return rc;
    rc = uv_timer_init(pm->loop, &pm->scan_timer);
    if (rc != 0) {
        if (pm->owns_reaper)
            kx_reaper_close();
        pm->owns_reaper = false;
        return rc;
    }
    pm->scan_timer.data = pm;
    pm->started = true;
    scan(pm);
    uv_timer_start(&pm->scan_timer, on_scan_timer, PM_RESCAN_MS, PM_RESCAN_MS);
    return 0;
}

static void on_scan_closed(uv_handle_t *h)
{
    kx_podmgr *pm = (kx_podmgr *)h->data;
    pm->scan_closed = true;
    if (pm->owns_reaper) {
        kx_reaper_close();
        pm->owns_reaper = false;
    }
    void (*cb)(void *) = pm->shutdown_cb;
    pm->shutdown_cb = NULL;
    if (cb)
        cb(pm->shutdown_user);
}

static void maybe_finish_shutdown(kx_podmgr *pm)
{
    if (pm->pods || !pm->shutting_down || uv_is_closing((uv_handle_t *)&pm->scan_timer))
        return;
    uv_close((uv_handle_t *)&pm->scan_timer, on_scan_closed);
}

// Used when start never ran: the callback still comes from the loop.
static void on_idle_shutdown(uv_handle_t *h)
{
    kx_podmgr *pm = (kx_podmgr *)h->data;
    free(h);
    void (*cb)(void *) = pm->shutdown_cb;
    pm->shutdown_cb = NULL;
    if (cb)
        cb(pm->shutdown_user);
}

void kx_podmgr_shutdown(kx_podmgr *pm, void (*cb)(void *user), void *user)
{
    if (pm->shutting_down)
        return;
    pm->shutting_down = true;
    pm->shutdown_cb = cb;
    pm->shutdown_user = user;
    if (!pm->started) {
        uv_timer_t *t = (uv_timer_t *)calloc(1, sizeof *t);
        if (t) {
            uv_timer_init(pm->loop, t);
            t->data = pm;
            uv_close((uv_handle_t *)t, on_idle_shutdown);
        } else if (cb) {
            pm->shutdown_cb = NULL;
            cb(user);
        }
        return;
    }
    uv_timer_stop(&pm->scan_timer);
    pm_pod *next;
    for (pm_pod *p = pm->pods; p; p = next) {
        next = p->next;
        pod_stop(p);   // may free p
    }
    maybe_finish_shutdown(pm);
}

void kx_podmgr_free(kx_podmgr *pm)
{
    if (!pm)
        return;
    free(pm->manifest_dir);
    free(pm->image_dir);
    free(pm->log_dir);
    free(pm->node_name);
    if (pm->cgroup_root)
        rmdir(pm->cgroup_root); // empty once the pods are gone; else kept
    free(pm->cgroup_root);
    free(pm);
}

static pm_pod *lookup(kx_podmgr *pm, const char *ns, const char *name)
{
    pm_pod *found = NULL;
    for (pm_pod *p = pm->pods; p; p = p->next) {
        if (!p->listed || strcmp(p->ns, ns) != 0 || strcmp(p->name, name) != 0)
            continue;
        if (!p->stopping)
            return p;
        found = p;
    }
    return found;
}

static pm_ctr *lookup_ctr(pm_pod *pod, const char *name)
{
    for (size_t i = 0; i < pod->nctrs; i++)
        if (!strcmp(pod->ctrs[i].spec->name, name))
            return &pod->ctrs[i];
    return NULL;
}

int kx_podmgr_find(kx_podmgr *pm, const char *ns, const char *pod, const char *ctr, kx_container_ref *out,
                   char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    pm_pod *p = lookup(pm, ns, pod);
    if (!p) {
        snprintf(err, errlen, "pod does not exist");
        return -ENOENT;
    }
    pm_ctr *c = lookup_ctr(p, ctr);
    if (!c) {
        snprintf(err, errlen, "container not found (\"%s\")", ctr);
        return -ESRCH;
    }
    out->pid = c->pid;
    out->spec = c->spec;
    out->cgroup = c->cgroup;
    out->envp = (const char *const *)c->envp;
    if (c->pid <= 0 || p->stopping) {
        out->pid = 0;
        snprintf(err, errlen, "container \"%s\" in pod \"%s\" is not running", ctr, pod);
        return -EAGAIN;
    }
    return 0;
}

int kx_podmgr_log_path(kx_podmgr *pm, const char *ns, const char *pod, const char *ctr, bool previous, char *out,
                       size_t cap)
{
    pm_pod *p = lookup(pm, ns, pod);
    pm_ctr *c = p ? lookup_ctr(p, ctr) : NULL;
    if (!c)
        return -ENOENT;
    int n = c->restart_count - (previous ? 1 : 0);
    if (n < 0)
        return -ENOENT;
    return ctr_log_path(pm, p, ctr, n, out, cap);
}

// ---------------------------------------------------------------------------
// attach (see podmgr.h)

// Frees the attachers marked gone, unless someone is walking the list.
static void att_sweep(pm_ctr *c)
{
    if (c->iterating > 0)
        return;
    for (kx_podmgr_attacher **pp = &c->attachers; *pp;) {
        kx_podmgr_attacher *a = *pp;
        if (a->gone) {
            *pp = a->next;
            free(a);
        } else {
            pp = &a->next;
        }
    }
}

static void att_mark_gone(kx_podmgr_attacher *a)
{
    a->gone = true;
    a->c->nattachers--;
}

static void on_stdin_written(void *user, size_t len, int)
{
    pm_ctr *c = (pm_ctr *)user;
    c->in_queued -= len;
    // A failed write (EPIPE: the process closed its stdin; ECANCELED: the run
    // ended) loses those bytes, as a pipe would.
    if (c->in_closing && c->in_queued == 0)
        close_handle((uv_handle_t *)c->in_pipe);
    if (c->in_over_high && c->in_queued < KX_PODMGR_STDIN_LOW_WATER) {
        c->in_over_high = false;
        c->iterating++;
        for (kx_podmgr_attacher *a = c->attachers; a; a = a->next)
            if (!a->gone && a->stdin_ok && a->cb.on_stdin_drain)
                a->cb.on_stdin_drain(a->user);
        c->iterating--;
        att_sweep(c);
    }
}

// Queues bytes on the run's stdin pipe (no checks beyond the pipe existing).
static int stdin_queue(pm_ctr *c, const uint8_t *p, size_t n)
{
    if (!c->in_pipe || uv_is_closing((uv_handle_t *)c->in_pipe))
        return -EPIPE;
    long queued = kx_uv_write_copy((uv_stream_t *)c->in_pipe, p, n, on_stdin_written, c);
    if (queued < 0)
        return (int)queued;
    c->in_queued += (size_t)queued;
    return 0;
}

// stdinOnce: the owner's stdin ended. Pipes get EOF once what is queued is
// written; a pty gets its EOF character (the master stays open for output).
static void stdin_once_close(pm_ctr *c)
{
    c->stdin_done = true;
    if (!c->in_pipe || c->in_closing)
        return;
    c->in_closing = true;
    if (c->spec->tty) {
        uint8_t eof = 4;   // ^D
        struct termios t;
        if (tcgetattr(uv_fileno_fd(c->in_pipe), &t) == 0 && t.c_cc[VEOF] != _POSIX_VDISABLE)
            eof = t.c_cc[VEOF];
        stdin_queue(c, &eof, 1);
    }
    if (c->in_queued == 0)
        close_handle((uv_handle_t *)c->in_pipe);
}

// This attacher stops writing stdin; the owner's end closes it for everyone.
static void att_stdin_end(kx_podmgr_attacher *a)
{
    pm_ctr *c = a->c;
    if (!a->stdin_ok)
        return;
    a->stdin_ok = false;
    if (c->stdin_owner != a)
        return;
    c->stdin_owner = NULL;
    stdin_once_close(c);
    c->iterating++;
    for (kx_podmgr_attacher *b = c->attachers; b; b = b->next) {
        if (b->gone || !b->stdin_ok)
            continue;
        b->stdin_ok = false;
        if (b->cb.on_stdin_closed)
            b->cb.on_stdin_closed(b->user);
    }
    c->iterating--;
    att_sweep(c);
}

static void att_deliver(pm_ctr *c, int stream, const uint8_t *p, size_t n)
{
    c->iterating++;
    for (kx_podmgr_attacher *a = c->attachers; a; a = a->next) {
        if (a->gone)
            continue;
        size_t backlog = a->cb.on_output(a->user, stream, p, n);
        if (a->gone || backlog <= (size_t)KX_PODMGR_ATTACH_MAX_BACKLOG)
            continue;
        // Too slow: cut it off rather than feed it a stream with holes.
        att_stdin_end(a);
        att_mark_gone(a);
        a->cb.on_end(a->user, -ENOBUFS, 0);
    }
    c->iterating--;
    att_sweep(c);
}

static void att_end_all(pm_ctr *c, int exit_code)
{
    c->iterating++;
    for (kx_podmgr_attacher *a = c->attachers; a; a = a->next) {
        if (a->gone)
            continue;
        att_mark_gone(a);
        a->cb.on_end(a->user, 0, exit_code);
    }
    c->iterating--;
    c->stdin_owner = NULL;
    att_sweep(c);
}

int kx_podmgr_attach(kx_podmgr *pm, const char *ns, const char *pod, const char *ctr, bool want_stdin,
                     const kx_podmgr_attach_callbacks *cb, void *user, kx_podmgr_attacher **out,
                     kx_podmgr_attach_info *info, char *err, size_t errlen)
{
    *out = NULL;
    memset(info, 0, sizeof *info);
    kx_container_ref ref;
    int rc = kx_podmgr_find(pm, ns, pod, ctr, &ref, err, errlen);
    if (rc != 0)
        return rc;
    if (!cb || !cb->on_output || !cb->on_end) {
        snprintf(err, errlen, "invalid attach request");
        return -EINVAL;
    }
    pm_ctr *c = lookup_ctr(lookup(pm, ns, pod), ctr);
    if (c->nattachers >= KX_PODMGR_MAX_ATTACHERS) {
        snprintf(err, errlen, "too many attached clients for container \"%s\" (limit %d)", ctr,
                 KX_PODMGR_MAX_ATTACHERS);
        return -EBUSY;
    }
    kx_podmgr_attacher *a = (kx_podmgr_attacher *)calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    a->c = c;
    a->cb = *cb;
    a->user = user;
    const kx_container_spec *s = c->spec;
    a->stdin_ok = want_stdin && s->stdin_ && c->in_pipe && !c->in_closing && !(s->stdin_once && c->stdin_done);
    if (a->stdin_ok && s->stdin_once && !c->stdin_owner)
        c->stdin_owner = a;
    a->next = c->attachers;
    c->attachers = a;
    c->nattachers++;
    info->tty = s->tty;
    info->stdin_ok = a->stdin_ok;
    info->stdin_once = s->stdin_once;
    *out = a;
    return 0;
}

int kx_podmgr_attach_stdin(kx_podmgr_attacher *a, const uint8_t *p, size_t n)
{
    pm_ctr *c = a->c;
    if (a->gone || !a->stdin_ok || !c->in_pipe || c->in_closing)
        return -EPIPE;
    if (n > KX_PODMGR_STDIN_MAX || c->in_queued > KX_PODMGR_STDIN_MAX - n)
        return -ENOBUFS;
    if (n > 0) {
        int rc = stdin_queue(c, p, n);
        if (rc < 0)
            return rc;
    }
    if (c->in_queued > KX_PODMGR_STDIN_HIGH_WATER)
        c->in_over_high = true;
    return c->in_queued > (size_t)INT32_MAX ? INT32_MAX : (int)c->in_queued;
}

void kx_podmgr_attach_stdin_eof(kx_podmgr_attacher *a)
{
    if (!a->gone)
        att_stdin_end(a);
}

int kx_podmgr_attach_resize(kx_podmgr_attacher *a, uint16_t cols, uint16_t rows)
{
    pm_ctr *c = a->c;
    if (!c->spec->tty || !c->pipes[0] || uv_is_closing((uv_handle_t *)c->pipes[0]))
        return -ENOTTY;
    return kx_pty_resize(uv_fileno_fd(c->pipes[0]), cols, rows);
}

void kx_podmgr_detach(kx_podmgr_attacher *a)
{
    if (!a || a->gone)
        return;
    pm_ctr *c = a->c;
    att_stdin_end(a);
    att_mark_gone(a);
    att_sweep(c);
}

// ---------------------------------------------------------------------------
// status JSON

static int jadd(json_object *o, const char *k, json_object *v)
{
    return json_object_object_add(o, k, v);
}

static json_object *jstr(const char *s)
{
    return json_object_new_string(s ? s : "");
}

static json_object *jtime(const struct timespec *ts)
{
    char b[32];
    fmt_time(b, ts);
    return json_object_new_string(b);
}

static json_object *term_json(const term_info *t)
{
    json_object *o = json_object_new_object();
    jadd(o, "exitCode", json_object_new_int(t->exit_code));
    jadd(o, "reason", jstr(t->reason));
    if (t->message[0])
        jadd(o, "message", jstr(t->message));
    jadd(o, "startedAt", jtime(&t->started));
    jadd(o, "finishedAt", jtime(&t->finished));
    return o;
}

static json_object *ctr_status_json(const pm_pod *pod, const pm_ctr *c)
{
    json_object *o = json_object_new_object();
    jadd(o, "name", jstr(c->spec->name));
    jadd(o, "image", jstr(c->spec->image));
    jadd(o, "imageID", jstr(""));
    if (c->term.set || c->state == CS_RUNNING) {
        char id[256];
        snprintf(id, sizeof id, "kubexec://%s_%s_%s_%d", pod->ns, pod->name, c->spec->name, c->restart_count);
        jadd(o, "containerID", jstr(id));
    }
    bool running = c->state == CS_RUNNING;
    jadd(o, "ready", json_object_new_boolean(running));
    jadd(o, "started", json_object_new_boolean(running));
    jadd(o, "restartCount", json_object_new_int(c->restart_count));
    json_object *state = json_object_new_object();
    if (running) {
        json_object *r = json_object_new_object();
        jadd(r, "startedAt", jtime(&c->started_at));
        jadd(state, "running", r);
    } else if (c->state == CS_TERMINATED && c->term.set) {
        jadd(state, "terminated", term_json(&c->term));
    } else {
        json_object *w = json_object_new_object();
        jadd(w, "reason", jstr(c->wait_reason));
        if (c->wait_message[0])
            jadd(w, "message", jstr(c->wait_message));
        jadd(state, "waiting", w);
    }
    jadd(o, "state", state);
    json_object *last = json_object_new_object();
    if (c->last.set)
        jadd(last, "terminated", term_json(&c->last));
    jadd(o, "lastState", last);
    return o;
}

static const char *pod_phase(const pm_pod *pod)
{
    if (pod->failed)
        return "Failed";
    bool any_running = false, any_restarting = false, all_final = pod->nctrs > 0, all_ok = true;
    for (size_t i = 0; i < pod->nctrs; i++) {
        const pm_ctr *c = &pod->ctrs[i];
        if (c->state == CS_RUNNING)
            any_running = true;
        else if (c->last.set || c->restart_count > 0 || (c->term.set && !c->final))
            any_restarting = true;
        if (!c->final)
            all_final = false;
        else if (c->term.exit_code != 0)
            all_ok = false;
    }
    if (all_final)
        return all_ok ? "Succeeded" : "Failed";
    if (any_running || any_restarting)
        return "Running";
    return "Pending";
}

static json_object *condition(const char *type, bool ok)
{
    json_object *o = json_object_new_object();
    jadd(o, "type", jstr(type));
    jadd(o, "status", jstr(ok ? "True" : "False"));
    return o;
}

static json_object *pod_json(const kx_podmgr *pm, const pm_pod *pod)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    jadd(o, "kind", jstr("Pod"));
    jadd(o, "apiVersion", jstr("v1"));

    json_object *meta = json_object_new_object();
    jadd(meta, "name", jstr(pod->name));
    jadd(meta, "namespace", jstr(pod->ns));
    jadd(meta, "uid", jstr(pod->uid));
    jadd(meta, "creationTimestamp", jtime(&pod->created));
    json_object *src_meta = NULL, *v = NULL;
    if (pod->json)
        json_object_object_get_ex(pod->json, "metadata", &src_meta);
    if (src_meta && json_object_object_get_ex(src_meta, "labels", &v) && json_object_is_type(v, json_type_object)) {
        json_object *copy = NULL;
        if (json_object_deep_copy(v, &copy, NULL) == 0)
            jadd(meta, "labels", copy);
    }
    json_object *ann = NULL;
    if (src_meta && json_object_object_get_ex(src_meta, "annotations", &v) &&
        json_object_is_type(v, json_type_object))
        json_object_deep_copy(v, &ann, NULL);
    if (!ann)
        ann = json_object_new_object();
    jadd(ann, "kubernetes.io/config.source", jstr("file"));
    jadd(meta, "annotations", ann);
    jadd(o, "metadata", meta);

    json_object *spec = NULL;
    if (pod->json && json_object_object_get_ex(pod->json, "spec", &v) && json_object_is_type(v, json_type_object))
        json_object_deep_copy(v, &spec, NULL);
    if (!spec)
        spec = json_object_new_object();
    jadd(spec, "nodeName", jstr(pm->node_name));
    jadd(o, "spec", spec);

    json_object *st = json_object_new_object();
    const char *phase = pod_phase(pod);
    jadd(st, "phase", jstr(phase));
    if (pod->failed) {
        jadd(st, "reason", jstr(pod->reason));
        jadd(st, "message", jstr(pod->message));
    }
    bool ready = pod->nctrs > 0 && !pod->failed;
    for (size_t i = 0; i < pod->nctrs; i++)
        if (pod->ctrs[i].state != CS_RUNNING)
            ready = false;
    json_object *conds = json_object_new_array();
    json_object_array_add(conds, condition("PodScheduled", true));
    json_object_array_add(conds, condition("Initialized", true));
    json_object_array_add(conds, condition("ContainersReady", ready));
    json_object_array_add(conds, condition("Ready", ready));
    jadd(st, "conditions", conds);
    jadd(st, "hostIP", jstr(pm->host_ip));
    const char *pod_ip = pod->spec.host_network ? pm->host_ip : "127.0.0.1";
    jadd(st, "podIP", jstr(pod_ip));
    json_object *ips = json_object_new_array();
    json_object *ip = json_object_new_object();
    jadd(ip, "ip", jstr(pod_ip));
    json_object_array_add(ips, ip);
    jadd(st, "podIPs", ips);
    if (pod->start_time.tv_sec)
        jadd(st, "startTime", jtime(&pod->start_time));
    if (pod->nctrs > 0) {
        json_object *cs = json_object_new_array();
        for (size_t i = 0; i < pod->nctrs; i++)
            json_object_array_add(cs, ctr_status_json(pod, &pod->ctrs[i]));
        jadd(st, "containerStatuses", cs);
    }
    jadd(st, "qosClass", jstr("BestEffort"));
    jadd(o, "status", st);
    return o;
}

json_object *kx_podmgr_pods_json(kx_podmgr *pm)
{
    json_object *arr = json_object_new_array();
    if (!arr)
        return NULL;
    for (pm_pod *p = pm->pods; p; p = p->next) {
        if (!p->listed)
            continue;
        json_object *o = pod_json(pm, p);
        if (!o || json_object_array_add(arr, o) != 0) {
            json_object_put(o);
            json_object_put(arr);
            return NULL;
        }
    }
    return arr;
}

int kx_podmgr_pod_net(kx_podmgr *pm, const char *ns, const char *pod, pid_t *sandbox_pid, bool *host_network,
                      char *uid, size_t uidlen, char *err, size_t errlen)
{
    *sandbox_pid = 0;
    *host_network = false;
    if (uid && uidlen)
        uid[0] = 0;
    pm_pod *p = lookup(pm, ns, pod);
    if (!p) {
        snprintf(err, errlen, "pod does not exist");
        return -ENOENT;
    }
    if (uid && uidlen)
        snprintf(uid, uidlen, "%s", p->uid);
    *host_network = p->have_spec && p->spec.host_network;
    if (p->stopping || p->sb.pid <= 0 || p->sb_killed) {
        snprintf(err, errlen, "pod \"%s\" has no running sandbox", pod);
        return -EAGAIN;
    }
    *sandbox_pid = p->sb.pid;
    return 0;
}
