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

/// An error that ends a command, and its exit code (docs/operating.md). Each layer says the
/// codes of its own errors where it defines them (`cmd::Error`, `control::ReloadError` and
/// `DrainError`, `daemon::StartError`), so that this module, which every layer uses for the
/// codes, imports none of them.
pub trait Coded: std::error::Error + Send + Sync + 'static {
    /// Its exit code.
    fn code(&self) -> u8;

    /// Say it on stderr (`anycastd: ERROR` unless the error prints itself otherwise).
    fn print(&self) {
        eprintln!("anycastd: {self}");
    }
}

/// Whatever ends a command with an error, of any layer. [`Failure::code`] is the one place
/// the code of an error is asked for.
#[derive(Debug)]
pub struct Failure(Box<dyn Coded>);

impl<E: Coded> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure(Box::new(error))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl Failure {
    /// Its exit code (docs/operating.md).
    pub fn code(&self) -> u8 {
        self.0.code()
    }

    /// Say it on stderr, as the commands always have.
    pub fn print(&self) {
        self.0.print()
    }
}
