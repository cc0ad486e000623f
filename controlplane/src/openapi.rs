//! The OpenAPI 3 document of the REST API (`GET /v1/openapi.json`), written by hand
//! next to the router. Tests check that every path and method of
//! [`crate::api::ROUTES`] is described here and nothing else is.

use serde_json::{json, Map, Value};

fn traffic() -> Value {
    let n = json!({"type": "integer", "minimum": 0});
    json!({
        "type": "object",
        "properties": {
            "conns": n, "active_conns": n, "inactive_conns": n,
            "in_packets": n, "out_packets": n, "in_bytes": n, "out_bytes": n
        }
    })
}

/// A service's counters: the traffic plus the new flows it refused.
fn service_traffic() -> Value {
    let mut t = traffic();
    let n = |d: &str| json!({"type": "integer", "minimum": 0, "description": d});
    if let Some(p) = t["properties"].as_object_mut() {
        p.insert("acl_denied".into(), n("new flows refused by allow/deny (drop reason acl_denied)"));
        p.insert("service_maxconn".into(), n("new flows refused at maxconn (drop reason service_maxconn)"));
        p.insert(
            "client_rate_limited".into(),
            n("new flows refused over client_rate (drop reason client_rate_limited)"),
        );
    }
    t
}

/// `allow` / `deny`: a list of client prefixes.
fn client_prefixes(what: &str) -> Value {
    json!({"type": "array", "items": {"type": "string", "example": "192.0.2.0/24"},
        "description": format!("{what}; each a prefix with no host bits set, or an address (a /32)")})
}

/// `maxconn`.
fn maxconn() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": 4294967295u32, "default": 0,
        "description": "most connections of the service at once, over all workers (0: no limit); new flows beyond are dropped (service_maxconn)"})
}

/// `client_rate`.
fn client_rate() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": 1_000_000, "default": 0,
        "description": "new connections per second per client address, on each worker (0: no limit); new flows beyond are dropped (client_rate_limited)"})
}

/// `client_burst`.
fn client_burst(nullable: bool) -> Value {
    json!({"type": if nullable { json!(["integer", "null"]) } else { json!("integer") }, "minimum": 0, "maximum": 1_000_000,
        "description": "depth of each client's token bucket (new connections at once); default client_rate"})
}

/// `syn_proxy`.
fn syn_proxy(nullable: bool) -> Value {
    json!({"type": if nullable { json!(["string", "null"]) } else { json!("string") }, "enum": ["auto", "always", "off"],
        "description": "SYN proxy with SYN cookies (NAT and Full-NAT TCP services): auto answers SYNs with cookies while a worker holds dataplane.syn_proxy_threshold half-open connections or more; default auto for TCP services whose servers are all NAT/Full-NAT, else off"})
}

/// `quorum`.
fn quorum(nullable: bool) -> Value {
    json!({"type": if nullable { json!(["integer", "null"]) } else { json!("integer") }, "minimum": 0, "default": 1,
        "description": "healthy real servers needed for the VIP to be announced over BGP ([bgp]); 0: never withdrawn because of this service; at most the service's server count"})
}

/// `unknown_flow`.
fn unknown_flow(nullable: bool) -> Value {
    json!({"type": if nullable { json!(["string", "null"]) } else { json!("string") }, "enum": ["drop", "schedule"], "default": "drop",
        "description": "what a TCP segment other than a SYN for no known connection does: dropped (tcp_no_conn), or scheduled by the consistent hash and its connection created (TCP, every server DR or IPIP, scheduler mh, sh, dh, conhash or user-hash, no persistence), so flows ECMP moves between nodes keep their server"})
}

fn schemas() -> Value {
    json!({
        "Error": {
            "type": "object",
            "required": ["error", "field"],
            "properties": {
                "error": {"type": "string"},
                "field": {"type": ["string", "null"], "description": "JSON path of the offending value, `body`, `path`, or null"},
                "errors": {"type": "array", "items": {"type": "object", "properties": {
                    "field": {"type": "string"}, "message": {"type": "string"}}}}
            }
        },
        "Traffic": traffic(),
        "ServiceTraffic": service_traffic(),
        "Server": {
            "type": "object",
            "required": ["address"],
            "additionalProperties": false,
            "properties": {
                "address": {"type": "string", "example": "10.20.0.11",
                    "description": "IPv4 or IPv6 (bare: 2001:db8::11), of the service's VIP's family; an IPv6 service also takes IPv4 servers with forward fullnat (NAT64)"},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "default: the service's port"},
                "weight": {"type": "integer", "minimum": 0, "maximum": 65535, "default": 1},
                "forward": {"type": "string", "enum": ["dr", "nat", "fullnat", "tunnel"], "default": "dr"},
                "upper_threshold": {"type": "integer", "minimum": 0},
                "lower_threshold": {"type": "integer", "minimum": 0},
                "stats": {"$ref": "#/components/schemas/Traffic", "readOnly": true},
                "effective_weight": {"type": "integer", "minimum": 0, "readOnly": true,
                    "description": "the weight in effect (health checks, agent, backup tier, slowstart); weight is the configured one"},
                "health": {"type": "object", "readOnly": true, "properties": {
                    "state": {"type": "string", "enum": ["up", "down", "unknown"]},
                    "since": {"type": "string", "format": "date-time"},
                    "last": {"type": "string", "description": "the last probe's result in words"},
                    "latency_us": {"type": "integer", "minimum": 0, "description": "how long the last probe took, in microseconds"},
                    "probes_ok": {"type": "integer", "minimum": 0, "description": "probes passed since the server was first checked"},
                    "probes_failed": {"type": "integer", "minimum": 0, "description": "probes failed since the server was first checked"}}},
                "admin": {"type": "string", "enum": ["ready", "drain", "maint"], "readOnly": true,
                    "description": "administrative state, kept apart from health; set with PUT .../servers/{ip}/{rport}"}
            }
        },
        "Service": {
            "type": "object",
            "required": ["protocol", "address", "port"],
            "additionalProperties": false,
            "properties": {
                "protocol": {"type": "string", "enum": ["tcp", "udp"]},
                "address": {"type": "string", "example": "10.10.0.100",
                    "description": "the VIP, IPv4 or IPv6 (bare: 2001:db8::1)"},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "scheduler": {"type": "string", "default": "wlc"},
                "persistence": {"type": ["string", "null"], "example": "300s"},
                "persistence_netmask": {"type": "string", "default": "255.255.255.255",
                    "description": "IPv4 service: a netmask (255.255.255.0); IPv6 service: a prefix length 1-128 (\"64\"; default \"128\")"},
                "allow": client_prefixes("clients allowed to open connections (empty: all); either family, a prefix matches clients of its own"),
                "deny": client_prefixes("clients refused, whatever allow says (deny wins)"),
                "maxconn": maxconn(),
                "client_rate": client_rate(),
                "client_burst": client_burst(false),
                "syn_proxy": syn_proxy(false),
                "quorum": quorum(false),
                "unknown_flow": unknown_flow(false),
                "servers": {"type": "array", "items": {"$ref": "#/components/schemas/Server"}},
                "stats": {"$ref": "#/components/schemas/ServiceTraffic", "readOnly": true}
            }
        },
        "ServiceUpdate": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "scheduler": {"type": "string"},
                "persistence": {"type": ["string", "null"]},
                "persistence_netmask": {"type": ["string", "null"],
                    "description": "a netmask (IPv4 service) or a prefix length 1-128 (IPv6 service); null restores the default"},
                "allow": client_prefixes("replaces the allow list ([] allows all)"),
                "deny": client_prefixes("replaces the deny list"),
                "maxconn": maxconn(),
                "client_rate": client_rate(),
                "client_burst": client_burst(true),
                "syn_proxy": syn_proxy(true),
                "quorum": quorum(true),
                "unknown_flow": unknown_flow(true)
            }
        },
        "ServerUpdate": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "weight": {"type": "integer", "minimum": 0, "maximum": 65535},
                "forward": {"type": "string", "enum": ["dr", "nat", "fullnat", "tunnel"]},
                "upper_threshold": {"type": "integer", "minimum": 0},
                "lower_threshold": {"type": "integer", "minimum": 0},
                "admin": {"type": "string", "enum": ["ready", "drain", "maint"],
                    "description": "administrative state (not configuration; survives reloads of the same server): drain = weight 0 in effect, established flows continue; maint = out of scheduling, health probes paused; ready = normal"}
            }
        },
        "Change": {
            "type": "object",
            "properties": {
                "op": {"type": "string", "enum": ["add", "remove", "change"]},
                "path": {"type": "string", "example": "service[tcp/10.10.0.100/80].server[10.20.0.11:80].weight"},
                "from": {}, "to": {}
            }
        },
        "Applied": {
            "type": "object",
            "properties": {
                "applied": {"type": "boolean"},
                "changes": {"type": "array", "items": {"$ref": "#/components/schemas/Change"}},
                "warnings": {
                    "type": "array",
                    "description": "valid sections rvsd does not act on yet ([service.health], [ha])",
                    "items": {
                        "type": "object",
                        "properties": {
                            "field": {"type": "string", "example": "service[0].health"},
                            "message": {"type": "string"}
                        }
                    }
                }
            }
        },
        "Timeouts": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "tcp": {"type": "string", "example": "900s"},
                "tcp_fin": {"type": "string", "example": "120s"},
                "udp": {"type": "string", "example": "300s"}
            }
        },
        "Connection": {
            "type": "object",
            "properties": {
                "protocol": {"type": "string"}, "client": {"type": "string"}, "vip": {"type": "string"},
                "local": {"type": "string"}, "server": {"type": "string"}, "forward": {"type": "string"},
                "state": {"type": "string", "example": "ESTABLISHED"},
                "expires_in": {"type": "integer"}, "worker": {"type": "integer"}
            }
        },
        "Connections": {
            "type": "object",
            "properties": {
                "total": {"type": "integer"}, "offset": {"type": "integer"}, "limit": {"type": "integer"},
                "connections": {"type": "array", "items": {"$ref": "#/components/schemas/Connection"}}
            }
        },
        "Stats": {
            "type": "object",
            "properties": {"services": {"type": "array", "items": {"type": "object", "properties": {
                "protocol": {"type": "string"}, "address": {"type": "string"}, "port": {"type": "integer"},
                "stats": {"$ref": "#/components/schemas/ServiceTraffic"},
                "rates": {"$ref": "#/components/schemas/Rates"},
                "servers": {"type": "array", "items": {"type": "object", "properties": {
                    "address": {"type": "string"}, "port": {"type": "integer"},
                    "stats": {"$ref": "#/components/schemas/Traffic"},
                    "rates": {"$ref": "#/components/schemas/Rates"}}}}}}}}
        },
        "Rates": {
            "type": "object",
            "description": "IPVS-style estimates over 2 s periods (ipvsadm --rate); bps are bytes per second",
            "properties": {
                "cps": {"type": "integer"}, "in_pps": {"type": "integer"}, "out_pps": {"type": "integer"},
                "in_bps": {"type": "integer"}, "out_bps": {"type": "integer"}
            }
        },
        "Status": {"type": "object", "description": "ports, workers, drops, services, and `ha` (the HaStatus document) with [ha]; see rvs_controlplane::status"},
        "HaInstance": {
            "type": "object",
            "properties": {
                "vrid": {"type": "integer", "minimum": 1, "maximum": 255},
                "family": {"type": "string", "enum": ["ipv4", "ipv6"], "description": "the family of the adverts; with vrid and port it names the instance"},
                "virtual_link_local": {"type": "string", "description": "the virtual router's link-local address, first in IPv6 adverts (when configured)"},
                "port": {"type": "string"},
                "version": {"type": "integer", "enum": [2, 3]},
                "state": {"type": "string", "enum": ["init", "backup", "master", "fault"]},
                "priority": {"type": "integer", "description": "configured"},
                "effective_priority": {"type": "integer", "description": "after tracking"},
                "master": {"type": "string", "description": "the master's address as last heard (ours when master)"},
                "master_priority": {"type": "integer"},
                "advert_interval_ms": {"type": "integer"},
                "preempt": {"type": "boolean"},
                "addresses": {"type": "array", "items": {"type": "string"}},
                "since": {"type": "string", "format": "date-time", "description": "last transition"},
                "reason": {"type": "string", "description": "why the last transition happened"},
                "adverts_sent": {"type": "integer"},
                "adverts_received": {"type": "integer", "description": "valid adverts"},
                "invalid": {"type": "object", "additionalProperties": {"type": "integer"},
                    "description": "dropped adverts by reason: ttl version vrid type checksum truncated auth interval addresses own_address"},
                "transitions": {"type": "integer"}
            }
        },
        "HaStatus": {
            "type": "object",
            "properties": {
                "instances": {"type": "array", "items": {"$ref": "#/components/schemas/HaInstance"}},
                "adverts_unknown_vrid": {"type": "integer"},
                "packets_malformed": {"type": "integer"},
                "frames_dropped": {"type": "integer"}
            }
        }
    })
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_body(name: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema_ref(name)}}})
}

fn ok(code: &str, desc: &str, schema: Option<&str>) -> (String, Value) {
    let v = match schema {
        Some(s) => json!({"description": desc, "content": {"application/json": {"schema": schema_ref(s)}}}),
        None => json!({"description": desc}),
    };
    (code.to_string(), v)
}

fn op(summary: &str, body: Option<Value>, answers: Vec<(String, Value)>, params: Vec<Value>) -> Value {
    let mut responses = Map::new();
    for (c, v) in answers {
        responses.insert(c, v);
    }
    let err = json!({"description": "error", "content": {"application/json": {"schema": schema_ref("Error")}}});
    responses.insert("4XX".into(), err.clone());
    let mut o = json!({"summary": summary, "responses": responses});
    if let Some(b) = body {
        o["requestBody"] = b;
    }
    if !params.is_empty() {
        o["parameters"] = Value::Array(params);
    }
    o
}

fn path_param(name: &str, desc: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}, "description": desc})
}

fn query_param(name: &str, ty: &str, desc: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": {"type": ty}, "description": desc})
}

/// The document.
pub fn document() -> Value {
    let svc = || {
        vec![
            path_param("proto", "tcp or udp"),
            path_param("vip", "the VIP: 10.10.0.100, or IPv6 bare (2001:db8::1) or in brackets ([2001:db8::1], raw or percent-encoded as %5B %5D)"),
            path_param("port", "the virtual port"),
        ]
    };
    let srv = || {
        let mut v = svc();
        v.push(path_param("ip", "the real server's address: 10.20.0.11, or IPv6 bare or in brackets as the VIP"));
        v.push(path_param("rport", "the real server's port"));
        v
    };
    let list = |name: &str, key: &str| {
        json!({"description": "the list", "content": {"application/json": {"schema": {
            "type": "object", "properties": {key: {"type": "array", "items": schema_ref(name)}}}}}})
    };
    json!({
        "openapi": "3.0.3",
        "info": {"title": "rvs REST API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Services, real servers, connections, stats, timeouts and the running configuration of rvsd. Errors are {\"error\", \"field\"} with a 4xx status."},
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                "description": "required when api.token_file is set (always for a non-loopback api.listen)"}}
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/status": {"get": op("status: ports, workers, drops, services", None, vec![ok("200", "status", Some("Status"))], vec![])},
            "/v1/openapi.json": {"get": op("this document", None, vec![ok("200", "OpenAPI 3", None)], vec![])},
            "/v1/services": {
                "get": op("list services (ipvsadm -L)", None, vec![("200".into(), list("Service", "services"))], vec![]),
                "post": op("add a service (ipvsadm -A)", Some(json_body("Service")), vec![ok("201", "created", Some("Service"))], vec![]),
                "delete": op("delete every service (ipvsadm -C)", None, vec![ok("204", "deleted", None)], vec![])
            },
            "/v1/services/{proto}/{vip}/{port}": {
                "get": op("one service", None, vec![ok("200", "the service", Some("Service"))], svc()),
                "put": op("edit a service (ipvsadm -E)", Some(json_body("ServiceUpdate")), vec![ok("200", "the service", Some("Service"))], svc()),
                "delete": op("delete a service (ipvsadm -D)", None, vec![ok("204", "deleted", None)], svc())
            },
            "/v1/services/{proto}/{vip}/{port}/servers": {
                "get": op("a service's real servers", None, vec![("200".into(), list("Server", "servers"))], svc()),
                "post": op("add a real server (ipvsadm -a)", Some(json_body("Server")), vec![ok("201", "created", Some("Server"))], svc())
            },
            "/v1/services/{proto}/{vip}/{port}/servers/{ip}/{rport}": {
                "get": op("one real server", None, vec![ok("200", "the server", Some("Server"))], srv()),
                "put": op("edit a real server (ipvsadm -e)", Some(json_body("ServerUpdate")), vec![ok("200", "the server", Some("Server"))], srv()),
                "delete": op("delete a real server (ipvsadm -d)", None, vec![ok("204", "deleted", None)], srv())
            },
            "/v1/connections": {
                "get": op("connections (ipvsadm -Lnc), from every worker", None,
                    vec![ok("200", "a page", Some("Connections")), ok("503", "a worker did not answer", Some("Error"))],
                    vec![query_param("service", "string", "tcp/10.10.0.100/80 (IPv6: tcp/2001:db8::1/80)"),
                         query_param("server", "string", "10.20.0.11:80 (IPv6 in brackets: [2001:db8::11]:80)"),
                         query_param("offset", "integer", "default 0"),
                         query_param("limit", "integer", "default 100, at most 100000")])
            },
            "/v1/config": {
                "get": {"summary": "the running configuration (canonical TOML)",
                        "responses": {"200": {"description": "TOML", "content": {"text/plain": {"schema": {"type": "string"}}}}}},
                "put": {"summary": "validate the whole file and apply the difference atomically",
                        "parameters": [query_param("dry_run", "boolean", "return the difference without applying")],
                        "requestBody": {"required": true, "content": {"text/plain": {"schema": {"type": "string"}}}},
                        "responses": {"200": {"description": "applied (or the dry run's difference)",
                                              "content": {"application/json": {"schema": schema_ref("Applied")}}},
                                      "4XX": {"description": "error", "content": {"application/json": {"schema": schema_ref("Error")}}}}}
            },
            "/v1/timeouts": {
                "get": op("connection timeouts", None, vec![ok("200", "timeouts", Some("Timeouts"))], vec![]),
                "put": op("set timeouts (ipvsadm --set; 0s keeps a value)", Some(json_body("Timeouts")), vec![ok("200", "timeouts", Some("Timeouts"))], vec![])
            },
            "/v1/stats": {"get": op("per service and server counters (ipvsadm -L --stats)", None, vec![ok("200", "stats", Some("Stats"))], vec![])},
            "/v1/stats/zero": {"post": op("zero the counters (ipvsadm -Z; ?service=tcp/VIP/PORT for one service)", None, vec![ok("204", "zeroed", None)], vec![])},
            "/v1/ha": {"get": op("VRRP instances: state, priorities, master, last transition, advert counters (404 without [ha])", None, vec![ok("200", "HA status", Some("HaStatus"))], vec![])},
            "/v1/ha/{vrid}/step-down": {"post": op("the master of VRID resigns: sends priority 0, becomes backup and does not preempt for `hold` (default 300s); `family` picks the IPv4 or IPv6 instance of a VRID that has both (422 without it then); 409 when not master",
                None, vec![ok("200", "the instance after stepping down", Some("HaInstance"))],
                vec![path_param("vrid", "the instance's VRID"), query_param("hold", "string", "how long not to preempt, e.g. 10m (default 300s)"), query_param("family", "string", "ipv4 or ipv6: the family of the instance's adverts, needed when the VRID has one instance of each")])},
            "/metrics": {"get": {"summary": "Prometheus text exposition (rvs_ metrics)", "responses": {"200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}}}}
        }
    })
}
