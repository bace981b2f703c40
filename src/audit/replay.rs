//! Postmortem replay (`anycastd replay`): re-run a service's journaled inputs through the same
//! per-service [`Core`] the daemon runs, check that the re-run reproduces the recorded
//! transitions exactly, and answer "what would other settings have done?".
//!
//! Inputs (journal format 2, see [`crate::service::record`]): every check result is either a
//! record of its own or part of a [`wire::Runs`] record that gives its exact time, so each
//! what-if transition is placed at the time of the result that caused it. Pending timeouts,
//! drains, undrains, drain expiries, damping timers (their deadlines), reloads (the moment the
//! service's driver applied them), restarts (with the state the reconciliation gave) and stops
//! are records too. The re-run with the recorded settings must give every recorded transition
//! at its recorded time; the what-if run fires its own damping timers. Format-1 journals
//! journaled unchanged results only as counts: they are re-run at the time of the record
//! before them, and the report lists those stretches as approximate.
//!
//! Figures ([`Summary`]) cover the *measured* time: inside the window, while the daemon ran
//! and the service was configured, outside crash gaps (whatever a killed daemon did after its
//! last record is unknown). The window ends at `--until`, or now for a running daemon, or at
//! the last stop (the last record after a crash). An *outage* is a stretch in `unhealthy`
//! (withdrawn because of its checks, or held by flap damping); a drain, a removal and the time
//! before the first verdict (`starting`) are not outages.
//!
//! Levels (format 6): a [`wire::LevelRecord`] right after a transition says what the prefixes
//! are announced at from it on; one after no transition (a reload changed `on_unhealthy` or
//! the `deprefer` attributes) changes it from its own time on, so a failure under a reload
//! counts as what was installed before and after it (de-preferred to withdrawn is a
//! withdrawal there); a [`wire::FleetGuard`] answer says whether a withdrawal was held. A
//! restart that keeps the prefixes (a drain's grace the reconciliation kept, an unhealthy
//! service restored de-preferred) counts as before it. Time de-preferred (`unhealthy` under
//! `on_unhealthy = "deprefer"`), in a drain's grace
//! (until its [`wire::Cause::GraceEnded`] transition) and held by the fleet guard (until the
//! guard grants it: the withdrawal and the outage begin then) is counted apart and is neither
//! a withdrawal nor an outage. A journal without such records counts as it always did. The
//! what-ifs `on_unhealthy` and `drain_grace` run the machine with those settings (the
//! attributes play no part: only the level); without them a what-if takes what the journal
//! shows (deprefer while it records de-preferred levels, each drain's recorded grace). A
//! what-if's grace still running at a recorded stop ends there (the recorded daemon stopped
//! then). Pure over a list of records: no clock, no IO.

use crate::audit::text::{cause_text, format_time, state_text};
use crate::service::{record, Core, Effects};
use anycastd_fsm::{self as fsm, Timer};
use anycastd_journal::wire::{self, Event};
use anycastd_journal::Record;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// Shadow checks that gate in the what-if ("what had this check decided?").
    #[serde(default)]
    pub with_shadow: Vec<String>,
    /// Replace `on_unhealthy` (`--on-unhealthy`): only the level matters to a what-if, not
    /// the `deprefer` attributes, so none are needed.
    #[serde(default)]
    pub on_unhealthy: Option<fsm::OnUnhealthy>,
    /// Replace the grace of every drain, stop and shutdown (`--drain-grace`, ms; 0: none).
    #[serde(default)]
    pub drain_grace_ms: Option<u64>,
}

impl WhatIf {
    fn is_empty(&self) -> bool {
        self.rise.is_none()
            && self.fall.is_none()
            && self.damping.is_none()
            && self.with_shadow.is_empty()
            && self.on_unhealthy.is_none()
            && self.drain_grace_ms.is_none()
    }
}

/// One entry of a timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// RFC 3339.
    pub time: String,
    /// `transition`, `restart` (the state the start-up reconciliation gave), `suppressed`
    /// (flap damping holds the service withdrawn from here) or `unsuppressed`.
    #[serde(default = "transition_kind")]
    pub kind: String,
    /// State before.
    pub from: String,
    /// State after.
    pub to: String,
    /// Time spent in the previous state (ms), when known.
    pub dwell_ms: Option<i64>,
    /// Why, with the failing check (or the damping penalty).
    pub cause: String,
}

fn transition_kind() -> String {
    "transition".into()
}

/// Figures over the measured time of a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Time measured: in the window, daemon running, service configured, not in a crash gap.
    pub measured_ms: i64,
    /// Of which announced normally (`healthy`).
    pub announced_ms: i64,
    /// Of which withdrawn because of health (`unhealthy`, also while held by damping).
    pub outage_ms: i64,
    /// Of which drained and withdrawn (operator, shutdown, removal; a drain's grace apart).
    pub drained_ms: i64,
    /// Of which announced de-preferred (`unhealthy` under `on_unhealthy = "deprefer"`;
    /// format 6).
    #[serde(default)]
    pub depreferred_ms: i64,
    /// Of which draining in a grace: announced with GRACEFUL_SHUTDOWN until it ends
    /// (format 6).
    #[serde(default)]
    pub grace_ms: i64,
    /// Of which `unhealthy` but still announced because the fleet guard held the withdrawal
    /// (format 6).
    #[serde(default)]
    pub held_ms: i64,
    /// Of which withdrawn: `outage_ms + drained_ms` (`starting` apart).
    #[serde(default)]
    pub withdrawn_ms: i64,
    /// Of which `starting` (before the first verdicts after a start).
    pub starting_ms: i64,
    /// `announced_ms / measured_ms` (0 when nothing was measured).
    pub announced_ratio: f64,
    /// Transitions in the window (not counting the states start-ups gave).
    pub transitions: usize,
    /// Withdrawals caused by health in the window: healthy -> unhealthy when it withdrew
    /// (not de-preferred, not held by the fleet guard), or the fleet guard's later grant of
    /// a held one.
    pub flaps: usize,
    /// Most flaps in any hour of the window.
    pub worst_hour_flaps: usize,
    /// Outages in the window (stretches in `unhealthy` while withdrawn).
    pub outages: usize,
    /// The longest outage (ms, as far as it lies in the measured window).
    pub longest_outage_ms: i64,
    /// Mean length of the outages that ended with the service announced again (ms).
    pub mean_time_to_repair_ms: Option<i64>,
    /// Flap damping suppressions that began in the window.
    pub suppressions: usize,
}

/// The parameters in force over part of the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameters {
    /// From (ms).
    pub from_ms: i64,
    /// To (ms).
    pub to_ms: i64,
    /// `rise 1, fall 1` and the damping parameters.
    pub text: String,
}

/// A run: its transitions and figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Every parameter set in force during the window, oldest first.
    pub parameters: Vec<Parameters>,
    /// Transitions and damping suppressions in the window, oldest first.
    pub timeline: Vec<Step>,
    /// Figures.
    pub summary: Summary,
    /// The state at the window's end, and why (e.g. held by flap damping until when).
    pub end: Option<String>,
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

/// A stretch of time: a crash gap (nothing is known in it), or a stretch where format-1
/// records left the times of unchanged results approximate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    /// From (ms).
    pub from_ms: i64,
    /// To (ms).
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
    /// Check results re-run (over the whole journal).
    pub observations: u64,
    /// What really happened (the journal's transitions), in the window.
    pub recorded: Run,
    /// Transitions of the re-run with the recorded parameters that the journal confirms.
    pub verified: usize,
    /// Where the re-run differs from the journal.
    pub divergences: Vec<Divergence>,
    /// Crash gaps in the window.
    pub gaps: Vec<Gap>,
    /// Stretches in the window journaled in format 1, where the times of unchanged results
    /// (and so of what-if transitions they cause) are approximate.
    #[serde(default)]
    pub approximate: Vec<Gap>,
    /// The what-if run, when other parameters were given.
    pub what_if: Option<Run>,
    /// Remarks for the reader (an empty window, ...).
    #[serde(default)]
    pub notes: Vec<String>,
    /// Checks `--with-shadow` named that were never a shadow check of the service in the
    /// journal (a usage error: the report is not shown).
    #[serde(default)]
    pub not_shadow: Vec<String>,
    /// The shadow checks the journal knows for the service.
    #[serde(default)]
    pub shadow_checks: Vec<String>,
    /// The service's prefixes and their routing daemons, as last journaled.
    #[serde(default)]
    pub prefixes: Vec<String>,
}

/// What a stretch of time counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    /// Announced normally.
    Announced,
    /// Unhealthy and withdrawn.
    Outage,
    /// Drained and withdrawn.
    Drained,
    Starting,
    /// Unhealthy, announced de-preferred.
    Depreferred,
    /// Draining, announced with GRACEFUL_SHUTDOWN until the grace ends.
    Grace,
    /// Unhealthy, still announced: the fleet guard held the withdrawal.
    Held,
}

fn category(state: &fsm::State) -> Category {
    match state {
        fsm::State::Healthy => Category::Announced,
        fsm::State::Unhealthy => Category::Outage,
        fsm::State::Starting => Category::Starting,
        fsm::State::Draining(_) => Category::Drained,
    }
}

/// What a machine's state and level count as (a what-if's own levels).
fn category_of(machine: &fsm::Machine) -> Category {
    match (machine.state(), machine.wanted()) {
        (fsm::State::Unhealthy, Some(_)) => Category::Depreferred,
        (fsm::State::Draining(_), Some(_)) => Category::Grace,
        (state, _) => category(state),
    }
}

/// The categories of a run over time: spans `[from, to)` with a category, `None` where
/// nothing is measured (daemon stopped, crash gap, service not configured).
#[derive(Debug, Default)]
struct Tape {
    spans: Vec<(i64, i64, Option<Category>)>,
    current: Option<(i64, Option<Category>)>,
}

impl Tape {
    fn set(&mut self, at: i64, category: Option<Category>) {
        match self.current {
            Some((since, current)) if current == category => {
                let _ = since;
            }
            Some((since, current)) => {
                self.spans.push((since, at.max(since), current));
                self.current = Some((at.max(since), category));
            }
            None => self.current = Some((at, category)),
        }
    }

    /// The category of the current span.
    fn current(&self) -> Option<Category> {
        self.current.and_then(|(_, c)| c)
    }

    /// What the current span counts as, from its start (a level record written right after
    /// the transition that began it).
    fn amend(&mut self, category: Category) {
        if let Some((since, Some(_))) = self.current {
            self.current = Some((since, Some(category)));
        }
    }

    fn close(&mut self, at: i64) {
        if let Some((since, current)) = self.current.take() {
            self.spans.push((since, at.max(since), current));
        }
    }
}

/// One re-run: the recorded parameters, or a what-if.
struct Sim {
    what_if: WhatIf,
    core: Option<Core>,
    /// The damping parameters the journal gives (a what-if may replace them).
    recorded_damping: Option<fsm::Damping>,
    /// Transitions and damping changes produced, with their time.
    produced: Vec<(i64, Produced)>,
    /// Transitions produced and not yet matched against the journal.
    unmatched: Vec<fsm::Transition>,
    tape: Tape,
    observations: u64,
    /// How the previous run ended for this sim: its state then, and whether the prefixes were
    /// left in FRR (a crash or a handover) rather than withdrawn (a clean stop).
    ended: Option<(fsm::State, bool)>,
    /// The damping state at the end of the previous run (a what-if carries its own over a
    /// restart, as a daemon running with those settings would have journaled it).
    carried_damping: Option<fsm::DampingState>,
    /// The verdict rule of the run (its [`Event::VerdictRule`]; none: the rule before it).
    fail_early: bool,
    /// What the journal shows the service did when unhealthy (a de-preferred level record:
    /// deprefer), for a what-if without `--on-unhealthy`.
    recorded_on_unhealthy: fsm::OnUnhealthy,
    /// Whether the prefixes were announced just before the last drain (only then does a
    /// drain have a grace).
    announced_before_drain: bool,
    /// The end of the grace running when the previous run ended (a restart keeps it).
    carried_grace: Option<i64>,
}

#[derive(Debug, Clone)]
enum Produced {
    /// A transition, its check names, and whether it withdrew because of health.
    Transition(fsm::Transition, Vec<String>, bool),
    Suppressed {
        penalty_milli: u64,
        until: Option<i64>,
    },
    Unsuppressed {
        penalty_milli: u64,
    },
    /// A new run of the daemon took the service from where the previous run left it.
    Restart {
        from: fsm::State,
        to: fsm::State,
    },
    /// A reload changed the level of the service's prefixes in the state it is in (the
    /// level after it; whether it withdrew them).
    Level {
        level: Option<fsm::Level>,
        withdrawal: bool,
    },
}

impl Sim {
    fn new(what_if: WhatIf) -> Sim {
        Sim {
            what_if,
            core: None,
            recorded_damping: None,
            produced: Vec::new(),
            unmatched: Vec::new(),
            tape: Tape::default(),
            observations: 0,
            ended: None,
            carried_damping: None,
            fail_early: false,
            recorded_on_unhealthy: fsm::OnUnhealthy::Withdraw,
            announced_before_drain: false,
            carried_grace: None,
        }
    }

    /// The graded announcements of the run: the what-if's, else what the journal shows (the
    /// attributes play no part in a re-run: only the level).
    fn graded(&self) -> crate::service::Graded {
        crate::service::Graded {
            on_unhealthy: self
                .what_if
                .on_unhealthy
                .unwrap_or(self.recorded_on_unhealthy),
            deprefer: None,
            drain_grace: std::time::Duration::from_millis(self.what_if.drain_grace_ms.unwrap_or(0)),
        }
    }

    fn damping(&self) -> Option<fsm::Damping> {
        self.what_if
            .damping
            .as_ref()
            .map(fsm::Damping::from)
            .or_else(|| self.recorded_damping.clone())
    }

    fn params(&self, params: &wire::ServiceParams) -> wire::ServiceParams {
        let mut params = params.clone();
        params.rise = self.what_if.rise.unwrap_or(params.rise);
        params.fall = self.what_if.fall.unwrap_or(params.fall);
        for check in &mut params.checks {
            if self.what_if.with_shadow.contains(&check.name) {
                check.shadow = false;
            }
        }
        params
    }

    fn start(&mut self, params: &wire::ServiceParams, state: fsm::State, at: i64) {
        self.unmatched.clear();
        if let Some((before, _)) = &self.ended {
            if *before != state {
                self.produced.push((
                    at,
                    Produced::Restart {
                        from: before.clone(),
                        to: state.clone(),
                    },
                ));
            }
        }
        self.core = Some(
            Core::with_rule(
                self.params(params),
                self.damping(),
                state.clone(),
                at,
                self.fail_early,
            )
            .with_graded(self.graded(), at)
            .without_recording(),
        );
        let started = self
            .core
            .as_ref()
            .map_or_else(|| category(&state), |c| category_of(c.machine()));
        self.tape.set(at, Some(started));
        // A service without checks forms its verdict at once.
        if let Some(deadline) = self.core.as_ref().and_then(|c| c.deadline(Timer::Evaluate)) {
            self.fire(Timer::Evaluate, deadline);
        }
    }

    /// The run ends (`left_announced`: the prefixes stay in FRR, after a crash or handover).
    fn stop(&mut self, at: i64, left_announced: bool) {
        if let Some(core) = self.core.take() {
            self.ended = Some((core.machine().state().clone(), left_announced));
            self.carried_damping = Some(core.machine().damping());
            self.carried_grace = core.machine().grace_until().map(|t| t.0);
        }
        self.unmatched.clear();
        self.tape.set(at, None);
    }

    /// Keep the grace carried over the restart (see [`Replayer::keep_grace`]) until its end,
    /// when the service starts draining and the grace is not over by `at`.
    fn keep_carried_grace(&mut self, at: i64) {
        let Some(until) = self.carried_grace.take() else {
            return;
        };
        let Some(core) = self.core.take() else {
            return;
        };
        let core = core.with_grace(Some(until), at);
        if core.machine().grace_until().is_some() {
            self.tape.amend(category_of(core.machine()));
        }
        self.core = Some(core);
    }

    /// Restore the damping state this sim had when its previous run ended.
    fn restore_carried_damping(&mut self, at: i64) {
        if let (Some(carried), Some(core)) = (self.carried_damping, self.core.as_mut()) {
            let _ = core.restore_damping(carried, at);
        }
    }

    /// The state a daemon running with the what-if settings would have restored at a start:
    /// `healthy` when its service was healthy when the previous run ended without withdrawing
    /// (a crash or a handover: its prefixes still in FRR), the host did not reboot and the
    /// reconciliation found nothing missing; else `starting` (an operator drain is kept).
    fn restart_state(&self, initial: &fsm::State, rebooted: bool, missing: bool) -> fsm::State {
        match (&self.ended, initial) {
            (_, fsm::State::Draining(_)) => initial.clone(),
            (Some((fsm::State::Healthy, true)), _) if !rebooted && !missing => fsm::State::Healthy,
            _ => fsm::State::Starting,
        }
    }

    fn state(&self) -> Option<&fsm::State> {
        self.core.as_ref().map(|c| c.machine().state())
    }

    fn take(&mut self, effects: Effects, at: i64) {
        let Some(core) = self.core.as_ref() else {
            return;
        };
        let names = core.check_names();
        if let Some(transition) = effects.transition {
            self.tape.set(at, Some(category_of(core.machine())));
            // A withdrawal by health: not when the service stays announced de-preferred.
            let withdrawal = matches!(transition.cause, fsm::Cause::Verdict(ref v) if !v.healthy)
                && transition.from == fsm::State::Healthy
                && transition.to == fsm::State::Unhealthy
                && core.machine().wanted().is_none();
            self.unmatched.push(transition.clone());
            self.produced
                .push((at, Produced::Transition(transition, names, withdrawal)));
        }
        if let Some((before, after)) = effects.damping {
            match (before.suppressed_since, after.suppressed_since) {
                (None, Some(_)) => {
                    let until = core.machine().params().damping.as_ref().map(|d| {
                        d.reuse_time(after.penalty_milli, after.at)
                            .min(after.at.after(d.max_suppress))
                            .0
                    });
                    self.produced.push((
                        at,
                        Produced::Suppressed {
                            penalty_milli: after.penalty_milli,
                            until,
                        },
                    ));
                }
                (Some(_), None) => self.produced.push((
                    at,
                    Produced::Unsuppressed {
                        penalty_milli: after.penalty_milli,
                    },
                )),
                _ => {}
            }
        }
    }

    fn observe(&mut self, check: &str, at: i64) {
        let Some(core) = self.core.as_mut() else {
            return;
        };
        let Some(index) = core.params().checks.iter().position(|c| c.name == check) else {
            return;
        };
        let Some(latest) = core.machine().observations().nth(index).cloned() else {
            return;
        };
        self.observe_index(index, latest, at);
    }

    fn observe_index(&mut self, index: usize, observation: fsm::Observation, at: i64) {
        self.fire_own_timers(at);
        let Some(core) = self.core.as_mut() else {
            return;
        };
        self.observations += 1;
        let effects = core.observe(index, observation, at);
        self.take(effects, at);
    }

    fn fire(&mut self, timer: Timer, at: i64) {
        let Some(core) = self.core.as_mut() else {
            return;
        };
        let effects = core.fire(timer, at);
        self.take(effects, at);
    }

    /// A what-if run fires its own damping timers (its damping differs from the journal's)
    /// and the ends of its drains' graces; the recorded run takes them from the journal.
    fn fire_own_timers(&mut self, until: i64) {
        self.fire_own(&[Timer::DampingReuse, Timer::GraceEnd], until);
    }

    /// The what-if's own timers of these kinds due by `until`, in deadline order.
    fn fire_own(&mut self, timers: &[Timer], until: i64) {
        if self.what_if.is_empty() {
            return;
        }
        for _ in 0..1000 {
            let due = self.core.as_ref().and_then(|c| {
                timers
                    .iter()
                    .filter_map(|t| c.deadline(*t).map(|d| (d, *t)))
                    .filter(|(deadline, _)| *deadline <= until)
                    .min_by_key(|(deadline, _)| *deadline)
            });
            match due {
                Some((deadline, timer)) => self.fire(timer, deadline),
                None => return,
            }
        }
    }

    /// A drain, with the run's grace (a removal by a reload has none).
    fn drain(&mut self, cause: fsm::DrainCause, at: i64) {
        self.fire_own_timers(at);
        if let Some(core) = self.core.as_mut() {
            self.announced_before_drain = core.machine().wanted().is_some();
            let grace =
                matches!(cause, fsm::DrainCause::Removed).then_some(std::time::Duration::ZERO);
            let effects = core.drain_after(cause, None, grace, at);
            self.take(effects, at);
        }
    }

    /// The recorded run's drain has a grace until `until` (its level record): a what-if
    /// without `--drain-grace` whose drain came while announced keeps the same grace.
    fn follow_grace(&mut self, until: i64, at: i64) {
        if self.what_if.drain_grace_ms.is_some() || !self.announced_before_drain {
            return;
        }
        let Some(core) = self.core.take() else {
            return;
        };
        let in_grace = core.machine().grace_until().is_some();
        let core = if in_grace {
            core
        } else {
            core.with_grace(Some(until), at)
        };
        if core.machine().grace_until().is_some() && !in_grace {
            self.tape.amend(category_of(core.machine()));
        }
        self.core = Some(core);
    }

    fn undrain(&mut self, at: i64) {
        self.fire_own_timers(at);
        if let Some(core) = self.core.as_mut() {
            let effects = core.undrain(None, at);
            self.take(effects, at);
        }
    }

    fn reconfigure(&mut self, params: &wire::ServiceParams, at: i64) {
        self.fire_own_timers(at);
        let damping = self.damping();
        let params = self.params(params);
        let graded = self.graded();
        match self.core.as_mut() {
            Some(core) => {
                let before = category_of(core.machine());
                core.set_graded(graded);
                let _ = core.reconfigure(params, damping, at);
                let now = category_of(core.machine());
                self.tape.set(at, Some(now));
                if before != now {
                    // `on_unhealthy` changed for an unhealthy service.
                    self.produced.push((
                        at,
                        Produced::Level {
                            level: core.machine().wanted(),
                            withdrawal: now == Category::Outage,
                        },
                    ));
                }
            }
            None => self.start(&params, fsm::State::Starting, at),
        }
    }

    fn set_recorded_damping(&mut self, damping: Option<fsm::Damping>) {
        self.recorded_damping = damping;
        let damping = self.damping();
        if let Some(core) = self.core.as_mut() {
            core.set_damping(damping);
        }
    }
}

fn describe(t: &fsm::Transition) -> String {
    format!(
        "{} -> {} at {} (healthy streak {}, unhealthy streak {})",
        t.from.name(),
        t.to.name(),
        format_time(t.at.0),
        t.counters.healthy_streak,
        t.counters.unhealthy_streak
    )
}

fn describe_recorded(t: &wire::Transition, at: i64) -> String {
    format!(
        "{} -> {} at {} (healthy streak {}, unhealthy streak {})",
        fsm::State::from(&t.from).name(),
        fsm::State::from(&t.to).name(),
        format_time(at),
        t.healthy_streak,
        t.unhealthy_streak
    )
}

fn same(replayed: &fsm::Transition, recorded: &wire::Transition, at: i64, exact: bool) -> bool {
    wire::State::from(&replayed.from) == recorded.from
        && wire::State::from(&replayed.to) == recorded.to
        && replayed.counters.healthy_streak == recorded.healthy_streak
        && replayed.counters.unhealthy_streak == recorded.unhealthy_streak
        && (!exact || replayed.at.0 == at)
}

fn params_text(params: &wire::ServiceParams, damping: Option<&fsm::Damping>) -> String {
    let mut text = format!("rise {}, fall {}", params.rise, params.fall);
    let gating = params.checks.iter().filter(|c| !c.shadow).count();
    if params.require != 0 && (params.require as usize) < gating {
        text.push_str(&format!(", require {} of {gating} checks", params.require));
    }
    let shadows: Vec<&str> = params
        .checks
        .iter()
        .filter(|c| c.shadow)
        .map(|c| c.name.as_str())
        .collect();
    if !shadows.is_empty() {
        text.push_str(&format!(", shadow {}", shadows.join(", ")));
    }
    if let Some(d) = damping {
        text.push_str(&format!(
            ", damping half-life {}, penalty {}, suppress {}, reuse {}, max suppress {}",
            seconds(d.half_life.as_millis() as i64),
            d.penalty,
            d.suppress,
            d.reuse,
            seconds(d.max_suppress.as_millis() as i64)
        ));
    }
    text
}

/// The parameter sets in force over time, for the recorded run and the what-if.
#[derive(Default)]
struct ParamHistory {
    recorded: Vec<(i64, String)>,
    what_if: Vec<(i64, String)>,
    /// Every check that was a shadow check in some parameter set.
    shadows: std::collections::BTreeSet<String>,
    /// The prefixes of the last parameter set.
    prefixes: Vec<wire::PrefixRef>,
}

impl ParamHistory {
    fn note(&mut self, at: i64, actual: &Sim, other: &Sim, params: &wire::ServiceParams) {
        self.prefixes = params.prefixes.clone();
        self.shadows.extend(
            params
                .checks
                .iter()
                .filter(|c| c.shadow)
                .map(|c| c.name.clone()),
        );
        let push = |list: &mut Vec<(i64, String)>, text: String| {
            if list.last().map(|(_, t)| t) != Some(&text) {
                list.push((at, text));
            }
        };
        push(
            &mut self.recorded,
            params_text(&actual.params(params), actual.damping().as_ref()),
        );
        let mut what_if = params_text(&other.params(params), other.damping().as_ref());
        if let Some(on_unhealthy) = other.what_if.on_unhealthy {
            what_if.push_str(match on_unhealthy {
                fsm::OnUnhealthy::Withdraw => ", on_unhealthy withdraw",
                fsm::OnUnhealthy::Deprefer => ", on_unhealthy deprefer",
            });
        }
        if let Some(grace) = other.what_if.drain_grace_ms {
            what_if.push_str(&format!(
                ", drain grace {}",
                seconds(i64::try_from(grace).unwrap_or(i64::MAX))
            ));
        }
        push(&mut self.what_if, what_if);
    }
}

fn spans_in(list: &[(i64, String)], from: i64, to: i64) -> Vec<Parameters> {
    let mut spans = Vec::new();
    for (i, (at, text)) in list.iter().enumerate() {
        let end = list.get(i + 1).map(|(next, _)| *next).unwrap_or(i64::MAX);
        if end <= from && i + 1 < list.len() {
            continue;
        }
        if *at > to {
            break;
        }
        spans.push(Parameters {
            from_ms: (*at).max(from),
            to_ms: end.min(to),
            text: text.clone(),
        });
    }
    spans
}

/// Re-run `service`'s records (its own and the daemon's, in order). `since`/`until` bound the
/// reported window; `now_ms` is given when the daemon is running (its last run goes on until
/// now). The re-run always starts from the first record, so the state entering the window is
/// right.
pub fn replay(
    service: &str,
    records: &[Record],
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    now_ms: Option<i64>,
    what_if: &WhatIf,
) -> Report {
    let mut replayer = Replayer::new(service, what_if);
    replayer.on_unhealthy_from = recorded_on_unhealthy(service, records);
    for record in records {
        replayer.record(record);
    }
    let first = records.first().map(|r| r.at_ms).unwrap_or(0);
    replayer.finish(first, since_ms, until_ms, now_ms)
}

/// What the service did when unhealthy, as the journal shows it (`on_unhealthy` itself is
/// not journaled), for a what-if without `--on-unhealthy` to do the same: from each record
/// where the setting can change (a daemon start, a reconfiguration of the service, the
/// reload that added it), what the first evidence after it shows: a de-preferred level
/// record is `deprefer`; a reload's withdrawn level record, or a fall to unhealthy without
/// a level record, is `withdraw`. A stretch without evidence keeps the one before it (the
/// first ones take the first evidence; none at all: `withdraw`).
fn recorded_on_unhealthy(service: &str, records: &[Record]) -> BTreeMap<u64, fsm::OnUnhealthy> {
    use fsm::OnUnhealthy::{Deprefer, Withdraw};
    let mut spans: Vec<(u64, Option<fsm::OnUnhealthy>)> = Vec::new();
    // The service's previous record: a transition, and one that fell to unhealthy.
    let (mut after_transition, mut after_fall) = (false, false);
    let note = |spans: &mut Vec<(u64, Option<fsm::OnUnhealthy>)>, seen: fsm::OnUnhealthy| {
        if let Some((_, span @ None)) = spans.last_mut() {
            *span = Some(seen);
        }
    };
    for record in records {
        let mine = record.event.service() == Some(service);
        // A fall with no level record after it: the stretch it fell in withdraws (noted
        // before a record that starts the next stretch).
        if mine && after_fall && !matches!(record.event, Event::Level(_)) {
            note(&mut spans, Withdraw);
        }
        match &record.event {
            Event::DaemonStarted(_) => spans.push((record.seq, None)),
            Event::Reconfigured(r) if r.service == service => spans.push((record.seq, None)),
            Event::Reloaded(r) if r.added.iter().any(|a| a == service) => {
                spans.push((record.seq, None));
            }
            _ => {}
        }
        if !mine {
            continue;
        }
        match &record.event {
            Event::Level(l) if l.level == Some(wire::Level::Depreferred) => {
                note(&mut spans, Deprefer);
            }
            Event::Level(l) if l.level.is_none() && !after_transition => {
                note(&mut spans, Withdraw);
            }
            _ => {}
        }
        after_transition = matches!(record.event, Event::Transition(_));
        after_fall = matches!(&record.event, Event::Transition(t)
            if t.to == wire::State::Unhealthy && matches!(t.cause, wire::Cause::Verdict { .. }));
    }
    if after_fall {
        note(&mut spans, Withdraw);
    }
    let first = spans.iter().find_map(|(_, s)| *s).unwrap_or(Withdraw);
    let mut last = first;
    spans
        .into_iter()
        .map(|(seq, seen)| {
            last = seen.unwrap_or(last);
            (seq, last)
        })
        .collect()
}

/// Whether the re-run's damping changes join the recorded timeline after a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// They follow the record (they confirm or follow its transition).
    CollectDamping,
    /// Not now: a restart's state is set, the damping it restores is no change.
    Skip,
}

/// One replay: the two re-runs (as recorded, and the what-if), the recorded timeline and the
/// running state records leave for the ones after them. One method per record kind; records
/// of other services than the one replayed do not reach them.
struct Replayer<'a> {
    service: &'a str,
    what_if: WhatIf,
    /// The re-run with the recorded settings.
    actual: Sim,
    /// The re-run with the what-if settings.
    other: Sim,
    report: Report,
    /// The recorded timeline, in the order things happened (journal order: a result whose
    /// poll was due earlier can be taken after another's).
    recorded_steps: Vec<(i64, Step, bool)>,
    /// How many of the recorded re-run's damping changes are in `recorded_steps`.
    damping_seen: usize,
    recorded_tape: Tape,
    history: ParamHistory,
    gaps: Vec<Gap>,
    approximate: Vec<Gap>,
    /// A daemon run is open (started, not stopped).
    epoch_open: bool,
    last_at: Option<i64>,
    last_stop: Option<i64>,
    /// The time of the previous record of the service's inputs (format-1 repeats go there).
    previous_input_at: i64,
    current_params: Option<wire::ServiceParams>,
    last_state: wire::State,
    /// A start whose reconciliation record has not come yet: (state, time of the start).
    pending_start: Option<(fsm::State, i64)>,
    /// When the service was first configured (the default window starts there).
    first_seen: Option<i64>,
    /// The sequence number of the service's last transition, and the index of its step in
    /// `recorded_steps` (level and fleet guard records refer to it).
    last_transition: Option<(u64, usize)>,
    /// A reload's level record that withdrew an unhealthy service (de-preferred before), and
    /// the index of its step: a guarded service asks the fleet guard under it.
    level_withdrawal: Option<(u64, usize)>,
    /// The sequence number of the last reconciliation record: a service restored at a start
    /// (still held by the fleet guard) is asked again under it, not under its restored
    /// transition.
    reconciled_seq: Option<u64>,
    /// The last transition restored the service at a start (after that reconciliation).
    restored: bool,
    /// The service's previous record was a transition: a level record now is that
    /// transition's (journaled with it); any other level record is a change of its own
    /// (a reload changed `on_unhealthy` or the `deprefer` attributes).
    after_transition: bool,
    /// The end of the drain grace the last transition left running (its level record), for
    /// a restart that keeps it.
    recorded_grace: Option<i64>,
    /// What the service did when unhealthy from these records on (by sequence number), for
    /// a what-if without `--on-unhealthy` ([`recorded_on_unhealthy`]).
    on_unhealthy_from: BTreeMap<u64, fsm::OnUnhealthy>,
    /// What the recorded time counted as when the last daemon run ended (a restart that
    /// keeps the prefixes announced restores it).
    category_at_stop: Option<Category>,
}

impl<'a> Replayer<'a> {
    fn new(service: &'a str, what_if: &WhatIf) -> Replayer<'a> {
        Replayer {
            service,
            what_if: what_if.clone(),
            actual: Sim::new(WhatIf::default()),
            other: Sim::new(what_if.clone()),
            report: Report {
                service: service.to_owned(),
                ..Report::default()
            },
            recorded_steps: Vec::new(),
            damping_seen: 0,
            recorded_tape: Tape::default(),
            history: ParamHistory::default(),
            gaps: Vec::new(),
            approximate: Vec::new(),
            epoch_open: false,
            last_at: None,
            last_stop: None,
            previous_input_at: 0,
            current_params: None,
            last_state: wire::State::Starting,
            pending_start: None,
            first_seen: None,
            last_transition: None,
            level_withdrawal: None,
            reconciled_seq: None,
            restored: false,
            after_transition: false,
            recorded_grace: None,
            on_unhealthy_from: BTreeMap::new(),
            category_at_stop: None,
        }
    }

    fn sims(&mut self) -> [&mut Sim; 2] {
        [&mut self.actual, &mut self.other]
    }

    /// Take one record.
    fn record(&mut self, record: &Record) {
        let at = record.at_ms;
        let mine = record.event.service() == Some(self.service);
        if mine && !matches!(record.event, Event::ServiceDamping(_)) {
            self.start_pending();
        }
        if let Some(on_unhealthy) = self.on_unhealthy_from.get(&record.seq) {
            self.other.recorded_on_unhealthy = *on_unhealthy;
        }
        if self.dispatch(record, mine) == Then::CollectDamping {
            self.collect_damping_steps();
        }
        if mine {
            self.after_transition = matches!(record.event, Event::Transition(_));
        }
        self.last_at = Some(at);
    }

    /// The method for the record's kind. No arm catches "any other kind": a new kind of record
    /// does not compile until it says what replay does with it.
    fn dispatch(&mut self, record: &Record, mine: bool) -> Then {
        let at = record.at_ms;
        let exact = record.version >= 2;
        match &record.event {
            // Another service's records (operator actions other than a drain or undrain of
            // this service have no service).
            Event::Transition(_)
            | Event::CheckEdge(_)
            | Event::PendingTimeout(_)
            | Event::Polls(_)
            | Event::Runs(_)
            | Event::ServiceDamping(_)
            | Event::Damping(_)
            | Event::DampingRestored(_)
            | Event::Reconfigured(_)
            | Event::Operator(_)
            | Event::Level(_)
            | Event::FleetGuard(_)
                if !mine => {}
            Event::DaemonStarted(started) => self.on_daemon_started(started, at),
            Event::VerdictRule(rule) => self.on_verdict_rule(rule),
            Event::Reconciled(reconciled) => {
                self.reconciled_seq = Some(record.seq);
                self.on_reconciled(reconciled, at);
            }
            Event::DaemonStopped(stopped) => self.on_daemon_stopped(stopped, record.seq, at),
            Event::ServiceDamping(d) => self.on_service_damping(d, at),
            Event::Damping(d) => self.on_damping(d, record.seq, at),
            Event::DampingRestored(d) => self.on_damping_restored(d, at),
            Event::Reloaded(reloaded) => self.on_reloaded(reloaded, at, exact),
            Event::Reconfigured(r) => self.on_reconfigured(r, at),
            Event::Runs(runs) => self.on_runs(runs, record.seq, at),
            Event::Polls(polls) => self.on_polls(polls, at),
            Event::CheckEdge(edge) => self.on_check_edge(edge, at),
            Event::PendingTimeout(timeout) => self.on_pending_timeout(timeout, at),
            Event::Operator(action) => self.on_operator(action, at),
            Event::Transition(t) => return self.on_transition(t, record.seq, at, exact),
            Event::Level(level) => self.on_level(level, record.seq, at),
            Event::FleetGuard(guard) => self.on_fleet_guard(guard, at),
            // Not inputs of the service's machine: what the writer did, the journal's own
            // bookkeeping, a rejected reload (nothing changed), hooks, and a drain forced past
            // the fleet guard (the drain itself is the operator record that follows).
            Event::Apply(_)
            | Event::Drift(_)
            | Event::JournalReset(_)
            | Event::JournalGap(_)
            | Event::ReloadRejected(_)
            | Event::RoutingRestarted(_)
            | Event::HookRan(_)
            | Event::DrainForced(_) => {}
        }
        Then::CollectDamping
    }

    /// No reconciliation record came (it could not be journaled): the machines start at the
    /// start, before the service's first input.
    fn start_pending(&mut self) {
        if let (Some((initial, started)), Some(params)) =
            (self.pending_start.take(), self.current_params.clone())
        {
            self.actual.start(&params, initial.clone(), started);
            let state = self.other.restart_state(&initial, false, false);
            self.other.start(&params, state, started);
            self.other.restore_carried_damping(started);
        }
    }

    /// The re-run's suppressions belong to the recorded timeline (the damping records confirm
    /// them bit for bit), after the transition that caused them.
    fn collect_damping_steps(&mut self) {
        if self.actual.unmatched.is_empty() {
            for (at, produced) in &self.actual.produced[self.damping_seen..] {
                self.recorded_steps.extend(damping_step(*at, produced));
            }
            self.damping_seen = self.actual.produced.len();
        }
    }

    fn on_daemon_started(&mut self, started: &wire::DaemonStarted, at: i64) {
        if self.epoch_open {
            // What the killed daemon did after its last record is unknown.
            let from = self.last_at.unwrap_or(at);
            self.gaps.push(Gap {
                from_ms: from,
                to_ms: at,
            });
            for sim in self.sims() {
                sim.stop(from, true);
            }
            self.category_at_stop = self.recorded_tape.current();
            self.recorded_tape.set(from, None);
        }
        self.epoch_open = true;
        self.current_params = started
            .services
            .iter()
            .find(|s| s.name == self.service)
            .cloned();
        if self.current_params.is_some() {
            self.first_seen.get_or_insert(at);
        }
        for sim in self.sims() {
            sim.recorded_damping = None;
            // Until its verdict rule record says otherwise: the rule before format 5.
            sim.fail_early = false;
        }
        // Only an operator drain outlives a restart; reconciliation says otherwise.
        let initial = match &self.last_state {
            wire::State::Draining(cause @ wire::DrainCause::Operator { .. }) => {
                fsm::State::Draining(cause.into())
            }
            _ => fsm::State::Starting,
        };
        // The machines start with the reconciliation record that follows (the drivers start
        // then); until then the service is starting.
        for sim in self.sims() {
            sim.core = None;
            sim.unmatched.clear();
        }
        self.pending_start = None;
        if let Some(params) = self.current_params.clone() {
            for sim in self.sims() {
                sim.tape.set(at, Some(category(&initial)));
            }
            self.recorded_tape.set(at, Some(category(&initial)));
            self.history.note(at, &self.actual, &self.other, &params);
            self.pending_start = Some((initial, at));
        }
        self.previous_input_at = at;
    }

    fn on_verdict_rule(&mut self, rule: &wire::VerdictRule) {
        for sim in self.sims() {
            sim.fail_early = rule.fail_early;
        }
    }

    fn on_reconciled(&mut self, reconciled: &wire::Reconciled, at: i64) {
        if let (Some((initial, _)), Some(params)) =
            (self.pending_start.take(), self.current_params.clone())
        {
            self.actual.start(&params, initial.clone(), at);
            // The what-if restarts as a daemon with its settings would have: from its own
            // state and damping at the end of the previous run.
            let missing = reconciled.items.iter().any(|i| {
                i.service == self.service && i.decision == wire::ReconcileDecision::Missing
            });
            let state = self
                .other
                .restart_state(&initial, reconciled.rebooted, missing);
            self.other.start(&params, state, at);
            self.other.restore_carried_damping(at);
            self.keep_grace(&initial, reconciled, at);
        }
        self.previous_input_at = at;
    }

    /// A daemon killed in an operator drain's grace and started again before its end keeps
    /// the prefixes announced with GRACEFUL_SHUTDOWN until the journaled end, when the
    /// routing daemon still has them (the reconciliation kept them): from the start on it is
    /// grace, not drained time, until the grace-ended transition. A what-if keeps its own grace across the restart (the
    /// recorded one when it has no `--drain-grace`), unless the host rebooted.
    fn keep_grace(&mut self, initial: &fsm::State, reconciled: &wire::Reconciled, at: i64) {
        if !matches!(
            initial,
            fsm::State::Draining(fsm::DrainCause::Operator { .. })
        ) {
            self.other.carried_grace = None;
            return;
        }
        let kept = reconciled
            .items
            .iter()
            .any(|i| i.service == self.service && i.decision == wire::ReconcileDecision::Kept);
        // Kept: announced with the community until its grace-ended transition, also when
        // the grace ended while the daemon started (it ends at once then, by its timer).
        let kept_until = self.recorded_grace.filter(|_| kept);
        if kept_until.is_some() {
            self.recorded_tape.amend(Category::Grace);
        }
        if self.what_if.drain_grace_ms.is_none() {
            self.other.carried_grace = kept_until.filter(|until| *until > at);
        }
        if !reconciled.rebooted {
            self.other.keep_carried_grace(at);
        }
    }

    fn on_daemon_stopped(&mut self, stopped: &wire::DaemonStopped, seq: u64, at: i64) {
        self.epoch_open = false;
        // A what-if's grace that ended by the stop ends first.
        self.other.fire_own(&[Timer::GraceEnd], at);
        let left = matches!(stopped.outcome, wire::StopOutcome::HandedOver);
        self.last_stop = Some(at);
        let leftovers: Vec<fsm::Transition> = std::mem::take(&mut self.actual.unmatched);
        for t in leftovers {
            self.report.divergences.push(Divergence {
                seq,
                recorded: "no transition".into(),
                replayed: describe(&t),
            });
        }
        for sim in self.sims() {
            sim.stop(at, left);
        }
        self.category_at_stop = self.recorded_tape.current();
        self.recorded_tape.set(at, None);
    }

    fn on_service_damping(&mut self, d: &wire::ServiceDamping, at: i64) {
        let damping = d.params.as_ref().map(fsm::Damping::from);
        self.actual.set_recorded_damping(damping.clone());
        self.other.set_recorded_damping(damping);
        if let Some(params) = self.current_params.clone() {
            self.history.note(at, &self.actual, &self.other, &params);
        }
    }

    fn on_damping(&mut self, d: &wire::DampingRecord, seq: u64, at: i64) {
        if d.restored {
            restore_recorded_damping(&mut self.actual, &mut self.other, d.state(), at);
            return;
        }
        // A suppression that ended without a transition: the timer fired here.
        if d.suppressed_since_ms.is_none()
            && self
                .actual
                .core
                .as_ref()
                .is_some_and(|c| c.machine().suppressed())
        {
            self.actual.fire(Timer::DampingReuse, at);
        }
        verify_damping(&mut self.actual, d, seq, &mut self.report);
    }

    fn on_damping_restored(&mut self, d: &wire::DampingRestored, at: i64) {
        restore_recorded_damping(&mut self.actual, &mut self.other, d.state.state(), at);
    }

    fn on_reloaded(&mut self, reloaded: &wire::Reloaded, at: i64, exact: bool) {
        let params = reloaded
            .services
            .iter()
            .find(|s| s.name == self.service)
            .cloned();
        let added = reloaded.added.iter().any(|s| s == self.service);
        if let Some(params) = &params {
            if added {
                self.first_seen.get_or_insert(at);
                for sim in self.sims() {
                    sim.recorded_damping = None;
                    sim.start(params, fsm::State::Starting, at);
                }
                self.recorded_tape.set(at, Some(Category::Starting));
                self.history.note(at, &self.actual, &self.other, params);
            } else if !exact && self.current_params.as_ref() != Some(params) {
                // Format 1: the reload record is the moment of the change.
                self.actual.reconfigure(params, at);
                self.other.reconfigure(params, at);
                self.history.note(at, &self.actual, &self.other, params);
            }
        }
        if added || !exact {
            self.current_params = params;
        }
        self.previous_input_at = at;
    }

    fn on_reconfigured(&mut self, r: &wire::Reconfigured, at: i64) {
        let damping = r.damping.as_ref().map(fsm::Damping::from);
        for sim in self.sims() {
            sim.recorded_damping = damping.clone();
            sim.reconfigure(&r.params, at);
        }
        self.current_params = Some(r.params.clone());
        self.history.note(at, &self.actual, &self.other, &r.params);
        self.previous_input_at = at;
    }

    fn on_runs(&mut self, runs: &wire::Runs, seq: u64, at: i64) {
        let (plausible, damaged): (Vec<wire::Segment>, Vec<wire::Segment>) = runs
            .segments
            .iter()
            .cloned()
            .partition(|segment| record::plausible(segment, at));
        for segment in &damaged {
            self.report.divergences.push(Divergence {
                seq,
                recorded: format!(
                    "{} result(s) of {} every {} ms from {}",
                    segment.count,
                    segment.check,
                    segment.interval_ms,
                    format_time(segment.first_ms)
                ),
                replayed: "impossible before the record's time: not re-run".into(),
            });
        }
        for (check, result_at) in record::expand(&plausible) {
            self.actual.observe(check, result_at);
            self.other.observe(check, result_at);
        }
    }

    fn on_polls(&mut self, polls: &wire::Polls, at: i64) {
        let previous = self.previous_input_at;
        repeats(&mut self.sims(), polls.polls, previous, at);
        if polls.polls > 0 {
            self.approximate.push(Gap {
                from_ms: previous,
                to_ms: at,
            });
        }
    }

    /// Format 1: the unchanged results journaled as a count with an edge or a timeout.
    fn repeats_before(&mut self, polls_since_last_edge: u64, at: i64) {
        if polls_since_last_edge > 0 {
            let previous = self.previous_input_at;
            repeats(&mut self.sims(), polls_since_last_edge, previous, at);
            self.approximate.push(Gap {
                from_ms: previous,
                to_ms: at,
            });
        }
    }

    fn on_check_edge(&mut self, edge: &wire::CheckEdge, at: i64) {
        self.repeats_before(edge.polls_since_last_edge, at);
        for sim in self.sims() {
            let index = sim
                .core
                .as_ref()
                .and_then(|c| c.params().checks.iter().position(|k| k.name == edge.check));
            if let Some(index) = index {
                sim.observe_index(index, (&edge.observation).into(), at);
            }
        }
        self.previous_input_at = at;
    }

    fn on_pending_timeout(&mut self, timeout: &wire::PendingTimeout, at: i64) {
        self.repeats_before(timeout.polls_since_last_edge, at);
        for sim in self.sims() {
            sim.fire_own_timers(at);
            let index = sim.core.as_ref().and_then(|c| {
                c.params()
                    .checks
                    .iter()
                    .position(|k| k.name == timeout.check)
            });
            if let Some(index) = index {
                sim.fire(Timer::PendingTimeout(index), at);
            }
        }
        self.previous_input_at = at;
    }

    fn on_operator(&mut self, action: &wire::OperatorAction, at: i64) {
        match &action.kind {
            wire::OperatorKind::Drain {
                service: _,
                reason,
                expires_at_ms,
            } => {
                let cause = fsm::DrainCause::Operator {
                    reason: reason.clone(),
                    expires_at: expires_at_ms.map(fsm::Timestamp),
                    uid: action.uid,
                };
                self.actual.drain(cause.clone(), at);
                self.other.drain(cause, at);
                self.previous_input_at = at;
            }
            wire::OperatorKind::Undrain { service: _ } => {
                self.actual.undrain(at);
                self.other.undrain(at);
                self.previous_input_at = at;
            }
            // The daemon's own stop: its stop record follows.
            wire::OperatorKind::Handover | wire::OperatorKind::Stop => {}
        }
    }

    fn on_transition(&mut self, t: &wire::Transition, seq: u64, at: i64, exact: bool) -> Then {
        self.last_state = t.to.clone();
        // A grace the transition leaves running comes in its level record.
        self.recorded_grace = None;
        self.recorded_tape.set(at, Some(category(&(&t.to).into())));
        if t.cause == wire::Cause::Restored
            && t.to == wire::State::Unhealthy
            && self.category_at_stop == Some(Category::Depreferred)
        {
            // Restored unhealthy with its prefixes still announced: de-preferred before the
            // restart, de-preferred after it (no level record is journaled at a start).
            self.recorded_tape.amend(Category::Depreferred);
        }
        self.last_transition = Some((seq, self.recorded_steps.len()));
        self.restored = matches!(
            t.cause,
            wire::Cause::Restored | wire::Cause::Adopted | wire::Cause::Restart
        );
        match &t.cause {
            wire::Cause::Restored | wire::Cause::Adopted | wire::Cause::Restart => {
                // The reconciliation set the starting state (the what-if decided its own at
                // the reconciliation record, unless the journal holds no earlier run of the
                // service to decide from).
                if let Some(params) = self.current_params.clone() {
                    self.actual.start(&params, (&t.to).into(), at);
                    if self.other.ended.is_none() {
                        self.other.start(&params, (&t.to).into(), at);
                    }
                }
                self.recorded_steps.push(recorded_step(at, t));
                self.previous_input_at = at;
                return Then::Skip;
            }
            wire::Cause::Drain => {
                if let wire::State::Draining(
                    cause @ (wire::DrainCause::Shutdown | wire::DrainCause::Removed),
                ) = &t.to
                {
                    self.actual.drain(cause.into(), at);
                    self.other.drain(cause.into(), at);
                }
            }
            wire::Cause::DrainExpired => {
                for sim in self.sims() {
                    sim.fire_own_timers(at);
                    sim.fire(Timer::DrainExpiry, at);
                }
            }
            wire::Cause::Unsuppressed => self.actual.fire(Timer::DampingReuse, at),
            // A drain's grace ended: the level changed (to withdrawn), not the state; the
            // what-if ends its own graces by its timers.
            wire::Cause::GraceEnded => {
                let (at, mut step, _) = recorded_step(at, t);
                step.kind = "grace-ended".into();
                self.recorded_steps.push((at, step, false));
                return Then::CollectDamping;
            }
            wire::Cause::Verdict { .. } | wire::Cause::Undrain => {}
        }
        self.recorded_steps.push(recorded_step(at, t));
        self.previous_input_at = at;
        self.verify_transition(t, seq, at, exact);
        if matches!(t.to, wire::State::Draining(wire::DrainCause::Removed)) {
            // Removed by a reload: nothing more is measured.
            for sim in self.sims() {
                sim.tape.set(at, None);
            }
            self.recorded_tape.set(at, None);
            self.current_params = None;
        }
        // Follow the journal, so one divergence does not cascade.
        if self.actual.state().map(wire::State::from).as_ref() != Some(&t.to) {
            if let Some(params) = self.current_params.clone() {
                self.actual.start(&params, (&t.to).into(), at);
            }
        }
        Then::CollectDamping
    }

    /// The level the last transition left the prefixes at (format 6): what its time counts
    /// as from the transition on, and whether it withdrew; a what-if without
    /// `--drain-grace` keeps the grace the recorded drain had.
    fn on_level(&mut self, level: &wire::LevelRecord, seq: u64, at: i64) {
        let category = match level.level {
            Some(wire::Level::Normal) => Category::Announced,
            Some(wire::Level::Depreferred) => Category::Depreferred,
            Some(wire::Level::GracefulShutdown) => Category::Grace,
            None => category(&(&self.last_state).into()),
        };
        if !self.after_transition {
            self.level_changed(level, category, seq, at);
            return;
        }
        self.recorded_grace = level.grace_until_ms.filter(|_| level.level.is_some());
        self.recorded_tape.amend(category);
        if level.level.is_some() {
            self.not_a_withdrawal();
        }
        if let (Some(wire::Level::GracefulShutdown), Some(until)) =
            (level.level, level.grace_until_ms)
        {
            self.other.follow_grace(until, at);
        }
    }

    /// A level record of its own, after no transition: a reload changed what the service
    /// is announced with (`on_unhealthy`, `deprefer`) in the state it is in. What was
    /// installed changes from this moment on (the time before it counts as it was): from
    /// de-preferred to withdrawn is a withdrawal and an outage begins; from withdrawn to
    /// de-preferred the outage ends (the withdrawal before it happened). New attributes at
    /// the same level change no figure.
    fn level_changed(&mut self, level: &wire::LevelRecord, category: Category, seq: u64, at: i64) {
        let before = self.recorded_tape.current();
        if before.is_none() || before == Some(category) {
            return;
        }
        self.recorded_tape.set(at, Some(category));
        let announced_before = matches!(
            before,
            Some(Category::Announced | Category::Depreferred | Category::Grace | Category::Held)
        );
        let withdrawal = announced_before && category == Category::Outage;
        if withdrawal {
            self.level_withdrawal = Some((seq, self.recorded_steps.len()));
        }
        self.recorded_steps.push((
            at,
            Step {
                at_ms: at,
                time: format_time(at),
                kind: "level".into(),
                from: String::new(),
                to: String::new(),
                dwell_ms: None,
                cause: crate::audit::text::reload_level_text(level),
            },
            withdrawal,
        ));
    }

    /// The last transition's step did not withdraw (it stayed announced).
    fn not_a_withdrawal(&mut self) {
        if let Some((_, index)) = self.last_transition {
            if let Some((_, _, withdrawal)) = self.recorded_steps.get_mut(index) {
                *withdrawal = false;
            }
        }
    }

    /// The fleet guard's answer to the last transition's withdrawal (format 6): held, the
    /// service stays announced (held, not an outage, no withdrawal); granted after a hold, the
    /// withdrawal and the outage begin now. A what-if assumes every withdrawal granted.
    fn on_fleet_guard(&mut self, guard: &wire::FleetGuard, at: i64) {
        let held = matches!(
            guard.answer,
            wire::FleetAnswer::Held(_) | wire::FleetAnswer::Blind { held: true, .. }
        );
        let current = self.recorded_tape.current();
        // An answer to the last transition, or, for a service restored held at a start, to
        // that start's reconciliation (under which its driver asks again).
        let answers_last = self
            .last_transition
            .is_some_and(|(seq, _)| seq == guard.transition_seq)
            || (self.restored && self.reconciled_seq == Some(guard.transition_seq));
        // Or to a reload's level record that withdrew it (de-preferred before).
        let answers_level = self
            .level_withdrawal
            .filter(|(seq, _)| *seq == guard.transition_seq);
        let mut withdrawal = false;
        if held && answers_last && current == Some(Category::Outage) {
            self.recorded_tape.amend(Category::Held);
            self.not_a_withdrawal();
        } else if let (true, Some((_, index)), Some(Category::Outage)) =
            (held, answers_level, current)
        {
            self.recorded_tape.amend(Category::Held);
            if let Some((_, _, step_withdrew)) = self.recorded_steps.get_mut(index) {
                *step_withdrew = false;
            }
        } else if !held && current == Some(Category::Held) {
            self.recorded_tape.set(at, Some(Category::Outage));
            withdrawal = true;
        }
        self.recorded_steps.push((
            at,
            Step {
                at_ms: at,
                time: format_time(at),
                kind: "fleet-guard".into(),
                from: String::new(),
                to: String::new(),
                dwell_ms: None,
                cause: crate::audit::text::fleet_guard_text(guard),
            },
            withdrawal,
        ));
    }

    /// The re-run must have produced exactly this transition, and nothing before it.
    fn verify_transition(&mut self, t: &wire::Transition, seq: u64, at: i64, exact: bool) {
        let produced = std::mem::take(&mut self.actual.unmatched);
        let divergences = &mut self.report.divergences;
        match produced.split_last() {
            Some((last, extra)) => {
                for extra in extra {
                    divergences.push(Divergence {
                        seq,
                        recorded: "no transition".into(),
                        replayed: describe(extra),
                    });
                }
                if same(last, t, at, exact) {
                    self.report.verified += 1;
                } else {
                    divergences.push(Divergence {
                        seq,
                        recorded: describe_recorded(t, at),
                        replayed: describe(last),
                    });
                }
            }
            None => divergences.push(Divergence {
                seq,
                recorded: describe_recorded(t, at),
                replayed: "no transition".into(),
            }),
        }
    }

    /// The window and its figures, after the last record (`first`: the first record's time).
    fn finish(
        mut self,
        first: i64,
        since_ms: Option<i64>,
        until_ms: Option<i64>,
        now_ms: Option<i64>,
    ) -> Report {
        let last = self.last_at.unwrap_or(first);
        let end = match (self.epoch_open, now_ms) {
            (true, Some(now)) => now.max(last),
            (true, None) => last,
            (false, _) => self.last_stop.unwrap_or(last),
        };
        if self.epoch_open && now_ms.is_none() {
            // Killed (or still running, unknown to this reader): nothing is known after the
            // last record.
            self.gaps.push(Gap {
                from_ms: last,
                to_ms: last,
            });
        }
        for sim in self.sims() {
            sim.fire_own_timers(end);
            sim.tape.close(end);
        }
        self.recorded_tape.close(end);
        let from = since_ms.unwrap_or(self.first_seen.unwrap_or(first));
        let to = until_ms.map(|u| u.min(end)).unwrap_or(end);
        let empty = from > to;
        let mut report = std::mem::take(&mut self.report);
        if empty {
            report.notes.push(format!(
                "the window holds no time of this service's journal (it ends at {})",
                format_time(end)
            ));
        }
        let to = to.max(from);
        report.from_ms = from;
        report.to_ms = to;
        report.observations = self.actual.observations;
        let overlaps = |g: &Gap| {
            g.to_ms >= from && g.from_ms <= to && !(g.from_ms == g.to_ms && g.from_ms < from)
        };
        report.gaps = std::mem::take(&mut self.gaps)
            .into_iter()
            .filter(overlaps)
            .collect();
        report.approximate = merge(
            std::mem::take(&mut self.approximate)
                .into_iter()
                .filter(overlaps)
                .collect(),
        );
        // The state at the window's end is known when the window ends where the journal does.
        let at_end = self.epoch_open && to >= end;
        let parameters = |list: &[(i64, String)]| {
            if empty {
                Vec::new()
            } else {
                spans_in(list, from, to)
            }
        };
        let end_state = self.actual.core.as_ref().map(|c| end_text(c, end));
        report.recorded = build_run(
            parameters(&self.history.recorded),
            std::mem::take(&mut self.recorded_steps),
            &self.recorded_tape,
            from,
            to,
            end_state.filter(|_| at_end),
        );
        if !self.what_if.is_empty() {
            let end_state = self.other.core.as_ref().map(|c| end_text(c, end));
            report.what_if = Some(build_run(
                parameters(&self.history.what_if),
                what_if_steps(&self.other),
                &self.other.tape,
                from,
                to,
                end_state.filter(|_| at_end),
            ));
        }
        self.describe_service(&mut report);
        report
    }

    /// The service's shadow checks and prefixes, the `--with-shadow` names that were never a
    /// shadow check, and a note when nothing was measured.
    fn describe_service(&self, report: &mut Report) {
        let history = &self.history;
        report.shadow_checks = history.shadows.iter().cloned().collect();
        report.prefixes = history
            .prefixes
            .iter()
            .map(crate::audit::text::prefix_with_backend)
            .collect();
        report.not_shadow = self
            .what_if
            .with_shadow
            .iter()
            .filter(|c| !history.shadows.contains(*c))
            .cloned()
            .collect();
        if report.recorded.summary.measured_ms == 0 && report.notes.is_empty() {
            report.notes.push("the service was not measured in this window (the daemon was not running, or the service was not configured)".into());
        }
    }
}

/// The what-if run's timeline: its transitions, its own start-up lines (as the recorded
/// timeline has the journal's) and its damping changes.
fn what_if_steps(other: &Sim) -> Vec<(i64, Step, bool)> {
    other
        .produced
        .iter()
        .filter_map(|(at, p)| match p {
            Produced::Transition(t, names, withdrawal) => {
                let cause = crate::service::wire_cause(&t.cause, names);
                Some((
                    *at,
                    Step {
                        at_ms: *at,
                        time: format_time(*at),
                        kind: if matches!(t.cause, fsm::Cause::GraceEnded) {
                            "grace-ended".into()
                        } else {
                            transition_kind()
                        },
                        from: state_text(&(&t.from).into()),
                        to: state_text(&(&t.to).into()),
                        dwell_ms: None,
                        cause: crate::audit::text::cause_in(&cause, &(&t.to).into()),
                    },
                    *withdrawal,
                ))
            }
            Produced::Restart { from, to } => Some((
                *at,
                Step {
                    at_ms: *at,
                    time: format_time(*at),
                    kind: "restart".into(),
                    from: state_text(&from.into()),
                    to: state_text(&to.into()),
                    dwell_ms: None,
                    cause: cause_text(if *to == fsm::State::Starting {
                        &wire::Cause::Restart
                    } else {
                        &wire::Cause::Restored
                    }),
                },
                false,
            )),
            Produced::Level { level, withdrawal } => Some((
                *at,
                Step {
                    at_ms: *at,
                    time: format_time(*at),
                    kind: "level".into(),
                    from: String::new(),
                    to: String::new(),
                    dwell_ms: None,
                    cause: format!(
                        "level changed by a reload: {}",
                        crate::audit::text::level_name(level.map(Into::into))
                    ),
                },
                *withdrawal,
            )),
            other => damping_step(*at, other),
        })
        .collect()
}

fn verify_damping(actual: &mut Sim, d: &wire::DampingRecord, seq: u64, report: &mut Report) {
    // Bit for bit: the re-run's damping state must be the journal's.
    let Some(core) = actual.core.as_mut() else {
        return;
    };
    if core.machine().damping() != d.state() {
        report.divergences.push(Divergence {
            seq,
            recorded: format!(
                "damping penalty {} at {}",
                d.penalty_milli as f64 / 1000.0,
                format_time(d.at_ms)
            ),
            replayed: format!(
                "damping penalty {} at {}",
                core.machine().damping().penalty_milli as f64 / 1000.0,
                format_time(core.machine().damping().at.0)
            ),
        });
        let _ = core.restore_damping(d.state(), d.at_ms);
    }
}

fn recorded_step(at: i64, t: &wire::Transition) -> (i64, Step, bool) {
    let restart = matches!(
        t.cause,
        wire::Cause::Restored | wire::Cause::Adopted | wire::Cause::Restart
    );
    (
        at,
        Step {
            at_ms: at,
            time: format_time(at),
            kind: if restart {
                "restart".into()
            } else {
                transition_kind()
            },
            from: state_text(&t.from),
            to: state_text(&t.to),
            dwell_ms: None,
            cause: crate::audit::text::transition_cause_text(t),
        },
        matches!(t.cause, wire::Cause::Verdict { healthy: false, .. })
            && t.from == wire::State::Healthy,
    )
}

/// A damping state journaled before a restart, restored in the recorded run; a what-if with
/// its own damping settings keeps its own state, one with the recorded settings takes it too.
fn restore_recorded_damping(actual: &mut Sim, other: &mut Sim, state: fsm::DampingState, at: i64) {
    if let Some(core) = actual.core.as_mut() {
        let _ = core.restore_damping(state, at);
    }
    if other.what_if.damping.is_none() && other.carried_damping.is_none() {
        if let Some(core) = other.core.as_mut() {
            let _ = core.restore_damping(state, at);
        }
    }
}

/// Format 1: `n` results identical to the last ones, placed at `at` (the previous record's
/// time: their own times were not journaled). No more than the time since then can hold at
/// one a millisecond (a damaged count does not make replay run for ever).
fn repeats(sims: &mut [&mut Sim], n: u64, at: i64, until: i64) {
    let possible = u64::try_from(until.saturating_sub(at))
        .unwrap_or(0)
        .saturating_add(1);
    let n = n.min(possible);
    for sim in sims.iter_mut() {
        let Some(core) = sim.core.as_ref() else {
            continue;
        };
        let Some(latest) = core.machine().observations().next().cloned() else {
            continue;
        };
        for _ in 0..n {
            sim.observe_index(0, latest.clone(), at);
        }
    }
}

fn merge(mut spans: Vec<Gap>) -> Vec<Gap> {
    spans.sort_by_key(|g| g.from_ms);
    let mut merged: Vec<Gap> = Vec::new();
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.from_ms <= last.to_ms => last.to_ms = last.to_ms.max(span.to_ms),
            _ => merged.push(span),
        }
    }
    merged
}

fn damping_step(at: i64, produced: &Produced) -> Option<(i64, Step, bool)> {
    let (kind, cause) = match produced {
        Produced::Transition(..) | Produced::Restart { .. } | Produced::Level { .. } => {
            return None
        }
        Produced::Suppressed {
            penalty_milli,
            until,
        } => (
            "suppressed",
            format!(
                "flap damping: penalty {:.0} above suppress: held withdrawn{}",
                *penalty_milli as f64 / 1000.0,
                until
                    .map(|u| format!(
                        " until about {} (the penalty decays below reuse) and its checks pass",
                        format_time(u)
                    ))
                    .unwrap_or_default()
            ),
        ),
        Produced::Unsuppressed { penalty_milli } => (
            "unsuppressed",
            format!(
                "flap damping: penalty {:.0}, no longer suppressed",
                *penalty_milli as f64 / 1000.0
            ),
        ),
    };
    Some((
        at,
        Step {
            at_ms: at,
            time: format_time(at),
            kind: kind.into(),
            from: String::new(),
            to: String::new(),
            dwell_ms: None,
            cause,
        },
        false,
    ))
}

/// The state at the window's end, and why a withdrawn service stays so.
fn end_text(core: &Core, at: i64) -> String {
    let machine = core.machine();
    let state = state_text(&machine.state().into());
    if let (Some(d), Some(since)) = (
        machine.params().damping.as_ref(),
        machine.damping().suppressed_since,
    ) {
        let damping = machine.damping();
        let until = d
            .reuse_time(damping.penalty_milli, damping.at)
            .min(since.after(d.max_suppress));
        return format!(
            "{state}, held withdrawn by flap damping (penalty {:.0} at {}) until about {} and its checks pass",
            machine.penalty_at(fsm::Timestamp(at)) as f64 / 1000.0,
            format_time(at),
            format_time(until.0)
        );
    }
    state
}

/// Read `service`'s records (and the daemon's) from the journal and replay them.
pub fn replay_from(
    reader: &anycastd_journal::Reader,
    service: &str,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    now_ms: Option<i64>,
    what_if: &WhatIf,
) -> Result<Report, anycastd_journal::Error> {
    let query = crate::audit::history::Query {
        service: Some(service.to_owned()),
        bookkeeping: true,
        ..crate::audit::history::Query::default()
    };
    let selection = crate::audit::history::select(reader, &query)?;
    Ok(replay(
        service,
        &selection.records,
        since_ms,
        until_ms,
        now_ms,
        what_if,
    ))
}

/// The overlap of `[a, b)` with `[from, to)`.
fn overlap(a: i64, b: i64, from: i64, to: i64) -> i64 {
    (b.min(to) - a.max(from)).max(0)
}

/// Timeline and figures in `[from, to]`.
fn build_run(
    parameters: Vec<Parameters>,
    steps: Vec<(i64, Step, bool)>,
    tape: &Tape,
    from: i64,
    to: i64,
    end: Option<String>,
) -> Run {
    let mut run = Run {
        parameters,
        end,
        ..Run::default()
    };
    let mut previous_at: Option<i64> = None;
    let mut flap_times = Vec::new();
    for (at, mut step, withdrawal) in steps {
        let is_transition = step.kind == "transition" || step.kind == "restart";
        if at >= from && at <= to {
            if step.kind == "transition" {
                step.dwell_ms = previous_at.map(|p| (at - p).max(0));
                run.summary.transitions += 1;
            } else if step.kind == "suppressed" {
                run.summary.suppressions += 1;
            }
            if withdrawal {
                flap_times.push(at);
            }
            run.timeline.push(step);
        }
        if is_transition {
            previous_at = Some(at);
        }
    }
    let summary = &mut run.summary;
    flap_times.sort_unstable();
    summary.flaps = flap_times.len();
    summary.worst_hour_flaps = worst_hour(&flap_times);
    // Time by category, and the outages (stretches of `unhealthy`; adjacent spans of it are
    // one outage, any other span ends it).
    let mut outage: Option<(i64, i64)> = None;
    let mut outages: Vec<(i64, bool)> = Vec::new();
    let mut spans = tape.spans.clone();
    spans.extend(tape.current.map(|(since, c)| (since, since, c)));
    for (a, b, category) in &spans {
        let within = overlap(*a, *b, from, to);
        match category {
            Some(Category::Announced) => summary.announced_ms += within,
            Some(Category::Outage) => summary.outage_ms += within,
            Some(Category::Drained) => summary.drained_ms += within,
            Some(Category::Starting) => summary.starting_ms += within,
            Some(Category::Depreferred) => summary.depreferred_ms += within,
            Some(Category::Grace) => summary.grace_ms += within,
            Some(Category::Held) => summary.held_ms += within,
            None => {}
        }
        if category.is_some() {
            summary.measured_ms += within;
        }
        if *category == Some(Category::Outage) {
            if within > 0 || (*a >= from && *a <= to) {
                let (start, length) = outage.unwrap_or((*a, 0));
                outage = Some((start, length + within));
            }
        } else if let Some((_, length)) = outage.take() {
            // Repaired when the prefixes are announced again, plain or de-preferred (a
            // reload back to `on_unhealthy = "deprefer"` ends an outage too).
            let announced = matches!(category, Some(Category::Announced | Category::Depreferred));
            outages.push((length, announced && *a <= to));
        }
    }
    if let Some((_, length)) = outage {
        outages.push((length, false));
    }
    summary.withdrawn_ms = summary.outage_ms + summary.drained_ms;
    summary.outages = outages.len();
    summary.longest_outage_ms = outages.iter().map(|(l, _)| *l).max().unwrap_or(0);
    let repaired: Vec<i64> = outages
        .iter()
        .filter(|(_, repaired)| *repaired)
        .map(|(l, _)| *l)
        .collect();
    summary.mean_time_to_repair_ms =
        (!repaired.is_empty()).then(|| repaired.iter().sum::<i64>() / repaired.len() as i64);
    summary.announced_ratio = if summary.measured_ms > 0 {
        summary.announced_ms as f64 / summary.measured_ms as f64
    } else {
        0.0
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

/// The time announced at another level than normal, each only when there was some (so a
/// journal from before graded announcements reads as it did).
fn levels_text(s: &Summary) -> String {
    let mut text = String::new();
    for (ms, what) in [
        (s.depreferred_ms, "de-preferred"),
        (s.grace_ms, "in a drain's grace"),
        (s.held_ms, "held announced by the fleet guard"),
    ] {
        if ms > 0 {
            text.push_str(&format!(", {what} {}", seconds(ms)));
        }
    }
    text
}

fn render_run(out: &mut String, title: &str, run: &Run) {
    out.push_str(&format!("{title}:\n"));
    for p in &run.parameters {
        out.push_str(&format!(
            "  parameters from {} to {}: {}\n",
            format_time(p.from_ms),
            format_time(p.to_ms),
            p.text
        ));
    }
    if run.timeline.is_empty() {
        out.push_str("  (no transitions in the window)\n");
    }
    for step in &run.timeline {
        if step.kind == "transition" || step.kind == "restart" {
            let dwell = step
                .dwell_ms
                .map(|d| format!(" after {}", seconds(d)))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {} {} -> {}{dwell} ({})\n",
                step.time, step.from, step.to, step.cause
            ));
        } else {
            out.push_str(&format!("  {} {}\n", step.time, step.cause));
        }
    }
    let s = &run.summary;
    let mttr = s
        .mean_time_to_repair_ms
        .map(|m| format!(", mean time to repair {}", seconds(m)))
        .unwrap_or_default();
    out.push_str(&format!(
        "  summary: {} transition(s), {} flap(s) (worst hour {}), announced {:.1} % of {} measured, {} outage(s), longest {}{mttr}, drained {}{}{}\n",
        s.transitions,
        s.flaps,
        s.worst_hour_flaps,
        s.announced_ratio * 100.0,
        seconds(s.measured_ms),
        s.outages,
        seconds(s.longest_outage_ms),
        seconds(s.drained_ms),
        levels_text(s),
        if s.suppressions > 0 {
            format!(", {} damping suppression(s)", s.suppressions)
        } else {
            String::new()
        }
    ));
    if let Some(end) = &run.end {
        out.push_str(&format!("  at the end of the window: {end}\n"));
    }
}

/// The human report.
pub fn render_text(report: &Report) -> String {
    let mut out = format!(
        "replay of {} from {} to {}: {} check result(s) re-run\n",
        report.service,
        format_time(report.from_ms),
        format_time(report.to_ms),
        report.observations
    );
    if !report.prefixes.is_empty() {
        out.push_str(&format!("prefixes: {}\n", report.prefixes.join(", ")));
    }
    for note in &report.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    render_run(&mut out, "recorded", &report.recorded);
    if report.divergences.is_empty() {
        out.push_str(&format!(
            "verification: the re-run of the whole journal reproduces all {} recorded transition(s) exactly\n",
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
        if gap.from_ms == gap.to_ms {
            out.push_str(&format!(
                "gap: the daemon stopped without a stop record (killed?); nothing is known after {}\n",
                format_time(gap.from_ms)
            ));
        } else {
            out.push_str(&format!(
                "gap: the daemon was killed; nothing is known from {} to {}\n",
                format_time(gap.from_ms),
                format_time(gap.to_ms)
            ));
        }
    }
    for span in &report.approximate {
        out.push_str(&format!(
            "approximate: from {} to {} the journal (format 1) kept only counts of unchanged results; what-if times there are those of the record before\n",
            format_time(span.from_ms),
            format_time(span.to_ms)
        ));
    }
    if let Some(what_if) = &report.what_if {
        out.push('\n');
        render_run(&mut out, "what-if", what_if);
        let (a, b) = (&report.recorded.summary, &what_if.summary);
        let mut levels = String::new();
        for (a, b, what) in [
            (a.depreferred_ms, b.depreferred_ms, "de-preferred"),
            (a.grace_ms, b.grace_ms, "in grace"),
            (a.held_ms, b.held_ms, "held by the fleet guard"),
        ] {
            if a > 0 || b > 0 {
                levels.push_str(&format!(", {what} {} -> {}", seconds(a), seconds(b)));
            }
        }
        out.push_str(&format!(
            "compared with what happened: flaps {} -> {}, announced {:.1} % -> {:.1} %, longest outage {} -> {}{levels}\n",
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

    const T: i64 = 1_796_000_000_000;

    /// A journal of dns: started at T, then `events` at T + their offset (seconds), stopped at
    /// T + 100 s. Only the transitions and level and guard records matter to the figures.
    fn journal(events: Vec<(i64, Event)>) -> Vec<Record> {
        let params = wire::ServiceParams {
            name: "dns".into(),
            rise: 1,
            fall: 1,
            checks: Vec::new(),
            prefixes: Vec::new(),
            require: 0,
        };
        let mut all = vec![
            (
                0,
                Event::DaemonStarted(wire::DaemonStarted {
                    version: "test".into(),
                    pid: 1,
                    config_hash: "h".into(),
                    boot_id: "b".into(),
                    services: vec![params],
                }),
            ),
            (0, Event::Reconciled(wire::Reconciled::default())),
        ];
        all.extend(events);
        all.push((
            100,
            Event::DaemonStopped(wire::DaemonStopped {
                reason: "SIGTERM".into(),
                outcome: wire::StopOutcome::WithdrawnAll,
            }),
        ));
        all.into_iter()
            .enumerate()
            .map(|(i, (at, event))| Record {
                version: event.format(),
                seq: i as u64 + 1,
                at_ms: T + at * 1000,
                event,
            })
            .collect()
    }

    fn transition(from: wire::State, to: wire::State, cause: wire::Cause) -> Event {
        let change = if matches!(to, wire::State::Healthy) {
            wire::Change::Announce
        } else {
            wire::Change::Withdraw
        };
        Event::Transition(wire::Transition {
            service: "dns".into(),
            from,
            to,
            cause,
            healthy_streak: 0,
            unhealthy_streak: 0,
            change,
            prefixes: Vec::new(),
        })
    }

    fn verdict(healthy: bool) -> wire::Cause {
        wire::Cause::Verdict {
            healthy,
            checks: Vec::new(),
        }
    }

    fn level(level: Option<wire::Level>, grace_until: Option<i64>) -> Event {
        Event::Level(wire::LevelRecord {
            service: "dns".into(),
            level,
            attributes: wire::Attributes::default(),
            grace_until_ms: grace_until.map(|s| T + s * 1000),
        })
    }

    fn guard(transition_seq: u64, held: bool) -> Event {
        let count = wire::FleetCount {
            announcing: 3,
            sites: 5,
            rule: "minimum 3".into(),
        };
        Event::FleetGuard(wire::FleetGuard {
            service: "dns".into(),
            transition_seq,
            answer: if held {
                wire::FleetAnswer::Held(count)
            } else {
                wire::FleetAnswer::Granted(count)
            },
        })
    }

    use wire::State::{Healthy, Starting, Unhealthy};

    /// Healthy at 10 s, unhealthy from 20 s to 33 s, healthy again to the stop at 100 s; the
    /// records after the fall to unhealthy are `after`.
    fn fall_and_recover(after: Vec<(i64, Event)>) -> Summary {
        let mut events = vec![
            (10, transition(Starting, Healthy, verdict(true))),
            (20, transition(Healthy, Unhealthy, verdict(false))),
        ];
        events.extend(after);
        events.push((33, transition(Unhealthy, Healthy, verdict(true))));
        let records = journal(events);
        replay("dns", &records, None, None, None, &WhatIf::default())
            .recorded
            .summary
    }

    #[test]
    fn a_journal_without_levels_counts_an_unhealthy_spell_as_a_withdrawal_and_an_outage() {
        let s = fall_and_recover(Vec::new());
        assert_eq!((s.flaps, s.outages, s.outage_ms), (1, 1, 13_000));
        assert_eq!(s.mean_time_to_repair_ms, Some(13_000));
        assert_eq!((s.depreferred_ms, s.grace_ms, s.held_ms), (0, 0, 0));
        assert_eq!(s.announced_ms, 77_000);
        assert_eq!(s.withdrawn_ms, 13_000);
    }

    #[test]
    fn a_de_preferred_spell_is_no_withdrawal_and_no_outage() {
        // The operator walk: dns 13 s de-preferred, still at the peer.
        let s = fall_and_recover(vec![(20, level(Some(wire::Level::Depreferred), None))]);
        assert_eq!((s.flaps, s.outages, s.outage_ms), (0, 0, 0), "{s:?}");
        assert_eq!(s.mean_time_to_repair_ms, None);
        assert_eq!(s.depreferred_ms, 13_000);
        assert_eq!(
            (s.announced_ms, s.measured_ms, s.withdrawn_ms),
            (77_000, 100_000, 0)
        );
        let text = render_text(&Report {
            recorded: Run {
                summary: s,
                ..Run::default()
            },
            ..Report::default()
        });
        assert!(
            text.contains("0 outage(s)") && text.contains(", de-preferred 13.0 s"),
            "{text}"
        );
    }

    #[test]
    fn a_withdrawal_held_by_the_fleet_guard_is_no_outage_until_it_is_granted() {
        // Held, then the service recovers: announced all along.
        let s = fall_and_recover(vec![(20, guard(4, true))]);
        assert_eq!(
            (s.flaps, s.outages, s.held_ms, s.outage_ms),
            (0, 0, 13_000, 0),
            "{s:?}"
        );
        // Held 5 s, then granted: a withdrawal and an outage of 8 s from the grant.
        let s = fall_and_recover(vec![(20, guard(4, true)), (25, guard(4, false))]);
        assert_eq!(
            (s.flaps, s.outages, s.held_ms, s.outage_ms),
            (1, 1, 5_000, 8_000),
            "{s:?}"
        );
        assert_eq!(s.mean_time_to_repair_ms, Some(8_000));
        // Granted at once: as without a guard.
        let s = fall_and_recover(vec![(20, guard(4, false))]);
        assert_eq!(
            (s.flaps, s.outages, s.held_ms, s.outage_ms),
            (1, 1, 0, 13_000),
            "{s:?}"
        );
        // An answer to an older transition changes nothing.
        let s = fall_and_recover(vec![(21, guard(3, true))]);
        assert_eq!((s.flaps, s.held_ms), (1, 0), "{s:?}");
    }

    #[test]
    fn a_withdrawal_held_across_a_restart_stays_held_time_not_an_outage() {
        // Held at 20 s; the daemon is killed and restarts at 25 s: its reconciliation (seq 6)
        // keeps the route, the service is restored unhealthy, and its driver asks the guard
        // again under the reconciliation's sequence number: held again.
        let s = fall_and_recover(vec![
            (20, guard(4, true)),
            (25, Event::Reconciled(wire::Reconciled::default())),
            (25, transition(Unhealthy, Unhealthy, wire::Cause::Restored)),
            (25, guard(6, true)),
        ]);
        assert_eq!(
            (s.flaps, s.outages, s.outage_ms, s.held_ms),
            (0, 0, 0, 13_000),
            "{s:?}"
        );
    }

    #[test]
    fn a_drains_grace_is_in_grace_then_drained_and_never_an_outage() {
        let draining = wire::State::Draining(wire::DrainCause::Operator {
            reason: "maintenance".into(),
            expires_at_ms: None,
            uid: 0,
        });
        let records = journal(vec![
            (10, transition(Starting, Healthy, verdict(true))),
            (
                40,
                transition(Healthy, draining.clone(), wire::Cause::Drain),
            ),
            (40, level(Some(wire::Level::GracefulShutdown), Some(70))),
            (
                70,
                transition(draining.clone(), draining, wire::Cause::GraceEnded),
            ),
        ]);
        let report = replay("dns", &records, None, None, None, &WhatIf::default());
        let s = &report.recorded.summary;
        assert_eq!(
            (s.grace_ms, s.drained_ms, s.outages, s.flaps),
            (30_000, 30_000, 0, 0),
            "{s:?}"
        );
        assert_eq!(
            s.transitions, 2,
            "the grace's end is a level change, not a transition"
        );
        let ended: Vec<&str> = report
            .recorded
            .timeline
            .iter()
            .map(|s| s.kind.as_str())
            .collect();
        assert_eq!(ended, ["transition", "transition", "grace-ended"]);
        let text = render_text(&report);
        assert!(text.contains(", in a drain's grace 30.0 s"), "{text}");
        assert!(text.contains("the drain's grace is over"), "{text}");
    }

    /// A reload of dns's definition (its driver's record), as the level records it journals
    /// after it follow.
    fn reconfigured() -> Event {
        Event::Reconfigured(Box::new(wire::Reconfigured {
            service: "dns".into(),
            params: wire::ServiceParams {
                name: "dns".into(),
                rise: 1,
                fall: 1,
                checks: Vec::new(),
                prefixes: Vec::new(),
                require: 0,
            },
            damping: None,
        }))
    }

    #[test]
    fn a_reload_that_de_prefers_a_withdrawn_failure_keeps_the_withdrawal_before_it() {
        // Withdrawn at 20 s (on_unhealthy withdraw); a reload to deprefer at 25 s announces
        // it de-preferred; healthy at 33 s. The 5 s withdrawn were an outage, and a
        // withdrawal; the 8 s after the reload de-preferred.
        let s = fall_and_recover(vec![
            (25, reconfigured()),
            (25, level(Some(wire::Level::Depreferred), None)),
        ]);
        assert_eq!(
            (s.flaps, s.outages, s.outage_ms, s.depreferred_ms),
            (1, 1, 5_000, 8_000),
            "{s:?}"
        );
        assert_eq!(s.longest_outage_ms, 5_000);
        assert_eq!(s.announced_ms, 77_000);
        // Announced again (de-preferred): the outage was repaired in 5 s.
        assert_eq!(s.mean_time_to_repair_ms, Some(5_000));
    }

    #[test]
    fn a_reload_that_withdraws_a_de_preferred_failure_is_a_withdrawal_and_an_outage_from_it() {
        // De-preferred at 20 s; a reload back to withdraw at 25 s withdraws it; healthy at
        // 33 s: 5 s de-preferred, then an outage of 8 s that began with a withdrawal.
        let records = journal(vec![
            (10, transition(Starting, Healthy, verdict(true))),
            (20, transition(Healthy, Unhealthy, verdict(false))),
            (20, level(Some(wire::Level::Depreferred), None)),
            (25, reconfigured()),
            (25, level(None, None)),
            (33, transition(Unhealthy, Healthy, verdict(true))),
        ]);
        let report = replay("dns", &records, None, None, None, &WhatIf::default());
        let s = &report.recorded.summary;
        assert_eq!(
            (s.flaps, s.outages, s.outage_ms, s.depreferred_ms),
            (1, 1, 8_000, 5_000),
            "{s:?}"
        );
        assert_eq!(s.mean_time_to_repair_ms, Some(8_000));
        // The timeline says where the withdrawal came from.
        let step = report
            .recorded
            .timeline
            .iter()
            .find(|s| s.kind == "level")
            .unwrap();
        assert_eq!(
            (step.at_ms, step.cause.as_str()),
            (T + 25_000, "level changed by a reload: withdrawn")
        );
        // New attributes at the same level change no figure.
        let s = fall_and_recover(vec![
            (20, level(Some(wire::Level::Depreferred), None)),
            (25, reconfigured()),
            (25, level(Some(wire::Level::Depreferred), None)),
        ]);
        assert_eq!(
            (s.flaps, s.outages, s.depreferred_ms),
            (0, 0, 13_000),
            "{s:?}"
        );
    }

    /// dns's daemon started again at `at` (seconds) after a kill, its reconciliation deciding
    /// `decision` for its prefix.
    fn restarted(at: i64, decision: wire::ReconcileDecision) -> Vec<(i64, Event)> {
        let started = journal(Vec::new()).remove(0).event;
        vec![
            (at, started),
            (
                at,
                Event::Reconciled(wire::Reconciled {
                    items: vec![wire::ReconcileItem {
                        service: "dns".into(),
                        prefix: wire::PrefixRef::frr("/usr/bin/vtysh", None, "203.0.113.53/32"),
                        decision,
                    }],
                    ..wire::Reconciled::default()
                }),
            ),
        ]
    }

    #[test]
    fn a_grace_kept_across_a_kill_is_grace_after_the_restart_not_drained_time() {
        let draining = wire::State::Draining(wire::DrainCause::Operator {
            reason: "maintenance".into(),
            expires_at_ms: None,
            uid: 0,
        });
        // Drained at 40 s with a grace to `until`; killed, started again at 50 s, the
        // reconciliation deciding `decision`.
        let drained = |until: i64, decision: wire::ReconcileDecision| {
            let mut events = vec![
                (10, transition(Starting, Healthy, verdict(true))),
                (
                    40,
                    Event::Operator(wire::OperatorAction {
                        kind: wire::OperatorKind::Drain {
                            service: "dns".into(),
                            reason: "maintenance".into(),
                            expires_at_ms: None,
                        },
                        uid: 0,
                        pid: 1,
                    }),
                ),
                (
                    40,
                    transition(Healthy, draining.clone(), wire::Cause::Drain),
                ),
                (40, level(Some(wire::Level::GracefulShutdown), Some(until))),
            ];
            events.extend(restarted(50, decision));
            events
        };
        // Kept (in its grace), withdrawn at 70 s by its timer.
        let mut events = drained(70, wire::ReconcileDecision::Kept);
        events.push((
            70,
            transition(draining.clone(), draining.clone(), wire::Cause::GraceEnded),
        ));
        let records = journal(events);
        let report = replay("dns", &records, None, None, None, &WhatIf::default());
        let s = &report.recorded.summary;
        // 40-50 s: a gap (the killed daemon's last record was at 40 s).
        assert_eq!(report.gaps.len(), 1, "{:?}", report.gaps);
        assert_eq!(
            (s.grace_ms, s.drained_ms, s.outages, s.flaps),
            (20_000, 30_000, 0, 0),
            "{s:?}"
        );
        // A what-if keeps the grace across the restart as the daemon did.
        let what_if = WhatIf {
            rise: Some(1),
            ..WhatIf::default()
        };
        let report = replay("dns", &records, None, None, None, &what_if);
        let w = &report.what_if.unwrap().summary;
        assert_eq!((w.grace_ms, w.drained_ms), (20_000, 30_000), "{w:?}");
        // Its grace over while the daemon was down: withdrawn at the start, drained from it.
        let records = journal(drained(45, wire::ReconcileDecision::Withdrawn));
        let s = replay("dns", &records, None, None, None, &WhatIf::default())
            .recorded
            .summary;
        assert_eq!((s.grace_ms, s.drained_ms), (0, 50_000), "{s:?}");
    }

    #[test]
    fn an_unhealthy_service_restored_de_preferred_stays_de_preferred_time() {
        // De-preferred at 20 s; killed, started again at 25 s with the route kept: restored
        // unhealthy, still de-preferred, healthy at 33 s.
        let mut after = vec![(20, level(Some(wire::Level::Depreferred), None))];
        after.extend(restarted(25, wire::ReconcileDecision::Kept));
        after.push((25, transition(Unhealthy, Unhealthy, wire::Cause::Restored)));
        let s = fall_and_recover(after);
        assert_eq!(
            (s.flaps, s.outages, s.outage_ms, s.depreferred_ms),
            (0, 0, 0, 8_000),
            "{s:?}"
        );
    }

    #[test]
    fn a_what_if_follows_on_unhealthy_as_the_journal_shows_it_stretch_by_stretch() {
        // One check; withdraw until a reload at 25 s makes dns deprefer: the first failure
        // (20 s to 33 s) withdrew until the reload, the second (50 s to 60 s) de-preferred.
        let params = wire::ServiceParams {
            name: "dns".into(),
            rise: 1,
            fall: 1,
            checks: vec![wire::CheckParams {
                kind: "cabourotte".into(),
                identity: "http://127.0.0.1:9013".into(),
                name: "dns".into(),
                interval_ms: 1_000,
                timeout_ms: 1_000,
                pending_timeout_ms: 10_000,
                max_age_ms: None,
                shadow: false,
            }],
            prefixes: Vec::new(),
            require: 0,
        };
        let edge = |pass: bool| {
            Event::CheckEdge(wire::CheckEdge {
                service: "dns".into(),
                check: "dns".into(),
                observation: if pass {
                    wire::Observation::Pass
                } else {
                    wire::Observation::Fail("down".into())
                },
                polls_since_last_edge: 0,
            })
        };
        let events = vec![
            (
                0,
                Event::DaemonStarted(wire::DaemonStarted {
                    version: "test".into(),
                    pid: 1,
                    config_hash: "h".into(),
                    boot_id: "b".into(),
                    services: vec![params.clone()],
                }),
            ),
            (0, Event::Reconciled(wire::Reconciled::default())),
            (10, edge(true)),
            (10, transition(Starting, Healthy, verdict(true))),
            (20, edge(false)),
            (20, transition(Healthy, Unhealthy, verdict(false))),
            (
                25,
                Event::Reconfigured(Box::new(wire::Reconfigured {
                    service: "dns".into(),
                    params,
                    damping: None,
                })),
            ),
            (25, level(Some(wire::Level::Depreferred), None)),
            (33, edge(true)),
            (33, transition(Unhealthy, Healthy, verdict(true))),
            (50, edge(false)),
            (50, transition(Healthy, Unhealthy, verdict(false))),
            (50, level(Some(wire::Level::Depreferred), None)),
            (60, edge(true)),
            (60, transition(Unhealthy, Healthy, verdict(true))),
            (
                100,
                Event::DaemonStopped(wire::DaemonStopped {
                    reason: "SIGTERM".into(),
                    outcome: wire::StopOutcome::WithdrawnAll,
                }),
            ),
        ];
        let records: Vec<Record> = events
            .into_iter()
            .enumerate()
            .map(|(i, (at, event))| Record {
                version: event.format(),
                seq: i as u64 + 1,
                at_ms: T + at * 1000,
                event,
            })
            .collect();
        let what_if = WhatIf {
            rise: Some(1),
            ..WhatIf::default()
        };
        let report = replay("dns", &records, None, None, None, &what_if);
        let recorded = &report.recorded.summary;
        let w = &report.what_if.unwrap().summary;
        // The same settings: the what-if counts what the recorded run did.
        assert_eq!(
            (recorded.flaps, recorded.outage_ms, recorded.depreferred_ms),
            (1, 5_000, 18_000),
            "{recorded:?}"
        );
        assert_eq!(
            (w.flaps, w.outage_ms, w.depreferred_ms),
            (1, 5_000, 18_000),
            "{w:?}"
        );
    }

    #[test]
    fn the_worst_hour_counts_flaps_in_a_sliding_hour() {
        assert_eq!(worst_hour(&[]), 0);
        assert_eq!(worst_hour(&[0, 1_000, 3_599_999, 3_600_000, 7_300_000]), 3);
    }

    #[test]
    fn an_outage_is_measured_only_inside_the_window_and_ends_at_a_drain() {
        let mut tape = Tape::default();
        tape.set(0, Some(Category::Announced));
        tape.set(1_000, Some(Category::Outage));
        tape.set(4_000, Some(Category::Drained));
        tape.set(5_000, Some(Category::Outage));
        tape.set(6_000, Some(Category::Announced));
        tape.close(10_000);
        let run = build_run(Vec::new(), Vec::new(), &tape, 2_000, 9_000, None);
        let s = &run.summary;
        assert_eq!(s.measured_ms, 7_000);
        assert_eq!(
            (s.announced_ms, s.outage_ms, s.drained_ms),
            (3_000, 3_000, 1_000)
        );
        assert_eq!(s.outages, 2);
        assert_eq!(s.longest_outage_ms, 2_000);
        assert_eq!(s.mean_time_to_repair_ms, Some(1_000));
    }
}
