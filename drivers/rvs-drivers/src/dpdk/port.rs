//! Ethernet ports ([`Port`]) and one worker's queue pair on a port ([`EthQueue`]).
//!
//! Lifecycle: [`Port::open`] by device name → [`Port::configure`] → [`Port::start`] →
//! [`Port::queue`] once per worker → (workers poll) → queues dropped → [`Port::stop`] /
//! [`Port::close`]. Dropping the last of the `Port` and its queues stops and closes the
//! device.
//!
//! Threads: `Port` is `Send + Sync` and its methods take `&self`, so the control thread
//! can read [`PortInfo`] (MAC, link, counters) while workers poll. All control calls on
//! one port are serialised by a mutex (ethdev's control API is not thread-safe), never
//! by anything the workers touch: an [`EthQueue`] only calls `rte_eth_rx_burst` /
//! `rte_eth_tx_burst` on its own queue, which DPDK allows concurrently with reading
//! stats and link state (testpmd and l3fwd do the same).
//!
//! Soundness: a queue handle exists only while the port is started, each queue id is
//! handed out once, and `stop`/`configure`/`close` are refused while any handle exists.
//! So no burst call can race with the queue being torn down.

use std::ffi::{CStr, CString};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use rvs_dpdk_sys as sys;

use super::eal::{Eal, EalToken};
use super::error::{libc_errno, ret_reason, DpdkError};
use super::mbuf::Mbuf;
use super::mempool::Mempool;
use super::mutex::lock;
use super::quiesce::Checkpoint;
use crate::traits::{Burst, LinkStatus, PortInfo, PortQueue, PortStats, BURST_SIZE};

/// Ports opened by this process (ethdev port ids), so that one device has one owner.
static OPEN_PORTS: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// How to set a port up: one RX and one TX queue per worker, ring sizes, RSS and MTU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSetup {
    /// RX queues (one per worker).
    pub rx_queues: u16,
    /// TX queues (one per worker).
    pub tx_queues: u16,
    /// RX descriptors per queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// TX descriptors per queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// Spread flows over the RX queues by an RSS hash of IP addresses and TCP/UDP
    /// ports, when the device supports it. Unsupported RSS is logged, not an error:
    /// rvs's correctness does not depend on NIC steering.
    pub rss: bool,
    /// MTU to set (`None`: the device default, normally 1500).
    pub mtu: Option<u16>,
}

impl Default for PortSetup {
    /// One queue pair, 1024 descriptors each way, RSS on, default MTU.
    fn default() -> Self {
        PortSetup { rx_queues: 1, tx_queues: 1, rx_desc: 1024, tx_desc: 1024, rss: true, mtu: None }
    }
}

/// A port's RSS setup read back from the driver ([`Port::rss_conf`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssConf {
    /// The Toeplitz key (its first 40 bytes; enough for an IPv6 4-tuple).
    pub key: [u8; 40],
    /// The redirection table: entry `hash % len` is the RX queue of a packet.
    pub reta: Vec<u16>,
    /// The `RTE_ETH_RSS_*` flow types the port hashes.
    pub hash_functions: u64,
}

/// `RTE_ETH_RSS_NONFRAG_IPV4_TCP` (rte_ethdev.h, DPDK 22.11: bit 4).
const RSS_NONFRAG_IPV4_TCP: u64 = 1 << 4;
/// `RTE_ETH_RSS_NONFRAG_IPV4_UDP` (bit 5).
const RSS_NONFRAG_IPV4_UDP: u64 = 1 << 5;
/// `RTE_ETH_RSS_NONFRAG_IPV6_TCP` (bit 10).
const RSS_NONFRAG_IPV6_TCP: u64 = 1 << 10;
/// `RTE_ETH_RSS_NONFRAG_IPV6_UDP` (bit 11).
const RSS_NONFRAG_IPV6_UDP: u64 = 1 << 11;
/// The modifiers that shorten the hash input: `RTE_ETH_RSS_L3_PRE96` (bit 52) up to
/// `RTE_ETH_RSS_L3_SRC_ONLY` (bit 63), `L4_*_ONLY` among them.
const RSS_INPUT_MODIFIERS: u64 = 0xfff0_0000_0000_0000;

impl RssConf {
    /// Whether the port hashes IPv4 TCP and UDP packets on their whole 4-tuple (source and
    /// destination address and port), which is what a software Toeplitz over that tuple
    /// reproduces: both flow types on, and none of the modifiers that hash only a part
    /// of it (`L3_SRC_ONLY`, `L4_DST_ONLY`, address prefixes, ...).
    pub fn hashes_ipv4_4tuple(&self) -> bool {
        let both = RSS_NONFRAG_IPV4_TCP | RSS_NONFRAG_IPV4_UDP;
        self.hash_functions & both == both && self.hash_functions & RSS_INPUT_MODIFIERS == 0
    }

    /// The same for IPv6: TCP and UDP over IPv6 hashed on source address, destination
    /// address, source port and destination port (36 bytes, Microsoft RSS's IPv6 4-tuple;
    /// `NONFRAG_IPV6_TCP` and `_UDP` on, no input modifier). The port asks for them with
    /// `RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP` when the device offers them. The `_EX` types
    /// (bits 16 and 17, also asked for) hash the same input for packets without the
    /// extension headers they look into, which Full-NAT replies do not carry.
    pub fn hashes_ipv6_4tuple(&self) -> bool {
        let both = RSS_NONFRAG_IPV6_TCP | RSS_NONFRAG_IPV6_UDP;
        self.hash_functions & both == both && self.hash_functions & RSS_INPUT_MODIFIERS == 0
    }
}

/// What the device says about itself (`rte_eth_dev_info_get`), in short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevInfo {
    /// PMD name, e.g. `net_af_packet`, `net_ring`, `net_ixgbe`.
    pub driver: String,
    /// Maximum RX queues.
    pub max_rx_queues: u16,
    /// Maximum TX queues.
    pub max_tx_queues: u16,
    /// RSS hash types the device supports (`RTE_ETH_RSS_*` bits); 0 = no RSS.
    pub rss_offloads: u64,
    /// RX offload capabilities (`RTE_ETH_RX_OFFLOAD_*` bits).
    pub rx_offload_capa: u64,
    /// Smallest MTU accepted.
    pub min_mtu: u16,
    /// Largest MTU accepted.
    pub max_mtu: u16,
    /// Largest frame the device can receive.
    pub max_rx_pktlen: u32,
}

/// An ethdev port owned by this process.
#[derive(Debug)]
pub struct Port {
    shared: Arc<PortShared>,
}

#[derive(Debug)]
struct PortShared {
    id: u16,
    name: String,
    /// The kernel interface behind a socket-based vdev (`net_af_xdp*` / `net_af_packet*`
    /// with `iface=`), whose carrier [`PortInfo::link`] also reads.
    kernel_iface: Option<String>,
    state: Mutex<PortState>,
    _eal: Arc<EalToken>,
}

#[derive(Debug, Default)]
struct PortState {
    /// Set by a successful `configure`.
    configured: Option<Configured>,
    started: bool,
    closed: bool,
    /// Queue pair ids handed out as `EthQueue`s.
    taken: Vec<bool>,
}

#[derive(Debug)]
struct Configured {
    rx_queues: u16,
    tx_queues: u16,
    rss: bool,
    /// The RX queues allocate from this pool: it must outlive the port.
    _pool: Mempool,
}

impl PortState {
    fn queues_in_use(&self) -> usize {
        self.taken.iter().filter(|t| **t).count()
    }
}

/// The kernel interface a socket-based vdev (`net_af_xdp…` or `net_af_packet…`) sits on,
/// from its `iface=` argument: `net_af_xdp0,iface=front` → `front`. `None` for other
/// devices.
pub fn kernel_iface(device: &str) -> Option<String> {
    let mut parts = device.split(',');
    let name = parts.next()?.trim();
    if !(name.starts_with("net_af_xdp") || name.starts_with("net_af_packet")) {
        return None;
    }
    parts
        .filter_map(|kv| kv.trim().strip_prefix("iface="))
        .map(str::to_string)
        .find(|i| !i.is_empty() && !i.contains('/') && !i.starts_with('.'))
}

/// The carrier of kernel interface `iface` (`/sys/class/net/IFACE/carrier`: 1 up, 0 down;
/// unreadable, e.g. while the interface is administratively down, counts as down unless the
/// file is missing altogether, in which case the PMD's word stands).
fn kernel_carrier(iface: &str) -> Option<bool> {
    let path = format!("/sys/class/net/{iface}/carrier");
    match std::fs::read_to_string(&path) {
        Ok(s) => Some(s.trim() == "1"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(_) => Some(false),
    }
}

/// The ethdev name of a device string: the part before the first comma (a vdev's
/// name, `net_af_packet0,iface=front` → `net_af_packet0`), and short PCI addresses
/// (`00:04.0`) completed with domain 0000 as ethdev names them.
pub fn device_name(device: &str) -> String {
    let name = device.split(',').next().unwrap_or("").trim();
    let b = name.as_bytes();
    let short_pci = b.len() == 7
        && b[2] == b':'
        && b[5] == b'.'
        && b[..2].iter().chain(&b[3..5]).all(u8::is_ascii_hexdigit)
        && b[6].is_ascii_digit();
    if short_pci {
        format!("0000:{name}")
    } else {
        name.to_string()
    }
}

impl Port {
    /// Finds the port for `device` (a vdev string such as `net_af_packet0,iface=front`,
    /// of which the name before the comma is used, or a PCI address) and takes
    /// ownership of it. The device must have been probed by EAL (`--vdev` / `-a`).
    pub fn open(eal: &Eal, device: &str) -> Result<Port, DpdkError> {
        let name = device_name(device);
        if name.is_empty() {
            return Err(DpdkError::InvalidArgument { what: "device", value: device.to_string(), why: "it is empty" });
        }
        let cname = CString::new(name.as_str()).map_err(|_| DpdkError::InvalidArgument {
            what: "device",
            value: device.escape_default().to_string(),
            why: "it contains a NUL byte",
        })?;
        let mut id: u16 = 0;
        // SAFETY: EAL is up (`&Eal`); cname is a valid C string; id is a valid out pointer.
        let rc = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if rc != 0 {
            return Err(DpdkError::DeviceNotFound(name));
        }
        let mut open = lock(&OPEN_PORTS);
        if open.contains(&id) {
            return Err(DpdkError::DeviceInUse(name));
        }
        open.push(id);
        drop(open);
        tracing::debug!(device = %name, port = id, "port opened");
        Ok(Port {
            shared: Arc::new(PortShared {
                id,
                name,
                kernel_iface: kernel_iface(device),
                state: Mutex::new(PortState::default()),
                _eal: eal.token(),
            }),
        })
    }

    /// The ethdev port id.
    pub fn id(&self) -> u16 {
        self.shared.id
    }

    /// The device name (as given to [`Port::open`], before any comma).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    fn err(&self, op: &'static str, ret: i32) -> DpdkError {
        DpdkError::Port { name: self.shared.name.clone(), port: self.shared.id, op, reason: ret_reason(ret) }
    }

    fn state_err(&self, what: impl Into<String>) -> DpdkError {
        DpdkError::PortState { name: self.shared.name.clone(), what: what.into() }
    }

    /// The device's capabilities.
    pub fn dev_info(&self) -> Result<DevInfo, DpdkError> {
        let _g = lock(&self.shared.state);
        self.dev_info_locked()
    }

    fn dev_info_locked(&self) -> Result<DevInfo, DpdkError> {
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: valid port id (owned by us, not closed while `self` exists); info is
        // a valid out pointer; control calls are serialised by the state lock.
        let rc = unsafe { sys::rte_eth_dev_info_get(self.shared.id, &mut info) };
        if rc != 0 {
            return Err(self.err("rte_eth_dev_info_get", rc));
        }
        let driver = if info.driver_name.is_null() {
            "unknown".to_string()
        } else {
            // SAFETY: driver_name points to the PMD's static NUL-terminated name.
            unsafe { CStr::from_ptr(info.driver_name) }.to_string_lossy().into_owned()
        };
        Ok(DevInfo {
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            rss_offloads: info.flow_type_rss_offloads,
            rx_offload_capa: info.rx_offload_capa,
            min_mtu: info.min_mtu,
            max_mtu: info.max_mtu,
            max_rx_pktlen: info.max_rx_pktlen,
        })
    }

    /// Configures the port: queue counts, RSS on IPv4/IPv6 + TCP/UDP when asked for and
    /// supported (masked with what the device offers; unsupported is logged, not an
    /// error), RX checksum offloads when supported, the MTU, and the RX/TX rings, whose
    /// RX buffers come from `pool`. Scatter is never enabled, so received packets fit
    /// one mbuf: size the pool's data room for the MTU.
    ///
    /// Refused while the port is started.
    pub fn configure(&self, setup: &PortSetup, pool: &Mempool) -> Result<(), DpdkError> {
        let mut st = lock(&self.shared.state);
        if st.closed {
            return Err(self.state_err("is closed"));
        }
        if st.started {
            return Err(self.state_err("is started: stop it before configuring it again"));
        }
        if setup.rx_queues == 0 || setup.tx_queues == 0 {
            return Err(self.state_err("needs at least one RX and one TX queue"));
        }
        let info = self.dev_info_locked()?;
        if setup.rx_queues > info.max_rx_queues || setup.tx_queues > info.max_tx_queues {
            return Err(DpdkError::TooManyQueues {
                name: self.shared.name.clone(),
                driver: info.driver,
                rx: setup.rx_queues,
                tx: setup.tx_queues,
                max_rx: info.max_rx_queues,
                max_tx: info.max_tx_queues,
            });
        }

        let mut conf = sys::rte_eth_conf::default();
        let mut rss = false;
        if setup.rss {
            // SAFETY: returns a constant.
            let wanted = unsafe { sys::rvs_rte_eth_rss_ip_l4() };
            let hf = wanted & info.rss_offloads;
            if hf != 0 {
                conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
                // A null key selects the driver's default key.
                conf.rx_adv_conf.rss_conf.rss_key = std::ptr::null_mut();
                conf.rx_adv_conf.rss_conf.rss_hf = hf;
                rss = true;
            } else {
                tracing::info!(
                    port = %self.shared.name,
                    driver = %info.driver,
                    rx_queues = setup.rx_queues,
                    "RSS is not supported by this driver; RX hashing is off (workers redirect flows they do not own)"
                );
            }
        }
        if let Some(mtu) = setup.mtu {
            if mtu < info.min_mtu || mtu > info.max_mtu {
                return Err(DpdkError::MtuOutOfRange {
                    name: self.shared.name.clone(),
                    mtu,
                    min: info.min_mtu,
                    max: info.max_mtu,
                });
            }
            conf.rxmode.mtu = u32::from(mtu);
        }
        // SAFETY: returns a constant.
        conf.rxmode.offloads = unsafe { sys::rvs_rte_eth_rx_offload_checksum() } & info.rx_offload_capa;

        // The old configuration (and its pool) is dropped when this function returns,
        // after DPDK released the old queues and their mbufs.
        let _old = st.configured.take();
        st.taken.clear();
        let id = self.shared.id;
        // SAFETY: valid port id, stopped (checked above); conf is fully initialised.
        let rc = unsafe { sys::rte_eth_dev_configure(id, setup.rx_queues, setup.tx_queues, &conf) };
        if rc != 0 {
            return Err(self.err("rte_eth_dev_configure", rc));
        }
        let (mut nrx, mut ntx) = (setup.rx_desc.max(1), setup.tx_desc.max(1));
        // SAFETY: valid, configured port; both pointers are valid in/out values.
        let rc = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nrx, &mut ntx) };
        if rc != 0 {
            return Err(self.err("rte_eth_dev_adjust_nb_rx_tx_desc", rc));
        }
        // SAFETY: valid port id. -1 (SOCKET_ID_ANY) for "unknown", which queue setup
        // accepts (as unsigned) to mean "any socket".
        let socket = unsafe { sys::rte_eth_dev_socket_id(id) } as u32;
        for q in 0..setup.rx_queues {
            // SAFETY: configured port, q < rx_queues; a null rx_conf selects the
            // driver's defaults; the pool is alive and is kept alive by `Configured`.
            let rc = unsafe { sys::rte_eth_rx_queue_setup(id, q, nrx, socket, std::ptr::null(), pool.as_ptr()) };
            if rc != 0 {
                return Err(self.err("rte_eth_rx_queue_setup", rc));
            }
        }
        for q in 0..setup.tx_queues {
            // SAFETY: configured port, q < tx_queues; null tx_conf = driver defaults.
            let rc = unsafe { sys::rte_eth_tx_queue_setup(id, q, ntx, socket, std::ptr::null()) };
            if rc != 0 {
                return Err(self.err("rte_eth_tx_queue_setup", rc));
            }
        }
        tracing::info!(
            port = %self.shared.name,
            driver = %info.driver,
            rx_queues = setup.rx_queues,
            tx_queues = setup.tx_queues,
            rx_desc = nrx,
            tx_desc = ntx,
            rss,
            "port configured"
        );
        st.taken = vec![false; usize::from(setup.rx_queues.min(setup.tx_queues))];
        st.configured =
            Some(Configured { rx_queues: setup.rx_queues, tx_queues: setup.tx_queues, rss, _pool: pool.clone() });
        Ok(())
    }

    /// Starts the port (`rte_eth_dev_start`). Starting a started port does nothing.
    pub fn start(&self) -> Result<(), DpdkError> {
        let mut st = lock(&self.shared.state);
        if st.configured.is_none() {
            return Err(self.state_err("is not configured: configure it before starting it"));
        }
        if st.started {
            return Ok(());
        }
        // SAFETY: valid, configured port; control calls serialised by the lock.
        let rc = unsafe { sys::rte_eth_dev_start(self.shared.id) };
        if rc != 0 {
            return Err(self.err("rte_eth_dev_start", rc));
        }
        st.started = true;
        Ok(())
    }

    /// Stops the port (`rte_eth_dev_stop`). Refused while workers hold queues.
    pub fn stop(&self) -> Result<(), DpdkError> {
        let mut st = lock(&self.shared.state);
        if !st.started {
            return Ok(());
        }
        let held = st.queues_in_use();
        if held > 0 {
            return Err(self.state_err(format!("{held} queue(s) are still held by workers: stop the workers first")));
        }
        // SAFETY: valid, started port with no queue handle alive.
        let rc = unsafe { sys::rte_eth_dev_stop(self.shared.id) };
        if rc != 0 {
            return Err(self.err("rte_eth_dev_stop", rc));
        }
        st.started = false;
        Ok(())
    }

    /// Stops and closes the port (`rte_eth_dev_close`), releasing the device. Refused
    /// while workers hold queues (the port then closes when the last queue is dropped).
    pub fn close(self) -> Result<(), DpdkError> {
        self.stop()?;
        let mut st = lock(&self.shared.state);
        if st.closed {
            return Ok(());
        }
        st.closed = true;
        // SAFETY: valid, stopped port; nothing else refers to it (queues are none, the
        // Port is consumed), and `closed` stops the Drop from closing it twice.
        let rc = unsafe { sys::rte_eth_dev_close(self.shared.id) };
        if rc != 0 {
            return Err(self.err("rte_eth_dev_close", rc));
        }
        Ok(())
    }

    /// Sets the link administratively up or down (`rte_eth_dev_set_link_up`/`_down`), as
    /// `ip link set dev X up|down` does; [`PortInfo::link`] reports the result. Queues stay
    /// valid: workers go on polling a port whose link is down (they receive nothing from a
    /// real NIC). A driver without the feature answers an error naming it.
    pub fn set_link(&self, up: bool) -> Result<(), DpdkError> {
        let st = lock(&self.shared.state);
        if !st.started {
            return Err(self.state_err("is not started: start it before setting its link"));
        }
        let (rc, call) = if up {
            // SAFETY: valid, started port id; control calls serialised by the lock.
            (unsafe { sys::rte_eth_dev_set_link_up(self.shared.id) }, "rte_eth_dev_set_link_up")
        } else {
            // SAFETY: valid, started port id; control calls serialised by the lock.
            (unsafe { sys::rte_eth_dev_set_link_down(self.shared.id) }, "rte_eth_dev_set_link_down")
        };
        if rc != 0 {
            return Err(self.err(call, rc));
        }
        Ok(())
    }

    /// Receives all frames regardless of destination MAC. Drivers without the feature
    /// (`ENOTSUP`) are fine: they deliver everything already or cannot filter.
    pub fn promiscuous_enable(&self) -> Result<(), DpdkError> {
        let _g = lock(&self.shared.state);
        // SAFETY: valid port id; control calls serialised by the lock.
        let rc = unsafe { sys::rte_eth_promiscuous_enable(self.shared.id) };
        if rc == -libc_errno::ENOTSUP {
            tracing::debug!(port = %self.shared.name, "promiscuous mode not supported by the driver; ignored");
            return Ok(());
        }
        if rc != 0 {
            return Err(self.err("rte_eth_promiscuous_enable", rc));
        }
        Ok(())
    }

    /// True when the last `configure` turned RSS on.
    pub fn rss_enabled(&self) -> bool {
        lock(&self.shared.state).configured.as_ref().is_some_and(|c| c.rss)
    }

    /// The port's RSS hash key and redirection table as the driver has them now, when RSS
    /// is on (see [`Port::rss_enabled`]) and the driver reports both (a key of at least 40
    /// bytes, whose first 40 are the Toeplitz key for IPv4/IPv6 4-tuples, and a non-empty
    /// table): `rte_eth_dev_rss_hash_conf_get` and `rte_eth_dev_rss_reta_query`. `None`
    /// otherwise (single queue, or a PMD without RSS such as memif and af_packet): the
    /// caller then keeps its software owner choice.
    pub fn rss_conf(&self) -> Option<RssConf> {
        if !self.rss_enabled() {
            return None;
        }
        let info = self.dev_info_raw().ok()?;
        let _g = lock(&self.shared.state);
        let key_len = usize::from(info.hash_key_size).max(40);
        let mut key = vec![0u8; key_len];
        let mut conf = sys::rte_eth_rss_conf { rss_key: key.as_mut_ptr(), rss_key_len: key_len as u8, rss_hf: 0 };
        // SAFETY: valid port id; `conf.rss_key` points to `key_len` writable bytes, the
        // length the driver reports for its key (DPDK copies at most `hash_key_size`);
        // control calls are serialised by the state lock.
        let rc = unsafe { sys::rte_eth_dev_rss_hash_conf_get(self.shared.id, &mut conf) };
        if rc != 0 || conf.rss_hf == 0 || info.hash_key_size < 40 {
            tracing::debug!(port = %self.shared.name, rc, key_len = info.hash_key_size, "RSS key not readable");
            return None;
        }
        let size = usize::from(info.reta_size);
        if size == 0 || size % 64 != 0 {
            tracing::debug!(port = %self.shared.name, size, "RSS redirection table not readable");
            return None;
        }
        let mut groups = vec![sys::rte_eth_rss_reta_entry64 { mask: u64::MAX, reta: [0; 64] }; size / 64];
        // SAFETY: valid port id; `groups` holds `reta_size` entries in groups of 64 with
        // every mask bit set (query all), as `rte_eth_dev_rss_reta_query` requires;
        // control calls are serialised by the state lock.
        let rc = unsafe { sys::rte_eth_dev_rss_reta_query(self.shared.id, groups.as_mut_ptr(), info.reta_size) };
        if rc != 0 {
            tracing::debug!(port = %self.shared.name, rc, "rte_eth_dev_rss_reta_query failed");
            return None;
        }
        let mut k = [0u8; 40];
        k.copy_from_slice(&key[..40]);
        Some(RssConf { key: k, reta: groups.iter().flat_map(|g| g.reta).collect(), hash_functions: conf.rss_hf })
    }

    fn dev_info_raw(&self) -> Result<sys::rte_eth_dev_info, DpdkError> {
        let _g = lock(&self.shared.state);
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: valid port id; info is a valid out pointer; control calls serialised.
        let rc = unsafe { sys::rte_eth_dev_info_get(self.shared.id, &mut info) };
        if rc != 0 {
            return Err(self.err("rte_eth_dev_info_get", rc));
        }
        Ok(info)
    }

    /// RX and TX queue counts of the last `configure`, if any.
    pub fn queue_counts(&self) -> Option<(u16, u16)> {
        lock(&self.shared.state).configured.as_ref().map(|c| (c.rx_queues, c.tx_queues))
    }

    /// Resets the device counters (`rte_eth_stats_reset`).
    pub fn reset_stats(&self) -> Result<(), DpdkError> {
        let _g = lock(&self.shared.state);
        // SAFETY: valid port id; control calls serialised by the lock.
        let rc = unsafe { sys::rte_eth_stats_reset(self.shared.id) };
        if rc != 0 {
            return Err(self.err("rte_eth_stats_reset", rc));
        }
        Ok(())
    }

    /// Hands out RX/TX queue pair `queue` (RX queue `queue` and TX queue `queue`) for
    /// one worker. Each pair is handed out once at a time; the port must be started.
    pub fn queue(&self, queue: u16) -> Result<EthQueue, DpdkError> {
        let mut st = lock(&self.shared.state);
        if !st.started {
            return Err(self.state_err("is not started: start it before taking queues"));
        }
        let pairs = st.taken.len();
        let Some(slot) = st.taken.get_mut(usize::from(queue)) else {
            return Err(self.state_err(format!(
                "has no queue pair {queue} (configured with {pairs}; ask for more queues in PortSetup)"
            )));
        };
        if *slot {
            return Err(self.state_err(format!("queue pair {queue} is already in use by another worker")));
        }
        *slot = true;
        Ok(EthQueue {
            port_id: self.shared.id,
            queue_id: queue,
            shared: Arc::clone(&self.shared),
            multiseg_dropped: 0,
            checkpoint: Checkpoint::register(),
        })
    }
}

impl PortInfo for Port {
    fn mac(&self) -> [u8; 6] {
        let _g = lock(&self.shared.state);
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: valid port id; addr is a valid out pointer.
        let rc = unsafe { sys::rte_eth_macaddr_get(self.shared.id, &mut addr) };
        if rc == 0 {
            addr.addr_bytes
        } else {
            [0; 6]
        }
    }

    fn link(&self) -> LinkStatus {
        let _g = lock(&self.shared.state);
        let mut link = sys::rte_eth_link::default();
        // SAFETY: valid port id; link is a valid out pointer; the nowait variant never
        // blocks.
        let rc = unsafe { sys::rte_eth_link_get_nowait(self.shared.id, &mut link) };
        if rc != 0 {
            return LinkStatus::default();
        }
        // net_af_xdp and net_af_packet never update their link (22.11's eth_link_update
        // returns without reading anything), so a cable pull or a veth peer going down
        // would go unseen: read the kernel interface's carrier as well.
        let carrier = self.shared.kernel_iface.as_deref().and_then(kernel_carrier).unwrap_or(true);
        LinkStatus {
            up: carrier && u32::from(link.link_status()) == sys::RTE_ETH_LINK_UP,
            speed_mbps: if link.link_speed == sys::RTE_ETH_SPEED_NUM_UNKNOWN { 0 } else { link.link_speed },
            full_duplex: u32::from(link.link_duplex()) == sys::RTE_ETH_LINK_FULL_DUPLEX,
        }
    }

    fn stats(&self) -> PortStats {
        let _g = lock(&self.shared.state);
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid port id; s is a valid out pointer.
        let rc = unsafe { sys::rte_eth_stats_get(self.shared.id, &mut s) };
        if rc != 0 {
            return PortStats::default();
        }
        PortStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }
}

impl Drop for PortShared {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !st.closed {
            // No Port and no EthQueue is left, so nothing can use the device any more.
            if st.started {
                // SAFETY: valid, started port with no users left.
                let rc = unsafe { sys::rte_eth_dev_stop(self.id) };
                if rc != 0 {
                    tracing::warn!(port = %self.name, "rte_eth_dev_stop failed: {}", ret_reason(rc));
                }
            }
            // SAFETY: valid, stopped port with no users left; closed exactly once.
            let rc = unsafe { sys::rte_eth_dev_close(self.id) };
            if rc != 0 {
                tracing::warn!(port = %self.name, "rte_eth_dev_close failed: {}", ret_reason(rc));
            }
        }
        lock(&OPEN_PORTS).retain(|&p| p != self.id);
    }
}

/// One worker's RX queue and TX queue (same id) on one port. Obtained from
/// [`Port::queue`]; keeps the port open and started while it lives.
#[derive(Debug)]
pub struct EthQueue {
    port_id: u16,
    queue_id: u16,
    shared: Arc<PortShared>,
    multiseg_dropped: u64,
    /// Acknowledges unmap grace periods between bursts (see `quiesce`).
    checkpoint: Checkpoint,
}

impl EthQueue {
    /// The ethdev port id.
    pub fn port_id(&self) -> u16 {
        self.port_id
    }

    /// The RX and TX queue id.
    pub fn queue_id(&self) -> u16 {
        self.queue_id
    }

    /// Chained (multi-segment) mbufs received and freed because rvs handles
    /// single-segment frames only. Non-zero means a driver delivered frames larger
    /// than the pool's data room: raise the data room or lower the MTU.
    pub fn multiseg_dropped(&self) -> u64 {
        self.multiseg_dropped
    }
}

impl PortQueue for EthQueue {
    type Buf = Mbuf;

    #[inline]
    fn rx_burst(&mut self, out: &mut Burst<Mbuf>) -> usize {
        self.checkpoint.pass();
        let room = out.remaining_capacity().min(BURST_SIZE);
        if room == 0 {
            return 0;
        }
        let mut raw = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST_SIZE];
        // SAFETY: the port is started and stays so while this queue exists; queue_id is
        // a configured RX queue used by this EthQueue only; `raw` has room for `room`
        // (≤ 32) pointers.
        let n = unsafe { sys::rvs_rte_eth_rx_burst(self.port_id, self.queue_id, raw.as_mut_ptr(), room as u16) };
        let before = out.len();
        for &m in &raw[..usize::from(n).min(room)] {
            let Some(m) = NonNull::new(m) else { continue };
            // SAFETY: rx_burst hands us ownership of each returned mbuf, allocated from
            // the port's pool (kept alive by the port). A chained mbuf is only dropped
            // (rte_pktmbuf_free frees the whole chain), never used as a frame.
            let mbuf = unsafe { Mbuf::from_raw(m) };
            if mbuf.nb_segs() != 1 {
                self.multiseg_dropped += 1;
                continue;
            }
            out.push(mbuf);
        }
        out.len() - before
    }

    #[inline]
    fn tx_burst(&mut self, pkts: &mut Burst<Mbuf>) -> usize {
        self.checkpoint.pass();
        let n = pkts.len();
        if n == 0 {
            return 0;
        }
        // SAFETY: `Mbuf` is repr(transparent) over NonNull<rte_mbuf>, so the burst's
        // buffer is an array of `n` (≤ 32) valid mbuf pointers. The port is started and
        // the TX queue is ours alone. The driver takes ownership of the first `sent`
        // and does not touch the rest.
        let sent = unsafe {
            sys::rvs_rte_eth_tx_burst(
                self.port_id,
                self.queue_id,
                pkts.as_mut_ptr().cast::<*mut sys::rte_mbuf>(),
                n as u16,
            )
        };
        let sent = usize::from(sent).min(n);
        // The NIC owns the accepted mbufs now: remove them without freeing.
        for m in pkts.drain(..sent) {
            let _ = m.into_raw();
        }
        sent
    }
}

impl Drop for EthQueue {
    fn drop(&mut self) {
        let mut st = lock(&self.shared.state);
        if let Some(slot) = st.taken.get_mut(usize::from(self.queue_id)) {
            *slot = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{device_name, kernel_iface};

    #[test]
    fn kernel_ifaces() {
        assert_eq!(kernel_iface("net_af_xdp0,iface=front").as_deref(), Some("front"));
        assert_eq!(kernel_iface("net_af_packet1,qpairs=1,iface=back").as_deref(), Some("back"));
        assert_eq!(kernel_iface("net_memif0,role=server,id=0"), None);
        assert_eq!(kernel_iface("net_af_xdp0"), None);
        assert_eq!(kernel_iface("net_af_xdp0,iface=../x"), None);
        assert_eq!(kernel_iface("0000:00:04.0"), None);
    }

    #[test]
    fn device_names() {
        assert_eq!(device_name("net_af_packet0,iface=front"), "net_af_packet0");
        assert_eq!(device_name("net_ring0"), "net_ring0");
        assert_eq!(device_name(" net_memif0 ,role=server"), "net_memif0");
        assert_eq!(device_name("0000:00:04.0"), "0000:00:04.0");
        assert_eq!(device_name("00:04.0"), "0000:00:04.0");
        assert_eq!(device_name("0a:1f.7,rx_queues=2"), "0000:0a:1f.7");
        assert_eq!(device_name(""), "");
        assert_eq!(device_name("zz:04.0"), "zz:04.0");
    }
}
