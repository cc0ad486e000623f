//! ipvsadm's listings, rendered from rvsd's REST documents.
//!
//! Contract: every function is pure (documents in, text out) and reproduces the layout of
//! ipvsadm 1.31's `printf`s byte for byte — headers, column widths, left/right alignment,
//! the trailing blanks of padded last columns, and `print_largenum`'s K/M/G/T scaling — so
//! scripts written against ipvsadm parse rvsadm's output. The format strings are quoted
//! next to the code that reproduces them.
//!
//! Addresses and ports are always printed numerically (rvsadm accepts `-n` but does not
//! resolve names; reverse DNS of VIPs is rarely what an operator wants from a balancer).
//! Services are sorted by protocol, address and port and servers by address and port,
//! as ipvsadm does by default.

use std::fmt::Write as _;

use super::args::{Forward, Protocol};
use super::model::{
    address_key, protocol_key, Connection, Rates, Server, ServerStats, Service, ServiceStats, StatusDoc, Timeouts,
    Traffic,
};

/// ipvsadm's first line of a full listing. rvs reports the IPVS version its listing mimics
/// and IPVS's default connection hash size.
pub const VERSION_LINE: &str = "IP Virtual Server version 1.2.1 (size=4096)";

/// Which columns `-L` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Columns {
    /// Scheduler, flags, forward, weight, active and inactive connections.
    Plain,
    /// `--stats`: connections, packets and bytes.
    Stats,
    /// `--thresholds`: upper and lower thresholds, active and inactive connections.
    Thresholds,
    /// `--persistent-conn`: weight, persistent connections (always 0: rvs keeps no
    /// persistence templates to count), active and inactive connections.
    PersistConn,
    /// `--tun-info`: Plain with the tunnel type (`ipip`, or `n/a`) after the method.
    TunInfo,
    /// `--health` (rvs's own): Plain, then each server's health state, admin state, last
    /// probe latency in milliseconds and last result in words (see [`health_columns`]).
    Health,
}

/// Sorts services and their servers in ipvsadm's order.
pub fn sort_services(services: &mut [Service]) {
    services.sort_by_cached_key(|s| {
        let a = address_key(&s.address);
        (a.0, protocol_key(&s.protocol), a, s.port)
    });
    for s in services.iter_mut() {
        s.servers.sort_by_cached_key(|r| (address_key(&r.address), r.port));
    }
}

/// Sorts the services of `GET /v1/stats` and their servers in ipvsadm's order.
pub fn sort_stats(services: &mut [ServiceStats]) {
    services.sort_by_cached_key(|s| {
        let a = address_key(&s.address);
        (a.0, protocol_key(&s.protocol), a, s.port)
    });
    for s in services.iter_mut() {
        s.servers.sort_by_cached_key(|r| (address_key(&r.address), r.port));
    }
}

/// `ADDR:PORT`, with IPv6 addresses in brackets.
fn addr_port(address: &str, port: u64) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// ipvsadm's `svc_name` for listings: `"%s  %s"` of `TCP`/`UDP` and the address, cut at 33.
fn service_name(protocol: &str, address: &str, port: u64) -> String {
    let proto = match Protocol::from_name(protocol) {
        Some(Protocol::Tcp) => "TCP".to_string(),
        Some(Protocol::Udp) => "UDP".to_string(),
        None => protocol.to_ascii_uppercase(),
    };
    let mut name = format!("{proto}  {}", addr_port(address, port));
    if !address.contains(':') {
        truncate_chars(&mut name, 33);
    }
    name
}

/// ipvsadm's `dname`: the server's `ADDR:PORT`, cut at 28 for IPv4.
fn server_name(address: &str, port: u64) -> String {
    let mut name = addr_port(address, port);
    if !address.contains(':') {
        truncate_chars(&mut name, 28);
    }
    name
}

fn truncate_chars(s: &mut String, n: usize) {
    if let Some((i, _)) = s.char_indices().nth(n) {
        s.truncate(i);
    }
}

/// ipvsadm's `print_largenum`: `%9llu` below 10^8, then `%8llu` of a scaled value and a unit
/// letter (K below 10^9, M below 10^11, G below 10^14, T above).
pub fn largenum(n: u64) -> String {
    number(n, false)
}

/// [`largenum`], or with `exact` (`-X`) the whole number right-aligned in
/// `max(9, digits + 1)` columns (`printf("%*llu", len <= 8 ? 9 : len + 1, i)`).
pub fn number(n: u64, exact: bool) -> String {
    if exact {
        let digits = n.to_string();
        let width = if digits.len() <= 8 { 9 } else { digits.len() + 1 };
        format!("{digits:>width$}")
    } else if n < 100_000_000 {
        format!("{n:>9}")
    } else if n < 1_000_000_000 {
        format!("{:>8}K", n / 1_000)
    } else if n < 100_000_000_000 {
        format!("{:>8}M", n / 1_000_000)
    } else if n < 100_000_000_000_000 {
        format!("{:>8}G", n / 1_000_000_000)
    } else {
        format!("{:>8}T", n / 1_000_000_000_000)
    }
}

/// The listing word of a forwarding method; rvsd's own word when rvsadm does not know it.
fn forward_word(forward: &str) -> String {
    Forward::from_name(forward).map_or_else(|| forward.to_string(), |f| f.word().to_string())
}

/// The two title lines of `-L` (`print_title`).
fn title(out: &mut String, columns: Columns) {
    match columns {
        // printf("%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n", "Prot LocalAddress:Port", ...)
        Columns::Stats => {
            let _ = writeln!(
                out,
                "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port",
                "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
            );
        }
        Columns::Thresholds => {
            let _ = writeln!(
                out,
                "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port",
                "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
            );
        }
        Columns::PersistConn => {
            let _ = writeln!(
                out,
                "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port",
                "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
            );
        }
        Columns::TunInfo => {
            out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
            out.push_str("  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n");
        }
        Columns::Plain => {
            out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
            out.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
        }
        // Plain's titles at the widths of its server lines, then the health columns'.
        Columns::Health => {
            out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
            let _ = writeln!(
                out,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10} {:<7} {:<6} {:<7} {:<20} Last",
                "RemoteAddress:Port",
                "Forward",
                "Weight",
                "ActiveConn",
                "InActConn",
                "Health",
                "Admin",
                "Latency",
                "Since"
            );
        }
    }
}

/// `-L` / `-L --stats`: the version line (when `full`, as for a whole-table listing; ipvsadm
/// omits it for `-L -t SERVICE`), the titles, then each service and its servers.
pub fn services(services: &[Service], columns: Columns, full: bool) -> String {
    services_exact(services, columns, full, false)
}

/// [`services`], with `-X` (`exact`) for the `--stats` numbers.
pub fn services_exact(services: &[Service], columns: Columns, full: bool, exact: bool) -> String {
    let mut out = String::new();
    if full {
        out.push_str(VERSION_LINE);
        out.push('\n');
    }
    title(&mut out, columns);
    for s in services {
        let name = service_name(&s.protocol, &s.address, s.port);
        match columns {
            Columns::Plain | Columns::Thresholds | Columns::PersistConn | Columns::TunInfo | Columns::Health => {
                // printf("%s %s", svc_name, sched_name) + " persistent %u" + " mask %s" (an
                // IPv6 service: " mask %i", its prefix length)
                let _ = write!(out, "{name} {}", s.scheduler);
                if let Some(p) = s.persistence {
                    let _ = write!(out, " persistent {p}");
                    if let Some(mask) = s.persistence_netmask.as_deref().filter(|m| !is_host_mask(m)) {
                        let _ = write!(out, " mask {mask}");
                    }
                }
                // rvs's own flags, only in rvs's own listing: ipvsadm's stay byte-identical.
                if columns == Columns::Health && s.client_rate != 0 {
                    let _ = write!(out, " client-rate {} client-burst {}", s.client_rate, s.client_burst);
                }
                out.push('\n');
                for r in &s.servers {
                    server_line(&mut out, r, columns);
                }
            }
            Columns::Stats => {
                // printf("%-33s", svc_name) + print_largenum × 5
                let _ = write!(out, "{name:<33}");
                traffic(&mut out, &s.stats, exact);
                out.push('\n');
                for r in &s.servers {
                    // printf("  -> %-28s", dname) + print_largenum × 5
                    let _ = write!(out, "  -> {:<28}", server_name(&r.address, r.port));
                    traffic(&mut out, &r.stats, exact);
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// Whether `persistence_netmask` is the per-client default, which ipvsadm does not
/// print: `255.255.255.255` on an IPv4 service, `128` on an IPv6 one (ipvsadm prints
/// " mask %i" for AF_INET6 only when the prefix length is not 128).
fn is_host_mask(mask: &str) -> bool {
    mask.is_empty() || mask == "255.255.255.255" || mask == "128"
}

/// One server line of the listings without counters.
fn server_line(out: &mut String, r: &Server, columns: Columns) {
    let (name, st) = (server_name(&r.address, r.port), &r.stats);
    let _ = match columns {
        // printf("  -> %-28s %-10u %-10u %-10u %-10u\n", dname, u_thr, l_thr, active, inactive)
        Columns::Thresholds => writeln!(
            out,
            "  -> {name:<28} {:<10} {:<10} {:<10} {:<10}",
            r.upper_threshold, r.lower_threshold, st.active_conns, st.inactive_conns
        ),
        // printf("  -> %-28s %-9u %-11u %-10u %-10u\n", dname, weight, persistconns, active, inactive)
        Columns::PersistConn => {
            writeln!(
                out,
                "  -> {name:<28} {:<9} {:<11} {:<10} {:<10}",
                r.listed_weight(),
                0,
                st.active_conns,
                st.inactive_conns
            )
        }
        // printf("  -> %-28s %-7s %-13s %-6d %-10u %-10u\n", dname, fwd, tun_info ?: "n/a", ...)
        Columns::TunInfo => writeln!(
            out,
            "  -> {name:<28} {:<7} {:<13} {:<6} {:<10} {:<10}",
            forward_word(&r.forward),
            if r.forward() == Some(Forward::Tunnel) { "ipip" } else { "n/a" },
            r.listed_weight(),
            st.active_conns,
            st.inactive_conns
        ),
        Columns::Health => {
            plain_columns(out, r);
            health_columns(out, r);
            out.push('\n');
            Ok(())
        }
        _ => {
            plain_columns(out, r);
            out.push('\n');
            Ok(())
        }
    };
}

/// printf("  -> %-28s %-7s %-6d %-10u %-10u\n", dname, fwd, weight, active, inactive),
/// without the newline.
fn plain_columns(out: &mut String, r: &Server) {
    let _ = write!(
        out,
        "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
        server_name(&r.address, r.port),
        forward_word(&r.forward),
        r.listed_weight(),
        r.stats.active_conns,
        r.stats.inactive_conns
    );
}

/// `--health`'s columns after Plain's: ` Health  Admin  Latency Since Last`, i.e. the health
/// state (`up`, `down`, `unknown`; `%-7s`), the admin state (`ready`, `drain`, `maint`;
/// `%-6s`), the last probe's latency in milliseconds with one decimal (`%-7s`), when the
/// server entered its health state (RFC 3339 UTC, `%-20s`), and the
/// last result in words, unpadded and last because it may hold blanks. What rvsd does not
/// report (an rvsd from before health checking, a server not probed yet) prints as `-`.
fn health_columns(out: &mut String, r: &Server) {
    let h = r.health.as_ref();
    let _ = write!(
        out,
        " {:<7} {:<6} {:<7} {:<20} {}",
        cell(h.map(|h| h.state.as_str())),
        cell(r.admin.as_deref()),
        latency_ms(h.and_then(|h| h.latency_us)),
        cell(h.and_then(|h| h.since.as_deref())),
        cell(h.map(|h| h.last.as_str())),
    );
}

/// A word from rvsd for a one-line cell: `-` when absent or empty, control characters
/// (a newline in a probe's reply) as blanks, so that each server stays on one line.
fn cell(word: Option<&str>) -> String {
    match word.map(str::trim).filter(|w| !w.is_empty()) {
        None => "-".to_string(),
        Some(w) => w.chars().map(|c| if c.is_control() { ' ' } else { c }).collect(),
    }
}

/// Microseconds as milliseconds with one decimal, rounded half up (`1250` → `1.3`);
/// `-` when rvsd reported none.
fn latency_ms(us: Option<u64>) -> String {
    match us {
        None => "-".to_string(),
        Some(us) => {
            let tenths = us / 100 + u64::from(us % 100 >= 50);
            format!("{}.{}", tenths / 10, tenths % 10)
        }
    }
}

fn traffic(out: &mut String, t: &Traffic, exact: bool) {
    for n in [t.conns, t.in_packets, t.out_packets, t.in_bytes, t.out_bytes] {
        out.push_str(&number(n, exact));
    }
}

/// `-L --rate` from `GET /v1/stats`; missing rates print as 0.
pub fn rates(services: &[ServiceStats], full: bool) -> String {
    rates_exact(services, full, false)
}

/// [`rates`], with `-X` (`exact`) for the scaled columns.
pub fn rates_exact(services: &[ServiceStats], full: bool, exact: bool) -> String {
    let mut out = String::new();
    if full {
        out.push_str(VERSION_LINE);
        out.push('\n');
    }
    // printf("%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n", "Prot LocalAddress:Port", "CPS", ...)
    let _ = writeln!(
        out,
        "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port",
        "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
    );
    for s in services {
        // printf("%-33s", svc_name) + print_largenum × 5
        let _ = write!(out, "{:<33}", service_name(&s.protocol, &s.address, s.port));
        let r = s.rates.unwrap_or_default();
        for n in [r.cps, r.in_pps, r.out_pps, r.in_bps, r.out_bps] {
            out.push_str(&number(n, exact));
        }
        out.push('\n');
        for d in &s.servers {
            server_rates(&mut out, d, exact);
        }
    }
    out
}

/// printf("  -> %-28s %8u %8u %8u", dname, cps, inpps, outpps) + print_largenum × 2
fn server_rates(out: &mut String, d: &ServerStats, exact: bool) {
    let r: Rates = d.rates.unwrap_or_default();
    let _ = write!(out, "  -> {:<28} {:>8} {:>8} {:>8}", server_name(&d.address, d.port), r.cps, r.in_pps, r.out_pps);
    out.push_str(&number(r.in_bps, exact));
    out.push_str(&number(r.out_bps, exact));
    out.push('\n');
}

/// `-L -c`: ipvsadm's connection table.
pub fn connections(conns: &[Connection]) -> String {
    connections_with(conns, false)
}

/// [`connections`]; `persistent_conn` (`-c --persistent-conn`) adds ipvsadm's persistence
/// engine columns to the title (rvs has no persistence engines, so no row fills them).
pub fn connections_with(conns: &[Connection], persistent_conn: bool) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if persistent_conn {
        // printf("pro expire %-11s %-18s %-18s %-18s %-16s %s\n", "state", "source",
        //        "virtual", "destination", "pe name", "pe_data")
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        );
    } else {
        // printf("pro expire %-11s %-18s %-18s %s\n", "state", "source", "virtual", "destination")
        let _ = writeln!(out, "pro expire {:<11} {:<18} {:<18} destination", "state", "source", "virtual");
    }
    for c in conns {
        // sprintf(expire_str, "%02d:%02d", minutes, seconds)
        let expire = format!("{:02}:{:02}", c.expires_in / 60, c.expires_in % 60);
        // printf("%-3s %-6s %-11s %-18s %-18s %s\n", protocol, expire, state, cname, vname, dname)
        let _ = writeln!(
            out,
            "{:<3} {:<6} {:<11} {:<18} {:<18} {}",
            c.protocol.to_ascii_uppercase(),
            expire,
            c.state,
            c.client,
            c.vip,
            c.server
        );
    }
    out
}

/// `-L --timeout`. A value rvsd did not report prints as 0.
pub fn timeouts(t: &Timeouts) -> String {
    // printf("Timeout (tcp tcpfin udp): %d %d %d\n", ...)
    format!("Timeout (tcp tcpfin udp): {} {} {}\n", t.tcp.unwrap_or(0), t.tcp_fin.unwrap_or(0), t.udp.unwrap_or(0))
}

/// `-S`: one `-A` line per service and one `-a` line per server, the lines `-R` reads.
///
/// As ipvsadm: `-A -t ADDR:PORT -s SCHED [-p N [-M MASK]]` and `-a -t ADDR:PORT -r ADDR:PORT
/// -g|-m|-i -w N`. rvs additions, so that a save/restore round trip loses nothing: `-b` for
/// Full-NAT, ` -x N` / ` -y N` when a threshold is set (ipvsadm's `-S` drops them), and
/// ` --client-rate N [--client-burst M]` when a per-client rate is set (rvs's own).
///
/// Returns the text and a complaint for each entry that cannot be written as an ipvsadm
/// line (an unknown protocol or forwarding method); those entries are left out.
pub fn save(services: &[Service]) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut problems = Vec::new();
    for s in services {
        let Some(proto) = s.protocol() else {
            problems.push(format!(
                "service {} has protocol {:?}, which -S cannot write",
                addr_port(&s.address, s.port),
                s.protocol
            ));
            continue;
        };
        let svc = format!("{} {}", proto.switch(), addr_port(&s.address, s.port));
        let _ = write!(out, "-A {svc} -s {}", s.scheduler);
        if let Some(p) = s.persistence {
            let _ = write!(out, " -p {p}");
            if let Some(mask) = s.persistence_netmask.as_deref().filter(|m| !is_host_mask(m)) {
                let _ = write!(out, " -M {mask}");
            }
        }
        // rvs's own, so that a save/restore round trip keeps the limit; written only when a
        // rate is set, so ipvsadm's services save exactly as ipvsadm saves them.
        if s.client_rate != 0 {
            let _ = write!(out, " --client-rate {}", s.client_rate);
            // The burst defaults to the rate.
            if s.client_burst != s.client_rate {
                let _ = write!(out, " --client-burst {}", s.client_burst);
            }
        }
        out.push('\n');
        for r in &s.servers {
            let Some(fwd) = r.forward() else {
                problems.push(format!(
                    "server {} of {svc} has forwarding method {:?}, which -S cannot write",
                    addr_port(&r.address, r.port),
                    r.forward
                ));
                continue;
            };
            let _ = write!(out, "-a {svc} -r {} {} -w {}", addr_port(&r.address, r.port), fwd.switch(), r.weight);
            if fwd == Forward::Tunnel {
                // ipvsadm 1.31's print_tunnel_rule; rvs's tunnels are IPIP.
                out.push_str(" --tun-type ipip");
            }
            if r.upper_threshold != 0 {
                let _ = write!(out, " -x {}", r.upper_threshold);
            }
            if r.lower_threshold != 0 {
                let _ = write!(out, " -y {}", r.lower_threshold);
            }
            out.push('\n');
        }
    }
    (out, problems)
}

/// The connection-sync lines of `rvsadm status`.
fn sync_lines(out: &mut String, s: &crate::model::SyncDoc) {
    let rec = |k: &str| s.records.get(k).copied().unwrap_or(0);
    let peer = if s.connected { "connected" } else { "not heard" };
    let sync =
        if s.in_sync { "in sync".to_string() } else { format!("resyncing ({} records so far)", s.bulk_received) };
    let _ = writeln!(
        out,
        "\nSync with {}: {peer}, {sync}{}",
        s.peer,
        if s.bulk_sending { ", streaming bulk to it" } else { "" }
    );
    let _ = writeln!(
        out,
        "  records sent {} received {} resent {} lost {}; lag {} records {} ms; rejected {}",
        rec("sent"),
        rec("received"),
        rec("resent"),
        rec("lost_sent") + rec("lost_received"),
        s.lag_records,
        s.lag_ms,
        s.rejected.values().sum::<u64>()
    );
    for why in s.refused.iter().chain(&s.hold_preempt) {
        let _ = writeln!(out, "  {why}");
    }
}

/// The lines of `rvsadm status` about a failed config reload (nothing when it succeeded).
fn reload_lines(out: &mut String, r: &crate::model::ReloadDoc) {
    let Some(error) = &r.error else { return };
    let at = r
        .last_attempt_unix
        .map(|t| {
            let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t);
            format!(" at {}", humantime::format_rfc3339_seconds(when))
        })
        .unwrap_or_default();
    let _ = writeln!(out, "Config reload FAILED{at} ({} of {} reloads failed): {error}", r.failures, r.attempts);
    let _ = writeln!(
        out,
        "  the configuration of generation {} stays in force; fix {} and send SIGHUP again",
        r.generation, r.path
    );
}

/// `rvsadm status`: version and uptime, a failed config reload, a line per stalled worker, ports, workers, VRRP instances (with `[ha]`), the VIPs announced through BIRD (with `[bgp]`), and
/// the drop reasons that are not 0.
pub fn status(s: &StatusDoc) -> String {
    let mut out = String::new();
    let up = s.uptime_seconds;
    let _ = writeln!(
        out,
        "rvsd {}, up {}d {:02}:{:02}:{:02}",
        s.version,
        up / 86_400,
        up / 3_600 % 24,
        up / 60 % 60,
        up % 60
    );
    if let Some(r) = &s.reload {
        reload_lines(&mut out, r);
    }

    out.push('\n');
    let ports: Vec<Vec<String>> = s
        .ports
        .iter()
        .map(|p| {
            let link = if p.link.up {
                let duplex = if p.link.full_duplex { "full" } else { "half" };
                if p.link.speed_mbps > 0 {
                    format!("up {}Mb/s {duplex}", p.link.speed_mbps)
                } else {
                    format!("up {duplex}")
                }
            } else {
                "down".to_string()
            };
            vec![
                p.name.clone(),
                p.mac.clone(),
                p.address.clone(),
                link,
                p.stats.rx_packets.to_string(),
                p.stats.tx_packets.to_string(),
                p.stats.rx_missed.to_string(),
                (p.stats.rx_errors + p.stats.tx_errors).to_string(),
                p.stats.rx_nombuf.to_string(),
            ]
        })
        .collect();
    table(
        &mut out,
        &["Port", "MAC", "Address", "Link", "RxPackets", "TxPackets", "RxMissed", "Errors", "RxNoMbuf"],
        &ports,
        4,
    );

    let exception: Vec<Vec<String>> = s
        .ports
        .iter()
        .filter_map(|p| {
            let e = p.exception.as_ref()?;
            let c = |k: &str| e.counters.get(k).copied().unwrap_or(0).to_string();
            Some(vec![
                p.name.clone(),
                e.iface.clone(),
                e.rate.to_string(),
                c("to_kernel"),
                c("from_kernel"),
                c("rate_limited"),
                c("out_rate_limited"),
                c("ring_full"),
                c("bad_frame"),
            ])
        })
        .collect();
    if !exception.is_empty() {
        out.push('\n');
        table(
            &mut out,
            &[
                "Exception",
                "Iface",
                "Rate",
                "ToKernel",
                "FromKernel",
                "RateLimited",
                "OutLimited",
                "RingFull",
                "BadFrame",
            ],
            &exception,
            3,
        );
    }

    out.push('\n');
    let workers: Vec<Vec<String>> = s
        .workers
        .iter()
        .map(|w| {
            vec![
                w.index.to_string(),
                w.lcore.to_string(),
                w.rx_packets.to_string(),
                w.tx_packets.to_string(),
                w.conns.to_string(),
                w.conns_created.to_string(),
                w.redirected_in.to_string(),
                w.redirected_out.to_string(),
                w.drops.values().sum::<u64>().to_string(),
            ]
        })
        .collect();
    table(
        &mut out,
        &["Worker", "Lcore", "RxPackets", "TxPackets", "Conns", "ConnsCreated", "RedirIn", "RedirOut", "Drops"],
        &workers,
        0,
    );
    for w in s.workers.iter().filter(|w| w.stalled) {
        let _ = writeln!(
            out,
            "Worker {} (lcore {}) STALLED: no poll for {}.{:03} s",
            w.index,
            w.lcore,
            w.stalled_for_ms / 1000,
            w.stalled_for_ms % 1000
        );
    }

    if let Some(ha) = &s.ha {
        out.push('\n');
        let rows: Vec<Vec<String>> = ha
            .instances
            .iter()
            .map(|i| {
                vec![
                    i.vrid.to_string(),
                    if i.family.is_empty() { "-".into() } else { i.family.clone() },
                    i.port.clone(),
                    i.state.clone(),
                    i.master.clone().unwrap_or_else(|| "-".into()),
                    format!("{}/{}", i.effective_priority, i.priority),
                    i.adverts_sent.to_string(),
                    i.adverts_received.to_string(),
                    i.invalid.values().sum::<u64>().to_string(),
                ]
            })
            .collect();
        table(
            &mut out,
            &["VRID", "Family", "Port", "State", "Master", "Prio", "AdvSent", "AdvRecv", "Invalid"],
            &rows,
            5,
        );
        for i in &ha.instances {
            if let Some(reason) = &i.reason {
                let since = i.since.as_deref().unwrap_or("-");
                let family = if i.family.is_empty() { String::new() } else { format!(" {}", i.family) };
                let _ = writeln!(out, "VRID {}{family} {} since {since}: {reason}", i.vrid, i.state);
            }
        }
        if let Some(sync) = &ha.sync {
            sync_lines(&mut out, sync);
        }
    }

    if let Some(bgp) = &s.bgp {
        bgp_lines(&mut out, bgp);
    }

    out.push('\n');
    let drops: Vec<Vec<String>> =
        s.drops.iter().filter(|(_, &n)| n != 0).map(|(k, n)| vec![k.clone(), n.to_string()]).collect();
    if drops.is_empty() {
        out.push_str("Drops: none\n");
    } else {
        table(&mut out, &["Drop reason", "Packets"], &drops, 1);
    }
    out
}

/// The lines of `rvsadm status` about BGP: whether BIRD has the include file (or why
/// not), then a row per VIP, announced or withdrawn, since when and why.
fn bgp_lines(out: &mut String, b: &crate::model::BgpDoc) {
    out.push('\n');
    match &b.error {
        Some(e) => {
            let retry =
                b.retry_in_ms.map(|ms| format!(", retry in {}.{} s", ms / 1000, ms % 1000 / 100)).unwrap_or_default();
            let _ = writeln!(
                out,
                "{e} (socket {}{retry}; {} of {} attempts failed); forwarding continues",
                b.socket, b.failures, b.configures
            );
        }
        None if b.in_sync => {
            let _ = writeln!(out, "BGP: BIRD has {} (socket {})", b.include_file, b.socket);
        }
        None => {
            let _ = writeln!(out, "BGP: {} not applied yet (socket {})", b.include_file, b.socket);
        }
    }
    let rows: Vec<Vec<String>> = b
        .vips
        .iter()
        .map(|v| {
            let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(v.since_unix);
            vec![v.vip.clone(), v.state.clone(), humantime::format_rfc3339_seconds(when).to_string(), v.why.clone()]
        })
        .collect();
    table(out, &["VIP", "State", "Since", "Why"], &rows, 4);
}

/// A table with a header row: columns before `first_number` are left-aligned, the others
/// right-aligned; columns separated by two blanks; no trailing blanks.
fn table(out: &mut String, headers: &[&str], rows: &[Vec<String>], first_number: usize) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            if i >= first_number && i > 0 {
                let _ = write!(line, "{cell:>w$}");
            } else {
                let _ = write!(line, "{cell:<w$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largenum_matches_print_largenum() {
        assert_eq!(largenum(0), "        0");
        assert_eq!(largenum(99_999_999), " 99999999");
        assert_eq!(largenum(100_000_000), "  100000K");
        assert_eq!(largenum(999_999_999), "  999999K");
        assert_eq!(largenum(1_000_000_000), "    1000M");
        assert_eq!(largenum(99_999_999_999), "   99999M");
        assert_eq!(largenum(100_000_000_000), "     100G");
        assert_eq!(largenum(100_000_000_000_000), "     100T");
        assert_eq!(largenum(u64::MAX), "18446744T");
        assert!([0, 1 << 20, 1 << 40, 1 << 50].iter().all(|&n| largenum(n).len() == 9));
    }

    #[test]
    fn titles_line_up_with_columns() {
        let s = services(&[], Columns::Stats, true);
        let t = s.lines().nth(1).unwrap();
        assert_eq!(t, "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes");
        let r = rates(&[], false);
        assert_eq!(
            r.lines().next().unwrap(),
            "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS"
        );
        // Each title column ends where a 9-wide number column ends.
        assert_eq!(t.len(), 33 + 5 * 9);
    }

    #[test]
    fn names_are_cut_like_ipvsadm() {
        assert_eq!(service_name("tcp", "10.10.0.100", 80), "TCP  10.10.0.100:80");
        assert_eq!(service_name("UDP", "1.2.3.4", 53), "UDP  1.2.3.4:53");
        assert_eq!(service_name("sctp", "1.2.3.4", 1), "SCTP  1.2.3.4:1");
        assert_eq!(service_name("tcp", "a-very-long-host-name.example.com", 80).len(), 33);
        assert_eq!(server_name("::1", 80), "[::1]:80");
    }

    #[test]
    fn unknown_words_pass_through() {
        assert_eq!(forward_word("nat"), "Masq");
        assert_eq!(forward_word("FULLNAT"), "FullNat");
        assert_eq!(forward_word("local"), "local");
    }

    #[test]
    fn save_skips_what_it_cannot_write() {
        let svc = Service {
            protocol: "sctp".into(),
            address: "1.2.3.4".into(),
            port: 1,
            scheduler: "rr".into(),
            ..Default::default()
        };
        let ok = Service {
            protocol: "tcp".into(),
            address: "1.2.3.4".into(),
            port: 80,
            scheduler: "rr".into(),
            servers: vec![Server {
                address: "5.6.7.8".into(),
                port: 80,
                forward: "magic".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let (text, problems) = save(&[svc, ok]);
        assert_eq!(text, "-A -t 1.2.3.4:80 -s rr\n");
        assert_eq!(problems.len(), 2);
    }

    /// A per-client rate: `-S` writes it (the burst only when it is not the rate's default),
    /// `--health` shows it; the plain listing stays ipvsadm's.
    #[test]
    fn client_rate_saves_and_shows_only_in_rvs_listings() {
        let svc = |rate, burst| Service {
            protocol: "tcp".into(),
            address: "10.10.0.100".into(),
            port: 80,
            scheduler: "wrr".into(),
            client_rate: rate,
            client_burst: burst,
            ..Default::default()
        };
        assert_eq!(save(&[svc(20, 64)]).0, "-A -t 10.10.0.100:80 -s wrr --client-rate 20 --client-burst 64\n");
        assert_eq!(save(&[svc(20, 20)]).0, "-A -t 10.10.0.100:80 -s wrr --client-rate 20\n");
        assert_eq!(save(&[svc(0, 0)]).0, "-A -t 10.10.0.100:80 -s wrr\n");
        let health = services(&[svc(20, 64)], Columns::Health, false);
        assert!(health.contains("\nTCP  10.10.0.100:80 wrr client-rate 20 client-burst 64\n"), "{health}");
        for columns in [Columns::Plain, Columns::Thresholds, Columns::PersistConn, Columns::TunInfo, Columns::Stats] {
            assert_eq!(services(&[svc(20, 64)], columns, true), services(&[svc(0, 0)], columns, true), "{columns:?}");
        }
    }

    #[test]
    fn latency_and_cells() {
        assert_eq!(latency_ms(None), "-");
        assert_eq!(latency_ms(Some(0)), "0.0");
        assert_eq!(latency_ms(Some(49)), "0.0");
        assert_eq!(latency_ms(Some(50)), "0.1");
        assert_eq!(latency_ms(Some(1_250)), "1.3");
        assert_eq!(latency_ms(Some(12_345)), "12.3");
        assert_eq!(latency_ms(Some(2_999_999)), "3000.0");
        assert_eq!(latency_ms(Some(u64::MAX)), "18446744073709551.6");
        assert_eq!(cell(None), "-");
        assert_eq!(cell(Some(" ")), "-");
        assert_eq!(cell(Some("agent: 50%")), "agent: 50%");
        assert_eq!(cell(Some("bad\r\nreply\t")), "bad  reply");
    }

    /// `--health`: Plain's lines, byte for byte, then the health columns; the title's
    /// columns start where the servers' do.
    #[test]
    fn health_listing() {
        use crate::model::Health;
        let health = |state: &str, last: &str, latency_us: Option<u64>| {
            let since = latency_us.map(|_| "2026-12-03T22:00:00Z".to_string());
            Some(Health { state: state.into(), last: last.into(), latency_us, since, ..Default::default() })
        };
        let server = |address: &str, forward: &str, weight| Server {
            address: address.into(),
            port: 80,
            weight,
            forward: forward.into(),
            ..Default::default()
        };
        let svc = Service {
            protocol: "tcp".into(),
            address: "10.10.0.100".into(),
            port: 80,
            scheduler: "wrr".into(),
            persistence: Some(300),
            servers: vec![
                Server {
                    health: health("up", "HTTP 200", Some(1_234)),
                    admin: Some("ready".into()),
                    ..server("10.20.0.11", "nat", 3)
                },
                Server {
                    effective_weight: Some(0),
                    health: health("down", "HTTP 500", Some(52_049)),
                    admin: Some("ready".into()),
                    ..server("10.20.0.12", "nat", 3)
                },
                Server {
                    health: health("unknown", "probes paused (admin maint)", None),
                    admin: Some("maint".into()),
                    ..server("10.20.0.13", "dr", 1)
                },
                // An rvsd from before health checking.
                server("10.20.0.14", "tunnel", 1),
            ],
            ..Default::default()
        };
        let got = services(std::slice::from_ref(&svc), Columns::Health, true);
        let want = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn  Health  Admin  Latency Since                Last
TCP  10.10.0.100:80 wrr persistent 300
  -> 10.20.0.11:80                Masq    3      0          0          up      ready  1.2     2026-12-03T22:00:00Z HTTP 200
  -> 10.20.0.12:80                Masq    0      0          0          down    ready  52.0    2026-12-03T22:00:00Z HTTP 500
  -> 10.20.0.13:80                Route   1      0          0          unknown maint  -       -                    probes paused (admin maint)
  -> 10.20.0.14:80                Tunnel  1      0          0          -       -      -       -                    -
";
        assert_eq!(got, want);
        // Each server line starts with Plain's, unchanged.
        let plain = services(std::slice::from_ref(&svc), Columns::Plain, true);
        for (h, p) in got.lines().skip(3).zip(plain.lines().skip(3)) {
            assert!(h.starts_with(p), "{h:?} / {p:?}");
        }
        let title = got.lines().nth(2).unwrap();
        let first = got.lines().nth(4).unwrap();
        assert_eq!(title.find("Health"), first.find("up"));
        assert_eq!(title.find("Last"), first.find("HTTP"));
        // Without the version line for one service, as the other listings.
        assert!(services(&[svc], Columns::Health, false).starts_with("Prot LocalAddress:Port Scheduler Flags\n"));
    }

    #[test]
    fn table_alignment() {
        let mut out = String::new();
        table(&mut out, &["Name", "N"], &[vec!["a".into(), "100".into()], vec!["bbbb".into(), "7".into()]], 1);
        assert_eq!(out, "Name    N\na     100\nbbbb    7\n");
    }
}
