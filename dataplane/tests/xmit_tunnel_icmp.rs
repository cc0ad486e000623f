//! Golden packets and properties of the IPIP tunnel, ICMP error generation and
//! translation, and TTL handling (`xmit::{tunnel, icmp_err, ttl}`).
//!
//! The functions are driven as production drives them: a frame is parsed once on receive
//! (the worker's IPv4 checks, or `icmp_err::parse` for an ICMP error) and the rewrites
//! take what that parse found.
//!
//! Expected frames are built here independently of the code under test: plain byte
//! pushing and a naive RFC 1071 checksum recomputed in full over every header. One
//! expected outer header is additionally given as literal bytes computed with python3.

use std::net::Ipv4Addr;

use proptest::prelude::*;
use rvs_dataplane::wire::{EthernetFrame, Ipv4Packet, ETHERTYPE_IPV4};
use rvs_dataplane::xmit::icmp_err::{self, Embedded, IcmpErrError};
use rvs_dataplane::xmit::ttl::{self, TtlVerdict};
use rvs_dataplane::xmit::tunnel::{self, TunnelError};
use rvs_dataplane::xmit::Endpoint;
use rvs_drivers::mem::MemBuf;
use rvs_drivers::PacketBuf;

// ---------------------------------------------------------------------------------------
// Addresses (the lab of DESIGN.md).

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 100);
const BACK_IP: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 1);
const RS: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 11);
const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 200);
const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xf0, 0x01];
const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0c, 0x02];

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;

// ---------------------------------------------------------------------------------------
// Independent builder.

/// RFC 1071, 16 bits at a time, as written in the RFC.
fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from(c[0]) << 8 };
        s += u32::from(w);
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn verifies(data: &[u8]) -> bool {
    csum(data) == 0
}

fn pseudo(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

/// IPv4 header fields the tests vary.
#[derive(Clone, Copy)]
struct Ip {
    tos: u8,
    ident: u16,
    df: bool,
    frag_off: u16, // bytes
    ttl: u8,
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
}

impl Ip {
    fn new(proto: u8, src: Ipv4Addr, dst: Ipv4Addr) -> Self {
        Ip { tos: 0, ident: 0x1c46, df: true, frag_off: 0, ttl: 64, proto, src, dst }
    }
    /// Header (with `options`, a multiple of 4 bytes) + payload, checksum computed in full.
    fn packet_with_options(&self, options: &[u8], payload: &[u8]) -> Vec<u8> {
        assert_eq!(options.len() % 4, 0);
        let hl = 20 + options.len();
        let mut h = vec![0x40 | (hl / 4) as u8, self.tos];
        h.extend_from_slice(&((hl + payload.len()) as u16).to_be_bytes());
        h.extend_from_slice(&self.ident.to_be_bytes());
        let flags = if self.df { 0x4000 } else { 0 } | (self.frag_off >> 3);
        h.extend_from_slice(&flags.to_be_bytes());
        h.extend_from_slice(&[self.ttl, self.proto, 0, 0]);
        h.extend_from_slice(&self.src.octets());
        h.extend_from_slice(&self.dst.octets());
        h.extend_from_slice(options);
        let c = csum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }
    fn packet(&self, payload: &[u8]) -> Vec<u8> {
        self.packet_with_options(&[], payload)
    }
}

fn eth(ip_packet: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(ip_packet);
    f
}

/// A TCP segment (20-byte header + `options` + `data`), checksum in full.
fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8, options: &[u8], data: &[u8]) -> Vec<u8> {
    let hl = 20 + options.len();
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&0x1122_3344u32.to_be_bytes()); // seq
    t.extend_from_slice(&(if flags & 0x10 != 0 { 0x5566_7788u32 } else { 0 }).to_be_bytes());
    t.extend_from_slice(&[((hl / 4) as u8) << 4, flags]);
    t.extend_from_slice(&64240u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
    t.extend_from_slice(options);
    t.extend_from_slice(data);
    let mut all = pseudo(src, dst, TCP, t.len());
    all.extend_from_slice(&t);
    let c = csum(&all);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// A UDP datagram, checksum in full (0 sent as 0xffff).
fn udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    let mut all = pseudo(src, dst, UDP, u.len());
    all.extend_from_slice(&u);
    let c = match csum(&all) {
        0 => 0xffff,
        c => c,
    };
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

/// An ICMP message: type, code, the 4 "rest of header" bytes, data; checksum in full.
fn icmp(typ: u8, code: u8, rest: u32, data: &[u8]) -> Vec<u8> {
    let mut m = vec![typ, code, 0, 0];
    m.extend_from_slice(&rest.to_be_bytes());
    m.extend_from_slice(data);
    let c = csum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

const SYN_OPTIONS: [u8; 20] = [
    0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x01, 0x02, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03,
    0x07,
];

/// The client's SYN to the VIP, TTL already decremented to 63.
fn client_syn() -> Vec<u8> {
    let seg = tcp(CLIENT, 40000, VIP, 80, 0x02, &SYN_OPTIONS, &[]);
    Ip { ttl: 63, ..Ip::new(TCP, CLIENT, VIP) }.packet(&seg)
}

/// A UDP datagram from the client to the VIP, DF clear, TOS 0x10.
fn client_udp() -> Vec<u8> {
    let d = udp(CLIENT, 5353, VIP, 53, b"hello, dns");
    Ip { tos: 0x10, df: false, ident: 0xbeef, ttl: 63, ..Ip::new(UDP, CLIENT, VIP) }.packet(&d)
}

/// A large TCP data segment from the client (IP total length `ip_len`).
fn client_big(ip_len: usize, df: bool) -> Vec<u8> {
    let data: Vec<u8> = (0..ip_len - 40).map(|i| i as u8).collect();
    let seg = tcp(CLIENT, 40000, VIP, 80, 0x18, &[], &data);
    Ip { df, ttl: 63, ..Ip::new(TCP, CLIENT, VIP) }.packet(&seg)
}

/// The IPIP frame the tunnel must produce for `inner` (an IP packet).
fn expected_ipip(inner: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let df = inner[6] & 0x40 != 0;
    let ident = u16::from_be_bytes([inner[4], inner[5]]);
    let outer = Ip { tos: inner[1], ident, df, frag_off: 0, ttl: 64, proto: 4, src, dst };
    eth(&outer.packet(inner))
}

/// The ICMP error rvs must generate about the IP packet `orig`.
fn expected_error(orig: &[u8], our: Ipv4Addr, typ: u8, code: u8, rest: u32) -> Vec<u8> {
    let hl = usize::from(orig[0] & 0x0f) * 4;
    let tl = usize::from(u16::from_be_bytes([orig[2], orig[3]]));
    let quote = &orig[..hl + (tl - hl).min(8)];
    let src = Ipv4Addr::new(orig[12], orig[13], orig[14], orig[15]);
    let ident = u16::from_be_bytes([orig[4], orig[5]]);
    let ip = Ip { tos: 0xc0, ident, df: false, frag_off: 0, ttl: 64, proto: ICMP, src: our, dst: src };
    eth(&ip.packet(&icmp(typ, code, rest, quote)))
}

// ---------------------------------------------------------------------------------------
// The golden table.

#[derive(Debug, Clone, Copy)]
enum Call {
    Encap {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        mtu: u16,
    },
    FragNeeded {
        our: Ipv4Addr,
        mtu: u16,
    },
    TimeExceeded {
        our: Ipv4Addr,
    },
    Ttl,
    Translate {
        outer_src: Option<Ipv4Addr>,
        outer_dst: Option<Ipv4Addr>,
        inner_src: Option<Endpoint>,
        inner_dst: Option<Endpoint>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    /// The receive-side IPv4 checks refused the frame: nothing was called.
    NotIpv4,
    Tunnel(TunnelError),
    Icmp(IcmpErrError),
    Ttl(TtlVerdict),
}

struct Case {
    what: &'static str,
    input: Vec<u8>,
    call: Call,
    expected: Vec<u8>,
    outcome: Outcome,
}

/// Where the IPv4 packet of `frame` ends, as the worker's receive-side checks find it
/// (Ethernet II carrying IPv4, a valid IPv4 header; checksums aside); `None` when they
/// refuse the frame.
fn rx_ip_end(frame: &[u8]) -> Option<usize> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    Some(14 + usize::from(ip.total_len()))
}

/// An ICMP error's flow, from the one parse of the frame.
fn parse_embedded(frame: &[u8]) -> Result<Embedded, IcmpErrError> {
    icmp_err::parse(frame).map(|v| *v.embedded())
}

fn run(call: Call, b: &mut MemBuf) -> Outcome {
    let r = match call {
        Call::Encap { src, dst, mtu } => {
            let Some(end) = rx_ip_end(b.data()) else { return Outcome::NotIpv4 };
            tunnel::encap(b, end, src, dst, mtu).map_err(Outcome::Tunnel)
        }
        Call::FragNeeded { our, mtu } => icmp_err::frag_needed(b, our, mtu).map_err(Outcome::Icmp),
        Call::TimeExceeded { our } => icmp_err::time_exceeded(b, our).map_err(Outcome::Icmp),
        Call::Ttl => {
            let Some(end) = rx_ip_end(b.data()) else { return Outcome::NotIpv4 };
            return match ttl::forward(b, end) {
                TtlVerdict::Forward => Outcome::Ok,
                v => Outcome::Ttl(v),
            };
        }
        Call::Translate { outer_src, outer_dst, inner_src, inner_dst } => match icmp_err::parse(b.data()) {
            Ok(err) => icmp_err::translate(b, &err, outer_src, outer_dst, inner_src, inner_dst).map_err(Outcome::Icmp),
            Err(e) => Err(Outcome::Icmp(e)),
        },
    };
    r.err().unwrap_or(Outcome::Ok)
}

fn ep(addr: Ipv4Addr, port: u16) -> Endpoint {
    Endpoint { addr, port }
}

/// An ICMP error from `from` to `to` (outer TTL 62, ident 0x7777) about `quoted`.
fn received_error(from: Ipv4Addr, to: Ipv4Addr, typ: u8, code: u8, rest: u32, quoted: &[u8]) -> Vec<u8> {
    let ip = Ip { ident: 0x7777, df: false, ttl: 62, ..Ip::new(ICMP, from, to) };
    eth(&ip.packet(&icmp(typ, code, rest, quoted)))
}

fn golden_cases() -> Vec<Case> {
    let mut cases = Vec::new();

    // --- IPIP -----------------------------------------------------------------------------
    let syn = client_syn();
    cases.push(Case {
        what: "IPIP encap of a TCP SYN (DF copied)",
        input: eth(&syn),
        call: Call::Encap { src: BACK_IP, dst: RS, mtu: 1500 },
        expected: expected_ipip(&syn, BACK_IP, RS),
        outcome: Outcome::Ok,
    });
    let dgram = client_udp();
    let mut padded = eth(&dgram);
    padded.resize(60, 0); // a short frame as received: Ethernet padding after the packet
    cases.push(Case {
        what: "IPIP encap of a padded UDP datagram (DF clear, TOS copied, padding trimmed)",
        input: padded,
        call: Call::Encap { src: BACK_IP, dst: RS, mtu: 1500 },
        expected: expected_ipip(&dgram, BACK_IP, RS),
        outcome: Outcome::Ok,
    });
    let fits = client_big(1480, true);
    cases.push(Case {
        what: "IPIP encap of exactly MTU - 20",
        input: eth(&fits),
        call: Call::Encap { src: BACK_IP, dst: RS, mtu: 1500 },
        expected: expected_ipip(&fits, BACK_IP, RS),
        outcome: Outcome::Ok,
    });
    let big_df = client_big(1481, true);
    cases.push(Case {
        what: "over MTU with DF: FragNeeded, buffer unchanged",
        input: eth(&big_df),
        call: Call::Encap { src: BACK_IP, dst: RS, mtu: 1500 },
        expected: eth(&big_df),
        outcome: Outcome::Tunnel(TunnelError::FragNeeded { mtu: 1480 }),
    });
    cases.push(Case {
        what: "frag_needed from the over-MTU packet",
        input: eth(&big_df),
        call: Call::FragNeeded { our: VIP, mtu: 1480 },
        expected: expected_error(&big_df, VIP, 3, 4, 1480),
        outcome: Outcome::Ok,
    });
    let big = client_big(1500, false);
    cases.push(Case {
        what: "over MTU without DF: TooBig, buffer unchanged",
        input: eth(&big),
        call: Call::Encap { src: BACK_IP, dst: RS, mtu: 1500 },
        expected: eth(&big),
        outcome: Outcome::Tunnel(TunnelError::TooBig),
    });

    // --- TTL ------------------------------------------------------------------------------
    let seg = tcp(CLIENT, 40000, VIP, 80, 0x10, &[], b"GET / HTTP/1.0\r\n\r\n");
    let ttl1 = Ip { ttl: 1, ..Ip::new(TCP, CLIENT, VIP) }.packet(&seg);
    cases.push(Case {
        what: "TTL 1: expired, unchanged",
        input: eth(&ttl1),
        call: Call::Ttl,
        expected: eth(&ttl1),
        outcome: Outcome::Ttl(TtlVerdict::Expired),
    });
    cases.push(Case {
        what: "TTL 0: expired, unchanged",
        input: eth(&Ip { ttl: 0, ..Ip::new(TCP, CLIENT, VIP) }.packet(&seg)),
        call: Call::Ttl,
        expected: eth(&Ip { ttl: 0, ..Ip::new(TCP, CLIENT, VIP) }.packet(&seg)),
        outcome: Outcome::Ttl(TtlVerdict::Expired),
    });
    cases.push(Case {
        what: "time_exceeded about the TTL 1 packet",
        input: eth(&ttl1),
        call: Call::TimeExceeded { our: VIP },
        expected: expected_error(&ttl1, VIP, 11, 0, 0),
        outcome: Outcome::Ok,
    });
    cases.push(Case {
        what: "TTL 64 → 63",
        input: eth(&Ip::new(TCP, CLIENT, VIP).packet(&seg)),
        call: Call::Ttl,
        expected: eth(&Ip { ttl: 63, ..Ip::new(TCP, CLIENT, VIP) }.packet(&seg)),
        outcome: Outcome::Ok,
    });
    cases.push(Case {
        what: "TTL 2 → 1",
        input: eth(&Ip { ttl: 2, ..Ip::new(TCP, CLIENT, VIP) }.packet(&seg)),
        call: Call::Ttl,
        expected: eth(&Ip { ttl: 1, ..Ip::new(TCP, CLIENT, VIP) }.packet(&seg)),
        outcome: Outcome::Ok,
    });

    // --- Generation corner cases ----------------------------------------------------------
    let tiny = Ip { ttl: 1, ..Ip::new(253, CLIENT, VIP) }.packet(&[0xab, 0xcd, 0xef]);
    cases.push(Case {
        what: "time_exceeded about a 23-byte packet: quote 3 bytes, buffer grows",
        input: eth(&tiny),
        call: Call::TimeExceeded { our: VIP },
        expected: expected_error(&tiny, VIP, 11, 0, 0),
        outcome: Outcome::Ok,
    });
    let opts = [0x01, 0x01, 0x01, 0x00, 0x94, 0x04, 0x00, 0x00]; // NOPs, EOL; router alert
    let with_opts = Ip { ttl: 1, ..Ip::new(UDP, CLIENT, VIP) }
        .packet_with_options(&opts, &udp(CLIENT, 5353, VIP, 53, b"query with options"));
    cases.push(Case {
        what: "time_exceeded quotes the whole header with options",
        input: eth(&with_opts),
        call: Call::TimeExceeded { our: VIP },
        expected: expected_error(&with_opts, VIP, 11, 0, 0),
        outcome: Outcome::Ok,
    });
    let echo_req = Ip { ttl: 1, ..Ip::new(ICMP, CLIENT, VIP) }.packet(&icmp(8, 0, 0x0001_0001, b"ping"));
    cases.push(Case {
        what: "time_exceeded about an echo request is allowed",
        input: eth(&echo_req),
        call: Call::TimeExceeded { our: VIP },
        expected: expected_error(&echo_req, VIP, 11, 0, 0),
        outcome: Outcome::Ok,
    });
    let about_err = Ip { ttl: 1, ..Ip::new(ICMP, CLIENT, VIP) }.packet(&icmp(3, 3, 0, &ttl1[..28]));
    let frag = Ip { frag_off: 1480, df: false, ttl: 1, ..Ip::new(UDP, CLIENT, VIP) }.packet(&[0; 16]);
    let bcast = Ip { ttl: 1, ..Ip::new(UDP, CLIENT, Ipv4Addr::BROADCAST) }.packet(&[0; 16]);
    let mcast = Ip { ttl: 1, ..Ip::new(UDP, CLIENT, Ipv4Addr::new(224, 0, 0, 251)) }.packet(&[0; 16]);
    let zero_src = Ip { ttl: 1, ..Ip::new(UDP, Ipv4Addr::UNSPECIFIED, VIP) }.packet(&[0; 16]);
    let lo_src = Ip { ttl: 1, ..Ip::new(UDP, Ipv4Addr::LOCALHOST, VIP) }.packet(&[0; 16]);
    let mut eth_bcast = eth(&ttl1);
    eth_bcast[..6].copy_from_slice(&[0xff; 6]);
    for (what, input, err) in [
        ("no error about an ICMP error", eth(&about_err), IcmpErrError::AboutIcmpError),
        ("no error about a non-first fragment", eth(&frag), IcmpErrError::AboutFragment),
        ("no error about an IP broadcast", eth(&bcast), IcmpErrError::NotUnicast),
        ("no error about a multicast", eth(&mcast), IcmpErrError::NotUnicast),
        ("no error to 0.0.0.0", eth(&zero_src), IcmpErrError::NotUnicast),
        ("no error to loopback", eth(&lo_src), IcmpErrError::NotUnicast),
        ("no error about an Ethernet broadcast", eth_bcast, IcmpErrError::NotUnicast),
    ] {
        cases.push(Case {
            what,
            expected: input.clone(),
            input,
            call: Call::TimeExceeded { our: VIP },
            outcome: Outcome::Icmp(err),
        });
    }

    // --- Translation ----------------------------------------------------------------------
    // NAT (LVS -m): the client's UDP C:5353 → VIP:53 was DNATed to RS:53; the server
    // answers port unreachable RS → C quoting C:5353 → RS:53. The client must see VIP → C
    // quoting C:5353 → VIP:53, i.e. what it sent. Linux quotes the whole small datagram.
    let payload = b"dns query payload";
    let dnat = Ip { ttl: 63, ident: 0x4242, df: false, ..Ip::new(UDP, CLIENT, RS) }
        .packet(&udp(CLIENT, 5353, RS, 53, payload));
    let orig = Ip { ttl: 63, ident: 0x4242, df: false, ..Ip::new(UDP, CLIENT, VIP) }
        .packet(&udp(CLIENT, 5353, VIP, 53, payload));
    let nat_call =
        Call::Translate { outer_src: Some(VIP), outer_dst: None, inner_src: None, inner_dst: Some(ep(VIP, 53)) };
    cases.push(Case {
        what: "NAT: port unreachable from the server, whole datagram quoted",
        input: received_error(RS, CLIENT, 3, 3, 0, &dnat),
        call: nat_call,
        expected: received_error(VIP, CLIENT, 3, 3, 0, &orig),
        outcome: Outcome::Ok,
    });
    cases.push(Case {
        what: "NAT: port unreachable from the server, minimal 28-byte quote (UDP checksum in it)",
        input: received_error(RS, CLIENT, 3, 3, 0, &dnat[..28]),
        call: nat_call,
        expected: received_error(VIP, CLIENT, 3, 3, 0, &orig[..28]),
        outcome: Outcome::Ok,
    });
    let no_csum = |mut p: Vec<u8>| {
        p[26..28].copy_from_slice(&[0, 0]);
        p
    };
    cases.push(Case {
        what: "NAT: quoted UDP checksum 0 (none) stays 0",
        input: received_error(RS, CLIENT, 3, 3, 0, &no_csum(dnat.clone())),
        call: nat_call,
        expected: received_error(VIP, CLIENT, 3, 3, 0, &no_csum(orig.clone())),
        outcome: Outcome::Ok,
    });

    // Full-NAT (DPVS -b): C:40000 → VIP:80 became L:5001 → RS:8080. A router on the back
    // side (or the server) sends frag needed RS → L quoting L:5001 → RS:8080; the client
    // must get VIP → C quoting C:40000 → VIP:80. Both addresses and ports change.
    let data: Vec<u8> = (0..1400).map(|i| (i * 7) as u8).collect();
    let fnat =
        Ip { ttl: 63, ident: 0x0101, ..Ip::new(TCP, LOCAL, RS) }.packet(&tcp(LOCAL, 5001, RS, 8080, 0x18, &[], &data));
    let orig = Ip { ttl: 63, ident: 0x0101, ..Ip::new(TCP, CLIENT, VIP) }.packet(&tcp(
        CLIENT,
        40000,
        VIP,
        80,
        0x18,
        &[],
        &data,
    ));
    let fnat_call = Call::Translate {
        outer_src: Some(VIP),
        outer_dst: Some(CLIENT),
        inner_src: Some(ep(CLIENT, 40000)),
        inner_dst: Some(ep(VIP, 80)),
    };
    cases.push(Case {
        what: "Full-NAT: frag needed, minimal quote (TCP checksum not quoted)",
        input: received_error(RS, LOCAL, 3, 4, 1400, &fnat[..28]),
        call: fnat_call,
        expected: received_error(VIP, CLIENT, 3, 4, 1400, &orig[..28]),
        outcome: Outcome::Ok,
    });
    cases.push(Case {
        what: "Full-NAT: frag needed, 548 bytes quoted (TCP checksum adjusted)",
        input: received_error(RS, LOCAL, 3, 4, 1400, &fnat[..548]),
        call: fnat_call,
        expected: received_error(VIP, CLIENT, 3, 4, 1400, &orig[..548]),
        outcome: Outcome::Ok,
    });
    cases.push(Case {
        what: "Full-NAT: quote of 16 TCP bytes stops just before the checksum",
        input: received_error(RS, LOCAL, 11, 0, 0, &fnat[..36]),
        call: fnat_call,
        expected: received_error(VIP, CLIENT, 11, 0, 0, &orig[..36]),
        outcome: Outcome::Ok,
    });
    // 17 TCP bytes hold half the checksum: it cannot be adjusted from one byte and is left
    // as it was (the rest is translated).
    let mut half = orig[..37].to_vec();
    half[36] = fnat[36];
    cases.push(Case {
        what: "Full-NAT: quote of 17 TCP bytes leaves the half-quoted checksum alone",
        input: received_error(RS, LOCAL, 11, 0, 0, &fnat[..37]),
        call: fnat_call,
        expected: received_error(VIP, CLIENT, 11, 0, 0, &half),
        outcome: Outcome::Ok,
    });
    cases.push(Case {
        what: "translate refuses an echo reply, unchanged",
        input: received_error(RS, LOCAL, 0, 0, 0x0001_0001, b"pong"),
        call: fnat_call,
        expected: received_error(RS, LOCAL, 0, 0, 0x0001_0001, b"pong"),
        outcome: Outcome::Icmp(IcmpErrError::NotAnError(0)),
    });
    cases.push(Case {
        what: "translate refuses a 3-byte L4 quote, unchanged",
        input: received_error(RS, LOCAL, 3, 3, 0, &fnat[..23]),
        call: fnat_call,
        expected: received_error(RS, LOCAL, 3, 3, 0, &fnat[..23]),
        outcome: Outcome::Icmp(IcmpErrError::QuoteTruncated),
    });
    cases
}

#[test]
fn golden_table() {
    let cases = golden_cases();
    assert!(cases.len() >= 25);
    for c in &cases {
        let mut b = MemBuf::from_frame(&c.input);
        let got = run(c.call, &mut b);
        assert_eq!(got, c.outcome, "{}", c.what);
        assert_eq!(hex(b.data()), hex(&c.expected), "{}", c.what);
    }
}

fn hex(b: &[u8]) -> String {
    b.chunks(16)
        .map(|l| l.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The outer header of the SYN case, as literal bytes computed with python3
/// (`struct.pack('!BBHHHBBH4s4s', 0x45, 0, 80, 0x1c46, 0x4000, 64, 4, 0, ...)` and an
/// RFC 1071 sum), so the builder above is checked too.
#[test]
fn ipip_outer_header_literal() {
    #[rustfmt::skip]
    const OUTER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x50, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x04, 0x0a, 0x31,
        0x0a, 0x14, 0x00, 0x01, 0x0a, 0x14, 0x00, 0x0b,
    ];
    let syn = client_syn();
    assert_eq!(syn.len(), 60);
    let mut b = MemBuf::from_frame(&eth(&syn));
    let end = rx_ip_end(b.data()).unwrap();
    tunnel::encap(&mut b, end, BACK_IP, RS, 1500).unwrap();
    assert_eq!(&b.data()[..14], &eth(&[])[..]);
    assert_eq!(b.data()[14..34], OUTER);
    assert_eq!(&b.data()[34..], &syn[..]);
}

/// A frag needed about the SYN with MTU 1480, checked against python3-computed bytes.
#[test]
fn frag_needed_literal() {
    #[rustfmt::skip]
    const ERR: [u8; 56] = [
        // IPv4: TOS 0xc0, length 56, ident 0x1c46, no DF, TTL 64, ICMP, VIP → client
        0x45, 0xc0, 0x00, 0x38, 0x1c, 0x46, 0x00, 0x00, 0x40, 0x01, 0x49, 0x46,
        0x0a, 0x0a, 0x00, 0x64, 0x0a, 0x0a, 0x00, 0x02,
        // ICMP 3/4, checksum, unused, MTU 1480
        0x03, 0x04, 0x16, 0x3d, 0x00, 0x00, 0x05, 0xc8,
        // the SYN's IP header and first 8 TCP bytes
        0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x3f, 0x06, 0x0a, 0xfd,
        0x0a, 0x0a, 0x00, 0x02, 0x0a, 0x0a, 0x00, 0x64,
        0x9c, 0x40, 0x00, 0x50, 0x11, 0x22, 0x33, 0x44,
    ];
    let mut b = MemBuf::from_frame(&eth(&client_syn()));
    icmp_err::frag_needed(&mut b, VIP, 1480).unwrap();
    assert_eq!(&b.data()[14..], &ERR[..]);
}

#[test]
fn frag_needed_after_failed_encap_uses_the_same_buffer() {
    let big = client_big(1500, true);
    let mut b = MemBuf::from_frame(&eth(&big));
    let end = rx_ip_end(b.data()).unwrap();
    let Err(TunnelError::FragNeeded { mtu }) = tunnel::encap(&mut b, end, BACK_IP, RS, 1500) else {
        panic!("expected FragNeeded");
    };
    icmp_err::frag_needed(&mut b, VIP, mtu).unwrap();
    assert_eq!(b.data(), &expected_error(&big, VIP, 3, 4, 1480)[..]);
    // And rvs can read its own error back.
    let e = parse_embedded(b.data()).unwrap();
    assert_eq!(e.next_hop_mtu, Some(1480));
    assert_eq!((e.proto, e.src, e.dst), (TCP, ep(CLIENT, 40000), ep(VIP, 80)));
}

#[test]
fn no_room_leaves_buffer_unchanged() {
    // A 20-byte packet in a buffer with no tailroom cannot grow into a 48-byte error.
    let p = Ip { ttl: 1, ..Ip::new(253, CLIENT, VIP) }.packet(&[]);
    let f = eth(&p);
    let mut b = MemBuf::with_room(128, f.len());
    b.append(f.len()).unwrap().copy_from_slice(&f);
    assert_eq!(icmp_err::time_exceeded(&mut b, VIP), Err(IcmpErrError::NoRoom));
    assert_eq!(b.data(), &f[..]);
}

// ---------------------------------------------------------------------------------------
// parse_embedded.

#[test]
fn parse_embedded_nat_and_fullnat() {
    let dnat = Ip::new(UDP, CLIENT, RS).packet(&udp(CLIENT, 5353, RS, 53, b"q"));
    let e = parse_embedded(&received_error(RS, CLIENT, 3, 3, 0, &dnat[..28])).unwrap();
    assert_eq!(
        e,
        Embedded { icmp_type: 3, icmp_code: 3, next_hop_mtu: None, proto: UDP, src: ep(CLIENT, 5353), dst: ep(RS, 53) }
    );
    let fnat = Ip::new(TCP, LOCAL, RS).packet(&tcp(LOCAL, 5001, RS, 8080, 0x10, &[], &[]));
    let e = parse_embedded(&received_error(RS, LOCAL, 3, 4, 1400, &fnat[..28])).unwrap();
    assert_eq!((e.icmp_type, e.icmp_code, e.next_hop_mtu), (3, 4, Some(1400)));
    assert_eq!((e.proto, e.src, e.dst), (TCP, ep(LOCAL, 5001), ep(RS, 8080)));
    for t in [4u8, 5, 11, 12] {
        let e = parse_embedded(&received_error(RS, LOCAL, t, 0, 0, &fnat[..28])).unwrap();
        assert_eq!((e.icmp_type, e.next_hop_mtu), (t, None));
    }
    // Ethernet padding after the message is ignored, checksum included.
    let mut padded = received_error(RS, LOCAL, 11, 0, 0, &fnat[..24]);
    padded.extend_from_slice(&[0xee; 10]);
    assert!(parse_embedded(&padded).is_ok());
}

#[test]
fn parse_embedded_rejects_with_reasons() {
    let seg = udp(CLIENT, 5353, RS, 53, b"q");
    let dnat = Ip::new(UDP, CLIENT, RS).packet(&seg);
    let good = received_error(RS, CLIENT, 3, 3, 0, &dnat[..28]);
    // Every truncation of a good error is an error, never a panic.
    for n in 0..good.len() {
        assert!(parse_embedded(&good[..n]).is_err(), "{n}");
    }
    let cases: Vec<(&str, Vec<u8>, IcmpErrError)> = vec![
        ("echo reply", received_error(RS, CLIENT, 0, 0, 0, &dnat[..28]), IcmpErrError::NotAnError(0)),
        ("not ICMP", eth(&dnat), IcmpErrError::NotIcmp),
        ("quote of 19 bytes", received_error(RS, CLIENT, 3, 3, 0, &dnat[..19]), IcmpErrError::QuoteTruncated),
        ("quote without ports", received_error(RS, CLIENT, 3, 3, 0, &dnat[..23]), IcmpErrError::QuoteTruncated),
        (
            "quoted IHL beyond the quote",
            {
                let mut q = dnat[..28].to_vec();
                q[0] = 0x48;
                received_error(RS, CLIENT, 3, 3, 0, &q)
            },
            IcmpErrError::QuoteTruncated,
        ),
        (
            "quoted IHL 4",
            {
                let mut q = dnat[..28].to_vec();
                q[0] = 0x44;
                received_error(RS, CLIENT, 3, 3, 0, &q)
            },
            IcmpErrError::QuoteMalformed,
        ),
        (
            "quoted IPv6",
            {
                let mut q = dnat[..28].to_vec();
                q[0] = 0x65;
                received_error(RS, CLIENT, 3, 3, 0, &q)
            },
            IcmpErrError::QuoteMalformed,
        ),
        (
            "quoted non-first fragment",
            received_error(
                RS,
                CLIENT,
                3,
                3,
                0,
                &Ip { frag_off: 8, df: false, ..Ip::new(UDP, CLIENT, RS) }.packet(&seg),
            ),
            IcmpErrError::QuoteFragment,
        ),
        (
            "quoted ICMP",
            received_error(RS, CLIENT, 3, 3, 0, &Ip::new(ICMP, CLIENT, RS).packet(&icmp(8, 0, 1, b"x"))),
            IcmpErrError::UnsupportedProtocol(ICMP),
        ),
        (
            "bad checksum",
            {
                let mut f = received_error(RS, CLIENT, 3, 3, 0, &dnat[..28]);
                f[36] ^= 0x01;
                f
            },
            IcmpErrError::BadChecksum,
        ),
        (
            "fragmented error",
            eth(&Ip { df: false, frag_off: 0, ..Ip::new(ICMP, RS, CLIENT) }.packet(&icmp(3, 3, 0, &dnat[..28])))
                .into_iter()
                .enumerate()
                .map(|(i, b)| if i == 20 { b | 0x20 } else { b })
                .collect(),
            IcmpErrError::Fragmented,
        ),
        (
            "ICMP header cut",
            eth(&Ip::new(ICMP, RS, CLIENT).packet(&[3, 3, 0, 0])),
            IcmpErrError::Malformed(rvs_dataplane::wire::WireError::Truncated),
        ),
    ];
    // A refused error has no parse, so it can never reach `translate`.
    for (what, frame, want) in cases {
        assert_eq!(parse_embedded(&frame), Err(want), "{what}");
    }
}

// ---------------------------------------------------------------------------------------
// Properties.

/// A random inner IPv4 packet (TCP, UDP or other) as the worker would hand it over.
fn arb_inner() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just(TCP), Just(UDP), Just(ICMP), any::<u8>()],
        any::<(u8, u16, bool, u8, u32, u32)>(),
        proptest::collection::vec(any::<u8>(), 0..1600),
        0usize..=10,
    )
        .prop_map(|(proto, (tos, ident, df, ttl, s, d), payload, opt_words)| {
            let opts = vec![0x01; opt_words * 4];
            Ip { tos, ident, df, frag_off: 0, ttl, proto, src: s.into(), dst: d.into() }
                .packet_with_options(&opts, &payload)
        })
}

/// A flow rewrite to translate with: optional outer addresses and quoted endpoints.
type Rewrite = (Option<u32>, Option<u32>, Option<(u32, u16)>, Option<(u32, u16)>);

fn arb_rewrite() -> impl Strategy<Value = Rewrite> {
    (
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<(u32, u16)>()),
        proptest::option::of(any::<(u32, u16)>()),
    )
}

/// Verifies every checksum of a translated error by full recomputation; when `full`
/// (the whole datagram quoted) also the quoted L4 checksum over its pseudo-header.
fn check_error_checksums(f: &[u8], full: bool) -> Result<(), TestCaseError> {
    let hl = usize::from(f[14] & 0x0f) * 4;
    let tl = usize::from(u16::from_be_bytes([f[16], f[17]]));
    prop_assert!(verifies(&f[14..14 + hl]), "outer IPv4 checksum");
    let msg = &f[14 + hl..14 + tl];
    prop_assert!(verifies(msg), "ICMP checksum");
    let q = &msg[8..];
    let qhl = usize::from(q[0] & 0x0f) * 4;
    prop_assert!(verifies(&q[..qhl]), "quoted IPv4 checksum");
    if full {
        let (src, dst) = (Ipv4Addr::new(q[12], q[13], q[14], q[15]), Ipv4Addr::new(q[16], q[17], q[18], q[19]));
        let l4 = &q[qhl..];
        let udp_none = q[9] == UDP && l4[6..8] == [0, 0];
        if !udp_none {
            let mut all = pseudo(src, dst, q[9], l4.len());
            all.extend_from_slice(l4);
            prop_assert!(verifies(&all), "quoted L4 checksum");
        }
    }
    Ok(())
}

#[test]
fn refused_errors_count_under_their_drop_reason() {
    use rvs_dataplane::stats::DropReason;
    assert_eq!(DropReason::from(IcmpErrError::NotIcmp), DropReason::IcmpUnhandled);
    assert_eq!(DropReason::from(IcmpErrError::NotAnError(8)), DropReason::IcmpUnhandled);
    assert_eq!(DropReason::from(IcmpErrError::UnsupportedProtocol(4)), DropReason::IcmpUnhandled);
    assert_eq!(DropReason::from(IcmpErrError::BadChecksum), DropReason::IcmpBadChecksum);
    assert_eq!(DropReason::from(IcmpErrError::QuoteTruncated), DropReason::IcmpMalformed);
    assert_eq!(DropReason::from(IcmpErrError::Fragmented), DropReason::IcmpMalformed);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Encapsulating then stripping the outer header gives back the original bytes, and
    /// the outer header is exactly what RFC 2003 asks for.
    #[test]
    fn encap_then_strip_is_identity(inner in arb_inner(), s in any::<u32>(), d in any::<u32>(), mtu in 0u16..=1700) {
        let frame = eth(&inner);
        let mut b = MemBuf::from_frame(&frame);
        let r = tunnel::encap(&mut b, rx_ip_end(&frame).unwrap(), s.into(), d.into(), mtu);
        let df = inner[6] & 0x40 != 0;
        if inner.len() + 20 > usize::from(mtu) {
            let want = if df { TunnelError::FragNeeded { mtu: mtu.saturating_sub(20) } } else { TunnelError::TooBig };
            prop_assert_eq!(r, Err(want));
            prop_assert_eq!(b.data(), &frame[..]);
        } else {
            prop_assert_eq!(r, Ok(()));
            prop_assert_eq!(b.data(), &expected_ipip(&inner, s.into(), d.into())[..]);
            // Strip: move the Ethernet header over the outer header and drop 20 bytes.
            let f = b.data_mut();
            f.copy_within(0..14, 20);
            prop_assert!(b.adj(20));
            prop_assert_eq!(b.data(), &frame[..]);
        }
    }

    /// After translate, every checksum verifies by full recomputation, and the bytes are
    /// those of an error built from scratch about the rewritten datagram.
    #[test]
    fn translate_keeps_every_checksum(
        is_tcp in any::<bool>(),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        ends in any::<(u32, u16, u32, u16)>(),
        quote_extra in 0usize..260,
        typ in prop_oneof![Just(3u8), Just(11u8), Just(12u8)],
        rw in arb_rewrite(),
        udp_no_csum in any::<bool>(),
    ) {
        let (s, sp, d, dp) = ends;
        let (s, d) = (Ipv4Addr::from(s), Ipv4Addr::from(d));
        let mk = |s: Ipv4Addr, sp: u16, d: Ipv4Addr, dp: u16| {
            let (proto, mut l4) = if is_tcp {
                (TCP, tcp(s, sp, d, dp, 0x18, &[], &payload))
            } else {
                (UDP, udp(s, sp, d, dp, &payload))
            };
            if !is_tcp && udp_no_csum {
                l4[6..8].copy_from_slice(&[0, 0]);
            }
            Ip { ttl: 17, ..Ip::new(proto, s, d) }.packet(&l4)
        };
        let before = mk(s, sp, d, dp);
        let qlen = (28 + quote_extra).min(before.len());
        let (osrc, odst) = (RS, LOCAL);
        let input = received_error(osrc, odst, typ, 0, 0, &before[..qlen]);
        let (o_s, o_d, i_s, i_d) = rw;
        let (ns, nsp) = i_s.map_or((s, sp), |(a, p)| (a.into(), p));
        let (nd, ndp) = i_d.map_or((d, dp), |(a, p)| (a.into(), p));
        let after = mk(ns, nsp, nd, ndp);
        let mut after_q = after[..qlen].to_vec();
        // A quote ending inside the L4 checksum: that half checksum is left as it was.
        if (is_tcp && qlen == 20 + 17) || (!is_tcp && qlen == 20 + 7) {
            after_q[qlen - 1] = before[qlen - 1];
        }
        let expected = received_error(
            o_s.map_or(osrc, Ipv4Addr::from), o_d.map_or(odst, Ipv4Addr::from), typ, 0, 0, &after_q);

        let mut b = MemBuf::from_frame(&input);
        let err = icmp_err::parse(&input).unwrap();
        let r = icmp_err::translate(
            &mut b,
            &err,
            o_s.map(Ipv4Addr::from),
            o_d.map(Ipv4Addr::from),
            i_s.map(|(a, p)| ep(a.into(), p)),
            i_d.map(|(a, p)| ep(a.into(), p)),
        );
        prop_assert_eq!(r, Ok(()));
        check_error_checksums(b.data(), qlen == before.len())?;
        // The quoted TCP checksum is only adjusted when quoted; otherwise bytes agree.
        prop_assert_eq!(hex(b.data()), hex(&expected));
        // And parse_embedded reads the new flow back.
        let e = parse_embedded(b.data()).unwrap();
        prop_assert_eq!((e.src, e.dst), (ep(ns, nsp), ep(nd, ndp)));
    }

    /// Random bytes never make any of these functions panic, and every `Err` (or
    /// `Expired`/`Malformed`) leaves the buffer unchanged.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), mtu in any::<u16>()) {
        let _ = parse_embedded(&bytes);
        let a = Ipv4Addr::new(1, 2, 3, 4);
        let calls = [
            Call::Encap { src: a, dst: a, mtu },
            Call::FragNeeded { our: a, mtu },
            Call::TimeExceeded { our: a },
            Call::Ttl,
            Call::Translate { outer_src: Some(a), outer_dst: Some(a), inner_src: Some(ep(a, 1)), inner_dst: Some(ep(a, 2)) },
        ];
        for call in calls {
            let mut b = MemBuf::from_frame(&bytes);
            if run(call, &mut b) != Outcome::Ok {
                prop_assert_eq!(b.data(), &bytes[..]);
            }
        }
    }

    /// Random mutations of a valid ICMP error (lying lengths, IHLs, types) never panic.
    #[test]
    fn mutated_errors_never_panic(
        edits in proptest::collection::vec((0usize..80, any::<u8>()), 1..6),
        cut in 0usize..100,
    ) {
        let dnat = Ip::new(TCP, CLIENT, RS).packet(&tcp(CLIENT, 1, RS, 2, 0x10, &[], b"abcdefghijklmnop"));
        let mut f = received_error(RS, CLIENT, 3, 4, 1400, &dnat);
        for (i, v) in edits {
            if i < f.len() {
                f[i] = v;
            }
        }
        f.truncate(f.len().min(14 + cut));
        let _ = parse_embedded(&f);
        if let Ok(err) = icmp_err::parse(&f) {
            let mut b = MemBuf::from_frame(&f);
            if icmp_err::translate(&mut b, &err, Some(VIP), None, None, Some(ep(VIP, 80))).is_err() {
                prop_assert_eq!(b.data(), &f[..]);
            }
        }
        let mut b = MemBuf::from_frame(&f);
        let _ = icmp_err::time_exceeded(&mut b, VIP);
    }
}
