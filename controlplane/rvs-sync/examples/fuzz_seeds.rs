//! Writes valid sync datagrams as hex seed files for the `sync_decode` fuzz target
//! (`dataplane/fuzz/seeds/sync/`): one of each message type, from two links talking with
//! the fuzz target's key.
//!
//! `cargo run -p rvs-sync --example fuzz_seeds -- dataplane/fuzz/seeds/sync`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rvs_dataplane::sync::{ConnRecord, PersistRecord, SynProxyRecord, SyncRecord};
use rvs_dataplane::types::{ConnState, ForwardMode, L4Proto, TcpState};
use rvs_sync::{decode, LinkConfig, MsgType, SyncLink};

/// The key the fuzz target uses.
const KEY: &[u8] = b"fuzz-key";

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "dataplane/fuzz/seeds/sync".into());
    std::fs::create_dir_all(&dir)?;
    let t = Instant::now();
    let mut a = SyncLink::new(LinkConfig::new(KEY.to_vec(), 1, 4), t);
    let mut b = SyncLink::new(LinkConfig::new(KEY.to_vec(), 2, 4), t);
    let sa = |s: &str| s.parse::<SocketAddr>().unwrap_or_else(|e| panic!("{s}: {e}"));
    let conn4 = SyncRecord::Conn(ConnRecord {
        proto: L4Proto::Tcp,
        forward: ForwardMode::FullNat,
        client: sa("10.0.0.1:40000"),
        vip: sa("192.168.1.1:80"),
        local: sa("10.1.0.1:1024"),
        server: sa("10.2.0.1:8080"),
        state: ConnState::Tcp(TcpState::Established),
        flags: 5,
        expires_in_ms: 900_000,
        synproxy: Some(SynProxyRecord { pending: false, seq_offset: 0x1122_3344, ts_offset: 7, window: 0x27 }),
    });
    let conn6 = SyncRecord::Conn(ConnRecord {
        proto: L4Proto::Udp,
        forward: ForwardMode::Dr,
        client: sa("[2001:db8::10]:5000"),
        vip: sa("[2001:db8::1]:53"),
        local: sa("[2001:db8::10]:5000"),
        server: sa("[2001:db8::2]:53"),
        state: ConnState::Udp,
        flags: 0,
        expires_in_ms: 300_000,
        synproxy: None,
    });
    let persist = SyncRecord::Persist(PersistRecord {
        proto: L4Proto::Tcp,
        vip: sa("192.168.1.1:443"),
        client: "10.0.0.0".parse().unwrap_or_else(|e| panic!("{e}")),
        server: sa("10.2.0.1:443"),
        expires_in_s: 360,
    });

    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    let mut keep = |name: &str, d: &[u8]| seeds.push((name.to_string(), d.to_vec()));
    // a: a heartbeat asking for a bulk; b answers with a heartbeat.
    a.request_bulk();
    let hb = a.poll_transmit(t).unwrap_or_default();
    keep("heartbeat_want_bulk", &hb);
    b.handle_datagram(&hb, t).ok();
    let hb_b = b.poll_transmit(t).unwrap_or_default();
    a.handle_datagram(&hb_b, t).ok();
    // b streams its bulk: two DATA messages, the first lost, then BULK_END.
    assert!(b.take_bulk_request());
    for (i, r) in [conn4, conn6, persist].into_iter().enumerate() {
        b.queue(r);
        if i == 0 {
            b.flush(t);
        }
    }
    b.bulk_end();
    let t1 = t + Duration::from_millis(5);
    let mut sent = Vec::new();
    while let Some(d) = b.poll_transmit(t1) {
        sent.push(d);
    }
    for (i, d) in sent.iter().enumerate() {
        let ty = decode(d, KEY).map(|m| m.body.msg_type()).ok();
        match ty {
            Some(MsgType::Data) => keep(&format!("data_{i}"), d),
            Some(MsgType::BulkEnd) => keep("bulk_end", d),
            _ => {}
        }
        if i > 0 {
            a.handle_datagram(d, t1).ok();
        }
    }
    // a saw a gap: it NACKs, b resends, a acknowledges.
    let nack = a.poll_transmit(t1).unwrap_or_default();
    keep("nack", &nack);
    b.handle_datagram(&nack, t1).ok();
    while let Some(d) = b.poll_transmit(t1) {
        a.handle_datagram(&d, t1).ok();
    }
    let t2 = t1 + Duration::from_millis(100);
    if let Some(ack) = a.poll_transmit(t2) {
        keep("ack", &ack);
    }
    for (name, d) in &seeds {
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        let ty = decode(d, KEY).map(|m| format!("{:?}", m.body.msg_type())).unwrap_or_else(|e| e.to_string());
        std::fs::write(format!("{dir}/{name}.hex"), format!("# {ty}, {} bytes\n{hex}\n", d.len()))?;
    }
    println!("{} seeds in {dir}", seeds.len());
    Ok(())
}
