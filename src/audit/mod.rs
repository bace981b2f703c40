//! The audit: what the journal says happened, for people. [`history`] lists and explains
//! records, [`replay`] re-runs a recorded stretch through the state machine (exactly, or
//! under other parameters), [`report`] sums a period up, and [`text`] is the one place that
//! puts a journal record into words, so that every surface (these three, `status`, the logs,
//! the control socket) says the same thing the same way.

pub mod history;
pub mod replay;
pub mod report;
pub mod text;
