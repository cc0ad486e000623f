//! rvsd's configuration: one TOML file, parsed, validated as a whole, and turned into
//! typed values the daemon can use without further checks.
//!
//! The contract:
//!
//! * [`file`](mod@file) holds the serde shape of the file (`deny_unknown_fields` everywhere).
//!   A TOML syntax error or a value of the wrong type stops parsing; it is reported as
//!   one [`FieldError`] with its line and column.
//! * [`Config::from_toml`] then validates the *whole* file and reports *every* problem
//!   at once, each naming its field by path (`port[1].address`,
//!   `service[0].server[2].weight`) and saying what is wrong and how to fix it.
//! * A [`Config`] exists only if the whole file is valid: there is no half-valid
//!   configuration to apply.
//!
//! Service VIPs and real-server addresses (and everything naming them: `sorry_server`,
//! `track_services`) are typed for either family; an IPv6 one is checked like an IPv4 one,
//! and an IPv6 service may have IPv4 servers through NAT64 (Full-NAT). Port, route and neighbour addresses are IPv4 (a
//! port's own IPv6 addresses are `ipv6_addresses`, its IPv6 routes `[[route]]`s with an
//! IPv6 prefix); `local_addresses` take either family (IPv4 ones for IPv4 Full-NAT servers,
//! IPv6 ones, on a port with `ipv6_addresses`, for IPv6 ones: [`Port::local_addresses6`]);
//! client prefixes take either family; `persistence_netmask` is a netmask on an IPv4
//! service and a prefix length on an IPv6 one ([`PersistMask`]).

pub mod file;
mod validate;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
pub use rvs_dataplane::sched::PersistMask;
use rvs_dataplane::synproxy::SynProxyMode;
use serde::Serialize;

pub use file::ConfigFile;

/// Defaults for every optional field, in one place.
pub mod defaults {
    use std::time::Duration;

    /// `ha.instance.advert_interval` (keepalived's default).
    pub const VRRP_ADVERT_INTERVAL: Duration = Duration::from_secs(1);
    /// `ha.instance.version`.
    pub const VRRP_VERSION: u8 = 3;
    /// `ha.instance.garp_master_repeat` (keepalived's default).
    pub const GARP_MASTER_REPEAT: u32 = 5;
    /// `ha.instance.garp_master_delay` (keepalived's default).
    pub const GARP_MASTER_DELAY: Duration = Duration::from_secs(5);

    /// `dataplane.workers`.
    pub const WORKERS: u16 = 1;
    /// Most workers rvsd will start (`dataplane.workers`).
    pub const MAX_WORKERS: u16 = 64;
    /// `dataplane.mempool_size`: 2^n - 1 mbufs, the size DPDK's ring-based pools like best.
    pub const MEMPOOL_SIZE: u32 = 16_383;
    /// `dataplane.rx_descriptors`.
    pub const RX_DESCRIPTORS: u16 = 1024;
    /// `dataplane.tx_descriptors`.
    pub const TX_DESCRIPTORS: u16 = 1024;
    /// `dataplane.neighbour_timeout`: as Linux's default `gc_stale_time`-ish lifetime.
    pub const NEIGHBOUR_TIMEOUT: Duration = Duration::from_secs(300);
    /// `dataplane.neighbour_retry`.
    pub const NEIGHBOUR_RETRY: Duration = Duration::from_secs(1);
    /// `dataplane.conn_capacity`: entries per worker (88 bytes each: 23 MB).
    pub const CONN_CAPACITY: u32 = 262_144;
    /// Largest `dataplane.conn_capacity`.
    pub const MAX_CONN_CAPACITY: u32 = 1 << 27;
    /// `dataplane.tcp_timeout`: IPVS's established timeout.
    pub const TCP_TIMEOUT: Duration = Duration::from_secs(900);
    /// `dataplane.tcp_fin_timeout`: IPVS's FIN_WAIT timeout.
    pub const TCP_FIN_TIMEOUT: Duration = Duration::from_secs(120);
    /// `dataplane.udp_timeout`: IPVS's UDP timeout.
    pub const UDP_TIMEOUT: Duration = Duration::from_secs(300);
    /// `dataplane.half_open_timeout` (the reasons are at `Timeouts::half_open`).
    pub const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(5);
    /// `api.listen`.
    pub const API_LISTEN: &str = "127.0.0.1:8700";
    /// `service.server.weight`.
    pub const WEIGHT: u16 = 1;
    /// `service.health.interval`.
    pub const HEALTH_INTERVAL: Duration = Duration::from_secs(2);
    /// `service.health.timeout`.
    pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
    /// `service.health.rise`.
    pub const HEALTH_RISE: u8 = 2;
    /// `service.health.fall`.
    pub const HEALTH_FALL: u8 = 2;
    /// `service.health.path`.
    pub const HEALTH_PATH: &str = "/";
    /// `service.health.status`.
    pub const HEALTH_STATUS: &str = "200-399";
    /// `service.agent.interval`.
    pub const AGENT_INTERVAL: Duration = Duration::from_secs(2);
    /// `service.agent.timeout`.
    pub const AGENT_TIMEOUT: Duration = Duration::from_secs(1);
    /// `service.quorum`.
    pub const QUORUM: u32 = 1;
    /// `bgp.birdc`.
    pub const BIRDC: &str = "birdc";
    /// `bgp.socket` (Debian's bird2 package).
    pub const BIRD_SOCKET: &str = "/run/bird/bird.ctl";
    /// `service.agent.stale_after`, in agent intervals.
    pub const AGENT_STALE_INTERVALS: u32 = 3;
}

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FieldError {
    /// Path of the offending field, such as `service[0].server[2].weight`; empty when
    /// the problem is with the file as a whole (unreadable, TOML syntax).
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Everything wrong with a configuration; never empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigError {
    /// The problems, in file order.
    pub errors: Vec<FieldError>,
}

impl ConfigError {
    /// A single error about the file as a whole.
    fn whole_file(message: String) -> Self {
        ConfigError { errors: vec![FieldError { field: String::new(), message }] }
    }

    /// Whether some error names exactly `field`.
    pub fn names(&self, field: &str) -> bool {
        self.errors.iter().any(|e| e.field == field)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.as_slice() {
            [one] => write!(f, "invalid configuration: {one}"),
            many => {
                write!(f, "invalid configuration ({} errors):", many.len())?;
                for e in many {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// A valid configuration: every value parsed, every cross-reference checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[dataplane]`.
    pub dataplane: Dataplane,
    /// `[[port]]`, in file order; a port's index here is its index everywhere in rvsd.
    pub ports: Vec<Port>,
    /// `[[route]]` entries with an IPv4 prefix.
    pub routes: Vec<Route>,
    /// `[[route]]` entries with an IPv6 prefix.
    pub routes6: Vec<Route6>,
    /// `[[neighbour]]`.
    pub neighbours: Vec<Neighbour>,
    /// `[api]`.
    pub api: Api,
    /// `[[service]]`.
    pub services: Vec<Service>,
    /// `[ha]`.
    pub ha: Option<Ha>,
    /// `[bgp]`.
    pub bgp: Option<Bgp>,
}

impl Config {
    /// Parses and validates a configuration held in a string.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let file = parse_toml(text)?;
        validate::validate(&file)
    }

    /// Reads, parses and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with_text(path).map(|(c, _)| c)
    }

    /// [`Config::load`], also returning the file's text.
    pub fn load_with_text(path: &Path) -> Result<(Config, String), ConfigError> {
        let text = read_file(path)?;
        Config::from_toml(&text).map(|c| (c, text))
    }

    /// Validates an already parsed file.
    pub fn from_file(file: &ConfigFile) -> Result<Config, ConfigError> {
        validate::validate(file)
    }

    /// The sections this version validates but does not act on yet, each named by its
    /// path with a message saying so. Every apply path reports them — the log at start
    /// and on SIGHUP, the `warnings` of `PUT /v1/config`, `rvsd --check` — so an operator
    /// never believes a server is health-checked or a standby is synchronised. Empty when
    /// everything in the file is acted on.
    pub fn not_acted_on(&self) -> Vec<FieldError> {
        // Everything is acted on today: [service.health], [service.agent], backup and
        // sorry_server (crate::health::run), [[ha.instance]] (crate::ha::run) and
        // connection sync (crate::ha::sync). A section added before its code lists itself
        // here.
        Vec::new()
    }

    /// Whether any worker needs the Full-NAT local address pool.
    pub fn uses_fullnat(&self) -> bool {
        self.services.iter().flat_map(|s| &s.servers).any(|r| r.forward == Forward::FullNat)
    }
}

/// Reads the configuration file at `path` (an error names the path).
pub fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError::whole_file(format!(
            "cannot read config file {}: {e}; check the path given to --config",
            path.display()
        ))
    })
}

/// Parses the TOML into the file's shape, reporting the first syntax or type error
/// with its line, column and field path.
pub fn parse_toml(text: &str) -> Result<ConfigFile, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize::<_, ConfigFile>(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let at = inner.span().map(|s| line_col(text, s.start));
        let msg = inner.message().trim_end().to_string();
        let message = match at {
            Some((line, col)) => format!("TOML error at line {line}, column {col}: {msg}"),
            None => format!("TOML error: {msg}"),
        };
        // serde_path_to_error says "." for the root.
        let field = if field == "." { String::new() } else { field };
        ConfigError { errors: vec![FieldError { field, message }] }
    })
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// What a worker does when its queues are empty (`dataplane.idle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Idle {
    /// Poll without pause: lowest latency, one full core per worker (production).
    Busy,
    /// Sleep briefly after empty polls, so a small machine stays usable (the default:
    /// an appliance operator opts into burning cores, a lab never has to opt out).
    Adaptive,
}

/// `[dataplane]`, with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataplane {
    /// Worker lcores, 1..=64.
    pub workers: u16,
    /// Idle policy.
    pub idle: Idle,
    /// Extra EAL arguments from the file.
    pub eal_args: Vec<String>,
    /// Mbufs in the packet pool.
    pub mempool_size: u32,
    /// RX descriptors per queue.
    pub rx_descriptors: u16,
    /// TX descriptors per queue.
    pub tx_descriptors: u16,
    /// Lifetime of a resolved neighbour entry.
    pub neighbour_timeout: Duration,
    /// Interval between ARP requests for an unresolved neighbour.
    pub neighbour_retry: Duration,
    /// Connection table entries per worker (preallocated at start).
    pub conn_capacity: u32,
    /// Source ports (and ICMP identifiers) of health probes on the ports' own
    /// addresses; replies to them go to the prober.
    pub probe_ports: std::ops::RangeInclusive<u16>,
    /// Idle timeout of established TCP connections.
    pub tcp_timeout: Duration,
    /// Timeout of TCP connections in FIN_WAIT.
    pub tcp_fin_timeout: Duration,
    /// Idle timeout of UDP flows.
    pub udp_timeout: Duration,
    /// Timeout of half-open DR and IPIP connections (SYN seen, no ACK completing the
    /// handshake yet); see `rvs_dataplane::types::Timeouts::half_open`.
    pub half_open_timeout: Duration,
    /// IPVS's `expire_nodest_conn`: drop (and remove) the connections of a deleted real
    /// server at their next packet instead of forwarding them until they expire.
    pub expire_nodest_conn: bool,
    /// Half-open TCP connections per worker at or above which `syn_proxy = "auto"`
    /// services answer SYNs with cookies (`rvs_dataplane::synproxy`).
    pub syn_proxy_threshold: u32,
}

impl Dataplane {
    /// Whether `eal_args` already chooses the lcores (`-l`, `-c` or `--lcores`), in
    /// which case rvsd does not add its own `-l`.
    pub fn eal_sets_lcores(&self) -> bool {
        // `-l 0-1`, `-l0-1`, `-c 0x3`, `-c0x3`, `--lcores=…`, `--lcores …`.
        self.eal_args.iter().any(|a| a.starts_with("-l") || a.starts_with("-c") || a.starts_with("--lcores"))
    }
}

/// How DPDK finds a port's device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    /// A virtual device string, passed to the EAL as `--vdev`; the port is then found
    /// by the vdev's name (the part before the first comma).
    Vdev(String),
    /// A PCI address, passed to the EAL as `-a`.
    Pci(String),
}

impl Device {
    /// The name DPDK gives the port: the vdev's name or the PCI address.
    pub fn port_name(&self) -> &str {
        match self {
            Device::Vdev(s) => s.split(',').next().unwrap_or(s),
            Device::Pci(s) => s,
        }
    }

    /// The device as written in the file.
    pub fn as_str(&self) -> &str {
        match self {
            Device::Vdev(s) | Device::Pci(s) => s,
        }
    }
}

/// A MAC address. Displays as lowercase `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Whether the group bit is clear and the address is not all zeros: a MAC a host
    /// may own.
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 1 == 0 && self.0 != [0; 6]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a MAC address; write six hex bytes like aa:bb:cc:dd:ee:ff");
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in out.iter_mut() {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

/// `[[port]]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Operator's name.
    pub name: String,
    /// Where the port comes from.
    pub device: Device,
    /// Own address and connected prefix (`10.10.0.1/24`).
    pub address: Ipv4Net,
    /// Full-NAT local addresses on this port: the IPv4 ones (for IPv4 servers)...
    pub local_addresses: Vec<Ipv4Addr>,
    /// ... and the IPv6 ones (for the IPv6 servers of IPv6 services), from the same
    /// `local_addresses` list of the file.
    pub local_addresses6: Vec<Ipv6Addr>,
    /// IPv6 addresses with their on-link prefixes (`2001:db8:1::1/64`); with any, the
    /// port also has its link-local address.
    pub ipv6_addresses: Vec<Ipv6Net>,
    /// MAC override; `None` uses the device's.
    pub mac: Option<MacAddr>,
    /// MTU in bytes; `None` keeps the device's default (1500 on Ethernet NICs).
    pub mtu: Option<u16>,
    /// The kernel exception path (`exception = true`), if on.
    pub exception: Option<Exception>,
}

/// A port's kernel exception path (`[[port]] exception = true`; see
/// `rvs_dataplane::exception` and the control plane's `exception` module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// The kernel interface's name: `rvs-` and the port's name (at most 15 bytes, Linux's
    /// `IFNAMSIZ` - 1).
    pub iface: String,
    /// Frames a second each way (`exception_rate`), for the port as a whole.
    pub rate: u32,
}

/// The prefix of every exception interface's name: `rvs-front` for port `front`.
pub const EXCEPTION_IFACE_PREFIX: &str = "rvs-";

/// Longest Linux interface name (`IFNAMSIZ` - 1).
pub const IFACE_NAME_MAX: usize = 15;

/// `[[route]]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix (canonical: host bits are zero).
    pub prefix: Ipv4Net,
    /// Next hop.
    pub via: Ipv4Addr,
    /// Index in [`Config::ports`] of the port whose connected prefix holds `via`.
    pub port: usize,
}

/// `[[route]]` with an IPv6 prefix, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route6 {
    /// Destination prefix (canonical: host bits are zero); `::/0` is the default route.
    pub prefix: Ipv6Net,
    /// Next hop: a global address on a port's `ipv6_addresses` prefix.
    pub via: Ipv6Addr,
    /// Index in [`Config::ports`] of the port whose IPv6 prefix holds `via`.
    pub port: usize,
}

/// `[[neighbour]]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// IPv4 address.
    pub address: Ipv4Addr,
    /// MAC address.
    pub mac: MacAddr,
    /// Index in [`Config::ports`].
    pub port: usize,
}

/// `[api]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    /// Address and port of the REST server.
    pub listen: SocketAddr,
    /// The bearer token's file (checked: exists, non-empty, mode 0600 or 0400); required
    /// when `listen` is not loopback.
    pub token_file: Option<PathBuf>,
}

/// Transport protocol of a service: the data path's type (named `tcp`/`udp` everywhere
/// outside, by [`L4Proto::name`] and [`parse_protocol`]).
pub use rvs_dataplane::types::L4Proto;

/// The protocol named `name` (`tcp` or `udp`, as in the file, the REST paths and JSON).
pub fn parse_protocol(name: &str) -> Option<L4Proto> {
    [L4Proto::Tcp, L4Proto::Udp].into_iter().find(|p| p.name() == name)
}

/// A scheduler, by its ipvsadm `-s` name: the data path's own list, so the config accepts
/// exactly the schedulers that exist.
pub use rvs_dataplane::types::SchedulerKind as Scheduler;

/// The scheduler name that is wrr over agent-reported load (see [`Service::system_load`]).
pub const SYSTEM_LOAD: &str = "system-load";

/// `unknown_flow` (`drop`, `schedule`): the data path's type.
pub use rvs_dataplane::types::UnknownFlow;

/// How a real server is reached (`dr`, `nat`, `fullnat`, `tunnel`): the data path's type.
pub use rvs_dataplane::types::ForwardMode as Forward;

/// A service's identity in the control plane: protocol, VIP (either family) and port.
/// The data path's key is the same triple ([`From`] either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// TCP or UDP.
    pub proto: L4Proto,
    /// The VIP.
    pub vip: IpAddr,
    /// The virtual port.
    pub port: u16,
}

impl From<rvs_dataplane::types::ServiceKey> for ServiceKey {
    fn from(k: rvs_dataplane::types::ServiceKey) -> Self {
        ServiceKey { proto: k.proto, vip: k.vip, port: k.port }
    }
}

impl From<ServiceKey> for rvs_dataplane::types::ServiceKey {
    fn from(k: ServiceKey) -> Self {
        rvs_dataplane::types::ServiceKey { proto: k.proto, vip: k.vip, port: k.port }
    }
}

impl fmt::Display for ServiceKey {
    /// `tcp/10.10.0.100/80`, `tcp/2001:db8::1/80`: how paths, query strings and
    /// `track_services` name a service.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.proto.name(), self.vip, self.port)
    }
}

/// `10.20.0.11:80`, `[2001:db8::11]:80`: an address and port as ipvsadm, the REST API,
/// logs and metrics labels spell them (IPv6 in brackets).
pub fn endpoint(addr: IpAddr, port: u16) -> String {
    SocketAddr::new(addr, port).to_string()
}

/// `[[service]]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// TCP or UDP.
    pub protocol: L4Proto,
    /// Virtual IP, either family (a service's servers are of the same family).
    pub address: IpAddr,
    /// Virtual port.
    pub port: u16,
    /// Scheduler (`wrr` for `system-load`).
    pub scheduler: Scheduler,
    /// `scheduler = "system-load"`: wrr over the agent's weights, each server's weight in
    /// effect being its configured weight × the agent's percentage (rvs-agent's free
    /// capacity); requires `[service.agent]`.
    pub system_load: bool,
    /// Persistence timeout, if persistent.
    pub persistence: Option<Duration>,
    /// Which clients share a persistent server: the client address masked with an IPv4
    /// netmask (IPv4 services, default 255.255.255.255) or cut to a prefix length (IPv6
    /// services, default 128); always of the VIP's family.
    pub persistence_netmask: PersistMask,
    /// Client prefixes allowed to open connections; empty allows all. Either family (a
    /// prefix only matches clients of its family).
    pub allow: Vec<IpNet>,
    /// Client prefixes refused (deny wins over allow).
    pub deny: Vec<IpNet>,
    /// Most connections of the service at once, over all workers; 0 = no limit.
    pub maxconn: u32,
    /// New connections per second per client and worker; 0 = no limit.
    pub client_rate: u32,
    /// Depth of each client's bucket: the configured `client_burst`, or `client_rate`
    /// when absent; 0 when there is no rate.
    pub client_burst: u32,
    /// The configured SYN-proxy mode; `None`: the default ([`Service::syn_proxy_mode`]).
    pub syn_proxy: Option<SynProxyMode>,
    /// Healthy servers needed for the VIP to be announced (`[bgp]`); 0: never withdrawn
    /// for this service.
    pub quorum: u32,
    /// What a non-SYN TCP segment of an unknown flow does.
    pub unknown_flow: UnknownFlow,
    /// Health checking, if any.
    pub health: Option<Health>,
    /// Agent checking, if any.
    pub agent: Option<Agent>,
    /// The server that takes the traffic when no server is up, if any.
    pub sorry_server: Option<SocketAddr>,
    /// Real servers.
    pub servers: Vec<Server>,
}

impl Service {
    /// The service's key: protocol, VIP, port.
    pub fn key(&self) -> ServiceKey {
        ServiceKey { proto: self.protocol, vip: self.address, port: self.port }
    }

    /// Whether the service can be SYN-proxied: TCP, every server NAT or Full-NAT (the
    /// proxy rewrites both directions, so replies must come back through rvs). An IPv6
    /// service's IPv4 servers (NAT64, Full-NAT only) are proxied too: the client's
    /// handshake is IPv6, the SYN to the server IPv4.
    pub fn syn_proxy_capable(&self) -> bool {
        self.protocol == L4Proto::Tcp
            && self.servers.iter().all(|s| matches!(s.forward, Forward::Nat | Forward::FullNat))
    }

    /// The SYN-proxy mode in effect: the configured one, else `auto` for a capable
    /// service (issue 14: on by default above the half-open threshold) and `off` for
    /// the others.
    pub fn syn_proxy_mode(&self) -> SynProxyMode {
        match self.syn_proxy {
            Some(m) => m,
            None if self.syn_proxy_capable() => SynProxyMode::Auto,
            None => SynProxyMode::Off,
        }
    }
}

/// What a health probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthKind {
    /// TCP connect.
    Tcp,
    /// HTTP GET of `path`, judged by status and body.
    Http {
        /// Request path.
        path: String,
        /// `Host` header; `None` sends the server's address.
        host: Option<String>,
        /// Accepted statuses.
        status: StatusRanges,
        /// A substring the body must contain.
        body: Option<String>,
    },
    /// UDP: send a datagram, expect a reply.
    Udp {
        /// The datagram sent.
        send: String,
        /// What the reply must start with (empty: any reply).
        expect: String,
    },
    /// ICMP echo.
    Icmp,
    /// An external command: program and arguments (see [`crate::health::command`]).
    Command(Vec<String>),
}

/// What happens to a server the checks find down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDown {
    /// Weight 0 in effect: no new connections, existing flows continue.
    Quiesce,
    /// Taken out of the service.
    Remove,
}

/// `[service.health]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Probe kind.
    pub kind: HealthKind,
    /// Port to probe instead of the server's.
    pub port: Option<u16>,
    /// Time between probes.
    pub interval: Duration,
    /// Time a probe may take; at most `interval`.
    pub timeout: Duration,
    /// Successes before a server comes back.
    pub rise: u8,
    /// Failures before a server goes out.
    pub fall: u8,
    /// Time between probes while the state is changing.
    pub fastinter: Duration,
    /// Time between probes while down.
    pub downinter: Duration,
    /// Whether servers start up (`true`) or down.
    pub start_up: bool,
    /// What a down server becomes.
    pub on_down: OnDown,
    /// Ramp from weight 0 to full weight after recovery, if set.
    pub slowstart: Option<Duration>,
    /// Program and arguments run on each transition (empty: none).
    pub notify: Vec<String>,
}

/// `[service.agent]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// The agent's TCP port on each server.
    pub port: u16,
    /// Time between queries.
    pub interval: Duration,
    /// Time a query may take; at most `interval`.
    pub timeout: Duration,
    /// How long an answer counts when the agent stops answering; at least `interval`.
    pub stale_after: Duration,
}

pub use crate::health::http::StatusRanges;

/// `[[service.server]]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Real server address (the family of its service's VIP).
    pub address: IpAddr,
    /// Real server port.
    pub port: u16,
    /// Weight; 0 is quiescent.
    pub weight: u16,
    /// Forwarding method.
    pub forward: Forward,
    /// Upper connection threshold (0 = none).
    pub upper_threshold: u32,
    /// Lower connection threshold (0 = none).
    pub lower_threshold: u32,
    /// Used only when no non-backup server is up.
    pub backup: bool,
}

/// `[bgp]`, validated: where the include file goes and how BIRD is told to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bgp {
    /// The include file (absolute, in an existing directory).
    pub include_file: PathBuf,
    /// The birdc program.
    pub birdc: PathBuf,
    /// BIRD's control socket (absolute).
    pub socket: PathBuf,
}

/// `[ha]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ha {
    /// Connection sync with the peer, when `sync_listen` and `sync_peer` are set.
    pub sync: Option<SyncConfig>,
    /// The VRRP instances, in file order; an instance's index is its
    /// [`rvs_dataplane::ha::HaGroup`].
    pub instances: Vec<HaInstance>,
}

impl Ha {
    /// The instance whose VRID is `vrid` (VRIDs are unique per port; the first one).
    pub fn instance(&self, vrid: u8) -> Option<&HaInstance> {
        self.instances.iter().find(|i| i.vrid == vrid)
    }
}

/// `[ha]`'s connection sync, validated: both addresses of one family, and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// Where this node receives sync datagrams (management network).
    pub listen: SocketAddr,
    /// The peer's `listen`; datagrams from any other address are refused.
    pub peer: SocketAddr,
    /// The key file (checked: exists, non-empty, no group/other permissions).
    pub key_file: PathBuf,
    /// How often every live connection is sent again.
    pub refresh: Duration,
    /// How long a node that would preempt waits for its bulk resync first.
    pub failback_limit: Duration,
}

/// What a tracked service's outage does to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackEffect {
    /// The instance goes to fault (keepalived's behaviour without a weight).
    Fault,
    /// The priority drops by this much per service with no healthy server.
    Weight(u8),
}

/// `[[ha.instance]]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaInstance {
    /// Virtual router identifier.
    pub vrid: u8,
    /// Index in [`Config::ports`] of the port adverts use.
    pub port: usize,
    /// Priority 1..=254.
    pub priority: u8,
    /// Time between adverts (whole centiseconds; whole seconds in version 2).
    pub advert_interval: Duration,
    /// Preemption.
    pub preempt: bool,
    /// How long a lower-priority master is tolerated before preempting.
    pub preempt_delay: Duration,
    /// VRRP version, 3 or 2 (3 only when every address is IPv6: VRRP over IPv6).
    pub version: u8,
    /// The addresses that move with the instance, either family: with an IPv4 address the
    /// adverts are VRRP over IPv4 and carry the IPv4 ones; with IPv6 addresses only they are
    /// VRRPv3 over IPv6.
    pub addresses: Vec<std::net::IpAddr>,
    /// The virtual router's link-local address (fe80::/10) of an instance whose adverts are
    /// VRRP over IPv6: first in its adverts (RFC 5798 §5.2.9), answered by the master on
    /// the instance's port, announced on takeover. Never set on an instance with an IPv4
    /// address.
    pub virtual_link_local: Option<std::net::Ipv6Addr>,
    /// Rounds of gratuitous ARP per burst.
    pub garp_master_repeat: u32,
    /// Delay before the second burst.
    pub garp_master_delay: Duration,
    /// Indexes in [`Config::ports`] of the tracked ports.
    pub track_ports: Vec<usize>,
    /// Whether a stalled worker puts the instance in fault.
    pub track_workers: bool,
    /// Tracked services: protocol, VIP, port.
    pub track_services: Vec<ServiceKey>,
    /// What a tracked service with no healthy server does.
    pub track_effect: TrackEffect,
    /// Program and arguments run on each transition (empty: none).
    pub notify: Vec<String>,
}

impl HaInstance {
    /// The family of the instance's adverts: VRRP over IPv4 with an IPv4 address, else
    /// VRRPv3 over IPv6. A VRID is unique per port and family.
    pub fn family(&self) -> crate::config::AdvertFamily {
        if self.addresses.iter().any(std::net::IpAddr::is_ipv4) {
            AdvertFamily::Ipv4
        } else {
            AdvertFamily::Ipv6
        }
    }
}

/// The address family of a VRRP instance's adverts: the key, with port and VRID, of an
/// instance (keepalived, like RFC 5798, runs IPv4 and IPv6 virtual routers apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AdvertFamily {
    /// VRRP over IPv4 (224.0.0.18).
    Ipv4,
    /// VRRPv3 over IPv6 (ff02::12).
    Ipv6,
}

impl AdvertFamily {
    /// The name used in REST (`family`, `?family=`), metrics labels and logs.
    pub fn name(self) -> &'static str {
        match self {
            AdvertFamily::Ipv4 => "ipv4",
            AdvertFamily::Ipv6 => "ipv6",
        }
    }

    /// Parses [`AdvertFamily::name`]'s words.
    pub fn parse(text: &str) -> Option<AdvertFamily> {
        match text {
            "ipv4" => Some(AdvertFamily::Ipv4),
            "ipv6" => Some(AdvertFamily::Ipv6),
            _ => None,
        }
    }
}

impl std::fmt::Display for AdvertFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
