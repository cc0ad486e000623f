//! Prints the RSS setup a device reports once configured with two queue pairs and RSS:
//! whether RSS is on, the Toeplitz key and the redirection table (`Port::rss_conf`),
//! which rvsd feeds to the Full-NAT local port choice.
//!
//! `cargo run --release -p rvs-drivers --example rss_conf -- DEVICE [EAL args...]`, as
//! root; a `net_*` DEVICE is added as a vdev, e.g.
//! `net_tap0,iface=rvsrss0 --no-huge -m 256 --no-shconf --no-pci`.

use std::process::ExitCode;

use rvs_drivers::dpdk::{Eal, Mempool, Port, PortSetup};

fn run() -> Result<(), String> {
    let mut argv = std::env::args().skip(1);
    let device = argv.next().ok_or("usage: rss_conf DEVICE [EAL args...]")?;
    let mut eal_args: Vec<String> = argv.collect();
    if device.starts_with("net_") {
        eal_args.extend(["--vdev".to_string(), device.clone()]);
    }
    let eal = Eal::init(&eal_args).map_err(|e| e.to_string())?;
    let pool = Mempool::new(&eal, "rss_pool", 2047, 32, Mempool::DEFAULT_DATA_ROOM, None).map_err(|e| e.to_string())?;
    let name = device.split(',').next().unwrap_or(&device);
    let port = Port::open(&eal, name).map_err(|e| e.to_string())?;
    let info = port.dev_info().map_err(|e| e.to_string())?;
    let setup = PortSetup { rx_queues: 2, tx_queues: 2, rx_desc: 256, tx_desc: 256, rss: true, mtu: None };
    port.configure(&setup, &pool).map_err(|e| e.to_string())?;
    port.start().map_err(|e| e.to_string())?;
    println!("driver {}: rss offloads {:#x}, rss enabled {}", info.driver, info.rss_offloads, port.rss_enabled());
    match port.rss_conf() {
        Some(c) => {
            let key: String = c.key.iter().map(|b| format!("{b:02x}")).collect();
            println!("key {key}\nhash functions {:#x}\nreta ({} entries) {:?}", c.hash_functions, c.reta.len(), c.reta);
        }
        None => println!("no RSS key and redirection table: rvsd keeps its software owner"),
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rss_conf: {e}");
            ExitCode::FAILURE
        }
    }
}
