//! SYN proxy for NAT and Full-NAT TCP services of either family (IPv4; IPv6 NAT66 and
//! Full-NAT66, the engine's `synproxy6_engine`; NAT64, an IPv6 client's handshake and an
//! IPv4 server's, `synproxy64_engine`) (DPVS's synproxy, Linux's SYNPROXY target
//! and SYN cookies; facts only): a SYN flood from spoofed sources costs rvs no
//! connection entry, because the client must answer a SYN cookie before rvs opens a
//! connection or talks to a real server.
//!
//! # The exchange
//!
//! ```text
//! client                    rvs                         server
//!   SYN (isn C)     ->
//!                   <-  SYN-ACK (isn K = cookie, window 0)        no connection yet
//!   ACK (ack K+1)   ->  cookie checked: connection created, server scheduled
//!                       SYN (isn C, the client's MSS/wscale/SACK/TS)   ->
//!                                           <-  SYN-ACK (isn S)
//!                   <-  ACK (window update: the server's window)
//!   data (ack K+1)  ->  ack + (S-K): completes the server's handshake  ->
//!                   <-  server data: seq - (S-K)                       <-
//! ```
//!
//! * **The cookie** ([`cookie`]): the SYN-ACK's ISN encodes a keyed hash of the 4-tuple,
//!   a minute counter and the client's MSS (as a table index); with timestamps, the low
//!   6 bits of the SYN-ACK's TSval carry window scale, SACK-permitted and ECN, which the
//!   client echoes in its ACK's TSecr. Without timestamps neither window scaling nor SACK
//!   is used (as with Linux's cookies).
//! * **Zero window.** The cookie SYN-ACK advertises a window of 0 (as Linux's SYNPROXY
//!   target): the client completes its handshake but holds its data until rvs opens the
//!   window, which it does when the server's SYN-ACK arrives by turning that SYN-ACK into
//!   a window update to the client. The client's first data segment then also completes
//!   the server's handshake (its acknowledgement, translated, is the server's ISN + 1),
//!   so no client data is lost or held and rvs needs one frame per event: the received
//!   one. A server that speaks first (SMTP, SSH) gets its handshake completed by rvs's
//!   ACK when it retransmits its SYN-ACK (about 1 s; every SYN-ACK of an established
//!   proxied connection is answered with that ACK and never forwarded to the client).
//! * **The client's ACK** is consumed: it is rewritten into the SYN to the server. Client
//!   segments that arrive before the server answered (zero-window probes) are dropped
//!   (`syn_proxy_pending`); a server that does not answer lets the entry expire after the
//!   half-open timeout, and the client's next probe opens a fresh attempt with the same
//!   cookie while it is valid. A server RST turns into a RST to the client.
//! * **Translation** (established): server → client sequence numbers `- (S-K)` and
//!   client → server acknowledgements and SACK edges `+ (S-K)`; timestamps likewise
//!   with the offset between the server's first TSval and the cookie's; windows are
//!   rescaled between the server's window scale and the one rvs advertised
//!   ([`packet::WindowRewrite`]). Checksums are updated incrementally.
//! * **Memory**: the offsets live in the connection entry's next-hop cache (unused by
//!   proxied connections, which look their next hop up per packet) and the window
//!   rewrite in former padding: the entry stays 64 bytes (88 per connection in all).
//! * **Sync**: a proxied connection's record carries its offsets and window rewrite
//!   (`crate::sync::SynProxyRecord`), sent when the connection opens and again when the
//!   server's SYN-ACK fixes the offsets; the HA peer installs them with the entry and
//!   goes on translating after a takeover.
//!
//! # Modes
//!
//! Per service ([`SynProxyMode`]): `off`; `always`; `auto`, which answers SYNs with
//! cookies only while the worker's half-open count (TCP connections in SYN_RECV,
//! `ConnTable::syn_recv`; for IPv6 services the IPv6 table's, `ConnTable6::syn_recv`)
//! is at or above the threshold — below it, a SYN costs one comparison more than
//! without the proxy. ACKs for unknown flows are checked as cookies
//! only while this worker has sent a cookie within the cookie's lifetime.

pub mod cookie;
pub mod packet;

/// The window-scale shift rvs advertises to clients in its cookie SYN-ACK (Linux's
/// common choice for its default buffer sizes; servers that use the same need no
/// window rewrite).
pub const ADVERTISED_WSCALE: u8 = 7;

/// The default `auto` threshold: half-open connections per worker. A healthy server
/// answers within a round trip, so legitimate half-open entries number about the new
/// connection rate times the RTT: 50 000 new connections per second per worker with a
/// 20 ms round trip is 1000. A flood of spoofed SYNs crosses it within milliseconds and
/// would otherwise hold each entry for SYN_RECV's 60 s.
pub const DEFAULT_THRESHOLD: u32 = 1000;

/// Whether a service answers SYNs with cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SynProxyMode {
    /// Never: SYNs open connections directly.
    #[default]
    Off,
    /// While the worker's half-open count is at or above the threshold.
    Auto,
    /// Always.
    Always,
}

impl SynProxyMode {
    /// The configuration word: `off`, `auto` or `always`.
    pub const fn name(self) -> &'static str {
        match self {
            SynProxyMode::Off => "off",
            SynProxyMode::Auto => "auto",
            SynProxyMode::Always => "always",
        }
    }
}

/// A service's SYN-proxy setting: the mode and, for `auto`, the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynProxyPolicy {
    /// The mode.
    pub mode: SynProxyMode,
    /// `auto`: half-open connections of the worker at or above which SYNs get cookies.
    pub threshold: u32,
}

impl Default for SynProxyPolicy {
    fn default() -> Self {
        SynProxyPolicy::OFF
    }
}

impl SynProxyPolicy {
    /// No SYN proxy.
    pub const OFF: SynProxyPolicy = SynProxyPolicy { mode: SynProxyMode::Off, threshold: DEFAULT_THRESHOLD };
    /// Cookies for every SYN.
    pub const ALWAYS: SynProxyPolicy = SynProxyPolicy { mode: SynProxyMode::Always, threshold: DEFAULT_THRESHOLD };

    /// `auto` with `threshold`.
    pub const fn auto(threshold: u32) -> Self {
        SynProxyPolicy { mode: SynProxyMode::Auto, threshold }
    }

    /// Whether a SYN gets a cookie when the worker holds `half_open` half-open entries.
    #[inline]
    pub fn active(&self, half_open: usize) -> bool {
        match self.mode {
            SynProxyMode::Off => false,
            SynProxyMode::Always => true,
            SynProxyMode::Auto => half_open >= self.threshold as usize,
        }
    }
}
