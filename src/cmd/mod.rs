//! The client subcommands, one file each: [`history`], [`replay`], [`status`], [`drain`]
//! (and undrain), [`reload`], [`stop`], [`check_config`]. They talk to the running daemon over
//! the control socket and need nothing else of the config file but the socket's path: they
//! work whenever the daemon answers, also while the file on disk does not validate (the moment
//! after a rejected reload). `history`, `replay` and `status` open the journal (and FRR)
//! directly when no daemon runs; that needs a valid config. Each file holds its subcommand's
//! arguments (a clap `Args` struct, [`args`] those they share) and runs it. Output goes to
//! stdout, notes to stderr; a command returns its exit status, or its [`Error`], which `main`
//! prints and maps to the exit code in one place ([`crate::exit::Failure::code`]).

pub mod args;
pub mod check_config;
pub mod docs;
pub mod drain;
mod error;
pub mod fleet;
pub mod history;
pub mod reload;
pub mod replay;
pub mod report;
pub mod run;
pub mod status;
pub mod stop;

pub use error::Error;

use crate::config::{Config, LoadError};
use crate::control::{self, ClientError, Request, Response};
use anycastd_journal::Journal;
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
    /// The socket was given (`--socket`): the daemon there may run another file.
    socket_given: bool,
}

impl Client {
    /// The client of `config_path` (or of `socket` when given).
    pub fn new(config_path: &Path, socket: Option<PathBuf>) -> Client {
        let loaded = crate::config::load(config_path, &crate::checks::REGISTRY);
        let socket_given = socket.is_some();
        let socket = socket.unwrap_or_else(|| match &loaded {
            Ok(config) => config.control.socket.clone(),
            Err(_) => crate::config::control_socket_of(config_path)
                .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_CONTROL_SOCKET)),
        });
        Client {
            config_path: config_path.to_path_buf(),
            socket,
            loaded,
            socket_given,
        }
    }

    /// The config, for work without the daemon; when it does not validate, why, as the error.
    fn config_for(&self, what: &str) -> Result<&Config, Error> {
        self.loaded.as_ref().map_err(|e| Error::ConfigNeeded {
            lines: e.lines(),
            unreadable: matches!(e, LoadError::Unreadable { .. }),
            socket: self.socket.clone(),
            what: what.to_owned(),
        })
    }

    /// A note when the daemon answered while the file on disk does not validate (a file that
    /// does not exist is no news, nor is a file when the socket was given: the daemon there
    /// may run another file).
    fn note_invalid(&self) {
        if self.socket_given {
            return;
        }
        if let Err(e @ LoadError::Invalid { .. }) = &self.loaded {
            eprintln!(
                "anycastd: note: {} does not validate ({} problem(s)); the daemon runs its last valid configuration (`anycastd check-config --config {}` lists the problems)",
                self.config_path.display(),
                e.lines().len(),
                self.config_path.display()
            );
        }
    }
}

/// The journal, opened by a client when no daemon answers (`Ok(None)`: there is none yet).
pub(crate) fn open_journal(config: &Config, socket: &Path) -> Result<Option<Journal>, Error> {
    if !config.journal.path.exists() {
        return Ok(None);
    }
    match Journal::open(&config.journal.path, &config.journal.store_options()) {
        Ok(journal) => Ok(Some(journal)),
        Err(anycastd_journal::Error::Locked { pid, .. }) => Err(Error::JournalLocked {
            pid,
            journal: config.journal.path.clone(),
            socket: socket.to_path_buf(),
        }),
        Err(e) => Err(Error::Journal(e)),
    }
}

impl Client {
    /// The config and the journal, for `what` without a daemon: `Ok(None)`, said, when there
    /// is no journal yet; the error when either cannot be had.
    fn journal_directly(&self, what: &str) -> Result<Option<(&Config, Journal)>, Error> {
        let config = self.config_for(what)?;
        match open_journal(config, &self.socket)? {
            Some(journal) => Ok(Some((config, journal))),
            None => {
                eprintln!(
                    "anycastd: no journal at {} yet",
                    config.journal.path.display()
                );
                Ok(None)
            }
        }
    }
}

/// The one answer to a request, or why there is none.
pub(crate) enum Asked {
    /// The answer (not an error).
    Answer(Response),
    /// No daemon listens.
    NoDaemon(String),
}

/// Send `request` and read its one answer; an `error` answer is the daemon's refusal.
pub(crate) async fn ask(client: &Client, request: &Request) -> Result<Asked, Error> {
    match control::request(&client.socket, request).await {
        Ok(mut answers) => match answers.next().await {
            Ok(Some(Response::Error { code, message })) => {
                client.note_invalid();
                Err(Error::Refused {
                    code,
                    message,
                    resume: None,
                })
            }
            Ok(Some(response)) => {
                client.note_invalid();
                Ok(Asked::Answer(response))
            }
            Ok(None) => Err(Error::Closed),
            Err(e) => Err(Error::Failed(e.to_string())),
        },
        Err(ClientError::NoDaemon(reason)) => Ok(Asked::NoDaemon(reason)),
        Err(e) => Err(Error::Unreached(e)),
    }
}

/// [`ask`] for a command that needs the daemon (no daemon: exit 69).
pub(crate) async fn ask_daemon(client: &Client, request: &Request) -> Result<Response, Error> {
    match ask(client, request).await? {
        Asked::Answer(response) => Ok(response),
        Asked::NoDaemon(reason) => Err(Error::NoDaemon(reason)),
    }
}

/// An answer of the wrong kind (a daemon of another version?).
pub(crate) fn unexpected(response: &Response) -> Error {
    Error::Unexpected(format!("{response:?}"))
}

/// Run `f` with the client's runtime (one thread).
pub fn with_runtime<T>(
    f: impl FnOnce(&tokio::runtime::Runtime) -> Result<T, Error>,
) -> Result<T, Error> {
    f(&runtime()?)
}

/// The runtime of a command (and of the daemon).
pub fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    // One thread runs the checks, the drivers and the control socket: their work is short
    // and never blocks (journal reads go to the blocking pool, the journal's commits and the
    // FRR writers have threads of their own). On two cores this costs a third less CPU than
    // a work-stealing pool of two workers at 2,000 polls a second (BENCHMARKS.md).
    tokio::runtime::Builder::new_current_thread()
        // Deeply nested futures (driver -> writer -> vtysh) in blocking-pool threads too.
        .thread_stack_size(8 * 1024 * 1024)
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}
