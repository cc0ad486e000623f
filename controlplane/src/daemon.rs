//! rvsd's life: start-up, serving, shutdown.
//!
//! Start-up runs in this order, and each step fails with one paragraph that names what
//! is wrong and how to fix it (an `anyhow` context chain, printed with `{:#}`):
//!
//! 1. the configuration is already valid (see [`crate::config`]);
//! 2. the REST listener is bound — before touching DPDK, so "port in use" costs nothing;
//! 3. SIGTERM/SIGINT handlers are installed, so a signal during start-up ends in an
//!    orderly shutdown instead of killing the process half-way;
//! 4. DPDK preflight (hugepages, hugetlbfs, lcores) with the EAL arguments of
//!    [`eal_args`];
//! 5. EAL init, one packet pool, then every port: open, configure (one RX/TX queue pair
//!    per worker, RSS when there are several workers), promiscuous, start; a link that
//!    is down is a warning, not an error; then the RSS key and redirection table of the
//!    local addresses' port, if it reports them ([`reply_rss`]), for the Full-NAT local
//!    port choice;
//! 6. one [`WorkerConfig`] and one [`Worker`] per worker, all built and checked on this
//!    thread *before* any is launched;
//! 7. the workers are launched on their lcores; worker 0 announces every address with
//!    gratuitous ARP, then all poll;
//! 8. with `[ha]`, the HA thread ([`crate::ha::run`]) starts with the control plane's end
//!    of the HA rings (every worker punts VRRP adverts; worker 0 sends adverts and
//!    gratuitous ARP) and the roles every worker obeys (each group starts backup);
//!    the health thread ([`crate::health::run`]) starts, with the control plane's end of
//!    the punt rings (every worker punts probe replies; worker 0 sends the probes);
//!    REST is served on this (the main lcore's) thread by a current-thread tokio
//!    runtime until SIGTERM or SIGINT; SIGHUP re-reads the config file and applies it
//!    through the same path as `PUT /v1/config` ([`crate::runtime`]), logging the changes
//!    or the errors (a bad file changes nothing);
//!    once every worker has polled, readiness goes to the service manager
//!    (`READY=1`, [`crate::notify`]; `RELOADING=1` around a SIGHUP, `STOPPING=1` at
//!    SIGTERM);
//! 9. shutdown: the HA thread sends priority 0 for every instance it is master of and
//!    gives the addresses up, and worker 0 gets [`crate::ha::run::SHUTDOWN_DRAIN`] to send
//!    those adverts; then set the stop flag, wait for the health thread and every worker (their queues are released as
//!    they return), stop and close the ports, release the pool, clean up the EAL.
//!
//! No half-applied state: whatever a failed step leaves behind (started ports, a pool,
//! launched workers) is stopped and released before [`run`] returns its error — ports,
//! pools and the EAL release themselves on drop in reverse order of creation, and
//! launched workers are stopped and waited for explicitly.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use rvs_dataplane::conn::RssSpec;
use rvs_dataplane::control::control_link;
use rvs_dataplane::ha;
use rvs_dataplane::idle::IdlePolicy;
use rvs_dataplane::l2l3::neigh::{NeighConfig, NeighSync};
use rvs_dataplane::l2l3::route::{StaticRoute, StaticRoute6};
use rvs_dataplane::lb::{LbConfig, LbEngine, DEFAULT_MTU};
use rvs_dataplane::mesh::MeshLinks;
use rvs_dataplane::punt;
use rvs_dataplane::service::SharedServices;
use rvs_dataplane::stats::WorkerCounters;
use rvs_dataplane::synproxy::cookie::CookieSecret;
use rvs_dataplane::wire::MacAddr as WireMac;
use rvs_dataplane::worker::{PortConfig, StaticNeighbour, Worker, WorkerConfig};
use rvs_drivers::dpdk::{self, Eal, EthQueue, Mempool, Port, PortSetup, RssConf};
use rvs_drivers::PortInfo;
use tokio::signal::unix::{signal, SignalKind};

use crate::api::{self, AppState};
use crate::config::{Config, Device, Idle, MacAddr};
use crate::notify;
use crate::runtime::Running;
use crate::services;
use crate::status::{PortStatus, ReloadBoard, ReloadStatus, Status, StatusSource, WorkerStatus};

/// Name of rvsd's packet pool.
const POOL_NAME: &str = "rvs_pkts";
/// Per-lcore mempool cache (DPDK's usual 256, bounded by the pool size).
const POOL_CACHE: u32 = 256;
/// Capacity of each worker-to-worker neighbour-update queue.
const NEIGH_SYNC_CAPACITY: usize = 1024;
/// Capacity of each worker-to-worker redirect ring (packets).
const REDIRECT_CAPACITY: usize = 1024;
/// How often the control thread sweeps expired persistence entries.
const PERSIST_SWEEP: std::time::Duration = std::time::Duration::from_secs(5);
/// Ethernet header + FCS + one VLAN tag: what a frame adds to the MTU.
const L2_OVERHEAD: u16 = 14 + 4 + 4;

/// The EAL command line for `config`: the file's `eal_args`, then
///
/// * `-l <cpus>` with `workers + 1` CPUs taken in order from `allowed_cpus` (the
///   process's CPU affinity), unless `eal_args` already chooses lcores (`-l`, `-c`,
///   `--lcores`). On a 2-CPU machine with one worker that is `-l 0-1`. When fewer CPUs
///   are allowed than needed, the list names what there is and preflight explains;
/// * `--vdev <string>` for each vdev port and `-a <address>` for each PCI port;
/// * `--no-pci` when no port is a PCI device and `eal_args` says nothing about PCI
///   (`-a`, `-b`, `--no-pci`), so EAL does not probe — and take — NICs rvsd was not
///   asked to use.
pub fn eal_args(config: &Config, allowed_cpus: &[u32]) -> Vec<String> {
    let dp = &config.dataplane;
    let mut args = dp.eal_args.clone();
    if !dp.eal_sets_lcores() {
        let want = usize::from(dp.workers) + 1;
        let cpus: Vec<u32> = allowed_cpus.iter().copied().take(want).collect();
        args.push("-l".into());
        args.push(format_cpu_list(&cpus));
    }
    let mut any_pci = false;
    for p in &config.ports {
        match &p.device {
            Device::Vdev(v) => {
                args.push("--vdev".into());
                args.push(v.clone());
            }
            Device::Pci(a) => {
                any_pci = true;
                args.push("-a".into());
                args.push(a.clone());
            }
        }
    }
    // The ports' kernel exception interfaces (crate::exception), after every port.
    for (i, p) in config.ports.iter().enumerate() {
        if let Some(e) = &p.exception {
            args.push("--vdev".into());
            args.push(crate::exception::vdev(i, e));
        }
    }
    let user_pci = dp.eal_args.iter().any(|a| {
        a.starts_with("-a")
            || a.starts_with("-b")
            || a == "--no-pci"
            || a.starts_with("--allow")
            || a.starts_with("--block")
    });
    if !any_pci && !user_pci {
        args.push("--no-pci".into());
    }
    args
}

/// `[0, 1, 2, 5]` → `"0-2,5"`, as EAL's `-l` takes it.
pub fn format_cpu_list(cpus: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        out.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    out.join(",")
}

/// `"0-2,5"` → `[0, 1, 2, 5]` (the kernel's cpulist format); `None` if malformed.
pub fn parse_cpu_list(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 4096 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// The CPUs this process may run on (`Cpus_allowed_list` in `/proc/self/status`);
/// `0..=63` if that cannot be read, leaving the verdict to EAL and preflight.
pub fn allowed_cpus() -> Vec<u32> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).and_then(parse_cpu_list))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| (0..64).collect())
}

/// The configuration of worker `index`: every port (with its MAC as the NIC reports it,
/// unless the config overrides it: `macs[i]` is port `i`'s), every VIP (answered on the
/// port whose prefix holds it, or on every port when none does), routes, static
/// neighbours, idle policy and neighbour timeouts.
pub fn worker_config(config: &Config, index: usize, macs: &[MacAddr]) -> WorkerConfig {
    let dp = &config.dataplane;
    let ports = config
        .ports
        .iter()
        .zip(macs)
        .map(|(p, mac)| PortConfig {
            name: p.name.clone(),
            mac: WireMac(mac.0),
            address: p.address,
            local_addresses: p.local_addresses.clone(),
            local_addresses6: p.local_addresses6.clone(),
            ipv6_addresses: p.ipv6_addresses.clone(),
        })
        .collect();
    let vips = crate::services::vips(config);
    WorkerConfig {
        index,
        count: usize::from(dp.workers),
        ports,
        vips,
        routes: config.routes.iter().map(|r| StaticRoute { prefix: r.prefix, via: r.via }).collect(),
        routes6: config.routes6.iter().map(|r| StaticRoute6 { prefix: r.prefix, via: r.via }).collect(),
        static_neighbours: config
            .neighbours
            .iter()
            .map(|n| StaticNeighbour { ip: n.address, mac: WireMac(n.mac.0) })
            .collect(),
        idle: match dp.idle {
            Idle::Busy => IdlePolicy::Busy,
            Idle::Adaptive => IdlePolicy::Adaptive,
        },
        neigh: NeighConfig {
            reachable_time: dp.neighbour_timeout,
            retry_interval: dp.neighbour_retry,
            ..NeighConfig::default()
        },
    }
}

/// The IPv6 addresses of `p` as the workers answer them: the configured ones and, with
/// any, the link-local address derived from `mac`, each with its prefix.
fn port_ipv6_addresses(p: &crate::config::Port, mac: WireMac) -> Vec<String> {
    let mut v: Vec<String> = p.ipv6_addresses.iter().map(ToString::to_string).collect();
    if !v.is_empty() {
        v.push(format!("{}/64", rvs_dataplane::l2l3::nd::link_local(mac)));
    }
    v
}

/// Data room for the pool: the default (1500-byte frames) unless a port's MTU needs more.
fn data_room(config: &Config) -> u16 {
    let biggest = config.ports.iter().filter_map(|p| p.mtu).max().unwrap_or(0);
    Mempool::DEFAULT_DATA_ROOM.max(Mempool::HEADROOM.saturating_add(biggest).saturating_add(L2_OVERHEAD))
}

/// What `GET /v1/status` reads while rvsd runs.
struct LiveStatus {
    started: Instant,
    ports: Vec<LivePort>,
    workers: Vec<(u16, u32, Arc<WorkerCounters>)>,
    services: SharedServices,
    estimator: crate::rates::SharedEstimator,
    health: crate::health::run::HealthBoard,
    prober: Arc<crate::health::run::HealthCounters>,
    ha: Option<crate::ha::run::HaBoard>,
    /// How the last SIGHUP reload went (written by [`reload`]).
    reload: ReloadBoard,
    /// The worker watchdog over `workers`' poll counters (also sampled periodically).
    watch: Arc<crate::watchdog::WorkerWatch>,
    /// The ports' link changes, counted by the periodic sample.
    links: Arc<std::sync::Mutex<crate::watchdog::LinkWatch>>,
    /// What the BGP thread last published (with `[bgp]`).
    bgp: Option<crate::bgp::BgpBoard>,
}

struct LivePort {
    name: String,
    device: String,
    address: String,
    /// Configured IPv6 addresses and, with any, the link-local one.
    ipv6_addresses: Vec<String>,
    mac: MacAddr,
    port: Arc<Port>,
    /// The port's kernel exception interface, if `exception = true`.
    exception: Option<LiveException>,
}

/// A port's kernel exception interface (crate::exception) in the running daemon.
struct LiveException {
    iface: String,
    rate: u32,
    port: Arc<Port>,
    /// One per worker, in worker order.
    counters: Vec<Arc<rvs_dataplane::exception::ExceptionCounters>>,
}

impl LiveException {
    fn status(&self) -> crate::status::ExceptionStatus {
        let mut sum = rvs_dataplane::exception::ExceptionSnapshot::default();
        for c in &self.counters {
            sum.accumulate(&c.snapshot());
        }
        crate::status::ExceptionStatus { iface: self.iface.clone(), rate: self.rate, counters: sum }
    }
}

impl StatusSource for LiveStatus {
    fn status(&self) -> Status {
        let links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        let ports = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut s =
                    PortStatus::new(&p.name, &p.device, p.port.id(), p.mac, &p.address, p.port.link(), p.port.stats());
                s.link_changes = links.changes(i);
                s.ipv6_addresses = p.ipv6_addresses.clone();
                s.exception = p.exception.as_ref().map(LiveException::status);
                s
            })
            .collect();
        drop(links);
        let stalls = self.watch.sample(Instant::now());
        let est = crate::rates::lock(&self.estimator);
        let workers = self
            .workers
            .iter()
            .zip(stalls.into_iter().chain(std::iter::repeat(None)))
            .map(|((i, lcore, c), stall)| {
                let mut w = WorkerStatus::new(*i, *lcore, &c.snapshot()).with_stall(stall);
                w.burst_latency = est.worker_latency(*i).unwrap_or_default();
                w
            })
            .collect();
        drop(est);
        let table = self.services.load();
        let mut status = Status::new(self.started.elapsed().as_secs(), ports, workers).with_services(&table);
        let board = self.health.lock().unwrap_or_else(|p| p.into_inner());
        // `with_services` lists the table's services and servers in table order.
        for (ss, ds) in status.services.iter_mut().zip(table.services()) {
            for (rs, dr) in ss.servers.iter_mut().zip(&ds.servers) {
                rs.health = board.get(&(ds.key.into(), dr.addr, dr.port)).cloned();
            }
        }
        status.prober = Some(self.prober.snapshot());
        status.ha = self.ha.as_ref().map(|b| b.lock().unwrap_or_else(|p| p.into_inner()).clone());
        let mut reload = self.reload.lock().unwrap_or_else(|p| p.into_inner()).clone();
        reload.generation = table.generation();
        status.reload = Some(reload);
        status.bgp = self.bgp.as_ref().map(|b| b.lock().unwrap_or_else(|p| p.into_inner()).clone());
        status
    }
}

/// What the BGP thread reads in the running daemon: the worker watchdog, each service's
/// healthy servers and quorum, and the VRRP roles of the VIPs.
struct LiveBgpEnv {
    state: Arc<AppState>,
    watch: Arc<crate::watchdog::WorkerWatch>,
    roles: Option<Arc<ha::HaRoles>>,
    ha_board: Option<crate::ha::run::HaBoard>,
}

impl crate::bgp::run::ViewSource for LiveBgpEnv {
    fn view(&self, now: Instant) -> crate::bgp::decide::NodeView {
        use crate::bgp::decide::{ServiceHealth, VrrpRole};
        let stalled_workers =
            self.watch.sample(now).iter().enumerate().filter(|(_, s)| s.is_some()).map(|(w, _)| w).collect();
        let running = self.state.running();
        let healthy = running.healthy_servers();
        let services: Vec<ServiceHealth> = running
            .config()
            .services
            .iter()
            .zip(healthy)
            .map(|(s, (_, healthy, servers))| ServiceHealth {
                name: crate::model::service_name(s),
                vip: s.address,
                healthy,
                servers,
                quorum: s.quorum,
            })
            .collect();
        drop(running);
        let mut vrrp = std::collections::BTreeMap::new();
        if let Some(roles) = &self.roles {
            let board = self.ha_board.as_ref().map(|b| b.lock().unwrap_or_else(|p| p.into_inner()).clone());
            for s in &services {
                let Some(group) = roles.group_of(s.vip) else { continue };
                let inst = board.as_ref().and_then(|b| b.instances.get(group.index()));
                let master = roles.is_master(group);
                let state =
                    inst.map_or_else(|| if master { "master" } else { "backup" }.to_string(), |i| i.state.clone());
                vrrp.insert(s.vip, VrrpRole { vrid: inst.map_or(0, |i| i.vrid), master, state });
            }
        }
        crate::bgp::decide::NodeView { stalled_workers, services, vrrp }
    }
}

/// What the HA thread tracks in the running daemon: port links, worker poll counters,
/// and the health of tracked services.
struct LiveHaEnv {
    ports: Vec<Arc<Port>>,
    workers: Vec<Arc<WorkerCounters>>,
    health: crate::health::run::HealthBoard,
    /// The HA board, where the sync thread says whether preemption must wait.
    board: crate::ha::run::HaBoard,
}

impl crate::ha::run::Environment for LiveHaEnv {
    fn link_up(&self, port: usize) -> bool {
        self.ports.get(port).is_some_and(|p| p.link().up)
    }

    fn worker_polls(&self) -> Vec<u64> {
        self.workers.iter().map(|c| c.polls.get()).collect()
    }

    fn sync_hold(&self) -> Option<String> {
        self.board.lock().unwrap_or_else(|p| p.into_inner()).sync.as_ref().and_then(|s| s.hold_preempt.clone())
    }

    fn service_down(&self, service: crate::config::ServiceKey) -> bool {
        let board = self.health.lock().unwrap_or_else(|p| p.into_inner());
        crate::ha::run::service_down(&board, service)
    }
}

/// Capacity of each worker's control request queue.
const CONTROL_QUEUE: usize = 16;

/// Runs rvsd with a validated `config` (read from `text`, the file at `path`) until
/// SIGTERM or SIGINT. Returns after an orderly shutdown, or with an error (already
/// cleaned up after) if start-up failed.
pub fn run(config: &Config, text: &str, path: &Path) -> anyhow::Result<()> {
    warn_unimplemented(config);
    let token = match &config.api.token_file {
        Some(p) => Some(api::read_token(p)?),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the control thread's async runtime")?;
    let listener = rt.block_on(api::bind(config.api.listen))?;
    let shutdown = {
        let _guard = rt.enter();
        let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
        async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
                _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
            }
            notify::notify_or_warn("STOPPING=1\nSTATUS=shutting down");
        }
    };
    let mut hangup = {
        let _guard = rt.enter();
        signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?
    };

    crate::exception::preflight(config)?;
    let args = eal_args(config, &allowed_cpus());
    let workers = usize::from(config.dataplane.workers);
    let report = dpdk::preflight(&args, workers).context("DPDK preflight failed")?;
    tracing::info!(%report, "DPDK preflight passed");
    let eal = Eal::init(&args).with_context(|| {
        let devices: Vec<&str> = config.ports.iter().map(|p| p.device.as_str()).collect();
        format!(
            "cannot start DPDK (if EAL complained about a device above, check the [[port]] device strings: {})",
            devices.join(", ")
        )
    })?;
    let lcores: Vec<u32> = eal.worker_lcores().iter().copied().take(workers).collect();
    if lcores.len() < workers {
        bail!(
            "EAL gave {} worker lcore(s) ({:?}) but dataplane.workers = {workers}: give EAL workers + 1 lcores \
             (remove -l/-c/--lcores from dataplane.eal_args to let rvsd choose) or lower dataplane.workers",
            eal.worker_lcores().len(),
            eal.worker_lcores()
        );
    }

    let pool =
        Mempool::new(&eal, POOL_NAME, config.dataplane.mempool_size, pool_cache(config), data_room(config), None)
            .with_context(|| {
                let hint = if args.iter().any(|a| a == "--no-huge") {
                    " (without hugepages EAL has 64 MB unless dataplane.eal_args gives more, e.g. \"-m\", \"512\")"
                } else {
                    ""
                };
                format!(
                    "cannot create the packet pool (dataplane.mempool_size = {}){hint}",
                    config.dataplane.mempool_size
                )
            })?;
    let ports = bring_up_ports(&eal, config, &pool)?;
    let reply_rss = reply_rss(config, &ports.iter().map(|p| p.port.rss_conf()).collect::<Vec<_>>());
    match &reply_rss {
        Ok(r) => tracing::info!(
            reta_len = r.reta().len(),
            "Full-NAT local ports follow the NIC's RSS key and redirection table: replies arrive on their owner's queue"
        ),
        Err(why) => tracing::info!(
            reason = %why,
            "Full-NAT local ports are chosen without the NIC's RSS hash; replies on another worker's queue are redirected"
        ),
    }
    let reply_rss6 = reply_rss6(config, &ports.iter().map(|p| p.port.rss_conf()).collect::<Vec<_>>());
    match &reply_rss6 {
        Ok(r) => tracing::info!(
            reta_len = r.reta().len(),
            "IPv6 Full-NAT local ports follow the NIC's RSS key and redirection table: replies arrive on their owner's queue"
        ),
        Err(why) => tracing::info!(
            reason = %why,
            "IPv6 Full-NAT local ports are chosen without the NIC's RSS hash; replies on another worker's queue are redirected"
        ),
    }

    let macs: Vec<MacAddr> = ports.iter().map(|p| p.mac).collect();
    let running = Running::from_toml(text, workers).map_err(|e| anyhow::anyhow!("{e}"))?;
    let shared: SharedServices = Arc::clone(running.shared());
    let mut handles = Vec::with_capacity(workers);
    let mut built = Vec::with_capacity(workers);
    let mut meshes = if workers > 1 { NeighSync::mesh(workers, NEIGH_SYNC_CAPACITY) } else { vec![NeighSync::none()] };
    let mut redirects = MeshLinks::mesh(workers, REDIRECT_CAPACITY).into_iter();
    let (probe_links, probe_end) =
        punt::probe_links(workers, punt::DEFAULT_RING_CAPACITY, config.dataplane.probe_ports.clone());
    let mut probe_links = probe_links.into_iter();
    // VRRP: one role group per [[ha.instance]]; every worker punts the adverts it
    // receives, worker 0 sends the HA thread's frames.
    let ha_roles = crate::ha::run::roles(config).map_err(|e| anyhow::anyhow!("[ha]: {e}"))?;
    let (ha_links, ha_end) = ha::ha_links(workers, ha::DEFAULT_HA_RING_CAPACITY);
    let mut ha_links = ha_links.into_iter();
    // Connection sync: every worker emits its connections' records and installs the
    // peer's, through rings the sync thread serves.
    let sync_config = config.ha.as_ref().and_then(|h| h.sync.clone());
    let (sync_links, sync_end) =
        rvs_dataplane::sync::sync_links(workers, rvs_dataplane::sync::DEFAULT_SYNC_RING_CAPACITY);
    // One SYN-cookie secret for every worker of the process (rvs_dataplane::synproxy).
    let cookie_secret = cookie_secret().context("reading the SYN-cookie secret from /dev/urandom")?;
    let mut sync_links = sync_links.into_iter();
    for (index, sync) in meshes.drain(..).enumerate() {
        let wc = worker_config(config, index, &macs);
        let queue_id = u16::try_from(index).context("too many workers")?;
        let queues: Vec<EthQueue> = ports
            .iter()
            .map(|p| p.port.queue(queue_id).with_context(|| format!("port `{}`: no queue for worker {index}", p.name)))
            .collect::<anyhow::Result<_>>()?;
        let mut lbc = lb_config(config, &cookie_secret);
        lbc.rss = reply_rss.as_ref().ok().map(|r| r.for_queue(index));
        lbc.rss6 = reply_rss6.as_ref().ok().map(|r| r.for_queue(index));
        let lb = LbEngine::new(index, workers, Arc::clone(&shared), lbc);
        log_table_memory(index, &lb.conns().memory());
        let links = redirects.next().context("redirect mesh has fewer ends than workers")?;
        let (handle, control) = control_link(CONTROL_QUEUE);
        handles.push(handle);
        let mut exception = Vec::with_capacity(ports.len());
        for p in &ports {
            exception.push(match &p.exception {
                Some(e) => {
                    let queue = e.port.queue(queue_id).with_context(|| {
                        format!("port `{}`: no queue on kernel interface `{}` for worker {index}", p.name, e.iface)
                    })?;
                    let counters = e.counters.get(index).cloned().context("exception counters for every worker")?;
                    // The port's limit, shared out among the workers.
                    let rate = (e.rate / u32::from(config.dataplane.workers)).max(1);
                    Some(rvs_dataplane::exception::ExceptionPort::new(queue, WireMac(p.mac.0), rate, counters))
                }
                None => None,
            });
        }
        let worker = Worker::new(&wc, queues, pool.clone(), sync)
            .with_context(|| format!("worker {index}: the data path refused its configuration"))?
            .with_exception(exception)
            .with_lb(lb, links)
            .with_control(control)
            .with_probe(probe_links.next().context("probe rings have fewer ends than workers")?);
        let ha_link = ha_links.next().context("HA rings have fewer ends than workers")?;
        let worker = match &ha_roles {
            Some(roles) => worker.with_ha(ha_link, Arc::clone(roles)),
            None => worker,
        };
        let sync_link = sync_links.next().context("sync rings have fewer ends than workers")?;
        let worker = match &sync_config {
            Some(sc) => worker.with_sync(sync_link, rvs_dataplane::sync::SyncOptions { refresh: sc.refresh }),
            None => worker,
        };
        built.push(worker);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let estimator = crate::rates::shared();
    let mut status = LiveStatus {
        started: Instant::now(),
        ports,
        workers: Vec::new(),
        services: Arc::clone(&shared),
        estimator: Arc::clone(&estimator),
        health: crate::health::run::HealthBoard::default(),
        prober: Arc::default(),
        ha: ha_roles.as_ref().map(|_| crate::ha::run::HaBoard::default()),
        reload: Arc::new(std::sync::Mutex::new(ReloadStatus::new(path))),
        watch: Arc::new(crate::watchdog::WorkerWatch::new(Vec::new())),
        links: Arc::default(),
        bgp: config.bgp.as_ref().map(|_| crate::bgp::BgpBoard::default()),
    };
    let reload_board = Arc::clone(&status.reload);
    let bgp_board = status.bgp.clone();
    let health_board = Arc::clone(&status.health);
    let health_counters = Arc::clone(&status.prober);
    let ha_board = status.ha.clone();
    let mut launched: Vec<u32> = Vec::new();
    // One timebase for every worker: monotonic nanoseconds since start-up.
    let epoch = Instant::now();
    for (index, mut worker) in built.into_iter().enumerate() {
        let lcore = lcores[index];
        let counters = Arc::clone(worker.counters());
        let stop_flag = Arc::clone(&stop);
        let job = move || {
            let clock = move || u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            if index == 0 {
                let n = worker.send_gratuitous_arp(clock());
                tracing::info!(worker = index, announcements = n, "gratuitous ARP sent");
            }
            worker.run(&stop_flag, clock);
            tracing::info!(worker = index, "worker stopped");
            0
        };
        if let Err(e) = eal.launch_on(lcore, job) {
            stop.store(true, Ordering::Relaxed);
            wait_workers(&eal, &launched);
            return Err(e).with_context(|| format!("cannot launch worker {index} on lcore {lcore}"));
        }
        tracing::info!(worker = index, lcore, "worker launched");
        launched.push(lcore);
        status.workers.push((index as u16, lcore, counters));
    }

    status.started = Instant::now();
    status.watch =
        Arc::new(crate::watchdog::WorkerWatch::new(status.workers.iter().map(|(_, _, c)| Arc::clone(c)).collect()));
    // The ports, then their kernel exception interfaces: all closed at shutdown, before the
    // pool their RX rings allocate from.
    let port_handles: Vec<Arc<Port>> = status
        .ports
        .iter()
        .map(|p| Arc::clone(&p.port))
        .chain(status.ports.iter().filter_map(|p| p.exception.as_ref().map(|e| Arc::clone(&e.port))))
        .collect();
    // The HA thread has its own stop flag: at shutdown it sends priority 0 while the
    // workers still run.
    let ha_stop = Arc::new(AtomicBool::new(false));
    let (ha_requests, ha_thread) = match (&ha_roles, &ha_board) {
        (Some(roles), Some(board)) => {
            let ports = config
                .ports
                .iter()
                .zip(&macs)
                .map(|(p, m)| crate::ha::run::HaPort { name: p.name.clone(), mac: WireMac(m.0), net: p.address })
                .collect();
            let shell = crate::ha::run::Shell::new(config, ports, ha_end, Arc::clone(roles), Instant::now());
            let env = LiveHaEnv {
                ports: port_handles.clone(),
                workers: status.workers.iter().map(|(_, _, c)| Arc::clone(c)).collect(),
                health: Arc::clone(&status.health),
                board: Arc::clone(board),
            };
            let (tx, rx) = std::sync::mpsc::channel();
            match crate::ha::run::spawn(shell, Box::new(env), rx, Arc::clone(board), Arc::clone(&ha_stop)) {
                Ok(h) => (Some(tx), Some(h)),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    wait_workers(&eal, &launched);
                    return Err(e).context("cannot start the HA (VRRP) thread");
                }
            }
        }
        _ => (None, None),
    };
    let sync_thread = match (sync_config, &ha_board) {
        (Some(sc), Some(board)) => {
            let started =
                crate::ha::sync::Shell::new(sc, sync_end, Arc::clone(&shared), workers, epoch).and_then(|shell| {
                    crate::ha::sync::spawn(shell, Arc::clone(board), Arc::clone(&stop))
                        .context("cannot start the sync thread")
                });
            match started {
                Ok(h) => Some(h),
                Err(e) => {
                    ha_stop.store(true, Ordering::Relaxed);
                    stop.store(true, Ordering::Relaxed);
                    wait_workers(&eal, &launched);
                    return Err(e).context("[ha] connection sync");
                }
            }
        }
        _ => None,
    };
    // IPVS-style rate estimation and the latency window, ticked every 2 s on this thread.
    let rates_task = {
        let shared = Arc::clone(&shared);
        let counters: Vec<(u16, Arc<WorkerCounters>)> =
            status.workers.iter().map(|(i, _, c)| (*i, Arc::clone(c))).collect();
        rt.spawn(crate::rates::run(Arc::clone(&estimator), move || {
            let workers = counters
                .iter()
                .map(|(i, c)| crate::rates::WorkerSample::new(*i, &c.snapshot(), c.burst_latency.snapshot()))
                .collect();
            crate::rates::Samples::from_table(&shared.load(), workers)
        }))
    };
    // The watchdog samples the poll counters between status requests too, so that one
    // request after a quiet time compares samples at most SAMPLE_EVERY apart; the same
    // sample counts and logs the ports' link changes.
    let watch_task = {
        let watch = Arc::clone(&status.watch);
        let links = Arc::clone(&status.links);
        let ports: Vec<(String, Arc<Port>)> =
            status.ports.iter().map(|p| (p.name.clone(), Arc::clone(&p.port))).collect();
        rt.spawn(async move {
            let mut every = tokio::time::interval(crate::watchdog::SAMPLE_EVERY);
            let mut stalled = Vec::new();
            loop {
                every.tick().await;
                let up: Vec<bool> = ports.iter().map(|(_, p)| p.link().up).collect();
                let changed = links.lock().unwrap_or_else(|p| p.into_inner()).observe(&up);
                for (i, now_up) in changed {
                    let name = ports.get(i).map_or("?", |(n, _)| n.as_str());
                    if now_up {
                        tracing::info!(port = %name, "link up");
                    } else {
                        tracing::error!(port = %name, "link down: the workers keep polling; check the cable or the interface behind the vdev");
                    }
                }
                let now = watch.sample(Instant::now());
                for (w, s) in now.iter().enumerate() {
                    let was = stalled.get(w).copied().flatten().is_some();
                    match s {
                        Some(d) if !was => {
                            tracing::error!(worker = w, stalled_for_ms = d.as_millis(), "worker stopped polling")
                        }
                        None if was => tracing::warn!(worker = w, "worker polls again"),
                        _ => {}
                    }
                }
                stalled = now;
            }
        })
    };
    let status_workers: Vec<Arc<WorkerCounters>> = status.workers.iter().map(|(_, _, c)| Arc::clone(c)).collect();
    let bgp_watch = Arc::clone(&status.watch);
    let source: Arc<dyn StatusSource> = Arc::new(status);
    tracing::info!(listen = %config.api.listen, workers, ports = port_handles.len(), "rvsd is running");
    // Persistence entries are refreshed by the workers; expired ones are reclaimed here,
    // off the data path, on the workers' timebase (seconds since start-up).
    let sweeper = {
        let shared = Arc::clone(&shared);
        rt.spawn(async move {
            let mut every = tokio::time::interval(PERSIST_SWEEP);
            loop {
                every.tick().await;
                let now_s = u32::try_from(epoch.elapsed().as_secs()).unwrap_or(u32::MAX);
                for s in shared.load().services() {
                    if let Some(p) = &s.persist {
                        p.sweep(now_s);
                    }
                }
            }
        })
    };
    let ha_board_for_bgp = ha_board.clone();
    let mut app = AppState::new(running, source, handles, token).with_estimator(Arc::clone(&estimator));
    if let (Some(board), Some(requests)) = (ha_board, ha_requests) {
        app = app.with_ha(Arc::new(crate::ha::run::HaHandle { board, requests: std::sync::Mutex::new(requests) }));
    }
    let state = Arc::new(app);
    let prober_config = crate::health::run::prober_config(config, config.dataplane.probe_ports.clone());
    let health = match crate::health::run::spawn(
        Arc::clone(&state),
        prober_config,
        probe_end,
        Arc::clone(&health_counters),
        health_board,
        Arc::clone(&stop),
    ) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!("cannot start the health thread, servers are not checked: {e}");
            None
        }
    };
    // BGP: its own stop flag, like VRRP's: at shutdown it withdraws every VIP while the
    // workers still forward the BGP updates.
    let bgp_stop = Arc::new(AtomicBool::new(false));
    let bgp_thread = match (&config.bgp, bgp_board) {
        (Some(bgp), Some(board)) => {
            let shell = crate::bgp::run::Shell::new(bgp.clone(), Box::new(crate::bgp::run::BirdcCommand::new(bgp)));
            let env = LiveBgpEnv {
                state: Arc::clone(&state),
                watch: bgp_watch,
                roles: ha_roles.clone(),
                ha_board: ha_board_for_bgp,
            };
            match crate::bgp::run::spawn(shell, Box::new(env), board, Arc::clone(&bgp_stop)) {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::error!("cannot start the BGP thread, no VIP is announced: {e}");
                    None
                }
            }
        }
        _ => None,
    };
    let reloader = {
        let state = Arc::clone(&state);
        let path = path.to_path_buf();
        rt.spawn(async move {
            while hangup.recv().await.is_some() {
                notify::notify_or_warn("RELOADING=1\nSTATUS=reloading the configuration");
                let outcome = reload(&state, &path);
                let line = match &outcome {
                    Ok(()) => format!("serving, configuration generation {}", state.running().generation()),
                    Err(e) => format!("serving, the last reload was refused: {e}"),
                };
                notify::notify_or_warn(&format!("READY=1\n{}", notify::status_line(&line)));
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let generation = state.running().generation();
                reload_board.lock().unwrap_or_else(|p| p.into_inner()).record(now, generation, outcome);
            }
        })
    };
    let ready = rt.spawn(announce_ready(status_workers, workers));
    let served = rt.block_on(api::serve(listener, api::router(state), shutdown));
    ready.abort();
    sweeper.abort();
    rates_task.abort();
    watch_task.abort();
    reloader.abort();

    // BGP first: every VIP withdrawn (the thread waits for BIRD to carry it out), then
    // VRRP: masters send priority 0 (the backup takes over after its skew time) and give
    // their addresses up, then worker 0 gets time to send those frames.
    bgp_stop.store(true, Ordering::Relaxed);
    if let Some(h) = bgp_thread {
        let _ = h.join();
    }
    ha_stop.store(true, Ordering::Relaxed);
    if let Some(h) = ha_thread {
        let _ = h.join();
        std::thread::sleep(crate::ha::run::SHUTDOWN_DRAIN);
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(h) = health {
        let _ = h.join();
    }
    if let Some(h) = sync_thread {
        let _ = h.join();
    }
    let failed = wait_workers(&eal, &launched);
    drop(rt); // the router, and with it the status source's port handles
    let mut problems = Vec::new();
    for port in port_handles {
        let name = port.name().to_string();
        match Arc::try_unwrap(port) {
            Ok(port) => {
                if let Err(e) = port.close() {
                    problems.push(format!("port `{name}`: {e}"));
                }
            }
            // Still referenced somewhere: it stops and closes when the last handle drops.
            Err(_) => tracing::warn!(port = %name, "port still in use at shutdown; it closes on release"),
        }
    }
    drop(pool);
    if let Err(e) = eal.cleanup() {
        tracing::warn!("{e}");
    }
    served?;
    if failed > 0 {
        bail!("{failed} worker(s) ended with an error (see the log above)");
    }
    if !problems.is_empty() {
        bail!("shutdown incomplete: {}", problems.join("; "));
    }
    tracing::info!("rvsd stopped");
    Ok(())
}

/// A worker that has not polled this long after launch is logged as an error. Readiness
/// is never signalled without it: systemd's `TimeoutStartSec` then fails the start, with
/// that line in the journal.
const FIRST_POLL_WARN: std::time::Duration = std::time::Duration::from_secs(5);

/// Tells the service manager (`sd_notify`, see [`crate::notify`]) that rvsd is ready,
/// once every worker has passed its poll loop at least once. Runs on the control thread
/// while it serves REST, so "ready" means: the REST port answers and every worker polls.
async fn announce_ready(workers: Vec<Arc<WorkerCounters>>, count: usize) {
    let started = Instant::now();
    let mut warned = false;
    let mut every = tokio::time::interval(std::time::Duration::from_millis(10));
    loop {
        every.tick().await;
        let idle: Vec<usize> = workers.iter().enumerate().filter(|(_, c)| c.polls.get() == 0).map(|(i, _)| i).collect();
        if idle.is_empty() {
            break;
        }
        if !warned && started.elapsed() >= FIRST_POLL_WARN {
            tracing::error!(workers = ?idle, "worker(s) have not polled yet; readiness is not signalled until they do");
            warned = true;
        }
    }
    let status = notify::status_line(&format!("serving: {count} worker(s) polling, REST listening"));
    match notify::notify(&format!("READY=1\n{status}")) {
        Ok(true) => tracing::info!("readiness signalled to the service manager"),
        Ok(false) => {}
        Err(e) => tracing::warn!("cannot notify the service manager (NOTIFY_SOCKET): {e}"),
    }
}

/// SIGHUP: re-reads the config file at `path` and applies it like `PUT /v1/config`;
/// logs what changed, or why nothing did. A file that vanished, cannot be read, is not
/// valid TOML or is refused changes nothing: the running configuration stays, and the
/// error (naming `path` and what is wrong) is logged and returned for `/v1/status`.
pub fn reload(state: &AppState, path: &Path) -> Result<(), String> {
    tracing::info!(config = %path.display(), "SIGHUP received, reloading the configuration");
    let mut running = state.running();
    let generation = running.generation();
    let text = match crate::config::read_file(path) {
        Ok(t) => t,
        Err(e) => {
            let e = format!("{e}");
            tracing::error!(
                config = %path.display(),
                generation,
                "reload failed, the running configuration stays: {e}"
            );
            return Err(e);
        }
    };
    match running.apply_toml(&text, false) {
        Ok(changes) => {
            if changes.is_empty() {
                tracing::info!("reload: no change");
            } else {
                for c in &changes {
                    tracing::info!(op = c.op, path = %c.path, from = %c.from, to = %c.to, "reload: applied");
                }
                tracing::info!(generation = running.generation(), changes = changes.len(), "reload applied");
            }
            warn_unimplemented(running.config());
            Ok(())
        }
        Err(e) => {
            let e = format!("config file {}: {e}", path.display());
            tracing::error!(generation, "reload refused, the running configuration stays: {e}");
            Err(e)
        }
    }
}

/// Logs the validated sections this version does not act on yet
/// ([`Config::not_acted_on`]), at start and after every reload.
fn warn_unimplemented(config: &Config) {
    for w in config.not_acted_on() {
        tracing::warn!(field = %w.field, "{}", w.message);
    }
}

/// 32 random bytes from the kernel's generator (what `getrandom(2)` reads), once per
/// process: the key of the SYN cookies of every worker.
pub fn cookie_secret() -> std::io::Result<CookieSecret> {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(CookieSecret::from_bytes(b))
}

/// Says once per worker where its connection table lives: on reserved 2 MiB pages, or
/// (a warning naming the missing pages and how to reserve them) partly on ordinary
/// memory, where lookups in a large table also pay TLB misses.
fn log_table_memory(worker: usize, m: &rvs_dataplane::conn::TableMemory) {
    use rvs_drivers::hugemem::Fallback;
    match m.fallback {
        Some(f @ Fallback::NoPages { .. }) => tracing::warn!(
            worker,
            huge_pages = m.huge_pages,
            fallback_pages = m.fallback_pages,
            missing_pages = f.missing_pages(),
            "connection table: {} reserved 2 MiB pages, {} pages' worth on ordinary memory (transparent huge \
             pages, best effort): {f}",
            m.huge_pages,
            m.fallback_pages
        ),
        _ => tracing::info!(
            worker,
            huge_pages = m.huge_pages,
            mapped_bytes = m.mapped_bytes,
            "connection table: {} reserved 2 MiB pages{}",
            m.huge_pages,
            match m.fallback {
                Some(f) => format!(" (the rest on ordinary pages: {f})"),
                None => String::new(),
            }
        ),
    }
}

/// One worker's load-balancing sizes and timeouts, with the process's SYN-cookie secret.
pub fn lb_config(config: &Config, cookie_secret: &CookieSecret) -> LbConfig {
    LbConfig {
        conn_capacity: config.dataplane.conn_capacity as usize,
        conn_pages: rvs_drivers::hugemem::PagePolicy::HugeTlb,
        timeouts: services::timeouts(config),
        port_mtu: config.ports.iter().map(|p| p.mtu.unwrap_or(DEFAULT_MTU)).collect(),
        // Set per worker from the ports' RSS setup once they are up (`reply_rss`,
        // `reply_rss6`).
        rss: None,
        rss6: None,
        local_addrs: services::local_addresses(config),
        local_addrs6: services::local_addresses6(config),
        cookie_secret: cookie_secret.clone(),
    }
}

/// The RSS setup Full-NAT replies arrive under, for the local port choice
/// (`rvs_dataplane::conn::owner`): the key and redirection table of the ports holding
/// local addresses, `rss[i]` being port `i`'s as the driver reports it
/// ([`Port::rss_conf`]). `Err` says why there is none, and every Full-NAT reply the NIC
/// puts on another worker's queue then takes the redirect ring: one worker; no local
/// addresses; a port with local addresses whose driver reports no RSS (memif,
/// af_packet, a single queue) or hashes less than the IPv4 TCP/UDP 4-tuple; ports that
/// disagree (one spec serves every local
/// address); or a table naming a queue no worker polls (worker `i` polls queue `i`).
pub fn reply_rss(config: &Config, rss: &[Option<RssConf>]) -> Result<RssSpec, String> {
    reply_rss_of(config, rss, ReplyFamily::V4)
}

/// [`reply_rss`] for IPv6 Full-NAT replies: the ports holding IPv6 local addresses
/// (the IPv6 ones of `local_addresses`), which must hash the IPv6 TCP/UDP 4-tuple
/// ([`RssConf::hashes_ipv6_4tuple`]); the same reasons for none.
pub fn reply_rss6(config: &Config, rss: &[Option<RssConf>]) -> Result<RssSpec, String> {
    reply_rss_of(config, rss, ReplyFamily::V6)
}

/// The address family of the Full-NAT replies a reply RSS spec is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplyFamily {
    V4,
    V6,
}

fn reply_rss_of(config: &Config, rss: &[Option<RssConf>], family: ReplyFamily) -> Result<RssSpec, String> {
    let workers = usize::from(config.dataplane.workers);
    if workers <= 1 {
        return Err("one worker".into());
    }
    let (ip, locals) = match family {
        ReplyFamily::V4 => ("IPv4", "local addresses"),
        ReplyFamily::V6 => ("IPv6", "IPv6 local addresses"),
    };
    let mut found: Option<&RssConf> = None;
    for (i, p) in config.ports.iter().enumerate() {
        let has_locals = match family {
            ReplyFamily::V4 => !p.local_addresses.is_empty(),
            ReplyFamily::V6 => !p.local_addresses6.is_empty(),
        };
        if !has_locals {
            continue;
        }
        let Some(conf) = rss.get(i).and_then(Option::as_ref) else {
            return Err(format!("port `{}` reports no RSS key and redirection table", p.name));
        };
        let hashes = match family {
            ReplyFamily::V4 => conf.hashes_ipv4_4tuple(),
            ReplyFamily::V6 => conf.hashes_ipv6_4tuple(),
        };
        if !hashes {
            return Err(format!(
                "port `{}` does not hash {ip} TCP and UDP on the whole 4-tuple (RSS hash functions {:#x})",
                p.name, conf.hash_functions
            ));
        }
        if conf.reta.iter().any(|&q| usize::from(q) >= workers) {
            return Err(format!("port `{}`'s redirection table names a queue past the {workers} workers", p.name));
        }
        match found {
            Some(f) if f != conf => {
                return Err(format!("port `{}`'s RSS key or table differs from another {locals} port's", p.name))
            }
            _ => found = Some(conf),
        }
    }
    let conf = found.ok_or(format!("no port has {locals}"))?;
    Ok(RssSpec::new(conf.key, &conf.reta, 0))
}

fn pool_cache(config: &Config) -> u32 {
    POOL_CACHE.min(Mempool::MAX_CACHE).min(config.dataplane.mempool_size * 2 / 3)
}

/// Opens, configures and starts every port. On error, the ports already started are
/// stopped and closed as the returned vector's elements drop.
fn bring_up_ports(eal: &Eal, config: &Config, pool: &Mempool) -> anyhow::Result<Vec<LivePort>> {
    let workers = config.dataplane.workers;
    let mut out = Vec::with_capacity(config.ports.len());
    for (i, p) in config.ports.iter().enumerate() {
        let what = || format!("port[{i}] `{}` (device `{}`)", p.name, p.device.as_str());
        let port = Port::open(eal, p.device.as_str()).with_context(what)?;
        let setup = PortSetup {
            rx_queues: workers,
            tx_queues: workers,
            rx_desc: config.dataplane.rx_descriptors,
            tx_desc: config.dataplane.tx_descriptors,
            rss: workers > 1,
            mtu: p.mtu,
        };
        port.configure(&setup, pool).with_context(what)?;
        // The MAC override is used by the workers as the port's address; promiscuous
        // mode makes the NIC deliver frames sent to it.
        port.promiscuous_enable().with_context(what)?;
        port.start().with_context(what)?;
        let mac = p.mac.unwrap_or(MacAddr(port.mac()));
        if !mac.is_unicast() {
            bail!(
                "{}: the device reports MAC {mac}, which cannot be a station's address (virtual devices such as \
                 net_ring have none): set mac = \"02:00:00:00:00:{:02x}\" (any unicast, locally administered MAC) \
                 in this [[port]]",
                what(),
                i + 1
            );
        }
        let link = port.link();
        if link.up {
            tracing::info!(port = %p.name, id = port.id(), %mac, speed_mbps = link.speed_mbps, "port up");
        } else {
            tracing::warn!(port = %p.name, id = port.id(), %mac, "port started but its link is down: check the cable or the interface behind the vdev");
        }
        let exception = match &p.exception {
            Some(e) => Some(bring_up_exception(eal, config, pool, i, p, e, mac)?),
            None => None,
        };
        out.push(LivePort {
            name: p.name.clone(),
            device: p.device.as_str().to_string(),
            address: p.address.to_string(),
            ipv6_addresses: port_ipv6_addresses(p, WireMac(mac.0)),
            mac,
            port: Arc::new(port),
            exception,
        });
    }
    Ok(out)
}

/// Opens, configures and starts port `i`'s kernel exception interface (a `net_tap` port
/// with one queue pair per worker), then gives the kernel side the port's MAC and address
/// and brings it up.
fn bring_up_exception(
    eal: &Eal,
    config: &Config,
    pool: &Mempool,
    i: usize,
    p: &crate::config::Port,
    e: &crate::config::Exception,
    mac: MacAddr,
) -> anyhow::Result<LiveException> {
    let what = || format!("port[{i}] `{}`: kernel exception interface `{}`", p.name, e.iface);
    let workers = config.dataplane.workers;
    let port = Port::open(eal, &crate::exception::device_name(i)).with_context(what)?;
    let setup = PortSetup {
        rx_queues: workers,
        tx_queues: workers,
        rx_desc: config.dataplane.rx_descriptors,
        tx_desc: config.dataplane.tx_descriptors,
        rss: false,
        mtu: p.mtu,
    };
    port.configure(&setup, pool).with_context(what)?;
    port.start().with_context(what)?;
    crate::exception::configure_kernel(p, e, &mac.to_string()).with_context(what)?;
    Ok(LiveException {
        iface: e.iface.clone(),
        rate: e.rate,
        port: Arc::new(port),
        counters: (0..workers).map(|_| Arc::default()).collect(),
    })
}

/// Waits for the workers on `lcores`; returns how many ended with a non-zero status.
fn wait_workers(eal: &Eal, lcores: &[u32]) -> usize {
    let mut failed = 0;
    for &lcore in lcores {
        match eal.wait(lcore) {
            Ok(0) => {}
            Ok(rc) => {
                tracing::error!(lcore, rc, "worker ended with an error");
                failed += 1;
            }
            Err(e) => {
                tracing::error!(lcore, "cannot wait for worker: {e}");
                failed += 1;
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_dataplane::types::{PortId, VipConfig};
    use std::net::Ipv4Addr;

    const BASE: &str = r#"
[dataplane]
workers = 2
eal_args = ["--no-huge", "--no-shconf"]
[[port]]
name = "front"
device = "net_af_packet0,iface=front"
address = "10.10.0.1/24"
[[port]]
name = "back"
device = "0000:03:00.0"
address = "10.20.0.1/24"
local_addresses = ["10.20.0.200"]
mac = "02:00:00:00:00:02"
[[route]]
prefix = "0.0.0.0/0"
via = "10.10.0.254"
[[neighbour]]
address = "10.20.0.11"
mac = "02:00:00:00:00:11"
port = "back"
[[service]]
protocol = "tcp"
address = "10.10.0.100"
port = 80
scheduler = "rr"
[[service]]
protocol = "udp"
address = "10.10.0.100"
port = 53
scheduler = "rr"
[[service]]
protocol = "tcp"
address = "192.0.2.1"
port = 80
scheduler = "rr"
"#;

    fn cfg(text: &str) -> Config {
        Config::from_toml(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(format_cpu_list(&[0, 1]), "0-1");
        assert_eq!(format_cpu_list(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(parse_cpu_list("0-2,5\n"), Some(vec![0, 1, 2, 5]));
        assert_eq!(parse_cpu_list("3"), Some(vec![3]));
        assert_eq!(parse_cpu_list("2-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert!(!allowed_cpus().is_empty());
    }

    #[test]
    fn eal_args_add_lcores_devices() {
        let c = cfg(BASE);
        let a = eal_args(&c, &[0, 1, 2, 3]);
        assert_eq!(
            a,
            ["--no-huge", "--no-shconf", "-l", "0-2", "--vdev", "net_af_packet0,iface=front", "-a", "0000:03:00.0"]
        );
    }

    #[test]
    fn eal_args_two_cpu_box_and_vdev_only() {
        let c = cfg(&BASE
            .replace("workers = 2", "workers = 1")
            .replace("device = \"0000:03:00.0\"", "device = \"net_null0\""));
        let a = eal_args(&c, &[0, 1]);
        assert_eq!(
            a,
            [
                "--no-huge",
                "--no-shconf",
                "-l",
                "0-1",
                "--vdev",
                "net_af_packet0,iface=front",
                "--vdev",
                "net_null0",
                "--no-pci"
            ]
        );
    }

    #[test]
    fn eal_args_respect_user_lcores() {
        let c = cfg(&BASE.replace("\"--no-shconf\"]", "\"--no-shconf\", \"-l\", \"4-6\"]"));
        let a = eal_args(&c, &[0, 1, 2, 3]);
        assert_eq!(a.iter().filter(|x| *x == "-l").count(), 1);
        assert!(a.windows(2).any(|w| w == ["-l", "4-6"]));
    }

    #[test]
    fn worker_configs_follow_the_config() {
        let c = cfg(BASE);
        let macs = [MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2])];
        let w = worker_config(&c, 1, &macs);
        assert_eq!((w.index, w.count), (1, 2));
        assert_eq!(w.ports.len(), 2);
        assert_eq!(w.ports[1].mac, WireMac([2, 0, 0, 0, 0, 2]));
        assert_eq!(w.ports[1].local_addresses, vec![Ipv4Addr::new(10, 20, 0, 200)]);
        // One VIP entry per address, on the port whose prefix holds it, else every port.
        assert_eq!(
            w.vips,
            vec![
                VipConfig { address: Ipv4Addr::new(10, 10, 0, 100), port: Some(PortId(0)) },
                VipConfig { address: Ipv4Addr::new(192, 0, 2, 1), port: None },
            ]
        );
        assert_eq!(w.routes.len(), 1);
        assert_eq!(w.static_neighbours[0].ip, Ipv4Addr::new(10, 20, 0, 11));
        assert_eq!(w.idle, IdlePolicy::Adaptive);
        assert_eq!(w.neigh.reachable_time, c.dataplane.neighbour_timeout);
        w.validate().unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn data_room_grows_with_mtu() {
        let c = cfg(BASE);
        assert_eq!(data_room(&c), Mempool::DEFAULT_DATA_ROOM);
        let c = cfg(&BASE.replace("mac = \"02:00:00:00:00:02\"", "mac = \"02:00:00:00:00:02\"\nmtu = 9000"));
        assert!(data_room(&c) >= 9000 + 14 + Mempool::HEADROOM);
    }

    /// The reply RSS spec comes from the local-address port's key and table, and is
    /// refused (the software owner stays) whenever it would mislead.
    #[test]
    fn reply_rss_follows_the_local_address_port() {
        let c = cfg(BASE);
        // IPv4 TCP and UDP on the 4-tuple (bits 4 and 5).
        let conf = RssConf { key: [0x6d; 40], reta: (0..128).map(|i| i % 2).collect(), hash_functions: 0x30 };
        let spec = reply_rss(&c, &[None, Some(conf.clone())]).unwrap();
        assert_eq!(spec.key(), &conf.key);
        assert_eq!(spec.reta(), &conf.reta[..]);
        // The front port (no local addresses) does not matter; the back one does.
        assert!(reply_rss(&c, &[Some(conf.clone()), None]).unwrap_err().contains("`back` reports no RSS"));
        for hf in [0x10, 0x20, 0x30 | (1 << 63), 0x30 | (1 << 60)] {
            let partial = RssConf { hash_functions: hf, ..conf.clone() };
            assert!(reply_rss(&c, &[None, Some(partial)]).unwrap_err().contains("whole 4-tuple"), "{hf:#x}");
        }
        let wide = RssConf { reta: vec![0, 1, 2], ..conf.clone() };
        assert!(reply_rss(&c, &[None, Some(wide)]).unwrap_err().contains("past the 2 workers"));
        let one = cfg(&BASE.replace("workers = 2", "workers = 1"));
        assert_eq!(reply_rss(&one, &[None, Some(conf.clone())]).unwrap_err(), "one worker");
        let both = cfg(&BASE.replace(
            "device = \"net_af_packet0,iface=front\"",
            "device = \"net_af_packet0,iface=front\"\nlocal_addresses = [\"10.10.0.200\"]",
        ));
        let other = RssConf { key: [0x5a; 40], ..conf.clone() };
        assert!(reply_rss(&both, &[Some(other), Some(conf.clone())]).unwrap_err().contains("differs"));
        assert!(reply_rss(&both, &[Some(conf.clone()), Some(conf.clone())]).is_ok());
        let none = cfg(&BASE.replace("local_addresses = [\"10.20.0.200\"]", ""));
        assert_eq!(reply_rss(&none, &[None, None]).unwrap_err(), "no port has local addresses");
    }

    /// The IPv6 reply spec: the ports with IPv6 local addresses, hashing the IPv6
    /// TCP/UDP 4-tuple (bits 10 and 11); an IPv4-only hash does not do.
    #[test]
    fn reply_rss6_follows_the_ipv6_local_address_port() {
        let c = cfg(BASE);
        let v4 = RssConf { key: [0x6d; 40], reta: (0..128).map(|i| i % 2).collect(), hash_functions: 0x30 };
        assert_eq!(reply_rss6(&c, &[None, Some(v4.clone())]).unwrap_err(), "no port has IPv6 local addresses");
        let c6 = cfg(&BASE.replace(
            "local_addresses = [\"10.20.0.200\"]",
            "local_addresses = [\"10.20.0.200\", \"2001:db8:20::200\"]\nipv6_addresses = [\"2001:db8:20::1/64\"]",
        ));
        let err = reply_rss6(&c6, &[None, Some(v4.clone())]).unwrap_err();
        assert!(err.contains("does not hash IPv6 TCP and UDP"), "{err}");
        let both = RssConf { hash_functions: 0x30 | 0xc00, ..v4.clone() };
        let spec = reply_rss6(&c6, &[None, Some(both.clone())]).unwrap();
        assert_eq!(spec.key(), &both.key);
        assert_eq!(spec.reta(), &both.reta[..]);
        // The IPv4 spec of the same port is unchanged by it.
        assert!(reply_rss(&c6, &[None, Some(both.clone())]).is_ok());
        let cut = RssConf { hash_functions: 0x30 | 0xc00 | (1 << 63), ..both.clone() };
        assert!(reply_rss6(&c6, &[None, Some(cut)]).unwrap_err().contains("whole 4-tuple"));
        assert!(reply_rss6(&c6, &[Some(both), None]).unwrap_err().contains("`back` reports no RSS"));
    }
}
