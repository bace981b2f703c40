//! The audit trail: selecting journal records and rendering them for people (`anycastd
//! history`) and machines (`--json`, one object per line).
//!
//! One line per record, oldest first: the UTC time (RFC 3339), the service (`-` for records
//! about the daemon), and what happened. A service's history includes the daemon's own
//! records (start, stop, reconciliation, operator actions), which give it context. Reads go
//! through the per-service index and a binary search on time, never a scan of the whole log.

use crate::audit::text::{event_text, format_time, group_text};
use anycastd_journal::wire::{self, Event};
use anycastd_journal::{Entry, Reader, Record};
use chrono::DateTime;

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
        let prefix = wire::PrefixRef::frr("/usr/bin/vtysh", None, "203.0.113.53/32");
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
                        Event::Transition(_)
                        | Event::Reconciled(_)
                        | Event::Reloaded(_)
                        | Event::Level(_) => {
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
/// an FRR outcome folds into the transition, start-up reconciliation, reload or level
/// change (by a reload) whose decision it completes, when that record is among `records`.
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
                // A level a reload changed decides its own routing changes.
                Event::Reconciled(_) | Event::Reloaded(_) | Event::Level(_) => {
                    by_decision.insert(record.seq, groups.len());
                }
                Event::Drift(d) => {
                    by_drift.insert((d.service.as_str(), &d.prefix), groups.len());
                }
                // A guarded withdrawal: the decision's line learns it was asked of the guard,
                // and the outcomes fold into the answer that let it go (timed from it).
                Event::FleetGuard(g) => {
                    if let Some(&decision) = by_decision.get(&g.transition_seq) {
                        groups[decision].1.push(i);
                    }
                    by_decision.insert(g.transition_seq, groups.len());
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

/// The default view of `records`: one line per event (time, service or `-` for the daemon,
/// what happened), FRR outcomes folded into their decisions unless `verbose`.
pub fn render_events(records: &[Record], verbose: bool) -> Vec<String> {
    // The shadow checks of each service, from the parameters journaled so far (a window
    // that starts after them does not know them, and marks nothing).
    let mut shadows: std::collections::HashMap<String, Vec<String>> = Default::default();
    let mut params: std::collections::HashMap<String, anycastd_journal::wire::ServiceParams> =
        Default::default();
    let learn = |shadows: &mut std::collections::HashMap<String, Vec<String>>,
                 params: &anycastd_journal::wire::ServiceParams| {
        shadows.insert(
            params.name.clone(),
            params
                .checks
                .iter()
                .filter(|c| c.shadow)
                .map(|c| c.name.clone())
                .collect(),
        );
    };
    events(records, verbose)
        .into_iter()
        .map(|(head, applies)| {
            let head = &records[head];
            // What a service's reconfiguration changed, against its parameters before.
            let mut changed = None;
            match &head.event {
                Event::DaemonStarted(s) => {
                    for p in &s.services {
                        learn(&mut shadows, p);
                        params.insert(p.name.clone(), p.clone());
                    }
                }
                Event::Reloaded(r) => {
                    for p in &r.services {
                        learn(&mut shadows, p);
                        // Services the reload added start with these.
                        params.entry(p.name.clone()).or_insert_with(|| p.clone());
                    }
                }
                Event::Reconfigured(r) => {
                    learn(&mut shadows, &r.params);
                    if let Some(old) = params.insert(r.service.clone(), r.params.clone()) {
                        changed = Some(crate::audit::text::params_changes(&old, &r.params));
                    }
                }
                _ => {}
            }
            let applies: Vec<&Record> = applies.iter().map(|&i| &records[i]).collect();
            let mut text = if verbose {
                event_text(&head.event)
            } else {
                group_text(head, &applies)
            };
            if let Some(changes) = changed.filter(|c| !c.is_empty()) {
                text.push_str(&format!(" ({})", changes.join(", ")));
            }
            if let Event::CheckEdge(e) = &head.event {
                if shadows
                    .get(&e.service)
                    .is_some_and(|s| s.contains(&e.check))
                {
                    text.push_str(" (shadow check)");
                }
            }
            format!(
                "{} {} {}",
                format_time(head.at_ms),
                head.event.service().unwrap_or("-"),
                text
            )
        })
        .collect()
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
        wire::PrefixRef::frr("/usr/bin/vtysh", None, p)
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
    fn a_held_withdrawal_says_it_was_asked_and_its_outcome_is_timed_from_the_grant() {
        let count = |announcing| wire::FleetCount {
            announcing,
            sites: 5,
            rule: "minimum 3".into(),
        };
        let guard = |answer| {
            Event::FleetGuard(wire::FleetGuard {
                service: "dns".into(),
                transition_seq: 5,
                answer,
            })
        };
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
                    prefixes: vec![prefix("203.0.113.53/32")],
                }),
            ),
            record(6, 1_020, guard(wire::FleetAnswer::Held(count(3)))),
            // Held for a minute, then granted; FRR applies 85 ms after the grant.
            record(7, 61_020, guard(wire::FleetAnswer::Granted(count(4)))),
            record(
                8,
                61_105,
                apply(5, "203.0.113.53/32", wire::Outcome::Applied),
            ),
        ];
        let lines = render_events(&records, false);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[0].ends_with("; asked of the fleet guard first (its answers follow)"),
            "{lines:?}"
        );
        assert!(!lines[0].contains("no FRR outcome journaled"), "{lines:?}");
        assert!(
            lines[1].ends_with(
                "withdrawal held by the fleet guard: withdrawing here would leave 2 of 5 sites announcing dns, minimum 3"
            ),
            "{lines:?}"
        );
        assert!(
            lines[2].ends_with(
                "withdrawal granted by the fleet guard: withdrawing here leaves 3 of 5 sites announcing dns, minimum 3; FRR applied in 85 ms"
            ),
            "{lines:?}"
        );
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
            lines[0].ends_with("withdraw 203.0.113.53/32, 2001:db8::53/128 (check dns failed: resolver down); FRR applied 85 ms after the deciding poll (1 already so), 1 failed attempt(s) before (the last: x)"),
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
