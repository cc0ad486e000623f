#!/usr/bin/env python3
"""Turns the raw files of one `perf/e2e/run.sh` run into its results (python3 stdlib only).

  report.py latency STATUS_JSON METRICS_TEXT
      rvsd's worker per-burst latency (p50/p99/p99.9 in ns) as one JSON object on stdout,
      or `null` when neither GET /v1/status nor /metrics exposes it (rvsd before commit
      ec77ff5). /v1/status's workers[].burst_latency covers the last 60 s; run.sh restarts
      rvsd before every load, so that is the load's bursts alone.
  report.py system WORK SYSTEM
      one JSON line for SYSTEM from WORK/SYSTEM.{keepalive,close}.json (wrk-report.lua),
      WORK/SYSTEM.iperf3.json (iperf3 -J), WORK/SYSTEM.*.latency.json and WORK/SYSTEM.meta.json.
      A load whose tool reported errors (any wrk error counter, iperf3's "error") has no
      figures (null) and its reason in "failed"; `check` then fails the run.
  report.py table WORK SYSTEM...
      the Markdown table of the systems' JSON lines (WORK/SYSTEM.result.json).
  report.py check WORK SYSTEM...
      exit 1, naming what is missing, unless every system produced a positive request
      rate, connection rate and throughput (the smoke test asserts numbers, never timings).
"""

import json
import os
import re
import sys

LOADS = ("keepalive", "close", "iperf3")


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def last_json_line(path):
    """The last line of PATH that parses as a JSON object (wrk prints its report before it)."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


# --- rvsd's burst latency ------------------------------------------------------------------

def _walk(node, path):
    """Yields (path, dict) for every dict in a JSON tree."""
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, path + [str(k)])
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, path + [str(i)])


def _quantiles(d):
    """(p50, p99, p99.9, count) in ns from a summary dict, whatever its unit suffix."""
    for unit, scale in (("_ns", 1), ("_us", 1e3), ("_ms", 1e6), ("", 1)):
        keys = ("p50" + unit, "p99" + unit, "p999" + unit)
        if all(k in d for k in keys):
            vals = [d[k] for k in keys]
            if all(v is None or isinstance(v, (int, float)) for v in vals):
                return [None if v is None else v * scale for v in vals] + [d.get("count")]
    return None


def latency_from_status(status):
    """Burst-latency summaries in a /v1/status document: [(path, p50, p99, p999, count)].

    Any object with p50/p99/p999 fields under a key naming latency: today
    `workers[i].burst_latency` {count, sum_ns, p50_ns, p99_ns, p999_ns}, whose quantiles
    cover the last 60 s (count and sum since start). Keys naming another window are skipped.
    """
    found = []
    for path, d in _walk(status, []):
        joined = "/".join(path).lower()
        if "latency" not in joined or re.search(r"window|minute|recent", joined):
            continue
        q = _quantiles(d)
        if q:
            found.append(("/".join(path),) + tuple(q))
    return found


def latency_from_metrics(text):
    """p50/p99/p999 in ns from Prometheus summary lines `rvs_*latency*{...quantile="0.99"...}`."""
    per_q = {}
    name = None
    for line in text.splitlines():
        if line.startswith("#") or "latency" not in line:
            continue
        m = re.match(r'^(rvs_\w*latency\w*)\{([^}]*)\}\s+([0-9.eE+-]+|NaN)', line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        if "quantile" not in labels or m.group(3) == "NaN":
            continue
        scale = 1e9 if m.group(1).endswith("_seconds") else 1e3 if "_us" in m.group(1) else 1
        q = float(labels["quantile"])
        per_q.setdefault(q, []).append(float(m.group(3)) * scale)
        name = m.group(1)
    if not all(q in per_q for q in (0.5, 0.99, 0.999)):
        return None
    # One worker in these configs; with several, report the worst worker's quantile.
    return name, max(per_q[0.5]), max(per_q[0.99]), max(per_q[0.999])


def cmd_latency(status_path, metrics_path):
    status = load_json(status_path)
    out = None
    if status is not None:
        found = latency_from_status(status)
        if found:
            # With several workers, the worst worker's quantiles (each worker's loop is what
            # a packet waits for); with one worker there is one entry (or a merged total).
            prefer = [f for f in found if "worker" in f[0].lower()] or found
            out = {
                "source": "GET /v1/status " + ",".join(f[0] for f in prefer),
                "p50_ns": max(f[1] for f in prefer if f[1] is not None) if any(f[1] is not None for f in prefer) else None,
                "p99_ns": max(f[2] for f in prefer if f[2] is not None) if any(f[2] is not None for f in prefer) else None,
                "p999_ns": max(f[3] for f in prefer if f[3] is not None) if any(f[3] is not None for f in prefer) else None,
                "bursts": sum(f[4] or 0 for f in prefer) if any(f[4] is not None for f in prefer) else None,
            }
    if out is None:
        try:
            with open(metrics_path) as f:
                text = f.read()
        except OSError:
            text = ""
        m = latency_from_metrics(text)
        if m:
            out = {"source": "GET /metrics " + m[0], "p50_ns": m[1], "p99_ns": m[2], "p999_ns": m[3]}
    print(json.dumps(out))


# --- one system's line ---------------------------------------------------------------------

def r2(x, nd=2):
    return None if x is None else round(x, nd)


def cmd_system(work, system):
    meta = load_json(os.path.join(work, system + ".meta.json")) or {}
    ka = last_json_line(os.path.join(work, system + ".keepalive.json"))
    cl = last_json_line(os.path.join(work, system + ".close.json"))
    ip = load_json(os.path.join(work, system + ".iperf3.json"))
    gbps = None
    retrans = None
    if ip and "end" in ip and not ip.get("error"):
        recv = ip["end"].get("sum_received") or {}
        if "bits_per_second" in recv:
            gbps = recv["bits_per_second"] / 1e9
        retrans = (ip["end"].get("sum_sent") or {}).get("retransmits")

    def errors(w):
        if not w:
            return None
        return sum(w.get(k, 0) for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))

    # A load whose tool reported errors gives no figure: a rate or a latency over failed
    # requests (or a transfer that broke off) measures the failure, not the system.
    failed = []
    for load, w in (("keepalive", ka), ("close", cl)):
        n = errors(w)
        if n:
            failed.append("%s: wrk reported %d errors (%s)" % (load, n, ", ".join(
                "%s %d" % (k[4:], w.get(k, 0)) for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout")
                if w.get(k, 0))))
    err_ka, err_cl = errors(ka), errors(cl)
    if ka and errors(ka):
        ka = None
    if cl and errors(cl):
        cl = None
    if ip and ip.get("error"):
        failed.append("iperf3: %s" % ip["error"])

    line = {"bench": "e2e", "system": system}
    line.update({k: meta[k] for k in ("kind", "mode", "idle", "seconds", "connections", "threads", "load1") if k in meta})
    line.update({
        "rps": r2(ka and ka["rate"]),
        "cps": r2(cl and cl["rate"]),
        "gbps": r2(gbps, 3),
        "p99_ms": r2(ka and ka["p99_us"] / 1000, 3),
        "p50_ms": r2(ka and ka["p50_us"] / 1000, 3),
        "close_p99_ms": r2(cl and cl["p99_us"] / 1000, 3),
        "requests": ka and ka["requests"],
        "connections_made": cl and cl["requests"],
        "errors_keepalive": err_ka,
        "errors_close": err_cl,
        "iperf3_retransmits": retrans,
        "failed": failed,
    })
    cpu = {load: load_json(os.path.join(work, "%s.%s.cpu.json" % (system, load))) for load in LOADS}
    if any(cpu.values()):
        line["cpu"] = cpu
    if meta.get("kind") == "rvsd":
        lat = {}
        for load in LOADS:
            lat[load] = load_json(os.path.join(work, "%s.%s.latency.json" % (system, load)))
        if any(v for v in lat.values()):
            line["worker_burst_ns"] = {
                load: (v and {"p50": v.get("p50_ns"), "p99": v.get("p99_ns"), "p999": v.get("p999_ns")})
                for load, v in lat.items()
            }
            line["worker_burst_source"] = next(v["source"] for v in lat.values() if v)
        else:
            line["worker_burst_ns"] = None
            line["worker_burst_source"] = "not exposed by GET /v1/status or /metrics"
        # The worker's own counters per load: packets, polls (and how many ended in an idle
        # sleep) give the mean burst size; drops name anything lost.
        counters = {}
        for load in LOADS:
            st = load_json(os.path.join(work, "%s.%s.status.json" % (system, load)))
            try:
                ws = st["workers"]
                c = {k: sum(w.get(k, 0) for w in ws) for k in ("rx_packets", "tx_packets", "polls", "idle_sleeps", "conns_created")}
                drops = {}
                for w in ws:
                    for k, v in (w.get("drops") or {}).items():
                        if v:
                            drops[k] = drops.get(k, 0) + v
                c["drops"] = drops
                counters[load] = c
            except (TypeError, KeyError):
                counters[load] = None
        line["rvsd_worker"] = counters
    print(json.dumps(line, separators=(",", ":")))


# --- table and check -----------------------------------------------------------------------

def fmt(x, nd):
    return "—" if x is None else ("{:,.%df}" % nd).format(x)


def burst_cell(line):
    b = line.get("worker_burst_ns")
    if line.get("kind") != "rvsd":
        return "n/a (kernel)"
    if not b:
        return "not exposed"
    parts = []
    for load in LOADS:
        v = b.get(load)
        parts.append("—" if not v else "/".join(fmt(v[k] and v[k] / 1000, 1) for k in ("p50", "p99", "p999")))
    return " · ".join(parts)


def cpu_cell(line):
    c = line.get("cpu") or {}
    parts = []
    for load in LOADS:
        v = c.get(load)
        parts.append("—" if not v else "%s/%s/%s" % (
            fmt(v.get("busy_cores"), 2), fmt(v.get("softirq_cores"), 2), fmt(v.get("lb_cores"), 2)))
    return " · ".join(parts)


def cmd_table(work, systems):
    rows = []
    for s in systems:
        line = last_json_line(os.path.join(work, s + ".result.json"))
        if line:
            rows.append(line)
    out = [
        "| system | req/s keep-alive | p99 ms | conn/s (Connection: close) | p99 ms | iperf3 Gbit/s | load1 | CPU cores busy / softirq / balancer: keep-alive · close · iperf3 | rvsd burst µs p50/p99/p99.9: keep-alive · close · iperf3 |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for l in rows:
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            l["system"], fmt(l.get("rps"), 0), fmt(l.get("p99_ms"), 2), fmt(l.get("cps"), 0),
            fmt(l.get("close_p99_ms"), 2), fmt(l.get("gbps"), 2), fmt(l.get("load1"), 2),
            cpu_cell(l), burst_cell(l)))
    print("\n".join(out))


def cmd_check(work, systems):
    bad = []
    for s in systems:
        line = last_json_line(os.path.join(work, s + ".result.json"))
        if not line:
            bad.append("%s: no result" % s)
            continue
        for reason in line.get("failed") or []:
            bad.append("%s: %s" % (s, reason))
        for k in ("rps", "cps", "gbps", "p99_ms"):
            if not isinstance(line.get(k), (int, float)) or line[k] <= 0:
                bad.append("%s: no %s" % (s, k))
    if bad:
        print("e2e: missing figures: " + "; ".join(bad), file=sys.stderr)
        sys.exit(1)


def main(argv):
    if len(argv) == 4 and argv[1] == "latency":
        cmd_latency(argv[2], argv[3])
    elif len(argv) == 4 and argv[1] == "system":
        cmd_system(argv[2], argv[3])
    elif len(argv) >= 3 and argv[1] == "table":
        cmd_table(argv[2], argv[3:])
    elif len(argv) >= 3 and argv[1] == "check":
        cmd_check(argv[2], argv[3:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)
