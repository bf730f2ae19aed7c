// Unit tests for kubexec/sdnotify.h: the datagram reaches a socket named by
// $NOTIFY_SOCKET (path and abstract '@' forms), and every bad input has its
// answer.
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
extern "C" {
#include <cmocka.h>
}

#include "kubexec/sdnotify.h"

// A bound datagram socket; name starting with '@' is abstract.
static int listener(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    size_t n = strlen(name);
    memcpy(a.sun_path, name, n);
    if (name[0] == '@')
        a.sun_path[0] = '\0';
    else
        unlink(name);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, (socklen_t)(offsetof(sockaddr_un, sun_path) + n)), 0);
    return fd;
}

static void expect_datagram(int fd, const char *want)
{
    char buf[2048];
    ssize_t r = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    assert_true(r >= 0);
    buf[r] = 0;
    assert_string_equal(buf, want);
}

static void path_socket(void **)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/kx-sdnotify-test.%d", (int)getpid());
    int fd = listener(path);
    setenv("NOTIFY_SOCKET", path, 1);
    assert_int_equal(kx_sd_notify("READY=1"), 1);
    expect_datagram(fd, "READY=1");
    assert_int_equal(kx_sd_notifyf("READY=1\nSTATUS=serving on %s:%d", "127.0.0.1", 6443), 1);
    expect_datagram(fd, "READY=1\nSTATUS=serving on 127.0.0.1:6443");
    close(fd);
    unlink(path);
    // Nobody listening any more.
    assert_true(kx_sd_notify("STOPPING=1") < 0);
    unsetenv("NOTIFY_SOCKET");
}

static void abstract_socket(void **)
{
    char name[64];
    snprintf(name, sizeof name, "@kx-sdnotify-test-%d", (int)getpid());
    int fd = listener(name);
    setenv("NOTIFY_SOCKET", name, 1);
    assert_int_equal(kx_sd_notify("STOPPING=1"), 1);
    expect_datagram(fd, "STOPPING=1");
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}

static void bad_inputs(void **)
{
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(kx_sd_notify("READY=1"), 0);   // not supervised
    setenv("NOTIFY_SOCKET", "", 1);
    assert_int_equal(kx_sd_notify("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    assert_int_equal(kx_sd_notify("READY=1"), -EINVAL);
    char longp[200];
    memset(longp, 'a', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = 0;
    setenv("NOTIFY_SOCKET", longp, 1);
    assert_int_equal(kx_sd_notify("READY=1"), -ENAMETOOLONG);
    setenv("NOTIFY_SOCKET", "/tmp/kx-none", 1);
    static char big[KX_SD_NOTIFY_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    assert_int_equal(kx_sd_notify(big), -EMSGSIZE);
    assert_int_equal(kx_sd_notifyf("%s", big), -EMSGSIZE);
    unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(path_socket),
        cmocka_unit_test(abstract_socket),
        cmocka_unit_test(bad_inputs),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
