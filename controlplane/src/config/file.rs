//! The configuration file exactly as written: serde types for rvsd's TOML.
//!
//! These types only describe the file's *shape*. Every field whose value needs
//! checking (addresses, prefixes, names, durations, ranges) is kept here as the
//! plain string or integer the operator wrote, so that a bad value is not a serde
//! error that stops at the first problem: validation ([`super::Config::from_toml`]) checks the whole file,
//! collects every error with the path of its field, and only then builds the typed
//! [`super::Config`]. Integers are `i64` for the same reason: `weight = 70000` or
//! `port = -1` must come back as "`service[0].server[2].weight`: …", not as a
//! deserialisation failure.
//!
//! Every table denies unknown fields, so a misspelt key is an error, never silently
//! ignored.

use serde::{Deserialize, Serialize};

/// The whole file. Table names are singular (`[[port]]`, `[[service]]`) as in the
/// design's sketch; every section except `[dataplane]`'s contents may be omitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[dataplane]`: workers, idle policy, EAL arguments, sizes, timeouts.
    #[serde(default)]
    pub dataplane: DataplaneFile,
    /// `[[port]]`: the DPDK ports and their addresses.
    #[serde(default, rename = "port", skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortFile>,
    /// `[[route]]`: static routes.
    #[serde(default, rename = "route", skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteFile>,
    /// `[[neighbour]]`: static ARP entries.
    #[serde(default, rename = "neighbour", skip_serializing_if = "Vec::is_empty")]
    pub neighbours: Vec<NeighbourFile>,
    /// `[api]`: the REST port.
    #[serde(default, skip_serializing_if = "ApiFile::is_default")]
    pub api: ApiFile,
    /// `[[service]]`: virtual services and their real servers.
    #[serde(default, rename = "service", skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceFile>,
    /// `[ha]`: master/backup pairing; absent for a standalone balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha: Option<HaFile>,
    /// `[bgp]`: announcing the VIPs through BIRD; absent when no router learns them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpFile>,
}

/// `[bgp]`: the BIRD include file rvsd keeps and how it makes BIRD read it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpFile {
    /// The file rvsd writes (an absolute path, in an existing directory), which BIRD's
    /// configuration includes (`include "/run/rvs/bird-vips.conf";`).
    pub include_file: String,
    /// The birdc program (default `"birdc"`, looked up in PATH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birdc: Option<String>,
    /// BIRD's control socket (default `"/run/bird/bird.ctl"`, Debian's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
}

/// `[dataplane]`. Every field has a default (see [`super::defaults`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataplaneFile {
    /// Number of worker lcores (1..=64).
    pub workers: Option<i64>,
    /// `"busy"` or `"adaptive"`.
    pub idle: Option<String>,
    /// Extra EAL arguments, passed before the ones rvsd derives from the ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eal_args: Vec<String>,
    /// Number of mbufs in the packet pool.
    pub mempool_size: Option<i64>,
    /// RX descriptors per queue.
    pub rx_descriptors: Option<i64>,
    /// TX descriptors per queue.
    pub tx_descriptors: Option<i64>,
    /// How long a resolved neighbour is trusted before it is refreshed (a duration).
    pub neighbour_timeout: Option<String>,
    /// How often an unanswered ARP request is repeated (a duration).
    pub neighbour_retry: Option<String>,
    /// Connection table entries per worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_capacity: Option<i64>,
    /// Source ports of health probes on the ports' own addresses, `"LOW-HIGH"`
    /// (default `"61000-61999"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_ports: Option<String>,
    /// Idle timeout of established TCP connections (ipvsadm --set's first value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_timeout: Option<String>,
    /// Timeout of TCP connections after a FIN (ipvsadm --set's second value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_fin_timeout: Option<String>,
    /// Idle timeout of UDP flows (ipvsadm --set's third value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_timeout: Option<String>,
    /// Timeout of half-open DR and IPIP connections (SYN seen, handshake not completed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_open_timeout: Option<String>,
    /// What happens to the connections of a deleted real server (IPVS's sysctl of the
    /// same name): `false` (default) forwards them until they expire, `true` removes each
    /// at its next packet, which is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_nodest_conn: Option<bool>,
    /// Half-open TCP connections per worker at or above which `syn_proxy = "auto"`
    /// services answer SYNs with cookies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syn_proxy_threshold: Option<i64>,
}

/// `[[port]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortFile {
    /// Operator's name for the port, used in logs, status and `[[neighbour]]`.
    pub name: String,
    /// A DPDK vdev string (`net_af_packet0,iface=front`) or a PCI address (`0000:03:00.0`).
    pub device: String,
    /// The port's own address with its connected prefix, `"a.b.c.d/len"`.
    pub address: String,
    /// Full-NAT local (source) addresses owned by this port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_addresses: Vec<String>,
    /// The port's IPv6 addresses with their on-link prefixes, `"2001:db8:1::1/64"`; the
    /// port then also answers for its link-local address (derived from its MAC).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6_addresses: Vec<String>,
    /// MAC address to use instead of the one the device reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// MTU in bytes (default: the device's, normally 1500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    /// A kernel exception interface for this port (`rvs-<name>`, DPDK's `net_tap`) that
    /// carries the port's address and MAC and gets what the lite stack does not answer
    /// for the port's address (default false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exception: bool,
    /// Frames a second each way through the exception path (default 10000); only with
    /// `exception = true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception_rate: Option<i64>,
}

/// `[[route]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// Destination prefix, `"a.b.c.d/len"` or an IPv6 `"2001:db8:99::/48"`; `"0.0.0.0/0"`
    /// (`"::/0"`) is the default route.
    pub prefix: String,
    /// Next hop, of the prefix's family; must be on one of the ports' connected prefixes
    /// (for IPv6: a global address on a port's `ipv6_addresses` prefix).
    pub via: String,
}

/// `[[neighbour]]`: a static ARP entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighbourFile {
    /// The neighbour's IPv4 address.
    pub address: String,
    /// Its MAC address, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// Name of the `[[port]]` it is reached through.
    pub port: String,
}

/// `[api]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiFile {
    /// `ip:port` the REST server listens on (default `127.0.0.1:8700`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// File holding the bearer token REST requests must present (`Authorization: Bearer
    /// <token>`); required when `listen` is not a loopback address. Mode 0600 or 0400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
}

impl ApiFile {
    /// Whether nothing is set (the canonical file then has no `[api]` table).
    pub fn is_default(&self) -> bool {
        *self == ApiFile::default()
    }
}

/// `[[service]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    /// `"tcp"` or `"udp"`.
    pub protocol: String,
    /// The virtual IP.
    pub address: String,
    /// The virtual port (1..=65535).
    pub port: i64,
    /// Scheduler name, as ipvsadm's `-s`.
    pub scheduler: String,
    /// Persistence timeout (a duration), as ipvsadm's `-p`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<String>,
    /// Netmask grouping clients for persistence (ipvsadm -M), default 255.255.255.255.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_netmask: Option<String>,
    /// Client prefixes allowed to open connections (`"a.b.c.d/len"` or an address); empty
    /// allows every client. DPVS's white list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Client prefixes refused, whatever `allow` says. DPVS's black list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// Most connections of the service at once, over all workers (HAProxy's `maxconn`);
    /// 0 or absent = no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxconn: Option<i64>,
    /// New connections per second per client address and worker (a token bucket); 0 or
    /// absent = no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_rate: Option<i64>,
    /// Depth of each client's bucket (new connections at once); absent = `client_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_burst: Option<i64>,
    /// SYN proxy: `"auto"`, `"always"` or `"off"`; absent = `"auto"` for TCP services
    /// whose servers are all NAT or Full-NAT, `"off"` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syn_proxy: Option<String>,
    /// Healthy real servers needed for the VIP to be announced over BGP (default 1; 0:
    /// this service never withdraws its VIP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<i64>,
    /// A TCP segment other than a SYN for no known connection: `"drop"` (default) or
    /// `"schedule"` (DR/IPIP with a consistent scheduler, for nodes behind ECMP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_flow: Option<String>,
    /// `[service.health]`: how real servers are probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthFile>,
    /// `[service.agent]`: an HAProxy-style agent on each server that reports its state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentFile>,
    /// `"IP:PORT"` of a server that takes the traffic when no server (backup or not) is up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<String>,
    /// `[[service.server]]`: the real servers.
    #[serde(default, rename = "server", skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<ServerFile>,
}

/// `[service.health]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthFile {
    /// `tcp`, `http`, `udp`, `icmp` or `command`.
    pub kind: String,
    /// HTTP path for `kind = "http"` (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `Host` header for `kind = "http"` (default: the server's address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Accepted HTTP statuses for `kind = "http"`: one code (`200`, the older form) or a
    /// string of codes and ranges (`"200-299,301"`; default `"200-399"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusFile>,
    /// A substring the HTTP body must contain, for `kind = "http"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The datagram sent by `kind = "udp"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    /// What the UDP reply must start with (default: any reply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    /// Program and arguments for `kind = "command"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Port to probe instead of the server's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Time between probes (a duration, default 2s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Time a probe may take (a duration, default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Consecutive successes before a failed server is used again (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise: Option<i64>,
    /// Consecutive failures before a server is taken out (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall: Option<i64>,
    /// Time between probes while a server's state is changing (default: interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fastinter: Option<String>,
    /// Time between probes while a server is down (default: interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downinter: Option<String>,
    /// `"up"` (default) or `"down"`: what a server is believed to be before any probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// `"quiesce"` (default: weight 0, flows continue) or `"remove"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_down: Option<String>,
    /// How long a recovered server takes to reach its full weight (a duration; default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slowstart: Option<String>,
    /// Program and arguments run on every up/down transition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
}

/// `status` in `[service.health]`: an integer (older files) or a string of ranges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatusFile {
    /// `status = 200`.
    Code(i64),
    /// `status = "200-299,301"`.
    Ranges(String),
}

/// `[service.agent]`: the HAProxy agent-check protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFile {
    /// TCP port the agent listens on, on each real server.
    pub port: Option<i64>,
    /// Time between agent queries (a duration, default 2s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Time a query may take (a duration, default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// How long the last agent answer counts when the agent stops answering (default 3 × interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_after: Option<String>,
}

/// `[[service.server]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// Real server IPv4 address.
    pub address: String,
    /// Real server port (default: the service's port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Scheduling weight 0..=65535 (default 1; 0 takes no new connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// `dr`, `nat`, `fullnat` or `tunnel` (default `dr`, as ipvsadm's `-g`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<String>,
    /// Upper connection threshold, ipvsadm's `-x` (0 = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper_threshold: Option<i64>,
    /// Lower connection threshold, ipvsadm's `-y` (0 = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_threshold: Option<i64>,
    /// A backup server takes traffic only when no non-backup server is up (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<bool>,
}

/// `[ha]`: VRRP instances, and connection sync with the peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaFile {
    /// File holding the key that authenticates connection sync (HMAC-SHA256); must not be
    /// readable by group or others (mode 0600). Required with `sync_listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// `IP:PORT` this node receives connection sync on (management network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_listen: Option<String>,
    /// `IP:PORT` of the peer's `sync_listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_peer: Option<String>,
    /// How often every live connection is sent again (so the peer's timers never expire a
    /// live flow); default "30s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_refresh: Option<String>,
    /// How long a node that would preempt waits for its bulk resync from the current
    /// master to complete before preempting anyway (logged); default "30s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback_sync_limit: Option<String>,
    /// `[[ha.instance]]`: the VRRP instances.
    #[serde(default, rename = "instance", skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<HaInstanceFile>,
}

/// `[[ha.instance]]`: one VRRP virtual router.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaInstanceFile {
    /// Virtual router identifier, 1..=255, unique per port and advert family (one instance
    /// with VRRP over IPv4 and one with VRRP over IPv6 may share it).
    pub vrid: i64,
    /// Name of the `[[port]]` the adverts go out of (and come in on).
    pub port: String,
    /// Priority 1..=254; the higher node is master.
    pub priority: i64,
    /// Time between adverts (centisecond resolution; default `"1s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advert_interval: Option<String>,
    /// Whether a higher-priority backup takes over from a lower-priority master (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt: Option<bool>,
    /// How long a lower-priority master is tolerated before preempting it (default `"0s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt_delay: Option<String>,
    /// VRRP version: 3 (default) or 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// The VIPs, Full-NAT local and floating addresses that move with the instance, IPv4
    /// or IPv6 (all IPv6: the instance speaks VRRP over IPv6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// The virtual router's IPv6 link-local address (fe80::/10), for an instance whose
    /// addresses are all IPv6: sent first in its adverts (RFC 5798 §5.2.9, keepalived's
    /// first `virtual_ipaddress`) and answered by the master on the instance's port.
    /// Absent: the adverts carry the configured addresses only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_link_local: Option<String>,
    /// Rounds of gratuitous ARP on becoming master (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_master_repeat: Option<i64>,
    /// Delay before the second round of gratuitous ARP (default `"5s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_master_delay: Option<String>,
    /// Ports whose link loss puts the instance in fault.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_ports: Vec<String>,
    /// Whether a worker that stops polling puts the instance in fault (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_workers: Option<bool>,
    /// Services (`"tcp/VIP/PORT"`) whose having no healthy server puts the instance in
    /// fault, or lowers its priority by `track_service_weight`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_services: Vec<String>,
    /// Priority taken off per tracked service with no healthy server, 1..=253, instead of
    /// fault (keepalived's `weight`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_service_weight: Option<i64>,
    /// Program and arguments run on each transition, with `RVS_VRRP_*` in the environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
}
