//! The kernel exception path in the lab (issue 12, part 1): rvsd in lab-lb1 with
//! `config/lab-exception.toml` (`exception = true` on both ports, `exception_rate = 5000` on
//! front) gives lab-lb1's kernel `rvs-front` (10.10.0.1/24, the front port's MAC) and
//! `rvs-back` (10.20.0.1/24).
//!
//! - `tcp_to_the_port_address_reaches_the_kernel`: a TCP listener (socat, an echo) in
//!   lab-lb1's kernel on 10.10.0.1:2222 is reached from the client through rvsd; 256 KiB go
//!   there and back intact; no connection is made in rvsd's table (nothing reaches a
//!   service); ping and ARP of 10.10.0.1 are still answered by rvsd (the kernel's ping of
//!   the client through rvs-front works too: the kernel resolves its peers through the
//!   exception path); the port's exception counters show both ways. The same over IPv6:
//!   rvs-front carries 2001:db8:10::1/64 too, a socat echo on [2001:db8:10::1]:2222 is
//!   reached from the client's IPv6 address, ping6 of the address is answered by rvsd
//!   once (no duplicate from the kernel), and the kernel's own ping6 reaches the client.
//! - `udp_flood_at_the_port_address_is_limited`: hping3 floods UDP at 10.10.0.1 while a curl
//!   loop goes through the VIP: every curl succeeds, the flood is cut to the port's
//!   `exception_rate` before the kernel (`exception_rate_limited`).
//! - `interface_name_clash_is_refused`: an interface named rvs-front already in lab-lb1
//!   makes rvsd refuse to start with an error naming the port and the fix.
//!
//! All `#[ignore]`: root and the lab; by hand:
//! `RVSD_BIN=$CARGO_TARGET_DIR/release/rvsd cargo test --release -p rvs-labtests --test exception
//! -- --ignored --test-threads=1`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use rvs_labtests::*;
use serde_json::Value;

/// lb1's front IPv6 address (config/lab-exception.toml), alone and with its prefix.
const LB1_FRONT_IP6: &str = "2001:db8:10::1";
const LB1_FRONT_IP6_NET: &str = "2001:db8:10::1/64";
/// The client's IPv6 address (lab.sh).
const CLIENT_IP6: &str = "2001:db8:10::2";

/// The kernel listener's port on 10.10.0.1 (and 2001:db8:10::1).
const SSH_PORT: &str = "2222";
/// The flooding client address (lab-client owns 10.10.0.2 .. .9).
const FLOODER: &str = "10.10.0.9";
/// How long the flood lasts.
const FLOOD_SECS: u64 = 10;
/// `exception_rate` of the front port in config/lab-exception.toml.
const FRONT_RATE: u64 = 5000;

fn config() -> PathBuf {
    repo_root().join("config/lab-exception.toml")
}

/// The front port's exception counter `name` in rvsd's status.
fn exception_counter(st: &Value, port_name: &str, name: &str) -> u64 {
    port(st, port_name)
        .and_then(|p| p.pointer(&format!("/exception/counters/{name}")))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("status has no exception counter {name} on port {port_name}: {st:#}"))
}

/// Kills the child (a listener or a flood in a namespace) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_in(ns: &str, script: &str) -> Running {
    Running(
        Command::new("ip")
            .args(["netns", "exec", ns, "sh", "-c", script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{script}` in {ns}: {e}")),
    )
}

/// The lab with rvsd in lab-lb1 on the exception config and NAT real servers.
fn lab() -> Lab {
    let mut lab = Lab::up_without_lb();
    lab.start_lb("lb1", Some(&config()));
    lab.start_real_servers(Mode::Nat);
    lab
}

#[test]
#[ignore = "needs root, the netns lab and socat (vm-testbed/setup-host.sh)"]
fn tcp_to_the_port_address_reaches_the_kernel() {
    let _lab = lab();
    let st = status();
    // The kernel interfaces: named, addressed, with the ports' MACs.
    for (name, addr) in [("front", "10.10.0.1/24"), ("back", "10.20.0.1/24")] {
        let iface = format!("rvs-{name}");
        let shown = ns_exec_ok(LB1, &["ip", "-br", "addr", "show", "dev", &iface]);
        assert!(shown.contains(addr), "{iface}: {shown}");
        // A tap's operstate is UNKNOWN; its flags say whether it is up.
        let link = ns_exec_ok(LB1, &["ip", "-o", "link", "show", "dev", &iface]);
        assert!(link.contains(",UP"), "{iface} is up: {link}");
        assert_eq!(link_mac(LB1, &iface), port_mac(&st, name), "{iface} has port {name}'s MAC");
    }
    // An echo service in lab-lb1's kernel, on the front port's address only.
    let _listener =
        spawn_in(LB1, &format!("exec socat TCP-LISTEN:{SSH_PORT},bind={LB1_FRONT_IP},reuseaddr,fork EXEC:cat"));
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
            ns_exec(LB1, &["ss", "-ltn", &format!("sport = :{SSH_PORT}")]).stdout.windows(4).any(|w| w == b"LIST")
        }),
        "socat is not listening in {LB1}"
    );
    // rs-start checks the servers through the VIP: count from here.
    let created_before = worker_counter(&status(), "conns_created");
    let script = format!(
        "set -e; f=$(mktemp); head -c 262144 /dev/urandom > $f; want=$(sha256sum < $f); \
         got=$(socat -t 3 -T 10 - TCP:{LB1_FRONT_IP}:{SSH_PORT},bind={CLIENT_IP} < $f | sha256sum); rm -f $f; \
         [ \"$want\" = \"$got\" ] && echo same || echo \"differ: $want / $got\""
    );
    let out = ns_exec_ok(CLIENT, &["sh", "-c", &script]);
    assert_eq!(out.trim(), "same", "256 KiB through the kernel's echo and back");
    let st = status();
    assert_eq!(worker_counter(&st, "conns_created"), created_before, "nothing of it reached a service: {st:#}");
    let (to, from) = (exception_counter(&st, "front", "to_kernel"), exception_counter(&st, "front", "from_kernel"));
    assert!(to > 100 && from > 100, "both ways through the exception path: to {to}, from {from}");
    assert_eq!(exception_counter(&st, "front", "rate_limited"), 0);
    // rvsd still answers ping and ARP for its address; the kernel reaches the client too.
    assert_eq!(ping_received(&ping(CLIENT, LB1_FRONT_IP, 3)), 3, "ping of the port address");
    assert_eq!(neigh_mac(CLIENT, LB1_FRONT_IP), Some(port_mac(&st, "front")));
    let out = ns_exec(LB1, &["ping", "-n", "-c", "2", "-W", "2", "-I", "rvs-front", CLIENT_IP]);
    assert_eq!(ping_received(&out), 2, "the kernel's own ping through rvs-front: {}", describe(&out));
    assert!(neigh_mac(LB1, CLIENT_IP).is_some(), "the kernel resolved the client through the exception path");
    // IPv6: the interface carries the port's IPv6 address too; the same echo on it.
    let shown = ns_exec_ok(LB1, &["ip", "-br", "-6", "addr", "show", "dev", "rvs-front"]);
    assert!(shown.contains(LB1_FRONT_IP6_NET), "rvs-front: {shown}");
    let _listener6 =
        spawn_in(LB1, &format!("exec socat TCP6-LISTEN:{SSH_PORT},bind=[{LB1_FRONT_IP6}],reuseaddr,fork EXEC:cat"));
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
            let out = ns_exec(LB1, &["ss", "-6", "-ltn", &format!("sport = :{SSH_PORT}")]);
            out.stdout.windows(4).any(|w| w == b"LIST")
        }),
        "socat is not listening on IPv6 in {LB1}"
    );
    let to_before = exception_counter(&status(), "front", "to_kernel");
    let script6 = format!(
        "set -e; f=$(mktemp); head -c 262144 /dev/urandom > $f; want=$(sha256sum < $f); \
         got=$(socat -t 3 -T 10 - TCP6:[{LB1_FRONT_IP6}]:{SSH_PORT},bind=[{CLIENT_IP6}] < $f | sha256sum); rm -f $f; \
         [ \"$want\" = \"$got\" ] && echo same || echo \"differ: $want / $got\""
    );
    let out = ns_exec_ok(CLIENT, &["sh", "-c", &script6]);
    assert_eq!(out.trim(), "same", "256 KiB over IPv6 through the kernel's echo and back");
    let st = status();
    assert_eq!(worker_counter(&st, "conns_created"), created_before, "nothing of it reached a service: {st:#}");
    assert!(exception_counter(&st, "front", "to_kernel") > to_before + 100, "IPv6 through the exception path: {st:#}");
    // rvsd answers ping6 of the address (the kernel does not answer a second time: one
    // reply each, no duplicates); the kernel's own ping6 reaches the client, resolved by
    // its neighbour discovery through the exception path.
    let echo_before = worker_counter(&st, "icmp6_echo_replies");
    let out = ping(CLIENT, LB1_FRONT_IP6, 3);
    assert_eq!(ping_received(&out), 3, "ping6 of the port address: {}", describe(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("DUP"), "one answer each: {}", describe(&out));
    assert_eq!(worker_counter(&status(), "icmp6_echo_replies"), echo_before + 3);
    let out = ns_exec(LB1, &["ping", "-6", "-n", "-c", "2", "-W", "2", "-I", "rvs-front", CLIENT_IP6]);
    assert_eq!(ping_received(&out), 2, "the kernel's own ping6 through rvs-front: {}", describe(&out));
    assert!(neigh_mac(LB1, CLIENT_IP6).is_some(), "the kernel resolved the client's IPv6 address");
    println!(
        "exception tcp: to_kernel {} from_kernel {} (256 KiB echoed)",
        exception_counter(&status(), "front", "to_kernel"),
        exception_counter(&status(), "front", "from_kernel")
    );
}

#[test]
#[ignore = "needs root, the netns lab and hping3 (vm-testbed/setup-host.sh)"]
fn udp_flood_at_the_port_address_is_limited() {
    let _lab = lab();
    let url = format!("http://{VIP}/");
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(200), || {
            ns_exec(CLIENT, &["curl", "-sS", "-m", "2", "--interface", CLIENT_IP, &url]).status.success()
        }),
        "no answer from {url} before the flood"
    );
    let before = status();
    let flood = spawn_in(
        CLIENT,
        &format!("exec timeout {FLOOD_SECS} hping3 -q --udp -p 9999 -i u10 -a {FLOODER} {LB1_FRONT_IP}"),
    );
    sleep(Duration::from_secs(1));
    let script = format!(
        "end=$(($(date +%s)+{})); ok=0; fail=0; \
         while [ $(date +%s) -lt $end ]; do \
           if curl -sS -o /dev/null -m 3 --interface {CLIENT_IP} {url} 2>/dev/null; then ok=$((ok+1)); else fail=$((fail+1)); fi; \
         done; echo $ok $fail",
        FLOOD_SECS - 2
    );
    let out = ns_exec(CLIENT, &["sh", "-c", &script]);
    drop(flood);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut nums = text.split_whitespace().filter_map(|w| w.parse::<u64>().ok());
    let (ok, failed) = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    let st = status();
    let limited = exception_counter(&st, "front", "rate_limited") - exception_counter(&before, "front", "rate_limited");
    let to = exception_counter(&st, "front", "to_kernel") - exception_counter(&before, "front", "to_kernel");
    println!(
        "exception flood: curls ok {ok} failed {failed}; to_kernel {to}, rate_limited {limited}; drops {:?}",
        drops(&st).into_iter().filter(|(_, n)| *n != 0).collect::<Vec<_>>()
    );
    assert!(ok >= 20, "only {ok} curls ran");
    assert_eq!(failed, 0, "every curl through the VIP succeeds during the flood");
    assert!(limited > 0, "the flood was limited: {st:#}");
    assert_eq!(drop_count(&st, "exception_rate_limited"), exception_counter(&st, "front", "rate_limited"));
    // What reached the kernel stays within the rate (plus a burst of a tenth of a second).
    let bound = FRONT_RATE * (FLOOD_SECS + 2) + FRONT_RATE / 10;
    assert!(to <= bound, "{to} frames reached the kernel, above {bound}");
}

#[test]
#[ignore = "needs root and the netns lab"]
fn interface_name_clash_is_refused() {
    let _lab = Lab::up_without_lb();
    // A persistent tap of that name (the kernel has no dummy module here).
    ns_exec_ok(LB1, &["ip", "tuntap", "add", "dev", "rvs-front", "mode", "tap"]);
    let out = lab_sh(&["start-lb", "lb1", &config().to_string_lossy()]);
    assert!(!out.status.success(), "rvsd started although rvs-front exists: {}", describe(&out));
    let log = std::fs::read_to_string(Lab::log_path("lb1")).unwrap_or_default();
    assert!(
        log.contains("port `front`: a kernel interface named `rvs-front` already exists")
            && log.contains("ip link del rvs-front"),
        "the error names the port and the fix: {log}"
    );
}
