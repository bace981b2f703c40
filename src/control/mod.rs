//! The control socket: a Unix socket speaking versioned JSON lines, through which the client
//! commands reach the running daemon: `status`, `history` (with `--follow`), `replay`,
//! `drain`, `undrain`, `reload` and `stop`.
//!
//! [`protocol`]: the typed requests and answers and their lines; [`access`]: who may do what
//! (SO_PEERCRED); [`server`]: the daemon's side (bind, accept, one handler per request);
//! [`client`]: the commands' side.

pub mod access;
pub mod client;
pub mod protocol;
pub mod server;

pub use client::{request, Answers, ClientError};
pub use protocol::{parse_request, DrainResult, JournalLine, LeftPrefix, Request, Response};
pub use server::{bind, serve};

use crate::config::Config;
use crate::observe::status::ServiceView;
use anycastd_journal::{Reader, Record};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc, oneshot};

/// Records a `--follow` reader may fall behind before it is dropped.
pub const FOLLOW_BUFFER: usize = 4096;

/// A stop asked through the socket.
#[derive(Debug)]
pub struct StopRequest {
    /// Exit without withdrawing.
    pub keep_announced: bool,
    /// The grace instead of each service's `drain_grace` (`stop --grace`).
    pub grace: Option<std::time::Duration>,
    /// Caller's uid.
    pub uid: u32,
    /// Caller's pid.
    pub pid: i32,
    /// Answered with (exit code, message, the prefixes left unverified) once the daemon has
    /// stopped.
    pub done: oneshot::Sender<(u8, String, Vec<LeftPrefix>)>,
}

/// A reload asked through the socket: answered with a summary, or (exit code, errors).
#[derive(Debug)]
pub struct ReloadRequest {
    /// The caller's uid (journaled when the reload is rejected).
    pub uid: u32,
    /// The answer.
    pub done: oneshot::Sender<Result<String, ReloadError>>,
}

/// Why the control socket could not be set up (a fatal start-up error, exit 70).
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// `[control] group` or `admin_group` names no group.
    #[error("control group {0:?} does not exist")]
    NoGroup(String),
    /// The group could not be looked up.
    #[error("control group {0:?}: {1}")]
    Group(String, nix::Error),
    /// The socket's directory could not be made.
    #[error("control socket {}: cannot create {}: {error}", path.display(), parent.display())]
    CreateDir {
        /// The socket.
        path: std::path::PathBuf,
        /// Its directory.
        parent: std::path::PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A running anycastd answers on it.
    #[error("control socket {} is in use by a running anycastd", .0.display())]
    InUse(std::path::PathBuf),
    /// A stale socket could not be removed.
    #[error("control socket {}: cannot remove the stale socket: {error}", path.display())]
    RemoveStale {
        /// The socket.
        path: std::path::PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// It could not be bound.
    #[error("control socket {}: cannot bind: {error}", path.display())]
    Bind {
        /// The socket.
        path: std::path::PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// Its mode could not be set.
    #[error("control socket {}: cannot set its mode: {error}", path.display())]
    Mode {
        /// The socket.
        path: std::path::PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// Why a drain or undrain request was refused (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// The request was not a drain or undrain.
    #[error("not a drain request")]
    NotADrain,
    /// No such service runs.
    #[error("unknown service {name:?}; known services: {}", known.join(", "))]
    UnknownService {
        /// The name asked for.
        name: String,
        /// The services that run.
        known: Vec<String>,
    },
    /// The drain would take a guarded service's fleet below its minimum, or the fleet cannot
    /// be read to tell; `--force` drains anyway.
    #[error("{}", lines.join("; "))]
    FleetMinimum {
        /// One line per service refused.
        lines: Vec<String>,
    },
}

/// Why a reload was rejected (the running configuration is kept); its exit code: its
/// [`crate::exit::Coded`] impl.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not load: its lines, and whether it could not be read at all.
    #[error("reload rejected, the running configuration is kept:\n{}", lines.join("\n"))]
    Config {
        /// One line per problem.
        lines: Vec<String>,
        /// The file could not be read (exit 66), else it is invalid (exit 65).
        unreadable: bool,
    },
    /// It changes keys that cannot change live (exit 65).
    #[error("reload rejected: {0} (the running configuration is kept)")]
    RestartRequired(String),
}

impl crate::exit::Coded for DrainError {
    fn code(&self) -> u8 {
        match self {
            DrainError::NotADrain | DrainError::UnknownService { .. } => crate::exit::USAGE,
            DrainError::FleetMinimum { .. } => crate::exit::TEMPFAIL,
        }
    }
}

impl crate::exit::Coded for ReloadError {
    fn code(&self) -> u8 {
        match self {
            ReloadError::Config {
                unreadable: true, ..
            } => crate::exit::NOINPUT,
            ReloadError::Config { .. } | ReloadError::RestartRequired(_) => crate::exit::DATAERR,
        }
    }
}

/// How the socket reaches each service's driver, by service name.
pub type DriverCommands =
    Arc<Mutex<BTreeMap<String, mpsc::Sender<crate::service::driver::Command>>>>;

/// What the server needs from the daemon.
pub struct Context {
    /// Journal reads (`None` when the journal is unavailable).
    pub reader: Option<Reader>,
    /// Every record as it is committed.
    pub tap: broadcast::Sender<Record>,
    /// Each service's state.
    pub views: Arc<Mutex<BTreeMap<String, ServiceView>>>,
    /// The running config (replaced by a reload).
    pub config: Arc<Mutex<Arc<Config>>>,
    /// Where stops go.
    pub stop: mpsc::Sender<StopRequest>,
    /// Where reloads go.
    pub reload: mpsc::Sender<ReloadRequest>,
    /// Each service's driver.
    pub drivers: DriverCommands,
    /// The journal, for operator records.
    pub journal: crate::journal_handle::JournalHandle,
    /// The routing writers (what they have not applied yet, for `status`).
    pub writers: crate::service::driver::Writers,
    /// gid of `[control] group`.
    pub read_gid: Option<u32>,
    /// gid of `[control] admin_group`.
    pub admin_gid: Option<u32>,
    /// The fleet guard (`None`: no `[fleet]`), for status.
    pub fleet: Option<crate::fleet::guard::FleetHandle>,
}

/// `None` if `service` is configured or in the journal, else the error text listing the
/// known services.
pub fn unknown_service(service: &str, config: &Config, reader: Option<&Reader>) -> Option<String> {
    let mut known: Vec<String> = config.services.iter().map(|s| s.name.clone()).collect();
    if let Some(reader) = reader {
        if let Ok(states) = reader.last_states() {
            known.extend(states.into_iter().map(|(name, _)| name));
        }
    }
    known.sort();
    known.dedup();
    (!known.iter().any(|k| k == service)).then(|| {
        format!(
            "unknown service {service:?}; known services: {} (the daemon knows the services of the configuration it last loaded: after adding one to the file, `anycastd reload`)",
            known.join(", ")
        )
    })
}
