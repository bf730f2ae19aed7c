// kubexec cp: files and directories to and from a container through exec +
// tar, as kubectl does (protocol.md §8.1). The local side of the tar stream
// is the system's GNU tar (Essential on Debian) fed through a pipe, so no
// archive code of our own handles untrusted member names: GNU tar already
// refuses '..' members and absolute names when extracting.
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rc.h"

struct file_spec {
    const char *ns;   // null: the current namespace
    char pod[256];
    const char *path;
    bool remote;
    char nsbuf[256];
};

// "[ns/]pod:path" is remote; anything without ':' (or starting with '/' or
// '.') is local, as kubectl's extractFileSpec.
static int parse_spec(const char *arg, file_spec *f)
{
    memset(f, 0, sizeof *f);
    const char *colon = strchr(arg, ':');
    if (!colon || arg[0] == '/' || arg[0] == '.') {
        f->path = arg;
        return 0;
    }
    f->remote = true;
    f->path = colon + 1;
    size_t l = (size_t)(colon - arg);
    const char *slash = (const char *)memchr(arg, '/', l);
    if (slash) {
        size_t nl = (size_t)(slash - arg);
        if (nl == 0 || nl >= sizeof f->nsbuf || l - nl - 1 == 0 || l - nl - 1 >= sizeof f->pod)
            return kx_cli_err("invalid file spec %s", arg);
        memcpy(f->nsbuf, arg, nl);
        f->ns = f->nsbuf;
        memcpy(f->pod, slash + 1, l - nl - 1);
    } else {
        if (l == 0 || l >= sizeof f->pod)
            return kx_cli_err("invalid file spec %s", arg);
        memcpy(f->pod, arg, l);
    }
    if (!*f->path)
        return kx_cli_err("remote path can not be empty");
    return 0;
}

// One exec with the given local fds; returns its exit code (or 1 with an
// error printed). quiet: no "command terminated" line.
static int run_exec(kx_cli *c, const file_spec *f, const char *container, char *const *cmd,
                    int ncmd, int in_fd, int out_fd, bool quiet, const char *progress = nullptr)
{
    kx_cli_http *h;
    kx_cli_pod pod;
    char ctr[64];
    if (kx_cli_pod_open(c, f->pod, f->ns, container, quiet, &h, &pod, ctr, sizeof ctr))
        return 1;
    kx_cli_rc_opts o = {};
    o.subresource = "exec";
    o.ns = pod.ns;
    o.pod = pod.name;
    o.container = ctr;
    o.command = cmd;
    o.ncommand = ncmd;
    o.in = in_fd >= 0;
    o.out = true;
    o.err = true;
    o.in_fd = in_fd;
    o.out_fd = out_fd;
    o.err_fd = 2;
    o.quiet = quiet;
    o.progress = progress;
    return kx_cli_rc_run(c, h, &o);
}

// Starts local tar with argv; its stdin (dir_in) or stdout (!dir_in) is a
// pipe whose other end is returned in *fd. Returns the pid or -1.
static pid_t spawn_tar(char *const *argv, bool dir_in, int *fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        dup2(dir_in ? p[0] : p[1], dir_in ? 0 : 1);
        execvp("tar", argv);
        fprintf(stderr, "error: cannot run tar: %s\n", strerror(errno));
        _exit(127);
    }
    *fd = dir_in ? p[1] : p[0];
    close(dir_in ? p[0] : p[1]);
    return pid;
}

static int wait_tar(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// Escapes s for a GNU tar --transform expression (sed BRE, ',' delimiter).
static void sed_escape(char *out, size_t cap, const char *s, bool replacement)
{
    size_t o = 0;
    for (; *s && o + 3 < cap; s++) {
        if (strchr(replacement ? "\\&," : "\\.[]*^$,", *s))
            out[o++] = '\\';
        out[o++] = *s;
    }
    out[o] = '\0';
}

// Path helpers that do not modify their argument.
static void path_dir(const char *p, char *out, size_t cap)
{
    char tmp[4096];
    kx_strlcpy(tmp, p, sizeof tmp);
    kx_strlcpy(out, dirname(tmp), cap);
}

static void path_base(const char *p, char *out, size_t cap)
{
    char tmp[4096];
    kx_strlcpy(tmp, p, sizeof tmp);
    kx_strlcpy(out, basename(tmp), cap);
}

static int copy_from_pod(kx_cli *c, const file_spec *src, const char *dest,
                         const char *container)
{
    char sdir[4096], sbase[1024];
    path_dir(src->path, sdir, sizeof sdir);
    path_base(src->path, sbase, sizeof sbase);
    // Is the source a directory? (its contents then land in dest itself)
    char *test[] = {(char *)"test", (char *)"-d", (char *)src->path};
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    int isdir = run_exec(c, src, container, test, 3, -1, devnull, true) == 0;
    close(devnull);
    struct stat st;
    bool dest_is_dir = stat(dest, &st) == 0 && S_ISDIR(st.st_mode);
    char ddir[4096], dbase[1024], xform[4400], esrc[2100], edst[2100];
    char target_dir[4096];
    if (isdir) {
        if (!dest_is_dir && mkdir(dest, 0755) < 0)
            return kx_cli_err("cannot create %s: %s", dest, strerror(errno));
        kx_strlcpy(target_dir, dest, sizeof target_dir);
        kx_strlcpy(dbase, "", sizeof dbase);
    } else if (dest_is_dir) {
        kx_strlcpy(target_dir, dest, sizeof target_dir);
        kx_strlcpy(dbase, sbase, sizeof dbase);
    } else {
        path_dir(dest, ddir, sizeof ddir);
        path_base(dest, dbase, sizeof dbase);
        kx_strlcpy(target_dir, ddir, sizeof target_dir);
    }
    // Member names start with sbase: map them to dest's name (a file) or
    // strip them (a directory's contents go into dest).
    sed_escape(esrc, sizeof esrc, sbase, false);
    sed_escape(edst, sizeof edst, dbase, true);
    snprintf(xform, sizeof xform, "s,^%s$,%s,S", esrc, edst);
    char *targv_file[] = {(char *)"tar", (char *)"-x", (char *)"-f", (char *)"-",
                          (char *)"--no-same-owner", (char *)"-C", target_dir,
                          (char *)"--transform", xform, nullptr};
    char *targv_dir[] = {(char *)"tar", (char *)"-x", (char *)"-f", (char *)"-",
                         (char *)"--no-same-owner", (char *)"-C", target_dir,
                         (char *)"--strip-components=1", nullptr};
    char **targv = isdir ? targv_dir : targv_file;
    int fd;
    pid_t pid = spawn_tar(targv, true, &fd);
    if (pid < 0)
        return kx_cli_err("cannot start tar: %s", strerror(errno));
    char *rtar[] = {(char *)"tar", (char *)"cf", (char *)"-", (char *)"-C", sdir, sbase};
    int rc = run_exec(c, src, container, rtar, 6, -1, fd, false, "kubexec cp: received");
    close(fd);
    int trc = wait_tar(pid);
    if (rc == 0 && trc != 0)
        return kx_cli_err("extracting into %s failed (tar exit status %d)", dest, trc);
    return rc;
}

static int copy_to_pod(kx_cli *c, const char *src, const file_spec *dest, const char *container,
                       bool no_preserve)
{
    struct stat st;
    if (stat(src, &st) < 0)
        return kx_cli_err("%s doesn't exist in local filesystem", src);
    char sdir[4096], sbase[1024], ddir[4096], dbase[1024];
    path_dir(src, sdir, sizeof sdir);
    path_base(src, sbase, sizeof sbase);
    // kubectl: a destination that is a directory receives src under its name.
    char dpath[4096];
    kx_strlcpy(dpath, dest->path, sizeof dpath);
    char *test[] = {(char *)"test", (char *)"-d", dpath};
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    bool dest_dir = run_exec(c, dest, container, test, 3, -1, devnull, true) == 0;
    close(devnull);
    if (dest_dir) {
        size_t l = strlen(dpath);
        snprintf(dpath + l, sizeof dpath - l, "%s%s", l && dpath[l - 1] == '/' ? "" : "/", sbase);
    }
    path_dir(dpath, ddir, sizeof ddir);
    path_base(dpath, dbase, sizeof dbase);
    char esrc[2100], edst[2100], xform[4300];
    sed_escape(esrc, sizeof esrc, sbase, false);
    sed_escape(edst, sizeof edst, dbase, true);
    snprintf(xform, sizeof xform, "s,^%s\\(/\\|$\\),%s\\1,S", esrc, edst);
    char *targv[] = {(char *)"tar", (char *)"-c", (char *)"-f", (char *)"-", (char *)"-C", sdir,
                     (char *)"--transform", xform, sbase, nullptr};
    int fd;
    pid_t pid = spawn_tar(targv, false, &fd);
    if (pid < 0)
        return kx_cli_err("cannot start tar: %s", strerror(errno));
    char *rtar_keep[] = {(char *)"tar", (char *)"-xmf", (char *)"-", (char *)"-C", ddir};
    char *rtar_nop[] = {(char *)"tar", (char *)"--no-same-permissions", (char *)"--no-same-owner",
                        (char *)"-xmf", (char *)"-", (char *)"-C", ddir};
    int rc = no_preserve
                 ? run_exec(c, dest, container, rtar_nop, 7, fd, 1, false, "kubexec cp: sent")
                 : run_exec(c, dest, container, rtar_keep, 5, fd, 1, false, "kubexec cp: sent");
    close(fd);
    int trc = wait_tar(pid);
    if (rc == 0 && trc != 0)
        return kx_cli_err("reading %s failed (tar exit status %d)", src, trc);
    return rc;
}

int kx_cmd_cp(kx_cli *c, int argc, char **argv)
{
    const char *container = nullptr;
    bool no_preserve = false;
    long retries = 0;
    const kx_flag flags[] = {
        {"container", 'c', KXF_STRING, &container},
        {"no-preserve", 0, KXF_BOOL, &no_preserve},
        {"retries", 0, KXF_INT, &retries},
    };
    const char *pos[4];
    size_t npos;
    if (kx_cli_parse(c, argc, argv, flags, sizeof flags / sizeof flags[0], pos, 4, &npos,
                     nullptr, nullptr))
        return 1;
    if (npos != 2)
        return kx_cli_err("source and destination are required");
    file_spec src, dst;
    if (parse_spec(pos[0], &src) || parse_spec(pos[1], &dst))
        return 1;
    if (src.remote && dst.remote)
        return kx_cli_err("one of src or dest must be a local file specification");
    if (!src.remote && !dst.remote)
        return kx_cli_err("one of src or dest must be a remote file specification");
    if (kx_cli_setup(c))
        return 1;
    if (src.remote)
        return copy_from_pod(c, &src, dst.path, container);
    return copy_to_pod(c, src.path, &dst, container, no_preserve);
}
