//! The EAL (DPDK's environment: memory, lcores, devices) and the worker lcores.
//!
//! Contract:
//! * [`Eal::init`] succeeds at most once per process; later calls return
//!   [`DpdkError::EalAlreadyInitialised`] instead of reaching `rte_eal_init` again.
//! * [`Eal`] is neither `Send` nor `Sync`: it stays on the thread that created it, which
//!   EAL made the main lcore. Launching on workers and `rte_eal_cleanup` must happen
//!   there.
//! * Every object that points into DPDK memory (mempools, ports, queues) holds an
//!   [`EalToken`]. Cleanup runs only when no token is left besides the `Eal`'s own, so
//!   safe code can never touch DPDK memory after `rte_eal_cleanup` unmapped it. When
//!   something is still alive, cleanup is skipped (and the OS reclaims at exit).

use std::ffi::{c_char, c_int, c_void, CString};
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rvs_dpdk_sys as sys;

use super::error::{libc_errno, rte_errno, strerror, DpdkError};

/// Program name put in front of the EAL arguments (EAL's `argv[0]`).
const PROGRAM: &str = "rvs";

/// Set by the first [`Eal::init`] attempt, never cleared: DPDK does not support a
/// second `rte_eal_init`, not even after `rte_eal_cleanup`.
static EAL_ATTEMPTED: AtomicBool = AtomicBool::new(false);

/// Proof that the EAL is initialised and not cleaned up. Held (in an `Arc`) by every
/// object whose memory belongs to DPDK.
#[derive(Debug)]
pub(crate) struct EalToken(());

/// A job for a worker lcore.
type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

/// The initialised DPDK environment. Create it once, on the thread that will be the
/// main lcore (the control plane), and keep it there.
///
/// Dropping it waits for the worker lcores and calls `rte_eal_cleanup` when no DPDK
/// object is alive any more; [`Eal::cleanup`] does the same and reports why it could not.
#[derive(Debug)]
pub struct Eal {
    token: Arc<EalToken>,
    main_lcore: u32,
    workers: Vec<u32>,
    cleaned: bool,
    /// `rte_eal_remote_launch` and `rte_eal_cleanup` belong to the main lcore.
    _main_thread_only: PhantomData<*const ()>,
}

impl Eal {
    /// Initialises DPDK with `args` (without the program name, which is prepended).
    ///
    /// When the installed DPDK has no built-in PMD plugin directory, `-d <dir>` is
    /// added so that vdevs (`net_ring`, `net_af_packet`, `net_memif`) and the ring
    /// mempool handler are found; Debian's DPDK does not need it.
    ///
    /// Errors: a second call in the process ([`DpdkError::EalAlreadyInitialised`]); an
    /// argument with a NUL byte; `rte_eal_init` failing ([`DpdkError::EalInit`], with
    /// `rte_strerror(rte_errno)`). Run [`super::preflight`] first for friendlier
    /// messages about hugepages and lcores.
    pub fn init(args: &[String]) -> Result<Eal, DpdkError> {
        let mut full: Vec<String> = Vec::with_capacity(args.len() + 3);
        full.push(PROGRAM.to_string());
        full.extend(args.iter().cloned());
        if let Some(dir) = sys::EXTRA_PMD_DIR {
            if !args.iter().any(|a| a.starts_with("-d")) {
                full.push("-d".to_string());
                full.push(dir.to_string());
            }
        }
        let cargs: Vec<CString> = full
            .iter()
            .map(|a| {
                CString::new(a.as_str()).map_err(|_| DpdkError::InvalidArgument {
                    what: "EAL argument",
                    value: a.escape_default().to_string(),
                    why: "it contains a NUL byte",
                })
            })
            .collect::<Result<_, _>>()?;
        if EAL_ATTEMPTED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::EalAlreadyInitialised);
        }
        let joined = full.join(" ");
        tracing::info!(args = %joined, "initialising DPDK EAL");

        // EAL reorders argv and may keep pointers into it (devargs, telemetry), so the
        // strings and the array live for the rest of the process. Once per process.
        let argv: &mut [*mut c_char] = Box::leak(cargs.into_iter().map(CString::into_raw).collect::<Box<[_]>>());
        let argc = c_int::try_from(argv.len()).map_err(|_| DpdkError::InvalidArgument {
            what: "EAL argument list",
            value: joined.clone(),
            why: "too many arguments",
        })?;
        // SAFETY: argv holds argc valid NUL-terminated strings that are never freed;
        // EAL_ATTEMPTED guarantees this is the only rte_eal_init call in the process.
        let rc = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if rc < 0 {
            let errno = rte_errno();
            let hint = match errno {
                libc_errno::EACCES | libc_errno::EPERM => " (permission denied: run as root)",
                libc_errno::ENOMEM => " (cannot reserve memory: check hugepages, see rvs preflight)",
                libc_errno::EALREADY => " (EAL is already initialised in this process)",
                libc_errno::EINVAL => " (an EAL argument is invalid)",
                libc_errno::ENOENT => " (a device or driver was not found: check the vdev/PCI strings)",
                _ => "",
            };
            return Err(DpdkError::EalInit { args: joined, reason: format!("{}{hint}", strerror(errno)) });
        }
        // SAFETY: EAL is initialised; these only read its configuration.
        let main_lcore = unsafe { sys::rte_get_main_lcore() };
        let workers = worker_lcore_list();
        tracing::info!(main_lcore, ?workers, "DPDK EAL ready");
        Ok(Eal { token: Arc::new(EalToken(())), main_lcore, workers, cleaned: false, _main_thread_only: PhantomData })
    }

    /// A token for an object that lives in DPDK memory.
    pub(crate) fn token(&self) -> Arc<EalToken> {
        Arc::clone(&self.token)
    }

    /// The main lcore: the thread that called [`Eal::init`].
    pub fn main_lcore(&self) -> u32 {
        self.main_lcore
    }

    /// The worker lcores (every enabled lcore except the main one), in id order.
    pub fn worker_lcores(&self) -> &[u32] {
        &self.workers
    }

    /// Runs `job` on worker lcore `lcore` (`rte_eal_remote_launch`). Returns at once;
    /// [`Eal::wait`] collects the job's return value. A job that panics returns -1
    /// (the panic message goes through the usual panic hook).
    ///
    /// Errors: `lcore` is not a worker ([`DpdkError::NotAWorker`]) or still running an
    /// earlier job ([`DpdkError::LcoreBusy`]).
    pub fn launch_on<F>(&self, lcore: u32, job: F) -> Result<(), DpdkError>
    where
        F: FnOnce() -> i32 + Send + 'static,
    {
        self.check_worker(lcore)?;
        let boxed: Box<Job> = Box::new(Box::new(job));
        let arg = Box::into_raw(boxed).cast::<c_void>();
        // SAFETY: lcore is an enabled worker (checked above, so the index is in range);
        // `trampoline` takes ownership of `arg` exactly once if the launch succeeds.
        let rc = unsafe { sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
        if rc != 0 {
            // SAFETY: the launch failed, so EAL never called the trampoline and `arg` is
            // still the Box we leaked above; take it back to free it.
            drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
            return Err(DpdkError::LcoreBusy(lcore));
        }
        Ok(())
    }

    /// Waits for the job on `lcore` to finish and returns its return value (0 if
    /// nothing was launched there).
    pub fn wait(&self, lcore: u32) -> Result<i32, DpdkError> {
        self.check_worker(lcore)?;
        // SAFETY: lcore is an enabled worker lcore (in range); called from the main lcore
        // because `Eal` is not Send.
        Ok(unsafe { sys::rte_eal_wait_lcore(lcore) })
    }

    /// Waits for the jobs on every worker lcore.
    pub fn wait_all(&self) {
        // SAFETY: EAL is initialised and this is the main lcore (`Eal` is not Send).
        unsafe { sys::rte_eal_mp_wait_lcore() }
    }

    /// The calling thread's lcore id, or `None` on a thread EAL did not create or adopt.
    pub fn current_lcore() -> Option<u32> {
        // SAFETY: reads a thread-local; valid before and after EAL init.
        let id = unsafe { sys::rvs_rte_lcore_id() };
        (id != sys::LCORE_ID_ANY).then_some(id)
    }

    /// Waits for the workers, then releases DPDK's resources (`rte_eal_cleanup`).
    ///
    /// Refused ([`DpdkError::EalBusy`]) while a mempool, port or queue is still alive
    /// anywhere, because their memory would vanish under them; drop them first. The
    /// EAL cannot be initialised again afterwards.
    pub fn cleanup(mut self) -> Result<(), DpdkError> {
        self.try_cleanup()
    }

    fn try_cleanup(&mut self) -> Result<(), DpdkError> {
        if self.cleaned {
            return Ok(());
        }
        self.wait_all();
        let holders = Arc::strong_count(&self.token) - 1;
        if holders > 0 {
            return Err(DpdkError::EalBusy(format!(
                "{holders} mempool/port/queue object(s) are still alive (or a pool was dropped while its mbufs were in use); drop them before cleaning up"
            )));
        }
        self.cleaned = true;
        // SAFETY: main lcore (Eal is not Send), workers are idle (waited above) and no
        // object referring to DPDK memory exists (token count is 1). Called once.
        let rc = unsafe { sys::rte_eal_cleanup() };
        if rc < 0 {
            return Err(DpdkError::EalBusy(format!("rte_eal_cleanup failed: {}", strerror(rte_errno()))));
        }
        tracing::info!("DPDK EAL cleaned up");
        Ok(())
    }

    fn check_worker(&self, lcore: u32) -> Result<(), DpdkError> {
        if self.workers.contains(&lcore) {
            Ok(())
        } else {
            Err(DpdkError::NotAWorker {
                lcore,
                workers: if self.workers.is_empty() {
                    "none".to_string()
                } else {
                    self.workers.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
                },
            })
        }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        if let Err(e) = self.try_cleanup() {
            tracing::warn!("{e}");
        }
    }
}

/// The enabled lcores except the main one.
fn worker_lcore_list() -> Vec<u32> {
    let mut out = Vec::new();
    // Start "before 0": rte_get_next_lcore increments its argument first.
    let mut i = u32::MAX;
    loop {
        // SAFETY: EAL is initialised; the function bounds-checks `i` itself.
        i = unsafe { sys::rte_get_next_lcore(i, 1, 0) };
        if i >= sys::RTE_MAX_LCORE {
            return out;
        }
        out.push(i);
    }
}

/// What EAL runs on the worker: unpacks and runs the boxed job.
unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Box<Job>` leaked by `launch_on`, and EAL calls this exactly
    // once per successful launch, so ownership is taken back exactly once.
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    // A panic must not unwind into C.
    std::panic::catch_unwind(AssertUnwindSafe(*job)).unwrap_or_else(|_| {
        tracing::error!("a job on lcore {:?} panicked", Eal::current_lcore());
        -1
    })
}
