//! rvsd's REST port as rvsadm sees it: the endpoint, the calls, and their errors.
//!
//! Contract: plain HTTP only (rvsd's REST port is loopback by default and speaks no TLS),
//! JSON bodies, an optional bearer token (`--token-file`, for an rvsd with
//! `api.token_file`). Every failure — refused connection, timeout, malformed or oversized
//! answer, a 4xx/5xx status — is an [`ApiError`], never a panic.
//!
//! HTTP/1.1 itself (framing, chunked bodies, interim answers, limits) is `ureq`'s, built
//! without TLS or compression: a blocking client with no async runtime, which is all a CLI
//! making one request at a time needs. It replaced ~250 lines of hand-written HTTP here.
//! Proxies from the environment are ignored: rvsadm talks to rvsd directly, as before.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::model::ErrorBody;

/// rvsd's REST address when `--api` is not given.
pub const DEFAULT_API: &str = "http://127.0.0.1:8700";

/// Largest response accepted (a page of connections is far smaller).
const MAX_BODY: u64 = 64 << 20;

/// Where rvsd listens: host, port and an optional path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Path prefix without a trailing `/` (usually empty).
    pub prefix: String,
}

impl Endpoint {
    /// Parses `http://HOST[:PORT][/PREFIX]` (the scheme may be omitted; the port defaults
    /// to 80 with a scheme and to 8700 without).
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let bad = |why: &str| format!("invalid --api URL `{url}': {why}");
        let (rest, default_port) = if let Some(r) = url.strip_prefix("http://") {
            (r, 80)
        } else if url.starts_with("https://") {
            return Err(bad("https is not supported; rvsd's REST port speaks plain HTTP"));
        } else if url.contains("://") {
            return Err(bad("only http:// is supported"));
        } else {
            (url, 8700)
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let Some((h, after)) = r.split_once(']') else {
                return Err(bad("unterminated [IPv6] address"));
            };
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(bad("junk after [IPv6] address")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '@') {
            return Err(bad("missing or invalid host"));
        }
        let port = match port {
            None => default_port,
            Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| bad("invalid port"))?,
        };
        if path.contains(['?', '#']) || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("invalid path"));
        }
        Ok(Endpoint { host: host.to_string(), port, prefix: path.trim_end_matches('/').to_string() })
    }

    /// `host:port` for the Host header and messages.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A request method rvsadm uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
}

impl Method {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a call failed.
#[derive(Debug)]
pub enum ApiError {
    /// rvsd could not be reached or the exchange broke off.
    Transport {
        /// `host:port`.
        authority: String,
        /// What happened (the operating system's or the HTTP client's words).
        source: String,
    },
    /// The answer is not HTTP, or not the JSON expected.
    Protocol(String),
    /// rvsd refused the request: a non-2xx status and its error body.
    Status {
        /// The HTTP status.
        status: u16,
        /// `error` of the body, or the raw body when it is not the error JSON.
        error: String,
        /// `field` of the body.
        field: Option<String>,
    },
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Transport { authority, source } => {
                write!(
                    f,
                    "Can't reach rvsd at {authority}: {source}\nIs rvsd running? (--api URL to use another address)"
                )
            }
            ApiError::Protocol(why) => write!(f, "unexpected answer from rvsd: {why}"),
            ApiError::Status { error, field: Some(field), .. }
                if !field.is_empty() && !error.contains(field.as_str()) =>
            {
                write!(f, "{error} (field: {field})")
            }
            ApiError::Status { error, .. } => f.write_str(error),
        }
    }
}

impl std::error::Error for ApiError {}

/// A raw answer: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// The REST client.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client of `endpoint`, with a 30 s budget for connecting and for each read/write.
    pub fn new(endpoint: Endpoint) -> Client {
        let timeout = Some(Duration::from_secs(30));
        let agent = ureq::Agent::config_builder()
            // A 4xx/5xx is an answer whose body names the error; read it, don't fail.
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .timeout_connect(timeout)
            .timeout_send_request(timeout)
            .timeout_send_body(timeout)
            .timeout_recv_response(timeout)
            .timeout_recv_body(timeout)
            .user_agent(concat!("rvsadm/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client { endpoint, token: None, agent }
    }

    /// The same client, sending `Authorization: Bearer <token>` with every request.
    pub fn with_token(mut self, token: Option<String>) -> Client {
        self.token = token;
        self
    }

    /// One raw exchange: `method path` with an optional JSON body.
    pub fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Response, ApiError> {
        let url = format!("http://{}{}{path}", self.endpoint.authority(), self.endpoint.prefix);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let result = match method {
            Method::Get | Method::Delete => {
                let mut req = if method == Method::Get { self.agent.get(&url) } else { self.agent.delete(&url) };
                req = req.header("Accept", "application/json");
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.call()
            }
            Method::Post | Method::Put => {
                let mut req = if method == Method::Post { self.agent.post(&url) } else { self.agent.put(&url) };
                req = req.header("Accept", "application/json");
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                match body {
                    Some(b) => req.header("Content-Type", "application/json").send(b.to_string().as_bytes()),
                    None => req.send_empty(),
                }
            }
        };
        let mut response = result.map_err(|e| self.error(e))?;
        let status = response.status().as_u16();
        let body = response.body_mut().with_config().limit(MAX_BODY).read_to_vec().map_err(|e| self.error(e))?;
        Ok(Response { status, body })
    }

    /// The [`ApiError`] for a failure of the HTTP exchange itself.
    fn error(&self, e: ureq::Error) -> ApiError {
        let transport = |source: String| ApiError::Transport { authority: self.endpoint.authority(), source };
        match e {
            // The operating system's words, as the hand-written client printed them.
            ureq::Error::Io(io) => transport(io.to_string()),
            e @ (ureq::Error::Timeout(_) | ureq::Error::HostNotFound | ureq::Error::ConnectionFailed) => {
                transport(e.to_string())
            }
            ureq::Error::BodyExceedsLimit(_) => ApiError::Protocol("answer too large".into()),
            other => ApiError::Protocol(other.to_string()),
        }
    }

    /// `GET path`, decoded as `T`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let r = self.call(Method::Get, path, None)?;
        serde_json::from_slice(&r.body).map_err(|e| ApiError::Protocol(format!("GET {path}: {e}")))
    }

    /// A call whose answer must be 2xx; anything else becomes [`ApiError::Status`].
    pub fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Response, ApiError> {
        let r = self.request(method, path, body)?;
        if (200..300).contains(&r.status) {
            return Ok(r);
        }
        Err(status_error(&r))
    }
}

/// The [`ApiError::Status`] for a non-2xx answer.
fn status_error(r: &Response) -> ApiError {
    match serde_json::from_slice::<ErrorBody>(&r.body) {
        Ok(b) if !b.error.is_empty() => ApiError::Status { status: r.status, error: b.error, field: b.field },
        _ => {
            let text = String::from_utf8_lossy(&r.body);
            let text: String = text.trim().chars().take(200).collect();
            let error = if text.is_empty() {
                format!("rvsd answered HTTP {}", r.status)
            } else {
                format!("rvsd answered HTTP {}: {text}", r.status)
            };
            ApiError::Status { status: r.status, error, field: None }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:8700").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.prefix.as_str()), ("127.0.0.1", 8700, ""));
        let e = Endpoint::parse("http://lb1/api/").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.prefix.as_str()), ("lb1", 80, "/api"));
        let e = Endpoint::parse("10.0.0.1:9000").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("10.0.0.1", 9000));
        let e = Endpoint::parse("localhost").unwrap();
        assert_eq!(e.port, 8700);
        let e = Endpoint::parse("http://[::1]:8700").unwrap();
        assert_eq!((e.host.as_str(), e.authority()), ("::1", "[::1]:8700".to_string()));
        for bad in [
            "https://x",
            "ftp://x",
            "http://",
            "http://h:0",
            "http://h:99999",
            "http://h:x",
            "http://[::1",
            "http://a b",
            "http://h/p?q",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn error_bodies() {
        let e = status_error(&Response { status: 409, body: br#"{"error":"service exists","field":"port"}"#.to_vec() });
        assert_eq!(e.to_string(), "service exists (field: port)");
        let e = status_error(&Response { status: 400, body: br#"{"error":"bad port","field":null}"#.to_vec() });
        assert_eq!(e.to_string(), "bad port");
        let e = status_error(&Response { status: 500, body: b"oops".to_vec() });
        assert_eq!(e.to_string(), "rvsd answered HTTP 500: oops");
        let e = status_error(&Response { status: 502, body: vec![] });
        assert_eq!(e.to_string(), "rvsd answered HTTP 502");
    }
}
