//! `HugeBuf` against the kernel: the fallback when the reserved pool is too small, and
//! that dropping a buffer gives its memory back. One test, so that no other test of
//! this binary maps or unmaps memory meanwhile (the address-space checks read the
//! whole process).

use rvs_drivers::hugemem::{Backing, Fallback, HugeBuf, PagePolicy, HUGE_PAGE};

/// A `/proc/meminfo`-style field (`HugePages_Total`), or a `/proc/self/status` one.
fn field(file: &str, name: &str) -> Option<usize> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].trim_start_matches(':').split_whitespace().next()?.parse().ok()
}

/// Whether `addr` lies in any mapping of this process.
fn mapped(addr: usize) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    maps.lines().any(|l| {
        let range = l.split_whitespace().next().unwrap_or("");
        let (a, b) = range.split_once('-').unwrap_or(("0", "0"));
        let (a, b) = (usize::from_str_radix(a, 16).unwrap_or(0), usize::from_str_radix(b, 16).unwrap_or(0));
        (a..b).contains(&addr)
    })
}

#[test]
fn fallback_and_drop() {
    // More 2 MiB pages than the pool can ever hold: the reservation must fail, and the
    // buffer must still work, on ordinary memory, saying why.
    let total = field("/proc/meminfo", "HugePages_Total").unwrap_or(0);
    let overcommit: usize = std::fs::read_to_string("/proc/sys/vm/nr_overcommit_hugepages")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let pages = total + overcommit + 1;
    let mut b = HugeBuf::new(pages * HUGE_PAGE, 0u8, PagePolicy::HugeTlb).expect("ordinary memory");
    match b.backing() {
        Backing::Transparent { fallback: Some(f @ Fallback::NoPages { wanted, .. }) } => {
            assert_eq!(wanted, pages);
            if let Fallback::NoPages { free: Some(free), .. } = f {
                assert!(f.missing_pages() >= 1 && f.missing_pages() == pages - free.min(pages), "{f}");
            }
        }
        other => panic!("{pages} pages of a pool of {total}: expected the fallback, got {other:?}"),
    }
    assert!(b.iter().all(|&x| x == 0), "fresh memory reads as the fill value");
    let last = b.len() - 1;
    b[last] = 9;
    assert_eq!(b[last], 9);
    let at = b.as_ptr() as usize;
    assert!(mapped(at));
    drop(b);
    assert!(!mapped(at), "dropping the buffer unmaps it");

    // Dropping gives the address space back: 64 rounds of 64 MiB would grow it by 4 GiB
    // if it did not.
    let before = field("/proc/self/status", "VmSize").expect("VmSize (kB)");
    for policy in [PagePolicy::HugeTlb, PagePolicy::Transparent, PagePolicy::Base] {
        for _ in 0..64 {
            let b = HugeBuf::new(32 * HUGE_PAGE / 8, 1u64, policy).expect("memory");
            assert_eq!(b[b.len() / 2], 1);
        }
    }
    let after = field("/proc/self/status", "VmSize").expect("VmSize (kB)");
    assert!(after < before + 64 * 1024, "VmSize {before} kB → {after} kB after 192 mapped and dropped buffers");
}
