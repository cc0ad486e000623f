//! The REST documents rvsadm reads, as rvsadm sees them.
//!
//! Contract: these types are deliberately lenient readers of rvsd's answers, so that an
//! rvsadm of one version can list an rvsd of another: unknown fields are ignored, missing
//! ones take their defaults, counters accept integers or floats (rates are estimates) and
//! durations accept `"300s"`-style strings (humantime) or plain seconds. Anything else is a
//! decoding error for the caller to report, never a panic.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer};

use super::args::{Forward, Protocol};

/// `GET /v1/services`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ServiceList {
    /// Every virtual service.
    pub services: Vec<Service>,
}

/// One virtual service of `GET /v1/services`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Service {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The VIP.
    pub address: String,
    /// The virtual port.
    #[serde(deserialize_with = "lenient_u64")]
    pub port: u64,
    /// The scheduler's name.
    pub scheduler: String,
    /// Persistence timeout in seconds, when persistent.
    #[serde(deserialize_with = "lenient_seconds")]
    pub persistence: Option<u64>,
    /// Netmask grouping clients for persistence.
    pub persistence_netmask: Option<String>,
    /// New connections per second per client; 0 (or absent, from an rvsd without it): no
    /// limit.
    #[serde(deserialize_with = "lenient_u64")]
    pub client_rate: u64,
    /// Depth of each client's bucket (0 without a rate).
    #[serde(deserialize_with = "lenient_u64")]
    pub client_burst: u64,
    /// The real servers.
    pub servers: Vec<Server>,
    /// The service's counters.
    pub stats: Traffic,
}

/// One real server of a [`Service`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Server {
    /// Its address.
    pub address: String,
    /// Its port.
    #[serde(deserialize_with = "lenient_u64")]
    pub port: u64,
    /// Its weight.
    #[serde(deserialize_with = "lenient_u64")]
    pub weight: u64,
    /// Its weight in effect (health, backup tier, slowstart), when rvsd says.
    pub effective_weight: Option<u64>,
    /// `dr`, `nat`, `fullnat` or `tunnel`.
    pub forward: String,
    /// ipvsadm's `-x` (0: none).
    #[serde(deserialize_with = "lenient_u64")]
    pub upper_threshold: u64,
    /// ipvsadm's `-y` (0: none).
    #[serde(deserialize_with = "lenient_u64")]
    pub lower_threshold: u64,
    /// Its counters.
    pub stats: Traffic,
    /// Its health, when rvsd reports it (rvsd before health checking does not).
    pub health: Option<Health>,
    /// Its administrative state (`ready`, `drain`, `maint`), when rvsd reports it.
    pub admin: Option<String>,
}

/// A server's health as rvsd reports it (`health` of a server in `GET /v1/services`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Health {
    /// `up`, `down` or `unknown` (not checked).
    pub state: String,
    /// When it entered that state (RFC 3339, UTC); absent when not checked.
    pub since: Option<String>,
    /// The last probe's result in words (`HTTP 500`, `connect timeout`, `agent: 50%`).
    pub last: String,
    /// How long the last probe took, in microseconds; absent before the first probe and
    /// for servers checked by an agent only.
    #[serde(deserialize_with = "lenient_opt_u64")]
    pub latency_us: Option<u64>,
    /// Probes passed since the server was first checked.
    #[serde(deserialize_with = "lenient_u64")]
    pub probes_ok: u64,
    /// Probes failed since the server was first checked.
    #[serde(deserialize_with = "lenient_u64")]
    pub probes_failed: u64,
}

/// Traffic counters (`T` of the REST contract).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Traffic {
    /// Connections scheduled since start.
    #[serde(deserialize_with = "lenient_u64")]
    pub conns: u64,
    /// Active connections now.
    #[serde(deserialize_with = "lenient_u64")]
    pub active_conns: u64,
    /// Inactive connections now.
    #[serde(deserialize_with = "lenient_u64")]
    pub inactive_conns: u64,
    /// Packets in.
    #[serde(deserialize_with = "lenient_u64")]
    pub in_packets: u64,
    /// Packets out.
    #[serde(deserialize_with = "lenient_u64")]
    pub out_packets: u64,
    /// Bytes in.
    #[serde(deserialize_with = "lenient_u64")]
    pub in_bytes: u64,
    /// Bytes out.
    #[serde(deserialize_with = "lenient_u64")]
    pub out_bytes: u64,
}

/// Rate estimates (`RT` of the REST contract), rounded to integers like IPVS's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Rates {
    /// Connections per second.
    #[serde(deserialize_with = "lenient_u64")]
    pub cps: u64,
    /// Packets per second in.
    #[serde(deserialize_with = "lenient_u64")]
    pub in_pps: u64,
    /// Packets per second out.
    #[serde(deserialize_with = "lenient_u64")]
    pub out_pps: u64,
    /// Bytes per second in.
    #[serde(deserialize_with = "lenient_u64")]
    pub in_bps: u64,
    /// Bytes per second out.
    #[serde(deserialize_with = "lenient_u64")]
    pub out_bps: u64,
}

/// `GET /v1/stats`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct StatsDoc {
    /// Every service's counters and rates.
    pub services: Vec<ServiceStats>,
}

/// One service of `GET /v1/stats`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ServiceStats {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The VIP.
    pub address: String,
    /// The virtual port.
    #[serde(deserialize_with = "lenient_u64")]
    pub port: u64,
    /// Counters.
    pub stats: Traffic,
    /// Rates; absent until rvsd estimates them (printed as 0).
    pub rates: Option<Rates>,
    /// The servers' counters and rates.
    pub servers: Vec<ServerStats>,
}

/// One server of a [`ServiceStats`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ServerStats {
    /// Its address.
    pub address: String,
    /// Its port.
    #[serde(deserialize_with = "lenient_u64")]
    pub port: u64,
    /// Counters.
    pub stats: Traffic,
    /// Rates, when estimated.
    pub rates: Option<Rates>,
}

/// One page of `GET /v1/connections`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ConnPage {
    /// Connections matching the filter, over all pages.
    #[serde(deserialize_with = "lenient_u64")]
    pub total: u64,
    /// This page's first index.
    #[serde(deserialize_with = "lenient_u64")]
    pub offset: u64,
    /// The page size asked for.
    #[serde(deserialize_with = "lenient_u64")]
    pub limit: u64,
    /// This page.
    pub connections: Vec<Connection>,
}

/// One connection.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Connection {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Client `ip:port`.
    pub client: String,
    /// Virtual `ip:port`.
    pub vip: String,
    /// Full-NAT local `ip:port` (empty otherwise).
    pub local: Option<String>,
    /// Real server `ip:port`.
    pub server: String,
    /// Forwarding method.
    pub forward: String,
    /// IPVS state name (`ESTABLISHED`, `FIN_WAIT`, …).
    pub state: String,
    /// Seconds until expiry.
    #[serde(deserialize_with = "lenient_u64")]
    pub expires_in: u64,
    /// Owning worker.
    #[serde(deserialize_with = "lenient_u64")]
    pub worker: u64,
}

/// `GET /v1/timeouts`, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Timeouts {
    /// TCP established.
    #[serde(deserialize_with = "lenient_seconds")]
    pub tcp: Option<u64>,
    /// TCP after FIN.
    #[serde(deserialize_with = "lenient_seconds")]
    pub tcp_fin: Option<u64>,
    /// UDP.
    #[serde(deserialize_with = "lenient_seconds")]
    pub udp: Option<u64>,
}

/// `GET /v1/status`, the fields `rvsadm status` prints (the full document is
/// [`crate::status::Status`]; reading only these keeps rvsadm working across versions).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct StatusDoc {
    /// rvsd's version.
    pub version: String,
    /// Seconds since start.
    #[serde(deserialize_with = "lenient_u64")]
    pub uptime_seconds: u64,
    /// The ports.
    pub ports: Vec<PortDoc>,
    /// The workers.
    pub workers: Vec<WorkerDoc>,
    /// Drops by reason, summed over workers.
    pub drops: BTreeMap<String, u64>,
    /// VRRP, when rvsd runs `[ha]`.
    pub ha: Option<HaDoc>,
    /// The config file's SIGHUP reloads, when rvsd watches a file.
    pub reload: Option<ReloadDoc>,
    /// The VIPs announced through BIRD, when rvsd runs `[bgp]`.
    pub bgp: Option<BgpDoc>,
}

/// `bgp` of [`StatusDoc`]: the VIPs announced or withdrawn and BIRD's state.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct BgpDoc {
    /// The include file rvsd writes.
    pub include_file: String,
    /// BIRD's control socket.
    pub socket: String,
    /// Whether BIRD has read the include file as it is now.
    pub in_sync: bool,
    /// Why not (`bgp: birdc unreachable: ...`).
    pub error: Option<String>,
    /// Milliseconds until the next attempt, while failing.
    pub retry_in_ms: Option<u64>,
    /// birdc runs.
    #[serde(deserialize_with = "lenient_u64")]
    pub configures: u64,
    /// Failed writes and birdc runs.
    #[serde(deserialize_with = "lenient_u64")]
    pub failures: u64,
    /// Every VIP.
    pub vips: Vec<VipDoc>,
}

/// One VIP of [`BgpDoc`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct VipDoc {
    /// The VIP.
    pub vip: String,
    /// `announced` or `withdrawn`.
    pub state: String,
    /// Why, in words.
    pub why: String,
    /// Unix time it entered that state.
    #[serde(deserialize_with = "lenient_u64")]
    pub since_unix: u64,
}

/// `reload` of [`StatusDoc`]: how the last SIGHUP reload of the config file went.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ReloadDoc {
    /// The config file.
    pub path: String,
    /// Generation of the configuration in force.
    #[serde(deserialize_with = "lenient_u64")]
    pub generation: u64,
    /// Why the last reload failed; `None` after a success or before any reload.
    pub error: Option<String>,
    /// Unix time (seconds) of the last attempt.
    pub last_attempt_unix: Option<u64>,
    /// Reloads attempted since start.
    #[serde(deserialize_with = "lenient_u64")]
    pub attempts: u64,
    /// Reloads failed since start.
    #[serde(deserialize_with = "lenient_u64")]
    pub failures: u64,
}

/// `ha` of [`StatusDoc`] (the `GET /v1/ha` document), the fields `rvsadm status` prints.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HaDoc {
    /// The instances.
    pub instances: Vec<HaInstanceDoc>,
    /// Connection sync, when configured.
    pub sync: Option<SyncDoc>,
}

/// `sync` of [`HaDoc`]: connection sync with the peer, the fields `rvsadm status` prints.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SyncDoc {
    /// The peer's sync address.
    pub peer: String,
    /// Whether the peer is heard from.
    pub connected: bool,
    /// Whether this node holds the peer's table.
    pub in_sync: bool,
    /// Records of the bulk resync being received.
    #[serde(deserialize_with = "lenient_u64")]
    pub bulk_received: u64,
    /// Whether this node streams its table to the peer.
    pub bulk_sending: bool,
    /// Records sent and not yet acknowledged.
    #[serde(deserialize_with = "lenient_u64")]
    pub lag_records: u64,
    /// Age of the oldest unacknowledged message, ms.
    #[serde(deserialize_with = "lenient_u64")]
    pub lag_ms: u64,
    /// Why records from the peer are not installed.
    pub refused: Option<String>,
    /// Why VRRP preemption waits.
    pub hold_preempt: Option<String>,
    /// Record counters.
    pub records: BTreeMap<String, u64>,
    /// Refused datagrams by reason.
    pub rejected: BTreeMap<String, u64>,
}

/// One VRRP instance of [`HaDoc`], also the answer of a step-down.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HaInstanceDoc {
    /// VRID.
    #[serde(deserialize_with = "lenient_u64")]
    pub vrid: u64,
    /// The family of its adverts, `ipv4` or `ipv6` (empty from an rvsd that does not say).
    #[serde(default)]
    pub family: String,
    /// Port name.
    pub port: String,
    /// `init`, `backup`, `master` or `fault`.
    pub state: String,
    /// Configured priority.
    #[serde(deserialize_with = "lenient_u64")]
    pub priority: u64,
    /// Priority in effect.
    #[serde(deserialize_with = "lenient_u64")]
    pub effective_priority: u64,
    /// The master's address, if known.
    pub master: Option<String>,
    /// When the state last changed.
    pub since: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// Adverts sent.
    #[serde(deserialize_with = "lenient_u64")]
    pub adverts_sent: u64,
    /// Valid adverts received.
    #[serde(deserialize_with = "lenient_u64")]
    pub adverts_received: u64,
    /// Dropped adverts by reason.
    pub invalid: BTreeMap<String, u64>,
}

/// One port of [`StatusDoc`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PortDoc {
    /// Name from the config.
    pub name: String,
    /// MAC address.
    pub mac: String,
    /// Own address with prefix.
    pub address: String,
    /// Link state.
    pub link: LinkDoc,
    /// NIC counters.
    pub stats: PortStatsDoc,
    /// The kernel exception path, if the port has one.
    pub exception: Option<ExceptionDoc>,
}

/// `ports[].exception`: the kernel interface and its counters.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ExceptionDoc {
    /// The kernel interface's name.
    pub iface: String,
    /// Frames a second each way.
    #[serde(deserialize_with = "lenient_u64")]
    pub rate: u64,
    /// Counters by name (`to_kernel`, `from_kernel`, `rate_limited`, ...).
    pub counters: std::collections::BTreeMap<String, u64>,
}

/// `ports[].link`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct LinkDoc {
    /// Carrier up.
    pub up: bool,
    /// Speed in Mbit/s (0: unknown).
    #[serde(deserialize_with = "lenient_u64")]
    pub speed_mbps: u64,
    /// Full duplex.
    pub full_duplex: bool,
}

/// `ports[].stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct PortStatsDoc {
    /// Packets received.
    #[serde(deserialize_with = "lenient_u64")]
    pub rx_packets: u64,
    /// Packets sent.
    #[serde(deserialize_with = "lenient_u64")]
    pub tx_packets: u64,
    /// Missed for lack of descriptors.
    #[serde(deserialize_with = "lenient_u64")]
    pub rx_missed: u64,
    /// Receive errors.
    #[serde(deserialize_with = "lenient_u64")]
    pub rx_errors: u64,
    /// Transmit errors.
    #[serde(deserialize_with = "lenient_u64")]
    pub tx_errors: u64,
    /// Mbuf allocation failures.
    #[serde(deserialize_with = "lenient_u64")]
    pub rx_nombuf: u64,
}

/// One worker of [`StatusDoc`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct WorkerDoc {
    /// Worker index.
    #[serde(deserialize_with = "lenient_u64")]
    pub index: u64,
    /// Its lcore.
    #[serde(deserialize_with = "lenient_u64")]
    pub lcore: u64,
    /// Frames received.
    #[serde(deserialize_with = "lenient_u64")]
    pub rx_packets: u64,
    /// Frames sent.
    #[serde(deserialize_with = "lenient_u64")]
    pub tx_packets: u64,
    /// Connections now.
    #[serde(deserialize_with = "lenient_u64")]
    pub conns: u64,
    /// Connections created since start.
    #[serde(deserialize_with = "lenient_u64")]
    pub conns_created: u64,
    /// Packets received from other workers.
    #[serde(deserialize_with = "lenient_u64")]
    pub redirected_in: u64,
    /// Packets handed to other workers.
    #[serde(deserialize_with = "lenient_u64")]
    pub redirected_out: u64,
    /// Drops by reason.
    pub drops: BTreeMap<String, u64>,
    /// The watchdog says it stopped polling.
    pub stalled: bool,
    /// For how long, ms.
    #[serde(deserialize_with = "lenient_u64")]
    pub stalled_for_ms: u64,
}

/// `{"error": "...", "field": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// The offending field, when there is one.
    pub field: Option<String>,
}

impl Service {
    /// The protocol, when rvsd named a known one.
    pub fn protocol(&self) -> Option<Protocol> {
        Protocol::from_name(&self.protocol)
    }
}

impl Server {
    /// The weight the listings show: the one in effect, as ipvsadm shows the kernel's
    /// under keepalived (`-S` saves the configured one, so a restore keeps it).
    pub fn listed_weight(&self) -> u64 {
        self.effective_weight.unwrap_or(self.weight)
    }

    /// The forwarding method, when rvsd named a known one.
    pub fn forward(&self) -> Option<Forward> {
        Forward::from_name(&self.forward)
    }
}

/// Sort key of an address string: IPv4 numerically, then IPv6 numerically (libipvs
/// compares the family first, AF_INET before AF_INET6), then anything else.
pub fn address_key(address: &str) -> (u8, u128, String) {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => (0, u128::from(u32::from(a)), String::new()),
        Ok(IpAddr::V6(a)) => (1, u128::from(a), String::new()),
        Err(_) => (2, 0, address.to_string()),
    }
}

/// Sort key of a protocol name: TCP before UDP (IPPROTO_TCP 6 < IPPROTO_UDP 17), as ipvsadm.
pub fn protocol_key(protocol: &str) -> (u8, String) {
    match Protocol::from_name(protocol) {
        Some(Protocol::Tcp) => (0, String::new()),
        Some(Protocol::Udp) => (1, String::new()),
        None => (2, protocol.to_string()),
    }
}

/// A non-negative integer from a JSON number of any kind (floats rounded, negatives and
/// `null` as 0, huge values saturated).
fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    match v {
        serde_json::Value::Null => Ok(0),
        serde_json::Value::Number(n) => Ok(number_to_u64(&n)),
        other => Err(serde::de::Error::custom(format!("expected a number, found {other}"))),
    }
}

/// [`lenient_u64`] for an optional number: `null` is `None`.
fn lenient_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    match v {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) => Ok(Some(number_to_u64(&n))),
        other => Err(serde::de::Error::custom(format!("expected a number, found {other}"))),
    }
}

fn number_to_u64(n: &serde_json::Number) -> u64 {
    if let Some(u) = n.as_u64() {
        u
    } else if n.as_i64().is_some() {
        0
    } else {
        // `as` saturates and maps NaN to 0, which is what a display wants.
        n.as_f64().map_or(0, |f| f.round() as u64)
    }
}

/// A duration in seconds from `"300s"` / `"5m"` (humantime), a number of seconds, or `null`.
fn lenient_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    match v {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) => Ok(Some(number_to_u64(&n))),
        serde_json::Value::String(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<u64>() {
                return Ok(Some(n));
            }
            humantime::parse_duration(s)
                .map(|d| Some(d.as_secs()))
                .map_err(|e| serde::de::Error::custom(format!("bad duration {s:?}: {e}")))
        }
        other => Err(serde::de::Error::custom(format!("expected a duration, found {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_numbers_and_durations() {
        let s: Service = serde_json::from_str(
            r#"{"protocol":"tcp","address":"1.2.3.4","port":80,"persistence":"5m","extra":1,
                "stats":{"conns":1.6,"in_bytes":-3,"out_bytes":null}}"#,
        )
        .unwrap();
        assert_eq!(s.persistence, Some(300));
        assert_eq!((s.stats.conns, s.stats.in_bytes, s.stats.out_bytes), (2, 0, 0));
        assert_eq!(s.scheduler, "");
        let t: Timeouts = serde_json::from_str(r#"{"tcp":"900s","tcp_fin":120,"udp":null}"#).unwrap();
        assert_eq!(t, Timeouts { tcp: Some(900), tcp_fin: Some(120), udp: None });
        assert!(serde_json::from_str::<Timeouts>(r#"{"tcp":"soon"}"#).is_err());
        assert!(serde_json::from_str::<Traffic>(r#"{"conns":"many"}"#).is_err());
        let r: Rates = serde_json::from_str(r#"{"cps":1e300}"#).unwrap();
        assert_eq!(r.cps, u64::MAX);
    }

    #[test]
    fn health_and_admin_are_optional_and_lenient() {
        // What rvsd sends (controlplane's HealthView), with a field a later rvsd might add.
        let r: Server = serde_json::from_str(
            r#"{"address":"10.20.0.11","port":80,"weight":3,"admin":"drain","health":{"state":"up",
                "since":"2026-12-03T22:00:00Z","last":"HTTP 200","latency_us":1234,"probes_ok":10,
                "probes_failed":1,"flaps":0}}"#,
        )
        .unwrap();
        assert_eq!(r.admin.as_deref(), Some("drain"));
        assert_eq!(
            r.health,
            Some(Health {
                state: "up".into(),
                since: Some("2026-12-03T22:00:00Z".into()),
                last: "HTTP 200".into(),
                latency_us: Some(1234),
                probes_ok: 10,
                probes_failed: 1,
            })
        );
        // An rvsd from before health checking: neither field.
        let old: Server = serde_json::from_str(r#"{"address":"10.20.0.11","port":80}"#).unwrap();
        assert_eq!((old.health, old.admin), (None, None));
        // Not checked: no since, no latency; a float latency is rounded; null is absent.
        let h: Health = serde_json::from_str(r#"{"state":"unknown","last":"not checked"}"#).unwrap();
        assert_eq!((h.since, h.latency_us, h.probes_ok), (None, None, 0));
        let h: Health = serde_json::from_str(r#"{"latency_us":99.6}"#).unwrap();
        assert_eq!(h.latency_us, Some(100));
        let h: Health = serde_json::from_str(r#"{"latency_us":null,"health":"x"}"#).unwrap();
        assert_eq!(h.latency_us, None);
        assert!(serde_json::from_str::<Health>(r#"{"latency_us":"slow"}"#).is_err());
        let r: Server = serde_json::from_str(r#"{"health":null,"admin":null}"#).unwrap();
        assert_eq!((r.health, r.admin), (None, None));
    }

    #[test]
    fn sort_keys() {
        assert!(address_key("10.0.0.9") < address_key("10.0.0.10"));
        assert!(address_key("255.255.255.255") < address_key("::1"));
        assert!(protocol_key("tcp") < protocol_key("udp"));
        assert!(protocol_key("UDP") < protocol_key("sctp"));
    }
}
