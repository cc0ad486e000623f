//! systemd's readiness protocol (`sd_notify(3)`), without libsystemd.
//!
//! A service of `Type=notify` is started with `NOTIFY_SOCKET` naming a Unix datagram
//! socket: a path (`/run/systemd/notify`) or, with a leading `@`, a name in the abstract
//! namespace. The service sends newline-separated `KEY=value` assignments to it —
//! `READY=1` once it serves, `RELOADING=1` and `STOPPING=1` around reloads and shutdown,
//! `STATUS=` a line for `systemctl status`. One `sendto` per message, so this module is a
//! few lines of std instead of a library (`libsystemd` or a crate wrapping it).
//!
//! Without `NOTIFY_SOCKET` (rvsd started by hand, by the lab, or by an init without the
//! protocol) every call does nothing: readiness is then the REST port answering.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Sends `state` (for example `"READY=1\nSTATUS=serving"`) to the socket named by
/// `NOTIFY_SOCKET`. Answers `Ok(false)` when the variable is unset or empty (nothing to
/// notify), `Ok(true)` once the datagram is sent.
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var_os(NOTIFY_SOCKET) {
        Some(socket) if !socket.is_empty() => notify_to(&socket, state).map(|()| true),
        _ => Ok(false),
    }
}

/// Sends `state` to the notification socket `socket`: an absolute path, or `@name` for
/// the abstract namespace (as systemd writes it). Anything else is refused with
/// `InvalidInput` naming the value.
pub fn notify_to(socket: &OsStr, state: &str) -> io::Result<()> {
    let bytes = socket.as_bytes();
    let addr = match bytes.first() {
        Some(b'/') => SocketAddr::from_pathname(socket)?,
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..])?,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{NOTIFY_SOCKET}={socket:?} is neither an absolute path nor an @abstract name"),
            ))
        }
    };
    let sock = UnixDatagram::unbound()?;
    let sent = sock.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, format!("notification truncated to {sent} bytes")));
    }
    Ok(())
}

/// [`notify`], logging a failure instead of returning it: a service manager that cannot
/// be told is worth a warning, never a reason to stop balancing.
pub fn notify_or_warn(state: &str) {
    if let Err(e) = notify(state) {
        tracing::warn!("cannot notify the service manager ({NOTIFY_SOCKET}): {e}");
    }
}

/// One `STATUS=` line: newlines (which would start a new assignment) become spaces.
pub fn status_line(text: &str) -> String {
    format!("STATUS={}", text.replace(['\n', '\r'], " "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::time::Duration;

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn path_socket_receives_the_state() {
        let dir = std::env::temp_dir().join(format!("rvs-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let fake = UnixDatagram::bind(&path).unwrap();
        notify_to(path.as_os_str(), "READY=1\nSTATUS=serving").unwrap();
        assert_eq!(recv(&fake), "READY=1\nSTATUS=serving");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn abstract_socket_receives_the_state() {
        let name = format!("rvs-notify-test-{}", std::process::id());
        let fake = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        notify_to(&OsString::from(format!("@{name}")), "STOPPING=1").unwrap();
        assert_eq!(recv(&fake), "STOPPING=1");
    }

    #[test]
    fn relative_or_empty_names_are_refused() {
        for bad in ["notify.sock", ""] {
            let e = notify_to(OsStr::new(bad), "READY=1").unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            assert!(e.to_string().contains("NOTIFY_SOCKET"), "{e}");
        }
    }

    #[test]
    fn a_missing_listener_is_an_error_not_a_panic() {
        let e = notify_to(OsStr::new("/nonexistent/rvs/notify.sock"), "READY=1").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn status_lines_stay_one_line() {
        assert_eq!(status_line("reload refused:\nbad weight"), "STATUS=reload refused: bad weight");
    }
}
