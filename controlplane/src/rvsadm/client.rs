//! A minimal blocking HTTP/1.1 client for rvsd's REST port, and the JSON calls over it.
//!
//! Contract: one request per connection (`Connection: close`), plain HTTP only (rvsd's REST
//! port is loopback by default; TLS is out of scope), JSON bodies with `Content-Length`.
//! Responses may be delimited by `Content-Length`, chunked transfer encoding or the end of
//! the stream. Every failure — refused connection, timeout, malformed or oversized answer,
//! a 4xx/5xx status — is an [`ApiError`], never a panic.
//!
//! Why not a crate: rvsadm needs four verbs against one local server; a hand-written client
//! of ~200 lines keeps the CLI free of an async runtime and of TLS stacks it would never use.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::model::ErrorBody;

/// rvsd's REST address when `--api` is not given.
pub const DEFAULT_API: &str = "http://127.0.0.1:8700";

/// Largest response accepted (a page of connections is far smaller).
const MAX_BODY: usize = 64 << 20;
/// Largest header block accepted.
const MAX_HEADERS: usize = 64 << 10;

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
        /// What happened.
        source: io::Error,
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
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// The REST client.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
    timeout: Duration,
}

impl Client {
    /// A client of `endpoint`, with a 30 s budget for connecting and for each read/write.
    pub fn new(endpoint: Endpoint) -> Client {
        Client { endpoint, timeout: Duration::from_secs(30) }
    }

    /// One raw exchange: `method path` with an optional JSON body.
    pub fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Response, ApiError> {
        let authority = self.endpoint.authority();
        let transport = |source: io::Error| ApiError::Transport { authority: authority.clone(), source };
        let addrs: Vec<_> =
            (self.endpoint.host.as_str(), self.endpoint.port).to_socket_addrs().map_err(transport)?.collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        let mut stream = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let mut stream = stream.ok_or_else(|| transport(last))?;
        stream.set_read_timeout(Some(self.timeout)).map_err(transport)?;
        stream.set_write_timeout(Some(self.timeout)).map_err(transport)?;

        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let mut head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: rvsadm/{}\r\nAccept: application/json\r\nConnection: close\r\n",
            self.endpoint.prefix,
            env!("CARGO_PKG_VERSION"),
        );
        if body.is_some() {
            head.push_str("Content-Type: application/json\r\n");
        }
        if body.is_some() || matches!(method, Method::Post | Method::Put) {
            head.push_str(&format!("Content-Length: {}\r\n", payload.len()));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).map_err(transport)?;
        stream.write_all(payload.as_bytes()).map_err(transport)?;
        stream.flush().map_err(transport)?;
        read_response(BufReader::new(stream)).map_err(|e| match e {
            ReadError::Io(source) => transport(source),
            ReadError::Protocol(why) => ApiError::Protocol(why),
        })
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

enum ReadError {
    Io(io::Error),
    Protocol(String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

fn protocol<T>(why: impl Into<String>) -> Result<T, ReadError> {
    Err(ReadError::Protocol(why.into()))
}

/// Reads one HTTP/1.1 response (skipping 1xx interim answers).
fn read_response<R: BufRead>(mut r: R) -> Result<Response, ReadError> {
    loop {
        let mut header_bytes = 0usize;
        let status_line = read_line(&mut r, &mut header_bytes)?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        if !version.starts_with("HTTP/1.") {
            return protocol(format!("not an HTTP/1.x status line: {:?}", truncate(&status_line)));
        }
        let Some(status) = parts.next().and_then(|s| s.parse::<u16>().ok()).filter(|s| (100..600).contains(s)) else {
            return protocol(format!("bad status line: {:?}", truncate(&status_line)));
        };
        let mut length: Option<usize> = None;
        let mut chunked = false;
        loop {
            let line = read_line(&mut r, &mut header_bytes)?;
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                return protocol(format!("bad header line: {:?}", truncate(&line)));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                match value.parse::<usize>() {
                    Ok(n) if n <= MAX_BODY => length = Some(n),
                    Ok(_) => return protocol("answer too large"),
                    Err(_) => return protocol(format!("bad Content-Length: {value:?}")),
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().split(',').any(|t| t.trim() == "chunked");
            }
        }
        if (100..200).contains(&status) {
            continue;
        }
        let body = if chunked {
            read_chunked(&mut r)?
        } else if let Some(n) = length {
            let mut body = vec![0u8; n];
            r.read_exact(&mut body)?;
            body
        } else if status == 204 || status == 304 {
            Vec::new()
        } else {
            let mut body = Vec::new();
            r.by_ref().take(MAX_BODY as u64 + 1).read_to_end(&mut body)?;
            if body.len() > MAX_BODY {
                return protocol("answer too large");
            }
            body
        };
        return Ok(Response { status, body });
    }
}

/// A chunked body (RFC 9112 §7.1), trailers skipped.
fn read_chunked<R: BufRead>(r: &mut R) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    let mut header_bytes = 0usize;
    loop {
        let line = read_line(r, &mut header_bytes)?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return protocol(format!("bad chunk size: {:?}", truncate(&line)));
        };
        if size == 0 {
            loop {
                if read_line(r, &mut header_bytes)?.is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len().saturating_add(size) > MAX_BODY {
            return protocol("answer too large");
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        if !read_line(r, &mut header_bytes)?.is_empty() {
            return protocol("chunk not followed by CRLF");
        }
        // Chunk-size lines count against the header budget only per chunk.
        header_bytes = 0;
    }
}

/// One CRLF- (or LF-) terminated line without its terminator; EOF before it is an error.
fn read_line<R: BufRead>(r: &mut R, budget_used: &mut usize) -> Result<String, ReadError> {
    let mut buf = Vec::new();
    let limit = (MAX_HEADERS.saturating_sub(*budget_used)) as u64 + 1;
    let n = r.by_ref().take(limit).read_until(b'\n', &mut buf)?;
    *budget_used += n;
    if *budget_used > MAX_HEADERS {
        return protocol("header too large");
    }
    if buf.last() != Some(&b'\n') {
        return Err(ReadError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-answer")));
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf).or_else(|_| protocol("header is not UTF-8"))
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Response, String> {
        read_response(raw).map_err(|e| match e {
            ReadError::Io(e) => format!("io: {e}"),
            ReadError::Protocol(p) => p,
        })
    }

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
    fn content_length_and_interim_answers() {
        let r = parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!(r, Response { status: 201, body: b"{}".to_vec() });
        let r = parse(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert_eq!(r, Response { status: 204, body: vec![] });
        let r = parse(b"HTTP/1.0 200 OK\nServer: x\n\nuntil eof").unwrap();
        assert_eq!(r.body, b"until eof");
    }

    #[test]
    fn chunked() {
        let r = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: 1\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"abcde");
    }

    #[test]
    fn malformed_answers_are_errors() {
        for raw in [
            &b""[..],
            b"garbage\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n",
        ] {
            assert!(parse(raw).is_err(), "{:?}", String::from_utf8_lossy(raw));
        }
        let huge = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEADERS));
        assert!(parse(huge.as_bytes()).is_err());
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
