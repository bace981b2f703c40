//! The audit trail: selecting journal records and rendering them for people (`anycastd
//! history`) and machines (`--json`, one object per line).
//!
//! One line per record, oldest first: the UTC time (RFC 3339), the service (`-` for records
//! about the daemon), and what happened. A service's history includes the daemon's own
//! records (start, stop, reconciliation, operator actions), which give it context. Reads go
//! through the per-service index and a binary search on time, never a scan of the whole log.

use anycastd_journal::wire::{self, Event};
use anycastd_journal::{Entry, Reader, Record};
use chrono::{DateTime, SecondsFormat, Utc};

/// Which records to show.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Query {
    /// Only this service (and the daemon's own records).
    pub service: Option<String>,
    /// Records at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Records before this time.
    pub until_ms: Option<i64>,
    /// At most this many events, the oldest first.
    pub limit: Option<usize>,
    /// At most this many events, the newest.
    #[serde(default)]
    pub tail: Option<usize>,
    /// Only records with a larger sequence number (resume a `--follow`).
    pub after_seq: Option<u64>,
    /// Every record an event of its own (FRR outcomes are not folded into the decision they
    /// complete).
    #[serde(default)]
    pub verbose: bool,
    /// Include bookkeeping records (unchanged results), which replay needs.
    #[serde(default)]
    pub bookkeeping: bool,
}

impl Query {
    /// Whether a record passes the time and sequence filters and the service filter.
    pub fn matches(&self, record: &Record) -> bool {
        // Unchanged results are replay's bookkeeping, not events.
        (self.bookkeeping || !matches!(record.event, Event::Polls(_) | Event::Runs(_)))
            && self.since_ms.is_none_or(|t| record.at_ms >= t)
            && self.until_ms.is_none_or(|t| record.at_ms < t)
            && self.after_seq.is_none_or(|s| record.seq > s)
            && match (&self.service, record.event.service()) {
                (None, _) | (Some(_), None) => true,
                (Some(wanted), Some(service)) => wanted == service,
            }
    }
}

#[cfg(test)]
mod window_tests {
    use super::*;
    use anycastd_journal::{Journal, Options};

    #[test]
    fn an_outcome_just_after_until_still_folds_into_its_decision() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut journal =
            Journal::open(dir.path(), &Options::default()).unwrap_or_else(|e| panic!("{e}"));
        let prefix = wire::PrefixRef {
            vtysh: "/usr/bin/vtysh".into(),
            vrf: None,
            prefix: "203.0.113.53/32".into(),
        };
        let transition = Event::Transition(wire::Transition {
            service: "dns".into(),
            from: wire::State::Healthy,
            to: wire::State::Unhealthy,
            cause: wire::Cause::Drain,
            healthy_streak: 0,
            unhealthy_streak: 0,
            change: wire::Change::Withdraw,
            prefixes: vec![prefix.clone()],
        });
        let apply = Event::Apply(wire::Apply {
            service: "dns".into(),
            prefix,
            change: wire::Change::Withdraw,
            outcome: wire::Outcome::Applied,
            decision_seq: 1,
        });
        let ok = |r: Result<u64, anycastd_journal::Error>| r.unwrap_or_else(|e| panic!("{e}"));
        ok(journal.append(1_000, &[transition]));
        ok(journal.append(1_090, &[apply]));
        for service in [None, Some("dns".to_owned())] {
            let query = Query {
                service,
                since_ms: Some(0),
                until_ms: Some(1_050),
                ..Query::default()
            };
            let selection = select(&journal, &query).unwrap_or_else(|e| panic!("{e}"));
            let lines = render_events(&selection.records, false);
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert!(lines[0].ends_with("; FRR applied in 90 ms"), "{lines:?}");
        }
    }
}

/// Records selected from a journal, and how many records of unknown versions were skipped.
#[derive(Debug, Default)]
pub struct Selection {
    /// The records, oldest first.
    pub records: Vec<Record>,
    /// Records skipped because their format version is unknown to this build.
    pub skipped_unknown: u64,
}

/// A result's time is when its poll was due, so a record can be a little older than one
/// journaled before it (a slow poll: at most a timeout, plus up to 10 timeouts of waiting
/// for a connection slot, under a minute with the default 5 s): a search by time starts this
/// much earlier (records older than `--since` are then skipped without being decoded).
const TIME_SKEW_MS: i64 = 2 * 60 * 1000;

/// Records read past the last event a `--limit` keeps, to find the FRR outcomes it folds in.
const FOLD_LOOKAHEAD: usize = 10_000;

/// How long after `--until` the FRR outcomes of the window's decisions are looked for.
const FOLD_WINDOW_MS: i64 = 10 * 60 * 1000;

/// Select records from `journal`: those `query` matches, then the records of its first
/// `limit` or last `tail` events (see [`events`]).
pub fn select(journal: &Reader, query: &Query) -> Result<Selection, anycastd_journal::Error> {
    let mut selection = Selection::default();
    // Reading stops early for a limit (plus a lookahead for folded outcomes) or a tail.
    let mut headlines = 0usize;
    let mut after_limit = 0usize;
    // Decisions in the window: their FRR outcomes are read even past `--until` (they fold
    // into them), for a while.
    let mut decisions: std::collections::HashSet<u64> = Default::default();
    let until_reading = query
        .until_ms
        .map(|until| until.saturating_add(TIME_SKEW_MS + FOLD_WINDOW_MS));
    let mut take = |entry: Result<Entry, anycastd_journal::Error>,
                    selection: &mut Selection|
     -> Result<bool, anycastd_journal::Error> {
        match entry? {
            Entry::Record(record) => {
                let past = until_reading.is_some_and(|end| record.at_ms >= end);
                if query.matches(&record) {
                    match &record.event {
                        Event::Apply(_) | Event::Runs(_) | Event::Polls(_) => {}
                        Event::Transition(_) | Event::Reconciled(_) | Event::Reloaded(_) => {
                            decisions.insert(record.seq);
                            headlines += 1;
                        }
                        _ => headlines += 1,
                    }
                    selection.records.push(record);
                } else if !query.verbose {
                    if let Event::Apply(apply) = &record.event {
                        let late = query.until_ms.is_some_and(|until| record.at_ms >= until);
                        if late && decisions.contains(&apply.decision_seq) {
                            selection.records.push(record);
                        }
                    }
                }
                if past && query.tail.is_none() {
                    return Ok(false);
                }
            }
            Entry::UnknownVersion { .. } => selection.skipped_unknown += 1,
        }
        if let Some(limit) = query.limit {
            if headlines > limit {
                after_limit += 1;
                return Ok(after_limit < FOLD_LOOKAHEAD);
            }
        }
        if let Some(tail) = query.tail {
            return Ok(headlines <= tail);
        }
        Ok(true)
    };
    let from = query
        .since_ms
        .map(|since| journal.seq_at_or_after(since.saturating_sub(TIME_SKEW_MS)))
        .transpose()?
        .unwrap_or(0)
        .max(query.after_seq.map(|s| s.saturating_add(1)).unwrap_or(0));
    match (&query.service, query.tail.is_some()) {
        (None, false) => {
            let at_least = query.since_ms.unwrap_or(i64::MIN);
            for entry in journal.entries_from_at(from, at_least) {
                if !take(entry, &mut selection)? {
                    break;
                }
            }
        }
        (None, true) => {
            for entry in journal.entries_rev() {
                if entry_seq(&entry) < from {
                    break;
                }
                if !take(entry, &mut selection)? {
                    break;
                }
            }
            selection.records.reverse();
        }
        (Some(service), false) => {
            let merged = merge(
                journal.service_entries(service),
                journal.global_entries(),
                |a, b| a <= b,
            );
            for entry in merged {
                if !take(entry, &mut selection)? {
                    break;
                }
            }
        }
        (Some(service), true) => {
            let merged = merge(
                journal.service_entries_rev(service),
                journal.global_entries_rev(),
                |a, b| a >= b,
            );
            for entry in merged {
                if entry_seq(&entry) < from {
                    break;
                }
                if !take(entry, &mut selection)? {
                    break;
                }
            }
            selection.records.reverse();
        }
    }
    selection.records = trim(std::mem::take(&mut selection.records), query);
    Ok(selection)
}

type Entries<'a> = Box<dyn Iterator<Item = Result<Entry, anycastd_journal::Error>> + 'a>;

/// Merge two ordered entry streams by sequence number (`first(a, b)`: take `a` first).
fn merge<'a>(
    own: impl Iterator<Item = Result<Entry, anycastd_journal::Error>> + 'a,
    global: impl Iterator<Item = Result<Entry, anycastd_journal::Error>> + 'a,
    first: fn(u64, u64) -> bool,
) -> Entries<'a> {
    let mut own = own.peekable();
    let mut global = global.peekable();
    Box::new(std::iter::from_fn(move || {
        let next_own = own.peek().map(entry_seq);
        let next_global = global.peek().map(entry_seq);
        match (next_own, next_global) {
            (None, None) => None,
            (Some(_), None) => own.next(),
            (None, Some(_)) => global.next(),
            (Some(a), Some(b)) if first(a, b) => own.next(),
            _ => global.next(),
        }
    }))
}

fn entry_seq(entry: &Result<Entry, anycastd_journal::Error>) -> u64 {
    match entry {
        Ok(Entry::Record(r)) => r.seq,
        Ok(Entry::UnknownVersion { seq, .. }) => *seq,
        Err(anycastd_journal::Error::Corrupt { seq, .. }) => *seq,
        Err(_) => 0,
    }
}

/// The events of `records` (in order): every record is one, except that, unless `verbose`,
/// an FRR outcome folds into the transition, start-up reconciliation or reload whose
/// decision it completes, when that record is among `records`.
pub fn events(records: &[Record], verbose: bool) -> Vec<(usize, Vec<usize>)> {
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut by_decision: std::collections::HashMap<u64, usize> = Default::default();
    // A drift found after a decision was applied: the outcomes of its repair fold into the
    // drift record, not into the decision (whose own outcome came long before).
    let mut by_drift: std::collections::HashMap<(&str, &wire::PrefixRef), usize> =
        Default::default();
    for (i, record) in records.iter().enumerate() {
        if !verbose {
            if let Event::Apply(apply) = &record.event {
                let decision = by_decision.get(&apply.decision_seq).copied();
                let drift = by_drift
                    .get(&(apply.service.as_str(), &apply.prefix))
                    .copied()
                    .filter(|d| decision.is_none_or(|t| *d > t));
                if let Some(group) = drift.or(decision) {
                    groups[group].1.push(i);
                    continue;
                }
            }
            match &record.event {
                Event::Transition(t) => {
                    by_drift.retain(|(service, _), _| *service != t.service);
                    by_decision.insert(record.seq, groups.len());
                }
                Event::Reconciled(_) | Event::Reloaded(_) => {
                    by_decision.insert(record.seq, groups.len());
                }
                Event::Drift(d) => {
                    by_drift.insert((d.service.as_str(), &d.prefix), groups.len());
                }
                _ => {}
            }
        }
        groups.push((i, Vec::new()));
    }
    groups
}

/// The records of the events `query` keeps (its `limit` oldest or `tail` newest).
fn trim(records: Vec<Record>, query: &Query) -> Vec<Record> {
    if query.limit.is_none() && query.tail.is_none() {
        return records;
    }
    let groups = events(&records, query.verbose);
    let kept: &[(usize, Vec<usize>)] = match (query.limit, query.tail) {
        (Some(limit), _) => &groups[..limit.min(groups.len())],
        (None, Some(tail)) => &groups[groups.len().saturating_sub(tail)..],
        (None, None) => &groups[..],
    };
    let mut indexes: Vec<usize> = kept
        .iter()
        .flat_map(|(head, applies)| std::iter::once(*head).chain(applies.iter().copied()))
        .collect();
    indexes.sort_unstable();
    let mut records: Vec<Option<Record>> = records.into_iter().map(Some).collect();
    indexes
        .into_iter()
        .filter_map(|i| records.get_mut(i).and_then(Option::take))
        .collect()
}

/// RFC 3339 UTC with milliseconds.
pub fn format_time(at_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(at_ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| at_ms.to_string())
}

/// Parse `--since`/`--until`: RFC 3339, or a duration before `now_ms` in the syntax of every
/// duration of anycastd (`90`, `90s`, `30m`, `2h`, `1d`, `1w`).
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    match crate::config::parse_duration_text(text) {
        Ok(ago) => Ok(now_ms.saturating_sub(i64::try_from(ago.as_millis()).unwrap_or(i64::MAX))),
        Err(e) => Err(format!(
            "{text:?} is not a time: use RFC 3339 (2026-11-24T07:00:00Z) or a duration ago (90, 90s, 30m, 2h, 1d): {e}"
        )),
    }
}

fn prefix_text(p: &wire::PrefixRef) -> String {
    match &p.vrf {
        Some(vrf) => format!("{} (vrf {vrf})", p.prefix),
        None => p.prefix.clone(),
    }
}

fn prefixes_text(prefixes: &[wire::PrefixRef]) -> String {
    prefixes
        .iter()
        .map(prefix_text)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A state's name, with the drain cause.
pub fn state_text(state: &wire::State) -> String {
    match state {
        wire::State::Starting => "starting".into(),
        wire::State::Healthy => "healthy".into(),
        wire::State::Unhealthy => "unhealthy".into(),
        wire::State::Draining(wire::DrainCause::Shutdown) => "draining (shutdown)".into(),
        wire::State::Draining(wire::DrainCause::Removed) => "draining (removed)".into(),
        wire::State::Draining(wire::DrainCause::Operator { reason, uid, .. }) => {
            format!("draining (operator uid {uid}: {reason})")
        }
    }
}

fn observation_text(o: &wire::Observation) -> String {
    match o {
        wire::Observation::Pass => "pass".into(),
        wire::Observation::Fail(reason) => format!("fail: {reason}"),
        wire::Observation::Pending => "pending (no result yet)".into(),
    }
}

/// Why a transition happened, in words.
pub fn cause_text(cause: &wire::Cause) -> String {
    match cause {
        wire::Cause::Verdict { healthy: true, .. } => "all checks pass".into(),
        wire::Cause::Verdict {
            healthy: false,
            checks,
        } => {
            let failing: Vec<String> = checks
                .iter()
                .filter_map(|c| match &c.observation {
                    wire::Observation::Fail(reason) => {
                        Some(format!("check {} failed: {reason}", c.check))
                    }
                    _ => None,
                })
                .collect();
            failing.join("; ")
        }
        wire::Cause::Drain => "drained".into(),
        wire::Cause::Undrain => "undrained".into(),
        wire::Cause::DrainExpired => "drain expired".into(),
        wire::Cause::Restored => "restored after a restart, prefixes still in FRR".into(),
        wire::Cause::Adopted => "adopted prefixes found in FRR".into(),
        wire::Cause::Restart => "reset at start-up".into(),
        wire::Cause::Unsuppressed => "flap damping no longer suppresses it, checks pass".into(),
    }
}

/// The kind of a record, for JSON consumers.
pub fn kind(event: &Event) -> &'static str {
    match event {
        Event::DaemonStarted(_) => "daemon_started",
        Event::DaemonStopped(_) => "daemon_stopped",
        Event::Transition(_) => "transition",
        Event::CheckEdge(_) => "check",
        Event::Apply(_) => "apply",
        Event::Reconciled(_) => "reconciled",
        Event::Operator(_) => "operator",
        Event::Drift(_) => "drift",
        Event::JournalReset(_) => "journal_reset",
        Event::JournalGap(_) => "journal_gap",
        Event::Reloaded(_) => "reloaded",
        Event::PendingTimeout(_) => "pending_timeout",
        Event::Polls(_) => "polls",
        Event::ServiceDamping(_) => "damping_parameters",
        Event::Damping(_) => "damping",
        Event::Runs(_) => "runs",
        Event::Reconfigured(_) => "reconfigured",
        Event::DampingRestored(_) => "damping_restored",
        Event::ReloadRejected(_) => "reload_rejected",
    }
}

/// What happened, in one line (without time and service).
pub fn event_text(event: &Event) -> String {
    match event {
        Event::DaemonStarted(s) => format!(
            "daemon started: anycastd {}, {} service(s)",
            s.version,
            s.services.len()
        ),
        Event::DaemonStopped(s) => match &s.outcome {
            wire::StopOutcome::WithdrawnAll => {
                format!("daemon stopped ({}): every prefix withdrawn", s.reason)
            }
            wire::StopOutcome::Left(left) => format!(
                "daemon stopped ({}): NOT verified withdrawn: {}",
                s.reason,
                prefixes_text(left)
            ),
            wire::StopOutcome::HandedOver => format!(
                "daemon stopped ({}): handed over, prefixes left announced",
                s.reason
            ),
        },
        Event::Transition(t) => {
            let change = match t.change {
                wire::Change::Announce => format!("announce {}", prefixes_text(&t.prefixes)),
                wire::Change::Withdraw => format!("withdraw {}", prefixes_text(&t.prefixes)),
                wire::Change::None => "no change".into(),
            };
            format!(
                "{} -> {}: {change} ({})",
                state_text(&t.from),
                state_text(&t.to),
                cause_text(&t.cause)
            )
        }
        Event::CheckEdge(e) => format!("check {}: {}", e.check, observation_text(&e.observation)),
        Event::Apply(a) => {
            let verb = match a.change {
                wire::Change::Announce => "announce",
                wire::Change::Withdraw => "withdraw",
                wire::Change::None => "keep",
            };
            format!(
                "FRR {verb} {}: {} (decision {})",
                prefix_text(&a.prefix),
                outcome_text(&a.outcome),
                a.decision_seq
            )
        }
        Event::Reconciled(r) => reconciled_text(r, &[]),
        Event::Operator(o) => {
            let what = match &o.kind {
                wire::OperatorKind::Handover => "stop --keep-announced".to_owned(),
                wire::OperatorKind::Stop => "stop".to_owned(),
                wire::OperatorKind::Drain {
                    service,
                    reason,
                    expires_at_ms,
                } => match expires_at_ms {
                    Some(at) => format!("drain {service} until {} ({reason})", format_time(*at)),
                    None => format!("drain {service} ({reason})"),
                },
                wire::OperatorKind::Undrain { service } => format!("undrain {service}"),
            };
            format!("operator: {what} (uid {}, pid {})", o.uid, o.pid)
        }
        Event::PendingTimeout(t) => format!(
            "check {}: no result within its pending timeout, counted as failed",
            t.check
        ),
        Event::Polls(p) => format!("{} more check result(s) without change", p.polls),
        Event::ServiceDamping(d) => match &d.params {
            Some(p) => format!(
                "flap damping: penalty {} per withdrawal, suppress above {}, reuse below {}, half-life {} s, at most {} s suppressed",
                p.penalty,
                p.suppress,
                p.reuse,
                p.half_life_ms / 1000,
                p.max_suppress_ms / 1000
            ),
            None => "flap damping off".into(),
        },
        Event::Damping(d) => {
            let penalty = d.penalty_milli as f64 / 1000.0;
            let what = if d.restored { "restored: " } else { "" };
            match d.suppressed_since_ms {
                Some(since) => format!(
                    "flap damping: {what}penalty {penalty:.0}, SUPPRESSED since {}",
                    format_time(since)
                ),
                None => format!("flap damping: {what}penalty {penalty:.0}, not suppressed"),
            }
        }
        Event::Runs(r) => {
            let results: u64 = r.segments.iter().map(|s| s.count).sum();
            format!("{results} unchanged check result(s)")
        }
        Event::Reconfigured(r) => format!(
            "reconfigured by the reload: rise {}, fall {}, {} check(s), {} prefix(es){}",
            r.params.rise,
            r.params.fall,
            r.params.checks.len(),
            r.params.prefixes.len(),
            if r.damping.is_some() { ", flap damping on" } else { "" }
        ),
        Event::DampingRestored(d) => {
            let now = d.penalty_now_milli as f64 / 1000.0;
            match d.state.suppressed_since_ms {
                Some(since) => format!(
                    "flap damping restored after the restart: penalty {now:.0}, SUPPRESSED since {}",
                    format_time(since)
                ),
                None => format!("flap damping restored after the restart: penalty {now:.0}, not suppressed"),
            }
        }
        Event::ReloadRejected(r) => {
            let who = match r.uid {
                Some(uid) => format!("uid {uid}"),
                None => "SIGHUP".to_owned(),
            };
            format!(
                "reload rejected ({who}), the running configuration is kept: {}",
                r.errors.join("; ")
            )
        }
        Event::Reloaded(r) => format!(
            "configuration reloaded (config {}): added [{}], removed [{}], changed [{}]",
            r.config_hash,
            r.added.join(", "),
            r.removed.join(", "),
            r.changed.join(", ")
        ),
        Event::JournalReset(r) => format!(
            "journal reset: the previous journal could not be read ({}) and was moved to {}",
            r.reason, r.moved_to
        ),
        Event::JournalGap(g) => format!(
            "journal gap: {} record(s) lost between {} and {} ({})",
            g.lost_records,
            format_time(g.from_ms),
            format_time(g.to_ms),
            g.error
        ),
        Event::Drift(d) => format!(
            "drift: {} was {} in FRR, {} wanted; repairing",
            prefix_text(&d.prefix),
            if d.present { "present" } else { "absent" },
            if d.wanted {
                "announcement"
            } else {
                "withdrawal"
            }
        ),
    }
}

fn outcome_text(outcome: &wire::Outcome) -> String {
    match outcome {
        wire::Outcome::Applied => "applied".to_owned(),
        wire::Outcome::AlreadySo => "already so in FRR".to_owned(),
        wire::Outcome::Failed(e) => format!("FAILED: {e}"),
        wire::Outcome::Superseded => {
            "superseded by a newer decision before it was applied (FRR unchanged)".to_owned()
        }
    }
}

/// What start-up reconciliation found and decided, with the FRR outcome of each decision
/// when `applies` (the outcomes of its decisions) are given.
fn reconciled_text(r: &wire::Reconciled, applies: &[&Record]) -> String {
    let mut parts = Vec::new();
    if r.rebooted {
        parts.push("host rebooted".to_owned());
    }
    for item in &r.items {
        let p = prefix_text(&item.prefix);
        let s = &item.service;
        let what = match item.decision {
            wire::ReconcileDecision::Kept => {
                format!("keep {p} of {s} (announced before the restart, still in FRR)")
            }
            wire::ReconcileDecision::Orphan => {
                format!("withdraw {p} of {s} (orphan: no longer configured)")
            }
            wire::ReconcileDecision::Missing => {
                format!("{p} of {s} missing from FRR although announced before the restart")
            }
            wire::ReconcileDecision::Withdrawn => {
                format!("withdraw {p} of {s} (in FRR, but not announced at the last stop)")
            }
            wire::ReconcileDecision::Adopted => {
                format!("adopt {p} of {s} (configured and already in FRR)")
            }
            wire::ReconcileDecision::Reboot => format!("withdraw {p} of {s} (the host rebooted)"),
        };
        let outcome = applies
            .iter()
            .rev()
            .find_map(|record| match &record.event {
                Event::Apply(a) if a.prefix == item.prefix => Some(match &a.outcome {
                    wire::Outcome::AlreadySo => "already so".to_owned(),
                    other => outcome_text(other),
                }),
                _ => None,
            })
            .map(|o| format!(": FRR {o}"))
            .unwrap_or_default();
        parts.push(format!("{what}{outcome}"));
    }
    for (vtysh, error) in &r.unreadable {
        parts.push(format!(
            "could not read FRR through {vtysh}: {error} (nothing decided there)"
        ));
    }
    if parts.is_empty() {
        "start-up reconciliation: nothing to do".into()
    } else {
        format!("start-up reconciliation: {}", parts.join("; "))
    }
}

/// A prefix, its last outcome (with its time) and the failures journaled for it.
type PrefixOutcome<'a> = (&'a wire::PrefixRef, Option<(&'a wire::Outcome, i64)>, usize);

/// What FRR did with a decision, from its outcome records. `after_poll`: the decision's time
/// is the time the poll that caused it was due (a check's verdict), so a timed-out poll's
/// decision came a timeout later.
fn frr_outcome(
    at_ms: i64,
    prefixes: &[wire::PrefixRef],
    applies: &[&Record],
    after_poll: bool,
) -> String {
    // The last outcome of each prefix, its time, and the failures before it.
    let mut last: Vec<PrefixOutcome> = prefixes.iter().map(|p| (p, None, 0)).collect();
    for record in applies {
        let Event::Apply(a) = &record.event else {
            continue;
        };
        if let Some(entry) = last.iter_mut().find(|(p, _, _)| **p == a.prefix) {
            if matches!(a.outcome, wire::Outcome::Failed(_)) {
                entry.2 += 1;
            }
            entry.1 = Some((&a.outcome, record.at_ms));
        }
    }
    let named = |list: &[&wire::PrefixRef]| {
        list.iter()
            .map(|p| prefix_text(p))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut applied_at = None;
    let mut failures_before = 0;
    let (mut already, mut superseded, mut unknown) = (0, vec![], vec![]);
    let mut failed: Vec<String> = Vec::new();
    for (prefix, outcome, failures) in &last {
        match outcome {
            Some((wire::Outcome::Applied, at)) => {
                failures_before += failures;
                applied_at = applied_at.max(Some(*at));
            }
            Some((wire::Outcome::AlreadySo, _)) => already += 1,
            Some((wire::Outcome::Superseded, _)) => superseded.push(*prefix),
            Some((wire::Outcome::Failed(e), _)) => {
                failed.push(format!("{}: {e}", prefix_text(prefix)))
            }
            None => unknown.push(*prefix),
        }
    }
    let mut parts = Vec::new();
    if let Some(done) = applied_at {
        let ms = (done - at_ms).max(0);
        let mut text = if after_poll {
            format!("FRR applied {ms} ms after the deciding poll")
        } else {
            format!("FRR applied in {ms} ms")
        };
        if failures_before > 0 {
            text.push_str(&format!(", {failures_before} failed attempt(s) before"));
        }
        if already > 0 {
            text.push_str(&format!(" ({already} already so)"));
        }
        parts.push(text);
    } else if already > 0 {
        parts.push("FRR already so".to_owned());
    }
    if !superseded.is_empty() {
        let whole = superseded.len() == last.len();
        parts.push(if whole {
            "superseded by a newer decision before FRR applied it (FRR unchanged)".to_owned()
        } else {
            format!(
                "superseded for {} by a newer decision (FRR unchanged)",
                named(&superseded)
            )
        });
    }
    if !failed.is_empty() {
        parts.push(format!("FRR FAILED for {} (retrying)", failed.join("; ")));
    }
    if !unknown.is_empty() && unknown.len() < last.len() || parts.is_empty() && !unknown.is_empty()
    {
        parts.push(format!("no FRR outcome journaled for {}", named(&unknown)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("; {}", parts.join("; "))
    }
}

/// The text of an event: its record, and the FRR outcomes folded into it.
pub fn group_text(head: &Record, applies: &[&Record]) -> String {
    match &head.event {
        // A start-up's states: their FRR outcomes are the reconciliation's.
        Event::Transition(t)
            if t.change != wire::Change::None
                && !matches!(
                    t.cause,
                    wire::Cause::Restored | wire::Cause::Adopted | wire::Cause::Restart
                ) =>
        {
            format!(
                "{}{}",
                event_text(&head.event),
                frr_outcome(
                    head.at_ms,
                    &t.prefixes,
                    applies,
                    matches!(t.cause, wire::Cause::Verdict { .. })
                )
            )
        }
        Event::Reconciled(r) => reconciled_text(r, applies),
        Event::Drift(d) if !applies.is_empty() => format!(
            "{}{}",
            event_text(&head.event),
            frr_outcome(head.at_ms, std::slice::from_ref(&d.prefix), applies, false)
        ),
        Event::Reloaded(_) if !applies.is_empty() => {
            let outcomes: Vec<String> = applies
                .iter()
                .filter_map(|record| match &record.event {
                    Event::Apply(a) => Some(format!(
                        "{} {}: {}",
                        if a.change == wire::Change::Announce {
                            "announce"
                        } else {
                            "withdraw"
                        },
                        prefix_text(&a.prefix),
                        outcome_text(&a.outcome)
                    )),
                    _ => None,
                })
                .collect();
            format!("{}; FRR: {}", event_text(&head.event), outcomes.join("; "))
        }
        event => event_text(event),
    }
}

/// The default view of `records`: one line per event (time, service or `-` for the daemon,
/// what happened), FRR outcomes folded into their decisions unless `verbose`.
pub fn render_events(records: &[Record], verbose: bool) -> Vec<String> {
    events(records, verbose)
        .into_iter()
        .map(|(head, applies)| {
            let head = &records[head];
            let applies: Vec<&Record> = applies.iter().map(|&i| &records[i]).collect();
            let text = if verbose {
                event_text(&head.event)
            } else {
                group_text(head, &applies)
            };
            format!(
                "{} {} {}",
                format_time(head.at_ms),
                head.event.service().unwrap_or("-"),
                text
            )
        })
        .collect()
}

/// One human line for one record: time, service (`-` for the daemon), what happened.
pub fn render_text(record: &Record) -> String {
    format!(
        "{} {} {}",
        format_time(record.at_ms),
        record.event.service().unwrap_or("-"),
        event_text(&record.event)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_absolute_times_parse() {
        let now = 10 * 86_400_000;
        assert_eq!(parse_time("2h", now), Ok(now - 7_200_000));
        assert_eq!(parse_time("90s", now), Ok(now - 90_000));
        assert_eq!(parse_time("1970-01-01T00:00:01Z", now), Ok(1_000));
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("2x", now).is_err());
        // One duration syntax everywhere: bare seconds, weeks, and no overflow.
        assert_eq!(parse_time("90", now), Ok(now - 90_000));
        assert_eq!(parse_time("1w", now), Ok(now - 7 * 86_400_000));
        assert!(parse_time("999999d", now).unwrap_err().contains("too long"));
        assert!(parse_time("0", now).is_err());
    }

    fn record(seq: u64, at_ms: i64, event: Event) -> Record {
        Record {
            version: 2,
            seq,
            at_ms,
            event,
        }
    }

    fn prefix(p: &str) -> wire::PrefixRef {
        wire::PrefixRef {
            vtysh: "/usr/bin/vtysh".into(),
            vrf: None,
            prefix: p.into(),
        }
    }

    fn apply(decision_seq: u64, p: &str, outcome: wire::Outcome) -> Event {
        Event::Apply(wire::Apply {
            service: "dns".into(),
            prefix: prefix(p),
            change: wire::Change::Withdraw,
            outcome,
            decision_seq,
        })
    }

    #[test]
    fn an_frr_outcome_folds_into_the_transition_it_completes() {
        let records = vec![
            record(
                5,
                1_000,
                Event::Transition(wire::Transition {
                    service: "dns".into(),
                    from: wire::State::Healthy,
                    to: wire::State::Unhealthy,
                    cause: wire::Cause::Verdict {
                        healthy: false,
                        checks: vec![wire::CheckResult {
                            check: "dns".into(),
                            observation: wire::Observation::Fail("resolver down".into()),
                        }],
                    },
                    healthy_streak: 0,
                    unhealthy_streak: 1,
                    change: wire::Change::Withdraw,
                    prefixes: vec![prefix("203.0.113.53/32"), prefix("2001:db8::53/128")],
                }),
            ),
            record(
                6,
                1_040,
                apply(5, "203.0.113.53/32", wire::Outcome::Failed("x".into())),
            ),
            record(
                7,
                1_085,
                apply(5, "203.0.113.53/32", wire::Outcome::Applied),
            ),
            record(
                8,
                1_085,
                apply(5, "2001:db8::53/128", wire::Outcome::AlreadySo),
            ),
        ];
        let lines = render_events(&records, false);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].ends_with("withdraw 203.0.113.53/32, 2001:db8::53/128 (check dns failed: resolver down); FRR applied 85 ms after the deciding poll, 1 failed attempt(s) before (1 already so)"),
            "{}",
            lines[0]
        );
        assert_eq!(render_events(&records, true).len(), 4);
    }

    #[test]
    fn a_superseded_reconciliation_withdrawal_says_frr_was_not_changed() {
        let records = vec![
            record(
                3,
                1_000,
                Event::Reconciled(wire::Reconciled {
                    rebooted: false,
                    found: vec![prefix("203.0.113.53/32")],
                    items: vec![wire::ReconcileItem {
                        service: "dns".into(),
                        prefix: prefix("203.0.113.53/32"),
                        decision: wire::ReconcileDecision::Withdrawn,
                    }],
                    unreadable: vec![],
                }),
            ),
            record(
                9,
                1_300,
                apply(3, "203.0.113.53/32", wire::Outcome::Superseded),
            ),
        ];
        let lines = render_events(&records, false);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].contains("withdraw 203.0.113.53/32 of dns (in FRR, but not announced at the last stop): FRR superseded by a newer decision before it was applied (FRR unchanged)"),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn a_limit_and_a_tail_count_events_not_records() {
        let records: Vec<Record> = (1..=4)
            .map(|i| {
                record(
                    i * 10,
                    i as i64,
                    Event::Transition(wire::Transition {
                        service: "dns".into(),
                        from: wire::State::Starting,
                        to: wire::State::Healthy,
                        cause: wire::Cause::Restart,
                        healthy_streak: 0,
                        unhealthy_streak: 0,
                        change: wire::Change::Announce,
                        prefixes: vec![prefix("203.0.113.53/32")],
                    }),
                )
            })
            .flat_map(|t| {
                let seq = t.seq;
                [
                    t,
                    record(
                        seq + 1,
                        0,
                        apply(seq, "203.0.113.53/32", wire::Outcome::Applied),
                    ),
                ]
            })
            .collect();
        let kept = trim(
            records.clone(),
            &Query {
                tail: Some(1),
                ..Query::default()
            },
        );
        assert_eq!(kept.iter().map(|r| r.seq).collect::<Vec<_>>(), [40, 41]);
        let kept = trim(
            records,
            &Query {
                limit: Some(2),
                ..Query::default()
            },
        );
        assert_eq!(
            kept.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [10, 11, 20, 21]
        );
    }
}
