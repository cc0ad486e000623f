//! `rvs-agent`: the real servers' side of `scheduler = "system-load"`.
//!
//! It listens on a TCP port and answers every connection with one line of HAProxy
//! agent-check text, then closes it: the host's free capacity, `N%\n`, where
//! N = 100 - 100 × loadavg1 / cores, rounded down, at least 1 and at most 100 (`loadavg1` is
//! the first field of `/proc/loadavg`, `cores` the CPUs this process may run on). rvsd's
//! `[service.agent]` scales each server's weight by it.
//!
//! With `--override FILE`, when FILE exists and its first line is not empty, that line is
//! answered instead (any agent-check text: `drain`, `maint`, `down#reason`, `50%`): an
//! operator's switch, and how tests fix the answer.
//!
//! It never reads from the peer, answers each connection within `WRITE_TIMEOUT`, and one
//! connection at a time (an answer is a few bytes), so a misbehaving peer cannot hold it.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default listening address (HAProxy's examples and rvs's lab use port 9999).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9999";

/// How long one answer may take to write.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// The command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `--listen ADDR:PORT`.
    pub listen: SocketAddr,
    /// `--override FILE`.
    pub override_file: Option<PathBuf>,
    /// `--loadavg FILE` (default `/proc/loadavg`).
    pub loadavg: PathBuf,
}

/// The `--help` text.
pub const USAGE: &str = "\
Usage: rvs-agent [--listen ADDR:PORT] [--override FILE] [--loadavg FILE]

Answers each TCP connection with one HAProxy agent-check line, the host's free capacity
`N%` (100 - 100 x loadavg1 / cores, at least 1), for rvsd's [service.agent] and
scheduler = \"system-load\".

  --listen ADDR:PORT   where to listen (default 0.0.0.0:9999)
  --override FILE      when FILE exists and its first line is not empty, answer that line
                       instead (drain, maint, down#reason, 50%, ...)
  --loadavg FILE       where to read the load average (default /proc/loadavg)
  --help               this text
";

/// Parses the arguments (without the program name). `Ok(None)` for `--help`.
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Option<Options>, String> {
    let mut listen: SocketAddr = DEFAULT_LISTEN.parse().map_err(|e| format!("{e}"))?;
    let mut override_file = None;
    let mut loadavg = PathBuf::from("/proc/loadavg");
    let mut it = args.iter().map(AsRef::as_ref);
    while let Some(word) = it.next() {
        let (name, attached) = match word.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (word, None),
        };
        if name == "--help" || name == "-h" {
            return Ok(None);
        }
        if !matches!(name, "--listen" | "--override" | "--loadavg") {
            return Err(format!("unknown argument `{word}`; see --help"));
        }
        let Some(value) = attached.or_else(|| it.next()) else {
            return Err(format!("{name} needs a value; see --help"));
        };
        match name {
            "--listen" => {
                listen =
                    value.parse().map_err(|_| format!("--listen `{value}` is not ADDR:PORT, such as 0.0.0.0:9999"))?;
            }
            "--override" => override_file = Some(PathBuf::from(value)),
            _ => loadavg = PathBuf::from(value),
        }
    }
    Ok(Some(Options { listen, override_file, loadavg }))
}

/// The free capacity in percent for a 1-minute load average `load1` on `cores` CPUs:
/// 100 - 100 × load1 / cores, rounded down, within 1..=100.
pub fn free_percent(load1: f64, cores: usize) -> u32 {
    if !load1.is_finite() || load1 < 0.0 {
        return 1;
    }
    let cores = cores.max(1) as f64;
    let free = 100.0 - 100.0 * load1 / cores;
    // NaN cannot happen here; the clamp keeps 1..=100 whatever the load.
    free.floor().clamp(1.0, 100.0) as u32
}

/// The first field of a `/proc/loadavg` text.
pub fn parse_loadavg(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse::<f64>().ok().filter(|l| l.is_finite() && *l >= 0.0)
}

/// The CPUs this process may run on (at least 1).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The line to answer now (with its newline): the override file's first line when it has
/// one, else the free capacity; `1%` when the load average cannot be read (a host that
/// cannot tell its load takes little new work, but is not taken out).
pub fn reply(override_file: Option<&Path>, loadavg: &Path, cores: usize) -> String {
    if let Some(text) = override_file.and_then(|f| std::fs::read_to_string(f).ok()) {
        let line = text.lines().next().unwrap_or("").trim();
        if !line.is_empty() {
            // One line only, bounded: the agent protocol reads a single short line.
            let line: String = line.chars().take(200).collect();
            return format!("{line}\n");
        }
    }
    let load = std::fs::read_to_string(loadavg).ok().and_then(|t| parse_loadavg(&t));
    match load {
        Some(l) => format!("{}%\n", free_percent(l, cores)),
        None => "1%\n".to_string(),
    }
}

/// Serves `listener` forever (until an accept error that is not per-connection).
pub fn serve(listener: &TcpListener, options: &Options) -> std::io::Result<()> {
    let cores = cores();
    loop {
        let (mut conn, _) = match listener.accept() {
            Ok(c) => c,
            // The peer gave up before we accepted, or we ran out of descriptors for a
            // moment: not a reason to stop answering.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::Interrupted
                ) || e.raw_os_error() == Some(24) =>
            {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(e) => return Err(e),
        };
        let line = reply(options.override_file.as_deref(), &options.loadavg, cores);
        let _ = conn.set_write_timeout(Some(WRITE_TIMEOUT));
        let _ = conn.write_all(line.as_bytes());
        let _ = conn.shutdown(std::net::Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn percentage_of_free_capacity() {
        assert_eq!(free_percent(0.0, 4), 100);
        assert_eq!(free_percent(1.0, 4), 75);
        assert_eq!(free_percent(2.0, 4), 50);
        assert_eq!(free_percent(3.0, 4), 25);
        assert_eq!(free_percent(0.5, 2), 75);
        assert_eq!(free_percent(0.333, 1), 66, "rounded down");
        assert_eq!(free_percent(4.0, 4), 1, "fully loaded: at least 1 %");
        assert_eq!(free_percent(40.0, 4), 1, "overloaded: at least 1 %");
        assert_eq!(free_percent(1.0, 0), 1, "0 cores counts as 1");
        assert_eq!(free_percent(f64::NAN, 4), 1);
        assert_eq!(free_percent(-1.0, 4), 1);
        assert_eq!(free_percent(f64::INFINITY, 4), 1);
    }

    #[test]
    fn loadavg_text() {
        assert_eq!(parse_loadavg("0.52 0.58 0.59 1/467 12345\n"), Some(0.52));
        assert_eq!(parse_loadavg(""), None);
        assert_eq!(parse_loadavg("abc 1 2"), None);
        assert_eq!(parse_loadavg("-1 1 2"), None);
    }

    #[test]
    fn arguments() {
        let o = parse_args(&["--listen", "127.0.0.1:7000", "--override=/tmp/x"]).unwrap().unwrap();
        assert_eq!(o.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(o.override_file.as_deref(), Some(Path::new("/tmp/x")));
        assert_eq!(o.loadavg, PathBuf::from("/proc/loadavg"));
        assert_eq!(parse_args::<&str>(&[]).unwrap().unwrap().listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(parse_args(&["--help"]).unwrap(), None);
        assert!(parse_args(&["--listen"]).unwrap_err().contains("needs a value"));
        assert!(parse_args(&["--listen", "9999"]).unwrap_err().contains("ADDR:PORT"));
        assert!(parse_args(&["--port", "1"]).unwrap_err().contains("unknown argument"));
    }

    #[test]
    fn answers_load_or_override_over_tcp() {
        let dir = std::env::temp_dir().join(format!("rvs-agent-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let loadavg = dir.join("loadavg");
        std::fs::write(&loadavg, "1.00 0.50 0.25 1/100 42\n").unwrap();
        let over = dir.join("override");
        assert_eq!(reply(Some(&over), &loadavg, 2), "50%\n", "no override file: the load");
        std::fs::write(&over, "\n").unwrap();
        assert_eq!(reply(Some(&over), &loadavg, 2), "50%\n", "an empty override: the load");
        assert_eq!(reply(None, &dir.join("missing"), 2), "1%\n", "unreadable load: 1%");

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let options = Options { listen: addr, override_file: Some(over.clone()), loadavg: loadavg.clone() };
        std::thread::spawn(move || serve(&listener, &options));
        let ask = || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let want = format!("{}%\n", free_percent(1.0, cores()));
        assert_eq!(ask(), want);
        std::fs::write(&over, "drain # for the test\nignored\n").unwrap();
        assert_eq!(ask(), "drain # for the test\n");
        std::fs::write(&over, "25%").unwrap();
        assert_eq!(ask(), "25%\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
