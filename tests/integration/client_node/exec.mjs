// exec.mjs — `kubectl exec` done with @kubernetes/client-node 2.x, for test_stream.sh.
//
//   node exec.mjs [--stdin] [--timeout S] NAMESPACE POD CONTAINER -- CMD [ARG...]
//
// Uses $KUBECONFIG. The command's stdout and stderr go to ours. client-node only hands
// the V1Status from the error channel to a callback, so this driver turns it into an
// exit code the way kubectl does (docs clients.md §8): Success → 0; NonZeroExitCode
// with an ExitCode cause → that code and "command terminated with exit code N" on
// stderr; any other Failure → its message on stderr and 1. A WebSocket that closes
// without a Status is exit 0 (as kubectl), but the driver says so on stderr. Upgrade
// errors → 1. No answer within --timeout (default 60 s) → 124.
//
// It waits for the WebSocket's close before exiting, so every output message the
// server sent before its Status has been written out.
import * as k8s from '@kubernetes/client-node';
import { PassThrough } from 'node:stream';

function usage() {
    process.stderr.write('usage: exec.mjs [--stdin] [--timeout S] NAMESPACE POD CONTAINER -- CMD [ARG...]\n');
    process.exit(2);
}

const argv = process.argv.slice(2);
let useStdin = false;
let timeoutS = 60;
while (argv.length && argv[0].startsWith('--') && argv[0] !== '--') {
    const o = argv.shift();
    if (o === '--stdin') useStdin = true;
    else if (o === '--timeout' && argv.length) timeoutS = Number(argv.shift());
    else usage();
}
const sep = argv.indexOf('--');
if (sep !== 3 || argv.length < 5 || !(timeoutS > 0)) usage();
const [ns, pod, container] = argv;
const cmd = argv.slice(4);

// Writes are flushed before exit: process.exit would drop queued pipe writes.
function finish(code) {
    let pending = 2;
    const done = () => { if (--pending === 0) process.exit(code); };
    process.stdout.write('', done);
    process.stderr.write('', done);
}

const timer = setTimeout(() => {
    process.stderr.write(`exec.mjs: no result within ${timeoutS} s\n`);
    finish(124);
}, timeoutS * 1000);

const kc = new k8s.KubeConfig();
kc.loadFromDefault();
const exec = new k8s.Exec(kc);

// Our own pass-through streams: client-node may end() them, and ending
// process.stdout itself is not allowed.
const out = new PassThrough();
const err = new PassThrough();
out.pipe(process.stdout, { end: false });
err.pipe(process.stderr, { end: false });

let status = null;
function codeOf(st) {
    if (!st) {
        process.stderr.write('exec.mjs: the connection closed without a Status\n');
        return 0;
    }
    if (st.status === 'Success') return 0;
    if (st.reason === 'NonZeroExitCode') {
        const c = (st.details?.causes ?? []).find((x) => x.reason === 'ExitCode');
        const n = c ? Number(c.message) : NaN;
        if (Number.isInteger(n) && n >= 0 && n <= 255) {
            process.stderr.write(`command terminated with exit code ${n}\n`);
            return n;
        }
        process.stderr.write(`error: error stream protocol error: bad exit code in ${JSON.stringify(st)}\n`);
        return 1;
    }
    process.stderr.write(`error: ${st.message ?? JSON.stringify(st)}\n`);
    return 1;
}

try {
    const ws = await exec.exec(ns, pod, container, cmd, out, err,
        useStdin ? process.stdin : null, false, (st) => { status = st; });
    ws.on('close', () => {
        clearTimeout(timer);
        // Let the pass-throughs drain into stdout/stderr first.
        setImmediate(() => finish(codeOf(status)));
    });
    ws.on('error', (e) => {
        process.stderr.write(`exec.mjs: websocket error: ${e.message}\n`);
    });
} catch (e) {
    clearTimeout(timer);
    process.stderr.write(`exec.mjs: exec failed: ${e?.message ?? e}\n`);
    finish(1);
}
