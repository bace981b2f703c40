//! `anycastd stop [--keep-announced]`: stop the running daemon and say how it ended.

use super::args::ClientArgs;
use super::{ask_daemon, Client, Error};
use crate::control::{LeftPrefix, Request, Response};
use crate::exit;

/// `anycastd stop`'s arguments.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Exit without withdrawing, for a planned restart: the next start restores the
    /// services without a flap
    #[arg(long)]
    keep_announced: bool,
    /// Announce every announced service with GRACEFUL_SHUTDOWN (65535:0) this long before
    /// withdrawing, instead of each service's drain_grace; 0 withdraws at once
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = super::args::parse_grace,
        conflicts_with = "keep_announced",
        allow_hyphen_values = true
    )]
    grace: Option<std::time::Duration>,
}

impl StopArgs {
    /// Run it.
    pub fn run(self) -> Result<u8, Error> {
        let client = self.client.client();
        let request = Request::Stop {
            keep_announced: self.keep_announced,
            grace_ms: self.grace.map(super::args::grace_ms),
        };
        super::with_runtime(|runtime| runtime.block_on(stop(&client, request)))
    }
}

/// `anycastd stop`: the daemon's exit code (0, or 70 when it left prefixes unverified).
pub async fn stop(client: &Client, request: Request) -> Result<u8, Error> {
    let (code, message, pid, left) = match ask_daemon(client, &request).await? {
        Response::Stopped {
            code,
            message,
            pid,
            left,
        } => (code, message, pid, left),
        other => return Err(super::unexpected(&other)),
    };
    // Answer once the process is gone (its journal released): a start right after works.
    if let Ok(pid) = i32::try_from(pid) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        let alive = || {
            // A zombie (exited, not yet reaped by its parent) is gone, once its last thread
            // is: a leader turns zombie while its other threads still exit (and hold the
            // journal's files).
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                let fields: Vec<&str> = stat
                    .rsplit_once(") ")
                    .map(|(_, rest)| rest.split_whitespace().collect())
                    .unwrap_or_default();
                let zombie = fields.first() == Some(&"Z");
                let threads: u64 = fields.get(17).and_then(|t| t.parse().ok()).unwrap_or(0);
                !zombie || threads > 1
            })
        };
        while alive() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    if code == exit::OK {
        println!("anycastd {message}");
    } else {
        eprintln!("anycastd: {message}");
        for line in left_lines(&left) {
            eprintln!("anycastd: {line}");
        }
    }
    Ok(code)
}

/// One line per prefix a stop left unverified: the prefix, its routing daemon and why.
fn left_lines(left: &[LeftPrefix]) -> Vec<String> {
    left.iter()
        .map(|l| {
            format!(
                "not verified withdrawn: {}: {}",
                crate::audit::text::prefix_with_backend(&l.prefix),
                l.error
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use anycastd_journal::wire;

    #[test]
    fn each_prefix_left_is_a_line_with_its_daemon_and_error() {
        let left = [
            LeftPrefix {
                prefix: wire::PrefixRef {
                    backend: "bird".into(),
                    instance: crate::routing::bird::DEFAULT_SOCKET.into(),
                    vrf: Some("anycastd4".into()),
                    prefix: "198.51.100.53/32".into(),
                },
                error: "8002 bird.conf:25:1 syntax error".into(),
            },
            LeftPrefix {
                prefix: wire::PrefixRef::frr("/usr/bin/vtysh", None, "203.0.113.53/32"),
                error: "withdrawal not verified in time".into(),
            },
        ];
        assert_eq!(
            left_lines(&left),
            [
                "not verified withdrawn: 198.51.100.53/32 (BIRD, protocol anycastd4): 8002 \
                 bird.conf:25:1 syntax error",
                "not verified withdrawn: 203.0.113.53/32 (FRR): withdrawal not verified in time",
            ]
        );
    }
}
