#!/usr/bin/env python3
"""tp_report.py TSV OUTDIR OUT_ROW IN_ROW PF_ROW : the throughput table and the
issue-5 targets from 21_throughput_peers.sh's per-run TSV (medians over runs).
Writes OUTDIR/throughput_summary.tsv and OUTDIR/throughput_targets.tsv."""
import csv
import statistics
import sys

tsv, outdir, out_row, in_row, pf_row = sys.argv[1:6]
runs = {}
machine = {}  # the whole machine's busy CPU per GB (a cross-check; older TSVs lack it)
for r in csv.DictReader(open(tsv), delimiter="\t"):
    runs.setdefault(r["row"], []).append((float(r["mb_s"]), float(r["cpu_s_per_gb"])))
    if r.get("cpu_machine_s_per_gb"):
        machine.setdefault(r["row"], []).append(float(r["cpu_machine_s_per_gb"]))
med = {k: (statistics.median(x for x, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}

def key(name):
    for i, p in enumerate(("raw", "ceiling", "stdout", "stdin", "port-forward")):
        if name.startswith(p):
            return (i, name)
    return (9, name)

print()
print("| row | MB/s median [min..max] | CPU s/GB, both ends (median) | whole machine's CPU s/GB (median) | runs |")
print("|---|---|---|---|---|")
with open(outdir + "/throughput_summary.tsv", "w") as f:
    f.write("row\tmb_s_median\tmb_s_min\tmb_s_max\tcpu_s_per_gb_median\truns\n")
    for name in sorted(runs, key=key):
        v = [x for x, _ in runs[name]]
        mc = "%.2f" % statistics.median(machine[name]) if name in machine else ""
        print("| %s | %.0f [%.0f..%.0f] | %.2f | %s | %d |" % (name, med[name][0], min(v), max(v), med[name][1], mc,
                                                           len(v)))
        f.write("%s\t%.1f\t%.1f\t%.1f\t%.3f\t%d\n" % (name, med[name][0], min(v), max(v), med[name][1], len(v)))

# Each ssh target twice: against ssh running the host's GNU programs (the
# issue's wording) and against ssh running the pod's busybox programs (the
# same commands on both ends: a comparison of transports alone).
SAME = ", same programs (busybox %s)"
targets = [  # (label, ours row, peer row, field 0=MB/s 1=CPU, op, factor)
    ("stdout ≥ 1.5× ssh aes128-gcm", out_row, "stdout: ssh aes128-gcm", 0, "ge", 1.5),
    ("stdout ≥ 1.5× ssh aes128-gcm, same programs", out_row, "stdout: ssh aes128-gcm" + SAME % "head", 0, "ge", 1.5),
    ("stdout ≥ 50% of one TLS stream", out_row, "raw TLS 1.3 AES-128-GCM, 1 stream", 0, "ge", 0.5),
    ("stdout CPU per GB ≤ ssh aes128-gcm's", out_row, "stdout: ssh aes128-gcm", 1, "le", 1.0),
    ("stdout CPU per GB ≤ ssh aes128-gcm's, same programs", out_row, "stdout: ssh aes128-gcm" + SAME % "head", 1, "le", 1.0),
    ("port-forward ≥ ssh -L (aes128-gcm)", pf_row, "port-forward: ssh -L aes128-gcm", 0, "ge", 1.0),
    ("port-forward ≥ ssh -L (aes128-gcm), same programs", pf_row, "port-forward: ssh -L aes128-gcm" + SAME % "head", 0, "ge", 1.0),
    ("stdin ≥ ssh aes128-gcm", in_row, "stdin: ssh aes128-gcm", 0, "ge", 1.0),
    ("stdin ≥ ssh aes128-gcm, same programs", in_row, "stdin: ssh aes128-gcm" + SAME % "wc", 0, "ge", 1.0),
]
# The pod's own programs with nothing between them and the reader: no
# transport can beat them, so a target that asks for more is out of reach
# with this pod whatever the transport does.
CEILING = {out_row: "ceiling: pod program alone (busybox head into a pipe)",
           in_row: "ceiling: pod program alone (busybox wc from a pipe)",
           pf_row: "ceiling: pod program alone (busybox nc -e head over loopback TCP)"}
print()
print("| target (issue 5, medians in this run) | ours | peer | ours/peer | | needs | the pod's programs alone |")
print("|---|---|---|---|---|---|---|")
with open(outdir + "/throughput_targets.tsv", "w") as f:
    f.write("target\tours_row\tours\tpeer_row\tpeer\tratio\twant\tresult\tneeds\tceiling\n")
    for label, o, p, fld, op, x in targets:
        if o not in med or p not in med:
            print("| %s | | | | not measured | | |" % label)
            continue
        a, b = med[o][fld], med[p][fld]
        ratio = a / b if b else float("nan")
        ok = ratio >= x if op == "ge" else ratio <= x
        unit = "MB/s" if fld == 0 else "CPU s/GB"
        need = b * x
        c = med.get(CEILING.get(o, ""), (None, None))[fld]
        result = "met" if ok else "missed"
        if not ok and c is not None and (need > c if op == "ge" else need < c):
            result = "missed, beyond the ceiling"
        print("| %s | %.2f %s (%s) | %.2f %s | %.2f (want %s %g) | **%s** | %s %.2f | %s |" % (
            label, a, unit, o, b, unit, ratio, "≥" if op == "ge" else "≤", x, result, "≥" if op == "ge" else "≤",
            need, "" if c is None else "%.2f" % c))
        f.write("%s\t%s\t%.3f\t%s\t%.3f\t%.3f\t%s %g\t%s\t%.3f\t%s\n" % (
            label, o, a, p, b, ratio, ">=" if op == "ge" else "<=", x, result, need, "" if c is None else "%.3f" % c))
