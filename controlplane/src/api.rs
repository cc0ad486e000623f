//! The REST API (axum), served on the control thread.
//!
//! Contract:
//! * Everything lives under `/v1/`; answers are JSON.
//! * Errors are `{"error": "<what and why>", "field": "<config field>" | null}` with a 4xx
//!   status: 404 for an unknown path, 405 for a known path with the wrong method.
//! * Handlers only read (for now); nothing here changes the data path.
//! * Loopback only: [`crate::config`] refuses a non-loopback `api.listen`, because the
//!   bearer-token authentication the design asks for elsewhere is not implemented yet.
//!
//! The router takes its data from a [`StatusSource`], so it is tested without DPDK.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::status::{Status, StatusSource};

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a human.
    pub error: String,
    /// The config field at fault (`service[0].port`), or `null`.
    pub field: Option<String>,
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
    /// An error not tied to a config field.
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError { status, body: ErrorBody { error: error.into(), field: None } }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

type Source = Arc<dyn StatusSource>;

/// The router for every `/v1/` endpoint, reading from `source`.
pub fn router(source: Source) -> Router {
    Router::new().route("/v1/status", get(status).fallback(method_not_allowed)).fallback(not_found).with_state(source)
}

async fn status(State(source): State<Source>) -> Json<Status> {
    Json(source.status())
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no such endpoint: {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{} does not support {method}", uri.path()))
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
/// requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await.context("REST server failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{to_bytes, Body};
    use axum::http::Request;
    use tower::ServiceExt;

    struct Fixed;
    impl StatusSource for Fixed {
        fn status(&self) -> Status {
            Status::new(42, vec![], vec![])
        }
    }

    async fn call(method: &str, path: &str) -> (StatusCode, serde_json::Value) {
        let req = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
        let resp = router(Arc::new(Fixed)).oneshot(req).await.unwrap();
        let code = resp.status();
        assert_eq!(resp.headers()["content-type"], "application/json");
        let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (code, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn status_answers() {
        let (code, v) = call("GET", "/v1/status").await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(v["uptime_seconds"], 42);
        assert!(v["drops"].is_object());
    }

    #[tokio::test]
    async fn unknown_path_is_json_404() {
        let (code, v) = call("GET", "/v1/nope").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert_eq!(v["error"], "no such endpoint: GET /v1/nope");
        assert!(v["field"].is_null());
    }

    #[tokio::test]
    async fn wrong_method_is_json_405() {
        let (code, v) = call("DELETE", "/v1/status").await;
        assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
        assert!(v["error"].as_str().unwrap().contains("DELETE"));
        assert!(v["field"].is_null());
    }

    #[tokio::test]
    async fn serves_over_tcp_and_shuts_down() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router(Arc::new(Fixed)), async {
            let _ = rx.await;
        }));
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.contains("\"uptime_seconds\":42"), "{out}");
        tx.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn bind_conflict_names_api_listen() {
        let first = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let err = bind(first.local_addr().unwrap()).await.unwrap_err();
        assert!(format!("{err:#}").contains("api.listen"), "{err:#}");
    }
}
