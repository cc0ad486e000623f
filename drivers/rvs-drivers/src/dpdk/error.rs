//! [`DpdkError`]: everything that can go wrong in the DPDK driver, worded for the
//! operator who reads it in rvsd's log. Each message says what is wrong and, where
//! there is one, the fix.

use std::ffi::CStr;

use rvs_dpdk_sys as sys;

/// An error from the DPDK driver. The `Display` text is the operator-facing message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpdkError {
    /// `Eal::init` was called a second time in this process.
    #[error("the DPDK EAL was already initialised in this process; it can be initialised only once (keep the first `Eal` and pass it around)")]
    EalAlreadyInitialised,

    /// `rte_eal_init` failed.
    #[error("DPDK EAL initialisation failed with arguments `{args}`: {reason} (EAL logged the details above)")]
    EalInit {
        /// The EAL command line, program name included.
        args: String,
        /// `rte_strerror(rte_errno)` and a hint.
        reason: String,
    },

    /// `Eal::cleanup` found DPDK objects still alive.
    #[error("DPDK EAL cleanup skipped: {0}")]
    EalBusy(String),

    /// A string handed to DPDK contains a NUL byte or is otherwise unusable.
    #[error("invalid {what} `{value}`: {why}")]
    InvalidArgument {
        /// What the string is (an EAL argument, a pool name, a device name).
        what: &'static str,
        /// The string, with any NUL shown escaped.
        value: String,
        /// Why it was refused.
        why: &'static str,
    },

    /// `rte_pktmbuf_pool_create` failed.
    #[error("cannot create mbuf pool `{name}` ({n_mbufs} mbufs, {data_room} bytes data room each): {reason}")]
    MempoolCreate {
        /// Pool name.
        name: String,
        /// Requested number of mbufs.
        n_mbufs: u32,
        /// Requested data room per mbuf (headroom included).
        data_room: u16,
        /// `rte_strerror(rte_errno)` and a hint.
        reason: String,
    },

    /// No ethdev port has this name.
    #[error("DPDK device `{0}` not found: check the `device` string (vdev `net_af_packet0,iface=front` or a PCI address bound to vfio-pci) and that the interface exists")]
    DeviceNotFound(String),

    /// The device is already held by another `Port` in this process.
    #[error("DPDK device `{0}` is already opened by this process: use the existing `Port`")]
    DeviceInUse(String),

    /// An ethdev call failed.
    #[error("port `{name}` (port id {port}): {op} failed: {reason}")]
    Port {
        /// Device name.
        name: String,
        /// Ethdev port id.
        port: u16,
        /// The operation, e.g. `rte_eth_dev_configure`.
        op: &'static str,
        /// `rte_strerror(-ret)` and a hint.
        reason: String,
    },

    /// More queues than the device has were asked for.
    #[error("port `{name}` (driver {driver}) supports at most {max_rx} RX and {max_tx} TX queues, but {rx} RX and {tx} TX were asked for (one per worker): use fewer workers")]
    TooManyQueues {
        /// Device name.
        name: String,
        /// PMD name.
        driver: String,
        /// Requested RX queues.
        rx: u16,
        /// Requested TX queues.
        tx: u16,
        /// Device maximum RX queues.
        max_rx: u16,
        /// Device maximum TX queues.
        max_tx: u16,
    },

    /// The requested MTU is outside the device's range.
    #[error("port `{name}`: MTU {mtu} is outside the range {min}..={max} that the device supports")]
    MtuOutOfRange {
        /// Device name.
        name: String,
        /// Requested MTU.
        mtu: u16,
        /// Device minimum MTU.
        min: u16,
        /// Device maximum MTU.
        max: u16,
    },

    /// The port is not in a state that allows the operation.
    #[error("port `{name}`: {what}")]
    PortState {
        /// Device name.
        name: String,
        /// What is wrong, e.g. "not started".
        what: String,
    },

    /// `launch_on`/`wait` was given an lcore that is not a worker lcore.
    #[error("lcore {lcore} is not a worker lcore of this EAL (worker lcores: {workers}); add it to the EAL `-l` list")]
    NotAWorker {
        /// The lcore asked for.
        lcore: u32,
        /// The worker lcores that exist, comma-separated.
        workers: String,
    },

    /// `launch_on` found the lcore still running an earlier function.
    #[error("lcore {0} is still running an earlier function: wait for it before launching another")]
    LcoreBusy(u32),

    /// Preflight: no hugepages are reserved.
    #[error("no hugepages reserved: run `echo 512 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages` (or `bash vm-testbed/setup-host.sh`); for a test without hugepages pass `--no-huge` to EAL")]
    NoHugepages,

    /// Preflight: hugepages are reserved but none is free.
    #[error("all reserved hugepages are in use ({detail}): stop other DPDK processes, remove stale files under the hugetlbfs mount (`rm -f /dev/hugepages/rtemap_*`), or reserve more with `echo 512 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages`")]
    HugepagesExhausted {
        /// Per size: total and free pages.
        detail: String,
    },

    /// Preflight: no hugetlbfs mount.
    #[error("hugetlbfs is not mounted: run `mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages` (or `bash vm-testbed/setup-host.sh`), or pass `--in-memory` to EAL")]
    HugetlbfsNotMounted,

    /// Preflight: the EAL `--huge-dir` is not a hugetlbfs mount.
    #[error("EAL --huge-dir `{0}` is not a hugetlbfs mount: run `mkdir -p {0} && mount -t hugetlbfs nodev {0}`, or drop --huge-dir")]
    HugeDirNotMounted(String),

    /// Preflight: fewer lcores than workers + 1.
    #[error("not enough lcores: {workers} worker(s) need {needed} lcores (the workers plus the main lcore), but {have}; {fix}")]
    NotEnoughLcores {
        /// Requested workers.
        workers: usize,
        /// workers + 1.
        needed: usize,
        /// What is available, in words ("the EAL lcore list `0` has 1").
        have: String,
        /// What to change.
        fix: String,
    },

    /// Preflight: the EAL lcore option names CPUs outside this process's affinity.
    #[error("EAL {option} `{value}` uses CPU(s) {cpus} which this process may not run on (allowed CPUs: {allowed}): choose CPUs from the allowed set, or widen the affinity (taskset, cgroup cpuset)")]
    CpusNotAllowed {
        /// `-l`, `--lcores` or `-c`.
        option: String,
        /// The option's value.
        value: String,
        /// The CPUs outside the allowed set.
        cpus: String,
        /// The allowed set.
        allowed: String,
    },

    /// Preflight: an EAL lcore option could not be parsed.
    #[error("cannot parse EAL option {option} `{value}`: {why}")]
    BadEalOption {
        /// The option.
        option: String,
        /// Its value.
        value: String,
        /// What is wrong.
        why: String,
    },

    /// Preflight: EAL options that EAL refuses to combine.
    #[error("incompatible EAL options: {0}")]
    IncompatibleEalOptions(&'static str),

    /// Preflight: a host file could not be read.
    #[error("cannot read {path}: {reason}")]
    HostInfo {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
}

/// `rte_strerror(errnum)` as an owned string (errno values and DPDK's own codes).
pub(crate) fn strerror(errnum: i32) -> String {
    // SAFETY: rte_strerror accepts any value and returns a pointer to a NUL-terminated
    // string, either static or in a per-thread buffer that stays valid until the next
    // call on this thread; it is copied out before anything else runs here.
    unsafe {
        let p = sys::rte_strerror(errnum);
        if p.is_null() {
            return format!("error {errnum}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// The calling thread's `rte_errno`.
pub(crate) fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local int; no preconditions.
    unsafe { sys::rvs_rte_errno() }
}

/// `rte_strerror` text for a negative-errno return value (ethdev's convention).
pub(crate) fn ret_reason(ret: i32) -> String {
    let errnum = ret.checked_neg().unwrap_or(i32::MAX);
    let text = strerror(errnum);
    match errnum {
        libc_errno::ENOTSUP => format!("{text} (the driver does not support this)"),
        libc_errno::ENODEV => format!("{text} (the port no longer exists)"),
        libc_errno::EINVAL => format!("{text} (a parameter is out of the device's range)"),
        libc_errno::ENOMEM => format!("{text} (out of DPDK memory: reserve more hugepages or use smaller rings/pools)"),
        _ => text,
    }
}

/// The few errno values the driver interprets. Linux x86-64/aarch64 numbering (DPDK's
/// Linux EAL is the only one rvs supports); defined here to avoid a libc dependency.
pub(crate) mod libc_errno {
    /// Operation not permitted.
    pub const EPERM: i32 = 1;
    /// No such file or directory.
    pub const ENOENT: i32 = 2;
    /// Out of memory.
    pub const ENOMEM: i32 = 12;
    /// Permission denied.
    pub const EACCES: i32 = 13;
    /// File exists.
    pub const EEXIST: i32 = 17;
    /// No such device.
    pub const ENODEV: i32 = 19;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// File name too long.
    pub const ENAMETOOLONG: i32 = 36;
    /// Operation already in progress.
    pub const EALREADY: i32 = 114;
    /// Operation not supported (Linux: same value as ENOTSUP).
    pub const EOPNOTSUPP: i32 = 95;
    /// Operation not supported.
    pub const ENOTSUP: i32 = EOPNOTSUPP;
}
