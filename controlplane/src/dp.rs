//! The one boundary between the control plane's services and what the data path forwards.
//!
//! The control plane's model (the configuration, the REST API, rvsadm, health, metrics)
//! carries service VIPs and real-server addresses as [`IpAddr`], either family, and so do
//! the data path's [`ServiceKey`](rvs_dataplane::types::ServiceKey) and [`RealServer`].
//! IPv6 services are forwarded in DR and NAT66 only, without persistence, client lists,
//! per-client rates or the SYN proxy (the data path refuses the rest when its service
//! table is built, `TableError::Ipv6Unsupported`). [`check`] runs during validation and
//! refuses those options on an IPv6 service naming the field, so a configuration (file,
//! `PUT /v1/config`, or a REST change, which is validated as a whole file) never reaches
//! the data path with one, and nothing is half-applied.
//!
//! [`RealServer`]: rvs_dataplane::server::RealServer

use std::net::IpAddr;

use rvs_dataplane::synproxy::SynProxyMode;
use rvs_dataplane::types::ServiceKey as DpServiceKey;

use crate::config::{FieldError, Forward, Service, ServiceKey};

/// The address type of the data path's service and server types.
pub type DpAddr = IpAddr;

/// What the refusals of [`check`] say after naming the option.
pub const NOT_ON_IPV6: &str = "is not supported on an IPv6 service yet (IPv6 services forward in DR and NAT66)";

/// A service's VIP as the data path takes it.
pub fn dp_vip(vip: IpAddr) -> Result<DpAddr, String> {
    Ok(vip)
}

/// A real server's (or sorry server's) address as the data path takes it.
pub fn dp_server(addr: IpAddr) -> Result<DpAddr, String> {
    Ok(addr)
}

/// A service's key as the data path takes it (through [`dp_vip`]).
pub fn dp_key(k: ServiceKey) -> Result<DpServiceKey, String> {
    Ok(DpServiceKey { proto: k.proto, vip: dp_vip(k.vip)?, port: k.port })
}

/// Every IPv6 service of `services` (with its index in the file, `service[i]`) against
/// what the IPv6 data path forwards: one error per option it does not have, named by its
/// field path with the fix. Empty when every service can be forwarded.
pub fn check<'a>(services: impl IntoIterator<Item = (usize, &'a Service)>) -> Vec<FieldError> {
    let mut out = Vec::new();
    for (i, s) in services.into_iter().filter(|(_, s)| s.address.is_ipv6()) {
        let mut refuse = |field: &str, what: &str, fix: &str| {
            out.push(FieldError {
                field: format!("service[{i}].{field}"),
                message: format!("{what} {NOT_ON_IPV6}; {fix}"),
            });
        };
        if s.persistence.is_some() {
            refuse("persistence", "persistence", "remove it or use a consistent scheduler (sh, mh)");
        }
        if !s.allow.is_empty() || !s.deny.is_empty() {
            let field = if s.allow.is_empty() { "deny" } else { "allow" };
            refuse(field, "a client allow/deny list", "remove it");
        }
        if s.client_rate != 0 {
            refuse("client_rate", "a per-client rate", "remove it");
        }
        if matches!(s.syn_proxy, Some(SynProxyMode::Auto | SynProxyMode::Always)) {
            refuse("syn_proxy", "the SYN proxy", "set syn_proxy = \"off\" or remove it");
        }
        for (k, r) in s.servers.iter().enumerate() {
            if !matches!(r.forward, Forward::Dr | Forward::Nat) {
                let what = format!("forward = \"{}\"", r.forward.name());
                refuse(&format!("server[{k}].forward"), &what, "use \"dr\" or \"nat\"");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_either_family_pass() {
        assert_eq!(dp_vip("10.10.0.100".parse().unwrap()), Ok("10.10.0.100".parse().unwrap()));
        assert_eq!(dp_server("2001:db8::11".parse().unwrap()), Ok("2001:db8::11".parse().unwrap()));
        let k = ServiceKey { proto: crate::config::L4Proto::Tcp, vip: "2001:db8::1".parse().unwrap(), port: 80 };
        assert_eq!(dp_key(k).map(|d| d.vip), Ok("2001:db8::1".parse().unwrap()));
    }
}
