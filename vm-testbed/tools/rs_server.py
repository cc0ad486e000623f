#!/usr/bin/env python3
"""A lab real server: HTTP on :80 and a UDP echo on :53, in one process (python3 stdlib only).

HTTP (HTTP/1.1, one thread per connection):
  GET  /          -> "<name> <peer_ip>:<peer_port>\\n", the peer as this server saw it (the
                     client for DR/NAT/tunnel, a Full-NAT local address for Full-NAT)
  GET  /bytes/N   -> N deterministic bytes (see `pattern`), streamed; `--digest N` prints
                     their sha256 without a server, so a test knows the hash to expect
  POST|PUT /sha256 -> "<sha256 hex of the body> <length>\\n"; Content-Length or chunked body
  GET  /health    -> 200 "ok", or 503 "unhealthy" while the file /tmp/rvs-lab-<name>.unhealthy
                     exists (the lab's health tests make a server fail its check with it)
UDP:
  a datagram P    -> "<name> P" back to its sender

Every request is logged to stdout as one line, flushed: `<name> <proto> <peer> <what>`.
Prints `ready` once both sockets listen. SIGTERM or SIGINT: closes the sockets, exits 0.

  rs_server.py --name rs1 [--http-port 80] [--udp-port 53] [--bind 0.0.0.0]
  rs_server.py --name rs1 --bind ::      # IPv6 only (a second instance beside the IPv4 one);
                                         # peers are written [address]:port
  rs_server.py --digest 104857600        # sha256 of GET /bytes/104857600's body
  rs_server.py --emit 104857600          # write those bytes to stdout (an upload source)
"""

import argparse
import hashlib
import http.server
import os
import random
import signal
import socket
import socketserver
import struct
import sys
import threading

BLOCK = 64 * 1024
# One fixed pseudo-random block; block i of a stream is this block with its first 8 bytes
# replaced by i (big endian). So lost, duplicated or reordered blocks change the hash too,
# not only corrupted bytes, and generating 100 MB costs one copy per 64 KiB.
_BASE = random.Random(0x72767331).randbytes(BLOCK)


def pattern(n):
    """Yields the n deterministic bytes of GET /bytes/n, in chunks of at most BLOCK."""
    i = 0
    while n > 0:
        block = struct.pack(">Q", i) + _BASE[8:]
        take = min(n, BLOCK)
        yield block[:take] if take < BLOCK else block
        n -= take
        i += 1


def digest(n):
    h = hashlib.sha256()
    for chunk in pattern(n):
        h.update(chunk)
    return h.hexdigest()


def log(*words):
    print(*words, flush=True)


def endpoint(addr):
    """`ip:port` for IPv4, `[ip]:port` for IPv6 (as ipvsadm writes them)."""
    host, port = addr[:2]
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and 100-continue handled by the base class
    server_version = "rvs-lab-rs"
    name = "rs?"

    def log_message(self, fmt, *args):  # the base class logs to stderr; we log our own line
        pass

    def peer(self):
        return endpoint(self.client_address)

    def reply(self, code, body, ctype="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        log(self.name, "http", self.peer(), "GET", self.path)
        if self.path == "/":
            return self.reply(200, ("%s %s\n" % (self.name, self.peer())).encode())
        if self.path == "/health":
            if os.path.exists("/tmp/rvs-lab-%s.unhealthy" % self.name):
                return self.reply(503, b"unhealthy\n")
            return self.reply(200, b"ok\n")
        if self.path.startswith("/bytes/"):
            try:
                n = int(self.path[len("/bytes/"):])
                if n < 0:
                    raise ValueError
            except ValueError:
                return self.reply(400, b"usage: GET /bytes/N with N >= 0\n")
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            for chunk in pattern(n):
                self.wfile.write(chunk)
            return None
        return self.reply(404, b"try GET /, GET /bytes/N or POST /sha256\n")

    def read_body(self):
        """Yields the request body: Content-Length or chunked transfer encoding."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                while size > 0:
                    data = self.rfile.read(min(size, BLOCK))
                    if not data:
                        raise ConnectionError("body ended inside a chunk")
                    size -= len(data)
                    yield data
                self.rfile.readline()  # the CRLF after the chunk
        left = int(self.headers.get("Content-Length", "0"))
        while left > 0:
            data = self.rfile.read(min(left, BLOCK))
            if not data:
                raise ConnectionError("body ended %d bytes early" % left)
            left -= len(data)
            yield data

    def do_POST(self):
        if self.path != "/sha256":
            log(self.name, "http", self.peer(), self.command, self.path)
            self.close_connection = True  # the unread body would be taken for a request
            return self.reply(404, b"POST or PUT the body to /sha256\n")
        h, n = hashlib.sha256(), 0
        for data in self.read_body():
            h.update(data)
            n += len(data)
        log(self.name, "http", self.peer(), self.command, self.path, n, h.hexdigest())
        return self.reply(200, ("%s %d\n" % (h.hexdigest(), n)).encode())

    do_PUT = do_POST  # curl -T FILE (or -T - for stdin) uploads with PUT, streaming


class HttpServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True  # SIGTERM must not wait for a slow client
    allow_reuse_address = True
    request_queue_size = 128


class HttpServer6(HttpServer):
    """IPv6 only, so it shares its port with the IPv4 instance."""

    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)


def udp_echo(sock, name):
    """Echoes datagrams, each reply sent from the address its request was sent to.

    A socket bound to 0.0.0.0 (or ::) would otherwise answer from the route's source address
    (10.20.0.1N), not from the VIP on lo that a DR or tunnel client sent to: the client would
    drop the reply. IP_PKTINFO (IPV6_PKTINFO) gives the request's destination; the reply names
    it as source.
    """
    v6 = sock.family == socket.AF_INET6
    while True:
        try:
            data, anc, _, peer = sock.recvmsg(65535, socket.CMSG_SPACE(20))
        except OSError:
            return  # closed at shutdown
        info = None
        for level, kind, value in anc:
            if not v6 and level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(value) >= 12:
                # struct in_pktinfo: ifindex, spec_dst, addr (the destination)
                local = socket.inet_ntoa(value[8:12])
                info = (socket.IPPROTO_IP, IP_PKTINFO, struct.pack("=i4s4s", 0, value[8:12], b"\0" * 4))
            elif v6 and level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO and len(value) >= 20:
                # struct in6_pktinfo: addr (the destination), ifindex
                local = "[%s]" % socket.inet_ntop(socket.AF_INET6, value[:16])
                info = (socket.IPPROTO_IPV6, IPV6_PKTINFO, value[:16] + b"\0" * 4)
        log(name, "udp", endpoint(peer), "to", local if info else "?", len(data))
        reply = [name.encode() + b" " + data]
        sock.sendmsg(reply, [info] if info else [], 0, peer)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", help="the name answered (rs1, rs2, rs3)")
    ap.add_argument("--bind", default="0.0.0.0", help="listen address (default all: the RS address and the VIP on lo)")
    ap.add_argument("--http-port", type=int, default=80)
    ap.add_argument("--udp-port", type=int, default=53, help="UDP echo port; 0 for none")
    ap.add_argument("--digest", type=int, metavar="N", help="print the sha256 of GET /bytes/N's body and exit")
    ap.add_argument("--emit", type=int, metavar="N", help="write GET /bytes/N's body to stdout and exit")
    a = ap.parse_args()

    if a.digest is not None:
        print(digest(a.digest))
        return 0
    if a.emit is not None:
        out = sys.stdout.buffer
        for chunk in pattern(a.emit):
            out.write(chunk)
        out.flush()
        return 0
    if not a.name:
        ap.error("--name is required to serve")

    # SIGTERM unwinds the main thread out of serve_forever like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    Handler.name = a.name
    v6 = ":" in a.bind
    httpd = (HttpServer6 if v6 else HttpServer)((a.bind, a.http_port), Handler)
    udp = None
    try:
        if a.udp_port:
            udp = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if v6:
                udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                udp.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
            else:
                udp.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            udp.bind((a.bind, a.udp_port))
            threading.Thread(target=udp_echo, args=(udp, a.name), daemon=True).start()
        log("ready", a.name, "http", endpoint((a.bind, a.http_port)), "udp", endpoint((a.bind, a.udp_port)))
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        if udp:
            udp.close()
        log("stopped", a.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
