//! The kernel exception path's control side: for each `[[port]]` with `exception = true`,
//! a kernel interface named `rvs-<port name>` that carries the port's address and MAC.
//! The workers decide what crosses it (`rvs_dataplane::exception`); this module makes the
//! interface, checks the host can, and reports its counters.
//!
//! Why `net_tap` and not virtio-user with the vhost-net backend (both replace DPDK's KNI):
//! `net_tap` needs nothing beyond the `tun` module (`/dev/net/tun`), which every kernel
//! that runs containers has and the netns lab already uses; it is one `--vdev` string, its
//! interface appears in the namespace rvsd runs in, and DPDK 22.11's driver supports one
//! queue pair per worker (`IFF_MULTI_QUEUE`), so no worker shares a queue. virtio-user
//! needs `/dev/vhost-net` (the `vhost_net` module, absent in many containers and in this
//! lab's host) for a throughput the exception path (BGP, BFD, SSH) never needs. The price
//! of `net_tap`: one `readv`/`writev` per frame inside the PMD's burst, which the workers
//! keep off the fast path (the interface is read every 200 µs, both ways rate limited).
//!
//! Contract:
//! * [`vdev`]: the `--vdev` string of port `i`'s interface, `net_tap_rvs<i>,iface=rvs-<name>`.
//! * [`preflight`] (before EAL starts): `/dev/net/tun` exists and no interface of that
//!   name exists yet; otherwise an error naming the port and the fix.
//! * [`configure_kernel`] (after the tap port started): the interface gets the port's
//!   MAC and addresses (IPv4 and IPv6) and is brought up, with `ip` (iproute2), in rvsd's
//!   namespace. The
//!   interface disappears when rvsd exits (the tap is not persistent), even on SIGKILL.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use ipnet::IpNet;

use crate::config::{Config, Exception, Port};

/// The tun device `net_tap` opens.
pub const TUN_DEVICE: &str = "/dev/net/tun";

/// The DPDK device name of port `index`'s exception interface (`net_tap` matches the
/// prefix).
pub fn device_name(index: usize) -> String {
    format!("net_tap_rvs{index}")
}

/// The `--vdev` string of port `index`'s exception interface.
pub fn vdev(index: usize, exception: &Exception) -> String {
    format!("{},iface={}", device_name(index), exception.iface)
}

/// Checks that the host can give every exception port its interface: `tun` exists at
/// `tun` and no interface of the name exists under `sys_net` (normally `/sys/class/net`).
pub fn preflight_with(config: &Config, tun: &Path, sys_net: &Path) -> anyhow::Result<()> {
    for p in &config.ports {
        let Some(e) = &p.exception else { continue };
        if !tun.exists() {
            bail!(
                "port `{}`: exception = true needs {} to create kernel interface `{}`, and it does not exist: \
                 load the tun module (`modprobe tun`), give the container the device (e.g. --device /dev/net/tun), \
                 or set exception = false",
                p.name,
                tun.display(),
                e.iface
            );
        }
        if sys_net.join(&e.iface).exists() {
            bail!(
                "port `{}`: a kernel interface named `{}` already exists (another rvsd in this namespace?): \
                 remove it (`ip link del {}`), or rename the port",
                p.name,
                e.iface,
                e.iface
            );
        }
    }
    Ok(())
}

/// [`preflight_with`] on this host.
pub fn preflight(config: &Config) -> anyhow::Result<()> {
    preflight_with(config, Path::new(TUN_DEVICE), Path::new("/sys/class/net"))
}

/// The `ip` commands that give port `p`'s interface its MAC and address(es) and bring it
/// up: IPv6 ones `nodad` (the kernel derives the port's link-local address from the same
/// MAC itself).
pub fn kernel_commands(iface: &str, mac: &str, addresses: &[IpNet], mtu: Option<u16>) -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let mut cmds = vec![s(&["link", "set", "dev", iface, "address", mac])];
    if let Some(m) = mtu {
        cmds.push(s(&["link", "set", "dev", iface, "mtu", &m.to_string()]));
    }
    for a in addresses {
        let mut c = s(&["addr", "replace", &a.to_string(), "dev", iface]);
        if a.addr().is_ipv6() {
            // The address is rvsd's already (the lite stack answers neighbour
            // discovery for it): no duplicate address detection, no tentative wait.
            c.push("nodad".to_string());
        }
        cmds.push(c);
    }
    cmds.push(s(&["link", "set", "dev", iface, "up"]));
    cmds
}

/// Gives port `p`'s exception interface the port's MAC and address and brings it up.
pub fn configure_kernel(p: &Port, exception: &Exception, mac: &str) -> anyhow::Result<()> {
    if !p.ipv6_addresses.is_empty() {
        enable_ipv6(p, &exception.iface)?;
    }
    let addresses: Vec<IpNet> =
        std::iter::once(IpNet::V4(p.address)).chain(p.ipv6_addresses.iter().copied().map(IpNet::V6)).collect();
    for args in kernel_commands(&exception.iface, mac, &addresses, p.mtu) {
        let out = Command::new("ip").args(&args).output().with_context(|| {
            format!("port `{}`: cannot run `ip` (iproute2) to set up kernel interface `{}`", p.name, exception.iface)
        })?;
        if !out.status.success() {
            bail!("port `{}`: `ip {}` failed: {}", p.name, args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
        }
    }
    tracing::info!(port = %p.name, iface = %exception.iface, address = %p.address, ipv6 = ?p.ipv6_addresses, %mac, "exception interface up");
    Ok(())
}

/// Turns IPv6 on for the new interface: a namespace (or a host) may have it off by
/// default (`net.ipv6.conf.default.disable_ipv6 = 1`, as the netns lab's rvsd namespaces
/// do), and the kernel then refuses the port's IPv6 addresses.
fn enable_ipv6(p: &Port, iface: &str) -> anyhow::Result<()> {
    let knob = format!("/proc/sys/net/ipv6/conf/{iface}/disable_ipv6");
    std::fs::write(&knob, "0").with_context(|| {
        format!(
            "port `{}`: cannot turn IPv6 on for kernel interface `{iface}` ({knob}), which its ipv6_addresses need: \
             boot the kernel with IPv6 (no ipv6.disable=1) and run rvsd as root, or remove the port's ipv6_addresses",
            p.name
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::from_toml(text).expect("valid")
    }

    const TWO_PORTS: &str = r#"
[dataplane]
workers = 1
[[port]]
name = "front"
device = "net_af_packet0,iface=front"
address = "10.10.0.1/24"
exception = true
[[port]]
name = "back"
device = "net_af_packet1,iface=back"
address = "10.20.0.1/24"
"#;

    #[test]
    fn vdev_and_commands_name_the_interface() {
        let c = config(TWO_PORTS);
        let e = c.ports[0].exception.as_ref().expect("on");
        assert_eq!(e.iface, "rvs-front");
        assert_eq!(e.rate, rvs_dataplane::exception::DEFAULT_EXCEPTION_RATE);
        assert!(c.ports[1].exception.is_none());
        assert_eq!(vdev(0, e), "net_tap_rvs0,iface=rvs-front");
        let addrs = ["10.10.0.1/24".parse().unwrap(), "2001:db8:10::1/64".parse().unwrap()];
        let cmds = kernel_commands("rvs-front", "02:00:00:00:00:01", &addrs, Some(1500));
        let joined: Vec<String> = cmds.iter().map(|c| c.join(" ")).collect();
        assert_eq!(
            joined,
            [
                "link set dev rvs-front address 02:00:00:00:00:01",
                "link set dev rvs-front mtu 1500",
                "addr replace 10.10.0.1/24 dev rvs-front",
                "addr replace 2001:db8:10::1/64 dev rvs-front nodad",
                "link set dev rvs-front up"
            ]
        );
    }

    #[test]
    fn preflight_names_the_port_and_the_fix() {
        let c = config(TWO_PORTS);
        let dir = std::env::temp_dir().join(format!("rvs-exc-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("net")).unwrap();
        let tun = dir.join("tun");
        let err = preflight_with(&c, &tun, &dir.join("net")).unwrap_err().to_string();
        assert!(
            err.contains("port `front`") && err.contains("modprobe tun") && err.contains("exception = false"),
            "{err}"
        );
        std::fs::write(&tun, b"").unwrap();
        assert!(preflight_with(&c, &tun, &dir.join("net")).is_ok());
        std::fs::create_dir_all(dir.join("net/rvs-front")).unwrap();
        let err = preflight_with(&c, &tun, &dir.join("net")).unwrap_err().to_string();
        assert!(err.contains("`rvs-front` already exists") && err.contains("ip link del rvs-front"), "{err}");
        // Without exception ports nothing is needed.
        let none = config(&TWO_PORTS.replace("exception = true\n", ""));
        assert!(preflight_with(&none, &dir.join("missing"), &dir.join("net")).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
