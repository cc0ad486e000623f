//! Redirect share with two workers behind a NIC that spreads packets by RSS: the test
//! plays the NIC, placing every frame on the RX queue that a NIC with the Microsoft
//! verification key and a 128-entry redirection table (entry `i` → queue `i % 2`,
//! DPDK's default spread) would pick by the Toeplitz hash of its IPv4 4-tuple, and
//! counts the packets that cross the inter-worker ring.
//!
//! * Full-NAT, with the NIC's RSS spec: every reply arrives on its owner's queue (the
//!   local port was chosen for it), so no reply is redirected; without it, about half
//!   are. Client → VIP packets are owned by `client_owner` in both cases (see
//!   `rvs_dataplane::conn::owner` for why), so about half of them are redirected.
//! * NAT ignores the RSS spec: both directions stay with `client_owner`.
//!
//! `cargo test --release -p rvs-dataplane --test rss_redirect -- --nocapture` prints the
//! shares (perf/RESULTS.md).

mod common;

use std::net::Ipv4Addr;

use common::l4::*;
use common::*;
use rvs_dataplane::conn::RssSpec;
use rvs_dataplane::types::{ForwardMode, L4Proto::Udp, SchedulerKind::Rr};

/// The Microsoft RSS verification key ("Verifying the RSS Hash Calculation").
const MS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b,
    0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac,
    0x01, 0xfa,
];

const FLOWS: u16 = 2000;

fn nic() -> RssSpec {
    let reta: Vec<u16> = (0..128).map(|i| i % 2).collect();
    RssSpec::new(MS_KEY, &reta, 0)
}

/// Packets redirected and packets sent, per direction.
#[derive(Debug, Default)]
struct Share {
    inbound: (u64, u64),
    reply: (u64, u64),
    rss_misses: u64,
}

fn redirected(ws: &[MemWorker]) -> u64 {
    ws.iter().map(|w| snapshot(w).redirected_out).sum()
}

/// `FLOWS` UDP flows from the client to the VIP and one reply each, through two workers,
/// each frame on the queue the NIC would pick; `rss` gives the workers the NIC's spec.
fn run(mode: ForwardMode, rss: bool) -> Share {
    let shared = publish(vec![service(2, Udp, 53, Rr, &[rs(RS1, 5353, 1, mode), rs(RS2, 5353, 1, mode)], None)]);
    let spec = nic();
    let opts = LbOpts { conn_capacity: 2 * usize::from(FLOWS), rss: rss.then(|| spec.clone()), ..LbOpts::default() };
    let mut ws = lb_workers(&shared, 2, &opts);
    let queue = |src: Ipv4Addr, sport, dst: Ipv4Addr, dport| usize::from(spec.queue(src, sport, dst, dport).unwrap());
    let mut share = Share::default();
    for i in 0..FLOWS {
        let now = 1 + u64::from(i);
        let cport = 10_000 + i;
        let q = Seg::udp(CLIENT_IP, cport, VIP, 53, b"query");
        let before = redirected(&ws);
        let (_, back) = send_to(&mut ws, queue(CLIENT_IP, cport, VIP, 53), FRONT, &q.by_client(), now);
        share.inbound.0 += redirected(&ws) - before;
        share.inbound.1 += 1;
        assert_eq!(back.len(), 1, "flow {i}: one query to a server");
        let s = seen(&back[0]);
        // The server answers the tuple it saw.
        let a = Seg::udp(s.dst, s.dport, s.src, s.sport, b"answer").by_server(server_mac(s.dst));
        let before = redirected(&ws);
        let (front, _) = send_to(&mut ws, queue(s.dst, s.dport, s.src, s.sport), BACK, &a, now);
        share.reply.0 += redirected(&ws) - before;
        share.reply.1 += 1;
        assert_eq!(front.len(), 1, "flow {i}: one answer to the client");
        assert_eq!(seen(&front[0]).dport, cport);
    }
    assert_accounting_all(&ws);
    share.rss_misses = ws.iter().map(|w| snapshot(w).lport_rss_misses).sum();
    eprintln!(
        "{mode:?} rss={rss}: inbound redirected {}/{} ({:.1} %), replies redirected {}/{} ({:.1} %), \
         total {:.1} %, lport RSS misses {}",
        share.inbound.0,
        share.inbound.1,
        100.0 * share.inbound.0 as f64 / share.inbound.1 as f64,
        share.reply.0,
        share.reply.1,
        100.0 * share.reply.0 as f64 / share.reply.1 as f64,
        100.0 * (share.inbound.0 + share.reply.0) as f64 / (share.inbound.1 + share.reply.1) as f64,
        share.rss_misses,
    );
    share
}

/// About half of `n` (a fair coin over 2000 flows stays within 45-55 %).
fn about_half(k: u64, n: u64) -> bool {
    (n * 45 / 100..=n * 55 / 100).contains(&k)
}

#[test]
fn fullnat_replies_follow_the_nic_with_its_rss_spec() {
    let with = run(ForwardMode::FullNat, true);
    assert_eq!(with.rss_misses, 0, "two queues, 64 candidates: a miss is 2^-64");
    assert_eq!(with.reply.0, 0, "every reply arrives at its owner");
    assert!(about_half(with.inbound.0, with.inbound.1), "{with:?}");
    let without = run(ForwardMode::FullNat, false);
    assert_eq!(without.rss_misses, 0, "no spec, no search, no miss");
    assert!(about_half(without.reply.0, without.reply.1), "the fallback leaves replies to chance: {without:?}");
    assert_eq!(with.inbound, without.inbound, "client-side ownership does not depend on the spec");
}

#[test]
fn nat_ownership_ignores_the_rss_spec() {
    let with = run(ForwardMode::Nat, true);
    let without = run(ForwardMode::Nat, false);
    assert_eq!((with.inbound, with.reply), (without.inbound, without.reply));
    assert!(about_half(with.inbound.0, with.inbound.1), "{with:?}");
    assert!(about_half(with.reply.0, with.reply.1), "{with:?}");
}
