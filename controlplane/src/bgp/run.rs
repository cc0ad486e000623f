//! The BGP thread: every [`TURN`] it reads the node's state ([`ViewSource`]), decides
//! ([`super::decide`]), renders the include file ([`super::include`]), lets the
//! [`Announcer`] say whether to write it and run birdc, and publishes [`BgpStatus`] for
//! `/v1/status`, `rvsadm status` and `/metrics`. At shutdown it withdraws every VIP
//! (one last file and `birdc configure`) while the workers still forward, so the router
//! moves the flows before this node stops answering.
//!
//! birdc is behind the [`Birdc`] trait: [`BirdcCommand`] runs the real program with a
//! timeout; tests use a fake.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::announcer::{Action, Announcer, BirdError};
use super::decide::{decide, NodeView, VipDecision, Withdrawn};
use super::include::render;
use crate::config::Bgp;

/// How often the thread decides: well under any health check interval (the shortest
/// sensible one is about 100 ms), so a withdrawal follows its cause within that interval.
pub const TURN: Duration = Duration::from_millis(100);

/// How long birdc may take before it counts as unreachable.
pub const BIRDC_TIMEOUT: Duration = Duration::from_secs(5);

/// How long shutdown waits after withdrawing, for BGP to carry the withdrawal out.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_millis(300);

/// Runs `birdc configure`.
pub trait Birdc: Send {
    /// Makes BIRD re-read its configuration (and so the include file).
    fn configure(&mut self) -> Result<(), BirdError>;
}

/// The real birdc: `PROGRAM -s SOCKET configure`, killed after [`BIRDC_TIMEOUT`].
#[derive(Debug, Clone)]
pub struct BirdcCommand {
    /// The program (a name looked up in PATH, or a path).
    pub program: PathBuf,
    /// BIRD's control socket.
    pub socket: PathBuf,
    /// How long it may take.
    pub timeout: Duration,
}

impl BirdcCommand {
    /// birdc as `[bgp]` configures it.
    pub fn new(config: &Bgp) -> BirdcCommand {
        BirdcCommand { program: config.birdc.clone(), socket: config.socket.clone(), timeout: BIRDC_TIMEOUT }
    }
}

impl Birdc for BirdcCommand {
    fn configure(&mut self) -> Result<(), BirdError> {
        let mut child = Command::new(&self.program)
            .arg("-s")
            .arg(&self.socket)
            .arg("configure")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| BirdError::Unreachable(format!("cannot run {}: {e}", self.program.display())))?;
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() < self.timeout => std::thread::sleep(Duration::from_millis(5)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(BirdError::Unreachable(format!(
                        "{} -s {} configure did not answer within {:?}",
                        self.program.display(),
                        self.socket.display(),
                        self.timeout
                    )));
                }
                Err(e) => return Err(BirdError::Unreachable(format!("waiting for birdc: {e}"))),
            }
        };
        // birdc's answer is a few lines: it fits the pipes, so reading after the exit
        // cannot block.
        let mut text = String::new();
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_string(&mut text);
        }
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut text);
        }
        let lines: Vec<&str> =
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("BIRD ")).collect();
        let said = lines.join("; ");
        if status.success() {
            return Ok(());
        }
        if said.contains("Unable to connect") || said.is_empty() {
            let said = if said.is_empty() { format!("birdc exited with {status}") } else { said };
            return Err(BirdError::Unreachable(said));
        }
        Err(BirdError::Refused(said))
    }
}

/// What the thread reads from the running daemon each turn.
pub trait ViewSource: Send {
    /// The node's state now.
    fn view(&self, now: Instant) -> NodeView;
}

/// One VIP in `/v1/status` `bgp.vips`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipStatus {
    /// The VIP.
    pub vip: String,
    /// `announced` or `withdrawn`: rvsd's decision (`bgp.in_sync` says whether BIRD has
    /// it).
    pub state: String,
    /// Why, in words.
    pub why: String,
    /// Every reason it is withdrawn (`workers`, `quorum`, `vrrp`, `stopping`), with
    /// details; empty when announced.
    #[serde(default)]
    pub reasons: Vec<serde_json::Value>,
    /// When it entered that state (Unix seconds).
    pub since_unix: u64,
    /// Times it changed state since rvsd started.
    pub transitions: u64,
}

/// `bgp` in `/v1/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpStatus {
    /// The include file rvsd writes.
    pub include_file: String,
    /// BIRD's control socket.
    pub socket: String,
    /// Whether BIRD has read the include file as it is now.
    pub in_sync: bool,
    /// Why not: `bgp: birdc unreachable: ...`, `bgp: BIRD refused the configuration:
    /// ...`, `bgp: cannot write the include file: ...`; absent when in sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Milliseconds until the next attempt, while failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    /// `birdc configure` runs.
    pub configures: u64,
    /// Failed writes and birdc runs.
    pub failures: u64,
    /// Every VIP, in address order.
    pub vips: Vec<VipStatus>,
}

/// The status as the BGP thread last published it.
pub type BgpBoard = Arc<Mutex<BgpStatus>>;

struct Track {
    announced: bool,
    since_unix: u64,
    transitions: u64,
}

/// The thread's state around the [`Announcer`] (see the module docs).
pub struct Shell {
    config: Bgp,
    announcer: Announcer,
    birdc: Box<dyn Birdc>,
    tracks: BTreeMap<IpAddr, Track>,
    reported: Option<BirdError>,
}

impl Shell {
    /// A shell for `config`, running birdc through `birdc`.
    pub fn new(config: Bgp, birdc: Box<dyn Birdc>) -> Shell {
        Shell { config, announcer: Announcer::new(), birdc, tracks: BTreeMap::new(), reported: None }
    }

    /// One turn at `now` (`wall`: the same instant in Unix time) with the node's `view`:
    /// decide, write and apply as the announcer says, and return the status.
    pub fn turn(&mut self, now: Instant, wall: SystemTime, view: &NodeView) -> BgpStatus {
        let decisions = decide(view);
        self.apply(now, wall, decisions)
    }

    /// The last turn: every VIP withdrawn because rvsd stops.
    pub fn withdraw_all(&mut self, now: Instant, wall: SystemTime, view: &NodeView) -> BgpStatus {
        let decisions = decide(view)
            .into_iter()
            .map(|mut d| {
                d.withdrawn.insert(0, Withdrawn::Stopping);
                d
            })
            .collect();
        self.apply(now, wall, decisions)
    }

    fn apply(&mut self, now: Instant, wall: SystemTime, decisions: Vec<VipDecision>) -> BgpStatus {
        let unix = wall.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.track(unix, &decisions);
        let text = render(&decisions);
        // At most a write and a configure per turn.
        for _ in 0..2 {
            match self.announcer.next(now, &text) {
                Action::Idle => break,
                Action::Write(t) => {
                    let r = write_atomically(&self.config.include_file, &t);
                    self.announcer.written(now, &t, r);
                }
                Action::Configure => {
                    let r = self.birdc.configure();
                    self.announcer.configured(now, r);
                }
            }
        }
        self.log_errors(now);
        self.status(now, &decisions)
    }

    fn track(&mut self, unix: u64, decisions: &[VipDecision]) {
        self.tracks.retain(|vip, _| decisions.iter().any(|d| d.vip == *vip));
        for d in decisions {
            let announced = d.announced();
            match self.tracks.get_mut(&d.vip) {
                Some(t) if t.announced == announced => {}
                Some(t) => {
                    t.announced = announced;
                    t.since_unix = unix;
                    t.transitions += 1;
                    log_transition(d);
                }
                None => {
                    self.tracks.insert(d.vip, Track { announced, since_unix: unix, transitions: 0 });
                    log_transition(d);
                }
            }
        }
    }

    fn log_errors(&mut self, now: Instant) {
        let now_error = self.announcer.error().cloned();
        if now_error == self.reported {
            return;
        }
        match &now_error {
            Some(e) => {
                let retry = self.announcer.retry_at().map_or(0, |t| t.saturating_duration_since(now).as_millis());
                tracing::error!(retry_in_ms = retry as u64, "{e}; forwarding continues, retrying");
            }
            None => tracing::info!(socket = %self.config.socket.display(), "bgp: BIRD has the include file again"),
        }
        self.reported = now_error;
    }

    fn status(&self, now: Instant, decisions: &[VipDecision]) -> BgpStatus {
        let (configures, failures) = self.announcer.counts();
        BgpStatus {
            include_file: self.config.include_file.display().to_string(),
            socket: self.config.socket.display().to_string(),
            in_sync: self.announcer.in_sync(),
            error: self.announcer.error().map(ToString::to_string),
            retry_in_ms: self
                .announcer
                .retry_at()
                .filter(|_| self.announcer.error().is_some())
                .map(|t| t.saturating_duration_since(now).as_millis() as u64),
            configures,
            failures,
            vips: decisions
                .iter()
                .map(|d| {
                    let t = self.tracks.get(&d.vip);
                    VipStatus {
                        vip: d.vip.to_string(),
                        state: if d.announced() { "announced" } else { "withdrawn" }.into(),
                        why: d.why(),
                        reasons: d.withdrawn.iter().filter_map(|w| serde_json::to_value(w).ok()).collect(),
                        since_unix: t.map_or(0, |t| t.since_unix),
                        transitions: t.map_or(0, |t| t.transitions),
                    }
                })
                .collect(),
        }
    }
}

fn log_transition(d: &VipDecision) {
    if d.announced() {
        tracing::info!(vip = %d.vip, why = %d.why(), "bgp: VIP announced");
    } else {
        tracing::warn!(vip = %d.vip, why = %d.why(), "bgp: VIP withdrawn");
    }
}

/// Writes `text` to `path` through a temporary file in the same directory and a rename,
/// so BIRD never reads half a file.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.rvsd-tmp"));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Starts the BGP thread: a turn every [`TURN`] until `stop`, then [`Shell::withdraw_all`]
/// and [`SHUTDOWN_DRAIN`] before it returns.
pub fn spawn(
    mut shell: Shell,
    source: Box<dyn ViewSource>,
    board: BgpBoard,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("rvs-bgp".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let status = shell.turn(now, SystemTime::now(), &source.view(now));
            *board.lock().unwrap_or_else(|p| p.into_inner()) = status;
            std::thread::sleep(TURN);
        }
        let now = Instant::now();
        let status = shell.withdraw_all(now, SystemTime::now(), &source.view(now));
        let sent = status.in_sync;
        *board.lock().unwrap_or_else(|p| p.into_inner()) = status;
        if sent {
            tracing::info!("bgp: every VIP withdrawn for shutdown");
            std::thread::sleep(SHUTDOWN_DRAIN);
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::super::decide::ServiceHealth;
    use super::*;

    /// A birdc that answers from a shared script and counts its calls.
    struct FakeBirdc {
        fail: Arc<Mutex<Option<BirdError>>>,
        calls: Arc<AtomicUsize>,
    }

    impl Birdc for FakeBirdc {
        fn configure(&mut self) -> Result<(), BirdError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            match self.fail.lock().unwrap().clone() {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
    }

    fn view(healthy: u32) -> NodeView {
        NodeView {
            services: vec![ServiceHealth {
                name: "tcp/10.10.0.100/80".into(),
                vip: "10.10.0.100".parse().unwrap(),
                healthy,
                servers: 3,
                quorum: 2,
            }],
            ..NodeView::default()
        }
    }

    fn shell(dir: &Path) -> (Shell, Arc<Mutex<Option<BirdError>>>, Arc<AtomicUsize>) {
        let fail = Arc::new(Mutex::new(None));
        let calls = Arc::new(AtomicUsize::new(0));
        let config = Bgp { include_file: dir.join("vips.conf"), birdc: "birdc".into(), socket: dir.join("bird.ctl") };
        let birdc = FakeBirdc { fail: Arc::clone(&fail), calls: Arc::clone(&calls) };
        (Shell::new(config, Box::new(birdc)), fail, calls)
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rvs-bgp-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn quorum_changes_rewrite_the_file_and_reconfigure_once_each() {
        let dir = tmpdir("quorum");
        let (mut sh, _, calls) = shell(&dir);
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let s = sh.turn(t0, wall, &view(3));
        assert!(s.in_sync);
        assert_eq!((s.vips[0].state.as_str(), s.vips[0].transitions), ("announced", 0));
        let file = std::fs::read_to_string(dir.join("vips.conf")).unwrap();
        assert!(file.contains("route 10.10.0.100/32 blackhole;"));
        for i in 1..5 {
            sh.turn(t0 + TURN * i, wall, &view(3));
        }
        assert_eq!(calls.load(Ordering::Relaxed), 1, "no change, no configure");
        let s = sh.turn(t0 + TURN * 5, wall + Duration::from_secs(1), &view(1));
        assert_eq!(s.vips[0].state, "withdrawn");
        assert_eq!(s.vips[0].why, "tcp/10.10.0.100/80 has 1 healthy server(s), quorum 2");
        assert_eq!(s.vips[0].reasons[0]["reason"], "quorum");
        assert_eq!((s.vips[0].since_unix, s.vips[0].transitions), (1_800_000_001, 1));
        let file = std::fs::read_to_string(dir.join("vips.conf")).unwrap();
        assert!(!file.contains("route 10.10.0.100"));
        assert!(file.contains("# withdrawn 10.10.0.100: tcp/10.10.0.100/80 has 1 healthy server(s), quorum 2"));
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        let s = sh.turn(t0 + TURN * 6, wall, &view(2));
        assert_eq!((s.vips[0].state.as_str(), s.vips[0].transitions, s.configures), ("announced", 2, 3));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unreachable_birdc_is_reported_retried_and_recovers() {
        let dir = tmpdir("unreachable");
        let (mut sh, fail, calls) = shell(&dir);
        *fail.lock().unwrap() = Some(BirdError::Unreachable("Unable to connect to server control socket".into()));
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let s = sh.turn(t0, wall, &view(3));
        assert!(!s.in_sync);
        assert_eq!(s.error.as_deref(), Some("bgp: birdc unreachable: Unable to connect to server control socket"));
        assert_eq!(s.retry_in_ms, Some(1000));
        assert_eq!(s.vips[0].state, "announced", "the decision stands; BIRD just does not have it");
        // The file is written anyway: a BIRD that starts reads the current decision.
        assert!(std::fs::read_to_string(dir.join("vips.conf")).unwrap().contains("route 10.10.0.100/32"));
        sh.turn(t0 + Duration::from_millis(500), wall, &view(3));
        assert_eq!(calls.load(Ordering::Relaxed), 1, "waits for the retry time");
        *fail.lock().unwrap() = None;
        let s = sh.turn(t0 + Duration::from_secs(1), wall, &view(3));
        assert!(s.in_sync && s.error.is_none());
        assert_eq!((s.configures, s.failures), (2, 1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn shutdown_withdraws_every_vip() {
        let dir = tmpdir("stop");
        let (mut sh, _, _) = shell(&dir);
        let t0 = Instant::now();
        sh.turn(t0, SystemTime::now(), &view(3));
        let s = sh.withdraw_all(t0 + TURN, SystemTime::now(), &view(3));
        assert!(s.in_sync);
        assert_eq!(s.vips[0].state, "withdrawn");
        assert!(s.vips[0].why.starts_with("rvsd is stopping"));
        assert!(!std::fs::read_to_string(dir.join("vips.conf")).unwrap().contains("route 10.10.0.100"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_real_birdc_command_reports_a_missing_program_and_a_missing_socket() {
        let dir = tmpdir("birdc");
        let mut missing = BirdcCommand {
            program: dir.join("no-such-birdc"),
            socket: dir.join("bird.ctl"),
            timeout: Duration::from_secs(2),
        };
        match missing.configure() {
            Err(BirdError::Unreachable(m)) => assert!(m.starts_with("cannot run "), "{m}"),
            other => panic!("{other:?}"),
        }
        if Path::new("/usr/sbin/birdc").exists() {
            let mut no_socket = BirdcCommand {
                program: "/usr/sbin/birdc".into(),
                socket: dir.join("bird.ctl"),
                timeout: Duration::from_secs(5),
            };
            match no_socket.configure() {
                Err(BirdError::Unreachable(m)) => assert!(m.contains("Unable to connect"), "{m}"),
                other => panic!("{other:?}"),
            }
        } else {
            eprintln!("birdc not installed (apt-get install bird2): the socket case is not run");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
