//! The BIRD 2 include file: one static route per announced VIP, from one template.
//!
//! The file defines two static protocols, [`PROTO_V4`] (channel `ipv4`) and [`PROTO_V6`]
//! (channel `ipv6`), each always present (possibly empty), so the operator's BIRD
//! configuration can name them in its export filters whatever is announced. A VIP is a
//! host route (/32 or /128) of type `blackhole`: BIRD needs no next hop for it, and BGP
//! sends it with this node's address as next hop (`next hop self`); it must not be
//! exported into the node's kernel, where rvs's VIPs have no business. Withdrawn VIPs are
//! listed in a comment with their reasons, for an operator reading the file.
//!
//! The text is a pure function of the decisions ([`render`]), checked against golden
//! files (`controlplane/src/bgp/golden/`) for every combination of states, and each golden
//! file is parsed by `bird -p` when BIRD is installed. The lab's node configurations
//! (`vm-testbed/bird/node-lb{1,2}.conf`, the example an operator copies) are checked to
//! export [`PROTO_V4`] in their `ipv4` channel and [`PROTO_V6`] in their `ipv6` one (MP-BGP,
//! with the node's IPv6 address as `next hop address`), and parsed the same way.

use std::fmt::Write;
use std::net::IpAddr;

use super::decide::VipDecision;

/// The static protocol holding the IPv4 VIPs.
pub const PROTO_V4: &str = "rvs_vips4";
/// The static protocol holding the IPv6 VIPs.
pub const PROTO_V6: &str = "rvs_vips6";

const HEADER: &str = "\
# Written by rvsd ([bgp] include_file): the VIPs this node announces. rvsd rewrites it
# whenever that changes and runs `birdc configure`; do not edit it. Include it at the top
# level of bird.conf and export proto \"rvs_vips4\" / \"rvs_vips6\" to the BGP sessions.
";

/// The include file for `decisions`.
pub fn render(decisions: &[VipDecision]) -> String {
    let mut out = String::from(HEADER);
    let withdrawn: Vec<&VipDecision> = decisions.iter().filter(|d| !d.announced()).collect();
    if !withdrawn.is_empty() {
        out.push_str("#\n");
        for d in withdrawn {
            // Reasons never hold a newline (service names, numbers, state words).
            let _ = writeln!(out, "# withdrawn {}: {}", d.vip, d.why().replace('\n', " "));
        }
    }
    for (proto, channel, v6) in [(PROTO_V4, "ipv4", false), (PROTO_V6, "ipv6", true)] {
        let _ = write!(out, "\nprotocol static {proto} {{\n\t{channel};\n");
        for d in decisions.iter().filter(|d| d.announced() && d.vip.is_ipv6() == v6) {
            let len = match d.vip {
                IpAddr::V4(_) => 32,
                IpAddr::V6(_) => 128,
            };
            let _ = writeln!(out, "\troute {}/{len} blackhole;", d.vip);
        }
        out.push_str("}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use super::super::decide::{decide, NodeView, ServiceHealth, VrrpRole};
    use super::*;

    fn golden_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bgp/golden")
    }

    /// Compares `text` with golden file `name` (`RVS_BGP_BLESS=1` rewrites it), then has
    /// BIRD parse it when `bird` is installed.
    fn golden(name: &str, text: &str) {
        let path = golden_dir().join(name);
        if std::env::var_os("RVS_BGP_BLESS").is_some() {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&path, text).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (RVS_BGP_BLESS=1 writes it)", path.display()));
        assert_eq!(text, want, "{name} differs from its golden file");
        bird_parses(&path);
    }

    /// `bird -p` on a configuration that includes `file`; skipped (and said so) when
    /// BIRD is not installed.
    fn bird_parses(file: &Path) {
        if which("bird").is_err() {
            eprintln!("bird not installed (apt-get install bird2): {} not parsed by BIRD", file.display());
            return;
        }
        let dir = std::env::temp_dir().join(format!("rvs-bird-parse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let main = dir.join(format!("{}.conf", file.file_stem().unwrap().to_string_lossy()));
        std::fs::write(&main, format!("router id 10.0.0.1;\nprotocol device {{ }}\ninclude \"{}\";\n", file.display()))
            .unwrap();
        bird_parses_main(&main);
        let _ = std::fs::remove_file(&main);
    }

    /// `bird -p` on the whole configuration `main`; skipped (and said so) when BIRD is not
    /// installed.
    fn bird_parses_main(main: &Path) {
        let Ok(bird) = which("bird") else {
            eprintln!("bird not installed (apt-get install bird2): {} not parsed by BIRD", main.display());
            return;
        };
        let out = std::process::Command::new(bird).arg("-p").arg("-c").arg(main).output().unwrap();
        assert!(out.status.success(), "bird -p refused {}: {}", main.display(), String::from_utf8_lossy(&out.stderr));
    }

    fn which(name: &str) -> Result<PathBuf, ()> {
        for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin"] {
            let p = Path::new(dir).join(name);
            if p.exists() {
                return Ok(p);
            }
        }
        Err(())
    }

    fn view(stalled: bool, quorum_met: bool, vrrp: Option<bool>) -> NodeView {
        let vip: IpAddr = "10.10.0.100".parse().unwrap();
        NodeView {
            stalled_workers: if stalled { vec![0] } else { Vec::new() },
            services: vec![
                ServiceHealth {
                    name: "tcp/10.10.0.100/80".into(),
                    vip,
                    healthy: if quorum_met { 3 } else { 1 },
                    servers: 3,
                    quorum: 2,
                },
                // A second VIP that is always fine but for the node-wide conditions.
                ServiceHealth {
                    name: "udp/10.10.0.101/53".into(),
                    vip: "10.10.0.101".parse().unwrap(),
                    healthy: 2,
                    servers: 2,
                    quorum: 1,
                },
            ],
            vrrp: match vrrp {
                None => BTreeMap::new(),
                Some(master) => BTreeMap::from([(
                    vip,
                    VrrpRole { vrid: 51, master, state: if master { "master" } else { "backup" }.into() },
                )]),
            },
        }
    }

    #[test]
    fn every_combination_of_states_matches_its_golden_file() {
        for stalled in [false, true] {
            for quorum_met in [true, false] {
                for vrrp in [None, Some(true), Some(false)] {
                    let name = format!(
                        "workers-{}_quorum-{}_vrrp-{}.conf",
                        if stalled { "stalled" } else { "polling" },
                        if quorum_met { "met" } else { "short" },
                        match vrrp {
                            None => "none",
                            Some(true) => "master",
                            Some(false) => "backup",
                        }
                    );
                    let d = decide(&view(stalled, quorum_met, vrrp));
                    let announced = !stalled && quorum_met && vrrp != Some(false);
                    assert_eq!(d[0].announced(), announced, "{name}");
                    assert_eq!(d[1].announced(), !stalled, "{name}: the other VIP");
                    golden(&name, &render(&d));
                }
            }
        }
    }

    #[test]
    fn nothing_configured_still_defines_both_protocols() {
        golden("empty.conf", &render(&[]));
    }

    #[test]
    fn ipv6_vips_go_to_the_ipv6_protocol_as_128s() {
        let view = NodeView {
            services: vec![
                ServiceHealth {
                    name: "tcp/[fd00:10::100]/80".into(),
                    vip: "fd00:10::100".parse().unwrap(),
                    healthy: 1,
                    servers: 1,
                    quorum: 1,
                },
                ServiceHealth {
                    name: "tcp/[fd00:10::101]/80".into(),
                    vip: "fd00:10::101".parse().unwrap(),
                    healthy: 0,
                    servers: 1,
                    quorum: 1,
                },
                ServiceHealth {
                    name: "tcp/10.10.0.100/80".into(),
                    vip: "10.10.0.100".parse().unwrap(),
                    healthy: 1,
                    servers: 1,
                    quorum: 1,
                },
            ],
            ..NodeView::default()
        };
        let text = render(&decide(&view));
        assert!(text.contains("\troute fd00:10::100/128 blackhole;\n"));
        assert!(!text.contains("route fd00:10::101"));
        golden("both-families.conf", &text);
    }

    /// The lab's node configurations (`vm-testbed/bird/node-lb{1,2}.conf`, the operator's
    /// example) export both protocols, IPv6 VIPs in an `ipv6` channel with an IPv6 next
    /// hop, and BIRD parses each with a file of both families included in place of the
    /// node's.
    #[test]
    fn the_lab_node_configs_export_both_families() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let included = golden_dir().join("both-families.conf");
        for (lb, hop) in [("lb1", "2001:db8:10::1"), ("lb2", "2001:db8:10::10")] {
            let path = repo.join(format!("vm-testbed/bird/node-{lb}.conf"));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let channel = |family: &str| {
                let start = text.find(&format!("\t{family} {{")).unwrap_or_else(|| panic!("{lb}: no {family} channel"));
                let end = text[start..].find("};").map_or(text.len(), |e| start + e);
                text[start..end].to_string()
            };
            assert!(channel("ipv4").contains(&format!("export where proto = \"{PROTO_V4}\";")), "{lb}");
            let v6 = channel("ipv6");
            assert!(v6.contains(&format!("export where proto = \"{PROTO_V6}\";")), "{lb}: {v6}");
            assert!(v6.contains(&format!("next hop address {hop};")), "{lb}: {v6}");
            let include = format!("include \"/run/rvs-lab-{lb}-vips.conf\";");
            assert!(text.contains(&include), "{lb} includes rvsd's file");
            let parsed = std::env::temp_dir().join(format!("rvs-bird-node-{lb}-{}.conf", std::process::id()));
            std::fs::write(&parsed, text.replace(&include, &format!("include \"{}\";", included.display()))).unwrap();
            bird_parses_main(&parsed);
            let _ = std::fs::remove_file(&parsed);
        }
    }
}
