//! `anycastd report`: per-service figures over a window (see [`crate::audit::report`]), through the
//! daemon or from the journal directly.

use super::{ask, Asked, Client};
use crate::control::{Request, Response};
use crate::exit;

/// How `report` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An aligned table.
    Text,
    /// The report as one JSON document.
    Json,
    /// CSV with a header line.
    Csv,
}

/// `anycastd report [--since T] [--until T] [--json|--csv]`.
pub async fn report(
    client: &Client,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    format: Format,
) -> u8 {
    let request = Request::Report { since_ms, until_ms };
    let report = match ask(client, &request).await {
        Asked::Answer(Response::Report { report }) => *report,
        Asked::Answer(other) => return super::unexpected(&other),
        Asked::NoDaemon(_) => {
            let (config, journal) = match client.journal_directly("report") {
                Ok(Some(opened)) => opened,
                Ok(None) => return exit::OK,
                Err(code) => return code,
            };
            let configured: Vec<String> = config.services.iter().map(|s| s.name.clone()).collect();
            let made = crate::audit::report::services(&journal, &configured).and_then(|services| {
                crate::audit::report::report(&journal, &services, since_ms, until_ms, None)
            });
            match made {
                Ok(report) => report,
                Err(e) => {
                    eprintln!("anycastd: {e}");
                    return exit::SOFTWARE;
                }
            }
        }
        Asked::Exit(code) => return code,
    };
    match format {
        Format::Text => print!("{}", crate::audit::report::render_text(&report)),
        Format::Json => println!("{}", serde_json::to_string(&report).unwrap_or_default()),
        Format::Csv => print!("{}", crate::audit::report::render_csv(&report)),
    }
    exit::OK
}
