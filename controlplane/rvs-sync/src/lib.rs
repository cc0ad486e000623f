//! Connection sync between the two nodes of an HA pair, sans-IO: no socket, thread or
//! clock inside. The caller owns the UDP socket and the record rings, passes time in, and
//! moves datagrams and records between them and a [`SyncLink`].
//!
//! * [`wire`]: the datagram format (header, records, HMAC-SHA256) and its total decoder.
//! * [`link`]: the reliability layer (conntrackd's FT-FW: sequence numbers, cumulative
//!   acks, NACKs, a resend queue, heartbeats), epochs, anti-replay and bulk resync.
//!
//! `README.md` beside this crate documents the byte layout for operators and designers.
#![forbid(unsafe_code)]

pub mod link;
pub mod wire;

pub use link::{LinkConfig, LinkStats, LinkStatus, Reject, SyncLink};
pub use wire::{decode, encode, Body, DecodeError, Flags, Header, Message, MsgType};
