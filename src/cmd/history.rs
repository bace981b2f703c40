//! `anycastd history`: the journal, one line per event (see [`crate::audit::history`]), through the
//! daemon or, when none runs, from the journal directly; `--follow` streams new records.

use super::args::ClientArgs;
use super::{Client, Error};
use crate::audit::history::{self, Query};
use crate::control::{self, ClientError, Request, Response};
use crate::exit;
use anycastd_journal::Record;
use std::io::Write;

/// `anycastd history`'s arguments.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Only this service (and the daemon's own events)
    service: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
    /// Events at or after this time: RFC 3339, or a duration ago (90, 90s, 30m, 2h, 1d, 1w)
    #[arg(long)]
    since: Option<String>,
    /// Events before this time: RFC 3339, or a duration ago
    #[arg(long)]
    until: Option<String>,
    /// The oldest N events only
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "tail")]
    limit: Option<u64>,
    /// The newest N events only
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    tail: Option<u64>,
    /// Every record on a line of its own (FRR outcomes are otherwise folded into the
    /// decision they complete)
    #[arg(long, short = 'v')]
    verbose: bool,
    /// One JSON object per record
    #[arg(long)]
    json: bool,
    /// Keep printing new events as they happen (needs the running daemon); with --until,
    /// until then
    #[arg(long)]
    follow: bool,
    /// Only events with a sequence number above N (resume a --follow)
    #[arg(long, value_name = "N")]
    after_seq: Option<u64>,
}

impl HistoryArgs {
    /// Run it.
    pub fn run(self) -> Result<u8, Error> {
        let (since_ms, until_ms) = super::args::window(&self.since, &self.until)?;
        let query = Query {
            service: self.service,
            since_ms,
            until_ms,
            limit: self.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            tail: self.tail.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            after_seq: self.after_seq,
            verbose: self.verbose,
            bookkeeping: false,
        };
        let client = self.client.client();
        super::with_runtime(|runtime| {
            runtime.block_on(history(&client, query, self.json, self.follow))
        })
    }
}

fn print_events(records: &[Record], json: bool, verbose: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        for record in records {
            let line = control::JournalLine::of(record);
            let _ = writeln!(out, "{}", serde_json::to_string(&line).unwrap_or_default());
        }
    } else {
        for line in history::render_events(records, verbose) {
            let _ = writeln!(out, "{line}");
        }
    }
    let _ = out.flush();
}

fn skipped_note(skipped: u64) {
    if skipped > 0 {
        eprintln!("anycastd: {skipped} record(s) of a newer journal format skipped");
    }
}

/// `anycastd history`: exit 0 (also for an empty window, with a note); with `--follow`, 69
/// when the daemon stops (saying how to resume).
pub async fn history(client: &Client, query: Query, json: bool, follow: bool) -> Result<u8, Error> {
    let now = crate::journal_handle::now_ms();
    if follow && query.until_ms.is_some_and(|until| until <= now) {
        eprintln!("anycastd: note: --until is in the past: showing the window, nothing to follow");
        return Box::pin(history(client, query, json, false)).await;
    }
    let request = Request::History {
        query: query.clone(),
        follow,
    };
    match control::request(&client.socket, &request).await {
        Ok(answers) => {
            client.note_invalid();
            through_daemon(answers, &query, json, follow, now).await
        }
        Err(ClientError::NoDaemon(reason)) if follow => Err(Error::FollowNeedsDaemon(reason)),
        Err(ClientError::NoDaemon(_)) => from_journal(client, &query, json),
        Err(e) => Err(Error::Unreached(e)),
    }
}

/// The daemon's answers: the stored records (folded, as one list), then with `--follow` each
/// new record as it comes, until the daemon stops or `--until`.
async fn through_daemon(
    mut answers: control::Answers,
    query: &Query,
    json: bool,
    follow: bool,
    now: i64,
) -> Result<u8, Error> {
    let mut records: Vec<Record> = Vec::new();
    // Following: past the stored records, each new one is printed as it comes.
    let mut caught_up = false;
    let mut last_seq = query.after_seq.unwrap_or(0);
    let deadline = query.until_ms.filter(|_| follow).map(|until| {
        tokio::time::Instant::now()
            + std::time::Duration::from_millis(u64::try_from(until - now).unwrap_or(0))
    });
    loop {
        let next = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, answers.next()).await {
                Ok(next) => next,
                Err(_) => {
                    eprintln!("anycastd: --until reached; resume with --after-seq {last_seq}");
                    return Ok(exit::OK);
                }
            },
            None => answers.next().await,
        };
        match next {
            Ok(Some(Response::Record { record })) => {
                let record = record.record();
                last_seq = last_seq.max(record.seq);
                if caught_up {
                    print_events(std::slice::from_ref(&record), json, true);
                } else {
                    records.push(record);
                }
            }
            Ok(Some(Response::CaughtUp { skipped_unknown })) => {
                print_events(&records, json, query.verbose);
                skipped_note(skipped_unknown);
                caught_up = true;
            }
            Ok(Some(Response::End { skipped_unknown })) => {
                skipped_note(skipped_unknown);
                break;
            }
            Ok(Some(Response::Error { code, message })) => {
                return Err(Error::Refused {
                    code,
                    message,
                    resume: (follow && caught_up).then_some(last_seq),
                });
            }
            Ok(Some(other)) => return Err(super::unexpected(&other)),
            Ok(None) if follow => {
                if !caught_up {
                    print_events(&records, json, query.verbose);
                }
                return Err(Error::DaemonStopped(last_seq));
            }
            Ok(None) => break,
            Err(e) => return Err(Error::Failed(e.to_string())),
        }
    }
    print_events(&records, json, query.verbose);
    if records.is_empty() {
        eprintln!("anycastd: no events in this window");
    }
    Ok(exit::OK)
}

fn from_journal(client: &Client, query: &Query, json: bool) -> Result<u8, Error> {
    let Some((config, journal)) = client.journal_directly("reading the journal")? else {
        return Ok(exit::OK);
    };
    if let Some(service) = &query.service {
        if let Some(message) = control::unknown_service(service, config, Some(&journal)) {
            return Err(Error::Usage(message));
        }
    }
    let selection = history::select(&journal, query)?;
    print_events(&selection.records, json, query.verbose);
    skipped_note(selection.skipped_unknown);
    if selection.records.is_empty() {
        eprintln!("anycastd: no events in this window");
    }
    Ok(exit::OK)
}
