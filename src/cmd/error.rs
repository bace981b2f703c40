//! Why a command ends with an error, as data: the commands return it, `main` prints it
//! ([`Error::print`]) and turns it into the exit code ([`crate::exit::Failure::code`]; its
//! codes are in its `exit::Coded` impl). The texts are the ones the commands always printed.

use crate::control::ClientError;
use std::path::PathBuf;

/// A client command's error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A malformed or contradictory option, an unknown service (exit 2).
    #[error("{0}")]
    Usage(String),
    /// An environment variable the command line reads holds an invalid value (exit 2).
    #[error("{0}")]
    Environment(String),
    /// The config file does not load: its lines, and whether it could not be read at all.
    #[error("{}", lines.join("\n"))]
    Config {
        /// One line per problem (`FILE:LINE: KEY: MESSAGE`).
        lines: Vec<String>,
        /// The file could not be read (exit 66), else it is invalid (exit 65).
        unreadable: bool,
    },
    /// Work without the daemon needs the config, which does not load.
    #[error("{}\nno daemon answers on {}, and {what} without it needs a valid config", lines.join("\n"), socket.display())]
    ConfigNeeded {
        /// The config's problems.
        lines: Vec<String>,
        /// The file could not be read (exit 66), else it is invalid (exit 65).
        unreadable: bool,
        /// The socket nothing answers on.
        socket: PathBuf,
        /// What was asked for (`status`, `replay`, `reading the journal`).
        what: String,
    },
    /// Another process holds the journal while nothing answers on the socket (exit 69).
    #[error("process {pid} holds the journal {}, but nothing answers on the control socket {} (is it the daemon's socket? see --socket)", journal.display(), socket.display())]
    JournalLocked {
        /// The holder.
        pid: u32,
        /// The journal's path.
        journal: PathBuf,
        /// The socket asked.
        socket: PathBuf,
    },
    /// No daemon answers, and the command needs one (exit 69).
    #[error("{0}")]
    NoDaemon(String),
    /// `history --follow` without a daemon (exit 69).
    #[error("--follow needs the running daemon: {0}")]
    FollowNeedsDaemon(String),
    /// The daemon stopped while `history --follow` followed it (exit 69).
    #[error("the daemon stopped; resume with --after-seq {0}")]
    DaemonStopped(u64),
    /// The socket could not be reached (denied: exit 77, else 69).
    #[error(transparent)]
    Unreached(ClientError),
    /// The daemon answered with an error, and its exit code; `resume`: the sequence number a
    /// `--follow` that had caught up can resume after.
    #[error("{message}{}", resume.map(|seq| format!("\nresume with --after-seq {seq}")).unwrap_or_default())]
    Refused {
        /// The exit code the daemon gave.
        code: u8,
        /// What it said.
        message: String,
        /// Where a `--follow` resumes.
        resume: Option<u64>,
    },
    /// The daemon closed the socket without answering (exit 70).
    #[error("the daemon closed the control socket without answering")]
    Closed,
    /// An answer of the wrong kind (a daemon of another version?) (exit 70).
    #[error("unexpected answer from the daemon: {0}")]
    Unexpected(String),
    /// The async runtime could not start (exit 70).
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// The journal could not be read (exit 70).
    #[error(transparent)]
    Journal(#[from] anycastd_journal::Error),
    /// Reading the answers failed, the manual page could not be written (exit 70).
    #[error("{0}")]
    Failed(String),
}

impl crate::exit::Coded for Error {
    fn code(&self) -> u8 {
        use crate::exit::{DATAERR, NOINPUT, NOPERM, SOFTWARE, UNAVAILABLE, USAGE};
        match self {
            Error::Usage(_) | Error::Environment(_) => USAGE,
            Error::Config { unreadable, .. } | Error::ConfigNeeded { unreadable, .. } => {
                if *unreadable {
                    NOINPUT
                } else {
                    DATAERR
                }
            }
            Error::JournalLocked { .. }
            | Error::NoDaemon(_)
            | Error::FollowNeedsDaemon(_)
            | Error::DaemonStopped(_)
            | Error::Unreached(ClientError::NoDaemon(_) | ClientError::Other(_)) => UNAVAILABLE,
            Error::Unreached(ClientError::Denied(_)) => NOPERM,
            // The daemon's own code for its refusal.
            Error::Refused { code, .. } => *code,
            Error::Closed
            | Error::Unexpected(_)
            | Error::Runtime(_)
            | Error::Journal(_)
            | Error::Failed(_) => SOFTWARE,
        }
    }

    fn print(&self) {
        Error::print(self);
    }
}

impl Error {
    /// The error for `config`'s load error.
    pub fn config(error: &crate::config::LoadError) -> Error {
        Error::Config {
            lines: error.lines(),
            unreadable: matches!(error, crate::config::LoadError::Unreadable { .. }),
        }
    }

    /// Print it on stderr as the commands always have: `anycastd: ` before each line of
    /// ours, a config's problems as they are, an environment variable's as `error: `.
    pub fn print(&self) {
        match self {
            Error::Config { lines, .. } => {
                for line in lines {
                    eprintln!("{line}");
                }
            }
            Error::ConfigNeeded {
                lines,
                socket,
                what,
                ..
            } => {
                for line in lines {
                    eprintln!("{line}");
                }
                eprintln!(
                    "anycastd: no daemon answers on {}, and {what} without it needs a valid config",
                    socket.display()
                );
            }
            Error::Environment(message) => eprintln!("error: {message}"),
            Error::Refused {
                message, resume, ..
            } => {
                eprintln!("anycastd: {message}");
                if let Some(seq) = resume {
                    eprintln!("anycastd: resume with --after-seq {seq}");
                }
            }
            other => eprintln!("anycastd: {other}"),
        }
    }
}
