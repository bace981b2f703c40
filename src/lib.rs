//! anycastd: announces anycast service prefixes through the host's routing daemon (FRRouting
//! or BIRD) only while the service's health checks pass (all of them, or as many as `require`
//! asks), and withdraws them otherwise. How the parts work together, and the rules they keep:
//! docs/ARCHITECTURE.md.
//!
//! The binary (`src/main.rs`: the command line and its dispatch) is a thin shell over this
//! library, so that tests reach the same code. Module map, by concern:
//!
//! - [`cmd`]: one file per subcommand with its arguments (history, replay, report, status,
//!   drain, reload, stop, check-config, run), the clients speaking to the daemon through
//!   [`control`];
//! - [`daemon`]: the wiring of `anycastd run`: start-up, the journal reporter, reload,
//!   shutdown, signals;
//! - [`service`]: one service's machine, timers and journal records without IO ([`service::Core`],
//!   [`service::record`]: the one module that decides which check results are journaled,
//!   which replay decodes with), and its async [`service::driver`];
//! - [`checks`]: the check seam ([`checks::Probe`]), the kind-neutral [`checks::scheduler`],
//!   one module per kind, each implementing [`checks::Kind`] ([`checks::cabourotte`], ...)
//!   and registered in [`checks::REGISTRY`], and [`checks::scripted`] for tests;
//! - [`routing`]: the backend seam ([`routing::Backend`]), the kind-neutral
//!   [`routing::writer`] and start-up [`routing::reconcile`], one folder per backend
//!   ([`routing::frr`], [`routing::bird`], [`routing::memory`] for tests);
//! - [`config`]: the file -> validated types (the check kinds given as a
//!   [`config::Registry`]: `config` imports nothing from `checks`; each routing kind reads
//!   its own section and prefix items behind [`config::BackendLoader`]);
//! - [`control`]: the control socket: typed requests and answers, access rules, server, client;
//! - [`journal_handle`]: the async journal handle;
//! - [`audit`]: what the journal says happened ([`audit::history`], [`audit::replay`],
//!   [`audit::report`]), in the words of [`audit::text`];
//! - [`observe`]: what the running daemon shows ([`observe::status`], [`observe::metrics`],
//!   the HTTP [`observe::endpoint`]);
//! - [`notify`] (systemd), [`logging`], [`manual`] (the man
//!   page), [`exit`] (exit codes, and the one mapping from an error to its code).
//!
//! A new check kind goes in `checks/` (see the [`checks`] module doc); a new routing daemon
//! in `routing/` (see [`routing`]).

#![forbid(unsafe_code)]
// No function in src/ over 150 lines (clippy.toml); test code may be longer.
#![warn(clippy::too_many_lines)]

pub mod audit;
pub mod bgp;
pub mod checks;
pub mod cmd;
pub mod config;
pub mod control;
pub mod daemon;
pub mod exit;
pub mod fleet;
pub mod hooks;
pub mod io_text;
pub mod journal_handle;
pub mod logging;
pub mod manual;
pub mod notify;
pub mod observe;
pub mod privileges;
pub mod routing;
pub mod service;
