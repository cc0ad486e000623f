//! IPVS's TCP state machine (`net/netfilter/ipvs/ip_vs_proto_tcp.c`, the `tcp_states`
//! table — not the `secure_tcp` one). The states themselves and their timeouts are
//! vocabulary shared with the control plane: [`crate::types`].
//!
//! Contract: the TCP machine is a pure table lookup, indexed by the direction, the
//! current state and one flag of the packet chosen in IPVS's priority order (RST, then
//! SYN, then FIN, then ACK). A TCP segment with none of those four flags moves the
//! connection to `CLOSE`, as IPVS does. IPVS uses its INPUT-ONLY rows for connections
//! whose replies it has never seen (DR and tunnel: `IP_VS_CONN_F_NOOUTPUT`); so do we.

use super::Direction;
use crate::types::TcpState;
use crate::wire::TcpFlags;

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
}
