#!/usr/bin/env python3
"""Judges a run of perf/soak.sh from the raw files in its work directory.

    python3 perf/soak/check.py WORK

Reads run.json, samples.tsv and samples/NNNNN.{status.json,metrics} (the sampler),
churn.jsonl (every REST change and its answer), wrk-keepalive.json and wrk-close.json
(perf/e2e/wrk-report.lua), hping3.log, malformed.jsonl; writes summary.json, prints a table
and exits 1 on any violation. The criteria:

- Memory. The window is the load after the warm-up (the first 20 % of the run, at least
  60 s: the allocator's arenas, the REST server's buffers and the rate estimators reach
  their working size there; the connection table and mbufs are hugepage memory allocated at
  start). In it, rvsd's VmRSS must stay within RSS_BAND_KIB (4 MiB) from min to max, and
  the growth over the window's second half by its least-squares line must stay below
  RSS_GROWTH_KIB (1 MiB: in the 30-minute run, about 85 KiB a minute over 12 minutes). A leak of one small allocation per request (thousands a second)
  or per connection breaks the slope within minutes; a one-off growth breaks neither, as it
  should not. HugetlbPages (DPDK's memory) must not change at all.
- Counters. Between every two consecutive samples, every numeric field of /v1/status and
  every series of a `counter` family (and a summary's _sum and _count) of /metrics that is
  in both must not decrease. Gauges are excluded by name (GAUGE_FIELDS). A server's
  counters may start again from 0 only if the churn deleted that server in between (IPVS
  does the same: a re-added destination is a new one).
- Requests. wrk's errors (connect, read, write, timeout, non-2xx) are failures; each must be
  explained (EXPLANATIONS, none today: no error is expected, since a deleted server's
  established flows continue with expire_nodest_conn = false, and 10 s is longer than any
  retransmission of a lost packet) or the run fails. nginx's request count must lie
  between the answers counted (wrk's requests, the probes and path checks answered) and
  that plus the requests that can be in flight when wrk stops (one per wrk connection) and
  the failures. Every liveness probe must be answered by one of rs1..rs3.
- Changes. Every REST change got the answer the churn expected (accepted, or refused with
  a 4xx for the bad ones) and the config generation moved by exactly the number of accepted
  changes: each applied once, none half-applied.
- Connections. rvsd's count of connections scheduled on VIP:8000 must be at least the
  number of requests wrk answered with `Connection: close` (each had a TCP connection of its
  own): a new connection that is not scheduled is neither counted nor balanced, and escapes
  weights, deleted servers and the service's limits.
- No worker stalled; rvsd ran to the end and nine new connections after it reached all
  three servers; the SYN flood and the malformed frames were sent, and rvsd counted them
  (flood: `client_rate_limited` on the flood service in NAT and Full-NAT; malformed: the
  drop counters plus the front port's rx_missed grew by at least the frames sent).
"""

import glob
import json
import os
import re
import sys

RSS_BAND_KIB = 4 * 1024
RSS_GROWTH_KIB = 1024
WARMUP_FRACTION = 0.2
WARMUP_MIN_S = 60

# Numeric /v1/status fields that may go down (by their last path element; `conns`,
# `conns6` and `frag_held` only under workers[], where they are the tables' current size and
# the fragments held right now, not counts of things that happened).
GAUGE_FIELDS = {
    "active_conns", "inactive_conns", "weight", "effective_weight", "stalled", "stalled_for_ms",
    "p50_ns", "p99_ns", "p999_ns", "up", "speed_mbps", "full_duplex", "port_id", "index", "lcore",
    "persistence_seconds", "overloaded", "latency_us", "upper_threshold", "lower_threshold",
    "maxconn", "client_rate", "client_burst", "priority", "effective_priority", "lag_records",
    "lag_ms", "in_sync", "connected",
}
WORKER_GAUGES = {"conns", "conns6", "frag_held"}

# wrk error classes that a run may show, with why; none is expected (see above).
EXPLANATIONS = {}


def load_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def jsonl(path):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        out.append({"unparsable": line})
    return out


def flatten_status(st):
    """Numeric fields of a status as {path: value}, arrays keyed by identity; servers also
    return their identity so deleted servers can be excused."""
    out = {}

    def walk(v, path, server, service=None):
        if isinstance(v, bool):
            out[path] = (int(v), server)
        elif isinstance(v, (int, float)):
            out[path] = (v, server)
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"{path}.{k}", server, service)
        elif isinstance(v, list):
            for i, x in enumerate(v):
                key = str(i)
                srv, svc = server, service
                if isinstance(x, dict):
                    if "name" in x:
                        key = x["name"]
                    elif "protocol" in x and "port" in x and "address" in x:
                        key = svc = f'{x["protocol"]}/{x["address"]}/{x["port"]}'
                    elif "address" in x and "port" in x:
                        key = f'{x["address"]}:{x["port"]}'
                        srv = f"{service}|{key}"
                    elif "index" in x:
                        key = f'w{x["index"]}'
                walk(x, f"{path}[{key}]", srv, svc)

    walk(st, "", None)
    return out


def is_gauge(path):
    last = path.rsplit(".", 1)[-1]
    if last in GAUGE_FIELDS:
        return True
    return last in WORKER_GAUGES and re.fullmatch(r"\.workers\[[^\]]*\]\.[a-z_]+", path) is not None


LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')


def parse_metrics(text):
    """The monotonic series of a Prometheus text: {series: (value, server label or None)}."""
    types = {}
    out = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) >= 4:
                types[parts[2]] = parts[3]
            continue
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        kind = types.get(name)
        if kind is None:
            for suffix in ("_sum", "_count"):
                if name.endswith(suffix) and types.get(name[: -len(suffix)]) == "summary":
                    kind = "counter"
        if kind != "counter":
            continue
        try:
            v = float(value)
        except ValueError:
            continue
        lab = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        srv = None
        if "server" in lab:
            srv = f'{lab.get("protocol")}/{lab.get("vip")}/{lab.get("port")}|{lab["server"]}'
        out[name + labels] = (v, srv)
    return out


def slope(points):
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    den = sum((p[0] - mx) ** 2 for p in points)
    return 0.0 if den == 0 else sum((p[0] - mx) * (p[1] - my) for p in points) / den


def main():
    work = sys.argv[1]
    run = load_json(os.path.join(work, "run.json"), {})
    violations = []
    summary = {"run": run}

    # --- samples -------------------------------------------------------------------------
    samples = []
    with open(os.path.join(work, "samples.tsv")) as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 6:
                continue
            i, t, pid, procs, probe, load = cols[:6]
            proc = {}
            for kv in procs.split(";"):
                if ":" in kv:
                    k, v = kv.split(":", 1)
                    nums = re.findall(r"\d+", v)
                    if nums:
                        proc[k.strip()] = int(nums[0])
            base = os.path.join(work, "samples", f"{int(i):05d}")
            samples.append({"i": int(i), "t": float(t), "pid": pid, "proc": proc, "probe": probe,
                            "load": load, "status": base + ".status.json", "metrics": base + ".metrics"})
    start, end = run.get("start", 0), run.get("end", 0)
    secs = run.get("seconds", end - start)
    churn = jsonl(os.path.join(work, "churn.jsonl"))

    # --- memory --------------------------------------------------------------------------
    warmup = max(WARMUP_MIN_S, WARMUP_FRACTION * secs)
    window = [s for s in samples if start + warmup <= s["t"] <= end and "VmRSS" in s["proc"]]
    rss = [s["proc"]["VmRSS"] for s in window]
    mem = {"warmup_s": warmup, "samples": len(window)}
    if len(window) < 4:
        violations.append(f"memory: only {len(window)} RSS samples after the warm-up ({warmup:.0f} s)")
    else:
        half = window[len(window) // 2:]
        sl = slope([(s["t"], s["proc"]["VmRSS"]) for s in half])  # KiB per second
        growth = sl * (half[-1]["t"] - half[0]["t"])
        mem.update({
            "second_half_s": round(half[-1]["t"] - half[0]["t"]),
            "second_half_growth_kib": round(growth, 1),
            "rss_kib_min": min(rss), "rss_kib_max": max(rss), "rss_kib_band": max(rss) - min(rss),
            "rss_kib_first": rss[0], "rss_kib_last": rss[-1],
            "trend_kib_per_10min": round(sl * 600, 1),
        })
        if mem["rss_kib_band"] > RSS_BAND_KIB:
            violations.append(f"memory: VmRSS moved {mem['rss_kib_band']} KiB after the warm-up (bound {RSS_BAND_KIB})")
        if growth > RSS_GROWTH_KIB:
            violations.append(f"memory: VmRSS grew {growth:.0f} KiB over the window's second half by its trend line (bound {RSS_GROWTH_KIB})")
    all_rss = [s["proc"]["VmRSS"] for s in samples if "VmRSS" in s["proc"]]
    if all_rss:
        mem["rss_kib_start"] = all_rss[0]
        mem["rss_kib_peak"] = max(all_rss)
    huge = sorted({s["proc"].get("HugetlbPages") for s in samples if "HugetlbPages" in s["proc"]})
    mem["hugetlb_kib"] = huge
    if len(huge) > 1:
        violations.append(f"memory: HugetlbPages changed during the run: {huge}")
    summary["memory"] = mem

    # --- counters ------------------------------------------------------------------------
    # "/v1/services/tcp/VIP/PORT/servers/IP/PORT" -> "tcp/VIP/PORT|IP:PORT"
    deletes = []
    for c in churn:
        if c.get("op") == "delete" and 200 <= c.get("code", 0) < 300:
            svc, server = c["path"].split("/v1/services/", 1)[-1].split("/servers/", 1)
            deletes.append((c["t"], f'{svc}|{server.replace("/", ":")}'))

    def excused(server, t0, t1):
        return server is not None and any(t0 - 2 <= t <= t1 and s == server for t, s in deletes)

    pairs = 0
    checked = 0
    series = set()
    decreases = []
    stalls = []
    prev = None
    statuses = []
    for s in samples:
        st = load_json(s["status"])
        try:
            with open(s["metrics"]) as f:
                mt = parse_metrics(f.read())
        except OSError:
            mt = None
        if st is None or mt is None:
            violations.append(f"sample {s['i']}: /v1/status or /metrics did not answer")
            continue
        statuses.append((s, st))
        for w in st.get("workers", []):
            if w.get("stalled"):
                stalls.append(f"sample {s['i']}: worker {w.get('index')} stalled for {w.get('stalled_for_ms')} ms")
        flat = {("status" + k): v for k, v in flatten_status(st).items() if not is_gauge(k)}
        flat.update({("metrics " + k): v for k, v in mt.items()})
        if prev is not None:
            pairs += 1
            pt, pflat = prev
            for k, (v, srv) in flat.items():
                if k not in pflat:
                    continue
                checked += 1
                series.add(k)
                pv = pflat[k][0]
                if v < pv and not excused(srv, pt, s["t"]):
                    decreases.append(f"{k}: {pv} -> {v} (samples at {pt:.0f} and {s['t']:.0f})")
        prev = (s["t"], flat)
    summary["counters"] = {"sample_pairs": pairs, "series": len(series), "comparisons": checked,
                           "decreases": decreases[:50], "decrease_count": len(decreases)}
    if decreases:
        violations.append(f"counters: {len(decreases)} decreases, e.g. {decreases[0]}")
    if pairs < 2:
        violations.append(f"counters: only {pairs} pairs of samples")
    summary["stalls"] = stalls
    if stalls:
        violations.append(f"workers: {len(stalls)} stalled samples, e.g. {stalls[0]}")

    # --- churn and generation ------------------------------------------------------------
    ops = {}
    bad_ops = []
    for c in churn:
        o = ops.setdefault(c.get("op", "?"), {"count": 0, "as_expected": 0})
        o["count"] += 1
        if c.get("ok"):
            o["as_expected"] += 1
        else:
            bad_ops.append(c)
    # The restore's changes may be no-ops (rs3 just re-added has weight 1): the generation
    # is counted up to the status read after the churn and before the restore.
    loop = [c for c in churn if c.get("op") != "restore"]
    accepted = sum(1 for c in loop if 200 <= c.get("code", 0) < 300)
    gen = {"accepted_changes": accepted}
    after_churn = load_json(os.path.join(work, "status-after-churn.json"))
    if loop and statuses:
        first_op = min(c["t"] for c in loop)
        before = [st for s, st in statuses if s["t"] < first_op]
        if before and after_churn:
            g0 = before[-1].get("reload", {}).get("generation")
            g1 = after_churn.get("reload", {}).get("generation")
            gen.update({"generation_before": g0, "generation_after": g1})
            if not (isinstance(g0, int) and isinstance(g1, int) and g1 - g0 == accepted):
                violations.append(f"changes: the config generation went {g0} -> {g1} for {accepted} accepted changes")
        else:
            violations.append("changes: no status before the first change or after the churn")
    summary["churn"] = {"ops": ops, "unexpected": bad_ops[:20], **gen}
    if bad_ops:
        violations.append(f"changes: {len(bad_ops)} got an unexpected answer, e.g. {bad_ops[0]}")
    if ops.get("delete", {}).get("as_expected", 0) == 0:
        violations.append("changes: the churn never deleted a server")

    # --- requests ------------------------------------------------------------------------
    wrk = {}
    answered = 0
    failures = 0
    unexplained = {}
    for name in ("keepalive", "close"):
        w = load_json(os.path.join(work, f"wrk-{name}.json"))
        if not w:
            violations.append(f"wrk {name}: no result (see wrk-{name}.err)")
            continue
        wrk[name] = w
        answered += w["requests"]
        for err in ("err_connect", "err_read", "err_write", "err_timeout", "err_status"):
            n = w.get(err, 0)
            failures += n
            if n and err not in EXPLANATIONS:
                unexplained[f"{name}.{err}"] = n
        if w["requests"] == 0:
            violations.append(f"wrk {name}: no request answered")
    probes = [s["probe"] for s in samples]
    probe_ok = sum(1 for p in probes if p in ("rs1", "rs2", "rs3"))
    probe_fail = [p for p in probes if p not in ("rs1", "rs2", "rs3")]
    for p in probe_fail:
        unexplained["probe"] = unexplained.get("probe", 0) + 1
    paths = 0
    for f in ("path-before.txt", "path-after.txt"):
        try:
            with open(os.path.join(work, f)) as fh:
                words = fh.read().split()
            paths += sum(1 for x in words if x in ("rs1", "rs2", "rs3"))
            failures += sum(1 for x in words if x not in ("rs1", "rs2", "rs3"))
        except OSError:
            violations.append(f"requests: {f} missing")
    counted = answered + probe_ok + paths
    in_flight = run.get("connections", 0) + run.get("close_connections", 0)
    ng = run.get("nginx_requests")
    req = {"wrk": wrk, "wrk_requests": answered, "probes_ok": probe_ok, "probes_failed": len(probe_fail),
           "path_checks": paths, "answered": counted, "nginx_requests": ng,
           "failures": failures + len(probe_fail), "unexplained": unexplained,
           "explained": {k: v for k, v in EXPLANATIONS.items()}}
    try:
        ng = int(ng)
        if not (counted <= ng <= counted + in_flight + failures + len(probe_fail)):
            violations.append(f"requests: nginx served {ng}, the clients counted {counted} answers "
                              f"(+ up to {in_flight} in flight and {failures + len(probe_fail)} failed)")
    except (TypeError, ValueError):
        violations.append(f"requests: nginx's request count is unreadable ({ng!r})")
    if unexplained:
        violations.append(f"requests: unexplained failures {unexplained}")
    summary["requests"] = req

    # --- flood and malformed frames ------------------------------------------------------
    flood = {"sent": None}
    try:
        with open(os.path.join(work, "hping3.log")) as f:
            m = re.search(r"(\d+) packets tr", f.read())
            flood["sent"] = int(m.group(1)) if m else None
    except OSError:
        pass
    mal = jsonl(os.path.join(work, "malformed.jsonl"))
    mal_sent = sum(m.get("total", 0) for m in mal)
    mal_failed = sum(1 for m in mal if m.get("failed") or "unparsable" in m)
    kinds = {}
    for m in mal:
        for k, n in m.get("sent", {}).items():
            kinds[k] = kinds.get(k, 0) + n
    if len(statuses) >= 2:
        s0, s1 = statuses[0][1], statuses[-1][1]

        def drops(st):
            return sum(v for v in st.get("drops", {}).values() if isinstance(v, int))

        def missed(st):
            return sum(p.get("stats", {}).get("rx_missed", 0) for p in st.get("ports", []) if p.get("name") == "front")

        def wsum(st, key):
            return sum(w.get(key, 0) for w in st.get("workers", []))

        def svc(st, port):
            for sv in st.get("services", []):
                if sv.get("port") == port:
                    return sv.get("stats", {})
            return {}

        # Every answered Connection: close request was a connection of its own through
        # VIP:8000, so rvsd must have scheduled (and counted) at least that many there.
        opened = wrk.get("close", {}).get("requests", 0)
        scheduled = svc(s1, 8000).get("conns", 0) - svc(s0, 8000).get("conns", 0)
        summary["connections"] = {"opened_by_wrk_close_at_least": opened, "scheduled_by_rvsd": scheduled,
                                  "conns_displaced": wsum(s1, "conns_displaced") - wsum(s0, "conns_displaced")}
        if scheduled < opened:
            violations.append(
                f"connections: rvsd scheduled {scheduled:,} connections on VIP:8000, but wrk alone opened at least "
                f"{opened:,} (one per Connection: close request): a SYN that reuses a client port whose earlier "
                "connection is still in the table (TIME_WAIT, CLOSE) continues that entry instead of being "
                "scheduled as a new connection (IPVS's conn_reuse_mode reschedules it)")
        fp = run.get("flood_port")
        flood.update({
            "port": fp,
            "client_rate_limited": svc(s1, fp).get("client_rate_limited", 0) - svc(s0, fp).get("client_rate_limited", 0),
            "flood_service_conns": svc(s1, fp).get("conns", 0) - svc(s0, fp).get("conns", 0),
            "half_open_evicted": wsum(s1, "half_open_evicted") - wsum(s0, "half_open_evicted"),
            "conns_created": wsum(s1, "conns_created") - wsum(s0, "conns_created"),
        })
        drop_delta = {k: v - s0.get("drops", {}).get(k, 0) for k, v in s1.get("drops", {}).items()
                      if isinstance(v, int) and v != s0.get("drops", {}).get(k, 0)}
        summary["drops"] = drop_delta
        summary["front_rx_missed"] = missed(s1) - missed(s0)
        if drops(s1) - drops(s0) + missed(s1) - missed(s0) < mal_sent:
            violations.append(f"malformed: {mal_sent} frames sent, but rvsd's drops grew by only "
                              f"{drops(s1) - drops(s0)} (+ {missed(s1) - missed(s0)} missed)")
        if run.get("mode") in ("nat", "fullnat") and flood["client_rate_limited"] <= 0:
            violations.append("flood: no SYN was held to the flood service's client_rate")
    if not flood["sent"]:
        violations.append("flood: hping3 reported no packet sent (see hping3.log)")
    summary["flood"] = flood
    summary["malformed"] = {"sent": mal_sent, "batches": len(mal), "failed_batches": mal_failed, "kinds": kinds}
    if mal_sent == 0 or mal_failed:
        violations.append(f"malformed: {mal_sent} frames sent, {mal_failed} batches failed (see malformed.err)")

    # --- rvsd ----------------------------------------------------------------------------
    if not run.get("rvsd_alive"):
        violations.append("rvsd: not running at the end")
    if not run.get("path_after_ok"):
        violations.append("rvsd: nine new connections after the run did not reach all three servers")
    pids = {s["pid"] for s in samples if s["pid"]}
    if len(pids) > 1:
        violations.append(f"rvsd: its pid changed during the run ({sorted(pids)}): it restarted")

    summary["violations"] = violations
    summary["pass"] = not violations
    with open(os.path.join(work, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)

    # --- table ---------------------------------------------------------------------------
    ka, cl = wrk.get("keepalive", {}), wrk.get("close", {})
    rows = [
        ("mode / length", f"{run.get('mode')} / {secs} s (commit {run.get('commit')})"),
        ("machine load", f"before: {run.get('uptime_before', '').split('load average:')[-1].strip()}; "
                         f"after: {run.get('uptime_after', '').split('load average:')[-1].strip()}"),
        ("wrk keep-alive", f"{ka.get('requests', 0):,} requests, {ka.get('rate', 0):,.0f}/s, p99 {ka.get('p99_us', 0) / 1000:.1f} ms"),
        ("wrk close", f"{cl.get('requests', 0):,} requests, {cl.get('rate', 0):,.0f}/s, p99 {cl.get('p99_us', 0) / 1000:.1f} ms"),
        ("nginx served", f"{req['nginx_requests']} (clients counted {counted:,}, at most {in_flight} in flight)"),
        ("failures", f"{req['failures']} ({'unexplained: ' + json.dumps(unexplained) if unexplained else 'none unexplained'})"),
        ("liveness probes", f"{probe_ok} ok, {len(probe_fail)} failed"),
        ("RSS after warm-up", f"{mem.get('rss_kib_min', '?')}..{mem.get('rss_kib_max', '?')} KiB "
                              f"(band {mem.get('rss_kib_band', '?')} KiB; trend {mem.get('second_half_growth_kib', '?')} KiB "
                              f"over the last {mem.get('second_half_s', '?')} s, {mem.get('trend_kib_per_10min', '?')} KiB/10 min; "
                              f"start {mem.get('rss_kib_start', '?')}, peak {mem.get('rss_kib_peak', '?')}); hugetlb {huge} KiB"),
        ("counters", f"{len(series):,} series, {checked:,} comparisons over {pairs} sample pairs, {len(decreases)} decreases"),
        ("REST churn", ", ".join(f"{k} {v['as_expected']}/{v['count']}" for k, v in sorted(ops.items()))
         + f"; generation {gen.get('generation_before')} -> {gen.get('generation_after')} for {accepted} accepted"),
        ("connections", f"{summary.get('connections', {}).get('scheduled_by_rvsd', '?'):,} scheduled by rvsd on :8000; "
                        f"wrk close opened at least {summary.get('connections', {}).get('opened_by_wrk_close_at_least', '?'):,}"),
        ("SYN flood", f"{flood.get('sent')} SYNs at :{flood.get('port')}; client_rate_limited {flood.get('client_rate_limited')}, "
                      f"half_open_evicted {flood.get('half_open_evicted')}"),
        ("malformed frames", f"{mal_sent:,} sent in {len(mal)} batches; front rx_missed {summary.get('front_rx_missed')}"),
        ("worker stalls", str(len(stalls))),
        ("result", "PASS" if not violations else "FAIL"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"| {'check'.ljust(width)} | result |")
    print(f"|{'-' * (width + 2)}|--------|")
    for k, v in rows:
        print(f"| {k.ljust(width)} | {v} |")
    for v in violations:
        print(f"VIOLATION: {v}", file=sys.stderr)
    return 0 if not violations else 1


if __name__ == "__main__":
    sys.exit(main())
