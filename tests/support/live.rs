//! A live service without IO, for replay's oracle tests: the daemon's own per-service
//! [`Core`] (what the driver runs) driven by a script of inputs on a fake clock, journaling
//! what the daemon journals around it (start, reconciliation, reloads, stops). Two lives on
//! the same script with different settings are two live runs: replaying the first with the
//! second's settings must give the second's transitions, at the same times.

use anycastd::service::Core;
use anycastd_fsm::{self as fsm, DrainCause, Observation, State};
use anycastd_journal::wire::{self, Event};
use anycastd_journal::{Record, FORMAT_VERSION};

/// What happens at a moment of a script.
#[derive(Debug, Clone)]
pub enum Input {
    /// A result of check `name` whose poll was due at the moment (+ `jitter` ms, as the
    /// daemon reads the grid point's wall-clock time).
    Result {
        /// The check.
        check: String,
        /// What it saw.
        observation: Observation,
        /// Read-out error of the due time (ms).
        jitter: i64,
    },
    /// An operator drain.
    Drain {
        /// Its expiry (ms), if any.
        expires_at: Option<i64>,
    },
    /// An operator undrain.
    Undrain,
    /// A reload with new settings.
    Reload {
        /// The new parameters.
        params: wire::ServiceParams,
        /// The new damping.
        damping: Option<fsm::Damping>,
    },
    /// SIGTERM.
    Stop,
    /// `stop --keep-announced`.
    Handover,
    /// SIGKILL (taken at the first moment nothing is left unjournaled).
    Crash,
    /// A start after a stop or crash.
    Start,
}

/// A live service.
pub struct Live {
    /// Settings that replace the scripted ones (a what-if: rise, fall, damping).
    pub rise: Option<u32>,
    /// As `rise`.
    pub fall: Option<u32>,
    /// As `rise` (`Some(None)`: damping off).
    pub damping: Option<Option<fsm::Damping>>,
    params: wire::ServiceParams,
    script_damping: Option<fsm::Damping>,
    core: Option<Core>,
    /// The journal so far.
    pub records: Vec<Record>,
    /// Every fsm transition, with its time.
    pub transitions: Vec<fsm::Transition>,
    /// How the previous run ended: its state, and whether the prefixes stayed in FRR.
    ended: Option<(State, bool)>,
    carried_damping: Option<fsm::DampingState>,
    crash_pending: bool,
    /// Crash moments (ms): whatever follows them until the next start is a gap.
    pub crashes: Vec<i64>,
    /// The script positions where this life crashed.
    pub crash_positions: Vec<usize>,
    /// Crash exactly at these script positions instead (a second life that must see the same
    /// inputs as the first).
    pub forced_crashes: Option<Vec<usize>>,
    /// A daemon from before the verdict rule was journaled (format 4 and older): every
    /// verdict waits for the pending checks, and no rule record is written.
    pub old_rule: bool,
    /// Graded announcements (`on_unhealthy`, `deprefer`, `drain_grace`; default: withdraw,
    /// no grace). A stop waits out the grace as the daemon does.
    pub graded: anycastd::service::Graded,
    position: usize,
}

impl Live {
    /// A service started at `at` with these settings.
    pub fn new(params: wire::ServiceParams, damping: Option<fsm::Damping>) -> Live {
        Live {
            rise: None,
            fall: None,
            damping: None,
            params,
            script_damping: damping,
            core: None,
            records: Vec::new(),
            transitions: Vec::new(),
            ended: None,
            carried_damping: None,
            crash_pending: false,
            crashes: Vec::new(),
            crash_positions: Vec::new(),
            forced_crashes: None,
            old_rule: false,
            graded: anycastd::service::Graded::default(),
            position: 0,
        }
    }

    /// The same, under other settings.
    pub fn what_if(
        params: wire::ServiceParams,
        damping: Option<fsm::Damping>,
        rise: Option<u32>,
        fall: Option<u32>,
        what_if_damping: Option<Option<fsm::Damping>>,
    ) -> Live {
        let mut live = Live::new(params, damping);
        live.rise = rise;
        live.fall = fall;
        live.damping = what_if_damping;
        live
    }

    fn effective(&self) -> (wire::ServiceParams, Option<fsm::Damping>) {
        let mut params = self.params.clone();
        params.rise = self.rise.unwrap_or(params.rise);
        params.fall = self.fall.unwrap_or(params.fall);
        let damping = self
            .damping
            .clone()
            .unwrap_or_else(|| self.script_damping.clone());
        (params, damping)
    }

    /// The state now.
    pub fn state(&self) -> Option<&State> {
        self.core.as_ref().map(|c| c.machine().state())
    }

    /// The core (for assertions).
    pub fn core(&self) -> Option<&Core> {
        self.core.as_ref()
    }

    fn push(&mut self, at: i64, event: Event) {
        let seq = self.records.len() as u64 + 1;
        self.records.push(Record {
            version: FORMAT_VERSION,
            seq,
            at_ms: at,
            event,
        });
    }

    fn take(&mut self, effects: anycastd::service::Effects, at: i64) {
        for event in effects.records {
            self.push(at, event);
        }
        if let Some(t) = effects.transition {
            self.transitions.push(t);
        }
    }

    /// Fire the timers due by `at` (before an input at `at`, as the driver does: a timer's
    /// deadline is never after the results it precedes).
    pub fn fire_due(&mut self, at: i64) {
        for _ in 0..10_000 {
            let Some(core) = self.core.as_mut() else {
                return;
            };
            let Some((timer, deadline)) = core.next_timer().filter(|(_, d)| *d <= at) else {
                return;
            };
            let effects = core.fire(timer, deadline);
            self.take(effects, deadline);
        }
    }

    fn start_records(&mut self, at: i64) {
        // What this life's daemon would journal: its own settings.
        let (params, damping) = self.effective();
        self.push(
            at,
            Event::DaemonStarted(wire::DaemonStarted {
                version: "test".into(),
                pid: 1,
                config_hash: "h".into(),
                boot_id: "b".into(),
                services: vec![params],
            }),
        );
        if !self.old_rule {
            self.push(at, Event::VerdictRule(anycastd::service::VERDICT_RULE));
        }
        if let Some(d) = &damping {
            self.push(
                at,
                Event::ServiceDamping(wire::ServiceDamping {
                    service: self.params.name.clone(),
                    params: Some(d.into()),
                }),
            );
        }
    }

    /// Feed one scripted input at `at`.
    pub fn input(&mut self, at: i64, input: &Input) {
        if self.core.is_some() {
            self.fire_due(at);
        }
        match input {
            Input::Start => self.start(at),
            _ if self.core.is_none() => {}
            Input::Result {
                check,
                observation,
                jitter,
            } => {
                let Some(core) = self.core.as_mut() else {
                    return;
                };
                let Some(index) = core.params().checks.iter().position(|c| &c.name == check) else {
                    return;
                };
                let time = core.result_time(index, at + jitter);
                let effects = core.observe(index, observation.clone(), time);
                self.take(effects, time);
            }
            Input::Drain { expires_at } => {
                let cause = DrainCause::Operator {
                    reason: "maintenance".into(),
                    expires_at: expires_at.map(fsm::Timestamp),
                    uid: 0,
                };
                let operator = wire::OperatorAction {
                    kind: wire::OperatorKind::Drain {
                        service: self.params.name.clone(),
                        reason: "maintenance".into(),
                        expires_at_ms: *expires_at,
                    },
                    uid: 0,
                    pid: 9,
                };
                if let Some(core) = self.core.as_mut() {
                    let effects = core.drain(cause, Some(operator), at);
                    self.take(effects, at);
                }
            }
            Input::Undrain => {
                let operator = wire::OperatorAction {
                    kind: wire::OperatorKind::Undrain {
                        service: self.params.name.clone(),
                    },
                    uid: 0,
                    pid: 9,
                };
                if let Some(core) = self.core.as_mut() {
                    let effects = core.undrain(Some(operator), at);
                    self.take(effects, at);
                }
            }
            Input::Reload { params, damping } => {
                self.params = params.clone();
                self.script_damping = damping.clone();
                let (params, damping) = self.effective();
                self.push(
                    at,
                    Event::Reloaded(wire::Reloaded {
                        config_hash: "h2".into(),
                        added: vec![],
                        removed: vec![],
                        changed: vec![params.name.clone()],
                        services: vec![params.clone()],
                    }),
                );
                if let Some(core) = self.core.as_mut() {
                    let effects = core.reconfigure(params, damping, at);
                    self.take(effects, at);
                }
            }
            Input::Stop => {
                let mut stopped = at;
                if let Some(core) = self.core.as_mut() {
                    let effects = core.drain(DrainCause::Shutdown, None, at);
                    self.take(effects, at);
                }
                // The daemon stops once the grace is over.
                if let Some(until) = self.core.as_ref().and_then(|c| c.machine().grace_until()) {
                    self.fire_due(until.0);
                    stopped = until.0;
                }
                self.stop(stopped, false, "SIGTERM", wire::StopOutcome::WithdrawnAll);
            }
            Input::Handover => {
                if let Some(record) = self.core.as_mut().and_then(|c| c.take_runs()) {
                    self.push(at, record);
                }
                self.stop(
                    at,
                    true,
                    "stop --keep-announced",
                    wire::StopOutcome::HandedOver,
                );
            }
            Input::Crash => self.crash_pending = true,
        }
        // A crash is taken once nothing is left unjournaled, so that no result is lost and
        // the two runs of an oracle see the same inputs up to it.
        let crash = match &self.forced_crashes {
            Some(positions) => positions.contains(&self.position),
            None => self.crash_pending && self.core.as_ref().is_some_and(|c| !c.has_runs()),
        };
        if crash && self.core.is_some() {
            self.crash_positions.push(self.position);
            self.crash_pending = false;
            if let Some(core) = self.core.take() {
                self.ended = Some((core.machine().state().clone(), true));
                self.carried_damping = Some(core.machine().damping());
            }
            self.crashes
                .push(self.records.last().map(|r| r.at_ms).unwrap_or(at));
        }
    }

    fn stop(&mut self, at: i64, left: bool, reason: &str, outcome: wire::StopOutcome) {
        if let Some(core) = self.core.take() {
            self.ended = Some((core.machine().state().clone(), left));
            self.carried_damping = Some(core.machine().damping());
        }
        self.crash_pending = false;
        self.push(
            at,
            Event::DaemonStopped(wire::DaemonStopped {
                reason: reason.into(),
                outcome,
            }),
        );
    }

    /// A start: the daemon's records, the reconciliation's decision from the journal's last
    /// state (as `reconcile::plan` decides, FRR holding what the previous run left), and the
    /// service's machine from the reconciliation's time.
    fn start(&mut self, at: i64) {
        if self.core.is_some() {
            return;
        }
        self.crash_pending = false;
        self.start_records(at);
        let reconciled_at = at + 5;
        let (state, cause) = match &self.ended {
            Some((drained @ State::Draining(DrainCause::Operator { .. }), _)) => {
                (drained.clone(), None)
            }
            Some((State::Healthy, true)) => (State::Healthy, Some(wire::Cause::Restored)),
            Some((State::Starting, _)) | None => (State::Starting, None),
            Some(_) => (State::Starting, Some(wire::Cause::Restart)),
        };
        self.push(
            reconciled_at,
            Event::Reconciled(wire::Reconciled {
                rebooted: false,
                ..wire::Reconciled::default()
            }),
        );
        if let Some(cause) = cause {
            let from = self
                .ended
                .as_ref()
                .map(|(s, _)| wire::State::from(s))
                .unwrap_or(wire::State::Starting);
            self.push(
                reconciled_at,
                Event::Transition(wire::Transition {
                    service: self.params.name.clone(),
                    from,
                    to: (&state).into(),
                    cause,
                    healthy_streak: 0,
                    unhealthy_streak: 0,
                    change: if state.announces() {
                        wire::Change::Announce
                    } else {
                        wire::Change::Withdraw
                    },
                    prefixes: self.params.prefixes.clone(),
                }),
            );
        }
        let (params, damping) = self.effective();
        let mut core = Core::with_rule(
            params,
            damping,
            state,
            reconciled_at,
            !self.old_rule && anycastd::service::VERDICT_RULE.fail_early,
        );
        core = core.with_graded(self.graded.clone(), reconciled_at);
        let restored = self
            .carried_damping
            .map(|d| core.restore_damping(d, reconciled_at));
        self.core = Some(core);
        if let Some(effects) = restored {
            self.take(effects, reconciled_at);
        }
        self.fire_due(reconciled_at);
    }

    /// Run a whole script (a list of (time, input)); the first input should be a start.
    pub fn run(&mut self, script: &[(i64, Input)]) {
        for (position, (at, input)) in script.iter().enumerate() {
            self.position = position;
            self.input(*at, input);
        }
    }
}
