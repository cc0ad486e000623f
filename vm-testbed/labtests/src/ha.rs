//! Helpers shared by the HA lab tests (tests/ha.rs: VRRP; tests/sync.rs: connection sync):
//! the pair's configs and their variants, the VRRP state read from `/v1/status`, and the
//! routes that make the client and the real servers follow the master.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::*;

/// lab-lb1's front MAC (lab.sh's MAC scheme), the one it answers ARP with.
pub const LB1_FRONT_MAC: &str = "02:00:00:00:01:01";
/// lab-lb2's front MAC.
pub const LB2_FRONT_MAC: &str = "02:00:00:00:02:01";
/// The floating NAT gateway on the back network.
pub const GATEWAY: &str = "10.20.0.100";
/// Largest takeover gap accepted after a crash.
pub const MAX_GAP: Duration = Duration::from_secs(1);

/// `config/<name>` in the repository.
pub fn config(name: &str) -> PathBuf {
    repo_root().join("config").join(name)
}

/// `base` (a config/ file) with `from` replaced by `to`, written to the run folder.
pub fn variant(base: &str, from: &str, to: &str, name: &str) -> PathBuf {
    variant_with(base, &[(from, to)], name)
}

/// `base` (a config/ file) with every `(from, to)` applied in order (each `from` replaced
/// everywhere it occurs, and it must occur), written to the run folder as `name`.
pub fn variant_with(base: &str, edits: &[(&str, &str)], name: &str) -> PathBuf {
    let mut text = std::fs::read_to_string(config(base)).expect("the lab's HA config");
    for (from, to) in edits {
        assert!(text.contains(from), "{base} has no `{from}`");
        text = text.replace(from, to);
    }
    let path = run_dir().join(name);
    std::fs::write(&path, text).expect("write a config variant");
    path
}

/// The VRRP instance of lb `ns`'s rvsd, from `/v1/status`.
pub fn instance(ns: &str) -> Option<Value> {
    try_status_of(ns).ok()?.get("ha")?.get("instances")?.get(0).cloned()
}

/// The instance's `since` (RFC 3339, UTC) as seconds of the day.
pub fn since_secs(instance: &Value) -> Option<f64> {
    let t = instance.get("since")?.as_str()?.split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = t.split(':');
    let (h, m, s): (f64, f64, f64) =
        (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    Some(h * 3600.0 + m * 60.0 + s)
}

/// The VRRP state (`master`, `backup`, ...) of lb `ns`'s first instance, or "" when unknown.
pub fn state(ns: &str) -> String {
    instance(ns).and_then(|i| i.get("state").and_then(Value::as_str).map(String::from)).unwrap_or_default()
}

/// Waits until lb `ns`'s first instance is in state `want`; panics with the instance after `timeout`.
pub fn wait_state(ns: &str, want: &str, timeout: Duration) {
    let ok = wait_until(timeout, Duration::from_millis(20), || state(ns) == want);
    assert!(ok, "{ns} is not {want} after {timeout:?}: {:?}", instance(ns));
}

/// Routes for HA: the client reaches the VIP on-link; the real servers reply through the
/// floating gateway.
pub fn ha_routes() {
    ns_exec_ok(CLIENT, &["ip", "route", "replace", "10.10.0.100/32", "dev", "eth0"]);
    rs_route_clients_via(GATEWAY);
}

/// One HTTP request from the client to the VIP; true if a real server answered.
pub fn http_ok() -> bool {
    let out = ns_exec(CLIENT, &["curl", "-sf", "-m", "1", &format!("http://{VIP}/")]);
    out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("rs")
}
