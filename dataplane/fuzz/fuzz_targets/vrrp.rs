//! The VRRP advert view on arbitrary bytes: after `new_checked` no getter panics, the
//! address iterator yields exactly `count` addresses, and what parses re-emits to a packet
//! that parses back to the same advert with a checksum that verifies.
//!
//! Input: one byte choosing the family (even: IPv4, odd: IPv6), then the VRRP message.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use rvs_dataplane::wire::vrrp::{Family, VrrpPacket, VrrpRepr};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, msg)) = data.split_first() else { return };
    let (family, src, dst) = if sel % 2 == 0 {
        (Family::V4, IpAddr::V4(Ipv4Addr::new(10, 10, 0, 1)), IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18)))
    } else {
        (Family::V6, IpAddr::V6(Ipv6Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12)))
    };
    let Ok(p) = VrrpPacket::new_checked(msg, family) else { return };
    let _ = (p.version(), p.kind(), p.vrid(), p.priority(), p.interval_cs(), p.auth_type(), p.checksum());
    let _ = (p.auth_data(), p.verify_checksum(src, dst));
    assert!(p.message_len() <= msg.len());
    assert_eq!(p.addresses().count(), usize::from(p.count()));
    let r = VrrpRepr::parse(&p);
    let mut out = vec![0; r.buffer_len()];
    assert!(r.emit(&mut out, src, dst));
    let q = VrrpPacket::new_checked(&out[..], family).expect("an emitted advert parses");
    assert!(q.verify_checksum(src, dst));
    assert_eq!(VrrpRepr::parse(&q), r);
});
