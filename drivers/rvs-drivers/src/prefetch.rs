//! A cache prefetch hint the data path can call without `unsafe` (l3fwd's
//! `rte_prefetch0`): ask the CPU to start loading the cache line holding a value that
//! will be read soon, so that the miss overlaps other work instead of stalling it.
//!
//! The hint never faults and never changes what a program computes, only when memory
//! arrives; on targets without a prefetch instruction it does nothing.

/// Starts loading the cache line of `*value` into every cache level (x86 `prefetcht0`).
/// A hint only: no effect on the result, no fault, whatever the address.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: `_mm_prefetch` is `unsafe` only because it is a `#[target_feature(enable
        // = "sse")]` function; SSE is part of the x86_64 baseline, so it is available on
        // every CPU this code runs on. The instruction never dereferences the pointer in
        // the sense of the memory model (it cannot fault or be observed by the program),
        // and the pointer comes from a live reference anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = value;
    }
}

#[cfg(test)]
mod tests {
    use super::prefetch;

    #[test]
    fn a_hint_changes_nothing() {
        let v = [7u32; 64];
        for x in &v {
            prefetch(x);
        }
        assert!(v.iter().all(|&x| x == 7));
    }
}
