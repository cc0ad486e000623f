//! The connection table's behaviour, case by case: both keys, refusals, states through
//! the table, timeouts per state, removal, expiry bounds, stale handles.

use std::net::Ipv4Addr;

use rvs_dataplane::conn::{Conn, ConnFlags, ConnTable, Direction, FlowKey, TableFull, TICK_NS};
use rvs_dataplane::types::{ConnState, ForwardMode, L4Proto, TcpState, Timeouts};
use rvs_dataplane::wire::TcpFlags;

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_000 * SEC;
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 100);
const RS: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 11);
const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 200);

fn key(proto: L4Proto, cport: u16) -> FlowKey {
    FlowKey { proto, src: CLIENT, sport: cport, dst: VIP, dport: 80 }
}

fn tcp(cport: u16, mode: ForwardMode) -> Conn {
    let c = Conn::new(key(L4Proto::Tcp, cport), mode, RS, 8080);
    if mode == ForwardMode::FullNat {
        c.with_local(LOCAL, 5000 + cport)
    } else {
        c
    }
}

fn table(cap: usize) -> ConnTable {
    ConnTable::with_capacity_and_seed(cap, Timeouts::default(), 42)
}

fn expired(t: &mut ConnTable, now: u64) -> Vec<FlowKey> {
    let mut v = vec![];
    t.expire(now, |c| v.push(c.inbound_key()));
    v
}

#[test]
fn both_keys_find_one_entry() {
    let mut t = table(16);
    let nat = t.insert(tcp(1000, ForwardMode::Nat), T0).unwrap();
    let fnat = t.insert(tcp(1001, ForwardMode::FullNat), T0).unwrap();
    let dr = t.insert(tcp(1002, ForwardMode::Dr), T0).unwrap();
    assert_eq!(t.len(), 3);

    assert_eq!(t.lookup(&key(L4Proto::Tcp, 1000)), Some((nat, Direction::Inbound)));
    let nat_reply = FlowKey { proto: L4Proto::Tcp, src: RS, sport: 8080, dst: CLIENT, dport: 1000 };
    assert_eq!(t.get(nat).unwrap().reply_key(), nat_reply);
    assert_eq!(t.lookup(&nat_reply), Some((nat, Direction::Reply)));

    let fnat_reply = FlowKey { proto: L4Proto::Tcp, src: RS, sport: 8080, dst: LOCAL, dport: 6001 };
    assert_eq!(t.lookup(&fnat_reply), Some((fnat, Direction::Reply)));
    assert_eq!(t.lookup(&key(L4Proto::Tcp, 1001)), Some((fnat, Direction::Inbound)));

    // DR replies never come back through rvs: only the inbound key is indexed.
    assert_eq!(t.lookup(&key(L4Proto::Tcp, 1002)), Some((dr, Direction::Inbound)));
    assert_eq!(t.lookup(&t.get(dr).unwrap().reply_key()), None);

    // Protocol is part of the key.
    assert_eq!(t.lookup(&key(L4Proto::Udp, 1000)), None);
    t.check_invariants().unwrap();
}

#[test]
fn duplicate_keys_are_refused_and_say_which() {
    let mut t = table(16);
    t.insert(tcp(1000, ForwardMode::Nat), T0).unwrap();
    assert_eq!(t.insert(tcp(1000, ForwardMode::Dr), T0), Err(TableFull::InboundKeyExists));
    // Same reply tuple through another VIP.
    let other_vip = Conn::new(
        FlowKey { dst: Ipv4Addr::new(10, 10, 0, 101), ..key(L4Proto::Tcp, 1000) },
        ForwardMode::Nat,
        RS,
        8080,
    );
    assert_eq!(t.insert(other_vip, T0), Err(TableFull::ReplyKeyExists));
    // ... which is fine in DR, where the reply key is not indexed.
    let mut other_vip_dr = other_vip;
    other_vip_dr.forward = ForwardMode::Dr;
    t.insert(other_vip_dr, T0).unwrap();
    // A new inbound key equal to an existing reply key.
    let reply_as_inbound = Conn::new(t.lookup_reply_key_of_first(), ForwardMode::Dr, RS, 1);
    assert_eq!(t.insert(reply_as_inbound, T0), Err(TableFull::InboundKeyExists));
    // A connection whose reply key is its own inbound key.
    let selfloop =
        Conn::new(FlowKey { proto: L4Proto::Udp, src: RS, sport: 9, dst: RS, dport: 9 }, ForwardMode::Nat, RS, 9);
    assert_eq!(t.insert(selfloop, T0), Err(TableFull::ReplyKeyExists));
    assert_eq!(t.len(), 2);
    t.check_invariants().unwrap();
}

trait FirstReply {
    fn lookup_reply_key_of_first(&self) -> FlowKey;
}
impl FirstReply for ConnTable {
    fn lookup_reply_key_of_first(&self) -> FlowKey {
        self.iter().next().unwrap().1.reply_key()
    }
}

#[test]
fn full_table_refuses_new_flows_and_keeps_old_ones() {
    let mut t = table(4);
    let ids: Vec<_> = (0..4).map(|i| t.insert(tcp(1000 + i, ForwardMode::Nat), T0).unwrap()).collect();
    assert_eq!(t.insert(tcp(2000, ForwardMode::Nat), T0), Err(TableFull::Full));
    assert_eq!(t.len(), 4);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(t.lookup(&key(L4Proto::Tcp, 1000 + i as u16)), Some((*id, Direction::Inbound)));
    }
    t.remove(ids[2]);
    assert!(t.insert(tcp(2000, ForwardMode::Nat), T0).is_ok());
    t.check_invariants().unwrap();

    let mut empty = table(0);
    assert_eq!(empty.capacity(), 0);
    assert_eq!(empty.insert(tcp(1, ForwardMode::Nat), T0), Err(TableFull::Full));
    assert_eq!(empty.expire(T0, |_| ()), 0);
    assert_eq!(empty.iter().count(), 0);
    empty.check_invariants().unwrap();
}

#[test]
fn handshake_through_the_table_reports_activity_moves() {
    let mut t = table(8);
    let id = t.insert(tcp(1000, ForwardMode::Nat), T0).unwrap();
    assert_eq!(t.get(id).unwrap().state, ConnState::Tcp(TcpState::None));
    assert!(!t.get(id).unwrap().state.is_active(), "new connections count inactive, as in IPVS");

    let c = t.on_packet(id, Direction::Inbound, Some(TcpFlags::SYN), T0);
    assert_eq!((c.to, c.active_move()), (ConnState::Tcp(TcpState::SynRecv), Some(true)));
    let c = t.on_packet(id, Direction::Reply, Some(TcpFlags::SYN | TcpFlags::ACK), T0);
    assert_eq!((c.changed(), c.active_move()), (false, None));
    assert!(t.get(id).unwrap().flags.contains(ConnFlags::SYN_ACK_SEEN | ConnFlags::REPLY_SEEN));
    let c = t.on_packet(id, Direction::Inbound, Some(TcpFlags::ACK), T0);
    assert_eq!((c.to, c.active_move()), (ConnState::Tcp(TcpState::Established), None));
    let c = t.on_packet(id, Direction::Inbound, Some(TcpFlags::FIN | TcpFlags::ACK), T0);
    assert_eq!((c.to, c.active_move()), (ConnState::Tcp(TcpState::CloseWait), Some(false)));
    let c = t.on_packet(id, Direction::Inbound, Some(TcpFlags::RST), T0);
    assert_eq!(c.to, ConnState::Tcp(TcpState::Close));
    // A packet without a TCP header view: state kept.
    let c = t.on_packet(id, Direction::Inbound, None, T0);
    assert!(!c.changed());
}

#[test]
fn dr_uses_input_only_rows_until_a_reply_is_seen() {
    let mut t = table(8);
    let id = t.insert(tcp(1000, ForwardMode::Dr), T0).unwrap();
    for f in [TcpFlags::SYN, TcpFlags::ACK, TcpFlags::FIN | TcpFlags::ACK] {
        t.on_packet(id, Direction::Inbound, Some(f), T0);
    }
    assert_eq!(t.get(id).unwrap().state, ConnState::Tcp(TcpState::FinWait), "INPUT-ONLY: client FIN → FIN_WAIT");

    let nat = t.insert(tcp(1001, ForwardMode::Nat), T0).unwrap();
    for f in [TcpFlags::SYN, TcpFlags::ACK, TcpFlags::FIN | TcpFlags::ACK] {
        t.on_packet(nat, Direction::Inbound, Some(f), T0);
    }
    assert_eq!(t.get(nat).unwrap().state, ConnState::Tcp(TcpState::CloseWait), "INPUT: client FIN → CLOSE_WAIT");
}

#[test]
fn udp_state_and_timeout() {
    let mut t = table(8);
    let id = t.insert(Conn::new(key(L4Proto::Udp, 53), ForwardMode::Nat, RS, 53), T0).unwrap();
    let c = t.on_packet(id, Direction::Inbound, None, T0);
    assert_eq!((c.to, c.active_move()), (ConnState::Udp, None));
    assert!(expired(&mut t, T0 + 300 * SEC - 1).is_empty());
    assert_eq!(expired(&mut t, T0 + 300 * SEC + TICK_NS), vec![key(L4Proto::Udp, 53)]);
    assert!(t.is_empty());
}

/// Drives a fresh NAT connection into `state` with packets at `T0`.
fn drive(t: &mut ConnTable, cport: u16, state: TcpState) -> rvs_dataplane::conn::ConnId {
    use Direction::{Inbound as I, Reply as R};
    let (a, s, f, r) = (TcpFlags::ACK, TcpFlags::SYN, TcpFlags::FIN, TcpFlags::RST);
    let path: &[(Direction, TcpFlags)] = match state {
        TcpState::None => &[],
        TcpState::SynRecv => &[(I, s)],
        TcpState::SynSent => &[(R, s)],
        TcpState::Established => &[(I, s), (I, a)],
        TcpState::FinWait => &[(I, s), (I, a), (R, f)],
        TcpState::CloseWait => &[(I, s), (I, a), (I, f)],
        TcpState::TimeWait => &[(I, s), (I, a), (I, f), (R, f)],
        TcpState::Close => &[(I, s), (I, a), (I, r)],
        TcpState::LastAck | TcpState::Listen | TcpState::SynAck => return table_state_via_get_mut(t, cport, state),
    };
    let id = t.insert(tcp(cport, ForwardMode::Nat), T0).unwrap();
    for &(d, fl) in path {
        t.on_packet(id, d, Some(fl), T0);
    }
    assert_eq!(t.get(id).unwrap().state, ConnState::Tcp(state));
    id
}

/// States the default table never enters from NONE: set them directly and re-arm with a
/// flagless-header-less packet (state kept, timer re-armed).
fn table_state_via_get_mut(t: &mut ConnTable, cport: u16, state: TcpState) -> rvs_dataplane::conn::ConnId {
    let id = t.insert(tcp(cport, ForwardMode::Nat), T0).unwrap();
    t.get_mut(id).unwrap().state = ConnState::Tcp(state);
    t.on_packet(id, Direction::Inbound, None, T0);
    id
}

#[test]
fn every_tcp_state_expires_after_its_own_timeout_and_not_before() {
    let to = Timeouts::default();
    for (i, s) in TcpState::ALL.into_iter().enumerate() {
        let mut t = table(4);
        let id = drive(&mut t, 1000 + i as u16, s);
        let secs = u64::from(to.tcp(s));
        assert!(expired(&mut t, T0 + secs * SEC - 1).is_empty(), "{s:?} expired early");
        assert!(t.is_live(id));
        assert_eq!(expired(&mut t, T0 + secs * SEC + TICK_NS).len(), 1, "{s:?} not expired a tick late");
        assert!(!t.is_live(id));
        assert_eq!(t.lookup(&key(L4Proto::Tcp, 1000 + i as u16)), None);
        t.check_invariants().unwrap();
    }
}

#[test]
fn packets_refresh_and_shorter_states_relink_at_once() {
    let mut t = table(4);
    let id = drive(&mut t, 1000, TcpState::Established);
    // Keep-alive every 800 s for an hour: never expires (lazy refresh across wheel turns).
    let mut now = T0;
    for _ in 0..5 {
        now += 800 * SEC;
        assert!(expired(&mut t, now).is_empty());
        t.on_packet(id, Direction::Inbound, Some(TcpFlags::ACK), now);
    }
    // RST: 900 s → 10 s, which must not wait for the old slot.
    t.on_packet(id, Direction::Inbound, Some(TcpFlags::RST), now);
    assert!(expired(&mut t, now + 10 * SEC - 1).is_empty());
    assert_eq!(expired(&mut t, now + 10 * SEC + TICK_NS).len(), 1);
}

#[test]
fn adjusted_timeouts_apply_from_the_next_packet() {
    let mut t = table(4);
    let id = drive(&mut t, 1000, TcpState::Established);
    let mut to = *t.timeouts();
    to.set_tcp(30, 0);
    t.set_timeouts(to);
    t.on_packet(id, Direction::Inbound, Some(TcpFlags::ACK), T0 + SEC);
    assert!(expired(&mut t, T0 + 31 * SEC - 1).is_empty());
    assert_eq!(expired(&mut t, T0 + 31 * SEC + TICK_NS).len(), 1);
}

#[test]
fn remove_takes_both_keys_and_stale_ids_are_harmless() {
    let mut t = table(4);
    let a = t.insert(tcp(1000, ForwardMode::FullNat), T0).unwrap();
    let reply = t.get(a).unwrap().reply_key();
    let removed = t.remove(a).expect("a is live");
    assert_eq!(removed.cport, 1000);
    assert_eq!(t.lookup(&key(L4Proto::Tcp, 1000)), None);
    assert_eq!(t.lookup(&reply), None);
    assert!(!t.is_live(a));
    // Stale id: nothing changes, nothing panics.
    let before = t.len();
    let c = t.on_packet(a, Direction::Inbound, Some(TcpFlags::SYN), T0);
    assert!(!c.changed());
    assert!(t.remove(a).is_none());
    assert!(t.get(a).is_none(), "a stale id names no entry (not entry 0)");
    assert!(t.get_mut(a).is_none());
    assert_eq!(t.len(), before);
    assert!(expired(&mut t, T0 + 10_000 * SEC).is_empty());
    t.check_invariants().unwrap();
}

#[test]
fn ids_of_another_table_name_nothing() {
    let mut big = table(64);
    let ids: Vec<_> = (0..40).map(|i| big.insert(tcp(1000 + i, ForwardMode::Nat), T0).unwrap()).collect();
    let far = *ids.iter().max_by_key(|id| id.index()).unwrap();
    let mut small = table(4);
    let own = small.insert(tcp(2000, ForwardMode::Nat), T0).unwrap();
    assert!(far.index() >= small.capacity(), "an index beyond the small table");
    assert!(small.get(far).is_none(), "out of range: None, not entry 0");
    assert!(small.get_mut(far).is_none());
    assert!(small.remove(far).is_none());
    assert!(!small.on_packet(far, Direction::Inbound, Some(TcpFlags::SYN), T0).changed());
    assert_eq!(small.get(own).unwrap().cport, 2000, "its own entry untouched");
    assert_eq!(small.len(), 1);
    small.check_invariants().unwrap();
}

#[test]
fn clock_jumps_and_backwards_are_safe() {
    let mut t = table(8);
    let id = t.insert(tcp(1000, ForwardMode::Nat), T0).unwrap();
    t.on_packet(id, Direction::Inbound, Some(TcpFlags::SYN), T0);
    assert_eq!(t.expire(T0 - 5 * SEC, |_| ()), 0, "backwards: ignored");
    // A packet stamped before the wheel's position still expires after its timeout.
    let late = t.insert(tcp(1001, ForwardMode::Nat), T0 - 100 * SEC).unwrap();
    assert!(t.is_live(late));
    // Jump far ahead (several wheel turns at once).
    assert_eq!(t.expire(T0 + 100_000 * SEC, |_| ()), 2);
    assert!(t.is_empty());
    t.check_invariants().unwrap();
}

#[test]
fn bounded_expiry_resumes_and_tolerates_changes_in_between() {
    let mut t = table(200);
    let ids: Vec<_> = (0..150).map(|i| t.insert(tcp(1000 + i, ForwardMode::Nat), T0).unwrap()).collect();
    // All NONE (2 s) in the same tick. Drain 7 at a time, changing the table in between.
    let now = T0 + 3 * SEC;
    let mut total = 0;
    let mut rounds = 0;
    loop {
        let n = t.expire_at_most(now, 7, |c| assert!(c.cport >= 1000));
        assert!(n <= 7);
        total += n;
        rounds += 1;
        t.check_invariants().unwrap();
        if n == 0 {
            break;
        }
        match rounds {
            // Remove an entry that is still waiting in the drained slot.
            2 => {
                let id = *ids.iter().rev().find(|id| t.is_live(**id)).unwrap();
                t.remove(id);
                total += 1;
            }
            // Refresh one (it must survive) and insert one due in this very tick.
            3 => {
                let id = *ids.iter().rev().find(|id| t.is_live(**id)).unwrap();
                t.on_packet(id, Direction::Inbound, Some(TcpFlags::SYN), now);
                total += 1;
                let late = t.insert(tcp(5000, ForwardMode::Nat), now - 3 * SEC).unwrap();
                assert!(t.is_live(late));
                total -= 1;
            }
            _ => {}
        }
    }
    assert_eq!(total, 150);
    assert_eq!(t.len(), 1, "only the refreshed entry is left");
    assert_eq!(t.expire_at_most(now + 61 * SEC, 0, |_| ()), 0, "max 0: no work");
    assert_eq!(t.expire(now + 61 * SEC, |_| ()), 1);
    assert!(t.is_empty());
}

#[test]
fn iter_and_memory() {
    let mut t = table(100);
    for i in 0..10 {
        t.insert(tcp(1000 + i, ForwardMode::Nat), T0).unwrap();
    }
    let mut ports: Vec<_> = t.iter().map(|(id, c)| (c.cport, t.get(id).unwrap().cport)).collect();
    ports.sort();
    assert_eq!(ports.len(), 10);
    assert!(ports.iter().all(|(a, b)| a == b));

    let b = ConnTable::bytes_per_conn();
    assert!(b <= 96, "{b} bytes per connection (issue 16's budget: 96)");
    assert!(std::mem::size_of::<Conn>() <= 64, "{}", std::mem::size_of::<Conn>());
    let big = ConnTable::with_capacity(1_000_000, Timeouts::default());
    assert_eq!(big.capacity(), 1_000_000);
    assert!(big.memory_bytes() <= 1_000_000 * b + 64 * 1024, "{}", big.memory_bytes());
    assert!(ConnTable::try_with_capacity(1000, Timeouts::default()).is_ok());
}

#[test]
fn refusals_count_under_their_drop_reason() {
    use rvs_dataplane::conn::TableFull;
    use rvs_dataplane::stats::DropReason;
    assert_eq!(DropReason::from(TableFull::Full), DropReason::ConnTableFull);
    assert_eq!(DropReason::from(TableFull::InboundKeyExists), DropReason::ConnKeyClash);
    assert_eq!(DropReason::from(TableFull::ReplyKeyExists), DropReason::ConnKeyClash);
}

#[test]
fn an_expiry_set_from_a_duration_holds_to_the_wheel_precision() {
    let mut t = table(8);
    let now = 1000 * TICK_NS + 12_345;
    // Longer than the state's timeout (NONE: 2 s), shorter than another's, and one due.
    let a = t.insert(tcp(1, ForwardMode::Nat), now).unwrap();
    let b = t.insert(tcp(2, ForwardMode::Nat), now).unwrap();
    let c = t.insert(tcp(3, ForwardMode::Nat), now).unwrap();
    t.set_expires_in(a, now, 700_000_000_000);
    t.set_expires_in(b, now, 1_500_000_000);
    t.set_expires_in(c, now, 0);
    t.check_invariants().unwrap();
    for (id, left) in [(a, 700_000_000_000u64), (b, 1_500_000_000)] {
        let got = t.get(id).unwrap().expires_in_ns(now);
        assert!(got >= left && got <= left + TICK_NS, "{got} for {left}");
    }
    assert_eq!(expired(&mut t, now + TICK_NS), vec![key(L4Proto::Tcp, 3)], "due now: gone at the next tick");
    assert!(expired(&mut t, now + 1_500_000_000 - 1).is_empty(), "never early");
    assert_eq!(expired(&mut t, now + 1_500_000_000 + TICK_NS), vec![key(L4Proto::Tcp, 2)], "at most a tick late");
    assert!(expired(&mut t, now + 700_000_000_000 - 1).is_empty(), "past a wheel turn, never early");
    assert_eq!(expired(&mut t, now + 700_000_000_000 + TICK_NS), vec![key(L4Proto::Tcp, 1)]);
    t.check_invariants().unwrap();
}

// ---- half-open DR/IPIP entries: short timeout, eviction from a full table ----

/// A DR or IPIP connection on client port `cport` driven to half-open (SYN) at `now`;
/// `complete` also sends the client's ACK (ESTABLISHED).
fn syn(t: &mut ConnTable, cport: u16, mode: ForwardMode, complete: bool, now: u64) -> rvs_dataplane::conn::ConnId {
    let id = t.insert(tcp(cport, mode), now).unwrap();
    t.on_packet(id, Direction::Inbound, Some(TcpFlags::SYN), now);
    if complete {
        t.on_packet(id, Direction::Inbound, Some(TcpFlags::ACK), now);
    }
    id
}

#[test]
fn half_open_dr_entries_get_the_short_timeout_nat_ones_keep_syn_recv() {
    let to = Timeouts::default();
    assert!(to.half_open < to.syn_recv);
    let mut t = table(8);
    let dr = syn(&mut t, 1000, ForwardMode::Dr, false, T0);
    let ipip = syn(&mut t, 1001, ForwardMode::Tunnel, false, T0);
    let nat = syn(&mut t, 1002, ForwardMode::Nat, false, T0);
    let done = syn(&mut t, 1003, ForwardMode::Dr, true, T0);
    let ho = u64::from(to.half_open) * SEC;
    assert!(expired(&mut t, T0 + ho - 1).is_empty());
    let mut gone = expired(&mut t, T0 + ho + TICK_NS);
    gone.sort_by_key(|k| k.sport);
    assert_eq!(gone, vec![key(L4Proto::Tcp, 1000), key(L4Proto::Tcp, 1001)]);
    assert!(!t.is_live(dr) && !t.is_live(ipip) && t.is_live(nat) && t.is_live(done));
    // A retransmitted SYN refreshes a half-open entry.
    let again = syn(&mut t, 1004, ForwardMode::Dr, false, T0 + 10 * SEC);
    t.on_packet(again, Direction::Inbound, Some(TcpFlags::SYN), T0 + 13 * SEC);
    assert!(expired(&mut t, T0 + 16 * SEC).is_empty(), "refreshed at 13 s");
    assert!(t.is_live(again));
    t.check_invariants().unwrap();
}

#[test]
fn eviction_takes_the_oldest_half_open_entry_and_nothing_else() {
    let mut t = table(6);
    let est = syn(&mut t, 1000, ForwardMode::Dr, true, T0);
    let old = syn(&mut t, 1001, ForwardMode::Dr, false, T0);
    let nat = syn(&mut t, 1002, ForwardMode::Nat, false, T0 + 1);
    let mid = syn(&mut t, 1003, ForwardMode::Tunnel, false, T0 + 2);
    let completes = syn(&mut t, 1004, ForwardMode::Dr, false, T0 + 3);
    let young = syn(&mut t, 1005, ForwardMode::Dr, false, T0 + 4);
    // 1004 completes its handshake: no longer half-open.
    t.on_packet(completes, Direction::Inbound, Some(TcpFlags::ACK), T0 + 5);
    assert_eq!(t.insert(tcp(2000, ForwardMode::Dr), T0 + 6), Err(TableFull::Full));
    let order: Vec<u16> = std::iter::from_fn(|| t.evict_half_open()).map(|c| c.cport).collect();
    assert_eq!(order, vec![1001, 1003, 1005], "oldest first, half-open only");
    assert!(t.is_live(est) && t.is_live(nat) && t.is_live(completes));
    assert!(!t.is_live(old) && !t.is_live(mid) && !t.is_live(young));
    assert_eq!(t.len(), 3);
    assert!(t.evict_half_open().is_none(), "never an established or NAT entry");
    t.check_invariants().unwrap();
}

#[test]
fn a_reused_slot_is_not_taken_for_the_old_half_open_entry() {
    let mut t = table(2);
    let a = syn(&mut t, 1000, ForwardMode::Dr, false, T0);
    t.remove(a).unwrap();
    // The slot is reused by an established DR connection: the stale record names it.
    let b = syn(&mut t, 1001, ForwardMode::Dr, true, T0 + 1);
    assert_eq!(a, b, "LIFO free list reuses the slot");
    let c = syn(&mut t, 1002, ForwardMode::Dr, false, T0 + 2);
    assert_eq!(t.evict_half_open().map(|x| x.cport), Some(1002));
    assert!(t.is_live(b) && !t.is_live(c));
}

#[test]
fn the_half_open_ring_stays_bounded_under_churn() {
    let mut t = table(4);
    // Many more half-open entries than the capacity, completing or evicted as they go.
    for i in 0..1000u16 {
        let now = T0 + u64::from(i);
        if t.len() == t.capacity() {
            assert!(t.evict_half_open().is_some(), "{i}");
        }
        // Every third completes its handshake and closes: its record goes stale.
        let id = syn(&mut t, 1000 + i, ForwardMode::Dr, i % 3 == 0, now);
        if i % 3 == 0 {
            t.remove(id).unwrap();
        }
        assert!(t.half_open_records() <= t.capacity());
    }
    t.check_invariants().unwrap();
}

mod half_open_props {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// A new SYN of this mode (index into MODES); complete = its ACK follows later.
        Syn(usize),
        /// The client's next packet on entry `pick`: ACK, FIN or RST.
        Packet(usize, u8),
        /// A new SYN into a full table: evict, then insert.
        Evict,
    }

    const MODES: [ForwardMode; 4] = [ForwardMode::Dr, ForwardMode::Tunnel, ForwardMode::Nat, ForwardMode::FullNat];

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..4usize).prop_map(Op::Syn),
            3 => (any::<usize>(), 0..3u8).prop_map(|(p, f)| Op::Packet(p, f)),
            2 => Just(Op::Evict),
        ]
    }

    fn half_open(c: &Conn) -> bool {
        c.state == ConnState::Tcp(TcpState::SynRecv) && matches!(c.forward, ForwardMode::Dr | ForwardMode::Tunnel)
    }

    proptest! {
        /// Eviction never removes an entry that is not half-open, and removes the one that
        /// became half-open first. Client packets after the SYN never re-enter SYN_RECV,
        /// and fewer SYNs than the ring holds are sent, so the order is exact.
        #[test]
        fn eviction_is_half_open_only_and_oldest_first(ops in proptest::collection::vec(op(), 1..60)) {
            let mut t = ConnTable::with_capacity_and_seed(64, Timeouts::default(), 7);
            let mut order: Vec<u16> = vec![]; // cports, in the order they became half-open
            let mut next = 1000u16;
            for (step, op) in ops.into_iter().enumerate() {
                let now = T0 + step as u64;
                match op {
                    Op::Syn(m) => {
                        let id = t.insert(tcp(next, MODES[m]), now).unwrap();
                        t.on_packet(id, Direction::Inbound, Some(TcpFlags::SYN), now);
                        if half_open(t.get(id).unwrap()) {
                            order.push(next);
                        }
                        next += 1;
                    }
                    Op::Packet(pick, f) => {
                        let ids: Vec<_> = t.iter().map(|(id, _)| id).collect();
                        if ids.is_empty() { continue; }
                        let id = ids[pick % ids.len()];
                        let flags = [TcpFlags::ACK, TcpFlags::FIN, TcpFlags::RST][f as usize];
                        t.on_packet(id, Direction::Inbound, Some(flags), now);
                        let c = *t.get(id).unwrap();
                        if !half_open(&c) {
                            order.retain(|&p| p != c.cport);
                        }
                    }
                    Op::Evict => {
                        let before: Vec<Conn> = t.iter().map(|(_, c)| *c).collect();
                        match t.evict_half_open() {
                            Some(c) => {
                                prop_assert!(half_open(&c), "evicted {c:?}");
                                prop_assert_eq!(Some(c.cport), order.first().copied(), "not the oldest");
                                order.remove(0);
                                prop_assert_eq!(t.len(), before.len() - 1);
                            }
                            None => {
                                prop_assert!(order.is_empty(), "a half-open entry was left: {order:?}");
                                prop_assert!(!before.iter().any(half_open));
                            }
                        }
                    }
                }
                t.check_invariants().map_err(TestCaseError::fail)?;
            }
        }
    }
}

/// The table works the same on every kind of memory, and says where it lives: a 1M
/// table's slab, index and ring are 43 pages of 2 MiB (31 + 8 + 4), reserved or (pool too small)
/// transparent, never lost; a small table takes no reserved page.
#[test]
fn table_memory_on_every_page_policy() {
    use rvs_drivers::hugemem::{Fallback, PagePolicy};
    for pages in [PagePolicy::HugeTlb, PagePolicy::Transparent, PagePolicy::Base] {
        let mut t = ConnTable::try_with_pages(70_000, Timeouts::default(), 9, pages).expect("memory");
        for p in 1..=60_000u16 {
            t.insert(tcp(p, ForwardMode::FullNat), T0).expect("room");
        }
        for p in (1..=60_000u16).step_by(3) {
            let (id, _) = t.lookup(&key(L4Proto::Tcp, p)).expect("inserted");
            t.remove(id).expect("live");
        }
        t.check_invariants().expect("invariants");
        assert_eq!(t.len(), 40_000);
        let m = t.memory();
        match pages {
            PagePolicy::HugeTlb => assert!(m.huge_pages > 0 || m.fallback_pages > 0, "{m:?}"),
            _ => assert_eq!((m.huge_pages, m.fallback_pages), (0, 0), "{m:?}"),
        }
    }

    let big = ConnTable::with_capacity(1_000_000, Timeouts::default()).memory();
    assert_eq!(big.huge_pages + big.fallback_pages, 43, "{big:?}");
    assert_eq!(big.mapped_bytes, 43 * (2 << 20));
    match big.fallback {
        None => assert_eq!(big.huge_pages, 43),
        Some(f) => assert!(matches!(f, Fallback::NoPages { .. }) && big.fallback_pages > 0, "{big:?}"),
    }

    let small = table(1000).memory();
    assert_eq!((small.huge_pages, small.fallback_pages), (0, 0));
    assert!(matches!(small.fallback, Some(Fallback::Small { .. })), "{small:?}");
}
