//! The per-service driver: one task per service that feeds the service's state machine and
//! carries out its actions.
//!
//! Inputs come from the service's checks (polled by the [`crate::polling`] scheduler of their
//! Cabourotte server), from the machine's own timers and from the daemon (shutdown). For every step:
//! check-result edges are journaled; a transition is journaled and **flushed** before anything
//! is asked of FRR (write-ahead); then the one `match` over actions sets the desired state of
//! the service's prefixes in the FRR writers and arms timers. Logs use the original anycastd's
//! wording for the main events.

use crate::checks::CabourotteCheck;
use crate::config::{Prefix, Service};
use crate::frr::writer::{Decision, WriterHandle};
use crate::journal::{now_ms, JournalHandle};
use crate::status::ServiceView;
use anycastd_fsm::{
    Action, DrainCause, Input, Machine, Observation, Params, State, Timer, Timestamp,
};
use anycastd_journal::wire;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often a check that keeps failing is logged again.
pub const FAILING_REMINDER: Duration = Duration::from_secs(300);

/// What the daemon can ask of a driver.
#[derive(Debug)]
pub enum Command {
    /// Drain for shutdown; answer when the withdrawal is durable and handed to the writers.
    Shutdown(oneshot::Sender<()>),
    /// An operator drain; answered with what happened.
    Drain {
        /// Reason, expiry and uid.
        cause: Box<DrainCause>,
        /// The operator record to journal (before the transition).
        operator: Box<wire::OperatorAction>,
        /// The answer (a note for the operator).
        reply: oneshot::Sender<String>,
    },
    /// An operator undrain; answered with what happened.
    Undrain {
        /// The operator record to journal (before the transition).
        operator: Box<wire::OperatorAction>,
        /// The answer.
        reply: oneshot::Sender<String>,
    },
    /// A reload changed the service's parameters, checks or prefixes: keep the state and the
    /// counters, apply the difference. Answered when done.
    Reconfigure {
        /// The new definition.
        service: Box<Service>,
        /// Sequence number of the reload record.
        decision_seq: u64,
        /// Done.
        reply: oneshot::Sender<()>,
    },
    /// A reload removed the service: drain it (`Draining(Removed)`), withdraw, and end.
    Remove(oneshot::Sender<()>),
}

/// The FRR writers by vtysh binary, shared by the drivers (a reload may add one).
pub type Writers = std::sync::Arc<std::sync::Mutex<HashMap<PathBuf, WriterHandle>>>;

/// A running driver.
pub struct DriverHandle {
    /// The service name.
    pub name: String,
    /// Commands to it.
    pub commands: mpsc::Sender<Command>,
    /// Its task.
    pub task: JoinHandle<()>,
}

/// One check observation delivered to a driver.
#[derive(Debug)]
pub struct Polled {
    /// Check index.
    pub check: usize,
    /// How long the request took.
    pub took: Duration,
    /// What it saw.
    pub observation: Observation,
    /// When (ms since the epoch).
    pub at_ms: i64,
}

/// The fsm parameters of a configured service.
pub fn params_of(service: &Service) -> Params {
    Params {
        rise: service.rise,
        fall: service.fall,
        pending_timeouts: service.checks.iter().map(|c| c.pending_timeout).collect(),
        damping: service.damping.clone(),
    }
}

/// The journal's name for a prefix.
pub fn prefix_ref(prefix: &Prefix) -> wire::PrefixRef {
    wire::PrefixRef {
        vtysh: prefix.vtysh.display().to_string(),
        vrf: prefix.vrf.clone(),
        prefix: prefix.prefix.to_string(),
    }
}

/// Start the driver of `service` (and its check pollers).
pub fn spawn(
    service: Service,
    initial: State,
    writers: Writers,
    journal: JournalHandle,
    polling: crate::polling::Polling,
    views: Views,
    restored_damping: Option<anycastd_fsm::DampingState>,
) -> DriverHandle {
    let (commands_tx, commands_rx) = mpsc::channel(4);
    let name = service.name.clone();
    let task = tokio::spawn(async move {
        let mut driver = Driver::new(service, initial, writers, journal, views);
        if let Some(state) = restored_damping {
            driver.restore_damping(state);
        }
        driver.run(polling, commands_rx).await;
    });
    DriverHandle {
        name,
        commands: commands_tx,
        task,
    }
}

#[derive(Debug)]
struct Edge {
    last: Option<Observation>,
    /// Results since the last change (for the "still failing" reminder).
    polls: u64,
    last_logged: Option<Instant>,
    meters: crate::metrics::CheckMeters,
}

struct Driver {
    service: Service,
    machine: Machine,
    writers: Writers,
    journal: JournalHandle,
    timers: HashMap<Timer, Instant>,
    edges: Vec<Edge>,
    check_names: Vec<String>,
    views: Views,
    /// Observations since the service's last observation record (see `wire::CheckEdge`).
    unrecorded_polls: u64,
    /// The verdict formed by the last observation or timer (`None`: none formed); a change
    /// is journaled, so that every unjournaled observation formed the last journaled verdict.
    last_verdict: Option<Option<bool>>,
}

/// Every service's current state, shared with the control socket.
pub type Views = std::sync::Arc<std::sync::Mutex<BTreeMap<String, ServiceView>>>;

impl Driver {
    fn new(
        service: Service,
        initial: State,
        writers: Writers,
        journal: JournalHandle,
        views: Views,
    ) -> Driver {
        let (machine, actions) =
            Machine::with_state(params_of(&service), initial, Timestamp(now_ms()));
        let check_names = service.checks.iter().map(|c| c.name.clone()).collect();
        let edges = service
            .checks
            .iter()
            .map(|c| Edge {
                last: None,
                polls: 0,
                last_logged: None,
                meters: crate::metrics::CheckMeters::new(&service.name, &c.name),
            })
            .collect();
        let mut driver = Driver {
            service,
            machine,
            writers,
            journal,
            timers: HashMap::new(),
            edges,
            check_names,
            views,
            unrecorded_polls: 0,
            last_verdict: None,
        };
        for action in actions {
            driver.arm(action);
        }
        driver
    }

    fn arm(&mut self, action: Action) {
        if let Action::ArmTimer { timer, deadline } = action {
            let wait = Timestamp(deadline.0).since(Timestamp(now_ms()));
            self.timers.insert(timer, Instant::now() + wait);
        }
    }

    fn prefixes_text(&self) -> Vec<String> {
        self.service
            .prefixes
            .iter()
            .map(|p| match &p.vrf {
                Some(vrf) => format!("{} (vrf {vrf})", p.prefix),
                None => p.prefix.to_string(),
            })
            .collect()
    }

    /// One watch per check, all delivering to a fresh queue (a reload replaces both, so no
    /// result of an old check list can arrive under a new index).
    fn start_pollers(
        &self,
        polling: &crate::polling::Polling,
    ) -> (Vec<crate::polling::Watch>, crate::polling::ResultsReceiver) {
        let (polled_tx, polled_rx) = crate::polling::results();
        let watches = self
            .service
            .checks
            .iter()
            .enumerate()
            .map(|(index, check)| {
                let cabourotte =
                    CabourotteCheck::new(&check.url, &check.name, check.timeout, check.max_age);
                polling.watch(cabourotte, check.interval, index, polled_tx.clone())
            })
            .collect();
        (watches, polled_rx)
    }

    /// Apply a reloaded definition: keep state and counters, keep the results of checks with
    /// the same identity (type, url, name), withdraw removed prefixes, set added ones.
    fn reconfigure(&mut self, service: Service, decision_seq: u64) {
        let kept: Vec<Option<usize>> = service
            .checks
            .iter()
            .map(|c| {
                self.service
                    .checks
                    .iter()
                    .position(|o| o.name == c.name && o.url == c.url)
            })
            .collect();
        let actions = self
            .machine
            .reconfigure(params_of(&service), &kept, Timestamp(now_ms()));
        let old_edges = std::mem::take(&mut self.edges);
        self.edges = kept
            .iter()
            .zip(&service.checks)
            .map(|(k, check)| match k.and_then(|i| old_edges.get(i)) {
                // The first result after a reload is always journaled.
                Some(edge) => Edge {
                    last: None,
                    polls: edge.polls,
                    last_logged: edge.last_logged,
                    meters: edge.meters.clone(),
                },
                None => Edge {
                    last: None,
                    polls: 0,
                    last_logged: None,
                    meters: crate::metrics::CheckMeters::new(&service.name, &check.name),
                },
            })
            .collect();
        self.timers
            .retain(|timer, _| !matches!(timer, Timer::PendingTimeout(_) | Timer::Evaluate));
        for action in actions {
            self.arm(action);
        }
        let removed: Vec<Prefix> = self
            .service
            .prefixes
            .iter()
            .filter(|p| !service.prefixes.contains(p))
            .cloned()
            .collect();
        let added: Vec<Prefix> = service
            .prefixes
            .iter()
            .filter(|p| !self.service.prefixes.contains(p))
            .cloned()
            .collect();
        self.check_names = service.checks.iter().map(|c| c.name.clone()).collect();
        self.service = service;
        self.set_some_prefixes(&removed, false, decision_seq);
        if !added.is_empty() && self.machine.state().announces() {
            self.set_some_prefixes(&added, true, decision_seq);
        }
        tracing::info!(
            service = %self.service.name,
            prefixes = ?self.prefixes_text(),
            checks = ?self.check_names,
            withdrawn = removed.len(),
            added = added.len(),
            "Service \"{}\" reconfigured; its state ({}) and counters are kept.",
            self.service.name,
            self.machine.state().name()
        );
    }

    async fn run(
        mut self,
        polling: crate::polling::Polling,
        mut commands: mpsc::Receiver<Command>,
    ) {
        tracing::info!(
            service = %self.service.name,
            prefixes = ?self.prefixes_text(),
            checks = ?self.check_names,
            "Starting service \"{}\".",
            self.service.name
        );
        if self.service.checks.is_empty() {
            tracing::warn!(
                service = %self.service.name,
                "service \"{}\" has no checks: it is always considered healthy",
                self.service.name
            );
        }
        crate::metrics::service_state(&self.service.name, self.machine.state().name(), now_ms());
        let (mut pollers, mut polled_rx) = self.start_pollers(&polling);
        loop {
            let next_timer = self
                .timers
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(t, at)| (*t, *at));
            tokio::select! {
                polled = polled_rx.recv() => {
                    let is_edge = self.edge(&polled);
                    let input = Input::Observed {
                        check: polled.check,
                        observation: polled.observation,
                        at: Timestamp(polled.at_ms),
                    };
                    let _ = self.step_recorded(input, is_edge).await;
                }
                () = wait_timer(next_timer.map(|(_, at)| at)) => {
                    if let Some((timer, _)) = next_timer {
                        self.timers.remove(&timer);
                        let _ = self.step(Input::TimerFired { timer, at: Timestamp(now_ms()) }).await;
                    }
                }
                command = commands.recv() => {
                    match command {
                        Some(Command::Shutdown(done)) => {
                            pollers.clear();
                            self.record_trailing_polls();
                            let changed = self.step(Input::Drain { cause: DrainCause::Shutdown, at: Timestamp(now_ms()) }).await;
                            if !changed {
                                // Already drained by an operator (kept across the restart):
                                // make sure every prefix is withdrawn all the same.
                                self.set_prefixes(false, 0);
                            }
                            let _ = done.send(());
                            return;
                        }
                        Some(Command::Drain { cause, operator, reply }) => {
                            self.journal_operator(*operator);
                            crate::metrics::count("anycastd_drains_total", &[("service", self.service.name.as_str())], 1.0);
                            let changed = self.step(Input::Drain { cause: *cause, at: Timestamp(now_ms()) }).await;
                            let note = if changed { "drained: prefixes withdrawn" } else { "drain updated (it was drained already)" };
                            let _ = reply.send(note.to_owned());
                        }
                        Some(Command::Reconfigure { service, decision_seq, reply }) => {
                            pollers.clear();
                            self.record_trailing_polls();
                            self.reconfigure(*service, decision_seq);
                            (pollers, polled_rx) = self.start_pollers(&polling);
                            let _ = reply.send(());
                        }
                        Some(Command::Remove(reply)) => {
                            pollers.clear();
                            self.record_trailing_polls();
                            let changed = self.step(Input::Drain { cause: DrainCause::Removed, at: Timestamp(now_ms()) }).await;
                            if !changed {
                                self.set_prefixes(false, 0);
                            }
                            self.views.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.service.name);
                            crate::metrics::forget_service(&self.service.name);
                            tracing::info!(service = %self.service.name, "Service \"{}\" removed by a reload.", self.service.name);
                            let _ = reply.send(());
                            return;
                        }
                        Some(Command::Undrain { operator, reply }) => {
                            self.journal_operator(*operator);
                            let note = if matches!(self.machine.state(), State::Draining(DrainCause::Operator { .. })) {
                                self.step(Input::Undrain { at: Timestamp(now_ms()) }).await;
                                format!("undrained: now {}", self.machine.state().name())
                            } else {
                                format!("not drained (it is {}): nothing to do", self.machine.state().name())
                            };
                            let _ = reply.send(note);
                        }
                        None => {
                            pollers.clear();
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Count, log and meter a check result; returns whether it is an edge (a change, or the
    /// first result since a start or reload), which is always journaled.
    fn edge(&mut self, polled: &Polled) -> bool {
        let Some(edge) = self.edges.get_mut(polled.check) else {
            return false;
        };
        let name = &self.check_names[polled.check];
        let result = match polled.observation {
            Observation::Pass => 0,
            Observation::Fail(_) => 1,
            Observation::Pending => 2,
        };
        edge.meters.record(result, polled.took);
        let changed = edge.last.as_ref() != Some(&polled.observation);
        if !changed {
            edge.polls += 1;
            if let Observation::Fail(reason) = &polled.observation {
                if edge
                    .last_logged
                    .is_none_or(|at| at.elapsed() >= FAILING_REMINDER)
                {
                    edge.last_logged = Some(Instant::now());
                    tracing::warn!(
                        service = %self.service.name,
                        check = %name,
                        reason = %reason,
                        polls = edge.polls,
                        "Cabourotte health check \"{name}\" is still failing."
                    );
                }
            }
            return false;
        }
        edge.polls = 1;
        edge.last = Some(polled.observation.clone());
        match &polled.observation {
            Observation::Fail(reason) => {
                edge.last_logged = Some(Instant::now());
                tracing::warn!(
                    service = %self.service.name,
                    check = %name,
                    reason = %reason,
                    "Cabourotte health check \"{name}\" failed."
                );
            }
            Observation::Pass => tracing::info!(
                service = %self.service.name,
                check = %name,
                "Cabourotte health check \"{name}\" passed."
            ),
            Observation::Pending => tracing::info!(
                service = %self.service.name,
                check = %name,
                "Cabourotte health check \"{name}\" awaiting check result."
            ),
        }
        true
    }

    /// Journal an operator action about this service, after the results counted so far (the
    /// verdicts they formed precede it, for replay).
    fn journal_operator(&mut self, operator: wire::OperatorAction) {
        let mut events = self.take_polls_record().into_iter().collect::<Vec<_>>();
        events.push(wire::Event::Operator(operator));
        self.journal.append(now_ms(), events);
    }

    /// The results counted since the last observation record, as a record (and reset).
    fn take_polls_record(&mut self) -> Option<wire::Event> {
        (self.unrecorded_polls > 0).then(|| {
            let polls = std::mem::take(&mut self.unrecorded_polls);
            wire::Event::Polls(wire::Polls {
                service: self.service.name.clone(),
                polls,
            })
        })
    }

    /// Take the damping state journaled before a restart (penalty and suppression survive).
    fn restore_damping(&mut self, state: anycastd_fsm::DampingState) {
        if self.service.damping.is_none() {
            return;
        }
        let actions = self.machine.restore_damping(state);
        for action in actions {
            self.arm(action);
        }
        self.journal
            .append(now_ms(), vec![self.damping_record(true)]);
        if self.machine.suppressed() {
            tracing::warn!(
                service = %self.service.name,
                penalty = state.penalty_milli / 1000,
                "Service \"{}\" stays suppressed by flap damping after the restart.",
                self.service.name
            );
        }
    }

    fn damping_record(&self, restored: bool) -> wire::Event {
        let state = self.machine.damping();
        wire::Event::Damping(wire::DampingRecord {
            service: self.service.name.clone(),
            penalty_milli: state.penalty_milli,
            at_ms: state.at.0,
            suppressed_since_ms: state.suppressed_since.map(|t| t.0),
            restored,
        })
    }

    /// Journal the observations counted since the last observation record (before a
    /// shutdown or reload ends the run), so that replay sees every verdict.
    fn record_trailing_polls(&mut self) {
        if let Some(record) = self.take_polls_record() {
            self.journal.append(now_ms(), vec![record]);
        }
    }

    /// Feed one input and carry out the result; returns whether the state changed.
    async fn step(&mut self, input: Input) -> bool {
        self.step_recorded(input, false).await
    }

    /// As [`Driver::step`], journaling the input when replay needs it: an observation that is
    /// an edge or causes a transition, and a pending timeout that formed a verdict. Every other
    /// observation is only counted (`polls_since_last_edge` of the next record).
    ///
    /// Boxed: a step's future is the largest the driver awaits, and inline it would size every
    /// idle driver's task (one per service) for it.
    fn step_recorded(
        &mut self,
        input: Input,
        is_edge: bool,
    ) -> std::pin::Pin<Box<impl std::future::Future<Output = bool> + '_>> {
        Box::pin(self.carry_out(input, is_edge))
    }

    /// The body of [`Driver::step_recorded`].
    async fn carry_out(&mut self, input: Input, is_edge: bool) -> bool {
        let at_ms = input.at().0;
        let observed = match &input {
            Input::Observed {
                check, observation, ..
            } => Some((*check, observation.clone())),
            _ => None,
        };
        let timed_out = match &input {
            Input::TimerFired {
                timer: Timer::PendingTimeout(check),
                ..
            } => Some(*check),
            _ => None,
        };
        let damping_before = self.machine.damping();
        let step = self.machine.step(input);
        let damping_changed = self.machine.damping() != damping_before;
        let verdict_changed = (observed.is_some() || timed_out.is_some())
            && self.last_verdict.is_some_and(|last| last != step.verdict);
        if observed.is_some() || timed_out.is_some() {
            self.last_verdict = Some(step.verdict);
        }
        let mut inputs: Vec<wire::Event> = Vec::new();
        if let Some((check, observation)) = &observed {
            let check = *check;
            if is_edge || step.transition.is_some() || verdict_changed {
                inputs.push(wire::Event::CheckEdge(wire::CheckEdge {
                    service: self.service.name.clone(),
                    check: self.check_names.get(check).cloned().unwrap_or_default(),
                    observation: observation.into(),
                    polls_since_last_edge: self.unrecorded_polls,
                }));
                self.unrecorded_polls = 0;
            } else {
                self.unrecorded_polls += 1;
            }
        }
        if let Some(check) = timed_out {
            if step.verdict.is_some() || verdict_changed {
                inputs.push(wire::Event::PendingTimeout(wire::PendingTimeout {
                    service: self.service.name.clone(),
                    check: self.check_names.get(check).cloned().unwrap_or_default(),
                    polls_since_last_edge: self.unrecorded_polls,
                }));
                self.unrecorded_polls = 0;
            }
        }
        if damping_changed {
            self.log_damping(damping_before);
        }
        // Any other input (a timer, a drain) that changes something is journaled after the
        // results counted before it: their verdicts (counters) precede it.
        if observed.is_none()
            && timed_out.is_none()
            && (step.transition.is_some() || damping_changed)
        {
            if let Some(record) = self.take_polls_record() {
                inputs.insert(0, record);
            }
        }
        if step.transition.is_none() {
            if damping_changed {
                inputs.push(self.damping_record(false));
            }
            if !inputs.is_empty() {
                self.journal.append(at_ms, inputs);
                inputs = Vec::new();
            }
        }
        let mut decision_seq = 0;
        if let Some(transition) = &step.transition {
            let announce = transition.to.announces();
            let record = wire::Transition {
                service: self.service.name.clone(),
                from: (&transition.from).into(),
                to: (&transition.to).into(),
                cause: wire::Cause::from_fsm(&transition.cause, &self.check_names),
                healthy_streak: transition.counters.healthy_streak,
                unhealthy_streak: transition.counters.unhealthy_streak,
                change: if announce {
                    wire::Change::Announce
                } else {
                    wire::Change::Withdraw
                },
                prefixes: self.service.prefixes.iter().map(prefix_ref).collect(),
            };
            // Write-ahead: the decision (and the input behind it) is on disk before FRR hears
            // of it.
            inputs.push(wire::Event::Transition(record));
            if damping_changed {
                inputs.push(self.damping_record(false));
            }
            match self.journal.append_durable(at_ms, inputs).await {
                Ok(seq) => decision_seq = seq,
                Err(e) => tracing::error!(
                    service = %self.service.name,
                    error = %e,
                    "cannot journal the transition; acting on it anyway (health gating goes on)"
                ),
            }
            self.log_transition(transition);
            let view = ServiceView {
                name: self.service.name.clone(),
                state: (&transition.to).into(),
                suppressed: self.machine.suppressed(),
                since_ms: at_ms,
                cause: crate::history::cause_text(&wire::Cause::from_fsm(
                    &transition.cause,
                    &self.check_names,
                )),
            };
            crate::metrics::service_state(&self.service.name, transition.to.name(), at_ms);
            crate::metrics::count(
                "anycastd_service_transitions_total",
                &[
                    ("service", self.service.name.as_str()),
                    ("from", transition.from.name()),
                    ("to", transition.to.name()),
                ],
                1.0,
            );
            self.views
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(self.service.name.clone(), view);
            // Every transition re-asserts the desired state of all the service's prefixes,
            // also when the machine asks for no change (e.g. Starting -> Unhealthy), so that
            // leftovers of an earlier run are withdrawn by the first unhealthy verdict.
            if !step
                .actions
                .iter()
                .any(|a| matches!(a, Action::Announce | Action::Withdraw))
            {
                self.set_prefixes(announce, decision_seq);
            }
        }
        let changed = step.transition.is_some();
        for action in step.actions {
            match action {
                Action::Announce => self.set_prefixes(true, decision_seq),
                Action::Withdraw => self.set_prefixes(false, decision_seq),
                timer @ Action::ArmTimer { .. } => self.arm(timer),
            }
        }
        changed
    }

    fn log_damping(&self, before: anycastd_fsm::DampingState) {
        let after = self.machine.damping();
        let name = &self.service.name;
        match (before.suppressed_since, after.suppressed_since) {
            (None, Some(_)) => {
                let until = self.service.damping.as_ref().map(|d| {
                    d.reuse_time(after.penalty_milli, after.at)
                        .min(after.at.after(d.max_suppress))
                });
                tracing::warn!(
                    service = %name,
                    penalty = after.penalty_milli / 1000,
                    until = %until.map(|t| crate::history::format_time(t.0)).unwrap_or_default(),
                    "Service \"{name}\" is flapping: suppressed by flap damping, its prefixes stay withdrawn until the penalty decays."
                );
            }
            (Some(_), None) => tracing::info!(
                service = %name,
                penalty = after.penalty_milli / 1000,
                "Service \"{name}\" is no longer suppressed by flap damping."
            ),
            _ => {
                tracing::debug!(service = %name, penalty = after.penalty_milli / 1000, "flap damping penalty")
            }
        }
        let mut views = self.views.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(view) = views.get_mut(name) {
            view.suppressed = after.suppressed_since.is_some();
        }
    }

    fn log_transition(&self, transition: &anycastd_fsm::Transition) {
        let name = &self.service.name;
        let prefixes = self.prefixes_text();
        match &transition.to {
            anycastd_fsm::State::Healthy => tracing::info!(
                service = %name,
                prefixes = ?prefixes,
                checks = ?self.check_names,
                from = transition.from.name(),
                "Service \"{name}\" is now considered healthy, announcing related prefixes."
            ),
            anycastd_fsm::State::Unhealthy => {
                let (failing, reason) = match &transition.cause {
                    anycastd_fsm::Cause::Verdict(v) => v
                        .checks
                        .iter()
                        .zip(&self.check_names)
                        .find_map(|(o, n)| match o {
                            Observation::Fail(r) => Some((n.clone(), r.clone())),
                            _ => None,
                        })
                        .unwrap_or_default(),
                    _ => Default::default(),
                };
                tracing::info!(
                    service = %name,
                    prefixes = ?prefixes,
                    checks = ?self.check_names,
                    failing_check = %failing,
                    reason = %reason,
                    from = transition.from.name(),
                    "Service \"{name}\" is now considered unhealthy, denouncing related prefixes."
                )
            }
            anycastd_fsm::State::Draining(cause) => tracing::info!(
                service = %name,
                prefixes = ?prefixes,
                cause = ?cause,
                from = transition.from.name(),
                "Service \"{name}\" is draining, denouncing related prefixes."
            ),
            anycastd_fsm::State::Starting => {}
        }
    }

    fn set_prefixes(&self, announce: bool, decision_seq: u64) {
        self.set_some_prefixes(&self.service.prefixes, announce, decision_seq);
    }

    fn set_some_prefixes(&self, prefixes: &[Prefix], announce: bool, decision_seq: u64) {
        let mut by_vtysh: BTreeMap<&PathBuf, Vec<_>> = BTreeMap::new();
        for prefix in prefixes {
            by_vtysh.entry(&prefix.vtysh).or_default().push((
                (prefix.vrf.clone(), prefix.prefix),
                Decision {
                    service: self.service.name.clone(),
                    announce,
                    decision_seq,
                },
            ));
        }
        let writers = self.writers.lock().unwrap_or_else(|p| p.into_inner());
        for (vtysh, items) in by_vtysh {
            match writers.get(vtysh) {
                Some(writer) => {
                    writer.set(items);
                }
                None => tracing::error!(
                    service = %self.service.name,
                    vtysh = %vtysh.display(),
                    "no FRR writer for this vtysh (a bug)"
                ),
            }
        }
    }
}

async fn wait_timer(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
