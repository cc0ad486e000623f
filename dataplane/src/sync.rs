//! Connection sync to a standby (`[ha] sync_listen` / `sync_peer`): the records that say
//! what a connection or a persistence entry is, so that the peer can hold the same state
//! and forward the flow without rescheduling when it takes over.
//!
//! A record names its service and real server by their keys (protocol, VIP and port;
//! server address and port), not by the ids a node assigns itself: the two nodes of a
//! pair assign ids independently, their configs name the same services. Addresses are
//! [`SocketAddr`] / [`IpAddr`] so that IPv6 flows fit when the data path learns IPv6; a
//! node installs only the families its data path forwards and counts the rest.

use std::net::{IpAddr, SocketAddr};

use crate::types::{ConnState, ForwardMode, L4Proto};

/// One connection as the peer needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRecord {
    /// TCP or UDP.
    pub proto: L4Proto,
    /// How packets reach the server.
    pub forward: ForwardMode,
    /// Client address and port (source of inbound packets).
    pub client: SocketAddr,
    /// VIP and port: with `proto`, the service's key.
    pub vip: SocketAddr,
    /// Full-NAT local address and port towards the server; the client's in other modes.
    pub local: SocketAddr,
    /// Real server address and port.
    pub server: SocketAddr,
    /// Protocol state.
    pub state: ConnState,
    /// The connection's flag bits (`crate::conn::ConnFlags`) that describe the flow:
    /// TOA still to be sent, SYN+ACK seen, reply seen.
    pub flags: u16,
    /// Milliseconds left before the connection expires if no packet comes.
    pub expires_in_ms: u32,
}

/// One persistence entry (ipvsadm `-p`): a client network keeps going to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PersistRecord {
    /// The service's protocol.
    pub proto: L4Proto,
    /// The service's VIP and port.
    pub vip: SocketAddr,
    /// The client address under the service's netmask.
    pub client: IpAddr,
    /// The real server the client persists to.
    pub server: SocketAddr,
    /// Seconds left before the entry expires if the client makes no new connection.
    pub expires_in_s: u32,
}

/// What travels between the nodes of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncRecord {
    /// A connection was created, changed state, or is refreshed.
    Conn(ConnRecord),
    /// A persistence entry exists (created or refreshed).
    Persist(PersistRecord),
}
