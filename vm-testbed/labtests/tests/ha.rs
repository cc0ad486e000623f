//! End-to-end tests of VRRP high availability in the netns lab: lab-lb1 and lab-lb2 as a
//! master/backup pair (`config/lab-ha-lb1.toml`, priority 200; `config/lab-ha-lb2.toml`,
//! priority 100; VRID 51 on the front port, adverts every 100 ms, the VIP 10.10.0.100 and the
//! NAT gateway 10.20.0.100), and keepalived (Debian's package, started by the test in
//! lab-router on its `front` interface) as the other router of the same VRID.
//!
//! The client reaches the VIP on-link (its route to 10.10.0.100 is replaced by `dev eth0`), so
//! it ARPs for the VIP and follows gratuitous ARP; the real servers route the client network
//! through the floating gateway 10.20.0.100 (NAT mode), so their replies follow the master.
//!
//! - `failover_on_crash_sigterm_and_preempt`: lb1 is master and lb2 backup, the client's ARP
//!   entry for the VIP is lb1's MAC and HTTP through the VIP works; lb1 is SIGKILLed while the
//!   client pings the VIP every 10 ms and a curl loop runs: the gap (last reply before, first
//!   reply after, by ping's timestamps) is printed and must stay under 1 s; HTTP works through
//!   lb2. lb1 comes back and, with preempt, takes the VIP back; then lb1 is stopped with
//!   SIGTERM (priority 0): that gap is printed and must be shorter than the crash's. The
//!   curls that failed across the takeovers are printed (connections are not synced yet).
//! - `returning_master_honours_preempt_settings`: without preempt lb1 stays backup when it
//!   comes back; with `preempt_delay = "2s"` it takes over no sooner than 2 s after.
//! - `keepalived_interop_v3` and `_v2`: rvsd (lb1) at 200 and keepalived at 150: keepalived
//!   stays BACKUP (the VIP is not on lab-router's front); rvsd stopped: keepalived becomes
//!   MASTER within 1 s; keepalived at 250 and rvsd started: rvsd stays backup with
//!   keepalived's address as master. Version 3 with 100 ms adverts, version 2 with 1 s.
//! - `keepalived_interop_v3_ipv6_vip`: an IPv6 VIP beside the IPv4 addresses (IPv4 adverts,
//!   keepalived's `virtual_ipaddress_excluded`).
//! - `keepalived_interop_v3_over_ipv6` and `ipv6_only_instance_fails_over_on_crash`: an
//!   IPv6-only instance (VRID 61: the IPv6 VIP and the floating NAT66 gateway
//!   2001:db8:20::100), VRRPv3 over IPv6, against keepalived and between two rvsd (there
//!   as VRID 51, beside the IPv4 instance of the same VRID: one VRID per advert family).
//! - `keepalived_strict_interop_with_a_virtual_link_local_address`: the IPv6-only
//!   instance with `virtual_link_local = "fe80::61"` against keepalived in `vrrp_strict`
//!   mode, failing over both ways.
//!
//! `#[ignore]`: needs root, the lab, keepalived and rvsd; `vm-testbed/test.sh` runs it with
//! the other lab tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use rvs_labtests::ha::*;
use rvs_labtests::*;
use serde_json::Value;

/// A ping of the VIP every 10 ms for `secs` seconds, from the client, in the background.
fn start_ping(secs: u32) -> Child {
    Command::new("ip")
        .args(["netns", "exec", CLIENT, "ping", "-n", "-D", "-i", "0.01", "-W", "1", "-w", &secs.to_string(), VIP])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ping")
}

/// The longest time between two consecutive replies of a `ping -D` run, and the replies.
fn longest_gap(child: Child) -> (Duration, usize) {
    let out = child.wait_with_output().expect("ping output");
    let text = String::from_utf8_lossy(&out.stdout);
    let stamps: Vec<f64> = text
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .collect();
    let gap = stamps.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    (Duration::from_secs_f64(gap), stamps.len())
}

/// A curl of the VIP every 50 ms until `stop`; returns (ok, failed).
fn curl_loop(stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<(u32, u32)> {
    std::thread::spawn(move || {
        let (mut ok, mut failed) = (0, 0);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if http_ok() {
                ok += 1;
            } else {
                failed += 1;
            }
            sleep(Duration::from_millis(50));
        }
        (ok, failed)
    })
}

/// Kills (or stops) `lb` while the client pings the VIP every 10 ms and curls it; returns the
/// longest gap between two ping replies and the (ok, failed) curls.
fn measured_takeover(lab: &mut Lab, lb: &str, kill: bool) -> (Duration, (u32, u32)) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let curls = curl_loop(std::sync::Arc::clone(&stop));
    let ping = start_ping(4);
    sleep(Duration::from_secs(1));
    lab.stop_lb(lb, kill);
    let (gap, replies) = longest_gap(ping);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let curls = curls.join().expect("curl loop");
    assert!(replies > 100, "only {replies} ping replies in 4 s");
    (gap, curls)
}

#[test]
#[ignore = "needs root, the lab, keepalived and rvsd: run vm-testbed/test.sh"]
fn failover_on_crash_sigterm_and_preempt() {
    let mut lab = Lab::up_without_lb();
    lab.start_real_servers(Mode::Nat);
    ha_routes();
    lab.start_lb("lb1", Some(&config("lab-ha-lb1.toml")));
    wait_state(LB1, "master", Duration::from_secs(3));
    lab.start_lb("lb2", Some(&config("lab-ha-lb2.toml")));
    wait_state(LB2, "backup", Duration::from_secs(3));
    sleep(Duration::from_millis(500));
    assert_eq!(state(LB1), "master", "lb1 kept the role: {:?}", instance(LB1));
    assert_eq!(
        instance(LB2).and_then(|i| i["master"].as_str().map(String::from)).as_deref(),
        Some(LB1_FRONT_IP),
        "lb2 hears lb1"
    );
    assert!(wait_until(Duration::from_secs(3), Duration::from_millis(100), http_ok), "HTTP through lb1");
    assert_eq!(neigh_mac(CLIENT, VIP).as_deref(), Some(LB1_FRONT_MAC), "the client reaches the VIP at lb1");

    // Crash.
    let (gap, (ok, failed)) = measured_takeover(&mut lab, "lb1", true);
    eprintln!("HA: SIGKILL of the master: longest ping gap {gap:?}; curls {ok} ok, {failed} failed");
    assert!(gap < MAX_GAP, "takeover after a crash took {gap:?}");
    assert_eq!(state(LB2), "master");
    assert!(wait_until(Duration::from_secs(2), Duration::from_millis(50), http_ok), "HTTP through lb2");
    assert_eq!(neigh_mac(CLIENT, VIP).as_deref(), Some(LB2_FRONT_MAC), "gratuitous ARP moved the VIP");
    let relearnt = ns_exec_ok(REAL_SERVERS[0], &["ip", "neigh", "show", GATEWAY]);
    assert!(relearnt.contains("02:00:00:00:02:02"), "the gateway moved to lb2's back port: {relearnt}");

    // lb1 returns and preempts (preempt_delay 0): master again within its master-down time.
    let back = Instant::now();
    lab.start_lb("lb1", Some(&config("lab-ha-lb1.toml")));
    wait_state(LB1, "master", Duration::from_secs(3));
    eprintln!("HA: lb1 back after {:?} (start-up included)", back.elapsed());
    wait_state(LB2, "backup", Duration::from_secs(1));
    assert!(wait_until(Duration::from_secs(2), Duration::from_millis(50), http_ok), "HTTP through lb1 again");

    // Orderly stop: priority 0, the backup takes over after its skew time.
    let (term_gap, (ok, failed)) = measured_takeover(&mut lab, "lb1", false);
    eprintln!("HA: SIGTERM of the master: longest ping gap {term_gap:?}; curls {ok} ok, {failed} failed");
    assert!(term_gap < gap, "SIGTERM ({term_gap:?}) must hand over faster than a crash ({gap:?})");
    assert_eq!(state(LB2), "master");
}

#[test]
#[ignore = "needs root, the lab, keepalived and rvsd: run vm-testbed/test.sh"]
fn returning_master_honours_preempt_settings() {
    let mut lab = Lab::up_without_lb();
    ha_routes();
    lab.start_lb("lb2", Some(&config("lab-ha-lb2.toml")));
    wait_state(LB2, "master", Duration::from_secs(3));

    let no_preempt = variant("lab-ha-lb1.toml", "preempt = true", "preempt = false", "ha-lb1-nopreempt.toml");
    lab.start_lb("lb1", Some(&no_preempt));
    wait_state(LB1, "backup", Duration::from_secs(3));
    sleep(Duration::from_secs(2));
    assert_eq!((state(LB1), state(LB2)), ("backup".into(), "master".into()), "without preempt lb1 stays backup");
    lab.stop_lb("lb1", false);

    let delayed = variant("lab-ha-lb1.toml", "preempt_delay = \"0s\"", "preempt_delay = \"2s\"", "ha-lb1-delay.toml");
    lab.start_lb("lb1", Some(&delayed));
    // From lb1's own transition times: it entered backup at start, master after the delay
    // (counted from the first lower advert it heard) and its master-down time.
    let started = instance(LB1).and_then(|i| since_secs(&i)).expect("lb1's start transition");
    wait_state(LB1, "master", Duration::from_secs(6));
    let master = instance(LB1).and_then(|i| since_secs(&i)).expect("lb1's master transition");
    let took = Duration::from_secs_f64((master - started).rem_euclid(86_400.0));
    eprintln!("HA: preempt_delay 2s: lb1 master {took:?} after it started as backup");
    assert!(took >= Duration::from_secs(2), "preempted after {took:?}, before preempt_delay");
    wait_state(LB2, "backup", Duration::from_secs(1));
}

/// keepalived in lab-router on `front`, the same VRID and addresses as the lab's instance.
struct Keepalived {
    child: Child,
    log: PathBuf,
}

impl Keepalived {
    fn start(version: u8, priority: u8) -> Keepalived {
        Keepalived::start_with(version, priority, "")
    }

    /// [`Keepalived::start`] with `extra` lines in the instance (an IPv6 VIP as
    /// `virtual_ipaddress_excluded`, which its adverts do not carry, as rvsd's do not).
    fn start_with(version: u8, priority: u8, extra: &str) -> Keepalived {
        let advert = if version == 3 { "0.1" } else { "1" };
        let conf = format!(
            "global_defs {{\n  router_id lab_router\n  vrrp_version {version}\n}}\n\
             vrrp_instance VI_51 {{\n  state BACKUP\n  interface front\n  virtual_router_id 51\n  priority {priority}\n\
               advert_int {advert}\n  virtual_ipaddress {{\n    10.10.0.100/24 dev front\n    10.20.0.100/24 dev back\n  }}\n{extra}}}\n"
        );
        Keepalived::start_conf(&conf, &format!("v{version}-{priority}"))
    }

    /// keepalived with configuration `conf`, its files in the run folder named after `tag`.
    fn start_conf(conf: &str, tag: &str) -> Keepalived {
        let dir = run_dir();
        let path = dir.join(format!("keepalived-{tag}.conf"));
        std::fs::write(&path, conf).expect("write keepalived.conf");
        let log = dir.join(format!("keepalived-{tag}.log"));
        let out = std::fs::File::create(&log).expect("keepalived log");
        let err = out.try_clone().expect("keepalived log");
        let child = Command::new("ip")
            .args(["netns", "exec", ROUTER, "keepalived", "--dont-fork", "--log-console", "--log-detail", "--vrrp"])
            .arg(format!("--use-file={}", path.display()))
            .arg(format!("--pid={}", dir.join("keepalived.pid").display()))
            .arg(format!("--vrrp_pid={}", dir.join("keepalived-vrrp.pid").display()))
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start keepalived (apt-get install keepalived; setup-host.sh does)");
        Keepalived { child, log }
    }

    /// Whether keepalived is master: it holds the VIP on lab-router's front.
    fn is_master() -> bool {
        let out = ns_exec(ROUTER, &["ip", "-4", "addr", "show", "dev", "front"]);
        String::from_utf8_lossy(&out.stdout).contains("10.10.0.100/")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

fn interop(version: u8) {
    let mut lab = Lab::up_without_lb();
    ha_routes();
    let cfg = if version == 3 {
        config("lab-ha-lb1.toml")
    } else {
        variant(
            "lab-ha-lb1.toml",
            "advert_interval = \"100ms\"",
            "advert_interval = \"1s\"\nversion = 2",
            "ha-lb1-v2.toml",
        )
    };
    let (down, settle) = if version == 3 {
        (Duration::from_secs(1), Duration::from_secs(1))
    } else {
        (Duration::from_secs(5), Duration::from_secs(4))
    };

    // rvsd higher: keepalived stays BACKUP, accepting rvsd's adverts.
    lab.start_lb("lb1", Some(&cfg));
    wait_state(LB1, "master", down * 3);
    let ka = Keepalived::start(version, 150);
    sleep(settle * 2);
    assert!(!Keepalived::is_master(), "keepalived took the VIP from a higher rvsd:\n{}", ka.log());
    assert_eq!(state(LB1), "master", "{:?}\n{}", instance(LB1), ka.log());
    let inst = instance(LB1).unwrap_or_default();
    assert_eq!(
        inst["invalid"].as_object().map(|m| m.values().filter_map(Value::as_u64).sum::<u64>()),
        Some(0),
        "{inst}"
    );

    // rvsd stopped: keepalived becomes MASTER.
    let t0 = Instant::now();
    lab.stop_lb("lb1", false);
    assert!(wait_until(down, Duration::from_millis(10), Keepalived::is_master), "keepalived not master:\n{}", ka.log());
    eprintln!("HA: keepalived v{version} master {:?} after rvsd's SIGTERM", t0.elapsed());
    drop(ka);

    // keepalived higher: rvsd stays backup and names keepalived's address as master.
    let ka = Keepalived::start(version, 250);
    assert!(wait_until(down * 2, Duration::from_millis(20), Keepalived::is_master), "{}", ka.log());
    lab.start_lb("lb1", Some(&cfg));
    wait_state(LB1, "backup", down);
    sleep(settle * 2);
    let inst = instance(LB1).unwrap_or_default();
    assert_eq!(inst["state"], "backup", "{inst}\n{}", ka.log());
    assert_eq!(inst["master"], "10.10.0.254", "{inst}");
    assert!(inst["adverts_received"].as_u64().unwrap_or(0) > 0, "{inst}");
    assert!(Keepalived::is_master(), "{}", ka.log());
}

#[test]
#[ignore = "needs root, the lab, keepalived and rvsd: run vm-testbed/test.sh"]
fn keepalived_interop_v3() {
    interop(3);
}

#[test]
#[ignore = "needs root, the lab, keepalived and rvsd: run vm-testbed/test.sh"]
fn keepalived_interop_v2() {
    interop(2);
}

/// The lab's IPv6 VIP (lab.sh), here in the VRRP instance with the IPv4 addresses.
const VIP6: &str = "2001:db8:10::100";

/// keepalived 2.2.7 and rvsd with an IPv6 VIP in VRID 51: rvsd beside its IPv4 addresses,
/// keepalived as `virtual_ipaddress_excluded`. Neither's adverts carry it, so each accepts
/// the other's (no `invalid` advert on rvsd's side); the IPv6 VIP follows the role: while
/// rvsd is master the client resolves it to rvsd's MAC, while keepalived is master (rvsd
/// backup, not answering for it) to the router's.
#[test]
#[ignore = "needs root, the lab, keepalived and rvsd: run vm-testbed/test.sh"]
fn keepalived_interop_v3_ipv6_vip() {
    let mut lab = Lab::up_without_lb();
    ha_routes();
    ns_exec_ok(CLIENT, &["ip", "-6", "route", "replace", &format!("{VIP6}/128"), "dev", "eth0"]);
    let service = format!(
        "[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP6}\"\nport = 80\nscheduler = \"rr\"\n\
         [[service.server]]\naddress = \"2001:db8:20::11\"\nport = 80\nforward = \"dr\"\n[ha]\n"
    );
    let addresses = format!("addresses = [\"10.10.0.100\", \"10.20.0.100\", \"{VIP6}\"]");
    let cfg = variant_with(
        "lab-ha-lb1.toml",
        &[("[ha]\n", service.as_str()), ("addresses = [\"10.10.0.100\", \"10.20.0.100\"]", addresses.as_str())],
        "ha-lb1-v6.toml",
    );
    let excluded = format!("  virtual_ipaddress_excluded {{\n    {VIP6}/128 dev front\n  }}\n");
    let ping6 = || ns_exec(CLIENT, &["ping", "-6", "-n", "-c", "1", "-W", "1", VIP6]);
    let invalid = |inst: &Value| inst["invalid"].as_object().map(|m| m.values().filter_map(Value::as_u64).sum::<u64>());

    // rvsd higher: keepalived stays backup; the client reaches the IPv6 VIP at rvsd.
    lab.start_lb("lb1", Some(&cfg));
    wait_state(LB1, "master", Duration::from_secs(3));
    let ka = Keepalived::start_with(3, 150, &excluded);
    sleep(Duration::from_secs(2));
    assert!(!Keepalived::is_master(), "keepalived took the VIP from a higher rvsd:\n{}", ka.log());
    let inst = instance(LB1).unwrap_or_default();
    assert_eq!((inst["state"].as_str(), invalid(&inst)), (Some("master"), Some(0)), "{inst}\n{}", ka.log());
    let lb1_mac = port_mac(&status_of(LB1), "front");
    ns_exec_ok(CLIENT, &["ip", "-6", "neigh", "flush", "dev", "eth0"]);
    let out = ping6();
    assert!(ping_received(&out) == 1, "ping -6 {VIP6} with rvsd master: {}", describe(&out));
    assert_eq!(neigh_mac(CLIENT, VIP6).as_deref(), Some(lb1_mac.as_str()), "the IPv6 VIP with rvsd master");
    lab.stop_lb("lb1", false);
    drop(ka);

    // keepalived higher: rvsd backup, accepting its adverts, silent for the IPv6 VIP.
    let ka = Keepalived::start_with(3, 250, &excluded);
    assert!(wait_until(Duration::from_secs(2), Duration::from_millis(20), Keepalived::is_master), "{}", ka.log());
    lab.start_lb("lb1", Some(&cfg));
    wait_state(LB1, "backup", Duration::from_secs(1));
    sleep(Duration::from_secs(2));
    let inst = instance(LB1).unwrap_or_default();
    assert_eq!((inst["state"].as_str(), invalid(&inst)), (Some("backup"), Some(0)), "{inst}\n{}", ka.log());
    assert!(inst["adverts_received"].as_u64().unwrap_or(0) > 0, "{inst}");
    let router_mac = link_mac(ROUTER, "front");
    ns_exec_ok(CLIENT, &["ip", "-6", "neigh", "flush", "dev", "eth0"]);
    let out = ping6();
    assert!(ping_received(&out) == 1, "ping -6 {VIP6} with keepalived master: {}\n{}", describe(&out), ka.log());
    assert_eq!(
        neigh_mac(CLIENT, VIP6).as_deref(),
        Some(router_mac.as_str()),
        "the IPv6 VIP with rvsd backup: {:?}",
        drops(&status_of(LB1))
    );
    assert!(drop_count(&status_of(LB1), "ha_backup") > 0, "rvsd backup counted nothing for the VIP");
}

/// The NAT66 gateway on the back network, an IPv6 floating address of the IPv6 instance.
const GATEWAY6: &str = "2001:db8:20::100";

/// lab-ha-lb1/2.toml with an IPv6 service on [`VIP6`] and, first (so `instance()` reads
/// it), an IPv6-only instance: VRID 61 on front at `priority`, adverts every 100 ms,
/// [`VIP6`] and the floating [`GATEWAY6`]. Its adverts are VRRPv3 over IPv6.
fn ha6_config(base: &str, priority: u8, name: &str) -> PathBuf {
    ha6_config_with(base, priority, "", name)
}

/// [`ha6_config`] with `extra` lines in the IPv6-only instance.
fn ha6_config_with(base: &str, priority: u8, extra: &str, name: &str) -> PathBuf {
    let text = format!(
        "[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP6}\"\nport = 80\nscheduler = \"rr\"\n\
         [[service.server]]\naddress = \"2001:db8:20::11\"\nport = 80\nforward = \"dr\"\n\
         [ha]\n[[ha.instance]]\nvrid = 61\nport = \"front\"\npriority = {priority}\nadvert_interval = \"100ms\"\n\
         preempt = true\naddresses = [\"{VIP6}\", \"{GATEWAY6}\"]\n{extra}\n"
    );
    variant_with(base, &[("[ha]\n", text.as_str())], name)
}

/// The link-local address of `ifname` in `ns`.
fn link_local_of(ns: &str, ifname: &str) -> String {
    let text = ns_exec_ok(ns, &["ip", "-6", "-o", "addr", "show", "dev", ifname, "scope", "link"]);
    let mut words = text.split_whitespace();
    words
        .find(|w| *w == "inet6")
        .and_then(|_| words.next())
        .and_then(|a| a.split('/').next())
        .map(String::from)
        .unwrap_or_else(|| panic!("no link-local address on {ns} {ifname}: {text}"))
}

/// The link-local address of a port with MAC `mac` (RFC 4291 appendix A: fe80::/64 and
/// the modified EUI-64 interface identifier), as rvsd's DPDK port has it.
fn eui64_link_local(mac: &str) -> String {
    let m: Vec<u8> = mac.split(':').map(|h| u8::from_str_radix(h, 16).expect("a MAC")).collect();
    let a =
        std::net::Ipv6Addr::from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, m[0] ^ 2, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]);
    a.to_string()
}

/// One `ping -6` of `dst` from `ns`, its neighbour entry flushed first; the MAC it
/// resolved `dst` to.
fn ping6_resolves(ns: &str, dst: &str) -> Option<String> {
    ns_exec_ok(ns, &["ip", "-6", "neigh", "flush", "dev", "eth0"]);
    let out = ns_exec(ns, &["ping", "-6", "-n", "-c", "1", "-W", "1", dst]);
    assert!(ping_received(&out) == 1, "ping -6 {dst} from {ns}: {}", describe(&out));
    neigh_mac(ns, dst)
}

/// keepalived's VRRPv3-over-IPv6 instance VI_61: the same VRID and addresses as
/// [`ha6_config`]'s.
fn keepalived_v6(priority: u8) -> Keepalived {
    let conf = format!(
        "global_defs {{\n  router_id lab_router\n  vrrp_version 3\n}}\n\
         vrrp_instance VI_61 {{\n  state BACKUP\n  interface front\n  virtual_router_id 61\n  priority {priority}\n\
           advert_int 0.1\n  virtual_ipaddress {{\n    {VIP6}/128 dev front\n    {GATEWAY6}/64 dev back\n  }}\n}}\n"
    );
    Keepalived::start_conf(&conf, &format!("v6-{priority}"))
}

/// Whether keepalived holds the IPv6 VIP on lab-router's front.
fn keepalived_master6() -> bool {
    let out = ns_exec(ROUTER, &["ip", "-6", "addr", "show", "dev", "front"]);
    String::from_utf8_lossy(&out.stdout).contains(&format!("{VIP6}/"))
}

/// keepalived 2.2.7 as the peer of an IPv6-only instance (VRRPv3 over IPv6 on both
/// sides, ff02::12 from the link-local addresses): keepalived at 150 stays backup below
/// rvsd at 200 (the client resolves the IPv6 VIP, and a real server the floating NAT66
/// gateway, to rvsd's MACs) and becomes master when rvsd stops; rvsd at 100 then stays
/// backup, naming keepalived's link-local address as master. Neither refuses an advert:
/// rvsd's `invalid` counters stay 0 and keepalived logs no refusal for VI_61.
#[test]
#[ignore = "needs root, the lab, keepalived and rvsd: run vm-testbed/test.sh"]
fn keepalived_interop_v3_over_ipv6() {
    let mut lab = Lab::up_without_lb();
    ha_routes();
    ns_exec_ok(CLIENT, &["ip", "-6", "route", "replace", &format!("{VIP6}/128"), "dev", "eth0"]);
    let invalid = |inst: &Value| inst["invalid"].as_object().map(|m| m.values().filter_map(Value::as_u64).sum::<u64>());

    // rvsd higher: keepalived stays backup; the addresses are rvsd's.
    lab.start_lb("lb1", Some(&ha6_config("lab-ha-lb1.toml", 200, "ha6-lb1.toml")));
    wait_state(LB1, "master", Duration::from_secs(3));
    let ka = keepalived_v6(150);
    sleep(Duration::from_secs(2));
    assert!(!keepalived_master6(), "keepalived took the IPv6 VIP from a higher rvsd:\n{}", ka.log());
    let inst = instance(LB1).unwrap_or_default();
    assert_eq!(
        (inst["vrid"].as_u64(), inst["state"].as_str(), invalid(&inst)),
        (Some(61), Some("master"), Some(0)),
        "{inst}"
    );
    let st = status_of(LB1);
    let (front_mac, back_mac) = (port_mac(&st, "front"), port_mac(&st, "back"));
    assert_eq!(ping6_resolves(CLIENT, VIP6), Some(front_mac), "the IPv6 VIP with rvsd master");
    assert_eq!(ping6_resolves(REAL_SERVERS[0], GATEWAY6), Some(back_mac), "the NAT66 gateway with rvsd master");

    // rvsd stopped (priority 0): keepalived master.
    let t0 = Instant::now();
    lab.stop_lb("lb1", false);
    assert!(
        wait_until(Duration::from_secs(1), Duration::from_millis(10), keepalived_master6),
        "keepalived not master:\n{}",
        ka.log()
    );
    eprintln!("HA: keepalived (IPv6) master {:?} after rvsd's SIGTERM", t0.elapsed());
    let router_front = link_mac(ROUTER, "front");
    assert_eq!(ping6_resolves(CLIENT, VIP6), Some(router_front), "the IPv6 VIP with keepalived master");

    // rvsd lower: backup, accepting keepalived's adverts, silent for the addresses.
    lab.start_lb("lb1", Some(&ha6_config("lab-ha-lb1.toml", 100, "ha6-lb1-low.toml")));
    wait_state(LB1, "backup", Duration::from_secs(2));
    sleep(Duration::from_secs(1));
    let inst = instance(LB1).unwrap_or_default();
    assert_eq!((inst["state"].as_str(), invalid(&inst)), (Some("backup"), Some(0)), "{inst}\n{}", ka.log());
    assert!(inst["adverts_received"].as_u64().unwrap_or(0) > 0, "{inst}");
    assert_eq!(inst["master"].as_str(), Some(link_local_of(ROUTER, "front").as_str()), "{inst}");
    assert!(keepalived_master6(), "{}", ka.log());
    let log = ka.log();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("VI_61"))
        .filter(|l| {
            ["nvalid", "wrong version", "unexpected", "not present", "too short", "too long", "Expected", "expected"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect();
    assert!(refused.is_empty(), "keepalived refused rvsd's adverts: {refused:?}");
    assert!(log.contains("VI_61"), "keepalived ran the instance:\n{log}");
}

/// A ping -6 of the IPv6 VIP every 10 ms for `secs` seconds, from the client.
fn start_ping6(secs: u32) -> Child {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            CLIENT,
            "ping",
            "-6",
            "-n",
            "-D",
            "-i",
            "0.01",
            "-W",
            "1",
            "-w",
            &secs.to_string(),
            VIP6,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ping -6")
}

/// Every VRRP instance of lb `ns` as `/v1/ha` shows it.
fn instances(ns: &str) -> Vec<Value> {
    status_of(ns)["ha"]["instances"].as_array().cloned().unwrap_or_default()
}

/// Two rvsd with an IPv6-only instance that shares VRID 51 with the lab's IPv4 instance
/// on front (one VRID per advert family, as keepalived allows): each family's adverts
/// reach their own instance (none `invalid`, no unknown VRID), lb2 backup of both hears
/// lb1 (over IPv6 its link-local address as master); lb1 SIGKILLed while the client pings
/// the IPv6 VIP every 10 ms: lb2 takes over both and the VIP answers at lb2's MAC. The
/// longest gap is printed, not asserted.
#[test]
#[ignore = "needs root, the lab, keepalived and rvsd: run vm-testbed/test.sh"]
fn ipv6_only_instance_fails_over_on_crash() {
    let mut lab = Lab::up_without_lb();
    ha_routes();
    ns_exec_ok(CLIENT, &["ip", "-6", "route", "replace", &format!("{VIP6}/128"), "dev", "eth0"]);
    let vrid51 = |base: &str, priority: u8, name: &str| {
        let path = ha6_config(base, priority, name);
        let text = std::fs::read_to_string(&path).expect("the IPv6 HA config");
        std::fs::write(&path, text.replacen("vrid = 61", "vrid = 51", 1)).expect("write it");
        path
    };
    lab.start_lb("lb1", Some(&vrid51("lab-ha-lb1.toml", 200, "ha6-pair-lb1.toml")));
    wait_state(LB1, "master", Duration::from_secs(3));
    lab.start_lb("lb2", Some(&vrid51("lab-ha-lb2.toml", 100, "ha6-pair-lb2.toml")));
    wait_state(LB2, "backup", Duration::from_secs(3));
    sleep(Duration::from_millis(500));
    let lb1_ll = eui64_link_local(LB1_FRONT_MAC);
    let inst = instance(LB2).unwrap_or_default();
    assert_eq!(inst["master"].as_str(), Some(lb1_ll.as_str()), "lb2 hears lb1 over IPv6: {inst}");
    for ns in [LB1, LB2] {
        let all = instances(ns);
        let keys: Vec<(Option<u64>, Option<&str>)> =
            all.iter().map(|i| (i["vrid"].as_u64(), i["family"].as_str())).collect();
        assert_eq!(keys, [(Some(51), Some("ipv6")), (Some(51), Some("ipv4"))], "{ns}: {all:?}");
        for i in &all {
            let invalid = i["invalid"].as_object().map(|m| m.values().filter_map(Value::as_u64).sum::<u64>());
            assert_eq!(invalid, Some(0), "{ns}: {i}");
        }
        assert_eq!(status_of(ns)["ha"]["adverts_unknown_vrid"].as_u64(), Some(0), "{ns}");
    }
    let lb2 = instances(LB2);
    assert_eq!(lb2[1]["master"].as_str(), Some("10.10.0.1"), "lb2 hears lb1 over IPv4: {}", lb2[1]);
    assert!(lb2.iter().all(|i| i["adverts_received"].as_u64().unwrap_or(0) > 0), "{lb2:?}");
    assert_eq!(ping6_resolves(CLIENT, VIP6).as_deref(), Some(LB1_FRONT_MAC), "the IPv6 VIP at lb1");

    let ping = start_ping6(4);
    sleep(Duration::from_secs(1));
    lab.stop_lb("lb1", true);
    let (gap, replies) = longest_gap(ping);
    eprintln!("HA: IPv6-only instance, SIGKILL of the master: longest ping -6 gap {gap:?} ({replies} replies in 4 s)");
    assert_eq!(state(LB2), "master", "{:?}", instance(LB2));
    let lb2 = instances(LB2);
    assert!(lb2.iter().all(|i| i["state"] == "master"), "lb2 took over both families: {lb2:?}");
    assert_eq!(neigh_mac(CLIENT, VIP6).as_deref(), Some(LB2_FRONT_MAC), "the unsolicited NA moved the IPv6 VIP");
    assert_eq!(ping6_resolves(CLIENT, VIP6).as_deref(), Some(LB2_FRONT_MAC), "the IPv6 VIP answers at lb2");
}

/// The IPv6-only instance's virtual link-local address in the strict test.
const VLL6: &str = "fe80::61";

/// keepalived in `vrrp_strict` mode as the peer of VRID 61 (VRRPv3 over IPv6): its first
/// `virtual_ipaddress` is the virtual link-local address [`VLL6`] (strict mode requires
/// it), then the same addresses as [`ha6_config`]'s; `accept` so that the client's echo
/// to the addresses is answered while it is master (strict mode's default is no accept).
fn keepalived_v6_strict(priority: u8) -> Keepalived {
    let conf = format!(
        "global_defs {{\n  router_id lab_router\n  vrrp_version 3\n  vrrp_strict\n}}\n\
         vrrp_instance VI_61 {{\n  state BACKUP\n  interface front\n  virtual_router_id 61\n  priority {priority}\n\
           advert_int 0.1\n  accept\n  virtual_ipaddress {{\n    {VLL6}/64 dev front\n    {VIP6}/128 dev front\n    \
         {GATEWAY6}/64 dev back\n  }}\n}}\n"
    );
    Keepalived::start_conf(&conf, &format!("v6-strict-{priority}"))
}

/// One `ping -6` of the virtual link-local address on the client's link (its neighbour
/// entry flushed first); the MAC it resolved to.
fn ping_vll6_resolves() -> Option<String> {
    ns_exec_ok(CLIENT, &["ip", "-6", "neigh", "flush", "dev", "eth0"]);
    let out = ns_exec(CLIENT, &["ping", "-6", "-n", "-c", "1", "-W", "1", &format!("{VLL6}%eth0")]);
    assert!(ping_received(&out) == 1, "ping -6 {VLL6}%eth0: {}", describe(&out));
    neigh_mac(CLIENT, VLL6)
}

/// keepalived's lines that refuse an advert of VI_61, or its configuration.
fn keepalived_refusals(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("VI_61"))
        .filter(|l| {
            [
                "nvalid",
                "wrong version",
                "unexpected",
                "not present",
                "too short",
                "too long",
                "Expected",
                "expected",
                "link local",
            ]
            .iter()
            .any(|w| l.contains(w))
        })
        .map(String::from)
        .collect()
}

/// keepalived with `vrrp_strict` as the peer of an IPv6-only instance with
/// `virtual_link_local`: rvsd's adverts carry fe80::61 first, so the strict peer's address
/// check passes. rvsd at 200 master, keepalived at 150 backup (it accepts rvsd's adverts,
/// else it would take over) and the client resolves fe80::61 to rvsd; rvsd's SIGTERM:
/// keepalived master (fe80::61 at the router); rvsd back at 100 stays backup naming
/// keepalived's link-local address as master; keepalived stopped: rvsd master again, its
/// unsolicited NA moving fe80::61 (and the IPv6 VIP) back. Neither side refuses an advert;
/// keepalived does not log "must be link local".
#[test]
#[ignore = "needs root, the lab, keepalived and rvsd: run vm-testbed/test.sh"]
fn keepalived_strict_interop_with_a_virtual_link_local_address() {
    let mut lab = Lab::up_without_lb();
    ha_routes();
    ns_exec_ok(CLIENT, &["ip", "-6", "route", "replace", &format!("{VIP6}/128"), "dev", "eth0"]);
    let invalid = |inst: &Value| inst["invalid"].as_object().map(|m| m.values().filter_map(Value::as_u64).sum::<u64>());
    let extra = format!("virtual_link_local = \"{VLL6}\"\n");

    // rvsd higher: keepalived (strict) stays backup; fe80::61 and the VIP are rvsd's.
    lab.start_lb("lb1", Some(&ha6_config_with("lab-ha-lb1.toml", 200, &extra, "ha6-vll-lb1.toml")));
    wait_state(LB1, "master", Duration::from_secs(3));
    let ka = keepalived_v6_strict(150);
    sleep(Duration::from_secs(2));
    assert!(!keepalived_master6(), "strict keepalived took the IPv6 VIP from a higher rvsd:\n{}", ka.log());
    let inst = instance(LB1).unwrap_or_default();
    assert_eq!(
        (inst["vrid"].as_u64(), inst["state"].as_str(), invalid(&inst), inst["virtual_link_local"].as_str()),
        (Some(61), Some("master"), Some(0), Some(VLL6)),
        "{inst}"
    );
    let front_mac = port_mac(&status_of(LB1), "front");
    assert_eq!(ping_vll6_resolves(), Some(front_mac.clone()), "fe80::61 with rvsd master");
    assert_eq!(ping6_resolves(CLIENT, VIP6), Some(front_mac.clone()), "the IPv6 VIP with rvsd master");

    // rvsd stopped (priority 0): keepalived master, holding fe80::61.
    let t0 = Instant::now();
    lab.stop_lb("lb1", false);
    assert!(
        wait_until(Duration::from_secs(1), Duration::from_millis(10), keepalived_master6),
        "keepalived not master:\n{}",
        ka.log()
    );
    eprintln!("HA: strict keepalived (IPv6) master {:?} after rvsd's SIGTERM", t0.elapsed());
    let router_front = link_mac(ROUTER, "front");
    assert_eq!(ping_vll6_resolves(), Some(router_front.clone()), "fe80::61 with keepalived master");

    // rvsd lower: backup, accepting keepalived's adverts (fe80::61 first), silent for fe80::61.
    lab.start_lb("lb1", Some(&ha6_config_with("lab-ha-lb1.toml", 100, &extra, "ha6-vll-lb1-low.toml")));
    wait_state(LB1, "backup", Duration::from_secs(2));
    sleep(Duration::from_secs(1));
    let inst = instance(LB1).unwrap_or_default();
    assert_eq!((inst["state"].as_str(), invalid(&inst)), (Some("backup"), Some(0)), "{inst}\n{}", ka.log());
    assert!(inst["adverts_received"].as_u64().unwrap_or(0) > 0, "{inst}");
    // The router's own link-local address (its front also holds fe80::61 now).
    assert_eq!(inst["master"].as_str(), Some(eui64_link_local(&router_front).as_str()), "{inst}");
    assert_eq!(ping_vll6_resolves(), Some(router_front), "fe80::61 with rvsd backup");
    assert!(drop_count(&status_of(LB1), "ha_backup") > 0, "rvsd backup counted nothing for fe80::61");

    // keepalived stopped (priority 0): rvsd master again, announcing fe80::61.
    let log = ka.log();
    let day = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()).rem_euclid(86_400.0)
    };
    let killed = day(std::time::SystemTime::now());
    drop(ka);
    wait_state(LB1, "master", Duration::from_secs(1));
    let master = instance(LB1).and_then(|i| since_secs(&i)).expect("lb1's master transition");
    let took = Duration::from_secs_f64((master - killed).rem_euclid(86_400.0));
    eprintln!("HA: rvsd (IPv6, virtual link-local) master {took:?} after keepalived's SIGTERM (by rvsd's clock)");
    sleep(Duration::from_millis(200));
    assert_eq!(neigh_mac(CLIENT, VLL6).as_deref(), Some(front_mac.as_str()), "rvsd's unsolicited NA moved fe80::61");
    assert_eq!(ping_vll6_resolves(), Some(front_mac), "fe80::61 with rvsd master again");
    let refused = keepalived_refusals(&log);
    assert!(refused.is_empty(), "strict keepalived refused rvsd's adverts or its configuration: {refused:?}");
    assert!(log.contains("VI_61"), "keepalived ran the instance:\n{log}");
    let inst = instance(LB1).unwrap_or_default();
    assert_eq!(invalid(&inst), Some(0), "{inst}");
}
