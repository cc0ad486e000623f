//! Large fixed-size tables on huge pages: [`HugeBuf`], a typed buffer of `len` values
//! that derefs to a slice and unmaps its memory on drop.
//!
//! Why: a lookup in a table of hundreds of megabytes (the connection table's slab and
//! index at 1M+ entries) misses the TLB as well as the cache on 4 KiB pages (the second
//! level TLB maps a few MiB of them); on 2 MiB pages the page walk of a random access is
//! much shorter and mostly cached, so the lookup costs its one cache miss and little
//! else. DPDK keeps its tables in hugepage memory for this reason.
//!
//! Where the memory comes from, [`PagePolicy`]:
//!
//! * [`PagePolicy::HugeTlb`]: reserved 2 MiB pages (`mmap` with `MAP_HUGETLB`, the pool
//!   `vm.nr_hugepages` / `/sys/kernel/mm/hugepages/hugepages-2048kB` that DPDK also
//!   uses). A private hugetlb mapping reserves its pages when it is made, so a pool too
//!   small fails here, at construction, never later as a fault. Then, and for buffers
//!   smaller than one huge page (which would waste most of it), the buffer falls back to
//!   ordinary memory with transparent huge pages asked for, and [`HugeBuf::backing`]
//!   says why, with the number of pages that were missing.
//! * [`PagePolicy::Transparent`]: ordinary anonymous memory, 2 MiB aligned, with
//!   `madvise(MADV_HUGEPAGE)`: the kernel backs it with huge pages when it has free
//!   contiguous memory and THP is not `never`
//!   (`/sys/kernel/mm/transparent_hugepage/enabled`); best effort, nothing to reserve.
//! * [`PagePolicy::Base`]: ordinary 4 KiB pages, as a `Vec` gets (for comparisons).
//!
//! All the memory is written (filled with the initial value) at construction, so no page
//! fault happens later on the data path.

use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// The size of one huge page: 2 MiB, the x86-64 page size DPDK and rvs use.
pub const HUGE_PAGE: usize = 2 << 20;

/// Where [`HugeBuf::new`] takes the memory from (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PagePolicy {
    /// Reserved 2 MiB pages, falling back to [`PagePolicy::Transparent`] when none are
    /// free or the buffer is smaller than one.
    #[default]
    HugeTlb,
    /// Ordinary memory with transparent huge pages asked for (`MADV_HUGEPAGE`).
    Transparent,
    /// Ordinary 4 KiB pages, no advice.
    Base,
}

/// Where a [`HugeBuf`]'s memory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// `pages` reserved 2 MiB pages (`MAP_HUGETLB`).
    HugeTlb {
        /// 2 MiB pages mapped.
        pages: usize,
    },
    /// Ordinary memory with transparent huge pages asked for; `fallback` says why it is
    /// not reserved huge pages when they were asked for.
    Transparent {
        /// Why [`PagePolicy::HugeTlb`] was not honoured, if it was asked for.
        fallback: Option<Fallback>,
    },
    /// Ordinary 4 KiB pages ([`PagePolicy::Base`]).
    Base,
    /// No memory at all (an empty buffer or zero-sized values).
    Empty,
}

/// Why a buffer asked to live on reserved huge pages does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The buffer is smaller than one huge page (`bytes`): it would waste most of it.
    Small {
        /// The buffer's size.
        bytes: usize,
    },
    /// The kernel refused the reservation: `wanted` pages, `free` of them free in the
    /// 2 MiB pool when it was read after the refusal (`None`: unreadable), and the
    /// `errno` of `mmap` (ENOMEM when the pool is too small).
    NoPages {
        /// 2 MiB pages the buffer needed.
        wanted: usize,
        /// Free 2 MiB pages in the pool (`free_hugepages`), if it could be read.
        free: Option<usize>,
        /// The `mmap` error number.
        errno: i32,
    },
}

impl Fallback {
    /// How many more free 2 MiB pages would have let the buffer use reserved pages
    /// (0 when size, not the pool, was the reason or the pool could not be read).
    pub fn missing_pages(&self) -> usize {
        match *self {
            Fallback::Small { .. } => 0,
            Fallback::NoPages { wanted, free, .. } => free.map_or(0, |f| wanted.saturating_sub(f)),
        }
    }
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Fallback::Small { bytes } => write!(f, "{bytes} bytes is less than one 2 MiB page"),
            Fallback::NoPages { wanted, free: Some(free), errno } => write!(
                f,
                "{wanted} 2 MiB pages needed, {free} free ({} missing; mmap errno {errno}); reserve more with \
                 `echo N > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages` (vm.nr_hugepages) or \
                 vm-testbed/setup-host.sh",
                wanted.saturating_sub(free)
            ),
            Fallback::NoPages { wanted, free: None, errno } => write!(
                f,
                "{wanted} 2 MiB pages needed, the pool could not be read (mmap errno {errno}); this kernel may \
                 have no 2 MiB hugepages"
            ),
        }
    }
}

impl fmt::Display for Backing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backing::HugeTlb { pages } => write!(f, "{pages} reserved 2 MiB pages"),
            Backing::Transparent { fallback: None } => write!(f, "transparent huge pages (best effort)"),
            Backing::Transparent { fallback: Some(why) } => {
                write!(f, "transparent huge pages (best effort), not reserved pages: {why}")
            }
            Backing::Base => write!(f, "4 KiB pages"),
            Backing::Empty => write!(f, "no memory"),
        }
    }
}

/// The kernel refused even ordinary memory for a [`HugeBuf`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocError {
    /// Bytes asked for.
    pub bytes: usize,
    /// The `mmap` error number (ENOMEM), or 0 when the size overflowed.
    pub errno: i32,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot map {} bytes (errno {})", self.bytes, self.errno)
    }
}

impl std::error::Error for AllocError {}

/// `len` values of `T` in one anonymous memory mapping (see the module documentation),
/// filled at construction and unmapped on drop. Derefs to `[T]`; its length never
/// changes. `T: Copy`, so nothing needs dropping per value.
pub struct HugeBuf<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    /// The mapping: its start and length (`map_len == 0`: none).
    map: *mut libc::c_void,
    map_len: usize,
    backing: Backing,
    _owns: PhantomData<T>,
}

// SAFETY: a `HugeBuf<T>` owns its mapping exclusively, like a `Box<[T]>`: moving it to
// another thread moves sole access to the values, which is sound when `T: Send`.
unsafe impl<T: Copy + Send> Send for HugeBuf<T> {}
// SAFETY: shared references to a `HugeBuf<T>` only give out `&[T]`, sound when `T: Sync`.
unsafe impl<T: Copy + Sync> Sync for HugeBuf<T> {}

impl<T: Copy> HugeBuf<T> {
    /// `len` copies of `value`, on memory chosen by `policy`. Fails only when the kernel
    /// has no memory at all for it (or the size overflows).
    pub fn new(len: usize, value: T, policy: PagePolicy) -> Result<Self, AllocError> {
        const { assert!(align_of::<T>() <= 4096, "HugeBuf: values aligned beyond a page") };
        let bytes = len.checked_mul(size_of::<T>()).ok_or(AllocError { bytes: usize::MAX, errno: 0 })?;
        if bytes == 0 {
            return Ok(HugeBuf {
                ptr: NonNull::dangling(),
                len,
                map: std::ptr::null_mut(),
                map_len: 0,
                backing: Backing::Empty,
                _owns: PhantomData,
            });
        }
        let (map, map_len, backing) = map_memory(bytes, policy)?;
        let ptr = NonNull::new(map.cast::<T>()).ok_or(AllocError { bytes, errno: 0 })?;
        for i in 0..len {
            // SAFETY: the mapping is `map_len >= bytes = len * size_of::<T>()` bytes,
            // readable and writable, page aligned (so aligned for `T`, whose alignment is
            // at most a page, checked above); `i < len`, so the write is inside it. The
            // memory is not yet a `T` (zero bytes from the kernel), so it is initialised
            // with `write`, not assigned; `T: Copy` has no drop to skip.
            unsafe { ptr.as_ptr().add(i).write(value) };
        }
        Ok(HugeBuf { ptr, len, map, map_len, backing, _owns: PhantomData })
    }

    /// Where the memory came from.
    pub fn backing(&self) -> Backing {
        self.backing
    }

    /// Bytes mapped (the values' size rounded up to the page size used).
    pub fn mapped_bytes(&self) -> usize {
        self.map_len
    }
}

impl<T: Copy> Deref for HugeBuf<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` points at `len` initialised values of `T` (written in `new`),
        // inside a mapping this buffer owns until it is dropped, or is dangling and
        // aligned with no bytes to read (`len * size_of::<T>() == 0`). The borrow of
        // `self` keeps the mapping alive and forbids `&mut` access meanwhile.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> DerefMut for HugeBuf<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Drop for HugeBuf<T> {
    fn drop(&mut self) {
        if self.map_len == 0 {
            return;
        }
        // SAFETY: `map`/`map_len` are exactly a mapping made by `map_memory` for this
        // buffer and not unmapped since; no reference into it outlives `self` (every
        // slice borrows `self`). The values need no drop (`T: Copy`). An error (which
        // would mean the range was not mapped) leaves nothing to do.
        unsafe { libc::munmap(self.map, self.map_len) };
    }
}

impl<T: Copy + fmt::Debug> fmt::Debug for HugeBuf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HugeBuf").field("len", &self.len).field("backing", &self.backing).finish_non_exhaustive()
    }
}

/// The errno of the last failed call.
fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Free pages in the 2 MiB pool, read from sysfs.
pub fn free_huge_pages() -> Option<usize> {
    std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages").ok()?.trim().parse().ok()
}

/// An anonymous private read/write mapping of `len` bytes with extra `flags`, or the
/// errno.
fn mmap_anon(len: usize, flags: libc::c_int) -> Result<*mut libc::c_void, i32> {
    // SAFETY: an anonymous mapping at an address of the kernel's choice (null hint, no
    // MAP_FIXED) cannot overlap or alter any existing memory; no file descriptor is used
    // (-1 with MAP_ANONYMOUS). The result is checked against MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | flags,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        Err(errno())
    } else {
        Ok(p)
    }
}

/// `x` rounded up to a multiple of `to` (a power of two), `None` on overflow.
fn round_up(x: usize, to: usize) -> Option<usize> {
    Some(x.checked_add(to - 1)? & !(to - 1))
}

/// Maps `bytes` (> 0) as `policy` says: the mapping's start, its length and its backing.
fn map_memory(bytes: usize, policy: PagePolicy) -> Result<(*mut libc::c_void, usize, Backing), AllocError> {
    let fail = |errno| AllocError { bytes, errno };
    let huge_len = round_up(bytes, HUGE_PAGE).ok_or(fail(0))?;
    let fallback = match policy {
        PagePolicy::Base => {
            let len = round_up(bytes, 4096).ok_or(fail(0))?;
            return mmap_anon(len, 0).map(|p| (p, len, Backing::Base)).map_err(fail);
        }
        PagePolicy::Transparent => None,
        PagePolicy::HugeTlb if bytes < HUGE_PAGE => Some(Fallback::Small { bytes }),
        PagePolicy::HugeTlb => match mmap_anon(huge_len, libc::MAP_HUGETLB | libc::MAP_HUGE_2MB) {
            Ok(p) => return Ok((p, huge_len, Backing::HugeTlb { pages: huge_len / HUGE_PAGE })),
            Err(errno) => Some(Fallback::NoPages { wanted: huge_len / HUGE_PAGE, free: free_huge_pages(), errno }),
        },
    };
    let backing = Backing::Transparent { fallback };
    if bytes < HUGE_PAGE {
        // Too small for a huge page: ordinary pages, nothing to align or advise.
        let len = round_up(bytes, 4096).ok_or(fail(0))?;
        return mmap_anon(len, 0).map(|p| (p, len, backing)).map_err(fail);
    }
    // Transparent huge pages need 2 MiB aligned ranges: map one page more, then give
    // back the unaligned head and the tail.
    let over = huge_len.checked_add(HUGE_PAGE).ok_or(fail(0))?;
    let raw = mmap_anon(over, 0).map_err(fail)?;
    let start = raw as usize;
    let aligned = round_up(start, HUGE_PAGE).ok_or(fail(0))?;
    let head = aligned - start;
    let tail = over - head - huge_len;
    if head > 0 {
        // SAFETY: `[start, start + head)` is the first part of the mapping just made,
        // not yet handed to anyone; unmapping it touches nothing else.
        unsafe { libc::munmap(raw, head) };
    }
    if tail > 0 {
        // SAFETY: `[aligned + huge_len, start + over)` is the last part of the same new
        // mapping (`head + huge_len + tail == over`), likewise unused.
        unsafe { libc::munmap((aligned + huge_len) as *mut libc::c_void, tail) };
    }
    let p = aligned as *mut libc::c_void;
    // SAFETY: advice on a range this function mapped and owns; MADV_HUGEPAGE changes
    // only how the kernel backs it, never its contents. An error (THP compiled out)
    // leaves ordinary pages, which is the documented best effort.
    unsafe { libc::madvise(p, huge_len, libc::MADV_HUGEPAGE) };
    Ok((p, huge_len, backing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_with_the_value_on_every_policy() {
        for policy in [PagePolicy::HugeTlb, PagePolicy::Transparent, PagePolicy::Base] {
            for len in [1usize, 1000, HUGE_PAGE / 4 + 3] {
                let b = HugeBuf::new(len, 0xdead_beef_u32, policy).expect("memory");
                assert_eq!(b.len(), len);
                assert!(b.iter().all(|&v| v == 0xdead_beef), "{policy:?} {len}");
                assert!(b.mapped_bytes() >= len * 4);
            }
        }
    }

    #[test]
    fn zero_fill_reads_zero_and_writes_stick() {
        let mut b = HugeBuf::new(HUGE_PAGE / 8 + 1, 0u64, PagePolicy::Transparent).expect("memory");
        assert!(b.iter().all(|&v| v == 0));
        let n = b.len();
        b[0] = 1;
        b[n - 1] = 2;
        assert_eq!((b[0], b[n - 1], b[1]), (1, 2, 0));
    }

    #[test]
    fn small_buffers_do_not_take_huge_pages() {
        let b = HugeBuf::new(100, 7u8, PagePolicy::HugeTlb).expect("memory");
        assert_eq!(b.backing(), Backing::Transparent { fallback: Some(Fallback::Small { bytes: 100 }) });
        assert_eq!(b.mapped_bytes(), 4096);
    }

    #[test]
    fn transparent_is_aligned_and_never_reserved() {
        // 1.75 huge pages of bytes: two pages, 2 MiB aligned.
        let b = HugeBuf::new(7 * HUGE_PAGE / 4, 1u8, PagePolicy::Transparent).expect("memory");
        assert_eq!(b.backing(), Backing::Transparent { fallback: None });
        assert_eq!(b.as_ptr() as usize % HUGE_PAGE, 0);
        assert_eq!(b.mapped_bytes(), 2 * HUGE_PAGE);
    }

    #[test]
    fn empty_and_zero_sized() {
        let b = HugeBuf::new(0, 1u32, PagePolicy::HugeTlb).expect("nothing to map");
        assert_eq!((b.len(), b.backing(), b.mapped_bytes()), (0, Backing::Empty, 0));
        let z = HugeBuf::new(5, (), PagePolicy::HugeTlb).expect("nothing to map");
        assert_eq!((z.len(), z.backing()), (5, Backing::Empty));
    }

    #[test]
    fn overflow_is_an_error() {
        assert!(HugeBuf::new(usize::MAX / 2, 0u64, PagePolicy::Base).is_err());
    }

    #[test]
    fn aligned_values() {
        #[derive(Clone, Copy)]
        #[repr(align(64))]
        struct Line([u8; 64]);
        let b = HugeBuf::new(1000, Line([3; 64]), PagePolicy::HugeTlb).expect("memory");
        assert_eq!(b.as_ptr() as usize % 64, 0);
        assert!(b.iter().all(|l| l.0.iter().all(|&x| x == 3)));
    }

    #[test]
    fn missing_pages_and_messages() {
        let f = Fallback::NoPages { wanted: 44, free: Some(10), errno: libc::ENOMEM };
        assert_eq!(f.missing_pages(), 34);
        assert!(f.to_string().contains("34 missing"), "{f}");
        assert!(f.to_string().contains("nr_hugepages"), "{f}");
        assert_eq!(Fallback::Small { bytes: 5 }.missing_pages(), 0);
        assert_eq!(Fallback::NoPages { wanted: 4, free: None, errno: 12 }.missing_pages(), 0);
    }
}
