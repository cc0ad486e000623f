//! `GET /metrics`: Prometheus text exposition format 0.0.4, rendered from plain inputs.
//!
//! Contract:
//! * [`render`] is a pure function of a [`MetricsInput`] — the `/v1/status` document
//!   ([`Status`]) and the estimator's output ([`Estimates`]) — so it is tested without a
//!   daemon; [`handler`] serves it with [`CONTENT_TYPE`] from any [`MetricsSource`].
//! * Every name starts with `rvs_`; every family has one `# HELP` and one `# TYPE` line
//!   before its samples, and its samples are contiguous. Counters end in `_total` and
//!   come from the raw counters (never reset: `ipvsadm -Z` only moves the REST API's
//!   baseline, so Prometheus sees no counter go backwards).
//! * Label values are escaped as the format requires (`\` → `\\`, `"` → `\"`, newline →
//!   `\n`); HELP text escapes `\` and newline.
//! * Labels: `port` (the port's config name), `worker` (index), `reason` (a
//!   [`DropReason::name`]), `protocol`/`vip`/`port` for a service (`vip` the bare
//!   address: `10.10.0.100`, `2001:db8::1`), plus `server` (`10.20.0.11:80`, IPv6 in
//!   brackets as ipvsadm writes it: `[2001:db8::11]:80`) for a real server. Per-worker drop counters are not exported (reasons ×
//!   workers series); `rvs_drops_total` sums the workers, as `/v1/status` does.
//! * Rates are IPVS's estimates (see [`crate::rates`]): gauges in units per second,
//!   `*_bps` in **bytes** per second as ipvsadm's `InBPS`. Burst latency is a summary in
//!   seconds: quantiles 0.5, 0.99, 0.999 over the estimator's window (NaN when the window
//!   saw no burst), `_sum` and `_count` since start.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::http::header;
use axum::routing::{get, MethodRouter};
use rvs_dataplane::latency::LatencySummary;
use rvs_dataplane::stats::{CounterKind, CountersSnapshot, DropReason};

use crate::rates::{self, Estimates, Rates, SharedEstimator};
use crate::status::{PortStatsJson, Status, StatusSource, TrafficJson};

/// The content type of the text format this module writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything one scrape renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsInput {
    /// The `/v1/status` document: ports, workers, drops, services and servers.
    pub status: Status,
    /// Rates of services, servers and workers, and each worker's burst latency.
    pub estimates: Estimates,
    /// Every worker's burst latency merged (quantiles cannot be summed in Prometheus).
    pub burst_latency: LatencySummary,
}

/// Something that can produce a [`MetricsInput`]: the running daemon ([`LiveMetrics`]) or
/// a fixed value in tests. Called on the control thread for every scrape.
pub trait MetricsSource: Send + Sync + 'static {
    /// The inputs now.
    fn metrics(&self) -> MetricsInput;
}

/// The daemon's [`MetricsSource`]: the status source `/v1/status` uses and the shared
/// rate estimator.
pub struct LiveMetrics {
    status: Arc<dyn StatusSource>,
    estimator: SharedEstimator,
}

impl std::fmt::Debug for LiveMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveMetrics").finish_non_exhaustive()
    }
}

impl LiveMetrics {
    /// A source reading `status` and `estimator`.
    pub fn new(status: Arc<dyn StatusSource>, estimator: SharedEstimator) -> LiveMetrics {
        LiveMetrics { status, estimator }
    }
}

impl MetricsSource for LiveMetrics {
    fn metrics(&self) -> MetricsInput {
        let status = self.status.status();
        let (estimates, burst_latency) = {
            let e = rates::lock(&self.estimator);
            (e.estimates(), e.merged_latency())
        };
        MetricsInput { status, estimates, burst_latency }
    }
}

/// The `GET /metrics` route: mount it with `.route("/metrics", metrics::handler(src))`.
/// Answers 200 with [`CONTENT_TYPE`] and [`render`]'s text.
pub fn handler<S: Clone + Send + Sync + 'static>(source: Arc<dyn MetricsSource>) -> MethodRouter<S> {
    get(move || {
        let source = Arc::clone(&source);
        async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&source.metrics())) }
    })
}

/// A metric type of the text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Summary,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        }
    }
}

/// A sample value: counters and most gauges are integers, latencies are seconds.
#[derive(Debug, Clone, Copy)]
enum Value {
    Int(u64),
    Float(f64),
}

/// One sample's labels, in output order.
type Labels = Vec<(&'static str, String)>;

/// A family fed from one field of `T`: name (or suffix), HELP text, getter.
type Field<T> = (&'static str, &'static str, fn(&T) -> u64);

/// A traffic family: suffix, type, HELP text prefix, getter.
type TrafficField = (&'static str, Kind, &'static str, fn(&TrafficJson) -> u64);

/// A service's or server's labels, counters and rates.
type TrafficItem = (Labels, TrafficJson, Rates);

/// The text being written, with the families written so far (each name once).
#[derive(Debug, Default)]
struct Out {
    text: String,
    families: BTreeSet<String>,
}

impl Out {
    /// Writes one family: HELP, TYPE and its samples, or nothing when it has none.
    fn family(&mut self, name: &str, kind: Kind, help: &str, samples: impl IntoIterator<Item = (Labels, Value)>) {
        let mut samples = samples.into_iter().peekable();
        if samples.peek().is_none() {
            return;
        }
        let fresh = self.families.insert(name.to_string());
        debug_assert!(fresh, "family {name} written twice");
        self.header(name, kind, help);
        for (labels, value) in samples {
            self.sample(name, &labels, value);
        }
    }

    fn header(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.name());
    }

    fn sample(&mut self, name: &str, labels: &[(&'static str, String)], value: Value) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        self.text.push(' ');
        match value {
            Value::Int(v) => {
                let _ = write!(self.text, "{v}");
            }
            Value::Float(v) => self.text.push_str(&format_float(v)),
        }
        self.text.push('\n');
    }

    /// A summary family: quantile samples, `_sum` and `_count` per label set.
    fn summary(&mut self, name: &str, help: &str, items: &[(Labels, LatencySummary)]) {
        if items.is_empty() {
            return;
        }
        let fresh = self.families.insert(name.to_string());
        debug_assert!(fresh, "family {name} written twice");
        self.header(name, Kind::Summary, help);
        for (labels, s) in items {
            for (q, v) in [("0.5", s.p50_ns), ("0.99", s.p99_ns), ("0.999", s.p999_ns)] {
                let mut l = labels.clone();
                l.push(("quantile", q.to_string()));
                self.sample(name, &l, Value::Float(v.map_or(f64::NAN, ns_to_seconds)));
            }
            self.sample(&format!("{name}_sum"), labels, Value::Float(ns_to_seconds(s.sum_ns)));
            self.sample(&format!("{name}_count"), labels, Value::Int(s.count));
        }
    }
}

fn ns_to_seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// A float as Go's `strconv.ParseFloat` reads it (`NaN`, `+Inf`, `-Inf`, or a decimal).
fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// Escapes a label value: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes HELP text: `\` → `\\`, newline → `\n`.
pub fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The text format's type of a declared counter.
fn kind_of(k: CounterKind) -> Kind {
    match k {
        CounterKind::Counter => Kind::Counter,
        CounterKind::Gauge => Kind::Gauge,
    }
}

fn worker_label(w: u16) -> Labels {
    vec![("worker", w.to_string())]
}

/// Renders every metric. See the module docs for the names and labels.
pub fn render(input: &MetricsInput) -> String {
    let mut out = Out::default();
    let st = &input.status;
    let est = &input.estimates;

    out.family(
        "rvs_build_info",
        Kind::Gauge,
        "rvsd's version; always 1.",
        [(vec![("version", st.version.clone())], Value::Int(1))],
    );
    out.family(
        "rvs_uptime_seconds",
        Kind::Gauge,
        "Seconds since rvsd finished starting.",
        [(vec![], Value::Int(st.uptime_seconds))],
    );

    if let Some(r) = &st.reload {
        out.family(
            "rvs_config_last_reload_success",
            Kind::Gauge,
            "1 when the last SIGHUP reload of the config file succeeded (or none was tried), 0 when it failed.",
            [(vec![], Value::Int(u64::from(r.ok)))],
        );
        out.family(
            "rvs_config_reload_failures_total",
            Kind::Counter,
            "SIGHUP reloads of the config file that failed (unreadable, invalid or refused); nothing changed.",
            [(vec![], Value::Int(r.failures))],
        );
        out.family(
            "rvs_config_generation",
            Kind::Gauge,
            "Generation of the configuration in force.",
            [(vec![], Value::Int(r.generation))],
        );
    }

    if let Some(p) = st.prober {
        for (name, help, v) in [
            ("rvs_prober_packets_in_total", "Packets the workers punted to the health prober.", p.packets_in),
            ("rvs_prober_packets_out_total", "Packets the health prober queued for worker 0.", p.packets_out),
            (
                "rvs_prober_packets_out_dropped_total",
                "Health prober packets not queued: the ring to worker 0 was full.",
                p.packets_out_dropped,
            ),
            ("rvs_prober_transitions_total", "Up/down transitions of checked real servers.", p.transitions),
        ] {
            out.family(name, Kind::Counter, help, [(vec![], Value::Int(v))]);
        }
    }

    if let Some(ha) = &st.ha {
        vrrp_families(&mut out, ha);
    }
    if let Some(bgp) = &st.bgp {
        bgp_families(&mut out, bgp);
    }

    // Ports.
    let port = |name: &str| -> Labels { vec![("port", name.to_string())] };
    out.family(
        "rvs_port_up",
        Kind::Gauge,
        "1 when the port's link is up.",
        st.ports.iter().map(|p| (port(&p.name), Value::Int(u64::from(p.link.up)))),
    );
    out.family(
        "rvs_port_link_changes_total",
        Kind::Counter,
        "Link changes (down or up) rvsd saw, sampling the link every 250 ms.",
        st.ports.iter().map(|p| (port(&p.name), Value::Int(p.link_changes))),
    );
    out.family(
        "rvs_port_link_speed_mbps",
        Kind::Gauge,
        "Link speed in Mbit/s (0 when unknown).",
        st.ports.iter().map(|p| (port(&p.name), Value::Int(u64::from(p.link.speed_mbps)))),
    );
    // Every NIC counter and every worker counter as declared (status::port_counters!,
    // rvs_dataplane::stats's worker_counters!): names, kinds and help come from there.
    for d in PortStatsJson::COUNTERS {
        out.family(
            d.metric,
            kind_of(d.kind),
            d.help,
            st.ports.iter().map(|p| (port(&p.name), Value::Int((d.get)(&p.stats)))),
        );
    }
    // The kernel exception paths (rvs_dataplane::exception), ports with one only.
    for &(_, metric, help, get) in rvs_dataplane::exception::ExceptionSnapshot::COUNTERS {
        out.family(
            metric,
            Kind::Counter,
            help,
            st.ports.iter().filter_map(|p| p.exception.as_ref().map(|e| (port(&p.name), Value::Int(get(&e.counters))))),
        );
    }

    // Workers.
    for d in CountersSnapshot::COUNTERS {
        out.family(
            d.metric,
            kind_of(d.kind),
            d.help,
            st.workers.iter().map(|w| (worker_label(w.index), Value::Int((d.get)(&w.counters)))),
        );
    }
    out.family(
        "rvs_worker_stalled",
        Kind::Gauge,
        "1 when the worker's poll counter has not moved for a second or more (the watchdog), else 0.",
        st.workers.iter().map(|w| (worker_label(w.index), Value::Int(u64::from(w.stalled)))),
    );
    let worker_rates: [Field<rates::WorkerRates>; 5] = [
        ("rvs_worker_rate_rx_pps", "Frames received per second (IPVS-style 2 s estimate).", |r| r.rx_pps),
        ("rvs_worker_rate_tx_pps", "Frames sent per second (IPVS-style 2 s estimate).", |r| r.tx_pps),
        ("rvs_worker_rate_rx_bps", "Bytes received per second (IPVS-style 2 s estimate).", |r| r.rx_bps),
        ("rvs_worker_rate_tx_bps", "Bytes sent per second (IPVS-style 2 s estimate).", |r| r.tx_bps),
        ("rvs_worker_rate_cps", "Connections created per second (IPVS-style 2 s estimate).", |r| r.cps),
    ];
    for (name, help, get) in worker_rates {
        out.family(name, Kind::Gauge, help, est.workers.iter().map(|r| (worker_label(r.index), Value::Int(get(r)))));
    }
    let per_worker: Vec<(Labels, LatencySummary)> =
        est.workers.iter().map(|r| (worker_label(r.index), r.burst_latency)).collect();
    out.summary(
        "rvs_worker_burst_latency_seconds",
        "Time a worker's poll took to process a received burst (quantiles over the last minute).",
        &per_worker,
    );
    if input.burst_latency.count > 0 || !est.workers.is_empty() {
        out.summary(
            "rvs_burst_latency_seconds",
            "Time a poll took to process a received burst, all workers merged (quantiles over the last minute).",
            &[(vec![], input.burst_latency)],
        );
    }

    // Drops.
    out.family(
        "rvs_drops_total",
        Kind::Counter,
        "Packets the workers dropped, by reason (rvs_drop_reason_info explains each reason).",
        st.drops.iter().map(|(reason, n)| (vec![("reason", reason.clone())], Value::Int(*n))),
    );
    out.family(
        "rvs_drop_reason_info",
        Kind::Gauge,
        "What each drop reason means; always 1.",
        DropReason::ALL
            .iter()
            .map(|r| (vec![("reason", r.name().to_string()), ("help", r.help().to_string())], Value::Int(1))),
    );

    // Services and servers.
    let svc_labels = |s: &crate::status::ServiceStatus| -> Labels {
        vec![("protocol", s.protocol.clone()), ("vip", s.address.clone()), ("port", s.port.to_string())]
    };
    let services: Vec<TrafficItem> = st
        .services
        .iter()
        .map(|s| {
            let rates = est.service(&s.protocol, &s.address, s.port).map(|r| r.rates).unwrap_or_default();
            (svc_labels(s), s.stats, rates)
        })
        .collect();
    let servers: Vec<TrafficItem> = st
        .services
        .iter()
        .flat_map(|s| {
            let svc_rates = est.service(&s.protocol, &s.address, s.port);
            s.servers.iter().map(move |r| {
                let mut l = svc_labels(s);
                l.push(("server", server_label(&r.address, r.port)));
                let rates = svc_rates.and_then(|x| x.server(&r.address, r.port)).map(|x| x.rates).unwrap_or_default();
                (l, r.stats, rates)
            })
        })
        .collect();
    out.family(
        "rvs_service_info",
        Kind::Gauge,
        "A virtual service and its scheduler; always 1.",
        st.services.iter().map(|s| {
            let mut l = svc_labels(s);
            l.push(("scheduler", s.scheduler.clone()));
            (l, Value::Int(1))
        }),
    );
    traffic_families(&mut out, "rvs_service", "virtual service", &services);
    out.family(
        "rvs_service_refused_total",
        Kind::Counter,
        "New flows the service refused, by reason: acl_denied (allow/deny prefixes), service_maxconn, client_rate_limited.",
        st.services.iter().flat_map(|s| {
            [
                ("acl_denied", s.stats.acl_denied),
                ("service_maxconn", s.stats.service_maxconn),
                ("client_rate_limited", s.stats.client_rate_limited),
            ]
            .into_iter()
            .map(
                move |(reason, n)| {
                    let mut l = svc_labels(s);
                    l.push(("reason", reason.to_string()));
                    (l, Value::Int(n.unwrap_or(0)))
                },
            )
        }),
    );
    out.family(
        "rvs_server_info",
        Kind::Gauge,
        "A real server and its forwarding mode; always 1.",
        st.services.iter().flat_map(|s| {
            s.servers.iter().map(move |r| {
                let mut l = svc_labels(s);
                l.push(("server", server_label(&r.address, r.port)));
                l.push(("forward", r.forward.clone()));
                (l, Value::Int(1))
            })
        }),
    );
    let server_gauges = st.services.iter().flat_map(|s| {
        s.servers.iter().map(move |r| {
            let mut l = svc_labels(s);
            l.push(("server", server_label(&r.address, r.port)));
            // Health: Some(up) for a checked server whose state is known.
            let up = r.health.as_ref().filter(|h| h.state != "unknown").map(|h| h.state == "up");
            (l, r.weight, r.overloaded, up)
        })
    });
    out.family(
        "rvs_server_weight",
        Kind::Gauge,
        "The real server's scheduling weight (0: quiescent).",
        server_gauges.clone().map(|(l, w, _, _)| (l, Value::Int(u64::from(w)))),
    );
    out.family(
        "rvs_server_up",
        Kind::Gauge,
        "1 when the real server passes its health check, 0 when it fails it (only servers with [service.health]).",
        server_gauges.clone().filter_map(|(l, _, _, up)| Some((l, Value::Int(u64::from(up?))))),
    );
    let probed = st.services.iter().flat_map(|s| {
        s.servers.iter().filter_map(move |r| {
            let h = r.health.as_ref().filter(|h| h.state != "unknown")?;
            let mut l = svc_labels(s);
            l.push(("server", server_label(&r.address, r.port)));
            Some((l, h))
        })
    });
    out.family(
        "rvs_server_probe_duration_seconds",
        Kind::Gauge,
        "How long the real server's last health probe took (only servers with [service.health]).",
        probed.clone().filter_map(|(l, h)| Some((l, Value::Float(h.latency_us? as f64 / 1e6)))),
    );
    out.family(
        "rvs_server_probes_total",
        Kind::Counter,
        "Health probes of the real server that finished, by result (ok, failed).",
        probed.flat_map(|(l, h)| {
            let mut ok = l.clone();
            ok.push(("result", "ok".into()));
            let mut failed = l;
            failed.push(("result", "failed".into()));
            [(ok, Value::Int(h.probes_ok)), (failed, Value::Int(h.probes_failed))]
        }),
    );
    out.family(
        "rvs_server_overloaded",
        Kind::Gauge,
        "1 when the real server is over its upper connection threshold.",
        server_gauges.map(|(l, _, o, _)| (l, Value::Int(u64::from(o)))),
    );
    traffic_families(&mut out, "rvs_server", "real server", &servers);
    out.text
}

/// The counters and rate gauges of services or servers, under `prefix`.
/// `rvs_vrrp_*`: per instance (labels `vrid`, `family` of the adverts, `port`: one VRID
/// may serve an IPv4 and an IPv6 instance of a port), state as a number (0 init,
/// 1 backup, 2 master, 3 fault; see [`crate::ha::vrrp::State::gauge`]), priorities and
/// counters; invalid adverts also by `reason`.
fn vrrp_families(out: &mut Out, ha: &crate::ha::view::HaStatus) {
    let labels = |i: &crate::ha::view::InstanceStatus| -> Labels {
        vec![("vrid", i.vrid.to_string()), ("family", i.family.clone()), ("port", i.port.clone())]
    };
    let state = |s: &str| match s {
        "backup" => 1,
        "master" => 2,
        "fault" => 3,
        _ => 0,
    };
    out.family(
        "rvs_vrrp_state",
        Kind::Gauge,
        "VRRP state of the instance: 0 init, 1 backup, 2 master, 3 fault.",
        ha.instances.iter().map(|i| (labels(i), Value::Int(state(&i.state)))),
    );
    out.family(
        "rvs_vrrp_priority",
        Kind::Gauge,
        "VRRP priority in effect (after tracking).",
        ha.instances.iter().map(|i| (labels(i), Value::Int(u64::from(i.effective_priority)))),
    );
    let counters: [Field<crate::ha::view::InstanceStatus>; 3] = [
        ("rvs_vrrp_adverts_sent_total", "VRRP adverts sent (priority 0 included).", |i| i.adverts_sent),
        ("rvs_vrrp_adverts_received_total", "Valid VRRP adverts received.", |i| i.adverts_received),
        ("rvs_vrrp_transitions_total", "VRRP state changes.", |i| i.transitions),
    ];
    for (name, help, get) in counters {
        out.family(name, Kind::Counter, help, ha.instances.iter().map(|i| (labels(i), Value::Int(get(i)))));
    }
    out.family(
        "rvs_vrrp_adverts_invalid_total",
        Kind::Counter,
        "VRRP adverts dropped, by reason (ttl, version, vrid, type, checksum, truncated, auth, interval, addresses, own_address).",
        ha.instances.iter().flat_map(|i| {
            i.invalid.iter().map(move |(r, n)| {
                let mut l = labels(i);
                l.push(("reason", r.clone()));
                (l, Value::Int(*n))
            })
        }),
    );
    out.family(
        "rvs_vrrp_adverts_unknown_vrid_total",
        Kind::Counter,
        "VRRP adverts for a VRID no instance of their port has (ignored).",
        [(vec![], Value::Int(ha.adverts_unknown_vrid))],
    );
    out.family(
        "rvs_vrrp_frames_dropped_total",
        Kind::Counter,
        "VRRP adverts and gratuitous ARP frames not queued for worker 0 (ring full).",
        [(vec![], Value::Int(ha.frames_dropped))],
    );
    if let Some(sync) = &ha.sync {
        sync_families(out, sync);
    }
}

/// `rvs_bgp_*`: per VIP (label `vip`) announced or not, each reason it is withdrawn
/// (label `reason`: stopping, workers, quorum, vrrp) and its transitions; BIRD's state.
fn bgp_families(out: &mut Out, bgp: &crate::bgp::BgpStatus) {
    let vip = |v: &crate::bgp::VipStatus| -> Labels { vec![("vip", v.vip.clone())] };
    out.family(
        "rvs_bgp_vip_announced",
        Kind::Gauge,
        "1 while rvsd announces the VIP through BIRD, 0 while it is withdrawn.",
        bgp.vips.iter().map(|v| (vip(v), Value::Int(u64::from(v.state == "announced")))),
    );
    out.family(
        "rvs_bgp_vip_withdrawn_reason",
        Kind::Gauge,
        "1 for each reason a VIP is withdrawn: stopping, workers (not polling), quorum (a service below its quorum), vrrp (not master).",
        bgp.vips.iter().flat_map(|v| {
            let mut reasons: Vec<String> =
                v.reasons.iter().filter_map(|r| r.get("reason").and_then(|x| x.as_str()).map(String::from)).collect();
            reasons.dedup();
            reasons.into_iter().map(move |r| {
                let mut l = vip(v);
                l.push(("reason", r));
                (l, Value::Int(1))
            })
        }),
    );
    out.family(
        "rvs_bgp_vip_transitions_total",
        Kind::Counter,
        "Times the VIP went from announced to withdrawn or back.",
        bgp.vips.iter().map(|v| (vip(v), Value::Int(v.transitions))),
    );
    out.family(
        "rvs_bgp_bird_in_sync",
        Kind::Gauge,
        "1 when BIRD has read the include file as it is now; 0 while birdc is unreachable or BIRD refuses it.",
        [(vec![], Value::Int(u64::from(bgp.in_sync)))],
    );
    out.family(
        "rvs_bgp_birdc_runs_total",
        Kind::Counter,
        "birdc configure runs.",
        [(vec![], Value::Int(bgp.configures))],
    );
    out.family(
        "rvs_bgp_failures_total",
        Kind::Counter,
        "Failed include file writes and birdc runs.",
        [(vec![], Value::Int(bgp.failures))],
    );
}

fn sync_families(out: &mut Out, s: &crate::ha::view::SyncStatus) {
    let peer = || -> Labels { vec![("peer", s.peer.clone())] };
    let gauges: [(&str, &str, u64); 5] = [
        (
            "rvs_sync_peer_connected",
            "1 while the sync peer is heard from (heartbeats), else 0.",
            u64::from(s.connected),
        ),
        (
            "rvs_sync_in_sync",
            "1 once this node holds the peer's table (bulk resync ended, no gap), else 0.",
            u64::from(s.in_sync),
        ),
        ("rvs_sync_lag_records", "Sync records sent and not yet acknowledged by the peer.", s.lag_records),
        ("rvs_sync_lag_milliseconds", "Age of the oldest unacknowledged sync message, in milliseconds.", s.lag_ms),
        ("rvs_sync_bulk_received_records", "Records received in the current (or last) bulk resync.", s.bulk_received),
    ];
    for (name, help, v) in gauges {
        out.family(name, Kind::Gauge, help, [(peer(), Value::Int(v))]);
    }
    out.family(
        "rvs_sync_records_total",
        Kind::Counter,
        "Sync records by what happened to them (sent, received, resent, lost_sent, lost_received, persist_installed, refused_*).",
        s.records.iter().map(|(k, v)| {
            let mut l = peer();
            l.push(("what", k.clone()));
            (l, Value::Int(*v))
        }),
    );
    out.family(
        "rvs_sync_datagrams_rejected_total",
        Kind::Counter,
        "Sync datagrams refused, by reason (bad_hmac, replay, malformed, old_epoch, stranger, ...).",
        s.rejected.iter().map(|(k, v)| {
            let mut l = peer();
            l.push(("reason", k.clone()));
            (l, Value::Int(*v))
        }),
    );
    out.family(
        "rvs_sync_bulks_sent_total",
        Kind::Counter,
        "Bulk resyncs streamed to the peer.",
        [(peer(), Value::Int(s.bulks_sent))],
    );
}

fn traffic_families(out: &mut Out, prefix: &str, what: &str, items: &[TrafficItem]) {
    let counters: [TrafficField; 7] = [
        ("connections_total", Kind::Counter, "Connections scheduled to the", |t| t.conns),
        ("active_connections", Kind::Gauge, "Active connections (TCP established or opening) of the", |t| {
            t.active_conns
        }),
        ("inactive_connections", Kind::Gauge, "Inactive connections (other TCP states, UDP) of the", |t| {
            t.inactive_conns
        }),
        ("in_packets_total", Kind::Counter, "Packets client to server through the", |t| t.in_packets),
        ("out_packets_total", Kind::Counter, "Packets server to client through the", |t| t.out_packets),
        ("in_bytes_total", Kind::Counter, "Bytes client to server through the", |t| t.in_bytes),
        ("out_bytes_total", Kind::Counter, "Bytes server to client through the", |t| t.out_bytes),
    ];
    for (suffix, kind, help, get) in counters {
        out.family(
            &format!("{prefix}_{suffix}"),
            kind,
            &format!("{help} {what}."),
            items.iter().map(|(l, t, _)| (l.clone(), Value::Int(get(t)))),
        );
    }
    let gauges: [Field<Rates>; 5] = [
        ("rate_cps", "New connections per second", |r| r.cps),
        ("rate_in_pps", "Packets per second client to server", |r| r.in_pps),
        ("rate_out_pps", "Packets per second server to client", |r| r.out_pps),
        ("rate_in_bps", "Bytes (not bits) per second client to server", |r| r.in_bps),
        ("rate_out_bps", "Bytes (not bits) per second server to client", |r| r.out_bps),
    ];
    for (suffix, help, get) in gauges {
        out.family(
            &format!("{prefix}_{suffix}"),
            Kind::Gauge,
            &format!("{help} of the {what} (IPVS-style 2 s estimate)."),
            items.iter().map(|(l, _, r)| (l.clone(), Value::Int(get(r)))),
        );
    }
}

/// A real server's `server` label: `10.20.0.11:80`, or `[2001:db8::11]:80` for IPv6 (the
/// address as the API shows it, which is bare).
fn server_label(address: &str, port: u16) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

#[cfg(test)]
mod tests;
