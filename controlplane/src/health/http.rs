//! The HTTP check: accepted status ranges, and a bounded response checker.
//!
//! [`HttpCheck`] is fed the reply's bytes as they arrive and gives a verdict as soon as
//! it can: a bad status line or an unaccepted status fails at once; an accepted status
//! passes at once unless a body substring is wanted, which is looked for in at most
//! [`MAX_INSPECT`] bytes of headers and body. Bytes beyond that are never stored, so a
//! 10 MB reply costs no more memory than a small one.

use std::fmt;
use std::str::FromStr;

use super::ProbeResult;

/// Most bytes of a reply (headers and body) the checker keeps and inspects.
pub const MAX_INSPECT: usize = 64 * 1024;

/// Longest status line accepted (before its newline).
pub const MAX_STATUS_LINE: usize = 1024;

/// A set of accepted HTTP status codes: `"200-399"`, `"200,204,301-302"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRanges(Vec<(u16, u16)>);

impl StatusRanges {
    /// Exactly one status code.
    pub fn single(code: u16) -> Self {
        StatusRanges(vec![(code, code)])
    }

    /// Whether `code` is accepted.
    pub fn contains(&self, code: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&code))
    }
}

impl FromStr for StatusRanges {
    type Err = String;

    /// Parses comma- or space-separated codes and `lo-hi` ranges, each within 100..=599.
    fn from_str(s: &str) -> Result<Self, String> {
        let code = |t: &str| -> Result<u16, String> {
            match t.trim().parse::<u16>() {
                Ok(c) if (100..=599).contains(&c) => Ok(c),
                _ => Err(format!("`{t}` is not an HTTP status code (100 to 599)")),
            }
        };
        let mut ranges = Vec::new();
        for part in s.split([',', ' ']).filter(|p| !p.trim().is_empty()) {
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (code(a)?, code(b)?),
                None => (code(part)?, code(part)?),
            };
            if lo > hi {
                return Err(format!("`{part}` is an empty range; write the lower code first"));
            }
            ranges.push((lo, hi));
        }
        if ranges.is_empty() {
            return Err("no status codes; write codes and ranges such as \"200-399\"".into());
        }
        Ok(StatusRanges(ranges))
    }
}

impl fmt::Display for StatusRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// Judges one HTTP reply, fed in pieces.
#[derive(Debug)]
pub struct HttpCheck {
    status: StatusRanges,
    body: Option<Vec<u8>>,
    /// The first [`MAX_INSPECT`] bytes of the reply.
    buf: Vec<u8>,
    /// The status code, once the status line is in.
    code: Option<u16>,
    /// Where the body starts in `buf`, once the headers are in.
    body_at: Option<usize>,
    /// The verdict, once given.
    verdict: Option<ProbeResult>,
}

impl HttpCheck {
    /// A checker accepting `status`, and if `body` is set, wanting it in the body.
    pub fn new(status: StatusRanges, body: Option<&str>) -> Self {
        HttpCheck {
            status,
            body: body.filter(|b| !b.is_empty()).map(|b| b.as_bytes().to_vec()),
            buf: Vec::new(),
            code: None,
            body_at: None,
            verdict: None,
        }
    }

    /// The verdict, if one has been reached.
    pub fn verdict(&self) -> Option<&ProbeResult> {
        self.verdict.as_ref()
    }

    /// Feeds more of the reply; returns the verdict once there is one. Bytes past
    /// [`MAX_INSPECT`] are dropped unseen.
    pub fn feed(&mut self, data: &[u8]) -> Option<&ProbeResult> {
        if self.verdict.is_none() {
            let room = MAX_INSPECT - self.buf.len();
            self.buf.extend_from_slice(&data[..data.len().min(room)]);
            self.judge();
            if self.verdict.is_none() && self.buf.len() == MAX_INSPECT {
                self.verdict = Some(self.incomplete(true));
            }
        }
        self.verdict.as_ref()
    }

    /// The reply ended (the server closed or reset, or the probe timed out): the final
    /// verdict from whatever arrived.
    pub fn finish(&mut self) -> ProbeResult {
        if self.verdict.is_none() {
            self.verdict = Some(self.incomplete(false));
        }
        self.verdict.clone().unwrap_or_else(|| ProbeResult::failure("no reply"))
    }

    fn incomplete(&self, capped: bool) -> ProbeResult {
        match (self.code, self.body_at) {
            (None, _) if self.buf.is_empty() => ProbeResult::failure("no HTTP reply"),
            (None, _) => ProbeResult::failure("truncated HTTP status line"),
            (Some(c), None) => ProbeResult::failure(format!("HTTP {c}, truncated headers")),
            (Some(c), Some(_)) if capped => ProbeResult::failure(format!(
                "HTTP {c}, body lacks the expected text in its first {} KiB",
                MAX_INSPECT / 1024
            )),
            (Some(c), Some(_)) => ProbeResult::failure(format!("HTTP {c}, body lacks the expected text")),
        }
    }

    fn judge(&mut self) {
        if self.code.is_none() {
            let Some(end) = find(&self.buf, b"\n") else {
                if self.buf.len() > MAX_STATUS_LINE || !b"HTTP/".starts_with(&self.buf[..self.buf.len().min(5)]) {
                    self.verdict = Some(ProbeResult::failure("not an HTTP reply"));
                }
                return;
            };
            // A status line longer than MAX_STATUS_LINE is refused whether or not its end
            // has arrived, so the verdict does not depend on how the reply is cut.
            if end > MAX_STATUS_LINE {
                self.verdict = Some(ProbeResult::failure("not an HTTP reply"));
                return;
            }
            match parse_status_line(&self.buf[..end]) {
                Some(c) => self.code = Some(c),
                None => {
                    self.verdict = Some(ProbeResult::failure("not an HTTP reply"));
                    return;
                }
            }
        }
        let Some(code) = self.code else { return };
        if !self.status.contains(code) {
            self.verdict = Some(ProbeResult::failure(format!("HTTP {code}")));
            return;
        }
        let Some(want) = &self.body else {
            self.verdict = Some(ProbeResult::success(format!("HTTP {code}")));
            return;
        };
        if self.body_at.is_none() {
            // The headers end at the first blank line, CRLF or bare LF, whichever comes
            // first: preferring a later CRLF one would make the verdict depend on how much
            // of the reply had arrived (a bare-LF blank line seen before the CRLF one).
            let crlf = find(&self.buf, b"\r\n\r\n").map(|i| i + 4);
            let lf = find(&self.buf, b"\n\n").map(|i| i + 2);
            self.body_at = match (crlf, lf) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        if let Some(at) = self.body_at {
            if find(&self.buf[at..], want).is_some() {
                self.verdict = Some(ProbeResult::success(format!("HTTP {code}, body matches")));
            }
        }
    }
}

/// `HTTP/1.x NNN reason` → NNN.
fn parse_status_line(line: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok().filter(|c| (100..=599).contains(c))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The GET request a probe sends for `path` with `Host: host`.
pub fn request(path: &str, host: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: rvs-health\r\nConnection: close\r\nAccept: */*\r\n\r\n")
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(s: &str) -> StatusRanges {
        s.parse().unwrap()
    }

    #[test]
    fn status_ranges_parse_and_print() {
        let r = ranges("200-299, 301,302 404");
        assert!(r.contains(200) && r.contains(299) && r.contains(301) && r.contains(404));
        assert!(!r.contains(300) && !r.contains(500));
        assert_eq!(r.to_string(), "200-299,301,302,404");
        assert_eq!(StatusRanges::single(200).to_string(), "200");
        for bad in ["", "abc", "99", "600", "300-200", "200-", "2oo"] {
            assert!(bad.parse::<StatusRanges>().is_err(), "{bad}");
        }
    }

    fn check(reply: &[u8], status: &str, body: Option<&str>) -> ProbeResult {
        let mut c = HttpCheck::new(ranges(status), body);
        if let Some(v) = c.feed(reply) {
            return v.clone();
        }
        c.finish()
    }

    /// Found by the `health_replies` fuzz target: headers ending in a bare-LF blank line,
    /// with a CRLF blank line later in the body. Whole, the reply used to be read from the
    /// CRLF one (the wanted text, before it, went unseen); in two pieces, from the LF one.
    /// The headers end at the first blank line, however the reply is cut.
    #[test]
    fn the_first_blank_line_ends_the_headers_however_the_reply_is_cut() {
        let reply = b"HTTP/1.1 204 x\n\nalive\r\n\r\nrest";
        let whole = check(reply, "200-399", Some("alive"));
        assert_eq!(whole, ProbeResult::success("HTTP 204, body matches"));
        let mut c = HttpCheck::new(ranges("200-399"), Some("alive"));
        c.feed(&reply[..18]);
        c.feed(&reply[18..]);
        assert_eq!(c.finish(), whole);
    }

    /// Found by the `health_replies` fuzz target: a status line longer than 1024 bytes was
    /// refused when it arrived in pieces (no newline in the first 1025 bytes) but judged
    /// when it arrived whole. It is refused either way.
    #[test]
    fn an_overlong_status_line_is_refused_however_the_reply_is_cut() {
        let mut reply = b"HTTP/1.1 200 ".to_vec();
        reply.resize(1100, b'x');
        reply.extend_from_slice(b"\r\n\r\n");
        let whole = check(&reply, "200-399", None);
        assert_eq!(whole, ProbeResult::failure("not an HTTP reply"));
        let mut c = HttpCheck::new(ranges("200-399"), None);
        c.feed(&reply[..1050]);
        c.feed(&reply[1050..]);
        assert_eq!(c.finish(), whole);
        let mut ok = b"HTTP/1.1 200 ".to_vec();
        ok.resize(MAX_STATUS_LINE, b'x');
        ok.extend_from_slice(b"\n\n");
        assert_eq!(check(&ok, "200-399", None), ProbeResult::success("HTTP 200"));
    }

    #[test]
    fn judges_status() {
        let ok = check(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "200-399", None);
        assert_eq!(ok, ProbeResult::success("HTTP 200"));
        let bad = check(b"HTTP/1.1 500 Internal Server Error\r\n\r\n", "200-399", None);
        assert_eq!(bad, ProbeResult::failure("HTTP 500"));
        assert!(check(b"HTTP/1.0 301 Moved\r\n\r\n", "200-399", None).is_success());
    }

    #[test]
    fn verdict_as_soon_as_status_line_is_in() {
        let mut c = HttpCheck::new(ranges("200"), None);
        assert!(c.feed(b"HTTP/1.1 2").is_none());
        assert_eq!(c.feed(b"00 OK\r\n").cloned(), Some(ProbeResult::success("HTTP 200")));
    }

    #[test]
    fn judges_body() {
        let reply = b"HTTP/1.1 200 OK\r\nX: alive\r\n\r\nstatus: alive\n";
        assert!(check(reply, "200", Some("alive")).is_success());
        let r = check(b"HTTP/1.1 200 OK\r\nX: alive\r\n\r\nstatus: dead\n", "200", Some("alive"));
        assert_eq!(r, ProbeResult::failure("HTTP 200, body lacks the expected text"));
        // Split across feeds.
        let mut c = HttpCheck::new(ranges("200"), Some("alive"));
        assert!(c.feed(b"HTTP/1.1 200 OK\r\n\r\nal").is_none());
        assert!(c.feed(b"ive").unwrap().is_success());
    }

    #[test]
    fn garbage_and_truncated_replies_fail() {
        assert_eq!(check(b"SSH-2.0-OpenSSH_9.6\r\n", "200", None), ProbeResult::failure("not an HTTP reply"));
        assert_eq!(check(b"\x00\x01\x02garbage", "200", None), ProbeResult::failure("not an HTTP reply"));
        assert_eq!(check(b"HTTP/1.1 abc OK\r\n", "200", None), ProbeResult::failure("not an HTTP reply"));
        assert_eq!(check(b"HTTP/1.1 20", "200", None), ProbeResult::failure("truncated HTTP status line"));
        assert_eq!(check(b"", "200", None), ProbeResult::failure("no HTTP reply"));
        assert_eq!(
            check(b"HTTP/1.1 200 OK\r\nContent-", "200", Some("x")),
            ProbeResult::failure("HTTP 200, truncated headers")
        );
        // A long line without a newline that is not HTTP is refused without waiting.
        let long = vec![b'H'; 2000];
        assert_eq!(check(&long, "200", None), ProbeResult::failure("not an HTTP reply"));
    }

    #[test]
    fn huge_reply_is_bounded() {
        let mut c = HttpCheck::new(ranges("200"), Some("needle"));
        assert!(c.feed(b"HTTP/1.1 200 OK\r\n\r\n").is_none());
        let chunk = vec![b'x'; 64 * 1024];
        let mut verdict = None;
        for _ in 0..160 {
            // 10 MB
            if let Some(v) = c.feed(&chunk) {
                verdict = Some(v.clone());
            }
        }
        assert!(c.buf.len() <= MAX_INSPECT && c.buf.capacity() <= 2 * MAX_INSPECT);
        assert!(!verdict.unwrap().is_success());
    }

    #[test]
    fn request_has_host() {
        let r = String::from_utf8(request("/health", "10.20.0.11")).unwrap();
        assert!(r.starts_with("GET /health HTTP/1.0\r\nHost: 10.20.0.11\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
    }
}
