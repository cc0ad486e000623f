//! The `GET /v1/status` document and the trait that produces it.
//!
//! The JSON shape is a contract with the lab tests and `rvsadm`: extend it, never rename.
//!
//! ```json
//! { "version": "0.1.0", "uptime_seconds": 12,
//!   "ports": [{ "name": "front", "device": "net_af_packet0,iface=front", "port_id": 0,
//!               "mac": "02:00:00:00:00:01",
//!               "link": { "up": true, "speed_mbps": 10000, "full_duplex": true },
//!               "address": "10.10.0.1/24",
//!               "stats": { "rx_packets": 0, "tx_packets": 0, "rx_bytes": 0, "tx_bytes": 0,
//!                          "rx_missed": 0, "rx_errors": 0, "tx_errors": 0, "rx_nombuf": 0 } }],
//!   "workers": [{ "index": 0, "lcore": 1, "rx_packets": 0, "tx_packets": 0, "rx_bytes": 0,
//!                 "tx_bytes": 0, "arp_replies_sent": 0, "arp_requests_sent": 0,
//!                 "gratuitous_arps_sent": 0, "icmp_echo_replies": 0, "polls": 0,
//!                 "idle_sleeps": 0, "drops": { "eth_truncated": 0, … } }],
//!   "drops": { "eth_truncated": 0, … },
//!   "services": [{ "protocol": "tcp", "address": "10.10.0.100", "port": 80,
//!                  "scheduler": "rr", "persistence_seconds": null,
//!                  "stats": { "conns": 0, "active_conns": 0, "inactive_conns": 0,
//!                             "in_packets": 0, "out_packets": 0, "in_bytes": 0, "out_bytes": 0 },
//!                  "servers": [{ "address": "10.20.0.11", "port": 80, "weight": 1,
//!                                "forward": "nat", "overloaded": false, "stats": { … } }] }] }
//! ```
//!
//! * `ports[].mac` is lowercase `aa:bb:cc:dd:ee:ff`.
//! * `drops` (top level) is the sum over workers and holds *every* drop reason, zeros
//!   included, so a test can read any reason without checking for its presence.
//! * `ports[].link.up` is read from the NIC at each request; `ports[].link_changes` counts
//!   the changes rvsd's 250 ms sample saw ([`crate::watchdog::LinkWatch`]).
//! * `workers[].stalled` and `stalled_for_ms`: the watchdog ([`crate::watchdog`]) saw the
//!   worker's poll counter stand still for a second or more, and for how long.
//! * `reload` (when rvsd watches a config file) says how the last SIGHUP reload went
//!   ([`ReloadStatus`]): a failed one leaves the configuration of `generation` in force.

use std::collections::BTreeMap;

use rvs_dataplane::server::ServerStatsSnapshot;
use rvs_dataplane::service::{Service, ServiceTable};
use rvs_dataplane::stats::{CounterDef, CounterKind, CountersSnapshot, DropReason};
use rvs_drivers::{LinkStatus, PortStats};
use serde::{Deserialize, Serialize};

use crate::config::MacAddr;

/// Something that can report the daemon's status: the running daemon, or a fixed
/// value in tests. Called on the control thread for every `GET /v1/status`.
pub trait StatusSource: Send + Sync + 'static {
    /// The status now.
    fn status(&self) -> Status;
}

/// The whole `GET /v1/status` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// rvsd's version (the crate version).
    pub version: String,
    /// Seconds since rvsd finished starting.
    pub uptime_seconds: u64,
    /// Every configured port, in config order.
    pub ports: Vec<PortStatus>,
    /// Every worker, by index.
    pub workers: Vec<WorkerStatus>,
    /// Drops by reason summed over the workers; every reason is present.
    pub drops: BTreeMap<String, u64>,
    /// Every virtual service with its real servers and their counters.
    #[serde(default)]
    pub services: Vec<ServiceStatus>,
    /// The health prober's own counts (absent when it does not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prober: Option<ProberStatus>,
    /// VRRP instances (absent without `[ha]`): the `GET /v1/ha` document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha: Option<crate::ha::view::HaStatus>,
    /// The config file's reloads on SIGHUP (absent when no file is watched: tests, tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<ReloadStatus>,
    /// The VIPs announced or withdrawn through BIRD, and why (absent without `[bgp]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<crate::bgp::BgpStatus>,
}

/// `reload` in `/v1/status`: how the last SIGHUP reload of the config file went. A failed
/// reload changes nothing; the configuration of `generation` stays in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReloadStatus {
    /// The config file SIGHUP re-reads.
    pub path: String,
    /// Generation of the configuration in force (the published service table's; `PUT
    /// /v1/config` and the service endpoints also move it).
    pub generation: u64,
    /// Whether the last reload was applied (or found nothing to change); true before any.
    pub ok: bool,
    /// Why the last reload failed: the file cannot be read, is not valid TOML, or is
    /// refused (each names the path and what is wrong). `null` after a success.
    pub error: Option<String>,
    /// Unix time (seconds) of the last reload attempt; `null` before the first SIGHUP.
    pub last_attempt_unix: Option<u64>,
    /// Unix time (seconds) of the last successful reload; `null` if none succeeded.
    pub last_success_unix: Option<u64>,
    /// Reloads attempted since start.
    pub attempts: u64,
    /// Reloads that failed since start (`rvs_config_reload_failures_total`).
    pub failures: u64,
}

impl ReloadStatus {
    /// The state before any reload of the file at `path`.
    pub fn new(path: &std::path::Path) -> ReloadStatus {
        ReloadStatus { path: path.display().to_string(), ok: true, ..ReloadStatus::default() }
    }

    /// Records a reload at `now_unix` that left `generation` in force: `Ok` when it was
    /// applied (or changed nothing), `Err` with the reason when it failed.
    pub fn record(&mut self, now_unix: u64, generation: u64, outcome: Result<(), String>) {
        self.attempts += 1;
        self.last_attempt_unix = Some(now_unix);
        self.generation = generation;
        match outcome {
            Ok(()) => {
                self.ok = true;
                self.error = None;
                self.last_success_unix = Some(now_unix);
            }
            Err(e) => {
                self.ok = false;
                self.error = Some(e);
                self.failures += 1;
            }
        }
    }
}

/// The reload state shared by the SIGHUP handler (which writes it) and the status source.
pub type ReloadBoard = std::sync::Arc<std::sync::Mutex<ReloadStatus>>;

/// The health prober's counts in `/v1/status` (`prober`) and `/metrics` (`rvs_prober_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProberStatus {
    /// Packets the workers punted that reached the prober.
    pub packets_in: u64,
    /// Packets the prober queued for worker 0 to send.
    pub packets_out: u64,
    /// Packets the prober could not queue (the ring to worker 0 was full).
    pub packets_out_dropped: u64,
    /// Up/down transitions of checked servers.
    pub transitions: u64,
}

impl Status {
    /// Assembles the document, computing the top-level `drops` sum (with every
    /// [`DropReason`] present, zeros included).
    pub fn new(uptime_seconds: u64, ports: Vec<PortStatus>, workers: Vec<WorkerStatus>) -> Status {
        let mut drops: BTreeMap<String, u64> = DropReason::ALL.iter().map(|r| (r.name().to_string(), 0)).collect();
        for w in &workers {
            for (k, v) in &w.counters.drops {
                *drops.entry(k.to_string()).or_insert(0) += v;
            }
        }
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds,
            ports,
            workers,
            drops,
            services: Vec::new(),
            prober: None,
            ha: None,
            reload: None,
            bgp: None,
        }
    }

    /// The document with `services` filled from the service table the workers use.
    pub fn with_services(mut self, table: &ServiceTable) -> Status {
        self.services = table.services().iter().map(ServiceStatus::new).collect();
        self
    }
}

/// A checked server's health as the API shows it (`health` of a server's JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthView {
    /// `up`, `down`, or `unknown` (not checked).
    pub state: String,
    /// When it entered that state (RFC 3339, UTC); absent when not checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The last probe's result in words.
    pub last: String,
    /// How long the last probe took, in microseconds (absent before the first one, and
    /// for servers checked by an agent only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// Probes that passed since the server was first checked.
    #[serde(default)]
    pub probes_ok: u64,
    /// Probes that failed since the server was first checked.
    #[serde(default)]
    pub probes_failed: u64,
}

impl HealthView {
    /// A server nobody checks: `state` unknown, `last` says why.
    pub fn unchecked(why: &str) -> Self {
        HealthView {
            state: "unknown".into(),
            since: None,
            last: why.into(),
            latency_us: None,
            probes_ok: 0,
            probes_failed: 0,
        }
    }

    /// Whether `other` differs in what an operator acts on (state, since, last result),
    /// not only in the probe figures (latency, counts) that change with every probe.
    pub fn differs_in_state(&self, other: &HealthView) -> bool {
        (&self.state, &self.since, &self.last) != (&other.state, &other.since, &other.last)
    }
}

/// Traffic counters of a service or a real server, summed over the workers (ipvsadm's
/// `--stats` columns plus the connection counts of `-L`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficJson {
    /// Connections scheduled since start (ipvsadm's `Conns`).
    pub conns: u64,
    /// Active connections now (`ActiveConn`).
    pub active_conns: u64,
    /// Inactive connections now (`InActConn`).
    pub inactive_conns: u64,
    /// Packets client → server (`InPkts`).
    pub in_packets: u64,
    /// Packets server → client through rvs (`OutPkts`; zero for DR and IPIP).
    pub out_packets: u64,
    /// Bytes client → server (`InBytes`).
    pub in_bytes: u64,
    /// Bytes server → client through rvs (`OutBytes`).
    pub out_bytes: u64,
    /// New flows refused by the service's allow/deny lists (`acl_denied`; services
    /// only, absent for servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl_denied: Option<u64>,
    /// New flows refused at the service's `maxconn` (`service_maxconn`; services only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_maxconn: Option<u64>,
    /// New flows refused because their client was over the service's `client_rate`
    /// (`client_rate_limited`; services only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_rate_limited: Option<u64>,
}

impl TrafficJson {
    /// A service's counters: the traffic plus its refusals of new flows.
    pub fn service(s: ServerStatsSnapshot) -> Self {
        TrafficJson {
            acl_denied: Some(s.acl_denied),
            service_maxconn: Some(s.service_maxconn),
            client_rate_limited: Some(s.client_rate_limited),
            ..TrafficJson::from(s)
        }
    }
}

impl From<ServerStatsSnapshot> for TrafficJson {
    fn from(s: ServerStatsSnapshot) -> Self {
        TrafficJson {
            conns: s.conns,
            active_conns: s.active_conns,
            inactive_conns: s.inactive_conns,
            in_packets: s.packets_in,
            out_packets: s.packets_out,
            in_bytes: s.bytes_in,
            out_bytes: s.bytes_out,
            acl_denied: None,
            service_maxconn: None,
            client_rate_limited: None,
        }
    }
}

/// One virtual service in `services[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The VIP.
    pub address: String,
    /// The virtual port.
    pub port: u16,
    /// The scheduler's name.
    pub scheduler: String,
    /// Persistence timeout in seconds, when persistent.
    pub persistence_seconds: Option<u32>,
    /// Service-wide counters.
    pub stats: TrafficJson,
    /// The real servers, in configuration order.
    pub servers: Vec<ServerStatus>,
}

/// One real server in `services[].servers[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// Its address.
    pub address: String,
    /// Its port.
    pub port: u16,
    /// Its weight.
    pub weight: u32,
    /// `dr`, `nat`, `fullnat` or `tunnel`.
    pub forward: String,
    /// Over its upper connection threshold.
    pub overloaded: bool,
    /// Its counters.
    pub stats: TrafficJson,
    /// Its health, when its service has `[service.health]` (`weight` above is the weight
    /// in effect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthView>,
}

impl ServiceStatus {
    fn new(s: &Service) -> ServiceStatus {
        ServiceStatus {
            protocol: s.key.proto.name().to_string(),
            address: s.key.vip.to_string(),
            port: s.key.port,
            scheduler: s.scheduler.name().to_string(),
            persistence_seconds: s.persist.as_ref().map(|p| p.timeout_s()),
            stats: TrafficJson::service(s.stats.snapshot()),
            servers: s
                .servers
                .iter()
                .map(|r| ServerStatus {
                    address: r.addr.to_string(),
                    port: r.port,
                    weight: r.weight,
                    forward: r.forward.name().to_string(),
                    overloaded: r.stats.overloaded(),
                    stats: r.stats.snapshot().into(),
                    health: None,
                })
                .collect(),
        }
    }
}

/// One port in `ports[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatus {
    /// The port's name from the config.
    pub name: String,
    /// The device string from the config.
    pub device: String,
    /// DPDK's port id.
    pub port_id: u16,
    /// MAC in use (the override, or the device's), lowercase `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// Link state.
    pub link: LinkJson,
    /// Own address with prefix, `a.b.c.d/len`.
    pub address: String,
    /// IPv6 addresses with their prefixes (`ipv6_addresses`, then the link-local one),
    /// absent when the port has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6_addresses: Vec<String>,
    /// NIC counters.
    pub stats: PortStatsJson,
    /// Link changes (down or up) rvsd saw since start, sampling every 250 ms.
    #[serde(default)]
    pub link_changes: u64,
    /// The port's kernel exception path (`exception = true`), absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<ExceptionStatus>,
}

/// `ports[].exception`: the kernel interface and its counters, summed over the workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionStatus {
    /// The kernel interface's name (`rvs-<port name>`).
    pub iface: String,
    /// Frames a second each way (`exception_rate`).
    pub rate: u32,
    /// What crossed and what was dropped, by reason.
    pub counters: rvs_dataplane::exception::ExceptionSnapshot,
}

impl PortStatus {
    /// A port's entry from its config identity and the driver's live values.
    pub fn new(
        name: &str,
        device: &str,
        port_id: u16,
        mac: MacAddr,
        address: &str,
        link: LinkStatus,
        stats: PortStats,
    ) -> PortStatus {
        PortStatus {
            name: name.to_string(),
            device: device.to_string(),
            port_id,
            mac: mac.to_string(),
            link: link.into(),
            address: address.to_string(),
            ipv6_addresses: Vec::new(),
            stats: stats.into(),
            link_changes: 0,
            exception: None,
        }
    }
}

/// `ports[].link`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkJson {
    /// Carrier up.
    pub up: bool,
    /// Speed in Mbit/s; 0 when unknown.
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

impl From<LinkStatus> for LinkJson {
    fn from(l: LinkStatus) -> Self {
        LinkJson { up: l.up, speed_mbps: l.speed_mbps, full_duplex: l.full_duplex }
    }
}

/// Declares every NIC counter of `ports[].stats` once: its field (the JSON key and the
/// driver's [`PortStats`] field), its Prometheus name and help. From it come
/// [`PortStatsJson`], its `From<PortStats>` and [`PortStatsJson::COUNTERS`], which
/// `/metrics` iterates. Adding a counter is one line here (plus the driver's field).
macro_rules! port_counters {
    ($( $field:ident => $metric:literal, $help:literal; )*) => {
        /// `ports[].stats`: the NIC's counters.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct PortStatsJson {
            $( #[doc = $help] pub $field: u64, )*
        }

        impl PortStatsJson {
            /// Every declared NIC counter, in declaration order (the order of `/metrics`).
            pub const COUNTERS: &'static [CounterDef<PortStatsJson>] = &[
                $( CounterDef { name: stringify!($field), metric: $metric, kind: CounterKind::Counter, help: $help, get: |s| s.$field }, )*
            ];
        }

        impl From<PortStats> for PortStatsJson {
            fn from(s: PortStats) -> Self {
                PortStatsJson { $( $field: s.$field, )* }
            }
        }
    };
}

port_counters! {
    rx_packets => "rvs_port_rx_packets_total", "Packets received by the NIC.";
    tx_packets => "rvs_port_tx_packets_total", "Packets sent by the NIC.";
    rx_bytes => "rvs_port_rx_bytes_total", "Bytes received by the NIC.";
    tx_bytes => "rvs_port_tx_bytes_total", "Bytes sent by the NIC.";
    rx_missed => "rvs_port_rx_missed_total", "Packets the NIC dropped for lack of RX descriptors.";
    rx_errors => "rvs_port_rx_errors_total", "Receive errors.";
    tx_errors => "rvs_port_tx_errors_total", "Transmit errors.";
    rx_nombuf => "rvs_port_rx_nombuf_total", "RX packet buffer allocation failures.";
}

/// One worker in `workers[]`: its identity, then every counter declared in the data path
/// ([`CountersSnapshot::COUNTERS`], each under its name) and `drops` (every reason).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// Worker index, 0-based; also its RX/TX queue number on every port.
    pub index: u16,
    /// The lcore it runs on.
    pub lcore: u32,
    /// The worker's counters and drops, flattened into this object.
    #[serde(flatten)]
    pub counters: CountersSnapshot,
    /// Burst processing time: p50/p99/p99.9 over the last minute, count and sum since start.
    #[serde(default)]
    pub burst_latency: rvs_dataplane::latency::LatencySummary,
    /// The watchdog's verdict: its poll counter has not moved for
    /// [`crate::watchdog::WORKER_STALL`] or more.
    #[serde(default)]
    pub stalled: bool,
    /// How long its poll counter has not moved, in ms, when `stalled` (0 otherwise).
    #[serde(default)]
    pub stalled_for_ms: u64,
}

impl WorkerStatus {
    /// A worker's entry from a snapshot of its counters.
    pub fn new(index: u16, lcore: u32, c: &CountersSnapshot) -> WorkerStatus {
        WorkerStatus {
            index,
            lcore,
            counters: c.clone(),
            burst_latency: rvs_dataplane::latency::LatencySummary::default(),
            stalled: false,
            stalled_for_ms: 0,
        }
    }

    /// The entry with the watchdog's verdict: `Some(how long)` when the worker has not
    /// polled for the threshold or more ([`crate::watchdog::PollWatchdog::observe`]).
    pub fn with_stall(mut self, stall: Option<std::time::Duration>) -> WorkerStatus {
        self.stalled = stall.is_some();
        self.stalled_for_ms = stall.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_dataplane::stats::WorkerCounters;

    #[test]
    fn json_shape_is_the_contract() {
        let c = WorkerCounters::new();
        c.arp_replies_sent.add(2);
        c.drop_packet(DropReason::TxFull);
        let c2 = WorkerCounters::new();
        c2.drop_packets(DropReason::TxFull, 4);
        let link = LinkStatus { up: true, speed_mbps: 10_000, full_duplex: true };
        let port = PortStatus::new(
            "front",
            "net_null0",
            0,
            MacAddr([0x02, 0xAB, 0, 0, 0, 1]),
            "10.10.0.1/24",
            link,
            PortStats { rx_packets: 5, ..Default::default() },
        );
        let s = Status::new(
            7,
            vec![port],
            vec![WorkerStatus::new(0, 1, &c.snapshot()), WorkerStatus::new(1, 2, &c2.snapshot())],
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(v["uptime_seconds"], 7);
        assert_eq!(v["ports"][0]["name"], "front");
        assert_eq!(v["ports"][0]["mac"], "02:ab:00:00:00:01");
        assert_eq!(v["ports"][0]["port_id"], 0);
        assert_eq!(v["ports"][0]["link"]["speed_mbps"], 10_000);
        assert_eq!(v["ports"][0]["stats"]["rx_packets"], 5);
        assert_eq!(v["ports"][0]["stats"]["rx_nombuf"], 0);
        assert_eq!(v["workers"][0]["arp_replies_sent"], 2);
        assert_eq!(v["workers"][1]["lcore"], 2);
        assert_eq!(v["drops"]["tx_full"], 5);
        let drops = v["drops"].as_object().unwrap();
        assert_eq!(drops.len(), DropReason::COUNT);
        assert!(DropReason::ALL.iter().all(|r| drops.contains_key(r.name())));
        let back: Status = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    /// `workers[]` and `ports[].stats` list every declared counter under its name, driven
    /// off the declarations: a counter added there appears here with no new test line.
    #[test]
    fn json_lists_every_declared_counter() {
        let c = WorkerCounters::new();
        for (i, d) in CountersSnapshot::COUNTERS.iter().enumerate() {
            c.by_name(d.name).unwrap().add(100 + i as u64);
        }
        let ports: serde_json::Map<String, serde_json::Value> = PortStatsJson::COUNTERS
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.to_string(), serde_json::json!(200 + i)))
            .collect();
        let stats: PortStatsJson = serde_json::from_value(ports.into()).unwrap();
        let link = LinkStatus::default();
        let port = PortStatus::new("p", "d", 0, MacAddr([2, 0, 0, 0, 0, 1]), "10.0.0.1/24", link, PortStats::default());
        let mut s = Status::new(0, vec![port], vec![WorkerStatus::new(0, 1, &c.snapshot())]);
        s.ports[0].stats = stats;
        let v = serde_json::to_value(&s).unwrap();
        for (i, d) in CountersSnapshot::COUNTERS.iter().enumerate() {
            assert_eq!(v["workers"][0][d.name], 100 + i as u64, "workers[].{}", d.name);
        }
        for (i, d) in PortStatsJson::COUNTERS.iter().enumerate() {
            assert_eq!(v["ports"][0]["stats"][d.name], 200 + i as u64, "ports[].stats.{}", d.name);
            assert_eq!((d.get)(&s.ports[0].stats), 200 + i as u64);
        }
        assert_eq!(v["ports"][0]["stats"].as_object().unwrap().len(), PortStatsJson::COUNTERS.len());
        // The names of the contract before the declarations existed are all still there.
        for name in [
            "rx_packets",
            "tx_packets",
            "rx_bytes",
            "tx_bytes",
            "arp_replies_sent",
            "arp_requests_sent",
            "gratuitous_arps_sent",
            "icmp_echo_replies",
            "polls",
            "idle_sleeps",
            "conns",
            "conns_created",
            "redirected_out",
            "redirected_in",
            "toa_skipped",
            "lport_rss_misses",
            "icmp_errors_sent",
            "icmp_errors_translated",
            "burst_latency",
            "drops",
            "index",
            "lcore",
        ] {
            assert!(v["workers"][0].get(name).is_some(), "workers[].{name} missing");
        }
    }

    /// A worker the watchdog calls stalled says so, with how long; the others say
    /// `stalled: false` and 0.
    #[test]
    fn stalled_workers_are_shown() {
        let c = WorkerCounters::new();
        let s = Status::new(
            0,
            vec![],
            vec![
                WorkerStatus::new(0, 1, &c.snapshot()).with_stall(None),
                WorkerStatus::new(1, 2, &c.snapshot()).with_stall(Some(std::time::Duration::from_millis(1500))),
            ],
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            (v["workers"][0]["stalled"].as_bool(), v["workers"][0]["stalled_for_ms"].as_u64()),
            (Some(false), Some(0))
        );
        assert_eq!(
            (v["workers"][1]["stalled"].as_bool(), v["workers"][1]["stalled_for_ms"].as_u64()),
            (Some(true), Some(1500))
        );
        let back: Status = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn no_workers_still_lists_every_drop_reason() {
        let s = Status::new(0, vec![], vec![]);
        assert_eq!(s.drops.len(), DropReason::COUNT);
        assert!(s.drops.values().all(|&v| v == 0));
    }
}
