//! `/metrics` tests: a line-format checker for exposition format 0.0.4, golden snippets,
//! label escaping round trips, and the handler over a router.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rvs_dataplane::latency::LatencySummary;
use rvs_dataplane::stats::{DropReason, WorkerCounters};
use rvs_drivers::{LinkStatus, PortStats};

use super::*;
use crate::config::MacAddr;
use crate::rates::{ServerRates, ServiceRates, WorkerRates};
use crate::status::{PortStatus, ServerStatus, ServiceStatus, WorkerStatus};

/// One parsed sample.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn valid_metric_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

fn valid_label_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && n.chars().all(|x| x.is_ascii_alphanumeric() || x == '_')
        && !n.starts_with("__")
}

/// Parsed labels, in order.
type LabelPairs = Vec<(String, String)>;

/// Parses `{k="v",...}` starting after the `{`; returns the labels and the rest after `}`.
fn parse_labels(mut s: &str) -> Result<(LabelPairs, &str), String> {
    let mut labels = Vec::new();
    loop {
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        if !labels.is_empty() {
            s = s.strip_prefix(',').ok_or_else(|| format!("expected , in labels at {s:?}"))?;
        }
        let eq = s.find('=').ok_or("label without =")?;
        let name = &s[..eq];
        if !valid_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        s = s[eq + 1..].strip_prefix('"').ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, '\n')) => return Err("raw newline in label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_string(), value));
        s = &s[end + 1..];
    }
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => v.parse::<f64>().map_err(|e| format!("bad value {v:?}: {e}")),
    }
}

/// Checks `text` against the text format and rvs's conventions; returns the samples.
fn check(text: &str) -> Result<Vec<Sample>, String> {
    if !text.ends_with('\n') {
        return Err("output must end with a newline".into());
    }
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps: BTreeSet<String> = BTreeSet::new();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut series = BTreeSet::new();
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if line.is_empty() {
            return Err(err("empty line".into()));
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').ok_or_else(|| err("HELP without text".into()))?;
            if !valid_metric_name(name) || !helps.insert(name.to_string()) {
                return Err(err("bad or repeated HELP".into()));
            }
            let mut chars = help.chars();
            while let Some(c) = chars.next() {
                if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
                    return Err(err("bad escape in HELP".into()));
                }
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or_else(|| err("TYPE without type".into()))?;
            if !["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind) {
                return Err(err(format!("unknown type {kind}")));
            }
            if !helps.contains(name) {
                return Err(err("TYPE without a HELP before it".into()));
            }
            if types.insert(name.to_string(), kind.to_string()).is_some() {
                return Err(err("TYPE repeated".into()));
            }
            if let Some(prev) = current.replace(name.to_string()) {
                finished.insert(prev);
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !valid_metric_name(name) {
            return Err(err(format!("bad metric name {name:?}")));
        }
        let (labels, rest) = match line[name_end..].strip_prefix('{') {
            Some(l) => parse_labels(l).map_err(err)?,
            None => (Vec::new(), &line[name_end..]),
        };
        let value = rest.strip_prefix(' ').ok_or_else(|| err("no space before the value".into()))?;
        if value.contains(' ') {
            return Err(err("timestamps are not written".into()));
        }
        let value = parse_value(value).map_err(err)?;
        // The family: the name itself, or a summary's base for _sum and _count.
        let family = if types.contains_key(name) {
            name.to_string()
        } else {
            let base = name.strip_suffix("_sum").or_else(|| name.strip_suffix("_count")).unwrap_or(name);
            match types.get(base).map(String::as_str) {
                Some("summary") | Some("histogram") => base.to_string(),
                _ => return Err(err("sample without a TYPE before it".into())),
            }
        };
        if current.as_deref() != Some(family.as_str()) || finished.contains(&family) {
            return Err(err("samples of a family are not contiguous".into()));
        }
        if !name.starts_with("rvs_") {
            return Err(err("name not prefixed rvs_".into()));
        }
        let kind = types[&family].as_str();
        if kind == "counter" && !name.ends_with("_total") {
            return Err(err("counter without _total".into()));
        }
        if kind == "summary" && name == family && !labels.iter().any(|(k, _)| k == "quantile") {
            return Err(err("summary sample without quantile".into()));
        }
        if kind == "counter" && (value.is_nan() || value < 0.0) {
            return Err(err("negative or NaN counter".into()));
        }
        let label_names: BTreeSet<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        if label_names.len() != labels.len() {
            return Err(err("repeated label name".into()));
        }
        let mut key_labels = labels.clone();
        key_labels.sort();
        if !series.insert((name.to_string(), key_labels)) {
            return Err(err("duplicate series".into()));
        }
        samples.push(Sample { name: name.to_string(), labels, value });
    }
    Ok(samples)
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|s| {
        s.name == name
            && s.labels.len() == labels.len()
            && labels.iter().all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
    })
}

fn traffic(conns: u64, active: u64) -> TrafficJson {
    TrafficJson {
        conns,
        active_conns: active,
        inactive_conns: 1,
        in_packets: 100,
        out_packets: 90,
        in_bytes: 10_000,
        out_bytes: 90_000,
        acl_denied: None,
        service_maxconn: None,
        client_rate_limited: None,
    }
}

fn rates(cps: u64) -> Rates {
    Rates { cps, in_pps: 50, out_pps: 45, in_bps: 5_000, out_bps: 45_000 }
}

fn input_with_port_name(port_name: &str) -> MetricsInput {
    let c0 = WorkerCounters::new();
    c0.rx_packets.add(1_000);
    c0.drop_packets(DropReason::IpBadChecksum, 7);
    let c1 = WorkerCounters::new();
    c1.rx_packets.add(500);
    let link = LinkStatus { up: true, speed_mbps: 10_000, full_duplex: true };
    let port = PortStatus::new(
        port_name,
        "net_null0",
        0,
        MacAddr([2, 0, 0, 0, 0, 1]),
        "10.10.0.1/24",
        link,
        PortStats { rx_packets: 5, ..Default::default() },
    );
    let mut status = Status::new(
        12,
        vec![port],
        vec![WorkerStatus::new(0, 1, &c0.snapshot()), WorkerStatus::new(1, 2, &c1.snapshot())],
    );
    status.prober =
        Some(crate::status::ProberStatus { packets_in: 11, packets_out: 12, packets_out_dropped: 0, transitions: 2 });
    status.services = vec![ServiceStatus {
        protocol: "tcp".into(),
        address: "10.10.0.100".into(),
        port: 80,
        scheduler: "wrr".into(),
        persistence_seconds: None,
        stats: traffic(10, 4),
        servers: vec![
            ServerStatus {
                address: "10.20.0.11".into(),
                port: 80,
                weight: 3,
                forward: "nat".into(),
                overloaded: false,
                stats: traffic(6, 3),
                health: Some(crate::status::HealthView {
                    state: "up".into(),
                    since: Some("2026-12-03T17:00:00Z".into()),
                    last: "HTTP 200".into(),
                    latency_us: Some(800),
                    probes_ok: 10,
                    probes_failed: 0,
                }),
            },
            ServerStatus {
                address: "10.20.0.12".into(),
                port: 8080,
                weight: 0,
                forward: "fullnat".into(),
                overloaded: true,
                stats: traffic(4, 1),
                health: Some(crate::status::HealthView {
                    state: "down".into(),
                    latency_us: Some(1500),
                    probes_ok: 3,
                    probes_failed: 2,
                    ..crate::status::HealthView::unchecked("HTTP 503")
                }),
            },
        ],
    }];
    let lat = LatencySummary {
        count: 1_000,
        sum_ns: 500_000_000,
        p50_ns: Some(1_000),
        p99_ns: Some(25_000),
        p999_ns: Some(1_500_000),
    };
    let estimates = Estimates {
        services: vec![ServiceRates {
            protocol: "tcp".into(),
            address: "10.10.0.100".into(),
            port: 80,
            rates: rates(20),
            servers: vec![ServerRates { address: "10.20.0.11".into(), port: 80, rates: rates(12) }],
        }],
        workers: vec![
            WorkerRates {
                index: 0,
                rx_pps: 400,
                tx_pps: 390,
                rx_bps: 40_000,
                tx_bps: 39_000,
                cps: 20,
                burst_latency: lat,
            },
            WorkerRates {
                index: 1,
                rx_pps: 0,
                tx_pps: 0,
                rx_bps: 0,
                tx_bps: 0,
                cps: 0,
                burst_latency: LatencySummary::default(),
            },
        ],
    };
    MetricsInput { status, estimates, burst_latency: lat }
}

fn input() -> MetricsInput {
    input_with_port_name("front")
}

#[test]
fn output_parses_and_follows_the_conventions() {
    let text = render(&input());
    let samples = check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(samples.len() > 100, "{}", samples.len());
    // Every drop reason is there, with its help in the info metric.
    for r in DropReason::ALL {
        assert!(find(&samples, "rvs_drops_total", &[("reason", r.name())]).is_some(), "{}", r.name());
        assert!(find(&samples, "rvs_drop_reason_info", &[("reason", r.name()), ("help", r.help())]).is_some());
    }
    assert_eq!(find(&samples, "rvs_drops_total", &[("reason", "ip_bad_checksum")]).map(|s| s.value), Some(7.0));
    // An unmeasured window: NaN quantiles, a real count.
    let q = find(&samples, "rvs_worker_burst_latency_seconds", &[("worker", "1"), ("quantile", "0.99")]).unwrap();
    assert!(q.value.is_nan());
    assert_eq!(
        find(&samples, "rvs_worker_burst_latency_seconds_count", &[("worker", "1")]).map(|s| s.value),
        Some(0.0)
    );
    // A server the estimator has not seen yet gets rate 0, not a missing series.
    let l = [("protocol", "tcp"), ("vip", "10.10.0.100"), ("port", "80"), ("server", "10.20.0.12:8080")];
    assert_eq!(find(&samples, "rvs_server_rate_cps", &l).map(|s| s.value), Some(0.0));
}

/// Every declared worker and NIC counter is a family with its declared type, help and
/// value: driven off the declarations, so a counter added there needs no line here.
#[test]
fn metrics_list_every_declared_counter() {
    let c = WorkerCounters::new();
    for (i, d) in CountersSnapshot::COUNTERS.iter().enumerate() {
        c.by_name(d.name).unwrap().add(1000 + i as u64);
    }
    let mut input = input();
    input.status.workers = vec![WorkerStatus::new(3, 4, &c.snapshot())];
    for (i, d) in PortStatsJson::COUNTERS.iter().enumerate() {
        let mut stats = serde_json::to_value(input.status.ports[0].stats).unwrap();
        stats[d.name] = serde_json::json!(2000 + i as u64);
        input.status.ports[0].stats = serde_json::from_value(stats).unwrap();
    }
    let text = render(&input);
    let samples = check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let kind = |k: CounterKind| if k == CounterKind::Counter { "counter" } else { "gauge" };
    for (i, d) in CountersSnapshot::COUNTERS.iter().enumerate() {
        assert_eq!(
            find(&samples, d.metric, &[("worker", "3")]).map(|s| s.value),
            Some(1000.0 + i as f64),
            "{}",
            d.metric
        );
        assert!(text.contains(&format!("# HELP {} {}\n# TYPE {} {}\n", d.metric, d.help, d.metric, kind(d.kind))));
    }
    for (i, d) in PortStatsJson::COUNTERS.iter().enumerate() {
        assert_eq!(
            find(&samples, d.metric, &[("port", "front")]).map(|s| s.value),
            Some(2000.0 + i as f64),
            "{}",
            d.metric
        );
        assert!(text.contains(&format!("# HELP {} {}\n# TYPE {} counter\n", d.metric, d.help, d.metric)));
    }
}

#[test]
fn golden_snippets() {
    let text = render(&input());
    for snippet in [
        "# HELP rvs_port_rx_packets_total Packets received by the NIC.\n\
         # TYPE rvs_port_rx_packets_total counter\n\
         rvs_port_rx_packets_total{port=\"front\"} 5\n",
        "# TYPE rvs_worker_rx_packets_total counter\n\
         rvs_worker_rx_packets_total{worker=\"0\"} 1000\n\
         rvs_worker_rx_packets_total{worker=\"1\"} 500\n",
        "rvs_drops_total{reason=\"ip_bad_checksum\"} 7\n",
        "rvs_drop_reason_info{reason=\"ip_bad_checksum\",help=\"IPv4 header checksum wrong\"} 1\n",
        "# TYPE rvs_service_connections_total counter\n\
         rvs_service_connections_total{protocol=\"tcp\",vip=\"10.10.0.100\",port=\"80\"} 10\n",
        "rvs_server_active_connections{protocol=\"tcp\",vip=\"10.10.0.100\",port=\"80\",server=\"10.20.0.11:80\"} 3\n\
         rvs_server_active_connections{protocol=\"tcp\",vip=\"10.10.0.100\",port=\"80\",server=\"10.20.0.12:8080\"} 1\n",
        "rvs_server_in_packets_total{protocol=\"tcp\",vip=\"10.10.0.100\",port=\"80\",server=\"10.20.0.11:80\"} 100\n",
        "rvs_service_rate_cps{protocol=\"tcp\",vip=\"10.10.0.100\",port=\"80\"} 20\n",
        "rvs_server_rate_cps{protocol=\"tcp\",vip=\"10.10.0.100\",port=\"80\",server=\"10.20.0.11:80\"} 12\n",
        "rvs_server_weight{protocol=\"tcp\",vip=\"10.10.0.100\",port=\"80\",server=\"10.20.0.12:8080\"} 0\n",
        "rvs_server_overloaded{protocol=\"tcp\",vip=\"10.10.0.100\",port=\"80\",server=\"10.20.0.12:8080\"} 1\n",
        "# TYPE rvs_prober_packets_in_total counter\nrvs_prober_packets_in_total 11\n",
        "rvs_prober_transitions_total 2\n",
        "rvs_server_up{protocol=\"tcp\",vip=\"10.10.0.100\",port=\"80\",server=\"10.20.0.11:80\"} 1\n\
         rvs_server_up{protocol=\"tcp\",vip=\"10.10.0.100\",port=\"80\",server=\"10.20.0.12:8080\"} 0\n",
        "rvs_server_info{protocol=\"tcp\",vip=\"10.10.0.100\",port=\"80\",server=\"10.20.0.12:8080\",forward=\"fullnat\"} 1\n",
        "rvs_server_probe_duration_seconds{protocol=\"tcp\",vip=\"10.10.0.100\",port=\"80\",server=\"10.20.0.11:80\"} 0.0008\n",
        "rvs_server_probes_total{protocol=\"tcp\",vip=\"10.10.0.100\",port=\"80\",server=\"10.20.0.12:8080\",result=\"failed\"} 2\n",
        "rvs_service_info{protocol=\"tcp\",vip=\"10.10.0.100\",port=\"80\",scheduler=\"wrr\"} 1\n",
        "rvs_worker_rate_rx_pps{worker=\"0\"} 400\n",
        "# TYPE rvs_worker_burst_latency_seconds summary\n\
         rvs_worker_burst_latency_seconds{worker=\"0\",quantile=\"0.5\"} 0.000001\n\
         rvs_worker_burst_latency_seconds{worker=\"0\",quantile=\"0.99\"} 0.000025\n\
         rvs_worker_burst_latency_seconds{worker=\"0\",quantile=\"0.999\"} 0.0015\n\
         rvs_worker_burst_latency_seconds_sum{worker=\"0\"} 0.5\n\
         rvs_worker_burst_latency_seconds_count{worker=\"0\"} 1000\n\
         rvs_worker_burst_latency_seconds{worker=\"1\",quantile=\"0.5\"} NaN\n",
        "rvs_burst_latency_seconds{quantile=\"0.99\"} 0.000025\n",
        "rvs_uptime_seconds 12\n",
        "rvs_port_up{port=\"front\"} 1\n",
        "rvs_worker_connections{worker=\"0\"} 0\n",
    ] {
        assert!(text.contains(snippet), "missing:\n{snippet}\nin:\n{text}");
    }
    assert!(text.contains(&format!("rvs_build_info{{version=\"{}\"}} 1\n", env!("CARGO_PKG_VERSION"))));
}

#[test]
fn nothing_configured_still_parses() {
    let input = MetricsInput {
        status: Status::new(0, vec![], vec![]),
        estimates: Estimates::default(),
        burst_latency: LatencySummary::default(),
    };
    let text = render(&input);
    let samples = check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(find(&samples, "rvs_drops_total", &[("reason", "tx_full")]).is_some());
    assert!(!text.contains("rvs_service_"), "no services, no service families");
    assert!(!text.contains("rvs_burst_latency_seconds"), "no workers, no latency");
}

#[test]
fn escaping() {
    assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
    assert_eq!(escape_label("x\ny"), "x\\ny");
    assert_eq!(escape_help("a\\b\nc\"d"), "a\\\\b\\nc\"d");
    let name = "fr\"o\\n\nt";
    let text = render(&input_with_port_name(name));
    let samples = check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(find(&samples, "rvs_port_rx_packets_total", &[("port", name)]).is_some(), "{text}");
}

#[test]
fn checker_rejects_broken_text() {
    let ok = "# HELP rvs_a_total x\n# TYPE rvs_a_total counter\nrvs_a_total{a=\"1\"} 1\n";
    assert!(check(ok).is_ok());
    for bad in [
        "rvs_a_total 1\n", // no TYPE
        "# HELP rvs_a_total x\n# TYPE rvs_a_total counter\nrvs_a_total{a=\"1\"} 1\nrvs_a_total{a=\"1\"} 2\n", // dup
        "# HELP rvs_a_total x\n# TYPE rvs_a_total counter\nrvs_a_total{a=\"1} 1\n", // unterminated
        "# HELP rvs_a_total x\n# TYPE rvs_a_total counter\nrvs_a_total{a=\"\\x\"} 1\n", // bad escape
        "# HELP 1rvs x\n# TYPE 1rvs counter\n1rvs 1\n", // bad name
        "# HELP rvs_a x\n# TYPE rvs_a counter\nrvs_a 1\n", // no _total
        "# HELP rvs_a_total x\n# TYPE rvs_a_total counter\nrvs_a_total 1", // no final newline
        "# HELP rvs_a x\n# TYPE rvs_a gauge\n# HELP rvs_b x\n# TYPE rvs_b gauge\nrvs_b 1\nrvs_a 1\n", // not contiguous
    ] {
        assert!(check(bad).is_err(), "accepted: {bad:?}");
    }
}

#[tokio::test]
async fn handler_serves_text_with_the_content_type() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    struct Fixed(MetricsInput);
    impl MetricsSource for Fixed {
        fn metrics(&self) -> MetricsInput {
            self.0.clone()
        }
    }
    let src: Arc<dyn MetricsSource> = Arc::new(Fixed(input()));
    let app: axum::Router = axum::Router::new().route("/metrics", handler(Arc::clone(&src)));
    let res = app.clone().oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
    let body = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    assert_eq!(std::str::from_utf8(&body).unwrap(), render(&input()));
    let res = app.oneshot(Request::post("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn live_source_reads_status_and_estimator() {
    struct S;
    impl StatusSource for S {
        fn status(&self) -> Status {
            Status::new(3, vec![], vec![])
        }
    }
    let est = crate::rates::shared();
    let live = LiveMetrics::new(Arc::new(S), Arc::clone(&est));
    let m = live.metrics();
    assert_eq!(m.status.uptime_seconds, 3);
    assert_eq!(m.estimates, Estimates::default());
    assert!(check(&render(&m)).is_ok());
}

proptest! {
    #[test]
    fn any_label_value_round_trips(name in "\\PC*|[\"\\\\\n a-z]{0,20}") {
        let text = render(&input_with_port_name(&name));
        let samples = check(&text).map_err(TestCaseError::fail)?;
        prop_assert!(find(&samples, "rvs_port_up", &[("port", name.as_str())]).is_some());
    }
}

#[test]
fn vrrp_families_follow_the_ha_status() {
    use crate::ha::view::{HaStatus, InstanceStatus};
    let mut input = input();
    let instance = InstanceStatus {
        vrid: 51,
        family: "ipv4".into(),
        port: "front".into(),
        version: 3,
        state: "master".into(),
        priority: 200,
        effective_priority: 150,
        adverts_sent: 12,
        adverts_received: 3,
        invalid: [("ttl".to_string(), 2), ("checksum".to_string(), 0)].into_iter().collect(),
        transitions: 2,
        ..InstanceStatus::default()
    };
    // VRID 51 also over IPv6 on the same port: the `family` label tells them apart.
    let v6 =
        InstanceStatus { family: "ipv6".into(), state: "backup".into(), effective_priority: 100, ..instance.clone() };
    input.status.ha = Some(HaStatus { instances: vec![instance, v6], adverts_unknown_vrid: 4, ..HaStatus::default() });
    let text = render(&input);
    let samples = check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let l = [("vrid", "51"), ("family", "ipv4"), ("port", "front")];
    let v = |name: &str, labels: &[(&str, &str)]| find(&samples, name, labels).map(|s| s.value);
    assert_eq!(v("rvs_vrrp_state", &l), Some(2.0));
    assert_eq!(v("rvs_vrrp_priority", &l), Some(150.0));
    assert_eq!(v("rvs_vrrp_adverts_sent_total", &l), Some(12.0));
    assert_eq!(v("rvs_vrrp_adverts_received_total", &l), Some(3.0));
    assert_eq!(v("rvs_vrrp_transitions_total", &l), Some(2.0));
    assert_eq!(
        v(
            "rvs_vrrp_adverts_invalid_total",
            &[("vrid", "51"), ("family", "ipv4"), ("port", "front"), ("reason", "ttl")]
        ),
        Some(2.0)
    );
    let l6 = [("vrid", "51"), ("family", "ipv6"), ("port", "front")];
    assert_eq!((v("rvs_vrrp_state", &l6), v("rvs_vrrp_priority", &l6)), (Some(1.0), Some(100.0)));
    assert_eq!(v("rvs_vrrp_adverts_unknown_vrid_total", &[]), Some(4.0));
    assert!(!render(&self::input()).contains("rvs_vrrp_"), "no [ha], no VRRP families");
}

#[test]
fn sync_families_follow_the_sync_status() {
    use crate::ha::view::{HaStatus, SyncStatus};
    let mut input = input();
    let sync = SyncStatus {
        peer: "10.30.0.2:8848".into(),
        connected: true,
        in_sync: true,
        lag_records: 7,
        lag_ms: 12,
        bulks_sent: 1,
        records: [("sent".to_string(), 100), ("lost_received".to_string(), 2)].into_iter().collect(),
        rejected: [("bad_hmac".to_string(), 3), ("replay".to_string(), 0)].into_iter().collect(),
        ..SyncStatus::default()
    };
    input.status.ha = Some(HaStatus { sync: Some(sync), ..HaStatus::default() });
    let text = render(&input);
    let samples = check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let v = |name: &str, labels: &[(&str, &str)]| find(&samples, name, labels).map(|s| s.value);
    let peer = ("peer", "10.30.0.2:8848");
    assert_eq!(v("rvs_sync_peer_connected", &[peer]), Some(1.0));
    assert_eq!(v("rvs_sync_in_sync", &[peer]), Some(1.0));
    assert_eq!(v("rvs_sync_lag_records", &[peer]), Some(7.0));
    assert_eq!(v("rvs_sync_lag_milliseconds", &[peer]), Some(12.0));
    assert_eq!(v("rvs_sync_records_total", &[peer, ("what", "lost_received")]), Some(2.0));
    assert_eq!(v("rvs_sync_datagrams_rejected_total", &[peer, ("reason", "bad_hmac")]), Some(3.0));
    assert_eq!(v("rvs_sync_bulks_sent_total", &[peer]), Some(1.0));
    let without = HaStatus::default();
    input.status.ha = Some(without);
    assert!(!render(&input).contains("rvs_sync_"), "no sync, no sync families");
}

#[test]
fn reload_families_follow_the_reload_status() {
    use crate::status::ReloadStatus;
    let mut input = input();
    let mut reload = ReloadStatus::new(std::path::Path::new("/etc/rvs/rvs.toml"));
    reload.record(1_700_000_000, 3, Ok(()));
    reload.record(1_700_000_060, 3, Err("cannot read config file /etc/rvs/rvs.toml: gone".into()));
    input.status.reload = Some(reload);
    let text = render(&input);
    let samples = check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let v = |name: &str| find(&samples, name, &[]).map(|s| s.value);
    assert_eq!(v("rvs_config_last_reload_success"), Some(0.0));
    assert_eq!(v("rvs_config_reload_failures_total"), Some(1.0));
    assert_eq!(v("rvs_config_generation"), Some(3.0));
    assert!(text.contains("# TYPE rvs_config_reload_failures_total counter\n"), "{text}");
    assert!(!render(&self::input()).contains("rvs_config_"), "no watched file, no reload families");
}

#[test]
fn stalled_workers_are_a_gauge() {
    let mut input = input();
    input.status.workers[1] = input.status.workers[1].clone().with_stall(Some(std::time::Duration::from_secs(2)));
    let text = render(&input);
    let samples = check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let v = |w: &str| find(&samples, "rvs_worker_stalled", &[("worker", w)]).map(|s| s.value);
    assert_eq!((v("0"), v("1")), (Some(0.0), Some(1.0)));
    assert!(text.contains("# TYPE rvs_worker_stalled gauge\n"), "{text}");
}

#[test]
fn link_changes_are_a_counter_per_port() {
    let mut input = input();
    input.status.ports[0].link_changes = 4;
    let text = render(&input);
    let samples = check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let v = find(&samples, "rvs_port_link_changes_total", &[("port", &input.status.ports[0].name)]).map(|s| s.value);
    assert_eq!(v, Some(4.0));
}

#[test]
fn exception_counters_are_per_port_and_only_for_ports_with_the_path() {
    let input = input();
    let text = render(&input);
    assert!(!text.contains("rvs_exception_"), "no exception path, no families: {text}");
    let mut input = input;
    let counters = rvs_dataplane::exception::ExceptionSnapshot { to_kernel: 9, rate_limited: 3, ..Default::default() };
    input.status.ports[0].exception =
        Some(crate::status::ExceptionStatus { iface: "rvs-front".into(), rate: 2000, counters });
    let text = render(&input);
    let samples = check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let v = |m: &str| find(&samples, m, &[("port", "front")]).map(|s| s.value);
    assert_eq!(v("rvs_exception_to_kernel_total"), Some(9.0));
    assert_eq!(v("rvs_exception_rate_limited_total"), Some(3.0));
    assert_eq!(v("rvs_exception_ring_full_total"), Some(0.0));
    assert!(text.contains("# TYPE rvs_exception_from_kernel_total counter\n"), "{text}");
}

/// An IPv6 service: `vip` is the bare address, `server` the bracketed `[addr]:port`
/// (as ipvsadm and the REST API spell it); the IPv4 labels stay as they were.
#[test]
fn ipv6_labels() {
    let mut m = input();
    let mut v6 = m.status.services[0].clone();
    v6.address = "2001:db8::1".into();
    v6.servers.truncate(1);
    v6.servers[0].address = "2001:db8::11".into();
    m.status.services.push(v6);
    m.estimates.services.push(ServiceRates {
        protocol: "tcp".into(),
        address: "2001:db8::1".into(),
        port: 80,
        rates: rates(5),
        servers: vec![ServerRates { address: "2001:db8::11".into(), port: 80, rates: rates(4) }],
    });
    let text = render(&m);
    check(&text).unwrap();
    for snippet in [
        "rvs_service_connections_total{protocol=\"tcp\",vip=\"2001:db8::1\",port=\"80\"} 10\n",
        "rvs_server_in_packets_total{protocol=\"tcp\",vip=\"2001:db8::1\",port=\"80\",server=\"[2001:db8::11]:80\"} 100\n",
        "rvs_server_rate_cps{protocol=\"tcp\",vip=\"2001:db8::1\",port=\"80\",server=\"[2001:db8::11]:80\"} 4\n",
        "rvs_server_info{protocol=\"tcp\",vip=\"2001:db8::1\",port=\"80\",server=\"[2001:db8::11]:80\",forward=\"nat\"} 1\n",
        "rvs_server_rate_cps{protocol=\"tcp\",vip=\"10.10.0.100\",port=\"80\",server=\"10.20.0.11:80\"} 12\n",
    ] {
        assert!(text.contains(snippet), "missing:\n{snippet}\nin:\n{text}");
    }
}
