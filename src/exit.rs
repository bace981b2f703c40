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
/// Permission denied on the control socket (not root, the daemon's user or in its groups).
pub const NOPERM: u8 = 77;
/// Runtime failure (shutdown could not withdraw everything, a second signal, start-up failure).
pub const SOFTWARE: u8 = 70;
