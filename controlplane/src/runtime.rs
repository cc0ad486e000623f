//! The running configuration and the one path every change takes.
//!
//! The control thread owns one [`Running`]: the valid configuration in use, the file
//! shape it came from, its canonical TOML text (what `GET /v1/config` returns), the
//! generation of the published service table, and the [`SharedServices`] the workers
//! read. Every change — `PUT /v1/config`, every CRUD call, `PUT /v1/timeouts`, SIGHUP —
//! goes through [`Running::commit`]:
//!
//! 1. take the running file and produce a candidate (CRUD edits the file model; a new
//!    file replaces it);
//! 2. validate the *whole* candidate with the config validator; errors name their field
//!    (remapped to the request body's JSON path for CRUD calls) and change nothing;
//! 3. refuse changes that need a restart ([`restart_only`]: ports, workers, EAL
//!    arguments, pool and descriptor sizes, connection capacity, routes, neighbours, the
//!    API listener, HA, probe ports) with the field and "requires restarting rvsd";
//! 4. compute the difference ([`diff`]); a dry run stops here and returns it;
//! 5. build the new service table (stable ids, counters and persistence carried over,
//!    see [`crate::services`]) and publish it with one atomic store — each worker picks it
//!    up at its next poll;
//! 6. only then replace the running config, file and text.
//!
//! A failure at any step leaves everything — the text `GET /v1/config` returns included —
//! exactly as it was: there is no half-applied state.
//!
//! Health: the health thread ([`crate::health::run`]) hands the effect of every checked
//! server ([`Running::set_health`]); the table is rebuilt and published when an effect
//! changed, through the same build as a configuration change, and every later apply
//! builds with the effects in force. The configured weights stay in the configuration;
//! the weights in effect live only in the published table.
//!
//! Admin states ([`Running::set_admin`]: ready, drain, maint, HAProxy's) are the
//! operator's and live beside the configuration, not in it: they are applied on top of
//! the health effects in every table build, survive every apply that keeps the server
//! (same service, address and port; SIGHUP included), and are forgotten with it.
//!
//! Counters are never reset by the data path; `POST /v1/stats/zero` (ipvsadm -Z) records
//! a baseline that reads subtract ([`Running::traffic`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use rvs_dataplane::server::{ServerStats, ServerStatsSnapshot};
use rvs_dataplane::service::{ServiceTable, SharedServices};
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::file::ConfigFile;
use crate::config::{parse_toml, Config, ConfigError, FieldError, Server, Service, ServiceKey};
use crate::health::state::Admin;
use crate::model::{
    duration_text, service_name, ServerBody, ServerUpdate, ServerView, ServiceBody, ServiceRef, ServiceUpdate,
    ServiceView, TimeoutsBody, TimeoutsView,
};
use crate::services::{build_with_health, service_key, IdBook, Overlay, ServerRef};
use crate::status::{HealthView, TrafficJson};

/// One difference between the running configuration and a candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `add`, `remove` or `change`.
    pub op: &'static str,
    /// What changed: `service[tcp/10.10.0.100/80].server[10.20.0.11:80].weight`,
    /// `dataplane.tcp_timeout`, …
    pub path: String,
    /// The old value (`null` for `add`).
    pub from: Value,
    /// The new value (`null` for `remove`).
    pub to: Value,
}

/// Why a change was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// The request or file could not be read: malformed TOML or JSON, a value of the
    /// wrong type, an unknown field (HTTP 400).
    Malformed(ConfigError),
    /// The candidate configuration is invalid; every error names its field (HTTP 422).
    Invalid(ConfigError),
    /// The object already exists (HTTP 409).
    Conflict(FieldError),
    /// The object does not exist (HTTP 404).
    NotFound(FieldError),
    /// The change needs a restart (HTTP 409).
    Restart(FieldError),
    /// The data path refused the table (HTTP 422); should not happen for a valid config.
    Build(FieldError),
}

impl ApplyError {
    /// The first (or only) error, for the `{"error", "field"}` answer.
    pub fn first(&self) -> FieldError {
        match self {
            ApplyError::Malformed(e) | ApplyError::Invalid(e) => e
                .errors
                .first()
                .cloned()
                .unwrap_or(FieldError { field: "body".into(), message: "invalid configuration".into() }),
            ApplyError::Conflict(e) | ApplyError::NotFound(e) | ApplyError::Restart(e) | ApplyError::Build(e) => {
                e.clone()
            }
        }
    }
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Malformed(e) | ApplyError::Invalid(e) => write!(f, "{e}"),
            ApplyError::Conflict(e) | ApplyError::NotFound(e) | ApplyError::Restart(e) | ApplyError::Build(e) => {
                write!(f, "{e}")
            }
        }
    }
}

fn fe(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), message: message.into() }
}

/// The running configuration and everything derived from it (see the module docs).
#[derive(Debug)]
pub struct Running {
    config: Config,
    file: ConfigFile,
    text: String,
    generation: u64,
    shared: SharedServices,
    workers: usize,
    ids: IdBook,
    baseline_services: HashMap<u32, ServerStatsSnapshot>,
    baseline_servers: HashMap<u32, ServerStatsSnapshot>,
    health: Overlay,
    health_status: HashMap<ServerRef, HealthView>,
    /// Servers whose admin state is not `ready`.
    admin: HashMap<ServerRef, Admin>,
    version: u64,
}

/// The effects a table is built from: the health effects with the admin states on top.
fn merged(config: &Config, health: &Overlay, admin: &HashMap<ServerRef, Admin>) -> Overlay {
    let mut out = health.clone();
    if admin.is_empty() {
        return out;
    }
    for s in &config.services {
        let key = service_key(s);
        for r in &s.servers {
            let k = (key, r.address, r.port);
            if let Some(a) = admin.get(&k) {
                let base = out.get(&k).copied().unwrap_or_else(|| crate::services::start_effect(s, r));
                out.insert(k, a.apply(base));
            }
        }
    }
    out
}

/// The admin states of `admin` whose server `config` still has.
fn kept_admin(config: &Config, admin: &HashMap<ServerRef, Admin>) -> HashMap<ServerRef, Admin> {
    let mut out = HashMap::new();
    if admin.is_empty() {
        return out;
    }
    for s in &config.services {
        let key = service_key(s);
        for r in &s.servers {
            let k = (key, r.address, r.port);
            if let Some(a) = admin.get(&k) {
                out.insert(k, *a);
            }
        }
    }
    out
}

/// The canonical TOML of a file.
pub fn canonical(file: &ConfigFile) -> Result<String, FieldError> {
    toml::to_string(file).map_err(|e| fe("body", format!("cannot write the configuration as TOML: {e}")))
}

impl Running {
    /// The running state for the configuration in `text`, with a first service table
    /// (generation 1) sized for `workers` workers.
    pub fn from_toml(text: &str, workers: usize) -> Result<Running, ConfigError> {
        let file = parse_toml(text)?;
        let config = Config::from_file(&file)?;
        let whole = |message: String| ConfigError { errors: vec![fe("", message)] };
        let text = canonical(&file).map_err(|e| whole(e.message))?;
        let mut ids = IdBook::default();
        let table = build_with_health(&config, 1, workers, &mut ids, None, &Overlay::new())
            .map_err(|e| whole(format!("{e:#}")))?;
        Ok(Running {
            config,
            file,
            text,
            generation: 1,
            shared: rvs_dataplane::service::share(table),
            workers,
            ids,
            baseline_services: HashMap::new(),
            baseline_servers: HashMap::new(),
            health: Overlay::new(),
            health_status: HashMap::new(),
            admin: HashMap::new(),
            version: 1,
        })
    }

    /// Bumped by every applied change: the health thread reconciles when it moves.
    pub fn config_version(&self) -> u64 {
        self.version
    }

    /// Sets the health effects in force and, when they differ from the current ones,
    /// rebuilds and publishes the service table.
    pub fn set_health(&mut self, health: Overlay) -> anyhow::Result<bool> {
        if health == self.health {
            return Ok(false);
        }
        let mut ids = self.ids.clone();
        let generation = self.generation + 1;
        let current = self.shared.load_full();
        let overlay = merged(&self.config, &health, &self.admin);
        let table = build_with_health(&self.config, generation, self.workers, &mut ids, Some(&current), &overlay)?;
        self.shared.store(Arc::new(table));
        self.ids = ids;
        self.generation = generation;
        self.health = health;
        Ok(true)
    }

    /// Sets the admin state of server `addr:port` of service `r` (404 if there is no
    /// such server) and publishes the table it gives; returns whether it changed. Bumps
    /// [`Running::config_version`] so the health thread pauses or resumes its probes.
    pub fn set_admin(&mut self, r: &ServiceRef, addr: IpAddr, port: u16, admin: Admin) -> Result<bool, ApplyError> {
        let i = self.find_service(r)?;
        self.find_server(i, addr, port)?;
        let k = (service_key(&self.config.services[i]), addr, port);
        let mut next = self.admin.clone();
        if admin == Admin::Ready {
            next.remove(&k);
        } else {
            next.insert(k, admin);
        }
        if next == self.admin {
            return Ok(false);
        }
        let mut ids = self.ids.clone();
        let generation = self.generation + 1;
        let current = self.shared.load_full();
        let overlay = merged(&self.config, &self.health, &next);
        let table = build_with_health(&self.config, generation, self.workers, &mut ids, Some(&current), &overlay)
            .map_err(|e| ApplyError::Build(fe("admin", format!("{e:#}"))))?;
        self.shared.store(Arc::new(table));
        self.ids = ids;
        self.generation = generation;
        self.admin = next;
        self.version += 1;
        tracing::info!(service = %r, server = %crate::config::endpoint(addr, port), admin = admin.name(), "admin state set");
        Ok(true)
    }

    /// The admin state of a server (`ready` unless set otherwise).
    pub fn admin(&self, k: &ServerRef) -> Admin {
        self.admin.get(k).copied().unwrap_or_default()
    }

    /// The servers whose admin state is not `ready`.
    pub fn admin_states(&self) -> &HashMap<ServerRef, Admin> {
        &self.admin
    }

    /// Sets what the API shows of each checked server's health.
    pub fn set_health_status(&mut self, status: HashMap<ServerRef, HealthView>) {
        self.health_status = status;
    }

    /// Per configured service (in configuration order): its key, its real servers that
    /// can take a new flow now (the health and admin effects in force: up, present, a
    /// weight above 0) and its server count. What `quorum` is compared with
    /// ([`crate::bgp::decide`]).
    pub fn healthy_servers(&self) -> Vec<(ServiceKey, u32, u32)> {
        let effects = merged(&self.config, &self.health, &self.admin);
        self.config
            .services
            .iter()
            .map(|s| {
                let key = service_key(s);
                let healthy = s
                    .servers
                    .iter()
                    .filter(|r| {
                        let e = effects
                            .get(&(key, r.address, r.port))
                            .copied()
                            .unwrap_or_else(|| crate::services::start_effect(s, r));
                        e.up && e.present && e.weight > 0
                    })
                    .count();
                (key, healthy as u32, s.servers.len() as u32)
            })
            .collect()
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Its canonical TOML (`GET /v1/config`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The generation of the published table.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The table the workers read.
    pub fn shared(&self) -> &SharedServices {
        &self.shared
    }

    /// The one apply path (see the module docs): validates `file` as a whole, refuses
    /// restart-only changes, and unless `dry_run` publishes it. `field` maps the
    /// validator's config paths to the request's (identity for whole files).
    pub fn commit(
        &mut self,
        file: ConfigFile,
        dry_run: bool,
        field: &dyn Fn(&str) -> String,
    ) -> Result<Vec<Change>, ApplyError> {
        let config = Config::from_file(&file).map_err(|mut e| {
            for x in &mut e.errors {
                x.field = field(&x.field);
            }
            ApplyError::Invalid(e)
        })?;
        if let Some(e) = restart_only(&self.config, &config) {
            return Err(ApplyError::Restart(e));
        }
        let changes = diff(&self.config, &config);
        let text = canonical(&file).map_err(ApplyError::Build)?;
        if dry_run {
            return Ok(changes);
        }
        let admin = kept_admin(&config, &self.admin);
        if !changes.is_empty() {
            let mut ids = self.ids.clone();
            let generation = self.generation + 1;
            let current = self.shared.load_full();
            let overlay = merged(&config, &self.health, &admin);
            let table = build_with_health(&config, generation, self.workers, &mut ids, Some(&current), &overlay)
                .map_err(|e| ApplyError::Build(fe("body", format!("{e:#}"))))?;
            self.shared.store(Arc::new(table));
            self.ids = ids;
            self.generation = generation;
        }
        self.admin = admin;
        self.config = config;
        self.file = file;
        self.text = text;
        self.version += 1;
        Ok(changes)
    }

    /// `PUT /v1/config` and SIGHUP: the whole file `text`.
    pub fn apply_toml(&mut self, text: &str, dry_run: bool) -> Result<Vec<Change>, ApplyError> {
        let file = parse_toml(text).map_err(|mut e| {
            for x in &mut e.errors {
                if x.field.is_empty() {
                    x.field = "body".into();
                }
            }
            ApplyError::Malformed(e)
        })?;
        self.commit(file, dry_run, &|f: &str| if f.is_empty() { "body".to_string() } else { f.to_string() })
    }

    /// The index of service `r`, or 404.
    pub fn find_service(&self, r: &ServiceRef) -> Result<usize, ApplyError> {
        self.config
            .services
            .iter()
            .position(|s| r.is(s))
            .ok_or_else(|| ApplyError::NotFound(fe("path", format!("no service {r}"))))
    }

    /// The index of server `addr:port` of service `i`, or 404.
    pub fn find_server(&self, i: usize, addr: IpAddr, port: u16) -> Result<usize, ApplyError> {
        let s = &self.config.services[i];
        s.servers.iter().position(|r| r.address == addr && r.port == port).ok_or_else(|| {
            ApplyError::NotFound(fe(
                "path",
                format!("service {} has no server {}", service_name(s), crate::config::endpoint(addr, port)),
            ))
        })
    }

    /// `POST /v1/services` (ipvsadm -A).
    pub fn add_service(&mut self, body: &ServiceBody, dry_run: bool) -> Result<Vec<Change>, ApplyError> {
        if let Ok(r) = ServiceRef::parse(&body.protocol, &body.address, &body.port.to_string()) {
            if self.find_service(&r).is_ok() {
                return Err(ApplyError::Conflict(fe("address", format!("service {r} already exists"))));
            }
        }
        let mut file = self.file.clone();
        let i = file.services.len();
        file.services.push(body.to_file());
        self.commit(file, dry_run, &|f: &str| service_field(f, i))
    }

    /// `PUT /v1/services/{proto}/{vip}/{port}` (ipvsadm -E).
    pub fn update_service(&mut self, r: &ServiceRef, u: &ServiceUpdate) -> Result<Vec<Change>, ApplyError> {
        let i = self.find_service(r)?;
        let mut file = self.file.clone();
        u.apply(&mut file.services[i]);
        self.commit(file, false, &|f: &str| service_field(f, i))
    }

    /// `DELETE /v1/services/{proto}/{vip}/{port}` (ipvsadm -D).
    pub fn delete_service(&mut self, r: &ServiceRef) -> Result<Vec<Change>, ApplyError> {
        let i = self.find_service(r)?;
        let mut file = self.file.clone();
        file.services.remove(i);
        self.commit(file, false, &|f: &str| f.to_string())
    }

    /// `DELETE /v1/services` (ipvsadm -C).
    pub fn clear_services(&mut self) -> Result<Vec<Change>, ApplyError> {
        let mut file = self.file.clone();
        file.services.clear();
        self.commit(file, false, &|f: &str| f.to_string())
    }

    /// `POST …/servers` (ipvsadm -a).
    pub fn add_server(&mut self, r: &ServiceRef, body: &ServerBody) -> Result<Vec<Change>, ApplyError> {
        let i = self.find_service(r)?;
        if let Ok(addr) = body.address.parse::<IpAddr>() {
            let port = body.port.unwrap_or(i64::from(r.port));
            if let Ok(port) = u16::try_from(port) {
                if self.find_server(i, addr, port).is_ok() {
                    return Err(ApplyError::Conflict(fe(
                        "address",
                        format!("{} is already a server of service {r}", crate::config::endpoint(addr, port)),
                    )));
                }
            }
        }
        let mut file = self.file.clone();
        let k = file.services[i].servers.len();
        file.services[i].servers.push(body.to_file());
        self.commit(file, false, &|f: &str| server_field(f, i, k))
    }

    /// `PUT …/servers/{ip}/{port}` (ipvsadm -e).
    pub fn update_server(
        &mut self,
        r: &ServiceRef,
        addr: IpAddr,
        port: u16,
        u: &ServerUpdate,
    ) -> Result<Vec<Change>, ApplyError> {
        let i = self.find_service(r)?;
        let k = self.find_server(i, addr, port)?;
        let admin = match u.admin.as_deref() {
            None => None,
            Some(w) => Some(Admin::parse(w).ok_or_else(|| {
                let message = format!("`{w}` is not an admin state; use {}", crate::health::state::ADMIN_WORDS);
                ApplyError::Invalid(ConfigError { errors: vec![fe("admin", message)] })
            })?),
        };
        let mut changes = Vec::new();
        if u.changes_config() || admin.is_none() {
            let mut file = self.file.clone();
            u.apply(&mut file.services[i].servers[k]);
            changes = self.commit(file, false, &|f: &str| server_field(f, i, k))?;
        }
        if let Some(a) = admin {
            self.set_admin(r, addr, port, a)?;
        }
        Ok(changes)
    }

    /// `DELETE …/servers/{ip}/{port}` (ipvsadm -d).
    pub fn delete_server(&mut self, r: &ServiceRef, addr: IpAddr, port: u16) -> Result<Vec<Change>, ApplyError> {
        let i = self.find_service(r)?;
        let k = self.find_server(i, addr, port)?;
        let mut file = self.file.clone();
        file.services[i].servers.remove(k);
        self.commit(file, false, &|f: &str| f.to_string())
    }

    /// `PUT /v1/timeouts` (ipvsadm --set): `"0s"` or absent keeps a value.
    pub fn set_timeouts(&mut self, body: &TimeoutsBody) -> Result<Vec<Change>, ApplyError> {
        let mut file = self.file.clone();
        let keep = |v: &Option<String>| {
            v.as_deref().is_none_or(|t| humantime::parse_duration(t.trim()).is_ok_and(|d| d.is_zero()))
        };
        let dp = &mut file.dataplane;
        if !keep(&body.tcp) {
            dp.tcp_timeout = body.tcp.clone();
        }
        if !keep(&body.tcp_fin) {
            dp.tcp_fin_timeout = body.tcp_fin.clone();
        }
        if !keep(&body.udp) {
            dp.udp_timeout = body.udp.clone();
        }
        self.commit(file, false, &|f: &str| match f {
            "dataplane.tcp_timeout" => "tcp".into(),
            "dataplane.tcp_fin_timeout" => "tcp_fin".into(),
            "dataplane.udp_timeout" => "udp".into(),
            other => other.into(),
        })
    }

    /// The three timeouts in use.
    pub fn timeouts(&self) -> TimeoutsView {
        let dp = &self.config.dataplane;
        TimeoutsView {
            tcp: duration_text(dp.tcp_timeout),
            tcp_fin: duration_text(dp.tcp_fin_timeout),
            udp: duration_text(dp.udp_timeout),
        }
    }

    /// `POST /v1/stats/zero` (ipvsadm -Z): from now on, reads subtract today's counters.
    pub fn zero_stats(&mut self, only: Option<ServiceKey>) {
        let table = self.shared.load_full();
        if only.is_none() {
            self.baseline_services.clear();
            self.baseline_servers.clear();
        }
        for (i, s) in table.services().iter().enumerate() {
            if only.is_some_and(|k| k != ServiceKey::from(s.key)) {
                continue;
            }
            if let Some(id) = table.service_id(i as u32) {
                self.baseline_services.insert(id, s.stats.snapshot());
            }
            for (j, r) in s.servers.iter().enumerate() {
                if let Some(id) = table.server_id(i as u32, j) {
                    self.baseline_servers.insert(id, r.stats.snapshot());
                }
            }
        }
    }

    /// The counters of `stats` (service id or server id `id`, per `server`) minus the
    /// baseline of the last zeroing. Connection gauges (active, inactive) are not zeroed.
    pub fn traffic(&self, server: bool, id: u32, stats: &ServerStats) -> TrafficJson {
        let now = stats.snapshot();
        let base = if server { self.baseline_servers.get(&id) } else { self.baseline_services.get(&id) };
        // No baseline: nothing subtracted.
        let b = base.copied().unwrap_or_default();
        TrafficJson {
            // Refusals are the service's: the workers never ask a server.
            acl_denied: (!server).then(|| now.acl_denied.saturating_sub(b.acl_denied)),
            service_maxconn: (!server).then(|| now.service_maxconn.saturating_sub(b.service_maxconn)),
            client_rate_limited: (!server).then(|| now.client_rate_limited.saturating_sub(b.client_rate_limited)),
            conns: now.conns.saturating_sub(b.conns),
            active_conns: now.active_conns,
            inactive_conns: now.inactive_conns,
            in_packets: now.packets_in.saturating_sub(b.packets_in),
            out_packets: now.packets_out.saturating_sub(b.packets_out),
            in_bytes: now.bytes_in.saturating_sub(b.bytes_in),
            out_bytes: now.bytes_out.saturating_sub(b.bytes_out),
        }
    }

    /// Every service with its servers and counters (`GET /v1/services`), in
    /// configuration order.
    pub fn service_views(&self) -> Vec<ServiceView> {
        let table = self.shared.load_full();
        (0..self.config.services.len()).map(|i| self.view_at(&table, i)).collect()
    }

    /// Service `i` with its counters.
    pub fn service_view(&self, i: usize) -> ServiceView {
        self.view_at(&self.shared.load_full(), i)
    }

    fn view_at(&self, table: &ServiceTable, i: usize) -> ServiceView {
        let mut v = ServiceView::new(&self.config.services[i]);
        // The published table is built from the running config, in its order.
        let Some(dp) = table.get(i as u32) else { return v };
        if let Some(id) = table.service_id(i as u32) {
            v.stats = Some(self.traffic(false, id, &dp.stats));
        }
        let key = crate::services::service_key(&self.config.services[i]);
        for (r, c) in v.servers.iter_mut().zip(&self.config.services[i].servers) {
            // Servers removed by their health check are not in the table: by id.
            let found = self.ids.server_id(key, c.address, c.port).and_then(|id| Some((id, table.by_server_id(id)?.1)));
            r.effective_weight = Some(found.map_or(0, |(_, s)| u16::try_from(s.weight).unwrap_or(u16::MAX)));
            if let Some((id, s)) = found {
                r.stats = Some(self.traffic(true, id, &s.stats));
            }
            let admin = self.admin(&(key, c.address, c.port));
            let unchecked =
                if admin == Admin::Maint { "probes paused (admin maint)" } else { "not checked (no [service.health])" };
            let status = self.health_status.get(&(key, c.address, c.port)).filter(|_| admin != Admin::Maint);
            r.health = Some(status.cloned().unwrap_or_else(|| HealthView::unchecked(unchecked)));
            r.admin = Some(admin.name().into());
        }
        v
    }
}

/// Maps a config path of service `i` to the POST/PUT body's JSON path:
/// `service[i].port` → `port`, `service[i].server[2].weight` → `servers[2].weight`.
fn service_field(f: &str, i: usize) -> String {
    let p = format!("service[{i}]");
    if f == p {
        return "body".into();
    }
    match f.strip_prefix(&format!("{p}.")) {
        Some(rest) => match rest.strip_prefix("server[") {
            Some(r) => format!("servers[{r}"),
            None => rest.to_string(),
        },
        None if f.is_empty() => "body".into(),
        None => f.to_string(),
    }
}

/// Maps a config path of server `k` of service `i` to the server body's JSON path.
fn server_field(f: &str, i: usize, k: usize) -> String {
    let p = format!("service[{i}].server[{k}]");
    if f == p {
        return "body".into();
    }
    match f.strip_prefix(&format!("{p}.")) {
        Some(rest) => rest.to_string(),
        None if f.is_empty() => "body".into(),
        None => f.to_string(),
    }
}

/// The first difference between `old` and `new` that the data path cannot take live, as
/// a field error saying so; `None` when everything that differs is live.
pub fn restart_only(old: &Config, new: &Config) -> Option<FieldError> {
    let restart = |field: String| {
        let message = format!("changing {field} requires restarting rvsd; it cannot change while rvsd runs");
        Some(fe(field, message))
    };
    let (a, b) = (&old.dataplane, &new.dataplane);
    let checks: [(&str, bool); 10] = [
        ("dataplane.workers", a.workers != b.workers),
        ("dataplane.idle", a.idle != b.idle),
        ("dataplane.eal_args", a.eal_args != b.eal_args),
        ("dataplane.mempool_size", a.mempool_size != b.mempool_size),
        ("dataplane.rx_descriptors", a.rx_descriptors != b.rx_descriptors),
        ("dataplane.tx_descriptors", a.tx_descriptors != b.tx_descriptors),
        ("dataplane.neighbour_timeout", a.neighbour_timeout != b.neighbour_timeout),
        ("dataplane.neighbour_retry", a.neighbour_retry != b.neighbour_retry),
        ("dataplane.conn_capacity", a.conn_capacity != b.conn_capacity),
        ("dataplane.probe_ports", a.probe_ports != b.probe_ports),
    ];
    if let Some((f, _)) = checks.iter().find(|(_, differs)| *differs) {
        return restart(f.to_string());
    }
    if old.ports.len() != new.ports.len() {
        return restart("port".into());
    }
    for (i, (p, q)) in old.ports.iter().zip(&new.ports).enumerate() {
        let fields: [(&str, bool); 8] = [
            ("name", p.name != q.name),
            ("device", p.device != q.device),
            ("address", p.address != q.address),
            ("local_addresses", p.local_addresses != q.local_addresses || p.local_addresses6 != q.local_addresses6),
            ("ipv6_addresses", p.ipv6_addresses != q.ipv6_addresses),
            ("mac", p.mac != q.mac),
            ("mtu", p.mtu != q.mtu),
            ("exception", p.exception != q.exception),
        ];
        if let Some((f, _)) = fields.iter().find(|(_, d)| *d) {
            return restart(format!("port[{i}].{f}"));
        }
    }
    if old.routes != new.routes {
        return restart("route".into());
    }
    if old.neighbours != new.neighbours {
        return restart("neighbour".into());
    }
    if old.api.listen != new.api.listen {
        return restart("api.listen".into());
    }
    if old.api.token_file != new.api.token_file {
        return restart("api.token_file".into());
    }
    if old.ha != new.ha {
        return restart("ha".into());
    }
    if old.bgp != new.bgp {
        return restart("bgp".into());
    }
    None
}

fn server_json(r: &Server) -> Value {
    serde_json::to_value(ServerView::new(r)).unwrap_or(Value::Null)
}

fn service_json(s: &Service) -> Value {
    serde_json::to_value(ServiceView::new(s)).unwrap_or(Value::Null)
}

/// Every live difference between `old` and `new`: services and servers added, removed
/// or changed (field by field), and the live `[dataplane]` settings.
pub fn diff(old: &Config, new: &Config) -> Vec<Change> {
    let mut out = Vec::new();
    let mut change = |path: String, from: Value, to: Value| {
        if from != to {
            let op = if from.is_null() {
                "add"
            } else if to.is_null() {
                "remove"
            } else {
                "change"
            };
            out.push(Change { op, path, from, to });
        }
    };
    let (a, b) = (&old.dataplane, &new.dataplane);
    for (name, x, y) in [
        ("tcp_timeout", a.tcp_timeout, b.tcp_timeout),
        ("tcp_fin_timeout", a.tcp_fin_timeout, b.tcp_fin_timeout),
        ("udp_timeout", a.udp_timeout, b.udp_timeout),
        ("half_open_timeout", a.half_open_timeout, b.half_open_timeout),
    ] {
        change(format!("dataplane.{name}"), json!(duration_text(x)), json!(duration_text(y)));
    }
    if a.expire_nodest_conn != b.expire_nodest_conn {
        change("dataplane.expire_nodest_conn".into(), json!(a.expire_nodest_conn), json!(b.expire_nodest_conn));
    }
    change("dataplane.syn_proxy_threshold".into(), json!(a.syn_proxy_threshold), json!(b.syn_proxy_threshold));
    for s in &old.services {
        let path = format!("service[{}]", service_name(s));
        let Some(t) = new.services.iter().find(|t| (t.protocol, t.address, t.port) == (s.protocol, s.address, s.port))
        else {
            change(path, service_json(s), Value::Null);
            continue;
        };
        let (vs, vt) = (ServiceView::new(s), ServiceView::new(t));
        change(format!("{path}.scheduler"), json!(vs.scheduler), json!(vt.scheduler));
        if vs.persistence != vt.persistence {
            change(format!("{path}.persistence"), json!(vs.persistence), json!(vt.persistence));
        }
        change(format!("{path}.persistence_netmask"), json!(vs.persistence_netmask), json!(vt.persistence_netmask));
        change(format!("{path}.allow"), json!(vs.allow), json!(vt.allow));
        change(format!("{path}.deny"), json!(vs.deny), json!(vt.deny));
        change(format!("{path}.maxconn"), json!(vs.maxconn), json!(vt.maxconn));
        change(format!("{path}.client_rate"), json!(vs.client_rate), json!(vt.client_rate));
        change(format!("{path}.client_burst"), json!(vs.client_burst), json!(vt.client_burst));
        change(format!("{path}.syn_proxy"), json!(vs.syn_proxy), json!(vt.syn_proxy));
        change(format!("{path}.quorum"), json!(vs.quorum), json!(vt.quorum));
        change(format!("{path}.unknown_flow"), json!(vs.unknown_flow), json!(vt.unknown_flow));
        if s.health != t.health {
            change(format!("{path}.health"), json!(format!("{:?}", s.health)), json!(format!("{:?}", t.health)));
        }
        if s.agent != t.agent {
            change(format!("{path}.agent"), json!(format!("{:?}", s.agent)), json!(format!("{:?}", t.agent)));
        }
        if s.sorry_server != t.sorry_server {
            let text = |a: Option<std::net::SocketAddr>| a.map(|a| a.to_string());
            change(format!("{path}.sorry_server"), json!(text(s.sorry_server)), json!(text(t.sorry_server)));
        }
        for r in &s.servers {
            let rpath = format!("{path}.server[{}]", crate::config::endpoint(r.address, r.port));
            let Some(q) = t.servers.iter().find(|q| (q.address, q.port) == (r.address, r.port)) else {
                change(rpath, server_json(r), Value::Null);
                continue;
            };
            change(format!("{rpath}.weight"), json!(r.weight), json!(q.weight));
            change(format!("{rpath}.forward"), json!(r.forward.to_string()), json!(q.forward.to_string()));
            change(format!("{rpath}.upper_threshold"), json!(r.upper_threshold), json!(q.upper_threshold));
            change(format!("{rpath}.lower_threshold"), json!(r.lower_threshold), json!(q.lower_threshold));
            change(format!("{rpath}.backup"), json!(r.backup), json!(q.backup));
        }
        for q in t.servers.iter().filter(|q| !s.servers.iter().any(|r| (r.address, r.port) == (q.address, q.port))) {
            change(
                format!("{path}.server[{}]", crate::config::endpoint(q.address, q.port)),
                Value::Null,
                server_json(q),
            );
        }
        if s.servers.iter().map(|r| (r.address, r.port)).ne(t.servers.iter().map(|r| (r.address, r.port)))
            && s.servers.len() == t.servers.len()
            && s.servers.iter().all(|r| t.servers.iter().any(|q| (q.address, q.port) == (r.address, r.port)))
        {
            // Same servers, another order: it matters to hashing schedulers.
            let order =
                |v: &Service| json!(v.servers.iter().map(|r| format!("{}:{}", r.address, r.port)).collect::<Vec<_>>());
            change(format!("{path}.servers"), order(s), order(t));
        }
    }
    for t in new
        .services
        .iter()
        .filter(|t| !old.services.iter().any(|s| (s.protocol, s.address, s.port) == (t.protocol, t.address, t.port)))
    {
        change(format!("service[{}]", service_name(t)), Value::Null, service_json(t));
    }
    out
}
