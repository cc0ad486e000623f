//! Whole-file validation: [`ConfigFile`] → [`Config`], or every error at once.
//!
//! The checker walks the file in order and never stops at the first problem. A field
//! that fails to parse is simply left out of the cross-checks that need it (so one bad
//! address yields one error, not a cascade of "does not match" follow-ups). A typed
//! [`Config`] is built only when the error list is empty.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rvs_dataplane::synproxy::SynProxyMode;
use rvs_dataplane::worker::MAX_PORTS;

use super::file::{
    AgentFile, BgpFile, ConfigFile, HaFile, HaInstanceFile, HealthFile, PortFile, RouteFile, ServerFile, ServiceFile,
    StatusFile,
};
use super::{
    defaults, parse_protocol, AdvertFamily, Agent, Api, Bgp, Config, ConfigError, Dataplane, Device, Exception,
    FieldError, Forward, Ha, HaInstance, Health, HealthKind, Idle, L4Proto, MacAddr, Neighbour, OnDown, PersistMask,
    Port, Route, Route6, Scheduler, Server, Service, ServiceKey, StatusRanges, SyncConfig, TrackEffect, UnknownFlow,
    EXCEPTION_IFACE_PREFIX, IFACE_NAME_MAX, SYSTEM_LOAD,
};

/// Validates `file` as a whole.
pub(super) fn validate(file: &ConfigFile) -> Result<Config, ConfigError> {
    let mut v = Checker::default();
    let dataplane = v.dataplane(file);
    let ports = v.ports(file);
    let (routes, routes6) = v.routes(file, &ports);
    let neighbours = v.neighbours(file, &ports);
    let api = v.api(file);
    let services = v.services(file, &ports, &routes);
    let ha = file.ha.as_ref().and_then(|ha| v.ha(ha, file, &ports, &services));
    let bgp = match &file.bgp {
        None => Some(None),
        Some(b) => v.bgp(b).map(Some),
    };
    if let Some(dp) = &dataplane {
        v.mempool_fits(dp, file.ports.len());
    }
    if !v.errors.is_empty() {
        return Err(ConfigError { errors: v.errors });
    }
    // Every part that came back `None` pushed an error, so with no errors every part
    // is `Some`; the fallback arm is unreachable but reports rather than panics.
    match (dataplane, api, bgp) {
        (Some(dataplane), Some(api), Some(bgp)) => Ok(Config {
            dataplane,
            ports: ports.into_iter().flatten().collect(),
            routes: routes.into_iter().flatten().collect(),
            routes6,
            neighbours: neighbours.into_iter().flatten().collect(),
            api,
            services: services.into_iter().flatten().collect(),
            ha,
            bgp,
        }),
        _ => Err(ConfigError {
            errors: vec![FieldError { field: String::new(), message: "internal error: validation incomplete".into() }],
        }),
    }
}

/// Who already owns an address, for conflict messages.
#[derive(Default)]
struct Owners(HashMap<IpAddr, String>);

impl Owners {
    /// Claims `addr` for `path`; on conflict returns the earlier owner's path.
    fn claim(&mut self, addr: impl Into<IpAddr>, path: &str) -> Result<(), String> {
        let addr = addr.into();
        match self.0.get(&addr) {
            Some(owner) => Err(owner.clone()),
            None => {
                self.0.insert(addr, path.to_string());
                Ok(())
            }
        }
    }
}

#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
    /// Every address rvs answers for: port addresses (IPv4 and IPv6), local addresses, VIPs.
    owners: Owners,
}

impl Checker {
    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError { field: field.into(), message: message.into() });
    }

    /// Records `r`'s error (if any) against `field` and passes the value on.
    fn check<T>(&mut self, field: &str, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(m) => {
                self.err(field, m);
                None
            }
        }
    }

    fn int_in<T: TryFrom<i64>>(&mut self, field: &str, value: i64, lo: i64, hi: i64, hint: &str) -> Option<T> {
        if value < lo || value > hi {
            self.err(field, format!("{value} is out of range: it must be between {lo} and {hi}{hint}"));
            return None;
        }
        T::try_from(value).ok()
    }

    fn duration(&mut self, field: &str, text: Option<&str>, default: Duration) -> Option<Duration> {
        match text {
            None => Some(default),
            Some(t) => {
                let d = self.check(field, parse_duration(t))?;
                if d.is_zero() {
                    self.err(field, format!("`{t}` is zero; give a positive duration such as \"1s\""));
                    return None;
                }
                Some(d)
            }
        }
    }

    fn dataplane(&mut self, file: &ConfigFile) -> Option<Dataplane> {
        let dp = &file.dataplane;
        let workers = match dp.workers {
            None => Some(defaults::WORKERS),
            Some(0) => {
                self.err(
                    "dataplane.workers",
                    "0 workers cannot forward anything; set workers = 1 or more (one lcore each)",
                );
                None
            }
            Some(w) => self.int_in(
                "dataplane.workers",
                w,
                1,
                i64::from(defaults::MAX_WORKERS),
                " (one worker per lcore; the main lcore is extra)",
            ),
        };
        let idle = match dp.idle.as_deref() {
            None | Some("adaptive") => Some(Idle::Adaptive),
            Some("busy") => Some(Idle::Busy),
            Some(other) => {
                self.err("dataplane.idle", format!("unknown idle policy `{other}`; use \"busy\" or \"adaptive\""));
                None
            }
        };
        for (i, a) in dp.eal_args.iter().enumerate() {
            if a.trim().is_empty() {
                self.err(format!("dataplane.eal_args[{i}]"), "empty EAL argument; remove it");
            }
        }
        let has = |flag: &str| dp.eal_args.iter().any(|a| a == flag);
        if has("--no-huge") && has("--in-memory") {
            self.err(
                "dataplane.eal_args",
                "EAL refuses --in-memory together with --no-huge (--no-huge implies legacy memory); \
                 with --no-huge use --no-shconf instead of --in-memory",
            );
        }
        let mempool_size = match dp.mempool_size {
            None => Some(defaults::MEMPOOL_SIZE),
            Some(n) => self.int_in("dataplane.mempool_size", n, 1024, 1 << 24, " mbufs"),
        };
        let mut desc = |field: &str, v: Option<i64>, default: u16| -> Option<u16> {
            let n = match v {
                None => return Some(default),
                Some(n) => self.int_in::<u16>(field, n, 64, 16384, " descriptors")?,
            };
            if !n.is_power_of_two() {
                self.err(field, format!("{n} is not a power of two; NICs need one, use {}", n.next_power_of_two()));
                return None;
            }
            Some(n)
        };
        let rx_descriptors = desc("dataplane.rx_descriptors", dp.rx_descriptors, defaults::RX_DESCRIPTORS);
        let tx_descriptors = desc("dataplane.tx_descriptors", dp.tx_descriptors, defaults::TX_DESCRIPTORS);
        let neighbour_timeout =
            self.duration("dataplane.neighbour_timeout", dp.neighbour_timeout.as_deref(), defaults::NEIGHBOUR_TIMEOUT);
        let neighbour_retry =
            self.duration("dataplane.neighbour_retry", dp.neighbour_retry.as_deref(), defaults::NEIGHBOUR_RETRY);
        if let (Some(t), Some(r)) = (neighbour_timeout, neighbour_retry) {
            if r >= t {
                self.err(
                    "dataplane.neighbour_retry",
                    format!(
                        "{} is not shorter than neighbour_timeout ({}); ARP retries must come before the entry expires",
                        humantime::format_duration(r),
                        humantime::format_duration(t)
                    ),
                );
            }
        }
        let conn_capacity = match dp.conn_capacity {
            None => Some(defaults::CONN_CAPACITY),
            Some(n) => self.int_in(
                "dataplane.conn_capacity",
                n,
                16,
                i64::from(defaults::MAX_CONN_CAPACITY),
                " connections per worker (88 bytes each, preallocated)",
            ),
        };
        let probe_ports = match dp.probe_ports.as_deref() {
            None => Some(rvs_dataplane::punt::DEFAULT_PROBE_PORTS),
            Some(text) => self.check("dataplane.probe_ports", parse_port_range(text)),
        };
        let mut timeout = |field: &str, v: Option<&str>, default: Duration| -> Option<Duration> {
            let d = self.duration(field, v, default)?;
            if d.is_zero() || d > Duration::from_secs(1 << 24) {
                self.err(field, "must be between 1s and 194 days");
                return None;
            }
            Some(d)
        };
        let tcp_timeout = timeout("dataplane.tcp_timeout", dp.tcp_timeout.as_deref(), defaults::TCP_TIMEOUT);
        let tcp_fin_timeout =
            timeout("dataplane.tcp_fin_timeout", dp.tcp_fin_timeout.as_deref(), defaults::TCP_FIN_TIMEOUT);
        let udp_timeout = timeout("dataplane.udp_timeout", dp.udp_timeout.as_deref(), defaults::UDP_TIMEOUT);
        let half_open_timeout =
            timeout("dataplane.half_open_timeout", dp.half_open_timeout.as_deref(), defaults::HALF_OPEN_TIMEOUT);
        let syn_proxy_threshold = match dp.syn_proxy_threshold {
            None => Some(rvs_dataplane::synproxy::DEFAULT_THRESHOLD),
            Some(n) => self.int_in(
                "dataplane.syn_proxy_threshold",
                n,
                1,
                i64::from(defaults::MAX_CONN_CAPACITY),
                " half-open connections per worker (at or above it, syn_proxy = \"auto\" services answer SYNs with cookies)",
            ),
        };
        Some(Dataplane {
            syn_proxy_threshold: syn_proxy_threshold?,
            expire_nodest_conn: dp.expire_nodest_conn.unwrap_or(false),
            conn_capacity: conn_capacity?,
            probe_ports: probe_ports?,
            tcp_timeout: tcp_timeout?,
            tcp_fin_timeout: tcp_fin_timeout?,
            udp_timeout: udp_timeout?,
            half_open_timeout: half_open_timeout?,
            workers: workers?,
            idle: idle?,
            eal_args: dp.eal_args.clone(),
            mempool_size: mempool_size?,
            rx_descriptors: rx_descriptors?,
            tx_descriptors: tx_descriptors?,
            neighbour_timeout: neighbour_timeout?,
            neighbour_retry: neighbour_retry?,
        })
    }

    /// Every RX descriptor holds an mbuf and every TX descriptor may; each worker's
    /// mempool cache and in-flight bursts take more. A pool smaller than that fails at
    /// queue setup (or worse, starves RX under load), so say so now.
    fn mempool_fits(&mut self, dp: &Dataplane, ports: usize) {
        let per_queue = u64::from(dp.rx_descriptors) + u64::from(dp.tx_descriptors);
        let need = ports as u64 * u64::from(dp.workers) * per_queue + u64::from(dp.workers) * 512;
        if u64::from(dp.mempool_size) < need {
            self.err(
                "dataplane.mempool_size",
                format!(
                    "{} mbufs cannot fill {ports} port(s) × {} worker(s) × ({} RX + {} TX) descriptors plus \
                     per-worker caches; set mempool_size to at least {need} or lower the descriptor counts",
                    dp.mempool_size, dp.workers, dp.rx_descriptors, dp.tx_descriptors
                ),
            );
        }
    }

    fn ports(&mut self, file: &ConfigFile) -> Vec<Option<Port>> {
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut dpdk_names: HashMap<String, usize> = HashMap::new();
        let mut nets: Vec<(usize, Ipv4Net)> = Vec::new();
        let mut nets6: Vec<(String, Ipv6Net)> = Vec::new();
        let mut out = Vec::with_capacity(file.ports.len());
        if file.ports.is_empty() {
            self.err("port", "no [[port]] configured; rvsd needs at least one port to forward packets");
        }
        if file.ports.len() > MAX_PORTS {
            self.err("port", format!("{} ports configured; a worker drives at most {MAX_PORTS}", file.ports.len()));
        }
        for (i, p) in file.ports.iter().enumerate() {
            let at = |f: &str| format!("port[{i}].{f}");
            let name = self.check(&at("name"), port_name(&p.name));
            if name.is_some() {
                if let Some(j) = names.insert(p.name.as_str(), i) {
                    self.err(
                        at("name"),
                        format!("`{}` is already the name of port[{j}]; port names must be unique", p.name),
                    );
                }
            }
            let device = self.check(&at("device"), parse_device(&p.device));
            if let Some(d) = &device {
                if let Some(j) = dpdk_names.insert(d.port_name().to_string(), i) {
                    self.err(
                        at("device"),
                        format!(
                            "device `{}` is already used by port[{j}]; each port needs its own device \
                             (vdev names such as net_af_packet0, net_af_packet1 must differ)",
                            d.port_name()
                        ),
                    );
                }
            }
            let address = self.check(&at("address"), parse_port_address(&p.address));
            if let Some(net) = address {
                if let Some((j, other)) =
                    nets.iter().find(|(_, o)| o.contains(&net.network()) || net.contains(&o.network()))
                {
                    self.err(
                        at("address"),
                        format!(
                            "prefix {} overlaps port[{j}]'s {other}; connected prefixes must not overlap, \
                             or rvs cannot tell which port a neighbour is on",
                            net.trunc()
                        ),
                    );
                } else {
                    nets.push((i, net));
                }
                if let Err(owner) = self.owners.claim(net.addr(), &at("address")) {
                    self.err(at("address"), conflict(net.addr(), &owner));
                }
            }
            let mut locals = Vec::with_capacity(p.local_addresses.len());
            let mut locals6 = Vec::new();
            for (k, la) in p.local_addresses.iter().enumerate() {
                let f = format!("port[{i}].local_addresses[{k}]");
                // A local address need not be inside the port's prefix: Full-NAT pools
                // can be any address routed back to rvs. Either family: IPv4 ones serve
                // IPv4 servers, IPv6 ones the IPv6 servers of IPv6 services.
                let Some(a) = self.check(&f, parse_local_address(la)) else { continue };
                if a.is_ipv6() {
                    if p.ipv6_addresses.is_empty() {
                        self.err(
                            &f,
                            format!(
                                "{a} is an IPv6 local address on a port without ipv6_addresses, which takes no \
                                 part in IPv6; add ipv6_addresses = [\"…/64\"] to port[{i}] or move the address"
                            ),
                        );
                        continue;
                    }
                    if p.ipv6_addresses
                        .iter()
                        .filter_map(|n| parse_port_address6(n).ok())
                        .any(|n| IpAddr::V6(n.addr()) == a)
                    {
                        self.err(&f, format!("{a} is also in port[{i}].ipv6_addresses; a local address must be an address of its own"));
                        continue;
                    }
                }
                match self.owners.claim(a, &f) {
                    Ok(()) => match a {
                        IpAddr::V4(a) => locals.push(a),
                        IpAddr::V6(a) => locals6.push(a),
                    },
                    Err(owner) => self.err(&f, conflict(a, &owner)),
                }
            }
            let mut addrs6 = Vec::with_capacity(p.ipv6_addresses.len());
            for (k, a6) in p.ipv6_addresses.iter().enumerate() {
                let f = format!("port[{i}].ipv6_addresses[{k}]");
                let Some(net) = self.check(&f, parse_port_address6(a6)) else { continue };
                if let Some((owner, _)) = nets6.iter().find(|(_, o)| o.addr() == net.addr()) {
                    self.err(
                        &f,
                        format!("{} is already used by {owner}; IPv6 port addresses must be distinct", net.addr()),
                    );
                    continue;
                }
                if let Some((owner, other)) = nets6.iter().find(|(o, n)| {
                    !o.starts_with(&format!("port[{i}]")) && (n.contains(&net.network()) || net.contains(&n.network()))
                }) {
                    self.err(
                        &f,
                        format!(
                            "prefix {} overlaps {owner}'s {other}; the IPv6 prefixes of different ports must not \
                             overlap, or rvs cannot tell which port a neighbour is on",
                            net.trunc()
                        ),
                    );
                    continue;
                }
                // A VIP must not be a port's IPv6 address either (checked like IPv4's).
                let _ = self.owners.claim(net.addr(), &f);
                nets6.push((f, net));
                addrs6.push(net);
            }
            let mac = match &p.mac {
                None => Some(None),
                Some(m) => self.check(&at("mac"), parse_unicast_mac(m)).map(Some),
            };
            let mtu = match p.mtu {
                None => Some(None),
                Some(m) => self
                    .int_in(&at("mtu"), m, 576, 9600, " bytes (576 is the IPv4 minimum, 9600 a common jumbo limit)")
                    .map(Some),
            };
            let exception = self.exception(i, p);
            let port = match (name, device, address, mac, mtu, exception) {
                (Some(name), Some(device), Some(address), Some(mac), Some(mtu), Some(exception))
                    if locals.len() + locals6.len() == p.local_addresses.len()
                        && addrs6.len() == p.ipv6_addresses.len() =>
                {
                    Some(Port {
                        name,
                        device,
                        address,
                        local_addresses: locals,
                        local_addresses6: locals6,
                        ipv6_addresses: addrs6,
                        mac,
                        mtu,
                        exception,
                    })
                }
                _ => None,
            };
            out.push(port);
        }
        out
    }

    /// `port[i].exception` and `exception_rate`: `Some(None)` when off, `None` after an
    /// error.
    fn exception(&mut self, i: usize, p: &PortFile) -> Option<Option<Exception>> {
        let at = |f: &str| format!("port[{i}].{f}");
        if !p.exception {
            if p.exception_rate.is_some() {
                self.err(
                    at("exception_rate"),
                    "exception_rate applies only with exception = true; set both or neither",
                );
                return None;
            }
            return Some(None);
        }
        let rate = match p.exception_rate {
            None => rvs_dataplane::exception::DEFAULT_EXCEPTION_RATE,
            Some(r) => self.int_in(&at("exception_rate"), r, 1, 1_000_000, " frames a second")?,
        };
        let iface = format!("{EXCEPTION_IFACE_PREFIX}{}", p.name);
        if iface.len() > IFACE_NAME_MAX {
            self.err(
                at("exception"),
                format!(
                    "the kernel interface of port `{}` would be named `{iface}`, {} bytes, but Linux allows {IFACE_NAME_MAX}: \
                     shorten the port's name to {} characters or fewer, or set exception = false",
                    p.name,
                    iface.len(),
                    IFACE_NAME_MAX - EXCEPTION_IFACE_PREFIX.len()
                ),
            );
            return None;
        }
        Some(Some(Exception { iface, rate }))
    }

    /// The `[[route]]` entries: those with an IPv4 prefix (in file order, `None` where
    /// invalid) and those with an IPv6 prefix (valid ones only).
    fn routes(&mut self, file: &ConfigFile, ports: &[Option<Port>]) -> (Vec<Option<Route>>, Vec<Route6>) {
        let mut seen: HashMap<Ipv4Net, usize> = HashMap::new();
        let mut seen6: HashMap<Ipv6Net, usize> = HashMap::new();
        let mut out = Vec::new();
        let mut out6 = Vec::new();
        for (i, r) in file.routes.iter().enumerate() {
            if r.prefix.contains(':') {
                out6.extend(self.route6(i, r, ports, &mut seen6));
                continue;
            }
            let prefix = self.check(&format!("route[{i}].prefix"), parse_prefix(&r.prefix));
            if let Some(p) = prefix {
                self.route_prefix_once(i, p, &mut seen);
            }
            let via_field = format!("route[{i}].via");
            let via = self.check(&via_field, parse_unicast(&r.via));
            let port = via.and_then(|via| {
                if let Some(owner) = self.owners.0.get(&IpAddr::V4(via)).cloned() {
                    self.err(&via_field, format!("{via} is rvs's own address ({owner}); a next hop must be another host"));
                    return None;
                }
                match connected_port(ports, via) {
                    Some(k) => Some(k),
                    None if ports.iter().any(Option::is_none) => None, // a bad port prefix was already reported
                    None => {
                        self.err(&via_field, format!("next hop {via} is not on any port's connected prefix ({}); a gateway must be directly reachable", list_prefixes(ports)));
                        None
                    }
                }
            });
            out.push(match (prefix, via, port) {
                (Some(prefix), Some(via), Some(port)) => Some(Route { prefix, via, port }),
                _ => None,
            });
        }
        (out, out6)
    }

    /// Records `route[i]`'s prefix `p` in `seen`, naming the earlier route that has it.
    fn route_prefix_once<P: Copy + Eq + std::hash::Hash + fmt::Display>(
        &mut self,
        i: usize,
        p: P,
        seen: &mut HashMap<P, usize>,
    ) {
        if let Some(j) = seen.insert(p, i) {
            self.err(format!("route[{i}].prefix"), format!("{p} is already routed by route[{j}]; remove one"));
        }
    }

    /// `route[i]` with an IPv6 prefix: the prefix canonical and not routed twice, the next
    /// hop a global address of another host on a port's `ipv6_addresses` prefix.
    fn route6(
        &mut self,
        i: usize,
        r: &RouteFile,
        ports: &[Option<Port>],
        seen: &mut HashMap<Ipv6Net, usize>,
    ) -> Option<Route6> {
        let prefix = self.check(&format!("route[{i}].prefix"), parse_prefix6(&r.prefix));
        if let Some(p) = prefix {
            self.route_prefix_once(i, p, seen);
        }
        let via_field = format!("route[{i}].via");
        let via = self.check(&via_field, parse_next_hop6(&r.via));
        let port = via.and_then(|via| {
            let on = |p: &Port| p.ipv6_addresses.iter().any(|n| n.contains(&via));
            if let Some(p) = ports.iter().flatten().find(|p| p.ipv6_addresses.iter().any(|n| n.addr() == via)) {
                self.err(&via_field, format!("{via} is port {:?}'s own address; a next hop must be another host", p.name));
                return None;
            }
            match ports.iter().position(|p| p.as_ref().is_some_and(on)) {
                Some(k) => Some(k),
                None if ports.iter().any(Option::is_none) => None, // a bad port was already reported
                None => {
                    let prefixes: Vec<String> =
                        ports.iter().flatten().flat_map(|p| p.ipv6_addresses.iter().map(|n| n.trunc().to_string())).collect();
                    let have = if prefixes.is_empty() { "none: add ipv6_addresses to a port".into() } else { prefixes.join(", ") };
                    self.err(&via_field, format!("next hop {via} is not on any port's IPv6 prefix ({have}); a gateway must be directly reachable"));
                    None
                }
            }
        });
        match (prefix, via, port) {
            (Some(prefix), Some(via), Some(port)) => Some(Route6 { prefix, via, port }),
            _ => None,
        }
    }

    fn neighbours(&mut self, file: &ConfigFile, ports: &[Option<Port>]) -> Vec<Option<Neighbour>> {
        let mut seen: HashMap<Ipv4Addr, usize> = HashMap::new();
        let mut out = Vec::new();
        for (i, n) in file.neighbours.iter().enumerate() {
            let at = |f: &str| format!("neighbour[{i}].{f}");
            let mac = self.check(&at("mac"), parse_unicast_mac(&n.mac));
            let port = match file.ports.iter().position(|p| p.name == n.port) {
                Some(k) => Some(k),
                None => {
                    let names: Vec<&str> = file.ports.iter().map(|p| p.name.as_str()).collect();
                    self.err(
                        at("port"),
                        format!("no [[port]] is named `{}`; use one of: {}", n.port, names.join(", ")),
                    );
                    None
                }
            };
            let address = self.check(&at("address"), parse_unicast(&n.address));
            if let Some(a) = address {
                if let Some(j) = seen.insert(a, i) {
                    self.err(at("address"), format!("{a} already has a static entry in neighbour[{j}]; remove one"));
                }
                if let Some(owner) = self.owners.0.get(&IpAddr::V4(a)).cloned() {
                    self.err(at("address"), format!("{a} is rvs's own address ({owner}), not a neighbour"));
                }
                if let Some(Some(p)) = port.map(|k| &ports[k]) {
                    if !p.address.contains(&a) {
                        self.err(
                            at("address"),
                            format!(
                                "{a} is not on port `{}`'s prefix {}; a neighbour must be directly connected",
                                p.name,
                                p.address.trunc()
                            ),
                        );
                    }
                }
            }
            out.push(match (address, mac, port) {
                (Some(address), Some(mac), Some(port)) => Some(Neighbour { address, mac, port }),
                _ => None,
            });
        }
        out
    }

    fn api(&mut self, file: &ConfigFile) -> Option<Api> {
        let text = file.api.listen.as_deref().unwrap_or(defaults::API_LISTEN);
        let listen: SocketAddr = match text.parse() {
            Ok(a) => a,
            Err(_) => {
                self.err("api.listen", format!("`{text}` is not an ip:port address; write it like \"127.0.0.1:8700\""));
                return None;
            }
        };
        let token_file = match &file.api.token_file {
            None => None,
            Some(p) => Some(self.check("api.token_file", check_secret_file(p, "bearer token"))?),
        };
        if !listen.ip().is_loopback() && token_file.is_none() {
            self.err(
                "api.listen",
                format!(
                    "{listen}: non-loopback api.listen requires a bearer token: set api.token_file to a file \
                     holding the token (mode 0600), or listen on 127.0.0.1"
                ),
            );
            return None;
        }
        Some(Api { listen, token_file })
    }

    fn services(
        &mut self,
        file: &ConfigFile,
        ports: &[Option<Port>],
        routes: &[Option<Route>],
    ) -> Vec<Option<Service>> {
        let mut seen: HashMap<(L4Proto, IpAddr, u16), usize> = HashMap::new();
        let mut vips: HashMap<IpAddr, usize> = HashMap::new();
        let has_locals = LocalFamilies::of(file);
        let mut out = Vec::new();
        for (i, s) in file.services.iter().enumerate() {
            let svc = self.service(i, s, ports, routes, has_locals, &mut vips);
            if let Some(svc) = &svc {
                if let Some(j) = seen.insert((svc.protocol, svc.address, svc.port), i) {
                    self.err(
                        format!("service[{i}]"),
                        format!(
                            "{} {} is already defined by service[{j}]; merge their servers into one service",
                            svc.protocol.name(),
                            super::endpoint(svc.address, svc.port),
                        ),
                    );
                }
            }
            out.push(svc);
        }
        out
    }

    fn service(
        &mut self,
        i: usize,
        s: &ServiceFile,
        ports: &[Option<Port>],
        routes: &[Option<Route>],
        has_locals: LocalFamilies,
        vips: &mut HashMap<IpAddr, usize>,
    ) -> Option<Service> {
        let at = |f: &str| format!("service[{i}].{f}");
        let protocol = parse_protocol(&s.protocol);
        if protocol.is_none() {
            let other = &s.protocol;
            self.err(at("protocol"), format!("unknown protocol `{other}`; use \"tcp\" or \"udp\""));
        }
        // An IPv6 VIP follows the IPv4 VIPs' rule: any unicast address that is not a port's
        // or local address. It need not be on a port's prefix: a routed VIP (announced over
        // BGP, or routed to rvs by the upstream router) is answered on every port.
        let address = self.check(&at("address"), parse_host(&s.address));
        if let Some(a) = address {
            // Several services may share one VIP (tcp/80 and tcp/443); only the first
            // claims it, so a VIP clashes with ports and local addresses, not with itself.
            if let std::collections::hash_map::Entry::Vacant(e) = vips.entry(a) {
                e.insert(i);
                if let Err(owner) = self.owners.claim(a, &at("address")) {
                    self.err(
                        at("address"),
                        format!(
                            "{}; a VIP must not be a port or local address (a port's own address also \
                             carries the health probes, from dataplane.probe_ports): give the service \
                             an address of its own",
                            conflict(a, &owner)
                        ),
                    );
                }
            }
        }
        let port = self.int_in::<u16>(&at("port"), s.port, 1, 65535, "; 0 is not a usable port");
        let system_load = s.scheduler == SYSTEM_LOAD;
        let scheduler = match s.scheduler.parse::<Scheduler>().ok() {
            Some(sch) => Some(sch),
            None if system_load => {
                if s.agent.is_none() {
                    self.err(
                        at("scheduler"),
                        "\"system-load\" balances by the weights an agent reports and this service has no \
                         [service.agent]; add one (port = 9999 for rvs-agent on the servers) or choose another scheduler",
                    );
                }
                Some(Scheduler::Wrr)
            }
            None => {
                let mut all: Vec<&str> = Scheduler::ALL.iter().map(|s| s.name()).collect();
                all.push(SYSTEM_LOAD);
                self.err(
                    at("scheduler"),
                    format!("unknown scheduler `{}`; use one of: {}", s.scheduler, all.join(" ")),
                );
                None
            }
        };
        let persistence = match &s.persistence {
            None => Some(None),
            Some(p) => self.duration(&at("persistence"), Some(p), Duration::ZERO).map(Some),
        };
        let ipv6 = address.is_some_and(|a| a.is_ipv6());
        let persistence_netmask = match &s.persistence_netmask {
            None => Some(PersistMask::host(ipv6)),
            Some(m) => {
                let mask = self.check(&at("persistence_netmask"), parse_persist_mask(m, ipv6));
                if mask.is_some() && s.persistence.is_none() {
                    self.err(at("persistence_netmask"), "applies only with persistence; set persistence or remove it");
                }
                mask
            }
        };
        let allow = self.client_prefixes(&at("allow"), &s.allow);
        let deny = self.client_prefixes(&at("deny"), &s.deny);
        let maxconn = match s.maxconn {
            None => Some(0),
            Some(m) => self.int_in::<u32>(&at("maxconn"), m, 0, i64::from(u32::MAX), "; 0 means no limit"),
        };
        let client_rate = match s.client_rate {
            None => Some(0),
            Some(r) => self.int_in::<u32>(
                &at("client_rate"),
                r,
                0,
                MAX_CLIENT_RATE,
                " new connections per second per client; 0 means no limit",
            ),
        };
        let client_burst = match (s.client_burst, client_rate) {
            (None, r) => r,
            (Some(_), Some(0)) => {
                self.err(at("client_burst"), "only applies with a client_rate; set client_rate or remove it");
                None
            }
            (Some(b), _) => {
                self.int_in::<u32>(&at("client_burst"), b, 1, MAX_CLIENT_RATE, " new connections at once per client")
            }
        };
        let health = match &s.health {
            None => Some(None),
            Some(h) => self.health(&at("health"), h).map(Some),
        };
        let agent = match &s.agent {
            None => Some(None),
            Some(a) => self.agent(&at("agent"), a).map(Some),
        };
        let sorry_server = match &s.sorry_server {
            None => Some(None),
            Some(text) => match parse_endpoint(text) {
                Ok(a) if address.is_some_and(|v| v.is_ipv4() != a.is_ipv4()) => {
                    self.err(at("sorry_server"), family_mismatch(a.ip(), address));
                    None
                }
                Ok(a) => Some(Some(a)),
                Err(m) => {
                    self.err(at("sorry_server"), m);
                    None
                }
            },
        };
        let mut servers = Vec::with_capacity(s.servers.len());
        let mut seen: HashMap<(IpAddr, u16), usize> = HashMap::new();
        for (k, r) in s.servers.iter().enumerate() {
            let f = format!("service[{i}].server[{k}]");
            if let Some(srv) = self.server(&f, r, port, ports, routes, has_locals) {
                // NAT64: an IPv4 server of an IPv6 service, through Full-NAT only (server()
                // has checked that an IPv4 local address exists for it).
                let nat64 = address.is_some_and(|v| v.is_ipv6()) && srv.address.is_ipv4();
                if nat64 && srv.forward != Forward::FullNat {
                    self.err(
                        format!("{f}.forward"),
                        format!(
                            "{} to IPv4 server {} on an IPv6 service cannot work: an IPv6 client reaches an IPv4 \
                             server only through NAT64, which rvs does in Full-NAT; set forward = \"fullnat\" \
                             (with an IPv4 address in a [[port]]'s local_addresses) or give an IPv6 server",
                            srv.forward, srv.address
                        ),
                    );
                    continue;
                }
                if !nat64 && address.is_some_and(|v| v.is_ipv4() != srv.address.is_ipv4()) {
                    self.err(format!("{f}.address"), family_mismatch(srv.address, address));
                    continue;
                }
                if let Some(j) = seen.insert((srv.address, srv.port), k) {
                    self.err(
                        &f,
                        format!(
                            "{} is already server[{j}] of this service; remove one",
                            super::endpoint(srv.address, srv.port)
                        ),
                    );
                }
                servers.push(srv);
            }
        }
        if servers.len() != s.servers.len() {
            return None;
        }
        let syn_proxy = match s.syn_proxy.as_deref() {
            None => Some(None),
            Some("off") => Some(Some(SynProxyMode::Off)),
            Some(word @ ("auto" | "always")) => {
                let mode = if word == "auto" { SynProxyMode::Auto } else { SynProxyMode::Always };
                let not_nat = servers.iter().position(|r| !matches!(r.forward, Forward::Nat | Forward::FullNat));
                if protocol == Some(L4Proto::Udp) {
                    self.err(
                        at("syn_proxy"),
                        format!("\"{word}\" applies to TCP services only (SYN cookies); remove it or set \"off\""),
                    );
                    None
                } else if let Some(k) = not_nat {
                    self.err(
                        at("syn_proxy"),
                        format!(
                            "\"{word}\" needs every server in NAT or Full-NAT (the proxy rewrites both directions), \
                             but server[{k}] is {}; set syn_proxy = \"off\" or change its forward",
                            servers[k].forward.name()
                        ),
                    );
                    None
                } else {
                    Some(Some(mode))
                }
            }
            Some(other) => {
                self.err(
                    at("syn_proxy"),
                    format!("`{other}` is not a SYN-proxy mode; use \"auto\", \"always\" or \"off\""),
                );
                None
            }
        };
        let quorum = match s.quorum {
            None => Some(defaults::QUORUM),
            Some(q) => {
                let most = servers.len() as i64;
                self.int_in::<u32>(
                    &at("quorum"),
                    q,
                    0,
                    most,
                    &format!(
                        " healthy servers (this service has {most}; 0: its VIP is never withdrawn because of it); \
                         a quorum above the server count would keep the VIP withdrawn for good"
                    ),
                )
            }
        };
        let unknown_flow = self.unknown_flow(&at("unknown_flow"), s, protocol, scheduler, &servers);
        Some(Service {
            quorum: quorum?,
            unknown_flow: unknown_flow?,
            syn_proxy: syn_proxy?,
            protocol: protocol?,
            address: address?,
            port: port?,
            scheduler: scheduler?,
            system_load,
            persistence: persistence?,
            persistence_netmask: persistence_netmask?,
            allow: allow?,
            deny: deny?,
            maxconn: maxconn?,
            client_rate: client_rate?,
            client_burst: client_burst?,
            health: health?,
            agent: agent?,
            sorry_server: sorry_server?,
            servers,
        })
    }

    /// A service's `unknown_flow` (field `at`): `schedule` only where scheduling a
    /// mid-flow segment sends it where the flow already goes: TCP, every server DR or
    /// IPIP (their replies bypass rvs, so no node holds state the flow needs), a
    /// consistent scheduler (the same choice on every node) and no persistence (its table
    /// is per node).
    fn unknown_flow(
        &mut self,
        at: &str,
        s: &ServiceFile,
        protocol: Option<L4Proto>,
        scheduler: Option<Scheduler>,
        servers: &[Server],
    ) -> Option<UnknownFlow> {
        let Some(text) = s.unknown_flow.as_deref() else { return Some(UnknownFlow::Drop) };
        let mode = match text.parse::<UnknownFlow>() {
            Ok(m) => m,
            Err(_) => {
                self.err(
                    at,
                    format!("`{text}` is not an unknown_flow mode; use \"drop\" (the default) or \"schedule\""),
                );
                return None;
            }
        };
        if mode == UnknownFlow::Drop {
            return Some(mode);
        }
        let consistent: Vec<&str> = Scheduler::ALL.iter().filter(|k| k.is_consistent()).map(|k| k.name()).collect();
        let why = if protocol == Some(L4Proto::Udp) {
            Some(
                "applies to TCP services only (every UDP datagram of an unknown flow is scheduled already)".to_string(),
            )
        } else if let Some(k) = servers.iter().position(|r| !matches!(r.forward, Forward::Dr | Forward::Tunnel)) {
            Some(format!(
                "needs every server in DR or IPIP tunnel mode (with NAT or Full-NAT the replies and the \
                 address translation live on the node that opened the flow), but server[{k}] is {}",
                servers[k].forward.name()
            ))
        } else if s.scheduler == SYSTEM_LOAD || scheduler.is_some_and(|k| !k.is_consistent()) {
            Some(format!(
                "needs a consistent scheduler, one whose choice is the same on every node ({}), but the \
                 scheduler is {}",
                consistent.join(", "),
                s.scheduler
            ))
        } else if s.persistence.is_some() {
            Some("cannot be used with persistence (the persistence table is each node's own)".to_string())
        } else {
            None
        };
        match why {
            Some(why) => {
                self.err(at, format!("\"schedule\" {why}; set unknown_flow = \"drop\" or change the service"));
                None
            }
            None => Some(mode),
        }
    }

    /// `[bgp]`.
    fn bgp(&mut self, b: &BgpFile) -> Option<Bgp> {
        let include_file = self.check("bgp.include_file", include_path(&b.include_file));
        let birdc = match b.birdc.as_deref() {
            None => Some(PathBuf::from(defaults::BIRDC)),
            Some("") => {
                self.err("bgp.birdc", "is empty; give the birdc program (\"birdc\" or \"/usr/sbin/birdc\")");
                None
            }
            Some(p) => Some(PathBuf::from(p)),
        };
        let socket = match b.socket.as_deref() {
            None => Some(PathBuf::from(defaults::BIRD_SOCKET)),
            Some(p) if p.starts_with('/') => Some(PathBuf::from(p)),
            Some(p) => {
                self.err(
                    "bgp.socket",
                    format!(
                        "`{p}` is not an absolute path; give BIRD's control socket, as `bird -s` (default {})",
                        defaults::BIRD_SOCKET
                    ),
                );
                None
            }
        };
        Some(Bgp { include_file: include_file?, birdc: birdc?, socket: socket? })
    }

    /// A service's `allow` or `deny` list (field `at`): each entry a prefix with no host
    /// bits set, or an address (a /32 or /128), of either family.
    fn client_prefixes(&mut self, at: &str, list: &[String]) -> Option<Vec<IpNet>> {
        if list.len() > MAX_CLIENT_PREFIXES {
            self.err(
                at,
                format!("{} prefixes, more than {MAX_CLIENT_PREFIXES}; merge them into shorter prefixes", list.len()),
            );
            return None;
        }
        let mut out = Vec::with_capacity(list.len());
        for (k, text) in list.iter().enumerate() {
            if let Some(net) = self.check(&format!("{at}[{k}]"), parse_client_prefix(text)) {
                out.push(net);
            }
        }
        (out.len() == list.len()).then_some(out)
    }

    fn health(&mut self, at: &str, h: &HealthFile) -> Option<Health> {
        let f = |x: &str| format!("{at}.{x}");
        let only = |kind: &str| format!("only applies to kind = \"{kind}\", not \"{}\"; remove it", h.kind);
        let is_http = h.kind == "http";
        if !is_http {
            for (name, set) in [
                ("path", h.path.is_some()),
                ("host", h.host.is_some()),
                ("status", h.status.is_some()),
                ("body", h.body.is_some()),
            ] {
                if set {
                    self.err(f(name), format!("{name} {}", only("http")));
                }
            }
        }
        if h.kind != "udp" {
            for (name, set) in [("send", h.send.is_some()), ("expect", h.expect.is_some())] {
                if set {
                    self.err(f(name), format!("{name} {}", only("udp")));
                }
            }
        }
        if h.kind != "command" && !h.command.is_empty() {
            self.err(f("command"), format!("command {}", only("command")));
        }
        let kind = match h.kind.as_str() {
            "tcp" => Some(HealthKind::Tcp),
            "udp" => match &h.send {
                Some(send) if !send.is_empty() => {
                    Some(HealthKind::Udp { send: send.clone(), expect: h.expect.clone().unwrap_or_default() })
                }
                _ => {
                    self.err(f("send"), "kind = \"udp\" needs send = \"…\", the datagram to send (and expect = \"…\", the reply's start)");
                    None
                }
            },
            "icmp" => Some(HealthKind::Icmp),
            "http" => self.http(&f, h),
            "command" => {
                if h.command.is_empty() || h.command[0].trim().is_empty() {
                    self.err(f("command"), "kind = \"command\" needs command = [\"/path/to/probe\", \"arg\", …]");
                    None
                } else {
                    Some(HealthKind::Command(h.command.clone()))
                }
            }
            other => {
                self.err(
                    f("kind"),
                    format!("unknown health check kind `{other}`; use tcp, http, udp, icmp or command"),
                );
                None
            }
        };
        let port = match h.port {
            None => Some(None),
            Some(p) => self.int_in::<u16>(&f("port"), p, 1, 65535, "; 0 is not a usable port").map(Some),
        };
        let interval = self.duration(&f("interval"), h.interval.as_deref(), defaults::HEALTH_INTERVAL);
        let timeout = self.duration(&f("timeout"), h.timeout.as_deref(), defaults::HEALTH_TIMEOUT);
        self.timeout_fits(&f("timeout"), timeout, interval, "interval");
        let fastinter = interval.and_then(|i| self.duration(&f("fastinter"), h.fastinter.as_deref(), i));
        let downinter = interval.and_then(|i| self.duration(&f("downinter"), h.downinter.as_deref(), i));
        self.timeout_fits(&f("timeout"), timeout, fastinter.filter(|_| h.fastinter.is_some()), "fastinter");
        self.timeout_fits(&f("timeout"), timeout, downinter.filter(|_| h.downinter.is_some()), "downinter");
        let rise = match h.rise {
            None => Some(defaults::HEALTH_RISE),
            Some(r) => self.int_in(&f("rise"), r, 1, 255, " probes"),
        };
        let fall = match h.fall {
            None => Some(defaults::HEALTH_FALL),
            Some(r) => self.int_in(&f("fall"), r, 1, 255, " probes"),
        };
        let start_up = match h.start.as_deref() {
            None | Some("up") => Some(true),
            Some("down") => Some(false),
            Some(other) => {
                self.err(f("start"), format!("unknown start state `{other}`; use \"up\" or \"down\""));
                None
            }
        };
        let on_down = match h.on_down.as_deref() {
            None | Some("quiesce") => Some(OnDown::Quiesce),
            Some("remove") => Some(OnDown::Remove),
            Some(other) => {
                self.err(
                    f("on_down"),
                    format!("unknown action `{other}`; use \"quiesce\" (weight 0, flows continue) or \"remove\""),
                );
                None
            }
        };
        let slowstart = match &h.slowstart {
            None => Some(None),
            Some(t) => self.duration(&f("slowstart"), Some(t), Duration::ZERO).map(Some),
        };
        if h.notify.first().is_some_and(|p| p.trim().is_empty()) {
            self.err(f("notify"), "the program is empty; use notify = [\"/path/to/script\", \"arg\", …]");
        }
        Some(Health {
            kind: kind?,
            port: port?,
            interval: interval?,
            timeout: timeout?,
            rise: rise?,
            fall: fall?,
            fastinter: fastinter?,
            downinter: downinter?,
            start_up: start_up?,
            on_down: on_down?,
            slowstart: slowstart?,
            notify: h.notify.clone(),
        })
    }

    fn http(&mut self, f: &dyn Fn(&str) -> String, h: &HealthFile) -> Option<HealthKind> {
        let path = h.path.clone().unwrap_or_else(|| defaults::HEALTH_PATH.to_string());
        let path_ok = path.starts_with('/') && !path.chars().any(|c| c.is_whitespace() || c.is_control());
        if !path_ok {
            self.err(f("path"), format!("`{path}` is not an HTTP path; it must start with / and contain no spaces"));
        }
        let host_ok = h
            .host
            .as_ref()
            .is_none_or(|host| !host.is_empty() && !host.chars().any(|c| c.is_whitespace() || c.is_control()));
        if !host_ok {
            self.err(f("host"), "the Host header must be non-empty, without spaces or control characters");
        }
        let status = match &h.status {
            None => defaults::HEALTH_STATUS.parse::<StatusRanges>().ok(),
            Some(StatusFile::Code(c)) => {
                self.int_in::<u16>(&f("status"), *c, 100, 599, " (an HTTP status code)").map(StatusRanges::single)
            }
            Some(StatusFile::Ranges(r)) => self.check(&f("status"), r.parse::<StatusRanges>()),
        };
        if h.body.as_deref() == Some("") {
            self.err(f("body"), "an empty body substring matches anything; remove body or give the text to find");
        }
        match (path_ok && host_ok, status) {
            (true, Some(status)) => Some(HealthKind::Http { path, host: h.host.clone(), status, body: h.body.clone() }),
            _ => None,
        }
    }

    /// Refuses a probe timeout longer than the interval it must fit in.
    fn timeout_fits(&mut self, field: &str, timeout: Option<Duration>, interval: Option<Duration>, name: &str) {
        if let (Some(i), Some(t)) = (interval, timeout) {
            if t > i {
                self.err(
                    field,
                    format!(
                        "{} is longer than {name} ({}); a probe must finish before the next one starts",
                        humantime::format_duration(t),
                        humantime::format_duration(i)
                    ),
                );
            }
        }
    }

    fn agent(&mut self, at: &str, a: &AgentFile) -> Option<Agent> {
        let f = |x: &str| format!("{at}.{x}");
        let port = match a.port {
            None => {
                self.err(f("port"), "[service.agent] needs port = N, the agent's TCP port on each server");
                None
            }
            Some(p) => self.int_in::<u16>(&f("port"), p, 1, 65535, "; 0 is not a usable port"),
        };
        let interval = self.duration(&f("interval"), a.interval.as_deref(), defaults::AGENT_INTERVAL);
        let timeout = self.duration(&f("timeout"), a.timeout.as_deref(), defaults::AGENT_TIMEOUT);
        self.timeout_fits(&f("timeout"), timeout, interval, "interval");
        let stale_after = interval.and_then(|i| {
            self.duration(&f("stale_after"), a.stale_after.as_deref(), i * defaults::AGENT_STALE_INTERVALS)
        });
        if let (Some(i), Some(s)) = (interval, stale_after) {
            if s < i {
                self.err(
                    f("stale_after"),
                    format!(
                        "{} is shorter than interval ({}); every answer would be stale before the next",
                        humantime::format_duration(s),
                        humantime::format_duration(i)
                    ),
                );
            }
        }
        Some(Agent { port: port?, interval: interval?, timeout: timeout?, stale_after: stale_after? })
    }

    fn server(
        &mut self,
        at: &str,
        r: &ServerFile,
        service_port: Option<u16>,
        ports: &[Option<Port>],
        routes: &[Option<Route>],
        has_locals: LocalFamilies,
    ) -> Option<Server> {
        let f = |x: &str| format!("{at}.{x}");
        let address = self.check(&f("address"), parse_host(&r.address));
        if let Some(a) = address {
            if let Some(owner) = self.owners.0.get(&a).cloned() {
                self.err(
                    f("address"),
                    format!("{a} is rvs's own address ({owner}); a real server must be another host"),
                );
            }
        }
        let port = match r.port {
            None => service_port,
            Some(p) => self.int_in::<u16>(&f("port"), p, 1, 65535, "; 0 is not a usable port"),
        };
        let weight = match r.weight {
            None => Some(defaults::WEIGHT),
            Some(w) => self.int_in(&f("weight"), w, 0, 65535, " (0 stops new connections to this server)"),
        };
        let forward = match r.forward.as_deref() {
            None | Some("dr") => Some(Forward::Dr),
            Some("nat") => Some(Forward::Nat),
            Some("fullnat") => Some(Forward::FullNat),
            Some("tunnel") => Some(Forward::Tunnel),
            Some(other) => {
                self.err(f("forward"), format!("unknown forwarding method `{other}`; use dr, nat, fullnat or tunnel"));
                None
            }
        };
        let upper = self.int_in::<u32>(
            &f("upper_threshold"),
            r.upper_threshold.unwrap_or(0),
            0,
            i64::from(u32::MAX),
            " connections (0 = no limit)",
        );
        let lower = self.int_in::<u32>(
            &f("lower_threshold"),
            r.lower_threshold.unwrap_or(0),
            0,
            i64::from(u32::MAX),
            " connections (0 = no limit)",
        );
        if let (Some(u), Some(l)) = (upper, lower) {
            if u == 0 && l > 0 {
                self.err(f("lower_threshold"), format!("{l} has no effect without upper_threshold; set upper_threshold above it or remove lower_threshold"));
            } else if l > u {
                self.err(
                    f("lower_threshold"),
                    format!("{l} is above upper_threshold ({u}); the lower threshold must not exceed the upper one"),
                );
            }
        }
        if let (Some(fw), Some(p), Some(sp)) = (forward, port, service_port) {
            if matches!(fw, Forward::Dr | Forward::Tunnel) && p != sp {
                self.err(
                    f("port"),
                    format!("{fw} forwarding cannot change the port: set port = {sp} (the service's) or use forward = \"nat\" or \"fullnat\""),
                );
            }
        }
        if let (Some(fw), Some(IpAddr::V6(a))) = (forward, address) {
            // No IPv6 routes exist yet: an IPv6 server must be on a port's IPv6 prefix.
            let all_ports_ok = ports.iter().all(Option::is_some);
            let connected = ports.iter().flatten().any(|p| p.ipv6_addresses.iter().any(|n| n.contains(&a)));
            if !connected && all_ports_ok {
                self.err(
                    f("address"),
                    format!(
                        "{a} is on no port's IPv6 prefix ({}); rvs has no IPv6 routes, so an IPv6 real server \
                         must be on the network of one of a [[port]]'s ipv6_addresses",
                        list_prefixes6(ports)
                    ),
                );
            }
            if fw == Forward::FullNat && !has_locals.v6 {
                self.err(
                    f("forward"),
                    "fullnat to an IPv6 server needs an IPv6 Full-NAT local address, and no port has one; \
                     add an IPv6 address to the local_addresses of a [[port]] with ipv6_addresses (e.g. \
                     local_addresses = [\"2001:db8:20::200\"]), or use forward = \"nat\" or \"dr\"",
                );
            }
        }
        if let (Some(fw), Some(IpAddr::V4(a))) = (forward, address) {
            let all_ports_ok = ports.iter().all(Option::is_some);
            let connected = connected_port(ports, a).is_some();
            if fw == Forward::Dr && !connected && all_ports_ok {
                self.err(
                    f("address"),
                    format!("DR needs the real server on a connected network, and {a} is on none ({}); use forward = \"tunnel\" or \"fullnat\" for a remote server", list_prefixes(ports)),
                );
            } else if !connected
                && all_ports_ok
                && !routes.iter().flatten().any(|r| r.prefix.contains(&a))
                && routes.iter().all(Option::is_some)
            {
                self.err(f("address"), format!("no route to {a}: it is on no port's prefix and no [[route]] covers it; add a route (e.g. prefix = \"0.0.0.0/0\")"));
            }
            if fw == Forward::FullNat && !has_locals.v4 {
                self.err(
                    f("forward"),
                    "fullnat to an IPv4 server needs IPv4 Full-NAT local addresses; add local_addresses = \
                     [\"a.b.c.d\", …] to a [[port]]",
                );
            }
        }
        Some(Server {
            address: address?,
            port: port?,
            weight: weight?,
            forward: forward?,
            upper_threshold: upper?,
            lower_threshold: lower?,
            backup: r.backup.unwrap_or(false),
        })
    }

    fn ha(
        &mut self,
        ha: &HaFile,
        file: &ConfigFile,
        ports: &[Option<Port>],
        services: &[Option<Service>],
    ) -> Option<Ha> {
        let mut ok = true;
        let key_file = match &ha.key_file {
            None => None,
            Some(k) => {
                let r = self.check("ha.key_file", check_secret_file(k, "HA key"));
                ok &= r.is_some();
                r
            }
        };
        let mut sock = |field: &str, text: &Option<String>| -> Option<SocketAddr> {
            let t = text.as_deref()?;
            match t.parse::<SocketAddr>() {
                Ok(a) if a.port() != 0 => Some(a),
                _ => {
                    self.err(
                        field,
                        format!(
                            "`{t}` is not an ip:port with a non-zero port; write it like \"10.30.0.1:8848\" \
                             or \"[2001:db8::1]:8848\""
                        ),
                    );
                    ok = false;
                    None
                }
            }
        };
        let sync_listen = sock("ha.sync_listen", &ha.sync_listen);
        let sync_peer = sock("ha.sync_peer", &ha.sync_peer);
        let refresh = self.duration("ha.sync_refresh", ha.sync_refresh.as_deref(), DEFAULT_SYNC_REFRESH);
        let failback_limit =
            self.duration("ha.failback_sync_limit", ha.failback_sync_limit.as_deref(), DEFAULT_FAILBACK_SYNC_LIMIT);
        ok &= refresh.is_some() && failback_limit.is_some();
        if let Some(r) = refresh {
            if !(MIN_SYNC_REFRESH..=MAX_SYNC_REFRESH).contains(&r) {
                self.err(
                    "ha.sync_refresh",
                    format!(
                        "{} is outside 1s..120s; the refresh must come well within the shortest timeout it keeps alive \
                         (FIN_WAIT and TIME_WAIT: 120 s)",
                        humantime::format_duration(r)
                    ),
                );
                ok = false;
            }
        }
        let mut sync = None;
        match (sync_listen, sync_peer) {
            _ if ha.sync_listen.is_some() != ha.sync_peer.is_some() => {
                let missing = if ha.sync_listen.is_some() { "ha.sync_peer" } else { "ha.sync_listen" };
                self.err(missing, "connection sync needs both sync_listen and sync_peer; set both or neither");
                ok = false;
            }
            (Some(listen), Some(peer)) => {
                if listen.is_ipv4() != peer.is_ipv4() {
                    self.err("ha.sync_peer", format!("{peer} and sync_listen {listen} are of different address families; use one family for both"));
                    ok = false;
                } else if key_file.is_none() && ha.key_file.is_none() {
                    self.err(
                        "ha.key_file",
                        "connection sync authenticates every datagram with HMAC-SHA256: set key_file to a file \
                         holding a shared secret (head -c 32 /dev/urandom | base64 > FILE; chmod 600 FILE), the same on both nodes",
                    );
                    ok = false;
                } else if let (Some(key_file), Some(refresh), Some(failback_limit)) =
                    (&key_file, refresh, failback_limit)
                {
                    sync = Some(SyncConfig { listen, peer, key_file: key_file.clone(), refresh, failback_limit });
                }
            }
            _ => {
                let stray = [
                    ("ha.key_file", ha.key_file.is_some()),
                    ("ha.sync_refresh", ha.sync_refresh.is_some()),
                    ("ha.failback_sync_limit", ha.failback_sync_limit.is_some()),
                ];
                if let (None, Some((field, _))) = (&ha.sync_listen, stray.iter().find(|(_, set)| *set)) {
                    self.err(
                        *field,
                        "this sets connection sync, which is off: add sync_listen and sync_peer, or remove it",
                    );
                    ok = false;
                }
            }
        }
        if ha.instances.is_empty() {
            self.err(
                "ha.instance",
                "[ha] has no [[ha.instance]]; add one (vrid, port, priority, addresses) or remove [ha]",
            );
            return None;
        }
        let mut instances = Vec::new();
        let mut by_addr: HashMap<IpAddr, usize> = HashMap::new();
        // A VRID is per port and advert family: keepalived (and RFC 5798, whose IPv4 and
        // IPv6 virtual routers are separate) lets VRID 51 run over IPv4 and over IPv6 on
        // one interface.
        let mut by_vrid: HashMap<(u8, usize, AdvertFamily), usize> = HashMap::new();
        for (i, inst) in ha.instances.iter().enumerate() {
            match self.ha_instance(i, inst, file, ports, services, &mut by_addr) {
                Some(x) => {
                    let family = x.family();
                    if let Some(j) = by_vrid.insert((x.vrid, x.port, family), i) {
                        let (this, other) = match family {
                            AdvertFamily::Ipv4 => ("an IPv4 address, so its adverts are VRRP over IPv4", "IPv6"),
                            AdvertFamily::Ipv6 => ("IPv6 addresses only, so its adverts are VRRP over IPv6", "IPv4"),
                        };
                        self.err(
                            format!("ha.instance[{i}].vrid"),
                            format!(
                                "VRID {} is already used on port `{}` by ha.instance[{j}], and both have {this}; \
                                 give each instance of a port and family its own VRID (one VRID may serve one \
                                 {family} and one {other} instance)",
                                x.vrid, inst.port
                            ),
                        );
                        ok = false;
                    }
                    instances.push(x);
                }
                None => ok = false,
            }
        }
        // With [ha], a VIP this node serves alone would answer on both nodes at once.
        for (k, s) in services.iter().enumerate() {
            if let Some(s) = s {
                if !by_addr.contains_key(&s.address) && ok {
                    self.err(
                        format!("service[{k}].address"),
                        format!("VIP {} is in no [[ha.instance]]'s addresses; with [ha] every VIP moves with an instance: add it to one", s.address),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(Ha { sync, instances })
    }

    fn ha_instance(
        &mut self,
        i: usize,
        inst: &HaInstanceFile,
        file: &ConfigFile,
        ports: &[Option<Port>],
        services: &[Option<Service>],
        by_addr: &mut HashMap<IpAddr, usize>,
    ) -> Option<HaInstance> {
        let at = |f: &str| format!("ha.instance[{i}].{f}");
        let vrid = self.int_in::<u8>(&at("vrid"), inst.vrid, 1, 255, " (VRRP's virtual router identifier)");
        let port = self.port_ref(&at("port"), &inst.port, file);
        let priority = self.int_in::<u8>(
            &at("priority"),
            inst.priority,
            1,
            254,
            " (255 is for the owner of the addresses, which rvs never is: its addresses float)",
        );
        let version = match inst.version {
            None => Some(defaults::VRRP_VERSION),
            Some(v @ (2 | 3)) => Some(v as u8),
            Some(v) => {
                self.err(
                    at("version"),
                    format!("{v} is not a VRRP version rvs speaks; use 3 (RFC 5798) or 2 (RFC 3768)"),
                );
                None
            }
        };
        let advert_interval = self.vrrp_interval(&at("advert_interval"), inst.advert_interval.as_deref(), version);
        let preempt_delay = match inst.preempt_delay.as_deref() {
            None => Some(Duration::ZERO),
            Some(t) => match self.check(&at("preempt_delay"), parse_duration(t)) {
                Some(d) if d > Duration::from_secs(1000) => {
                    self.err(at("preempt_delay"), format!("`{t}` is longer than 1000s (keepalived's limit too)"));
                    None
                }
                d => d,
            },
        };
        let garp_master_repeat = match inst.garp_master_repeat {
            None => Some(defaults::GARP_MASTER_REPEAT),
            Some(n) => self.int_in(&at("garp_master_repeat"), n, 1, 100, " rounds of gratuitous ARP"),
        };
        let garp_master_delay = match inst.garp_master_delay.as_deref() {
            None => Some(defaults::GARP_MASTER_DELAY),
            Some(t) => self.check(&at("garp_master_delay"), parse_duration(t)),
        };
        let addresses = self.ha_addresses(i, inst, ports, services, by_addr);
        // An IPv6-only instance speaks VRRP over IPv6 (RFC 5798 §5.1.2): version 3 only,
        // from the port's link-local address, which a port has with ipv6_addresses.
        let mut addresses = addresses;
        if addresses.as_ref().is_some_and(|a| !a.iter().any(IpAddr::is_ipv4)) {
            if version == Some(2) {
                self.err(
                    at("version"),
                    "2 is IPv4 only (RFC 3768 has no IPv6 form) and this instance's addresses are all IPv6, so \
                     its adverts are VRRP over IPv6: use version = 3, or add an IPv4 address to carry VRRP \
                     over IPv4",
                );
                addresses = None;
            }
            if let Some(p) = port.and_then(|k| ports.get(k)).and_then(Option::as_ref) {
                if p.ipv6_addresses.is_empty() {
                    self.err(
                        at("port"),
                        format!(
                            "port `{}` has no ipv6_addresses; this instance's addresses are all IPv6, so its \
                             adverts are VRRP over IPv6, sent from the port's link-local address: add \
                             ipv6_addresses to the port, or an IPv4 address to the instance",
                            p.name
                        ),
                    );
                    addresses = None;
                }
            }
        }
        let virtual_link_local = self.virtual_link_local(i, inst, addresses.as_deref(), by_addr);
        let mut track_ports = Vec::new();
        for (k, name) in inst.track_ports.iter().enumerate() {
            if let Some(p) = self.port_ref(&format!("ha.instance[{i}].track_ports[{k}]"), name, file) {
                track_ports.push(p);
            }
        }
        let mut track_services = Vec::new();
        for (k, text) in inst.track_services.iter().enumerate() {
            let f = format!("ha.instance[{i}].track_services[{k}]");
            let found = parse_service_ref(text).and_then(|key| {
                if services.iter().flatten().any(|s| s.key() == key) {
                    Ok(key)
                } else {
                    Err(format!("no [[service]] is {text}; track a configured service (\"tcp/VIP/PORT\")"))
                }
            });
            if let Some(key) = self.check(&f, found) {
                track_services.push(key);
            }
        }
        let track_effect = match inst.track_service_weight {
            None => Some(TrackEffect::Fault),
            Some(w) => {
                if inst.track_services.is_empty() {
                    self.err(
                        at("track_service_weight"),
                        "applies only with track_services; set track_services or remove it",
                    );
                }
                self.int_in(
                    &at("track_service_weight"),
                    w,
                    1,
                    253,
                    " (priority taken off per tracked service that is down)",
                )
                .map(TrackEffect::Weight)
            }
        };
        if inst.notify.first().is_some_and(|p| p.trim().is_empty()) {
            self.err(at("notify"), "the program is empty; use notify = [\"/path/to/script\", \"arg\", …]");
            return None;
        }
        let complete = track_ports.len() == inst.track_ports.len() && track_services.len() == inst.track_services.len();
        if !complete {
            return None;
        }
        Some(HaInstance {
            vrid: vrid?,
            port: port?,
            priority: priority?,
            advert_interval: advert_interval?,
            preempt: inst.preempt.unwrap_or(true),
            preempt_delay: preempt_delay?,
            version: version?,
            addresses: addresses?,
            virtual_link_local: virtual_link_local?,
            garp_master_repeat: garp_master_repeat?,
            garp_master_delay: garp_master_delay?,
            track_ports,
            track_workers: inst.track_workers.unwrap_or(true),
            track_services,
            track_effect: track_effect?,
            notify: inst.notify.clone(),
        })
    }

    /// `virtual_link_local`: `Some(None)` when absent, `Some(Some(ll))` for a link-local
    /// address (fe80::/10) of an instance whose addresses are all IPv6 and in no other
    /// instance, `None` (error recorded) otherwise. `addresses`: the instance's, if valid.
    fn virtual_link_local(
        &mut self,
        i: usize,
        inst: &HaInstanceFile,
        addresses: Option<&[IpAddr]>,
        by_addr: &mut HashMap<IpAddr, usize>,
    ) -> Option<Option<std::net::Ipv6Addr>> {
        let Some(text) = inst.virtual_link_local.as_deref() else { return Some(None) };
        let f = format!("ha.instance[{i}].virtual_link_local");
        let Ok(ll) = text.trim().parse::<std::net::Ipv6Addr>() else {
            self.err(
                &f,
                format!("`{text}` is not an IPv6 address; use a link-local address such as \"fe80::51\" (no zone)"),
            );
            return None;
        };
        if ll.segments()[0] & 0xffc0 != 0xfe80 {
            self.err(
                &f,
                format!(
                    "{ll} is not link-local; the virtual router's link-local address is in fe80::/10, e.g. \
                     \"fe80::{}\"; list global addresses in addresses",
                    inst.vrid.clamp(1, 255)
                ),
            );
            return None;
        }
        if addresses.is_some_and(|a| a.iter().any(IpAddr::is_ipv4)) {
            self.err(
                &f,
                "this instance has an IPv4 address, so its adverts are VRRP over IPv4, which carry no IPv6 \
                 address: remove virtual_link_local, or move the IPv6 addresses to an instance of IPv6 \
                 addresses only",
            );
            return None;
        }
        if addresses.is_some_and(|a| a.len() >= 255) {
            self.err(
                &f,
                "with 255 addresses there is no room for it in an advert (at most 255 addresses); split the \
                 addresses into several instances",
            );
            return None;
        }
        let ip = IpAddr::V6(ll);
        if let Some(j) = by_addr.get(&ip) {
            self.err(
                &f,
                format!("{ll} is already ha.instance[{j}]'s; give each instance its own virtual link-local address"),
            );
            return None;
        }
        by_addr.insert(ip, i);
        Some(Some(ll))
    }

    /// The index of the `[[port]]` named `name`.
    fn port_ref(&mut self, field: &str, name: &str, file: &ConfigFile) -> Option<usize> {
        let k = file.ports.iter().position(|p| p.name == name);
        if k.is_none() {
            let names: Vec<&str> = file.ports.iter().map(|p| p.name.as_str()).collect();
            self.err(field, format!("no [[port]] is named `{name}`; use one of: {}", names.join(", ")));
        }
        k
    }

    /// `advert_interval`: centiseconds, above zero, at most 40.95 s (v3's 12-bit field);
    /// whole seconds up to 255 in version 2.
    fn vrrp_interval(&mut self, field: &str, text: Option<&str>, version: Option<u8>) -> Option<Duration> {
        let Some(t) = text else { return Some(defaults::VRRP_ADVERT_INTERVAL) };
        let d = self.check(field, parse_duration(t))?;
        let why = if d.is_zero() {
            Some("is zero; adverts need a positive interval such as \"1s\" or \"100ms\"".to_string())
        } else if d.as_nanos() % 10_000_000 != 0 {
            Some("is finer than VRRP's centisecond resolution; use a multiple of 10ms".to_string())
        } else if version == Some(2) && d.subsec_nanos() != 0 {
            Some(
                "is not whole seconds, which is all VRRP version 2 carries; use \"1s\" or more, or version = 3"
                    .to_string(),
            )
        } else if version == Some(2) && d > Duration::from_secs(255) {
            Some("is longer than version 2's 255 s".to_string())
        } else if version != Some(2) && d > Duration::from_millis(40_950) {
            Some("is longer than version 3's 40.95 s (a 12-bit count of centiseconds)".to_string())
        } else {
            None
        };
        match why {
            Some(w) => {
                self.err(field, format!("`{t}` {w}"));
                None
            }
            None => Some(d),
        }
    }

    /// An instance's addresses, each in one instance only and none a port's own address:
    /// IPv4 unicast, each a VIP, a local address or on a port's connected prefix; IPv6
    /// global or unique-local unicast, each a VIP, an IPv6 local address or on a port's
    /// IPv6 prefix (a floating address). With an IPv4 address the adverts are VRRP over
    /// IPv4 and carry the IPv4 addresses (the IPv6 ones move with the role, keepalived's
    /// `virtual_ipaddress_excluded`); with IPv6 addresses only they are VRRP over IPv6
    /// (`ha_instance` checks the version and the port for that).
    fn ha_addresses(
        &mut self,
        i: usize,
        inst: &HaInstanceFile,
        ports: &[Option<Port>],
        services: &[Option<Service>],
        by_addr: &mut HashMap<IpAddr, usize>,
    ) -> Option<Vec<IpAddr>> {
        if inst.addresses.is_empty() {
            self.err(
                format!("ha.instance[{i}].addresses"),
                "no addresses; list the VIPs and floating addresses that move with this instance",
            );
            return None;
        }
        if inst.addresses.len() > 255 {
            self.err(
                format!("ha.instance[{i}].addresses"),
                "more than 255 addresses, which a VRRP advert cannot carry; split them into several instances",
            );
            return None;
        }
        let mut out = Vec::new();
        for (k, text) in inst.addresses.iter().enumerate() {
            let f = format!("ha.instance[{i}].addresses[{k}]");
            if let Ok(a6) = text.parse::<std::net::Ipv6Addr>() {
                let ip = IpAddr::V6(a6);
                if let Some(why) = ipv6_not_global(a6) {
                    self.err(
                        &f,
                        format!(
                            "{a6} is {why}; an instance's IPv6 addresses are global or unique-local unicast \
                             addresses (VIPs, Full-NAT local addresses, floating addresses on a port's IPv6 \
                             prefix); VRRP over IPv6 sends from the port's own link-local address"
                        ),
                    );
                    continue;
                }
                if let Some(p) = ports.iter().flatten().find(|p| p.ipv6_addresses.iter().any(|n| n.addr() == a6)) {
                    self.err(
                        &f,
                        format!(
                            "{a6} is port `{}`'s own IPv6 address, which each node keeps; list VIPs and floating \
                             addresses only",
                            p.name
                        ),
                    );
                    continue;
                }
                let vip = services.iter().flatten().any(|s| s.address == ip);
                let local = ports.iter().flatten().any(|p| p.local_addresses6.contains(&a6));
                let on_prefix = ports.iter().flatten().any(|p| p.ipv6_addresses.iter().any(|n| n.contains(&a6)));
                if !vip && !local && !on_prefix {
                    self.err(
                        &f,
                        format!(
                            "{a6} is not a VIP, not an IPv6 local address and not on any port's IPv6 prefix ({}); \
                             an IPv6 floating address must be on a port's network to be answered there",
                            list_prefixes6(ports)
                        ),
                    );
                    continue;
                }
                if let Some(j) = by_addr.get(&ip) {
                    let what = if *j == i { "this instance".to_string() } else { format!("ha.instance[{j}]") };
                    self.err(&f, format!("{a6} is already in {what}; an address moves with one instance only"));
                    continue;
                }
                by_addr.insert(ip, i);
                out.push(ip);
                continue;
            }
            let Some(a) = self.check(&f, parse_unicast(text)) else { continue };
            let ip = IpAddr::V4(a);
            if let Some(j) = by_addr.get(&ip) {
                let what = if *j == i { "this instance".to_string() } else { format!("ha.instance[{j}]") };
                self.err(&f, format!("{a} is already in {what}; an address moves with one instance only"));
                continue;
            }
            by_addr.insert(ip, i);
            if let Some(p) = ports.iter().flatten().find(|p| p.address.addr() == a) {
                self.err(
                    &f,
                    format!(
                        "{a} is port `{}`'s own address, which each node keeps; list VIPs and floating addresses only",
                        p.name
                    ),
                );
                continue;
            }
            let vip = services.iter().flatten().any(|s| s.address == ip);
            let local = ports.iter().flatten().any(|p| p.local_addresses.contains(&a));
            if !vip && !local && connected_port(ports, a).is_none() {
                self.err(
                    &f,
                    format!("{a} is not a VIP, not a local address and not on any port's prefix ({}); a floating address must be on a port's network to be answered there", list_prefixes(ports)),
                );
                continue;
            }
            out.push(ip);
        }
        (out.len() == inst.addresses.len()).then_some(out)
    }
}

/// `"tcp/10.10.0.100/80"`: a service as the REST paths name it.
/// `bgp.include_file`: absolute, naming a file in a directory that exists.
fn include_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if !path.is_absolute() || path.file_name().is_none() {
        return Err(format!(
            "`{text}` is not an absolute file path; give the file BIRD's configuration includes, such as \
             \"/run/rvs/bird-vips.conf\""
        ));
    }
    match path.parent() {
        Some(dir) if dir.is_dir() => Ok(path),
        Some(dir) => Err(format!("directory {} does not exist; create it (rvsd writes {text} there)", dir.display())),
        None => Err(format!("`{text}` has no directory")),
    }
}

pub(super) fn parse_service_ref(text: &str) -> Result<ServiceKey, String> {
    let bad = || {
        format!(
            "`{text}` is not a service; write it as \"tcp/VIP/PORT\", like \"tcp/10.10.0.100/80\" or \
             \"tcp/2001:db8::1/80\""
        )
    };
    let mut parts = text.split('/');
    let (Some(proto), Some(vip), Some(port), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let proto = parse_protocol(proto).ok_or_else(bad)?;
    let vip = vip.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(vip);
    let vip = vip.parse::<IpAddr>().map_err(|_| bad())?;
    let port = port.parse::<u16>().map_err(|_| bad())?;
    Ok(ServiceKey { proto, vip, port })
}

/// A server or sorry server of the other family than the service's VIP.
fn family_mismatch(addr: IpAddr, vip: Option<IpAddr>) -> String {
    let (mine, theirs) = if addr.is_ipv4() { ("IPv4", "IPv6") } else { ("IPv6", "IPv4") };
    let vip = vip.map_or_else(String::new, |v| format!(" {v}"));
    format!(
        "{addr} is {mine} and the service's VIP{vip} is {theirs}; a service's servers are of its VIP's family \
         (give an {theirs} server, or put {addr} in an {mine} service; only an IPv6 service takes IPv4 servers, \
         through NAT64 with forward = \"fullnat\")"
    )
}

fn list_prefixes6(ports: &[Option<Port>]) -> String {
    let v: Vec<String> = ports
        .iter()
        .flatten()
        .flat_map(|p| p.ipv6_addresses.iter().map(move |n| format!("{} {}", p.name, n.trunc())))
        .collect();
    if v.is_empty() {
        "no port has ipv6_addresses".into()
    } else {
        v.join(", ")
    }
}

fn conflict(addr: impl fmt::Display, owner: &str) -> String {
    format!("{addr} is already used by {owner}; port addresses, local addresses and VIPs must all be distinct")
}

/// Index of the port whose connected prefix contains `addr`.
fn connected_port(ports: &[Option<Port>], addr: Ipv4Addr) -> Option<usize> {
    ports.iter().position(|p| p.as_ref().is_some_and(|p| p.address.contains(&addr)))
}

fn list_prefixes(ports: &[Option<Port>]) -> String {
    let v: Vec<String> = ports.iter().flatten().map(|p| format!("{} {}", p.name, p.address.trunc())).collect();
    if v.is_empty() {
        "no ports".into()
    } else {
        v.join(", ")
    }
}

fn port_name(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!("`{name}` is not a valid port name; use 1 to 32 letters, digits, '-', '_' or '.'"))
    }
}

fn parse_device(s: &str) -> Result<Device, String> {
    if s.contains(',') || s.starts_with("net_") {
        let name = s.split(',').next().unwrap_or("");
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(format!("`{s}` is not a vdev string; write it like \"net_af_packet0,iface=front\""));
        }
        return Ok(Device::Vdev(s.to_string()));
    }
    if is_pci(s) {
        return Ok(Device::Pci(s.to_string()));
    }
    Err(format!(
        "`{s}` is neither a PCI address (like \"0000:03:00.0\") nor a vdev string (like \"net_af_packet0,iface=front\")"
    ))
}

/// `[DDDD:]BB:DD.F` in hex, as DPDK's `-a` accepts.
fn is_pci(s: &str) -> bool {
    let hex = |p: &str, n: usize| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit());
    let (bdf, func) = match s.rsplit_once('.') {
        Some(x) => x,
        None => return false,
    };
    if !(func.len() == 1 && matches!(func.as_bytes()[0], b'0'..=b'7')) {
        return false;
    }
    let parts: Vec<&str> = bdf.split(':').collect();
    match parts.as_slice() {
        [bus, dev] => hex(bus, 2) && hex(dev, 2),
        [dom, bus, dev] => hex(dom, 4) && hex(bus, 2) && hex(dev, 2),
        _ => false,
    }
}

fn parse_ipv4(s: &str) -> Result<Ipv4Addr, String> {
    match s.parse::<Ipv4Addr>() {
        Ok(a) => Ok(a),
        Err(_) if s.parse::<std::net::Ipv6Addr>().is_ok() => Err(format!(
            "`{s}` is IPv6; this field takes an IPv4 address (a port's own IPv6 addresses go in \
                 `ipv6_addresses`)"
        )),
        Err(_) if s.contains('/') => {
            Err(format!("`{s}` has a prefix length; write the bare address, like \"10.0.0.1\""))
        }
        Err(_) => Err(format!("`{s}` is not an IPv4 address; write it like \"10.0.0.1\"")),
    }
}

/// A VIP or real-server address, either family: an IPv4 address as [`parse_unicast`]
/// takes it, or an IPv6 unicast address (not unspecified, loopback, multicast,
/// link-local or IPv4-mapped; no zone id, no brackets, no prefix length).
pub(crate) fn parse_host(s: &str) -> Result<IpAddr, String> {
    if s.parse::<Ipv4Addr>().is_ok() {
        return parse_unicast(s).map(IpAddr::V4);
    }
    let t = s.trim();
    if let Some(inner) = t.strip_prefix('[') {
        let inner = inner.split(']').next().unwrap_or(inner);
        return Err(format!("`{s}` has brackets; write the bare address, like \"{inner}\" (brackets go only around an IPv6 address followed by a port)"));
    }
    if let Some((addr, _)) = t.split_once('%') {
        return Err(format!("`{s}` has a zone id; VIPs and real servers are global or unique-local addresses, written without one (not \"{addr}%…\")"));
    }
    if t.contains('/') {
        return Err(format!("`{s}` has a prefix length; write the bare address, like \"10.0.0.1\" or \"2001:db8::1\""));
    }
    let a = match t.parse::<Ipv6Addr>() {
        Ok(a) => a,
        Err(_) => {
            if let Some((host, port)) = t.rsplit_once(':') {
                if host.parse::<Ipv4Addr>().is_ok() && port.parse::<u16>().is_ok() {
                    return Err(format!(
                        "`{s}` has a port; write the address alone, like \"{host}\", and the port in `port`"
                    ));
                }
            }
            return Err(format!("`{s}` is not an IP address; write it like \"10.0.0.1\" or \"2001:db8::1\""));
        }
    };
    if let Some(v4) = a.to_ipv4_mapped() {
        return Err(format!("`{s}` is an IPv4-mapped IPv6 address; write the IPv4 address itself, \"{v4}\""));
    }
    match ipv6_not_global(a) {
        Some(why) => {
            Err(format!("{a} is {why}, not a unicast address a host can use; pick a global or unique-local address"))
        }
        None => Ok(IpAddr::V6(a)),
    }
}

/// Why `a` cannot be a host's global (or unique-local) IPv6 address, if it cannot: the
/// unspecified, loopback, multicast, link-local or IPv4-mapped ranges.
fn ipv6_not_global(a: Ipv6Addr) -> Option<&'static str> {
    if a.is_unspecified() {
        Some("the unspecified address")
    } else if a.is_loopback() {
        Some("the loopback address")
    } else if a.is_multicast() {
        Some("a multicast address")
    } else if a.segments()[0] & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if a.to_ipv4_mapped().is_some() {
        Some("IPv4-mapped")
    } else {
        None
    }
}

/// `IP:PORT` or `[IPv6]:PORT` with a unicast address and a non-zero port.
fn parse_endpoint(s: &str) -> Result<SocketAddr, String> {
    let bad = || {
        format!(
            "`{s}` is not a unicast \"IP:PORT\" with a non-zero port, such as \"10.20.0.50:80\" or \
             \"[2001:db8::50]:80\""
        )
    };
    if s.parse::<Ipv6Addr>().is_ok() {
        return Err(format!(
            "`{s}` is an IPv6 address without brackets, so its port cannot be told from the address; write \
             it as \"[{s}]:PORT\""
        ));
    }
    let a = s.parse::<SocketAddr>().map_err(|_| bad())?;
    if a.port() == 0 {
        return Err(bad());
    }
    if let SocketAddr::V6(v6) = a {
        if v6.scope_id() != 0 {
            return Err(bad());
        }
    }
    parse_host(&a.ip().to_string()).map_err(|_| bad())?;
    Ok(a)
}

/// A Full-NAT local address (`[[port]] local_addresses`): an IPv4 address as
/// [`parse_unicast`] takes it, or an IPv6 one as [`parse_host`] does.
fn parse_local_address(s: &str) -> Result<IpAddr, String> {
    if s.parse::<Ipv4Addr>().is_ok() {
        return parse_unicast(s).map(IpAddr::V4);
    }
    parse_host(s)
}

/// Which families of Full-NAT local addresses the file's ports have (as written: each
/// entry is checked on its own, with its field).
#[derive(Debug, Clone, Copy, Default)]
struct LocalFamilies {
    /// Any IPv4 local address.
    v4: bool,
    /// Any IPv6 local address.
    v6: bool,
}

impl LocalFamilies {
    fn of(file: &ConfigFile) -> Self {
        let mut f = LocalFamilies::default();
        for a in file.ports.iter().flat_map(|p| &p.local_addresses) {
            match a.trim().parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => f.v4 = true,
                Ok(IpAddr::V6(_)) => f.v6 = true,
                Err(_) => {}
            }
        }
        f
    }
}

/// An address a host may own: not 0.0.0.0, loopback, multicast, broadcast or class E.
fn parse_unicast(s: &str) -> Result<Ipv4Addr, String> {
    let a = parse_ipv4(s)?;
    if a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast() || a.octets()[0] >= 240 {
        return Err(format!("{a} is not a unicast address a host can use; pick an ordinary address"));
    }
    Ok(a)
}

fn parse_net(s: &str) -> Result<Ipv4Net, String> {
    let Some((addr, len)) = s.split_once('/') else {
        return Err(format!("`{s}` has no prefix length; write it like \"10.10.0.1/24\""));
    };
    let addr = parse_ipv4(addr)?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or_else(|| format!("`{s}` has a bad prefix length `{len}`; it must be 0 to 32"))?;
    Ipv4Net::new(addr, len).map_err(|e| format!("`{s}`: {e}"))
}

/// A port address: `a.b.c.d/len` where a.b.c.d is a usable host address of the prefix.
fn parse_port_address(s: &str) -> Result<Ipv4Net, String> {
    let net = parse_net(s)?;
    parse_unicast(&net.addr().to_string())?;
    if net.prefix_len() == 0 {
        return Err(format!(
            "`{s}`: a /0 prefix would put the whole Internet on this port; use the real prefix, like /24"
        ));
    }
    if net.prefix_len() <= 30 && (net.addr() == net.network() || net.addr() == net.broadcast()) {
        return Err(format!(
            "`{s}`: {} is the {} address of {}; give the port a host address inside the prefix",
            net.addr(),
            if net.addr() == net.network() { "network" } else { "broadcast" },
            net.trunc()
        ));
    }
    Ok(net)
}

/// A port's IPv6 address: `addr/len`, a unicast address a port can have (not
/// unspecified, loopback, multicast, IPv4-mapped, nor link-local: that one is derived
/// from the MAC), with a prefix length of 1 to 128.
fn parse_port_address6(s: &str) -> Result<Ipv6Net, String> {
    let Some((addr, len)) = s.split_once('/') else {
        return Err(format!("`{s}` has no prefix length; write it like \"2001:db8:1::1/64\""));
    };
    let a: Ipv6Addr = match addr.parse() {
        Ok(a) => a,
        Err(_) if addr.parse::<Ipv4Addr>().is_ok() => {
            return Err(format!("`{s}` is IPv4; ipv6_addresses takes IPv6 addresses like \"2001:db8:1::1/64\""))
        }
        Err(_) => return Err(format!("`{s}` is not an IPv6 address; write it like \"2001:db8:1::1/64\"")),
    };
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| (1..=128).contains(l))
        .ok_or_else(|| format!("`{s}` has a bad prefix length `{len}`; it must be 1 to 128 (64 is usual)"))?;
    if let Some(why) = ipv6_not_global(a) {
        let why = if why == "link-local" {
            "link-local (each port derives its own fe80:: address from its MAC)"
        } else {
            why
        };
        return Err(format!("`{s}`: {a} is {why}; give the port a unicast global or unique-local address"));
    }
    Ipv6Net::new(a, len).map_err(|e| format!("`{s}`: {e}"))
}

/// An IPv6 route's prefix: `addr/len`, host bits clear (`::/0` is the default route).
fn parse_prefix6(s: &str) -> Result<Ipv6Net, String> {
    let net: Ipv6Net = s.parse().map_err(|_| {
        format!("`{s}` is not an IPv6 prefix; write it like \"2001:db8:99::/48\" (\"::/0\" for the default route)")
    })?;
    if net.addr() != net.network() {
        return Err(format!("`{s}` has host bits set; did you mean \"{}\"?", net.trunc()));
    }
    Ok(net)
}

/// An IPv6 next hop: a global unicast address (a link-local gateway would also need its
/// port, which `[[route]]` has no field for).
fn parse_next_hop6(s: &str) -> Result<Ipv6Addr, String> {
    let a: Ipv6Addr = match s.parse() {
        Ok(a) => a,
        Err(_) if s.parse::<Ipv4Addr>().is_ok() => {
            return Err(format!("`{s}` is IPv4 but the route's prefix is IPv6; give the gateway's IPv6 address"))
        }
        Err(_) => return Err(format!("`{s}` is not an IPv6 address; write it like \"2001:db8:10::254\"")),
    };
    match ipv6_not_global(a) {
        Some("link-local") => Err(format!(
            "{a} is link-local; give the gateway's global address on the port's prefix (link-local next hops are not supported)"
        )),
        Some(why) => Err(format!("{a} is {why}, not a unicast address a host can use; give the gateway's address")),
        None => Ok(a),
    }
}

/// Highest `client_rate` and `client_burst` (one connection every 100 ns per client is
/// already no limit; the bucket arithmetic stays exact to 0.1 % below it).
const MAX_CLIENT_RATE: i64 = 1_000_000;

/// Most entries in one `allow` or `deny` list.
const MAX_CLIENT_PREFIXES: usize = 65_536;

/// `[ha] sync_refresh` when unset: every live connection is sent again twice a minute.
const DEFAULT_SYNC_REFRESH: Duration = Duration::from_secs(30);
/// The shortest and longest `sync_refresh` (it must come within the 120 s of FIN_WAIT and
/// TIME_WAIT for the peer's timers never to run out before the master's).
const MIN_SYNC_REFRESH: Duration = Duration::from_secs(1);
const MAX_SYNC_REFRESH: Duration = Duration::from_secs(120);
/// `[ha] failback_sync_limit` when unset.
const DEFAULT_FAILBACK_SYNC_LIMIT: Duration = Duration::from_secs(30);

/// `persistence_netmask` of a service whose VIP is IPv6 (`ipv6`) or IPv4: a prefix
/// length 1-128 (ipvsadm's `-M 64` on an IPv6 service) or a dotted netmask of contiguous
/// ones; the other family's form is refused with the fix.
fn parse_persist_mask(m: &str, ipv6: bool) -> Result<PersistMask, String> {
    let as_len = m.parse::<u32>().ok().filter(|_| m.bytes().all(|b| b.is_ascii_digit()));
    if ipv6 {
        return match as_len {
            Some(n @ 1..=128) => Ok(PersistMask::V6(n as u8)),
            Some(n) => Err(format!(
                "prefix length {n} is out of range; an IPv6 service takes a prefix length 1-128 such as \"64\" \
                 (128, the default, is per client)"
            )),
            None if m.parse::<Ipv4Addr>().is_ok() => Err(format!(
                "`{m}` is an IPv4 netmask and this service's VIP is IPv6; give a prefix length 1-128 such as \"64\" \
                 (as ipvsadm -M takes for IPv6)"
            )),
            None => Err(format!("`{m}` is not a prefix length; give 1-128 such as \"64\"")),
        };
    }
    if as_len.is_some() {
        return Err(format!(
            "`{m}` is a prefix length and this service's VIP is IPv4; give a netmask such as \"255.255.255.0\""
        ));
    }
    match m.parse::<Ipv4Addr>() {
        Ok(a) if u32::from(a).leading_ones() + u32::from(a).trailing_zeros() == 32 => Ok(PersistMask::V4(a)),
        _ => Err(format!("`{m}` is not a netmask; use contiguous ones such as \"255.255.255.0\"")),
    }
}

/// A client prefix of `allow`/`deny`: a network with no host bits set
/// (`192.0.2.0/24`, `2001:db8::/48`), or a bare address (a /32 or /128).
fn parse_client_prefix(s: &str) -> Result<IpNet, String> {
    let bad = || {
        format!("`{s}` is not a client prefix; write a network like \"192.0.2.0/24\" or an address like \"192.0.2.7\"")
    };
    let net = match s.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => {
            let a = s.parse::<IpAddr>().map_err(|_| bad())?;
            IpNet::new(a, if a.is_ipv4() { 32 } else { 128 }).map_err(|e| format!("`{s}`: {e}"))?
        }
    };
    if net.addr() != net.network() {
        return Err(format!("`{s}` has host bits set; did you mean \"{}\"?", net.trunc()));
    }
    Ok(net)
}

/// A route prefix: canonical, host bits zero.
fn parse_prefix(s: &str) -> Result<Ipv4Net, String> {
    let net = parse_net(s)?;
    if net.addr() != net.network() {
        return Err(format!("`{s}` has host bits set; did you mean \"{}\"?", net.trunc()));
    }
    Ok(net)
}

fn parse_unicast_mac(s: &str) -> Result<MacAddr, String> {
    let m: MacAddr = s.parse()?;
    if !m.is_unicast() {
        return Err(format!("{m} is a multicast or zero MAC; use a unicast address (first byte even)"));
    }
    Ok(m)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}); write it with a unit, like \"300s\", \"500ms\" or \"5m\""))
}

/// A secret's file (the HA key, the REST bearer token) must exist, be a non-empty
/// regular file and not be readable or writable by group or others (0600 or 0400).
fn check_secret_file(path: &str, what: &str) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {what} file {path}: {e}; create it with a random secret and chmod 600"))?;
    if !meta.is_file() {
        return Err(format!("{path} is not a regular file; point it at the file holding the {what}"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!("{path} has mode {mode:04o}, so others can read the {what}; run chmod 600 {path}"));
    }
    if meta.len() == 0 {
        return Err(format!("{path} is empty; put the {what} in it (e.g. head -c 32 /dev/urandom | base64 > {path})"));
    }
    Ok(PathBuf::from(path))
}

/// Parses `dataplane.probe_ports`: `"LOW-HIGH"`, within 1024-65535 (below 1024 are the
/// well-known ports a real server may treat specially), LOW <= HIGH.
fn parse_port_range(text: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let shape = || format!("`{text}` is not a port range; write it as \"LOW-HIGH\", e.g. \"61000-61999\"");
    let (lo, hi) = text.split_once('-').ok_or_else(shape)?;
    let port = |t: &str| t.trim().parse::<u16>().map_err(|_| shape());
    let (lo, hi) = (port(lo)?, port(hi)?);
    if lo < 1024 {
        return Err(format!("{lo} is below 1024; probe source ports must be between 1024 and 65535"));
    }
    if lo > hi {
        return Err(format!("{lo}-{hi} is empty: the first port must not be above the last"));
    }
    Ok(lo..=hi)
}
