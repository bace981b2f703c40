//! `anycastd stop [--keep-announced]`: stop the running daemon and say how it ended.

use super::{ask_daemon, Client};
use crate::control::{Request, Response};
use crate::exit;

/// `anycastd stop`.
pub async fn stop(client: &Client, keep_announced: bool) -> u8 {
    let (code, message, pid) = match ask_daemon(client, &Request::Stop { keep_announced }).await {
        Ok(Response::Stopped { code, message, pid }) => (code, message, pid),
        Ok(other) => return super::unexpected(&other),
        Err(code) => return code,
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
    }
    code
}
