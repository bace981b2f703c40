//! Postmortem replay (`anycastd replay`): re-run a service's journaled inputs through the
//! state machine, check that the re-run reproduces the recorded transitions exactly, and
//! answer "what would other settings have done?".
//!
//! The inputs are in the journal (see `wire::CheckEdge`): every check result that changed, or
//! that caused a transition, is a record carrying the number of the service's results since
//! the previous record; those results all formed the same verdict as the last recorded one, so
//! replay feeds them again as repeats. Pending timeouts, operator drains and undrains, drain
//! expiries, shutdown and removal drains, restarts (with the state the reconciliation gave)
//! and reloads (with their parameters) are records too. A daemon killed mid-run leaves a
//! *gap*: whatever it did after its last record is unknown, and replay says so instead of
//! calling it a divergence. Pure over a list of records: no clock, no IO.

use crate::history::{cause_text, format_time, state_text};
use anycastd_fsm::{self as fsm, Input, Machine, Params, Timer, Timestamp};
use anycastd_journal::wire::{self, Event};
use anycastd_journal::Record;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Other parameters for a what-if run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhatIf {
    /// Replace `rise`.
    pub rise: Option<u32>,
    /// Replace `fall`.
    pub fall: Option<u32>,
    /// Replace the flap damping parameters (damping on, with these).
    #[serde(default)]
    pub damping: Option<wire::DampingParams>,
}

impl WhatIf {
    fn is_empty(&self) -> bool {
        self.rise.is_none() && self.fall.is_none() && self.damping.is_none()
    }
}

/// One transition on a timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// RFC 3339.
    pub time: String,
    /// State before.
    pub from: String,
    /// State after.
    pub to: String,
    /// Time spent in the previous state (ms), when known.
    pub dwell_ms: Option<i64>,
    /// Why, with the failing check.
    pub cause: String,
}

/// Figures over a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Transitions in the window.
    pub transitions: usize,
    /// Withdrawals caused by health (healthy -> unhealthy).
    pub flaps: usize,
    /// Most flaps in any hour of the window.
    pub worst_hour_flaps: usize,
    /// Share of the window during which the prefixes were announced.
    pub announced_ratio: f64,
    /// Longest time not announced (ms), between the first announcement and the window's end.
    pub longest_outage_ms: i64,
}

/// A run: its transitions and figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// `rise`/`fall` used (as recorded, or the what-if).
    pub parameters: String,
    /// Transitions in the window, oldest first.
    pub timeline: Vec<Step>,
    /// Figures.
    pub summary: Summary,
}

/// Where the re-run did not reproduce the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    /// Sequence number of the record concerned.
    pub seq: u64,
    /// What the journal says.
    pub recorded: String,
    /// What the re-run did.
    pub replayed: String,
}

/// A stretch where the daemon was killed: nothing is known after its last record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    /// Last record before the crash (ms).
    pub from_ms: i64,
    /// The next start (ms).
    pub to_ms: i64,
}

/// Everything `replay` reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The service.
    pub service: String,
    /// Window start (ms).
    pub from_ms: i64,
    /// Window end (ms).
    pub to_ms: i64,
    /// Observations re-run (records and repeats), over the whole journal.
    pub observations: u64,
    /// What really happened (the journal's transitions), in the window.
    pub recorded: Run,
    /// Transitions of the re-run with the recorded parameters that the journal confirms.
    pub verified: usize,
    /// Where the re-run differs from the journal.
    pub divergences: Vec<Divergence>,
    /// Crash gaps.
    pub gaps: Vec<Gap>,
    /// The what-if run, when other parameters were given.
    pub what_if: Option<Run>,
}

/// A state machine driven by the journaled inputs.
struct Sim {
    machine: Option<Machine>,
    checks: Vec<(String, String)>,
    what_if: WhatIf,
    /// Transitions produced and not yet matched against the journal: (at, transition).
    produced: Vec<(i64, fsm::Transition)>,
    /// Every transition produced (for the what-if timeline).
    all: Vec<(i64, fsm::Transition)>,
    drain_deadline: Option<i64>,
    /// When the damping suppression may end (fired by the sim itself in what-if runs).
    reuse_deadline: Option<i64>,
    /// The damping parameters the journal gives (a what-if may replace them).
    recorded_damping: Option<wire::DampingParams>,
    observations: u64,
}

fn params_of(p: &wire::ServiceParams, what_if: &WhatIf) -> Params {
    Params {
        rise: what_if.rise.unwrap_or(p.rise),
        fall: what_if.fall.unwrap_or(p.fall),
        pending_timeouts: p
            .checks
            .iter()
            .map(|c| Duration::from_millis(c.pending_timeout_ms))
            .collect(),
        // Damping comes in its own record (`ServiceDamping`), right after.
        damping: None,
    }
}

impl Sim {
    fn new(what_if: WhatIf) -> Sim {
        Sim {
            machine: None,
            checks: Vec::new(),
            what_if,
            produced: Vec::new(),
            all: Vec::new(),
            drain_deadline: None,
            reuse_deadline: None,
            recorded_damping: None,
            observations: 0,
        }
    }

    /// Apply recorded damping parameters (a what-if keeps its own).
    fn set_damping(&mut self, recorded: Option<&wire::DampingParams>) {
        self.recorded_damping = recorded.cloned();
        self.apply_damping();
    }

    fn apply_damping(&mut self) {
        let params = self
            .what_if
            .damping
            .as_ref()
            .or(self.recorded_damping.as_ref())
            .map(fsm::Damping::from);
        if let Some(machine) = self.machine.as_mut() {
            let actions = machine.set_damping(params);
            self.after(actions, 0);
        }
    }

    /// Fire the sim's own damping timer if it is due by `at`.
    fn fire_due_reuse(&mut self, at: i64) {
        if let Some(deadline) = self.reuse_deadline {
            if deadline <= at {
                self.reuse_deadline = None;
                self.feed(Input::TimerFired {
                    timer: Timer::DampingReuse,
                    at: Timestamp(deadline),
                });
            }
        }
    }

    fn start(&mut self, params: &wire::ServiceParams, state: fsm::State, at: i64) {
        let (machine, actions) =
            Machine::with_state(params_of(params, &self.what_if), state, Timestamp(at));
        self.machine = Some(machine);
        self.checks = params
            .checks
            .iter()
            .map(|c| (c.name.clone(), c.url.clone()))
            .collect();
        self.reuse_deadline = None;
        self.after(actions, at);
        // The damping parameters outlive a restart of the sim (a start or reconciliation).
        self.apply_damping();
        if params.checks.is_empty() {
            self.feed(Input::TimerFired {
                timer: Timer::Evaluate,
                at: Timestamp(at),
            });
        }
    }

    fn reconfigure(&mut self, params: &wire::ServiceParams, at: i64) {
        let Some(machine) = self.machine.as_mut() else {
            self.start(params, fsm::State::Starting, at);
            return;
        };
        let kept: Vec<Option<usize>> = params
            .checks
            .iter()
            .map(|c| {
                self.checks
                    .iter()
                    .position(|(n, u)| *n == c.name && *u == c.url)
            })
            .collect();
        let actions = machine.reconfigure(params_of(params, &self.what_if), &kept, Timestamp(at));
        self.checks = params
            .checks
            .iter()
            .map(|c| (c.name.clone(), c.url.clone()))
            .collect();
        self.after(actions, at);
        self.apply_damping();
    }

    fn after(&mut self, actions: Vec<fsm::Action>, _at: i64) {
        for action in actions {
            if let fsm::Action::ArmTimer {
                timer: Timer::DrainExpiry,
                deadline,
            } = action
            {
                self.drain_deadline = Some(deadline.0);
            }
        }
    }

    fn feed(&mut self, input: Input) {
        let at = input.at().0;
        let Some(machine) = self.machine.as_mut() else {
            return;
        };
        let step = machine.step(input);
        if let Some(transition) = step.transition {
            self.produced.push((at, transition.clone()));
            self.all.push((at, transition));
        }
        self.after(step.actions, at);
    }

    /// `n` more results identical to the last ones, at `at` (the window's start).
    fn repeats(&mut self, n: u64, at: i64) {
        let Some(machine) = self.machine.as_ref() else {
            return;
        };
        let Some((check, observation)) = machine
            .observations()
            .enumerate()
            .next()
            .map(|(i, o)| (i, o.clone()))
        else {
            return;
        };
        for _ in 0..n {
            self.observations += 1;
            self.feed(Input::Observed {
                check,
                observation: observation.clone(),
                at: Timestamp(at),
            });
        }
    }

    fn check_index(&self, name: &str) -> Option<usize> {
        self.checks.iter().position(|(n, _)| n == name)
    }

    fn state(&self) -> Option<&fsm::State> {
        self.machine.as_ref().map(|m| m.state())
    }
}

fn describe(t: &fsm::Transition) -> String {
    format!(
        "{} -> {} (healthy streak {}, unhealthy streak {})",
        t.from.name(),
        t.to.name(),
        t.counters.healthy_streak,
        t.counters.unhealthy_streak
    )
}

fn describe_recorded(t: &wire::Transition) -> String {
    format!(
        "{} -> {} (healthy streak {}, unhealthy streak {})",
        fsm::State::from(&t.from).name(),
        fsm::State::from(&t.to).name(),
        t.healthy_streak,
        t.unhealthy_streak
    )
}

fn same(replayed: &fsm::Transition, recorded: &wire::Transition) -> bool {
    wire::State::from(&replayed.from) == recorded.from
        && wire::State::from(&replayed.to) == recorded.to
        && replayed.counters.healthy_streak == recorded.healthy_streak
        && replayed.counters.unhealthy_streak == recorded.unhealthy_streak
}

/// Re-run `service`'s records (its own and the daemon's, in order). `since`/`until` bound the
/// reported window; the re-run always starts from the first record, so the state entering the
/// window is right.
pub fn replay(
    service: &str,
    records: &[Record],
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    what_if: &WhatIf,
) -> Report {
    let mut actual = Sim::new(WhatIf::default());
    let mut other = Sim::new(what_if.clone());
    let mut report = Report {
        service: service.to_owned(),
        ..Report::default()
    };
    let mut recorded: Vec<(i64, wire::Transition)> = Vec::new();
    let mut epoch_open = false;
    let mut last_at: Option<i64> = None;
    let mut window_start: i64 = 0;
    let mut current_params: Option<wire::ServiceParams> = None;
    let mut last_state = wire::State::Starting;

    for record in records {
        let at = record.at_ms;
        // The what-if run fires its own damping timers; the recorded run takes them from the
        // journal (their exact times are there).
        other.fire_due_reuse(at);
        match &record.event {
            Event::DaemonStarted(started) => {
                if epoch_open {
                    report.gaps.push(Gap {
                        from_ms: last_at.unwrap_or(at),
                        to_ms: at,
                    });
                    // What the killed daemon did after its last record is unknown.
                    actual.produced.clear();
                    other.produced.clear();
                }
                epoch_open = true;
                current_params = started.services.iter().find(|s| s.name == service).cloned();
                // Only an operator drain outlives a restart; reconciliation says otherwise.
                let initial = match &last_state {
                    wire::State::Draining(cause @ wire::DrainCause::Operator { .. }) => {
                        fsm::State::Draining(cause.into())
                    }
                    _ => fsm::State::Starting,
                };
                for sim in [&mut actual, &mut other] {
                    sim.machine = None;
                    if let Some(params) = &current_params {
                        sim.start(params, initial.clone(), at);
                    }
                }
                window_start = at;
            }
            Event::DaemonStopped(_) => {
                epoch_open = false;
            }
            Event::ServiceDamping(d) if d.service == service => {
                actual.set_damping(d.params.as_ref());
                other.set_damping(d.params.as_ref());
            }
            Event::Damping(d) if d.service == service => {
                if d.restored {
                    for sim in [&mut actual, &mut other] {
                        if let Some(machine) = sim.machine.as_mut() {
                            let actions = machine.restore_damping(d.state());
                            sim.after(actions, at);
                        }
                    }
                } else {
                    // A suppression that ended without a transition: the timer fired here.
                    if d.suppressed_since_ms.is_none()
                        && actual.machine.as_ref().is_some_and(|m| m.suppressed())
                    {
                        actual.feed(Input::TimerFired {
                            timer: Timer::DampingReuse,
                            at: Timestamp(at),
                        });
                    }
                    // Bit for bit: the re-run's damping state must be the journal's.
                    if let Some(machine) = actual.machine.as_ref() {
                        if machine.damping() != d.state() {
                            report.divergences.push(Divergence {
                                seq: record.seq,
                                recorded: format!("damping {:?}", d.state()),
                                replayed: format!("damping {:?}", machine.damping()),
                            });
                            let actions = actual
                                .machine
                                .as_mut()
                                .map(|m| m.restore_damping(d.state()))
                                .unwrap_or_default();
                            actual.after(actions, at);
                        }
                    }
                }
            }
            Event::Reloaded(reloaded) => {
                let params = reloaded
                    .services
                    .iter()
                    .find(|s| s.name == service)
                    .cloned();
                if let Some(params) = &params {
                    if current_params.as_ref() != Some(params) {
                        actual.reconfigure(params, at);
                        other.reconfigure(params, at);
                    }
                }
                current_params = params;
                window_start = at;
            }
            Event::CheckEdge(edge) if edge.service == service => {
                for sim in [&mut actual, &mut other] {
                    sim.repeats(edge.polls_since_last_edge, window_start);
                    if let Some(check) = sim.check_index(&edge.check) {
                        sim.observations += 1;
                        sim.feed(Input::Observed {
                            check,
                            observation: (&edge.observation).into(),
                            at: Timestamp(at),
                        });
                    }
                }
                window_start = at;
            }
            Event::PendingTimeout(timeout) if timeout.service == service => {
                for sim in [&mut actual, &mut other] {
                    sim.repeats(timeout.polls_since_last_edge, window_start);
                    if let Some(check) = sim.check_index(&timeout.check) {
                        sim.feed(Input::TimerFired {
                            timer: Timer::PendingTimeout(check),
                            at: Timestamp(at),
                        });
                    }
                }
                window_start = at;
            }
            Event::Polls(polls) if polls.service == service => {
                for sim in [&mut actual, &mut other] {
                    sim.repeats(polls.polls, window_start);
                }
            }
            Event::Operator(wire::OperatorAction {
                kind:
                    wire::OperatorKind::Drain {
                        service: s,
                        reason,
                        expires_at_ms,
                    },
                uid,
                ..
            }) if s == service => {
                let cause = fsm::DrainCause::Operator {
                    reason: reason.clone(),
                    expires_at: expires_at_ms.map(Timestamp),
                    uid: *uid,
                };
                for sim in [&mut actual, &mut other] {
                    sim.feed(Input::Drain {
                        cause: cause.clone(),
                        at: Timestamp(at),
                    });
                }
            }
            Event::Operator(wire::OperatorAction {
                kind: wire::OperatorKind::Undrain { service: s },
                ..
            }) if s == service => {
                for sim in [&mut actual, &mut other] {
                    sim.feed(Input::Undrain { at: Timestamp(at) });
                }
            }
            Event::Transition(t) if t.service == service => {
                last_state = t.to.clone();
                match &t.cause {
                    wire::Cause::Restored | wire::Cause::Adopted | wire::Cause::Restart => {
                        // The reconciliation set the starting state.
                        for sim in [&mut actual, &mut other] {
                            if let Some(params) = &current_params {
                                sim.start(params, (&t.to).into(), at);
                            }
                        }
                        recorded.push((at, t.clone()));
                        continue;
                    }
                    wire::Cause::Drain => {
                        if let wire::State::Draining(
                            cause @ (wire::DrainCause::Shutdown | wire::DrainCause::Removed),
                        ) = &t.to
                        {
                            for sim in [&mut actual, &mut other] {
                                sim.feed(Input::Drain {
                                    cause: cause.into(),
                                    at: Timestamp(at),
                                });
                            }
                        }
                    }
                    wire::Cause::DrainExpired => {
                        for sim in [&mut actual, &mut other] {
                            sim.feed(Input::TimerFired {
                                timer: Timer::DrainExpiry,
                                at: Timestamp(at),
                            });
                        }
                    }
                    wire::Cause::Unsuppressed => {
                        actual.feed(Input::TimerFired {
                            timer: Timer::DampingReuse,
                            at: Timestamp(at),
                        });
                    }
                    wire::Cause::Verdict { .. } | wire::Cause::Undrain => {}
                }
                recorded.push((at, t.clone()));
                // Verify: the re-run must have produced exactly this transition, and nothing
                // before it.
                let produced = std::mem::take(&mut actual.produced);
                match produced.split_last() {
                    Some((last, extra)) => {
                        for (_, extra) in extra {
                            report.divergences.push(Divergence {
                                seq: record.seq,
                                recorded: "no transition".into(),
                                replayed: describe(extra),
                            });
                        }
                        if same(&last.1, t) {
                            report.verified += 1;
                        } else {
                            report.divergences.push(Divergence {
                                seq: record.seq,
                                recorded: describe_recorded(t),
                                replayed: describe(&last.1),
                            });
                        }
                    }
                    None => report.divergences.push(Divergence {
                        seq: record.seq,
                        recorded: describe_recorded(t),
                        replayed: "no transition".into(),
                    }),
                }
                // Follow the journal, so one divergence does not cascade.
                if actual.state().map(wire::State::from).as_ref() != Some(&t.to) {
                    if let Some(params) = &current_params {
                        actual.start(params, (&t.to).into(), at);
                    }
                }
            }
            _ => {}
        }
        last_at = Some(at);
    }
    // Transitions produced after the last recorded one of a cleanly stopped daemon would be
    // divergences; after a crash they fall into the gap.
    if !epoch_open {
        for (_, t) in actual.produced.drain(..) {
            report.divergences.push(Divergence {
                seq: records.last().map(|r| r.seq).unwrap_or(0),
                recorded: "no transition".into(),
                replayed: describe(&t),
            });
        }
    }
    report.observations = actual.observations;
    let first = records.first().map(|r| r.at_ms).unwrap_or(0);
    let last = records.last().map(|r| r.at_ms).unwrap_or(first);
    report.from_ms = since_ms
        .unwrap_or(first)
        .max(first.min(since_ms.unwrap_or(first)));
    report.to_ms = until_ms
        .map(|u| u.min(last.max(report.from_ms)))
        .unwrap_or(last);
    let recorded_run: Vec<(i64, String, String, String, bool)> = recorded
        .iter()
        .map(|(at, t)| {
            (
                *at,
                state_text(&t.from),
                state_text(&t.to),
                cause_text(&t.cause),
                matches!(t.cause, wire::Cause::Verdict { healthy: false, .. })
                    && t.from == wire::State::Healthy,
            )
        })
        .collect();
    let params_text = current_params
        .as_ref()
        .map(|p| format!("rise {}, fall {}, as recorded", p.rise, p.fall))
        .unwrap_or_else(|| "as recorded".into());
    report.recorded = build_run(params_text, &recorded_run, report.from_ms, report.to_ms);
    if !what_if.is_empty() {
        let names: Vec<String> = other.checks.iter().map(|(n, _)| n.clone()).collect();
        let run: Vec<(i64, String, String, String, bool)> = other
            .all
            .iter()
            .map(|(at, t)| {
                let cause = wire::Cause::from_fsm(&t.cause, &names);
                (
                    *at,
                    state_text(&(&t.from).into()),
                    state_text(&(&t.to).into()),
                    cause_text(&cause),
                    matches!(t.cause, fsm::Cause::Verdict(ref v) if !v.healthy)
                        && t.from == fsm::State::Healthy,
                )
            })
            .collect();
        let text = format!(
            "rise {}, fall {}, what-if",
            what_if
                .rise
                .map(|r| r.to_string())
                .unwrap_or_else(|| "as recorded".into()),
            what_if
                .fall
                .map(|f| f.to_string())
                .unwrap_or_else(|| "as recorded".into())
        );
        report.what_if = Some(build_run(text, &run, report.from_ms, report.to_ms));
    }
    report
}

/// Read `service`'s records (and the daemon's) from the journal and replay them.
pub fn replay_from(
    reader: &anycastd_journal::Reader,
    service: &str,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    what_if: &WhatIf,
) -> Result<Report, String> {
    let query = crate::history::Query {
        service: Some(service.to_owned()),
        bookkeeping: true,
        ..crate::history::Query::default()
    };
    let selection = crate::history::select(reader, &query).map_err(|e| e.to_string())?;
    Ok(replay(
        service,
        &selection.records,
        since_ms,
        until_ms,
        what_if,
    ))
}

/// Timeline and figures of transitions `(at, from, to, cause, health_withdrawal)` in
/// `[from_ms, to_ms]`.
fn build_run(
    parameters: String,
    transitions: &[(i64, String, String, String, bool)],
    from_ms: i64,
    to_ms: i64,
) -> Run {
    let mut run = Run {
        parameters,
        ..Run::default()
    };
    let mut previous_at: Option<i64> = None;
    let mut announced_since: Option<i64> = None;
    let mut announced_ms: i64 = 0;
    let mut outage_since: Option<i64> = None;
    let mut longest_outage: i64 = 0;
    let mut ever_announced = false;
    let mut flap_times = Vec::new();
    for (at, from, to, cause, withdrawal) in transitions {
        let at = *at;
        let announces = to == "healthy";
        let clipped = at.clamp(from_ms, to_ms);
        // Announced time and outages, clipped to the window.
        if let Some(since) = announced_since.take() {
            announced_ms += clipped - since.clamp(from_ms, to_ms);
        }
        if announces {
            announced_since = Some(at);
            ever_announced = true;
            if let Some(since) = outage_since.take() {
                longest_outage = longest_outage.max(clipped - since.clamp(from_ms, to_ms));
            }
        } else if ever_announced && outage_since.is_none() {
            outage_since = Some(at);
        }
        if at >= from_ms && at <= to_ms {
            run.timeline.push(Step {
                at_ms: at,
                time: format_time(at),
                from: from.clone(),
                to: to.clone(),
                dwell_ms: previous_at.map(|p| at - p),
                cause: cause.clone(),
            });
            if *withdrawal {
                flap_times.push(at);
            }
        }
        previous_at = Some(at);
    }
    if let Some(since) = announced_since {
        announced_ms += to_ms - since.clamp(from_ms, to_ms);
    }
    if let Some(since) = outage_since {
        longest_outage = longest_outage.max(to_ms - since.clamp(from_ms, to_ms));
    }
    let window = (to_ms - from_ms).max(0);
    run.summary = Summary {
        transitions: run.timeline.len(),
        flaps: flap_times.len(),
        worst_hour_flaps: worst_hour(&flap_times),
        announced_ratio: if window > 0 {
            announced_ms as f64 / window as f64
        } else {
            0.0
        },
        longest_outage_ms: longest_outage,
    };
    run
}

fn worst_hour(times: &[i64]) -> usize {
    let mut worst = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= 3_600_000 {
            start += 1;
        }
        worst = worst.max(end - start + 1);
    }
    worst
}

fn seconds(ms: i64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn render_run(out: &mut String, run: &Run) {
    out.push_str(&format!("timeline ({}):\n", run.parameters));
    if run.timeline.is_empty() {
        out.push_str("  (no transitions in the window)\n");
    }
    for step in &run.timeline {
        let dwell = step
            .dwell_ms
            .map(|d| format!(" after {}", seconds(d)))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {} {} -> {}{dwell} ({})\n",
            step.time, step.from, step.to, step.cause
        ));
    }
    let s = &run.summary;
    out.push_str(&format!(
        "summary: {} transition(s), {} flap(s), worst hour {} flap(s), announced {:.1} % of the time, longest outage {}\n",
        s.transitions,
        s.flaps,
        s.worst_hour_flaps,
        s.announced_ratio * 100.0,
        seconds(s.longest_outage_ms)
    ));
}

/// The human report.
pub fn render_text(report: &Report) -> String {
    let mut out = format!(
        "replay of {} from {} to {}: {} observation(s) re-run\n",
        report.service,
        format_time(report.from_ms),
        format_time(report.to_ms),
        report.observations
    );
    render_run(&mut out, &report.recorded);
    if report.divergences.is_empty() {
        out.push_str(&format!(
            "verification: the re-run reproduces all {} recorded transition(s) exactly\n",
            report.verified
        ));
    } else {
        out.push_str(&format!(
            "verification: {} DIVERGENCE(S) (a corrupted or edited journal, or a bug):\n",
            report.divergences.len()
        ));
        for d in &report.divergences {
            out.push_str(&format!(
                "  record {}: journal says {}, re-run says {}\n",
                d.seq, d.recorded, d.replayed
            ));
        }
    }
    for gap in &report.gaps {
        out.push_str(&format!(
            "gap: the daemon was killed; nothing is known from {} to {}\n",
            format_time(gap.from_ms),
            format_time(gap.to_ms)
        ));
    }
    if let Some(what_if) = &report.what_if {
        out.push('\n');
        render_run(&mut out, what_if);
        let (a, b) = (&report.recorded.summary, &what_if.summary);
        out.push_str(&format!(
            "compared with what happened: flaps {} -> {}, announced {:.1} % -> {:.1} %, longest outage {} -> {}\n",
            a.flaps,
            b.flaps,
            a.announced_ratio * 100.0,
            b.announced_ratio * 100.0,
            seconds(a.longest_outage_ms),
            seconds(b.longest_outage_ms)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_hour_counts_flaps_in_a_sliding_hour() {
        assert_eq!(worst_hour(&[]), 0);
        assert_eq!(worst_hour(&[0, 1_000, 3_599_999, 3_600_000, 7_300_000]), 3);
    }
}
