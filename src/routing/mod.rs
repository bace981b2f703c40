//! Routing daemons: the level-triggered [`writer`] that converges a daemon to the services'
//! decisions, the start-up [`reconcile`]iation, and one folder per daemon (today [`frr`]).

pub mod frr;
pub mod reconcile;
pub mod writer;
