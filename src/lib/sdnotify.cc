// sd_notify(3) readiness datagrams; see kubexec/sdnotify.h.
#include "kubexec/sdnotify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int kx_sd_notify(const char *state)
{
    const char *addr = getenv("NOTIFY_SOCKET");
    if (!addr || !addr[0])
        return 0;
    if (addr[0] != '/' && addr[0] != '@')
        return -EINVAL;
    size_t alen = strlen(addr);
    struct sockaddr_un sa;
    // An abstract name is not NUL-terminated, a path is: both must fit.
    if (alen >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    size_t slen = strlen(state);
    if (slen > KX_SD_NOTIFY_MAX)
        return -EMSGSIZE;

    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, addr, alen);
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + alen);
    if (addr[0] == '@')
        sa.sun_path[0] = 0;
    else
        salen++; // count the terminating NUL of a path, as systemd does

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    ssize_t n = sendto(fd, state, slen, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
    int r = n < 0 ? -errno : (size_t)n == slen ? 1 : -EMSGSIZE;
    close(fd);
    return r;
}

int kx_sd_notifyf(const char *fmt, ...)
{
    char buf[KX_SD_NOTIFY_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= sizeof buf)
        return -EMSGSIZE;
    return kx_sd_notify(buf);
}
