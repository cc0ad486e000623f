#!/usr/bin/env python3
"""Long-lived flows through a VIP, each checking every answer, for takeover tests.

TCP (--tcp HOST:PORT): COUNT HTTP/1.1 keep-alive connections, opened one after the other;
each sends `GET /` on the SAME connection every INTERVAL seconds and checks that the answer
is the first answer again, byte for byte ("rsN <peer>": the same real server, which saw the
same peer). A flow fails at its first reset, close, timeout, or different answer.

UDP (--udp HOST:PORT): COUNT sockets, each with its own source port, send a numbered
datagram every INTERVAL seconds and wait for "rsN <datagram>"; a flow fails when the answer
comes from another real server than the first (the flow was rescheduled) or when no answer
came for STALL seconds. Lost datagrams are retried by the next one, not failures.

Each flow records the longest time between two good answers (its "gap"). A gap longer than
STALL seconds fails the flow too.

The flows run until stdin reaches end of file (the test closes it), or for --duration
seconds. Prints `ready` once every flow has had its first answer, then at the end one JSON
object: {"flows", "ok", "failed": [{"flow", "why"}...], "max_gap_ms", "answers",
"servers": {"rs1": n, ...}} and exits 0 (the test judges the figures).

  flows.py --tcp 10.10.0.100:80 --count 100 --interval 0.05 [--stall 2] [--duration S]
           [--sources 10.10.0.2,10.10.0.3]
  flows.py --udp 10.10.0.100:53 --count 20
  flows.py --tcp [2001:db8:10::100]:80 --count 20      (IPv6: the address in brackets)

Python 3 standard library only.
"""
import argparse
import json
import socket
import sys
import threading
import time


class Flow:
    def __init__(self, index):
        self.index = index
        self.first = None
        self.failed = None
        self.last_ok = None
        self.max_gap = 0.0
        self.answers = 0

    def good(self, now):
        if self.last_ok is not None:
            self.max_gap = max(self.max_gap, now - self.last_ok)
        self.last_ok = now
        self.answers += 1

    def fail(self, why):
        if self.failed is None:
            self.failed = why


def http_get(sock, host, buf):
    """Sends GET / on `sock` and returns (body, rest of buf); raises on close or timeout."""
    host = "[%s]" % host if ":" in host else host
    sock.sendall(b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\nConnection: keep-alive\r\n\r\n")
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed by peer")
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(buf) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed by peer mid-body")
        buf += chunk
    return buf[:length], buf[length:]


def run_tcp(flow, addr, sock, buf, interval, stall, stop):
    try:
        while not stop.is_set():
            body, buf = http_get(sock, addr[0], buf)
            now = time.monotonic()
            if body != flow.first:
                flow.fail("answer changed: %r then %r" % (flow.first, body))
                return
            if flow.last_ok is not None and now - flow.last_ok > stall:
                flow.fail("stalled %.0f ms" % ((now - flow.last_ok) * 1000))
            flow.good(now)
            stop.wait(interval)
    except Exception as e:  # the failure is what the test wants to know
        if not stop.is_set():
            flow.fail("%s: %s" % (type(e).__name__, e))
    finally:
        sock.close()


def open_tcp(flow, addr, timeout, source=None):
    sock = socket.create_connection(addr, timeout=timeout, source_address=(source, 0) if source else None)
    body, buf = http_get(sock, addr[0], b"")
    flow.first = body
    flow.good(time.monotonic())
    return sock, buf


def run_udp(flow, addr, sock, interval, stall, stop):
    n = 0
    try:
        while not stop.is_set():
            n += 1
            payload = b"flow %d seq %d" % (flow.index, n)
            sock.send(payload)
            deadline = time.monotonic() + interval
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                try:
                    data = sock.recv(2048)
                except socket.timeout:
                    break
                name, _, echoed = data.partition(b" ")
                if echoed != payload:
                    continue  # a late answer to an earlier datagram
                now = time.monotonic()
                if name != flow.first:
                    flow.fail("answered by %s, first by %s" % (name.decode(), flow.first.decode()))
                    return
                flow.good(now)
            if flow.last_ok is not None and time.monotonic() - flow.last_ok > stall:
                flow.fail("no answer for %.0f ms" % ((time.monotonic() - flow.last_ok) * 1000))
                return
            left = deadline - time.monotonic()
            if left > 0:
                stop.wait(left)
    except Exception as e:
        if not stop.is_set():
            flow.fail("%s: %s" % (type(e).__name__, e))
    finally:
        sock.close()


def open_udp(flow, addr, timeout):
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.connect(addr)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sock.send(b"flow %d hello" % flow.index)
        sock.settimeout(0.3)
        try:
            data = sock.recv(2048)
        except socket.timeout:
            continue
        flow.first = data.partition(b" ")[0]
        flow.good(time.monotonic())
        return sock
    raise TimeoutError("no first answer")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    kind = ap.add_mutually_exclusive_group(required=True)
    kind.add_argument("--tcp", metavar="HOST:PORT")
    kind.add_argument("--udp", metavar="HOST:PORT")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between a flow's requests")
    ap.add_argument("--stall", type=float, default=2.0, help="longest gap in seconds before a flow fails")
    ap.add_argument("--duration", type=float, help="seconds to run (default: until stdin closes)")
    ap.add_argument("--sources", help="TCP: comma-separated client addresses, flow i from the i-th modulo their count")
    a = ap.parse_args()
    host, _, port = (a.tcp or a.udp).rpartition(":")
    addr = (host.strip("[]"), int(port))  # an IPv6 address is written [addr]:port
    sources = a.sources.split(",") if a.sources else []

    flows = [Flow(i) for i in range(a.count)]
    stop = threading.Event()
    threads = []
    for f in flows:
        try:
            if a.tcp:
                source = sources[f.index % len(sources)] if sources else None
                sock, buf = open_tcp(f, addr, 3.0, source)
                t = threading.Thread(target=run_tcp, args=(f, addr, sock, buf, a.interval, a.stall, stop))
            else:
                sock = open_udp(f, addr, 3.0)
                t = threading.Thread(target=run_udp, args=(f, addr, sock, a.interval, a.stall, stop))
        except Exception as e:
            f.fail("open: %s: %s" % (type(e).__name__, e))
            continue
        t.daemon = True
        t.start()
        threads.append(t)
    print("ready", flush=True)

    if a.duration is not None:
        time.sleep(a.duration)
    else:
        sys.stdin.read()
    stop.set()
    for t in threads:
        t.join(timeout=5)
    now = time.monotonic()
    for f in flows:  # a flow silent since its last answer has a gap up to now
        if f.failed is None and f.last_ok is not None and now - f.last_ok > a.stall:
            f.fail("silent for %.0f ms at the end" % ((now - f.last_ok) * 1000))
    servers = {}
    for f in flows:
        if f.first:
            name = f.first.split(b" ")[0].decode(errors="replace")
            servers[name] = servers.get(name, 0) + 1
    print(
        json.dumps(
            {
                "flows": len(flows),
                "ok": sum(1 for f in flows if f.failed is None),
                "failed": [{"flow": f.index, "why": f.failed} for f in flows if f.failed is not None],
                "max_gap_ms": round(max((f.max_gap for f in flows), default=0.0) * 1000, 1),
                "answers": sum(f.answers for f in flows),
                "servers": servers,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
