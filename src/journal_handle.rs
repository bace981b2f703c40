//! The daemon's async face of the journal: group-committed appends that a task can await.
//!
//! Wraps [`anycastd_journal::Committer`] (a thread). A durable append resolves only after the
//! flush that covers it, so a driver acts on a routing daemon only after its decision is on disk
//! (write-ahead). When the journal is unavailable the daemon keeps gating health: appends
//! then resolve at once with an error that the caller logs.

use anycastd_journal::wire::Event;
use anycastd_journal::Committer;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Shared handle to the journal (or to its absence).
#[derive(Clone)]
pub struct JournalHandle {
    committer: Option<Arc<Committer>>,
}

/// Milliseconds since the epoch, UTC: the time every record and fsm input carries.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl JournalHandle {
    /// A handle to a running committer.
    pub fn new(committer: Committer) -> JournalHandle {
        JournalHandle {
            committer: Some(Arc::new(committer)),
        }
    }

    /// A handle that journals nothing (journal unavailable).
    pub fn unavailable() -> JournalHandle {
        JournalHandle { committer: None }
    }

    /// Append and wait until the records are flushed; returns the last record's sequence.
    pub async fn append_durable(&self, at_ms: i64, events: Vec<Event>) -> Result<u64, AppendError> {
        let Some(committer) = &self.committer else {
            return Err(AppendError::Unavailable);
        };
        crate::observe::metrics::count("anycastd_journal_appends_total", &[], 1.0);
        let (tx, rx) = oneshot::channel();
        committer.submit(
            at_ms,
            events,
            true,
            Some(Box::new(move |result| {
                let _ = tx.send(result);
            })),
        );
        let result = rx
            .await
            .map_err(|_| AppendError::Stopped)
            .and_then(|result| result.map_err(AppendError::Commit));
        if result.is_err() {
            crate::observe::metrics::count("anycastd_journal_errors_total", &[], 1.0);
        }
        crate::observe::metrics::set(
            "anycastd_journal_flushes_total",
            &[],
            committer.flushes() as f64,
        );
        result
    }

    /// Append durably (in the next group commit) without waiting for it. Nothing to append is
    /// nothing done.
    pub fn append_flushed(&self, at_ms: i64, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        if let Some(committer) = &self.committer {
            crate::observe::metrics::count("anycastd_journal_appends_total", &[], 1.0);
            committer.submit(
                at_ms,
                events,
                true,
                Some(Box::new(|result| {
                    if result.is_err() {
                        crate::observe::metrics::count("anycastd_journal_errors_total", &[], 1.0);
                    }
                })),
            );
        }
    }

    /// Append without waiting (flushed by the next group commit or sled's periodic flush).
    pub fn append(&self, at_ms: i64, events: Vec<Event>) {
        if let Some(committer) = &self.committer {
            crate::observe::metrics::count("anycastd_journal_appends_total", &[], 1.0);
            committer.submit(
                at_ms,
                events,
                false,
                Some(Box::new(|result| {
                    if result.is_err() {
                        crate::observe::metrics::count("anycastd_journal_errors_total", &[], 1.0);
                    }
                })),
            );
        }
    }

    /// Append without a flush, and wait until the records are written (readers see them).
    pub async fn append_visible(&self, at_ms: i64, events: Vec<Event>) {
        let Some(committer) = &self.committer else {
            return;
        };
        crate::observe::metrics::count("anycastd_journal_appends_total", &[], 1.0);
        let (tx, rx) = oneshot::channel();
        committer.submit(
            at_ms,
            events,
            false,
            Some(Box::new(move |result| {
                if result.is_err() {
                    crate::observe::metrics::count("anycastd_journal_errors_total", &[], 1.0);
                }
                let _ = tx.send(());
            })),
        );
        let _ = rx.await;
    }

    /// Flush everything and stop the committer (at exit). Waits for the other handles to go.
    pub fn close(self) {
        if let Some(committer) = self.committer {
            if let Ok(committer) = Arc::try_unwrap(committer) {
                let _ = committer.close();
            }
        }
    }
}

/// Why a durable append failed (the caller logs it; health gating goes on).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The journal could not be opened at start: the daemon runs without an audit trail.
    #[error("journal unavailable")]
    Unavailable,
    /// The committer thread is gone.
    #[error("journal committer stopped")]
    Stopped,
    /// The commit failed (a full disk, an I/O error), in the journal's words.
    #[error("{0}")]
    Commit(String),
}
