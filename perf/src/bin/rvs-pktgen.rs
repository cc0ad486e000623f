//! `rvs-pktgen`: the packet generator of `perf/bench.sh dpdk` (run by `perf/dpdk/run.sh`).
//!
//! A DPDK program on rvs-drivers' safe API with two ports, normally `net_memif` vdevs
//! paired with the device under test (DUT): `front` (net_memif0) plays the clients and
//! their gateway 10.10.0.254 (frames from [`frames::GW_MAC`] to the DUT's front MAC
//! [`frames::FRONT_MAC`]), `back` (net_memif1) plays the three real servers 10.20.0.11–13.
//! Everything runs on the main lcore: one thread transmits on `front` and counts what
//! comes back on `back`. Addresses, ports and frame builders are `rvs_perf::frames`' (the
//! pipeline benchmark's), so the DUT sees the same traffic as there.
//!
//! Phases, in this order, each printed as one JSON line on stdout:
//!
//! * **Set-up (DUT `rvsd` only, untimed).** `--flows` connections are opened with a real
//!   handshake, 32 at a time: the client's SYN to the VIP; the SYN rvsd forwards is read on
//!   `back`, which tells the chosen server (destination MAC) and for Full-NAT the local
//!   address and port (source); for NAT and Full-NAT the server's SYN-ACK goes back through
//!   rvsd and must arrive on `front`; then the client's ACK. Anything missing within
//!   [`SETUP_TIMEOUT`] is an error (exit 1).
//! * **Established flows**, one phase per `--sizes` entry: every flow's data segment
//!   (ACK|PSH, client → VIP:80, padded to the frame size; sizes are without the 4-byte FCS,
//!   so 60 and 508 are 64 and 512 bytes on the wire) is built once; the transmit loop
//!   allocates an mbuf, copies the next flow's frame (flows in a fixed shuffled order) and
//!   sends bursts of 32 as fast as the DUT takes them. A warm-up of [`WARMUP_SHARE`] of the
//!   phase is not counted; the rate is the packets received on `back` during the timed
//!   window over its length, and `loss` is (sent − received) / sent over the whole phase
//!   after a drain.
//! * **New flows** (`--new-flows`): every frame a SYN from a client address and port never
//!   used before (172.20.0.0 upwards, ports 1024–61023), so every packet is a table miss, a
//!   scheduler pick and an insert until the DUT's connection table is full; after that the
//!   DUT drops new SYNs (counted "table full") until entries expire (IPVS's SYN_RECV
//!   timeout, 60 s, longer than a phase), which is the churn. Reported: the rate while the
//!   table filled (`rvsd_mpps`, = new connections per second / 10^6), the time it took,
//!   and the rate at which the DUT consumed SYNs once full (`churn_mpps`).
//!
//! **What counts.** Every frame received on `back` is checked ([`rvs_perf::forwarded`]): its
//! destination MAC and EtherType always, and one frame in [`VERIFY_EVERY`] in full — byte for
//! byte against the rewrite the mode must produce for its flow (MACs, addresses, ports, TTL,
//! checksums) in the established phases, the rewrite's shape and valid checksums in the
//! new-flow phase. A phase with any mismatch prints no figure and the run exits 1. Each line
//! says how many frames were checked in full (`verified`, `verify_every`).
//!
//! `conn_capacity` is read from rvsd itself (`GET /v1/config` at `--api`), not taken from
//! the command line, so the figure names the table the DUT really had.
//!
//! `tx_backpressure` is the share of `tx_burst` calls that could not place the whole
//! burst: close to 1 means the DUT (its ring) was the bottleneck; close to 0 means the
//! generator was, and the rate is a lower bound of the DUT's.
//!
//! Output: with `--dut testpmd`, one raw line per phase (`"bench":"dpdk_ceiling"`) for
//! run.sh to read; with `--dut rvsd`, the lines of DESIGN.md's format
//! (`{"bench":"dpdk","mode":..,"pkt_size":..,"flows":..,"rvsd_mpps":..,"testpmd_mpps":..,
//! "ratio":..}` and more keys), where the testpmd figures come from `--ceiling`.
//!
//! Usage: `rvs-pktgen [options] -- <EAL arguments>`; `rvs-pktgen --help` lists the options.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use rvs_drivers::dpdk::{Eal, EthQueue, Mbuf, Mempool, Port, PortSetup};
use rvs_drivers::{Burst, PacketBuf, PortInfo, PortQueue, BURST_SIZE};
use rvs_perf::forwarded::{Checker, Flow, Rewrite, VERIFY_EVERY};
use rvs_perf::frames::{self, SynTemplate, TcpSeg, IP_AT, TCP_ACK, TCP_PSH, TCP_SYN};
use serde::Serialize;

/// Share of a phase spent warming up, not counted.
const WARMUP_SHARE: f64 = 0.2;
/// How long set-up waits for the DUT's answers to one burst.
const SETUP_TIMEOUT: Duration = Duration::from_secs(3);
/// How long to wait for both links (memif connected).
const LINK_TIMEOUT: Duration = Duration::from_secs(15);
/// How long to keep receiving after the last transmit of a phase.
const DRAIN: Duration = Duration::from_millis(100);
/// Generator mbufs: enough for both rings (1024 each way) and bursts in flight.
const POOL_MBUFS: u32 = 8191;
/// Established flows' client ports per client address (10000..60000).
const PORTS_PER_CLIENT: usize = 50_000;
/// New flows' client ports per client address (1024..61023).
const SYN_PORTS_PER_CLIENT: u64 = 60_000;

/// What forwards between the two ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Dut {
    /// rvsd, in `--mode`.
    Rvsd,
    /// dpdk-testpmd's io forwarding (the I/O ceiling).
    Testpmd,
}

/// rvsd's forwarding mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Fwd {
    Dr,
    Nat,
    #[value(name = "fullnat")]
    FullNat,
    Tunnel,
}

impl Fwd {
    fn name(self) -> &'static str {
        match self {
            Fwd::Dr => "dr",
            Fwd::Nat => "nat",
            Fwd::FullNat => "fullnat",
            Fwd::Tunnel => "tunnel",
        }
    }

    /// Whether the servers' replies come back through rvsd.
    fn replies_through_lb(self) -> bool {
        matches!(self, Fwd::Nat | Fwd::FullNat)
    }

    fn server_port(self) -> u16 {
        if self.replies_through_lb() {
            frames::SERVER_PORT
        } else {
            frames::VPORT
        }
    }

    fn rewrite(self) -> Rewrite {
        match self {
            Fwd::Dr => Rewrite::Dr,
            Fwd::Nat => Rewrite::Nat,
            Fwd::FullNat => Rewrite::FullNat,
            Fwd::Tunnel => Rewrite::Tunnel,
        }
    }
}

fn flows_arg(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    if n == 0 || n > 1 << 22 {
        return Err("must be 1..=4194304".into());
    }
    Ok(n)
}

fn seconds_arg(s: &str) -> Result<f64, String> {
    let x: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if !(x.is_finite() && x > 0.0) {
        return Err("must be positive".into());
    }
    Ok(x)
}

fn size_arg(s: &str) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|e| format!("{e}"))?;
    if !(60..=1514).contains(&n) {
        return Err("each frame size must be 60..=1514 (without FCS)".into());
    }
    Ok(n)
}

fn ceiling_arg(s: &str) -> Result<(String, f64), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("{s:?}: KEY=MPPS"))?;
    let v: f64 = v.parse().map_err(|e| format!("{s:?}: {e}"))?;
    Ok((k.to_string(), v))
}

/// The packet generator of `perf/bench.sh dpdk` (see the module docs of
/// perf/src/bin/rvs-pktgen.rs).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "rvs-pktgen",
    override_usage = "rvs-pktgen [OPTIONS] -- <EAL arguments (lcores, --vdev for both ports, ...)>"
)]
struct Options {
    /// What forwards between the two ports.
    #[arg(long, value_enum, default_value_t = Dut::Rvsd)]
    dut: Dut,
    /// rvsd's forwarding mode; with testpmd only a label.
    #[arg(long, value_enum, default_value_t = Fwd::Nat)]
    mode: Fwd,
    /// Ethdev name of the client-side port.
    #[arg(long, default_value = "net_memif0")]
    front: String,
    /// Ethdev name of the server-side port.
    #[arg(long, default_value = "net_memif1")]
    back: String,
    /// Established flows.
    #[arg(long, default_value = "1024", value_parser = flows_arg)]
    flows: usize,
    /// Length of each phase in seconds, warm-up included.
    #[arg(long, default_value = "5", value_parser = seconds_arg)]
    seconds: f64,
    /// Frame sizes without FCS (60 and 508 are 64 and 512 on the wire).
    #[arg(long, value_delimiter = ',', default_value = "60,508", value_parser = size_arg)]
    sizes: Vec<usize>,
    /// Also run the new-flow phase.
    #[arg(long)]
    new_flows: bool,
    /// After the established phases, the SYN-flood phase (DR only; see the module docs):
    /// the established flows' frames mixed with spoofed SYNs at the generator's full rate
    /// and a stream of legitimate handshakes.
    #[arg(long)]
    flood: bool,
    /// Flood phase: how long a legitimate client waits between its SYN and its ACK (its
    /// round-trip time), in microseconds.
    #[arg(long, default_value = "1000")]
    flood_rtt_us: u64,
    /// Flood phases: new legitimate handshakes per second (a SYN, its ACK an RTT later).
    #[arg(long, default_value = "1000")]
    flood_legit_per_s: f64,
    /// Flood mode's paced phases: the established flows offered at this share of their
    /// rate alone, without and then with the flood on top (0 skips them).
    #[arg(long, default_value = "0.25")]
    flood_paced_share: f64,
    /// At most this many frames in flight (taken by the DUT on `front`, not yet received
    /// on `back`); 0 = no limit. Below the rings' size, a generator that falls behind in
    /// draining its receive ring slows its transmit instead of overflowing the DUT's
    /// transmit ring, so what is lost is lost by the DUT.
    #[arg(long, default_value = "0")]
    window: u64,
    /// rvsd's REST address (host:port), where the reported conn_capacity is read
    /// (GET /v1/config); required with --dut rvsd.
    #[arg(long)]
    api: Option<String>,
    /// testpmd's Mpps for the ratio: 60=..,508=..,syn=..
    #[arg(long, value_delimiter = ',', value_parser = ceiling_arg)]
    ceiling: Vec<(String, f64)>,
    /// How the processes are pinned (copied into the JSON).
    #[arg(long, default_value = "")]
    lcore_note: String,
    /// When finished, create this file and wait (up to 60 s) for the DUT to close the
    /// links before exiting.
    #[arg(long)]
    done_file: Option<String>,
    /// EAL arguments, after `--`.
    #[arg(last = true, required = true)]
    eal: Vec<String>,
}

fn main() -> ExitCode {
    // clap: usage errors exit 2, --help 0.
    let opts = Options::parse();
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvs-pktgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// rvsd's `dataplane.conn_capacity`, from its `GET /v1/config` at `api`.
fn rvsd_conn_capacity(api: &str) -> Result<u64, String> {
    let fail = |e: String| format!("reading conn_capacity from rvsd (GET http://{api}/v1/config): {e}");
    let mut s = TcpStream::connect(api).map_err(|e| fail(e.to_string()))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| fail(e.to_string()))?;
    write!(s, "GET /v1/config HTTP/1.0\r\nHost: {api}\r\n\r\n").map_err(|e| fail(e.to_string()))?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(|e| fail(e.to_string()))?;
    let (head, body) = answer.split_once("\r\n\r\n").ok_or_else(|| fail("no HTTP answer".into()))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(fail(head.lines().next().unwrap_or("").to_string()));
    }
    let mut section = "";
    for line in body.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[dataplane]" {
            if let Some(v) = line.strip_prefix("conn_capacity").and_then(|r| r.trim_start().strip_prefix('=')) {
                return v.trim().parse().map_err(|e| fail(format!("conn_capacity = {v}: {e}")));
            }
        }
    }
    Err(fail("its configuration does not set dataplane.conn_capacity (perf/dpdk/rvsd.toml.in does)".into()))
}

/// rvsd's counters that explain a flood phase, from `GET /v1/status`: `half_open_evicted`,
/// `rx_packets` and `tx_packets` summed over `workers[]`, and every drop reason (`drops`).
#[derive(Debug, Default, Clone)]
struct RvsdCounters {
    half_open_evicted: u64,
    rx_packets: u64,
    tx_packets: u64,
    drops: std::collections::BTreeMap<String, u64>,
}

impl RvsdCounters {
    fn read(api: &str) -> Result<RvsdCounters, String> {
        let fail = |e: String| format!("reading counters from rvsd (GET http://{api}/v1/status): {e}");
        let mut s = TcpStream::connect(api).map_err(|e| fail(e.to_string()))?;
        s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| fail(e.to_string()))?;
        write!(s, "GET /v1/status HTTP/1.0\r\nHost: {api}\r\n\r\n").map_err(|e| fail(e.to_string()))?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).map_err(|e| fail(e.to_string()))?;
        let (_, body) = answer.split_once("\r\n\r\n").ok_or_else(|| fail("no HTTP answer".into()))?;
        let v: serde_json::Value = serde_json::from_str(body).map_err(|e| fail(e.to_string()))?;
        let workers = v["workers"].as_array().ok_or_else(|| fail("no workers[]".into()))?;
        let mut c = RvsdCounters::default();
        for w in workers {
            let get = |k: &str| w[k].as_u64().ok_or_else(|| fail(format!("no workers[].{k}")));
            c.half_open_evicted += get("half_open_evicted")?;
            c.rx_packets += get("rx_packets")?;
            c.tx_packets += get("tx_packets")?;
        }
        let drops = v["drops"].as_object().ok_or_else(|| fail("no drops".into()))?;
        for (k, n) in drops {
            c.drops.insert(k.clone(), n.as_u64().ok_or_else(|| fail(format!("drops.{k} is not a count")))?);
        }
        Ok(c)
    }

    /// What changed from `before` to `self`: the drop reasons that moved, and the rest.
    fn since(&self, before: &RvsdCounters) -> serde_json::Value {
        let drops: serde_json::Map<String, serde_json::Value> = self
            .drops
            .iter()
            .filter_map(|(k, &n)| {
                let d = n.saturating_sub(before.drops.get(k).copied().unwrap_or(0));
                (d > 0).then(|| (k.clone(), d.into()))
            })
            .collect();
        serde_json::json!({
            "rx_packets": self.rx_packets - before.rx_packets,
            "tx_packets": self.tx_packets - before.tx_packets,
            "half_open_evicted": self.half_open_evicted - before.half_open_evicted,
            "drops": drops,
        })
    }

    fn drops_since(&self, before: &RvsdCounters, reason: &str) -> u64 {
        self.drops.get(reason).copied().unwrap_or(0).saturating_sub(before.drops.get(reason).copied().unwrap_or(0))
    }

    fn all_drops_since(&self, before: &RvsdCounters) -> u64 {
        self.drops.values().sum::<u64>().saturating_sub(before.drops.values().sum::<u64>())
    }
}

/// The generator's in-flight limit (`--window`): frames taken by the DUT and not yet
/// received back. A frame the DUT dropped never comes back; when the window is full and
/// nothing has arrived for [`WINDOW_STALL`], whatever is in flight is written off (for
/// the pacing only: loss is counted from the totals).
#[derive(Debug, Clone, Copy)]
struct Window {
    limit: u64,
    written_off: u64,
    last_rx: Instant,
}

/// See [`Window`].
/// Long, because on a shared CPU the DUT may not run for tens of milliseconds, and a
/// write-off too early lets the generator overrun the rings after all.
const WINDOW_STALL: Duration = Duration::from_millis(200);

impl Window {
    fn new(limit: u64) -> Window {
        Window { limit, written_off: 0, last_rx: Instant::now() }
    }

    /// How many frames may be sent now, given the totals sent and received (at most a
    /// burst).
    fn room(&mut self, sent: u64, received: u64, received_now: bool) -> usize {
        if self.limit == 0 {
            return BURST_SIZE;
        }
        let now = Instant::now();
        if received_now {
            self.last_rx = now;
        }
        let in_flight = sent.saturating_sub(received + self.written_off);
        if in_flight >= self.limit && now.duration_since(self.last_rx) > WINDOW_STALL {
            self.written_off += in_flight;
            self.last_rx = now;
            return BURST_SIZE;
        }
        (self.limit.saturating_sub(in_flight) as usize).min(BURST_SIZE)
    }
}

/// Established frames per burst of 32 in the flood phase; one slot carries the
/// legitimate handshakes' packets; the rest are spoofed SYNs.
const FLOOD_ESTABLISHED_PER_BURST: usize = 8;

/// What a flood-phase frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Established,
    Spoofed,
    LegitSyn,
    LegitAck,
}

/// Per-kind counters of the flood phase.
#[derive(Debug, Default, Clone, Copy, Serialize)]
struct PerKind {
    established: u64,
    spoofed_syn: u64,
    legit_syn: u64,
    legit_ack: u64,
}

impl PerKind {
    fn add(&mut self, k: Kind, n: u64) {
        match k {
            Kind::Established => self.established += n,
            Kind::Spoofed => self.spoofed_syn += n,
            Kind::LegitSyn => self.legit_syn += n,
            Kind::LegitAck => self.legit_ack += n,
        }
    }
}

/// What the flood phase measured.
#[derive(Debug, Default)]
struct Flood {
    sent: PerKind,
    received: PerKind,
    seconds: f64,
    /// Established frames received during the phase (no drain), for the rate.
    established_rx_in_phase: u64,
}

/// A legitimate client of the flood phase: 172.24.0.0/16, ports 1024..61023.
fn legit_client(k: u64) -> (Ipv4Addr, u16) {
    let ip = u32::from(Ipv4Addr::new(172, 24, 0, 1)) + (k / SYN_PORTS_PER_CLIENT) as u32;
    (Ipv4Addr::from(ip), 1024 + (k % SYN_PORTS_PER_CLIENT) as u16)
}

/// What a frame received on `back` is, by its (DR: unchanged) source address and flags.
fn classify(d: &[u8]) -> Option<Kind> {
    if d.len() < IP_AT + 34 || d[12..14] != [0x08, 0x00] || d[IP_AT + 9] != 6 {
        return None;
    }
    let src = frames::ipv4_at(d, IP_AT + 12).octets();
    let flags = d[IP_AT + 20 + 13];
    Some(match (src[0], src[1]) {
        (172, 16) => Kind::Established,
        (172, 24) if flags & TCP_SYN != 0 => Kind::LegitSyn,
        (172, 24) => Kind::LegitAck,
        _ => Kind::Spoofed,
    })
}

/// What a flood-loop phase sends besides the legitimate handshakes (slot 0 of each burst).
#[derive(Debug, Clone, Copy)]
struct FloodPlan {
    /// Established frames: `None` = [`FLOOD_ESTABLISHED_PER_BURST`] per burst; `Some(pps)`
    /// = paced at `pps` per second (each burst carries those due, up to 31).
    established_pps: Option<f64>,
    /// Whether the other slots carry spoofed SYNs (else the bursts carry only what is due).
    spoofed: bool,
}

/// One flood-loop phase for `o.seconds` (see [`FloodPlan`]): slot 0 of each burst carries
/// the legitimate handshakes (a due ACK, or a new SYN, `--flood-legit-per-s` a second,
/// whose ACK follows `--flood-rtt-us` later), then established frames (the flows' data
/// segments, in their shuffled order), then spoofed SYNs from random addresses in
/// 100.64.0.0/10, as fast as rvsd takes them and `--window` allows. Before each transmit the
/// generator drains its receive ring. Counts what arrives on `back` per kind.
fn flood(g: &mut Gen, o: &Options, flows: &[Flow], order: &[u32], plan: FloodPlan) -> Flood {
    let est: Vec<Vec<u8>> = order.iter().map(|&i| data_frame(flows[i as usize].client, 60)).collect();
    let syn = SynTemplate::new(frames::GW_MAC, frames::VIP);
    let rtt = Duration::from_micros(o.flood_rtt_us);
    let mut pending: std::collections::VecDeque<(Instant, (Ipv4Addr, u16))> = std::collections::VecDeque::new();
    let mut f = Flood::default();
    let mut kinds: std::collections::VecDeque<Kind> = std::collections::VecDeque::with_capacity(BURST_SIZE);
    let (mut e, mut legit_k, mut bursts) = (0usize, 0u64, 0u64);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut window = Window::new(o.window);
    let start = Instant::now();
    let end = Duration::from_secs_f64(o.seconds);
    // Paced established frames handed out so far (the pacing's own count: a frame in a
    // burst the DUT has not taken yet is handed out).
    let mut est_queued = 0u64;
    let count_rx = |g: &mut Gen, f: &mut Flood, in_phase: bool| {
        let n = g.back.rx_burst(&mut g.rx);
        for m in &g.rx {
            if let Some(k) = classify(m.data()) {
                f.received.add(k, 1);
                if in_phase && k == Kind::Established {
                    f.established_rx_in_phase += 1;
                }
            }
        }
        g.rx.clear();
        n
    };
    let total = |p: &PerKind| p.established + p.spoofed_syn + p.legit_syn + p.legit_ack;
    while start.elapsed() < end {
        // Drain the receive ring first: the DUT's transmit ring must not fill because the
        // generator is late.
        let mut got = false;
        while count_rx(g, &mut f, true) > 0 {
            got = true;
        }
        let room = window.room(total(&f.sent), total(&f.received), got);
        if g.tx.is_empty() && room > 0 {
            bursts += 1;
            let now = Instant::now();
            let est_due = match plan.established_pps {
                None => FLOOD_ESTABLISHED_PER_BURST,
                Some(pps) => {
                    let due = (start.elapsed().as_secs_f64() * pps) as u64;
                    due.saturating_sub(est_queued).min(BURST_SIZE as u64 - 1) as usize
                }
            };
            let mut est_left = est_due;
            let legit_due = (start.elapsed().as_secs_f64() * o.flood_legit_per_s) as u64;
            while g.tx.len() < room {
                let slot = g.tx.len();
                let kind = if slot == 0 {
                    match pending.front() {
                        Some(&(due, _)) if due <= now => Kind::LegitAck,
                        _ if legit_k < legit_due => Kind::LegitSyn,
                        _ if est_left > 0 => Kind::Established,
                        _ if plan.spoofed => Kind::Spoofed,
                        _ => break,
                    }
                } else if est_left > 0 {
                    Kind::Established
                } else if plan.spoofed {
                    Kind::Spoofed
                } else {
                    break;
                };
                let Some(mut m) = g.pool.alloc() else { break };
                let Some(buf) = m.append(60) else { break };
                match kind {
                    Kind::LegitAck => {
                        let (_, c) = pending.pop_front().expect("a due ACK");
                        let ack = TcpSeg {
                            src: c,
                            dst: (frames::VIP, frames::VPORT),
                            flags: TCP_ACK,
                            seq: 0x0100_0001,
                            options: vec![],
                            payload: vec![],
                        }
                        .frame(frames::FRONT_MAC, frames::GW_MAC);
                        buf.copy_from_slice(&ack);
                    }
                    Kind::LegitSyn => {
                        let c = legit_client(legit_k);
                        legit_k += 1;
                        syn.write(buf, c.0, c.1);
                        pending.push_back((now + rtt, c));
                    }
                    Kind::Established => {
                        buf.copy_from_slice(&est[e]);
                        e = (e + 1) % est.len();
                        est_left -= 1;
                        est_queued += 1;
                    }
                    Kind::Spoofed => {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let ip = Ipv4Addr::from(0x6440_0000 | (x as u32 & 0x003f_ffff));
                        syn.write(buf, ip, 1024 + ((x >> 32) % 60_000) as u16);
                    }
                }
                kinds.push_back(kind);
                g.tx.push(m);
            }
        }
        if !g.tx.is_empty() {
            let sent = g.front.tx_burst(&mut g.tx);
            for k in kinds.drain(..sent) {
                f.sent.add(k, 1);
            }
        }
        if bursts.is_multiple_of(16) && g.front.rx_burst(&mut g.rx) > 0 {
            g.rx.clear();
        }
    }
    f.seconds = start.elapsed().as_secs_f64();
    g.tx.clear();
    // Drain until nothing arrived for DRAIN (at most 2 s): on a shared CPU rvsd may still
    // be working through its ring, and a frame still queued is not a lost one.
    let t = Instant::now();
    let mut quiet = Instant::now();
    while quiet.elapsed() < DRAIN && t.elapsed() < Duration::from_secs(2) {
        if count_rx(g, &mut f, false) > 0 {
            quiet = Instant::now();
        }
    }
    g.drain_all();
    f
}

impl Flood {
    fn established_loss(&self) -> f64 {
        if self.sent.established == 0 {
            0.0
        } else {
            self.sent.established.saturating_sub(self.received.established) as f64 / self.sent.established as f64
        }
    }

    fn legit_completion(&self) -> f64 {
        if self.sent.legit_ack == 0 {
            0.0
        } else {
            self.received.legit_ack as f64 / self.sent.legit_ack as f64
        }
    }

    fn sent_total(&self) -> u64 {
        self.sent.established + self.sent.spoofed_syn + self.sent.legit_syn + self.sent.legit_ack
    }

    fn received_total(&self) -> u64 {
        self.received.established + self.received.spoofed_syn + self.received.legit_syn + self.received.legit_ack
    }

    /// The phase's figures and what rvsd's counters say about them: frames the generator
    /// sent and did not get back are split into those rvsd counted as dropped (any
    /// reason, `tx_full` among them) and the rest (`not_received_unexplained`).
    fn figures(&self, before: &RvsdCounters, after: &RvsdCounters) -> serde_json::Value {
        let secs = self.seconds.max(1e-9);
        let missing = self.sent_total().saturating_sub(self.received_total());
        let rvsd_dropped = after.all_drops_since(before);
        serde_json::json!({
            "duration_s": round(secs, 3),
            "sent": self.sent,
            "received": self.received,
            "established_loss": round(self.established_loss(), 6),
            "established_mpps": round(self.established_rx_in_phase as f64 / secs / 1e6, 4),
            "all_sent_mpps": round(self.sent_total() as f64 / secs / 1e6, 4),
            "spoofed_syn_mpps": round(self.sent.spoofed_syn as f64 / secs / 1e6, 4),
            "legit_handshakes_per_s": round(self.sent.legit_ack as f64 / secs, 0),
            "legit_completion": round(self.legit_completion(), 4),
            "not_received": missing,
            "rvsd_dropped": rvsd_dropped,
            "rvsd_tx_full": after.drops_since(before, "tx_full"),
            "not_received_unexplained": missing.saturating_sub(rvsd_dropped),
            "rvsd": after.since(before),
        })
    }
}

/// A flood-loop phase with rvsd's counters before and after it.
type Phase<'a> = (&'a Flood, &'a RvsdCounters, &'a RvsdCounters);

/// The flood lines: `dpdk_flood` (the flood at the generator's full rate with the
/// established frames at a fixed share of each burst) and, when the paced phases ran,
/// `dpdk_flood_paced` (the established flows offered at the same rate without and with
/// the flood).
fn emit_flood(
    o: &Options,
    full: Phase,
    alone_mpps: Option<f64>,
    paced: Option<(f64, [Phase; 2])>,
    load: Option<f64>,
) -> Result<(), String> {
    let (f, before, after) = full;
    let secs = f.seconds.max(1e-9);
    let mut line = serde_json::json!({
        "bench": "dpdk_flood",
        "mode": o.mode.name(),
        "established_flows": o.flows,
        "duration_s": round(secs, 3),
        "sent": f.sent,
        "received": f.received,
        "established_loss": round(f.established_loss(), 6),
        "established_mpps_flood": round(f.established_rx_in_phase as f64 / secs / 1e6, 3),
        "established_mpps_alone": alone_mpps.map(|m| round(m, 3)),
        "all_mpps_flood": round(f.received_total() as f64 / secs / 1e6, 3),
        "spoofed_syn_mpps": round(f.sent.spoofed_syn as f64 / secs / 1e6, 3),
        "legit_handshakes_per_s": round(f.sent.legit_ack as f64 / secs, 0),
        "legit_completion": round(f.legit_completion(), 4),
        "legit_rtt_us": o.flood_rtt_us,
        "half_open_evicted": after.half_open_evicted - before.half_open_evicted,
        "conn_table_full": after.drops_since(before, "conn_table_full"),
        "window": o.window,
        "load": load,
        "lcores": o.lcore_note,
    });
    let extra = f.figures(before, after);
    for k in ["not_received", "rvsd_dropped", "rvsd_tx_full", "not_received_unexplained", "rvsd"] {
        line[k] = extra[k].clone();
    }
    print_json(&line)?;
    if let Some((pps, [without, with])) = paced {
        print_json(&serde_json::json!({
            "bench": "dpdk_flood_paced",
            "mode": o.mode.name(),
            "established_flows": o.flows,
            "established_offered_mpps": round(pps / 1e6, 4),
            "paced_share": o.flood_paced_share,
            "without_flood": without.0.figures(without.1, without.2),
            "with_flood": with.0.figures(with.1, with.2),
            "window": o.window,
            "load": load,
            "lcores": o.lcore_note,
        }))?;
    }
    Ok(())
}

/// The generator's two queues and pool, and its counters.
struct Gen {
    front: EthQueue,
    back: EthQueue,
    pool: Mempool,
    tx: Burst<Mbuf>,
    rx: Burst<Mbuf>,
}

/// What one blast phase measured.
#[derive(Debug, Default)]
struct Blast {
    /// Packets the DUT took, whole phase.
    sent: u64,
    /// Packets received on `back`, whole phase (after the drain).
    received: u64,
    /// Packets received during the timed window.
    window_rx: u64,
    /// Length of the timed window.
    window: f64,
    /// tx_burst calls and those that placed less than the whole burst.
    tx_calls: u64,
    tx_short: u64,
    /// Packets sent during the timed window.
    window_tx: u64,
    /// (seconds since the window opened, received, sent so far in it), about every ms.
    samples: Vec<(f64, u64, u64)>,
    /// Received frames checked in full (one in [`VERIFY_EVERY`]).
    verified: u64,
}

impl Blast {
    fn mpps(&self) -> f64 {
        self.window_rx as f64 / self.window / 1e6
    }

    fn loss(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.sent.saturating_sub(self.received) as f64 / self.sent as f64
        }
    }

    fn backpressure(&self) -> f64 {
        if self.tx_calls == 0 {
            0.0
        } else {
            self.tx_short as f64 / self.tx_calls as f64
        }
    }
}

fn run(o: &Options) -> Result<(), String> {
    let eal = Eal::init(&o.eal).map_err(|e| e.to_string())?;
    let pool =
        Mempool::new(&eal, "pktgen", POOL_MBUFS, 256, Mempool::DEFAULT_DATA_ROOM, None).map_err(|e| e.to_string())?;
    let setup = PortSetup { rss: false, ..PortSetup::default() };
    let mut ports = Vec::new();
    for dev in [&o.front, &o.back] {
        let p = Port::open(&eal, dev).map_err(|e| e.to_string())?;
        p.configure(&setup, &pool).map_err(|e| e.to_string())?;
        p.promiscuous_enable().map_err(|e| e.to_string())?;
        p.start().map_err(|e| e.to_string())?;
        ports.push(p);
    }
    let t0 = Instant::now();
    while !ports.iter().all(|p| p.link().up) {
        if t0.elapsed() > LINK_TIMEOUT {
            return Err(format!(
                "links not up after {LINK_TIMEOUT:?} (front {}, back {}): is the DUT running and its memif sockets there?",
                ports[0].link().up,
                ports[1].link().up
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("rvs-pktgen: links up after {:.2} s", t0.elapsed().as_secs_f64());
    let mut g = Gen {
        front: ports[0].queue(0).map_err(|e| e.to_string())?,
        back: ports[1].queue(0).map_err(|e| e.to_string())?,
        pool: pool.clone(),
        tx: Burst::new(),
        rx: Burst::new(),
    };
    // Let the DUT's start-up chatter (gratuitous ARP) arrive, then discard it.
    std::thread::sleep(Duration::from_millis(100));
    g.drain_all();

    let conn_capacity = match (o.dut, &o.api) {
        (Dut::Rvsd, Some(api)) => Some(rvsd_conn_capacity(api)?),
        (Dut::Rvsd, None) => return Err("--dut rvsd needs --api (rvsd's REST address)".into()),
        (Dut::Testpmd, _) => None,
    };
    let flows: Vec<Flow> = match o.dut {
        Dut::Rvsd => open_flows(&mut g, o.mode, o.flows)?,
        Dut::Testpmd => (0..o.flows).map(|i| Flow { client: flow_client(i), server: 0, local: None }).collect(),
    };
    let rewrite = if o.dut == Dut::Testpmd { Rewrite::Unchanged } else { o.mode.rewrite() };
    let order = shuffled(o.flows);
    let mut last_established_mpps: Option<f64> = None;
    let load = || std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split(' ').next()?.parse::<f64>().ok());
    for &size in &o.sizes {
        let frames: Vec<Vec<u8>> = order.iter().map(|&i| data_frame(flows[i as usize].client, size)).collect();
        let in_order: Vec<Flow> = order.iter().map(|&i| flows[i as usize]).collect();
        let mut checker = Checker::established(rewrite, &in_order, &frames);
        let mut k = 0usize;
        let b = g.blast(
            o.window,
            o.seconds,
            WARMUP_SHARE,
            &mut checker,
            |buf| {
                let f = &frames[k];
                k += 1;
                if k == frames.len() {
                    k = 0;
                }
                buf.copy_from_slice(f);
            },
            size,
        );
        checker.result().map_err(|e| format!("established flows, {size}-byte frames: {e}"))?;
        emit(o, "established", &size.to_string(), size, &b, load())?;
        if size == 60 {
            last_established_mpps = Some(b.mpps());
        }
    }
    if o.new_flows {
        let syn = SynTemplate::new(frames::GW_MAC, frames::VIP);
        let mut k: u64 = 0;
        let mut checker = Checker::new_flows(rewrite);
        // No warm-up: the table must be seen filling from empty.
        let b = g.blast(
            o.window,
            o.seconds,
            0.0,
            &mut checker,
            |buf| {
                let (ip, port) = syn_client(k);
                k += 1;
                syn.write(buf, ip, port);
            },
            syn.len(),
        );
        checker.result().map_err(|e| format!("new flows: {e}"))?;
        emit_new(o, &b, load(), syn.len(), conn_capacity)?;
    }
    if o.flood {
        if o.dut != Dut::Rvsd || o.mode != Fwd::Dr {
            return Err("--flood needs --dut rvsd --mode dr (its handshakes complete without the servers)".into());
        }
        let api = o.api.as_deref().unwrap_or_default();
        let alone = o.sizes.contains(&60).then_some(last_established_mpps).flatten();
        let full_plan = FloodPlan { established_pps: None, spoofed: true };
        let before = RvsdCounters::read(api)?;
        let f = flood(&mut g, o, &flows, &order, full_plan);
        let after = RvsdCounters::read(api)?;
        // Like for like: the established flows at one offered rate, without and with the
        // flood filling the rest of rvsd's capacity.
        let paced_pps = alone.map(|m| m * 1e6 * o.flood_paced_share).filter(|&p| p > 0.0);
        let mut paced = Vec::new();
        if let Some(pps) = paced_pps {
            for spoofed in [false, true] {
                let b0 = RvsdCounters::read(api)?;
                let p = flood(&mut g, o, &flows, &order, FloodPlan { established_pps: Some(pps), spoofed });
                paced.push((p, b0, RvsdCounters::read(api)?));
            }
        }
        let paced_lines = paced_pps
            .filter(|_| paced.len() == 2)
            .map(|pps| (pps, [(&paced[0].0, &paced[0].1, &paced[0].2), (&paced[1].0, &paced[1].1, &paced[1].2)]));
        emit_flood(o, (&f, &before, &after), alone, paced_lines, load())?;
    }
    drop(g);
    if let Some(path) = &o.done_file {
        linger(path, &ports)?;
    }
    drop(ports);
    drop(pool);
    let _ = eal.cleanup();
    Ok(())
}

/// Tells the caller the measurement is over (creates `path`) and waits, without touching
/// the queues, until the DUT has closed both links (or 60 s passed).
///
/// Why: DPDK 22.11's memif PMD unmaps a connection's shared memory from its interrupt
/// thread when the peer disconnects, which can race with an lcore still polling that
/// port: `rte-worker-1 ... segfault ... in librte_net_memif.so.23.0` was seen in rvsd when
/// the generator exited first. So the DUT stops first (its workers end before its ports
/// close), and the generator, which no longer polls, goes last.
fn linger(path: &str, ports: &[Port]) -> Result<(), String> {
    use std::io::Write;
    std::io::stdout().flush().map_err(|e| format!("stdout: {e}"))?;
    std::fs::write(path, b"done\n").map_err(|e| format!("--done-file {path}: {e}"))?;
    let t0 = Instant::now();
    while ports.iter().any(|p| p.link().up) && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn flow_client(i: usize) -> (Ipv4Addr, u16) {
    let ip = u32::from(Ipv4Addr::new(172, 16, 0, 1)) + (i / PORTS_PER_CLIENT) as u32;
    (Ipv4Addr::from(ip), 10_000 + (i % PORTS_PER_CLIENT) as u16)
}

fn syn_client(k: u64) -> (Ipv4Addr, u16) {
    let ip = u32::from(Ipv4Addr::new(172, 20, 0, 1)) + (k / SYN_PORTS_PER_CLIENT) as u32;
    (Ipv4Addr::from(ip), 1024 + (k % SYN_PORTS_PER_CLIENT) as u16)
}

/// A fixed shuffle of `0..n` (xorshift Fisher–Yates), as the pipeline benchmark's.
fn shuffled(n: usize) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n as u32).collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

/// The client's data segment of `size` bytes (without FCS) to VIP:80.
fn data_frame(client: (Ipv4Addr, u16), size: usize) -> Vec<u8> {
    let payload = vec![0x5a; size.saturating_sub(14 + 20 + 20)];
    let f = TcpSeg {
        src: client,
        dst: (frames::VIP, frames::VPORT),
        flags: TCP_ACK | TCP_PSH,
        seq: 1,
        options: vec![],
        payload,
    }
    .frame(frames::FRONT_MAC, frames::GW_MAC);
    debug_assert_eq!(f.len(), size.max(60));
    f
}

/// Opens `n` connections through rvsd with SYN, (SYN-ACK,) ACK; see the module docs.
fn open_flows(g: &mut Gen, mode: Fwd, n: usize) -> Result<Vec<Flow>, String> {
    let mut out = Vec::with_capacity(n);
    let t0 = Instant::now();
    for start in (0..n).step_by(BURST_SIZE) {
        let chunk: Vec<(Ipv4Addr, u16)> = (start..n.min(start + BURST_SIZE)).map(flow_client).collect();
        let syns: Vec<Vec<u8>> = chunk
            .iter()
            .map(|&c| {
                TcpSeg {
                    src: c,
                    dst: (frames::VIP, frames::VPORT),
                    flags: TCP_SYN,
                    seq: 0,
                    options: vec![2, 4, 0x05, 0xb4],
                    payload: vec![],
                }
                .frame(frames::FRONT_MAC, frames::GW_MAC)
            })
            .collect();
        g.send_all(true, &syns)?;
        let fwd = g.recv_n(false, chunk.len(), "the forwarded SYNs on the back port")?;
        let mut replies = Vec::new();
        for (f, &client) in fwd.iter().zip(&chunk) {
            let server = frames::SERVER_MACS
                .iter()
                .position(|m| f[..6] == m[..])
                .ok_or_else(|| format!("a forwarded SYN went to MAC {:02x?}, not a server's", &f[..6]))?;
            // The inner IPv4 header (after the outer one for IPIP).
            let ip = if mode == Fwd::Tunnel { IP_AT + 20 } else { IP_AT };
            let sport = frames::u16_at(f, ip + 20);
            if mode != Fwd::FullNat && sport != client.1 {
                return Err(format!("forwarded SYNs came back out of order (port {sport}, expected {})", client.1));
            }
            let local = (mode == Fwd::FullNat).then(|| (frames::ipv4_at(f, ip + 12), sport));
            if mode.replies_through_lb() {
                let to = local.unwrap_or(client);
                replies.push(
                    TcpSeg {
                        src: (frames::SERVERS[server], mode.server_port()),
                        dst: to,
                        flags: TCP_SYN | TCP_ACK,
                        seq: 0x7000_0000,
                        options: vec![2, 4, 0x05, 0xb4],
                        payload: vec![],
                    }
                    .frame(frames::BACK_MAC, frames::SERVER_MACS[server]),
                );
            }
            out.push(Flow { client, server, local });
        }
        if !replies.is_empty() {
            g.send_all(false, &replies)?;
            g.recv_n(true, replies.len(), "the SYN-ACKs rvsd sends back to the clients")?;
        }
        let acks: Vec<Vec<u8>> = chunk
            .iter()
            .map(|&c| {
                TcpSeg {
                    src: c,
                    dst: (frames::VIP, frames::VPORT),
                    flags: TCP_ACK,
                    seq: 1,
                    options: vec![],
                    payload: vec![],
                }
                .frame(frames::FRONT_MAC, frames::GW_MAC)
            })
            .collect();
        g.send_all(true, &acks)?;
        g.recv_n(false, acks.len(), "the forwarded ACKs on the back port")?;
    }
    let mut per_server = [0usize; 3];
    for f in &out {
        per_server[f.server] += 1;
    }
    eprintln!(
        "rvs-pktgen: {n} {} connections opened in {:.2} s; per server {per_server:?}",
        mode.name(),
        t0.elapsed().as_secs_f64()
    );
    Ok(out)
}

impl Gen {
    fn queue(&mut self, front: bool) -> &mut EthQueue {
        if front {
            &mut self.front
        } else {
            &mut self.back
        }
    }

    fn drain_all(&mut self) {
        for front in [true, false] {
            loop {
                let mut rx: Burst<Mbuf> = Burst::new();
                if self.queue(front).rx_burst(&mut rx) == 0 {
                    break;
                }
            }
        }
    }

    /// Sends `frames` (at most a burst) on one port, retrying until all are taken.
    fn send_all(&mut self, front: bool, frames: &[Vec<u8>]) -> Result<(), String> {
        let mut b: Burst<Mbuf> = Burst::new();
        for f in frames {
            let mut m = self.pool.alloc().ok_or("generator pool empty")?;
            m.append(f.len()).ok_or("frame larger than an mbuf")?.copy_from_slice(f);
            b.push(m);
        }
        let t0 = Instant::now();
        while !b.is_empty() {
            self.queue(front).tx_burst(&mut b);
            if t0.elapsed() > SETUP_TIMEOUT {
                return Err("the DUT does not take packets (TX ring stays full)".into());
            }
        }
        Ok(())
    }

    /// Receives exactly `n` frames on one port (ARP and other non-IPv4 frames skipped).
    fn recv_n(&mut self, front: bool, n: usize, what: &str) -> Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::with_capacity(n);
        let t0 = Instant::now();
        while out.len() < n {
            let mut rx: Burst<Mbuf> = Burst::new();
            self.queue(front).rx_burst(&mut rx);
            for m in &rx {
                let d = m.data();
                if d.len() >= 34 && d[12..14] == [0x08, 0x00] {
                    out.push(d.to_vec());
                }
            }
            if t0.elapsed() > SETUP_TIMEOUT {
                return Err(format!(
                    "set-up: got {} of {n} of {what} within {SETUP_TIMEOUT:?} (is the service configured for this mode? see rvsd's log)",
                    out.len()
                ));
            }
        }
        if out.len() > n {
            return Err(format!("set-up: got {} frames where {n} of {what} were expected", out.len()));
        }
        Ok(out)
    }

    /// Transmits frames written by `fill` (each `size` bytes) on `front` for `seconds`
    /// as fast as they are taken, counting what arrives on `back`.
    /// Every frame received on `back` goes through `checker`.
    #[allow(clippy::too_many_arguments)]
    fn blast(
        &mut self,
        window: u64,
        seconds: f64,
        warm_share: f64,
        checker: &mut Checker,
        mut fill: impl FnMut(&mut [u8]),
        size: usize,
    ) -> Blast {
        let mut b = Blast::default();
        let mut window = Window::new(window);
        let start = Instant::now();
        let warm = Duration::from_secs_f64(seconds * warm_share);
        let end = Duration::from_secs_f64(seconds);
        let mut window_open: Option<(Instant, u64, u64)> = None;
        let mut last_sample = 0.0f64;
        let mut iter: u32 = 0;
        let mut got = false;
        loop {
            // Refill the burst (what the DUT refused last time stays in it), as far as the
            // window allows.
            let room = window.room(b.sent, b.received, got);
            while self.tx.len() < room {
                let Some(mut m) = self.pool.alloc() else { break };
                if let Some(buf) = m.append(size) {
                    fill(buf);
                    self.tx.push(m);
                }
            }
            if !self.tx.is_empty() {
                let want = self.tx.len();
                let sent = self.front.tx_burst(&mut self.tx);
                b.sent += sent as u64;
                b.tx_calls += 1;
                if sent < want {
                    b.tx_short += 1;
                }
            }
            got = false;
            for _ in 0..4 {
                let n = self.back.rx_burst(&mut self.rx);
                for m in &self.rx {
                    b.received += u64::from(checker.frame(m.data()));
                }
                self.rx.clear();
                got |= n > 0;
                if n < BURST_SIZE {
                    break;
                }
            }
            iter = iter.wrapping_add(1);
            if iter.is_multiple_of(16) {
                // The client side gets nothing in these phases but stray frames; keep
                // its ring from filling.
                if self.front.rx_burst(&mut self.rx) > 0 {
                    self.rx.clear();
                }
                let now = start.elapsed();
                match window_open {
                    None if now >= warm => {
                        window_open = Some((Instant::now(), b.received, b.sent));
                        b.tx_calls = 0;
                        b.tx_short = 0;
                    }
                    Some((w0, rx0, tx0)) => {
                        let t = w0.elapsed().as_secs_f64();
                        if t - last_sample >= 0.001 {
                            b.samples.push((t, b.received - rx0, b.sent - tx0));
                            last_sample = t;
                        }
                    }
                    None => {}
                }
                if now >= end {
                    break;
                }
            }
        }
        if let Some((w0, rx0, tx0)) = window_open {
            b.window = w0.elapsed().as_secs_f64();
            b.window_rx = b.received - rx0;
            b.window_tx = b.sent - tx0;
        }
        // Unsent frames are not counted; drain what is still in flight.
        self.tx.clear();
        let t = Instant::now();
        while t.elapsed() < DRAIN {
            self.back.rx_burst(&mut self.rx);
            for m in &self.rx {
                b.received += u64::from(checker.frame(m.data()));
            }
            self.rx.clear();
        }
        self.drain_all();
        b.verified = checker.checked;
        if checker.arp > 0 {
            eprintln!("rvs-pktgen: {} ARP frames from the DUT on the back port (not counted)", checker.arp);
        }
        b
    }
}

fn ceiling(o: &Options, key: &str) -> Option<f64> {
    o.ceiling.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

/// `x` rounded to `digits` decimals; NaN and infinities (serialized as null) stay as they are.
fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// The keys every phase line ends with.
#[derive(Debug, Serialize)]
struct Common<'a> {
    loss: f64,
    duration_s: f64,
    load: Option<f64>,
    n_flows: usize,
    sent: u64,
    received: u64,
    verified: u64,
    verify_every: u64,
    tx_backpressure: f64,
    gbps: f64,
    lcores: &'a str,
}

/// An established-flow (or testpmd) line; `--dut testpmd` gives `bench: "dpdk_ceiling"`,
/// the others DESIGN.md's `"dpdk"` line.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Line<'a> {
    Ceiling {
        bench: &'static str,
        dut: &'static str,
        key: &'a str,
        pkt_size: usize,
        flows: &'a str,
        testpmd_mpps: f64,
        #[serde(flatten)]
        common: Common<'a>,
    },
    Rvsd {
        bench: &'static str,
        mode: &'static str,
        pkt_size: usize,
        flows: &'a str,
        rvsd_mpps: f64,
        testpmd_mpps: Option<f64>,
        ratio: Option<f64>,
        #[serde(flatten)]
        common: Common<'a>,
    },
}

/// The new-flow line of `--dut rvsd`.
#[derive(Debug, Serialize)]
struct NewFlowLine<'a> {
    bench: &'static str,
    mode: &'static str,
    pkt_size: usize,
    flows: &'static str,
    rvsd_mpps: f64,
    testpmd_mpps: Option<f64>,
    ratio: Option<f64>,
    new_conns_per_s: f64,
    fill_s: f64,
    table_full: bool,
    /// rvsd's own `dataplane.conn_capacity` (GET /v1/config).
    conn_capacity: u64,
    churn_mpps: f64,
    duration_s: f64,
    load: Option<f64>,
    sent: u64,
    received: u64,
    verified: u64,
    verify_every: u64,
    tx_backpressure: f64,
    lcores: &'a str,
}

fn print_json(line: &impl Serialize) -> Result<(), String> {
    println!("{}", serde_json::to_string(line).map_err(|e| format!("JSON: {e}"))?);
    Ok(())
}

/// One established-flow line.
/// `key` names the phase for `--ceiling` (the frame size, or `syn` for the new-flow stream).
fn emit(o: &Options, flows: &str, key: &str, size: usize, b: &Blast, load: Option<f64>) -> Result<(), String> {
    if b.window <= 0.0 {
        return Err("the phase was too short to open a timed window".into());
    }
    let wire = size + 4;
    let common = Common {
        loss: round(b.loss(), 6),
        duration_s: round(b.window, 3),
        load,
        n_flows: o.flows,
        sent: b.sent,
        received: b.received,
        verified: b.verified,
        verify_every: VERIFY_EVERY,
        tx_backpressure: round(b.backpressure(), 3),
        gbps: round(b.mpps() * 1e6 * (wire as f64) * 8.0 / 1e9, 3),
        lcores: &o.lcore_note,
    };
    let line = match o.dut {
        Dut::Testpmd => Line::Ceiling {
            bench: "dpdk_ceiling",
            dut: "testpmd",
            key,
            pkt_size: wire,
            flows,
            testpmd_mpps: round(b.mpps(), 4),
            common,
        },
        Dut::Rvsd => {
            let t = ceiling(o, key);
            Line::Rvsd {
                bench: "dpdk",
                mode: o.mode.name(),
                pkt_size: wire,
                flows,
                rvsd_mpps: round(b.mpps(), 4),
                testpmd_mpps: t.map(|t| round(t, 4)),
                ratio: t.map(|t| round(b.mpps() / t, 3)),
                common,
            }
        }
    };
    print_json(&line)
}

/// The new-flow line: fill rate until the table was full, then the churn rate.
fn emit_new(o: &Options, b: &Blast, load: Option<f64>, size: usize, conn_capacity: Option<u64>) -> Result<(), String> {
    let Some(conn_capacity) = conn_capacity else {
        // testpmd has no table: the SYN stream is one more I/O ceiling.
        return emit(o, "new", "syn", size, b, load);
    };
    if b.window <= 0.0 || b.samples.is_empty() {
        return Err("the new-flow phase was too short".into());
    }
    // The table is full when forwarding stops: the first sample within 0.1 % of the
    // final count, if that is well before the window's end.
    let total = b.window_rx;
    let (fill_t, fill_n, fill_tx) = b
        .samples
        .iter()
        .copied()
        .find(|&(_, n, _)| n as f64 >= total as f64 * 0.999)
        .unwrap_or((b.window, total, b.window_tx));
    let filled = fill_t < b.window * 0.9;
    let fill_rate = if fill_t > 0.0 { fill_n as f64 / fill_t } else { 0.0 };
    // Once full, the DUT keeps taking SYNs from its ring and drops them (table full):
    // the rate at which it took them for the rest of the window.
    let churn = if filled { (b.window_tx - fill_tx) as f64 / (b.window - fill_t) / 1e6 } else { f64::NAN };
    let t = ceiling(o, "syn");
    print_json(&NewFlowLine {
        bench: "dpdk",
        mode: o.mode.name(),
        pkt_size: size + 4,
        flows: "new",
        rvsd_mpps: round(fill_rate / 1e6, 4),
        testpmd_mpps: t.map(|t| round(t, 4)),
        ratio: t.map(|t| round(fill_rate / 1e6 / t, 3)),
        new_conns_per_s: fill_rate.round(),
        fill_s: round(fill_t, 3),
        table_full: filled,
        conn_capacity,
        churn_mpps: round(churn, 4),
        duration_s: round(b.window, 3),
        load,
        sent: b.sent,
        received: b.received,
        verified: b.verified,
        verify_every: VERIFY_EVERY,
        tx_backpressure: round(b.backpressure(), 3),
        lcores: &o.lcore_note,
    })
}
