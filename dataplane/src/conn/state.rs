//! Connection states and their timeouts: IPVS's TCP state machine
//! (`net/netfilter/ipvs/ip_vs_proto_tcp.c`, the `tcp_states` table — not the
//! `secure_tcp` one) and its UDP timeout.
//!
//! Contract: the TCP machine is a pure table lookup, indexed by the direction, the
//! current state and one flag of the packet chosen in IPVS's priority order (RST, then
//! SYN, then FIN, then ACK). A TCP segment with none of those four flags moves the
//! connection to `CLOSE`, as IPVS does. IPVS uses its INPUT-ONLY rows for connections
//! whose replies it has never seen (DR and tunnel: `IP_VS_CONN_F_NOOUTPUT`); so do we.
//!
//! Timeouts default to IPVS's (`tcp_timeouts`, `udp_timeouts`) and can be changed as
//! `ipvsadm --set TCP TCPFIN UDP` does.

use serde::{Deserialize, Serialize};

use super::Direction;
use crate::service::L4Proto;
use crate::wire::TcpFlags;

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

/// Short names so the tables below read like IPVS's (NONE and SYNACK never appear as a
/// next state in IPVS's default tables, so they have no short name here).
const S_ES: TcpState = TcpState::Established;
const S_SS: TcpState = TcpState::SynSent;
const S_SR: TcpState = TcpState::SynRecv;
const S_FW: TcpState = TcpState::FinWait;
const S_TW: TcpState = TcpState::TimeWait;
const S_CL: TcpState = TcpState::Close;
const S_CW: TcpState = TcpState::CloseWait;
const S_LA: TcpState = TcpState::LastAck;
const S_LI: TcpState = TcpState::Listen;

/// Rows: the packet's flag (SYN, FIN, ACK, RST); columns: the current state in
/// [`TcpState`] order; value: the next state.
type Table = [[TcpState; 11]; 4];

const ROW_SYN: usize = 0;
const ROW_FIN: usize = 1;
const ROW_ACK: usize = 2;
const ROW_RST: usize = 3;

/// Client → server packets of a connection whose replies pass through rvs (or have been
/// seen).
#[rustfmt::skip]
const INPUT: Table = [
    //       NO    ES    SS    SR    FW    TW    CL    CW    LA    LI    SA
    /*syn*/ [S_SR, S_ES, S_ES, S_SR, S_SR, S_SR, S_SR, S_SR, S_SR, S_SR, S_SR],
    /*fin*/ [S_CL, S_CW, S_SS, S_TW, S_TW, S_TW, S_CL, S_CW, S_LA, S_LI, S_TW],
    /*ack*/ [S_ES, S_ES, S_SS, S_ES, S_FW, S_TW, S_CL, S_CW, S_CL, S_LI, S_ES],
    /*rst*/ [S_CL, S_CL, S_CL, S_SR, S_CL, S_CL, S_CL, S_CL, S_LA, S_LI, S_SR],
];

/// Server → client packets.
#[rustfmt::skip]
const OUTPUT: Table = [
    //       NO    ES    SS    SR    FW    TW    CL    CW    LA    LI    SA
    /*syn*/ [S_SS, S_ES, S_SS, S_SR, S_SS, S_SS, S_SS, S_SS, S_SS, S_LI, S_SR],
    /*fin*/ [S_TW, S_FW, S_SS, S_TW, S_FW, S_TW, S_CL, S_TW, S_LA, S_LI, S_TW],
    /*ack*/ [S_ES, S_ES, S_SS, S_ES, S_FW, S_TW, S_CL, S_CW, S_LA, S_ES, S_ES],
    /*rst*/ [S_CL, S_CL, S_SS, S_CL, S_CL, S_TW, S_CL, S_CL, S_CL, S_CL, S_CL],
];

/// Client → server packets of a connection whose replies rvs has never seen (DR, IPIP):
/// a client FIN in ESTABLISHED goes to FIN_WAIT (not CLOSE_WAIT), an RST in SYNACK to
/// CLOSE.
#[rustfmt::skip]
const INPUT_ONLY: Table = [
    //       NO    ES    SS    SR    FW    TW    CL    CW    LA    LI    SA
    /*syn*/ [S_SR, S_ES, S_ES, S_SR, S_SR, S_SR, S_SR, S_SR, S_SR, S_SR, S_SR],
    /*fin*/ [S_CL, S_FW, S_SS, S_TW, S_FW, S_TW, S_CL, S_CW, S_LA, S_LI, S_TW],
    /*ack*/ [S_ES, S_ES, S_SS, S_ES, S_FW, S_TW, S_CL, S_CW, S_CL, S_LI, S_ES],
    /*rst*/ [S_CL, S_CL, S_CL, S_SR, S_CL, S_CL, S_CL, S_CL, S_LA, S_LI, S_CL],
];

/// The next TCP state after a packet with `flags` travelling `dir`, from `state`.
/// `input_only` selects IPVS's INPUT-ONLY rows for inbound packets (a DR or IPIP
/// connection that has not seen a reply). The flag used is the first of RST, SYN, FIN,
/// ACK that is set (IPVS's `tcp_state_idx`); with none of them the result is `CLOSE`.
pub const fn next_tcp_state(state: TcpState, dir: Direction, flags: TcpFlags, input_only: bool) -> TcpState {
    let row = if flags.rst() {
        ROW_RST
    } else if flags.syn() {
        ROW_SYN
    } else if flags.fin() {
        ROW_FIN
    } else if flags.ack() {
        ROW_ACK
    } else {
        return TcpState::Close;
    };
    let table = match (dir, input_only) {
        (Direction::Reply, _) => &OUTPUT,
        (Direction::Inbound, true) => &INPUT_ONLY,
        (Direction::Inbound, false) => &INPUT,
    };
    table[row][state as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::{Inbound, Reply};

    const SYN: TcpFlags = TcpFlags::SYN;
    const ACK: TcpFlags = TcpFlags::ACK;
    const FIN: TcpFlags = TcpFlags::FIN;
    const RST: TcpFlags = TcpFlags::RST;

    fn run(start: TcpState, steps: &[(Direction, TcpFlags)], input_only: bool) -> Vec<TcpState> {
        let mut s = start;
        let mut out = vec![];
        for &(d, f) in steps {
            s = next_tcp_state(s, d, f, input_only && d == Inbound);
            out.push(s);
        }
        out
    }

    #[test]
    fn all_is_in_discriminant_order() {
        for (i, s) in TcpState::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
    }

    #[test]
    fn nat_handshake_data_and_client_close() {
        use TcpState::*;
        let steps = [
            (Inbound, SYN),       // NONE -> SYN_RECV
            (Reply, SYN | ACK),   // SYN wins: SYN_RECV stays
            (Inbound, ACK),       // -> ESTABLISHED
            (Reply, ACK),         // stays
            (Inbound, FIN | ACK), // client closes: CLOSE_WAIT
            (Reply, ACK),         // CLOSE_WAIT stays
            (Reply, FIN | ACK),   // server closes: TIME_WAIT
            (Inbound, ACK),       // TIME_WAIT stays
        ];
        assert_eq!(
            run(None, &steps, false),
            [SynRecv, SynRecv, Established, Established, CloseWait, CloseWait, TimeWait, TimeWait]
        );
    }

    #[test]
    fn server_closes_first() {
        use TcpState::*;
        let steps = [(Reply, FIN | ACK), (Inbound, ACK), (Inbound, FIN | ACK), (Reply, ACK)];
        assert_eq!(run(Established, &steps, false), [FinWait, FinWait, TimeWait, TimeWait]);
    }

    #[test]
    fn rst_closes_from_every_established_like_state() {
        use TcpState::*;
        for s in [None, Established, FinWait, TimeWait, Close, CloseWait] {
            assert_eq!(next_tcp_state(s, Inbound, RST, false), Close, "{s:?}");
        }
        for s in [None, Established, SynRecv, FinWait, Close, CloseWait, LastAck, Listen, SynAck] {
            assert_eq!(next_tcp_state(s, Reply, RST, false), Close, "{s:?}");
        }
        // IPVS keeps a few on purpose: an inbound RST can't kill a handshake in progress
        // (spoofed RSTs), a reply RST in TIME_WAIT stays there.
        assert_eq!(next_tcp_state(SynRecv, Inbound, RST, false), SynRecv);
        assert_eq!(next_tcp_state(SynSent, Reply, RST, false), SynSent);
        assert_eq!(next_tcp_state(TimeWait, Reply, RST, false), TimeWait);
        // RST wins over every other flag.
        assert_eq!(next_tcp_state(Established, Inbound, RST | SYN | FIN | ACK, false), Close);
    }

    #[test]
    fn flag_priority_is_rst_syn_fin_ack() {
        use TcpState::*;
        assert_eq!(next_tcp_state(Established, Inbound, SYN | FIN, false), Established, "SYN row");
        assert_eq!(next_tcp_state(Established, Inbound, FIN | ACK, false), CloseWait, "FIN row");
        assert_eq!(next_tcp_state(SynRecv, Inbound, ACK | TcpFlags::PSH, false), Established, "ACK row");
        assert_eq!(next_tcp_state(Established, Inbound, TcpFlags::PSH, false), Close, "no flag: CLOSE");
        assert_eq!(next_tcp_state(Established, Reply, TcpFlags::NONE, false), Close);
    }

    #[test]
    fn dr_input_only() {
        use TcpState::*;
        let steps = [(Inbound, SYN), (Inbound, ACK), (Inbound, FIN | ACK), (Inbound, ACK)];
        assert_eq!(run(None, &steps, true), [SynRecv, Established, FinWait, FinWait]);
        assert_eq!(next_tcp_state(SynAck, Inbound, RST, true), Close);
        assert_eq!(next_tcp_state(SynAck, Inbound, RST, false), SynRecv);
    }

    #[test]
    fn server_initiated_and_syn_on_old_connections() {
        use TcpState::*;
        assert_eq!(next_tcp_state(None, Reply, SYN, false), SynSent);
        assert_eq!(next_tcp_state(SynSent, Inbound, SYN, false), Established);
        assert_eq!(next_tcp_state(TimeWait, Inbound, SYN, false), SynRecv, "port reuse");
        assert_eq!(next_tcp_state(Close, Inbound, SYN, false), SynRecv);
        assert_eq!(next_tcp_state(LastAck, Inbound, ACK, false), Close);
        assert_eq!(next_tcp_state(CloseWait, Reply, FIN, false), TimeWait);
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
