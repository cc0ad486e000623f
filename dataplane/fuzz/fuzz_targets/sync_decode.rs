//! The sync datagram decoder and a `SyncLink` on arbitrary bytes: no panic, and whatever
//! the link transmits back decodes.
//!
//! Input: the whole input is decoded once as one raw datagram (key `fuzz-key`), then read
//! as a program of chunks, each `op (u8) | len (u16, big-endian) | len bytes` (cut short
//! at the end of the input), handed to one link in turn:
//!
//! * op bit 0: 0 = the chunk is a datagram as it is (almost always refused by the HMAC);
//!   1 = the chunk is header and payload, sealed with the key (payload length and HMAC
//!   set), so its contents reach the parser and the state machine;
//! * op bit 1: the link also queues a record;
//! * op bits 2-7: the clock advances by that many × 10 ms first.
//!
//! After each chunk the link flushes, ticks, answers a bulk request, and transmits until
//! it has nothing left (at most 10 000 datagrams a chunk, each of which must decode).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rvs_dataplane::sync::{ConnRecord, PersistRecord, SyncRecord};
use rvs_dataplane::types::{ConnState, ForwardMode, L4Proto, TcpState};
use rvs_sync::wire::{decode, seal};
use rvs_sync::{LinkConfig, SyncLink};

const KEY: &[u8] = b"fuzz-key";

fn record(n: u32) -> SyncRecord {
    if n % 2 == 0 {
        SyncRecord::Conn(ConnRecord {
            proto: L4Proto::Tcp,
            forward: ForwardMode::Nat,
            client: SocketAddr::new(IpAddr::V4(Ipv4Addr::from(n)), 40000),
            vip: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1)), 80),
            local: SocketAddr::new(IpAddr::V4(Ipv4Addr::from(n)), 40000),
            server: SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 8080),
            state: ConnState::Tcp(TcpState::SynRecv),
            flags: 0,
            expires_in_ms: n,
            synproxy: None,
        })
    } else {
        SyncRecord::Persist(PersistRecord {
            proto: L4Proto::Udp,
            vip: SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 53),
            client: IpAddr::V4(Ipv4Addr::from(n)),
            server: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 53),
            expires_in_s: n,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = decode(data, KEY);

    let t0 = Instant::now();
    let mut now = t0;
    let cfg =
        LinkConfig { resend_capacity: 64, window: 32, reorder_capacity: 64, ..LinkConfig::new(KEY.to_vec(), 2, 4) };
    let mut link = SyncLink::new(cfg, t0);
    let mut out = Vec::new();
    let mut n = 0u32;
    let mut rest = data;
    while let [op, a, b, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*a, *b])).min(tail.len());
        let (chunk, tail) = tail.split_at(len);
        rest = tail;
        now += Duration::from_millis(u64::from(op >> 2) * 10);
        let datagram = if op & 1 == 1 { seal(chunk.to_vec(), KEY) } else { chunk.to_vec() };
        let _ = link.handle_datagram(&datagram, now);
        if op & 2 != 0 {
            n += 1;
            link.queue(record(n));
        }
        if link.take_bulk_request() {
            link.queue(record(0));
            link.bulk_end();
        }
        link.flush(now);
        link.tick(now);
        for _ in 0..10_000 {
            let Some(d) = link.poll_transmit(now) else { break };
            if let Err(e) = decode(&d, KEY) {
                panic!("the link sent a datagram it cannot decode: {e}");
            }
        }
        link.drain_received(&mut out);
        out.clear();
        let _ = link.status(now);
    }
});
