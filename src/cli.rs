//! The client subcommands: `history`, `replay`, `status`, `drain`, `undrain`, `reload` and
//! `stop`. They talk to the running daemon over the control socket and need nothing else of
//! the config file but the socket's path: they work whenever the daemon answers, also while
//! the file on disk does not validate (the moment after a rejected reload). `history`,
//! `replay` and `status` open the journal (and FRR) directly when no daemon runs; that needs a
//! valid config. Output goes to stdout, notes and errors to stderr; the return value is the
//! exit code.

use crate::config::{Config, LoadError};
use crate::control::{self, ClientError, Request};
use crate::exit;
use crate::history::{self, Query};
use crate::status::{self, Snapshot};
use anycastd_journal::{Journal, Record};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a client command knows: the socket, and the config when it validates.
pub struct Client {
    /// The config file given.
    pub config_path: PathBuf,
    /// The control socket: `--socket`, else the config's `[control] socket` (read leniently
    /// from a file that does not validate), else the default.
    pub socket: PathBuf,
    /// The config, or why it could not be loaded.
    pub loaded: Result<Config, LoadError>,
}

impl Client {
    /// The client of `config_path` (or of `socket` when given).
    pub fn new(config_path: &Path, socket: Option<PathBuf>) -> Client {
        let loaded = crate::config::load(config_path);
        let socket = socket.unwrap_or_else(|| match &loaded {
            Ok(config) => config.control.socket.clone(),
            Err(_) => crate::config::control_socket_of(config_path)
                .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_CONTROL_SOCKET)),
        });
        Client {
            config_path: config_path.to_path_buf(),
            socket,
            loaded,
        }
    }

    /// The config, for work without the daemon; when it does not validate, its errors are
    /// printed and the exit code returned.
    fn config_for(&self, what: &str) -> Result<&Config, u8> {
        match &self.loaded {
            Ok(config) => Ok(config),
            Err(e) => {
                for line in e.lines() {
                    eprintln!("{line}");
                }
                eprintln!(
                    "anycastd: no daemon answers on {}, and {what} without it needs a valid config",
                    self.socket.display()
                );
                Err(match e {
                    LoadError::Unreadable { .. } => exit::NOINPUT,
                    LoadError::Invalid { .. } => exit::DATAERR,
                })
            }
        }
    }

    /// A note when the daemon answered while the file on disk does not validate.
    fn note_invalid(&self) {
        if let Err(e) = &self.loaded {
            eprintln!(
                "anycastd: note: {} does not validate ({} problem(s)); the daemon runs its last valid configuration (`anycastd check-config` lists the problems)",
                self.config_path.display(),
                e.lines().len()
            );
        }
    }
}

fn open_journal(config: &Config, socket: &Path) -> Result<Option<Journal>, u8> {
    if !config.journal.path.exists() {
        return Ok(None);
    }
    match Journal::open(&config.journal.path, &config.journal.store_options()) {
        Ok(journal) => Ok(Some(journal)),
        Err(anycastd_journal::Error::Locked { pid, .. }) => {
            eprintln!(
                "anycastd: process {pid} holds the journal {}, but nothing answers on the control socket {} (is it the daemon's socket? see --socket)",
                config.journal.path.display(),
                socket.display()
            );
            Err(exit::UNAVAILABLE)
        }
        Err(e) => {
            eprintln!("anycastd: {e}");
            Err(exit::SOFTWARE)
        }
    }
}

fn print_events(records: &[Record], json: bool, verbose: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        for record in records {
            let _ = writeln!(out, "{}", history::render_json(record));
        }
    } else {
        for line in history::render_events(records, verbose) {
            let _ = writeln!(out, "{line}");
        }
    }
    let _ = out.flush();
}

/// `anycastd history`: exit 0 (also for an empty window, with a note); with `--follow`, 69
/// when the daemon stops (saying how to resume).
pub async fn history(client: &Client, query: Query, json: bool, follow: bool) -> u8 {
    let now = crate::journal::now_ms();
    if follow && query.until_ms.is_some_and(|until| until <= now) {
        eprintln!("anycastd: note: --until is in the past: showing the window, nothing to follow");
        return Box::pin(history(client, query, json, false)).await;
    }
    let request = Request::History {
        query: query.clone(),
        follow,
    };
    match control::request(&client.socket, &request).await {
        Ok(mut lines) => {
            client.note_invalid();
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
                    Some(deadline) => {
                        match tokio::time::timeout_at(deadline, lines.next_line()).await {
                            Ok(next) => next,
                            Err(_) => {
                                eprintln!(
                                    "anycastd: --until reached; resume with --after-seq {last_seq}"
                                );
                                return exit::OK;
                            }
                        }
                    }
                    None => lines.next_line().await,
                };
                let line = match next {
                    Ok(Some(line)) => line,
                    Ok(None) if follow => {
                        if !caught_up {
                            print_events(&records, json, query.verbose);
                        }
                        eprintln!(
                            "anycastd: the daemon stopped; resume with --after-seq {last_seq}"
                        );
                        return exit::UNAVAILABLE;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        eprintln!("anycastd: control socket: {e}");
                        return exit::SOFTWARE;
                    }
                };
                let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                    eprintln!("anycastd: unreadable answer from the daemon: {line}");
                    return exit::SOFTWARE;
                };
                match value["type"].as_str() {
                    Some("record") => {
                        let Some(record) = history::record_of_json(&value["record"]) else {
                            eprintln!("anycastd: unreadable record from the daemon: {line}");
                            return exit::SOFTWARE;
                        };
                        last_seq = last_seq.max(record.seq);
                        if caught_up {
                            // Streaming: each record as it comes.
                            print_events(std::slice::from_ref(&record), json, true);
                        } else {
                            records.push(record);
                        }
                    }
                    Some("caught_up") => {
                        print_events(&records, json, query.verbose);
                        caught_up = true;
                    }
                    Some("end") => {
                        skipped_note(value["skipped_unknown"].as_u64().unwrap_or(0));
                        break;
                    }
                    Some("error") => {
                        eprintln!("anycastd: {}", value["message"].as_str().unwrap_or("error"));
                        if follow && caught_up {
                            eprintln!("anycastd: resume with --after-seq {last_seq}");
                        }
                        return code_of(&value);
                    }
                    _ => {}
                }
            }
            print_events(&records, json, query.verbose);
            if records.is_empty() {
                eprintln!("anycastd: no events in this window");
            }
            exit::OK
        }
        Err(ClientError::NoDaemon(reason)) => {
            if follow {
                eprintln!("anycastd: --follow needs the running daemon: {reason}");
                return exit::UNAVAILABLE;
            }
            let config = match client.config_for("reading the journal") {
                Ok(config) => config,
                Err(code) => return code,
            };
            let journal = match open_journal(config, &client.socket) {
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
        Err(e) => not_reached(e),
    }
}

fn skipped_note(skipped: u64) {
    if skipped > 0 {
        eprintln!("anycastd: {skipped} record(s) of a newer journal format skipped");
    }
}

fn not_reached(error: ClientError) -> u8 {
    match error {
        ClientError::Denied(reason) => {
            eprintln!("anycastd: {reason}");
            exit::NOPERM
        }
        ClientError::NoDaemon(reason) | ClientError::Other(reason) => {
            eprintln!("anycastd: {reason}");
            exit::UNAVAILABLE
        }
    }
}

/// `anycastd status [SERVICE] [--json] [--check]`. With `--check`, whatever keeps it from an
/// answer is UNKNOWN (3), as monitoring plugins report.
pub async fn status(client: &Client, service: Option<String>, json: bool, check: bool) -> u8 {
    let now = crate::journal::now_ms();
    let collected = collect_status(client, service).await;
    if check {
        let (code, line) = match &collected {
            Ok((services, live)) => status::check(services, *live),
            Err(_) => (
                3,
                "ANYCASTD UNKNOWN - no status (see the error above)".to_owned(),
            ),
        };
        println!("{line}");
        return code;
    }
    let (services, live) = match collected {
        Ok(collected) => collected,
        Err(code) => return code,
    };
    if json {
        println!(
            "{}",
            serde_json::json!({"daemon_running": live, "services": services})
        );
    } else {
        if !live {
            println!("anycastd is not running; states are the last journaled ones");
        }
        print!("{}", status::render_text(&services, now));
    }
    exit::OK
}

async fn collect_status(
    client: &Client,
    service: Option<String>,
) -> Result<(Vec<status::ServiceStatus>, bool), u8> {
    let request = Request::Status {
        service: service.clone(),
    };
    match ask(client, &request).await {
        Asked::Answer(value) => {
            match serde_json::from_value::<Vec<status::ServiceStatus>>(value["services"].clone()) {
                Ok(s) => Ok((s, true)),
                Err(e) => {
                    eprintln!("anycastd: unreadable status from the daemon: {e}");
                    Err(exit::SOFTWARE)
                }
            }
        }
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
            Ok((services, false))
        }
        Asked::Exit(code) => Err(code),
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
async fn ask(client: &Client, request: &Request) -> Asked {
    match control::request(&client.socket, request).await {
        Ok(mut lines) => match lines.next_line().await {
            Ok(Some(line)) => {
                client.note_invalid();
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
        Err(e) => Asked::Exit(not_reached(e)),
    }
}

/// [`ask`] for a command that needs the daemon (no daemon: exit 69).
async fn ask_daemon(client: &Client, request: &Request) -> Result<serde_json::Value, u8> {
    match ask(client, request).await {
        Asked::Answer(value) => Ok(value),
        Asked::NoDaemon(reason) => {
            eprintln!("anycastd: {reason}");
            Err(exit::UNAVAILABLE)
        }
        Asked::Exit(code) => Err(code),
    }
}

/// `anycastd stop`.
pub async fn stop(client: &Client, keep_announced: bool) -> u8 {
    let value = match ask_daemon(client, &Request::Stop { keep_announced }).await {
        Ok(value) => value,
        Err(code) => return code,
    };
    let code = code_of(&value);
    let message = value["message"].as_str().unwrap_or("");
    // Answer once the process is gone (its journal released): a start right after works.
    if let Some(pid) = value["pid"].as_i64().and_then(|p| i32::try_from(p).ok()) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        let alive = || {
            // A zombie (exited, not yet reaped by its parent) is gone.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit(") ")
                    .next()
                    .is_some_and(|s| !s.starts_with('Z'))
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

/// `anycastd drain` and `anycastd undrain`: exit 0 when FRR shows every change (or when not
/// waiting), 70 when some change was not confirmed within the wait.
pub async fn drain(client: &Client, request: Request) -> u8 {
    let value = match ask_daemon(client, &request).await {
        Ok(value) => value,
        Err(code) => return code,
    };
    let results: Vec<control::DrainResult> = match serde_json::from_value(value["results"].clone())
    {
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

/// `anycastd reload`: the daemon re-reads its file (and journals a rejection).
pub async fn reload(client: &Client) -> u8 {
    match ask_daemon(client, &Request::Reload).await {
        Ok(value) => {
            println!("anycastd {}", value["message"].as_str().unwrap_or(""));
            exit::OK
        }
        Err(code) => code,
    }
}

/// `anycastd replay`.
pub async fn replay(client: &Client, request: Request, json: bool) -> u8 {
    let Request::Replay {
        service,
        since_ms,
        until_ms,
        what_if,
    } = &request
    else {
        return exit::SOFTWARE;
    };
    let report = match ask(client, &request).await {
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
            let config = match client.config_for("replay") {
                Ok(config) => config,
                Err(code) => return code,
            };
            let journal = match open_journal(config, &client.socket) {
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
            match crate::replay::replay_from(&journal, service, *since_ms, *until_ms, None, what_if)
            {
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
