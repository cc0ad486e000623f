//! The health checks' parsers of what real servers send, and rvs-agent's own parsers.
//!
//! The first input byte picks the parser (modulo 4), the rest is its input:
//! * 0, agent-check reply (`health::agent`): no panic; a parsed percentage is at most
//!   100000; a non-zero percentage of a non-zero weight never gives weight 0; an
//!   `AgentStatus` records the line and answers a weight for any configured weight.
//! * 1, HTTP reply (`health::http::HttpCheck`): byte 1 picks the accepted statuses, byte 2
//!   the length of the wanted body text (taken next), the rest is the reply. Fed whole and
//!   fed in pieces (sizes drawn from bytes 1 and 2), the verdict is the same: a server's
//!   health must not depend on how TCP segments its answer.
//! * 2, status ranges (`service.health.status`): what parses writes back (Display) to text
//!   that parses to the same ranges.
//! * 3, rvs-agent: a `/proc/loadavg` text gives a free capacity in 1..=100 for any core
//!   count, which rvsd's agent parser reads back as that percentage; and its command line
//!   (one argument per line) never panics.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rvs_controlplane::health::agent::{self, AgentReply, AgentStatus, AgentWeight, MAX_REPLY};
use rvs_controlplane::health::http::{HttpCheck, StatusRanges};

const WEIGHTS: [u16; 5] = [0, 1, 3, 100, u16::MAX];

fn agent_reply(data: &[u8]) {
    let text = String::from_utf8_lossy(&data[..data.len().min(MAX_REPLY)]);
    if let Ok(reply) = agent::parse(&text) {
        if let Some(AgentWeight::Percent(p)) = reply.weight {
            assert!(p <= 100_000, "{text:?}: {p}%");
            for w in WEIGHTS {
                let applied = AgentWeight::Percent(p).apply(w);
                assert!(p == 0 || w == 0 || applied >= 1, "{text:?}: {p}% of {w} gives 0");
            }
        }
    }
    let now = Instant::now();
    let mut status = AgentStatus::new(Duration::from_secs(6));
    status.record(now, &text);
    for w in WEIGHTS {
        status.weight(now, w);
        status.weight(now + Duration::from_secs(7), w);
    }
    assert!(status.last().is_some());
}

fn http_reply(data: &[u8]) {
    let [pick, want_len, rest @ ..] = data else { return };
    let ranges = ["200-399", "200", "204,301-302", "100-599", "500-599"][usize::from(*pick) % 5];
    let status: StatusRanges = ranges.parse().expect("a status range");
    let n = usize::from(*want_len % 16).min(rest.len());
    let (want, reply) = rest.split_at(n);
    let want = std::str::from_utf8(want).ok();

    let mut whole = HttpCheck::new(status.clone(), want);
    whole.feed(reply);
    let whole = whole.finish();

    let mut pieces = HttpCheck::new(status, want);
    let mut rng = u32::from(*pick) << 8 | u32::from(*want_len) | 1;
    let mut left = reply;
    while !left.is_empty() {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        let take = (rng as usize % 97 + 1).min(left.len());
        pieces.feed(&left[..take]);
        left = &left[take..];
    }
    let pieces = pieces.finish();
    assert_eq!(pieces, whole, "the verdict depends on how the reply is cut: {:?}", String::from_utf8_lossy(reply));
}

fn status_ranges(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(ranges) = text.parse::<StatusRanges>() else { return };
    let again = ranges.to_string();
    let back: StatusRanges = again.parse().unwrap_or_else(|e| panic!("{text:?} writes back as {again:?}: {e}"));
    assert_eq!(back, ranges, "{text:?} -> {again:?}");
}

fn rvs_agent(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Some(load) = rvs_agent::parse_loadavg(&text) {
        for cores in [1, 2, 3, 64, 4096] {
            let p = rvs_agent::free_percent(load, cores);
            assert!((1..=100).contains(&p), "load {load} on {cores} cores: {p}%");
            let back = agent::parse(&format!("{p}%\n")).expect("rvs-agent's answer parses");
            assert_eq!(back, AgentReply { state: None, weight: Some(AgentWeight::Percent(p)) });
        }
    }
    let args: Vec<&str> = text.split('\n').take(16).collect();
    let _ = rvs_agent::parse_args(&args);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 4 {
        0 => agent_reply(rest),
        1 => http_reply(rest),
        2 => status_ranges(rest),
        _ => rvs_agent(rest),
    }
});
