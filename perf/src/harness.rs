//! The pieces every pipeline benchmark shares, whatever the path: the lab's ports and
//! worker configuration, the benchmark modes and options, the report, the error type,
//! the buffer helpers and the statistics.
//!
//! Contract: this module only defines; it runs nothing. [`crate::pipeline`] (the L2/L3
//! modes and the entry point) and [`crate::l4`] (the forwarding modes) both build on it
//! and neither imports the other's internals: `pipeline` calls `l4::run`, `l4` imports
//! nothing from `pipeline`.

use std::fmt;
use std::net::Ipv4Addr;

use rvs_dataplane::idle::IdlePolicy;
use rvs_dataplane::l2l3::neigh::NeighConfig;
use rvs_dataplane::l2l3::route::StaticRoute;
use rvs_dataplane::types::{ForwardMode, PortId, VipConfig};
use rvs_dataplane::wire::MacAddr;
use rvs_dataplane::worker::{PortConfig, Worker, WorkerConfig};
use rvs_drivers::hugemem::PagePolicy;
use rvs_drivers::mem::{MemBuf, MemPool, MemQueue, DEFAULT_HEADROOM};
use rvs_drivers::{PacketBuf, BURST_SIZE};

use crate::frames;

/// Established flows by default (distinct client ports of one client address).
pub const DEFAULT_FLOWS: usize = 1024;

/// The front port (client side): every mode's traffic comes in and goes out here.
pub const FRONT: PortId = PortId(0);
/// The back port (server side): polled by the worker, idle in these modes.
pub const BACK: PortId = PortId(1);
/// Buffers in circulation. Eight bursts, so consecutive bursts use different buffers
/// (as a NIC's RX ring does) while their headers stay cache-resident, as DPDK's
/// per-lcore mempool cache keeps recently freed mbufs hot.
pub const RING_BUFS: usize = 8 * BURST_SIZE;
/// Data room of the benchmark's buffers (after DPDK's 128-byte headroom). Smaller than an
/// mbuf's 2 KB so that the drop modes' forced malloc/free per packet stays in glibc's
/// thread cache and does not dominate the baseline; the data path only touches the
/// frame's own bytes, so the size of the room behind them does not change its work.
pub const BUF_ROOM: usize = 256;
/// Synthetic time that passes per poll (about what a burst of 32 really takes).
pub const POLL_STEP_NS: u64 = 1_000;
/// Synthetic time of the first poll.
pub(crate) const START_NS: u64 = 1_000_000_000;
/// Share of `seconds` spent warming up and calibrating.
pub(crate) const WARMUP_SHARE: f64 = 0.1;

/// One path through the data path, measured on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Broadcast ARP request for the front port's address → reply built in place and
    /// sent back out of the front port.
    ArpReply,
    /// ICMP echo request to the VIP from the on-link client (neighbour resolved) → reply
    /// built in place, routed, its MACs set from the neighbour table.
    IcmpEcho,
    /// The same echo request with a wrong IPv4 header checksum → dropped and counted
    /// `ip_bad_checksum`.
    DropMalformed,
    /// L4, direct routing: client → VIP data packets of established flows, sent to the
    /// flow's server with only the MACs changed (and the TTL). See [`crate::l4`].
    Dr,
    /// L4, NAT: client → VIP data packets, destination rewritten to the server.
    Nat,
    /// L4, NAT: server → client replies, source rewritten back to the VIP.
    NatReply,
    /// L4, Full-NAT: client → VIP data packets, source rewritten to a local address and
    /// port, destination to the server.
    FullNat,
    /// L4, Full-NAT: server → local address replies, rewritten to VIP → client.
    FullNatReply,
    /// L4, IPIP: client → VIP data packets encapsulated towards the server.
    Tunnel,
    /// L4, NAT with the SYN proxy (`syn_proxy = "always"`): client → VIP data packets of
    /// proxied connections, acknowledgement translated into the server's sequence space.
    NatSynProxy,
    /// L4, NAT with the SYN proxy: server → client replies, sequence number translated.
    NatSynProxyReply,
    /// L4, Full-NAT with the SYN proxy: client → VIP data packets of proxied connections.
    FullNatSynProxy,
    /// L4, Full-NAT with the SYN proxy: server → local address replies.
    FullNatSynProxyReply,
    /// L4 over IPv6, direct routing: client → VIP data packets sent to the flow's server
    /// with only the MACs changed (the hop limit is left alone).
    Dr6,
    /// L4 over IPv6, NAT66: client → VIP data packets, destination rewritten to the server.
    Nat6,
    /// L4 over IPv6, NAT66: server → client replies, source rewritten back to the VIP.
    Nat6Reply,
    /// L4 over IPv6, Full-NAT: client → VIP data packets, source rewritten to an IPv6
    /// local address and port, destination to the server (the TOA rides on the handshake
    /// only).
    FullNat6,
    /// L4 over IPv6, Full-NAT: server → local address replies, rewritten to VIP → client.
    FullNat6Reply,
    /// L4 over IPv6, IPv6-in-IPv6: client → VIP data packets, hop limit decremented,
    /// encapsulated towards the server.
    Tunnel6,
    /// NAT64 through Full-NAT: the IPv6 client's data packets to the IPv6 VIP, translated
    /// to IPv4 from an IPv4 local address and port to the IPv4 server.
    Nat64,
    /// NAT64 through Full-NAT: the IPv4 server's replies to the IPv4 local address,
    /// translated to IPv6 from the VIP to the client.
    Nat64Reply,
    /// L4 over IPv6, NAT66 with the SYN proxy: client → VIP data packets of proxied
    /// connections, acknowledgement translated into the server's sequence space.
    Nat6SynProxy,
    /// L4 over IPv6, NAT66 with the SYN proxy: server → client replies, sequence number
    /// translated.
    Nat6SynProxyReply,
    /// L4 over IPv6, Full-NAT with the SYN proxy: client → VIP data packets of proxied
    /// connections.
    FullNat6SynProxy,
    /// L4 over IPv6, Full-NAT with the SYN proxy: server → local address replies.
    FullNat6SynProxyReply,
}

impl Mode {
    /// Every mode, in output order.
    pub const ALL: [Mode; 25] = [
        Mode::ArpReply,
        Mode::IcmpEcho,
        Mode::DropMalformed,
        Mode::Dr,
        Mode::Nat,
        Mode::NatReply,
        Mode::FullNat,
        Mode::FullNatReply,
        Mode::Tunnel,
        Mode::NatSynProxy,
        Mode::NatSynProxyReply,
        Mode::FullNatSynProxy,
        Mode::FullNatSynProxyReply,
        Mode::Dr6,
        Mode::Nat6,
        Mode::Nat6Reply,
        Mode::FullNat6,
        Mode::FullNat6Reply,
        Mode::Tunnel6,
        Mode::Nat64,
        Mode::Nat64Reply,
        Mode::Nat6SynProxy,
        Mode::Nat6SynProxyReply,
        Mode::FullNat6SynProxy,
        Mode::FullNat6SynProxyReply,
    ];

    /// The stable name used in `--mode` and in the JSON `mode` field.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::ArpReply => "arp_reply",
            Mode::IcmpEcho => "icmp_echo",
            Mode::DropMalformed => "drop_malformed",
            Mode::Dr => "dr",
            Mode::Nat => "nat",
            Mode::NatReply => "nat_reply",
            Mode::FullNat => "fullnat",
            Mode::FullNatReply => "fullnat_reply",
            Mode::Tunnel => "tunnel",
            Mode::NatSynProxy => "nat_synproxy",
            Mode::NatSynProxyReply => "nat_synproxy_reply",
            Mode::FullNatSynProxy => "fullnat_synproxy",
            Mode::FullNatSynProxyReply => "fullnat_synproxy_reply",
            Mode::Dr6 => "dr6",
            Mode::Nat6 => "nat6",
            Mode::Nat6Reply => "nat6_reply",
            Mode::FullNat6 => "fullnat6",
            Mode::FullNat6Reply => "fullnat6_reply",
            Mode::Tunnel6 => "tunnel6",
            Mode::Nat64 => "nat64",
            Mode::Nat64Reply => "nat64_reply",
            Mode::Nat6SynProxy => "nat6_synproxy",
            Mode::Nat6SynProxyReply => "nat6_synproxy_reply",
            Mode::FullNat6SynProxy => "fullnat6_synproxy",
            Mode::FullNat6SynProxyReply => "fullnat6_synproxy_reply",
        }
    }

    /// The mode called `name`, if any.
    pub fn from_name(name: &str) -> Option<Mode> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// For the L4 modes, the service's forwarding mode and whether the measured packets
    /// are replies (server → client); `None` for the L2/L3 modes.
    pub const fn forward(self) -> Option<(ForwardMode, bool)> {
        match self {
            Mode::ArpReply | Mode::IcmpEcho | Mode::DropMalformed => None,
            Mode::Dr => Some((ForwardMode::Dr, false)),
            Mode::Nat => Some((ForwardMode::Nat, false)),
            Mode::NatReply => Some((ForwardMode::Nat, true)),
            Mode::FullNat => Some((ForwardMode::FullNat, false)),
            Mode::FullNatReply => Some((ForwardMode::FullNat, true)),
            Mode::Tunnel => Some((ForwardMode::Tunnel, false)),
            Mode::NatSynProxy => Some((ForwardMode::Nat, false)),
            Mode::NatSynProxyReply => Some((ForwardMode::Nat, true)),
            Mode::FullNatSynProxy => Some((ForwardMode::FullNat, false)),
            Mode::FullNatSynProxyReply => Some((ForwardMode::FullNat, true)),
            Mode::Dr6 => Some((ForwardMode::Dr, false)),
            Mode::Nat6 => Some((ForwardMode::Nat, false)),
            Mode::Nat6Reply => Some((ForwardMode::Nat, true)),
            Mode::FullNat6 => Some((ForwardMode::FullNat, false)),
            Mode::FullNat6Reply => Some((ForwardMode::FullNat, true)),
            Mode::Tunnel6 => Some((ForwardMode::Tunnel, false)),
            Mode::Nat64 => Some((ForwardMode::FullNat, false)),
            Mode::Nat64Reply => Some((ForwardMode::FullNat, true)),
            Mode::Nat6SynProxy => Some((ForwardMode::Nat, false)),
            Mode::Nat6SynProxyReply => Some((ForwardMode::Nat, true)),
            Mode::FullNat6SynProxy => Some((ForwardMode::FullNat, false)),
            Mode::FullNat6SynProxyReply => Some((ForwardMode::FullNat, true)),
        }
    }

    /// Whether the mode's service and clients are IPv6 (the plan's [`six`](crate::frames::six)
    /// twins): the worker's IPv6 path, `LbEngine::handle_view6` and its own table (NAT64
    /// included, whose servers are IPv4: [`Mode::nat64`]).
    pub const fn ipv6(self) -> bool {
        matches!(
            self,
            Mode::Dr6
                | Mode::Nat6
                | Mode::Nat6Reply
                | Mode::FullNat6
                | Mode::FullNat6Reply
                | Mode::Tunnel6
                | Mode::Nat64
                | Mode::Nat64Reply
                | Mode::Nat6SynProxy
                | Mode::Nat6SynProxyReply
                | Mode::FullNat6SynProxy
                | Mode::FullNat6SynProxyReply
        )
    }

    /// Whether the mode is NAT64 through Full-NAT: an IPv6 service and clients, IPv4
    /// servers and local addresses.
    pub const fn nat64(self) -> bool {
        matches!(self, Mode::Nat64 | Mode::Nat64Reply)
    }

    /// Whether the mode's service runs the SYN proxy (`syn_proxy = "always"`): its
    /// connections are opened by the proxied handshake and translated per packet.
    pub const fn syn_proxy(self) -> bool {
        matches!(
            self,
            Mode::NatSynProxy
                | Mode::NatSynProxyReply
                | Mode::FullNatSynProxy
                | Mode::FullNatSynProxyReply
                | Mode::Nat6SynProxy
                | Mode::Nat6SynProxyReply
                | Mode::FullNat6SynProxy
                | Mode::FullNat6SynProxyReply
        )
    }

    /// The frame the client sends, for the L2/L3 modes (`None` for the L4 modes, whose
    /// frames [`crate::l4`] builds per flow).
    pub(crate) fn request(self) -> Option<Vec<u8>> {
        match self {
            Mode::ArpReply => Some(frames::arp_request()),
            Mode::IcmpEcho => Some(frames::echo_request()),
            Mode::DropMalformed => Some(frames::echo_request_bad_ip_checksum()),
            _ => None,
        }
    }

    /// The frame rvs must send back out of the front port, or `None` when the request
    /// must be dropped (L2/L3 modes only).
    pub(crate) fn expected_reply(self) -> Option<Vec<u8>> {
        match self {
            Mode::ArpReply => Some(frames::arp_reply()),
            Mode::IcmpEcho => Some(frames::echo_reply()),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How long and how often to measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Wall-clock budget per mode, warm-up included (approximate).
    pub seconds: f64,
    /// Timed runs of the worker, and as many of the baseline.
    pub runs: usize,
    /// Fixed number of bursts per run (and for the warm-up) instead of a length
    /// calibrated from `seconds`: for repeatable instruction counts under callgrind.
    pub bursts: Option<u64>,
    /// L4 modes: established flows the data packets cycle through.
    pub flows: usize,
    /// L4 modes: where the connection table's memory comes from (rvsd's default:
    /// reserved huge pages).
    pub pages: PagePolicy,
}

impl Default for Options {
    /// Two seconds per mode, five runs, [`DEFAULT_FLOWS`] flows.
    fn default() -> Self {
        Options { seconds: 2.0, runs: 5, bursts: None, flows: DEFAULT_FLOWS, pages: PagePolicy::HugeTlb }
    }
}

impl Options {
    /// A ~0.2 s run per mode with three runs, for smoke tests (figures are rough).
    pub fn quick() -> Self {
        Options { seconds: 0.2, runs: 3, ..Options::default() }
    }
}

/// The result of one mode. See the module docs for what each figure means.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The mode measured.
    pub mode: Mode,
    /// Data-path cost per packet: median worker run − median baseline run (ns).
    pub ns_per_pkt: f64,
    /// Fastest worker run − fastest baseline run (ns per packet).
    pub min_ns_per_pkt: f64,
    /// Packets per second on one core at `ns_per_pkt`, in millions.
    pub mpps: f64,
    /// Packets through the worker in the timed runs.
    pub packets: u64,
    /// Bursts (`poll_once` calls) in the timed runs.
    pub batches: u64,
    /// Median cost of the harness baseline alone (ns per packet).
    pub harness_ns_per_pkt: f64,
    /// Median cost of a worker step, harness included (ns per packet).
    pub gross_ns_per_pkt: f64,
    /// Timed runs of each kind.
    pub runs: usize,
    /// The L4 modes' connection-table figures; `None` for the L2/L3 modes.
    pub l4: Option<L4Figures>,
}

impl Report {
    /// One JSON object, DESIGN.md's `perf:` shape (keys in that order, then this
    /// harness's own), no newline. `new_conn_ns` is present for the L4 modes that open
    /// connections (not the `*_reply` modes), `bytes_per_conn` for every L4 mode; the
    /// L2/L3 modes have neither.
    pub fn to_json(&self) -> String {
        let mut j = format!(
            "{{\"bench\":\"pipeline\",\"mode\":\"{}\",\"ns_per_pkt\":{:.2},\"mpps\":{:.3}",
            self.mode.name(),
            self.ns_per_pkt,
            self.mpps,
        );
        if let Some(f) = &self.l4 {
            if let Some(n) = &f.new_conn {
                j += &format!(",\"new_conn_ns\":{:.2}", n.ns);
            }
            j += &format!(",\"bytes_per_conn\":{}", f.bytes_per_conn);
        }
        j += &format!(
            ",\"packets\":{},\"batches\":{},\"min\":{:.2},\"harness_ns_per_pkt\":{:.2},\"gross_ns_per_pkt\":{:.2},\"runs\":{}",
            self.packets, self.batches, self.min_ns_per_pkt, self.harness_ns_per_pkt, self.gross_ns_per_pkt, self.runs,
        );
        if let Some(f) = &self.l4 {
            j += &format!(
                ",\"flows\":{},\"conn_capacity\":{},\"table_bytes\":{},\"table_huge_pages\":{},\"table_fallback_pages\":{}",
                f.flows, f.conn_capacity, f.table_bytes, f.table_huge_pages, f.table_fallback_pages
            );
            if let Some(n) = &f.new_conn {
                j += &format!(
                    ",\"new_conn_min\":{:.2},\"new_conn_harness_ns\":{:.2},\"new_conn_gross_ns\":{:.2},\"new_conns\":{},\"conns_per_s\":{:.0},\"conns_at_end\":{}",
                    n.min_ns, n.harness_ns, n.gross_ns, n.conns, 1e9 / n.ns, n.conns_at_end,
                );
            }
            if let Some([syn, ack, syn_ack]) = f.handshake {
                j += &format!(
                    ",\"cookie_syn_ns\":{syn:.2},\"cookie_ack_ns\":{ack:.2},\"server_syn_ack_ns\":{syn_ack:.2}"
                );
            }
        }
        j.push('}');
        j
    }
}

/// Why a mode could not be measured.
#[derive(Debug, Clone, PartialEq)]
pub enum BenchError {
    /// The options are unusable.
    BadOptions(String),
    /// The worker could not be built.
    Setup(String),
    /// The data path did not do what the mode expects; the figures would be meaningless.
    Verify {
        /// The mode.
        mode: Mode,
        /// What was wrong.
        what: String,
    },
    /// A net figure came out non-positive: the machine was too noisy to tell the worker
    /// from the baseline.
    Noise {
        /// The mode.
        mode: Mode,
        /// Median worker step (ns per packet).
        gross: f64,
        /// Median baseline step (ns per packet).
        harness: f64,
        /// Fastest worker step (ns per packet).
        worker_min: f64,
        /// Fastest baseline step (ns per packet).
        harness_min: f64,
    },
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::BadOptions(m) => write!(f, "bad options: {m}"),
            BenchError::Setup(m) => write!(f, "set-up failed: {m}"),
            BenchError::Verify { mode, what } => write!(f, "{mode}: data path check failed: {what}"),
            BenchError::Noise { mode, gross, harness, worker_min, harness_min } => write!(
                f,
                "{mode}: the worker step (median {gross:.2}, fastest {worker_min:.2} ns/pkt) is not above the \
                 harness baseline (median {harness:.2}, fastest {harness_min:.2} ns/pkt): too noisy, run longer"
            ),
        }
    }
}

impl std::error::Error for BenchError {}

/// The worker type on the in-memory driver.
pub(crate) type MemWorker = Worker<MemQueue, MemPool>;

/// The connection-table figures of an L4 mode (see [`Report::to_json`]).
#[derive(Debug, Clone, PartialEq)]
pub struct L4Figures {
    /// The new-connection figures; `None` for the reply modes. For the SYN-proxy modes,
    /// a new connection is the whole proxied handshake (three packets, see `handshake`).
    pub new_conn: Option<NewConnFigures>,
    /// SYN-proxy modes: net ns per connection of each step of the proxied handshake — the
    /// client's SYN answered with a cookie, the client's ACK opening the connection (the
    /// SYN to the server), the server's SYN-ACK turned into the client's window update.
    pub handshake: Option<[f64; 3]>,
    /// [`ConnTable::bytes_per_conn`](rvs_dataplane::conn::ConnTable::bytes_per_conn): one entry plus its index slots.
    pub bytes_per_conn: usize,
    /// Established flows the data packets cycled through.
    pub flows: usize,
    /// The worker's connection table capacity.
    pub conn_capacity: usize,
    /// [`ConnTable::memory_bytes`](rvs_dataplane::conn::ConnTable::memory_bytes) of that table.
    pub table_bytes: usize,
    /// Reserved 2 MiB pages the table got ([`rvs_dataplane::conn::TableMemory`]).
    pub table_huge_pages: usize,
    /// 2 MiB pages' worth of it on ordinary memory because the pool had too few free.
    pub table_fallback_pages: usize,
}

/// Cost of a new connection: a SYN of a never-seen 5-tuple through the worker.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConnFigures {
    /// Median worker run − median baseline run (ns per SYN).
    pub ns: f64,
    /// Fastest worker run − fastest baseline run (ns per SYN).
    pub min_ns: f64,
    /// Median baseline run (ns per SYN).
    pub harness_ns: f64,
    /// Median worker run (ns per SYN).
    pub gross_ns: f64,
    /// SYNs in the timed runs (each opened a connection).
    pub conns: u64,
    /// Connections in the table after the mode (established flows included).
    pub conns_at_end: usize,
}

/// A buffer holding `frame`, shaped like a freshly received mbuf (128 bytes of headroom).
pub(crate) fn fresh(frame: &[u8]) -> MemBuf {
    let mut b = MemBuf::with_room(DEFAULT_HEADROOM, BUF_ROOM.max(frame.len()));
    if let Some(data) = b.append(frame.len()) {
        data.copy_from_slice(frame);
    }
    b
}

/// Turns a buffer that came back from TX into a freshly received `frame` again.
#[inline(always)]
pub(crate) fn refill(mut b: MemBuf, frame: &[u8]) -> MemBuf {
    b.reset();
    match b.append(frame.len()) {
        Some(data) => {
            data.copy_from_slice(frame);
            b
        }
        None => fresh(frame),
    }
}

/// The lab's lb1 (DESIGN.md), reduced to what the L2/L3 paths use.
pub(crate) fn worker_config() -> Result<WorkerConfig, BenchError> {
    let net = |s: &str| s.parse().map_err(|e| BenchError::Setup(format!("{s}: {e}")));
    Ok(WorkerConfig {
        index: 0,
        count: 1,
        ports: vec![
            PortConfig {
                name: "front".into(),
                mac: MacAddr(frames::FRONT_MAC),
                address: net("10.10.0.1/24")?,
                local_addresses: vec![],
                local_addresses6: Vec::new(),
                ipv6_addresses: vec![],
            },
            PortConfig {
                name: "back".into(),
                mac: MacAddr(frames::BACK_MAC),
                address: net("10.20.0.1/24")?,
                local_addresses: vec![Ipv4Addr::new(10, 20, 0, 200), Ipv4Addr::new(10, 20, 0, 201)],
                local_addresses6: Vec::new(),
                ipv6_addresses: vec![],
            },
        ],
        vips: vec![VipConfig { address: frames::VIP, port: Some(FRONT) }],
        routes: vec![StaticRoute { prefix: net("0.0.0.0/0")?, via: Ipv4Addr::new(10, 10, 0, 254) }],
        routes6: vec![],
        static_neighbours: vec![],
        idle: IdlePolicy::Busy,
        neigh: NeighConfig::default(),
    })
}

/// The median of `v` (sorts it).
pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The smallest of `v` (infinity when empty).
pub(crate) fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}
