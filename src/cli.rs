//! The client subcommands: `history`, `status`, `stop`. They talk to the running daemon over
//! the control socket; `history` and `status` open the journal directly when no daemon runs.
//! Output goes to stdout, notes and errors to stderr; the return value is the exit code.

use crate::config::Config;
use crate::control::{self, ClientError, Request};
use crate::exit;
use crate::history::{self, Query};
use crate::status::{self, ServiceView};
use anycastd_journal::Journal;
use std::io::Write;

fn print_record_value(record: &serde_json::Value, json: bool) {
    let mut out = std::io::stdout().lock();
    let _ = if json {
        writeln!(out, "{record}")
    } else {
        writeln!(
            out,
            "{} {} {}",
            record["time"].as_str().unwrap_or(""),
            record["service"].as_str().unwrap_or("-"),
            record["text"].as_str().unwrap_or("")
        )
    };
    let _ = out.flush();
}

fn open_journal(config: &Config) -> Result<Option<Journal>, u8> {
    if !config.journal.path.exists() {
        return Ok(None);
    }
    match Journal::open(&config.journal.path, &config.journal.store_options()) {
        Ok(journal) => Ok(Some(journal)),
        Err(anycastd_journal::Error::Locked { pid, .. }) => {
            eprintln!(
                "anycastd: the daemon (pid {pid}) holds the journal but its control socket {} does not answer",
                config.control.socket.display()
            );
            Err(exit::UNAVAILABLE)
        }
        Err(e) => {
            eprintln!("anycastd: {e}");
            Err(exit::SOFTWARE)
        }
    }
}

/// `anycastd history`.
pub async fn history(config: &Config, query: Query, json: bool, follow: bool) -> u8 {
    let request = Request::History {
        query: query.clone(),
        follow,
    };
    match control::request(&config.control.socket, &request).await {
        Ok(mut lines) => {
            let mut printed = 0usize;
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                            eprintln!("anycastd: unreadable answer from the daemon: {line}");
                            return exit::SOFTWARE;
                        };
                        match value["type"].as_str() {
                            Some("record") => {
                                printed += 1;
                                print_record_value(&value["record"], json);
                            }
                            Some("end") => break,
                            Some("error") => {
                                eprintln!(
                                    "anycastd: {}",
                                    value["message"].as_str().unwrap_or("error")
                                );
                                return value["code"]
                                    .as_u64()
                                    .and_then(|c| u8::try_from(c).ok())
                                    .unwrap_or(exit::SOFTWARE);
                            }
                            _ => {}
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        eprintln!("anycastd: control socket: {e}");
                        return exit::SOFTWARE;
                    }
                }
            }
            if printed == 0 && !follow {
                eprintln!("anycastd: no events in this window");
            }
            exit::OK
        }
        Err(ClientError::NoDaemon(reason)) => {
            if follow {
                eprintln!("anycastd: --follow needs the running daemon: {reason}");
                return exit::UNAVAILABLE;
            }
            let journal = match open_journal(config) {
                Ok(Some(journal)) => journal,
                Ok(None) => {
                    eprintln!(
                        "anycastd: no journal at {} yet",
                        config.journal.path.display()
                    );
                    return exit::OK;
                }
                Err(code) => return code,
            };
            if let Some(service) = &query.service {
                if let Some(message) = control::unknown_service(service, config, Some(&journal)) {
                    eprintln!("anycastd: {message}");
                    return exit::USAGE;
                }
            }
            match history::select(&journal, &query) {
                Ok(selection) => {
                    for record in &selection.records {
                        if json {
                            print_record_value(&history::render_json(record), true);
                        } else {
                            println!("{}", history::render_text(record));
                        }
                    }
                    if selection.skipped_unknown > 0 {
                        eprintln!(
                            "anycastd: {} record(s) of a newer journal format skipped",
                            selection.skipped_unknown
                        );
                    }
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
        Err(ClientError::Other(e)) => {
            eprintln!("anycastd: {e}");
            exit::UNAVAILABLE
        }
    }
}

/// `anycastd status`.
pub async fn status(config: &Config, json: bool) -> u8 {
    match ask(config, &Request::Status).await {
        Asked::Answer(value) => {
            let services: Vec<status::ServiceStatus> =
                match serde_json::from_value(value["services"].clone()) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("anycastd: unreadable status from the daemon: {e}");
                        return exit::SOFTWARE;
                    }
                };
            print_status(&services, json, true);
            exit::OK
        }
        Asked::NoDaemon(_) => {
            let journal = match open_journal(config) {
                Ok(journal) => journal,
                Err(code) => return code,
            };
            let mut views = Vec::new();
            if let Some(journal) = &journal {
                if let Ok(states) = journal.last_states() {
                    for (name, last) in states {
                        views.push(ServiceView {
                            name,
                            suppressed: false,
                            state: last.state,
                            since_ms: last.at_ms,
                            cause: "last journaled state".into(),
                        });
                    }
                }
            }
            drop(journal);
            let services = status::collect(config, &views).await;
            print_status(&services, json, false);
            exit::OK
        }
        Asked::Exit(code) => code,
    }
}

fn print_status(services: &[status::ServiceStatus], json: bool, running: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({"daemon_running": running, "services": services})
        );
    } else {
        if !running {
            println!("anycastd is not running; states are the last journaled ones");
        }
        print!("{}", status::render_text(services));
    }
}

/// The one answer to a request, or why there is none.
enum Asked {
    /// The answer (not an error).
    Answer(serde_json::Value),
    /// No daemon listens.
    NoDaemon(String),
    /// Done with this exit code (an error answer, printed).
    Exit(u8),
}

fn code_of(value: &serde_json::Value) -> u8 {
    value["code"]
        .as_u64()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(exit::SOFTWARE)
}

/// Send `request` and read its one answer line; an `error` answer is printed.
async fn ask(config: &Config, request: &Request) -> Asked {
    match control::request(&config.control.socket, request).await {
        Ok(mut lines) => match lines.next_line().await {
            Ok(Some(line)) => {
                let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if value["type"] == "error" {
                    eprintln!("anycastd: {}", value["message"].as_str().unwrap_or("error"));
                    Asked::Exit(code_of(&value))
                } else {
                    Asked::Answer(value)
                }
            }
            _ => {
                eprintln!("anycastd: the daemon closed the control socket without answering");
                Asked::Exit(exit::SOFTWARE)
            }
        },
        Err(ClientError::NoDaemon(reason)) => Asked::NoDaemon(reason),
        Err(ClientError::Other(reason)) => {
            eprintln!("anycastd: {reason}");
            Asked::Exit(exit::UNAVAILABLE)
        }
    }
}

/// [`ask`] for a command that needs the daemon (no daemon: exit 69).
async fn ask_daemon(config: &Config, request: &Request) -> Result<serde_json::Value, u8> {
    match ask(config, request).await {
        Asked::Answer(value) => Ok(value),
        Asked::NoDaemon(reason) => {
            eprintln!("anycastd: {reason}");
            Err(exit::UNAVAILABLE)
        }
        Asked::Exit(code) => Err(code),
    }
}

/// `anycastd stop`.
pub async fn stop(config: &Config, keep_announced: bool) -> u8 {
    let value = match ask_daemon(config, &Request::Stop { keep_announced }).await {
        Ok(value) => value,
        Err(code) => return code,
    };
    let code = code_of(&value);
    let message = value["message"].as_str().unwrap_or("");
    if code == exit::OK {
        println!("anycastd {message}");
    } else {
        eprintln!("anycastd: {message}");
    }
    code
}

/// `anycastd drain` and `anycastd undrain`: exit 0 when FRR shows every change (or when not
/// waiting), 70 when some change was not confirmed within the wait.
pub async fn drain(config: &Config, request: Request) -> u8 {
    let value = match ask_daemon(config, &request).await {
        Ok(value) => value,
        Err(code) => return code,
    };
    let results: Vec<control::DrainResult> =
        match serde_json::from_value(value["results"].clone()) {
            Ok(results) => results,
            Err(e) => {
                eprintln!("anycastd: unreadable answer from the daemon: {e}");
                return exit::SOFTWARE;
            }
        };
    let mut code = exit::OK;
    for result in &results {
        println!("{}: {}", result.service, result.note);
        if result.verified == Some(false) {
            code = exit::SOFTWARE;
        }
    }
    code
}

/// `anycastd reload`.
pub async fn reload(config: &Config) -> u8 {
    match ask_daemon(config, &Request::Reload).await {
        Ok(value) => {
            println!("anycastd {}", value["message"].as_str().unwrap_or(""));
            exit::OK
        }
        Err(code) => code,
    }
}

/// `anycastd replay`.
pub async fn replay(config: &Config, request: Request, json: bool) -> u8 {
    let Request::Replay {
        service,
        since_ms,
        until_ms,
        what_if,
    } = &request
    else {
        return exit::SOFTWARE;
    };
    let report = match ask(config, &request).await {
        Asked::Answer(value) => {
            match serde_json::from_value::<crate::replay::Report>(value["report"].clone()) {
                Ok(report) => report,
                Err(e) => {
                    eprintln!("anycastd: unreadable replay from the daemon: {e}");
                    return exit::SOFTWARE;
                }
            }
        }
        Asked::NoDaemon(_) => {
            let journal = match open_journal(config) {
                Ok(Some(journal)) => journal,
                Ok(None) => {
                    eprintln!(
                        "anycastd: no journal at {} yet",
                        config.journal.path.display()
                    );
                    return exit::OK;
                }
                Err(code) => return code,
            };
            if let Some(message) = control::unknown_service(service, config, Some(&journal)) {
                eprintln!("anycastd: {message}");
                return exit::USAGE;
            }
            match crate::replay::replay_from(&journal, service, *since_ms, *until_ms, None, what_if) {
                Ok(report) => report,
                Err(e) => {
                    eprintln!("anycastd: {e}");
                    return exit::SOFTWARE;
                }
            }
        }
        Asked::Exit(code) => return code,
    };
    if json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        print!("{}", crate::replay::render_text(&report));
    }
    if report.recorded.timeline.is_empty() {
        eprintln!("anycastd: no transitions of {service} in this window");
    }
    exit::OK
}
