//! The driver's one way to take its process-wide locks (the open-port list, the quiesce
//! gates), shared by the modules that hold them.

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, ignoring poisoning: the guarded data stays consistent because every
/// critical section either completes or changes nothing before a DPDK call fails.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
