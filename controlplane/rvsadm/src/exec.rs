//! Runs a parsed [`Command`] against rvsd: which REST call each verb makes, and what it
//! prints.
//!
//! Contract: [`call_for`] is the single mapping from a changing verb to its request (method,
//! path, JSON body), used both by the command line and by `-R`, so a saved table restores
//! through exactly the requests that built it. Output goes to the given writers; the return
//! value is the exit status (0 success, 1 rvsd refused or could not be reached, 2 usage).

use std::io::{BufRead, Write};
use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::args::{self, Command, ListKind, ListOpts, ServerSpec, ServiceAddr, ServiceSpec};
use super::client::{ApiError, Client, Method};
use super::format::{self, Columns};
use super::model::{ConnPage, HaInstanceDoc, ServiceList, StatsDoc, StatusDoc, Timeouts};
use super::{EXIT_FAILURE, EXIT_OK, EXIT_REFUSED, EXIT_USAGE};

/// Connections asked for per page of `GET /v1/connections`.
pub const CONN_PAGE: u64 = 1000;

/// One REST request a changing verb makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The method.
    pub method: Method,
    /// The path under the API root, with its query.
    pub path: String,
    /// The JSON body, if any.
    pub body: Option<Value>,
    /// Which kernel call ipvsadm would have made: it picks the kernel's words for a refusal.
    pub refusal: Refusal,
}

/// The libipvs call a change corresponds to, for the kernel's words of a refusal
/// (libipvs's `ipvs_strerror` table), printed before rvsd's own reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `-A`: `ipvs_add_service`.
    AddService,
    /// `-E`: `ipvs_update_service`.
    EditService,
    /// `-D`: `ipvs_del_service`.
    DeleteService,
    /// `-Z`: `ipvs_zero_service`.
    ZeroService,
    /// `-a`: `ipvs_add_dest`.
    AddDest,
    /// `-e`: `ipvs_update_dest`.
    EditDest,
    /// `-d`: `ipvs_del_dest`.
    DeleteDest,
    /// No words of the kernel's apply (`-C`, `--set`): rvsd's reason alone.
    Other,
}

impl Refusal {
    /// The kernel's words for rvsd's refusal `status` with `error` (naming `field`).
    pub fn words(self, status: u16, error: &str, field: Option<&str>) -> Option<&'static str> {
        let about_scheduler = field.is_some_and(|f| f.contains("scheduler")) || error.contains("scheduler");
        // A 404 about a server (not the service) is the kernel's ENOENT, "No such destination".
        // rvsd's words decide ("service ... has no server ..." against "no service ...");
        // the controlplane's tests/rvsadm_compat.rs checks both against the real router.
        let about_server = error.contains("server") || field.is_some_and(|f| f.contains("server"));
        match (self, status) {
            (Refusal::AddService, 409) => Some("Service already exists"),
            (Refusal::AddService | Refusal::EditService, _) if about_scheduler => {
                Some("Scheduler or persistence engine not found")
            }
            (Refusal::EditService | Refusal::DeleteService | Refusal::ZeroService, 404) => Some("No such service"),
            (Refusal::AddDest, 409) => Some("Destination already exists"),
            (Refusal::AddDest, 404) => Some("Service not defined"),
            (Refusal::EditDest | Refusal::DeleteDest, 404) if about_server => Some("No such destination"),
            (Refusal::EditDest | Refusal::DeleteDest, 404) => Some("Service not defined"),
            _ => None,
        }
    }
}

fn service_path(s: &ServiceAddr) -> String {
    format!("/v1/services/{}", s.path())
}

/// The request a changing verb makes; `None` for the verbs that only read.
pub fn call_for(command: &Command) -> Option<Call> {
    let call = |refusal, method, path: String, body: Option<Value>| Call { method, path, body, refusal };
    Some(match command {
        Command::AddService(spec) => {
            call(Refusal::AddService, Method::Post, "/v1/services".into(), Some(add_service_body(spec)))
        }
        Command::EditService(spec) => {
            call(Refusal::EditService, Method::Put, service_path(&spec.service), Some(edit_service_body(spec)))
        }
        Command::DeleteService(s) => call(Refusal::DeleteService, Method::Delete, service_path(s), None),
        Command::AddServer(spec) => call(
            Refusal::AddDest,
            Method::Post,
            format!("{}/servers", service_path(&spec.service)),
            Some(server_body(spec, true)),
        ),
        Command::EditServer(spec) => call(
            Refusal::EditDest,
            Method::Put,
            format!("{}/servers/{}/{}", service_path(&spec.service), spec.server.ip(), spec.server.port()),
            Some(server_body(spec, false)),
        ),
        Command::DeleteServer { service, server } => call(
            Refusal::DeleteDest,
            Method::Delete,
            format!("{}/servers/{}/{}", service_path(service), server.ip(), server.port()),
            None,
        ),
        Command::Zero(None) => call(Refusal::ZeroService, Method::Post, "/v1/stats/zero".into(), None),
        Command::Zero(Some(s)) => {
            call(Refusal::ZeroService, Method::Post, format!("/v1/stats/zero?service={}", s.path()), None)
        }
        Command::Clear => call(Refusal::Other, Method::Delete, "/v1/services".into(), None),
        Command::SetTimeouts { tcp, tcp_fin, udp } => {
            let mut body = Map::new();
            for (name, v) in [("tcp", tcp), ("tcp_fin", tcp_fin), ("udp", udp)] {
                if *v != 0 {
                    body.insert(name.into(), json!(format!("{v}s")));
                }
            }
            call(Refusal::Other, Method::Put, "/v1/timeouts".into(), Some(Value::Object(body)))
        }
        Command::Admin { service, server, state } => call(
            Refusal::EditDest,
            Method::Put,
            format!("{}/servers/{}/{}", service_path(service), server.ip(), server.port()),
            Some(json!({ "admin": state.name() })),
        ),
        Command::List(_)
        | Command::Save { .. }
        | Command::Restore
        | Command::Status
        | Command::HaStepDown { .. }
        | Command::Help
        | Command::Version
        | Command::StartDaemon
        | Command::StopDaemon => return None,
    })
}

fn add_service_body(spec: &ServiceSpec) -> Value {
    let mut body = Map::new();
    body.insert("protocol".into(), json!(spec.service.protocol.name()));
    body.insert("address".into(), json!(spec.service.address.to_string()));
    body.insert("port".into(), json!(spec.service.port));
    body.insert("scheduler".into(), json!(spec.scheduler.as_deref().unwrap_or(args::DEFAULT_SCHEDULER)));
    insert_persistence(&mut body, spec);
    Value::Object(body)
}

fn edit_service_body(spec: &ServiceSpec) -> Value {
    let mut body = Map::new();
    if let Some(s) = &spec.scheduler {
        body.insert("scheduler".into(), json!(s));
    }
    insert_persistence(&mut body, spec);
    Value::Object(body)
}

fn insert_persistence(body: &mut Map<String, Value>, spec: &ServiceSpec) {
    match spec.persistence {
        Some(0) => {
            body.insert("persistence".into(), Value::Null);
        }
        Some(p) => {
            body.insert("persistence".into(), json!(format!("{p}s")));
        }
        None => {}
    }
    if let Some(m) = spec.netmask {
        body.insert("persistence_netmask".into(), json!(m.to_string()));
    }
    // rvs's own per-client rate: the REST fields of the same names (0 lifts the limit).
    if let Some(r) = spec.client_rate {
        body.insert("client_rate".into(), json!(r));
    }
    if let Some(b) = spec.client_burst {
        body.insert("client_burst".into(), json!(b));
    }
}

fn server_body(spec: &ServerSpec, with_address: bool) -> Value {
    let mut body = Map::new();
    if with_address {
        body.insert("address".into(), json!(spec.server.ip().to_string()));
        body.insert("port".into(), json!(spec.server.port()));
    }
    if let Some(w) = spec.weight {
        body.insert("weight".into(), json!(w));
    }
    if let Some(f) = spec.forward {
        body.insert("forward".into(), json!(f.name()));
    }
    if let Some(x) = spec.upper_threshold {
        body.insert("upper_threshold".into(), json!(x));
    }
    if let Some(y) = spec.lower_threshold {
        body.insert("lower_threshold".into(), json!(y));
    }
    Value::Object(body)
}

/// Makes a changing call, turning 409 into ipvsadm's words.
pub fn apply(client: &Client, call: &Call) -> Result<(), ApiError> {
    match client.call(call.method, &call.path, call.body.as_ref()) {
        Ok(_) => Ok(()),
        // The kernel's words first (scripts match them), then rvsd's more precise reason.
        Err(e @ ApiError::Status { .. }) => {
            let ApiError::Status { status, error, field } = &e else { unreachable!() };
            match call.refusal.words(*status, error, field.as_deref()) {
                Some(words) if words != error => {
                    Err(ApiError::Status { status: *status, error: format!("{words}\nrvsd: {e}"), field: None })
                }
                _ => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Where a command writes.
pub struct Io<'a> {
    /// Standard input (read by `-R`).
    pub stdin: &'a mut dyn BufRead,
    /// Standard output.
    pub out: &'a mut dyn Write,
    /// Standard error.
    pub err: &'a mut dyn Write,
}

/// Runs `command` against `client`; returns the exit status.
pub fn execute(client: &Client, command: &Command, io: &mut Io<'_>) -> i32 {
    let result = match command {
        Command::List(opts) => list(client, opts),
        Command::Save { .. } => save(client, io.err),
        Command::Status => {
            client.get::<StatusDoc>("/v1/status").map(|s| Output::Text(format::status(&s))).map_err(Failure::from)
        }
        Command::HaStepDown { vrid, family } => client
            .call(
                Method::Post,
                &match family {
                    Some(f) => format!("/v1/ha/{vrid}/step-down?family={f}"),
                    None => format!("/v1/ha/{vrid}/step-down"),
                },
                None,
            )
            .and_then(|r| {
                serde_json::from_slice::<HaInstanceDoc>(&r.body)
                    .map_err(|e| ApiError::Protocol(format!("rvsd's answer to step-down is not an HA instance: {e}")))
            })
            .map(|i| {
                Output::Text(format!(
                    "VRRP instance {vrid}{} on {}: stepped down, now {}\n",
                    family_tag(&i.family),
                    i.port,
                    i.state
                ))
            })
            .map_err(Failure::from),
        Command::Restore => return restore(client, io),
        Command::Help | Command::Version => Ok(Output::Text(String::new())),
        Command::StopDaemon => {
            // As ipvsadm when no sync daemon runs (libipvs: ESRCH).
            let _ = writeln!(io.err, "No daemon is running");
            return EXIT_REFUSED;
        }
        Command::StartDaemon => {
            let _ = writeln!(
                io.err,
                "rvs has no IPVS sync daemon: connections are synced by rvsd itself, configured in [ha] (sync_listen, sync_peer)"
            );
            return EXIT_REFUSED;
        }
        changing => match call_for(changing) {
            Some(call) => apply(client, &call).map(|()| Output::Text(String::new())).map_err(Failure::from),
            None => Ok(Output::Text(String::new())),
        },
    };
    match result {
        Ok(Output::Text(text)) => write_out(io.out, &text, EXIT_OK),
        Ok(Output::Partial(text)) => write_out(io.out, &text, EXIT_FAILURE),
        Err(Failure::NoSuchService) => {
            let _ = writeln!(io.err, "No such service");
            EXIT_FAILURE
        }
        Err(Failure::Api(e)) => {
            let _ = writeln!(io.err, "{e}");
            // ipvsadm returns -1 (exit 255) when the kernel refuses a change.
            if matches!(e, ApiError::Status { .. }) && (command.is_change() || matches!(command, Command::Admin { .. }))
            {
                EXIT_REFUSED
            } else {
                EXIT_FAILURE
            }
        }
    }
}

fn write_out(out: &mut dyn Write, text: &str, code: i32) -> i32 {
    // A closed stdout (`rvsadm -Ln | head -1`) is not worth a message.
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => code,
        Err(_) => EXIT_FAILURE,
    }
}

/// What a reading command produced.
enum Output {
    /// Everything asked for.
    Text(String),
    /// Something, but not everything (the reason was already written to stderr).
    Partial(String),
}

enum Failure {
    /// `-L -t SERVICE` of a service rvsd does not have (ipvsadm's message and status 1).
    NoSuchService,
    Api(ApiError),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

fn matches(service: &ServiceAddr, protocol: &str, address: &str, port: u64) -> bool {
    protocol.eq_ignore_ascii_case(service.protocol.name())
        && address.parse::<IpAddr>().is_ok_and(|a| a == service.address)
        && port == u64::from(service.port)
}

fn list(client: &Client, opts: &ListOpts) -> Result<Output, Failure> {
    match opts.kind {
        ListKind::Timeouts => Ok(Output::Text(format::timeouts(&client.get::<Timeouts>("/v1/timeouts")?))),
        // No ipvsadm-style sync daemon runs (rvs's sync is `[ha]`): ipvsadm prints nothing then.
        ListKind::Daemon => Ok(Output::Text(String::new())),
        ListKind::Connections => {
            let filter = opts.service.map(|s| format!("&service={}", s.path())).unwrap_or_default();
            let mut conns = Vec::new();
            let mut offset = 0u64;
            loop {
                let page: ConnPage =
                    client.get(&format!("/v1/connections?offset={offset}&limit={CONN_PAGE}{filter}"))?;
                let n = page.connections.len() as u64;
                conns.extend(page.connections);
                offset += n;
                // An empty page ends the walk even if `total` says otherwise (the table
                // shrinks while it is read).
                if n == 0 || offset >= page.total {
                    break;
                }
            }
            Ok(Output::Text(format::connections_with(&conns, opts.persistent_conn)))
        }
        ListKind::Services if opts.rate && !opts.stats => {
            let mut doc: StatsDoc = client.get("/v1/stats")?;
            if !opts.nosort {
                format::sort_stats(&mut doc.services);
            }
            if let Some(s) = &opts.service {
                doc.services.retain(|x| matches(s, &x.protocol, &x.address, x.port));
                if doc.services.is_empty() {
                    return Err(Failure::NoSuchService);
                }
            }
            Ok(Output::Text(format::rates_exact(&doc.services, opts.service.is_none(), opts.exact)))
        }
        ListKind::Services => {
            let mut doc: ServiceList = client.get("/v1/services")?;
            if !opts.nosort {
                format::sort_services(&mut doc.services);
            }
            if let Some(s) = &opts.service {
                doc.services.retain(|x| matches(s, &x.protocol, &x.address, x.port));
                if doc.services.is_empty() {
                    return Err(Failure::NoSuchService);
                }
            }
            // ipvsadm's precedence: stats, rate (above), thresholds, persistent-conn, tun-info.
            // `--health` comes with none of them (refused in parsing).
            let columns = if opts.health {
                Columns::Health
            } else if opts.stats {
                Columns::Stats
            } else if opts.thresholds {
                Columns::Thresholds
            } else if opts.persistent_conn {
                Columns::PersistConn
            } else if opts.tun_info {
                Columns::TunInfo
            } else {
                Columns::Plain
            };
            Ok(Output::Text(format::services_exact(&doc.services, columns, opts.service.is_none(), opts.exact)))
        }
    }
}

fn save(client: &Client, err: &mut dyn Write) -> Result<Output, Failure> {
    let mut doc: ServiceList = client.get("/v1/services")?;
    format::sort_services(&mut doc.services);
    let (text, problems) = format::save(&doc.services);
    for p in &problems {
        let _ = writeln!(err, "{p}");
    }
    Ok(if problems.is_empty() { Output::Text(text) } else { Output::Partial(text) })
}

/// `-R`: reads every line first (a usage error anywhere applies nothing and exits 2), then
/// applies them in order. A refused line is reported with its number and the rest still
/// apply, as ipvsadm does; an unreachable rvsd stops the run (exit 1). Exit 255 if a line
/// was refused.
fn restore(client: &Client, io: &mut Io<'_>) -> i32 {
    let mut calls = Vec::new();
    let mut line = String::new();
    let mut number = 0usize;
    loop {
        line.clear();
        number += 1;
        match io.stdin.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let _ = writeln!(io.err, "reading standard input: {e}");
                return EXIT_FAILURE;
            }
        }
        let words = args::split_line(&line);
        if words.is_empty() {
            continue;
        }
        let parsed = args::parse(&words).and_then(|inv| {
            if inv.api.is_some() {
                return Err(args::UsageError("--api is not accepted in -R input".into()));
            }
            match call_for(&inv.command) {
                Some(call) if inv.command.is_change() => Ok(call),
                _ => Err(args::UsageError("-R accepts only -A -E -D -a -e -d -C -Z and --set lines".into())),
            }
        });
        match parsed {
            Ok(call) => calls.push((number, call)),
            Err(e) => {
                let _ = writeln!(io.err, "line {number}: {e}");
                return EXIT_USAGE;
            }
        }
    }
    let mut status = EXIT_OK;
    for (number, call) in &calls {
        match apply(client, call) {
            Ok(()) => {}
            Err(e @ ApiError::Transport { .. }) => {
                let _ = writeln!(io.err, "line {number}: {e}");
                return EXIT_FAILURE;
            }
            Err(e) => {
                let _ = writeln!(io.err, "line {number}: {e}");
                // A refused line exits 255 like a refused command. ipvsadm -R exits with
                // its last line's status only; a migration that lost any line must fail.
                status = if matches!(e, ApiError::Status { .. }) { EXIT_REFUSED } else { EXIT_FAILURE };
            }
        }
    }
    status
}

/// ` (ipv6)` after a VRID for an instance whose family rvsd names, else nothing (an older
/// rvsd).
fn family_tag(family: &str) -> String {
    if family.is_empty() {
        String::new()
    } else {
        format!(" ({family})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(line: &str) -> Call {
        let inv = args::parse(&args::split_line(line)).unwrap_or_else(|e| panic!("{line}: {e}"));
        call_for(&inv.command).unwrap_or_else(|| panic!("{line}: no request"))
    }

    /// `--client-rate`/`--client-burst` become the REST fields of the same names, on create
    /// and on update; without them the bodies do not mention them.
    #[test]
    fn client_rate_and_burst_reach_the_bodies() {
        let c = call("-A -t 10.10.0.100:80 -s rr --client-rate 20 --client-burst 64");
        let body = c.body.unwrap();
        assert_eq!((body["client_rate"].clone(), body["client_burst"].clone()), (json!(20), json!(64)));
        let c = call("-E -t 10.10.0.100:80 --client-rate 0");
        assert_eq!(c.path, "/v1/services/tcp/10.10.0.100/80");
        assert_eq!(c.body.unwrap(), json!({"client_rate": 0}));
        let c = call("-A -t 10.10.0.100:80");
        assert!(c.body.unwrap().get("client_rate").is_none());
    }
}
