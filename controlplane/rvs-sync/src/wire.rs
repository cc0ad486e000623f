//! The sync datagram (one UDP payload), its encoder and its total decoder.
//!
//! Every integer is big-endian (network order). A datagram is a fixed 48-byte header, a
//! payload whose length the header gives, and a 32-byte HMAC-SHA256 over everything before
//! it:
//!
//! ```text
//!  0               4       5       6       7       8
//!  +---------------+-------+-------+-------+-------+
//!  | magic "RVSY"  |version| type  | flags |  0    |
//!  +---------------+-------+-------+-------+-------+
//!  |  8: epoch (u64): sender's start, µs since the UNIX epoch        |
//!  | 16: counter (u64): +1 on every message sent, any type (replay)  |
//!  | 24: seq (u32)          | 28: oldest (u32)                        |
//!  | 32: ack (u32)          | 36: ack_epoch (u64) ...                 |
//!  | ... ack_epoch          | 44: workers (u16) | 46: payload_len (u16)|
//!  | 48: payload (payload_len bytes)                                  |
//!  | 48 + payload_len: HMAC-SHA256(key, bytes 0 .. 48 + payload_len)  |
//!  +------------------------------------------------------------------+
//! ```
//!
//! * `version` is [`VERSION`]; the reserved byte 7 is 0.
//! * `type`: 1 DATA, 2 BULK_END, 3 ACK, 4 NACK, 5 HEARTBEAT ([`MsgType`]).
//! * `flags`: bit 0 [`Flags::WANT_BULK`] ("send me your whole table": this is the bulk
//!   request; there is no separate message type, the requester sets the bit on every
//!   message until the peer's BULK_END arrives), bit 1 [`Flags::BULK_SENDING`] ("my bulk
//!   stream is in progress"). Other bits must be 0.
//! * `seq`: for DATA and BULK_END, this message's data sequence number (consecutive,
//!   wrapping); for the other types, the sender's *next* data sequence number, so a lost
//!   tail is seen by the next message of any type.
//! * `oldest`: the oldest data sequence number the sender still holds for retransmission
//!   (`== next seq` when it holds none). The receiver gives up on anything older.
//! * `ack`: cumulative acknowledgement of the peer's data: every data seq before `ack` was
//!   received (or given up on). `ack_epoch` is the peer epoch it refers to (0: none heard).
//! * `workers`: the sender's number of data path workers.
//!
//! Payloads:
//!
//! ```text
//! DATA       record_index (u64) | count (u16) | count records
//! BULK_END   record_index (u64) | streamed (u32): records the bulk stream carried
//! ACK        (empty)
//! NACK       count (u8, <= MAX_NACK_RANGES) | count × [from (u32), to (u32)] inclusive
//! HEARTBEAT  next_record (u64)
//! ```
//!
//! `record_index` is the sender's running index (per epoch) of the message's first record
//! (of the next record, for BULK_END and HEARTBEAT): a receiver that skips lost messages
//! counts the records it missed from the difference.
//!
//! Records (`type` byte first):
//!
//! ```text
//! 1 conn     proto (6/17) | forward (0 DR, 1 NAT, 2 FullNAT, 3 tunnel) | state | 0 |
//!            flags (u16) | expires_in_ms (u32) | client | vip | local | server (sockaddr)
//! 2 persist  proto | 0 | expires_in_s (u32) | vip (sockaddr) | client (ipaddr) | server (sockaddr)
//! 3 conn, SYN-proxied: as 1, then seq_offset (u32) | ts_offset (u32) | window (u8) |
//!            pending (u8: 0 or 1)   (`rvs_dataplane::sync::SynProxyRecord`)
//! ipaddr   = family (4 or 6) | 4 or 16 address bytes
//! sockaddr = ipaddr | port (u16)
//! state    = TcpState as u8 (0..=10, TcpState::ALL order) for TCP, 16 for UDP
//! ```
//!
//! Decoding checks, in this order: the length (header + HMAC at least, at most
//! [`MAX_DATAGRAM`], equal to what `payload_len` says), then the HMAC (constant-time, by
//! the `hmac` crate's `verify_slice`), then the contents. So an unauthenticated datagram
//! is never parsed. Decoding is total: any malformed input gives a [`DecodeError`] that
//! names what was wrong, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, Mac};
use rvs_dataplane::sync::{ConnRecord, PersistRecord, SynProxyRecord, SyncRecord};
use rvs_dataplane::types::{ConnState, ForwardMode, L4Proto, TcpState};
use sha2::Sha256;

/// The first four bytes of every datagram.
pub const MAGIC: [u8; 4] = *b"RVSY";
/// The format version this crate speaks.
pub const VERSION: u8 = 1;
/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 48;
/// Bytes of the HMAC-SHA256 trailer.
pub const MAC_LEN: usize = 32;
/// The largest datagram accepted (the largest UDP payload).
pub const MAX_DATAGRAM: usize = 65_507;
/// The most ranges one NACK carries.
pub const MAX_NACK_RANGES: usize = 64;
/// Bytes of a DATA payload before its records: record index and count.
pub const DATA_PREFIX_LEN: usize = 10;
/// The state byte of a UDP flow.
pub const UDP_STATE: u8 = 16;

/// Record type byte of a [`ConnRecord`].
const REC_CONN: u8 = 1;
/// Record type byte of a [`PersistRecord`].
const REC_PERSIST: u8 = 2;
/// Record type byte of a [`ConnRecord`] with a [`SynProxyRecord`].
const REC_CONN_SYNPROXY: u8 = 3;
/// Bytes a [`SynProxyRecord`] adds to its connection record.
const SYNPROXY_LEN: usize = 10;

/// Byte offsets of the header fields.
mod field {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: usize = 4;
    pub const TYPE: usize = 5;
    pub const FLAGS: usize = 6;
    pub const RESERVED: usize = 7;
    pub const EPOCH: Range<usize> = 8..16;
    pub const COUNTER: Range<usize> = 16..24;
    pub const SEQ: Range<usize> = 24..28;
    pub const OLDEST: Range<usize> = 28..32;
    pub const ACK: Range<usize> = 32..36;
    pub const ACK_EPOCH: Range<usize> = 36..44;
    pub const WORKERS: Range<usize> = 44..46;
    pub const PAYLOAD_LEN: Range<usize> = 46..48;
}

type HmacSha256 = Hmac<Sha256>;

/// The message type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MsgType {
    /// A batch of records (reliable).
    Data = 1,
    /// End of a bulk stream (reliable).
    BulkEnd = 2,
    /// A cumulative acknowledgement only.
    Ack = 3,
    /// Missing data sequence ranges.
    Nack = 4,
    /// Liveness, with the sender's next data seq and record index.
    Heartbeat = 5,
}

impl MsgType {
    /// The type for a type byte.
    pub const fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(MsgType::Data),
            2 => Some(MsgType::BulkEnd),
            3 => Some(MsgType::Ack),
            4 => Some(MsgType::Nack),
            5 => Some(MsgType::Heartbeat),
            _ => None,
        }
    }
}

/// The header's flag bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// The sender asks for a bulk resync (its peer's whole table).
    pub const WANT_BULK: u8 = 1;
    /// The sender is streaming a bulk resync.
    pub const BULK_SENDING: u8 = 2;
    /// Every defined bit.
    pub const ALL: u8 = Self::WANT_BULK | Self::BULK_SENDING;

    /// Whether every bit of `bit` is set.
    pub const fn has(self, bit: u8) -> bool {
        self.0 & bit == bit
    }
}

/// The fixed header fields (the type is the [`Body`]'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Header {
    /// The sender's epoch: its start time in µs since the UNIX epoch.
    pub epoch: u64,
    /// The per-message counter (anti-replay).
    pub counter: u64,
    /// DATA/BULK_END: this message's data seq; other types: the sender's next data seq.
    pub seq: u32,
    /// The oldest data seq the sender still holds for retransmission.
    pub oldest: u32,
    /// Every peer data seq before this one was received or given up on.
    pub ack: u32,
    /// The peer epoch `ack` refers to (0: none).
    pub ack_epoch: u64,
    /// The sender's worker count.
    pub workers: u16,
    /// Flag bits.
    pub flags: Flags,
}

/// A message's type-specific part.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Body {
    /// A batch of records.
    Data {
        /// The sender's running index of the first record.
        record_index: u64,
        /// The records.
        records: Vec<SyncRecord>,
    },
    /// End of a bulk stream.
    BulkEnd {
        /// The sender's running index of its next record.
        record_index: u64,
        /// How many records the bulk stream carried.
        streamed: u32,
    },
    /// Acknowledgement only (the ack is in the header).
    Ack,
    /// Missing data seqs, inclusive ranges.
    Nack {
        /// `[from, to]` ranges, at most [`MAX_NACK_RANGES`].
        ranges: Vec<(u32, u32)>,
    },
    /// Liveness.
    Heartbeat {
        /// The sender's running index of its next record.
        next_record: u64,
    },
}

impl Body {
    /// The type byte of this body.
    pub fn msg_type(&self) -> MsgType {
        match self {
            Body::Data { .. } => MsgType::Data,
            Body::BulkEnd { .. } => MsgType::BulkEnd,
            Body::Ack => MsgType::Ack,
            Body::Nack { .. } => MsgType::Nack,
            Body::Heartbeat { .. } => MsgType::Heartbeat,
        }
    }
}

/// One datagram's content.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Message {
    /// The fixed header.
    pub header: Header,
    /// The type-specific payload.
    pub body: Body,
}

/// Why a datagram was refused; the message says what was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// The datagram is shorter than a header and an HMAC.
    #[error("datagram of {0} bytes is shorter than header and HMAC")]
    TooShort(usize),
    /// The datagram is longer than any UDP payload.
    #[error("datagram of {0} bytes is longer than the largest UDP payload")]
    Oversized(usize),
    /// The header's payload length disagrees with the datagram's length.
    #[error("payload length {declared} in the header, {actual} in the datagram")]
    LengthMismatch {
        /// What the header says.
        declared: usize,
        /// What the datagram holds.
        actual: usize,
    },
    /// The HMAC does not verify (wrong key or altered datagram).
    #[error("HMAC does not verify")]
    BadHmac,
    /// The magic is not `RVSY`.
    #[error("bad magic")]
    BadMagic,
    /// An unknown version.
    #[error("unknown version {0}")]
    BadVersion(u8),
    /// An unknown message type.
    #[error("unknown message type {0}")]
    BadType(u8),
    /// Undefined flag bits, or a non-zero reserved byte.
    #[error("undefined flag bits or reserved byte {0:#04x}")]
    BadFlags(u8),
    /// The payload ends inside the named field.
    #[error("payload truncated in {0}")]
    Truncated(&'static str),
    /// Bytes left after the last field the counts describe.
    #[error("{0} trailing bytes after the payload's last field")]
    TrailingBytes(usize),
    /// An unknown record type.
    #[error("unknown record type {0}")]
    BadRecordType(u8),
    /// An address family byte other than 4 or 6.
    #[error("unknown address family {0}")]
    BadFamily(u8),
    /// A protocol byte other than TCP (6) or UDP (17).
    #[error("unknown protocol {0}")]
    BadProto(u8),
    /// An unknown forwarding mode.
    #[error("unknown forwarding mode {0}")]
    BadForward(u8),
    /// An unknown connection state.
    #[error("unknown connection state {0}")]
    BadState(u8),
    /// A non-zero padding byte in a record.
    #[error("non-zero padding byte in a record")]
    BadPadding,
    /// A SYN proxy record's pending byte other than 0 or 1.
    #[error("SYN proxy pending byte {0}, not 0 or 1")]
    BadPending(u8),
    /// More NACK ranges than [`MAX_NACK_RANGES`].
    #[error("{0} NACK ranges, more than the limit")]
    TooManyRanges(usize),
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: new_from_slice never fails for it.
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
}

fn put_sock(out: &mut Vec<u8>, sa: SocketAddr) {
    put_ip(out, sa.ip());
    out.extend_from_slice(&sa.port().to_be_bytes());
}

fn ip_len(ip: IpAddr) -> usize {
    if ip.is_ipv4() {
        5
    } else {
        17
    }
}

fn sock_len(sa: SocketAddr) -> usize {
    ip_len(sa.ip()) + 2
}

const fn forward_byte(f: ForwardMode) -> u8 {
    match f {
        ForwardMode::Dr => 0,
        ForwardMode::Nat => 1,
        ForwardMode::FullNat => 2,
        ForwardMode::Tunnel => 3,
    }
}

const fn state_byte(s: ConnState) -> u8 {
    match s {
        ConnState::Tcp(t) => t as u8,
        ConnState::Udp => UDP_STATE,
    }
}

/// Bytes `rec` takes in a DATA payload.
pub fn record_len(rec: &SyncRecord) -> usize {
    match rec {
        SyncRecord::Conn(c) => {
            let proxy = if c.synproxy.is_some() { SYNPROXY_LEN } else { 0 };
            11 + sock_len(c.client) + sock_len(c.vip) + sock_len(c.local) + sock_len(c.server) + proxy
        }
        SyncRecord::Persist(p) => 7 + sock_len(p.vip) + ip_len(p.client) + sock_len(p.server),
    }
}

/// Appends `rec`'s encoding to `out`.
pub fn put_record(out: &mut Vec<u8>, rec: &SyncRecord) {
    match rec {
        SyncRecord::Conn(c) => {
            let ty = if c.synproxy.is_some() { REC_CONN_SYNPROXY } else { REC_CONN };
            out.extend_from_slice(&[ty, c.proto.ipproto(), forward_byte(c.forward), state_byte(c.state), 0]);
            out.extend_from_slice(&c.flags.to_be_bytes());
            out.extend_from_slice(&c.expires_in_ms.to_be_bytes());
            for sa in [c.client, c.vip, c.local, c.server] {
                put_sock(out, sa);
            }
            if let Some(p) = c.synproxy {
                out.extend_from_slice(&p.seq_offset.to_be_bytes());
                out.extend_from_slice(&p.ts_offset.to_be_bytes());
                out.extend_from_slice(&[p.window, u8::from(p.pending)]);
            }
        }
        SyncRecord::Persist(p) => {
            out.extend_from_slice(&[REC_PERSIST, p.proto.ipproto(), 0]);
            out.extend_from_slice(&p.expires_in_s.to_be_bytes());
            put_sock(out, p.vip);
            put_ip(out, p.client);
            put_sock(out, p.server);
        }
    }
}

/// Bytes of a DATA datagram carrying records of `records_len` bytes in all.
pub const fn data_datagram_len(records_len: usize) -> usize {
    HEADER_LEN + DATA_PREFIX_LEN + records_len + MAC_LEN
}

/// The datagram for `msg`, authenticated with `key`.
///
/// The caller keeps a DATA message within the size it wants (see [`record_len`]); at most
/// `u16::MAX` records and payload bytes fit the format, and a NACK carries at most
/// [`MAX_NACK_RANGES`] ranges: extra records, bytes or ranges are a caller bug, so this
/// truncates them (debug builds assert).
pub fn encode(msg: &Message, key: &[u8]) -> Vec<u8> {
    let h = &msg.header;
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, msg.body.msg_type() as u8, h.flags.0, 0]);
    out.extend_from_slice(&h.epoch.to_be_bytes());
    out.extend_from_slice(&h.counter.to_be_bytes());
    out.extend_from_slice(&h.seq.to_be_bytes());
    out.extend_from_slice(&h.oldest.to_be_bytes());
    out.extend_from_slice(&h.ack.to_be_bytes());
    out.extend_from_slice(&h.ack_epoch.to_be_bytes());
    out.extend_from_slice(&h.workers.to_be_bytes());
    out.extend_from_slice(&[0, 0]); // payload length, below
    debug_assert_eq!(out.len(), HEADER_LEN);
    match &msg.body {
        Body::Data { record_index, records } => {
            debug_assert!(records.len() <= usize::from(u16::MAX));
            let records = &records[..records.len().min(usize::from(u16::MAX))];
            out.extend_from_slice(&record_index.to_be_bytes());
            out.extend_from_slice(&(records.len() as u16).to_be_bytes());
            for r in records {
                put_record(&mut out, r);
            }
        }
        Body::BulkEnd { record_index, streamed } => {
            out.extend_from_slice(&record_index.to_be_bytes());
            out.extend_from_slice(&streamed.to_be_bytes());
        }
        Body::Ack => {}
        Body::Nack { ranges } => {
            debug_assert!(ranges.len() <= MAX_NACK_RANGES);
            let ranges = &ranges[..ranges.len().min(MAX_NACK_RANGES)];
            out.push(ranges.len() as u8);
            for (from, to) in ranges {
                out.extend_from_slice(&from.to_be_bytes());
                out.extend_from_slice(&to.to_be_bytes());
            }
        }
        Body::Heartbeat { next_record } => out.extend_from_slice(&next_record.to_be_bytes()),
    }
    let payload_len = out.len() - HEADER_LEN;
    debug_assert!(payload_len <= usize::from(u16::MAX) && out.len() + MAC_LEN <= MAX_DATAGRAM);
    out[field::PAYLOAD_LEN].copy_from_slice(&(payload_len.min(usize::from(u16::MAX)) as u16).to_be_bytes());
    let mut m = mac(key);
    m.update(&out);
    out.extend_from_slice(&m.finalize().into_bytes());
    out
}

/// Authenticates arbitrary header and payload bytes: sets the payload length field and
/// appends the HMAC. For tests and fuzzing, which need datagrams whose contents reach the
/// parser; `bytes` shorter than a header, or with a payload longer than `u16::MAX`, are
/// returned as they are (the decoder refuses them by length).
pub fn seal(mut bytes: Vec<u8>, key: &[u8]) -> Vec<u8> {
    let Some(len) = bytes.len().checked_sub(HEADER_LEN).and_then(|n| u16::try_from(n).ok()) else {
        return bytes;
    };
    bytes[field::PAYLOAD_LEN].copy_from_slice(&len.to_be_bytes());
    let mut m = mac(key);
    m.update(&bytes);
    bytes.extend_from_slice(&m.finalize().into_bytes());
    bytes
}

/// A cursor over the payload: every read checks the length first.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(a))
    }
    fn ip(&mut self, what: &'static str) -> Result<IpAddr, DecodeError> {
        match self.u8(what)? {
            4 => {
                let mut a = [0; 4];
                a.copy_from_slice(self.take(4, what)?);
                Ok(IpAddr::V4(Ipv4Addr::from(a)))
            }
            6 => {
                let mut a = [0; 16];
                a.copy_from_slice(self.take(16, what)?);
                Ok(IpAddr::V6(Ipv6Addr::from(a)))
            }
            f => Err(DecodeError::BadFamily(f)),
        }
    }
    fn sock(&mut self, what: &'static str) -> Result<SocketAddr, DecodeError> {
        let ip = self.ip(what)?;
        Ok(SocketAddr::new(ip, self.u16(what)?))
    }
    fn proto(&mut self) -> Result<L4Proto, DecodeError> {
        let b = self.u8("record protocol")?;
        L4Proto::from_ipproto(b).ok_or(DecodeError::BadProto(b))
    }
    fn padding(&mut self) -> Result<(), DecodeError> {
        match self.u8("record padding")? {
            0 => Ok(()),
            _ => Err(DecodeError::BadPadding),
        }
    }
    fn synproxy(&mut self) -> Result<SynProxyRecord, DecodeError> {
        let seq_offset = self.u32("SYN proxy sequence offset")?;
        let ts_offset = self.u32("SYN proxy timestamp offset")?;
        let window = self.u8("SYN proxy window rewrite")?;
        let pending = match self.u8("SYN proxy pending flag")? {
            0 => false,
            1 => true,
            b => return Err(DecodeError::BadPending(b)),
        };
        Ok(SynProxyRecord { pending, seq_offset, ts_offset, window })
    }
    fn record(&mut self) -> Result<SyncRecord, DecodeError> {
        match self.u8("record type")? {
            ty @ (REC_CONN | REC_CONN_SYNPROXY) => {
                let proto = self.proto()?;
                let forward = match self.u8("forwarding mode")? {
                    0 => ForwardMode::Dr,
                    1 => ForwardMode::Nat,
                    2 => ForwardMode::FullNat,
                    3 => ForwardMode::Tunnel,
                    b => return Err(DecodeError::BadForward(b)),
                };
                let state = match self.u8("connection state")? {
                    UDP_STATE => ConnState::Udp,
                    b => ConnState::Tcp(*TcpState::ALL.get(usize::from(b)).ok_or(DecodeError::BadState(b))?),
                };
                self.padding()?;
                let flags = self.u16("connection flags")?;
                let expires_in_ms = self.u32("connection expiry")?;
                let (client, vip) = (self.sock("client address")?, self.sock("VIP address")?);
                let (local, server) = (self.sock("local address")?, self.sock("server address")?);
                let synproxy = if ty == REC_CONN_SYNPROXY { Some(self.synproxy()?) } else { None };
                Ok(SyncRecord::Conn(ConnRecord {
                    proto,
                    forward,
                    state,
                    flags,
                    expires_in_ms,
                    client,
                    vip,
                    local,
                    server,
                    synproxy,
                }))
            }
            REC_PERSIST => {
                let proto = self.proto()?;
                self.padding()?;
                Ok(SyncRecord::Persist(PersistRecord {
                    proto,
                    expires_in_s: self.u32("persistence expiry")?,
                    vip: self.sock("VIP address")?,
                    client: self.ip("client address")?,
                    server: self.sock("server address")?,
                }))
            }
            t => Err(DecodeError::BadRecordType(t)),
        }
    }
}

fn be_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// The message in `bytes`, if it is well-formed and authenticated with `key`.
///
/// Checks the length, then the HMAC, then parses: see the module docs.
pub fn decode(bytes: &[u8], key: &[u8]) -> Result<Message, DecodeError> {
    let n = bytes.len();
    if n < HEADER_LEN + MAC_LEN {
        return Err(DecodeError::TooShort(n));
    }
    if n > MAX_DATAGRAM {
        return Err(DecodeError::Oversized(n));
    }
    let declared = usize::from(be_u16(&bytes[field::PAYLOAD_LEN]));
    let actual = n - HEADER_LEN - MAC_LEN;
    if declared != actual {
        return Err(DecodeError::LengthMismatch { declared, actual });
    }
    let (signed, tag) = bytes.split_at(n - MAC_LEN);
    let mut m = mac(key);
    m.update(signed);
    m.verify_slice(tag).map_err(|_| DecodeError::BadHmac)?;

    if bytes[field::MAGIC] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if bytes[field::VERSION] != VERSION {
        return Err(DecodeError::BadVersion(bytes[field::VERSION]));
    }
    let ty = MsgType::from_u8(bytes[field::TYPE]).ok_or(DecodeError::BadType(bytes[field::TYPE]))?;
    let flags = bytes[field::FLAGS];
    if flags & !Flags::ALL != 0 {
        return Err(DecodeError::BadFlags(flags));
    }
    if bytes[field::RESERVED] != 0 {
        return Err(DecodeError::BadFlags(bytes[field::RESERVED]));
    }
    let header = Header {
        epoch: be_u64(&bytes[field::EPOCH]),
        counter: be_u64(&bytes[field::COUNTER]),
        seq: be_u32(&bytes[field::SEQ]),
        oldest: be_u32(&bytes[field::OLDEST]),
        ack: be_u32(&bytes[field::ACK]),
        ack_epoch: be_u64(&bytes[field::ACK_EPOCH]),
        workers: be_u16(&bytes[field::WORKERS]),
        flags: Flags(flags),
    };
    let mut r = Reader { buf: &signed[HEADER_LEN..] };
    let body = match ty {
        MsgType::Data => {
            let record_index = r.u64("record index")?;
            let count = r.u16("record count")?;
            // Each record takes at least 8 bytes, so the count is checked against the
            // payload before reserving: a lying count cannot make us allocate much.
            let mut records = Vec::with_capacity(usize::from(count).min(r.buf.len() / 8));
            for _ in 0..count {
                records.push(r.record()?);
            }
            Body::Data { record_index, records }
        }
        MsgType::BulkEnd => {
            Body::BulkEnd { record_index: r.u64("record index")?, streamed: r.u32("bulk record count")? }
        }
        MsgType::Ack => Body::Ack,
        MsgType::Nack => {
            let count = usize::from(r.u8("range count")?);
            if count > MAX_NACK_RANGES {
                return Err(DecodeError::TooManyRanges(count));
            }
            let mut ranges = Vec::with_capacity(count);
            for _ in 0..count {
                ranges.push((r.u32("range start")?, r.u32("range end")?));
            }
            Body::Nack { ranges }
        }
        MsgType::Heartbeat => Body::Heartbeat { next_record: r.u64("next record index")? },
    };
    if !r.buf.is_empty() {
        return Err(DecodeError::TrailingBytes(r.buf.len()));
    }
    Ok(Message { header, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &[u8] = b"test-key";

    /// Hex with spaces and `#` comments to bytes.
    fn hex(s: &str) -> Vec<u8> {
        let digits: String = s
            .lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .flat_map(|l| l.chars())
            .filter(|c| !c.is_whitespace())
            .collect();
        assert!(digits.len().is_multiple_of(2), "odd hex digit count");
        (0..digits.len()).step_by(2).map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap()).collect()
    }

    /// The header of every fixture, with its type, flags and payload length.
    fn fixture_header(ty: u8, flags: u8, payload_len: u16) -> String {
        format!(
            "52565359 01 {ty:02x} {flags:02x} 00  # magic, version, type, flags, reserved
             0102030405060708                   # epoch
             0000000000000009                   # counter
             00000010 0000000e                  # seq 16, oldest 14
             00000020 1112131415161718          # ack 32, ack epoch
             0004 {payload_len:04x}             # 4 workers, payload length"
        )
    }

    fn fixture_msg(body: Body, flags: u8) -> Message {
        Message {
            header: Header {
                epoch: 0x0102030405060708,
                counter: 9,
                seq: 16,
                oldest: 14,
                ack: 32,
                ack_epoch: 0x1112131415161718,
                workers: 4,
                flags: Flags(flags),
            },
            body,
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// One fixture per message type: (message, expected datagram). The HMACs were
    /// computed independently (Python's `hmac` module over the same bytes).
    fn fixtures() -> Vec<(Message, Vec<u8>)> {
        let conn = SyncRecord::Conn(ConnRecord {
            proto: L4Proto::Tcp,
            forward: ForwardMode::FullNat,
            client: sa("10.0.0.1:40000"),
            vip: sa("192.168.1.1:80"),
            local: sa("10.1.0.1:1024"),
            server: sa("10.2.0.1:8080"),
            state: ConnState::Tcp(TcpState::Established),
            flags: 5,
            expires_in_ms: 900_000,
            synproxy: None,
        });
        let proxied = SyncRecord::Conn(ConnRecord {
            proto: L4Proto::Tcp,
            forward: ForwardMode::Nat,
            client: sa("10.0.0.1:40000"),
            vip: sa("192.168.1.1:80"),
            local: sa("10.0.0.1:40000"),
            server: sa("10.2.0.1:80"),
            state: ConnState::Tcp(TcpState::Established),
            flags: 4,
            expires_in_ms: 60_000,
            synproxy: Some(SynProxyRecord {
                pending: false,
                seq_offset: 0x1122_3344,
                ts_offset: 0x5566_7788,
                window: 0x27,
            }),
        });
        let persist = SyncRecord::Persist(PersistRecord {
            proto: L4Proto::Udp,
            vip: sa("[2001:db8::1]:53"),
            client: "2001:db8:1::".parse().unwrap(),
            server: sa("[2001:db8::2]:5353"),
            expires_in_s: 300,
        });
        let data = format!(
            "{}
             0000000000000064 0002                  # record index 100, 2 records
             01 06 02 01 00 0005 000dbba0           # conn: TCP, fullnat, ESTABLISHED, pad, flags, 900 s
             04 0a000001 9c40  04 c0a80101 0050     # client, VIP
             04 0a010001 0400  04 0a020001 1f90     # local, server
             02 11 00 0000012c                      # persist: UDP, pad, 300 s
             06 20010db8000000000000000000000001 0035  # VIP
             06 20010db8000100000000000000000000       # client network
             06 20010db8000000000000000000000002 14e9  # server
             99e8f229e26909728d187850110252f00b53afbf84c5223e383cdeecbc6f60f5",
            fixture_header(1, 0, 111)
        );
        let data_proxied = format!(
            "{}
             0000000000000065 0001                  # record index 101, 1 record
             03 06 01 01 00 0004 0000ea60           # SYN-proxied conn: TCP, nat, ESTABLISHED, pad, flags, 60 s
             04 0a000001 9c40  04 c0a80101 0050     # client, VIP
             04 0a000001 9c40  04 0a020001 0050     # local (the client), server
             11223344 55667788 27 00                # seq offset, ts offset, window rewrite, not pending
             99441e0e9d5c1ec346d28d77114ceffddad5535b7249b74747b66093402593fb",
            fixture_header(1, 0, 59)
        );
        // An IPv6 flow (NAT66): every address a 16-byte one, 87 bytes in all.
        let conn6 = SyncRecord::Conn(ConnRecord {
            proto: L4Proto::Tcp,
            forward: ForwardMode::Nat,
            client: sa("[2001:db8:10::2]:40000"),
            vip: sa("[2001:db8:10::100]:80"),
            local: sa("[2001:db8:10::2]:40000"),
            server: sa("[2001:db8:20::11]:8080"),
            state: ConnState::Tcp(TcpState::Established),
            flags: 6,
            expires_in_ms: 60_000,
            synproxy: None,
        });
        let data6 = format!(
            "{}
             0000000000000066 0001                          # record index 102, 1 record
             01 06 01 01 00 0006 0000ea60                   # conn: TCP, nat, ESTABLISHED, pad, flags, 60 s
             06 20010db8001000000000000000000002 9c40       # client
             06 20010db8001000000000000000000100 0050       # VIP
             06 20010db8001000000000000000000002 9c40       # local (the client)
             06 20010db8002000000000000000000011 1f90       # server
             dba6aad43be66fa03d44a94d97d1ccf135e11a09ae3cf8c790152495c20f4340",
            fixture_header(1, 0, 97)
        );
        // An IPv6 Full-NAT flow: the local address and port are the node's IPv6 local
        // address and the port it took there, which the peer reserves on install.
        let fullnat6 = SyncRecord::Conn(ConnRecord {
            proto: L4Proto::Tcp,
            forward: ForwardMode::FullNat,
            client: sa("[2001:db8:10::2]:40000"),
            vip: sa("[2001:db8:10::100]:80"),
            local: sa("[2001:db8:20::200]:1024"),
            server: sa("[2001:db8:20::11]:8080"),
            state: ConnState::Tcp(TcpState::Established),
            flags: 5,
            expires_in_ms: 900_000,
            synproxy: None,
        });
        let data_fullnat6 = format!(
            "{}
             0000000000000067 0001                          # record index 103, 1 record
             01 06 02 01 00 0005 000dbba0                   # conn: TCP, fullnat, ESTABLISHED, pad, flags, 900 s
             06 20010db8001000000000000000000002 9c40       # client
             06 20010db8001000000000000000000100 0050       # VIP
             06 20010db8002000000000000000000200 0400       # local: 2001:db8:20::200, port 1024
             06 20010db8002000000000000000000011 1f90       # server
             c9a1bfd4273a9b17e041a69d8fbc0b510c5f888351c5193e9e43c038b7e7e56b",
            fixture_header(1, 0, 97)
        );
        // A NAT64 flow (an IPv6 service on an IPv4 Full-NAT server): the client and VIP
        // IPv6, the local address and server IPv4, 63 bytes in all.
        let nat64 = SyncRecord::Conn(ConnRecord {
            proto: L4Proto::Tcp,
            forward: ForwardMode::FullNat,
            client: sa("[2001:db8:10::2]:40000"),
            vip: sa("[2001:db8:10::100]:80"),
            local: sa("10.20.0.200:1025"),
            server: sa("10.20.0.11:8080"),
            state: ConnState::Tcp(TcpState::Established),
            flags: 5,
            expires_in_ms: 900_000,
            synproxy: None,
        });
        let data_nat64 = format!(
            "{}
             0000000000000068 0001                          # record index 104, 1 record
             01 06 02 01 00 0005 000dbba0                   # conn: TCP, fullnat, ESTABLISHED, pad, flags, 900 s
             06 20010db8001000000000000000000002 9c40       # client
             06 20010db8001000000000000000000100 0050       # VIP
             04 0a1400c8 0401                               # local: 10.20.0.200, port 1025
             04 0a14000b 1f90                               # server: 10.20.0.11:8080
             f79e5059b7bad456386295e8b249ed89fc9020ffe5b0d668c8f511d212019425",
            fixture_header(1, 0, 73)
        );
        let bulk_end = format!(
            "{}
             0000000000000064 00000002  # record index 100, 2 streamed
             67199ce7c905eee9b5b8040727ec93a2a38303785fd4bd80bdb954332930d2a1",
            fixture_header(2, 2, 12)
        );
        let ack = format!(
            "{}
             3f73dc3648db9de43f8d2b55a58db3154f188bd2cda5120ab83907261bad82cd",
            fixture_header(3, 1, 0)
        );
        let nack = format!(
            "{}
             02 00000003 00000005 00000009 00000009  # [3, 5], [9, 9]
             2a3a2421b4fb34f232a4ef4e2de55926d6e4e22c420c1c1c494c85524f9fb8de",
            fixture_header(4, 0, 17)
        );
        let heartbeat = format!(
            "{}
             0000000000000066  # next record 102
             b0b8758356e3b206c0954ddf01014e20a2ae8ce32b5147d66e3f0861e5c00287",
            fixture_header(5, 0, 8)
        );
        vec![
            (fixture_msg(Body::Data { record_index: 100, records: vec![conn, persist] }, 0), hex(&data)),
            (fixture_msg(Body::Data { record_index: 101, records: vec![proxied] }, 0), hex(&data_proxied)),
            (fixture_msg(Body::BulkEnd { record_index: 100, streamed: 2 }, Flags::BULK_SENDING), hex(&bulk_end)),
            (fixture_msg(Body::Ack, Flags::WANT_BULK), hex(&ack)),
            (fixture_msg(Body::Nack { ranges: vec![(3, 5), (9, 9)] }, 0), hex(&nack)),
            (fixture_msg(Body::Heartbeat { next_record: 102 }, 0), hex(&heartbeat)),
            (fixture_msg(Body::Data { record_index: 102, records: vec![conn6] }, 0), hex(&data6)),
            (fixture_msg(Body::Data { record_index: 103, records: vec![fullnat6] }, 0), hex(&data_fullnat6)),
            (fixture_msg(Body::Data { record_index: 104, records: vec![nat64] }, 0), hex(&data_nat64)),
        ]
    }

    #[test]
    fn fixtures_encode_and_decode() {
        for (msg, bytes) in fixtures() {
            assert_eq!(encode(&msg, KEY), bytes, "{:?}", msg.body.msg_type());
            assert_eq!(decode(&bytes, KEY), Ok(msg));
        }
    }

    #[test]
    fn record_len_matches_encoding() {
        for (msg, _) in fixtures() {
            if let Body::Data { records, .. } = msg.body {
                for r in records {
                    let mut v = Vec::new();
                    put_record(&mut v, &r);
                    assert_eq!(v.len(), record_len(&r));
                }
            }
        }
    }

    #[test]
    fn every_truncation_fails() {
        for (_, bytes) in fixtures() {
            for n in 0..bytes.len() {
                assert!(decode(&bytes[..n], KEY).is_err(), "truncated to {n}");
            }
        }
    }

    #[test]
    fn every_bit_flip_fails() {
        for (_, bytes) in fixtures() {
            for i in 0..bytes.len() * 8 {
                let mut b = bytes.clone();
                b[i / 8] ^= 1 << (i % 8);
                match decode(&b, KEY) {
                    Err(DecodeError::BadHmac | DecodeError::LengthMismatch { .. }) => {}
                    other => panic!("bit {i}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn wrong_key_is_bad_hmac() {
        for (msg, _) in fixtures() {
            assert_eq!(decode(&encode(&msg, b"other-key"), KEY), Err(DecodeError::BadHmac));
        }
    }

    fn signed(b: Vec<u8>) -> Vec<u8> {
        seal(b, KEY)
    }

    #[test]
    fn authenticated_malformed_contents_are_named() {
        let (_, data) = fixtures().swap_remove(0);
        let body = data[..data.len() - MAC_LEN].to_vec();
        let with = |i: usize, v: u8| {
            let mut b = body.clone();
            b[i] = v;
            decode(&signed(b), KEY)
        };
        assert_eq!(with(0, b'X'), Err(DecodeError::BadMagic));
        assert_eq!(with(4, 2), Err(DecodeError::BadVersion(2)));
        assert_eq!(with(5, 9), Err(DecodeError::BadType(9)));
        assert_eq!(with(6, 4), Err(DecodeError::BadFlags(4)));
        assert_eq!(with(7, 1), Err(DecodeError::BadFlags(1)));
        // Record fields: the conn record starts at 58.
        assert_eq!(with(58, 7), Err(DecodeError::BadRecordType(7)));
        assert_eq!(with(59, 1), Err(DecodeError::BadProto(1)));
        assert_eq!(with(60, 4), Err(DecodeError::BadForward(4)));
        assert_eq!(with(61, 11), Err(DecodeError::BadState(11)));
        assert_eq!(with(62, 1), Err(DecodeError::BadPadding));
        assert_eq!(with(69, 5), Err(DecodeError::BadFamily(5)));
        // Count says 3, two records there; count says 1, one record left over.
        assert_eq!(with(57, 3), Err(DecodeError::Truncated("record type")));
        assert_eq!(with(57, 1), Err(DecodeError::TrailingBytes(62)));
        let mut extra = body.clone();
        extra.push(0);
        assert_eq!(decode(&signed(extra), KEY), Err(DecodeError::TrailingBytes(1)));
        // A NACK with too many ranges.
        let mut nack = body[..HEADER_LEN].to_vec();
        nack[5] = MsgType::Nack as u8;
        nack.push(65);
        nack.extend(std::iter::repeat_n(0, 65 * 8));
        assert_eq!(decode(&signed(nack), KEY), Err(DecodeError::TooManyRanges(65)));
        // Lengths, before the HMAC.
        assert_eq!(decode(&[0; 79], KEY), Err(DecodeError::TooShort(79)));
        assert_eq!(decode(&vec![0; MAX_DATAGRAM + 1], KEY), Err(DecodeError::Oversized(MAX_DATAGRAM + 1)));
        assert_eq!(decode(&[0; 81], KEY), Err(DecodeError::LengthMismatch { declared: 0, actual: 1 }));
        // The SYN-proxied record (58..107): its pending byte is the last; as a plain conn
        // record its SYN proxy fields are left over.
        let (_, data) = fixtures().swap_remove(1);
        let proxied = data[..data.len() - MAC_LEN].to_vec();
        let with = |i: usize, v: u8| {
            let mut b = proxied.clone();
            b[i] = v;
            decode(&signed(b), KEY)
        };
        assert_eq!(with(106, 2), Err(DecodeError::BadPending(2)));
        assert_eq!(with(58, REC_CONN), Err(DecodeError::TrailingBytes(SYNPROXY_LEN)));
        let short = proxied[..proxied.len() - 1].to_vec();
        assert_eq!(decode(&signed(short), KEY), Err(DecodeError::Truncated("SYN proxy pending flag")));
    }

    #[test]
    fn an_ipv6_record_cut_short_or_of_a_bad_family_is_named() {
        let (_, data6) = fixtures().swap_remove(6);
        let body = data6[..data6.len() - MAC_LEN].to_vec();
        assert_eq!(
            record_len(&match decode(&data6, KEY).unwrap().body {
                Body::Data { records, .. } => records[0],
                _ => unreachable!(),
            }),
            87
        );
        // The datagram ends inside the server's address, its payload length saying so.
        let cut = |n: usize| {
            let mut b = body[..body.len() - n].to_vec();
            let len = u16::try_from(b.len() - HEADER_LEN).unwrap();
            b[46..48].copy_from_slice(&len.to_be_bytes());
            decode(&signed(b), KEY)
        };
        assert_eq!(cut(1), Err(DecodeError::Truncated("server address")), "the port's last byte");
        assert_eq!(cut(5), Err(DecodeError::Truncated("server address")), "inside the address");
        assert_eq!(cut(19), Err(DecodeError::Truncated("server address")), "the family byte only left out");
        // The client's family byte (record at 58, client at 69) neither 4 nor 6; an IPv6
        // address read as IPv4 leaves bytes over.
        let with = |i: usize, v: u8| {
            let mut b = body.clone();
            b[i] = v;
            decode(&signed(b), KEY)
        };
        assert_eq!(with(69, 5), Err(DecodeError::BadFamily(5)));
        assert!(with(69, 4).is_err());
    }

    fn arb_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(|a| IpAddr::V4(a.into())),
            any::<[u8; 16]>().prop_map(|a| IpAddr::V6(a.into())),
        ]
    }

    fn arb_sock() -> impl Strategy<Value = SocketAddr> {
        (arb_ip(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port))
    }

    fn arb_proto() -> impl Strategy<Value = L4Proto> {
        prop_oneof![Just(L4Proto::Tcp), Just(L4Proto::Udp)]
    }

    /// Any record, every enum value and both families.
    pub(crate) fn arb_record() -> impl Strategy<Value = SyncRecord> {
        let forward = prop_oneof![
            Just(ForwardMode::Dr),
            Just(ForwardMode::Nat),
            Just(ForwardMode::FullNat),
            Just(ForwardMode::Tunnel)
        ];
        let state =
            prop_oneof![(0..TcpState::ALL.len()).prop_map(|i| ConnState::Tcp(TcpState::ALL[i])), Just(ConnState::Udp)];
        let synproxy = proptest::option::of((any::<bool>(), any::<u32>(), any::<u32>(), any::<u8>()).prop_map(
            |(pending, seq_offset, ts_offset, window)| SynProxyRecord { pending, seq_offset, ts_offset, window },
        ));
        let conn = (
            (arb_proto(), forward, arb_sock(), arb_sock(), arb_sock(), arb_sock()),
            (state, any::<u16>(), any::<u32>(), synproxy),
        )
            .prop_map(
                |((proto, forward, client, vip, local, server), (state, flags, expires_in_ms, synproxy))| {
                    SyncRecord::Conn(ConnRecord {
                        proto,
                        forward,
                        client,
                        vip,
                        local,
                        server,
                        state,
                        flags,
                        expires_in_ms,
                        synproxy,
                    })
                },
            );
        let persist = (arb_proto(), arb_sock(), arb_ip(), arb_sock(), any::<u32>()).prop_map(
            |(proto, vip, client, server, expires_in_s)| {
                SyncRecord::Persist(PersistRecord { proto, vip, client, server, expires_in_s })
            },
        );
        prop_oneof![conn, persist]
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        let header = (any::<[u64; 3]>(), any::<[u32; 3]>(), any::<u16>(), 0..=Flags::ALL).prop_map(
            |([epoch, counter, ack_epoch], [seq, oldest, ack], workers, flags)| Header {
                epoch,
                counter,
                seq,
                oldest,
                ack,
                ack_epoch,
                workers,
                flags: Flags(flags),
            },
        );
        let body = prop_oneof![
            (any::<u64>(), proptest::collection::vec(arb_record(), 0..30))
                .prop_map(|(record_index, records)| Body::Data { record_index, records }),
            (any::<u64>(), any::<u32>()).prop_map(|(record_index, streamed)| Body::BulkEnd { record_index, streamed }),
            Just(Body::Ack),
            proptest::collection::vec(any::<(u32, u32)>(), 0..=MAX_NACK_RANGES)
                .prop_map(|ranges| Body::Nack { ranges }),
            any::<u64>().prop_map(|next_record| Body::Heartbeat { next_record }),
        ];
        (header, body).prop_map(|(header, body)| Message { header, body })
    }

    proptest! {
        #[test]
        fn round_trip(msg in arb_message(), key in proptest::collection::vec(any::<u8>(), 0..80)) {
            let bytes = encode(&msg, &key);
            prop_assert_eq!(decode(&bytes, &key), Ok(msg));
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode(&bytes, KEY);
        }

        #[test]
        fn random_signed_contents_never_panic(body in proptest::collection::vec(any::<u8>(), HEADER_LEN..400)) {
            // Authenticated garbage reaches the parser.
            let _ = decode(&signed(body), KEY);
        }
    }
}
