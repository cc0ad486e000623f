//! Config tests: the design's sketch parses; a table of bad files each name the right
//! field; every error of a file is reported, not just the first.

use super::*;
use std::net::IpAddr;

/// The design's TOML sketch, minus `[ha]` (which needs a key file on disk).
const SKETCH: &str = r#"
[dataplane]
workers = 1
idle = "adaptive"
eal_args = ["--in-memory"]
[[port]]
name = "front"
device = "net_af_packet0,iface=front"
address = "10.10.0.1/24"
[[port]]
name = "back"
device = "net_af_packet1,iface=back"
address = "10.20.0.1/24"
local_addresses = ["10.20.0.200", "10.20.0.201"]
[[route]]
prefix = "0.0.0.0/0"
via = "10.10.0.254"
[api]
listen = "127.0.0.1:8700"
[[service]]
protocol = "tcp"
address = "10.10.0.100"
port = 80
scheduler = "wrr"
persistence = "300s"
[service.health]
kind = "http"
path = "/"
interval = "1s"
timeout = "500ms"
rise = 2
fall = 2
[[service.server]]
address = "10.20.0.11"
port = 80
weight = 3
forward = "nat"
"#;

fn key_file(mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("rvs-cfg-test-{}-{n}.key", std::process::id()));
    std::fs::write(&p, "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// The design sketch's `[[ha.instance]]` (its `[ha]` table is added by the callers).
const HA_INSTANCE: &str = r#"
[[ha.instance]]
vrid = 51
port = "front"
priority = 200
advert_interval = "100ms"
preempt = true
preempt_delay = "0s"
addresses = ["10.10.0.100", "10.20.0.100"]
"#;

/// The sketch with the design's whole `[ha]`, its key file of `mode` on disk.
fn with_ha(mode: u32) -> (String, std::path::PathBuf) {
    let key = key_file(mode);
    let text = format!(
        "{SKETCH}\n[ha]\nkey_file = \"{}\"\nsync_listen = \"10.30.0.1:8848\"\nsync_peer = \"10.30.0.2:8848\"\n{HA_INSTANCE}",
        key.display()
    );
    (text, key)
}

#[test]
fn design_sketch_is_valid() {
    let (text, key) = with_ha(0o600);
    let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(key).unwrap();
    assert_eq!(c.dataplane.workers, 1);
    assert_eq!(c.dataplane.idle, Idle::Adaptive);
    assert_eq!(c.dataplane.mempool_size, defaults::MEMPOOL_SIZE);
    assert_eq!(c.ports.len(), 2);
    assert_eq!(c.ports[0].device, Device::Vdev("net_af_packet0,iface=front".into()));
    assert_eq!(c.ports[0].device.port_name(), "net_af_packet0");
    assert_eq!(c.ports[1].address.to_string(), "10.20.0.1/24");
    assert_eq!(c.ports[1].local_addresses, vec![Ipv4Addr::new(10, 20, 0, 200), Ipv4Addr::new(10, 20, 0, 201)]);
    assert_eq!(c.routes[0].port, 0);
    assert_eq!(c.api.listen, "127.0.0.1:8700".parse().unwrap());
    let s = &c.services[0];
    assert_eq!((s.protocol, s.port, s.scheduler), (L4Proto::Tcp, 80, Scheduler::Wrr));
    assert_eq!(s.persistence, Some(Duration::from_secs(300)));
    let h = s.health.as_ref().unwrap();
    assert_eq!(
        h.kind,
        HealthKind::Http { path: "/".into(), host: None, status: "200-399".parse().unwrap(), body: None }
    );
    assert_eq!((h.fastinter, h.downinter, h.start_up, h.on_down), (h.interval, h.interval, true, OnDown::Quiesce));
    assert!(s.agent.is_none() && s.sorry_server.is_none() && !s.servers[0].backup);
    assert_eq!(h.timeout, Duration::from_millis(500));
    assert_eq!(s.servers[0].weight, 3);
    assert_eq!(s.servers[0].forward, Forward::Nat);
    let ha = c.ha.unwrap();
    let sync = ha.sync.as_ref().expect("sync_listen, sync_peer and key_file set: sync is on");
    assert_eq!((sync.listen, sync.peer), ("10.30.0.1:8848".parse().unwrap(), "10.30.0.2:8848".parse().unwrap()));
    assert_eq!((sync.refresh, sync.failback_limit), (Duration::from_secs(30), Duration::from_secs(30)));
    let i = &ha.instances[0];
    assert_eq!((i.vrid, i.port, i.priority, i.version, i.preempt), (51, 0, 200, 3, true));
    assert_eq!((i.advert_interval, i.preempt_delay), (Duration::from_millis(100), Duration::ZERO));
    assert_eq!(i.addresses, ["10.10.0.100".parse::<std::net::IpAddr>().unwrap(), "10.20.0.100".parse().unwrap()]);
    assert_eq!((i.garp_master_repeat, i.garp_master_delay), (5, Duration::from_secs(5)));
    assert!(i.track_workers && i.track_ports.is_empty() && i.track_services.is_empty() && i.notify.is_empty());
    assert_eq!(i.track_effect, TrackEffect::Fault);
}

#[test]
fn ha_instances_parse_every_field() {
    let text = format!(
        "{SKETCH}\n[ha]\n[[ha.instance]]\nvrid = 7\nport = \"back\"\npriority = 100\nversion = 2\nadvert_interval = \"2s\"\n\
         preempt = false\npreempt_delay = \"30s\"\naddresses = [\"10.10.0.100\", \"10.20.0.200\"]\ngarp_master_repeat = 2\n\
         garp_master_delay = \"0s\"\ntrack_ports = [\"front\", \"back\"]\ntrack_workers = false\n\
         track_services = [\"tcp/10.10.0.100/80\"]\ntrack_service_weight = 50\nnotify = [\"/bin/logger\", \"vrrp\"]\n"
    );
    let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    let i = &c.ha.as_ref().unwrap().instances[0];
    assert_eq!((i.vrid, i.port, i.priority, i.version, i.preempt), (7, 1, 100, 2, false));
    assert_eq!((i.advert_interval, i.preempt_delay), (Duration::from_secs(2), Duration::from_secs(30)));
    assert_eq!((i.garp_master_repeat, i.garp_master_delay), (2, Duration::ZERO));
    assert_eq!((i.track_ports.as_slice(), i.track_workers), (&[0, 1][..], false));
    assert_eq!(
        i.track_services,
        [ServiceKey { proto: L4Proto::Tcp, vip: Ipv4Addr::new(10, 10, 0, 100).into(), port: 80 }]
    );
    assert_eq!(i.track_effect, TrackEffect::Weight(50));
    assert_eq!(i.notify, ["/bin/logger", "vrrp"]);
    assert_eq!(c.not_acted_on(), [], "VRRP is acted on; no sync fields are set");
}

/// Connection sync is acted on: a file with the whole `[ha]` warns about nothing, and the
/// sync settings parse.
#[test]
fn sync_is_acted_on_and_its_settings_parse() {
    let (text, key) = with_ha(0o600);
    let text = text.replace(
        "sync_peer = \"10.30.0.2:8848\"",
        "sync_peer = \"10.30.0.2:8848\"\nsync_refresh = \"5s\"\nfailback_sync_limit = \"2m\"",
    );
    let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(key).unwrap();
    assert_eq!(c.not_acted_on(), [], "sync and VRRP are acted on");
    let sync = c.ha.unwrap().sync.unwrap();
    assert_eq!((sync.refresh, sync.failback_limit), (Duration::from_secs(5), Duration::from_secs(120)));

    // A key without sync addresses would authenticate nothing: refused, naming it.
    let (text, key) = with_ha(0o600);
    let text = text.replace("sync_listen = \"10.30.0.1:8848\"\nsync_peer = \"10.30.0.2:8848\"\n", "");
    let e = Config::from_toml(&text).unwrap_err();
    std::fs::remove_file(key).unwrap();
    assert!(e.names("ha.key_file") && e.to_string().contains("sync, which is off"), "{e}");
}

#[test]
fn agent_backup_and_sorry_server_act() {
    let c = Config::from_toml(
        r#"
[[port]]
name = "p0"
device = "0000:03:00.0"
address = "192.168.1.10/24"
[[service]]
protocol = "tcp"
address = "192.168.1.100"
port = 80
scheduler = "rr"
sorry_server = "192.168.1.30:80"
[service.agent]
port = 9999
[[service.server]]
address = "192.168.1.20"
[[service.server]]
address = "192.168.1.21"
backup = true
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let w = c.not_acted_on();
    let fields: Vec<&str> = w.iter().map(|w| w.field.as_str()).collect();
    assert!(fields.is_empty(), "{w:?}");
}

#[test]
fn system_load_is_wrr_over_the_agents_weights() {
    let text = SKETCH.replace("scheduler = \"wrr\"", "scheduler = \"system-load\"") + "[service.agent]\nport = 9999\n";
    let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    let s = &c.services[0];
    assert_eq!((s.scheduler, s.system_load), (Scheduler::Wrr, true));
    assert_eq!(crate::model::ServiceView::new(s).scheduler, "system-load");
    let plain = Config::from_toml(SKETCH).unwrap_or_else(|e| panic!("{e}"));
    assert!(!plain.services[0].system_load);
}

#[test]
fn probe_ports_default_and_set() {
    let text = |extra: &str| {
        format!(
            "[dataplane]\nworkers = 1\n{extra}\n[[port]]\nname = \"p0\"\ndevice = \"0000:03:00.0\"\naddress = \"192.168.1.10/24\"\n"
        )
    };
    let c = Config::from_toml(&text("")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.dataplane.probe_ports, rvs_dataplane::punt::DEFAULT_PROBE_PORTS);
    let c = Config::from_toml(&text("probe_ports = \"40000-40099\"")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.dataplane.probe_ports, 40000..=40099);
}

#[test]
fn defaults_apply() {
    let c = Config::from_toml(
        r#"
[[port]]
name = "p0"
device = "0000:03:00.0"
address = "192.168.1.10/24"
[[service]]
protocol = "udp"
address = "192.168.1.100"
port = 53
scheduler = "rr"
[[service.server]]
address = "192.168.1.20"
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.dataplane.workers, defaults::WORKERS);
    assert_eq!(c.dataplane.rx_descriptors, 1024);
    assert_eq!(c.dataplane.neighbour_timeout, defaults::NEIGHBOUR_TIMEOUT);
    assert_eq!(c.ports[0].device, Device::Pci("0000:03:00.0".into()));
    assert_eq!(c.ports[0].mtu, None);
    assert_eq!(c.api.listen.to_string(), defaults::API_LISTEN);
    let r = &c.services[0].servers[0];
    assert_eq!((r.port, r.weight, r.forward), (53, 1, Forward::Dr));
    assert!(c.ha.is_none());
    assert!(!c.uses_fullnat());
    assert_eq!(c.not_acted_on(), [], "no [service.health], no [ha]: nothing to warn about");
}

#[test]
fn every_scheduler_name_is_accepted() {
    let names = "rr wrr lc wlc sed nq sh dh lblc lblcr fo ovf mh twos conhash sessions user-hash";
    assert_eq!(Scheduler::ALL.len(), names.split(' ').count());
    for name in names.split(' ') {
        let text = SKETCH.replace("scheduler = \"wrr\"", &format!("scheduler = \"{name}\""));
        let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.services[0].scheduler.name(), name);
    }
}

#[test]
fn mac_display_and_parse() {
    let m: MacAddr = "02:AB:cd:00:11:ff".parse().unwrap();
    assert_eq!(m.to_string(), "02:ab:cd:00:11:ff");
    assert!(m.is_unicast());
    for bad in ["", "02:ab:cd:00:11", "02:ab:cd:00:11:ff:00", "2:ab:cd:00:11:ff", "zz:ab:cd:00:11:ff"] {
        assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
    }
}

#[test]
fn eal_lcore_detection() {
    let dp = |args: &[&str]| Dataplane {
        workers: 1,
        idle: Idle::Busy,
        eal_args: args.iter().map(|s| s.to_string()).collect(),
        mempool_size: 0,
        rx_descriptors: 0,
        tx_descriptors: 0,
        neighbour_timeout: Duration::ZERO,
        neighbour_retry: Duration::ZERO,
        conn_capacity: 16,
        probe_ports: 61000..=61999,
        tcp_timeout: Duration::ZERO,
        tcp_fin_timeout: Duration::ZERO,
        udp_timeout: Duration::ZERO,
        half_open_timeout: Duration::ZERO,
        expire_nodest_conn: false,
        syn_proxy_threshold: 1000,
    };
    assert!(!dp(&["--in-memory", "--log-level=7", "--no-huge"]).eal_sets_lcores());
    assert!(dp(&["-l", "2-3"]).eal_sets_lcores());
    assert!(dp(&["-l2-3"]).eal_sets_lcores());
    assert!(dp(&["-c", "0x3"]).eal_sets_lcores());
    assert!(dp(&["--lcores=0@0,1@1"]).eal_sets_lcores());
}

#[test]
fn syntax_error_has_line_and_column() {
    let e = Config::from_toml("[dataplane]\nworkers = 1\nidle = \n").unwrap_err();
    assert_eq!(e.errors.len(), 1);
    assert!(e.errors[0].message.contains("line 3"), "{e}");
    assert!(e.errors[0].message.contains("column"), "{e}");
}

#[test]
fn unknown_field_is_named_with_position() {
    let text = SKETCH.replace("weight = 3", "wieght = 3");
    let e = Config::from_toml(&text).unwrap_err();
    assert_eq!(e.errors.len(), 1, "{e}");
    assert!(e.errors[0].field.starts_with("service[0].server[0]"), "{e}");
    assert!(e.errors[0].message.contains("wieght"), "{e}");
    assert!(e.errors[0].message.contains("line "), "{e}");
}

#[test]
fn wrong_type_is_named() {
    let e = Config::from_toml(&SKETCH.replace("port = 80\nscheduler", "port = \"80\"\nscheduler")).unwrap_err();
    assert_eq!(e.errors[0].field, "service[0].port", "{e}");
}

#[test]
fn all_errors_are_reported_at_once() {
    let text = SKETCH
        .replace("workers = 1", "workers = 0")
        .replace("address = \"10.20.0.1/24\"", "address = \"10.20.0.1\"")
        .replace("scheduler = \"wrr\"", "scheduler = \"fastest\"")
        .replace("weight = 3", "weight = 70000");
    let e = Config::from_toml(&text).unwrap_err();
    for f in ["dataplane.workers", "port[1].address", "service[0].scheduler", "service[0].server[0].weight"] {
        assert!(e.names(f), "{f} missing from:\n{e}");
    }
    let shown = e.to_string();
    assert!(shown.starts_with("invalid configuration (4 errors):"), "{shown}");
    assert_eq!(shown.lines().count(), 5, "{shown}");
}

#[test]
fn ha_key_file_mode_is_checked() {
    let (text, key) = with_ha(0o644);
    let e = Config::from_toml(&text).unwrap_err();
    std::fs::remove_file(&key).unwrap();
    assert!(e.names("ha.key_file"), "{e}");
    assert!(e.to_string().contains("chmod 600"), "{e}");

    let (text, key) = with_ha(0o400);
    let ok = Config::from_toml(&text);
    std::fs::remove_file(&key).unwrap();
    assert!(ok.is_ok());
}

/// One bad config: what to change in [`SKETCH`] (or text to append) and the field
/// that must be named.
struct Bad {
    from: &'static str,
    to: &'static str,
    field: &'static str,
    says: &'static str,
}

const fn bad(from: &'static str, to: &'static str, field: &'static str, says: &'static str) -> Bad {
    Bad { from, to, field, says }
}

/// `to` is appended to the sketch instead of replacing `from` when `from` is empty;
/// an empty `field` means a file-level TOML error whose message contains `says`.
const BAD: &[Bad] = &[
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]\nipv6_addresses = [\"2001:db8:2::1/64\"]\n[[route]]\nprefix = \"::/0\"\nvia = \"2001:db8:3::1\"",
        "route[0].via",
        "not on any port's IPv6 prefix (2001:db8:2::/64)",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]\nipv6_addresses = [\"2001:db8:2::1/64\"]\n[[route]]\nprefix = \"::/0\"\nvia = \"fe80::1\"",
        "route[0].via",
        "link-local next hops are not supported",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]\nipv6_addresses = [\"2001:db8:2::1/64\"]\n[[route]]\nprefix = \"::/0\"\nvia = \"10.20.0.254\"",
        "route[0].via",
        "is IPv4 but the route's prefix is IPv6",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]\nipv6_addresses = [\"2001:db8:2::1/64\"]\n[[route]]\nprefix = \"::/0\"\nvia = \"2001:db8:2::1\"",
        "route[0].via",
        "own address",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]\nipv6_addresses = [\"2001:db8:2::1/64\"]\n[[route]]\nprefix = \"2001:db8:99::1/48\"\nvia = \"2001:db8:2::254\"",
        "route[0].prefix",
        "host bits set",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]\nipv6_addresses = [\"2001:db8:2::1/64\"]\n[[route]]\nprefix = \"2001:db8:99::/200\"\nvia = \"2001:db8:2::254\"",
        "route[0].prefix",
        "not an IPv6 prefix",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]\n[[route]]\nprefix = \"::/0\"\nvia = \"2001:db8:2::254\"",
        "route[0].via",
        "none: add ipv6_addresses to a port",
    ),
    bad("workers = 1", "workers = 0", "dataplane.workers", "set workers = 1"),
    bad("workers = 1", "workers = 65", "dataplane.workers", "between 1 and 64"),
    bad("idle = \"adaptive\"", "idle = \"lazy\"", "dataplane.idle", "busy"),
    bad("eal_args = [\"--in-memory\"]", "eal_args = [\"\"]", "dataplane.eal_args[0]", "empty"),
    bad(
        "eal_args = [\"--in-memory\"]",
        "eal_args = [\"--in-memory\", \"--no-huge\"]",
        "dataplane.eal_args",
        "--no-shconf",
    ),
    bad("workers = 1", "workers = 1\nmempool_size = 2000", "dataplane.mempool_size", "at least"),
    bad("workers = 1", "workers = 1\nrx_descriptors = 1000", "dataplane.rx_descriptors", "power of two"),
    bad("workers = 1", "workers = 1\nneighbour_timeout = \"300\"", "dataplane.neighbour_timeout", "with a unit"),
    bad("workers = 1", "workers = 1\nneighbour_retry = \"10m\"", "dataplane.neighbour_retry", "shorter"),
    bad("workers = 1", "workers = 1\nconn_capacity = 0", "dataplane.conn_capacity", "between 16 and"),
    bad("workers = 1", "workers = 1\nprobe_ports = \"61000\"", "dataplane.probe_ports", "LOW-HIGH"),
    bad("workers = 1", "workers = 1\nprobe_ports = \"500-600\"", "dataplane.probe_ports", "below 1024"),
    bad("workers = 1", "workers = 1\nprobe_ports = \"62000-61000\"", "dataplane.probe_ports", "is empty"),
    bad("workers = 1", "workers = 1\nprobe_ports = \"61000-70000\"", "dataplane.probe_ports", "not a port range"),
    bad("workers = 1", "workers = 1\nconn_capacity = 999999999999", "dataplane.conn_capacity", "between 16 and"),
    bad("workers = 1", "workers = 1\ntcp_timeout = \"0s\"", "dataplane.tcp_timeout", "is zero"),
    bad("workers = 1", "workers = 1\ntcp_fin_timeout = \"300d\"", "dataplane.tcp_fin_timeout", "between 1s"),
    bad("workers = 1", "workers = 1\nhalf_open_timeout = \"0s\"", "dataplane.half_open_timeout", ""),
    bad("workers = 1", "workers = 1\nudp_timeout = \"fast\"", "dataplane.udp_timeout", ""),
    bad(
        "persistence = \"300s\"",
        "persistence = \"300s\"\npersistence_netmask = \"255.0.255.0\"",
        "service[0].persistence_netmask",
        "not a netmask",
    ),
    bad(
        "persistence = \"300s\"",
        "persistence_netmask = \"255.255.255.0\"",
        "service[0].persistence_netmask",
        "only with persistence",
    ),
    bad("address = \"10.20.0.1/24\"", "address = \"10.20.0.1\"", "port[1].address", "prefix length"),
    bad("address = \"10.20.0.1/24\"", "address = \"10.20.0.1/33\"", "port[1].address", "prefix length"),
    bad("address = \"10.20.0.1/24\"", "address = \"10.20.0.0/24\"", "port[1].address", "network address"),
    bad("address = \"10.20.0.1/24\"", "address = \"10.10.0.2/16\"", "port[1].address", "overlaps port[0]"),
    bad("address = \"10.20.0.1/24\"", "address = \"fe80::1/64\"", "port[1].address", "IPv6"),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"2001:db8:20::200\"]",
        "port[1].local_addresses[1]",
        "port without ipv6_addresses",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"2001:db8:2::1\"]\nipv6_addresses = [\"2001:db8:2::1/64\"]",
        "port[1].local_addresses[1]",
        "also in port[1].ipv6_addresses",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"fe80::200\"]\nipv6_addresses = [\"2001:db8:2::1/64\"]",
        "port[1].local_addresses[1]",
        "link-local",
    ),
    bad("name = \"back\"", "name = \"front\"", "port[1].name", "unique"),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]\nipv6_addresses = [\"2001:db8:2::1\"]",
        "port[1].ipv6_addresses[0]",
        "no prefix length",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]\nipv6_addresses = [\"2001:db8:2::1/129\"]",
        "port[1].ipv6_addresses[0]",
        "1 to 128",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]\nipv6_addresses = [\"2001:db8:2::1/0\"]",
        "port[1].ipv6_addresses[0]",
        "1 to 128",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]\nipv6_addresses = [\"ff02::1/64\"]",
        "port[1].ipv6_addresses[0]",
        "multicast",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]\nipv6_addresses = [\"fe80::1/64\"]",
        "port[1].ipv6_addresses[0]",
        "derives its own",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]\nipv6_addresses = [\"::/64\"]",
        "port[1].ipv6_addresses[0]",
        "unspecified",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]\nipv6_addresses = [\"10.20.0.9/24\"]",
        "port[1].ipv6_addresses[0]",
        "is IPv4",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]\nipv6_addresses = [\"2001:db8:2::1/64\", \"2001:db8:2::1/64\"]",
        "port[1].ipv6_addresses[1]",
        "already used by port[1].ipv6_addresses[0]",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]\nipv6_addresses = [\"2001:db8:2::1/64\", \"2001:db8:3::1/64\"]\n[[port]]\nname = \"third\"\ndevice = \"net_af_packet2,iface=third\"\naddress = \"10.30.0.1/24\"\nipv6_addresses = [\"2001:db8:2::2/48\"]",
        "port[2].ipv6_addresses[0]",
        "overlaps port[1].ipv6_addresses[0]",
    ),
    bad("name = \"back\"", "name = \"b a c k\"", "port[1].name", "not a valid port name"),
    bad("device = \"net_af_packet1,iface=back\"", "device = \"eth1\"", "port[1].device", "PCI address"),
    bad(
        "device = \"net_af_packet1,iface=back\"",
        "device = \"net_af_packet0,iface=back\"",
        "port[1].device",
        "already used",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"10.20.0.200\"]",
        "port[1].local_addresses[1]",
        "port[1].local_addresses[0]",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"10.10.0.1\"]",
        "port[1].local_addresses[1]",
        "port[0].address",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\"]\nmac = \"01:00:5e:00:00:01\"",
        "port[1].mac",
        "multicast",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\"]\nmtu = 100",
        "port[1].mtu",
        "between 576",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\"]\nexception_rate = 100",
        "port[1].exception_rate",
        "only with exception = true",
    ),
    bad(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\"]\nexception = true\nexception_rate = 0",
        "port[1].exception_rate",
        "between 1",
    ),
    bad(
        "name = \"back\"",
        "name = \"back-network-1\"\nexception = true",
        "port[1].exception",
        "`rvs-back-network-1`, 18 bytes, but Linux allows 15: shorten the port's name to 11",
    ),
    bad("via = \"10.10.0.254\"", "via = \"192.168.0.1\"", "route[0].via", "not on any port"),
    bad("via = \"10.10.0.254\"", "via = \"10.10.0.1\"", "route[0].via", "own address"),
    bad("prefix = \"0.0.0.0/0\"", "prefix = \"10.0.0.1/8\"", "route[0].prefix", "did you mean \"10.0.0.0/8\""),
    bad("listen = \"127.0.0.1:8700\"", "listen = \"0.0.0.0:8700\"", "api.listen", "requires a bearer token"),
    bad("listen = \"127.0.0.1:8700\"", "listen = \"localhost\"", "api.listen", "ip:port"),
    bad("protocol = \"tcp\"", "protocol = \"sctp\"", "service[0].protocol", "tcp"),
    bad("address = \"10.10.0.100\"", "address = \"10.10.0.1\"", "service[0].address", "port[0].address"),
    bad("address = \"10.10.0.100\"", "address = \"10.20.0.200\"", "service[0].address", "local_addresses"),
    bad("port = 80\nscheduler", "port = 0\nscheduler", "service[0].port", "0 is not a usable port"),
    bad("scheduler = \"wrr\"", "scheduler = \"fastest\"", "service[0].scheduler", "user-hash"),
    bad("persistence = \"300s\"", "persistence = \"5 parsecs\"", "service[0].persistence", "not a duration"),
    bad("kind = \"http\"", "kind = \"smtp\"", "service[0].health.kind", "command"),
    bad("timeout = \"500ms\"", "timeout = \"2s\"", "service[0].health.timeout", "longer than interval"),
    bad("rise = 2", "rise = 0", "service[0].health.rise", "between 1"),
    bad("path = \"/\"", "path = \"index.html\"", "service[0].health.path", "start with /"),
    bad("weight = 3", "weight = 70000", "service[0].server[0].weight", "65535"),
    bad("weight = 3", "weight = -1", "service[0].server[0].weight", "between 0"),
    bad("forward = \"nat\"", "forward = \"magic\"", "service[0].server[0].forward", "fullnat"),
    bad("forward = \"nat\"", "forward = \"dr\"\nport = 8080", "", "duplicate key"),
    bad(
        "port = 80\nweight = 3\nforward = \"nat\"",
        "port = 8080\nweight = 3\nforward = \"tunnel\"",
        "service[0].server[0].port",
        "cannot change the port",
    ),
    bad(
        "weight = 3",
        "weight = 3\nupper_threshold = 10\nlower_threshold = 20",
        "service[0].server[0].lower_threshold",
        "above upper_threshold",
    ),
    bad(
        "weight = 3",
        "weight = 3\nlower_threshold = 20",
        "service[0].server[0].lower_threshold",
        "without upper_threshold",
    ),
    bad("address = \"10.20.0.11\"", "address = \"10.20.0.1\"", "service[0].server[0].address", "own address"),
    bad("address = \"10.20.0.11\"", "address = \"not-an-ip\"", "service[0].server[0].address", "not an IP address"),
    bad(
        "forward = \"nat\"",
        "forward = \"dr\"\n[[service.server]]\naddress = \"172.16.0.5\"\nforward = \"dr\"",
        "service[0].server[1].address",
        "connected network",
    ),
    bad(
        "forward = \"nat\"",
        "forward = \"nat\"\n[[service.server]]\naddress = \"10.20.0.11\"\nport = 80",
        "service[0].server[1]",
        "already server[0]",
    ),
    bad(
        "",
        "[[service]]\nprotocol = \"tcp\"\naddress = \"10.10.0.100\"\nport = 80\nscheduler = \"rr\"",
        "service[1]",
        "already defined by service[0]",
    ),
    bad(
        "",
        "[[neighbour]]\naddress = \"10.10.0.254\"\nmac = \"02:00:00:00:00:01\"\nport = \"middle\"",
        "neighbour[0].port",
        "front, back",
    ),
    bad(
        "",
        "[[neighbour]]\naddress = \"10.30.0.254\"\nmac = \"02:00:00:00:00:01\"\nport = \"front\"",
        "neighbour[0].address",
        "not on port `front`",
    ),
    bad(
        "",
        "[[neighbour]]\naddress = \"10.10.0.254\"\nmac = \"02:00:00:00:00\"\nport = \"front\"",
        "neighbour[0].mac",
        "six hex bytes",
    ),
    // [service.health], [service.agent], backup and sorry_server (issue 9).
    bad("kind = \"http\"", "kind = \"command\"", "service[0].health.command", "needs command"),
    bad("kind = \"http\"", "kind = \"command\"\ncommand = [\" \"]", "service[0].health.command", "needs command"),
    bad("kind = \"http\"\npath = \"/\"", "kind = \"udp\"", "service[0].health.send", "needs send"),
    bad("kind = \"http\"\npath = \"/\"", "kind = \"udp\"\nsend = \"\"", "service[0].health.send", "needs send"),
    bad("kind = \"http\"\npath = \"/\"", "kind = \"tcp\"\nexpect = \"x\"", "service[0].health.expect", "only applies"),
    bad("kind = \"http\"\npath = \"/\"", "kind = \"tcp\"\nbody = \"x\"", "service[0].health.body", "only applies"),
    bad("kind = \"http\"\npath = \"/\"", "kind = \"icmp\"\nhost = \"x\"", "service[0].health.host", "only applies"),
    bad("kind = \"http\"\npath = \"/\"", "kind = \"tcp\"\npath = \"/\"", "service[0].health.path", "only applies"),
    bad("kind = \"http\"", "kind = \"tcp\"\ncommand = [\"/bin/true\"]", "service[0].health.command", "only applies"),
    bad("path = \"/\"", "path = \"/\"\nstatus = \"200-abc\"", "service[0].health.status", "not an HTTP status"),
    bad("path = \"/\"", "path = \"/\"\nstatus = \"399-200\"", "service[0].health.status", "empty range"),
    bad("path = \"/\"", "path = \"/\"\nstatus = 700", "service[0].health.status", "between 100 and 599"),
    bad("path = \"/\"", "path = \"/\"\nhost = \"a b\"", "service[0].health.host", "without spaces"),
    bad("path = \"/\"", "path = \"/\"\nbody = \"\"", "service[0].health.body", "matches anything"),
    bad("fall = 2", "fall = 2\nfastinter = \"200ms\"", "service[0].health.timeout", "longer than fastinter"),
    bad("fall = 2", "fall = 2\ndowninter = \"soon\"", "service[0].health.downinter", "not a duration"),
    bad("fall = 2", "fall = 2\nstart = \"maybe\"", "service[0].health.start", "\"up\" or \"down\""),
    bad("fall = 2", "fall = 2\non_down = \"panic\"", "service[0].health.on_down", "quiesce"),
    bad("fall = 2", "fall = 2\nslowstart = \"0s\"", "service[0].health.slowstart", "zero"),
    bad("fall = 2", "fall = 2\nnotify = [\"\"]", "service[0].health.notify", "empty"),
    bad("fall = 2", "fall = 0", "service[0].health.fall", "between 1"),
    bad("fall = 2", "fall = 2\nport = 0", "service[0].health.port", "0 is not a usable port"),
    bad("", "[service.agent]\ninterval = \"1s\"", "service[0].agent.port", "needs port"),
    bad("", "[service.agent]\nport = 70000", "service[0].agent.port", "between 1 and 65535"),
    bad("", "[service.agent]\nport = 9999\ntimeout = \"3s\"", "service[0].agent.timeout", "longer than interval"),
    bad("", "[service.agent]\nport = 9999\nstale_after = \"1s\"", "service[0].agent.stale_after", "shorter than"),
    bad("", "[service.agent]\nport = 9999\nweight = 1", "", "unknown field"),
    bad("persistence = \"300s\"", "sorry_server = \"10.20.0.50\"", "service[0].sorry_server", "IP:PORT"),
    bad("persistence = \"300s\"", "sorry_server = \"10.20.0.50:0\"", "service[0].sorry_server", "non-zero port"),
    bad("persistence = \"300s\"", "sorry_server = \"224.0.0.1:80\"", "service[0].sorry_server", "unicast"),
    bad(
        "forward = \"nat\"",
        "forward = \"nat\"\nbackup = \"yes\"",
        "service[0].server[0].backup",
        "expected a boolean",
    ),
    bad("scheduler = \"wrr\"", "scheduler = \"system-load\"", "service[0].scheduler", "add one (port = 9999"),
    bad("scheduler = \"wrr\"", "scheduler = \"system_load\"", "service[0].scheduler", "system-load"),
    // A VIP on a port's own address would share it with the health probes' source ports
    // (dataplane.probe_ports): any VIP there is refused, whatever its port.
    bad(
        "address = \"10.10.0.100\"\nport = 80",
        "address = \"10.20.0.1\"\nport = 61000",
        "service[0].address",
        "must not be a port",
    ),
];

/// `[ha]` without key or sync, with `from` replaced by `to` in the sketch's instance.
fn ha_with(from: &str, to: &str) -> String {
    assert!(HA_INSTANCE.contains(from), "`{from}` not in the instance");
    format!("[ha]\n{}", HA_INSTANCE.replacen(from, to, 1))
}

const HA_BAD_KEY: &str = "[ha]\nkey_file = \"/nonexistent/rvs-ha.key\"\n[[ha.instance]]\nvrid = 1\nport = \"front\"\npriority = 100\naddresses = [\"10.10.0.100\"]";
const HA_SYNC_HALF: &str = "[ha]\nsync_listen = \"10.30.0.1:8848\"\n[[ha.instance]]\nvrid = 1\nport = \"front\"\npriority = 100\naddresses = [\"10.10.0.100\"]";
const HA_SYNC_BAD: &str = "[ha]\nsync_listen = \"10.30.0.1\"\nsync_peer = \"10.30.0.2:8848\"\n[[ha.instance]]\nvrid = 1\nport = \"front\"\npriority = 100\naddresses = [\"10.10.0.100\"]";
const HA_SYNC_NO_KEY: &str = "[ha]\nsync_listen = \"10.30.0.1:8848\"\nsync_peer = \"10.30.0.2:8848\"\n[[ha.instance]]\nvrid = 1\nport = \"front\"\npriority = 100\naddresses = [\"10.10.0.100\"]";
const HA_SYNC_FAMILIES: &str = "[ha]\nsync_listen = \"10.30.0.1:8848\"\nsync_peer = \"[fd00:30::2]:8848\"\n[[ha.instance]]\nvrid = 1\nport = \"front\"\npriority = 100\naddresses = [\"10.10.0.100\"]";
const HA_SYNC_REFRESH_OFF: &str = "[ha]\nsync_refresh = \"10s\"\n[[ha.instance]]\nvrid = 1\nport = \"front\"\npriority = 100\naddresses = [\"10.10.0.100\"]";

/// `[ha]` mistakes, each appended to the sketch: the error names the field and says why.
#[test]
fn bad_ha_configs_name_their_field() {
    let cases: Vec<(String, &str, &str)> = vec![
        (HA_BAD_KEY.to_string(), "ha.key_file", "cannot read HA key file"),
        ("[ha]".to_string(), "ha.instance", "no [[ha.instance]]"),
        (HA_SYNC_HALF.to_string(), "ha.sync_peer", "needs both"),
        (HA_SYNC_BAD.to_string(), "ha.sync_listen", "non-zero port"),
        (HA_SYNC_NO_KEY.to_string(), "ha.key_file", "HMAC-SHA256"),
        (HA_SYNC_FAMILIES.to_string(), "ha.sync_peer", "different address families"),
        (HA_SYNC_REFRESH_OFF.to_string(), "ha.sync_refresh", "sync, which is off"),
        (
            HA_SYNC_HALF.replace("sync_listen", "sync_refresh = \"200s\"\nsync_listen"),
            "ha.sync_refresh",
            "outside 1s..120s",
        ),
        (ha_with("priority = 200", "priority = 0"), "ha.instance[0].priority", "between 1 and 254"),
        (ha_with("priority = 200", "priority = 255"), "ha.instance[0].priority", "never is"),
        (ha_with("vrid = 51", "vrid = 0"), "ha.instance[0].vrid", "between 1 and 255"),
        (ha_with("vrid = 51", "vrid = 51\nversion = 4"), "ha.instance[0].version", "3 (RFC 5798) or 2"),
        (ha_with("\"100ms\"", "\"0s\""), "ha.instance[0].advert_interval", "is zero"),
        (ha_with("\"100ms\"", "\"105ms\""), "ha.instance[0].advert_interval", "centisecond"),
        (ha_with("\"100ms\"", "\"41s\""), "ha.instance[0].advert_interval", "40.95 s"),
        (ha_with("\"100ms\"", "\"1500ms\"\nversion = 2"), "ha.instance[0].advert_interval", "whole seconds"),
        (ha_with("port = \"front\"", "port = \"nope\""), "ha.instance[0].port", "no [[port]] is named"),
        (
            ha_with("\"10.20.0.100\"]", "\"fd00:10::100\"]"),
            "ha.instance[0].addresses[1]",
            "not on any port's IPv6 prefix (no port has ipv6_addresses)",
        ),
        (ha_with("\"10.20.0.100\"]", "\"10.10.0.1\"]"), "ha.instance[0].addresses[1]", "own address"),
        (ha_with("\"10.20.0.100\"]", "\"192.0.2.5\"]"), "ha.instance[0].addresses[1]", "not a VIP"),
        (ha_with("\"10.20.0.100\"]", "\"10.10.0.100\"]"), "ha.instance[0].addresses[1]", "already in"),
        (ha_with("[\"10.10.0.100\", ", "["), "service[0].address", "in no [[ha.instance]]"),
        (
            format!("{}{HA_INSTANCE}", ha_with("", "")).replacen(
                "[\"10.10.0.100\", \"10.20.0.100\"]",
                "[\"10.20.0.150\"]",
                1,
            ),
            "ha.instance[1].vrid",
            "already used on port",
        ),
        (
            format!("{}{}", ha_with("", ""), HA_INSTANCE.replace("vrid = 51", "vrid = 52")),
            "ha.instance[1].addresses[0]",
            "already in ha.instance[0]",
        ),
        (
            ha_with("vrid = 51", "vrid = 51\ntrack_services = [\"tcp/10.10.0.100/81\"]"),
            "ha.instance[0].track_services[0]",
            "no [[service]]",
        ),
        (
            ha_with("vrid = 51", "vrid = 51\ntrack_services = [\"tcp:10.10.0.100:80\"]"),
            "ha.instance[0].track_services[0]",
            "tcp/VIP/PORT",
        ),
        (
            ha_with("vrid = 51", "vrid = 51\ntrack_service_weight = 10"),
            "ha.instance[0].track_service_weight",
            "only with track_services",
        ),
        (ha_with("vrid = 51", "vrid = 51\ntrack_ports = [\"nope\"]"), "ha.instance[0].track_ports[0]", "no [[port]]"),
        (ha_with("vrid = 51", "vrid = 51\nnotify = [\" \"]"), "ha.instance[0].notify", "empty"),
    ];
    for (n, (ha, field, says)) in cases.iter().enumerate() {
        let text = format!("{SKETCH}\n{ha}\n");
        let e = match Config::from_toml(&text) {
            Ok(_) => panic!("case {n} was accepted:\n{ha}"),
            Err(e) => e,
        };
        let hit = e.errors.iter().find(|x| x.field == *field);
        let hit = hit.unwrap_or_else(|| panic!("case {n}: no error names `{field}`:\n{e}"));
        assert!(hit.message.contains(says), "case {n}: `{field}` does not say `{says}`:\n{e}");
    }
}

#[test]
fn bad_configs_name_their_field() {
    assert!(BAD.len() >= 25);
    for (n, b) in BAD.iter().enumerate() {
        let text = if b.from.is_empty() {
            format!("{SKETCH}\n{}\n", b.to)
        } else {
            assert!(SKETCH.contains(b.from), "case {n}: `{}` not in the sketch", b.from);
            SKETCH.replacen(b.from, b.to, 1)
        };
        let e = match Config::from_toml(&text) {
            Ok(_) => panic!("case {n} ({} → {}) was accepted", b.from, b.to),
            Err(e) => e,
        };
        if b.field.is_empty() {
            // A file-level (TOML) error: the message must say what and where.
            assert!(
                e.errors.iter().any(|x| x.message.contains(b.says) && x.message.contains("line ")),
                "case {n}:\n{e}"
            );
            continue;
        }
        let hit = e.errors.iter().find(|x| x.field == b.field);
        let hit = hit.unwrap_or_else(|| panic!("case {n}: no error names `{}`:\n{e}", b.field));
        assert!(hit.message.contains(b.says), "case {n}: `{}` does not say `{}`:\n{e}", b.field, b.says);
    }
}

#[test]
fn one_bad_address_does_not_cascade() {
    // A bad port prefix must not also produce "via not on any port" noise.
    let e = Config::from_toml(&SKETCH.replace("address = \"10.10.0.1/24\"", "address = \"10.10.0.1/x\"")).unwrap_err();
    assert_eq!(e.errors.len(), 1, "{e}");
    assert!(e.names("port[0].address"));
}

#[test]
fn fullnat_needs_local_addresses() {
    let text = SKETCH
        .replace("local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]", "")
        .replace("forward = \"nat\"", "forward = \"fullnat\"");
    let e = Config::from_toml(&text).unwrap_err();
    assert!(e.names("service[0].server[0].forward"), "{e}");
}

#[test]
fn shared_vip_across_services_is_fine() {
    let text = format!(
        "{SKETCH}\n[[service]]\nprotocol = \"tcp\"\naddress = \"10.10.0.100\"\nport = 443\nscheduler = \"rr\"\n\
         [[service]]\nprotocol = \"udp\"\naddress = \"10.10.0.100\"\nport = 80\nscheduler = \"rr\"\n"
    );
    let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.services.len(), 3);
}

#[test]
fn local_address_outside_port_prefix_is_allowed() {
    let text = SKETCH.replace("\"10.20.0.201\"", "\"172.16.5.1\"");
    let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.ports[1].local_addresses[1], Ipv4Addr::new(172, 16, 5, 1));
}

#[test]
fn missing_file_is_an_error_not_a_panic() {
    let e = Config::load(Path::new("/nonexistent/rvs.toml")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/rvs.toml"), "{e}");
}

#[test]
fn lab_configs_in_repo_are_valid() {
    // config/*.toml are the operator-facing examples (the lab's among them); each
    // must validate, except for `[ha]` key files that exist only inside the lab.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    // A missing directory is a failure, not a pass with nothing checked.
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut checked = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        checked += 1;
        if let Err(e) = Config::load(&path) {
            let only_key = e.errors.iter().all(|x| x.field == "ha.key_file");
            assert!(only_key, "{}: {e}", path.display());
        }
    }
    assert!(checked > 0, "no config/*.toml in {}", dir.display());
}

/// The file's, the paths' and the JSON's protocol names are the data path's `L4Proto`
/// names, and nothing else parses.
#[test]
fn protocol_names_are_the_data_paths() {
    for p in [L4Proto::Tcp, L4Proto::Udp] {
        assert_eq!(parse_protocol(p.name()), Some(p));
    }
    assert_eq!((L4Proto::Tcp.name(), L4Proto::Udp.name()), ("tcp", "udp"));
    for bad in ["TCP", "sctp", "", "tcp "] {
        assert_eq!(parse_protocol(bad), None, "{bad:?}");
    }
}

#[test]
fn health_agent_backup_and_sorry_server_parse() {
    let text = SKETCH
        .replace("persistence = \"300s\"", "persistence = \"300s\"\nsorry_server = \"10.20.0.50:8080\"")
        .replace(
            "fall = 2",
            "fall = 3\nhost = \"www.example.com\"\nstatus = \"200,204 301-302\"\nbody = \"OK\"\nfastinter = \"500ms\"\n\
             downinter = \"5s\"\nstart = \"down\"\non_down = \"remove\"\nslowstart = \"30s\"\nnotify = [\"/usr/bin/logger\", \"rvs\"]",
        )
        .replace("forward = \"nat\"", "forward = \"nat\"\nbackup = true")
        + "[service.agent]\nport = 9999\n";
    let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    let s = &c.services[0];
    let h = s.health.as_ref().unwrap();
    let HealthKind::Http { path, host, status, body } = &h.kind else { panic!("{:?}", h.kind) };
    assert_eq!((path.as_str(), host.as_deref(), body.as_deref()), ("/", Some("www.example.com"), Some("OK")));
    assert!(status.contains(204) && status.contains(302) && !status.contains(200 + 3));
    assert_eq!((h.fall, h.fastinter, h.downinter), (3, Duration::from_millis(500), Duration::from_secs(5)));
    assert_eq!((h.start_up, h.on_down, h.slowstart), (false, OnDown::Remove, Some(Duration::from_secs(30))));
    assert_eq!(h.notify, vec!["/usr/bin/logger".to_string(), "rvs".into()]);
    let a = s.agent.as_ref().unwrap();
    assert_eq!(
        (a.port, a.interval, a.timeout, a.stale_after),
        (9999, Duration::from_secs(2), Duration::from_secs(1), Duration::from_secs(6))
    );
    assert_eq!(s.sorry_server, Some("10.20.0.50:8080".parse().unwrap()));
    assert!(s.servers[0].backup);

    // The older integer status still works, as exactly that code.
    let c = Config::from_toml(&SKETCH.replace("path = \"/\"", "path = \"/\"\nstatus = 204")).unwrap();
    let HealthKind::Http { status, .. } = &c.services[0].health.as_ref().unwrap().kind else { panic!() };
    assert_eq!(status.to_string(), "204");

    // udp and command kinds.
    let udp = SKETCH.replace("kind = \"http\"\npath = \"/\"", "kind = \"udp\"\nsend = \"ping\"\nexpect = \"pong\"");
    let c = Config::from_toml(&udp).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.services[0].health.as_ref().unwrap().kind,
        HealthKind::Udp { send: "ping".into(), expect: "pong".into() }
    );
    let cmd = SKETCH.replace("kind = \"http\"\npath = \"/\"", "kind = \"command\"\ncommand = [\"/bin/true\"]");
    let c = Config::from_toml(&cmd).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.services[0].health.as_ref().unwrap().kind, HealthKind::Command(vec!["/bin/true".into()]));
}

/// `GET /v1/config` writes the file back as TOML: `[ha]` with its instances survives the
/// round trip unchanged.
#[test]
fn ha_round_trips_through_canonical_toml() {
    let (text, key) = with_ha(0o600);
    let text = text.replace("sync_peer = \"10.30.0.2:8848\"", "sync_peer = \"10.30.0.2:8848\"\nsync_refresh = \"7s\"");
    let file = parse_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    let again = toml::to_string(&file).unwrap();
    assert!(again.contains("[[ha.instance]]"), "{again}");
    assert_eq!(parse_toml(&again).unwrap(), file);
    assert_eq!(Config::from_toml(&again).unwrap(), Config::from_toml(&text).unwrap());
    std::fs::remove_file(key).unwrap();
}

/// `allow`, `deny` and `maxconn`: parsed (a bare address is a /32), kept in order, and
/// written back by the canonical TOML; absent means no list and no limit.
#[test]
fn client_prefixes_and_maxconn_parse_and_round_trip() {
    let c = Config::from_toml(SKETCH).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.services[0].allow.is_empty() && c.services[0].deny.is_empty());
    assert_eq!(c.services[0].maxconn, 0);
    let text = SKETCH.replacen(
        "persistence = \"300s\"",
        "persistence = \"300s\"\nallow = [\"10.0.0.0/8\", \"192.0.2.7\"]\ndeny = [\"10.9.0.0/16\"]\nmaxconn = 5000",
        1,
    );
    let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    let s = &c.services[0];
    let show = |v: &[IpNet]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(show(&s.allow), ["10.0.0.0/8", "192.0.2.7/32"]);
    assert_eq!(show(&s.deny), ["10.9.0.0/16"]);
    assert_eq!(s.maxconn, 5000);
    let file = parse_toml(&text).unwrap();
    let again = toml::to_string(&file).unwrap();
    assert!(again.contains("maxconn = 5000") && again.contains("deny = [\"10.9.0.0/16\"]"), "{again}");
    assert_eq!(Config::from_toml(&again).unwrap(), c);
}

#[test]
fn bad_client_prefixes_and_maxconn_name_their_entry() {
    let with = |extra: &str| SKETCH.replacen("persistence = \"300s\"", &format!("persistence = \"300s\"\n{extra}"), 1);
    let cases: &[(&str, &str, &str)] = &[
        ("deny = [\"10.0.0.0/8\", \"10.1.0.0/16\", \"nope\"]", "service[0].deny[2]", "not a client prefix"),
        ("allow = [\"10.1.2.3/16\"]", "service[0].allow[0]", "did you mean \"10.1.0.0/16\""),
        ("allow = [\"10.0.0.0/33\"]", "service[0].allow[0]", "not a client prefix"),
        ("deny = [\"2001:db8::1/32\"]", "service[0].deny[0]", "did you mean \"2001:db8::/32\""),
        ("allow = [\"2001:db8::/129\"]", "service[0].allow[0]", "not a client prefix"),
        ("maxconn = -1", "service[0].maxconn", "between 0 and"),
        ("maxconn = 4294967296", "service[0].maxconn", "between 0 and"),
    ];
    for (extra, field, says) in cases {
        let e = Config::from_toml(&with(extra)).expect_err(extra);
        assert_eq!(e.errors.len(), 1, "{extra}: {e}");
        assert!(e.names(field), "{extra}: {e}");
        assert!(e.errors[0].message.contains(says), "{extra}: {e}");
    }
}

/// `client_rate` and `client_burst`: absent is no limit, the burst defaults to the rate,
/// both written back by the canonical TOML; bad values name their field.
#[test]
fn client_rate_and_burst_parse_default_round_trip_and_name_their_errors() {
    let with = |extra: &str| SKETCH.replacen("persistence = \"300s\"", &format!("persistence = \"300s\"\n{extra}"), 1);
    let c = Config::from_toml(SKETCH).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((c.services[0].client_rate, c.services[0].client_burst), (0, 0));
    let c = Config::from_toml(&with("client_rate = 20")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((c.services[0].client_rate, c.services[0].client_burst), (20, 20), "burst defaults to the rate");
    let text = with("client_rate = 20\nclient_burst = 50");
    let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((c.services[0].client_rate, c.services[0].client_burst), (20, 50));
    let again = toml::to_string(&parse_toml(&text).unwrap()).unwrap();
    assert!(again.contains("client_rate = 20") && again.contains("client_burst = 50"), "{again}");
    assert_eq!(Config::from_toml(&again).unwrap(), c);
    let cases: &[(&str, &str, &str)] = &[
        ("client_rate = -1", "service[0].client_rate", "between 0 and"),
        ("client_rate = 1000001", "service[0].client_rate", "between 0 and"),
        ("client_rate = 5\nclient_burst = 0", "service[0].client_burst", "between 1 and"),
        ("client_burst = 5", "service[0].client_burst", "only applies with a client_rate"),
    ];
    for (extra, field, says) in cases {
        let e = Config::from_toml(&with(extra)).expect_err(extra);
        assert_eq!(e.errors.len(), 1, "{extra}: {e}");
        assert!(e.names(field), "{extra}: {e}");
        assert!(e.errors[0].message.contains(says), "{extra}: {e}");
    }
}

/// `syn_proxy` and `dataplane.syn_proxy_threshold`: the default is `auto` for a TCP
/// service whose servers are all NAT/Full-NAT and `off` otherwise; explicit modes round
/// trip; DR/IPIP servers and UDP refuse `auto`/`always` naming `service[i].syn_proxy`.
#[test]
fn syn_proxy_defaults_round_trips_and_names_its_errors() {
    use rvs_dataplane::synproxy::{SynProxyMode, DEFAULT_THRESHOLD};
    let with = |extra: &str| SKETCH.replacen("persistence = \"300s\"", &format!("persistence = \"300s\"\n{extra}"), 1);
    let c = Config::from_toml(SKETCH).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.services[0].syn_proxy, None);
    assert_eq!(c.services[0].syn_proxy_mode(), SynProxyMode::Auto, "NAT TCP service: auto by default");
    assert_eq!(c.dataplane.syn_proxy_threshold, DEFAULT_THRESHOLD);
    // A DR server makes the default off.
    let dr = SKETCH.replacen("forward = \"nat\"", "forward = \"dr\"", 1);
    let c = Config::from_toml(&dr).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.services[0].syn_proxy_mode(), SynProxyMode::Off);
    for (word, mode) in [("always", SynProxyMode::Always), ("off", SynProxyMode::Off), ("auto", SynProxyMode::Auto)] {
        let text = with(&format!("syn_proxy = \"{word}\""));
        let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.services[0].syn_proxy, Some(mode));
        let again = toml::to_string(&parse_toml(&text).unwrap()).unwrap();
        assert!(again.contains(&format!("syn_proxy = \"{word}\"")), "{again}");
        assert_eq!(Config::from_toml(&again).unwrap(), c);
    }
    let t = SKETCH.replacen("[dataplane]", "[dataplane]\nsyn_proxy_threshold = 64", 1);
    assert_eq!(Config::from_toml(&t).unwrap_or_else(|e| panic!("{e}")).dataplane.syn_proxy_threshold, 64);
    let cases: Vec<(String, &str, &str)> = vec![
        (with("syn_proxy = \"sometimes\""), "service[0].syn_proxy", "not a SYN-proxy mode"),
        (
            with("syn_proxy = \"always\"").replacen("forward = \"nat\"", "forward = \"dr\"", 1),
            "service[0].syn_proxy",
            "is dr",
        ),
        (
            with("syn_proxy = \"auto\"").replacen("forward = \"nat\"", "forward = \"tunnel\"", 1),
            "service[0].syn_proxy",
            "NAT or Full-NAT",
        ),
        (
            with("syn_proxy = \"always\"").replacen("protocol = \"tcp\"", "protocol = \"udp\"", 1),
            "service[0].syn_proxy",
            "TCP services only",
        ),
        (
            SKETCH.replacen("[dataplane]", "[dataplane]\nsyn_proxy_threshold = 0", 1),
            "dataplane.syn_proxy_threshold",
            "between 1 and",
        ),
    ];
    for (text, field, says) in cases {
        let e = Config::from_toml(&text).expect_err(field);
        assert!(e.names(field), "{field}: {e}");
        assert!(e.errors.iter().any(|x| x.message.contains(says)), "{field}: {e}");
    }
    // `off` is accepted anywhere.
    let udp_off = with("syn_proxy = \"off\"").replacen("protocol = \"tcp\"", "protocol = \"udp\"", 1);
    if let Err(e) = Config::from_toml(&udp_off) {
        assert!(!e.names("service[0].syn_proxy"), "{e}");
    }
}

/// `unknown_flow`: `drop` by default and anywhere; `schedule` only for a TCP service
/// whose servers are all DR or IPIP, with a consistent scheduler and no persistence;
/// every refusal names `service[i].unknown_flow` and says why.
#[test]
fn unknown_flow_schedule_is_accepted_only_where_it_is_consistent() {
    use rvs_dataplane::types::UnknownFlow;
    // The sketch without persistence, DR, mh.
    let base = SKETCH
        .replacen("persistence = \"300s\"\n", "", 1)
        .replacen("forward = \"nat\"", "forward = \"dr\"", 1)
        .replacen("scheduler = \"wrr\"", "scheduler = \"mh\"", 1);
    let with = |text: &str, extra: &str| text.replacen("scheduler = ", &format!("{extra}\nscheduler = "), 1);
    let c = Config::from_toml(&base).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.services[0].unknown_flow, UnknownFlow::Drop);
    for sched in ["mh", "sh", "dh", "conhash", "user-hash"] {
        for forward in ["dr", "tunnel"] {
            let text = with(
                &base.replacen("scheduler = \"mh\"", &format!("scheduler = \"{sched}\""), 1).replacen(
                    "forward = \"dr\"",
                    &format!("forward = \"{forward}\""),
                    1,
                ),
                "unknown_flow = \"schedule\"",
            );
            let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{sched}/{forward}: {e}"));
            assert_eq!(c.services[0].unknown_flow, UnknownFlow::Schedule);
            let again = toml::to_string(&parse_toml(&text).unwrap()).unwrap();
            assert_eq!(Config::from_toml(&again).unwrap(), c, "round trip");
        }
    }
    let sched = with(&base, "unknown_flow = \"schedule\"");
    let cases: Vec<(String, &str)> = vec![
        (with(&base, "unknown_flow = \"sometimes\""), "not an unknown_flow mode"),
        (sched.replacen("forward = \"dr\"", "forward = \"nat\"", 1), "server[0] is nat"),
        (sched.replacen("forward = \"dr\"", "forward = \"fullnat\"", 1), "DR or IPIP"),
        (sched.replacen("scheduler = \"mh\"", "scheduler = \"wrr\"", 1), "consistent scheduler"),
        (sched.replacen("scheduler = \"mh\"", "scheduler = \"rr\"", 1), "sh, dh, mh, conhash, user-hash"),
        (sched.replacen("protocol = \"tcp\"", "protocol = \"udp\"", 1), "TCP services only"),
        (with(&sched, "persistence = \"300s\""), "persistence"),
    ];
    for (text, says) in cases {
        let e = Config::from_toml(&text).expect_err(says);
        assert!(e.names("service[0].unknown_flow"), "{says}: {e}");
        assert!(e.errors.iter().any(|x| x.message.contains(says)), "{says}: {e}");
    }
    // `drop` is accepted anywhere.
    let nat = with(SKETCH, "unknown_flow = \"drop\"");
    assert_eq!(Config::from_toml(&nat).unwrap_or_else(|e| panic!("{e}")).services[0].unknown_flow, UnknownFlow::Drop);
}

/// `quorum`: 1 by default, 0 up to the service's server count, refused above it.
#[test]
fn quorum_defaults_to_one_and_stays_within_the_server_count() {
    let c = Config::from_toml(SKETCH).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.services[0].quorum, 1);
    for q in [0, 1] {
        let text = SKETCH.replacen("scheduler = ", &format!("quorum = {q}\nscheduler = "), 1);
        assert_eq!(Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}")).services[0].quorum, q);
    }
    let text = SKETCH.replacen("scheduler = ", "quorum = 2\nscheduler = ", 1);
    let e = Config::from_toml(&text).expect_err("quorum above the servers");
    assert!(e.names("service[0].quorum"), "{e}");
    assert!(e.errors[0].message.contains("this service has 1"), "{e}");
}

/// `[bgp]`: defaults for birdc and the socket; the include file must be absolute in an
/// existing directory; the socket absolute; birdc not empty.
#[test]
fn bgp_section_defaults_and_errors() {
    let dir = std::env::temp_dir();
    let file = dir.join(format!("rvs-cfg-bgp-{}.conf", std::process::id()));
    let text = format!("{SKETCH}\n[bgp]\ninclude_file = \"{}\"\n", file.display());
    let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    let bgp = c.bgp.expect("[bgp]");
    assert_eq!(bgp.include_file, file);
    assert_eq!(bgp.birdc, std::path::PathBuf::from(defaults::BIRDC));
    assert_eq!(bgp.socket, std::path::PathBuf::from(defaults::BIRD_SOCKET));
    let set = format!("{text}birdc = \"/usr/sbin/birdc\"\nsocket = \"/run/rvs/bird-lb1.ctl\"\n");
    let bgp = Config::from_toml(&set).unwrap_or_else(|e| panic!("{e}")).bgp.expect("[bgp]");
    assert_eq!(bgp.socket, std::path::PathBuf::from("/run/rvs/bird-lb1.ctl"));
    let cases: Vec<(String, &str, &str)> = vec![
        (format!("{SKETCH}\n[bgp]\ninclude_file = \"vips.conf\"\n"), "bgp.include_file", "absolute"),
        (format!("{SKETCH}\n[bgp]\ninclude_file = \"/no/such/dir/vips.conf\"\n"), "bgp.include_file", "does not exist"),
        (format!("{text}socket = \"bird.ctl\"\n"), "bgp.socket", "absolute"),
        (format!("{text}birdc = \"\"\n"), "bgp.birdc", "empty"),
        (format!("{SKETCH}\n[bgp]\n"), "bgp", "include_file"),
    ];
    for (text, field, says) in cases {
        let e = Config::from_toml(&text).expect_err(field);
        assert!(e.names(field), "{field}: {e}");
        assert!(e.errors.iter().any(|x| x.message.contains(says)), "{field}: {e}");
    }
}

#[test]
fn port_ipv6_addresses() {
    let c = Config::from_toml(&SKETCH.replace(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]\nipv6_addresses = [\"2001:db8:2::1/64\", \"fd00:20::1/64\"]",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let want: Vec<ipnet::Ipv6Net> = vec!["2001:db8:2::1/64".parse().unwrap(), "fd00:20::1/64".parse().unwrap()];
    assert_eq!(c.ports[1].ipv6_addresses, want);
    assert!(c.ports[0].ipv6_addresses.is_empty());
}

#[test]
fn ipv6_routes_take_the_port_of_their_gateway() {
    let text = SKETCH.replace(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]\nipv6_addresses = [\"2001:db8:2::1/64\"]",
    ) + "[[route]]\nprefix = \"::/0\"\nvia = \"2001:db8:2::254\"\n[[route]]\nprefix = \"2001:db8:99::/48\"\nvia = \"2001:db8:2::253\"\n";
    let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.routes.len(), 1, "the IPv4 default route stays where it was");
    let want = |p: &str, v: &str| Route6 { prefix: p.parse().unwrap(), via: v.parse().unwrap(), port: 1 };
    assert_eq!(c.routes6, vec![want("::/0", "2001:db8:2::254"), want("2001:db8:99::/48", "2001:db8:2::253")]);
    let dup = text.clone() + "[[route]]\nprefix = \"::/0\"\nvia = \"2001:db8:2::252\"\n";
    let e = Config::from_toml(&dup).unwrap_err().to_string();
    assert!(e.contains("route[3].prefix") && e.contains("already routed by route[1]"), "{e}");
}

/// The sketch's ports with IPv6 prefixes, and one IPv6 service (VIP on the front
/// prefix, a NAT server on the back one) after the sketch's IPv4 service.
fn v6_sketch(service: &str) -> String {
    let ports = SKETCH
        .replacen(
            "address = \"10.10.0.1/24\"",
            "address = \"10.10.0.1/24\"\nipv6_addresses = [\"2001:db8:10::1/64\"]",
            1,
        )
        .replacen(
            "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
            "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]\nipv6_addresses = [\"2001:db8:20::1/64\"]",
            1,
        );
    format!("{ports}\n{service}\n")
}

const V6_SERVICE: &str = r#"[[service]]
protocol = "tcp"
address = "2001:db8:10::100"
port = 80
scheduler = "rr"
sorry_server = "[2001:db8:20::50]:8080"
[[service.server]]
address = "2001:db8:20::11"
port = 8080
forward = "nat"
[[service.server]]
address = "2001:db8:20::12"
port = 80
forward = "dr"
"#;

fn model(text: &str) -> Result<Config, ConfigError> {
    Config::from_file(&parse_toml(text).unwrap())
}

#[test]
fn ipv6_service_is_checked_like_ipv4_and_refused_only_what_the_ipv6_data_path_lacks() {
    let text = v6_sketch(V6_SERVICE);
    // Either family side by side.
    let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    let s = &c.services[1];
    assert_eq!(s.address, "2001:db8:10::100".parse::<IpAddr>().unwrap());
    assert_eq!(s.servers[0].address, "2001:db8:20::11".parse::<IpAddr>().unwrap());
    assert_eq!(s.sorry_server, Some("[2001:db8:20::50]:8080".parse().unwrap()));
    assert_eq!(s.key().to_string(), "tcp/2001:db8:10::100/80");
    assert_eq!(endpoint(s.servers[0].address, 8080), "[2001:db8:20::11]:8080");
    assert_eq!(c.services[0].address, "10.10.0.100".parse::<IpAddr>().unwrap());
    assert!(!s.syn_proxy_capable(), "a DR server: the default is off");
    // Persistence and client_rate are IPv6's too; a Full-NAT server needs an IPv6 local
    // address, which this file has none of: refused by field, saying what to add.
    let lacking = V6_SERVICE
        .replacen("scheduler = \"rr\"", "scheduler = \"rr\"\npersistence = \"60s\"\nclient_rate = 10", 1)
        .replacen("forward = \"dr\"", "forward = \"fullnat\"", 1);
    let e = Config::from_toml(&v6_sketch(&lacking)).unwrap_err();
    let fields: Vec<&str> = e.errors.iter().map(|x| x.field.as_str()).collect();
    assert_eq!(fields, ["service[1].server[1].forward"], "{e}");
    assert!(e.errors[0].message.contains("local_addresses"), "{e}");
    // Every forwarding mode is taken.
    for mode in ["nat", "tunnel"] {
        let other = V6_SERVICE.replacen("forward = \"dr\"", &format!("forward = \"{mode}\""), 1);
        assert!(Config::from_toml(&v6_sketch(&other)).is_ok(), "{mode}");
    }
    let proxied = V6_SERVICE.replacen("scheduler = \"rr\"", "scheduler = \"rr\"\nsyn_proxy = \"always\"", 1).replacen(
        "forward = \"dr\"",
        "forward = \"nat\"",
        1,
    );
    // The SYN proxy serves NAT66 and Full-NAT66: taken, and `auto` by default.
    use rvs_dataplane::synproxy::SynProxyMode;
    let c = Config::from_toml(&v6_sketch(&proxied)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.services[1].syn_proxy_mode(), SynProxyMode::Always);
    let default = proxied.replacen("syn_proxy = \"always\"\n", "", 1);
    let c = Config::from_toml(&v6_sketch(&default)).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.services[1].syn_proxy_capable());
    assert_eq!(c.services[1].syn_proxy_mode(), SynProxyMode::Auto);
}

/// `syn_proxy` on a NAT64 service (IPv6 VIP, IPv4 Full-NAT servers): proxied like any
/// Full-NAT TCP service, `auto` by default, `always`, `auto` and `off` all taken; a DR
/// server next to them still makes it refused by field.
#[test]
fn syn_proxy_serves_nat64_services_and_defaults_to_auto() {
    use rvs_dataplane::synproxy::SynProxyMode;
    let nat64 = V6_SERVICE
        .replacen("address = \"2001:db8:20::11\"", "address = \"10.20.0.11\"", 1)
        .replacen("address = \"2001:db8:20::12\"", "address = \"10.20.0.12\"", 1)
        .replacen("forward = \"nat\"", "forward = \"fullnat\"", 1)
        .replacen("port = 80\nforward = \"dr\"", "port = 8080\nforward = \"fullnat\"", 1);
    let c = Config::from_toml(&v6_sketch(&nat64)).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.services[1].servers.iter().all(|r| r.address.is_ipv4()));
    assert!(c.services[1].syn_proxy_capable());
    assert_eq!(c.services[1].syn_proxy_mode(), SynProxyMode::Auto);
    for (word, mode) in [("always", SynProxyMode::Always), ("auto", SynProxyMode::Auto), ("off", SynProxyMode::Off)] {
        let with = nat64.replacen("scheduler = \"rr\"", &format!("scheduler = \"rr\"\nsyn_proxy = \"{word}\""), 1);
        let c = Config::from_toml(&v6_sketch(&with)).unwrap_or_else(|e| panic!("{word}: {e}"));
        assert_eq!(c.services[1].syn_proxy_mode(), mode, "{word}");
    }
    // The refusal that stays is the mode's, whatever the family.
    let dr = V6_SERVICE.replacen("scheduler = \"rr\"", "scheduler = \"rr\"\nsyn_proxy = \"always\"", 1);
    let e = Config::from_toml(&v6_sketch(&dr)).unwrap_err();
    let fields: Vec<&str> = e.errors.iter().map(|x| x.field.as_str()).collect();
    assert_eq!(fields, ["service[1].syn_proxy"], "{e}");
    assert!(e.errors[0].message.contains("server[1] is dr"), "{e}");
}

/// Persistence with a prefix length, allow/deny lists of either family and `client_rate`
/// on an IPv6 service: accepted, with the per-family defaults; a prefix length on an IPv4
/// service is refused by field with the fix.
#[test]
fn ipv6_service_takes_persistence_by_prefix_length_lists_and_rates() {
    let with =
        |extra: &str| v6_sketch(&V6_SERVICE.replacen("scheduler = \"rr\"", &format!("scheduler = \"rr\"\n{extra}"), 1));
    let c = Config::from_toml(&with("persistence = \"300s\"")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.services[1].persistence_netmask, PersistMask::V6(128), "per client by default");
    assert_eq!(c.services[0].persistence_netmask, PersistMask::V4(std::net::Ipv4Addr::BROADCAST));
    let text = with(
        "persistence = \"300s\"\npersistence_netmask = \"64\"\nallow = [\"2001:db8:10::/48\", \"10.0.0.0/8\"]\n\
         deny = [\"2001:db8:10::2\"]\nclient_rate = 10",
    );
    let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    let s = &c.services[1];
    assert_eq!(s.persistence_netmask, PersistMask::V6(64));
    let show = |v: &[IpNet]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(show(&s.allow), ["2001:db8:10::/48", "10.0.0.0/8"], "a list may mix families");
    assert_eq!(show(&s.deny), ["2001:db8:10::2/128"], "a bare IPv6 address is a /128");
    assert_eq!(s.client_rate, 10);
    let again = toml::to_string(&parse_toml(&text).unwrap()).unwrap();
    assert!(again.contains("persistence_netmask = \"64\""), "{again}");
    assert_eq!(Config::from_toml(&again).unwrap(), c);
    // A prefix length on the IPv4 service.
    let text = v6_sketch(V6_SERVICE).replacen(
        "persistence = \"300s\"",
        "persistence = \"300s\"\npersistence_netmask = \"24\"",
        1,
    );
    let e = Config::from_toml(&text).unwrap_err();
    assert!(e.names("service[0].persistence_netmask"), "{e}");
    assert!(e.errors[0].message.contains("VIP is IPv4; give a netmask such as \"255.255.255.0\""), "{e}");
}

#[test]
fn ipv6_fullnat_takes_ipv6_local_addresses_and_needs_one() {
    let fullnat = V6_SERVICE.replace("forward = \"nat\"", "forward = \"fullnat\"");
    // No IPv6 local address: the server's forward is refused, naming the fix.
    let e = Config::from_toml(&v6_sketch(&fullnat)).unwrap_err();
    let fields: Vec<&str> = e.errors.iter().map(|x| x.field.as_str()).collect();
    assert_eq!(fields, ["service[1].server[0].forward"], "{e}");
    assert!(e.errors[0].message.contains("IPv6 Full-NAT local address"), "{e}");
    // With one (beside the IPv4 ones), accepted; each family lands in its own list.
    let text = v6_sketch(&fullnat).replacen(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"10.20.0.200\", \"2001:db8:20::200\", \"10.20.0.201\"]",
        1,
    );
    let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.ports[1].local_addresses, vec![Ipv4Addr::new(10, 20, 0, 200), Ipv4Addr::new(10, 20, 0, 201)]);
    assert_eq!(c.ports[1].local_addresses6, vec!["2001:db8:20::200".parse::<std::net::Ipv6Addr>().unwrap()]);
    // An IPv6 local address only: IPv4 Full-NAT servers are refused for want of an IPv4 one.
    let only6 = text.replacen("\"10.20.0.200\", ", "", 1).replacen(", \"10.20.0.201\"", "", 1).replacen(
        "forward = \"nat\"",
        "forward = \"fullnat\"",
        1,
    );
    let e = Config::from_toml(&only6).unwrap_err();
    assert_eq!(e.errors[0].field, "service[0].server[0].forward", "{e}");
    assert!(e.errors[0].message.contains("IPv4 Full-NAT local addresses"), "{e}");
    // A local address is an address of rvs's: no VIP or server may take it.
    let clash = text.replace("address = \"2001:db8:20::11\"", "address = \"2001:db8:20::200\"");
    let e = Config::from_toml(&clash).unwrap_err();
    assert!(e.errors.iter().any(|x| x.field == "service[1].server[0].address"), "{e}");
}

#[test]
fn nat64_takes_ipv4_fullnat_servers_on_an_ipv6_service_with_an_ipv4_local_address() {
    // Both servers IPv4 through Full-NAT: NAT64, accepted (the sketch's back port has
    // IPv4 local addresses); the sorry server stays of the VIP's family.
    let nat64 = V6_SERVICE
        .replacen("address = \"2001:db8:20::11\"", "address = \"10.20.0.11\"", 1)
        .replacen("address = \"2001:db8:20::12\"", "address = \"10.20.0.12\"", 1)
        .replacen("forward = \"nat\"", "forward = \"fullnat\"", 1)
        .replacen("port = 80\nforward = \"dr\"", "port = 8080\nforward = \"fullnat\"", 1);
    let c = model(&v6_sketch(&nat64)).unwrap_or_else(|e| panic!("{e}"));
    let s = &c.services[1];
    assert!(s.address.is_ipv6());
    assert!(s.servers.iter().all(|r| r.address.is_ipv4() && r.forward == Forward::FullNat));
    // In any other mode the server's forward is refused, naming the fix.
    for mode in ["nat", "dr", "tunnel"] {
        let text = v6_sketch(&nat64.replacen("forward = \"fullnat\"", &format!("forward = \"{mode}\""), 1));
        let e = model(&text).expect_err(mode);
        let hit = e.errors.iter().find(|x| x.field == "service[1].server[0].forward");
        let hit = hit.unwrap_or_else(|| panic!("{mode}: not named:\n{e}"));
        assert!(hit.message.contains("NAT64") && hit.message.contains("set forward = \"fullnat\""), "{e}");
    }
    // Without an IPv4 local address: refused, naming the fix.
    let no_v4_locals = v6_sketch(&nat64).replacen(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
        "local_addresses = [\"2001:db8:20::200\"]",
        1,
    );
    let e = model(&no_v4_locals).unwrap_err();
    let hit = e.errors.iter().find(|x| x.field == "service[1].server[0].forward").expect("named");
    assert!(hit.message.contains("IPv4 Full-NAT local addresses"), "{e}");
}

#[test]
fn ipv6_vip_follows_the_ipv4_rule_and_may_be_routed() {
    // Like an IPv4 VIP, an IPv6 VIP need not be on a port's prefix (a routed VIP).
    let routed = V6_SERVICE.replace("2001:db8:10::100", "2001:db8:99::100");
    assert!(model(&v6_sketch(&routed)).is_ok());
}

#[test]
fn bad_ipv6_services_name_their_field_with_the_fix() {
    let cases: &[(&str, &str, &str, &str)] = &[
        // A VIP that is a port's own IPv6 address.
        ("2001:db8:10::100", "2001:db8:10::1", "service[1].address", "port[0].ipv6_addresses[0]"),
        ("2001:db8:10::100", "fe80::1", "service[1].address", "link-local"),
        ("2001:db8:10::100", "ff02::1", "service[1].address", "multicast"),
        ("2001:db8:10::100", "::1", "service[1].address", "loopback"),
        ("2001:db8:10::100", "::", "service[1].address", "unspecified"),
        ("2001:db8:10::100", "::ffff:10.10.0.100", "service[1].address", "\"10.10.0.100\""),
        ("2001:db8:10::100", "2001:db8:10::100%eth0", "service[1].address", "zone id"),
        ("2001:db8:10::100", "[2001:db8:10::100]", "service[1].address", "brackets"),
        ("2001:db8:10::100", "2001:db8:10::100/64", "service[1].address", "prefix length"),
        // An IPv4 server of an IPv6 service is NAT64, through Full-NAT only.
        ("\"2001:db8:20::11\"", "\"10.20.0.11\"", "service[1].server[0].forward", "set forward = \"fullnat\""),
        ("\"2001:db8:20::11\"", "\"2001:db8:77::11\"", "service[1].server[0].address", "IPv6 prefix"),
        ("forward = \"nat\"", "forward = \"fullnat\"", "service[1].server[0].forward", "IPv6 Full-NAT local address"),
        ("[2001:db8:20::50]:8080", "2001:db8:20::50", "service[1].sorry_server", "[2001:db8:20::50]:PORT"),
        ("[2001:db8:20::50]:8080", "10.20.0.50:8080", "service[1].sorry_server", "family"),
        ("[2001:db8:20::50]:8080", "[2001:db8:20::50:8080", "service[1].sorry_server", "[2001:db8::50]:80"),
        (
            "sorry_server",
            "persistence = \"60s\"\npersistence_netmask = \"255.255.255.0\"\nsorry_server",
            "service[1].persistence_netmask",
            "give a prefix length 1-128 such as \"64\"",
        ),
        (
            "sorry_server",
            "persistence = \"60s\"\npersistence_netmask = \"129\"\nsorry_server",
            "service[1].persistence_netmask",
            "1-128",
        ),
        (
            "sorry_server",
            "persistence = \"60s\"\npersistence_netmask = \"0\"\nsorry_server",
            "service[1].persistence_netmask",
            "1-128",
        ),
        (
            "sorry_server",
            "persistence = \"60s\"\npersistence_netmask = \"/64\"\nsorry_server",
            "service[1].persistence_netmask",
            "not a prefix length",
        ),
        (
            "sorry_server",
            "persistence_netmask = \"64\"\nsorry_server",
            "service[1].persistence_netmask",
            "only with persistence",
        ),
        (
            "sorry_server",
            "allow = [\"2001:db8:10::1/48\"]\nsorry_server",
            "service[1].allow[0]",
            "did you mean \"2001:db8:10::/48\"",
        ),
    ];
    for (from, to, field, says) in cases {
        assert!(V6_SERVICE.contains(from), "`{from}`");
        let text = v6_sketch(&V6_SERVICE.replacen(from, to, 1));
        let e = model(&text).expect_err(&format!("{from} → {to} was accepted"));
        let hit = e.errors.iter().find(|x| x.field == *field);
        let hit = hit.unwrap_or_else(|| panic!("{to}: no error names `{field}`:\n{e}"));
        assert!(hit.message.contains(says), "{to}: `{field}` does not say `{says}`:\n{e}");
    }
    // An IPv6 server in the IPv4 service.
    let text = v6_sketch("").replacen("address = \"10.20.0.11\"", "address = \"2001:db8:20::11\"", 1);
    let e = model(&text).unwrap_err();
    let hit = e.errors.iter().find(|x| x.field == "service[0].server[0].address").expect("named");
    assert!(hit.message.contains("IPv6") && hit.message.contains("10.10.0.100"), "{e}");
}

#[test]
fn track_services_take_ipv6_vips() {
    let c = model(&v6_sketch(V6_SERVICE)).unwrap();
    assert_eq!(super::validate::parse_service_ref("tcp/2001:db8:10::100/80"), Ok(c.services[1].key()));
    assert_eq!(super::validate::parse_service_ref("tcp/[2001:db8:10::100]/80"), Ok(c.services[1].key()));
    assert!(super::validate::parse_service_ref("tcp/2001:db8:10::100:80").is_err());
}

/// An IPv6 VIP goes in an instance beside IPv4 addresses (carried by IPv4 adverts) or
/// alone (VRRP over IPv6); an IPv6 address that is no VIP, no local address and on no
/// port's IPv6 prefix, a port's own, or not global is refused with the field named.
#[test]
fn ipv6_vips_in_ha_instances() {
    let v6 = SKETCH
        .replace("address = \"10.10.0.1/24\"", "address = \"10.10.0.1/24\"\nipv6_addresses = [\"2001:db8:10::1/64\"]")
        + "[[service]]\nprotocol = \"tcp\"\naddress = \"2001:db8:10::100\"\nport = 80\nscheduler = \"rr\"\n\
         [[service.server]]\naddress = \"2001:db8:10::11\"\nport = 80\nforward = \"dr\"\n";
    let ha = |addresses: &str| {
        format!("{v6}\n[ha]\n{}", HA_INSTANCE.replace("[\"10.10.0.100\", \"10.20.0.100\"]", addresses))
    };
    let c = Config::from_toml(&ha("[\"10.10.0.100\", \"10.20.0.100\", \"2001:db8:10::100\"]"))
        .unwrap_or_else(|e| panic!("{e}"));
    let inst = &c.ha.as_ref().expect("[ha]").instances[0];
    assert!(inst.addresses.contains(&"2001:db8:10::100".parse().unwrap()), "{:?}", inst.addresses);
    // Without the IPv6 VIP in an instance, the [ha] rule for every VIP applies.
    let e = Config::from_toml(&ha("[\"10.10.0.100\", \"10.20.0.100\"]")).unwrap_err();
    assert!(e.names("service[1].address"), "{e}");
    for (addresses, field, says) in [
        (
            "[\"10.10.0.100\", \"2001:db8:99::1\", \"2001:db8:10::100\"]",
            "ha.instance[0].addresses[1]",
            "not on any port's IPv6 prefix (front 2001:db8:10::/64)",
        ),
        (
            "[\"10.10.0.100\", \"2001:db8:10::100\", \"2001:db8:10::100\"]",
            "ha.instance[0].addresses[2]",
            "already in this instance",
        ),
        (
            "[\"10.10.0.100\", \"2001:db8:10::1\", \"2001:db8:10::100\"]",
            "ha.instance[0].addresses[1]",
            "own IPv6 address",
        ),
        ("[\"10.10.0.100\", \"fe80::1\", \"2001:db8:10::100\"]", "ha.instance[0].addresses[1]", "is link-local"),
        ("[\"10.10.0.100\", \"ff02::12\", \"2001:db8:10::100\"]", "ha.instance[0].addresses[1]", "multicast"),
    ] {
        let e = Config::from_toml(&ha(addresses)).unwrap_err();
        let hit = e.errors.iter().find(|x| x.field == field).unwrap_or_else(|| panic!("{addresses}: {e}"));
        assert!(hit.message.contains(says), "{addresses}: {e}");
    }
    // The back port's IPv6 Full-NAT local address moves with the instance too.
    let with_local6 = ha("[\"10.10.0.100\", \"10.20.0.100\", \"2001:db8:10::100\", \"2001:db8:20::200\"]")
        .replace(
            "local_addresses = [\"10.20.0.200\", \"10.20.0.201\"]",
            "ipv6_addresses = [\"2001:db8:20::1/64\"]\nlocal_addresses = [\"10.20.0.200\", \"10.20.0.201\", \"2001:db8:20::200\"]",
        );
    let c = Config::from_toml(&with_local6).unwrap_or_else(|e| panic!("{e}"));
    let inst = &c.ha.as_ref().expect("[ha]").instances[0];
    assert!(inst.addresses.contains(&"2001:db8:20::200".parse().unwrap()), "{:?}", inst.addresses);
    // An IPv6 address on a port's prefix that is neither VIP nor local address: a floating
    // address (a NAT66 gateway on the back network).
    let floating = with_local6
        .replace("\"2001:db8:10::100\", \"2001:db8:20::200\"]", "\"2001:db8:10::100\", \"2001:db8:20::254\"]");
    let c = Config::from_toml(&floating).unwrap_or_else(|e| panic!("{e}"));
    let inst = &c.ha.as_ref().expect("[ha]").instances[0];
    assert!(inst.addresses.contains(&"2001:db8:20::254".parse().unwrap()), "{:?}", inst.addresses);
    // An instance of IPv6 addresses only speaks VRRP over IPv6: version 3 on a port with
    // IPv6 addresses.
    let only6 = |extra: &str| {
        format!(
            "{}{}",
            ha("[\"10.10.0.100\", \"10.20.0.100\"]"),
            HA_INSTANCE
                .replace("vrid = 51", &format!("vrid = 52{extra}"))
                .replace("\"100ms\"", if extra.contains("version = 2") { "\"1s\"" } else { "\"100ms\"" })
                .replace("[\"10.10.0.100\", \"10.20.0.100\"]", "[\"2001:db8:10::100\", \"2001:db8:10::254\"]")
        )
    };
    let c = Config::from_toml(&only6("")).unwrap_or_else(|e| panic!("{e}"));
    let inst = &c.ha.as_ref().expect("[ha]").instances[1];
    assert_eq!((inst.version, inst.addresses.len()), (3, 2));
    assert!(inst.addresses.iter().all(|a| a.is_ipv6()));
    let e = Config::from_toml(&only6("\nversion = 2")).unwrap_err();
    let hit = e.errors.iter().find(|x| x.field == "ha.instance[1].version").unwrap_or_else(|| panic!("{e}"));
    assert!(hit.message.contains("IPv4 only") && hit.message.contains("version = 3"), "{e}");
    // The same instance with an IPv4 address is VRRPv2 over IPv4, the IPv6 ones excluded.
    let mixed_v2 = only6("\nversion = 2")
        .replace("[\"2001:db8:10::100\", \"2001:db8:10::254\"]", "[\"10.10.0.99\", \"2001:db8:10::100\"]");
    Config::from_toml(&mixed_v2).unwrap_or_else(|e| panic!("{e}"));
    // Over IPv6 the adverts leave from the port's link-local address: a port without IPv6
    // addresses has none.
    let no_v6_port = only6("")
        .replace("vrid = 52\nport = \"front\"", "vrid = 52\nport = \"back\"")
        .replace("\"2001:db8:10::254\"]", "\"2001:db8:10::253\"]");
    let e = Config::from_toml(&no_v6_port).unwrap_err();
    let hit = e.errors.iter().find(|x| x.field == "ha.instance[1].port").unwrap_or_else(|| panic!("{e}"));
    assert!(hit.message.contains("port `back` has no ipv6_addresses"), "{e}");
}

/// One VRID per port and advert family: an IPv4 instance and an IPv6-only instance may
/// share VRID 51 on `front` (keepalived allows it), two of one family may not. The IPv6
/// one may have a virtual link-local address (fe80::/10, in no other instance; not on an
/// instance whose adverts are IPv4), refused otherwise with the field named.
#[test]
fn one_vrid_per_family_and_the_virtual_link_local_address() {
    let v6 = SKETCH
        .replace("address = \"10.10.0.1/24\"", "address = \"10.10.0.1/24\"\nipv6_addresses = [\"2001:db8:10::1/64\"]")
        + "[[service]]\nprotocol = \"tcp\"\naddress = \"2001:db8:10::100\"\nport = 80\nscheduler = \"rr\"\n\
         [[service.server]]\naddress = \"2001:db8:10::11\"\nport = 80\nforward = \"dr\"\n";
    let v6_instance = |vrid: u8, addresses: &str, extra: &str| {
        HA_INSTANCE
            .replace("vrid = 51", &format!("vrid = {vrid}{extra}"))
            .replace("[\"10.10.0.100\", \"10.20.0.100\"]", addresses)
    };
    let both = |extra4: &str, extra6: &str| {
        format!(
            "{v6}\n[ha]\n{}{}",
            HA_INSTANCE.replace("vrid = 51", &format!("vrid = 51{extra4}")),
            v6_instance(51, "[\"2001:db8:10::100\", \"2001:db8:10::254\"]", extra6)
        )
    };
    let c = Config::from_toml(&both("", "")).unwrap_or_else(|e| panic!("{e}"));
    let ha = c.ha.as_ref().expect("[ha]");
    assert_eq!(
        ha.instances.iter().map(|i| (i.vrid, i.family())).collect::<Vec<_>>(),
        [(51, AdvertFamily::Ipv4), (51, AdvertFamily::Ipv6)]
    );
    assert_eq!(ha.instances[1].virtual_link_local, None, "no default");
    // The virtual link-local address.
    let c = Config::from_toml(&both("", "\nvirtual_link_local = \"fe80::51\"")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.ha.as_ref().unwrap().instances[1].virtual_link_local, Some("fe80::51".parse().unwrap()));
    // A third instance of VRID 51 on front: two of one family.
    let third = format!("{}{}", both("", ""), v6_instance(51, "[\"2001:db8:10::253\"]", ""));
    let e = Config::from_toml(&third).unwrap_err();
    let hit = e.errors.iter().find(|x| x.field == "ha.instance[2].vrid").unwrap_or_else(|| panic!("{e}"));
    assert!(hit.message.contains("already used on port `front` by ha.instance[1]"), "{e}");
    assert!(hit.message.contains("VRRP over IPv6") && hit.message.contains("one IPv4 instance"), "{e}");
    let two4 =
        format!("{}{}", both("", ""), HA_INSTANCE.replace("[\"10.10.0.100\", \"10.20.0.100\"]", "[\"10.20.0.150\"]"));
    let e = Config::from_toml(&two4).unwrap_err();
    let hit = e.errors.iter().find(|x| x.field == "ha.instance[2].vrid").unwrap_or_else(|| panic!("{e}"));
    assert!(hit.message.contains("by ha.instance[0]") && hit.message.contains("VRRP over IPv4"), "{e}");
    for (text, field, says) in [
        (
            both("", "\nvirtual_link_local = \"2001:db8:10::5\""),
            "ha.instance[1].virtual_link_local",
            "is not link-local",
        ),
        (
            both("", "\nvirtual_link_local = \"fe80::1%eth0\""),
            "ha.instance[1].virtual_link_local",
            "not an IPv6 address",
        ),
        (both("", "\nvirtual_link_local = \"10.10.0.5\""), "ha.instance[1].virtual_link_local", "not an IPv6 address"),
        (both("\nvirtual_link_local = \"fe80::51\"", ""), "ha.instance[0].virtual_link_local", "VRRP over IPv4"),
        (
            format!(
                "{}{}",
                both("", "\nvirtual_link_local = \"fe80::51\""),
                v6_instance(52, "[\"2001:db8:10::253\"]", "\nvirtual_link_local = \"fe80::51\"")
            ),
            "ha.instance[2].virtual_link_local",
            "already ha.instance[1]'s",
        ),
    ] {
        let e = Config::from_toml(&text).unwrap_err();
        let hit = e.errors.iter().find(|x| x.field == field).unwrap_or_else(|| panic!("{field}: {e}"));
        assert!(hit.message.contains(says), "{field} does not say `{says}`: {e}");
    }
}
