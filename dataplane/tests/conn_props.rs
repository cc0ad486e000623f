//! Property: random sequences of insert / lookup / packet / remove / expire against a
//! `HashMap` model. The table never loses an entry before its timeout, expires it within
//! one tick after, never exceeds its capacity, finds every entry by both keys (and the
//! same entry), forgets removed entries under both keys, and refuses an insert when full
//! or on a duplicate key without touching anything else. Internal invariants are checked
//! after every step.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use proptest::prelude::*;
use rvs_dataplane::conn::{Conn, ConnFlags, ConnId, ConnTable, Direction, FlowKey, TableFull, TICK_NS};
use rvs_dataplane::types::{ConnState, ForwardMode, L4Proto, TcpState, Timeouts};
use rvs_dataplane::wire::TcpFlags;

const MODES: [ForwardMode; 4] = [ForwardMode::Dr, ForwardMode::Nat, ForwardMode::FullNat, ForwardMode::Tunnel];

/// Few addresses and ports, shared by every role, so keys collide within and across
/// directions.
fn addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 1 + i % 4)
}
fn port(i: u8) -> u16 {
    1 + u16::from(i % 3)
}

#[derive(Debug, Clone)]
enum Op {
    Insert { proto: bool, c: u8, cp: u8, v: u8, vp: u8, s: u8, sp: u8, l: u8, lp: u8, mode: u8 },
    Packet { pick: usize, reply: bool, flags: Option<u8> },
    Lookup { proto: bool, a: u8, ap: u8, b: u8, bp: u8 },
    Remove { pick: usize },
    Stale { pick: usize },
    Advance { ns: u64, budget: Option<u8> },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), 0u8..4)
            .prop_map(|(proto, c, cp, v, vp, s, sp, l, lp, mode)| Op::Insert { proto, c, cp, v, vp, s, sp, l, lp, mode }),
        4 => (any::<usize>(), any::<bool>(), proptest::option::weighted(0.9, any::<u8>()))
            .prop_map(|(pick, reply, flags)| Op::Packet { pick, reply, flags }),
        2 => (any::<bool>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(proto, a, ap, b, bp)| Op::Lookup { proto, a, ap, b, bp }),
        1 => any::<usize>().prop_map(|pick| Op::Remove { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Stale { pick }),
        2 => (
            prop_oneof![0u64..2_000_000_000, 0u64..40_000_000_000, 0u64..2_000_000_000_000],
            proptest::option::weighted(0.3, 0u8..4),
        )
            .prop_map(|(ns, budget)| Op::Advance { ns, budget }),
    ]
}

fn timeouts() -> impl Strategy<Value = Timeouts> {
    prop_oneof![
        Just(Timeouts::default()),
        proptest::collection::vec(0u32..40, 13).prop_map(|v| Timeouts {
            none: v[0],
            established: v[1],
            syn_sent: v[2],
            syn_recv: v[3],
            fin_wait: v[4],
            time_wait: v[5],
            close: v[6],
            close_wait: v[7],
            last_ack: v[8],
            listen: v[9],
            synack: v[10],
            udp: v[11],
            half_open: v[12],
        }),
    ]
}

/// IPVS's `tcp_states` table from `net/netfilter/ipvs/ip_vs_proto_tcp.c`, copied here
/// literally so the model's TCP states do not come from the implementation's own table
/// (a wrong entry there would otherwise be expected by the test too). Index: direction
/// (INPUT, OUTPUT, INPUT-ONLY), then the packet's flag (syn, fin, ack, rst), then the
/// current state in IPVS's column order.
#[rustfmt::skip]
const IPVS_TCP_STATES: [[[&str; 11]; 4]; 3] = [
    // INPUT
    //  sNO    sES    sSS    sSR    sFW    sTW    sCL    sCW    sLA    sLI    sSA
    [["sSR", "sES", "sES", "sSR", "sSR", "sSR", "sSR", "sSR", "sSR", "sSR", "sSR"], // syn
     ["sCL", "sCW", "sSS", "sTW", "sTW", "sTW", "sCL", "sCW", "sLA", "sLI", "sTW"], // fin
     ["sES", "sES", "sSS", "sES", "sFW", "sTW", "sCL", "sCW", "sCL", "sLI", "sES"], // ack
     ["sCL", "sCL", "sCL", "sSR", "sCL", "sCL", "sCL", "sCL", "sLA", "sLI", "sSR"]], // rst
    // OUTPUT
    [["sSS", "sES", "sSS", "sSR", "sSS", "sSS", "sSS", "sSS", "sSS", "sLI", "sSR"],
     ["sTW", "sFW", "sSS", "sTW", "sFW", "sTW", "sCL", "sTW", "sLA", "sLI", "sTW"],
     ["sES", "sES", "sSS", "sES", "sFW", "sTW", "sCL", "sCW", "sLA", "sES", "sES"],
     ["sCL", "sCL", "sSS", "sCL", "sCL", "sTW", "sCL", "sCL", "sCL", "sCL", "sCL"]],
    // INPUT-ONLY
    [["sSR", "sES", "sES", "sSR", "sSR", "sSR", "sSR", "sSR", "sSR", "sSR", "sSR"],
     ["sCL", "sFW", "sSS", "sTW", "sFW", "sTW", "sCL", "sCW", "sLA", "sLI", "sTW"],
     ["sES", "sES", "sSS", "sES", "sFW", "sTW", "sCL", "sCW", "sCL", "sLI", "sES"],
     ["sCL", "sCL", "sCL", "sSR", "sCL", "sCL", "sCL", "sCL", "sLA", "sLI", "sCL"]],
];

/// IPVS's column order of the states.
const IPVS_COLUMNS: [(&str, TcpState); 11] = [
    ("sNO", TcpState::None),
    ("sES", TcpState::Established),
    ("sSS", TcpState::SynSent),
    ("sSR", TcpState::SynRecv),
    ("sFW", TcpState::FinWait),
    ("sTW", TcpState::TimeWait),
    ("sCL", TcpState::Close),
    ("sCW", TcpState::CloseWait),
    ("sLA", TcpState::LastAck),
    ("sLI", TcpState::Listen),
    ("sSA", TcpState::SynAck),
];

/// The model's next TCP state, as IPVS's `set_tcp_state` computes it: the flag is the first
/// of RST, SYN, FIN, ACK present in the raw flag bits (`tcp_state_idx`), none of them means
/// CLOSE; a connection that has seen no output uses the INPUT-ONLY rows for input.
fn ipvs_next_state(state: TcpState, dir: Direction, flag_bits: u8, input_only: bool) -> TcpState {
    const FIN: u8 = 0x01;
    const SYN: u8 = 0x02;
    const RST: u8 = 0x04;
    const ACK: u8 = 0x10;
    let row = if flag_bits & RST != 0 {
        3
    } else if flag_bits & SYN != 0 {
        0
    } else if flag_bits & FIN != 0 {
        1
    } else if flag_bits & ACK != 0 {
        2
    } else {
        return TcpState::Close;
    };
    let dir = match (dir, input_only) {
        (Direction::Reply, _) => 1,
        (Direction::Inbound, true) => 2,
        (Direction::Inbound, false) => 0,
    };
    let col = IPVS_COLUMNS.iter().position(|&(_, s)| s == state).expect("every state has a column");
    let next = IPVS_TCP_STATES[dir][row][col];
    IPVS_COLUMNS.iter().find(|&&(n, _)| n == next).map(|&(_, s)| s).expect("a state name")
}

#[derive(Debug, Clone)]
struct Model {
    conn: Conn,
    deadline: u64,
}

fn indexed_keys(c: &Conn) -> Vec<(FlowKey, Direction)> {
    let mut v = vec![(c.inbound_key(), Direction::Inbound)];
    if matches!(c.forward, ForwardMode::Nat | ForwardMode::FullNat) {
        v.push((c.reply_key(), Direction::Reply));
    }
    v
}

fn secs(s: u32) -> u64 {
    u64::from(s) * 1_000_000_000
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn table_matches_model(
        cap in 0usize..12,
        to in timeouts(),
        start in prop_oneof![Just(0u64), Just(1_000_000_000_000u64), Just(((1u64 << 32) - 50) * TICK_NS)],
        seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut t = ConnTable::with_capacity_and_seed(cap, to, seed);
        let mut model: HashMap<ConnId, Model> = HashMap::new();
        let mut keys: HashMap<FlowKey, (ConnId, Direction)> = HashMap::new();
        let mut gone: Vec<ConnId> = vec![];
        let mut now = start;

        for op in ops {
            match op {
                Op::Insert { proto, c, cp, v, vp, s, sp, l, lp, mode } => {
                    let proto = if proto { L4Proto::Tcp } else { L4Proto::Udp };
                    let k = FlowKey { proto, src: addr(c), sport: port(cp), dst: addr(v), dport: port(vp) };
                    let mode = MODES[usize::from(mode)];
                    let mut conn = Conn::new(k, mode, addr(s), port(sp));
                    if mode == ForwardMode::FullNat {
                        conn = conn.with_local(addr(l), port(lp));
                    }
                    let ik = conn.inbound_key();
                    let expect = if model.len() >= cap {
                        Err(TableFull::Full)
                    } else if keys.contains_key(&ik) {
                        Err(TableFull::InboundKeyExists)
                    } else if conn.has_reply_path() && (conn.reply_key() == ik || keys.contains_key(&conn.reply_key())) {
                        Err(TableFull::ReplyKeyExists)
                    } else {
                        Ok(())
                    };
                    let got = t.insert(conn, now);
                    prop_assert_eq!(got.map(|_| ()), expect);
                    if let Ok(id) = got {
                        prop_assert!(!model.contains_key(&id));
                        for (k, d) in indexed_keys(&conn) {
                            keys.insert(k, (id, d));
                        }
                        model.insert(id, Model { conn, deadline: now + secs(to.of(conn.state)) });
                        gone.retain(|g| *g != id);
                    }
                }
                Op::Packet { pick, reply, flags } => {
                    if model.is_empty() { continue; }
                    let mut ids: Vec<_> = model.keys().copied().collect();
                    ids.sort();
                    let id = ids[pick % ids.len()];
                    let m = model.get_mut(&id).unwrap();
                    let dir = if reply { Direction::Reply } else { Direction::Inbound };
                    let expect_to = match (m.conn.state, flags) {
                        (ConnState::Tcp(s), Some(bits)) => {
                            let input_only = matches!(m.conn.forward, ForwardMode::Dr | ForwardMode::Tunnel)
                                && !m.conn.flags.contains(ConnFlags::REPLY_SEEN);
                            ConnState::Tcp(ipvs_next_state(s, dir, bits, input_only))
                        }
                        (s, _) => s,
                    };
                    let ch = t.on_packet(id, dir, flags.map(TcpFlags::from_bits), now);
                    prop_assert_eq!(ch.from, m.conn.state);
                    prop_assert_eq!(ch.to, expect_to);
                    prop_assert_eq!(ch.active_move(), (ch.from.is_active() != ch.to.is_active()).then_some(ch.to.is_active()));
                    if reply {
                        m.conn.flags.insert(ConnFlags::REPLY_SEEN);
                    }
                    m.conn.state = expect_to;
                    let input_only = matches!(m.conn.forward, ForwardMode::Dr | ForwardMode::Tunnel)
                        && !m.conn.flags.contains(ConnFlags::REPLY_SEEN);
                    m.deadline = now + secs(to.of_conn(expect_to, input_only));
                    prop_assert_eq!(t.get(id).unwrap().state, expect_to);
                }
                Op::Lookup { proto, a, ap, b, bp } => {
                    let proto = if proto { L4Proto::Tcp } else { L4Proto::Udp };
                    let k = FlowKey { proto, src: addr(a), sport: port(ap), dst: addr(b), dport: port(bp) };
                    prop_assert_eq!(t.lookup(&k), keys.get(&k).copied());
                }
                Op::Remove { pick } => {
                    if model.is_empty() { continue; }
                    let mut ids: Vec<_> = model.keys().copied().collect();
                    ids.sort();
                    let id = ids[pick % ids.len()];
                    let m = model.remove(&id).unwrap();
                    let c = t.remove(id).expect("a live id");
                    prop_assert_eq!(c.inbound_key(), m.conn.inbound_key());
                    for (k, _) in indexed_keys(&m.conn) {
                        keys.remove(&k);
                        prop_assert_eq!(t.lookup(&k), None);
                    }
                    gone.push(id);
                }
                Op::Stale { pick } => {
                    if gone.is_empty() { continue; }
                    let id = gone[pick % gone.len()];
                    prop_assert!(!t.is_live(id));
                    let len = t.len();
                    let ch = t.on_packet(id, Direction::Inbound, Some(TcpFlags::SYN), now);
                    prop_assert!(!ch.changed());
                    t.remove(id);
                    prop_assert_eq!(t.len(), len);
                }
                Op::Advance { ns, budget } => {
                    now += ns;
                    let mut expired = vec![];
                    let n = match budget {
                        None => t.expire(now, |c| expired.push(c.inbound_key())),
                        Some(b) => t.expire_at_most(now, usize::from(b), |c| expired.push(c.inbound_key())),
                    };
                    prop_assert!(n <= budget.map_or(usize::MAX, usize::from));
                    prop_assert_eq!(n, expired.len());
                    for k in expired {
                        let (id, d) = keys.get(&k).copied().expect("expired an unknown entry");
                        prop_assert_eq!(d, Direction::Inbound);
                        let m = model.remove(&id).unwrap();
                        prop_assert!(m.deadline <= now, "expired {} ns early", m.deadline - now);
                        for (k, _) in indexed_keys(&m.conn) {
                            keys.remove(&k);
                        }
                        gone.push(id);
                    }
                    // A bounded call may leave due entries for the next call.
                    if budget.is_none() {
                        for (id, m) in &model {
                            prop_assert!(now < m.deadline + TICK_NS, "{id:?} overdue by {} ns", now - m.deadline);
                        }
                    }
                }
            }
            // After every step: same size, bounded, every key finds its entry.
            prop_assert_eq!(t.len(), model.len());
            prop_assert!(t.len() <= t.capacity());
            for (k, v) in &keys {
                prop_assert_eq!(t.lookup(k), Some(*v));
            }
            for (id, m) in &model {
                prop_assert!(t.is_live(*id));
                prop_assert_eq!(t.get(*id).unwrap().inbound_key(), m.conn.inbound_key());
            }
            if let Err(e) = t.check_invariants() {
                prop_assert!(false, "invariants: {}", e);
            }
        }
    }
}

/// Churn at a realistic size: many inserts and removals through the same index keep
/// every key findable (backward-shift deletion leaves no holes in probe runs).
#[test]
fn churn_keeps_every_key_findable() {
    let cap = 50_000;
    let mut t = ConnTable::with_capacity_and_seed(cap, Timeouts::default(), 7);
    let mut live: Vec<(ConnId, FlowKey)> = vec![];
    let mut x: u64 = 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..400_000u64 {
        let r = rnd();
        if live.len() < cap && (r % 3 != 0 || live.is_empty()) {
            let k = FlowKey {
                proto: L4Proto::Tcp,
                src: Ipv4Addr::from((r >> 32) as u32),
                sport: r as u16,
                dst: Ipv4Addr::new(10, 10, 0, 100),
                dport: 80,
            };
            let conn = Conn::new(k, ForwardMode::FullNat, Ipv4Addr::new(10, 20, 0, 11), 80)
                .with_local(Ipv4Addr::new(10, 20, 0, 200), (r >> 16) as u16);
            if let Ok(id) = t.insert(conn, round) {
                live.push((id, k));
            }
        } else {
            let i = (r as usize / 3) % live.len();
            let (id, k) = live.swap_remove(i);
            t.remove(id);
            assert_eq!(t.lookup(&k), None);
        }
    }
    for (id, k) in &live {
        assert_eq!(t.lookup(k), Some((*id, Direction::Inbound)));
    }
    t.check_invariants().unwrap();
}

/// Every (state, direction, flag bits, input-only) against IPVS's table above: the
/// implementation's table is IPVS's, entry by entry.
#[test]
fn next_tcp_state_is_ipvs_tcp_states_table() {
    for (_, state) in IPVS_COLUMNS {
        for dir in [Direction::Inbound, Direction::Reply] {
            for input_only in [false, true] {
                for bits in 0..=u8::MAX {
                    assert_eq!(
                        rvs_dataplane::conn::next_tcp_state(state, dir, TcpFlags::from_bits(bits), input_only),
                        ipvs_next_state(state, dir, bits, input_only),
                        "{state:?} {dir:?} flags {bits:#04x} input_only {input_only}"
                    );
                }
            }
        }
    }
}
