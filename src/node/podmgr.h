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
//   data_dir/pods/<ns>_<pod>/<ctr>/<restartCount>.log   CRI log of each run; a
//       run starts a fresh file, and only the current and previous run's files
//       are kept (like the kubelet).
//   cgroup_root/<ns>_<pod>/<ctr>                          when cgroup_root is set
//
// Restart rules: restartPolicy Always restarts every exit, OnFailure non-zero
// exits, Never none. Delay 1 s doubling up to 30 s, back to 1 s once a run lasted
// 10 s. A container that cannot start (missing image dir, command not found,
// no command in the spec) counts as an exit with code 128, reason StartError,
// and follows the same rules.
#pragma once

#include <stddef.h>
#include <sys/types.h>
#include <uv.h>
#include <json-c/json.h>

#include "manifest.h"

enum { KX_PODMGR_MAX_PODS = 256 };   // manifests beyond this are ignored (logged once)

struct kx_podmgr_config {
    const char *manifest_dir, *image_dir, *data_dir, *node_name;
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
// data_dir/pods/<ns>_<pod>/<ctr>/<restartCount>.log. Returns 0, -ENOENT (no such
// pod/container, or no previous run), -ENAMETOOLONG (cap too small).
int kx_podmgr_log_path(kx_podmgr *pm, const char *ns, const char *pod, const char *ctr, bool previous, char *out,
                       size_t cap);
