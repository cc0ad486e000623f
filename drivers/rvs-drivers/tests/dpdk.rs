//! The DPDK driver against a real EAL, without hugepages or NICs.
//!
//! EAL can be initialised once per process, so this file has a single test that walks
//! through everything in order. The port is a `net_ring` vdev: with no arguments the
//! ring PMD backs RX queue *i* and TX queue *i* with the same ring, so what one queue
//! sends, the same queue receives — a loopback cable in memory.
//!
//! EAL args: `--no-huge -m 128 --no-shconf --no-pci --lcores 0@C,1@C --vdev net_ring0`
//! (`--no-huge` with `--in-memory` is rejected by EAL 22.11).
//!
//! Runs as root (EAL needs it for its memory setup) and fails with a message otherwise:
//! a test that cannot run never reports ok.

#![cfg(feature = "dpdk")]

use std::sync::mpsc;

use rvs_drivers::dpdk::{preflight, DpdkError, Eal, Mempool, Port, PortSetup};
use rvs_drivers::{Burst, PacketBuf, PacketPool, PortInfo, PortQueue, BURST_SIZE};

/// An Ethernet + IPv4 + UDP frame of `len` bytes (≥ 42) whose payload encodes `seq`.
fn frame(seq: u16, len: usize) -> Vec<u8> {
    assert!(len >= 42);
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // dst
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // src
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((len - 14) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&seq.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 10, 0, 2]);
    ip[16..20].copy_from_slice(&[10, 10, 0, 100]);
    let sum = ip.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    let csum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    udp[2..4].copy_from_slice(&80u16.to_be_bytes());
    udp[4..6].copy_from_slice(&((len - 34) as u16).to_be_bytes());
    for (i, b) in f[42..].iter_mut().enumerate() {
        *b = (i as u16).wrapping_add(seq) as u8;
    }
    f
}

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>() {}

#[test]
fn dpdk_driver_end_to_end() {
    if std::fs::read_to_string("/proc/self/status")
        .map(|s| !s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(true)
    {
        // Not a skip: a test that cannot run must not report ok. vm-testbed/test.sh runs the
        // workspace's tests as root, so CI always runs this one.
        panic!("the DPDK driver test needs root (EAL memory setup): run it as root, e.g. sudo bash vm-testbed/test.sh");
    }
    assert_send_sync::<Port>();
    assert_send_sync::<Mempool>();
    assert_send::<rvs_drivers::dpdk::Mbuf>();
    assert_send::<rvs_drivers::dpdk::EthQueue>();

    // --- Preflight: two lcores on the first CPU we may use, no hugepages needed. ---
    let cpu = {
        let probe = ["--no-huge".to_string()];
        let report = preflight(&probe, 0).expect("preflight without hugepages");
        report.allowed_cpus[0]
    };
    let args: Vec<String> = [
        // `--in-memory` implies hugepage memory; without hugepages `--no-shconf` is
        // what keeps EAL from writing shared config files.
        "--no-huge",
        "-m",
        "128",
        "--no-shconf",
        "--no-pci",
        "--lcores",
        &format!("0@{cpu},1@{cpu}"),
        "--vdev",
        "net_ring0",
        "--log-level",
        "lib.eal:notice",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let report = preflight(&args, 1).expect("preflight");
    assert_eq!(report.lcores, 2);
    assert!(report.hugepages.is_empty());

    // --- EAL, once. ---
    let eal = Eal::init(&args).expect("EAL init");
    assert_eq!(Eal::init(&args).unwrap_err(), DpdkError::EalAlreadyInitialised);
    assert_eq!(eal.main_lcore(), 0);
    assert_eq!(Eal::current_lcore(), Some(0));
    assert_eq!(eal.worker_lcores(), &[1]);

    // --- Mempool. ---
    let pool = Mempool::new(&eal, "rvs_test", 2047, 32, Mempool::DEFAULT_DATA_ROOM, None).expect("mempool");
    assert_eq!(pool.size(), 2047);
    assert_eq!(pool.in_use(), 0);
    let dup = Mempool::new(&eal, "rvs_test", 63, 0, Mempool::DEFAULT_DATA_ROOM, None).unwrap_err();
    assert!(dup.to_string().contains("already exists"), "{dup}");
    let e = Mempool::new(&eal, "rvs_bad_cache", 64, 600, Mempool::DEFAULT_DATA_ROOM, None).unwrap_err();
    assert!(e.to_string().contains("cache size 600 is too large"), "{e}");

    // --- Mbuf operations on a real mbuf, as rte_pktmbuf_* define them. ---
    {
        let mut handle = pool.clone();
        let mut m = PacketPool::alloc(&mut handle).expect("alloc");
        assert_eq!(pool.in_use(), 1);
        assert_eq!(m.len(), 0);
        assert!(m.is_empty());
        assert_eq!(m.headroom(), usize::from(Mempool::HEADROOM));
        assert_eq!(m.tailroom(), usize::from(Mempool::DEFAULT_DATA_ROOM - Mempool::HEADROOM));
        assert_eq!(m.nb_segs(), 1);
        let body = frame(7, 100);
        m.append(100).expect("append").copy_from_slice(&body);
        assert_eq!(m.data(), &body[..]);
        assert_eq!(m.headroom(), 128);
        assert_eq!(m.tailroom(), 2048 - 100);
        // Prepend an outer 20-byte header.
        let whole = m.prepend(20).expect("prepend");
        assert_eq!(whole.len(), 120);
        whole[..20].fill(0xee);
        assert_eq!(m.headroom(), 108);
        assert_eq!(&m.data()[20..], &body[..]);
        assert!(m.data()[..20].iter().all(|&b| b == 0xee));
        // Remove it again.
        assert!(m.adj(20));
        assert_eq!(m.data(), &body[..]);
        assert_eq!(m.headroom(), 128);
        // Trim the tail.
        assert!(m.trim(10));
        assert_eq!(m.data(), &body[..90]);
        // Failures change nothing.
        assert!(m.prepend(129).is_none());
        assert!(!m.adj(91));
        assert!(!m.trim(91));
        assert!(m.append(2048 - 90 + 1).is_none());
        assert!(m.prepend(70_000).is_none());
        assert!(!m.adj(70_000));
        assert_eq!(m.data(), &body[..90]);
        assert_eq!((m.headroom(), m.tailroom()), (128, 2048 - 90));
        // Edges: all of the headroom, all of the frame.
        assert_eq!(m.prepend(128).map(|d| d.len()), Some(218));
        assert_eq!(m.headroom(), 0);
        assert!(m.adj(218));
        assert!(m.is_empty());
        assert!(m.set_len(60));
        assert_eq!(m.len(), 60);
        assert!(m.set_len(14));
        assert_eq!(m.len(), 14);
        assert!(!m.set_len(5000));
        assert_eq!(m.rss_hash(), None);
        assert_eq!(m.rx_offload(), Default::default());
        drop(m);
        assert_eq!(pool.in_use(), 0);
    }

    // --- Ports: lookup errors. ---
    let e = Port::open(&eal, "net_af_packet0,iface=front").unwrap_err();
    assert_eq!(e, DpdkError::DeviceNotFound("net_af_packet0".into()));
    assert_eq!(
        e.to_string(),
        "DPDK device `net_af_packet0` not found: check the `device` string (vdev `net_af_packet0,iface=front` or a PCI address bound to vfio-pci) and that the interface exists"
    );
    let port = Port::open(&eal, "net_ring0").expect("open net_ring0");
    assert_eq!(Port::open(&eal, "net_ring0").unwrap_err(), DpdkError::DeviceInUse("net_ring0".into()));
    let info = port.dev_info().expect("dev_info");
    assert_eq!(info.driver, "net_ring");
    assert!(info.max_rx_queues >= 1 && info.max_tx_queues >= 1, "{info:?}");

    // --- Configure (RSS asked for; net_ring has none, which must not fail). ---
    assert!(matches!(port.queue(0).unwrap_err(), DpdkError::PortState { .. }));
    assert!(matches!(port.start().unwrap_err(), DpdkError::PortState { .. }));
    let too_many = PortSetup { rx_queues: info.max_rx_queues + 1, tx_queues: 1, ..PortSetup::default() };
    let e = port.configure(&too_many, &pool).unwrap_err();
    assert!(matches!(e, DpdkError::TooManyQueues { .. }), "{e}");
    assert!(e.to_string().contains("use fewer workers"), "{e}");
    let setup = PortSetup { rx_queues: 2, tx_queues: 2, rx_desc: 256, tx_desc: 256, rss: true, mtu: None };
    port.configure(&setup, &pool).expect("configure");
    assert!(!port.rss_enabled());
    assert_eq!(port.rss_conf(), None, "no RSS: the software owner stays");
    assert_eq!(port.queue_counts(), Some((2, 2)));
    port.start().expect("start");
    port.promiscuous_enable().expect("promiscuous (or ENOTSUP)");
    assert!(port.link().up, "{:?}", port.link());
    let _mac = port.mac();
    assert!(matches!(port.configure(&setup, &pool).unwrap_err(), DpdkError::PortState { .. }));

    // --- Queues are handed out once; the port cannot stop under them. ---
    let mut q0 = port.queue(0).expect("queue 0");
    let e = port.queue(0).unwrap_err();
    assert!(e.to_string().contains("already in use"), "{e}");
    assert!(port.queue(2).unwrap_err().to_string().contains("no queue pair 2"));
    let e = port.stop().unwrap_err();
    assert!(e.to_string().contains("still held by workers"), "{e}");
    assert_eq!((q0.port_id(), q0.queue_id()), (port.id(), 0));

    // --- Send frames built in Rust, receive them back, compare bytes. ---
    let sizes = [60usize, 64, 128, 342, 1000, 1514];
    let frames: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &n)| frame(i as u16, n)).collect();
    let mut tx: Burst<_> = Burst::new();
    for f in &frames {
        let mut m = pool.alloc().expect("alloc");
        m.append(f.len()).expect("room").copy_from_slice(f);
        tx.push(m);
    }
    assert_eq!(q0.tx_burst(&mut tx), frames.len());
    assert!(tx.is_empty());
    let mut rx: Burst<_> = Burst::new();
    assert_eq!(q0.rx_burst(&mut rx), frames.len());
    for (m, f) in rx.iter().zip(&frames) {
        assert_eq!(m.data(), &f[..]);
        assert_eq!(m.nb_segs(), 1);
        // (net_ring passes mbufs through untouched, so `m.port()` is not set here.)
    }
    // Received mbufs are ordinary mbufs: rewrite one and send it again.
    rx[0].data_mut()[0] = 0xaa;
    assert_eq!(q0.tx_burst(&mut rx), frames.len());
    let mut again: Burst<_> = Burst::new();
    assert_eq!(q0.rx_burst(&mut again), frames.len());
    assert_eq!(again[0].data()[0], 0xaa);
    assert_eq!(again[1].data(), &frames[1][..]);
    // rx_burst appends to what is already there and never overflows the burst.
    assert_eq!(q0.rx_burst(&mut again), 0);
    drop(again);

    // --- TX refusal: overfill the ring; refused packets stay with the caller. ---
    let mut sent_total = 0usize;
    let refused = loop {
        let mut b: Burst<_> = Burst::new();
        while b.len() < BURST_SIZE {
            let mut m = pool.alloc().expect("pool big enough");
            m.append(60).expect("room").copy_from_slice(&frames[0]);
            b.push(m);
        }
        let sent = q0.tx_burst(&mut b);
        sent_total += sent;
        assert_eq!(sent + b.len(), BURST_SIZE);
        if !b.is_empty() {
            break b;
        }
        assert!(sent_total < 4096, "the ring never filled up");
    };
    assert!(refused.iter().all(|m| m.data() == &frames[0][..]));
    let in_flight = pool.in_use() as usize;
    assert_eq!(in_flight, sent_total + refused.len());
    drop(refused);
    let mut drained = 0usize;
    loop {
        let mut b: Burst<_> = Burst::new();
        let n = q0.rx_burst(&mut b);
        if n == 0 {
            break;
        }
        drained += n;
    }
    assert_eq!(drained, sent_total);
    assert_eq!(pool.in_use(), 0);

    // --- Link flap: down and up again; the queue keeps working throughout, as the
    //     workers keep polling a port whose link went away. ---
    port.set_link(false).expect("link down");
    assert!(!port.link().up, "{:?}", port.link());
    {
        let mut b: Burst<_> = Burst::new();
        assert_eq!(q0.rx_burst(&mut b), 0, "nothing to receive");
    }
    port.set_link(true).expect("link up");
    assert!(port.link().up, "{:?}", port.link());
    {
        let mut b: Burst<_> = Burst::new();
        let mut m = pool.alloc().expect("alloc");
        m.append(60).expect("room").copy_from_slice(&frames[0]);
        b.push(m);
        assert_eq!(q0.tx_burst(&mut b), 1, "sends after the flap");
        assert_eq!(q0.rx_burst(&mut b), 1, "receives after the flap");
        assert_eq!(b[0].data(), &frames[0][..]);
    }
    assert_eq!(pool.in_use(), 0);

    // --- Pool exhaustion: every mbuf taken, the next alloc is None (no crash); one
    //     returned, alloc works again. ---
    {
        let mut all = Vec::new();
        while let Some(m) = pool.alloc() {
            all.push(m);
            assert!(all.len() <= 4096, "the pool never ran out");
        }
        assert!(all.len() >= 2047 - 32 * 2, "{} mbufs before exhaustion", all.len());
        assert!(pool.alloc().is_none());
        all.pop();
        assert!(pool.alloc().is_some(), "a returned mbuf is allocated again");
    }
    assert_eq!(pool.in_use(), 0);

    // --- Counters, read from another thread while the queue exists. ---
    // ... plus the one frame sent and received after the link flap.
    let expect_pkts = (2 * frames.len() + sent_total + 1) as u64;
    let stats = std::thread::scope(|s| s.spawn(|| port.stats()).join().expect("stats thread"));
    assert_eq!(stats.tx_packets, expect_pkts, "{stats:?}");
    assert_eq!(stats.rx_packets, expect_pkts, "{stats:?}");
    port.reset_stats().expect("reset stats");
    assert_eq!(port.stats().rx_packets, 0);

    // --- Worker lcores: launch, busy, wait, panics. ---
    let e = eal.launch_on(0, || 0).unwrap_err();
    assert!(matches!(e, DpdkError::NotAWorker { lcore: 0, .. }), "{e}");
    assert!(matches!(eal.wait(5).unwrap_err(), DpdkError::NotAWorker { lcore: 5, .. }));
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let worker_pool = pool.clone();
    eal.launch_on(1, move || {
        go_rx.recv().expect("go");
        // The worker allocates from its own pool handle and reports its lcore.
        let mut p = worker_pool;
        let m = PacketPool::alloc(&mut p);
        let lcore = Eal::current_lcore().map_or(-1, |l| l as i32);
        if m.is_some() {
            lcore * 100 + 42
        } else {
            -2
        }
    })
    .expect("launch");
    let busy = eal.launch_on(1, || 0).unwrap_err();
    assert_eq!(busy, DpdkError::LcoreBusy(1));
    go_tx.send(()).expect("release worker");
    assert_eq!(eal.wait(1).expect("wait"), 142);
    // The worker's queue handle moves into the closure, polls, and comes back by drop.
    eal.launch_on(1, move || {
        let mut b: Burst<_> = Burst::new();
        q0.rx_burst(&mut b) as i32
    })
    .expect("launch with queue");
    eal.wait_all();
    assert_eq!(eal.wait(1).expect("wait"), 0);
    eal.launch_on(1, || panic!("worker panic (expected by the test)")).expect("launch panicking job");
    assert_eq!(eal.wait(1).expect("wait"), -1);

    // --- Teardown in order; cleanup refused while anything is alive. ---
    let port_handle = Port::open(&eal, "net_ring0");
    assert!(port_handle.is_err());
    port.stop().expect("stop (queue dropped with the worker closure)");
    port.close().expect("close");
    // The device is gone after close.
    assert!(matches!(Port::open(&eal, "net_ring0").unwrap_err(), DpdkError::DeviceNotFound(_)));
    assert_eq!(pool.in_use(), 0);
    drop(pool);
    eal.cleanup().expect("EAL cleanup");
    assert_eq!(Eal::init(&args).unwrap_err(), DpdkError::EalAlreadyInitialised);
}
