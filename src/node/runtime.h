// runtime.h - pod sandboxes and container processes, built from plain
// namespaces, mounts and pivot_root (no OCI runtime binary).
//
// Every call blocks the loop only for fork/clone and a handshake with the
// child (a few ms): the child reports setup or execve failures over a
// close-on-exec SOCK_SEQPACKET channel, and end-of-file on it means execve
// succeeded. Children never touch libuv, reset all signal dispositions and the
// signal mask, and inherit none of the daemon's descriptors.
//
// Errors: functions return 0 or a negative errno value and write a one-line
// message into err (always NUL-terminated when errlen > 0). Nothing here logs.
// Needs root (CAP_SYS_ADMIN) for namespaces and mounts.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

// The pod's "pause" process: it owns the pod's net, ipc and uts namespaces,
// which every container of the pod joins.
struct kx_sandbox {
    pid_t pid;   // host pid of the holder; 0 when none
};

// Forks a holder that unshares CLONE_NEWIPC|CLONE_NEWUTS (and CLONE_NEWNET
// unless host_network), sets the hostname, brings loopback up (SIOCSIFFLAGS on
// "lo"), closes every descriptor and pauses until killed. The holder is a
// direct child: the caller registers out->pid with the reaper right away.
// Returns 0, or -EINVAL (null/empty/too long hostname, > 64 bytes), -errno
// from fork/unshare/sethostname/ioctl with err naming the step; on failure no
// process is left behind.
int kx_sandbox_create(const char *hostname, bool host_network, kx_sandbox *out, char *err,
                      size_t errlen);

// SIGKILLs the holder (no-op if sb->pid <= 0). It is reaped through the
// reaper; sb->pid is left as is so the caller can match the reaper callback.
void kx_sandbox_kill(kx_sandbox *sb);

struct kx_ctr_start {
    pid_t sandbox_pid;          // join its net/ipc/uts (0 = stay in the daemon's)
    const char *rootfs;         // IMAGE_DIR/<image>/ (must exist, else -ENOENT with a message)
    const char *const *argv;    // command + args, null-terminated, argv[0] non-empty; argv[0]
                                // is looked up in the container's PATH if it has no '/'
    const char *const *envp;    // full environment, null-terminated (caller adds PATH default,
                                // HOSTNAME); PATH from here drives the lookup
    const char *workdir;        // null = "/"
    const char *cgroup;         // absolute cgroup v2 directory to create and join, or null
    bool tty;                   // main process on a pty (see kx_ctr_proc)
    bool open_stdin;            // keep a pipe to stdin (spec.stdin) else stdin is /dev/null
};

struct kx_ctr_proc {
    pid_t pid;                  // host pid of the container's PID 1 (the user's main process),
                                // a direct child: wait for it with the reaper
    int stdin_fd, stdout_fd, stderr_fd;   // our ends, O_NONBLOCK|O_CLOEXEC, owned by the caller,
                                // -1 when absent. Pipes: stdin_fd (write end) only with
                                // open_stdin. tty: stdout_fd is the pty master (stdout+stderr
                                // merged, so stderr_fd == -1) and stdin_fd a dup of it when
                                // open_stdin (else -1, and the process reads the pty anyway).
};

// Limits on what a start/exec request may carry (over them: -E2BIG).
enum {
    KX_RT_MAX_ARGS = 4096,      // argv and envp entries, each
    KX_RT_MAX_PATH = 4096,      // rootfs, workdir, cgroup, each resolved candidate path
    KX_RT_MAX_PATH_DIRS = 64,   // PATH entries tried
};

// Starts the container's main process. New mount + PID (+ cgroup when
// c->cgroup) namespaces; inside: make / rprivate, bind rootfs onto itself,
// mount proc, sysfs (ro), a tmpfs /dev with null zero random urandom tty full
// bind-mounted from the host (plus fd/stdin/stdout/stderr symlinks), devpts
// newinstance at /dev/pts (ptmxmode=0666) with /dev/ptmx -> pts/ptmx, /dev/shm
// tmpfs; pivot_root into rootfs, detach the old root, chdir workdir, execve.
// Missing mount points (proc, sys, dev) are created in rootfs.
// On success returns 0 and fills *out (out->pid alive or already a zombie).
// On failure returns < 0, nothing is left running, *out is {0,-1,-1,-1}, and
// err reads like the container runtimes':
//   -ENOENT `exec: "foo": executable file not found in $PATH`
//   -ENOENT `exec: "/x": stat /x: no such file or directory`
//   -EACCES `exec: "/x": permission denied`
//   -ENOENT `chdir /x: No such file or directory`
//   -ENOENT `rootfs /img/x: No such file or directory`
//   -ESRCH  sandbox process gone;  -EINVAL bad request;  -E2BIG over a limit;
//   -ETIMEDOUT the child did not finish its setup within 10 s (it is killed).
int kx_container_start(const kx_ctr_start *c, kx_ctr_proc *out, char *err, size_t errlen);

// ---------------------------------------------------------------------------
// Internal to runtime.cc and executor.cc (not for other modules).

#include <signal.h>

enum kx__rt_step {
    KX__RT_OK = 0,
    KX__RT_LOOKUP,      // argv[0] not found in PATH
    KX__RT_EXEC,        // execve failed (arg = argv[0])
    KX__RT_CHDIR,       // arg = directory
    KX__RT_MOUNT,       // arg = target
    KX__RT_PIVOT,
    KX__RT_SETNS,       // arg = namespace name
    KX__RT_CGROUP,
    KX__RT_UNSHARE,
    KX__RT_HOSTNAME,
    KX__RT_LOOPBACK,
    KX__RT_PTY,
    KX__RT_STDIO,
    KX__RT_FORK,
    KX__RT_SESSION,
};

// The argv[0] lookup, prepared before fork so the child only calls execve.
struct kx__rt_exec {
    char *const *argv;          // as given
    char *const *envp;
    bool slash;                 // argv[0] contains '/': exec it as is
    size_t ncand;
    char *cand[KX_RT_MAX_PATH_DIRS];   // "dir/argv0" for each PATH entry (one malloc'd block)
    char *block;
};

// Fills x from argv/envp (PATH from envp, default
// /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin).
// Returns 0, -EINVAL (empty argv/argv[0]), -E2BIG, -ENOMEM.
int kx__rt_exec_prepare(kx__rt_exec *x, const char *const *argv, const char *const *envp);
void kx__rt_exec_free(kx__rt_exec *x);
// Child side: tries the candidates; reports the failure on chan and _exits.
[[noreturn]] void kx__rt_exec_run(const kx__rt_exec *x, int chan);

// Blocks every signal (parent, around fork); restore with pthread_sigmask.
void kx__rt_block_signals(sigset_t *old);
// Child side: default dispositions, empty mask.
void kx__rt_child_signals(void);
// In a child the node forked to become a pod process: SIGKILL when the node
// dies (PR_SET_PDEATHSIG); exits at once if it died already (chan, the
// set-up channel to the node, is hung up).
void kx__rt_die_with_parent(int chan);
// Child side: makes fds[0..2] the stdio (any of them may be < 3 or equal).
int kx__rt_child_stdio(int in, int out, int errfd);

// Child side: report one message; fd >= 0 is passed with SCM_RIGHTS.
void kx__rt_send(int chan, int step, int err, const char *arg, pid_t pid, int fd);
[[noreturn]] void kx__rt_fail(int chan, int step, int err, const char *arg);

// What the parent learned from the handshake.
struct kx__rt_result {
    int step, err;              // step KX__RT_OK: no failure reported
    char arg[512];
    pid_t pid;                  // last pid reported (executor: the command's host pid)
    int fd;                     // last fd received (O_CLOEXEC), -1 if none
};
// Parent side: reads chan until EOF (0), a failure message (-err, r filled),
// or the deadline (-ETIMEDOUT). Extra fds beyond the first are closed.
int kx__rt_handshake(int chan, int timeout_ms, kx__rt_result *r);
// Formats r as a runtime-style message into err. argv0 may be null.
void kx__rt_format(const kx__rt_result *r, const char *argv0, char *err, size_t errlen);
// snprintf into err, tolerating err == null / errlen == 0.
void kx__rt_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
