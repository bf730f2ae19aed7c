#!/usr/bin/env python3
"""notify-listen.py ADDRESS OUTFILE — stand in for systemd's notify socket:
bind a datagram socket at ADDRESS ('/path' or '@abstract', as $NOTIFY_SOCKET
takes it) and append every message received to OUTFILE, one datagram per
record, records separated by a line "--". Runs until killed."""
import os
import socket
import sys

addr, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
if addr.startswith("@"):
    s.bind("\0" + addr[1:])
else:
    if os.path.exists(addr):
        os.unlink(addr)
    s.bind(addr)
with open(out, "a") as f:
    f.write("")  # created: the listener is up
    f.flush()
    while True:
        d = s.recv(65536)
        f.write(d.decode("utf-8", "replace") + "\n--\n")
        f.flush()
