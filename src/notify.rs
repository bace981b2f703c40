//! systemd's notification protocol (`Type=notify`): `READY=1` once start-up reconciliation is
//! done, `STATUS=` text ("3 healthy, 1 unhealthy, 1 drained"), `WATCHDOG=1` keep-alives when
//! `WATCHDOG_USEC` is set, `STOPPING=1` at shutdown. Datagrams to `$NOTIFY_SOCKET` (a path, or
//! `@name` for the abstract namespace); without it every call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// A connection to systemd's notification socket, if there is one.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET` (absent: a no-op notifier).
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let path = path.to_string_lossy().into_owned();
            let address = if let Some(name) = path.strip_prefix('@') {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?
            } else {
                std::os::unix::net::SocketAddr::from_pathname(&path).ok()?
            };
            Some((UnixDatagram::unbound().ok()?, address))
        });
        Notifier { socket }
    }

    /// Send one notification (`KEY=value` lines); errors are ignored, as systemd does.
    pub fn send(&self, message: &str) {
        if let Some((socket, address)) = &self.socket {
            let _ = socket.send_to_addr(message.as_bytes(), address);
        }
    }

    /// Whether a notification socket is configured.
    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }
}

/// The watchdog period requested by systemd (`WATCHDOG_USEC`, for this process), if any.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// "3 healthy, 1 unhealthy, 1 drained" from service states.
pub fn status_line<'a>(states: impl Iterator<Item = &'a anycastd_journal::wire::State>) -> String {
    use anycastd_journal::wire::State;
    let (mut healthy, mut unhealthy, mut starting, mut drained) = (0, 0, 0, 0);
    for state in states {
        match state {
            State::Healthy => healthy += 1,
            State::Unhealthy => unhealthy += 1,
            State::Starting => starting += 1,
            State::Draining(_) => drained += 1,
        }
    }
    let mut parts = vec![
        format!("{healthy} healthy"),
        format!("{unhealthy} unhealthy"),
    ];
    if starting > 0 {
        parts.push(format!("{starting} starting"));
    }
    parts.push(format!("{drained} drained"));
    parts.join(", ")
}
