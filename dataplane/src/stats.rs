//! Drop reasons and per-worker counters.
//!
//! Contract:
//! * Every packet a worker receives or originates ends in exactly one of: transmitted
//!   (`tx_packets`), absorbed by the stack (`rx_consumed`, e.g. an ARP reply that was
//!   learned), dropped with exactly one [`DropReason`], or still parked in the neighbour
//!   table waiting for ARP resolution, or held in the fragment table (`frag_held`) until
//!   its datagram's first fragment comes. So at any time, after a poll has flushed its TX
//!   buffers:
//!
//!   `rx_packets + local_originated + redirected_in ==
//!    tx_packets + rx_consumed + Σ drops + parked + frag_held + redirected_out`
//!
//!   (`local_originated` counts attempts to build ARP requests and gratuitous ARP, the
//!   prober's packets and the VRRP thread's frames taken for sending, and the extra outer
//!   fragments of an IPIP packet split for the MTU (`tunnel_fragments`) and of a NAT64
//!   reply cut into IPv6 fragments (`nat64_fragments`); an attempt that
//!   finds the pool empty is the `no_mbuf` drop. A probe reply punted to the prober, and
//!   a VRRP advert handed to the control plane, are `rx_consumed`.)
//! * A [`WorkerCounters`] is written by its worker only and read by anyone (the control
//!   plane holds an `Arc` of it). Values are relaxed: a reader may see one counter a few
//!   packets ahead of another, never a torn or decreasing value.
//! * Counters are never reset by the data path; "zero the counters" (`ipvsadm -Z`) is a
//!   reader keeping a baseline snapshot and subtracting it.
//!
//! As STYLE.md asks: drop reasons index the counter array through the enum, never
//! through magic numbers (Katran's mistake), and every drop says *why*.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Declares [`DropReason`] with its snake_case name and one-line help in one table, so
/// the three can never drift apart.
macro_rules! drop_reasons {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, $help:literal; )*) => {
        /// Why a worker dropped a packet. Each value indexes one counter in
        /// [`WorkerCounters`]; [`DropReason::name`] is the stable external name (REST
        /// `stats`, Prometheus `rvs_drops_total{reason=...}`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(usize)]
        pub enum DropReason {
            $( $(#[$doc])* $variant, )*
        }

        impl DropReason {
            /// Every reason, in counter-index order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant),*];
            /// Number of reasons (the length of the counter array).
            pub const COUNT: usize = Self::ALL.len();

            /// Stable snake_case name, e.g. `"ip_bad_checksum"`.
            pub const fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }

            /// One-line description for operators (Prometheus `# HELP`, `rvsadm --stats`).
            pub const fn help(self) -> &'static str {
                match self { $(DropReason::$variant => $help,)* }
            }
        }
    };
}

drop_reasons! {
    /// Frame shorter than an Ethernet header.
    EthTruncated => "eth_truncated", "frame shorter than the 14-byte Ethernet header";
    /// Ethertype neither IPv4, ARP nor IPv6 (VLAN-tagged, anything else).
    EthUnknownType => "eth_unknown_type", "ethertype not IPv4, ARP or IPv6 (VLAN tag, other)";
    /// Destination MAC neither the port's nor (for ARP) broadcast; multicast included.
    EthNotForUs => "eth_not_for_us", "destination MAC not the port's (or broadcast for ARP); multicast included";
    /// Source MAC is multicast or broadcast, which no station may send from, or our own
    /// (a frame of ours looped back).
    EthBadSource => "eth_bad_source", "source MAC is multicast, broadcast or the port's own (looped back)";
    /// ARP packet truncated, not Ethernet/IPv4, unknown operation or non-unicast sender MAC.
    ArpMalformed => "arp_malformed", "ARP truncated, not Ethernet/IPv4, unknown operation or non-unicast sender MAC";
    /// ARP whose target is not one of our addresses on the receiving port.
    ArpNotForUs => "arp_not_for_us", "ARP target not one of our addresses on this port (sender still merged, RFC 826)";
    /// Frame shorter than an IPv4 header.
    IpTruncated => "ip_truncated", "IPv4 packet shorter than its header";
    /// IP version field not 4.
    IpBadVersion => "ip_bad_version", "IP version field is not 4";
    /// IHL below 5 or beyond the packet.
    IpBadIhl => "ip_bad_ihl", "IPv4 header length below 20 bytes or beyond the packet";
    /// Total length below the header length or beyond the frame.
    IpBadLength => "ip_bad_length", "IPv4 total length below the header length or beyond the frame";
    /// Header checksum wrong (software check, or the NIC's verdict).
    IpBadChecksum => "ip_bad_checksum", "IPv4 header checksum wrong";
    /// An IPv4 fragment rvs does not forward: of a protocol other than TCP/UDP, to one of
    /// our port or floating addresses (the lite stack does not reassemble), without an L4
    /// engine, of a TCP SYN or a SYN-proxied connection, or a later fragment of a flow
    /// without a connection (its first fragment was refused). Fragments of TCP/UDP flows
    /// are otherwise followed by the worker's fragment table (`crate::frag`, `frag_*`
    /// below).
    IpFragment => "ip_fragment", "IPv4 fragment not forwarded (not TCP/UDP, to a port address, SYN, SYN proxy, or flow without connection)";
    /// A fragment overlapping one already received, or of a train that had an overlap
    /// (RFC 5722: the whole train goes).
    FragOverlap => "frag_overlap", "IP fragment overlaps another of its datagram (whole train dropped)";
    /// A fragment whose offset plus length passes 65535 bytes.
    FragOversized => "frag_oversized", "IP fragment ends beyond 65535 bytes";
    /// A fragment inconsistent with its train: a second end, data past the end, empty, a
    /// non-last fragment not a multiple of 8 bytes, or a first fragment too short to hold
    /// its TCP/UDP header (the tiny-fragment attack of RFC 1858).
    FragInconsistent => "frag_inconsistent", "IP fragment inconsistent with its train, or first fragment without a whole L4 header";
    /// More fragments in one train than the fragment table records (`frag::MAX_FRAGS_PER_TRAIN`).
    FragTooMany => "frag_too_many", "too many fragments in one IP datagram";
    /// A fragment held for its train's first fragment, which never came in time.
    FragTimeout => "frag_timeout", "IP fragment held for its first fragment, which never came";
    /// No room in the fragment table: its bucket is full of live trains, or the bound on
    /// held fragments (table or train) is reached.
    FragTableFull => "frag_table_full", "fragment table full (trains or held fragments)";
    /// Source address that no host may send from: multicast, broadcast, 0.0.0.0/8,
    /// loopback, or one of our own addresses.
    IpBadSource => "ip_bad_source", "IPv4 source multicast, broadcast, 0.0.0.0/8, loopback or one of ours";
    /// Destination not one of our addresses (rvs does not route transit traffic).
    IpNotForUs => "ip_not_for_us", "IPv4 destination not one of our addresses or VIPs (no forwarding)";
    /// IP protocol other than ICMP, TCP, UDP to one of our addresses.
    IpUnknownProtocol => "ip_unknown_protocol", "IP protocol other than ICMP, TCP or UDP to one of our addresses";
    /// ICMP message shorter than its header.
    IcmpMalformed => "icmp_malformed", "ICMP message shorter than its 8-byte header";
    /// ICMP checksum wrong.
    IcmpBadChecksum => "icmp_bad_checksum", "ICMP checksum wrong";
    /// ICMP type the lite stack does not answer (anything but echo request).
    IcmpUnhandled => "icmp_unhandled", "ICMP type not answered (only echo request is), or an error about a packet neither TCP nor UDP";
    // IPv6 (the lite stack of `l2l3::nd`): the header and extension-header refusals
    // carry the names of `wire::Ipv6Error::drop_reason_name`, the ICMPv6 and neighbour
    // discovery ones those of `wire::Icmpv6Error::drop_reason_name`.
    /// IPv6 packet shorter than its 40-byte header.
    Ip6Truncated => "ip6_truncated", "IPv6 packet shorter than its 40-byte header";
    /// IPv6 frame whose version field is not 6.
    Ip6BadVersion => "ip6_bad_version", "IPv6 frame whose IP version field is not 6";
    /// IPv6 payload length beyond the frame.
    Ip6BadLength => "ip6_bad_length", "IPv6 payload length beyond the frame";
    /// An extension header runs past the payload.
    Ip6ExtTruncated => "ip6_ext_truncated", "IPv6 extension header runs past the payload";
    /// More extension headers than the bounded walk steps over.
    Ip6ExtTooMany => "ip6_ext_too_many", "more IPv6 extension headers than rvs walks (8)";
    /// Extension headers longer in total than the bounded walk accepts.
    Ip6ExtTooLong => "ip6_ext_too_long", "IPv6 extension headers longer than rvs walks (512 bytes)";
    /// Hop-by-hop options header not right after the fixed header (RFC 8200 §4.1).
    Ip6HopByHopNotFirst => "ip6_hop_by_hop_not_first", "IPv6 hop-by-hop options header not first";
    /// Routing header with segments left (rvs routes nothing on).
    Ip6RoutingSegmentsLeft => "ip6_routing_segments_left", "IPv6 routing header with segments left";
    /// Two fragment headers in one chain.
    Ip6DuplicateFragment => "ip6_duplicate_fragment", "IPv6 chain with two fragment headers";
    /// ESP: encrypted, nothing rvs can read.
    Ip6Esp => "ip6_esp", "IPv6 ESP payload (encrypted)";
    /// The chain ends with "no next header".
    Ip6NoNextHeader => "ip6_no_next_header", "IPv6 chain ends with no next header";
    /// An extension header rvs does not walk (mobility, HIP, shim6, experimental).
    Ip6UnknownExtension => "ip6_unknown_extension", "IPv6 extension header rvs does not walk";
    /// IPv6 source that no host sends from (multicast, or unspecified outside duplicate
    /// address detection) or one of our own addresses.
    Ip6BadSource => "ip6_bad_source", "IPv6 source multicast, unspecified (outside DAD) or one of ours";
    /// IPv6 destination not one of our addresses, nor (at a multicast MAC) all-nodes or
    /// the solicited-node group of one of them, nor a NAT66 reply of a known connection.
    Ip6NotForUs => "ip6_not_for_us", "IPv6 destination not one of our addresses, groups or VIPs, nor a NAT66 reply";
    /// IPv6 to one of our port addresses that is not ICMPv6 (TCP, UDP, fragments): the
    /// lite stack answers only ICMPv6 there.
    Ip6NoService => "ip6_no_service", "IPv6 to one of our port addresses other than ICMPv6";
    /// An IPv6 fragment rvs does not forward (the IPv6 `ip_fragment`): to a VIP or not
    /// ours, whose fragment header names a protocol other than TCP/UDP, of a TCP SYN, a
    /// later fragment of a flow without a connection (its first fragment was refused), or
    /// of a connection in a mode without a fragment rule. Fragments of TCP/UDP flows are
    /// otherwise followed by the worker's fragment table (`frag_*` reasons).
    Ip6Fragment => "ip6_fragment", "IPv6 fragment not forwarded (not TCP/UDP, a SYN, a flow without connection or SYN-proxied, a DR or tunnel reply)";
    /// A NAT66 packet whose hop limit is 1 or 0: it may not be forwarded (RFC 8200 §3);
    /// an ICMPv6 time exceeded goes back to its sender (`icmp6_errors_sent`), within the
    /// ICMP rate limits, unless RFC 4443 §2.4 (e) forbids one (a later fragment, an
    /// ICMPv6 error, a multicast destination).
    Ip6HopLimit => "ip6_hop_limit", "IPv6 hop limit 1 or 0 on a packet rvs routes (NAT66)";
    /// A NAT66 packet larger than the egress port's MTU: IPv6 routers never fragment
    /// (RFC 8200 §5); an ICMPv6 packet too big with the MTU goes back to its sender, as
    /// for the hop limit. Also a NAT64 reply with DF set whose translation passes the
    /// client port's MTU (the server gets a fragmentation needed; with DF clear it is
    /// cut into IPv6 fragments instead), and one the worker could not cut for that MTU.
    Ip6TooBig => "ip6_too_big", "IPv6 packet over the egress port's MTU (NAT66; packet too big sent back)";
    /// The server's first fragment of a fragmented UDP datagram without a checksum (0),
    /// to a NAT64 flow: IPv6 needs the checksum, which covers fragments rvs does not
    /// hold (RFC 7915 §4.5 lets a translator drop these; an unfragmented one gets its
    /// checksum computed).
    Nat64UdpNoChecksum => "nat64_udp_no_checksum", "NAT64 reply: first fragment of a UDP datagram without a checksum (IPv6 needs one)";
    /// ICMPv6 message shorter than its header.
    Icmp6Malformed => "icmp6_malformed", "ICMPv6 message shorter than its 8-byte header";
    /// ICMPv6 checksum (over the pseudo-header) wrong.
    Icmp6BadChecksum => "icmp6_bad_checksum", "ICMPv6 checksum wrong";
    /// ICMPv6 type the lite stack does not answer (echo replies, router and multicast
    /// listener messages), an echo request with extension headers, or an error about no
    /// flow of rvs's (no connection, or quoting ICMPv6 or another protocol than TCP/UDP).
    Icmp6Unhandled => "icmp6_unhandled", "ICMPv6 not answered (only echo requests without extension headers, NS, NA and errors about a flow are)";
    /// An ICMPv6 message rvs meant to send did not fit the buffer, or an ICMPv6 error
    /// RFC 4443 §2.4 (e) forbids (about an ICMPv6 error, a non-first fragment, to or from
    /// a multicast address); also a packet too big about rvs's tunnel packet not passed
    /// on to the client (over the ICMP rate limits, or no unicast client quoted).
    Icmp6NotSent => "icmp6_not_sent", "ICMPv6 answer or error not sent (no room, or an error RFC 4443 forbids)";
    /// Neighbour discovery message not received with hop limit 255.
    NdBadHopLimit => "nd_bad_hop_limit", "neighbour discovery message with hop limit other than 255";
    /// NS or NA with a code other than 0.
    NdBadCode => "nd_bad_code", "neighbour discovery message with a code other than 0";
    /// NS or NA shorter than 24 bytes.
    NdTruncated => "nd_truncated", "neighbour solicitation or advertisement shorter than 24 bytes";
    /// NS or NA whose target is multicast.
    NdTargetMulticast => "nd_target_multicast", "neighbour discovery target address is multicast";
    /// ND option of length zero (RFC 4861 §4.6).
    NdZeroLengthOption => "nd_zero_length_option", "neighbour discovery option with length zero";
    /// ND option past the message, or a link-layer option not 8 bytes long.
    NdBadOption => "nd_bad_option", "neighbour discovery option truncated or of a bad length";
    /// More ND options than rvs reads.
    NdTooManyOptions => "nd_too_many_options", "more neighbour discovery options than rvs reads (8)";
    /// DAD solicitation not to a solicited-node group or with a source link-layer option.
    NdBadDad => "nd_bad_dad", "DAD solicitation not to a solicited-node address or with a source link-layer address";
    /// Multicast NA with the solicited flag.
    NdSolicitedMulticast => "nd_solicited_multicast", "multicast neighbour advertisement with the solicited flag";
    /// NS or NA from a multicast source.
    NdBadSource => "nd_bad_source", "neighbour discovery message from a multicast source";
    /// ICMPv6 to a multicast group of ours that is not an NS or NA.
    NdNotNeighbor => "nd_not_neighbor", "ICMPv6 to all-nodes or a solicited-node group that is not an NS or NA";
    /// NS whose target is not one of our addresses on the receiving port (the sender
    /// is still merged, as ARP's is).
    NdNotForUs => "nd_not_for_us", "neighbour solicitation for an address not ours on this port";
    /// NS from, or NA for, one of our own addresses sent by another station: a spoof or
    /// a duplicate address; never learned, never answered.
    NdSpoofedOwn => "nd_spoofed_own", "NS from or NA for one of our own IPv6 addresses by another station (never learned)";
    /// TCP/UDP to one of our addresses or a VIP for which no service forwards.
    L4NoService => "l4_no_service", "TCP/UDP to one of our addresses or a VIP with no service";
    /// TCP or UDP header truncated or with an inconsistent length field.
    L4Malformed => "l4_malformed", "TCP or UDP header truncated or with a bad length field";
    /// A TCP segment other than a SYN for a flow with no connection (IPVS creates
    /// connections from SYNs only).
    TcpNoConn => "tcp_no_conn", "TCP segment other than a SYN for no known connection";
    /// An ACK for no connection on a SYN-proxy service whose acknowledgement is no valid
    /// SYN cookie (forged, another flow's, or older than the cookie lifetime).
    SynProxyBadCookie => "syn_proxy_bad_cookie", "ACK for no connection whose SYN cookie is invalid or expired (SYN proxy)";
    /// A client segment of a SYN-proxied connection whose server has not answered yet
    /// (the client's window is still closed; typically a zero-window probe).
    SynProxyPending => "syn_proxy_pending", "client segment before the real server answered the proxied SYN";
    /// A packet to a Full-NAT local address that matches no connection.
    ReplyNoConn => "reply_no_conn", "packet to a Full-NAT local address matching no connection";
    /// A new flow from a client the service's `allow`/`deny` lists refuse (existing
    /// connections are never checked).
    AclDenied => "acl_denied", "new flow from a client the service's allow/deny prefixes refuse";
    /// A new flow for a service whose connections (all workers) reached its `maxconn`.
    ServiceMaxconn => "service_maxconn", "new flow refused: the service's connections reached its maxconn";
    /// A new flow from a client over the service's `client_rate` (its token bucket on
    /// this worker is empty).
    ClientRateLimited => "client_rate_limited", "new flow refused: the client is over the service's client_rate on this worker";
    /// The scheduler found no server: none configured, all weight 0, or all overloaded.
    NoServer => "no_server", "no real server available (none, all weight 0, or all over their upper threshold)";
    /// This worker's Full-NAT local addresses and ports are all in use.
    NoLocalPort => "no_local_port", "Full-NAT local address ports exhausted on this worker";
    /// The connection table is full: the new flow is dropped, existing flows go on.
    ConnTableFull => "conn_table_full", "connection table full (new flow dropped, existing flows untouched)";
    /// A new flow whose inbound or reply tuple another connection already has (e.g. a
    /// NAT client reusing a port still held by a closing connection to another server).
    ConnKeyClash => "conn_key_clash", "new flow's tuple already used by another connection";
    /// TTL expired while forwarding; an ICMP time exceeded goes back in its place.
    TtlExceeded => "ttl_exceeded", "TTL expired while forwarding (ICMP time exceeded sent back)";
    /// An IPIP packet over the egress MTU without DF: rvs fragments the outer packet of
    /// an inner fragment only (the fragment path); other packets, and outer packets that
    /// would need more than `tunnel::MAX_OUTER_FRAGMENTS` pieces, are dropped here.
    TunnelTooBig => "tunnel_too_big", "IPIP packet over the MTU with DF clear (only inner fragments are fragmented)";
    /// An ICMP error rvs meant to send could not be built (no error about an error, a
    /// non-unicast source, no room).
    IcmpNotSent => "icmp_not_sent", "ICMP error not sent (about an ICMP error, non-unicast source, or no room)";
    /// A packet of a connection whose real server was deleted, with
    /// `dataplane.expire_nodest_conn = true` (IPVS's `expire_nodest_conn`): the
    /// connection is removed and the packet dropped, so the client retries on a live server.
    ConnServerRemoved => "conn_server_removed", "connection's real server was deleted (expire_nodest_conn): connection removed";
    /// The owner worker's redirect ring was full.
    RedirectFull => "redirect_full", "redirect ring to the owning worker full";
    /// A redirected packet that its receiver would redirect again (the two workers
    /// disagree on ownership, e.g. across a configuration change); dropped to avoid a loop.
    RedirectLoop => "redirect_loop", "redirected packet not owned by its receiver either";
    /// No route to the destination of a packet we originate or answer.
    NoRoute => "no_route", "no route to the destination";
    /// Neighbour not resolved yet and its pending queue already full (newest dropped).
    NeighPendingFull => "neigh_pending_full", "waiting for ARP and the neighbour's pending queue was full";
    /// Neighbour never answered ARP; its pending packets were dropped.
    NeighUnresolved => "neigh_unresolved", "neighbour did not answer ARP; pending packet dropped";
    /// The neighbour table was full, so no entry could be created for the next hop.
    NeighTableFull => "neigh_table_full", "neighbour table full; next hop could not be resolved";
    /// Packet buffer pool empty when the worker needed a new packet.
    NoMbuf => "no_mbuf", "packet pool empty when building a packet (ARP request, gratuitous ARP, health probe, VRRP frame)";
    /// The NIC's TX ring refused the packet.
    TxFull => "tx_full", "NIC transmit ring full";
    /// A health probe's reply found no free buffer in the punt ring to the prober.
    ProbeRingFull => "probe_ring_full", "health probe reply dropped: punt ring to the prober full";
    /// A health probe's packet (either way) longer than a punt buffer.
    ProbeTooLong => "probe_too_long", "health probe packet longer than a punt buffer (2048 bytes)";
    /// The prober handed the data path something that is not an IPv4 packet from a port address.
    ProbeBadPacket => "probe_bad_packet", "prober's packet not IPv4 from a port's own address";
    /// Traffic for an address whose VRRP instance is backup on this node: ARP requests,
    /// ICMP echo, TCP/UDP to a VIP, Full-NAT replies to a local address (the master
    /// answers them; a backup counts what reaches it anyway).
    HaBackup => "ha_backup", "traffic, ARP or neighbour discovery for an address whose VRRP instance is backup here";
    /// A received VRRP advert found no free buffer in the ring to the control plane.
    HaRingFull => "ha_ring_full", "VRRP advert dropped: ring to the control plane full";
    /// A VRRP packet longer than a ring buffer, or a control-plane frame longer than a
    /// packet buffer.
    HaTooLong => "ha_too_long", "VRRP packet or HA frame longer than a ring buffer (2048 bytes) or packet buffer";
    /// The control plane queued a frame for a port that does not exist.
    HaBadPort => "ha_bad_port", "HA frame from the control plane tagged with a port that does not exist";
    /// A frame for a port's kernel interface over the port's `exception_rate` (a flood at
    /// the port address is cut here, before the kernel).
    ExceptionRateLimited => "exception_rate_limited", "frame for the port's kernel interface over its exception_rate";
    /// A frame from a port's kernel interface over the port's `exception_rate`.
    ExceptionOutRateLimited => "exception_out_rate_limited", "frame from the port's kernel interface over its exception_rate";
    /// The kernel interface's queue refused a frame for the kernel.
    ExceptionRingFull => "exception_ring_full", "frame for the kernel refused by the kernel interface's queue";
    /// A frame from the kernel interface shorter than an Ethernet header or not from the
    /// port's MAC.
    ExceptionBadFrame => "exception_bad_frame", "frame from the kernel interface without an Ethernet header or the port's source MAC";
}

impl DropReason {
    /// The reason with counter index `i`, if any.
    pub fn from_index(i: usize) -> Option<DropReason> {
        Self::ALL.get(i).copied()
    }

    /// The counter index of this reason.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One counter written by a single thread and read by any.
///
/// `add` is a relaxed load followed by a relaxed store, not `fetch_add`: only the owning
/// worker writes, so no increment can be lost, and a plain store compiles to an ordinary
/// `mov` where `fetch_add` would be a locked read-modify-write (`lock xadd` on x86) that
/// costs tens of cycles per packet. The atomic type is still needed so that the control
/// plane's concurrent reads are defined behaviour and never torn.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Call only from the owning worker (see the type's docs).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Sets the value (for gauges). Call only from the owning worker.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current value (relaxed).
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One counter per [`DropReason`] (a newtype because `Default` is derived for arrays of
/// at most 32 elements only).
#[derive(Debug)]
struct DropCounters([Counter; DropReason::COUNT]);

impl Default for DropCounters {
    fn default() -> Self {
        DropCounters(std::array::from_fn(|_| Counter::default()))
    }
}

/// Whether a declared value only grows (a Prometheus counter) or goes up and down (a
/// gauge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterKind {
    /// Only grows (until the process restarts); Prometheus `counter`, name ends in `_total`.
    Counter,
    /// A level (e.g. connections now); Prometheus `gauge`.
    Gauge,
}

/// One declared counter of a snapshot type `S`: its external names, its help text and how
/// to read it. The REST JSON, `/metrics` and the tests iterate these tables instead of
/// naming counters one by one, so a counter declared once appears everywhere.
#[derive(Debug)]
pub struct CounterDef<S> {
    /// The JSON key (`/v1/status`), which is also the Rust field name.
    pub name: &'static str,
    /// The Prometheus family name (`rvs_…`).
    pub metric: &'static str,
    /// Counter or gauge.
    pub kind: CounterKind,
    /// One line for operators (Prometheus `# HELP`).
    pub help: &'static str,
    /// Reads the value from a snapshot.
    pub get: fn(&S) -> u64,
}

/// Declares every per-worker counter once: its field (the JSON key), its kind, its
/// Prometheus name and its help. From this table come [`WorkerCounters`],
/// [`CountersSnapshot`] (fields, [`WorkerCounters::snapshot`],
/// [`CountersSnapshot::accumulate`], serde) and [`CountersSnapshot::COUNTERS`], which the
/// control plane's `/v1/status` and `/metrics` are driven from. Adding a counter is one
/// line here (plus the code that counts it).
macro_rules! worker_counters {
    ($( $(#[$doc:meta])* $field:ident: $kind:ident $metric:literal, $help:literal; )*) => {
        /// One worker's counters, shared with the control plane through an `Arc`. Only the
        /// owning worker writes (see [`Counter`]); cache-line aligned so that two workers'
        /// counters never share a line.
        #[derive(Debug, Default)]
        #[repr(align(64))]
        pub struct WorkerCounters {
            drops: DropCounters,
            $( #[doc = $help] $(#[$doc])* pub $field: Counter, )*
            /// Processing time of each non-empty poll (see [`crate::latency`]).
            pub burst_latency: crate::latency::BurstLatency,
        }

        /// A point-in-time copy of [`WorkerCounters`], serialisable for the REST API (each
        /// counter under its field name). `drops` maps every [`DropReason::name`] (all of
        /// them, zeros included) to its count.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct CountersSnapshot {
            $( #[doc = concat!("See [`WorkerCounters::", stringify!($field), "`].")] pub $field: u64, )*
            /// Drop counts by [`DropReason::name`].
            #[serde(deserialize_with = "drop_names")]
            pub drops: BTreeMap<&'static str, u64>,
        }

        impl CountersSnapshot {
            /// Every declared counter, in declaration order (the order of `/metrics`).
            pub const COUNTERS: &'static [CounterDef<CountersSnapshot>] = &[
                $( CounterDef {
                    name: stringify!($field),
                    metric: $metric,
                    kind: CounterKind::$kind,
                    help: $help,
                    get: |s| s.$field,
                }, )*
            ];

            /// Adds `other` into `self` (to sum the workers of a daemon).
            pub fn accumulate(&mut self, other: &CountersSnapshot) {
                $( self.$field += other.$field; )*
                for (k, v) in &other.drops {
                    *self.drops.entry(k).or_insert(0) += v;
                }
            }
        }

        impl WorkerCounters {
            /// A plain copy for the control plane (REST `stats`, `/metrics`).
            pub fn snapshot(&self) -> CountersSnapshot {
                CountersSnapshot {
                    $( $field: self.$field.get(), )*
                    drops: DropReason::ALL.iter().map(|&r| (r.name(), self.drops(r))).collect(),
                }
            }

            /// The counter declared as `name` (a [`CounterDef::name`]), if any.
            pub fn by_name(&self, name: &str) -> Option<&Counter> {
                match name {
                    $( stringify!($field) => Some(&self.$field), )*
                    _ => None,
                }
            }
        }
    };
}

worker_counters! {
    rx_packets: Counter "rvs_worker_rx_packets_total", "Frames the worker received.";
    tx_packets: Counter "rvs_worker_tx_packets_total", "Frames the worker sent.";
    /// Ethernet header included, FCS excluded.
    rx_bytes: Counter "rvs_worker_rx_bytes_total", "Bytes the worker received.";
    /// Bytes the NIC accepted for transmission.
    tx_bytes: Counter "rvs_worker_tx_bytes_total", "Bytes the worker sent.";
    polls: Counter "rvs_worker_polls_total", "Poll loop passes.";
    idle_sleeps: Counter "rvs_worker_idle_sleeps_total", "Times the idle policy put the worker to sleep.";
    conns_created: Counter "rvs_worker_connections_created_total", "Connections the worker created.";
    conns_reused: Counter "rvs_worker_connections_reused_total", "Finished TCP connections (TIME_WAIT, CLOSE, or whose real server was removed) replaced by a new SYN on the same client tuple, which was scheduled anew.";
    /// Only on services with `unknown_flow = "schedule"` (flows moved here by ECMP).
    conns_unknown_scheduled: Counter "rvs_worker_connections_unknown_scheduled_total", "Connections created from a TCP segment other than a SYN of an unknown flow (unknown_flow = \"schedule\").";
    conns_displaced: Counter "rvs_worker_connections_displaced_total", "Closing TCP connections removed to make room for a new SYN with the same reply tuple (NAT, two services on one server ip:port).";
    redirected_out: Counter "rvs_worker_redirected_out_total", "Packets handed to the worker owning their flow.";
    /// Through the redirect rings.
    redirected_in: Counter "rvs_worker_redirected_in_total", "Packets received from other workers.";
    /// For our addresses, VIPs and local addresses.
    arp_replies_sent: Counter "rvs_worker_arp_replies_sent_total", "ARP replies built.";
    /// To resolve a next hop.
    arp_requests_sent: Counter "rvs_worker_arp_requests_sent_total", "ARP requests built.";
    gratuitous_arps_sent: Counter "rvs_worker_gratuitous_arps_sent_total", "Gratuitous ARP announcements built.";
    icmp_echo_replies: Counter "rvs_worker_icmp_echo_replies_total", "ICMP echo replies built.";
    icmp6_echo_replies: Counter "rvs_worker_icmp6_echo_replies_total", "ICMPv6 echo replies built.";
    nd_advertisements_sent: Counter "rvs_worker_nd_advertisements_sent_total", "Neighbour advertisements built (answers to solicitations and unsolicited announcements).";
    nd_solicitations_sent: Counter "rvs_worker_nd_solicitations_sent_total", "Neighbour solicitations built for unresolved IPv6 neighbours.";
    icmp_errors_sent: Counter "rvs_worker_icmp_errors_sent_total", "ICMP errors built (time exceeded, fragmentation needed).";
    /// The packet that would have caused it is still counted by its drop reason.
    icmp_errors_limited: Counter "rvs_worker_icmp_errors_limited_total", "ICMP errors not sent: over the rate limits (per destination 1/s, bursts of 6; 1000/s in total, bursts of 50).";
    /// Sent as the packet's replacement, routed to the offending packet's sender
    /// (crate::xmit::icmp6_err).
    icmp6_errors_sent: Counter "rvs_worker_icmp6_errors_sent_total", "ICMPv6 errors built (time exceeded, packet too big).";
    /// The offending packet is dropped all the same; the limits are IPv4's, shared. Also
    /// a tunnel's packet too big not passed on to the client (dropped as `icmp6_not_sent`).
    icmp6_errors_limited: Counter "rvs_worker_icmp6_errors_limited_total", "ICMPv6 errors not sent: over the ICMP rate limits (shared with IPv4).";
    /// IPv4 and IPv6 (crate::xmit::icmp_err, crate::xmit::icmp6_err).
    icmp_errors_translated: Counter "rvs_worker_icmp_errors_translated_total", "ICMP and ICMPv6 errors about a flow translated and forwarded.";
    toa_skipped: Counter "rvs_worker_toa_skipped_total", "Full-NAT TCP packets with no room for the TOA option.";
    /// Only with the port's RSS key and table (`LbConfig::rss`): the reply of such a
    /// connection reaches its owner through the redirect ring.
    lport_rss_misses: Counter "rvs_worker_lport_rss_misses_total", "Full-NAT local ports allocated without finding one whose reply the NIC hashes to this worker's queue.";
    /// ARP replies, learned.
    rx_consumed: Counter "rvs_worker_rx_consumed_total", "Received frames absorbed by the stack without a reply.";
    /// Includes attempts that failed with `no_mbuf`.
    local_originated: Counter "rvs_worker_local_originated_total", "Packets the worker tried to originate (ARP requests, gratuitous ARP, health probes, VRRP frames).";
    neigh_updates_received: Counter "rvs_worker_neigh_updates_received_total", "Neighbour updates received from peer workers and applied.";
    /// The peer learns the neighbour later, from its own ARP resolution.
    neigh_updates_lost: Counter "rvs_worker_neigh_updates_lost_total", "Neighbour updates not sent to a peer whose inbox was full.";
    /// Punted to the control plane's prober (also counted in `rx_consumed`).
    probe_rx: Counter "rvs_worker_probe_rx_total", "Health probe replies punted to the prober.";
    /// Also counted in `local_originated`.
    probe_tx: Counter "rvs_worker_probe_tx_total", "Health probe packets from the prober routed out.";
    /// Copied to the control plane's VRRP ring (also counted in `rx_consumed`).
    ha_rx: Counter "rvs_worker_ha_rx_total", "VRRP adverts received and handed to the control plane.";
    /// Adverts and gratuitous ARP built by the VRRP thread; also counted in `local_originated`.
    ha_tx: Counter "rvs_worker_ha_tx_total", "Frames of the control plane's VRRP thread sent.";
    /// Kernel exception path (crate::exception): queued for a port's kernel interface.
    exception_to_kernel: Counter "rvs_worker_exception_to_kernel_total", "Frames for a port's own address handed to its kernel interface.";
    /// Also counted in `rx_packets`.
    exception_from_kernel: Counter "rvs_worker_exception_from_kernel_total", "Frames from a port's kernel interface queued out of the port.";
    /// Connection sync (`crate::sync`): created, changed state, refreshed or dumped.
    sync_tx: Counter "rvs_worker_sync_tx_total", "Connection sync records queued for the peer.";
    /// The peer learns the connection from a later change, refresh or dump.
    sync_lost: Counter "rvs_worker_sync_lost_total", "Connection sync records not queued because the ring to the control plane was full.";
    sync_installed: Counter "rvs_worker_sync_installed_total", "Connections created from the peer's sync records.";
    sync_updated: Counter "rvs_worker_sync_updated_total", "Connections updated from the peer's sync records.";
    sync_refused_family: Counter "rvs_worker_sync_refused_family_total", "Peer's sync records refused: addresses of both families in one record, or an IPv6 flow in a mode the IPv6 data path does not forward.";
    sync_refused_invalid: Counter "rvs_worker_sync_refused_invalid_total", "Peer's sync records refused: state does not fit the protocol.";
    sync_refused_no_service: Counter "rvs_worker_sync_refused_no_service_total", "Peer's sync records refused: no service with that protocol, VIP and port.";
    sync_refused_no_server: Counter "rvs_worker_sync_refused_no_server_total", "Peer's sync records refused: the service has no such real server.";
    sync_refused_port: Counter "rvs_worker_sync_refused_port_total", "Peer's sync records refused: Full-NAT local port not this worker's, unknown address, or in use.";
    sync_refused_table_full: Counter "rvs_worker_sync_refused_table_full_total", "Peer's sync records refused: connection table full.";
    sync_refused_clash: Counter "rvs_worker_sync_refused_clash_total", "Peer's sync records refused: tuple held by another connection.";
    /// DR and IPIP only (their replies bypass rvs); `conn_table_full` counts the SYNs for
    /// which no half-open entry was left.
    half_open_evicted: Counter "rvs_worker_half_open_evicted_total", "Half-open connections (SYN seen, handshake not completed) evicted from the full table to make room for a new SYN.";
    /// SYN proxy (crate::synproxy): SYNs answered with a cookie instead of a connection.
    syn_proxy_cookies_sent: Counter "rvs_worker_syn_proxy_cookies_sent_total", "SYNs answered with a SYN cookie (SYN proxy).";
    /// Each opened a connection and sent a SYN to a real server.
    syn_proxy_valid_acks: Counter "rvs_worker_syn_proxy_valid_acks_total", "ACKs with a valid SYN cookie that opened a proxied connection.";
    /// The server's SYN-ACK arrived: the client's window was opened.
    syn_proxy_handshakes: Counter "rvs_worker_syn_proxy_handshakes_total", "Proxied connections whose real server answered the SYN (handshake completed).";
    /// The client got a RST in its place.
    syn_proxy_server_refused: Counter "rvs_worker_syn_proxy_server_refused_total", "Proxied SYNs the real server refused with a RST.";
    /// Each may have let that client open up to `client_burst` more (crate::admission).
    client_rate_replaced: Counter "rvs_worker_client_rate_replaced_total", "Per-client rate buckets still limiting a client, replaced by another client's (the bucket table's set was full).";
    /// Set at each timer run.
    conns: Gauge "rvs_worker_connections", "Connections in the worker's tables, IPv4 and IPv6.";
    /// Set at each timer run; also counted in `conns`.
    conns6: Gauge "rvs_worker_connections_ipv6", "IPv6 connections in the worker's IPv6 table (also in rvs_worker_connections).";
    /// IPv4 and IPv6 fragments of TCP/UDP flows handed on with their train's ports
    /// (crate::frag); each then ends as any packet does (sent, dropped, redirected).
    frag_forwarded: Counter "rvs_worker_frag_forwarded_total", "IP fragments matched to their flow through the fragment table.";
    /// The IPv6 ones among `frag_forwarded` (the worker's `frag6` path).
    frag6_forwarded: Counter "rvs_worker_frag6_forwarded_total", "IPv6 fragments matched to their flow through the fragment table (also in frag_forwarded).";
    /// Part of the counting invariant: packets neither sent nor dropped yet.
    frag_held: Gauge "rvs_worker_frag_held", "IP fragments held until their datagram's first fragment comes.";
    /// Each is also counted in `local_originated` (the packet it came from is counted once, as sent).
    tunnel_fragments: Counter "rvs_worker_tunnel_fragments_total", "Extra outer IPv4 fragments built for IPIP packets over the egress MTU (inner fragments with DF clear).";
    /// Each is also counted in `local_originated`, as `tunnel_fragments` are.
    nat64_fragments: Counter "rvs_worker_nat64_fragments_total", "Extra IPv6 fragments built for NAT64 replies over the client port's MTU (DF clear).";
}

/// Reads `drops` back: every key must be a [`DropReason::name`] (the snapshot's keys are
/// the reasons' static names).
fn drop_names<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<&'static str, u64>, D::Error> {
    let raw = BTreeMap::<String, u64>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| match DropReason::ALL.iter().find(|r| r.name() == k) {
            Some(r) => Ok((r.name(), v)),
            None => Err(serde::de::Error::custom(format!("unknown drop reason `{k}`"))),
        })
        .collect()
}

impl WorkerCounters {
    /// All counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one packet dropped for `reason`.
    #[inline]
    pub fn drop_packet(&self, reason: DropReason) {
        self.drops.0[reason.index()].inc();
    }

    /// Counts `n` packets dropped for `reason`.
    #[inline]
    pub fn drop_packets(&self, reason: DropReason, n: u64) {
        self.drops.0[reason.index()].add(n);
    }

    /// Packets dropped so far for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops.0[reason.index()].get()
    }

    /// Packets dropped so far, all reasons together.
    pub fn drops_total(&self) -> u64 {
        self.drops.0.iter().map(Counter::get).sum()
    }
}

impl CountersSnapshot {
    /// Count for one drop reason.
    pub fn drop_count(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.name()).copied().unwrap_or(0)
    }

    /// All drops together.
    pub fn drops_total(&self) -> u64 {
        self.drops.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case_and_indexed_in_order() {
        let mut seen = std::collections::HashSet::new();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert_eq!(DropReason::from_index(i), Some(*r));
            assert!(seen.insert(r.name()), "duplicate name {}", r.name());
            assert!(r.name().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            assert!(!r.help().is_empty() && !r.help().contains('\n'));
        }
        assert_eq!(DropReason::COUNT, DropReason::ALL.len());
        assert_eq!(DropReason::from_index(DropReason::COUNT), None);
        for name in [
            "eth_truncated",
            "eth_unknown_type",
            "eth_not_for_us",
            "arp_malformed",
            "arp_not_for_us",
            "ip_truncated",
            "ip_bad_version",
            "ip_bad_ihl",
            "ip_bad_length",
            "ip_bad_checksum",
            "ip_fragment",
            "ip_bad_source",
            "ip_not_for_us",
            "icmp_malformed",
            "icmp_bad_checksum",
            "icmp_unhandled",
            "ip6_truncated",
            "ip6_no_service",
            "icmp6_bad_checksum",
            "nd_spoofed_own",
            "l4_no_service",
            "no_route",
            "neigh_pending_full",
            "neigh_unresolved",
            "no_mbuf",
            "tx_full",
        ] {
            assert!(seen.contains(name), "missing drop reason {name}");
        }
    }

    #[test]
    fn snapshot_has_every_reason_and_sums() {
        let c = WorkerCounters::new();
        c.drop_packet(DropReason::TxFull);
        c.drop_packets(DropReason::IpFragment, 3);
        c.rx_packets.add(10);
        let s = c.snapshot();
        assert_eq!(s.drops.len(), DropReason::COUNT);
        assert_eq!(s.drop_count(DropReason::TxFull), 1);
        assert_eq!(s.drop_count(DropReason::IpFragment), 3);
        assert_eq!(s.drops_total(), 4);
        assert_eq!(c.drops_total(), 4);
        let mut sum = s.clone();
        sum.accumulate(&s);
        assert_eq!(sum.rx_packets, 20);
        assert_eq!(sum.drop_count(DropReason::IpFragment), 6);
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"ip_fragment\":3"), "{json}");
        let back: CountersSnapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert!(serde_json::from_str::<CountersSnapshot>(r#"{"drops":{"no_such_reason":1}}"#).is_err());
    }

    /// Every declared counter is read by `snapshot`, summed by `accumulate`, serialised
    /// under its name and has a well-formed Prometheus name: all driven off the
    /// declaration, so a counter added there is covered here without a new line.
    #[test]
    fn every_declared_counter_is_snapshotted_summed_and_serialised() {
        let c = WorkerCounters::new();
        let mut names = std::collections::HashSet::new();
        let mut metrics = std::collections::HashSet::new();
        for (i, d) in CountersSnapshot::COUNTERS.iter().enumerate() {
            assert!(names.insert(d.name) && metrics.insert(d.metric), "{} declared twice", d.name);
            assert!(d.metric.starts_with("rvs_worker_"), "{}", d.metric);
            assert_eq!(d.metric.ends_with("_total"), d.kind == CounterKind::Counter, "{}", d.metric);
            assert!(!d.help.is_empty() && !d.help.contains('\n'));
            c.by_name(d.name).expect("by_name knows every declared counter").add(i as u64 + 1);
        }
        assert!(c.by_name("no_such_counter").is_none());
        let s = c.snapshot();
        let mut sum = s.clone();
        sum.accumulate(&s);
        let json = serde_json::to_value(&s).unwrap();
        for (i, d) in CountersSnapshot::COUNTERS.iter().enumerate() {
            assert_eq!((d.get)(&s), i as u64 + 1, "{}", d.name);
            assert_eq!((d.get)(&sum), 2 * (i as u64 + 1), "{}", d.name);
            assert_eq!(json[d.name], i as u64 + 1, "{}", d.name);
        }
        // The JSON holds the declared counters and `drops`, nothing else.
        assert_eq!(json.as_object().unwrap().len(), CountersSnapshot::COUNTERS.len() + 1);
    }
}
