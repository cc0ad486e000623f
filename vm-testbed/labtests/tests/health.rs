//! End-to-end tests of the health prober in the netns lab, in every forwarding mode: rvsd probes
//! the real servers over its DPDK back port (from 10.20.0.1, source ports 61000-61999) and
//! takes a failed server out of scheduling.
//!
//! Each test starts the mode's real servers (`lab.sh rs-start MODE`) and rvsd with the mode's
//! lab config (one worker; NAT also with two) plus health checks, written to
//! `vm-testbed/run/health-<mode>-<N>w.toml`:
//! - TCP VIP:80 (rr over rs1..rs3): `kind = "http"`, `path = "/health"`, interval 500 ms,
//!   timeout 300 ms, rise 2, fall 2, quiesce. rs_server.py answers `/health` with 503 while
//!   `/tmp/rvs-lab-<name>.unhealthy` exists.
//! - UDP VIP:53 (rr): `kind = "tcp"` on port 9000, where each server runs a socat listener,
//!   `on_down = "remove"`.
//!
//! Then, in order:
//! - (a) every server turns `up` in `/v1/services` and takes connections;
//! - (b) keep-alive connections are opened until one is held by rs2;
//! - (c) rs2's `/health` is made to fail: within interval × fall + timeout (+ slack for the
//!   probe schedule's jitter and the lab's 2 CPUs) rs2 is `down` with `effective_weight` 0;
//!   the detection time is printed; `/v1/status` shows it down with weight 0, `/metrics` has
//!   `rvs_server_up{...} 0`, `rvsadm -L` (next to `$RVSD_BIN`, if built) lists weight 0; 30 new connections reach only rs1 and rs3; the
//!   established connection to rs2 still gets answers (quiesce);
//! - (d) rs2's `/health` recovers: rs2 is `up` again after rise successes and takes new
//!   connections;
//! - (e) rs3's TCP listener on :9000 is killed: rs3 goes `down` in the UDP service and leaves
//!   its table (`/v1/status`), and six UDP flows are answered by rs1 and rs2 only;
//! - (f) the HAProxy-style agent (`[service.agent]` on TCP :80, port 9999: a socat that answers
//!   the content of `/tmp/rvs-lab-<name>.agent`, else `up`) of rs1 answers `drain`: rs1 keeps
//!   its check `up` with `effective_weight` 0 and takes no new connection; back to `up`, its
//!   weight returns;
//! - (g) rs2 is put in admin `drain` over REST: its check stays `up`, `effective_weight` 0, no
//!   new connection reaches it; a bad admin word is refused naming `admin`; `rvsadm admin ...
//!   ready` (REST when rvsadm is not built) brings it back to weight 1 and new connections.
//!
//! `health_nat_extras` (NAT, one worker, `vm-testbed/run/health-extras-nat.toml`) then checks, in
//! about 4 s after rvsd starts: `scheduler = "system-load"` on VIP:8080 over `rvs-agent` on each
//! server (:9998, `--override /tmp/rvs-lab-<name>.sysload` holding 100% / 50% / 25%): 700 new
//! connections split 4:2:1 within 10 %; on VIP:80, rs1 with rs2 as `backup = true` and rs3 as
//! `sorry_server`: only rs1 takes new connections, then only rs2 once rs1's `/health` fails, then
//! only rs3 once rs2's fails too, then rs1 again; on VIP:8081 a `command` check (a script in the
//! run folder exiting with the number in `health-cmd-<ip>`): exit 1 takes rs2 down, exit 7 sets
//! rs1's weight to 5; on UDP VIP:53 a `udp` check of a socat echo on :5300: killing rs3's echo
//! takes rs3 down ("port unreachable") and its new flows go to rs1 and rs2.
//!
//! `health_ipv6_nat` (NAT, one worker, `vm-testbed/run/health-ipv6-nat.toml`): an IPv6
//! service [2001:db8:10::100]:80 over the servers' IPv6 addresses with the same `http`
//! check, probed from rvsd's back IPv6 address through the data path: all three turn `up`;
//! rs2's `/health` failing takes it `down` (weight 0) and 12 new IPv6 connections reach
//! only rs1 and rs3; recovered, it is `up` again. The workers' `probe_tx`/`probe_rx` rose.
//!
//! `#[ignore]`: needs root and the lab; `vm-testbed/test.sh` runs it with the other lab tests.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use rvs_labtests::*;
use serde_json::Value;

const INTERVAL_MS: u64 = 500;
const TIMEOUT_MS: u64 = 300;
const FALL: u64 = 2;
const RISE: u64 = 2;

/// What the agent on server `name` answers (`up` when the file is absent).
fn agent_file(name: &str) -> String {
    format!("/tmp/rvs-lab-{name}.agent")
}

fn flag(name: &str) -> String {
    format!("/tmp/rvs-lab-{name}.unhealthy")
}

/// The mode's lab config with the health checks of the module docs.
fn health_config(mode: Mode, workers: u32) -> std::path::PathBuf {
    let text = std::fs::read_to_string(mode.config(workers)).expect("the mode's lab config");
    let http = format!(
        "scheduler = \"rr\"\n[service.health]\nkind = \"http\"\npath = \"/health\"\ninterval = \"{INTERVAL_MS}ms\"\n\
         timeout = \"{TIMEOUT_MS}ms\"\nrise = {RISE}\nfall = {FALL}\non_down = \"quiesce\"\n\
         [service.agent]\nport = 9999\ninterval = \"{INTERVAL_MS}ms\"\ntimeout = \"{TIMEOUT_MS}ms\"\n"
    );
    let tcp = format!(
        "scheduler = \"rr\"\n[service.health]\nkind = \"tcp\"\nport = 9000\ninterval = \"{INTERVAL_MS}ms\"\n\
         timeout = \"{TIMEOUT_MS}ms\"\nrise = {RISE}\nfall = {FALL}\non_down = \"remove\"\n"
    );
    // The first rr service is TCP :80, the second UDP :53 (config/lab-<mode>.toml).
    let first = text.find("scheduler = \"rr\"\n").expect("an rr service");
    let (head, rest) = text.split_at(first);
    let rest = rest.replacen("scheduler = \"rr\"\n", &http, 1);
    let second = rest[http.len()..].find("scheduler = \"rr\"\n").expect("a second rr service") + http.len();
    let (mid, tail) = rest.split_at(second);
    let text = format!("{head}{mid}{}", tail.replacen("scheduler = \"rr\"\n", &tcp, 1));
    let path = run_dir().join(format!("health-{}-{workers}w.toml", mode.name()));
    std::fs::write(&path, text).expect("write the health config");
    path
}

fn services() -> Value {
    let out = ns_exec("lab-lb1", &["curl", "-sS", "-m", "2", "http://127.0.0.1:8700/v1/services"]);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// The JSON of server `ip` in service `proto` VIP:`port`.
fn server_json(all: &Value, proto: &str, port: u16, ip: &str) -> Value {
    server_json_at(all, proto, VIP, port, ip)
}

/// The JSON of server `ip` in service `proto` `vip`:`port`.
fn server_json_at(all: &Value, proto: &str, vip: &str, port: u16, ip: &str) -> Value {
    let list = all.as_array().cloned().or_else(|| all["services"].as_array().cloned()).unwrap_or_default();
    for s in list {
        if s["protocol"] == proto && s["address"] == vip && s["port"] == port {
            for r in s["servers"].as_array().cloned().unwrap_or_default() {
                if r["address"] == ip {
                    return r;
                }
            }
        }
    }
    Value::Null
}

fn state_of(proto: &str, port: u16, ip: &str) -> (String, i64) {
    let r = server_json(&services(), proto, port, ip);
    (r["health"]["state"].as_str().unwrap_or("?").to_string(), r["effective_weight"].as_i64().unwrap_or(-1))
}

/// Keep-alive HTTP connections from lab-client, driven line by line: `open N` opens N
/// connections and prints the server of each; `again` asks on each again.
struct KeepAlive {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

const KEEPALIVE_PY: &str = r#"
import socket, sys
conns = []
def ask(c):
    c.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += c.recv(4096)
    head, body = data.split(b"\r\n\r\n", 1)
    n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < n:
        body += c.recv(4096)
    return body.decode().split()[0]
for line in sys.stdin:
    w = line.split()
    try:
        if w[0] == "open":
            for _ in range(int(w[1])):
                c = socket.create_connection(("10.10.0.100", 80), timeout=5)
                conns.append(c)
                print(ask(c), end=" ")
        else:
            for c in conns:
                print(ask(c), end=" ")
    except Exception as e:
        print("ERROR", e, end=" ")
    print(flush=True)
"#;

impl KeepAlive {
    fn start() -> KeepAlive {
        let mut child = Command::new("ip")
            .args(["netns", "exec", "lab-client", "python3", "-c", KEEPALIVE_PY])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the keep-alive client");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        KeepAlive { child, stdin, stdout }
    }

    fn ask(&mut self, line: &str) -> Vec<String> {
        writeln!(self.stdin, "{line}").expect("write to the keep-alive client");
        let mut out = String::new();
        self.stdout.read_line(&mut out).expect("read the keep-alive client");
        out.split_whitespace().map(str::to_string).collect()
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stops the socat listeners (processes outlive their namespace) when dropped.
struct Listeners;

impl Drop for Listeners {
    fn drop(&mut self) {
        for (i, name) in REAL_SERVER_NAMES.iter().enumerate() {
            for what in ["socat", "agent"] {
                let pidfile = run_dir().join(format!("health-{what}-{i}.pid"));
                if let Ok(pid) = std::fs::read_to_string(&pidfile) {
                    let _ = Command::new("kill").arg(pid.trim()).status();
                    let _ = std::fs::remove_file(pidfile);
                }
            }
            let _ = std::fs::remove_file(agent_file(name));
        }
    }
}

fn servers_of(answers: &[Result<Who, String>]) -> Vec<String> {
    answers.iter().map(|a| a.as_ref().map_or_else(|e| format!("ERR({e})"), |w| w.server.clone())).collect()
}

fn wait_state(proto: &str, port: u16, ip: &str, want: &str, within: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let ok = wait_until(within, Duration::from_millis(50), || {
        let (state, weight) = state_of(proto, port, ip);
        state == want && (want != "down" || weight == 0)
    });
    ok.then(|| t0.elapsed())
}

fn run(mode: Mode, workers: u32) {
    for n in REAL_SERVER_NAMES {
        let _ = std::fs::remove_file(flag(n));
    }
    let mut lab = Lab::up_without_lb();
    lab.start_real_servers(mode);
    let _listeners = Listeners;
    for (i, ns) in ["lab-rs1", "lab-rs2", "lab-rs3"].iter().enumerate() {
        let pidfile = run_dir().join(format!("health-socat-{i}.pid"));
        let script = format!(
            "socat TCP-LISTEN:9000,fork,reuseaddr EXEC:/bin/true >/dev/null 2>&1 & echo $! > {}",
            pidfile.display()
        );
        ns_exec_ok(ns, &["sh", "-c", &script]);
        let pidfile = run_dir().join(format!("health-agent-{i}.pid"));
        let script = format!(
            "socat TCP-LISTEN:9999,fork,reuseaddr SYSTEM:\"cat {} 2>/dev/null || echo up\" >/dev/null 2>&1 & echo $! > {}",
            agent_file(REAL_SERVER_NAMES[i]),
            pidfile.display()
        );
        ns_exec_ok(ns, &["sh", "-c", &script]);
    }
    lab.start_lb("lb1", Some(&health_config(mode, workers)));
    let url = format!("http://{VIP}/");
    let mut failures = Vec::new();

    // (a) all up.
    for ip in REAL_SERVER_IPS {
        if wait_state("tcp", 80, ip, "up", Duration::from_secs(10)).is_none() {
            failures.push(format!("(a) {ip} not up on tcp :80: {:?}", state_of("tcp", 80, ip)));
        }
    }
    assert!(failures.is_empty(), "{mode:?}: {failures:#?}\n{:#}", services());

    // (b) one keep-alive connection per server.
    let mut ka = KeepAlive::start();
    // With two workers each runs its own rr over the flows it owns: open until rs2 holds one.
    let mut held = Vec::new();
    while !held.iter().any(|s| s == "rs2") && held.len() < 12 {
        held.extend(ka.ask("open 1"));
    }
    assert!(held.iter().any(|s| s == "rs2"), "{mode:?}: no keep-alive connection reached rs2: {held:?}");

    // (c) rs2 fails its check.
    let budget = Duration::from_millis(INTERVAL_MS * FALL + TIMEOUT_MS);
    std::fs::write(flag("rs2"), b"").expect("raise rs2's unhealthy flag");
    let detect = wait_state("tcp", 80, REAL_SERVER_IPS[1], "down", budget + Duration::from_secs(2));
    match detect {
        Some(d) => {
            println!(
                "{mode:?}: rs2 detected down after {} ms (interval×fall+timeout = {} ms)",
                d.as_millis(),
                budget.as_millis()
            );
            if d > budget + Duration::from_millis(INTERVAL_MS) {
                failures.push(format!("(c) detection took {d:?}, budget {budget:?} (+ one interval of jitter)"));
            }
        }
        None => failures.push(format!("(c) rs2 never went down: {:?}", state_of("tcp", 80, REAL_SERVER_IPS[1]))),
    }
    let metrics = ns_exec("lab-lb1", &["curl", "-sS", "-m", "2", "http://127.0.0.1:8700/metrics"]);
    let metrics = String::from_utf8_lossy(&metrics.stdout).into_owned();
    let up_line = format!("rvs_server_up{{protocol=\"tcp\",vip=\"{VIP}\",port=\"80\",server=\"10.20.0.12:80\"}} 0");
    if !metrics.contains(&up_line) {
        failures.push(format!("(c) /metrics lacks `{up_line}`"));
    }
    let st = status();
    let rs2 = st["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["protocol"] == "tcp" && s["port"] == 80)
        .flat_map(|s| s["servers"].as_array().cloned().unwrap_or_default())
        .find(|r| r["address"] == "10.20.0.12");
    if rs2.as_ref().map(|r| (r["weight"].as_i64(), r["health"]["state"].as_str())) != Some((Some(0), Some("down"))) {
        failures.push(format!("(c) /v1/status shows rs2 as {rs2:?}, not weight 0 and down"));
    }
    let rvsadm = std::path::Path::new(&std::env::var("RVSD_BIN").unwrap_or_default()).with_file_name("rvsadm");
    if rvsadm.exists() {
        let out = ns_exec_ok("lab-lb1", &[rvsadm.to_str().unwrap_or("rvsadm"), "-L", "-n", "-t", &format!("{VIP}:80")]);
        let line = out.lines().find(|l| l.contains("10.20.0.12:80")).unwrap_or_default().to_string();
        println!("{mode:?}: rvsadm -L: {}", line.trim());
        if line.split_whitespace().nth(3) != Some("0") {
            failures.push(format!("(c) rvsadm -L does not list rs2 with weight 0 in effect: {line:?}"));
        }
    }
    let after = servers_of(&http_who_many("lab-client", &url, 30));
    if after.iter().any(|s| s != "rs1" && s != "rs3") {
        failures.push(format!("(c) new connections reached someone else than rs1/rs3: {after:?}"));
    }
    let again = ka.ask("again");
    if again != held {
        failures.push(format!("(c) established connections changed under quiesce: {held:?} then {again:?}"));
    }

    // (d) rs2 recovers.
    let _ = std::fs::remove_file(flag("rs2"));
    match wait_state("tcp", 80, REAL_SERVER_IPS[1], "up", Duration::from_millis(INTERVAL_MS * (RISE + 2) + 2000)) {
        Some(d) => println!("{mode:?}: rs2 back up after {} ms", d.as_millis()),
        None => failures.push(format!("(d) rs2 did not come back: {:?}", state_of("tcp", 80, REAL_SERVER_IPS[1]))),
    }
    let back = servers_of(&http_who_many("lab-client", &url, 9));
    if !back.iter().any(|s| s == "rs2") {
        failures.push(format!("(d) rs2 takes no new connection after recovery: {back:?}"));
    }

    // (e) rs3's TCP listener stops.
    let pidfile = run_dir().join("health-socat-2.pid");
    let pid = std::fs::read_to_string(&pidfile).unwrap_or_default();
    ns_exec_ok("lab-rs3", &["kill", pid.trim()]);
    match wait_state("udp", 53, REAL_SERVER_IPS[2], "down", budget + Duration::from_secs(2)) {
        Some(d) => println!("{mode:?}: rs3's stopped TCP listener detected after {} ms", d.as_millis()),
        None => {
            failures.push(format!("(e) rs3 never went down on udp :53: {:?}", state_of("udp", 53, REAL_SERVER_IPS[2])))
        }
    }
    let table_servers: Vec<Value> = status()["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["protocol"] == "udp" && s["port"] == 53)
        .flat_map(|s| s["servers"].as_array().cloned().unwrap_or_default())
        .collect();
    if table_servers.iter().any(|r| r["address"] == "10.20.0.13") || table_servers.len() != 2 {
        failures.push(format!("(e) on_down = remove leaves rs3 in the UDP service's table: {table_servers:?}"));
    }
    let udp = udp_who("lab-client", &format!("{VIP}:53"), 6, "hello");
    let udp_servers: Vec<String> =
        udp.iter().map(|r| r.as_ref().map_or_else(|e| e.clone(), |(s, _)| s.clone())).collect();
    if udp_servers.iter().any(|s| s != "rs1" && s != "rs2") {
        failures.push(format!("(e) UDP flows reached someone else than rs1/rs2: {udp_servers:?}"));
    }

    // (f) rs1's agent says drain: weight 0 in effect while its check stays up.
    std::fs::write(agent_file("rs1"), b"drain\n").expect("write rs1's agent answer");
    let drained = wait_until(budget + Duration::from_secs(2), Duration::from_millis(50), || {
        state_of("tcp", 80, REAL_SERVER_IPS[0]) == ("up".to_string(), 0)
    });
    if drained {
        let after = servers_of(&http_who_many("lab-client", &url, 12));
        if after.iter().any(|s| s == "rs1") {
            failures.push(format!("(f) rs1 drained by its agent still takes new connections: {after:?}"));
        }
    } else {
        failures.push(format!("(f) rs1's agent drain not in effect: {:?}", state_of("tcp", 80, REAL_SERVER_IPS[0])));
    }
    let _ = std::fs::remove_file(agent_file("rs1"));
    let restored = wait_until(budget + Duration::from_secs(2), Duration::from_millis(50), || {
        state_of("tcp", 80, REAL_SERVER_IPS[0]) == ("up".to_string(), 1)
    });
    if !restored {
        failures.push(format!(
            "(f) rs1 not back to weight 1 after its agent says up: {:?}",
            state_of("tcp", 80, REAL_SERVER_IPS[0])
        ));
    }

    // (g) admin drain of rs2 (REST), then ready (rvsadm admin when built, else REST).
    let admin = |state: &str| {
        let path = format!("http://127.0.0.1:8700/v1/services/tcp/{VIP}/80/servers/10.20.0.12/80");
        let body = format!("{{\"admin\":\"{state}\"}}");
        let out = ns_exec("lab-lb1", &["curl", "-sS", "-m", "2", "-X", "PUT", "-d", &body, &path]);
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null)
    };
    let v = admin("drain");
    if (v["admin"].as_str(), v["effective_weight"].as_i64(), v["health"]["state"].as_str())
        != (Some("drain"), Some(0), Some("up"))
    {
        failures.push(format!("(g) admin drain of rs2 answered {v}"));
    }
    let drained = servers_of(&http_who_many("lab-client", &url, 12));
    if drained.iter().any(|s| s != "rs1" && s != "rs3") {
        failures.push(format!("(g) rs2 in admin drain still takes new connections: {drained:?}"));
    }
    let v = admin("bogus");
    if v["field"] != "admin" {
        failures.push(format!("(g) a bad admin state is not refused naming `admin`: {v}"));
    }
    if rvsadm.exists() {
        let rvsadm = rvsadm.to_str().unwrap_or("rvsadm");
        ns_exec_ok("lab-lb1", &[rvsadm, "admin", "-t", &format!("{VIP}:80"), "-r", "10.20.0.12:80", "ready"]);
    } else {
        admin("ready");
    }
    let (state, weight) = state_of("tcp", 80, REAL_SERVER_IPS[1]);
    let readied = servers_of(&http_who_many("lab-client", &url, 9));
    if (state.as_str(), weight) != ("up", 1) || !readied.iter().any(|s| s == "rs2") {
        failures.push(format!("(g) rs2 back to ready: {state} weight {weight}, new connections {readied:?}"));
    }

    let status = status();
    println!(
        "{mode:?}: probe_rx {} probe_tx {}",
        worker_counter(&status, "probe_rx"),
        worker_counter(&status, "probe_tx")
    );
    for n in REAL_SERVER_NAMES {
        let _ = std::fs::remove_file(flag(n));
    }
    drop(ka);
    assert!(failures.is_empty(), "{mode:?}: {failures:#?}\n{:#}", services());
}

#[test]
#[ignore]
fn health_nat() {
    run(Mode::Nat, 1);
}

#[test]
#[ignore]
fn health_dr() {
    run(Mode::Dr, 1);
}

#[test]
#[ignore]
fn health_fullnat() {
    run(Mode::FullNat, 1);
}

#[test]
#[ignore]
fn health_tunnel() {
    run(Mode::Tunnel, 1);
}

/// Two workers: replies the NIC steers to worker 1 reach the prober through its own ring.
#[test]
#[ignore]
fn health_nat_two_workers() {
    run(Mode::Nat, 2);
}

/// The extra services of [`health_nat_extras`], after the NAT lab config's ports and routes.
fn extras_config(cmd_script: &std::path::Path) -> std::path::PathBuf {
    let base = std::fs::read_to_string(Mode::Nat.config(1)).expect("the NAT lab config");
    let head = &base[..base.find("[[service]]").expect("a service")];
    let servers = |port: u16, extra: &[&str]| -> String {
        REAL_SERVER_IPS
            .iter()
            .zip(extra)
            .map(|(ip, x)| {
                format!("[[service.server]]\naddress = \"{ip}\"\nport = {port}\nweight = 1\nforward = \"nat\"\n{x}")
            })
            .collect()
    };
    let fast = "interval = \"300ms\"\ntimeout = \"200ms\"\nrise = 1\nfall = 1\n";
    let text = format!(
        "{head}\
         # system-load: wrr over rvs-agent's answers on :9998.\n\
         [[service]]\nprotocol = \"tcp\"\naddress = \"{VIP}\"\nport = 8080\nscheduler = \"system-load\"\n\
         [service.agent]\nport = 9998\ninterval = \"300ms\"\ntimeout = \"200ms\"\n{}\n\
         # rs1, rs2 as its backup, rs3 as the sorry server.\n\
         [[service]]\nprotocol = \"tcp\"\naddress = \"{VIP}\"\nport = 80\nscheduler = \"rr\"\nsorry_server = \"10.20.0.13:80\"\n\
         [service.health]\nkind = \"http\"\npath = \"/health\"\n{fast}{}\n\
         # A command check.\n\
         [[service]]\nprotocol = \"tcp\"\naddress = \"{VIP}\"\nport = 8081\nscheduler = \"wrr\"\n\
         [service.health]\nkind = \"command\"\ncommand = [\"/bin/sh\", \"{}\"]\n{fast}{}\n\
         # A UDP check of the servers' echo on :5300.\n\
         [[service]]\nprotocol = \"udp\"\naddress = \"{VIP}\"\nport = 53\nscheduler = \"rr\"\n\
         [service.health]\nkind = \"udp\"\nport = 5300\nsend = \"ping\"\nexpect = \"ping\"\n{fast}{}",
        servers(80, &["", "", ""]),
        servers(80, &["", "backup = true\n"]),
        cmd_script.display(),
        servers(80, &["", "", ""]),
        servers(53, &["", "", ""]),
    );
    let path = run_dir().join("health-extras-nat.toml");
    std::fs::write(&path, text).expect("write the extras config");
    path
}

/// Processes started in the real servers' namespaces, stopped (by pid) when dropped.
struct Pids(Vec<String>);

impl Pids {
    fn start(&mut self, ns: &str, what: &str, command: &str) {
        let pidfile = run_dir().join(format!("health-extras-{what}.pid"));
        let script = format!("{command} >/dev/null 2>&1 & echo $! > {}", pidfile.display());
        ns_exec_ok(ns, &["sh", "-c", &script]);
        self.0.push(std::fs::read_to_string(&pidfile).unwrap_or_default().trim().to_string());
    }
}

impl Drop for Pids {
    fn drop(&mut self) {
        for pid in self.0.iter().filter(|p| !p.is_empty()) {
            let _ = Command::new("kill").arg(pid).status();
        }
    }
}

/// The next client source port [`split`] uses: every connection of a run has its own, so no
/// two services (several map to the servers' :80) ever share a client address and port
/// while the balancer or a server still remembers the earlier connection.
static NEXT_CLIENT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(20000);

/// `count` new connections from lab-client to `VIP:port` in one process, each from its own
/// source port; the answers' server names counted.
fn split(port: u16, count: u32) -> std::collections::BTreeMap<String, u32> {
    let base = NEXT_CLIENT_PORT.fetch_add(count, std::sync::atomic::Ordering::Relaxed);
    let py = format!(
        "import socket, collections\nc = collections.Counter()\nfor i in range({count}):\n    \
         try:\n        s = socket.create_connection(('{VIP}', {port}), timeout=5, source_address=('', {base} + i))\n        \
         s.sendall(b'GET / HTTP/1.0\\r\\nHost: vip\\r\\n\\r\\n')\n        d = b''\n        \
         while True:\n            b = s.recv(4096)\n            if not b: break\n            d += b\n        \
         s.close()\n        c[d.split(b'\\r\\n\\r\\n', 1)[-1].split()[0].decode()] += 1\n    \
         except Exception as e:\n        c['error'] += 1\nfor k, v in c.items(): print(k, v)\n"
    );
    let out = ns_exec("lab-client", &["python3", "-c", &py]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').and_then(|(k, v)| Some((k.to_string(), v.parse().ok()?))))
        .collect()
}

fn weights_of(port: u16) -> Vec<i64> {
    let all = services();
    REAL_SERVER_IPS
        .iter()
        .map(|ip| server_json(&all, "tcp", port, ip)["effective_weight"].as_i64().unwrap_or(-1))
        .collect()
}

/// NAT, one rvsd: `scheduler = "system-load"` over rvs-agent (100 % / 50 % / 25 % → 4:2:1 over
/// 700 new connections, within 10 %); a backup server and the sorry server taking over as the
/// others' `/health` fails; a `command` check taking a server down and setting a weight with
/// exit 2+N; a `udp` check detecting a closed UDP port.
#[test]
#[ignore]
fn health_nat_extras() {
    for n in REAL_SERVER_NAMES {
        let _ = std::fs::remove_file(flag(n));
    }
    // Next to $RVSD_BIN, else in the release target directory.
    let target =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| repo_root().join("target"), std::path::PathBuf::from);
    let agent = [
        std::path::Path::new(&std::env::var("RVSD_BIN").unwrap_or_default()).with_file_name("rvs-agent"),
        target.join("release/rvs-agent"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("no rvs-agent next to $RVSD_BIN or in the release target: cargo build --release --workspace");
    let mut lab = Lab::up_without_lb();
    lab.start_real_servers(Mode::Nat);
    let mut pids = Pids(Vec::new());
    let load_file = |name: &str| format!("/tmp/rvs-lab-{name}.sysload");
    for ((ns, name), pct) in ["lab-rs1", "lab-rs2", "lab-rs3"].iter().zip(REAL_SERVER_NAMES).zip(["100%", "50%", "25%"])
    {
        std::fs::write(load_file(name), pct).expect("write the agent's override");
        let cmd = format!("{} --listen 0.0.0.0:9998 --override {}", agent.display(), load_file(name));
        pids.start(ns, &format!("agent-{name}"), &cmd);
        pids.start(ns, &format!("udp-{name}"), "socat -T1 UDP4-RECVFROM:5300,reuseaddr,fork PIPE");
    }
    let cmd_file = |ip: &str| run_dir().join(format!("health-cmd-{ip}"));
    for ip in REAL_SERVER_IPS {
        let _ = std::fs::remove_file(cmd_file(ip));
    }
    let script = run_dir().join("health-cmd.sh");
    let body = format!(
        "f={}/health-cmd-$RVS_SERVER_ADDR\n[ -f \"$f\" ] && exit \"$(cat \"$f\")\"\nexit 0\n",
        run_dir().display()
    );
    std::fs::write(&script, body).expect("write the command check");
    lab.start_lb("lb1", Some(&extras_config(&script)));
    let mut failures = Vec::new();
    let t0 = Instant::now();
    let wait = |what: &dyn Fn() -> bool| wait_until(Duration::from_secs(5), Duration::from_millis(50), what);

    // system-load: 100 % / 50 % / 25 % of weight 1 × 100.
    if !wait(&|| weights_of(8080) == [100, 50, 25]) {
        failures.push(format!("(sl) agent weights not in effect: {:?}", weights_of(8080)));
    }
    let got = split(8080, 700);
    let n = |k: &str| f64::from(got.get(k).copied().unwrap_or(0));
    println!("Nat: system-load split of 700 connections: {got:?} (want 400/200/100)");
    for (name, want) in [("rs1", 400.0), ("rs2", 200.0), ("rs3", 100.0)] {
        if (n(name) - want).abs() > want * 0.1 {
            failures.push(format!("(sl) {name} got {} of 700, want {want} ± 10 %: {got:?}", n(name)));
        }
    }

    // Backup, then the sorry server, then back.
    let only = |port: u16, who: &str, count: u32| -> Result<(), String> {
        let got = split(port, count);
        (got.len() == 1 && got.contains_key(who)).then_some(()).ok_or_else(|| format!("{got:?}"))
    };
    if let Err(e) = only(80, "rs1", 6) {
        failures.push(format!("(b) with rs1 up the backup rs2 took new connections: {e}"));
    }
    std::fs::write(flag("rs1"), b"").expect("flag rs1");
    if wait_state("tcp", 80, REAL_SERVER_IPS[0], "down", Duration::from_secs(3)).is_none() {
        failures.push("(b) rs1 never went down".into());
    }
    if let Err(e) = only(80, "rs2", 6) {
        failures.push(format!("(b) rs1 down: not only the backup rs2 took new connections: {e}"));
    }
    std::fs::write(flag("rs2"), b"").expect("flag rs2");
    if wait_state("tcp", 80, REAL_SERVER_IPS[1], "down", Duration::from_secs(3)).is_none() {
        failures.push("(b) rs2 never went down".into());
    }
    if let Err(e) = only(80, "rs3", 6) {
        failures.push(format!("(b) all down: not only the sorry server rs3 answered: {e}"));
    }
    let _ = std::fs::remove_file(flag("rs1"));
    let _ = std::fs::remove_file(flag("rs2"));
    if wait_state("tcp", 80, REAL_SERVER_IPS[0], "up", Duration::from_secs(3)).is_none() {
        failures.push("(b) rs1 never came back".into());
    }
    wait_state("tcp", 80, REAL_SERVER_IPS[1], "up", Duration::from_secs(3));
    if let Err(e) = only(80, "rs1", 6) {
        failures.push(format!("(b) rs1 back: not only rs1 took new connections: {e}"));
    }

    // command: exit 1 is down, exit 2 + N is weight N.
    if !wait(&|| weights_of(8081) == [1, 1, 1]) {
        failures.push(format!("(c) command check: not all up at weight 1: {:?}", weights_of(8081)));
    }
    std::fs::write(cmd_file(REAL_SERVER_IPS[1]), "1").expect("rs2's exit status");
    std::fs::write(cmd_file(REAL_SERVER_IPS[0]), "7").expect("rs1's exit status");
    if !wait(&|| weights_of(8081) == [5, 0, 1] && state_of("tcp", 8081, REAL_SERVER_IPS[1]).0 == "down") {
        failures.push(format!(
            "(c) exit 1 / exit 7: want rs2 down and rs1 at weight 5: {:?} {:?}",
            weights_of(8081),
            server_json(&services(), "tcp", 8081, REAL_SERVER_IPS[1])["health"]
        ));
    }
    let got = split(8081, 12);
    if got.contains_key("rs2") || got.get("rs1").copied().unwrap_or(0) < 8 {
        failures.push(format!("(c) weights 5/0/1: new connections {got:?}"));
    }
    for ip in REAL_SERVER_IPS {
        let _ = std::fs::remove_file(cmd_file(ip));
    }
    if !wait(&|| weights_of(8081) == [1, 1, 1]) {
        failures.push(format!("(c) command check: not back to weight 1: {:?}", weights_of(8081)));
    }

    // udp: rs3's echo on :5300 stops.
    for ip in REAL_SERVER_IPS {
        if wait_state("udp", 53, ip, "up", Duration::from_secs(3)).is_none() {
            failures.push(format!("(u) {ip} not up on udp :53: {:?}", state_of("udp", 53, ip)));
        }
    }
    let rs3_udp = pids.0.last().cloned().unwrap_or_default();
    ns_exec_ok("lab-rs3", &["kill", &rs3_udp]);
    match wait_state("udp", 53, REAL_SERVER_IPS[2], "down", Duration::from_secs(3)) {
        Some(d) => println!(
            "Nat: rs3's closed UDP port detected after {} ms: {}",
            d.as_millis(),
            server_json(&services(), "udp", 53, REAL_SERVER_IPS[2])["health"]["last"]
        ),
        None => failures.push(format!("(u) rs3 never went down: {:?}", state_of("udp", 53, REAL_SERVER_IPS[2]))),
    }
    let udp = udp_who("lab-client", &format!("{VIP}:53"), 6, "hello");
    let udp_servers: Vec<String> =
        udp.iter().map(|r| r.as_ref().map_or_else(|e| e.clone(), |(s, _)| s.clone())).collect();
    if udp_servers.iter().any(|s| s != "rs1" && s != "rs2") {
        failures.push(format!("(u) UDP flows reached someone else than rs1/rs2: {udp_servers:?}"));
    }
    println!("Nat: extras took {} ms after rvsd started", t0.elapsed().as_millis());
    for n in REAL_SERVER_NAMES {
        let _ = std::fs::remove_file(flag(n));
        let _ = std::fs::remove_file(load_file(n));
    }
    drop(pids);
    assert!(failures.is_empty(), "{failures:#?}\n{:#}", services());
}

/// The IPv6 VIP and the servers' IPv6 addresses (lab.sh).
const VIP6: &str = "2001:db8:10::100";
const RS_IP6: [&str; 3] = ["2001:db8:20::11", "2001:db8:20::12", "2001:db8:20::13"];

/// The NAT lab config with an IPv6 TCP service on [`VIP6`]:80 over [`RS_IP6`], checked by
/// the `http` check of the module docs.
fn health_config6() -> std::path::PathBuf {
    let mut text = std::fs::read_to_string(Mode::Nat.config(1)).expect("the NAT lab config");
    text.push_str(&format!(
        "\n[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP6}\"\nport = 80\nscheduler = \"rr\"\n\
         [service.health]\nkind = \"http\"\npath = \"/health\"\ninterval = \"{INTERVAL_MS}ms\"\n\
         timeout = \"{TIMEOUT_MS}ms\"\nrise = {RISE}\nfall = {FALL}\non_down = \"quiesce\"\n"
    ));
    for rs in RS_IP6 {
        text.push_str(&format!("\n[[service.server]]\naddress = \"{rs}\"\nport = 80\nweight = 1\nforward = \"nat\"\n"));
    }
    std::fs::create_dir_all(run_dir()).expect("create vm-testbed/run");
    let path = run_dir().join("health-ipv6-nat.toml");
    std::fs::write(&path, text).expect("write the IPv6 health config");
    path
}

/// `ip`'s health state and effective weight in the IPv6 service.
fn state6(ip: &str) -> (String, i64) {
    let r = server_json_at(&services(), "tcp", VIP6, 80, ip);
    (r["health"]["state"].as_str().unwrap_or("?").to_string(), r["effective_weight"].as_i64().unwrap_or(-1))
}

#[test]
#[ignore = "needs root, the netns lab and rvsd (vm-testbed/setup-host.sh)"]
fn health_ipv6_nat() {
    for n in REAL_SERVER_NAMES {
        let _ = std::fs::remove_file(flag(n));
    }
    let mut lab = Lab::up_without_lb();
    lab.start_real_servers(Mode::Nat);
    lab.start_lb("lb1", Some(&health_config6()));
    // Every server passes its check: the probes left from rvsd's IPv6 address and their
    // answers came back to the prober.
    for ip in RS_IP6 {
        let ok = wait_until(Duration::from_secs(10), Duration::from_millis(100), || state6(ip) == ("up".into(), 1));
        assert!(ok, "{ip} never turned up over IPv6: {:?}; services {:#}", state6(ip), services());
    }
    let st = status();
    let (tx, rx) = (worker_counter(&st, "probe_tx"), worker_counter(&st, "probe_rx"));
    // config/lab-nat.toml has no health check of its own: these are the IPv6 probes.
    assert!(tx >= 3 && rx >= 3, "IPv6 probes through the data path: probe_tx {tx}, probe_rx {rx}");
    let url = format!("http://[{VIP6}]/");
    // rs2 fails its check: down, weight 0, and new connections avoid it.
    std::fs::write(flag("rs2"), b"").expect("raise rs2's unhealthy flag");
    let budget = Duration::from_millis(INTERVAL_MS * (FALL + 1) + TIMEOUT_MS + 3000);
    let ok = wait_until(budget, Duration::from_millis(50), || state6(RS_IP6[1]) == ("down".into(), 0));
    assert!(ok, "rs2 not down within {budget:?} over IPv6: {:?}", state6(RS_IP6[1]));
    let answers = http_who_many(CLIENT, &url, 12);
    let servers = servers_of(&answers);
    assert!(
        servers.len() == 12 && servers.iter().all(|s| s == "rs1" || s == "rs3"),
        "with rs2 down, 12 IPv6 connections went to {servers:?}: {answers:?}"
    );
    // Recovered: up again after rise successes.
    std::fs::remove_file(flag("rs2")).expect("clear rs2's flag");
    let back = Duration::from_millis(INTERVAL_MS * (RISE + 2) + 3000);
    let ok = wait_until(back, Duration::from_millis(50), || state6(RS_IP6[1]) == ("up".into(), 1));
    assert!(ok, "rs2 not up again within {back:?} over IPv6: {:?}", state6(RS_IP6[1]));
    println!("health ipv6: probe_tx {tx}, probe_rx {rx}; rs2 down and back over IPv6");
}
