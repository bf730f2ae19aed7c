#!/usr/bin/env python3
"""hf_table.py JSON... : one table row per hyperfine command (median [min..max] ms)."""
import json
import statistics
import sys

for path in sys.argv[1:]:
    for r in json.load(open(path))["results"]:
        t = [x * 1e3 for x in r["times"]]
        print("| %s | %.1f [%.1f..%.1f] ms | %d | %.0f ms |" % (
            r["command"], statistics.median(t), min(t), max(t), len(t),
            (r.get("user", 0) + r.get("system", 0)) * 1e3))
