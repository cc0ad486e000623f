//! Announcing the VIPs through BIRD 2 (issue 12): rvsd does no routing itself. It keeps a
//! BIRD include file with one static host route per VIP this node should announce and
//! makes BIRD read it with `birdc configure`; BIRD's own configuration (shipped for the
//! lab in `vm-testbed/bird/`) exports those routes over BGP, with BFD on the session so a
//! router drops a dead node within BFD's detection time. IPv4 VIPs go in the static
//! protocol `rvs_vips4`, IPv6 ones in `rvs_vips6`, which the lab's BIRD exports over
//! MP-BGP (an `ipv6` channel of the same IPv4 session, the node's IPv6 address on the
//! router's link as next hop).
//!
//! * [`decide`]: which VIPs to announce and why not (workers polling, each service's
//!   healthy servers at or above its `quorum`, VRRP master) — pure;
//! * [`include`]: the file's text from the decisions — pure, golden-tested;
//! * [`announcer`]: when to write the file and run birdc, with backoff — sans-IO;
//! * [`run`]: the thread, the real birdc, and the status it publishes.
//!
//! BIRD missing, or its socket refusing, never touches forwarding: the status says
//! `bgp: birdc unreachable: ...` and the thread retries.

pub mod announcer;
pub mod decide;
pub mod include;
pub mod run;

pub use run::{BgpBoard, BgpStatus, VipStatus};
