//! The REST API over real HTTP: the router is served on an ephemeral loopback port with a
//! `Running` built from a config (no DPDK), and driven with plain HTTP/1.1 requests.
//!
//! Covers every endpoint, the error paths, a table of bad inputs (each a 4xx naming its
//! field, with `GET /v1/config` byte-identical before and after), dry runs, the
//! connection listing through worker request queues, and bearer-token authentication.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rvs_controlplane::api::{self, AppState, ROUTES};
use rvs_controlplane::runtime::Running;
use rvs_controlplane::status::{Status, StatusSource};
use rvs_dataplane::control::{control_link, ConnEntry, ConnListing, WorkerRequest};
use rvs_dataplane::types::{ConnState, ForwardMode, L4Proto, TcpState};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONFIG: &str = r#"
[dataplane]
workers = 2
tcp_timeout = "900s"
[[port]]
name = "front"
device = "net_ring0"
address = "10.10.0.1/24"
mac = "02:00:00:00:00:01"
[[port]]
name = "back"
device = "net_ring1"
address = "10.20.0.1/24"
mac = "02:00:00:00:00:02"
local_addresses = ["10.20.0.200", "10.20.0.201"]
[[route]]
prefix = "0.0.0.0/0"
via = "10.10.0.254"
[[service]]
protocol = "tcp"
address = "10.10.0.100"
port = 80
scheduler = "wrr"
[[service.server]]
address = "10.20.0.11"
port = 80
weight = 3
forward = "nat"
[[service.server]]
address = "10.20.0.12"
port = 80
forward = "nat"
[[service]]
protocol = "udp"
address = "10.10.0.100"
port = 53
scheduler = "rr"
persistence = "300s"
[[service.server]]
address = "10.20.0.11"
port = 53
forward = "fullnat"
"#;

/// A served router; the server stops when this drops.
struct Server {
    addr: SocketAddr,
    state: Arc<AppState>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve_state(state: AppState) -> Server {
    let state = Arc::new(state);
    let listener = api::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(api::serve(listener, api::router(Arc::clone(&state)), async {
        let _ = rx.await;
    }));
    Server { addr, state, _stop: tx }
}

async fn serve(config: &str) -> Server {
    serve_state(AppState::standalone(Running::from_toml(config, 2).unwrap())).await
}

/// One HTTP/1.1 request: (status, content-type, body).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code: u16 = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let lower = head.to_ascii_lowercase();
    let ctype =
        lower.lines().find_map(|l| l.strip_prefix("content-type:")).map(|v| v.trim().to_string()).unwrap_or_default();
    let body = if lower.contains("transfer-encoding: chunked") { dechunk(rest) } else { rest.to_string() };
    (code, ctype, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

async fn call(srv: &Server, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let (code, ctype, text) = http(srv.addr, method, path, body, &[]).await;
    if text.is_empty() {
        return (code, Value::Null);
    }
    assert!(ctype.starts_with("application/json"), "{method} {path}: {ctype}: {text}");
    (code, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}")))
}

async fn config_text(srv: &Server) -> String {
    let (code, ctype, text) = http(srv.addr, "GET", "/v1/config", None, &[]).await;
    assert_eq!(code, 200);
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    text
}

const SVC: &str = "/v1/services/tcp/10.10.0.100/80";

#[tokio::test]
async fn status_openapi_404_405() {
    let srv = serve(CONFIG).await;
    let (code, v) = call(&srv, "GET", "/v1/status", None).await;
    assert_eq!(code, 200);
    assert_eq!(v["services"].as_array().unwrap().len(), 2);
    assert!(v["drops"]["conn_server_removed"].is_u64());
    let (code, v) = call(&srv, "GET", "/v1/nope", None).await;
    assert_eq!((code, v["field"].is_null()), (404, true), "no field: the whole path is unknown");
    assert_eq!(v["error"], "no such endpoint: GET /v1/nope");
    let (code, v) = call(&srv, "DELETE", "/v1/status", None).await;
    assert_eq!(code, 405);
    assert!(v["error"].as_str().unwrap().contains("DELETE"));

    let (code, doc) = call(&srv, "GET", "/v1/openapi.json", None).await;
    assert_eq!(code, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), ROUTES.len(), "the document describes exactly the router's paths");
    for (path, methods) in ROUTES {
        let p = paths.get(*path).unwrap_or_else(|| panic!("{path} missing from openapi.json"));
        let described: Vec<&String> = p.as_object().unwrap().keys().collect();
        assert_eq!(described.len(), methods.len(), "{path}: {described:?}");
        for m in *methods {
            assert!(p.get(*m).is_some(), "{m} {path} missing from openapi.json");
        }
    }
    // Every $ref resolves.
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = r.split('"').next().unwrap();
        assert!(doc["components"]["schemas"].get(name).is_some(), "dangling $ref {name}");
    }
    // Every (path, method) of ROUTES is routed: neither 404 nor 405.
    for (path, methods) in ROUTES {
        let concrete =
            path.replace("{proto}/{vip}/{port}", "tcp/10.10.0.100/80").replace("{ip}/{rport}", "10.20.0.99/80");
        for m in *methods {
            if *m == "delete" {
                continue; // destructive; covered below
            }
            let (code, _, _) = http(srv.addr, &m.to_uppercase(), &concrete, Some("{}"), &[]).await;
            assert!(code != 405 && !(code == 404 && concrete.ends_with("nope")), "{m} {concrete}: {code}");
        }
    }
}

#[tokio::test]
async fn services_and_servers_crud() {
    let srv = serve(CONFIG).await;
    let (code, v) = call(&srv, "GET", "/v1/services", None).await;
    assert_eq!(code, 200);
    let s0 = &v["services"][0];
    assert_eq!(
        (s0["protocol"].as_str(), s0["address"].as_str(), s0["port"].as_u64()),
        (Some("tcp"), Some("10.10.0.100"), Some(80))
    );
    assert_eq!(s0["scheduler"], "wrr");
    assert!(s0["persistence"].is_null());
    assert_eq!(s0["persistence_netmask"], "255.255.255.255");
    assert_eq!(s0["servers"][0]["weight"], 3);
    assert_eq!(s0["servers"][0]["forward"], "nat");
    assert_eq!(s0["stats"]["conns"], 0);
    assert_eq!(s0["servers"][1]["stats"]["active_conns"], 0);
    assert_eq!(v["services"][1]["persistence"], "300s");

    // Create a service on a new VIP with one server.
    let body = r#"{"protocol":"tcp","address":"10.10.0.101","port":443,"scheduler":"rr","persistence":"60s",
                   "persistence_netmask":"255.255.255.0",
                   "servers":[{"address":"10.20.0.13","port":8443,"weight":2,"forward":"fullnat"}]}"#;
    let (code, v) = call(&srv, "POST", "/v1/services", Some(body)).await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["persistence"], "60s");
    assert_eq!(v["servers"][0]["port"], 8443);
    assert_eq!(v["stats"]["conns"], 0);
    let generation = srv.state.running().generation();
    assert_eq!(generation, 2);
    let (code, v) = call(&srv, "POST", "/v1/services", Some(body)).await;
    assert_eq!((code, v["field"].as_str()), (409, Some("address")), "{v}");
    assert!(config_text(&srv).await.contains("10.10.0.101"));

    // Defaults: scheduler wlc, no servers.
    let (code, v) =
        call(&srv, "POST", "/v1/services", Some(r#"{"protocol":"udp","address":"10.10.0.101","port":53}"#)).await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["scheduler"], "wlc");
    assert_eq!(v["servers"], json!([]));

    let (code, v) = call(&srv, "GET", "/v1/services/tcp/10.10.0.101/443", None).await;
    assert_eq!((code, v["scheduler"].as_str()), (200, Some("rr")));
    let (code, v) =
        call(&srv, "PUT", "/v1/services/tcp/10.10.0.101/443", Some(r#"{"scheduler":"mh","persistence":null}"#)).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!((v["scheduler"].as_str(), v["persistence"].is_null()), (Some("mh"), true));
    assert_eq!(v["persistence_netmask"], "255.255.255.255");

    // Servers.
    let (code, v) =
        call(&srv, "POST", &format!("{SVC}/servers"), Some(r#"{"address":"10.20.0.13","forward":"nat"}"#)).await;
    assert_eq!(code, 201, "{v}");
    assert_eq!((v["port"].as_u64(), v["weight"].as_u64()), (Some(80), Some(1)), "port defaults to the service's");
    let (code, v) = call(&srv, "POST", &format!("{SVC}/servers"), Some(r#"{"address":"10.20.0.13","port":80}"#)).await;
    assert_eq!((code, v["field"].as_str()), (409, Some("address")));
    let (code, v) = call(
        &srv,
        "PUT",
        &format!("{SVC}/servers/10.20.0.13/80"),
        Some(r#"{"weight":0,"upper_threshold":10,"lower_threshold":5}"#),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!((v["weight"].as_u64(), v["upper_threshold"].as_u64()), (Some(0), Some(10)));
    let (code, v) = call(&srv, "GET", &format!("{SVC}/servers"), None).await;
    assert_eq!((code, v["servers"].as_array().map(Vec::len)), (200, Some(3)));
    let (code, v) = call(&srv, "GET", &format!("{SVC}/servers/10.20.0.13/80"), None).await;
    assert_eq!((code, v["weight"].as_u64()), (200, Some(0)));
    let (code, _) = call(&srv, "DELETE", &format!("{SVC}/servers/10.20.0.13/80"), None).await;
    assert_eq!(code, 204);
    let (code, v) = call(&srv, "DELETE", &format!("{SVC}/servers/10.20.0.13/80"), None).await;
    assert_eq!((code, v["field"].as_str()), (404, Some("path")));
    let (code, _) = call(&srv, "DELETE", "/v1/services/tcp/10.10.0.101/443", None).await;
    assert_eq!(code, 204);
    let (code, v) = call(&srv, "GET", "/v1/services/tcp/10.10.0.101/443", None).await;
    assert_eq!((code, v["field"].as_str()), (404, Some("path")));
    let (code, _) = call(&srv, "DELETE", "/v1/services", None).await;
    assert_eq!(code, 204);
    let (_, v) = call(&srv, "GET", "/v1/services", None).await;
    assert_eq!(v["services"], json!([]));
    assert!(!config_text(&srv).await.contains("[[service]]"));
    assert!(srv.state.running().shared().load().services().is_empty());
}

#[tokio::test]
async fn config_put_dry_run_and_restart_only() {
    let srv = serve(CONFIG).await;
    let before = config_text(&srv).await;
    // The canonical text is itself a valid configuration with the same meaning.
    let again = Running::from_toml(&before, 2).unwrap();
    assert_eq!(again.config(), srv.state.running().config());

    let changed =
        CONFIG.replace("weight = 3", "weight = 5").replace("tcp_timeout = \"900s\"", "tcp_timeout = \"600s\"");
    let (code, v) = call(&srv, "PUT", "/v1/config?dry_run=true", Some(&changed)).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["applied"], false);
    let changes = v["changes"].as_array().unwrap();
    assert!(
        changes.contains(
            &json!({"op":"change","path":"service[tcp/10.10.0.100/80].server[10.20.0.11:80].weight","from":3,"to":5})
        ),
        "{v}"
    );
    assert!(changes.contains(&json!({"op":"change","path":"dataplane.tcp_timeout","from":"900s","to":"600s"})), "{v}");
    assert_eq!(config_text(&srv).await, before, "a dry run changes nothing");
    assert_eq!(srv.state.running().generation(), 1);

    let (code, v) = call(&srv, "PUT", "/v1/config", Some(&changed)).await;
    assert_eq!((code, v["applied"].as_bool()), (200, Some(true)), "{v}");
    assert_eq!(v["changes"].as_array().unwrap().len(), 2);
    let after = config_text(&srv).await;
    assert!(after.contains("weight = 5"), "{after}");
    let table = srv.state.running().shared().load_full();
    assert_eq!(table.generation(), 2);
    assert_eq!(table.services()[0].servers[0].weight, 5);
    assert_eq!(table.settings().timeouts.unwrap().established, 600);

    // Add and remove: ops and paths.
    let more = changed
        .replace("scheduler = \"rr\"\npersistence", "scheduler = \"sh\"\npersistence")
        .replace("[[service.server]]\naddress = \"10.20.0.12\"\nport = 80\nforward = \"nat\"\n", "");
    let (code, v) = call(&srv, "PUT", "/v1/config", Some(&more)).await;
    assert_eq!(code, 200, "{v}");
    let c = v["changes"].as_array().unwrap();
    assert!(
        c.iter().any(|c| c["op"] == "remove" && c["path"] == "service[tcp/10.10.0.100/80].server[10.20.0.12:80]"),
        "{v}"
    );
    assert!(c.iter().any(|c| c["path"] == "service[udp/10.10.0.100/53].scheduler" && c["to"] == "sh"), "{v}");

    // The same file again: applied, nothing changed, no new generation.
    let (code, v) = call(&srv, "PUT", "/v1/config", Some(&more)).await;
    assert_eq!((code, v["changes"].as_array().map(Vec::len)), (200, Some(0)));
    assert_eq!(srv.state.running().generation(), 3);
}

/// `PUT /v1/config` answers with `warnings`: the sections rvsd validates but does not act
/// on (none today: `[ha]` with connection sync is acted on, tests/rvsd.rs).
/// `[service.health]` and `[service.agent]` are acted on: applied, with no warning.
#[tokio::test]
async fn config_put_warns_about_sections_not_acted_on() {
    let srv = serve(CONFIG).await;
    let (code, v) = call(&srv, "PUT", "/v1/config?dry_run=true", Some(CONFIG)).await;
    assert_eq!((code, v["warnings"].clone()), (200, json!([])), "{v}");

    let health = CONFIG.replacen(
        "scheduler = \"wrr\"\n",
        "scheduler = \"wrr\"\n[service.health]\nkind = \"tcp\"\n[service.agent]\nport = 9999\n",
        1,
    );
    assert_ne!(health, CONFIG);
    for path in ["/v1/config?dry_run=true", "/v1/config"] {
        let (code, v) = call(&srv, "PUT", path, Some(&health)).await;
        assert_eq!(code, 200, "{path}: {v}");
        assert_eq!(v["warnings"], json!([]), "{path}: {v}");
    }
    assert_eq!(srv.state.running().generation(), 2, "applied");
}

#[tokio::test]
async fn timeouts_stats_and_zero() {
    let srv = serve(CONFIG).await;
    let (code, v) = call(&srv, "GET", "/v1/timeouts", None).await;
    assert_eq!((code, v), (200, json!({"tcp":"900s","tcp_fin":"120s","udp":"300s"})));
    let (code, v) = call(&srv, "PUT", "/v1/timeouts", Some(r#"{"tcp":"0s","udp":"30s"}"#)).await;
    assert_eq!((code, v), (200, json!({"tcp":"900s","tcp_fin":"120s","udp":"30s"})));
    assert_eq!(srv.state.running().shared().load().settings().timeouts.unwrap().udp, 30);
    let (code, v) = call(&srv, "PUT", "/v1/timeouts", Some(r#"{"tcp_fin":"soon"}"#)).await;
    assert_eq!((code, v["field"].as_str()), (422, Some("tcp_fin")), "{v}");

    // Counters: credit some traffic through the published table, read, zero, read.
    {
        let table = srv.state.running().shared().load_full();
        let s = &table.services()[0];
        s.stats.conn_opened(0, true);
        s.stats.packet(0, true, 100);
        s.servers[1].stats.conn_opened(1, true);
        s.servers[1].stats.packet(1, true, 100);
    }
    let (code, v) = call(&srv, "GET", "/v1/stats", None).await;
    assert_eq!(code, 200);
    let s0 = &v["services"][0];
    assert_eq!((s0["protocol"].as_str(), s0["port"].as_u64()), (Some("tcp"), Some(80)));
    assert_eq!((s0["stats"]["conns"].as_u64(), s0["stats"]["in_bytes"].as_u64()), (Some(1), Some(100)));
    assert_eq!(s0["servers"][1]["stats"]["in_packets"], 1);
    assert_eq!(s0["servers"][1]["address"], "10.20.0.12");
    let (code, _) = call(&srv, "POST", "/v1/stats/zero", None).await;
    assert_eq!(code, 204);
    let (_, v) = call(&srv, "GET", "/v1/stats", None).await;
    let s0 = &v["services"][0];
    assert_eq!((s0["stats"]["conns"].as_u64(), s0["stats"]["in_bytes"].as_u64()), (Some(0), Some(0)));
    assert_eq!(s0["stats"]["active_conns"], 1, "gauges are not zeroed");
    // Zeroed counters survive a change (the baseline follows the stable ids).
    let (code, _) = call(&srv, "PUT", &format!("{SVC}/servers/10.20.0.12/80"), Some(r#"{"weight":4}"#)).await;
    assert_eq!(code, 200);
    let (_, v) = call(&srv, "GET", "/v1/services", None).await;
    assert_eq!(v["services"][0]["servers"][1]["stats"]["active_conns"], 1);
    assert_eq!(v["services"][0]["servers"][1]["stats"]["in_packets"], 0);

    // ipvsadm -Z -t VIP:PORT zeroes that service only; an unknown or malformed one is refused.
    {
        let table = srv.state.running().shared().load_full();
        for s in table.services() {
            s.stats.packet(0, true, 10);
        }
    }
    let (code, v) = call(&srv, "POST", "/v1/stats/zero?service=udp/10.10.0.99/53", None).await;
    assert_eq!((code, v["field"].as_str()), (404, Some("path")), "{v}");
    let (code, v) = call(&srv, "POST", "/v1/stats/zero?service=tcp/nowhere/80", None).await;
    assert_eq!((code, v["field"].as_str()), (400, Some("service")), "{v}");
    let (_, before) = call(&srv, "GET", "/v1/stats", None).await;
    let other = before["services"][1]["stats"]["in_packets"].as_u64().unwrap();
    assert!(other > 0, "{before}");
    let (code, _) = call(&srv, "POST", "/v1/stats/zero?service=tcp/10.10.0.100/80", None).await;
    assert_eq!(code, 204);
    let (_, after) = call(&srv, "GET", "/v1/stats", None).await;
    assert_eq!(after["services"][0]["stats"]["in_packets"], 0, "{after}");
    assert_eq!(after["services"][1]["stats"]["in_packets"].as_u64(), Some(other), "the other service keeps its counts");
}

#[tokio::test]
async fn metrics_and_rates_are_served() {
    let srv = serve(CONFIG).await;
    let (code, ctype, text) = http(srv.addr, "GET", "/metrics", None, &[]).await;
    assert_eq!(code, 200, "{text}");
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    assert!(text.contains("# TYPE rvs_service_connections_total counter"), "{text}");
    assert!(
        text.contains("rvs_service_connections_total{protocol=\"tcp\",vip=\"10.10.0.100\",port=\"80\"} 0"),
        "{text}"
    );
    assert!(text.contains("rvs_drops_total{reason=\"ip_bad_checksum\"}") || !text.contains("rvs_worker_"), "{text}");
    let (code, v) = call(&srv, "GET", "/v1/stats", None).await;
    assert_eq!(code, 200);
    assert_eq!(v["services"][0]["rates"], json!({"cps":0,"in_pps":0,"out_pps":0,"in_bps":0,"out_bps":0}), "{v}");
    assert_eq!(v["services"][0]["servers"][0]["rates"]["cps"], 0, "{v}");
    let (code, _) = call(&srv, "POST", "/metrics", None).await;
    assert_eq!(code, 405);
}

#[tokio::test]
async fn connections_through_worker_queues() {
    // Two fake workers answering from their request queues, as Worker::poll_once does.
    let (h0, l0) = control_link(4);
    let (h1, l1) = control_link(4);
    let stop = Arc::new(AtomicBool::new(false));
    let entry = |cport: u16, server: [u8; 4]| ConnEntry {
        proto: L4Proto::Tcp,
        client: ("10.10.0.2".parse().unwrap(), cport),
        vip: ("10.10.0.100".parse().unwrap(), 80),
        local: ("10.10.0.2".parse().unwrap(), cport),
        server: (server.into(), 80),
        forward: ForwardMode::Nat,
        state: ConnState::Tcp(TcpState::Established),
        expires_in_ns: 899_500_000_000,
    };
    let mut threads = Vec::new();
    for (w, link) in [(0usize, l0), (1usize, l1)] {
        let stop = Arc::clone(&stop);
        let mut all: Vec<ConnEntry> =
            (0..3).map(|i| entry(1000 + 10 * w as u16 + i, [10, 20, 0, 11 + (i % 2) as u8])).collect();
        if w == 1 {
            // An IPv6 connection, listed as ipvsadm prints IPv6: `[addr]:port`.
            all.push(ConnEntry {
                client: ("2001:db8:10::2".parse().unwrap(), 40000),
                vip: ("2001:db8:10::100".parse().unwrap(), 80),
                local: ("2001:db8:10::2".parse().unwrap(), 40000),
                server: ("2001:db8:20::11".parse().unwrap(), 8080),
                ..entry(0, [0; 4])
            });
        }
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                while let Some(WorkerRequest::ListConns { filter, max, reply }) = link.pop() {
                    let m: Vec<ConnEntry> =
                        all.iter().filter(|e| filter.matches(e.proto, e.vip, e.server)).copied().collect();
                    let _ = reply.send(ConnListing {
                        worker: w,
                        total: m.len(),
                        entries: m.into_iter().take(max).collect(),
                    });
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }));
    }
    let running = Running::from_toml(CONFIG, 2).unwrap();
    let st = AppState::new(running, Arc::new(NoStatus), vec![h0, h1], None);
    let srv = serve_state(st).await;
    let (code, v) = call(&srv, "GET", "/v1/connections", None).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!((v["total"].as_u64(), v["offset"].as_u64(), v["limit"].as_u64()), (Some(7), Some(0), Some(100)));
    let c0 = &v["connections"][0];
    assert_eq!(c0["client"], "10.10.0.2:1000");
    assert_eq!(c0["vip"], "10.10.0.100:80");
    assert_eq!(c0["server"], "10.20.0.11:80");
    assert_eq!(
        (c0["state"].as_str(), c0["forward"].as_str(), c0["protocol"].as_str()),
        (Some("ESTABLISHED"), Some("nat"), Some("tcp"))
    );
    assert_eq!((c0["expires_in"].as_u64(), c0["worker"].as_u64()), (Some(900), Some(0)));
    assert_eq!(v["connections"][3]["worker"], 1);
    let c6 = &v["connections"][6];
    assert_eq!(
        (&c6["client"], &c6["vip"], &c6["local"], &c6["server"]),
        (
            &json!("[2001:db8:10::2]:40000"),
            &json!("[2001:db8:10::100]:80"),
            &json!("[2001:db8:10::2]:40000"),
            &json!("[2001:db8:20::11]:8080")
        )
    );
    for q in ["service=tcp/2001:db8:10::100/80", "service=tcp/[2001:db8:10::100]/80", "server=[2001:db8:20::11]:8080"] {
        let (code, v) = call(&srv, "GET", &format!("/v1/connections?{q}"), None).await;
        assert_eq!((code, v["total"].as_u64()), (200, Some(1)), "{q}: {v}");
        assert_eq!(v["connections"][0]["server"], "[2001:db8:20::11]:8080", "{q}");
    }
    let (_, v) = call(&srv, "GET", "/v1/connections?server=10.20.0.12:80&offset=1&limit=1", None).await;
    assert_eq!((v["total"].as_u64(), v["connections"].as_array().map(Vec::len)), (Some(2), Some(1)), "{v}");
    assert_eq!(v["connections"][0]["client"], "10.10.0.2:1011");
    let (_, v) = call(&srv, "GET", "/v1/connections?service=tcp%2F10.10.0.100%2F80", None).await;
    assert_eq!(v["total"], 6);
    let (_, v) = call(&srv, "GET", "/v1/connections?service=udp/10.10.0.100/53", None).await;
    assert_eq!(v["total"], 0);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }

    // A worker that never answers: 503 naming it.
    let (h0, _l0) = control_link(4);
    let running = Running::from_toml(CONFIG, 1).unwrap();
    let st = AppState::new(running, Arc::new(NoStatus), vec![h0], None).with_worker_timeout(Duration::from_millis(50));
    let srv = serve_state(st).await;
    let (code, v) = call(&srv, "GET", "/v1/connections", None).await;
    assert_eq!(code, 503);
    assert_eq!(v["error"], "worker 0 did not answer");
}

struct NoStatus;
impl StatusSource for NoStatus {
    fn status(&self) -> Status {
        Status::new(0, vec![], vec![])
    }
}

#[tokio::test]
async fn bearer_token() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("rvs-api-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "s3cret\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let with = |listen: &str| {
        CONFIG.replace(
            "[[route]]",
            &format!("[api]\nlisten = \"{listen}\"\ntoken_file = \"{}\"\n[[route]]", file.display()),
        )
    };
    // A token readable by others is refused, and so is a public listener without token.
    let e = Running::from_toml(&with("0.0.0.0:8700"), 1).unwrap_err();
    assert!(e.names("api.token_file"), "{e}");
    let e =
        Running::from_toml(&CONFIG.replace("[[route]]", "[api]\nlisten = \"0.0.0.0:8700\"\n[[route]]"), 1).unwrap_err();
    assert!(e.names("api.listen") && e.to_string().contains("bearer token"), "{e}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let running = Running::from_toml(&with("0.0.0.0:8700"), 1).unwrap();
    let token = api::read_token(running.config().api.token_file.as_deref().unwrap()).unwrap();
    assert_eq!(token, "s3cret");
    let st = AppState::new(running, Arc::new(NoStatus), vec![], Some(token));
    let srv = serve_state(st).await;
    let (code, _, body) = http(srv.addr, "GET", "/v1/services", None, &[]).await;
    assert_eq!(code, 401, "{body}");
    let (code, _, _) = http(srv.addr, "GET", "/v1/services", None, &[("Authorization", "Bearer nope")]).await;
    assert_eq!(code, 401);
    let (code, _, _) = http(srv.addr, "GET", "/v1/services", None, &[("Authorization", "Bearer s3cret")]).await;
    assert_eq!(code, 200);
    let (code, _, _) = http(srv.addr, "GET", "/v1/status", None, &[]).await;
    assert_eq!(code, 200, "status always answers on loopback");
    let (code, _, _) = http(srv.addr, "PUT", "/v1/config", Some(CONFIG), &[]).await;
    assert_eq!(code, 401);
    let _ = std::fs::remove_dir_all(&dir);
}

/// (method, path, body, expected status, expected field)
type Bad = (&'static str, String, String, u16, &'static str);

fn bad_inputs() -> Vec<Bad> {
    let svc = |b: &str| ("POST", "/v1/services".to_string(), b.to_string());
    let srv = |b: &str| ("POST", format!("{SVC}/servers"), b.to_string());
    let put_srv = |b: &str| ("PUT", format!("{SVC}/servers/10.20.0.11/80"), b.to_string());
    let put_svc = |b: &str| ("PUT", SVC.to_string(), b.to_string());
    let cfg = |from: &str, to: &str| ("PUT", "/v1/config".to_string(), CONFIG.replacen(from, to, 1));
    let t = |b: &str| ("PUT", "/v1/timeouts".to_string(), b.to_string());
    let rows: Vec<((&'static str, String, String), u16, &'static str)> = vec![
        // Malformed bodies.
        (svc("{"), 400, "body"),
        (svc(""), 400, "body"),
        (svc("[]"), 400, "body"),
        (svc("not json"), 400, "body"),
        (svc(r#"{"protocol":"tcp","address":"10.10.0.102","port":80} trailing"#), 400, "body"),
        (svc(r#"{"protocol":"tcp","address":"10.10.0.102","port":80,"colour":"red"}"#), 400, "colour"),
        (svc(r#"{"protocol":"tcp","address":"10.10.0.102"}"#), 400, "body"),
        (svc(r#"{"protocol":"tcp","address":"10.10.0.102","port":"80"}"#), 400, "port"),
        (svc(r#"{"protocol":"tcp","address":"10.10.0.102","port":80.5}"#), 400, "port"),
        (
            svc(
                r#"{"protocol":"tcp","address":"10.10.0.102","port":80,"servers":[{"address":"10.20.0.11","bogus":1}]}"#,
            ),
            400,
            "servers[0].bogus",
        ),
        (
            svc(
                r#"{"protocol":"tcp","address":"10.10.0.102","port":80,"servers":[{"address":"10.20.0.11","weight":"heavy"}]}"#,
            ),
            400,
            "servers[0].weight",
        ),
        (
            svc(
                r#"{"protocol":"tcp","address":"10.10.0.102","port":80,"servers":[{"address":"10.20.0.11","weight":1e30}]}"#,
            ),
            400,
            "servers[0].weight",
        ),
        // Values the validator refuses.
        (svc(r#"{"protocol":"sctp","address":"10.10.0.102","port":80}"#), 422, "protocol"),
        (svc(r#"{"protocol":"tcp","address":"10.10.0.300","port":80}"#), 422, "address"),
        (svc(r#"{"protocol":"tcp","address":"::1","port":80}"#), 422, "address"),
        (svc(r#"{"protocol":"tcp","address":"224.0.0.1","port":80}"#), 422, "address"),
        (svc(r#"{"protocol":"tcp","address":"10.10.0.1","port":80}"#), 422, "address"),
        (svc(r#"{"protocol":"tcp","address":"10.10.0.102","port":0}"#), 422, "port"),
        (svc(r#"{"protocol":"tcp","address":"10.10.0.102","port":65536}"#), 422, "port"),
        (svc(r#"{"protocol":"tcp","address":"10.10.0.102","port":-1}"#), 422, "port"),
        (svc(r#"{"protocol":"tcp","address":"10.10.0.102","port":80,"scheduler":"fastest"}"#), 422, "scheduler"),
        (svc(r#"{"protocol":"tcp","address":"10.10.0.102","port":80,"persistence":"forever"}"#), 422, "persistence"),
        (svc(r#"{"protocol":"tcp","address":"10.10.0.102","port":80,"persistence":"0s"}"#), 422, "persistence"),
        (
            svc(
                r#"{"protocol":"tcp","address":"10.10.0.102","port":80,"persistence":"60s","persistence_netmask":"255.0.255.0"}"#,
            ),
            422,
            "persistence_netmask",
        ),
        (
            svc(r#"{"protocol":"tcp","address":"10.10.0.102","port":80,"persistence_netmask":"255.255.255.0"}"#),
            422,
            "persistence_netmask",
        ),
        (
            svc(
                r#"{"protocol":"tcp","address":"10.10.0.102","port":80,"servers":[{"address":"10.20.0.11","weight":-1}]}"#,
            ),
            422,
            "servers[0].weight",
        ),
        (
            svc(
                r#"{"protocol":"tcp","address":"10.10.0.102","port":80,"servers":[{"address":"10.20.0.11","weight":65536}]}"#,
            ),
            422,
            "servers[0].weight",
        ),
        (
            svc(
                r#"{"protocol":"tcp","address":"10.10.0.102","port":80,"servers":[{"address":"10.20.0.11","forward":"masq"}]}"#,
            ),
            422,
            "servers[0].forward",
        ),
        (
            svc(
                r#"{"protocol":"tcp","address":"10.10.0.102","port":80,"servers":[{"address":"10.20.0.11"},{"address":"10.20.0.11"}]}"#,
            ),
            422,
            "servers[1]",
        ),
        (
            svc(
                r#"{"protocol":"tcp","address":"10.10.0.102","port":80,"servers":[{"address":"10.20.0.11","port":8080,"forward":"dr"}]}"#,
            ),
            422,
            "servers[0].port",
        ),
        // Duplicates.
        (svc(r#"{"protocol":"tcp","address":"10.10.0.100","port":80}"#), 409, "address"),
        (srv(r#"{"address":"10.20.0.11"}"#), 409, "address"),
        (srv(r#"{"address":"10.20.0.11","port":80,"forward":"nat"}"#), 409, "address"),
        // Servers.
        (srv(r#"{"address":"10.20.0.256"}"#), 422, "address"),
        (srv(r#"{"address":"10.20.0.14","port":0,"forward":"nat"}"#), 422, "port"),
        (srv(r#"{"address":"10.20.0.14","port":70000,"forward":"nat"}"#), 422, "port"),
        (srv(r#"{"address":"10.20.0.14","weight":-5}"#), 422, "weight"),
        (srv(r#"{"address":"10.20.0.14","weight":4294967296}"#), 422, "weight"),
        (srv(r#"{"address":"10.20.0.14","forward":"bridge"}"#), 422, "forward"),
        (srv(r#"{"address":"10.20.0.14","upper_threshold":5,"lower_threshold":9}"#), 422, "lower_threshold"),
        (srv(r#"{"address":"10.20.0.1"}"#), 422, "address"),
        (srv(r#"{"address":"10.20.0.14","port":80,"extra":true}"#), 400, "extra"),
        (srv(r#"{"port":80}"#), 400, "body"),
        (put_srv(r#"{"weight":100000}"#), 422, "weight"),
        (put_srv(r#"{"weight":-1}"#), 422, "weight"),
        (put_srv(r#"{"forward":"ipip"}"#), 422, "forward"),
        (put_srv(r#"{"admin":"off"}"#), 422, "admin"),
        (put_srv(r#"{"admin":"DRAIN"}"#), 422, "admin"),
        (put_srv(r#"{"weight":2,"admin":"disabled"}"#), 422, "admin"),
        (put_srv(r#"{"admin":5}"#), 400, "admin"),
        (("PUT", format!("{SVC}/servers/10.20.0.99/80"), r#"{"admin":"drain"}"#.to_string()), 404, "path"),
        (put_srv(r#"{"address":"10.20.0.15"}"#), 400, "address"),
        (put_srv(r#"{"upper_threshold":-3}"#), 422, "upper_threshold"),
        (put_svc(r#"{"scheduler":"random"}"#), 422, "scheduler"),
        (put_svc(r#"{"persistence":"5 parsecs"}"#), 422, "persistence"),
        (put_svc(r#"{"port":81}"#), 400, "port"),
        (put_svc(r#"{"persistence_netmask":"255.255.0.0"}"#), 422, "persistence_netmask"),
        (put_svc(r#"{"deny":["10.0.0.0/8","10.1.0.0/16","nope"]}"#), 422, "deny[2]"),
        (put_svc(r#"{"allow":["2001:db8::1/32"]}"#), 422, "allow[0]"),
        (put_svc(r#"{"persistence":"60s","persistence_netmask":"24"}"#), 422, "persistence_netmask"),
        (put_svc(r#"{"allow":"10.0.0.0/8"}"#), 400, "allow"),
        (put_svc(r#"{"maxconn":-1}"#), 422, "maxconn"),
        (put_svc(r#"{"client_rate":-1}"#), 422, "client_rate"),
        (put_svc(r#"{"client_burst":5}"#), 422, "client_burst"),
        (svc(r#"{"protocol":"tcp","address":"10.10.0.102","port":80,"deny":["10.1.2.3/8"]}"#), 422, "deny[0]"),
        (cfg("scheduler = \"wrr\"", "scheduler = \"wrr\"\ndeny = [\"10.0.0.0/8\", \"x\"]"), 422, "service[0].deny[1]"),
        // Paths.
        ("PUT", "/v1/services/sctp/10.10.0.100/80".into(), "{}".into()).into_row(400, "path"),
        ("PUT", "/v1/services/tcp/10.10.0.999/80".into(), "{}".into()).into_row(400, "path"),
        ("PUT", "/v1/services/tcp/10.10.0.100/99999".into(), "{}".into()).into_row(400, "path"),
        ("PUT", "/v1/services/tcp/10.10.0.100/81".into(), "{}".into()).into_row(404, "path"),
        ("PUT", format!("{SVC}/servers/10.20.0.99/80"), "{}".into()).into_row(404, "path"),
        ("DELETE", "/v1/services/udp/10.10.0.100/80".into(), String::new()).into_row(404, "path"),
        // IPv6: paths take a bare or bracketed (here percent-encoded) IPv6 address; no IPv6
        // service exists in this build, and bodies naming one are refused by the data-path
        // boundary, naming the field.
        ("GET", "/v1/services/tcp/2001:db8::1/80".into(), String::new()).into_row(404, "path"),
        ("GET", "/v1/services/tcp/%5B2001:db8::1%5D/80".into(), String::new()).into_row(404, "path"),
        ("GET", "/v1/services/tcp/[2001:db8::1]/80".into(), String::new()).into_row(404, "path"),
        ("GET", "/v1/services/tcp/%5B2001:db8::1/80".into(), String::new()).into_row(400, "path"),
        ("GET", "/v1/services/tcp/%5B10.10.0.100%5D/80".into(), String::new()).into_row(400, "path"),
        ("GET", "/v1/services/tcp/fe80::1%25eth0/80".into(), String::new()).into_row(400, "path"),
        ("PUT", format!("{SVC}/servers/2001:db8::11/80"), "{}".into()).into_row(404, "path"),
        ("PUT", format!("{SVC}/servers/%5B2001:db8::11%5D/80"), "{}".into()).into_row(404, "path"),
        ("PUT", format!("{SVC}/servers/%5B2001:db8::11/80"), "{}".into()).into_row(400, "path"),
        ("DELETE", format!("{SVC}/servers/2001:db8::11/80"), String::new()).into_row(404, "path"),
        (
            svc(
                r#"{"protocol":"tcp","address":"2001:db8::1","port":80,"persistence":"60s","persistence_netmask":"255.255.255.0"}"#,
            ),
            422,
            "persistence_netmask",
        ),
        (
            svc(
                r#"{"protocol":"tcp","address":"2001:db8::1","port":80,"persistence":"60s","persistence_netmask":"129"}"#,
            ),
            422,
            "persistence_netmask",
        ),
        (svc(r#"{"protocol":"tcp","address":"2001:db8::1","port":80,"deny":["2001:db8::1/64"]}"#), 422, "deny[0]"),
        (svc(r#"{"protocol":"tcp","address":"[2001:db8::1]","port":80}"#), 422, "address"),
        (svc(r#"{"protocol":"tcp","address":"2001:db8::1%eth0","port":80}"#), 422, "address"),
        (svc(r#"{"protocol":"tcp","address":"::ffff:10.10.0.102","port":80}"#), 422, "address"),
        (
            svc(r#"{"protocol":"tcp","address":"10.10.0.102","port":80,"servers":[{"address":"2001:db8::11"}]}"#),
            422,
            "servers[0].address",
        ),
        (srv(r#"{"address":"2001:db8::11"}"#), 422, "address"),
        (srv(r#"{"address":"[2001:db8::11]:80"}"#), 422, "address"),
        (("GET", "/v1/connections?service=tcp/%5B2001:db8::1/80".into(), String::new()), 400, "service"),
        (("GET", "/v1/connections?server=2001:db8::11:80".into(), String::new()), 400, "server"),
        (("GET", "/v1/connections?server=%5B10.20.0.11%5D:80".into(), String::new()), 400, "server"),
        (("GET", "/v1/connections?server=%5B2001:db8::11:80".into(), String::new()), 400, "server"),
        // Whole files.
        (cfg("weight = 3", "weight = 70000"), 422, "service[0].server[0].weight"),
        (cfg("weight = 3", "weight = -3"), 422, "service[0].server[0].weight"),
        (cfg("weight = 3", "weight = \"3\""), 400, "service[0].server[0].weight"),
        (cfg("scheduler = \"rr\"", "scheduler = \"best\""), 422, "service[1].scheduler"),
        (cfg("forward = \"fullnat\"", "forward = \"fullnet\""), 422, "service[1].server[0].forward"),
        (cfg("local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]\n", ""), 422, "service[1].server[0].forward"),
        (cfg("persistence = \"300s\"", "persistence = \"300 parsecs\""), 422, "service[1].persistence"),
        (cfg("port = 53\nscheduler", "port = 0\nscheduler"), 422, "service[1].port"),
        (
            cfg(
                "protocol = \"udp\"\naddress = \"10.10.0.100\"\nport = 53",
                "protocol = \"tcp\"\naddress = \"10.10.0.100\"\nport = 80",
            ),
            422,
            "service[1]",
        ),
        (cfg("scheduler = \"wrr\"", "scheduler = \"wrr\"\ncolour = \"blue\""), 400, "service[0].colour"),
        (cfg("[[route]]", "[[route]\n"), 400, "body"),
        (cfg("tcp_timeout = \"900s\"", "tcp_timeout = \"fortnight\""), 422, "dataplane.tcp_timeout"),
        (
            cfg("tcp_timeout = \"900s\"", "tcp_timeout = \"900s\"\nexpire_nodest_conn = \"yes\""),
            400,
            "dataplane.expire_nodest_conn",
        ),
        // Changes that need a restart.
        (cfg("workers = 2", "workers = 3"), 409, "dataplane.workers"),
        (cfg("tcp_timeout", "conn_capacity = 1024\ntcp_timeout"), 409, "dataplane.conn_capacity"),
        (cfg("tcp_timeout", "probe_ports = \"40000-40099\"\ntcp_timeout"), 409, "dataplane.probe_ports"),
        (cfg("tcp_timeout", "probe_ports = \"1-2\"\ntcp_timeout"), 422, "dataplane.probe_ports"),
        (cfg("tcp_timeout", "eal_args = [\"--no-huge\"]\ntcp_timeout"), 409, "dataplane.eal_args"),
        (cfg("tcp_timeout", "mempool_size = 65535\ntcp_timeout"), 409, "dataplane.mempool_size"),
        (cfg("device = \"net_ring1\"", "device = \"net_ring2\""), 409, "port[1].device"),
        (cfg("\"10.20.0.200\", \"10.20.0.201\"", "\"10.20.0.200\""), 409, "port[1].local_addresses"),
        (cfg("via = \"10.10.0.254\"", "via = \"10.10.0.253\""), 409, "route"),
        (cfg("[[route]]", "[api]\nlisten = \"127.0.0.1:8701\"\n[[route]]"), 409, "api.listen"),
        // Timeouts.
        (t(r#"{"tcp":"never"}"#), 422, "tcp"),
        (t(r#"{"udp":"-5s"}"#), 422, "udp"),
        (t(r#"{"tcp":900}"#), 400, "tcp"),
        (t(r#"{"sctp":"1s"}"#), 400, "sctp"),
        // Query strings.
        ("PUT", "/v1/config?dry_run=maybe".into(), CONFIG.to_string()).into_row(400, "dry_run"),
        ("PUT", "/v1/config?force=1".into(), CONFIG.to_string()).into_row(400, "force"),
        ("GET", "/v1/connections?service=tcp/10.10.0.100".into(), String::new()).into_row(400, "service"),
        ("GET", "/v1/connections?server=10.20.0.11".into(), String::new()).into_row(400, "server"),
        ("GET", "/v1/connections?limit=-1".into(), String::new()).into_row(400, "limit"),
        ("GET", "/v1/connections?limit=1000000".into(), String::new()).into_row(400, "limit"),
        ("GET", "/v1/connections?offset=x".into(), String::new()).into_row(400, "offset"),
        ("GET", "/v1/connections?page=2".into(), String::new()).into_row(400, "page"),
    ];
    rows.into_iter().map(|((m, p, b), code, field)| (m, p, b, code, field)).collect()
}

trait IntoRow {
    fn into_row(self, code: u16, field: &'static str) -> ((&'static str, String, String), u16, &'static str);
}
impl IntoRow for (&'static str, String, String) {
    fn into_row(self, code: u16, field: &'static str) -> ((&'static str, String, String), u16, &'static str) {
        (self, code, field)
    }
}

/// Found by the `rest_bodies` fuzz target: a path segment that is not UTF-8 once
/// percent-decoded was answered with axum's plain text, not the API's error document.
#[tokio::test]
async fn undecodable_path_segments_are_error_documents() {
    let srv = serve(CONFIG).await;
    let before = config_text(&srv).await;
    for (method, path) in [
        ("GET", "/v1/services/tcp/10.10.0.100/8%80"),
        ("PUT", "/v1/services/tcp/10.10.0.100/80/servers/10.20.0.11%80/80"),
        ("DELETE", "/v1/services/%ff/10.10.0.100/80"),
        ("POST", "/v1/ha/%c3/step-down"),
    ] {
        let (code, v) = call(&srv, method, path, Some("{}")).await;
        assert_eq!(code, 400, "{method} {path}: {v}");
        assert_eq!(v["field"], "path", "{method} {path}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains("UTF-8")), "{method} {path}: {v}");
    }
    assert_eq!(config_text(&srv).await, before);
}

/// IPv6 Full-NAT over REST: with IPv6 local addresses on the back port, an IPv6 service
/// takes a Full-NAT server (`POST /v1/services`, then one more through `.../servers`);
/// without any, the server's `forward` is refused naming the fix, and nothing changes.
#[tokio::test]
async fn ipv6_fullnat_servers_need_ipv6_local_addresses() {
    let v6 = |locals: &str| {
        CONFIG
            .replacen(
                "mac = \"02:00:00:00:00:01\"",
                "mac = \"02:00:00:00:00:01\"\nipv6_addresses = [\"2001:db8:10::1/64\"]",
                1,
            )
            .replacen(
                "mac = \"02:00:00:00:00:02\"",
                "mac = \"02:00:00:00:00:02\"\nipv6_addresses = [\"2001:db8:20::1/64\"]",
                1,
            )
            .replacen("local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]", locals, 1)
    };
    let body = r#"{"protocol":"tcp","address":"2001:db8:10::100","port":80,"scheduler":"rr",
        "servers":[{"address":"2001:db8:20::11","forward":"fullnat"}]}"#;
    let srv = serve(&v6("local_addresses = [\"10.20.0.200\", \"2001:db8:20::200\"]")).await;
    let (code, v) = call(&srv, "POST", "/v1/services", Some(body)).await;
    assert_eq!(code, 201, "{v}");
    let svc6 = "/v1/services/tcp/2001:db8:10::100/80/servers";
    let (code, v) = call(&srv, "POST", svc6, Some(r#"{"address":"2001:db8:20::12","forward":"fullnat"}"#)).await;
    assert_eq!(code, 201, "{v}");
    assert!(config_text(&srv).await.contains("2001:db8:20::200"));

    let srv = serve(&v6("local_addresses = [\"10.20.0.200\"]")).await;
    let before = config_text(&srv).await;
    let (code, v) = call(&srv, "POST", "/v1/services", Some(body)).await;
    assert_eq!(code, 422, "{v}");
    assert!(v["field"].as_str().is_some_and(|f| f.ends_with("forward")), "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("IPv6 Full-NAT local address")), "{v}");
    assert_eq!(config_text(&srv).await, before);
}

/// NAT64 over REST: an IPv6 service takes IPv4 Full-NAT servers (the back port has IPv4
/// local addresses), created with the service and added after it, listed under the IPv6
/// service and in the data path's table; an IPv4 server in another mode is refused
/// naming its `forward` with the fix, and nothing changes.
#[tokio::test]
async fn nat64_ipv4_fullnat_servers_on_an_ipv6_service() {
    let srv = serve(CONFIG).await;
    let body = r#"{"protocol":"tcp","address":"2001:db8::1","port":80,"scheduler":"rr",
        "servers":[{"address":"10.20.0.11","port":8080,"forward":"fullnat"}]}"#;
    let (code, v) = call(&srv, "POST", "/v1/services", Some(body)).await;
    assert_eq!(code, 201, "{v}");
    let servers = "/v1/services/tcp/2001:db8::1/80/servers";
    let (code, v) =
        call(&srv, "POST", servers, Some(r#"{"address":"10.20.0.12","port":8080,"forward":"fullnat"}"#)).await;
    assert_eq!(code, 201, "{v}");
    let (code, v) = call(&srv, "GET", "/v1/services/tcp/2001:db8::1/80", None).await;
    assert_eq!(code, 200, "{v}");
    let text = v.to_string();
    assert!(text.contains("10.20.0.11") && text.contains("10.20.0.12"), "{v}");
    let t = srv.state.running().shared().load_full();
    let s = t.services().iter().find(|s| s.key.vip.is_ipv6()).expect("the IPv6 service is in the table");
    assert!(s.servers.iter().all(|r| r.addr.is_ipv4()), "{:?}", s.servers);
    assert!(!s.local_addrs.is_empty());
    let before = config_text(&srv).await;
    let generation = srv.state.running().generation();
    for mode in ["nat", "dr", "tunnel"] {
        let body = format!(r#"{{"address":"10.20.0.13","port":80,"forward":"{mode}"}}"#);
        let (code, v) = call(&srv, "POST", servers, Some(&body)).await;
        assert_eq!(code, 422, "{mode}: {v}");
        assert!(v["field"].as_str().is_some_and(|f| f.ends_with("forward")), "{mode}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains("NAT64")), "{mode}: {v}");
    }
    assert_eq!(config_text(&srv).await, before);
    assert_eq!(srv.state.running().generation(), generation);
}

/// `PUT /v1/config` and the service bodies with the SYN proxy on an IPv6 service: taken
/// for NAT66 and for NAT64 (IPv4 Full-NAT servers behind the IPv6 VIP), whose default is
/// `auto` like every NAT/Full-NAT TCP service's, and published to the data path.
#[tokio::test]
async fn ipv6_services_with_syn_proxy_are_taken_on_nat66_and_nat64() {
    use rvs_dataplane::synproxy::SynProxyMode;
    // The ports have their IPv6 addresses from the start (changing them needs a restart).
    let base = CONFIG
        .replacen(
            "mac = \"02:00:00:00:00:01\"",
            "mac = \"02:00:00:00:00:01\"\nipv6_addresses = [\"2001:db8:10::1/64\"]",
            1,
        )
        .replacen(
            "mac = \"02:00:00:00:00:02\"",
            "mac = \"02:00:00:00:00:02\"\nipv6_addresses = [\"2001:db8:20::1/64\"]",
            1,
        );
    let srv = serve(&base).await;
    let text = base
        + "[[service]]\nprotocol = \"tcp\"\naddress = \"2001:db8:10::100\"\nport = 80\nscheduler = \"rr\"\n\
           syn_proxy = \"always\"\n[[service.server]]\naddress = \"2001:db8:20::11\"\nforward = \"nat\"\n";
    let (code, v) = call(&srv, "PUT", "/v1/config?dry_run=true", Some(&text)).await;
    assert_eq!(code, 200, "NAT66 is proxied: {v}");
    let nat64 = text
        .replace("address = \"2001:db8:20::11\"\nforward = \"nat\"", "address = \"10.20.0.11\"\nforward = \"fullnat\"");
    let (code, v) = call(&srv, "PUT", "/v1/config", Some(&nat64)).await;
    assert_eq!(code, 200, "NAT64 is proxied: {v}");
    let nat64_mode = |srv: &Server| {
        let table = srv.state.running().shared().load_full();
        let nat64 = table.services().iter().find(|s| s.key.vip.is_ipv6() && s.servers.iter().any(|r| r.addr.is_ipv4()));
        nat64.map(|s| s.syn_proxy.mode)
    };
    assert_eq!(nat64_mode(&srv), Some(SynProxyMode::Always));
    // Without `syn_proxy`: the default, auto.
    let default = nat64.replace("syn_proxy = \"always\"\n", "");
    let (code, v) = call(&srv, "PUT", "/v1/config", Some(&default)).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(nat64_mode(&srv), Some(SynProxyMode::Auto));
    // A service body: a new NAT64 service asking for the proxy is created with it.
    let body = r#"{"protocol":"tcp","address":"2001:db8:10::101","port":80,"syn_proxy":"always",
        "servers":[{"address":"10.20.0.12","port":80,"forward":"fullnat"}]}"#;
    let (code, v) = call(&srv, "POST", "/v1/services", Some(body)).await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["syn_proxy"], "always", "{v}");
}

/// An IPv6 service with persistence by prefix length, client lists and a per-client rate:
/// created, applied to the data path's table (an IPv6-keyed persistence table, IPv6
/// lists), written to the file; with persistence off it shows the IPv6 default (`128`),
/// and what `GET` shows can be sent back.
#[tokio::test]
async fn ipv6_service_takes_a_persistence_prefix_length_lists_and_a_rate() {
    let srv = serve(CONFIG).await;
    let body = r#"{"protocol":"tcp","address":"2001:db8::1","port":80,"scheduler":"sh","persistence":"300s",
                   "persistence_netmask":"64","allow":["2001:db8::/32"],"deny":["2001:db8:0:5::/64"],"client_rate":20}"#;
    let (code, v) = call(&srv, "POST", "/v1/services", Some(body)).await;
    assert_eq!(code, 201, "{v}");
    assert_eq!((v["persistence_netmask"].as_str(), v["client_rate"].as_u64()), (Some("64"), Some(20)), "{v}");
    assert_eq!(v["deny"], json!(["2001:db8:0:5::/64"]));
    let t = srv.state.running().shared().load_full();
    let s = t.services().iter().find(|s| s.key.vip.is_ipv6()).expect("the IPv6 service is in the table");
    assert_eq!(s.persist.as_ref().map(|p| p.mask()), Some(rvs_dataplane::sched::PersistMask::V6(64)));
    assert!(s.admission.allow6.contains("2001:db8:1::1".parse().unwrap()));
    assert!(s.admission.deny6.contains("2001:db8:0:5::1".parse().unwrap()));
    assert!(config_text(&srv).await.contains("persistence_netmask = \"64\""));
    let path = "/v1/services/tcp/2001:db8::1/80";
    let (code, v) = call(&srv, "PUT", path, Some(r#"{"persistence":null}"#)).await;
    assert_eq!((code, v["persistence_netmask"].as_str()), (200, Some("128")), "{v}");
    let (code, _) = call(&srv, "DELETE", path, None).await;
    assert_eq!(code / 100, 2);
    let (code, w) = call(&srv, "POST", "/v1/services", Some(&v.to_string())).await;
    assert_eq!(code, 201, "the GET body goes back: {w}");
    assert!(!config_text(&srv).await.contains("persistence_netmask"), "the default is written as absent");
}

#[tokio::test]
async fn bad_inputs_name_their_field_and_change_nothing() {
    let srv = serve(CONFIG).await;
    let rows = bad_inputs();
    assert!(rows.len() >= 50, "{} rows", rows.len());
    let before = config_text(&srv).await;
    let generation = srv.state.running().generation();
    let mut failures = Vec::new();
    for (method, path, body, code, field) in &rows {
        let b = (!body.is_empty() || *method != "GET" && *method != "DELETE").then_some(body.as_str());
        let (got, v) = call(&srv, method, path, b).await;
        if got != *code || v["field"].as_str() != Some(*field) || v["error"].as_str().is_none_or(str::is_empty) {
            failures.push(format!("{method} {path} {body}\n  want {code} {field}, got {got} {v}"));
        }
        assert_eq!(config_text(&srv).await, before, "{method} {path} {body} changed the config");
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs misreported:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    assert_eq!(srv.state.running().generation(), generation, "nothing was published");
}

#[tokio::test]
async fn admin_states_drain_maint_ready_and_survive_a_reload() {
    let srv = serve(CONFIG).await;
    let s11 = format!("{SVC}/servers/10.20.0.11/80");
    let weights = |srv: &Server| -> Vec<(String, u32)> {
        let t = srv.state.running().shared().load_full();
        t.services()[0].servers.iter().map(|r| (r.addr.to_string(), r.weight)).collect()
    };
    let (code, v) = call(&srv, "GET", &s11, None).await;
    assert_eq!((code, v["admin"].as_str()), (200, Some("ready")));
    let before = config_text(&srv).await;

    // drain: weight 0 in effect, configured weight kept, still in the table.
    let (code, v) = call(&srv, "PUT", &s11, Some(r#"{"admin":"drain"}"#)).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (v["admin"].as_str(), v["weight"].as_u64(), v["effective_weight"].as_u64()),
        (Some("drain"), Some(3), Some(0))
    );
    assert_eq!(weights(&srv), [("10.20.0.11".to_string(), 0), ("10.20.0.12".to_string(), 1)]);
    assert_eq!(config_text(&srv).await, before, "admin states are not configuration");

    // A weight change keeps the drain; the admin state survives a reload of the same server.
    let (code, v) = call(&srv, "PUT", &s11, Some(r#"{"weight":5}"#)).await;
    assert_eq!((code, v["admin"].as_str(), v["effective_weight"].as_u64()), (200, Some("drain"), Some(0)), "{v}");
    let dir = std::env::temp_dir().join(format!("rvs-api-admin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rvs.toml");
    std::fs::write(&path, CONFIG.replace("weight = 3", "weight = 4")).unwrap();
    rvs_controlplane::daemon::reload(&srv.state, &path).unwrap();
    let (_, v) = call(&srv, "GET", &s11, None).await;
    assert_eq!(
        (v["weight"].as_u64(), v["admin"].as_str(), v["effective_weight"].as_u64()),
        (Some(4), Some("drain"), Some(0))
    );

    // maint: out of the table; probes paused.
    let (code, v) = call(&srv, "PUT", &s11, Some(r#"{"admin":"maint"}"#)).await;
    assert_eq!((code, v["admin"].as_str(), v["effective_weight"].as_u64()), (200, Some("maint"), Some(0)), "{v}");
    assert_eq!(v["health"]["last"], "probes paused (admin maint)");
    assert_eq!(weights(&srv), [("10.20.0.12".to_string(), 1)]);

    // ready: back at its configured weight.
    let (code, v) = call(&srv, "PUT", &s11, Some(r#"{"admin":"ready"}"#)).await;
    assert_eq!((code, v["admin"].as_str(), v["effective_weight"].as_u64()), (200, Some("ready"), Some(4)), "{v}");
    assert_eq!(weights(&srv), [("10.20.0.11".to_string(), 4), ("10.20.0.12".to_string(), 1)]);

    // A server deleted and added again starts ready.
    call(&srv, "PUT", &s11, Some(r#"{"admin":"maint"}"#)).await;
    let (code, _) = call(&srv, "DELETE", &s11, None).await;
    assert_eq!(code, 204);
    let (code, v) =
        call(&srv, "POST", &format!("{SVC}/servers"), Some(r#"{"address":"10.20.0.11","forward":"nat"}"#)).await;
    assert_eq!((code, v["admin"].as_str()), (201, Some("ready")), "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn reload_applies_a_good_file_and_ignores_a_bad_one() {
    let srv = serve(CONFIG).await;
    let dir = std::env::temp_dir().join(format!("rvs-api-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rvs.toml");
    std::fs::write(&path, CONFIG.replace("weight = 3", "weight = 7")).unwrap();
    rvs_controlplane::daemon::reload(&srv.state, &path).unwrap();
    assert!(config_text(&srv).await.contains("weight = 7"));
    let before = config_text(&srv).await;
    std::fs::write(&path, CONFIG.replace("weight = 3", "weight = 70000")).unwrap();
    let refused = rvs_controlplane::daemon::reload(&srv.state, &path).unwrap_err();
    assert!(refused.contains(&path.display().to_string()) && refused.contains("weight"), "{refused}");
    std::fs::remove_file(&path).unwrap();
    let missing = rvs_controlplane::daemon::reload(&srv.state, &path).unwrap_err();
    assert!(missing.contains(&path.display().to_string()) && missing.contains("No such file"), "{missing}");
    assert_eq!(config_text(&srv).await, before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `/v1/ha` and step-down: 404 without `[ha]`; with it, the board as published and the
/// HA thread's answers (here a stand-in thread) mapped to 200, 404 and 409.
#[tokio::test]
async fn ha_status_and_step_down() {
    use rvs_controlplane::ha::run::{HaHandle, StepDownError};
    use rvs_controlplane::ha::view::{HaStatus, InstanceStatus};
    let srv = serve(CONFIG).await;
    let (code, v) = call(&srv, "GET", "/v1/ha", None).await;
    assert_eq!(code, 404, "{v}");
    assert!(v["error"].as_str().unwrap().contains("[ha]"), "{v}");

    let master = InstanceStatus { vrid: 51, port: "front".into(), state: "master".into(), ..InstanceStatus::default() };
    let board = Arc::new(std::sync::Mutex::new(HaStatus { instances: vec![master.clone()], ..HaStatus::default() }));
    let (tx, rx) = std::sync::mpsc::channel::<rvs_controlplane::ha::run::StepDown>();
    std::thread::spawn(move || {
        while let Ok((vrid, family, hold, answer)) = rx.recv() {
            let r = match (vrid, family) {
                (51, None) if hold == Duration::from_secs(600) => {
                    Ok(InstanceStatus { state: "backup".into(), ..master.clone() })
                }
                (51, _) => Err(StepDownError::NotMaster { vrid, state: "backup".into() }),
                // VRID 61 has an IPv4 and an IPv6 instance.
                (61, None) => Err(StepDownError::Ambiguous(61)),
                (61, Some(f)) => Ok(InstanceStatus { vrid: 61, family: f.name().into(), ..master.clone() }),
                (_, Some(f)) => Err(StepDownError::NoSuchFamily(vrid, f)),
                _ => Err(StepDownError::NoSuchVrid(vrid)),
            };
            let _ = answer.send(r);
        }
    });
    let handle = Arc::new(HaHandle { board, requests: std::sync::Mutex::new(tx) });
    let state = AppState::standalone(Running::from_toml(CONFIG, 2).unwrap()).with_ha(handle);
    let srv = serve_state(state).await;
    let (code, v) = call(&srv, "GET", "/v1/ha", None).await;
    assert_eq!(
        (code, v["instances"][0]["vrid"].clone(), v["instances"][0]["state"].clone()),
        (200, json!(51), json!("master"))
    );
    let (code, v) = call(&srv, "POST", "/v1/ha/51/step-down?hold=10m", None).await;
    assert_eq!((code, v["state"].clone()), (200, json!("backup")), "{v}");
    let (code, v) = call(&srv, "POST", "/v1/ha/51/step-down", None).await;
    assert_eq!(code, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("not master"), "{v}");
    let (code, v) = call(&srv, "POST", "/v1/ha/9/step-down", None).await;
    assert_eq!((code, v["field"].clone()), (404, json!("path")), "{v}");
    let (code, v) = call(&srv, "POST", "/v1/ha/0/step-down", None).await;
    assert_eq!((code, v["field"].clone()), (404, json!("path")), "{v}");
    let (code, v) = call(&srv, "POST", "/v1/ha/51/step-down?hold=soon", None).await;
    assert_eq!((code, v["field"].clone()), (400, json!("hold")), "{v}");
    let (code, v) = call(&srv, "GET", "/v1/ha/51/step-down", None).await;
    assert_eq!(code, 405, "{v}");
    // One VRID for an IPv4 and an IPv6 instance: the family picks one, and is then required.
    let (code, v) = call(&srv, "POST", "/v1/ha/61/step-down", None).await;
    assert_eq!((code, v["field"].clone()), (422, json!("family")), "{v}");
    assert!(v["error"].as_str().unwrap().contains("?family=ipv4 or ?family=ipv6"), "{v}");
    let (code, v) = call(&srv, "POST", "/v1/ha/61/step-down?family=ipv6&hold=1m", None).await;
    assert_eq!((code, v["vrid"].clone(), v["family"].clone()), (200, json!(61), json!("ipv6")), "{v}");
    let (code, v) = call(&srv, "POST", "/v1/ha/9/step-down?family=ipv4", None).await;
    assert_eq!((code, v["field"].clone()), (404, json!("family")), "{v}");
    let (code, v) = call(&srv, "POST", "/v1/ha/61/step-down?family=inet6", None).await;
    assert_eq!((code, v["field"].clone()), (400, json!("family")), "{v}");
    assert!(v["error"].as_str().unwrap().contains("use ipv4"), "{v}");
}

/// `allow`, `deny` and `maxconn` through every apply path: service create and update
/// bodies, `PUT /v1/config`; shown in the service JSON (with the refusal counters) and in
/// the canonical TOML; published to the workers' table.
#[tokio::test]
async fn client_lists_and_maxconn_apply_live_and_show() {
    let srv = serve(CONFIG).await;
    let (_, v) = call(&srv, "GET", SVC, None).await;
    assert_eq!((v["allow"].clone(), v["deny"].clone(), v["maxconn"].clone()), (json!([]), json!([]), json!(0)));
    assert_eq!((v["stats"]["acl_denied"].as_u64(), v["stats"]["service_maxconn"].as_u64()), (Some(0), Some(0)));
    assert!(v["servers"][0]["stats"].get("acl_denied").is_none(), "refusals are the service's: {v}");

    let (code, v) = call(&srv, "PUT", SVC, Some(r#"{"deny":["192.0.2.0/24","198.51.100.7"],"maxconn":100}"#)).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["deny"], json!(["192.0.2.0/24", "198.51.100.7/32"]));
    assert_eq!(v["maxconn"], 100);
    let text = config_text(&srv).await;
    assert!(text.contains("deny = [\"192.0.2.0/24\", \"198.51.100.7\"]") && text.contains("maxconn = 100"), "{text}");
    {
        let table = srv.state.running().shared().load_full();
        let a = &table.services()[0].admission;
        assert_eq!(a.maxconn, 100);
        assert!(!a.client_allowed("192.0.2.9".parse().unwrap()) && a.client_allowed("10.10.0.2".parse().unwrap()));
    }
    // What GET returned (servers aside) can be sent back as a new service.
    let (_, mut got) = call(&srv, "GET", SVC, None).await;
    got["address"] = json!("10.10.0.101");
    got["servers"] = json!([]);
    let (code, v) = call(&srv, "POST", "/v1/services", Some(&got.to_string())).await;
    assert_eq!(code, 201, "{v}");
    assert_eq!((v["deny"].clone(), v["maxconn"].clone()), (json!(["192.0.2.0/24", "198.51.100.7/32"]), json!(100)));

    // Removed again: an empty list and maxconn 0 leave nothing in the file.
    let (code, v) = call(&srv, "PUT", SVC, Some(r#"{"deny":[],"allow":["10.10.0.0/24"],"maxconn":0}"#)).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (v["deny"].clone(), v["allow"].clone(), v["maxconn"].clone()),
        (json!([]), json!(["10.10.0.0/24"]), json!(0))
    );

    // PUT /v1/config: the whole file.
    let file =
        CONFIG.replacen("scheduler = \"wrr\"", "scheduler = \"wrr\"\nallow = [\"10.10.0.0/24\"]\nmaxconn = 7", 1);
    let (code, v) = call(&srv, "PUT", "/v1/config", Some(&file)).await;
    assert_eq!(code, 200, "{v}");
    let paths: Vec<&str> = v["changes"].as_array().unwrap().iter().filter_map(|c| c["path"].as_str()).collect();
    assert!(paths.contains(&"service[tcp/10.10.0.100/80].maxconn"), "{v}");
    let table = srv.state.running().shared().load_full();
    assert_eq!(table.services()[0].admission.maxconn, 7);
}

/// `client_rate` and `client_burst` through the service bodies and `PUT /v1/config`:
/// shown (with the `client_rate_limited` count), in the canonical TOML, published.
#[tokio::test]
async fn client_rate_applies_live_and_shows() {
    let srv = serve(CONFIG).await;
    let (_, v) = call(&srv, "GET", SVC, None).await;
    assert_eq!((v["client_rate"].clone(), v["client_burst"].clone()), (json!(0), json!(0)));
    assert_eq!(v["stats"]["client_rate_limited"].as_u64(), Some(0));

    let (code, v) = call(&srv, "PUT", SVC, Some(r#"{"client_rate":20}"#)).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!((v["client_rate"].clone(), v["client_burst"].clone()), (json!(20), json!(20)));
    let (code, v) = call(&srv, "PUT", SVC, Some(r#"{"client_burst":64}"#)).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["client_burst"], 64);
    let text = config_text(&srv).await;
    assert!(text.contains("client_rate = 20") && text.contains("client_burst = 64"), "{text}");
    {
        let table = srv.state.running().shared().load_full();
        let a = &table.services()[0].admission;
        assert_eq!((a.client_rate, a.client_burst), (20, 64));
    }
    // What GET returned (servers aside) can be sent back as a new service.
    let (_, mut got) = call(&srv, "GET", SVC, None).await;
    got["address"] = json!("10.10.0.101");
    got["servers"] = json!([]);
    let (code, v) = call(&srv, "POST", "/v1/services", Some(&got.to_string())).await;
    assert_eq!(code, 201, "{v}");
    assert_eq!((v["client_rate"].clone(), v["client_burst"].clone()), (json!(20), json!(64)));
    // Removed: rate 0 takes the burst with it.
    let (code, v) = call(&srv, "PUT", SVC, Some(r#"{"client_rate":0}"#)).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!((v["client_rate"].clone(), v["client_burst"].clone()), (json!(0), json!(0)));
    assert!(srv.state.running().shared().load_full().services()[0].admission.is_open());

    let file = CONFIG.replacen("scheduler = \"wrr\"", "scheduler = \"wrr\"\nclient_rate = 7", 1);
    let (code, v) = call(&srv, "PUT", "/v1/config", Some(&file)).await;
    assert_eq!(code, 200, "{v}");
    let paths: Vec<&str> = v["changes"].as_array().unwrap().iter().filter_map(|c| c["path"].as_str()).collect();
    assert!(paths.contains(&"service[tcp/10.10.0.100/80].client_rate"), "{v}");
    let table = srv.state.running().shared().load_full();
    assert_eq!((table.services()[0].admission.client_rate, table.services()[0].admission.client_burst), (7, 7));
}

/// `syn_proxy` through the service bodies and `PUT /v1/config`: the default in effect
/// (auto for a NAT TCP service), changed live, `null` back to the default, refused with
/// the field named for a DR server, shown and published.
#[tokio::test]
async fn syn_proxy_applies_live_and_shows() {
    use rvs_dataplane::synproxy::SynProxyMode;
    let srv = serve(CONFIG).await;
    let (_, v) = call(&srv, "GET", SVC, None).await;
    assert_eq!(v["syn_proxy"], "auto", "{v}");
    assert_eq!(srv.state.running().shared().load_full().services()[0].syn_proxy.mode, SynProxyMode::Auto);

    let (code, v) = call(&srv, "PUT", SVC, Some(r#"{"syn_proxy":"always"}"#)).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["syn_proxy"], "always");
    assert!(config_text(&srv).await.contains("syn_proxy = \"always\""));
    assert_eq!(srv.state.running().shared().load_full().services()[0].syn_proxy.mode, SynProxyMode::Always);

    let (code, v) = call(&srv, "PUT", SVC, Some(r#"{"syn_proxy":"sometimes"}"#)).await;
    assert_eq!(code, 422, "{v}");
    assert!(v["field"].as_str().is_some_and(|f| f.ends_with("syn_proxy")), "{v}");
    assert_eq!(srv.state.running().shared().load_full().services()[0].syn_proxy.mode, SynProxyMode::Always);

    let (code, v) = call(&srv, "PUT", SVC, Some(r#"{"syn_proxy":null}"#)).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["syn_proxy"], "auto");
    assert!(!config_text(&srv).await.contains("syn_proxy"));

    // A new service with a DR server cannot be proxied.
    let body = r#"{"protocol":"tcp","address":"10.10.0.101","port":80,"syn_proxy":"always",
        "servers":[{"address":"10.20.0.11","forward":"dr"}]}"#;
    let (code, v) = call(&srv, "POST", "/v1/services", Some(body)).await;
    assert_eq!(code, 422, "{v}");
    assert!(v["field"].as_str().is_some_and(|f| f.ends_with("syn_proxy")), "{v}");

    let file = CONFIG.replacen("scheduler = \"wrr\"", "scheduler = \"wrr\"\nsyn_proxy = \"off\"", 1).replacen(
        "[dataplane]",
        "[dataplane]\nsyn_proxy_threshold = 64",
        1,
    );
    let (code, v) = call(&srv, "PUT", "/v1/config", Some(&file)).await;
    assert_eq!(code, 200, "{v}");
    let paths: Vec<&str> = v["changes"].as_array().unwrap().iter().filter_map(|c| c["path"].as_str()).collect();
    assert!(paths.contains(&"service[tcp/10.10.0.100/80].syn_proxy"), "{v}");
    assert!(paths.contains(&"dataplane.syn_proxy_threshold"), "{v}");
    let p = srv.state.running().shared().load_full().services()[0].syn_proxy;
    assert_eq!((p.mode, p.threshold), (SynProxyMode::Off, 64));
}

/// `quorum` and `unknown_flow` through the service bodies: shown with their defaults,
/// changed live (the table's service gets the new `unknown_flow`), `null` back to the
/// defaults, refused naming the field (a quorum above the servers, `schedule` on a NAT
/// service or a non-consistent scheduler), nothing changed by a refusal.
#[tokio::test]
async fn quorum_and_unknown_flow_apply_live_and_show() {
    use rvs_dataplane::types::UnknownFlow;
    let srv = serve(CONFIG).await;
    let (_, v) = call(&srv, "GET", SVC, None).await;
    assert_eq!((v["quorum"].as_u64(), v["unknown_flow"].as_str()), (Some(1), Some("drop")), "{v}");

    let (code, v) = call(&srv, "PUT", SVC, Some(r#"{"quorum":2}"#)).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["quorum"], 2);
    assert!(config_text(&srv).await.contains("quorum = 2"));
    let (code, v) = call(&srv, "PUT", SVC, Some(r#"{"quorum":3}"#)).await;
    assert_eq!(code, 422, "{v}");
    assert!(v["field"].as_str().is_some_and(|f| f.ends_with("quorum")), "{v}");
    let (code, v) = call(&srv, "PUT", SVC, Some(r#"{"unknown_flow":"schedule"}"#)).await;
    assert_eq!(code, 422, "NAT servers: {v}");
    assert!(v["field"].as_str().is_some_and(|f| f.ends_with("unknown_flow")), "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("DR or IPIP")), "{v}");
    let (code, v) = call(&srv, "PUT", SVC, Some(r#"{"quorum":null}"#)).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["quorum"], 1);
    assert!(!config_text(&srv).await.contains("quorum"));

    // A DR service with mh takes it; with wrr it is refused.
    let body = r#"{"protocol":"tcp","address":"10.10.0.101","port":80,"scheduler":"mh","unknown_flow":"schedule",
        "servers":[{"address":"10.20.0.11","forward":"dr"},{"address":"10.20.0.12","forward":"dr"}]}"#;
    let (code, v) = call(&srv, "POST", "/v1/services", Some(body)).await;
    assert_eq!(code, 201, "{v}");
    let dr = "/v1/services/tcp/10.10.0.101/80";
    let (_, v) = call(&srv, "GET", dr, None).await;
    assert_eq!(v["unknown_flow"], "schedule", "{v}");
    let table = srv.state.running().shared().load_full();
    let svc = table.services().iter().find(|s| s.key.vip == std::net::Ipv4Addr::new(10, 10, 0, 101)).unwrap();
    assert_eq!(svc.unknown_flow, UnknownFlow::Schedule);
    let (code, v) = call(&srv, "PUT", dr, Some(r#"{"scheduler":"wrr"}"#)).await;
    assert_eq!(code, 422, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("consistent scheduler")), "{v}");
    let (code, v) = call(&srv, "PUT", dr, Some(r#"{"unknown_flow":null}"#)).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["unknown_flow"], "drop");
}
