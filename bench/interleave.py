#!/usr/bin/env python3
"""interleave.py - latency of several commands measured ALTERNATELY in one run.

hyperfine 1.15 runs all of one command's runs before the next command, so a
burst from a neighbour on this shared machine lands on one row only. Here every
round runs each row once, in a freshly shuffled order; after ROUNDS rounds each
row has the same exposure to the machine's noise and the ratios are fair.

  interleave.py SPEC ROUNDS [--warmup W] [--tsv FILE] [--raw FILE]
                [--ours NAME] [--target 'NAME|le|X|label' ...]

SPEC is a file with one row per line: NAME<TAB>KIND<TAB>ARG...
  spawn  ARG is a shell-free argv (split on single spaces, or a JSON list if it
         starts with '['); posix_spawn + waitpid, stdin/stdout/stderr on
         /dev/null, exit status must be 0. The time includes the spawn, as
         hyperfine -N does (the `/bin/true` row shows that cost).
  spdy   in-process exec with bench/spdyexec.py (no client start-up): ARG is
         JSON {"addr":..., "path":..., "cert":..., "key":..., "ca":...}.
Prints a Markdown table (median, p99, min, mean, n, failures, ratio to ours);
--tsv writes the same as TSV. --target: 'le' means ours <= X * NAME (medians),
'ge' means NAME >= X * ours; each target line says met or missed.
"""
import argparse
import importlib.util
import json
import os
import random
import ssl
import statistics
import sys
import time


def pct(v, p):
    s = sorted(v)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def load_spdyexec():
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("spdyexec", os.path.join(here, "spdyexec.py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m, os.path.dirname(here)


class Spawn:
    def __init__(self, arg):
        self.argv = json.loads(arg) if arg.startswith("[") else arg.split(" ")
        self.devnull = os.open(os.devnull, os.O_RDWR)

    def run(self):
        fa = [(os.POSIX_SPAWN_DUP2, self.devnull, 0), (os.POSIX_SPAWN_DUP2, self.devnull, 1),
              (os.POSIX_SPAWN_DUP2, self.devnull, 2)]
        t0 = time.perf_counter()
        pid = os.posix_spawnp(self.argv[0], self.argv, os.environ, file_actions=fa)
        _, st = os.waitpid(pid, 0)
        t1 = time.perf_counter()
        return t1 - t0, os.waitstatus_to_exitcode(st) == 0


class Spdy:
    mod = None

    def __init__(self, arg):
        if Spdy.mod is None:
            Spdy.mod, root = load_spdyexec()
            Spdy.dic = Spdy.mod.load_dict(root)
        a = json.loads(arg)
        self.args = argparse.Namespace(addr=a["addr"], path=a["path"], token=a.get("token"))
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ctx.check_hostname = False
        self.ctx.load_verify_locations(a["ca"])
        self.ctx.load_cert_chain(a["cert"], a["key"])

    def run(self):
        t0 = time.perf_counter()
        try:
            Spdy.mod.one(self.args, self.ctx, Spdy.dic)
            ok = True
        except (OSError, EOFError, SystemExit):
            ok = False
        return time.perf_counter() - t0, ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("spec")
    ap.add_argument("rounds", type=int)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--tsv")
    ap.add_argument("--raw")
    ap.add_argument("--ours")
    ap.add_argument("--target", action="append", default=[])
    ap.add_argument("--target-issue", default="issue 5")
    ap.add_argument("--target-tsv")
    a = ap.parse_args()
    rows = []
    for line in open(a.spec):
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        name, kind, arg = line.split("\t", 2)
        rows.append((name, {"spawn": Spawn, "spdy": Spdy}[kind](arg)))
    times = {n: [] for n, _ in rows}
    fails = {n: 0 for n, _ in rows}
    raw = open(a.raw, "w") if a.raw else None
    order = list(range(len(rows)))
    for r in range(-a.warmup, a.rounds):
        random.shuffle(order)
        for i in order:
            name, runner = rows[i]
            dt, ok = runner.run()
            if r < 0:
                continue
            if not ok:
                fails[name] += 1
                continue
            times[name].append(dt * 1e3)
            if raw:
                raw.write("%s\t%d\t%.3f\n" % (name, r, dt * 1e3))
    med = {n: (statistics.median(v) if v else float("nan")) for n, v in times.items()}
    ours = med.get(a.ours) if a.ours else None
    hdr = ["command", "median ms", "p99 ms", "min ms", "mean ms", "runs", "failures", "row / ours (median)"]
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    tsv = open(a.tsv, "w") if a.tsv else None
    if tsv:
        tsv.write("\t".join(["command", "median_ms", "p99_ms", "min_ms", "mean_ms", "runs", "failures", "ratio_to_ours"]) + "\n")
    for name, _ in rows:
        v = times[name]
        ratio = (med[name] / ours) if ours and v else float("nan")
        cells = [name, "%.2f" % med[name], "%.2f" % pct(v, 99), "%.2f" % (min(v) if v else float("nan")),
                 "%.2f" % (statistics.mean(v) if v else float("nan")), str(len(v)), str(fails[name]),
                 "%.2f×" % ratio if name != a.ours else "1 (ours)"]
        print("| " + " | ".join(cells) + " |")
        if tsv:
            tsv.write("\t".join([name, "%.3f" % med[name], "%.3f" % pct(v, 99),
                                 "%.3f" % (min(v) if v else float("nan")),
                                 "%.3f" % (statistics.mean(v) if v else float("nan")),
                                 str(len(v)), str(fails[name]), "%.3f" % ratio]) + "\n")
    if a.target and ours:
        print()
        print("| target (%s, medians in this run) | ours | peer | ratio | |" % a.target_issue)
        print("|---|---|---|---|---|")
        tt = open(a.target_tsv, "w") if a.target_tsv else None
        if tt:
            tt.write("target\tours_ms\tpeer_ms\tratio\twant\tresult\n")
        for t in a.target:
            name, op, x, label = t.split("|", 3)
            x = float(x)
            if name not in med or not times[name]:
                print("| %s | %.2f ms | (no data) | | not measured |" % (label, ours))
                continue
            if op == "le":
                ratio = ours / med[name]
                ok = ratio <= x
                rs = "ours/peer = %.2f (want ≤ %g)" % (ratio, x)
            else:
                ratio = med[name] / ours
                ok = ratio >= x
                rs = "peer/ours = %.1f (want ≥ %g)" % (ratio, x)
            print("| %s | %.2f ms | %.2f ms | %s | **%s** |" % (label, ours, med[name], rs, "met" if ok else "missed"))
            if tt:
                tt.write("%s\t%.3f\t%.3f\t%.3f\t%s %g\t%s\n" % (label, ours, med[name], ratio,
                                                            "<=" if op == "le" else ">=", x, "met" if ok else "missed"))
    if tsv:
        tsv.close()
    return 0 if not any(fails.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
