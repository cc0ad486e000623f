//! What `/v1/ha`, `/v1/status` (`ha`) and `/metrics` (`rvs_vrrp_*`) show of VRRP.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The `GET /v1/ha` document (also `ha` in `/v1/status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaStatus {
    /// Every `[[ha.instance]]`, in configuration order.
    pub instances: Vec<InstanceStatus>,
    /// Valid-looking adverts for a VRID no instance of their port has (ignored).
    pub adverts_unknown_vrid: u64,
    /// VRRP packets whose IPv4 header was unusable (not counted per instance).
    pub packets_malformed: u64,
    /// Adverts and gratuitous ARP frames not queued for worker 0 (ring full).
    pub frames_dropped: u64,
}

/// One instance, as `/v1/ha` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// Virtual router identifier.
    pub vrid: u8,
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
