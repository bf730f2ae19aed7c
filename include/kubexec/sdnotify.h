// kubexec/sdnotify.h - service readiness for systemd's Type=notify, without
// libsystemd.
//
// The protocol (sd_notify(3)): the service manager puts the address of a
// datagram socket in $NOTIFY_SOCKET; the service sends newline-separated
// assignments such as "READY=1", "STATUS=...", "STOPPING=1" to it. A path
// starting with '/' is a filesystem socket, one starting with '@' an abstract
// socket (the '@' stands for the leading NUL byte). Without $NOTIFY_SOCKET the
// service is not supervised that way and there is nothing to do.
//
// The daemons keep the variable set (they notify again on stop); the pod
// runtime builds each container's environment from the manifest, so it never
// reaches a container.
#pragma once

#include <stddef.h>

// Longest state string sent (one datagram); systemd reads up to its page-size
// buffer, and our messages are one or two short lines.
#define KX_SD_NOTIFY_MAX 1024

// Sends `state` to $NOTIFY_SOCKET. Returns 1 when sent, 0 when $NOTIFY_SOCKET
// is unset or empty (not supervised: not an error), -EINVAL for an address that
// is neither '/'- nor '@'-prefixed, -ENAMETOOLONG for one longer than a
// sockaddr_un holds, -EMSGSIZE for a state over KX_SD_NOTIFY_MAX bytes, or the
// negative errno of socket()/sendto() (e.g. -ECONNREFUSED when nobody listens).
// Never blocks: the socket is non-blocking and closed before returning.
int kx_sd_notify(const char *state);

// printf-style kx_sd_notify(); the formatted state is cut at KX_SD_NOTIFY_MAX
// bytes (-EMSGSIZE, nothing sent) like an over-long kx_sd_notify() state.
int kx_sd_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
