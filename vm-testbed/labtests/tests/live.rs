//! Live reconfiguration in the lab: changes under load lose nothing, a deleted server's
//! established flows behave as `expire_nodest_conn` says, a denied client address gets no
//! answer while another is served, and an allow list and a service `maxconn` refuse
//! what they must, each counted under its drop reason.
//!
//! Run by vm-testbed/test.sh (`--ignored --test-threads=1`); each test builds the lab,
//! starts NAT real servers and rvsd with config/lab-nat.toml, and tears everything down
//! when its guard drops, also on failure.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rvs_labtests::{drop_count, ns_exec, repo_root, status, tool, Lab, Mode};

const API: &str = "http://127.0.0.1:8700";
const SVC: &str = "/v1/services/tcp/10.10.0.100/80";

/// One REST call from inside lab-lb1; returns (HTTP status, body).
fn rest(method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let url = format!("{API}{path}");
    let mut args = vec!["curl", "-s", "-o", "/dev/stdout", "-w", "\n%{http_code}", "-X", method, url.as_str()];
    if let Some(b) = body {
        args.extend(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    let out = ns_exec("lab-lb1", &args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn start_nat() -> Lab {
    let mut lab = Lab::up_without_lb();
    lab.start_real_servers(Mode::Nat);
    lab.start_lb("lb1", Some(&repo_root().join("config/lab-nat.toml")));
    lab
}

/// A wrk summary: requests done, socket errors, non-2xx/3xx answers.
fn parse_wrk(text: &str) -> (u64, u64, u64) {
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // "  Socket errors: connect 0, read 3, write 0, timeout 0"
    let socket_errors = text
        .lines()
        .find(|l| l.contains("Socket errors:"))
        .map(|l| l.split(',').filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    let non_2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses:"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    (requests, socket_errors, non_2xx)
}

#[test]
fn wrk_parser_reads_errors() {
    let text = "  1000 requests in 20.00s, 1.2MB read\n  Socket errors: connect 0, read 3, write 1, timeout 2\n  Non-2xx or 3xx responses: 4\n";
    assert_eq!(parse_wrk(text), (1000, 6, 4));
    assert_eq!(parse_wrk("  77 requests in 1.00s, 1KB read\n"), (77, 0, 0));
}

#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn changes_under_load_lose_no_request() {
    let _lab = start_nat();
    // wrk keeps 8 connections alive for 20 s through the VIP...
    let wrk = Command::new("ip")
        .args(["netns", "exec", "lab-client", "wrk", "-t", "2", "-c", "8", "-d", "20s", "http://10.10.0.100/"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wrk runs (apt-get install wrk; setup-host.sh installs it)");
    // ...while weights change ten times a second and a server leaves and comes back.
    let done = Arc::new(AtomicBool::new(false));
    let changer = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            let start = Instant::now();
            let mut i = 0u32;
            while start.elapsed() < Duration::from_secs(19) && !done.load(Ordering::Relaxed) {
                let (code, body) = match i % 20 {
                    7 => rest("DELETE", &format!("{SVC}/servers/10.20.0.13/80"), None),
                    17 => rest(
                        "POST",
                        &format!("{SVC}/servers"),
                        Some(r#"{"address":"10.20.0.13","port":80,"weight":1,"forward":"nat"}"#),
                    ),
                    _ => rest(
                        "PUT",
                        &format!("{SVC}/servers/10.20.0.11/80"),
                        Some(&format!(r#"{{"weight":{}}}"#, 1 + i % 5)),
                    ),
                };
                if (200..300).contains(&code) {
                    ok += 1;
                } else {
                    failed.push(format!("change {i}: HTTP {code} {body}"));
                }
                i += 1;
                thread::sleep(Duration::from_millis(100));
            }
            (ok, failed)
        })
    };
    let out = wrk.wait_with_output().expect("wrk finishes");
    done.store(true, Ordering::Relaxed);
    let (changes_ok, changes_failed) = changer.join().expect("changer thread");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{text}");
    let (requests, socket_errors, non_2xx) = parse_wrk(&text);
    assert!(out.status.success(), "wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(changes_failed.is_empty(), "some changes were refused: {changes_failed:?}");
    assert!(changes_ok >= 150, "only {changes_ok} changes in 19 s");
    assert!(requests > 1000, "wrk did only {requests} requests:\n{text}");
    assert_eq!((socket_errors, non_2xx), (0, 0), "requests failed during the changes:\n{text}");
    let st = status();
    assert_eq!(drop_count(&st, "tcp_no_conn"), 0, "a flow lost its connection entry: {st:#}");
}

/// Holds one keep-alive connection through the VIP; each `ask` sends a request on it.
struct KeepAlive {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl KeepAlive {
    fn open() -> KeepAlive {
        let mut child = Command::new("ip")
            .args(["netns", "exec", "lab-client", "python3"])
            .arg(tool("keepalive_client.py"))
            .args(["--timeout", "3", "http://10.10.0.100/"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("keepalive_client.py runs");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        KeepAlive { child, out }
    }
    fn ask(&mut self) -> String {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"go\n").and_then(|()| stdin.flush()).expect("write to the client");
        let mut line = String::new();
        self.out.read_line(&mut line).expect("read the client's answer");
        line.trim().to_string()
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server (`10.20.0.1N`) that answered `rsN ...`.
fn server_of(answer: &str) -> String {
    let n = answer.strip_prefix("rs").and_then(|s| s.chars().next()).unwrap_or('?');
    format!("10.20.0.1{n}")
}

#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn deleted_server_flows_follow_expire_nodest_conn() {
    let _lab = start_nat();

    // Default (IPVS's too): the deleted server's established flow goes on quietly.
    let mut c = KeepAlive::open();
    let first = c.ask();
    assert!(first.starts_with("rs"), "no answer through the VIP: {first}");
    let server = server_of(&first);
    let (code, body) = rest("DELETE", &format!("{SVC}/servers/{server}/80"), None);
    assert_eq!(code, 204, "{body}");
    let again = c.ask();
    assert_eq!(again.split_whitespace().next(), first.split_whitespace().next(), "flow moved or broke: {again}");
    drop(c);
    // Put it back for the second half.
    let (code, body) = rest(
        "POST",
        &format!("{SVC}/servers"),
        Some(&format!(r#"{{"address":"{server}","port":80,"forward":"nat"}}"#)),
    );
    assert_eq!(code, 201, "{body}");

    // expire_nodest_conn = true: the next packet of such a flow removes it and is dropped.
    let (code, config) = rest("GET", "/v1/config", None);
    assert_eq!(code, 200);
    let changed = if config.contains("expire_nodest_conn") {
        config.replace("expire_nodest_conn = false", "expire_nodest_conn = true")
    } else {
        config.replacen("[dataplane]\n", "[dataplane]\nexpire_nodest_conn = true\n", 1)
    };
    let out = Command::new("ip")
        .args(["netns", "exec", "lab-lb1", "curl", "-s", "-w", "\n%{http_code}", "-X", "PUT", "--data-binary", "@-"])
        .arg(format!("{API}/v1/config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            ch.stdin.as_mut().expect("stdin").write_all(changed.as_bytes())?;
            drop(ch.stdin.take());
            ch.wait_with_output()
        })
        .expect("PUT /v1/config");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.trim_end().ends_with("200"), "PUT /v1/config with expire_nodest_conn = true: {text}");

    let before = drop_count(&status(), "conn_server_removed");
    let mut c = KeepAlive::open();
    let first = c.ask();
    assert!(first.starts_with("rs"), "no answer through the VIP: {first}");
    let server = server_of(&first);
    let (code, body) = rest("DELETE", &format!("{SVC}/servers/{server}/80"), None);
    assert_eq!(code, 204, "{body}");
    let after_delete = c.ask();
    assert!(after_delete.starts_with("ERROR"), "the flow to a deleted server still works: {after_delete}");
    let removed = drop_count(&status(), "conn_server_removed");
    assert!(removed > before, "conn_server_removed did not count the dropped packets ({before} -> {removed})");
}

/// One `GET /` through the VIP from the client's address `from` (the lab client has
/// 10.10.0.2 to .9); the answer (`rs1 ...`) or why there was none.
fn get_from(from: &str, timeout_s: u32) -> Result<String, String> {
    let t = timeout_s.to_string();
    let out = ns_exec("lab-client", &["curl", "-sS", "-m", &t, "--interface", from, "http://10.10.0.100/"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() && text.starts_with("rs") {
        Ok(text)
    } else {
        Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn denied_client_gets_no_answer_while_another_is_served() {
    let _lab = start_nat();
    assert!(get_from("10.10.0.3", 5).is_ok(), "served before any list");

    // Live: deny one client address; the other is still served.
    let (code, body) = rest("PUT", SVC, Some(r#"{"deny":["10.10.0.3/32"]}"#));
    assert_eq!(code, 200, "{body}");
    let before = drop_count(&status(), "acl_denied");
    let served = get_from("10.10.0.2", 5);
    assert!(served.is_ok(), "10.10.0.2 is not denied: {served:?}");
    let denied = get_from("10.10.0.3", 3);
    assert!(denied.is_err(), "10.10.0.3 is denied and was answered: {denied:?}");
    let after = drop_count(&status(), "acl_denied");
    assert!(after > before, "acl_denied did not count the denied SYNs ({before} -> {after})");
    let (code, body) = rest("GET", SVC, None);
    assert_eq!(code, 200);
    let svc: serde_json::Value = serde_json::from_str(&body).expect("service JSON");
    assert!(svc["stats"]["acl_denied"].as_u64().unwrap_or(0) > 0, "the service counts its refusals: {body}");

    // Lifted again: served.
    let (code, body) = rest("PUT", SVC, Some(r#"{"deny":[]}"#));
    assert_eq!(code, 200, "{body}");
    let back = get_from("10.10.0.3", 5);
    assert!(back.is_ok(), "10.10.0.3 is allowed again: {back:?}");
}

/// The service's counters (`GET` of the service, `stats`).
fn service_stats() -> serde_json::Value {
    let (code, body) = rest("GET", SVC, None);
    assert_eq!(code, 200, "{body}");
    let svc: serde_json::Value = serde_json::from_str(&body).expect("service JSON");
    svc["stats"].clone()
}

#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn allow_list_and_maxconn_refuse_with_their_counters() {
    let _lab = start_nat();

    // First, on the fresh rvsd (no connection yet; closed ones count until they expire,
    // as IPVS's): maxconn 1 while one connection is held open (established, idle): a new
    // client is refused, counted as service_maxconn; lifting the limit serves it.
    let (code, body) = rest("PUT", SVC, Some(r#"{"maxconn":1}"#));
    assert_eq!(code, 200, "{body}");
    let mut held = Command::new("ip")
        .args(["netns", "exec", "lab-client", "python3", "-c"])
        .arg(
            "import socket,sys,time\n\
             s=socket.create_connection(('10.10.0.100',80),timeout=5,source_address=('10.10.0.5',0))\n\
             print('connected',flush=True)\n\
             time.sleep(60)",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 in lab-client");
    let mut line = String::new();
    BufReader::new(held.stdout.take().expect("piped")).read_line(&mut line).expect("read the holder's line");
    if line.trim() != "connected" {
        let _ = held.kill();
        let out = held.wait_with_output().expect("the holder's output");
        panic!("the held connection was not established: {}", String::from_utf8_lossy(&out.stderr));
    }
    let before = drop_count(&status(), "service_maxconn");
    let refused = get_from("10.10.0.6", 3);
    let after = drop_count(&status(), "service_maxconn");
    let stats = service_stats();
    let (code, body) = rest("PUT", SVC, Some(r#"{"maxconn":0}"#));
    let served = get_from("10.10.0.6", 5);
    let _ = held.kill();
    let _ = held.wait();
    assert_eq!(code, 200, "{body}");
    assert!(refused.is_err(), "maxconn 1 with one connection held, and a second was answered: {refused:?}");
    assert!(after > before, "service_maxconn did not count the refused SYNs ({before} -> {after})");
    assert!(stats["service_maxconn"].as_u64().unwrap_or(0) > 0, "the service counts its refusals: {stats}");
    assert!(served.is_ok(), "served once the limit is lifted: {served:?}");

    // An allow list of one client: the others get no answer, counted as acl_denied.
    let (code, body) = rest("PUT", SVC, Some(r#"{"allow":["10.10.0.2/32"]}"#));
    assert_eq!(code, 200, "{body}");
    let before = drop_count(&status(), "acl_denied");
    let served = get_from("10.10.0.2", 5);
    assert!(served.is_ok(), "10.10.0.2 is on the allow list: {served:?}");
    let refused = get_from("10.10.0.4", 3);
    assert!(refused.is_err(), "10.10.0.4 is not on the allow list and was answered: {refused:?}");
    let after = drop_count(&status(), "acl_denied");
    assert!(after > before, "acl_denied did not count the refused SYNs ({before} -> {after})");
    let (code, body) = rest("PUT", SVC, Some(r#"{"allow":[]}"#));
    assert_eq!(code, 200, "{body}");
    let back = get_from("10.10.0.4", 5);
    assert!(back.is_ok(), "an empty allow list allows all: {back:?}");
}
