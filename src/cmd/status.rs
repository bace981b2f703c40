//! `anycastd status`: each service's state, checks and prefixes (see [`crate::observe::status`]),
//! through the daemon or from the journal's last states; `--check` for monitoring.

use super::args::ClientArgs;
use super::{ask, open_journal, Asked, Client, Error};
use crate::control::{self, Request, Response};
use crate::exit;
use crate::observe::status::{self, Snapshot};

/// `anycastd status`'s arguments.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Only this service
    service: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
    /// JSON output
    #[arg(long)]
    json: bool,
    /// Monitoring-plugin output and exit code (0 OK, 1 WARNING when a wanted prefix is not
    /// advertised or a service announces nothing, or only de-preferred, in a drain's grace or
    /// held by the fleet guard, 2 CRITICAL when a routing daemon differs from what the daemon
    /// wants, 3 UNKNOWN)
    #[arg(long, conflicts_with = "json")]
    check: bool,
}

impl StatusArgs {
    /// Run it.
    pub fn run(self) -> Result<u8, Error> {
        let client = self.client.client();
        super::with_runtime(|runtime| {
            runtime.block_on(status(&client, self.service, self.json, self.check))
        })
    }
}

/// `anycastd status [SERVICE] [--json] [--check]`. With `--check`, whatever keeps it from an
/// answer is UNKNOWN (3), as monitoring plugins report (after the error, printed).
pub async fn status(
    client: &Client,
    service: Option<String>,
    json: bool,
    check: bool,
) -> Result<u8, Error> {
    let now = crate::journal_handle::now_ms();
    let collected = collect_status(client, service).await;
    if check {
        let (code, line) = match &collected {
            Ok((services, live, _, _)) => status::check(services, *live),
            Err(e) => {
                e.print();
                (
                    3,
                    "ANYCASTD UNKNOWN - no status (see the error above)".to_owned(),
                )
            }
        };
        println!("{line}");
        return Ok(code);
    }
    let (services, live, notes, (fleet_guard, fleet_guard_state)) = collected?;
    if json {
        println!(
            "{}",
            serde_json::json!({"daemon_running": live, "services": services, "notes": notes, "fleet_guard": fleet_guard, "fleet_guard_state": fleet_guard_state})
        );
    } else {
        if !live {
            println!("anycastd is not running; states are the last journaled ones");
        }
        print!("{}", status::render_text(&services, now));
        for note in &notes {
            println!("note: {note}");
        }
        if let Some(line) = &fleet_guard {
            println!("{line}");
        }
    }
    Ok(exit::OK)
}

async fn collect_status(
    client: &Client,
    service: Option<String>,
) -> Result<
    (
        Vec<status::ServiceStatus>,
        bool,
        Vec<String>,
        (Option<String>, Option<crate::fleet::guard::GuardView>),
    ),
    Error,
> {
    let request = Request::Status {
        service: service.clone(),
    };
    match ask(client, &request).await? {
        Asked::Answer(Response::Status {
            services,
            notes,
            fleet_guard,
            fleet_guard_state,
        }) => Ok((services, true, notes, (fleet_guard, fleet_guard_state))),
        Asked::Answer(other) => Err(super::unexpected(&other)),
        Asked::NoDaemon(_) => {
            let config = client.config_for("status")?;
            if let Some(name) = &service {
                if let Some(message) = control::unknown_service(name, config, None) {
                    return Err(Error::Usage(message));
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
            Ok((services, false, Vec::new(), (None, None)))
        }
    }
}
