//! Health checks: the kinds (today [`cabourotte`]: results read from Cabourotte's HTTP API)
//! and the [`scheduler`] that polls them on a shared grid.

pub mod cabourotte;
pub mod scheduler;
