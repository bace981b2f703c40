//! One service's decisions, without IO: the state machine, its timers and the
//! [`record::Recorder`], behind one input-at-a-time API that the live driver
//! ([`crate::service::driver`]), the replay ([`crate::audit::replay`]) and the tests all use, so that what is
//! journaled and what replay re-runs cannot drift apart.
//!
//! Every method takes the input's time and returns [`Effects`]: the records to journal (in
//! order; durable when there is a transition), the transition, the desired state to set for
//! the service's prefixes once the records are durable, and a damping change to log. Timers
//! are kept here with their deadlines; a timer is fed to the machine *at its deadline*
//! ([`Core::fire`]), not at the moment the driver woke up, so its effect has an exact time.

pub mod driver;
pub mod record;

use anycastd_fsm::{
    self as fsm, Action, DampingState, DrainCause, Input, Machine, Observation, State, Timer,
    Timestamp,
};
use anycastd_journal::wire::{self, Event};
use std::time::Duration;

/// What one input asks of the driver.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    /// Records to journal, in this order (durably when `transition` is set).
    pub records: Vec<Event>,
    /// The state change, if any.
    pub transition: Option<fsm::Transition>,
    /// The desired state of every prefix of the service (announce or withdraw), to hand to
    /// the routing daemon once the records are durable.
    pub set: Option<bool>,
    /// The damping state before and after, when the input changed it.
    pub damping: Option<(DampingState, DampingState)>,
}

/// A service's graded announcements: what unhealthy means, the attributes of a de-preferred
/// announcement, and the drain grace. The default (withdraw, no attributes, no grace) is the
/// behaviour before graded announcements, and the one of a journal that does not record them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graded {
    /// What an unhealthy service does.
    pub on_unhealthy: fsm::OnUnhealthy,
    /// The `deprefer` attributes (`None`: not configured).
    pub deprefer: Option<crate::bgp::Attributes>,
    /// The grace of a drain or stop (a removal by a reload withdraws at once).
    pub drain_grace: Duration,
}

impl Graded {
    /// The graded settings of a configured service.
    pub fn of(service: &crate::config::Service) -> Graded {
        Graded {
            on_unhealthy: service.on_unhealthy,
            deprefer: service.deprefer.clone(),
            drain_grace: service.drain_grace,
        }
    }

    /// What a prefix announced at `level` carries: the plain route when normal; the
    /// `deprefer` attributes when de-preferred; those (if any) and RFC 8326 GRACEFUL_SHUTDOWN
    /// (65535:0) in a grace.
    pub fn attributes(&self, level: fsm::Level) -> crate::bgp::Attributes {
        let deprefer = || self.deprefer.clone().unwrap_or_default();
        match level {
            fsm::Level::Normal => crate::bgp::Attributes::plain(),
            fsm::Level::Depreferred => deprefer(),
            fsm::Level::GracefulShutdown => deprefer().with(crate::bgp::GRACEFUL_SHUTDOWN),
        }
    }
}

pub use crate::bgp::{attributes_of, wire_attributes};

/// The fsm parameters of a service as journaled, with its damping, the daemon's verdict
/// rule (`fail_early`: the rule of this build; `false` for a run journaled before it) and
/// its graded announcements.
pub fn params_of(
    params: &wire::ServiceParams,
    damping: Option<fsm::Damping>,
    fail_early: bool,
    graded: &Graded,
) -> fsm::Params {
    fsm::Params {
        rise: params.rise,
        fall: params.fall,
        pending_timeouts: params
            .checks
            .iter()
            .map(|c| Duration::from_millis(c.pending_timeout_ms))
            .collect(),
        damping,
        require: params.require,
        shadow: params.checks.iter().map(|c| c.shadow).collect(),
        fail_early,
        on_unhealthy: graded.on_unhealthy,
        drain_grace: graded.drain_grace,
    }
}

fn recorder_checks(params: &wire::ServiceParams) -> Vec<(String, u64)> {
    params
        .checks
        .iter()
        .map(|c| (c.name.clone(), c.interval_ms))
        .collect()
}

/// Timers in a fixed order for equal deadlines (so that two runs on the same inputs agree).
fn timer_rank(timer: &Timer) -> (u8, usize) {
    match timer {
        Timer::PendingTimeout(check) => (0, *check),
        Timer::Evaluate => (1, 0),
        Timer::DrainExpiry => (2, 0),
        Timer::DampingReuse => (3, 0),
        Timer::GraceEnd => (4, 0),
    }
}

/// The verdict rule of this build, journaled before each start (format 5): a failure that
/// pending checks cannot outweigh decides at once.
pub const VERDICT_RULE: wire::VerdictRule = wire::VerdictRule { fail_early: true };

/// One service: its machine, timers and recorder.
#[derive(Debug, Clone)]
pub struct Core {
    params: wire::ServiceParams,
    machine: Machine,
    recorder: record::Recorder,
    /// Armed timers and their deadlines (ms).
    timers: Vec<(Timer, i64)>,
    /// Whether inputs are recorded (off for replay's re-runs, which journal nothing).
    recording: bool,
    /// The verdict rule ([`fsm::Params::fail_early`]).
    fail_early: bool,
    /// Its graded announcements.
    graded: Graded,
}

impl Core {
    /// A service in `initial` at `at` (every check pending since then), forming verdicts by
    /// this build's rule ([`VERDICT_RULE`]).
    pub fn new(
        params: wire::ServiceParams,
        damping: Option<fsm::Damping>,
        initial: State,
        at: i64,
    ) -> Core {
        Core::with_rule(params, damping, initial, at, VERDICT_RULE.fail_early)
    }

    /// A service as [`Core::new`], forming verdicts by the rule `fail_early` (replay: the
    /// rule of the run it re-runs).
    pub fn with_rule(
        params: wire::ServiceParams,
        damping: Option<fsm::Damping>,
        initial: State,
        at: i64,
        fail_early: bool,
    ) -> Core {
        let (machine, actions) = Machine::with_state(
            params_of(&params, damping, fail_early, &Graded::default()),
            initial,
            Timestamp(at),
        );
        let recorder = record::Recorder::new(&params.name, &recorder_checks(&params));
        let mut core = Core {
            params,
            machine,
            recorder,
            timers: Vec::new(),
            recording: true,
            fail_early,
            graded: Graded::default(),
        };
        core.arm(actions);
        core
    }

    /// The service with its graded announcements, set at `at` (its creation: a level the new
    /// settings want is not acted on, the caller knows what is installed).
    pub fn with_graded(mut self, graded: Graded, at: i64) -> Core {
        self.graded = graded;
        let params = params_of(
            &self.params,
            self.machine.params().damping.clone(),
            self.fail_early,
            &self.graded,
        );
        let actions = self.machine.set_params(params, Timestamp(at));
        self.arm(
            actions
                .into_iter()
                .filter(|a| matches!(a, Action::ArmTimer { .. })),
        );
        self
    }

    /// The service with a drain's grace journaled before a restart restored: announced with
    /// GRACEFUL_SHUTDOWN until `until_ms` (kept, not started afresh), then withdrawn by its
    /// timer. Nothing when it is not draining or the grace is over by `at`.
    pub fn with_grace(mut self, until_ms: Option<i64>, at: i64) -> Core {
        if let Some(until) = until_ms {
            let actions = self.machine.restore_grace(Timestamp(until), Timestamp(at));
            self.arm(actions);
        }
        self
    }

    /// Its graded announcements from the next [`Core::reconfigure`] on (a reload).
    pub fn set_graded(&mut self, graded: Graded) {
        self.graded = graded;
    }

    /// Its graded announcements.
    pub fn graded(&self) -> &Graded {
        &self.graded
    }

    /// What the service wants its prefixes announced with now (`None`: withdrawn).
    pub fn wanted_attributes(&self) -> Option<crate::bgp::Attributes> {
        self.machine
            .wanted()
            .map(|level| self.graded.attributes(level))
    }

    /// Stop recording: the records of [`Effects`] stay empty (a re-run journals nothing).
    pub fn without_recording(mut self) -> Core {
        self.recording = false;
        self
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.params.name
    }

    /// Its parameters as journaled.
    pub fn params(&self) -> &wire::ServiceParams {
        &self.params
    }

    /// The machine (state, counters, damping, observations).
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// The earliest armed timer and its deadline.
    pub fn next_timer(&self) -> Option<(Timer, i64)> {
        self.timers
            .iter()
            .min_by_key(|(timer, at)| (*at, timer_rank(timer)))
            .copied()
    }

    /// The deadline of `timer`, if armed.
    pub fn deadline(&self, timer: Timer) -> Option<i64> {
        self.timers
            .iter()
            .find(|(t, _)| *t == timer)
            .map(|(_, at)| *at)
    }

    fn arm(&mut self, actions: impl IntoIterator<Item = Action>) -> Option<bool> {
        let mut set = None;
        for action in actions {
            match action {
                Action::ArmTimer { timer, deadline } => {
                    self.timers.retain(|(t, _)| *t != timer);
                    self.timers.push((timer, deadline.0));
                }
                Action::Announce(_) => set = Some(true),
                Action::Withdraw => set = Some(false),
            }
        }
        set
    }

    /// A journaled damping state from before a restart: it stays in force.
    pub fn restore_damping(&mut self, state: DampingState, now: i64) -> Effects {
        if self.machine.params().damping.is_none() {
            return Effects::default();
        }
        let actions = self.machine.restore_damping(state);
        self.arm(actions);
        Effects {
            records: vec![Event::DampingRestored(wire::DampingRestored {
                state: self.damping_record(true),
                penalty_now_milli: self.machine.penalty_at(Timestamp(now)),
            })],
            ..Effects::default()
        }
    }

    fn damping_record(&self, restored: bool) -> wire::DampingRecord {
        let state = self.machine.damping();
        wire::DampingRecord {
            service: self.params.name.clone(),
            penalty_milli: state.penalty_milli,
            at_ms: state.at.0,
            suppressed_since_ms: state.suppressed_since.map(|t| t.0),
            restored,
        }
    }

    /// The time to feed for a result of `check` whose poll was due at `due_ms` (see
    /// [`record::Recorder::result_time`]).
    pub fn result_time(&self, check: usize, due_ms: i64) -> i64 {
        self.recorder.result_time(check, due_ms)
    }

    /// Whether `observation` changes what `check` last showed (or is its first result).
    pub fn is_edge(&self, check: usize, observation: &Observation) -> bool {
        self.recorder.is_edge(check, observation)
    }

    /// A check result at `at` (from [`Core::result_time`]).
    pub fn observe(&mut self, check: usize, observation: Observation, at: i64) -> Effects {
        let input = Input::Observed {
            check,
            observation: observation.clone(),
            at: Timestamp(at),
        };
        let (step, damping) = self.step(input);
        if !self.recording {
            return self.finish(step, damping, Vec::new(), at);
        }
        let gates = self.machine.params().gates(check);
        let mut records = self
            .recorder
            .observed(check, &observation, at, &step, gates);
        if records.is_empty() && self.recorder.checkpoint_due(at) {
            records.extend(self.recorder.take_runs());
        }
        self.finish(step, damping, records, at)
    }

    /// The earliest timer is due by `now`: feed it at its deadline. `None` when none is due.
    pub fn fire_due(&mut self, now: i64) -> Option<Effects> {
        let (timer, deadline) = self.next_timer().filter(|(_, at)| *at <= now)?;
        Some(self.fire(timer, deadline))
    }

    /// Feed `timer` at `at` (its deadline) and forget it.
    pub fn fire(&mut self, timer: Timer, at: i64) -> Effects {
        self.timers.retain(|(t, _)| *t != timer);
        let (step, damping) = self.step(Input::TimerFired {
            timer,
            at: Timestamp(at),
        });
        let records = match timer {
            Timer::PendingTimeout(check) => self.recorder.timed_out(check, &step),
            _ if step.transition.is_some() || damping.is_some() => {
                self.recorder.take_runs().into_iter().collect()
            }
            _ => Vec::new(),
        };
        self.finish(step, damping, records, at)
    }

    /// A drain: an operator's (with its record), the shutdown's or a removal's.
    pub fn drain(
        &mut self,
        cause: DrainCause,
        operator: Option<wire::OperatorAction>,
        at: i64,
    ) -> Effects {
        let mut records: Vec<Event> = self.recorder.take_runs().into_iter().collect();
        records.extend(operator.map(Event::Operator));
        let (step, damping) = self.step(Input::Drain {
            cause,
            at: Timestamp(at),
        });
        self.finish(step, damping, records, at)
    }

    /// A drain as [`Core::drain`], after `grace` instead of the service's `drain_grace` when
    /// given (`--grace`; zero: at once, also ending a grace in progress).
    pub fn drain_after(
        &mut self,
        cause: DrainCause,
        operator: Option<wire::OperatorAction>,
        grace: Option<Duration>,
        at: i64,
    ) -> Effects {
        let Some(grace) = grace else {
            return self.drain(cause, operator, at);
        };
        let mut records: Vec<Event> = self.recorder.take_runs().into_iter().collect();
        records.extend(operator.map(Event::Operator));
        let (step, damping) = self.step(Input::DrainAfter {
            cause,
            grace,
            at: Timestamp(at),
        });
        self.finish(step, damping, records, at)
    }

    /// An operator undrain (with its record).
    pub fn undrain(&mut self, operator: Option<wire::OperatorAction>, at: i64) -> Effects {
        let mut records: Vec<Event> = self.recorder.take_runs().into_iter().collect();
        records.extend(operator.map(Event::Operator));
        let (step, damping) = self.step(Input::Undrain { at: Timestamp(at) });
        self.finish(step, damping, records, at)
    }

    /// A reload changed the service's definition: keep the state and counters, keep the
    /// latest result of each check with the same identity (kind, url, name); new checks start
    /// pending at `at`. Returns the records (the runs so far, then [`wire::Reconfigured`]).
    pub fn reconfigure(
        &mut self,
        params: wire::ServiceParams,
        damping: Option<fsm::Damping>,
        at: i64,
    ) -> Effects {
        let mut records: Vec<Event> = self.recorder.take_runs().into_iter().collect();
        let kept: Vec<Option<usize>> = params
            .checks
            .iter()
            .map(|c| {
                self.params
                    .checks
                    .iter()
                    .position(|o| o.kind == c.kind && o.identity == c.identity && o.name == c.name)
            })
            .collect();
        let actions = self.machine.reconfigure(
            params_of(&params, damping.clone(), self.fail_early, &self.graded),
            &kept,
            Timestamp(at),
        );
        self.timers
            .retain(|(timer, _)| !matches!(timer, Timer::PendingTimeout(_) | Timer::Evaluate));
        // A new `on_unhealthy` changes what an unhealthy service wants at once.
        let set = self.arm(actions);
        let reuse = self.machine.set_damping(damping.clone());
        if self.machine.params().damping.is_none() {
            self.timers
                .retain(|(timer, _)| *timer != Timer::DampingReuse);
        }
        self.arm(reuse);
        self.recorder.reconfigure(&recorder_checks(&params));
        records.push(Event::Reconfigured(Box::new(wire::Reconfigured {
            service: params.name.clone(),
            params: params.clone(),
            damping: damping.as_ref().map(wire::DampingParams::from),
        })));
        self.params = params;
        Effects {
            records,
            set,
            ..Effects::default()
        }
    }

    /// Replace the flap damping parameters only (format-1 journals journal them apart).
    pub fn set_damping(&mut self, damping: Option<fsm::Damping>) {
        let actions = self.machine.set_damping(damping);
        if self.machine.params().damping.is_none() {
            self.timers
                .retain(|(timer, _)| *timer != Timer::DampingReuse);
        }
        self.arm(actions);
    }

    /// Whether unchanged results are waiting to be journaled.
    pub fn has_runs(&self) -> bool {
        self.recorder.has_runs()
    }

    /// The unchanged results not yet journaled, as a record (a stop, a replay's request).
    pub fn take_runs(&mut self) -> Option<Event> {
        self.recorder.take_runs()
    }

    fn step(&mut self, input: Input) -> (fsm::Step, Option<(DampingState, DampingState)>) {
        let before = self.machine.damping();
        let step = self.machine.step(input);
        let after = self.machine.damping();
        (step, (before != after).then_some((before, after)))
    }

    fn finish(
        &mut self,
        step: fsm::Step,
        damping: Option<(DampingState, DampingState)>,
        mut records: Vec<Event>,
        _at: i64,
    ) -> Effects {
        let set = self.arm(step.actions);
        if !self.recording {
            return Effects {
                transition: step.transition,
                set,
                damping,
                ..Effects::default()
            };
        }
        let mut effects = Effects {
            damping,
            ..Effects::default()
        };
        if let Some(transition) = &step.transition {
            let announce = self.machine.wanted().is_some();
            records.push(Event::Transition(wire::Transition {
                service: self.params.name.clone(),
                from: (&transition.from).into(),
                to: (&transition.to).into(),
                cause: wire_cause(&transition.cause, &self.check_names()),
                healthy_streak: transition.counters.healthy_streak,
                unhealthy_streak: transition.counters.unhealthy_streak,
                change: if announce {
                    wire::Change::Announce
                } else {
                    wire::Change::Withdraw
                },
                prefixes: self.params.prefixes.clone(),
            }));
            // The level, when it is not what the state alone said before graded
            // announcements (so that a withdraw service journals as it did).
            let wanted = self.machine.wanted();
            let grace_until = self.machine.grace_until();
            let plain = transition.to.announces().then_some(fsm::Level::Normal);
            if wanted != plain || grace_until.is_some() {
                records.push(Event::Level(wire::LevelRecord {
                    service: self.params.name.clone(),
                    level: wanted.map(Into::into),
                    attributes: wanted
                        .map(|level| wire_attributes(&self.graded.attributes(level)))
                        .unwrap_or_default(),
                    grace_until_ms: grace_until.map(|t| t.0),
                }));
            }
            // Every transition re-asserts the desired state of all the service's prefixes,
            // also when the machine asks for no change (e.g. Starting -> Unhealthy), so that
            // leftovers of an earlier run are withdrawn by the first unhealthy verdict.
            effects.set = Some(set.unwrap_or(announce));
        } else {
            effects.set = set;
        }
        if damping.is_some() {
            records.push(Event::Damping(self.damping_record(false)));
        }
        effects.records = records;
        effects.transition = step.transition;
        effects
    }

    /// The check names, in order.
    pub fn check_names(&self) -> Vec<String> {
        self.params.checks.iter().map(|c| c.name.clone()).collect()
    }
}

/// The journal's form of an fsm cause, naming the checks by `check_names` (in check order);
/// a check without a result within its pending timeout is journaled as that failure, in words.
pub fn wire_cause(cause: &anycastd_fsm::Cause, check_names: &[String]) -> wire::Cause {
    use anycastd_fsm::{Cause, Counted};
    match cause {
        Cause::Verdict(verdict) => wire::Cause::Verdict {
            healthy: verdict.healthy,
            // The checks that decided it: shadow checks are not named.
            checks: verdict
                .checks
                .iter()
                .enumerate()
                .filter(|(_, counted)| !matches!(counted, Counted::Shadow(_)))
                .map(|(index, counted)| wire::CheckResult {
                    check: check_names
                        .get(index)
                        .cloned()
                        .unwrap_or_else(|| format!("#{index}")),
                    observation: match counted {
                        Counted::Seen(observation) => observation.into(),
                        Counted::NoResult { timeout } => {
                            wire::Observation::Fail(crate::audit::text::no_result(*timeout))
                        }
                        Counted::Shadow(observation) => observation.into(),
                    },
                })
                .collect(),
        },
        Cause::Drain => wire::Cause::Drain,
        Cause::Undrain => wire::Cause::Undrain,
        Cause::DrainExpired => wire::Cause::DrainExpired,
        Cause::Unsuppressed => wire::Cause::Unsuppressed,
        Cause::GraceEnded => wire::Cause::GraceEnded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> wire::ServiceParams {
        wire::ServiceParams {
            require: 0,
            name: "dns".into(),
            rise: 1,
            fall: 1,
            checks: vec![wire::CheckParams {
                shadow: false,
                kind: "cabourotte".into(),
                identity: "http://127.0.0.1:9013".into(),
                name: "dns".into(),
                interval_ms: 1_000,
                timeout_ms: 1_000,
                pending_timeout_ms: 10_000,
                max_age_ms: None,
            }],
            prefixes: vec![],
        }
    }

    #[test]
    fn a_pending_timer_that_fires_after_the_check_answered_journals_nothing() {
        let mut core = Core::new(params(), None, State::Starting, 0);
        let first = core.observe(0, Observation::Pass, 500);
        assert!(first.transition.is_some());
        // The start-up's pending timer is still armed; it fires at its deadline.
        let (timer, deadline) = core.next_timer().unwrap();
        assert_eq!((timer, deadline), (Timer::PendingTimeout(0), 10_000));
        let effects = core.fire(timer, deadline);
        assert_eq!(effects, Effects::default(), "no record, no change");
        // And the next result is part of a run, not a "changed" record.
        assert!(core.observe(0, Observation::Pass, 1_500).records.is_empty());
    }

    #[test]
    fn a_restored_damping_state_is_journaled_with_its_penalty_decayed_to_now() {
        let damping = fsm::Damping {
            penalty: 1000,
            suppress: 2000,
            reuse: 750,
            half_life: Duration::from_secs(60),
            max_suppress: Duration::from_secs(240),
        };
        let mut core = Core::new(params(), Some(damping), State::Starting, 120_000);
        let effects = core.restore_damping(
            DampingState {
                penalty_milli: 1_600_000,
                at: Timestamp(0),
                suppressed_since: None,
            },
            120_000,
        );
        match effects.records.as_slice() {
            [Event::DampingRestored(r)] => {
                assert_eq!(r.state.penalty_milli, 1_600_000, "kept for replay");
                assert_eq!(r.penalty_now_milli, 400_000, "two half-lives later");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_check_without_a_result_is_journaled_as_the_failure_earlier_versions_wrote() {
        let cause = fsm::Cause::Verdict(fsm::Verdict {
            healthy: false,
            checks: vec![
                fsm::Counted::Seen(Observation::Pass),
                fsm::Counted::NoResult {
                    timeout: Duration::from_secs(10),
                },
            ],
        });
        assert_eq!(
            wire_cause(&cause, &["a".into(), "b".into()]),
            wire::Cause::Verdict {
                healthy: false,
                checks: vec![
                    wire::CheckResult {
                        check: "a".into(),
                        observation: wire::Observation::Pass,
                    },
                    wire::CheckResult {
                        check: "b".into(),
                        observation: wire::Observation::Fail("no result within 10000 ms".into()),
                    },
                ],
            }
        );
    }

    fn deprefer() -> Graded {
        Graded {
            on_unhealthy: fsm::OnUnhealthy::Deprefer,
            deprefer: Some(crate::bgp::Attributes {
                as_path_prepend: 3,
                med: Some(1000),
                communities: vec![],
                large_communities: vec![],
            }),
            drain_grace: Duration::from_secs(30),
        }
    }

    fn levels(effects: &Effects) -> Vec<wire::LevelRecord> {
        effects
            .records
            .iter()
            .filter_map(|r| match r {
                Event::Level(l) => Some(l.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_deprefer_service_journals_its_level_after_the_transition_and_history_says_it() {
        let mut core = Core::new(params(), None, State::Starting, 0).with_graded(deprefer(), 0);
        assert!(
            levels(&core.observe(0, Observation::Pass, 500)).is_empty(),
            "normal: as before"
        );
        let effects = core.observe(0, Observation::Fail("SERVFAIL".into()), 1_500);
        assert_eq!(
            effects.set,
            Some(true),
            "announced (de-preferred), not withdrawn"
        );
        let [Event::Transition(t), Event::Level(level)] =
            &effects.records[effects.records.len() - 2..]
        else {
            panic!("{:?}", effects.records);
        };
        assert_eq!(t.change, wire::Change::Announce);
        assert_eq!(level.level, Some(wire::Level::Depreferred));
        assert_eq!(
            crate::audit::text::event_text(&Event::Level(level.clone())),
            "announced de-preferred (as-path +3, MED 1000)"
        );
        assert_eq!(
            core.wanted_attributes().map(|a| a.to_string()),
            Some("as-path +3, MED 1000".into())
        );

        // A drain: graceful shutdown until its journaled end, then withdrawn by the timer.
        let effects = core.drain(DrainCause::Shutdown, None, 2_000);
        let [level] = levels(&effects).try_into().unwrap();
        assert_eq!(
            (level.level, level.grace_until_ms),
            (Some(wire::Level::GracefulShutdown), Some(32_000))
        );
        assert_eq!(
            crate::audit::text::event_text(&Event::Level(level)),
            "announced graceful shutdown until 1970-01-01T00:00:32.000Z (as-path +3, MED 1000, community 65535:0)"
        );
        assert_eq!(core.deadline(Timer::GraceEnd), Some(32_000));
        let effects = core.fire(Timer::GraceEnd, 32_000);
        assert_eq!(effects.set, Some(false));
        let Some(Event::Transition(t)) = effects.records.last() else {
            panic!("{:?}", effects.records);
        };
        assert_eq!(
            (&t.cause, t.change),
            (&wire::Cause::GraceEnded, wire::Change::Withdraw)
        );
        assert_eq!(
            crate::audit::text::event_text(effects.records.last().unwrap()),
            "draining (shutdown) -> draining (shutdown): withdraw  (the stop's grace is over)"
        );
    }

    #[test]
    fn a_withdraw_service_without_a_grace_journals_no_level() {
        let mut core =
            Core::new(params(), None, State::Starting, 0).with_graded(Graded::default(), 0);
        let mut records = core.observe(0, Observation::Pass, 500).records;
        records.extend(
            core.observe(0, Observation::Fail("x".into()), 1_500)
                .records,
        );
        records.extend(core.drain(DrainCause::Shutdown, None, 2_000).records);
        assert!(records
            .iter()
            .all(|r| !matches!(r, Event::Level(_)) && r.format() <= 5));
    }
}
