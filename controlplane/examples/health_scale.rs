//! Health checking at scale, a benchmark (not a test): N real servers (default 1,000)
//! probed every second with the `tcp` kind, through the same health-thread loop as rvsd
//! ([`rvs_controlplane::health::run::Shell`]: punted packets in, monitor poll, packets out,
//! effects and status brought up to date and copied out when they changed, sleep until the
//! next deadline, at most 10 ms), against a
//! responder thread that stands in for the workers and the servers: it takes each packet
//! the prober queued for worker 0 and punts a SYN-ACK back for every SYN.
//!
//! Prints JSON lines:
//! * `{"bench":"health_scale",...}`: the health thread's CPU time per second of wall time
//!   (from `/proc/thread-self/schedstat`, nanosecond resolution), measured after a warm-up
//!   interval, with the probes finished and packets moved, and the servers up at the end;
//! * `{"bench":"health_punt",...}`: what a worker pays per probe packet on the rings: a
//!   reply recognised (`ProbeMatch::matches`) and copied to the prober's ring
//!   (`ProbeLink::punt`), and a probe taken from the outbound ring
//!   (`ProbeLink::take_outbound`, the copy only: routing and transmit are the worker's
//!   ordinary path and not included). Packets to VIPs never reach the match: only
//!   packets to a port's own address are tested.
//!
//! ```text
//! cargo run --release -p rvs-controlplane --example health_scale -- [--servers N] [--seconds S]
//! ```

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_controlplane::config::Config;
use rvs_controlplane::health::run::{prober_config, HealthCounters, Shell};
use rvs_dataplane::punt::{probe_links, ProbeLink, DEFAULT_PROBE_PORTS};
use smoltcp::wire::{IpProtocol, Ipv4Packet, TcpPacket, TcpSeqNumber};

fn config(servers: usize) -> Config {
    let mut text = String::from(
        "[[port]]\nname = \"back\"\ndevice = \"net_ring0\"\naddress = \"10.20.0.1/16\"\nmac = \"02:00:00:00:00:01\"\n\
         [[service]]\nprotocol = \"tcp\"\naddress = \"10.20.0.100\"\nport = 80\nscheduler = \"rr\"\n\
         [service.health]\nkind = \"tcp\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nrise = 2\nfall = 2\n",
    );
    for i in 0..servers {
        let ip = Ipv4Addr::new(10, 20, 1 + (i / 250) as u8, 1 + (i % 250) as u8);
        text.push_str(&format!("[[service.server]]\naddress = \"{ip}\"\nforward = \"nat\"\n"));
    }
    Config::from_toml(&text).unwrap_or_else(|e| panic!("benchmark config: {e}"))
}

/// A SYN-ACK for a SYN, nothing for anything else (the prober's ACK and RST).
fn answer(p: &[u8]) -> Option<Vec<u8>> {
    let ip = Ipv4Packet::new_checked(p).ok()?;
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    if !tcp.syn() || tcp.ack() {
        return None;
    }
    let (src, dst) = (ip.dst_addr(), ip.src_addr());
    let mut buf = vec![0u8; 40];
    {
        let mut t = TcpPacket::new_unchecked(&mut buf[20..]);
        t.set_src_port(tcp.dst_port());
        t.set_dst_port(tcp.src_port());
        t.set_seq_number(TcpSeqNumber(1000));
        t.set_ack_number(tcp.seq_number() + 1);
        t.set_header_len(20);
        t.clear_flags();
        t.set_syn(true);
        t.set_ack(true);
        t.set_window_len(65535);
        t.set_urgent_at(0);
        t.fill_checksum(&src.into(), &dst.into());
    }
    let mut o = Ipv4Packet::new_unchecked(&mut buf[..]);
    o.set_version(4);
    o.set_header_len(20);
    o.set_total_len(40);
    o.set_hop_limit(64);
    o.set_next_header(IpProtocol::Tcp);
    o.set_src_addr(src);
    o.set_dst_addr(dst);
    o.fill_checksum();
    Some(buf)
}

/// This thread's CPU time so far, in ns.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(default)
}

fn scale(servers: usize, seconds: u64) {
    let c = config(servers);
    let (links, end) = probe_links(1, 4096, DEFAULT_PROBE_PORTS);
    let link: ProbeLink = links.into_iter().next().expect("worker 0's link");
    let stop = Arc::new(AtomicBool::new(false));
    let responder = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut answered = 0u64;
            while !stop.load(Ordering::Relaxed) {
                while let Some(reply) = link.take_outbound(answer) {
                    if let Some(r) = reply {
                        answered += u64::from(link.punt(&r).is_ok());
                    }
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            answered
        })
    };
    let counters = Arc::new(HealthCounters::default());
    let t0 = Instant::now();
    let mut shell = Shell::new(prober_config(&c, DEFAULT_PROBE_PORTS), end, Arc::clone(&counters), t0);
    shell.reconcile(&c, &HashMap::new(), t0);
    let warmup = Duration::from_secs(2);
    let mut measured: Option<(Instant, u64, u64, u64)> = None;
    let mut up = 0;
    loop {
        let now = Instant::now();
        if measured.is_none() && now >= t0 + warmup {
            let rx = counters.rx.load(Ordering::Relaxed);
            measured = Some((now, thread_cpu_ns(), rx, counters.tx.load(Ordering::Relaxed)));
        }
        if now >= t0 + warmup + Duration::from_secs(seconds) {
            break;
        }
        // As the health thread's turn: packets, poll, effects and views, and what it hands
        // over when they changed.
        let turn = shell.turn(now);
        if turn.overlay_changed {
            let handed = shell.overlay().clone();
            up = handed.values().filter(|e| e.up && e.weight > 0).count();
            std::hint::black_box(handed);
        }
        if turn.status_changed {
            std::hint::black_box(shell.health().clone());
        }
        let next = shell.next_turn(Instant::now());
        std::thread::sleep(next.saturating_duration_since(Instant::now()).max(Duration::from_micros(200)));
    }
    let (start, cpu0, rx0, tx0) = measured.expect("measured");
    let wall = start.elapsed().as_secs_f64();
    let cpu = thread_cpu_ns().saturating_sub(cpu0) as f64;
    let (rx, tx) = (counters.rx.load(Ordering::Relaxed) - rx0, counters.tx.load(Ordering::Relaxed) - tx0);
    stop.store(true, Ordering::Relaxed);
    let answered = responder.join().unwrap_or(0);
    // Each tcp probe: SYN, ACK and RST out, SYN-ACK in.
    let probes_per_s = rx as f64 / wall;
    println!(
        "{{\"bench\":\"health_scale\",\"servers\":{servers},\"interval_s\":1,\"seconds\":{wall:.1},\
         \"cpu_ms_per_s\":{:.2},\"cpu_pct\":{:.2},\"probes_per_s\":{probes_per_s:.0},\"us_cpu_per_probe\":{:.1},\
         \"packets_in_per_s\":{:.0},\"packets_out_per_s\":{:.0},\"answered\":{answered},\"up_at_end\":{up},\
         \"transitions\":{}}}",
        cpu / wall / 1e6,
        cpu / wall / 1e7,
        cpu / 1e3 / rx.max(1) as f64,
        rx as f64 / wall,
        tx as f64 / wall,
        counters.transitions.load(Ordering::Relaxed)
    );
}

fn punt_cost() {
    let (links, mut end) = probe_links(1, 1024, DEFAULT_PROBE_PORTS);
    let link = &links[0];
    // A SYN-ACK from a server to the prober's source port 61000, as a worker sees it.
    let mut syn = vec![0u8; 40];
    {
        let mut t = TcpPacket::new_unchecked(&mut syn[20..]);
        t.set_src_port(61000);
        t.set_dst_port(80);
        t.set_header_len(20);
        t.set_syn(true);
    }
    {
        let mut o = Ipv4Packet::new_unchecked(&mut syn[..]);
        o.set_version(4);
        o.set_header_len(20);
        o.set_total_len(40);
        o.set_next_header(IpProtocol::Tcp);
        o.set_src_addr(Ipv4Addr::new(10, 20, 0, 1));
        o.set_dst_addr(Ipv4Addr::new(10, 20, 1, 1));
    }
    let reply = answer(&syn).expect("a SYN-ACK");
    let (batch, rounds) = (512usize, 4000usize);
    let (mut punt_ns, mut out_ns) = (0u128, 0u128);
    let mut matched = 0usize;
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..batch {
            let ip = Ipv4Packet::new_unchecked(&reply[..]);
            if link.matcher().matches(6, ip.payload()) {
                matched += usize::from(link.punt(&reply).is_ok());
            }
        }
        punt_ns += t.elapsed().as_nanos();
        while end.recv().is_some() {}
        for _ in 0..batch {
            end.send(&syn);
        }
        let t = Instant::now();
        let mut sum = 0usize;
        while let Some(n) = link.take_outbound(|p| {
            let mut b = [0u8; 64];
            b[..p.len().min(64)].copy_from_slice(&p[..p.len().min(64)]);
            usize::from(b[9])
        }) {
            sum += n;
        }
        out_ns += t.elapsed().as_nanos();
        std::hint::black_box(sum);
    }
    let n = (batch * rounds) as f64;
    assert_eq!(matched, batch * rounds, "every reply punted");
    println!(
        "{{\"bench\":\"health_punt\",\"ns_per_punted_reply\":{:.1},\"ns_per_probe_taken\":{:.1},\"packets\":{}}}",
        punt_ns as f64 / n,
        out_ns as f64 / n,
        batch * rounds
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let servers = arg(&args, "--servers", 1000) as usize;
    let seconds = arg(&args, "--seconds", 10);
    punt_cost();
    scale(servers, seconds);
}
