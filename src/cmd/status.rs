//! `anycastd status`: each service's state, checks and prefixes (see [`crate::observe::status`]),
//! through the daemon or from the journal's last states; `--check` for monitoring.

use super::{ask, open_journal, Asked, Client};
use crate::control::{self, Request, Response};
use crate::exit;
use crate::observe::status::{self, Snapshot};

/// `anycastd status [SERVICE] [--json] [--check]`. With `--check`, whatever keeps it from an
/// answer is UNKNOWN (3), as monitoring plugins report.
pub async fn status(client: &Client, service: Option<String>, json: bool, check: bool) -> u8 {
    let now = crate::journal_handle::now_ms();
    let collected = collect_status(client, service).await;
    if check {
        let (code, line) = match &collected {
            Ok((services, live, _)) => status::check(services, *live),
            Err(_) => (
                3,
                "ANYCASTD UNKNOWN - no status (see the error above)".to_owned(),
            ),
        };
        println!("{line}");
        return code;
    }
    let (services, live, notes) = match collected {
        Ok(collected) => collected,
        Err(code) => return code,
    };
    if json {
        println!(
            "{}",
            serde_json::json!({"daemon_running": live, "services": services, "notes": notes})
        );
    } else {
        if !live {
            println!("anycastd is not running; states are the last journaled ones");
        }
        print!("{}", status::render_text(&services, now));
        for note in &notes {
            println!("note: {note}");
        }
    }
    exit::OK
}

async fn collect_status(
    client: &Client,
    service: Option<String>,
) -> Result<(Vec<status::ServiceStatus>, bool, Vec<String>), u8> {
    let request = Request::Status {
        service: service.clone(),
    };
    match ask(client, &request).await {
        Asked::Answer(Response::Status { services, notes }) => Ok((services, true, notes)),
        Asked::Answer(other) => Err(super::unexpected(&other)),
        Asked::NoDaemon(_) => {
            let config = client.config_for("status")?;
            if let Some(name) = &service {
                if let Some(message) = control::unknown_service(name, config, None) {
                    eprintln!("anycastd: {message}");
                    return Err(exit::USAGE);
                }
            }
            let journal = open_journal(config, &client.socket)?;
            let mut snapshots = Vec::new();
            if let Some(journal) = &journal {
                if let Ok(states) = journal.last_states() {
                    for (name, last) in states {
                        snapshots.push(Snapshot::from_view(&status::ServiceView {
                            name,
                            suppressed: false,
                            state: last.state,
                            since_ms: last.at_ms,
                            cause: "last journaled state".into(),
                        }));
                    }
                }
            }
            drop(journal);
            let services = status::collect(
                config,
                &snapshots,
                false,
                &status::Pending::new(),
                service.as_deref(),
            )
            .await;
            Ok((services, false, Vec::new()))
        }
        Asked::Exit(code) => Err(code),
    }
}
