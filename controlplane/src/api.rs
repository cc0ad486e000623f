//! The REST API (axum), served on the control thread.
//!
//! Contract (the paths are listed with their methods in [`ROUTES`] and described by
//! `GET /v1/openapi.json`, see [`crate::openapi`]):
//! * Everything lives under `/v1/`; answers are JSON (`GET /v1/config` is TOML text).
//!   JSON field names mirror the TOML names.
//! * Errors are `{"error": "<what and why>", "field": "<json path>" | "body" | "path" |
//!   null}` with a 4xx status: 400 for a body or query that cannot be read (malformed
//!   JSON or TOML, wrong type, unknown field), 404 for an unknown path or object, 405 for
//!   a known path with the wrong method, 409 for a duplicate or a change that needs a
//!   restart, 422 for a value the validator refuses (then `errors` lists every problem),
//!   401 without the bearer token; 503 when a worker does not answer a listing.
//! * Every change goes through [`Running`]'s one apply path: validated as a whole, applied
//!   atomically or not at all. Handlers hold the lock on [`Running`] only while they run
//!   (never across an `.await`).
//! * Authentication: when a token is configured (`api.token_file`; required for a
//!   non-loopback `api.listen`), every request needs `Authorization: Bearer <token>`,
//!   except `GET /v1/status` from a loopback peer, which always answers.
//!
//! The router takes everything from an [`AppState`], so it is tested over real HTTP
//! without DPDK.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rvs_dataplane::control::{ConnFilter, ConnListing, ControlHandle, MAX_LISTING};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{endpoint, ConfigError, FieldError};
use crate::model::{
    parse_address, parse_endpoint, ServerBody, ServerUpdate, ServiceBody, ServiceRef, ServiceUpdate, TimeoutsBody,
};
use crate::runtime::{ApplyError, Change, Running};
use crate::status::{Status, StatusSource, TrafficJson};

/// Every route and its methods, in OpenAPI's path syntax. The router and the OpenAPI
/// document are both checked against this list by the tests.
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/v1/status", &["get"]),
    ("/v1/openapi.json", &["get"]),
    ("/v1/services", &["get", "post", "delete"]),
    ("/v1/services/{proto}/{vip}/{port}", &["get", "put", "delete"]),
    ("/v1/services/{proto}/{vip}/{port}/servers", &["get", "post"]),
    ("/v1/services/{proto}/{vip}/{port}/servers/{ip}/{rport}", &["get", "put", "delete"]),
    ("/v1/connections", &["get"]),
    ("/v1/config", &["get", "put"]),
    ("/v1/timeouts", &["get", "put"]),
    ("/v1/stats", &["get"]),
    ("/v1/stats/zero", &["post"]),
    ("/v1/ha", &["get"]),
    ("/v1/ha/{vrid}/step-down", &["post"]),
    ("/metrics", &["get"]),
];

/// How long a connection listing waits for each worker.
pub const WORKER_TIMEOUT: Duration = Duration::from_secs(2);

/// Default `limit` of `GET /v1/connections`.
pub const DEFAULT_LIMIT: usize = 100;

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a human.
    pub error: String,
    /// The offending field as a JSON path (`servers[0].weight`), `body` when the body as
    /// a whole is malformed, `path` for a bad or unknown URL part, or `null`.
    pub field: Option<String>,
    /// Every problem, when the validator found several (422 only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// An error answer: a status code and an [`ErrorBody`].
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status (4xx for the client's mistakes).
    pub status: StatusCode,
    /// The JSON body.
    pub body: ErrorBody,
}

impl ApiError {
    /// An error not tied to a field.
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError { status, body: ErrorBody { error: error.into(), field: None, errors: Vec::new() } }
    }

    /// An error about `field`.
    pub fn field(status: StatusCode, field: impl Into<String>, error: impl Into<String>) -> ApiError {
        ApiError { status, body: ErrorBody { error: error.into(), field: Some(field.into()), errors: Vec::new() } }
    }
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> ApiError {
        let status = match &e {
            ApplyError::Malformed(_) => StatusCode::BAD_REQUEST,
            ApplyError::Invalid(_) | ApplyError::Build(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApplyError::Conflict(_) | ApplyError::Restart(_) => StatusCode::CONFLICT,
            ApplyError::NotFound(_) => StatusCode::NOT_FOUND,
        };
        let first = e.first();
        let errors = match &e {
            ApplyError::Invalid(ConfigError { errors }) if errors.len() > 1 => errors.clone(),
            _ => Vec::new(),
        };
        ApiError { status, body: ErrorBody { error: first.message, field: Some(first.field), errors } }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// What the router serves from.
pub struct AppState {
    running: Mutex<Running>,
    status: Arc<dyn StatusSource>,
    workers: Vec<ControlHandle>,
    token: Option<String>,
    worker_timeout: Duration,
    estimator: crate::rates::SharedEstimator,
    metrics: Arc<dyn crate::metrics::MetricsSource>,
    ha: Option<Arc<crate::ha::run::HaHandle>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("workers", &self.workers.len()).finish_non_exhaustive()
    }
}

/// A status source for a [`Running`] without ports or workers (tests, tools): uptime
/// and the services of the published table.
struct TableStatus {
    started: Instant,
    shared: rvs_dataplane::service::SharedServices,
}

impl StatusSource for TableStatus {
    fn status(&self) -> Status {
        Status::new(self.started.elapsed().as_secs(), vec![], vec![]).with_services(&self.shared.load())
    }
}

impl AppState {
    /// The state for `running`, answering `GET /v1/status` from `status`, listing
    /// connections through `workers` (one handle per worker, in worker order), and
    /// requiring `token` when given.
    pub fn new(
        running: Running,
        status: Arc<dyn StatusSource>,
        workers: Vec<ControlHandle>,
        token: Option<String>,
    ) -> AppState {
        let estimator = crate::rates::shared();
        let metrics = Arc::new(crate::metrics::LiveMetrics::new(Arc::clone(&status), Arc::clone(&estimator)));
        AppState {
            running: Mutex::new(running),
            status,
            workers,
            token,
            worker_timeout: WORKER_TIMEOUT,
            estimator,
            metrics,
            ha: None,
        }
    }

    /// Serves `/v1/ha` from the HA thread behind `ha` (without it, `/v1/ha` answers 404).
    pub fn with_ha(mut self, ha: Arc<crate::ha::run::HaHandle>) -> AppState {
        self.ha = Some(ha);
        self
    }

    /// Uses `estimator` (ticked by the daemon every 2 s) for rates in `/v1/stats` and
    /// `/metrics`; without it, rates read 0.
    pub fn with_estimator(mut self, estimator: crate::rates::SharedEstimator) -> AppState {
        self.metrics = Arc::new(crate::metrics::LiveMetrics::new(Arc::clone(&self.status), Arc::clone(&estimator)));
        self.estimator = estimator;
        self
    }

    /// The state for `running` alone: status from its table, no workers, no token.
    pub fn standalone(running: Running) -> AppState {
        let status = Arc::new(TableStatus { started: Instant::now(), shared: Arc::clone(running.shared()) });
        AppState::new(running, status, Vec::new(), None)
    }

    /// Sets how long a listing waits for each worker.
    pub fn with_worker_timeout(mut self, t: Duration) -> AppState {
        self.worker_timeout = t;
        self
    }

    /// The running state, locked (a poisoned lock is recovered: `Running` is only
    /// replaced field by field after every check passed, so it is never half-changed).
    pub fn running(&self) -> MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

type St = Arc<AppState>;

/// The router for every `/v1/` endpoint, serving from `state`.
pub fn router(state: St) -> Router {
    let svc = "/v1/services/:proto/:vip/:port";
    Router::new()
        .route("/v1/status", get(status).fallback(method_not_allowed))
        .route("/v1/openapi.json", get(openapi).fallback(method_not_allowed))
        .route(
            "/v1/services",
            get(list_services).post(create_service).delete(clear_services).fallback(method_not_allowed),
        )
        .route(svc, get(get_service).put(update_service).delete(delete_service).fallback(method_not_allowed))
        .route(&format!("{svc}/servers"), get(list_servers).post(add_server).fallback(method_not_allowed))
        .route(
            &format!("{svc}/servers/:ip/:rport"),
            get(get_server).put(update_server).delete(delete_server).fallback(method_not_allowed),
        )
        .route("/v1/connections", get(connections).fallback(method_not_allowed))
        .route("/metrics", crate::metrics::handler(Arc::clone(&state.metrics)).fallback(method_not_allowed))
        .route("/v1/config", get(get_config).put(put_config).fallback(method_not_allowed))
        .route("/v1/timeouts", get(get_timeouts).put(put_timeouts).fallback(method_not_allowed))
        .route("/v1/stats", get(stats).fallback(method_not_allowed))
        .route("/v1/stats/zero", post(zero_stats).fallback(method_not_allowed))
        .route("/v1/ha", get(get_ha).fallback(method_not_allowed))
        .route("/v1/ha/:vrid/step-down", post(step_down).fallback(method_not_allowed))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), auth))
        .with_state(state)
}

/// Checks the bearer token (see the module docs).
async fn auth(State(st): State<St>, req: Request, next: Next) -> Response {
    let Some(token) = &st.token else { return next.run(req).await };
    let loopback = req.extensions().get::<ConnectInfo<SocketAddr>>().is_some_and(|c| c.0.ip().is_loopback());
    if loopback && req.method() == Method::GET && req.uri().path() == "/v1/status" {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => next.run(req).await,
        _ => ApiError::field(
            StatusCode::UNAUTHORIZED,
            "Authorization",
            "this API needs `Authorization: Bearer <token>` with the token of api.token_file",
        )
        .into_response(),
    }
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn status(State(st): State<St>) -> Json<Status> {
    Json(st.status.status())
}

fn ha_handle(st: &AppState) -> Result<Arc<crate::ha::run::HaHandle>, ApiError> {
    st.ha.clone().ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "HA is not configured: add [ha] with [[ha.instance]] to the configuration")
    })
}

/// `GET /v1/ha`: every VRRP instance (see [`crate::ha::view::HaStatus`]).
async fn get_ha(State(st): State<St>) -> Result<Json<crate::ha::view::HaStatus>, ApiError> {
    Ok(Json(ha_handle(&st)?.status()))
}

/// `POST /v1/ha/{vrid}/step-down[?hold=DURATION][&family=ipv4|ipv6]`: the master of
/// `vrid` sends priority 0, becomes backup, and does not preempt for `hold` (default
/// 300s); answers the instance. `family` (of the adverts) picks one of a VRID that has an
/// IPv4 and an IPv6 instance, and is then required (422 naming it without). 404 for an
/// unknown VRID or no instance of that family, 409 when the instance is not master.
async fn step_down(
    State(st): State<St>,
    ApiPath(vrid): ApiPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<crate::ha::view::InstanceStatus>, ApiError> {
    use crate::ha::run::StepDownError;
    let ha = ha_handle(&st)?;
    let vrid: u8 =
        vrid.parse().ok().filter(|v| *v > 0).ok_or_else(|| {
            ApiError::field(StatusCode::NOT_FOUND, "path", format!("`{vrid}` is not a VRID (1..255)"))
        })?;
    let query = parse_query(q.as_deref(), &["hold", "family"])?;
    let family = match query.get("family") {
        None => None,
        Some(f) => Some(crate::config::AdvertFamily::parse(f).ok_or_else(|| {
            ApiError::field(
                StatusCode::BAD_REQUEST,
                "family",
                format!("`{f}` is not an advert family; use ipv4 (VRRP over IPv4) or ipv6 (VRRP over IPv6)"),
            )
        })?),
    };
    let hold = match query.get("hold") {
        None => crate::ha::run::DEFAULT_STEP_DOWN_HOLD,
        Some(h) => humantime::parse_duration(h).map_err(|e| {
            ApiError::field(StatusCode::BAD_REQUEST, "hold", format!("`{h}` is not a duration ({e}); write it like 5m"))
        })?,
    };
    match ha.step_down(vrid, family, hold).await {
        Ok(view) => Ok(Json(view)),
        Err(e @ StepDownError::NoSuchVrid(_)) => Err(ApiError::field(StatusCode::NOT_FOUND, "path", e.to_string())),
        Err(e @ StepDownError::NoSuchFamily(..)) => {
            Err(ApiError::field(StatusCode::NOT_FOUND, "family", e.to_string()))
        }
        Err(e @ StepDownError::Ambiguous(_)) => {
            Err(ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "family", e.to_string()))
        }
        Err(e @ StepDownError::NotMaster { .. }) => Err(ApiError::new(StatusCode::CONFLICT, e.to_string())),
        Err(e @ StepDownError::Unavailable) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no such endpoint: {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{} does not support {method}", uri.path()))
}

/// Reads a JSON body into `T`; errors name the JSON path of the bad value, or `body`.
fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        // serde_path_to_error's path already ends with an unknown field's name.
        let field = if inner.is_syntax() || inner.is_eof() || path == "." || path.is_empty() {
            "body".to_string()
        } else {
            path
        };
        ApiError::field(StatusCode::BAD_REQUEST, field, format!("cannot read the JSON body: {msg}"))
    })?;
    de.end()
        .map_err(|e| ApiError::field(StatusCode::BAD_REQUEST, "body", format!("cannot read the JSON body: {e}")))?;
    Ok(value)
}

/// `?a=b&c=d`, percent-decoded; unknown names are refused.
fn parse_query(q: Option<&str>, allowed: &[&str]) -> Result<HashMap<String, String>, ApiError> {
    let mut out = HashMap::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (percent_decode(k), percent_decode(v));
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::field(
                StatusCode::BAD_REQUEST,
                k.clone(),
                format!("unknown query parameter `{k}`; this endpoint takes: {}", allowed.join(", ")),
            ));
        }
        out.insert(k, v);
    }
    Ok(out)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex =
            b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(x)) => {
                out.push(x);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn dry_run(q: Option<&str>) -> Result<bool, ApiError> {
    let q = parse_query(q, &["dry_run"])?;
    match q.get("dry_run").map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => {
            Err(ApiError::field(StatusCode::BAD_REQUEST, "dry_run", format!("`{other}` is not true or false")))
        }
    }
}

fn service_ref(proto: &str, vip: &str, port: &str) -> Result<ServiceRef, ApiError> {
    ServiceRef::parse(proto, vip, port).map_err(|e| ApiError::field(StatusCode::BAD_REQUEST, "path", e))
}

/// A server named in a path: `…/servers/10.20.0.11/80`, `…/servers/2001:db8::11/80` (or
/// `[2001:db8::11]`, brackets as in a URL's host).
fn server_ref(ip: &str, port: &str) -> Result<(IpAddr, u16), ApiError> {
    let bad = |e: String| ApiError::field(StatusCode::BAD_REQUEST, "path", e);
    let addr = parse_address(ip).map_err(bad)?;
    let port = port.parse::<u16>().map_err(|_| bad(format!("`{port}` is not a port (1..65535)")))?;
    Ok((addr, port))
}

async fn list_services(State(st): State<St>) -> Json<serde_json::Value> {
    Json(json!({ "services": st.running().service_views() }))
}

async fn create_service(State(st): State<St>, body: Bytes) -> Result<Response, ApiError> {
    let b: ServiceBody = parse_json(&body)?;
    let mut run = st.running();
    run.add_service(&b, false)?;
    let i = run.config().services.len().saturating_sub(1);
    Ok((StatusCode::CREATED, Json(run.service_view(i))).into_response())
}

async fn clear_services(State(st): State<St>) -> Result<StatusCode, ApiError> {
    st.running().clear_services()?;
    Ok(StatusCode::NO_CONTENT)
}

type SvcPath = ApiPath<(String, String, String)>;
type SrvPath = ApiPath<(String, String, String, String, String)>;

/// axum's `Path`, with a path it cannot read (a segment that is not UTF-8 once
/// percent-decoded, `/v1/services/tcp/10.10.0.100/8%80`) answered as the API's error
/// document (400, field `path`) rather than axum's plain text.
struct ApiPath<T>(T);

#[axum::async_trait]
impl<T, S> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(t)) => Ok(ApiPath(t)),
            Err(e) => Err(ApiError::field(
                StatusCode::BAD_REQUEST,
                "path",
                format!("{}; write each part of the path as plain text (`tcp/10.10.0.100/80`)", e.body_text()),
            )),
        }
    }
}

async fn get_service(State(st): State<St>, ApiPath((p, v, n)): SvcPath) -> Result<Response, ApiError> {
    let r = service_ref(&p, &v, &n)?;
    let run = st.running();
    let i = run.find_service(&r)?;
    Ok(Json(run.service_view(i)).into_response())
}

async fn update_service(State(st): State<St>, ApiPath((p, v, n)): SvcPath, body: Bytes) -> Result<Response, ApiError> {
    let r = service_ref(&p, &v, &n)?;
    let u: ServiceUpdate = parse_json(&body)?;
    let mut run = st.running();
    run.update_service(&r, &u)?;
    let i = run.find_service(&r)?;
    Ok(Json(run.service_view(i)).into_response())
}

async fn delete_service(State(st): State<St>, ApiPath((p, v, n)): SvcPath) -> Result<StatusCode, ApiError> {
    let r = service_ref(&p, &v, &n)?;
    st.running().delete_service(&r)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_servers(State(st): State<St>, ApiPath((p, v, n)): SvcPath) -> Result<Response, ApiError> {
    let r = service_ref(&p, &v, &n)?;
    let run = st.running();
    let i = run.find_service(&r)?;
    Ok(Json(json!({ "servers": run.service_view(i).servers })).into_response())
}

async fn add_server(State(st): State<St>, ApiPath((p, v, n)): SvcPath, body: Bytes) -> Result<Response, ApiError> {
    let r = service_ref(&p, &v, &n)?;
    let b: ServerBody = parse_json(&body)?;
    let mut run = st.running();
    run.add_server(&r, &b)?;
    let i = run.find_service(&r)?;
    let view = run.service_view(i).servers.pop();
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

fn server_view(run: &Running, r: &ServiceRef, addr: IpAddr, port: u16) -> Result<Response, ApiError> {
    let i = run.find_service(r)?;
    let k = run.find_server(i, addr, port)?;
    Ok(Json(run.service_view(i).servers.swap_remove(k)).into_response())
}

async fn get_server(State(st): State<St>, ApiPath((p, v, n, ip, rp)): SrvPath) -> Result<Response, ApiError> {
    let r = service_ref(&p, &v, &n)?;
    let (addr, port) = server_ref(&ip, &rp)?;
    server_view(&st.running(), &r, addr, port)
}

async fn update_server(
    State(st): State<St>,
    ApiPath((p, v, n, ip, rp)): SrvPath,
    body: Bytes,
) -> Result<Response, ApiError> {
    let r = service_ref(&p, &v, &n)?;
    let (addr, port) = server_ref(&ip, &rp)?;
    let u: ServerUpdate = parse_json(&body)?;
    let mut run = st.running();
    run.update_server(&r, addr, port, &u)?;
    server_view(&run, &r, addr, port)
}

async fn delete_server(State(st): State<St>, ApiPath((p, v, n, ip, rp)): SrvPath) -> Result<StatusCode, ApiError> {
    let r = service_ref(&p, &v, &n)?;
    let (addr, port) = server_ref(&ip, &rp)?;
    st.running().delete_server(&r, addr, port)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_config(State(st): State<St>) -> Response {
    let text = st.running().text().to_string();
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

/// The answer of `PUT /v1/config`.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// Whether the configuration was applied (`false` for a dry run).
    pub applied: bool,
    /// The differences.
    pub changes: Vec<Change>,
    /// Sections of the configuration that are valid but not acted on yet
    /// ([`crate::config::Config::not_acted_on`]), each with its field path; empty when none.
    pub warnings: Vec<crate::config::FieldError>,
}

async fn put_config(State(st): State<St>, RawQuery(q): RawQuery, body: Bytes) -> Result<Json<Applied>, ApiError> {
    let dry = dry_run(q.as_deref())?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::field(StatusCode::BAD_REQUEST, "body", "the configuration is not UTF-8 text"))?;
    let changes = st.running().apply_toml(text, dry)?;
    // apply_toml validated the text, so it parses again; the warnings are about the text
    // sent, whether it was applied or only a dry run.
    let warnings = crate::config::Config::from_toml(text).map(|c| c.not_acted_on()).unwrap_or_default();
    Ok(Json(Applied { applied: !dry, changes, warnings }))
}

async fn get_timeouts(State(st): State<St>) -> Response {
    Json(st.running().timeouts()).into_response()
}

async fn put_timeouts(State(st): State<St>, body: Bytes) -> Result<Response, ApiError> {
    let b: TimeoutsBody = parse_json(&body)?;
    let mut run = st.running();
    run.set_timeouts(&b)?;
    Ok(Json(run.timeouts()).into_response())
}

/// `POST /v1/stats/zero[?service=tcp/VIP/PORT]`: ipvsadm -Z, for every service or one.
async fn zero_stats(State(st): State<St>, RawQuery(q): RawQuery) -> Result<StatusCode, ApiError> {
    let q = parse_query(q.as_deref(), &["service"])?;
    let mut run = st.running();
    let only = match q.get("service") {
        None => None,
        Some(s) => {
            let r = ServiceRef::parse_joined(s).map_err(|e| ApiError::field(StatusCode::BAD_REQUEST, "service", e))?;
            run.find_service(&r)?;
            Some(r.key())
        }
    };
    if only.is_none() {
        // ipvsadm -Z also restarts the rate estimators (ip_vs_zero_estimator).
        crate::rates::lock(&st.estimator).zero();
    }
    run.zero_stats(only);
    Ok(StatusCode::NO_CONTENT)
}

/// One server in `GET /v1/stats`.
#[derive(Debug, Clone, Serialize)]
struct ServerStatsJson {
    address: String,
    port: u16,
    stats: TrafficJson,
    rates: crate::rates::Rates,
}

/// One service in `GET /v1/stats`.
#[derive(Debug, Clone, Serialize)]
struct ServiceStatsJson {
    protocol: String,
    address: String,
    port: u16,
    stats: TrafficJson,
    rates: crate::rates::Rates,
    servers: Vec<ServerStatsJson>,
}

async fn stats(State(st): State<St>) -> Json<serde_json::Value> {
    let views = st.running().service_views();
    let est = crate::rates::lock(&st.estimator).estimates();
    let services: Vec<ServiceStatsJson> = views
        .into_iter()
        .map(|s| {
            let sr = est.service(&s.protocol, &s.address, s.port);
            ServiceStatsJson {
                rates: sr.map(|r| r.rates).unwrap_or_default(),
                servers: s
                    .servers
                    .into_iter()
                    .map(|r| ServerStatsJson {
                        rates: sr.and_then(|x| x.server(&r.address, r.port)).map(|x| x.rates).unwrap_or_default(),
                        address: r.address,
                        port: r.port,
                        stats: r.stats.unwrap_or_default(),
                    })
                    .collect(),
                protocol: s.protocol,
                address: s.address,
                port: s.port,
                stats: s.stats.unwrap_or_default(),
            }
        })
        .collect();
    Json(json!({ "services": services }))
}

/// One connection in `GET /v1/connections`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConnJson {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// `ip:port` of the client.
    pub client: String,
    /// `ip:port` of the service.
    pub vip: String,
    /// `ip:port` rvs uses towards the server (Full-NAT), the client's otherwise.
    pub local: String,
    /// `ip:port` of the real server.
    pub server: String,
    /// `dr`, `nat`, `fullnat` or `tunnel`.
    pub forward: String,
    /// IPVS's state name (`ESTABLISHED`, `FIN_WAIT`, `UDP`, …).
    pub state: String,
    /// Seconds until it expires without traffic.
    pub expires_in: u64,
    /// The worker whose table holds it.
    pub worker: usize,
}

async fn connections(State(st): State<St>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let q = parse_query(q.as_deref(), &["service", "server", "offset", "limit"])?;
    let bad = |f: &str, m: String| ApiError::field(StatusCode::BAD_REQUEST, f, m);
    let service = match q.get("service") {
        None => None,
        Some(s) => {
            let r = ServiceRef::parse_joined(s).map_err(|e| bad("service", e))?;
            Some(r.key().into())
        }
    };
    let server = match q.get("server") {
        None => None,
        Some(s) => {
            let (addr, port) = parse_endpoint(s).map_err(|e| bad("server", e))?;
            Some((addr, port))
        }
    };
    let number = |f: &str, default: usize| -> Result<usize, ApiError> {
        match q.get(f) {
            None => Ok(default),
            Some(v) => v.parse::<usize>().map_err(|_| bad(f, format!("`{v}` is not a non-negative integer"))),
        }
    };
    let offset = number("offset", 0)?;
    let limit = number("limit", DEFAULT_LIMIT)?;
    if limit > MAX_LISTING {
        return Err(bad("limit", format!("{limit} is over the maximum of {MAX_LISTING}")));
    }
    let filter = ConnFilter { service, server };
    let want = offset.saturating_add(limit).min(MAX_LISTING);
    let mut pending = Vec::with_capacity(st.workers.len());
    for (i, h) in st.workers.iter().enumerate() {
        let rx = h.list_conns(filter, want).map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("worker {i} did not answer (its request queue is full)"),
            )
        })?;
        pending.push((i, rx));
    }
    // Every request is already queued, so awaiting the answers in turn under one deadline
    // waits no longer than the slowest worker. Each wait is woken by the worker's send (or
    // by its dropping the sender when it stops): no polling.
    let deadline = tokio::time::Instant::now() + st.worker_timeout;
    let mut listings: Vec<ConnListing> = Vec::with_capacity(pending.len());
    for (i, rx) in pending {
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(l)) => listings.push(l),
            Ok(Err(_)) | Err(_) => {
                return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("worker {i} did not answer")));
            }
        }
    }
    let total: usize = listings.iter().map(|l| l.total).sum();
    let conns: Vec<ConnJson> = listings
        .iter()
        .flat_map(|l| {
            l.entries.iter().map(move |e| ConnJson {
                protocol: e.proto.name().to_string(),
                client: endpoint(e.client.0, e.client.1),
                vip: endpoint(e.vip.0, e.vip.1),
                local: endpoint(e.local.0, e.local.1),
                server: endpoint(e.server.0, e.server.1),
                forward: e.forward.name().to_string(),
                state: e.state.name().to_string(),
                expires_in: e.expires_in_ns.div_ceil(1_000_000_000),
                worker: l.worker,
            })
        })
        .skip(offset)
        .take(limit)
        .collect();
    Ok(Json(json!({ "total": total, "offset": offset, "limit": limit, "connections": conns })).into_response())
}

/// Binds the REST listener, with an operator-facing error when that fails.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen for REST on {addr} (api.listen): is another rvsd (or something else) using \
             that port? Stop it or choose another api.listen"
        )
    })
}

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight
/// requests finish. Peers' addresses are available to the handlers (authentication).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
        .context("REST server failed")
}

/// Reads the bearer token from `api.token_file` (surrounding whitespace removed).
pub fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    let t = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read api.token_file {}", path.display()))?
        .trim()
        .to_string();
    if t.is_empty() {
        anyhow::bail!("api.token_file {} holds no token (only whitespace); put the token in it", path.display());
    }
    Ok(t)
}
