//! `anycastd history`: the journal, one line per event (see [`crate::audit::history`]), through the
//! daemon or, when none runs, from the journal directly; `--follow` streams new records.

use super::{not_reached, Client};
use crate::audit::history::{self, Query};
use crate::control::{self, ClientError, Request, Response};
use crate::exit;
use anycastd_journal::Record;
use std::io::Write;

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
pub async fn history(client: &Client, query: Query, json: bool, follow: bool) -> u8 {
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
        Err(ClientError::NoDaemon(reason)) if follow => {
            eprintln!("anycastd: --follow needs the running daemon: {reason}");
            exit::UNAVAILABLE
        }
        Err(ClientError::NoDaemon(_)) => from_journal(client, &query, json),
        Err(e) => not_reached(e),
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
) -> u8 {
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
                    return exit::OK;
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
                eprintln!("anycastd: {message}");
                if follow && caught_up {
                    eprintln!("anycastd: resume with --after-seq {last_seq}");
                }
                return code;
            }
            Ok(Some(other)) => return super::unexpected(&other),
            Ok(None) if follow => {
                if !caught_up {
                    print_events(&records, json, query.verbose);
                }
                eprintln!("anycastd: the daemon stopped; resume with --after-seq {last_seq}");
                return exit::UNAVAILABLE;
            }
            Ok(None) => break,
            Err(e) => {
                eprintln!("anycastd: {e}");
                return exit::SOFTWARE;
            }
        }
    }
    print_events(&records, json, query.verbose);
    if records.is_empty() {
        eprintln!("anycastd: no events in this window");
    }
    exit::OK
}

fn from_journal(client: &Client, query: &Query, json: bool) -> u8 {
    let (config, journal) = match client.journal_directly("reading the journal") {
        Ok(Some(opened)) => opened,
        Ok(None) => return exit::OK,
        Err(code) => return code,
    };
    if let Some(service) = &query.service {
        if let Some(message) = control::unknown_service(service, config, Some(&journal)) {
            eprintln!("anycastd: {message}");
            return exit::USAGE;
        }
    }
    match history::select(&journal, query) {
        Ok(selection) => {
            print_events(&selection.records, json, query.verbose);
            skipped_note(selection.skipped_unknown);
            if selection.records.is_empty() {
                eprintln!("anycastd: no events in this window");
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("anycastd: {e}");
            exit::SOFTWARE
        }
    }
}
