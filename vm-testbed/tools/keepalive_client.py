#!/usr/bin/env python3
"""One HTTP/1.1 keep-alive connection, driven line by line from stdin.

Connects to URL's host:port, then for every line read on stdin sends `GET <path>` on
the SAME connection and prints one line: the response body's first line, or
`ERROR <reason>` (connection reset, closed, timeout). Used by the lab tests to hold an
established flow through rvsd while the test changes rvsd's configuration.

Usage: keepalive_client.py [--timeout SECONDS] URL
Python 3 standard library only.
"""
import argparse
import http.client
import sys
import urllib.parse


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url", help="e.g. http://10.10.0.100/")
    ap.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer")
    args = ap.parse_args()
    u = urllib.parse.urlsplit(args.url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=args.timeout)
    path = u.path or "/"
    for _ in sys.stdin:
        try:
            conn.request("GET", path, headers={"Connection": "keep-alive"})
            resp = conn.getresponse()
            body = resp.read().decode(errors="replace")
            line = body.splitlines()[0] if body else ""
            print(line, flush=True)
        except Exception as e:  # any failure is the answer the test wants to see
            print(f"ERROR {type(e).__name__}: {e}", flush=True)
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
