#!/usr/bin/env python3
"""UDP request/response client for the lab: one datagram per request, each from a new socket
(so a new source port, i.e. a new flow for the balancer's scheduler), one reply awaited.

Prints one line per request: the reply's text (`rs1 hello-0`), or `timeout hello-0`.
Exits 0 if every request got a reply, 1 otherwise.

  udp_client.py --to 10.10.0.100:53 [--count 6] [--payload hello] [--timeout 2] [--bind 10.10.0.2]
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
    a = ap.parse_args()
    host, _, port = a.to.rpartition(":")
    dst = (host, int(port))

    missed = 0
    # Every socket stays open until the end: a closed socket's port may be handed out again
    # to the next one, and two requests from one port are one flow to the balancer.
    open_sockets = []
    try:
        for i in range(a.count):
            payload = "%s-%d" % (a.payload, i)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            open_sockets.append(s)
            s.bind((a.bind, 0))
            s.settimeout(a.timeout)
            s.sendto(payload.encode(), dst)
            try:
                data, _ = s.recvfrom(65535)
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
