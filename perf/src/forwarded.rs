//! What rvs-pktgen checks in the frames the device under test forwards to the servers'
//! port, so that a figure counts only frames forwarded correctly.
//!
//! Contract: every received frame's destination MAC and EtherType are checked (cheap); every
//! [`VERIFY_EVERY`]-th frame is checked in full. In the established-flow phases the full check
//! compares the frame byte for byte with the frame the forwarding mode must produce for that
//! flow, built with [`frames`]' independent builders (the pipeline benchmark's rule): MACs,
//! addresses, ports, TTL and both checksums. In the new-flow phase, where the DUT picks the
//! server and (Full-NAT) the local address and port, the full check is the rewrite's shape:
//! the server's MAC and address, the service or server port, a client or local source, and
//! valid IPv4 and TCP checksums (outer header too for IPIP). ARP frames (the DUT's own
//! requests) are set aside, not counted as forwarded; anything else is a mismatch, and a
//! phase with a mismatch prints no figure.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::frames::{self, csum, ipv4_at, tcp_checksum, u16_at, IP_AT};
use rvs_dataplane::types::ForwardMode;

/// One frame in this many gets the full check (the others the MAC and EtherType check).
pub const VERIFY_EVERY: u64 = 16;
/// Mismatches described in the error (the rest are only counted).
const EXAMPLES: usize = 3;

/// What the DUT must do to a client's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// Nothing: an I/O forwarder (dpdk-testpmd io) sends the frame back unchanged.
    Unchanged,
    /// Direct routing: the server's MAC, TTL one lower.
    Dr,
    /// NAT: destination moved to the server and its port.
    Nat,
    /// Full-NAT: destination to the server, source to a local address and port.
    FullNat,
    /// IPIP: the DR packet inside an outer header from the back port to the server.
    Tunnel,
}

/// One established flow as the generator opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// The client's address and port.
    pub client: (Ipv4Addr, u16),
    /// Index in [`frames::SERVERS`] of the server the DUT chose.
    pub server: usize,
    /// Full-NAT: the local address and port the DUT chose.
    pub local: Option<(Ipv4Addr, u16)>,
}

/// The frame the DUT must send for `sent`, the client's frame of `flow`.
pub fn expected_frame(rewrite: Rewrite, flow: &Flow, sent: &[u8]) -> Vec<u8> {
    let mode = match rewrite {
        Rewrite::Unchanged => return sent.to_vec(),
        Rewrite::Dr => ForwardMode::Dr,
        Rewrite::Tunnel => ForwardMode::Tunnel,
        Rewrite::Nat => ForwardMode::Nat,
        Rewrite::FullNat => ForwardMode::FullNat,
    };
    frames::to_server(mode, &sent[IP_AT..], flow.server, flow.local)
}

/// Checks the frames received in one phase; see the module docs.
#[derive(Debug)]
pub struct Checker {
    rewrite: Rewrite,
    /// Established phases: flow index by the (address, port) that identifies it in the
    /// forwarded frame (the client's; Full-NAT: the local one), and each flow's expected
    /// frame. Empty for the new-flow phase.
    by_key: HashMap<(Ipv4Addr, u16), usize>,
    expected: Vec<Vec<u8>>,
    received: u64,
    /// Frames checked in full.
    pub checked: u64,
    /// Frames that failed a check.
    pub mismatches: u64,
    /// ARP frames seen (not forwarded traffic: not counted as received).
    pub arp: u64,
    /// The first few mismatches, described.
    pub examples: Vec<String>,
}

impl Checker {
    /// For an established-flow phase: `sent[i]` is flow `flows[i]`'s frame.
    pub fn established(rewrite: Rewrite, flows: &[Flow], sent: &[Vec<u8>]) -> Checker {
        let key = |f: &Flow| if rewrite == Rewrite::FullNat { f.local.expect("local address") } else { f.client };
        Checker {
            rewrite,
            by_key: flows.iter().enumerate().map(|(i, f)| (key(f), i)).collect(),
            expected: flows.iter().zip(sent).map(|(f, s)| expected_frame(rewrite, f, s)).collect(),
            ..Checker::new_flows(rewrite)
        }
    }

    /// For the new-flow phase (SYNs from clients never seen before).
    pub fn new_flows(rewrite: Rewrite) -> Checker {
        Checker {
            rewrite,
            by_key: HashMap::new(),
            expected: Vec::new(),
            received: 0,
            checked: 0,
            mismatches: 0,
            arp: 0,
            examples: Vec::new(),
        }
    }

    fn mismatch(&mut self, what: String) {
        self.mismatches += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(what);
        }
    }

    /// Checks one received frame; whether it counts as forwarded. ARP frames (the DUT's own
    /// requests and announcements) are neither forwarded nor a mismatch; they are counted
    /// in [`Checker::arp`].
    #[inline]
    pub fn frame(&mut self, f: &[u8]) -> bool {
        if f.len() >= 14 && f[12..14] == [0x08, 0x06] {
            self.arp += 1;
            return false;
        }
        self.received += 1;
        let mac_ok = match self.rewrite {
            Rewrite::Unchanged => f.len() >= 14 && f[..6] == frames::FRONT_MAC,
            _ => f.len() >= 14 && frames::SERVER_MACS.iter().any(|m| f[..6] == m[..]),
        };
        if !mac_ok || f[12..14] != [0x08, 0x00] {
            let head = &f[..f.len().min(14)];
            self.mismatch(format!("frame {}: not an IPv4 frame to a server's MAC: {head:02x?}", self.received));
            return true;
        }
        if !self.received.is_multiple_of(VERIFY_EVERY) {
            return true;
        }
        self.checked += 1;
        let r = if self.expected.is_empty() { self.check_shape(f) } else { self.check_exact(f) };
        if let Err(e) = r {
            self.mismatch(format!("frame {}: {e}", self.received));
        }
        true
    }

    fn check_exact(&self, f: &[u8]) -> Result<(), String> {
        let at = if self.rewrite == Rewrite::Tunnel { IP_AT + 20 } else { IP_AT };
        if f.len() < at + 24 {
            return Err(format!("{} bytes, too short for TCP/IPv4", f.len()));
        }
        let key = (ipv4_at(f, at + 12), u16_at(f, at + 20));
        let Some(&i) = self.by_key.get(&key) else {
            return Err(format!("source {}:{} is no flow's", key.0, key.1));
        };
        let want = &self.expected[i];
        // A frame shorter than 60 bytes may come back padded; nothing else may differ.
        let same = f.len() >= want.len() && f[..want.len()] == want[..] && (f.len() == want.len() || want.len() < 60);
        if !same {
            let at = f.iter().zip(want).position(|(a, b)| a != b).unwrap_or(f.len().min(want.len()));
            return Err(format!(
                "flow {i} ({}:{}): {} bytes differ from the expected {}-byte rewrite from byte {at} (got {:02x?}, want {:02x?})",
                key.0,
                key.1,
                f.len(),
                want.len(),
                &f[at..f.len().min(at + 4)],
                &want[at.min(want.len())..want.len().min(at + 4)]
            ));
        }
        Ok(())
    }

    fn check_shape(&self, f: &[u8]) -> Result<(), String> {
        let server = frames::SERVER_MACS.iter().position(|m| f[..6] == m[..]);
        let mut at = IP_AT;
        let need = |n: usize| if f.len() < n { Err(format!("{} bytes, too short", f.len())) } else { Ok(()) };
        if self.rewrite == Rewrite::Tunnel {
            need(at + 20)?;
            let s = frames::SERVERS[server.unwrap_or(0)];
            if f[at] != 0x45 || f[at + 9] != 4 || csum(&f[at..at + 20]) != 0 {
                return Err("outer header: not IPIP with a valid checksum".into());
            }
            if (ipv4_at(f, at + 12), ipv4_at(f, at + 16)) != (frames::BACK_IP, s) {
                return Err(format!(
                    "outer {} -> {}, want {} -> {s}",
                    ipv4_at(f, at + 12),
                    ipv4_at(f, at + 16),
                    frames::BACK_IP
                ));
            }
            at += 20;
        }
        need(at + 20)?;
        let hl = usize::from(f[at] & 0x0f) * 4;
        let total = usize::from(u16_at(f, at + 2));
        if f[at] >> 4 != 4 || hl < 20 || total < hl + 20 || at + total > f.len() || f[at + 9] != 6 {
            return Err("not a whole TCP/IPv4 packet".into());
        }
        if csum(&f[at..at + hl]) != 0 {
            return Err("bad IPv4 header checksum".into());
        }
        let seg = &f[at + hl..at + total];
        let (src, dst) = (ipv4_at(f, at + 12), ipv4_at(f, at + 16));
        if tcp_checksum(src, dst, seg) != u16_at(seg, 16) {
            return Err("bad TCP checksum".into());
        }
        let (sport, dport) = (u16_at(seg, 0), u16_at(seg, 2));
        let want_dst = match (self.rewrite, server) {
            (Rewrite::Nat | Rewrite::FullNat, Some(s)) => (frames::SERVERS[s], frames::SERVER_PORT),
            _ => (frames::VIP, frames::VPORT),
        };
        if (dst, dport) != want_dst {
            return Err(format!("destination {dst}:{dport}, want {}:{}", want_dst.0, want_dst.1));
        }
        let src_ok = if self.rewrite == Rewrite::FullNat {
            frames::is_local_addr(src)
        } else {
            src.octets()[0] == 172 && sport >= 1024
        };
        if !src_ok {
            return Err(format!("source {src}:{sport} is neither a client nor a local address"));
        }
        Ok(())
    }

    /// `Err` describing the mismatches if there was any.
    pub fn result(&self) -> Result<(), String> {
        if self.mismatches == 0 {
            return Ok(());
        }
        Err(format!(
            "{} of {} received frames were not forwarded as expected ({} checked in full, 1 in {VERIFY_EVERY}); first: {}",
            self.mismatches,
            self.received,
            self.checked,
            self.examples.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::{TcpSeg, TCP_ACK, TCP_PSH, TCP_SYN};

    fn client_frame(client: (Ipv4Addr, u16), flags: u8) -> Vec<u8> {
        let seg = TcpSeg {
            src: client,
            dst: (frames::VIP, frames::VPORT),
            flags,
            seq: 1,
            options: vec![],
            payload: vec![0x5a; 64],
        };
        seg.frame(frames::FRONT_MAC, frames::GW_MAC)
    }

    fn flows() -> Vec<Flow> {
        (0..4u16)
            .map(|i| Flow {
                client: (Ipv4Addr::new(172, 16, 0, 1), 10_000 + i),
                server: usize::from(i % 3),
                local: Some((frames::local_addr(1), 40_000 + i)),
            })
            .collect()
    }

    /// Feeds `f` so that it is the frame checked in full.
    fn check_one(c: &mut Checker, f: &[u8]) {
        for _ in 1..VERIFY_EVERY {
            c.frame(f); // the cheap check only
        }
        c.frame(f);
        assert_eq!(c.checked, 1);
    }

    #[test]
    fn correct_rewrites_pass_in_every_mode() {
        for rewrite in [Rewrite::Unchanged, Rewrite::Dr, Rewrite::Nat, Rewrite::FullNat, Rewrite::Tunnel] {
            let flows = flows();
            let sent: Vec<Vec<u8>> = flows.iter().map(|f| client_frame(f.client, TCP_ACK | TCP_PSH)).collect();
            let mut c = Checker::established(rewrite, &flows, &sent);
            for (f, s) in flows.iter().zip(&sent) {
                for _ in 0..VERIFY_EVERY {
                    c.frame(&expected_frame(rewrite, f, s));
                }
            }
            assert_eq!(c.result(), Ok(()), "{rewrite:?}");
            assert_eq!(c.checked, flows.len() as u64);
            if rewrite != Rewrite::Unchanged {
                let mut c = Checker::new_flows(rewrite);
                check_one(&mut c, &expected_frame(rewrite, &flows[1], &client_frame(flows[1].client, TCP_SYN)));
                assert_eq!(c.result(), Ok(()), "new flows, {rewrite:?}");
            }
        }
    }

    #[test]
    fn wrong_rewrites_are_mismatches() {
        let flows = flows();
        let sent: Vec<Vec<u8>> = flows.iter().map(|f| client_frame(f.client, TCP_ACK | TCP_PSH)).collect();
        let good = expected_frame(Rewrite::Nat, &flows[2], &sent[2]);
        let bad_port = {
            let mut f = good.clone();
            f[IP_AT + 22..IP_AT + 24].copy_from_slice(&frames::VPORT.to_be_bytes()); // port not rewritten
            f
        };
        let bad_csum = {
            let mut f = good.clone();
            f[IP_AT + 36] ^= 1; // TCP checksum
            f
        };
        let other_server = expected_frame(Rewrite::Nat, &Flow { server: 0, ..flows[2] }, &sent[2]);
        let mut to_gw = good.clone();
        to_gw[..6].copy_from_slice(&frames::GW_MAC);
        for (what, f, in_shape) in
            [("port", &bad_port, true), ("checksum", &bad_csum, true), ("server", &other_server, false)]
        {
            let mut c = Checker::established(Rewrite::Nat, &flows, &sent);
            check_one(&mut c, f);
            assert_eq!(c.mismatches, 1, "{what}: {:?}", c.examples);
            assert!(c.result().is_err());
            if in_shape {
                let mut c = Checker::new_flows(Rewrite::Nat);
                check_one(&mut c, f);
                assert_eq!(c.mismatches, 1, "new flows, {what}: {:?}", c.examples);
            }
        }
        // The cheap check sees every frame, not only the sampled ones.
        let mut c = Checker::established(Rewrite::Nat, &flows, &sent);
        assert!(c.frame(&to_gw));
        assert_eq!((c.checked, c.mismatches), (0, 1));
        assert!(c.result().unwrap_err().contains("not an IPv4 frame to a server's MAC"), "{:?}", c.result());
        // The DUT's own ARP requests are not forwarded frames, and not mismatches.
        let mut c = Checker::established(Rewrite::Nat, &flows, &sent);
        assert!(!c.frame(&frames::arp_request()));
        assert_eq!((c.arp, c.mismatches, c.result()), (1, 0, Ok(())));
    }
}
