#!/usr/bin/env python3
"""unitexec.py ROOT UNIT [NAME=VALUE ...] — the command systemd would run for a
unit's ExecStart=, for running it where systemd is not (tests/packages/run.sh).

Reads ROOT/lib/systemd/system/UNIT (or ROOT/usr/lib/...), takes [Service]
Environment= and EnvironmentFile= (a '-' prefix: optional; paths inside ROOT,
later assignments win, files after Environment= as systemd applies them), and
expands ExecStart= as systemd.service(5) says: "${NAME}" anywhere in a word is
replaced by the value as one argument, "$NAME" as a whole word by the value
split at whitespace (zero or more arguments); "$NAME" inside a word is left as
is. Prints, NUL-separated, a command for env(1) relative to ROOT:
  env -i PATH=... NAME=VALUE... [extra NAME=VALUE...] ARGV...
Exit 1 with a message for a unit it cannot read or more than one ExecStart=.
"""
import os
import re
import shlex
import sys

SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def die(msg):
    sys.stderr.write("unitexec: %s\n" % msg)
    sys.exit(1)


def unit_lines(text):
    """Logical lines: comments dropped, backslash continuations joined."""
    out, cur = [], None
    for raw in text.splitlines():
        line = raw.strip()
        if cur is None and (not line or line[0] in "#;"):
            continue
        if cur is not None and line and line[0] in "#;":
            continue  # comment lines inside a continuation are skipped
        piece = line[:-1] if line.endswith("\\") else line
        cur = piece if cur is None else cur + " " + piece
        if not line.endswith("\\"):
            out.append(cur)
            cur = None
    if cur is not None:
        out.append(cur)
    return out


def parse_env_file(path):
    env = {}
    with open(path) as f:
        text = f.read()
    for line in unit_lines(text):
        if "=" not in line:
            continue
        k, v = line.split("=", 1)
        k, v = k.strip(), v.strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
            v = v[1:-1]
        env[k] = v
    return env


def expand(words, env):
    out = []
    for w in words:
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", w)
        if m:
            out.extend(env.get(m.group(1), "").split())
            continue
        out.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), w))
    return out


def main():
    if len(sys.argv) < 3:
        die("usage: unitexec.py ROOT UNIT [NAME=VALUE ...]")
    root, unit = sys.argv[1], sys.argv[2]
    for d in ("lib/systemd/system", "usr/lib/systemd/system", "etc/systemd/system"):
        path = os.path.join(root, d, unit)
        if os.path.exists(path):
            break
    else:
        die("%s not found under %s" % (unit, root))
    section, env, env_files, execs = None, {}, [], []
    with open(path) as f:
        text = f.read()
    for line in unit_lines(text):
        if line.startswith("["):
            section = line
            continue
        if section != "[Service]" or "=" not in line:
            continue
        key, val = (s.strip() for s in line.split("=", 1))
        if key == "Environment":
            for a in shlex.split(val):
                if "=" in a:
                    k, v = a.split("=", 1)
                    env[k] = v
        elif key == "EnvironmentFile":
            env_files.append(val)
        elif key == "ExecStart":
            execs.append(val)
    for ef in env_files:
        optional = ef.startswith("-")
        ef = ef.lstrip("-")
        p = os.path.join(root, ef.lstrip("/"))
        if not os.path.exists(p):
            if optional:
                continue
            die("EnvironmentFile %s missing" % ef)
        env.update(parse_env_file(p))
    if len(execs) != 1:
        die("%s: want exactly one ExecStart=, found %d" % (unit, len(execs)))
    cmd = execs[0].lstrip("-@:+!")
    argv = expand(shlex.split(cmd), env)
    out = ["env", "-i", "PATH=" + SYSTEMD_PATH]
    out += ["%s=%s" % kv for kv in env.items()]
    out += sys.argv[3:]
    out += argv
    sys.stdout.write("\0".join(out) + "\0")


if __name__ == "__main__":
    main()
