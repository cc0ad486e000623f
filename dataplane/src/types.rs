//! The vocabulary every module of the data path shares, at the bottom of the crate:
//! protocols, forwarding modes, scheduler names, service keys, port indexes, VIPs,
//! connection states and their timeouts.
//!
//! Contract: this module imports nothing from the rest of the crate except the wire
//! constants (`wire` is below it); every other module may import it. Arrows only point
//! down. Everything here is plain data (`Copy` where it can be) with its names and
//! parsing; no behaviour of the data path lives here.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::wire::{IPPROTO_TCP, IPPROTO_UDP};

/// The transport protocol of a virtual service or a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum L4Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl L4Proto {
    /// The IPv4 protocol number.
    pub const fn ipproto(self) -> u8 {
        match self {
            L4Proto::Tcp => IPPROTO_TCP,
            L4Proto::Udp => IPPROTO_UDP,
        }
    }
    /// The protocol for an IPv4 protocol number, if it is TCP or UDP.
    pub const fn from_ipproto(p: u8) -> Option<Self> {
        match p {
            IPPROTO_TCP => Some(L4Proto::Tcp),
            IPPROTO_UDP => Some(L4Proto::Udp),
            _ => None,
        }
    }
    /// `"tcp"` or `"udp"`.
    pub const fn name(self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
        }
    }
}

/// How packets reach a real server (ipvsadm's -g, -m, -i and DPVS's -b).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardMode {
    /// Direct routing: only the MAC addresses change; the server has the VIP on a loopback
    /// and answers the client directly.
    Dr,
    /// NAT: the destination becomes the server; replies come back through rvs (the
    /// server's gateway) and get the VIP as their source again.
    Nat,
    /// Full-NAT: source becomes a local address and port, destination the server; the
    /// client address travels in a TCP option (TOA).
    FullNat,
    /// IPIP tunnel: the packet is wrapped in an outer IPv4 header to the server, which
    /// decapsulates it and answers the client directly.
    Tunnel,
}

impl ForwardMode {
    /// The configuration name: `dr`, `nat`, `fullnat` or `tunnel`.
    pub const fn name(self) -> &'static str {
        match self {
            ForwardMode::Dr => "dr",
            ForwardMode::Nat => "nat",
            ForwardMode::FullNat => "fullnat",
            ForwardMode::Tunnel => "tunnel",
        }
    }
}

impl fmt::Display for ForwardMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown name for an enum of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}`: expected one of {expected}")]
pub struct UnknownName {
    /// What kind of name it was.
    pub what: &'static str,
    /// The name given.
    pub name: String,
    /// The accepted names, comma separated.
    pub expected: String,
}

impl FromStr for ForwardMode {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        [ForwardMode::Dr, ForwardMode::Nat, ForwardMode::FullNat, ForwardMode::Tunnel]
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownName {
                what: "forwarding mode",
                name: s.into(),
                expected: "dr, nat, fullnat, tunnel".into(),
            })
    }
}

macro_rules! scheduler_kinds {
    ($($variant:ident => $name:literal : $doc:literal,)*) => {
        /// A scheduling algorithm, by its ipvsadm/DPVS name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum SchedulerKind {
            $(#[doc = $doc] $variant,)*
        }
        impl SchedulerKind {
            /// Every scheduler rvs has.
            pub const ALL: &'static [SchedulerKind] = &[$(SchedulerKind::$variant,)*];
            /// The name used in the config file and by rvsadm's `-s`.
            pub const fn name(self) -> &'static str {
                match self { $(SchedulerKind::$variant => $name,)* }
            }
        }
    };
}

scheduler_kinds! {
    Rr => "rr": "Round robin.",
    Wrr => "wrr": "Weighted round robin.",
    Lc => "lc": "Least connections.",
    Wlc => "wlc": "Weighted least connections.",
    Sed => "sed": "Shortest expected delay.",
    Nq => "nq": "Never queue.",
    Sh => "sh": "Source hashing.",
    Dh => "dh": "Destination hashing.",
    Lblc => "lblc": "Locality-based least connections.",
    Lblcr => "lblcr": "Locality-based least connections with replication.",
    Fo => "fo": "Weighted failover: the available server with the highest weight.",
    Ovf => "ovf": "Weighted overflow: the highest-weight server until its active connections reach its weight.",
    Mh => "mh": "Maglev hashing.",
    Twos => "twos": "Weighted random twos choice.",
    Conhash => "conhash": "Consistent hashing of the client address and port.",
    Sessions => "sessions": "Fewest active sessions.",
    UserHash => "user-hash": "Consistent hashing of the client address.",
}

impl SchedulerKind {
    /// Whether the scheduler's choice is a pure function of the packet's addresses and
    /// ports and of the server list: mh, sh, dh, conhash and user-hash. Every node (and
    /// every worker) given the same servers picks the same server for a flow, so a flow
    /// that ECMP moves to another node can be scheduled there again and reach the server
    /// it started on ([`UnknownFlow::Schedule`]). The others depend on counters, cursors,
    /// randomness or per-node tables.
    pub const fn is_consistent(self) -> bool {
        matches!(
            self,
            SchedulerKind::Mh
                | SchedulerKind::Sh
                | SchedulerKind::Dh
                | SchedulerKind::Conhash
                | SchedulerKind::UserHash
        )
    }
}

/// What a service does with a TCP segment other than a SYN that matches no connection
/// (config `unknown_flow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UnknownFlow {
    /// Drop it (`tcp_no_conn`), IPVS's default: only a SYN opens a TCP connection.
    #[default]
    Drop,
    /// Schedule it like a SYN and create the connection entry (Katran's behaviour, IPVS's
    /// `sloppy_tcp` sysctl); a RST is still dropped. Meant for DR and IPIP services with
    /// a consistent scheduler ([`SchedulerKind::is_consistent`]) on nodes behind ECMP:
    /// a flow that the router moves from one node to another is sent by the new node to
    /// the server the old one chose.
    Schedule,
}

impl UnknownFlow {
    /// The name used in the config file: `drop` or `schedule`.
    pub const fn name(self) -> &'static str {
        match self {
            UnknownFlow::Drop => "drop",
            UnknownFlow::Schedule => "schedule",
        }
    }

    /// Whether a TCP segment that is not a SYN and matches no connection opens one: only
    /// with `schedule`, and never a RST (IPVS's rule otherwise: only a SYN opens a TCP
    /// connection). Both address families' engines ask this.
    #[inline]
    pub const fn opens(self, rst: bool) -> bool {
        matches!(self, UnknownFlow::Schedule) && !rst
    }
}

impl FromStr for UnknownFlow {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        [UnknownFlow::Drop, UnknownFlow::Schedule].into_iter().find(|m| m.name() == s).ok_or_else(|| UnknownName {
            what: "unknown_flow mode",
            name: s.into(),
            expected: "drop, schedule".into(),
        })
    }
}

impl FromStr for SchedulerKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        SchedulerKind::ALL.iter().copied().find(|k| k.name() == s).ok_or_else(|| UnknownName {
            what: "scheduler",
            name: s.into(),
            expected: SchedulerKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", "),
        })
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a virtual service is reached: protocol, VIP and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// TCP or UDP.
    pub proto: L4Proto,
    /// The virtual IP, of either family; the servers of the service are of the same
    /// family, but for NAT64 (IPv4 Full-NAT servers of an IPv6 VIP; `ServiceTable`
    /// refuses any other mix).
    pub vip: IpAddr,
    /// The virtual port.
    pub port: u16,
}

impl ServiceKey {
    /// An IPv4 key packed into one word, for the IPv4 lookup map (the IPv4 data path
    /// builds it from the packet without going through [`IpAddr`]).
    #[inline]
    pub(crate) fn packed_v4(proto: L4Proto, vip: Ipv4Addr, port: u16) -> u64 {
        (u64::from(proto.ipproto()) << 48) | (u64::from(u32::from(vip)) << 16) | u64::from(port)
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.vip {
            IpAddr::V4(v) => write!(f, "{} {}:{}", self.proto.name(), v, self.port),
            // ipvsadm's form: brackets around an IPv6 address.
            IpAddr::V6(v) => write!(f, "{} [{}]:{}", self.proto.name(), v, self.port),
        }
    }
}

/// IPVS's TCP connection states, in IPVS's order (`IP_VS_TCP_S_*`).
///
/// These are the balancer's view of the connection, from the flags it sees, not the
/// endpoints' TCP states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TcpState {
    /// No packet processed yet (a new connection before its first packet).
    None = 0,
    /// Handshake completed (an ACK after the SYN).
    Established,
    /// The server sent a SYN first (seen as output).
    SynSent,
    /// The client's SYN was seen.
    SynRecv,
    /// A FIN was seen from the server in an established connection, or from the client
    /// of a DR/tunnel connection.
    FinWait,
    /// FINs were seen both ways.
    TimeWait,
    /// Closed by RST or a flagless segment.
    Close,
    /// The client sent a FIN in an established connection.
    CloseWait,
    /// Waiting for the last ACK.
    LastAck,
    /// IPVS's listening state (used by IPVS's FTP helper; kept for table fidelity).
    Listen,
    /// IPVS's SYN+ACK state of its `secure_tcp` defense tables; unused by the default
    /// tables, kept for table fidelity.
    SynAck,
}

impl TcpState {
    /// Every state, in IPVS's order; `ALL[s as usize] == s`.
    pub const ALL: [TcpState; 11] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    /// IPVS's name, as `ipvsadm -lc` prints it.
    pub const fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }

    /// Whether a connection in this state counts as active for its server: IPVS's
    /// `tcp_state_active_table` (since Linux 4.7, "ipvs: count pre-established TCP states
    /// as active"): ESTABLISHED, SYN_SENT, SYN_RECV and SYNACK.
    pub const fn is_active(self) -> bool {
        matches!(self, TcpState::Established | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck)
    }
}

/// The protocol state of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnState {
    /// A TCP connection in this state.
    Tcp(TcpState),
    /// A UDP flow (IPVS's single `UDP` state).
    Udp,
}

impl ConnState {
    /// The state of a new connection of `proto`: TCP `NONE` or `UDP`.
    pub const fn initial(proto: L4Proto) -> ConnState {
        match proto {
            L4Proto::Tcp => ConnState::Tcp(TcpState::None),
            L4Proto::Udp => ConnState::Udp,
        }
    }

    /// Whether the connection counts as active for its server's counters (ipvsadm's
    /// ActiveConn vs InActConn), as IPVS counts: TCP in ESTABLISHED, SYN_SENT, SYN_RECV
    /// or SYNACK. UDP flows are never active: IPVS binds every connection inactive and
    /// only TCP moves it, so `ipvsadm -L` lists UDP flows under InActConn; rvs does the
    /// same, so IPVS's least-connection arithmetic (active × 256 + inactive) behaves the
    /// same for UDP services.
    pub const fn is_active(self) -> bool {
        match self {
            ConnState::Tcp(s) => s.is_active(),
            ConnState::Udp => false,
        }
    }

    /// IPVS's name: the TCP state's, or `UDP`.
    pub const fn name(self) -> &'static str {
        match self {
            ConnState::Tcp(s) => s.name(),
            ConnState::Udp => "UDP",
        }
    }
}

/// The largest timeout accepted, in seconds (about 194 days); larger values are clamped
/// so that wheel ticks never wrap in between (see `table.rs`).
pub const MAX_TIMEOUT_S: u32 = 1 << 24;

/// Connection timeouts in seconds, per TCP state and for UDP. The default is IPVS's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// NONE: a new connection before its first packet (IPVS: 2 s).
    pub none: u32,
    /// ESTABLISHED (IPVS: 900 s; `ipvsadm --set` TCP).
    pub established: u32,
    /// SYN_SENT (IPVS: 120 s).
    pub syn_sent: u32,
    /// SYN_RECV (IPVS: 60 s).
    pub syn_recv: u32,
    /// FIN_WAIT (IPVS: 120 s; `ipvsadm --set` TCPFIN).
    pub fin_wait: u32,
    /// TIME_WAIT (IPVS: 120 s).
    pub time_wait: u32,
    /// CLOSE (IPVS: 10 s).
    pub close: u32,
    /// CLOSE_WAIT (IPVS: 60 s).
    pub close_wait: u32,
    /// LAST_ACK (IPVS: 30 s).
    pub last_ack: u32,
    /// LISTEN (IPVS: 120 s).
    pub listen: u32,
    /// SYNACK (IPVS: 120 s).
    pub synack: u32,
    /// UDP (IPVS: 300 s; `ipvsadm --set` UDP).
    pub udp: u32,
    /// SYN_RECV of a connection whose replies rvs never sees (DR, IPIP: IPVS's
    /// INPUT-ONLY table), i.e. a client SYN not yet followed by the ACK that completes
    /// the handshake. Not in IPVS, which keeps SYN_RECV's 60 s for these too: a SYN
    /// flood's entries then stay a minute. 5 s covers a client's first two SYN
    /// retransmissions (Linux: 1 s, then 2 s later; each refreshes the entry) and a lost
    /// final ACK answered after the server's SYN+ACK retransmissions (1 s, 3 s).
    pub half_open: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            none: 2,
            established: 900,
            syn_sent: 120,
            syn_recv: 60,
            fin_wait: 120,
            time_wait: 120,
            close: 10,
            close_wait: 60,
            last_ack: 30,
            listen: 120,
            synack: 120,
            udp: 300,
            half_open: 5,
        }
    }
}

impl Timeouts {
    /// The timeout of a TCP state, in seconds (clamped to [`MAX_TIMEOUT_S`]).
    pub const fn tcp(&self, s: TcpState) -> u32 {
        let t = match s {
            TcpState::None => self.none,
            TcpState::Established => self.established,
            TcpState::SynSent => self.syn_sent,
            TcpState::SynRecv => self.syn_recv,
            TcpState::FinWait => self.fin_wait,
            TcpState::TimeWait => self.time_wait,
            TcpState::Close => self.close,
            TcpState::CloseWait => self.close_wait,
            TcpState::LastAck => self.last_ack,
            TcpState::Listen => self.listen,
            TcpState::SynAck => self.synack,
        };
        if t > MAX_TIMEOUT_S {
            MAX_TIMEOUT_S
        } else {
            t
        }
    }

    /// The timeout of a connection state, in seconds (clamped to [`MAX_TIMEOUT_S`]).
    pub const fn of(&self, s: ConnState) -> u32 {
        match s {
            ConnState::Tcp(t) => self.tcp(t),
            ConnState::Udp => {
                if self.udp > MAX_TIMEOUT_S {
                    MAX_TIMEOUT_S
                } else {
                    self.udp
                }
            }
        }
    }

    /// The timeout of state `s` for a connection that is `input_only` (DR or IPIP, no
    /// reply seen): [`Timeouts::half_open`] in TCP SYN_RECV, else [`Timeouts::of`].
    pub const fn of_conn(&self, s: ConnState, input_only: bool) -> u32 {
        if input_only && matches!(s, ConnState::Tcp(TcpState::SynRecv)) {
            if self.half_open > MAX_TIMEOUT_S {
                MAX_TIMEOUT_S
            } else {
                self.half_open
            }
        } else {
            self.of(s)
        }
    }

    /// `ipvsadm --set TCP TCPFIN _`: the ESTABLISHED and FIN_WAIT timeouts. As with
    /// ipvsadm, 0 leaves a value unchanged.
    pub fn set_tcp(&mut self, established: u32, fin_wait: u32) {
        if established != 0 {
            self.established = established.min(MAX_TIMEOUT_S);
        }
        if fin_wait != 0 {
            self.fin_wait = fin_wait.min(MAX_TIMEOUT_S);
        }
    }

    /// `ipvsadm --set _ _ UDP`: the UDP timeout; 0 leaves it unchanged.
    pub fn set_udp(&mut self, udp: u32) {
        if udp != 0 {
            self.udp = udp.min(MAX_TIMEOUT_S);
        }
    }
}

/// Index of a port, as the worker's queues are indexed: the position of the port in
/// the worker configuration, not a DPDK port id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PortId(pub u16);

impl PortId {
    /// The port's index into per-port arrays.
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Display for PortId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "port {}", self.0)
    }
}

/// A virtual service address the stack answers ARP and ICMP echo for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VipConfig {
    /// The VIP.
    pub address: Ipv4Addr,
    /// The port ARP for it is answered on; `None`: every port.
    pub port: Option<PortId>,
}

/// The stable id of a virtual service: given by the control plane, never reused, kept
/// by a service across every table that has it (see `crate::service::TableIds`). Connections
/// record it instead of an index into one snapshot.
pub type ServiceId = u32;

/// The stable id of a real server, as [`ServiceId`] is for services: the connection
/// table records it, and the server's counters are found by it in whatever snapshot is
/// current.
pub type ServerId = u32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in SchedulerKind::ALL {
            assert_eq!(k.name().parse::<SchedulerKind>().unwrap(), *k);
        }
        assert_eq!(SchedulerKind::ALL.len(), 17);
        let e = "foo".parse::<SchedulerKind>().unwrap_err();
        assert!(e.to_string().contains("user-hash"), "{e}");
        assert_eq!("fullnat".parse::<ForwardMode>().unwrap(), ForwardMode::FullNat);
        assert!("masq".parse::<ForwardMode>().is_err());
        assert_eq!(L4Proto::from_ipproto(6), Some(L4Proto::Tcp));
        assert_eq!(L4Proto::from_ipproto(1), None);
    }

    #[test]
    fn all_is_in_discriminant_order() {
        for (i, s) in TcpState::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
    }

    #[test]
    fn active_states_follow_ipvs() {
        use TcpState::*;
        let active: Vec<_> = TcpState::ALL.into_iter().filter(|s| s.is_active()).collect();
        assert_eq!(active, [Established, SynSent, SynRecv, SynAck]);
        assert!(!ConnState::Udp.is_active());
        assert_eq!(ConnState::initial(L4Proto::Udp).name(), "UDP");
        assert_eq!(ConnState::initial(L4Proto::Tcp), ConnState::Tcp(None));
    }

    #[test]
    fn default_timeouts_are_ipvs_and_set_works_like_ipvsadm() {
        use TcpState::*;
        let t = Timeouts::default();
        let expect = [(None, 2), (Established, 900), (SynSent, 120), (SynRecv, 60), (FinWait, 120), (TimeWait, 120)];
        for (s, secs) in expect {
            assert_eq!(t.tcp(s), secs, "{s:?}");
        }
        let expect = [(Close, 10), (CloseWait, 60), (LastAck, 30), (Listen, 120), (SynAck, 120)];
        for (s, secs) in expect {
            assert_eq!(t.tcp(s), secs, "{s:?}");
        }
        assert_eq!(t.of(ConnState::Udp), 300);
        let mut t2 = t;
        t2.set_tcp(3600, 0);
        t2.set_udp(0);
        assert_eq!((t2.established, t2.fin_wait, t2.udp), (3600, 120, 300));
        t2.set_tcp(0, 30);
        t2.set_udp(u32::MAX);
        assert_eq!((t2.established, t2.fin_wait, t2.udp), (3600, 30, MAX_TIMEOUT_S));
        let mut t3 = t;
        t3.close = u32::MAX;
        assert_eq!(t3.tcp(Close), MAX_TIMEOUT_S);
    }

    #[test]
    fn timeouts_serde_defaults_missing_fields() {
        let t: Timeouts = serde_json::from_str(r#"{"established": 60}"#).unwrap();
        assert_eq!(t, Timeouts { established: 60, ..Timeouts::default() });
        assert!(serde_json::from_str::<Timeouts>(r#"{"establised": 60}"#).is_err());
    }
}
