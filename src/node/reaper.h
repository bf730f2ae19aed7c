// reaper.h - the one SIGCHLD watcher of the node daemon.
//
// kx_reaper_init starts a libuv uv_signal_t on SIGCHLD; its callback runs
// waitpid(-1, WNOHANG) until nothing is left and hands each status to the
// callback registered for that pid. It also sets PR_SET_CHILD_SUBREAPER, so
// orphaned grandchildren are re-parented to the daemon and reaped here too
// (their statuses are dropped silently unless someone watches the pid).
//
// Loop rule: everything here runs on the daemon's single libuv loop thread.
// Because waitpid only runs inside the loop callback, a caller that forks and
// registers the pid in the same synchronous block cannot race with the reap:
// a child that already died stays a zombie until the next loop iteration.
//
// Caveat: waitpid(-1) collects every child of the process, so a daemon using
// the reaper must not also use uv_spawn (libuv's own SIGCHLD watcher would
// lose its statuses) or wait for children elsewhere, except for code that
// waits synchronously for a specific pid it has just forked and never
// returns to the loop in between (the runtime/executor handshakes do this).
#pragma once

#include <sys/types.h>
#include <uv.h>

// Called once, from the loop, when `pid` has exited. wstatus is the raw
// status from waitpid (use kx_exit_code or the W* macros). The watch is
// already removed when the callback runs, so the callback may watch the same
// pid number again (pid reuse) or watch/unwatch others.
typedef void (*kx_reaper_cb)(void *user, pid_t pid, int wstatus);

// Starts the SIGCHLD watcher on `loop` and makes this process a child
// subreaper. Also reaps, on the next loop iteration, children that died
// before init. Returns 0, -EALREADY if already initialised, or a negative
// errno from libuv/prctl.
int kx_reaper_init(uv_loop_t *loop);

// Registers cb for pid (> 0). Returns 0, -EINVAL for pid <= 0 or a null cb,
// -EEXIST if pid is already watched, -ENOMEM. Works before kx_reaper_init too
// (the watch fires once the reaper runs).
int kx_reaper_watch(pid_t pid, kx_reaper_cb cb, void *user);

// Forgets the watch on pid (no-op if none). The process is still reaped when
// it exits, silently. Safe to call from inside a reaper callback.
void kx_reaper_unwatch(pid_t pid);

// Number of pids currently watched (for tests and shutdown checks).
size_t kx_reaper_count(void);

// Closes the signal handle (its memory is static; the close completes on the
// next loop run) and drops all watches. Children exiting afterwards are no
// longer reaped. kx_reaper_init may be called again after the loop ran.
void kx_reaper_close(void);

// Exit code of a raw wait status the way Kubernetes reports it: WEXITSTATUS
// for a normal exit, 128 + signal number for a signal death, -1 for anything
// else (stopped/continued statuses are never passed to reaper callbacks).
int kx_exit_code(int wstatus);
