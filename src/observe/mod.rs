//! What the running daemon shows about itself: [`status`] (the state of every service and
//! prefix, as `status` and `GET /status` give it), [`metrics`] (the Prometheus exposition)
//! and [`endpoint`] (the HTTP listener on `[metrics] listen` that serves both).

pub mod endpoint;
pub mod metrics;
pub mod status;
