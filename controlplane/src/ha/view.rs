//! What `/v1/ha`, `/v1/status` (`ha`) and `/metrics` (`rvs_vrrp_*`, `rvs_sync_*`) show of
//! VRRP and connection sync.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The `GET /v1/ha` document (also `ha` in `/v1/status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaStatus {
    /// Every `[[ha.instance]]`, in configuration order.
    pub instances: Vec<InstanceStatus>,
    /// Valid-looking adverts for a VRID no instance of their port has (ignored).
    pub adverts_unknown_vrid: u64,
    /// VRRP packets whose IP header was unusable (not counted per instance).
    pub packets_malformed: u64,
    /// Adverts and gratuitous ARP frames not queued for worker 0 (ring full).
    pub frames_dropped: u64,
    /// Connection sync with the peer, when `[ha] sync_listen` is set (written by the sync
    /// thread, not the VRRP thread).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncStatus>,
}

/// One instance, as `/v1/ha` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// Virtual router identifier.
    pub vrid: u8,
    /// The family of the adverts, `ipv4` or `ipv6`: with the VRID and the port, what names
    /// the instance (one VRID may serve one instance of each family on a port).
    #[serde(default)]
    pub family: String,
    /// The virtual router's link-local address (VRRP over IPv6), first in the adverts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_link_local: Option<String>,
    /// The port's configured name.
    pub port: String,
    /// VRRP version, 3 or 2.
    pub version: u8,
    /// `init`, `backup`, `master` or `fault`.
    pub state: String,
    /// Configured priority.
    pub priority: u8,
    /// Priority in effect after tracking.
    pub effective_priority: u8,
    /// The master's address as last heard (this node's own when master); absent when
    /// none is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// The master's advertised priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_priority: Option<u8>,
    /// Advert interval in milliseconds.
    pub advert_interval_ms: u64,
    /// Preemption.
    pub preempt: bool,
    /// The addresses that move with the instance.
    pub addresses: Vec<String>,
    /// When the state last changed (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Why it last changed, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Adverts sent (priority 0 included).
    pub adverts_sent: u64,
    /// Valid adverts received.
    pub adverts_received: u64,
    /// Adverts dropped, by reason; every reason is present.
    pub invalid: BTreeMap<String, u64>,
    /// State changes since start.
    pub transitions: u64,
}

/// What `/v1/status` (`ha.sync`), `rvsadm status` and `/metrics` (`rvs_sync_*`) show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// This node's sync address.
    pub listen: String,
    /// The peer's.
    pub peer: String,
    /// Whether the peer was heard from recently (its heartbeats).
    pub connected: bool,
    /// Whether this node holds the peer's table: the bulk resync it asked for has ended
    /// and no gap is outstanding.
    pub in_sync: bool,
    /// This node's epoch (its start, in microseconds since the UNIX epoch).
    pub epoch: u64,
    /// The peer's epoch, once heard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_epoch: Option<u64>,
    /// This node's workers.
    pub workers: u16,
    /// The peer's workers, once heard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_workers: Option<u16>,
    /// Why records from the peer are not installed, if they are not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Why VRRP preemption is held back, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_preempt: Option<String>,
    /// Records of the bulk resync being received (since it was asked for).
    pub bulk_received: u64,
    /// Whether this node is streaming its table to the peer.
    pub bulk_sending: bool,
    /// Bulk streams sent to the peer since start.
    pub bulks_sent: u64,
    /// Records sent and not yet acknowledged.
    pub lag_records: u64,
    /// Age of the oldest unacknowledged message, in milliseconds.
    pub lag_ms: u64,
    /// Record counters: sent, received, resent, lost, installed, refused.
    pub records: BTreeMap<String, u64>,
    /// Datagrams refused, by reason; every reason is present.
    pub rejected: BTreeMap<String, u64>,
}
