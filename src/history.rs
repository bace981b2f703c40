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
    /// At most this many records (the oldest first).
    pub limit: Option<usize>,
    /// Only records with a larger sequence number (resume a `--follow`).
    pub after_seq: Option<u64>,
    /// Include bookkeeping records (counts of unchanged results), which replay needs.
    #[serde(default)]
    pub bookkeeping: bool,
}

impl Query {
    /// Whether a record passes the time and sequence filters and the service filter.
    pub fn matches(&self, record: &Record) -> bool {
        // Counts of unchanged results are replay's bookkeeping, not events.
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

/// Records selected from a journal, and how many records of unknown versions were skipped.
#[derive(Debug, Default)]
pub struct Selection {
    /// The records, oldest first.
    pub records: Vec<Record>,
    /// Records skipped because their format version is unknown to this build.
    pub skipped_unknown: u64,
}

/// Select records from `journal`.
pub fn select(journal: &Reader, query: &Query) -> Result<Selection, anycastd_journal::Error> {
    let limit = query.limit.unwrap_or(usize::MAX);
    let mut selection = Selection::default();
    let take = |entry: Result<Entry, anycastd_journal::Error>,
                selection: &mut Selection|
     -> Result<bool, anycastd_journal::Error> {
        match entry? {
            Entry::Record(record) => {
                if query.until_ms.is_some_and(|t| record.at_ms >= t) {
                    return Ok(false);
                }
                if query.matches(&record) {
                    selection.records.push(record);
                }
            }
            Entry::UnknownVersion { .. } => selection.skipped_unknown += 1,
        }
        Ok(selection.records.len() < limit)
    };
    match &query.service {
        None => {
            let mut from = query.after_seq.map(|s| s + 1).unwrap_or(0);
            if let Some(since) = query.since_ms {
                from = from.max(journal.seq_at_or_after(since)?);
            }
            for entry in journal.entries_from(from) {
                if !take(entry, &mut selection)? {
                    break;
                }
            }
        }
        Some(service) => {
            // Merge the service's index with the daemon's own records, by sequence number.
            let mut own = journal.service_entries(service).peekable();
            let mut global = journal.global_entries().peekable();
            loop {
                let next_own = own.peek().map(entry_seq);
                let next_global = global.peek().map(entry_seq);
                let entry = match (next_own, next_global) {
                    (None, None) => break,
                    (Some(_), None) => own.next(),
                    (None, Some(_)) => global.next(),
                    (Some(a), Some(b)) if a <= b => own.next(),
                    _ => global.next(),
                };
                let Some(entry) = entry else { break };
                if !take(entry, &mut selection)? {
                    break;
                }
            }
        }
    }
    Ok(selection)
}

fn entry_seq(entry: &Result<Entry, anycastd_journal::Error>) -> u64 {
    match entry {
        Ok(Entry::Record(r)) => r.seq,
        Ok(Entry::UnknownVersion { seq, .. }) => *seq,
        Err(anycastd_journal::Error::Corrupt { seq, .. }) => *seq,
        Err(_) => 0,
    }
}

/// RFC 3339 UTC with milliseconds.
pub fn format_time(at_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(at_ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| at_ms.to_string())
}

/// Parse `--since`/`--until`: RFC 3339, or a duration before `now_ms` such as `90s`, `30m`,
/// `2h`, `1d`, `1w`.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| {
        format!("{text:?} is not a time: use RFC 3339 (2026-11-24T07:00:00Z) or a duration ago (90s, 30m, 2h, 1d)")
    })?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => {
            return Err(format!(
                "{text:?} is not a time: use RFC 3339 (2026-11-24T07:00:00Z) or a duration ago (90s, 30m, 2h, 1d)"
            ))
        }
    };
    Ok(now_ms.saturating_sub(number.saturating_mul(unit_ms)))
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
            let outcome = match &a.outcome {
                wire::Outcome::Applied => "applied".to_owned(),
                wire::Outcome::AlreadySo => "already so in FRR".to_owned(),
                wire::Outcome::Failed(e) => format!("failed: {e}"),
                wire::Outcome::Superseded => "superseded by a newer decision".to_owned(),
            };
            format!("FRR {verb} {}: {outcome}", prefix_text(&a.prefix))
        }
        Event::Reconciled(r) => {
            let mut parts = Vec::new();
            if r.rebooted {
                parts.push("host rebooted".to_owned());
            }
            for item in &r.items {
                let d = match item.decision {
                    wire::ReconcileDecision::Kept => "kept",
                    wire::ReconcileDecision::Orphan => "withdrew orphan",
                    wire::ReconcileDecision::Missing => "missing",
                    wire::ReconcileDecision::Withdrawn => "withdrew",
                    wire::ReconcileDecision::Adopted => "adopted",
                    wire::ReconcileDecision::Reboot => "withdrew after reboot",
                };
                parts.push(format!(
                    "{d} {} of {}",
                    prefix_text(&item.prefix),
                    item.service
                ));
            }
            for (vtysh, error) in &r.unreadable {
                parts.push(format!("could not read FRR through {vtysh}: {error}"));
            }
            if parts.is_empty() {
                "start-up reconciliation: nothing to do".into()
            } else {
                format!("start-up reconciliation: {}", parts.join("; "))
            }
        }
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

/// One human line: time, service (`-` for the daemon), what happened.
pub fn render_text(record: &Record) -> String {
    format!(
        "{} {} {}",
        format_time(record.at_ms),
        record.event.service().unwrap_or("-"),
        event_text(&record.event)
    )
}

/// One JSON object: seq, time, service, kind, text and the record itself.
pub fn render_json(record: &Record) -> serde_json::Value {
    serde_json::json!({
        "seq": record.seq,
        "time": format_time(record.at_ms),
        "service": record.event.service(),
        "kind": kind(&record.event),
        "text": event_text(&record.event),
        "record": &record.event,
    })
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
    }
}
