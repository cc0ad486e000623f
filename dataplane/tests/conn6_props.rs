//! Properties of the IPv6 connection table (`ConnTable6`, the IPv6 instance of the
//! generic table), against a `HashMap` model: it never holds more than its capacity;
//! every inserted entry is found by its inbound key and, with a reply path (NAT), by its
//! reply key, as the same entry and in the right direction; removed entries are gone
//! under both keys; UDP entries never expire before their timeout and are gone within one
//! tick after it. Internal invariants are checked after every step.

use std::collections::HashMap;
use std::net::Ipv6Addr;

use proptest::prelude::*;
use rvs_dataplane::conn::{Conn, Conn6, ConnId, ConnTable, ConnTable6, Direction, FlowKey6, TableFull, TICK_NS};
use rvs_dataplane::types::{ForwardMode, L4Proto, Timeouts};

/// Few addresses (differing in high and low bits) and ports, so keys collide.
fn addr(i: u8) -> Ipv6Addr {
    let k = u16::from(i % 5);
    Ipv6Addr::new(0x2001, 0xdb8, k << 8, 0, 0, 0, 0, 0x10 + k)
}
fn port(i: u8) -> u16 {
    1 + u16::from(i % 3)
}

#[derive(Debug, Clone)]
enum Op {
    Insert { udp: bool, c: u8, cp: u8, v: u8, vp: u8, s: u8, sp: u8, nat: bool },
    Remove { pick: usize },
    Advance { secs: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (any::<bool>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<bool>())
            .prop_map(|(udp, c, cp, v, vp, s, sp, nat)| Op::Insert { udp, c, cp, v, vp, s, sp, nat }),
        1 => any::<usize>().prop_map(|pick| Op::Remove { pick }),
        2 => (0u32..400).prop_map(|secs| Op::Advance { secs }),
    ]
}

const SEC: u64 = 1_000_000_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn table6_matches_model(cap in 1usize..24, ops in proptest::collection::vec(op(), 1..200)) {
        let timeouts = Timeouts { udp: 30, ..Timeouts::default() };
        let mut t = ConnTable6::with_capacity_and_seed(cap, timeouts, 7);
        // Live entries: id → (entry, time of its last (re-)arm).
        let mut model: HashMap<ConnId, (Conn6, u64)> = HashMap::new();
        let mut now = SEC;
        for op in ops {
            match op {
                Op::Insert { udp, c, cp, v, vp, s, sp, nat } => {
                    let proto = if udp { L4Proto::Udp } else { L4Proto::Tcp };
                    let key = FlowKey6 { proto, src: addr(c), sport: port(cp), dst: addr(v.wrapping_add(1)), dport: port(vp) };
                    let fwd = if nat { ForwardMode::Nat } else { ForwardMode::Dr };
                    let conn = Conn6::new(key, fwd, addr(s.wrapping_add(2)), port(sp));
                    let clash = model.values().any(|(m, _)| {
                        let mut keys = vec![m.inbound_key()];
                        if m.has_reply_path() { keys.push(m.reply_key()); }
                        keys.contains(&conn.inbound_key()) || (conn.has_reply_path() && keys.contains(&conn.reply_key()))
                    }) || (conn.has_reply_path() && conn.reply_key() == conn.inbound_key());
                    match t.insert(conn, now) {
                        Ok(id) => {
                            prop_assert!(!clash, "inserted a clashing key");
                            prop_assert!(model.len() < cap, "inserted beyond capacity");
                            model.insert(id, (conn, now));
                        }
                        Err(TableFull::Full) => prop_assert_eq!(model.len(), cap),
                        Err(_) => prop_assert!(clash, "refused a key that clashes with nothing"),
                    }
                }
                Op::Remove { pick } => {
                    if model.is_empty() { continue; }
                    let mut ids: Vec<ConnId> = model.keys().copied().collect();
                    ids.sort();
                    let id = ids[pick % ids.len()];
                    let (c, _) = model.remove(&id).unwrap();
                    prop_assert!(t.remove(id).is_some());
                    prop_assert!(t.lookup(&c.inbound_key()).is_none());
                    if c.has_reply_path() {
                        prop_assert!(t.lookup(&c.reply_key()).is_none());
                    }
                }
                Op::Advance { secs } => {
                    now += u64::from(secs) * SEC;
                    t.expire(now, |_| {});
                    let mut gone = Vec::new();
                    for (&id, &(c, armed)) in &model {
                        let live = t.is_live(id);
                        // UDP has one timeout; TCP entries follow their state's (the IPv4
                        // properties check those) and leave the model when they expire.
                        if c.proto == L4Proto::Udp {
                            let timeout = 30 * SEC;
                            if now < armed + timeout { prop_assert!(live, "expired early"); }
                            if now >= armed + timeout + 2 * TICK_NS { prop_assert!(!live, "not expired a tick late"); }
                        }
                        if !live { gone.push(id); }
                    }
                    for id in gone { model.remove(&id); }
                }
            }
            prop_assert!(t.len() <= cap);
            prop_assert_eq!(t.len(), model.len());
            for (&id, (c, _)) in &model {
                prop_assert_eq!(t.lookup(&c.inbound_key()), Some((id, Direction::Inbound)));
                if c.has_reply_path() {
                    prop_assert_eq!(t.lookup(&c.reply_key()), Some((id, Direction::Reply)));
                }
            }
            prop_assert_eq!(t.check_invariants(), Ok(()));
        }
    }
}

#[test]
fn layouts_per_family() {
    assert_eq!(std::mem::size_of::<Conn>(), 64, "the IPv4 entry is one cache line");
    assert_eq!(ConnTable::bytes_per_conn(), 88);
    assert_eq!(std::mem::size_of::<Conn6>(), 128, "the IPv6 entry is two");
    assert_eq!(ConnTable6::bytes_per_conn(), 152);
}
