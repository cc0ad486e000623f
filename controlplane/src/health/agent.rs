//! The HAProxy agent-check protocol: a line of text from an agent on the real server,
//! and what it does to the server's weight and state.
//!
//! The reply is keywords separated by spaces, tabs or commas, optionally followed by
//! `#` and a free-text reason (as HAProxy's `agent-check`):
//!
//! * `up`, `ready`: the agent sees no reason to keep the server out;
//! * `down`, `fail`, `stopped`: take the server out (`down#disk full` gives a reason);
//! * `drain`: weight 0 in effect, existing flows continue;
//! * `maint`: out for maintenance;
//! * `N%`: the configured weight scaled by N percent (rounded down, but at least 1 when N and
//!   the weight are not 0: only `0%` and `drain` take new flows away);
//! * `weight:N`: weight N, whatever the configured weight;
//! * `maxconn:N`: accepted (HAProxy sends it) and ignored.
//!
//! A reply with any other word is refused as a whole ("agent: unparsable reply") and
//! changes nothing. Several state words: the last one counts, as in HAProxy.

use std::fmt;
use std::time::{Duration, Instant};

/// Most bytes of an agent reply that are read; the rest of a longer reply is ignored.
pub const MAX_REPLY: usize = 512;

/// What the agent says about the server's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    /// `up` or `ready`.
    Up,
    /// `down`, `fail` or `stopped`, with the text after `#`, if any.
    Down(Option<String>),
    /// `drain`: weight 0, flows continue.
    Drain,
    /// `maint`: out for maintenance.
    Maint,
}

/// What the agent says about the weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentWeight {
    /// `N%` of the configured weight.
    Percent(u32),
    /// `weight:N`, absolute.
    Absolute(u16),
}

impl AgentWeight {
    /// The weight in effect for a server configured with `configured`.
    pub fn apply(self, configured: u16) -> u16 {
        match self {
            AgentWeight::Percent(p) => {
                let w = u64::from(configured) * u64::from(p) / 100;
                // A non-zero percentage of a non-zero weight never rounds down to 0: that
                // would drain the server (weight 1, the default, at 50 %), which only `0%`
                // and `drain` should do.
                let w = if p > 0 && configured > 0 { w.max(1) } else { w };
                u16::try_from(w).unwrap_or(u16::MAX)
            }
            AgentWeight::Absolute(w) => w,
        }
    }
}

/// One parsed agent reply; either part may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentReply {
    /// The state word, if the reply had one.
    pub state: Option<AgentState>,
    /// The weight, if the reply had one.
    pub weight: Option<AgentWeight>,
}

/// An agent reply that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unparsable;

impl fmt::Display for Unparsable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("agent: unparsable reply")
    }
}

/// Parses one agent reply line (the trailing newline, if any, is ignored).
pub fn parse(line: &str) -> Result<AgentReply, Unparsable> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (words, reason) = match line.split_once('#') {
        Some((w, r)) => (w, Some(r.trim()).filter(|r| !r.is_empty()).map(str::to_string)),
        None => (line, None),
    };
    let mut reply = AgentReply::default();
    let mut any = false;
    for word in words.split([' ', '\t', ',']).filter(|w| !w.is_empty()) {
        any = true;
        let lower = word.to_ascii_lowercase();
        match lower.as_str() {
            "up" | "ready" => reply.state = Some(AgentState::Up),
            "down" | "fail" | "stopped" => reply.state = Some(AgentState::Down(reason.clone())),
            "drain" => reply.state = Some(AgentState::Drain),
            "maint" => reply.state = Some(AgentState::Maint),
            w => {
                if let Some(p) = w.strip_suffix('%') {
                    let p: u32 = p.parse().map_err(|_| Unparsable)?;
                    reply.weight = Some(AgentWeight::Percent(p.min(100_000)));
                } else if let Some(n) = w.strip_prefix("weight:") {
                    reply.weight = Some(AgentWeight::Absolute(n.parse().map_err(|_| Unparsable)?));
                } else if let Some(n) = w.strip_prefix("maxconn:") {
                    n.parse::<u32>().map_err(|_| Unparsable)?;
                } else {
                    return Err(Unparsable);
                }
            }
        }
    }
    if !any {
        return Err(Unparsable);
    }
    Ok(reply)
}

impl fmt::Display for AgentReply {
    /// In words, for status: `agent: 50%`, `agent: down (disk full)`, `agent: drain, 0%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("agent:")?;
        let mut sep = " ";
        if let Some(s) = &self.state {
            match s {
                AgentState::Up => f.write_str(" up")?,
                AgentState::Down(None) => f.write_str(" down")?,
                AgentState::Down(Some(r)) => write!(f, " down ({r})")?,
                AgentState::Drain => f.write_str(" drain")?,
                AgentState::Maint => f.write_str(" maint")?,
            }
            sep = ", ";
        }
        match self.weight {
            Some(AgentWeight::Percent(p)) => write!(f, "{sep}{p}%"),
            Some(AgentWeight::Absolute(w)) => write!(f, "{sep}weight {w}"),
            None => Ok(()),
        }
    }
}

/// The agent's latest word on one server: state and weight are remembered separately
/// (a reply with only `50%` keeps the last state word), and forgotten once stale.
#[derive(Debug, Clone)]
pub struct AgentStatus {
    stale_after: Duration,
    state: Option<(AgentState, Instant)>,
    weight: Option<(AgentWeight, Instant)>,
    last: Option<String>,
}

impl AgentStatus {
    /// No answer yet; answers count for `stale_after` after they arrive.
    pub fn new(stale_after: Duration) -> Self {
        AgentStatus { stale_after, state: None, weight: None, last: None }
    }

    /// Records a reply line received at `now`. An unparsable one changes nothing but the
    /// last result in words.
    pub fn record(&mut self, now: Instant, line: &str) {
        match parse(line) {
            Ok(r) => {
                self.last = Some(r.to_string());
                if let Some(s) = r.state {
                    self.state = Some((s, now));
                }
                if let Some(w) = r.weight {
                    self.weight = Some((w, now));
                }
            }
            Err(e) => self.last = Some(e.to_string()),
        }
    }

    /// Records that the agent could not be reached (`detail` in words); earlier answers
    /// keep counting until they are stale.
    pub fn record_failure(&mut self, detail: &str) {
        self.last = Some(format!("agent: {detail}"));
    }

    /// The state word in force at `now`, if any answer is fresh.
    pub fn state(&self, now: Instant) -> Option<&AgentState> {
        self.state.as_ref().filter(|(_, at)| now.saturating_duration_since(*at) <= self.stale_after).map(|(s, _)| s)
    }

    /// The weight in force at `now` for a server configured with `configured`.
    pub fn weight(&self, now: Instant, configured: u16) -> u16 {
        match &self.weight {
            Some((w, at)) if now.saturating_duration_since(*at) <= self.stale_after => w.apply(configured),
            _ => configured,
        }
    }

    /// The last result in words ("agent: 50%", "agent: unparsable reply").
    pub fn last(&self) -> Option<&str> {
        self.last.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> AgentReply {
        parse(line).unwrap_or_else(|_| panic!("`{line}` refused"))
    }

    #[test]
    fn every_form() {
        assert_eq!(ok("up\n").state, Some(AgentState::Up));
        assert_eq!(ok("ready").state, Some(AgentState::Up));
        assert_eq!(ok("down").state, Some(AgentState::Down(None)));
        assert_eq!(ok("down#disk full\r\n").state, Some(AgentState::Down(Some("disk full".into()))));
        assert_eq!(ok("down # disk full").state, Some(AgentState::Down(Some("disk full".into()))));
        assert_eq!(ok("fail").state, Some(AgentState::Down(None)));
        assert_eq!(ok("stopped").state, Some(AgentState::Down(None)));
        assert_eq!(ok("drain").state, Some(AgentState::Drain));
        assert_eq!(ok("maint").state, Some(AgentState::Maint));
        assert_eq!(ok("75%"), AgentReply { state: None, weight: Some(AgentWeight::Percent(75)) });
        assert_eq!(ok("weight:12").weight, Some(AgentWeight::Absolute(12)));
        assert_eq!(ok("UP").state, Some(AgentState::Up));
    }

    #[test]
    fn combinations() {
        let r = ok("up 50%");
        assert_eq!((r.state, r.weight), (Some(AgentState::Up), Some(AgentWeight::Percent(50))));
        let r = ok("ready,75%,maxconn:30");
        assert_eq!((r.state, r.weight), (Some(AgentState::Up), Some(AgentWeight::Percent(75))));
        let r = ok("drain\t0%");
        assert_eq!((r.state, r.weight), (Some(AgentState::Drain), Some(AgentWeight::Percent(0))));
        // The last state word counts.
        assert_eq!(ok("down up").state, Some(AgentState::Up));
        assert_eq!(ok("50%, down#overloaded").state, Some(AgentState::Down(Some("overloaded".into()))));
    }

    #[test]
    fn unparsable() {
        for bad in [
            "",
            "   ",
            "#only a reason",
            "hello",
            "50",
            "x%",
            "-5%",
            "weight:",
            "weight:70000",
            "up sideways",
            "maxconn:x",
        ] {
            assert_eq!(parse(bad), Err(Unparsable), "`{bad}`");
        }
        assert_eq!(Unparsable.to_string(), "agent: unparsable reply");
    }

    #[test]
    fn in_words() {
        assert_eq!(ok("50%").to_string(), "agent: 50%");
        assert_eq!(ok("down#disk full").to_string(), "agent: down (disk full)");
        assert_eq!(ok("drain 0%").to_string(), "agent: drain, 0%");
        assert_eq!(ok("weight:7").to_string(), "agent: weight 7");
    }

    #[test]
    fn weight_effect() {
        assert_eq!(AgentWeight::Percent(50).apply(10), 5);
        assert_eq!(AgentWeight::Percent(100).apply(10), 10);
        assert_eq!(AgentWeight::Percent(0).apply(10), 0);
        assert_eq!(AgentWeight::Percent(50).apply(1), 1, "weight 1 at 50 % is not drained");
        assert_eq!(AgentWeight::Percent(1).apply(3), 1);
        assert_eq!(AgentWeight::Percent(0).apply(1), 0);
        assert_eq!(AgentWeight::Percent(50).apply(0), 0, "a weight-0 server stays drained");
        assert_eq!(AgentWeight::Percent(200).apply(10), 20);
        assert_eq!(AgentWeight::Percent(100_000).apply(65535), u16::MAX);
        assert_eq!(AgentWeight::Absolute(3).apply(10), 3);
    }

    #[test]
    fn status_keeps_parts_drops_stale_and_ignores_garbage() {
        let t0 = Instant::now();
        let mut a = AgentStatus::new(Duration::from_secs(6));
        assert_eq!((a.state(t0), a.weight(t0, 10)), (None, 10));
        a.record(t0, "up 50%\n");
        assert_eq!((a.state(t0), a.weight(t0, 10)), (Some(&AgentState::Up), 5));
        assert_eq!(a.last(), Some("agent: up, 50%"));
        // A weight-only reply keeps the state word.
        let t1 = t0 + Duration::from_secs(2);
        a.record(t1, "20%");
        assert_eq!((a.state(t1), a.weight(t1, 10)), (Some(&AgentState::Up), 2));
        // Garbage: weight unchanged.
        a.record(t1, "banana");
        assert_eq!(a.weight(t1, 10), 2);
        assert_eq!(a.last(), Some("agent: unparsable reply"));
        // The state from t0 goes stale after 6 s, the weight from t1 after 8 s.
        let t2 = t0 + Duration::from_secs(7);
        assert_eq!((a.state(t2), a.weight(t2, 10)), (None, 2));
        a.record_failure("connect timeout");
        assert_eq!(a.last(), Some("agent: connect timeout"));
        assert_eq!(a.weight(t0 + Duration::from_secs(9), 10), 10);
    }
}
