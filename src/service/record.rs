//! Which of a service's inputs are journaled, and how replay reads them back
//! (docs/ARCHITECTURE.md, "The journal").
//!
//! The rule (journal format 2): a check result is journaled as a record of its own when it
//! differs from the check's previous result (or is the first since a start or reload), when
//! it causes a transition, and when the verdict it forms differs from the one the previous
//! verdict-forming input formed. Every other result is *unchanged*: it repeats its check's
//! previous result and forms the same verdict as the last journaled input, so only its time
//! is needed. Those times are kept as [`wire::Segment`]s (a check's results at
//! `first, first + interval, ...`) and journaled as one [`wire::Runs`] record before the next
//! record that is an input of the service (an edge, a pending timeout, a drain, a reload, a
//! stop), when a replay asks while the daemon runs, and at least every [`CHECKPOINT_MS`].
//! A pending timeout is journaled when it formed a verdict; a timer that found nothing to do
//! (its check answered meanwhile) is not an input and is not journaled.
//!
//! A result's time is the time its poll was due (the scheduler's grid point), so the results
//! of a steady check fall exactly `interval` apart and a run costs one segment, not a record
//! per poll. [`Recorder::result_time`] snaps a time within [`SNAP_MS`] of the next point of
//! the check's open run onto it (the grid point's wall-clock time is read to the millisecond
//! at each poll), and the machine is fed the snapped time: live and replay see the same times.
//!
//! Replay decodes with [`expand`], the inverse of the segments written here.

use anycastd_fsm::{Observation, Step};
use anycastd_journal::wire::{self, Event};

/// Unchanged results are journaled at least this often (ms): a crash loses at most this
/// much of them (replay shows the rest as a gap).
pub const CHECKPOINT_MS: i64 = 3_600_000;

/// A result's time this close to the next point of its check's run is that point.
pub const SNAP_MS: i64 = 2;

#[derive(Debug, Clone)]
struct CheckState {
    name: String,
    interval_ms: u64,
    /// The previous result (`None` until the first since the start or reload).
    last: Option<Observation>,
    /// Index in `pending` of the run this check's next unchanged result may extend.
    open: Option<usize>,
    /// Where the check's next result is expected (previous result + interval).
    next_ms: Option<i64>,
}

/// The recording state of one service.
#[derive(Debug, Clone)]
pub struct Recorder {
    service: String,
    checks: Vec<CheckState>,
    /// Runs of unchanged results not yet journaled, in the order they started.
    pending: Vec<wire::Segment>,
    /// The verdict formed by the last verdict-forming input (`None` inside: none formed);
    /// `None` before the first.
    last_verdict: Option<Option<bool>>,
    /// The latest time among the pending results.
    pending_until: i64,
}

impl Recorder {
    /// A recorder for `service` with these checks (name, interval in ms).
    pub fn new(service: &str, checks: &[(String, u64)]) -> Recorder {
        Recorder {
            service: service.to_owned(),
            checks: checks
                .iter()
                .map(|(name, interval_ms)| CheckState {
                    name: name.clone(),
                    interval_ms: *interval_ms,
                    last: None,
                    open: None,
                    next_ms: None,
                })
                .collect(),
            pending: Vec::new(),
            last_verdict: None,
            pending_until: i64::MIN,
        }
    }

    /// A reload replaced the check list: every check's next result is journaled (it is the
    /// first under the new definition). Call after [`Recorder::take_runs`].
    pub fn reconfigure(&mut self, checks: &[(String, u64)]) {
        let last_verdict = self.last_verdict;
        *self = Recorder::new(&self.service, checks);
        self.last_verdict = last_verdict;
    }

    /// The time to feed the machine for a result of `check` whose poll was due at `due_ms`.
    pub fn result_time(&self, check: usize, due_ms: i64) -> i64 {
        match self.checks.get(check).and_then(|c| c.next_ms) {
            Some(next) if (due_ms - next).abs() <= SNAP_MS => next,
            _ => due_ms,
        }
    }

    /// Whether `observation` would be an edge of `check` (a change, or the first result).
    pub fn is_edge(&self, check: usize, observation: &Observation) -> bool {
        self.checks
            .get(check)
            .is_none_or(|c| c.last.as_ref() != Some(observation))
    }

    /// A result was fed to the machine (at `at`, from [`Recorder::result_time`]) and gave
    /// `step`: the records to journal, in order (empty when the result is only part of a run).
    /// A shadow check's results (`gates` false) never form verdicts, whatever their params
    /// say in a replay; they are left out of the verdict comparison.
    pub fn observed(
        &mut self,
        check: usize,
        observation: &Observation,
        at: i64,
        step: &Step,
        gates: bool,
    ) -> Vec<Event> {
        let verdict_changed = gates && self.last_verdict.is_some_and(|last| last != step.verdict);
        if gates {
            self.last_verdict = Some(step.verdict);
        }
        let Some(state) = self.checks.get_mut(check) else {
            return Vec::new();
        };
        state.next_ms = Some(at.saturating_add(i64::try_from(state.interval_ms).unwrap_or(0)));
        let edge = state.last.as_ref() != Some(observation);
        if edge || step.transition.is_some() || verdict_changed {
            state.last = Some(observation.clone());
            state.open = None;
            let name = state.name.clone();
            let mut records: Vec<Event> = self.take_runs().into_iter().collect();
            records.push(Event::CheckEdge(wire::CheckEdge {
                service: self.service.clone(),
                check: name,
                observation: observation.into(),
                polls_since_last_edge: 0,
            }));
            return records;
        }
        // Replay feeds a record's runs in time order, so one record holds only results that
        // were taken in time order: a result older than one already pending (a slow poll
        // overtaken by another check's) starts a new record.
        let mut records = Vec::new();
        if at < self.pending_until {
            records.extend(self.take_runs());
        }
        let Some(state) = self.checks.get_mut(check) else {
            return records;
        };
        self.pending_until = self.pending_until.max(at);
        // Unchanged: extend the check's run when this result is its next point.
        let extends = state
            .open
            .and_then(|i| self.pending.get(i))
            .is_some_and(|run| run.time_of(run.count) == at);
        match state.open {
            Some(i) if extends => self.pending[i].count += 1,
            _ => {
                state.open = Some(self.pending.len());
                self.pending.push(wire::Segment {
                    check: state.name.clone(),
                    first_ms: at,
                    interval_ms: state.interval_ms,
                    count: 1,
                });
            }
        }
        records
    }

    /// A pending-timeout timer of `check` fired and gave `step`: journaled only when it
    /// formed a verdict (then it is an input replay needs).
    pub fn timed_out(&mut self, check: usize, step: &Step) -> Vec<Event> {
        if step.verdict.is_none() {
            return Vec::new();
        }
        self.last_verdict = Some(step.verdict);
        let name = self
            .checks
            .get(check)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let mut records: Vec<Event> = self.take_runs().into_iter().collect();
        records.push(Event::PendingTimeout(wire::PendingTimeout {
            service: self.service.clone(),
            check: name,
            polls_since_last_edge: 0,
        }));
        records
    }

    /// The runs not yet journaled, as one record (and forget them).
    pub fn take_runs(&mut self) -> Option<Event> {
        for check in &mut self.checks {
            check.open = None;
        }
        self.pending_until = i64::MIN;
        (!self.pending.is_empty()).then(|| {
            Event::Runs(wire::Runs {
                service: self.service.clone(),
                segments: std::mem::take(&mut self.pending),
            })
        })
    }

    /// Whether results are waiting to be journaled.
    pub fn has_runs(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether the oldest unjournaled result is [`CHECKPOINT_MS`] older than `now_ms`.
    pub fn checkpoint_due(&self, now_ms: i64) -> bool {
        self.pending
            .iter()
            .map(|run| run.first_ms)
            .min()
            .is_some_and(|first| now_ms.saturating_sub(first) >= CHECKPOINT_MS)
    }
}

/// How far past its record a run's last result may lie (a result's time is when its poll
/// was due, before it was journaled; the slack covers clock adjustments).
pub const RUN_SLACK_MS: i64 = 60_000;

/// Whether a segment of a runs record journaled at `record_ms` is possible: a positive
/// interval, and results that fit before the record (so a damaged count cannot make replay
/// run for ever).
pub fn plausible(segment: &wire::Segment, record_ms: i64) -> bool {
    let Ok(interval) = i64::try_from(segment.interval_ms) else {
        return false;
    };
    let Ok(count) = i64::try_from(segment.count) else {
        return false;
    };
    interval > 0
        && count > 0
        && count
            .checked_sub(1)
            .and_then(|n| n.checked_mul(interval))
            .and_then(|span| segment.first_ms.checked_add(span))
            .is_some_and(|last| last <= record_ms.saturating_add(RUN_SLACK_MS))
}

/// The results a [`wire::Runs`] record stands for, in the order replay feeds them: by time
/// (a stable merge of the segments, computed as it goes). Each is (check name, time).
pub fn expand<'a>(segments: &'a [wire::Segment]) -> impl Iterator<Item = (&'a str, i64)> + 'a {
    // Next result of each segment, ordered by (time, segment), as a heap.
    let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<(i64, usize, u64)>> = segments
        .iter()
        .enumerate()
        .filter(|(_, s)| s.count > 0)
        .map(|(i, s)| std::cmp::Reverse((s.first_ms, i, 0)))
        .collect();
    std::iter::from_fn(move || {
        let std::cmp::Reverse((at, i, n)) = heap.pop()?;
        let segment = &segments[i];
        if n + 1 < segment.count {
            heap.push(std::cmp::Reverse((segment.time_of(n + 1), i, n + 1)));
        }
        Some((segment.check.as_str(), at))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(verdict: Option<bool>) -> Step {
        Step {
            verdict,
            ..Step::default()
        }
    }

    fn recorder() -> Recorder {
        Recorder::new("dns", &[("a".into(), 1000), ("b".into(), 500)])
    }

    #[test]
    fn a_first_result_and_a_change_are_records_and_repeats_are_runs() {
        let mut r = recorder();
        let first = r.observed(0, &Observation::Pass, 1_000, &step(Some(true)), true);
        assert!(matches!(first.as_slice(), [Event::CheckEdge(_)]));
        for i in 1..=3 {
            let at = r.result_time(0, 1_000 + i * 1000 + 1);
            assert_eq!(at, 1_000 + i * 1000, "snapped onto the run");
            assert!(r
                .observed(0, &Observation::Pass, at, &step(Some(true)), true)
                .is_empty());
        }
        let change = r.observed(
            0,
            &Observation::Fail("x".into()),
            5_000,
            &step(Some(false)),
            true,
        );
        match change.as_slice() {
            [Event::Runs(runs), Event::CheckEdge(edge)] => {
                assert_eq!(
                    runs.segments,
                    [wire::Segment {
                        check: "a".into(),
                        first_ms: 2_000,
                        interval_ms: 1000,
                        count: 3
                    }]
                );
                assert_eq!(edge.polls_since_last_edge, 0);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_skipped_grid_point_starts_a_new_run() {
        let mut r = recorder();
        r.observed(0, &Observation::Pass, 0, &step(Some(true)), true);
        for at in [1_000, 2_000, 4_000, 5_000] {
            let at = r.result_time(0, at);
            r.observed(0, &Observation::Pass, at, &step(Some(true)), true);
        }
        let Some(Event::Runs(runs)) = r.take_runs() else {
            panic!("no runs")
        };
        let spans: Vec<(i64, u64)> = runs
            .segments
            .iter()
            .map(|s| (s.first_ms, s.count))
            .collect();
        assert_eq!(spans, [(1_000, 2), (4_000, 2)]);
        assert_eq!(
            expand(&runs.segments).collect::<Vec<_>>(),
            [("a", 1_000), ("a", 2_000), ("a", 4_000), ("a", 5_000)]
        );
    }

    #[test]
    fn a_stale_pending_timer_is_not_journaled_and_does_not_count_as_a_verdict() {
        let mut r = recorder();
        r.observed(0, &Observation::Pass, 0, &step(Some(true)), true);
        assert!(r.timed_out(1, &step(None)).is_empty());
        // The next unchanged result still forms the same verdict as the last one journaled.
        assert!(r
            .observed(0, &Observation::Pass, 1_000, &step(Some(true)), true)
            .is_empty());
    }

    #[test]
    fn a_verdict_change_without_an_edge_is_a_record() {
        let mut r = recorder();
        r.observed(0, &Observation::Pass, 0, &step(None), true);
        // Same result, but now it forms a verdict (the other check's pending timed out).
        let records = r.observed(0, &Observation::Pass, 1_000, &step(Some(false)), true);
        assert!(matches!(records.as_slice(), [Event::CheckEdge(_)]));
    }

    #[test]
    fn a_shadow_checks_results_forming_no_verdict_do_not_break_the_runs() {
        let mut r = recorder();
        assert!(!r
            .observed(0, &Observation::Pass, 0, &step(Some(true)), true)
            .is_empty());
        assert!(!r
            .observed(1, &Observation::Pass, 0, &step(None), false)
            .is_empty());
        // In time order: the shadow check ("b", every 500 ms) forms no verdict, the gating
        // one ("a", every 1000 ms) the same verdict as before.
        for i in 1..=12 {
            assert!(r
                .observed(1, &Observation::Pass, i * 500, &step(None), false)
                .is_empty());
            if i % 2 == 0 {
                assert!(r
                    .observed(0, &Observation::Pass, i * 500, &step(Some(true)), true)
                    .is_empty());
            }
        }
    }

    #[test]
    fn runs_of_two_checks_expand_in_time_order() {
        let mut r = recorder();
        r.observed(0, &Observation::Pass, 0, &step(Some(true)), true);
        r.observed(1, &Observation::Pass, 0, &step(Some(true)), true);
        for i in 1..=4 {
            r.observed(1, &Observation::Pass, i * 500, &step(Some(true)), true);
            if i % 2 == 0 {
                r.observed(0, &Observation::Pass, i * 500, &step(Some(true)), true);
            }
        }
        assert!(!r.checkpoint_due(CHECKPOINT_MS));
        assert!(r.checkpoint_due(500 + CHECKPOINT_MS));
        let Some(Event::Runs(runs)) = r.take_runs() else {
            panic!("no runs")
        };
        let times: Vec<i64> = expand(&runs.segments).map(|(_, at)| at).collect();
        assert_eq!(times, [500, 1_000, 1_000, 1_500, 2_000, 2_000]);
    }

    #[test]
    fn a_run_that_cannot_fit_before_its_record_is_not_plausible() {
        let run = |first_ms, interval_ms, count| wire::Segment {
            check: "a".into(),
            first_ms,
            interval_ms,
            count,
        };
        assert!(plausible(&run(0, 1_000, 3_600), 3_600_000));
        assert!(!plausible(&run(0, 1_000, 3_600), 3_000_000 - RUN_SLACK_MS));
        assert!(!plausible(&run(0, 0, 1), 10));
        assert!(!plausible(&run(0, 1_000, 0), 10));
        assert!(!plausible(&run(i64::MAX - 5, 1_000, u64::MAX), i64::MAX));
        assert!(!plausible(&run(0, u64::MAX, 2), i64::MAX));
    }
}
