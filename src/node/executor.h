// executor.h - run a command inside a running container (what `kubectl exec`
// needs): fork, join the container's namespaces, fork again into its PID
// namespace, execve.
//
// Blocks the loop only for the forks and the handshake (a few ms). Errors:
// 0 or a negative errno value, with a one-line message in err (always
// NUL-terminated when errlen > 0). Nothing here logs. Needs root.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct kx_exec_req {
    pid_t target;               // the container's PID 1 (host pid): join every namespace it has
                                // that we don't share (user if different, mnt, pid, net, ipc,
                                // uts, cgroup) via pidfd_open+setns, else /proc/PID/ns/* fds
    const char *cgroup;         // cgroup dir to join (its cgroup.procs), or null
    const char *const *argv;    // verbatim from the request, null-terminated; argv[0] resolved
                                // against PATH from envp (default PATH if none) inside the
                                // container
    const char *const *envp;    // container env (spec env + PATH default + HOSTNAME), may be null;
                                // TERM=xterm is appended here when tty and envp has no TERM
    const char *workdir;        // null or "" = "/"
    bool tty, in, out, err;     // which stdio the client asked for (tty merges stderr into the pty)
    uint16_t cols, rows;        // initial window size, 0 = leave default
};

struct kx_exec_proc {
    pid_t pid;                  // host pid to WATCH with the reaper: the command itself when
                                // this process is a child subreaper (it adopts the command once
                                // the helper exited), else the helper, a direct child whose exit
                                // status is the command's (exit code, or 128+signal as an exit
                                // code); kx_exit_code() gives the answer either way
    pid_t cmd_pid;              // host pid of the command itself, to SIGNAL (SIGHUP/SIGKILL on
                                // client loss); not our child, never wait for it
    int stdin_fd, stdout_fd, stderr_fd;   // our ends (O_NONBLOCK|O_CLOEXEC), owned by the caller,
                                // -1 if not requested. Non-tty: pipes; a stream the client did
                                // not ask for is /dev/null for the command. tty: the pty master
                                // (allocated INSIDE the container's /dev/pts) in stdout_fd, a dup
                                // in stdin_fd if `in`, stderr_fd == -1.
};

// Forks a helper that joins the cgroup and namespaces of r->target (and thus
// its root), opens the pty from the container's /dev/ptmx when tty, forks the
// command inside the PID namespace (new session; controlling tty when tty;
// chdir workdir; every other fd closed), then exits at once when this process
// is a child subreaper (see kx_exec_proc.pid), else waits for the command and
// exits with its code. Returns 0 once the command's execve succeeded. On failure returns < 0,
// no process is left behind, *out is {0,0,-1,-1,-1}, and err says why:
//   -ESRCH  `container process 123 is not running` (dead or zombie target)
//   -ENOENT `exec: "foo": executable file not found in $PATH`
//   -ENOENT `exec: "/nonexistent": stat /nonexistent: no such file or directory`
//   -EACCES `exec: "/etc": permission denied`
//   -ENOENT `chdir /x: No such file or directory`
//   -EINVAL empty argv / bad request;  -E2BIG over a limit in runtime.h;
//   -ETIMEDOUT the helper did not finish within 10 s (everything is killed);
//   other -errno from fork/pipe/setns with the failing step named.
int kx_exec_spawn(const kx_exec_req *r, kx_exec_proc *out, char *err, size_t errlen);

// Applies a window size to a pty master (TIOCSWINSZ; the kernel signals the
// foreground process group with SIGWINCH). Returns 0, -EINVAL for a size of
// 0 or over 10000 in either dimension, or -errno from ioctl (-ENOTTY for a
// non-pty fd, -EBADF).
int kx_pty_resize(int pty_fd, uint16_t cols, uint16_t rows);
