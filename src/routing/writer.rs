//! The FRR writer: one task per vtysh binary that converges FRR's `network` statements to the
//! desired set (level-triggered).
//!
//! The services' drivers say what they want per prefix ([`WriterHandle::set`]) after their
//! decision is durable in the journal. The writer then, in one pass: reads
//! `show running-config bgpd` (ASN and instance existence, no cache), diffs, sends every
//! change of every service in as few vtysh processes as it can (withdrawals first, one `-c`
//! per line, at most [`MAX_LINES`] lines a call), reads back to verify, and reports an
//! outcome per decision. It never creates a BGP instance: a prefix whose `router bgp ... [vrf]`
//! is missing is an error for that prefix alone. vtysh stops at the first failing line and
//! keeps what came before; the read-back tells what was applied, the first line that was not
//! is set aside with its error and retried with capped exponential backoff, the rest are
//! retried at once. Nothing here can stop the daemon, and one prefix's error never blocks
//! another's change.
//!
//! Bursts (a start, a Cabourotte dying): a change arriving within [`BURST`] of a pass that
//! wrote, or in the first [`START_GATHER`], waits until changes pause ([`GATHER_QUIET`], at most
//! [`GATHER_MAX`]) so that one pass carries them all; a lone change goes to vtysh at once.
//! Departure from "every apply reads the running config": a pass that follows a pass's
//! read-back by less than [`READ_BACK_REUSE`] starts from that read-back (a full `show
//! running-config` of that moment, not derived state) instead of reading again, which halves
//! the vtysh processes of a burst. A change made by someone else in that half second is
//! repaired as if it had happened just after a fresh read: by this pass's own read-back if it
//! writes, else by the next periodic reconcile, which always reads afresh.

use super::frr::vtysh::{address_family_line, router_line, RunningConfig, Vtysh, VtyshError};
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

/// At most this many lines go into one vtysh call (~190 ms for 1,000 lines on FRR 8.4).
pub const MAX_LINES: usize = 500;
/// First retry delay after a failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Longest retry delay while shutting down.
pub const BACKOFF_MAX_URGENT: Duration = Duration::from_millis(300);
/// A change that arrives within this time of the end of a pass that wrote is part of a burst
/// (start-up, a check server dying): the writer then gathers changes before the next pass.
/// A change after a quiet period goes to FRR at once.
pub const BURST: Duration = Duration::from_millis(50);
/// In a burst, the next pass starts when no change came for this long...
pub const GATHER_QUIET: Duration = Duration::from_millis(20);
/// ... or this long after the burst's first change at the latest.
pub const GATHER_MAX: Duration = Duration::from_millis(100);
/// After the writer starts, changes are gathered for this long as in a burst.
pub const START_GATHER: Duration = Duration::from_secs(2);
/// A read-back this recent stands in for the next pass's first read.
pub const READ_BACK_REUSE: Duration = Duration::from_millis(500);

/// A prefix within one vtysh binary's FRR: (VRF, network).
pub type PrefixKey = (Option<String>, IpNet);

/// What one service decided for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The service that owns the prefix.
    pub service: String,
    /// Announce (true) or withdraw (false).
    pub announce: bool,
    /// Sequence number of the journal record that decided it (0 if none).
    pub decision_seq: u64,
}

/// The result of applying a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Changed and verified by read-back.
    Applied,
    /// FRR was already so.
    AlreadySo,
    /// Failed with this error; retried.
    Failed(String),
    /// Replaced by a newer decision before it was applied.
    Superseded,
    /// Found in the wrong state after it had been applied (bgpd restart, hand edit): drift,
    /// repaired by this pass.
    Drift {
        /// Whether FRR had the `network` line.
        present: bool,
    },
}

/// An outcome report for the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The vtysh binary of the writer.
    pub vtysh: std::path::PathBuf,
    /// The prefix.
    pub key: PrefixKey,
    /// The decision.
    pub decision: Decision,
    /// What happened.
    pub outcome: Outcome,
}

/// The writer's view after its last pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// The desired-set generation the pass worked from.
    pub generation: u64,
    /// Prefixes not (verified) in their desired state, with their last error.
    pub pending: Vec<(PrefixKey, Decision, Option<String>)>,
    /// The last error reading FRR, if the last read failed.
    pub frr_error: Option<String>,
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
    vtysh: std::path::PathBuf,
    shared: Arc<Mutex<Shared>>,
    notify: Arc<Notify>,
    reports: mpsc::UnboundedSender<Report>,
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
                    } else if !old.reported && old.decision.announce != decision.announce {
                        let _ = self.reports.send(Report {
                            vtysh: self.vtysh.clone(),
                            key,
                            decision: old.decision,
                            outcome: Outcome::Superseded,
                        });
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

    /// The prefixes whose latest decision FRR has not shown yet (being applied, or failing).
    pub fn unsettled(&self) -> Vec<PrefixKey> {
        lock(&self.shared)
            .desired
            .iter()
            .filter(|(_, entry)| !entry.reported)
            .map(|(key, _)| key.clone())
            .collect()
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // A panic while holding this lock would be a bug; keep going with the data as it is.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The writers run on a thread of their own (a single-threaded runtime), so that a change
/// reaches vtysh at once even while the main runtime is busy with a round of a thousand check
/// results. `None` if that thread cannot be started (the writers then share the main runtime).
fn frr_runtime() -> Option<tokio::runtime::Handle> {
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
                .name("frr".into())
                .stack_size(8 * 1024 * 1024)
                .spawn(move || runtime.block_on(std::future::pending::<()>()))
                .ok()?;
            Some(handle)
        })
        .clone()
}

/// Start the writer task for one vtysh binary. Outcomes go to `reports`.
pub fn spawn(
    vtysh: Vtysh,
    reconcile_interval: Duration,
    reports: mpsc::UnboundedSender<Report>,
) -> WriterHandle {
    let shared: Arc<Mutex<Shared>> = Arc::default();
    let notify = Arc::new(Notify::new());
    let (status_tx, status_rx) = watch::channel(Status::default());
    let path = vtysh.path.clone();
    let writer = Writer {
        vtysh,
        shared: shared.clone(),
        reports: reports.clone(),
        status: status_tx,
        retry: HashMap::new(),
        sent: HashMap::new(),
        frr_failures: 0,
        frr_retry_at: None,
        last_read: None,
        last_write: None,
        started: Instant::now(),
    };
    let task = writer.run(notify.clone(), reconcile_interval);
    match frr_runtime() {
        Some(handle) => drop(handle.spawn(task)),
        None => drop(tokio::spawn(task)),
    }
    WriterHandle {
        vtysh: path,
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

struct Writer {
    vtysh: Vtysh,
    shared: Arc<Mutex<Shared>>,
    reports: mpsc::UnboundedSender<Report>,
    status: watch::Sender<Status>,
    /// Prefixes set aside after a failure, until their retry time.
    retry: HashMap<PrefixKey, Retry>,
    /// The decision for which a line was last sent, per prefix.
    sent: HashMap<PrefixKey, Decision>,
    frr_failures: u32,
    frr_retry_at: Option<Instant>,
    /// The read-back of the last pass: the next pass starts from it when it is younger than
    /// [`READ_BACK_REUSE`] (a burst of changes), instead of reading again.
    last_read: Option<(Instant, RunningConfig)>,
    /// When the last pass that wrote ended.
    last_write: Option<Instant>,
    /// When the writer started: changes in the first [`START_GATHER`] are gathered as in a
    /// burst (a start announces every healthy service within a few hundred milliseconds).
    started: Instant,
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

fn missing_instance(vrf: &Option<String>) -> String {
    match vrf {
        Some(vrf) => format!(
            "no BGP instance for VRF {vrf} in FRR (router bgp ASN vrf {vrf}); anycastd does not create one"
        ),
        None => "no default BGP instance in FRR (router bgp ASN); anycastd does not create one"
            .to_owned(),
    }
}

impl Writer {
    async fn run(mut self, notify: Arc<Notify>, reconcile_interval: Duration) {
        let mut reconcile = tokio::time::interval(reconcile_interval);
        reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reconcile.tick().await;
        loop {
            let next = self.next_retry();
            let fresh_read = tokio::select! {
                _ = notify.notified() => {
                    self.gather(&notify).await;
                    false
                }
                _ = sleep_until(next) => false,
                // Level-triggered: re-read FRR periodically and repair what drifted.
                _ = reconcile.tick() => true,
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
        self.retry
            .values()
            .map(|r| r.at)
            .chain(self.frr_retry_at)
            .min()
    }

    fn report(&self, key: &PrefixKey, decision: &Decision, outcome: Outcome) {
        let _ = self.reports.send(Report {
            vtysh: self.vtysh.path.clone(),
            key: key.clone(),
            decision: decision.clone(),
            outcome,
        });
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

    /// A prefix is in its desired state: report it once per decision.
    fn settle(&mut self, key: &PrefixKey, decision: &Decision, reported: bool) {
        self.retry.remove(key);
        if !reported {
            let outcome = if self.sent.get(key) == Some(decision) {
                Outcome::Applied
            } else {
                Outcome::AlreadySo
            };
            self.report(key, decision, outcome);
            self.mark_reported(key, decision);
        }
        self.sent.remove(key);
    }

    /// One read-diff-write-verify pass. Returns true if another pass should follow at once.
    async fn pass(&mut self) -> bool {
        let (generation, urgent, entries) = self.snapshot();
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
        if self.frr_retry_at.is_some_and(|at| at > now) {
            return false;
        }
        let reuse = self
            .last_read
            .take()
            .filter(|(at, _)| at.elapsed() < READ_BACK_REUSE)
            .map(|(_, config)| config);
        let config = match reuse {
            Some(config) => config,
            None => match self.vtysh.running_config().await {
                Ok(config) => config,
                Err(e) => {
                    self.frr_unreachable(generation, urgent, &entries, e);
                    return false;
                }
            },
        };
        self.frr_failures = 0;
        self.frr_retry_at = None;

        // Diff. Withdrawals first, then announcements, each ordered by instance and family.
        let mut plan: Vec<(PrefixKey, Decision, u32)> = Vec::new();
        for (key, decision, reported) in &entries {
            let Some(instance) = config.instances.get(&key.0) else {
                if decision.announce {
                    if *reported {
                        // It was applied and its instance is gone (bgpd restarted without
                        // it): drift, not a failure of that old decision.
                        self.report(key, decision, Outcome::Drift { present: false });
                        self.unmark_reported(key, decision);
                    }
                    self.fail(key, decision, missing_instance(&key.0), urgent);
                } else {
                    // No instance, so certainly no `network` in it: withdrawn already.
                    self.settle(key, decision, *reported);
                }
                continue;
            };
            let present = instance.networks.contains(&key.1);
            if present == decision.announce {
                self.settle(key, decision, *reported);
                continue;
            }
            if *reported {
                // It was applied (or already so) and is not any more.
                self.report(key, decision, Outcome::Drift { present });
                self.unmark_reported(key, decision);
            }
            if let Some(retry) = self.retry.get(key) {
                if retry.decision == *decision && retry.at > now {
                    continue;
                }
            }
            plan.push((key.clone(), decision.clone(), instance.asn));
        }
        if plan.is_empty() {
            self.publish(generation, &config, &entries);
            return false;
        }
        plan.sort_by(|a, b| {
            (a.1.announce, &a.0 .0, a.0 .1.addr().is_ipv6(), a.0 .1).cmp(&(
                b.1.announce,
                &b.0 .0,
                b.0 .1.addr().is_ipv6(),
                b.0 .1,
            ))
        });

        // Write, chunk by chunk.
        let mut failed_chunks: Vec<(Vec<usize>, String)> = Vec::new();
        for chunk in chunks(&plan) {
            let lines = command_lines(&plan, &chunk);
            for &i in &chunk {
                self.sent.insert(plan[i].0.clone(), plan[i].1.clone());
            }
            match self.vtysh.run(&lines).await {
                Ok(_) => {}
                Err(e) => failed_chunks.push((chunk, e.to_string())),
            }
        }

        // Verify.
        let after = match self.vtysh.running_config().await {
            Ok(config) => config,
            Err(e) => {
                self.frr_unreachable(generation, urgent, &entries, e);
                return false;
            }
        };
        let mut again = false;
        let mut culprit_found: Vec<bool> = vec![false; failed_chunks.len()];
        for (i, (key, decision, _)) in plan.iter().enumerate() {
            let present = after
                .instances
                .get(&key.0)
                .is_some_and(|inst| inst.networks.contains(&key.1));
            if present == decision.announce {
                self.settle(key, decision, false);
                continue;
            }
            match failed_chunks
                .iter()
                .position(|(chunk, _)| chunk.contains(&i))
            {
                Some(c) if !culprit_found[c] => {
                    // vtysh stopped here: this line is the one that failed.
                    culprit_found[c] = true;
                    let error = failed_chunks[c].1.clone();
                    self.fail(key, decision, error, urgent);
                }
                Some(_) => again = true,
                None => self.fail(
                    key,
                    decision,
                    "vtysh exited 0 but the change is not in the running config".to_owned(),
                    urgent,
                ),
            }
        }
        self.publish(generation, &after, &entries);
        let now = Instant::now();
        self.last_read = Some((now, after));
        self.last_write = Some(now);
        again
    }

    fn frr_unreachable(
        &mut self,
        generation: u64,
        urgent: bool,
        entries: &[(PrefixKey, Decision, bool)],
        error: VtyshError,
    ) {
        self.frr_failures += 1;
        self.frr_retry_at = Some(Instant::now() + backoff(self.frr_failures, urgent));
        let text = format!("cannot read FRR's running config: {error}");
        for (key, decision, reported) in entries {
            if !reported {
                let changed = self
                    .retry
                    .get(key)
                    .is_none_or(|r| r.decision != *decision || r.error != text);
                if changed {
                    self.report(key, decision, Outcome::Failed(text.clone()));
                    self.retry.insert(
                        key.clone(),
                        Retry {
                            decision: decision.clone(),
                            failures: self.frr_failures,
                            at: Instant::now() + backoff(self.frr_failures, urgent),
                            error: text.clone(),
                        },
                    );
                }
            }
        }
        // Not verified: the decisions FRR has not shown yet (one it showed before stays so
        // as far as anyone knows: it is not listed as left at a stop).
        let pending = entries
            .iter()
            .filter(|(_, _, reported)| !reported)
            .map(|(k, d, _)| (k.clone(), d.clone(), Some(text.clone())))
            .collect();
        self.status.send_replace(Status {
            generation,
            pending,
            frr_error: Some(text),
        });
    }

    fn publish(
        &self,
        generation: u64,
        config: &RunningConfig,
        entries: &[(PrefixKey, Decision, bool)],
    ) {
        let pending = entries
            .iter()
            .filter(|(key, decision, _)| {
                let present = config
                    .instances
                    .get(&key.0)
                    .is_some_and(|inst| inst.networks.contains(&key.1));
                present != decision.announce
            })
            .map(|(key, decision, _)| {
                let error = self.retry.get(key).map(|r| r.error.clone());
                (key.clone(), decision.clone(), error)
            })
            .collect();
        self.status.send_replace(Status {
            generation,
            pending,
            frr_error: None,
        });
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Split the plan into calls of at most [`MAX_LINES`] lines (context lines included).
fn chunks(plan: &[(PrefixKey, Decision, u32)]) -> Vec<Vec<usize>> {
    // Counted as `command_lines` would write them (without formatting any): `configure
    // terminal`, two context lines whenever the instance or family changes, one per prefix.
    let context_of = |i: usize| (&plan[i].0 .0, plan[i].0 .1.addr().is_ipv6());
    let mut chunks = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut lines = 0;
    for i in 0..plan.len() {
        let switches = current
            .last()
            .is_none_or(|&last| context_of(last) != context_of(i));
        let added = 1 + if switches { 2 } else { 0 };
        let base = if current.is_empty() { 1 } else { lines };
        if !current.is_empty() && base + added > MAX_LINES {
            chunks.push(std::mem::take(&mut current));
            lines = 1 + 3;
        } else {
            lines = base + added;
        }
        current.push(i);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// The vtysh lines for some entries of the plan: `configure terminal`, then for each run of
/// the same instance and family its context lines, then one `network`/`no network` each.
fn command_lines(plan: &[(PrefixKey, Decision, u32)], indexes: &[usize]) -> Vec<String> {
    let mut lines = vec!["configure terminal".to_owned()];
    let mut context: Option<(Option<String>, bool)> = None;
    for &i in indexes {
        let ((vrf, prefix), decision, asn) = &plan[i];
        let here = (vrf.clone(), prefix.addr().is_ipv6());
        if context.as_ref() != Some(&here) {
            lines.push(router_line(*asn, vrf));
            lines.push(address_family_line(prefix).to_owned());
            context = Some(here);
        }
        if decision.announce {
            lines.push(format!("network {prefix}"));
        } else {
            lines.push(format!("no network {prefix}"));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(vrf: Option<&str>, prefix: &str, announce: bool) -> (PrefixKey, Decision, u32) {
        (
            (vrf.map(str::to_owned), prefix.parse().unwrap()),
            Decision {
                service: "s".into(),
                announce,
                decision_seq: 1,
            },
            if vrf.is_some() { 65537 } else { 65536 },
        )
    }

    #[test]
    fn lines_switch_instance_and_family_only_when_they_change() {
        let plan = vec![
            entry(None, "203.0.113.53/32", false),
            entry(None, "203.0.113.54/32", false),
            entry(Some("123"), "2001:db8::1/128", true),
        ];
        assert_eq!(
            command_lines(&plan, &[0, 1, 2]),
            [
                "configure terminal",
                "router bgp 65536",
                "address-family ipv4 unicast",
                "no network 203.0.113.53/32",
                "no network 203.0.113.54/32",
                "router bgp 65537 vrf 123",
                "address-family ipv6 unicast",
                "network 2001:db8::1/128",
            ]
        );
    }

    #[test]
    fn chunks_are_as_full_as_the_line_limit_allows_with_mixed_contexts() {
        // Instances and families alternate in runs of varying length.
        let plan: Vec<_> = (0..2000u32)
            .map(|i| {
                let vrf = if (i / 7) % 3 == 0 { Some("123") } else { None };
                let prefix = if (i / 5) % 2 == 0 {
                    format!("10.{}.{}.0/24", i / 256, i % 256)
                } else {
                    format!("2001:db8:{i:x}::/48")
                };
                entry(vrf, &prefix, i % 2 == 0)
            })
            .collect();
        let chunks = chunks(&plan);
        assert_eq!(
            chunks.iter().flatten().copied().collect::<Vec<_>>(),
            (0..plan.len()).collect::<Vec<_>>()
        );
        for (n, chunk) in chunks.iter().enumerate() {
            assert!(command_lines(&plan, chunk).len() <= MAX_LINES);
            if let Some(next) = chunks.get(n + 1) {
                let mut grown = chunk.clone();
                grown.push(next[0]);
                assert!(command_lines(&plan, &grown).len() > MAX_LINES);
            }
        }
    }

    #[test]
    fn a_thousand_prefixes_fit_in_three_calls_of_at_most_five_hundred_lines() {
        let plan: Vec<_> = (0..1000u32)
            .map(|i| entry(None, &format!("10.{}.{}.0/24", i / 256, i % 256), true))
            .collect();
        let chunks = chunks(&plan);
        assert_eq!(chunks.len(), 3);
        assert!(chunks
            .iter()
            .all(|c| command_lines(&plan, c).len() <= MAX_LINES));
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 1000);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(1, false), Duration::from_millis(500));
        assert_eq!(backoff(2, false), Duration::from_secs(1));
        assert_eq!(backoff(20, false), BACKOFF_MAX);
        assert_eq!(backoff(20, true), BACKOFF_MAX_URGENT);
    }
}
