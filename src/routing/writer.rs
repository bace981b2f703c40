//! The writer: one task per backend that converges what the backend installed to the
//! desired set (level-triggered), whatever the backend's kind.
//!
//! The services' drivers say what they want per prefix ([`WriterHandle::set`]) after their
//! decision is durable in the journal. The writer then, in one pass: reads what the backend
//! installed ([`Backend::read`]: no cache), diffs, hands
//! every change of every service to the backend in as few calls as it allows (withdrawals
//! first, then by table, family and prefix; [`Backend::batches`]), reads back to verify, and
//! reports an outcome per decision. It never creates an instance or table: a prefix whose
//! table is missing is an error for that prefix alone. A call stops at the first failing
//! change and keeps what came before (as a daemon's shell does); the read-back tells what was applied, the
//! first change of a failed call that was not is set aside with its error and retried with
//! capped exponential backoff, the rest are retried at once. Nothing here can stop the daemon, and one prefix's error never blocks
//! another's change.
//!
//! Bursts (a start, a Cabourotte dying): a change arriving within [`BURST`] of a pass that
//! wrote, or in the first [`START_GATHER`], waits until changes pause ([`GATHER_QUIET`], at most
//! [`GATHER_MAX`]) so that one pass carries them all; a lone change goes to the backend at once.
//! Departure from "every apply reads the running config": a pass that follows a pass's
//! read-back by less than [`READ_BACK_REUSE`] starts from that read-back (a full read of that
//! moment, not derived state) instead of reading again, which halves the backend calls of a
//! burst. A change made by someone else in that half second is
//! repaired as if it had happened just after a fresh read: by this pass's own read-back if it
//! writes, else by the next periodic reconcile, which always reads afresh.

pub use super::PrefixKey;
use super::{Backend, BackendId, Change, Installed, Place, RuntimeFile};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

/// First retry delay after a failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Longest retry delay while shutting down.
pub const BACKOFF_MAX_URGENT: Duration = Duration::from_millis(300);
/// A change that arrives within this time of the end of a pass that wrote is part of a burst
/// (start-up, a check server dying): the writer then gathers changes before the next pass.
/// A change after a quiet period goes to the backend at once.
pub const BURST: Duration = Duration::from_millis(50);
/// In a burst, the next pass starts when no change came for this long...
pub const GATHER_QUIET: Duration = Duration::from_millis(20);
/// ... or this long after the burst's first change at the latest.
pub const GATHER_MAX: Duration = Duration::from_millis(100);
/// After the writer starts, changes are gathered for this long as in a burst.
pub const START_GATHER: Duration = Duration::from_secs(2);
/// A read-back this recent stands in for the next pass's first read.
pub const READ_BACK_REUSE: Duration = Duration::from_millis(500);

/// What one service decided for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The service that owns the prefix.
    pub service: String,
    /// Announce (true) or withdraw (false).
    pub announce: bool,
    /// What it is announced with (ignored for a withdrawal).
    pub attributes: crate::bgp::Attributes,
    /// Sequence number of the journal record that decided it (0 if none).
    pub decision_seq: u64,
}

/// The result of applying a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Changed and verified by read-back.
    Applied,
    /// The backend was already so.
    AlreadySo,
    /// Failed with this error; retried.
    Failed(String),
    /// Replaced by a newer decision before it was applied.
    Superseded,
    /// Found in the wrong state after it had been applied (bgpd restart, hand edit): drift,
    /// repaired by this pass.
    Drift {
        /// Whether the backend had the prefix.
        present: bool,
    },
    /// Found announced, as decided, but with other attributes than decided after it had
    /// been applied (a hand edit, an operator's route-map put on it): drift, repaired by this
    /// pass with an announcement that carries the decided ones (never a withdrawal first).
    AttributesDrift {
        /// What the backend showed it announced with, as far as it can say.
        installed: crate::bgp::Attributes,
    },
}

/// An outcome report for the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The writer's backend.
    pub backend: BackendId,
    /// The prefix.
    pub key: PrefixKey,
    /// The decision.
    pub decision: Decision,
    /// What happened.
    pub outcome: Outcome,
}

/// A restart of the routing daemon, found by watching its runtime file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    /// The writer's backend.
    pub backend: BackendId,
    /// The daemon that restarted, in words ([`super::Kind::daemon`]).
    pub daemon: &'static str,
    /// The prefixes wanted announced at that moment (to be re-announced), with their service.
    pub announced: Vec<(String, PrefixKey)>,
}

/// What a writer tells the rest of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The outcome of a decision.
    Outcome(Report),
    /// The routing daemon restarted.
    Restarted(Restart),
}

/// How often the writer looks at its daemon's runtime file ([`Backend::runtime_file`]).
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// After a restart, retries are as quick as at a shutdown for this long (the daemon may
/// take a few seconds to load its configuration).
pub const RECOVERY: Duration = Duration::from_secs(60);
/// For this long after a restart, a missing table is taken for the daemon still loading its
/// configuration: retried, not reported.
pub const LOADING: Duration = Duration::from_secs(5);

/// The writer's view after its last pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// The desired-set generation the pass worked from.
    pub generation: u64,
    /// Prefixes not (verified) in their desired state, with their last error.
    pub pending: Vec<(PrefixKey, Decision, Option<String>)>,
    /// The last error reading the backend, if the last read failed.
    pub read_error: Option<String>,
    /// Why a restart of the routing daemon is not noticed at once, when it is not
    /// ([`Backend::runtime_file`]).
    pub restart_detection_off: Option<String>,
}

#[derive(Debug)]
struct Entry {
    decision: Decision,
    /// A final outcome (applied / already so) was reported for this decision.
    reported: bool,
}

#[derive(Debug, Default)]
struct Shared {
    desired: BTreeMap<PrefixKey, Entry>,
    generation: u64,
    urgent: bool,
}

/// The handle through which drivers set desired states.
#[derive(Clone)]
pub struct WriterHandle {
    backend: BackendId,
    shared: Arc<Mutex<Shared>>,
    notify: Arc<Notify>,
    reports: mpsc::UnboundedSender<Notice>,
    status: watch::Receiver<Status>,
}

impl WriterHandle {
    /// Set the desired state of prefixes; returns the new generation. A decision that replaces
    /// one whose outcome was not reported yet is reported as superseded.
    pub fn set(&self, items: Vec<(PrefixKey, Decision)>) -> u64 {
        let generation = {
            let mut shared = lock(&self.shared);
            for (key, decision) in items {
                let old = shared.desired.insert(
                    key.clone(),
                    Entry {
                        decision: decision.clone(),
                        reported: false,
                    },
                );
                if let Some(old) = old {
                    if old.decision == decision {
                        // Same decision again: keep its reported flag.
                        if let Some(entry) = shared.desired.get_mut(&key) {
                            entry.reported = old.reported;
                        }
                    } else if !old.reported && installs_otherwise(&old.decision, &decision) {
                        let _ = self.reports.send(Notice::Outcome(Report {
                            backend: self.backend.clone(),
                            key,
                            decision: old.decision,
                            outcome: Outcome::Superseded,
                        }));
                    }
                }
            }
            shared.generation += 1;
            shared.generation
        };
        self.notify.notify_one();
        generation
    }

    /// Retry everything now and keep backoff short from here on (shutdown).
    pub fn urgent(&self) {
        lock(&self.shared).urgent = true;
        self.notify.notify_one();
    }

    /// The current desired-set generation.
    pub fn generation(&self) -> u64 {
        lock(&self.shared).generation
    }

    /// Watch the writer's status.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Its backend.
    pub fn backend(&self) -> &BackendId {
        &self.backend
    }

    /// The prefixes whose latest decision the backend has not shown yet (being applied, or
    /// failing).
    pub fn unsettled(&self) -> Vec<PrefixKey> {
        lock(&self.shared)
            .desired
            .iter()
            .filter(|(_, entry)| !entry.reported)
            .map(|(key, _)| key.clone())
            .collect()
    }
}

/// Whether two decisions for a prefix want different things installed: one announces and
/// the other withdraws, or both announce with different attributes (a level switch).
fn installs_otherwise(a: &Decision, b: &Decision) -> bool {
    a.announce != b.announce || (a.announce && a.attributes != b.attributes)
}

/// Whether `installed` shows `key` as `decision` wants it: withdrawn, or announced with the
/// decision's attributes (a prefix announced with others is not as decided: the writer
/// announces it again with the decided ones, never withdrawing it first).
fn as_decided<I: Installed>(installed: &I, key: &PrefixKey, decision: &Decision) -> bool {
    if !installed.contains(&key.0, &key.1) {
        return !decision.announce;
    }
    decision.announce
        && installed.installed_with(&key.0, &key.1, &decision.attributes.clone().normalized())
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // A panic while holding this lock would be a bug; keep going with the data as it is.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The writers run on a thread of their own (a single-threaded runtime), so that a change
/// reaches the backend at once even while the main runtime is busy with a round of a
/// thousand check results. `None` if that thread cannot be started (the writers then share
/// the main runtime).
fn writer_runtime() -> Option<tokio::runtime::Handle> {
    static HANDLE: std::sync::OnceLock<Option<tokio::runtime::Handle>> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_stack_size(8 * 1024 * 1024)
                .build()
                .ok()?;
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name("writers".into())
                .stack_size(8 * 1024 * 1024)
                .spawn(move || runtime.block_on(std::future::pending::<()>()))
                .ok()?;
            Some(handle)
        })
        .clone()
}

/// Start the writer task of `backend`. Outcomes go to `reports`.
pub fn spawn<B: Backend>(
    backend: B,
    reconcile_interval: Duration,
    reports: mpsc::UnboundedSender<Notice>,
) -> WriterHandle {
    let shared: Arc<Mutex<Shared>> = Arc::default();
    let notify = Arc::new(Notify::new());
    let (status_tx, status_rx) = watch::channel(Status::default());
    let id = backend.id().clone();
    let writer = Writer {
        backend,
        shared: shared.clone(),
        reports: reports.clone(),
        status: status_tx,
        retry: HashMap::new(),
        sent: HashMap::new(),
        read_failures: 0,
        read_retry_at: None,
        last_read: None,
        last_write: None,
        started: Instant::now(),
        runtime: None,
        recovering_until: None,
        restart_pending: false,
        reconfigured: None,
        runtime_file: None,
        incarnation: None,
        restart_detection_off: None,
        reconcile_interval,
    };
    let task = writer.run(notify.clone(), reconcile_interval);
    match writer_runtime() {
        Some(handle) => drop(handle.spawn(task)),
        None => drop(tokio::spawn(task)),
    }
    WriterHandle {
        backend: id,
        shared,
        notify,
        reports,
        status: status_rx,
    }
}

#[derive(Debug)]
struct Retry {
    decision: Decision,
    failures: u32,
    at: Instant,
    error: String,
}

struct Writer<B: Backend> {
    backend: B,
    shared: Arc<Mutex<Shared>>,
    reports: mpsc::UnboundedSender<Notice>,
    status: watch::Sender<Status>,
    /// Prefixes set aside after a failure, until their retry time.
    retry: HashMap<PrefixKey, Retry>,
    /// The decision for which a line was last sent, per prefix.
    sent: HashMap<PrefixKey, Decision>,
    /// Reads that failed in a row, and when to read again.
    read_failures: u32,
    read_retry_at: Option<Instant>,
    /// The read-back of the last pass: the next pass starts from it when it is younger than
    /// [`READ_BACK_REUSE`] (a burst of changes), instead of reading again.
    last_read: Option<(Instant, B::Installed)>,
    /// When the last pass that wrote ended.
    last_write: Option<Instant>,
    /// When the writer started: changes in the first [`START_GATHER`] are gathered as in a
    /// burst (a start announces every healthy service within a few hundred milliseconds).
    started: Instant,
    /// The identity of the daemon's runtime file when last looked at.
    runtime: Option<FileId>,
    /// The daemon's runtime file, when it is known where it is.
    runtime_file: Option<RuntimeFile>,
    /// The daemon's [`Backend::incarnation`] when last looked at.
    incarnation: Option<u64>,
    /// Why restarts are not noticed at once ([`Status::restart_detection_off`]).
    restart_detection_off: Option<String>,
    /// The periodic pass's interval (restarts are repaired by it at the latest).
    reconcile_interval: Duration,
    /// Until when retries are quick after a restart.
    recovering_until: Option<Instant>,
    /// A restart was seen and is told once the daemon answers a read (a start that failed
    /// at once is not one).
    restart_pending: bool,
    /// While changes are set aside: the daemon's reconfiguration mark at the last look
    /// ([`super::Reconfigurations::mark`]).
    reconfigured: Option<String>,
}

/// Which file a path is, so that a re-created one tells a restart: device, inode and change
/// time (a file system may give a new file the inode number of the one just removed).
type FileId = (u64, u64, i64, i64);

fn file_id(path: &std::path::Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.ctime(), m.ctime_nsec()))
}

fn backoff(failures: u32, urgent: bool) -> Duration {
    let max = if urgent {
        BACKOFF_MAX_URGENT
    } else {
        BACKOFF_MAX
    };
    let exp = failures.saturating_sub(1).min(16);
    BACKOFF_MIN.saturating_mul(1 << exp).min(max)
}

/// When the writer has something to do next: the earliest retry, but never before the next
/// read is allowed (`read_retry_at`), since a pass does nothing until then. A retry that
/// came due while the daemon could not be read (it keeps its time when the failure repeats
/// in the same words) would otherwise wake the loop at once, again and again, until the
/// read's backoff ended: a busy loop for as long as the daemon stays unreadable.
fn next_wake(
    retries: impl Iterator<Item = Instant>,
    read_retry_at: Option<Instant>,
) -> Option<Instant> {
    match (retries.min(), read_retry_at) {
        (Some(retry), Some(read)) => Some(retry.max(read)),
        (retry, read) => retry.or(read),
    }
}

impl<B: Backend> Writer<B> {
    async fn run(mut self, notify: Arc<Notify>, reconcile_interval: Duration) {
        let mut reconcile = tokio::time::interval(reconcile_interval);
        reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reconcile.tick().await;
        self.watch_runtime_file();
        let runtime_file = self.runtime_file.as_ref().map(|f| f.path.clone());
        self.runtime = runtime_file.as_deref().and_then(file_id);
        self.incarnation = self.backend.incarnation().await;
        let mut watch = tokio::time::interval(WATCH_INTERVAL);
        watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = self.next_retry();
            let fresh_read = tokio::select! {
                _ = notify.notified() => {
                    self.gather(&notify).await;
                    false
                }
                _ = sleep_until(next) => false,
                // Level-triggered: re-read the backend periodically and repair what drifted.
                _ = reconcile.tick() => true,
                // A restart of the daemon: look at once instead of at the next reconcile.
                // A new configuration loaded by another hand: retry what is set aside.
                _ = watch.tick() => {
                    let incarnation = self.backend.incarnation().await;
                    if self.restarted(runtime_file.as_deref(), incarnation) {
                        true
                    } else if self.reconfigured_elsewhere().await {
                        false
                    } else {
                        continue;
                    }
                }
            };
            if fresh_read {
                self.last_read = None;
            }
            // Bounded: each pass sets aside or settles at least one prefix, or ends.
            for _ in 0..64 {
                if !self.pass().await {
                    break;
                }
            }
        }
    }

    /// Whether the runtime file was re-created since the last look (the daemon restarted):
    /// then retries become quick for [`RECOVERY`], and the restart is told with the prefixes
    /// to re-announce once the daemon answers a read. A file that went away is not a restart
    /// yet (the daemon is down; its reads fail and say so); one that appears is.
    /// The same for a daemon's [`Backend::incarnation`]: a new number is a new process.
    fn restarted(&mut self, path: Option<&std::path::Path>, incarnation: Option<u64>) -> bool {
        let now_id = path.and_then(file_id);
        let before = std::mem::replace(&mut self.runtime, now_id);
        let before_incarnation = std::mem::replace(&mut self.incarnation, incarnation);
        let restarted = (now_id.is_some() && now_id != before)
            || (incarnation.is_some() && incarnation != before_incarnation);
        if restarted {
            let now = Instant::now();
            self.recovering_until = Some(now + RECOVERY);
            self.read_retry_at = None;
            self.read_failures = 0;
            for retry in self.retry.values_mut() {
                retry.at = now;
            }
            self.restart_pending = true;
        }
        restarted
    }

    /// After a fresh read: whether the runtime file was re-created since the last look (a
    /// restart the once-a-second watch has not seen yet). A daemon read moments after it
    /// started may still be loading its own configuration, so its missing tables must be
    /// judged with the restart known ([`Writer::loading`]), not as failures.
    fn restarted_before_read(&mut self) {
        let Some(path) = self.runtime_file.as_ref().map(|f| f.path.clone()) else {
            return;
        };
        let incarnation = self.incarnation;
        self.restarted(Some(&path), incarnation);
    }

    /// While changes are set aside: whether the daemon loaded a new configuration since the
    /// last look (its mark changed); then their retries are due now instead of after their
    /// backoff. Costs nothing while nothing is set aside.
    async fn reconfigured_elsewhere(&mut self) -> bool {
        if self.retry.is_empty() {
            self.reconfigured = None;
            return false;
        }
        let Some(reconfigurations) = self.backend.reconfigurations() else {
            return false;
        };
        let Some(mark) = reconfigurations.mark().await else {
            return false;
        };
        let changed = self.reconfigured.as_ref().is_some_and(|seen| *seen != mark);
        self.reconfigured = Some(mark);
        if changed {
            tracing::info!(
                backend = %self.backend.id(),
                set_aside = self.retry.len(),
                "{} loaded a new configuration: retrying the changes set aside after a failure now",
                self.backend.id().kind.daemon()
            );
            let now = Instant::now();
            for retry in self.retry.values_mut() {
                retry.at = now;
            }
        }
        changed
    }

    /// At start: where the daemon's runtime file is, said in the log (a warning when it
    /// cannot be known, also kept for `status`).
    fn watch_runtime_file(&mut self) {
        let id = self.backend.id().clone();
        let daemon = self.backend.id().kind.daemon();
        match self.backend.runtime_file() {
            Ok(Some(file)) => {
                tracing::info!(
                    backend = %id,
                    file = %file.path.display(),
                    "restart detection: a restart of {daemon} is noticed when {} is re-created (where: {})",
                    file.path.display(),
                    file.origin
                );
                self.runtime_file = Some(file);
                self.detection_gauge(true);
            }
            Ok(None) => {}
            Err(why) => self.detection_off(why.to_string()),
        }
    }

    fn detection_gauge(&self, on: bool) {
        let id = self.backend.id();
        crate::observe::metrics::set(
            "anycastd_routing_restart_detection",
            &[("backend", id.kind.name()), ("endpoint", &id.instance)],
            if on { 1.0 } else { 0.0 },
        );
    }

    fn detection_off(&mut self, why: String) {
        let text = format!(
            "restart detection off for {}: {why}; a {} restart is repaired within reconcile_interval ({})",
            self.backend.id().kind.instance_text(&self.backend.id().instance),
            self.backend.id().kind.daemon(),
            seconds(self.reconcile_interval),
        );
        tracing::warn!(backend = %self.backend.id(), "{text}");
        self.restart_detection_off = Some(text);
        self.detection_gauge(false);
    }

    /// After a read the daemon answered: its runtime file must be there, or the writer
    /// watches another daemon's (a wrapper that reaches a bgpd elsewhere).
    fn check_runtime_file(&mut self) {
        let Some(file) = &self.runtime_file else {
            return;
        };
        let there = file.path.exists();
        match (there, self.restart_detection_off.is_some()) {
            (false, false) => {
                let why = format!(
                    "{} ({}) does not exist although {} answers; {}",
                    file.path.display(),
                    file.origin,
                    self.backend.id().kind.daemon(),
                    file.hint
                );
                self.detection_off(why);
            }
            (true, true) => {
                tracing::info!(
                    backend = %self.backend.id(),
                    "restart detection on again: {} exists",
                    file.path.display()
                );
                self.restart_detection_off = None;
                self.detection_gauge(true);
            }
            _ => {}
        }
    }

    /// The daemon answered a read after a restart: tell it, with the prefixes to re-announce.
    fn tell_restart(&mut self) {
        if !std::mem::take(&mut self.restart_pending) {
            return;
        }
        let announced = lock(&self.shared)
            .desired
            .iter()
            .filter(|(_, e)| e.decision.announce)
            .map(|(k, e)| (e.decision.service.clone(), k.clone()))
            .collect();
        let _ = self.reports.send(Notice::Restarted(Restart {
            backend: self.backend.id().clone(),
            daemon: self.backend.id().kind.daemon(),
            announced,
        }));
    }

    /// Whether retries are quick: at a shutdown, and for a while after a restart.
    fn hurried(&self, urgent: bool) -> bool {
        urgent || self.recovering_until.is_some_and(|t| Instant::now() < t)
    }

    /// In a burst (a pass wrote moments ago), wait until the changes pause, so that the next
    /// pass carries them all; outside a burst, and when shutting down, return at once.
    async fn gather(&self, notify: &Notify) {
        let in_burst = self.last_write.is_some_and(|at| at.elapsed() < BURST)
            || self.started.elapsed() < START_GATHER;
        if !in_burst || lock(&self.shared).urgent {
            return;
        }
        let until = Instant::now() + GATHER_MAX;
        loop {
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep(GATHER_QUIET) => return,
                _ = tokio::time::sleep_until(until) => return,
            }
        }
    }

    fn next_retry(&self) -> Option<Instant> {
        next_wake(self.retry.values().map(|r| r.at), self.read_retry_at)
    }

    fn report(&self, key: &PrefixKey, decision: &Decision, outcome: Outcome) {
        let _ = self.reports.send(Notice::Outcome(Report {
            backend: self.backend.id().clone(),
            key: key.clone(),
            decision: decision.clone(),
            outcome,
        }));
    }

    fn snapshot(&self) -> (u64, bool, Vec<(PrefixKey, Decision, bool)>) {
        let shared = lock(&self.shared);
        let entries = shared
            .desired
            .iter()
            .map(|(k, e)| (k.clone(), e.decision.clone(), e.reported))
            .collect();
        (shared.generation, shared.urgent, entries)
    }

    fn mark_reported(&self, key: &PrefixKey, decision: &Decision) {
        if let Some(entry) = lock(&self.shared).desired.get_mut(key) {
            if entry.decision == *decision {
                entry.reported = true;
            }
        }
    }

    fn unmark_reported(&self, key: &PrefixKey, decision: &Decision) {
        if let Some(entry) = lock(&self.shared).desired.get_mut(key) {
            if entry.decision == *decision {
                entry.reported = false;
            }
        }
    }

    /// Set a prefix aside after a failure; report the error when it is new for the decision.
    fn fail(&mut self, key: &PrefixKey, decision: &Decision, error: String, urgent: bool) {
        let failures = match self.retry.get(key) {
            Some(r) if r.decision == *decision => r.failures + 1,
            _ => 1,
        };
        let changed = self
            .retry
            .get(key)
            .is_none_or(|r| r.decision != *decision || r.error != error);
        if changed {
            self.report(key, decision, Outcome::Failed(error.clone()));
        }
        self.retry.insert(
            key.clone(),
            Retry {
                decision: decision.clone(),
                failures,
                at: Instant::now() + backoff(failures, urgent),
                error,
            },
        );
    }

    /// Whether the daemon restarted less than [`LOADING`] ago: its own configuration may
    /// still be loading (a daemon fed its configuration after it starts), so a missing table is not
    /// a failure yet.
    fn loading(&self, now: Instant) -> bool {
        self.recovering_until
            .is_some_and(|until| now + RECOVERY < until + LOADING)
    }

    /// A table missing while the daemon loads its configuration after a restart: retried as
    /// quickly as during the recovery, reported only if it is still missing afterwards.
    fn wait_for_loading(&mut self, key: &PrefixKey, decision: &Decision, error: String) {
        let failures = match self.retry.get(key) {
            Some(r) if r.decision == *decision => r.failures,
            _ => 0,
        };
        self.retry.insert(
            key.clone(),
            Retry {
                decision: decision.clone(),
                failures,
                at: Instant::now() + BACKOFF_MAX_URGENT,
                error: format!(
                    "{} restarted moments ago and may still be loading its configuration: {error}",
                    self.backend.id().kind.daemon()
                ),
            },
        );
    }

    /// A prefix is in its desired state: report it once per decision.
    fn settle(&mut self, key: &PrefixKey, decision: &Decision, reported: bool) {
        self.retry.remove(key);
        if !reported {
            let outcome = if self.sent.get(key) == Some(decision) {
                Outcome::Applied
            } else {
                Outcome::AlreadySo
            };
            // Marked before it is told, so that whoever sees the outcome sees the handle
            // call it settled ([`WriterHandle::unsettled`]).
            self.mark_reported(key, decision);
            self.report(key, decision, outcome);
        }
        self.sent.remove(key);
    }

    /// One read-diff-write-verify pass. Returns true if another pass should follow at once.
    async fn pass(&mut self) -> bool {
        let (generation, urgent, entries) = self.snapshot();
        let urgent = self.hurried(urgent);
        if urgent {
            let now = Instant::now();
            for retry in self.retry.values_mut() {
                retry.at = retry.at.min(now + BACKOFF_MAX_URGENT);
            }
        }
        if entries.is_empty() {
            return false;
        }
        let now = Instant::now();
        if self.read_retry_at.is_some_and(|at| at > now) {
            return false;
        }
        let reuse = self
            .last_read
            .take()
            .filter(|(at, _)| at.elapsed() < READ_BACK_REUSE)
            .map(|(_, installed)| installed);
        let fresh = reuse.is_none();
        let installed = match reuse {
            Some(installed) => installed,
            None => match self.backend.read().await {
                Ok(installed) => installed,
                Err(e) => {
                    self.gone(generation, urgent, &entries, e).await;
                    return false;
                }
            },
        };
        self.read_failures = 0;
        self.read_retry_at = None;
        if fresh {
            self.restarted_before_read();
        }
        self.tell_restart();
        if fresh {
            self.check_runtime_file();
        }

        let plan = self.diff(&installed, &entries, urgent, now);
        if fresh {
            // The tables this pass changes nothing in are tidied now, also while another
            // table's change keeps failing and being retried (which could otherwise starve
            // it, with quick retries after a restart).
            let busy: Vec<&Place> = plan.iter().map(|((place, _), _)| place).collect();
            let wanted: Vec<(PrefixKey, bool)> = entries
                .iter()
                .filter(|(k, _, _)| !busy.contains(&&k.0))
                .map(|(k, d, _)| (k.clone(), d.announce))
                .collect();
            if let Some(kept) = self.backend.kept_beside().filter(|_| !wanted.is_empty()) {
                kept.tidy(&installed, &wanted).await;
            }
        }
        if plan.is_empty() {
            self.publish(generation, &installed, &entries);
            return false;
        }
        let changes: Vec<Change> = plan
            .iter()
            .map(|((place, prefix), decision)| Change {
                attributes: decision.attributes.clone(),
                place: place.clone(),
                prefix: *prefix,
                announce: decision.announce,
            })
            .collect();

        // Write, batch by batch.
        let withdrawing: Vec<PrefixKey> = entries
            .iter()
            .filter(|(_, d, _)| !d.announce)
            .map(|(k, _, _)| k.clone())
            .collect();
        let mut failed: Vec<(std::ops::Range<usize>, String)> = Vec::new();
        let batches = self.backend.batches(&installed, &changes);
        let written = batches.len();
        for batch in batches {
            for (key, decision) in &plan[batch.clone()] {
                self.sent.insert(key.clone(), decision.clone());
            }
            if let Err(e) = self
                .backend
                .apply(&installed, &changes[batch.clone()], &withdrawing)
                .await
            {
                failed.push((batch, e.to_string()));
            }
        }

        // A write the daemon took loads a new configuration too (a refused one does not):
        // take the mark afresh at the next look.
        if failed.len() < written {
            self.reconfigured = None;
        }

        // Verify. A daemon that went away since the first read (stopped meanwhile) is
        // told what is wanted as before that read, so that a change this pass could not
        // verify does not come back with it.
        let after = match self.backend.read().await {
            Ok(installed) => installed,
            Err(e) => {
                self.gone(generation, urgent, &entries, e).await;
                return false;
            }
        };
        let again = self.verify(&plan, &after, &failed, urgent);
        self.publish(generation, &after, &entries);
        let now = Instant::now();
        self.last_read = Some((now, after));
        self.last_write = Some(now);
        again
    }

    /// The backend could not be read: record what is wanted wherever it reads it when it
    /// returns ([`super::KeptBeside::offline`]), then fail the pass's decisions with the error.
    async fn gone(
        &mut self,
        generation: u64,
        urgent: bool,
        entries: &[(PrefixKey, Decision, bool)],
        error: B::Error,
    ) {
        let wanted: Vec<(PrefixKey, bool)> = entries
            .iter()
            .map(|(k, d, _)| (k.clone(), d.announce))
            .collect();
        if let Some(kept) = self.backend.kept_beside() {
            kept.offline(&wanted).await;
        }
        self.unreadable(generation, urgent, entries, error);
    }

    /// Settle what is as decided, report drift, set aside what has no table, and return the
    /// changes to make: withdrawals first, then announcements, each ordered by table, family
    /// and prefix.
    fn diff(
        &mut self,
        installed: &B::Installed,
        entries: &[(PrefixKey, Decision, bool)],
        urgent: bool,
        now: Instant,
    ) -> Vec<(PrefixKey, Decision)> {
        let mut plan: Vec<(PrefixKey, Decision)> = Vec::new();
        for (key, decision, reported) in entries {
            if !installed.has_table(&key.0) {
                if decision.announce {
                    if *reported {
                        // It was applied and its table is gone (the daemon restarted without
                        // it): drift, not a failure of that old decision.
                        self.report(key, decision, Outcome::Drift { present: false });
                        self.unmark_reported(key, decision);
                    }
                    let error = self.backend.missing_table(&key.0).to_string();
                    if self.loading(now) {
                        self.wait_for_loading(key, decision, error);
                    } else {
                        self.fail(key, decision, error, urgent);
                    }
                } else {
                    // No table, so certainly not in it: withdrawn already.
                    self.settle(key, decision, *reported);
                }
                continue;
            }
            if as_decided(installed, key, decision) {
                self.settle(key, decision, *reported);
                continue;
            }
            let present = installed.contains(&key.0, &key.1);
            if *reported {
                // It was applied (or already so) and is not any more.
                let outcome = if present && decision.announce {
                    Outcome::AttributesDrift {
                        installed: installed.attributes(&key.0, &key.1),
                    }
                } else {
                    Outcome::Drift { present }
                };
                self.report(key, decision, outcome);
                self.unmark_reported(key, decision);
            }
            if let Some(retry) = self.retry.get(key) {
                if retry.decision == *decision && retry.at > now {
                    continue;
                }
            }
            plan.push((key.clone(), decision.clone()));
        }
        plan.sort_by(|a, b| {
            (a.1.announce, &a.0 .0, a.0 .1.addr().is_ipv6(), a.0 .1).cmp(&(
                b.1.announce,
                &b.0 .0,
                b.0 .1.addr().is_ipv6(),
                b.0 .1,
            ))
        });
        plan
    }

    /// After the read-back: settle what took, and set aside the first change of each failed
    /// batch that did not (the one the call stopped at) with the call's error. The others of
    /// a failed batch were never tried: true, so that another pass follows at once.
    fn verify(
        &mut self,
        plan: &[(PrefixKey, Decision)],
        after: &B::Installed,
        failed: &[(std::ops::Range<usize>, String)],
        urgent: bool,
    ) -> bool {
        let mut again = false;
        let mut culprit_found: Vec<bool> = vec![false; failed.len()];
        for (i, (key, decision)) in plan.iter().enumerate() {
            if as_decided(after, key, decision) {
                self.settle(key, decision, false);
                continue;
            }
            match failed.iter().position(|(batch, _)| batch.contains(&i)) {
                Some(b) if !culprit_found[b] => {
                    culprit_found[b] = true;
                    let error = failed[b].1.clone();
                    self.fail(key, decision, error, urgent);
                }
                Some(_) => again = true,
                None if decision.announce && after.contains(&key.0, &key.1) => {
                    // Announced, but the read-back shows other attributes.
                    let error = format!(
                        "{} shows it announced with {}, not {}",
                        self.backend.id().kind.read_source(),
                        after.attributes(&key.0, &key.1),
                        decision.attributes
                    );
                    self.fail(key, decision, error, urgent);
                }
                None => {
                    let error = self.backend.not_applied(decision.announce).to_string();
                    self.fail(key, decision, error, urgent);
                }
            }
        }
        again
    }

    /// The backend could not be read: every decision it has not shown yet fails with why,
    /// and the next read waits for a backoff.
    fn unreadable(
        &mut self,
        generation: u64,
        urgent: bool,
        entries: &[(PrefixKey, Decision, bool)],
        error: B::Error,
    ) {
        self.read_failures += 1;
        self.read_retry_at = Some(Instant::now() + backoff(self.read_failures, urgent));
        let text = format!(
            "cannot read {}: {error}",
            self.backend.id().kind.read_source()
        );
        let mut pending = Vec::new();
        let mut failed = Vec::new();
        for (key, decision, reported) in entries {
            if *reported {
                // The backend showed it before: it stays so as far as anyone knows (it is
                // not listed as left at a stop).
                continue;
            }
            // Not applied, not verified: a failure like any other, with what is known of a
            // withdrawal all the same (never "already so": nothing was read).
            let error = match self.backend.known_while_down(&error, key) {
                Some(known) if !decision.announce => format!("{text}; {known}"),
                _ => text.clone(),
            };
            let changed = self
                .retry
                .get(key)
                .is_none_or(|r| r.decision != *decision || r.error != error);
            if changed {
                failed.push((key, decision, error.clone()));
                self.retry.insert(
                    key.clone(),
                    Retry {
                        decision: decision.clone(),
                        failures: self.read_failures,
                        at: Instant::now() + backoff(self.read_failures, urgent),
                        error: error.clone(),
                    },
                );
            }
            pending.push((key.clone(), decision.clone(), Some(error)));
        }
        self.status.send_replace(Status {
            generation,
            pending,
            read_error: Some(text),
            restart_detection_off: self.restart_detection_off.clone(),
        });
        // Told after the status, so that whoever sees the failure sees the status say it.
        for (key, decision, error) in failed {
            self.report(key, decision, Outcome::Failed(error));
        }
    }

    fn publish(
        &self,
        generation: u64,
        installed: &B::Installed,
        entries: &[(PrefixKey, Decision, bool)],
    ) {
        let id = self.backend.id();
        crate::observe::metrics::set(
            "anycastd_routing_last_reconcile_timestamp_seconds",
            &[("backend", id.kind.name()), ("endpoint", &id.instance)],
            crate::journal_handle::now_ms() as f64 / 1000.0,
        );
        let pending = entries
            .iter()
            .filter(|(key, decision, _)| !as_decided(installed, key, decision))
            .map(|(key, decision, _)| {
                let error = self.retry.get(key).map(|r| r.error.clone());
                (key.clone(), decision.clone(), error)
            })
            .collect();
        self.status.send_replace(Status {
            generation,
            pending,
            read_error: None,
            restart_detection_off: self.restart_detection_off.clone(),
        });
    }
}

/// A duration as the config writes it (`30s`, `1.5s`).
fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::memory::Memory;
    use ipnet::IpNet;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(1, false), Duration::from_millis(500));
        assert_eq!(backoff(2, false), Duration::from_secs(1));
        assert_eq!(backoff(20, false), BACKOFF_MAX);
        assert_eq!(backoff(20, true), BACKOFF_MAX_URGENT);
    }

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    fn decision(announce: bool, seq: u64) -> Decision {
        Decision {
            attributes: Default::default(),
            service: "dns".into(),
            announce,
            decision_seq: seq,
        }
    }

    /// A memory backend with a default table and a table "blue", and its writer.
    fn writer(
        name: &str,
        reconcile: Duration,
    ) -> (Memory, WriterHandle, mpsc::UnboundedReceiver<Notice>) {
        let memory = Memory::named(name);
        memory.add_table(None);
        memory.add_table(Some("blue"));
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = spawn(memory.clone(), reconcile, tx);
        (memory, handle, rx)
    }

    async fn report(rx: &mut mpsc::UnboundedReceiver<Notice>) -> Report {
        loop {
            let notice = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("a report within 20 s")
                .expect("the writer is running");
            if let Notice::Outcome(report) = notice {
                return report;
            }
        }
    }

    /// The reports until every key in `keys` has a final one (applied or already so).
    async fn settled(rx: &mut mpsc::UnboundedReceiver<Notice>, keys: &[PrefixKey]) -> Vec<Report> {
        let mut reports = Vec::new();
        while !keys.iter().all(|k| {
            reports.iter().any(|r: &Report| {
                r.key == *k && matches!(r.outcome, Outcome::Applied | Outcome::AlreadySo)
            })
        }) {
            reports.push(report(rx).await);
        }
        reports
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_retry_due_while_the_daemon_is_unreadable_waits_for_the_next_read() {
        let now = Instant::now();
        let past = now - Duration::from_secs(5);
        let read = now + Duration::from_secs(2);
        // A retry already due and a read not allowed for 2 s: wake at the read, not at once
        // (the loop would spin until then: a pass does nothing before the read).
        assert_eq!(next_wake([past].into_iter(), Some(read)), Some(read));
        // Retries later than the read: at the earliest of them; one due and one later: at
        // the read.
        let later = now + Duration::from_secs(9);
        assert_eq!(next_wake([later].into_iter(), Some(read)), Some(later));
        assert_eq!(next_wake([later, past].into_iter(), Some(read)), Some(read));
        // Nothing read-limited: the earliest retry; nothing at all: none.
        assert_eq!(next_wake([later, past].into_iter(), None), Some(past));
        assert_eq!(next_wake(std::iter::empty(), Some(read)), Some(read));
        assert_eq!(next_wake(std::iter::empty(), None), None);
    }

    #[tokio::test]
    async fn withdrawals_go_first_and_every_decision_gets_its_outcome() {
        let (memory, handle, mut rx) = writer("writer-order", HOUR);
        memory.set(None, net("203.0.113.1/32"), true);
        let keys: Vec<PrefixKey> = vec![
            (Place::default(), net("203.0.113.1/32")),
            (Place::named("blue"), net("2001:db8::2/128")),
            (Place::default(), net("203.0.113.3/32")),
            (Place::default(), net("203.0.113.4/32")),
        ];
        handle.set(vec![
            (keys[0].clone(), decision(false, 1)),
            (keys[1].clone(), decision(true, 1)),
            (keys[2].clone(), decision(true, 1)),
            (keys[3].clone(), decision(false, 1)),
        ]);
        let reports = settled(&mut rx, &keys).await;
        let outcome = |key: &PrefixKey| {
            reports
                .iter()
                .find(|r| r.key == *key)
                .map(|r| r.outcome.clone())
        };
        assert_eq!(outcome(&keys[0]), Some(Outcome::Applied));
        assert_eq!(outcome(&keys[1]), Some(Outcome::Applied));
        assert_eq!(outcome(&keys[2]), Some(Outcome::Applied));
        assert_eq!(outcome(&keys[3]), Some(Outcome::AlreadySo), "never there");
        let applied: Vec<Change> = memory.applied().concat();
        assert_eq!(
            applied,
            [
                Change {
                    attributes: Default::default(),
                    place: Place::default(),
                    prefix: net("203.0.113.1/32"),
                    announce: false
                },
                Change {
                    attributes: Default::default(),
                    place: Place::default(),
                    prefix: net("203.0.113.3/32"),
                    announce: true
                },
                Change {
                    attributes: Default::default(),
                    place: Place::named("blue"),
                    prefix: net("2001:db8::2/128"),
                    announce: true
                },
            ],
            "withdrawals first, then by table: nothing asked twice, nothing already so asked"
        );
        assert!(handle.unsettled().is_empty());
        assert_eq!(
            crate::routing::memory::tables(&memory.installed()),
            BTreeMap::from([
                (None, vec!["203.0.113.3/32".to_owned()]),
                (Some("blue".into()), vec!["2001:db8::2/128".to_owned()]),
            ])
        );
    }

    #[tokio::test]
    async fn batches_follow_the_backends_limit_and_a_missing_table_fails_only_its_prefix() {
        let (memory, handle, mut rx) = writer("writer-batches", HOUR);
        memory.max_batch(2);
        let good: Vec<PrefixKey> = (1..=5)
            .map(|i| (Place::default(), net(&format!("198.51.100.{i}/32"))))
            .collect();
        let orphan: PrefixKey = (Place::named("red"), net("192.0.2.1/32"));
        let mut items: Vec<_> = good
            .iter()
            .map(|k| (k.clone(), decision(true, 7)))
            .collect();
        items.push((orphan.clone(), decision(true, 7)));
        handle.set(items);
        let mut reports = settled(&mut rx, &good).await;
        // The orphan's outcome may come after the last good one.
        while !reports.iter().any(|r| r.key == orphan) {
            reports.push(report(&mut rx).await);
        }
        let failed: Vec<&Report> = reports
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
            .collect();
        assert_eq!(failed.len(), 1, "{reports:?}");
        assert_eq!(failed[0].key, orphan);
        assert_eq!(
            failed[0].outcome,
            Outcome::Failed("no table Some(\"red\") in the memory backend".into())
        );
        assert_eq!(
            memory.applied().iter().map(Vec::len).collect::<Vec<_>>(),
            [2, 2, 1],
            "five changes in calls of at most two; the orphan is never sent"
        );
        // The writer settles a change just after reporting it: wait for the last one.
        for _ in 0..200 {
            if handle.unsettled() == vec![orphan.clone()] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(handle.unsettled(), vec![orphan]);
    }

    #[tokio::test]
    async fn a_call_that_fails_midway_sets_aside_its_culprit_and_retries_the_rest_at_once() {
        let (memory, handle, mut rx) = writer("writer-culprit", HOUR);
        let keys: Vec<PrefixKey> = (1..=3)
            .map(|i| (Place::default(), net(&format!("203.0.113.{i}/32"))))
            .collect();
        memory.fail(keys[1].1, Some("% Unknown command"));
        handle.set(
            keys.iter()
                .map(|k| (k.clone(), decision(true, 3)))
                .collect(),
        );
        let mut reports = Vec::new();
        while !reports
            .iter()
            .any(|r: &Report| r.key == keys[2] && r.outcome == Outcome::Applied)
        {
            reports.push(report(&mut rx).await);
        }
        assert!(reports.contains(&Report {
            backend: BackendId::memory("writer-culprit"),
            key: keys[1].clone(),
            decision: decision(true, 3),
            outcome: Outcome::Failed("% Unknown command".into()),
        }));
        assert!(
            !reports
                .iter()
                .any(|r| r.key != keys[1] && matches!(r.outcome, Outcome::Failed(_))),
            "only the line the call stopped at failed: {reports:?}"
        );
        // Once the backend takes it, the backoff retry applies it.
        memory.fail(keys[1].1, None);
        let reports = settled(&mut rx, &keys[1..2]).await;
        assert_eq!(reports.last().map(|r| &r.outcome), Some(&Outcome::Applied));
        assert!(memory.installed().contains(&Place::default(), &keys[1].1));
    }

    #[tokio::test]
    async fn drift_is_reported_and_repaired_by_the_periodic_read() {
        let (memory, handle, mut rx) = writer("writer-drift", Duration::from_millis(200));
        let key: PrefixKey = (Place::named("blue"), net("203.0.113.9/32"));
        handle.set(vec![(key.clone(), decision(true, 4))]);
        settled(&mut rx, std::slice::from_ref(&key)).await;
        // Someone removes it by hand.
        memory.set(Some("blue"), key.1, false);
        let drift = report(&mut rx).await;
        assert_eq!(drift.outcome, Outcome::Drift { present: false });
        assert_eq!(
            drift.decision,
            decision(true, 4),
            "the decision it drifted from"
        );
        let repaired = report(&mut rx).await;
        assert_eq!(repaired.outcome, Outcome::Applied);
        assert!(memory.installed().contains(&key.0, &key.1));
    }

    fn deprefer() -> crate::bgp::Attributes {
        crate::bgp::Attributes {
            as_path_prepend: 3,
            med: Some(1000),
            communities: vec![crate::bgp::Community(65000, 666)],
            large_communities: vec![crate::bgp::LargeCommunity(65000, 1, 666)],
        }
    }

    fn at_level(seq: u64, attributes: crate::bgp::Attributes) -> Decision {
        Decision {
            attributes,
            ..decision(true, seq)
        }
    }

    #[tokio::test]
    async fn a_level_switch_is_an_announcement_with_the_new_attributes_never_a_withdrawal() {
        let (memory, handle, mut rx) = writer("writer-levels", HOUR);
        let key: PrefixKey = (Place::default(), net("203.0.113.40/32"));
        handle.set(vec![(key.clone(), at_level(1, Default::default()))]);
        settled(&mut rx, std::slice::from_ref(&key)).await;
        let drain = deprefer().with(crate::bgp::GRACEFUL_SHUTDOWN);
        for (seq, level) in [(2, deprefer()), (3, drain.clone()), (4, Default::default())] {
            handle.set(vec![(key.clone(), at_level(seq, level.clone()))]);
            let reports = settled(&mut rx, std::slice::from_ref(&key)).await;
            assert_eq!(
                reports.last().map(|r| &r.outcome),
                Some(&Outcome::Applied),
                "{level}"
            );
            assert_eq!(memory.installed().attributes(&key.0, &key.1), level);
            assert_eq!(
                memory.applied().last().cloned(),
                Some(vec![Change {
                    place: key.0.clone(),
                    prefix: key.1,
                    announce: true,
                    attributes: level.clone(),
                }]),
                "one announcement with the new attributes"
            );
        }
        assert!(
            memory.applied().concat().iter().all(|c| c.announce),
            "never withdrawn on the way: {:?}",
            memory.applied()
        );
        // The same level again changes nothing.
        handle.set(vec![(key.clone(), at_level(5, Default::default()))]);
        let reports = settled(&mut rx, std::slice::from_ref(&key)).await;
        assert_eq!(
            reports.last().map(|r| &r.outcome),
            Some(&Outcome::AlreadySo)
        );
        assert_eq!(memory.applied().len(), 4);
    }

    #[tokio::test]
    async fn a_read_back_showing_other_attributes_is_not_applied() {
        let (memory, handle, mut rx) = writer("writer-levels-dropped", HOUR);
        let key: PrefixKey = (Place::default(), net("203.0.113.41/32"));
        memory.drop_attributes(true);
        handle.set(vec![(key.clone(), at_level(1, deprefer()))]);
        let failed = report(&mut rx).await;
        assert_eq!(
            failed.outcome,
            Outcome::Failed(
                "the memory backend shows it announced with plain, not as-path +3, MED 1000, community 65000:666, large community 65000:1:666"
                    .into()
            )
        );
        assert!(handle.unsettled().contains(&key));
        // Once the backend keeps them, the retry applies it.
        memory.drop_attributes(false);
        let reports = settled(&mut rx, std::slice::from_ref(&key)).await;
        assert_eq!(reports.last().map(|r| &r.outcome), Some(&Outcome::Applied));
        assert_eq!(memory.installed().attributes(&key.0, &key.1), deprefer());
    }

    #[tokio::test]
    async fn other_attributes_found_by_the_periodic_read_are_drift_repaired_in_place() {
        let (memory, handle, mut rx) = writer("writer-levels-drift", Duration::from_millis(200));
        let key: PrefixKey = (Place::named("blue"), net("203.0.113.42/32"));
        handle.set(vec![(key.clone(), at_level(1, deprefer()))]);
        settled(&mut rx, std::slice::from_ref(&key)).await;
        let calls = memory.applied().len();
        // Someone puts the plain route back by hand.
        memory.set_attributes(Some("blue"), key.1, Default::default());
        let drift = report(&mut rx).await;
        assert_eq!(
            drift.outcome,
            Outcome::AttributesDrift {
                installed: Default::default()
            }
        );
        assert_eq!(drift.decision, at_level(1, deprefer()));
        let repaired = report(&mut rx).await;
        assert_eq!(repaired.outcome, Outcome::Applied);
        assert_eq!(memory.installed().attributes(&key.0, &key.1), deprefer());
        assert_eq!(
            memory.applied()[calls..].concat(),
            [Change {
                place: key.0.clone(),
                prefix: key.1,
                announce: true,
                attributes: deprefer(),
            }],
            "repaired by an announcement, not a withdrawal and an announcement"
        );
    }

    #[tokio::test]
    async fn a_level_replaced_before_it_was_applied_is_superseded() {
        let (memory, handle, mut rx) = writer("writer-levels-superseded", HOUR);
        memory.unreadable(Some("socket gone"));
        let key: PrefixKey = (Place::default(), net("203.0.113.43/32"));
        handle.set(vec![(key.clone(), at_level(1, deprefer()))]);
        assert!(matches!(report(&mut rx).await.outcome, Outcome::Failed(_)));
        handle.set(vec![(key.clone(), at_level(2, Default::default()))]);
        let superseded = report(&mut rx).await;
        assert_eq!(
            (superseded.decision, superseded.outcome),
            (at_level(1, deprefer()), Outcome::Superseded)
        );
    }

    #[tokio::test]
    async fn a_new_configuration_loaded_elsewhere_retries_what_is_set_aside_at_once() {
        let (memory, handle, mut rx) = writer("writer-reconfigured", HOUR);
        let key: PrefixKey = (Place::default(), net("203.0.113.20/32"));
        memory.fail(key.1, Some("8002 bird.conf:25:1 syntax error"));
        memory.reconfigure("00:07:30.569");
        handle.set(vec![(key.clone(), decision(true, 1))]);
        assert!(matches!(report(&mut rx).await.outcome, Outcome::Failed(_)));
        // Four attempts (at 0, 0.5, 1.5 and 3.5 s): the next is 4 s after the fourth.
        let attempts = || memory.calls().iter().filter(|c| *c == "apply").count();
        while attempts() < 4 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The operator fixes the cause; while the mark stays, a look at it retries nothing.
        memory.fail(key.1, None);
        let looks = |mark: &str| {
            memory
                .calls()
                .iter()
                .skip_while(|c| *c != "apply")
                .filter(|c| c.as_str() == format!("mark {mark}"))
                .count()
        };
        let before = looks("00:07:30.569");
        while looks("00:07:30.569") == before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(attempts(), 4, "an unchanged mark retries nothing early");
        // ... and loads the new configuration: the next look at the mark retries at once.
        memory.reconfigure("00:09:12.004");
        assert_eq!(settled(&mut rx, std::slice::from_ref(&key)).await.len(), 1);
        let calls = memory.calls();
        let first_look = calls
            .iter()
            .position(|c| c == "mark 00:09:12.004")
            .expect("the new mark was looked at");
        assert_eq!(
            calls[first_look + 1..],
            ["apply".to_owned()],
            "the look that saw the new mark was followed by the retry, before any other look"
        );
        assert!(memory.installed().contains(&Place::default(), &key.1));
    }

    /// Right after a restart the daemon may still be loading its own configuration
    /// (watchfrr's `vtysh -b`): a table missing then is retried quickly without a failure
    /// reported ("no BGP instance" was logged and journaled for a table that came 0.2 s
    /// later), and the announcement is applied once the table is there.
    #[tokio::test]
    async fn a_table_missing_while_the_daemon_loads_after_a_restart_is_not_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bgpd.vty");
        std::fs::write(&socket, "1").unwrap();
        let memory = Memory::named("writer-loading");
        memory.add_table(None);
        memory.runtime_file(&socket);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let handle = spawn(memory.clone(), HOUR, tx);
        let first: PrefixKey = (Place::default(), net("203.0.113.29/32"));
        handle.set(vec![(first.clone(), decision(true, 8))]);
        assert_eq!(report(&mut rx).await.outcome, Outcome::Applied);
        let key: PrefixKey = (Place::named("blue"), net("203.0.113.30/32"));
        // Restarted: the socket is new, and the table comes a moment after the first read.
        std::fs::remove_file(&socket).unwrap();
        std::fs::write(&socket, "2").unwrap();
        let restarted = match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
            Ok(Some(Notice::Restarted(r))) => r,
            other => panic!("no restart noticed: {other:?}"),
        };
        assert_eq!(restarted.announced, [("dns".to_owned(), first.clone())]);
        handle.set(vec![
            (first, decision(true, 8)),
            (key.clone(), decision(true, 9)),
        ]);
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(rx.try_recv().is_err(), "nothing reported while loading");
        memory.add_table(Some("blue"));
        let applied = report(&mut rx).await;
        assert_eq!(applied.outcome, Outcome::Applied);
        assert!(memory.installed().contains(&key.0, &key.1));
    }

    /// A restart between two looks of the once-a-second watch, with a decision read at once:
    /// the read sees the new daemon still loading (its table missing), and the re-created
    /// socket is looked at right after that read, so the missing table is waited for, not
    /// reported as a failure ("no BGP instance" was logged at a test's start, 0.25 s before
    /// the watch saw the restart).
    #[tokio::test]
    async fn a_restart_seen_first_by_a_read_is_a_restart_not_a_missing_table() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bgpd.vty");
        std::fs::write(&socket, "1").unwrap();
        let memory = Memory::named("writer-restart-in-read");
        memory.add_table(None);
        memory.runtime_file(&socket);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let handle = spawn(memory.clone(), HOUR, tx);
        let first: PrefixKey = (Place::default(), net("203.0.113.31/32"));
        handle.set(vec![(first.clone(), decision(true, 8))]);
        assert_eq!(report(&mut rx).await.outcome, Outcome::Applied);
        // Just after a watch look: the next one is almost a second away.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        std::fs::remove_file(&socket).unwrap();
        std::fs::write(&socket, "2").unwrap();
        let key: PrefixKey = (Place::named("blue"), net("203.0.113.32/32"));
        handle.set(vec![
            (first, decision(true, 8)),
            (key.clone(), decision(true, 9)),
        ]);
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(Notice::Restarted(_))) => {}
            other => panic!("the restart was not told first: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(rx.try_recv().is_err(), "nothing reported while loading");
        memory.add_table(Some("blue"));
        assert_eq!(report(&mut rx).await.outcome, Outcome::Applied);
        assert!(memory.installed().contains(&key.0, &key.1));
    }

    /// The daemon goes away between a pass's read and its write (BIRD stopped meanwhile):
    /// the verifying read fails, and the backend is told what is wanted (BIRD: its include
    /// files leave the withdrawal out), as when the first read fails, so that a daemon that
    /// starts before the retry does not come back with what health withdrew.
    #[tokio::test]
    async fn a_daemon_gone_between_read_and_write_is_told_what_is_wanted() {
        let (memory, handle, mut rx) = writer("writer-gone-midway", HOUR);
        let key: PrefixKey = (Place::default(), net("203.0.113.20/32"));
        memory.set(None, key.1, true);
        memory.vanish_on_apply("socket gone");
        handle.set(vec![(key.clone(), decision(false, 7))]);
        let failed = report(&mut rx).await;
        assert_eq!(
            failed.outcome,
            Outcome::Failed("cannot read the memory backend: socket gone".into())
        );
        assert_eq!(
            memory.calls(),
            ["apply".to_owned(), "offline 203.0.113.20/32-".to_owned()]
        );
    }

    #[tokio::test]
    async fn a_decision_replaced_before_it_was_applied_is_superseded() {
        let (memory, handle, mut rx) = writer("writer-superseded", HOUR);
        memory.unreadable(Some("socket gone"));
        let key: PrefixKey = (Place::default(), net("203.0.113.10/32"));
        handle.set(vec![(key.clone(), decision(true, 5))]);
        let failed = report(&mut rx).await;
        assert_eq!(
            failed.outcome,
            Outcome::Failed("cannot read the memory backend: socket gone".into())
        );
        // The status is published right after the outcomes of the pass.
        let mut status = handle.status();
        let shown = tokio::time::timeout(
            Duration::from_secs(5),
            status.wait_for(|s| s.read_error.is_some()),
        )
        .await
        .unwrap()
        .unwrap()
        .read_error
        .clone();
        assert_eq!(
            shown.as_deref(),
            Some("cannot read the memory backend: socket gone")
        );
        handle.set(vec![(key.clone(), decision(false, 6))]);
        let superseded = report(&mut rx).await;
        assert_eq!(superseded.decision, decision(true, 5));
        assert_eq!(superseded.outcome, Outcome::Superseded);
        memory.unreadable(None);
        handle.urgent();
        let reports = settled(&mut rx, std::slice::from_ref(&key)).await;
        let last = reports.last().unwrap();
        assert_eq!(
            (&last.decision, &last.outcome),
            (&decision(false, 6), &Outcome::AlreadySo)
        );
        assert!(memory.applied().is_empty(), "nothing was ever sent");
    }
}
