//! Direct routing (LVS `-g`, "gatewaying").
//!
//! # Contract
//!
//! Nothing changes at L3 or L4: the packet keeps the client as source and the VIP and
//! virtual port as destination, and the real server — which holds the VIP on a loopback
//! or dummy interface and does not answer ARP for it — accepts it as its own and replies
//! straight to the client (through `lab-router` in the lab), never through rvs. Only the
//! Ethernet destination (the real server's MAC) and source (ours) change, and the
//! neighbour layer writes those, like LVS's `ip_vs_dr_xmit`, which only re-routes the skb.
//!
//! Consequences the control plane enforces, not this module:
//! * no port mapping: the real server must listen on the virtual port (ipvsadm ignores the
//!   port given with `-g`);
//! * the real server must be on a directly attached network (one L2 hop);
//! * no checksum work, so DR is the cheapest mode.

use rvs_drivers::PacketBuf;

use super::{l4, XmitError};

/// Validates a frame for DR forwarding: Ethernet II carrying a well-formed IPv4 header
/// ([`XmitError::NotIpv4`], [`XmitError::Truncated`], [`XmitError::BadLength`] otherwise).
/// Changes nothing — see the module docs: DR rewrites only the MACs, which the caller's
/// neighbour layer does.
///
/// Any IP protocol and fragments are accepted: nothing past the IPv4 header is read.
pub fn inbound<B: PacketBuf>(buf: &B) -> Result<(), XmitError> {
    l4::parse_ipv4(buf.data()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_drivers::mem::MemBuf;

    #[test]
    fn accepts_ipv4_and_changes_nothing() {
        let mut f = vec![0u8; 14 + 20];
        f[12] = 0x08;
        f[14] = 0x45;
        f[17] = 20;
        let buf = MemBuf::from_frame(&f);
        assert_eq!(inbound(&buf), Ok(()));
        assert_eq!(buf.data(), &f[..]);
    }

    #[test]
    fn rejects_non_ipv4() {
        let mut f = vec![0u8; 14 + 20];
        f[12] = 0x86;
        f[13] = 0xdd;
        assert_eq!(inbound(&MemBuf::from_frame(&f)), Err(XmitError::NotIpv4));
        f[12] = 0x08;
        f[13] = 0x00;
        f[14] = 0x65;
        assert_eq!(inbound(&MemBuf::from_frame(&f)), Err(XmitError::NotIpv4));
        assert_eq!(inbound(&MemBuf::from_frame(&f[..20])), Err(XmitError::Truncated));
        assert_eq!(inbound(&MemBuf::from_frame(&f[..10])), Err(XmitError::Truncated));
    }
}
