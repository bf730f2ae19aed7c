#!/usr/bin/env python3
"""pf_spdy_probe.py KUBECONFIG POD PORT — drives the node's portforward.k8s.io
stream rules (protocol.md §5.1, checklist items 33-37) with a hand-made SPDY/3.1
client, for the cases kubectl never produces:

  * the 101 echoes X-Stream-Protocol-Version: portforward.k8s.io
  * a stream with port 0 / a non-numeric port / an unknown streamtype is reset
  * a pair relays an HTTP request/response and both streams end with FIN
  * without requestid, error stream N pairs with data stream N+2
  * a second error stream for one requestid is reset and the first one gets
    "error stream already assigned"
  * two pairs open at once are served independently
  * a lone error stream gets "timed out waiting for streams" after 30 s

PORT is a pod port serving HTTP (GET /index.html). Prints "ok - ..." /
"not ok - ..." lines; exits 1 on any failure. Standard library only.
"""
import base64
import os
import re
import socket
import ssl
import struct
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def spdy_dict():
    src = open(os.path.join(HERE, "../../src/lib/spdy_dict.cc")).read()
    body = src[src.index("{") + 1:src.rindex("}")]
    d = bytes(int(x, 16) for x in re.findall(r"0x([0-9a-fA-F]{2})", body))
    assert len(d) == 1423, len(d)
    return d


DICT = spdy_dict()
SYN_STREAM, SYN_REPLY, RST_STREAM, PING, GOAWAY = 1, 2, 3, 6, 7


class Client:
    def __init__(self, kubeconfig, pod, ns="default"):
        cfg = open(kubeconfig).read()
        server = re.search(r"server: https://([^:\s]+):(\d+)", cfg)
        self.tmp = tempfile.mkdtemp(prefix="pfprobe.")
        files = {}
        for key in ("certificate-authority-data", "client-certificate-data", "client-key-data"):
            m = re.search(key + r": (\S+)", cfg)
            path = os.path.join(self.tmp, key)
            with open(path, "wb") as f:
                f.write(base64.b64decode(m.group(1)))
            files[key] = path
        ctx = ssl.create_default_context(cafile=files["certificate-authority-data"])
        ctx.check_hostname = False
        ctx.load_cert_chain(files["client-certificate-data"], files["client-key-data"])
        raw = socket.create_connection((server.group(1), int(server.group(2))), timeout=60)
        self.s = ctx.wrap_socket(raw)
        req = ("POST /api/v1/namespaces/%s/pods/%s/portforward HTTP/1.1\r\nHost: x\r\n"
               "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
               "X-Stream-Protocol-Version: portforward.k8s.io\r\nContent-Length: 0\r\n\r\n" % (ns, pod))
        self.s.sendall(req.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.s.recv(4096)
            if not chunk:
                raise RuntimeError("EOF before the 101: %r" % buf)
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        self.head = head.decode()
        self.deflate = zlib.compressobj(zdict=DICT)
        self.inflate = zlib.decompressobj(zdict=DICT)
        self.next_id = 1
        self.events = []   # (kind, id, payload)

    def syn(self, headers):
        sid = self.next_id
        self.next_id += 2
        nv = struct.pack(">I", len(headers))
        for k, v in headers.items():
            nv += struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode()
        block = self.deflate.compress(nv) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        payload = struct.pack(">II", sid, 0) + b"\x00\x00" + block
        self.s.sendall(struct.pack(">HHI", 0x8003, SYN_STREAM, len(payload)) + payload)
        return sid

    def data(self, sid, b, fin=False):
        self.s.sendall(struct.pack(">II", sid, (1 if fin else 0) << 24 | len(b)) + b)

    def read_frames(self, timeout):
        """Reads for up to timeout seconds (or until the peer closes)."""
        end = time.time() + timeout
        while time.time() < end:
            self.s.settimeout(max(0.05, end - time.time()))
            try:
                chunk = self.s.recv(65536)
            except (socket.timeout, TimeoutError):
                break
            if not chunk:
                self.events.append(("eof", 0, b""))
                break
            self.buf += chunk
            self._parse()

    def _parse(self):
        while len(self.buf) >= 8:
            w0, w1 = struct.unpack(">II", self.buf[:8])
            n = w1 & 0xFFFFFF
            flags = w1 >> 24
            if len(self.buf) < 8 + n:
                return
            payload, self.buf = self.buf[8:8 + n], self.buf[8 + n:]
            if w0 & 0x80000000:
                typ = w0 & 0xFFFF
                sid = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF if n >= 4 else 0
                if typ == SYN_REPLY:
                    self.inflate.decompress(payload[4:])
                    self.events.append(("reply", sid, b""))
                elif typ == RST_STREAM:
                    self.events.append(("rst", sid, payload[4:8]))
                elif typ == GOAWAY:
                    self.events.append(("goaway", 0, b""))
                elif typ == SYN_STREAM:
                    self.events.append(("syn", sid, b""))
                if flags & 1:
                    self.events.append(("fin", sid, b""))
            else:
                if payload:
                    self.events.append(("data", w0, payload))
                if flags & 1:
                    self.events.append(("fin", w0, b""))

    def got(self, kind, sid):
        return any(e[0] == kind and e[1] == sid for e in self.events)

    def text(self, sid):
        return b"".join(e[2] for e in self.events if e[0] == "data" and e[1] == sid)


failed = 0


def check(name, cond, detail=""):
    global failed
    if cond:
        print("ok - " + name)
    else:
        failed += 1
        print("not ok - " + name)
        if detail:
            print("#   " + str(detail)[:600].replace("\n", "\n#   "))


def pair(c, port, reqid, http=True):
    hdr = {"streamtype": "error", "port": str(port)}
    if reqid is not None:
        hdr["requestid"] = str(reqid)
    e = c.syn(hdr)
    c.data(e, b"", fin=True)
    hdr = dict(hdr, streamtype="data")
    d = c.syn(hdr)
    if http:
        c.data(d, b"GET /index.html HTTP/1.0\r\n\r\n")
    return e, d


def main():
    kubeconfig, pod, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    c = Client(kubeconfig, pod)
    check("101 echoes X-Stream-Protocol-Version: portforward.k8s.io",
          c.head.startswith("HTTP/1.1 101") and
          re.search(r"(?im)^X-Stream-Protocol-Version: portforward\.k8s\.io\s*$", c.head), c.head)

    bad0 = c.syn({"streamtype": "data", "port": "0", "requestid": "90"})
    badx = c.syn({"streamtype": "data", "port": "http", "requestid": "91"})
    badt = c.syn({"streamtype": "bogus", "port": str(port), "requestid": "92"})
    e1, d1 = pair(c, port, 1)
    e2, d2 = pair(c, port, 2)               # concurrent with request 1
    e3, d3 = pair(c, port, None)            # old client: no requestid
    dup1 = c.syn({"streamtype": "error", "port": str(port), "requestid": "5"})
    dup2 = c.syn({"streamtype": "error", "port": str(port), "requestid": "5"})
    lone = c.syn({"streamtype": "error", "port": str(port), "requestid": "7"})
    c.data(lone, b"", fin=True)
    c.read_frames(3)

    for sid, what in ((bad0, "port 0"), (badx, "a non-numeric port"), (badt, "an unknown streamtype")):
        check("a stream with %s is reset" % what, c.got("rst", sid) and not c.got("reply", sid), c.events[:8])
    for (e, d), what in (((e1, d1), "request 1"), ((e2, d2), "request 2 (concurrent)"),
                         ((e3, d3), "no requestid (data = error id + 2)")):
        body = c.text(d)
        check("%s: both streams replied" % what, c.got("reply", e) and c.got("reply", d))
        check("%s: the HTTP answer comes back" % what, b"200 OK" in body, body[:200])
        check("%s: data and error streams end with FIN, no error text" % what,
              c.got("fin", d) and c.got("fin", e) and c.text(e) == b"",
              (c.got("fin", d), c.got("fin", e), c.text(e)))
    check("a second error stream for one requestid is reset", c.got("rst", dup2) and c.got("reply", dup1))
    check("the first error stream reports 'error stream already assigned'",
          b"error stream already assigned" in c.text(dup1), c.text(dup1))

    t0 = time.time()
    while time.time() - t0 < 40 and not c.got("fin", lone):
        c.read_frames(1)
    waited = time.time() - t0 + 3
    check("a lone error stream gets 'timed out waiting for streams' after ~30 s (%.0f s)" % waited,
          b"timed out waiting for streams" in c.text(lone) and c.got("fin", lone) and 27 <= waited <= 35,
          c.text(lone))
    c.s.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
