// runtime.cc - sandboxes (namespace holders) and container main processes.
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

static const char k_default_path[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
static const int k_handshake_ms = 10000;

// ---------------------------------------------------------------------------
// Shared helpers (runtime.cc + executor.cc)

void kx__rt_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

// Async-signal-safe bounded copy (the child must not call into stdio).
static void safe_copy(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    if (src)
        for (; i + 1 < cap && src[i]; i++)
            dst[i] = src[i];
    dst[i] = 0;
}

struct wire_msg {
    int32_t step, err, pid, pad;
    char arg[512];
};

void kx__rt_send(int chan, int step, int err, const char *arg, pid_t pid, int fd)
{
    wire_msg m;
    memset(&m, 0, sizeof m);
    m.step = step;
    m.err = err;
    m.pid = pid;
    safe_copy(m.arg, sizeof m.arg, arg);
    iovec iov = {&m, sizeof m};
    msghdr h;
    memset(&h, 0, sizeof h);
    h.msg_iov = &iov;
    h.msg_iovlen = 1;
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        cmsghdr align;
    } c;
    if (fd >= 0) {
        memset(&c, 0, sizeof c);
        h.msg_control = c.buf;
        h.msg_controllen = sizeof c.buf;
        cmsghdr *cm = CMSG_FIRSTHDR(&h);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    }
    while (sendmsg(chan, &h, MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
}

void kx__rt_fail(int chan, int step, int err, const char *arg)
{
    kx__rt_send(chan, step, err, arg, 0, -1);
    _exit(127);
}

static int64_t now_ms()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int kx__rt_handshake(int chan, int timeout_ms, kx__rt_result *r)
{
    memset(r, 0, sizeof *r);
    r->fd = -1;
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        pollfd p = {chan, POLLIN, 0};
        int n = poll(&p, 1, (int)left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -ETIMEDOUT;
        wire_msg m;
        iovec iov = {&m, sizeof m};
        union {
            char buf[CMSG_SPACE(sizeof(int) * 4)];
            cmsghdr align;
        } c;
        msghdr h;
        memset(&h, 0, sizeof h);
        h.msg_iov = &iov;
        h.msg_iovlen = 1;
        h.msg_control = c.buf;
        h.msg_controllen = sizeof c.buf;
        ssize_t got = recvmsg(chan, &h, MSG_CMSG_CLOEXEC);
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        if (got == 0)
            return r->step == KX__RT_OK ? 0 : (r->err > 0 ? -r->err : -EIO);
        for (cmsghdr *cm = CMSG_FIRSTHDR(&h); cm; cm = CMSG_NXTHDR(&h, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                continue;
            size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < nfd; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
                if (r->fd < 0)
                    r->fd = fd;
                else
                    close(fd);
            }
        }
        if ((size_t)got != sizeof m)
            continue;  // not ours; our peers always send whole messages
        m.arg[sizeof m.arg - 1] = 0;
        if (m.pid > 0)
            r->pid = m.pid;
        if (m.step != KX__RT_OK && r->step == KX__RT_OK) {
            // The first failure is the cause; keep reading so the child's exit
            // (EOF) is observed before the caller reaps it.
            r->step = m.step;
            r->err = m.err;
            memcpy(r->arg, m.arg, sizeof r->arg);
        }
    }
}

static void lower_strerror(int e, char *out, size_t cap)
{
    snprintf(out, cap, "%s", strerror(e));
    if (out[0] >= 'A' && out[0] <= 'Z')
        out[0] = (char)(out[0] - 'A' + 'a');
}

void kx__rt_format(const kx__rt_result *r, const char *argv0, char *err, size_t errlen)
{
    char low[128];
    lower_strerror(r->err, low, sizeof low);
    const char *a0 = argv0 ? argv0 : r->arg;
    switch (r->step) {
    case KX__RT_LOOKUP:
        if (r->err == EACCES)
            kx__rt_err(err, errlen, "exec: \"%s\": permission denied", a0);
        else
            kx__rt_err(err, errlen, "exec: \"%s\": executable file not found in $PATH", a0);
        break;
    case KX__RT_EXEC:
        if (r->err == ENOENT || r->err == ENOTDIR)
            kx__rt_err(err, errlen, "exec: \"%s\": stat %s: %s", a0, r->arg, low);
        else
            kx__rt_err(err, errlen, "exec: \"%s\": %s", a0, low);
        break;
    case KX__RT_CHDIR:
        kx__rt_err(err, errlen, "chdir %s: %s", r->arg, strerror(r->err));
        break;
    case KX__RT_MOUNT:
        kx__rt_err(err, errlen, "mount %s: %s", r->arg, strerror(r->err));
        break;
    case KX__RT_PIVOT:
        kx__rt_err(err, errlen, "pivot_root %s: %s", r->arg, strerror(r->err));
        break;
    case KX__RT_SETNS:
        if (r->err == ESRCH)
            kx__rt_err(err, errlen, "setns %s: target process is not running", r->arg);
        else
            kx__rt_err(err, errlen, "setns %s: %s", r->arg, strerror(r->err));
        break;
    case KX__RT_CGROUP:
        kx__rt_err(err, errlen, "join cgroup %s: %s", r->arg, strerror(r->err));
        break;
    case KX__RT_UNSHARE:
        kx__rt_err(err, errlen, "unshare %s: %s", r->arg, strerror(r->err));
        break;
    case KX__RT_HOSTNAME:
        kx__rt_err(err, errlen, "sethostname %s: %s", r->arg, strerror(r->err));
        break;
    case KX__RT_LOOPBACK:
        kx__rt_err(err, errlen, "bring up lo: %s", strerror(r->err));
        break;
    case KX__RT_PTY:
        kx__rt_err(err, errlen, "allocate pty %s: %s", r->arg, strerror(r->err));
        break;
    case KX__RT_STDIO:
        kx__rt_err(err, errlen, "set up stdio: %s", strerror(r->err));
        break;
    case KX__RT_FORK:
        kx__rt_err(err, errlen, "fork: %s", strerror(r->err));
        break;
    case KX__RT_SESSION:
        kx__rt_err(err, errlen, "setsid/controlling tty: %s", strerror(r->err));
        break;
    default:
        kx__rt_err(err, errlen, "container setup failed: %s", strerror(r->err));
        break;
    }
}

int kx__rt_exec_prepare(kx__rt_exec *x, const char *const *argv, const char *const *envp)
{
    memset(x, 0, sizeof *x);
    if (!argv || !argv[0] || !argv[0][0])
        return -EINVAL;
    size_t n = 0;
    while (argv[n])
        if (++n > KX_RT_MAX_ARGS)
            return -E2BIG;
    static const char *const empty_env[] = {nullptr};
    if (!envp)
        envp = empty_env;
    n = 0;
    while (envp[n])
        if (++n > KX_RT_MAX_ARGS)
            return -E2BIG;
    x->argv = (char *const *)argv;
    x->envp = (char *const *)envp;
    const char *a0 = argv[0];
    size_t a0len = strlen(a0);
    if (a0len >= KX_RT_MAX_PATH)
        return -E2BIG;
    if (strchr(a0, '/')) {
        x->slash = true;
        return 0;
    }
    const char *path = k_default_path;
    for (size_t i = 0; envp[i]; i++)
        if (strncmp(envp[i], "PATH=", 5) == 0)
            path = envp[i] + 5;
    size_t plen = strlen(path);
    if (plen > 64 * 1024)
        return -E2BIG;
    // Each candidate is at most dir + '/' + argv0 + NUL; dirs sum to plen.
    size_t cap = plen + KX_RT_MAX_PATH_DIRS * (a0len + 3) + 2;
    x->block = (char *)malloc(cap);
    if (!x->block)
        return -ENOMEM;
    char *w = x->block;
    const char *p = path;
    for (;;) {
        const char *e = strchr(p, ':');
        size_t dl = e ? (size_t)(e - p) : strlen(p);
        if (x->ncand < KX_RT_MAX_PATH_DIRS && dl + a0len + 2 <= KX_RT_MAX_PATH) {
            x->cand[x->ncand++] = w;
            if (dl == 0) {  // an empty entry means the current directory
                *w++ = '.';
            } else {
                memcpy(w, p, dl);
                w += dl;
            }
            *w++ = '/';
            memcpy(w, a0, a0len + 1);
            w += a0len + 1;
        }
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

void kx__rt_exec_free(kx__rt_exec *x)
{
    free(x->block);
    x->block = nullptr;
    x->ncand = 0;
}

void kx__rt_exec_run(const kx__rt_exec *x, int chan)
{
    if (x->slash) {
        execve(x->argv[0], x->argv, x->envp);
        kx__rt_fail(chan, KX__RT_EXEC, errno, x->argv[0]);
    }
    bool denied = false;
    for (size_t i = 0; i < x->ncand; i++) {
        execve(x->cand[i], x->argv, x->envp);
        int e = errno;
        if (e == EACCES) {
            denied = true;
            continue;
        }
        if (e == ENOENT || e == ENOTDIR || e == ELOOP || e == ENAMETOOLONG)
            continue;
        // Found but not runnable (ENOEXEC, E2BIG, ...): that is the answer.
        kx__rt_fail(chan, KX__RT_EXEC, e, x->cand[i]);
    }
    kx__rt_fail(chan, KX__RT_LOOKUP, denied ? EACCES : ENOENT, x->argv[0]);
}

void kx__rt_block_signals(sigset_t *old)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, old);
}

void kx__rt_child_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP)
            continue;
        sigaction(s, &sa, nullptr);  // EINVAL for libc-reserved signals: ignore
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
}

void kx__rt_die_with_parent(int chan)
{
    // The node is these processes' keeper: if it dies without stopping them
    // (SIGKILL, a crash), they must not run on unowned -- a restarted node
    // would start the pods again beside them. The container's init takes
    // its PID namespace, with every process in it, along.
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    // The parent may have died before the line above: then the channel's
    // other end is closed already.
    struct pollfd pf = {chan, 0, 0};
    if (poll(&pf, 1, 0) == 1 && (pf.revents & (POLLHUP | POLLERR)))
        _exit(127);
}

int kx__rt_child_stdio(int in, int out, int errfd)
{
    int fds[3] = {in, out, errfd};
    // Move sources out of 0..2 first so one dup2 cannot clobber another's source.
    for (int i = 0; i < 3; i++) {
        if (fds[i] >= 0 && fds[i] < 3) {
            int n = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
            if (n < 0)
                return -errno;
            fds[i] = n;
        }
    }
    for (int i = 0; i < 3; i++) {
        if (fds[i] < 0)
            continue;
        if (dup2(fds[i], i) < 0)
            return -errno;
    }
    return 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

static int pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

static int close_range_(unsigned lo, unsigned hi, unsigned flags)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, lo, hi, flags) == 0)
        return 0;
#endif
    // Old kernels: walk the table by hand (slow but only on a fallback path).
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

// ---------------------------------------------------------------------------
// Sandbox

[[noreturn]] static void sandbox_child(int chan, const char *hostname, bool host_network)
{
    kx__rt_child_signals();
    kx__rt_die_with_parent(chan);
    prctl(PR_SET_NAME, "kx-pause", 0, 0, 0);
    int flags = CLONE_NEWIPC | CLONE_NEWUTS | (host_network ? 0 : CLONE_NEWNET);
    if (unshare(flags) != 0)
        kx__rt_fail(chan, KX__RT_UNSHARE, errno, host_network ? "ipc,uts" : "net,ipc,uts");
    if (sethostname(hostname, strlen(hostname)) != 0)
        kx__rt_fail(chan, KX__RT_HOSTNAME, errno, hostname);
    if (!host_network) {
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0)
            kx__rt_fail(chan, KX__RT_LOOPBACK, errno, "lo");
        ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        safe_copy(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
        if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
            kx__rt_fail(chan, KX__RT_LOOPBACK, errno, "lo");
        ifr.ifr_flags = (short)(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
        if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
            kx__rt_fail(chan, KX__RT_LOOPBACK, errno, "lo");
        close(s);
    }
    // Hold nothing of the daemon's: closing the channel also tells the parent
    // that setup is complete (EOF without a failure message).
    close_range_(0, ~0U, 0);
    for (;;)
        pause();
}

int kx_sandbox_create(const char *hostname, bool host_network, kx_sandbox *out, char *err,
                      size_t errlen)
{
    kx__rt_err(err, errlen, "%s", "");
    if (out)
        out->pid = 0;
    if (!out || !hostname || !hostname[0] || strlen(hostname) > 64) {
        kx__rt_err(err, errlen, "invalid sandbox hostname");
        return -EINVAL;
    }
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0) {
        int e = errno;
        kx__rt_err(err, errlen, "socketpair: %s", strerror(e));
        return -e;
    }
    sigset_t old;
    kx__rt_block_signals(&old);
    pid_t pid = fork();
    if (pid == 0) {
        close(sp[0]);
        sandbox_child(sp[1], hostname, host_network);
    }
    int fe = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    close(sp[1]);
    if (pid < 0) {
        close(sp[0]);
        kx__rt_err(err, errlen, "fork: %s", strerror(fe));
        return -fe;
    }
    kx__rt_result r;
    int rc = kx__rt_handshake(sp[0], k_handshake_ms, &r);
    close(sp[0]);
    close_fd(&r.fd);
    if (rc < 0) {
        if (rc == -ETIMEDOUT) {
            kill(pid, SIGKILL);
            kx__rt_err(err, errlen, "sandbox setup timed out");
        } else if (r.step != KX__RT_OK) {
            kx__rt_format(&r, nullptr, err, errlen);
        } else {
            kx__rt_err(err, errlen, "sandbox handshake: %s", strerror(-rc));
        }
        while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
        }
        return rc;
    }
    out->pid = pid;
    return 0;
}

void kx_sandbox_kill(kx_sandbox *sb)
{
    if (sb && sb->pid > 0)
        kill(sb->pid, SIGKILL);
}

// ---------------------------------------------------------------------------
// Container start

namespace {

// Every path the child needs, built before the clone (the child only copies
// pointers around). Index names keep the child readable.
enum {
    P_PROC, P_SYS, P_DEV, P_PTS, P_SHM, P_PTMX_LINK, P_PTMX_OPEN, P_FD, P_STDIN, P_STDOUT,
    P_STDERR, P_DEV_NULL, P_DEV_ZERO, P_DEV_FULL, P_DEV_RANDOM, P_DEV_URANDOM, P_DEV_TTY,
    P_COUNT
};
const char *const k_rel[P_COUNT] = {
    "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/dev/ptmx", "/dev/pts/ptmx", "/dev/fd",
    "/dev/stdin", "/dev/stdout", "/dev/stderr", "/dev/null", "/dev/zero", "/dev/full",
    "/dev/random", "/dev/urandom", "/dev/tty",
};

struct ctr_plan {
    const kx_ctr_start *c;
    kx__rt_exec x;
    char *paths[P_COUNT];
    char *pathblock;
    const char *workdir;
    int nsfd_pidfd;            // pidfd of the sandbox, or -1
    int ns_fds[3];             // fallback: net, ipc, uts fds (-1 = not joined)
    int cgroup_procs;          // open cgroup.procs, or -1
    int stdin_child, stdout_child, stderr_child;   // child ends (pipes/devnull), -1 tty
    int chan;                  // child end of the handshake channel
};

const char *const k_ns_name[3] = {"net", "ipc", "uts"};
const int k_ns_flag[3] = {CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS};

[[noreturn]] void ctr_fail(const ctr_plan *p, int step, int e, const char *arg)
{
    kx__rt_fail(p->chan, step, e, arg);
}

void ctr_mount(const ctr_plan *p, const char *src, const char *tgt, const char *type,
               unsigned long flags, const char *data)
{
    if (mount(src, tgt, type, flags, data) != 0)
        ctr_fail(p, KX__RT_MOUNT, errno, tgt);
}

void ctr_mkdir(const char *path)
{
    mkdir(path, 0755);  // EEXIST is the common case; a real problem shows at mount
}

[[noreturn]] void ctr_child(const ctr_plan *p)
{
    kx__rt_child_signals();
    kx__rt_die_with_parent(p->chan);
    const kx_ctr_start *c = p->c;

    // Pod namespaces first, while /proc still shows the host.
    if (p->nsfd_pidfd >= 0) {
        int flags = 0;
        for (int i = 0; i < 3; i++)
            if (p->ns_fds[i] == -2)
                flags |= k_ns_flag[i];
        if (flags && setns(p->nsfd_pidfd, flags) != 0)
            ctr_fail(p, KX__RT_SETNS, errno, "net,ipc,uts");
    } else {
        for (int i = 0; i < 3; i++)
            if (p->ns_fds[i] >= 0 && setns(p->ns_fds[i], k_ns_flag[i]) != 0)
                ctr_fail(p, KX__RT_SETNS, errno, k_ns_name[i]);
    }
    if (p->cgroup_procs >= 0) {
        // "0" means the writer; our pid number here is 1 in the new PID namespace.
        if (write(p->cgroup_procs, "0", 1) != 1)
            ctr_fail(p, KX__RT_CGROUP, errno, c->cgroup);
        // Unshared after joining, so the container sees its own cgroup as "/".
        if (unshare(CLONE_NEWCGROUP) != 0)
            ctr_fail(p, KX__RT_UNSHARE, errno, "cgroup");
    }

    ctr_mount(p, nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
    ctr_mount(p, c->rootfs, c->rootfs, nullptr, MS_BIND | MS_REC, nullptr);

    ctr_mkdir(p->paths[P_PROC]);
    ctr_mount(p, "proc", p->paths[P_PROC], "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
    ctr_mkdir(p->paths[P_SYS]);
    ctr_mount(p, "sysfs", p->paths[P_SYS], "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              nullptr);
    ctr_mkdir(p->paths[P_DEV]);
    ctr_mount(p, "tmpfs", p->paths[P_DEV], "tmpfs", MS_NOSUID | MS_STRICTATIME,
              "mode=755,size=65536k");
    static const int devs[] = {P_DEV_NULL, P_DEV_ZERO, P_DEV_FULL, P_DEV_RANDOM, P_DEV_URANDOM,
                               P_DEV_TTY};
    for (int d : devs) {
        int fd = open(p->paths[d], O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0)
            ctr_fail(p, KX__RT_MOUNT, errno, p->paths[d]);
        close(fd);
        // The host node itself is the source: k_rel[d] is an absolute host path.
        ctr_mount(p, k_rel[d], p->paths[d], nullptr, MS_BIND, nullptr);
    }
    ctr_mkdir(p->paths[P_PTS]);
    ctr_mount(p, "devpts", p->paths[P_PTS], "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0666,mode=0620,gid=5");
    if (symlink("pts/ptmx", p->paths[P_PTMX_LINK]) != 0)
        ctr_fail(p, KX__RT_MOUNT, errno, p->paths[P_PTMX_LINK]);
    ctr_mkdir(p->paths[P_SHM]);
    ctr_mount(p, "shm", p->paths[P_SHM], "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "mode=1777,size=65536k");
    // Conveniences every image expects; failures are harmless.
    (void)!symlink("/proc/self/fd", p->paths[P_FD]);
    (void)!symlink("/proc/self/fd/0", p->paths[P_STDIN]);
    (void)!symlink("/proc/self/fd/1", p->paths[P_STDOUT]);
    (void)!symlink("/proc/self/fd/2", p->paths[P_STDERR]);

    int in = p->stdin_child, out = p->stdout_child, errfd = p->stderr_child;
    if (c->tty) {
        // Allocated from the container's own devpts so `tty` prints /dev/pts/N.
        int m = open(p->paths[P_PTMX_OPEN], O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (m < 0)
            ctr_fail(p, KX__RT_PTY, errno, "/dev/ptmx");
        int unlock = 0;
        if (ioctl(m, TIOCSPTLCK, &unlock) != 0)
            ctr_fail(p, KX__RT_PTY, errno, "/dev/ptmx");
        int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (s < 0)
            ctr_fail(p, KX__RT_PTY, errno, "/dev/pts");
        kx__rt_send(p->chan, KX__RT_OK, 0, nullptr, 0, m);
        close(m);
        in = out = errfd = s;
    }

    // pivot_root(".", ".") stacks the old root on top of the new one; the
    // detach then leaves only the image (no put_old directory needed).
    if (chdir(c->rootfs) != 0)
        ctr_fail(p, KX__RT_CHDIR, errno, c->rootfs);
    if (syscall(SYS_pivot_root, ".", ".") != 0)
        ctr_fail(p, KX__RT_PIVOT, errno, c->rootfs);
    if (umount2(".", MNT_DETACH) != 0)
        ctr_fail(p, KX__RT_PIVOT, errno, "detach old root");
    if (chdir("/") != 0)
        ctr_fail(p, KX__RT_CHDIR, errno, "/");
    if (chdir(p->workdir) != 0)
        ctr_fail(p, KX__RT_CHDIR, errno, p->workdir);

    if (setsid() < 0)
        ctr_fail(p, KX__RT_SESSION, errno, nullptr);
    if (c->tty && ioctl(in, TIOCSCTTY, 0) != 0)
        ctr_fail(p, KX__RT_SESSION, errno, nullptr);
    int rc = kx__rt_child_stdio(in, out, errfd);
    if (rc < 0)
        ctr_fail(p, KX__RT_STDIO, -rc, nullptr);
    close_range_(3, ~0U, CLOSE_RANGE_CLOEXEC);
    kx__rt_exec_run(&p->x, p->chan);
}

void plan_free(ctr_plan *p)
{
    kx__rt_exec_free(&p->x);
    free(p->pathblock);
    p->pathblock = nullptr;
    close_fd(&p->nsfd_pidfd);
    for (int i = 0; i < 3; i++)
        if (p->ns_fds[i] >= 0)
            close_fd(&p->ns_fds[i]);
    close_fd(&p->cgroup_procs);
    close_fd(&p->stdin_child);
    close_fd(&p->stdout_child);
    close_fd(&p->stderr_child);
    close_fd(&p->chan);
}

bool same_ns(pid_t pid, const char *name, int *e)
{
    char a[64], b[64];
    snprintf(a, sizeof a, "/proc/self/ns/%s", name);
    snprintf(b, sizeof b, "/proc/%d/ns/%s", (int)pid, name);
    struct stat sa, sb;
    *e = 0;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) {
        *e = errno;
        return false;
    }
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int mkdir_p(const char *path)
{
    char buf[KX_RT_MAX_PATH];
    if (strlen(path) >= sizeof buf)
        return -E2BIG;
    memcpy(buf, path, strlen(path) + 1);
    for (char *s = buf + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
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

} // namespace

int kx_container_start(const kx_ctr_start *c, kx_ctr_proc *out, char *err, size_t errlen)
{
    kx__rt_err(err, errlen, "%s", "");
    if (!out) {
        kx__rt_err(err, errlen, "invalid container start request");
        return -EINVAL;
    }
    *out = kx_ctr_proc{0, -1, -1, -1};
    if (!c || !c->rootfs || c->rootfs[0] != '/') {
        kx__rt_err(err, errlen, "invalid container start request: rootfs must be absolute");
        return -EINVAL;
    }
    if (strlen(c->rootfs) + 32 > KX_RT_MAX_PATH ||
        (c->workdir && strlen(c->workdir) >= KX_RT_MAX_PATH) ||
        (c->cgroup && strlen(c->cgroup) + 16 >= KX_RT_MAX_PATH)) {
        kx__rt_err(err, errlen, "container path too long");
        return -E2BIG;
    }
    struct stat st;
    int se = stat(c->rootfs, &st) != 0 ? errno : (S_ISDIR(st.st_mode) ? 0 : ENOTDIR);
    if (se) {
        int e = se;
        kx__rt_err(err, errlen, "rootfs %s: %s", c->rootfs, strerror(e));
        return -e;
    }

    ctr_plan p;
    memset(&p, 0, sizeof p);
    p.c = c;
    p.nsfd_pidfd = -1;
    p.ns_fds[0] = p.ns_fds[1] = p.ns_fds[2] = -1;
    p.cgroup_procs = p.stdin_child = p.stdout_child = p.stderr_child = p.chan = -1;
    p.workdir = c->workdir && c->workdir[0] ? c->workdir : "/";
    int rc = kx__rt_exec_prepare(&p.x, c->argv, c->envp);
    if (rc < 0) {
        if (rc == -EINVAL)
            kx__rt_err(err, errlen, "container command is empty");
        else
            kx__rt_err(err, errlen, "container command: %s", strerror(-rc));
        return rc;
    }

    // Paths under the rootfs, as one block.
    size_t rl = strlen(c->rootfs);
    while (rl > 1 && c->rootfs[rl - 1] == '/')
        rl--;
    p.pathblock = (char *)malloc(P_COUNT * (rl + 32));
    if (!p.pathblock) {
        plan_free(&p);
        kx__rt_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (int i = 0; i < P_COUNT; i++) {
        p.paths[i] = p.pathblock + i * (rl + 32);
        memcpy(p.paths[i], c->rootfs, rl);
        snprintf(p.paths[i] + rl, 32, "%s", k_rel[i]);
    }

    // Which pod namespaces to join. ns_fds[i] == -2 marks "join through the pidfd".
    if (c->sandbox_pid > 0) {
        bool any = false;
        bool diff[3];
        for (int i = 0; i < 3; i++) {
            int e;
            diff[i] = !same_ns(c->sandbox_pid, k_ns_name[i], &e);
            if (e) {
                plan_free(&p);
                kx__rt_err(err, errlen, "sandbox process %d is not running", (int)c->sandbox_pid);
                return -ESRCH;
            }
            any |= diff[i];
        }
        if (any) {
            p.nsfd_pidfd = pidfd_open_(c->sandbox_pid);
            if (p.nsfd_pidfd < 0 && errno == ESRCH) {
                plan_free(&p);
                kx__rt_err(err, errlen, "sandbox process %d is not running", (int)c->sandbox_pid);
                return -ESRCH;
            }
            for (int i = 0; i < 3; i++) {
                if (!diff[i])
                    continue;
                if (p.nsfd_pidfd >= 0) {
                    p.ns_fds[i] = -2;
                    continue;
                }
                char path[64];
                snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)c->sandbox_pid, k_ns_name[i]);
                p.ns_fds[i] = open(path, O_RDONLY | O_CLOEXEC);
                if (p.ns_fds[i] < 0) {
                    plan_free(&p);
                    kx__rt_err(err, errlen, "sandbox process %d is not running",
                               (int)c->sandbox_pid);
                    return -ESRCH;
                }
            }
        }
    }

    if (c->cgroup) {
        rc = mkdir_p(c->cgroup);
        char procs[KX_RT_MAX_PATH];
        snprintf(procs, sizeof procs, "%s/cgroup.procs", c->cgroup);
        if (rc == 0) {
            p.cgroup_procs = open(procs, O_WRONLY | O_CLOEXEC);
            if (p.cgroup_procs < 0)
                rc = -errno;
        }
        if (rc < 0) {
            plan_free(&p);
            kx__rt_err(err, errlen, "cgroup %s: %s", c->cgroup, strerror(-rc));
            return rc;
        }
    }

    int ours_in = -1, ours_out = -1, ours_err = -1;
    rc = 0;
    if (!c->tty) {
        if (c->open_stdin)
            rc = make_pipe(&ours_in, &p.stdin_child, true);
        else if ((p.stdin_child = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
            rc = -errno;
        if (rc == 0)
            rc = make_pipe(&ours_out, &p.stdout_child, false);
        if (rc == 0)
            rc = make_pipe(&ours_err, &p.stderr_child, false);
    }
    int sp[2] = {-1, -1};
    if (rc == 0 && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0)
        rc = -errno;
    if (rc < 0) {
        close_fd(&ours_in);
        close_fd(&ours_out);
        close_fd(&ours_err);
        plan_free(&p);
        kx__rt_err(err, errlen, "container stdio: %s", strerror(-rc));
        return rc;
    }
    p.chan = sp[1];

    // A raw clone with a null stack behaves like fork, but the child is PID 1
    // of a new PID namespace and still our direct child, so the reaper sees
    // the main process's own exit status.
    sigset_t old;
    kx__rt_block_signals(&old);
    long pid = syscall(SYS_clone, (unsigned long)(CLONE_NEWNS | CLONE_NEWPID | SIGCHLD), nullptr,
                       nullptr, nullptr, nullptr);
    if (pid == 0) {
        close(sp[0]);
        ctr_child(&p);
    }
    int fe = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    plan_free(&p);  // closes our copies of the child's ends, including sp[1]
    if (pid < 0) {
        close(sp[0]);
        close_fd(&ours_in);
        close_fd(&ours_out);
        close_fd(&ours_err);
        kx__rt_err(err, errlen, "clone: %s", strerror(fe));
        return -fe;
    }

    kx__rt_result r;
    rc = kx__rt_handshake(sp[0], k_handshake_ms, &r);
    close(sp[0]);
    if (rc == 0 && c->tty && r.fd < 0)
        rc = -EIO;
    if (rc == 0 && c->tty) {
        rc = set_nonblock(r.fd);
        if (rc == 0 && c->open_stdin) {
            ours_in = fcntl(r.fd, F_DUPFD_CLOEXEC, 3);
            if (ours_in < 0)
                rc = -errno;
        }
        ours_out = r.fd;
        r.fd = -1;
    }
    if (rc < 0) {
        if (rc == -ETIMEDOUT) {
            kill((pid_t)pid, SIGKILL);
            kx__rt_err(err, errlen, "container setup timed out");
        } else if (r.step != KX__RT_OK) {
            kx__rt_format(&r, c->argv[0], err, errlen);
        } else {
            kill((pid_t)pid, SIGKILL);
            kx__rt_err(err, errlen, "container start handshake: %s", strerror(-rc));
        }
        while (waitpid((pid_t)pid, nullptr, 0) < 0 && errno == EINTR) {
        }
        close_fd(&r.fd);
        close_fd(&ours_in);
        close_fd(&ours_out);
        close_fd(&ours_err);
        return rc;
    }
    out->pid = (pid_t)pid;
    out->stdin_fd = ours_in;
    out->stdout_fd = ours_out;
    out->stderr_fd = ours_err;
    return 0;
}
