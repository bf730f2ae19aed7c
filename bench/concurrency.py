#!/usr/bin/env python3
"""concurrency.py - N simultaneous interactive exec sessions through the API
server (SPDY/3.1, v4.channel.k8s.io, one TLS connection each, as kubectl
does), each a shell in the demo pod reading stdin; held open; then every one
echoes a line at once.

  concurrency.py API_ADDR N --cert C --key K --ca CA --api-pid P --node-pid P
                 --node-exe PATH [--open-parallel 64] [--tsv FILE]

Prints: sessions opened, answers, echo latency median/p99/max under that load,
and the daemons' memory per session: (API server PSS + the node's own
processes' PSS, i.e. the node and its per-session helpers; the shells are the
container's and are left out) growth over idle, / N. Also RSS and USS.
The SPDY framing and dictionary come from bench/spdyexec.py.
"""
import argparse
import asyncio
import importlib.util
import os
import resource
import ssl
import statistics
import struct
import sys
import time
import zlib


def load_spdyexec():
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("spdyexec", os.path.join(here, "spdyexec.py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m, os.path.dirname(here)


def mem_kib(pid):
    r = p = u = 0
    try:
        for line in open("/proc/%d/smaps_rollup" % pid):
            k, v = line.split(":", 1)
            if k == "Rss":
                r = int(v.split()[0])
            elif k == "Pss":
                p = int(v.split()[0])
            elif k in ("Private_Clean", "Private_Dirty"):
                u += int(v.split()[0])
    except OSError:
        pass
    return r, p, u


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def daemon_mem(api_pid, node_pid, node_exe):
    """(rss, pss, uss, nproc) of the API server + the node's own processes."""
    kids = children_map()
    todo, tree = [node_pid], []
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(kids.get(p, []))
    tot = list(mem_kib(api_pid)) + [1]
    for p in tree:
        try:
            if os.readlink("/proc/%d/exe" % p) != node_exe:
                continue
        except OSError:
            continue
        r, ps, u = mem_kib(p)
        tot[0] += r
        tot[1] += ps
        tot[2] += u
        tot[3] += 1
    return tot


class Session:
    def __init__(self, i):
        self.i = i
        self.token = b"kx%05d" % i
        self.replied = asyncio.Event()
        self.answered = asyncio.Event()
        self.t_sent = 0.0
        self.latency = None
        self.out = b""
        self.w = None


def syn_stream(z, sid, st):
    blk = z.compress(SPX.nv_block([(b"streamtype", st)])) + z.flush(zlib.Z_SYNC_FLUSH)
    payload = struct.pack(">IIBB", sid, 0, 0, 0) + blk
    return struct.pack(">HHB", 0x8003, 1, 0) + len(payload).to_bytes(3, "big") + payload


def data_frame(sid, data, fin=False):
    return struct.pack(">I", sid) + bytes([1 if fin else 0]) + len(data).to_bytes(3, "big") + data


async def run_session(s, a, ctx, sem):
    host, port = a.addr.rsplit(":", 1)
    async with sem:
        r, w = await asyncio.open_connection(host, int(port), ssl=ctx, server_hostname=host)
        s.w = w
        path = "/api/v1/namespaces/default/pods/demo/exec?command=sh&stdin=true&stdout=true&stderr=true"
        w.write(("POST %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                 "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n" % (path, a.addr)).encode())
        head = await r.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError("no upgrade: %r" % head[:80])
        z = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DIC)
        w.write(b"".join(syn_stream(z, sid, st) for sid, st in
                         ((1, b"error"), (3, b"stdin"), (5, b"stdout"), (7, b"stderr"))))
        await w.drain()
    replies = set()
    while True:
        h = await r.readexactly(8)
        n = int.from_bytes(h[5:8], "big")
        body = await r.readexactly(n)
        if h[0] & 0x80:
            typ = struct.unpack(">H", h[2:4])[0]
            if typ == 2:
                replies.add(struct.unpack(">I", body[:4])[0] & 0x7FFFFFFF)
                if len(replies) >= 4:
                    s.replied.set()
            elif typ == 7:
                return
        else:
            sid = struct.unpack(">I", h[:4])[0] & 0x7FFFFFFF
            if sid == 5 and not s.answered.is_set():
                s.out += body
                if s.token in s.out:
                    s.latency = time.perf_counter() - s.t_sent
                    s.answered.set()


async def main_async(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(a.ca)
    ctx.load_cert_chain(a.cert, a.key)
    base = daemon_mem(a.api_pid, a.node_pid, a.node_exe)
    sem = asyncio.Semaphore(a.open_parallel)
    sessions = [Session(i) for i in range(a.n)]
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(run_session(s, a, ctx, sem)) for s in sessions]
    waits = [asyncio.create_task(s.replied.wait()) for s in sessions]
    done, _ = await asyncio.wait(waits, timeout=a.open_timeout)
    t_open = time.perf_counter() - t0
    opened = sum(1 for s in sessions if s.replied.is_set())
    errors = [t.exception() for t in tasks if t.done() and t.exception()]
    await asyncio.sleep(a.settle)
    held = daemon_mem(a.api_pid, a.node_pid, a.node_exe)
    # Every one echoes a line, all at once.
    for s in sessions:
        if s.replied.is_set() and s.w:
            s.t_sent = time.perf_counter()
            s.w.write(data_frame(3, b"echo " + s.token + b"\n"))
    await asyncio.wait([asyncio.create_task(s.answered.wait()) for s in sessions if s.replied.is_set()] or
                       [asyncio.create_task(asyncio.sleep(0))], timeout=a.echo_timeout)
    lat = sorted(s.latency * 1e3 for s in sessions if s.latency is not None)
    answered = len(lat)
    for s in sessions:  # stdin EOF: the shells exit, the sessions end
        if s.w:
            try:
                s.w.write(data_frame(3, b"", fin=True))
            except (OSError, RuntimeError):
                pass
    await asyncio.sleep(1.0)
    for s in sessions:
        if s.w:
            s.w.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    def p(q):
        return lat[min(len(lat) - 1, max(0, int(round(q / 100 * len(lat) + 0.5)) - 1))] if lat else float("nan")
    per = [(held[k] - base[k]) / max(opened, 1) for k in range(3)]
    res = {
        "sessions": a.n, "opened": opened, "open_s": t_open, "answered": answered,
        "echo_median_ms": statistics.median(lat) if lat else float("nan"), "echo_p99_ms": p(99),
        "echo_max_ms": lat[-1] if lat else float("nan"),
        "rss_kib_per_session": per[0], "pss_kib_per_session": per[1], "uss_kib_per_session": per[2],
        "daemon_procs_idle": base[3], "daemon_procs_held": held[3],
        "pss_idle_kib": base[1], "pss_held_kib": held[1], "errors": len(errors),
    }
    if errors:
        res["first_error"] = repr(errors[0])[:200]
    return res


def main():
    global SPX, DIC
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    ap.add_argument("n", type=int)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--api-pid", type=int, required=True)
    ap.add_argument("--node-pid", type=int, required=True)
    ap.add_argument("--node-exe", required=True)
    ap.add_argument("--open-parallel", type=int, default=64)
    ap.add_argument("--open-timeout", type=float, default=120)
    ap.add_argument("--echo-timeout", type=float, default=30)
    ap.add_argument("--settle", type=float, default=2)
    ap.add_argument("--tsv")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, a.n * 2 + 100)), hard))
    SPX, root = load_spdyexec()
    DIC = SPX.load_dict(root)
    print("client\tconcurrency.py (Python asyncio)", flush=True)
    res = asyncio.run(main_async(a))
    for k, v in res.items():
        print("%s\t%s" % (k, ("%.2f" % v) if isinstance(v, float) else v))
    if a.tsv:
        with open(a.tsv, "w") as f:
            f.write("\t".join(res) + "\n")
            f.write("\t".join(("%.3f" % v) if isinstance(v, float) else str(v) for v in res.values()) + "\n")
    return 0 if res["answered"] == a.n else 1


if __name__ == "__main__":
    sys.exit(main())
