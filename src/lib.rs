//! anycastd: announces anycast service prefixes through FRRouting only while every health
//! check of the service passes, and withdraws them otherwise.
//!
//! The binary (`src/main.rs`) is a thin CLI over this library so that integration tests can
//! reach the same code. Module map: [`config`] (file -> validated types), [`checks`]
//! (Cabourotte), [`polling`] (one scheduler per Cabourotte server), [`frr`] (vtysh and the level-triggered writer), [`service`] (one service's
//! machine, timers and what it journals, without IO: the driver and replay both run it),
//! [`driver`] (one task per service: results -> core -> journal -> writer), [`daemon`]
//! (start-up, reload, shutdown),
//! [`reconcile`] (start-up convergence with FRR), [`journal`] (async journal handle),
//! [`control`] (the control socket), [`cli`] (its client subcommands), [`history`],
//! [`status`], [`replay`] (postmortem re-runs and what-ifs), [`notify`] (systemd),
//! [`metrics`] (Prometheus), [`logging`], [`manual`] (the man page), [`exit`] (exit codes).

#![forbid(unsafe_code)]

pub mod checks;
pub mod cmd;
pub mod config;
pub mod control;
pub mod daemon;
pub mod exit;
pub mod history;
pub mod journal;
pub mod logging;
pub mod manual;
pub mod metrics;
pub mod notify;
pub mod replay;
pub mod routing;
pub mod service;
pub mod status;
pub mod text;
