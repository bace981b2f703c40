//! The client subcommands, one file each: [`history`], [`replay`], [`status`], [`drain`]
//! (and undrain), [`reload`], [`stop`], [`check_config`]. They talk to the running daemon over
//! the control socket and need nothing else of the config file but the socket's path: they
//! work whenever the daemon answers, also while the file on disk does not validate (the moment
//! after a rejected reload). `history`, `replay` and `status` open the journal (and FRR)
//! directly when no daemon runs; that needs a valid config. Output goes to stdout, notes and
//! errors to stderr; the return value is the exit code.

pub mod check_config;
pub mod drain;
pub mod history;
pub mod reload;
pub mod replay;
pub mod report;
pub mod status;
pub mod stop;

use crate::config::{Config, LoadError};
use crate::control::{self, ClientError, Request, Response};
use crate::exit;
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
pub(crate) fn open_journal(config: &Config, socket: &Path) -> Result<Option<Journal>, u8> {
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

impl Client {
    /// The config and the journal, for `what` without a daemon: `Ok(None)`, said, when there
    /// is no journal yet; the exit code when either cannot be had.
    fn journal_directly(&self, what: &str) -> Result<Option<(&Config, Journal)>, u8> {
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

/// What keeps a command from the daemon, said, as its exit code.
pub(crate) fn not_reached(error: ClientError) -> u8 {
    eprintln!("anycastd: {error}");
    match error {
        ClientError::Denied(_) => exit::NOPERM,
        ClientError::NoDaemon(_) | ClientError::Other(_) => exit::UNAVAILABLE,
    }
}

/// The one answer to a request, or why there is none.
pub(crate) enum Asked {
    /// The answer (not an error).
    Answer(Response),
    /// No daemon listens.
    NoDaemon(String),
    /// Done with this exit code (an error answer, printed).
    Exit(u8),
}

/// Send `request` and read its one answer; an `error` answer is printed.
pub(crate) async fn ask(client: &Client, request: &Request) -> Asked {
    match control::request(&client.socket, request).await {
        Ok(mut answers) => match answers.next().await {
            Ok(Some(Response::Error { code, message })) => {
                client.note_invalid();
                eprintln!("anycastd: {message}");
                Asked::Exit(code)
            }
            Ok(Some(response)) => {
                client.note_invalid();
                Asked::Answer(response)
            }
            Ok(None) => {
                eprintln!("anycastd: the daemon closed the control socket without answering");
                Asked::Exit(exit::SOFTWARE)
            }
            Err(e) => {
                eprintln!("anycastd: {e}");
                Asked::Exit(exit::SOFTWARE)
            }
        },
        Err(ClientError::NoDaemon(reason)) => Asked::NoDaemon(reason),
        Err(e) => Asked::Exit(not_reached(e)),
    }
}

/// [`ask`] for a command that needs the daemon (no daemon: exit 69).
pub(crate) async fn ask_daemon(client: &Client, request: &Request) -> Result<Response, u8> {
    match ask(client, request).await {
        Asked::Answer(response) => Ok(response),
        Asked::NoDaemon(reason) => {
            eprintln!("anycastd: {reason}");
            Err(exit::UNAVAILABLE)
        }
        Asked::Exit(code) => Err(code),
    }
}

/// An answer of the wrong kind (a daemon of another version?), said, as its exit code.
pub(crate) fn unexpected(response: &Response) -> u8 {
    eprintln!("anycastd: unexpected answer from the daemon: {response:?}");
    exit::SOFTWARE
}
