// rt_smoke - exercises the node runtime against real namespaces (run as root).
//
//   rt_smoke [IMAGE_DIR]      (default /tmp/img; the image is IMAGE_DIR/busybox,
//                              built by tests/integration/mkimage.sh)
//
// Prints one PASS/FAIL line per check and a final "N passed, N failed" line.
// Exit status: 0 all passed, 1 a check failed, 77 skipped (not root / no image).
#include "executor.h"
#include "reaper.h"
#include "runtime.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

namespace {

int g_pass, g_fail;
uv_loop_t g_loop;

void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void check(bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s: ", ok ? "PASS" : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    if (ok)
        g_pass++;
    else
        g_fail++;
}

int count_fds()
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    while (dirent *e = readdir(d))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;  // the DIR's own fd
}

int64_t now_ms()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// Exit statuses delivered by the reaper.
struct waiter {
    bool done;
    int status;
};

void on_exit_cb(void *user, pid_t, int wstatus)
{
    waiter *w = (waiter *)user;
    w->done = true;
    w->status = wstatus;
}

void on_timer(uv_timer_t *) {}

// Runs the loop until w->done or the timeout.
bool wait_for(waiter *w, int timeout_ms)
{
    uv_timer_t t;
    uv_timer_init(&g_loop, &t);
    uv_timer_start(&t, on_timer, 50, 50);
    int64_t end = now_ms() + timeout_ms;
    while (!w->done && now_ms() < end)
        uv_run(&g_loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, nullptr);
    uv_run(&g_loop, UV_RUN_NOWAIT);
    return w->done;
}

// Reads fd into buf until EOF/EIO (a pty master reports EIO once the slave is
// gone) or until `until` appears, or the timeout.
size_t slurp(int fd, char *buf, size_t cap, const char *until, int timeout_ms)
{
    size_t len = 0;
    buf[0] = 0;
    int64_t end = now_ms() + timeout_ms;
    while (len + 1 < cap) {
        int left = (int)(end - now_ms());
        if (left <= 0)
            break;
        pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, left) <= 0)
            continue;
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = 0;
        if (until && strstr(buf, until))
            break;
    }
    return len;
}

struct exec_result {
    int rc;
    char err[512];
    char out[4096];
    char errout[4096];
    int code;
};

// One exec, start to reaped exit. stdin_data (if any) is written, then stdin closed.
void run_exec(pid_t target, const char *cgroup, const char *const *argv, bool tty, bool in,
              uint16_t cols, uint16_t rows, const char *stdin_data, exec_result *res,
              const char *workdir = nullptr)
{
    static const char *const env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                      "HOSTNAME=smoke-pod", nullptr};
    memset(res, 0, sizeof *res);
    res->code = -1;
    kx_exec_req r = {};
    r.target = target;
    r.cgroup = cgroup;
    r.argv = argv;
    r.envp = env;
    r.workdir = workdir;
    r.tty = tty;
    r.in = in;
    r.out = true;
    r.err = !tty;
    r.cols = cols;
    r.rows = rows;
    kx_exec_proc p;
    res->rc = kx_exec_spawn(&r, &p, res->err, sizeof res->err);
    if (res->rc < 0)
        return;
    waiter w = {};
    kx_reaper_watch(p.pid, on_exit_cb, &w);
    if (stdin_data && p.stdin_fd >= 0) {
        if (write(p.stdin_fd, stdin_data, strlen(stdin_data)) < 0)
            perror("write stdin");
    }
    if (p.stdin_fd >= 0 && !tty)
        close(p.stdin_fd);
    slurp(p.stdout_fd, res->out, sizeof res->out, nullptr, 5000);
    if (p.stderr_fd >= 0)
        slurp(p.stderr_fd, res->errout, sizeof res->errout, nullptr, 5000);
    if (!wait_for(&w, 5000)) {
        kill(p.cmd_pid, SIGKILL);
        kx_reaper_unwatch(p.pid);
        waitpid(p.pid, nullptr, 0);
    } else {
        res->code = kx_exit_code(w.status);
    }
    if (p.stdin_fd >= 0 && tty)
        close(p.stdin_fd);
    close(p.stdout_fd);
    if (p.stderr_fd >= 0)
        close(p.stderr_fd);
}

bool has_children(pid_t except)
{
    // Every child of ours shows up in some /proc/PID/stat with our pid as PPid.
    DIR *d = opendir("/proc");
    bool found = false;
    pid_t me = getpid();
    while (dirent *e = d ? readdir(d) : nullptr) {
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        const char *rp = strrchr(buf, ')');
        char state;
        int ppid;
        if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == me &&
            atoi(e->d_name) != except) {
            printf("  leftover child %s state %c\n", e->d_name, state);
            found = true;
        }
    }
    if (d)
        closedir(d);
    return found;
}

} // namespace

int main(int argc, char **argv)
{
    setvbuf(stdout, nullptr, _IOLBF, 0);
    const char *imgdir = argc > 1 ? argv[1] : "/tmp/img";
    char rootfs[1024];
    snprintf(rootfs, sizeof rootfs, "%s/busybox", imgdir);
    if (geteuid() != 0) {
        printf("SKIP: rt_smoke needs root\n");
        return 77;
    }
    char bb[1100];
    snprintf(bb, sizeof bb, "%s/bin/busybox", rootfs);
    if (access(bb, X_OK) != 0) {
        printf("SKIP: no image at %s (run tests/integration/mkimage.sh %s)\n", rootfs, imgdir);
        return 77;
    }
    // A cgroup v2 hierarchy: the unified mount of a hybrid host, or the root.
    const char *cgroup = nullptr;
    if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0)
        cgroup = "/sys/fs/cgroup/kx-smoke/ctr";
    else if (access("/sys/fs/cgroup/unified/cgroup.controllers", F_OK) == 0)
        cgroup = "/sys/fs/cgroup/unified/kx-smoke/ctr";

    // Counted once the loop and the reaper exist: libuv keeps a process-wide
    // signal pipe open forever after the first uv_signal_init.
    uv_loop_init(&g_loop);
    int rc = kx_reaper_init(&g_loop);
    check(rc == 0, "reaper init (%d)", rc);
    int fds_before = count_fds();

    char err[512] = "";
    kx_sandbox sb;
    rc = kx_sandbox_create("smoke-pod", false, &sb, err, sizeof err);
    check(rc == 0 && sb.pid > 0, "sandbox create (%d %s)", rc, err);
    waiter sbw = {};
    if (rc == 0)
        kx_reaper_watch(sb.pid, on_exit_cb, &sbw);

    // Container start failures leave nothing behind.
    {
        static const char *const env[] = {"PATH=/bin", nullptr};
        static const char *const bad[] = {"nosuchcmd", nullptr};
        kx_ctr_start c = {};
        c.sandbox_pid = sb.pid;
        c.rootfs = rootfs;
        c.argv = bad;
        c.envp = env;
        kx_ctr_proc cp;
        rc = kx_container_start(&c, &cp, err, sizeof err);
        check(rc == -ENOENT && strstr(err, "exec: \"nosuchcmd\": executable file not found in $PATH"),
              "container start unknown command -> %d '%s'", rc, err);
        static const char *const sh[] = {"sh", nullptr};
        c.argv = sh;
        c.workdir = "/nope";
        rc = kx_container_start(&c, &cp, err, sizeof err);
        check(rc == -ENOENT && strcmp(err, "chdir /nope: No such file or directory") == 0,
              "container start bad workdir -> %d '%s'", rc, err);
        c.workdir = nullptr;
        c.rootfs = "/nonexistent/img";
        rc = kx_container_start(&c, &cp, err, sizeof err);
        check(rc == -ENOENT && strstr(err, "rootfs /nonexistent/img: No such file or directory"),
              "container start missing rootfs -> %d '%s'", rc, err);
        // A tty main process gets /dev/pts/0 of the container's own devpts.
        static const char *const tt[] = {"sh", "-c", "tty", nullptr};
        c.rootfs = rootfs;
        c.argv = tt;
        c.tty = true;
        rc = kx_container_start(&c, &cp, err, sizeof err);
        check(rc == 0 && cp.stdout_fd >= 0 && cp.stdin_fd == -1 && cp.stderr_fd == -1,
              "tty container start (%d %s)", rc, err);
        if (rc == 0) {
            waiter w = {};
            kx_reaper_watch(cp.pid, on_exit_cb, &w);
            char out[1024];
            slurp(cp.stdout_fd, out, sizeof out, nullptr, 5000);
            check(strstr(out, "/dev/pts/0") != nullptr, "tty container sees /dev/pts/0: '%s'", out);
            check(wait_for(&w, 5000) && kx_exit_code(w.status) == 0, "tty container exits 0");
            close(cp.stdout_fd);
        }
    }
    check(!has_children(sb.pid), "no processes left after failed starts");

    static const char *const main_argv[] = {"sh", "-c", "echo started; sleep 1000", nullptr};
    static const char *const main_env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                           "HOSTNAME=smoke-pod", nullptr};
    kx_ctr_start c = {};
    c.sandbox_pid = sb.pid;
    c.rootfs = rootfs;
    c.argv = main_argv;
    c.envp = main_env;
    c.cgroup = cgroup;
    kx_ctr_proc cp = {0, -1, -1, -1};
    rc = kx_container_start(&c, &cp, err, sizeof err);
    check(rc == 0 && cp.pid > 0 && cp.stdout_fd >= 0 && cp.stderr_fd >= 0 && cp.stdin_fd == -1,
          "container start (%d %s)", rc, err);
    waiter ctrw = {};
    if (rc == 0) {
        kx_reaper_watch(cp.pid, on_exit_cb, &ctrw);
        char out[256];
        slurp(cp.stdout_fd, out, sizeof out, "started\n", 5000);
        check(strcmp(out, "started\n") == 0, "main process stdout: '%s'", out);
    }

    exec_result res;
    if (rc == 0) {
        static const char *const a1[] = {"hostname", nullptr};
        run_exec(cp.pid, cgroup, a1, false, false, 0, 0, nullptr, &res);
        check(res.rc == 0 && strcmp(res.out, "smoke-pod\n") == 0 && res.code == 0,
              "exec hostname -> rc %d out '%s' code %d %s", res.rc, res.out, res.code, res.err);

        static const char *const a2[] = {"sh", "-c", "echo $$; cat /proc/1/cmdline", nullptr};
        run_exec(cp.pid, cgroup, a2, false, false, 0, 0, nullptr, &res);
        int inner = atoi(res.out);
        const char *nl = strchr(res.out, '\n');
        // busybox sh execs the last command of -c in place, so PID 1 may be
        // `sleep 1000` by now: compare with what the host sees for cp.pid.
        char host_cmd[256] = "";
        {
            char path[64];
            snprintf(path, sizeof path, "/proc/%d/cmdline", (int)cp.pid);
            int fd = open(path, O_RDONLY);
            ssize_t n = fd >= 0 ? read(fd, host_cmd, sizeof host_cmd - 1) : -1;
            if (fd >= 0)
                close(fd);
            host_cmd[n > 0 ? n : 0] = 0;
            bool main_is_1 = nl && n > 0 && memcmp(nl + 1, host_cmd, (size_t)n) == 0 &&
                             strstr(nl + 1, "sleep") != nullptr;
        for (char *q = res.out; nl && q < res.out + sizeof res.out - 1 && (*q || q[1]); q++)
            if (!*q)
                *q = ' ';
        check(res.rc == 0 && inner > 1 && inner < 100 && main_is_1 && res.code == 0,
              "exec in pid ns: $$=%d, /proc/1/cmdline is the main process: '%s'", inner, res.out);
        }

        static const char *const a3[] = {"ls", "/", nullptr};
        run_exec(cp.pid, cgroup, a3, false, false, 0, 0, nullptr, &res);
        check(res.rc == 0 && strstr(res.out, "bin\n") && strstr(res.out, "proc\n") &&
                  !strstr(res.out, "usr") && res.code == 0,
              "exec ls / shows the image root: '%s'", res.out);

        static const char *const a4[] = {"sh", "-c", "exit 42", nullptr};
        run_exec(cp.pid, cgroup, a4, false, false, 0, 0, nullptr, &res);
        check(res.rc == 0 && res.code == 42, "exec exit 42 -> %d", res.code);

        static const char *const a5[] = {"sh", "-c", "kill -9 $$", nullptr};
        run_exec(cp.pid, cgroup, a5, false, false, 0, 0, nullptr, &res);
        check(res.rc == 0 && res.code == 137, "exec killed by SIGKILL -> %d", res.code);

        static const char *const a6[] = {"/nonexistent", nullptr};
        run_exec(cp.pid, cgroup, a6, false, false, 0, 0, nullptr, &res);
        check(res.rc == -ENOENT &&
                  strcmp(res.err, "exec: \"/nonexistent\": stat /nonexistent: no such file or directory") == 0,
              "exec /nonexistent -> %d '%s'", res.rc, res.err);

        static const char *const a7[] = {"nosuchcmd", "x", nullptr};
        run_exec(cp.pid, cgroup, a7, false, false, 0, 0, nullptr, &res);
        check(res.rc == -ENOENT &&
                  strcmp(res.err, "exec: \"nosuchcmd\": executable file not found in $PATH") == 0,
              "exec nosuchcmd -> %d '%s'", res.rc, res.err);

        static const char *const a8[] = {"/etc", nullptr};
        run_exec(cp.pid, cgroup, a8, false, false, 0, 0, nullptr, &res);
        check(res.rc == -EACCES && strcmp(res.err, "exec: \"/etc\": permission denied") == 0,
              "exec a directory -> %d '%s'", res.rc, res.err);

        static const char *const a9[] = {"pwd", nullptr};
        run_exec(cp.pid, cgroup, a9, false, false, 0, 0, nullptr, &res, "/nope");
        check(res.rc == -ENOENT && strcmp(res.err, "chdir /nope: No such file or directory") == 0,
              "exec bad workdir -> %d '%s'", res.rc, res.err);
        run_exec(cp.pid, cgroup, a9, false, false, 0, 0, nullptr, &res, "/etc");
        check(res.rc == 0 && strcmp(res.out, "/etc\n") == 0, "exec workdir /etc: '%s'", res.out);

        static const char *const a10[] = {"cat", nullptr};
        run_exec(cp.pid, cgroup, a10, false, true, 0, 0, "hello stdin\n", &res);
        check(res.rc == 0 && strcmp(res.out, "hello stdin\n") == 0 && res.code == 0,
              "exec cat echoes stdin, EOF ends it: '%s'", res.out);

        static const char *const a11[] = {"sh", "-c", "echo out; echo err >&2; exit 3", nullptr};
        run_exec(cp.pid, cgroup, a11, false, false, 0, 0, nullptr, &res);
        check(res.rc == 0 && strcmp(res.out, "out\n") == 0 && strcmp(res.errout, "err\n") == 0 &&
                  res.code == 3,
              "exec separate stdout/stderr: '%s' '%s' %d", res.out, res.errout, res.code);

        static const char *const a12[] = {"ls", "/sys/class/net", nullptr};
        run_exec(cp.pid, cgroup, a12, false, false, 0, 0, nullptr, &res);
        check(res.rc == 0 && strcmp(res.out, "lo\n") == 0, "exec sees only the pod's lo: '%s'",
              res.out);
        static const char *const a13[] = {"cat", "/sys/class/net/lo/operstate",
                                          "/sys/class/net/lo/flags", nullptr};
        run_exec(cp.pid, cgroup, a13, false, false, 0, 0, nullptr, &res);
        check(res.rc == 0 && strstr(res.out, "0x9") != nullptr, "loopback is up: '%s'", res.out);

        if (cgroup) {
            static const char *const a14[] = {"cat", "/proc/self/cgroup", nullptr};
            run_exec(cp.pid, cgroup, a14, false, false, 0, 0, nullptr, &res);
            check(res.rc == 0 && strstr(res.out, "0::/\n") != nullptr,
                  "exec is at the root of the container's cgroup ns: '%s'", res.out);
            char procs[512], buf[4096];
            snprintf(procs, sizeof procs, "%s/cgroup.procs", cgroup);
            int fd = open(procs, O_RDONLY);
            ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
            if (fd >= 0)
                close(fd);
            buf[n > 0 ? n : 0] = 0;
            char want[32];
            snprintf(want, sizeof want, "%d\n", (int)cp.pid);
            check(strstr(buf, want) != nullptr, "main process is in %s", cgroup);
        }

        static const char *const t1[] = {"sh", "-c", "stty size; tty", nullptr};
        run_exec(cp.pid, cgroup, t1, true, false, 120, 40, nullptr, &res);
        check(res.rc == 0 && strstr(res.out, "40 120") && strstr(res.out, "/dev/pts/") &&
                  res.code == 0,
              "tty exec: '%s' code %d %s", res.out, res.code, res.err);

        // Resize while running, then let the command read a line and report.
        {
            static const char *const t2[] = {"sh", "-c", "read x; stty size; echo $TERM", nullptr};
            kx_exec_req r = {};
            r.target = cp.pid;
            r.argv = t2;
            r.envp = main_env;
            r.tty = r.in = r.out = true;
            r.cols = 80;
            r.rows = 24;
            kx_exec_proc p;
            rc = kx_exec_spawn(&r, &p, err, sizeof err);
            check(rc == 0 && p.stdin_fd >= 0 && p.stdin_fd != p.stdout_fd && p.stderr_fd == -1,
                  "tty exec with stdin (%d %s)", rc, err);
            if (rc == 0) {
                waiter w = {};
                kx_reaper_watch(p.pid, on_exit_cb, &w);
                check(kx_pty_resize(p.stdout_fd, 100, 50) == 0, "pty resize");
                check(kx_pty_resize(p.stdout_fd, 0, 50) == -EINVAL, "pty resize 0 -> -EINVAL");
                if (write(p.stdin_fd, "\n", 1) != 1)
                    perror("write");
                char out[1024];
                slurp(p.stdout_fd, out, sizeof out, nullptr, 5000);
                check(strstr(out, "50 100") && strstr(out, "xterm"), "resized tty: '%s'", out);
                check(wait_for(&w, 5000) && kx_exit_code(w.status) == 0, "tty exec exit 0");
                close(p.stdin_fd);
                close(p.stdout_fd);
            }
        }

        // Killing the command through cmd_pid is reported through the watched
        // pid: the command itself, adopted by us (a child subreaper, see
        // kx_reaper_init) once the helper exited.
        {
            static const char *const s1[] = {"sleep", "100", nullptr};
            kx_exec_req r = {};
            r.target = cp.pid;
            r.argv = s1;
            r.envp = main_env;
            r.out = true;
            kx_exec_proc p;
            rc = kx_exec_spawn(&r, &p, err, sizeof err);
            check(rc == 0 && p.cmd_pid > 0 && p.cmd_pid == p.pid && p.stdin_fd == -1 &&
                      p.stderr_fd == -1,
                  "exec sleep (%d %s)", rc, err);
            if (rc == 0) {
                waiter w = {};
                kx_reaper_watch(p.pid, on_exit_cb, &w);
                kill(p.cmd_pid, SIGHUP);
                check(wait_for(&w, 5000) && kx_exit_code(w.status) == 128 + SIGHUP,
                      "SIGHUP to cmd_pid -> exit %d", kx_exit_code(w.status));
                close(p.stdout_fd);
            }
        }
    }

    // A main process with open stdin (spec.stdin): a pipe we write, EOF ends cat.
    {
        static const char *const ca[] = {"cat", nullptr};
        kx_ctr_start ic = {};
        ic.sandbox_pid = sb.pid;
        ic.rootfs = rootfs;
        ic.argv = ca;
        ic.envp = main_env;
        ic.open_stdin = true;
        kx_ctr_proc ip;
        rc = kx_container_start(&ic, &ip, err, sizeof err);
        check(rc == 0 && ip.stdin_fd >= 0 && ip.stdout_fd >= 0 && ip.stderr_fd >= 0,
              "container with open stdin (%d %s)", rc, err);
        if (rc == 0) {
            waiter w = {};
            kx_reaper_watch(ip.pid, on_exit_cb, &w);
            check(write(ip.stdin_fd, "ping\n", 5) == 5, "write container stdin");
            close(ip.stdin_fd);
            char out[256];
            slurp(ip.stdout_fd, out, sizeof out, nullptr, 5000);
            check(strcmp(out, "ping\n") == 0, "container echoes stdin: '%s'", out);
            check(wait_for(&w, 5000) && kx_exit_code(w.status) == 0, "container exits 0 on stdin EOF");
            close(ip.stdout_fd);
            close(ip.stderr_fd);
        }
    }

    // A host-network pod keeps the host's interfaces but still gets its own hostname.
    {
        kx_sandbox hsb;
        rc = kx_sandbox_create("host-pod", true, &hsb, err, sizeof err);
        check(rc == 0, "host-network sandbox (%d %s)", rc, err);
        if (rc == 0) {
            waiter hw = {};
            kx_reaper_watch(hsb.pid, on_exit_cb, &hw);
            static const char *const sl[] = {"sleep", "1000", nullptr};
            kx_ctr_start hc = {};
            hc.sandbox_pid = hsb.pid;
            hc.rootfs = rootfs;
            hc.argv = sl;
            hc.envp = main_env;
            kx_ctr_proc hp;
            rc = kx_container_start(&hc, &hp, err, sizeof err);
            check(rc == 0, "host-network container (%d %s)", rc, err);
            if (rc == 0) {
                waiter cw = {};
                kx_reaper_watch(hp.pid, on_exit_cb, &cw);
                static const char *const a1[] = {"hostname", nullptr};
                run_exec(hp.pid, nullptr, a1, false, false, 0, 0, nullptr, &res);
                check(res.rc == 0 && strcmp(res.out, "host-pod\n") == 0, "host-network hostname: '%s'",
                      res.out);
                static const char *const a2[] = {"ls", "/sys/class/net", nullptr};
                run_exec(hp.pid, nullptr, a2, false, false, 0, 0, nullptr, &res);
                DIR *d = opendir("/sys/class/net");
                int host_ifs = 0;
                while (dirent *e = d ? readdir(d) : nullptr)
                    host_ifs += e->d_name[0] != '.';
                if (d)
                    closedir(d);
                int lines = 0;
                for (const char *q = res.out; *q; q++)
                    lines += *q == '\n';
                check(res.rc == 0 && lines == host_ifs, "host-network sees the host's %d interfaces",
                      host_ifs);
                kill(hp.pid, SIGKILL);
                check(wait_for(&cw, 5000), "host-network container reaped");
                close(hp.stdout_fd);
                close(hp.stderr_fd);
            }
            kx_sandbox_kill(&hsb);
            check(wait_for(&hw, 5000), "host-network sandbox reaped");
        }
    }

    // Tear down: the main process first, then the sandbox.
    if (cp.pid > 0) {
        kill(cp.pid, SIGKILL);
        // Not reaped yet (the loop has not run): a zombie target is ESRCH too.
        usleep(50 * 1000);
        static const char *const z1[] = {"hostname", nullptr};
        run_exec(cp.pid, nullptr, z1, false, false, 0, 0, nullptr, &res);
        check(res.rc == -ESRCH && strstr(res.err, "not running"), "exec on zombie target -> %d '%s'",
              res.rc, res.err);
        check(wait_for(&ctrw, 5000) && kx_exit_code(ctrw.status) == 137,
              "main process reaped after SIGKILL (%d)", kx_exit_code(ctrw.status));
        if (cp.stdout_fd >= 0)
            close(cp.stdout_fd);
        if (cp.stderr_fd >= 0)
            close(cp.stderr_fd);
        static const char *const a1[] = {"hostname", nullptr};
        run_exec(cp.pid, nullptr, a1, false, false, 0, 0, nullptr, &res);
        check(res.rc == -ESRCH && strstr(res.err, "not running"), "exec on dead target -> %d '%s'",
              res.rc, res.err);
    }
    if (sb.pid > 0) {
        kx_sandbox_kill(&sb);
        check(wait_for(&sbw, 5000) && WIFSIGNALED(sbw.status), "sandbox reaped after kill");
    }
    check(kx_reaper_count() == 0, "no watches left (%zu)", kx_reaper_count());
    check(!has_children(0), "no zombies or stray children");
    int fds_after = count_fds();
    check(fds_before == fds_after, "fd count restored (%d -> %d)", fds_before, fds_after);
    if (fds_before != fds_after)
        (void)!system("ls -l /proc/$PPID/fd >&2");
    kx_reaper_close();
    uv_run(&g_loop, UV_RUN_NOWAIT);
    rc = uv_loop_close(&g_loop);
    check(rc == 0, "loop closes cleanly (%d)", rc);
    if (cgroup) {
        rmdir(cgroup);
        char parent[512];
        snprintf(parent, sizeof parent, "%s", cgroup);
        *strrchr(parent, '/') = 0;
        rmdir(parent);
    }
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
