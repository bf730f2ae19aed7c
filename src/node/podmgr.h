// podmgr.h - the node's pod manager: static pods from a manifest directory,
// run with the built-in runtime (runtime.h), restarted per restartPolicy,
// logged in the CRI format (crilog.h), reported as v1 Pod JSON.
//
// Threading: everything runs on the daemon's single libuv loop. Processes are
// watched through the reaper (reaper.h); kx_podmgr_start initialises it when the
// daemon has not (and then closes it again at shutdown), so the daemon must not
// use uv_spawn. Logs to stderr (this is daemon code, not src/lib):
//   kubexec-node: manifest <file>: <error>
//   kubexec-node: warning: <what>
//
// On-disk layout:
//   log_dir/<ns>_<pod>/<ctr>/<restartCount>.log   CRI log of each run (log_dir
//   defaults to data_dir/pods); a
//       run starts a fresh file, and only the current and previous run's files
//       are kept (like the kubelet).
//   cgroup_root/<ns>_<pod>/<ctr>                          when cgroup_root is set
//       (kubexec-node's: <cgroup2>/kubexec/<node>-<hash of the data dir>)
//
// Restart rules: restartPolicy Always restarts every exit, OnFailure non-zero
// exits, Never none. Delay 1 s doubling up to 30 s, back to 1 s once a run lasted
// 10 s. A container that cannot start (missing image dir, command not found,
// no command in the spec) counts as an exit with code 128, reason StartError,
// and follows the same rules.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>
#include <json-c/json.h>

#include "manifest.h"

enum { KX_PODMGR_MAX_PODS = 256 };   // manifests beyond this are ignored (logged once)

struct kx_podmgr_config {
    const char *manifest_dir, *image_dir, *data_dir, *node_name;
    const char *log_dir;       // container logs: LOG_DIR/<ns>_<pod>/<ctr>/<n>.log; null =
                               // data_dir/pods (the kubelet's is /var/log/pods)
    const char *cgroup_root;   // e.g. /sys/fs/cgroup/kubexec (null = no cgroups); per pod and
                               // container dirs are created; on failure a warning is logged and
                               // the pod runs without
};

struct kx_podmgr;

// Copies cfg (strings included). NULL on ENOMEM or a missing directory field.
kx_podmgr *kx_podmgr_new(uv_loop_t *loop, const kx_podmgr_config *cfg);

// Scans manifest_dir (*.yaml, *.yml, *.json; dot-files skipped; symlinks
// followed) and starts pods; rescans every 5 s: new files start pods, removed
// files stop them, changed files (mtime, size or inode) restart them (the new
// version starts once the old one is fully stopped). A bad manifest is logged
// once per version (`kubexec-node: manifest <file>: <error>`), becomes a pod with
// phase Failed and reason/message when its metadata.name is readable, and never
// stops the other pods. A second file defining the same namespace/name is
// logged and ignored. Returns 0 or a negative errno (reaper/timer setup).
int kx_podmgr_start(kx_podmgr *pm);

// Triggers a rescan on the next loop iteration (tests, SIGHUP).
void kx_podmgr_rescan(kx_podmgr *pm);

// Stops every pod (SIGTERM, then SIGKILL after 2 s), reaps everything, closes all
// handles, then calls cb (from the loop, never synchronously). The loop can then
// end. Call once.
void kx_podmgr_shutdown(kx_podmgr *pm, void (*cb)(void *user), void *user);

// Frees the manager: after the shutdown callback ran, or if start was never called.
void kx_podmgr_free(kx_podmgr *pm);

struct kx_container_ref {
    pid_t pid;                        // container PID 1 (host pid) if running, else 0
    const kx_container_spec *spec;    // valid until the next loop iteration
    const char *cgroup;               // may be null
    const char *const *envp;          // the container's full environment (spec env + PATH default +
                                      // HOSTNAME [+ TERM=xterm for tty]) as used at start
};

// For exec: 0 found & running; -ENOENT no such pod (message `pod does not exist`);
// -ESRCH no such container (`container not found ("c")`); -EAGAIN container not
// running (`container "c" in pod "p" is not running`). The message goes into err.
// *out is filled on 0 and -EAGAIN (pid 0).
int kx_podmgr_find(kx_podmgr *pm, const char *ns, const char *pod, const char *ctr, kx_container_ref *out,
                   char *err, size_t errlen);

// ---------------------------------------------------------------------------
// Attach: subscribers to a running container's main process stdio (what
// `kubectl attach` needs). The manager keeps reading the container's output
// (pipes or pty) at its own pace no matter what attachers do: every chunk goes
// to the CRI log and then, synchronously, to each attacher of the current run.
// Attaching, detaching or a slow attacher never stops, signals or blocks the
// container or the other attachers.
//
// Slow attachers: the manager does not copy output for attachers; each one
// queues what it is given (its transport's write queue) and reports that
// backlog from on_output. An attacher whose backlog exceeds
// KX_PODMGR_ATTACH_MAX_BACKLOG is DISCONNECTED (on_end with -ENOBUFS), never
// fed with gaps: silently dropped bytes would corrupt the stream (a broken
// escape sequence on a tty, a half line) while an explicit end lets the client
// re-attach; the CRI log keeps everything either way.
//
// Stdin (only with spec.stdin; there is one stdin per run, shared by every
// attacher that asked for it): writes are queued in a pipe handle of the
// manager (bounded, see below). spec.stdinOnce: the first attacher that asks
// for stdin owns it; when that attacher's stdin ends (kx_podmgr_attach_stdin_eof
// or kx_podmgr_detach) the container's stdin is closed for the rest of the run
// and every other stdin attacher gets on_stdin_closed; later attachers get
// stdin_ok == false. Closing means: pipes -- the write end is closed once the
// queued bytes are written (the process reads EOF); tty -- the terminal's EOF
// character (VEOF, normally ^D) is written, which ends input for a reader in
// canonical mode (a shell), while the pty itself stays open so output keeps
// flowing. Without stdinOnce, an attacher's EOF/detach leaves stdin open for
// later sessions (as the Kubernetes API documents).
//
// End of a run: when the attached run has exited and all its output was
// delivered, every attacher gets on_end(0, exit code) and is detached; a
// restart is a new run with no attachers. Pod removal and node shutdown end
// runs the same way (exit code of the killed process).
//
// Threading: loop thread only. on_output, on_stdin_drain and on_end run from
// the manager's libuv callbacks; on_stdin_closed may also run from inside the
// owner's kx_podmgr_attach_stdin_eof / kx_podmgr_detach. No callback ever runs
// from inside a call on its own handle. A callback may use (and detach) its own
// handle, except in on_end (the handle is gone then), but never another one.

enum {
    KX_PODMGR_MAX_ATTACHERS = 32,                    // per container run (more: -EBUSY)
    KX_PODMGR_ATTACH_MAX_BACKLOG = 4 * 1024 * 1024,  // attacher backlog over this: disconnected
    KX_PODMGR_STDIN_HIGH_WATER = 1024 * 1024,        // queued stdin over this: pause the client
    KX_PODMGR_STDIN_LOW_WATER = 256 * 1024,          // ... until it falls under this (on_stdin_drain)
    KX_PODMGR_STDIN_MAX = 4 * 1024 * 1024,           // hard cap: writes beyond fail with -ENOBUFS
};

struct kx_podmgr_attacher;

struct kx_podmgr_attach_callbacks {
    // Output of the main process: stream 1 stdout (or the pty: stdout and
    // stderr merged), 2 stderr. p is valid during the call only. Returns the
    // attacher's backlog in bytes after taking the chunk (see above).
    size_t (*on_output)(void *user, int stream, const uint8_t *p, size_t n);
    // Queued stdin fell below KX_PODMGR_STDIN_LOW_WATER after a write returned
    // more than KX_PODMGR_STDIN_HIGH_WATER. May be null.
    void (*on_stdin_drain)(void *user);
    // stdinOnce: another attacher ended the container's stdin; writes fail
    // from now on. May be null.
    void (*on_stdin_closed)(void *user);
    // Last callback; the handle is freed when it returns. status 0: the run
    // ended, exit_code as Kubernetes reports it (128+signal for a signal);
    // -ENOBUFS: disconnected for exceeding KX_PODMGR_ATTACH_MAX_BACKLOG.
    void (*on_end)(void *user, int status, int exit_code);
};

struct kx_podmgr_attach_info {
    bool tty;        // spec.tty: output is one pty stream; resize applies
    bool stdin_ok;   // want_stdin and the container's stdin accepts writes
    bool stdin_once; // spec.stdinOnce
};

// Subscribes to the current run of ns/pod/ctr. want_stdin: the attacher will
// write stdin (and, with stdinOnce, may become its owner). Returns 0 with
// *out and *info filled, or (message in err, as kx_podmgr_find) -ENOENT,
// -ESRCH, -EAGAIN (not running); -EBUSY over KX_PODMGR_MAX_ATTACHERS;
// -ENOMEM. cb is copied; user is passed back.
int kx_podmgr_attach(kx_podmgr *pm, const char *ns, const char *pod, const char *ctr, bool want_stdin,
                     const kx_podmgr_attach_callbacks *cb, void *user, kx_podmgr_attacher **out,
                     kx_podmgr_attach_info *info, char *err, size_t errlen);

// Queues n bytes for the container's stdin. Returns the bytes now queued
// (> KX_PODMGR_STDIN_HIGH_WATER: stop reading the client until on_stdin_drain),
// -EPIPE when this attacher has no stdin (not asked, no spec.stdin, stdinOnce
// closed it, or it signalled EOF), -ENOBUFS when the queue is at
// KX_PODMGR_STDIN_MAX (the bytes are dropped), or another -errno from the write.
int kx_podmgr_attach_stdin(kx_podmgr_attacher *a, const uint8_t *p, size_t n);

// This attacher's stdin ended (client EOF). With stdinOnce and this attacher
// the owner, the container's stdin is closed; otherwise it only stops this
// attacher's writes. Idempotent.
void kx_podmgr_attach_stdin_eof(kx_podmgr_attacher *a);

// Sets the container's terminal size (TIOCSWINSZ on the pty; the process gets
// SIGWINCH). Containers start at 0x0, so attachers apply theirs; the last
// resize from any attacher wins. 0, -ENOTTY (no tty), -EINVAL (0 or > 10000).
int kx_podmgr_attach_resize(kx_podmgr_attacher *a, uint16_t cols, uint16_t rows);

// Unsubscribes (client gone). Counts as stdin EOF for stdinOnce. The container
// is not touched. No callback follows; a is invalid afterwards.
void kx_podmgr_detach(kx_podmgr_attacher *a);

// All pods as a JSON array of full v1 Pod objects: kind, apiVersion, metadata
// (name, namespace, uid (stable per manifest file and node), creationTimestamp,
// labels, annotations (+ kubernetes.io/config.source: file)), spec (as loaded,
// plus nodeName), status {phase, reason/message for failed manifests, conditions
// (PodScheduled, Initialized, ContainersReady, Ready), hostIP, podIP, podIPs,
// startTime, containerStatuses[{name, image, imageID, containerID, ready,
// restartCount, started, state, lastState}]}. New reference; caller puts it.
// NULL on ENOMEM.
json_object *kx_podmgr_pods_json(kx_podmgr *pm);

// Path of a container's current (or, with previous, the run before) log file:
// log_dir/<ns>_<pod>/<ctr>/<restartCount>.log. Returns 0, -ENOENT (no such
// pod/container, or no previous run), -ENAMETOOLONG (cap too small).
int kx_podmgr_log_path(kx_podmgr *pm, const char *ns, const char *pod, const char *ctr, bool previous, char *out,
                       size_t cap);

// For port-forward: where the pod's network lives. Fills *sandbox_pid (the
// holder of the pod's net namespace: dial inside /proc/<pid>/ns/net),
// *host_network (spec.hostNetwork: the node's own namespace, no setns needed)
// and uid (the pod's metadata.uid, for error texts; may be null). Returns 0;
// -ENOENT no such pod (`pod does not exist`); -EAGAIN the pod has no running
// sandbox (stopping, failed or restarting; message in err).
int kx_podmgr_pod_net(kx_podmgr *pm, const char *ns, const char *pod, pid_t *sandbox_pid, bool *host_network,
                      char *uid, size_t uidlen, char *err, size_t errlen);
