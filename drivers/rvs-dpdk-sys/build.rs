//! Build script: finds the system DPDK with pkg-config, generates bindings with
//! bindgen and compiles the C shim for DPDK's `static inline` functions.
//!
//! Also works out whether EAL needs to be told where the PMD plugins are (see
//! `EXTRA_PMD_DIR` in `src/lib.rs`).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What to do when the build machine lacks the DPDK or clang development packages.
const INSTALL_HINT: &str = "install the build dependencies: `apt-get install libdpdk-dev libclang-dev pkg-config` \
     (or run `bash vm-testbed/setup-host.sh`, which installs them)";

fn main() {
    for f in ["build.rs", "csrc/shim.c", "csrc/shim.h", "csrc/wrapper.h"] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=LIBCLANG_PATH");

    let lib = match pkg_config::Config::new().atleast_version("22.11").probe("libdpdk") {
        Ok(lib) => lib,
        Err(e) => {
            panic!("\n\nrvs-dpdk-sys: pkg-config could not find DPDK (libdpdk >= 22.11): {e}\n=> {INSTALL_HINT}\n\n")
        }
    };
    let cflags = dpdk_cflags();

    // The shim: one exported function per DPDK inline that rvs calls.
    let mut build = cc::Build::new();
    build.file("csrc/shim.c").opt_level(3).warnings(true);
    for path in &lib.include_paths {
        build.include(path);
    }
    for flag in &cflags {
        build.flag(flag);
    }
    build.compile("rvs_dpdk_shim");

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    generate_bindings(&cflags, &out.join("bindings.rs"));

    let extra = extra_pmd_dir(&lib.link_paths);
    println!("cargo:rustc-env=RVS_DPDK_EXTRA_PMD_DIR={}", extra.as_deref().unwrap_or(""));
    println!("cargo:version={}", lib.version);
}

/// `pkg-config --cflags libdpdk` split into words. The pkg-config crate only reports
/// include paths and defines, but DPDK also needs `-include rte_config.h` and its
/// `-march` to compile its headers.
fn dpdk_cflags() -> Vec<String> {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let output = Command::new(&pkg_config).args(["--cflags", "libdpdk"]).output();
    match output {
        Ok(o) if o.status.success() => {
            String::from_utf8_lossy(&o.stdout).split_whitespace().map(str::to_string).collect()
        }
        Ok(o) => panic!(
            "\n\nrvs-dpdk-sys: `{pkg_config} --cflags libdpdk` failed: {}\n=> {INSTALL_HINT}\n\n",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("\n\nrvs-dpdk-sys: cannot run `{pkg_config}`: {e}\n=> {INSTALL_HINT}\n\n"),
    }
}

fn generate_bindings(cflags: &[String], dest: &Path) {
    let builder = bindgen::Builder::default()
        .header("csrc/wrapper.h")
        .clang_args(cflags)
        .clang_arg("-Icsrc")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("rte_.*|rvs_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*|LCORE_ID_ANY|SOCKET_ID_ANY")
        // Packed structs holding aligned members, which Rust cannot express.
        .opaque_type("rte_gtp_psc_.*")
        .opaque_type("rte_l2tpv2_.*")
        .opaque_type("rte_arp_.*")
        .derive_debug(false)
        .derive_default(true)
        .prepend_enum_name(false)
        // DPDK's comments are not Markdown; as doc comments they would become failing
        // doctests. Read the headers instead.
        .generate_comments(false)
        .layout_tests(false);
    // bindgen panics (rather than erroring) when it cannot load libclang.
    let generated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || builder.generate()));
    match generated {
        Ok(Ok(bindings)) => bindings.write_to_file(dest).unwrap_or_else(|e| panic!("writing {}: {e}", dest.display())),
        Ok(Err(e)) => panic!("\n\nrvs-dpdk-sys: bindgen failed on the DPDK headers: {e}\n=> {INSTALL_HINT}\n\n"),
        Err(_) => panic!(
            "\n\nrvs-dpdk-sys: bindgen could not run libclang (see the message above)\n=> {INSTALL_HINT}; \
             set LIBCLANG_PATH if libclang is installed in an unusual place\n\n"
        ),
    }
}

/// EAL finds its PMD plugins (drivers for net_ring, net_af_packet, NICs, and the ring
/// mempool handler) through a directory compiled into librte_eal and advertised there
/// as `DPDK_PLUGIN_PATH=<dir>`. Debian's build has one. Returns a directory to pass with
/// `-d` only when that default is missing or does not exist and a `dpdk/pmds-*`
/// directory is found next to the libraries.
fn extra_pmd_dir(link_paths: &[PathBuf]) -> Option<String> {
    let mut libdirs: Vec<PathBuf> = link_paths.to_vec();
    if let Ok(o) = Command::new(env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into()))
        .args(["--variable=libdir", "libdpdk"])
        .output()
    {
        let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if !s.is_empty() {
            libdirs.push(PathBuf::from(s));
        }
    }
    for dir in &libdirs {
        if let Some(default) = embedded_plugin_path(&dir.join("librte_eal.so")) {
            if Path::new(&default).is_dir() {
                return None;
            }
        }
    }
    libdirs.iter().find_map(|dir| {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("dpdk"))
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("pmds-")))
            .collect();
        found.sort();
        found.pop().map(|p| p.display().to_string())
    })
}

/// The `DPDK_PLUGIN_PATH=` string librte_eal embeds for `dpdk-pmdinfo`, if any.
fn embedded_plugin_path(eal: &Path) -> Option<String> {
    let bytes = std::fs::read(eal).ok()?;
    let key = b"DPDK_PLUGIN_PATH=";
    let at = bytes.windows(key.len()).position(|w| w == key)? + key.len();
    let end = bytes[at..].iter().position(|&b| b == 0)? + at;
    let path = std::str::from_utf8(&bytes[at..end]).ok()?.to_string();
    (!path.is_empty()).then_some(path)
}
