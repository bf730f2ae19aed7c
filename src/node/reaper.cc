// reaper.cc - SIGCHLD -> waitpid(-1) -> per-pid callbacks.
#include "reaper.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

namespace {

struct watch {
    pid_t pid;
    kx_reaper_cb cb;
    void *user;
};

// A small unsorted array: a node runs tens of processes, and a linear scan
// over a few hundred entries is cheaper than any hashing.
watch *g_watches;
size_t g_count, g_cap;

uv_signal_t g_sig;
bool g_started;   // the handle is initialised and not yet closed
bool g_closing;   // uv_close called, close callback still pending

ssize_t find(pid_t pid)
{
    for (size_t i = 0; i < g_count; i++)
        if (g_watches[i].pid == pid)
            return (ssize_t)i;
    return -1;
}

void reap_all()
{
    for (;;) {
        int st = 0;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid == 0)
            return;
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            return;  // ECHILD: nothing left
        }
        ssize_t i = find(pid);
        if (i < 0)
            continue;
        // Remove before calling so the callback can re-watch or unwatch freely.
        watch w = g_watches[i];
        g_watches[i] = g_watches[--g_count];
        w.cb(w.user, pid, st);
    }
}

void on_sigchld(uv_signal_t *, int)
{
    reap_all();
}

void on_closed(uv_handle_t *)
{
    g_closing = false;
}

// A zero-timeout timer reaps children that exited before the signal watcher
// existed (their SIGCHLD was delivered to whatever disposition was in place).
uv_timer_t g_first;
bool g_first_active;

void on_first(uv_timer_t *)
{
    reap_all();
    uv_close((uv_handle_t *)&g_first, [](uv_handle_t *) { g_first_active = false; });
}

} // namespace

int kx_reaper_init(uv_loop_t *loop)
{
    if (g_started || g_closing || g_first_active)
        return -EALREADY;
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
        return -errno;
    int rc = uv_signal_init(loop, &g_sig);
    if (rc < 0)
        return rc;
    rc = uv_signal_start(&g_sig, on_sigchld, SIGCHLD);
    if (rc < 0) {
        uv_close((uv_handle_t *)&g_sig, nullptr);
        return rc;
    }
    g_started = true;
    if (uv_timer_init(loop, &g_first) == 0) {
        g_first_active = true;
        uv_timer_start(&g_first, on_first, 0, 0);
        uv_unref((uv_handle_t *)&g_first);
    }
    // The daemon's lifetime is decided by its servers, not by the reaper.
    uv_unref((uv_handle_t *)&g_sig);
    return 0;
}

int kx_reaper_watch(pid_t pid, kx_reaper_cb cb, void *user)
{
    if (pid <= 0 || !cb)
        return -EINVAL;
    if (find(pid) >= 0)
        return -EEXIST;
    if (g_count == g_cap) {
        size_t ncap = g_cap ? g_cap * 2 : 16;
        watch *n = (watch *)realloc(g_watches, ncap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        g_watches = n;
        g_cap = ncap;
    }
    g_watches[g_count++] = watch{pid, cb, user};
    return 0;
}

void kx_reaper_unwatch(pid_t pid)
{
    ssize_t i = find(pid);
    if (i >= 0)
        g_watches[i] = g_watches[--g_count];
}

size_t kx_reaper_count(void)
{
    return g_count;
}

void kx_reaper_close(void)
{
    if (g_started) {
        g_started = false;
        g_closing = true;
        uv_close((uv_handle_t *)&g_sig, on_closed);
    }
    if (g_first_active && !uv_is_closing((uv_handle_t *)&g_first))
        uv_close((uv_handle_t *)&g_first, [](uv_handle_t *) { g_first_active = false; });
    free(g_watches);
    g_watches = nullptr;
    g_count = g_cap = 0;
}

int kx_exit_code(int wstatus)
{
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus))
        return 128 + WTERMSIG(wstatus);
    return -1;
}
