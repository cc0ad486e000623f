//! The one boundary between the control plane's addresses and the data path's types.
//!
//! The control plane's model (the configuration, the REST API, rvsadm, health, metrics)
//! carries service VIPs and real-server addresses as [`IpAddr`], either family. The data
//! path's [`ServiceKey`](rvs_dataplane::types::ServiceKey), [`RealServer`] and
//! [`VipConfig`] take [`DpAddr`]. Every conversion from the model into those types goes
//! through [`dp_vip`] and [`dp_server`]; nothing else in the control plane narrows an
//! address for the data path.
//!
//! Contract: while the data path is IPv4 only, both refuse an IPv6 address with
//! [`NO_IPV6_DATA_PATH`]. [`check`] runs them over a whole set of services during
//! validation, so a configuration (file, `PUT /v1/config`, or a REST change, which is
//! validated as a whole file) with an IPv6 service is refused naming the field, before
//! anything is applied. When the data path takes IPv6, [`DpAddr`] becomes [`IpAddr`] and
//! the two functions pass the address through; nothing else changes.
//!
//! [`RealServer`]: rvs_dataplane::server::RealServer
//! [`VipConfig`]: rvs_dataplane::types::VipConfig

use std::net::{IpAddr, Ipv4Addr};

use rvs_dataplane::types::ServiceKey as DpServiceKey;

use crate::config::{FieldError, Service, ServiceKey};

/// The address type of the data path's service and server types.
pub type DpAddr = Ipv4Addr;

/// Why an IPv6 VIP or real server is refused in this build.
pub const NO_IPV6_DATA_PATH: &str = "IPv6 services need the IPv6 data path, which this build does not have";

/// A service's VIP as the data path takes it.
pub fn dp_vip(vip: IpAddr) -> Result<DpAddr, String> {
    match vip {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(a) => Err(format!("VIP {a}: {NO_IPV6_DATA_PATH}; use an IPv4 VIP")),
    }
}

/// A real server's (or sorry server's) address as the data path takes it.
pub fn dp_server(addr: IpAddr) -> Result<DpAddr, String> {
    match addr {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(a) => Err(format!("real server {a}: {NO_IPV6_DATA_PATH}; use an IPv4 real server")),
    }
}

/// A service's key as the data path takes it (through [`dp_vip`]).
pub fn dp_key(k: ServiceKey) -> Result<DpServiceKey, String> {
    Ok(DpServiceKey { proto: k.proto, vip: dp_vip(k.vip)?, port: k.port })
}

/// Every VIP, real server and sorry server of `services` (with their index in the
/// file, `service[i]`) through the boundary: one error per address the data path
/// cannot take, named by its field path. Empty when all of them convert.
pub fn check<'a>(services: impl IntoIterator<Item = (usize, &'a Service)>) -> Vec<FieldError> {
    let mut out = Vec::new();
    for (i, s) in services {
        if let Err(message) = dp_vip(s.address) {
            out.push(FieldError { field: format!("service[{i}].address"), message });
        }
        for (k, r) in s.servers.iter().enumerate() {
            if let Err(message) = dp_server(r.address) {
                out.push(FieldError { field: format!("service[{i}].server[{k}].address"), message });
            }
        }
        if let Some(Err(message)) = s.sorry_server.map(|a| dp_server(a.ip())) {
            out.push(FieldError { field: format!("service[{i}].sorry_server"), message });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_passes_and_ipv6_is_refused_with_the_reason() {
        assert_eq!(dp_vip("10.10.0.100".parse().unwrap()), Ok(Ipv4Addr::new(10, 10, 0, 100)));
        assert_eq!(dp_server("10.20.0.11".parse().unwrap()), Ok(Ipv4Addr::new(10, 20, 0, 11)));
        let e = dp_vip("2001:db8::1".parse().unwrap()).unwrap_err();
        assert!(e.contains(NO_IPV6_DATA_PATH) && e.contains("2001:db8::1"), "{e}");
        let e = dp_server("2001:db8::11".parse().unwrap()).unwrap_err();
        assert!(e.contains(NO_IPV6_DATA_PATH) && e.contains("2001:db8::11"), "{e}");
        let k = ServiceKey { proto: crate::config::L4Proto::Tcp, vip: "2001:db8::1".parse().unwrap(), port: 80 };
        assert!(dp_key(k).is_err());
    }
}
