//! The `command` kind: an external program judges the server, keepalived `MISC_CHECK`
//! style, without blocking the caller.
//!
//! The program runs with stdin, stdout and stderr on `/dev/null` and these variables in
//! its environment (on top of rvsd's own):
//!
//! | variable | value |
//! | --- | --- |
//! | `RVS_SERVER_ADDR` | the real server's address (`10.20.0.11`) |
//! | `RVS_SERVER_PORT` | the port to check: `[service.health] port`, else the server's |
//! | `RVS_VIP` | the service's virtual address |
//! | `RVS_VPORT` | the service's virtual port |
//!
//! Its exit status: 0 is up; 1 is down; 2 to 255 is up with weight `status - 2`
//! (keepalived's `misc_dynamic`). Killed by a signal, or still running at the timeout
//! (it is then killed with SIGKILL), is down. The caller spawns with
//! [`CommandProbe::spawn`] and polls [`CommandProbe::poll`] from its loop; neither waits.
//! Only the program itself is killed at the timeout, not processes it started.

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::ProbeResult;

/// The environment variable names a command probe gets, in the order of the table above.
pub const ENV_NAMES: [&str; 4] = ["RVS_SERVER_ADDR", "RVS_SERVER_PORT", "RVS_VIP", "RVS_VPORT"];

/// What a finished command said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    /// Up or down, and why in words ("exit 0", "exit 1", "timed out after 1s").
    pub result: ProbeResult,
    /// The weight set by exit statuses 2 to 255 (status - 2).
    pub weight: Option<u8>,
}

/// A running command probe.
#[derive(Debug)]
pub struct CommandProbe {
    child: Option<Child>,
    deadline: Instant,
    timeout: Duration,
}

impl CommandProbe {
    /// Starts `argv` (program and arguments) at `now` for the server `server` (the port
    /// to check) of the service `vip`; it may run for `timeout`. A program that cannot
    /// be started is an immediate failure, returned as the error.
    pub fn spawn(
        argv: &[String],
        server: SocketAddr,
        vip: SocketAddr,
        now: Instant,
        timeout: Duration,
    ) -> Result<Self, CommandResult> {
        Self::spawn_with(argv, server, vip, &[], now, timeout)
    }

    /// As [`CommandProbe::spawn`], with `extra` variables added to the environment (the
    /// `notify` program gets `RVS_STATE` and `RVS_REASON` this way).
    pub fn spawn_with(
        argv: &[String],
        server: SocketAddr,
        vip: SocketAddr,
        extra: &[(&str, &str)],
        now: Instant,
        timeout: Duration,
    ) -> Result<Self, CommandResult> {
        let Some((program, args)) = argv.split_first() else {
            return Err(CommandResult { result: ProbeResult::failure("no command"), weight: None });
        };
        let values = [server.ip().to_string(), server.port().to_string(), vip.ip().to_string(), vip.port().to_string()];
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        for (name, value) in ENV_NAMES.iter().zip(values) {
            cmd.env(name, value);
        }
        for (name, value) in extra {
            cmd.env(name, value);
        }
        match cmd.spawn() {
            Ok(child) => Ok(CommandProbe { child: Some(child), deadline: now + timeout, timeout }),
            Err(e) => {
                Err(CommandResult { result: ProbeResult::failure(format!("cannot run {program}: {e}")), weight: None })
            }
        }
    }

    /// Checks on the program at `now`: its result once it has exited (or been killed at
    /// the timeout), `None` while it runs. After a result, further polls return `None`.
    pub fn poll(&mut self, now: Instant) -> Option<CommandResult> {
        let child = self.child.as_mut()?;
        let status = match child.try_wait() {
            Ok(Some(status)) => status,
            Ok(None) if now < self.deadline => return None,
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                let t = humantime::format_duration(self.timeout);
                return Some(CommandResult {
                    result: ProbeResult::failure(format!("timed out after {t}")),
                    weight: None,
                });
            }
            Err(e) => {
                let _ = child.kill();
                self.child = None;
                return Some(CommandResult { result: ProbeResult::failure(format!("wait failed: {e}")), weight: None });
            }
        };
        self.child = None;
        Some(match (status.code(), status.signal()) {
            (Some(0), _) => CommandResult { result: ProbeResult::success("exit 0"), weight: None },
            (Some(1), _) => CommandResult { result: ProbeResult::failure("exit 1"), weight: None },
            (Some(c), _) => CommandResult {
                result: ProbeResult::success(format!("exit {c}, weight {}", c - 2)),
                weight: u8::try_from(c - 2).ok(),
            },
            (None, Some(sig)) => {
                CommandResult { result: ProbeResult::failure(format!("killed by signal {sig}")), weight: None }
            }
            (None, None) => CommandResult { result: ProbeResult::failure("ended without a status"), weight: None },
        })
    }
}

impl Drop for CommandProbe {
    /// A probe dropped while running (its server removed) does not leave a process
    /// behind.
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    /// Polls with the real clock (the program runs in real time) until a result.
    fn run(script: &str, timeout: Duration) -> CommandResult {
        let server = "10.20.0.11:8080".parse().unwrap();
        let vip = "10.10.0.100:80".parse().unwrap();
        let mut p = match CommandProbe::spawn(&sh(script), server, vip, Instant::now(), timeout) {
            Ok(p) => p,
            Err(r) => return r,
        };
        loop {
            if let Some(r) = p.poll(Instant::now()) {
                assert!(p.poll(Instant::now()).is_none());
                return r;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    const T: Duration = Duration::from_secs(5);

    /// An IPv6 server and VIP reach the program bare (`::1`, as `ip`, `nc` and
    /// `curl --interface` take them), and a check script connects to a listener on `[::1]`
    /// with them; a closed port fails.
    #[test]
    fn ipv6_server_on_loopback() {
        let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
            eprintln!("skipped: no IPv6 loopback on this host");
            return;
        };
        let port = listener.local_addr().unwrap().port();
        let check = "import os, socket; socket.create_connection((os.environ['RVS_SERVER_ADDR'], \
                     int(os.environ['RVS_SERVER_PORT'])), 2).close(); \
                     assert os.environ['RVS_VIP'] == '2001:db8::1' and os.environ['RVS_VPORT'] == '80'";
        let argv = vec!["python3".to_string(), "-c".to_string(), check.to_string()];
        let vip = "[2001:db8::1]:80".parse().unwrap();
        let probe = |server: SocketAddr| {
            let mut p = CommandProbe::spawn(&argv, server, vip, Instant::now(), T).expect("python3 runs");
            loop {
                if let Some(r) = p.poll(Instant::now()) {
                    return r.result;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        assert_eq!(probe(SocketAddr::new("::1".parse().unwrap(), port)), ProbeResult::success("exit 0"));
        drop(listener);
        assert_eq!(probe(SocketAddr::new("::1".parse().unwrap(), port)), ProbeResult::failure("exit 1"));
    }

    #[test]
    fn exit_statuses() {
        assert_eq!(run("exit 0", T), CommandResult { result: ProbeResult::success("exit 0"), weight: None });
        assert_eq!(run("exit 1", T), CommandResult { result: ProbeResult::failure("exit 1"), weight: None });
        assert_eq!(run("exit 2", T).weight, Some(0));
        let r = run("exit 12", T);
        assert_eq!((r.result.is_success(), r.weight), (true, Some(10)));
        assert_eq!(run("exit 255", T).weight, Some(253));
        assert_eq!(run("kill -9 $$", T).result, ProbeResult::failure("killed by signal 9"));
    }

    #[test]
    fn environment() {
        let script = r#"[ "$RVS_SERVER_ADDR" = 10.20.0.11 ] && [ "$RVS_SERVER_PORT" = 8080 ] &&
            [ "$RVS_VIP" = 10.10.0.100 ] && [ "$RVS_VPORT" = 80 ]"#;
        assert!(run(script, T).result.is_success());
    }

    #[test]
    fn timeout_kills_and_poll_never_waits() {
        let started = Instant::now();
        let r = run("exec sleep 30", Duration::from_millis(200));
        assert_eq!(r.result, ProbeResult::failure("timed out after 200ms"));
        assert!(started.elapsed() < Duration::from_secs(10));
        // A poll on a running program returns at once.
        let server = "10.20.0.11:80".parse().unwrap();
        let mut p = CommandProbe::spawn(&sh("exec sleep 30"), server, server, Instant::now(), T).unwrap();
        let t = Instant::now();
        assert!(p.poll(Instant::now()).is_none());
        assert!(t.elapsed() < Duration::from_secs(1));
        drop(p); // killed, not left behind
    }

    #[test]
    fn missing_program_fails() {
        let server = "10.20.0.11:80".parse().unwrap();
        let r = CommandProbe::spawn(&["/nonexistent/probe".into()], server, server, Instant::now(), T).unwrap_err();
        assert!(!r.result.is_success() && r.result.detail.contains("cannot run /nonexistent/probe"));
        assert!(CommandProbe::spawn(&[], server, server, Instant::now(), T).is_err());
    }
}
