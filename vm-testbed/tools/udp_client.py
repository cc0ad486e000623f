#!/usr/bin/env python3
"""UDP request/response client for the lab: one datagram per request, each from a new socket
(so a new source port, i.e. a new flow for the balancer's scheduler), one reply awaited.

Prints one line per request: the reply's text (`rs1 hello-0`), or `timeout hello-0`.
Exits 0 if every request got a reply, 1 otherwise.

With --size N each request is N bytes (`PAYLOAD-i:` then a pattern that differs per request),
large enough that the kernel fragments it (4000 bytes over a 1500-byte MTU: 3 fragments);
the reply must be the echo server's name, a space and exactly those N bytes, and the line
printed is `rs1 intact-N` or `rs1 corrupt-M` (M: the length of what came back after the
name), so a byte changed anywhere is seen without printing the datagram.

  udp_client.py --to 10.10.0.100:53 [--count 6] [--payload hello] [--size N] [--timeout 2]
                [--bind 10.10.0.2]
  udp_client.py --to [2001:db8:10::100]:53 ...     # IPv6: the address in brackets
"""

import argparse
import socket
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--to", required=True, help="ADDRESS:PORT to send to")
    ap.add_argument("--count", type=int, default=1, help="requests, each from a new source port")
    ap.add_argument("--payload", default="hello", help="payload prefix; request i sends PAYLOAD-i")
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each reply")
    ap.add_argument("--bind", default="", help="source address (default: the kernel's choice)")
    ap.add_argument("--size", type=int, default=0, help="bytes per request, checked in the echo")
    a = ap.parse_args()
    host, _, port = a.to.rpartition(":")
    family = socket.AF_INET
    if host.startswith("[") and host.endswith("]"):
        host, family = host[1:-1], socket.AF_INET6
    dst = (host, int(port))

    missed = 0
    # Every socket stays open until the end: a closed socket's port may be handed out again
    # to the next one, and two requests from one port are one flow to the balancer.
    open_sockets = []
    try:
        for i in range(a.count):
            payload = "%s-%d" % (a.payload, i)
            body = payload.encode()
            if a.size:
                body = (body + b":" + bytes((j * 7 + i) & 0xFF for j in range(a.size)))[: a.size]
            s = socket.socket(family, socket.SOCK_DGRAM)
            open_sockets.append(s)
            s.bind((a.bind, 0))
            s.settimeout(a.timeout)
            s.sendto(body, dst)
            try:
                data, _ = s.recvfrom(65535)
                if a.size:
                    name, _, echo = data.partition(b" ")
                    verdict = "intact" if echo == body else "corrupt"
                    print("%s %s-%d" % (name.decode(errors="replace"), verdict, len(echo)), flush=True)
                else:
                    print(data.decode(errors="replace"), flush=True)
            except socket.timeout:
                missed += 1
                print("timeout", payload, flush=True)
    finally:
        for s in open_sockets:
            s.close()
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
