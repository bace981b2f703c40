//! `anycastd report`: per-service figures over a window (see [`crate::audit::report`]), through the
//! daemon or from the journal directly.

use super::args::{ClientArgs, WindowArgs};
use super::{ask, Asked, Client, Error};
use crate::control::{Request, Response};
use crate::exit;

/// `anycastd report`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    window: WindowArgs,
    /// JSON output
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// CSV output (a header line, one line per service)
    #[arg(long)]
    csv: bool,
}

impl ReportArgs {
    /// Run it.
    pub fn run(self) -> Result<u8, Error> {
        let (since_ms, until_ms) = self.window.window()?;
        let format = if self.json {
            Format::Json
        } else if self.csv {
            Format::Csv
        } else {
            Format::Text
        };
        let client = self.client.client();
        super::with_runtime(|runtime| runtime.block_on(report(&client, since_ms, until_ms, format)))
    }
}

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
) -> Result<u8, Error> {
    let request = Request::Report { since_ms, until_ms };
    let report = match ask(client, &request).await? {
        Asked::Answer(Response::Report { report }) => *report,
        Asked::Answer(other) => return Err(super::unexpected(&other)),
        Asked::NoDaemon(_) => {
            let Some((config, journal)) = client.journal_directly("report")? else {
                return Ok(exit::OK);
            };
            let configured: Vec<String> = config.services.iter().map(|s| s.name.clone()).collect();
            let made = crate::audit::report::services(&journal, &configured).and_then(|services| {
                crate::audit::report::report(&journal, &services, since_ms, until_ms, None)
            });
            made?
        }
    };
    match format {
        Format::Text => print!("{}", crate::audit::report::render_text(&report)),
        Format::Json => println!("{}", serde_json::to_string(&report).unwrap_or_default()),
        Format::Csv => print!("{}", crate::audit::report::render_csv(&report)),
    }
    Ok(exit::OK)
}
