//! ICMP for our own addresses and VIPs: echo replies, built in place.
//!
//! Contract:
//! * [`answer_echo`] takes a received Ethernet frame holding an IPv4 packet that the
//!   caller has already validated (header, checksum, not a fragment, source sane) and
//!   found addressed to one of our addresses or VIPs with protocol ICMP. It validates the
//!   ICMP message (length → `icmp_malformed`, checksum → `icmp_bad_checksum`), answers
//!   only an echo request with code 0 and no IP options (anything else →
//!   `icmp_unhandled`), and rewrites the frame into the echo reply in place: addresses
//!   swapped, TTL 64, type 0, with both checksums updated incrementally (RFC 1624) — the
//!   address swap leaves the IPv4 header sum unchanged, so only the TTL/protocol word and
//!   the ICMP type/code word are patched.
//! * The reply is not sent back the way it came (the client may be off-link, behind a
//!   gateway): the caller routes it to the returned destination, so MACs are left alone.
//! * Echo requests with IP options (record route, timestamps, source routes) are not
//!   answered: RFC 1122 §3.2.2.6 asks to update or reverse them, which a load balancer
//!   does not need; ping without `-R` carries none.

use std::net::Ipv4Addr;

use crate::stats::DropReason;
use crate::wire::{EthernetFrame, IcmpPacket, Ipv4Packet, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST};

/// TTL of the replies rvs originates (Linux's default `ip_default_ttl`).
pub const REPLY_TTL: u8 = 64;

/// Turns the echo request in `frame` into its reply, in place; returns the reply's
/// destination (the request's source), to be routed. See the module docs.
pub fn answer_echo(frame: &mut [u8]) -> Result<Ipv4Addr, DropReason> {
    let body = frame.get_mut(EthernetFrame::<&[u8]>::HEADER_LEN..).ok_or(DropReason::EthTruncated)?;
    let mut ip = Ipv4Packet::new_checked(body).map_err(|_| DropReason::IpTruncated)?;
    {
        let icmp = IcmpPacket::new_checked(ip.payload()).map_err(|_| DropReason::IcmpMalformed)?;
        if !icmp.verify_checksum() {
            return Err(DropReason::IcmpBadChecksum);
        }
        if icmp.msg_type() != ICMP_ECHO_REQUEST
            || icmp.code() != 0
            || ip.header_len() != Ipv4Packet::<&[u8]>::MIN_HEADER_LEN
        {
            return Err(DropReason::IcmpUnhandled);
        }
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    // Swapping the two addresses permutes words of the header: its sum, so its checksum,
    // is unchanged.
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_ttl_incremental(REPLY_TTL);
    let mut icmp = IcmpPacket::new_unchecked(ip.payload_mut());
    icmp.set_msg_type_incremental(ICMP_ECHO_REPLY);
    Ok(src)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::IPPROTO_ICMP;

    /// An Ethernet + IPv4 + ICMP echo request from 10.0.0.9 to 10.0.0.1 with `data`.
    pub(crate) fn echo_request(data: &[u8], ttl: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8 + data.len()];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
            ip.set_version(4);
            ip.set_header_len(20);
            ip.set_total_len((20 + 8 + data.len()) as u16);
            ip.set_ident(0x4242);
            ip.set_dont_frag(true);
            ip.set_ttl(ttl);
            ip.set_protocol(IPPROTO_ICMP);
            ip.set_src_addr(Ipv4Addr::new(10, 0, 0, 9));
            ip.set_dst_addr(Ipv4Addr::new(10, 0, 0, 1));
            ip.fill_checksum();
            let mut icmp = IcmpPacket::new_unchecked(ip.payload_mut());
            icmp.set_msg_type(ICMP_ECHO_REQUEST);
            icmp.set_ident(0x1234);
            icmp.set_seq_no(7);
            icmp.data_mut().copy_from_slice(data);
            icmp.fill_checksum();
        }
        f
    }

    #[test]
    fn reply_checksums_match_full_recomputation() {
        for (data, ttl) in [(&b""[..], 1u8), (&b"abc"[..], 64), (&[0xffu8; 57][..], 255), (&[0u8; 56][..], 3)] {
            let mut f = echo_request(data, ttl);
            assert_eq!(answer_echo(&mut f), Ok(Ipv4Addr::new(10, 0, 0, 9)));
            let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
            assert_eq!(
                (ip.src_addr(), ip.dst_addr(), ip.ttl()),
                (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 9), 64)
            );
            let mut recomputed = f.clone();
            Ipv4Packet::new_unchecked(&mut recomputed[14..]).fill_checksum();
            IcmpPacket::new_unchecked(&mut recomputed[34..]).fill_checksum();
            assert_eq!(f, recomputed);
            let icmp = IcmpPacket::new_checked(ip.payload()).unwrap();
            assert_eq!((icmp.msg_type(), icmp.ident(), icmp.seq_no(), icmp.data()), (ICMP_ECHO_REPLY, 0x1234, 7, data));
        }
    }

    #[test]
    fn rejections() {
        let mut f = echo_request(b"x", 64);
        f[40] ^= 1; // ICMP data byte
        assert_eq!(answer_echo(&mut f), Err(DropReason::IcmpBadChecksum));
        let mut f = echo_request(b"", 64);
        // Shorten the IP total length to 4 ICMP bytes (checksum still fine for the header).
        let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
        ip.set_total_len(24);
        ip.fill_checksum();
        assert_eq!(answer_echo(&mut f), Err(DropReason::IcmpMalformed));
        let mut f = echo_request(b"", 64);
        let mut icmp = IcmpPacket::new_unchecked(&mut f[34..]);
        icmp.set_msg_type(ICMP_ECHO_REPLY);
        icmp.fill_checksum();
        assert_eq!(answer_echo(&mut f), Err(DropReason::IcmpUnhandled));
    }
}
