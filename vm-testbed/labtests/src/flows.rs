//! Long-lived flows through a VIP (`tools/flows.py` in lab-client), for the tests where a
//! node goes away under them (tests/sync.rs, tests/bgp.rs).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, Stdio};

use serde_json::Value;

use crate::{tool, CLIENT};

/// One `tools/flows.py` run in lab-client, until [`Flows::finish`].
pub struct Flows {
    child: Child,
    stdin: Option<ChildStdin>,
    what: String,
}

impl Flows {
    /// Starts `count` flows of `kind` ("--tcp" or "--udp") to `to` (`ip:port`), each asking
    /// every 50 ms and failing after a 2 s gap, and waits until every flow had its first answer.
    pub fn start(kind: &str, to: &str, count: u32) -> Flows {
        Flows::start_from(kind, to, count, &[])
    }

    /// As [`Flows::start`], TCP flow i from `sources[i % len]` (client addresses), or from the
    /// kernel's choice when `sources` is empty.
    pub fn start_from(kind: &str, to: &str, count: u32, sources: &[&str]) -> Flows {
        let tool = tool("flows.py");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", CLIENT, "python3", "-B", &tool.to_string_lossy(), kind, to]).args([
            "--count",
            &count.to_string(),
            "--interval",
            "0.05",
            "--stall",
            "2",
        ]);
        if !sources.is_empty() {
            cmd.args(["--sources", &sources.join(",")]);
        }
        let mut child =
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("start flows.py");
        let stdin = child.stdin.take();
        let mut out = BufReader::new(child.stdout.take().expect("flows.py stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("read flows.py");
        assert_eq!(line.trim(), "ready", "flows.py {kind} {to} did not start");
        child.stdout = Some(out.into_inner());
        Flows { child, stdin, what: format!("{count} {} flows to {to}", kind.trim_start_matches('-')) }
    }

    /// Stops the flows and returns flows.py's report (`flows`, `ok`, `failed`, `max_gap_ms`,
    /// `answers`, `servers`).
    pub fn finish(mut self) -> Value {
        drop(self.stdin.take());
        let mut text = String::new();
        self.child.stdout.take().expect("flows.py stdout").read_to_string(&mut text).expect("read flows.py");
        let status = self.child.wait().expect("wait for flows.py");
        assert!(status.success(), "flows.py ({}) failed: {text}", self.what);
        let report: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("flows.py said {text:?}: {e}"));
        eprintln!("flows: {}: {report}", self.what);
        report
    }
}

/// Asserts that every flow of `report` survived and answered more than 20 times.
pub fn assert_intact(report: &Value, what: &str) {
    let flows = report["flows"].as_u64().expect("flows");
    assert_eq!(report["ok"].as_u64(), Some(flows), "{what}: flows failed: {}", report["failed"]);
    assert!(report["answers"].as_u64().unwrap_or(0) > flows * 20, "{what}: too few answers: {report}");
}
