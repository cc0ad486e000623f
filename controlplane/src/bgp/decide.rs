//! Which VIPs this node announces, and why: a pure function of what the node knows.
//!
//! A VIP is announced while this node can serve it (issue 12):
//!
//! * every worker polls (a stalled worker, [`crate::watchdog`], would black-hole the
//!   flows the router's hash sends to it);
//! * every service on the VIP has at least its `quorum` of healthy real servers (a
//!   server that can take a new flow: its checks up, not drained or in maintenance, a
//!   weight above 0 in effect; [`Running::healthy_servers`](crate::runtime::Running::healthy_servers)).
//!   A service with `quorum = 0` never withdraws its VIP;
//! * with VRRP, this node is master of the instance that holds the VIP.
//!
//! Otherwise it is withdrawn, and every reason that holds is listed. The decision is
//! recomputed at every turn of the BGP thread ([`super::run::TURN`]), so a withdrawal
//! follows the state change that causes it within one turn.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

/// One service as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceHealth {
    /// `tcp/10.10.0.100/80`, as the API names services.
    pub name: String,
    /// Its VIP (either family).
    pub vip: IpAddr,
    /// Real servers that can take a new flow now.
    pub healthy: u32,
    /// Real servers configured.
    pub servers: u32,
    /// Healthy servers needed.
    pub quorum: u32,
}

/// The VRRP state of the instance holding a VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpRole {
    /// The instance's VRID.
    pub vrid: u8,
    /// Whether this node is its master.
    pub master: bool,
    /// Its state in words (`master`, `backup`, `fault`, `init`).
    pub state: String,
}

/// Everything the decision looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeView {
    /// Workers whose poll counter stands still (indexes).
    pub stalled_workers: Vec<usize>,
    /// Every configured service.
    pub services: Vec<ServiceHealth>,
    /// Per VIP, the VRRP instance holding it; empty without `[ha]`.
    pub vrrp: BTreeMap<IpAddr, VrrpRole>,
}

/// Why a VIP is withdrawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Withdrawn {
    /// rvsd is shutting down (its last include file withdraws everything).
    Stopping,
    /// Some workers do not poll.
    Workers {
        /// Their indexes.
        stalled: Vec<usize>,
    },
    /// A service on the VIP is below its quorum.
    Quorum {
        /// The service.
        service: String,
        /// Its healthy servers.
        healthy: u32,
        /// Its quorum.
        quorum: u32,
    },
    /// This node is not the VRRP master for the VIP.
    Vrrp {
        /// The instance.
        vrid: u8,
        /// Its state on this node.
        state: String,
    },
}

impl Withdrawn {
    /// The short label of `/metrics` (`stopping`, `workers`, `quorum`, `vrrp`).
    pub fn label(&self) -> &'static str {
        match self {
            Withdrawn::Stopping => "stopping",
            Withdrawn::Workers { .. } => "workers",
            Withdrawn::Quorum { .. } => "quorum",
            Withdrawn::Vrrp { .. } => "vrrp",
        }
    }
}

impl fmt::Display for Withdrawn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Withdrawn::Stopping => f.write_str("rvsd is stopping"),
            Withdrawn::Workers { stalled } => {
                let list: Vec<String> = stalled.iter().map(ToString::to_string).collect();
                write!(f, "worker(s) {} not polling", list.join(","))
            }
            Withdrawn::Quorum { service, healthy, quorum } => {
                write!(f, "{service} has {healthy} healthy server(s), quorum {quorum}")
            }
            Withdrawn::Vrrp { vrid, state } => write!(f, "VRRP instance {vrid} is {state} here, not master"),
        }
    }
}

/// The decision for one VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipDecision {
    /// The VIP.
    pub vip: IpAddr,
    /// Empty: announced. Otherwise every reason it is withdrawn.
    pub withdrawn: Vec<Withdrawn>,
    /// For an announced VIP, what it stands on, in words (`tcp/10.10.0.100/80: 3 of 3
    /// healthy, quorum 1`, services joined by `; `).
    pub serving: String,
}

impl VipDecision {
    /// Whether the VIP is announced.
    pub fn announced(&self) -> bool {
        self.withdrawn.is_empty()
    }

    /// Why, in words: what the VIP stands on, or every reason it is withdrawn.
    pub fn why(&self) -> String {
        if self.announced() {
            self.serving.clone()
        } else {
            self.withdrawn.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        }
    }
}

/// The decision for every VIP of `view`, in address order (IPv4 first).
pub fn decide(view: &NodeView) -> Vec<VipDecision> {
    let mut vips: BTreeMap<IpAddr, Vec<&ServiceHealth>> = BTreeMap::new();
    for s in &view.services {
        vips.entry(s.vip).or_default().push(s);
    }
    vips.into_iter()
        .map(|(vip, services)| {
            let mut withdrawn = Vec::new();
            if !view.stalled_workers.is_empty() {
                withdrawn.push(Withdrawn::Workers { stalled: view.stalled_workers.clone() });
            }
            for s in &services {
                if s.healthy < s.quorum {
                    withdrawn.push(Withdrawn::Quorum { service: s.name.clone(), healthy: s.healthy, quorum: s.quorum });
                }
            }
            if let Some(role) = view.vrrp.get(&vip).filter(|r| !r.master) {
                withdrawn.push(Withdrawn::Vrrp { vrid: role.vrid, state: role.state.clone() });
            }
            let mut serving: Vec<String> = services
                .iter()
                .map(|s| format!("{}: {} of {} healthy, quorum {}", s.name, s.healthy, s.servers, s.quorum))
                .collect();
            if let Some(role) = view.vrrp.get(&vip) {
                serving.push(format!("VRRP instance {} master", role.vrid));
            }
            VipDecision { vip, withdrawn, serving: serving.join("; ") }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, vip: &str, healthy: u32, quorum: u32) -> ServiceHealth {
        ServiceHealth { name: name.into(), vip: vip.parse().unwrap(), healthy, servers: 3, quorum }
    }

    #[test]
    fn a_vip_is_announced_only_when_every_service_has_its_quorum() {
        let view = NodeView {
            services: vec![
                svc("tcp/10.10.0.100/80", "10.10.0.100", 3, 1),
                svc("tcp/10.10.0.100/443", "10.10.0.100", 1, 2),
                svc("tcp/10.10.0.101/80", "10.10.0.101", 0, 0),
            ],
            ..NodeView::default()
        };
        let d = decide(&view);
        assert_eq!(d.len(), 2);
        assert_eq!(
            d[0].withdrawn,
            vec![Withdrawn::Quorum { service: "tcp/10.10.0.100/443".into(), healthy: 1, quorum: 2 }]
        );
        assert_eq!(d[0].why(), "tcp/10.10.0.100/443 has 1 healthy server(s), quorum 2");
        assert!(d[1].announced(), "quorum 0 never withdraws");
        assert_eq!(d[1].why(), "tcp/10.10.0.101/80: 0 of 3 healthy, quorum 0");
    }

    #[test]
    fn stalled_workers_and_vrrp_backup_withdraw_with_every_reason() {
        let vip: IpAddr = "10.10.0.100".parse().unwrap();
        let mut view = NodeView {
            stalled_workers: vec![1],
            services: vec![svc("tcp/10.10.0.100/80", "10.10.0.100", 0, 1)],
            vrrp: BTreeMap::from([(vip, VrrpRole { vrid: 51, master: false, state: "backup".into() })]),
        };
        let d = decide(&view);
        assert_eq!(d[0].withdrawn.iter().map(Withdrawn::label).collect::<Vec<_>>(), ["workers", "quorum", "vrrp"]);
        assert_eq!(
            d[0].why(),
            "worker(s) 1 not polling; tcp/10.10.0.100/80 has 0 healthy server(s), quorum 1; \
             VRRP instance 51 is backup here, not master"
        );
        view.stalled_workers.clear();
        view.services[0].healthy = 2;
        view.vrrp.get_mut(&vip).unwrap().master = true;
        let d = decide(&view);
        assert!(d[0].announced());
        assert_eq!(d[0].why(), "tcp/10.10.0.100/80: 2 of 3 healthy, quorum 1; VRRP instance 51 master");
    }

    #[test]
    fn either_family_and_address_order() {
        let view = NodeView {
            services: vec![
                svc("tcp/[fd00:10::100]/80", "fd00:10::100", 1, 1),
                svc("tcp/10.10.0.100/80", "10.10.0.100", 1, 1),
            ],
            ..NodeView::default()
        };
        let d = decide(&view);
        assert_eq!(d.iter().map(|v| v.vip.to_string()).collect::<Vec<_>>(), ["10.10.0.100", "fd00:10::100"]);
    }
}
