// pm_smoke - end-to-end check of the pod manager with real containers.
//
// Needs root (namespaces, mounts) and a static /bin/busybox. Builds a busybox
// image, a manifest directory and a data directory under a fresh /tmp dir,
// runs kx_podmgr on a libuv loop and checks: phases, exit codes, restarts with
// backoff, StartError, bad manifests, CRI log contents, find(), removal and
// change of manifest files, and that shutdown leaves no handle, child or fd.
// Exit status 0 = all checks passed, 1 = a check failed, 77 = skipped.
#include <dirent.h>
#include <signal.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "podmgr.h"
#include "reaper.h"

static int failures;

#define CHECK(cond, ...)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            failures++;                                                                  \
            fprintf(stderr, "pm_smoke: FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
        }                                                                                \
    } while (0)

static char root[64];
static char mdir[128], idir[128], ddir[128];
static kx_podmgr *pm;
static uv_loop_t loop;
static uv_timer_t step_timer;
static int step;
static bool shut_down;

static void put_file(const char *name, const char *text)
{
    char path[256], tmp[256];
    snprintf(path, sizeof path, "%s/%s", mdir, name);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", mdir, name);
    FILE *fp = fopen(tmp, "w");
    if (!fp)
        exit(1);
    fputs(text, fp);
    fclose(fp);
    if (rename(tmp, path) != 0)
        exit(1);
}

static int make_image(void)
{
    char bin[160], cmd[1024];
    snprintf(bin, sizeof bin, "%s/busybox/bin", idir);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s && cp /bin/busybox %s/ && cd %s && for a in $(./busybox --list); do "
             "[ -e $a ] || ln -s busybox $a; done && cd .. && mkdir -p proc sys dev tmp etc",
             bin, bin, bin);
    return system(cmd);
}

static json_object *pod_by_name(json_object *pods, const char *name)
{
    for (size_t i = 0; i < json_object_array_length(pods); i++) {
        json_object *p = json_object_array_get_idx(pods, i), *m, *n;
        if (json_object_object_get_ex(p, "metadata", &m) && json_object_object_get_ex(m, "name", &n) &&
            !strcmp(json_object_get_string(n), name))
            return p;
    }
    return NULL;
}

// Follows a path like "status.containerStatuses.0.state.terminated.exitCode".
static json_object *at(json_object *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ".", &save); tok && o; tok = strtok_r(NULL, ".", &save)) {
        if (json_object_is_type(o, json_type_array))
            o = json_object_array_get_idx(o, (size_t)atoi(tok));
        else if (!json_object_object_get_ex(o, tok, &o))
            return NULL;
    }
    return o;
}

static const char *str_at(json_object *o, const char *path)
{
    json_object *v = at(o, path);
    return v ? json_object_get_string(v) : "(missing)";
}

static int int_at(json_object *o, const char *path)
{
    json_object *v = at(o, path);
    return v ? json_object_get_int(v) : -999;
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    return buf;
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *de; d && (de = readdir(d));)
        n += de->d_name[0] != '.';
    if (d)
        closedir(d);
    return n - 1;   // the DIR's own fd
}

static void on_shutdown(void *)
{
    shut_down = true;
}

// --- attach ---------------------------------------------------------------
// Fake attachers on pods "echo" (cat, stdin + stdinOnce) and "ttyc" (a shell
// on a tty with stdin + stdinOnce).

struct fake_att {
    const char *name;
    kx_podmgr_attacher *h;
    char out[4096];
    size_t outlen;
    int ended;            // on_end calls
    int status, code;
    int stdin_closed;     // on_stdin_closed calls
    size_t backlog;       // what on_output reports
    bool detach_in_output;
};

static fake_att att_a = {"A"}, att_b = {"B"}, att_c = {"C"}, att_d = {"D"}, att_t = {"T"};

static size_t fa_output(void *user, int, const uint8_t *p, size_t n)
{
    fake_att *f = (fake_att *)user;
    CHECK(!f->ended, "%s: output after end", f->name);
    size_t room = sizeof f->out - 1 - f->outlen;
    if (n > room)
        n = room;
    memcpy(f->out + f->outlen, p, n);
    f->outlen += n;
    f->out[f->outlen] = 0;
    if (f->detach_in_output && f->h) {
        kx_podmgr_detach(f->h);
        f->h = NULL;
    }
    return f->backlog;
}

static void fa_stdin_closed(void *user)
{
    ((fake_att *)user)->stdin_closed++;
}

static void fa_end(void *user, int status, int code)
{
    fake_att *f = (fake_att *)user;
    f->ended++;
    f->status = status;
    f->code = code;
    f->h = NULL;
}

static const kx_podmgr_attach_callbacks fa_cb = {fa_output, NULL, fa_stdin_closed, fa_end};

static int fa_attach(fake_att *f, const char *pod, bool in, kx_podmgr_attach_info *info)
{
    char err[256] = "";
    int rc = kx_podmgr_attach(pm, "default", pod, "c", in, &fa_cb, f, &f->h, info, err, sizeof err);
    CHECK(rc == 0, "attach %s to %s: %d %s", f->name, pod, rc, err);
    return rc;
}

static void attach_step(int n)
{
    kx_podmgr_attach_info info;
    char err[256];
    if (n == 0) {
        kx_podmgr_attacher *h = NULL;
        CHECK(kx_podmgr_attach(pm, "default", "nope", "c", false, &fa_cb, &att_a, &h, &info, err, sizeof err) ==
                  -ENOENT && !h, "attach to a missing pod");
        CHECK(kx_podmgr_attach(pm, "default", "hello", "c", false, &fa_cb, &att_a, &h, &info, err, sizeof err) ==
                  -EAGAIN, "attach to a stopped container");
        if (fa_attach(&att_a, "echo", true, &info) == 0)
            CHECK(info.stdin_ok && info.stdin_once && !info.tty, "A info");
        if (fa_attach(&att_b, "echo", true, &info) == 0)
            CHECK(info.stdin_ok, "B info (stdin is shared while the owner is attached)");
        att_c.backlog = (size_t)KX_PODMGR_ATTACH_MAX_BACKLOG + 1;
        fa_attach(&att_c, "echo", false, &info);
        att_d.detach_in_output = true;
        fa_attach(&att_d, "echo", false, &info);
        if (fa_attach(&att_t, "ttyc", true, &info) == 0) {
            CHECK(info.tty && info.stdin_ok, "T info");
            CHECK(kx_podmgr_attach_resize(att_t.h, 100, 30) == 0, "resize");
            CHECK(kx_podmgr_attach_resize(att_t.h, 0, 30) == -EINVAL, "resize 0");
            CHECK(kx_podmgr_attach_stdin(att_t.h, (const uint8_t *)"abc\n", 4) >= 0, "T stdin");
        }
        if (att_a.h) {
            CHECK(kx_podmgr_attach_resize(att_a.h, 100, 30) == -ENOTTY, "resize without tty");
            CHECK(kx_podmgr_attach_stdin(att_a.h, (const uint8_t *)"hello\n", 6) >= 0, "A stdin");
        }
    } else if (n == 1) {
        CHECK(!strcmp(att_a.out, "hello\n"), "A out [%s]", att_a.out);
        CHECK(!strcmp(att_b.out, "hello\n"), "B out [%s]", att_b.out);
        CHECK(att_c.ended == 1 && att_c.status == -ENOBUFS, "C not cut off (%d %d)", att_c.ended, att_c.status);
        CHECK(!strcmp(att_d.out, "hello\n") && !att_d.ended && !att_d.h, "D [%s]", att_d.out);
        CHECK(strstr(att_t.out, "30 100") && strstr(att_t.out, "got abc"), "T out [%s]", att_t.out);
        if (att_b.h)
            CHECK(kx_podmgr_attach_stdin(att_b.h, (const uint8_t *)"b2\n", 3) >= 0, "B stdin");
        if (att_a.h) {
            kx_podmgr_attach_stdin_eof(att_a.h);   // the owner: closes the container's stdin
            CHECK(kx_podmgr_attach_stdin(att_a.h, (const uint8_t *)"x", 1) == -EPIPE, "A after EOF");
        }
        CHECK(att_b.stdin_closed == 1, "B not told stdin closed");
        if (att_b.h)
            CHECK(kx_podmgr_attach_stdin(att_b.h, (const uint8_t *)"x", 1) == -EPIPE, "B after close");
        if (att_t.h)
            kx_podmgr_detach(att_t.h);   // the tty owner leaves: ^D for the shell's cat
        att_t.h = NULL;
    } else if (n == 2) {
        CHECK(att_a.ended == 1 && att_a.status == 0 && att_a.code == 0, "A end %d %d %d", att_a.ended,
              att_a.status, att_a.code);
        CHECK(att_b.ended == 1 && att_b.code == 0 && !strcmp(att_b.out, "hello\nb2\n"), "B end %d [%s]",
              att_b.ended, att_b.out);
        CHECK(att_c.ended == 1 && att_d.ended == 0, "C/D end");
        CHECK(att_t.ended == 0, "T got an end after detaching");
        kx_podmgr_attacher *h = NULL;
        CHECK(kx_podmgr_attach(pm, "default", "echo", "c", true, &fa_cb, &att_a, &h, &info, err, sizeof err) ==
                  -EAGAIN, "attach after exit");
        json_object *pods = kx_podmgr_pods_json(pm);
        json_object *p = pod_by_name(pods, "ttyc");
        CHECK(p && !strcmp(str_at(p, "status.phase"), "Succeeded"), "ttyc phase %s (stdinOnce EOF on a tty)",
              str_at(p, "status.phase"));
        json_object_put(pods);
        char path[512];
        kx_podmgr_log_path(pm, "default", "ttyc", "c", false, path, sizeof path);
        const char *log = slurp(path);
        CHECK(log && strstr(log, "cat-done"), "ttyc log: %s", log ? log : "");
    }
}

static void check_running_state(void)
{
    json_object *pods = kx_podmgr_pods_json(pm);
    if (getenv("PM_SMOKE_DUMP"))
        printf("%s\n", json_object_to_json_string_ext(pods, JSON_C_TO_STRING_PRETTY));

    json_object *p = pod_by_name(pods, "hello");
    CHECK(p, "pod hello missing");
    CHECK(!strcmp(str_at(p, "status.phase"), "Failed"), "hello phase %s", str_at(p, "status.phase"));
    CHECK(int_at(p, "status.containerStatuses.0.state.terminated.exitCode") == 3, "hello exit");
    CHECK(!strcmp(str_at(p, "status.containerStatuses.0.state.terminated.reason"), "Error"), "hello reason");
    CHECK(!strcmp(str_at(p, "spec.nodeName"), "node-1"), "nodeName");
    CHECK(!strcmp(str_at(p, "metadata.namespace"), "default"), "namespace");
    CHECK(strlen(str_at(p, "metadata.uid")) == 36, "uid");

    p = pod_by_name(pods, "ok");
    CHECK(p && !strcmp(str_at(p, "status.phase"), "Succeeded"), "ok phase %s", str_at(p, "status.phase"));
    CHECK(!strcmp(str_at(p, "status.containerStatuses.0.state.terminated.reason"), "Completed"), "ok reason");

    p = pod_by_name(pods, "loop");
    CHECK(p && !strcmp(str_at(p, "status.phase"), "Running"), "loop phase %s", str_at(p, "status.phase"));
    int rc = int_at(p, "status.containerStatuses.0.restartCount");
    // Runs at ~0 s, 1 s, 3 s (backoff 1 s, 2 s, then 4 s): 2 restarts at 4.5 s.
    CHECK(rc == 2, "loop restartCount %d", rc);
    CHECK(int_at(p, "status.containerStatuses.0.lastState.terminated.exitCode") == 1, "loop lastState");

    p = pod_by_name(pods, "sleeper");
    CHECK(p && !strcmp(str_at(p, "status.phase"), "Running"), "sleeper phase %s", str_at(p, "status.phase"));
    CHECK(at(p, "status.containerStatuses.0.state.running.startedAt") != NULL, "sleeper running");
    CHECK(!strcmp(str_at(p, "status.conditions.3.status"), "True"), "sleeper ready");
    CHECK(!strcmp(str_at(p, "metadata.labels.app"), "s"), "labels");

    p = pod_by_name(pods, "broken");
    CHECK(p && !strcmp(str_at(p, "status.phase"), "Failed"), "broken phase");
    CHECK(!strcmp(str_at(p, "status.message"), "spec.containers[0].image: Required value"), "broken message %s",
          str_at(p, "status.message"));

    p = pod_by_name(pods, "noexec");
    CHECK(p && !strcmp(str_at(p, "status.phase"), "Failed"), "noexec phase");
    CHECK(!strcmp(str_at(p, "status.containerStatuses.0.state.terminated.reason"), "StartError"), "noexec");
    CHECK(strstr(str_at(p, "status.containerStatuses.0.state.terminated.message"), "executable file not found"),
          "noexec message %s", str_at(p, "status.containerStatuses.0.state.terminated.message"));
    p = pod_by_name(pods, "tty");
    CHECK(p && !strcmp(str_at(p, "status.phase"), "Succeeded"), "tty phase %s", str_at(p, "status.phase"));
    CHECK(json_object_array_length(pods) == 9, "pod count %zu", json_object_array_length(pods));
    json_object_put(pods);

    kx_container_ref ref;
    char err[256];
    CHECK(kx_podmgr_find(pm, "default", "sleeper", "c", &ref, err, sizeof err) == 0, "find: %s", err);
    CHECK(ref.pid > 0 && ref.spec && ref.envp, "ref");
    pid_t sleeper_pid = ref.pid;
    bool host = false;
    for (const char *const *e = ref.envp; e && *e; e++)
        host |= !strcmp(*e, "HOSTNAME=sleeper");
    CHECK(host, "HOSTNAME in envp");
    CHECK(kx_podmgr_find(pm, "default", "nope", "c", &ref, err, sizeof err) == -ENOENT, "find nope");
    CHECK(!strcmp(err, "pod does not exist"), "%s", err);
    CHECK(kx_podmgr_find(pm, "default", "sleeper", "x", &ref, err, sizeof err) == -ESRCH, "find ctr");
    CHECK(!strcmp(err, "container not found (\"x\")"), "%s", err);
    CHECK(kx_podmgr_find(pm, "default", "hello", "c", &ref, err, sizeof err) == -EAGAIN, "find stopped");
    CHECK(!strcmp(err, "container \"c\" in pod \"hello\" is not running"), "%s", err);

    // The sleeper's hostname inside the sandbox is the pod name.
    char proc[64], link[256];
    snprintf(proc, sizeof proc, "/proc/%d/root/bin/busybox", (int)sleeper_pid);
    CHECK(access(proc, X_OK) == 0, "container rootfs %s: %s", proc, strerror(errno));
    snprintf(proc, sizeof proc, "/proc/%d/ns/uts", (int)sleeper_pid);
    ssize_t ln = readlink(proc, link, sizeof link - 1);
    CHECK(ln > 0, "uts ns");

    char path[512];
    CHECK(kx_podmgr_log_path(pm, "default", "hello", "c", false, path, sizeof path) == 0, "log path");
    const char *log = slurp(path);
    CHECK(log, "hello log %s", path);
    if (log) {
        CHECK(strstr(log, "Z stdout F out\n"), "log F: %s", log);
        CHECK(strstr(log, "Z stderr F err\n"), "log err: %s", log);
        CHECK(strstr(log, "Z stdout P partial\n"), "log P: %s", log);
        CHECK(log[4] == '-' && log[10] == 'T' && log[29] == 'Z' && log[19] == '.', "timestamp %.31s", log);
    }
    CHECK(kx_podmgr_log_path(pm, "default", "tty", "c", false, path, sizeof path) == 0, "tty log path");
    log = slurp(path);
    CHECK(log && strstr(log, " stdout F hi-tty xterm\r\n"), "tty log: %s", log ? log : "");
    CHECK(kx_podmgr_log_path(pm, "default", "hello", "c", true, path, sizeof path) == -ENOENT, "no previous");
    CHECK(kx_podmgr_log_path(pm, "default", "loop", "c", true, path, sizeof path) == 0, "loop previous");
    log = slurp(path);
    CHECK(log && strstr(log, " stdout F run\n"), "loop previous log");
}

static void on_step(uv_timer_t *)
{
    step++;
    if (step >= 2 && step <= 4)
        attach_step(step - 2);
    if (step == 9) {   // 4.5 s
        check_running_state();
        // Remove one pod, change another.
        char path[256];
        snprintf(path, sizeof path, "%s/sleeper.json", mdir);
        unlink(path);
        put_file("ok.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\nspec:\n  restartPolicy: Never\n"
                            "  containers: [{name: c, image: busybox, command: [sh, -c, 'echo v2; sleep 100']}]\n");
        kx_podmgr_rescan(pm);
    } else if (step == 15) {   // 7.5 s: sleeper got SIGTERM (ignored by PID 1), SIGKILL at 2 s
        json_object *pods = kx_podmgr_pods_json(pm);
        // sleeper.json's pod is gone; the duplicate from sleeper2.yaml took over.
        json_object *sl = pod_by_name(pods, "sleeper");
        CHECK(sl && !strcmp(str_at(sl, "spec.containers.0.command.1"), "1001"), "sleeper2 not started");
        CHECK(sl && !strcmp(str_at(sl, "status.phase"), "Running"), "sleeper2 phase");
        json_object *p = pod_by_name(pods, "ok");
        CHECK(p && !strcmp(str_at(p, "status.phase"), "Running"), "ok v2 phase %s", str_at(p, "status.phase"));
        json_object_put(pods);
        char path[512];
        kx_podmgr_log_path(pm, "default", "ok", "c", false, path, sizeof path);
        const char *log = slurp(path);
        CHECK(log && strstr(log, "stdout F v2\n") && !strstr(log, "stdout F done\n"), "ok v2 log: %s",
              log ? log : "");
        uv_timer_stop(&step_timer);
        uv_close((uv_handle_t *)&step_timer, NULL);
        kx_podmgr_shutdown(pm, on_shutdown, NULL);
    }
}

int main(void)
{
    if (geteuid() != 0 || access("/bin/busybox", X_OK) != 0) {
        fprintf(stderr, "pm_smoke: needs root and /bin/busybox; skipped\n");
        return 77;
    }
    snprintf(root, sizeof root, "/tmp/pm_smoke.XXXXXX");
    if (!mkdtemp(root))
        return 1;
    snprintf(mdir, sizeof mdir, "%s/manifests", root);
    snprintf(idir, sizeof idir, "%s/images", root);
    snprintf(ddir, sizeof ddir, "%s/data", root);
    mkdir(mdir, 0755);
    if (make_image() != 0)
        return 1;

    put_file("hello.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hello\nspec:\n  restartPolicy: Never\n"
                           "  containers:\n  - name: c\n    image: busybox\n    command: [sh, -c]\n"
                           "    args: ['echo out; echo err >&2; printf partial; exit 3']\n");
    put_file("ok.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\nspec:\n  restartPolicy: OnFailure\n"
                        "  containers: [{name: c, image: busybox, command: [sh, -c, 'echo done']}]\n");
    put_file("loop.yml", "apiVersion: v1\nkind: Pod\nmetadata: {name: loop}\nspec:\n"
                         "  containers: [{name: c, image: 'busybox:latest', args: [sh, -c, 'echo run; exit 1']}]\n");
    put_file("sleeper.json", "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"sleeper\","
                             "\"labels\":{\"app\":\"s\"}},\"spec\":{\"containers\":[{\"name\":\"c\","
                             "\"image\":\"busybox\",\"command\":[\"sleep\",\"1000\"],\"stdin\":true}]}}");
    // Same pod name as sleeper.json: ignored while that one exists.
    put_file("sleeper2.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: sleeper}\nspec:\n"
                              "  containers: [{name: c, image: busybox, command: [sleep, '1001']}]\n");
    put_file("broken.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: broken}\nspec:\n  containers: [{name: c}]\n");
    put_file("garbage.yaml", "this: [is not\n");
    put_file("noexec.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: noexec}\nspec:\n  restartPolicy: Never\n"
                            "  containers: [{name: c, image: busybox, command: [nonexistent-cmd]}]\n");
    put_file("tty.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: tty}\nspec:\n  restartPolicy: Never\n"
                         "  containers: [{name: c, image: busybox, tty: true, stdin: true,\n"
                         "    command: [sh, -c, 'echo hi-tty $TERM; [ -t 0 ] && [ -t 1 ]']}]\n");
    put_file("ignored.txt", "not a manifest");
    put_file("echo.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: echo}\nspec:\n  restartPolicy: Never\n"
                          "  containers: [{name: c, image: busybox, stdin: true, stdinOnce: true, command: [cat]}]\n");
    put_file("ttyc.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: ttyc}\nspec:\n  restartPolicy: Never\n"
                          "  containers: [{name: c, image: busybox, tty: true, stdin: true, stdinOnce: true,\n"
                          "    command: [sh, -c, 'read x; stty size; echo got $x; cat; echo cat-done']}]\n");
    signal(SIGPIPE, SIG_IGN);

    // libuv keeps one process-wide pipe for signal handling once any signal
    // handle was used; create it now so it is not counted as a leak.
    uv_loop_t tmp;
    uv_signal_t sig;
    uv_loop_init(&tmp);
    uv_signal_init(&tmp, &sig);
    uv_close((uv_handle_t *)&sig, NULL);
    uv_run(&tmp, UV_RUN_DEFAULT);
    uv_loop_close(&tmp);
    int fds_before = count_fds();
    uv_loop_init(&loop);
    kx_podmgr_config cfg = {};
    cfg.manifest_dir = mdir;
    cfg.image_dir = idir;
    cfg.data_dir = ddir;
    cfg.node_name = "node-1";
    cfg.cgroup_root = getenv("PM_SMOKE_CGROUP");
    pm = kx_podmgr_new(&loop, &cfg);
    CHECK(pm, "new");
    CHECK(kx_podmgr_start(pm) == 0, "start");
    uv_timer_init(&loop, &step_timer);
    uv_timer_start(&step_timer, on_step, 500, 500);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(shut_down, "shutdown callback");
    CHECK(uv_loop_close(&loop) == 0, "handles left open");
    kx_podmgr_free(pm);
    int st;
    pid_t w = waitpid(-1, &st, WNOHANG);
    CHECK(w == -1 && errno == ECHILD, "children left (waitpid %d)", (int)w);
    int fds_after = count_fds();
    if (fds_after != fds_before && system("ls -l /proc/$PPID/fd >&2") != 0)
        fprintf(stderr, "pm_smoke: cannot list fds\n");
    CHECK(fds_after == fds_before, "fd leak: %d before, %d after", fds_before, fds_after);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (failures == 0 && system(cmd) != 0)
        fprintf(stderr, "pm_smoke: cleanup of %s failed\n", root);
    printf("pm_smoke: %s (%d failures)\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}
