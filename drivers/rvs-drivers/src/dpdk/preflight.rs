//! Host checks before `Eal::init`, in plain Rust (no DPDK call), so that a missing
//! hugepage reservation or a too-short lcore list is reported as one sentence with the
//! fix instead of pages of EAL log.
//!
//! What is checked, from the EAL arguments rvsd is about to use:
//! * unless `--no-huge`: some hugepage size has pages reserved and free
//!   (`/sys/kernel/mm/hugepages/hugepages-*/{nr,free}_hugepages`, or `/proc/meminfo`
//!   when sysfs is not there);
//! * unless `--no-huge` or `--in-memory`: a hugetlbfs mount exists (`/proc/mounts`);
//!   `--in-memory` does not need one, EAL then maps hugepages anonymously. An explicit
//!   `--huge-dir` must be a hugetlbfs mount;
//! * the lcores EAL will use (`-l`, `--lcores`, `-c`, or every CPU of the process's
//!   affinity, `Cpus_allowed_list` in `/proc/self/status`) number at least workers + 1,
//!   and the CPUs they name are ones this process may run on.
//!
//! All paths come from [`HostPaths`] so tests can point them at fake files.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use super::error::DpdkError;

/// DPDK's compile-time lcore limit (`RTE_MAX_LCORE` in Debian's build).
const MAX_LCORE: u32 = rvs_dpdk_sys::RTE_MAX_LCORE;
/// Largest CPU id accepted in a list, against absurd ranges.
const MAX_CPU_ID: u32 = 4095;

/// Where the host facts are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// `/sys/kernel/mm/hugepages`: one `hugepages-<size>kB` directory per page size.
    pub hugepages: PathBuf,
    /// `/proc/meminfo`: fallback for the default page size.
    pub meminfo: PathBuf,
    /// `/proc/mounts`: to find hugetlbfs mounts.
    pub mounts: PathBuf,
    /// `/proc/self/status`: `Cpus_allowed_list`, this process's CPU affinity.
    pub self_status: PathBuf,
}

impl Default for HostPaths {
    /// The real host's paths.
    fn default() -> Self {
        HostPaths {
            hugepages: PathBuf::from("/sys/kernel/mm/hugepages"),
            meminfo: PathBuf::from("/proc/meminfo"),
            mounts: PathBuf::from("/proc/mounts"),
            self_status: PathBuf::from("/proc/self/status"),
        }
    }
}

/// Reserved and free pages of one hugepage size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HugepageSize {
    /// Page size in KiB (2048 or 1048576 on x86-64).
    pub size_kb: u64,
    /// Pages reserved (`nr_hugepages`).
    pub total: u64,
    /// Pages free (`free_hugepages`).
    pub free: u64,
}

/// What preflight found, for the startup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightReport {
    /// Hugepage sizes (empty with `--no-huge`).
    pub hugepages: Vec<HugepageSize>,
    /// Number of lcores EAL will create (main + workers).
    pub lcores: usize,
    /// CPUs this process may run on.
    pub allowed_cpus: Vec<u32>,
}

impl fmt::Display for PreflightReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} lcore(s), CPUs {}", self.lcores, format_cpus(&self.allowed_cpus))?;
        if self.hugepages.is_empty() {
            write!(f, ", no hugepages (--no-huge)")
        } else {
            write!(f, ", hugepages {}", hugepage_detail(&self.hugepages))
        }
    }
}

/// Checks the real host for an EAL started with `eal_args` and `workers` worker lcores.
pub fn preflight(eal_args: &[String], workers: usize) -> Result<PreflightReport, DpdkError> {
    preflight_with(&HostPaths::default(), eal_args, workers)
}

/// [`preflight`] reading the host facts from `paths`.
pub fn preflight_with(paths: &HostPaths, eal_args: &[String], workers: usize) -> Result<PreflightReport, DpdkError> {
    let args = EalArgs::parse(eal_args);
    if args.no_huge && args.in_memory {
        return Err(DpdkError::IncompatibleEalOptions(
            "EAL refuses `--no-huge` together with `--in-memory`; without hugepages use `--no-huge --no-shconf`",
        ));
    }
    let hugepages = if args.no_huge { Vec::new() } else { check_hugepages(paths, &args)? };
    let allowed = allowed_cpus(&paths.self_status)?;
    let lcores = check_lcores(&args, &allowed, workers)?;
    Ok(PreflightReport { hugepages, lcores, allowed_cpus: allowed.into_iter().collect() })
}

/// The EAL options preflight cares about. The last occurrence of an option wins.
#[derive(Debug, Default)]
struct EalArgs {
    no_huge: bool,
    in_memory: bool,
    huge_dir: Option<String>,
    /// (option as written, value).
    lcores: Option<(String, String)>,
}

impl EalArgs {
    fn parse(args: &[String]) -> EalArgs {
        let mut out = EalArgs::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let a = a.as_str();
            let mut value_of = |opt: &str| -> Option<String> {
                if a == opt {
                    it.next().cloned()
                } else if opt.starts_with("--") {
                    a.strip_prefix(opt).and_then(|r| r.strip_prefix('=')).map(str::to_string)
                } else {
                    a.strip_prefix(opt).filter(|r| !r.is_empty()).map(str::to_string)
                }
            };
            match a {
                "--no-huge" => out.no_huge = true,
                "--in-memory" => out.in_memory = true,
                _ => {
                    if let Some(v) = value_of("--huge-dir") {
                        out.huge_dir = Some(v);
                    } else if let Some(v) = value_of("--lcores") {
                        out.lcores = Some(("--lcores".into(), v));
                    } else if a.starts_with("--") {
                        // Some other long option; its value (if any) is not ours.
                    } else if let Some(v) = value_of("-l") {
                        out.lcores = Some(("-l".into(), v));
                    } else if let Some(v) = value_of("-c") {
                        out.lcores = Some(("-c".into(), v));
                    }
                }
            }
        }
        out
    }
}

fn read(path: &Path) -> Result<String, DpdkError> {
    std::fs::read_to_string(path)
        .map_err(|e| DpdkError::HostInfo { path: path.display().to_string(), reason: e.to_string() })
}

fn hugepage_detail(sizes: &[HugepageSize]) -> String {
    sizes
        .iter()
        .map(|s| format!("{}kB: {} reserved, {} free", s.size_kb, s.total, s.free))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Hugepage sizes from sysfs, or from /proc/meminfo when sysfs has none.
fn hugepage_sizes(paths: &HostPaths) -> Result<Vec<HugepageSize>, DpdkError> {
    let mut sizes = Vec::new();
    if let Ok(dir) = std::fs::read_dir(&paths.hugepages) {
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(size_kb) = name
                .to_str()
                .and_then(|n| n.strip_prefix("hugepages-"))
                .and_then(|n| n.strip_suffix("kB"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let number = |file: &str| -> Result<u64, DpdkError> {
                let p = entry.path().join(file);
                read(&p)?.trim().parse::<u64>().map_err(|e| DpdkError::HostInfo {
                    path: p.display().to_string(),
                    reason: format!("not a number: {e}"),
                })
            };
            sizes.push(HugepageSize { size_kb, total: number("nr_hugepages")?, free: number("free_hugepages")? });
        }
    }
    if sizes.is_empty() {
        let meminfo = read(&paths.meminfo)?;
        let field = |key: &str| -> Option<u64> {
            meminfo.lines().find_map(|l| {
                let rest = l.strip_prefix(key)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse().ok()
            })
        };
        if let (Some(total), Some(free), Some(size_kb)) =
            (field("HugePages_Total"), field("HugePages_Free"), field("Hugepagesize"))
        {
            sizes.push(HugepageSize { size_kb, total, free });
        }
    }
    sizes.sort_by_key(|s| s.size_kb);
    Ok(sizes)
}

/// hugetlbfs mount points listed in a mounts file (octal escapes decoded).
fn hugetlbfs_mounts(mounts: &str) -> Vec<String> {
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_dev, dir, fstype) = (f.next()?, f.next()?, f.next()?);
            (fstype == "hugetlbfs").then(|| unescape_mount(dir))
        })
        .collect()
}

/// Decodes `\040`-style escapes of /proc/mounts.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn check_hugepages(paths: &HostPaths, args: &EalArgs) -> Result<Vec<HugepageSize>, DpdkError> {
    let sizes = hugepage_sizes(paths)?;
    if sizes.iter().all(|s| s.total == 0) {
        return Err(DpdkError::NoHugepages);
    }
    if sizes.iter().all(|s| s.free == 0) {
        return Err(DpdkError::HugepagesExhausted { detail: hugepage_detail(&sizes) });
    }
    let needs_mount = !args.in_memory || args.huge_dir.is_some();
    if needs_mount {
        let mounts = hugetlbfs_mounts(&read(&paths.mounts)?);
        match &args.huge_dir {
            Some(dir) => {
                let want = dir.trim_end_matches('/');
                if !mounts.iter().any(|m| m.trim_end_matches('/') == want) {
                    return Err(DpdkError::HugeDirNotMounted(dir.clone()));
                }
            }
            None if mounts.is_empty() => return Err(DpdkError::HugetlbfsNotMounted),
            None => {}
        }
    }
    Ok(sizes)
}

/// `Cpus_allowed_list` of a /proc/<pid>/status file.
fn allowed_cpus(status_path: &Path) -> Result<BTreeSet<u32>, DpdkError> {
    let status = read(status_path)?;
    let line = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).ok_or_else(|| {
        DpdkError::HostInfo { path: status_path.display().to_string(), reason: "no Cpus_allowed_list line".to_string() }
    })?;
    parse_cpu_list(line.trim()).map_err(|why| DpdkError::HostInfo {
        path: status_path.display().to_string(),
        reason: format!("bad Cpus_allowed_list `{}`: {why}", line.trim()),
    })
}

/// Parses `0-3,5,7-8` into a set.
fn parse_cpu_list(s: &str) -> Result<BTreeSet<u32>, String> {
    let mut out = BTreeSet::new();
    if s.trim().is_empty() {
        return Err("the list is empty".to_string());
    }
    for part in s.split(',') {
        let part = part.trim();
        let num = |t: &str| -> Result<u32, String> {
            let n: u32 = t.trim().parse().map_err(|_| format!("`{t}` is not a CPU number"))?;
            if n > MAX_CPU_ID {
                return Err(format!("CPU {n} is out of range"));
            }
            Ok(n)
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("range `{part}` is backwards"));
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(num(part)?);
            }
        }
    }
    Ok(out)
}

/// Parses a hex core mask (`0x3`, `f`) into CPU ids.
fn parse_core_mask(s: &str) -> Result<BTreeSet<u32>, String> {
    let hex = s.trim().trim_start_matches("0x").trim_start_matches("0X");
    if hex.is_empty() || hex.len() > 1024 {
        return Err("expected a hexadecimal core mask such as 0x3".to_string());
    }
    let mut out = BTreeSet::new();
    for (i, c) in hex.chars().rev().enumerate() {
        let d = c.to_digit(16).ok_or_else(|| format!("`{c}` is not a hexadecimal digit"))?;
        for bit in 0..4 {
            if d & (1 << bit) != 0 {
                out.insert(i as u32 * 4 + bit);
            }
        }
    }
    if out.is_empty() {
        return Err("the mask selects no CPU".to_string());
    }
    Ok(out)
}

/// Parses EAL's `--lcores` map (`0-3`, `0@1,(2,3)@(4-5)`, `1@(0-2)`) into the lcore ids
/// and the CPUs they run on.
fn parse_lcores_map(s: &str) -> Result<(BTreeSet<u32>, BTreeSet<u32>), String> {
    let set = |t: &str| -> Result<BTreeSet<u32>, String> {
        let t = t.trim();
        match t.strip_prefix('(') {
            Some(inner) => parse_cpu_list(inner.strip_suffix(')').ok_or_else(|| format!("unbalanced `(` in `{t}`"))?),
            None => parse_cpu_list(t),
        }
    };
    // Split at commas outside parentheses.
    let mut elems = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                elems.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err("unbalanced `)`".to_string());
        }
    }
    if depth != 0 {
        return Err("unbalanced `(`".to_string());
    }
    elems.push(&s[start..]);
    let (mut lcores, mut cpus) = (BTreeSet::new(), BTreeSet::new());
    for e in elems {
        let (l, c) = match e.split_once('@') {
            Some((l, c)) => (set(l)?, set(c)?),
            None => {
                let l = set(e)?;
                (l.clone(), l)
            }
        };
        lcores.extend(l);
        cpus.extend(c);
    }
    Ok((lcores, cpus))
}

fn format_cpus(cpus: &[u32]) -> String {
    // Compress runs: 0,1,2,5 -> 0-2,5
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { cpus[i].to_string() } else { format!("{}-{}", cpus[i], cpus[j]) });
        i = j + 1;
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(",")
    }
}

fn check_lcores(args: &EalArgs, allowed: &BTreeSet<u32>, workers: usize) -> Result<usize, DpdkError> {
    let needed = workers + 1;
    let allowed_v: Vec<u32> = allowed.iter().copied().collect();
    let allowed_s = format_cpus(&allowed_v);
    let Some((option, value)) = &args.lcores else {
        // EAL uses every CPU of the affinity set below RTE_MAX_LCORE.
        let have = allowed.iter().filter(|&&c| c < MAX_LCORE).count();
        if have < needed {
            return Err(DpdkError::NotEnoughLcores {
                workers,
                needed,
                have: format!("this process may run on only {have} CPU(s) ({allowed_s})"),
                fix: if have >= 2 {
                    format!("lower `workers` to {}, or give the process more CPUs", have - 1)
                } else {
                    "rvs needs at least 2 CPUs (one worker plus the main lcore): give the process more CPUs".to_string()
                },
            });
        }
        return Ok(have);
    };
    let bad = |why: String| DpdkError::BadEalOption { option: option.clone(), value: value.clone(), why };
    let (lcores, cpus) = match option.as_str() {
        "--lcores" => parse_lcores_map(value).map_err(bad)?,
        "-c" => parse_core_mask(value).map(|s| (s.clone(), s)).map_err(bad)?,
        _ => parse_cpu_list(value).map(|s| (s.clone(), s)).map_err(bad)?,
    };
    if let Some(&too_big) = lcores.iter().find(|&&l| l >= MAX_LCORE) {
        return Err(bad(format!(
            "lcore id {too_big} is above DPDK's limit of {} (RTE_MAX_LCORE - 1): map it with `--lcores`, e.g. `--lcores 0@{too_big}`",
            MAX_LCORE - 1
        )));
    }
    let outside: Vec<u32> = cpus.difference(allowed).copied().collect();
    if !outside.is_empty() {
        return Err(DpdkError::CpusNotAllowed {
            option: option.clone(),
            value: value.clone(),
            cpus: format_cpus(&outside),
            allowed: allowed_s,
        });
    }
    if lcores.len() < needed {
        let fix = if allowed.len() >= needed {
            let pick: Vec<u32> = allowed.iter().take(needed).copied().collect();
            format!("list {needed} lcores, e.g. `-l {}`", format_cpus(&pick))
        } else if allowed.len() >= 2 {
            format!(
                "this process may run on {} CPU(s) ({allowed_s}): lower `workers` to {}",
                allowed.len(),
                allowed.len() - 1
            )
        } else {
            "rvs needs at least 2 CPUs (one worker plus the main lcore): give the process more CPUs".to_string()
        };
        return Err(DpdkError::NotEnoughLcores {
            workers,
            needed,
            have: format!("the EAL lcore option {option} `{value}` gives {}", lcores.len()),
            fix,
        });
    }
    Ok(lcores.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A throwaway fake host under the temp directory, removed on drop.
    struct FakeHost {
        root: PathBuf,
        paths: HostPaths,
    }

    impl FakeHost {
        fn new() -> FakeHost {
            static N: AtomicUsize = AtomicUsize::new(0);
            let root = std::env::temp_dir().join(format!(
                "rvs-preflight-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&root);
            fs::create_dir_all(root.join("hugepages")).unwrap();
            let paths = HostPaths {
                hugepages: root.join("hugepages"),
                meminfo: root.join("meminfo"),
                mounts: root.join("mounts"),
                self_status: root.join("status"),
            };
            let h = FakeHost { root, paths };
            h.cpus("0-1");
            h.mounts("proc /proc proc rw 0 0\nnodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n");
            h.meminfo(0, 0);
            h
        }
        fn size(&self, kb: u64, total: u64, free: u64) -> &Self {
            let d = self.paths.hugepages.join(format!("hugepages-{kb}kB"));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("nr_hugepages"), format!("{total}\n")).unwrap();
            fs::write(d.join("free_hugepages"), format!("{free}\n")).unwrap();
            self
        }
        fn mounts(&self, s: &str) -> &Self {
            fs::write(&self.paths.mounts, s).unwrap();
            self
        }
        fn meminfo(&self, total: u64, free: u64) -> &Self {
            fs::write(
                &self.paths.meminfo,
                format!("MemTotal: 8000000 kB\nHugePages_Total:    {total}\nHugePages_Free:     {free}\nHugePages_Rsvd:        0\nHugepagesize:       2048 kB\n"),
            )
            .unwrap();
            self
        }
        fn cpus(&self, list: &str) -> &Self {
            fs::write(&self.paths.self_status, format!("Name:\trvsd\nCpus_allowed:\t3\nCpus_allowed_list:\t{list}\n"))
                .unwrap();
            self
        }
        fn check(&self, args: &[&str], workers: usize) -> Result<PreflightReport, DpdkError> {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            preflight_with(&self.paths, &args, workers)
        }
    }

    impl Drop for FakeHost {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.root);
        }
    }

    #[test]
    fn healthy_host_passes() {
        let h = FakeHost::new();
        h.size(2048, 512, 500).size(1048576, 0, 0);
        let r = h.check(&["-l", "0-1"], 1).unwrap();
        assert_eq!(r.lcores, 2);
        assert_eq!(r.hugepages[0], HugepageSize { size_kb: 2048, total: 512, free: 500 });
        assert_eq!(r.allowed_cpus, vec![0, 1]);
        assert!(r.to_string().contains("2048kB: 512 reserved, 500 free"), "{r}");
    }

    #[test]
    fn no_hugepages_reserved() {
        let h = FakeHost::new();
        h.size(2048, 0, 0).size(1048576, 0, 0);
        let e = h.check(&["-l", "0-1"], 1).unwrap_err();
        assert_eq!(e, DpdkError::NoHugepages);
        let msg = e.to_string();
        assert!(msg.contains("no hugepages reserved"), "{msg}");
        assert!(msg.contains("echo 512 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"), "{msg}");
        assert!(msg.contains("bash vm-testbed/setup-host.sh"), "{msg}");
    }

    #[test]
    fn no_huge_skips_hugepage_checks() {
        let h = FakeHost::new();
        h.size(2048, 0, 0).mounts("");
        let r = h.check(&["--no-huge", "--no-shconf", "-l", "0"], 0).unwrap();
        assert!(r.hugepages.is_empty());
        assert_eq!(r.lcores, 1);
        let e = h.check(&["--no-huge", "--in-memory", "-l", "0"], 0).unwrap_err();
        assert!(e.to_string().contains("--no-huge --no-shconf"), "{e}");
    }

    #[test]
    fn hugepages_all_in_use() {
        let h = FakeHost::new();
        h.size(2048, 256, 0);
        let e = h.check(&[], 1).unwrap_err();
        assert!(matches!(e, DpdkError::HugepagesExhausted { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("2048kB: 256 reserved, 0 free"), "{msg}");
        assert!(msg.contains("rtemap_"), "{msg}");
    }

    #[test]
    fn one_size_with_free_pages_is_enough() {
        let h = FakeHost::new();
        h.size(2048, 256, 0).size(1048576, 2, 2);
        assert!(h.check(&[], 1).is_ok());
    }

    #[test]
    fn meminfo_fallback_without_sysfs() {
        let h = FakeHost::new();
        fs::remove_dir_all(&h.paths.hugepages).unwrap();
        h.meminfo(0, 0);
        assert_eq!(h.check(&[], 1).unwrap_err(), DpdkError::NoHugepages);
        h.meminfo(128, 64);
        let r = h.check(&[], 1).unwrap();
        assert_eq!(r.hugepages, vec![HugepageSize { size_kb: 2048, total: 128, free: 64 }]);
    }

    #[test]
    fn hugetlbfs_not_mounted() {
        let h = FakeHost::new();
        h.size(2048, 256, 256).mounts("proc /proc proc rw 0 0\ntmpfs /dev/shm tmpfs rw 0 0\n");
        let e = h.check(&["-l", "0-1"], 1).unwrap_err();
        assert_eq!(e, DpdkError::HugetlbfsNotMounted);
        assert!(e.to_string().contains("mount -t hugetlbfs nodev /dev/hugepages"), "{e}");
        // --in-memory maps hugepages anonymously: no mount needed.
        assert!(h.check(&["--in-memory", "-l", "0-1"], 1).is_ok());
    }

    #[test]
    fn huge_dir_must_be_a_mount() {
        let h = FakeHost::new();
        h.size(2048, 256, 256).mounts("nodev /mnt/huge\\040pages hugetlbfs rw 0 0\n");
        assert!(h.check(&["--huge-dir", "/mnt/huge pages/"], 1).is_ok());
        assert!(h.check(&["--huge-dir=/mnt/huge pages"], 1).is_ok());
        let e = h.check(&["--huge-dir", "/mnt/other"], 1).unwrap_err();
        assert_eq!(e, DpdkError::HugeDirNotMounted("/mnt/other".into()));
    }

    #[test]
    fn lcore_list_too_short() {
        let h = FakeHost::new();
        h.size(2048, 256, 256);
        let e = h.check(&["-l", "0"], 1).unwrap_err();
        assert!(matches!(e, DpdkError::NotEnoughLcores { needed: 2, .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("1 worker(s) need 2 lcores"), "{msg}");
        assert!(msg.contains("`-l 0-1`"), "{msg}");
        // Attached value form.
        assert!(matches!(h.check(&["-l0"], 1).unwrap_err(), DpdkError::NotEnoughLcores { .. }));
    }

    #[test]
    fn machine_too_small() {
        let h = FakeHost::new();
        h.size(2048, 256, 256).cpus("0-1");
        let e = h.check(&[], 3).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("only 2 CPU(s) (0-1)"), "{msg}");
        assert!(msg.contains("lower `workers` to 1"), "{msg}");
        let e = h.check(&["-l", "0,1"], 2).unwrap_err();
        assert!(e.to_string().contains("lower `workers` to 1"), "{e}");
        h.cpus("0");
        let e = h.check(&[], 1).unwrap_err();
        assert!(e.to_string().contains("at least 2 CPUs"), "{e}");
    }

    #[test]
    fn cpus_outside_affinity() {
        let h = FakeHost::new();
        h.size(2048, 256, 256).cpus("0-1");
        let e = h.check(&["-l", "0-3"], 1).unwrap_err();
        assert_eq!(
            e,
            DpdkError::CpusNotAllowed {
                option: "-l".into(),
                value: "0-3".into(),
                cpus: "2-3".into(),
                allowed: "0-1".into()
            }
        );
        let e = h.check(&["-c", "0x5"], 1).unwrap_err();
        assert!(matches!(e, DpdkError::CpusNotAllowed { ref cpus, .. } if cpus == "2"), "{e}");
    }

    #[test]
    fn core_mask_and_lcores_map() {
        let h = FakeHost::new();
        h.size(2048, 256, 256).cpus("0-3");
        assert_eq!(h.check(&["-c", "0xf"], 3).unwrap().lcores, 4);
        assert_eq!(h.check(&["-c3"], 1).unwrap().lcores, 2);
        // Two lcores sharing CPU 0 are two lcores.
        assert_eq!(h.check(&["--lcores", "(0,1)@0"], 1).unwrap().lcores, 2);
        assert_eq!(h.check(&["--lcores=0@1,(2-3)@(2,3)"], 2).unwrap().lcores, 3);
        let e = h.check(&["--lcores", "0@7"], 0).unwrap_err();
        assert!(matches!(e, DpdkError::CpusNotAllowed { .. }), "{e}");
    }

    #[test]
    fn bad_lcore_options() {
        let h = FakeHost::new();
        h.size(2048, 256, 256);
        for (args, what) in [
            (&["-l", "a-b"][..], "not a CPU number"),
            (&["-l", "3-1"][..], "backwards"),
            (&["-l", ""][..], "empty"),
            (&["-c", "0xg"][..], "hexadecimal"),
            (&["-c", "0x0"][..], "no CPU"),
            (&["--lcores", "(0,1@0"][..], "unbalanced"),
            (&["-l", "200"][..], "RTE_MAX_LCORE"),
        ] {
            let e = h.check(args, 0).unwrap_err();
            assert!(matches!(e, DpdkError::BadEalOption { .. }), "{args:?}: {e}");
            assert!(e.to_string().contains(what), "{args:?}: {e}");
        }
    }

    #[test]
    fn other_options_are_ignored() {
        let h = FakeHost::new();
        h.size(2048, 256, 256);
        let r = h.check(
            &["--vdev", "net_af_packet0,iface=front", "--file-prefix", "lb1", "-l", "0-1", "--log-level", "8"],
            1,
        );
        assert_eq!(r.unwrap().lcores, 2);
    }

    #[test]
    fn unreadable_status_is_reported() {
        let h = FakeHost::new();
        h.size(2048, 256, 256);
        fs::remove_file(&h.paths.self_status).unwrap();
        let e = h.check(&[], 1).unwrap_err();
        assert!(matches!(e, DpdkError::HostInfo { .. }), "{e}");
        assert!(e.to_string().contains("status"), "{e}");
    }

    #[test]
    fn unescape() {
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
        assert_eq!(unescape_mount("/plain"), "/plain");
        assert_eq!(unescape_mount("/end\\04"), "/end\\04");
    }
}
