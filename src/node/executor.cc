// executor.cc - `kubectl exec`: helper joins the container, command runs in it.
//
// Process shape (nsenter's continue_as_child, without the signal mirroring):
//
//   daemon ── fork ──▶ helper: join cgroup + namespaces (+ root), open pty
//                         └── fork ──▶ command (PID namespace of the container)
//
// The helper is created directly inside the container's cgroup with
// clone3(CLONE_INTO_CGROUP) where the kernel and the cgroup (v2) allow it:
// writing a pid to cgroup.procs instead waits for an RCU grace period in
// the kernel (measured 11 ms of a 15 ms exec here), while the daemon waits
// on the handshake. Kernels or cgroups without it fall back to fork + write.
//
// setns(CLONE_NEWPID) only affects children, hence the second fork. When the
// daemon is a child subreaper (kx_reaper_init makes it one) the helper exits
// as soon as it has reported the command's pid: the kernel re-parents the
// command to the daemon, which then waits for it directly. Otherwise (tools
// and tests without the reaper) the helper stays in the host PID namespace
// as the command's parent, waits for it and exits with its code. Not keeping
// a helper per session saves a forked copy of the daemon (~450 KiB of
// private pages measured with 100 sessions) for every running exec.
#include "executor.h"
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/sched.h>
#include <termios.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

namespace {

const int k_handshake_ms = 10000;

// Order for the per-namespace fallback: everything the host root may enter
// first, the user namespace last (entering it would drop our privileges over
// the others), mnt just before it so the remaining opens are unaffected.
struct ns_kind {
    const char *name;
    int flag;
};
const ns_kind k_ns[] = {
    {"cgroup", CLONE_NEWCGROUP}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},
    {"net", CLONE_NEWNET},       {"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS},
    {"user", CLONE_NEWUSER},
};
const int k_nns = (int)(sizeof k_ns / sizeof k_ns[0]);

struct exec_plan {
    const kx_exec_req *r;
    kx__rt_exec x;
    const char *workdir;
    int pidfd;                 // target pidfd, or -1 (then ns_fds)
    int ns_flags;              // namespaces that differ from ours
    int ns_fds[k_nns];         // fallback fds, -1 when not needed
    int cgroup_procs;          // cgroup.procs to write from the helper, or -1
    int cgroup_dir;            // the cgroup (v2) directory for CLONE_INTO_CGROUP, or -1
    int in, out, errfd;        // command-side stdio (non-tty), -1 for none
    int chan;                  // child end of the handshake channel
    char **env_owned;          // envp copy with TERM added, or null
    bool detach;               // the daemon adopts the command: exit after reporting it
};

// fork() into the cgroup whose directory is cgdir (clone3 with
// CLONE_INTO_CGROUP). -1 with errno (EBADF when cgdir < 0) when that is not
// possible, so the caller can fall back to fork().
pid_t fork_into(int cgdir)
{
    if (cgdir < 0) {
        errno = EBADF;
        return -1;
    }
    struct clone_args a;
    memset(&a, 0, sizeof a);
    a.flags = CLONE_INTO_CGROUP;
    a.exit_signal = SIGCHLD;
    a.cgroup = (uint64_t)cgdir;
    return (pid_t)syscall(SYS_clone3, &a, sizeof a);
}

void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

int close_range_(unsigned lo, unsigned hi, unsigned flags)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, lo, hi, flags) == 0)
        return 0;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 1 << 20)
        max = 1 << 16;
    for (long fd = lo; fd < max && fd <= (long)hi; fd++) {
        if (flags & CLOSE_RANGE_CLOEXEC)
            fcntl((int)fd, F_SETFD, FD_CLOEXEC);
        else
            close((int)fd);
    }
    return 0;
}

[[noreturn]] void command_child(const exec_plan *p, int slave)
{
    if (setsid() < 0)
        kx__rt_fail(p->chan, KX__RT_SESSION, errno, nullptr);
    int rc;
    if (p->r->tty) {
        if (ioctl(slave, TIOCSCTTY, 0) != 0)
            kx__rt_fail(p->chan, KX__RT_SESSION, errno, nullptr);
        rc = kx__rt_child_stdio(slave, slave, slave);
    } else {
        rc = kx__rt_child_stdio(p->in, p->out, p->errfd);
    }
    if (rc < 0)
        kx__rt_fail(p->chan, KX__RT_STDIO, -rc, nullptr);
    if (chdir(p->workdir) != 0)
        kx__rt_fail(p->chan, KX__RT_CHDIR, errno, p->workdir);
    close_range_(3, ~0U, CLOSE_RANGE_CLOEXEC);
    kx__rt_exec_run(&p->x, p->chan);
}

[[noreturn]] void helper(const exec_plan *p)
{
    kx__rt_child_signals();
    prctl(PR_SET_NAME, "kx-exec", 0, 0, 0);
    if (p->cgroup_procs >= 0 && write(p->cgroup_procs, "0", 1) != 1)
        kx__rt_fail(p->chan, KX__RT_CGROUP, errno, p->r->cgroup);
    if (p->pidfd >= 0) {
        // One atomic setns for all of them; the kernel orders user last itself.
        if (p->ns_flags && setns(p->pidfd, p->ns_flags) != 0)
            kx__rt_fail(p->chan, KX__RT_SETNS, errno, "container namespaces");
    } else {
        for (int i = 0; i < k_nns; i++)
            if (p->ns_fds[i] >= 0 && setns(p->ns_fds[i], k_ns[i].flag) != 0)
                kx__rt_fail(p->chan, KX__RT_SETNS, errno, k_ns[i].name);
    }
    // Joining the mount namespace moved our root to the container's root.
    int slave = -1;
    if (p->r->tty) {
        int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (m < 0)
            kx__rt_fail(p->chan, KX__RT_PTY, errno, "/dev/ptmx");
        int unlock = 0;
        if (ioctl(m, TIOCSPTLCK, &unlock) != 0)
            kx__rt_fail(p->chan, KX__RT_PTY, errno, "/dev/ptmx");
        slave = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave < 0)
            kx__rt_fail(p->chan, KX__RT_PTY, errno, "/dev/pts");
        if (p->r->cols && p->r->rows) {
            winsize ws;
            memset(&ws, 0, sizeof ws);
            ws.ws_col = p->r->cols;
            ws.ws_row = p->r->rows;
            ioctl(m, TIOCSWINSZ, &ws);
        }
        kx__rt_send(p->chan, KX__RT_OK, 0, nullptr, 0, m);
        close(m);
    }
    pid_t cmd = fork();
    if (cmd == 0)
        command_child(p, slave);
    if (cmd < 0)
        kx__rt_fail(p->chan, KX__RT_FORK, errno, nullptr);
    // The pid as fork returned it is in our (the host's) PID namespace.
    kx__rt_send(p->chan, KX__RT_OK, 0, nullptr, cmd, -1);
    if (p->detach)
        _exit(0);   // the daemon, a child subreaper, adopts and waits for the command
    // Hold nothing: the channel must reach EOF when the command execs, and the
    // pipes must close when the command closes them.
    close_range_(0, ~0U, 0);
    int st = 0;
    while (waitpid(cmd, &st, 0) < 0) {
        if (errno != EINTR)
            _exit(127);
    }
    if (WIFEXITED(st))
        _exit(WEXITSTATUS(st));
    if (WIFSIGNALED(st))
        _exit(128 + WTERMSIG(st));
    _exit(127);
}

void plan_free(exec_plan *p)
{
    kx__rt_exec_free(&p->x);
    close_fd(&p->pidfd);
    for (int i = 0; i < k_nns; i++)
        close_fd(&p->ns_fds[i]);
    close_fd(&p->cgroup_procs);
    close_fd(&p->cgroup_dir);
    close_fd(&p->in);
    close_fd(&p->out);
    close_fd(&p->errfd);
    close_fd(&p->chan);
    free(p->env_owned);
    p->env_owned = nullptr;
}

int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

int make_pipe(int *ours, int *theirs, bool we_write)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -errno;
    *ours = we_write ? p[1] : p[0];
    *theirs = we_write ? p[0] : p[1];
    return set_nonblock(*ours);
}

int fail(exec_plan *p, int rc, char *err, size_t errlen, const char *what)
{
    plan_free(p);
    kx__rt_err(err, errlen, "%s: %s", what, strerror(-rc));
    return rc;
}

} // namespace

int kx_exec_spawn(const kx_exec_req *r, kx_exec_proc *out, char *err, size_t errlen)
{
    kx__rt_err(err, errlen, "%s", "");
    if (!out) {
        kx__rt_err(err, errlen, "invalid exec request");
        return -EINVAL;
    }
    *out = kx_exec_proc{0, 0, -1, -1, -1};
    if (!r || r->target <= 0) {
        kx__rt_err(err, errlen, "invalid exec request");
        return -EINVAL;
    }
    if ((r->workdir && strlen(r->workdir) >= KX_RT_MAX_PATH) ||
        (r->cgroup && strlen(r->cgroup) + 16 >= KX_RT_MAX_PATH)) {
        kx__rt_err(err, errlen, "exec path too long");
        return -E2BIG;
    }

    exec_plan p;
    memset(&p, 0, sizeof p);
    p.r = r;
    p.pidfd = p.cgroup_procs = p.cgroup_dir = p.in = p.out = p.errfd = p.chan = -1;
    for (int i = 0; i < k_nns; i++)
        p.ns_fds[i] = -1;
    p.workdir = r->workdir && r->workdir[0] ? r->workdir : "/";

    // Environment: TERM=xterm for a tty unless the container already sets TERM.
    const char *const *envp = r->envp;
    if (r->tty) {
        size_t n = 0;
        bool has_term = false;
        for (; envp && envp[n]; n++) {
            if (n > KX_RT_MAX_ARGS) {
                kx__rt_err(err, errlen, "exec environment too large");
                return -E2BIG;
            }
            if (strncmp(envp[n], "TERM=", 5) == 0)
                has_term = true;
        }
        if (!has_term) {
            p.env_owned = (char **)malloc((n + 2) * sizeof(char *));
            if (!p.env_owned) {
                kx__rt_err(err, errlen, "out of memory");
                return -ENOMEM;
            }
            for (size_t i = 0; i < n; i++)
                p.env_owned[i] = (char *)envp[i];
            p.env_owned[n] = (char *)"TERM=xterm";
            p.env_owned[n + 1] = nullptr;
            envp = p.env_owned;
        }
    }
    int rc = kx__rt_exec_prepare(&p.x, r->argv, envp);
    if (rc < 0) {
        plan_free(&p);
        if (rc == -EINVAL)
            kx__rt_err(err, errlen, "exec: command is empty");
        else
            kx__rt_err(err, errlen, "exec: %s", strerror(-rc));
        return rc;
    }

    // Which namespaces does the target not share with us? A dead (or zombie)
    // target has no readable ns links: that is ESRCH for the caller.
    for (int i = 0; i < k_nns; i++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "/proc/self/ns/%s", k_ns[i].name);
        snprintf(b, sizeof b, "/proc/%d/ns/%s", (int)r->target, k_ns[i].name);
        struct stat sa, sb;
        if (stat(b, &sb) != 0) {
            plan_free(&p);
            kx__rt_err(err, errlen, "container process %d is not running", (int)r->target);
            return -ESRCH;
        }
        if (stat(a, &sa) != 0)
            continue;  // namespace type not supported here
        if (sa.st_dev != sb.st_dev || sa.st_ino != sb.st_ino)
            p.ns_flags |= k_ns[i].flag;
    }
#ifdef SYS_pidfd_open
    p.pidfd = (int)syscall(SYS_pidfd_open, r->target, 0);
#else
    errno = ENOSYS;
#endif
    if (p.pidfd < 0 && errno == ESRCH) {
        plan_free(&p);
        kx__rt_err(err, errlen, "container process %d is not running", (int)r->target);
        return -ESRCH;
    }
    if (p.pidfd >= 0) {
        fcntl(p.pidfd, F_SETFD, FD_CLOEXEC);
    } else {
        for (int i = 0; i < k_nns; i++) {
            if (!(p.ns_flags & k_ns[i].flag))
                continue;
            char b[64];
            snprintf(b, sizeof b, "/proc/%d/ns/%s", (int)r->target, k_ns[i].name);
            p.ns_fds[i] = open(b, O_RDONLY | O_CLOEXEC);
            if (p.ns_fds[i] < 0) {
                plan_free(&p);
                kx__rt_err(err, errlen, "container process %d is not running", (int)r->target);
                return -ESRCH;
            }
        }
    }

    if (r->cgroup) {
        char procs[KX_RT_MAX_PATH];
        snprintf(procs, sizeof procs, "%s/cgroup.procs", r->cgroup);
        p.cgroup_dir = open(r->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        p.cgroup_procs = open(procs, O_WRONLY | O_CLOEXEC);
        if (p.cgroup_procs < 0) {
            rc = -errno;
            plan_free(&p);
            kx__rt_err(err, errlen, "cgroup %s: %s", r->cgroup, strerror(-rc));
            return rc;
        }
    }

    int ours_in = -1, ours_out = -1, ours_err = -1;
    rc = 0;
    if (!r->tty) {
        // Streams the client did not ask for are /dev/null, like the kubelet's.
        if (r->in)
            rc = make_pipe(&ours_in, &p.in, true);
        else if ((p.in = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
            rc = -errno;
        if (rc == 0 && r->out)
            rc = make_pipe(&ours_out, &p.out, false);
        else if (rc == 0 && (p.out = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0)
            rc = -errno;
        if (rc == 0 && r->err)
            rc = make_pipe(&ours_err, &p.errfd, false);
        else if (rc == 0 && (p.errfd = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0)
            rc = -errno;
    }
    int sp[2] = {-1, -1};
    if (rc == 0 && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0)
        rc = -errno;
    if (rc < 0) {
        close_fd(&ours_in);
        close_fd(&ours_out);
        close_fd(&ours_err);
        return fail(&p, rc, err, errlen, "exec stdio");
    }
    p.chan = sp[1];

    int subreaper = 0;
    p.detach = prctl(PR_GET_CHILD_SUBREAPER, &subreaper, 0, 0, 0) == 0 && subreaper;
    sigset_t old;
    kx__rt_block_signals(&old);
    pid_t pid = fork_into(p.cgroup_dir);
    if (pid >= 0) {
        // Already a member: the helper must not move itself again.
        if (pid == 0)
            p.cgroup_procs = -1;
    } else if (errno == ENOSYS || errno == E2BIG || errno == EINVAL || errno == EBADF ||
               errno == EOPNOTSUPP || errno == EPERM) {
        pid = fork();
    }
    if (pid == 0) {
        close(sp[0]);
        helper(&p);
    }
    int fe = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    plan_free(&p);
    if (pid < 0) {
        close(sp[0]);
        close_fd(&ours_in);
        close_fd(&ours_out);
        close_fd(&ours_err);
        kx__rt_err(err, errlen, "fork: %s", strerror(fe));
        return -fe;
    }

    kx__rt_result res;
    rc = kx__rt_handshake(sp[0], k_handshake_ms, &res);
    close(sp[0]);
    if (rc == 0 && res.pid <= 0)
        rc = -EIO;  // the helper died before reporting the command
    if (rc == 0 && r->tty) {
        if (res.fd < 0)
            rc = -EIO;
        else
            rc = set_nonblock(res.fd);
        if (rc == 0 && r->in) {
            ours_in = fcntl(res.fd, F_DUPFD_CLOEXEC, 3);
            if (ours_in < 0)
                rc = -errno;
        }
        if (rc == 0) {
            ours_out = res.fd;
            res.fd = -1;
        }
    }
    if (rc < 0) {
        if (rc == -ETIMEDOUT || res.step == KX__RT_OK) {
            // Stuck or broken helper: take everything down ourselves.
            if (res.pid > 0)
                kill(res.pid, SIGKILL);
            kill(pid, SIGKILL);
        }
        if (rc == -ETIMEDOUT)
            kx__rt_err(err, errlen, "exec: setup timed out");
        else if (res.step != KX__RT_OK)
            kx__rt_format(&res, r->argv[0], err, errlen);
        else
            kx__rt_err(err, errlen, "exec handshake: %s", strerror(-rc));
        // The helper exits as soon as its command has (the command exits
        // right after reporting), so this wait is short.
        while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
        }
        if (res.step == KX__RT_SETNS && res.err == ESRCH) {
            kx__rt_err(err, errlen, "container process %d is not running", (int)r->target);
            rc = -ESRCH;
        }
        if (res.fd >= 0)
            close(res.fd);
        close_fd(&ours_in);
        close_fd(&ours_out);
        close_fd(&ours_err);
        return rc;
    }
    // Detached, the helper is gone (or about to be) and the command is ours
    // to wait for; its reparenting completes before the reaper can look.
    out->pid = p.detach ? res.pid : pid;
    out->cmd_pid = res.pid;
    out->stdin_fd = ours_in;
    out->stdout_fd = ours_out;
    out->stderr_fd = ours_err;
    return 0;
}

int kx_pty_resize(int pty_fd, uint16_t cols, uint16_t rows)
{
    if (cols == 0 || rows == 0 || cols > 10000 || rows > 10000)
        return -EINVAL;
    winsize ws;
    memset(&ws, 0, sizeof ws);
    ws.ws_col = cols;
    ws.ws_row = rows;
    if (ioctl(pty_fd, TIOCSWINSZ, &ws) != 0)
        return -errno;
    return 0;
}
