#!/usr/bin/env python3
"""ws_refuse_proxy.py - an HTTPS front for kubexec-apiserver that refuses WebSocket.

Stands for an API server (or a proxy in front of one) that does not take WebSocket
upgrades, so a test can check that a client falls back to SPDY (issue 4, acceptance 3):

  - every request whose Upgrade header is "websocket" gets a 400 with a Status body
    (kept alive, as a Go server answers it), and is never passed on;
  - every other request goes to the upstream API server over one persistent TLS
    connection (per client connection), authenticated with the given client
    certificate; a 101 answer turns the pair into a plain two-way byte relay.

It terminates TLS with the API server's own serving certificate (SANs 127.0.0.1,
localhost), so a client keeps its kubeconfig (CA, client certificate) and only its
server URL changes: `--server https://127.0.0.1:PORT`.

Usage: ws_refuse_proxy.py UPSTREAM_HOST:PORT SERVE_CERT SERVE_KEY CLIENT_CERT CLIENT_KEY CA
Prints "listening on PORT" (flushed) once it accepts connections, and one line
"refused websocket upgrade: METHOD PATH" on stdout per refusal. Runs until killed.

Limits: request and response heads up to 64 KiB; request bodies by Content-Length
only (a chunked request body gets a 501); response bodies by Content-Length,
chunked, or until the upstream closes.
"""
import asyncio
import json
import ssl
import sys

HEAD_MAX = 64 * 1024
COPY_CHUNK = 64 * 1024


def parse_head(raw):
    lines = raw.decode('latin-1').split('\r\n')
    first = lines[0]
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(':')
        headers.append((name.strip().lower(), value.strip()))
    return first, headers


def header(headers, name):
    for n, v in headers:
        if n == name:
            return v
    return None


def keeps_alive(headers):
    conn = (header(headers, 'connection') or '').lower()
    return 'close' not in [t.strip() for t in conn.split(',')]


async def relay_body(reader, writer, headers, status, is_head):
    """Copies one response body; False when the connection must close after it."""
    if is_head or status in (204, 304) or 100 <= status < 200:
        return True
    te = (header(headers, 'transfer-encoding') or '').lower()
    if 'chunked' in te:
        while True:
            line = await reader.readuntil(b'\r\n')
            writer.write(line)
            size = int(line.split(b';')[0].strip(), 16)
            if size == 0:
                # Trailers, up to the empty line.
                while True:
                    t = await reader.readuntil(b'\r\n')
                    writer.write(t)
                    if t == b'\r\n':
                        break
                await writer.drain()
                return True
            left = size + 2   # the chunk and its CRLF
            while left:
                d = await reader.read(min(left, COPY_CHUNK))
                if not d:
                    raise ConnectionError('upstream closed in a chunk')
                writer.write(d)
                left -= len(d)
                await writer.drain()
    cl = header(headers, 'content-length')
    if cl is not None:
        left = int(cl)
        while left:
            d = await reader.read(min(left, COPY_CHUNK))
            if not d:
                raise ConnectionError('upstream closed in a body')
            writer.write(d)
            left -= len(d)
            await writer.drain()
        return True
    while True:   # delimited by the close
        d = await reader.read(COPY_CHUNK)
        if not d:
            return False
        writer.write(d)
        await writer.drain()


async def pipe(reader, writer):
    try:
        while True:
            d = await reader.read(COPY_CHUNK)
            if not d:
                break
            writer.write(d)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


class Proxy:
    def __init__(self, upstream, client_ctx):
        self.host, port = upstream.rsplit(':', 1)
        self.port = int(port)
        self.client_ctx = client_ctx

    async def refuse(self, cw, method, path):
        body = json.dumps({
            'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure',
            'message': 'WebSocket upgrades are refused by this server (test proxy)',
            'reason': 'BadRequest', 'code': 400}).encode()
        cw.write(b'HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n'
                 b'Content-Length: %d\r\n\r\n' % len(body) + body)
        await cw.drain()
        print('refused websocket upgrade: %s %s' % (method, path), flush=True)

    async def handle(self, cr, cw):
        ur = uw = None
        try:
            while True:
                try:
                    raw = await cr.readuntil(b'\r\n\r\n')
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                first, headers = parse_head(raw)
                parts = first.split(' ')
                method, path = parts[0], parts[1] if len(parts) > 1 else ''
                if (header(headers, 'upgrade') or '').lower() == 'websocket':
                    await self.refuse(cw, method, path)
                    if not keeps_alive(headers):
                        return
                    continue
                if 'chunked' in (header(headers, 'transfer-encoding') or '').lower():
                    cw.write(b'HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n'
                             b'Connection: close\r\n\r\n')
                    await cw.drain()
                    return
                body = b''
                cl = header(headers, 'content-length')
                if cl:
                    body = await cr.readexactly(int(cl))
                if uw is None:
                    ur, uw = await asyncio.open_connection(
                        self.host, self.port, ssl=self.client_ctx,
                        server_hostname=self.host, limit=HEAD_MAX)
                uw.write(raw + body)
                await uw.drain()
                rraw = await ur.readuntil(b'\r\n\r\n')
                rfirst, rheaders = parse_head(rraw)
                status = int(rfirst.split(' ')[1])
                cw.write(rraw)
                await cw.drain()
                if status == 101:
                    # Upgraded: bytes both ways until either side ends.
                    await asyncio.gather(pipe(cr, uw), pipe(ur, cw))
                    return
                more = await relay_body(ur, cw, rheaders, status, method == 'HEAD')
                if not more or not keeps_alive(rheaders) or not keeps_alive(headers):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ssl.SSLError, OSError, ValueError, IndexError):
            return
        finally:
            for w in (cw, uw):
                if w is not None:
                    try:
                        w.close()
                    except Exception:
                        pass


async def main():
    if len(sys.argv) != 7:
        sys.stderr.write(__doc__)
        sys.exit(2)
    upstream, scert, skey, ccert, ckey, ca = sys.argv[1:]
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(scert, skey)
    sctx.set_alpn_protocols(['http/1.1'])
    cctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    cctx.load_cert_chain(ccert, ckey)
    cctx.set_alpn_protocols(['http/1.1'])
    proxy = Proxy(upstream, cctx)
    server = await asyncio.start_server(proxy.handle, '127.0.0.1', 0, ssl=sctx, limit=HEAD_MAX)
    print('listening on %d' % server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == '__main__':
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
