//! The JSON shapes of the REST API's services and real servers, and their conversion
//! to and from the configuration.
//!
//! Contract:
//! * Field names mirror the TOML names exactly (`protocol`, `address`, `port`,
//!   `scheduler`, `persistence`, `persistence_netmask`, `allow`, `deny`, `maxconn`,
//!   `client_rate`, `client_burst`, `syn_proxy`,
//!   `servers`; `address`, `port`,
//!   `weight`, `forward`, `upper_threshold`, `lower_threshold`), so a service can be
//!   moved between the file and the API without renaming anything.
//! * Request bodies deny unknown fields and keep the values as the client wrote them
//!   (strings, `i64`): like the file, they are checked by the config validator, which
//!   names the field and says what is wrong. A request never bypasses that validator.
//! * `stats` is read-only: accepted and ignored in request bodies (so what a `GET`
//!   returned can be sent back), never written to the configuration.
//! * `persistence_netmask` is a dotted netmask on an IPv4 service and a prefix length
//!   (`"64"`) on an IPv6 one; the default (`"255.255.255.255"`, `"128"`) is written as
//!   absent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::file::{ServerFile, ServiceFile};
use crate::config::{parse_protocol, L4Proto, Server, Service};
use crate::status::TrafficJson;

/// A duration as the API and the canonical file write it: `"300s"`, or humantime's
/// form (`"1s 500ms"`) when it is not whole seconds.
pub fn duration_text(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// `tcp/10.10.0.100/80`, `tcp/2001:db8::1/80`: how paths and query strings name a
/// service (an IPv6 VIP bare: a path segment ends at `/`, so it needs no brackets; they
/// are accepted too, see [`parse_address`]).
pub fn service_name(s: &Service) -> String {
    format!("{}/{}/{}", s.protocol.name(), s.address, s.port)
}

/// A real server as `GET` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerView {
    /// Its address.
    pub address: String,
    /// Its port.
    pub port: u16,
    /// Its weight (0: drained).
    pub weight: u16,
    /// `dr`, `nat`, `fullnat` or `tunnel`.
    pub forward: String,
    /// Upper connection threshold (0 = none).
    pub upper_threshold: u32,
    /// Lower connection threshold (0 = none).
    pub lower_threshold: u32,
    /// Its counters (absent in change lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<TrafficJson>,
    /// The weight in effect in the published table (health, backup tier, slowstart);
    /// `weight` is the configured one. Absent in change lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_weight: Option<u16>,
    /// Its health (absent in change lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::status::HealthView>,
    /// Administrative state, kept apart from `health`: `ready`, `drain` (weight 0 in
    /// effect) or `maint` (out of the table, probes paused). Absent in change lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
}

impl ServerView {
    /// The view of a configured server, without counters.
    pub fn new(r: &Server) -> ServerView {
        ServerView {
            address: r.address.to_string(),
            port: r.port,
            weight: r.weight,
            forward: r.forward.to_string(),
            upper_threshold: r.upper_threshold,
            lower_threshold: r.lower_threshold,
            stats: None,
            effective_weight: None,
            health: None,
            admin: None,
        }
    }
}

/// A virtual service as `GET` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The VIP.
    pub address: String,
    /// The virtual port.
    pub port: u16,
    /// The scheduler's name.
    pub scheduler: String,
    /// Persistence timeout (`"300s"`), or `null`.
    pub persistence: Option<String>,
    /// The persistence netmask (`"255.255.255.255"` by default), or on an IPv6 service
    /// the prefix length (`"128"` by default).
    pub persistence_netmask: String,
    /// Client prefixes allowed to open connections (empty: all).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Client prefixes refused (deny wins over allow).
    #[serde(default)]
    pub deny: Vec<String>,
    /// Most connections at once over all workers (0: no limit).
    #[serde(default)]
    pub maxconn: u32,
    /// New connections per second per client and worker (0: no limit).
    #[serde(default)]
    pub client_rate: u32,
    /// Depth of each client's bucket (`client_rate` unless set; 0 without a rate).
    #[serde(default)]
    pub client_burst: u32,
    /// The SYN-proxy mode in effect (`auto`, `always`, `off`; the default when unset).
    #[serde(default)]
    pub syn_proxy: String,
    /// Healthy servers needed for the VIP to be announced over BGP.
    #[serde(default = "default_quorum")]
    pub quorum: u32,
    /// `drop` or `schedule`: what a non-SYN TCP segment of an unknown flow does.
    #[serde(default = "default_unknown_flow")]
    pub unknown_flow: String,
    /// The real servers, in configuration order.
    pub servers: Vec<ServerView>,
    /// Service-wide counters (absent in change lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<TrafficJson>,
}

impl ServiceView {
    /// The view of a configured service, without counters.
    pub fn new(s: &Service) -> ServiceView {
        ServiceView {
            protocol: s.protocol.name().to_string(),
            address: s.address.to_string(),
            port: s.port,
            scheduler: if s.system_load { crate::config::SYSTEM_LOAD } else { s.scheduler.name() }.to_string(),
            persistence: s.persistence.map(duration_text),
            persistence_netmask: s.persistence_netmask.to_string(),
            allow: s.allow.iter().map(ToString::to_string).collect(),
            deny: s.deny.iter().map(ToString::to_string).collect(),
            maxconn: s.maxconn,
            client_rate: s.client_rate,
            client_burst: s.client_burst,
            syn_proxy: s.syn_proxy_mode().name().to_string(),
            quorum: s.quorum,
            unknown_flow: s.unknown_flow.name().to_string(),
            servers: s.servers.iter().map(ServerView::new).collect(),
            stats: None,
        }
    }
}

fn default_quorum() -> u32 {
    crate::config::defaults::QUORUM
}

fn default_unknown_flow() -> String {
    crate::config::UnknownFlow::default().name().to_string()
}

/// `POST /v1/services`: a service, with optional servers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceBody {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The VIP.
    pub address: String,
    /// The virtual port.
    pub port: i64,
    /// Scheduler (default `wlc`, as ipvsadm's).
    #[serde(default)]
    pub scheduler: Option<String>,
    /// Persistence timeout, or `null`.
    #[serde(default)]
    pub persistence: Option<String>,
    /// Persistence netmask.
    #[serde(default)]
    pub persistence_netmask: Option<String>,
    /// Client prefixes allowed (empty: all).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Client prefixes refused.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Connection limit over all workers (0 or absent: none).
    #[serde(default)]
    pub maxconn: Option<i64>,
    /// Per-client new connections per second (0 or absent: none).
    #[serde(default)]
    pub client_rate: Option<i64>,
    /// Per-client bucket depth (absent, or 0 with no rate: `client_rate`).
    #[serde(default)]
    pub client_burst: Option<i64>,
    /// SYN proxy (`auto`, `always`, `off`; absent: the default for the service).
    #[serde(default)]
    pub syn_proxy: Option<String>,
    /// Healthy servers needed for the VIP to be announced (absent: 1).
    #[serde(default)]
    pub quorum: Option<i64>,
    /// `drop` (absent) or `schedule`.
    #[serde(default)]
    pub unknown_flow: Option<String>,
    /// Real servers.
    #[serde(default)]
    pub servers: Vec<ServerBody>,
    /// Read-only; ignored.
    #[serde(default)]
    pub stats: Option<IgnoredAny>,
}

/// ipvsadm's default scheduler.
pub const DEFAULT_SCHEDULER: &str = "wlc";

impl ServiceBody {
    /// The `[[service]]` entry this body describes.
    pub fn to_file(&self) -> ServiceFile {
        ServiceFile {
            protocol: self.protocol.clone(),
            address: self.address.clone(),
            port: self.port,
            scheduler: self.scheduler.clone().unwrap_or_else(|| DEFAULT_SCHEDULER.to_string()),
            persistence: self.persistence.clone(),
            persistence_netmask: netmask(self.persistence_netmask.clone(), &self.address),
            allow: self.allow.clone(),
            deny: self.deny.clone(),
            maxconn: self.maxconn.filter(|&m| m != 0),
            client_rate: self.client_rate.filter(|&r| r != 0),
            // What GET shows for a service with no rate (0) reads as "absent".
            client_burst: self.client_burst.filter(|&b| b != 0 || self.client_rate.is_some_and(|r| r != 0)),
            syn_proxy: self.syn_proxy.clone(),
            // What GET shows for the defaults reads as "absent".
            quorum: self.quorum.filter(|&q| q != i64::from(crate::config::defaults::QUORUM)),
            unknown_flow: self.unknown_flow.clone().filter(|u| u != "drop"),
            health: None,
            agent: None,
            sorry_server: None,
            servers: self.servers.iter().map(ServerBody::to_file).collect(),
        }
    }
}

/// `persistence_netmask` as the file keeps it: the default of the VIP's family
/// (`255.255.255.255`, or `128` for an IPv6 `address`) reads as absent, so what `GET`
/// shows can be sent back for a non-persistent service.
fn netmask(m: Option<String>, address: &str) -> Option<String> {
    let ipv6 = parse_address(address).is_ok_and(|a| a.is_ipv6());
    m.filter(|m| if ipv6 { m != "128" } else { m.parse::<Ipv4Addr>().ok() != Some(Ipv4Addr::BROADCAST) })
}

/// `POST …/servers`: a real server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerBody {
    /// Its address.
    pub address: String,
    /// Its port (default: the service's).
    #[serde(default)]
    pub port: Option<i64>,
    /// Weight (default 1).
    #[serde(default)]
    pub weight: Option<i64>,
    /// Forwarding method (default `dr`).
    #[serde(default)]
    pub forward: Option<String>,
    /// Upper connection threshold.
    #[serde(default)]
    pub upper_threshold: Option<i64>,
    /// Lower connection threshold.
    #[serde(default)]
    pub lower_threshold: Option<i64>,
    /// Read-only; ignored.
    #[serde(default)]
    pub stats: Option<IgnoredAny>,
}

impl ServerBody {
    /// The `[[service.server]]` entry this body describes.
    pub fn to_file(&self) -> ServerFile {
        ServerFile {
            address: self.address.clone(),
            port: self.port,
            weight: self.weight,
            forward: self.forward.clone(),
            upper_threshold: self.upper_threshold,
            lower_threshold: self.lower_threshold,
            backup: None,
        }
    }
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `PUT /v1/services/{proto}/{vip}/{port}` (ipvsadm -E): the fields to change.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceUpdate {
    /// New scheduler.
    #[serde(default)]
    pub scheduler: Option<String>,
    /// New persistence timeout; `null` makes the service non-persistent.
    #[serde(default, deserialize_with = "double_option")]
    pub persistence: Option<Option<String>>,
    /// New persistence netmask; `null` restores the default.
    #[serde(default, deserialize_with = "double_option")]
    pub persistence_netmask: Option<Option<String>>,
    /// New allow list (replaces the old one; `[]` allows all).
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// New deny list (replaces the old one).
    #[serde(default)]
    pub deny: Option<Vec<String>>,
    /// New connection limit (0 removes it).
    #[serde(default)]
    pub maxconn: Option<i64>,
    /// New per-client rate (0 removes it, and the burst with it).
    #[serde(default)]
    pub client_rate: Option<i64>,
    /// New per-client bucket depth; `null` restores the default (`client_rate`).
    #[serde(default, deserialize_with = "double_option")]
    pub client_burst: Option<Option<i64>>,
    /// New SYN-proxy mode; `null` restores the default.
    #[serde(default, deserialize_with = "double_option")]
    pub syn_proxy: Option<Option<String>>,
    /// New quorum; `null` restores the default (1).
    #[serde(default, deserialize_with = "double_option")]
    pub quorum: Option<Option<i64>>,
    /// New unknown_flow mode; `null` restores the default (`drop`).
    #[serde(default, deserialize_with = "double_option")]
    pub unknown_flow: Option<Option<String>>,
}

impl ServiceUpdate {
    /// Applies the update to a `[[service]]` entry.
    pub fn apply(&self, s: &mut ServiceFile) {
        if let Some(x) = &self.scheduler {
            s.scheduler = x.clone();
        }
        if let Some(p) = &self.persistence {
            s.persistence = p.clone();
            if p.is_none() && self.persistence_netmask.is_none() {
                // Non-persistent services take no netmask.
                s.persistence_netmask = None;
            }
        }
        if let Some(m) = &self.persistence_netmask {
            s.persistence_netmask = netmask(m.clone(), &s.address);
        }
        if let Some(a) = &self.allow {
            s.allow = a.clone();
        }
        if let Some(d) = &self.deny {
            s.deny = d.clone();
        }
        if let Some(m) = self.maxconn {
            s.maxconn = Some(m).filter(|&m| m != 0);
        }
        if let Some(r) = self.client_rate {
            s.client_rate = Some(r).filter(|&r| r != 0);
            if r == 0 {
                s.client_burst = None;
            }
        }
        if let Some(b) = self.client_burst {
            s.client_burst = b;
        }
        if let Some(m) = &self.syn_proxy {
            s.syn_proxy = m.clone();
        }
        if let Some(q) = self.quorum {
            s.quorum = q;
        }
        if let Some(u) = &self.unknown_flow {
            s.unknown_flow = u.clone();
        }
    }
}

/// `PUT …/servers/{ip}/{port}` (ipvsadm -e): the fields to change.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerUpdate {
    /// New weight (0 drains).
    #[serde(default)]
    pub weight: Option<i64>,
    /// New forwarding method.
    #[serde(default)]
    pub forward: Option<String>,
    /// New upper threshold.
    #[serde(default)]
    pub upper_threshold: Option<i64>,
    /// New lower threshold.
    #[serde(default)]
    pub lower_threshold: Option<i64>,
    /// New admin state: `ready`, `drain` or `maint` (not part of the configuration).
    #[serde(default)]
    pub admin: Option<String>,
}

impl ServerUpdate {
    /// Whether the update changes the configuration (anything but `admin`).
    pub fn changes_config(&self) -> bool {
        self.weight.is_some()
            || self.forward.is_some()
            || self.upper_threshold.is_some()
            || self.lower_threshold.is_some()
    }

    /// Applies the update to a `[[service.server]]` entry.
    pub fn apply(&self, r: &mut ServerFile) {
        if let Some(w) = self.weight {
            r.weight = Some(w);
        }
        if let Some(f) = &self.forward {
            r.forward = Some(f.clone());
        }
        if let Some(u) = self.upper_threshold {
            r.upper_threshold = Some(u);
        }
        if let Some(l) = self.lower_threshold {
            r.lower_threshold = Some(l);
        }
    }
}

/// `PUT /v1/timeouts` (ipvsadm --set): any of the three; `"0s"` (or absent) keeps the
/// current value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsBody {
    /// Established TCP.
    #[serde(default)]
    pub tcp: Option<String>,
    /// TCP after FIN.
    #[serde(default)]
    pub tcp_fin: Option<String>,
    /// UDP.
    #[serde(default)]
    pub udp: Option<String>,
}

/// The three timeouts as `GET /v1/timeouts` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutsView {
    /// Established TCP (`dataplane.tcp_timeout`).
    pub tcp: String,
    /// TCP after FIN (`dataplane.tcp_fin_timeout`).
    pub tcp_fin: String,
    /// UDP (`dataplane.udp_timeout`).
    pub udp: String,
}

/// A VIP or server address as a path segment or query names it: `10.10.0.100`,
/// `2001:db8::1`, or `[2001:db8::1]` (brackets, as in a URL's host, accepted for IPv6
/// only). The error says how to write it.
pub fn parse_address(text: &str) -> Result<IpAddr, String> {
    let example = "write it like 10.10.0.100 or 2001:db8::1";
    if let Some(inner) = text.strip_prefix('[') {
        let Some(inner) = inner.strip_suffix(']') else {
            return Err(format!("`{text}` opens a bracket and does not close it; {example} (or [2001:db8::1])"));
        };
        return match inner.parse::<IpAddr>() {
            Ok(IpAddr::V6(a)) => Ok(IpAddr::V6(a)),
            Ok(IpAddr::V4(a)) => Err(format!("`{text}`: brackets are for IPv6 addresses only; write {a}")),
            Err(_) => Err(format!("`{text}` is not an IP address; {example}")),
        };
    }
    match text.parse::<IpAddr>() {
        Ok(a) => Ok(a),
        Err(_) if text.contains('%') => {
            Err(format!("`{text}` has a zone id, which a VIP or real server never has; {example}"))
        }
        Err(_) => Err(format!("`{text}` is not an IP address; {example}")),
    }
}

/// A service named in a path or query: `tcp/10.10.0.100/80`, `tcp/2001:db8::1/80`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceRef {
    /// Protocol.
    pub protocol: L4Proto,
    /// VIP, either family.
    pub address: IpAddr,
    /// Port.
    pub port: u16,
}

impl ServiceRef {
    /// Parses the three parts; the error says which is wrong.
    pub fn parse(proto: &str, vip: &str, port: &str) -> Result<ServiceRef, String> {
        let Some(protocol) = parse_protocol(proto) else {
            return Err(format!("unknown protocol `{proto}`; use tcp or udp"));
        };
        let address = parse_address(vip)?;
        let port = port.parse().map_err(|_| format!("`{port}` is not a port (1..65535)"))?;
        Ok(ServiceRef { protocol, address, port })
    }

    /// Parses `tcp/10.10.0.100/80`.
    pub fn parse_joined(s: &str) -> Result<ServiceRef, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [p, v, n] => ServiceRef::parse(p, v, n),
            _ => Err(format!("`{s}` is not a service; write it like tcp/10.10.0.100/80 or tcp/2001:db8::1/80")),
        }
    }

    /// The control plane's key of this service.
    pub fn key(&self) -> crate::config::ServiceKey {
        crate::config::ServiceKey { proto: self.protocol, vip: self.address, port: self.port }
    }

    /// Whether `s` is this service.
    pub fn is(&self, s: &Service) -> bool {
        s.protocol == self.protocol && s.address == self.address && s.port == self.port
    }
}

impl std::fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.protocol.name(), self.address, self.port)
    }
}

/// Parses `10.20.0.11:80` or `[2001:db8::11]:80` (IPv6 in brackets, as ipvsadm writes
/// it; without them the port could not be told from the address).
pub fn parse_endpoint(s: &str) -> Result<(IpAddr, u16), String> {
    let bad = || format!("`{s}` is not an address:port; write it like 10.20.0.11:80 or [2001:db8::11]:80");
    if s.parse::<Ipv6Addr>().is_ok() {
        return Err(format!(
            "`{s}` is an IPv6 address without brackets, so a port cannot be told from it; write it like [{s}]:80"
        ));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (a, p) = rest.split_once(']').ok_or_else(bad)?;
        let p = p.strip_prefix(':').ok_or_else(bad)?;
        return match a.parse::<IpAddr>() {
            Ok(IpAddr::V6(a)) => Ok((IpAddr::V6(a), p.parse().map_err(|_| bad())?)),
            Ok(IpAddr::V4(a)) => Err(format!("`{s}`: brackets are for IPv6 addresses only; write {a}:{p}")),
            Err(_) => Err(bad()),
        };
    }
    let (a, p) = s.rsplit_once(':').ok_or_else(bad)?;
    Ok((IpAddr::V4(a.parse().map_err(|_| bad())?), p.parse().map_err(|_| bad())?))
}
