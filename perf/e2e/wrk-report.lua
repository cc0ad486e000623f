-- wrk script for `perf/bench.sh e2e` (perf/e2e/run.sh): at the end, one JSON line on stdout
-- with the request count, the rate and the latency quantiles (wrk's histogram, microseconds)
-- and the error counters, so run.sh parses no human-readable output.
done = function(summary, latency, requests)
    local secs = summary.duration / 1e6
    local e = summary.errors
    io.write(string.format(
        '{"requests":%d,"duration_s":%.3f,"rate":%.2f,"bytes":%d,' ..
        '"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,' ..
        '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
        summary.requests, secs, summary.requests / secs, summary.bytes,
        latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
        latency.max, latency.mean,
        e.connect, e.read, e.write, e.status, e.timeout))
end
