//! Exit codes (BSD sysexits, as the original anycastd), documented in docs/operating.md.

/// Success.
pub const OK: u8 = 0;
/// Usage error (bad option, unknown subcommand).
pub const USAGE: u8 = 2;
/// The config file is invalid.
pub const DATAERR: u8 = 65;
/// The config file cannot be read (missing, a directory, permission).
pub const NOINPUT: u8 = 66;
/// A resource is held or missing (the journal is locked by another process).
pub const UNAVAILABLE: u8 = 69;
/// A drain refused by the fleet guard: it would take a guarded service's fleet below its
/// minimum, or etcd cannot be read to tell (`--force` drains anyway).
pub const TEMPFAIL: u8 = 75;
/// Permission denied on the control socket (not root, the daemon's user or in its groups).
pub const NOPERM: u8 = 77;
/// Runtime failure (shutdown could not withdraw everything, a second signal, start-up failure).
pub const SOFTWARE: u8 = 70;

use crate::cmd::Error as CommandError;
use crate::control::{ClientError, DrainError, ReloadError};
use crate::daemon::StartError;

/// Whatever ends a command with an error, by layer. [`Failure::code`] is the one place an
/// error becomes an exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A client command's (or the command line's) error.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The daemon could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The daemon rejected a reload (sent to `anycastd reload` with its code).
    #[error(transparent)]
    Reload(#[from] ReloadError),
    /// The daemon refused a drain or undrain (sent to the client with its code).
    #[error(transparent)]
    Drain(#[from] DrainError),
}

impl Failure {
    /// Its exit code (docs/operating.md).
    pub fn code(&self) -> u8 {
        match self {
            Failure::Command(error) => match error {
                CommandError::Usage(_) | CommandError::Environment(_) => USAGE,
                CommandError::Config { unreadable, .. }
                | CommandError::ConfigNeeded { unreadable, .. } => {
                    if *unreadable {
                        NOINPUT
                    } else {
                        DATAERR
                    }
                }
                CommandError::JournalLocked { .. }
                | CommandError::NoDaemon(_)
                | CommandError::FollowNeedsDaemon(_)
                | CommandError::DaemonStopped(_)
                | CommandError::Unreached(ClientError::NoDaemon(_) | ClientError::Other(_)) => {
                    UNAVAILABLE
                }
                CommandError::Unreached(ClientError::Denied(_)) => NOPERM,
                // The daemon's own code for its refusal.
                CommandError::Refused { code, .. } => *code,
                CommandError::Closed
                | CommandError::Unexpected(_)
                | CommandError::Runtime(_)
                | CommandError::Journal(_)
                | CommandError::Failed(_) => SOFTWARE,
            },
            Failure::Start(error) => match error {
                StartError::JournalLocked { .. } => UNAVAILABLE,
                StartError::Signals(_)
                | StartError::Control(_)
                | StartError::Metrics(_)
                | StartError::HttpClient(_) => SOFTWARE,
            },
            Failure::Reload(error) => match error {
                ReloadError::Config {
                    unreadable: true, ..
                } => NOINPUT,
                ReloadError::Config { .. } | ReloadError::RestartRequired(_) => DATAERR,
            },
            Failure::Drain(DrainError::NotADrain | DrainError::UnknownService { .. }) => USAGE,
            Failure::Drain(DrainError::FleetMinimum { .. }) => TEMPFAIL,
        }
    }

    /// Say it on stderr, as the commands always have.
    pub fn print(&self) {
        match self {
            Failure::Command(error) => error.print(),
            Failure::Start(error) => eprintln!("anycastd: {error}"),
            Failure::Reload(error) => eprintln!("anycastd: {error}"),
            Failure::Drain(error) => eprintln!("anycastd: {error}"),
        }
    }
}
