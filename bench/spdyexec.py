#!/usr/bin/env python3
"""spdyexec.py - a minimal remotecommand client over SPDY/3.1, to time exec
without kubectl (whose Go start-up is most of a `kubectl exec`).

  spdyexec.py HOST:PORT PATH N [--cert C --key K --ca CA] [--token TOK]

Runs N execs one after the other, each on a new TLS connection (as kubectl
does): HTTP upgrade, SYN_STREAMs error/stdout/stderr, read until the error
stream and stdout are closed, close. Prints one line per run: the wall time
in ms. PATH is the node's (/exec/default/demo/main?command=true&stdout=true&
stderr=true) or the API server's (/api/v1/namespaces/default/pods/demo/exec?
...) path; with --token the Authorization header is sent.
"""
import argparse
import socket
import ssl
import struct
import sys
import time
import zlib

# The SPDY/3 header dictionary is shipped in src/lib/spdy_dict.cc; read it
# from there instead of carrying a second copy.
def load_dict(root):
    import re
    src = open(root + "/src/lib/spdy_dict.cc", encoding="utf-8").read()
    body = src[src.index("{", src.index("kx_spdy_dict")) + 1:]
    body = body[:body.index("};")]
    out = bytes(int(v, 16) for v in re.findall(r"0x[0-9a-fA-F]{2}", body))
    if len(out) != 1423 or zlib.adler32(bytes(out)) != 0xE3C6A7C2:
        raise SystemExit("spdyexec: could not parse the SPDY dictionary (%d bytes)" % len(out))
    return bytes(out)


def nv_block(pairs):
    b = struct.pack(">I", len(pairs))
    for k, v in pairs:
        b += struct.pack(">I", len(k)) + k + struct.pack(">I", len(v)) + v
    return b


def recv_exact(s, n, buf):
    while len(buf) < n:
        d = s.recv(65536)
        if not d:
            raise EOFError
        buf += d
    return buf


def one(args, ctx, dic):
    host, port = args.addr.rsplit(":", 1)
    raw = socket.create_connection((host, int(port)))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s = ctx.wrap_socket(raw, server_hostname=host)
    hdr = ("POST %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
           "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n" % (args.path, args.addr))
    if args.token:
        hdr += "Authorization: Bearer %s\r\n" % args.token
    s.sendall((hdr + "\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            raise SystemExit("spdyexec: connection closed before the response head")
        buf += d
    head, buf = buf.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit("spdyexec: no upgrade: " + head.decode(errors="replace").splitlines()[0])
    z = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, dic)
    out = b""
    ids = {}
    for i, st in enumerate([b"error", b"stdout", b"stderr"]):
        sid = 1 + 2 * i
        ids[sid] = st
        blk = z.compress(nv_block([(b"streamtype", st)])) + z.flush(zlib.Z_SYNC_FLUSH)
        payload = struct.pack(">IIBB", sid, 0, 0, 0) + blk
        out += struct.pack(">HHB", 0x8003, 1, 0) + len(payload).to_bytes(3, "big") + payload
    s.sendall(out)
    open_peer = {1, 3, 5}
    got = 0
    # Until the error stream (1) and stdout (3) are half-closed by the node.
    while 1 in open_peer or 3 in open_peer:
        buf = recv_exact(s, 8, buf)
        flags, length = buf[4], int.from_bytes(buf[5:8], "big")
        buf = recv_exact(s, 8 + length, buf)
        if buf[0] & 0x80:
            typ = struct.unpack(">H", buf[2:4])[0]
            if typ in (2, 8):  # SYN_REPLY / HEADERS carry a stream id
                sid = struct.unpack(">I", buf[8:12])[0] & 0x7FFFFFFF
                if flags & 1:
                    open_peer.discard(sid)
            elif typ == 3:
                sid = struct.unpack(">I", buf[8:12])[0] & 0x7FFFFFFF
                open_peer.discard(sid)
            elif typ == 7:
                break
        else:
            sid = struct.unpack(">I", buf[0:4])[0] & 0x7FFFFFFF
            if sid == 3:  # stdout only (the error stream carries the status)
                got += length
            if flags & 1:
                open_peer.discard(sid)
        buf = buf[8 + length:]
    s.close()
    return got


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    ap.add_argument("path")
    ap.add_argument("n", type=int)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--ca")
    ap.add_argument("--token")
    ap.add_argument("--root", default=__file__.rsplit("/", 2)[0] or ".")
    ap.add_argument("--bytes", action="store_true", help="print the stdout bytes received, not ms")
    args = ap.parse_args()
    dic = load_dict(args.root)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if args.ca:
        ctx.load_verify_locations(args.ca)
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    for _ in range(args.n):
        t0 = time.perf_counter()
        got = one(args, ctx, dic)
        print(got if args.bytes else "%.3f" % ((time.perf_counter() - t0) * 1e3))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
