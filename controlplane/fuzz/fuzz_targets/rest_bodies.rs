//! The REST API on arbitrary requests: rvsd's own router (`api::router`, the one the
//! control thread serves), over a `Running` built from a configuration with a TCP and a
//! UDP service, called in memory (no socket) with requests whose method, path, query and
//! body come from the input. Every body type the API reads goes through it: service
//! create (`POST /v1/services`) and update (`PUT`), server add and update, `PUT
//! /v1/config` (TOML), `PUT /v1/timeouts`, the admin states, and the query strings.
//!
//! Properties, after every request:
//! * no panic, and no 5xx (a standalone state has no workers and no HA, so nothing can be
//!   unavailable): bad input is a 4xx;
//! * every 4xx is the API's error document (`{"error": "...", ...}` with a non-empty
//!   message);
//! * a refused request changes nothing: the running configuration's text and generation
//!   are those from before it;
//! * the running configuration is always valid: its text parses and validates;
//! * `GET /v1/config` answers 200 with exactly that text.
//!
//! Input: up to 8 requests separated by NUL bytes; each is `METHOD PATH[?QUERY]`, a
//! newline, then the body (possibly empty). A request line that is not a valid method and
//! URI is skipped.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use rvs_controlplane::api::{self, AppState, ErrorBody};
use rvs_controlplane::config::Config;
use rvs_controlplane::runtime::Running;
use tower::ServiceExt;

/// The starting configuration: one NAT service over TCP with two servers, one UDP
/// service with persistence over a tunnel; no Full-NAT, so building a state is cheap (a
/// `PUT /v1/config` in the input may still ask for it).
const CONFIG: &str = r#"
[dataplane]
workers = 1
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
forward = "tunnel"
"#;

/// Largest body read back from an answer.
const MAX_ANSWER: usize = 16 << 20;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a tokio runtime"))
}

/// The configuration text and generation, what a refused request must leave alone.
fn snapshot(st: &AppState) -> (String, u64) {
    let r = st.running();
    (r.text().to_string(), r.generation())
}

async fn call(router: &axum::Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let resp = router.clone().oneshot(req).await.unwrap_or_else(|e| match e {});
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), MAX_ANSWER).await.expect("the answer's body");
    (status, body.to_vec())
}

async fn program(data: &[u8]) {
    let running = Running::from_toml(CONFIG, 1).expect("the starting configuration");
    let state = Arc::new(AppState::standalone(running));
    let router = api::router(Arc::clone(&state));
    for raw in data.split(|&b| b == 0).take(8) {
        let (line, body) = match raw.iter().position(|&b| b == b'\n') {
            Some(i) => (&raw[..i], &raw[i + 1..]),
            None => (raw, &raw[raw.len()..]),
        };
        let Ok(line) = std::str::from_utf8(line) else { continue };
        let Some((method, uri)) = line.trim_end_matches('\r').split_once(' ') else { continue };
        let Ok(req) = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_vec()))
        else {
            continue;
        };
        let before = snapshot(&state);
        let (status, answer) = call(&router, req).await;
        let what = format!("{method} {uri} -> {status}: {}", String::from_utf8_lossy(&answer));
        assert!(!status.is_server_error(), "{what}");
        if status.is_client_error() {
            let e: ErrorBody = serde_json::from_slice(&answer)
                .unwrap_or_else(|e| panic!("a 4xx that is not an error document ({e}): {what}"));
            assert!(!e.error.trim().is_empty(), "an error without a message: {what}");
            assert_eq!(snapshot(&state), before, "a refused request changed the configuration: {what}");
        }
        let (text, _) = snapshot(&state);
        if let Err(e) = Config::from_toml(&text) {
            panic!("after {what}\nthe running configuration is invalid: {e}\n{text}");
        }
        let get = Request::builder().method("GET").uri("/v1/config").body(Body::empty()).expect("a request");
        let (status, answer) = call(&router, get).await;
        assert_eq!(status, StatusCode::OK, "GET /v1/config after {what}");
        assert_eq!(answer, text.as_bytes(), "GET /v1/config differs from the running text after {what}");
    }
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(program(data));
});
