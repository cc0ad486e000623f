//! Sends an ARP request through a DPDK port and waits for the reply: a smoke test for
//! a vdev on a real interface, e.g. `net_af_packet0,iface=veth0` whose peer has an IP.
//!
//! ```text
//! af_packet_ping DEVICE OUR_IP PEER_IP [EAL args...]
//! af_packet_ping net_af_packet0,iface=rvsv0 10.99.0.1 10.99.0.2 --in-memory -l 0
//! ```
//!
//! The device string is passed to EAL as `--vdev` when it is not a PCI address. Exits
//! with 0 when the peer answered, 1 when it did not, 2 on a setup error.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rvs_drivers::dpdk::{preflight, Eal, Mempool, Port, PortSetup};
use rvs_drivers::{Burst, PacketBuf, PortInfo, PortQueue};

/// A broadcast ARP request "who has `target`? tell `sender` (`mac`)", padded to 60 bytes.
fn arp_request(mac: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[0..6].fill(0xff);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]); // Ethernet/IPv4, request
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&sender.octets());
    f[38..42].copy_from_slice(&target.octets());
    f
}

/// The sender MAC of an ARP reply from `peer`, if `frame` is one.
fn arp_reply_from(frame: &[u8], peer: Ipv4Addr) -> Option<[u8; 6]> {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x06] || frame[20..22] != [0, 2] || frame[28..32] != peer.octets() {
        return None;
    }
    frame[22..28].try_into().ok()
}

fn fmt_mac(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn run() -> Result<bool, String> {
    let mut argv = std::env::args().skip(1);
    let usage = "usage: af_packet_ping DEVICE OUR_IP PEER_IP [EAL args...]";
    let device = argv.next().ok_or(usage)?;
    let ours: Ipv4Addr = argv.next().ok_or(usage)?.parse().map_err(|e| format!("OUR_IP: {e}"))?;
    let peer: Ipv4Addr = argv.next().ok_or(usage)?.parse().map_err(|e| format!("PEER_IP: {e}"))?;
    let mut eal_args: Vec<String> = argv.collect();
    if device.starts_with("net_") {
        eal_args.extend(["--vdev".to_string(), device.clone()]);
    }

    let report = preflight(&eal_args, 0).map_err(|e| e.to_string())?;
    println!("preflight: {report}");
    println!("EAL args: {}", eal_args.join(" "));
    let eal = Eal::init(&eal_args).map_err(|e| e.to_string())?;
    let pool =
        Mempool::new(&eal, "ping_pool", 1023, 32, Mempool::DEFAULT_DATA_ROOM, None).map_err(|e| e.to_string())?;
    let port = Port::open(&eal, &device).map_err(|e| e.to_string())?;
    let info = port.dev_info().map_err(|e| e.to_string())?;
    println!(
        "port {} `{}`: driver {}, max queues {}/{}",
        port.id(),
        port.name(),
        info.driver,
        info.max_rx_queues,
        info.max_tx_queues
    );
    port.configure(&PortSetup { rx_desc: 512, tx_desc: 512, ..PortSetup::default() }, &pool)
        .map_err(|e| e.to_string())?;
    port.start().map_err(|e| e.to_string())?;
    port.promiscuous_enable().map_err(|e| e.to_string())?;
    let mac = port.mac();
    println!("mac {}, link {:?}, rss {}", fmt_mac(mac), port.link(), port.rss_enabled());

    let mut q = port.queue(0).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut next_send = Instant::now();
    let mut answered = None;
    while answered.is_none() && Instant::now() < deadline {
        if Instant::now() >= next_send {
            let mut tx: Burst<_> = Burst::new();
            let mut m = pool.alloc().ok_or("mbuf pool empty")?;
            let req = arp_request(mac, ours, peer);
            m.append(req.len()).ok_or("no room in mbuf")?.copy_from_slice(&req);
            tx.push(m);
            let sent = q.tx_burst(&mut tx);
            println!("sent ARP who-has {peer} tell {ours}: {sent} accepted");
            next_send = Instant::now() + Duration::from_millis(500);
        }
        let mut rx: Burst<_> = Burst::new();
        if q.rx_burst(&mut rx) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        for m in &rx {
            let d = m.data();
            println!(
                "received {} bytes, ethertype {:02x}{:02x}",
                d.len(),
                d.get(12).unwrap_or(&0),
                d.get(13).unwrap_or(&0)
            );
            if let Some(peer_mac) = arp_reply_from(d, peer) {
                answered = Some(peer_mac);
            }
        }
    }
    drop(q);
    println!("stats: {:?}", port.stats());
    match answered {
        Some(peer_mac) => println!("ARP reply: {peer} is at {}", fmt_mac(peer_mac)),
        None => println!("no ARP reply from {peer}"),
    }
    port.close().map_err(|e| e.to_string())?;
    drop(pool);
    eal.cleanup().map_err(|e| e.to_string())?;
    Ok(answered.is_some())
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
