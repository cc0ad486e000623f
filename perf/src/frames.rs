//! The frames the pipeline benchmark sends and the replies it expects back.
//!
//! Contract: every builder here is plain byte pushing with its own RFC 1071 checksum,
//! written independently of `rvs_dataplane::wire`, so that the benchmark's correctness
//! check does not trust the code it measures (the same rule as the dataplane's golden
//! tests). The addressing is the lab's front side (DESIGN.md): port `front` is
//! 10.10.0.1/24 with the VIP 10.10.0.100, and the client 10.10.0.2 is on-link.

use std::net::Ipv4Addr;

/// MAC of the front port.
pub const FRONT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xf0, 0x01];
/// MAC of the back port.
pub const BACK_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xb0, 0x01];
/// MAC of the on-link client.
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0c, 0x02];
/// Address of the front port.
pub const FRONT_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 1);
/// The VIP, answered on the front port.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 100);
/// The on-link client.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 2);

const BROADCAST: [u8; 6] = [0xff; 6];
const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;
/// Ethernet minimum frame length without FCS, as a NIC delivers short frames.
const ETH_MIN: usize = 60;
/// Offset of the IPv4 header checksum in an Ethernet frame.
const IP_CSUM_AT: usize = 14 + 10;
/// Identifier, sequence number and payload length of the echo request (`ping`'s 56 bytes).
const ECHO_ID: u16 = 0x1234;
const ECHO_SEQ: u16 = 1;
const ECHO_DATA_LEN: usize = 56;
/// TTL of the client's request and of rvs's reply (Linux's default, `REPLY_TTL`).
const TTL: u8 = 64;

/// RFC 1071 Internet checksum of `data`.
pub fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from(c[0]) << 8 };
        s += u32::from(w);
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_MIN.max(14 + payload.len()));
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    if f.len() < ETH_MIN {
        f.resize(ETH_MIN, 0);
    }
    f
}

fn arp(op: u16, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0x00, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha);
    a.extend_from_slice(&spa.octets());
    a.extend_from_slice(&tha);
    a.extend_from_slice(&tpa.octets());
    a
}

/// IPv4 (no options, DF set) + ICMP echo of `icmp_type` from `src` to `dst`, both
/// checksums correct.
fn ipv4_echo(src: Ipv4Addr, dst: Ipv4Addr, icmp_type: u8) -> Vec<u8> {
    let mut icmp = vec![icmp_type, 0, 0, 0];
    icmp.extend_from_slice(&ECHO_ID.to_be_bytes());
    icmp.extend_from_slice(&ECHO_SEQ.to_be_bytes());
    icmp.extend((0..ECHO_DATA_LEN).map(|i| 0x10 + i as u8));
    let c = csum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());

    let total = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&0x1c46u16.to_be_bytes()); // identification
    ip.extend_from_slice(&0x4000u16.to_be_bytes()); // DF, offset 0
    ip.extend_from_slice(&[TTL, 1, 0, 0]); // TTL, protocol ICMP, checksum placeholder
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&icmp);
    ip
}

/// Broadcast ARP request from the client: "who has 10.10.0.1 (the front port)?".
pub fn arp_request() -> Vec<u8> {
    eth(BROADCAST, CLIENT_MAC, ETH_ARP, &arp(ARP_REQUEST, CLIENT_MAC, CLIENT_IP, [0; 6], FRONT_IP))
}

/// The reply rvs must send to [`arp_request`] on the front port (the request's padding
/// is kept, since the reply is built in place).
pub fn arp_reply() -> Vec<u8> {
    eth(CLIENT_MAC, FRONT_MAC, ETH_ARP, &arp(ARP_REPLY, FRONT_MAC, FRONT_IP, CLIENT_MAC, CLIENT_IP))
}

/// ICMP echo request (98 bytes, like `ping`'s default) from the client to the VIP.
pub fn echo_request() -> Vec<u8> {
    eth(FRONT_MAC, CLIENT_MAC, ETH_IPV4, &ipv4_echo(CLIENT_IP, VIP, 8))
}

/// The echo reply rvs must route back to the client for [`echo_request`].
pub fn echo_reply() -> Vec<u8> {
    eth(CLIENT_MAC, FRONT_MAC, ETH_IPV4, &ipv4_echo(VIP, CLIENT_IP, 0))
}

/// [`echo_request`] with its IPv4 header checksum wrong (every other field valid).
pub fn echo_request_bad_ip_checksum() -> Vec<u8> {
    let mut f = echo_request();
    f[IP_CSUM_AT] ^= 0x5a;
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify_and_the_bad_one_does_not() {
        let f = echo_request();
        assert_eq!(f.len(), 98);
        assert_eq!(csum(&f[14..34]), 0, "IPv4 header checksum");
        assert_eq!(csum(&f[34..]), 0, "ICMP checksum");
        assert_eq!(csum(&echo_reply()[14..34]), 0);
        assert_ne!(csum(&echo_request_bad_ip_checksum()[14..34]), 0);
        assert_eq!(arp_request().len(), 60);
        assert_eq!(arp_reply().len(), 60);
    }
}
