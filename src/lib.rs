//! anycastd: announces anycast service prefixes through a routing daemon (FRRouting) only
//! while every health check of the service passes, and withdraws them otherwise.
//!
//! The binary (`src/main.rs`: the command line and its dispatch) is a thin shell over this
//! library, so that tests reach the same code. Module map, by concern:
//!
//! - [`cmd`]: one file per client subcommand (history, replay, status, drain, reload, stop,
//!   check-config), all speaking to the daemon through [`control`];
//! - [`daemon`]: the wiring of `anycastd run`: start-up, the journal reporter, reload,
//!   shutdown, signals;
//! - [`service`]: one service's machine, timers and journal records without IO ([`service::Core`],
//!   [`service::record`]: the one module that decides which check results are journaled,
//!   which replay decodes with), and its async [`service::driver`];
//! - [`checks`]: the check seam ([`checks::Probe`]), the kind-neutral [`checks::scheduler`],
//!   one module per kind ([`checks::cabourotte`], [`checks::scripted`] for tests);
//! - [`routing`]: the backend seam ([`routing::Backend`]), the kind-neutral
//!   [`routing::writer`] and start-up [`routing::reconcile`], one folder per backend
//!   ([`routing::frr`], [`routing::memory`] for tests);
//! - [`config`]: the file -> validated types;
//! - [`control`]: the control socket: typed requests and answers, access rules, server, client;
//! - [`journal_handle`]: the async journal handle;
//! - [`audit`]: what the journal says happened ([`audit::history`], [`audit::replay`],
//!   [`audit::report`]), in the words of [`audit::text`];
//! - [`observe`]: what the running daemon shows ([`observe::status`], [`observe::metrics`],
//!   the HTTP [`observe::endpoint`]);
//! - [`notify`] (systemd), [`logging`], [`manual`] (the man
//!   page), [`exit`] (exit codes).
//!
//! A new check kind goes in `checks/` (see the [`checks`] module doc); a new routing daemon
//! in `routing/` (see [`routing`]).

#![forbid(unsafe_code)]

pub mod audit;
pub mod checks;
pub mod cmd;
pub mod config;
pub mod control;
pub mod daemon;
pub mod exit;
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
