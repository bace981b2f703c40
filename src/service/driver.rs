//! The per-service driver: one task per service that feeds the service's [`Core`] (state
//! machine, timers, recorder) and carries out what it returns.
//!
//! Inputs come from the service's checks (polled by the [`crate::checks::scheduler`] task of
//! their target, whatever their kind), from the core's own timers and from the daemon (drains,
//! reloads, shutdown). For every input: the records the core returns are journaled — a
//! transition's durably (flushed) before anything is asked of a routing daemon (write-ahead,
//! docs/ARCHITECTURE.md, "The journal") — then the service's prefixes are set in the writers
//! of their routing backends. Logs use the original anycastd's wording for the main
//! events; check results are logged on their edges, with a reminder while a check keeps
//! failing.

use crate::checks::Polled;
use crate::config::{Prefix, Service};
use crate::journal_handle::{now_ms, JournalHandle};
use crate::observe::status::ServiceView;
use crate::routing::writer::{Decision, PrefixKey, WriterHandle};
use crate::routing::BackendId;
use crate::service::{Core, Effects, Graded};
use anycastd_fsm::{DampingState, DrainCause, Observation, State};
use anycastd_journal::wire;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often a check that keeps failing is logged again.
pub const FAILING_REMINDER: Duration = Duration::from_secs(300);

/// Prefixes handed to one routing writer, and the generation that carries them: once the
/// writer has verified that generation without these prefixes pending, its daemon is as decided.
#[derive(Clone)]
pub struct Handed {
    /// The writer.
    pub writer: WriterHandle,
    /// Its desired-set generation after the hand-over.
    pub generation: u64,
    /// The prefixes.
    pub keys: Vec<PrefixKey>,
}

/// The answer to an operator's drain or undrain.
pub struct OperatorReply {
    /// What happened, for the operator.
    pub note: String,
    /// The state after it.
    pub state: State,
    /// Whether the service's prefixes are wanted announced after it (a de-preferred
    /// unhealthy service, a drain in its grace), whatever the state.
    pub announced: bool,
    /// What the daemons must confirm (empty when nothing changed in them).
    pub handed: Vec<Handed>,
}

/// What the daemon can ask of a driver.
pub enum Command {
    /// Drain for shutdown; answer when the withdrawal is durable and handed to the writers:
    /// after the grace (`grace`, or the service's `drain_grace`) of an announced service,
    /// which is announced with GRACEFUL_SHUTDOWN meanwhile.
    Shutdown {
        /// The grace instead of the service's `drain_grace` (`stop --grace`).
        grace: Option<Duration>,
        /// The answer.
        done: oneshot::Sender<()>,
    },
    /// End a shutdown's grace now (a second signal): withdraw, answer the shutdown, then this.
    EndGrace(oneshot::Sender<()>),
    /// Journal the unchanged results so far (a stop that hands over, a replay); answered
    /// once they are written.
    FlushRuns(oneshot::Sender<()>),
    /// An operator drain; answered with what happened.
    Drain {
        /// Reason, expiry and uid.
        cause: Box<DrainCause>,
        /// The operator record to journal (before the transition).
        operator: Box<wire::OperatorAction>,
        /// The grace instead of the service's `drain_grace` (`anycastd drain --grace`).
        grace: Option<Duration>,
        /// The answer.
        reply: oneshot::Sender<OperatorReply>,
    },
    /// An operator undrain; answered with what happened.
    Undrain {
        /// The operator record to journal (before the transition).
        operator: Box<wire::OperatorAction>,
        /// The answer.
        reply: oneshot::Sender<OperatorReply>,
    },
    /// A reload changed the service's parameters, checks or prefixes: keep the state and the
    /// counters, apply the difference. Answered when done, with what it did to the
    /// announcements, in words (`withdraws 203.0.113.53/32 (unhealthy)`; empty: nothing).
    Reconfigure {
        /// The new definition.
        service: Box<Service>,
        /// Sequence number of the reload record.
        decision_seq: u64,
        /// Done.
        reply: oneshot::Sender<Vec<String>>,
    },
    /// A reload removed the service: drain it (`Draining(Removed)`), withdraw, and end.
    Remove(oneshot::Sender<()>),
    /// The service's state in detail (for `status`).
    Snapshot(oneshot::Sender<crate::observe::status::Snapshot>),
}

/// The writers by backend, shared by the drivers (a reload may add one).
pub type Writers = std::sync::Arc<std::sync::Mutex<HashMap<BackendId, WriterHandle>>>;

/// A running driver.
pub struct DriverHandle {
    /// The service name.
    pub name: String,
    /// Commands to it.
    pub commands: mpsc::Sender<Command>,
    /// Its task.
    pub task: JoinHandle<()>,
}

/// The journal's name for a prefix.
pub fn prefix_ref(prefix: &Prefix) -> wire::PrefixRef {
    prefix.journal_ref()
}

/// How a driver starts.
pub struct Start {
    /// The service.
    pub service: Service,
    /// Its state (from the start-up reconciliation, or `Starting`).
    pub initial: State,
    /// When its machine starts: the time of the record that started it (the reconciliation,
    /// or the reload that added it), so that replay starts it at the same moment.
    pub at_ms: i64,
    /// The damping state journaled before the restart.
    pub restored_damping: Option<DampingState>,
    /// Since when it is in `initial` (ms), and why, in words (for `status`).
    pub since: (i64, String),
    /// The journal record that decided `initial` (the start-up reconciliation's, or the
    /// transition before the restart that a kept drain comes from); 0: none.
    pub decided_seq: u64,
    /// A kept drain's grace (ms since the epoch) journaled before the restart: announced with
    /// GRACEFUL_SHUTDOWN until then, then withdrawn (not started afresh).
    pub grace_until_ms: Option<i64>,
    /// Restored in the state it had before the restart: since when it has been in it and
    /// why, as the fleet guard was told before (published again as they were, not as the
    /// restart's time and words).
    pub fleet_since: Option<(i64, String)>,
}

/// What every driver shares.
#[derive(Clone)]
pub struct Shared {
    /// The routing writers.
    pub writers: Writers,
    /// The journal.
    pub journal: JournalHandle,
    /// The check schedulers.
    pub polling: crate::checks::scheduler::Polling,
    /// Makes a configured check pollable.
    pub probes: crate::checks::Factory,
    /// Every service's state, for the control socket and systemd.
    pub views: Views,
    /// The fleet guard (`None`: no `[fleet]`).
    pub fleet: Option<crate::fleet::guard::FleetHandle>,
}

/// Start the driver of a service (and its check polls).
pub fn spawn(start: Start, shared: Shared) -> DriverHandle {
    let (commands_tx, commands_rx) = mpsc::channel(4);
    let name = start.service.name.clone();
    crate::observe::metrics::service_counters(&name);
    let task = tokio::spawn(async move {
        let mut driver = Driver::new(start, shared);
        driver.restore_damping().await;
        driver.run(commands_rx).await;
    });
    DriverHandle {
        name,
        commands: commands_tx,
        task,
    }
}

/// A check's logging and metering state.
#[derive(Debug)]
struct Edge {
    last: Option<Observation>,
    /// Results since the last change (for the "still failing" reminder and status).
    polls: u64,
    /// When the current result began, and the latest result's time (ms).
    since_ms: i64,
    last_ms: i64,
    last_logged: Option<Instant>,
    meters: crate::observe::metrics::CheckMeters,
}

impl Edge {
    fn new(service: &str, check: &crate::config::Check) -> Edge {
        Edge {
            last: None,
            polls: 0,
            since_ms: 0,
            last_ms: 0,
            last_logged: None,
            meters: crate::observe::metrics::CheckMeters::new(
                service,
                &check.name,
                check.kind.name(),
                check.shadow,
            ),
        }
    }
}

struct Driver {
    service: Service,
    core: Core,
    shared: Shared,
    edges: Vec<Edge>,
    restored_damping: Option<DampingState>,
    /// Since when the service is in its state (ms).
    since_ms: i64,
    /// The last transition's cause, in words.
    cause: String,
    /// Whether the checks are polled at `fast_interval` (a rise or fall being confirmed).
    fast: bool,
    /// The journal record of the decision the service is in now (its last transition); 0:
    /// none. A withdrawal that restates it (a shutdown of a drained service) names it.
    decided_seq: u64,
    /// The fleet guard's side of a guarded service (`None`: not guarded).
    fleet: Option<FleetSide>,
}

/// A guarded service's end of the fleet guard: where its answers come, and the withdrawal
/// it waits for. While one is asked for and not granted, the prefixes stay announced.
struct FleetSide {
    handle: crate::fleet::guard::FleetHandle,
    rule: crate::fleet::Rule,
    answers_tx: mpsc::UnboundedSender<crate::fleet::Answer>,
    answers: mpsc::UnboundedReceiver<crate::fleet::Answer>,
    /// The transition whose withdrawal is asked for, until granted or no longer wanted.
    asked: Option<u64>,
    /// The last answer journaled for it (the same answer again is not journaled).
    last: Option<wire::FleetAnswer>,
    /// Counts the transitions told to the guard: an announcement is published once its
    /// routing daemons have it, unless another transition came meanwhile.
    generation: u64,
    announced_tx: mpsc::UnboundedSender<(u64, crate::fleet::Published)>,
    announced: mpsc::UnboundedReceiver<(u64, crate::fleet::Published)>,
    /// Restored at start in the state it had: the since and cause the fleet was told before
    /// the restart, published again until the next transition.
    kept: Option<(i64, String)>,
    /// What a held withdrawal stays announced with when it is not the plain route: the
    /// de-preferred attributes of a service a reload took from deprefer to withdraw.
    held_as: Option<crate::bgp::Attributes>,
}

/// What a guarded service hears from its fleet side.
enum FleetEvent {
    /// The guard answered.
    Answer(crate::fleet::Answer),
    /// The routing daemons have the announcement of transition `generation`.
    Announced(u64, crate::fleet::Published),
}

impl FleetSide {
    fn new(handle: crate::fleet::guard::FleetHandle, rule: crate::fleet::Rule) -> FleetSide {
        let (answers_tx, answers) = mpsc::unbounded_channel();
        let (announced_tx, announced) = mpsc::unbounded_channel();
        FleetSide {
            handle,
            rule,
            answers_tx,
            answers,
            asked: None,
            last: None,
            generation: 0,
            announced_tx,
            announced,
            kept: None,
            held_as: None,
        }
    }
}

/// The next event of the fleet side (never, for a service the guard does not guard).
async fn fleet_event(fleet: &mut Option<FleetSide>) -> Option<FleetEvent> {
    match fleet {
        Some(side) => tokio::select! {
            answer = side.answers.recv() => answer.map(FleetEvent::Answer),
            announced = side.announced.recv() => {
                announced.map(|(generation, record)| FleetEvent::Announced(generation, record))
            }
        },
        None => std::future::pending().await,
    }
}

/// Every service's current state, shared with the control socket.
pub type Views = std::sync::Arc<std::sync::Mutex<BTreeMap<String, ServiceView>>>;

/// The parameters of a configured service as the journal and the core see them.
pub fn wire_params(service: &Service) -> wire::ServiceParams {
    wire::ServiceParams {
        name: service.name.clone(),
        rise: service.rise,
        fall: service.fall,
        require: service.require,
        checks: service
            .checks
            .iter()
            .map(|c| wire::CheckParams {
                kind: c.kind.name().into(),
                identity: c.identity(),
                name: c.name.clone(),
                interval_ms: c.interval.as_millis() as u64,
                timeout_ms: c.timeout.as_millis() as u64,
                pending_timeout_ms: c.pending_timeout.as_millis() as u64,
                max_age_ms: c.kind.max_age().map(|d| d.as_millis() as u64),
                shadow: c.shadow,
            })
            .collect(),
        prefixes: service.prefixes.iter().map(prefix_ref).collect(),
    }
}

impl Driver {
    fn new(start: Start, shared: Shared) -> Driver {
        // Restored unhealthy yet announced, and not de-preferred: the reconciliation kept it
        // because the fleet guard held its withdrawal before the restart. Still held until the
        // guard is asked again (`starting`): never withdrawn because of the restart.
        let held_before = start.initial == State::Unhealthy
            && start.service.on_unhealthy == anycastd_fsm::OnUnhealthy::Withdraw;
        let core = Core::new(
            wire_params(&start.service),
            start.service.damping.clone(),
            start.initial,
            start.at_ms,
        )
        .with_graded(Graded::of(&start.service), start.at_ms)
        // A kept grace that ended between the reconciliation's look at the clock and this
        // start (its prefixes were kept announced for it) ends now, by its timer, as
        // any grace: withdrawn and journaled, not left announced.
        .with_grace(
            start
                .grace_until_ms
                .map(|until| until.max(start.at_ms.saturating_add(1))),
            start.at_ms,
        );
        let edges = start
            .service
            .checks
            .iter()
            .map(|c| Edge::new(&start.service.name, c))
            .collect();
        let mut fleet = match (&shared.fleet, start.service.fleet) {
            (Some(handle), Some(rule)) => Some(FleetSide::new(handle.clone(), rule)),
            _ => None,
        };
        if let Some(side) = fleet.as_mut() {
            side.kept = start.fleet_since.clone();
            if held_before {
                side.asked = Some(start.decided_seq);
            }
        }
        Driver {
            fleet,
            service: start.service,
            core,
            shared,
            edges,
            restored_damping: start.restored_damping,
            since_ms: start.since.0,
            cause: start.since.1,
            fast: false,
            decided_seq: start.decided_seq,
        }
    }

    /// Poll at `fast_interval` while a rise or fall is being confirmed, at each check's own
    /// interval otherwise (a check already faster keeps its own).
    fn pace(&mut self, pollers: &[crate::checks::scheduler::Watch]) {
        let Some(fast_interval) = self.service.fast_interval else {
            return;
        };
        let fast = self.core.machine().confirming();
        if fast == self.fast {
            return;
        }
        self.fast = fast;
        tracing::debug!(
            service = %self.service.name,
            fast,
            "{} polling of service \"{}\"'s checks.",
            if fast { "Faster" } else { "Usual" },
            self.service.name
        );
        for (watch, check) in pollers.iter().zip(&self.service.checks) {
            let interval = if fast {
                check.interval.min(fast_interval)
            } else {
                check.interval
            };
            watch.set_interval(interval);
        }
    }

    fn name(&self) -> &str {
        &self.service.name
    }

    fn prefixes_text(&self) -> Vec<String> {
        self.service
            .prefixes
            .iter()
            .map(crate::audit::text::route_text)
            .collect()
    }

    /// One watch per check, all delivering to a fresh queue (a reload replaces both, so no
    /// result of an old check list can arrive under a new index).
    fn start_pollers(
        &self,
    ) -> (
        Vec<crate::checks::scheduler::Watch>,
        crate::checks::scheduler::ResultsReceiver,
    ) {
        let (polled_tx, polled_rx) = crate::checks::scheduler::results();
        let watches = self
            .service
            .checks
            .iter()
            .enumerate()
            .map(|(index, check)| {
                let probe = (self.shared.probes)(&self.service.name, check);
                self.shared
                    .polling
                    .watch(probe, check.interval, index, polled_tx.clone())
            })
            .collect();
        (watches, polled_rx)
    }

    /// Take the damping state journaled before a restart (penalty and suppression survive).
    async fn restore_damping(&mut self) {
        let Some(state) = self.restored_damping.take() else {
            return;
        };
        let now = now_ms();
        let effects = self.core.restore_damping(state, now);
        let suppressed = self.core.machine().suppressed();
        self.carry_out(effects, now).await;
        if suppressed {
            let penalty = self.core.machine().penalty_at(anycastd_fsm::Timestamp(now));
            tracing::warn!(
                service = %self.service.name,
                penalty = penalty / 1000,
                "Service \"{}\" stays suppressed by flap damping after the restart.",
                self.service.name
            );
        }
    }

    /// Apply a reloaded definition: keep state and counters, keep the results of checks with
    /// the same identity (type, url, name), withdraw removed prefixes, set added ones.
    /// Returns what it did to the announcements, in words, for the reload's answer.
    async fn reconfigure(&mut self, service: Service, decision_seq: u64) -> Vec<String> {
        let now = now_ms();
        let before = self.core.wanted_attributes();
        let announced_before = before.is_some() || self.fleet_held();
        self.core.set_graded(Graded::of(&service));
        let mut effects =
            self.core
                .reconfigure(wire_params(&service), service.damping.clone(), now);
        // A level the new settings want is decided by its own level record below, once it
        // is durable: not here, under no record and ahead of it.
        effects.set = None;
        self.carry_out(effects, now).await;
        let after = self.core.wanted_attributes();
        let mut done = Vec::new();
        if after != before {
            done.push(self.change_level(before.is_some(), now).await);
            if after.is_none() {
                // Asked of the fleet guard: held, it stays as it is installed (de-preferred).
                if let Some(side) = self.fleet.as_mut().filter(|side| side.asked.is_some()) {
                    side.held_as = before.clone();
                }
            }
        }
        let old_edges = std::mem::take(&mut self.edges);
        self.edges = service
            .checks
            .iter()
            .map(|check| {
                match self.service.checks.iter().position(|o| {
                    o.name == check.name
                        && o.kind.name() == check.kind.name()
                        && o.identity() == check.identity()
                }) {
                    // A check that stays keeps its history (the recorder journals its first
                    // result after the reload all the same).
                    Some(i) => {
                        let old = &old_edges[i];
                        Edge {
                            last: old.last.clone(),
                            polls: old.polls,
                            since_ms: old.since_ms,
                            last_ms: old.last_ms,
                            last_logged: old.last_logged,
                            // The same cells unless its shadow flag changed.
                            meters: Edge::new(&service.name, check).meters,
                        }
                    }
                    None => Edge::new(&service.name, check),
                }
            })
            .collect();
        // The series of checks that went (or changed kind or shadow flag) go too.
        for old in &self.service.checks {
            let stays = service.checks.iter().any(|c| {
                c.name == old.name && c.kind.name() == old.kind.name() && c.shadow == old.shadow
            });
            if !stays {
                crate::observe::metrics::forget_check(
                    &service.name,
                    &old.name,
                    old.kind.name(),
                    old.shadow,
                );
            }
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
        let words = |list: &[Prefix]| {
            list.iter()
                .map(crate::audit::text::route_text)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !removed.is_empty() && announced_before {
            done.push(format!(
                "withdraws {} (no longer configured)",
                words(&removed)
            ));
        }
        if !added.is_empty() && self.core.machine().wanted().is_some() {
            done.push(format!("announces {}", words(&added)));
        }
        self.service = service;
        done.extend(self.reconfigure_fleet());
        self.set_some_prefixes(&removed, false, decision_seq);
        if !added.is_empty() && self.core.machine().wanted().is_some() {
            self.set_some_prefixes(&added, true, decision_seq);
        }
        tracing::info!(
            service = %self.service.name,
            prefixes = %self.prefixes_text().join(", "),
            checks = %self.core.check_names().join(", "),
            withdrawn = removed.len(),
            added = added.len(),
            "Service \"{}\" reconfigured; its state ({}) and counters are kept.",
            self.service.name,
            self.core.machine().state().name()
        );
        done
    }

    /// A reload changed the level the service's prefixes are wanted at in the state it is in
    /// (`on_unhealthy` or the `deprefer` attributes of an unhealthy service, the attributes
    /// of a grace): journal the level durably, as the decision (write-ahead, as a
    /// transition), then hand it to the writers under that record; a guarded service that
    /// now stays announced withdraws nothing, so its withdrawal is no longer asked of the
    /// fleet guard. Returns what it does, in words.
    async fn change_level(&mut self, announced_before: bool, at: i64) -> String {
        if let Some(side) = self.fleet.as_mut() {
            // An announcement still on its way publishes nothing once the level changed
            // (it would say "announcing" of a site the change withdraws).
            side.generation += 1;
        }
        let machine = self.core.machine();
        let attributes = self.core.wanted_attributes();
        let level = machine.wanted();
        let record = wire::Event::Level(wire::LevelRecord {
            service: self.service.name.clone(),
            level: level.map(Into::into),
            attributes: attributes
                .as_ref()
                .map(crate::service::wire_attributes)
                .unwrap_or_default(),
            grace_until_ms: machine.grace_until().map(|t| t.0),
        });
        let seq = match self.shared.journal.append_durable(at, vec![record]).await {
            Ok(seq) => seq,
            Err(e) => {
                tracing::error!(service = %self.service.name, error = %e, "cannot journal the level the reload changed; acting on it anyway");
                0
            }
        };
        let state = self.core.machine().state().name();
        let prefixes = self.prefixes_text().join(", ");
        let text = match (&attributes, level) {
            (Some(a), Some(level)) => {
                if let Some(side) = self.fleet.as_mut() {
                    if side.asked.take().is_some() {
                        side.handle.send(crate::fleet::guard::Request::Cancel {
                            service: self.service.name.clone(),
                        });
                        crate::observe::metrics::set(
                            "anycastd_fleet_guard_held",
                            &[("service", self.service.name.as_str())],
                            0.0,
                        );
                    }
                }
                let handed = self.set_prefixes(true, seq);
                if level != anycastd_fsm::Level::Normal {
                    self.publish_to_fleet(
                        crate::fleet::SiteState::of(self.core.machine().state(), Some(level)),
                        at,
                    );
                } else {
                    self.publish_when_announced(&handed);
                }
                let verb = if announced_before {
                    "re-announces"
                } else {
                    "announces"
                };
                format!(
                    "{verb} {prefixes} {} ({a}) ({state})",
                    crate::audit::text::level_name(Some(level.into()))
                )
            }
            _ if self.fleet_held() => {
                format!(
                    "keeps {prefixes} announced: the fleet guard holds the withdrawal ({state})"
                )
            }
            _ if announced_before && self.ask_fleet_to_withdraw(seq) => {
                format!(
                    "asks the fleet guard to withdraw {prefixes}, kept announced until it grants ({state})"
                )
            }
            _ => {
                self.set_prefixes(false, seq);
                self.publish_to_fleet(crate::fleet::SiteState::Withdrawn, at);
                format!("withdraws {prefixes} ({state})")
            }
        };
        tracing::info!(
            service = %self.service.name,
            prefixes = %prefixes,
            "Service \"{}\" reconfigured: {text}.",
            self.service.name
        );
        text
    }

    /// A reload takes an unhealthy guarded service from announced (de-preferred) to
    /// withdrawn: the withdrawal is asked of the fleet guard, as a transition's is, under the
    /// level record `decision_seq` (withdrawn when it grants, `on_fleet_answer`). Returns
    /// whether it was asked (not for a service that is not guarded or not unhealthy).
    fn ask_fleet_to_withdraw(&mut self, decision_seq: u64) -> bool {
        if *self.core.machine().state() != State::Unhealthy {
            return false;
        }
        let name = self.service.name.clone();
        let record = |state| crate::fleet::Published {
            state,
            cause: self.cause.clone(),
            since_ms: self.since_ms,
        };
        let (withdrawn, held) = (
            record(crate::fleet::SiteState::Withdrawn),
            record(crate::fleet::SiteState::Held),
        );
        let Some(side) = &mut self.fleet else {
            return false;
        };
        side.asked = Some(decision_seq);
        side.last = None;
        side.handle.send(crate::fleet::guard::Request::Ask {
            service: name,
            rule: side.rule,
            withdrawn,
            held,
            reply: side.answers_tx.clone(),
        });
        // Blind already: answered at once (the guard may be busy trying etcd again).
        if let Some((since_ms, reason)) = side.handle.blind() {
            let _ = side
                .answers_tx
                .send(crate::fleet::Answer::Blind { since_ms, reason });
        }
        true
    }

    /// Say that the service starts (and what is odd about it), and publish its state.
    fn starting(&self) {
        tracing::info!(
            service = %self.service.name,
            prefixes = %self.prefixes_text().join(", "),
            checks = %self.core.check_names().join(", "),
            "Starting service \"{}\".",
            self.service.name
        );
        if self.service.checks.is_empty() {
            tracing::warn!(
                service = %self.service.name,
                "service \"{}\" has no checks: it is always considered healthy",
                self.service.name
            );
        } else if self.service.checks.iter().all(|c| c.shadow) {
            tracing::warn!(
                service = %self.service.name,
                "service \"{}\" has only shadow checks: it is always considered healthy",
                self.service.name
            );
        }
        crate::observe::metrics::service_state(
            &self.service.name,
            self.core.machine().state().name(),
            self.since_ms,
        );
        if let Some(side) = self.fleet.as_ref().filter(|side| side.asked.is_some()) {
            // Held before the restart: ask again (publishes "held", or "withdrawn" once
            // granted), never "withdrawn" first.
            tracing::info!(
                service = %self.service.name,
                "Service \"{}\" is unhealthy and was held announced by the fleet guard before the restart: the guard is asked again.",
                self.service.name
            );
            crate::observe::metrics::set(
                "anycastd_fleet_guard_held",
                &[("service", self.service.name.as_str())],
                1.0,
            );
            let (since_ms, cause) = self.fleet_since();
            let record = |state| crate::fleet::Published {
                state,
                cause: cause.clone(),
                since_ms,
            };
            side.handle.send(crate::fleet::guard::Request::Ask {
                service: self.service.name.clone(),
                rule: side.rule,
                withdrawn: record(crate::fleet::SiteState::Withdrawn),
                held: record(crate::fleet::SiteState::Held),
                reply: side.answers_tx.clone(),
            });
            return;
        }
        if self.fleet.is_some() {
            // Guarded and not held: 0 from the start (an alert needs the series).
            crate::observe::metrics::set(
                "anycastd_fleet_guard_held",
                &[("service", self.service.name.as_str())],
                0.0,
            );
        }
        if let Some(side) = &self.fleet {
            let (since_ms, cause) = self.fleet_since();
            side.handle.send(crate::fleet::guard::Request::Publish {
                service: self.service.name.clone(),
                record: crate::fleet::Published {
                    state: crate::fleet::SiteState::of(
                        self.core.machine().state(),
                        self.core.machine().wanted(),
                    ),
                    cause,
                    since_ms,
                },
            });
        }
    }

    /// Since when, and why, the service is in its state as the fleet is told: as before the
    /// restart when it was restored in the same state, else its own.
    fn fleet_since(&self) -> (i64, String) {
        self.fleet
            .as_ref()
            .and_then(|side| side.kept.clone())
            .unwrap_or_else(|| (self.since_ms, self.cause.clone()))
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        self.starting();
        let (mut pollers, mut polled_rx) = self.start_pollers();
        // A shutdown waiting for its grace to end, answered then.
        let mut stopping: Option<oneshot::Sender<()>> = None;
        loop {
            let next_timer = self.core.next_timer();
            tokio::select! {
                polled = polled_rx.recv() => {
                    let at = self.core.result_time(polled.check, polled.at_ms);
                    self.log_result(&polled, at);
                    let effects = self.core.observe(polled.check, polled.observation, at);
                    self.carry_out(effects, at).boxed_step().await;
                    self.hard_check_overrides_hold().boxed_step().await;
                    self.pace(&pollers);
                }
                Some(event) = fleet_event(&mut self.fleet) => match event {
                    FleetEvent::Answer(answer) => self.on_fleet_answer(answer).boxed_step().await,
                    FleetEvent::Announced(generation, record) => {
                        if let Some(side) = self.fleet.as_ref().filter(|s| s.generation == generation) {
                            side.handle.send(crate::fleet::guard::Request::Publish {
                                service: self.service.name.clone(),
                                record,
                            });
                        }
                    }
                },
                () = wait_until_ms(next_timer.map(|(_, at)| at)) => {
                    if let Some((timer, deadline)) = next_timer {
                        // Fed at its deadline: its effect has an exact time.
                        let effects = self.core.fire(timer, deadline);
                        self.carry_out(effects, deadline).boxed_step().await;
                        self.pace(&pollers);
                        let over = self.core.machine().grace_until().is_none();
                        if let Some(done) = stopping.take_if(|_| over) {
                            // The shutdown's grace is over: withdrawn and handed over.
                            let _ = done.send(());
                            return;
                        }
                    }
                }
                command = commands.recv() => {
                    let Some(command) = command else {
                        pollers.clear();
                        return;
                    };
                    match command {
                        Command::Shutdown { grace, done } => {
                            let changed = self.drain_for_shutdown(grace).await;
                            if self.core.machine().grace_until().is_some() {
                                // Announced with GRACEFUL_SHUTDOWN until the grace's timer
                                // (or a second signal); checks go on meanwhile (verdicts do not
                                // move a draining service).
                                stopping = Some(done);
                                continue;
                            }
                            pollers.clear();
                            if !changed {
                                // Already drained by an operator (kept across the restart):
                                // make sure every prefix is withdrawn all the same, as the
                                // drain decided (its record, not a new one).
                                self.set_prefixes(false, self.decided_seq);
                            }
                            let _ = done.send(());
                            return;
                        }
                        Command::EndGrace(ack) => {
                            self.drain_for_shutdown(Some(Duration::ZERO)).await;
                            if let Some(done) = stopping.take() {
                                pollers.clear();
                                let _ = done.send(());
                                let _ = ack.send(());
                                return;
                            }
                            let _ = ack.send(());
                        }
                        Command::FlushRuns(done) => {
                            if let Some(record) = self.core.take_runs() {
                                self.shared.journal.append_visible(now_ms(), vec![record]).await;
                            }
                            let _ = done.send(());
                        }
                        Command::Drain { cause, operator, grace, reply } => {
                            crate::observe::metrics::count("anycastd_drains_total", &[("service", self.service.name.as_str())], 1.0);
                            let before = match self.core.machine().state() {
                                State::Draining(DrainCause::Operator { expires_at, .. }) => Some(*expires_at),
                                _ => None,
                            };
                            let now = now_ms();
                            let effects = self.core.drain_after(*cause, Some(*operator), grace, now);
                            let handed = self.carry_out(effects, now).boxed_step().await;
                            let after = match self.core.machine().state() {
                                State::Draining(DrainCause::Operator { expires_at, .. }) => *expires_at,
                                _ => None,
                            };
                            let mut note = redrain_note(before, after);
                            if let Some(until) = self.core.machine().grace_until() {
                                note.push_str(&format!(
                                    "; announced with GRACEFUL_SHUTDOWN (community 65535:0) until {}, withdrawn then",
                                    crate::audit::text::format_time(until.0)
                                ));
                            }
                            let _ = reply.send(OperatorReply {
                                note,
                                state: self.core.machine().state().clone(),
                                announced: self.core.machine().wanted().is_some(),
                                handed,
                            });
                        }
                        Command::Undrain { operator, reply } => {
                            let drained = matches!(self.core.machine().state(), State::Draining(DrainCause::Operator { .. }));
                            let now = now_ms();
                            let effects = self.core.undrain(Some(*operator), now);
                            let handed = self.carry_out(effects, now).boxed_step().await;
                            let state = self.core.machine().state().clone();
                            let note = if drained {
                                format!("undrained: now {}", state.name())
                            } else {
                                format!("not drained (it is {}): nothing to do", state.name())
                            };
                            let announced = self.core.machine().wanted().is_some();
                            let _ = reply.send(OperatorReply { note, state, announced, handed });
                        }
                        Command::Reconfigure { service, decision_seq, reply } => {
                            pollers.clear();
                            let done = self.reconfigure(*service, decision_seq).await;
                            (pollers, polled_rx) = self.start_pollers();
                            self.fast = false;
                            self.pace(&pollers);
                            let _ = reply.send(done);
                        }
                        Command::Remove(reply) => {
                            pollers.clear();
                            let now = now_ms();
                            // At once: the driver ends here, so no grace timer would fire
                            // (a removal's grace is not built yet).
                            let effects = self.core.drain_after(DrainCause::Removed, None, Some(Duration::ZERO), now);
                            let changed = effects.transition.is_some();
                            self.carry_out(effects, now).boxed_step().await;
                            if !changed {
                                // Drained already: the withdrawal restates the drain's.
                                self.set_prefixes(false, self.decided_seq);
                            }
                            self.shared.views.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.service.name);
                            if let Some(side) = &self.fleet {
                                side.handle.send(crate::fleet::guard::Request::Forget { service: self.service.name.clone() });
                            }
                            crate::observe::metrics::forget_service(&self.service.name);
                            tracing::info!(service = %self.service.name, "Service \"{}\" removed by a reload.", self.service.name);
                            let _ = reply.send(());
                            return;
                        }
                        Command::Snapshot(reply) => {
                            let _ = reply.send(self.snapshot());
                        }
                    }
                }
            }
        }
    }

    /// The level the service wants, in words (status): `normal`, `de-preferred (as-path
    /// +3, MED 1000)`, `graceful shutdown until ... (community 65535:0)`, `withdrawn`.
    fn wanted_level_text(&self) -> String {
        let machine = self.core.machine();
        let level = machine.wanted();
        let mut text = crate::audit::text::level_name(level.map(Into::into)).to_owned();
        if let Some(until) = machine.grace_until() {
            text.push_str(&format!(
                " until {}",
                crate::audit::text::format_time(until.0)
            ));
        }
        match self.core.wanted_attributes() {
            Some(attributes) if !attributes.is_plain() => {
                text.push_str(&format!(" ({attributes})"));
            }
            _ => {}
        }
        text
    }

    /// The level the service wants, as fields (status `--json`): a withdrawal held by the
    /// fleet guard stays announced plain.
    fn level_view(&self) -> crate::observe::status::LevelView {
        let machine = self.core.machine();
        let held_as = self
            .fleet
            .as_ref()
            .filter(|side| side.asked.is_some())
            .map(|side| side.held_as.clone());
        let attributes = self.core.wanted_attributes().or_else(|| {
            held_as
                .clone()
                .map(|a| a.unwrap_or_else(crate::bgp::Attributes::plain))
        });
        let grace_end_ms = machine.grace_until().map(|t| t.0);
        crate::observe::status::LevelView {
            name: match (machine.wanted(), &attributes) {
                (Some(level), _) => level.name(),
                // Held as it was announced before a reload asked its withdrawal.
                (None, Some(_)) if held_as.flatten().is_some() => {
                    anycastd_fsm::Level::Depreferred.name()
                }
                (None, Some(_)) => anycastd_fsm::Level::Normal.name(),
                (None, None) => "withdrawn",
            }
            .to_owned(),
            attributes: attributes.as_ref().map(Into::into),
            grace_end_ms,
            grace_end: grace_end_ms.map(crate::audit::text::format_time),
        }
    }

    /// Drain for a shutdown, after `grace` instead of the service's `drain_grace` when given
    /// (zero: at once, ending a grace in progress); returns whether the state changed.
    async fn drain_for_shutdown(&mut self, grace: Option<Duration>) -> bool {
        let now = now_ms();
        let effects = self
            .core
            .drain_after(DrainCause::Shutdown, None, grace, now);
        let changed = effects.transition.is_some();
        self.carry_out(effects, now).boxed_step().await;
        changed
    }

    /// The service in detail, for `status`.
    fn snapshot(&self) -> crate::observe::status::Snapshot {
        let machine = self.core.machine();
        let now = now_ms();
        let damping = self.service.damping.as_ref().map(|d| {
            let state = machine.damping();
            crate::observe::status::DampingView {
                penalty: machine.penalty_at(anycastd_fsm::Timestamp(now)) / 1000,
                suppressed: state.suppressed_since.is_some(),
                suppressed_since_ms: state.suppressed_since.map(|t| t.0),
                reuse_at_ms: state.suppressed_since.map(|since| {
                    d.reuse_time(state.penalty_milli, state.at)
                        .min(since.after(d.max_suppress))
                        .0
                }),
            }
        });
        let counters = machine.counters();
        crate::observe::status::Snapshot {
            name: self.service.name.clone(),
            state: machine.state().into(),
            since_ms: self.since_ms,
            cause: self.cause.clone(),
            desired_announced: machine.wanted().is_some() || self.fleet_held(),
            wanted_level: Some(self.wanted_level_text()),
            level: Some(self.level_view()),
            rise: self.service.rise,
            fall: self.service.fall,
            require: self.service.require,
            fast_interval_ms: self.service.fast_interval.map(|d| d.as_millis() as u64),
            healthy_streak: counters.healthy_streak,
            unhealthy_streak: counters.unhealthy_streak,
            checks: self
                .service
                .checks
                .iter()
                .zip(&self.edges)
                .zip(machine.observations())
                .map(
                    |((check, edge), latest)| crate::observe::status::CheckView {
                        name: check.name.clone(),
                        kind: check.kind.name().to_owned(),
                        shadow: check.shadow,
                        vrf: check.vrf.clone(),
                        result: match latest {
                            Observation::Pass => "pass".into(),
                            Observation::Fail(_) => "fail".into(),
                            Observation::Pending => "pending".into(),
                        },
                        reason: match latest {
                            Observation::Fail(reason) => Some(reason.clone()),
                            // Pending past its timeout: verdicts count it as failed.
                            Observation::Pending
                                if now.saturating_sub(edge.since_ms)
                                    >= check.pending_timeout.as_millis() as i64 =>
                            {
                                Some(format!(
                                    "no result within {} ms: counted as failed",
                                    check.pending_timeout.as_millis()
                                ))
                            }
                            _ => None,
                        },
                        since_ms: (edge.since_ms > 0).then_some(edge.since_ms),
                        last_ms: (edge.last_ms > 0).then_some(edge.last_ms),
                        results_since_change: edge.polls,
                        // The interval polls run at now (`fast_interval` while confirming).
                        interval_ms: match (self.fast, self.service.fast_interval) {
                            (true, Some(fast)) => check.interval.min(fast),
                            _ => check.interval,
                        }
                        .as_millis() as u64,
                    },
                )
                .collect(),
            damping,
        }
    }

    /// Count, log and meter a check result (on its edges, and a reminder while failing).
    fn log_result(&mut self, polled: &Polled, at: i64) {
        let Some(edge) = self.edges.get_mut(polled.check) else {
            return;
        };
        let check = &self.service.checks[polled.check];
        let name = check.name.as_str();
        // A shadow check says so: its failures decide nothing.
        let kind = if check.shadow {
            format!("Shadow {}", check.kind.label())
        } else {
            check.kind.label().to_owned()
        };
        let result = match polled.observation {
            Observation::Pass => 0,
            Observation::Fail(_) => 1,
            Observation::Pending => 2,
        };
        edge.meters.record(result, polled.took);
        edge.last_ms = at;
        if edge.last.as_ref() == Some(&polled.observation) {
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
                        "{kind} health check \"{name}\" is still failing."
                    );
                }
            }
            return;
        }
        let first = edge.last.is_none();
        edge.polls = 1;
        edge.since_ms = at;
        edge.last = Some(polled.observation.clone());
        match &polled.observation {
            Observation::Fail(reason) => {
                edge.last_logged = Some(Instant::now());
                tracing::warn!(
                    service = %self.service.name,
                    check = %name,
                    reason = %reason,
                    "{kind} health check \"{name}\" failed."
                );
            }
            Observation::Pass if first => tracing::info!(
                service = %self.service.name,
                check = %name,
                "{kind} health check \"{name}\" passed."
            ),
            Observation::Pass => tracing::info!(
                service = %self.service.name,
                check = %name,
                "{kind} health check \"{name}\" passed again."
            ),
            Observation::Pending => tracing::info!(
                service = %self.service.name,
                check = %name,
                "{kind} health check \"{name}\" awaiting check result."
            ),
        }
    }

    /// Journal what the core returned (durably when it holds a transition), log it, and hand
    /// the decided state of the prefixes to the writers. Returns what was handed over.
    async fn carry_out(&mut self, effects: Effects, at_ms: i64) -> Vec<Handed> {
        let Effects {
            records,
            transition,
            set,
            damping,
        } = effects;
        let mut decision_seq = 0;
        if transition.is_some() {
            // The decision is the transition record (records may follow it in the batch).
            let after = records
                .iter()
                .rev()
                .position(|r| matches!(r, wire::Event::Transition(_)))
                .unwrap_or(0) as u64;
            // Write-ahead: the decision (and the input behind it) is on disk before a daemon hears
            // of it.
            match self.shared.journal.append_durable(at_ms, records).await {
                Ok(seq) => {
                    decision_seq = seq.saturating_sub(after);
                    self.decided_seq = decision_seq;
                }
                Err(e) => tracing::error!(
                    service = %self.service.name,
                    error = %e,
                    "cannot journal the transition; acting on it anyway (health gating goes on)"
                ),
            }
        } else if !records.is_empty() {
            self.shared.journal.append(at_ms, records);
        }
        if let Some((before, after)) = damping {
            self.log_damping(before, after);
        }
        if let Some(transition) = &transition {
            self.log_transition(transition);
            self.since_ms = transition.at.0;
            self.cause = crate::audit::text::cause_in(
                &crate::service::wire_cause(&transition.cause, &self.core.check_names()),
                &(&transition.to).into(),
            );
            let view = ServiceView {
                name: self.service.name.clone(),
                state: (&transition.to).into(),
                suppressed: self.core.machine().suppressed(),
                since_ms: transition.at.0,
                cause: self.cause.clone(),
            };
            crate::observe::metrics::service_state(
                &self.service.name,
                transition.to.name(),
                transition.at.0,
            );
            crate::observe::metrics::count(
                "anycastd_service_transitions_total",
                &[
                    ("service", self.service.name.as_str()),
                    ("from", transition.from.name()),
                    ("to", transition.to.name()),
                ],
                1.0,
            );
            self.shared
                .views
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(self.service.name.clone(), view);
        }
        let asked = match &transition {
            Some(transition) => self.fleet_on_transition(transition, decision_seq),
            None => false,
        };
        match set {
            // Asked of the fleet guard: withdrawn when it grants (`on_fleet_answer`).
            Some(false) if asked => Vec::new(),
            Some(announce) => {
                let handed = self.set_prefixes(announce, decision_seq);
                if announce {
                    self.publish_when_announced(&handed);
                }
                handed
            }
            None => Vec::new(),
        }
    }

    /// Publish "announcing" once the routing daemons have the announcement: another site
    /// counts this one as announcing only when it is (were it published at the decision,
    /// a held site could withdraw while this one's announcement is still on its way).
    fn publish_when_announced(&self, handed: &[Handed]) {
        let Some(side) = &self.fleet else {
            return;
        };
        let generation = side.generation;
        // Announcing, or de-preferred for an unhealthy service announced so.
        let machine = self.core.machine();
        let record = crate::fleet::Published {
            state: crate::fleet::SiteState::of(machine.state(), machine.wanted()),
            cause: self.cause.clone(),
            since_ms: self.since_ms,
        };
        let handed = handed.to_vec();
        let tx = side.announced_tx.clone();
        tokio::spawn(async move {
            // However long the daemons take (a verify that gives up is asked again later).
            loop {
                if verify(&handed, Duration::from_secs(60)).await.is_empty() {
                    let _ = tx.send((generation, record));
                    return;
                }
                if tx.is_closed() {
                    return;
                }
            }
        });
    }

    /// Tell the fleet guard of a transition; returns whether its withdrawal is asked of the
    /// guard (a withdrawal by health of an announced guarded service whose failing checks
    /// include no `hard` one) instead of made at once.
    fn fleet_on_transition(
        &mut self,
        transition: &anycastd_fsm::Transition,
        decision_seq: u64,
    ) -> bool {
        let hard = self.hard_failure(&transition.cause);
        let name = self.service.name.clone();
        let cause = self.cause.clone();
        let Some(side) = &mut self.fleet else {
            return false;
        };
        side.generation += 1;
        // A new state: its own since and cause from now on.
        side.kept = None;
        let since_ms = transition.at.0;
        let record = |state| crate::fleet::Published {
            state,
            cause: cause.clone(),
            since_ms,
        };
        // A withdrawal only: an unhealthy service announced de-preferred (`on_unhealthy =
        // "deprefer"`) withdraws nothing, so there is nothing to ask (a grant would withdraw it).
        let withdraws = self.core.machine().wanted().is_none();
        if transition.to == State::Unhealthy && transition.from.announces() && !hard && withdraws {
            side.asked = Some(decision_seq);
            side.last = None;
            side.held_as = None;
            side.handle.send(crate::fleet::guard::Request::Ask {
                service: name,
                rule: side.rule,
                withdrawn: record(crate::fleet::SiteState::Withdrawn),
                held: record(crate::fleet::SiteState::Held),
                reply: side.answers_tx.clone(),
            });
            // Blind already: answered at once (the guard may be busy trying etcd again).
            if let Some((since_ms, reason)) = side.handle.blind() {
                let _ = side
                    .answers_tx
                    .send(crate::fleet::Answer::Blind { since_ms, reason });
            }
            return true;
        }
        if side.asked.take().is_some() {
            side.handle.send(crate::fleet::guard::Request::Cancel {
                service: name.clone(),
            });
            crate::observe::metrics::set(
                "anycastd_fleet_guard_held",
                &[("service", name.as_str())],
                0.0,
            );
        }
        let state = crate::fleet::SiteState::of(&transition.to, self.core.machine().wanted());
        // An announcement is published once it is made (`publish_when_announced`).
        if state != crate::fleet::SiteState::Announcing {
            self.publish_to_fleet(state, since_ms);
        }
        false
    }

    /// Whether a verdict failed because of a check marked `hard` (never held by the guard).
    fn hard_failure(&self, cause: &anycastd_fsm::Cause) -> bool {
        let anycastd_fsm::Cause::Verdict(verdict) = cause else {
            return false;
        };
        verdict
            .checks
            .iter()
            .zip(&self.service.checks)
            .any(|(counted, check)| {
                check.hard
                    && matches!(
                        counted,
                        anycastd_fsm::Counted::Seen(Observation::Fail(_))
                            | anycastd_fsm::Counted::NoResult { .. }
                    )
            })
    }

    /// A check marked `hard` fails while the fleet guard holds the withdrawal: the guard never
    /// holds a hard check, so the withdrawal is made at once (journaled first, as a grant).
    async fn hard_check_overrides_hold(&mut self) {
        if !self.fleet_held() {
            return;
        }
        let Some(check) = self
            .service
            .checks
            .iter()
            .zip(self.core.machine().observations())
            .find(|(check, latest)| check.hard && matches!(latest, Observation::Fail(_)))
            .map(|(check, _)| check.name.clone())
        else {
            return;
        };
        let name = self.service.name.clone();
        let Some(side) = &mut self.fleet else {
            return;
        };
        let Some(transition_seq) = side.asked.take() else {
            return;
        };
        side.last = None;
        side.handle.send(crate::fleet::guard::Request::Cancel {
            service: name.clone(),
        });
        crate::observe::metrics::set(
            "anycastd_fleet_guard_held",
            &[("service", name.as_str())],
            0.0,
        );
        let event = wire::FleetGuard {
            service: name.clone(),
            transition_seq,
            answer: wire::FleetAnswer::HardCheck { check },
        };
        let text = crate::audit::text::fleet_guard_text(&event);
        tracing::warn!(service = %name, "{text}");
        let records = vec![wire::Event::FleetGuard(event)];
        if let Err(e) = self.shared.journal.append_durable(now_ms(), records).await {
            tracing::error!(service = %name, error = %e, "cannot journal the hard check's withdrawal; acting on it anyway");
        }
        self.cause = text;
        if let Some(view) = self
            .shared
            .views
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&name)
        {
            view.cause = self.cause.clone();
        }
        self.publish_to_fleet(crate::fleet::SiteState::Withdrawn, now_ms());
        self.set_prefixes(false, transition_seq);
    }

    /// Publish this site's state of a guarded service.
    fn publish_to_fleet(&self, state: crate::fleet::SiteState, since_ms: i64) {
        if let Some(side) = &self.fleet {
            side.handle.send(crate::fleet::guard::Request::Publish {
                service: self.service.name.clone(),
                record: crate::fleet::Published {
                    state,
                    cause: self.cause.clone(),
                    since_ms,
                },
            });
        }
    }

    /// The fleet guard answered the withdrawal asked for: journal the answer (unless it
    /// repeats the last), and withdraw when granted, or when etcd cannot be reached and
    /// `on_unreachable = "local"`.
    async fn on_fleet_answer(&mut self, answer: crate::fleet::Answer) {
        let name = self.service.name.clone();
        let Some(side) = &mut self.fleet else {
            return;
        };
        // A late answer to a withdrawal no longer wanted changes nothing.
        let Some(transition_seq) = side.asked else {
            return;
        };
        let rule = side.rule;
        let count = |c: crate::fleet::Count| wire::FleetCount {
            announcing: c.others_announcing + 1,
            sites: c.sites,
            rule: rule.text(),
        };
        let local = side.handle.settings.on_unreachable == crate::fleet::OnUnreachable::Local;
        let (record, withdraw) = match answer {
            crate::fleet::Answer::Granted(c) => (wire::FleetAnswer::Granted(count(c)), true),
            crate::fleet::Answer::Held(c) => (wire::FleetAnswer::Held(count(c)), false),
            crate::fleet::Answer::Blind { since_ms, reason } => (
                wire::FleetAnswer::Blind {
                    since_ms,
                    reason,
                    held: !local,
                },
                local,
            ),
        };
        if withdraw {
            side.asked = None;
            if local {
                // Decided locally: the guard no longer asks, and the fleet is told once etcd
                // answers again.
                side.handle.send(crate::fleet::guard::Request::Cancel {
                    service: name.clone(),
                });
            }
        }
        // The same answer again (blind since the same moment, whatever the latest error).
        let repeated = match (&side.last, &record) {
            (
                Some(wire::FleetAnswer::Blind {
                    since_ms: a,
                    held: h,
                    ..
                }),
                wire::FleetAnswer::Blind {
                    since_ms: b,
                    held: k,
                    ..
                },
            ) => a == b && h == k,
            (last, record) => last.as_ref() == Some(record),
        };
        side.last = Some(record.clone());
        crate::observe::metrics::set(
            "anycastd_fleet_guard_held",
            &[("service", name.as_str())],
            if withdraw { 0.0 } else { 1.0 },
        );
        if withdraw && local {
            self.publish_to_fleet(crate::fleet::SiteState::Withdrawn, now_ms());
        }
        let event = wire::FleetGuard {
            service: name.clone(),
            transition_seq,
            answer: record,
        };
        let text = crate::audit::text::fleet_guard_text(&event);
        if !repeated {
            if withdraw {
                tracing::info!(service = %name, "{text}");
            } else {
                tracing::warn!(service = %name, "{text}");
            }
            let now = now_ms();
            let records = vec![wire::Event::FleetGuard(event)];
            // On disk at once, either way: a grant before the withdrawal (write-ahead, as a
            // transition); a hold because a restart keeps the route announced only when the
            // journal says it was held (a hold still in the commit queue at a crash was a
            // withdrawal at the restart, never granted).
            if let Err(e) = self.shared.journal.append_durable(now, records).await {
                tracing::error!(service = %name, error = %e, "cannot journal the fleet guard's answer; acting on it anyway");
            }
        }
        self.cause = text;
        if let Some(view) = self
            .shared
            .views
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&name)
        {
            view.cause = self.cause.clone();
        }
        if withdraw {
            self.set_prefixes(false, transition_seq);
        }
    }

    /// A reload changed the service's `fleet` rule: a new rule applies to the next answer; a
    /// service no longer guarded is withdrawn at once if its withdrawal was held, and leaves
    /// the fleet; a newly guarded one publishes its state.
    /// Returns what it did to the announcements, in words, for the reload's answer.
    fn reconfigure_fleet(&mut self) -> Option<String> {
        let name = self.service.name.clone();
        match (&mut self.fleet, self.service.fleet, &self.shared.fleet) {
            (Some(side), Some(rule), _) => {
                let changed = side.rule != rule;
                side.rule = rule;
                // A held withdrawal is asked again under the new rule (the guard kept the
                // old one with the question).
                if let Some(seq) = side.asked.filter(|_| changed) {
                    self.ask_fleet_to_withdraw(seq);
                    return Some(format!(
                        "asks the fleet guard again to withdraw {} under the new rule",
                        self.prefixes_text().join(", ")
                    ));
                }
            }
            (Some(side), None, _) => {
                let held = side.asked.take().is_some();
                side.handle.send(crate::fleet::guard::Request::Forget {
                    service: name.clone(),
                });
                self.fleet = None;
                // No longer guarded: its fleet gauges go (not a stale count).
                crate::observe::metrics::forget_service_gauge("anycastd_fleet_guard_held", &name);
                crate::observe::metrics::forget_service_gauge("anycastd_fleet_sites", &name);
                if held {
                    // Its withdrawal was held: no guard to hold it any more.
                    let prefixes = self.prefixes_text().join(", ");
                    tracing::info!(
                        service = %name,
                        prefixes = %prefixes,
                        "Service \"{name}\" is no longer guarded by the fleet guard, which held its withdrawal: withdrawn."
                    );
                    self.set_prefixes(false, self.decided_seq);
                    return Some(format!(
                        "withdraws {prefixes} (unhealthy; its withdrawal was held by the fleet guard, which no longer guards it)"
                    ));
                }
            }
            (None, Some(rule), Some(handle)) => {
                self.fleet = Some(FleetSide::new(handle.clone(), rule));
                self.publish_to_fleet(
                    crate::fleet::SiteState::of(
                        self.core.machine().state(),
                        self.core.machine().wanted(),
                    ),
                    self.since_ms,
                );
            }
            (None, _, _) => {}
        }
        None
    }

    /// Whether the service's withdrawal is held by the fleet guard (its prefixes announced).
    fn fleet_held(&self) -> bool {
        self.fleet.as_ref().is_some_and(|side| side.asked.is_some())
    }

    fn log_damping(&self, before: DampingState, after: DampingState) {
        let name = self.name();
        match (before.suppressed_since, after.suppressed_since) {
            (None, Some(_)) => {
                let until = self.service.damping.as_ref().map(|d| {
                    d.reuse_time(after.penalty_milli, after.at)
                        .min(after.at.after(d.max_suppress))
                });
                tracing::warn!(
                    service = %name,
                    penalty = after.penalty_milli / 1000,
                    until = %until.map(|t| crate::audit::text::format_time(t.0)).unwrap_or_default(),
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
        let mut views = self.shared.views.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(view) = views.get_mut(name) {
            view.suppressed = after.suppressed_since.is_some();
        }
    }

    /// What a move away from healthy does to the prefixes, in the log's words: the
    /// original's "denouncing related prefixes" for a withdrawal.
    fn action_text(&self) -> String {
        let machine = self.core.machine();
        match (machine.wanted(), machine.grace_until()) {
            (None, _) => "denouncing related prefixes".to_owned(),
            (Some(_), Some(until)) => format!(
                "announcing related prefixes with GRACEFUL_SHUTDOWN (community 65535:0) until {}, then denouncing them",
                crate::audit::text::format_time(until.0)
            ),
            (Some(_), None) => "keeping related prefixes announced de-preferred".to_owned(),
        }
    }

    fn log_transition(&self, transition: &anycastd_fsm::Transition) {
        let name = self.name();
        let prefixes = self.prefixes_text();
        let checks = self.core.check_names();
        match &transition.to {
            State::Healthy => tracing::info!(
                service = %name,
                prefixes = %prefixes.join(", "),
                checks = %checks.join(", "),
                from = transition.from.name(),
                "Service \"{name}\" is now considered healthy, announcing related prefixes."
            ),
            State::Unhealthy => {
                let (failing, reason) = match &transition.cause {
                    anycastd_fsm::Cause::Verdict(v) => v
                        .checks
                        .iter()
                        .zip(&checks)
                        .find_map(|(o, n)| match o {
                            anycastd_fsm::Counted::Seen(Observation::Fail(r)) => {
                                Some((n.clone(), r.clone()))
                            }
                            anycastd_fsm::Counted::NoResult { timeout } => {
                                Some((n.clone(), crate::audit::text::no_result(*timeout)))
                            }
                            _ => None,
                        })
                        .unwrap_or_default(),
                    _ => Default::default(),
                };
                tracing::info!(
                    service = %name,
                    prefixes = %prefixes.join(", "),
                    checks = %checks.join(", "),
                    failing_check = %failing,
                    reason = %reason,
                    from = transition.from.name(),
                    "Service \"{name}\" is now considered unhealthy, {}.",
                    if self.fleet.is_some()
                        && self.core.machine().wanted().is_none()
                        && transition.from.announces()
                        && !self.hard_failure(&transition.cause)
                    {
                        // Its withdrawal is the fleet guard's to grant (the answer follows).
                        "asking the fleet guard before denouncing related prefixes".to_owned()
                    } else {
                        self.action_text()
                    }
                )
            }
            State::Draining(cause) => tracing::info!(
                service = %name,
                prefixes = %prefixes.join(", "),
                cause = %crate::audit::text::state_text(&wire::State::Draining(cause.into())),
                from = transition.from.name(),
                "Service \"{name}\" is draining, {}.",
                self.action_text()
            ),
            State::Starting => {}
        }
    }

    fn set_prefixes(&self, announce: bool, decision_seq: u64) -> Vec<Handed> {
        self.set_some_prefixes(&self.service.prefixes, announce, decision_seq)
    }

    fn set_some_prefixes(
        &self,
        prefixes: &[Prefix],
        announce: bool,
        decision_seq: u64,
    ) -> Vec<Handed> {
        // An announcement carries the attributes of the level the service wants.
        let attributes = if announce {
            self.core.wanted_attributes().unwrap_or_default()
        } else {
            crate::bgp::Attributes::plain()
        };
        let mut by_backend: BTreeMap<&BackendId, Vec<_>> = BTreeMap::new();
        for prefix in prefixes {
            by_backend.entry(&prefix.backend).or_default().push((
                prefix.key(),
                Decision {
                    attributes: attributes.clone(),
                    service: self.service.name.clone(),
                    announce,
                    decision_seq,
                },
            ));
        }
        let writers = self
            .shared
            .writers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut handed = Vec::new();
        for (backend, items) in by_backend {
            match writers.get(backend) {
                Some(writer) => {
                    let keys = items.iter().map(|(key, _)| key.clone()).collect();
                    let generation = writer.set(items);
                    handed.push(Handed {
                        writer: writer.clone(),
                        generation,
                        keys,
                    });
                }
                None => tracing::error!(
                    service = %self.service.name,
                    backend = %backend,
                    "no writer for this backend (a bug)"
                ),
            }
        }
        handed
    }
}

/// A step's future is the largest the driver awaits; boxed, so that an idle driver's task
/// (one per service) is not sized for it.
trait BoxedStep: std::future::Future + Sized {
    fn boxed_step(self) -> std::pin::Pin<Box<Self>> {
        Box::pin(self)
    }
}

impl<F: std::future::Future> BoxedStep for F {}

/// Sleep until the wall-clock time `at_ms` (forever when `None`).
async fn wait_until_ms(at_ms: Option<i64>) {
    match at_ms {
        Some(at) => {
            let wait = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(wait)).await
        }
        None => std::future::pending().await,
    }
}

/// Wait until every writer has verified the prefixes handed to it, for at most `limit`.
/// Returns the prefixes not verified, with the last error the writer had for each.
pub async fn verify(handed: &[Handed], limit: Duration) -> Vec<(PrefixKey, Option<String>)> {
    let deadline = Instant::now() + limit;
    let mut left = Vec::new();
    for h in handed {
        let mut status = h.writer.status();
        let done = |s: &crate::routing::writer::Status| {
            s.generation >= h.generation && !s.pending.iter().any(|(k, _, _)| h.keys.contains(k))
        };
        let ok = tokio::time::timeout_at(deadline, status.wait_for(done))
            .await
            .is_ok_and(|r| r.is_ok());
        if !ok {
            let status = status.borrow().clone();
            for key in &h.keys {
                let error = status
                    .pending
                    .iter()
                    .find(|(k, _, _)| k == key)
                    .and_then(|(_, _, e)| e.clone())
                    .or_else(|| status.read_error.clone());
                left.push((key.clone(), error));
            }
        }
    }
    left
}

/// The answer to a drain: `before` is `Some(its expiry)` when the service was drained by an
/// operator already. A drain again replaces the earlier one, its expiry included: say so
/// when that changes when it ends.
fn redrain_note(
    before: Option<Option<anycastd_fsm::Timestamp>>,
    after: Option<anycastd_fsm::Timestamp>,
) -> String {
    let ends = |t: anycastd_fsm::Timestamp| crate::audit::text::format_time(t.0);
    match before {
        None => "drained".to_owned(),
        Some(earlier) if earlier == after => "drain updated (it was drained already)".to_owned(),
        Some(Some(earlier)) => match after {
            None => format!(
                "drain updated (it was drained already): it no longer ends by itself (it was to end at {})",
                ends(earlier)
            ),
            Some(now) => format!(
                "drain updated (it was drained already): it now ends at {} (it was to end at {})",
                ends(now),
                ends(earlier)
            ),
        },
        Some(None) => format!(
            "drain updated (it was drained already): it now ends at {}",
            after.map(ends).unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    //! The driver with a scripted check and the in-memory backend: what it journals, and
    //! that the backend changes only after the decision is journaled.

    use super::*;
    use crate::checks::cabourotte::Cabourotte;
    use crate::checks::scripted::Script;
    use crate::config::Check;
    use crate::routing::memory::Memory;
    use crate::routing::{Installed, Route};
    use anycastd_journal::{Committer, Entry, Journal, Reader};
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_drain_again_says_when_it_changes_when_the_drain_ends() {
        use anycastd_fsm::Timestamp;
        let (t1, t2) = (Timestamp(1_764_288_000_000), Timestamp(1_764_291_600_000));
        assert_eq!(redrain_note(None, Some(t1)), "drained");
        assert_eq!(
            redrain_note(Some(None), None),
            "drain updated (it was drained already)"
        );
        assert_eq!(
            redrain_note(Some(Some(t1)), None),
            "drain updated (it was drained already): it no longer ends by itself (it was to end at 2025-11-28T00:00:00.000Z)"
        );
        assert_eq!(
            redrain_note(Some(Some(t1)), Some(t2)),
            "drain updated (it was drained already): it now ends at 2025-11-28T01:00:00.000Z (it was to end at 2025-11-28T00:00:00.000Z)"
        );
        assert_eq!(
            redrain_note(Some(None), Some(t2)),
            "drain updated (it was drained already): it now ends at 2025-11-28T01:00:00.000Z"
        );
    }

    struct Fixture {
        shared: Shared,
        memory: Memory,
        route: Route,
        script: Script,
        reader: Reader,
        reports: mpsc::UnboundedReceiver<crate::routing::writer::Notice>,
        _dir: tempfile::TempDir,
    }

    /// Service "dns" (rise 2, fall 1) with one prefix in memory backend `backend` and one
    /// scripted check polled every 50 ms, answering `first`.
    fn fixture(backend: &str, first: Observation) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), &Default::default()).unwrap();
        let reader = journal.reader_handle();
        let memory = Memory::named(backend);
        memory.add_table(None);
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let id = BackendId::memory(backend);
        let writer =
            crate::routing::writer::spawn(memory.clone(), Duration::from_secs(3600), reports_tx);
        let script = Script::new(first);
        let answering = script.clone();
        let probes: crate::checks::Factory = Arc::new(move |_: &str, check: &Check| {
            Box::new(answering.probe(&check.name, check.timeout))
        });
        Fixture {
            shared: Shared {
                writers: Arc::new(Mutex::new(HashMap::from([(id.clone(), writer)]))),
                journal: JournalHandle::new(Committer::start(journal)),
                polling: crate::checks::scheduler::Polling::new(),
                probes,
                views: Views::default(),
                fleet: None,
            },
            memory,
            route: Route {
                prefix: "203.0.113.53/32".parse().unwrap(),
                place: crate::routing::Place::default(),
                backend: id,
            },
            script,
            reader,
            reports,
            _dir: dir,
        }
    }

    fn start(f: &Fixture) -> DriverHandle {
        start_with(f, |_| {})
    }

    /// [`start`] with the service changed by `change` first.
    fn start_with(f: &Fixture, change: impl FnOnce(&mut Service)) -> DriverHandle {
        let service = service_with(f, change);
        spawn(
            Start {
                service,
                initial: State::Starting,
                at_ms: now_ms(),
                restored_damping: None,
                since: (now_ms(), "started".into()),
                decided_seq: 0,
                grace_until_ms: None,
                fleet_since: None,
            },
            f.shared.clone(),
        )
    }

    /// The fixture's service, changed by `change`.
    fn service_with(f: &Fixture, change: impl FnOnce(&mut Service)) -> Service {
        let mut service = Service {
            fast_interval: None,
            on_unhealthy: anycastd_fsm::OnUnhealthy::Withdraw,
            deprefer: None,
            drain_grace: Duration::ZERO,
            require: 0,
            name: "dns".into(),
            rise: 2,
            fall: 1,
            prefixes: vec![f.route.clone()],
            checks: vec![Check {
                vrf: None,
                shadow: false,
                hard: false,
                name: "resolver".into(),
                interval: Duration::from_millis(50),
                timeout: Duration::from_millis(500),
                pending_timeout: Duration::from_secs(10),
                kind: Arc::new(Cabourotte {
                    url: "http://127.0.0.1:9".into(),
                    max_age: None,
                }),
            }],
            damping: None,
            fleet: None,
        };
        change(&mut service);
        service
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "not within 20 s: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn transitions(reader: &Reader) -> Vec<(u64, wire::Transition)> {
        reader
            .entries_from(0)
            .filter_map(|e| match e {
                Ok(Entry::Record(r)) => match r.event {
                    wire::Event::Transition(t) => Some((r.seq, t)),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    fn announced(f: &Fixture) -> bool {
        f.memory
            .installed()
            .contains(&f.route.place, &f.route.prefix)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_passing_check_announces_after_rise_and_a_failure_withdraws_each_journaled_first() {
        let mut f = fixture("driver-rise-fall", Observation::Pass);
        let _driver = start(&f);
        until("announced", || announced(&f)).await;
        // The decision was durable before the backend was asked: the writer was handed the
        // sequence number of its record, known only once the append returned.
        let journaled = transitions(&f.reader);
        let (seq, t) = journaled.last().unwrap();
        let Some(crate::routing::writer::Notice::Outcome(applied)) = f.reports.recv().await else {
            panic!("an outcome");
        };
        assert_eq!(applied.outcome, crate::routing::writer::Outcome::Applied);
        assert_eq!(applied.decision.decision_seq, *seq);
        assert_eq!(
            (&t.from, &t.to),
            (&wire::State::Starting, &wire::State::Healthy)
        );
        assert_eq!(t.change, wire::Change::Announce);
        assert_eq!(t.prefixes, vec![f.route.journal_ref()]);
        assert_eq!(t.healthy_streak, 2, "rise 2: two passing verdicts");
        assert!(f.script.polls() >= 2);

        f.script.set(Observation::Fail("SERVFAIL".into()));
        until("withdrawn", || !announced(&f)).await;
        let journaled = transitions(&f.reader);
        let (seq, t) = journaled.last().unwrap();
        let Some(crate::routing::writer::Notice::Outcome(applied)) = f.reports.recv().await else {
            panic!("an outcome");
        };
        assert_eq!(
            (applied.decision.announce, applied.decision.decision_seq),
            (false, *seq)
        );
        assert_eq!(
            (&t.from, &t.to),
            (&wire::State::Healthy, &wire::State::Unhealthy)
        );
        assert_eq!(t.change, wire::Change::Withdraw);
        assert_eq!(
            crate::audit::text::cause_text(&t.cause),
            "check resolver failed: SERVFAIL"
        );
        assert_eq!(
            f.memory.applied().len(),
            2,
            "one call to announce, one to withdraw"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_operator_drain_withdraws_until_undrained_and_the_reply_says_what_the_backend_showed(
    ) {
        let f = fixture("driver-drain", Observation::Pass);
        let driver = start(&f);
        until("announced", || announced(&f)).await;
        let operator = |kind| {
            Box::new(wire::OperatorAction {
                kind,
                uid: 0,
                pid: 1,
            })
        };
        let (tx, rx) = oneshot::channel();
        let drain = Command::Drain {
            cause: Box::new(DrainCause::Operator {
                reason: "maintenance".into(),
                expires_at: None,
                uid: 0,
            }),
            operator: operator(wire::OperatorKind::Drain {
                service: "dns".into(),
                reason: "maintenance".into(),
                expires_at_ms: None,
            }),
            grace: None,
            reply: tx,
        };
        assert!(driver.commands.send(drain).await.is_ok());
        let reply = rx.await.unwrap();
        assert!(matches!(
            reply.state,
            State::Draining(DrainCause::Operator { .. })
        ));
        assert!(verify(&reply.handed, Duration::from_secs(20))
            .await
            .is_empty());
        assert!(!announced(&f), "the drain's withdrawal is verified");
        // Checks keep passing: it stays drained.
        let polls = f.script.polls();
        until("more polls", || f.script.polls() >= polls + 3).await;
        assert!(!announced(&f));

        let (tx, rx) = oneshot::channel();
        let undrain = Command::Undrain {
            operator: operator(wire::OperatorKind::Undrain {
                service: "dns".into(),
            }),
            reply: tx,
        };
        assert!(driver.commands.send(undrain).await.is_ok());
        let reply = rx.await.unwrap();
        assert!(verify(&reply.handed, Duration::from_secs(20))
            .await
            .is_empty());
        until("announced again", || announced(&f)).await;
        let states: Vec<(wire::State, wire::State)> = transitions(&f.reader)
            .into_iter()
            .map(|(_, t)| (t.from, t.to))
            .collect();
        assert_eq!(states.len(), 3, "{states:?}");
        assert!(matches!(
            states[1],
            (wire::State::Healthy, wire::State::Draining(_))
        ));
        assert!(matches!(states[2].0, wire::State::Draining(_)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shutdown_of_a_drained_service_names_the_drain_as_its_decision() {
        let mut f = fixture("driver-shutdown-drained", Observation::Pass);
        let driver = start(&f);
        until("announced", || announced(&f)).await;
        let (tx, rx) = oneshot::channel();
        let drain = Command::Drain {
            cause: Box::new(DrainCause::Operator {
                reason: "maintenance".into(),
                expires_at: None,
                uid: 0,
            }),
            operator: Box::new(wire::OperatorAction {
                kind: wire::OperatorKind::Drain {
                    service: "dns".into(),
                    reason: "maintenance".into(),
                    expires_at_ms: None,
                },
                uid: 0,
                pid: 1,
            }),
            grace: None,
            reply: tx,
        };
        assert!(driver.commands.send(drain).await.is_ok());
        let reply = rx.await.unwrap();
        assert!(verify(&reply.handed, Duration::from_secs(20))
            .await
            .is_empty());
        let (drain_seq, t) = transitions(&f.reader).pop().unwrap();
        assert!(matches!(t.to, wire::State::Draining(_)));
        while f.reports.try_recv().is_ok() {}

        // The shutdown changes no state (no new record): its withdrawal restates the drain's.
        let (tx, rx) = oneshot::channel();
        assert!(driver
            .commands
            .send(Command::Shutdown {
                grace: None,
                done: tx,
            })
            .await
            .is_ok());
        rx.await.unwrap();
        assert_eq!(transitions(&f.reader).pop().unwrap().0, drain_seq);
        let writer = f.shared.writers.lock().unwrap().values().next().cloned();
        let writer = writer.unwrap();
        until("settled", || writer.unsettled().is_empty()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut seqs = Vec::new();
        while let Ok(crate::routing::writer::Notice::Outcome(report)) = f.reports.try_recv() {
            seqs.push(report.decision.decision_seq);
        }
        assert!(
            seqs.iter().all(|seq| *seq == drain_seq),
            "outcomes after the shutdown name decisions {seqs:?}, the drain is {drain_seq}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shutdown_drains_and_hands_the_withdrawal_over_before_answering() {
        let f = fixture("driver-shutdown", Observation::Pass);
        let driver = start(&f);
        until("announced", || announced(&f)).await;
        let (tx, rx) = oneshot::channel();
        assert!(driver
            .commands
            .send(Command::Shutdown {
                grace: None,
                done: tx,
            })
            .await
            .is_ok());
        rx.await.unwrap();
        let (_, t) = transitions(&f.reader).pop().unwrap();
        assert_eq!(t.to, wire::State::Draining(wire::DrainCause::Shutdown));
        assert_eq!(t.change, wire::Change::Withdraw);
        until("withdrawn", || !announced(&f)).await;
    }

    fn deprefer() -> crate::bgp::Attributes {
        crate::bgp::Attributes {
            as_path_prepend: 3,
            med: Some(1000),
            communities: vec!["65000:666".parse().unwrap()],
            large_communities: vec![],
        }
    }

    /// The decisions the writer reported outcomes of so far (announce, attributes).
    fn decisions(f: &mut Fixture) -> Vec<(bool, crate::bgp::Attributes)> {
        let mut out = Vec::new();
        while let Ok(crate::routing::writer::Notice::Outcome(report)) = f.reports.try_recv() {
            out.push((report.decision.announce, report.decision.attributes));
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deprefer_service_is_announced_depreferred_while_unhealthy_and_never_withdrawn() {
        let mut f = fixture("driver-deprefer", Observation::Fail("SERVFAIL".into()));
        let _driver = start_with(&f, |s| {
            s.on_unhealthy = anycastd_fsm::OnUnhealthy::Deprefer;
            s.deprefer = Some(deprefer());
        });
        // Unhealthy from the start: announced de-preferred (a withdraw service would not be).
        until("announced de-preferred", || announced(&f)).await;
        assert_eq!(
            f.memory.attributes(None, f.route.prefix),
            deprefer(),
            "installed with the deprefer attributes"
        );
        let (_, t) = transitions(&f.reader).pop().unwrap();
        assert_eq!(
            (&t.to, t.change),
            (&wire::State::Unhealthy, wire::Change::Announce)
        );

        f.script.set(Observation::Pass);
        until("healthy", || {
            transitions(&f.reader)
                .last()
                .is_some_and(|(_, t)| t.to == wire::State::Healthy)
        })
        .await;
        let (_, t) = transitions(&f.reader).pop().unwrap();
        assert_eq!(t.change, wire::Change::Announce);
        until("the normal level decided", || {
            decisions(&mut f)
                .iter()
                .any(|(announce, attributes)| *announce && attributes.is_plain())
        })
        .await;

        f.script.set(Observation::Fail("SERVFAIL".into()));
        until("de-preferred again", || {
            decisions(&mut f)
                .iter()
                .any(|(announce, attributes)| *announce && *attributes == deprefer())
        })
        .await;
        assert!(
            f.memory.applied().iter().flatten().all(|c| c.announce),
            "never a withdrawal: {:?}",
            f.memory.applied()
        );
        assert!(transitions(&f.reader)
            .iter()
            .all(|(_, t)| t.change == wire::Change::Announce));
        assert!(announced(&f));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reload_back_to_withdraw_withdraws_once_decided_by_its_durable_level_record() {
        let mut f = fixture("driver-reload-level", Observation::Fail("SERVFAIL".into()));
        let graded = |s: &mut Service| {
            s.on_unhealthy = anycastd_fsm::OnUnhealthy::Deprefer;
            s.deprefer = Some(deprefer());
        };
        let driver = start_with(&f, graded);
        until("announced de-preferred", || announced(&f)).await;
        until("its outcome", || {
            decisions(&mut f).iter().any(|(announce, _)| *announce)
        })
        .await;
        // The reload (record 99) takes on_unhealthy back to withdraw.
        let (reply, said) = oneshot::channel();
        let command = Command::Reconfigure {
            service: Box::new(service_with(&f, |_| {})),
            decision_seq: 99,
            reply,
        };
        assert!(driver.commands.send(command).await.is_ok());
        assert_eq!(
            said.await.unwrap(),
            ["withdraws 203.0.113.53/32 (unhealthy)"],
            "the answer says what it does"
        );
        until("withdrawn", || !announced(&f)).await;
        // The level record is on disk (it was appended durably before the writer heard).
        let level_seq = f
            .reader
            .entries_from(0)
            .find_map(|e| match e {
                Ok(Entry::Record(r)) => match r.event {
                    wire::Event::Level(l) if l.level.is_none() => Some(r.seq),
                    _ => None,
                },
                _ => None,
            })
            .unwrap();
        // One withdrawal, decided by it, applied: never "already so", never under no record.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut withdrawals = Vec::new();
        while let Ok(crate::routing::writer::Notice::Outcome(report)) = f.reports.try_recv() {
            if !report.decision.announce {
                withdrawals.push((report.decision.decision_seq, report.outcome));
            }
        }
        assert_eq!(
            withdrawals,
            [(level_seq, crate::routing::writer::Outcome::Applied)]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_withdraw_service_beside_is_withdrawn_as_before() {
        let f = fixture("driver-withdraw-beside", Observation::Pass);
        let _driver = start_with(&f, |s| s.drain_grace = Duration::ZERO);
        until("announced", || announced(&f)).await;
        assert!(f.memory.attributes(None, f.route.prefix).is_plain());
        f.script.set(Observation::Fail("SERVFAIL".into()));
        until("withdrawn", || !announced(&f)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_drain_with_a_grace_announces_graceful_shutdown_then_withdraws_at_the_grace_end() {
        let mut f = fixture("driver-drain-grace", Observation::Pass);
        let driver = start_with(&f, |s| {
            s.drain_grace = Duration::from_millis(600);
            s.deprefer = Some(deprefer());
        });
        until("announced", || announced(&f)).await;
        let _ = decisions(&mut f);
        let (tx, rx) = oneshot::channel();
        let drain = Command::Drain {
            cause: Box::new(DrainCause::Operator {
                reason: "maintenance".into(),
                expires_at: None,
                uid: 0,
            }),
            operator: Box::new(wire::OperatorAction {
                kind: wire::OperatorKind::Drain {
                    service: "dns".into(),
                    reason: "maintenance".into(),
                    expires_at_ms: None,
                },
                uid: 0,
                pid: 1,
            }),
            grace: None,
            reply: tx,
        };
        let drained_at = now_ms();
        assert!(driver.commands.send(drain).await.is_ok());
        let reply = rx.await.unwrap();
        assert!(matches!(
            reply.state,
            State::Draining(DrainCause::Operator { .. })
        ));
        assert!(announced(&f), "still announced in its grace");
        let graceful = deprefer().with(crate::bgp::GRACEFUL_SHUTDOWN);
        until("the graceful level decided", || {
            decisions(&mut f)
                .iter()
                .any(|(announce, attributes)| *announce && *attributes == graceful)
        })
        .await;
        until("withdrawn at the grace end", || !announced(&f)).await;
        assert!(
            now_ms() >= drained_at + 600,
            "withdrawn no earlier than the grace's end"
        );
        let changes: Vec<wire::Change> = transitions(&f.reader)
            .into_iter()
            .map(|(_, t)| t.change)
            .collect();
        assert_eq!(
            changes,
            [
                wire::Change::Announce,
                wire::Change::Announce,
                wire::Change::Withdraw
            ],
            "healthy, draining in its grace, grace over"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_service_with_a_grace_removed_by_a_reload_is_withdrawn_at_once() {
        let f = fixture("driver-remove-grace", Observation::Pass);
        let driver = start_with(&f, |s| s.drain_grace = Duration::from_secs(3600));
        until("announced", || announced(&f)).await;
        let (tx, rx) = oneshot::channel();
        assert!(driver.commands.send(Command::Remove(tx)).await.is_ok());
        rx.await.unwrap();
        // The driver is gone: no grace timer could end a grace; nothing is left announced.
        until("withdrawn", || !announced(&f)).await;
    }
}
